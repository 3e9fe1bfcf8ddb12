//! Edges of the format and of the result counts: expired entries, progress, spliced files, other
//! versions, frames larger than a chunk.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cache_core::frame::FrameCodec;
use cache_core::{ErrorKind, FrameStore, KeyPattern, Ttl};
use cache_memory::MemoryFrameStore;
use cache_migrate::{Progress, ProgressSink, RestorePolicy};

use super::{fill, frame, key, manager};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_entries_are_skipped_and_counted_and_progress_reaches_the_end() {
    let source = MemoryFrameStore::new("app");
    fill(&source, "live", 50, 600).await;
    let codec = FrameCodec::new();
    for i in 0..7 {
        let k = key(&format!("short:{i}"));
        let f = frame(&codec, &format!("app:{k}"), i, 64);
        source
            .set(&k, f, Ttl::from_millis(300).unwrap())
            .await
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.aicbak");
    manager()
        .backup_to_path(&source, &KeyPattern::all(), &path)
        .await
        .unwrap();
    // The short entries' TTL passes between the backup and the restore.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let seen: Arc<Mutex<Vec<Progress>>> = Arc::default();
    let sink = Arc::clone(&seen);
    let reporting = manager().with_progress(ProgressSink::new(move |p| {
        sink.lock().unwrap().push(*p);
    }));
    let target = MemoryFrameStore::new("app");
    let restored = reporting
        .restore_from_path(&path, &target, RestorePolicy::SkipExisting)
        .await
        .unwrap();
    assert_eq!(
        (
            restored.keys_processed,
            restored.keys_restored,
            restored.keys_expired
        ),
        (57, 50, 7)
    );
    assert_eq!(target.len(), 50);
    assert!((restored.success_rate() - 100.0).abs() < 1e-9);
    let seen = seen.lock().unwrap();
    let last = seen.last().unwrap();
    assert_eq!(last.entries, 57);
    assert!(last.fraction().unwrap() > 0.9, "{last:?}");
}

fn trailer_start(file: &[u8]) -> usize {
    let be32 = |at: usize| u32::from_be_bytes(file[at..at + 4].try_into().unwrap()) as usize;
    let mut at = 7 + 4 + be32(7) + 8;
    while file[at] == b'C' {
        at += 18 + be32(at + 14) + 8;
    }
    at
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spliced_files_and_other_versions_are_refused() {
    let (small, large) = (MemoryFrameStore::new("app"), MemoryFrameStore::new("app"));
    fill(&small, "qa", 10, 600).await;
    fill(&large, "qa", 20, 600).await;
    let (mut a, mut b) = (Vec::new(), Vec::new());
    manager()
        .backup(&small, &KeyPattern::all(), &mut a)
        .await
        .unwrap();
    manager()
        .backup(&large, &KeyPattern::all(), &mut b)
        .await
        .unwrap();
    // `a`'s chunks with `b`'s (valid) trailer: the totals differ.
    let mut spliced = a[..trailer_start(&a)].to_vec();
    spliced.extend_from_slice(&b[trailer_start(&b)..]);
    let error = manager()
        .restore(
            &mut spliced.as_slice(),
            &MemoryFrameStore::new("app"),
            RestorePolicy::SkipExisting,
        )
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Corrupted);
    assert_eq!(error.context_value("in"), Some("trailer"), "{error}");
    // Another format version is refused before anything is read.
    let mut newer = a.clone();
    newer[6] = 2;
    let target = MemoryFrameStore::new("app");
    let error = manager()
        .restore(&mut newer.as_slice(), &target, RestorePolicy::SkipExisting)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Unsupported, "{error}");
    assert!(target.is_empty());
    // Bytes after the trailer are a warning, not an error.
    let mut padded = a.clone();
    padded.extend_from_slice(b"junk");
    let restored = manager()
        .restore(&mut padded.as_slice(), &target, RestorePolicy::SkipExisting)
        .await
        .unwrap();
    assert_eq!(restored.keys_restored, 10);
    assert_eq!(restored.warnings.len(), 1, "{:?}", restored.warnings);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_larger_than_a_chunk_get_a_chunk_of_their_own() {
    let source = MemoryFrameStore::new("app");
    let codec = FrameCodec::new();
    for i in 0..5 {
        let k = key(&format!("big:{i}"));
        let f = frame(&codec, &format!("app:{k}"), i, 40_000);
        source
            .set(&k, f, Ttl::from_secs(600).unwrap())
            .await
            .unwrap();
    }
    fill(&source, "small", 3, 600).await;
    let tiny = manager().with_chunk_bytes(4096).unwrap();
    let mut file = Vec::new();
    let backup = tiny
        .backup(&source, &KeyPattern::all(), &mut file)
        .await
        .unwrap();
    assert!(backup.chunks >= 6, "{}", backup.chunks);
    let target = MemoryFrameStore::new("app");
    let restored = tiny
        .restore(&mut file.as_slice(), &target, RestorePolicy::SkipExisting)
        .await
        .unwrap();
    assert_eq!(restored.keys_restored, 8);
    assert_eq!(
        target.get(&key("big:3")).await.unwrap(),
        source.get(&key("big:3")).await.unwrap()
    );
}
