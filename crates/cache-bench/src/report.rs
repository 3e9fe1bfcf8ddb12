//! Reporters: a terminal table, Markdown, JSON, and an SVG chart of latency percentiles and
//! throughput per workload.

use std::fmt::Write as _;

use cache_core::Result;

use crate::regression::{Regression, RegressionLevel};
use crate::result::{BenchmarkReport, BenchmarkResult, Grade};

fn grade(g: Grade) -> &'static str {
    match g {
        Grade::Good => "good",
        Grade::Acceptable => "acceptable",
        Grade::Poor => "poor",
    }
}

fn ratio(r: &BenchmarkResult) -> String {
    r.ratio
        .map_or_else(|| "-".to_owned(), |x| format!("{x:.3}"))
}

fn baseline_ops(r: &BenchmarkResult) -> String {
    r.baseline.as_ref().map_or_else(
        || "-".to_owned(),
        |b| format!("{:.0}", b.measured.ops_per_sec),
    )
}

fn commands(r: &BenchmarkResult) -> String {
    r.commands_per_op
        .map_or_else(|| "-".to_owned(), |c| format!("{c:.2}"))
}

/// A fixed-width table for a terminal.
pub fn table(report: &BenchmarkReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<34} {:>11} {:>11} {:>7} {:>9} {:>9} {:>9} {:>7} {:>6}  grade",
        "result", "ops/s", "baseline", "ratio", "p50 µs", "p95 µs", "p99 µs", "ok %", "cmd/op"
    );
    for r in &report.results {
        let l = &r.measured.latency;
        let _ = writeln!(
            out,
            "{:<34} {:>11.0} {:>11} {:>7} {:>9.0} {:>9.0} {:>9.0} {:>7.1} {:>6}  {}",
            r.name,
            r.measured.ops_per_sec,
            baseline_ops(r),
            ratio(r),
            l.p50_us,
            l.p95_us,
            l.p99_us,
            r.measured.success_rate(),
            commands(r),
            grade(r.grade)
        );
    }
    out
}

/// A Markdown report: the settings, one row per result, and the regressions if given.
pub fn markdown(report: &BenchmarkReport, regressions: Option<&[Regression]>) -> String {
    let s = &report.settings;
    let mut out = format!(
        "# aicache benchmark\n\nPreset `{}`: {} iterations, {} warm-up, tasks {:?}, values of {} bytes.\n\n",
        s.preset.as_str(),
        s.iterations,
        s.warmup,
        s.concurrency,
        s.value_size
    );
    out.push_str("| result | ops/s | baseline | ratio | p50 µs | p95 µs | p99 µs | max µs | ok % | cmd/op | compression | grade | memory |\n");
    out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|\n");
    for r in &report.results {
        let l = &r.measured.latency;
        let _ = writeln!(
            out,
            "| `{}` | {:.0} | {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.1} | {} | {} | {} | {} |",
            r.name,
            r.measured.ops_per_sec,
            baseline_ops(r),
            ratio(r),
            l.p50_us,
            l.p95_us,
            l.p99_us,
            l.max_us,
            r.measured.success_rate(),
            commands(r),
            r.compression_ratio
                .map_or_else(|| "-".to_owned(), |c| format!("{c:.3}")),
            grade(r.grade),
            grade(r.memory_grade)
        );
    }
    if let Some(regressions) = regressions {
        out.push_str("\n## Regressions\n\n");
        if regressions.is_empty() {
            out.push_str("None past the warning level.\n");
        }
        for g in regressions {
            let level = match g.level {
                RegressionLevel::Warning => "warning",
                _ => "**critical**",
            };
            let _ = writeln!(
                out,
                "- {level}: `{}` {} {:.1} → {:.1} ({:.1} % worse)",
                g.result, g.metric, g.before, g.after, g.worse_by_pct
            );
        }
    }
    out
}

/// The report as JSON ([`BenchmarkReport::to_json`]).
///
/// # Errors
/// As [`BenchmarkReport::to_json`].
pub fn json(report: &BenchmarkReport) -> Result<String> {
    report.to_json()
}

/// An SVG chart: latency percentiles (p50, p95, p99, max) as one line per result, and
/// throughput as one bar per result. Drawn with plotters' SVG backend only (no system fonts).
///
/// # Errors
/// [`ErrorKind::Backend`](cache_core::ErrorKind::Backend) when drawing fails.
pub fn svg(report: &BenchmarkReport) -> Result<String> {
    crate::chart::draw(report)
}
