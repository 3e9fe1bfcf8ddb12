//! What stored bytes say without decoding them: their [`Stamp`] (when a frame was written, for
//! conditional writes), and removal records (tombstones): what a shared store keeps under a
//! removed key for the replay horizon, so that a write replayed after a partition never lands over a removal made meanwhile.
//!
//! A tombstone is `AIC`, version byte `FE`, the remover's clock (ms since the epoch, for
//! diagnostics only: no rule compares it) and a zero byte: 13 bytes, as long as a frame's head,
//! so that aicache 0.1's replay script sees an unknown frame version and leaves it alone. It is not a frame: readers treat it as absent, walks
//! skip it, conditional writes (replay, restore, moves) refuse to land over it, and a plain write
//! replaces it. aicache 0.1 sees an unknown frame version: a miss it leaves in place.

use bytes::Bytes;

use super::{FRAME_VERSION, FRAME_VERSION_1, MAGIC};

/// The version byte that marks a tombstone.
pub const TOMBSTONE_VERSION: u8 = 0xFE;

/// The tombstone of a removal made at `removed_at_ms`.
///
/// ```
/// use cache_core::frame::{is_tombstone, tombstone};
///
/// assert!(is_tombstone(&tombstone(1_700_000_000_000)));
/// assert_eq!(tombstone(0).len(), 13);
/// assert!(!is_tombstone(b"AIC\x01"));
/// ```
pub fn tombstone(removed_at_ms: u64) -> Bytes {
    let mut out = Vec::with_capacity(13);
    out.extend_from_slice(&MAGIC);
    out.push(TOMBSTONE_VERSION);
    out.extend_from_slice(&removed_at_ms.to_be_bytes());
    out.push(0);
    Bytes::from(out)
}

/// Whether `stored` is a tombstone.
pub fn is_tombstone(stored: &[u8]) -> bool {
    stored.len() >= 4 && stored[..3] == MAGIC && stored[3] == TOMBSTONE_VERSION
}

/// What the header of stored bytes says about when they were written, read without decoding
/// (conditional writes compare it: the replay and restore rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Stamp {
    /// The bytes are not an aicache frame (foreign or garbage).
    NotAFrame,
    /// A frame of another version: a newer writer's, left alone.
    OtherVersion,
    /// A frame of this version written at this `cached_at` (ms since the Unix epoch).
    WrittenAt(u64),
    /// A [tombstone](TOMBSTONE_VERSION): the key was removed; nothing replayed or
    /// restored lands over it.
    Removed,
}

/// Reads the [`Stamp`] of stored bytes.
///
/// ```
/// use cache_core::frame::{Codec, FrameCodec, FrameMeta, Stamp, stamp};
///
/// let bytes = FrameCodec::new().encode("k", &FrameMeta::new(5, 9), Codec::Raw, b"v")?.bytes;
/// assert_eq!(stamp(&bytes), Stamp::WrittenAt(5));
/// assert_eq!(stamp(b"hello"), Stamp::NotAFrame);
/// # Ok::<(), cache_core::Error>(())
/// ```
pub fn stamp(stored: &[u8]) -> Stamp {
    if is_tombstone(stored) {
        return Stamp::Removed;
    }
    if stored.len() < 13 || stored[..3] != MAGIC {
        return Stamp::NotAFrame;
    }
    if !(FRAME_VERSION_1..=FRAME_VERSION).contains(&stored[3]) {
        return Stamp::OtherVersion;
    }
    let mut cached_at = [0u8; 8];
    cached_at.copy_from_slice(&stored[5..13]);
    Stamp::WrittenAt(u64::from_be_bytes(cached_at))
}
