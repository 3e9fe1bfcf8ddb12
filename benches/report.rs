//! The ratio report of `cargo xtask bench`: each row is a contender measured against its baseline
//! in the same run, in interleaved rounds (A B A B …), as `shared/spec/BENCHMARKS.md` asks; the
//! throughput rows also interleave six short slices within each round (`Row::round`).
//!
//! Rows:
//! - `l1_hit_1k_c1`: a memory-only `GenericRedisCache` hit vs a bare quick_cache get of the same bytes.
//! - `l2_hit_{1k,100k}_c{1,50}`: `GenericRedisCache` with L1 off vs raw redis-rs `GET` on one
//!   multiplexed connection, both reading the same stored frame.
//! - `l2_outage_read_p99_us_breaker_vs_none`: p99 read latency (µs) while Redis is frozen, with the
//!   circuit breaker against without it (lower is better; the command timeout is printed).
//! - `l2_hit_1k_c50_tls_vs_plain`: the same L2 hit over TLS against plain TCP (the price of TLS).
//! - `ai_l1_hit_{short,200,40k}_c1` and their `ai_json_` twins: the AI L1 hit against SHA-256 of
//!   the text plus a quick_cache get.
//! - `write_1k_c50`, `ai_write_1k_c50`, `read_through_1k_c50`, `get_many_100` (`report/speed.rs`);
//!   `ai_read_through_1k_c50`, `read_through_100k_c50` (`report/read_through.rs`);
//!   `stampede_1000` (`report/stampede.rs`); the current-thread JSON rows
//!   (`report/current_thread.rs`); `l1_budget_rss` (`report/budget.rs`).
//! - `monitoring_200_operations_mib` (`report/memory.rs`); `backup_100k_1k`, `restore_100k_1k`,
//!   `backup_1g_peak_rss_mib`: the migration manager (`report/migrate.rs`).
//!
//! Output: a table on stdout and `target/aicache-bench/report.json`
//! (`[{"name", "value", "unit", "baseline", "ratio"}]`, values in ops/s, ratio = contender/baseline).
#![allow(
    clippy::print_stdout,
    missing_docs,
    clippy::unwrap_used,
    reason = "a bench binary"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use aicache::{
    AIResponseCache, AiCacheConfig, AiRequest, Bytes, CacheInterface, CacheKey,
    CachePerformanceMonitor, CompositeRecorder, GenericRedisCache, MetricsRecorder,
    RedisCacheConfig, RequestControls, Ttl,
};
use cache_testkit::{RedisServer, ServerConfig};
use serde_json::{Value, json};
use sha2::Digest;

struct Plan {
    rounds: usize,
    round_time: Duration,
}

struct Row {
    name: String,
    /// `ops/s` (higher is better), `us` (a latency) or `MiB` (a memory peak): lower is better.
    unit: &'static str,
    contender: Vec<f64>,
    baseline: Vec<f64>,
}

/// Contender/baseline slices per round (A B A B …): the drift of a noisy host falls on both.
const SLICES: u32 = 6;

impl Row {
    fn new(name: &str, unit: &'static str) -> Self {
        Self {
            name: name.to_owned(),
            unit,
            contender: Vec::new(),
            baseline: Vec::new(),
        }
    }

    /// One round: [`SLICES`] alternating slices of `contender` and `baseline` (each given the
    /// slice's length, returning ops/s), recorded as their means.
    async fn round<A, FA, B, FB>(&mut self, plan: &Plan, contender: A, baseline: B)
    where
        A: Fn(Duration) -> FA,
        FA: std::future::Future<Output = f64>,
        B: Fn(Duration) -> FB,
        FB: std::future::Future<Output = f64>,
    {
        let slice = plan.round_time / SLICES;
        let (mut a, mut b) = (0.0, 0.0);
        for _ in 0..SLICES {
            a += contender(slice).await;
            b += baseline(slice).await;
        }
        self.contender.push(a / f64::from(SLICES));
        self.baseline.push(b / f64::from(SLICES));
    }
}

/// Repeats `op` in batches of 16 until `deadline`; returns the count.
macro_rules! until {
    ($deadline:expr, $op:expr) => {{
        let mut count = 0u64;
        while Instant::now() < $deadline {
            for _ in 0..16 {
                $op;
            }
            count += 16;
        }
        count
    }};
}

#[path = "report/budget.rs"]
mod budget;
#[path = "report/cluster.rs"]
mod cluster;
#[path = "report/current_thread.rs"]
mod current_thread;
#[path = "report/link.rs"]
mod link;
#[path = "report/memory.rs"]
mod memory;
#[path = "report/migrate.rs"]
mod migrate;
#[path = "report/output.rs"]
mod output;
#[path = "report/read_through.rs"]
mod read_through;
#[path = "report/speed.rs"]
mod speed;
#[path = "report/stampede.rs"]
mod stampede;

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Runs `tasks` workers until `duration` has passed; each worker returns how many operations it
/// did. Returns operations per second.
async fn throughput<F, Fut>(tasks: usize, duration: Duration, worker: F) -> f64
where
    F: Fn(Instant) -> Fut,
    Fut: std::future::Future<Output = u64> + Send + 'static,
{
    let started = Instant::now();
    let deadline = started + duration;
    let handles: Vec<_> = (0..tasks).map(|_| tokio::spawn(worker(deadline))).collect();
    let mut done = 0u64;
    for handle in handles {
        done += handle.await.unwrap();
    }
    done as f64 / started.elapsed().as_secs_f64()
}

/// The baseline of every L2 row: raw redis-rs `GET` of `key` on one multiplexed connection.
async fn raw_get_throughput(
    raw: &redis::aio::MultiplexedConnection,
    key: &str,
    tasks: usize,
    duration: Duration,
) -> f64 {
    throughput(tasks, duration, |deadline| {
        let (mut conn, key) = (raw.clone(), key.to_string());
        async move {
            until!(deadline, {
                let got: Option<Vec<u8>> = redis::cmd("GET")
                    .arg(&key)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                assert!(got.is_some());
            })
        }
    })
    .await
}

async fn l2_row(server: &RedisServer, plan: &Plan, size: usize, tasks: usize) -> Row {
    let name = format!(
        "l2_hit_{}_c{tasks}",
        if size >= 100 * 1024 { "100k" } else { "1k" }
    );
    let config = RedisCacheConfig::default()
        .with_redis_url(server.url())
        .with_key_prefix("bench")
        .with_l1(None)
        .with_command_timeout(Duration::from_secs(5));
    let cache = GenericRedisCache::connect(config).await.unwrap();
    let client = redis::Client::open(server.url()).unwrap();
    let raw = client.get_multiplexed_async_connection().await.unwrap();
    let key = CacheKey::new("row").unwrap();
    let redis_key = cache.redis_key(&key);
    // Incompressible bytes: the frame stores them as they are, so contender and baseline move the
    // same bytes (compression is measured by the criterion benches).
    let value = Bytes::from(cache_testkit::incompressible_bytes(size));
    let mut row = Row {
        name,
        unit: "ops/s",
        contender: Vec::new(),
        baseline: Vec::new(),
    };
    for _ in 0..plan.rounds {
        let mut flush = raw.clone();
        let _: () = redis::cmd("FLUSHALL")
            .query_async(&mut flush)
            .await
            .unwrap();
        cache
            .set(&key, value.clone(), Some(Ttl::from_secs(3600).unwrap()))
            .await
            .unwrap();

        row.round(
            plan,
            |slice| {
                throughput(tasks, slice, |deadline| {
                    let cache = cache.clone();
                    let k = key.clone();
                    async move { until!(deadline, assert!(cache.get(&k).await.unwrap().is_some())) }
                })
            },
            |slice| raw_get_throughput(&raw, &redis_key, tasks, slice),
        )
        .await;
    }
    row
}

async fn l1_row(plan: &Plan) -> Row {
    let cache = GenericRedisCache::connect(RedisCacheConfig::default())
        .await
        .unwrap();
    let key = CacheKey::new("row").unwrap();
    let value = Bytes::from(vec![b'x'; 1024]);
    cache.set(&key, value.clone(), None).await.unwrap();
    let bare: quick_cache::sync::Cache<String, Bytes> = quick_cache::sync::Cache::new(100);
    bare.insert("row".to_string(), value);
    let bare = Arc::new(bare);
    let mut row = Row {
        name: "l1_hit_1k_c1".into(),
        unit: "ops/s",
        contender: Vec::new(),
        baseline: Vec::new(),
    };
    for _ in 0..plan.rounds {
        row.round(
            plan,
            |slice| {
                throughput(1, slice, |deadline| {
                    let cache = cache.clone();
                    let k = key.clone();
                    async move { until!(deadline, assert!(cache.get(&k).await.unwrap().is_some())) }
                })
            },
            |slice| {
                throughput(1, slice, |deadline| {
                    let bare = Arc::clone(&bare);
                    async move { until!(deadline, assert!(bare.get("row").is_some())) }
                })
            },
        )
        .await;
    }
    row
}

/// The AI L1 hit (key from the text, then the L1 lookup) against its floor: SHA-256 of the text
/// plus a quick_cache get.
async fn ai_l1_row(plan: &Plan, chars: usize, json_api: bool) -> Row {
    let label = match chars {
        ..=20 => "short",
        40_000.. => "40k",
        _ => "200",
    };
    let name = if json_api {
        format!("ai_json_l1_hit_{label}_c1")
    } else {
        format!("ai_l1_hit_{label}_c1")
    };
    let text: String = "The quick brown fox jumps over the lazy dog. "
        .chars()
        .cycle()
        .take(chars)
        .collect();
    let text = Arc::new(text);
    let response = json!({"result": "a summary of about a hundred characters, as a model would write it for us"});
    let cache: AIResponseCache<Value> = AIResponseCache::new(AiCacheConfig::default()).unwrap();
    let options = json!({});
    cache
        .cache_response(&text, "sentiment", &options, &response, None)
        .await
        .unwrap();
    let bare: quick_cache::sync::Cache<String, Arc<Value>> = quick_cache::sync::Cache::new(100);
    let digest = hex::encode(sha2::Sha256::digest(text.as_bytes()));
    bare.insert(digest, Arc::new(response));
    let bare = Arc::new(bare);
    let mut row = Row {
        name,
        unit: "ops/s",
        contender: Vec::new(),
        baseline: Vec::new(),
    };
    for _ in 0..plan.rounds {
        row.round(
            plan,
            |slice| {
                throughput(1, slice, |deadline| {
                    let (cache, text, options) =
                        (cache.clone(), Arc::clone(&text), options.clone());
                    async move {
                        until!(deadline, {
                            if json_api {
                                let hit = cache
                                    .get_cached_response(&text, "sentiment", &options, None)
                                    .await;
                                assert!(hit.unwrap().is_some());
                            } else {
                                let key = cache.key(&AiRequest::new("sentiment", &text)).unwrap();
                                assert!(cache.get(&key).await.unwrap().is_some());
                            }
                        })
                    }
                })
            },
            |slice| {
                throughput(1, slice, |deadline| {
                    let (bare, text) = (Arc::clone(&bare), Arc::clone(&text));
                    async move {
                        until!(deadline, {
                            let digest = hex::encode(sha2::Sha256::digest(text.as_bytes()));
                            assert!(bare.get(&digest).is_some());
                        })
                    }
                })
            },
        )
        .await;
    }
    row
}

/// How a monitoring row equips the contender cache.
#[derive(Clone, Copy)]
enum Monitoring {
    /// The cache's own counters and sampled read timings (`monitoring_enabled`).
    Counters,
    /// The counters plus a `CachePerformanceMonitor` and a `MetricsRecorder` attached as the
    /// cache's recorder (no `metrics` recorder installed: the facade's no-op path).
    Recorders,
}

/// The monitoring overhead: the AI L1 hit of a 3,000-char request with monitoring on, against
/// the same with monitoring off (goal: within 5 %).
async fn monitoring_row(plan: &Plan, monitoring: Monitoring) -> Row {
    let text: String = "The quick brown fox jumps over the lazy dog. "
        .chars()
        .cycle()
        .take(3000)
        .collect();
    let text = Arc::new(text);
    let mut caches = Vec::new();
    for enabled in [true, false] {
        let config = AiCacheConfig::default().with_monitoring(enabled);
        let mut builder = AIResponseCache::<Value>::builder(config);
        if enabled && matches!(monitoring, Monitoring::Recorders) {
            let monitor: Arc<dyn aicache::Recorder> = Arc::new(CachePerformanceMonitor::default());
            let both = CompositeRecorder::new(vec![monitor, Arc::new(MetricsRecorder::default())]);
            builder = builder.recorder(Arc::new(both));
        }
        let cache = builder.build().unwrap();
        let key = cache.key(&AiRequest::new("sentiment", &text)).unwrap();
        cache
            .put(
                &key,
                json!({"label": "positive"}),
                &RequestControls::default(),
            )
            .await
            .unwrap();
        caches.push(cache);
    }
    let mut row = Row {
        name: match monitoring {
            Monitoring::Counters => "ai_l1_hit_3k_c1_monitoring_on_vs_off",
            Monitoring::Recorders => "ai_l1_hit_3k_c1_monitor_recorders_vs_off",
        }
        .into(),
        unit: "ops/s",
        contender: Vec::new(),
        baseline: Vec::new(),
    };
    let reads = |cache: AIResponseCache<Value>, slice| {
        let text = Arc::clone(&text);
        throughput(1, slice, move |deadline| {
            let (cache, text) = (cache.clone(), Arc::clone(&text));
            async move {
                until!(deadline, {
                    let key = cache.key(&AiRequest::new("sentiment", &text)).unwrap();
                    assert!(cache.get(&key).await.unwrap().is_some());
                })
            }
        })
    };
    for _ in 0..plan.rounds {
        row.round(
            plan,
            |slice| reads(caches[0].clone(), slice),
            |slice| reads(caches[1].clone(), slice),
        )
        .await;
    }
    row
}

/// The AI L2 hit (L1 off) at 50 tasks against raw redis-rs GET of the same stored frame.
async fn ai_l2_row(server: &RedisServer, plan: &Plan) -> Row {
    let redis = RedisCacheConfig::default()
        .with_redis_url(server.url())
        .with_command_timeout(Duration::from_secs(5));
    let config = AiCacheConfig::default().with_l1(None);
    let cache: AIResponseCache<Value> = aicache::connect_ai_cache(config, Some(&redis), None)
        .await
        .unwrap();
    let client = redis::Client::open(server.url()).unwrap();
    let raw = client.get_multiplexed_async_connection().await.unwrap();
    let text = "What does a cache in front of a language model save? ".repeat(4);
    let key = cache.key(&AiRequest::new("qa", &text)).unwrap();
    let full_key = cache.full_key(&key);
    // About 1 KB of answer, under the compression threshold: both sides move the same bytes.
    let answer = json!({"answer": "x".repeat(900)});
    let mut row = Row {
        name: "ai_l2_hit_1k_c50".into(),
        unit: "ops/s",
        contender: Vec::new(),
        baseline: Vec::new(),
    };
    for _ in 0..plan.rounds {
        let mut flush = raw.clone();
        let _: () = redis::cmd("FLUSHALL")
            .query_async(&mut flush)
            .await
            .unwrap();
        cache
            .put(&key, answer.clone(), &RequestControls::default())
            .await
            .unwrap();
        row.round(
            plan,
            |slice| {
                throughput(50, slice, |deadline| {
                    let (cache, text) = (cache.clone(), text.clone());
                    async move {
                        until!(deadline, {
                            let key = cache.key(&AiRequest::new("qa", &text)).unwrap();
                            assert!(cache.get(&key).await.unwrap().is_some());
                        })
                    }
                })
            },
            |slice| raw_get_throughput(&raw, &full_key, 50, slice),
        )
        .await;
    }
    row
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--backup-rss-child") {
        return migrate::rss_child(&args[at + 1]);
    }
    if args.iter().any(|a| a == "--monitoring-memory-child") {
        return memory::child();
    }
    if args.iter().any(|a| a == "--l1-budget-child") {
        return budget::child();
    }
    let quick = args.iter().any(|a| a == "--quick");
    let plan = if quick {
        Plan {
            rounds: 3,
            round_time: Duration::from_millis(750),
        }
    } else {
        Plan {
            rounds: 9,
            round_time: Duration::from_secs(3),
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = RedisServer::start(ServerConfig::default());
    // `--only cache`, `l1`, `l2`, `monitoring`, `speed`, `read_through`, `json`, `migrate` or
    // `cluster` runs one group of rows.
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|at| args.get(at + 1).cloned());
    let wanted = |group: &str| only.as_deref().is_none_or(|o| o == group);
    let mut rows = runtime.block_on(async {
        let mut rows = Vec::new();
        // `l1`: the single-task in-process rows alone (part of `cache`).
        let in_process = wanted("cache") || only.as_deref() == Some("l1");
        if in_process {
            rows.push(l1_row(&plan).await);
        }
        if wanted("cache") {
            for (size, tasks) in [(1024, 1), (1024, 50), (100 * 1024, 1), (100 * 1024, 50)] {
                rows.push(l2_row(&server, &plan, size, tasks).await);
            }
        }
        if in_process {
            rows.push(ai_l1_row(&plan, 20, false).await);
            rows.push(ai_l1_row(&plan, 200, false).await);
            rows.push(ai_l1_row(&plan, 40_000, false).await);
            rows.push(ai_l1_row(&plan, 200, true).await);
            rows.push(ai_l1_row(&plan, 40_000, true).await);
        }
        // `l2`: the two c50 L2-hit rows alone (part of `cache`).
        if wanted("cache") || only.as_deref() == Some("l2") {
            if !wanted("cache") {
                rows.push(l2_row(&server, &plan, 1024, 50).await);
            }
            rows.push(ai_l2_row(&server, &plan).await);
        }
        // `monitoring`: the two monitoring-overhead rows alone (part of `l1` and `cache`).
        if in_process || only.as_deref() == Some("monitoring") {
            rows.push(monitoring_row(&plan, Monitoring::Counters).await);
            rows.push(monitoring_row(&plan, Monitoring::Recorders).await);
        }
        if wanted("cache") {
            rows.push(link::outage_row(&plan).await);
            rows.push(link::tls_row(&plan).await);
            rows.push(memory::row(if quick { 1 } else { 3 }));
        }
        if wanted("speed") {
            rows.extend(speed::rows(&server, &plan).await);
        }
        // `read_through`: the AI and 100 KB read-through rows alone (part of `speed`).
        if wanted("speed") || only.as_deref() == Some("read_through") {
            rows.push(read_through::ai_row(&server, &plan).await);
            rows.push(read_through::large_row(&server, &plan).await);
        }
        if wanted("speed") {
            rows.push(stampede::row(plan.rounds).await);
        }
        if wanted("migrate") {
            rows.extend(migrate::rows(&plan).await);
        }
        if wanted("cluster") {
            rows.push(cluster::row(&plan).await);
        }
        rows
    });
    // `json`: the current-thread JSON rows alone (part of `speed`).
    if wanted("speed") || only.as_deref() == Some("json") {
        rows.extend(current_thread::rows(&server, &plan));
    }
    if wanted("speed") {
        rows.push(budget::row(if quick { 1 } else { 3 }));
    }
    if wanted("migrate") {
        rows.push(migrate::rss_row(if quick { 1 } else { 3 }));
    }

    output::write(rows, &plan);
}
