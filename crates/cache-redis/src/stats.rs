//! The counters of [`GenericRedisCache`](crate::GenericRedisCache).

use std::sync::atomic::{AtomicU64, Ordering};

use cache_core::frame::Unreadable;
use cache_memory::{L2Stats, MemoryCacheStats};

/// Counters of a [`GenericRedisCache`](crate::GenericRedisCache).
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct RedisCacheStats {
    /// The L1's counters, when L1 is on.
    pub l1: Option<MemoryCacheStats>,
    /// Reads answered by Redis.
    pub l2_hits: u64,
    /// Reads Redis did not answer with a value (absent, expired, undecodable, or failed).
    pub l2_misses: u64,
    /// Redis calls that failed (including timeouts).
    pub l2_errors: u64,
    /// Calls that skipped Redis because it was unavailable.
    pub l2_skipped: u64,
    /// Stored values that were not valid frames; each was deleted.
    pub corrupt_entries: u64,
    /// Stored frames this instance cannot read or will not trust (a newer frame version, a key
    /// or algorithm it lacks, a key that differs, plaintext while it requires encryption); they
    /// are misses and are left in place for the instances that can read them.
    pub unreadable_entries: u64,
    /// `unreadable_entries` by reason, in [`Unreadable::ALL`] order (see [`Self::unreadable`]).
    pub unreadable_by_reason: [u64; Unreadable::COUNT],
    /// Values kept out of L1 because they were too large for it (Redis still holds them).
    pub l1_skipped_too_large: u64,
    /// Writes Redis could not take that L1 holds alone.
    pub writes_l1_only: u64,
    /// Writes neither tier took (Redis unavailable and L1 off).
    pub writes_dropped: u64,
    /// Listener calls that failed or panicked.
    pub listener_failures: u64,
    /// Writes, deletes and invalidations queued for replay because Redis could not take them.
    pub replay_queued: u64,
    /// Queued items dropped because the queue was full.
    pub replay_dropped: u64,
    /// Queued items replaced by a newer write, delete or invalidation of the same key.
    pub replay_superseded: u64,
    /// Queued items applied to Redis.
    pub replayed: u64,
    /// Queued items not applied: their TTL had passed, or Redis held a newer value.
    pub replay_skipped: u64,
    /// Queued items Redis refused (for example a permission error); they are not retried.
    pub replay_failed: u64,
}

impl RedisCacheStats {
    /// How many unreadable frames were met for `reason`.
    pub fn unreadable(&self, reason: Unreadable) -> u64 {
        Unreadable::ALL
            .iter()
            .position(|r| *r == reason)
            .map_or(0, |i| self.unreadable_by_reason[i])
    }

    /// The figures of a cache with `l1`, whose shared tier reported `l2`.
    pub(crate) fn assemble(
        l1: Option<MemoryCacheStats>,
        l2: Option<L2Stats>,
        own: &CacheCounters,
        listener_failures: u64,
    ) -> Self {
        let l2 = l2.unwrap_or_default();
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Self {
            l1,
            l2_hits: l2.hits,
            l2_misses: l2.misses,
            l2_errors: l2.store.errors,
            l2_skipped: l2.store.skipped,
            corrupt_entries: l2.corrupt_entries,
            unreadable_entries: l2.unreadable_entries,
            unreadable_by_reason: l2.unreadable_by_reason,
            l1_skipped_too_large: load(&own.l1_skipped_too_large),
            writes_l1_only: load(&own.writes_l1_only),
            writes_dropped: load(&own.writes_dropped),
            listener_failures,
            replay_queued: l2.store.replay_queued,
            replay_dropped: l2.store.replay_dropped,
            replay_superseded: l2.store.replay_superseded,
            replayed: l2.store.replayed,
            replay_skipped: l2.store.replay_skipped,
            replay_failed: l2.store.replay_failed,
        }
    }
}

/// What the cache itself counts (the shared tier and the store count the rest).
#[derive(Default)]
pub(crate) struct CacheCounters {
    pub(crate) l1_skipped_too_large: AtomicU64,
    pub(crate) writes_l1_only: AtomicU64,
    pub(crate) writes_dropped: AtomicU64,
}

pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}
