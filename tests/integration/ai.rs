//! The AI response cache end to end, with a real Redis as L2.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aicache::{
    AI_VERSION, AIResponseCache, AiCacheConfig, AiRequest, ErrorKind, MemoryCacheConfig,
    RequestControls, Source, TextTier, Ttl,
};
use cache_testkit::RedisServer;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::support::{raw, server, test_config};

/// The AI layer's test settings (the store comes from [`ai_over`]).
fn ai_config(_server: &RedisServer) -> AiCacheConfig {
    AiCacheConfig::default()
        .with_latency_sampling(1)
        .with_l1(Some(MemoryCacheConfig::default().with_max_entries(1000)))
}

/// An AI cache over a Redis store on `server` (with the test timeouts).
pub(crate) async fn ai_over<T>(
    server: &RedisServer,
    config: AiCacheConfig,
) -> aicache::Result<AIResponseCache<T>>
where
    T: Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    aicache::connect_ai_cache(config, Some(&test_config(&server.url())), None).await
}

/// A builder over a Redis store on `server`, the store reporting to `recorder` too.
pub(crate) async fn ai_builder<T>(
    server: &RedisServer,
    config: AiCacheConfig,
    recorder: Option<Arc<dyn aicache::Recorder>>,
) -> aicache::AIResponseCacheBuilder<T>
where
    T: Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    let redis = test_config(&server.url())
        .with_l1(None)
        .with_key_prefix(config.namespace());
    let store = aicache::RedisStore::connect(&redis, recorder.clone())
        .await
        .unwrap();
    let builder = AIResponseCache::builder(config).store(Arc::new(store));
    match recorder {
        Some(recorder) => builder.recorder(recorder),
        None => builder,
    }
}

async fn json_cache(server: &RedisServer) -> AIResponseCache<Value> {
    ai_over(server, ai_config(server)).await.unwrap()
}

fn text_of(tier: TextTier) -> String {
    let chars = match tier {
        TextTier::Small => 200,
        TextTier::Medium => 2_000,
        TextTier::Large => 20_000,
        _ => 60_000,
    };
    "Lorem ipsum dolor sit amet. "
        .chars()
        .cycle()
        .take(chars)
        .collect()
}

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
    let page = store
        .walk(
            &aicache::KeyPattern::new("summarize:*").unwrap(),
            None,
            aicache::WalkMode::Keys,
        )
        .await
        .unwrap();
    let found: Vec<_> = page.entries.into_iter().map(|e| e.key).collect();
    assert_eq!(found, vec![key.cache_key().clone()]);
    assert_eq!(*cache.get(&key).await.unwrap().unwrap().value, big);
    assert_eq!(cache.invalidate_all().await.unwrap(), 1);
    assert!(cache.get(&key).await.unwrap().is_none());
    let left: bool = conn.exists(&full).await.unwrap();
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
        let in_redis: bool = conn.exists(&full).await.unwrap();
        assert!(in_redis, "L1 holds {full}, which Redis no longer has");
    }
    cache.invalidate_by_operation("sentiment").await.unwrap();
    assert_eq!(cache.stats().l1.unwrap().entries, 0);
    let left: Vec<String> = redis::cmd("KEYS")
        .arg("aicache:v1:sentiment:*")
        .query_async(&mut conn)
        .await
        .unwrap();
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
    assert_eq!(cache.stats().flights_in_progress, 0);
    assert_eq!(cache.stats().callers_waiting, 0);
    let mut conn = raw(&server).await;
    let stored: bool = conn.exists(cache.full_key(&key)).await.unwrap();
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
    let old = {
        let (cache, key, release) = (cache.clone(), key.clone(), Arc::clone(&release));
        tokio::spawn(async move {
            cache
                .get_or_compute(&key, &RequestControls::default(), || async move {
                    release.notified().await;
                    Ok::<_, std::io::Error>("old".to_string())
                })
                .await
                .unwrap()
        })
    };
    let leading = crate::support::eventually(Duration::from_secs(20), || async {
        cache.stats().flights_in_progress == 1
    })
    .await;
    assert!(leading);
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
    assert!(a.full_key(&key).starts_with("aicache:v1:t:acme:qa:"));
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
    assert_eq!(l1.latency.count + l2.latency.count, 12);
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

#[tokio::test(flavor = "current_thread")]
async fn spans_name_the_request_by_operation_and_digest_never_by_its_text() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(captured.clone())
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    // Other tests of this binary run get_or_compute on other threads with no subscriber: a
    // callsite they register while this one is being installed can keep a stale "never"
    // interest. Recompute every callsite's interest now that this subscriber is in place.
    tracing::callsite::rebuild_interest_cache();
    let cache: AIResponseCache<String> = AIResponseCache::new(AiCacheConfig::default()).unwrap();
    let prompt = "PATIENT RECORD: confidential symptoms";
    let key = cache.key(&AiRequest::new("summarize", prompt)).unwrap();
    for _ in 0..2 {
        cache
            .get_or_compute(&key, &RequestControls::default(), || async {
                Ok::<_, std::io::Error>("summary".to_string())
            })
            .await
            .unwrap();
    }
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
