//! Results: one [`BenchmarkResult`] per workload run, its baseline and ratio, and its grades.

use serde::{Deserialize, Serialize};

use crate::measure::Measured;
use crate::preset::{BenchSettings, LatencyLimits, Thresholds};
use crate::workload::Workload;

/// How a result compares with its thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Grade {
    /// Mean, p95 and p99 within their limits (RSS growth under the warning level).
    Good,
    /// Mean within the p95 limit (RSS growth under the critical level).
    Acceptable,
    /// Slower (or larger) than that, or too many failures.
    Poor,
}

/// The raw loop a result is compared with, measured in the same run on the same keys and bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Baseline {
    /// What the loop does (`raw GET`, `raw SET PX`, …).
    pub name: String,
    /// Its figures.
    pub measured: Measured,
}

/// One workload's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct BenchmarkResult {
    /// A unique name: workload, target, size and tasks (`l2_hit_generic_1k_c8`).
    pub name: String,
    /// The workload.
    pub workload: Workload,
    /// What ran it (`generic` for a byte cache, `ai` for the AI cache, `codec` for compression).
    pub target: String,
    /// Concurrent tasks.
    pub concurrency: usize,
    /// Bytes of each value (or of each text, for the AI cache and compression).
    pub value_size: usize,
    /// The contender's figures.
    pub measured: Measured,
    /// The baseline, when the workload has one.
    pub baseline: Option<Baseline>,
    /// Contender ops/s divided by baseline ops/s.
    pub ratio: Option<f64>,
    /// Payload bytes moved (read or written) by the timed operations.
    pub bytes_moved: u64,
    /// Stored size over original size, for workloads that compress.
    pub compression_ratio: Option<f64>,
    /// RSS growth over the workload, in bytes (when the platform tells).
    pub rss_delta_bytes: Option<i64>,
    /// What the L1 accounted for itself after the workload, in bytes.
    pub l1_bytes: Option<u64>,
    /// Requests the store sent to Redis per operation (counted by the store itself).
    pub commands_per_op: Option<f64>,
    /// The latency grade.
    pub grade: Grade,
    /// The memory grade (from the RSS growth).
    pub memory_grade: Grade,
}

impl BenchmarkResult {
    pub(crate) fn grade(&mut self, thresholds: &Thresholds) {
        let limits: &LatencyLimits = match self.workload {
            Workload::L1Hit => &thresholds.memory_cache,
            Workload::Compression => &thresholds.compression,
            _ => &thresholds.basic,
        };
        let l = &self.measured.latency;
        let ms = |us: f64| us / 1000.0;
        let mut grade = if ms(l.mean_us) <= limits.avg_ms
            && ms(l.p95_us) <= limits.p95_ms
            && ms(l.p99_us) <= limits.p99_ms
        {
            Grade::Good
        } else if ms(l.mean_us) <= limits.p95_ms {
            Grade::Acceptable
        } else {
            Grade::Poor
        };
        let rate = self.measured.success_rate();
        let (warn, critical) = thresholds.success_rate_pct;
        if rate < critical {
            grade = Grade::Poor;
        } else if rate < warn && grade == Grade::Good {
            grade = Grade::Acceptable;
        }
        self.grade = grade;
        #[allow(clippy::cast_precision_loss, reason = "megabytes for a grade")]
        let grown_mb = self.rss_delta_bytes.unwrap_or(0).max(0) as f64 / 1_000_000.0;
        let (warn, critical) = thresholds.memory_mb;
        self.memory_grade = if grown_mb < warn {
            Grade::Good
        } else if grown_mb < critical {
            Grade::Acceptable
        } else {
            Grade::Poor
        };
    }
}

/// Everything one suite run produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct BenchmarkReport {
    /// When it ran, in ms since the Unix epoch.
    pub started_at_ms: u64,
    /// The settings it ran with.
    pub settings: BenchSettings,
    /// One per workload run.
    pub results: Vec<BenchmarkResult>,
}

impl BenchmarkReport {
    /// The result named `name`.
    pub fn result(&self, name: &str) -> Option<&BenchmarkResult> {
        self.results.iter().find(|r| r.name == name)
    }

    /// The report as JSON (what [`RegressionCheck`](crate::RegressionCheck) reads back).
    ///
    /// # Errors
    /// [`ErrorKind::Serialization`](cache_core::ErrorKind::Serialization) (never for a report this
    /// crate made).
    pub fn to_json(&self) -> cache_core::Result<String> {
        serde_json::to_string_pretty(self).map_err(|e| {
            cache_core::Error::new(
                cache_core::ErrorKind::Serialization,
                "cannot write the report",
            )
            .with_source(e)
        })
    }

    /// A report read back from [`to_json`](Self::to_json)'s output.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](cache_core::ErrorKind::InvalidInput) for text that is not one.
    pub fn from_json(text: &str) -> cache_core::Result<Self> {
        serde_json::from_str(text).map_err(|e| {
            cache_core::Error::new(
                cache_core::ErrorKind::InvalidInput,
                "not a benchmark report",
            )
            .with_context("line", e.line())
            .with_source(e)
        })
    }
}
