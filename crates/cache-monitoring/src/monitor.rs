//! [`CachePerformanceMonitor`]: the [`Recorder`] that keeps the numbers.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cache_core::{
    CacheOp, ErrorKind, Layer, MemoryReading, Outcome, Recorder, RequestEvent, Usage,
};
use serde::Serialize;

use crate::window::{LatencySummary, WindowedHistogram};

/// Settings of a [`CachePerformanceMonitor`] (the seed's defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MonitorConfig {
    /// How long samples count. Default: 1 hour.
    pub retention: Duration,
    /// The most events (slow operations, invalidations, memory readings) kept. Default: 1000.
    pub max_measurements: usize,
    /// Operations slower than this are counted and kept as slow. Default: 50 ms.
    pub slow_operation: Duration,
    /// Memory use that triggers a warning, in bytes. Default: 50 MiB.
    pub memory_warning_bytes: u64,
    /// Memory use that is critical, in bytes. Default: 100 MiB.
    pub memory_critical_bytes: u64,
    /// Invalidations per hour that deserve a warning. Default: 50.
    pub invalidation_warning_per_hour: u64,
    /// Invalidations per hour that are critical. Default: 100.
    pub invalidation_critical_per_hour: u64,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        Self {
            retention: Duration::from_secs(3600),
            max_measurements: 1000,
            slow_operation: Duration::from_millis(50),
            memory_warning_bytes: 50 * 1024 * 1024,
            memory_critical_bytes: 100 * 1024 * 1024,
            invalidation_warning_per_hour: 50,
            invalidation_critical_per_hour: 100,
        }
    }
}

/// One operation that took longer than [`MonitorConfig::slow_operation`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct PerformanceMetric {
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// The operation.
    pub operation: &'static str,
    /// The tier.
    pub layer: &'static str,
    /// How long it took, in microseconds.
    pub duration_us: u64,
}

/// Compression figures over the window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[non_exhaustive]
pub struct CompressionMetric {
    /// Compressions recorded.
    pub count: u64,
    /// Bytes before compression.
    pub original_bytes: u64,
    /// Bytes stored.
    pub stored_bytes: u64,
    /// stored / original over all compressions (lower is better), 0 without data.
    pub ratio: f64,
    /// Time spent compressing.
    pub time: LatencySummary,
}

/// A memory reading handed to the monitor (it does no I/O itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[non_exhaustive]
pub struct MemoryUsageMetric {
    /// Milliseconds since the Unix epoch (set by the monitor).
    pub timestamp_ms: u64,
    /// Live L1 entries.
    pub l1_entries: u64,
    /// The L1 entry cap.
    pub l1_max_entries: u64,
    /// Bytes held by L1.
    pub l1_bytes: u64,
    /// Redis `used_memory`, when known.
    pub redis_used_bytes: Option<u64>,
    /// Redis `maxmemory` (0: no limit), when known.
    pub redis_max_bytes: Option<u64>,
}

impl From<&MemoryReading> for MemoryUsageMetric {
    fn from(reading: &MemoryReading) -> Self {
        Self {
            timestamp_ms: 0,
            l1_entries: reading.l1_entries,
            l1_max_entries: reading.l1_max_entries,
            l1_bytes: reading.l1_bytes,
            redis_used_bytes: reading.redis.map(|r| r.used_bytes),
            redis_max_bytes: reading.redis.map(|r| r.max_bytes),
        }
    }
}

impl MemoryUsageMetric {
    /// A reading of L1 (and Redis, when known).
    pub fn new(
        l1_entries: u64,
        l1_max_entries: u64,
        l1_bytes: u64,
        redis_used_bytes: Option<u64>,
    ) -> Self {
        Self {
            timestamp_ms: 0,
            l1_entries,
            l1_max_entries,
            l1_bytes,
            redis_used_bytes,
            redis_max_bytes: None,
        }
    }

    /// The same reading with Redis's `maxmemory` (0: no limit).
    #[must_use]
    pub fn with_redis_max_bytes(mut self, max_bytes: u64) -> Self {
        self.redis_max_bytes = Some(max_bytes);
        self
    }

    /// L1 plus Redis bytes.
    pub fn total_bytes(&self) -> u64 {
        self.l1_bytes + self.redis_used_bytes.unwrap_or(0)
    }
}

/// One invalidation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct InvalidationMetric {
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// The pattern invalidated.
    pub pattern: String,
    /// Entries removed.
    pub removed: u64,
}

/// How urgent a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[non_exhaustive]
pub enum Severity {
    /// Worth knowing.
    Info,
    /// Worth fixing.
    Warning,
    /// Fix now.
    Critical,
}

/// A finding about memory or invalidations, with the numbers behind it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Finding {
    /// How urgent.
    pub severity: Severity,
    /// What it is about, for example `invalidation_rate`.
    pub issue: &'static str,
    /// A sentence for the operator.
    pub message: String,
    /// The figure that triggered it.
    pub value: f64,
    /// The threshold it crossed.
    pub threshold: f64,
}

/// Invalidation frequency over the window.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct InvalidationStats {
    /// Invalidations in the last hour.
    pub last_hour: u64,
    /// Entries they removed.
    pub keys_removed: u64,
    /// Mean entries removed per invalidation.
    pub mean_keys: f64,
    /// The most frequent patterns, most frequent first (at most 10).
    pub top_patterns: Vec<(String, u64)>,
}

/// What the model cost and what the cache spared it, from the AI layer's `get_or_compute` and its
/// usage meter.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct SavingsMetric {
    /// Answers computed (model calls).
    pub computations: u64,
    /// Time the computations took.
    pub compute_time: LatencySummary,
    /// Hits served to the AI layer.
    pub hits: u64,
    /// Model time the hits spared: hits × the mean compute time, in milliseconds.
    pub time_saved_ms: u64,
    /// Tokens the computations used (when a usage meter is set).
    pub tokens_used: u64,
    /// Tokens the hits spared (when a usage meter is set).
    pub tokens_saved: u64,
    /// What the computations cost, in the caller's currency (kept in millionths).
    pub cost_used: f64,
    /// What the hits spared, in the caller's currency (kept in millionths).
    pub cost_saved: f64,
}

/// Latency and outcome counts of one operation on one tier.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct OperationSummary {
    /// Reads that hit.
    pub hits: u64,
    /// Reads that missed.
    pub misses: u64,
    /// Other successful operations.
    pub done: u64,
    /// Failures by kind.
    pub failures: BTreeMap<String, u64>,
    /// Latency over the window.
    pub latency: LatencySummary,
}

/// Everything the monitor knows, serializable (`export_metrics`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct MonitorSnapshot {
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// hits / (hits + misses) over reads only, 0 without reads.
    pub hit_rate: f64,
    /// Reads that hit, on any tier.
    pub hits: u64,
    /// Reads that missed.
    pub misses: u64,
    /// Per `operation/layer` (for example `get/l1`).
    pub operations: BTreeMap<String, OperationSummary>,
    /// Compression.
    pub compression: CompressionMetric,
    /// Undecodable entries met, per layer.
    pub corrupt_entries: BTreeMap<String, u64>,
    /// The latest memory reading.
    pub memory: Option<MemoryUsageMetric>,
    /// Memory findings.
    pub memory_warnings: Vec<Finding>,
    /// Invalidations.
    pub invalidations: InvalidationStats,
    /// Invalidation findings.
    pub invalidation_recommendations: Vec<Finding>,
    /// Operations slower than the threshold (most recent last).
    pub slow_operations: Vec<PerformanceMetric>,
    /// Model calls and what the hits spared.
    pub savings: SavingsMetric,
}

const OPS: [CacheOp; 9] = [
    CacheOp::Get,
    CacheOp::Set,
    CacheOp::Delete,
    CacheOp::Exists,
    CacheOp::RemainingTtl,
    CacheOp::Scan,
    CacheOp::DeletePattern,
    CacheOp::GetMany,
    CacheOp::SetMany,
];
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

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Currency amounts are accumulated in atomics as millionths.
const COST_SCALE: f64 = 1_000_000.0;

#[expect(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "a non-negative, finite amount rounded to millionths; saturates above u64::MAX"
)]
pub(crate) fn cost_units(cost: f64) -> u64 {
    if cost.is_finite() && cost > 0.0 {
        (cost * COST_SCALE).round() as u64
    } else {
        0
    }
}

#[expect(
    clippy::cast_precision_loss,
    reason = "sums of millionths far below 2^52"
)]
fn cost_amount(units: u64) -> f64 {
    units as f64 / COST_SCALE
}

/// Model usage counters.
#[derive(Default)]
struct Savings {
    computations: AtomicU64,
    compute_micros: AtomicU64,
    hits: AtomicU64,
    tokens_used: AtomicU64,
    tokens_saved: AtomicU64,
    cost_used: AtomicU64,
    cost_saved: AtomicU64,
}

impl Savings {
    fn add_usage(tokens: &AtomicU64, cost: &AtomicU64, usage: Usage) {
        tokens.fetch_add(usage.tokens, Ordering::Relaxed);
        cost.fetch_add(cost_units(usage.cost), Ordering::Relaxed);
    }

    fn reset(&self) {
        for counter in [
            &self.computations,
            &self.compute_micros,
            &self.hits,
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
    /// [`Recorder::record_memory`]).
    pub fn record_memory_usage(&self, mut reading: MemoryUsageMetric) {
        reading.timestamp_ms = now_ms();
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
                severity: Severity::Warning,
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
                severity: Severity::Warning,
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
        let since = now_ms().saturating_sub(3_600_000);
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
                severity: Severity::Warning,
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
                severity: Severity::Warning,
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
        MonitorSnapshot {
            timestamp_ms: now_ms(),
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
        let hits = load(&s.hits);
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
            cost_used: cost_amount(load(&s.cost_used)),
            cost_saved: cost_amount(load(&s.cost_saved)),
        }
    }

    /// Forgets everything recorded.
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
    }
}

impl Recorder for CachePerformanceMonitor {
    fn record_operation(&self, op: CacheOp, layer: Layer, outcome: Outcome, elapsed: Duration) {
        let s = self.series(op, layer);
        match outcome {
            Outcome::Hit => s.hits.fetch_add(1, Ordering::Relaxed),
            Outcome::Miss => s.misses.fetch_add(1, Ordering::Relaxed),
            Outcome::Failed(kind) => {
                *lock(&s.failures).entry(kind.as_str()).or_default() += 1;
                0
            }
            _ => s.done.fetch_add(1, Ordering::Relaxed),
        };
        let now = now_ms();
        lock(&s.latency).record(now, micros(elapsed));
        if elapsed > self.config.slow_operation {
            let metric = PerformanceMetric {
                timestamp_ms: now,
                operation: op.as_str(),
                layer: layer.as_str(),
                duration_us: micros(elapsed),
            };
            push_bounded(&mut lock(&self.slow), metric, self.config.max_measurements);
        }
    }

    fn record_compression(&self, original_bytes: usize, stored_bytes: usize, elapsed: Duration) {
        self.compressions.fetch_add(1, Ordering::Relaxed);
        self.original_bytes.fetch_add(
            u64::try_from(original_bytes).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        self.stored_bytes.fetch_add(
            u64::try_from(stored_bytes).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        lock(&self.compression_time).record(now_ms(), micros(elapsed));
    }

    fn record_corrupt_entry(&self, layer: Layer, _kind: ErrorKind) {
        self.corrupt[layer_index(layer)].fetch_add(1, Ordering::Relaxed);
    }

    fn record_invalidation(&self, pattern: &str, removed: u64) {
        let event = InvalidationMetric {
            timestamp_ms: now_ms(),
            pattern: pattern.to_string(),
            removed,
        };
        push_bounded(
            &mut lock(&self.invalidations),
            event,
            self.config.max_measurements,
        );
    }

    fn record_request(&self, request: &RequestEvent<'_>) {
        if request.outcome != Outcome::Hit {
            return;
        }
        self.savings.hits.fetch_add(1, Ordering::Relaxed);
        if let Some(saved) = request.saved {
            Savings::add_usage(&self.savings.tokens_saved, &self.savings.cost_saved, saved);
        }
    }

    fn record_compute(&self, _operation: &Arc<str>, elapsed: Duration, usage: Option<Usage>) {
        self.savings.computations.fetch_add(1, Ordering::Relaxed);
        self.savings
            .compute_micros
            .fetch_add(micros(elapsed), Ordering::Relaxed);
        lock(&self.compute_time).record(now_ms(), micros(elapsed));
        if let Some(usage) = usage {
            Savings::add_usage(&self.savings.tokens_used, &self.savings.cost_used, usage);
        }
    }

    fn record_memory(&self, reading: &MemoryReading) {
        self.record_memory_usage(MemoryUsageMetric::from(reading));
    }
}

#[cfg(test)]
mod tests;
