//! Savings, spans, serve-stale and read status.

use super::*;

#[tokio::test]
async fn get_or_compute_accounts_for_the_time_it_saves() {
    let server = server();
    let cache: AIResponseCache<String> = ai_over(&server, ai_config(&server)).await.unwrap();
    let key = cache
        .key(&AiRequest::new("summarize", "worth caching"))
        .unwrap();
    for _ in 0..4 {
        cache
            .get_or_compute(&key, &RequestControls::default(), || async {
                tokio::time::sleep(Duration::from_millis(50)).await;
                Ok::<_, std::io::Error>("answer".to_string())
            })
            .await
            .unwrap();
    }
    let stats = &cache.stats().by_operation["summarize"];
    assert_eq!((stats.computed, stats.hits()), (1, 3));
    assert!(stats.mean_compute_time() >= Duration::from_millis(50));
    assert!(
        stats.time_saved() >= Duration::from_millis(150),
        "{:?}",
        stats.time_saved()
    );
    assert!(cache.get_ai_performance_summary().time_saved_ms >= 150);
}

#[derive(Serialize, Deserialize, Clone, PartialEq, Debug)]
struct MeteredAnswer {
    text: String,
    tokens: u64,
}

#[tokio::test]
async fn usage_and_memory_reach_the_stats_and_a_monitor() {
    use aicache::{CachePerformanceMonitor, CompositeRecorder, MetricsRecorder, Usage};
    let server = server();
    let monitor = Arc::new(CachePerformanceMonitor::default());
    let recorder: Arc<dyn aicache::Recorder> = Arc::new(CompositeRecorder::new(vec![
        monitor.clone(),
        Arc::new(MetricsRecorder::default()),
    ]));
    // 2 tokens cost 0.001 (the caller's currency).
    #[expect(clippy::cast_precision_loss, reason = "small token counts")]
    let cache: AIResponseCache<MeteredAnswer> =
        ai_builder(&server, ai_config(&server), Some(recorder))
            .await
            .usage_meter(|answer: &MeteredAnswer| {
                Usage::new(answer.tokens, answer.tokens as f64 * 0.0005)
            })
            .build()
            .unwrap();
    // summarize: 2 texts computed (300 and 500 tokens), each then read 3 times by get_or_compute.
    for round in 0..4 {
        for (i, tokens) in [300u64, 500].into_iter().enumerate() {
            let key = cache
                .key(&AiRequest::new("summarize", &format!("text {i}")))
                .unwrap();
            let answer = cache
                .get_or_compute(&key, &RequestControls::default(), || async move {
                    Ok::<_, std::io::Error>(MeteredAnswer {
                        text: format!("summary {i}"),
                        tokens,
                    })
                })
                .await
                .unwrap();
            let expected = if round == 0 {
                Source::Computed
            } else {
                Source::L1
            };
            assert_eq!(answer.source, expected);
        }
    }
    let stats = &cache.stats().by_operation["summarize"];
    assert_eq!((stats.computed, stats.hits()), (2, 6));
    assert_eq!(stats.tokens_used, 800);
    assert_eq!(stats.tokens_saved, 3 * 800);
    assert!(
        (stats.cost_saved() - 1.2).abs() < 1e-9,
        "{}",
        stats.cost_saved()
    );
    let summary = cache.get_ai_performance_summary();
    assert_eq!((summary.tokens_used, summary.tokens_saved), (800, 2400));
    assert!((summary.cost_used - 0.4).abs() < 1e-9);
    let savings = monitor.savings();
    assert_eq!((savings.computations, savings.hits), (2, 6));
    assert_eq!((savings.tokens_used, savings.tokens_saved), (800, 2400));

    // Memory: this cache's L1 holds the two answers; Redis reports its own figures.
    let reading = cache.report_memory().await.unwrap();
    assert_eq!((reading.l1_entries, reading.l1_max_entries), (2, 1000));
    let redis = reading.redis.expect("Redis answers INFO memory");
    assert!(redis.used_bytes > 0 && redis.peak_bytes >= redis.used_bytes);
    let seen = monitor
        .export_metrics()
        .memory
        .expect("the reading reached the monitor");
    assert_eq!(seen.l1_entries, 2);
    assert_eq!(seen.redis_used_bytes, Some(redis.used_bytes));
    // The generic cache reports the same way, and without Redis there are no Redis figures.
    let memory_only: AIResponseCache<MeteredAnswer> =
        AIResponseCache::new(AiCacheConfig::default()).unwrap();
    assert_eq!(memory_only.report_memory().await.unwrap().redis, None);
    let generic = crate::support::redis_cache(test_config(&server.url())).await;
    assert!(generic.report_memory().await.unwrap().redis.is_some());
}

/// Collects what a `tracing` subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Self;
    fn make_writer(&'a self) -> Self {
        self.clone()
    }
}

/// Run alone in a child process: tracing decides a callsite's interest once for the whole
/// process, so a callsite that another test's thread registers without a subscriber while this
/// one installs its own could keep a stale "never" and hide the spans this test looks for.
#[test]
fn spans_name_the_request_by_operation_and_digest_never_by_its_text() {
    crate::support::run_alone(module_path!(), "spans_child");
}

#[test]
#[ignore = "run alone in a child process by spans_name_the_request_by_operation_and_digest_never_by_its_text"]
fn spans_child() {
    if !crate::support::running_alone() {
        return;
    }
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(captured.clone())
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let cache: AIResponseCache<String> = AIResponseCache::new(AiCacheConfig::default()).unwrap();
    let prompt = "PATIENT RECORD: confidential symptoms";
    let key = cache.key(&AiRequest::new("summarize", prompt)).unwrap();
    runtime.block_on(async {
        for _ in 0..2 {
            cache
                .get_or_compute(&key, &RequestControls::default(), || async {
                    Ok::<_, std::io::Error>("summary".to_string())
                })
                .await
                .unwrap();
        }
    });
    let output = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(output.contains("aicache.get_or_compute"), "{output}");
    assert!(
        output.contains("operation=\"summarize\"") || output.contains("operation=summarize"),
        "{output}"
    );
    assert!(output.contains(&key.digest()[..16]), "{output}");
    assert!(
        output.contains("computed") && output.contains("answered from the cache"),
        "{output}"
    );
    assert!(
        !output.contains("PATIENT") && !output.contains("confidential"),
        "{output}"
    );
}

#[tokio::test]
async fn serve_stale_when_the_model_fails_or_is_too_slow() {
    use aicache::ReadStatus;
    let server = server();
    for with_redis in [true, false] {
        let base = if with_redis {
            ai_config(&server)
        } else {
            AiCacheConfig::default()
        };
        let config =
            base.with_serve_stale(Duration::from_secs(60), Some(Duration::from_millis(100)));
        let cache: AIResponseCache<String> = if with_redis {
            ai_over(&server, config).await.unwrap()
        } else {
            AIResponseCache::new(config).unwrap()
        };
        let key = cache
            .key(&AiRequest::new("summarize", &format!("stale {with_redis}")))
            .unwrap();
        let short = RequestControls::default().with_ttl(Ttl::from_millis(300).unwrap());
        let ok = |answer: &'static str| async move { Ok::<_, std::io::Error>(answer.to_string()) };
        let first = cache
            .get_or_compute(&key, &short, || ok("v1"))
            .await
            .unwrap();
        assert_eq!(first.source, Source::Computed);
        if with_redis {
            let pttl: i64 = raw(&server).await.pttl(cache.full_key(&key)).await.unwrap();
            assert!(pttl > 50_000, "Redis keeps TTL + window, got {pttl} ms");
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(
            cache.get(&key).await.unwrap().is_none(),
            "a plain read past the TTL is a miss (redis: {with_redis})"
        );
        let failed = cache
            .get_or_compute(&key, &short, || async {
                Err::<String, _>(std::io::Error::other("model down"))
            })
            .await
            .unwrap();
        assert_eq!(
            (
                failed.source,
                failed.status(),
                failed.response.metadata.stale
            ),
            (Source::Stale, ReadStatus::Stale, true)
        );
        assert_eq!(*failed.response.value, "v1");
        let finished = Arc::new(AtomicU64::new(0));
        let slow = cache
            .get_or_compute(&key, &short, || {
                let finished = Arc::clone(&finished);
                async move {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    finished.fetch_add(1, Ordering::Relaxed);
                    Ok::<_, std::io::Error>("v2".to_string())
                }
            })
            .await
            .unwrap();
        assert_eq!(
            (slow.source, slow.response.value.as_str()),
            (Source::Stale, "v1")
        );
        assert_eq!(
            finished.load(Ordering::Relaxed),
            0,
            "the slow computation was abandoned"
        );
        assert_eq!(cache.stats().by_operation["summarize"].stale_served, 2);
        // A computation that succeeds replaces the stale answer.
        let fresh = cache
            .get_or_compute(&key, &short, || ok("v3"))
            .await
            .unwrap();
        assert_eq!(
            (fresh.source, fresh.response.value.as_str()),
            (Source::Computed, "v3")
        );
        assert!(!fresh.response.metadata.stale);
        // Without a stale answer, a slow computation is waited for.
        let other = cache
            .key(&AiRequest::new(
                "summarize",
                &format!("never stored {with_redis}"),
            ))
            .unwrap();
        let waited = cache
            .get_or_compute(&other, &short, || async {
                tokio::time::sleep(Duration::from_millis(250)).await;
                Ok::<_, std::io::Error>("late".to_string())
            })
            .await
            .unwrap();
        assert_eq!(
            (waited.source, waited.response.value.as_str()),
            (Source::Computed, "late")
        );
    }
    // Without a window a failed computation is the caller's error, as before.
    let plain: AIResponseCache<String> = ai_over(&server, ai_config(&server)).await.unwrap();
    let key = plain
        .key(&AiRequest::new("summarize", "no window"))
        .unwrap();
    let short = RequestControls::default().with_ttl(Ttl::from_millis(100).unwrap());
    plain
        .get_or_compute(&key, &short, || async {
            Ok::<_, std::io::Error>("v1".to_string())
        })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let failed = plain
        .get_or_compute(&key, &short, || async {
            Err::<String, _>(std::io::Error::other("model down"))
        })
        .await;
    assert!(failed.is_err());
}

#[tokio::test]
async fn reads_report_their_status_and_time_per_layer() {
    use aicache::ReadStatus;
    let server = server();
    let cache: AIResponseCache<Value> = ai_over(&server, ai_config(&server)).await.unwrap();
    let writer: AIResponseCache<Value> = ai_over(&server, ai_config(&server).with_l1(None))
        .await
        .unwrap();
    let key = cache.key(&AiRequest::new("qa", "status")).unwrap();
    writer
        .put(&key, json!({"a": 1}), &RequestControls::default())
        .await
        .unwrap();
    let (hit, report) = cache.get_with_status(&key).await.unwrap();
    assert!(hit.is_some());
    assert_eq!(report.status, ReadStatus::HitL2);
    assert!(
        report.l1_time.is_some() && report.l2_time.is_some(),
        "{report:?}"
    );
    let (_, report) = cache.get_with_status(&key).await.unwrap();
    assert_eq!(report.status, ReadStatus::HitL1, "promoted on the L2 hit");
    assert!(
        report.l1_time.is_some() && report.l2_time.is_none(),
        "{report:?}"
    );
    let missing = cache.key(&AiRequest::new("qa", "never stored")).unwrap();
    let (none, report) = cache.get_with_status(&missing).await.unwrap();
    assert!(none.is_none());
    assert_eq!(report.status, ReadStatus::Miss);
    assert!(report.l2_time.is_some());
    let (_, report) = writer.get_with_status(&key).await.unwrap();
    assert_eq!(report.status, ReadStatus::HitL2);
    assert!(report.l1_time.is_none(), "no L1 on this instance");
}
