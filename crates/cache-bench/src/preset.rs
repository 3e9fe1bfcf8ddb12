//! Presets and thresholds (the Python suite's, §A.20 of the original), overridable from a
//! configuration file (the types deserialize) and from `AICACHE_BENCH_*` variables.

use cache_core::{Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};

/// Latency limits of one class of operation, in milliseconds: mean, p95, p99.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LatencyLimits {
    /// The mean a "good" result stays under.
    pub avg_ms: f64,
    /// The p95 a "good" result stays under (and an "acceptable" mean).
    pub p95_ms: f64,
    /// The p99 a "good" result stays under.
    pub p99_ms: f64,
}

impl LatencyLimits {
    const fn new(avg_ms: f64, p95_ms: f64, p99_ms: f64) -> Self {
        Self {
            avg_ms,
            p95_ms,
            p99_ms,
        }
    }
}

/// What a result is graded and checked against.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Thresholds {
    /// Operations that reach Redis.
    pub basic: LatencyLimits,
    /// Operations answered by the in-process tier.
    pub memory_cache: LatencyLimits,
    /// Frame compression.
    pub compression: LatencyLimits,
    /// RSS growth during a workload, warning and critical, in MB.
    pub memory_mb: (f64, f64),
    /// A regression against a saved baseline, warning and critical, in percent.
    pub regression_pct: (f64, f64),
    /// Success rates below these (percent) are a warning and critical.
    pub success_rate_pct: (f64, f64),
}

impl Default for Thresholds {
    /// The Python suite's defaults (the `testing` preset).
    fn default() -> Self {
        Self {
            basic: LatencyLimits::new(50.0, 100.0, 200.0),
            memory_cache: LatencyLimits::new(5.0, 10.0, 20.0),
            compression: LatencyLimits::new(100.0, 200.0, 500.0),
            memory_mb: (50.0, 100.0),
            regression_pct: (10.0, 25.0),
            success_rate_pct: (95.0, 90.0),
        }
    }
}

/// A named set of iterations, warm-up and thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Preset {
    /// 50 iterations, 5 warm-up, loose limits.
    Development,
    /// 100 iterations, 10 warm-up, the default limits.
    #[default]
    Testing,
    /// 500 iterations, 20 warm-up, strict limits.
    Production,
    /// 200 iterations, 10 warm-up, limits for shared CI machines.
    Ci,
}

impl Preset {
    /// Every preset.
    pub const ALL: [Self; 4] = [Self::Development, Self::Testing, Self::Production, Self::Ci];

    /// The preset's name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Development => "development",
            Self::Testing => "testing",
            Self::Production => "production",
            Self::Ci => "ci",
        }
    }

    /// The preset named `name`.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] naming the value and the presets.
    pub fn parse(name: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str() == name)
            .ok_or_else(|| {
                Error::new(ErrorKind::Config, "unknown benchmark preset")
                    .with_context("field", "preset")
                    .with_context("value", name)
                    .with_context("allowed", "development, testing, production, ci")
            })
    }

    /// The preset's settings.
    pub fn settings(self) -> BenchSettings {
        let (iterations, warmup, thresholds) = match self {
            Self::Development => (
                50,
                5,
                Thresholds {
                    basic: LatencyLimits::new(100.0, 200.0, 400.0),
                    memory_cache: LatencyLimits::new(10.0, 20.0, 40.0),
                    compression: LatencyLimits::new(200.0, 400.0, 800.0),
                    memory_mb: (100.0, 200.0),
                    regression_pct: (15.0, 30.0),
                    ..Thresholds::default()
                },
            ),
            Self::Testing => (100, 10, Thresholds::default()),
            Self::Production => (
                500,
                20,
                Thresholds {
                    basic: LatencyLimits::new(25.0, 50.0, 100.0),
                    memory_cache: LatencyLimits::new(2.0, 5.0, 10.0),
                    compression: LatencyLimits::new(50.0, 100.0, 200.0),
                    memory_mb: (25.0, 50.0),
                    regression_pct: (5.0, 10.0),
                    ..Thresholds::default()
                },
            ),
            Self::Ci => (
                200,
                10,
                Thresholds {
                    basic: LatencyLimits::new(75.0, 150.0, 300.0),
                    memory_cache: LatencyLimits::new(7.0, 15.0, 30.0),
                    compression: LatencyLimits::new(150.0, 300.0, 600.0),
                    memory_mb: (75.0, 150.0),
                    regression_pct: (12.0, 20.0),
                    ..Thresholds::default()
                },
            ),
        };
        BenchSettings {
            preset: self,
            iterations,
            warmup,
            concurrency: vec![1, 8],
            value_size: 1024,
            text_sizes: vec![200, 2_000, 20_000, 60_000],
            thresholds,
        }
    }
}

/// How a suite runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct BenchSettings {
    /// The preset these settings started from.
    pub preset: Preset,
    /// Timed operations per workload (split over the tasks).
    pub iterations: usize,
    /// Untimed operations before them.
    pub warmup: usize,
    /// Each workload runs once per entry: sequential (1) and with N concurrent tasks.
    pub concurrency: Vec<usize>,
    /// Bytes of each value the byte-cache workloads write (and of each AI answer).
    pub value_size: usize,
    /// Characters of the texts the AI workloads key on: by default one text per tier (small,
    /// medium, large, xlarge at the default tier thresholds).
    pub text_sizes: Vec<usize>,
    /// What results are graded against.
    pub thresholds: Thresholds,
}

impl Default for BenchSettings {
    fn default() -> Self {
        Preset::Testing.settings()
    }
}

fn env_number<T: std::str::FromStr>(
    name: &'static str,
    allowed: &'static str,
) -> Result<Option<T>> {
    match std::env::var(name) {
        Ok(text) => text.trim().parse::<T>().map(Some).map_err(|_| {
            Error::new(ErrorKind::Config, "not a number")
                .with_context("field", name)
                .with_context("value", text)
                .with_context("allowed", allowed)
        }),
        Err(_) => Ok(None),
    }
}

fn env_list(name: &'static str, example: &'static str) -> Result<Option<Vec<usize>>> {
    let Ok(text) = std::env::var(name) else {
        return Ok(None);
    };
    text.split(',')
        .map(|part| part.trim().parse::<usize>())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map(Some)
        .map_err(|_| {
            Error::new(ErrorKind::Config, "not a list of numbers")
                .with_context("field", name)
                .with_context("value", &text)
                .with_context(
                    "allowed",
                    format!("comma-separated numbers, e.g. {example}"),
                )
        })
}

impl BenchSettings {
    /// The settings of `AICACHE_BENCH_PRESET` (or `fallback`), with `AICACHE_BENCH_ITERATIONS`,
    /// `_WARMUP`, `_CONCURRENCY` and `_TEXT_SIZES` (comma-separated), `_VALUE_SIZE`,
    /// `_THRESHOLD_BASIC_AVG_MS` / `_P95_MS` / `_P99_MS`, `_THRESHOLD_MEMORY_CACHE_AVG_MS`,
    /// `_THRESHOLD_REGRESSION_WARNING_PCT` / `_CRITICAL_PCT` applied over it.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] naming the variable, its value and what is allowed.
    pub fn from_env(fallback: Preset) -> Result<Self> {
        let preset = match std::env::var("AICACHE_BENCH_PRESET") {
            Ok(name) => Preset::parse(name.trim())?,
            Err(_) => fallback,
        };
        let mut settings = preset.settings();
        if let Some(n) = env_number("AICACHE_BENCH_ITERATIONS", "1..=10000000")? {
            settings.iterations = n;
        }
        if let Some(n) = env_number("AICACHE_BENCH_WARMUP", "0..=10000000")? {
            settings.warmup = n;
        }
        if let Some(n) = env_number("AICACHE_BENCH_VALUE_SIZE", "1..=67108864 bytes")? {
            settings.value_size = n;
        }
        if let Some(list) = env_list("AICACHE_BENCH_CONCURRENCY", "1,8,50")? {
            settings.concurrency = list;
        }
        if let Some(list) = env_list("AICACHE_BENCH_TEXT_SIZES", "200,2000,20000,60000")? {
            settings.text_sizes = list;
        }
        let t = &mut settings.thresholds;
        let ms = "a positive number of milliseconds";
        for (name, slot) in [
            ("AICACHE_BENCH_THRESHOLD_BASIC_AVG_MS", &mut t.basic.avg_ms),
            ("AICACHE_BENCH_THRESHOLD_BASIC_P95_MS", &mut t.basic.p95_ms),
            ("AICACHE_BENCH_THRESHOLD_BASIC_P99_MS", &mut t.basic.p99_ms),
            (
                "AICACHE_BENCH_THRESHOLD_MEMORY_CACHE_AVG_MS",
                &mut t.memory_cache.avg_ms,
            ),
            (
                "AICACHE_BENCH_THRESHOLD_REGRESSION_WARNING_PCT",
                &mut t.regression_pct.0,
            ),
            (
                "AICACHE_BENCH_THRESHOLD_REGRESSION_CRITICAL_PCT",
                &mut t.regression_pct.1,
            ),
        ] {
            if let Some(value) = env_number::<f64>(name, ms)? {
                *slot = value;
            }
        }
        settings.validate()?;
        Ok(settings)
    }

    /// Checks the settings.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] naming the field, the value and what is allowed.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &'static str, value: String, allowed: &'static str| {
            Err(
                Error::new(ErrorKind::Config, "benchmark setting out of range")
                    .with_context("field", field)
                    .with_context("value", value)
                    .with_context("allowed", allowed),
            )
        };
        if !(1..=10_000_000).contains(&self.iterations) {
            return bad("iterations", self.iterations.to_string(), "1..=10000000");
        }
        if self.concurrency.is_empty() || self.concurrency.iter().any(|c| !(1..=4096).contains(c)) {
            return bad(
                "concurrency",
                format!("{:?}", self.concurrency),
                "1..=4096 tasks, at least one entry",
            );
        }
        if self.text_sizes.iter().any(|c| !(1..=1_000_000).contains(c)) {
            return bad(
                "text_sizes",
                format!("{:?}", self.text_sizes),
                "1..=1000000 characters each",
            );
        }
        if !(1..=64 * 1024 * 1024).contains(&self.value_size) {
            return bad(
                "value_size",
                self.value_size.to_string(),
                "1..=67108864 bytes",
            );
        }
        let (warning, critical) = self.thresholds.regression_pct;
        if !(warning > 0.0 && critical >= warning) {
            return bad(
                "thresholds.regression_pct",
                format!("{warning}/{critical}"),
                "0 < warning <= critical",
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_have_the_python_suites_figures_and_names() {
        let ci = Preset::Ci.settings();
        assert_eq!((ci.iterations, ci.warmup), (200, 10));
        assert_eq!(ci.thresholds.basic.p99_ms, 300.0);
        assert_eq!(
            Preset::Production.settings().thresholds.regression_pct,
            (5.0, 10.0)
        );
        assert_eq!(Preset::parse("development").unwrap(), Preset::Development);
        let error = Preset::parse("fast").unwrap_err();
        assert_eq!(error.context_value("value"), Some("fast"));
        let mut bad = Preset::Testing.settings();
        bad.concurrency = vec![0];
        assert_eq!(
            bad.validate().unwrap_err().context_value("field"),
            Some("concurrency")
        );
        assert!(BenchSettings::default().validate().is_ok());
    }
}
