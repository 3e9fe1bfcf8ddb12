//! Clusters with access control. One whose nodes require a login, with the minimal cache user of
//! `docs/security.md` as the only one the store has: every operation works as that user on every
//! primary, redirects included (`ASK` needs `ASKING`), and a wrong password is a refusal, not an
//! outage. One that speaks TLS only: the same, and an untrusted certificate is a TLS error.

use aicache::{
    Bytes, CacheInterface, CacheKey, ErrorKind, GenericRedisCache, KeyPattern, L2Health,
    RedisCacheConfig, SecurityConfig, TlsConfig,
};
use cache_testkit::{AclUser, RedisCluster, TestCertificates};

const USER: &str = "cache";
const PASSWORD: &str = "cache-user-password-31337";
const PREFIX: &str = "aclcluster";

fn config_as(cluster: &RedisCluster, password: &str, prefix: &str) -> RedisCacheConfig {
    let mut config = crate::support::test_config("redis://unused")
        .with_key_prefix(prefix)
        .with_redis_cluster_urls(cluster.urls_for_user(USER, password))
        .with_l1(None);
    config.redis_url = None;
    config
}

fn key(name: &str) -> CacheKey {
    CacheKey::new(name).unwrap()
}

/// Every store operation on `cluster` through `cache` (the test's login or TLS settings): batches,
/// a delete, a pattern delete, health and memory of every primary, and a slot moving while the
/// store runs (`ASK`, then `MOVED`, followed on connections the same settings build).
async fn runs_every_operation(cluster: &RedisCluster, cache: &GenericRedisCache) {
    assert!(cache.is_l2_available());
    let entries: Vec<(CacheKey, Bytes)> = (0..60)
        .map(|i| (key(&format!("k{i}")), Bytes::from(format!("v{i}"))))
        .collect();
    cache.set_many(&entries, None).await.unwrap();
    cache.set(&key("single"), "one".into(), None).await.unwrap();
    let names: Vec<CacheKey> = entries.iter().map(|(k, _)| k.clone()).collect();
    let read = cache.get_many(&names).await.unwrap();
    assert!(
        read.iter()
            .zip(&entries)
            .all(|(got, (_, v))| got.as_ref() == Some(v))
    );
    assert!(cache.delete(&key("single")).await.unwrap());
    assert_eq!(cache.get(&key("single")).await.unwrap(), None);
    let removed = cache
        .delete_pattern(&KeyPattern::new("k1*").unwrap())
        .await
        .unwrap();
    assert_eq!(removed, 11, "k1 and k10..k19");
    assert_eq!(cache.get(&key("k15")).await.unwrap(), None);
    assert_eq!(
        cache.get(&key("k2")).await.unwrap().as_deref(),
        Some(&b"v2"[..])
    );

    let health = cache.health().await;
    assert_eq!(health.nodes.len(), 3, "{health:?}");
    assert!(
        health
            .nodes
            .iter()
            .all(|n| matches!(n.l2, L2Health::Connected { .. })),
        "{health:?}"
    );
    assert!(cache.redis_memory().await.unwrap().is_some());

    let moving = key("k7");
    let name = cache.redis_key(&moving);
    let (slot, from, to) = cluster.slot_move_for(&name);
    tokio::task::block_in_place(|| {
        cluster.begin_slot_move(slot, from, to);
        cluster.migrate_slot_keys(slot, from, to);
    });
    assert_eq!(
        cache.get(&moving).await.unwrap().as_deref(),
        Some(&b"v7"[..])
    );
    tokio::task::block_in_place(|| cluster.finish_slot_move(slot, from, to));
    cache.set(&moving, "moved".into(), None).await.unwrap();
    assert_eq!(
        cache.get(&moving).await.unwrap().as_deref(),
        Some(&b"moved"[..])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_cache_user_runs_every_operation_on_a_cluster() {
    let cluster = RedisCluster::start_with_user(AclUser::cache(USER, PASSWORD, PREFIX));
    let cache = GenericRedisCache::connect(config_as(&cluster, PASSWORD, PREFIX))
        .await
        .unwrap();
    runs_every_operation(&cluster, &cache).await;

    // Outside its prefix, the user may not write: a refusal, not a miss.
    let outside = GenericRedisCache::connect(config_as(&cluster, PASSWORD, "elsewhere"))
        .await
        .unwrap();
    let err = outside.set(&key("a"), "v".into(), None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Auth, "{err}");

    // A wrong password fails the connection, and is never echoed.
    let err = GenericRedisCache::connect(config_as(&cluster, "wrong-password-4242", PREFIX))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Auth, "{err}");
    assert!(!err.to_string().contains("wrong-password-4242"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_cluster_serves_through_the_one_connection_factory() {
    // Clients, replicas and the cluster bus speak TLS only. Every connection of the store (the
    // seeds', each primary's own, walks, removals, redirect targets) comes from one factory with
    // the cache's TLS settings.
    let certs = TestCertificates::generate();
    let cluster = RedisCluster::start_with_tls(certs.server_tls(&certs.server, false));
    assert!(cluster.urls().iter().all(|u| u.starts_with("rediss://")));
    let with_tls = |tls: TlsConfig| {
        let mut config = crate::support::test_config("redis://unused")
            .with_key_prefix("tlscluster")
            .with_redis_cluster_urls(cluster.urls())
            .with_security(SecurityConfig::default().with_tls(tls))
            .with_l1(None);
        config.redis_url = None;
        config
    };
    let trusted = TlsConfig::default().with_ca_file(&certs.ca_file);
    let cache = GenericRedisCache::connect(with_tls(trusted)).await.unwrap();
    runs_every_operation(&cluster, &cache).await;

    // Another CA: the certificate is not trusted, a TLS error rather than an outage.
    let untrusted = TlsConfig::default().with_ca_file(&certs.other_ca_file);
    let err = GenericRedisCache::connect(with_tls(untrusted))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Tls, "{err}");
}
