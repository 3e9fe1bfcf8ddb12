//! What the AI layer tells the monitor about each request ([`Recorder::record_request`] and
//! [`Recorder::record_breaker`]): exact counts per AI operation (the first
//! [`MAX_TRACKED_OPERATIONS`](crate::MAX_TRACKED_OPERATIONS) names, the rest in one entry) and
//! per text tier with a latency window each, and the breaker's transitions.

use std::collections::{BTreeMap, VecDeque};
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cache_core::{BreakerState, Layer, Outcome, RequestEvent};
use serde::Serialize;

use crate::OperationTable;
use crate::clock::now_ms;
use crate::window::{LatencySummary, WindowedHistogram};

use super::{lock, micros, push_bounded};

/// The text tiers the AI layer reports, in order.
const TIERS: [&str; 4] = cache_core::TextTier::NAMES;

/// Reads of one AI operation or text tier.
#[derive(Default)]
pub(super) struct RequestCounts {
    /// Per outcome, in [`OUTCOMES`] order.
    reads: [AtomicU64; OUTCOMES],
    /// Per outcome, the time of the reads timed: one in `sample_every`, the first included. An
    /// untimed read costs one counter; the mean weighs each outcome's timed mean by its reads,
    /// so a rare slow outcome (its first read always timed) does not stand for the many.
    timed_micros: [AtomicU64; OUTCOMES],
}

/// L1 hits, L2 hits, misses, failures.
const OUTCOMES: usize = 4;

impl RequestCounts {
    /// Counts `request` (exactly); sums its time when it is one in `sample_every` of its
    /// outcome, the first included, and then says so.
    fn record(&self, request: &RequestEvent<'_>, sample_every: NonZeroU32) -> bool {
        let outcome = match (request.outcome, request.layer) {
            (Outcome::Hit, Layer::L1) => 0,
            (Outcome::Hit, _) => 1,
            (Outcome::Miss, _) => 2,
            _ => 3,
        };
        let sampled = self.reads[outcome]
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(u64::from(sample_every.get()));
        if sampled {
            self.timed_micros[outcome].fetch_add(micros(request.elapsed), Ordering::Relaxed);
        }
        sampled
    }

    fn hits(&self) -> u64 {
        self.reads[0].load(Ordering::Relaxed) + self.reads[1].load(Ordering::Relaxed)
    }

    fn summary(&self, sample_every: NonZeroU32, latency: Option<LatencySummary>) -> RequestSummary {
        let reads = self.reads.each_ref().map(|c| c.load(Ordering::Relaxed));
        let [l1_hits, l2_hits, misses, failures] = reads;
        let total = reads.iter().sum::<u64>();
        #[expect(clippy::cast_precision_loss, reason = "counters are far below 2^52")]
        let hit_rate = (l1_hits + l2_hits + misses > 0)
            .then(|| (l1_hits + l2_hits) as f64 / (l1_hits + l2_hits + misses) as f64);
        // Of `n` reads of an outcome, reads 1, 1 + every, … were timed: ceil(n / every).
        let weighted: u128 = reads
            .iter()
            .zip(&self.timed_micros)
            .filter_map(|(&n, micros)| {
                let timed = n.div_ceil(u64::from(sample_every.get()));
                let mean = micros.load(Ordering::Relaxed).checked_div(timed)?;
                Some(u128::from(n) * u128::from(mean))
            })
            .sum();
        RequestSummary {
            reads: total,
            l1_hits,
            l2_hits,
            misses,
            failures,
            hit_rate,
            mean_us: u64::try_from(weighted.checked_div(u128::from(total)).unwrap_or(0))
                .unwrap_or(u64::MAX),
            latency,
        }
    }

    fn reset(&self) {
        for counter in self.reads.iter().chain(&self.timed_micros) {
            counter.store(0, Ordering::Relaxed);
        }
    }
}

/// The reads of one AI operation or text tier, as the monitor counted them.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct RequestSummary {
    /// Every read (exact: only timings are sampled).
    pub reads: u64,
    /// Reads answered by L1.
    pub l1_hits: u64,
    /// Reads answered by Redis.
    pub l2_hits: u64,
    /// Reads that found nothing.
    pub misses: u64,
    /// Reads that failed.
    pub failures: u64,
    /// hits / (hits + misses); `None` when nothing was read (not 0 %).
    pub hit_rate: Option<f64>,
    /// The mean read time, in microseconds: each outcome's mean over its timed reads (one in
    /// `latency_sample_every`, the first included), weighted by its reads.
    pub mean_us: u64,
    /// The read-time distribution over the window (per text tier only: per operation, the AI
    /// cache's own summary has it).
    pub latency: Option<LatencySummary>,
}

/// A change of the circuit breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct BreakerTransition {
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// The state it left.
    pub from: &'static str,
    /// The state it entered.
    pub to: &'static str,
}

/// The breaker as the monitor saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct BreakerMetric {
    /// Transitions into the open state (Redis failed and was cut off).
    pub opened: u64,
    /// Transitions back to closed (Redis answered a probe).
    pub closed: u64,
    /// The state after the latest transition; `None` before any.
    pub state: Option<&'static str>,
    /// The latest transitions, oldest first (bounded by `max_measurements`).
    pub recent: Vec<BreakerTransition>,
}

/// The monitor's request and breaker state.
pub(super) struct Requests {
    operations: OperationTable<RequestCounts>,
    tiers: [(RequestCounts, Mutex<WindowedHistogram>); 4],
    opened: AtomicU64,
    closed: AtomicU64,
    transitions: Mutex<VecDeque<BreakerTransition>>,
    /// One read in this many of each outcome is timed (`MonitorConfig::latency_sample_every`).
    sample_every: NonZeroU32,
}

impl Requests {
    pub(super) fn new(retention: Duration, sample_every: NonZeroU32) -> Self {
        Self {
            sample_every,
            operations: OperationTable::default(),
            tiers: std::array::from_fn(|_| {
                (
                    RequestCounts::default(),
                    Mutex::new(WindowedHistogram::new(retention)),
                )
            }),
            opened: AtomicU64::new(0),
            closed: AtomicU64::new(0),
            transitions: Mutex::new(VecDeque::new()),
        }
    }

    /// Counts `request` (exactly), per operation and per tier, and times one request in
    /// `sample_every` of each outcome of each.
    pub(super) fn record(&self, request: &RequestEvent<'_>) {
        let sample_every = self.sample_every;
        self.operations
            .get(request.operation, |_| RequestCounts::default())
            .record(request, sample_every);
        if let Some(index) = TIERS.iter().position(|t| *t == request.text_tier) {
            let (counts, latency) = &self.tiers[index];
            if counts.record(request, sample_every) {
                lock(latency).record(now_ms(), micros(request.elapsed));
            }
        }
    }

    pub(super) fn record_breaker(
        &self,
        from: BreakerState,
        to: BreakerState,
        now_ms: u64,
        max: usize,
    ) {
        match to {
            BreakerState::Open => self.opened.fetch_add(1, Ordering::Relaxed),
            BreakerState::Closed => self.closed.fetch_add(1, Ordering::Relaxed),
            _ => 0,
        };
        let transition = BreakerTransition {
            timestamp_ms: now_ms,
            from: from.as_str(),
            to: to.as_str(),
        };
        push_bounded(&mut lock(&self.transitions), transition, max);
    }

    /// Hits of every operation (the hits that spared a computation).
    pub(super) fn hits(&self) -> u64 {
        self.operations
            .entries()
            .iter()
            .map(|(_, counts)| counts.hits())
            .sum()
    }

    /// Per AI operation: only operations that were read.
    pub(super) fn by_operation(&self) -> BTreeMap<String, RequestSummary> {
        self.operations
            .entries()
            .into_iter()
            .map(|(name, counts)| (name.to_string(), counts.summary(self.sample_every, None)))
            .filter(|(_, summary)| summary.reads > 0)
            .collect()
    }

    /// Per text tier: only tiers that were read.
    pub(super) fn by_tier(&self, now_ms: u64) -> BTreeMap<String, RequestSummary> {
        TIERS
            .iter()
            .zip(&self.tiers)
            .map(|(tier, (counts, latency))| {
                let latency = lock(latency).summary(now_ms);
                (
                    (*tier).to_string(),
                    counts.summary(self.sample_every, Some(latency)),
                )
            })
            .filter(|(_, summary)| summary.reads > 0)
            .collect()
    }

    pub(super) fn breaker(&self) -> BreakerMetric {
        let recent: Vec<BreakerTransition> = lock(&self.transitions).iter().copied().collect();
        BreakerMetric {
            opened: self.opened.load(Ordering::Relaxed),
            closed: self.closed.load(Ordering::Relaxed),
            state: recent.last().map(|t| t.to),
            recent,
        }
    }

    pub(super) fn reset(&self) {
        self.operations.reset(RequestCounts::reset);
        for (counts, latency) in &self.tiers {
            counts.reset();
            lock(latency).clear();
        }
        self.opened.store(0, Ordering::Relaxed);
        self.closed.store(0, Ordering::Relaxed);
        lock(&self.transitions).clear();
    }
}
