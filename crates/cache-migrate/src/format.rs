//! The backup file format (`docs/backup-format.md`): a header, checksummed chunks of
//! length-prefixed entries, and a trailer with the totals. Pure byte work, no I/O: the backup and
//! restore modules move these bytes through their writers and readers.
//!
//! ```text
//! file    = header chunk* trailer
//! header  = "AICBAK" version:u8 len:u32 json[len] xxh3:u64          (xxh3 of every byte before it)
//! chunk   = 'C' index:u32 compression:u8 entries:u32 raw_len:u32 stored_len:u32 stored[stored_len]
//!           xxh3:u64                                               (xxh3 of every chunk byte before it)
//! trailer = 'T' len:u32 json[len] xxh3:u64
//! entry   = key_len:u16 key[key_len] expires_at_ms:u64 frame_len:u32 frame[frame_len]
//! ```
//! Integers are big-endian. `stored` is the concatenated entries, compressed as `compression`
//! says (0 none, 1 LZ4 block, 2 zstd frame).

use bytes::Bytes;
use cache_core::frame::MAX_TIMESTAMP_MS;
use cache_core::{CacheKey, Error, ErrorKind, RestoreEntry, Result};
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

/// The file's first bytes.
pub const MAGIC: &[u8; 6] = b"AICBAK";
/// The format version this build writes and reads.
pub const FORMAT_VERSION: u8 = 1;
/// The fixed part of a chunk before its stored bytes: tag, index, compression, entries, raw and
/// stored lengths.
pub(crate) const CHUNK_HEAD_LEN: usize = 1 + 4 + 1 + 4 + 4 + 4;
/// The largest header or trailer document accepted.
pub(crate) const MAX_DOCUMENT_LEN: usize = 64 * 1024;
/// The largest chunk accepted, before or after compression: a chunk holds whole entries, so one
/// entry of the largest frame a store accepts (`max_value_size` is at most 512 MiB, plus the
/// frame header) must fit. A reader allocates as bytes arrive, never what a head declares.
pub const MAX_CHUNK_LEN: usize = 520 * 1024 * 1024;
/// The most entries a chunk holds (a writer seals a chunk when it has this many), which bounds
/// what a reader allocates for a chunk of tiny entries.
pub const MAX_CHUNK_ENTRIES: u32 = 65_536;
pub(crate) const CHUNK_TAG: u8 = b'C';
pub(crate) const TRAILER_TAG: u8 = b'T';

/// How chunks are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ChunkCompression {
    /// Stored as they are.
    None,
    /// LZ4 blocks: the fastest, for frames that are mostly compressed or encrypted already.
    Lz4,
    /// zstd at a level (1..=19 is sensible; 3 is zstd's own default).
    Zstd {
        /// The compression level.
        level: i32,
    },
}

impl Default for ChunkCompression {
    /// zstd at level 3.
    fn default() -> Self {
        Self::Zstd { level: 3 }
    }
}

impl ChunkCompression {
    fn id(self) -> u8 {
        match self {
            Self::None => 0,
            Self::Lz4 => 1,
            Self::Zstd { .. } => 2,
        }
    }
}

/// What the header says about a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct BackupHeader {
    /// The format version ([`FORMAT_VERSION`]).
    pub format_version: u8,
    /// When the backup started, in ms since the Unix epoch.
    pub created_at_ms: u64,
    /// The kind of store it was taken from (`"redis"`, `"memory"`, …).
    pub source_kind: String,
    /// The namespace every key lived under (the full key is `{namespace}:{key}`).
    pub namespace: String,
    /// The glob over logical keys the backup was filtered by.
    pub filter: String,
    /// How many `:`-separated segments a key had to have, when the filter said.
    pub filter_segments: Option<usize>,
    /// How chunks are compressed.
    pub compression: ChunkCompression,
    /// The source's own estimate of its size when the backup started (Redis: `DBSIZE`).
    pub estimated_entries: Option<u64>,
    /// What wrote the file.
    pub writer: String,
}

/// What the trailer says: the totals, which a restore checks against what it read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct BackupTrailer {
    /// Entries in the file.
    pub entries: u64,
    /// Chunks in the file.
    pub chunks: u64,
    /// The entries' bytes before compression.
    pub raw_bytes: u64,
    /// The chunks' bytes as stored.
    pub stored_bytes: u64,
    /// When the backup finished, in ms since the Unix epoch.
    pub completed_at_ms: u64,
}

pub(crate) fn corrupted(message: &'static str, chunk: Option<u64>) -> Error {
    let error = Error::new(ErrorKind::Corrupted, message);
    match chunk {
        Some(chunk) => error.with_context("chunk", chunk),
        None => error,
    }
}

fn u32_len(len: usize, what: &'static str) -> Result<u32> {
    u32::try_from(len).map_err(|_| {
        Error::new(
            ErrorKind::CapacityExceeded,
            "too large for the backup format",
        )
        .with_context("field", what)
        .with_context("size", len)
    })
}

fn document<T: Serialize>(tag_or_magic: &[u8], value: &T) -> Result<Vec<u8>> {
    let json = serde_json::to_vec(value).map_err(|e| {
        Error::new(ErrorKind::Serialization, "cannot write a backup document").with_source(e)
    })?;
    let mut out = Vec::with_capacity(tag_or_magic.len() + 4 + json.len() + 8);
    out.extend_from_slice(tag_or_magic);
    out.extend_from_slice(&u32_len(json.len(), "document")?.to_be_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(&xxh3_64(&out).to_be_bytes());
    Ok(out)
}

/// The header's bytes.
pub(crate) fn encode_header(header: &BackupHeader) -> Result<Vec<u8>> {
    let mut lead = MAGIC.to_vec();
    lead.push(FORMAT_VERSION);
    document(&lead, header)
}

/// The trailer's bytes.
pub(crate) fn encode_trailer(trailer: &BackupTrailer) -> Result<Vec<u8>> {
    document(&[TRAILER_TAG], trailer)
}

/// Checks a document read as `lead` + `len` + `json` + `checksum` and parses it.
pub(crate) fn decode_document<T: for<'de> Deserialize<'de>>(
    lead: &[u8],
    json: &[u8],
    checksum: u64,
    what: &'static str,
) -> Result<T> {
    let mut covered = Vec::with_capacity(lead.len() + 4 + json.len());
    covered.extend_from_slice(lead);
    covered.extend_from_slice(&u32_len(json.len(), what)?.to_be_bytes());
    covered.extend_from_slice(json);
    if xxh3_64(&covered) != checksum {
        return Err(Error::new(ErrorKind::Corrupted, "checksum mismatch").with_context("in", what));
    }
    serde_json::from_slice(json).map_err(|e| {
        Error::new(ErrorKind::Corrupted, "unreadable backup document")
            .with_context("in", what)
            .with_source(e)
    })
}

/// Entries gathered for one chunk.
#[derive(Debug, Default)]
pub(crate) struct ChunkBuilder {
    raw: Vec<u8>,
    entries: u32,
}

impl ChunkBuilder {
    /// Appends an entry.
    pub(crate) fn push(&mut self, key: &CacheKey, expires_at_ms: u64, frame: &[u8]) -> Result<()> {
        let key_len = u16::try_from(key.len()).map_err(|_| {
            Error::new(
                ErrorKind::CapacityExceeded,
                "key too long for the backup format",
            )
            .with_context("key", key)
        })?;
        self.raw.extend_from_slice(&key_len.to_be_bytes());
        self.raw.extend_from_slice(key.as_str().as_bytes());
        self.raw.extend_from_slice(&expires_at_ms.to_be_bytes());
        self.raw
            .extend_from_slice(&u32_len(frame.len(), "frame")?.to_be_bytes());
        self.raw.extend_from_slice(frame);
        self.entries += 1;
        Ok(())
    }

    /// Whether an entry of `key` and `frame` should start a new chunk: this one would grow past
    /// `target` bytes or [`MAX_CHUNK_ENTRIES`] entries.
    pub(crate) fn is_full_for(&self, key: &CacheKey, frame: &[u8], target: usize) -> bool {
        let entry = 2 + key.len() + 8 + 4 + frame.len();
        !self.is_empty() && (self.raw.len() + entry > target || self.entries >= MAX_CHUNK_ENTRIES)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// Takes the gathered entries, leaving the builder empty.
    pub(crate) fn take(&mut self) -> (Vec<u8>, u32) {
        (
            std::mem::take(&mut self.raw),
            std::mem::take(&mut self.entries),
        )
    }
}

/// A sealed chunk: its bytes in the file and its sizes.
#[derive(Debug)]
pub(crate) struct SealedChunk {
    pub(crate) bytes: Vec<u8>,
    pub(crate) raw_len: usize,
    pub(crate) entries: u32,
}

/// Compresses (when it saves space) and frames `raw` as chunk `index`. CPU work: run it off the
/// runtime.
pub(crate) fn seal_chunk(
    index: u32,
    raw: &[u8],
    entries: u32,
    compression: ChunkCompression,
) -> Result<SealedChunk> {
    if raw.len() > MAX_CHUNK_LEN {
        return Err(Error::new(
            ErrorKind::CapacityExceeded,
            "an entry too large for a backup chunk",
        )
        .with_context("size", raw.len())
        .with_context("allowed", format!("0..={MAX_CHUNK_LEN} bytes")));
    }
    let compressed = match compression {
        ChunkCompression::None => None,
        ChunkCompression::Lz4 => Some(lz4_flex::block::compress(raw)),
        ChunkCompression::Zstd { level } => {
            Some(zstd::bulk::compress(raw, level).map_err(|e| {
                Error::new(ErrorKind::Serialization, "zstd compression failed").with_source(e)
            })?)
        }
    };
    let (id, stored) = match &compressed {
        Some(smaller) if smaller.len() < raw.len() => (compression.id(), smaller.as_slice()),
        _ => (ChunkCompression::None.id(), raw),
    };
    let mut bytes = Vec::with_capacity(CHUNK_HEAD_LEN + stored.len() + 8);
    bytes.push(CHUNK_TAG);
    bytes.extend_from_slice(&index.to_be_bytes());
    bytes.push(id);
    bytes.extend_from_slice(&entries.to_be_bytes());
    bytes.extend_from_slice(&u32_len(raw.len(), "chunk")?.to_be_bytes());
    bytes.extend_from_slice(&u32_len(stored.len(), "chunk")?.to_be_bytes());
    bytes.extend_from_slice(stored);
    bytes.extend_from_slice(&xxh3_64(&bytes).to_be_bytes());
    Ok(SealedChunk {
        bytes,
        raw_len: raw.len(),
        entries,
    })
}

/// The fixed head of a chunk, as read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChunkHead {
    pub(crate) index: u32,
    compression: u8,
    pub(crate) entries: u32,
    pub(crate) raw_len: usize,
    pub(crate) stored_len: usize,
}

/// Reads and bounds the head of chunk `expected` (its tag already read into `head[0]`).
pub(crate) fn chunk_head(head: &[u8; CHUNK_HEAD_LEN], expected: u64) -> Result<ChunkHead> {
    let be32 = |at: usize| u32::from_be_bytes([head[at], head[at + 1], head[at + 2], head[at + 3]]);
    let parsed = ChunkHead {
        index: be32(1),
        compression: head[5],
        entries: be32(6),
        raw_len: usize::try_from(be32(10)).unwrap_or(usize::MAX),
        stored_len: usize::try_from(be32(14)).unwrap_or(usize::MAX),
    };
    let chunk = Some(expected);
    if u64::from(parsed.index) != expected {
        return Err(corrupted(
            "chunk out of sequence (missing, repeated or reordered)",
            chunk,
        )
        .with_context("found", parsed.index));
    }
    if parsed.entries > MAX_CHUNK_ENTRIES {
        return Err(
            corrupted("chunk holds more entries than the format allows", chunk)
                .with_context("entries", parsed.entries)
                .with_context("allowed", MAX_CHUNK_ENTRIES),
        );
    }
    if parsed.raw_len > MAX_CHUNK_LEN || parsed.stored_len > MAX_CHUNK_LEN {
        return Err(corrupted("chunk larger than the format allows", chunk)
            .with_context("size", parsed.raw_len.max(parsed.stored_len)));
    }
    if parsed.compression > 2 {
        return Err(corrupted("unknown chunk compression", chunk)
            .with_context("compression", parsed.compression));
    }
    if parsed.compression == 0 && parsed.stored_len != parsed.raw_len {
        return Err(
            corrupted("an uncompressed chunk whose lengths differ", chunk)
                .with_context("raw_len", parsed.raw_len)
                .with_context("stored_len", parsed.stored_len),
        );
    }
    Ok(parsed)
}

/// Checks chunk `head` + `stored` against `checksum`, decompresses it and parses its entries.
/// CPU work: run it off the runtime.
pub(crate) fn open_chunk(
    head_bytes: &[u8; CHUNK_HEAD_LEN],
    head: ChunkHead,
    stored: &[u8],
    checksum: u64,
) -> Result<Vec<RestoreEntry>> {
    let chunk = Some(u64::from(head.index));
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    hasher.update(head_bytes);
    hasher.update(stored);
    if hasher.digest() != checksum {
        return Err(corrupted("chunk checksum mismatch", chunk));
    }
    let raw: Bytes = match head.compression {
        0 => Bytes::copy_from_slice(stored),
        1 => lz4_flex::block::decompress(stored, head.raw_len)
            .map(Bytes::from)
            .map_err(|e| corrupted("chunk does not decompress", chunk).with_source(e))?,
        _ => zstd::bulk::decompress(stored, head.raw_len)
            .map(Bytes::from)
            .map_err(|e| corrupted("chunk does not decompress", chunk).with_source(e))?,
    };
    if raw.len() != head.raw_len {
        return Err(corrupted("chunk length does not match its head", chunk));
    }
    parse_entries(&raw, head.entries, chunk)
}

fn parse_entries(raw: &Bytes, count: u32, chunk: Option<u64>) -> Result<Vec<RestoreEntry>> {
    let bad = || corrupted("malformed entry", chunk);
    let mut entries = Vec::with_capacity(usize::try_from(count).unwrap_or(0).min(raw.len() / 14));
    let mut at = 0usize;
    let mut take = |n: usize| -> Result<std::ops::Range<usize>> {
        let end = at
            .checked_add(n)
            .filter(|end| *end <= raw.len())
            .ok_or_else(bad)?;
        let range = at..end;
        at = end;
        Ok(range)
    };
    for _ in 0..count {
        let len = take(2)?;
        let key_len = usize::from(u16::from_be_bytes([raw[len.start], raw[len.start + 1]]));
        let key = take(key_len)?;
        let key = std::str::from_utf8(&raw[key])
            .ok()
            .and_then(|k| CacheKey::new(k).ok())
            .ok_or_else(bad)?;
        let expires = take(8)?;
        let mut be = [0u8; 8];
        be.copy_from_slice(&raw[expires]);
        let expires_at_ms = u64::from_be_bytes(be);
        if expires_at_ms > MAX_TIMESTAMP_MS {
            return Err(corrupted("an expiry past the year 9999", chunk)
                .with_context("expires_at_ms", expires_at_ms));
        }
        let len = take(4)?;
        let mut be = [0u8; 4];
        be.copy_from_slice(&raw[len]);
        let frame = take(usize::try_from(u32::from_be_bytes(be)).unwrap_or(usize::MAX))?;
        entries.push(RestoreEntry::new(key, raw.slice(frame), expires_at_ms));
    }
    if take(0)?.start != raw.len() {
        return Err(corrupted("bytes after the chunk's last entry", chunk));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests;
