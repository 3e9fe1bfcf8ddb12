//! The AI response cache end to end, with a real Redis as L2: shared fixtures, then one module
//! per area. They run against what the parent module's `under_test` provides: one Redis server
//! (`crate::under_test`), and again on a Redis Cluster (`crate::cluster::ai_suites`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aicache::{
    AI_VERSION, AIResponseCache, AiCacheConfig, AiRequest, ErrorKind, MemoryCacheConfig,
    RequestControls, Source, TextTier, Ttl,
};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::under_test::{Redis, holds_value, keys_with_values, raw, server, test_config};

/// The AI layer's test settings (the store comes from [`ai_over`]).
fn ai_config(_server: &Redis) -> AiCacheConfig {
    AiCacheConfig::default()
        .with_latency_sampling(1)
        .with_l1(Some(MemoryCacheConfig::default().with_max_entries(1000)))
}

/// An AI cache over a Redis store on `server` (with the test timeouts).
pub(crate) async fn ai_over<T>(
    server: &Redis,
    config: AiCacheConfig,
) -> aicache::Result<AIResponseCache<T>>
where
    T: Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    aicache::connect_ai_cache(config, Some(&test_config(&server.url())), None).await
}

/// A builder over a Redis store on `server`, the store reporting to `recorder` too.
pub(crate) async fn ai_builder<T>(
    server: &Redis,
    config: AiCacheConfig,
    recorder: Option<Arc<dyn aicache::Recorder>>,
) -> aicache::AIResponseCacheBuilder<T>
where
    T: Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    let redis = test_config(&server.url())
        .with_l1(None)
        .with_key_prefix(config.namespace());
    let store = aicache::RedisStore::connect(&redis, recorder.clone())
        .await
        .unwrap();
    let builder = AIResponseCache::builder(config).store(Arc::new(store));
    match recorder {
        Some(recorder) => builder.recorder(recorder),
        None => builder,
    }
}

async fn json_cache(server: &Redis) -> AIResponseCache<Value> {
    ai_over(server, ai_config(server)).await.unwrap()
}

fn text_of(tier: TextTier) -> String {
    let chars = match tier {
        TextTier::Small => 200,
        TextTier::Medium => 2_000,
        TextTier::Large => 20_000,
        _ => 60_000,
    };
    "Lorem ipsum dolor sit amet. "
        .chars()
        .cycle()
        .take(chars)
        .collect()
}

mod basics;
mod compat;
mod flight;
mod reports;
mod usage;
