//! Forwarding to the [`metrics`] facade, so any `metrics` recorder (Prometheus, StatsD, …) sees
//! the cache. With the `prometheus` feature, the Prometheus exporter is re-exported.

use std::time::Duration;

use cache_core::{CacheOp, ErrorKind, Layer, Outcome, Recorder};

/// A [`Recorder`] that emits `metrics` counters and histograms:
///
/// | name | kind | labels |
/// |---|---|---|
/// | `aicache_operations_total` | counter | `operation`, `layer`, `outcome` |
/// | `aicache_operation_seconds` | histogram | `operation`, `layer` |
/// | `aicache_compressed_bytes_total` | counter | `stage` (`original`, `stored`) |
/// | `aicache_corrupt_entries_total` | counter | `layer` |
/// | `aicache_invalidated_entries_total` | counter | |
///
/// Nothing is recorded until the application installs a `metrics` recorder.
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct MetricsRecorder;

fn outcome_label(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Hit => "hit",
        Outcome::Miss => "miss",
        Outcome::Failed(_) => "failed",
        _ => "done",
    }
}

impl Recorder for MetricsRecorder {
    fn record_operation(&self, op: CacheOp, layer: Layer, outcome: Outcome, elapsed: Duration) {
        metrics::counter!(
            "aicache_operations_total",
            "operation" => op.as_str(),
            "layer" => layer.as_str(),
            "outcome" => outcome_label(outcome)
        )
        .increment(1);
        metrics::histogram!(
            "aicache_operation_seconds",
            "operation" => op.as_str(),
            "layer" => layer.as_str()
        )
        .record(elapsed.as_secs_f64());
    }

    fn record_compression(&self, original_bytes: usize, stored_bytes: usize, _elapsed: Duration) {
        let bytes = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        metrics::counter!("aicache_compressed_bytes_total", "stage" => "original")
            .increment(bytes(original_bytes));
        metrics::counter!("aicache_compressed_bytes_total", "stage" => "stored")
            .increment(bytes(stored_bytes));
    }

    fn record_corrupt_entry(&self, layer: Layer, _kind: ErrorKind) {
        metrics::counter!("aicache_corrupt_entries_total", "layer" => layer.as_str()).increment(1);
    }

    fn record_invalidation(&self, _pattern: &str, removed: u64) {
        metrics::counter!("aicache_invalidated_entries_total").increment(removed);
    }
}

/// The Prometheus exporter (feature `prometheus`): build a recorder with
/// `PrometheusBuilder::new().build_recorder()`, install it, and serve `handle.render()`.
#[cfg(feature = "prometheus")]
pub use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

#[cfg(test)]
mod tests {
    use super::*;
    use metrics_exporter_prometheus::PrometheusBuilder;

    #[test]
    fn prometheus_output_has_the_series_and_labels() {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            let ours = MetricsRecorder;
            ours.record_operation(
                CacheOp::Get,
                Layer::L1,
                Outcome::Hit,
                Duration::from_micros(5),
            );
            ours.record_operation(
                CacheOp::Get,
                Layer::L2,
                Outcome::Miss,
                Duration::from_micros(90),
            );
            ours.record_operation(
                CacheOp::Get,
                Layer::L1,
                Outcome::Hit,
                Duration::from_micros(4),
            );
            ours.record_compression(1000, 300, Duration::from_micros(2));
            ours.record_corrupt_entry(Layer::L2, ErrorKind::Corrupted);
            ours.record_invalidation("qa:*", 7);
        });
        let text = handle.render();
        for series in [
            r#"aicache_operations_total{operation="get",layer="l1",outcome="hit"} 2"#,
            r#"aicache_operations_total{operation="get",layer="l2",outcome="miss"} 1"#,
            r#"aicache_compressed_bytes_total{stage="original"} 1000"#,
            r#"aicache_compressed_bytes_total{stage="stored"} 300"#,
            r#"aicache_corrupt_entries_total{layer="l2"} 1"#,
            "aicache_invalidated_entries_total 7",
            r#"aicache_operation_seconds{operation="get",layer="l1""#,
        ] {
            assert!(text.contains(series), "missing {series} in:\n{text}");
        }
    }
}
