//! [`NearCache`]: an L1 in front of a shared tier, and the one place that keeps them coherent.
//!
//! The protocol (write epochs, promote-if-unchanged, fence-then-fence-again) lives here and nowhere
//! else; the generic byte cache and the AI cache both compose a `NearCache` with a store.
//!
//! Keys are spread over 64 fence shards. Each shard has an epoch and a lock:
//! - a **read** notes its shard's epoch before it asks the shared tier ([`NearCache::begin_read`]),
//!   and promotes what it read only if, under the shard's lock, the epoch is unchanged
//!   ([`NearCache::promote`]);
//! - a **removal** fences before its shared-tier step (under the lock: bump the epoch, drop the L1
//!   copy) and fences again after it, also when its future is dropped half-way. A read that began
//!   before the first fence cannot promote; one that began between the fences either finds the
//!   epoch moved or has its copy dropped by the second fence;
//! - a **write** fences first (so a cancelled write never leaves the old value in L1), runs its
//!   shared-tier step, then, under the lock, bumps the epoch again and drops any copy a racing read
//!   promoted, and fills L1 only if no other write or removal of the shard ran meanwhile (when one
//!   did, L1 keeps no copy: the shared tier's last value is not known here);
//! - a cache **without** a shared tier inserts under the lock ([`NearCache::insert`]): its L1
//!   copy is the only one and must not be lost to a racing fence.
//!
//! Unrelated keys share shards, so a write may occasionally cost another key a promotion (the next
//! read promotes); never the reverse. Without an L1 there is nothing to keep coherent and every
//! method only runs the shared-tier step.

use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use std::collections::HashSet;

use cache_core::{CacheKey, DynFrameStore, ErrorKind, KeyPattern, Result, Ttl};

use crate::cache::{ByteSize, InMemoryCache};
use crate::config::MemoryCacheConfig;

const SHARDS: usize = 64;

/// The seed of the fences' key hash (any fixed value: the shard of a key only has to be the same
/// for every call in the process).
const FENCE_SEED: u64 = 0x6169_6361_6368_6531;

struct Shard {
    epoch: AtomicU64,
    lock: Mutex<()>,
}

struct Fences {
    shards: [Shard; SHARDS],
}

fn shard_of(key: &str) -> usize {
    // foldhash with a fixed seed: a read-through hashes its key twice (before the read and at the
    // promotion), and a byte-at-a-time hash cost about 100 ns per key of 80 bytes.
    let mut hasher = foldhash::fast::FixedState::with_seed(FENCE_SEED).build_hasher();
    hasher.write(key.as_bytes());
    let hash = hasher.finish();
    usize::try_from(hash % SHARDS as u64).unwrap_or(0)
}

impl Fences {
    fn new() -> Self {
        Self {
            shards: std::array::from_fn(|_| Shard {
                epoch: AtomicU64::new(0),
                lock: Mutex::new(()),
            }),
        }
    }

    fn shard(&self, key: &str) -> &Shard {
        &self.shards[shard_of(key)]
    }
}

fn locked(mutex: &Mutex<()>) -> std::sync::MutexGuard<'_, ()> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What a read noted before it asked the shared tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadTicket {
    epoch: u64,
}

/// What became of an L1 fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fill {
    /// L1 holds the value now.
    Filled,
    /// A write or removal of the key's shard began meanwhile: which value the shared tier holds
    /// last is unknown here, so L1 holds none (the next read fetches it).
    Raced,
    /// The value is too large for L1 (counted by the L1); the shared tier still holds it.
    TooLarge,
    /// Nothing to fill: no L1, or the caller gave no value.
    Skipped,
}

/// An answer the shared tier gave a [`NearCache::read`], with what to promote into L1.
#[derive(Debug)]
pub struct Fetched<V, R> {
    /// What the caller gets.
    pub answer: R,
    /// What L1 should hold, and for how long (`None`: do not promote).
    pub promote: Option<(V, Ttl)>,
}

/// Where a [`NearCache::read`] found its answer.
#[derive(Debug)]
pub enum Lookup<V, R> {
    /// In L1.
    L1(V),
    /// In the shared tier, with what became of the promotion.
    L2(R, Fill),
    /// Nowhere.
    Miss,
}

/// An L1 over a shared tier, kept coherent by write epochs (`ARCHITECTURE.md` states the
/// protocol): a read promotes only if no write or removal of its key began after it did (checked
/// under the key's shard lock); a removal fences before its shared-tier step and again after it,
/// also when dropped half-way; a write fences, then fills L1 only if nothing raced it.
pub struct NearCache<V> {
    l1: Option<InMemoryCache<V>>,
    fences: Option<Box<Fences>>,
}

impl<V> fmt::Debug for NearCache<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NearCache")
            .field("l1", &self.l1)
            .finish_non_exhaustive()
    }
}

/// Fences a key's shard again when dropped: the second fence of a removal or an unfinished write.
struct FenceOnDrop<'a, V: Clone + ByteSize + Send + Sync + 'static> {
    near: &'a NearCache<V>,
    key: Option<&'a str>,
}

impl<V: Clone + ByteSize + Send + Sync + 'static> Drop for FenceOnDrop<'_, V> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.near.fence(key);
        }
    }
}

/// Fences every shard and drops the L1 copies `pattern` matches when dropped while armed: the
/// second fence of an invalidation whose future was dropped half-way.
struct FenceAllOnDrop<'a, V: Clone + ByteSize + Send + Sync + 'static> {
    near: &'a NearCache<V>,
    pattern: &'a KeyPattern,
    armed: bool,
}

impl<V: Clone + ByteSize + Send + Sync + 'static> Drop for FenceAllOnDrop<'_, V> {
    fn drop(&mut self) {
        if self.armed {
            self.near.fence_matching(self.pattern);
        }
    }
}

impl<V: Clone + ByteSize + Send + Sync + 'static> NearCache<V> {
    /// A near cache with an L1 of `l1` (`None`: no L1).
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when `l1` does not validate.
    pub fn new(l1: Option<MemoryCacheConfig>) -> Result<Self> {
        let l1 = l1.map(InMemoryCache::new).transpose()?;
        let fences = l1.as_ref().map(|_| Box::new(Fences::new()));
        Ok(Self { l1, fences })
    }

    /// The L1, when on.
    pub fn l1(&self) -> Option<&InMemoryCache<V>> {
        self.l1.as_ref()
    }

    /// Reads L1 alone, counting a hit or a miss.
    pub fn get(&self, key: &str) -> Option<V> {
        self.l1.as_ref()?.fetch(key)
    }

    /// Reads L1 alone with the time the entry has left, without counting.
    pub fn peek(&self, key: &str) -> Option<(V, Duration)> {
        self.l1.as_ref()?.peek(key)
    }

    /// Notes `key`'s epoch before a shared-tier read.
    pub fn begin_read(&self, key: &str) -> ReadTicket {
        let epoch = self
            .fences
            .as_ref()
            .map_or(0, |f| f.shard(key).epoch.load(Ordering::Acquire));
        ReadTicket { epoch }
    }

    /// Promotes what a read found into L1 for `ttl`, unless a write or removal of the key began
    /// after the read did.
    pub fn promote(&self, key: &CacheKey, ticket: ReadTicket, value: V, ttl: Ttl) -> Fill {
        let (Some(l1), Some(fences)) = (&self.l1, &self.fences) else {
            return Fill::Skipped;
        };
        let shard = fences.shard(key.as_str());
        let _guard = locked(&shard.lock);
        if shard.epoch.load(Ordering::Acquire) != ticket.epoch {
            return Fill::Raced;
        }
        insert(l1, key, value, ttl)
    }

    /// Reads `key`: L1, else `fetch` (the shared tier), promoting its answer per
    /// [`promote`](Self::promote).
    ///
    /// # Errors
    /// What `fetch` returns.
    pub async fn read<R, F>(&self, key: &CacheKey, fetch: F) -> Result<Lookup<V, R>>
    where
        F: Future<Output = Result<Option<Fetched<V, R>>>>,
    {
        if let Some(value) = self.get(key.as_str()) {
            return Ok(Lookup::L1(value));
        }
        let ticket = self.begin_read(key.as_str());
        match fetch.await? {
            None => Ok(Lookup::Miss),
            Some(Fetched { answer, promote }) => {
                let fill = match promote {
                    Some((value, ttl)) => self.promote(key, ticket, value, ttl),
                    None => Fill::Skipped,
                };
                Ok(Lookup::L2(answer, fill))
            }
        }
    }

    /// Writes `key`: fences, runs `shared` (the shared-tier write), then fills L1 with what
    /// `fill` picks from its result, unless another write or removal of the key ran meanwhile.
    /// Dropped half-way, the key is fenced again.
    pub async fn write<T, F>(
        &self,
        key: &CacheKey,
        shared: F,
        fill: impl FnOnce(&T) -> Option<(V, Ttl)>,
    ) -> (T, Fill)
    where
        F: Future<Output = T>,
    {
        let Some(fences) = &self.fences else {
            return (shared.await, Fill::Skipped);
        };
        let name = key.as_str();
        let epoch = self.fence(name);
        let pending = FenceOnDrop {
            near: self,
            key: Some(name),
        };
        let outcome = shared.await;
        std::mem::forget(pending);
        let (filled, _) = self.finish_write(fences, key, epoch, fill(&outcome));
        (outcome, filled)
    }

    /// Writes several keys: fences each, runs `shared` once, then fills L1 key by key under the
    /// same rule as [`write`](Self::write).
    pub async fn write_many<T, F>(
        &self,
        keys: &[CacheKey],
        shared: F,
        fill: impl Fn(&T, usize) -> Option<(V, Ttl)>,
    ) -> (T, Vec<Fill>)
    where
        F: Future<Output = T>,
    {
        let Some(fences) = &self.fences else {
            return (shared.await, vec![Fill::Skipped; keys.len()]);
        };
        for key in keys {
            self.fence(key.as_str());
        }
        // Read the epochs after every fence: keys of one batch may share a shard, and a key's
        // own fence is not its shard's last.
        let epochs: Vec<u64> = keys
            .iter()
            .map(|key| fences.shard(key.as_str()).epoch.load(Ordering::Acquire))
            .collect();
        let pending: Vec<FenceOnDrop<'_, V>> = keys
            .iter()
            .map(|key| FenceOnDrop {
                near: self,
                key: Some(key.as_str()),
            })
            .collect();
        let outcome = shared.await;
        // The shared-tier step finished: the fills below take over from the guards.
        pending.into_iter().for_each(std::mem::forget);
        // A key's own finish moves its shard's epoch: later keys of the batch in that shard expect
        // it. A raced shard stays raced for the rest of the batch.
        let mut expected: Vec<(usize, u64)> = Vec::new();
        let mut fills = Vec::with_capacity(keys.len());
        for (index, (key, epoch)) in keys.iter().zip(epochs).enumerate() {
            let shard = shard_of(key.as_str());
            let slot = expected.iter().position(|(s, _)| *s == shard);
            let at = slot.map_or(epoch, |i| expected[i].1);
            let (filled, next) = self.finish_write(fences, key, at, fill(&outcome, index));
            let next = next.unwrap_or(at);
            match slot {
                Some(i) => expected[i].1 = next,
                None => expected.push((shard, next)),
            }
            fills.push(filled);
        }
        (outcome, fills)
    }

    /// Stores `value` as the only copy (a cache without a shared tier): bumps the key's epoch and
    /// inserts under the shard's lock, so no concurrent fence can make the write vanish.
    pub fn insert(&self, key: &CacheKey, value: V, ttl: Ttl) -> Fill {
        let (Some(l1), Some(fences)) = (&self.l1, &self.fences) else {
            return Fill::Skipped;
        };
        let shard = fences.shard(key.as_str());
        let _guard = locked(&shard.lock);
        shard.epoch.fetch_add(1, Ordering::AcqRel);
        insert(l1, key, value, ttl)
    }

    /// Removes `key`: fences, runs `shared` (the shared-tier removal), fences again (also when
    /// dropped half-way). Returns whether L1 held a live copy, and `shared`'s result.
    pub async fn remove<T, F>(&self, key: &CacheKey, shared: F) -> (bool, T)
    where
        F: Future<Output = T>,
    {
        let name = key.as_str();
        let in_l1 = self.l1.as_ref().is_some_and(|l1| l1.contains(name));
        self.fence(name);
        let _again = FenceOnDrop {
            near: self,
            key: Some(name),
        };
        (in_l1, shared.await)
    }

    /// Removes the keys `pattern` matches: fences every shard and drops the matching L1 copies,
    /// runs `walk` (the shared-tier removal), then fences and drops again (also when dropped
    /// half-way). Returns the L1 keys removed (each once) and `walk`'s result.
    pub async fn invalidate<T, F>(&self, pattern: &KeyPattern, walk: F) -> (Vec<CacheKey>, T)
    where
        F: Future<Output = T>,
    {
        let mut removed = self.fence_matching(pattern);
        let mut again = FenceAllOnDrop {
            near: self,
            pattern,
            armed: true,
        };
        let outcome = walk.await;
        again.armed = false;
        removed.extend(self.fence_matching(pattern));
        removed.sort_unstable_by(|a, b| a.as_str().cmp(b.as_str()));
        removed.dedup();
        (removed, outcome)
    }

    /// [`invalidate`](Self::invalidate) around each store's pattern removal, one after the other
    /// (none: L1 alone); returns how many entries were removed, a key in L1 and a store counting
    /// once. Every store is asked even when one fails; the first error is returned.
    ///
    /// # Errors
    /// What the first failing store's removal returns.
    pub async fn invalidate_through(
        &self,
        pattern: &KeyPattern,
        stores: &[&dyn DynFrameStore],
    ) -> Result<u64> {
        let mut in_l1: HashSet<CacheKey> = self
            .l1
            .as_ref()
            .map(|l1| l1.keys_matching(pattern).into_iter().collect())
            .unwrap_or_default();
        let listed = in_l1.clone();
        let (l1_removed, walked) = self
            .invalidate(pattern, async {
                let mut seen = |key: &CacheKey| {
                    in_l1.remove(key);
                };
                let (mut removed, mut failure) = (0u64, None);
                for store in stores {
                    match store.remove_matching(pattern, &mut seen).await {
                        Ok(n) => removed += n,
                        Err(e) => {
                            failure.get_or_insert(e);
                        }
                    }
                }
                failure.map_or(Ok(removed), Err)
            })
            .await;
        let from_stores = walked?;
        // L1 copies no store held: listed before the walk, removed by a fence, never reported.
        let l1_only = l1_removed
            .iter()
            .filter(|key| listed.contains(*key) && in_l1.contains(*key))
            .count();
        Ok(from_stores + u64::try_from(l1_only).unwrap_or(u64::MAX))
    }

    /// Bumps `key`'s epoch and drops its L1 copy, under the shard's lock; returns the new epoch.
    fn fence(&self, key: &str) -> u64 {
        let (Some(l1), Some(fences)) = (&self.l1, &self.fences) else {
            return 0;
        };
        let shard = fences.shard(key);
        let _guard = locked(&shard.lock);
        let epoch = shard.epoch.fetch_add(1, Ordering::AcqRel) + 1;
        l1.remove(key);
        epoch
    }

    /// Bumps every epoch (each under its shard's lock), then drops the L1 copies `pattern` matches.
    fn fence_matching(&self, pattern: &KeyPattern) -> Vec<CacheKey> {
        let (Some(l1), Some(fences)) = (&self.l1, &self.fences) else {
            return Vec::new();
        };
        for shard in &fences.shards {
            let _guard = locked(&shard.lock);
            shard.epoch.fetch_add(1, Ordering::AcqRel);
        }
        l1.remove_matching(pattern)
    }

    /// Ends a write begun at `epoch`; returns what became of the fill and, unless it raced, the
    /// shard's epoch after it.
    fn finish_write(
        &self,
        fences: &Fences,
        key: &CacheKey,
        epoch: u64,
        fill: Option<(V, Ttl)>,
    ) -> (Fill, Option<u64>) {
        let Some(l1) = &self.l1 else {
            return (Fill::Skipped, None);
        };
        let shard = fences.shard(key.as_str());
        let _guard = locked(&shard.lock);
        let raced = shard.epoch.load(Ordering::Acquire) != epoch;
        // Reads that began after this write's first fence may have read the old value: moving the
        // epoch on stops their promotion; dropping the copy removes one that already landed. This
        // holds when the write raced too: another write or removal of the shard ran meanwhile, so
        // which value the shared tier holds last is unknown here, and L1 must hold none.
        let after = shard.epoch.fetch_add(1, Ordering::AcqRel) + 1;
        l1.remove(key.as_str());
        if raced {
            return (Fill::Raced, None);
        }
        let filled = match fill {
            Some((value, ttl)) => insert(l1, key, value, ttl),
            None => Fill::Skipped,
        };
        (filled, Some(after))
    }
}

fn insert<V: Clone + ByteSize + Send + Sync + 'static>(
    l1: &InMemoryCache<V>,
    key: &CacheKey,
    value: V,
    ttl: Ttl,
) -> Fill {
    match l1.insert(key.clone(), value, ttl) {
        Ok(()) => Fill::Filled,
        Err(e) if e.kind() == ErrorKind::CapacityExceeded => Fill::TooLarge,
        Err(_) => Fill::Skipped,
    }
}

#[cfg(test)]
mod tests;
