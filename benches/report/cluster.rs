//! `cluster_l2_hit_1k_c50`: `GenericRedisCache::get` over a Redis Cluster (L1 off) against raw
//! redis-rs cluster `GET`s of the same keys, 50 tasks, 1,000 keys of 1 KB spread over every
//! primary, interleaved in short slices within each round on one 3 + 3 cluster from the test kit.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aicache::{Bytes, CacheInterface, CacheKey, GenericRedisCache, RedisCacheConfig, Ttl};
use cache_testkit::RedisCluster;

use super::{Plan, Row, throughput};

const TASKS: usize = 50;
const KEYS: usize = 1_000;
pub(crate) async fn row(plan: &Plan) -> Row {
    let cluster = RedisCluster::start();
    let config = RedisCacheConfig::default()
        .with_redis_cluster_urls(cluster.urls())
        .with_key_prefix("bench")
        .with_l1(None)
        .with_command_timeout(Duration::from_secs(5));
    let cache = GenericRedisCache::connect(config).await.unwrap();
    let keys: Arc<Vec<CacheKey>> = Arc::new(
        (0..KEYS)
            .map(|i| CacheKey::new(format!("k{i}")).unwrap())
            .collect(),
    );
    let names: Arc<Vec<String>> = Arc::new(keys.iter().map(|k| cache.redis_key(k)).collect());
    let value = Bytes::from(cache_testkit::incompressible_bytes(1024));
    let entries: Vec<(CacheKey, Bytes)> = keys.iter().map(|k| (k.clone(), value.clone())).collect();
    cache
        .set_many(&entries, Some(Ttl::from_secs(3600).unwrap()))
        .await
        .unwrap();
    let raw = redis::cluster::ClusterClient::new(cluster.urls())
        .unwrap()
        .get_async_connection()
        .await
        .unwrap();
    let mut row = Row::new("cluster_l2_hit_1k_c50", "ops/s");
    let contender = || {
        let next = Arc::new(AtomicUsize::new(0));
        let (cache, keys) = (cache.clone(), Arc::clone(&keys));
        move |deadline: Instant| {
            let (cache, keys, next) = (cache.clone(), Arc::clone(&keys), Arc::clone(&next));
            async move {
                let mut done = 0;
                while Instant::now() < deadline {
                    let i = next.fetch_add(1, Ordering::Relaxed) % KEYS;
                    assert!(cache.get(&keys[i]).await.unwrap().is_some());
                    done += 1;
                }
                done
            }
        }
    };
    let baseline = || {
        let next = Arc::new(AtomicUsize::new(0));
        let (raw, names) = (raw.clone(), Arc::clone(&names));
        move |deadline: Instant| {
            let (mut conn, names, next) = (raw.clone(), Arc::clone(&names), Arc::clone(&next));
            async move {
                let mut done = 0;
                while Instant::now() < deadline {
                    let i = next.fetch_add(1, Ordering::Relaxed) % KEYS;
                    let got: Option<Vec<u8>> = redis::cmd("GET")
                        .arg(&names[i])
                        .query_async(&mut conn)
                        .await
                        .unwrap();
                    assert!(got.is_some());
                    done += 1;
                }
                done
            }
        }
    };
    // Three co-located servers and the client share two vCPUs, so throughput drifts within
    // seconds: each round interleaves short slices.
    for _ in 0..plan.rounds {
        row.round(
            plan,
            |slice| throughput(TASKS, slice, contender()),
            |slice| throughput(TASKS, slice, baseline()),
        )
        .await;
    }
    row
}
