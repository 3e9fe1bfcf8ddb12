//! The migration manager against real redis-servers (started by the test kit on free ports).
#![allow(
    clippy::unwrap_used,
    clippy::cast_possible_truncation,
    reason = "test code: a failure should panic with its error; test data generators truncate"
)]

use std::time::Duration;

use bytes::Bytes;
use cache_core::frame::{Codec, FrameCodec, FrameMeta};
use cache_core::{CacheKey, FrameStore, Ttl, unix_millis};
use cache_migrate::CacheMigrationManager;
use cache_redis::{RedisCacheConfig, RedisStore};
use cache_testkit::RedisServer;

mod cluster;
mod edges;
mod interrupted;
mod removals;
mod roundtrip;

pub(crate) fn key(s: &str) -> CacheKey {
    CacheKey::new(s).unwrap()
}

pub(crate) async fn store(server: &RedisServer, namespace: &str) -> RedisStore {
    let config = RedisCacheConfig::default()
        .with_redis_url(server.url())
        .with_key_prefix(namespace)
        .with_command_timeout(Duration::from_secs(5))
        .with_connect_timeout(Duration::from_secs(2));
    let store = RedisStore::connect(&config, None).await.unwrap();
    assert!(store.is_available());
    store
}

/// A frame of `size` pseudo-random (incompressible) payload bytes.
pub(crate) fn frame(codec: &FrameCodec, full_key: &str, seed: u64, size: usize) -> Bytes {
    let now = unix_millis();
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let payload: Vec<u8> = (0..size)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    let meta = FrameMeta::new(now, now + 3_600_000).with_operation("qa");
    Bytes::from(
        codec
            .encode(full_key, &meta, Codec::Raw, &payload)
            .unwrap()
            .bytes,
    )
}

pub(crate) async fn fill(
    store: &dyn cache_core::DynFrameStore,
    prefix: &str,
    count: u64,
    ttl_secs: u64,
) {
    let codec = FrameCodec::new();
    let ns = store.info().namespace;
    let ttl = Ttl::from_secs(ttl_secs).unwrap();
    let mut batch = Vec::new();
    for i in 0..count {
        let k = key(&format!("{prefix}:{i:06}"));
        batch.push((k.clone(), frame(&codec, &format!("{ns}:{k}"), i, 1024)));
        if batch.len() == 1000 {
            store.set_many(&batch, ttl).await.unwrap();
            batch.clear();
        }
    }
    store.set_many(&batch, ttl).await.unwrap();
}

pub(crate) async fn db_size(server: &RedisServer) -> u64 {
    let mut conn = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    redis::cmd("DBSIZE").query_async(&mut conn).await.unwrap()
}

pub(crate) fn manager() -> CacheMigrationManager {
    CacheMigrationManager::new()
}
