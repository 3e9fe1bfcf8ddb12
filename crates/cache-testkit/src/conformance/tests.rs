//! Proves that every conformance case can fail: each runs against a backend with one planted
//! defect (many of them the Python original's bugs) and must panic.

use std::sync::Mutex;

use cache_core::{Capabilities, Result};
use cache_memory::{InMemoryCache, MemoryCacheConfig};

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    CorruptValues,
    KeepFirstWrite,
    PhantomValues,
    FalsyIsMiss,
    IgnoreTtl,
    NoRemainingTtl,
    DeleteAlwaysTrue,
    ExistsAlwaysFalse,
    SubstringPatterns,
    DeletePatternCountsZero,
    DropLargeValues,
    AcceptOversized,
    Utf8Lossy,
    LastWriteWins,
    ClearIsNoop,
    GetManySkipsMisses,
}

struct Faulty {
    inner: InMemoryCache<Bytes>,
    fault: Fault,
    last_write: Mutex<Option<Bytes>>,
}

impl Faulty {
    fn new(fault: Fault) -> Self {
        let config = MemoryCacheConfig::default().with_max_entries(10_000);
        Self {
            inner: InMemoryCache::new(config).unwrap(),
            fault,
            last_write: Mutex::new(None),
        }
    }
}

impl CacheInterface for Faulty {
    fn capabilities(&self) -> Capabilities {
        if self.fault == Fault::AcceptOversized {
            Capabilities::new(1024)
        } else {
            self.inner.capabilities()
        }
    }

    async fn get(&self, key: &CacheKey) -> Result<Option<Bytes>> {
        let value = self.inner.get(key).await?;
        Ok(match (self.fault, value) {
            (Fault::CorruptValues, Some(v)) if !v.is_empty() => {
                Some(Bytes::from(v.iter().map(|b| b ^ 1).collect::<Vec<u8>>()))
            }
            (Fault::PhantomValues, None) => Some(Bytes::new()),
            (Fault::FalsyIsMiss, Some(v)) if [&b""[..], b"0", b"[]", b"null"].contains(&&v[..]) => {
                None
            }
            (Fault::Utf8Lossy, Some(v)) => {
                Some(Bytes::from(String::from_utf8_lossy(&v).into_owned()))
            }
            (Fault::LastWriteWins, Some(_)) => self.last_write.lock().unwrap().clone(),
            (_, value) => value,
        })
    }

    async fn set(&self, key: &CacheKey, value: Bytes, ttl: Option<Ttl>) -> Result<()> {
        match self.fault {
            Fault::KeepFirstWrite if self.inner.contains(key.as_str()) => return Ok(()),
            Fault::DropLargeValues if value.len() > 64 * 1024 => return Ok(()),
            Fault::IgnoreTtl => return self.inner.set(key, value, Ttl::from_secs(3600).ok()).await,
            Fault::LastWriteWins => *self.last_write.lock().unwrap() = Some(value.clone()),
            _ => {}
        }
        self.inner.set(key, value, ttl).await
    }

    async fn delete(&self, key: &CacheKey) -> Result<bool> {
        let existed = self.inner.delete(key).await?;
        Ok(existed || self.fault == Fault::DeleteAlwaysTrue)
    }

    async fn exists(&self, key: &CacheKey) -> Result<bool> {
        Ok(self.fault != Fault::ExistsAlwaysFalse && self.inner.exists(key).await?)
    }

    async fn remaining_ttl(&self, key: &CacheKey) -> Result<Option<Duration>> {
        if self.fault == Fault::NoRemainingTtl {
            return Ok(None);
        }
        self.inner.remaining_ttl(key).await
    }

    async fn clear(&self) -> Result<u64> {
        if self.fault == Fault::ClearIsNoop {
            return Ok(u64::try_from(self.inner.keys_matching(&KeyPattern::all()).len()).unwrap());
        }
        self.inner.clear().await
    }

    async fn scan(&self, pattern: &KeyPattern) -> Result<Vec<CacheKey>> {
        if self.fault == Fault::SubstringPatterns {
            let needle = pattern.as_str().trim_matches('*').to_string();
            let all = self.inner.keys_matching(&KeyPattern::all());
            return Ok(all
                .into_iter()
                .filter(|k| k.as_str().contains(&needle))
                .collect());
        }
        self.inner.scan(pattern).await
    }

    async fn delete_pattern(&self, pattern: &KeyPattern) -> Result<u64> {
        let removed = self.inner.delete_pattern(pattern).await?;
        Ok(if self.fault == Fault::DeletePatternCountsZero {
            0
        } else {
            removed
        })
    }

    async fn get_many(&self, keys: &[CacheKey]) -> Result<Vec<Option<Bytes>>> {
        let values = self.inner.get_many(keys).await?;
        if self.fault == Fault::GetManySkipsMisses {
            return Ok(values.into_iter().filter(Option::is_some).collect());
        }
        Ok(values)
    }

    async fn set_many(&self, entries: &[(CacheKey, Bytes)], ttl: Option<Ttl>) -> Result<()> {
        self.inner.set_many(entries, ttl).await
    }
}

macro_rules! must_catch {
    ($($case:ident => $fault:ident),* $(,)?) => {
        const COVERED: &[&str] = &[$(stringify!($case)),*];
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let backend = Arc::new(Faulty::new(Fault::$fault));
                let outcome = tokio::spawn(super::$case(backend)).await;
                assert!(
                    outcome.is_err_and(|e| e.is_panic()),
                    "case `{}` passed against a backend with {:?}",
                    stringify!($case),
                    Fault::$fault
                );
            }
        )*
    };
}

must_catch! {
    get_set_roundtrip => CorruptValues,
    overwrite_replaces => KeepFirstWrite,
    missing_key_is_a_miss => PhantomValues,
    falsy_values_are_hits => FalsyIsMiss,
    ttl_expires_entries => IgnoreTtl,
    remaining_ttl_is_reported => NoRemainingTtl,
    delete_reports_existence => DeleteAlwaysTrue,
    exists_tracks_entries => ExistsAlwaysFalse,
    patterns_with_glob_characters_in_keys => SubstringPatterns,
    delete_pattern_counts => DeletePatternCountsZero,
    large_value_roundtrip => DropLargeValues,
    oversized_value_is_refused => AcceptOversized,
    binary_values_roundtrip => Utf8Lossy,
    concurrent_tasks => LastWriteWins,
    clear_removes_everything => ClearIsNoop,
    get_many_and_set_many => GetManySkipsMisses,
}

#[test]
fn every_case_has_a_planted_defect() {
    assert_eq!(COVERED, CASES);
}
