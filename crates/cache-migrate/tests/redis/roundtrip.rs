//! Round trips: store to store, through files, across namespaces, under the minimal ACL.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cache_core::frame::{Codec, FrameCodec, FrameMeta};
use cache_core::{CacheKey, Cipher, ErrorKind, FrameStore, KeyPattern, Ttl, WalkMode, unix_millis};
use cache_memory::MemoryFrameStore;
use cache_migrate::{RestorePolicy, VerifyOptions};
use cache_redis::{RedisCacheConfig, RedisStore};
use cache_security::{AeadAlgorithm, AeadCipher, Secret};
use cache_testkit::{RedisServer, ServerConfig};

use super::{db_size, fill, frame, key, manager, store};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_to_redis_to_file_to_redis_keeps_every_frame_and_ttl() {
    let memory = MemoryFrameStore::new("app");
    fill(&memory, "qa", 100_000, 3600).await;
    let (first, second) = (
        RedisServer::start(ServerConfig::default()),
        RedisServer::start(ServerConfig::default()),
    );
    let (a, b) = (store(&first, "app").await, store(&second, "app").await);

    let moved = manager()
        .migrate(&memory, &a, &KeyPattern::all(), RestorePolicy::SkipExisting)
        .await
        .unwrap();
    assert_eq!(
        (moved.keys_processed, moved.keys_migrated),
        (100_000, 100_000)
    );
    // A removal and a pattern removal leave a tombstone and an auxiliary record: neither is
    // an entry, and neither is backed up.
    assert!(a.delete(&key("qa:000000")).await.unwrap());
    let mut ignore = |_: &CacheKey| {};
    let pattern = KeyPattern::new("qa:00000[12]").unwrap();
    assert_eq!(a.remove_matching(&pattern, &mut ignore).await.unwrap(), 2);
    assert_eq!(
        db_size(&first).await,
        100_001,
        "3 tombstones and the pattern record"
    );

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.aicbak");
    let backup = manager()
        .backup_to_path(&a, &KeyPattern::all(), &path)
        .await
        .unwrap();
    assert_eq!(backup.keys_backed_up, 99_997);
    assert_eq!(backup.header.namespace, "app");
    assert_eq!(backup.backup_file.as_deref(), Some(path.as_path()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(files.len(), 1, "no temporary file is left behind");

    let restored = manager()
        .restore_from_path(&path, &b, RestorePolicy::SkipExisting)
        .await
        .unwrap();
    assert!(restored.success);
    assert_eq!(
        (restored.keys_processed, restored.keys_restored),
        (99_997, 99_997)
    );
    assert_eq!(
        db_size(&second).await,
        99_997,
        "no auxiliary key, no tombstone"
    );

    // Byte-identical frames, TTLs within 1 s, on both hops.
    let strict = VerifyOptions::default().with_ttl_tolerance(Duration::from_secs(1));
    let check = manager().verify(&a, &b, &strict).await.unwrap();
    assert!(check.is_consistent(), "{check:?}");
    assert_eq!(check.keys_matched, 99_997);
    let check = manager().verify(&memory, &b, &strict).await.unwrap();
    assert_eq!(check.keys_matched, 99_997);
    assert_eq!(check.missing_target, 3, "the three removed entries");
    for i in [3u64, 50_000, 99_999] {
        let k = key(&format!("qa:{i:06}"));
        assert_eq!(b.get(&k).await.unwrap(), memory.get(&k).await.unwrap());
        let left = b.remaining_ttl(&k).await.unwrap().unwrap();
        let original = memory.remaining_ttl(&k).await.unwrap().unwrap();
        assert!(
            original.abs_diff(left) < Duration::from_secs(1),
            "{left:?} vs {original:?}"
        );
    }
}

fn cipher() -> Arc<dyn Cipher> {
    let key = Secret::new("7".repeat(64));
    Arc::new(AeadCipher::new(AeadAlgorithm::ChaCha20Poly1305, 1, [(1, key)]).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_frames_move_to_another_namespace_only_with_their_key() {
    let server = RedisServer::start(ServerConfig::default());
    let (old, new) = (store(&server, "old").await, store(&server, "new").await);
    let codec = FrameCodec::new().with_cipher(cipher());
    let meta = FrameMeta::new(unix_millis(), unix_millis() + 60_000);
    let ttl = Ttl::from_secs(600).unwrap();
    for i in 0..20 {
        let k = key(&format!("qa:{i}"));
        let sealed = codec
            .encode(&format!("old:{k}"), &meta, Codec::Raw, b"secret")
            .unwrap();
        old.set(&k, Bytes::from(sealed.bytes), ttl).await.unwrap();
    }
    let mut file = Vec::new();
    manager()
        .backup(&old, &KeyPattern::all(), &mut file)
        .await
        .unwrap();
    // The file holds ciphertext only.
    assert!(!file.windows(6).any(|w| w == b"secret"));

    let error = manager()
        .restore(&mut file.as_slice(), &new, RestorePolicy::SkipExisting)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Unsupported, "{error}");
    assert!(error.context_value("key").is_some() && error.context_value("to") == Some("new"));
    let page = new
        .walk(&KeyPattern::all(), None, WalkMode::Keys)
        .await
        .unwrap();
    assert!(
        page.entries.is_empty(),
        "nothing of the refused chunk is written"
    );

    let restored = manager()
        .with_cipher(cipher())
        .restore(&mut file.as_slice(), &new, RestorePolicy::SkipExisting)
        .await
        .unwrap();
    assert_eq!((restored.keys_restored, restored.keys_resealed), (20, 20));
    let moved = new.get(&key("qa:3")).await.unwrap().unwrap();
    let opened = codec.decode("new:qa:3", moved.clone()).unwrap();
    assert_eq!(opened.payload.as_ref(), b"secret");
    assert!(
        codec.decode("old:qa:3", moved).is_err(),
        "bound to its new key only"
    );
    // Into the same namespace, frames go back byte for byte without a cipher.
    let again = RedisServer::start(ServerConfig::default());
    let same = store(&again, "old").await;
    manager()
        .restore(&mut file.as_slice(), &same, RestorePolicy::SkipExisting)
        .await
        .unwrap();
    assert_eq!(
        same.get(&key("qa:3")).await.unwrap(),
        old.get(&key("qa:3")).await.unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_counts_mismatches_missing_keys_and_ttl_drift() {
    let server = RedisServer::start(ServerConfig::default());
    let (a, b) = (store(&server, "a").await, store(&server, "b").await);
    fill(&a, "qa", 100, 600).await;
    manager()
        .migrate(&a, &b, &KeyPattern::all(), RestorePolicy::SkipExisting)
        .await
        .unwrap();
    assert!(
        manager()
            .verify(&a, &b, &VerifyOptions::default())
            .await
            .unwrap()
            .is_consistent()
    );
    let codec = FrameCodec::new();
    b.set(
        &key("qa:000001"),
        frame(&codec, "b:qa:000001", 999, 64),
        Ttl::from_secs(600).unwrap(),
    )
    .await
    .unwrap();
    b.delete(&key("qa:000002")).await.unwrap();
    b.set(
        &key("extra"),
        frame(&codec, "b:extra", 1, 64),
        Ttl::from_secs(600).unwrap(),
    )
    .await
    .unwrap();
    let frame3 = a.get(&key("qa:000003")).await.unwrap().unwrap();
    b.set(&key("qa:000003"), frame3, Ttl::from_secs(60).unwrap())
        .await
        .unwrap();
    let found = manager()
        .verify(&a, &b, &VerifyOptions::default())
        .await
        .unwrap();
    assert_eq!(
        (
            found.keys_checked,
            found.keys_matched,
            found.keys_mismatched,
            found.missing_target,
            found.missing_source,
            found.ttl_mismatched
        ),
        (100, 98, 1, 1, 1, 1),
        "{found:?}"
    );
    assert_eq!(found.ttl_deltas[0].key, "qa:000003");
    assert!(found.ttl_deltas[0].delta_ms > 500_000);
    let sample = manager()
        .verify(&a, &b, &VerifyOptions::default().with_sample(10))
        .await
        .unwrap();
    assert_eq!(sample.keys_checked, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_backup_leaves_no_file() {
    let mut server = RedisServer::start(ServerConfig::default());
    let source = store(&server, "app").await;
    fill(&source, "qa", 10, 600).await;
    server.kill();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.aicbak");
    let error = manager()
        .backup_to_path(&source, &KeyPattern::all(), &path)
        .await
        .unwrap_err();
    assert!(
        error.kind().is_transient() || error.kind() == ErrorKind::Connection,
        "{error}"
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "no file, no temporary"
    );
    let error = manager()
        .backup_to_path(
            &MemoryFrameStore::new("x"),
            &KeyPattern::all(),
            dir.path().join("missing/dir/f"),
        )
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Io);
    assert!(
        error
            .context_value("path")
            .is_some_and(|p| p.contains("missing")),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_minimal_acl_is_enough_for_every_job() {
    use cache_testkit::AclUser;
    let server = RedisServer::start(
        ServerConfig::default().with_acl_user(AclUser::cache("aicache", "s3cret", "app")),
    );
    let config = RedisCacheConfig::default()
        .with_redis_url(server.url_for_user("aicache", "s3cret"))
        .with_key_prefix("app");
    let source = RedisStore::connect(&config, None).await.unwrap();
    fill(&source, "qa", 200, 600).await;
    let mut ignore = |_: &CacheKey| {};
    let gone = KeyPattern::new("qa:00019*").unwrap();
    assert_eq!(
        source.remove_matching(&gone, &mut ignore).await.unwrap(),
        10
    );
    let mut file = Vec::new();
    let backup = manager()
        .backup(&source, &KeyPattern::all(), &mut file)
        .await
        .unwrap();
    assert_eq!(backup.keys_backed_up, 190);
    assert!(
        backup.header.estimated_entries.is_some(),
        "DBSIZE is allowed"
    );
    for policy in [
        RestorePolicy::SkipExisting,
        RestorePolicy::OverwriteIfNewer,
        RestorePolicy::Overwrite,
    ] {
        let restored = manager()
            .restore(&mut file.as_slice(), &source, policy)
            .await
            .unwrap();
        assert_eq!(restored.keys_processed, 190, "{policy:?}");
    }
    let memory = MemoryFrameStore::new("app");
    manager()
        .migrate(
            &source,
            &memory,
            &KeyPattern::all(),
            RestorePolicy::SkipExisting,
        )
        .await
        .unwrap();
    let check = manager()
        .verify(&source, &memory, &VerifyOptions::default())
        .await
        .unwrap();
    assert!(check.is_consistent(), "{check:?}");
}
