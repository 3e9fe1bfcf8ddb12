//! Outages, refusals and bad stored bytes.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_and_restart_keeps_answering_and_l2_comes_back() {
    let mut server = server();
    let cache = redis_cache(test_config(&server.url())).await;
    cache
        .set(&key("before"), "v1".into(), ttl(60))
        .await
        .unwrap();

    server.kill();
    // Reads during the outage answer from L1 or as misses, never with an error.
    assert_eq!(
        cache.get(&key("before")).await.unwrap().as_deref(),
        Some(&b"v1"[..])
    );
    assert_eq!(cache.get(&key("never")).await.unwrap(), None);
    // Writes still land in L1.
    cache
        .set(&key("during"), "v2".into(), ttl(60))
        .await
        .unwrap();
    assert_eq!(
        cache.get(&key("during")).await.unwrap().as_deref(),
        Some(&b"v2"[..])
    );
    assert!(
        !cache.is_l2_available(),
        "the failed calls marked Redis unavailable"
    );
    assert!(matches!(
        cache.health().await.l2,
        L2Health::Unavailable { .. }
    ));
    // Operations during the outage do not re-dial: at most one probe per backoff delay.
    let probes_before = cache.health().await.probes;
    for _ in 0..50 {
        assert_eq!(cache.get(&key("never")).await.unwrap(), None);
    }
    let probes = cache.health().await.probes - probes_before;
    assert!(
        probes <= 3,
        "50 reads during the outage ran {probes} probes"
    );

    server.restart();
    let back = eventually(Duration::from_secs(5), || async {
        cache.get(&key("probe")).await.unwrap();
        cache.is_l2_available()
    })
    .await;
    assert!(
        back,
        "Redis is used again after the restart: {:?}",
        cache.health().await
    );

    cache
        .set(&key("after"), "v3".into(), ttl(60))
        .await
        .unwrap();
    cache.l1().unwrap().remove("after");
    let hits_before = cache.stats().l2_hits;
    assert_eq!(
        cache.get(&key("after")).await.unwrap().as_deref(),
        Some(&b"v3"[..])
    );
    assert_eq!(cache.stats().l2_hits, hits_before + 1, "served by Redis");
    assert!(matches!(
        cache.health().await.l2,
        L2Health::Connected { .. }
    ));
    assert_eq!(cache.health().await.outages, 1);
}

#[tokio::test]
async fn unreachable_at_start_is_degraded_not_an_error() {
    // A socket path nobody listens on: unreachable, and no other test's server can take it.
    let dir = tempfile::tempdir().unwrap();
    let url = format!("redis+unix://{}/absent.sock", dir.path().display());
    let cache = redis_cache(test_config(&url)).await;
    assert!(!cache.is_l2_available());
    assert!(matches!(
        cache.health().await.l2,
        L2Health::Unavailable { .. }
    ));
    assert_eq!(cache.get(&key("k")).await.unwrap(), None);
    cache.set(&key("k"), "v".into(), ttl(60)).await.unwrap();
    assert_eq!(
        cache.get(&key("k")).await.unwrap().as_deref(),
        Some(&b"v"[..])
    );
    assert!(cache.stats().writes_l1_only >= 1);
}

#[tokio::test]
async fn wrong_or_missing_password_is_an_auth_error() {
    let server = RedisServer::start(ServerConfig::default().with_password("right"));
    let missing = GenericRedisCache::connect(test_config(&server.url_without_auth())).await;
    assert_eq!(missing.unwrap_err().kind(), ErrorKind::Auth);
    let wrong_url = server.url().replace(":right@", ":wrong@");
    let err = GenericRedisCache::connect(test_config(&wrong_url))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Auth);
    assert!(
        !format!("{err} {err:?}").contains("wrong"),
        "the password is not printed: {err}"
    );
    let ok = redis_cache(test_config(&server.url())).await;
    ok.set(&key("k"), "v".into(), ttl(60)).await.unwrap();
    assert!(ok.is_l2_available());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_refused_after_an_outage_are_errors_not_misses() {
    let mut server = RedisServer::start(ServerConfig::default().with_password("first"));
    let cache = redis_cache(test_config(&server.url())).await;
    cache.set(&key("k"), "v".into(), ttl(60)).await.unwrap();
    server.kill();
    server.config_mut().password = Some("second".into());
    server.restart();
    let refused = eventually(Duration::from_secs(5), || async {
        matches!(cache.get(&key("other")).await, Err(e) if e.kind() == ErrorKind::Auth)
    })
    .await;
    assert!(refused, "{:?}", cache.health().await);
}

#[tokio::test]
async fn frames_of_a_newer_version_are_misses_left_in_place() {
    let server = server();
    let cache = redis_cache(test_config(&server.url()).with_l1(None)).await;
    cache.set(&key("k"), "v".into(), ttl(60)).await.unwrap();
    let mut conn = raw(&server).await;
    let mut stored: Vec<u8> = conn.get("test:k").await.unwrap();
    stored[3] = aicache::frame::FRAME_VERSION + 1;
    let _: () = conn.set("test:k", stored.as_slice()).await.unwrap();
    assert_eq!(cache.get(&key("k")).await.unwrap(), None);
    let kept: bool = holds_value(&mut conn, "test:k").await;
    assert!(kept, "a newer instance's value is not deleted");
    assert_eq!(cache.stats().unreadable_entries, 1);
    assert_eq!(cache.stats().corrupt_entries, 0);
}

#[tokio::test]
async fn plaintext_frames_stay_version_1_for_readers_of_0_1() {
    let server = server();
    let cache = redis_cache(test_config(&server.url()).with_l1(None)).await;
    cache.set(&key("plain"), "v".into(), ttl(60)).await.unwrap();
    let stored: Vec<u8> = raw(&server).await.get("test:plain").await.unwrap();
    assert_eq!(stored[3], aicache::frame::FRAME_VERSION_1);
}

/// A read that fails (here a denied `GET`) is counted as a failure of its operation, so an
/// operation whose every read failed is still reported.
#[tokio::test]
async fn an_ai_read_denied_by_an_acl_is_a_failure_of_its_operation() {
    let user = AclUser::new("app", "apppw", &["~elsewhere:*", "+@all"]);
    let server = RedisServer::start(ServerConfig::default().with_acl_user(user));
    let redis = test_config(&server.url_for_user("app", "apppw")).with_l1(None);
    let cache: aicache::AIResponseCache<String> =
        aicache::connect_ai_cache(aicache::AiCacheConfig::default(), Some(&redis), None)
            .await
            .unwrap();
    let key = cache
        .key(&aicache::AiRequest::new("qa", "Who may read this?"))
        .unwrap();
    assert_eq!(cache.get(&key).await.unwrap_err().kind(), ErrorKind::Auth);
    let stats = cache.stats();
    let qa = stats.by_operation["qa"];
    assert_eq!((qa.failures, qa.misses, stats.by_tier[0]), (1, 0, 1));
}

#[tokio::test]
async fn acl_denial_reaches_the_caller() {
    let user = AclUser::new("app", "apppw", &["~elsewhere:*", "+@all"]);
    let server = RedisServer::start(ServerConfig::default().with_acl_user(user));
    let cache = redis_cache(test_config(&server.url_for_user("app", "apppw"))).await;
    let err = cache.set(&key("k"), "v".into(), ttl(60)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Auth, "{err}");
    assert_eq!(
        cache.get(&key("k")).await.unwrap_err().kind(),
        ErrorKind::Auth
    );
    assert!(
        cache.is_l2_available(),
        "a permission error is not an outage"
    );
}

#[tokio::test]
async fn invalid_url_is_a_config_error_without_the_password() {
    let err = GenericRedisCache::connect(test_config("http://:hunter2@127.0.0.1:1"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    let text = err.to_string();
    assert!(
        text.contains("redis_url") && !text.contains("hunter2"),
        "{text}"
    );
}

#[test]
fn random_bytes_under_cache_keys_are_misses_deleted_and_counted() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = server();
    let cache = runtime.block_on(redis_cache(test_config(&server.url()).with_l1(None)));
    let conn = runtime.block_on(raw(&server));
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(64));
    let cases = AtomicU64::new(0);
    runner
        .run(&proptest::collection::vec(any::<u8>(), 0..512), |bytes| {
            let mut conn = conn.clone();
            runtime.block_on(async {
                let _: () = conn.set("test:victim", bytes.as_slice()).await.unwrap();
                let got = cache.get(&key("victim")).await;
                // Arbitrary bytes might, in principle, form a valid frame; they never do in
                // practice without the magic, and a panic or error would fail here either way.
                prop_assert!(matches!(got, Ok(None)), "{got:?}");
                let left: bool = holds_value(&mut conn, "test:victim").await;
                prop_assert!(!left, "the bad key is deleted");
                Ok(())
            })?;
            cases.fetch_add(1, Ordering::Relaxed);
            Ok(())
        })
        .unwrap();
    assert_eq!(cache.stats().corrupt_entries, cases.load(Ordering::Relaxed));
}

/// A frame too large to decode on the runtime is checked on the blocking pool; when it turns out
/// corrupt there, the bytes come back with the error, and the read deletes them like a small one.
/// (The sizes asserted below are what send each frame down that path.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_frames_decoded_off_the_runtime_are_misses_deleted_and_counted() {
    let server = server();
    let cache = redis_cache(test_config(&server.url()).with_l1(None)).await;
    let mut conn = raw(&server).await;
    let heavy = aicache::frame::DECODE_OFFLOAD_ABOVE + 4096;
    let stored_frame = |name: &'static str, value: aicache::Bytes| {
        let (cache, mut conn) = (cache.clone(), conn.clone());
        async move {
            cache.set(&key(name), value, ttl(60)).await.unwrap();
            let stored: Vec<u8> = conn.get(format!("test:{name}")).await.unwrap();
            stored
        }
    };
    // Stored above the threshold: an incompressible value, cut short.
    let long = stored_frame(
        "long",
        aicache::Bytes::from(cache_testkit::incompressible_bytes(heavy)),
    )
    .await;
    assert!(long.len() > heavy, "stored {} bytes", long.len());
    // Stored small, declared above the threshold: a compressed value, cut short by one byte.
    let packed = stored_frame("packed", aicache::Bytes::from(vec![b'a'; heavy])).await;
    assert!(packed.len() < heavy / 4, "stored {} bytes", packed.len());
    let cases = [
        ("long", long[..long.len() - 1024].to_vec()),
        ("packed", packed[..packed.len() - 1].to_vec()),
    ];
    for (at, (name, bytes)) in cases.into_iter().enumerate() {
        let redis_key = format!("test:{name}");
        let _: () = conn.set(&redis_key, bytes).await.unwrap();
        let got = cache.get(&key(name)).await;
        assert!(matches!(got, Ok(None)), "{name}: {got:?}");
        assert!(
            !holds_value(&mut conn, &redis_key).await,
            "{name}: the corrupt frame is deleted"
        );
        assert_eq!(cache.stats().corrupt_entries, at as u64 + 1, "{name}");
    }
}

#[tokio::test]
async fn listeners_see_events_and_cannot_break_operations() {
    let server = server();
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let log = Arc::clone(&seen);
    let builder = GenericRedisCache::builder(test_config(&server.url())).listener(Arc::new(
        move |event: &CacheEvent<'_>| -> Result<(), ListenerError> {
            let line = match event {
                CacheEvent::GetSuccess { key, layer, .. } => format!("hit {key} {layer}"),
                CacheEvent::GetMiss { key } => format!("miss {key}"),
                CacheEvent::SetSuccess { key, .. } => format!("set {key}"),
                CacheEvent::DeleteSuccess { key } => format!("delete {key}"),
                _ => "other".to_string(),
            };
            log.lock().unwrap().push(line);
            Ok(())
        },
    ));
    let cache = builder
        .listener(Arc::new(
            |_: &CacheEvent<'_>| -> Result<(), ListenerError> { Err("listener failure".into()) },
        ))
        .listener(Arc::new(
            |_: &CacheEvent<'_>| -> Result<(), ListenerError> { panic!("listener panic") },
        ))
        .connect()
        .await
        .unwrap();

    assert_eq!(cache.get(&key("a")).await.unwrap(), None);
    cache.set(&key("a"), "1".into(), ttl(60)).await.unwrap();
    assert_eq!(
        cache.get(&key("a")).await.unwrap().as_deref(),
        Some(&b"1"[..])
    );
    assert!(cache.delete(&key("a")).await.unwrap());
    assert_eq!(
        *seen.lock().unwrap(),
        vec!["miss a", "set a", "hit a l1", "delete a"]
    );
    assert_eq!(
        cache.stats().listener_failures,
        8,
        "2 failing listeners × 4 events"
    );
}

#[tokio::test]
async fn l1_copies_never_outlive_the_redis_entry() {
    let server = server();
    let writer = redis_cache(test_config(&server.url()).with_l1(None)).await;
    let reader = redis_cache(test_config(&server.url())).await;
    writer
        .set(&key("k"), "v".into(), Some(Ttl::from_secs(3).unwrap()))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(
        reader.get(&key("k")).await.unwrap().is_some(),
        "promoted from Redis"
    );
    let l1_ttl = reader.l1().unwrap().ttl_remaining("k").unwrap();
    assert!(
        l1_ttl <= Duration::from_millis(1800),
        "the L1 copy gets what is left of the Redis TTL, not the original: {l1_ttl:?}"
    );

    let bounded =
        redis_cache(test_config(&server.url()).with_l1_max_ttl(Duration::from_secs(2))).await;
    bounded
        .set(&key("long"), "v".into(), ttl(3600))
        .await
        .unwrap();
    let l1_ttl = bounded.l1().unwrap().ttl_remaining("long").unwrap();
    assert!(
        l1_ttl <= Duration::from_secs(2),
        "l1_max_ttl bounds L1: {l1_ttl:?}"
    );
    let mut conn = raw(&server).await;
    let redis_ttl: i64 = conn.pttl("test:long").await.unwrap();
    assert!(
        redis_ttl > 3_590_000,
        "Redis keeps the full TTL: {redis_ttl}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_odd_reply_at_start_degrades_and_recovers_instead_of_refusing() {
    // Issue 14, item 2: a server answering BUSY (a script running past busy-reply-threshold)
    // used to refuse the cache like a wrong password; it is an outage: start degraded, serve from
    // L1, recover once the server answers again.
    let server =
        RedisServer::start(ServerConfig::default().with_config_line("busy-reply-threshold 50"));
    let mut busy = raw(&server).await;
    let script = tokio::spawn(async move {
        let _: redis::RedisResult<()> = redis::cmd("EVAL")
            .arg("while true do end")
            .arg(0)
            .query_async(&mut busy)
            .await;
    });
    // Wait until the server answers BUSY.
    let mut probe = raw(&server).await;
    assert!(
        eventually(Duration::from_secs(5), || {
            let mut probe = probe.clone();
            async move {
                let reply: redis::RedisResult<String> =
                    redis::cmd("PING").query_async(&mut probe).await;
                reply.is_err_and(|e| e.to_string().contains("BUSY"))
            }
        })
        .await
    );
    let cache = redis_cache(
        test_config(&server.url())
            .with_reconnect_delays(Duration::from_millis(20), Duration::from_millis(100)),
    )
    .await;
    assert!(!cache.is_l2_available(), "a busy server: degraded");
    cache.set(&key("k"), "v".into(), ttl(60)).await.unwrap();
    assert_eq!(
        cache.get(&key("k")).await.unwrap().as_deref(),
        Some(&b"v"[..]),
        "served from L1 meanwhile"
    );
    let _: () = redis::cmd("SCRIPT")
        .arg("KILL")
        .query_async(&mut probe)
        .await
        .unwrap();
    script.await.unwrap();
    assert!(recovers(&cache).await, "the cache never recovered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_at_maxclients_degrades_and_recovers_instead_of_refusing() {
    // Issue 14, item 2: `max number of clients reached` is not a refusal (like a wrong
    // password) but an outage: start degraded, serve from L1, recover once a slot frees up.
    let server = RedisServer::start(ServerConfig::default().with_config_line("maxclients 1"));
    let hog = raw(&server).await;
    let cache = redis_cache(
        test_config(&server.url())
            .with_reconnect_delays(Duration::from_millis(20), Duration::from_millis(100)),
    )
    .await;
    assert!(!cache.is_l2_available(), "no client slot: degraded");
    cache.set(&key("k"), "v".into(), ttl(60)).await.unwrap();
    assert_eq!(
        cache.get(&key("k")).await.unwrap().as_deref(),
        Some(&b"v"[..]),
        "served from L1 meanwhile"
    );
    drop(hog);
    assert!(recovers(&cache).await, "the cache never recovered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_still_loading_degrades_and_recovers_instead_of_refusing() {
    // Issue 14, item 2: `LOADING` (a server reading its dataset after a restart) is an outage.
    let mut server = RedisServer::start(
        ServerConfig::default()
            .with_config_line("key-load-delay 200")
            .with_config_line("loading-process-events-interval-bytes 1024"),
    );
    let mut conn = raw(&server).await;
    let mut fill = redis::pipe();
    for i in 0..20_000 {
        fill.cmd("SET").arg(format!("filler:{i}")).arg("x").ignore();
    }
    let (): () = fill.query_async(&mut conn).await.unwrap();
    let (): () = redis::cmd("SAVE").query_async(&mut conn).await.unwrap();
    drop(conn);
    let url = server.url();
    let restarting = tokio::task::spawn_blocking(move || {
        server.restart();
        server
    });
    let loading = eventually(Duration::from_secs(10), || {
        let url = url.clone();
        async move {
            let Ok(client) = redis::Client::open(url) else {
                return false;
            };
            // redis-rs's connection setup may be what meets LOADING first.
            let reply: redis::RedisResult<String> =
                match client.get_multiplexed_async_connection().await {
                    Ok(mut probe) => redis::cmd("PING").query_async(&mut probe).await,
                    Err(e) => Err(e),
                };
            reply.is_err_and(|e| e.to_string().to_lowercase().contains("loading"))
        }
    })
    .await;
    assert!(loading, "the server never answered LOADING");
    let cache = redis_cache(
        test_config(&url)
            .with_reconnect_delays(Duration::from_millis(20), Duration::from_millis(100)),
    )
    .await;
    assert!(!cache.is_l2_available(), "a loading server: degraded");
    cache.set(&key("k"), "v".into(), ttl(60)).await.unwrap();
    assert_eq!(
        cache.get(&key("k")).await.unwrap().as_deref(),
        Some(&b"v"[..])
    );
    let server = restarting.await.unwrap();
    assert!(recovers(&cache).await, "the cache never recovered");
    drop(server);
}

/// With the breaker disabled nothing opens it, so nothing probes: the link itself must replace
/// the connection a killed server broke, or every later call would fail on the dead socket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_breaker_still_reconnects_after_a_restart() {
    let mut server = server();
    let cache = redis_cache(
        test_config(&server.url())
            .with_reconnect_delays(Duration::from_millis(20), Duration::from_millis(200))
            .with_breaker(false, 1),
    )
    .await;
    cache.set(&key("k"), "v1".into(), ttl(60)).await.unwrap();

    server.kill();
    let errors_before = cache.stats().l2_errors;
    assert_eq!(
        cache.get(&key("missing")).await.unwrap(),
        None,
        "a failed read is a miss"
    );
    assert!(
        cache.stats().l2_errors > errors_before,
        "the call went to the network"
    );
    assert!(cache.is_l2_available(), "a disabled breaker never opens");

    server.restart();
    let mut conn = raw(&server).await;
    let written = eventually(Duration::from_secs(10), || {
        let (cache, mut conn) = (cache.clone(), conn.clone());
        async move {
            let _ = cache.set(&key("after"), "v2".into(), ttl(60)).await;
            holds_value(&mut conn, "test:after").await
        }
    })
    .await;
    assert!(
        written,
        "writes reach the restarted server: {:?}",
        cache.stats()
    );
    cache.l1().unwrap().remove("after");
    let hits_before = cache.stats().l2_hits;
    assert_eq!(
        cache.get(&key("after")).await.unwrap().as_deref(),
        Some(&b"v2"[..])
    );
    assert_eq!(cache.stats().l2_hits, hits_before + 1, "served by Redis");
    assert!(holds_value(&mut conn, "test:after").await);
}
