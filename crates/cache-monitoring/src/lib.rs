//! aicache's monitoring.
//!
//! This crate will hold `CachePerformanceMonitor`, the implementation of `cache_core::Recorder`:
//! hit rates per operation and tier, latency percentiles from histograms, compression, memory and
//! invalidation metrics, summaries and recommendations. It performs no I/O: cache-redis hands it
//! the Redis figures. See the monitoring issue and `ARCHITECTURE.md`.
