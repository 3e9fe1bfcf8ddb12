//! [`GenericRedisCache`]: the two-tier cache.

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cache_core::frame::{Codec, Frame, FrameCodec, FrameMeta};
use cache_core::{
    BreakerState, CacheInterface, CacheKey, CacheOp, Capabilities, Error, ErrorKind, KeyPattern,
    Layer, MemoryReading, Outcome, ReadReport, ReadStatus, Recorder, RedisMemory, Result, Ttl,
    escape_glob, unix_millis,
};
use cache_memory::{InMemoryCache, MemoryCacheStats, WriteEpochs};
use redis::aio::{ConnectionManager, MultiplexedConnection};

use crate::config::RedisCacheConfig;
use crate::events::{CacheEvent, CacheEventListener, Listeners};
use crate::link::{BreakerSettings, L2Link};
use crate::replay::{DELETE_IF_NOT_NEWER, Pending, ReplayQueue, SET_IF_NEWER};
use cache_security::{ConnectTimeouts, ConnectionFactory, map_redis_error, with_timeout};
use tokio::sync::Notify;

/// The least time one step of a pattern walk (a `SCAN` page or an `UNLINK` batch) may take.
const PATTERN_STEP_TIMEOUT: Duration = Duration::from_secs(5);

/// Deletes a key only if it still holds the bytes that were read, so deleting an undecodable value
/// never removes a valid one written meanwhile by another instance.
const DELETE_IF_UNCHANGED: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('UNLINK', KEYS[1])
end
return 0
";

/// Counters of a [`GenericRedisCache`].
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct RedisCacheStats {
    /// The L1's counters, when L1 is on.
    pub l1: Option<MemoryCacheStats>,
    /// Reads answered by Redis.
    pub l2_hits: u64,
    /// Reads Redis did not answer with a value (absent, expired, undecodable, or failed).
    pub l2_misses: u64,
    /// Redis calls that failed (including timeouts).
    pub l2_errors: u64,
    /// Reads that skipped Redis because it was unavailable.
    pub l2_skipped: u64,
    /// Stored values that were not valid frames; each was deleted.
    pub corrupt_entries: u64,
    /// Stored frames this build cannot read (a newer frame version, or encrypted without a
    /// cipher); they are misses and are left in place for the instances that can read them.
    pub unreadable_entries: u64,
    /// Values kept out of L1 because they were too large for it (Redis still holds them).
    pub l1_skipped_too_large: u64,
    /// Writes Redis could not take that L1 holds alone.
    pub writes_l1_only: u64,
    /// Writes neither tier took (Redis unavailable and L1 off).
    pub writes_dropped: u64,
    /// Listener calls that failed or panicked.
    pub listener_failures: u64,
    /// Writes, deletes and invalidations queued for replay because Redis could not take them.
    pub replay_queued: u64,
    /// Queued items dropped because the queue was full.
    pub replay_dropped: u64,
    /// Queued items replaced by a newer write, delete or invalidation of the same key.
    pub replay_superseded: u64,
    /// Queued items applied to Redis.
    pub replayed: u64,
    /// Queued items not applied: their TTL had passed, or Redis held a newer value.
    pub replay_skipped: u64,
    /// Queued items Redis refused (for example a permission error); they are not retried.
    pub replay_failed: u64,
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
    /// Redis is unavailable (or refuses the cache); the cache serves from L1.
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
    /// The circuit breaker in front of Redis (`None` when memory-only).
    pub breaker: Option<BreakerState>,
    /// Writes, deletes and invalidations waiting for Redis.
    pub replay_queue_depth: usize,
    /// Live L1 entries, when L1 is on.
    pub l1_entries: Option<u64>,
    /// How many times Redis went from available to unavailable.
    pub outages: u64,
    /// How many background reconnection probes ran.
    pub probes: u64,
}

#[derive(Default)]
struct Counters {
    l2_hits: AtomicU64,
    l2_misses: AtomicU64,
    l2_errors: AtomicU64,
    l2_skipped: AtomicU64,
    corrupt_entries: AtomicU64,
    unreadable_entries: AtomicU64,
    l1_skipped_too_large: AtomicU64,
    writes_l1_only: AtomicU64,
    writes_dropped: AtomicU64,
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
    epochs: WriteEpochs,
    delete_script: redis::Script,
    replay: ReplayQueue,
    replayer_started: AtomicBool,
    replaying: tokio::sync::Mutex<()>,
    set_if_newer: redis::Script,
    delete_if_not_newer: redis::Script,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Lets the replayer task see that the cache is gone and end.
        self.replay.wake.notify_one();
    }
}

/// What [`GenericRedisCache::shutdown`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Items replayed (or skipped as stale or superseded) during the shutdown.
    pub flushed: u64,
    /// Items still queued when the time ran out (Redis never came back); they are lost.
    pub remaining: usize,
}

/// Redis (L2) behind an optional in-process L1; memory-only without a Redis URL.
///
/// Cloning is cheap and shares everything (connection, L1, counters).
///
/// # Behavior
/// - `get`: L1, then Redis. A Redis hit is promoted into L1 for `min(remaining TTL, l1_max_ttl)`,
///   the remaining TTL coming from the frame itself, unless a write or delete ran meanwhile.
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
/// - Pattern walks (`scan`, `delete_pattern`, `clear`) run on a connection of their own, so they
///   never queue in front of hot-path commands.
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
    /// Builds the cache and, when a Redis URL is configured, connects the shared connection.
    ///
    /// Redis being unreachable is not an error: the cache starts degraded (see [`health`](Self::health))
    /// and reconnects in the background.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] for an invalid configuration or URL; [`ErrorKind::Auth`] when Redis
    /// refuses the credentials or the user's permissions.
    pub async fn connect(config: RedisCacheConfig) -> Result<Self> {
        config.validate().into_result()?;
        let l1 = config.l1.clone().map(InMemoryCache::new).transpose()?;
        let wake = Arc::new(Notify::new());
        let link = match &config.redis_url {
            Some(url) => {
                let timeouts =
                    ConnectTimeouts::new(config.connect_timeout, config.reconnect_max_delay);
                let factory = ConnectionFactory::new(url, &config.security, timeouts)?;
                let settings = BreakerSettings {
                    probe_timeout: config.connect_timeout + config.command_timeout,
                    min_delay: config.reconnect_min_delay,
                    max_delay: config.reconnect_max_delay,
                    failure_threshold: config.breaker_failure_threshold,
                    enabled: config.breaker_enabled,
                };
                Some(L2Link::connect(factory, settings, Arc::clone(&wake)).await?)
            }
            None => None,
        };
        let replay_capacity = if link.is_some() {
            config.replay_queue_capacity
        } else {
            0
        };
        let codec = FrameCodec::new()
            .with_compression(config.compression)
            .with_zstd_level(
                config
                    .compression_level
                    .unwrap_or(cache_core::frame::DEFAULT_ZSTD_LEVEL),
            )
            .with_compression_threshold(config.compression_threshold)
            .with_max_payload(config.max_value_size);
        let codec = match &config.encryption {
            Some(encryption) => codec.with_cipher(Arc::new(encryption.build()?)),
            None => codec,
        };
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
                epochs: WriteEpochs::new(),
                delete_script: redis::Script::new(DELETE_IF_UNCHANGED),
                replay: ReplayQueue::new(replay_capacity, wake),
                replayer_started: AtomicBool::new(false),
                replaying: tokio::sync::Mutex::new(()),
                set_if_newer: redis::Script::new(SET_IF_NEWER),
                delete_if_not_newer: redis::Script::new(DELETE_IF_NOT_NEWER),
            }),
        })
    }

    /// Sends measurements to `recorder` (see [`Recorder`]), breaker transitions included. Call it
    /// right after [`connect`](Self::connect), before sharing the cache (and before a write has
    /// had to be queued for replay: the replayer then holds a reference too).
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
        if let Some(link) = &inner.link {
            link.set_recorder(Arc::clone(&recorder));
        }
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

    /// Whether Redis is configured.
    pub fn has_l2(&self) -> bool {
        self.inner.link.is_some()
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
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        RedisCacheStats {
            l1: self.inner.l1.as_ref().map(InMemoryCache::stats),
            l2_hits: load(&c.l2_hits),
            l2_misses: load(&c.l2_misses),
            l2_errors: load(&c.l2_errors),
            l2_skipped: load(&c.l2_skipped),
            corrupt_entries: load(&c.corrupt_entries),
            unreadable_entries: load(&c.unreadable_entries),
            l1_skipped_too_large: load(&c.l1_skipped_too_large),
            writes_l1_only: load(&c.writes_l1_only),
            writes_dropped: load(&c.writes_dropped),
            listener_failures: self.inner.listeners.failures(),
            replay_queued: load(&self.inner.replay.counters.queued),
            replay_dropped: load(&self.inner.replay.counters.dropped),
            replay_superseded: load(&self.inner.replay.counters.superseded),
            replayed: load(&self.inner.replay.counters.replayed),
            replay_skipped: load(&self.inner.replay.counters.skipped),
            replay_failed: load(&self.inner.replay.counters.failed),
        }
    }

    /// Checks Redis with a `PING` (when it is available) and reports both tiers.
    pub async fn health(&self) -> HealthReport {
        let l1_entries = self.inner.l1.as_ref().map(|l1| l1.stats().entries);
        let replay_queue_depth = self.inner.replay.depth();
        let Some(link) = &self.inner.link else {
            return HealthReport {
                l2: L2Health::Disabled,
                breaker: None,
                replay_queue_depth,
                l1_entries,
                outages: 0,
                probes: 0,
            };
        };
        if let Ok(Some((mut conn, generation))) = link.connection() {
            let started = Instant::now();
            let ping = self
                .run(generation, "PING", async {
                    redis::cmd("PING").query_async::<String>(&mut conn).await
                })
                .await;
            if ping.is_ok() {
                let state = link.state();
                return HealthReport {
                    l2: L2Health::Connected {
                        latency: started.elapsed(),
                    },
                    breaker: Some(link.breaker_state()),
                    replay_queue_depth,
                    l1_entries,
                    outages: state.outages,
                    probes: state.probes,
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
            breaker: Some(link.breaker_state()),
            replay_queue_depth,
            l1_entries,
            outages: state.outages,
            probes: state.probes,
        }
    }

    /// Redis's `INFO memory` figures; `Ok(None)` when Redis is absent, unavailable, or answers
    /// without `used_memory`.
    ///
    /// # Errors
    /// Redis errors other than unavailability, for example [`ErrorKind::Auth`] when an ACL user may
    /// not run `INFO`.
    pub async fn redis_memory(&self) -> Result<Option<RedisMemory>> {
        let Some((mut conn, generation)) = self.connection()? else {
            return Ok(None);
        };
        let info = self
            .run(generation, "INFO memory", async {
                redis::cmd("INFO")
                    .arg("memory")
                    .query_async::<String>(&mut conn)
                    .await
            })
            .await;
        match info {
            Ok(text) => Ok(RedisMemory::parse_info(&text)),
            Err(e) if e.is_transient() => Ok(None),
            Err(e) => Err(e),
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
            .l1
            .as_ref()
            .map(|l1| l1.stats().memory_reading())
            .unwrap_or_default();
        reading.redis = self.redis_memory().await?;
        if let Some(recorder) = &self.inner.recorder {
            recorder.record_memory(&reading);
        }
        Ok(reading)
    }

    /// Reads the frame stored in Redis under `key`, bypassing this cache's L1.
    ///
    /// `Ok(None)` when Redis is absent or unavailable, when the key is missing or expired, and when
    /// the stored bytes are not a frame this build can read (corrupt ones are then deleted and
    /// counted). Layers above (the AI cache) use this with their own L1 of decoded values.
    ///
    /// # Errors
    /// Redis errors other than unavailability, for example [`ErrorKind::Auth`].
    pub async fn get_entry(&self, key: &CacheKey) -> Result<Option<Frame>> {
        self.read_entry(key, 0).await
    }

    /// Reads the frame under `key` even if it is past its soft expiry by at most `max_stale`
    /// (serve-stale: the writer gave Redis a TTL that long beyond the frame's expiry). The
    /// caller tells a stale frame by its `expires_at_ms`. `Ok(None)` as for
    /// [`get_entry`](Self::get_entry).
    ///
    /// # Errors
    /// As [`get_entry`](Self::get_entry).
    pub async fn get_stale_entry(
        &self,
        key: &CacheKey,
        max_stale: Duration,
    ) -> Result<Option<Frame>> {
        let grace = u64::try_from(max_stale.as_millis()).unwrap_or(u64::MAX);
        self.read_entry(key, grace).await
    }

    /// `GET` and decode; a frame counts while `now < expires_at + grace_ms`.
    async fn read_entry(&self, key: &CacheKey, grace_ms: u64) -> Result<Option<Frame>> {
        let Some((mut conn, generation)) = self.connection()? else {
            if self.inner.link.is_some() {
                bump(&self.inner.counters.l2_skipped);
            }
            return Ok(None);
        };
        let redis_key = self.redis_key(key);
        let read = self
            .run(generation, "GET", async {
                redis::cmd("GET")
                    .arg(&redis_key)
                    .query_async::<Option<Vec<u8>>>(&mut conn)
                    .await
            })
            .await;
        let frame = match read {
            Ok(Some(raw)) => self.decode_frame(&redis_key, raw, grace_ms).await,
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

    /// Writes a framed entry to Redis under `key` for `ttl` (Redis's TTL), bypassing this cache's
    /// L1. The frame's expiry (the soft expiry, see serve-stale) is clamped to `ttl`, so it never
    /// claims more life than Redis gives the key.
    ///
    /// Returns `Ok(true)` when Redis took the entry or it was queued for replay (Redis unavailable);
    /// `Ok(false)` when Redis is absent, or unavailable with replay off.
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
        Ok(self.write_entry(key, codec, meta, payload, ttl).await? != L2Write::NotWritten)
    }

    async fn write_entry(
        &self,
        key: &CacheKey,
        codec: Codec,
        meta: &FrameMeta,
        payload: &[u8],
        ttl: Ttl,
    ) -> Result<L2Write> {
        self.check_value_size(payload.len())?;
        if self.inner.link.is_none() {
            return Ok(L2Write::NotWritten);
        }
        let redis_key = self.redis_key(key);
        let latest_expiry = unix_millis().saturating_add(ttl.as_millis());
        let frame = if meta.expires_at_ms > latest_expiry {
            let mut clamped = meta.clone();
            clamped.expires_at_ms = latest_expiry;
            self.encode(&redis_key, &clamped, codec, payload)?
        } else {
            self.encode(&redis_key, meta, codec, payload)?
        };
        let pending = |frame: Vec<u8>| Pending::Set {
            key: key.clone(),
            frame,
            cached_at_ms: meta.cached_at_ms,
            expires_at_ms: latest_expiry,
        };
        let Some((mut conn, generation)) = self.connection()? else {
            return Ok(self.queue(pending(frame)));
        };
        let written = self
            .run(generation, "SET", async {
                redis::cmd("SET")
                    .arg(&redis_key)
                    .arg(&frame)
                    .arg("PX")
                    .arg(ttl.as_millis())
                    .query_async::<()>(&mut conn)
                    .await
            })
            .await;
        match written {
            Ok(()) => Ok(L2Write::Written),
            Err(e) if e.is_transient() => Ok(self.queue(pending(frame))),
            Err(e) => Err(e),
        }
    }

    /// After a delete or invalidation reached Redis: queued writes of the keys it covers must not
    /// bring them back. A write being replayed right now is not in the queue, so the delete is
    /// queued too (replayed after it) in that case.
    fn after_redis_delete(&self, pattern: &KeyPattern, pending: impl FnOnce() -> Pending) {
        if !self.inner.replay.is_enabled() {
            return;
        }
        if self.inner.replay.depth() > 0 {
            self.inner.replay.forget(pattern);
        }
        if self.inner.replaying.try_lock().is_err() {
            self.queue(pending());
        }
    }

    /// Queues `item` for replay, starting the replayer on first use; `Queued` when it was queued.
    fn queue(&self, item: Pending) -> L2Write {
        if !self.inner.replay.push(item) {
            return L2Write::NotWritten;
        }
        if !self.inner.replayer_started.swap(true, Ordering::AcqRel) {
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    runtime.spawn(replayer(
                        Arc::downgrade(&self.inner),
                        Arc::clone(&self.inner.replay.wake),
                    ));
                }
                Err(_) => self.inner.replayer_started.store(false, Ordering::Release),
            }
        }
        // A lone failure leaves the breaker closed: replay soon rather than at the next outage.
        if self.is_l2_available() {
            self.inner.replay.wake.notify_one();
        }
        L2Write::Queued
    }

    /// Applies queued items while Redis takes them; returns how many left the queue. Stops (the
    /// item stays queued) when Redis is unavailable again.
    ///
    /// # Errors
    /// Redis refusing the cache ([`ErrorKind::Auth`]); the item stays queued.
    async fn replay_pending(&self) -> Result<u64> {
        let _only_one = self.inner.replaying.lock().await;
        let counters = &self.inner.replay.counters;
        let mut done = 0;
        while let Some(taken) = self.inner.replay.take() {
            let Some(item) = taken.item() else {
                break;
            };
            match self.replay_one(item).await {
                Ok(true) => bump(&counters.replayed),
                Ok(false) => bump(&counters.skipped),
                Err(e) if e.is_transient() => return Ok(done),
                Err(e) if e.kind() == ErrorKind::Auth => return Err(e),
                Err(e) => {
                    bump(&counters.failed);
                    tracing::warn!(error = %e, "Redis refused a replayed operation; dropping it");
                }
            }
            taken.done();
            done += 1;
        }
        Ok(done)
    }

    /// Applies one queued item: true when applied, false when skipped (expired, or Redis holds a
    /// newer value).
    async fn replay_one(&self, item: &Pending) -> Result<bool> {
        let unavailable = || Error::new(ErrorKind::Unavailable, "Redis is unavailable");
        let Some((mut conn, generation)) = self.connection()? else {
            return Err(unavailable());
        };
        match item {
            Pending::Set {
                key,
                frame,
                cached_at_ms,
                expires_at_ms,
            } => {
                if *expires_at_ms <= unix_millis() {
                    return Ok(false);
                }
                let mut invocation = self.inner.set_if_newer.key(self.redis_key(key));
                invocation
                    .arg(frame.as_slice())
                    .arg(*cached_at_ms)
                    .arg(*expires_at_ms);
                let applied = self
                    .run(generation, "replay SET", async {
                        invocation.invoke_async::<i64>(&mut conn).await
                    })
                    .await?;
                Ok(applied == 1)
            }
            Pending::Delete { key, at_ms } => {
                let mut invocation = self.inner.delete_if_not_newer.key(self.redis_key(key));
                invocation.arg(*at_ms);
                let reply = self
                    .run(generation, "replay UNLINK", async {
                        invocation.invoke_async::<i64>(&mut conn).await
                    })
                    .await?;
                Ok(reply >= 0)
            }
            Pending::Invalidate { pattern, at_ms } => {
                let Some(mut walk) = self.pattern_connection().await? else {
                    return Err(unavailable());
                };
                for key in self.scan_l2(&mut walk, pattern).await? {
                    let mut invocation = self.inner.delete_if_not_newer.key(self.redis_key(&key));
                    invocation.arg(*at_ms);
                    self.run_pattern_step("replay invalidation", async {
                        invocation.invoke_async::<i64>(&mut walk).await
                    })
                    .await?;
                }
                Ok(true)
            }
        }
    }

    /// Flushes the replay queue to Redis, waiting up to `limit` for it to come back, and reports
    /// what was flushed and what is left (lost when the process exits). Call it before the
    /// process ends; the cache stays usable afterwards.
    pub async fn shutdown(&self, limit: Duration) -> ShutdownReport {
        let deadline = tokio::time::Instant::now() + limit;
        let mut flushed = 0;
        while self.inner.replay.depth() > 0 {
            match tokio::time::timeout_at(deadline, self.replay_pending()).await {
                Ok(Ok(n)) => flushed += n,
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "Redis refuses the cache; the replay queue is not flushed");
                    break;
                }
                Err(_) => break,
            }
            if self.inner.replay.depth() == 0 || tokio::time::Instant::now() >= deadline {
                break;
            }
            // Redis is unavailable: asking for the connection lets a probe run; wait for it.
            let _ = self.connection();
            tokio::time::sleep_until(
                deadline.min(tokio::time::Instant::now() + Duration::from_millis(20)),
            )
            .await;
        }
        let remaining = self.inner.replay.depth();
        if remaining > 0 {
            tracing::warn!(remaining, "shutdown: queued writes could not reach Redis");
        }
        ShutdownReport { flushed, remaining }
    }

    /// Reads `key` like [`get`](CacheInterface::get) and reports who answered ([`ReadStatus`])
    /// with the time spent in each layer.
    ///
    /// # Errors
    /// As `get`.
    pub async fn get_with_status(&self, key: &CacheKey) -> Result<(Option<Bytes>, ReadReport)> {
        let started = Instant::now();
        let from_l1 = self.inner.l1.as_ref().and_then(|l1| l1.fetch(key.as_str()));
        let l1_time = self.inner.l1.as_ref().map(|_| started.elapsed());
        let with_l1 = |report: ReadReport| match l1_time {
            Some(time) => report.with_l1_time(time),
            None => report,
        };
        if let Some(value) = from_l1 {
            self.record(CacheOp::Get, Layer::L1, Outcome::Hit, Some(started));
            self.fire(CacheEvent::GetSuccess {
                key,
                value: &value,
                layer: Layer::L1,
            });
            return Ok((Some(value), with_l1(ReadReport::new(ReadStatus::HitL1))));
        }
        let asks_redis = self.is_l2_available();
        let l2_started = Instant::now();
        let value = self.get_after_l1_miss(key, Some(started)).await?;
        let status = if value.is_some() {
            ReadStatus::HitL2
        } else {
            ReadStatus::Miss
        };
        let report = with_l1(ReadReport::new(status));
        let report = if asks_redis {
            report.with_l2_time(l2_started.elapsed())
        } else {
            report
        };
        Ok((value, report))
    }

    /// Removes the keys matching `pattern` from L1 and Redis and returns them, each once.
    /// (`delete_pattern` and `clear` return the count of this.)
    ///
    /// # Errors
    /// [`ErrorKind::Unavailable`] when Redis is configured but could not be walked (unavailable, or
    /// the walk failed part-way): L1 has been cleaned and the invalidation is queued for replay
    /// (with replay on), but Redis may still hold matching keys now, so it is not reported as
    /// done. Other Redis errors as they come.
    pub async fn delete_matching(&self, pattern: &KeyPattern) -> Result<Vec<CacheKey>> {
        let started = self.clock();
        let issued_at = unix_millis();
        self.inner.epochs.bump_all();
        let mut removed: HashSet<CacheKey> = self.remove_from_l1(pattern);
        let queue = || {
            self.queue(Pending::Invalidate {
                pattern: pattern.clone(),
                at_ms: issued_at,
            }) == L2Write::Queued
        };
        if self.inner.link.is_some() {
            let Some(mut conn) = self.pattern_connection().await? else {
                return Err(invalidation_incomplete(pattern, None, queue()));
            };
            let outcome = match self.scan_l2(&mut conn, pattern).await {
                Ok(found) => self.unlink_l2(&mut conn, &found).await,
                Err(e) => Err(e),
            };
            // A read that started during the walk may have promoted a key the walk then removed.
            self.inner.epochs.bump_all();
            removed.extend(self.remove_from_l1(pattern));
            match outcome {
                Ok(gone) => {
                    removed.extend(gone);
                    self.after_redis_delete(pattern, || Pending::Invalidate {
                        pattern: pattern.clone(),
                        at_ms: issued_at,
                    });
                }
                Err(e) if e.is_transient() => {
                    return Err(invalidation_incomplete(pattern, Some(e), queue()));
                }
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

    /// The rest of a read once L1 missed: Redis, decoding, promotion, recording.
    async fn get_after_l1_miss(
        &self,
        key: &CacheKey,
        started: Option<Instant>,
    ) -> Result<Option<Bytes>> {
        let layer = self.l2_layer();
        let epoch = self.inner.epochs.current(key.as_str());
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
        self.promote(key, &frame, epoch);
        self.record(CacheOp::Get, layer, Outcome::Hit, started);
        self.fire(CacheEvent::GetSuccess {
            key,
            value: &frame.payload,
            layer,
        });
        Ok(Some(frame.payload))
    }

    async fn set_value(&self, key: &CacheKey, value: Bytes, ttl: Option<Ttl>) -> Result<()> {
        let started = self.clock();
        let ttl = ttl.unwrap_or(self.inner.default_ttl);
        let layer = self.l2_layer();
        self.check_value_size(value.len())?;
        let epoch = self.inner.epochs.bump(key.as_str());
        if self.inner.link.is_some() {
            // Drop the old L1 copy first: if this future is cancelled after Redis took the new
            // value, L1 must not keep serving the old one.
            if let Some(l1) = &self.inner.l1 {
                l1.remove(key.as_str());
            }
            let stored = self
                .write_entry(key, Codec::Raw, &self.fresh_meta(ttl), &value, ttl)
                .await;
            match stored {
                Ok(L2Write::Written) => {}
                Ok(_) if self.inner.l1.is_some() => bump(&self.inner.counters.writes_l1_only),
                Ok(L2Write::Queued) => {}
                Ok(L2Write::NotWritten) => bump(&self.inner.counters.writes_dropped),
                Err(e) => {
                    self.record(CacheOp::Set, layer, Outcome::Failed(e.kind()), started);
                    return Err(e);
                }
            }
        }
        // Fill L1 only if no other write or delete of this key's shard ran meanwhile (its value is
        // newer), and move the epoch on so that reads that raced this write cannot promote.
        if self.inner.epochs.current(key.as_str()) != epoch {
            self.record(CacheOp::Set, layer, Outcome::Done, started);
            self.fire(CacheEvent::SetSuccess { key, value: &value });
            return Ok(());
        }
        self.inner.epochs.bump(key.as_str());
        self.fill_l1(key, &value, ttl)?;
        self.record(CacheOp::Set, layer, Outcome::Done, started);
        self.fire(CacheEvent::SetSuccess { key, value: &value });
        Ok(())
    }

    async fn delete_key(&self, key: &CacheKey) -> Result<bool> {
        let started = self.clock();
        self.inner.epochs.bump(key.as_str());
        let in_l1 = self
            .inner
            .l1
            .as_ref()
            .is_some_and(|l1| l1.remove(key.as_str()));
        let queued = || Pending::Delete {
            key: key.clone(),
            at_ms: unix_millis(),
        };
        let in_l2 = match self.connection()? {
            Some((mut conn, generation)) => {
                let redis_key = self.redis_key(key);
                match self
                    .run(generation, "UNLINK", async {
                        redis::cmd("UNLINK")
                            .arg(&redis_key)
                            .query_async::<i64>(&mut conn)
                            .await
                    })
                    .await
                {
                    Ok(n) => {
                        if let Ok(exact) = KeyPattern::new(escape_glob(key.as_str())) {
                            self.after_redis_delete(&exact, queued);
                        }
                        n > 0
                    }
                    Err(e) if e.is_transient() => {
                        self.queue(queued());
                        false
                    }
                    Err(e) => return Err(e),
                }
            }
            None if self.inner.link.is_some() => {
                self.queue(queued());
                false
            }
            None => false,
        };
        let existed = in_l1 || in_l2;
        self.record(CacheOp::Delete, self.l2_layer(), Outcome::Done, started);
        if existed {
            self.fire(CacheEvent::DeleteSuccess { key });
        }
        Ok(existed)
    }

    /// Runs one hot-path Redis command under our timeout, mapping and counting failures; failures
    /// feed the link's availability (see `link.rs`).
    async fn run<T>(
        &self,
        generation: u64,
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
        if let Some(link) = &self.inner.link {
            match &result {
                Ok(_) => link.observe_success(),
                Err(e) => {
                    bump(&self.inner.counters.l2_errors);
                    link.observe_failure(e, generation);
                    tracing::debug!(operation = what, error = %e, "Redis command failed");
                }
            }
        }
        result
    }

    /// Runs one step of a pattern walk on a dedicated connection. Its failures do not change the
    /// link's availability: a slow walk must not take the hot path down.
    async fn run_pattern_step<T>(
        &self,
        what: &'static str,
        command: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T> {
        let limit = self.inner.config.command_timeout.max(PATTERN_STEP_TIMEOUT);
        let result = with_timeout(limit, what, async {
            command
                .await
                .map_err(|e| map_redis_error(e, "Redis command failed"))
        })
        .await;
        if result.is_err() {
            bump(&self.inner.counters.l2_errors);
        }
        result
    }

    /// The shared connection and its generation; `Ok(None)` when Redis is absent or unavailable;
    /// an error when Redis refuses the cache's credentials.
    fn connection(&self) -> Result<Option<(ConnectionManager, u64)>> {
        match &self.inner.link {
            None => Ok(None),
            Some(link) => link.connection(),
        }
    }

    /// A connection of its own for pattern walks; `Ok(None)` when Redis is absent or unavailable.
    async fn pattern_connection(&self) -> Result<Option<MultiplexedConnection>> {
        let Some(link) = &self.inner.link else {
            return Ok(None);
        };
        if link.connection()?.is_none() {
            return Ok(None);
        }
        match link.factory().dedicated().await {
            Ok(conn) => Ok(Some(conn)),
            Err(e) if e.is_transient() => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn remove_from_l1(&self, pattern: &KeyPattern) -> HashSet<CacheKey> {
        self.inner
            .l1
            .as_ref()
            .map(|l1| l1.remove_matching(pattern).into_iter().collect())
            .unwrap_or_default()
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

    fn l2_layer(&self) -> Layer {
        if self.inner.link.is_some() {
            Layer::L2
        } else {
            Layer::L1
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

    /// Copies a frame read from Redis into L1 for the time the frame has left, unless a write or
    /// delete ran since `epoch` (the read may be stale then).
    fn promote(&self, key: &CacheKey, frame: &Frame, epoch: u64) {
        if self.inner.epochs.current(key.as_str()) != epoch {
            return;
        }
        let Ok(ttl) = Ttl::from_millis(frame.meta.remaining_ms(unix_millis())) else {
            return;
        };
        if let Err(e) = self.fill_l1(key, &frame.payload, ttl) {
            tracing::debug!(error = %e, "value not promoted into L1");
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

    /// Decodes a value read from Redis. A corrupt frame is deleted (if unchanged) and counted; a
    /// frame this build cannot read is counted and left alone; both are misses, and so is a frame
    /// past its own expiry plus `grace_ms`.
    async fn decode_frame(&self, redis_key: &str, raw: Vec<u8>, grace_ms: u64) -> Option<Frame> {
        let stored = Bytes::from(raw);
        let error = match self.inner.codec.decode(redis_key, stored.clone()) {
            Ok(frame) if frame.meta.expires_at_ms.saturating_add(grace_ms) > unix_millis() => {
                return Some(frame);
            }
            Ok(_) => return None,
            Err(e) => e,
        };
        if let Some(recorder) = &self.inner.recorder {
            recorder.record_corrupt_entry(Layer::L2, error.kind());
        }
        if error.kind() != ErrorKind::Corrupted {
            bump(&self.inner.counters.unreadable_entries);
            tracing::debug!(error = %error, "unreadable value in Redis left in place");
            return None;
        }
        bump(&self.inner.counters.corrupt_entries);
        tracing::warn!(error = %error, "undecodable value in Redis; deleting it");
        if let Ok(Some((mut conn, generation))) = self.connection() {
            let mut invocation = self.inner.delete_script.key(redis_key);
            invocation.arg(stored.as_ref());
            let _ = self
                .run(generation, "delete corrupt value", async {
                    invocation.invoke_async::<i64>(&mut conn).await
                })
                .await;
        }
        None
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

    /// Metadata for a raw value written now for `ttl`.
    fn fresh_meta(&self, ttl: Ttl) -> FrameMeta {
        let now = unix_millis();
        FrameMeta::new(now, now.saturating_add(ttl.as_millis()))
    }

    /// Walks `SCAN MATCH` over the namespace and returns the logical keys found, each once.
    async fn scan_l2(
        &self,
        conn: &mut MultiplexedConnection,
        pattern: &KeyPattern,
    ) -> Result<Vec<CacheKey>> {
        let full = format!("{}{}", self.inner.scan_prefix, pattern.as_str());
        let mut cursor: u64 = 0;
        let mut seen = HashSet::new();
        let mut keys = Vec::new();
        loop {
            let (next, batch) = self
                .run_pattern_step("SCAN", async {
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&full)
                        .arg("COUNT")
                        .arg(self.inner.config.scan_count)
                        .query_async::<(u64, Vec<Vec<u8>>)>(&mut *conn)
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
        conn: &mut MultiplexedConnection,
        keys: &[CacheKey],
    ) -> Result<Vec<CacheKey>> {
        let mut removed = Vec::new();
        for batch in keys.chunks(self.inner.config.scan_count.max(1)) {
            let mut pipe = redis::pipe();
            for key in batch {
                pipe.cmd("UNLINK").arg(self.redis_key(key));
            }
            let replies = self
                .run_pattern_step("UNLINK", async {
                    pipe.query_async::<Vec<i64>>(&mut *conn).await
                })
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
        self.get_after_l1_miss(key, started).await
    }

    async fn set(&self, key: &CacheKey, value: Bytes, ttl: Option<Ttl>) -> Result<()> {
        self.set_value(key, value, ttl).await
    }

    async fn delete(&self, key: &CacheKey) -> Result<bool> {
        self.delete_key(key).await
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
        let Some((mut conn, generation)) = self.connection()? else {
            return Ok(false);
        };
        let redis_key = self.redis_key(key);
        match self
            .run(generation, "EXISTS", async {
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
        let Some((mut conn, generation)) = self.connection()? else {
            return Ok(from_l1());
        };
        let redis_key = self.redis_key(key);
        match self
            .run(generation, "PTTL", async {
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
        if let Some(mut conn) = self.pattern_connection().await? {
            match self.scan_l2(&mut conn, pattern).await {
                Ok(found) => {
                    let known: HashSet<CacheKey> = keys.iter().cloned().collect();
                    keys.extend(found.into_iter().filter(|k| !known.contains(k)));
                }
                Err(e) if e.is_transient() => {}
                Err(e) => return Err(e),
            }
        }
        self.record(CacheOp::Scan, self.l2_layer(), Outcome::Done, started);
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
        let Some((mut conn, generation)) = self.connection()? else {
            return Ok(values);
        };
        let epochs: Vec<u64> = keys
            .iter()
            .map(|key| self.inner.epochs.current(key.as_str()))
            .collect();
        let names: Vec<String> = missing.iter().map(|i| self.redis_key(&keys[*i])).collect();
        let read = self
            .run(generation, "MGET", async {
                redis::cmd("MGET")
                    .arg(&names)
                    .query_async::<Vec<Option<Vec<u8>>>>(&mut conn)
                    .await
            })
            .await;
        match read {
            Ok(raws) => {
                for ((index, raw), name) in missing.into_iter().zip(raws).zip(&names) {
                    let frame = match raw {
                        Some(raw) => self.decode_frame(name, raw, 0).await,
                        None => None,
                    };
                    let counter = match frame {
                        Some(frame) => {
                            self.promote(&keys[index], &frame, epochs[index]);
                            values[index] = Some(frame.payload);
                            &self.inner.counters.l2_hits
                        }
                        None => &self.inner.counters.l2_misses,
                    };
                    bump(counter);
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
        for (key, _) in entries {
            self.inner.epochs.bump(key.as_str());
            if let Some(l1) = &self.inner.l1 {
                l1.remove(key.as_str());
            }
        }
        if self.inner.link.is_some() {
            let meta = self.fresh_meta(ttl);
            let mut frames = Vec::with_capacity(entries.len());
            for (key, value) in entries {
                frames.push(self.encode(&self.redis_key(key), &meta, Codec::Raw, value)?);
            }
            let written = match self.connection()? {
                Some((mut conn, generation)) => {
                    let mut pipe = redis::pipe();
                    for ((key, _), frame) in entries.iter().zip(&frames) {
                        pipe.cmd("SET")
                            .arg(self.redis_key(key))
                            .arg(frame)
                            .arg("PX")
                            .arg(ttl.as_millis())
                            .ignore();
                    }
                    match self
                        .run(generation, "SET (pipeline)", async {
                            pipe.query_async::<()>(&mut conn).await
                        })
                        .await
                    {
                        Ok(()) => true,
                        Err(e) if e.is_transient() => false,
                        Err(e) => return Err(e),
                    }
                }
                None => false,
            };
            if !written {
                bump(&self.inner.counters.writes_l1_only);
                for ((key, _), frame) in entries.iter().zip(frames) {
                    self.queue(Pending::Set {
                        key: key.clone(),
                        frame,
                        cached_at_ms: meta.cached_at_ms,
                        expires_at_ms: meta.expires_at_ms,
                    });
                }
            }
        }
        for (key, value) in entries {
            self.inner.epochs.bump(key.as_str());
            self.fill_l1(key, value, ttl)?;
        }
        Ok(())
    }
}

fn invalidation_incomplete(pattern: &KeyPattern, cause: Option<Error>, queued: bool) -> Error {
    let error = Error::new(
        ErrorKind::Unavailable,
        "invalidation reached L1 only: Redis could not be walked, and may still hold matching keys",
    )
    .with_context("pattern", pattern.as_str())
    .with_context("queued_for_replay", queued)
    .with_context(
        "fix",
        if queued {
            "nothing to do: it is replayed when Redis returns (retry to make sure sooner)"
        } else {
            "retry when Redis is available"
        },
    );
    match cause {
        Some(cause) => error.with_source(cause),
        None => error,
    }
}

/// Where a write to the shared tier went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum L2Write {
    /// Redis took it.
    Written,
    /// Redis could not; it waits in the replay queue.
    Queued,
    /// Nowhere: no Redis, or Redis unavailable with replay off.
    NotWritten,
}

/// Replays the queue each time it is woken (Redis returned, or an item was queued while Redis
/// looked available). When a replay stops on a passing failure while Redis still looks available
/// (a lone timeout, or the breaker turned off), it tries again with a doubling delay. Holds the
/// cache only while replaying, and ends when the cache is dropped.
async fn replayer(cache: Weak<Inner>, wake: Arc<Notify>) {
    loop {
        wake.notified().await;
        let mut delay: Option<Duration> = None;
        loop {
            let Some(inner) = cache.upgrade() else {
                return;
            };
            let cache = GenericRedisCache { inner };
            match cache.replay_pending().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(replayed = n, "replayed queued writes to Redis"),
                Err(e) => tracing::warn!(error = %e, "replay stopped: Redis refuses the cache"),
            }
            if cache.inner.replay.depth() == 0 || !cache.is_l2_available() {
                break;
            }
            let config = &cache.inner.config;
            let next = delay.map_or(config.reconnect_min_delay, |d| {
                (d * 2).min(config.reconnect_max_delay)
            });
            delay = Some(next);
            drop(cache);
            tokio::time::sleep(next).await;
        }
    }
}
