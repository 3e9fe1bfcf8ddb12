//! The layout upgrade's moves never undo a removal: a removal that starts during a move waits
//! for it, and a move does not start while a removal is in progress. Each step is ordered with
//! gates.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aicache::{
    AIResponseCache, AiCacheConfig, AiRequest, FrameStore, LayoutConversion, MemoryFrameStore,
    RequestKey, SharedTier, Ttl,
};
use serde_json::{Value, json};

use crate::gated::{Gated, GatedStore};

fn config() -> AiCacheConfig {
    AiCacheConfig::default()
        .with_tenant("mover")
        .with_layout_upgrade_until(Some(SystemTime::now() + Duration::from_secs(600)))
}

/// A cache over a memory store, with `old` as the pre-isolation location, and one entry stored
/// there the way aicache 0.1 stored it.
async fn cache_with_old_entry(
    old: Arc<GatedStore>,
) -> (AIResponseCache<Value>, Arc<MemoryFrameStore>, RequestKey) {
    let config = config();
    let new = Arc::new(MemoryFrameStore::new(config.namespace()));
    let old_tier = SharedTier::new(old.clone(), config.frames.codec(None), None);
    let cache = AIResponseCache::builder(config)
        .store(new.clone())
        .pre_isolation_store(old)
        .build()
        .unwrap();
    let key = cache.key(&AiRequest::new("qa", "moved")).unwrap();
    let now = aicache::unix_millis();
    let payload = aicache::frame::encode_msgpack(&json!("old answer")).unwrap();
    old_tier
        .write(
            key.cache_key(),
            &aicache::frame::FrameMeta::new(now, now + 600_000),
            aicache::frame::Codec::MessagePack,
            payload.clone().into(),
            Ttl::from_secs(600).unwrap(),
        )
        .await
        .unwrap();
    (cache, new, key)
}

/// Lets every other task run a while (the multi-thread runtime gives them a worker).
async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removal_that_starts_during_a_move_waits_for_it() {
    let (old, open) = GatedStore::new("aicache:v1:t:mover", Gated::Get);
    let (cache, new, key) = cache_with_old_entry(old.clone()).await;
    let converting = tokio::spawn({
        let cache = cache.clone();
        async move { cache.convert_layout().await }
    });
    // The move has begun: it waits at its read of the old location.
    old.entered.notified().await;
    let deleting = tokio::spawn({
        let (cache, key) = (cache.clone(), key.clone());
        async move { cache.delete(&key).await }
    });
    settle().await;
    assert!(!deleting.is_finished(), "the removal waits for the move");
    open.send(()).unwrap();
    let report = converting.await.unwrap().unwrap();
    assert_eq!(report.moved, 1);
    assert!(deleting.await.unwrap().unwrap());
    assert_eq!(
        FrameStore::get(new.as_ref(), key.cache_key())
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        FrameStore::get(&old.inner, key.cache_key()).await.unwrap(),
        None
    );
    assert!(cache.get(&key).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_does_not_start_while_a_removal_is_in_progress() {
    let (old, open) = GatedStore::new("aicache:v1:t:mover", Gated::Delete);
    let (cache, new, key) = cache_with_old_entry(old.clone()).await;
    let deleting = tokio::spawn({
        let (cache, key) = (cache.clone(), key.clone());
        async move { cache.delete(&key).await }
    });
    // The removal is in progress: it waits at its delete of the old location.
    old.entered.notified().await;
    let report = cache.convert_layout().await.unwrap();
    assert_eq!((report.deferred, report.moved), (1, 0));
    assert_eq!(
        FrameStore::get(new.as_ref(), key.cache_key())
            .await
            .unwrap(),
        None
    );
    open.send(()).unwrap();
    assert!(deleting.await.unwrap().unwrap());
    assert_eq!(
        FrameStore::get(&old.inner, key.cache_key()).await.unwrap(),
        None
    );
    assert_eq!(
        cache.convert_layout().await.unwrap(),
        LayoutConversion::default()
    );
    assert!(cache.get(&key).await.unwrap().is_none());
}
