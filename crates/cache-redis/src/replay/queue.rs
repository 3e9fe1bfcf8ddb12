//! The replay queue: what Redis could not take, in order, bounded by items and by bytes, with
//! the indexes that make a push O(log n) and let reads see the removals still pending.
//!
//! Rules (DESIGN §5 and §8):
//! - a newer queued write of a key replaces an older one; a queued delete removes the queued
//!   writes and deletes of its key, and an invalidation those of the keys it matches;
//! - **removals outrank writes**: when the queue is over its item or byte bound, the oldest
//!   *write* is dropped (a write can be recomputed; a removal cannot be redone by anyone else).
//!   When removals alone fill it, they are replaced by one invalidation of the whole namespace as
//!   of the newest of them: coarser, and still safe;
//! - a read of a key that a pending removal covers is a miss until the removal is replayed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use cache_core::{CacheKey, KeyPattern};

/// One operation waiting for Redis.
#[derive(Debug, Clone)]
pub(crate) enum Pending {
    /// A framed value to write.
    Set {
        key: CacheKey,
        frame: Vec<u8>,
        cached_at_ms: u64,
        /// When Redis would have dropped the key (ms since the epoch): the replay's `PXAT`.
        expires_at_ms: u64,
        /// When it was queued (this instance's monotonic clock): past the replay horizon it is
        /// dropped, since the records of removals made meanwhile may be gone.
        queued_at: std::time::Instant,
    },
    /// A delete issued at `at_ms`.
    Delete { key: CacheKey, at_ms: u64 },
    /// A pattern invalidation issued at `at_ms`.
    Invalidate { pattern: KeyPattern, at_ms: u64 },
}

impl Pending {
    fn bytes(&self) -> usize {
        match self {
            Self::Set { key, frame, .. } => key.len() + frame.len(),
            Self::Delete { key, .. } => key.len(),
            Self::Invalidate { pattern, .. } => pattern.as_str().len(),
        }
    }

    fn is_removal(&self) -> bool {
        !matches!(self, Self::Set { .. })
    }

    /// Whether this removal covers `key` (writes cover nothing).
    fn removes(&self, key: &str) -> bool {
        match self {
            Self::Set { .. } => false,
            Self::Delete { key: k, .. } => k.as_str() == key,
            Self::Invalidate { pattern, .. } => pattern.matches(key),
        }
    }
}

/// Counters of the replay queue.
#[derive(Default)]
pub(crate) struct ReplayCounters {
    pub(crate) queued: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) superseded: AtomicU64,
    pub(crate) coarsened: AtomicU64,
    pub(crate) replayed: AtomicU64,
    pub(crate) skipped: AtomicU64,
    pub(crate) failed: AtomicU64,
    /// Writes older than the replay horizon when their turn came (also counted as skipped).
    pub(crate) expired: AtomicU64,
}

#[derive(Default)]
struct Items {
    next_seq: u64,
    /// Every queued item by sequence number: the replay order.
    order: BTreeMap<u64, Pending>,
    /// The sequence numbers of queued writes, oldest first (what an overflow drops).
    writes: BTreeSet<u64>,
    /// Queued write and delete of each key.
    write_of: HashMap<CacheKey, u64>,
    delete_of: HashMap<CacheKey, u64>,
    /// Queued invalidations.
    patterns: BTreeMap<u64, KeyPattern>,
    /// The removal being replayed right now (taken out of `order`): reads still honour it.
    replaying: Option<Pending>,
    bytes: usize,
}

impl Items {
    fn insert(&mut self, seq: u64, item: Pending) {
        match &item {
            Pending::Set { key, .. } => {
                self.writes.insert(seq);
                self.write_of.insert(key.clone(), seq);
            }
            Pending::Delete { key, .. } => {
                self.delete_of.insert(key.clone(), seq);
            }
            Pending::Invalidate { pattern, .. } => {
                self.patterns.insert(seq, pattern.clone());
            }
        }
        self.bytes += item.bytes();
        self.order.insert(seq, item);
    }

    fn remove(&mut self, seq: u64) -> Option<Pending> {
        let item = self.order.remove(&seq)?;
        match &item {
            Pending::Set { key, .. } => {
                self.writes.remove(&seq);
                if self.write_of.get(key) == Some(&seq) {
                    self.write_of.remove(key);
                }
            }
            Pending::Delete { key, .. } => {
                if self.delete_of.get(key) == Some(&seq) {
                    self.delete_of.remove(key);
                }
            }
            Pending::Invalidate { .. } => {
                self.patterns.remove(&seq);
            }
        }
        self.bytes = self.bytes.saturating_sub(item.bytes());
        Some(item)
    }

    /// The queued writes and deletes of the keys `pattern` matches.
    fn covered_by(&self, pattern: &KeyPattern) -> Vec<u64> {
        self.write_of
            .iter()
            .chain(&self.delete_of)
            .filter(|(key, _)| pattern.matches(key.as_str()))
            .map(|(_, seq)| *seq)
            .collect()
    }
}

/// The bounded queue (see the module docs).
pub(crate) struct Queue {
    items: Mutex<Items>,
    capacity: usize,
    max_bytes: usize,
    /// Removals queued or being replayed: reads skip the lookup while it is zero.
    removals: AtomicUsize,
    /// How many items replays have taken: a live removal compares it before and after its Redis
    /// step to learn whether a replayed write may have landed meanwhile.
    taken: AtomicU64,
    pub(crate) counters: ReplayCounters,
}

fn lock(mutex: &Mutex<Items>) -> std::sync::MutexGuard<'_, Items> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Queue {
    /// A queue of at most `capacity` items (0 turns replay off) and `max_bytes` bytes of keys and
    /// frames.
    pub(crate) fn new(capacity: usize, max_bytes: usize) -> Self {
        Self {
            items: Mutex::new(Items::default()),
            capacity,
            max_bytes,
            removals: AtomicUsize::new(0),
            taken: AtomicU64::new(0),
            counters: ReplayCounters::default(),
        }
    }

    pub(crate) fn is_enabled(&self) -> bool {
        self.capacity > 0
    }

    /// Items waiting (the one being replayed not included).
    pub(crate) fn depth(&self) -> usize {
        lock(&self.items).order.len()
    }

    /// Queues `item` under the rules above; false when replay is off.
    pub(crate) fn push(&self, item: Pending) -> bool {
        if !self.is_enabled() {
            return false;
        }
        let mut items = lock(&self.items);
        let superseded: Vec<u64> = match &item {
            Pending::Set { key, .. } => items.write_of.get(key).copied().into_iter().collect(),
            Pending::Delete { key, .. } => items
                .write_of
                .get(key)
                .into_iter()
                .chain(items.delete_of.get(key))
                .copied()
                .collect(),
            Pending::Invalidate { pattern, .. } => {
                let mut seqs = items.covered_by(pattern);
                seqs.extend(
                    items
                        .patterns
                        .iter()
                        .filter(|(_, p)| *p == pattern)
                        .map(|(seq, _)| *seq),
                );
                seqs
            }
        };
        self.drop_items(&mut items, &superseded, &self.counters.superseded);
        let seq = items.next_seq;
        items.next_seq += 1;
        if item.is_removal() {
            self.removals.fetch_add(1, Ordering::AcqRel);
        }
        items.insert(seq, item);
        self.counters.queued.fetch_add(1, Ordering::Relaxed);
        self.enforce_bounds(&mut items);
        true
    }

    /// Drops the oldest writes while the queue is over a bound; when removals alone are over it,
    /// replaces them all with one invalidation of everything as of the newest of them.
    fn enforce_bounds(&self, items: &mut Items) {
        let over =
            |items: &Items| items.order.len() > self.capacity || items.bytes > self.max_bytes;
        while over(items) {
            let Some(oldest_write) = items.writes.first().copied() else {
                break;
            };
            self.drop_items(items, &[oldest_write], &self.counters.dropped);
            tracing::warn!(
                capacity = self.capacity,
                max_bytes = self.max_bytes,
                "replay queue full: dropped its oldest write (removals are kept)"
            );
        }
        if over(items) {
            let newest = items
                .order
                .values()
                .filter_map(|item| match item {
                    Pending::Delete { at_ms, .. } | Pending::Invalidate { at_ms, .. } => {
                        Some(*at_ms)
                    }
                    Pending::Set { .. } => None,
                })
                .max()
                .unwrap_or(0);
            // The whole namespace, but only keys of the shape every removal had (the AI cache's
            // `{operation}:{digest}`): the coarse removal must not reach keys no removal covered.
            let shapes: Vec<Option<usize>> = items
                .order
                .values()
                .filter_map(|item| match item {
                    Pending::Delete { key, .. } => Some(Some(key.as_str().split(':').count())),
                    Pending::Invalidate { pattern, .. } => Some(pattern.segments()),
                    Pending::Set { .. } => None,
                })
                .collect();
            let coarse = match shapes.first() {
                Some(Some(n)) if shapes.iter().all(|shape| *shape == Some(*n)) => {
                    KeyPattern::all().with_segments(*n)
                }
                _ => KeyPattern::all(),
            };
            let all: Vec<u64> = items.order.keys().copied().collect();
            self.drop_items(items, &all, &self.counters.coarsened);
            let seq = items.next_seq;
            items.next_seq += 1;
            self.removals.fetch_add(1, Ordering::AcqRel);
            items.insert(
                seq,
                Pending::Invalidate {
                    pattern: coarse,
                    at_ms: newest,
                },
            );
            tracing::warn!(
                capacity = self.capacity,
                "replay queue full of removals: replaced by one invalidation of the namespace"
            );
        }
    }

    fn drop_items(&self, items: &mut Items, seqs: &[u64], counter: &AtomicU64) {
        for seq in seqs {
            if let Some(item) = items.remove(*seq) {
                if item.is_removal() {
                    self.removals.fetch_sub(1, Ordering::AcqRel);
                }
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Drops the queued writes and deletes of the keys `pattern` matches: a delete or an
    /// invalidation that reached Redis makes them stale.
    pub(crate) fn forget(&self, pattern: &KeyPattern) {
        let mut items = lock(&self.items);
        let covered = items.covered_by(pattern);
        self.drop_items(&mut items, &covered, &self.counters.superseded);
    }

    /// How many items replays have taken so far (see [`Queue::take`]).
    pub(crate) fn taken(&self) -> u64 {
        self.taken.load(Ordering::Acquire)
    }

    /// Whether a removal still waiting for Redis covers `key` (a read of it is then a miss).
    pub(crate) fn removal_covers(&self, key: &CacheKey) -> bool {
        if self.removals.load(Ordering::Acquire) == 0 {
            return false;
        }
        let items = lock(&self.items);
        items.delete_of.contains_key(key)
            || items.patterns.values().any(|p| p.matches(key.as_str()))
            || items
                .replaying
                .as_ref()
                .is_some_and(|item| item.removes(key.as_str()))
    }

    /// Takes the oldest item; unless [`Taken::done`] is called, dropping the guard (a replay
    /// cancelled mid-flight, or one that must wait for Redis) puts it back at the front.
    pub(crate) fn take(&self) -> Option<Taken<'_>> {
        let mut items = lock(&self.items);
        self.taken.fetch_add(1, Ordering::AcqRel);
        let seq = *items.order.keys().next()?;
        let item = items.remove(seq)?;
        if item.is_removal() {
            items.replaying = Some(item.clone());
        }
        Some(Taken {
            queue: self,
            seq,
            item: Some(item),
        })
    }
}

/// An item being replayed (see [`Queue::take`]).
pub(crate) struct Taken<'a> {
    queue: &'a Queue,
    seq: u64,
    item: Option<Pending>,
}

impl Taken<'_> {
    pub(crate) fn item(&self) -> Option<&Pending> {
        self.item.as_ref()
    }

    /// The item was applied, skipped or refused: it leaves the queue for good.
    pub(crate) fn done(mut self) {
        if let Some(item) = self.item.take() {
            let mut items = lock(&self.queue.items);
            if item.is_removal() {
                items.replaying = None;
                self.queue.removals.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }
}

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        if let Some(item) = self.item.take() {
            let mut items = lock(&self.queue.items);
            if item.is_removal() {
                items.replaying = None;
            }
            // A newer write or delete of the key queued meanwhile supersedes it.
            let superseded = match &item {
                Pending::Set { key, .. } => items.write_of.contains_key(key),
                Pending::Delete { key, .. } => items.delete_of.contains_key(key),
                Pending::Invalidate { .. } => false,
            };
            if superseded {
                if item.is_removal() {
                    self.queue.removals.fetch_sub(1, Ordering::AcqRel);
                }
                self.queue
                    .counters
                    .superseded
                    .fetch_add(1, Ordering::Relaxed);
                return;
            }
            // Back at its place: no newer item has a lower sequence number.
            items.insert(self.seq, item);
        }
    }
}
