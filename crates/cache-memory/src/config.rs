//! Settings of the memory tier.

use std::time::Duration;

use cache_core::{Ttl, ValidationIssue, ValidationResult};

/// Settings of an [`InMemoryCache`](crate::InMemoryCache).
///
/// ```
/// use cache_memory::MemoryCacheConfig;
///
/// let config = MemoryCacheConfig::default().with_max_entries(1000).with_max_bytes(8 << 20);
/// assert!(config.validate().is_valid());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemoryCacheConfig {
    /// The most entries held at once. Default: 100 (the seed's `memory_cache_size`).
    pub max_entries: usize,
    /// The most bytes held at once: keys, values and 224 bytes per entry for what holding it
    /// costs besides (slot, allocator headers, fragmentation), so that the budget bounds the
    /// process's memory. The keys the cache remembers after evicting them take at most a
    /// sixteenth more. Default: 64 MiB.
    pub max_bytes: u64,
    /// The TTL of entries written without one. Default: 3600 s.
    pub default_ttl: Duration,
    /// How often, at most, a write also sweeps out expired entries. Default: 30 s.
    pub sweep_interval: Duration,
}

impl Default for MemoryCacheConfig {
    fn default() -> Self {
        Self {
            max_entries: 100,
            max_bytes: 64 * 1024 * 1024,
            default_ttl: Duration::from_secs(3600),
            sweep_interval: Duration::from_secs(30),
        }
    }
}

/// The largest entry cap accepted.
pub(crate) const MAX_ENTRIES: usize = 100_000_000;
/// The smallest byte budget accepted.
pub(crate) const MIN_BYTES: u64 = 4096;

impl MemoryCacheConfig {
    /// Sets [`max_entries`](Self::max_entries).
    #[must_use]
    pub fn with_max_entries(mut self, max_entries: usize) -> Self {
        self.max_entries = max_entries;
        self
    }

    /// Sets [`max_bytes`](Self::max_bytes).
    #[must_use]
    pub fn with_max_bytes(mut self, max_bytes: u64) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// Sets [`default_ttl`](Self::default_ttl).
    #[must_use]
    pub fn with_default_ttl(mut self, default_ttl: Duration) -> Self {
        self.default_ttl = default_ttl;
        self
    }

    /// Sets [`sweep_interval`](Self::sweep_interval).
    #[must_use]
    pub fn with_sweep_interval(mut self, sweep_interval: Duration) -> Self {
        self.sweep_interval = sweep_interval;
        self
    }

    /// Checks every field; see [`ValidationResult`].
    pub fn validate(&self) -> ValidationResult {
        let mut result = ValidationResult::new();
        if !(1..=MAX_ENTRIES).contains(&self.max_entries) {
            result.error(ValidationIssue::new(
                "max_entries",
                self.max_entries,
                format!("1..={MAX_ENTRIES}"),
                "set a positive entry cap for the memory tier",
            ));
        }
        if self.max_bytes < MIN_BYTES {
            result.error(ValidationIssue::new(
                "max_bytes",
                self.max_bytes,
                format!(">= {MIN_BYTES}"),
                "give the memory tier a byte budget of at least 4 KiB",
            ));
        }
        if Ttl::new(self.default_ttl).is_err() {
            result.error(ValidationIssue::new(
                "default_ttl",
                format!("{:?}", self.default_ttl),
                "1 ms ..= 10 years",
                "set a positive default TTL",
            ));
        }
        if self.sweep_interval.is_zero() {
            result.error(ValidationIssue::new(
                "sweep_interval",
                "0s",
                "> 0",
                "sweeping on every write would make writes O(entries); use at least 1 s",
            ));
        }
        result
    }
}
