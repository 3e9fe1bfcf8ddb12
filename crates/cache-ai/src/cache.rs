//! [`AIResponseCache`]: a [`NearCache`] of decoded answers over an optional shared tier, built
//! with [`AIResponseCacheBuilder`].

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use cache_core::{
    CacheKey, DynFrameStore, Error, ErrorKind, HealthReport, KeyPattern, MemoryReading, Recorder,
    Result, ShutdownReport, Ttl, Usage,
};
use cache_memory::{ByteSize, InMemoryCache, NearCache, SharedTier};
use cache_monitoring::OperationTable;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::config::{AI_VERSION, AiCacheConfig};
use crate::flight::Flights;
use crate::keys::{AiRequest, CacheKeyGenerator, RequestKey};
use crate::layout::OldLayout;
use crate::response::{CachedResponse, Rendered, ResponseMetadata};
use crate::stats::{AiCacheStats, AiSnapshot, OpCounters, OperationStats, TierCounters};
use crate::summary::{self, AiPerformanceSummary, OperationPerformance, TextTierStatistics};

pub use cache_monitoring::{MAX_TRACKED_OPERATIONS, OTHER_OPERATIONS};

/// Decides whether an answer may be stored.
pub type Admission<T> = Arc<dyn Fn(&T) -> bool + Send + Sync>;

/// Tells what an answer cost the model (tokens and money), for savings accounting.
pub type UsageMeter<T> = Arc<dyn Fn(&T) -> Usage + Send + Sync>;

/// An answer as L1 keeps it: decoded, with its metadata and its rendered JSON form.
pub(crate) struct L1Entry<T> {
    pub(crate) value: Arc<T>,
    pub(crate) metadata: Arc<ResponseMetadata>,
    pub(crate) rendered: Rendered,
    pub(crate) size: usize,
    /// The answer's soft expiry (ms since the epoch): memory-only with a stale window, L1 keeps
    /// the entry past it for the serve-stale path, and plain reads treat it as a miss.
    pub(crate) fresh_until_ms: u64,
}

impl<T> Clone for L1Entry<T> {
    fn clone(&self) -> Self {
        Self {
            value: Arc::clone(&self.value),
            metadata: Arc::clone(&self.metadata),
            rendered: Arc::clone(&self.rendered),
            size: self.size,
            fresh_until_ms: self.fresh_until_ms,
        }
    }
}

/// Bytes an L1 entry is charged beyond its decoded answer (see `footprint`): the entry, its
/// metadata and the metadata's labels.
pub(crate) const L1_ENTRY_METADATA: usize = 256;

impl<T> ByteSize for L1Entry<T> {
    fn byte_size(&self) -> usize {
        self.size
    }
}

pub(crate) struct Inner<T> {
    pub(crate) config: AiCacheConfig,
    pub(crate) namespace: String,
    pub(crate) keys: CacheKeyGenerator,
    pub(crate) near: NearCache<L1Entry<T>>,
    pub(crate) l2: Option<SharedTier>,
    pub(crate) l1_max_ttl: Ttl,
    pub(crate) admission: Option<Admission<T>>,
    pub(crate) usage_meter: Option<UsageMeter<T>>,
    pub(crate) recorder: Option<Arc<dyn Recorder>>,
    /// Read on every request, written once per new operation: a lookup of a known name is plain
    /// loads (see [`OperationTable`]).
    pub(crate) ops: OperationTable<OpCounters>,
    pub(crate) tiers: [TierCounters; 4],
    pub(crate) decode_failures: AtomicU64,
    pub(crate) l1_skipped_too_large: AtomicU64,
    pub(crate) flights: Arc<Flights<CachedResponse<T>>>,
    /// Background refreshes (serve-stale): bounded in number, finished or cancelled by
    /// `shutdown`.
    pub(crate) refreshes: crate::refresh::Refreshes,
    /// The old location of a tenant's entries during the layout upgrade.
    pub(crate) old_layout: Option<OldLayout>,
    /// Shared-tier hits L1 does not keep, decoded once per distinct frame.
    pub(crate) decoded: crate::memo::DecodedMemo<T>,
}

/// Caches AI responses of type `T` (any serde type; JSON by default) in front of the model.
///
/// Keys come from [`CacheKeyGenerator`] (format v1); entries live in the shared tier (a
/// [`FrameStore`](cache_core::FrameStore): Redis, given to the builder) as MessagePack frames
/// carrying their operation, text tier, AI version and expiry, and in an L1 of **decoded** values,
/// so an L1 hit is a lookup and an `Arc` clone.
///
/// # Behavior
/// - TTL: the request's override, else the operation's TTL, else `default_ttl`, shortened by the
///   configured jitter. An L1 copy lives `min(remaining TTL, l1_max_ttl)`.
/// - L1 admission (on write and on promotion from the shared tier) follows the original's rules:
///   small texts always; medium texts for stable operations; large texts only for `sentiment`;
///   any small or medium text once its operation has 10 hits; never xlarge. Memory-only, L1
///   holds everything.
/// - [`get_or_compute`](Self::get_or_compute) runs `compute` at most once per key at a time in this
///   process; callers join the flight right after an L1 miss, so one shared-tier read serves them
///   all; errors reach every waiter and are never cached.
/// - A shared-tier hit L1 does not keep (L1 off, or an entry the rules leave in Redis) is still
///   read from Redis every time, but when the frame is byte for byte the one this key last
///   returned, its earlier decoding (value, metadata, JSON form) is reused: a memo of at most
///   4 MiB per cache.
/// - L1's byte budget and the memo's charge a JSON answer what it occupies decoded (walked, with
///   its rendered JSON form), not its encoded size; a typed answer is charged its encoded size.
/// - Invalidation counts each removed entry once across L1 and the shared tier.
/// - The shared tier being unavailable never fails a call.
pub struct AIResponseCache<T = serde_json::Value> {
    pub(crate) inner: Arc<Inner<T>>,
}

impl<T> Clone for AIResponseCache<T> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<T> fmt::Debug for AIResponseCache<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AIResponseCache")
            .field("namespace", &self.inner.namespace)
            .field("keys", &self.inner.keys)
            .field("l2", &self.inner.l2)
            .finish_non_exhaustive()
    }
}

/// Builds an [`AIResponseCache`]: the store and everything the cache reports to or asks are given
/// here, before the cache exists, so no setting starts failing once the cache is shared.
///
/// ```
/// use cache_ai::{AIResponseCache, AiCacheConfig};
/// use cache_memory::MemoryFrameStore;
/// use std::sync::Arc;
///
/// let config = AiCacheConfig::default();
/// let store = Arc::new(MemoryFrameStore::new(config.namespace()));
/// let cache: AIResponseCache<String> = AIResponseCache::builder(config)
///     .store(store)
///     .admission(|answer: &String| !answer.contains("I cannot"))
///     .build()?;
/// # Ok::<(), cache_core::Error>(())
/// ```
#[must_use]
pub struct AIResponseCacheBuilder<T> {
    config: AiCacheConfig,
    store: Option<Arc<dyn DynFrameStore>>,
    recorder: Option<Arc<dyn Recorder>>,
    admission: Option<Admission<T>>,
    usage_meter: Option<UsageMeter<T>>,
    pre_isolation_store: Option<Arc<dyn DynFrameStore>>,
}

impl<T> fmt::Debug for AIResponseCacheBuilder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AIResponseCacheBuilder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<T> AIResponseCacheBuilder<T>
where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    /// The shared tier. Its namespace must be the configuration's
    /// ([`AiCacheConfig::namespace`]). Without one the cache is memory-only.
    pub fn store(mut self, store: Arc<dyn DynFrameStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Sends measurements to `recorder` (for example a `CachePerformanceMonitor`): reads with the
    /// tier that answered, stores, computations, compressions, corrupt entries and invalidations.
    /// (A Redis store reports its breaker transitions to the recorder it was built with.)
    pub fn recorder(mut self, recorder: Arc<dyn Recorder>) -> Self {
        self.recorder = Some(recorder);
        self
    }

    /// The rule that decides which answers may be stored (in addition to refusing empty ones),
    /// for example refusing truncated or refused answers.
    pub fn admission(mut self, admit: impl Fn(&T) -> bool + Send + Sync + 'static) -> Self {
        self.admission = Some(Arc::new(admit));
        self
    }

    /// How to tell what an answer cost the model (its [`Usage`]: tokens and money). With a meter,
    /// every computation adds its usage to its operation's `tokens_used` / `cost_used`, and every
    /// hit adds the usage it spared to `tokens_saved` / `cost_saved`.
    pub fn usage_meter(mut self, meter: impl Fn(&T) -> Usage + Send + Sync + 'static) -> Self {
        self.usage_meter = Some(Arc::new(meter));
        self
    }

    /// The store over where aicache 0.1 kept this tenant's entries
    /// ([`AiCacheConfig::pre_isolation_namespace`]: `aicache:v1:t:{tenant}`), for the layout
    /// upgrade window ([`AiCacheConfig::layout_upgrade_until`]; see
    /// [`convert_layout`](AIResponseCache::convert_layout)). Usually the same server as
    /// [`store`](Self::store).
    pub fn pre_isolation_store(mut self, store: Arc<dyn DynFrameStore>) -> Self {
        self.pre_isolation_store = Some(store);
        self
    }

    /// Builds the cache.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](cache_core::ErrorKind::Config) for an invalid configuration, a store of another namespace, a
    /// pre-isolation store without the upgrade window (or without a store), or neither a store
    /// nor an L1 (nothing would be cached).
    pub fn build(self) -> Result<AIResponseCache<T>> {
        let Self {
            config,
            store,
            recorder,
            admission,
            usage_meter,
            pre_isolation_store,
        } = self;
        config.validate().into_result()?;
        let namespace = config.namespace();
        if let Some(store) = &store {
            check_namespace(store.as_ref(), &namespace, "store_namespace")?;
        }
        let old_layout_namespace = config.pre_isolation_namespace();
        let old_store = match (pre_isolation_store, &old_layout_namespace, &store) {
            (None, _, _) => None,
            (Some(old), Some(expected), Some(_)) => {
                check_namespace(old.as_ref(), expected, "pre_isolation_store_namespace")?;
                Some(old)
            }
            (Some(old), _, _) => {
                return Err(Error::new(
                    ErrorKind::Config,
                    "a pre-isolation store needs a tenant, layout_upgrade_until and a store",
                )
                .with_context("field", "layout_upgrade_until")
                .with_context("pre_isolation_store_namespace", old.info().namespace));
            }
        };
        if store.is_none() && config.l1.is_none() {
            return Err(Error::new(ErrorKind::Config, "nothing would be cached")
                .with_context("field", "l1")
                .with_context("value", "off")
                .with_context("allowed", "on when no shared store is given"));
        }
        let cipher: Option<Arc<dyn cache_core::Cipher>> = match &config.encryption {
            Some(encryption) => Some(Arc::new(encryption.build()?)),
            None => None,
        };
        let codec = config.frames.codec(cipher);
        let old_layout = old_store.map(|old| {
            let until = config
                .layout_upgrade_until
                .and_then(|until| until.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |since| {
                    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
                });
            OldLayout::new(SharedTier::new(old, codec.clone(), recorder.clone()), until)
        });
        let l2 = store.map(|store| SharedTier::new(store, codec, recorder.clone()));
        let config_refreshes = (
            config.background_refreshes,
            config.background_refresh_timeout,
        );
        Ok(AIResponseCache {
            inner: Arc::new(Inner {
                keys: CacheKeyGenerator::new(config.hash_algorithm, config.text_size_tiers)
                    .with_stats(config.monitoring_enabled),
                l1_max_ttl: Ttl::new(config.l1_max_ttl)?,
                near: NearCache::new(config.l1.clone())?,
                namespace,
                config,
                l2,
                admission,
                usage_meter,
                recorder,
                ops: OperationTable::default(),
                tiers: std::array::from_fn(|_| TierCounters::default()),
                decode_failures: AtomicU64::new(0),
                l1_skipped_too_large: AtomicU64::new(0),
                flights: Arc::new(Flights::default()),
                refreshes: crate::refresh::Refreshes::new(config_refreshes),
                old_layout,
                decoded: crate::memo::DecodedMemo::new(),
            }),
        })
    }
}

/// Refuses a store whose namespace is not `expected`.
fn check_namespace(store: &dyn DynFrameStore, expected: &str, field: &'static str) -> Result<()> {
    let theirs = store.info().namespace;
    if theirs == expected {
        return Ok(());
    }
    Err(Error::new(
        ErrorKind::Config,
        "the store's namespace is not the AI cache's",
    )
    .with_context(field, theirs)
    .with_context("cache_namespace", expected)
    .with_context(
        "fix",
        "build the store with the AI cache's namespace as its key prefix",
    ))
}

/// [`AI_VERSION`] shared, so that no hit allocates it.
pub(crate) fn ai_version() -> &'static Arc<str> {
    static VERSION: OnceLock<Arc<str>> = OnceLock::new();
    VERSION.get_or_init(|| Arc::from(AI_VERSION))
}

impl<T> AIResponseCache<T>
where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    /// A builder over `config` (see [`AIResponseCacheBuilder`]).
    pub fn builder(config: AiCacheConfig) -> AIResponseCacheBuilder<T> {
        AIResponseCacheBuilder {
            config,
            store: None,
            recorder: None,
            admission: None,
            usage_meter: None,
            pre_isolation_store: None,
        }
    }

    /// A memory-only cache over `config`, with nothing attached.
    ///
    /// # Errors
    /// As [`AIResponseCacheBuilder::build`].
    pub fn new(config: AiCacheConfig) -> Result<Self> {
        Self::builder(config).build()
    }

    /// The configuration in force.
    pub fn config(&self) -> &AiCacheConfig {
        &self.inner.config
    }

    /// The key generator (with its statistics).
    pub fn key_generator(&self) -> &CacheKeyGenerator {
        &self.inner.keys
    }

    /// The shared tier, when configured.
    pub fn l2(&self) -> Option<&SharedTier> {
        self.inner.l2.as_ref()
    }

    /// The key of `request`.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](cache_core::ErrorKind::InvalidInput) for an invalid operation name.
    pub fn key(&self, request: &AiRequest<'_>) -> Result<RequestKey> {
        self.inner.keys.key_for(request)
    }

    /// The key of `request`, for async callers with possibly very long texts: hashed slice by
    /// slice with yields between slices (see [`CacheKeyGenerator::key_for_async`]), so no poll
    /// holds the worker for long.
    ///
    /// # Errors
    /// As [`key`](Self::key).
    pub async fn key_async(&self, request: &AiRequest<'_>) -> Result<RequestKey> {
        self.inner.keys.key_for_async(request).await
    }

    /// The key of any serializable request (see [`CacheKeyGenerator::key_for_serialize`]).
    ///
    /// # Errors
    /// As [`CacheKeyGenerator::key_for_serialize`].
    pub fn key_for_serialize<R: Serialize + ?Sized>(
        &self,
        operation: &str,
        request: &R,
    ) -> Result<RequestKey> {
        self.inner.keys.key_for_serialize(operation, request)
    }

    /// The full key of `key`: `{namespace}:{operation}:{digest}`.
    pub fn full_key(&self, key: &RequestKey) -> String {
        format!("{}:{}", self.inner.namespace, key.cache_key())
    }

    /// The keys (`{operation}:{digest}`) held in L1 now.
    pub fn l1_keys(&self) -> Vec<CacheKey> {
        self.inner
            .near
            .l1()
            .map(|l1| l1.keys_matching(&KeyPattern::all()))
            .unwrap_or_default()
    }

    /// The counters.
    pub fn stats(&self) -> AiCacheStats {
        let (flights_in_progress, callers_waiting) = self.inner.flights.load();
        let by_operation = self
            .inner
            .ops
            .entries()
            .iter()
            .map(|(op, counters)| (op.to_string(), counters.snapshot()))
            // A name stays in the table after `reset_stats`: unused since, it is not reported.
            .filter(|(_, stats)| *stats != OperationStats::default())
            .collect();
        AiCacheStats {
            by_operation,
            by_tier: std::array::from_fn(|i| {
                let t = &self.inner.tiers[i];
                t.hits.get() + t.misses.get()
            }),
            decode_failures: self.inner.decode_failures.load(Ordering::Relaxed),
            l1_skipped_too_large: self.inner.l1_skipped_too_large.load(Ordering::Relaxed),
            l1: self.inner.near.l1().map(InMemoryCache::stats),
            l2: self.inner.l2.as_ref().map(SharedTier::stats),
            key_generation: self.inner.keys.stats(),
            flights_in_progress,
            callers_waiting,
            refreshes: self.inner.refreshes.stats(),
        }
    }

    /// What the performance reports are built from.
    pub(crate) fn snapshot(&self) -> AiSnapshot {
        let operations = self
            .inner
            .ops
            .entries()
            .iter()
            .map(|(op, counters)| {
                (
                    op.to_string(),
                    counters.snapshot(),
                    counters.latency.summary(),
                )
            })
            .filter(|(_, stats, _)| *stats != OperationStats::default())
            .collect();
        let tiers = std::array::from_fn(|i| {
            let t = &self.inner.tiers[i];
            (t.hits.get(), t.misses.get(), t.latency.summary())
        });
        AiSnapshot {
            operations,
            tiers,
            stats: self.stats(),
        }
    }

    /// Per operation that was read: the exact read count, read latency (avg/min/max/p50/p95/p99
    /// in ms, from a histogram of the timed reads) and the configured TTL.
    pub fn get_operation_performance(
        &self,
    ) -> std::collections::BTreeMap<String, OperationPerformance> {
        summary::operation_performance(&self.snapshot(), self.config())
    }

    /// Tier thresholds, read distribution and per-tier performance with observations.
    pub fn get_text_tier_statistics(&self) -> TextTierStatistics {
        summary::text_tier_statistics(&self.snapshot(), self.config())
    }

    /// Reads, hit rates by operation, tier distribution, key generation and recommendations; a
    /// well-formed answer with zeros before any read.
    pub fn get_ai_performance_summary(&self) -> AiPerformanceSummary {
        summary::ai_performance_summary(&self.snapshot())
    }

    /// Flushes the shared tier's replay queue (writes, deletes and invalidations made while it
    /// was unavailable), waiting up to `limit` for it.
    ///
    /// Background refreshes (serve-stale) are given the time first: those still running when
    /// `limit` ends are cancelled and counted.
    pub async fn shutdown(&self, limit: Duration) -> ShutdownReport {
        let deadline = tokio::time::Instant::now()
            .checked_add(limit)
            .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(86_400 * 365));
        self.inner.refreshes.finish_by(deadline).await;
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let new = match &self.inner.l2 {
            Some(l2) => l2.store().shutdown(left).await,
            None => ShutdownReport::default(),
        };
        // The old location's queue holds removals too: flushed within the same limit.
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let old = match &self.inner.old_layout {
            Some(old) => old.tier.store().shutdown(left).await,
            None => ShutdownReport::default(),
        };
        ShutdownReport::new(new.flushed + old.flushed, new.remaining + old.remaining)
    }

    /// The health of both tiers; `None` when memory-only.
    pub async fn health(&self) -> Option<HealthReport> {
        let l2 = self.inner.l2.as_ref()?;
        let l1_entries = self.inner.near.l1().map(|l1| l1.stats().entries);
        Some(l2.store().health().await.with_l1_entries(l1_entries))
    }

    /// Takes a memory reading of both tiers (this cache's L1 of decoded answers and the store's
    /// server figures, `INFO memory` for Redis), hands it to the recorder and returns it.
    /// Monitoring does no I/O of its own: call this periodically, for example from a metrics
    /// scrape.
    ///
    /// # Errors
    /// Store errors other than unavailability, for example [`ErrorKind::Auth`](cache_core::ErrorKind::Auth) when an ACL user
    /// may not run `INFO`.
    pub async fn report_memory(&self) -> Result<MemoryReading> {
        let mut reading = self
            .inner
            .near
            .l1()
            .map(|l1| l1.stats().memory_reading())
            .unwrap_or_default();
        if let Some(l2) = &self.inner.l2 {
            reading.redis = l2.store().server_memory().await?;
        }
        if let Some(recorder) = &self.inner.recorder {
            recorder.record_memory(&reading);
        }
        Ok(reading)
    }

    /// The counters of `operation`: names come from requests, so past
    /// [`MAX_TRACKED_OPERATIONS`] they share one entry, and counters and latency windows stay
    /// bounded whatever callers send.
    pub(crate) fn counters(&self, operation: &str) -> &OpCounters {
        self.inner.ops.get(operation, OpCounters::new)
    }

    /// The hit count that may promote an answer of `operation` into L1: its own, and none when
    /// it is counted in the shared bucket (other operations' hits must not promote it).
    pub(crate) fn promotion_hits(counters: &OpCounters, operation: &str) -> u64 {
        if *counters.name != *operation {
            return 0;
        }
        counters.l2_hits.get() + counters.l1_hits.get()
    }

    /// The operation's name for an answer's metadata and frame: the counters' interned name, or
    /// the request's own when it is counted in the shared bucket.
    pub(crate) fn op_label(counters: &OpCounters, operation: &str) -> Arc<str> {
        if *counters.name == *operation {
            Arc::clone(&counters.name)
        } else {
            Arc::from(operation)
        }
    }
}
