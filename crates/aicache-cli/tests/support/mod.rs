//! What the CLI's test binaries share: the binary, its JSON, and answers to act on.
#![allow(dead_code, reason = "each test binary uses its own part")]

use aicache::{AiCacheConfig, AiRequest, RedisCacheConfig, RequestControls};
use assert_cmd::Command;
use serde_json::Value;

/// The `aicache` binary, with the tests' own environment kept out of its configuration.
pub(crate) fn aicache() -> Command {
    let mut cmd = Command::cargo_bin("aicache").unwrap();
    cmd.env_remove("AICACHE_REDIS_URL")
        .env_remove("REDIS_URL")
        .env_remove("AICACHE_REDIS_CLUSTER_URLS");
    cmd
}

/// The one JSON document of `output`.
pub(crate) fn json_of(output: &[u8]) -> Value {
    serde_json::from_slice(output).unwrap_or_else(|e| {
        panic!(
            "not one JSON document ({e}): {}",
            String::from_utf8_lossy(output)
        )
    })
}

/// `n` answers of each `operation`, written by an AI cache over `redis` (the default namespace,
/// `aicache:v1`).
pub(crate) async fn answers(redis: RedisCacheConfig, counts: &[(&str, usize)]) {
    let cache: aicache::AIResponseCache =
        aicache::connect_ai_cache(AiCacheConfig::default(), Some(&redis), None)
            .await
            .unwrap();
    for (operation, n) in counts {
        for i in 0..*n {
            let text = format!("text number {i} for {operation}");
            let key = cache.key(&AiRequest::new(operation, &text)).unwrap();
            cache
                .put(
                    &key,
                    serde_json::json!({"answer": i}),
                    &RequestControls::default(),
                )
                .await
                .unwrap();
        }
    }
}
