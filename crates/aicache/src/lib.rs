//! aicache caches AI/LLM responses so that services stop paying seconds and money for answers they
//! already have.
//!
//! ```
//! # #[cfg(feature = "ai")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use aicache::prelude::*;
//!
//! // Memory-only: no Redis needed (with the `config` feature, `AIResponseCacheConfig` adds Redis).
//! let cache: AIResponseCache<String> = AIResponseCache::new(AiCacheConfig::default())?;
//! let key = cache.key(&AiRequest::new("summarize", "A long article …"))?;
//! for _ in 0..2 {
//!     let answer = cache
//!         .get_or_compute(&key, &RequestControls::default(), || async {
//!             Ok::<_, std::io::Error>("A summary.".to_string()) // the model call, made once
//!         })
//!         .await?;
//!     println!("{} ({:?})", answer.response.value, answer.source);
//! }
//! # Ok(()) }
//! # #[cfg(not(feature = "ai"))]
//! # fn main() {}
//! ```
//!
//! This facade re-exports the layers a service needs, one module per layer, and each layer is also
//! a crate of its own. The names a first user needs are in [`prelude`]; every name of the design's
//! export plan is also at the root.
//!
//! | feature | module | what it brings |
//! |---|---|---|
//! | `memory` | [`memory`] | the in-process tier, `NearCache` (the coherence protocol), an in-memory store |
//! | `redis` | [`redis`] | Redis as the shared tier (`RedisStore`, `GenericRedisCache`), the security manager |
//! | `ai` (default) | [`ai`], [`security`] | `AIResponseCache` over any store: keys, tiers, TTLs, promotion, single-flight; encryption settings |
//! | `config` (default) | [`config`] | `AIResponseCacheConfig`: defaults, presets, files, environment, validation; wires Redis (implies `ai`, `redis`) |
//! | `monitoring` (default) | [`monitoring`] | `CachePerformanceMonitor`, the `metrics` facade recorder |
//! | `prometheus` | [`monitoring`] | a Prometheus exporter for the `metrics` facade (implies `monitoring`) |
//! | `bench` | [`bench`](mod@bench) | `CachePerformanceBenchmark`: workloads with same-run baselines, grades, regression checks, reports and an SVG chart (implies `ai`, `redis`) |
//! | `migrate` (default) | [`migrate`] | `CacheMigrationManager`: backup, restore, migrate and verify between stores (implies `memory`) |
//!
//! A first user adds `aicache` with its default features; a service that must not link redis-rs
//! uses `default-features = false, features = ["ai"]` (memory-only, or a store of its own).
#![cfg_attr(docsrs, feature(doc_cfg))]

pub use bytes::Bytes;
pub use cache_core::{
    BoxFuture, BreakerState, CacheInterface, CacheKey, CacheOp, Capabilities, Cipher, DynCache,
    DynFrameStore, Error, ErrorKind, FrameStore, HealthReport, KeyPattern, L2Health, Layer,
    MAX_KEY_LEN, MemoryReading, Namespace, NamespaceClaim, NodeHealth, Outcome, ReadReport,
    ReadStatus, Recorder, RedisMemory, RemovedSink, RequestEvent, RestoreEntry, RestoreRule,
    Result, Severity, SharedCache, ShutdownReport, StoreInfo, StoreStats, StoreWrite, TextTier,
    Ttl, Usage, ValidationIssue, ValidationResult, WalkCursor, WalkEntry, WalkMode, WalkPage,
    escape_glob, frame, namespace, unix_millis,
};

/// True when this build includes the Redis tier (the `redis` feature).
pub const REDIS_AVAILABLE: bool = cfg!(feature = "redis");

/// The in-process tier and the coherence protocol.
#[cfg(feature = "memory")]
#[cfg_attr(docsrs, doc(cfg(feature = "memory")))]
pub mod memory {
    #[doc(inline)]
    pub use cache_memory::*;
}

/// Redis as the shared tier: the store, the generic two-tier cache, the security manager.
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis {
    #[doc(inline)]
    pub use cache_redis::*;
}

/// The AI response layer.
#[cfg(feature = "ai")]
#[cfg_attr(docsrs, doc(cfg(feature = "ai")))]
pub mod ai {
    #[doc(inline)]
    pub use cache_ai::*;
}

/// Security settings: TLS, ACL users, secrets, encryption at rest, and the security rules.
#[cfg(any(feature = "redis", feature = "ai"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "redis", feature = "ai"))))]
pub mod security {
    #[doc(inline)]
    pub use cache_security::*;
}

/// Layered configuration that builds caches.
#[cfg(feature = "config")]
#[cfg_attr(docsrs, doc(cfg(feature = "config")))]
pub mod config {
    #[doc(inline)]
    pub use cache_config::*;
}

/// The benchmark library: workloads against a service's own cache, with same-run baselines.
#[cfg(feature = "bench")]
#[cfg_attr(docsrs, doc(cfg(feature = "bench")))]
pub mod bench {
    #[doc(inline)]
    pub use cache_bench::*;
}

/// Backup, restore, migration and verification between stores.
#[cfg(feature = "migrate")]
#[cfg_attr(docsrs, doc(cfg(feature = "migrate")))]
pub mod migrate {
    #[doc(inline)]
    pub use cache_migrate::*;
}

/// Monitoring: the performance monitor and the `metrics` facade recorder.
#[cfg(feature = "monitoring")]
#[cfg_attr(docsrs, doc(cfg(feature = "monitoring")))]
pub mod monitoring {
    #[doc(inline)]
    pub use cache_monitoring::*;
}

/// The names a first user needs: `use aicache::prelude::*;`.
pub mod prelude {
    pub use cache_core::{CacheInterface, CacheKey, Error, ErrorKind, Result, Ttl};

    #[cfg(feature = "ai")]
    #[doc(no_inline)]
    pub use cache_ai::{
        AIResponseCache, AiCacheConfig, AiRequest, CachedResponse, Computed, RequestControls,
        RequestKey, Source,
    };
    #[cfg(feature = "config")]
    #[doc(no_inline)]
    pub use cache_config::AIResponseCacheConfig;
    #[cfg(feature = "memory")]
    #[doc(no_inline)]
    pub use cache_memory::{InMemoryCache, MemoryCacheConfig};
    #[cfg(feature = "monitoring")]
    #[doc(no_inline)]
    pub use cache_monitoring::CachePerformanceMonitor;
    #[cfg(feature = "redis")]
    #[doc(no_inline)]
    pub use cache_redis::{GenericRedisCache, RedisCacheConfig};
}

// The design's export plan (and what its methods return) at the root.

#[cfg(feature = "memory")]
#[cfg_attr(docsrs, doc(cfg(feature = "memory")))]
pub use cache_memory::{
    ByteSize, Fetched, Fill, InMemoryCache, L2Stats, Lookup, MemoryCacheConfig, MemoryCacheStats,
    MemoryFrameStore, NearCache, ReadTicket, SharedTier,
};

#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use cache_redis::{
    CacheEvent, CacheEventListener, ConnectTimeouts, GenericRedisCache, GenericRedisCacheBuilder,
    ListenerError, RedisCacheConfig, RedisCacheSecurityManager, RedisCacheStats, RedisStore,
    check_redis_url, frame_codec, url_uses_tls, validate_redis_url,
};

#[cfg(any(feature = "redis", feature = "ai"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "redis", feature = "ai"))))]
pub use cache_security::{
    AeadAlgorithm, AeadCipher, EncryptionConfig, ProbeReport, Secret, SecurityConfig,
    SecurityFinding, SecurityValidationResult, TlsConfig, assess, redact_url,
};

#[cfg(feature = "ai")]
#[cfg_attr(docsrs, doc(cfg(feature = "ai")))]
pub use cache_ai::{
    AI_PARAMETERS, AI_VERSION, AIResponseCache, AIResponseCacheBuilder, Admission, AiCacheConfig,
    AiCacheStats, AiPerformanceSummary, AiRequest, CacheCompatibilityWrapper, CacheKeyGenerator,
    CacheParameterMapper, CachedResponse, CompatibilityConfig, CompatibilityStats, Computed,
    DEFAULT_OPERATION_TTLS, GENERIC_PARAMETERS, HashAlgorithm, ImportReport, InheritedStats,
    KEY_NAMESPACE, KeyFormat, KeyGenerationStats, LayoutConversion, LayoutUpgradeStats,
    LegacyDecoded, LegacyDecoder, LegacyKeyGenerator, LegacyRefusal, LegacyRequest, LegacyVariant,
    MAX_OPERATION_LEN, MAX_TRACKED_OPERATIONS, MappedParameters, OTHER_OPERATIONS,
    OperationPerformance, OperationStats, Priority, PyValue, Recommendation, RecommendationKind,
    RequestControls, RequestKey, ResponseMetadata, Source, TextTierStatistics, TierPerformance,
    TierThresholds, UsageMeter, is_valid_tenant, validate_operation,
};

#[cfg(feature = "config")]
#[cfg_attr(docsrs, doc(cfg(feature = "config")))]
pub use cache_config::{
    AIResponseCacheConfig, ENV_PREFIX, FileFormat, PRESETS, Preset, TextSizeTiers,
    connect_ai_cache, preset, reference_markdown,
};

#[cfg(feature = "monitoring")]
#[cfg_attr(docsrs, doc(cfg(feature = "monitoring")))]
pub use cache_monitoring::{
    BreakerMetric, BreakerTransition, CachePerformanceMonitor, CompositeRecorder,
    CompressionMetric, Finding, InvalidationMetric, InvalidationStats, LatencySummary,
    LatencyWindow, MemoryUsageMetric, MetricsRecorder, MonitorConfig, MonitorSnapshot,
    OperationSummary, PerformanceMetric, RequestSummary, SavingsMetric,
};

#[cfg(feature = "bench")]
#[cfg_attr(docsrs, doc(cfg(feature = "bench")))]
pub use cache_bench::{BenchmarkReport, BenchmarkResult, CachePerformanceBenchmark};

#[cfg(feature = "migrate")]
#[cfg_attr(docsrs, doc(cfg(feature = "migrate")))]
pub use cache_migrate::{
    BackupResult, CacheMigrationManager, MigrationResult, RestorePolicy, RestoreResult,
    VerifyOptions, VerifyResult,
};

#[cfg(feature = "prometheus")]
#[cfg_attr(docsrs, doc(cfg(feature = "prometheus")))]
pub use cache_monitoring::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

/// Compiles the README's examples as doctests, so the README cannot drift from the code.
#[doc = include_str!("../../../README.md")]
#[cfg(all(
    doctest,
    feature = "config",
    feature = "monitoring",
    feature = "migrate"
))]
pub struct ReadmeDoctests;

#[cfg(test)]
mod tests;
