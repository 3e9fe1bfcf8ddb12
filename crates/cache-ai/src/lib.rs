//! aicache's AI response layer: put it in front of your LLM calls and stop paying for answers you
//! already have.
//!
//! - [`CacheKeyGenerator`]: key format v1, a digest over a canonical, length-prefixed encoding of the
//!   request (operation, text, options, question, model, prompt version) or of any serializable
//!   request.
//! - [`TierThresholds`]: small / medium / large / xlarge by character count.
//! - [`AIResponseCache`]: a [`NearCache`](cache_memory::NearCache) of decoded answers over any
//!   [`FrameStore`](cache_core::FrameStore) (Redis through cache-redis; this crate does not depend
//!   on redis-rs), per-operation TTLs, promotion rules,
//!   invalidation, [`get_or_compute`](AIResponseCache::get_or_compute) with single-flight, and
//!   per-request [`RequestControls`].
//!
//! ```
//! use cache_ai::{AIResponseCache, AiCacheConfig, AiRequest, RequestControls};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let cache: AIResponseCache<String> = AIResponseCache::new(AiCacheConfig::default())?;
//! let key = cache.key(&AiRequest::new("summarize", "A long article …"))?;
//! let first = cache
//!     .get_or_compute(&key, &RequestControls::default(), || async {
//!         Ok::<_, std::io::Error>("A summary.".to_string()) // the model call
//!     })
//!     .await?;
//! assert!(!first.response.metadata.cache_hit);
//! let again = cache.get(&key).await?.expect("cached");
//! assert_eq!(*again.value, "A summary.");
//! # Ok(()) }
//! ```
//!
//! Retiring a model or a prompt template: both are part of the digest, so bumping
//! [`AiRequest::with_model`] or [`AiRequest::with_prompt_version`] makes the old entries
//! unreachable at once. They are reclaimed when their TTL ends (every entry has one, at most the
//! operation's TTL); [`AIResponseCache::invalidate_all`] or
//! [`AIResponseCache::invalidate_by_operation`] reclaim them immediately.

mod cache;
mod compat;
mod compute;
mod config;
mod controls;
mod flight;
mod footprint;
mod handle;
mod json;
pub use json::KeyFormat;
mod keys;
mod layout;
mod legacy;
mod lookup;
mod mapper;
mod memo;
mod refresh;
mod reset;
mod response;
mod stats;
mod summary;
mod tiers;
mod write;

pub use cache::{
    AIResponseCache, AIResponseCacheBuilder, Admission, MAX_TRACKED_OPERATIONS, OTHER_OPERATIONS,
    UsageMeter,
};
pub use compat::{
    CacheCompatibilityWrapper, CompatibilityConfig, CompatibilityStats, ImportReport, LegacyRequest,
};
pub use config::{
    AI_VERSION, AiCacheConfig, DEFAULT_OPERATION_TTLS, KEY_NAMESPACE, MAX_LAYOUT_UPGRADE_WINDOW,
    is_valid_tenant,
};
pub use controls::RequestControls;
pub use handle::WeakAIResponseCache;
pub use keys::{
    AiRequest, CacheKeyGenerator, HASH_SLICE, HashAlgorithm, KeyGenerationStats, MAX_OPERATION_LEN,
    RequestKey, TIME_ONE_KEY_IN, validate_operation,
};
pub use layout::{LayoutConversion, LayoutUpgradeStats};
pub use legacy::{
    LegacyDecoded, LegacyDecoder, LegacyKeyGenerator, LegacyRefusal, LegacyVariant, MAX_JSON_DEPTH,
    MAX_LEGACY_VALUE, PyValue,
};
pub use mapper::{AI_PARAMETERS, CacheParameterMapper, GENERIC_PARAMETERS, MappedParameters};
pub use response::{CachedResponse, Computed, ResponseMetadata, Source};
pub use stats::{AiCacheStats, OperationStats, RefreshStats};
pub use summary::{
    AiPerformanceSummary, InheritedStats, OperationPerformance, Priority, Recommendation,
    RecommendationKind, TextTierStatistics, TierPerformance,
};
pub use tiers::TierThresholds;
