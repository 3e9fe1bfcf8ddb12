//! Validation rules, secrets, URLs and the settings that reach each tier.

use super::*;

#[tokio::test]
async fn monitoring_enabled_turns_key_statistics_on_and_off() {
    for enabled in [true, false] {
        let config = AIResponseCacheConfig::default()
            .merge(&json!({"monitoring_enabled": enabled}))
            .unwrap();
        let cache = config.build_ai_cache::<Value>().await.unwrap();
        cache.key(&AiRequest::new("qa", "text")).unwrap();
        assert_eq!(
            cache.stats().key_generation.keys_generated,
            u64::from(enabled)
        );
    }
}

#[test]
fn every_validation_rule_has_a_valid_and_an_invalid_case() {
    let base = AIResponseCacheConfig::default();
    // (field, a valid override, an invalid override)
    let rules = [
        (
            "text_hash_threshold",
            json!({"text_hash_threshold": 500}),
            json!({"text_hash_threshold": 0}),
        ),
        (
            "text_size_tiers",
            json!({"text_size_tiers": {"small": 1, "medium": 2, "large": 3}}),
            json!({"text_size_tiers": {"small": 0, "medium": 2, "large": 3}}),
        ),
        (
            "operation_ttls.qa",
            json!({"operation_ttls": {"qa": 1}}),
            json!({"operation_ttls": {"qa": 0}}),
        ),
        (
            "operation_ttls.Bad",
            json!({"operation_ttls": {"good_op": 5}}),
            json!({"operation_ttls": {"Bad": 5}}),
        ),
        (
            "default_ttl",
            json!({"default_ttl": 1}),
            json!({"default_ttl": 0}),
        ),
        (
            "l1_max_ttl",
            json!({"l1_max_ttl": 1}),
            json!({"l1_max_ttl": 0}),
        ),
        (
            "ttl_jitter",
            json!({"ttl_jitter": 0.5}),
            json!({"ttl_jitter": 0.6}),
        ),
        (
            "hash_algorithm",
            json!({"hash_algorithm": "blake3"}),
            json!({"hash_algorithm": "md5"}),
        ),
        (
            "compression_algorithm",
            json!({"compression_algorithm": "lz4"}),
            json!({"compression_algorithm": "gzip"}),
        ),
        (
            "compression_level",
            json!({}),
            json!({"compression_level": 3}),
        ),
        (
            "compression_threshold",
            json!({"compression_threshold": 0}),
            json!({"compression_threshold": 20_000_000}),
        ),
        (
            "memory_cache_size",
            json!({"memory_cache_size": 1}),
            json!({"memory_cache_size": 0}),
        ),
        (
            "memory_cache_bytes",
            json!({"memory_cache_bytes": 4096}),
            json!({"memory_cache_bytes": 4095}),
        ),
        (
            "max_value_size",
            json!({"max_value_size": 1}),
            json!({"max_value_size": 0}),
        ),
        (
            "command_timeout_ms",
            json!({"command_timeout_ms": 1}),
            json!({"command_timeout_ms": 0}),
        ),
        (
            "connect_timeout_ms",
            json!({"connect_timeout_ms": 1}),
            json!({"connect_timeout_ms": 0}),
        ),
        (
            "tenant",
            json!({"tenant": "team-a_1"}),
            json!({"tenant": "{hash}"}),
        ),
        (
            "redis_url",
            json!({"redis_url": "redis+unix:///tmp/r.sock"}),
            json!({"redis_url": "mysql://h"}),
        ),
        (
            "tls_client_key_file",
            json!({"redis_url": "rediss://h"}),
            json!({"redis_url": "rediss://h", "tls_client_cert_file": "/etc/hosts"}),
        ),
        (
            "tls_ca_file",
            json!({"redis_url": "rediss://h", "tls_ca_file": "/etc/hosts"}),
            json!({"redis_url": "rediss://h", "tls_ca_file": "/nonexistent/ca.pem"}),
        ),
        (
            "redis_auth",
            json!({"redis_url": "redis://h", "redis_username": "app", "redis_auth": "pw"}),
            json!({"redis_url": "redis://h", "redis_username": "app"}),
        ),
        (
            "encryption_key",
            json!({"redis_url": "redis://h", "encryption_key": "ab".repeat(32)}),
            json!({"redis_url": "redis://h", "encryption_key": "not hex"}),
        ),
        (
            "encryption_previous_key_id",
            json!({"redis_url": "redis://h", "encryption_key": "ab".repeat(32),
                   "encryption_key_id": 2, "encryption_previous_key": "cd".repeat(32),
                   "encryption_previous_key_id": 1}),
            json!({"redis_url": "redis://h", "encryption_key": "ab".repeat(32),
                   "encryption_previous_key": "cd".repeat(32), "encryption_key_id": 1,
                   "encryption_previous_key_id": 1}),
        ),
        (
            "encryption_algorithm",
            json!({"encryption_algorithm": "aes256gcm"}),
            json!({"encryption_algorithm": "rot13"}),
        ),
        (
            "redis_auth",
            json!({"redis_url": "redis://:same@h", "redis_auth": "same"}),
            json!({"redis_url": "redis://:one@h", "redis_auth": "two"}),
        ),
        (
            "enable_l1_cache",
            json!({"redis_url": "redis://h", "enable_l1_cache": false}),
            json!({"enable_l1_cache": false}),
        ),
    ];
    for (field, valid, invalid) in rules {
        let ok = base.merge(&valid).unwrap().validate();
        assert!(ok.is_valid(), "{field}: {valid} should be valid: {ok:?}");
        let bad = base.merge(&invalid).unwrap().validate();
        assert!(
            bad.errors.iter().any(|e| e.field == field),
            "{field}: {invalid}: {bad:?}"
        );
    }
    let mut named = AIResponseCacheConfig::default();
    named.extends = Some("embedded".into());
    assert!(named.validate().is_valid());
    named.extends = Some("nope".into());
    assert_eq!(named.validate().errors[0].field, "extends");
    let production = AIResponseCacheConfig::preset("production").unwrap();
    assert_eq!(production.validate().errors[0].field, "redis_url");
    let warnings = base
        .merge(&json!({"redis_auth": "x", "enable_l1_cache": true}))
        .unwrap()
        .validate()
        .warnings;
    assert_eq!(
        warnings[0].field, "redis_auth",
        "a password without a URL is unused"
    );
}

#[tokio::test]
async fn zstd_and_its_level_reach_redis() {
    let server = server();
    let mut conn = raw(&server).await;
    let dictionary = [
        "cache", "model", "answer", "prompt", "token", "latency", "redis", "tier",
    ];
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let text: String = (0..4000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            dictionary[usize::try_from(state % 8).unwrap()]
        })
        .collect::<Vec<_>>()
        .join(" ");
    let mut sizes = Vec::new();
    for (tenant, overrides) in [
        ("lz4", json!({})),
        (
            "zstd1",
            json!({"compression_algorithm": "zstd", "compression_level": 1}),
        ),
        (
            "zstd19",
            json!({"compression_algorithm": "zstd", "compression_level": 19}),
        ),
    ] {
        let mut overrides = overrides;
        overrides["redis_url"] = json!(server.url());
        overrides["tenant"] = json!(tenant);
        let config = AIResponseCacheConfig::default().merge(&overrides).unwrap();
        let cache = config.build_ai_cache::<Value>().await.unwrap();
        let key = cache
            .key(&AiRequest::new("summarize", "same request"))
            .unwrap();
        cache
            .put(&key, json!({"text": text}), &RequestControls::default())
            .await
            .unwrap();
        let stored: Vec<u8> = conn.get(cache.full_key(&key)).await.unwrap();
        assert_eq!(
            cache.get(&key).await.unwrap().unwrap().value["text"],
            text.as_str()
        );
        sizes.push(stored.len());
    }
    assert!(
        sizes[1] < sizes[0],
        "zstd stores smaller than LZ4: {sizes:?}"
    );
    assert!(
        sizes[2] < sizes[1],
        "level 19 stores smaller than level 1: {sizes:?}"
    );
}

#[test]
fn secrets_never_leak_from_parsing_serializing_or_merging() {
    let broken = AIResponseCacheConfig::from_toml("redis_auth = hunter2\n")
        .unwrap_err()
        .to_string();
    assert!(
        !broken.contains("hunter2") && broken.contains("line 1"),
        "{broken}"
    );
    let base = AIResponseCacheConfig::default()
        .merge(&json!({"redis_url": "redis://:p4ss/w?rd@h:6379/0"}))
        .unwrap();
    assert_eq!(
        base.redis_url.as_deref(),
        Some("redis://:p4ss/w?rd@h:6379/0")
    );
    for shown in [
        format!("{base:?}"),
        base.to_string(),
        serde_json::to_string(&base).unwrap(),
    ] {
        assert!(!shown.contains("p4ss"), "{shown}");
    }
    let merged = base.merge(&json!({"default_ttl": 60})).unwrap();
    assert_eq!(
        merged.redis_url, base.redis_url,
        "merging keeps the real URL"
    );
    let mapped = aicache::CacheParameterMapper::map(
        json!({"redis_password": "topsecret"}).as_object().unwrap(),
    );
    assert!(!format!("{:?}", mapped.validation).contains("topsecret"));
}

#[test]
fn environment_strings_nulls_and_presets_behave() {
    let vars = env(&[
        ("AICACHE_TENANT", "007"),
        ("AICACHE_HASH_ALGORITHM", "blake3"),
    ]);
    let config = AIResponseCacheConfig::load_with_env(None, vars).unwrap();
    assert_eq!(
        config.tenant.as_deref(),
        Some("007"),
        "a string setting keeps its leading zeros"
    );
    let unset = AIResponseCacheConfig::from_yaml("redis_url: ~\ntenant: null\n").unwrap();
    assert_eq!((unset.redis_url, unset.tenant), (None, None));
    let err = AIResponseCacheConfig::default()
        .merge(&json!({"extends": "production"}))
        .unwrap_err();
    assert!(err.to_string().contains("preset"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "bad-preset.yaml", "extends: nope\n");
    let err = AIResponseCacheConfig::from_file(&path)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("bad-preset.yaml") && err.contains("extends"),
        "{err}"
    );
    let unknown = AIResponseCacheConfig::load_with_env(None, env(&[("AICACHE_DEFUALT_TTL", "5")]))
        .unwrap_err();
    assert!(
        unknown.to_string().contains("defualt_ttl"),
        "a misspelt variable is an error: {unknown}"
    );
}

#[test]
fn urls_passwords_and_tls_are_checked() {
    let base = AIResponseCacheConfig::default();
    let check = |overrides: Value| base.merge(&overrides).unwrap().validate();
    assert!(
        !check(json!({"redis_url": "redis://h:abc"})).is_valid(),
        "an unparseable port"
    );
    assert!(
        check(json!({"redis_url": "redis://:p%40ss@h", "redis_auth": "p@ss"})).is_valid(),
        "decoded before comparing"
    );
    assert!(
        !check(json!({"redis_url": "redis+unix:///tmp/r.sock?pass=one", "redis_auth": "two"}))
            .is_valid()
    );
    assert_eq!(check(json!({"use_tls": true})).warnings[0].field, "use_tls");
    assert!(
        !check(json!({"key_prefix": "aicache"})).is_valid(),
        "would overlap the AI namespace"
    );
    assert!(
        !check(json!({"reconnect_min_delay_ms": 500, "reconnect_max_delay_ms": 100})).is_valid()
    );
}

#[tokio::test]
async fn the_generic_cache_keeps_out_of_the_ai_namespace() {
    let server = server();
    let config = AIResponseCacheConfig::default()
        .merge(&json!({"redis_url": server.url(), "tenant": "acme", "command_timeout_ms": 2000}))
        .unwrap();
    let ai = config.build_ai_cache::<Value>().await.unwrap();
    let generic = config.build_generic_cache().await.unwrap();
    assert_eq!(generic.config().key_prefix, "aicache:t:acme:kv");
    let key = ai.key(&AiRequest::new("qa", "kept")).unwrap();
    ai.put(&key, json!({"a": 1}), &RequestControls::default())
        .await
        .unwrap();
    generic
        .set(&aicache::CacheKey::new("k").unwrap(), "v".into(), None)
        .await
        .unwrap();
    assert_eq!(generic.clear().await.unwrap(), 1);
    assert!(
        ai.get(&key).await.unwrap().is_some(),
        "the generic clear() left the AI answers alone"
    );
}

#[test]
fn breaker_and_replay_settings_are_checked_and_reach_the_redis_tier() {
    let base = AIResponseCacheConfig::default();
    let check = |overrides: Value| base.merge(&overrides).unwrap().validate();
    for (field, value) in [
        ("breaker_failure_threshold", json!(0)),
        ("breaker_failure_threshold", json!(1001)),
        ("replay_queue_capacity", json!(10_000_001)),
        ("replay_queue_max_bytes", json!(1023)),
    ] {
        let result = check(json!({ field: value }));
        assert_eq!(result.errors.len(), 1, "{field} = {value}");
        assert_eq!(result.errors[0].field, field);
        assert!(result.errors[0].value.contains(&value.to_string()));
    }
    assert!(check(json!({"breaker_failure_threshold": 5, "replay_queue_capacity": 0})).is_valid());
    let vars = env(&[
        ("AICACHE_BREAKER_ENABLED", "false"),
        ("AICACHE_BREAKER_FAILURE_THRESHOLD", "7"),
        ("AICACHE_REPLAY_QUEUE_CAPACITY", "42"),
        ("AICACHE_REPLAY_QUEUE_MAX_BYTES", "65536"),
    ]);
    let redis = AIResponseCacheConfig::load_with_env(None, vars)
        .unwrap()
        .to_redis_cache_config()
        .unwrap();
    assert!(!redis.breaker_enabled);
    assert_eq!(redis.breaker_failure_threshold, 7);
    assert_eq!(redis.replay_queue_capacity, 42);
    assert_eq!(redis.replay_queue_max_bytes, 65536);
}

#[test]
fn serve_stale_settings_are_checked_and_reach_the_ai_cache() {
    let base = AIResponseCacheConfig::default();
    let check = |overrides: Value| base.merge(&overrides).unwrap().validate();
    for (overrides, field) in [
        (json!({"stale_after_ms": 500}), "stale_after_ms"),
        (
            json!({"stale_window": 60, "stale_after_ms": 0}),
            "stale_after_ms",
        ),
        (json!({"stale_window": 40_000_000}), "stale_window"),
    ] {
        let result = check(overrides.clone());
        assert_eq!(result.errors.len(), 1, "{overrides}");
        assert_eq!(result.errors[0].field, field, "{overrides}");
    }
    let vars = env(&[
        ("AICACHE_STALE_WINDOW", "3600"),
        ("AICACHE_STALE_AFTER_MS", "5000"),
    ]);
    let ai = AIResponseCacheConfig::load_with_env(None, vars)
        .unwrap()
        .to_ai_cache_config()
        .unwrap();
    assert_eq!(ai.stale_window, std::time::Duration::from_secs(3600));
    assert_eq!(ai.stale_after, Some(std::time::Duration::from_millis(5000)));
    // The AI layer's own configuration holds the same rule.
    let lone_after = aicache::AiCacheConfig::default()
        .with_serve_stale(
            std::time::Duration::ZERO,
            Some(std::time::Duration::from_secs(1)),
        )
        .validate();
    assert_eq!(lone_after.errors[0].field, "stale_after");
}

#[test]
fn timeouts_and_reconnect_delays_are_bounded_above() {
    // Issue 14, item 4: unbounded delays overflowed the breaker's arithmetic.
    let base = AIResponseCacheConfig::default();
    for (field, value) in [
        ("command_timeout_ms", json!(600_001)),
        ("connect_timeout_ms", json!(u64::MAX)),
        ("reconnect_max_delay_ms", json!(u64::MAX)),
    ] {
        let result = base.merge(&json!({ field: value })).unwrap().validate();
        assert_eq!(
            result.errors.len(),
            1,
            "{field} = {value}: {:?}",
            result.errors
        );
        assert_eq!(result.errors[0].field, field);
    }
    let redis = aicache::RedisCacheConfig::default()
        .with_reconnect_delays(
            std::time::Duration::from_millis(1),
            std::time::Duration::MAX,
        )
        .with_command_timeout(std::time::Duration::MAX);
    let fields: Vec<String> = redis
        .validate()
        .errors
        .into_iter()
        .map(|e| e.field)
        .collect();
    assert_eq!(fields, vec!["command_timeout", "reconnect_max_delay"]);
}

#[test]
fn a_merged_configuration_keeps_its_encryption_keys() {
    // Issue 14, item 4: the keys serialize as "***", and merge() did not restore them.
    let key = "ab".repeat(32);
    let config = AIResponseCacheConfig::default()
        .merge(&json!({"encryption_key": key, "encryption_previous_key": "cd".repeat(32)}))
        .unwrap();
    assert!(config.validate().is_valid(), "{:?}", config.validate());
    let merged = config.merge(&json!({"default_ttl": 600})).unwrap();
    assert!(merged.validate().is_valid(), "{:?}", merged.validate());
    assert_eq!(merged.encryption_key.as_ref().unwrap().expose(), key);
    assert_eq!(merged.default_ttl, 600);
}

#[tokio::test]
async fn prefixes_and_the_layout_upgrade_window_are_checked_and_reach_the_caches() {
    use std::time::{Duration, SystemTime};
    let base = AIResponseCacheConfig::default();
    let check = |overrides: Value| base.merge(&overrides).unwrap().validate();
    // Around or inside an AI namespace, in both directions.
    for prefix in [
        "aicache",
        "aicache:v1",
        "aicache:v1:x",
        "aicache:t",
        "aicache:t:acme:v1:x",
    ] {
        let report = check(json!({ "key_prefix": prefix }));
        assert_eq!(report.errors[0].field, "key_prefix", "{prefix}");
        assert!(report.errors[0].value.contains(prefix));
    }
    assert!(
        check(json!({"key_prefix": "aicache:t:acme", "tenant": "acme"})).errors[0].field
            == "key_prefix"
    );
    assert!(check(json!({"key_prefix": "billing:kv", "tenant": "acme"})).is_valid());
    assert!(check(json!({"key_prefix": "a~aux"})).errors[0].field == "key_prefix");

    let soon =
        humantime::format_rfc3339_seconds(SystemTime::now() + Duration::from_secs(7 * 86_400))
            .to_string();
    for bad in [
        json!({"layout_upgrade_until": soon}),
        json!({"layout_upgrade_until": "next week", "tenant": "acme"}),
        json!({"layout_upgrade_until": "2099-01-01T00:00:00Z", "tenant": "acme"}),
    ] {
        let errors = base.merge(&bad).unwrap().validate().errors;
        assert_eq!(errors[0].field, "layout_upgrade_until", "{bad}");
    }
    let server = server();
    let config = base
        .merge(&json!({"redis_url": server.url(), "tenant": "acme", "layout_upgrade_until": soon}))
        .unwrap();
    assert!(config.validate().is_valid());
    let ai = config.build_ai_cache::<Value>().await.unwrap();
    let upgrade = ai
        .layout_upgrade_stats()
        .expect("the old location is attached");
    assert_eq!(upgrade.namespace, "aicache:v1:t:acme");
    let plain = base
        .merge(&json!({"redis_url": server.url(), "tenant": "acme"}))
        .unwrap()
        .build_ai_cache::<Value>()
        .await
        .unwrap();
    assert!(plain.layout_upgrade_stats().is_none());
}
