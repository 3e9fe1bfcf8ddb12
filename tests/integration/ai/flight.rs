//! Single-flight and per-request controls.

use super::*;

/// Waits until `n` callers wait on a computation of `cache` (or fails after 20 s).
async fn until_waiting<T>(cache: &AIResponseCache<T>, n: usize)
where
    T: Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    let ready = crate::support::eventually(Duration::from_secs(20), || async {
        cache.stats().callers_waiting >= n
    })
    .await;
    assert!(
        ready,
        "only {} callers waiting",
        cache.stats().callers_waiting
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_identical_misses_compute_once() {
    let server = server();
    let cache: AIResponseCache<String> = ai_over(&server, ai_config(&server)).await.unwrap();
    let key = cache
        .key(&AiRequest::new("summarize", "the same prompt"))
        .unwrap();
    let calls = Arc::new(AtomicU64::new(0));
    let release = Arc::new(tokio::sync::Notify::new());
    let requests = || cache.l2().unwrap().store().stats().requests;
    let sent_before = requests();
    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let (cache, key, calls, release) = (
            cache.clone(),
            key.clone(),
            Arc::clone(&calls),
            Arc::clone(&release),
        );
        tasks.push(tokio::spawn(async move {
            cache
                .get_or_compute(&key, &RequestControls::default(), || async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    release.notified().await;
                    Ok::<_, std::io::Error>("the answer".to_string())
                })
                .await
                .unwrap()
        }));
    }
    // Hold the model until every other caller waits on it, however slow the machine is.
    until_waiting(&cache, 999).await;
    release.notify_one();
    let mut sources = std::collections::HashMap::new();
    for task in tasks {
        let computed = task.await.unwrap();
        assert_eq!(*computed.response.value, "the answer");
        *sources.entry(format!("{:?}", computed.source)).or_insert(0) += 1;
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1, "{sources:?}");
    assert_eq!(sources["Computed"], 1);
    assert_eq!(sources["Joined"], 999);
    // Followers join the flight before any Redis read: the leader's GET and SET serve all 1,000
    // (counted by the store itself).
    let sent = requests() - sent_before;
    assert!(
        (2..=3).contains(&sent),
        "{sent} Redis requests for one stampede (a GET and a SET)"
    );
    assert_eq!(cache.stats().flights_in_progress, 0);
    assert_eq!(cache.stats().callers_waiting, 0);
    let mut conn = raw(&server).await;
    let stored: bool = holds_value(&mut conn, cache.full_key(&key)).await;
    assert!(stored, "the leader stored the answer in Redis");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compute_error_reaches_every_waiter_and_is_not_cached() {
    let server = server();
    let cache: AIResponseCache<String> = ai_over(&server, ai_config(&server)).await.unwrap();
    let key = cache
        .key(&AiRequest::new("summarize", "failing prompt"))
        .unwrap();
    let calls = Arc::new(AtomicU64::new(0));
    let release = Arc::new(tokio::sync::Notify::new());
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let (cache, key, calls, release) = (
            cache.clone(),
            key.clone(),
            Arc::clone(&calls),
            Arc::clone(&release),
        );
        tasks.push(tokio::spawn(async move {
            cache
                .get_or_compute(&key, &RequestControls::default(), || async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    release.notified().await;
                    Err::<String, _>("model overloaded".to_string())
                })
                .await
        }));
    }
    until_waiting(&cache, 49).await;
    release.notify_one();
    for task in tasks {
        let err = task.await.unwrap().unwrap_err();
        assert_eq!(err.as_str(), "model overloaded");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(
        cache.get(&key).await.unwrap().is_none(),
        "errors are not cached"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_leader_does_not_strand_the_waiters() {
    let server = server();
    let cache: AIResponseCache<String> = ai_over(&server, ai_config(&server)).await.unwrap();
    let key = cache
        .key(&AiRequest::new("summarize", "slow prompt"))
        .unwrap();
    let leader = {
        let (cache, key) = (cache.clone(), key.clone());
        tokio::spawn(async move {
            cache
                .get_or_compute(&key, &RequestControls::default(), || async {
                    std::future::pending::<()>().await;
                    Ok::<_, std::io::Error>("never".to_string())
                })
                .await
        })
    };
    let leading = crate::support::eventually(Duration::from_secs(20), || async {
        cache.stats().flights_in_progress == 1
    })
    .await;
    assert!(leading);
    let follower = {
        let (cache, key) = (cache.clone(), key.clone());
        tokio::spawn(async move {
            cache
                .get_or_compute(&key, &RequestControls::default(), || async {
                    Ok::<_, std::io::Error>("from the follower".to_string())
                })
                .await
        })
    };
    until_waiting(&cache, 1).await;
    leader.abort();
    let answer = tokio::time::timeout(Duration::from_secs(20), follower)
        .await
        .expect("the follower does not hang")
        .unwrap()
        .unwrap();
    assert_eq!(*answer.response.value, "from the follower");
    assert_eq!(
        answer.source,
        Source::Computed,
        "the waiter led the new attempt"
    );
    assert_eq!(cache.stats().flights_in_progress, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forced_refresh_is_not_overwritten_by_an_older_computation() {
    let server = server();
    let cache: AIResponseCache<String> = ai_over(&server, ai_config(&server)).await.unwrap();
    let key = cache.key(&AiRequest::new("qa", "refresh race")).unwrap();
    let release = Arc::new(tokio::sync::Notify::new());
    let computing = Arc::new(tokio::sync::Notify::new());
    let old = {
        let (cache, key) = (cache.clone(), key.clone());
        let (release, computing) = (Arc::clone(&release), Arc::clone(&computing));
        tokio::spawn(async move {
            cache
                .get_or_compute(&key, &RequestControls::default(), || async move {
                    computing.notify_one();
                    release.notified().await;
                    Ok::<_, std::io::Error>("old".to_string())
                })
                .await
                .unwrap()
        })
    };
    // Past its own read of Redis (a miss): only the computation is left.
    computing.notified().await;
    let fresh = cache
        .get_or_compute(
            &key,
            &RequestControls::default().force_refresh(),
            || async { Ok::<_, std::io::Error>("fresh".to_string()) },
        )
        .await
        .unwrap();
    assert!(fresh.stored);
    release.notify_one();
    let old = old.await.unwrap();
    assert_eq!(
        *old.response.value, "old",
        "the old caller still gets its own answer"
    );
    assert!(!old.stored, "but it does not overwrite the refresh");
    assert_eq!(*cache.get(&key).await.unwrap().unwrap().value, "fresh");
}

#[tokio::test]
async fn per_request_controls() {
    let server = server();
    let cache: AIResponseCache<String> = ai_over(&server, ai_config(&server)).await.unwrap();
    let mut conn = raw(&server).await;
    let key = cache.key(&AiRequest::new("qa", "controls")).unwrap();
    let answer =
        |text: &'static str| move || async move { Ok::<_, std::io::Error>(text.to_string()) };

    let r = cache
        .get_or_compute(&key, &RequestControls::default().no_store(), answer("a"))
        .await
        .unwrap();
    assert!(!r.stored);
    assert!(
        cache.get(&key).await.unwrap().is_none(),
        "no_store stores nothing"
    );

    let ttl = Ttl::from_secs(42).unwrap();
    let r = cache
        .get_or_compute(&key, &RequestControls::default().with_ttl(ttl), answer("b"))
        .await
        .unwrap();
    assert!(r.stored);
    let pttl: i64 = conn.pttl(cache.full_key(&key)).await.unwrap();
    assert!((40_000..=42_000).contains(&pttl), "TTL override: {pttl}");

    let r = cache
        .get_or_compute(&key, &RequestControls::default(), answer("c"))
        .await
        .unwrap();
    assert_eq!((r.source, r.response.value.as_str()), (Source::L1, "b"));

    let r = cache
        .get_or_compute(&key, &RequestControls::default().no_cache(), answer("d"))
        .await
        .unwrap();
    assert_eq!(
        (r.source, r.response.value.as_str()),
        (Source::Computed, "d"),
        "no_cache skips the read"
    );
    assert_eq!(
        *cache.get(&key).await.unwrap().unwrap().value,
        "d",
        "…and stores"
    );

    let r = cache
        .get_or_compute(
            &key,
            &RequestControls::default().force_refresh(),
            answer("e"),
        )
        .await
        .unwrap();
    assert_eq!(r.source, Source::Computed);
    assert_eq!(*cache.get(&key).await.unwrap().unwrap().value, "e");

    let other = cache.key(&AiRequest::new("qa", "read only")).unwrap();
    let r = cache
        .get_or_compute(&other, &RequestControls::default().read_only(), answer("f"))
        .await
        .unwrap();
    assert!(!r.stored);
    assert!(
        cache.get(&other).await.unwrap().is_none(),
        "read_only writes nothing"
    );
}
