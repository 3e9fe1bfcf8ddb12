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
