//! Payload compression: LZ4 or zstd on the way in, bounded decompression on the way out.

use bytes::Bytes;

use super::Compression;
use super::wire::corrupted;
use crate::error::Result;

/// Payloads at least this long are first tried on a sample.
const SAMPLED_ABOVE: usize = 8 * 1024;
/// The sample: LZ4 on it costs well under a microsecond.
const SAMPLE_LEN: usize = 2 * 1024;

/// Whether a slice from the middle of `payload` shrinks by at least 1/16 under LZ4: random or
/// already-compressed bytes do not, and then the full LZ4 pass is not worth it (about 4 µs
/// failing on 64 KiB). Only for LZ4: zstd still shrinks what LZ4 cannot (base64, hex).
fn sample_compresses(payload: &[u8]) -> bool {
    let start = (payload.len() - SAMPLE_LEN) / 2;
    let sample = &payload[start..start + SAMPLE_LEN];
    lz4_flex::block::compress(sample).len() < SAMPLE_LEN - SAMPLE_LEN / 16
}

/// Bytes a small payload's randomness is judged on.
const PROBE_LEN: usize = 128;
/// Distinct byte values above which the probe looks random: 128 random bytes show about 101
/// (the standard deviation is about 5), text and JSON well under 60, base64 and hex at most 64.
const RANDOM_ABOVE: usize = 80;

/// Whether the first [`PROBE_LEN`] bytes of a small payload use more than [`RANDOM_ABOVE`]
/// distinct byte values: random, compressed or encrypted bytes do, and such a payload does not
/// shrink under LZ4. The probe (independent stores into a table, then a sum) costs a fraction
/// of a failing LZ4 pass.
fn looks_random(payload: &[u8]) -> bool {
    let Some(probe) = payload.get(..PROBE_LEN) else {
        return false;
    };
    let mut seen = [0u8; 256];
    for &b in probe {
        seen[usize::from(b)] = 1;
    }
    seen.iter().map(|&s| usize::from(s)).sum::<usize>() > RANDOM_ABOVE
}

/// `payload` compressed with `compression`, when that saves space.
pub(super) fn compress(
    compression: Compression,
    zstd_level: i32,
    payload: &[u8],
) -> Option<Vec<u8>> {
    match compression {
        Compression::Lz4 if payload.len() >= SAMPLED_ABOVE && !sample_compresses(payload) => None,
        Compression::Lz4 if payload.len() < SAMPLED_ABOVE && looks_random(payload) => None,
        Compression::Lz4 => Some(lz4_flex::block::compress(payload)),
        // A zstd failure (an out-of-range level) stores the payload as it is.
        Compression::Zstd => zstd::bulk::compress(payload, zstd_level).ok(),
        Compression::None => None,
    }
    .filter(|packed| packed.len() < payload.len())
}

/// Decompresses `body` into exactly `original_size` bytes, never allocating more than that and
/// only once the body could hold it.
///
/// `None` when `compression` is `None`: the payload is `body` itself.
pub(super) fn decompress(
    compression: Compression,
    body: &[u8],
    original_size: usize,
) -> Result<Option<Bytes>> {
    let payload = match compression {
        Compression::None => return Ok(None),
        Compression::Lz4 => {
            // LZ4 expands at most ~255:1; refuse a header that promises more than the body can
            // hold, before allocating what it promises.
            if original_size > body.len().saturating_mul(255).saturating_add(64) {
                return Err(corrupted("declared size is impossible for the LZ4 payload")
                    .with_context("size", original_size)
                    .with_context("payload", body.len()));
            }
            let mut out = vec![0u8; original_size];
            let written = lz4_flex::block::decompress_into(body, &mut out)
                .map_err(|e| corrupted("LZ4 payload does not decompress").with_source(e))?;
            if written != original_size {
                return Err(corrupted("LZ4 payload has the wrong decompressed size")
                    .with_context("expected", original_size)
                    .with_context("got", written));
            }
            Bytes::from(out)
        }
        Compression::Zstd => {
            // The zstd frame states its content size; it must match the header before anything
            // is allocated.
            let declared = zstd::zstd_safe::get_frame_content_size(body)
                .ok()
                .flatten()
                .and_then(|size| usize::try_from(size).ok());
            if declared != Some(original_size) {
                return Err(corrupted("zstd payload does not state the header's size")
                    .with_context("expected", original_size));
            }
            let mut out = vec![0u8; original_size];
            let written = zstd::bulk::decompress_to_buffer(body, &mut out)
                .map_err(|e| corrupted("zstd payload does not decompress").with_source(e))?;
            if written != original_size {
                return Err(corrupted("zstd payload has the wrong decompressed size")
                    .with_context("expected", original_size)
                    .with_context("got", written));
            }
            Bytes::from(out)
        }
    };
    Ok(Some(payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `len` pseudo-random (xorshift) bytes.
    fn noise(len: usize) -> Vec<u8> {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state.to_le_bytes()[0]
            })
            .collect()
    }

    #[test]
    fn incompressible_payloads_skip_compression_and_text_does_not() {
        let noise = noise(64 * 1024);
        assert!(!sample_compresses(&noise));
        assert!(compress(Compression::Lz4, 0, &noise).is_none());
        let text = b"the model answered with a summary of it. ".repeat(2000);
        assert!(sample_compresses(&text));
        assert!(compress(Compression::Lz4, 0, &text).is_some_and(|c| c.len() < text.len() / 4));
        assert!(compress(Compression::Zstd, 6, &text).is_some());
    }

    #[test]
    fn small_random_payloads_are_probed_and_small_text_still_compresses() {
        let noise = noise(1024);
        assert!(looks_random(&noise));
        let json = br#"{"summary":"The quarter's revenue grew by 12 % on strong product sales.","score":0.93}"#.repeat(12);
        assert!(!looks_random(&json));
        assert!(compress(Compression::Lz4, 0, &json).is_some());
        let base64: Vec<u8> = (0..1024)
            .map(|i| {
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[i * 7 % 64]
            })
            .collect();
        assert!(!looks_random(&base64), "at most 64 byte values");
        assert!(
            !looks_random(&noise[..100]),
            "too short to judge: compression decides"
        );
    }
}
