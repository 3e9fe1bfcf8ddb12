//! [`CachePerformanceMonitor`]: the [`Recorder`](cache_core::Recorder) that keeps the numbers.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use cache_core::{CacheOp, Layer, Usage, unix_millis};

use crate::clock::now_ms;

use crate::window::WindowedHistogram;

const OPS: [CacheOp; 9] = CacheOp::ALL;
const LAYERS: [Layer; 2] = [Layer::L1, Layer::L2];

fn op_index(op: CacheOp) -> usize {
    OPS.iter().position(|o| *o == op).unwrap_or(OPS.len())
}

fn layer_index(layer: Layer) -> usize {
    usize::from(layer != Layer::L1)
}

struct Series {
    hits: AtomicU64,
    misses: AtomicU64,
    done: AtomicU64,
    failures: Mutex<BTreeMap<&'static str, u64>>,
    latency: Mutex<WindowedHistogram>,
}

impl Series {
    fn new(retention: Duration) -> Self {
        Self {
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            done: AtomicU64::new(0),
            failures: Mutex::new(BTreeMap::new()),
            latency: Mutex::new(WindowedHistogram::new(retention)),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn micros(elapsed: Duration) -> u64 {
    u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX)
}

/// Model usage counters.
#[derive(Default)]
struct Savings {
    computations: AtomicU64,
    compute_micros: AtomicU64,
    tokens_used: AtomicU64,
    tokens_saved: AtomicU64,
    cost_used: AtomicU64,
    cost_saved: AtomicU64,
}

impl Savings {
    fn add_usage(tokens: &AtomicU64, cost: &AtomicU64, usage: Usage) {
        tokens.fetch_add(usage.tokens, Ordering::Relaxed);
        cost.fetch_add(usage.cost_micros(), Ordering::Relaxed);
    }

    fn reset(&self) {
        for counter in [
            &self.computations,
            &self.compute_micros,
            &self.tokens_used,
            &self.tokens_saved,
            &self.cost_used,
            &self.cost_saved,
        ] {
            counter.store(0, Ordering::Relaxed);
        }
    }
}

fn push_bounded<T>(queue: &mut VecDeque<T>, item: T, max: usize) {
    if queue.len() >= max {
        queue.pop_front();
    }
    queue.push_back(item);
}

/// Collects cache measurements: per operation and tier latency histograms (windowed), hit rates
/// over reads only, compression, corrupt entries, memory readings and invalidations, with
/// findings and a serializable export.
///
/// Recording is O(1): each (operation, tier) series has its own counters and its own histogram lock,
/// so there is no global lock on the hot path. The monitor performs no I/O: cache-redis and the AI
/// layer hand it Redis figures.
///
/// ```
/// use std::time::Duration;
/// use cache_core::{CacheOp, Layer, Outcome, Recorder};
/// use cache_monitoring::CachePerformanceMonitor;
///
/// let monitor = CachePerformanceMonitor::default();
/// monitor.record_operation(CacheOp::Get, Layer::L1, Outcome::Hit, Duration::from_micros(3));
/// monitor.record_operation(CacheOp::Get, Layer::L2, Outcome::Miss, Duration::from_micros(90));
/// monitor.record_operation(CacheOp::Set, Layer::L2, Outcome::Done, Duration::from_micros(80));
/// assert_eq!(monitor.hit_rate(), 0.5, "writes do not dilute the hit rate");
/// ```
pub struct CachePerformanceMonitor {
    config: MonitorConfig,
    series: Vec<Series>,
    compressions: AtomicU64,
    original_bytes: AtomicU64,
    stored_bytes: AtomicU64,
    compression_time: Mutex<WindowedHistogram>,
    corrupt: [AtomicU64; 2],
    slow: Mutex<VecDeque<PerformanceMetric>>,
    memory: Mutex<VecDeque<MemoryUsageMetric>>,
    invalidations: Mutex<VecDeque<InvalidationMetric>>,
    savings: Savings,
    compute_time: Mutex<WindowedHistogram>,
    requests: Requests,
}

impl fmt::Debug for CachePerformanceMonitor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachePerformanceMonitor")
            .field("config", &self.config)
            .field("hit_rate", &self.hit_rate())
            .finish_non_exhaustive()
    }
}

impl Default for CachePerformanceMonitor {
    fn default() -> Self {
        Self::new(MonitorConfig::default())
    }
}

impl CachePerformanceMonitor {
    /// A monitor with `config`.
    pub fn new(config: MonitorConfig) -> Self {
        let series = (0..(OPS.len() + 1) * LAYERS.len())
            .map(|_| Series::new(config.retention))
            .collect();
        Self {
            requests: Requests::new(config.retention, config.latency_sample_every),
            compression_time: Mutex::new(WindowedHistogram::new(config.retention)),
            compute_time: Mutex::new(WindowedHistogram::new(config.retention)),
            config,
            series,
            compressions: AtomicU64::new(0),
            original_bytes: AtomicU64::new(0),
            stored_bytes: AtomicU64::new(0),
            corrupt: [AtomicU64::new(0), AtomicU64::new(0)],
            slow: Mutex::new(VecDeque::new()),
            memory: Mutex::new(VecDeque::new()),
            invalidations: Mutex::new(VecDeque::new()),
            savings: Savings::default(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &MonitorConfig {
        &self.config
    }

    fn series(&self, op: CacheOp, layer: Layer) -> &Series {
        &self.series[op_index(op) * LAYERS.len() + layer_index(layer)]
    }

    /// Hits and misses of reads (`get`, `get_many`) on every tier.
    pub fn reads(&self) -> (u64, u64) {
        let mut totals = (0, 0);
        for op in [CacheOp::Get, CacheOp::GetMany] {
            for layer in LAYERS {
                let s = self.series(op, layer);
                totals.0 += s.hits.load(Ordering::Relaxed);
                totals.1 += s.misses.load(Ordering::Relaxed);
            }
        }
        totals
    }

    /// hits / (hits + misses) over reads only (writes never dilute it); 0 without reads.
    pub fn hit_rate(&self) -> f64 {
        let (hits, misses) = self.reads();
        if hits + misses == 0 {
            return 0.0;
        }
        #[expect(clippy::cast_precision_loss, reason = "counters are far below 2^52")]
        let rate = hits as f64 / (hits + misses) as f64;
        rate
    }

    /// Latency and outcomes of `op` on `layer` over the window.
    pub fn operation_summary(&self, op: CacheOp, layer: Layer) -> OperationSummary {
        let s = self.series(op, layer);
        OperationSummary {
            hits: s.hits.load(Ordering::Relaxed),
            misses: s.misses.load(Ordering::Relaxed),
            done: s.done.load(Ordering::Relaxed),
            failures: lock(&s.failures)
                .iter()
                .map(|(k, v)| ((*k).to_string(), *v))
                .collect(),
            latency: lock(&s.latency).summary(now_ms()),
        }
    }

    /// Compression over the window.
    pub fn compression(&self) -> CompressionMetric {
        let original = self.original_bytes.load(Ordering::Relaxed);
        let stored = self.stored_bytes.load(Ordering::Relaxed);
        #[expect(clippy::cast_precision_loss, reason = "byte counts are far below 2^52")]
        let ratio = if original == 0 {
            0.0
        } else {
            stored as f64 / original as f64
        };
        CompressionMetric {
            count: self.compressions.load(Ordering::Relaxed),
            original_bytes: original,
            stored_bytes: stored,
            ratio,
            time: lock(&self.compression_time).summary(now_ms()),
        }
    }

    /// Hands the monitor a memory reading (the caches' `report_memory` does it through
    /// [`Recorder::record_memory`](cache_core::Recorder::record_memory)).
    pub fn record_memory_usage(&self, mut reading: MemoryUsageMetric) {
        reading.timestamp_ms = unix_millis();
        push_bounded(
            &mut lock(&self.memory),
            reading,
            self.config.max_measurements,
        );
    }

    /// Warnings about the latest memory reading.
    pub fn memory_warnings(&self) -> Vec<Finding> {
        let Some(latest) = lock(&self.memory).back().copied() else {
            return Vec::new();
        };
        let mut findings = Vec::new();
        let total = latest.total_bytes();
        #[expect(clippy::cast_precision_loss, reason = "byte counts are far below 2^52")]
        let (total_f, warning, critical) = (
            total as f64,
            self.config.memory_warning_bytes as f64,
            self.config.memory_critical_bytes as f64,
        );
        if total >= self.config.memory_critical_bytes {
            findings.push(Finding {
                severity: Severity::Critical,
                issue: "memory",
                message:
                    "cache memory is above the critical threshold: shrink L1 or add Redis memory"
                        .into(),
                value: total_f,
                threshold: critical,
            });
        } else if total >= self.config.memory_warning_bytes {
            findings.push(Finding {
                severity: Severity::Medium,
                issue: "memory",
                message: "cache memory is above the warning threshold".into(),
                value: total_f,
                threshold: warning,
            });
        }
        if let (Some(used), Some(max)) = (latest.redis_used_bytes, latest.redis_max_bytes)
            && max > 0
            && used.saturating_mul(10) > max.saturating_mul(9)
        {
            #[expect(clippy::cast_precision_loss, reason = "byte counts are far below 2^52")]
            let fill = used as f64 / max as f64;
            findings.push(Finding {
                severity: Severity::Medium,
                issue: "redis_maxmemory",
                message: "Redis is above 90 % of maxmemory: it will evict (or refuse writes); raise maxmemory or shorten TTLs".into(),
                value: fill,
                threshold: 0.9,
            });
        }
        if latest.l1_max_entries > 0 && latest.l1_entries * 10 > latest.l1_max_entries * 9 {
            #[expect(
                clippy::cast_precision_loss,
                reason = "entry counts are far below 2^52"
            )]
            let fill = latest.l1_entries as f64 / latest.l1_max_entries as f64;
            findings.push(Finding {
                severity: Severity::Info,
                issue: "l1_full",
                message:
                    "L1 is more than 90 % full: a larger memory_cache_size may raise the hit rate"
                        .into(),
                value: fill,
                threshold: 0.9,
            });
        }
        findings
    }

    /// Invalidation frequency over the last hour.
    pub fn invalidation_stats(&self) -> InvalidationStats {
        let since = unix_millis().saturating_sub(3_600_000);
        let events = lock(&self.invalidations);
        let recent: Vec<&InvalidationMetric> =
            events.iter().filter(|e| e.timestamp_ms >= since).collect();
        let keys_removed: u64 = recent.iter().map(|e| e.removed).sum();
        let mut by_pattern: HashMap<&str, u64> = HashMap::new();
        for e in &recent {
            *by_pattern.entry(e.pattern.as_str()).or_default() += 1;
        }
        let mut top: Vec<(String, u64)> = by_pattern
            .into_iter()
            .map(|(p, n)| (p.to_string(), n))
            .collect();
        top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        top.truncate(10);
        let count = u64::try_from(recent.len()).unwrap_or(u64::MAX);
        #[expect(clippy::cast_precision_loss, reason = "counts are far below 2^52")]
        let mean_keys = if count == 0 {
            0.0
        } else {
            keys_removed as f64 / count as f64
        };
        InvalidationStats {
            last_hour: count,
            keys_removed,
            mean_keys,
            top_patterns: top,
        }
    }

    /// The original's invalidation recommendations: a high rate (warning or critical), one pattern
    /// dominating (more than half of the events), and invalidations that remove almost nothing
    /// (under 1 key on average) or a lot (over 100).
    pub fn invalidation_recommendations(&self) -> Vec<Finding> {
        let stats = self.invalidation_stats();
        let mut findings = Vec::new();
        #[expect(clippy::cast_precision_loss, reason = "counts are far below 2^52")]
        let rate = stats.last_hour as f64;
        if stats.last_hour >= self.config.invalidation_critical_per_hour {
            findings.push(Finding {
                severity: Severity::Critical,
                issue: "invalidation_rate",
                message: "invalidations are so frequent that the cache barely holds: invalidate by operation or version, not per request".into(),
                value: rate,
                #[expect(clippy::cast_precision_loss, reason = "a small threshold")]
                threshold: self.config.invalidation_critical_per_hour as f64,
            });
        } else if stats.last_hour >= self.config.invalidation_warning_per_hour {
            findings.push(Finding {
                severity: Severity::Medium,
                issue: "invalidation_rate",
                message: "invalidations are frequent: check what triggers them".into(),
                value: rate,
                #[expect(clippy::cast_precision_loss, reason = "a small threshold")]
                threshold: self.config.invalidation_warning_per_hour as f64,
            });
        }
        if let Some((pattern, n)) = stats.top_patterns.first()
            && stats.last_hour >= 2
            && n * 2 > stats.last_hour
        {
            #[expect(clippy::cast_precision_loss, reason = "counts are far below 2^52")]
            let share = *n as f64 / rate;
            findings.push(Finding {
                severity: Severity::Info,
                issue: "dominant_pattern",
                message: format!("pattern {pattern:?} is more than half of the invalidations: a shorter TTL for it may do the same work"),
                value: share,
                threshold: 0.5,
            });
        }
        if stats.last_hour > 0 && stats.mean_keys < 1.0 {
            findings.push(Finding {
                severity: Severity::Info,
                issue: "empty_invalidations",
                message: "invalidations remove less than one entry on average: they may target the wrong pattern".into(),
                value: stats.mean_keys,
                threshold: 1.0,
            });
        } else if stats.mean_keys > 100.0 {
            findings.push(Finding {
                severity: Severity::Medium,
                issue: "broad_invalidations",
                message: "invalidations remove over 100 entries on average: narrow the patterns"
                    .into(),
                value: stats.mean_keys,
                threshold: 100.0,
            });
        }
        findings
    }

    /// Everything, serializable.
    pub fn export_metrics(&self) -> MonitorSnapshot {
        let (hits, misses) = self.reads();
        let mut operations = BTreeMap::new();
        for op in OPS {
            for layer in LAYERS {
                let summary = self.operation_summary(op, layer);
                if summary.hits + summary.misses + summary.done > 0 || !summary.failures.is_empty()
                {
                    operations.insert(format!("{}/{}", op.as_str(), layer.as_str()), summary);
                }
            }
        }
        // Each lock is taken and released in its own statement: a guard living through the struct
        // literal would deadlock against the next field's lock of the same mutex.
        let memory = lock(&self.memory).back().copied();
        let slow_operations: Vec<PerformanceMetric> = lock(&self.slow).iter().cloned().collect();
        let savings = self.savings();
        let now = now_ms();
        MonitorSnapshot {
            requests_by_operation: self.requests.by_operation(),
            requests_by_tier: self.requests.by_tier(now),
            breaker: self.requests.breaker(),
            timestamp_ms: unix_millis(),
            hit_rate: self.hit_rate(),
            hits,
            misses,
            operations,
            compression: self.compression(),
            corrupt_entries: LAYERS
                .iter()
                .map(|l| {
                    (
                        l.as_str().to_string(),
                        self.corrupt[layer_index(*l)].load(Ordering::Relaxed),
                    )
                })
                .collect(),
            memory,
            memory_warnings: self.memory_warnings(),
            invalidations: self.invalidation_stats(),
            invalidation_recommendations: self.invalidation_recommendations(),
            slow_operations,
            savings,
        }
    }

    /// Model calls, their time and usage, and what the hits spared.
    pub fn savings(&self) -> SavingsMetric {
        let s = &self.savings;
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let computations = load(&s.computations);
        let hits = self.requests.hits();
        let mean_micros = load(&s.compute_micros)
            .checked_div(computations)
            .unwrap_or(0);
        SavingsMetric {
            computations,
            compute_time: lock(&self.compute_time).summary(now_ms()),
            hits,
            time_saved_ms: mean_micros.saturating_mul(hits) / 1000,
            tokens_used: load(&s.tokens_used),
            tokens_saved: load(&s.tokens_saved),
            cost_used: Usage::amount_of_micros(load(&s.cost_used)),
            cost_saved: Usage::amount_of_micros(load(&s.cost_saved)),
        }
    }

    /// Zeroes everything recorded. The AI operations' names stay tracked (at most
    /// [`MAX_TRACKED_OPERATIONS`](crate::MAX_TRACKED_OPERATIONS)): one unused since is not
    /// reported.
    pub fn reset_stats(&self) {
        for s in &self.series {
            s.hits.store(0, Ordering::Relaxed);
            s.misses.store(0, Ordering::Relaxed);
            s.done.store(0, Ordering::Relaxed);
            lock(&s.failures).clear();
            lock(&s.latency).clear();
        }
        for counter in [&self.compressions, &self.original_bytes, &self.stored_bytes] {
            counter.store(0, Ordering::Relaxed);
        }
        lock(&self.compression_time).clear();
        for counter in &self.corrupt {
            counter.store(0, Ordering::Relaxed);
        }
        lock(&self.slow).clear();
        lock(&self.memory).clear();
        lock(&self.invalidations).clear();
        self.savings.reset();
        lock(&self.compute_time).clear();
        self.requests.reset();
    }

    /// The AI layer's reads per AI operation (exact counts; operations past
    /// [`MAX_TRACKED_OPERATIONS`](crate::MAX_TRACKED_OPERATIONS) in
    /// [`OTHER_OPERATIONS`](crate::OTHER_OPERATIONS)); an operation never read is absent.
    pub fn requests_by_operation(&self) -> BTreeMap<String, RequestSummary> {
        self.requests.by_operation()
    }

    /// The AI layer's reads per text tier (`small`, `medium`, `large`, `xlarge`), with their
    /// latency over the window; a tier never read is absent.
    pub fn requests_by_tier(&self) -> BTreeMap<String, RequestSummary> {
        self.requests.by_tier(now_ms())
    }

    /// The circuit breaker's transitions.
    pub fn breaker(&self) -> BreakerMetric {
        self.requests.breaker()
    }
}

mod record;
mod report;
mod requests;

use requests::Requests;
pub use requests::{BreakerMetric, BreakerTransition, RequestSummary};

pub use report::{
    CompressionMetric, Finding, InvalidationMetric, InvalidationStats, MemoryUsageMetric,
    MonitorConfig, MonitorSnapshot, OperationSummary, PerformanceMetric, SavingsMetric, Severity,
};

#[cfg(test)]
mod tests;
