//! Stats snapshots (`stats_snapshot_interval`): a task that publishes the AI cache's counters to
//! Redis every interval, for `aicache stats` to show the fleet. It ends with the cache.

use std::time::Duration;

use cache_ai::{AIResponseCache, WeakAIResponseCache};
use cache_core::{FrameStore, Ttl, unix_millis};
use cache_redis::RedisStore;
use serde_json::{Value, json};

/// This instance's name: `$HOSTNAME-{pid}` (characters outside `[A-Za-z0-9._-]` become `_`).
pub(crate) fn instance_name() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "instance".to_owned());
    let name = format!("{host}-{}", std::process::id());
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .take(128)
        .collect()
}

/// The counters a snapshot carries.
pub(crate) fn snapshot_of<T>(
    cache: &AIResponseCache<T>,
    store: &RedisStore,
    instance: &str,
) -> Value
where
    T: serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    let stats = cache.stats();
    let operations: serde_json::Map<String, Value> = stats
        .by_operation
        .iter()
        .map(|(name, op)| {
            (
                name.clone(),
                json!({"l1_hits": op.l1_hits, "l2_hits": op.l2_hits, "misses": op.misses,
                       "hit_rate": op.hit_rate(), "stores": op.stores,
                       "time_saved_ms": u64::try_from(op.time_saved().as_millis()).unwrap_or(u64::MAX),
                       "cost_saved": op.cost_saved()}),
            )
        })
        .collect();
    let store_stats = store.stats();
    json!({
        "instance": instance,
        "at_ms": unix_millis(),
        "namespace": cache.config().namespace(),
        "operations": operations,
        "l1": stats.l1.map(|l1| json!({"entries": l1.entries, "bytes": l1.bytes})),
        "l2": stats.l2.map(|l2| json!({"hits": l2.hits, "misses": l2.misses,
                                       "corrupt": l2.corrupt_entries, "unreadable": l2.unreadable_entries})),
        "redis_available": store.is_available(),
        "replay": {"queued": store_stats.replay_queued, "dropped": store_stats.replay_dropped,
                   "replayed": store_stats.replayed},
    })
}

/// Publishes `cache`'s snapshot through `store` every `every`, with a TTL of three intervals,
/// until the cache is dropped.
pub(crate) fn publish_every<T>(cache: &AIResponseCache<T>, store: RedisStore, every: Duration)
where
    T: serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::warn!("stats snapshots need a tokio runtime; not published");
        return;
    };
    let weak: WeakAIResponseCache<T> = cache.downgrade();
    let instance = instance_name();
    let Ok(ttl) = Ttl::new(every.saturating_mul(3).max(Duration::from_secs(1))) else {
        return;
    };
    runtime.spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            let Some(cache) = weak.upgrade() else { return };
            let body = snapshot_of(&cache, &store, &instance).to_string();
            drop(cache);
            if let Err(e) = store
                .publish_snapshot(&instance, body.as_bytes(), ttl)
                .await
            {
                tracing::debug!(error = %e, "stats snapshot not published");
            }
        }
    });
}
