//! `monitoring_200_operations_mib`: the memory 200 distinct operation names cost an AI cache with
//! the performance monitor attached (latency windows per operation, tier and series), measured as
//! the RSS growth of a child process, against the 8 MiB budget (lower is better).

use std::sync::Arc;

use aicache::{
    AIResponseCache, AiCacheConfig, AiRequest, CachePerformanceMonitor, RequestControls,
};
use serde_json::Value;

use super::Row;

pub(crate) fn rss_kib() -> f64 {
    #[allow(clippy::cast_precision_loss, reason = "KiB of one process")]
    let kib = cache_testkit::process_status_kib("VmRSS").unwrap() as f64;
    kib
}

/// The child's half: builds the cache, measures, prints `grown_kib N`.
pub(crate) fn child() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let monitor: Arc<dyn aicache::Recorder> = Arc::new(CachePerformanceMonitor::default());
        let cache: AIResponseCache<Value> = AIResponseCache::builder(AiCacheConfig::default())
            .recorder(monitor)
            .build()
            .unwrap();
        // Warm the allocator and the code paths with one operation first.
        let warm = cache.key(&AiRequest::new("warmup", "text")).unwrap();
        let _ = cache.get(&warm).await;
        let before = rss_kib();
        for op in 0..200 {
            let operation = format!("operation_{op}");
            for i in 0..5 {
                let text = format!("text {i} of {operation}");
                let key = cache.key(&AiRequest::new(&operation, &text)).unwrap();
                let _ = cache.get(&key).await;
                let _ = cache
                    .put(
                        &key,
                        serde_json::json!({"a": i}),
                        &RequestControls::default(),
                    )
                    .await;
                let _ = cache.get(&key).await;
            }
        }
        println!("grown_kib {}", rss_kib() - before);
    });
}

/// Runs this binary again with `args` and reads the figure the child prints as `{label} N` (KiB),
/// in MiB.
pub(crate) fn child_mib(args: &[&str], label: &str) -> f64 {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let kib: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix(label)?.strip_prefix(' '))
        .unwrap()
        .parse()
        .unwrap();
    kib / 1024.0
}

pub(crate) fn row(rounds: usize) -> Row {
    let mut row = Row::new("monitoring_200_operations_mib", "MiB");
    for _ in 0..rounds {
        row.contender
            .push(child_mib(&["--monitoring-memory-child"], "grown_kib"));
        row.baseline.push(8.0);
    }
    row
}
