//! A miss, a "model call", a hit, then the statistics: aicache end to end.
//!
//! Runs memory-only by default. Set `AICACHE_REDIS_URL` (or the conventional `REDIS_URL`) to use
//! Redis as the shared second tier:
//!
//! ```text
//! cargo run --example quickstart
//! AICACHE_REDIS_URL=redis://127.0.0.1:6379 cargo run --example quickstart
//! ```
#![allow(clippy::print_stdout, reason = "an example reports to its user")]

use std::time::{Duration, Instant};

use aicache::{CacheInterface, CacheKey, GenericRedisCache, L2Health, RedisCacheConfig, Ttl};

/// Stands in for an LLM: slow, and the same input gives the same answer.
async fn summarize_with_model(text: &str) -> String {
    tokio::time::sleep(Duration::from_millis(300)).await;
    let words: Vec<&str> = text.split_whitespace().take(8).collect();
    format!("Summary: {} …", words.join(" "))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> aicache::Result<()> {
    let redis_url = std::env::var("AICACHE_REDIS_URL")
        .or_else(|_| std::env::var("REDIS_URL"))
        .ok();
    let mut config = RedisCacheConfig::default().with_key_prefix("aicache:quickstart");
    if let Some(url) = redis_url {
        config = config.with_redis_url(url);
    }
    let cache = GenericRedisCache::connect(config).await?;
    match cache.health().await.l2 {
        L2Health::Disabled => println!("mode: memory-only (set AICACHE_REDIS_URL to add Redis)"),
        L2Health::Connected { latency } => println!("mode: memory + Redis (PING {latency:?})"),
        other => println!("mode: memory, Redis unavailable: {other:?}"),
    }

    let text = "Rust is a systems programming language that runs blazingly fast, prevents \
                segfaults and guarantees thread safety.";
    let key = CacheKey::new("summarize:quickstart-doc")?;
    cache.delete(&key).await?;

    for attempt in 1..=2 {
        let started = Instant::now();
        let (answer, outcome) = match cache.get(&key).await? {
            Some(hit) => (String::from_utf8_lossy(&hit).into_owned(), "hit"),
            None => {
                let answer = summarize_with_model(text).await;
                cache
                    .set(&key, answer.clone().into(), Some(Ttl::from_secs(3600)?))
                    .await?;
                (answer, "miss, computed and stored")
            }
        };
        println!(
            "request {attempt}: {outcome} in {:?}: {answer}",
            started.elapsed()
        );
    }

    let stats = cache.stats();
    if let Some(l1) = stats.l1 {
        println!(
            "L1: {} hits, {} misses, hit rate {:.0}%, {} entries, {} bytes",
            l1.hits,
            l1.misses,
            l1.hit_rate() * 100.0,
            l1.entries,
            l1.bytes
        );
    }
    println!(
        "L2: {} hits, {} misses, {} errors",
        stats.l2_hits, stats.l2_misses, stats.l2_errors
    );
    Ok(())
}
