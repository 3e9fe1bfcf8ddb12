//! [`FrameStore::restore_many`] on Redis, on a walk connection (a restore never queues in front of
//! hot-path commands). Every batch first goes out as pipelined native `SET NX PXAT`: it writes
//! the keys that hold nothing at raw speed, and leaves alone every key that holds something
//! (a tombstone is a value, so `NX` never lands over a removal). Under the "replace" and "unless
//! newer" rules, the keys `NX` refused then go through one script per batch that reads only each
//! key's 13-byte head (a script's arguments cost Redis more than the write itself, so only the
//! keys that need it pay). That script is the one that touches several keys: every key of a batch
//! is on one server, and a cluster store calls it once per hash slot. The namespace's recorded pattern removals
//! (read on the hot connection) are checked before the batch and again after it, and the check
//! after it also runs when the batch fails or is cancelled.

use cache_core::frame::{MAX_TIMESTAMP_MS, Stamp, stamp};
use cache_core::{RestoreEntry, RestoreRule};

use super::*;
use crate::pattern::WalkPool;
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

/// Takes back the writes of a batch that a pattern removal recorded while the batch was being
/// written covers (its SCAN may have passed those keys already), each only if the key still
/// holds the restored frame. [`finish`](Self::finish) runs it; if the batch fails or its future
/// is dropped first, `Drop` runs it on a task of its own.
struct TakeBack {
    store: Arc<StoreInner>,
    /// The entries that may have been written, with their `cached_at`.
    candidates: Vec<(CacheKey, Bytes, u64)>,
    armed: bool,
}

impl TakeBack {
    fn new(store: &Arc<StoreInner>, entries: &[RestoreEntry], due: &[usize]) -> Self {
        let candidates = due
            .iter()
            .map(|&i| {
                let entry = &entries[i];
                (
                    entry.key.clone(),
                    entry.frame.clone(),
                    written_at(&entry.frame),
                )
            })
            .collect();
        Self {
            store: Arc::clone(store),
            candidates,
            armed: true,
        }
    }

    /// Keeps only the candidates that were written (`written[i]` for `candidates[i]`).
    fn written(&mut self, written: &[bool]) {
        let mut flags = written.iter();
        self.candidates
            .retain(|_| flags.next().copied().unwrap_or(true));
    }

    /// Runs the check now; the keys taken back.
    async fn finish(mut self) -> Result<Vec<CacheKey>> {
        self.armed = false;
        let candidates = std::mem::take(&mut self.candidates);
        take_back(&self.store, candidates).await
    }
}

impl Drop for TakeBack {
    fn drop(&mut self) {
        if !self.armed || self.candidates.is_empty() {
            return;
        }
        let (store, candidates) = (
            Arc::clone(&self.store),
            std::mem::take(&mut self.candidates),
        );
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(e) = take_back(&store, candidates).await {
                    tracing::warn!(error = %e, "a cancelled restore could not check its writes against recent pattern removals");
                }
            });
        }
    }
}

async fn take_back(
    store: &Arc<StoreInner>,
    candidates: Vec<(CacheKey, Bytes, u64)>,
) -> Result<Vec<CacheKey>> {
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    let after = store.recorded_removals().await?;
    let mut taken = Vec::new();
    for (key, frame, at) in candidates {
        if covered_since(&after, &key, at) {
            let name = store.redis_key(&key);
            let node = store.route(&name);
            let mut invocation = store.delete_if_unchanged.key(name);
            invocation.arg(frame.as_ref());
            let removed = store
                .hot_at(node, "UNLINK if unchanged", async move |c| {
                    invocation.invoke_async::<i64>(c).await
                })
                .await?;
            if removed > 0 {
                taken.push(key);
            }
        }
    }
    Ok(taken)
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
                    && entry.expires_at_ms <= MAX_TIMESTAMP_MS
                    // Removed while Redis was unreachable, not replayed yet.
                    && !self.replay.removal_covers(&entry.key)
                    && !covered_since(&before, &entry.key, written_at(&entry.frame))
            })
            .collect();
        if due.is_empty() {
            return Ok(written);
        }
        let mut take_back = TakeBack::new(self, entries, &due);
        let applied = match self.write_batch(entries, &due, rule).await {
            Ok(applied) => applied,
            Err(e) => {
                // Some writes may have landed: check them all before reporting the failure.
                if let Err(check) = take_back.finish().await {
                    tracing::warn!(error = %check, "a failed restore batch could not check its writes against recent pattern removals");
                }
                return Err(e);
            }
        };
        take_back.written(&applied);
        for (&i, applied) in due.iter().zip(&applied) {
            written[i] = *applied;
        }
        for key in take_back.finish().await? {
            if let Some(i) = entries.iter().position(|e| e.key == key) {
                written[i] = false;
            }
        }
        Ok(written)
    }

    /// Writes the `due` entries by `rule`, on the walk connections of the server holding each
    /// (a cluster's primaries one after the other). One flag per due entry.
    async fn write_batch(
        &self,
        entries: &[RestoreEntry],
        due: &[usize],
        rule: RestoreRule,
    ) -> Result<Vec<bool>> {
        let mut groups: Vec<(Arc<WalkPool>, Vec<usize>)> = Vec::new();
        for (d, &i) in due.iter().enumerate() {
            let pool = self.pool_for(&self.redis_key(&entries[i].key))?;
            match groups.iter_mut().find(|(p, _)| Arc::ptr_eq(p, &pool)) {
                Some((_, members)) => members.push(d),
                None => groups.push((pool, vec![d])),
            }
        }
        let mut applied = vec![false; due.len()];
        for (pool, members) in groups {
            let subset: Vec<usize> = members.iter().map(|&d| due[d]).collect();
            let written = self.write_on(&pool, entries, &subset, rule).await?;
            for (&d, written) in members.iter().zip(written) {
                applied[d] = written;
            }
        }
        Ok(applied)
    }

    /// Writes the `due` entries (all on the server of `pool`) by `rule`: `SET NX` for all, then
    /// the head-reading script for the keys `NX` refused (under the replace and unless-newer
    /// rules), one call per hash slot in a cluster. One flag per due entry.
    async fn write_on(
        &self,
        pool: &WalkPool,
        entries: &[RestoreEntry],
        due: &[usize],
        rule: RestoreRule,
    ) -> Result<Vec<bool>> {
        let mut conn = Some(pool.get().await?);
        let mut pipe = redis::pipe();
        for &i in due {
            let entry = &entries[i];
            pipe.cmd("SET")
                .arg(self.redis_key(&entry.key))
                .arg(entry.frame.as_ref())
                .arg("NX")
                .arg("PXAT")
                .arg(entry.expires_at_ms);
        }
        let replies = pool
            .step(&mut conn, "restore page", |mut c| async move {
                pipe.query_async::<Vec<Option<String>>>(&mut c).await
            })
            .await?;
        let mut applied: Vec<bool> = replies.into_iter().map(|r| r.is_some()).collect();
        let held: Vec<usize> = (0..due.len()).filter(|&d| !applied[d]).collect();
        if rule != RestoreRule::IfAbsent && !held.is_empty() {
            // One call per slot: a script's keys must share one in a cluster (one group on one
            // server).
            let mut by_slot: Vec<(u16, Vec<usize>)> = Vec::new();
            for &d in &held {
                let slot = match &self.servers {
                    Servers::Cluster(_) => {
                        crate::cluster::slot_of(self.redis_key(&entries[due[d]].key).as_bytes())
                    }
                    Servers::Single { .. } => 0,
                };
                match by_slot.iter_mut().find(|(s, _)| *s == slot) {
                    Some((_, members)) => members.push(d),
                    None => by_slot.push((slot, vec![d])),
                }
            }
            let mut pipe = redis::pipe();
            pipe.load_script(&self.restore_batch).ignore();
            for (_, members) in &by_slot {
                let mut invocation = self.restore_batch.prepare_invoke();
                invocation.arg(if rule == RestoreRule::UnlessNewer {
                    "newer"
                } else {
                    "replace"
                });
                for &d in members {
                    let entry = &entries[due[d]];
                    invocation
                        .key(self.redis_key(&entry.key))
                        .arg(entry.frame.as_ref())
                        .arg(written_at(&entry.frame))
                        .arg(entry.expires_at_ms);
                }
                pipe.invoke_script(&invocation);
            }
            let replies = pool
                .step(&mut conn, "restore page", |mut c| async move {
                    pipe.query_async::<Vec<Vec<i64>>>(&mut c).await
                })
                .await?;
            for ((_, members), reply) in by_slot.iter().zip(replies) {
                for (&d, flag) in members.iter().zip(reply) {
                    applied[d] = flag == 1;
                }
            }
        }
        Ok(applied)
    }
}
