//! Verification: two stores compared entry by entry (frame checksums and TTLs), page by page,
//! optionally on a sample.

use std::time::{Duration, Instant};

use cache_core::{CacheKey, DynFrameStore, KeyPattern, Result, WalkCursor, WalkMode};

use crate::CacheMigrationManager;
use crate::progress::{Phase, Progress, ProgressSink};
use crate::report::{TtlDelta, VerifyResult};

/// At most this many examples and TTL deltas are kept in a result.
const MAX_EXAMPLES: usize = 100;

/// What [`CacheMigrationManager::verify`] compares.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifyOptions {
    /// The keys compared.
    pub filter: KeyPattern,
    /// Compare at most this many entries from each side (the first ones the walks return);
    /// `None`: all of them.
    pub sample: Option<u64>,
    /// TTLs differing by at most this much match.
    pub ttl_tolerance: Duration,
}

impl Default for VerifyOptions {
    /// Every key, no sample, TTLs within 5 seconds.
    fn default() -> Self {
        Self {
            filter: KeyPattern::all(),
            sample: None,
            ttl_tolerance: Duration::from_secs(5),
        }
    }
}

impl VerifyOptions {
    /// Compares at most `sample` entries from each side.
    #[must_use]
    pub fn with_sample(mut self, sample: u64) -> Self {
        self.sample = Some(sample);
        self
    }

    /// Compares the keys matching `filter`.
    #[must_use]
    pub fn with_filter(mut self, filter: KeyPattern) -> Self {
        self.filter = filter;
        self
    }

    /// Lets TTLs differ by `tolerance`.
    #[must_use]
    pub fn with_ttl_tolerance(mut self, tolerance: Duration) -> Self {
        self.ttl_tolerance = tolerance;
        self
    }
}

fn note(list: &mut Vec<String>, key: &CacheKey) {
    if list.len() < MAX_EXAMPLES {
        list.push(key.as_str().to_owned());
    }
}

fn signed_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl CacheMigrationManager {
    /// Compares `source` with `target`: every source entry (or a sample) by its frame's bytes
    /// and remaining TTL, then the target's entries for keys the source lacks. Memory stays
    /// bounded by a walk page. Frames re-sealed for another namespace (encrypted frames moved
    /// across namespaces) differ by design and count as mismatched.
    ///
    /// # Errors
    /// Either store's errors.
    pub async fn verify(
        &self,
        source: &dyn DynFrameStore,
        target: &dyn DynFrameStore,
        options: &VerifyOptions,
    ) -> Result<VerifyResult> {
        let started = Instant::now();
        let limit = options.sample.unwrap_or(u64::MAX);
        let mut result = VerifyResult::default();
        let mut progress = Progress::new(Phase::Verify);
        progress.estimated_entries = options.sample;
        let mut cursor: Option<WalkCursor> = None;
        'source: loop {
            let page = source
                .walk(&options.filter, cursor.take(), WalkMode::Frames)
                .await?;
            // The page's TTLs are as of its walk; each target TTL is read later, one by one, so
            // the time since the walk is taken off the source's before the two are compared.
            let walked_at = Instant::now();
            let keys: Vec<CacheKey> = page.entries.iter().map(|e| e.key.clone()).collect();
            let theirs = target.get_many(&keys).await?;
            for (entry, their) in page.entries.iter().zip(theirs) {
                if result.keys_checked >= limit {
                    break 'source;
                }
                let Some(ours) = &entry.frame else { continue };
                result.keys_checked += 1;
                progress.bytes += ours.len() as u64;
                let Some(their) = their else {
                    result.missing_target += 1;
                    note(&mut result.examples, &entry.key);
                    continue;
                };
                if *ours != their {
                    result.keys_mismatched += 1;
                    note(&mut result.examples, &entry.key);
                    continue;
                }
                result.keys_matched += 1;
                let since_walk = walked_at.elapsed();
                let (Some(our_ttl), Some(their_ttl)) =
                    (entry.remaining_ttl, target.remaining_ttl(&entry.key).await?)
                else {
                    continue;
                };
                let our_ttl = our_ttl.saturating_sub(since_walk);
                let delta = signed_ms(our_ttl) - signed_ms(their_ttl);
                if u128::from(delta.unsigned_abs()) > options.ttl_tolerance.as_millis() {
                    result.ttl_mismatched += 1;
                    if result.ttl_deltas.len() < MAX_EXAMPLES {
                        result.ttl_deltas.push(TtlDelta {
                            key: entry.key.as_str().to_owned(),
                            delta_ms: delta,
                        });
                    }
                }
            }
            progress.entries = result.keys_checked;
            ProgressSink::report(self.progress.as_ref(), &progress);
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        // The other direction: what the target holds and the source does not.
        let mut seen = 0u64;
        let mut cursor: Option<WalkCursor> = None;
        'target: loop {
            let page = target
                .walk(&options.filter, cursor.take(), WalkMode::Keys)
                .await?;
            let keys: Vec<CacheKey> = page.entries.into_iter().map(|e| e.key).collect();
            let ours = source.get_many(&keys).await?;
            for (key, ours) in keys.iter().zip(ours) {
                if seen >= limit {
                    break 'target;
                }
                seen += 1;
                if ours.is_none() {
                    result.missing_source += 1;
                    note(&mut result.examples, key);
                }
            }
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        result.verify_time = started.elapsed();
        Ok(result)
    }
}
