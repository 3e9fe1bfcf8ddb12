//! The read path of [`AIResponseCache`]: lookups (L1, then the shared tier) through the
//! [`NearCache`](cache_memory::NearCache) protocol, and the counting around them.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

// Reads are timed for the recorder and the sampled windows: the TSC-backed clock keeps that cheap.
use quanta::Instant;

use cache_core::frame::decode_msgpack;
use cache_core::{
    CacheOp, Layer, Outcome, ReadReport, ReadStatus, RequestEvent, Result, StripedCounter,
    TextTier, Ttl, unix_millis,
};
use cache_memory::{Fill, ReadClock};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::cache::{AIResponseCache, L1_ENTRY_METADATA, L1Entry, ai_version};
use crate::controls::RequestControls;
use crate::footprint::decoded_bytes;
use crate::keys::RequestKey;
use crate::response::{CachedResponse, Computed, Rendered, ResponseMetadata, Source};
use crate::stats::OpCounters;
use crate::tiers::tier_index;

/// How much of a lookup to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// L1, then the shared tier.
    Both,
    /// L1 only; a miss there is not counted (the caller goes on and counts the read once).
    L1Only,
    /// L1 already missed (its counters saw it): re-check L1 without counting it, then the
    /// shared tier.
    AfterL1Miss,
}

fn system_time(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

impl<T> AIResponseCache<T>
where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    /// Reads the answer stored for `key`.
    ///
    /// # Errors
    /// Redis errors other than unavailability (for example [`ErrorKind::Auth`](cache_core::ErrorKind::Auth)).
    pub async fn get(&self, key: &RequestKey) -> Result<Option<CachedResponse<T>>> {
        self.lookup(key, &RequestControls::default(), true, Stage::Both)
            .await
    }

    /// Reads `key` like [`get`](Self::get) and reports who answered (HIT_L1, HIT_L2 or MISS)
    /// with the time spent in each layer.
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub async fn get_with_status(
        &self,
        key: &RequestKey,
    ) -> Result<(Option<CachedResponse<T>>, ReadReport)> {
        let mut report = ReadReport::new(ReadStatus::Miss);
        let found = self
            .lookup_timed(
                key,
                &RequestControls::default(),
                true,
                Some(&mut report),
                Stage::Both,
            )
            .await?;
        report.status = match found.as_ref().and_then(|hit| hit.metadata.layer) {
            Some(Layer::L1) => ReadStatus::HitL1,
            Some(_) => ReadStatus::HitL2,
            None => ReadStatus::Miss,
        };
        Ok((found, report))
    }

    pub(crate) async fn lookup_quietly(
        &self,
        key: &RequestKey,
        controls: &RequestControls,
        stage: Stage,
    ) -> Option<Computed<T>> {
        match self.lookup(key, controls, true, stage).await {
            Ok(Some(response)) => {
                let source = match response.metadata.layer {
                    Some(Layer::L1) => Source::L1,
                    _ => Source::L2,
                };
                Some(Computed {
                    response,
                    source,
                    compute_time: None,
                    stored: false,
                })
            }
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(error = %e, operation = key.operation(), "cache read failed; computing");
                None
            }
        }
    }

    pub(crate) fn metadata(
        &self,
        key: &RequestKey,
        operation: &Arc<str>,
        cached_at_ms: u64,
        cache_hit: bool,
        layer: Option<Layer>,
    ) -> ResponseMetadata {
        ResponseMetadata {
            cached_at: system_time(cached_at_ms),
            cache_hit,
            text_tier: Some(key.tier()),
            operation: Arc::clone(operation),
            ai_version: Arc::clone(ai_version()),
            key: self.full_key_arc(key),
            layer,
            stale: false,
        }
    }

    /// [`full_key`](Self::full_key), allocated once (assembled on the stack when it fits).
    fn full_key_arc(&self, key: &RequestKey) -> Arc<str> {
        let (namespace, logical) = (
            self.inner.namespace.as_bytes(),
            key.cache_key().as_str().as_bytes(),
        );
        let mut buffer = [0u8; 256];
        let len = namespace.len() + 1 + logical.len();
        if len > buffer.len() {
            return Arc::from(self.full_key(key));
        }
        buffer[..namespace.len()].copy_from_slice(namespace);
        buffer[namespace.len()] = b':';
        buffer[namespace.len() + 1..len].copy_from_slice(logical);
        match std::str::from_utf8(&buffer[..len]) {
            Ok(text) => Arc::from(text),
            Err(_) => Arc::from(self.full_key(key)),
        }
    }

    /// Whether an entry of `tier` for `operation` belongs in L1 (DESIGN §5's promotion rules).
    pub(crate) fn belongs_in_l1(&self, tier: TextTier, operation: &str, hits: u64) -> bool {
        if self.inner.l2.is_none() {
            return true;
        }
        let stable = || {
            self.inner
                .config
                .stable_operations
                .iter()
                .any(|op| op == operation)
        };
        match tier {
            TextTier::Small => true,
            TextTier::Medium => stable() || hits >= self.inner.config.promotion_hit_threshold,
            TextTier::Large => operation == "sentiment",
            _ => false,
        }
    }

    /// How long an L1 copy of an entry with `ttl` left may live.
    pub(crate) fn l1_ttl(&self, ttl: Ttl) -> Ttl {
        if self.inner.l2.is_some() {
            ttl.min(self.inner.l1_max_ttl)
        } else {
            // Memory-only, L1 is where serve-stale finds answers past their TTL.
            self.with_stale_window(ttl)
        }
    }

    /// Counts what became of an L1 fill; true when L1 holds the entry now.
    pub(crate) fn filled(&self, fill: Fill) -> bool {
        if fill == Fill::TooLarge {
            self.inner
                .l1_skipped_too_large
                .fetch_add(1, Ordering::Relaxed);
        }
        fill == Fill::Filled
    }

    /// Reads L1, then Redis. `count` is false for re-checks of a read already counted.
    async fn lookup(
        &self,
        key: &RequestKey,
        controls: &RequestControls,
        count: bool,
        stage: Stage,
    ) -> Result<Option<CachedResponse<T>>> {
        self.lookup_timed(key, controls, count, None, stage).await
    }

    /// [`lookup`](Self::lookup), filling `report` with the time spent per layer when given.
    async fn lookup_timed(
        &self,
        key: &RequestKey,
        controls: &RequestControls,
        count: bool,
        report: Option<&mut ReadReport>,
        stage: Stage,
    ) -> Result<Option<CachedResponse<T>>> {
        let monitoring = count && self.inner.config.monitoring_enabled;
        let every = self.inner.config.latency_sample_every;
        let counters = self.counters(key.operation());
        // Whether this read is timed is decided before it starts, so that the clock is read only
        // when it is (or when a recorder wants every read's time). The L1-only step of
        // `get_or_compute` may not be the read's outcome: it only predicts, without using up a
        // sample, and takes its sample once it hits.
        let timed = monitoring
            && match stage {
                Stage::L1Only => counters.next_is_sampled(every),
                _ => counters.sample_timing(every),
            };
        let started = (timed || (count && self.inner.recorder.is_some())).then(Instant::now);
        let found = self
            .lookup_uncounted(key, counters, controls, count, report, stage)
            .await;
        if stage == Stage::L1Only && matches!(found, Ok(None)) {
            // Not the read's outcome yet: the caller goes on to the shared tier.
            return found;
        }
        let sampled = match stage {
            Stage::L1Only => monitoring && counters.sample_timing(every),
            _ => timed,
        };
        // Counts are exact whatever `monitoring_enabled` says; only timings depend on it.
        let tier = &self.inner.tiers[tier_index(key.tier())];
        if count {
            let counter = if matches!(found, Ok(Some(_))) {
                &tier.hits
            } else {
                &tier.misses
            };
            counter.add(1);
            if found.is_err() {
                counters.failures.fetch_add(1, Ordering::Relaxed);
            }
        }
        // `sampled` implies `monitoring`; a mispredicted L1-only sample has no clock and is lost.
        if let (true, Some(started)) = (sampled, started) {
            let elapsed = started.elapsed();
            tier.latency.record(elapsed);
            counters.latency.record(elapsed);
        }
        let saved = match (&found, &self.inner.usage_meter) {
            (Ok(Some(hit)), Some(meter)) if count => {
                let usage = meter(&hit.value);
                OpCounters::add_usage(&counters.tokens_saved, &counters.cost_saved_micros, usage);
                Some(usage)
            }
            _ => None,
        };
        if let (Some(recorder), Some(started)) = (&self.inner.recorder, started) {
            let elapsed = started.elapsed();
            let no_l2 = self.inner.l2.is_none();
            let (layer, outcome) = match &found {
                Ok(Some(hit)) => (hit.metadata.layer.unwrap_or(Layer::L2), Outcome::Hit),
                Ok(None) if no_l2 => (Layer::L1, Outcome::Miss),
                Ok(None) => (Layer::L2, Outcome::Miss),
                Err(e) => (Layer::L2, Outcome::Failed(e.kind())),
            };
            recorder.record_operation(CacheOp::Get, layer, outcome, elapsed);
            recorder.record_request(
                &RequestEvent::new(&counters.name, key.tier().as_str(), outcome, layer, elapsed)
                    .with_saved(saved),
            );
        }
        found
    }

    pub(crate) fn record(
        &self,
        op: CacheOp,
        layer: Layer,
        outcome: Outcome,
        started: Option<Instant>,
    ) {
        if let (Some(recorder), Some(started)) = (&self.inner.recorder, started) {
            recorder.record_operation(op, layer, outcome, started.elapsed());
        }
    }

    /// Counts the read of a caller that joined another caller's flight: a hit when the leader
    /// found the answer in the shared tier, a miss when it computed it.
    pub(crate) fn count_joined(&self, key: &RequestKey, response: &CachedResponse<T>) {
        let counters = self.counters(key.operation());
        let hit = response.metadata.cache_hit;
        let counter = if hit {
            &counters.l2_hits
        } else {
            &counters.misses
        };
        counter.add(1);
        let tier = &self.inner.tiers[tier_index(key.tier())];
        let counter = if hit { &tier.hits } else { &tier.misses };
        counter.add(1);
    }

    /// Counts one computation of `key`'s answer, with its usage when a meter is set, and tells the
    /// recorder.
    pub(crate) fn account_computation(&self, key: &RequestKey, value: &T, compute_time: Duration) {
        let counters = self.counters(key.operation());
        counters.computed.fetch_add(1, Ordering::Relaxed);
        counters.compute_micros.fetch_add(
            u64::try_from(compute_time.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        let usage = self.inner.usage_meter.as_ref().map(|meter| meter(value));
        if let Some(usage) = usage {
            OpCounters::add_usage(&counters.tokens_used, &counters.cost_used_micros, usage);
        }
        if let Some(recorder) = &self.inner.recorder {
            recorder.record_compute(&counters.name, compute_time, usage);
        }
    }

    async fn lookup_uncounted(
        &self,
        key: &RequestKey,
        counters: &OpCounters,
        controls: &RequestControls,
        count: bool,
        mut report: Option<&mut ReadReport>,
        stage: Stage,
    ) -> Result<Option<CachedResponse<T>>> {
        let l1_started = report.is_some().then(Instant::now);
        let bump = |counter: &StripedCounter| {
            if count {
                counter.add(1);
            }
        };
        let name = key.cache_key().as_str();
        let near = &self.inner.near;
        let from_l1 = if count && stage != Stage::AfterL1Miss {
            near.get(name)
        } else {
            near.peek(name).map(|(entry, _)| entry)
        };
        // Memory-only with a stale window, L1 keeps answers past their TTL for serve-stale only.
        let from_l1 = from_l1.filter(|entry| {
            self.inner.l2.is_some()
                || self.inner.config.stale_window.is_zero()
                || entry.fresh_until_ms > unix_millis()
        });
        if let (Some(report), Some(started), Some(_)) =
            (report.as_deref_mut(), l1_started, near.l1())
        {
            report.l1_time = Some(started.elapsed());
        }
        if let Some(entry) = from_l1 {
            bump(&counters.l1_hits);
            return Ok(Some(CachedResponse {
                value: entry.value,
                metadata: entry.metadata,
                rendered: entry.rendered,
            }));
        }
        if stage == Stage::L1Only {
            return Ok(None);
        }
        let Some(l2) = &self.inner.l2 else {
            bump(&counters.misses);
            return Ok(None);
        };
        let ticket = near.begin_read(name);
        let asks_redis = l2.is_available();
        let l2_started = report.is_some().then(Instant::now);
        // One reading of the wall clock for the expiry check and the promotion's TTL.
        let mut clock = ReadClock::default();
        let read = l2.read_with(key.cache_key(), 0, &mut clock).await;
        if let (Some(report), Some(started), true) = (report, l2_started, asks_redis) {
            report.l2_time = Some(started.elapsed());
        }
        let frame = match read? {
            Some(frame) => frame,
            None => match self.read_old_layout(key.cache_key()).await {
                Some(frame) => {
                    // Another round trip since the reading: the promotion's TTL takes a new one.
                    clock = ReadClock::default();
                    frame
                }
                None => {
                    bump(&counters.misses);
                    return Ok(None);
                }
            },
        };
        let hits = Self::promotion_hits(counters, key.operation());
        let tier = frame.meta.text_tier.unwrap_or(key.tier());
        let keeps = !controls.read_only
            && near.l1().is_some()
            && self.belongs_in_l1(
                tier,
                key.operation(),
                hits + u64::from(count && *counters.name == *key.operation()),
            );
        // The clock is read only for an entry L1 may keep.
        let l1_ttl = keeps
            .then(|| Ttl::from_millis(frame.meta.remaining_ms(clock.now())).ok())
            .flatten();
        // An entry L1 is about to keep is decoded once anyway; the memo is for the others.
        let memo = l1_ttl.is_none().then_some(&self.inner.decoded);
        if let Some(response) = memo.and_then(|memo| memo.reuse(name, &frame)) {
            bump(&counters.l2_hits);
            return Ok(Some(response));
        }
        let (value, decoded_size): (T, usize) = match self
            .decode_payload(frame.payload.clone())
            .await
        {
            Ok(decoded) => decoded,
            Err(e) => {
                self.inner.decode_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, operation = key.operation(), "cached answer no longer decodes; treating it as a miss");
                bump(&counters.misses);
                return Ok(None);
            }
        };
        bump(&counters.l2_hits);
        let value = Arc::new(value);
        let mut metadata = self.metadata(
            key,
            &Self::op_label(counters, key.operation()),
            frame.meta.cached_at_ms,
            true,
            Some(Layer::L2),
        );
        metadata.text_tier = Some(tier);
        if let Some(version) = &frame.meta.ai_version {
            metadata.ai_version = Arc::clone(version);
        }
        if let Some(ttl) = l1_ttl {
            let entry = L1Entry {
                value: Arc::clone(&value),
                metadata: Arc::new(ResponseMetadata {
                    layer: Some(Layer::L1),
                    ..metadata.clone()
                }),
                rendered: Rendered::default(),
                size: decoded_size.saturating_add(L1_ENTRY_METADATA),
                fresh_until_ms: frame.meta.expires_at_ms,
            };
            let fill = near.promote(key.cache_key(), ticket, entry, self.l1_ttl(ttl));
            if self.filled(fill) {
                counters.promotions.fetch_add(1, Ordering::Relaxed);
            }
        }
        let response = CachedResponse::new(value, Arc::new(metadata));
        if let Some(memo) = memo {
            memo.keep(name, &frame, &response, decoded_size);
        }
        Ok(Some(response))
    }

    /// Decodes an answer's payload, with the bytes it occupies decoded (see
    /// [`decoded_bytes`]); a large one off the runtime (it could hold the worker for more than
    /// about 100 µs).
    pub(crate) async fn decode_payload(&self, payload: bytes::Bytes) -> Result<(T, usize)> {
        let inline = payload.len() <= cache_core::frame::DECODE_OFFLOAD_ABOVE;
        let decode = move || {
            decode_msgpack::<T>(&payload).map(|value| {
                let bytes = decoded_bytes(&value, payload.len());
                (value, bytes)
            })
        };
        if inline {
            return decode();
        }
        cache_memory::off_runtime(decode).await?
    }

    /// How long an entry of `ttl` is kept: its TTL plus the stale window (capped at the longest
    /// TTL).
    pub(crate) fn with_stale_window(&self, ttl: Ttl) -> Ttl {
        let kept = (ttl.as_duration() + self.inner.config.stale_window).min(Ttl::MAX);
        Ttl::new(kept).unwrap_or(ttl)
    }
}
