//! The keys of answers imported from the Python service: `{operation}:py{62 hex digits}`, the
//! digest being SHA-256 of the Python key. They have the shape of every v1 key (so every v1
//! removal of the operation, pattern or namespace covers them) and can never equal a v1 digest
//! (those are hexadecimal only).

use cache_core::frame::TextTier;
use cache_core::{CacheKey, Result};
use sha2::{Digest, Sha256};

use super::{RequestKey, validate_operation};

impl RequestKey {
    /// The key an answer stored by the Python service under `legacy_key` (without its prefix)
    /// is imported to.
    pub(crate) fn imported(operation: &str, legacy_key: &str, tier: TextTier) -> Result<Self> {
        validate_operation(operation)?;
        let digest = hex::encode(Sha256::digest(legacy_key.as_bytes()));
        let key = CacheKey::new(format!("{operation}:py{}", &digest[..62]))?;
        Ok(Self {
            key,
            op_len: operation.len(),
            tier,
        })
    }
}
