//! `CacheCompatibilityWrapper` against a real Redis holding the Python service's entries.

use std::sync::Arc;

use aicache::{CacheCompatibilityWrapper, CompatibilityConfig, LegacyRequest, RedisStore, Secret};
use base64::Engine as _;
use redis::AsyncCommands;
use serde_json::Value;

use super::{Redis, ai_over, raw, server, test_config};

fn vectors() -> Value {
    serde_json::from_str(include_str!(
        "../../../crates/cache-ai/testdata/legacy_vectors.json"
    ))
    .unwrap()
}

/// A store over the Python prefix, and a wrapper around a fresh AI cache (no L1).
async fn wrapper(server: &Redis, config: &CompatibilityConfig) -> CacheCompatibilityWrapper {
    let cache = ai_over(server, aicache::AiCacheConfig::default().with_l1(None))
        .await
        .unwrap();
    let legacy = RedisStore::connect(
        &test_config(&server.url()).with_key_prefix("ai_cache"),
        None,
    )
    .await
    .unwrap();
    CacheCompatibilityWrapper::new(cache, Arc::new(legacy), config).unwrap()
}

fn request_of(vector: &Value) -> (String, String, Option<String>, Option<String>) {
    let request = &vector["request"];
    (
        request["text"].as_str().unwrap().to_owned(),
        request["operation"].as_str().unwrap().to_owned(),
        request
            .get("options")
            .filter(|o| !o.is_null())
            .map(|o| o.to_string()),
        request["question"].as_str().map(str::to_owned),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_value_vector_reads_through_or_is_refused_with_its_reason() {
    let server = server();
    let all = vectors();
    let fernet = Secret::new(all["fernet_key"].as_str().unwrap());
    let config = CompatibilityConfig::default()
        .with_read_through(true)
        .with_fernet_key(fernet);
    let mut conn = raw(&server).await;
    let mut checked = 0;
    for vector in all["values"].as_array().unwrap() {
        let (id, expect) = (
            vector["id"].as_str().unwrap(),
            vector["expect"].as_str().unwrap(),
        );
        if expect == "absent" || vector["writer"] == "synthetic" {
            continue;
        }
        let _: () = redis::cmd("FLUSHALL").query_async(&mut conn).await.unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(vector["raw_b64"].as_str().unwrap())
            .unwrap();
        let key = vector["key"].as_str().unwrap();
        let _: () = conn.set_ex(key, &bytes, 3600).await.unwrap();
        let wrapper = wrapper(&server, &config).await;
        let (text, operation, options, question) = request_of(vector);
        let mut request = LegacyRequest::new(&operation, &text);
        if let Some(options) = &options {
            request = request.with_options_json(options);
        }
        if let Some(question) = &question {
            request = request.with_question(question);
        }
        let logical = key.strip_prefix("ai_cache:").unwrap();
        assert!(
            wrapper
                .legacy_keys(&request)
                .unwrap()
                .iter()
                .any(|k| k == logical),
            "{id}: the wrapper's key path finds {key}"
        );
        let found = wrapper.get(&request).await.unwrap();
        let stats = wrapper.stats();
        match expect {
            "decode" if vector["decoded"].is_null() => assert!(found.is_none(), "{id}"),
            "decode" => {
                let found = found.unwrap_or_else(|| panic!("{id}: {stats:?}"));
                assert_eq!(*found.value, vector["decoded"], "{id}");
                assert_eq!(stats.read_through_imports, 1, "{id}");
            }
            "refuse" => {
                assert!(found.is_none(), "{id}");
                assert_eq!(stats.refused.get("pickle"), Some(&1), "{id}: {stats:?}");
            }
            "nonstandard_json" => {
                assert!(found.is_none(), "{id}");
                assert_eq!(stats.refused.get("nonstandard_json"), Some(&1), "{id}");
            }
            other => panic!("{id}: {other}"),
        }
        // The Python entry is never touched.
        let after: Vec<u8> = conn.get(key).await.unwrap();
        assert_eq!(after, bytes, "{id}");
        checked += 1;
    }
    assert!(checked >= 40, "{checked}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_key_vector_is_found_by_the_wrappers_key_path() {
    let server = server();
    let wrapper = wrapper(&server, &CompatibilityConfig::default()).await;
    let at_500 = wrapper_with_threshold(&server, 500).await;
    let all = vectors();
    let mut checked = 0;
    for vector in all["keys"].as_array().unwrap() {
        let text: String = match vector["text"].as_str() {
            Some(text) => text.to_owned(),
            None => {
                let recipe = &vector["text_recipe"];
                let chars = usize::try_from(recipe["chars"].as_u64().unwrap()).unwrap();
                recipe["unit"]
                    .as_str()
                    .unwrap()
                    .chars()
                    .cycle()
                    .take(chars)
                    .collect()
            }
        };
        let wrapper = if vector["text_hash_threshold"] == 500 {
            &at_500
        } else {
            &wrapper
        };
        checked += 1;
        let operation = vector["operation"].as_str().unwrap();
        let mut request = LegacyRequest::new(operation, &text);
        if let Some(options) = vector["options_json"].as_str() {
            request = request.with_options_json(options);
        }
        if let Some(question) = vector["question"].as_str() {
            request = request.with_question(question);
        }
        let keys = wrapper.legacy_keys(&request).unwrap();
        for field in ["head_key", "legacy_key"] {
            if let Some(expected) = vector[field].as_str() {
                let logical = expected.strip_prefix("ai_cache:").unwrap();
                assert!(
                    keys.iter().any(|k| k == logical),
                    "{}: {field}",
                    vector["id"]
                );
            }
        }
    }
    assert_eq!(checked, all["keys"].as_array().unwrap().len());
    // The factory's threshold (500) is a setting.
    let short = "x".repeat(600);
    let request = LegacyRequest::new("summarize", &short);
    assert!(at_500.legacy_keys(&request).unwrap()[0].contains("txt:hash:"));
    assert!(!wrapper.legacy_keys(&request).unwrap()[0].contains("txt:hash:"));
}

async fn wrapper_with_threshold(server: &Redis, threshold: usize) -> CacheCompatibilityWrapper {
    wrapper(
        server,
        &CompatibilityConfig::default().with_text_hash_threshold(threshold),
    )
    .await
}

const ENVELOPE: &str =
    r#"{"_serialized_data": "rawj:{\"operation\":\"summarize\",\"result\":\"A summary.\"}"}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_through_imports_once_with_the_python_ttl_and_leaves_python_alone() {
    let server = server();
    let mut conn = raw(&server).await;
    let config = CompatibilityConfig::default().with_read_through(true);
    let wrapper = wrapper(&server, &config).await;
    let request = LegacyRequest::new("summarize", "A text the Python service summarized.");
    let python_key = format!("ai_cache:{}", wrapper.legacy_keys(&request).unwrap()[0]);
    let _: () = conn.set_ex(&python_key, ENVELOPE, 1200).await.unwrap();

    let first = wrapper.get(&request).await.unwrap().unwrap();
    assert_eq!(first.value["result"], "A summary.");
    let second = wrapper.get(&request).await.unwrap().unwrap();
    assert_eq!(second.value, first.value);
    let stats = wrapper.stats();
    assert_eq!(
        (
            stats.misses_checked,
            stats.legacy_reads,
            stats.read_through_imports
        ),
        (1, 1, 1),
        "the second read is a v1 hit"
    );
    // Taken over under the request's v1 key, with the Python entry's remaining TTL.
    let v1 = wrapper.cache().full_key(&wrapper.key(&request).unwrap());
    let ttl: i64 = conn.ttl(&v1).await.unwrap();
    assert!((1190..=1200).contains(&ttl), "{ttl}");
    let python: String = conn.get(&python_key).await.unwrap();
    assert_eq!(python, ENVELOPE);
    let python_ttl: i64 = conn.ttl(&python_key).await.unwrap();
    assert!(python_ttl > 1190);

    // Off by default: the Python entry is not even read.
    let passive = self::wrapper(&server, &CompatibilityConfig::default()).await;
    let other = LegacyRequest::new("summarize", "Another text.");
    let other_key = format!("ai_cache:{}", passive.legacy_keys(&other).unwrap()[0]);
    let _: () = conn.set_ex(&other_key, ENVELOPE, 1200).await.unwrap();
    assert!(passive.get(&other).await.unwrap().is_none());
    assert_eq!(passive.stats().legacy_reads, 0);
    // What was imported is found without read-through.
    assert!(passive.get(&request).await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_converts_every_entry_and_reports_by_kind() {
    let server = server();
    let mut conn = raw(&server).await;
    let wrapper = wrapper(&server, &CompatibilityConfig::default()).await;
    let texts: Vec<String> = (0..30)
        .map(|i| format!("Imported text number {i}."))
        .collect();
    for text in &texts {
        let key = format!(
            "ai_cache:{}",
            wrapper
                .legacy_keys(&LegacyRequest::new("summarize", text))
                .unwrap()[0]
        );
        let _: () = conn.set_ex(key, ENVELOPE, 900).await.unwrap();
    }
    let _: () = conn
        .set_ex(
            "ai_cache:op:qa|txt:pickled",
            b"raw:\x80\x04K\x01.".as_slice(),
            900,
        )
        .await
        .unwrap();
    let _: () = conn
        .set_ex(
            "ai_cache:op:qa|txt:zipped",
            b"compressed:x\x9c".as_slice(),
            900,
        )
        .await
        .unwrap();
    let _: () = conn
        .set_ex("ai_cache:op:qa|txt:nan", "rawj:{\"x\":NaN}", 900)
        .await
        .unwrap();
    let _: () = conn
        .set_ex("ai_cache:op:qa|txt:null", "rawj:null", 900)
        .await
        .unwrap();
    let _: () = conn
        .set_ex("ai_cache:something:else", "rawj:1", 900)
        .await
        .unwrap();
    let _: () = conn
        .set_ex("ai_cache:op:Bad Op!|txt:x", "rawj:1", 900)
        .await
        .unwrap();

    let mut pages = 0;
    let report = wrapper.import(|_| pages += 1).await.unwrap();
    assert!(pages >= 1);
    assert_eq!(report.scanned, 35, "{report:?}");
    assert_eq!(report.converted, 30, "{report:?}");
    assert_eq!(report.refused_pickle, 2, "{report:?}");
    assert_eq!(
        report.refused.get("nonstandard_json"),
        Some(&1),
        "{report:?}"
    );
    assert_eq!(report.undecodable, 1, "{report:?}");
    assert_eq!(report.foreign, 1, "{report:?}");
    // Found without read-through, from the imported answers.
    for text in &texts[..3] {
        let found = wrapper
            .get(&LegacyRequest::new("summarize", text))
            .await
            .unwrap();
        assert_eq!(found.unwrap().value["result"], "A summary.");
    }
    // The three read were moved to their v1 keys (their imported copies are gone): a rerun
    // imports those again, and leaves the 27 others as they are.
    assert_eq!(wrapper.stats().imported_hits, 3);
    let again = wrapper.import(|_| {}).await.unwrap();
    assert_eq!((again.converted, again.skipped), (3, 27), "{again:?}");
    let python: Vec<String> = conn.keys("ai_cache:*").await.unwrap();
    assert_eq!(python.len(), 36, "the Python entries are all still there");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v1_removal_blocks_reimport_through_every_legacy_path() {
    let server = server();
    let mut conn = raw(&server).await;
    let config = CompatibilityConfig::default().with_read_through(true);
    let wrapper = wrapper(&server, &config).await;
    let texts: Vec<String> = (0..4)
        .map(|i| format!("Removed text number {i}."))
        .collect();
    let requests: Vec<LegacyRequest<'_>> = texts
        .iter()
        .map(|t| LegacyRequest::new("summarize", t))
        .collect();
    for request in &requests {
        let key = format!("ai_cache:{}", wrapper.legacy_keys(request).unwrap()[0]);
        let _: () = conn.set_ex(key, ENVELOPE, 900).await.unwrap();
    }
    // 0: imported, then deleted through the wrapper; 1: imported, then its operation
    // invalidated; 2 and 3: never imported before the invalidation.
    assert!(wrapper.get(&requests[0]).await.unwrap().is_some());
    assert!(wrapper.get(&requests[1]).await.unwrap().is_some());
    assert!(wrapper.delete(&requests[0]).await.unwrap());
    assert!(
        wrapper.get(&requests[0]).await.unwrap().is_none(),
        "deleted: not read through again"
    );
    assert!(wrapper.invalidate_by_operation("summarize").await.unwrap() >= 1);
    for request in &requests {
        assert!(wrapper.get(request).await.unwrap().is_none(), "{request:?}");
    }
    let report = wrapper.import(|_| {}).await.unwrap();
    assert_eq!(report.converted, 0, "{report:?}");
    for request in &requests {
        assert!(wrapper.get(request).await.unwrap().is_none(), "{request:?}");
    }
    assert!(wrapper.stats().blocked >= 4, "{:?}", wrapper.stats());
    let python: Vec<String> = conn.keys("ai_cache:*").await.unwrap();
    assert_eq!(
        python.len(),
        4,
        "the Python entries are never removed by the wrapper"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_v1_delete_and_an_expired_store_record_still_block_the_python_answer() {
    let server = server();
    let mut conn = raw(&server).await;
    let config = CompatibilityConfig::default().with_read_through(true);
    // The cache's store forgets removals after one second; the wrapper's own record lasts 24
    // hours.
    let short = test_config(&server.url()).with_replay_horizon(std::time::Duration::from_secs(1));
    let cache: aicache::AIResponseCache = aicache::connect_ai_cache(
        aicache::AiCacheConfig::default().with_l1(None),
        Some(&short),
        None,
    )
    .await
    .unwrap();
    let legacy = RedisStore::connect(
        &test_config(&server.url()).with_key_prefix("ai_cache"),
        None,
    )
    .await
    .unwrap();
    let wrapper = CacheCompatibilityWrapper::new(cache, Arc::new(legacy), &config).unwrap();
    let plain = LegacyRequest::new("summarize", "Deleted through the plain cache.");
    let through = LegacyRequest::new("summarize", "Deleted through the wrapper.");
    for request in [&plain, &through] {
        let key = format!("ai_cache:{}", wrapper.legacy_keys(request).unwrap()[0]);
        let _: () = conn.set_ex(key, ENVELOPE, 900).await.unwrap();
        assert!(wrapper.get(request).await.unwrap().is_some());
    }
    // A delete that bypasses the wrapper leaves a tombstone on the v1 key: the Python answer is
    // not taken over again while the store remembers it.
    let v1 = wrapper.key(&plain).unwrap();
    assert!(wrapper.cache().delete(&v1).await.unwrap());
    assert!(wrapper.get(&plain).await.unwrap().is_none());
    assert!(wrapper.delete(&through).await.unwrap());
    assert!(wrapper.get(&through).await.unwrap().is_none());
    assert!(wrapper.stats().blocked >= 2, "{:?}", wrapper.stats());
    // Once the store's record has lapsed, a removal made through the wrapper still blocks.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(wrapper.get(&through).await.unwrap().is_none());
    let python: Vec<String> = conn.keys("ai_cache:*").await.unwrap();
    assert_eq!(python.len(), 2, "the Python entries are still there");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_answers_become_typed_answers_with_enums() {
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    #[serde(rename_all = "snake_case")]
    enum Label {
        Positive,
        Negative,
    }
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Sentiment {
        operation: String,
        sentiment: Label,
        confidence: f64,
    }
    let server = server();
    let mut conn = raw(&server).await;
    let cache: aicache::AIResponseCache<Sentiment> =
        ai_over(&server, aicache::AiCacheConfig::default().with_l1(None))
            .await
            .unwrap();
    let legacy = RedisStore::connect(
        &test_config(&server.url()).with_key_prefix("ai_cache"),
        None,
    )
    .await
    .unwrap();
    let config = CompatibilityConfig::default().with_read_through(true);
    let wrapper = CacheCompatibilityWrapper::new(cache, Arc::new(legacy), &config).unwrap();
    let request = LegacyRequest::new("sentiment", "I love this product.");
    let key = format!("ai_cache:{}", wrapper.legacy_keys(&request).unwrap()[0]);
    let stored = r#"{"_serialized_data": "rawj:{\"operation\":\"sentiment\",\"sentiment\":\"positive\",\"confidence\":0.9}"}"#;
    let _: () = conn.set_ex(key, stored, 900).await.unwrap();
    let found = wrapper.get(&request).await.unwrap().unwrap();
    assert_eq!(
        *found.value,
        Sentiment {
            operation: "sentiment".into(),
            sentiment: Label::Positive,
            confidence: 0.9
        }
    );
}
