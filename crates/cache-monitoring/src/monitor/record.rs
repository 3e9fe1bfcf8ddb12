//! [`CachePerformanceMonitor`] as a [`Recorder`]: every event the data path reports lands here.

use std::time::Duration;

use cache_core::{
    BreakerState, CacheOp, ErrorKind, Layer, MemoryReading, Outcome, Recorder, RequestEvent, Usage,
};

use cache_core::unix_millis;

use crate::clock::now_ms;

use super::*;

impl Recorder for CachePerformanceMonitor {
    fn record_operation(&self, op: CacheOp, layer: Layer, outcome: Outcome, elapsed: Duration) {
        let s = self.series(op, layer);
        // How many events of this outcome came before: one in `latency_sample_every` of each
        // outcome is timed, the first included (failures, rare, all are).
        let before = match outcome {
            Outcome::Hit => s.hits.fetch_add(1, Ordering::Relaxed),
            Outcome::Miss => s.misses.fetch_add(1, Ordering::Relaxed),
            Outcome::Failed(kind) => {
                *lock(&s.failures).entry(kind.as_str()).or_default() += 1;
                0
            }
            _ => s.done.fetch_add(1, Ordering::Relaxed),
        };
        if before.is_multiple_of(u64::from(self.config.latency_sample_every.get())) {
            lock(&s.latency).record(now_ms(), micros(elapsed));
        }
        if elapsed > self.config.slow_operation {
            let metric = PerformanceMetric {
                timestamp_ms: unix_millis(),
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
            timestamp_ms: unix_millis(),
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
        self.requests.record(request);
        if request.outcome != Outcome::Hit {
            return;
        }
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

    fn record_breaker(&self, from: BreakerState, to: BreakerState) {
        self.requests
            .record_breaker(from, to, unix_millis(), self.config.max_measurements);
    }
}
