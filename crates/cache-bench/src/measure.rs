//! Timing: every operation of a run into an HDR histogram (microseconds), over one task or
//! several concurrent ones, and the throughput of the whole run.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Latency figures of a run, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Latencies {
    /// Mean.
    pub mean_us: f64,
    /// Median.
    pub p50_us: f64,
    /// 95th percentile.
    pub p95_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// Slowest.
    pub max_us: f64,
}

/// What one run measured.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Measured {
    /// Operations per second over the run's wall time.
    pub ops_per_sec: f64,
    /// The operations' latencies.
    pub latency: Latencies,
    /// Operations timed.
    pub operations: u64,
    /// Of those, the ones that succeeded.
    pub succeeded: u64,
}

impl Measured {
    /// Succeeded operations, in percent.
    pub fn success_rate(&self) -> f64 {
        if self.operations == 0 {
            return 0.0;
        }
        #[allow(clippy::cast_precision_loss, reason = "a percentage of counters")]
        let rate = 100.0 * self.succeeded as f64 / self.operations as f64;
        rate
    }
}

#[allow(
    clippy::expect_used,
    reason = "constant bounds (1 µs to 10 minutes, 3 digits) that the crate accepts: a proven invariant"
)]
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// Rounds a contender and its baseline alternate in (A B A B A B), so that the machine's drift
/// (a shared VM's round trip changes mode within seconds) hits both alike.
pub const ROUNDS: usize = 3;

/// One timed slice of a run.
struct Part {
    hist: Histogram<u64>,
    succeeded: u64,
    wall: f64,
}

/// Runs `op(i)` for every `i` of `range`, spread over `tasks` concurrent tasks, timing each call.
async fn run_part<F, Fut>(range: std::ops::Range<usize>, tasks: usize, op: &Arc<F>) -> Part
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    let len = range.len();
    let tasks = tasks.clamp(1, len.max(1));
    let started = Instant::now();
    let mut handles = Vec::with_capacity(tasks);
    for t in 0..tasks {
        let (op, range) = (Arc::clone(op), range.clone());
        handles.push(tokio::spawn(async move {
            let mut hist = histogram();
            let mut ok = 0u64;
            let mut i = range.start + t;
            while i < range.end {
                let began = Instant::now();
                if op(i).await {
                    ok += 1;
                }
                let _ = hist.record(micros(began.elapsed()));
                i += tasks;
            }
            (hist, ok)
        }));
    }
    let mut hist = histogram();
    let mut succeeded = 0;
    for handle in handles {
        if let Ok((part, ok)) = handle.await {
            let _ = hist.add(&part);
            succeeded += ok;
        }
    }
    Part {
        hist,
        succeeded,
        wall: started.elapsed().as_secs_f64().max(1e-9),
    }
}

/// The figures of several parts: latencies over all of them, throughput the median part's.
fn combine(parts: &[Part]) -> Measured {
    let mut all = histogram();
    let mut succeeded = 0;
    #[allow(clippy::cast_precision_loss, reason = "figures for a report")]
    let mut rates: Vec<f64> = parts
        .iter()
        .map(|p| {
            let _ = all.add(&p.hist);
            succeeded += p.succeeded;
            p.hist.len() as f64 / p.wall
        })
        .collect();
    rates.sort_by(f64::total_cmp);
    #[allow(clippy::cast_precision_loss, reason = "figures for a report")]
    let figure = |v: u64| v as f64;
    Measured {
        ops_per_sec: rates.get(rates.len() / 2).copied().unwrap_or(0.0),
        latency: Latencies {
            mean_us: all.mean(),
            p50_us: figure(all.value_at_quantile(0.50)),
            p95_us: figure(all.value_at_quantile(0.95)),
            p99_us: figure(all.value_at_quantile(0.99)),
            max_us: figure(all.max()),
        },
        operations: all.len(),
        succeeded,
    }
}

fn slice(round: usize, rounds: usize, iterations: usize) -> std::ops::Range<usize> {
    (round * iterations / rounds)..((round + 1) * iterations / rounds)
}

/// Runs `op(i)` for `i in 0..iterations` over `tasks` concurrent tasks (task `t` takes every
/// `tasks`-th index), timing each call.
pub(crate) async fn run<F, Fut>(iterations: usize, tasks: usize, op: F) -> Measured
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    combine(&[run_part(0..iterations, tasks, &Arc::new(op)).await])
}

/// Runs a contender and its baseline over the same indices in [`ROUNDS`] alternating slices
/// (contender slice 1, baseline slice 1, contender slice 2, …); each gets the median of its
/// slices' throughputs and the latencies of all of them.
pub(crate) async fn pair<F, Fut, G, Gut>(
    iterations: usize,
    tasks: usize,
    contender: F,
    baseline: G,
) -> (Measured, Measured)
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send + 'static,
    G: Fn(usize) -> Gut + Send + Sync + 'static,
    Gut: Future<Output = bool> + Send + 'static,
{
    let (contender, baseline) = (Arc::new(contender), Arc::new(baseline));
    let rounds = ROUNDS.clamp(1, iterations.max(1));
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        ours.push(run_part(slice(round, rounds, iterations), tasks, &contender).await);
        theirs.push(run_part(slice(round, rounds, iterations), tasks, &baseline).await);
    }
    (combine(&ours), combine(&theirs))
}

/// The process's resident set size in bytes (Linux `/proc/self/statm`; `None` elsewhere).
pub(crate) fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}
