//! Rows of the speed issue against their raw baselines, interleaved by round:
//! - `write_1k_c50` / `ai_write_1k_c50`: `GenericRedisCache::set` / `AIResponseCache::put` vs raw
//!   `SET PX` of the same bytes, 50 tasks.
//! - `read_through_1k_c50`: an L1-on cache, cold each round, reading distinct keys that Redis
//!   holds (every read promotes) vs raw `GET` of the same keys.
//! - `get_many_100`: `get_many` of 100 keys (L1 off) vs raw `MGET` of the same keys.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aicache::{
    AIResponseCache, AiCacheConfig, AiRequest, Bytes, CacheInterface, CacheKey, GenericRedisCache,
    MemoryCacheConfig, RedisCacheConfig, RequestControls, Ttl,
};
use cache_testkit::RedisServer;
use serde_json::Value;

use super::{Plan, Row, throughput};

const TASKS: usize = 50;

pub(crate) fn config(server: &RedisServer, l1: bool) -> RedisCacheConfig {
    RedisCacheConfig::default()
        .with_redis_url(server.url())
        .with_key_prefix("speed")
        .with_l1(l1.then(|| MemoryCacheConfig::default().with_max_entries(1_000_000)))
        .with_command_timeout(Duration::from_secs(5))
}

pub(crate) async fn raw(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(server.url()).unwrap();
    client.get_multiplexed_async_connection().await.unwrap()
}

/// 50 workers taking indices from one counter: each index once per round.
pub(crate) async fn indexed<F, Fut>(duration: Duration, op: F) -> f64
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (op, next) = (Arc::new(op), Arc::new(AtomicUsize::new(0)));
    throughput(TASKS, duration, move |deadline: Instant| {
        let (op, next) = (Arc::clone(&op), Arc::clone(&next));
        async move {
            let mut done = 0;
            while Instant::now() < deadline {
                op(next.fetch_add(1, Ordering::Relaxed)).await;
                done += 1;
            }
            done
        }
    })
    .await
}

/// Runs `op(i)` for every `i` below `n`, 50 at a time (untimed set-up).
pub(crate) async fn each<F, Fut>(n: usize, op: F)
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (op, next) = (Arc::new(op), Arc::new(AtomicUsize::new(0)));
    let workers: Vec<_> = (0..TASKS)
        .map(|_| {
            let (op, next) = (Arc::clone(&op), Arc::clone(&next));
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    op(i).await;
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
}

/// Reads `keys[i]` (wrapping) for `duration` through a new cache with a cold L1, asserting hits:
/// every read promotes. Returns ops/s.
pub(crate) async fn cold_reads(
    server: &RedisServer,
    keys: Arc<Vec<CacheKey>>,
    duration: Duration,
) -> f64 {
    let reader = Arc::new(
        GenericRedisCache::connect(config(server, true))
            .await
            .unwrap(),
    );
    indexed(duration, move |i| {
        let (r, key) = (Arc::clone(&reader), keys[i % keys.len()].clone());
        async move {
            assert!(r.get(&key).await.unwrap().is_some());
        }
    })
    .await
}

/// The read-through baseline: raw `GET` of one key, asserting a hit.
pub(crate) async fn raw_get(mut conn: redis::aio::MultiplexedConnection, name: String) {
    let got: Option<Vec<u8>> = redis::cmd("GET")
        .arg(name)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(got.is_some());
}

pub(crate) async fn rows(server: &RedisServer, plan: &Plan) -> Vec<Row> {
    let value = Bytes::from(cache_testkit::incompressible_bytes(1024));
    let ttl = Ttl::from_secs(600).unwrap();
    let writer = Arc::new(
        GenericRedisCache::connect(config(server, false))
            .await
            .unwrap(),
    );
    let ai: Arc<AIResponseCache<Value>> = Arc::new(
        aicache::connect_ai_cache(
            AiCacheConfig::default().with_l1(None),
            Some(&config(server, false)),
            None,
        )
        .await
        .unwrap(),
    );
    let answer = serde_json::json!({"answer": "x".repeat(900)});
    let answer_bytes = Bytes::from(serde_json::to_vec(&answer).unwrap());
    let keys: Arc<Vec<CacheKey>> = Arc::new(
        (0..400_000)
            .map(|i| CacheKey::new(format!("k{i}")).unwrap())
            .collect(),
    );
    let names: Arc<Vec<String>> = Arc::new(keys.iter().map(|k| writer.redis_key(k)).collect());
    let (mut write, mut ai_write, mut read_through, mut get_many) = (
        Row::new("write_1k_c50", "ops/s"),
        Row::new("ai_write_1k_c50", "ops/s"),
        Row::new("read_through_1k_c50", "ops/s"),
        Row::new("get_many_100", "ops/s"),
    );
    let conn = raw(server).await;
    let raw_set = |value: Bytes| {
        let (conn, names) = (conn.clone(), Arc::clone(&names));
        move |i: usize| {
            let (mut conn, name, value) =
                (conn.clone(), names[i % names.len()].clone(), value.clone());
            async move {
                let () = redis::cmd("SET")
                    .arg(name)
                    .arg(value.as_ref())
                    .arg("PX")
                    .arg(600_000)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
            }
        }
    };
    let (w, k, v) = (Arc::clone(&writer), Arc::clone(&keys), value.clone());
    let set = move |i: usize| {
        let (w, key, v) = (Arc::clone(&w), k[i % k.len()].clone(), v.clone());
        async move { w.set(&key, v, Some(ttl)).await.unwrap() }
    };
    let (c, a) = (Arc::clone(&ai), answer.clone());
    let put = move |i: usize| {
        let (c, a) = (Arc::clone(&c), a.clone());
        async move {
            let text = format!("text number {i}");
            let key = c.key(&AiRequest::new("qa", &text)).unwrap();
            c.put(&key, a, &RequestControls::default()).await.unwrap();
        }
    };
    let (c, n) = (conn.clone(), Arc::clone(&names));
    let get = move |i: usize| raw_get(c.clone(), n[i % n.len()].clone());
    let (k, w) = (Arc::clone(&keys), Arc::clone(&writer));
    let many = move |i: usize| {
        let w = Arc::clone(&w);
        let batch: Vec<CacheKey> = (0..100)
            .map(|j| k[(i * 100 + j) % k.len()].clone())
            .collect();
        async move {
            let found = w.get_many(&batch).await.unwrap();
            assert!(found.iter().all(Option::is_some));
        }
    };
    let (c, n) = (conn.clone(), Arc::clone(&names));
    let mget = move |i: usize| {
        let mut c = c.clone();
        let batch: Vec<String> = (0..100)
            .map(|j| n[(i * 100 + j) % n.len()].clone())
            .collect();
        async move {
            let _: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
                .arg(batch)
                .query_async(&mut c)
                .await
                .unwrap();
        }
    };
    for _ in 0..plan.rounds {
        write
            .round(
                plan,
                |d| indexed(d, set.clone()),
                |d| indexed(d, raw_set(value.clone())),
            )
            .await;
        ai_write
            .round(
                plan,
                |d| indexed(d, put.clone()),
                |d| indexed(d, raw_set(answer_bytes.clone())),
            )
            .await;

        // Every key the readers may reach is in Redis (written by the write rows above and
        // again here, untimed), and each slice's reader has a new L1.
        for batch in keys.chunks(1000) {
            let entries: Vec<(CacheKey, Bytes)> =
                batch.iter().map(|k| (k.clone(), value.clone())).collect();
            writer.set_many(&entries, Some(ttl)).await.unwrap();
        }
        read_through
            .round(
                plan,
                |d| cold_reads(server, Arc::clone(&keys), d),
                |d| indexed(d, get.clone()),
            )
            .await;
        get_many
            .round(
                plan,
                |d| indexed(d, many.clone()),
                |d| indexed(d, mget.clone()),
            )
            .await;
    }
    vec![write, ai_write, read_through, get_many]
}
