//! Read-through rows beyond the 1 KB generic one (`report/speed.rs`): an L1-on cache, cold each
//! round, reading keys that Redis holds, against raw `GET` of the same keys.
//! - `ai_read_through_1k_c50`: `AIResponseCache` (key from the text, then `get`), 50 tasks.
//! - `read_through_100k_c50`: `GenericRedisCache` with 100 KB values, 50 tasks, over more keys
//!   than the L1's byte budget holds.

use std::sync::Arc;

use aicache::{
    AIResponseCache, AiCacheConfig, AiRequest, Bytes, CacheInterface, CacheKey, GenericRedisCache,
    MemoryCacheConfig, RequestControls, Ttl,
};
use cache_testkit::RedisServer;
use serde_json::Value;

use super::speed::{cold_reads, config, each, indexed, raw, raw_get};
use super::{Plan, Row};

/// Distinct texts of the AI row: more than a round reads.
const AI_TEXTS: usize = 400_000;
/// Keys of the 100 KB row: 600 MB in Redis, about ten times the default 64 MiB L1 budget.
const LARGE_KEYS: usize = 6_000;

pub(crate) async fn ai_row(server: &RedisServer, plan: &Plan) -> Row {
    let connect = |l1: Option<MemoryCacheConfig>| async move {
        let cache: AIResponseCache<Value> = aicache::connect_ai_cache(
            AiCacheConfig::default().with_l1(l1),
            Some(&config(server, false)),
            None,
        )
        .await
        .unwrap();
        Arc::new(cache)
    };
    let writer = connect(None).await;
    let texts: Arc<Vec<String>> = Arc::new(
        (0..AI_TEXTS)
            .map(|i| format!("read-through text number {i}"))
            .collect(),
    );
    let names: Arc<Vec<String>> = Arc::new(
        texts
            .iter()
            .map(|t| writer.full_key(&writer.key(&AiRequest::new("qa", t)).unwrap()))
            .collect(),
    );
    let answer = serde_json::json!({"answer": "x".repeat(900)});
    let (w, t, a) = (Arc::clone(&writer), Arc::clone(&texts), answer.clone());
    each(AI_TEXTS, move |i| {
        let (w, t, a) = (Arc::clone(&w), Arc::clone(&t), a.clone());
        async move {
            let key = w.key(&AiRequest::new("qa", &t[i])).unwrap();
            w.put(&key, a, &RequestControls::default()).await.unwrap();
        }
    })
    .await;
    let conn = raw(server).await;
    let mut row = Row::new("ai_read_through_1k_c50", "ops/s");
    let (c, n) = (conn.clone(), Arc::clone(&names));
    let get = move |i: usize| raw_get(c.clone(), n[i % n.len()].clone());
    for _ in 0..plan.rounds {
        row.round(
            plan,
            |d| {
                let t = Arc::clone(&texts);
                async move {
                    let l1 = MemoryCacheConfig::default().with_max_entries(1_000_000);
                    let reader = connect(Some(l1)).await;
                    indexed(d, move |i| {
                        let (r, t) = (Arc::clone(&reader), Arc::clone(&t));
                        async move {
                            let key = r.key(&AiRequest::new("qa", &t[i % t.len()])).unwrap();
                            assert!(r.get(&key).await.unwrap().is_some());
                        }
                    })
                    .await
                }
            },
            |d| indexed(d, get.clone()),
        )
        .await;
    }
    row
}

pub(crate) async fn large_row(server: &RedisServer, plan: &Plan) -> Row {
    let writer = GenericRedisCache::connect(config(server, false))
        .await
        .unwrap();
    let value = Bytes::from(cache_testkit::incompressible_bytes(100 * 1024));
    let keys: Arc<Vec<CacheKey>> = Arc::new(
        (0..LARGE_KEYS)
            .map(|i| CacheKey::new(format!("large{i}")).unwrap())
            .collect(),
    );
    let ttl = Ttl::from_secs(600).unwrap();
    for batch in keys.chunks(100) {
        let entries: Vec<(CacheKey, Bytes)> =
            batch.iter().map(|k| (k.clone(), value.clone())).collect();
        writer.set_many(&entries, Some(ttl)).await.unwrap();
    }
    let names: Arc<Vec<String>> = Arc::new(keys.iter().map(|k| writer.redis_key(k)).collect());
    let conn = raw(server).await;
    let mut row = Row::new("read_through_100k_c50", "ops/s");
    let (c, n) = (conn.clone(), Arc::clone(&names));
    let get = move |i: usize| raw_get(c.clone(), n[i % n.len()].clone());
    for _ in 0..plan.rounds {
        row.round(
            plan,
            |d| cold_reads(server, Arc::clone(&keys), d),
            |d| indexed(d, get.clone()),
        )
        .await;
    }
    row
}
