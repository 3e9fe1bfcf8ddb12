//! Criterion micro-benches: the L1 hit, the L2 hit with L1 off at 1 and 50 concurrent tasks for
//! 1 KB and 100 KB values, raw redis-rs `GET` of the same stored bytes as the baseline, and the
//! value frame's encode/decode. Ratios against the baseline come from `benches/report.rs`, which
//! interleaves rounds (criterion cannot).
#![allow(missing_docs, reason = "a benchmark binary")]
#![allow(clippy::unwrap_used, reason = "a benchmark aborts on any failure")]

use std::time::{Duration, Instant};

use aicache::frame::{Codec, FrameCodec, FrameMeta};
use aicache::{Bytes, CacheInterface, CacheKey, GenericRedisCache, RedisCacheConfig, Ttl};
use cache_testkit::{RedisServer, ServerConfig};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

fn incompressible(size: usize) -> Bytes {
    Bytes::from(cache_testkit::incompressible_bytes(size))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn l1_hit(c: &mut Criterion) {
    let rt = runtime();
    let cache = rt
        .block_on(GenericRedisCache::connect(RedisCacheConfig::default()))
        .unwrap();
    let key = CacheKey::new("k").unwrap();
    rt.block_on(cache.set(&key, incompressible(1024), None))
        .unwrap();
    c.bench_function("l1_hit_1k_c1", |b| {
        b.to_async(&rt)
            .iter(|| async { cache.get(&key).await.unwrap() });
    });
}

fn l2_hit(c: &mut Criterion) {
    let rt = runtime();
    let server = RedisServer::start(ServerConfig::default());
    let config = RedisCacheConfig::default()
        .with_redis_url(server.url())
        .with_key_prefix("bench")
        .with_l1(None)
        .with_command_timeout(Duration::from_secs(5));
    let cache = rt.block_on(GenericRedisCache::connect(config)).unwrap();
    let raw = rt
        .block_on(
            redis::Client::open(server.url())
                .unwrap()
                .get_multiplexed_async_connection(),
        )
        .unwrap();
    let mut group = c.benchmark_group("l2_hit");
    for (label, size) in [("1k", 1024usize), ("100k", 100 * 1024)] {
        let key = CacheKey::new(format!("v{label}")).unwrap();
        rt.block_on(cache.set(
            &key,
            incompressible(size),
            Some(Ttl::from_secs(3600).unwrap()),
        ))
        .unwrap();
        let redis_key = cache.redis_key(&key);
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(BenchmarkId::new("aicache_c1", label), |b| {
            b.to_async(&rt)
                .iter(|| async { cache.get(&key).await.unwrap() });
        });
        group.bench_function(BenchmarkId::new("raw_redis_c1", label), |b| {
            b.to_async(&rt).iter(|| async {
                let mut conn = raw.clone();
                redis::cmd("GET")
                    .arg(&redis_key)
                    .query_async::<Vec<u8>>(&mut conn)
                    .await
                    .unwrap()
            });
        });
        group.throughput(Throughput::Bytes(size as u64 * 50));
        group.bench_function(BenchmarkId::new("aicache_c50", label), |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let cache = cache.clone();
                let key = key.clone();
                async move {
                    let started = Instant::now();
                    let tasks: Vec<_> = (0..50)
                        .map(|_| {
                            let cache = cache.clone();
                            let key = key.clone();
                            tokio::spawn(async move {
                                for _ in 0..iters {
                                    cache.get(&key).await.unwrap();
                                }
                            })
                        })
                        .collect();
                    for task in tasks {
                        task.await.unwrap();
                    }
                    started.elapsed()
                }
            });
        });
        group.bench_function(BenchmarkId::new("raw_redis_c50", label), |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let raw = raw.clone();
                let redis_key = redis_key.clone();
                async move {
                    let started = Instant::now();
                    let tasks: Vec<_> = (0..50)
                        .map(|_| {
                            let mut conn = raw.clone();
                            let redis_key = redis_key.clone();
                            tokio::spawn(async move {
                                for _ in 0..iters {
                                    redis::cmd("GET")
                                        .arg(&redis_key)
                                        .query_async::<Vec<u8>>(&mut conn)
                                        .await
                                        .unwrap();
                                }
                            })
                        })
                        .collect();
                    for task in tasks {
                        task.await.unwrap();
                    }
                    started.elapsed()
                }
            });
        });
    }
    group.finish();
    drop(server);
}

fn frame(c: &mut Criterion) {
    let codec = FrameCodec::new();
    let meta = FrameMeta::new(1_700_000_000_000, 1_700_003_600_000);
    let mut group = c.benchmark_group("frame");
    for (label, size) in [("1k", 1024usize), ("100k", 100 * 1024)] {
        let text: Vec<u8> = "The model answered at length, repeating itself now and then. "
            .bytes()
            .cycle()
            .take(size)
            .collect();
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(BenchmarkId::new("encode_lz4_text", label), |b| {
            b.iter(|| codec.encode("k", &meta, Codec::Raw, &text).unwrap());
        });
        let stored = Bytes::from(codec.encode("k", &meta, Codec::Raw, &text).unwrap().bytes);
        group.bench_function(BenchmarkId::new("decode_lz4_text", label), |b| {
            b.iter(|| codec.decode("k", stored.clone()).unwrap());
        });
    }
    group.finish();
}

criterion_group!(benches, l1_hit, l2_hit, frame);
criterion_main!(benches);
