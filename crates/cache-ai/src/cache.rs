//! [`AIResponseCache`]: AI responses in front of the model.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tracing::Instrument as _;

use cache_core::frame::{Codec, FrameMeta, decode_msgpack, encode_msgpack};
use cache_core::{
    CacheKey, CacheOp, Error, ErrorKind, KeyPattern, Layer, MemoryReading, Outcome, ReadReport,
    ReadStatus, Recorder, RequestEvent, Result, TextTier, Ttl, Usage, unix_millis,
};
use cache_memory::{ByteSize, InMemoryCache, MemoryCacheStats, WriteEpochs};
use cache_monitoring::LatencyWindow;
use cache_redis::{GenericRedisCache, HealthReport, RedisCacheStats, ShutdownReport};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::config::{AI_VERSION, AiCacheConfig};
use crate::controls::RequestControls;
use crate::flight::{Flights, Role, wait};
use crate::keys::{
    AiRequest, CacheKeyGenerator, KeyGenerationStats, RequestKey, validate_operation,
};

/// What a hit (or a fresh answer) carries besides the value.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResponseMetadata {
    /// When the answer was stored.
    pub cached_at: SystemTime,
    /// True when the answer came from the cache.
    pub cache_hit: bool,
    /// The input text's tier.
    pub text_tier: Option<TextTier>,
    /// The operation.
    pub operation: Arc<str>,
    /// The AI layer version that stored the answer.
    pub ai_version: Arc<str>,
    /// The full Redis key (`aicache:v1:{operation}:{digest}`).
    pub key: Arc<str>,
    /// The tier that answered a hit.
    pub layer: Option<Layer>,
    /// True when the answer is past its TTL, served by `get_or_compute` because computing a
    /// fresh one failed or took too long (serve-stale).
    pub stale: bool,
}

/// A cached (or freshly computed) answer.
#[derive(Debug)]
#[non_exhaustive]
pub struct CachedResponse<T> {
    /// The answer, shared: an L1 hit costs no deserialization and no copy.
    pub value: Arc<T>,
    /// Its metadata.
    pub metadata: Arc<ResponseMetadata>,
    /// The seed's JSON form (answer merged with metadata), rendered once per L1 entry.
    pub(crate) rendered: Rendered,
}

/// A lazily rendered JSON form, shared by every hit on the same L1 entry.
pub(crate) type Rendered = Arc<OnceLock<Arc<serde_json::Value>>>;

impl<T> CachedResponse<T> {
    fn new(value: Arc<T>, metadata: Arc<ResponseMetadata>) -> Self {
        Self {
            value,
            metadata,
            rendered: Rendered::default(),
        }
    }
}

impl<T> Clone for CachedResponse<T> {
    fn clone(&self) -> Self {
        Self {
            value: Arc::clone(&self.value),
            metadata: Arc::clone(&self.metadata),
            rendered: Arc::clone(&self.rendered),
        }
    }
}

/// Where a [`get_or_compute`](AIResponseCache::get_or_compute) answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Source {
    /// The in-process tier.
    L1,
    /// Redis.
    L2,
    /// This call computed it.
    Computed,
    /// Another caller computing the same key shared its answer.
    Joined,
    /// Computing failed or took too long, and an answer past its TTL (within the stale window)
    /// was served instead (its metadata says `stale`).
    Stale,
}

/// The answer of [`get_or_compute`](AIResponseCache::get_or_compute).
#[derive(Debug)]
#[non_exhaustive]
pub struct Computed<T> {
    /// The answer and its metadata.
    pub response: CachedResponse<T>,
    /// Where it came from.
    pub source: Source,
    /// How long `compute` took, when this call ran it.
    pub compute_time: Option<Duration>,
    /// Whether the answer was stored (false for hits, refusals and `no_store`).
    pub stored: bool,
}

impl<T> Computed<T> {
    /// The read status this answer stands for: HIT_L1, HIT_L2, STALE, or MISS (computed here or
    /// by another caller).
    pub fn status(&self) -> ReadStatus {
        match self.source {
            Source::L1 => ReadStatus::HitL1,
            Source::L2 => ReadStatus::HitL2,
            Source::Stale => ReadStatus::Stale,
            _ => ReadStatus::Miss,
        }
    }
}

/// Counters per operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct OperationStats {
    /// Reads answered by L1.
    pub l1_hits: u64,
    /// Reads answered by Redis.
    pub l2_hits: u64,
    /// Reads that found nothing.
    pub misses: u64,
    /// Answers stored.
    pub stores: u64,
    /// Answers the admission rule refused.
    pub refused: u64,
    /// Redis hits promoted into L1.
    pub promotions: u64,
    /// Entries removed by invalidation.
    pub invalidated: u64,
    /// Answers computed by `get_or_compute` (the model was called).
    pub computed: u64,
    /// Time spent computing them, in microseconds.
    pub compute_micros: u64,
    /// Tokens the computations used (with a usage meter, see
    /// [`set_usage_meter`](AIResponseCache::set_usage_meter)).
    pub tokens_used: u64,
    /// Tokens the hits spared (with a usage meter).
    pub tokens_saved: u64,
    /// What the computations cost, in millionths of the caller's currency (with a usage meter).
    pub cost_used_micros: u64,
    /// What the hits spared, in millionths of the caller's currency (with a usage meter).
    pub cost_saved_micros: u64,
    /// Stale answers `get_or_compute` served because computing failed or took too long.
    pub stale_served: u64,
}

impl OperationStats {
    /// The mean time one computation took, or zero before the first.
    pub fn mean_compute_time(&self) -> Duration {
        Duration::from_micros(self.compute_micros.checked_div(self.computed).unwrap_or(0))
    }

    /// Time saved: every hit spared one computation of the mean observed cost. Zero until an
    /// answer of this operation has been computed here.
    pub fn time_saved(&self) -> Duration {
        self.mean_compute_time()
            .saturating_mul(u32::try_from(self.hits()).unwrap_or(u32::MAX))
    }

    /// What the hits spared, in the caller's currency (with a usage meter).
    pub fn cost_saved(&self) -> f64 {
        micros_to_amount(self.cost_saved_micros)
    }

    /// What the computations cost, in the caller's currency (with a usage meter).
    pub fn cost_used(&self) -> f64 {
        micros_to_amount(self.cost_used_micros)
    }

    /// All hits.
    pub fn hits(&self) -> u64 {
        self.l1_hits + self.l2_hits
    }

    /// hits / (hits + misses), or 0 without reads.
    pub fn hit_rate(&self) -> f64 {
        let reads = self.hits() + self.misses;
        if reads == 0 {
            return 0.0;
        }
        #[expect(clippy::cast_precision_loss, reason = "counters are far below 2^52")]
        let rate = self.hits() as f64 / reads as f64;
        rate
    }
}

#[expect(
    clippy::cast_precision_loss,
    reason = "sums of millionths far below 2^52"
)]
fn micros_to_amount(micros: u64) -> f64 {
    micros as f64 / 1_000_000.0
}

#[expect(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "a non-negative, finite amount rounded to millionths; saturates above u64::MAX"
)]
fn amount_to_micros(amount: f64) -> u64 {
    if amount.is_finite() && amount > 0.0 {
        (amount * 1_000_000.0).round() as u64
    } else {
        0
    }
}

/// A snapshot of an [`AIResponseCache`]'s counters.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct AiCacheStats {
    /// Per operation.
    pub by_operation: BTreeMap<String, OperationStats>,
    /// Reads per text tier: small, medium, large, xlarge.
    pub by_tier: [u64; 4],
    /// Values in Redis that no longer decode as the response type (a schema change).
    pub decode_failures: u64,
    /// Values kept out of L1 because they were too large for it.
    pub l1_skipped_too_large: u64,
    /// The L1 of decoded responses.
    pub l1: Option<MemoryCacheStats>,
    /// The Redis tier.
    pub l2: Option<RedisCacheStats>,
    /// Key generation.
    pub key_generation: KeyGenerationStats,
    /// Computations in progress right now.
    pub flights_in_progress: usize,
    /// Callers waiting for one of those computations right now.
    pub callers_waiting: usize,
}

/// The counters of one operation, with its name interned (shared by every response's metadata).
pub(crate) struct OpCounters {
    pub(crate) name: Arc<str>,
    /// Read latency (when monitoring is on).
    pub(crate) latency: LatencyWindow,
    l1_hits: AtomicU64,
    l2_hits: AtomicU64,
    misses: AtomicU64,
    stores: AtomicU64,
    refused: AtomicU64,
    promotions: AtomicU64,
    invalidated: AtomicU64,
    computed: AtomicU64,
    compute_micros: AtomicU64,
    tokens_used: AtomicU64,
    tokens_saved: AtomicU64,
    cost_used_micros: AtomicU64,
    cost_saved_micros: AtomicU64,
    stale_served: AtomicU64,
}

impl OpCounters {
    fn new(name: &str) -> Self {
        let zero = || AtomicU64::new(0);
        Self {
            name: Arc::from(name),
            latency: LatencyWindow::new(READ_LATENCY_WINDOW),
            l1_hits: zero(),
            l2_hits: zero(),
            misses: zero(),
            stores: zero(),
            refused: zero(),
            promotions: zero(),
            invalidated: zero(),
            computed: zero(),
            compute_micros: zero(),
            tokens_used: zero(),
            tokens_saved: zero(),
            cost_used_micros: zero(),
            cost_saved_micros: zero(),
            stale_served: zero(),
        }
    }

    fn add_usage(tokens: &AtomicU64, cost_micros: &AtomicU64, usage: Usage) {
        tokens.fetch_add(usage.tokens, Ordering::Relaxed);
        cost_micros.fetch_add(amount_to_micros(usage.cost), Ordering::Relaxed);
    }

    fn snapshot(&self) -> OperationStats {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        OperationStats {
            l1_hits: load(&self.l1_hits),
            l2_hits: load(&self.l2_hits),
            misses: load(&self.misses),
            stores: load(&self.stores),
            refused: load(&self.refused),
            promotions: load(&self.promotions),
            invalidated: load(&self.invalidated),
            computed: load(&self.computed),
            compute_micros: load(&self.compute_micros),
            tokens_used: load(&self.tokens_used),
            tokens_saved: load(&self.tokens_saved),
            cost_used_micros: load(&self.cost_used_micros),
            cost_saved_micros: load(&self.cost_saved_micros),
            stale_served: load(&self.stale_served),
        }
    }
}

struct L1Entry<T> {
    value: Arc<T>,
    metadata: Arc<ResponseMetadata>,
    rendered: Rendered,
    size: usize,
    /// The answer's soft expiry (ms since the epoch): memory-only with a stale window, L1 keeps
    /// the entry past it for the serve-stale path, and plain reads treat it as a miss.
    fresh_until_ms: u64,
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

impl<T> ByteSize for L1Entry<T> {
    fn byte_size(&self) -> usize {
        self.size
    }
}

/// Whether this read is one of the 1-in-`every` whose time is recorded (a per-thread counter:
/// no shared cache line).
fn sample(every: u32) -> bool {
    thread_local! {
        static READS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
    }
    READS.with(|reads| {
        let n = reads.get().wrapping_add(1);
        reads.set(n);
        every <= 1 || n % every == 0
    })
}

/// How long read latencies count in the summaries.
const READ_LATENCY_WINDOW: Duration = Duration::from_secs(3600);

/// Reads per text tier, for the tier statistics.
pub(crate) struct TierCounters {
    pub(crate) hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) latency: LatencyWindow,
}

impl Default for TierCounters {
    fn default() -> Self {
        Self {
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            latency: LatencyWindow::new(READ_LATENCY_WINDOW),
        }
    }
}

/// Decides whether an answer may be stored.
pub type Admission<T> = Arc<dyn Fn(&T) -> bool + Send + Sync>;

/// Tells what an answer cost the model (tokens and money), for savings accounting.
pub type UsageMeter<T> = Arc<dyn Fn(&T) -> Usage + Send + Sync>;

struct Inner<T> {
    config: AiCacheConfig,
    namespace: String,
    keys: CacheKeyGenerator,
    l1: Option<InMemoryCache<L1Entry<T>>>,
    l2: Option<GenericRedisCache>,
    l1_max_ttl: Ttl,
    admission: Option<Admission<T>>,
    usage_meter: Option<UsageMeter<T>>,
    recorder: Option<Arc<dyn Recorder>>,
    /// Read on every request, written once per new operation: an `ArcSwap` keeps readers off any
    /// shared lock word.
    ops: ArcSwap<HashMap<Arc<str>, Arc<OpCounters>>>,
    by_tier: [AtomicU64; 4],
    tiers: [TierCounters; 4],
    decode_failures: AtomicU64,
    l1_skipped_too_large: AtomicU64,
    epochs: WriteEpochs,
    flights: Flights<CachedResponse<T>>,
}

/// Caches AI responses of type `T` (any serde type; JSON by default) in front of the model.
///
/// Keys come from [`CacheKeyGenerator`] (format v1); entries live in Redis (when configured) as
/// MessagePack frames carrying their operation, text tier, AI version and expiry, and in an L1 of
/// **decoded** values, so an L1 hit is a lookup and an `Arc` clone.
///
/// # Behavior
/// - TTL: the request's override, else the operation's TTL, else `redis.default_ttl`, shortened by
///   the configured jitter. An L1 copy lives `min(remaining TTL, l1_max_ttl)`.
/// - L1 admission (on write and on promotion from Redis) follows the original's rules: small texts
///   always; medium texts for stable operations; large texts only for `sentiment`; any small or
///   medium text once its operation has 10 hits; never xlarge. Memory-only, L1 holds everything.
/// - [`get_or_compute`](Self::get_or_compute) runs `compute` at most once per key at a time in this
///   process; errors reach every waiter and are never cached.
/// - Invalidation counts each removed entry once across L1 and Redis.
/// - Redis being unavailable never fails a call (see [`GenericRedisCache`]).
pub struct AIResponseCache<T = serde_json::Value> {
    inner: Arc<Inner<T>>,
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

fn tier_index(tier: TextTier) -> usize {
    match tier {
        TextTier::Small => 0,
        TextTier::Medium => 1,
        TextTier::Large => 2,
        _ => 3,
    }
}

/// [`AI_VERSION`] shared, so that no hit allocates it.
fn ai_version() -> &'static Arc<str> {
    static VERSION: OnceLock<Arc<str>> = OnceLock::new();
    VERSION.get_or_init(|| Arc::from(AI_VERSION))
}

fn system_time(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// MessagePack encodings of `nil`, `""`, `[]` and `{}`: answers the default admission refuses.
fn is_empty_payload(payload: &[u8]) -> bool {
    matches!(payload, [0xc0] | [0xa0] | [0x90] | [0x80])
}

impl<T> AIResponseCache<T>
where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    /// Builds the cache; connects to Redis when `config.redis.redis_url` is set.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] for an invalid configuration; Redis refusing the credentials
    /// ([`ErrorKind::Auth`]). An unreachable Redis is not an error (degraded mode).
    pub async fn connect(config: AiCacheConfig) -> Result<Self> {
        config.validate().into_result()?;
        let namespace = config.namespace();
        let l2 = match &config.redis.redis_url {
            Some(_) => {
                let mut redis = config.redis.clone().with_l1(None);
                redis.key_prefix.clone_from(&namespace);
                Some(GenericRedisCache::connect(redis).await?)
            }
            None => None,
        };
        let l1 = config.l1.clone().map(InMemoryCache::new).transpose()?;
        Ok(Self {
            inner: Arc::new(Inner {
                keys: CacheKeyGenerator::new(config.hash_algorithm, config.text_size_tiers)
                    .with_stats(config.monitoring_enabled),
                l1_max_ttl: Ttl::new(config.redis.l1_max_ttl)?,
                namespace,
                config,
                l1,
                l2,
                admission: None,
                usage_meter: None,
                recorder: None,
                ops: ArcSwap::from_pointee(HashMap::new()),
                by_tier: Default::default(),
                tiers: std::array::from_fn(|_| TierCounters::default()),
                decode_failures: AtomicU64::new(0),
                l1_skipped_too_large: AtomicU64::new(0),
                epochs: WriteEpochs::new(),
                flights: Flights::default(),
            }),
        })
    }

    /// The cache's state for a setter: only while this handle is the only one (settings are fixed
    /// once the cache is shared).
    fn configurable(&mut self, what: &str) -> Result<&mut Inner<T>> {
        Arc::get_mut(&mut self.inner).ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("set the {what} before cloning the cache"),
            )
        })
    }

    /// Sets the rule that decides which answers may be stored (in addition to refusing empty ones),
    /// for example refusing truncated or refused answers. Call before sharing the cache.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] when the cache has already been cloned.
    pub fn set_admission(
        &mut self,
        admit: impl Fn(&T) -> bool + Send + Sync + 'static,
    ) -> Result<()> {
        let inner = self.configurable("admission rule")?;
        inner.admission = Some(Arc::new(admit));
        Ok(())
    }

    /// Sets how to tell what an answer cost the model (its [`Usage`]: tokens and money), for
    /// example from token counts the answer carries. With a meter, every computation adds its usage
    /// to its operation's `tokens_used` / `cost_used`, and every hit adds the usage it spared to
    /// `tokens_saved` / `cost_saved` ([`OperationStats`], the summary, and the recorder's
    /// [`RequestEvent::saved`]). Call before sharing the cache.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] when the cache has already been cloned.
    pub fn set_usage_meter(
        &mut self,
        meter: impl Fn(&T) -> Usage + Send + Sync + 'static,
    ) -> Result<()> {
        let inner = self.configurable("usage meter")?;
        inner.usage_meter = Some(Arc::new(meter));
        Ok(())
    }

    /// Sends measurements to `recorder` (for example a `CachePerformanceMonitor`): reads with the
    /// tier that answered (or a miss), stores, and through the Redis tier its compressions,
    /// corrupt entries and invalidations. Call before sharing the cache.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] when the cache has already been cloned.
    pub fn set_recorder(&mut self, recorder: Arc<dyn Recorder>) -> Result<()> {
        let inner = self.configurable("recorder")?;
        if let Some(l2) = &mut inner.l2 {
            l2.set_recorder(Arc::clone(&recorder))?;
        }
        inner.recorder = Some(recorder);
        Ok(())
    }

    fn record(&self, op: CacheOp, layer: Layer, outcome: Outcome, started: Option<Instant>) {
        if let (Some(recorder), Some(started)) = (&self.inner.recorder, started) {
            recorder.record_operation(op, layer, outcome, started.elapsed());
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &AiCacheConfig {
        &self.inner.config
    }

    /// The key generator (with its statistics).
    pub fn key_generator(&self) -> &CacheKeyGenerator {
        &self.inner.keys
    }

    /// The Redis tier, when configured.
    pub fn l2(&self) -> Option<&GenericRedisCache> {
        self.inner.l2.as_ref()
    }

    /// The key of `request`.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for an invalid operation name.
    pub fn key(&self, request: &AiRequest<'_>) -> Result<RequestKey> {
        self.inner.keys.key_for(request)
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

    /// The full Redis key of `key`: `{namespace}:{operation}:{digest}`.
    pub fn full_key(&self, key: &RequestKey) -> String {
        format!("{}:{}", self.inner.namespace, key.cache_key())
    }

    /// Reads the answer stored for `key`.
    ///
    /// # Errors
    /// Redis errors other than unavailability (for example [`ErrorKind::Auth`]).
    pub async fn get(&self, key: &RequestKey) -> Result<Option<CachedResponse<T>>> {
        self.lookup(key, &RequestControls::default(), true).await
    }

    /// Stores `value` as the answer for `key`. Returns whether it was stored (false when the
    /// admission rule refuses it or the controls forbid storing).
    ///
    /// # Errors
    /// [`ErrorKind::Serialization`] when `value` cannot be encoded; [`ErrorKind::CapacityExceeded`]
    /// above the size limit; Redis errors other than unavailability.
    pub async fn put(
        &self,
        key: &RequestKey,
        value: T,
        controls: &RequestControls,
    ) -> Result<bool> {
        let value = Arc::new(value);
        Ok(self.store(key, &value, controls).await?.is_some())
    }

    /// Answers from the cache, or runs `compute` (once per key at a time in this process), stores
    /// its answer when the admission rule and `controls` allow, and returns it.
    ///
    /// Cache errors never fail this call (the answer is computed instead, and the error logged); a
    /// compute error is returned to this caller and to every caller waiting on the same key, and
    /// is not cached.
    ///
    /// # Errors
    /// The compute error, shared.
    pub async fn get_or_compute<F, Fut, E>(
        &self,
        key: &RequestKey,
        controls: &RequestControls,
        compute: F,
    ) -> std::result::Result<Computed<T>, Arc<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<T, E>>,
        E: Send + Sync + 'static,
    {
        // The span names the request by operation, tier and a digest prefix: never by its text.
        let span = tracing::debug_span!(
            "aicache.get_or_compute",
            operation = key.operation(),
            tier = key.tier().as_str(),
            digest = &key.digest()[..16],
        );
        self.get_or_compute_in_span(key, controls, compute)
            .instrument(span)
            .await
    }

    async fn get_or_compute_in_span<F, Fut, E>(
        &self,
        key: &RequestKey,
        controls: &RequestControls,
        compute: F,
    ) -> std::result::Result<Computed<T>, Arc<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<T, E>>,
        E: Send + Sync + 'static,
    {
        if controls.reads()
            && let Some(hit) = self.lookup_quietly(key, controls, true).await
        {
            tracing::debug!(source = ?hit.source, "answered from the cache");
            return Ok(hit);
        }
        let leader = loop {
            match self
                .inner
                .flights
                .join(key.cache_key(), controls.force_refresh)
            {
                Role::Leader(leader) => break leader,
                Role::Follower(slot) => match wait(slot).await {
                    Some(Ok(response)) => {
                        return Ok(Computed {
                            response,
                            source: Source::Joined,
                            compute_time: None,
                            stored: false,
                        });
                    }
                    Some(Err(shared)) => match shared.downcast::<E>() {
                        Ok(error) => return Err(error),
                        // A caller with another error type led; compute for ourselves.
                        Err(_) => break self.inner.flights.lead(key.cache_key()),
                    },
                    // The leader was cancelled: try again (one of the waiters leads).
                    None => {
                        if controls.reads()
                            && let Some(hit) = self.lookup_quietly(key, controls, false).await
                        {
                            return Ok(hit);
                        }
                    }
                },
            }
        };
        // A flight that landed between our miss and our start stored its answer: use it. (Not
        // counted: this request's read was already counted as a miss.)
        if controls.reads()
            && let Some(hit) = self.lookup_quietly(key, controls, false).await
        {
            leader.land(Ok(hit.response.clone()));
            return Ok(hit);
        }
        let started = Instant::now();
        let serve_stale = !self.inner.config.stale_window.is_zero();
        let mut computation = std::pin::pin!(compute());
        let result = match self.inner.config.stale_after {
            Some(after) if serve_stale => {
                match tokio::time::timeout(after, computation.as_mut()).await {
                    Ok(result) => result,
                    // Too slow: a stale answer, when there is one, wins over waiting longer.
                    Err(_) => match self.stale_answer(key).await {
                        Some(stale) => {
                            tracing::warn!(
                                waited_ms = u64::try_from(after.as_millis()).unwrap_or(u64::MAX),
                                "computation too slow; serving a stale answer"
                            );
                            leader.land(Ok(stale.clone()));
                            return Ok(stale_computed(stale));
                        }
                        None => computation.await,
                    },
                }
            }
            _ => computation.await,
        };
        match result {
            Ok(value) => {
                let compute_time = started.elapsed();
                self.account_computation(key, &value, compute_time);
                let value = Arc::new(value);
                // A forced refresh that started after this computation owns the entry now.
                let store = if leader.is_current() {
                    self.store(key, &value, controls).await
                } else {
                    Ok(None)
                };
                let stored = match store {
                    Ok(stored) => stored,
                    Err(e) => {
                        tracing::warn!(error = %e, operation = key.operation(), "answer not cached");
                        None
                    }
                };
                let was_stored = stored.is_some();
                let metadata = stored.unwrap_or_else(|| {
                    let counters = self.counters(key.operation());
                    self.metadata(key, &counters.name, unix_millis(), false, None)
                });
                let response = CachedResponse::new(value, Arc::new(metadata));
                leader.land(Ok(response.clone()));
                tracing::debug!(
                    compute_ms = u64::try_from(compute_time.as_millis()).unwrap_or(u64::MAX),
                    stored = was_stored,
                    "computed"
                );
                Ok(Computed {
                    response,
                    source: Source::Computed,
                    compute_time: Some(compute_time),
                    stored: was_stored,
                })
            }
            Err(error) => {
                if serve_stale && let Some(stale) = self.stale_answer(key).await {
                    tracing::warn!(
                        operation = key.operation(),
                        "computation failed; serving a stale answer"
                    );
                    leader.land(Ok(stale.clone()));
                    return Ok(stale_computed(stale));
                }
                let error = Arc::new(error);
                leader.land(Err(
                    Arc::clone(&error) as Arc<dyn std::any::Any + Send + Sync>
                ));
                Err(error)
            }
        }
    }

    /// An answer past its TTL but within the stale window, marked `stale`, from L1 (memory-only)
    /// or Redis; counted as served.
    async fn stale_answer(&self, key: &RequestKey) -> Option<CachedResponse<T>> {
        let window = self.inner.config.stale_window;
        let now = unix_millis();
        let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
        let found = if let Some(l2) = &self.inner.l2 {
            let frame = match l2.get_stale_entry(key.cache_key(), window).await {
                Ok(frame) => frame?,
                Err(e) => {
                    tracing::warn!(error = %e, "no stale answer: Redis read failed");
                    return None;
                }
            };
            let value: T = decode_msgpack(&frame.payload).ok()?;
            let counters = self.counters(key.operation());
            let mut metadata = self.metadata(
                key,
                &counters.name,
                frame.meta.cached_at_ms,
                true,
                Some(Layer::L2),
            );
            metadata.text_tier = frame.meta.text_tier.or(Some(key.tier()));
            metadata.stale = frame.meta.expires_at_ms <= now;
            CachedResponse::new(Arc::new(value), Arc::new(metadata))
        } else {
            let (entry, _) = self.inner.l1.as_ref()?.peek(key.cache_key().as_str())?;
            if entry.fresh_until_ms.saturating_add(window_ms) <= now {
                return None;
            }
            let metadata = ResponseMetadata {
                stale: entry.fresh_until_ms <= now,
                ..(*entry.metadata).clone()
            };
            CachedResponse::new(entry.value, Arc::new(metadata))
        };
        if found.metadata.stale {
            self.counters(key.operation())
                .stale_served
                .fetch_add(1, Ordering::Relaxed);
        }
        Some(found)
    }

    /// Reads `key` like [`get`](Self::get) and reports who answered (HIT_L1, HIT_L2 or MISS)
    /// with the time spent in each layer.
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub async fn get_with_status(
        &self,
        key: &RequestKey,
    ) -> Result<(Option<CachedResponse<T>>, ReadReport)> {
        let mut report = ReadReport::new(ReadStatus::Miss);
        let found = self
            .lookup_timed(key, &RequestControls::default(), true, Some(&mut report))
            .await?;
        report.status = match found.as_ref().and_then(|hit| hit.metadata.layer) {
            Some(Layer::L1) => ReadStatus::HitL1,
            Some(_) => ReadStatus::HitL2,
            None => ReadStatus::Miss,
        };
        Ok((found, report))
    }

    /// Removes the answer stored for `key` from L1 and Redis; true when either held it.
    ///
    /// # Errors
    /// Redis errors other than unavailability.
    pub async fn delete(&self, key: &RequestKey) -> Result<bool> {
        let name = key.cache_key().as_str();
        self.inner.epochs.bump(name);
        let in_l1 = self.inner.l1.as_ref().is_some_and(|l1| l1.remove(name));
        let in_l2 = match &self.inner.l2 {
            Some(l2) => {
                use cache_core::CacheInterface as _;
                l2.delete(key.cache_key()).await?
            }
            None => false,
        };
        Ok(in_l1 || in_l2)
    }

    /// The keys (`{operation}:{digest}`) held in L1 now.
    pub fn l1_keys(&self) -> Vec<CacheKey> {
        self.inner
            .l1
            .as_ref()
            .map(|l1| l1.keys_matching(&KeyPattern::all()))
            .unwrap_or_default()
    }

    /// Removes every entry of `operation` (exactly that operation: `sum` never matches
    /// `summarize`) from L1 and Redis; returns how many entries were removed.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for an invalid operation; Redis errors other than unavailability.
    pub async fn invalidate_by_operation(&self, operation: &str) -> Result<u64> {
        validate_operation(operation)?;
        let removed = self
            .invalidate_matching(&KeyPattern::new(format!("{operation}:*"))?)
            .await?;
        self.counters(operation)
            .invalidated
            .fetch_add(removed, Ordering::Relaxed);
        Ok(removed)
    }

    /// Removes the entries whose key (`{operation}:{digest}`, inside this cache's namespace) matches
    /// the glob `pattern`, from L1 and Redis alike; returns how many were removed. `*` removes
    /// everything.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for a pattern longer than the key limit; Redis errors other than
    /// unavailability.
    pub async fn invalidate_pattern(&self, pattern: &str) -> Result<u64> {
        self.invalidate_matching(&KeyPattern::new(pattern)?).await
    }

    /// Removes every entry of this cache's namespace; returns how many were removed.
    ///
    /// # Errors
    /// Redis errors other than unavailability.
    pub async fn invalidate_all(&self) -> Result<u64> {
        self.invalidate_matching(&KeyPattern::all()).await
    }

    /// The counters.
    pub fn stats(&self) -> AiCacheStats {
        let (flights_in_progress, callers_waiting) = self.inner.flights.load();
        let by_operation = self
            .inner
            .ops
            .load()
            .iter()
            .map(|(op, counters)| (op.to_string(), counters.snapshot()))
            .collect();
        AiCacheStats {
            by_operation,
            by_tier: [0, 1, 2, 3].map(|i| self.inner.by_tier[i].load(Ordering::Relaxed)),
            decode_failures: self.inner.decode_failures.load(Ordering::Relaxed),
            l1_skipped_too_large: self.inner.l1_skipped_too_large.load(Ordering::Relaxed),
            l1: self.inner.l1.as_ref().map(InMemoryCache::stats),
            l2: self.inner.l2.as_ref().map(GenericRedisCache::stats),
            key_generation: self.inner.keys.stats(),
            flights_in_progress,
            callers_waiting,
        }
    }

    /// The raw figures the performance summaries are built from.
    pub(crate) fn summary_inputs(&self) -> crate::summary::Inputs {
        let operations = self
            .inner
            .ops
            .load()
            .iter()
            .map(|(op, counters)| {
                (
                    op.to_string(),
                    counters.snapshot(),
                    counters.latency.summary(),
                )
            })
            .collect();
        let tiers = std::array::from_fn(|i| {
            let t = &self.inner.tiers[i];
            (
                t.hits.load(Ordering::Relaxed),
                t.misses.load(Ordering::Relaxed),
                t.latency.summary(),
            )
        });
        crate::summary::Inputs {
            operations,
            tiers,
            stats: self.stats(),
        }
    }

    /// Flushes the Redis tier's replay queue (writes, deletes and invalidations made while Redis
    /// was unavailable), waiting up to `limit` for Redis; see [`GenericRedisCache::shutdown`].
    pub async fn shutdown(&self, limit: Duration) -> ShutdownReport {
        match &self.inner.l2 {
            Some(l2) => l2.shutdown(limit).await,
            None => ShutdownReport::default(),
        }
    }

    /// The health of both tiers.
    pub async fn health(&self) -> Option<HealthReport> {
        match &self.inner.l2 {
            Some(l2) => Some(l2.health().await),
            None => None,
        }
    }

    async fn lookup_quietly(
        &self,
        key: &RequestKey,
        controls: &RequestControls,
        count: bool,
    ) -> Option<Computed<T>> {
        match self.lookup(key, controls, count).await {
            Ok(Some(response)) => {
                let source = match response.metadata.layer {
                    Some(Layer::L1) => Source::L1,
                    _ => Source::L2,
                };
                Some(Computed {
                    response,
                    source,
                    compute_time: None,
                    stored: false,
                })
            }
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(error = %e, operation = key.operation(), "cache read failed; computing");
                None
            }
        }
    }

    fn counters(&self, operation: &str) -> Arc<OpCounters> {
        if let Some(found) = self.inner.ops.load().get(operation) {
            return Arc::clone(found);
        }
        let fresh = Arc::new(OpCounters::new(operation));
        // Two first requests of one operation may race: the map keeps whichever landed first.
        self.inner.ops.rcu(|current| {
            let mut next = HashMap::clone(current);
            next.entry(Arc::clone(&fresh.name))
                .or_insert_with(|| Arc::clone(&fresh));
            next
        });
        self.inner
            .ops
            .load()
            .get(operation)
            .map_or(fresh, Arc::clone)
    }

    fn metadata(
        &self,
        key: &RequestKey,
        operation: &Arc<str>,
        cached_at_ms: u64,
        cache_hit: bool,
        layer: Option<Layer>,
    ) -> ResponseMetadata {
        ResponseMetadata {
            cached_at: system_time(cached_at_ms),
            cache_hit,
            text_tier: Some(key.tier()),
            operation: Arc::clone(operation),
            ai_version: Arc::clone(ai_version()),
            key: self.full_key_arc(key),
            layer,
            stale: false,
        }
    }

    /// [`full_key`](Self::full_key), allocated once (assembled on the stack when it fits).
    fn full_key_arc(&self, key: &RequestKey) -> Arc<str> {
        let (namespace, logical) = (
            self.inner.namespace.as_bytes(),
            key.cache_key().as_str().as_bytes(),
        );
        let mut buffer = [0u8; 256];
        let len = namespace.len() + 1 + logical.len();
        if len > buffer.len() {
            return Arc::from(self.full_key(key));
        }
        buffer[..namespace.len()].copy_from_slice(namespace);
        buffer[namespace.len()] = b':';
        buffer[namespace.len() + 1..len].copy_from_slice(logical);
        match std::str::from_utf8(&buffer[..len]) {
            Ok(text) => Arc::from(text),
            Err(_) => Arc::from(self.full_key(key)),
        }
    }

    /// Whether an entry of `tier` for `operation` belongs in L1 (DESIGN §5's promotion rules).
    fn belongs_in_l1(&self, tier: TextTier, operation: &str, hits: u64) -> bool {
        if self.inner.l2.is_none() {
            return true;
        }
        let stable = || {
            self.inner
                .config
                .stable_operations
                .iter()
                .any(|op| op == operation)
        };
        match tier {
            TextTier::Small => true,
            TextTier::Medium => stable() || hits >= self.inner.config.promotion_hit_threshold,
            TextTier::Large => operation == "sentiment",
            _ => false,
        }
    }

    fn fill_l1(&self, key: &RequestKey, entry: L1Entry<T>, ttl: Ttl) -> bool {
        let Some(l1) = &self.inner.l1 else {
            return false;
        };
        let ttl = if self.inner.l2.is_some() {
            ttl.min(self.inner.l1_max_ttl)
        } else {
            // Memory-only, L1 is where serve-stale finds answers past their TTL.
            self.with_stale_window(ttl)
        };
        match l1.insert(key.cache_key().clone(), entry, ttl) {
            Ok(()) => true,
            Err(_) => {
                self.inner
                    .l1_skipped_too_large
                    .fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Reads L1, then Redis. `count` is false for re-checks of a read already counted.
    async fn lookup(
        &self,
        key: &RequestKey,
        controls: &RequestControls,
        count: bool,
    ) -> Result<Option<CachedResponse<T>>> {
        self.lookup_timed(key, controls, count, None).await
    }

    /// [`lookup`](Self::lookup), filling `report` with the time spent per layer when given.
    async fn lookup_timed(
        &self,
        key: &RequestKey,
        controls: &RequestControls,
        count: bool,
        report: Option<&mut ReadReport>,
    ) -> Result<Option<CachedResponse<T>>> {
        let monitoring = count && self.inner.config.monitoring_enabled;
        let sampled = monitoring && sample(self.inner.config.latency_sample_every);
        let started = (count && (sampled || self.inner.recorder.is_some())).then(Instant::now);
        let counters = self.counters(key.operation());
        let found = self
            .lookup_uncounted(key, &counters, controls, count, report)
            .await;
        if monitoring {
            let tier = &self.inner.tiers[tier_index(key.tier())];
            let counter = if matches!(found, Ok(Some(_))) {
                &tier.hits
            } else {
                &tier.misses
            };
            counter.fetch_add(1, Ordering::Relaxed);
            if let (true, Some(started)) = (sampled, started) {
                let elapsed = started.elapsed();
                tier.latency.record(elapsed);
                counters.latency.record(elapsed);
            }
        }
        let saved = match (&found, &self.inner.usage_meter) {
            (Ok(Some(hit)), Some(meter)) if count => {
                let usage = meter(&hit.value);
                OpCounters::add_usage(&counters.tokens_saved, &counters.cost_saved_micros, usage);
                Some(usage)
            }
            _ => None,
        };
        if let (Some(recorder), Some(started)) = (&self.inner.recorder, started) {
            let elapsed = started.elapsed();
            let no_l2 = self.inner.l2.is_none();
            let (layer, outcome) = match &found {
                Ok(Some(hit)) => (hit.metadata.layer.unwrap_or(Layer::L2), Outcome::Hit),
                Ok(None) if no_l2 => (Layer::L1, Outcome::Miss),
                Ok(None) => (Layer::L2, Outcome::Miss),
                Err(e) => (Layer::L2, Outcome::Failed(e.kind())),
            };
            recorder.record_operation(CacheOp::Get, layer, outcome, elapsed);
            recorder.record_request(
                &RequestEvent::new(&counters.name, key.tier().as_str(), outcome, layer, elapsed)
                    .with_saved(saved),
            );
        }
        found
    }

    /// Counts one computation of `key`'s answer, with its usage when a meter is set, and tells the
    /// recorder.
    fn account_computation(&self, key: &RequestKey, value: &T, compute_time: Duration) {
        let counters = self.counters(key.operation());
        counters.computed.fetch_add(1, Ordering::Relaxed);
        counters.compute_micros.fetch_add(
            u64::try_from(compute_time.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        let usage = self.inner.usage_meter.as_ref().map(|meter| meter(value));
        if let Some(usage) = usage {
            OpCounters::add_usage(&counters.tokens_used, &counters.cost_used_micros, usage);
        }
        if let Some(recorder) = &self.inner.recorder {
            recorder.record_compute(&counters.name, compute_time, usage);
        }
    }

    /// Takes a memory reading of both tiers (this cache's L1 of decoded answers and Redis
    /// `INFO memory`), hands it to the recorder and returns it. Monitoring does no I/O of its
    /// own: call this periodically, for example from a metrics scrape.
    ///
    /// # Errors
    /// Redis errors other than unavailability, for example [`ErrorKind::Auth`] when an ACL user may
    /// not run `INFO`.
    pub async fn report_memory(&self) -> Result<MemoryReading> {
        let mut reading = self
            .inner
            .l1
            .as_ref()
            .map(|l1| l1.stats().memory_reading())
            .unwrap_or_default();
        if let Some(l2) = &self.inner.l2 {
            reading.redis = l2.redis_memory().await?;
        }
        if let Some(recorder) = &self.inner.recorder {
            recorder.record_memory(&reading);
        }
        Ok(reading)
    }

    async fn lookup_uncounted(
        &self,
        key: &RequestKey,
        counters: &OpCounters,
        controls: &RequestControls,
        count: bool,
        mut report: Option<&mut ReadReport>,
    ) -> Result<Option<CachedResponse<T>>> {
        let l1_started = report.is_some().then(Instant::now);
        let bump = |counter: &AtomicU64| {
            if count {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        };
        bump(&self.inner.by_tier[tier_index(key.tier())]);
        let from_l1 = self.inner.l1.as_ref().and_then(|l1| {
            let name = key.cache_key().as_str();
            if count {
                l1.fetch(name)
            } else {
                l1.peek(name).map(|(entry, _)| entry)
            }
        });
        // Memory-only with a stale window, L1 keeps answers past their TTL for serve-stale only.
        let from_l1 = from_l1.filter(|entry| {
            self.inner.l2.is_some()
                || self.inner.config.stale_window.is_zero()
                || entry.fresh_until_ms > unix_millis()
        });
        if let (Some(report), Some(started), Some(_)) =
            (report.as_deref_mut(), l1_started, &self.inner.l1)
        {
            report.l1_time = Some(started.elapsed());
        }
        if let Some(entry) = from_l1 {
            bump(&counters.l1_hits);
            return Ok(Some(CachedResponse {
                value: entry.value,
                metadata: entry.metadata,
                rendered: entry.rendered,
            }));
        }
        let Some(l2) = &self.inner.l2 else {
            bump(&counters.misses);
            return Ok(None);
        };
        let epoch = self.inner.epochs.current(key.cache_key().as_str());
        let asks_redis = l2.is_l2_available();
        let l2_started = report.is_some().then(Instant::now);
        let read = l2.get_entry(key.cache_key()).await;
        if let (Some(report), Some(started), true) = (report, l2_started, asks_redis) {
            report.l2_time = Some(started.elapsed());
        }
        let Some(frame) = read? else {
            bump(&counters.misses);
            return Ok(None);
        };
        let value: T = match decode_msgpack(&frame.payload) {
            Ok(value) => value,
            Err(e) => {
                self.inner.decode_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, operation = key.operation(), "cached answer no longer decodes; treating it as a miss");
                bump(&counters.misses);
                return Ok(None);
            }
        };
        bump(&counters.l2_hits);
        let hits =
            counters.l2_hits.load(Ordering::Relaxed) + counters.l1_hits.load(Ordering::Relaxed);
        let value = Arc::new(value);
        let tier = frame.meta.text_tier.unwrap_or(key.tier());
        let mut metadata = self.metadata(
            key,
            &counters.name,
            frame.meta.cached_at_ms,
            true,
            Some(Layer::L2),
        );
        metadata.text_tier = Some(tier);
        if let Some(version) = &frame.meta.ai_version {
            metadata.ai_version = Arc::clone(version);
        }
        let remaining = frame.meta.remaining_ms(unix_millis());
        if !controls.read_only
            && self.inner.l1.is_some()
            && self.inner.epochs.current(key.cache_key().as_str()) == epoch
            && self.belongs_in_l1(tier, key.operation(), hits)
            && let Ok(ttl) = Ttl::from_millis(remaining)
        {
            let entry = L1Entry {
                value: Arc::clone(&value),
                metadata: Arc::new(ResponseMetadata {
                    layer: Some(Layer::L1),
                    ..metadata.clone()
                }),
                rendered: Rendered::default(),
                size: frame.payload.len() + 256,
                fresh_until_ms: frame.meta.expires_at_ms,
            };
            if self.fill_l1(key, entry, ttl) {
                counters.promotions.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(Some(CachedResponse::new(value, Arc::new(metadata))))
    }

    /// Stores an answer; returns its metadata when stored.
    async fn store(
        &self,
        key: &RequestKey,
        value: &Arc<T>,
        controls: &RequestControls,
    ) -> Result<Option<ResponseMetadata>> {
        let started = self.inner.recorder.as_ref().map(|_| Instant::now());
        let stored = self.store_unrecorded(key, value, controls).await;
        if let Ok(Some(_)) = &stored {
            let layer = if self.inner.l2.is_some() {
                Layer::L2
            } else {
                Layer::L1
            };
            self.record(CacheOp::Set, layer, Outcome::Done, started);
        }
        stored
    }

    async fn store_unrecorded(
        &self,
        key: &RequestKey,
        value: &Arc<T>,
        controls: &RequestControls,
    ) -> Result<Option<ResponseMetadata>> {
        if !controls.stores() {
            return Ok(None);
        }
        let counters = self.counters(key.operation());
        let payload = encode_msgpack(value.as_ref())?;
        let admitted = !is_empty_payload(&payload)
            && self
                .inner
                .admission
                .as_ref()
                .is_none_or(|admit| admit(value));
        if !admitted {
            counters.refused.fetch_add(1, Ordering::Relaxed);
            return Ok(None);
        }
        let ttl = match controls.ttl {
            Some(ttl) => ttl,
            None => self.jittered(self.inner.config.ttl_for(key.operation()))?,
        };
        let now = unix_millis();
        let frame_meta = FrameMeta::new(now, now.saturating_add(ttl.as_millis()))
            .with_operation(Arc::clone(&counters.name))
            .with_text_tier(key.tier())
            .with_ai_version(AI_VERSION);
        let name = key.cache_key().as_str();
        let epoch = self.inner.epochs.bump(name);
        if let Some(l1) = &self.inner.l1 {
            l1.remove(name);
        }
        let stored_l2 = match &self.inner.l2 {
            Some(l2) => {
                let kept = self.with_stale_window(ttl);
                l2.set_entry(
                    key.cache_key(),
                    Codec::MessagePack,
                    &frame_meta,
                    &payload,
                    kept,
                )
                .await?
            }
            None => false,
        };
        let metadata = self.metadata(key, &counters.name, now, false, None);
        let hits =
            counters.l1_hits.load(Ordering::Relaxed) + counters.l2_hits.load(Ordering::Relaxed);
        // Fill L1 only if no other write, delete or invalidation touched this key meanwhile, move
        // the epoch on so that reads that raced this write cannot promote the old answer, and give
        // the copy what is left of the Redis TTL.
        let stored_l1 = if self.inner.epochs.current(name) == epoch
            && self.belongs_in_l1(key.tier(), key.operation(), hits)
            && let Ok(l1_ttl) = Ttl::from_millis(frame_meta.remaining_ms(unix_millis()))
        {
            self.inner.epochs.bump(name);
            let entry = L1Entry {
                value: Arc::clone(value),
                metadata: Arc::new(ResponseMetadata {
                    cache_hit: true,
                    layer: Some(Layer::L1),
                    ..metadata.clone()
                }),
                rendered: Rendered::default(),
                size: payload.len() + 256,
                fresh_until_ms: frame_meta.expires_at_ms,
            };
            self.fill_l1(key, entry, l1_ttl)
        } else {
            false
        };
        if !stored_l1 && !stored_l2 {
            return Ok(None);
        }
        counters.stores.fetch_add(1, Ordering::Relaxed);
        Ok(Some(metadata))
    }

    /// How long an entry of `ttl` is kept: its TTL plus the stale window (capped at the longest
    /// TTL).
    fn with_stale_window(&self, ttl: Ttl) -> Ttl {
        let kept = (ttl.as_duration() + self.inner.config.stale_window).min(Ttl::MAX);
        Ttl::new(kept).unwrap_or(ttl)
    }

    fn jittered(&self, ttl: Duration) -> Result<Ttl> {
        let jitter = self.inner.config.ttl_jitter;
        if jitter <= 0.0 {
            return Ttl::new(ttl);
        }
        let factor = 1.0 - jitter * fastrand::f64();
        Ttl::new(ttl.mul_f64(factor))
    }

    async fn invalidate_matching(&self, pattern: &KeyPattern) -> Result<u64> {
        self.inner.epochs.bump_all();
        let mut removed: HashSet<CacheKey> = self
            .inner
            .l1
            .as_ref()
            .map(|l1| l1.remove_matching(pattern).into_iter().collect())
            .unwrap_or_default();
        if let Some(l2) = &self.inner.l2 {
            removed.extend(l2.delete_matching(pattern).await?);
            // A read that raced the walk may have promoted a removed key.
            self.inner.epochs.bump_all();
            if let Some(l1) = &self.inner.l1 {
                removed.extend(l1.remove_matching(pattern));
            }
        }
        Ok(u64::try_from(removed.len()).unwrap_or(u64::MAX))
    }
}

/// A stale answer as `get_or_compute` returns it.
fn stale_computed<T>(response: CachedResponse<T>) -> Computed<T> {
    // Another instance may have stored a fresh answer meanwhile: then it is a plain hit.
    let source = match (response.metadata.stale, response.metadata.layer) {
        (true, _) => Source::Stale,
        (false, Some(Layer::L1)) => Source::L1,
        (false, _) => Source::L2,
    };
    Computed {
        response,
        source,
        compute_time: None,
        stored: false,
    }
}
