//! [`MemoryFrameStore`]: a [`FrameStore`] in process memory, for tests and memory-only tools.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Bound;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cache_core::frame::{Stamp, is_tombstone, stamp, tombstone};
use cache_core::{
    CacheKey, Error, ErrorKind, FrameStore, HealthReport, KeyPattern, L2Health, RedisMemory,
    RemovedSink, RestoreEntry, RestoreRule, Result, ShutdownReport, StoreInfo, StoreStats,
    StoreWrite, Ttl, WalkCursor, WalkEntry, WalkMode, WalkPage, check_frame_size, unix_millis,
};

/// Entries a walk page holds at most.
const PAGE_SIZE: usize = 1000;

struct Stored {
    frame: Bytes,
    expires_at: Instant,
}

/// A [`FrameStore`] kept in this process: a sorted map under one lock, with TTLs enforced on read.
///
/// It is not a cache (no byte budget, no eviction) and not shared between processes; it exists so
/// that tools and tests can run against the same contract as Redis. Cloning shares the entries.
///
/// ```
/// # tokio_test_block_on(async {
/// use cache_core::{CacheKey, FrameStore, Ttl};
/// use cache_memory::MemoryFrameStore;
///
/// let store = MemoryFrameStore::new("app");
/// let key = CacheKey::new("k")?;
/// store.set(&key, "frame".into(), Ttl::from_secs(60)?).await?;
/// assert_eq!(store.get(&key).await?.as_deref(), Some(&b"frame"[..]));
/// assert_eq!(store.info().full_key(&key), "app:k");
/// # Ok::<(), cache_core::Error>(()) }).unwrap();
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// ```
#[derive(Clone)]
pub struct MemoryFrameStore {
    namespace: Arc<str>,
    entries: Arc<Mutex<BTreeMap<CacheKey, Stored>>>,
    /// Pattern removals within the horizon: the pattern, when (ms since the epoch) and until.
    removed_patterns: Arc<Mutex<Vec<(KeyPattern, u64, Instant)>>>,
    max_frame_size: usize,
    removal_horizon: Duration,
}

impl fmt::Debug for MemoryFrameStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryFrameStore")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

impl MemoryFrameStore {
    /// An empty store over `namespace`, accepting frames of payloads up to 64 MiB (the default
    /// value limit) with their header, as a Redis store does.
    pub fn new(namespace: impl AsRef<str>) -> Self {
        Self {
            namespace: Arc::from(namespace.as_ref()),
            entries: Arc::new(Mutex::new(BTreeMap::new())),
            removed_patterns: Arc::new(Mutex::new(Vec::new())),
            max_frame_size: cache_core::frame::DEFAULT_MAX_PAYLOAD + 1024,
            removal_horizon: Duration::from_secs(600),
        }
    }

    /// The same store remembering removals (a tombstone under each removed key, which
    /// conditional writes never land over) for `horizon` instead of 10 minutes, as a Redis store
    /// does for its `replay_horizon`.
    #[must_use]
    pub fn with_removal_horizon(mut self, horizon: Duration) -> Self {
        self.removal_horizon = horizon;
        self
    }

    /// The same store accepting frames up to `max_frame_size` bytes.
    #[must_use]
    pub fn with_max_frame_size(mut self, max_frame_size: usize) -> Self {
        self.max_frame_size = max_frame_size;
        self
    }

    /// How many live entries the store holds.
    pub fn len(&self) -> usize {
        let now = Instant::now();
        self.lock()
            .values()
            .filter(|s| s.expires_at > now && !is_tombstone(&s.frame))
            .count()
    }

    /// Whether the store holds no live entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<CacheKey, Stored>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn live(&self, key: &CacheKey) -> Option<Bytes> {
        let now = Instant::now();
        let mut entries = self.lock();
        match entries.get(key) {
            Some(stored) if stored.expires_at > now => {
                Some(stored.frame.clone()).filter(|frame| !is_tombstone(frame))
            }
            Some(_) => {
                entries.remove(key);
                None
            }
            None => None,
        }
    }

    fn check_size(&self, frame: &Bytes) -> Result<()> {
        check_frame_size(frame.len(), self.max_frame_size)
    }

    /// Replaces `key`'s entry by a tombstone; true when it held a value.
    fn remove_into_tombstone(
        &self,
        entries: &mut BTreeMap<CacheKey, Stored>,
        key: &CacheKey,
        now: Instant,
    ) -> bool {
        let held = entries
            .get(key)
            .is_some_and(|s| s.expires_at > now && !is_tombstone(&s.frame));
        entries.insert(
            key.clone(),
            Stored {
                frame: tombstone(unix_millis()),
                expires_at: now + self.removal_horizon,
            },
        );
        held
    }

    /// Records `pattern` as removed now, for the removal horizon (as Redis does).
    fn record_pattern(&self, pattern: &KeyPattern) {
        let now = Instant::now();
        let mut patterns = self
            .removed_patterns
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        patterns.retain(|(p, _, until)| *until > now && p != pattern);
        patterns.push((pattern.clone(), unix_millis(), now + self.removal_horizon));
    }

    /// Whether a pattern removal recorded at or after `written_at_ms` covers `key`.
    fn removed_by_pattern(&self, key: &CacheKey, written_at_ms: u64) -> bool {
        let now = Instant::now();
        self.removed_patterns
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .any(|(p, at, until)| {
                *until > now
                    && cache_core::removal_blocks(*at, written_at_ms)
                    && p.matches(key.as_str())
            })
    }

    fn put(&self, key: &CacheKey, frame: Bytes, expires_at: Instant) {
        self.lock()
            .insert(key.clone(), Stored { frame, expires_at });
    }
}

fn instant_of(expires_at_ms: u64) -> Option<Instant> {
    let left = expires_at_ms
        .checked_sub(unix_millis())
        .filter(|ms| *ms > 0)?;
    Instant::now().checked_add(Duration::from_millis(left))
}

#[deny(clippy::missing_trait_methods)]
impl FrameStore for MemoryFrameStore {
    fn info(&self) -> StoreInfo {
        StoreInfo::new("memory", &*self.namespace, self.max_frame_size)
    }

    fn is_available(&self) -> bool {
        true
    }

    async fn get(&self, key: &CacheKey) -> Result<Option<Bytes>> {
        Ok(self.live(key))
    }

    async fn get_many(&self, keys: &[CacheKey]) -> Result<Vec<Option<Bytes>>> {
        Ok(keys.iter().map(|key| self.live(key)).collect())
    }

    async fn set(&self, key: &CacheKey, frame: Bytes, ttl: Ttl) -> Result<StoreWrite> {
        self.check_size(&frame)?;
        self.put(key, frame, Instant::now() + ttl.as_duration());
        Ok(StoreWrite::Written)
    }

    async fn set_many(&self, entries: &[(CacheKey, Bytes)], ttl: Ttl) -> Result<StoreWrite> {
        for (_, frame) in entries {
            self.check_size(frame)?;
        }
        let expires_at = Instant::now() + ttl.as_duration();
        for (key, frame) in entries {
            self.put(key, frame.clone(), expires_at);
        }
        Ok(StoreWrite::Written)
    }

    async fn set_if_absent(&self, key: &CacheKey, frame: Bytes, ttl: Ttl) -> Result<bool> {
        self.check_size(&frame)?;
        let now = Instant::now();
        let mut entries = self.lock();
        if entries.get(key).is_some_and(|s| s.expires_at > now) {
            return Ok(false);
        }
        entries.insert(
            key.clone(),
            Stored {
                frame,
                expires_at: now + ttl.as_duration(),
            },
        );
        Ok(true)
    }

    async fn set_unless_newer(
        &self,
        key: &CacheKey,
        frame: Bytes,
        expires_at_ms: u64,
    ) -> Result<bool> {
        self.check_size(&frame)?;
        let Some(expires_at) = instant_of(expires_at_ms) else {
            return Ok(false);
        };
        let Stamp::WrittenAt(incoming) = stamp(&frame) else {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "set_unless_newer needs a frame of this version",
            ));
        };
        let now = Instant::now();
        let mut entries = self.lock();
        let stored = entries.get(key).filter(|s| s.expires_at > now);
        let blocked = match stored.map(|s| stamp(&s.frame)) {
            Some(Stamp::OtherVersion | Stamp::Removed) => true,
            Some(Stamp::WrittenAt(stored)) => stored >= incoming,
            Some(_) | None => false,
        };
        if blocked {
            return Ok(false);
        }
        entries.insert(key.clone(), Stored { frame, expires_at });
        Ok(true)
    }

    async fn restore_many(&self, entries: &[RestoreEntry], rule: RestoreRule) -> Result<Vec<bool>> {
        for entry in entries {
            self.check_size(&entry.frame)?;
        }
        let written_at = |frame: &[u8]| match stamp(frame) {
            Stamp::WrittenAt(ms) => ms,
            _ => 0,
        };
        let covered: Vec<bool> = entries
            .iter()
            .map(|e| self.removed_by_pattern(&e.key, written_at(&e.frame)))
            .collect();
        let now = Instant::now();
        let mut stored = self.lock();
        Ok(entries
            .iter()
            .zip(covered)
            .map(|(entry, covered)| {
                let Some(expires_at) = instant_of(entry.expires_at_ms) else {
                    return false;
                };
                if covered {
                    return false;
                }
                let held = stored
                    .get(&entry.key)
                    .filter(|s| s.expires_at > now)
                    .map(|s| stamp(&s.frame));
                let blocked = match (held, rule) {
                    (None, _) => false,
                    (Some(Stamp::Removed), _) => true,
                    (Some(_), RestoreRule::IfAbsent) => true,
                    (Some(Stamp::OtherVersion), RestoreRule::UnlessNewer) => true,
                    (Some(Stamp::WrittenAt(written)), RestoreRule::UnlessNewer) => {
                        !matches!(stamp(&entry.frame), Stamp::WrittenAt(incoming) if incoming > written)
                    }
                    (Some(_), _) => false,
                };
                if !blocked {
                    stored.insert(
                        entry.key.clone(),
                        Stored {
                            frame: entry.frame.clone(),
                            expires_at,
                        },
                    );
                }
                !blocked
            })
            .collect())
    }

    async fn delete(&self, key: &CacheKey) -> Result<bool> {
        let now = Instant::now();
        let mut entries = self.lock();
        Ok(self.remove_into_tombstone(&mut entries, key, now))
    }

    async fn delete_if_unchanged(&self, key: &CacheKey, expected: Bytes) -> Result<bool> {
        let now = Instant::now();
        let mut entries = self.lock();
        if entries
            .get(key)
            .is_some_and(|s| s.expires_at > now && s.frame == expected)
        {
            entries.remove(key);
            return Ok(true);
        }
        Ok(false)
    }

    async fn delete_unless_newer(&self, key: &CacheKey, issued_at_ms: u64) -> Result<bool> {
        let now = Instant::now();
        let mut entries = self.lock();
        let blocked = match entries.get(key).filter(|s| s.expires_at > now) {
            Some(stored) => match stamp(&stored.frame) {
                Stamp::OtherVersion => true,
                Stamp::WrittenAt(written) => written > issued_at_ms,
                _ => false,
            },
            None => false,
        };
        // As in Redis: an absent key and a tombstone get (or keep) a fresh record too.
        Ok(!blocked && self.remove_into_tombstone(&mut entries, key, now))
    }

    async fn remaining_ttl(&self, key: &CacheKey) -> Result<Option<Duration>> {
        let now = Instant::now();
        Ok(self
            .lock()
            .get(key)
            .filter(|s| s.expires_at > now && !is_tombstone(&s.frame))
            .map(|s| s.expires_at - now))
    }

    async fn walk(
        &self,
        pattern: &KeyPattern,
        cursor: Option<WalkCursor>,
        mode: WalkMode,
    ) -> Result<WalkPage> {
        let start = match &cursor {
            None => Bound::Unbounded,
            Some(cursor) => {
                let after = std::str::from_utf8(cursor.state())
                    .ok()
                    .and_then(|text| CacheKey::new(text).ok())
                    .ok_or_else(|| {
                        Error::new(ErrorKind::InvalidInput, "not a cursor of this store")
                    })?;
                Bound::Excluded(after)
            }
        };
        let now = Instant::now();
        let entries = self.lock();
        let mut page = Vec::new();
        let mut last = None;
        for (key, stored) in entries.range((start, Bound::Unbounded)) {
            if page.len() >= PAGE_SIZE {
                break;
            }
            last = Some(key.clone());
            if stored.expires_at <= now
                || is_tombstone(&stored.frame)
                || !pattern.matches(key.as_str())
            {
                continue;
            }
            let (frame, ttl) = match mode {
                WalkMode::Frames => (Some(stored.frame.clone()), Some(stored.expires_at - now)),
                _ => (None, None),
            };
            page.push(WalkEntry::new(key.clone(), frame, ttl));
        }
        let more = last.as_ref().is_some_and(|last| {
            entries
                .range((Bound::Excluded(last.clone()), Bound::Unbounded))
                .next()
                .is_some()
        });
        let next = last
            .filter(|_| more)
            .map(|last| WalkCursor::from_state(last.as_str().as_bytes().to_vec()));
        Ok(WalkPage::new(page, next))
    }

    async fn remove_matching<'a>(
        &'a self,
        pattern: &'a KeyPattern,
        removed: RemovedSink<'a>,
    ) -> Result<u64> {
        self.record_pattern(pattern);
        let mut cursor = None;
        let mut count = 0;
        loop {
            let page = FrameStore::walk(self, pattern, cursor, WalkMode::Keys).await?;
            for entry in &page.entries {
                let now = Instant::now();
                if self.remove_into_tombstone(&mut self.lock(), &entry.key, now) {
                    removed(&entry.key);
                    count += 1;
                }
            }
            match page.next {
                Some(next) => cursor = Some(next),
                None => return Ok(count),
            }
        }
    }

    async fn health(&self) -> HealthReport {
        HealthReport::new(L2Health::Connected {
            latency: Duration::ZERO,
        })
    }

    async fn server_memory(&self) -> Result<Option<RedisMemory>> {
        Ok(None)
    }

    async fn approximate_len(&self) -> Result<Option<u64>> {
        Ok(u64::try_from(self.len()).ok())
    }

    fn stats(&self) -> StoreStats {
        StoreStats::default()
    }

    async fn shutdown(&self, _limit: Duration) -> ShutdownReport {
        ShutdownReport::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_removal_is_remembered_for_the_horizon_and_no_longer() {
        let store = MemoryFrameStore::new("h").with_removal_horizon(Duration::from_millis(30));
        let key = CacheKey::new("k").unwrap();
        let ttl = Ttl::from_secs(60).unwrap();
        store
            .set(&key, Bytes::from_static(b"v"), ttl)
            .await
            .unwrap();
        assert!(store.delete(&key).await.unwrap());
        assert!(
            !store
                .set_if_absent(&key, Bytes::from_static(b"nx"), ttl)
                .await
                .unwrap()
        );
        // The horizon itself has to pass.
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(
            store
                .set_if_absent(&key, Bytes::from_static(b"nx"), ttl)
                .await
                .unwrap()
        );
    }
}
