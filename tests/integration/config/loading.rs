//! Files, environment, presets and the formats reaching the cache.

use super::*;

#[tokio::test]
async fn a_yaml_file_and_an_environment_override_reach_the_cache() {
    let server = server();
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        &dir,
        "cache.yaml",
        "extends: testing\ntenant: cfgtest\ndefault_ttl: 900\ncompression_threshold: 2000\n\
         memory_cache_size: 3\ntext_size_tiers: {small: 10, medium: 20, large: 30}\n\
         operation_ttls: {qa: 60}\n",
    );
    let vars = env(&[
        ("AICACHE_REDIS_URL", &server.url()),
        ("AICACHE_OPERATION_TTLS__QA", "120"),
        ("AICACHE_COMMAND_TIMEOUT_MS", "2000"),
        ("UNRELATED", "x"),
    ]);
    let config = AIResponseCacheConfig::load_with_env(Some(&file), vars).unwrap();
    assert_eq!(config.extends.as_deref(), Some("testing"));
    assert_eq!(
        config.operation_ttls["qa"], 120,
        "the environment wins over the file"
    );
    assert_eq!(
        config.operation_ttls["summarize"], 300,
        "the preset's value survives the merge"
    );
    let cache = config.build_ai_cache::<Value>().await.unwrap();
    let mut conn = raw(&server).await;

    // TTL seen in Redis, and the key prefix (tenant).
    let qa = cache
        .key(&AiRequest::new("qa", "a short question text"))
        .unwrap();
    cache
        .put(&qa, json!({"a": 1}), &RequestControls::default())
        .await
        .unwrap();
    let full = cache.full_key(&qa);
    assert!(full.starts_with("aicache:t:cfgtest:v1:qa:"), "{full}");
    let pttl: i64 = conn.pttl(&full).await.unwrap();
    assert!(
        (110_000..=120_000).contains(&pttl),
        "qa TTL from the environment: {pttl}"
    );
    let other = cache
        .key(&AiRequest::new("translate", "something"))
        .unwrap();
    cache
        .put(&other, json!({"t": 1}), &RequestControls::default())
        .await
        .unwrap();
    let pttl: i64 = conn.pttl(cache.full_key(&other)).await.unwrap();
    assert!(
        (890_000..=900_000).contains(&pttl),
        "default_ttl from the file: {pttl}"
    );

    // Compression on or off by size (threshold 2000 from the file).
    for (name, size, compressed) in [("below", 1500usize, false), ("above", 5000, true)] {
        let k = cache.key(&AiRequest::new("summarize", name)).unwrap();
        let answer = json!({"text": "repeat ".repeat(size / 7)});
        cache
            .put(&k, answer, &RequestControls::default())
            .await
            .unwrap();
        let stored: Vec<u8> = conn.get(cache.full_key(&k)).await.unwrap();
        assert_eq!(
            stored.len() < size,
            compressed,
            "{name}: stored {} bytes",
            stored.len()
        );
    }

    // Tier thresholds in metadata (10/20/30 from the file).
    let k = cache
        .key(&AiRequest::new("sentiment", "fifteen chars!!"))
        .unwrap();
    assert_eq!(k.tier(), TextTier::Medium);
    cache
        .put(&k, json!({"s": 1}), &RequestControls::default())
        .await
        .unwrap();
    let hit = cache.get(&k).await.unwrap().unwrap();
    assert_eq!(hit.metadata.text_tier, Some(TextTier::Medium));

    // The L1 size (3 from the file).
    for i in 0..20 {
        let k = cache
            .key(&AiRequest::new("sentiment", &format!("t{i}")))
            .unwrap();
        cache
            .put(&k, json!({"s": i}), &RequestControls::default())
            .await
            .unwrap();
    }
    let l1 = cache.stats().l1.unwrap();
    assert!(l1.entries <= 3 && l1.max_entries == 3, "{l1:?}");
}

#[tokio::test]
async fn the_password_from_the_environment_reaches_redis_and_stays_a_string() {
    let server = RedisServer::start(ServerConfig::default().with_password("0123"));
    let vars = env(&[
        ("REDIS_URL", &server.url_without_auth()),
        ("AICACHE_REDIS_AUTH", "0123"),
    ]);
    let config = AIResponseCacheConfig::load_with_env(None, vars).unwrap();
    assert_eq!(config.redis_auth.as_ref().unwrap().expose(), "0123");
    for shown in [
        format!("{config:?}"),
        config.to_string(),
        serde_json::to_string(&config).unwrap(),
    ] {
        assert!(!shown.contains("0123"), "{shown}");
    }
    let cache = config.build_generic_cache().await.unwrap();
    assert!(
        cache.is_l2_available(),
        "AUTH with the configured password worked"
    );
    cache
        .set(&aicache::CacheKey::new("k").unwrap(), "v".into(), None)
        .await
        .unwrap();

    let wrong = env(&[
        ("REDIS_URL", &server.url_without_auth()),
        // All digits, as the right one, but long enough never to be part of a port in the
        // error's context (a 4-digit one can match the server's port there).
        ("AICACHE_REDIS_AUTH", "98765432109876"),
    ]);
    let err = AIResponseCacheConfig::load_with_env(None, wrong)
        .unwrap()
        .build_generic_cache()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Auth);
    assert!(!format!("{err} {err:?}").contains("98765432109876"));
}

#[test]
fn aicache_redis_url_wins_over_redis_url() {
    let both = env(&[
        ("REDIS_URL", "redis://fallback:1"),
        ("AICACHE_REDIS_URL", "redis://primary:2"),
    ]);
    let config = AIResponseCacheConfig::load_with_env(None, both).unwrap();
    assert_eq!(config.redis_url.as_deref(), Some("redis://primary:2"));
    let fallback = env(&[("REDIS_URL", "redis://fallback:1")]);
    let config = AIResponseCacheConfig::load_with_env(None, fallback).unwrap();
    assert_eq!(config.redis_url.as_deref(), Some("redis://fallback:1"));
    let none = AIResponseCacheConfig::load_with_env(None, env(&[])).unwrap();
    assert_eq!(none.redis_url, None, "no URL: memory-only");
}

#[test]
fn every_format_and_factory_agrees() {
    let toml =
        AIResponseCacheConfig::from_toml("default_ttl = 60\n[operation_ttls]\nqa = 5\n").unwrap();
    let yaml =
        AIResponseCacheConfig::from_yaml("default_ttl: 60\noperation_ttls:\n  qa: 5\n").unwrap();
    let json =
        AIResponseCacheConfig::from_json(r#"{"default_ttl": 60, "operation_ttls": {"qa": 5}}"#)
            .unwrap();
    let map = json!({"default_ttl": 60, "operation_ttls": {"qa": 5}});
    let dict = AIResponseCacheConfig::from_dict(map.as_object().unwrap()).unwrap();
    assert_eq!(toml, yaml);
    assert_eq!(yaml, json);
    assert_eq!(json, dict);
    assert_eq!(
        dict.operation_ttls["summarize"], 7200,
        "nested maps merge with the defaults"
    );
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in [
        ("c.toml", "default_ttl = 60\n[operation_ttls]\nqa = 5\n"),
        ("c.yml", "default_ttl: 60\noperation_ttls: {qa: 5}\n"),
        (
            "c.json",
            r#"{"default_ttl": 60, "operation_ttls": {"qa": 5}}"#,
        ),
    ] {
        assert_eq!(
            AIResponseCacheConfig::from_file(write(&dir, name, text)).unwrap(),
            toml,
            "{name}"
        );
    }
}

#[test]
fn bad_files_name_the_file_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("type.yaml", "default_ttl: abc\n", "default_ttl"),
        ("typo.toml", "defualt_ttl = 60\n", "defualt_ttl"),
        ("syntax.toml", "default_ttl = = 60\n", "syntax.toml"),
        (
            "nested.json",
            r#"{"text_size_tiers": {"small": "x"}}"#,
            "text_size_tiers.small",
        ),
        ("preset.yaml", "extends: nope\n", "extends"),
    ];
    for (name, text, needle) in cases {
        let path = write(&dir, name, text);
        let err = AIResponseCacheConfig::from_file(&path).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config, "{name}");
        let message = err.to_string();
        assert!(message.contains(needle), "{name}: {message}");
        if needle != "extends" {
            assert!(
                message.contains(name),
                "{name}: the file is named: {message}"
            );
        }
    }
    let missing = AIResponseCacheConfig::from_file(dir.path().join("absent.toml")).unwrap_err();
    assert!(missing.to_string().contains("absent.toml"));
    let unknown = AIResponseCacheConfig::from_file(write(&dir, "c.ini", "x")).unwrap_err();
    assert!(unknown.to_string().contains(".toml"));
    let secret =
        AIResponseCacheConfig::from_yaml("redis_url: [\"redis://:hunter2@h\"]\n").unwrap_err();
    assert!(!secret.to_string().contains("hunter2"), "{secret}");
}

#[test]
fn presets_load_validate_and_are_overridden() {
    for preset in aicache::PRESETS {
        let config = AIResponseCacheConfig::preset(preset.name).unwrap();
        assert_eq!(config.extends.as_deref(), Some(preset.name));
        let result = config.validate();
        if preset.name == "production" {
            assert_eq!(
                result.errors[0].field, "redis_url",
                "production needs Redis"
            );
            let with_url = config
                .merge(&json!({"redis_url": "redis://h:6379"}))
                .unwrap();
            let fields: Vec<String> = with_url
                .validate()
                .errors
                .into_iter()
                .map(|e| e.field)
                .collect();
            assert_eq!(
                fields,
                vec!["redis_auth", "use_tls"],
                "production is fail-secure: AUTH and TLS"
            );
            let secured = with_url
                .merge(&json!({"redis_url": "rediss://h:6379", "redis_auth": "pw"}))
                .unwrap();
            assert!(secured.validate().is_valid(), "{:?}", secured.validate());
            let unverified = secured
                .merge(&json!({"tls_verify_certificates": false}))
                .unwrap()
                .validate();
            assert_eq!(unverified.errors[0].field, "tls_verify_certificates");
            let overridden = with_url
                .merge(&json!({"allow_insecure_production": true}))
                .unwrap()
                .validate();
            assert!(overridden.is_valid(), "{overridden:?}");
            assert_eq!(overridden.warnings.len(), 2, "still said, as warnings");
            assert_eq!(with_url.ttl_jitter, 0.1);
        } else {
            assert!(result.is_valid(), "{}: {:?}", preset.name, result);
        }
    }
    assert_eq!(
        AIResponseCacheConfig::preset("testing")
            .unwrap()
            .operation_ttls["sentiment"],
        300
    );
    assert!(AIResponseCacheConfig::preset("nope").is_err());
}

#[test]
fn validation_catches_values_and_inconsistencies() {
    let base = AIResponseCacheConfig::default();
    let cases = [
        (json!({"text_hash_threshold": 0}), "text_hash_threshold"),
        (
            json!({"text_size_tiers": {"small": 500, "medium": 100, "large": 1000}}),
            "text_size_tiers",
        ),
        (json!({"operation_ttls": {"qa": 0}}), "operation_ttls.qa"),
        (json!({"redis_url": "http://h"}), "redis_url"),
        (json!({"default_ttl": 0}), "default_ttl"),
        (json!({"compression_level": 6}), "compression_level"),
        (json!({"memory_cache_size": 0}), "memory_cache_size"),
        (
            json!({"redis_url": "redis://h", "use_tls": true, "tls_ca_file": "/nonexistent"}),
            "tls_ca_file",
        ),
        (
            json!({"redis_url": "redis://:a@h", "redis_auth": "b"}),
            "redis_auth",
        ),
        (json!({"enable_l1_cache": false}), "enable_l1_cache"),
        (json!({"hash_algorithm": "md5"}), "hash_algorithm"),
        (json!({"tenant": "a:b"}), "tenant"),
    ];
    for (overrides, field) in cases {
        let config = base.merge(&overrides).unwrap();
        let result = config.validate();
        assert!(
            result.errors.iter().any(|e| e.field == field),
            "{overrides}: {result:?}"
        );
        let text = result.into_result().unwrap_err().to_string();
        assert!(text.contains("allowed"), "{text}");
        assert!(
            !text.contains(":a@") && !text.contains("\"b\""),
            "secrets stay hidden: {text}"
        );
    }
    let warn = base
        .merge(&json!({"redis_url": "redis://h", "l1_max_ttl": 7200}))
        .unwrap();
    assert!(warn.validate().is_valid());
    assert_eq!(warn.validate().warnings[0].field, "l1_max_ttl");
}

#[test]
fn the_benchmark_librarys_variables_are_not_cache_settings() {
    let vars = env(&[
        ("AICACHE_BENCH_ITERATIONS", "32"),
        ("AICACHE_BENCH_PRESET", "ci"),
        ("AICACHE_MEMORY_CACHE_SIZE", "77"),
    ]);
    let config = AIResponseCacheConfig::load_with_env(None, vars).unwrap();
    assert_eq!(config.memory_cache_size, 77);
    // Any other unknown AICACHE_ variable is still refused, naming it.
    let error = AIResponseCacheConfig::load_with_env(None, env(&[("AICACHE_NOT_A_SETTING", "1")]))
        .unwrap_err();
    assert!(error.to_string().contains("not_a_setting"), "{error}");
}
