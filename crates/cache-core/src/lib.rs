//! The core contract of aicache.
//!
//! This crate defines what every other aicache crate agrees on, and performs no I/O:
//!
//! - [`CacheInterface`], the backend trait, with its dyn-compatible twin [`DynCache`] and the
//!   type-erased handle [`SharedCache`];
//! - [`FrameStore`], the shared-tier contract over encoded frames, with its dyn-compatible twin
//!   [`DynFrameStore`] and the store-agnostic reports ([`HealthReport`], [`ShutdownReport`],
//!   [`StoreStats`]);
//! - [`CacheKey`], [`KeyPattern`] (Redis glob semantics), [`Namespace`] (the key layout that keeps
//!   caches apart) and [`Ttl`];
//! - [`Capabilities`] that backends declare;
//! - [`Error`] with its [`ErrorKind`], and [`ValidationResult`];
//! - the versioned value [`frame`] stored in shared backends (MessagePack payloads, LZ4 compression,
//!   optional encryption through [`Cipher`]);
//! - the [`Recorder`] trait through which the data path reports measurements.
//!
//! ```
//! use cache_core::{CacheKey, KeyPattern, Ttl};
//!
//! let key = CacheKey::new("summarize:abc")?;
//! assert!(KeyPattern::new("summarize:*")?.matches(key.as_str()));
//! let ttl = Ttl::from_secs(60)?;
//! # let _ = ttl;
//! # Ok::<(), cache_core::Error>(())
//! ```

mod backend;
mod capability;
mod cipher;
mod counter;
mod error;
pub mod frame;
mod key;
pub mod namespace;
mod recorder;
mod status;
mod store;
mod ttl;
mod validation;

pub use backend::{BoxFuture, CacheInterface, DynCache, SharedCache};
pub use capability::Capabilities;
pub use cipher::Cipher;
pub use counter::{Striped, StripedCounter};
pub use error::{Error, ErrorKind, Result};
pub use frame::TextTier;
pub use key::{CacheKey, KeyPattern, MAX_KEY_LEN, escape_glob};
pub use namespace::{Namespace, NamespaceClaim, is_valid_tenant};
pub use recorder::{
    BreakerState, CacheOp, Layer, MemoryReading, Outcome, Recorder, RedisMemory, RequestEvent,
    Severity, Usage,
};
pub use status::{ReadReport, ReadStatus};
pub use store::{
    DynFrameStore, FrameStore, HealthReport, L2Health, NodeHealth, REMOVAL_CLOCK_MARGIN_MS,
    RemovedSink, RestoreEntry, RestoreRule, ShutdownReport, StoreInfo, StoreStats, StoreWrite,
    WalkCursor, WalkEntry, WalkMode, WalkPage, check_frame_size, removal_blocks,
};
pub use ttl::Ttl;
pub use validation::{ValidationIssue, ValidationResult};

/// Milliseconds since the Unix epoch by the system clock (0 if the clock is before 1970).
///
/// Frames store absolute times in this unit so that every instance sharing a Redis agrees on when
/// an entry expires.
pub fn unix_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
