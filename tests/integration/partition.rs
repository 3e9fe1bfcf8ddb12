//! Partitions never resurrect removals (issue 12, item 3): instance A, cut off from Redis by a
//! proxy, queues writes; instance B, still connected, removes those keys (one by key, one by
//! pattern while the key was absent from Redis); when A's link heals, its replay lands over
//! neither. A write queued longer than the replay horizon is dropped and counted.

use std::time::Duration;

use aicache::{CacheInterface, CacheKey, GenericRedisCache, KeyPattern, RedisCacheConfig, Ttl};
use cache_testkit::TcpProxy;

use crate::support::{eventually, holds_value, raw, redis_cache, server, test_config};

fn key(name: &str) -> CacheKey {
    CacheKey::new(name).unwrap()
}

fn ttl() -> Option<Ttl> {
    Some(Ttl::from_secs(600).unwrap())
}

fn through(proxy: &TcpProxy, prefix: &str) -> RedisCacheConfig {
    test_config(&proxy.url())
        .with_key_prefix(prefix)
        .with_reconnect_delays(Duration::from_millis(20), Duration::from_millis(50))
}

async fn cut_off(cache: &GenericRedisCache, proxy: &TcpProxy) {
    proxy.cut();
    // A write that fails opens the breaker; the cache then queues without trying.
    cache.set(&key("probe"), "p".into(), ttl()).await.unwrap();
    assert!(
        eventually(Duration::from_secs(5), || async {
            !cache.is_l2_available()
        })
        .await,
        "the proxy did not cut the cache off"
    );
}

async fn replayed(cache: &GenericRedisCache) {
    // No request reaches Redis meanwhile: the replayer itself drives the recovery.
    let done = eventually(Duration::from_secs(10), || async {
        cache.is_l2_available() && cache.health().await.replay_queue_depth == 0
    })
    .await;
    assert!(
        done,
        "the replay never finished: {:?} {:?}",
        cache.health().await,
        cache.stats()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_replayed_after_a_partition_never_lands_over_a_later_removal() {
    let server = server();
    let proxy = TcpProxy::start(server.port());
    let a = redis_cache(through(&proxy, "part")).await;
    let b = redis_cache(test_config(&server.url()).with_key_prefix("part")).await;
    let mut conn = raw(&server).await;
    b.set(&key("k:deleted"), "b".into(), ttl()).await.unwrap();

    cut_off(&a, &proxy).await;
    // A makes its writes while cut off: queued for replay.
    for name in ["k:deleted", "p:absent", "k:kept"] {
        a.set(&key(name), "from a".into(), ttl()).await.unwrap();
    }
    assert!(a.health().await.replay_queue_depth >= 3);
    // B removes two of them: one it holds, one Redis never had (only a pattern covers it).
    assert!(b.delete(&key("k:deleted")).await.unwrap());
    b.delete_pattern(&KeyPattern::new("p:*").unwrap())
        .await
        .unwrap();

    proxy.heal();
    replayed(&a).await;
    for removed in ["part:k:deleted", "part:p:absent"] {
        assert!(
            !holds_value(&mut conn, removed).await,
            "{removed} came back"
        );
    }
    assert_eq!(b.get(&key("k:deleted")).await.unwrap(), None);
    assert_eq!(b.get(&key("p:absent")).await.unwrap(), None);
    // Nothing removed the third write: it landed.
    assert_eq!(
        b.get(&key("k:kept")).await.unwrap().as_deref(),
        Some(&b"from a"[..])
    );
    assert!(a.stats().replay_skipped >= 2, "{:?}", a.stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_queued_longer_than_the_horizon_is_dropped_and_counted() {
    let server = server();
    let proxy = TcpProxy::start(server.port());
    let a = redis_cache(through(&proxy, "late").with_replay_horizon(Duration::from_secs(1))).await;
    let mut conn = raw(&server).await;
    cut_off(&a, &proxy).await;
    a.set(&key("old"), "stale".into(), ttl()).await.unwrap();
    // The only wait in this file: the horizon has to pass.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    proxy.heal();
    replayed(&a).await;
    assert!(!holds_value(&mut conn, "late:old").await);
    let store = a.l2().map(|l2| l2.stats().store).unwrap();
    assert!(store.replay_expired >= 1, "{store:?}");
}

#[tokio::test]
async fn removals_and_walks_survive_a_foreign_key_of_another_type_in_the_namespace() {
    let server = server();
    let cache = redis_cache(test_config(&server.url()).with_key_prefix("mixed")).await;
    let mut conn = raw(&server).await;
    let (): () = redis::cmd("LPUSH")
        .arg("mixed:list")
        .arg("x")
        .query_async(&mut conn)
        .await
        .unwrap();
    cache.set(&key("value"), "v".into(), ttl()).await.unwrap();
    assert_eq!(cache.scan(&KeyPattern::all()).await.unwrap().len(), 2);
    // A walk that reads frames (what a backup reads) skips the list instead of failing the page.
    let store = cache.l2().unwrap().store();
    let page = store
        .walk(&KeyPattern::all(), None, aicache::WalkMode::Frames)
        .await
        .unwrap();
    let walked: Vec<&str> = page.entries.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(walked, vec!["value"]);
    assert!(
        page.entries[0]
            .remaining_ttl
            .is_some_and(|t| t > Duration::from_secs(500))
    );
    assert!(cache.delete(&key("list")).await.unwrap());
    assert_eq!(cache.clear().await.unwrap(), 1);
    assert!(!holds_value(&mut conn, "mixed:value").await);
}

/// With `noeviction` and memory full, Redis refuses writes but not `UNLINK`: a removal still
/// removes (without its tombstone), never fails and never leaves the answer readable.
#[tokio::test]
async fn removals_still_remove_when_redis_is_out_of_memory() {
    let server = server();
    let cache = redis_cache(test_config(&server.url()).with_key_prefix("oom")).await;
    let mut conn = raw(&server).await;
    for name in ["a", "b:1", "b:2"] {
        cache.set(&key(name), "v".into(), ttl()).await.unwrap();
    }
    let config = |value: &'static str| {
        redis::cmd("CONFIG")
            .arg("SET")
            .arg("maxmemory")
            .arg(value)
            .to_owned()
    };
    let (): () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory-policy")
        .arg("noeviction")
        .query_async(&mut conn)
        .await
        .unwrap();
    let (): () = config("1").query_async(&mut conn).await.unwrap();
    let refused: redis::RedisResult<()> = redis::cmd("SET")
        .arg("oom:probe")
        .arg("x")
        .query_async(&mut conn)
        .await;
    assert!(refused.is_err(), "the server is out of memory");
    assert!(cache.delete(&key("a")).await.unwrap());
    assert_eq!(
        cache
            .delete_pattern(&KeyPattern::new("b:*").unwrap())
            .await
            .unwrap(),
        2
    );
    let (): () = config("0").query_async(&mut conn).await.unwrap();
    for removed in ["oom:a", "oom:b:1", "oom:b:2"] {
        assert!(!holds_value(&mut conn, removed).await, "{removed}");
    }
}
