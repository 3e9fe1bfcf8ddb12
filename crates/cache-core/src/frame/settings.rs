//! [`FrameSettings`]: the codec settings every layer that writes frames shares, with their one
//! validation rule.

use std::sync::Arc;

use crate::cipher::Cipher;
use crate::validation::{ValidationIssue, ValidationResult};

use super::{Compression, DEFAULT_MAX_PAYLOAD, DEFAULT_ZSTD_LEVEL, FrameCodec};

/// The largest value a frame may carry: Redis' string limit.
pub const MAX_VALUE_SIZE_LIMIT: usize = 512 * 1024 * 1024;

/// How values are framed: compression, its level and threshold, and the size limit.
///
/// ```
/// use cache_core::frame::{Compression, FrameSettings};
///
/// let settings = FrameSettings::default().with_compression(Compression::Zstd, Some(19));
/// assert!(settings.validate().is_valid());
/// let lz4_with_level = FrameSettings::default().with_compression(Compression::Lz4, Some(3));
/// assert_eq!(lz4_with_level.validate().errors[0].field, "compression_level");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct FrameSettings {
    /// Payloads strictly larger than this many bytes are compressed (when it saves space).
    /// Default: 1000.
    pub compression_threshold: usize,
    /// The algorithm. Default: LZ4.
    pub compression: Compression,
    /// The zstd level (1..=22); unset unless the compression is zstd. Default: unset (6 with zstd).
    pub compression_level: Option<i32>,
    /// The largest payload written or read back, in bytes. Default: 64 MiB.
    pub max_value_size: usize,
}

impl Default for FrameSettings {
    fn default() -> Self {
        Self {
            compression_threshold: 1000,
            compression: Compression::Lz4,
            compression_level: None,
            max_value_size: DEFAULT_MAX_PAYLOAD,
        }
    }
}

impl FrameSettings {
    /// Sets the compression algorithm and its level.
    #[must_use]
    pub fn with_compression(mut self, compression: Compression, level: Option<i32>) -> Self {
        self.compression = compression;
        self.compression_level = level;
        self
    }

    /// Sets [`compression_threshold`](Self::compression_threshold).
    #[must_use]
    pub fn with_compression_threshold(mut self, threshold: usize) -> Self {
        self.compression_threshold = threshold;
        self
    }

    /// Sets [`max_value_size`](Self::max_value_size).
    #[must_use]
    pub fn with_max_value_size(mut self, size: usize) -> Self {
        self.max_value_size = size;
        self
    }

    /// The codec these settings describe, encrypting through `cipher` when given.
    pub fn codec(&self, cipher: Option<Arc<dyn Cipher>>) -> FrameCodec {
        let codec = FrameCodec::new()
            .with_compression(self.compression)
            .with_zstd_level(self.compression_level.unwrap_or(DEFAULT_ZSTD_LEVEL))
            .with_compression_threshold(self.compression_threshold)
            .with_max_payload(self.max_value_size);
        match cipher {
            Some(cipher) => codec.with_cipher(cipher),
            None => codec,
        }
    }

    /// Checks every field: the one place these rules live.
    pub fn validate(&self) -> ValidationResult {
        let mut r = ValidationResult::new();
        match (self.compression, self.compression_level) {
            (Compression::Zstd, Some(level)) if !(1..=22).contains(&level) => {
                r.error(ValidationIssue::new(
                    "compression_level",
                    level,
                    "1..=22 (zstd)",
                    "pick a zstd level; 3 is fast, 19 is small",
                ));
            }
            (Compression::Lz4 | Compression::None, Some(level)) => {
                r.error(ValidationIssue::new(
                    "compression_level",
                    level,
                    "unset unless compression is zstd",
                    "LZ4 has no levels: remove compression_level or choose zstd",
                ));
            }
            _ => {}
        }
        if self.max_value_size == 0 || self.max_value_size > MAX_VALUE_SIZE_LIMIT {
            r.error(ValidationIssue::new(
                "max_value_size",
                self.max_value_size,
                format!("1..={MAX_VALUE_SIZE_LIMIT} bytes (Redis' string limit)"),
                "set a positive size limit",
            ));
        }
        r
    }
}
