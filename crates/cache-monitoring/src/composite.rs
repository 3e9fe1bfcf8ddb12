//! [`CompositeRecorder`]: one cache, several recorders.

use std::sync::Arc;
use std::time::Duration;

use cache_core::{
    BreakerState, CacheOp, ErrorKind, Layer, MemoryReading, Outcome, Recorder, RequestEvent, Usage,
};

/// Hands every measurement to each of its recorders in turn, so a cache (which holds one recorder)
/// can feed a [`CachePerformanceMonitor`](crate::CachePerformanceMonitor) and a
/// [`MetricsRecorder`](crate::MetricsRecorder) at once.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use cache_core::{CacheOp, Layer, Outcome, Recorder};
/// use cache_monitoring::{CachePerformanceMonitor, CompositeRecorder, MetricsRecorder};
///
/// let monitor = Arc::new(CachePerformanceMonitor::default());
/// let both = CompositeRecorder::new(vec![monitor.clone(), Arc::new(MetricsRecorder::default())]);
/// both.record_operation(CacheOp::Get, Layer::L1, Outcome::Hit, Duration::from_micros(2));
/// assert_eq!(monitor.reads(), (1, 0));
/// ```
#[derive(Debug, Clone, Default)]
pub struct CompositeRecorder {
    recorders: Vec<Arc<dyn Recorder>>,
}

impl CompositeRecorder {
    /// Forwards to `recorders`, in order.
    pub fn new(recorders: Vec<Arc<dyn Recorder>>) -> Self {
        Self { recorders }
    }

    /// Adds one more recorder.
    #[must_use]
    pub fn with(mut self, recorder: Arc<dyn Recorder>) -> Self {
        self.recorders.push(recorder);
        self
    }

    /// How many recorders it forwards to.
    pub fn len(&self) -> usize {
        self.recorders.len()
    }

    /// Whether it forwards to none.
    pub fn is_empty(&self) -> bool {
        self.recorders.is_empty()
    }
}

impl Recorder for CompositeRecorder {
    fn record_operation(&self, op: CacheOp, layer: Layer, outcome: Outcome, elapsed: Duration) {
        for r in &self.recorders {
            r.record_operation(op, layer, outcome, elapsed);
        }
    }

    fn record_compression(&self, original_bytes: usize, stored_bytes: usize, elapsed: Duration) {
        for r in &self.recorders {
            r.record_compression(original_bytes, stored_bytes, elapsed);
        }
    }

    fn record_corrupt_entry(&self, layer: Layer, kind: ErrorKind) {
        for r in &self.recorders {
            r.record_corrupt_entry(layer, kind);
        }
    }

    fn record_invalidation(&self, pattern: &str, removed: u64) {
        for r in &self.recorders {
            r.record_invalidation(pattern, removed);
        }
    }

    fn record_request(&self, request: &RequestEvent<'_>) {
        for r in &self.recorders {
            r.record_request(request);
        }
    }

    fn record_compute(&self, operation: &Arc<str>, elapsed: Duration, usage: Option<Usage>) {
        for r in &self.recorders {
            r.record_compute(operation, elapsed, usage);
        }
    }

    fn record_memory(&self, reading: &MemoryReading) {
        for r in &self.recorders {
            r.record_memory(reading);
        }
    }

    fn record_breaker(&self, from: BreakerState, to: BreakerState) {
        for r in &self.recorders {
            r.record_breaker(from, to);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CachePerformanceMonitor;

    #[test]
    fn every_event_reaches_every_recorder() {
        let first = Arc::new(CachePerformanceMonitor::default());
        let second = Arc::new(CachePerformanceMonitor::default());
        let both = CompositeRecorder::default()
            .with(first.clone())
            .with(second.clone());
        assert_eq!(both.len(), 2);
        let op: Arc<str> = Arc::from("qa");
        both.record_operation(
            CacheOp::Get,
            Layer::L2,
            Outcome::Miss,
            Duration::from_micros(9),
        );
        both.record_compression(100, 40, Duration::from_micros(1));
        both.record_corrupt_entry(Layer::L2, ErrorKind::Corrupted);
        both.record_invalidation("qa:*", 3);
        both.record_compute(&op, Duration::from_millis(5), Some(Usage::new(10, 0.5)));
        both.record_request(
            &RequestEvent::new(
                &op,
                "small",
                Outcome::Hit,
                Layer::L1,
                Duration::from_micros(1),
            )
            .with_saved(Some(Usage::new(10, 0.5))),
        );
        let mut reading = MemoryReading::default();
        reading.l1_entries = 7;
        both.record_memory(&reading);
        for monitor in [&first, &second] {
            let s = monitor.export_metrics();
            assert_eq!(s.misses, 1);
            assert_eq!(s.compression.count, 1);
            assert_eq!(s.corrupt_entries["l2"], 1);
            assert_eq!(s.invalidations.keys_removed, 3);
            assert_eq!((s.savings.computations, s.savings.tokens_saved), (1, 10));
            assert_eq!(s.memory.map(|m| m.l1_entries), Some(7));
        }
    }
}
