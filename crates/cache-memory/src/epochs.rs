//! Write epochs: keep stale reads of a shared tier from being promoted into an L1.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

const SHARDS: usize = 64;

/// Per-key-shard counters that writers bump and readers compare.
///
/// A reader notes [`current`](Self::current) before reading the shared tier and promotes what it
/// read into L1 only if the epoch has not moved when it is done. A writer [`bump`](Self::bump)s
/// before it writes the shared tier and again before it fills L1, so a read that raced the write
/// cannot put the old value back; an invalidation bumps every shard. Keys share 64 shards, so an
/// unrelated write may occasionally skip a promotion (the next read promotes), never the reverse.
///
/// ```
/// use cache_memory::WriteEpochs;
///
/// let epochs = WriteEpochs::new();
/// let seen = epochs.current("k");
/// epochs.bump("k");
/// assert_ne!(epochs.current("k"), seen, "the read raced a write: do not promote");
/// ```
pub struct WriteEpochs {
    shards: [AtomicU64; SHARDS],
}

impl fmt::Debug for WriteEpochs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteEpochs").finish_non_exhaustive()
    }
}

impl Default for WriteEpochs {
    fn default() -> Self {
        Self::new()
    }
}

fn shard(key: &str) -> usize {
    // FNV-1a: cheap and good enough to spread keys over 64 shards.
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    usize::try_from(hash % SHARDS as u64).unwrap_or(0)
}

impl WriteEpochs {
    /// All epochs at zero.
    pub fn new() -> Self {
        Self {
            shards: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// The epoch of `key`'s shard now.
    pub fn current(&self, key: &str) -> u64 {
        self.shards[shard(key)].load(Ordering::Acquire)
    }

    /// Moves `key`'s epoch on; returns the new value.
    pub fn bump(&self, key: &str) -> u64 {
        self.shards[shard(key)].fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Moves every epoch on (a pattern invalidation).
    pub fn bump_all(&self) {
        for shard in &self.shards {
            shard.fetch_add(1, Ordering::AcqRel);
        }
    }
}
