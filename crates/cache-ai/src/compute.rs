//! [`AIResponseCache::get_or_compute`]: single-flight in front of the model, with serve-stale.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use cache_core::frame::decode_msgpack;
use cache_core::{Layer, unix_millis};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument as _;

use crate::cache::AIResponseCache;
use crate::controls::RequestControls;
use crate::flight::{Role, wait};
use crate::keys::RequestKey;
use crate::lookup::Stage;
use crate::response::{CachedResponse, Computed, ResponseMetadata, Source};

impl<T> AIResponseCache<T>
where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    /// Answers from the cache, or runs `compute` (once per key at a time in this process), stores
    /// its answer when the admission rule and `controls` allow, and returns it.
    ///
    /// Cache errors never fail this call (the answer is computed instead, and the error logged); a
    /// compute error is returned to this caller and to every caller waiting on the same key, and
    /// is not cached.
    ///
    /// # Errors
    /// The compute error, shared.
    pub async fn get_or_compute<F, Fut, E>(
        &self,
        key: &RequestKey,
        controls: &RequestControls,
        compute: F,
    ) -> std::result::Result<Computed<T>, Arc<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<T, E>>,
        E: Send + Sync + 'static,
    {
        // The span names the request by operation, tier and a digest prefix: never by its text.
        let span = tracing::debug_span!(
            "aicache.get_or_compute",
            operation = key.operation(),
            tier = key.tier().as_str(),
            digest = &key.digest()[..16],
        );
        self.get_or_compute_in_span(key, controls, compute)
            .instrument(span)
            .await
    }

    async fn get_or_compute_in_span<F, Fut, E>(
        &self,
        key: &RequestKey,
        controls: &RequestControls,
        compute: F,
    ) -> std::result::Result<Computed<T>, Arc<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<T, E>>,
        E: Send + Sync + 'static,
    {
        // L1 first; on a miss, join the flight before any shared-tier read, so one read (by the
        // leader) serves every caller of the key.
        if controls.reads()
            && let Some(hit) = self.lookup_quietly(key, controls, Stage::L1Only).await
        {
            tracing::debug!(source = ?hit.source, "answered from the cache");
            return Ok(hit);
        }
        let leader = loop {
            match self
                .inner
                .flights
                .join(key.cache_key(), controls.force_refresh)
            {
                Role::Leader(leader) => break leader,
                Role::Follower(slot) => match wait(slot).await {
                    Some(Ok(response)) => {
                        self.count_joined(key, &response);
                        return Ok(Computed {
                            response,
                            source: Source::Joined,
                            compute_time: None,
                            stored: false,
                        });
                    }
                    Some(Err(shared)) => match shared.downcast::<E>() {
                        Ok(error) => return Err(error),
                        // A caller with another error type led; compute for ourselves.
                        Err(_) => break self.inner.flights.lead(key.cache_key()),
                    },
                    // The leader was cancelled: join again (one of the waiters leads).
                    None => {}
                },
            }
        };
        // The leader reads the shared tier once, for everyone waiting (counted once).
        if controls.reads()
            && let Some(hit) = self.lookup_quietly(key, controls, Stage::AfterL1Miss).await
        {
            tracing::debug!(source = ?hit.source, "answered from the cache");
            leader.land(Ok(hit.response.clone()));
            return Ok(hit);
        }
        let started = Instant::now();
        let serve_stale = !self.inner.config.stale_window.is_zero();
        let mut computation = std::pin::pin!(compute());
        let result = match self.inner.config.stale_after {
            Some(after) if serve_stale => {
                match tokio::time::timeout(after, computation.as_mut()).await {
                    Ok(result) => result,
                    // Too slow: a stale answer, when there is one, wins over waiting longer.
                    Err(_) => match self.stale_answer(key).await {
                        Some(stale) => {
                            tracing::warn!(
                                waited_ms = u64::try_from(after.as_millis()).unwrap_or(u64::MAX),
                                "computation too slow; serving a stale answer"
                            );
                            leader.land(Ok(stale.clone()));
                            return Ok(stale_computed(stale));
                        }
                        None => computation.await,
                    },
                }
            }
            _ => computation.await,
        };
        match result {
            Ok(value) => {
                let compute_time = started.elapsed();
                self.account_computation(key, &value, compute_time);
                let value = Arc::new(value);
                // A forced refresh that started after this computation owns the entry now, and a
                // removal that began after it fenced it: then nothing is stored.
                let store = match leader.begin_store() {
                    Some(_storing) => self.store(key, &value, controls).await,
                    None => Ok(None),
                };
                let stored = match store {
                    Ok(stored) => stored,
                    Err(e) => {
                        tracing::warn!(error = %e, operation = key.operation(), "answer not cached");
                        None
                    }
                };
                let was_stored = stored.is_some();
                let metadata = stored.unwrap_or_else(|| {
                    let counters = self.counters(key.operation());
                    self.metadata(key, &counters.name, unix_millis(), false, None)
                });
                let response = CachedResponse::new(value, Arc::new(metadata));
                leader.land(Ok(response.clone()));
                tracing::debug!(
                    compute_ms = u64::try_from(compute_time.as_millis()).unwrap_or(u64::MAX),
                    stored = was_stored,
                    "computed"
                );
                Ok(Computed {
                    response,
                    source: Source::Computed,
                    compute_time: Some(compute_time),
                    stored: was_stored,
                })
            }
            Err(error) => {
                if serve_stale && let Some(stale) = self.stale_answer(key).await {
                    tracing::warn!(
                        operation = key.operation(),
                        "computation failed; serving a stale answer"
                    );
                    leader.land(Ok(stale.clone()));
                    return Ok(stale_computed(stale));
                }
                let error = Arc::new(error);
                leader.land(Err(
                    Arc::clone(&error) as Arc<dyn std::any::Any + Send + Sync>
                ));
                Err(error)
            }
        }
    }

    /// An answer past its TTL but within the stale window, marked `stale`, from L1 (memory-only)
    /// or Redis; counted as served.
    async fn stale_answer(&self, key: &RequestKey) -> Option<CachedResponse<T>> {
        let window = self.inner.config.stale_window;
        let now = unix_millis();
        let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
        let found = if let Some(l2) = &self.inner.l2 {
            let frame = match l2.read(key.cache_key(), window_ms).await {
                Ok(frame) => frame?,
                Err(e) => {
                    tracing::warn!(error = %e, "no stale answer: Redis read failed");
                    return None;
                }
            };
            let value: T = decode_msgpack(&frame.payload).ok()?;
            let counters = self.counters(key.operation());
            let mut metadata = self.metadata(
                key,
                &counters.name,
                frame.meta.cached_at_ms,
                true,
                Some(Layer::L2),
            );
            metadata.text_tier = frame.meta.text_tier.or(Some(key.tier()));
            metadata.stale = frame.meta.expires_at_ms <= now;
            CachedResponse::new(Arc::new(value), Arc::new(metadata))
        } else {
            let (entry, _) = self.inner.near.peek(key.cache_key().as_str())?;
            if entry.fresh_until_ms.saturating_add(window_ms) <= now {
                return None;
            }
            let metadata = ResponseMetadata {
                stale: entry.fresh_until_ms <= now,
                ..(*entry.metadata).clone()
            };
            CachedResponse::new(entry.value, Arc::new(metadata))
        };
        if found.metadata.stale {
            self.counters(key.operation())
                .stale_served
                .fetch_add(1, Ordering::Relaxed);
        }
        Some(found)
    }
}

/// A stale answer as `get_or_compute` returns it.
fn stale_computed<T>(response: CachedResponse<T>) -> Computed<T> {
    // Another instance may have stored a fresh answer meanwhile: then it is a plain hit.
    let source = match (response.metadata.stale, response.metadata.layer) {
        (true, _) => Source::Stale,
        (false, Some(Layer::L1)) => Source::L1,
        (false, _) => Source::L2,
    };
    Computed {
        response,
        source,
        compute_time: None,
        stored: false,
    }
}
