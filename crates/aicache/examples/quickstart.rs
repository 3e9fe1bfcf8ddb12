//! aicache in front of a (simulated) LLM: misses, hits, the time saved, and a summary.
//!
//! Runs memory-only by default. The configuration comes from the environment (every `AICACHE_*`
//! variable of `docs/configuration.md`); set `AICACHE_REDIS_URL` (or the conventional `REDIS_URL`)
//! to use Redis as the shared second tier:
//!
//! ```text
//! cargo run --example quickstart
//! AICACHE_REDIS_URL=redis://127.0.0.1:6379 cargo run --example quickstart
//! ```
#![allow(clippy::print_stdout, reason = "an example reports to its user")]

use std::time::Duration;

use aicache::{
    AIResponseCache, AIResponseCacheConfig, AiRequest, L2Health, RequestControls, Source,
};

/// Stands in for an LLM: slow, and the same input gives the same answer.
async fn call_model(operation: &str, text: &str) -> Result<String, std::io::Error> {
    let latency = Duration::from_millis(150 + (text.len() / 100) as u64);
    tokio::time::sleep(latency).await;
    let words: Vec<&str> = text.split_whitespace().take(6).collect();
    Ok(format!("{operation}: {} …", words.join(" ")))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> aicache::Result<()> {
    let config =
        AIResponseCacheConfig::from_env()?.merge(&serde_json::json!({"tenant": "quickstart"}))?;
    let cache: AIResponseCache<String> = config.build_ai_cache().await?;
    match cache.health().await.map(|h| h.l2) {
        None => println!("mode: memory-only (set AICACHE_REDIS_URL to add Redis)"),
        Some(L2Health::Connected { latency }) => {
            println!("mode: memory + Redis (PING {latency:?})");
        }
        Some(other) => println!("mode: memory, Redis unavailable: {other:?}"),
    }
    cache.invalidate_all().await?;

    let article = "Rust is a systems programming language that runs blazingly fast, prevents \
                   segfaults and guarantees thread safety. "
        .repeat(40);
    let requests = [
        ("summarize", "A short note about caching answers."),
        ("sentiment", "I love how fast this is!"),
        ("summarize", article.as_str()),
        ("key_points", article.as_str()),
    ];

    // What each request cost the model when it was computed: a hit saves that much.
    let mut cost = [Duration::ZERO; 4];
    let (mut spent, mut saved) = (Duration::ZERO, Duration::ZERO);
    for round in 1..=2 {
        println!("\nround {round}");
        for (index, (operation, text)) in requests.into_iter().enumerate() {
            let key = cache.key(&AiRequest::new(operation, text))?;
            let outcome = cache
                .get_or_compute(&key, &RequestControls::default(), || {
                    call_model(operation, text)
                })
                .await
                .map_err(|e| {
                    aicache::Error::new(aicache::ErrorKind::Backend, "the model failed")
                        .with_source(e.to_string())
                })?;
            let tier = outcome
                .response
                .metadata
                .text_tier
                .map_or("?", |t| t.as_str());
            match (outcome.source, outcome.compute_time) {
                (Source::Computed, Some(took)) => {
                    cost[index] = took;
                    spent += took;
                    println!("  miss  {operation:<10} {tier:<6} model took {took:?}");
                }
                (source, _) => {
                    saved += cost[index];
                    println!(
                        "  hit   {operation:<10} {tier:<6} from {source:?}, saved {:?}",
                        cost[index]
                    );
                }
            }
        }
    }

    let stats = cache.stats();
    println!("\nsummary");
    for (operation, s) in &stats.by_operation {
        println!(
            "  {operation:<10} hits {} (L1 {}, L2 {}), misses {}, hit rate {}",
            s.hits(),
            s.l1_hits,
            s.l2_hits,
            s.misses,
            s.hit_rate()
                .map_or_else(|| "-".to_string(), |rate| format!("{:.0}%", rate * 100.0))
        );
    }
    println!("  model time spent: {spent:?}; time saved by the cache: {saved:?}");
    let keys = stats.key_generation;
    println!(
        "  keys generated: {}, average {} ns",
        keys.keys_generated,
        keys.average_nanos()
    );
    Ok(())
}
