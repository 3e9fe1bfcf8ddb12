//! The write path of [`AIResponseCache`]: stores, deletes and invalidations, each through the
//! [`NearCache`](cache_memory::NearCache) protocol.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use quanta::Instant;

use cache_core::frame::{Codec, FrameMeta, encode_msgpack};
use cache_core::{
    CacheKey, CacheOp, KeyPattern, Layer, Outcome, Result, StoreWrite, Ttl, unix_millis,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::cache::{AIResponseCache, L1_ENTRY_METADATA, L1Entry};
use crate::config::AI_VERSION;
use crate::controls::RequestControls;
use crate::flight::Removing;
use crate::footprint::decoded_bytes;
use crate::keys::{RequestKey, validate_operation};
use crate::response::CachedResponse;
use crate::response::Rendered;

/// MessagePack encodings of `nil`, `""`, `[]` and `{}`: answers the default admission refuses.
fn is_empty_payload(payload: &[u8]) -> bool {
    matches!(payload, [0xc0] | [0xa0] | [0x90] | [0x80])
}

impl<T> AIResponseCache<T>
where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    /// Stores `value` as the answer for `key`. Returns whether it was stored (false when the
    /// admission rule refuses it or the controls forbid storing).
    ///
    /// # Errors
    /// [`ErrorKind::Serialization`](cache_core::ErrorKind::Serialization) when `value` cannot be encoded; [`ErrorKind::CapacityExceeded`](cache_core::ErrorKind::CapacityExceeded)
    /// above the size limit; Redis errors other than unavailability.
    pub async fn put(
        &self,
        key: &RequestKey,
        value: T,
        controls: &RequestControls,
    ) -> Result<bool> {
        let value = Arc::new(value);
        Ok(self.store(key, &value, controls).await?.is_some())
    }

    /// Removes the answer stored for `key` from L1 and the shared tier; true when either held it.
    ///
    /// # Errors
    /// Store errors other than unavailability.
    pub async fn delete(&self, key: &RequestKey) -> Result<bool> {
        let _removing = self.fence_flights(|flight| flight == key.cache_key()).await;
        let (in_l1, in_l2) = self
            .inner
            .near
            .remove(key.cache_key(), async {
                let Some(l2) = &self.inner.l2 else {
                    return Ok(false);
                };
                let in_old = match &self.inner.old_layout {
                    Some(old) => old.tier.store().delete(key.cache_key()).await,
                    None => Ok(false),
                };
                let in_new = l2.store().delete(key.cache_key()).await;
                Ok(in_new? | in_old?)
            })
            .await;
        Ok(in_l2? || in_l1)
    }

    /// Removes every entry of `operation` (exactly that operation: `sum` never matches
    /// `summarize`) from L1 and Redis; returns how many entries were removed.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](cache_core::ErrorKind::InvalidInput) for an invalid operation; Redis errors other than unavailability.
    pub async fn invalidate_by_operation(&self, operation: &str) -> Result<u64> {
        validate_operation(operation)?;
        let pattern = KeyPattern::new(format!("{operation}:*"))?.with_segments(2);
        let removed = self.invalidate_matching(&pattern).await?;
        self.counters(operation)
            .invalidated
            .fetch_add(removed, Ordering::Relaxed);
        Ok(removed)
    }

    /// Removes the entries whose key (`{operation}:{digest}`, inside this cache's namespace) matches
    /// the glob `pattern`, from L1 and Redis alike; returns how many were removed. `*` removes
    /// everything. Only keys of that shape match (two segments), so no pattern reaches a key of
    /// another shape under the same prefix.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](cache_core::ErrorKind::InvalidInput) for a pattern longer than the key limit; Redis errors other than
    /// unavailability.
    pub async fn invalidate_pattern(&self, pattern: &str) -> Result<u64> {
        self.invalidate_matching(&KeyPattern::new(pattern)?.with_segments(2))
            .await
    }

    /// Removes every entry of this cache's namespace; returns how many were removed.
    ///
    /// # Errors
    /// Redis errors other than unavailability.
    pub async fn invalidate_all(&self) -> Result<u64> {
        self.invalidate_matching(&KeyPattern::all().with_segments(2))
            .await
    }

    /// Stores an answer; returns when it was stored (Unix milliseconds: its metadata's
    /// `cached_at`), if it was.
    pub(crate) async fn store(
        &self,
        key: &RequestKey,
        value: &Arc<T>,
        controls: &RequestControls,
    ) -> Result<Option<u64>> {
        let started = self.inner.recorder.as_ref().map(|_| Instant::now());
        let stored = self.store_unrecorded(key, value, controls).await;
        if let Ok(Some(_)) = &stored {
            let layer = if self.inner.l2.is_some() {
                Layer::L2
            } else {
                Layer::L1
            };
            self.record(CacheOp::Set, layer, Outcome::Done, started);
        }
        stored
    }

    async fn store_unrecorded(
        &self,
        key: &RequestKey,
        value: &Arc<T>,
        controls: &RequestControls,
    ) -> Result<Option<u64>> {
        if !controls.stores() {
            return Ok(None);
        }
        let counters = self.counters(key.operation());
        let payload = bytes::Bytes::from(encode_msgpack(value.as_ref())?);
        let admitted = !is_empty_payload(&payload)
            && self
                .inner
                .admission
                .as_ref()
                .is_none_or(|admit| admit(value));
        if !admitted {
            counters.refused.fetch_add(1, Ordering::Relaxed);
            return Ok(None);
        }
        let ttl = match controls.ttl {
            Some(ttl) => ttl,
            None => self.jittered(self.inner.config.ttl_for(key.operation()))?,
        };
        let now = unix_millis();
        let label = Self::op_label(counters, key.operation());
        let frame_meta = FrameMeta::new(now, now.saturating_add(ttl.as_millis()))
            .with_operation(Arc::clone(&label))
            .with_text_tier(key.tier())
            .with_ai_version(AI_VERSION);
        let hits = Self::promotion_hits(counters, key.operation());
        let encoded_len = payload.len();
        let l1_entry = |stored: bool| {
            if !stored || !self.belongs_in_l1(key.tier(), key.operation(), hits) {
                return None;
            }
            let l1_ttl = Ttl::from_millis(frame_meta.remaining_ms(unix_millis())).ok()?;
            let size = decoded_bytes(value.as_ref(), encoded_len).saturating_add(L1_ENTRY_METADATA);
            // Built only for an entry L1 keeps: a write's caller learns no more than that it
            // was stored (its full key would cost an allocation per write).
            let entry = L1Entry {
                value: Arc::clone(value),
                metadata: Arc::new(self.metadata(key, &label, now, true, Some(Layer::L1))),
                rendered: Rendered::default(),
                size,
                fresh_until_ms: frame_meta.expires_at_ms,
            };
            Some((entry, self.l1_ttl(l1_ttl)))
        };
        let kept = self.with_stale_window(ttl);
        let Some(l2) = &self.inner.l2 else {
            // Memory-only: the L1 copy is the only one, inserted under its shard's lock.
            let stored = match l1_entry(true) {
                Some((entry, l1_ttl)) => {
                    self.filled(self.inner.near.insert(key.cache_key(), entry, l1_ttl))
                }
                None => false,
            };
            if stored {
                counters.stores.fetch_add(1, Ordering::Relaxed);
                return Ok(Some(now));
            }
            return Ok(None);
        };
        let (written, fill) = self
            .inner
            .near
            .write(
                key.cache_key(),
                l2.write(
                    key.cache_key(),
                    &frame_meta,
                    Codec::MessagePack,
                    payload,
                    kept,
                ),
                |written| l1_entry(written.is_ok()),
            )
            .await;
        let stored_l2 = matches!(written?, StoreWrite::Written | StoreWrite::Queued);
        let stored_l1 = self.filled(fill);
        if !stored_l1 && !stored_l2 {
            return Ok(None);
        }
        counters.stores.fetch_add(1, Ordering::Relaxed);
        Ok(Some(now))
    }

    fn jittered(&self, ttl: Duration) -> Result<Ttl> {
        let jitter = self.inner.config.ttl_jitter;
        if jitter <= 0.0 {
            return Ttl::new(ttl);
        }
        let factor = 1.0 - jitter * fastrand::f64();
        Ttl::new(ttl.mul_f64(factor))
    }

    /// Fences the computations in flight that `covers` picks, and waits for those already
    /// storing (and for entry moves): after this, none of them stores anything. The removal
    /// holds the returned guard until it has finished.
    async fn fence_flights(
        &self,
        covers: impl Fn(&CacheKey) -> bool,
    ) -> Removing<CachedResponse<T>> {
        let (waits, removing) = self.inner.flights.fence(covers);
        for wait in waits {
            wait.finished().await;
        }
        removing
    }

    pub(crate) async fn invalidate_matching(&self, pattern: &KeyPattern) -> Result<u64> {
        let _removing = self
            .fence_flights(|flight| pattern.matches(flight.as_str()))
            .await;
        let stores: Vec<&dyn cache_core::DynFrameStore> = self
            .inner
            .old_layout
            .iter()
            .map(|old| old.tier.store().as_ref())
            .chain(self.inner.l2.iter().map(|l2| l2.store().as_ref()))
            .collect();
        let count = self.inner.near.invalidate_through(pattern, &stores).await?;
        if let Some(recorder) = &self.inner.recorder {
            recorder.record_invalidation(pattern.as_str(), count);
        }
        Ok(count)
    }
}
