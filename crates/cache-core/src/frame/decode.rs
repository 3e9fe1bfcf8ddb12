//! Decoding a stored frame: the header's checks, decryption and decompression, without copying
//! an uncompressed, unencrypted payload and without losing the stored bytes when it fails.

use bytes::{Buf, Bytes};

use super::compress;
use super::wire::{Reader, associated_data, corrupted};
use super::{
    CODEC_MASK, COMPRESSION_MASK, COMPRESSION_SHIFT, Codec, Compression, ENCRYPTED_BIT,
    FRAME_VERSION, FRAME_VERSION_1, Frame, FrameCodec, FrameMeta, MAGIC, MAX_TIMESTAMP_MS,
    RESERVED_BITS, TextTier, Unreadable,
};
use crate::error::{Error, ErrorKind, Result};

/// A stored value that did not decode, with the bytes it was read from: a reader that deletes
/// an undecodable value deletes exactly those bytes, without keeping a copy of every value it
/// reads for that rare case.
#[non_exhaustive]
pub struct Undecoded {
    /// Why it did not decode (as [`FrameCodec::decode`] reports it).
    pub error: Error,
    /// The stored bytes, as they were given.
    pub stored: Bytes,
}

impl std::fmt::Debug for Undecoded {
    // The stored value may be megabytes: its length says enough.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Undecoded")
            .field("error", &self.error)
            .field("stored_len", &self.stored.len())
            .finish()
    }
}

/// Where a checked frame's payload is.
enum Payload {
    /// In the stored bytes, after the header.
    Stored { header_end: usize },
    /// Decrypted or decompressed.
    Owned(Bytes),
}

impl FrameCodec {
    /// Decodes a frame read from under `key`.
    ///
    /// An uncompressed, unencrypted payload is a zero-copy view of `stored`.
    ///
    /// # Errors
    /// [`ErrorKind::Corrupted`] for anything that is not a structurally valid frame;
    /// [`ErrorKind::Unsupported`] with an [`Unreadable`] reason for a frame this instance cannot
    /// read or will not trust (another version, a key or algorithm it lacks, a payload that does
    /// not authenticate, plaintext while it encrypts, a payload above its limit).
    pub fn decode(&self, key: &str, stored: Bytes) -> Result<Frame> {
        self.decode_or_keep(key, stored)
            .map_err(|undecoded| undecoded.error)
    }

    /// [`decode`](Self::decode), giving the stored bytes back with the error when the frame does
    /// not decode.
    ///
    /// # Errors
    /// As [`decode`](Self::decode), in an [`Undecoded`] that holds `stored`.
    pub fn decode_or_keep(
        &self,
        key: &str,
        stored: Bytes,
    ) -> std::result::Result<Frame, Undecoded> {
        match self.check(key, &stored) {
            Ok((meta, codec, Payload::Owned(payload))) => Ok(Frame {
                meta,
                codec,
                payload,
            }),
            Ok((meta, codec, Payload::Stored { header_end })) => {
                // Advancing keeps a `Bytes` made from a `Vec` as it is; `slice` would make it
                // shared (an allocation and two atomic counts for every read).
                let mut payload = stored;
                payload.advance(header_end);
                Ok(Frame {
                    meta,
                    codec,
                    payload,
                })
            }
            Err(error) => Err(Undecoded { error, stored }),
        }
    }

    /// Everything that can refuse `stored`, and where its payload is.
    fn check(&self, key: &str, stored: &[u8]) -> Result<(FrameMeta, Codec, Payload)> {
        let mut reader = Reader::new(stored);
        if reader.take(3)? != MAGIC {
            return Err(corrupted("not an aicache frame (bad magic)"));
        }
        let version = reader.u8()?;
        if !(FRAME_VERSION_1..=FRAME_VERSION).contains(&version) {
            // Not corrupt: a newer writer during a rolling upgrade. Readers leave it in place.
            return Err(Unreadable::OtherVersion
                .error("frame version not readable by this build")
                .with_context("version", version)
                .with_context("supported", "1, 2"));
        }
        let flags = reader.u8()?;
        if flags & RESERVED_BITS != 0 {
            return Err(corrupted("reserved flag bits are set").with_context("flags", flags));
        }
        let codec = Codec::from_bits(flags & CODEC_MASK)?;
        let compression = Compression::from_bits((flags & COMPRESSION_MASK) >> COMPRESSION_SHIFT)?;
        let encrypted = flags & ENCRYPTED_BIT != 0;
        let cached_at_ms = reader.u64()?;
        let expires_at_ms = reader.u64()?;
        if cached_at_ms > expires_at_ms || expires_at_ms > MAX_TIMESTAMP_MS {
            return Err(corrupted("impossible timestamps")
                .with_context("cached_at_ms", cached_at_ms)
                .with_context("expires_at_ms", expires_at_ms));
        }
        let original_size = usize::try_from(reader.u32()?).unwrap_or(usize::MAX);
        if original_size > self.max_payload {
            // Not garbage: an instance with a larger limit wrote it, and reads it.
            return Err(Unreadable::TooLarge
                .error("declared payload size exceeds this instance's limit")
                .with_context("size", original_size)
                .with_context("allowed", self.max_payload));
        }
        let text_tier = TextTier::from_byte(reader.u8()?)?;
        let operation = reader.label()?;
        let ai_version = reader.label()?;
        if self.cipher.is_some() && !encrypted {
            // With encryption on, a plaintext frame is what a writer without the key would forge:
            // not trusted here, but an instance that has not enabled encryption yet reads it.
            return Err(Unreadable::PlaintextRefused
                .error("an unencrypted value where encryption is required"));
        }
        let key_id = if encrypted { Some(reader.u32()?) } else { None };
        let algorithm = match key_id {
            Some(_) if version >= FRAME_VERSION => Some(reader.u8()?),
            _ => None,
        };
        let header_end = reader.pos;
        let meta = FrameMeta {
            cached_at_ms,
            expires_at_ms,
            operation,
            text_tier,
            ai_version,
        };

        let payload = match key_id {
            Some(key_id) => {
                let cipher = self.cipher.as_ref().ok_or_else(|| {
                    Unreadable::NoCipher
                        .error("the stored value is encrypted but no cipher is configured")
                })?;
                if let Some(algorithm) = algorithm.filter(|a| *a != cipher.algorithm_id()) {
                    return Err(Unreadable::AlgorithmMissing
                        .error("encrypted with an algorithm this instance does not use")
                        .with_context("algorithm", algorithm)
                        .with_context("configured", cipher.algorithm_id()));
                }
                let aad = associated_data(key, &stored[..header_end]);
                let plain = cipher
                    .decrypt(key_id, &stored[header_end..], &aad)
                    .map_err(|e| {
                        // Neither is garbage for certain: a key this instance lacks (a rotation
                        // in progress elsewhere), or one that differs. Left for the others.
                        let reason = if e.kind() == ErrorKind::Unsupported {
                            Unreadable::KeyMissing
                        } else {
                            Unreadable::KeyMismatch
                        };
                        reason
                            .error("the payload does not decrypt with this instance's keys")
                            .with_context("key_id", key_id)
                            .with_source(e)
                    })?;
                let payload = compress::decompress(compression, &plain, original_size)?;
                Payload::Owned(payload.unwrap_or_else(|| Bytes::from(plain)))
            }
            None => {
                match compress::decompress(compression, &stored[header_end..], original_size)? {
                    Some(payload) => Payload::Owned(payload),
                    None => Payload::Stored { header_end },
                }
            }
        };
        let len = match &payload {
            Payload::Owned(payload) => payload.len(),
            Payload::Stored { header_end } => stored.len().saturating_sub(*header_end),
        };
        if len != original_size {
            return Err(corrupted("payload length does not match the header")
                .with_context("expected", original_size)
                .with_context("got", len));
        }
        Ok((meta, codec, payload))
    }
}
