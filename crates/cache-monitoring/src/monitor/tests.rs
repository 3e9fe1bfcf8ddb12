use super::*;
use cache_core::{ErrorKind, MemoryReading, Outcome, Recorder, RequestEvent};
use std::num::NonZeroU32;

fn us(v: u64) -> Duration {
    Duration::from_micros(v)
}

#[test]
fn empty_monitor_reports_well_formed_zeros() {
    let m = CachePerformanceMonitor::default();
    assert_eq!(m.hit_rate(), 0.0);
    let snapshot = m.export_metrics();
    assert!(snapshot.operations.is_empty());
    assert_eq!(snapshot.compression.count, 0);
    assert!(snapshot.memory.is_none());
    assert!(snapshot.memory_warnings.is_empty());
    assert!(snapshot.invalidation_recommendations.is_empty());
    assert!(
        serde_json::to_string(&snapshot)
            .unwrap()
            .contains("hit_rate")
    );
}

#[test]
fn hit_rate_counts_reads_only_and_percentiles_come_from_the_histogram() {
    let m = CachePerformanceMonitor::new(MonitorConfig {
        latency_sample_every: NonZeroU32::MIN,
        ..MonitorConfig::default()
    });
    for i in 1..=100u64 {
        let outcome = if i <= 75 { Outcome::Hit } else { Outcome::Miss };
        m.record_operation(CacheOp::Get, Layer::L2, outcome, us(i * 10));
    }
    for _ in 0..1000 {
        m.record_operation(CacheOp::Set, Layer::L2, Outcome::Done, us(5));
    }
    assert_eq!(m.hit_rate(), 0.75);
    let get = m.operation_summary(CacheOp::Get, Layer::L2);
    assert_eq!((get.hits, get.misses, get.latency.count), (75, 25, 100));
    assert!((495..=505).contains(&get.latency.p50_us), "{get:?}");
    assert!((985..=1000).contains(&get.latency.p99_us), "{get:?}");
    assert_eq!(m.operation_summary(CacheOp::Set, Layer::L2).done, 1000);
}

#[test]
fn counts_see_every_event_and_latency_windows_one_in_sixteen_of_each_outcome() {
    let m = CachePerformanceMonitor::default();
    assert_eq!(m.config().latency_sample_every.get(), 16);
    for i in 0..100u64 {
        let outcome = if i < 75 { Outcome::Hit } else { Outcome::Miss };
        m.record_operation(CacheOp::Get, Layer::L1, outcome, us(10));
        m.record_request(&RequestEvent::new(
            &Arc::from("qa"),
            "small",
            outcome,
            Layer::L1,
            us(i),
        ));
    }
    let get = m.operation_summary(CacheOp::Get, Layer::L1);
    // Hits 1, 17, 33, 49 and 65; misses 1 and 17.
    assert_eq!((get.hits, get.misses, get.latency.count), (75, 25, 7));
    let small = &m.requests_by_tier()["small"];
    assert_eq!((small.l1_hits, small.misses), (75, 25));
    assert_eq!(small.latency.as_ref().map(|l| l.count), Some(7));
    // The mean comes from the timed reads, each outcome's weighted by its reads (hits timed at
    // 0, 16, 32, 48 and 64 µs, misses at 75 and 91: (75 × 32 + 25 × 83) / 100), not from every
    // read (49.5 µs): an untimed read costs one counter.
    assert_eq!(small.mean_us, 44);
    assert_eq!(m.requests_by_operation()["qa"].mean_us, 44);
    // A rare slow outcome, whose first read is always timed, does not stand for the many: 16
    // hits at 10 µs and one miss at 1 ms average 68 µs.
    let m = CachePerformanceMonitor::default();
    let op: Arc<str> = Arc::from("qa");
    for outcome in [[Outcome::Hit; 16].as_slice(), &[Outcome::Miss]].concat() {
        let elapsed = if outcome == Outcome::Hit {
            us(10)
        } else {
            us(1000)
        };
        m.record_request(&RequestEvent::new(
            &op,
            "small",
            outcome,
            Layer::L1,
            elapsed,
        ));
    }
    assert_eq!(m.requests_by_tier()["small"].mean_us, 68);
    // A slow operation is seen whether or not it was sampled.
    let m = CachePerformanceMonitor::new(MonitorConfig {
        slow_operation: Duration::from_millis(1),
        ..MonitorConfig::default()
    });
    m.record_operation(CacheOp::Get, Layer::L2, Outcome::Hit, us(10));
    m.record_operation(CacheOp::Get, Layer::L2, Outcome::Hit, us(5_000));
    assert_eq!(m.export_metrics().slow_operations.len(), 1);
}

#[test]
fn failures_slow_operations_and_corrupt_entries_are_kept() {
    let config = MonitorConfig {
        slow_operation: Duration::from_millis(10),
        max_measurements: 2,
        ..MonitorConfig::default()
    };
    let m = CachePerformanceMonitor::new(config);
    m.record_operation(
        CacheOp::Get,
        Layer::L2,
        Outcome::Failed(ErrorKind::Timeout),
        us(20_000),
    );
    for _ in 0..3 {
        m.record_operation(CacheOp::Set, Layer::L2, Outcome::Done, us(30_000));
    }
    m.record_operation(CacheOp::Set, Layer::L2, Outcome::Done, us(10));
    m.record_corrupt_entry(Layer::L2, ErrorKind::Corrupted);
    let snapshot = m.export_metrics();
    assert_eq!(snapshot.operations["get/l2"].failures["timeout"], 1);
    assert_eq!(
        snapshot.slow_operations.len(),
        2,
        "bounded by max_measurements"
    );
    assert_eq!(snapshot.corrupt_entries["l2"], 1);
}

#[test]
fn compression_ratio_and_bytes() {
    let m = CachePerformanceMonitor::default();
    m.record_compression(1000, 250, us(3));
    m.record_compression(3000, 750, us(5));
    let c = m.compression();
    assert_eq!((c.count, c.original_bytes, c.stored_bytes), (2, 4000, 1000));
    assert!((c.ratio - 0.25).abs() < 1e-9);
    assert_eq!(c.time.count, 2);
}

#[test]
fn memory_warnings_at_each_threshold() {
    let config = MonitorConfig {
        memory_warning_bytes: 1000,
        memory_critical_bytes: 2000,
        ..MonitorConfig::default()
    };
    let m = CachePerformanceMonitor::new(config);
    assert!(m.memory_warnings().is_empty(), "no reading yet");
    m.record_memory_usage(MemoryUsageMetric::new(10, 100, 500, None));
    assert!(m.memory_warnings().is_empty());
    m.record_memory_usage(MemoryUsageMetric::new(10, 100, 500, Some(600)));
    assert_eq!(m.memory_warnings()[0].severity, Severity::Medium);
    m.record_memory_usage(MemoryUsageMetric::new(95, 100, 500, Some(1600)));
    let findings = m.memory_warnings();
    assert_eq!(findings[0].severity, Severity::Critical);
    assert_eq!(findings[1].issue, "l1_full");
}

#[test]
fn invalidation_recommendations_follow_the_original_rules() {
    let config = MonitorConfig {
        invalidation_warning_per_hour: 5,
        invalidation_critical_per_hour: 10,
        ..MonitorConfig::default()
    };
    let m = CachePerformanceMonitor::new(config);
    assert!(m.invalidation_recommendations().is_empty());
    m.record_invalidation("summarize:*", 3);
    assert!(
        m.invalidation_recommendations().is_empty(),
        "one event: nothing to say"
    );
    for _ in 0..4 {
        m.record_invalidation("summarize:*", 300);
    }
    let issues: Vec<&str> = m
        .invalidation_recommendations()
        .iter()
        .map(|f| f.issue)
        .collect();
    assert_eq!(
        issues,
        vec![
            "invalidation_rate",
            "dominant_pattern",
            "broad_invalidations"
        ]
    );
    for _ in 0..10 {
        m.record_invalidation("qa:*", 0);
    }
    let findings = m.invalidation_recommendations();
    assert_eq!(findings[0].severity, Severity::Critical);
    let stats = m.invalidation_stats();
    assert_eq!(stats.last_hour, 15);
    assert_eq!(stats.top_patterns[0], ("qa:*".to_string(), 10));
}

#[test]
fn reset_forgets_everything() {
    let m = CachePerformanceMonitor::default();
    m.record_operation(CacheOp::Get, Layer::L1, Outcome::Hit, us(1));
    m.record_compression(10, 5, us(1));
    m.record_invalidation("*", 1);
    m.reset_stats();
    let snapshot = m.export_metrics();
    assert_eq!(
        (
            snapshot.hits,
            snapshot.compression.count,
            snapshot.invalidations.last_hour
        ),
        (0, 0, 0)
    );
}

#[test]
fn redis_memory_near_maxmemory_is_a_warning() {
    let m = CachePerformanceMonitor::default();
    let mut reading = MemoryReading::default();
    reading.redis = cache_core::RedisMemory::parse_info("used_memory:850\r\nmaxmemory:1000\r\n");
    m.record_memory(&reading);
    assert!(m.memory_warnings().is_empty(), "85 % of maxmemory is fine");
    reading.redis = cache_core::RedisMemory::parse_info("used_memory:950\r\nmaxmemory:1000\r\n");
    m.record_memory(&reading);
    let findings = m.memory_warnings();
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0].issue, "redis_maxmemory");
    assert!((findings[0].value - 0.95).abs() < 1e-9);
    reading.redis = cache_core::RedisMemory::parse_info("used_memory:950\r\nmaxmemory:0\r\n");
    m.record_memory(&reading);
    assert!(
        m.memory_warnings().is_empty(),
        "no maxmemory: no limit to be near"
    );
    let snapshot = m.export_metrics();
    assert_eq!(snapshot.memory.and_then(|r| r.redis_used_bytes), Some(950));
}

#[test]
fn savings_with_empty_partial_and_full_data() {
    let m = CachePerformanceMonitor::default();
    let empty = m.savings();
    assert_eq!(
        (empty.computations, empty.hits, empty.time_saved_ms),
        (0, 0, 0)
    );
    let op: Arc<str> = Arc::from("summarize");
    let event = |outcome, saved| {
        RequestEvent::new(&op, "small", outcome, Layer::L1, us(2)).with_saved(saved)
    };
    let hit = |saved| event(Outcome::Hit, saved);
    // Partial: hits before any computation, without a usage meter.
    m.record_request(&hit(None));
    let partial = m.savings();
    assert_eq!(
        (partial.hits, partial.time_saved_ms, partial.tokens_saved),
        (1, 0, 0)
    );
    // Full: two computations (100 ms and 300 ms: mean 200 ms) with usage, and metered hits.
    m.record_compute(
        &op,
        Duration::from_millis(100),
        Some(Usage::new(1000, 0.01)),
    );
    m.record_compute(
        &op,
        Duration::from_millis(300),
        Some(Usage::new(3000, 0.03)),
    );
    m.record_request(&hit(Some(Usage::new(2000, 0.02))));
    m.record_request(&hit(Some(Usage::new(2000, 0.02))));
    let miss = event(Outcome::Miss, Some(Usage::new(9, 9.0)));
    m.record_request(&miss);
    let full = m.savings();
    assert_eq!(full.computations, 2);
    assert_eq!(full.hits, 3, "misses are not savings");
    assert_eq!(full.time_saved_ms, 600);
    assert_eq!((full.tokens_used, full.tokens_saved), (4000, 4000));
    assert!((full.cost_used - 0.04).abs() < 1e-9);
    assert!((full.cost_saved - 0.04).abs() < 1e-9);
    assert_eq!(full.compute_time.count, 2);
    assert_eq!(m.export_metrics().savings, full);
    m.reset_stats();
    assert_eq!((m.savings().computations, m.savings().hits), (0, 0));
}
