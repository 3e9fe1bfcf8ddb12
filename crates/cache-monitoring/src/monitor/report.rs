//! What [`CachePerformanceMonitor`](super::CachePerformanceMonitor)(super::CachePerformanceMonitor) reports: its settings, metrics,
//! findings and snapshots.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::time::Duration;

use cache_core::MemoryReading;
use serde::Serialize;

use crate::window::LatencySummary;

use super::{BreakerMetric, RequestSummary};

/// Settings of a [`CachePerformanceMonitor`](super::CachePerformanceMonitor) (the seed's defaults).
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
    /// Of the operations and requests of each kind and outcome, one in this many lands in the
    /// latency windows and the requests' mean times (the first one included); counts and
    /// slow-operation checks see every one. Default: 16 (1 records every event).
    pub latency_sample_every: NonZeroU32,
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
            latency_sample_every: NonZeroU32::new(16).unwrap_or(NonZeroU32::MIN),
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

pub use cache_core::Severity;

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
    /// The AI layer's reads per AI operation (operations never read are absent).
    pub requests_by_operation: BTreeMap<String, RequestSummary>,
    /// The AI layer's reads per text tier (tiers never read are absent).
    pub requests_by_tier: BTreeMap<String, RequestSummary>,
    /// The circuit breaker's transitions.
    pub breaker: BreakerMetric,
}
