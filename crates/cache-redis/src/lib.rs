//! aicache's Redis tier: the only code that speaks to Redis.
//!
//! - [`RedisStore`]: one Redis server as a [`FrameStore`](cache_core::FrameStore), with the
//!   connection factory (AUTH, ACL user, TLS), our timeouts, the circuit breaker, write replay and
//!   pooled walk connections.
//! - [`GenericRedisCache`]: a [`NearCache`](cache_memory::NearCache) of bytes over a store (Redis
//!   by default, any `FrameStore` through the builder).
//! - [`RedisCacheSecurityManager`]: probes a live connection and scores it with cache-security's
//!   rules.
//!
//! - **Memory-only by default.** Without a Redis URL the cache is its L1 alone: the embedded default.
//! - **One multiplexed connection** (a bare redis-rs `MultiplexedConnection`, cloned per call,
//!   replaced by the link when it dies) carries every hot-path command, so concurrent tasks are
//!   pipelined on one socket.
//! - **A timeout of ours on every network call.** An unreachable Redis, at start or mid-run, never
//!   fails a cache call: reads answer from L1 or as misses, writes still land in L1, and one
//!   background probe at a time reconnects with exponential backoff (no re-dial per operation).
//!   Wrong credentials or a refused permission are errors, never "memory-only mode".
//! - **Values are framed** ([`cache_core::frame`]): self-describing, LZ4-compressed above a
//!   threshold, carrying their absolute expiry so an L2 hit promotes into L1 for
//!   `min(remaining TTL, l1_max_ttl)` with no extra round trip. Bytes that are not a valid frame are a
//!   miss, are deleted and are counted.
//! - **Pattern work** uses `SCAN MATCH … COUNT` and pipelined `UNLINK`, never `KEYS`.
//! - **Listeners** ([`CacheEventListener`]) observe hits, misses, writes and deletes; one that fails
//!   or panics never breaks a cache operation.
//!
//! ```no_run
//! use cache_core::{CacheInterface, CacheKey};
//! use cache_redis::{GenericRedisCache, RedisCacheConfig};
//!
//! # async fn demo() -> cache_core::Result<()> {
//! let config = RedisCacheConfig::default().with_redis_url("redis://127.0.0.1:6379");
//! let cache = GenericRedisCache::connect(config).await?;
//! let key = CacheKey::new("greeting")?;
//! cache.set(&key, "hello".into(), None).await?;
//! assert_eq!(cache.get(&key).await?.as_deref(), Some(&b"hello"[..]));
//! # Ok(()) }
//! ```

mod backend;
mod baseline;
mod breaker;
mod cache;
mod client;
mod cluster;
mod config;
mod events;
mod hot;
mod link;
mod manager;
mod pattern;
mod removal;
mod replay;
mod spares;
mod stats;
mod store;

pub use baseline::RawBaseline;
pub use cache::{GenericRedisCache, GenericRedisCacheBuilder, frame_codec};
pub use client::ConnectTimeouts;
pub use config::{
    DEFAULT_REPLAY_HORIZON, DEFAULT_REPLAY_QUEUE_MAX_BYTES, RedisCacheConfig, check_redis_url,
    redact_url, url_uses_tls, validate_cluster_urls, validate_redis_url,
};
pub use events::{CacheEvent, CacheEventListener, ListenerError};
pub use manager::RedisCacheSecurityManager;
pub use stats::RedisCacheStats;
pub use store::{MAX_SNAPSHOT_BYTES, RedisStore};
