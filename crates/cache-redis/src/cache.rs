//! [`GenericRedisCache`]: the two-tier cache.

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cache_core::frame::{Codec, Frame, FrameCodec, FrameMeta};
use cache_core::{
    CacheInterface, CacheKey, CacheOp, Capabilities, Error, ErrorKind, KeyPattern, Layer, Outcome,
    Recorder, Result, Ttl, escape_glob, unix_millis,
};
use cache_memory::{InMemoryCache, MemoryCacheStats};
use redis::aio::ConnectionManager;

use crate::config::RedisCacheConfig;
use crate::connection::{ConnectionFactory, map_redis_error, with_timeout};
use crate::events::{CacheEvent, CacheEventListener, Listeners};
use crate::link::L2Link;

/// Counters of a [`GenericRedisCache`].
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct RedisCacheStats {
    /// The L1's counters, when L1 is on.
    pub l1: Option<MemoryCacheStats>,
    /// Reads answered by Redis.
    pub l2_hits: u64,
    /// Reads Redis did not answer with a value (absent, expired or undecodable).
    pub l2_misses: u64,
    /// Redis calls that failed (including timeouts).
    pub l2_errors: u64,
    /// Reads that skipped Redis because it was unavailable.
    pub l2_skipped: u64,
    /// Stored values that were not valid frames; each was deleted.
    pub corrupt_entries: u64,
    /// Values kept out of L1 because they were too large for it (Redis still holds them).
    pub l1_skipped_too_large: u64,
    /// Writes Redis could not take that are held by L1 alone.
    pub writes_l1_only: u64,
    /// Listener calls that failed or panicked.
    pub listener_failures: u64,
}

/// The state of the Redis tier, as [`GenericRedisCache::health`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum L2Health {
    /// No Redis is configured: memory-only.
    Disabled,
    /// Redis answered `PING`.
    Connected {
        /// The round trip of the health `PING`.
        latency: Duration,
    },
    /// Redis is unavailable; the cache serves from L1.
    Unavailable {
        /// How long it has been unavailable, when known.
        since: Option<Duration>,
        /// The last error seen.
        last_error: Option<String>,
        /// When the next background probe may run.
        next_probe_in: Option<Duration>,
    },
}

/// What [`GenericRedisCache::health`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HealthReport {
    /// The Redis tier.
    pub l2: L2Health,
    /// Live L1 entries, when L1 is on.
    pub l1_entries: Option<u64>,
    /// How many times Redis went from available to unavailable.
    pub outages: u64,
}

#[derive(Default)]
struct Counters {
    l2_hits: AtomicU64,
    l2_misses: AtomicU64,
    l2_errors: AtomicU64,
    l2_skipped: AtomicU64,
    corrupt_entries: AtomicU64,
    l1_skipped_too_large: AtomicU64,
    writes_l1_only: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

struct Inner {
    config: RedisCacheConfig,
    l1: Option<InMemoryCache<Bytes>>,
    link: Option<Arc<L2Link>>,
    codec: FrameCodec,
    default_ttl: Ttl,
    l1_max_ttl: Ttl,
    prefix: String,
    scan_prefix: String,
    recorder: Option<Arc<dyn Recorder>>,
    listeners: Listeners,
    counters: Counters,
}

/// Redis (L2) behind an optional in-process L1; memory-only without a Redis URL.
///
/// Cloning is cheap and shares everything (connection, L1, counters).
///
/// # Behavior
/// - `get`: L1, then Redis. A Redis hit is promoted into L1 for `min(remaining TTL, l1_max_ttl)`,
///   the remaining TTL coming from the frame itself.
/// - `set`: Redis (`SET … PX`), then L1 for `min(ttl, l1_max_ttl)`. While Redis is unavailable the
///   value lands in L1 alone and the call succeeds.
/// - A value too large for L1 is kept out of L1 and counted; Redis still holds it. In memory-only
///   mode it is refused with [`ErrorKind::CapacityExceeded`].
/// - Redis being unreachable never fails a call; wrong credentials or a denied permission do
///   ([`ErrorKind::Auth`]).
#[derive(Clone)]
pub struct GenericRedisCache {
    inner: Arc<Inner>,
}

impl fmt::Debug for GenericRedisCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GenericRedisCache")
            .field("config", &self.inner.config)
            .field("link", &self.inner.link)
            .field("listeners", &self.inner.listeners)
            .finish_non_exhaustive()
    }
}

impl GenericRedisCache {
    /// Builds the cache and, when a Redis URL is configured, probes Redis once.
    ///
    /// Redis being unreachable is not an error: the cache starts degraded (see [`health`](Self::health))
    /// and reconnects in the background.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] for an invalid configuration or URL; [`ErrorKind::Auth`] when Redis
    /// refuses the credentials; [`ErrorKind::Tls`] when the TLS handshake fails.
    pub async fn connect(config: RedisCacheConfig) -> Result<Self> {
        config.validate().into_result()?;
        let l1 = config.l1.clone().map(InMemoryCache::new).transpose()?;
        let link = match &config.redis_url {
            Some(url) => {
                let factory = ConnectionFactory::new(url, &config)?;
                Some(
                    L2Link::connect(
                        factory,
                        config.reconnect_min_delay,
                        config.reconnect_max_delay,
                    )
                    .await?,
                )
            }
            None => None,
        };
        let codec = FrameCodec::new()
            .with_compression(config.compression)
            .with_compression_threshold(config.compression_threshold)
            .with_max_payload(config.max_value_size);
        let prefix = format!("{}:", config.key_prefix);
        let scan_prefix = escape_glob(&prefix);
        Ok(Self {
            inner: Arc::new(Inner {
                default_ttl: Ttl::new(config.default_ttl)?,
                l1_max_ttl: Ttl::new(config.l1_max_ttl)?,
                config,
                l1,
                link,
                codec,
                prefix,
                scan_prefix,
                recorder: None,
                listeners: Listeners::default(),
                counters: Counters::default(),
            }),
        })
    }

    /// Sends measurements to `recorder` (see [`Recorder`]). Call before sharing the cache.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] when the cache has already been cloned.
    pub fn set_recorder(&mut self, recorder: Arc<dyn Recorder>) -> Result<()> {
        let inner = Arc::get_mut(&mut self.inner).ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidInput,
                "set the recorder before cloning the cache",
            )
        })?;
        inner.recorder = Some(recorder);
        Ok(())
    }

    /// Adds a listener; it sees every later event.
    pub fn add_listener(&self, listener: Arc<dyn CacheEventListener>) {
        self.inner.listeners.add(listener);
    }

    /// The configuration in force.
    pub fn config(&self) -> &RedisCacheConfig {
        &self.inner.config
    }

    /// The L1, when on.
    pub fn l1(&self) -> Option<&InMemoryCache<Bytes>> {
        self.inner.l1.as_ref()
    }

    /// Whether Redis is configured and currently available.
    pub fn is_l2_available(&self) -> bool {
        self.inner
            .link
            .as_ref()
            .is_some_and(|link| link.is_available())
    }

    /// The Redis key under which `key` is stored: `{key_prefix}:{key}`.
    pub fn redis_key(&self, key: &CacheKey) -> String {
        let mut out = String::with_capacity(self.inner.prefix.len() + key.len());
        out.push_str(&self.inner.prefix);
        out.push_str(key.as_str());
        out
    }

    /// The counters.
    pub fn stats(&self) -> RedisCacheStats {
        let c = &self.inner.counters;
        RedisCacheStats {
            l1: self.inner.l1.as_ref().map(InMemoryCache::stats),
            l2_hits: c.l2_hits.load(Ordering::Relaxed),
            l2_misses: c.l2_misses.load(Ordering::Relaxed),
            l2_errors: c.l2_errors.load(Ordering::Relaxed),
            l2_skipped: c.l2_skipped.load(Ordering::Relaxed),
            corrupt_entries: c.corrupt_entries.load(Ordering::Relaxed),
            l1_skipped_too_large: c.l1_skipped_too_large.load(Ordering::Relaxed),
            writes_l1_only: c.writes_l1_only.load(Ordering::Relaxed),
            listener_failures: self.inner.listeners.failures(),
        }
    }

    /// Checks Redis with a `PING` (when it is available) and reports both tiers.
    pub async fn health(&self) -> HealthReport {
        let l1_entries = self.inner.l1.as_ref().map(|l1| l1.stats().entries);
        let Some(link) = &self.inner.link else {
            return HealthReport {
                l2: L2Health::Disabled,
                l1_entries,
                outages: 0,
            };
        };
        if let Some(mut conn) = link.connection() {
            let started = Instant::now();
            let ping = self
                .run("PING", async {
                    redis::cmd("PING").query_async::<String>(&mut conn).await
                })
                .await;
            if ping.is_ok() {
                return HealthReport {
                    l2: L2Health::Connected {
                        latency: started.elapsed(),
                    },
                    l1_entries,
                    outages: link.state().outages,
                };
            }
        }
        let state = link.state();
        HealthReport {
            l2: L2Health::Unavailable {
                since: state.unavailable_for,
                last_error: state.last_error,
                next_probe_in: state.next_probe_in,
            },
            l1_entries,
            outages: state.outages,
        }
    }

    /// Runs one Redis command under our timeout, mapping and counting failures; a connection-class
    /// failure marks Redis unavailable.
    async fn run<T>(
        &self,
        what: &'static str,
        command: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T> {
        let limit = self.inner.config.command_timeout;
        let result = with_timeout(limit, what, async {
            command
                .await
                .map_err(|e| map_redis_error(e, "Redis command failed"))
        })
        .await;
        if let Err(e) = &result {
            bump(&self.inner.counters.l2_errors);
            if let Some(link) = &self.inner.link {
                link.observe(e);
            }
            tracing::debug!(operation = what, error = %e, "Redis command failed");
        }
        result
    }

    /// The shared connection, or `None` when Redis is absent or unavailable.
    fn connection(&self) -> Option<ConnectionManager> {
        self.inner.link.as_ref().and_then(|link| link.connection())
    }

    fn record(&self, op: CacheOp, layer: Layer, outcome: Outcome, started: Option<Instant>) {
        if let (Some(recorder), Some(started)) = (&self.inner.recorder, started) {
            recorder.record_operation(op, layer, outcome, started.elapsed());
        }
    }

    fn clock(&self) -> Option<Instant> {
        self.inner.recorder.as_ref().map(|_| Instant::now())
    }

    fn fire(&self, event: CacheEvent<'_>) {
        if !self.inner.listeners.is_empty() {
            self.inner.listeners.fire(&event);
        }
    }

    /// Stores `value` in L1 for `ttl` (bounded by `l1_max_ttl` when Redis backs it).
    fn fill_l1(&self, key: &CacheKey, value: &Bytes, ttl: Ttl) -> Result<()> {
        let Some(l1) = &self.inner.l1 else {
            return Ok(());
        };
        let ttl = if self.inner.link.is_some() {
            ttl.min(self.inner.l1_max_ttl)
        } else {
            ttl
        };
        match l1.insert(key.clone(), value.clone(), ttl) {
            Err(e) if e.kind() == ErrorKind::CapacityExceeded && self.inner.link.is_some() => {
                bump(&self.inner.counters.l1_skipped_too_large);
                Ok(())
            }
            other => other,
        }
    }

    fn check_value_size(&self, size: usize) -> Result<()> {
        let max = self.capabilities().max_value_size;
        if size > max {
            return Err(
                Error::new(ErrorKind::CapacityExceeded, "value is too large")
                    .with_context("size", size)
                    .with_context("allowed", format!("0..={max} bytes")),
            );
        }
        Ok(())
    }

    /// Decodes a value read from Redis. An invalid frame is deleted, counted and reported as a
    /// miss; so is a frame past its own expiry.
    async fn decode_frame(&self, key: &CacheKey, redis_key: &str, raw: Vec<u8>) -> Option<Frame> {
        match self.inner.codec.decode(redis_key, Bytes::from(raw)) {
            Ok(frame) if frame.meta.remaining_ms(unix_millis()) > 0 => Some(frame),
            Ok(_) => None,
            Err(e) => {
                bump(&self.inner.counters.corrupt_entries);
                if let Some(recorder) = &self.inner.recorder {
                    recorder.record_corrupt_entry(Layer::L2, e.kind());
                }
                tracing::warn!(error = %e, key = %key, "undecodable value in Redis; deleting it");
                if let Some(mut conn) = self.connection() {
                    let _ = self
                        .run("UNLINK", async {
                            redis::cmd("UNLINK")
                                .arg(redis_key)
                                .query_async::<i64>(&mut conn)
                                .await
                        })
                        .await;
                }
                None
            }
        }
    }

    /// Reads the frame stored in Redis under `key`, bypassing this cache's L1.
    ///
    /// `Ok(None)` when Redis is absent or unavailable, when the key is missing or expired, and when
    /// the stored bytes are not a valid frame (they are then deleted and counted). Layers above
    /// (the AI cache) use this with their own L1 of decoded values.
    ///
    /// # Errors
    /// Redis errors other than unavailability, for example [`ErrorKind::Auth`].
    pub async fn get_entry(&self, key: &CacheKey) -> Result<Option<Frame>> {
        let Some(mut conn) = self.connection() else {
            if self.inner.link.is_some() {
                bump(&self.inner.counters.l2_skipped);
            }
            return Ok(None);
        };
        let redis_key = self.redis_key(key);
        let read = self
            .run("GET", async {
                redis::cmd("GET")
                    .arg(&redis_key)
                    .query_async::<Option<Vec<u8>>>(&mut conn)
                    .await
            })
            .await;
        let frame = match read {
            Ok(Some(raw)) => self.decode_frame(key, &redis_key, raw).await,
            Ok(None) => None,
            Err(e) if e.is_transient() => None,
            Err(e) => return Err(e),
        };
        let counter = if frame.is_some() {
            &self.inner.counters.l2_hits
        } else {
            &self.inner.counters.l2_misses
        };
        bump(counter);
        Ok(frame)
    }

    /// Writes a framed entry to Redis under `key` for `ttl`, bypassing this cache's L1.
    ///
    /// Returns `Ok(false)` when Redis is absent or unavailable (the write is counted in
    /// [`RedisCacheStats::writes_l1_only`]).
    ///
    /// # Errors
    /// [`ErrorKind::CapacityExceeded`] above `max_value_size`; Redis errors other than
    /// unavailability.
    pub async fn set_entry(
        &self,
        key: &CacheKey,
        codec: Codec,
        meta: &FrameMeta,
        payload: &[u8],
        ttl: Ttl,
    ) -> Result<bool> {
        self.check_value_size(payload.len())?;
        let Some(mut conn) = self.connection() else {
            if self.inner.link.is_some() {
                bump(&self.inner.counters.writes_l1_only);
            }
            return Ok(false);
        };
        let redis_key = self.redis_key(key);
        let frame = self.encode(&redis_key, meta, codec, payload)?;
        let written = self
            .run("SET", async {
                redis::cmd("SET")
                    .arg(&redis_key)
                    .arg(frame)
                    .arg("PX")
                    .arg(ttl.as_millis())
                    .query_async::<()>(&mut conn)
                    .await
            })
            .await;
        match written {
            Ok(()) => Ok(true),
            Err(e) if e.is_transient() => {
                bump(&self.inner.counters.writes_l1_only);
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    fn encode(
        &self,
        redis_key: &str,
        meta: &FrameMeta,
        codec: Codec,
        value: &[u8],
    ) -> Result<Vec<u8>> {
        let started = self.clock();
        let encoded = self.inner.codec.encode(redis_key, meta, codec, value)?;
        if let (Some(recorder), Some(started)) = (&self.inner.recorder, started)
            && encoded.compression != cache_core::frame::Compression::None
        {
            recorder.record_compression(
                encoded.original_size,
                encoded.bytes.len(),
                started.elapsed(),
            );
        }
        Ok(encoded.bytes)
    }

    /// Removes the keys matching `pattern` from L1 and Redis and returns them, each once.
    ///
    /// While Redis is unavailable only L1 is cleaned. (`delete_pattern` returns the count of this.)
    ///
    /// # Errors
    /// Redis errors other than unavailability.
    pub async fn delete_matching(&self, pattern: &KeyPattern) -> Result<Vec<CacheKey>> {
        let started = self.clock();
        let mut removed: HashSet<CacheKey> = self
            .inner
            .l1
            .as_ref()
            .map(|l1| l1.remove_matching(pattern).into_iter().collect())
            .unwrap_or_default();
        if let Some(mut conn) = self.connection() {
            let outcome = match self.scan_l2(&mut conn, pattern).await {
                Ok(found) => self.unlink_l2(&mut conn, &found).await,
                Err(e) => Err(e),
            };
            match outcome {
                Ok(gone) => removed.extend(gone),
                Err(e) if e.is_transient() => {}
                Err(e) => return Err(e),
            }
        }
        if let Some(recorder) = &self.inner.recorder {
            let count = u64::try_from(removed.len()).unwrap_or(u64::MAX);
            recorder.record_invalidation(pattern.as_str(), count);
        }
        self.record(CacheOp::DeletePattern, Layer::L2, Outcome::Done, started);
        Ok(removed.into_iter().collect())
    }

    /// Metadata for a raw value written now for `ttl`.
    fn fresh_meta(&self, ttl: Ttl) -> FrameMeta {
        let now = unix_millis();
        FrameMeta::new(now, now.saturating_add(ttl.as_millis()))
    }

    /// Writes a raw value to Redis (when configured); a value too large is refused first.
    async fn write_raw(&self, key: &CacheKey, value: &[u8], ttl: Ttl) -> Result<()> {
        self.check_value_size(value.len())?;
        if self.inner.link.is_some() {
            self.set_entry(key, Codec::Raw, &self.fresh_meta(ttl), value, ttl)
                .await?;
        }
        Ok(())
    }

    /// Copies a frame read from Redis into L1 for the time the frame has left.
    fn promote(&self, key: &CacheKey, frame: &Frame) {
        let Ok(ttl) = Ttl::from_millis(frame.meta.remaining_ms(unix_millis())) else {
            return;
        };
        if let Err(e) = self.fill_l1(key, &frame.payload, ttl) {
            tracing::debug!(error = %e, "value not promoted into L1");
        }
    }

    /// Walks `SCAN MATCH` over the namespace and returns the logical keys found, each once.
    async fn scan_l2(
        &self,
        conn: &mut ConnectionManager,
        pattern: &KeyPattern,
    ) -> Result<Vec<CacheKey>> {
        let full = format!("{}{}", self.inner.scan_prefix, pattern.as_str());
        let mut cursor: u64 = 0;
        let mut seen = HashSet::new();
        let mut keys = Vec::new();
        loop {
            let (next, batch) = self
                .run("SCAN", async {
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&full)
                        .arg("COUNT")
                        .arg(self.inner.config.scan_count)
                        .query_async::<(u64, Vec<Vec<u8>>)>(conn)
                        .await
                })
                .await?;
            for raw in batch {
                let Ok(name) = String::from_utf8(raw) else {
                    continue;
                };
                let Some(logical) = name.strip_prefix(&self.inner.prefix) else {
                    continue;
                };
                if seen.insert(logical.to_string())
                    && let Ok(key) = CacheKey::new(logical)
                {
                    keys.push(key);
                }
            }
            if next == 0 {
                return Ok(keys);
            }
            cursor = next;
        }
    }

    /// Deletes `keys` from Redis with pipelined `UNLINK`s and returns the ones that existed.
    async fn unlink_l2(
        &self,
        conn: &mut ConnectionManager,
        keys: &[CacheKey],
    ) -> Result<Vec<CacheKey>> {
        let mut removed = Vec::new();
        for batch in keys.chunks(self.inner.config.scan_count.max(1)) {
            let mut pipe = redis::pipe();
            for key in batch {
                pipe.cmd("UNLINK").arg(self.redis_key(key));
            }
            let replies = self
                .run("UNLINK", async { pipe.query_async::<Vec<i64>>(conn).await })
                .await?;
            removed.extend(
                batch
                    .iter()
                    .zip(replies)
                    .filter(|(_, reply)| *reply > 0)
                    .map(|(key, _)| key.clone()),
            );
        }
        Ok(removed)
    }
}

#[deny(clippy::missing_trait_methods)]
impl CacheInterface for GenericRedisCache {
    fn capabilities(&self) -> Capabilities {
        match (&self.inner.link, &self.inner.l1) {
            (Some(_), _) => Capabilities::new(self.inner.config.max_value_size)
                .shared(true)
                .survives_restart(true),
            (None, Some(l1)) => {
                Capabilities::new(l1.max_value_size().min(self.inner.config.max_value_size))
            }
            (None, None) => Capabilities::new(0),
        }
    }

    async fn get(&self, key: &CacheKey) -> Result<Option<Bytes>> {
        let started = self.clock();
        if let Some(value) = self.inner.l1.as_ref().and_then(|l1| l1.fetch(key.as_str())) {
            self.record(CacheOp::Get, Layer::L1, Outcome::Hit, started);
            self.fire(CacheEvent::GetSuccess {
                key,
                value: &value,
                layer: Layer::L1,
            });
            return Ok(Some(value));
        }
        let layer = if self.inner.link.is_some() {
            Layer::L2
        } else {
            Layer::L1
        };
        let frame = match self.get_entry(key).await {
            Ok(frame) => frame,
            Err(e) => {
                self.record(CacheOp::Get, layer, Outcome::Failed(e.kind()), started);
                return Err(e);
            }
        };
        let Some(frame) = frame else {
            self.record(CacheOp::Get, layer, Outcome::Miss, started);
            self.fire(CacheEvent::GetMiss { key });
            return Ok(None);
        };
        self.promote(key, &frame);
        self.record(CacheOp::Get, layer, Outcome::Hit, started);
        self.fire(CacheEvent::GetSuccess {
            key,
            value: &frame.payload,
            layer,
        });
        Ok(Some(frame.payload))
    }

    async fn set(&self, key: &CacheKey, value: Bytes, ttl: Option<Ttl>) -> Result<()> {
        let started = self.clock();
        let ttl = ttl.unwrap_or(self.inner.default_ttl);
        let layer = if self.inner.link.is_some() {
            Layer::L2
        } else {
            Layer::L1
        };
        if let Err(e) = self.write_raw(key, &value, ttl).await {
            self.record(CacheOp::Set, layer, Outcome::Failed(e.kind()), started);
            return Err(e);
        }
        self.fill_l1(key, &value, ttl)?;
        self.record(CacheOp::Set, layer, Outcome::Done, started);
        self.fire(CacheEvent::SetSuccess { key, value: &value });
        Ok(())
    }

    async fn delete(&self, key: &CacheKey) -> Result<bool> {
        let started = self.clock();
        let in_l1 = self
            .inner
            .l1
            .as_ref()
            .is_some_and(|l1| l1.remove(key.as_str()));
        let in_l2 = match self.connection() {
            Some(mut conn) => {
                let redis_key = self.redis_key(key);
                match self
                    .run("UNLINK", async {
                        redis::cmd("UNLINK")
                            .arg(&redis_key)
                            .query_async::<i64>(&mut conn)
                            .await
                    })
                    .await
                {
                    Ok(n) => n > 0,
                    Err(e) if e.is_transient() => false,
                    Err(e) => return Err(e),
                }
            }
            None => false,
        };
        let existed = in_l1 || in_l2;
        self.record(CacheOp::Delete, Layer::L2, Outcome::Done, started);
        if existed {
            self.fire(CacheEvent::DeleteSuccess { key });
        }
        Ok(existed)
    }

    async fn exists(&self, key: &CacheKey) -> Result<bool> {
        if self
            .inner
            .l1
            .as_ref()
            .is_some_and(|l1| l1.contains(key.as_str()))
        {
            return Ok(true);
        }
        let Some(mut conn) = self.connection() else {
            return Ok(false);
        };
        let redis_key = self.redis_key(key);
        match self
            .run("EXISTS", async {
                redis::cmd("EXISTS")
                    .arg(&redis_key)
                    .query_async::<i64>(&mut conn)
                    .await
            })
            .await
        {
            Ok(n) => Ok(n > 0),
            Err(e) if e.is_transient() => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn remaining_ttl(&self, key: &CacheKey) -> Result<Option<Duration>> {
        let from_l1 = || {
            self.inner
                .l1
                .as_ref()
                .and_then(|l1| l1.ttl_remaining(key.as_str()))
        };
        let Some(mut conn) = self.connection() else {
            return Ok(from_l1());
        };
        let redis_key = self.redis_key(key);
        match self
            .run("PTTL", async {
                redis::cmd("PTTL")
                    .arg(&redis_key)
                    .query_async::<i64>(&mut conn)
                    .await
            })
            .await
        {
            // -2: no such key; -1: a key without expiry (never written by this cache).
            Ok(-2) => Ok(None),
            Ok(-1) => Ok(Some(Ttl::MAX)),
            Ok(ms) => Ok(Some(Duration::from_millis(u64::try_from(ms).unwrap_or(0)))),
            Err(e) if e.is_transient() => Ok(from_l1()),
            Err(e) => Err(e),
        }
    }

    async fn clear(&self) -> Result<u64> {
        self.delete_pattern(&KeyPattern::all()).await
    }

    async fn scan(&self, pattern: &KeyPattern) -> Result<Vec<CacheKey>> {
        let started = self.clock();
        let mut keys = self
            .inner
            .l1
            .as_ref()
            .map(|l1| l1.keys_matching(pattern))
            .unwrap_or_default();
        if let Some(mut conn) = self.connection() {
            match self.scan_l2(&mut conn, pattern).await {
                Ok(found) => {
                    let known: HashSet<CacheKey> = keys.iter().cloned().collect();
                    keys.extend(found.into_iter().filter(|k| !known.contains(k)));
                }
                Err(e) if e.is_transient() => {}
                Err(e) => return Err(e),
            }
        }
        self.record(CacheOp::Scan, Layer::L2, Outcome::Done, started);
        Ok(keys)
    }

    async fn delete_pattern(&self, pattern: &KeyPattern) -> Result<u64> {
        let removed = self.delete_matching(pattern).await?;
        Ok(u64::try_from(removed.len()).unwrap_or(u64::MAX))
    }
    async fn get_many(&self, keys: &[CacheKey]) -> Result<Vec<Option<Bytes>>> {
        let mut values: Vec<Option<Bytes>> = keys
            .iter()
            .map(|key| self.inner.l1.as_ref().and_then(|l1| l1.fetch(key.as_str())))
            .collect();
        let missing: Vec<usize> = (0..keys.len()).filter(|i| values[*i].is_none()).collect();
        if missing.is_empty() {
            return Ok(values);
        }
        let Some(mut conn) = self.connection() else {
            return Ok(values);
        };
        let names: Vec<String> = missing.iter().map(|i| self.redis_key(&keys[*i])).collect();
        let read = self
            .run("MGET", async {
                redis::cmd("MGET")
                    .arg(&names)
                    .query_async::<Vec<Option<Vec<u8>>>>(&mut conn)
                    .await
            })
            .await;
        match read {
            Ok(raws) => {
                for ((index, raw), name) in missing.into_iter().zip(raws).zip(&names) {
                    let Some(raw) = raw else { continue };
                    if let Some(frame) = self.decode_frame(&keys[index], name, raw).await {
                        self.promote(&keys[index], &frame);
                        values[index] = Some(frame.payload);
                    }
                }
                Ok(values)
            }
            Err(e) if e.is_transient() => Ok(values),
            Err(e) => Err(e),
        }
    }

    async fn set_many(&self, entries: &[(CacheKey, Bytes)], ttl: Option<Ttl>) -> Result<()> {
        for (_, value) in entries {
            self.check_value_size(value.len())?;
        }
        let ttl = ttl.unwrap_or(self.inner.default_ttl);
        if let Some(mut conn) = self.connection() {
            let mut pipe = redis::pipe();
            let meta = self.fresh_meta(ttl);
            for (key, value) in entries {
                let redis_key = self.redis_key(key);
                let frame = self.encode(&redis_key, &meta, Codec::Raw, value)?;
                pipe.cmd("SET")
                    .arg(redis_key)
                    .arg(frame)
                    .arg("PX")
                    .arg(ttl.as_millis())
                    .ignore();
            }
            match self
                .run("SET (pipeline)", async {
                    pipe.query_async::<()>(&mut conn).await
                })
                .await
            {
                Ok(()) => {}
                Err(e) if e.is_transient() => bump(&self.inner.counters.writes_l1_only),
                Err(e) => return Err(e),
            }
        }
        for (key, value) in entries {
            self.fill_l1(key, value, ttl)?;
        }
        Ok(())
    }
}
