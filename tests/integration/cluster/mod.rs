//! The suites on a real Redis Cluster (3 primaries, 3 replicas, from cache-testkit): the
//! `CacheInterface` and `FrameStore` conformance suites, the AI layer over the cluster, every AI
//! suite of `tests/integration/ai` (`ai_suites`, on a cluster of their own), a resharding, and
//! primaries killed or hung mid-run. The conformance suites share one cluster per test binary,
//! each test in a namespace of its own; the failover and resharding tests start their own.

use std::sync::atomic::{AtomicU64, Ordering};

use aicache::RedisCacheConfig;
use cache_testkit::RedisCluster;

mod access;
mod ai;
mod ai_suites;
mod failover;
mod resharding;

/// A namespace no other test of this binary uses.
pub(crate) fn fresh_prefix(what: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("cluster-{what}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The test settings over `cluster`'s seeds, in a namespace of its own.
pub(crate) fn cluster_config(cluster: &RedisCluster, what: &str) -> RedisCacheConfig {
    let mut config = crate::support::test_config("redis://unused")
        .with_key_prefix(fresh_prefix(what))
        .with_redis_cluster_urls(cluster.urls());
    config.redis_url = None;
    config
}

mod generic_with_l1 {
    use aicache::GenericRedisCache;

    async fn setup() -> (GenericRedisCache, ()) {
        let config = super::cluster_config(RedisCluster::shared(), "l1");
        let cache = crate::support::redis_cache(config).await;
        assert!(cache.is_l2_available());
        (cache, ())
    }

    use cache_testkit::RedisCluster;
    cache_testkit::conformance_suite!(setup);
}

mod generic_without_l1 {
    use aicache::GenericRedisCache;
    use cache_testkit::RedisCluster;

    async fn setup() -> (GenericRedisCache, ()) {
        let config = super::cluster_config(RedisCluster::shared(), "nol1").with_l1(None);
        let cache = crate::support::redis_cache(config).await;
        assert!(cache.is_l2_available());
        (cache, ())
    }

    cache_testkit::conformance_suite!(setup);
}

mod frame_store {
    use aicache::RedisStore;
    use cache_testkit::RedisCluster;

    async fn setup() -> (RedisStore, ()) {
        let config = super::cluster_config(RedisCluster::shared(), "store").with_l1(None);
        (RedisStore::connect(&config, None).await.unwrap(), ())
    }

    cache_testkit::frame_store_suite!(setup);
}
