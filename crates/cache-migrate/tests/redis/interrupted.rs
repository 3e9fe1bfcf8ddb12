//! Corrupt, truncated, cancelled and killed restores.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cache_core::{ErrorKind, KeyPattern};
use cache_memory::MemoryFrameStore;
use cache_migrate::{ChunkCompression, ProgressSink, RestorePolicy, VerifyOptions};
use cache_redis::{RedisCacheConfig, RedisStore};
use cache_testkit::{RedisServer, ServerConfig};

use super::{db_size, fill, manager, store};

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
            "interrupted::restore_child_process",
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
