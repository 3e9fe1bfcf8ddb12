//! Thresholds, namespaces, recorders, and replay after an outage.

use super::*;

#[tokio::test]
async fn compression_threshold_decides_what_is_compressed() {
    let server = server();
    let mut conn = raw(&server).await;
    let value = "the same sentence again and again. ".repeat(100);
    for (threshold, expect_compressed) in [(1000usize, true), (1_000_000, false)] {
        let cache = redis_cache(
            test_config(&server.url())
                .with_l1(None)
                .with_compression_threshold(threshold),
        )
        .await;
        cache
            .set(&key("big"), value.clone().into(), ttl(60))
            .await
            .unwrap();
        let stored: Vec<u8> = conn.get("test:big").await.unwrap();
        let compressed = stored.len() < value.len();
        assert_eq!(
            compressed,
            expect_compressed,
            "threshold {threshold}: stored {} bytes",
            stored.len()
        );
        assert_eq!(
            cache.get(&key("big")).await.unwrap().as_deref(),
            Some(value.as_bytes())
        );
    }
}

#[tokio::test]
async fn key_prefixes_isolate_namespaces() {
    let server = server();
    let a = redis_cache(test_config(&server.url()).with_key_prefix("tenant-a")).await;
    let b = redis_cache(test_config(&server.url()).with_key_prefix("tenant-b")).await;
    a.set(&key("k"), "a".into(), ttl(60)).await.unwrap();
    b.set(&key("k"), "b".into(), ttl(60)).await.unwrap();
    let mut conn = raw(&server).await;
    let names: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut names = names;
    names.sort();
    assert_eq!(names, vec!["tenant-a:k", "tenant-b:k"]);
    assert_eq!(a.clear().await.unwrap(), 1);
    assert_eq!(b.get(&key("k")).await.unwrap().as_deref(), Some(&b"b"[..]));
    assert!(b.scan(&KeyPattern::all()).await.unwrap() == vec![key("k")]);
}

#[tokio::test]
async fn values_too_large_for_l1_still_reach_redis() {
    let server = server();
    let l1 = aicache::MemoryCacheConfig::default().with_max_bytes(64 * 1024);
    let cache = redis_cache(test_config(&server.url()).with_l1(Some(l1))).await;
    let big = vec![7u8; 200 * 1024];
    cache
        .set(&key("big"), big.clone().into(), ttl(60))
        .await
        .unwrap();
    assert_eq!(cache.stats().l1_skipped_too_large, 1);
    assert_eq!(
        cache.get(&key("big")).await.unwrap().as_deref(),
        Some(&big[..])
    );
    assert_eq!(cache.stats().l2_hits, 1);
}

#[derive(Debug, Default)]
struct CountingRecorder {
    l1_hits: AtomicU64,
    l2_hits: AtomicU64,
    misses: AtomicU64,
    compressions: AtomicU64,
    invalidated: AtomicU64,
    corrupt: AtomicU64,
}

impl Recorder for CountingRecorder {
    fn record_operation(&self, op: CacheOp, layer: Layer, outcome: Outcome, _elapsed: Duration) {
        let counter = match (op, layer, outcome) {
            (CacheOp::Get, Layer::L1, Outcome::Hit) => &self.l1_hits,
            (CacheOp::Get, Layer::L2, Outcome::Hit) => &self.l2_hits,
            (CacheOp::Get, _, Outcome::Miss) => &self.misses,
            _ => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
    fn record_compression(&self, original: usize, stored: usize, _elapsed: Duration) {
        assert!(stored < original);
        self.compressions.fetch_add(1, Ordering::Relaxed);
    }
    fn record_corrupt_entry(&self, _layer: Layer, _kind: ErrorKind) {
        self.corrupt.fetch_add(1, Ordering::Relaxed);
    }
    fn record_invalidation(&self, _pattern: &str, removed: u64) {
        self.invalidated.fetch_add(removed, Ordering::Relaxed);
    }
}

#[tokio::test]
async fn the_recorder_sees_the_data_path() {
    let server = server();
    let recorder = Arc::new(CountingRecorder::default());
    let cache = GenericRedisCache::builder(test_config(&server.url()))
        .recorder(recorder.clone())
        .connect()
        .await
        .unwrap();
    cache.get(&key("k")).await.unwrap();
    cache
        .set(&key("k"), "x".repeat(5000).into(), ttl(60))
        .await
        .unwrap();
    cache.get(&key("k")).await.unwrap();
    cache.l1().unwrap().remove("k");
    cache.get(&key("k")).await.unwrap();
    let mut conn = raw(&server).await;
    let _: () = conn.set("test:junk", "not a frame").await.unwrap();
    cache.get(&key("junk")).await.unwrap();
    assert_eq!(cache.delete_pattern(&KeyPattern::all()).await.unwrap(), 1);
    assert_eq!(recorder.misses.load(Ordering::Relaxed), 2);
    assert_eq!(recorder.l1_hits.load(Ordering::Relaxed), 1);
    assert_eq!(recorder.l2_hits.load(Ordering::Relaxed), 1);
    assert_eq!(recorder.compressions.load(Ordering::Relaxed), 1);
    assert_eq!(recorder.corrupt.load(Ordering::Relaxed), 1);
    assert_eq!(recorder.invalidated.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn an_invalidation_that_cannot_reach_redis_is_not_reported_as_done() {
    let mut server = server();
    let cache = redis_cache(test_config(&server.url())).await;
    cache.set(&key("a:1"), "v".into(), ttl(60)).await.unwrap();
    server.kill();
    let err = cache
        .delete_pattern(&KeyPattern::new("a:*").unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(
        cache
            .l1()
            .unwrap()
            .keys_matching(&KeyPattern::all())
            .is_empty(),
        "L1 was cleaned"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_writes_are_replayed_without_overwriting_newer_values() {
    use aicache::{BreakerState, ReadStatus, frame::Codec, frame::FrameMeta};
    let server = server();
    // A reaches Redis through a proxy: B writes while A is still cut off, so the order of B's
    // writes and A's replay is fixed by the test, not by how fast the probe comes back. Slow
    // probes keep the breaker open (not half-open) while the test inspects it.
    let proxy = cache_testkit::TcpProxy::start(server.port());
    let a = redis_cache(
        test_config(&proxy.url())
            .with_reconnect_delays(Duration::from_secs(1), Duration::from_secs(1)),
    )
    .await;
    proxy.cut();
    a.set(&key("k:contested"), "old".into(), ttl(600))
        .await
        .unwrap();
    a.set(&key("k:mine"), "mine".into(), ttl(600))
        .await
        .unwrap();
    a.set(&key("k:deleted"), "gone".into(), ttl(600))
        .await
        .unwrap();
    assert!(a.delete(&key("k:deleted")).await.unwrap(), "L1 held it");
    a.set(
        &key("k:short"),
        "brief".into(),
        Some(Ttl::from_millis(200).unwrap()),
    )
    .await
    .unwrap();
    let before_invalidation = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let err = a
        .delete_pattern(&KeyPattern::new("inv:*").unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(err.to_string().contains("queued_for_replay"), "{err}");
    let health = a.health().await;
    assert_eq!(health.breaker, Some(BreakerState::Open), "{health:?}");
    assert_eq!(
        health.replay_queue_depth, 5,
        "the delete replaced k:deleted's write"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;

    let b = redis_cache(test_config(&server.url()).with_l1(None)).await;
    b.set(&key("k:contested"), "new".into(), ttl(600))
        .await
        .unwrap();
    // An entry written before the invalidation was issued, and one written after it.
    let old_ms = u64::try_from(before_invalidation.as_millis()).unwrap() - 10_000;
    b.l2()
        .unwrap()
        .write(
            &key("inv:old"),
            &FrameMeta::new(old_ms, old_ms + 600_000),
            Codec::Raw,
            aicache::Bytes::from_static(b"stale"),
            Ttl::from_secs(600).unwrap(),
        )
        .await
        .unwrap();
    b.set(&key("inv:new"), "fresh".into(), ttl(600))
        .await
        .unwrap();

    proxy.heal();
    let report = a.shutdown(Duration::from_secs(10)).await;
    assert_eq!(report.remaining, 0, "{report:?}");
    let read = |k: &'static str| {
        let b = b.clone();
        async move { b.get(&key(k)).await.unwrap().map(|v| v.to_vec()) }
    };
    assert_eq!(
        read("k:contested").await.as_deref(),
        Some(&b"new"[..]),
        "newer value kept"
    );
    assert_eq!(read("k:mine").await.as_deref(), Some(&b"mine"[..]));
    assert_eq!(read("k:deleted").await, None, "the delete won");
    assert_eq!(
        read("k:short").await,
        None,
        "expired while queued: not replayed"
    );
    assert_eq!(
        read("inv:old").await,
        None,
        "the queued invalidation removed it: {:?}",
        a.stats()
    );
    assert_eq!(
        read("inv:new").await.as_deref(),
        Some(&b"fresh"[..]),
        "newer than it"
    );
    let stats = a.stats();
    assert_eq!(stats.replay_superseded, 1, "{stats:?}");
    assert_eq!((stats.replayed, stats.replay_skipped), (3, 2), "{stats:?}");
    assert_eq!(stats.replay_dropped, 0);
    let health = a.health().await;
    assert_eq!(
        (health.breaker, health.replay_queue_depth),
        (Some(BreakerState::Closed), 0)
    );

    // Read status: who answered, and the time per layer.
    let (value, status) = a.get_with_status(&key("k:mine")).await.unwrap();
    assert_eq!(value.as_deref(), Some(&b"mine"[..]));
    assert_eq!(status.status, ReadStatus::HitL1);
    assert!(status.l1_time.is_some() && status.l2_time.is_none());
    let (_, status) = b.get_with_status(&key("k:mine")).await.unwrap();
    assert_eq!(status.status, ReadStatus::HitL2);
    assert!(status.l1_time.is_none() && status.l2_time.is_some());
    let (value, status) = a.get_with_status(&key("k:never")).await.unwrap();
    assert_eq!((value, status.status), (None, ReadStatus::Miss));
    assert!(status.l1_time.is_some() && status.l2_time.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breaker_and_replay_settings_change_behaviour() {
    use aicache::BreakerState;
    let mut server = server();
    let short = |threshold: u32| {
        test_config(&server.url())
            .with_command_timeout(Duration::from_millis(100))
            .with_reconnect_delays(Duration::from_secs(30), Duration::from_secs(30))
            .with_breaker(true, threshold)
    };
    let opens_at_once = redis_cache(short(1)).await;
    let opens_at_three = redis_cache(short(3)).await;
    let never_opens = redis_cache(short(1).with_breaker(false, 1)).await;
    let small_queue = redis_cache(short(3).with_replay_queue_capacity(2)).await;
    let no_replay = redis_cache(short(3).with_replay_queue_capacity(0)).await;
    server.pause();
    let breaker = |cache: &GenericRedisCache| {
        let cache = cache.clone();
        async move { cache.health().await.breaker }
    };
    // One timed-out read: the threshold decides.
    for cache in [&opens_at_once, &opens_at_three, &never_opens] {
        assert_eq!(cache.get(&key("k")).await.unwrap(), None);
    }
    assert_eq!(breaker(&opens_at_once).await, Some(BreakerState::Open));
    assert_eq!(breaker(&opens_at_three).await, Some(BreakerState::Closed));
    for _ in 0..2 {
        opens_at_three.get(&key("k")).await.unwrap();
        never_opens.get(&key("k")).await.unwrap();
    }
    assert_eq!(breaker(&opens_at_three).await, Some(BreakerState::Open));
    // Disabled, every call still goes to the network and waits for its timeout.
    assert_eq!(breaker(&never_opens).await, Some(BreakerState::Closed));
    let stats = never_opens.stats();
    assert_eq!(
        (stats.l2_errors >= 3, stats.l2_skipped),
        (true, 0),
        "{stats:?}"
    );
    let skipped_before = opens_at_once.stats().l2_skipped;
    opens_at_once.get(&key("k")).await.unwrap();
    assert_eq!(
        opens_at_once.stats().l2_skipped,
        skipped_before + 1,
        "open: no network"
    );

    // Queue capacity: 2 keeps the newest two of three writes; 0 keeps none.
    for name in ["q:1", "q:2", "q:3"] {
        small_queue
            .set(&key(name), "v".into(), ttl(60))
            .await
            .unwrap();
        no_replay
            .set(&key(name), "v".into(), ttl(60))
            .await
            .unwrap();
    }
    let (small, none) = (small_queue.stats(), no_replay.stats());
    assert_eq!(
        (small.replay_queued, small.replay_dropped),
        (3, 1),
        "{small:?}"
    );
    assert_eq!(small_queue.health().await.replay_queue_depth, 2);
    assert_eq!(
        (none.replay_queued, none.writes_l1_only),
        (0, 3),
        "{none:?}"
    );
    assert_eq!(no_replay.health().await.replay_queue_depth, 0);
    server.resume();
}
