//! Removals on Redis: pattern removals page by page, and the replay of what Redis could not
//! take, each leaving the removal records of `removal.rs` (a tombstone per removed key, the
//! pattern in the namespace's auxiliary key) for the replay horizon.

use cache_core::frame::tombstone;

use super::*;
use crate::client::is_redirect;
use crate::cluster::Node;
use crate::pattern::{WalkConnection, WalkPool};
use crate::removal::{RecordedRemoval, covered, parse_all, record_pattern};
use crate::replay::ReplayTarget;

impl StoreInner {
    pub(super) fn horizon_ms(&self) -> u64 {
        u64::try_from(self.horizon.as_millis()).unwrap_or(u64::MAX)
    }

    /// Records `pattern` as removed, when the namespace has a record (on a walk connection of
    /// the server holding the record; in a cluster, held by a replica too).
    async fn record(&self, pattern: &KeyPattern) -> Result<()> {
        let Some(key) = &self.patterns_key else {
            return Ok(());
        };
        let (pool, node) = (self.pool_for(key)?, self.primary_of(key));
        let mut conn = Some(pool.get().await?);
        let script = (&self.record_pattern, key.as_str());
        record_pattern(&pool, &mut conn, script, pattern, self.horizon).await?;
        if node.as_ref().is_some_and(|n| n.has_replicas()) {
            let mut pipe = redis::pipe();
            self.wait_for_replica(&mut pipe);
            let acked = pool
                .step(&mut conn, "WAIT", |mut c| async move {
                    pipe.query_async::<Vec<i64>>(&mut c).await
                })
                .await?;
            check_replicated(acked.last().copied(), key)?;
        }
        Ok(())
    }

    /// Appends `WAIT 1 {command_timeout}`: Redis answers once a replica holds this connection's
    /// writes (or with 0 at the timeout).
    pub(super) fn wait_for_replica(&self, pipe: &mut redis::Pipeline) {
        let limit = u64::try_from(self.command_timeout.as_millis()).unwrap_or(u64::MAX);
        pipe.cmd("WAIT").arg(1).arg(limit.max(1));
    }

    /// Replaces each of `keys` by a tombstone (a replayed removal: unless it holds a frame
    /// written after `issued_at`); true for each key that held a value.
    async fn remove_page(
        &self,
        (pool, durable): (&WalkPool, bool),
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
        if durable {
            self.wait_for_replica(&mut pipe);
        }
        let mut replies = pool
            .step(conn, "remove page", |mut c| async move {
                pipe.query_async::<Vec<i64>>(&mut c).await
            })
            .await?;
        if durable {
            let acked = replies.pop();
            check_replicated(acked, keys[0].as_str())?;
        }
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
        let mut count = 0;
        let mut tries = 0;
        loop {
            let (topology, shards) = self.shards(true).await?;
            // A primary known to be down fails the removal before any work: it is queued whole.
            for shard in &shards {
                shard.check()?;
            }
            if tries == 0 {
                // Recorded first: a write replayed while the walk runs, of a key the walk has
                // passed, still finds the record.
                self.record(pattern).await?;
            }
            for shard in &shards {
                // Each page waits for a replica to hold it (a failover must not bring the keys
                // back); a page no replica took fails the removal, which is queued and replayed.
                let wait = shard.node.as_ref().is_some_and(|n| n.has_replicas());
                count += self
                    .remove_on(shard, wait, (pattern, &full), issued_at, removed)
                    .await?;
            }
            // Slots that changed hands during the walk may have carried keys from a primary not
            // walked yet to one walked already: read the topology again and walk again if it
            // changed. A slot migrating moves keys under the walk: not done, queued instead.
            let after = match &self.servers {
                Servers::Single { .. } => topology,
                Servers::Cluster(cluster) => {
                    cluster.refresh_now().await?;
                    if cluster.migrating() {
                        return Err(Error::new(
                            ErrorKind::Unavailable,
                            "a slot is migrating between primaries: a pattern removal waits for it",
                        )
                        .with_context("pattern", pattern.as_str()));
                    }
                    cluster.snapshot().0
                }
            };
            if after == topology {
                return Ok(count);
            }
            tries += 1;
            if tries == 3 {
                return Err(Error::new(
                    ErrorKind::Unavailable,
                    "the cluster's topology kept changing during a pattern removal",
                )
                .with_context("pattern", pattern.as_str()));
            }
        }
    }

    /// Walks one server and removes what `pattern` matches there, page by page.
    async fn remove_on(
        &self,
        shard: &Shard,
        durable: bool,
        (pattern, full): (&KeyPattern, &str),
        issued_at: Option<u64>,
        removed: RemovedSink<'_>,
    ) -> Result<u64> {
        let pool = &shard.pool;
        let mut conn = Some(pool.get().await?);
        let (mut cursor, mut count) = (0, 0);
        loop {
            let (next, keys) = scan_page(
                pool,
                &mut conn,
                cursor,
                (pattern, full),
                &self.prefix,
                self.scan_count,
            )
            .await?;
            let gone = self
                .remove_page((pool, durable), &mut conn, &keys, issued_at)
                .await?;
            for (key, existed) in keys.iter().zip(gone) {
                if existed {
                    removed(key);
                    count += 1;
                }
            }
            if next == 0 {
                return Ok(count);
            }
            cursor = next;
        }
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
            .hot_at(node, "removed patterns", async move |c| {
                invocation.invoke_async::<Vec<String>>(c).await
            })
            .await?;
        Ok(parse_all(&reply))
    }

    /// Whether a pattern removed within the horizon covers `key` (a replayed write must not
    /// bring it back).
    async fn removed_by_pattern(self: &Arc<Self>, key: &CacheKey) -> Result<bool> {
        Ok(covered(&self.recorded_removals().await?, key))
    }

    /// Replaces `key` by a tombstone (in a cluster, held by a replica too before it returns);
    /// with `issued_at` (a replayed removal), unless it holds a
    /// frame written after that (by the writer's clock: the one rule that compares clocks, and it
    /// errs towards keeping a newer answer).
    pub(super) async fn remove_key(
        self: &Arc<Self>,
        key: &CacheKey,
        issued_at: Option<u64>,
    ) -> Result<i64> {
        let first = self.remove_key_once(key, issued_at).await;
        match (&self.servers, &first) {
            // Our table was behind (the slot moved): read it now and remove where the slot is,
            // waiting for that primary's replica. (While the slot still migrates, `ASK`, the
            // removal stays queued until it has moved.)
            (Servers::Cluster(topology), Err(e)) if is_redirect(e) => {
                topology.refresh_now().await?;
                self.remove_key_once(key, issued_at).await
            }
            _ => first,
        }
    }

    async fn remove_key_once(
        self: &Arc<Self>,
        key: &CacheKey,
        issued_at: Option<u64>,
    ) -> Result<i64> {
        if let Servers::Cluster(_) = &self.servers {
            // Without a known primary nothing says whether a replica must hold the tombstone:
            // not done, queued.
            let Some(node) = self.primary_of(&self.redis_key(key)) else {
                return Err(unavailable());
            };
            if node.has_replicas() {
                return self.remove_replicated(&node, key, issued_at).await;
            }
        }
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
        // Not followed: a primary that gained the slot may have replicas, and then the removal
        // must wait for one. Failed instead, it is queued and replayed on the table re-read.
        self.hot_call(node, "remove", false, async move |c| {
            invocation.invoke_async::<i64>(c).await
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
            topology.learn_if_unknown();
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
                    .hot_at(node, "replay SET", async move |c| {
                        invocation.invoke_async::<i64>(c).await
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
                Box::pin(self.remove_pattern(pattern, Some(*at_ms), &mut ignore)).await?;
                Ok(true)
            }
        }
    }
}

/// The message of a removal no replica acknowledged.
pub(super) const UNREPLICATED: &str =
    "no replica acknowledged the removal in time: a failover could bring the entry back";

impl StoreInner {
    /// Reads a cluster's topology again in the background (the topology's one rate-limited
    /// mechanism, as redirects use).
    fn relearn_topology(&self) {
        if let Servers::Cluster(topology) = &self.servers {
            topology.relearn();
        }
    }
}

/// `Err(Unavailable)` unless `WAIT` answered that a replica holds the removal.
fn check_replicated(acked: Option<i64>, what: &str) -> Result<()> {
    if acked.is_some_and(|n| n >= 1) {
        return Ok(());
    }
    Err(Error::new(ErrorKind::Unavailable, UNREPLICATED)
        .with_context("key", what.to_string())
        .with_context("fix", "nothing to do: the removal is queued and replayed"))
}

impl StoreInner {
    /// Removes `key` on `node` (a cluster primary with replicas) and waits for a replica to hold
    /// the tombstone, on one of the node's removal connections (`WAIT` blocks its connection, so
    /// never the shared one, nor the walks'). 1 when the key held a value.
    pub(super) async fn remove_replicated(
        self: &Arc<Self>,
        node: &Node,
        key: &CacheKey,
        issued_at: Option<u64>,
    ) -> Result<i64> {
        if !node.breaker.is_available() {
            bump(&self.counters.skipped);
            return Err(unavailable());
        }
        let script = match issued_at {
            Some(_) => &self.remove_if_not_newer,
            None => &self.remove,
        };
        let mut invocation = script.key(self.redis_key(key));
        if let Some(at) = issued_at {
            invocation.arg(at);
        }
        invocation
            .arg(tombstone(unix_millis()).as_ref())
            .arg(self.horizon_ms());
        let mut pipe = redis::pipe();
        pipe.load_script(script).ignore();
        pipe.invoke_script(&invocation);
        self.wait_for_replica(&mut pipe);
        let pool = &node.removals;
        let mut conn = Some(pool.get().await?);
        self.counters.requests.add(1);
        let replies = pool
            .step(&mut conn, "remove and WAIT", |mut c| async move {
                pipe.query_async::<Vec<i64>>(&mut c).await
            })
            .await;
        let replies = match replies {
            Ok(replies) => replies,
            Err(e) => {
                bump(&self.counters.errors);
                // Only the node's own failures open its breaker: a redirect (our table is
                // stale) reads the topology again instead.
                if matches!(e.kind(), ErrorKind::Connection | ErrorKind::Timeout) {
                    node.breaker.observe_failure(&e);
                } else {
                    self.relearn_topology();
                }
                return Err(e);
            }
        };
        if let Err(e) = check_replicated(replies.last().copied(), key.as_str()) {
            // Perhaps the cluster no longer counts that replica: the next removals learn it.
            self.relearn_topology();
            return Err(e);
        }
        Ok(replies.first().copied().unwrap_or(0))
    }
}
