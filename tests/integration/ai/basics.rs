//! Requests, keys, invalidation and promotion against a real Redis.

use super::*;

#[tokio::test]
async fn workflow_small_medium_large_with_metadata_field_by_field() {
    let server = server();
    let cache = json_cache(&server).await;
    let mut conn = raw(&server).await;
    let options = json!({"max_length": 100});
    for (tier, name) in [
        (TextTier::Small, "small"),
        (TextTier::Medium, "medium"),
        (TextTier::Large, "large"),
    ] {
        let text = text_of(tier);
        let miss = cache
            .get_cached_response(&text, "summarize", &options, None)
            .await
            .unwrap();
        assert_eq!(miss, None, "{name}: miss first");
        let response = json!({"result": format!("summary of {name}"), "tokens": 42});
        assert!(
            cache
                .cache_response(&text, "summarize", &options, &response, None)
                .await
                .unwrap()
        );
        let hit = cache
            .get_cached_response(&text, "summarize", &options, None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(hit["result"], response["result"]);
        assert_eq!(hit["tokens"], 42);
        assert_eq!(hit["cache_hit"], true);
        assert_eq!(hit["text_tier"], name);
        assert_eq!(hit["operation"], "summarize");
        assert_eq!(hit["ai_version"], AI_VERSION);
        let key = cache.build_key(&text, "summarize", &options, None).unwrap();
        assert_eq!(hit["cache_key"], key.as_str());
        assert!(key.starts_with("aicache:v1:summarize:"));
        assert_eq!(key.len(), "aicache:v1:summarize:".len() + 64);
        let cached_at = hit["cached_at"].as_str().unwrap();
        assert!(
            cached_at.ends_with('Z') && cached_at.contains('T'),
            "{cached_at}"
        );
        let pttl: i64 = conn.pttl(&key).await.unwrap();
        assert!(
            (7_100_000..=7_200_000).contains(&pttl),
            "summarize TTL: {pttl}"
        );
    }
}

#[tokio::test]
async fn qa_questions_and_option_combinations_are_distinct_entries() {
    let server = server();
    let cache = json_cache(&server).await;
    let text = "The Eiffel Tower is in Paris and was completed in 1889.";
    let cases = [
        (json!({}), Some("Where is it?")),
        (json!({}), Some("When was it built?")),
        (json!({"temperature": 0.2}), Some("Where is it?")),
        (
            json!({"temperature": 0.2, "max_tokens": 50}),
            Some("Where is it?"),
        ),
        (json!({}), None),
    ];
    for (i, (options, question)) in cases.iter().enumerate() {
        let response = json!({"answer": i});
        cache
            .cache_response(text, "qa", options, &response, *question)
            .await
            .unwrap();
    }
    for (i, (options, question)) in cases.iter().enumerate() {
        let hit = cache
            .get_cached_response(text, "qa", options, *question)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(hit["answer"], i, "case {i}");
    }
    // Option order does not matter; an integral float equals its integer.
    let reordered = json!({"max_tokens": 50.0, "temperature": 0.2});
    let hit = cache
        .get_cached_response(text, "qa", &reordered, Some("Where is it?"))
        .await
        .unwrap();
    assert_eq!(hit.unwrap()["answer"], 3);
    let mut conn = raw(&server).await;
    let key = cache
        .build_key(text, "qa", &json!({}), Some("Where is it?"))
        .unwrap();
    let pttl: i64 = conn.pttl(&key).await.unwrap();
    assert!((1_700_000..=1_800_000).contains(&pttl), "qa TTL: {pttl}");
}

#[tokio::test]
async fn invalid_requests_are_typed_errors() {
    let server = server();
    let cache = json_cache(&server).await;
    let ok = json!({"r": 1});
    let err = cache
        .cache_response("", "summarize", &json!({}), &ok, None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let err = cache
        .cache_response("t", "Summarize!", &json!({}), &ok, None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("operation"), "{err}");
    let err = cache
        .cache_response("t", "summarize", &json!([1]), &ok, None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("options"), "{err}");
    let err = cache
        .cache_response("t", "summarize", &json!({}), &json!("text"), None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("response"), "{err}");
    assert!(cache.invalidate_by_operation("sum*").await.is_err());
}

#[tokio::test]
async fn generic_operations_reached_through_the_ai_cache() {
    let server = server();
    let cache = json_cache(&server).await;
    let l2 = cache.l2().unwrap();
    let mut conn = raw(&server).await;
    let big = json!({"result": "the same long answer, again and again. ".repeat(200)});
    let key = cache.key(&AiRequest::new("summarize", "doc")).unwrap();
    cache
        .put(&key, big.clone(), &RequestControls::default())
        .await
        .unwrap();
    let full = cache.full_key(&key);
    let stored: Vec<u8> = conn.get(&full).await.unwrap();
    assert!(
        stored.len() < 2000,
        "compressed in Redis: {} bytes",
        stored.len()
    );
    let store = l2.store();
    let ttl = store.remaining_ttl(key.cache_key()).await.unwrap().unwrap();
    assert!(ttl > Duration::from_secs(7000) && ttl <= Duration::from_secs(7200));
    // Every page (on a cluster, a page covers one node, and may be empty).
    let (mut found, mut cursor) = (Vec::new(), None);
    loop {
        let page = store
            .walk(
                &aicache::KeyPattern::new("summarize:*").unwrap(),
                cursor,
                aicache::WalkMode::Keys,
            )
            .await
            .unwrap();
        found.extend(page.entries.into_iter().map(|e| e.key));
        cursor = page.next;
        if cursor.is_none() {
            break;
        }
    }
    found.dedup();
    assert_eq!(found, vec![key.cache_key().clone()]);
    assert_eq!(*cache.get(&key).await.unwrap().unwrap().value, big);
    assert_eq!(cache.invalidate_all().await.unwrap(), 1);
    assert!(cache.get(&key).await.unwrap().is_none());
    let left: bool = holds_value(&mut conn, &full).await;
    assert!(!left);
}

#[tokio::test]
async fn invalidate_by_operation_is_exact_and_counts_l1_and_l2_once() {
    let server = server();
    let mut config = ai_config(&server);
    config = config.with_operation_ttl("sum", Duration::from_secs(60));
    let cache: AIResponseCache<Value> = ai_over(&server, config).await.unwrap();
    for i in 0..5 {
        let k = cache.key(&AiRequest::new("sum", &format!("t{i}"))).unwrap();
        cache
            .put(&k, json!({"r": i}), &RequestControls::default())
            .await
            .unwrap();
        let k = cache
            .key(&AiRequest::new("summarize", &format!("t{i}")))
            .unwrap();
        cache
            .put(&k, json!({"r": i}), &RequestControls::default())
            .await
            .unwrap();
    }
    assert_eq!(
        cache.stats().l1.unwrap().entries,
        10,
        "small texts live in L1 too"
    );
    assert_eq!(cache.invalidate_by_operation("sum").await.unwrap(), 5);
    assert_eq!(
        cache.invalidate_by_operation("sum").await.unwrap(),
        0,
        "an empty result is 0"
    );
    assert_eq!(cache.invalidate_by_operation("qa").await.unwrap(), 0);
    let k = cache.key(&AiRequest::new("summarize", "t0")).unwrap();
    assert!(cache.get(&k).await.unwrap().is_some(), "summarize survives");
    assert_eq!(cache.invalidate_pattern("summarize:*").await.unwrap(), 5);
    assert_eq!(cache.stats().l1.unwrap().entries, 0);
    assert_eq!(cache.stats().by_operation["sum"].invalidated, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidation_concurrent_with_reads_and_writes_leaves_nothing_behind() {
    let server = server();
    let cache = json_cache(&server).await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..4 {
        let cache = cache.clone();
        let stop = Arc::clone(&stop);
        workers.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let k = cache
                    .key(&AiRequest::new("sentiment", &format!("w{w}-{}", i % 20)))
                    .unwrap();
                if i.is_multiple_of(2) {
                    cache
                        .put(&k, json!({"s": i}), &RequestControls::default())
                        .await
                        .unwrap();
                } else {
                    cache.get(&k).await.unwrap();
                }
                i += 1;
            }
        }));
    }
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(30)).await;
        cache.invalidate_by_operation("sentiment").await.unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.unwrap();
    }
    // Writers have stopped: every copy L1 still holds must exist in Redis (no invalidated or
    // overwritten answer lingers in L1), and one more invalidation leaves both empty.
    let mut conn = raw(&server).await;
    for key in cache.l1_keys() {
        let full = format!("aicache:v1:{key}");
        let in_redis: bool = holds_value(&mut conn, &full).await;
        assert!(in_redis, "L1 holds {full}, which Redis no longer has");
    }
    cache.invalidate_by_operation("sentiment").await.unwrap();
    assert_eq!(cache.stats().l1.unwrap().entries, 0);
    let left = keys_with_values(&mut conn, "aicache:v1:sentiment:*").await;
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test]
async fn promotion_follows_tier_and_operation_rules() {
    let server = server();
    let writer: AIResponseCache<Value> = ai_over(&server, ai_config(&server).with_l1(None))
        .await
        .unwrap();
    let reader = json_cache(&server).await;
    let cases = [
        ("qa", TextTier::Small, true),
        ("summarize", TextTier::Medium, true),
        ("qa", TextTier::Medium, false),
        ("sentiment", TextTier::Large, true),
        ("summarize", TextTier::Large, false),
        ("sentiment", TextTier::XLarge, false),
    ];
    for (operation, tier, _) in cases {
        let k = writer
            .key(&AiRequest::new(operation, &text_of(tier)))
            .unwrap();
        writer
            .put(&k, json!({"op": operation}), &RequestControls::default())
            .await
            .unwrap();
    }
    for (operation, tier, promoted) in cases {
        let k = reader
            .key(&AiRequest::new(operation, &text_of(tier)))
            .unwrap();
        let before = reader
            .stats()
            .by_operation
            .get(operation)
            .map_or(0, |s| s.promotions);
        let hit = reader.get(&k).await.unwrap().unwrap();
        assert_eq!(hit.metadata.text_tier, Some(tier));
        let after = reader.stats().by_operation[operation].promotions;
        assert_eq!(after - before, u64::from(promoted), "{operation} {tier:?}");
        let again = reader.get(&k).await.unwrap().unwrap();
        let expected = if promoted {
            aicache::Layer::L1
        } else {
            aicache::Layer::L2
        };
        assert_eq!(again.metadata.layer, Some(expected), "{operation} {tier:?}");
    }
}

#[tokio::test]
async fn medium_texts_of_any_operation_are_promoted_after_ten_hits() {
    let server = server();
    let writer: AIResponseCache<Value> = ai_over(&server, ai_config(&server).with_l1(None))
        .await
        .unwrap();
    let reader = json_cache(&server).await;
    let k = writer
        .key(&AiRequest::new("qa", &text_of(TextTier::Medium)))
        .unwrap();
    writer
        .put(&k, json!({"a": 1}), &RequestControls::default())
        .await
        .unwrap();
    for _ in 0..9 {
        assert_eq!(
            reader.get(&k).await.unwrap().unwrap().metadata.layer,
            Some(aicache::Layer::L2)
        );
    }
    reader.get(&k).await.unwrap();
    assert_eq!(
        reader.get(&k).await.unwrap().unwrap().metadata.layer,
        Some(aicache::Layer::L1)
    );
    assert_eq!(reader.stats().by_operation["qa"].promotions, 1);
}

#[tokio::test]
async fn a_full_l1_evicts_and_keeps_its_limits() {
    let server = server();
    let config = ai_config(&server).with_l1(Some(MemoryCacheConfig::default().with_max_entries(8)));
    let cache: AIResponseCache<Value> = ai_over(&server, config).await.unwrap();
    for i in 0..40 {
        let k = cache
            .key(&AiRequest::new("sentiment", &format!("text {i}")))
            .unwrap();
        cache
            .put(&k, json!({"s": i}), &RequestControls::default())
            .await
            .unwrap();
    }
    let l1 = cache.stats().l1.unwrap();
    assert!(l1.entries <= 8, "{l1:?}");
    assert!(l1.evictions >= 32, "{l1:?}");
    // Everything is still answered (from Redis), and reads promote into the full L1.
    for i in 0..40 {
        let k = cache
            .key(&AiRequest::new("sentiment", &format!("text {i}")))
            .unwrap();
        assert_eq!(cache.get(&k).await.unwrap().unwrap().value["s"], i);
    }
    let stats = cache.stats();
    assert!(stats.by_operation["sentiment"].promotions > 0);
    assert!(stats.l1.unwrap().entries <= 8);
}

/// Stored bytes nested far deeper than any answer (a peer's bug, or an attacker with write
/// access) are a miss, counted, on a worker's stack: never a crashed worker.
#[tokio::test]
async fn a_deeply_nested_stored_payload_is_a_miss_not_a_crash() {
    let server = server();
    let cache = json_cache(&server).await;
    let store = aicache::RedisStore::connect(
        &test_config(&server.url())
            .with_l1(None)
            .with_key_prefix(cache.config().namespace()),
        None,
    )
    .await
    .unwrap();
    let tier = aicache::SharedTier::new(Arc::new(store), cache.config().frames.codec(None), None);
    let now = aicache::unix_millis();
    for depth in [aicache::frame::MAX_PAYLOAD_DEPTH + 1, 200_000] {
        let key = cache
            .key(&AiRequest::new("qa", &format!("deep {depth}")))
            .unwrap();
        let mut payload = vec![0x91; depth];
        payload.push(0x01);
        tier.write(
            key.cache_key(),
            &aicache::frame::FrameMeta::new(now, now + 60_000),
            aicache::frame::Codec::MessagePack,
            payload.clone().into(),
            Ttl::from_secs(60).unwrap(),
        )
        .await
        .unwrap();
        assert!(cache.get(&key).await.unwrap().is_none(), "{depth}");
    }
    assert_eq!(cache.stats().decode_failures, 2);
    let deep = (0..=aicache::frame::MAX_PAYLOAD_DEPTH).fold(json!(1), |v, _| json!([v]));
    let key = cache
        .key(&AiRequest::new("qa", "too deep to store"))
        .unwrap();
    let err = cache
        .put(&key, deep, &RequestControls::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
}
