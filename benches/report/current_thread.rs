//! The JSON path on a current-thread runtime, as the Python service's callers would use it:
//! - `ai_json_l2_hit_1k_c50_current_thread`: `get_cached_response` (L1 off, a 1 KB answer in
//!   Redis), 50 tasks, against raw `GET` of the same stored frame on the same runtime.
//! - `ai_json_l2_hit_p99_us_current_thread_vs_typed`: the JSON path's p99 latency against the
//!   typed path's (`key` + `get`) in the same rounds (lower is better).

use std::sync::Arc;
use std::time::{Duration, Instant};

use aicache::{AIResponseCache, AiCacheConfig, AiRequest, RequestControls};
use cache_testkit::RedisServer;
use serde_json::{Value, json};

use super::speed::{config, raw};
use super::{Plan, Row};

const TASKS: usize = 50;

/// Which way a worker reads.
#[derive(Clone, Copy)]
enum Path {
    Json,
    Typed,
    Raw,
}

/// Ops/s and p99 (µs) of 50 workers reading until `duration` has passed.
async fn measure(
    cache: &Arc<AIResponseCache<Value>>,
    conn: &redis::aio::MultiplexedConnection,
    full_key: &str,
    text: &Arc<String>,
    path: Path,
    duration: Duration,
) -> (f64, f64) {
    let started = Instant::now();
    let deadline = started + duration;
    let workers: Vec<_> = (0..TASKS)
        .map(|_| {
            let (cache, mut conn) = (Arc::clone(cache), conn.clone());
            let (full_key, text) = (full_key.to_owned(), Arc::clone(text));
            tokio::spawn(async move {
                let options = json!({});
                let mut micros = Vec::with_capacity(1 << 16);
                while Instant::now() < deadline {
                    let began = Instant::now();
                    let hit = match path {
                        Path::Json => cache
                            .get_cached_response(&text, "summarize", &options, None)
                            .await
                            .unwrap()
                            .is_some(),
                        Path::Typed => {
                            let key = cache.key(&AiRequest::new("summarize", &text)).unwrap();
                            cache.get(&key).await.unwrap().is_some()
                        }
                        Path::Raw => redis::cmd("GET")
                            .arg(&full_key)
                            .query_async::<Option<Vec<u8>>>(&mut conn)
                            .await
                            .unwrap()
                            .is_some(),
                    };
                    assert!(hit);
                    #[allow(clippy::cast_precision_loss, reason = "microseconds")]
                    micros.push(began.elapsed().as_secs_f64() * 1e6);
                }
                micros
            })
        })
        .collect();
    let mut all = Vec::new();
    for worker in workers {
        all.extend(worker.await.unwrap());
    }
    #[allow(clippy::cast_precision_loss, reason = "an operation count")]
    let rate = all.len() as f64 / started.elapsed().as_secs_f64();
    all.sort_by(f64::total_cmp);
    let p99 = all[all.len() * 99 / 100];
    (rate, p99)
}

pub(crate) fn rows(server: &RedisServer, plan: &Plan) -> Vec<Row> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let cache: Arc<AIResponseCache<Value>> = Arc::new(
            aicache::connect_ai_cache(
                AiCacheConfig::default().with_l1(None),
                Some(&config(server, false)),
                None,
            )
            .await
            .unwrap(),
        );
        let text = Arc::new("Summarize this support conversation about a late parcel. ".repeat(8));
        let key = cache.key(&AiRequest::new("summarize", &text)).unwrap();
        let full_key = cache.full_key(&key);
        let answer = json!({"summary": "x".repeat(900)});
        cache
            .put(&key, answer, &RequestControls::default())
            .await
            .unwrap();
        let conn = raw(server).await;
        let mut rate = Row::new("ai_json_l2_hit_1k_c50_current_thread", "ops/s");
        let mut p99 = Row::new("ai_json_l2_hit_p99_us_current_thread_vs_typed", "us");
        for _ in 0..plan.rounds {
            let run = |path| measure(&cache, &conn, &full_key, &text, path, plan.round_time);
            let (json_rate, json_p99) = run(Path::Json).await;
            let (raw_rate, _) = run(Path::Raw).await;
            let (_, typed_p99) = run(Path::Typed).await;
            rate.contender.push(json_rate);
            rate.baseline.push(raw_rate);
            p99.contender.push(json_p99);
            p99.baseline.push(typed_p99);
        }
        vec![rate, p99]
    })
}
