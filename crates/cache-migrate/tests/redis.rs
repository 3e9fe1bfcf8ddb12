//! The migration manager against real redis-servers (started by the test kit on free ports).
#![allow(
    clippy::unwrap_used,
    clippy::cast_possible_truncation,
    reason = "test code: a failure should panic with its error; test data generators truncate"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use cache_core::frame::{Codec, FrameCodec, FrameMeta};
use cache_core::{CacheKey, Cipher, ErrorKind, FrameStore, KeyPattern, Ttl, WalkMode, unix_millis};
use cache_memory::MemoryFrameStore;
use cache_migrate::{
    CacheMigrationManager, ChunkCompression, ProgressSink, RestorePolicy, VerifyOptions,
};
use cache_redis::{RedisCacheConfig, RedisStore};
use cache_security::{AeadAlgorithm, AeadCipher, Secret};
use cache_testkit::{RedisServer, ServerConfig};

fn key(s: &str) -> CacheKey {
    CacheKey::new(s).unwrap()
}

async fn store(server: &RedisServer, namespace: &str) -> RedisStore {
    let config = RedisCacheConfig::default()
        .with_redis_url(server.url())
        .with_key_prefix(namespace)
        .with_command_timeout(Duration::from_secs(5))
        .with_connect_timeout(Duration::from_secs(2));
    let store = RedisStore::connect(&config, None).await.unwrap();
    assert!(store.is_available());
    store
}

/// A frame of `size` pseudo-random (incompressible) payload bytes.
fn frame(codec: &FrameCodec, full_key: &str, seed: u64, size: usize) -> Bytes {
    let now = unix_millis();
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let payload: Vec<u8> = (0..size)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    let meta = FrameMeta::new(now, now + 3_600_000).with_operation("qa");
    Bytes::from(
        codec
            .encode(full_key, &meta, Codec::Raw, &payload)
            .unwrap()
            .bytes,
    )
}

async fn fill(store: &dyn cache_core::DynFrameStore, prefix: &str, count: u64, ttl_secs: u64) {
    let codec = FrameCodec::new();
    let ns = store.info().namespace;
    let ttl = Ttl::from_secs(ttl_secs).unwrap();
    let mut batch = Vec::new();
    for i in 0..count {
        let k = key(&format!("{prefix}:{i:06}"));
        batch.push((k.clone(), frame(&codec, &format!("{ns}:{k}"), i, 1024)));
        if batch.len() == 1000 {
            store.set_many(&batch, ttl).await.unwrap();
            batch.clear();
        }
    }
    store.set_many(&batch, ttl).await.unwrap();
}

async fn db_size(server: &RedisServer) -> u64 {
    let mut conn = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    redis::cmd("DBSIZE").query_async(&mut conn).await.unwrap()
}

fn manager() -> CacheMigrationManager {
    CacheMigrationManager::new()
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_never_brings_back_what_was_removed_after_the_backup() {
    let server = RedisServer::start(ServerConfig::default());
    let target = store(&server, "app").await;
    fill(&target, "qa", 50, 600).await;
    fill(&target, "sum", 50, 600).await;
    let mut file = Vec::new();
    manager()
        .backup(&target, &KeyPattern::all(), &mut file)
        .await
        .unwrap();

    // After the backup: one key deleted, one operation invalidated, and one removed key's
    // tombstone lost (as eviction would lose it): the pattern record still covers it.
    assert!(target.delete(&key("qa:000007")).await.unwrap());
    let mut ignore = |_: &CacheKey| {};
    let sums = KeyPattern::new("sum:*").unwrap().with_segments(2);
    assert_eq!(
        target.remove_matching(&sums, &mut ignore).await.unwrap(),
        50
    );
    let mut conn = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = redis::cmd("UNLINK")
        .arg("app:sum:000003")
        .query_async(&mut conn)
        .await
        .unwrap();

    for policy in [
        RestorePolicy::SkipExisting,
        RestorePolicy::OverwriteIfNewer,
        RestorePolicy::Overwrite,
    ] {
        let restored = manager()
            .restore(&mut file.as_slice(), &target, policy)
            .await
            .unwrap();
        assert_eq!(restored.keys_processed, 100, "{policy:?}");
        assert_eq!(
            target.get(&key("qa:000007")).await.unwrap(),
            None,
            "{policy:?}"
        );
        for i in 0..50 {
            let k = key(&format!("sum:{i:06}"));
            assert_eq!(target.get(&k).await.unwrap(), None, "{policy:?} {k}");
        }
        assert!(target.get(&key("qa:000008")).await.unwrap().is_some());
        let expected_writes = if policy == RestorePolicy::Overwrite {
            49
        } else {
            0
        };
        assert_eq!(restored.keys_restored, expected_writes, "{policy:?}");
    }
}

/// Where each chunk of a backup starts and ends, read from the layout of
/// `docs/backup-format.md`.
fn chunk_spans(file: &[u8]) -> Vec<(usize, usize, u32)> {
    let be32 = |at: usize| u32::from_be_bytes(file[at..at + 4].try_into().unwrap());
    let mut at = 7 + 4 + be32(7) as usize + 8;
    let mut spans = Vec::new();
    while file[at] == b'C' {
        let entries = be32(at + 6);
        let end = at + 18 + be32(at + 14) as usize + 8;
        spans.push((at, end, entries));
        at = end;
    }
    assert_eq!(file[at], b'T');
    spans
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_or_truncated_backup_names_its_chunk_and_writes_nothing_of_it() {
    let memory = MemoryFrameStore::new("app");
    fill(&memory, "qa", 400, 600).await;
    let small = manager()
        .with_chunk_bytes(16 * 1024)
        .unwrap()
        .with_compression(ChunkCompression::Lz4)
        .unwrap();
    let mut file = Vec::new();
    let backup = small
        .backup(&memory, &KeyPattern::all(), &mut file)
        .await
        .unwrap();
    let spans = chunk_spans(&file);
    assert_eq!(spans.len() as u64, backup.chunks);
    assert!(spans.len() >= 10, "{} chunks", spans.len());
    let bad = 4;
    let before: u64 = spans[..bad].iter().map(|s| u64::from(s.2)).sum();

    let flipped = {
        let mut copy = file.clone();
        copy[(spans[bad].0 + spans[bad].1) / 2] ^= 0x01;
        copy
    };
    let truncated = file[..spans[bad].1 - 3].to_vec();
    let at_boundary = file[..spans[bad].0].to_vec();
    for (what, broken) in [
        ("flipped", flipped),
        ("truncated", truncated),
        ("cut at a boundary", at_boundary),
    ] {
        let server = RedisServer::start(ServerConfig::default());
        let target = store(&server, "app").await;
        let error = small
            .restore(&mut broken.as_slice(), &target, RestorePolicy::SkipExisting)
            .await
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Corrupted, "{what}: {error}");
        assert_eq!(error.context_value("chunk"), Some("4"), "{what}: {error}");
        assert_eq!(
            db_size(&server).await,
            before,
            "{what}: only the chunks before it"
        );
    }
    // A file that is not a backup at all.
    let target = MemoryFrameStore::new("app");
    let error = small
        .restore(
            &mut &b"PK\x03\x04 not a backup"[..],
            &target,
            RestorePolicy::SkipExisting,
        )
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Corrupted);
    assert!(target.is_empty());
}

/// A reader that hands out `limit` bytes, then never answers until dropped.
struct Stall<'a> {
    inner: &'a [u8],
    limit: usize,
    reached: Arc<tokio::sync::Notify>,
}

impl tokio::io::AsyncRead for Stall<'_> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if self.limit == 0 {
            self.reached.notify_one();
            return std::task::Poll::Pending;
        }
        let n = buf.remaining().min(self.limit).min(self.inner.len());
        buf.put_slice(&self.inner[..n]);
        self.inner = &self.inner[n..];
        self.limit -= n;
        std::task::Poll::Ready(Ok(()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_restore_rerun_reaches_the_uninterrupted_state() {
    let memory = MemoryFrameStore::new("app");
    fill(&memory, "qa", 600, 600).await;
    let small = manager().with_chunk_bytes(32 * 1024).unwrap();
    let mut file = Vec::new();
    small
        .backup(&memory, &KeyPattern::all(), &mut file)
        .await
        .unwrap();
    let spans = chunk_spans(&file);

    let reference_server = RedisServer::start(ServerConfig::default());
    let reference = store(&reference_server, "app").await;
    small
        .restore(&mut file.as_slice(), &reference, RestorePolicy::Overwrite)
        .await
        .unwrap();

    for policy in [RestorePolicy::SkipExisting, RestorePolicy::Overwrite] {
        let server = RedisServer::start(ServerConfig::default());
        let target = store(&server, "app").await;
        let reached = Arc::new(tokio::sync::Notify::new());
        // Half-way, in the middle of a chunk: the future is dropped there.
        let mut stall = Stall {
            inner: &file,
            limit: (spans[spans.len() / 2].0 + spans[spans.len() / 2].1) / 2,
            reached: Arc::clone(&reached),
        };
        tokio::select! {
            result = small.restore(&mut stall, &target, policy) => panic!("finished: {result:?}"),
            () = reached.notified() => {}
        }
        let partial = db_size(&server).await;
        assert!(
            partial > 0 && partial < 600,
            "{partial} written before the cancellation"
        );
        let rerun = small
            .restore(&mut file.as_slice(), &target, policy)
            .await
            .unwrap();
        assert_eq!(rerun.keys_processed, 600);
        let check = small
            .verify(&reference, &target, &VerifyOptions::default())
            .await
            .unwrap();
        assert!(check.is_consistent(), "{policy:?}: {check:?}");
    }
}

/// The child of `a_killed_restore_rerun_reaches_the_uninterrupted_state`, when it is started with
/// its environment; otherwise a restore of a small backup through a path, checked whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_child_process() {
    if let (Ok(url), Ok(path)) = (
        std::env::var("AICACHE_TEST_RESTORE_URL"),
        std::env::var("AICACHE_TEST_RESTORE_FILE"),
    ) {
        let config = RedisCacheConfig::default()
            .with_redis_url(url)
            .with_key_prefix("app");
        let target = RedisStore::connect(&config, None).await.unwrap();
        let chunks = Arc::new(AtomicU64::new(0));
        let seen = Arc::clone(&chunks);
        let slow = manager()
            .with_batch_size(10)
            .unwrap()
            .with_progress(ProgressSink::new(move |_| {
                println!("chunk {}", seen.fetch_add(1, Ordering::SeqCst) + 1);
            }));
        slow.restore_from_path(&path, &target, RestorePolicy::SkipExisting)
            .await
            .unwrap();
        println!("done");
        return;
    }
    let memory = MemoryFrameStore::new("app");
    fill(&memory, "qa", 30, 600).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("small.aicbak");
    manager()
        .backup_to_path(&memory, &KeyPattern::all(), &path)
        .await
        .unwrap();
    let target = MemoryFrameStore::new("app");
    let restored = manager()
        .restore_from_path(&path, &target, RestorePolicy::SkipExisting)
        .await
        .unwrap();
    assert_eq!(restored.keys_restored, 30);
    assert!(
        manager()
            .verify(&memory, &target, &VerifyOptions::default())
            .await
            .unwrap()
            .is_consistent()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_restore_rerun_reaches_the_uninterrupted_state() {
    use std::io::BufRead;

    let memory = MemoryFrameStore::new("app");
    fill(&memory, "qa", 3000, 600).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.aicbak");
    let small = manager().with_chunk_bytes(64 * 1024).unwrap();
    let backup = small
        .backup_to_path(&memory, &KeyPattern::all(), &path)
        .await
        .unwrap();
    assert!(backup.chunks > 20);

    let server = RedisServer::start(ServerConfig::default());
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "restore_child_process",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("AICACHE_TEST_RESTORE_URL", server.url())
        .env("AICACHE_TEST_RESTORE_FILE", &path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = std::io::BufReader::new(stdout).lines();
    // Killed (SIGKILL) once it has applied a few chunks, well before the end.
    loop {
        let line = lines.next().expect("the child ended early").unwrap();
        assert_ne!(line, "done", "the child finished before it was killed");
        if line == "chunk 5" {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let partial = db_size(&server).await;
    assert!(
        (5 * 10..3000).contains(&partial),
        "{partial} written before the kill"
    );

    let target = store(&server, "app").await;
    let rerun = small
        .restore_from_path(&path, &target, RestorePolicy::SkipExisting)
        .await
        .unwrap();
    assert_eq!(rerun.keys_restored + rerun.keys_skipped, 3000);
    let check = small
        .verify(
            &memory,
            &target,
            &VerifyOptions::default().with_ttl_tolerance(Duration::from_secs(2)),
        )
        .await
        .unwrap();
    assert!(check.is_consistent(), "{check:?}");
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
    // docs/security.md's user, for the namespace `app`.
    let rules = [
        "~app:*",
        "~app~aux:*",
        "resetchannels",
        "-@all",
        "+get",
        "+set",
        "+unlink",
        "+exists",
        "+pttl",
        "+mget",
        "+scan",
        "+ping",
        "+info",
        "+eval",
        "+evalsha",
        "+script|load",
        "+acl|whoami",
        "+hello",
        "+multi",
        "+discard",
        "+getrange",
        "+pexpire",
        "+time",
        "+type",
        "+zadd",
        "+zrangebyscore",
        "+zremrangebyscore",
        "+dbsize",
    ];
    let server = RedisServer::start(
        ServerConfig::default().with_acl_user(AclUser::new("aicache", "s3cret", &rules)),
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
