//! aicache's in-process memory tier.
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
mod epochs;

pub use cache::{ByteSize, InMemoryCache, MemoryCacheStats};
pub use config::MemoryCacheConfig;
pub use epochs::WriteEpochs;
