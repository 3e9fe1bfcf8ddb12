//! The backend contract as executable cases.
//!
//! Every case takes the backend under test behind an `Arc` and panics (fails the test) when the
//! backend breaks the contract documented on [`CacheInterface`]. Cases read the backend's
//! [`Capabilities`](cache_core::Capabilities) and adapt (for example the largest value tried).
//! Give every case a fresh, empty backend: `clear` and pattern cases remove everything they see.
//!
//! Run them all for your backend with [`conformance_suite!`](crate::conformance_suite):
//!
//! ```text
//! async fn setup() -> (MyBackend, ()) { (MyBackend::new(), ()) }
//! cache_testkit::conformance_suite!(setup);
//! ```
//! `setup` returns the backend and a guard kept alive for the test (for example a
//! [`RedisServer`](crate::RedisServer)).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cache_core::{CacheInterface, CacheKey, ErrorKind, KeyPattern, Ttl, escape_glob};

/// Calls `$crate::$callback!($($args)* ; case, case, …)` with every conformance case: the one list of
/// cases that [`conformance_suite!`](crate::conformance_suite) and [`CASES`] both come from.
#[doc(hidden)]
#[macro_export]
macro_rules! __for_each_conformance_case {
    ($callback:ident; $($args:tt)*) => {
        $crate::$callback! {
            $($args)*;
            get_set_roundtrip,
            overwrite_replaces,
            missing_key_is_a_miss,
            falsy_values_are_hits,
            ttl_expires_entries,
            remaining_ttl_is_reported,
            delete_reports_existence,
            exists_tracks_entries,
            patterns_with_glob_characters_in_keys,
            delete_pattern_counts,
            large_value_roundtrip,
            oversized_value_is_refused,
            binary_values_roundtrip,
            concurrent_tasks,
            clear_removes_everything,
            get_many_and_set_many
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __case_names {
    (; $($case:ident),*) => {
        &[$(stringify!($case)),*]
    };
}

/// The names of every case, in the order [`conformance_suite!`](crate::conformance_suite) runs them.
pub const CASES: &[&str] = crate::__for_each_conformance_case!(__case_names;);

/// Generates one `#[tokio::test]` per conformance case.
///
/// `$setup` names an `async fn() -> (B, G)`: the backend under test and a guard dropped at the end
/// of the test. The calling crate needs `tokio` with the `macros` and `rt-multi-thread` features.
#[macro_export]
macro_rules! conformance_suite {
    ($setup:path) => {
        $crate::__for_each_conformance_case!(__conformance_cases; $setup);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_cases {
    ($setup:path; $($case:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let (backend, _guard) = $setup().await;
                $crate::conformance::$case(::std::sync::Arc::new(backend)).await;
            }
        )*
    };
}

fn key(s: &str) -> CacheKey {
    CacheKey::new(s).unwrap_or_else(|e| panic!("test key {s:?}: {e}"))
}

fn ttl_secs(secs: u64) -> Option<Ttl> {
    Ttl::from_secs(secs).ok()
}

fn must<T>(what: &str, result: cache_core::Result<T>) -> T {
    result.unwrap_or_else(|e| panic!("{what} failed: {e} ({e:?})"))
}

/// A value written is read back unchanged.
pub async fn get_set_roundtrip<C: CacheInterface>(cache: Arc<C>) {
    let k = key("roundtrip");
    must(
        "set",
        cache
            .set(&k, Bytes::from_static(b"value-1"), ttl_secs(60))
            .await,
    );
    let got = must("get", cache.get(&k).await);
    assert_eq!(got.as_deref(), Some(&b"value-1"[..]));
}

/// A second write replaces the first.
pub async fn overwrite_replaces<C: CacheInterface>(cache: Arc<C>) {
    let k = key("overwrite");
    must(
        "set",
        cache
            .set(&k, Bytes::from_static(b"first"), ttl_secs(60))
            .await,
    );
    must(
        "set",
        cache
            .set(&k, Bytes::from_static(b"second"), ttl_secs(60))
            .await,
    );
    assert_eq!(
        must("get", cache.get(&k).await).as_deref(),
        Some(&b"second"[..])
    );
}

/// A key never written is `Ok(None)`.
pub async fn missing_key_is_a_miss<C: CacheInterface>(cache: Arc<C>) {
    assert_eq!(must("get", cache.get(&key("never-written")).await), None);
}

/// Empty and "falsy" values are hits, not misses.
pub async fn falsy_values_are_hits<C: CacheInterface>(cache: Arc<C>) {
    for (name, value) in [
        ("empty", &b""[..]),
        ("zero", b"0"),
        ("list", b"[]"),
        ("null", b"null"),
    ] {
        let k = key(name);
        must(
            "set",
            cache
                .set(&k, Bytes::copy_from_slice(value), ttl_secs(60))
                .await,
        );
        assert_eq!(
            must("get", cache.get(&k).await).as_deref(),
            Some(value),
            "{name} must be a hit"
        );
    }
}

/// An entry is gone once its TTL has passed.
pub async fn ttl_expires_entries<C: CacheInterface>(cache: Arc<C>) {
    let k = key("short-lived");
    let ttl = Ttl::from_millis(800).ok();
    must("set", cache.set(&k, Bytes::from_static(b"v"), ttl).await);
    assert!(
        must("get", cache.get(&k).await).is_some(),
        "hit before expiry"
    );
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(must("get", cache.get(&k).await), None, "miss after expiry");
    assert!(!must("exists", cache.exists(&k).await));
}

/// `remaining_ttl` is within the TTL written, and `None` for a missing key.
pub async fn remaining_ttl_is_reported<C: CacheInterface>(cache: Arc<C>) {
    let k = key("ttl");
    must(
        "set",
        cache.set(&k, Bytes::from_static(b"v"), ttl_secs(60)).await,
    );
    let left = must("remaining_ttl", cache.remaining_ttl(&k).await)
        .unwrap_or_else(|| panic!("an existing key has a TTL"));
    assert!(
        left > Duration::from_secs(50) && left <= Duration::from_secs(60),
        "{left:?}"
    );
    assert_eq!(
        must("remaining_ttl", cache.remaining_ttl(&key("absent")).await),
        None
    );
}

/// `delete` returns whether the key existed, and a missing key is not an error.
pub async fn delete_reports_existence<C: CacheInterface>(cache: Arc<C>) {
    let k = key("to-delete");
    assert!(!must("delete missing", cache.delete(&k).await));
    must(
        "set",
        cache.set(&k, Bytes::from_static(b"v"), ttl_secs(60)).await,
    );
    assert!(must("delete", cache.delete(&k).await));
    assert_eq!(must("get", cache.get(&k).await), None);
    assert!(!must("delete again", cache.delete(&k).await));
}

/// `exists` follows writes and deletes.
pub async fn exists_tracks_entries<C: CacheInterface>(cache: Arc<C>) {
    let k = key("exists");
    assert!(!must("exists", cache.exists(&k).await));
    must("set", cache.set(&k, Bytes::new(), ttl_secs(60)).await);
    assert!(must("exists", cache.exists(&k).await));
    must("delete", cache.delete(&k).await);
    assert!(!must("exists", cache.exists(&k).await));
}

/// Keys containing glob characters are matched literally once escaped, and patterns are globs.
pub async fn patterns_with_glob_characters_in_keys<C: CacheInterface>(cache: Arc<C>) {
    let tricky = ["what is [a]*?", r"back\slash*", "^caret-[x-y]", "what is a"];
    for k in tricky {
        must(
            "set",
            cache
                .set(&key(k), Bytes::from_static(b"v"), ttl_secs(60))
                .await,
        );
    }
    for k in tricky {
        let literal = KeyPattern::new(escape_glob(k)).unwrap_or_else(|e| panic!("{e}"));
        let found = must("scan", cache.scan(&literal).await);
        assert_eq!(found, vec![key(k)], "escaped {k:?} matches only itself");
    }
    let glob = KeyPattern::new("what is *").unwrap_or_else(|e| panic!("{e}"));
    let mut found = must("scan", cache.scan(&glob).await);
    found.sort();
    assert_eq!(found, vec![key("what is [a]*?"), key("what is a")]);
    let class = KeyPattern::new("what is [ab]").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        must("scan", cache.scan(&class).await),
        vec![key("what is a")]
    );
    let literal = KeyPattern::new(escape_glob("what is [a]*?")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        must("delete_pattern", cache.delete_pattern(&literal).await),
        1
    );
    assert!(must("exists", cache.exists(&key("what is a")).await));
}

/// `delete_pattern` removes exactly the matching keys and counts each once.
pub async fn delete_pattern_counts<C: CacheInterface>(cache: Arc<C>) {
    for i in 0..40 {
        must(
            "set",
            cache
                .set(
                    &key(&format!("op:sum:{i}")),
                    Bytes::from_static(b"v"),
                    ttl_secs(60),
                )
                .await,
        );
    }
    for i in 0..10 {
        must(
            "set",
            cache
                .set(
                    &key(&format!("op:summarize:{i}")),
                    Bytes::from_static(b"v"),
                    ttl_secs(60),
                )
                .await,
        );
    }
    let pattern = KeyPattern::new("op:sum:*").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(must("scan", cache.scan(&pattern).await).len(), 40);
    assert_eq!(
        must("delete_pattern", cache.delete_pattern(&pattern).await),
        40
    );
    assert_eq!(
        must("delete_pattern again", cache.delete_pattern(&pattern).await),
        0
    );
    let rest = KeyPattern::new("op:*").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        must("scan", cache.scan(&rest).await).len(),
        10,
        "op:summarize:* survive"
    );
}

/// A 1 MiB value (or the backend's maximum, if smaller) round-trips.
pub async fn large_value_roundtrip<C: CacheInterface>(cache: Arc<C>) {
    let size = (1024 * 1024).min(cache.capabilities().max_value_size);
    let value: Bytes = (0..size)
        .map(|i| u8::try_from(i % 251).unwrap_or(0))
        .collect::<Vec<u8>>()
        .into();
    let k = key("large");
    must("set", cache.set(&k, value.clone(), ttl_secs(60)).await);
    assert_eq!(must("get", cache.get(&k).await), Some(value));
}

/// A value over the declared maximum is refused with `CapacityExceeded`.
pub async fn oversized_value_is_refused<C: CacheInterface>(cache: Arc<C>) {
    let max = cache.capabilities().max_value_size;
    let k = key("oversized");
    let err = cache
        .set(&k, Bytes::from(vec![0u8; max + 1]), ttl_secs(60))
        .await
        .err()
        .unwrap_or_else(|| {
            panic!(
                "a value of max_value_size + 1 ({}) must be refused",
                max + 1
            )
        });
    assert_eq!(err.kind(), ErrorKind::CapacityExceeded, "{err}");
    assert_eq!(must("get", cache.get(&k).await), None);
}

/// Every byte value survives, including bytes that are not UTF-8.
pub async fn binary_values_roundtrip<C: CacheInterface>(cache: Arc<C>) {
    let all: Bytes = (0..=255u8)
        .chain((0..=255u8).rev())
        .collect::<Vec<u8>>()
        .into();
    let k = key("binary");
    must("set", cache.set(&k, all.clone(), ttl_secs(60)).await);
    assert_eq!(must("get", cache.get(&k).await), Some(all));
}

/// 100 tasks write and read concurrently without losing or mixing values.
pub async fn concurrent_tasks<C: CacheInterface + 'static>(cache: Arc<C>) {
    let shared = key("shared");
    must(
        "set",
        cache
            .set(&shared, Bytes::from_static(b"common"), ttl_secs(60))
            .await,
    );
    let mut tasks = Vec::new();
    for i in 0..100u32 {
        let cache = Arc::clone(&cache);
        let shared = shared.clone();
        tasks.push(tokio::spawn(async move {
            let own = key(&format!("task:{i}"));
            let value = Bytes::from(format!("value-{i}"));
            must("set", cache.set(&own, value.clone(), ttl_secs(60)).await);
            for _ in 0..5 {
                assert_eq!(must("get own", cache.get(&own).await), Some(value.clone()));
                assert_eq!(
                    must("get shared", cache.get(&shared).await).as_deref(),
                    Some(&b"common"[..])
                );
            }
        }));
    }
    for task in tasks {
        task.await.unwrap_or_else(|e| panic!("task panicked: {e}"));
    }
    let all = KeyPattern::new("task:*").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(must("scan", cache.scan(&all).await).len(), 100);
}

/// `clear` removes every entry and reports how many.
pub async fn clear_removes_everything<C: CacheInterface>(cache: Arc<C>) {
    for i in 0..25 {
        must(
            "set",
            cache
                .set(
                    &key(&format!("c{i}")),
                    Bytes::from_static(b"v"),
                    ttl_secs(60),
                )
                .await,
        );
    }
    assert_eq!(must("clear", cache.clear().await), 25);
    assert!(must("scan", cache.scan(&KeyPattern::all()).await).is_empty());
    assert_eq!(must("get", cache.get(&key("c0")).await), None);
}

/// `set_many` writes every entry; `get_many` answers per key, in order, with misses as `None`.
pub async fn get_many_and_set_many<C: CacheInterface>(cache: Arc<C>) {
    let entries: Vec<(CacheKey, Bytes)> = (0..10)
        .map(|i| (key(&format!("m{i}")), Bytes::from(format!("v{i}"))))
        .collect();
    must("set_many", cache.set_many(&entries, ttl_secs(60)).await);
    let keys = vec![key("m0"), key("absent"), key("m9"), key("m0")];
    let got = must("get_many", cache.get_many(&keys).await);
    assert_eq!(
        got,
        vec![
            Some(Bytes::from("v0")),
            None,
            Some(Bytes::from("v9")),
            Some(Bytes::from("v0"))
        ]
    );
    assert!(must("get_many empty", cache.get_many(&[]).await).is_empty());
}

#[cfg(test)]
mod tests;
