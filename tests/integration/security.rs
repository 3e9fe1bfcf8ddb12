//! Security against real servers: TLS with certificates generated at test time, mutual TLS,
//! requirepass and ACL users, the security manager, and encryption at rest.

use std::time::Duration;

use aicache::{
    AeadAlgorithm, CacheInterface, CacheKey, ConnectTimeouts, EncryptionConfig, ErrorKind,
    GenericRedisCache, RedisCacheConfig, RedisCacheSecurityManager, Secret, SecurityConfig,
    TlsConfig, Ttl, frame::Unreadable,
};
use cache_testkit::{AclUser, RedisServer, ServerConfig, TestCertificates};
use redis::AsyncCommands;

use crate::support::{raw, redis_cache, server, test_config};

fn key(s: &str) -> CacheKey {
    CacheKey::new(s).unwrap()
}

fn ttl() -> Option<Ttl> {
    Some(Ttl::from_secs(60).unwrap())
}

/// The documented minimal cache user, and `docs/security.md` says exactly its commands.
#[test]
fn the_documented_acl_is_the_tested_one() {
    let doc = include_str!("../../docs/security.md");
    let line = doc
        .lines()
        .find(|l| l.trim_start().starts_with("user aicache on"))
        .unwrap();
    let documented: Vec<&str> = line
        .split_whitespace()
        .filter(|w| w.starts_with('+') || w.starts_with('-') || *w == "resetchannels")
        .collect();
    assert_eq!(documented, cache_testkit::CACHE_ACL_COMMANDS);
}

fn tls_server(certs: &TestCertificates, require_client: bool) -> RedisServer {
    RedisServer::start(
        ServerConfig::default().with_tls(certs.server_tls(&certs.server, require_client)),
    )
}

fn trusting(certs: &TestCertificates) -> TlsConfig {
    TlsConfig::default().with_ca_file(&certs.ca_file)
}

async fn connect(url: &str, security: SecurityConfig) -> aicache::Result<GenericRedisCache> {
    GenericRedisCache::connect(test_config(url).with_security(security)).await
}

#[tokio::test]
async fn tls_with_a_trusted_ca_works_and_every_broken_certificate_is_a_tls_error() {
    let certs = TestCertificates::generate();
    let server = tls_server(&certs, false);
    let url = server.url();
    assert!(url.starts_with("rediss://127.0.0.1:"), "{url}");
    let cache = connect(&url, SecurityConfig::default().with_tls(trusting(&certs)))
        .await
        .unwrap();
    cache
        .set(&key("k"), "over tls".into(), ttl())
        .await
        .unwrap();
    cache.l1().unwrap().clear().await.unwrap();
    assert_eq!(
        cache.get(&key("k")).await.unwrap().as_deref(),
        Some(&b"over tls"[..])
    );

    // An untrusted CA, at connect: a typed error, never memory-only mode.
    let untrusted = TlsConfig::default().with_ca_file(&certs.other_ca_file);
    let err = connect(&url, SecurityConfig::default().with_tls(untrusted))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Tls, "{err}");
    assert!(
        err.to_string().contains("ca_file"),
        "says what to fix: {err}"
    );
    // No CA at all: the system roots do not know the test CA either.
    let err = connect(&url, SecurityConfig::default()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Tls, "{err}");

    // Turning verification off connects, and says so in the security report.
    let blind = TlsConfig::default().danger_without_verification();
    let cache = connect(&url, SecurityConfig::default().with_tls(blind.clone()))
        .await
        .unwrap();
    assert!(cache.is_l2_available());
    let manager = RedisCacheSecurityManager::new(
        &url,
        SecurityConfig::default().with_tls(blind),
        ConnectTimeouts::new(Duration::from_secs(2), Duration::from_secs(1)),
        Duration::from_secs(2),
    )
    .unwrap();
    let report = manager.validate_connection_security().await.unwrap();
    assert!(report.tls && !report.certificates_verified);
    assert!(
        report
            .vulnerabilities
            .iter()
            .any(|f| f.issue == "tls_unverified")
    );

    for (name, served, cause) in [
        ("expired", &certs.expired_server, "xpired"),
        ("wrong host", &certs.wrong_host_server, "name"),
    ] {
        let server =
            RedisServer::start(ServerConfig::default().with_tls(certs.server_tls(served, false)));
        let err = connect(
            &server.url(),
            SecurityConfig::default().with_tls(trusting(&certs)),
        )
        .await
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Tls, "{name}: {err}");
        assert!(err.to_string().contains(cause), "{name}: {err}");
    }
}

#[tokio::test]
async fn mutual_tls_needs_a_client_certificate_from_the_trusted_ca() {
    let certs = TestCertificates::generate();
    let server = tls_server(&certs, true);
    let with_client =
        trusting(&certs).with_client_certificate(&certs.client.cert, &certs.client.key);
    let cache = connect(
        &server.url(),
        SecurityConfig::default().with_tls(with_client),
    )
    .await
    .unwrap();
    cache.set(&key("m"), "mutual".into(), ttl()).await.unwrap();
    assert!(cache.is_l2_available());
    for (name, tls) in [
        ("no client certificate", trusting(&certs)),
        (
            "a client certificate from another CA",
            trusting(&certs)
                .with_client_certificate(&certs.untrusted_client.cert, &certs.untrusted_client.key),
        ),
    ] {
        let err = connect(&server.url(), SecurityConfig::default().with_tls(tls))
            .await
            .unwrap_err();
        assert!(
            matches!(err.kind(), ErrorKind::Tls),
            "{name}: {:?} {err}",
            err.kind()
        );
    }
}

#[tokio::test]
async fn passwords_and_acl_users_over_tls() {
    let certs = TestCertificates::generate();
    let user = AclUser::cache("cache", "cachepw", "test");
    let server = RedisServer::start(
        ServerConfig::default()
            .with_tls(certs.server_tls(&certs.server, false))
            .with_acl_user(user),
    );
    let url = server.url_without_auth();
    let acl = SecurityConfig::default()
        .with_acl_user("cache", Secret::new("cachepw"))
        .with_tls(trusting(&certs));
    let cache = connect(&url, acl.clone()).await.unwrap();
    cache.set(&key("a"), "v".into(), ttl()).await.unwrap();
    let wrong = SecurityConfig::default()
        .with_acl_user("cache", Secret::new("nope"))
        .with_tls(trusting(&certs));
    let err = connect(&url, wrong).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Auth, "{err}");
    assert!(!err.to_string().contains("nope"), "{err}");
    // Outside the key prefix the user may not write.
    let outside = GenericRedisCache::connect(
        test_config(&url)
            .with_key_prefix("elsewhere")
            .with_security(acl.clone()),
    )
    .await
    .unwrap();
    let err = outside.set(&key("a"), "v".into(), ttl()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Auth, "{err}");

    // The manager sees TLS, the user, and that the dangerous commands are denied.
    let manager = RedisCacheSecurityManager::new(
        &url,
        acl,
        ConnectTimeouts::new(Duration::from_secs(2), Duration::from_secs(1)),
        Duration::from_secs(2),
    )
    .unwrap();
    let report = manager.validate_connection_security().await.unwrap();
    assert_eq!(report.user, "cache");
    assert!(report.tls && report.certificates_verified);
    assert!(
        report
            .dangerous_commands
            .values()
            .all(|v| *v == Some(false)),
        "{report:?}"
    );
    assert_eq!(report.score, 100, "{}", report.report());
    assert!(report.is_secure());
    assert!(manager.check_requirements("production").is_valid());
}

#[tokio::test]
async fn the_manager_scores_an_open_server_and_probes_without_harm() {
    let server = server();
    let cache = redis_cache(test_config(&server.url())).await;
    cache
        .set(&key("survivor"), "v".into(), ttl())
        .await
        .unwrap();
    let manager = RedisCacheSecurityManager::new(
        &server.url(),
        SecurityConfig::default(),
        ConnectTimeouts::new(Duration::from_secs(2), Duration::from_secs(1)),
        Duration::from_secs(2),
    )
    .unwrap();
    let report = manager.validate_connection_security().await.unwrap();
    assert_eq!(report.user, "default");
    assert!(!report.tls);
    for command in ["FLUSHALL", "FLUSHDB", "KEYS", "CONFIG GET", "CONFIG SET"] {
        assert_eq!(report.dangerous_commands[command], Some(true), "{command}");
    }
    let issues: Vec<&str> = report.vulnerabilities.iter().map(|f| f.issue).collect();
    assert_eq!(issues[0], "no_authentication", "critical first: {issues:?}");
    assert!(issues.contains(&"no_tls") && issues.contains(&"dangerous_command"));
    assert_eq!(report.score, 0);
    assert!(!report.is_secure());
    assert!(report.report().contains("FLUSHALL: allowed"));
    // The probes changed nothing.
    let mut conn = raw(&server).await;
    assert!(conn.exists::<_, bool>("test:survivor").await.unwrap());
    // A command the operator renamed away is not available to anyone.
    let hardened = RedisServer::start(
        ServerConfig::default().with_config_line("rename-command FLUSHALL \"\""),
    );
    let report = RedisCacheSecurityManager::new(
        &hardened.url(),
        SecurityConfig::default(),
        ConnectTimeouts::new(Duration::from_secs(2), Duration::from_secs(1)),
        Duration::from_secs(2),
    )
    .unwrap()
    .validate_connection_security()
    .await
    .unwrap();
    assert_eq!(report.dangerous_commands["FLUSHALL"], Some(false));
    assert_eq!(report.dangerous_commands["FLUSHDB"], Some(true));
    let requirements = manager.check_requirements("production");
    let fields: Vec<&str> = requirements
        .errors
        .iter()
        .map(|e| e.field.as_str())
        .collect();
    assert_eq!(fields, vec!["security.password", "security.tls"]);
    assert!(manager.check_requirements("development").is_valid());
}

fn hex_key(byte: u8) -> Secret {
    Secret::new(hex::encode([byte; 32]))
}

fn encrypted(url: &str, encryption: EncryptionConfig) -> RedisCacheConfig {
    test_config(url)
        .with_l1(None)
        .with_encryption(Some(encryption))
}

#[tokio::test]
async fn encryption_at_rest_with_rotation_and_tampering() {
    let server = server();
    let v1 = EncryptionConfig::new(AeadAlgorithm::ChaCha20Poly1305, 1, hex_key(1));
    let old = redis_cache(encrypted(&server.url(), v1.clone())).await;
    let secret_text = "the model's confidential answer";
    old.set(&key("e:1"), secret_text.into(), ttl())
        .await
        .unwrap();
    let mut conn = raw(&server).await;
    let stored: Vec<u8> = conn.get("test:e:1").await.unwrap();
    assert_eq!(stored[4] & 0b1_0000, 0b1_0000, "the frame says encrypted");
    assert!(
        !stored
            .windows(secret_text.len())
            .any(|w| w == secret_text.as_bytes()),
        "no plaintext in Redis"
    );

    // Rotation: key 2 encrypts, key 1 still decrypts.
    let rotated = redis_cache(encrypted(&server.url(), v1.rotate_to(2, hex_key(2)))).await;
    assert_eq!(
        rotated.get(&key("e:1")).await.unwrap().as_deref(),
        Some(secret_text.as_bytes())
    );
    rotated.set(&key("e:2"), "new".into(), ttl()).await.unwrap();
    let stored: Vec<u8> = conn.get("test:e:2").await.unwrap();
    let key_id_at = 28; // no labels: the key id follows the two empty label lengths
    assert_eq!(&stored[key_id_at..key_id_at + 4], &2u32.to_be_bytes());
    assert_eq!(
        old.get(&key("e:2")).await.unwrap(),
        None,
        "an instance without key 2 cannot read it (a miss, left in place)"
    );
    assert!(conn.exists::<_, bool>("test:e:2").await.unwrap());

    assert_eq!(stored[3], 2, "encrypted frames are version 2");
    assert_eq!(stored[key_id_at + 4], AeadAlgorithm::ChaCha20Poly1305.id());

    // A tampered ciphertext and one moved to another key do not authenticate: misses, counted
    // as key mismatches and left in place (another instance's key of that id may differ). Bytes
    // that are no frame at all (pickle) are corrupt: deleted.
    let mut tampered = stored.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let _: () = conn.set("test:e:tampered", &tampered).await.unwrap();
    let moved: Vec<u8> = conn.get("test:e:1").await.unwrap();
    let _: () = conn.set("test:e:moved", &moved).await.unwrap();
    let pickle: &[u8] =
        b"\x80\x04\x95\x1a\x00\x00\x00\x00\x00\x00\x00}\x94\x8c\x08response\x94\x8c\x02ok\x94s.";
    let _: () = conn.set("test:e:pickle", pickle).await.unwrap();
    let before = rotated.stats();
    for name in ["e:tampered", "e:moved", "e:pickle"] {
        assert_eq!(rotated.get(&key(name)).await.unwrap(), None, "{name}");
    }
    let after = rotated.stats();
    assert_eq!(after.corrupt_entries - before.corrupt_entries, 1);
    let mismatches = |s: &aicache::RedisCacheStats| s.unreadable(Unreadable::KeyMismatch);
    assert_eq!(mismatches(&after) - mismatches(&before), 2);
    assert!(!conn.exists::<_, bool>("test:e:pickle").await.unwrap());
    for name in ["test:e:tampered", "test:e:moved"] {
        assert!(conn.exists::<_, bool>(name).await.unwrap(), "{name} kept");
    }

    // A valid plaintext frame (a writer without the key could forge one; or an instance that has
    // not enabled encryption yet wrote it): not trusted, but left for that instance.
    let plain = redis_cache(test_config(&server.url()).with_l1(None)).await;
    plain
        .set(&key("e:forged"), "poison".into(), ttl())
        .await
        .unwrap();
    assert_eq!(rotated.get(&key("e:forged")).await.unwrap(), None);
    assert_eq!(rotated.stats().unreadable(Unreadable::PlaintextRefused), 1);
    assert!(conn.exists::<_, bool>("test:e:forged").await.unwrap());
    assert!(plain.get(&key("e:forged")).await.unwrap().is_some());

    // A cache without the cipher cannot read encrypted entries: unreadable, left in place.
    assert_eq!(plain.get(&key("e:1")).await.unwrap(), None);
    assert_eq!(plain.stats().unreadable_entries, 1);
    assert!(conn.exists::<_, bool>("test:e:1").await.unwrap());

    // A bad key is a configuration error that never prints the key.
    let bad = EncryptionConfig::new(AeadAlgorithm::Aes256Gcm, 1, Secret::new("0123abcd"));
    let err = GenericRedisCache::connect(encrypted(&server.url(), bad))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(!err.to_string().contains("0123abcd"), "{err}");
}

/// During a rolling enablement of encryption, a rolling key change or an algorithm change,
/// instances that cannot read each other's frames miss them and leave them in place: every
/// entry stays readable by the instance that wrote it.
#[tokio::test]
async fn instances_that_cannot_read_each_others_frames_leave_them_in_place() {
    let server = server();
    let mut conn = raw(&server).await;
    let chacha =
        |id, byte| EncryptionConfig::new(AeadAlgorithm::ChaCha20Poly1305, id, hex_key(byte));
    let plain = redis_cache(test_config(&server.url()).with_l1(None)).await;
    let writer = redis_cache(encrypted(&server.url(), chacha(1, 1))).await;
    plain.set(&key("r:plain"), "p".into(), ttl()).await.unwrap();
    writer
        .set(&key("r:sealed"), "s".into(), ttl())
        .await
        .unwrap();
    let readers = [
        (
            encrypted(&server.url(), chacha(1, 1)),
            "r:plain",
            Unreadable::PlaintextRefused,
        ),
        (
            encrypted(&server.url(), chacha(1, 9)),
            "r:sealed",
            Unreadable::KeyMismatch,
        ),
        (
            encrypted(&server.url(), chacha(2, 2)),
            "r:sealed",
            Unreadable::KeyMissing,
        ),
        (
            encrypted(
                &server.url(),
                EncryptionConfig::new(AeadAlgorithm::Aes256Gcm, 1, hex_key(1)),
            ),
            "r:sealed",
            Unreadable::AlgorithmMissing,
        ),
    ];
    for (config, name, reason) in readers {
        let reader = redis_cache(config).await;
        assert_eq!(reader.get(&key(name)).await.unwrap(), None, "{reason:?}");
        let stats = reader.stats();
        assert_eq!(
            (stats.unreadable(reason), stats.corrupt_entries),
            (1, 0),
            "{reason:?}"
        );
        assert!(
            conn.exists::<_, bool>(format!("test:{name}"))
                .await
                .unwrap(),
            "{reason:?}"
        );
    }
    assert!(plain.get(&key("r:plain")).await.unwrap().is_some());
    assert!(writer.get(&key("r:sealed")).await.unwrap().is_some());
}

mod conformance_over_tls_and_acl {
    use aicache::{GenericRedisCache, Secret, SecurityConfig, TlsConfig};
    use cache_testkit::{AclUser, RedisServer, ServerConfig, TestCertificates};

    async fn setup() -> (GenericRedisCache, (RedisServer, TestCertificates)) {
        let certs = TestCertificates::generate();
        let server = RedisServer::start(
            ServerConfig::default()
                .with_tls(certs.server_tls(&certs.server, true))
                .with_acl_user(AclUser::cache("cache", "cachepw", "test")),
        );
        let security = SecurityConfig::default()
            .with_acl_user("cache", Secret::new("cachepw"))
            .with_tls(
                TlsConfig::default()
                    .with_ca_file(&certs.ca_file)
                    .with_client_certificate(&certs.client.cert, &certs.client.key),
            );
        let config = crate::support::test_config(&server.url_without_auth())
            .with_l1(None)
            .with_security(security);
        let cache = crate::support::redis_cache(config).await;
        assert!(cache.is_l2_available());
        (cache, (server, certs))
    }

    cache_testkit::conformance_suite!(setup);
}

#[tokio::test]
async fn tls_acl_and_encryption_come_from_the_configuration() {
    use aicache::{AIResponseCache, AIResponseCacheConfig, AiRequest, RequestControls};
    let certs = TestCertificates::generate();
    let server = RedisServer::start(
        ServerConfig::default()
            .with_tls(certs.server_tls(&certs.server, false))
            .with_acl_user(AclUser::cache("cache", "cachepw", "aicache")),
    );
    let config = AIResponseCacheConfig::default()
        .merge(&serde_json::json!({
            "redis_url": server.url_without_auth(),
            "redis_username": "cache",
            "redis_auth": "cachepw",
            "tls_ca_file": certs.ca_file.display().to_string(),
            "encryption_key": "ab".repeat(32),
            "encryption_key_id": 7,
        }))
        .unwrap();
    assert!(config.validate().is_valid(), "{:?}", config.validate());
    let cache: AIResponseCache<String> = config.build_ai_cache().await.unwrap();
    let key = cache.key(&AiRequest::new("qa", "configured")).unwrap();
    cache
        .put(&key, "secret answer".into(), &RequestControls::default())
        .await
        .unwrap();
    let stored = cache
        .l2()
        .unwrap()
        .read(key.cache_key(), 0)
        .await
        .unwrap()
        .expect("stored in Redis over TLS as the ACL user");
    assert!(stored.meta.expires_at_ms > stored.meta.cached_at_ms);
    // The same server and credentials without the key: the entry is encrypted, so unreadable.
    let without_key = config
        .merge(&serde_json::json!({"encryption_key": null}))
        .unwrap();
    let reader: AIResponseCache<String> = without_key.build_ai_cache().await.unwrap();
    assert!(reader.get(&key).await.unwrap().is_none());
    assert_eq!(reader.l2().unwrap().stats().unreadable_entries, 1);
}
