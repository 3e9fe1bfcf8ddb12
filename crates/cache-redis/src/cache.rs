//! [`GenericRedisCache`]: a [`NearCache`] of bytes over a [`SharedTier`] (Redis by default).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cache_core::frame::{Codec, FrameCodec, FrameMeta};
use cache_core::{
    CacheKey, CacheOp, DynFrameStore, Error, ErrorKind, HealthReport, KeyPattern, Layer,
    MemoryReading, Namespace, Outcome, ReadReport, ReadStatus, Recorder, RedisMemory, Result,
    ShutdownReport, StoreWrite, Ttl, unix_millis,
};
use cache_memory::{Fill, InMemoryCache, Lookup, NearCache, ReadClock, SharedTier};

use crate::config::RedisCacheConfig;
use crate::events::{CacheEvent, CacheEventListener, Listeners};
use crate::stats::{CacheCounters, RedisCacheStats, bump};
use crate::store::RedisStore;

pub(crate) struct Inner {
    pub(crate) config: RedisCacheConfig,
    pub(crate) near: NearCache<Bytes>,
    pub(crate) l2: Option<SharedTier>,
    /// The same store as `l2`'s when it is a [`RedisStore`] built here: reads call it directly,
    /// without the boxed future of the dyn store.
    pub(crate) redis: Option<RedisStore>,
    pub(crate) default_ttl: Ttl,
    pub(crate) l1_max_ttl: Ttl,
    pub(crate) recorder: Option<Arc<dyn Recorder>>,
    pub(crate) listeners: Listeners,
    pub(crate) counters: CacheCounters,
    /// The namespace, held against overlapping caches of this process (shared stores only).
    _claim: Option<cache_core::NamespaceClaim>,
}

/// Redis (L2) behind an optional in-process L1; memory-only without a Redis URL.
///
/// Cloning is cheap and shares everything (connection, L1, counters).
///
/// # Behavior
/// - `get`: L1, then Redis. A Redis hit is promoted into L1 for `min(remaining TTL, l1_max_ttl)`,
///   the remaining TTL coming from the frame itself, unless a write or removal of the key began
///   after the read did ([`NearCache`]'s protocol).
/// - `set`: drops the L1 copy, writes Redis (`SET … PX`), then L1 for `min(ttl, l1_max_ttl)`.
///   While Redis is unavailable the value lands in L1 and the call succeeds; the write (and any
///   delete or invalidation) is queued, bounded by `replay_queue_capacity`, and replayed when Redis
///   returns, never over a newer value another instance wrote meanwhile.
/// - A circuit breaker opens after a connection error or `breaker_failure_threshold` timeouts in a
///   row; while open, calls skip Redis at no network cost and one probe at a time rebuilds the
///   connection. [`health`](Self::health) shows its state and the queue depth;
///   [`shutdown`](Self::shutdown) flushes the queue.
/// - A value too large for L1 is kept out of L1 and counted; Redis still holds it. In memory-only
///   mode it is refused with [`ErrorKind::CapacityExceeded`].
/// - Redis being unreachable never fails a call; wrong credentials or a denied permission do
///   ([`ErrorKind::Auth`]), also when they appear after an outage.
/// - Pattern walks (`scan`, `delete_pattern`, `clear`) run page by page on pooled connections of
///   their own, so they never queue in front of hot-path commands.
#[derive(Clone)]
pub struct GenericRedisCache {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for GenericRedisCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GenericRedisCache")
            .field("config", &self.inner.config)
            .field("l2", &self.inner.l2)
            .field("listeners", &self.inner.listeners)
            .finish_non_exhaustive()
    }
}

/// Builds a [`GenericRedisCache`]: everything a cache reports to is given here, before the cache
/// exists, so no setting can start failing once it is shared.
#[must_use]
pub struct GenericRedisCacheBuilder {
    config: RedisCacheConfig,
    recorder: Option<Arc<dyn Recorder>>,
    listeners: Vec<Arc<dyn CacheEventListener>>,
    store: Option<Arc<dyn DynFrameStore>>,
}

impl fmt::Debug for GenericRedisCacheBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GenericRedisCacheBuilder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl GenericRedisCacheBuilder {
    /// Sends measurements to `recorder` (see [`Recorder`]), breaker transitions included.
    pub fn recorder(mut self, recorder: Arc<dyn Recorder>) -> Self {
        self.recorder = Some(recorder);
        self
    }

    /// Adds a listener; it sees every event.
    pub fn listener(mut self, listener: Arc<dyn CacheEventListener>) -> Self {
        self.listeners.push(listener);
        self
    }

    /// Uses `store` as the shared tier instead of the Redis of `redis_url` (a Redis Cluster, a
    /// team's own store, or [`MemoryFrameStore`](cache_memory::MemoryFrameStore) in tests).
    pub fn store(mut self, store: Arc<dyn DynFrameStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Builds the cache and, when a Redis URL is configured (and no store was given), connects.
    ///
    /// Redis being unreachable is not an error: the cache starts degraded (see
    /// [`GenericRedisCache::health`]) and reconnects in the background.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] for an invalid configuration or URL; [`ErrorKind::Auth`] or
    /// [`ErrorKind::Tls`] when Redis refuses the connection.
    pub async fn connect(self) -> Result<GenericRedisCache> {
        cache_memory::calibrate_clock().await;
        let Self {
            config,
            recorder,
            listeners,
            store,
        } = self;
        config.validate().into_result()?;
        let redis = match &store {
            None if config.uses_redis() => {
                Some(RedisStore::connect(&config, recorder.clone()).await?)
            }
            _ => None,
        };
        let store: Option<Arc<dyn DynFrameStore>> = match (store, &redis) {
            (Some(store), _) => Some(store),
            (None, Some(redis)) => Some(Arc::new(redis.clone())),
            (None, None) => None,
        };
        let l2 = match store {
            Some(store) => Some(SharedTier::new(
                store,
                frame_codec(&config)?,
                recorder.clone(),
            )),
            None => None,
        };
        let claim = match &l2 {
            Some(l2) if l2.info().shared => {
                // The server: the URL this cache connected to, or the store object it was given.
                let scope = match (&redis, config.server_scope()) {
                    (Some(_), Some(scope)) => scope,
                    _ => format!("{}@{:p}", l2.info().kind, Arc::as_ptr(l2.store())),
                };
                Some(Namespace::generic(&l2.info().namespace)?.claim(&scope)?)
            }
            _ => None,
        };
        let registered = Listeners::default();
        for listener in listeners {
            registered.add(listener);
        }
        Ok(GenericRedisCache {
            inner: Arc::new(Inner {
                near: NearCache::new(config.l1.clone())?,
                default_ttl: Ttl::new(config.default_ttl)?,
                l1_max_ttl: Ttl::new(config.l1_max_ttl)?,
                config,
                l2,
                redis,
                recorder,
                listeners: registered,
                counters: CacheCounters::default(),
                _claim: claim,
            }),
        })
    }
}

/// The frame codec `config` asks for: compression, its level and threshold, the size limit and
/// encryption.
///
/// # Errors
/// [`ErrorKind::Config`] when the encryption settings do not build a cipher.
pub fn frame_codec(config: &RedisCacheConfig) -> Result<FrameCodec> {
    let cipher: Option<Arc<dyn cache_core::Cipher>> = match &config.encryption {
        Some(encryption) => Some(Arc::new(encryption.build()?)),
        None => None,
    };
    Ok(config.frame_settings().codec(cipher))
}

impl GenericRedisCache {
    /// Builds and connects a cache with nothing attached (see [`builder`](Self::builder)).
    ///
    /// # Errors
    /// As [`GenericRedisCacheBuilder::connect`].
    pub async fn connect(config: RedisCacheConfig) -> Result<Self> {
        Self::builder(config).connect().await
    }

    /// A builder: recorder, listeners and the store are given before the cache exists.
    pub fn builder(config: RedisCacheConfig) -> GenericRedisCacheBuilder {
        GenericRedisCacheBuilder {
            config,
            recorder: None,
            listeners: Vec::new(),
            store: None,
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &RedisCacheConfig {
        &self.inner.config
    }

    /// The L1, when on.
    pub fn l1(&self) -> Option<&InMemoryCache<Bytes>> {
        self.inner.near.l1()
    }

    /// The shared tier, when configured.
    pub fn l2(&self) -> Option<&SharedTier> {
        self.inner.l2.as_ref()
    }

    /// Whether a shared tier is configured.
    pub fn has_l2(&self) -> bool {
        self.inner.l2.is_some()
    }

    /// Whether the shared tier is configured and currently available.
    pub fn is_l2_available(&self) -> bool {
        self.inner.l2.as_ref().is_some_and(SharedTier::is_available)
    }

    /// The Redis key under which `key` is stored: `{key_prefix}:{key}`.
    pub fn redis_key(&self, key: &CacheKey) -> String {
        let mut out = String::with_capacity(self.inner.config.key_prefix.len() + 1 + key.len());
        out.push_str(&self.inner.config.key_prefix);
        out.push(':');
        out.push_str(key.as_str());
        out
    }

    /// The counters.
    pub fn stats(&self) -> RedisCacheStats {
        RedisCacheStats::assemble(
            self.inner.near.l1().map(InMemoryCache::stats),
            self.inner.l2.as_ref().map(SharedTier::stats),
            &self.inner.counters,
            self.inner.listeners.failures(),
        )
    }

    /// Checks the shared tier (a `PING` when it is available) and reports both tiers.
    pub async fn health(&self) -> HealthReport {
        let l1_entries = self.inner.near.l1().map(|l1| l1.stats().entries);
        let report = match &self.inner.l2 {
            Some(l2) => l2.store().health().await,
            None => HealthReport::disabled(),
        };
        report.with_l1_entries(l1_entries)
    }

    /// Redis's `INFO memory` figures; `Ok(None)` when Redis is absent, unavailable, or answers
    /// without `used_memory`.
    ///
    /// # Errors
    /// Redis errors other than unavailability, for example [`ErrorKind::Auth`] when an ACL user may
    /// not run `INFO`.
    pub async fn redis_memory(&self) -> Result<Option<RedisMemory>> {
        match &self.inner.l2 {
            Some(l2) => l2.store().server_memory().await,
            None => Ok(None),
        }
    }

    /// Takes a memory reading of both tiers (L1 figures and Redis `INFO memory`), hands it to the
    /// recorder (monitoring does no I/O of its own: call this periodically, for example from a
    /// metrics scrape) and returns it.
    ///
    /// # Errors
    /// As [`redis_memory`](Self::redis_memory).
    pub async fn report_memory(&self) -> Result<MemoryReading> {
        let mut reading = self
            .inner
            .near
            .l1()
            .map(|l1| l1.stats().memory_reading())
            .unwrap_or_default();
        reading.redis = self.redis_memory().await?;
        if let Some(recorder) = &self.inner.recorder {
            recorder.record_memory(&reading);
        }
        Ok(reading)
    }

    /// Flushes the replay queue to Redis, waiting up to `limit` for it to come back, and reports
    /// what was flushed and what is left (lost when the process exits). It returns once nothing
    /// is queued and nothing is being replayed (an item the background replayer holds is waited
    /// for, and counted as left if the limit passes first). Call it before the process ends; the
    /// cache stays usable afterwards.
    pub async fn shutdown(&self, limit: Duration) -> ShutdownReport {
        match &self.inner.l2 {
            Some(l2) => l2.store().shutdown(limit).await,
            None => ShutdownReport::default(),
        }
    }

    /// Reads `key` like [`get`](cache_core::CacheInterface::get) and reports who answered
    /// ([`ReadStatus`]) with the time spent in each layer.
    ///
    /// # Errors
    /// As `get`.
    pub async fn get_with_status(&self, key: &CacheKey) -> Result<(Option<Bytes>, ReadReport)> {
        let asks_redis = self.is_l2_available();
        let started = Instant::now();
        let (value, layer) = self.read(key, Some(started)).await?;
        let status = match (&value, layer) {
            (None, _) => ReadStatus::Miss,
            (Some(_), Layer::L1) => ReadStatus::HitL1,
            (Some(_), _) => ReadStatus::HitL2,
        };
        let mut report = ReadReport::new(status);
        if self.inner.near.l1().is_some() {
            report = report.with_l1_time(if status == ReadStatus::HitL1 {
                started.elapsed()
            } else {
                Duration::ZERO
            });
        }
        if asks_redis && status != ReadStatus::HitL1 {
            report = report.with_l2_time(started.elapsed());
        }
        Ok((value, report))
    }

    /// Removes the keys matching `pattern` from L1 and Redis; returns how many distinct keys were
    /// removed. (`delete_pattern` and `clear` return this.)
    ///
    /// # Errors
    /// [`ErrorKind::Unavailable`] when Redis is configured but could not be walked (unavailable, or
    /// the walk failed part-way): L1 has been cleaned and the invalidation is queued for replay
    /// (with replay on), but Redis may still hold matching keys now, so it is not reported as
    /// done. Other Redis errors as they come.
    pub async fn delete_matching(&self, pattern: &KeyPattern) -> Result<u64> {
        let started = self.clock();
        let store = self.inner.l2.as_ref().map(|l2| l2.store().as_ref());
        let count = self
            .inner
            .near
            .invalidate_through(pattern, store.as_slice())
            .await?;
        if let Some(recorder) = &self.inner.recorder {
            recorder.record_invalidation(pattern.as_str(), count);
        }
        self.record(CacheOp::DeletePattern, Layer::L2, Outcome::Done, started);
        Ok(count)
    }

    /// L1, then the shared tier; returns the value and the layer that answered (or was asked).
    pub(crate) async fn read(
        &self,
        key: &CacheKey,
        started: Option<Instant>,
    ) -> Result<(Option<Bytes>, Layer)> {
        if let Some(value) = self.l1_hit(key, started) {
            return Ok((Some(value), Layer::L1));
        }
        self.read_after_l1_miss(key, started).await
    }

    /// The rest of a read once L1 missed: the shared tier, promotion, recording.
    pub(crate) async fn read_after_l1_miss(
        &self,
        key: &CacheKey,
        started: Option<Instant>,
    ) -> Result<(Option<Bytes>, Layer)> {
        let near = &self.inner.near;
        let lookup = match &self.inner.l2 {
            None => Ok(Lookup::<Bytes, Bytes>::Miss),
            Some(l2) => {
                let ticket = near.begin_read(key.as_str());
                // One reading of the wall clock for the expiry check and the promotion's TTL.
                let mut clock = ReadClock::default();
                let frame = match &self.inner.redis {
                    Some(redis) => {
                        let fetched = cache_core::FrameStore::get(redis, key).await;
                        l2.accept_with(key, fetched, 0, &mut clock).await
                    }
                    None => l2.read_with(key, 0, &mut clock).await,
                };
                frame.map(|frame| match frame {
                    None => Lookup::Miss,
                    Some(frame) => {
                        // Without L1 nothing is promoted: no second handle of the payload.
                        let ttl = near.l1().and_then(|_| {
                            Ttl::from_millis(frame.meta.remaining_ms(clock.now())).ok()
                        });
                        let fill = match ttl {
                            Some(ttl) => near.promote(
                                key,
                                ticket,
                                frame.payload.clone(),
                                ttl.min(self.inner.l1_max_ttl),
                            ),
                            _ => Fill::Skipped,
                        };
                        Lookup::L2(frame.payload, fill)
                    }
                })
            }
        };
        let layer = self.l2_layer();
        match lookup {
            Ok(Lookup::L2(value, fill)) => {
                if fill == Fill::TooLarge {
                    bump(&self.inner.counters.l1_skipped_too_large);
                }
                self.record(CacheOp::Get, layer, Outcome::Hit, started);
                self.fire(CacheEvent::GetSuccess {
                    key,
                    value: &value,
                    layer,
                });
                Ok((Some(value), layer))
            }
            Ok(_) => {
                self.record(CacheOp::Get, layer, Outcome::Miss, started);
                self.fire(CacheEvent::GetMiss { key });
                Ok((None, layer))
            }
            Err(e) => {
                self.record(CacheOp::Get, layer, Outcome::Failed(e.kind()), started);
                Err(e)
            }
        }
    }

    /// A counted L1 read, recorded and reported when it hits.
    #[inline]
    pub(crate) fn l1_hit(&self, key: &CacheKey, started: Option<Instant>) -> Option<Bytes> {
        let value = self.inner.near.get(key.as_str())?;
        self.record(CacheOp::Get, Layer::L1, Outcome::Hit, started);
        self.fire(CacheEvent::GetSuccess {
            key,
            value: &value,
            layer: Layer::L1,
        });
        Some(value)
    }

    pub(crate) async fn write(
        &self,
        key: &CacheKey,
        mut value: Bytes,
        ttl: Option<Ttl>,
    ) -> Result<()> {
        let started = self.clock();
        let ttl = ttl.unwrap_or(self.inner.default_ttl);
        let layer = self.l2_layer();
        self.check_value_size(value.len())?;
        let Some(l2) = &self.inner.l2 else {
            // Memory-only: L1 is all there is, so a value too large for it is an error.
            if let Some(l1) = self.inner.near.l1() {
                l1.check_size(value.len())?;
            }
            // Cloned only for listeners: a clone turns a caller's `Vec`-backed `Bytes` into a
            // shared one, an allocation per entry.
            let shown = (!self.inner.listeners.is_empty()).then(|| value.clone());
            self.inner.near.insert(key, value, ttl);
            self.record(CacheOp::Set, layer, Outcome::Done, started);
            if let Some(value) = &shown {
                self.fire(CacheEvent::SetSuccess { key, value });
            }
            return Ok(());
        };
        let meta = fresh_meta(ttl);
        let l1_ttl = ttl.min(self.inner.l1_max_ttl);
        // Without L1 and listeners nothing needs the value after the write: Redis takes it as
        // it is (sharing it would cost an allocation a write).
        let payload = if self.inner.near.l1().is_some() || !self.inner.listeners.is_empty() {
            value.clone()
        } else {
            std::mem::take(&mut value)
        };
        let (written, fill) = self
            .inner
            .near
            .write(
                key,
                l2.write(key, &meta, Codec::Raw, payload, ttl),
                |written| written.is_ok().then(|| (value.clone(), l1_ttl)),
            )
            .await;
        match written {
            Ok(StoreWrite::Written) => {}
            Ok(_) if self.inner.near.l1().is_some() => {
                bump(&self.inner.counters.writes_l1_only);
            }
            Ok(StoreWrite::Queued) => {}
            Ok(_) => bump(&self.inner.counters.writes_dropped),
            Err(e) => {
                self.record(CacheOp::Set, layer, Outcome::Failed(e.kind()), started);
                return Err(e);
            }
        }
        if fill == Fill::TooLarge {
            bump(&self.inner.counters.l1_skipped_too_large);
        }
        self.record(CacheOp::Set, layer, Outcome::Done, started);
        self.fire(CacheEvent::SetSuccess { key, value: &value });
        Ok(())
    }

    pub(crate) fn record(
        &self,
        op: CacheOp,
        layer: Layer,
        outcome: Outcome,
        started: Option<Instant>,
    ) {
        if let (Some(recorder), Some(started)) = (&self.inner.recorder, started) {
            recorder.record_operation(op, layer, outcome, started.elapsed());
        }
    }

    pub(crate) fn clock(&self) -> Option<Instant> {
        self.inner.recorder.as_ref().map(|_| Instant::now())
    }

    pub(crate) fn fire(&self, event: CacheEvent<'_>) {
        if !self.inner.listeners.is_empty() {
            self.inner.listeners.fire(&event);
        }
    }

    pub(crate) fn l2_layer(&self) -> Layer {
        if self.inner.l2.is_some() {
            Layer::L2
        } else {
            Layer::L1
        }
    }

    pub(crate) fn check_value_size(&self, size: usize) -> Result<()> {
        let max = cache_core::CacheInterface::capabilities(self).max_value_size;
        if size > max {
            return Err(
                Error::new(ErrorKind::CapacityExceeded, "value is too large")
                    .with_context("size", size)
                    .with_context("allowed", format!("0..={max} bytes")),
            );
        }
        Ok(())
    }
}

/// Metadata for a raw value written now for `ttl`.
pub(crate) fn fresh_meta(ttl: Ttl) -> FrameMeta {
    let now = unix_millis();
    FrameMeta::new(now, now.saturating_add(ttl.as_millis()))
}
