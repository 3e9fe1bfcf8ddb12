//! The [`FrameStore`] methods of [`RedisStore`].

use cache_core::frame::is_tombstone;

use super::*;
use crate::pattern::WalkPosition;
use crate::store::PrefixedKey;

#[deny(clippy::missing_trait_methods)]
impl FrameStore for RedisStore {
    fn info(&self) -> StoreInfo {
        StoreInfo::new("redis", &self.inner.namespace, self.inner.max_frame_size).shared(true)
    }

    fn is_available(&self) -> bool {
        self.inner.link.is_available()
            && match &self.inner.servers {
                Servers::Single { .. } => true,
                Servers::Cluster(topology) => topology.any_available(),
            }
    }

    async fn get(&self, key: &CacheKey) -> Result<Option<Bytes>> {
        if self.inner.replay.removal_covers(key) {
            // Removed while Redis was unreachable, not replayed yet: Redis may still hold it.
            return Ok(None);
        }
        // The hottest call: the Redis key is written straight into the command (no `String`).
        let name = PrefixedKey(&self.inner.prefix, key.as_str());
        match self
            .inner
            .hot_at(self.inner.route_prefixed(&name), "GET", async move |c| {
                redis::cmd("GET")
                    .arg(name)
                    .query_async::<Option<Vec<u8>>>(c)
                    .await
            })
            .await
        {
            // A tombstone: removed within the replay horizon.
            Ok(found) => Ok(found.filter(|v| !is_tombstone(v)).map(Bytes::from)),
            Err(e) if e.is_transient() => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn get_many(&self, keys: &[CacheKey]) -> Result<Vec<Option<Bytes>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let names: Vec<String> = keys.iter().map(|k| self.inner.redis_key(k)).collect();
        let read = match &self.inner.servers {
            Servers::Cluster(topology) => self.inner.get_many_by_node(topology, &names).await,
            Servers::Single { .. } => {
                self.inner
                    .hot("MGET", async move |c| {
                        redis::cmd("MGET")
                            .arg(&names)
                            .query_async::<Vec<Option<Vec<u8>>>>(c)
                            .await
                    })
                    .await
            }
        };
        match read {
            Ok(found) => Ok(found
                .into_iter()
                .zip(keys)
                .map(|(value, key)| {
                    // Removed while Redis was unreachable, not replayed yet.
                    value
                        .filter(|v| !is_tombstone(v) && !self.inner.replay.removal_covers(key))
                        .map(Bytes::from)
                })
                .collect()),
            Err(e) if e.is_transient() => Ok(vec![None; keys.len()]),
            Err(e) => Err(e),
        }
    }

    async fn set(&self, key: &CacheKey, frame: Bytes, ttl: Ttl) -> Result<StoreWrite> {
        self.inner.check_size(&frame)?;
        // As in `get`: the Redis key goes straight into the command, and the command borrows
        // the frame (kept for the replay queue) instead of sharing it.
        let name = PrefixedKey(&self.inner.prefix, key.as_str());
        let sent: &[u8] = &frame;
        match self
            .inner
            .hot_at(self.inner.route_prefixed(&name), "SET", async move |c| {
                redis::cmd("SET")
                    .arg(name)
                    .arg(sent)
                    .arg("PX")
                    .arg(ttl.as_millis())
                    .query_async::<()>(c)
                    .await
            })
            .await
        {
            Ok(()) => Ok(StoreWrite::Written),
            Err(e) if e.is_transient() => {
                Ok(self.inner.queue(StoreInner::pending_set(key, frame, ttl)))
            }
            Err(e) => Err(e),
        }
    }

    async fn set_many(&self, entries: &[(CacheKey, Bytes)], ttl: Ttl) -> Result<StoreWrite> {
        if entries.is_empty() {
            return Ok(StoreWrite::Written);
        }
        for (_, frame) in entries {
            self.inner.check_size(frame)?;
        }
        if let Servers::Cluster(topology) = &self.inner.servers {
            return self.inner.set_many_by_node(topology, entries, ttl).await;
        }
        let mut pipe = redis::pipe();
        for (key, frame) in entries {
            pipe.cmd("SET")
                .arg(self.inner.redis_key(key))
                .arg(frame.as_ref())
                .arg("PX")
                .arg(ttl.as_millis())
                .ignore();
        }
        match self
            .inner
            .hot("SET (pipeline)", async move |c| {
                pipe.query_async::<()>(c).await
            })
            .await
        {
            Ok(()) => Ok(StoreWrite::Written),
            Err(e) if e.is_transient() => {
                let mut outcome = StoreWrite::Queued;
                for (key, frame) in entries {
                    let queued = self
                        .inner
                        .queue(StoreInner::pending_set(key, frame.clone(), ttl));
                    if queued == StoreWrite::Dropped {
                        outcome = StoreWrite::Dropped;
                    }
                }
                Ok(outcome)
            }
            Err(e) => Err(e),
        }
    }

    async fn set_if_absent(&self, key: &CacheKey, frame: Bytes, ttl: Ttl) -> Result<bool> {
        self.inner.check_size(&frame)?;
        let name = self.inner.redis_key(key);
        let reply = self
            .inner
            .hot_at(self.inner.route(&name), "SET NX", async move |c| {
                redis::cmd("SET")
                    .arg(&name)
                    .arg(frame.as_ref())
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl.as_millis())
                    .query_async::<Option<String>>(c)
                    .await
            })
            .await?;
        Ok(reply.is_some())
    }

    async fn set_unless_newer(
        &self,
        key: &CacheKey,
        frame: Bytes,
        expires_at_ms: u64,
    ) -> Result<bool> {
        self.inner.check_size(&frame)?;
        if expires_at_ms <= unix_millis() {
            return Ok(false);
        }
        let Stamp::WrittenAt(cached_at) = stamp(&frame) else {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "set_unless_newer needs a frame of this version",
            ));
        };
        let name = self.inner.redis_key(key);
        let node = self.inner.route(&name);
        let mut invocation = self.inner.set_if_newer.key(name);
        invocation
            .arg(frame.as_ref())
            .arg(cached_at)
            .arg(expires_at_ms);
        let applied = self
            .inner
            .hot_at(node, "SET if newer", async move |c| {
                invocation.invoke_async::<i64>(c).await
            })
            .await?;
        Ok(applied == 1)
    }

    async fn restore_many(
        &self,
        entries: &[cache_core::RestoreEntry],
        rule: cache_core::RestoreRule,
    ) -> Result<Vec<bool>> {
        self.inner.restore_many(entries, rule).await
    }

    async fn delete(&self, key: &CacheKey) -> Result<bool> {
        let queued = || Pending::Delete {
            key: key.clone(),
            at_ms: unix_millis(),
        };
        let mark = self.inner.replay.mark();
        match self.inner.remove_key(key, None).await {
            Ok(n) => {
                if let Ok(exact) = KeyPattern::new(escape_glob(key.as_str())) {
                    self.inner.after_removal(&exact, mark, queued);
                }
                Ok(n > 0)
            }
            Err(e) if e.is_transient() => {
                // Done on the primary but held by no replica, and no queue to finish it: the
                // caller must know.
                if self.inner.queue(queued()) == StoreWrite::Dropped
                    && e.message() == removals::UNREPLICATED
                {
                    return Err(e);
                }
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    async fn delete_if_unchanged(&self, key: &CacheKey, expected: Bytes) -> Result<bool> {
        let name = self.inner.redis_key(key);
        let node = self.inner.route(&name);
        let mut invocation = self.inner.delete_if_unchanged.key(name);
        invocation.arg(expected.as_ref());
        let removed = self
            .inner
            .hot_at(node, "UNLINK if unchanged", async move |c| {
                invocation.invoke_async::<i64>(c).await
            })
            .await?;
        Ok(removed > 0)
    }

    async fn delete_unless_newer(&self, key: &CacheKey, issued_at_ms: u64) -> Result<bool> {
        Ok(self.inner.remove_key(key, Some(issued_at_ms)).await? > 0)
    }

    async fn remaining_ttl(&self, key: &CacheKey) -> Result<Option<Duration>> {
        if self.inner.replay.removal_covers(key) {
            return Ok(None);
        }
        let name = self.inner.redis_key(key);
        let node = self.inner.route(&name);
        let invocation = self.inner.remaining_ttl.key(name);
        let ms = self
            .inner
            .hot_at(node, "PTTL", async move |c| {
                invocation.invoke_async::<i64>(c).await
            })
            .await?;
        Ok(match ms {
            // -2: no such key; -1: a key without expiry (never written by this cache).
            -2 => None,
            -1 => Some(Ttl::MAX),
            ms => Some(Duration::from_millis(u64::try_from(ms).unwrap_or(0))),
        })
    }

    async fn walk(
        &self,
        pattern: &KeyPattern,
        cursor: Option<WalkCursor>,
        mode: WalkMode,
    ) -> Result<WalkPage> {
        let inner = &self.inner;
        let mut position = WalkPosition::of(cursor.as_ref())?;
        if inner.link.connection()?.is_none() {
            return Err(unavailable());
        }
        // The first page reads a cluster's topology again: every primary must be visited.
        let (topology, shards) = inner.shards(cursor.is_none()).await?;
        // A cursor of another topology (a failover or a resharding since the last page) restarts
        // the walk: keys may repeat, none is skipped.
        if position.topology != topology {
            position = WalkPosition {
                topology,
                ..WalkPosition::default()
            };
        }
        let Some(shard) = shards.get(position.shard) else {
            return Ok(WalkPage::new(Vec::new(), None));
        };
        shard.check()?;
        let start = if shard.label == position.label {
            position.scan
        } else {
            0
        };
        let full = inner.full_pattern(pattern);
        let pool = &shard.pool;
        let mut conn = Some(pool.get().await?);
        let (next, keys) = scan_page(
            pool,
            &mut conn,
            start,
            (pattern, &full),
            &inner.prefix,
            inner.scan_count,
        )
        .await?;
        // Keys a removal still waiting for Redis covers are gone for every reader.
        let keys: Vec<CacheKey> = keys
            .into_iter()
            .filter(|key| !inner.replay.removal_covers(key))
            .collect();
        let entries = match mode {
            WalkMode::Frames => read_frames(pool, &mut conn, &inner.prefix, keys).await?,
            _ => without_tombstones(pool, &mut conn, (&inner.prefix, &inner.is_removed), keys)
                .await?
                .into_iter()
                .map(|key| cache_core::WalkEntry::new(key, None, None))
                .collect(),
        };
        let next = if next != 0 {
            Some(WalkPosition {
                shard: position.shard,
                topology,
                label: shard.label.clone(),
                scan: next,
            })
        } else {
            shards
                .get(position.shard + 1)
                .map(|following| WalkPosition {
                    shard: position.shard + 1,
                    topology,
                    label: following.label.clone(),
                    scan: 0,
                })
        };
        Ok(WalkPage::new(entries, next.map(|p| p.cursor())))
    }

    async fn remove_matching<'a>(
        &'a self,
        pattern: &'a KeyPattern,
        removed: RemovedSink<'a>,
    ) -> Result<u64> {
        let issued_at = unix_millis();
        let pending = || Pending::Invalidate {
            pattern: pattern.clone(),
            at_ms: issued_at,
        };
        let mark = self.inner.replay.mark();
        // Boxed: a cluster's walk over every primary makes a deep future, and callers nest this
        // one in theirs.
        match Box::pin(self.inner.remove_pattern(pattern, None, removed)).await {
            Ok(count) => {
                self.inner.after_removal(pattern, mark, pending);
                Ok(count)
            }
            Err(e) if e.is_transient() => {
                let queued = self.inner.queue(pending()) == StoreWrite::Queued;
                Err(invalidation_incomplete(pattern, Some(e), queued))
            }
            Err(e) => Err(e),
        }
    }

    async fn health(&self) -> HealthReport {
        if let Servers::Cluster(topology) = &self.inner.servers {
            return self.inner.cluster_health(topology).await;
        }
        let link = &self.inner.link;
        let started = Instant::now();
        let ping = self
            .inner
            .hot("PING", async move |c| {
                redis::cmd("PING").query_async::<String>(c).await
            })
            .await;
        let state = link.state();
        let l2 = if ping.is_ok() {
            L2Health::Connected {
                latency: started.elapsed(),
            }
        } else {
            L2Health::Unavailable {
                since: state.unavailable_for,
                last_error: state.last_error,
                next_probe_in: state.next_probe_in,
            }
        };
        let mut report = HealthReport::new(l2);
        report.breaker = Some(link.breaker_state());
        report.replay_queue_depth = self.inner.replay.depth();
        report.outages = state.outages;
        report.probes = state.probes;
        report
    }

    async fn server_memory(&self) -> Result<Option<RedisMemory>> {
        if let Servers::Cluster(topology) = &self.inner.servers {
            return self.inner.cluster_memory(topology).await;
        }
        let info = self
            .inner
            .hot("INFO memory", async move |c| {
                redis::cmd("INFO")
                    .arg("memory")
                    .query_async::<String>(c)
                    .await
            })
            .await;
        match info {
            Ok(text) => Ok(RedisMemory::parse_info(&text)),
            Err(e) if e.is_transient() => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn approximate_len(&self) -> Result<Option<u64>> {
        if let Servers::Cluster(topology) = &self.inner.servers {
            return self.inner.cluster_len(topology).await;
        }
        let size = self
            .inner
            .hot("DBSIZE", async move |c| {
                redis::cmd("DBSIZE").query_async::<u64>(c).await
            })
            .await;
        match size {
            Ok(size) => Ok(Some(size)),
            Err(e) if e.is_transient() => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn stats(&self) -> StoreStats {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let replay = self.inner.replay.counters();
        let mut stats = StoreStats::default();
        stats.errors = load(&self.inner.counters.errors);
        stats.skipped = load(&self.inner.counters.skipped);
        stats.requests = self.inner.counters.requests.get() + self.inner.walk_steps();
        stats.replay_queued = load(&replay.queued);
        stats.replay_dropped = load(&replay.dropped);
        stats.replay_superseded = load(&replay.superseded);
        stats.replayed = load(&replay.replayed);
        stats.replay_skipped = load(&replay.skipped);
        stats.replay_failed = load(&replay.failed);
        stats.replay_expired = load(&replay.expired);
        stats
    }

    async fn shutdown(&self, limit: Duration) -> ShutdownReport {
        flush(&self.inner, limit).await
    }
}
