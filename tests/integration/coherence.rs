//! The coherence core against a real Redis: what a miss and a hit cost in commands, settings that
//! exist only on builders, and one rule per setting whichever layer reads it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aicache::{
    AIResponseCache, AIResponseCacheConfig, AiCacheConfig, AiRequest, BreakerState, CacheInterface,
    CacheKey, CacheOp, ErrorKind, GenericRedisCache, Layer, MemoryCacheConfig, Outcome, Recorder,
    RedisCacheConfig, RequestControls, Source,
};
use cache_testkit::RedisServer;

use crate::support::{raw, server, test_config};

/// The calls per command the server counted since the last `CONFIG RESETSTAT`, data commands only
/// (the stats connection's own `CONFIG`/`INFO` are left out).
async fn command_calls(server: &RedisServer) -> BTreeMap<String, u64> {
    let mut conn = raw(server).await;
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut conn)
        .await
        .unwrap();
    info.lines()
        .filter_map(|line| line.strip_prefix("cmdstat_"))
        .filter_map(|line| {
            let (name, rest) = line.split_once(':')?;
            let calls = rest
                .strip_prefix("calls=")?
                .split(',')
                .next()?
                .parse()
                .ok()?;
            Some((name.to_string(), calls))
        })
        .filter(|(name, _)| !name.starts_with("config") && !name.starts_with("info"))
        .collect()
}

async fn reset_stats(server: &RedisServer) {
    let mut conn = raw(server).await;
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut conn)
        .await
        .unwrap();
}

async fn ai_cache(server: &RedisServer, l1: Option<MemoryCacheConfig>) -> AIResponseCache<String> {
    let config = AiCacheConfig::default().with_l1(l1);
    aicache::connect_ai_cache(config, Some(&test_config(&server.url())), None)
        .await
        .unwrap()
}

fn expect(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(n, c)| ((*n).to_string(), *c)).collect()
}

#[tokio::test]
async fn an_ai_miss_costs_one_get_and_one_set_and_a_hit_one_get() {
    let server = server();
    let cache = ai_cache(&server, Some(MemoryCacheConfig::default())).await;
    let key = cache
        .key(&AiRequest::new("summarize", "a text nobody asked about"))
        .unwrap();
    reset_stats(&server).await;
    let computed = cache
        .get_or_compute(&key, &RequestControls::default(), || async {
            Ok::<_, std::io::Error>("a summary".to_string())
        })
        .await
        .unwrap();
    assert_eq!(computed.source, Source::Computed);
    assert_eq!(
        command_calls(&server).await,
        expect(&[("get", 1), ("set", 1)])
    );
    let stats = cache.stats();
    assert_eq!(stats.by_operation["summarize"].misses, 1, "counted once");
    assert_eq!(
        stats.l2.unwrap().misses,
        1,
        "one shared-tier read, counted once"
    );

    // Another instance (its L1 is cold): one GET, nothing else.
    let other = ai_cache(&server, Some(MemoryCacheConfig::default())).await;
    reset_stats(&server).await;
    let hit = other
        .get_or_compute(&key, &RequestControls::default(), || async {
            Err::<String, _>(std::io::Error::other("must not be called"))
        })
        .await
        .unwrap();
    assert_eq!(hit.source, Source::L2);
    assert_eq!(command_calls(&server).await, expect(&[("get", 1)]));
}

#[tokio::test]
async fn a_stampede_on_one_missing_key_costs_one_read_one_compute_one_write() {
    let server = server();
    let cache = ai_cache(&server, None).await;
    let key = cache
        .key(&AiRequest::new("qa", "what everyone asks at once"))
        .unwrap();
    reset_stats(&server).await;
    let computations = Arc::new(AtomicU64::new(0));
    let release = Arc::new(tokio::sync::Notify::new());
    let callers = 200;
    let tasks: Vec<_> = (0..callers)
        .map(|_| {
            let (cache, key) = (cache.clone(), key.clone());
            let (computations, release) = (Arc::clone(&computations), Arc::clone(&release));
            tokio::spawn(async move {
                cache
                    .get_or_compute(&key, &RequestControls::default(), || async move {
                        computations.fetch_add(1, Ordering::SeqCst);
                        release.notified().await;
                        Ok::<_, std::io::Error>("the answer".to_string())
                    })
                    .await
                    .unwrap()
            })
        })
        .collect();
    // Hold the computation until every other caller waits on it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while cache.stats().callers_waiting < callers - 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "callers never joined"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    release.notify_one();
    let mut joined = 0;
    for task in tasks {
        if task.await.unwrap().source == Source::Joined {
            joined += 1;
        }
    }
    assert_eq!(computations.load(Ordering::SeqCst), 1);
    assert_eq!(joined, callers - 1);
    assert_eq!(
        command_calls(&server).await,
        expect(&[("get", 1), ("set", 1)])
    );
    let stats = &cache.stats().by_operation["qa"];
    assert_eq!(
        stats.misses,
        u64::try_from(callers).unwrap(),
        "every caller's read counted once"
    );
}

#[derive(Debug, Default)]
struct Breakers {
    opened: AtomicU64,
}

impl Recorder for Breakers {
    fn record_operation(&self, _: CacheOp, _: Layer, _: Outcome, _: Duration) {}
    fn record_compression(&self, _: usize, _: usize, _: Duration) {}
    fn record_corrupt_entry(&self, _: Layer, _: ErrorKind) {}
    fn record_invalidation(&self, _: &str, _: u64) {}
    fn record_breaker(&self, _: BreakerState, to: BreakerState) {
        if to == BreakerState::Open {
            self.opened.fetch_add(1, Ordering::SeqCst);
        }
    }
}

#[tokio::test]
async fn a_recorder_given_to_the_builder_sees_the_breaker_after_writes_were_queued() {
    // The old setter failed once the replayer held the cache; the builder takes it before the
    // cache exists, and it reaches the store's breaker.
    let mut server = server();
    let breakers = Arc::new(Breakers::default());
    let cache = GenericRedisCache::builder(test_config(&server.url()))
        .recorder(breakers.clone())
        .connect()
        .await
        .unwrap();
    let key = CacheKey::new("k").unwrap();
    server.kill();
    cache.set(&key, "v".into(), None).await.unwrap();
    assert!(cache.stats().replay_queued >= 1 || cache.stats().writes_l1_only >= 1);
    assert!(
        breakers.opened.load(Ordering::SeqCst) >= 1,
        "the breaker's opening was recorded"
    );
    let clone = cache.clone();
    assert_eq!(clone.get(&key).await.unwrap().as_deref(), Some(&b"v"[..]));
}

#[tokio::test]
async fn a_valkey_url_is_treated_the_same_by_every_layer() {
    let server = server();
    let valkey = server.url().replacen("redis://", "valkey://", 1);
    let redis = test_config(&valkey);
    assert!(redis.validate().is_valid(), "{:?}", redis.validate());
    let mut config = AIResponseCacheConfig::default();
    config.redis_url = Some(valkey.clone());
    assert!(config.validate().is_valid(), "{:?}", config.validate());
    assert!(
        config.security_config().tls.is_none(),
        "valkey:// is plain TCP"
    );
    assert!(!aicache::url_uses_tls(&valkey));
    // Both layers build and reach the same server through it.
    let generic = GenericRedisCache::connect(redis.with_key_prefix("vk"))
        .await
        .unwrap();
    let key = CacheKey::new("k").unwrap();
    generic.set(&key, "v".into(), None).await.unwrap();
    let ai: AIResponseCache<String> = config.build_ai_cache().await.unwrap();
    assert!(ai.health().await.is_some());
    let from_config = config.build_generic_cache().await.unwrap();
    assert!(from_config.is_l2_available());

    let tls = "valkeys://127.0.0.1:1";
    assert!(aicache::url_uses_tls(tls));
    let mut config = AIResponseCacheConfig::default();
    config.redis_url = Some(tls.to_string());
    assert!(
        config.security_config().tls.is_some(),
        "valkeys:// is TLS in the configuration"
    );
    assert!(
        RedisCacheConfig::default()
            .with_redis_url(tls)
            .validate()
            .is_valid(),
        "and in the Redis tier"
    );
}

#[tokio::test]
async fn shutdown_accepts_any_limit() {
    // Issue 14, item 4: `shutdown(Duration::MAX)` overflowed the deadline and panicked.
    let server = server();
    let generic = GenericRedisCache::connect(test_config(&server.url()))
        .await
        .unwrap();
    assert_eq!(generic.shutdown(Duration::MAX).await.remaining, 0);
    let ai = ai_cache(&server, Some(MemoryCacheConfig::default())).await;
    assert_eq!(ai.shutdown(Duration::MAX).await.remaining, 0);
}
