//! aicache's monitoring.
//!
//! [`CachePerformanceMonitor`] implements [`cache_core::Recorder`]: hand it to a cache
//! (`GenericRedisCache::builder(..).recorder(..)`) and it keeps, per operation and tier, windowed latency
//! histograms (hdrhistogram: percentiles without sorting copies) and hit/miss counts (hit rate
//! over reads only), compression figures, undecodable entries, memory readings and invalidation
//! events, bounded by a time window and a sample count. It performs no I/O; the caches hand it the
//! Redis figures. Summaries, findings and [`export_metrics`](CachePerformanceMonitor::export_metrics)
//! (serde) report it. [`MetricsRecorder`] sends the same events to the `metrics` facade (and so to
//! Prometheus), and [`CompositeRecorder`] lets one cache feed both.

mod clock;
mod composite;
mod export;
mod monitor;
mod operations;
mod window;

pub use composite::CompositeRecorder;
pub use export::MetricsRecorder;
#[cfg(feature = "prometheus")]
pub use export::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
pub use monitor::{
    BreakerMetric, BreakerTransition, CachePerformanceMonitor, CompressionMetric, Finding,
    InvalidationMetric, InvalidationStats, MemoryUsageMetric, MonitorConfig, MonitorSnapshot,
    OperationSummary, PerformanceMetric, RequestSummary, SavingsMetric, Severity,
};
pub use operations::{MAX_TRACKED_OPERATIONS, OTHER_OPERATIONS, OperationTable};
pub use window::{LatencySummary, LatencyWindow, MAX_WINDOW_BYTES};
