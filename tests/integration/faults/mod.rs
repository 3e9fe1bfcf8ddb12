//! Failure behaviour with real servers: outages, bad credentials, foreign bytes, bad listeners.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aicache::{
    CacheEvent, CacheInterface, CacheKey, CacheOp, ErrorKind, GenericRedisCache, KeyPattern,
    L2Health, Layer, ListenerError, Outcome, Recorder, Ttl,
};
use cache_testkit::{AclUser, RedisServer, ServerConfig};
use proptest::prelude::*;
use redis::AsyncCommands;

use crate::support::{eventually, holds_value, raw, redis_cache, server, test_config};

fn key(s: &str) -> CacheKey {
    CacheKey::new(s).unwrap()
}

fn ttl(secs: u64) -> Option<Ttl> {
    Some(Ttl::from_secs(secs).unwrap())
}

mod behaviour;
mod outages;

/// Whether `cache` gets Redis back within 10 s, reads asking for the link meanwhile.
async fn recovers(cache: &GenericRedisCache) -> bool {
    eventually(Duration::from_secs(10), || {
        let cache = cache.clone();
        async move {
            let _ = cache.get(&key("probe")).await;
            cache.is_l2_available()
        }
    })
    .await
}
