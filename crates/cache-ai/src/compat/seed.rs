//! The wrapper's counters, and the Python service's call names (deprecated aliases of the new
//! calls).

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{CacheCompatibilityWrapper, CompatibilityStats, LegacyRequest};
use crate::legacy::LegacyRefusal;
use crate::response::CachedResponse;
use cache_core::Result;

impl<T> CacheCompatibilityWrapper<T>
where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    /// The wrapper's counters.
    pub fn stats(&self) -> CompatibilityStats {
        let c = &self.counters;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        CompatibilityStats {
            misses_checked: load(&c.misses_checked),
            imported_reads: load(&c.imported_reads),
            imported_hits: load(&c.imported_hits),
            legacy_reads: load(&c.legacy_reads),
            legacy_keys_read: load(&c.legacy_keys_read),
            read_through_imports: load(&c.read_through_imports),
            blocked: load(&c.blocked),
            refused: LegacyRefusal::ALL
                .iter()
                .map(|r| (r.as_str(), load(&c.refused[r.index()])))
                .filter(|(_, n)| *n > 0)
                .collect(),
            unconvertible: load(&c.unconvertible),
            errors: load(&c.errors),
        }
    }

    /// The Python name of [`get`](Self::get).
    ///
    /// # Errors
    /// As [`get`](Self::get).
    #[deprecated(note = "use `get` with a `LegacyRequest`")]
    pub async fn get_cached_response(
        &self,
        text: &str,
        operation: &str,
        options_json: Option<&str>,
        question: Option<&str>,
    ) -> Result<Option<CachedResponse<T>>> {
        self.get(&request(text, operation, options_json, question))
            .await
    }

    /// The Python name of [`put`](Self::put).
    ///
    /// # Errors
    /// As [`put`](Self::put).
    #[deprecated(note = "use `put` with a `LegacyRequest`")]
    pub async fn cache_response(
        &self,
        text: &str,
        operation: &str,
        options_json: Option<&str>,
        response: T,
        question: Option<&str>,
    ) -> Result<bool> {
        self.put(&request(text, operation, options_json, question), response)
            .await
    }

    /// The Python name of the cache's statistics.
    #[deprecated(note = "use `cache().stats()` and `stats()`")]
    pub fn get_cache_stats(&self) -> crate::AiCacheStats {
        self.cache.stats()
    }

    /// The Python name of the overall hit ratio: hits / reads over every operation, 0 without
    /// reads.
    #[deprecated(note = "use `cache().stats()`")]
    pub fn get_cache_hit_ratio(&self) -> f64 {
        let stats = self.cache.stats();
        let (hits, reads) = stats
            .by_operation
            .values()
            .fold((0u64, 0u64), |(h, r), op| {
                (h + op.hits(), r + op.hits() + op.misses)
            });
        #[allow(clippy::cast_precision_loss, reason = "a ratio of counters")]
        let ratio = if reads == 0 {
            0.0
        } else {
            hits as f64 / reads as f64
        };
        ratio
    }
}

fn request<'a>(
    text: &'a str,
    operation: &'a str,
    options_json: Option<&'a str>,
    question: Option<&'a str>,
) -> LegacyRequest<'a> {
    LegacyRequest {
        text,
        operation,
        options_json,
        question,
    }
}
