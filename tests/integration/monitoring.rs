//! What `CachePerformanceMonitor` learns from the AI layer (every request by operation and text
//! tier, breaker transitions), the inherited tier stats of the AI summary, per-operation timing
//! samples, and the memory 200 operation names cost (in a child process).

use std::sync::Arc;
use std::time::Duration;

use aicache::{
    AIResponseCache, AiCacheConfig, AiRequest, CachePerformanceMonitor, MemoryCacheConfig,
    RequestControls,
};
use serde_json::{Value, json};

use crate::support::{eventually, run_alone, running_alone, server, test_config};

fn monitored() -> (AIResponseCache<Value>, Arc<CachePerformanceMonitor>) {
    let monitor = Arc::new(CachePerformanceMonitor::default());
    let config =
        AiCacheConfig::default().with_l1(Some(MemoryCacheConfig::default().with_max_entries(1000)));
    let cache = AIResponseCache::builder(config)
        .recorder(Arc::clone(&monitor) as Arc<dyn aicache::Recorder>)
        .build()
        .unwrap();
    (cache, monitor)
}

#[tokio::test]
async fn the_monitor_counts_every_request_by_operation_and_tier() {
    let (cache, monitor) = monitored();
    let key = cache
        .key(&AiRequest::new("summarize", "a short text"))
        .unwrap();
    assert!(cache.get(&key).await.unwrap().is_none());
    cache
        .put(&key, json!({"summary": "s"}), &RequestControls::default())
        .await
        .unwrap();
    for _ in 0..2 {
        assert!(cache.get(&key).await.unwrap().is_some());
    }
    let asked = cache.key(&AiRequest::new("qa", "a question")).unwrap();
    assert!(cache.get(&asked).await.unwrap().is_none());
    let written = cache
        .key(&AiRequest::new("written", "only stored"))
        .unwrap();
    cache
        .put(&written, json!({"a": 1}), &RequestControls::default())
        .await
        .unwrap();

    let by_operation = monitor.requests_by_operation();
    let summarize = &by_operation["summarize"];
    assert_eq!(
        (summarize.reads, summarize.l1_hits, summarize.misses),
        (3, 2, 1)
    );
    assert_eq!(summarize.hit_rate, Some(2.0 / 3.0));
    assert_eq!(by_operation["qa"].hit_rate, Some(0.0));
    assert!(
        !by_operation.contains_key("written"),
        "an operation never read reports no hit rate"
    );
    let small = &monitor.requests_by_tier()["small"];
    assert_eq!(small.reads, 4);
    assert_eq!(
        small.latency.map(|l| l.count),
        Some(2),
        "one read in 16 of each outcome is timed, the first included: the first hit and miss"
    );
    let snapshot = monitor.export_metrics();
    assert_eq!(snapshot.requests_by_operation, by_operation);
    assert!(!snapshot.requests_by_tier.contains_key("xlarge"));

    // Names come from requests: past the cap they share one entry, with exact counts.
    for i in 0..70 {
        let key = cache.key(&AiRequest::new(&format!("op{i}"), "t")).unwrap();
        cache.get(&key).await.unwrap();
    }
    let by_operation = monitor.requests_by_operation();
    assert!(by_operation.len() <= aicache::MAX_TRACKED_OPERATIONS + 1);
    let reads: u64 = by_operation.values().map(|s| s.reads).sum();
    assert_eq!(reads, 4 + 70, "counts stay exact past the cap");
    // The cache's own table holds summarize, qa, written and op0..op60: the rest is "(other)".
    assert_eq!(by_operation[aicache::OTHER_OPERATIONS].reads, 9);

    monitor.reset_stats();
    assert!(monitor.requests_by_operation().is_empty());
    assert!(monitor.requests_by_tier().is_empty());
}

/// A thread-wide sampling counter would time only one of two streams read in turn (with 1 in
/// 2 timed): each operation of each cache is sampled by its own reads.
#[tokio::test]
async fn timings_are_sampled_per_operation_and_per_cache() {
    let config = || {
        AiCacheConfig::default()
            .with_latency_sampling(2)
            .with_l1(Some(MemoryCacheConfig::default().with_max_entries(100)))
    };
    let first: AIResponseCache<Value> = AIResponseCache::new(config()).unwrap();
    let second: AIResponseCache<Value> = AIResponseCache::new(config()).unwrap();
    // Two operations of one cache in turn, then one operation of two caches in turn.
    for streams in [
        [(&first, "a"), (&first, "b")],
        [(&first, "c"), (&second, "c")],
    ] {
        for i in 0..10 {
            for (cache, operation) in streams {
                let key = cache
                    .key(&AiRequest::new(operation, &format!("t{i}")))
                    .unwrap();
                cache.get(&key).await.unwrap();
            }
        }
        for (cache, operation) in streams {
            let performance = &cache.get_operation_performance()[operation];
            assert_eq!(performance.count, 10);
            assert_eq!(performance.timed, 5, "{operation}: 1 read in 2 of its own");
        }
    }
}

/// `get_or_compute` reads L1 first, then the rest: one read, one sampling decision.
#[tokio::test]
async fn reads_through_get_or_compute_are_sampled_like_reads() {
    let cache: AIResponseCache<Value> = AIResponseCache::new(
        AiCacheConfig::default()
            .with_latency_sampling(2)
            .with_l1(Some(MemoryCacheConfig::default().with_max_entries(100))),
    )
    .unwrap();
    for i in 0..10 {
        let key = cache
            .key(&AiRequest::new("computed", &format!("t{i}")))
            .unwrap();
        cache
            .get_or_compute(&key, &RequestControls::default(), || async {
                Ok::<_, std::io::Error>(json!({"answer": i}))
            })
            .await
            .unwrap();
    }
    let performance = &cache.get_operation_performance()["computed"];
    assert_eq!(performance.count, 10);
    assert_eq!(performance.timed, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breaker_transitions_reach_the_monitor_and_the_summary_inherits_tier_stats() {
    let mut server = server();
    let monitor = Arc::new(CachePerformanceMonitor::default());
    let redis = test_config(&server.url())
        .with_command_timeout(Duration::from_millis(200))
        .with_breaker(true, 2);
    let cache: AIResponseCache<Value> = aicache::connect_ai_cache(
        AiCacheConfig::default(),
        Some(&redis),
        Some(Arc::clone(&monitor) as Arc<dyn aicache::Recorder>),
    )
    .await
    .unwrap();
    let key = cache
        .key(&AiRequest::new("qa", "asked during an outage"))
        .unwrap();
    assert!(cache.get(&key).await.unwrap().is_none());
    assert_eq!(monitor.breaker().state, None, "no transition yet");

    server.pause();
    let opened = eventually(Duration::from_secs(20), || async {
        let _ = cache.get(&key).await;
        monitor.breaker().opened >= 1
    })
    .await;
    server.resume();
    assert!(opened, "{:?}", monitor.breaker());
    assert_eq!(monitor.breaker().recent[0].to, "open");
    let closed = eventually(Duration::from_secs(20), || async {
        let _ = cache.get(&key).await;
        monitor.breaker().closed >= 1
    })
    .await;
    assert!(closed, "{:?}", monitor.breaker());
    assert_eq!(monitor.breaker().state, Some("closed"));
    assert_eq!(monitor.export_metrics().breaker, monitor.breaker());

    let inherited = cache.get_ai_performance_summary().inherited_stats;
    let l2 = inherited.l2.expect("Redis is under this cache");
    assert!(l2.misses >= 1, "{l2:?}");
    assert!(l2.store.errors >= 1, "the timeouts of the outage: {l2:?}");
    assert!(inherited.l1.is_some());
}

/// 200 distinct operation names (5 requests each: miss, store, hit) through an AI cache with the
/// monitor attached cost under 8 MiB, measured as the RSS growth of a child process that runs
/// only [`two_hundred_operations_child`].
#[test]
fn two_hundred_operations_cost_under_8_mib() {
    let stdout = run_alone(module_path!(), "two_hundred_operations_child");
    assert!(stdout.contains("grown_kib "), "the child ran: {stdout}");
}

#[test]
#[ignore = "run alone in a child process by two_hundred_operations_cost_under_8_mib"]
fn two_hundred_operations_child() {
    if !running_alone() {
        // It measures its own process's RSS: only meaningful alone, as the parent runs it.
        return;
    }
    let rss_kib = || cache_testkit::process_status_kib("VmRSS").unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (cache, monitor) = monitored();
        let warm = cache.key(&AiRequest::new("warmup", "text")).unwrap();
        let _ = cache.get(&warm).await;
        let before = rss_kib();
        for op in 0..200 {
            let operation = format!("operation_{op}");
            for i in 0..5 {
                let key = cache
                    .key(&AiRequest::new(&operation, &format!("text {i}")))
                    .unwrap();
                let _ = cache.get(&key).await;
                cache
                    .put(&key, json!({"a": i}), &RequestControls::default())
                    .await
                    .unwrap();
                let _ = cache.get(&key).await;
            }
        }
        let grown = rss_kib().saturating_sub(before);
        assert_eq!(
            monitor
                .requests_by_operation()
                .values()
                .map(|s| s.reads)
                .sum::<u64>(),
            2001,
            "the warm-up read and 2,000 more"
        );
        println!("grown_kib {grown}");
        assert!(grown < 8 * 1024, "200 operations grew RSS by {grown} KiB");
    });
}
