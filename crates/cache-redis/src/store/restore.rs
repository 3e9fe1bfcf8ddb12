//! [`FrameStore::restore_many`] on Redis: pipelined single-key writes on a walk connection (a
//! restore never queues in front of hot-path commands), each refusing a tombstone, and the
//! namespace's recorded pattern removals checked before the batch and again after it.

use cache_core::frame::{Stamp, stamp};
use cache_core::{RestoreEntry, RestoreRule};

use super::*;
use crate::removal::covered_since;

/// Writes `ARGV[1]` under `KEYS[1]` until `ARGV[2]` (ms since the epoch) unless the key holds a
/// tombstone; 1 when written. A key of another type is replaced, as `SET` does.
pub(crate) const REPLACE_UNLESS_REMOVED: &str = r"
local head = redis.pcall('GETRANGE', KEYS[1], 0, 3)
if type(head) == 'string' and head == 'AIC\254' then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[2])
return 1
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
        let mut pipe = redis::pipe();
        if rule != RestoreRule::IfAbsent {
            pipe.load_script(self.restore_script(rule)).ignore();
        }
        for &i in &due {
            let entry = &entries[i];
            let name = self.redis_key(&entry.key);
            match rule {
                RestoreRule::IfAbsent => {
                    // A tombstone is a value: `NX` leaves it alone.
                    pipe.cmd("SET")
                        .arg(name)
                        .arg(entry.frame.as_ref())
                        .arg("NX")
                        .arg("PXAT")
                        .arg(entry.expires_at_ms);
                }
                RestoreRule::UnlessNewer => {
                    let mut invocation = self.set_if_newer.key(name);
                    invocation
                        .arg(entry.frame.as_ref())
                        .arg(written_at(&entry.frame))
                        .arg(entry.expires_at_ms);
                    pipe.invoke_script(&invocation);
                }
                _ => {
                    let mut invocation = self.replace_unless_removed.key(name);
                    invocation
                        .arg(entry.frame.as_ref())
                        .arg(entry.expires_at_ms);
                    pipe.invoke_script(&invocation);
                }
            }
        }
        let mut conn = Some(self.walks.get().await?);
        let replies = self
            .walks
            .step(&mut conn, "restore page", |mut c| async move {
                pipe.query_async::<Vec<redis::Value>>(&mut c).await
            })
            .await?;
        for (&i, reply) in due.iter().zip(replies) {
            written[i] = matches!(reply, redis::Value::Okay | redis::Value::Int(1));
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

    fn restore_script(&self, rule: RestoreRule) -> &redis::Script {
        match rule {
            RestoreRule::UnlessNewer => &self.set_if_newer,
            _ => &self.replace_unless_removed,
        }
    }
}
