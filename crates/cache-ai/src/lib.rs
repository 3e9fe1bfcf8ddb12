//! aicache's AI response layer.
//!
//! - [`CacheKeyGenerator`]: key format v1 (a digest over a canonical, length-prefixed encoding of
//!   the request).
//! - [`TierThresholds`]: small / medium / large / xlarge by character count.

mod keys;
mod tiers;

pub use keys::{
    AiRequest, CacheKeyGenerator, HashAlgorithm, KeyGenerationStats, MAX_OPERATION_LEN, RequestKey,
    validate_operation,
};
pub use tiers::TierThresholds;
