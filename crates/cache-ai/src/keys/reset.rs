//! Resetting the key generator's statistics.

use std::sync::atomic::Ordering;

use super::CacheKeyGenerator;

impl CacheKeyGenerator {
    /// Zeroes the key-generation statistics.
    pub(crate) fn reset_stats(&self) {
        let s = &self.stats;
        for counter in [&s.keys, &s.nanos, &s.chars, &s.max_bytes]
            .into_iter()
            .chain(s.by_tier.iter())
        {
            counter.store(0, Ordering::Relaxed);
        }
    }
}
