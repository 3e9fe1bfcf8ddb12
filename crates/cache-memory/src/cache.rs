//! The memory cache itself.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
// The TSC-backed clock: an L1 hit reads the clock to check expiry, and `std`'s monotonic clock
// costs about a quarter of a hit on virtual machines.
use cache_core::{
    CacheInterface, CacheKey, Capabilities, Error, ErrorKind, KeyPattern, MAX_KEY_LEN,
    MemoryReading, Result, StripedCounter, Ttl,
};
use quanta::Instant;
use quick_cache::sync::Cache;
use quick_cache::{DefaultHashBuilder, Lifecycle, OptionsBuilder, Weighter};

use crate::config::MemoryCacheConfig;

/// Bytes charged per entry on top of its key and value: the map slot and its index, the
/// allocator's headers and rounding of the key and value, and the fragmentation evictions leave.
/// Measured (report row `l1_budget_rss`: 100,000 × 1 KB into 64 MiB): 217 bytes an entry beyond
/// key and value, so that the budget bounds the process's memory, not only the payload.
const ENTRY_OVERHEAD: usize = 224;

/// The most entries a new cache reserves room for. quick_cache starts with an empty table and
/// doubles it as entries arrive, so a cold L1 filling up rehashed every key about twice (a
/// twentieth of a promoting read's CPU). Reserving what the budget can hold avoids that; the cap
/// keeps an L1 configured for millions of entries from taking its whole table before it holds
/// any. quick_cache adds slots for the ghosts it may keep, up to as many again: at most the table
/// takes 1.3 MB, of which its 256 KB of control bytes are written at once, and the slab 11.5 MB of
/// address space that is touched only as entries fill it.
const MAX_RESERVED_ENTRIES: usize = 1 << 16;

/// What quick_cache's memory of an evicted key (a ghost, kept so that a key coming back soon is
/// readmitted) occupies: a slab slot and a table slot, measured at 88 + about 10 bytes. The byte
/// budget does not charge ghosts, so their number is bounded by it instead.
const GHOST_BYTES: u64 = 98;

/// The item count quick_cache is told to expect. It sizes nothing but the ghosts (half of it at
/// most), so it is `max_entries` bounded to keep the ghosts within a sixteenth of the budget: an
/// L1 configured for a million entries over 64 MiB would otherwise remember up to 500,000
/// evicted keys, 49 MB that no budget counted.
fn expected_items(config: &MemoryCacheConfig) -> usize {
    let ghosts = config.max_bytes / 16 / GHOST_BYTES;
    usize::try_from(ghosts.saturating_mul(2))
        .unwrap_or(usize::MAX)
        .clamp(1, config.max_entries.max(1))
}

/// How many entries a new cache reserves room for: as many as its budget can hold (each entry is
/// charged at least [`ENTRY_OVERHEAD`]), at most `max_entries` and [`MAX_RESERVED_ENTRIES`].
fn reserved_entries(config: &MemoryCacheConfig) -> usize {
    let by_budget = config.max_bytes / ENTRY_OVERHEAD as u64;
    usize::try_from(by_budget)
        .unwrap_or(usize::MAX)
        .min(config.max_entries)
        .min(MAX_RESERVED_ENTRIES)
}

/// How many bytes a value occupies, for the byte budget.
pub trait ByteSize {
    /// The value's size in bytes (heap included).
    fn byte_size(&self) -> usize;
}

impl ByteSize for Bytes {
    fn byte_size(&self) -> usize {
        self.len()
    }
}

impl ByteSize for Vec<u8> {
    fn byte_size(&self) -> usize {
        self.len()
    }
}

impl ByteSize for String {
    fn byte_size(&self) -> usize {
        self.len()
    }
}

impl<T: ByteSize + ?Sized> ByteSize for Arc<T> {
    fn byte_size(&self) -> usize {
        (**self).byte_size()
    }
}

#[derive(Clone)]
struct Entry<V> {
    value: V,
    expires_at: Instant,
    size: usize,
    weight: u64,
}

#[derive(Clone, Copy)]
struct EntryWeighter;

impl<V> Weighter<CacheKey, Entry<V>> for EntryWeighter {
    fn weight(&self, _key: &CacheKey, entry: &Entry<V>) -> u64 {
        entry.weight
    }
}

/// Collects the keys that leave the cache during one insert. quick_cache reports a replaced value
/// through the same hook as an evicted one, so `insert` tells them apart by key.
#[derive(Clone, Copy, Default)]
struct CollectEvicted;

impl<V> Lifecycle<CacheKey, Entry<V>> for CollectEvicted {
    type RequestState = Vec<CacheKey>;

    fn on_evict(&self, state: &mut Vec<CacheKey>, key: CacheKey, _entry: Entry<V>) {
        state.push(key);
    }
}

/// A point-in-time view of an [`InMemoryCache`]'s counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[non_exhaustive]
pub struct MemoryCacheStats {
    /// Reads that found a live entry.
    pub hits: u64,
    /// Reads that found nothing or an expired entry.
    pub misses: u64,
    /// Entries pushed out by the byte budget or the entry cap.
    pub evictions: u64,
    /// Entries removed because their TTL had passed (on read or by a sweep).
    pub expirations: u64,
    /// Writes refused because the value was too large to hold.
    pub rejected_too_large: u64,
    /// Live entries.
    pub entries: u64,
    /// Bytes of the live entries' keys and values.
    pub bytes: u64,
    /// The entry cap.
    pub max_entries: u64,
    /// The byte budget.
    pub max_bytes: u64,
}

impl MemoryCacheStats {
    /// hits / (hits + misses), or 0 before the first read.
    pub fn hit_rate(&self) -> f64 {
        let reads = self.hits + self.misses;
        if reads == 0 {
            0.0
        } else {
            // Counters stay far below 2^52, so the conversion is exact.
            #[expect(clippy::cast_precision_loss, reason = "counters are far below 2^52")]
            let rate = self.hits as f64 / reads as f64;
            rate
        }
    }

    /// These figures as a [`MemoryReading`] of the L1 (without Redis figures).
    pub fn memory_reading(&self) -> MemoryReading {
        let mut reading = MemoryReading::default();
        reading.l1_entries = self.entries;
        reading.l1_max_entries = self.max_entries;
        reading.l1_bytes = self.bytes;
        reading.l1_max_bytes = self.max_bytes;
        reading
    }
}

struct Inner<V> {
    cache: Cache<CacheKey, Entry<V>, EntryWeighter, DefaultHashBuilder, CollectEvicted>,
    config: MemoryCacheConfig,
    default_ttl: Ttl,
    min_weight: u64,
    max_value_size: usize,
    /// Read directly rather than through `Instant::now`, which first looks for a thread-local
    /// mock clock and the lazily built global one: a few nanoseconds of every hit.
    clock: quanta::Clock,
    epoch: Instant,
    last_sweep_ms: AtomicU64,
    /// Bumped by every read: striped, so that reads on different cores share no cache line.
    hits: StripedCounter,
    misses: StripedCounter,
    expirations: AtomicU64,
    rejected_too_large: AtomicU64,
    evictions: AtomicU64,
}

/// A concurrent in-process cache with per-entry TTLs, a byte budget and an entry cap.
///
/// Cloning is cheap and shares the same storage.
///
/// # Behavior
/// - A TTL is enforced on every read: an expired entry is a miss and is removed. A periodic sweep
///   (at most every [`MemoryCacheConfig::sweep_interval`], run by a write) reclaims expired entries
///   nobody reads.
/// - Every entry is charged `max(key + value + 64, max_bytes / max_entries)` bytes, so the byte
///   budget and the entry cap both hold. Eviction is S3-FIFO (quick_cache), not LRU.
/// - Overwriting a key replaces its entry in place: it never evicts another key.
/// - A configured capacity of N entries holds N distinct entries (one quick_cache shard).
/// - A value heavier than 95 % of the budget is refused with
///   [`ErrorKind::CapacityExceeded`], never silently dropped.
/// - Any stored value, empty or not, is a hit.
pub struct InMemoryCache<V> {
    inner: Arc<Inner<V>>,
}

impl<V> Clone for InMemoryCache<V> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<V> fmt::Debug for InMemoryCache<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryCache")
            .field("config", &self.inner.config)
            .field("max_value_size", &self.inner.max_value_size)
            .finish_non_exhaustive()
    }
}

impl<V: Clone + ByteSize + Send + Sync + 'static> InMemoryCache<V> {
    /// Builds a cache.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when the configuration does not validate.
    pub fn new(config: MemoryCacheConfig) -> Result<Self> {
        config.validate().into_result()?;
        let default_ttl = Ttl::new(config.default_ttl)?;
        let max_entries = u64::try_from(config.max_entries).unwrap_or(u64::MAX);
        let min_weight = (config.max_bytes / max_entries).max(1);
        let options = OptionsBuilder::new()
            .estimated_items_capacity(expected_items(&config))
            .weight_capacity(config.max_bytes)
            // One shard: quick_cache divides the capacity between its shards, so with several a
            // hash imbalance evicts before `max_entries` distinct keys are held (89 of 100 with
            // the default two shards of 50). Reads only take the shard's read lock.
            .shards(1)
            .build()
            .map_err(|e| {
                Error::new(ErrorKind::Config, "memory tier options rejected").with_source(e)
            })?;
        let cache = Cache::with_options(
            options,
            EntryWeighter,
            DefaultHashBuilder::default(),
            CollectEvicted,
        );
        cache.reserve(reserved_entries(&config));
        // quick_cache admits an item only if it fits the shard's hot section (97 % of the shard by
        // default); stay under it with a margin so that an accepted value is really stored.
        let admissible = cache.shard_capacity() / 100 * 95;
        let max_value_size = usize::try_from(admissible)
            .unwrap_or(usize::MAX)
            .saturating_sub(ENTRY_OVERHEAD + MAX_KEY_LEN);
        let clock = quanta::Clock::new();
        let epoch = clock.now();
        Ok(Self {
            inner: Arc::new(Inner {
                cache,
                config,
                default_ttl,
                min_weight,
                max_value_size,
                clock,
                epoch,
                last_sweep_ms: AtomicU64::new(0),
                hits: StripedCounter::default(),
                misses: StripedCounter::default(),
                expirations: AtomicU64::new(0),
                rejected_too_large: AtomicU64::new(0),
                evictions: AtomicU64::new(0),
            }),
        })
    }

    /// The settings this cache was built with.
    pub fn config(&self) -> &MemoryCacheConfig {
        &self.inner.config
    }

    /// The TTL used when none is given.
    pub fn default_ttl(&self) -> Ttl {
        self.inner.default_ttl
    }

    /// The largest value [`insert`](Self::insert) accepts, in bytes.
    pub fn max_value_size(&self) -> usize {
        self.inner.max_value_size
    }

    /// Reads `key`, counting a hit or a miss.
    pub fn fetch(&self, key: &str) -> Option<V> {
        self.fetch_live(key, |entry, _| entry.value)
    }

    /// Reads `key` with the time it has left, counting a hit or a miss.
    pub fn fetch_with_ttl(&self, key: &str) -> Option<(V, Duration)> {
        self.fetch_live(key, |entry, now| (entry.value, entry.expires_at - now))
    }

    /// The live entry of `key` through `then` (an expired one is removed), counting a hit or a
    /// miss.
    fn fetch_live<R>(&self, key: &str, then: impl FnOnce(Entry<V>, Instant) -> R) -> Option<R> {
        let inner = &self.inner;
        let found = inner.cache.get(key).and_then(|entry| {
            let now = inner.clock.now();
            if entry.expires_at > now {
                Some(then(entry, now))
            } else {
                self.expire(key, now);
                None
            }
        });
        let counter = if found.is_some() {
            &inner.hits
        } else {
            &inner.misses
        };
        counter.add(1);
        found
    }

    /// Reads `key` with the time it has left, without counting a hit or a miss (for a re-check of
    /// a read already counted).
    pub fn peek(&self, key: &str) -> Option<(V, Duration)> {
        let entry = self.inner.cache.peek(key)?;
        let now = self.inner.clock.now();
        (entry.expires_at > now).then(|| (entry.value, entry.expires_at - now))
    }

    /// Stores `value` under `key` for `ttl`, replacing any previous value of `key`.
    ///
    /// # Errors
    /// [`ErrorKind::CapacityExceeded`] when the value is larger than [`max_value_size`](Self::max_value_size).
    pub fn insert(&self, key: CacheKey, value: V, ttl: Ttl) -> Result<()> {
        let size = value.byte_size();
        self.check_size(size)?;
        let charged = u64::try_from(size + key.len() + ENTRY_OVERHEAD).unwrap_or(u64::MAX);
        let now = self.inner.clock.now();
        let entry = Entry {
            value,
            expires_at: now + ttl.as_duration(),
            size: size + key.len(),
            weight: charged.max(self.inner.min_weight),
        };
        let mut left = Vec::new();
        self.inner
            .cache
            .insert_with_lifecycle(key.clone(), entry, &mut left);
        let evicted = left.iter().filter(|gone| **gone != key).count();
        if evicted > 0 {
            self.inner.evictions.fetch_add(
                u64::try_from(evicted).unwrap_or(u64::MAX),
                Ordering::Relaxed,
            );
        }
        self.maybe_sweep(now);
        Ok(())
    }

    /// Whether a value of `size` bytes would be accepted.
    ///
    /// # Errors
    /// [`ErrorKind::CapacityExceeded`] when it would not; the refusal is counted.
    pub fn check_size(&self, size: usize) -> Result<()> {
        if size > self.inner.max_value_size {
            self.inner
                .rejected_too_large
                .fetch_add(1, Ordering::Relaxed);
            return Err(Error::new(
                ErrorKind::CapacityExceeded,
                "value too large for the memory tier",
            )
            .with_context("size", size)
            .with_context(
                "allowed",
                format!("0..={} bytes", self.inner.max_value_size),
            )
            .with_context("fix", "raise max_bytes (95 % of it bounds a value)"));
        }
        Ok(())
    }

    /// Removes `key`; true when it held a live value.
    pub fn remove(&self, key: &str) -> bool {
        let now = self.inner.clock.now();
        self.inner
            .cache
            .remove(key)
            .is_some_and(|(_, entry)| entry.expires_at > now)
    }

    /// Whether `key` holds a live value (not counted as a read).
    pub fn contains(&self, key: &str) -> bool {
        self.ttl_remaining(key).is_some()
    }

    /// The time `key` has left, or `None` when it holds no live value (not counted as a read).
    pub fn ttl_remaining(&self, key: &str) -> Option<Duration> {
        let entry = self.inner.cache.peek(key)?;
        let now = self.inner.clock.now();
        if entry.expires_at > now {
            Some(entry.expires_at - now)
        } else {
            self.expire(key, now);
            None
        }
    }

    /// The live keys matching `pattern`.
    pub fn keys_matching(&self, pattern: &KeyPattern) -> Vec<CacheKey> {
        let now = self.inner.clock.now();
        self.inner
            .cache
            .iter()
            .filter(|(key, entry)| entry.expires_at > now && pattern.matches(key.as_str()))
            .map(|(key, _)| key)
            .collect()
    }

    /// Removes the live keys matching `pattern` and returns them.
    pub fn remove_matching(&self, pattern: &KeyPattern) -> Vec<CacheKey> {
        self.keys_matching(pattern)
            .into_iter()
            .filter(|key| self.remove(key.as_str()))
            .collect()
    }

    /// Removes every entry; returns how many were live.
    pub fn clear_all(&self) -> u64 {
        let now = self.inner.clock.now();
        let live = self
            .inner
            .cache
            .drain()
            .filter(|(_, entry)| entry.expires_at > now)
            .count();
        u64::try_from(live).unwrap_or(u64::MAX)
    }

    /// Removes every expired entry now; returns how many were removed.
    pub fn purge_expired(&self) -> u64 {
        let now = self.inner.clock.now();
        let before = self.inner.cache.len();
        self.inner.cache.retain(|_, entry| entry.expires_at > now);
        let removed = u64::try_from(before.saturating_sub(self.inner.cache.len())).unwrap_or(0);
        self.inner.expirations.fetch_add(removed, Ordering::Relaxed);
        removed
    }

    /// The counters, with entries and bytes counted now (O(entries)).
    pub fn stats(&self) -> MemoryCacheStats {
        let inner = &self.inner;
        let now = self.inner.clock.now();
        let (mut entries, mut bytes) = (0u64, 0u64);
        for (_, entry) in inner.cache.iter() {
            if entry.expires_at > now {
                entries += 1;
                bytes += u64::try_from(entry.size).unwrap_or(u64::MAX);
            }
        }
        MemoryCacheStats {
            hits: inner.hits.get(),
            misses: inner.misses.get(),
            evictions: inner.evictions.load(Ordering::Relaxed),
            expirations: inner.expirations.load(Ordering::Relaxed),
            rejected_too_large: inner.rejected_too_large.load(Ordering::Relaxed),
            entries,
            bytes,
            max_entries: u64::try_from(inner.config.max_entries).unwrap_or(u64::MAX),
            max_bytes: inner.config.max_bytes,
        }
    }

    fn expire(&self, key: &str, now: Instant) {
        if self
            .inner
            .cache
            .remove_if(key, |entry| entry.expires_at <= now)
            .is_some()
        {
            self.inner.expirations.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn maybe_sweep(&self, now: Instant) {
        let inner = &self.inner;
        let now_ms = u64::try_from(now.duration_since(inner.epoch).as_millis()).unwrap_or(u64::MAX);
        let interval_ms =
            u64::try_from(inner.config.sweep_interval.as_millis()).unwrap_or(u64::MAX);
        let last = inner.last_sweep_ms.load(Ordering::Relaxed);
        if now_ms.saturating_sub(last) >= interval_ms
            && inner
                .last_sweep_ms
                .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.purge_expired();
        }
    }
}

/// The memory tier as a backend: values are bytes. Each method does its work when polled.
#[deny(clippy::missing_trait_methods)]
impl CacheInterface for InMemoryCache<Bytes> {
    fn capabilities(&self) -> Capabilities {
        Capabilities::new(self.inner.max_value_size)
    }

    async fn get(&self, key: &CacheKey) -> Result<Option<Bytes>> {
        Ok(self.fetch(key.as_str()))
    }

    async fn set(&self, key: &CacheKey, value: Bytes, ttl: Option<Ttl>) -> Result<()> {
        self.insert(key.clone(), value, ttl.unwrap_or(self.inner.default_ttl))
    }

    async fn delete(&self, key: &CacheKey) -> Result<bool> {
        Ok(self.remove(key.as_str()))
    }

    async fn exists(&self, key: &CacheKey) -> Result<bool> {
        Ok(self.contains(key.as_str()))
    }

    async fn remaining_ttl(&self, key: &CacheKey) -> Result<Option<Duration>> {
        Ok(self.ttl_remaining(key.as_str()))
    }

    async fn clear(&self) -> Result<u64> {
        Ok(self.clear_all())
    }

    async fn scan(&self, pattern: &KeyPattern) -> Result<Vec<CacheKey>> {
        Ok(self.keys_matching(pattern))
    }

    async fn delete_pattern(&self, pattern: &KeyPattern) -> Result<u64> {
        let removed = self.remove_matching(pattern).len();
        Ok(u64::try_from(removed).unwrap_or(u64::MAX))
    }

    async fn get_many(&self, keys: &[CacheKey]) -> Result<Vec<Option<Bytes>>> {
        Ok(keys.iter().map(|key| self.fetch(key.as_str())).collect())
    }

    async fn set_many(&self, entries: &[(CacheKey, Bytes)], ttl: Option<Ttl>) -> Result<()> {
        let ttl = ttl.unwrap_or(self.inner.default_ttl);
        // Refuse the whole batch before writing any of it.
        for (_, value) in entries {
            self.check_size(value.len())?;
        }
        for (key, value) in entries {
            self.insert(key.clone(), value.clone(), ttl)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
