//! Forwarding to the [`metrics`] facade, so any `metrics` recorder (Prometheus, StatsD, …) sees
//! the cache. With the `prometheus` feature, the Prometheus exporter is re-exported.

use std::sync::Arc;
use std::time::Duration;

mod keys;

use keys::{OPERATION_KEYS, RequestKeys, outcome_label};

use cache_core::{
    BreakerState, CacheOp, ErrorKind, Layer, MemoryReading, Outcome, Recorder, RequestEvent, Usage,
};

/// A [`Recorder`] that emits `metrics` counters and histograms:
///
/// | name | kind | labels |
/// |---|---|---|
/// | `aicache_operations_total` | counter | `operation`, `layer`, `outcome` |
/// | `aicache_operation_seconds` | histogram | `operation`, `layer` |
/// | `aicache_compressed_bytes_total` | counter | `stage` (`original`, `stored`) |
/// | `aicache_corrupt_entries_total` | counter | `layer` |
/// | `aicache_invalidated_entries_total` | counter | |
/// | `aicache_requests_total` | counter | `operation` (AI operation), `tier` (text tier), `layer`, `outcome` |
/// | `aicache_request_seconds` | histogram | `operation`, `tier` |
/// | `aicache_computations_total` | counter | `operation` |
/// | `aicache_compute_seconds` | histogram | `operation` |
/// | `aicache_tokens_total` | counter | `operation`, `kind` (`used`, `saved`) |
/// | `aicache_cost_micros_total` | counter | `operation`, `kind` (`used`, `saved`): millionths of the caller's currency |
/// | `aicache_breaker_state` | gauge | (0 closed, 1 half-open, 2 open) |
/// | `aicache_breaker_transitions_total` | counter | `to` |
/// | `aicache_l1_entries`, `aicache_l1_bytes`, `aicache_redis_used_memory_bytes`, `aicache_redis_maxmemory_bytes` | gauge | |
///
/// Keys are built once per label set (AI operations: the first
/// [`MAX_TRACKED_OPERATIONS`](crate::MAX_TRACKED_OPERATIONS) names seen by this process, the
/// rest labelled [`OTHER_OPERATIONS`](crate::OTHER_OPERATIONS)), so recording costs no
/// allocation; every event goes to the recorder in scope when it happens. Nothing is recorded until the application installs a `metrics` recorder.
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct MetricsRecorder;

impl Recorder for MetricsRecorder {
    fn record_operation(&self, op: CacheOp, layer: Layer, outcome: Outcome, elapsed: Duration) {
        let keys = &*OPERATION_KEYS;
        if let (Some(total), Some(seconds)) =
            (keys.total(op, layer, outcome), keys.seconds(op, layer))
        {
            keys::counter(total).increment(1);
            keys::histogram(seconds).record(elapsed.as_secs_f64());
            return;
        }
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

    fn record_request(&self, request: &RequestEvent<'_>) {
        record_request_to(RequestKeys::of(request.operation), request);
    }

    fn record_compute(&self, operation: &Arc<str>, elapsed: Duration, usage: Option<Usage>) {
        let keys = RequestKeys::of(operation);
        keys::counter(&keys.computations).increment(1);
        keys::histogram(&keys.compute_seconds).record(elapsed.as_secs_f64());
        if let Some(usage) = usage {
            record_usage(keys, false, usage);
        }
    }

    fn record_breaker(&self, _from: BreakerState, to: BreakerState) {
        metrics::gauge!("aicache_breaker_state").set(Self::breaker_level(to));
        metrics::counter!("aicache_breaker_transitions_total", "to" => to.as_str()).increment(1);
    }

    fn record_memory(&self, reading: &MemoryReading) {
        #[expect(
            clippy::cast_precision_loss,
            reason = "gauges are f64; counts far below 2^52"
        )]
        let gauge = |n: u64| n as f64;
        metrics::gauge!("aicache_l1_entries").set(gauge(reading.l1_entries));
        metrics::gauge!("aicache_l1_bytes").set(gauge(reading.l1_bytes));
        if let Some(redis) = reading.redis {
            metrics::gauge!("aicache_redis_used_memory_bytes").set(gauge(redis.used_bytes));
            metrics::gauge!("aicache_redis_maxmemory_bytes").set(gauge(redis.max_bytes));
        }
    }
}

impl MetricsRecorder {
    /// The gauge value of a breaker state.
    fn breaker_level(state: BreakerState) -> f64 {
        match state {
            BreakerState::Closed => 0.0,
            BreakerState::HalfOpen => 1.0,
            _ => 2.0,
        }
    }
}

/// Tokens and cost `saved` by a hit, or used by a computation.
fn record_usage(keys: &RequestKeys, saved: bool, usage: Usage) {
    let (tokens, cost) = keys.usage(saved);
    keys::counter(tokens).increment(usage.tokens);
    keys::counter(cost).increment(usage.cost_micros());
}

/// The Prometheus exporter (feature `prometheus`): build a recorder with
/// `PrometheusBuilder::new().build_recorder()`, install it, and serve `handle.render()`.
#[cfg(feature = "prometheus")]
pub use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

/// Records `request` under `keys` (its operation's).
fn record_request_to(keys: &RequestKeys, request: &RequestEvent<'_>) {
    if let (Some(total), Some(seconds)) = (
        keys.total(request.text_tier, request.layer, request.outcome),
        keys.seconds(request.text_tier),
    ) {
        keys::counter(total).increment(1);
        keys::histogram(seconds).record(request.elapsed.as_secs_f64());
        if let Some(saved) = request.saved {
            record_usage(keys, true, saved);
        }
        return;
    }
    // A tier this recorder does not know: labelled as it is, at the price of building keys.
    let operation = metrics::SharedString::from(Arc::clone(request.operation));
    metrics::counter!(
        "aicache_requests_total",
        "operation" => operation.clone(),
        "tier" => request.text_tier,
        "layer" => request.layer.as_str(),
        "outcome" => outcome_label(request.outcome)
    )
    .increment(1);
    metrics::histogram!(
        "aicache_request_seconds",
        "operation" => operation.clone(),
        "tier" => request.text_tier
    )
    .record(request.elapsed.as_secs_f64());
    if let Some(saved) = request.saved {
        record_usage(keys, true, saved);
    }
}

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
            let op: Arc<str> = Arc::from("summarize");
            ours.record_compute(&op, Duration::from_millis(80), Some(Usage::new(500, 0.25)));
            ours.record_request(
                &RequestEvent::new(
                    &op,
                    "medium",
                    Outcome::Hit,
                    Layer::L2,
                    Duration::from_micros(300),
                )
                .with_saved(Some(Usage::new(500, 0.25))),
            );
            let mut reading = MemoryReading::default();
            reading.l1_entries = 12;
            reading.redis = cache_core::RedisMemory::parse_info("used_memory:4096\r\n");
            ours.record_memory(&reading);
            ours.record_breaker(BreakerState::Closed, BreakerState::Open);
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
            r#"aicache_requests_total{operation="summarize",tier="medium",layer="l2",outcome="hit"} 1"#,
            r#"aicache_request_seconds{operation="summarize",tier="medium""#,
            r#"aicache_computations_total{operation="summarize"} 1"#,
            r#"aicache_compute_seconds{operation="summarize""#,
            r#"aicache_tokens_total{operation="summarize",kind="used"} 500"#,
            r#"aicache_tokens_total{operation="summarize",kind="saved"} 500"#,
            r#"aicache_cost_micros_total{operation="summarize",kind="saved"} 250000"#,
            "aicache_l1_entries 12",
            "aicache_redis_used_memory_bytes 4096",
            "aicache_breaker_state 2",
            r#"aicache_breaker_transitions_total{to="open"} 1"#,
        ] {
            assert!(text.contains(series), "missing {series} in:\n{text}");
        }
    }
}
