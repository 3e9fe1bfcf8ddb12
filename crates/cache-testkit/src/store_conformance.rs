//! The [`FrameStore`] contract as executable cases.
//!
//! Every case takes the store under test behind an `Arc` and panics when the store breaks the
//! contract documented on [`FrameStore`]. Give every case a fresh, empty store. Run them all for
//! your store with [`frame_store_suite!`](crate::frame_store_suite):
//!
//! ```text
//! async fn setup() -> (MyStore, ()) { (MyStore::new(), ()) }
//! cache_testkit::frame_store_suite!(setup);
//! ```

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cache_core::frame::{Codec, FrameCodec, FrameMeta};
use cache_core::{
    CacheKey, FrameStore, KeyPattern, L2Health, RestoreEntry, RestoreRule, StoreWrite, Ttl,
    WalkMode, unix_millis,
};

/// Calls `$crate::$callback!($($args)* ; case, …)` with every store case.
#[doc(hidden)]
#[macro_export]
macro_rules! __for_each_store_case {
    ($callback:ident; $($args:tt)*) => {
        $crate::$callback! {
            $($args)*;
            store_set_get_delete,
            store_ttl_expires_and_is_reported,
            store_many_roundtrip,
            store_set_if_absent,
            store_set_unless_newer,
            store_delete_if_unchanged,
            store_delete_unless_newer,
            store_walk_pages_cover_everything_once,
            store_walk_reads_frames_and_ttls,
            store_remove_matching_counts_and_reports,
            store_patterns_stay_in_the_namespace,
            store_patterns_honour_their_segment_count,
            store_removals_are_remembered_against_conditional_writes,
            store_restore_many_follows_its_rule,
            store_health_and_info
        }
    };
}

/// The names of every store case.
pub const STORE_CASES: &[&str] = crate::__for_each_store_case!(__case_names;);

/// Generates one `#[tokio::test]` per [`FrameStore`] case. `$setup` names an
/// `async fn() -> (S, G)`: the store under test and a guard dropped at the end of the test.
#[macro_export]
macro_rules! frame_store_suite {
    ($setup:path) => {
        $crate::__for_each_store_case!(__store_cases; $setup);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __store_cases {
    ($setup:path; $($case:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let (store, _guard) = $setup().await;
                $crate::store_conformance::$case(::std::sync::Arc::new(store)).await;
            }
        )*
    };
}

fn key(s: &str) -> CacheKey {
    CacheKey::new(s).unwrap_or_else(|e| panic!("test key {s:?}: {e}"))
}

fn ttl(secs: u64) -> Ttl {
    Ttl::from_secs(secs).unwrap_or_else(|e| panic!("ttl: {e}"))
}

fn must<T>(what: &str, result: cache_core::Result<T>) -> T {
    result.unwrap_or_else(|e| panic!("{what} failed: {e} ({e:?})"))
}

/// A frame of this version written at `cached_at_ms`.
fn frame(cached_at_ms: u64, payload: &str) -> Bytes {
    let meta = FrameMeta::new(cached_at_ms, cached_at_ms + 3_600_000);
    let encoded = FrameCodec::new()
        .encode("k", &meta, Codec::Raw, payload.as_bytes())
        .unwrap_or_else(|e| panic!("encode: {e}"));
    Bytes::from(encoded.bytes)
}

/// Set, get, overwrite, delete, and a miss after it.
pub async fn store_set_get_delete<S: FrameStore>(store: Arc<S>) {
    let k = key("a");
    assert_eq!(must("get", store.get(&k).await), None);
    let written = must(
        "set",
        store.set(&k, Bytes::from_static(b"one"), ttl(60)).await,
    );
    assert_eq!(written, StoreWrite::Written);
    must("set", store.set(&k, Bytes::from_static(b""), ttl(60)).await);
    assert_eq!(
        must("get", store.get(&k).await).as_deref(),
        Some(&b""[..]),
        "an empty frame is a hit"
    );
    assert!(must("delete", store.delete(&k).await));
    assert!(!must("delete again", store.delete(&k).await));
    assert_eq!(must("get", store.get(&k).await), None);
}

/// Entries expire; the remaining TTL is reported within the TTL.
pub async fn store_ttl_expires_and_is_reported<S: FrameStore>(store: Arc<S>) {
    let (short, long) = (key("short"), key("long"));
    let ms = Ttl::from_millis(150).unwrap_or_else(|e| panic!("{e}"));
    must("set", store.set(&short, Bytes::from_static(b"x"), ms).await);
    must(
        "set",
        store.set(&long, Bytes::from_static(b"y"), ttl(60)).await,
    );
    let left = must("ttl", store.remaining_ttl(&long).await).unwrap_or_default();
    assert!(left > Duration::from_secs(58) && left <= Duration::from_secs(60));
    assert_eq!(must("ttl", store.remaining_ttl(&key("none")).await), None);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(must("get", store.get(&short).await), None, "expired");
    assert!(must("get", store.get(&long).await).is_some());
}

/// `get_many` keeps one slot per key, in order; `set_many` writes them all.
pub async fn store_many_roundtrip<S: FrameStore>(store: Arc<S>) {
    let entries: Vec<(CacheKey, Bytes)> = (0..5)
        .map(|i| (key(&format!("m:{i}")), Bytes::from(format!("v{i}"))))
        .collect();
    must("set_many", store.set_many(&entries, ttl(60)).await);
    let mut keys: Vec<CacheKey> = entries.iter().map(|(k, _)| k.clone()).collect();
    keys.insert(2, key("m:absent"));
    let got = must("get_many", store.get_many(&keys).await);
    assert_eq!(got.len(), 6);
    assert_eq!(got[2], None);
    assert_eq!(got[0].as_deref(), Some(&b"v0"[..]));
    assert_eq!(got[5].as_deref(), Some(&b"v4"[..]));
    assert!(must("get_many empty", store.get_many(&[]).await).is_empty());
}

/// `set_if_absent` writes only over nothing.
pub async fn store_set_if_absent<S: FrameStore>(store: Arc<S>) {
    let k = key("nx");
    assert!(must(
        "nx",
        store
            .set_if_absent(&k, Bytes::from_static(b"1"), ttl(60))
            .await
    ));
    assert!(!must(
        "nx",
        store
            .set_if_absent(&k, Bytes::from_static(b"2"), ttl(60))
            .await
    ));
    assert_eq!(must("get", store.get(&k).await).as_deref(), Some(&b"1"[..]));
}

/// `set_unless_newer` compares the frames' `cached_at`: an older replay never overwrites.
pub async fn store_set_unless_newer<S: FrameStore>(store: Arc<S>) {
    let k = key("newer");
    let now = unix_millis();
    let until = now + 60_000;
    assert!(must(
        "absent",
        store.set_unless_newer(&k, frame(now, "mid"), until).await
    ));
    assert!(!must(
        "older",
        store
            .set_unless_newer(&k, frame(now - 10, "old"), until)
            .await
    ));
    assert!(!must(
        "same",
        store.set_unless_newer(&k, frame(now, "same"), until).await
    ));
    assert!(must(
        "newer",
        store
            .set_unless_newer(&k, frame(now + 10, "new"), until)
            .await
    ));
    assert_eq!(
        must("get", store.get(&k).await),
        Some(frame(now + 10, "new"))
    );
    let foreign = key("foreign");
    must(
        "set",
        store
            .set(&foreign, Bytes::from_static(b"not a frame"), ttl(60))
            .await,
    );
    assert!(must(
        "over foreign",
        store
            .set_unless_newer(&foreign, frame(now, "f"), until)
            .await
    ));
    let expired = key("expired");
    assert!(!must(
        "past",
        store
            .set_unless_newer(&expired, frame(now, "p"), now - 1)
            .await
    ));
    assert_eq!(must("get", store.get(&expired).await), None);
}

/// `delete_if_unchanged` removes only the bytes that were read.
pub async fn store_delete_if_unchanged<S: FrameStore>(store: Arc<S>) {
    let k = key("cad");
    must(
        "set",
        store.set(&k, Bytes::from_static(b"seen"), ttl(60)).await,
    );
    assert!(!must(
        "changed",
        store
            .delete_if_unchanged(&k, Bytes::from_static(b"other"))
            .await
    ));
    assert!(must(
        "unchanged",
        store
            .delete_if_unchanged(&k, Bytes::from_static(b"seen"))
            .await
    ));
    assert_eq!(must("get", store.get(&k).await), None);
}

/// `delete_unless_newer` never removes a frame written after the delete was issued.
pub async fn store_delete_unless_newer<S: FrameStore>(store: Arc<S>) {
    let (old, new) = (key("old"), key("new"));
    let now = unix_millis();
    must("set", store.set(&old, frame(now - 100, "o"), ttl(60)).await);
    must("set", store.set(&new, frame(now + 100, "n"), ttl(60)).await);
    assert!(must("old", store.delete_unless_newer(&old, now).await));
    assert!(!must("new", store.delete_unless_newer(&new, now).await));
    assert!(must("get", store.get(&new).await).is_some());
    assert!(!must(
        "absent",
        store.delete_unless_newer(&key("absent"), now).await
    ));
}

/// Pages, followed to the end, cover every matching key (and no other).
pub async fn store_walk_pages_cover_everything_once<S: FrameStore>(store: Arc<S>) {
    let entries: Vec<(CacheKey, Bytes)> = (0..2500)
        .map(|i| (key(&format!("w:{i}")), Bytes::from_static(b"v")))
        .chain((0..10).map(|i| (key(&format!("x:{i}")), Bytes::from_static(b"v"))))
        .collect();
    must("set_many", store.set_many(&entries, ttl(60)).await);
    let pattern = must("pattern", KeyPattern::new("w:*"));
    let (mut seen, mut cursor, mut pages) = (HashSet::new(), None, 0);
    loop {
        let page = must("walk", store.walk(&pattern, cursor, WalkMode::Keys).await);
        pages += 1;
        assert!(
            page.entries.len() < 2500,
            "a page stays bounded: the walk must not return the whole namespace at once"
        );
        for entry in page.entries {
            assert!(entry.key.as_str().starts_with("w:"), "{}", entry.key);
            assert!(entry.frame.is_none(), "keys only");
            seen.insert(entry.key);
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
        assert!(pages < 10_000, "the walk must end");
    }
    assert_eq!(seen.len(), 2500);
    assert!(pages >= 2, "2,510 keys in one page: the walk is not paged");
}

/// A walk in frame mode returns the frames as stored, with their TTLs.
pub async fn store_walk_reads_frames_and_ttls<S: FrameStore>(store: Arc<S>) {
    let stored = frame(unix_millis(), "payload");
    must("set", store.set(&key("f:1"), stored.clone(), ttl(60)).await);
    let pattern = must("pattern", KeyPattern::new("f:*"));
    let mut found = Vec::new();
    let mut cursor = None;
    loop {
        let page = must("walk", store.walk(&pattern, cursor, WalkMode::Frames).await);
        found.extend(page.entries);
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].frame.as_ref(), Some(&stored), "byte for byte");
    let left = found[0].remaining_ttl.unwrap_or_default();
    assert!(left > Duration::from_secs(58), "{left:?}");
}

/// Pattern removal removes exactly the matching keys, reports each once, and counts them.
pub async fn store_remove_matching_counts_and_reports<S: FrameStore>(store: Arc<S>) {
    let entries: Vec<(CacheKey, Bytes)> = (0..1200)
        .map(|i| (key(&format!("qa:{i}")), Bytes::from_static(b"v")))
        .chain([(key("qa_long:1"), Bytes::from_static(b"v"))])
        .collect();
    must("set_many", store.set_many(&entries, ttl(60)).await);
    let pattern = must("pattern", KeyPattern::new("qa:*"));
    let mut reported = HashSet::new();
    let mut sink = |k: &CacheKey| {
        assert!(reported.insert(k.clone()), "{k} reported twice");
    };
    let removed = must("remove", store.remove_matching(&pattern, &mut sink).await);
    assert_eq!(removed, 1200);
    assert_eq!(reported.len(), 1200);
    assert!(must("get", store.get(&key("qa_long:1")).await).is_some());
    assert_eq!(must("get", store.get(&key("qa:7")).await), None);
    let mut none = |_: &CacheKey| panic!("nothing left to remove");
    assert_eq!(
        must("again", store.remove_matching(&pattern, &mut none).await),
        0
    );
}

/// Glob characters in keys are literal where escaped, and `*` never reaches past the namespace.
pub async fn store_patterns_stay_in_the_namespace<S: FrameStore>(store: Arc<S>) {
    for name in ["lit*eral", "lit?x", "lit[1]", "litmus"] {
        must(
            "set",
            store
                .set(&key(name), Bytes::from_static(b"v"), ttl(60))
                .await,
        );
    }
    let exact = must(
        "pattern",
        KeyPattern::new(cache_core::escape_glob("lit*eral")),
    );
    let mut count = |_: &CacheKey| {};
    assert_eq!(
        must("remove", store.remove_matching(&exact, &mut count).await),
        1
    );
    assert!(must("get", store.get(&key("litmus")).await).is_some());
    let info = store.info();
    assert!(!info.namespace.is_empty());
    assert_eq!(info.full_key(&key("a")), format!("{}:a", info.namespace));
}

/// A pattern with a segment count ([`KeyPattern::with_segments`]) walks and removes only keys of
/// that many `:`-separated segments, although its glob matches longer ones too.
pub async fn store_patterns_honour_their_segment_count<S: FrameStore>(store: Arc<S>) {
    for name in ["t:1", "t:acme:qa:1", "t:acme:qa:2", "u:1"] {
        must(
            "set",
            store
                .set(&key(name), Bytes::from_static(b"v"), ttl(60))
                .await,
        );
    }
    let pattern = must("pattern", KeyPattern::new("t:*")).with_segments(2);
    let page = must("walk", store.walk(&pattern, None, WalkMode::Keys).await);
    let mut walked: Vec<CacheKey> = page.entries.into_iter().map(|e| e.key).collect();
    let mut cursor = page.next;
    while let Some(next) = cursor {
        let page = must(
            "walk",
            store.walk(&pattern, Some(next), WalkMode::Keys).await,
        );
        walked.extend(page.entries.into_iter().map(|e| e.key));
        cursor = page.next;
    }
    assert_eq!(walked, vec![key("t:1")]);
    let mut count = |_: &CacheKey| {};
    assert_eq!(
        must("remove", store.remove_matching(&pattern, &mut count).await),
        1
    );
    assert!(must("get", store.get(&key("t:acme:qa:1")).await).is_some());
    assert!(must("get", store.get(&key("u:1")).await).is_some());
}

/// A removal is remembered for the store's horizon: the key reads as absent everywhere (get,
/// TTL, walks), no conditional write (replay, restore, a move) lands over it, and a plain write
/// replaces it.
pub async fn store_removals_are_remembered_against_conditional_writes<S: FrameStore>(
    store: Arc<S>,
) {
    let (k, other) = (key("gone"), key("gone:pattern"));
    let now = unix_millis();
    let older = frame(now - 1000, "older");
    for name in [&k, &other] {
        must("set", store.set(name, frame(now, "v"), ttl(60)).await);
    }
    assert!(must("delete", store.delete(&k).await));
    assert!(
        !must("delete again", store.delete(&k).await),
        "a tombstone holds no value"
    );
    let pattern = must("pattern", KeyPattern::new("gone:*"));
    let mut count = |_: &CacheKey| {};
    assert_eq!(
        must("remove", store.remove_matching(&pattern, &mut count).await),
        1
    );
    assert_eq!(
        must(
            "remove again",
            store.remove_matching(&pattern, &mut count).await
        ),
        0
    );
    for removed in [&k, &other] {
        assert_eq!(must("get", store.get(removed).await), None);
        assert_eq!(must("ttl", store.remaining_ttl(removed).await), None);
        assert!(!must(
            "nx",
            store
                .set_if_absent(removed, frame(now, "nx"), ttl(60))
                .await
        ));
        assert!(!must(
            "replay",
            store
                .set_unless_newer(removed, older.clone(), now + 60_000)
                .await
        ));
    }
    let page = must(
        "walk",
        store.walk(&KeyPattern::all(), None, WalkMode::Frames).await,
    );
    assert!(page.entries.iter().all(|e| e.key != k && e.key != other));
    let page = must(
        "walk",
        store.walk(&KeyPattern::all(), None, WalkMode::Keys).await,
    );
    assert!(page.entries.iter().all(|e| e.key != k && e.key != other));
    // A replayed removal of a key the store never held leaves a record too.
    let never = key("gone:never");
    assert!(!must(
        "replayed removal",
        store.delete_unless_newer(&never, now).await
    ));
    assert!(!must(
        "replay over it",
        store.set_unless_newer(&never, older, now + 60_000).await
    ));
    // A fresh write is no replay: it replaces the record.
    must("set", store.set(&k, frame(now, "new"), ttl(60)).await);
    assert!(must("get", store.get(&k).await).is_some());
}

/// `restore_many` writes by its rule, keeps each entry's own expiry, skips entries already
/// expired, and never lands over a removal under any rule.
pub async fn store_restore_many_follows_its_rule<S: FrameStore>(store: Arc<S>) {
    let now = unix_millis();
    let until = now + 120_000;
    let (absent, held, removed, late) = (
        key("r:absent"),
        key("r:held"),
        key("r:removed"),
        key("r:late"),
    );
    let current = frame(now, "current");
    for name in [&held, &removed] {
        must("set", store.set(name, current.clone(), ttl(60)).await);
    }
    assert!(must("delete", store.delete(&removed).await));
    let entry = |k: &CacheKey, f: &Bytes, at: u64| RestoreEntry::new(k.clone(), f.clone(), at);
    let (older, newer) = (frame(now - 1000, "older"), frame(now + 1000, "newer"));

    let batch = [
        entry(&absent, &older, until),
        entry(&held, &older, until),
        entry(&removed, &older, until),
        entry(&late, &older, now.saturating_sub(1)),
    ];
    let written = must(
        "restore",
        store.restore_many(&batch, RestoreRule::IfAbsent).await,
    );
    assert_eq!(written, [true, false, false, false], "if absent");
    assert_eq!(must("get", store.get(&held).await), Some(current.clone()));
    assert_eq!(
        must("get", store.get(&late).await),
        None,
        "expired entries are skipped"
    );
    let left = must("ttl", store.remaining_ttl(&absent).await).unwrap_or_default();
    assert!(
        left > Duration::from_secs(118) && left <= Duration::from_secs(120),
        "the entry's own expiry: {left:?}"
    );

    let batch = [entry(&held, &older, until), entry(&removed, &newer, until)];
    let written = must(
        "restore",
        store.restore_many(&batch, RestoreRule::UnlessNewer).await,
    );
    assert_eq!(
        written,
        [false, false],
        "unless newer: older loses, removed stays"
    );
    let batch = [entry(&held, &newer, until)];
    let written = must(
        "restore",
        store.restore_many(&batch, RestoreRule::UnlessNewer).await,
    );
    assert_eq!(written, [true], "unless newer: newer wins");
    assert_eq!(must("get", store.get(&held).await), Some(newer.clone()));

    let batch = [entry(&held, &older, until), entry(&removed, &older, until)];
    let written = must(
        "restore",
        store.restore_many(&batch, RestoreRule::Replace).await,
    );
    assert_eq!(written, [true, false], "replace: anything but a removal");
    assert_eq!(must("get", store.get(&held).await), Some(older));
    assert_eq!(must("get", store.get(&removed).await), None);
    assert!(must("empty", store.restore_many(&[], RestoreRule::Replace).await).is_empty());

    // A pattern removal covers keys it never met: an entry written before it stays out, one
    // written clearly after it (past the clock margin) goes in.
    let mut ignore = |_: &CacheKey| {};
    let pattern = must("pattern", KeyPattern::new("swept:*"));
    must("remove", store.remove_matching(&pattern, &mut ignore).await);
    let (never, later) = (key("swept:never"), key("swept:later"));
    let after = frame(now + 60_000, "written after the removal");
    let batch = [
        entry(&never, &frame(now - 1000, "old"), until),
        entry(&later, &after, until),
    ];
    for rule in [RestoreRule::IfAbsent, RestoreRule::Replace] {
        let written = must("restore", store.restore_many(&batch, rule).await);
        assert!(
            !written[0],
            "{rule:?}: a removal recorded after the entry was written"
        );
    }
    assert_eq!(must("get", store.get(&later).await), Some(after));
}

/// `health` answers, `info` describes the store, `is_available` holds for a running store.
pub async fn store_health_and_info<S: FrameStore>(store: Arc<S>) {
    assert!(store.is_available());
    let health = store.health().await;
    assert!(
        matches!(health.l2, L2Health::Connected { .. }),
        "{health:?}"
    );
    assert!(store.info().max_frame_size > 0);
    let report = store.shutdown(Duration::from_millis(10)).await;
    assert_eq!(report.remaining, 0);
}
