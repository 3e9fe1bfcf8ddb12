//! `l1_budget_rss`: the RSS growth of a child process that writes 100,000 distinct 1 KB values
//! into a memory-only cache with a 64 MiB L1 budget, against the budget (lower is better; the
//! target is at most 1.10 × the budget).

use aicache::{
    Bytes, CacheInterface, CacheKey, GenericRedisCache, MemoryCacheConfig, RedisCacheConfig,
};

use super::Row;
use super::memory::{child_mib, rss_kib};

const BUDGET: u64 = 64 * 1024 * 1024;
const VALUES: usize = 100_000;

/// The child's half: fills the cache, prints `grown_kib N`.
pub(crate) fn child() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let config = RedisCacheConfig::default().with_l1(Some(
            MemoryCacheConfig::default()
                .with_max_entries(VALUES)
                .with_max_bytes(BUDGET),
        ));
        let cache = GenericRedisCache::connect(config).await.unwrap();
        let before = rss_kib();
        let noise = cache_testkit::incompressible_bytes(1024 + 64);
        for i in 0..VALUES {
            // Distinct bytes per value, without a generator's cost per byte.
            let start = i % 64;
            let value = Bytes::copy_from_slice(&noise[start..start + 1024]);
            let key = CacheKey::new(format!("budget-{i}")).unwrap();
            cache.set(&key, value, None).await.unwrap();
        }
        println!("grown_kib {}", rss_kib() - before);
    });
}

pub(crate) fn row(rounds: usize) -> Row {
    let mut row = Row::new("l1_budget_rss", "MiB");
    for _ in 0..rounds {
        row.contender
            .push(child_mib(&["--l1-budget-child"], "grown_kib"));
        #[allow(clippy::cast_precision_loss, reason = "64 MiB")]
        row.baseline.push(BUDGET as f64 / (1024.0 * 1024.0));
    }
    row
}
