//! Regression checks: a run compared with a saved one, result by result.

use serde::{Deserialize, Serialize};

use crate::result::BenchmarkReport;

/// How bad a regression is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RegressionLevel {
    /// Past the warning percentage.
    Warning,
    /// Past the critical percentage.
    Critical,
}

/// One figure that got worse.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Regression {
    /// The result's name.
    pub result: String,
    /// The figure (`ops_per_sec`, `p95_us`, `p99_us`).
    pub metric: &'static str,
    /// The saved value.
    pub before: f64,
    /// This run's value.
    pub after: f64,
    /// How much worse, in percent.
    pub worse_by_pct: f64,
    /// Warning or critical.
    pub level: RegressionLevel,
}

/// Compares runs by the warning and critical percentages of the settings' thresholds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RegressionCheck {
    warning_pct: f64,
    critical_pct: f64,
}

impl RegressionCheck {
    /// A check flagging figures worse by `warning_pct` (warning) and `critical_pct` (critical).
    pub const fn new(warning_pct: f64, critical_pct: f64) -> Self {
        Self {
            warning_pct,
            critical_pct,
        }
    }

    /// The check of `report`'s own thresholds.
    pub fn of(report: &BenchmarkReport) -> Self {
        let (warning, critical) = report.settings.thresholds.regression_pct;
        Self::new(warning, critical)
    }

    /// The figures of `current` worse than in `saved` past the warning percentage, worst first.
    /// Results present in only one of them are not compared. Throughput is compared as a ratio
    /// to the same run's baseline when both runs have one (so a slower machine is not a
    /// regression), else as ops/s.
    pub fn compare(&self, saved: &BenchmarkReport, current: &BenchmarkReport) -> Vec<Regression> {
        let mut found = Vec::new();
        for now in &current.results {
            let Some(before) = saved.result(&now.name) else {
                continue;
            };
            let throughput = match (before.ratio, now.ratio) {
                (Some(b), Some(a)) => ("ratio", b, a),
                _ => (
                    "ops_per_sec",
                    before.measured.ops_per_sec,
                    now.measured.ops_per_sec,
                ),
            };
            // Lower is worse for throughput, higher is worse for latencies.
            let figures = [
                (throughput.0, throughput.1, throughput.2, true),
                (
                    "p95_us",
                    before.measured.latency.p95_us,
                    now.measured.latency.p95_us,
                    false,
                ),
                (
                    "p99_us",
                    before.measured.latency.p99_us,
                    now.measured.latency.p99_us,
                    false,
                ),
            ];
            for (metric, b, a, higher_is_better) in figures {
                if b <= 0.0 {
                    continue;
                }
                let worse = if higher_is_better {
                    (b - a) / b
                } else {
                    (a - b) / b
                } * 100.0;
                let level = if worse >= self.critical_pct {
                    RegressionLevel::Critical
                } else if worse >= self.warning_pct {
                    RegressionLevel::Warning
                } else {
                    continue;
                };
                found.push(Regression {
                    result: now.name.clone(),
                    metric,
                    before: b,
                    after: a,
                    worse_by_pct: worse,
                    level,
                });
            }
        }
        found.sort_by(|x, y| y.worse_by_pct.total_cmp(&x.worse_by_pct));
        found
    }
}
