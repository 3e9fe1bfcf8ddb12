//! A removal fences the computations in flight that it covers (DESIGN §8): a computation that
//! began before the removal stores nothing (its waiting callers still get its answer), a caller
//! arriving after the removal never joins it, and a store already running finishes before the
//! removal removes the key. Each step is ordered with gates.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aicache::{AIResponseCache, AiCacheConfig, AiRequest, CacheKey, RequestControls, Source};
use redis::AsyncCommands;
use tokio::sync::oneshot;

use crate::gated::{Gated, GatedStore};
use crate::support::{holds_value, raw, server, test_config};

#[tokio::test]
async fn an_invalidation_fences_a_computation_in_flight() {
    let server = server();
    let cache: AIResponseCache<String> = aicache::connect_ai_cache(
        AiCacheConfig::default(),
        Some(&test_config(&server.url())),
        None,
    )
    .await
    .unwrap();
    let key = cache
        .key(&AiRequest::new("summarize", "a text whose prompt changes"))
        .unwrap();
    let computations = Arc::new(AtomicU64::new(0));
    let (started_tx, started) = oneshot::channel::<()>();
    let (release_tx, release) = oneshot::channel::<()>();
    let slow = tokio::spawn({
        let (cache, key, computations) = (cache.clone(), key.clone(), Arc::clone(&computations));
        async move {
            cache
                .get_or_compute(&key, &RequestControls::default(), || async move {
                    computations.fetch_add(1, Ordering::SeqCst);
                    started_tx.send(()).unwrap();
                    release.await.unwrap();
                    Ok::<_, std::io::Error>("the old prompt's answer".to_string())
                })
                .await
                .unwrap()
        }
    });
    started.await.unwrap();
    // The operator invalidates while the model call runs.
    cache.invalidate_by_operation("summarize").await.unwrap();
    // A caller arriving after the invalidation does not join the fenced flight (joining it would
    // wait for the held computation: the timeout turns that into a failure, not a hang).
    let fresh = tokio::time::timeout(
        Duration::from_secs(10),
        cache.get_or_compute(&key, &RequestControls::default(), || async {
            Ok::<_, std::io::Error>("the new prompt's answer".to_string())
        }),
    )
    .await
    .expect("the caller joined the fenced flight")
    .unwrap();
    assert_eq!(fresh.source, Source::Computed);
    assert!(fresh.stored);
    release_tx.send(()).unwrap();
    let old = slow.await.unwrap();
    assert_eq!(
        *old.response.value, "the old prompt's answer",
        "its caller still gets it"
    );
    assert!(!old.stored, "a fenced computation stores nothing");
    let cached = cache.get(&key).await.unwrap().unwrap();
    assert_eq!(*cached.value, "the new prompt's answer");
    let mut conn = raw(&server).await;
    let stored: Vec<u8> = conn.get(cache.full_key(&key)).await.unwrap();
    assert!(!String::from_utf8_lossy(&stored).contains("old prompt"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_waits_for_a_store_in_progress_then_removes_it() {
    let config = AiCacheConfig::default();
    let (store, gate_tx) = GatedStore::new(&config.namespace(), Gated::Set);
    let cache: AIResponseCache<String> = AIResponseCache::builder(config)
        .store(store.clone())
        .build()
        .unwrap();
    let key = cache.key(&AiRequest::new("qa", "asked once")).unwrap();
    let leader = tokio::spawn({
        let (cache, key) = (cache.clone(), key.clone());
        async move {
            cache
                .get_or_compute(&key, &RequestControls::default(), || async {
                    Ok::<_, std::io::Error>("answer".to_string())
                })
                .await
                .unwrap()
        }
    });
    // The leader's store has reached the shared tier and waits there.
    store.entered.notified().await;
    let deleter = tokio::spawn({
        let (cache, key) = (cache.clone(), key.clone());
        async move { cache.delete(&key).await.unwrap() }
    });
    // The delete must not run its removal while the store is in progress.
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !deleter.is_finished(),
        "the delete ran ahead of the store in progress"
    );
    gate_tx.send(()).unwrap();
    assert!(leader.await.unwrap().stored);
    assert!(
        deleter.await.unwrap(),
        "the delete removed what the store wrote"
    );
    assert!(cache.get(&key).await.unwrap().is_none());
    assert!(store.inner.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_queued_in_an_outage_hides_the_key_until_it_is_replayed() {
    // Issue 12, item 1: after the outage, reads reach Redis before the replayer reaches the
    // delete (2,000 writes queued ahead of it); Redis still holds the key, and nothing may serve
    // or promote it meanwhile.
    let mut server = server();
    let config = test_config(&server.url())
        .with_command_timeout(Duration::from_millis(100))
        .with_reconnect_delays(Duration::from_millis(20), Duration::from_millis(50))
        .with_breaker(true, 1);
    let cache = aicache::GenericRedisCache::connect(config).await.unwrap();
    let removed = CacheKey::new("removed").unwrap();
    use aicache::CacheInterface as _;
    cache.set(&removed, "stale".into(), None).await.unwrap();
    server.pause();
    // The first call times out and opens the breaker; from then on everything is queued.
    let _ = cache.get(&CacheKey::new("probe").unwrap()).await;
    for i in 0..2000 {
        let key = CacheKey::new(format!("w:{i}")).unwrap();
        cache.set(&key, "v".into(), None).await.unwrap();
    }
    cache.delete(&removed).await.unwrap();
    assert!(cache.health().await.replay_queue_depth >= 2001);
    server.resume();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut reads_before_replay = 0;
    loop {
        assert_eq!(
            cache.get(&removed).await.unwrap(),
            None,
            "a deleted key was served after the outage"
        );
        let depth = cache.health().await.replay_queue_depth;
        if depth == 0 {
            break;
        }
        if cache.is_l2_available() {
            reads_before_replay += 1;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "replay never finished"
        );
    }
    assert!(
        reads_before_replay > 0,
        "no read ran between recovery and the replay"
    );
    assert_eq!(cache.get(&removed).await.unwrap(), None);
    let mut conn = raw(&server).await;
    let left: bool = holds_value(&mut conn, cache.redis_key(&removed)).await;
    assert!(!left, "the replayed delete removed it from Redis");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_waits_for_a_store_whose_flight_a_forced_refresh_replaced() {
    // Leader A stores (held in the store); a forced refresh B replaces A's flight and finishes;
    // a delete then must still wait for A's store, or A's write lands after the delete returned.
    let config = AiCacheConfig::default();
    let (store, gate_tx) = GatedStore::new(&config.namespace(), Gated::Set);
    let cache: AIResponseCache<String> = AIResponseCache::builder(config)
        .store(store.clone())
        .build()
        .unwrap();
    let key = cache
        .key(&AiRequest::new("qa", "refreshed while stored"))
        .unwrap();
    let leader = tokio::spawn({
        let (cache, key) = (cache.clone(), key.clone());
        async move {
            cache
                .get_or_compute(&key, &RequestControls::default(), || async {
                    Ok::<_, std::io::Error>("A".to_string())
                })
                .await
                .unwrap()
        }
    });
    store.entered.notified().await;
    let refreshed = cache
        .get_or_compute(
            &key,
            &RequestControls::default().force_refresh(),
            || async { Ok::<_, std::io::Error>("B".to_string()) },
        )
        .await
        .unwrap();
    assert_eq!(refreshed.source, Source::Computed);
    let deleter = tokio::spawn({
        let (cache, key) = (cache.clone(), key.clone());
        async move { cache.delete(&key).await.unwrap() }
    });
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !deleter.is_finished(),
        "the delete ran ahead of the replaced flight's store"
    );
    gate_tx.send(()).unwrap();
    leader.await.unwrap();
    deleter.await.unwrap();
    assert!(
        cache.get(&key).await.unwrap().is_none(),
        "a write landed after the delete"
    );
    assert!(store.inner.is_empty());
}
