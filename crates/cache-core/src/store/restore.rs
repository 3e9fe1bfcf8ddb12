//! What [`FrameStore::restore_many`](super::FrameStore::restore_many) writes: entries with their
//! own expiry, by a rule for keys that already hold something.

use bytes::Bytes;

use crate::key::CacheKey;

/// How a restore treats a key that already holds a value. Under every rule, a key whose removal
/// the store still remembers is left alone (see [`FrameStore::restore_many`]).
///
/// [`FrameStore::restore_many`]: super::FrameStore::restore_many
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum RestoreRule {
    /// Write only where the key holds nothing.
    #[default]
    IfAbsent,
    /// Write unless the key holds a frame written at or after the incoming frame's `cached_at`
    /// (or a frame of a version this build does not know), as
    /// [`set_unless_newer`](super::FrameStore::set_unless_newer) does.
    UnlessNewer,
    /// Replace whatever the key holds.
    Replace,
}

/// One entry to restore: a frame as stored, under its logical key, until an absolute time.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RestoreEntry {
    /// The logical key.
    pub key: CacheKey,
    /// The frame, byte for byte as it was stored.
    pub frame: Bytes,
    /// When the entry expires, in ms since the Unix epoch.
    pub expires_at_ms: u64,
}

impl RestoreEntry {
    /// An entry of `frame` under `key` until `expires_at_ms`.
    pub fn new(key: CacheKey, frame: Bytes, expires_at_ms: u64) -> Self {
        Self {
            key,
            frame,
            expires_at_ms,
        }
    }
}

/// How far apart a store's clock (its removal records) and a writer's clock (a frame's
/// `cached_at`) may be and still be told apart: within it, a removal covers the entry.
pub const REMOVAL_CLOCK_MARGIN_MS: u64 = 5_000;

/// Whether a removal made at `removed_at_ms` (by the store's clock) must block an entry written
/// at `written_at_ms` (its `cached_at`, by its writer's clock): the entry is not clearly newer
/// than the removal. Leans towards the removal by [`REMOVAL_CLOCK_MARGIN_MS`], so a writer's
/// clock running ahead by less than that changes nothing.
///
/// ```
/// use cache_core::{REMOVAL_CLOCK_MARGIN_MS, removal_blocks};
///
/// assert!(removal_blocks(1_000_000, 990_000), "written before the removal");
/// assert!(removal_blocks(1_000_000, 1_000_000 + REMOVAL_CLOCK_MARGIN_MS));
/// assert!(!removal_blocks(1_000_000, 1_000_001 + REMOVAL_CLOCK_MARGIN_MS));
/// ```
pub const fn removal_blocks(removed_at_ms: u64, written_at_ms: u64) -> bool {
    removed_at_ms.saturating_add(REMOVAL_CLOCK_MARGIN_MS) >= written_at_ms
}
