//! Re-binding an encrypted frame to another key: what moving an entry between namespaces needs,
//! since the AEAD associated data is the full key.

use bytes::Bytes;

use super::wire::{Reader, associated_data};
use super::{
    ENCRYPTED_BIT, FIXED_HEADER_LEN, FRAME_VERSION, FRAME_VERSION_1, FrameCodec, MAGIC, Unreadable,
};
use crate::error::Result;

impl FrameCodec {
    /// The frame `stored` under `from_key`, bound to `to_key` instead.
    ///
    /// An encrypted frame is decrypted under its old binding and sealed again with this codec's
    /// cipher (its current key) for `to_key`; the body stays compressed as it was and the
    /// metadata is unchanged. Anything else (a plaintext frame, a value that is not a frame) is
    /// bound to no key: `Ok(None)`, it moves as it is.
    ///
    /// ```
    /// use cache_core::frame::{Codec, FrameCodec, FrameMeta};
    ///
    /// let codec = FrameCodec::new();
    /// let meta = FrameMeta::new(1_700_000_000_000, 1_700_000_360_000);
    /// let stored = codec.encode("a:k", &meta, Codec::Raw, b"answer")?.bytes;
    /// assert_eq!(codec.reseal("a:k", "b:k", &stored)?, None, "plaintext is bound to no key");
    /// # Ok::<(), cache_core::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported) with an [`Unreadable`] reason
    /// when the frame is encrypted and this codec cannot open it (no cipher, a key or an
    /// algorithm it lacks, a payload that does not authenticate under `from_key`, a frame
    /// version it does not know); [`ErrorKind::Corrupted`](crate::ErrorKind::Corrupted) for a
    /// truncated header.
    pub fn reseal(&self, from_key: &str, to_key: &str, stored: &[u8]) -> Result<Option<Bytes>> {
        if stored.len() < FIXED_HEADER_LEN || stored[..3] != MAGIC {
            return Ok(None);
        }
        let (version, flags) = (stored[3], stored[4]);
        if flags & ENCRYPTED_BIT == 0 {
            return Ok(None);
        }
        if !(FRAME_VERSION_1..=FRAME_VERSION).contains(&version) {
            return Err(Unreadable::OtherVersion
                .error("an encrypted frame of a version this build cannot re-seal")
                .with_context("version", version));
        }
        let mut reader = Reader::new(stored);
        reader.take(FIXED_HEADER_LEN)?;
        reader.label()?;
        reader.label()?;
        let labels_end = reader.pos;
        let key_id = reader.u32()?;
        let algorithm = if version >= FRAME_VERSION {
            Some(reader.u8()?)
        } else {
            None
        };
        let header_end = reader.pos;
        let cipher = self.cipher.as_ref().ok_or_else(|| {
            Unreadable::NoCipher.error("an encrypted frame to move, but no cipher is configured")
        })?;
        if let Some(algorithm) = algorithm.filter(|a| *a != cipher.algorithm_id()) {
            return Err(Unreadable::AlgorithmMissing
                .error("encrypted with an algorithm this instance does not use")
                .with_context("algorithm", algorithm));
        }
        let aad = associated_data(from_key, &stored[..header_end]);
        let body = cipher
            .decrypt(key_id, &stored[header_end..], &aad)
            .map_err(|e| {
                Unreadable::KeyMismatch
                    .error("the payload does not decrypt under its old key")
                    .with_context("key", from_key)
                    .with_source(e)
            })?;
        let mut out = Vec::with_capacity(stored.len() + 1);
        out.extend_from_slice(&stored[..labels_end]);
        // Sealed anew: the current key and algorithm, in this build's frame version.
        out[3] = FRAME_VERSION;
        out.extend_from_slice(&cipher.key_id().to_be_bytes());
        out.push(cipher.algorithm_id());
        let aad = associated_data(to_key, &out);
        let sealed = cipher.encrypt(&body, &aad)?;
        out.extend_from_slice(&sealed);
        Ok(Some(Bytes::from(out)))
    }
}
