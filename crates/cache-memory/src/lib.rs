//! aicache's in-process memory tier, and the one L1/L2 coherence protocol.
//!
//! - [`InMemoryCache`]: the L1 itself.
//! - [`NearCache`]: an L1 in front of a shared tier, with the write-epoch protocol that keeps a
//!   removed or overwritten value from coming back into L1 (the only code that keeps epochs).
//! - [`SharedTier`]: a [`FrameStore`](cache_core::FrameStore) seen through a frame codec.
//! - [`MemoryFrameStore`]: a `FrameStore` in process memory, for tests and memory-only tools.
//!
//! [`InMemoryCache`] is a concurrent cache on [quick_cache] (S3-FIFO eviction, sharded locks) with
//! what quick_cache leaves out: a per-entry TTL enforced on every read, a byte budget together with
//! an entry cap, statistics, glob pattern operations with Redis semantics, and a typed error for a
//! value too large to hold (quick_cache silently drops an item heavier than a shard).
//!
//! It is generic over its value type, so the AI layer keeps decoded responses behind `Arc` and a hit
//! costs no deserialization. With `V = Bytes` it implements the backend trait
//! [`CacheInterface`](cache_core::CacheInterface) and runs the conformance suite like every backend.
//!
//! ```
//! use cache_memory::{InMemoryCache, MemoryCacheConfig};
//! use cache_core::{CacheKey, Ttl};
//! use bytes::Bytes;
//!
//! let cache: InMemoryCache<Bytes> = InMemoryCache::new(MemoryCacheConfig::default())?;
//! let key = CacheKey::new("k")?;
//! cache.insert(key.clone(), Bytes::from_static(b"0"), Ttl::from_secs(60)?)?;
//! assert_eq!(cache.fetch("k").as_deref(), Some(&b"0"[..]));
//! assert_eq!(cache.stats().hits, 1);
//! # Ok::<(), cache_core::Error>(())
//! ```

mod cache;
mod config;
mod near;
mod store;
mod tier;

pub use cache::{ByteSize, InMemoryCache, MemoryCacheStats};
pub use config::MemoryCacheConfig;
pub use near::{Fetched, Fill, Lookup, NearCache, ReadTicket};
pub use store::MemoryFrameStore;
pub use tier::{L2Stats, ReadClock, SharedTier, calibrate_clock, off_runtime};
