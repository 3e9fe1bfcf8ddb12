//! [`SharedTier`]: a [`FrameStore`](cache_core::FrameStore) seen through a frame codec — what both
//! two-tier caches put behind their [`NearCache`](crate::NearCache).
//!
//! It encodes values into frames (compression, encryption bound to the full key), decodes what the
//! store returns, and applies the stored-bytes rules in one place: a corrupt frame is a miss, is
//! deleted if unchanged and is counted; a frame this build cannot read is a miss left in place; a
//! frame past its soft expiry is a miss.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use cache_core::frame::{
    Codec, Compression, DECODE_OFFLOAD_ABOVE, Frame, FrameCodec, FrameMeta, Unreadable,
    declared_size,
};
use cache_core::{
    CacheKey, DynFrameStore, ErrorKind, Layer, Recorder, Result, StoreInfo, StoreStats, StoreWrite,
    StripedCounter, Ttl, unix_millis,
};

/// How a [`SharedTier`] was used, with its store's own counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[non_exhaustive]
pub struct L2Stats {
    /// Reads the store answered with a readable, fresh frame.
    pub hits: u64,
    /// Reads that found nothing usable (absent, expired, undecodable, or failed).
    pub misses: u64,
    /// Stored values that were not valid frames; each was deleted.
    pub corrupt_entries: u64,
    /// Stored frames this instance cannot read or will not trust (a newer frame version, a key
    /// or algorithm it lacks, a key that differs, plaintext while it requires encryption); they
    /// are misses and are left in place for the instances that can read them.
    pub unreadable_entries: u64,
    /// `unreadable_entries` by reason, in [`Unreadable::ALL`] order (see [`Self::unreadable`]).
    pub unreadable_by_reason: [u64; Unreadable::COUNT],
    /// The store's own counters (errors, replay queue).
    pub store: StoreStats,
}

impl L2Stats {
    /// How many unreadable frames were met for `reason`.
    pub fn unreadable(&self, reason: Unreadable) -> u64 {
        Unreadable::ALL
            .iter()
            .position(|r| *r == reason)
            .map_or(0, |i| self.unreadable_by_reason[i])
    }
}

#[derive(Default)]
struct Counters {
    /// Bumped by every read: striped, so that reads on different cores share no cache line.
    hits: StripedCounter,
    misses: StripedCounter,
    corrupt: AtomicU64,
    unreadable: AtomicU64,
    unreadable_by_reason: [AtomicU64; Unreadable::COUNT],
}

/// A frame store with the codec that reads and writes its frames.
#[derive(Clone)]
pub struct SharedTier {
    store: Arc<dyn DynFrameStore>,
    info: Arc<StoreInfo>,
    codec: FrameCodec,
    recorder: Option<Arc<dyn Recorder>>,
    counters: Arc<Counters>,
}

impl fmt::Debug for SharedTier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedTier")
            .field("store", &self.info)
            .field("codec", &self.codec)
            .finish_non_exhaustive()
    }
}

impl Counters {
    /// Counts a read as a hit or a miss.
    fn count_read(&self, hit: bool) {
        if hit { &self.hits } else { &self.misses }.add(1);
    }
}

/// The wall clock of one read (milliseconds since the Unix epoch): read at its first use and
/// kept, so a read's expiry check and its caller's remaining-TTL computation, or a batch's
/// checks, cost one reading (tens of nanoseconds on a virtual machine). A decode that ran off
/// the runtime makes the next use read it again.
///
/// ```
/// let mut clock = cache_memory::ReadClock::default();
/// let first = clock.now();
/// assert_eq!(clock.now(), first);
/// assert!(first.abs_diff(cache_core::unix_millis()) < 1_000);
/// ```
#[derive(Debug, Default)]
pub struct ReadClock(Option<u64>);

impl ReadClock {
    /// The reading, taken now if none is kept.
    pub fn now(&mut self) -> u64 {
        *self.0.get_or_insert_with(unix_millis)
    }

    fn forget(&mut self) {
        self.0 = None;
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl SharedTier {
    /// `store` read and written through `codec`, reporting to `recorder`.
    pub fn new(
        store: Arc<dyn DynFrameStore>,
        codec: FrameCodec,
        recorder: Option<Arc<dyn Recorder>>,
    ) -> Self {
        let info = Arc::new(store.info());
        Self {
            store,
            info,
            codec,
            recorder,
            counters: Arc::default(),
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn DynFrameStore> {
        &self.store
    }

    /// What the store is (its namespace and limits).
    pub fn info(&self) -> &StoreInfo {
        &self.info
    }

    /// The codec.
    pub fn codec(&self) -> &FrameCodec {
        &self.codec
    }

    /// The full key of `key`: `{namespace}:{key}`.
    pub fn full_key(&self, key: &CacheKey) -> String {
        self.info.full_key(key)
    }

    /// The key a frame is bound to: the full key when frames are encrypted (the AEAD's associated
    /// data); nothing otherwise, so that a read does not allocate it for nothing.
    fn bound_key(&self, key: &CacheKey) -> String {
        if self.codec.is_encrypting() {
            self.full_key(key)
        } else {
            String::new()
        }
    }

    /// Whether the store looks available (no network call).
    pub fn is_available(&self) -> bool {
        self.store.is_available()
    }

    /// The counters.
    pub fn stats(&self) -> L2Stats {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        L2Stats {
            hits: self.counters.hits.get(),
            misses: self.counters.misses.get(),
            corrupt_entries: load(&self.counters.corrupt),
            unreadable_entries: load(&self.counters.unreadable),
            unreadable_by_reason: std::array::from_fn(|i| {
                load(&self.counters.unreadable_by_reason[i])
            }),
            store: self.store.stats(),
        }
    }

    /// Reads and decodes the frame of `key`; a frame counts while `now < expires_at + grace_ms`
    /// (serve-stale reads pass the window as grace). Counted as a hit or a miss.
    ///
    /// # Errors
    /// Store errors other than unavailability (for example [`ErrorKind::Auth`](cache_core::ErrorKind::Auth)).
    pub async fn read(&self, key: &CacheKey, grace_ms: u64) -> Result<Option<Frame>> {
        self.read_with(key, grace_ms, &mut ReadClock::default())
            .await
    }

    /// [`read`](Self::read), its expiry check on `clock` (which the caller may read again).
    ///
    /// # Errors
    /// As [`read`](Self::read).
    pub async fn read_with(
        &self,
        key: &CacheKey,
        grace_ms: u64,
        clock: &mut ReadClock,
    ) -> Result<Option<Frame>> {
        let fetched = self.store.get(key).await;
        self.accept_with(key, fetched, grace_ms, clock).await
    }

    /// What [`read`](Self::read) does with the store's answer: decodes, applies the stored-bytes
    /// rules and counts. For a caller that asked the store itself (statically dispatched, without
    /// the boxed future of the dyn store).
    ///
    /// # Errors
    /// `fetched`'s error, unless it is transient (then a miss).
    pub async fn accept(
        &self,
        key: &CacheKey,
        fetched: Result<Option<Bytes>>,
        grace_ms: u64,
    ) -> Result<Option<Frame>> {
        self.accept_with(key, fetched, grace_ms, &mut ReadClock::default())
            .await
    }

    /// [`accept`](Self::accept), its expiry check on `clock` (which the caller may read again).
    ///
    /// # Errors
    /// As [`accept`](Self::accept).
    pub async fn accept_with(
        &self,
        key: &CacheKey,
        fetched: Result<Option<Bytes>>,
        grace_ms: u64,
        clock: &mut ReadClock,
    ) -> Result<Option<Frame>> {
        // The bytes were fetched after any reading the caller took: the check takes its own.
        clock.forget();
        let frame = match fetched {
            Ok(Some(raw)) => self.decode(key, raw, grace_ms, clock).await,
            Ok(None) => None,
            Err(e) if e.is_transient() => None,
            Err(e) => return Err(e),
        };
        self.counters.count_read(frame.is_some());
        Ok(frame)
    }

    /// Reads and decodes several frames (one round trip); one slot per key.
    ///
    /// # Errors
    /// As [`read`](Self::read).
    pub async fn read_many(&self, keys: &[CacheKey]) -> Result<Vec<Option<Frame>>> {
        let raws = match self.store.get_many(keys).await {
            Ok(raws) => raws,
            Err(e) if e.is_transient() => vec![None; keys.len()],
            Err(e) => return Err(e),
        };
        let mut frames = Vec::with_capacity(keys.len());
        // One reading of the wall clock serves the batch's expiry checks (a read costs tens of
        // nanoseconds here, a hundred-key batch paid it a hundred times).
        let mut clock = ReadClock::default();
        for (key, raw) in keys.iter().zip(raws) {
            let frame = match raw {
                Some(raw) => self.decode(key, raw, 0, &mut clock).await,
                None => None,
            };
            self.counters.count_read(frame.is_some());
            frames.push(frame);
        }
        Ok(frames)
    }

    /// Decodes `stored`, the frame of `key` as a store holds it (decrypted under `key` when the
    /// codec encrypts), without counting it or deleting it when it does not decode: for tools
    /// that move entries between locations.
    ///
    /// # Errors
    /// What the codec returns for bytes it cannot decode.
    pub fn decode_frame(&self, key: &CacheKey, stored: Bytes) -> Result<Frame> {
        self.codec.decode(&self.bound_key(key), stored)
    }

    /// Encodes `payload` as the frame of `key` (recording what compression did).
    ///
    /// # Errors
    /// [`ErrorKind::CapacityExceeded`](cache_core::ErrorKind::CapacityExceeded) above the codec's limit; what the cipher returns.
    pub fn encode(
        &self,
        key: &CacheKey,
        meta: &FrameMeta,
        codec: Codec,
        payload: &[u8],
    ) -> Result<Bytes> {
        encode_with(
            &self.codec,
            self.recorder.as_ref(),
            &self.bound_key(key),
            meta,
            codec,
            payload,
        )
    }

    /// [`encode`](Self::encode) for async callers: a payload whose encoding may hold a worker for
    /// more than about 100 µs ([`FrameCodec::encode_offload_above`]: compression, encryption) is
    /// encoded on the blocking pool.
    ///
    /// # Errors
    /// As [`encode`](Self::encode).
    pub async fn encode_owned(
        &self,
        key: &CacheKey,
        meta: &FrameMeta,
        codec: Codec,
        payload: Bytes,
    ) -> Result<Bytes> {
        if payload.len() <= self.codec.encode_offload_above() {
            return self.encode(key, meta, codec, &payload);
        }
        let (frames, recorder) = (self.codec.clone(), self.recorder.clone());
        let (bound, meta) = (self.bound_key(key), meta.clone());
        off_runtime(move || encode_with(&frames, recorder.as_ref(), &bound, &meta, codec, &payload))
            .await?
    }

    /// Writes `payload` as the frame of `key`, kept by the store for `ttl`. The frame's soft expiry
    /// is clamped to `ttl`, so it never claims more life than the store gives the key.
    ///
    /// # Errors
    /// As [`encode`](Self::encode); store errors other than unavailability.
    pub async fn write(
        &self,
        key: &CacheKey,
        meta: &FrameMeta,
        codec: Codec,
        payload: Bytes,
        ttl: Ttl,
    ) -> Result<StoreWrite> {
        let latest_expiry = unix_millis().saturating_add(ttl.as_millis());
        let frame = if meta.expires_at_ms > latest_expiry {
            let mut clamped = meta.clone();
            clamped.expires_at_ms = latest_expiry;
            self.encode_owned(key, &clamped, codec, payload).await?
        } else {
            self.encode_owned(key, meta, codec, payload).await?
        };
        self.store.set(key, frame, ttl).await
    }

    /// Writes several payloads with one metadata and TTL.
    ///
    /// # Errors
    /// As [`write`](Self::write); nothing is written when one payload cannot be encoded.
    pub async fn write_many(
        &self,
        entries: &[(CacheKey, Bytes)],
        meta: &FrameMeta,
        codec: Codec,
        ttl: Ttl,
    ) -> Result<StoreWrite> {
        let mut frames = Vec::with_capacity(entries.len());
        for (key, payload) in entries {
            frames.push((
                key.clone(),
                self.encode_owned(key, meta, codec, payload.clone()).await?,
            ));
        }
        self.store.set_many(&frames, ttl).await
    }

    async fn decode(
        &self,
        key: &CacheKey,
        stored: Bytes,
        grace_ms: u64,
        clock: &mut ReadClock,
    ) -> Option<Frame> {
        // Large stored, or small but declaring a large payload (compressed): off the runtime.
        let heavy = stored.len() > DECODE_OFFLOAD_ABOVE
            || declared_size(&stored).is_some_and(|size| size > DECODE_OFFLOAD_ABOVE);
        let decoded = if heavy {
            // Decrypting and decompressing a large frame would hold the worker: off the runtime.
            let (frames, bound) = (self.codec.clone(), self.bound_key(key));
            let decoded = off_runtime(move || frames.decode_or_keep(&bound, stored)).await;
            // That took a while: the expiry check reads the clock again.
            clock.forget();
            decoded
        } else {
            Ok(self.codec.decode_or_keep(&self.bound_key(key), stored))
        };
        // The stored bytes come back with a decoding error, to delete only them if corrupt.
        let (error, stored) = match decoded {
            Ok(Ok(frame)) if frame.meta.expires_at_ms.saturating_add(grace_ms) > clock.now() => {
                return Some(frame);
            }
            Ok(Ok(_)) => return None,
            Ok(Err(undecoded)) => (undecoded.error, Some(undecoded.stored)),
            Err(task_failed) => (task_failed, None),
        };
        if let Some(recorder) = &self.recorder {
            recorder.record_corrupt_entry(Layer::L2, error.kind());
        }
        if error.kind() != ErrorKind::Corrupted {
            bump(&self.counters.unreadable);
            if let Some(i) = Unreadable::of(&error)
                .and_then(|reason| Unreadable::ALL.iter().position(|r| *r == reason))
            {
                bump(&self.counters.unreadable_by_reason[i]);
            }
            tracing::debug!(error = %error, "unreadable value in the shared tier left in place");
            return None;
        }
        bump(&self.counters.corrupt);
        tracing::warn!(error = %error, "undecodable value in the shared tier; deleting it");
        if let Some(stored) = stored
            && let Err(e) = self.store.delete_if_unchanged(key, stored).await
        {
            tracing::debug!(error = %e, "could not delete the undecodable value");
        }
        // The delete was a round trip: the batch's next check takes a new reading.
        clock.forget();
        None
    }
}

/// Encodes through `codec`, telling `recorder` what compression did.
fn encode_with(
    codec: &FrameCodec,
    recorder: Option<&Arc<dyn Recorder>>,
    bound_key: &str,
    meta: &FrameMeta,
    kind: Codec,
    payload: &[u8],
) -> Result<Bytes> {
    let started = recorder.map(|_| Instant::now());
    let encoded = codec.encode(bound_key, meta, kind, payload)?;
    if let (Some(recorder), Some(started)) = (recorder, started)
        && encoded.compression != Compression::None
    {
        recorder.record_compression(
            encoded.original_size,
            encoded.bytes.len(),
            started.elapsed(),
        );
    }
    Ok(Bytes::from(encoded.bytes))
}

/// Calibrates the TSC-backed clock (quanta) that L1 expiry checks and timings read, off the
/// async runtime: its first read spins for 1 to 200 ms, once per process. The async
/// constructors call it; a cache built synchronously calibrates on its first clock read.
pub async fn calibrate_clock() {
    static CALIBRATED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !CALIBRATED.load(std::sync::atomic::Ordering::Relaxed) {
        // A failed task only means the first read calibrates instead.
        let _ = off_runtime(quanta::Instant::now).await;
        CALIBRATED.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Runs `work` on the blocking pool of the current tokio runtime (inline without one), so that
/// CPU-heavy codec work (large frames, large payloads) does not hold an async worker.
///
/// # Errors
/// [`ErrorKind::Backend`] when the blocking task panicked.
pub async fn off_runtime<R: Send + 'static>(
    work: impl FnOnce() -> R + Send + 'static,
) -> Result<R> {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => runtime.spawn_blocking(work).await.map_err(|e| {
            cache_core::Error::new(ErrorKind::Backend, "a frame codec task failed").with_source(e)
        }),
        Err(_) => Ok(work()),
    }
}

#[cfg(test)]
mod tests {
    use cache_core::frame::FrameSettings;

    use super::*;
    use crate::MemoryFrameStore;

    /// A batch reads the wall clock once for its expiry checks (again after a decode off the
    /// runtime): a frame whose own expiry has passed is still a miss among live ones, small or
    /// large.
    #[tokio::test]
    async fn a_batch_tells_expired_frames_from_live_ones_small_and_large() {
        let tier = SharedTier::new(
            Arc::new(MemoryFrameStore::new("t")),
            FrameSettings::default().codec(None),
            None,
        );
        let (now, ttl) = (unix_millis(), Ttl::from_secs(60).unwrap());
        let large = Bytes::from(vec![7u8; DECODE_OFFLOAD_ABOVE + 1]);
        let cases = [
            ("live", now + 60_000, Bytes::from_static(b"small")),
            ("expired", now - 1, Bytes::from_static(b"small")),
            ("large live", now + 60_000, large.clone()),
            ("large expired", now - 1, large),
            ("live again", now + 60_000, Bytes::from_static(b"small")),
        ];
        let mut keys = Vec::new();
        for (name, expires_at_ms, payload) in &cases {
            let key = CacheKey::new(*name).unwrap();
            let meta = FrameMeta::new(now - 10, *expires_at_ms);
            tier.write(&key, &meta, Codec::Raw, payload.clone(), ttl)
                .await
                .unwrap();
            keys.push(key);
        }
        let found: Vec<bool> = tier
            .read_many(&keys)
            .await
            .unwrap()
            .iter()
            .map(Option::is_some)
            .collect();
        assert_eq!(found, [true, false, true, false, true]);
    }
}
