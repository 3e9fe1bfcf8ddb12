//! CPU-heavy codec work never holds an async worker: a 64 MiB value compressed with zstd at
//! level 19 is encoded on the blocking pool, and an L1 read on the same current-thread runtime
//! keeps answering meanwhile.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aicache::frame::Compression;
use aicache::{
    Bytes, CacheInterface, CacheKey, GenericRedisCache, MemoryCacheConfig, MemoryFrameStore,
    RedisCacheConfig, Ttl,
};

#[test]
fn a_64_mib_zstd_19_set_does_not_stall_an_l1_read_on_a_current_thread_runtime() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let config = RedisCacheConfig::default()
            .with_key_prefix("offload")
            .with_compression(Compression::Zstd)
            .with_compression_level(Some(19))
            .with_max_value_size(64 * 1024 * 1024)
            .with_l1(Some(MemoryCacheConfig::default().with_max_entries(100)));
        let cache = GenericRedisCache::builder(config)
            .store(Arc::new(MemoryFrameStore::new("offload")))
            .connect()
            .await
            .unwrap();
        let hot = CacheKey::new("hot").unwrap();
        let ttl = Some(Ttl::from_secs(60).unwrap());
        cache
            .set(&hot, Bytes::from_static(b"answer"), ttl)
            .await
            .unwrap();
        let big = Bytes::from(cache_testkit::incompressible_bytes(64 * 1024 * 1024));
        let writer = tokio::spawn({
            let cache = cache.clone();
            async move {
                let started = Instant::now();
                cache.set(&CacheKey::new("big").unwrap(), big, ttl).await?;
                Ok::<_, aicache::Error>(started.elapsed())
            }
        });
        let (mut reads, mut worst, mut last) = (0u64, Duration::ZERO, Instant::now());
        while !writer.is_finished() {
            assert!(cache.get(&hot).await.unwrap().is_some());
            reads += 1;
            let now = Instant::now();
            worst = worst.max(now - last);
            last = now;
            tokio::task::yield_now().await;
        }
        let took = writer.await.unwrap().unwrap();
        assert!(reads > 100, "{reads} reads in {took:?}");
        // Compressing on the runtime's one thread would stall reads for the whole set (tens of
        // seconds here); the bound leaves room for the OS descheduling this thread while the
        // other tests of the binary share the 2 cores (63 ms has been seen).
        assert!(
            worst < Duration::from_millis(250),
            "an L1 read waited {worst:?} while the set took {took:?}"
        );
        let stored = cache.get(&CacheKey::new("big").unwrap()).await.unwrap();
        assert_eq!(stored.map(|b| b.len()), Some(64 * 1024 * 1024));
    });
}

/// Large answers are encoded, decoded and read back through the blocking pool, with the L1 off so
/// that every read decodes the frame and the payload again.
#[tokio::test(flavor = "current_thread")]
async fn a_large_answer_round_trips_through_the_blocking_pool() {
    use aicache::{AIResponseCache, AiCacheConfig, AiRequest, RequestControls};
    let config = AiCacheConfig::default().with_l1(None).with_encryption(Some(
        aicache::EncryptionConfig::new(
            aicache::AeadAlgorithm::ChaCha20Poly1305,
            1,
            aicache::Secret::new("22".repeat(32)),
        ),
    ));
    let store = Arc::new(MemoryFrameStore::new(config.namespace()));
    let cache: AIResponseCache<serde_json::Value> = AIResponseCache::builder(config)
        .store(store)
        .build()
        .unwrap();
    let long_text = "a long prompt ".repeat(20_000);
    let key = cache
        .key_async(&AiRequest::new("summarize", &long_text))
        .await
        .unwrap();
    assert_eq!(
        key,
        cache.key(&AiRequest::new("summarize", &long_text)).unwrap()
    );
    let answer = serde_json::json!({"summary": "word ".repeat(100_000), "n": 1});
    assert!(
        cache
            .put(&key, answer.clone(), &RequestControls::default())
            .await
            .unwrap()
    );
    let hit = cache.get(&key).await.unwrap().expect("stored");
    assert_eq!(*hit.value, answer);
}
