//! Resetting the key generator's statistics.

use super::CacheKeyGenerator;

impl CacheKeyGenerator {
    /// Zeroes the key-generation statistics.
    pub(crate) fn reset_stats(&self) {
        self.stats.reset();
    }
}
