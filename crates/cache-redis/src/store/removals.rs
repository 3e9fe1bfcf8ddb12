//! Removals on Redis: pattern removals page by page, and the replay of what Redis could not
//! take, each leaving the removal records of `removal.rs` (a tombstone per removed key, the
//! pattern in the namespace's auxiliary key) for the replay horizon.

use cache_core::frame::tombstone;

use super::*;
use crate::pattern::{WalkConnection, WalkPool};
use crate::removal::{RecordedRemoval, covered, parse_all, record_pattern};
use crate::replay::ReplayTarget;

impl StoreInner {
    pub(super) fn horizon_ms(&self) -> u64 {
        u64::try_from(self.horizon.as_millis()).unwrap_or(u64::MAX)
    }

    /// Records `pattern` as removed, when the namespace has a record (on a walk connection of
    /// the server holding the record).
    async fn record(&self, pattern: &KeyPattern) -> Result<()> {
        match &self.patterns_key {
            Some(key) => {
                let pool = self.pool_for(key)?;
                let mut conn = Some(pool.get().await?);
                let script = (&self.record_pattern, key.as_str());
                record_pattern(&pool, &mut conn, script, pattern, self.horizon).await
            }
            None => Ok(()),
        }
    }

    /// Replaces each of `keys` by a tombstone (a replayed removal: unless it holds a frame
    /// written after `issued_at`); true for each key that held a value.
    async fn remove_page(
        &self,
        pool: &WalkPool,
        conn: &mut Option<WalkConnection>,
        keys: &[CacheKey],
        issued_at: Option<u64>,
    ) -> Result<Vec<bool>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mark = tombstone(unix_millis());
        let horizon = self.horizon_ms();
        let script = match issued_at {
            Some(_) => &self.remove_if_not_newer,
            None => &self.remove,
        };
        let mut pipe = redis::pipe();
        pipe.load_script(script).ignore();
        for key in keys {
            let mut invocation = script.key(self.redis_key(key));
            if let Some(at) = issued_at {
                invocation.arg(at);
            }
            invocation.arg(mark.as_ref()).arg(horizon);
            pipe.invoke_script(&invocation);
        }
        let replies = pool
            .step(conn, "remove page", |mut c| async move {
                pipe.query_async::<Vec<i64>>(&mut c).await
            })
            .await?;
        Ok(replies.into_iter().map(|n| n > 0).collect())
    }

    /// Records the pattern, then walks and removes page by page (`issued_at`: a replayed
    /// removal's issue time), telling `removed` each key that held a value.
    pub(super) async fn remove_pattern(
        self: &Arc<Self>,
        pattern: &KeyPattern,
        issued_at: Option<u64>,
        removed: RemovedSink<'_>,
    ) -> Result<u64> {
        if self.link.connection()?.is_none() {
            return Err(unavailable());
        }
        let full = self.full_pattern(pattern);
        let shards = self.shards(true).await?;
        // A primary known to be down fails the removal before any work: it is queued whole.
        for shard in &shards {
            shard.check()?;
        }
        // Recorded first: a write replayed while the walk runs, of a key the walk has passed,
        // still finds the record.
        self.record(pattern).await?;
        let mut count = 0;
        for shard in &shards {
            let pool = &shard.pool;
            let mut conn = Some(pool.get().await?);
            let mut cursor = 0;
            loop {
                let (next, keys) = scan_page(
                    pool,
                    &mut conn,
                    cursor,
                    (pattern, &full),
                    &self.prefix,
                    self.scan_count,
                )
                .await?;
                let gone = self.remove_page(pool, &mut conn, &keys, issued_at).await?;
                for (key, existed) in keys.iter().zip(gone) {
                    if existed {
                        removed(key);
                        count += 1;
                    }
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(count)
    }

    /// The pattern removals recorded within the horizon (none when the namespace has no
    /// record), read on the hot connection under the command timeout, as the writes they guard.
    pub(super) async fn recorded_removals(self: &Arc<Self>) -> Result<Vec<RecordedRemoval>> {
        let Some(record) = &self.patterns_key else {
            return Ok(Vec::new());
        };
        let node = self.route(record);
        let mut invocation = self.recorded_patterns.key(record);
        invocation.arg(self.horizon_ms());
        let reply = self
            .hot_at(node, "removed patterns", |mut c| async move {
                invocation.invoke_async::<Vec<String>>(&mut c).await
            })
            .await?;
        Ok(parse_all(&reply))
    }

    /// Whether a pattern removed within the horizon covers `key` (a replayed write must not
    /// bring it back).
    async fn removed_by_pattern(self: &Arc<Self>, key: &CacheKey) -> Result<bool> {
        Ok(covered(&self.recorded_removals().await?, key))
    }

    /// Replaces `key` by a tombstone; with `issued_at` (a replayed removal), unless it holds a
    /// frame written after that (by the writer's clock: the one rule that compares clocks, and it
    /// errs towards keeping a newer answer).
    pub(super) async fn remove_key(
        self: &Arc<Self>,
        key: &CacheKey,
        issued_at: Option<u64>,
    ) -> Result<i64> {
        let script = match issued_at {
            Some(_) => &self.remove_if_not_newer,
            None => &self.remove,
        };
        let name = self.redis_key(key);
        let node = self.route(&name);
        let mut invocation = script.key(name);
        if let Some(at) = issued_at {
            invocation.arg(at);
        }
        invocation
            .arg(tombstone(unix_millis()).as_ref())
            .arg(self.horizon_ms());
        self.hot_at(node, "replay removal", |mut c| async move {
            invocation.invoke_async::<i64>(&mut c).await
        })
        .await
    }
}

impl ReplayTarget for StoreInner {
    fn replay_queue(&self) -> &ReplayQueue {
        &self.replay
    }

    fn is_available(&self) -> bool {
        self.all_available()
    }

    fn poke(self: &Arc<Self>) {
        let _ = self.link.connection();
        if let Servers::Cluster(topology) = &self.servers {
            for node in topology.primaries() {
                if !node.breaker.is_available() {
                    topology.maybe_probe(&node);
                }
            }
        }
    }

    fn retry_delays(&self) -> (Duration, Duration) {
        self.reconnect_delays
    }

    async fn apply(self: &Arc<Self>, item: &Pending) -> Result<bool> {
        match item {
            Pending::Set {
                key,
                frame,
                cached_at_ms,
                expires_at_ms,
                queued_at,
            } => {
                if *expires_at_ms <= unix_millis() {
                    return Ok(false);
                }
                // With a margin for the failed attempt before it was queued and the round trips
                // before its write: its removal records must outlive it.
                let margin = self.command_timeout.saturating_mul(3);
                if queued_at.elapsed() > self.horizon.saturating_sub(margin) {
                    // Older than any removal record: a removal made meanwhile may be forgotten.
                    self.replay.count_expired();
                    return Ok(false);
                }
                if self.removed_by_pattern(key).await? {
                    return Ok(false);
                }
                // The script refuses a tombstone: a removal made since the write.
                let name = self.redis_key(key);
                let node = self.route(&name);
                let mut invocation = self.set_if_newer.key(name);
                invocation
                    .arg(frame.as_slice())
                    .arg(*cached_at_ms)
                    .arg(*expires_at_ms);
                let applied = self
                    .hot_at(node, "replay SET", |mut c| async move {
                        invocation.invoke_async::<i64>(&mut c).await
                    })
                    .await?;
                // A pattern removal recorded between the check and the write may have scanned
                // past the key already: take the write back.
                if applied == 1 && self.removed_by_pattern(key).await? {
                    self.remove_key(key, None).await?;
                    return Ok(false);
                }
                Ok(applied == 1)
            }
            Pending::Delete { key, at_ms } => Ok(self.remove_key(key, Some(*at_ms)).await? >= 0),
            Pending::Invalidate { pattern, at_ms } => {
                let mut ignore = |_: &CacheKey| {};
                self.remove_pattern(pattern, Some(*at_ms), &mut ignore)
                    .await?;
                Ok(true)
            }
        }
    }
}
