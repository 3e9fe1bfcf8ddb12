//! [`DecodedMemo`]: the answers last decoded from shared-tier frames, reused when the next read
//! of the same key returns the identical frame.
//!
//! An L2 hit that L1 does not keep (L1 off, or an entry the promotion rules leave in Redis)
//! would otherwise deserialize the payload, build its metadata and render its JSON form on every
//! read. The memo never answers by itself: every read still goes to the shared tier and passes
//! its removal checks; only when the accepted frame is byte for byte the one decoded before
//! (payload and metadata) is the earlier decoding reused. A removed or rewritten entry therefore
//! reads exactly as without the memo. Its memory is bounded by [`DECODED_MEMO_BYTES`], charged
//! as the L1 charges decoded answers (`footprint`): what the decoding occupies, its rendered
//! JSON form included, plus the frame it came from.

use std::sync::Arc;

use bytes::Bytes;
use cache_core::frame::{Frame, FrameMeta};
use quick_cache::Weighter;
use quick_cache::sync::Cache;

use crate::response::{CachedResponse, Rendered, ResponseMetadata};

/// The memo's budget: each entry is charged its key, its frame's payload, the bytes its decoding
/// occupies (`footprint::decoded_bytes`) and a fixed charge for the metadata and the map.
pub(crate) const DECODED_MEMO_BYTES: u64 = 4 << 20;

/// The most entries the memo expects (it sizes its table for them).
const DECODED_MEMO_ENTRIES: usize = 4096;

/// Bytes charged per entry beyond its key, payload and decoding.
const ENTRY_OVERHEAD: u64 = 320;

/// One decoded frame.
struct Decoded<T> {
    meta: FrameMeta,
    payload: Bytes,
    value: Arc<T>,
    metadata: Arc<ResponseMetadata>,
    rendered: Rendered,
    /// What the decoding occupies (`footprint::decoded_bytes`).
    decoded_bytes: usize,
}

#[derive(Clone)]
struct DecodedWeighter;

impl<T> Weighter<Box<str>, Arc<Decoded<T>>> for DecodedWeighter {
    fn weight(&self, key: &Box<str>, decoded: &Arc<Decoded<T>>) -> u64 {
        let bytes = key
            .len()
            .saturating_add(decoded.payload.len())
            .saturating_add(decoded.decoded_bytes);
        u64::try_from(bytes)
            .unwrap_or(u64::MAX)
            .saturating_add(ENTRY_OVERHEAD)
    }
}

/// The last decoding of each recently read key (see the module docs).
pub(crate) struct DecodedMemo<T> {
    cache: Cache<Box<str>, Arc<Decoded<T>>, DecodedWeighter>,
}

impl<T> DecodedMemo<T> {
    pub(crate) fn new() -> Self {
        Self {
            cache: Cache::with_weighter(DECODED_MEMO_ENTRIES, DECODED_MEMO_BYTES, DecodedWeighter),
        }
    }

    /// The answer decoded earlier from exactly `frame` for `key`, if the memo still holds it.
    pub(crate) fn reuse(&self, key: &str, frame: &Frame) -> Option<CachedResponse<T>> {
        let decoded = self.cache.get(key)?;
        (decoded.payload == frame.payload && decoded.meta == frame.meta).then(|| CachedResponse {
            value: Arc::clone(&decoded.value),
            metadata: Arc::clone(&decoded.metadata),
            rendered: Arc::clone(&decoded.rendered),
        })
    }

    /// Keeps `response`, decoded from `frame` into `decoded_bytes`, for the next read of `key`.
    pub(crate) fn keep(
        &self,
        key: &str,
        frame: &Frame,
        response: &CachedResponse<T>,
        decoded_bytes: usize,
    ) {
        let decoded = Decoded {
            meta: frame.meta.clone(),
            payload: frame.payload.clone(),
            value: Arc::clone(&response.value),
            metadata: Arc::clone(&response.metadata),
            rendered: Arc::clone(&response.rendered),
            decoded_bytes,
        };
        self.cache.insert(key.into(), Arc::new(decoded));
    }

    /// How many decodings the memo holds.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.cache.len()
    }

    /// The weight the memo holds, in bytes.
    #[cfg(test)]
    pub(crate) fn weight(&self) -> u64 {
        self.cache.weight()
    }
}

impl<T> std::fmt::Debug for DecodedMemo<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecodedMemo")
            .field("entries", &self.cache.len())
            .field("weight", &self.cache.weight())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use cache_core::Layer;
    use cache_memory::{MemoryCacheConfig, MemoryFrameStore};
    use serde_json::{Value, json};

    use super::DECODED_MEMO_BYTES;
    use crate::{AIResponseCache, AiCacheConfig, AiRequest, RequestControls};

    fn cache(l1: Option<MemoryCacheConfig>) -> AIResponseCache<Value> {
        let config = AiCacheConfig::default().with_l1(l1);
        let store = MemoryFrameStore::new(config.namespace());
        AIResponseCache::builder(config)
            .store(Arc::new(store))
            .build()
            .unwrap()
    }

    #[tokio::test]
    async fn an_unchanged_frame_is_decoded_once_and_a_changed_or_removed_one_is_not_reused() {
        let cache = cache(None);
        let key = cache.key(&AiRequest::new("qa", "Reused?")).unwrap();
        let controls = RequestControls::default();
        cache.put(&key, json!({"a": 1}), &controls).await.unwrap();
        let first = cache.get(&key).await.unwrap().unwrap();
        let second = cache.get(&key).await.unwrap().unwrap();
        assert_eq!(second.metadata.layer, Some(Layer::L2), "still read from L2");
        assert!(Arc::ptr_eq(&first.value, &second.value), "decoded once");
        let json = |cache: &AIResponseCache<Value>| {
            let cache = cache.clone();
            async move {
                cache
                    .get_cached_response("Reused?", "qa", &json!({}), None)
                    .await
                    .unwrap()
            }
        };
        let (a, b) = (json(&cache).await.unwrap(), json(&cache).await.unwrap());
        assert!(Arc::ptr_eq(&a, &b), "rendered once");
        assert_eq!(a["a"], 1);
        assert_eq!(a["cache_hit"], true);

        cache.put(&key, json!({"a": 2}), &controls).await.unwrap();
        let rewritten = cache.get(&key).await.unwrap().unwrap();
        assert_eq!(
            *rewritten.value,
            json!({"a": 2}),
            "a new frame decodes anew"
        );
        assert_eq!(json(&cache).await.unwrap()["a"], 2);

        assert!(cache.delete(&key).await.unwrap());
        assert!(
            cache.get(&key).await.unwrap().is_none(),
            "removed stays removed"
        );
        assert!(json(&cache).await.is_none());
        cache.put(&key, json!({"a": 3}), &controls).await.unwrap();
        cache.invalidate_by_operation("qa").await.unwrap();
        assert!(cache.get(&key).await.unwrap().is_none(), "invalidated");
    }

    #[tokio::test]
    async fn entries_l1_keeps_are_not_memoized() {
        let cache = cache(Some(MemoryCacheConfig::default()));
        let key = cache.key(&AiRequest::new("qa", "Promoted?")).unwrap();
        cache
            .put(&key, json!({"p": 1}), &RequestControls::default())
            .await
            .unwrap();
        // Only in L2 now: the next read is an L2 hit that L1 keeps.
        cache
            .inner
            .near
            .l1()
            .unwrap()
            .remove(key.cache_key().as_str());
        let hit = cache.get(&key).await.unwrap().unwrap();
        assert_eq!(hit.metadata.layer, Some(Layer::L2));
        assert_eq!(cache.inner.decoded.len(), 0, "L1 holds it instead");
        let again = cache.get(&key).await.unwrap().unwrap();
        assert_eq!(again.metadata.layer, Some(Layer::L1));
    }

    /// Stores `answer` under `count` distinct texts and reads each back once (from L2: L1 is
    /// off), so the memo sees every decoding.
    async fn store_and_read(cache: &AIResponseCache<Value>, answer: &Value, count: usize) {
        let controls = RequestControls::default();
        for i in 0..count {
            let key = cache
                .key(&AiRequest::new("summarize", &format!("text {i}")))
                .unwrap();
            cache.put(&key, answer.clone(), &controls).await.unwrap();
            assert!(cache.get(&key).await.unwrap().is_some());
        }
    }

    #[tokio::test]
    async fn the_memo_stays_within_its_budget() {
        let cache = cache(None);
        store_and_read(&cache, &json!({"summary": "x".repeat(1000)}), 6000).await;
        let (entries, weight) = (cache.inner.decoded.len(), cache.inner.decoded.weight());
        assert!(entries > 100, "it keeps recent decodings: {entries}");
        assert!(weight <= DECODED_MEMO_BYTES, "{weight} bytes");
    }

    #[tokio::test]
    async fn number_dense_answers_are_charged_what_they_decode_into() {
        // 1 KB of MessagePack that decodes into 32 KB or more of `Value`s (and as much again
        // rendered): charged by its payload, the memo would keep all 200.
        let cache = cache(None);
        store_and_read(&cache, &json!(vec![0; 1000]), 200).await;
        let decoded = 2 * 1000 * std::mem::size_of::<Value>() as u64;
        let (entries, weight) = (
            cache.inner.decoded.len() as u64,
            cache.inner.decoded.weight(),
        );
        assert!(
            entries <= DECODED_MEMO_BYTES / decoded,
            "{entries} entries of {decoded} decoded bytes"
        );
        assert!(weight >= entries * decoded, "{weight} bytes for {entries}");
        assert!(weight <= DECODED_MEMO_BYTES, "{weight} bytes");
    }
}
