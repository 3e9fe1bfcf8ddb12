//! The measurement hook that cache-monitoring implements.
//!
//! Data-path crates hold an `Option<Arc<dyn Recorder>>` and call it only when it is set, so a cache
//! without monitoring does not even read the clock for it.

use std::fmt::{self, Debug};
use std::time::Duration;

use crate::error::ErrorKind;

/// The tier an operation was served by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Layer {
    /// The in-process memory tier.
    L1,
    /// The shared tier (Redis).
    L2,
}

impl Layer {
    /// `"l1"` or `"l2"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::L1 => "l1",
            Self::L2 => "l2",
        }
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The cache operation being recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CacheOp {
    /// A single-key read.
    Get,
    /// A single-key write.
    Set,
    /// A single-key delete.
    Delete,
    /// An existence check.
    Exists,
    /// A remaining-TTL query.
    RemainingTtl,
    /// A pattern scan.
    Scan,
    /// A delete by pattern (including clear).
    DeletePattern,
    /// A multi-key read.
    GetMany,
    /// A multi-key write.
    SetMany,
}

impl CacheOp {
    /// A stable lowercase name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Get => "get",
            Self::Set => "set",
            Self::Delete => "delete",
            Self::Exists => "exists",
            Self::RemainingTtl => "remaining_ttl",
            Self::Scan => "scan",
            Self::DeletePattern => "delete_pattern",
            Self::GetMany => "get_many",
            Self::SetMany => "set_many",
        }
    }
}

/// How a recorded operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    /// A read that found the key.
    Hit,
    /// A read that did not find the key.
    Miss,
    /// A write or other operation that succeeded.
    Done,
    /// The operation failed.
    Failed(ErrorKind),
}

/// Receives measurements from the data path.
///
/// # Contract
/// Every method is called on the hot path: implementations must be quick, must not block and must not
/// panic. They receive no prompt text: keys are digests and patterns are the caller's own.
pub trait Recorder: Send + Sync + Debug {
    /// One operation on one layer took `elapsed`.
    fn record_operation(&self, op: CacheOp, layer: Layer, outcome: Outcome, elapsed: Duration);

    /// A payload of `original_bytes` was stored as `stored_bytes` after `elapsed` of compression.
    fn record_compression(&self, original_bytes: usize, stored_bytes: usize, elapsed: Duration);

    /// An entry on `layer` could not be decoded (the error has `kind`) and was removed.
    fn record_corrupt_entry(&self, layer: Layer, kind: ErrorKind);

    /// A pattern invalidation removed `removed` entries.
    fn record_invalidation(&self, pattern: &str, removed: u64);
}
