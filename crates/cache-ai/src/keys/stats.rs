//! Key-generation statistics: exact counts per text tier, sampled timings.
//!
//! Every key bumps its thread's share of the counters (one cache line that no other core
//! writes, so keys built on different cores never contend), and one key in
//! [`TIME_ONE_KEY_IN`] of each tier of each share is timed: two clock reads per key would cost
//! about as much as hashing a short text does.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cache_core::{Striped, TextTier};

use crate::tiers::tier_index;

/// Of the keys of each tier, one in this many is timed (the first one included).
pub const TIME_ONE_KEY_IN: u64 = 16;

/// Counters of key generation, for monitoring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct KeyGenerationStats {
    /// Keys generated (exact).
    pub keys_generated: u64,
    /// Keys that were timed: one in [`TIME_ONE_KEY_IN`] of each tier, the first included.
    pub timed_keys: u64,
    /// Time spent generating the timed keys, in nanoseconds.
    pub total_nanos: u64,
    /// Keys per text tier: small, medium, large, xlarge (exact).
    pub by_tier: [u64; 4],
    /// Total characters hashed (counted up to the xlarge threshold per text; exact).
    pub total_text_chars: u64,
    /// The longest text seen, in bytes.
    pub max_text_bytes: u64,
}

impl KeyGenerationStats {
    /// The mean generation time of the timed keys in nanoseconds, or 0 before the first key.
    pub fn average_nanos(&self) -> u64 {
        self.total_nanos.checked_div(self.timed_keys).unwrap_or(0)
    }
}

/// One thread's share: 64 bytes, one cache line.
#[derive(Default)]
struct Share {
    by_tier: [AtomicU64; 4],
    chars: AtomicU64,
    max_bytes: AtomicU64,
    timed: AtomicU64,
    nanos: AtomicU64,
}

/// The generator's counters.
#[derive(Default)]
pub(super) struct KeyStats {
    shares: Striped<Share>,
}

impl KeyStats {
    /// Counts a key of `tier` over a text of `chars` characters and `bytes` bytes; true when this
    /// key is to be timed.
    pub(super) fn count(&self, tier: TextTier, chars: usize, bytes: usize) -> bool {
        let share = self.shares.local();
        let seen = share.by_tier[tier_index(tier)].fetch_add(1, Ordering::Relaxed);
        share
            .chars
            .fetch_add(u64::try_from(chars).unwrap_or(u64::MAX), Ordering::Relaxed);
        let bytes = u64::try_from(bytes).unwrap_or(u64::MAX);
        // A text longer than every earlier one is rare: a plain load settles most keys.
        if share.max_bytes.load(Ordering::Relaxed) < bytes {
            share.max_bytes.fetch_max(bytes, Ordering::Relaxed);
        }
        seen.is_multiple_of(TIME_ONE_KEY_IN)
    }

    /// Adds the time a timed key took.
    pub(super) fn record_time(&self, elapsed: Duration) {
        let share = self.shares.local();
        share.timed.fetch_add(1, Ordering::Relaxed);
        share.nanos.fetch_add(
            u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// The sums over every share.
    pub(super) fn snapshot(&self) -> KeyGenerationStats {
        let mut stats = KeyGenerationStats::default();
        for share in self.shares.iter() {
            for (total, count) in stats.by_tier.iter_mut().zip(&share.by_tier) {
                *total = total.wrapping_add(count.load(Ordering::Relaxed));
            }
            let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
            stats.total_text_chars = stats.total_text_chars.wrapping_add(load(&share.chars));
            stats.timed_keys = stats.timed_keys.wrapping_add(load(&share.timed));
            stats.total_nanos = stats.total_nanos.wrapping_add(load(&share.nanos));
            stats.max_text_bytes = stats.max_text_bytes.max(load(&share.max_bytes));
        }
        stats.keys_generated = stats.by_tier.iter().fold(0, |sum, n| sum.wrapping_add(*n));
        stats
    }

    /// Zeroes every counter.
    pub(super) fn reset(&self) {
        for share in self.shares.iter() {
            for counter in share.by_tier.iter().chain([
                &share.chars,
                &share.max_bytes,
                &share.timed,
                &share.nanos,
            ]) {
                counter.store(0, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_exact_and_one_key_in_sixteen_of_each_tier_is_timed() {
        let stats = KeyStats::default();
        let timed_small = (0..40)
            .filter(|_| stats.count(TextTier::Small, 10, 10))
            .count();
        let timed_large = (0..3)
            .filter(|_| stats.count(TextTier::Large, 6_000, 12_000))
            .count();
        // Keys 1, 17 and 33 of the small tier, and the first large key.
        assert_eq!((timed_small, timed_large), (3, 1));
        stats.record_time(Duration::from_nanos(300));
        stats.record_time(Duration::from_nanos(100));
        let snapshot = stats.snapshot();
        assert_eq!(snapshot.keys_generated, 43);
        assert_eq!(snapshot.by_tier, [40, 0, 3, 0]);
        assert_eq!(snapshot.total_text_chars, 40 * 10 + 3 * 6_000);
        assert_eq!(snapshot.max_text_bytes, 12_000);
        assert_eq!((snapshot.timed_keys, snapshot.average_nanos()), (2, 200));
        stats.reset();
        assert_eq!(stats.snapshot(), KeyGenerationStats::default());
    }

    #[test]
    fn keys_counted_on_other_threads_are_summed() {
        let stats = KeyStats::default();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..1_000 {
                        stats.count(TextTier::Medium, 600, 600);
                    }
                });
            }
        });
        let snapshot = stats.snapshot();
        assert_eq!(snapshot.keys_generated, 4_000);
        assert_eq!(snapshot.total_text_chars, 4_000 * 600);
    }
}
