//! Typed answers, tenants, legacy keys, configuration and the reports.

use super::*;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Summary {
    text: String,
    truncated: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    key_points: Vec<String>,
}

#[tokio::test]
async fn typed_answers_and_admission_rules() {
    let server = server();
    let cache: AIResponseCache<Summary> = ai_builder(&server, ai_config(&server), None)
        .await
        .admission(|s: &Summary| !s.truncated)
        .build()
        .unwrap();
    let controls = RequestControls::default();
    let good = Summary {
        text: "ok".into(),
        truncated: false,
        key_points: vec!["a".into()],
    };
    let cut = Summary {
        text: "cut".into(),
        truncated: true,
        key_points: vec![],
    };
    let k1 = cache.key(&AiRequest::new("summarize", "one")).unwrap();
    let k2 = cache.key(&AiRequest::new("summarize", "two")).unwrap();
    assert!(cache.put(&k1, good.clone(), &controls).await.unwrap());
    assert!(
        !cache.put(&k2, cut, &controls).await.unwrap(),
        "the admission rule refuses it"
    );
    assert_eq!(*cache.get(&k1).await.unwrap().unwrap().value, good);
    assert!(cache.get(&k2).await.unwrap().is_none());
    assert_eq!(cache.stats().by_operation["summarize"].refused, 1);

    let empty: AIResponseCache<String> = ai_over(&server, ai_config(&server)).await.unwrap();
    let k3 = empty.key(&AiRequest::new("summarize", "three")).unwrap();
    assert!(
        !empty.put(&k3, String::new(), &controls).await.unwrap(),
        "empty answers are refused"
    );
    // A value of another type under the same key is a miss, not an error.
    let k1_as_string = empty.key(&AiRequest::new("summarize", "one")).unwrap();
    assert!(empty.get(&k1_as_string).await.unwrap().is_none());
    assert_eq!(empty.stats().decode_failures, 1);
}

#[tokio::test]
async fn memory_only_ai_cache_needs_no_redis() {
    let cache: AIResponseCache<Value> = AIResponseCache::new(AiCacheConfig::default()).unwrap();
    assert!(cache.l2().is_none());
    let text = text_of(TextTier::XLarge);
    cache
        .cache_response(&text, "summarize", &json!({}), &json!({"r": 1}), None)
        .await
        .unwrap();
    let hit = cache
        .get_cached_response(&text, "summarize", &json!({}), None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(hit["text_tier"], "xlarge");
    assert!(cache.health().await.is_none());
}

#[tokio::test]
async fn tenants_and_model_versions_separate_entries() {
    let server = server();
    let a: AIResponseCache<Value> = ai_over(&server, ai_config(&server).with_tenant("acme"))
        .await
        .unwrap();
    let b: AIResponseCache<Value> = ai_over(&server, ai_config(&server).with_tenant("globex"))
        .await
        .unwrap();
    let key = a.key(&AiRequest::new("qa", "shared text")).unwrap();
    a.put(&key, json!({"t": "acme"}), &RequestControls::default())
        .await
        .unwrap();
    assert!(a.full_key(&key).starts_with("aicache:t:acme:v1:qa:"));
    assert!(
        b.get(&key).await.unwrap().is_none(),
        "tenants never see each other's entries"
    );
    assert_eq!(b.invalidate_all().await.unwrap(), 0);
    assert!(a.get(&key).await.unwrap().is_some());

    let v1 = a
        .key(
            &AiRequest::new("qa", "t")
                .with_model("m")
                .with_prompt_version("1"),
        )
        .unwrap();
    let v2 = a
        .key(
            &AiRequest::new("qa", "t")
                .with_model("m")
                .with_prompt_version("2"),
        )
        .unwrap();
    a.put(&v1, json!({"v": 1}), &RequestControls::default())
        .await
        .unwrap();
    assert!(
        a.get(&v2).await.unwrap().is_none(),
        "bumping the prompt version retires the old entry"
    );
    assert!(a.get(&v1).await.unwrap().is_some());
    assert!(
        a.delete(&v1).await.unwrap(),
        "a single entry can be removed"
    );
    assert!(a.get(&v1).await.unwrap().is_none());
    assert!(!a.delete(&v1).await.unwrap());

    let err = ai_over::<Value>(&server, ai_config(&server).with_tenant("a{b}"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
}

#[tokio::test]
async fn legacy_keys_follow_text_hash_threshold() {
    use aicache::{KeyFormat, LegacyVariant};
    let text = "twenty characters!!!";
    let options = json!({"max_length": 100});
    let default: AIResponseCache<Value> = AIResponseCache::new(AiCacheConfig::default()).unwrap();
    let key = default
        .build_key_in(
            KeyFormat::Legacy(LegacyVariant::Head),
            text,
            "summarize",
            &options,
            None,
        )
        .unwrap();
    assert!(
        key.starts_with("ai_cache:op:summarize|txt:twenty characters!!!|opts:"),
        "{key}"
    );
    let mut config = AiCacheConfig::default();
    config.text_hash_threshold = 10;
    let low: AIResponseCache<Value> = AIResponseCache::new(config).unwrap();
    let key = low
        .build_key_in(
            KeyFormat::Legacy(LegacyVariant::Head),
            text,
            "summarize",
            &options,
            None,
        )
        .unwrap();
    assert!(key.starts_with("ai_cache:op:summarize|txt:hash:"), "{key}");
    let v1 = low
        .build_key_in(KeyFormat::V1, text, "summarize", &options, None)
        .unwrap();
    assert!(v1.starts_with("aicache:v1:summarize:"));
}

#[tokio::test]
async fn configured_tiers_jitter_and_hash_algorithm_take_effect() {
    let server = server();
    let config = ai_config(&server)
        .with_text_size_tiers(aicache::TierThresholds::new(10, 20, 30))
        .with_operation_ttl("qa", Duration::from_secs(1000))
        .with_ttl_jitter(0.5)
        .with_hash_algorithm(aicache::HashAlgorithm::Blake3);
    let cache: AIResponseCache<Value> = ai_over(&server, config).await.unwrap();
    let sha: AIResponseCache<Value> = ai_over(&server, ai_config(&server)).await.unwrap();
    let mut conn = raw(&server).await;
    let mut ttls = std::collections::BTreeSet::new();
    for i in 0..20 {
        let k = cache
            .key(&AiRequest::new("qa", &format!("fifteen chars {i:02}")))
            .unwrap();
        assert_eq!(
            k.tier(),
            TextTier::Medium,
            "15+ chars is medium with tiers 10/20/30"
        );
        cache
            .put(&k, json!({"a": i}), &RequestControls::default())
            .await
            .unwrap();
        let pttl: i64 = conn.pttl(cache.full_key(&k)).await.unwrap();
        assert!(
            (499_000..=1_000_000).contains(&pttl),
            "jittered TTL within [ttl/2, ttl]: {pttl}"
        );
        ttls.insert(pttl / 1000);
        let sha_key = sha
            .key(&AiRequest::new("qa", &format!("fifteen chars {i:02}")))
            .unwrap();
        assert_ne!(k, sha_key, "BLAKE3 and SHA-256 keys differ");
    }
    assert!(ttls.len() > 5, "jitter spreads expiries: {ttls:?}");
    let hit = cache
        .get(
            &cache
                .key(&AiRequest::new("qa", "fifteen chars 00"))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(hit.unwrap().metadata.text_tier, Some(TextTier::Medium));
}

#[tokio::test]
async fn a_monitor_sees_exact_hit_rates_by_tier() {
    use aicache::{CacheOp, CachePerformanceMonitor, Layer};
    let server = server();
    let monitor = Arc::new(CachePerformanceMonitor::default());
    let cache: AIResponseCache<Value> =
        ai_builder(&server, ai_config(&server), Some(monitor.clone()))
            .await
            .build()
            .unwrap();
    let writer: AIResponseCache<Value> = ai_over(&server, ai_config(&server).with_l1(None))
        .await
        .unwrap();
    // 4 answers written by another instance (Redis only), 2 never written.
    for i in 0..4 {
        let k = writer.key(&AiRequest::new("qa", &format!("q{i}"))).unwrap();
        writer
            .put(&k, json!({"a": i}), &RequestControls::default())
            .await
            .unwrap();
    }
    for round in 0..2 {
        for i in 0..6 {
            let k = cache.key(&AiRequest::new("qa", &format!("q{i}"))).unwrap();
            let hit = cache.get(&k).await.unwrap();
            assert_eq!(hit.is_some(), i < 4, "round {round} q{i}");
        }
    }
    // Round 1: 4 L2 hits (promoted: small texts), 2 misses; round 2: 4 L1 hits, 2 misses.
    let l1 = monitor.operation_summary(CacheOp::Get, Layer::L1);
    let l2 = monitor.operation_summary(CacheOp::Get, Layer::L2);
    assert_eq!((l1.hits, l2.hits, l2.misses), (4, 4, 4));
    assert!((monitor.hit_rate() - 8.0 / 12.0).abs() < 1e-9);
    // One event in 16 of each outcome is timed, the first included: L1's first hit, L2's first
    // hit and first miss.
    assert_eq!((l1.latency.count, l2.latency.count), (1, 2));
    let k = cache.key(&AiRequest::new("qa", "stored here")).unwrap();
    cache
        .put(&k, json!({"a": 9}), &RequestControls::default())
        .await
        .unwrap();
    assert_eq!(monitor.operation_summary(CacheOp::Set, Layer::L2).done, 1);
    assert_eq!(cache.invalidate_by_operation("qa").await.unwrap(), 5);
    assert_eq!(monitor.invalidation_stats().keys_removed, 5);
}

#[tokio::test]
async fn performance_summaries_report_a_fixed_workload_exactly() {
    let server = server();
    let cache = json_cache(&server).await;
    let empty = cache.get_ai_performance_summary();
    assert_eq!(
        (empty.total_ai_operations, empty.overall_hit_rate),
        (0, 0.0)
    );
    assert!(empty.optimization_recommendations.is_empty());
    assert!(cache.get_operation_performance().is_empty());

    // summarize: 10 small texts stored, each read twice (20 hits) plus 5 unknown (5 misses).
    // qa: 2 medium texts stored, read once (2 hits), plus 8 misses.
    for i in 0..10 {
        let k = cache
            .key(&AiRequest::new("summarize", &format!("doc {i}")))
            .unwrap();
        cache
            .put(&k, json!({"s": i}), &RequestControls::default())
            .await
            .unwrap();
    }
    let medium = |i: usize| format!("{i} {}", "medium text ".repeat(60));
    for i in 0..2 {
        let k = cache.key(&AiRequest::new("qa", &medium(i))).unwrap();
        cache
            .put(&k, json!({"a": i}), &RequestControls::default())
            .await
            .unwrap();
    }
    for _ in 0..2 {
        for i in 0..10 {
            let k = cache
                .key(&AiRequest::new("summarize", &format!("doc {i}")))
                .unwrap();
            assert!(cache.get(&k).await.unwrap().is_some());
        }
    }
    for i in 10..15 {
        let k = cache
            .key(&AiRequest::new("summarize", &format!("doc {i}")))
            .unwrap();
        assert!(cache.get(&k).await.unwrap().is_none());
    }
    for i in 0..10 {
        let k = cache.key(&AiRequest::new("qa", &medium(i))).unwrap();
        assert_eq!(cache.get(&k).await.unwrap().is_some(), i < 2);
    }
    let summary = cache.get_ai_performance_summary();
    assert_eq!(summary.total_ai_operations, 35);
    assert!((summary.overall_hit_rate - 22.0 / 35.0).abs() < 1e-9);
    assert!((summary.hit_rate_by_operation["summarize"] - 0.8).abs() < 1e-9);
    assert!((summary.hit_rate_by_operation["qa"] - 0.2).abs() < 1e-9);
    assert_eq!(summary.text_tier_distribution["small"], 25);
    assert_eq!(summary.text_tier_distribution["medium"], 10);
    let kinds: Vec<_> = summary
        .optimization_recommendations
        .iter()
        .map(|r| r.kind)
        .collect();
    assert!(
        kinds.contains(&aicache::RecommendationKind::LowHitRate),
        "{kinds:?}"
    );

    let performance = cache.get_operation_performance();
    assert_eq!(performance["summarize"].count, 25);
    assert_eq!(performance["qa"].count, 10);
    assert_eq!(performance["qa"].configured_ttl_secs, 1800);
    let p = &performance["summarize"];
    assert!(
        p.min_ms <= p.p50_ms
            && p.p50_ms <= p.p95_ms
            && p.p95_ms <= p.p99_ms
            && p.p99_ms <= p.max_ms
    );

    let tiers = cache.get_text_tier_statistics();
    assert_eq!(tiers.thresholds["small"], 500);
    assert_eq!(tiers.performance["medium"].requests, 10);
    assert!(
        tiers.performance["medium"]
            .notes
            .contains(&"Low hit rate".to_string())
    );
    assert!(
        !tiers.performance.contains_key("large"),
        "tiers without reads are left out"
    );
}

/// Operation names come from requests: past `MAX_TRACKED_OPERATIONS` they share one bucket, so the
/// counters stay bounded, while every answer keeps its own operation in its metadata.
#[tokio::test]
async fn operations_past_the_cap_share_one_bucket_and_keep_their_names() {
    let cache: AIResponseCache<Value> = AIResponseCache::new(ai_config_memory()).unwrap();
    let n = aicache::MAX_TRACKED_OPERATIONS + 40;
    for i in 0..n {
        let key = cache
            .key(&AiRequest::new(&format!("op{i}"), "text"))
            .unwrap();
        cache
            .put(&key, json!({"i": i}), &RequestControls::default())
            .await
            .unwrap();
        let hit = cache.get(&key).await.unwrap().unwrap();
        assert_eq!(&*hit.metadata.operation, format!("op{i}"));
    }
    let stats = cache.stats();
    assert_eq!(
        stats.by_operation.len(),
        aicache::MAX_TRACKED_OPERATIONS + 1
    );
    let other = &stats.by_operation[aicache::OTHER_OPERATIONS];
    assert_eq!(other.stores, 40, "counts stay exact in the bucket");
    let hits: u64 = stats.by_operation.values().map(|s| s.l1_hits).sum();
    assert_eq!(hits, u64::try_from(n).unwrap());
}

fn ai_config_memory() -> AiCacheConfig {
    AiCacheConfig::default().with_l1(Some(MemoryCacheConfig::default().with_max_entries(1000)))
}

/// Counts are exact, only timings are sampled: with 1 read in 16 timed, an operation read 3 times
/// still reports 3 reads (and how many of them were timed).
#[tokio::test]
async fn operation_performance_counts_every_read_when_timings_are_sampled() {
    let cache: AIResponseCache<Value> =
        AIResponseCache::new(ai_config_memory().with_latency_sampling(16)).unwrap();
    for i in 0..3 {
        let key = cache
            .key(&AiRequest::new("rare", &format!("t{i}")))
            .unwrap();
        cache.get(&key).await.unwrap();
    }
    for i in 0..40 {
        let key = cache
            .key(&AiRequest::new("often", &format!("t{i}")))
            .unwrap();
        cache.get(&key).await.unwrap();
    }
    let performance = cache.get_operation_performance();
    assert_eq!(performance["rare"].count, 3);
    assert_eq!(performance["often"].count, 40);
    // Each operation is sampled by its own reads, its first read included.
    assert_eq!(performance["rare"].timed, 1, "the 1st of 3 reads");
    assert_eq!(
        performance["often"].timed, 3,
        "the 1st, 17th and 33rd of 40"
    );
}

#[tokio::test]
async fn an_operation_never_read_has_no_hit_rate() {
    let cache: AIResponseCache<Value> = AIResponseCache::new(ai_config_memory()).unwrap();
    let written = cache.key(&AiRequest::new("written", "t")).unwrap();
    cache
        .put(&written, json!(1), &RequestControls::default())
        .await
        .unwrap();
    let read = cache.key(&AiRequest::new("read", "t")).unwrap();
    cache.get(&read).await.unwrap();
    let summary = cache.get_ai_performance_summary();
    assert!(!summary.hit_rate_by_operation.contains_key("written"));
    assert_eq!(summary.hit_rate_by_operation["read"], 0.0);
}

/// Operations counted in the shared bucket never reach the hit-count promotion rule on the
/// bucket's hits: a medium text of a rare, unstable operation stays out of L1.
#[tokio::test]
async fn the_shared_bucket_lends_no_hits_for_promotion() {
    let store = std::sync::Arc::new(aicache::MemoryFrameStore::new("aicache:v1"));
    let cache: AIResponseCache<Value> = AIResponseCache::builder(ai_config_memory())
        .store(store)
        .build()
        .unwrap();
    // Fill the tracked names, then give the bucket many hits through other operations.
    for i in 0..aicache::MAX_TRACKED_OPERATIONS {
        let key = cache.key(&AiRequest::new(&format!("t{i}"), "x")).unwrap();
        cache.get(&key).await.unwrap();
    }
    for i in 0..30 {
        let key = cache
            .key(&AiRequest::new(&format!("busy{i}"), "x"))
            .unwrap();
        cache
            .put(&key, json!(i), &RequestControls::default())
            .await
            .unwrap();
        cache.get(&key).await.unwrap();
    }
    let medium = "m".repeat(1000);
    let key = cache.key(&AiRequest::new("rare", &medium)).unwrap();
    cache
        .put(&key, json!("answer"), &RequestControls::default())
        .await
        .unwrap();
    assert!(
        !cache.l1_keys().contains(key.cache_key()),
        "a medium answer of an unstable operation with no hits of its own stays out of L1"
    );
}
