//! [`AIResponseCache::reset_stats`]: the cache's own counters back to zero.

use std::sync::atomic::Ordering;

use crate::cache::AIResponseCache;
use crate::stats::OpCounters;

impl<T> AIResponseCache<T> {
    /// Zeroes this cache's counters: per operation (hits, misses, stores, computations, usage,
    /// read latencies), per tier, decode failures, L1 size refusals, background refreshes
    /// (started, completed, abandoned, refused; `running` is what runs) and key-generation
    /// statistics. The L1's and the store's own counters belong to them and are kept; entries
    /// are untouched. Operation names stay tracked (at most
    /// [`MAX_TRACKED_OPERATIONS`](cache_monitoring::MAX_TRACKED_OPERATIONS), the rest counted
    /// under one entry): an operation unused since the reset is not reported.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// use cache_ai::{AIResponseCache, AiCacheConfig, AiRequest};
    ///
    /// let cache: AIResponseCache<String> = AIResponseCache::new(AiCacheConfig::default())?;
    /// let key = cache.key(&AiRequest::new("qa", "What is reset?"))?;
    /// assert!(cache.get(&key).await?.is_none());
    /// assert_eq!(cache.stats().by_operation["qa"].misses, 1);
    /// cache.reset_stats();
    /// assert!(cache.stats().by_operation.is_empty());
    /// # Ok::<(), cache_core::Error>(()) }).unwrap();
    /// ```
    pub fn reset_stats(&self) {
        self.inner.ops.reset(OpCounters::reset);
        for tier in &self.inner.tiers {
            tier.hits.reset();
            tier.misses.reset();
            tier.latency.clear();
        }
        self.inner.decode_failures.store(0, Ordering::Relaxed);
        self.inner.l1_skipped_too_large.store(0, Ordering::Relaxed);
        self.inner.keys.reset_stats();
        self.inner.refreshes.reset_counts();
    }
}

#[cfg(test)]
mod tests {
    use crate::{AIResponseCache, AiCacheConfig, AiRequest, RequestControls};

    #[tokio::test]
    async fn monitoring_off_keeps_exact_counts_and_reset_zeroes_them() {
        for monitoring in [true, false] {
            let config = AiCacheConfig::default()
                .with_monitoring(monitoring)
                .with_latency_sampling(1);
            let cache: AIResponseCache<String> = AIResponseCache::new(config).unwrap();
            let key = cache
                .key(&AiRequest::new("qa", "Counted either way?"))
                .unwrap();
            assert!(cache.get(&key).await.unwrap().is_none());
            cache
                .put(&key, "yes".into(), &RequestControls::default())
                .await
                .unwrap();
            assert!(cache.get(&key).await.unwrap().is_some());
            let stats = cache.stats();
            let qa = &stats.by_operation["qa"];
            assert_eq!(
                (qa.hits(), qa.misses, qa.stores),
                (1, 1, 1),
                "monitoring {monitoring}"
            );
            assert_eq!(
                stats.by_tier.iter().sum::<u64>(),
                2,
                "monitoring {monitoring}"
            );
            // Only timings and key-generation statistics depend on the setting.
            let timed = cache
                .get_operation_performance()
                .into_iter()
                .next()
                .map(|p| p.1.timed);
            assert_eq!(timed.unwrap_or(0) > 0, monitoring, "{timed:?}");
            assert_eq!(stats.key_generation.keys_generated > 0, monitoring);

            cache.reset_stats();
            let stats = cache.stats();
            assert!(stats.by_operation.is_empty());
            assert_eq!(stats.by_tier, [0; 4]);
            assert_eq!(stats.key_generation.keys_generated, 0);
            assert!(cache.get(&key).await.unwrap().is_some(), "entries are kept");
            assert_eq!(cache.stats().by_operation["qa"].hits(), 1);
        }
    }
}
