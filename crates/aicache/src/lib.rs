//! aicache caches AI/LLM responses so that services stop paying seconds and money for answers they
//! already have.
//!
//! This facade re-exports the layers a service needs; each layer is also usable on its own:
//!
//! | feature | what it brings |
//! |---|---|
//! | `memory` | [`InMemoryCache`]: the in-process tier |
//! | `redis` | [`GenericRedisCache`]: Redis behind the in-process tier, memory-only without a URL; [`SecurityConfig`] (AUTH, ACL, TLS), [`RedisCacheSecurityManager`], encryption at rest |
//! | `ai` (default) | [`AIResponseCache`]: keys, tiers, per-operation TTLs, promotion, single-flight |
//! | `config` (default) | [`AIResponseCacheConfig`]: defaults, presets, files, environment, validation |
//! | `monitoring` (default) | [`CachePerformanceMonitor`]: histograms, hit rates, findings |
//!
//! ```no_run
//! use aicache::{CacheInterface, CacheKey, GenericRedisCache, RedisCacheConfig};
//!
//! # async fn demo() -> aicache::Result<()> {
//! // Memory-only: no Redis needed. Add `.with_redis_url(...)` to share entries through Redis.
//! let cache = GenericRedisCache::connect(RedisCacheConfig::default()).await?;
//! let key = CacheKey::new("summarize:doc-1")?;
//! if cache.get(&key).await?.is_none() {
//!     let answer = "a summary the model took two seconds to write";
//!     cache.set(&key, answer.into(), None).await?;
//! }
//! # Ok(()) }
//! ```

pub use bytes::Bytes;
pub use cache_core::{
    BreakerState, CacheInterface, CacheKey, CacheOp, Capabilities, DynCache, DynFrameStore, Error,
    ErrorKind, FrameStore, HealthReport, KeyPattern, L2Health, Layer, MemoryReading, Outcome,
    ReadReport, ReadStatus, Recorder, RedisMemory, RequestEvent, Result, SharedCache,
    ShutdownReport, StoreInfo, StoreStats, StoreWrite, TextTier, Ttl, Usage, ValidationIssue,
    ValidationResult, WalkCursor, WalkEntry, WalkMode, WalkPage, escape_glob, frame,
};

#[cfg(feature = "memory")]
pub use cache_memory::{
    InMemoryCache, L2Stats, MemoryCacheConfig, MemoryCacheStats, MemoryFrameStore, NearCache,
    SharedTier,
};

/// The in-process tier and the coherence protocol: [`InMemoryCache`](memory::InMemoryCache),
/// [`NearCache`](memory::NearCache), [`SharedTier`](memory::SharedTier) and the in-memory
/// [`FrameStore`](memory::MemoryFrameStore).
#[cfg(feature = "memory")]
pub mod memory {
    #[doc(inline)]
    pub use cache_memory::*;
}

#[cfg(feature = "redis")]
pub use cache_redis::{
    CacheEvent, CacheEventListener, ConnectTimeouts, GenericRedisCache, GenericRedisCacheBuilder,
    ListenerError, RedisCacheConfig, RedisCacheSecurityManager, RedisCacheStats, RedisStore,
    url_uses_tls, validate_redis_url,
};

#[cfg(any(feature = "redis", feature = "ai"))]
pub use cache_security::{
    AeadAlgorithm, AeadCipher, EncryptionConfig, Secret, SecurityConfig, SecurityFinding,
    SecurityValidationResult, TlsConfig,
};

#[cfg(feature = "ai")]
pub use cache_ai::{
    AI_VERSION, AIResponseCache, AIResponseCacheBuilder, AiCacheConfig, AiCacheStats,
    AiPerformanceSummary, AiRequest, CacheKeyGenerator, CacheParameterMapper, CachedResponse,
    Computed, HashAlgorithm, KeyFormat, LegacyKeyGenerator, LegacyVariant, OperationPerformance,
    OperationStats, Priority, PyValue, Recommendation, RecommendationKind, RequestControls,
    RequestKey, ResponseMetadata, Source, TextTierStatistics, TierPerformance, TierThresholds,
    UsageMeter,
};

#[cfg(feature = "config")]
pub use cache_config::{
    AIResponseCacheConfig, FileFormat, PRESETS, Preset, TextSizeTiers, connect_ai_cache,
};

#[cfg(feature = "monitoring")]
pub use cache_monitoring::{
    CachePerformanceMonitor, CompositeRecorder, CompressionMetric, Finding, InvalidationMetric,
    LatencySummary, LatencyWindow, MemoryUsageMetric, MetricsRecorder, MonitorConfig,
    MonitorSnapshot, PerformanceMetric, SavingsMetric, Severity,
};

/// True when this build includes the Redis tier (the `redis` feature).
pub const REDIS_AVAILABLE: bool = cfg!(feature = "redis");

/// Compiles the README's examples as doctests, so the README cannot drift from the code.
#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
