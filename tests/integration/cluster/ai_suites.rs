//! The AI suites of `tests/integration/ai` again, on a Redis Cluster of their own (3 primaries,
//! 3 replicas). They use fixed namespaces (the AI layer's keys are `aicache:v1:…`) and inspect
//! Redis by key, as on one server, so they take turns: each test holds the cluster for its
//! whole run (its thread's), and starts on an empty one.

mod under_test {
    use std::cell::RefCell;
    use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};

    use aicache::RedisCacheConfig;
    use cache_testkit::RedisCluster;

    pub(crate) use crate::support::{holds_value, keys_with_values};

    fn cluster() -> &'static RedisCluster {
        static CLUSTER: OnceLock<RedisCluster> = OnceLock::new();
        CLUSTER.get_or_init(RedisCluster::start)
    }

    /// The cluster, held by one test at a time.
    pub(crate) struct Redis;

    impl Redis {
        /// A seed's URL (the tests pass it to [`test_config`], which takes every seed).
        pub(crate) fn url(&self) -> String {
            cluster().urls().swap_remove(0)
        }
    }

    static TURNS: Mutex<()> = Mutex::new(());

    thread_local! {
        /// This test thread's turn. Released when the thread ends, after the test's runtime
        /// and every task on it are gone (nothing of one test writes into the next); kept by a
        /// thread that runs several tests in a row.
        static TURN: RefCell<Option<MutexGuard<'static, ()>>> = const { RefCell::new(None) };
    }

    /// Waits for the cluster, then empties every primary (the replicas follow).
    pub(crate) fn server() -> Redis {
        TURN.with(|turn| {
            let mut turn = turn.borrow_mut();
            if turn.is_none() {
                // A test that failed while holding the cluster leaves nothing the next one
                // relies on: the cluster is emptied below.
                *turn = Some(TURNS.lock().unwrap_or_else(PoisonError::into_inner));
            }
        });
        for port in cluster().primary_ports() {
            let mut conn = redis::Client::open(format!("redis://127.0.0.1:{port}"))
                .unwrap()
                .get_connection()
                .unwrap();
            redis::cmd("FLUSHALL").exec(&mut conn).unwrap();
        }
        Redis
    }

    /// The store's test settings over the cluster's seeds (`_seed` names one of them).
    pub(crate) fn test_config(_seed: &str) -> RedisCacheConfig {
        let mut config =
            crate::support::test_config("redis://unused").with_redis_cluster_urls(cluster().urls());
        config.redis_url = None;
        config
    }

    /// A raw redis-rs cluster connection, to inspect what the cache stored.
    pub(crate) async fn raw(_: &Redis) -> redis::cluster_async::ClusterConnection {
        redis::cluster::ClusterClient::new(cluster().urls())
            .unwrap()
            .get_async_connection()
            .await
            .unwrap()
    }
}

#[allow(
    clippy::duplicate_mod,
    reason = "the same suites, compiled once per `under_test`"
)]
#[path = "../ai/mod.rs"]
mod ai;
