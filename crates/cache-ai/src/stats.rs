//! The AI cache's counters: per operation, per text tier, and the snapshot the reports are built
//! from.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cache_core::{StripedCounter, Usage};
use cache_memory::{L2Stats, MemoryCacheStats};
use cache_monitoring::{LatencySummary, LatencyWindow};

use crate::keys::KeyGenerationStats;

/// Counters per operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct OperationStats {
    /// Reads answered by L1.
    pub l1_hits: u64,
    /// Reads answered by Redis.
    pub l2_hits: u64,
    /// Reads that found nothing.
    pub misses: u64,
    /// Reads that failed (a store error; counted as misses of their text tier).
    pub failures: u64,
    /// Answers stored.
    pub stores: u64,
    /// Answers the admission rule refused.
    pub refused: u64,
    /// Redis hits promoted into L1.
    pub promotions: u64,
    /// Entries removed by invalidation.
    pub invalidated: u64,
    /// Answers computed by `get_or_compute` (the model was called).
    pub computed: u64,
    /// Time spent computing them, in microseconds.
    pub compute_micros: u64,
    /// Tokens the computations used (with a usage meter, see
    /// the builder's `usage_meter`).
    pub tokens_used: u64,
    /// Tokens the hits spared (with a usage meter).
    pub tokens_saved: u64,
    /// What the computations cost, in millionths of the caller's currency (with a usage meter).
    pub cost_used_micros: u64,
    /// What the hits spared, in millionths of the caller's currency (with a usage meter).
    pub cost_saved_micros: u64,
    /// Stale answers `get_or_compute` served because computing failed or took too long.
    pub stale_served: u64,
}

impl OperationStats {
    /// The mean time one computation took, or zero before the first.
    pub fn mean_compute_time(&self) -> Duration {
        Duration::from_micros(self.compute_micros.checked_div(self.computed).unwrap_or(0))
    }

    /// Time saved: every hit spared one computation of the mean observed cost. Zero until an
    /// answer of this operation has been computed here.
    pub fn time_saved(&self) -> Duration {
        self.mean_compute_time()
            .saturating_mul(u32::try_from(self.hits()).unwrap_or(u32::MAX))
    }

    /// What the hits spared, in the caller's currency (with a usage meter).
    pub fn cost_saved(&self) -> f64 {
        Usage::amount_of_micros(self.cost_saved_micros)
    }

    /// What the computations cost, in the caller's currency (with a usage meter).
    pub fn cost_used(&self) -> f64 {
        Usage::amount_of_micros(self.cost_used_micros)
    }

    /// All hits.
    pub fn hits(&self) -> u64 {
        self.l1_hits + self.l2_hits
    }

    /// hits / (hits + misses); `None` for an operation never read (0 % would read as "always
    /// misses").
    pub fn hit_rate(&self) -> Option<f64> {
        let reads = self.hits() + self.misses;
        #[expect(clippy::cast_precision_loss, reason = "counters are far below 2^52")]
        (reads > 0).then(|| self.hits() as f64 / reads as f64)
    }
}

/// Background refreshes: computations that outlived `stale_after` and went on after a stale
/// answer was served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct RefreshStats {
    /// Refreshes started in the background.
    pub started: u64,
    /// Refreshes that finished (stored, refused, or failed: see the operation's counters).
    pub completed: u64,
    /// Refreshes that ran past `background_refresh_timeout`, or that `shutdown` cancelled.
    pub abandoned: u64,
    /// Slow computations not continued because `background_refreshes` were all running (they
    /// were dropped, as the borrowing `get_or_compute` does).
    pub refused: u64,
    /// Refreshes running now.
    pub running: usize,
}

/// A snapshot of an [`AIResponseCache`](crate::AIResponseCache)'s counters.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct AiCacheStats {
    /// Per operation.
    pub by_operation: BTreeMap<String, OperationStats>,
    /// Reads per text tier: small, medium, large, xlarge.
    pub by_tier: [u64; 4],
    /// Values in Redis that no longer decode as the response type (a schema change).
    pub decode_failures: u64,
    /// Values kept out of L1 because they were too large for it.
    pub l1_skipped_too_large: u64,
    /// The L1 of decoded responses.
    pub l1: Option<MemoryCacheStats>,
    /// The shared tier (how this cache used it, and the store's own counters).
    pub l2: Option<L2Stats>,
    /// Key generation.
    pub key_generation: KeyGenerationStats,
    /// Computations in progress right now.
    pub flights_in_progress: usize,
    /// Callers waiting for one of those computations right now.
    pub callers_waiting: usize,
    /// Background refreshes of stale answers (`get_or_compute_owned` with serve-stale).
    pub refreshes: RefreshStats,
}

/// The counters of one operation, with its name interned (shared by every response's metadata).
pub(crate) struct OpCounters {
    pub(crate) name: Arc<str>,
    /// Read latency (when monitoring is on).
    pub(crate) latency: LatencyWindow,
    /// Read outcomes, bumped on every read: striped, so that reads on different cores share no
    /// cache line.
    pub(crate) l1_hits: StripedCounter,
    pub(crate) l2_hits: StripedCounter,
    pub(crate) misses: StripedCounter,
    /// Reads of this operation, for 1-in-N timing: each operation (of each cache) is sampled by
    /// its own reads, so one operation's traffic never decides which reads of another are timed.
    pub(crate) timing_sampler: StripedCounter,
    /// Reads that failed: rare, so one shared counter.
    pub(crate) failures: AtomicU64,
    pub(crate) stores: AtomicU64,
    pub(crate) refused: AtomicU64,
    pub(crate) promotions: AtomicU64,
    pub(crate) invalidated: AtomicU64,
    pub(crate) computed: AtomicU64,
    pub(crate) compute_micros: AtomicU64,
    pub(crate) tokens_used: AtomicU64,
    pub(crate) tokens_saved: AtomicU64,
    pub(crate) cost_used_micros: AtomicU64,
    pub(crate) cost_saved_micros: AtomicU64,
    pub(crate) stale_served: AtomicU64,
}

impl OpCounters {
    pub(crate) fn new(name: &Arc<str>) -> Self {
        let zero = || AtomicU64::new(0);
        Self {
            name: Arc::clone(name),
            latency: LatencyWindow::new(READ_LATENCY_WINDOW),
            l1_hits: StripedCounter::default(),
            l2_hits: StripedCounter::default(),
            misses: StripedCounter::default(),
            timing_sampler: StripedCounter::default(),
            failures: zero(),
            stores: zero(),
            refused: zero(),
            promotions: zero(),
            invalidated: zero(),
            computed: zero(),
            compute_micros: zero(),
            tokens_used: zero(),
            tokens_saved: zero(),
            cost_used_micros: zero(),
            cost_saved_micros: zero(),
            stale_served: zero(),
        }
    }

    /// Back to how [`new`](Self::new) made it (the operation's table keeps its name).
    pub(crate) fn reset(&self) {
        self.latency.clear();
        for striped in [
            &self.l1_hits,
            &self.l2_hits,
            &self.misses,
            &self.timing_sampler,
        ] {
            striped.reset();
        }
        for counter in [
            &self.failures,
            &self.stores,
            &self.refused,
            &self.promotions,
            &self.invalidated,
            &self.computed,
            &self.compute_micros,
            &self.tokens_used,
            &self.tokens_saved,
            &self.cost_used_micros,
            &self.cost_saved_micros,
            &self.stale_served,
        ] {
            counter.store(0, Ordering::Relaxed);
        }
    }

    pub(crate) fn add_usage(tokens: &AtomicU64, cost_micros: &AtomicU64, usage: Usage) {
        tokens.fetch_add(usage.tokens, Ordering::Relaxed);
        cost_micros.fetch_add(usage.cost_micros(), Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> OperationStats {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        OperationStats {
            l1_hits: self.l1_hits.get(),
            l2_hits: self.l2_hits.get(),
            misses: self.misses.get(),
            failures: load(&self.failures),
            stores: load(&self.stores),
            refused: load(&self.refused),
            promotions: load(&self.promotions),
            invalidated: load(&self.invalidated),
            computed: load(&self.computed),
            compute_micros: load(&self.compute_micros),
            tokens_used: load(&self.tokens_used),
            tokens_saved: load(&self.tokens_saved),
            cost_used_micros: load(&self.cost_used_micros),
            cost_saved_micros: load(&self.cost_saved_micros),
            stale_served: load(&self.stale_served),
        }
    }
}

impl OpCounters {
    /// Whether this read of the operation is one of the 1-in-`every` whose time is recorded:
    /// the 1st, the `every + 1`-th, … read counted on this thread's stripe of the counter.
    pub(crate) fn sample_timing(&self, every: u32) -> bool {
        every <= 1 || self.timing_sampler.increment() % u64::from(every) == 1
    }

    /// Whether this thread's next [`sample_timing`](Self::sample_timing) will say yes, without
    /// using up a sample.
    pub(crate) fn next_is_sampled(&self, every: u32) -> bool {
        every <= 1 || self.timing_sampler.local_value().wrapping_add(1) % u64::from(every) == 1
    }
}

/// How long read latencies count in the summaries.
const READ_LATENCY_WINDOW: Duration = Duration::from_secs(3600);

/// Reads per text tier, for the tier statistics.
pub(crate) struct TierCounters {
    pub(crate) hits: StripedCounter,
    pub(crate) misses: StripedCounter,
    pub(crate) latency: LatencyWindow,
}

impl Default for TierCounters {
    fn default() -> Self {
        Self {
            hits: StripedCounter::default(),
            misses: StripedCounter::default(),
            latency: LatencyWindow::new(READ_LATENCY_WINDOW),
        }
    }
}

/// What the performance reports are built from: every operation's counters and latency, every
/// tier's reads and latency, and the cache's stats.
#[derive(Debug, Clone)]
pub(crate) struct AiSnapshot {
    pub(crate) operations: Vec<(String, OperationStats, LatencySummary)>,
    pub(crate) tiers: [(u64, u64, LatencySummary); 4],
    pub(crate) stats: AiCacheStats,
}
