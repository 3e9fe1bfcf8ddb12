//! aicache's benchmark library: [`CachePerformanceBenchmark`] runs workloads a service cares
//! about (write, read-through, L1 hit, L2 hit, miss, `get_many`, invalidate, compression) against
//! its own Redis, with the byte caches and the AI cache, each next to a raw redis-rs baseline
//! measured in the same run on the same keys and bytes; results carry percentiles
//! (hdrhistogram), throughput, success rate, bytes, memory, commands per operation, the ratio
//! and grades. [`RegressionCheck`] compares a run with a saved one; [`report`] prints tables,
//! Markdown and JSON, and draws an SVG chart.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use cache_bench::{CachePerformanceBenchmark, Preset, report};
//! use cache_redis::RedisCacheConfig;
//!
//! let bench = CachePerformanceBenchmark::new(Preset::Ci.settings())?;
//! let config = RedisCacheConfig::default().with_redis_url("redis://127.0.0.1:6379");
//! let run = bench.run_redis_suite(&config).await?;
//! println!("{}", report::table(&run));
//! std::fs::write("bench.svg", report::svg(&run)?)?;
//! # Ok(()) }
//! ```

use std::sync::Arc;

use cache_ai::{AIResponseCache, AiCacheConfig};
use cache_core::{DynCache, DynFrameStore, Result, unix_millis};
use cache_memory::MemoryCacheConfig;
use cache_redis::{GenericRedisCache, RawBaseline, RedisCacheConfig, RedisStore};

mod chart;
mod data;
mod measure;
mod preset;
mod regression;
pub mod report;
mod result;
mod workload;

pub use data::realistic_text;
pub use measure::{Latencies, Measured, ROUNDS};
pub use preset::{BenchSettings, LatencyLimits, Preset, Thresholds};
pub use regression::{Regression, RegressionCheck, RegressionLevel};
pub use result::{Baseline, BenchmarkReport, BenchmarkResult, Grade};
pub use workload::Workload;

use workload::{AiCaches, ByteCaches, Recorded};

/// Text sizes compression is measured on.
const COMPRESSION_CHARS: [usize; 2] = [2_000, 40_000];

/// Runs benchmark suites with one set of [`BenchSettings`].
#[derive(Debug, Clone)]
pub struct CachePerformanceBenchmark {
    settings: BenchSettings,
}

impl CachePerformanceBenchmark {
    /// A benchmark with `settings`.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](cache_core::ErrorKind::Config) for settings out of range.
    pub fn new(settings: BenchSettings) -> Result<Self> {
        settings.validate()?;
        Ok(Self { settings })
    }

    /// The settings.
    pub fn settings(&self) -> &BenchSettings {
        &self.settings
    }

    fn finish(&self, recorded: Vec<Recorded>) -> Vec<BenchmarkResult> {
        recorded
            .into_iter()
            .map(|r| {
                let mut result = r.finish();
                result.grade(&self.settings.thresholds);
                result
            })
            .collect()
    }

    fn report(&self, started_at_ms: u64, results: Vec<BenchmarkResult>) -> BenchmarkReport {
        BenchmarkReport {
            started_at_ms,
            settings: self.settings.clone(),
            results,
        }
    }

    /// Every workload against the Redis of `config` (its URL and security settings): the byte
    /// caches and the AI cache (built here over one store each, in namespaces of their own that
    /// no other cache uses; entries expire after 5 minutes), then compression. Each workload runs
    /// once per concurrency of the settings, after a warm-up, with its raw baseline right after
    /// it.
    ///
    /// # Errors
    /// Connection, authentication and TLS errors, and invalid settings.
    pub async fn run_redis_suite(&self, config: &RedisCacheConfig) -> Result<BenchmarkReport> {
        let started_at_ms = unix_millis();
        let run_id = format!("{:x}", started_at_ms ^ u64::from(std::process::id()));
        let (iterations, size) = (self.settings.iterations, self.settings.value_size);

        let byte_config = config
            .clone()
            .with_key_prefix(format!("aicache-bench:{run_id}"));
        let store: Arc<dyn DynFrameStore> =
            Arc::new(RedisStore::connect(&byte_config, None).await?);
        let build = |l1: Option<MemoryCacheConfig>| {
            GenericRedisCache::builder(byte_config.clone().with_l1(l1))
                .store(Arc::clone(&store))
                .connect()
        };
        let l1 = || Some(MemoryCacheConfig::default().with_max_entries(iterations.max(16) * 4));
        let bytes = ByteCaches {
            with_l1: Arc::new(build(l1()).await?),
            without_l1: Arc::new(build(None).await?),
            store: Arc::clone(&store),
            raw: RawBaseline::connect(config).await?,
        };
        self.warm_up(&bytes).await;

        let ai_store: Arc<dyn DynFrameStore> = Arc::new(
            RedisStore::connect(
                &config.clone().with_key_prefix(
                    AiCacheConfig::default()
                        .with_tenant(format!("bench{run_id}"))
                        .namespace(),
                ),
                None,
            )
            .await?,
        );
        let ai_config = || AiCacheConfig::default().with_tenant(format!("bench{run_id}"));
        let ai_build = |l1: Option<MemoryCacheConfig>| {
            AIResponseCache::builder(ai_config().with_l1(l1))
                .store(Arc::clone(&ai_store))
                .build()
        };
        let ai = AiCaches {
            without_l1: Arc::new(ai_build(None)?),
            store: Arc::clone(&ai_store),
            raw: RawBaseline::connect(config).await?,
        };

        let mut recorded = Vec::new();
        for &tasks in &self.settings.concurrency {
            let reader = Arc::new(build(l1()).await?);
            recorded
                .extend(workload::byte_workloads(&bytes, reader, iterations, tasks, size).await);
            for &chars in &self.settings.text_sizes {
                let reader = Arc::new(ai_build(l1())?);
                recorded.extend(
                    workload::ai_workloads(&ai, reader, iterations, tasks, chars, size).await,
                );
            }
        }
        for chars in COMPRESSION_CHARS {
            recorded.extend(workload::compression_workloads(iterations.min(200), chars).await);
        }
        Ok(self.report(started_at_ms, self.finish(recorded)))
    }

    async fn warm_up(&self, caches: &ByteCaches) {
        let value = bytes::Bytes::from(data::value(self.settings.value_size, 1));
        for i in 0..self.settings.warmup {
            if let Ok(key) = cache_core::CacheKey::new(format!("warmup:{i}")) {
                let _ = caches
                    .with_l1
                    .set_dyn(&key, value.clone(), workload::bench_ttl())
                    .await;
                let _ = caches.without_l1.get_dyn(&key).await;
                let _ = caches.raw.get(&caches.with_l1.redis_key(&key)).await;
            }
        }
    }

    /// The write, hit, miss and invalidate workloads against any cache (a memory-only one, a
    /// team's own), without baselines: there is no raw loop for an arbitrary cache.
    pub async fn run_cache(&self, cache: Arc<dyn DynCache>) -> BenchmarkReport {
        let started_at_ms = unix_millis();
        let mut recorded = Vec::new();
        for &tasks in &self.settings.concurrency {
            recorded.extend(
                workload::any_cache_workloads(
                    Arc::clone(&cache),
                    self.settings.iterations,
                    tasks,
                    self.settings.value_size,
                )
                .await,
            );
        }
        self.report(started_at_ms, self.finish(recorded))
    }
}
