//! The versioned value frame: how a value is laid out in a shared store such as Redis.
//!
//! A frame is a fixed header (magic, version, flags, timestamps, original size, text tier), two short
//! strings (operation, AI version), an optional encryption key id, and the payload. The payload is
//! the caller's bytes ([`Codec::Raw`]) or a MessagePack document ([`Codec::MessagePack`]), LZ4 (or
//! zstd) compressed when it is larger than the compression threshold and compression saves space, and
//! optionally encrypted through a [`Cipher`]. `docs/frame.md` in the repository documents the layout
//! byte by byte, with test vectors.
//!
//! Decoding never panics and never allocates more than the configured limit, whatever the stored
//! bytes: a frame that is truncated, foreign, oversized or tampered with is an
//! [`ErrorKind::Corrupted`] error, which caches treat as a miss. A frame of a newer version is
//! [`ErrorKind::Unsupported`]: also a miss, but not garbage.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

use crate::cipher::Cipher;
use crate::error::{Error, ErrorKind, Result};

/// The first three bytes of every frame.
pub const MAGIC: [u8; 3] = *b"AIC";
/// The newest frame version: 2, which this crate writes for encrypted frames (they record their
/// AEAD's algorithm after the key id, so a reader tells "an algorithm I lack" from a corrupt
/// frame without trying to decrypt). Plaintext frames are written as version 1, byte for byte
/// what aicache 0.1 wrote, so both releases read each other's plaintext entries during a rolling
/// upgrade.
pub const FRAME_VERSION: u8 = 2;
/// The first frame version: every plaintext frame, and encrypted frames of aicache 0.1 (without
/// the algorithm byte). Still read.
pub const FRAME_VERSION_1: u8 = 1;
/// The longest operation name or AI version a frame carries, in bytes.
pub const MAX_LABEL_LEN: usize = 255;
/// The latest timestamp a frame may carry: the end of year 9999, in milliseconds since the epoch.
pub const MAX_TIMESTAMP_MS: u64 = 253_402_300_799_999;
/// The zstd level used when none is configured (the seed's default).
pub const DEFAULT_ZSTD_LEVEL: i32 = 6;
/// Stored frames above this size may take more than about 100 µs to decode (decrypt and
/// decompress): async callers decode them off the runtime.
pub const DECODE_OFFLOAD_ABOVE: usize = 128 * 1024;

/// The payload size a stored frame declares (before decompression), without decoding it; `None`
/// for bytes too short to be a frame.
pub fn declared_size(stored: &[u8]) -> Option<usize> {
    let size: [u8; 4] = stored.get(21..25)?.try_into().ok()?;
    usize::try_from(u32::from_be_bytes(size)).ok()
}
/// Default limit on a decoded payload: 64 MiB.
pub const DEFAULT_MAX_PAYLOAD: usize = 64 * 1024 * 1024;

const FIXED_HEADER_LEN: usize = 26;
const CODEC_MASK: u8 = 0b0000_0011;
const COMPRESSION_SHIFT: u8 = 2;
const COMPRESSION_MASK: u8 = 0b0000_1100;
const ENCRYPTED_BIT: u8 = 0b0001_0000;
const RESERVED_BITS: u8 = 0b1110_0000;

/// How the payload is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Codec {
    /// Opaque bytes supplied by the caller.
    Raw,
    /// A MessagePack document written with named fields ([`encode_msgpack`]).
    MessagePack,
}

impl Codec {
    const fn bits(self) -> u8 {
        match self {
            Self::Raw => 0,
            Self::MessagePack => 1,
        }
    }

    fn from_bits(bits: u8) -> Result<Self> {
        match bits {
            0 => Ok(Self::Raw),
            1 => Ok(Self::MessagePack),
            other => Err(corrupted("unknown payload codec").with_context("codec", other)),
        }
    }
}

/// The compression applied to a stored payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Compression {
    /// Stored as is.
    None,
    /// LZ4 block format (lz4_flex), without a size prefix: the frame header carries the size.
    Lz4,
    /// A zstd frame (with its content size), at the codec's level.
    Zstd,
}

impl Compression {
    const fn bits(self) -> u8 {
        match self {
            Self::None => 0,
            Self::Lz4 => 1,
            Self::Zstd => 2,
        }
    }

    fn from_bits(bits: u8) -> Result<Self> {
        match bits {
            0 => Ok(Self::None),
            1 => Ok(Self::Lz4),
            2 => Ok(Self::Zstd),
            other => Err(corrupted("unknown compression").with_context("compression", other)),
        }
    }
}

/// The size class of the text a response was computed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum TextTier {
    /// Shorter than the small threshold.
    Small,
    /// Between the small and medium thresholds.
    Medium,
    /// Between the medium and large thresholds.
    Large,
    /// At or above the large threshold.
    XLarge,
}

impl TextTier {
    /// Every tier, smallest first.
    pub const ALL: [Self; 4] = [Self::Small, Self::Medium, Self::Large, Self::XLarge];
    /// Their names ([`as_str`](Self::as_str)), in the same order.
    pub const NAMES: [&'static str; 4] = [
        Self::Small.as_str(),
        Self::Medium.as_str(),
        Self::Large.as_str(),
        Self::XLarge.as_str(),
    ];

    /// The tier's lowercase name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Small => "small",
            Self::Medium => "medium",
            Self::Large => "large",
            Self::XLarge => "xlarge",
        }
    }

    const fn to_byte(tier: Option<Self>) -> u8 {
        match tier {
            None => 0,
            Some(Self::Small) => 1,
            Some(Self::Medium) => 2,
            Some(Self::Large) => 3,
            Some(Self::XLarge) => 4,
        }
    }

    fn from_byte(byte: u8) -> Result<Option<Self>> {
        Ok(match byte {
            0 => None,
            1 => Some(Self::Small),
            2 => Some(Self::Medium),
            3 => Some(Self::Large),
            4 => Some(Self::XLarge),
            other => return Err(corrupted("unknown text tier").with_context("tier", other)),
        })
    }
}

impl fmt::Display for TextTier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a frame records about its entry besides the payload.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct FrameMeta {
    /// When the entry was written, in milliseconds since the Unix epoch.
    pub cached_at_ms: u64,
    /// When the entry stops being fresh, in milliseconds since the Unix epoch.
    pub expires_at_ms: u64,
    /// The AI operation that produced the value, if any.
    pub operation: Option<Arc<str>>,
    /// The size class of the input text, if any.
    pub text_tier: Option<TextTier>,
    /// The AI layer's version that wrote the value, if any.
    pub ai_version: Option<Arc<str>>,
}

impl FrameMeta {
    /// Metadata for an entry written at `cached_at_ms` that stays fresh until `expires_at_ms`.
    pub fn new(cached_at_ms: u64, expires_at_ms: u64) -> Self {
        Self {
            cached_at_ms,
            expires_at_ms,
            ..Self::default()
        }
    }

    /// Sets the operation.
    #[must_use]
    pub fn with_operation(mut self, operation: impl Into<Arc<str>>) -> Self {
        self.operation = Some(operation.into());
        self
    }

    /// Sets the text tier.
    #[must_use]
    pub fn with_text_tier(mut self, tier: TextTier) -> Self {
        self.text_tier = Some(tier);
        self
    }

    /// Sets the AI version.
    #[must_use]
    pub fn with_ai_version(mut self, version: impl Into<Arc<str>>) -> Self {
        self.ai_version = Some(version.into());
        self
    }

    /// Milliseconds of freshness left at `now_ms`; zero once expired.
    pub fn remaining_ms(&self, now_ms: u64) -> u64 {
        self.expires_at_ms.saturating_sub(now_ms)
    }
}

/// A decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Frame {
    /// The entry's metadata.
    pub meta: FrameMeta,
    /// How `payload` is encoded.
    pub codec: Codec,
    /// The payload after decryption and decompression.
    pub payload: Bytes,
}

/// The result of encoding: the bytes to store and what compression did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EncodedFrame {
    /// The frame, ready to store.
    pub bytes: Vec<u8>,
    /// The compression actually applied (compression is skipped when it does not save space).
    pub compression: Compression,
    /// The payload's size before compression.
    pub original_size: usize,
}

/// Encodes and decodes frames with one set of settings.
///
/// ```
/// use cache_core::frame::{Codec, FrameCodec, FrameMeta};
///
/// let codec = FrameCodec::new().with_compression_threshold(16);
/// let meta = FrameMeta::new(1_700_000_000_000, 1_700_000_360_000).with_operation("summarize");
/// let payload = b"a response that repeats, repeats, repeats, repeats".repeat(4);
/// let encoded = codec.encode("k", &meta, Codec::Raw, &payload)?;
/// assert!(encoded.bytes.len() < payload.len());
/// let frame = codec.decode("k", encoded.bytes.into())?;
/// assert_eq!(frame.payload.as_ref(), &payload[..]);
/// assert_eq!(frame.meta.operation.as_deref(), Some("summarize"));
/// # Ok::<(), cache_core::Error>(())
/// ```
#[derive(Clone)]
pub struct FrameCodec {
    compression_threshold: usize,
    compression: Compression,
    zstd_level: i32,
    max_payload: usize,
    cipher: Option<Arc<dyn Cipher>>,
}

impl fmt::Debug for FrameCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameCodec")
            .field("compression_threshold", &self.compression_threshold)
            .field("compression", &self.compression)
            .field("zstd_level", &self.zstd_level)
            .field("max_payload", &self.max_payload)
            .field("encrypted", &self.cipher.is_some())
            .finish()
    }
}

impl Default for FrameCodec {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameCodec {
    /// LZ4 above 1,000 bytes, payloads up to [`DEFAULT_MAX_PAYLOAD`], no encryption.
    pub fn new() -> Self {
        Self {
            compression_threshold: 1000,
            compression: Compression::Lz4,
            zstd_level: DEFAULT_ZSTD_LEVEL,
            max_payload: DEFAULT_MAX_PAYLOAD,
            cipher: None,
        }
    }

    /// Payloads strictly larger than `threshold` bytes are compressed (when it saves space).
    /// Default: 1000.
    #[must_use]
    pub fn with_compression_threshold(mut self, threshold: usize) -> Self {
        self.compression_threshold = threshold;
        self
    }

    /// The algorithm used above the threshold. [`Compression::None`] turns compression off.
    /// Default: [`Compression::Lz4`].
    #[must_use]
    pub fn with_compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// The zstd level (1..=22; higher is smaller and slower), used with [`Compression::Zstd`].
    /// Default: 6 (the seed's level).
    #[must_use]
    pub fn with_zstd_level(mut self, level: i32) -> Self {
        self.zstd_level = level;
        self
    }

    /// The largest payload accepted on encode and produced on decode. Default: 64 MiB.
    #[must_use]
    pub fn with_max_payload(mut self, max_payload: usize) -> Self {
        self.max_payload = max_payload;
        self
    }

    /// Encrypts payloads with `cipher`; the key given to `encode`/`decode` is authenticated too.
    #[must_use]
    pub fn with_cipher(mut self, cipher: Arc<dyn Cipher>) -> Self {
        self.cipher = Some(cipher);
        self
    }

    /// Whether frames are encrypted (and so bound to their full key).
    pub fn is_encrypting(&self) -> bool {
        self.cipher.is_some()
    }

    /// The largest payload accepted, in bytes.
    pub fn max_payload(&self) -> usize {
        self.max_payload
    }

    /// The compression threshold in bytes.
    pub fn compression_threshold(&self) -> usize {
        self.compression_threshold
    }

    /// The payload size above which [`encode`](Self::encode) may take more than about 100 µs of
    /// one core, so that an async caller runs it off the runtime. Measured with
    /// `cargo run --release -p aicache --example codec_costs --features ai`: LZ4 (with or without
    /// encryption) does about 1 GB/s, zstd about 600 MB/s at level 3, 150 MB/s at level 6 and
    /// 5 MB/s at level 19.
    pub fn encode_offload_above(&self) -> usize {
        match self.compression {
            // Slow enough that anything it compresses goes off the runtime (small payloads stay
            // below the threshold and are only encrypted, if at all).
            Compression::Zstd if self.zstd_level >= 10 => self.compression_threshold.min(64 * 1024),
            Compression::Zstd if self.zstd_level > 3 => 8 * 1024,
            Compression::Zstd => 32 * 1024,
            _ => 64 * 1024,
        }
    }

    /// Encodes `payload` for storage under `key`.
    ///
    /// # Errors
    /// [`ErrorKind::CapacityExceeded`] when the payload is larger than the limit,
    /// [`ErrorKind::InvalidInput`] when a label is longer than [`MAX_LABEL_LEN`], and whatever the
    /// cipher returns.
    pub fn encode(
        &self,
        key: &str,
        meta: &FrameMeta,
        codec: Codec,
        payload: &[u8],
    ) -> Result<EncodedFrame> {
        if payload.len() > self.max_payload || u32::try_from(payload.len()).is_err() {
            return Err(
                Error::new(ErrorKind::CapacityExceeded, "value is too large")
                    .with_context("size", payload.len())
                    .with_context("allowed", format!("0..={} bytes", self.max_payload)),
            );
        }
        let operation = label_bytes("operation", meta.operation.as_deref())?;
        let ai_version = label_bytes("ai_version", meta.ai_version.as_deref())?;

        let compressed = (payload.len() > self.compression_threshold)
            .then(|| compress::compress(self.compression, self.zstd_level, payload))
            .flatten();
        let compression = if compressed.is_some() {
            self.compression
        } else {
            Compression::None
        };
        let body: &[u8] = compressed.as_deref().unwrap_or(payload);

        let mut flags = codec.bits() | (compression.bits() << COMPRESSION_SHIFT);
        if self.cipher.is_some() {
            flags |= ENCRYPTED_BIT;
        }
        let header_len = FIXED_HEADER_LEN + 2 + operation.len() + ai_version.len() + 5;
        let mut out = Vec::with_capacity(header_len + body.len() + 32);
        out.extend_from_slice(&MAGIC);
        out.push(if self.cipher.is_some() {
            FRAME_VERSION
        } else {
            FRAME_VERSION_1
        });
        out.push(flags);
        out.extend_from_slice(&meta.cached_at_ms.to_be_bytes());
        out.extend_from_slice(&meta.expires_at_ms.to_be_bytes());
        // Checked above: the payload length fits in u32.
        out.extend_from_slice(
            &u32::try_from(payload.len())
                .unwrap_or(u32::MAX)
                .to_be_bytes(),
        );
        out.push(TextTier::to_byte(meta.text_tier));
        push_label(&mut out, operation);
        push_label(&mut out, ai_version);
        match &self.cipher {
            Some(cipher) => {
                out.extend_from_slice(&cipher.key_id().to_be_bytes());
                out.push(cipher.algorithm_id());
                let aad = associated_data(key, &out);
                let sealed = cipher.encrypt(body, &aad)?;
                out.extend_from_slice(&sealed);
            }
            None => out.extend_from_slice(body),
        }
        Ok(EncodedFrame {
            bytes: out,
            compression,
            original_size: payload.len(),
        })
    }
}

mod compress;
mod decode;
mod msgpack;
mod reseal;
mod settings;
mod stamp;
mod unreadable;
mod wire;

pub use decode::Undecoded;
pub use msgpack::{MAX_PAYLOAD_DEPTH, check_finite, decode_msgpack, encode_msgpack};
pub use settings::{FrameSettings, MAX_VALUE_SIZE_LIMIT};
pub use stamp::{Stamp, TOMBSTONE_VERSION, is_tombstone, stamp, tombstone};
pub use unreadable::Unreadable;
use wire::{associated_data, corrupted, label_bytes, push_label};

#[cfg(test)]
mod tests;
