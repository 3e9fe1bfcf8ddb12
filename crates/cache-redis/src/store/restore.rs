//! [`FrameStore::restore_many`] on Redis, on a walk connection (a restore never queues in front of
//! hot-path commands). Every batch first goes out as pipelined native `SET NX PXAT`: it writes
//! the keys that hold nothing at raw speed, and leaves alone every key that holds something
//! (a tombstone is a value, so `NX` never lands over a removal). Under the "replace" and "unless
//! newer" rules, the keys `NX` refused then go through one script per batch that reads only each
//! key's 13-byte head (a script's arguments cost Redis more than the write itself, so only the
//! keys that need it pay). The namespace's recorded pattern removals are checked before the batch
//! and again after it.

use cache_core::frame::{Stamp, stamp};
use cache_core::{RestoreEntry, RestoreRule};

use super::*;
use crate::removal::covered_since;

/// For each `KEYS[i]`, writes `ARGV[3i-1]` until `ARGV[3i+1]` (ms since the epoch) unless the key
/// holds a tombstone, or (rule `ARGV[1]` = `newer`) a frame written at or after `ARGV[3i]` or a
/// frame of a version other than 1 and 2. A value that is not a frame, or a key of another
/// type, is replaced. Returns one 0/1 per key. Every key of a batch is on one server.
pub(crate) const RESTORE_BATCH: &str = r"
local newer = ARGV[1] == 'newer'
local out = {}
for i, key in ipairs(KEYS) do
  local head = redis.pcall('GETRANGE', key, 0, 12)
  local write = true
  if type(head) == 'string' and string.len(head) >= 4 and string.sub(head, 1, 3) == 'AIC' then
    local version = string.byte(head, 4)
    if version == 254 then
      write = false
    elseif newer then
      if version ~= 1 and version ~= 2 then
        write = false
      elseif string.len(head) >= 13 then
        local written = 0
        for j = 6, 13 do written = written * 256 + string.byte(head, j) end
        if written >= tonumber(ARGV[3 * i]) then write = false end
      end
    end
  end
  if write then
    redis.call('SET', key, ARGV[3 * i - 1], 'PXAT', ARGV[3 * i + 1])
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
";

/// The `cached_at` a removal is compared with: 0 for a value that is not a frame of this
/// version, so that any removal on record covers it.
fn written_at(frame: &[u8]) -> u64 {
    match stamp(frame) {
        Stamp::WrittenAt(ms) => ms,
        _ => 0,
    }
}

impl StoreInner {
    pub(super) async fn restore_many(
        self: &Arc<Self>,
        entries: &[RestoreEntry],
        rule: RestoreRule,
    ) -> Result<Vec<bool>> {
        for entry in entries {
            self.check_size(&entry.frame)?;
        }
        let mut written = vec![false; entries.len()];
        if entries.is_empty() {
            return Ok(written);
        }
        if self.link.connection()?.is_none() {
            return Err(unavailable());
        }
        let before = self.recorded_removals().await?;
        let now = unix_millis();
        let due: Vec<usize> = (0..entries.len())
            .filter(|&i| {
                let entry = &entries[i];
                entry.expires_at_ms > now
                    && !covered_since(&before, &entry.key, written_at(&entry.frame))
            })
            .collect();
        if due.is_empty() {
            return Ok(written);
        }
        let mut conn = Some(self.walks.get().await?);
        let mut pipe = redis::pipe();
        for &i in &due {
            let entry = &entries[i];
            pipe.cmd("SET")
                .arg(self.redis_key(&entry.key))
                .arg(entry.frame.as_ref())
                .arg("NX")
                .arg("PXAT")
                .arg(entry.expires_at_ms);
        }
        let replies = self
            .walks
            .step(&mut conn, "restore page", |mut c| async move {
                pipe.query_async::<Vec<Option<String>>>(&mut c).await
            })
            .await?;
        let mut applied: Vec<bool> = replies.into_iter().map(|r| r.is_some()).collect();
        let held: Vec<usize> = (0..due.len()).filter(|&d| !applied[d]).collect();
        if rule != RestoreRule::IfAbsent && !held.is_empty() {
            let mut invocation = self.restore_batch.prepare_invoke();
            invocation.arg(if rule == RestoreRule::UnlessNewer {
                "newer"
            } else {
                "replace"
            });
            for &d in &held {
                let entry = &entries[due[d]];
                invocation
                    .key(self.redis_key(&entry.key))
                    .arg(entry.frame.as_ref())
                    .arg(written_at(&entry.frame))
                    .arg(entry.expires_at_ms);
            }
            let replies = self
                .walks
                .step(&mut conn, "restore page", |mut c| async move {
                    invocation.invoke_async::<Vec<i64>>(&mut c).await
                })
                .await?;
            for (&d, reply) in held.iter().zip(replies) {
                applied[d] = reply == 1;
            }
        }
        for (&i, applied) in due.iter().zip(applied) {
            written[i] = applied;
        }
        // A pattern removal recorded while the batch was written may have scanned past some of
        // its keys already: take those writes back.
        let after = self.recorded_removals().await?;
        for &i in &due {
            let entry = &entries[i];
            if written[i] && covered_since(&after, &entry.key, written_at(&entry.frame)) {
                self.remove_key(&entry.key, None).await?;
                written[i] = false;
            }
        }
        Ok(written)
    }
}
