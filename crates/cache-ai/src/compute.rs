//! [`AIResponseCache::get_or_compute`]: single-flight in front of the model, with serve-stale.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use cache_core::{Layer, unix_millis};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument as _;

use crate::cache::AIResponseCache;
use crate::controls::RequestControls;
use crate::flight::{Leader, Role, wait};
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
        self.get_or_compute_in_span(key, controls, compute)
            .instrument(span_of(key))
            .await
    }

    /// [`get_or_compute`](Self::get_or_compute) for a `'static` computation: with serve-stale,
    /// a computation still running after `stale_after` **goes on in the background** (at most
    /// `background_refreshes` at once, each at most `background_refresh_timeout`) while the stale
    /// answer is served, stores its answer, and the next request gets it. Callers that join the
    /// flight meanwhile get the stale answer at once, as [`Source::Stale`]. `shutdown` waits for
    /// the refreshes, then cancels those still running.
    ///
    /// # Errors
    /// The compute error, shared.
    pub async fn get_or_compute_owned<F, Fut, E>(
        &self,
        key: &RequestKey,
        controls: &RequestControls,
        compute: F,
    ) -> std::result::Result<Computed<T>, Arc<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<T, E>> + Send + 'static,
        E: Send + Sync + 'static,
    {
        async {
            let leader = match self.start_flight::<E>(key, controls).await {
                Start::Answered(answer) => return answer,
                Start::Lead(leader) => leader,
            };
            let started = Instant::now();
            let mut computation = Box::pin(compute());
            let result = match self.slow_after() {
                Some(after) => match tokio::time::timeout(after, computation.as_mut()).await {
                    Ok(result) => result,
                    Err(_) => match self.stale_answer(key).await {
                        Some(stale) => {
                            self.refresh_in_background(
                                leader,
                                key,
                                controls,
                                computation,
                                started,
                                &stale,
                            );
                            return Ok(stale_computed(stale));
                        }
                        None => computation.await,
                    },
                },
                None => computation.await,
            };
            self.finish(leader, key, controls, result, started).await
        }
        .instrument(span_of(key))
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
        let leader = match self.start_flight::<E>(key, controls).await {
            Start::Answered(answer) => return answer,
            Start::Lead(leader) => leader,
        };
        let started = Instant::now();
        let mut computation = std::pin::pin!(compute());
        let result = match self.slow_after() {
            Some(after) => match tokio::time::timeout(after, computation.as_mut()).await {
                Ok(result) => result,
                // Too slow: a stale answer, when there is one, wins over waiting longer. (The
                // computation borrows, so it cannot go on: get_or_compute_owned lets it.)
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
            },
            None => computation.await,
        };
        self.finish(leader, key, controls, result, started).await
    }

    /// `stale_after`, when serve-stale is on.
    fn slow_after(&self) -> Option<std::time::Duration> {
        let config = &self.inner.config;
        config
            .stale_after
            .filter(|_| !config.stale_window.is_zero())
    }

    /// L1 first; on a miss, joins the flight before any shared-tier read, so one read (by the
    /// leader) serves every caller of the key. Returns the answer, or the leadership.
    async fn start_flight<E>(&self, key: &RequestKey, controls: &RequestControls) -> Start<T, E>
    where
        E: Send + Sync + 'static,
    {
        if controls.reads()
            && let Some(hit) = self.lookup_quietly(key, controls, Stage::L1Only).await
        {
            tracing::debug!(source = ?hit.source, "answered from the cache");
            return Start::Answered(Ok(hit));
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
                        // A flight that serves stale while it refreshes tells its joiners so.
                        let source = if response.metadata.stale {
                            Source::Stale
                        } else {
                            Source::Joined
                        };
                        return Start::Answered(Ok(Computed {
                            response,
                            source,
                            compute_time: None,
                            stored: false,
                        }));
                    }
                    Some(Err(shared)) => match shared.downcast::<E>() {
                        Ok(error) => return Start::Answered(Err(error)),
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
            return Start::Answered(Ok(hit));
        }
        Start::Lead(leader)
    }

    /// Serves `stale` to the flight's callers (and those joining it) and lets `computation` go
    /// on in the background to refresh the entry; without a free slot it is dropped.
    fn refresh_in_background<Fut, E>(
        &self,
        leader: Leader<CachedResponse<T>>,
        key: &RequestKey,
        controls: &RequestControls,
        computation: std::pin::Pin<Box<Fut>>,
        started: Instant,
        stale: &CachedResponse<T>,
    ) where
        Fut: Future<Output = std::result::Result<T, E>> + Send + 'static,
        E: Send + Sync + 'static,
    {
        let Some(permit) = self.inner.refreshes.reserve() else {
            tracing::warn!(
                "computation too slow and no background slot: serving stale, dropping it"
            );
            leader.land(Ok(stale.clone()));
            return;
        };
        tracing::warn!(
            "computation too slow; serving a stale answer while it refreshes in the background"
        );
        leader.publish(Ok(stale.clone()));
        let (cache, key, controls) = (self.clone(), key.clone(), *controls);
        self.inner.refreshes.spawn(permit, async move {
            let result = computation.await;
            let _ = cache.finish(leader, &key, &controls, result, started).await;
        });
    }

    /// Accounts for, stores (unless fenced) and lands a computation's outcome; a failure falls
    /// back to a stale answer when serve-stale has one.
    async fn finish<E>(
        &self,
        leader: Leader<CachedResponse<T>>,
        key: &RequestKey,
        controls: &RequestControls,
        result: std::result::Result<T, E>,
        started: Instant,
    ) -> std::result::Result<Computed<T>, Arc<E>>
    where
        E: Send + Sync + 'static,
    {
        let serve_stale = !self.inner.config.stale_window.is_zero();
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
                let stored_at = match store {
                    Ok(stored_at) => stored_at,
                    Err(e) => {
                        tracing::warn!(error = %e, operation = key.operation(), "answer not cached");
                        None
                    }
                };
                let was_stored = stored_at.is_some();
                let counters = self.counters(key.operation());
                let metadata = self.metadata(
                    key,
                    &Self::op_label(counters, key.operation()),
                    stored_at.unwrap_or_else(unix_millis),
                    false,
                    None,
                );
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
            let (value, _): (T, usize) = self.decode_payload(frame.payload.clone()).await.ok()?;
            let counters = self.counters(key.operation());
            let mut metadata = self.metadata(
                key,
                &Self::op_label(counters, key.operation()),
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

/// The span of a `get_or_compute`: the request named by operation, tier and a digest prefix,
/// never by its text.
fn span_of(key: &RequestKey) -> tracing::Span {
    tracing::debug_span!(
        "aicache.get_or_compute",
        operation = key.operation(),
        tier = key.tier().as_str(),
        digest = &key.digest()[..16],
    )
}

/// What the start of a `get_or_compute` comes to: an answer, or the flight's leadership.
enum Start<T, E> {
    Answered(std::result::Result<Computed<T>, Arc<E>>),
    Lead(Leader<CachedResponse<T>>),
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
