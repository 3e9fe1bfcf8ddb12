//! Namespaces cannot overlap (DESIGN §8): on one real redis-server, every removal call of every
//! cache (AI without a tenant, AI tenants whose names are prefixes of one another or equal to
//! layout segments, generic caches with nested-looking prefixes) leaves every other cache's
//! entries and every auxiliary key in place; overlapping prefixes are refused both ways.

use std::time::{Duration, SystemTime};

use aicache::{
    AIResponseCache, AiCacheConfig, AiRequest, CacheInterface, CacheKey, ErrorKind,
    GenericRedisCache, KeyPattern, Namespace, RequestControls, RequestKey, Ttl,
};
use cache_testkit::RedisServer;
use redis::AsyncCommands;
use serde_json::{Value, json};

use crate::support::{holds_value, raw, server, test_config};

const AI_OPERATIONS: &[&str] = &["summarize", "t", "v1", "kv", "aux", "qa"];
const GENERIC_KEYS: &[&str] = &["k1", "x:k2", "t:acme:qa:z", "kv:1", "~aux:kind:x"];
const AUX_KEYS: &[&str] = &[
    "aicache:v1~aux:tomb:summarize:1",
    "aicache:t:acme:v1~aux:lease:x",
    "app~aux:stats:host",
];

struct Ai {
    cache: AIResponseCache<Value>,
    keys: Vec<RequestKey>,
}

struct Generic {
    cache: GenericRedisCache,
    keys: Vec<CacheKey>,
}

async fn ai_cache(server: &RedisServer, tenant: Option<&str>) -> Ai {
    let mut config = AiCacheConfig::default();
    if let Some(tenant) = tenant {
        config = config.with_tenant(tenant);
    }
    let cache = aicache::connect_ai_cache(config, Some(&test_config(&server.url())), None)
        .await
        .unwrap();
    let keys = AI_OPERATIONS
        .iter()
        .map(|op| cache.key(&AiRequest::new(op, "one shared text")).unwrap())
        .collect();
    Ai { cache, keys }
}

async fn generic_cache(server: &RedisServer, prefix: &str) -> Generic {
    let cache = GenericRedisCache::connect(test_config(&server.url()).with_key_prefix(prefix))
        .await
        .unwrap();
    let keys = GENERIC_KEYS
        .iter()
        .map(|k| CacheKey::new(k).unwrap())
        .collect();
    Generic { cache, keys }
}

struct Fleet {
    ai: Vec<(String, Ai)>,
    generic: Vec<(String, Generic)>,
}

impl Fleet {
    async fn seed(&self, conn: &mut redis::aio::MultiplexedConnection) {
        for (_, ai) in &self.ai {
            for key in &ai.keys {
                assert!(
                    ai.cache
                        .put(
                            key,
                            json!({"for": key.operation()}),
                            &RequestControls::default()
                        )
                        .await
                        .unwrap()
                );
            }
        }
        for (_, generic) in &self.generic {
            for key in &generic.keys {
                generic
                    .cache
                    .set(
                        key,
                        aicache::Bytes::from_static(b"v"),
                        Some(Ttl::from_secs(600).unwrap()),
                    )
                    .await
                    .unwrap();
            }
        }
        for aux in AUX_KEYS {
            let _: () = conn.set_ex(*aux, "aux", 600).await.unwrap();
        }
    }

    /// The Redis keys of every cache but `except`.
    fn keys_of_others(&self, except: &str) -> Vec<String> {
        let mut keys: Vec<String> = AUX_KEYS.iter().map(ToString::to_string).collect();
        for (name, ai) in self.ai.iter().filter(|(name, _)| name != except) {
            let _ = name;
            keys.extend(ai.keys.iter().map(|key| ai.cache.full_key(key)));
        }
        for (_, generic) in self.generic.iter().filter(|(name, _)| name != except) {
            keys.extend(generic.keys.iter().map(|key| generic.cache.redis_key(key)));
        }
        keys
    }
}

async fn missing(conn: &mut redis::aio::MultiplexedConnection, keys: &[String]) -> Vec<String> {
    let mut gone = Vec::new();
    for key in keys {
        let exists = holds_value(conn, key).await;
        if !exists {
            gone.push(key.clone());
        }
    }
    gone
}

#[tokio::test]
async fn no_removal_of_one_cache_reaches_another_namespace() {
    let server = server();
    let mut conn = raw(&server).await;
    let mut fleet = Fleet {
        ai: Vec::new(),
        generic: Vec::new(),
    };
    for tenant in [None, Some("acme"), Some("acme-eu"), Some("t"), Some("v1")] {
        let name = format!("ai:{}", tenant.unwrap_or("-"));
        fleet.ai.push((name, ai_cache(&server, tenant).await));
    }
    for prefix in ["app", "app-x", "apps", "aicache:kv", "aicache:t:acme:kv"] {
        fleet.generic.push((
            format!("generic:{prefix}"),
            generic_cache(&server, prefix).await,
        ));
    }
    let mut checked = 0;
    for index in 0..fleet.ai.len() {
        for removal in 0..AI_OPERATIONS.len() + 4 {
            fleet.seed(&mut conn).await;
            let (name, ai) = &fleet.ai[index];
            let own: Vec<String> = ai.keys.iter().map(|k| ai.cache.full_key(k)).collect();
            let what = match removal {
                0 => {
                    assert!(ai.cache.delete(&ai.keys[1]).await.unwrap());
                    "delete".to_string()
                }
                1 => {
                    assert!(ai.cache.invalidate_pattern("*").await.unwrap() >= 6);
                    "invalidate_pattern(*)".to_string()
                }
                2 => {
                    ai.cache.invalidate_pattern("t:*").await.unwrap();
                    "invalidate_pattern(t:*)".to_string()
                }
                3 => {
                    assert_eq!(ai.cache.invalidate_all().await.unwrap(), 6);
                    assert_eq!(missing(&mut conn, &own).await.len(), own.len());
                    "invalidate_all".to_string()
                }
                n => {
                    let op = AI_OPERATIONS[n - 4];
                    assert_eq!(
                        ai.cache.invalidate_by_operation(op).await.unwrap(),
                        1,
                        "{op}"
                    );
                    format!("invalidate_by_operation({op})")
                }
            };
            let gone = missing(&mut conn, &fleet.keys_of_others(name)).await;
            assert!(gone.is_empty(), "{name} {what} removed {gone:?}");
            checked += 1;
        }
    }
    for index in 0..fleet.generic.len() {
        for removal in 0..4 {
            fleet.seed(&mut conn).await;
            let (name, generic) = &fleet.generic[index];
            let own: Vec<String> = generic
                .keys
                .iter()
                .map(|k| generic.cache.redis_key(k))
                .collect();
            match removal {
                0 => assert!(generic.cache.delete(&generic.keys[1]).await.unwrap()),
                1 => {
                    generic
                        .cache
                        .delete_pattern(&KeyPattern::new("*").unwrap())
                        .await
                        .unwrap();
                    assert_eq!(missing(&mut conn, &own).await.len(), own.len());
                }
                2 => {
                    generic
                        .cache
                        .delete_pattern(&KeyPattern::new("t:*").unwrap())
                        .await
                        .unwrap();
                }
                _ => {
                    assert_eq!(generic.cache.clear().await.unwrap(), 5);
                }
            }
            let gone = missing(&mut conn, &fleet.keys_of_others(name)).await;
            assert!(gone.is_empty(), "{name} removal {removal} removed {gone:?}");
            checked += 1;
        }
    }
    assert_eq!(checked, 5 * 10 + 5 * 4);
}

#[tokio::test]
async fn overlapping_prefixes_are_refused_both_ways_naming_both() {
    let server = server();
    let outer = GenericRedisCache::connect(test_config(&server.url()).with_key_prefix("nsapp"))
        .await
        .unwrap();
    let err = GenericRedisCache::connect(test_config(&server.url()).with_key_prefix("nsapp:x"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert_eq!(err.context_value("namespace"), Some("nsapp:x"));
    assert_eq!(err.context_value("in_use"), Some("nsapp"));
    drop(outer);

    let inner = GenericRedisCache::connect(test_config(&server.url()).with_key_prefix("nsbox:x"))
        .await
        .unwrap();
    let err = GenericRedisCache::connect(test_config(&server.url()).with_key_prefix("nsbox"))
        .await
        .unwrap_err();
    assert_eq!(err.context_value("namespace"), Some("nsbox"));
    assert_eq!(err.context_value("in_use"), Some("nsbox:x"));
    // A second handle on the same namespace is the same cache.
    let same = GenericRedisCache::connect(test_config(&server.url()).with_key_prefix("nsbox:x"))
        .await
        .unwrap();
    drop((inner, same));

    for reserved in [
        "aicache",
        "aicache:v1",
        "aicache:v1:mine",
        "aicache:t:acme",
        "aicache:t",
    ] {
        let err = GenericRedisCache::connect(test_config(&server.url()).with_key_prefix(reserved))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config, "{reserved}");
        assert_eq!(err.context_value("value"), Some(reserved));
        assert!(err.context_value("overlaps").is_some(), "{reserved}");
    }
    assert!(Namespace::generic("aicache:kv").is_ok());
}

/// What aicache 0.1 did for a tenant: the same frame, under `aicache:v1:t:{tenant}`, bound (when
/// encrypted) to that key.
async fn old_instance_put(
    server: &RedisServer,
    config: &AiCacheConfig,
    key: &RequestKey,
    value: &Value,
) -> String {
    let tenant = config.tenant.as_deref().unwrap();
    let old = format!("aicache:v1:t:{tenant}");
    let store = aicache::RedisStore::connect(
        &test_config(&server.url())
            .with_l1(None)
            .with_key_prefix(&old),
        None,
    )
    .await
    .unwrap();
    let cipher: Option<std::sync::Arc<dyn aicache::Cipher>> = config
        .encryption
        .as_ref()
        .map(|e| std::sync::Arc::new(e.build().unwrap()) as _);
    let tier = aicache::SharedTier::new(
        std::sync::Arc::new(store),
        config.frames.codec(cipher),
        None,
    );
    let now = aicache::unix_millis();
    let meta = aicache::frame::FrameMeta::new(now, now + 600_000).with_operation(key.operation());
    let payload = aicache::frame::encode_msgpack(value).unwrap();
    tier.write(
        key.cache_key(),
        &meta,
        aicache::frame::Codec::MessagePack,
        payload.clone().into(),
        Ttl::from_secs(600).unwrap(),
    )
    .await
    .unwrap();
    format!("{old}:{}", key.cache_key())
}

fn upgrading(tenant: &str, open: bool) -> AiCacheConfig {
    let until = if open {
        SystemTime::now() + Duration::from_secs(3600)
    } else {
        SystemTime::now() - Duration::from_secs(1)
    };
    AiCacheConfig::default()
        .with_tenant(tenant)
        .with_l1(None)
        .with_layout_upgrade_until(Some(until))
}

async fn new_instance(server: &RedisServer, config: AiCacheConfig) -> AIResponseCache<Value> {
    aicache::connect_ai_cache(config, Some(&test_config(&server.url())), None)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_new_reader_sees_an_old_writer_during_the_window_and_removes_both_copies() {
    let server = server();
    let mut conn = raw(&server).await;
    let config = upgrading("mixed", true);
    let reader = new_instance(&server, config.clone()).await;
    let key = reader
        .key(&AiRequest::new("qa", "asked before the upgrade"))
        .unwrap();
    let old_key = old_instance_put(&server, &config, &key, &json!("old answer")).await;

    let hit = reader
        .get(&key)
        .await
        .unwrap()
        .expect("read from the old location");
    assert_eq!(*hit.value, json!("old answer"));
    let other = reader.key(&AiRequest::new("qa", "never asked")).unwrap();
    assert!(reader.get(&other).await.unwrap().is_none());
    let stats = reader.layout_upgrade_stats().unwrap();
    assert_eq!((stats.old_layout_reads, stats.old_layout_hits), (2, 1));
    assert_eq!(stats.namespace, "aicache:v1:t:mixed");
    let copied: bool = holds_value(&mut conn, reader.full_key(&key)).await;
    assert!(
        !copied,
        "a read does not copy: an old instance's removal still reaches it"
    );

    // A removal on the new side removes the old-layout copy too, and nothing else.
    let tenant_less = new_instance(&server, AiCacheConfig::default()).await;
    let elsewhere = tenant_less.key(&AiRequest::new("qa", "x")).unwrap();
    tenant_less
        .put(&elsewhere, json!(1), &RequestControls::default())
        .await
        .unwrap();
    assert!(reader.delete(&key).await.unwrap());
    assert!(!holds_value(&mut conn, &old_key).await);
    assert!(reader.get(&key).await.unwrap().is_none());
    let old_key = old_instance_put(&server, &config, &key, &json!("again")).await;
    assert_eq!(reader.invalidate_by_operation("qa").await.unwrap(), 1);
    assert!(!holds_value(&mut conn, &old_key).await);
    assert!(tenant_less.get(&elsewhere).await.unwrap().is_some());

    // The tenant-less cache's removals never reach the old layout's tenant keys inside its
    // namespace, even with an operation named like the layout's segment.
    let old_key = old_instance_put(&server, &config, &key, &json!("kept")).await;
    tenant_less.invalidate_by_operation("t").await.unwrap();
    tenant_less.invalidate_all().await.unwrap();
    assert!(holds_value(&mut conn, &old_key).await);
    assert_eq!(
        *reader.get(&key).await.unwrap().unwrap().value,
        json!("kept")
    );
}

#[tokio::test]
async fn a_closed_window_costs_no_read_of_the_old_location() {
    let server = server();
    let config = upgrading("closed", false);
    let reader = new_instance(&server, config.clone()).await;
    let key = reader.key(&AiRequest::new("qa", "old")).unwrap();
    let old_key = old_instance_put(&server, &config, &key, &json!("old")).await;
    assert!(reader.get(&key).await.unwrap().is_none());
    assert_eq!(reader.layout_upgrade_stats().unwrap().old_layout_reads, 0);
    // Removals still cover the old location while the setting is there.
    assert!(reader.delete(&key).await.unwrap());
    assert!(!holds_value(&mut raw(&server).await, &old_key).await);
}

#[tokio::test]
async fn conversion_reencrypts_each_entry_under_its_new_key() {
    use aicache::{AeadAlgorithm, EncryptionConfig, Secret};
    let server = server();
    let mut conn = raw(&server).await;
    let encryption = EncryptionConfig::new(
        AeadAlgorithm::ChaCha20Poly1305,
        1,
        Secret::new(hex::encode([7u8; 32])),
    );
    let config = upgrading("sealed", false).with_encryption(Some(encryption));
    let cache = new_instance(&server, config.clone()).await;
    let mut keys = Vec::new();
    for i in 0..25 {
        let key = cache
            .key(&AiRequest::new("summarize", &format!("text {i}")))
            .unwrap();
        let old_key = old_instance_put(&server, &config, &key, &json!({"n": i})).await;
        keys.push((key, old_key));
    }
    // One entry the new location already holds (written by an upgraded instance).
    cache
        .put(&keys[0].0, json!("newer"), &RequestControls::default())
        .await
        .unwrap();
    let old_bytes: Vec<u8> = conn.get(&keys[1].1).await.unwrap();

    let report = cache.convert_layout().await.unwrap();
    assert_eq!(
        (report.moved, report.already_moved, report.raced),
        (24, 1, 0)
    );
    assert_eq!((report.deferred, report.unreadable), (0, 0));
    for (i, (key, old_key)) in keys.iter().enumerate() {
        assert!(!holds_value(&mut conn, old_key).await);
        let expected = if i == 0 {
            json!("newer")
        } else {
            json!({"n": i})
        };
        assert_eq!(*cache.get(key).await.unwrap().unwrap().value, expected);
        let ttl: i64 = conn.pttl(cache.full_key(key)).await.unwrap();
        assert!(i == 0 || (ttl > 0 && ttl <= 600_000), "TTL kept: {ttl}");
    }
    let new_bytes: Vec<u8> = conn.get(cache.full_key(&keys[1].0)).await.unwrap();
    assert_ne!(
        new_bytes, old_bytes,
        "bound to its new key, so encrypted again"
    );
    // Copied as is, the old ciphertext would not authenticate under the new key.
    let _: () = conn
        .set(cache.full_key(&keys[2].0), old_bytes)
        .await
        .unwrap();
    assert!(cache.get(&keys[2].0).await.unwrap().is_none());
    assert_eq!(
        cache.convert_layout().await.unwrap(),
        aicache::LayoutConversion::default()
    );
}

#[tokio::test]
async fn convert_layout_needs_an_old_location() {
    let server = server();
    let cache = new_instance(&server, AiCacheConfig::default().with_tenant("plain")).await;
    let err = cache.convert_layout().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    let err = AIResponseCache::<Value>::builder(AiCacheConfig::default())
        .store(std::sync::Arc::new(aicache::MemoryFrameStore::new(
            "aicache:v1",
        )))
        .pre_isolation_store(std::sync::Arc::new(aicache::MemoryFrameStore::new(
            "aicache:v1:t:x",
        )))
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    let err = AiCacheConfig::default()
        .with_layout_upgrade_until(Some(SystemTime::now() + Duration::from_secs(60)))
        .validate();
    assert_eq!(err.errors[0].field, "layout_upgrade_until");
    let too_far = upgrading("far", true)
        .with_layout_upgrade_until(Some(SystemTime::now() + Duration::from_secs(31 * 86_400)));
    assert_eq!(too_far.validate().errors[0].field, "layout_upgrade_until");
}
