//! The MessagePack payload codec, bounded: values nest at most [`MAX_PAYLOAD_DEPTH`] levels, so
//! decoding stored bytes never recurses deep enough to overflow a worker's stack (rmp-serde's own
//! limit, 1,024 levels, costs about 4 MB of stack in a debug build: a tokio worker has 2 MiB).

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, ErrorKind, Result};

/// How deeply arrays and maps may nest in a payload: deeper values are refused when written and
/// are a decode error (a miss) when read.
pub const MAX_PAYLOAD_DEPTH: usize = 128;

/// Serializes `value` as MessagePack with named fields, the payload codec of
/// [`Codec::MessagePack`](super::Codec::MessagePack).
///
/// # Errors
/// [`ErrorKind::Serialization`] when `value` cannot be serialized; [`ErrorKind::InvalidInput`]
/// when it nests deeper than [`MAX_PAYLOAD_DEPTH`] (no reader could decode it).
pub fn encode_msgpack<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    let bytes = rmp_serde::to_vec_named(value).map_err(|e| {
        Error::new(
            ErrorKind::Serialization,
            "cannot encode value as MessagePack",
        )
        .with_source(e)
    })?;
    let depth = scan(&bytes, |_| false)?.depth;
    if depth > MAX_PAYLOAD_DEPTH {
        return Err(
            Error::new(ErrorKind::InvalidInput, "value nests too deeply")
                .with_context("field", "value")
                .with_context("depth", format!("more than {MAX_PAYLOAD_DEPTH}"))
                .with_context(
                    "allowed",
                    format!("arrays and maps nested up to {MAX_PAYLOAD_DEPTH} levels"),
                ),
        );
    }
    Ok(bytes)
}

/// Deserializes a MessagePack payload, nested at most [`MAX_PAYLOAD_DEPTH`] levels.
///
/// # Errors
/// [`ErrorKind::Serialization`] when the bytes are not a valid `T` or nest too deeply.
pub fn decode_msgpack<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    let mut decoder = rmp_serde::Deserializer::from_read_ref(bytes);
    // rmp-serde counts the outermost value as a level of its own.
    decoder.set_max_depth(MAX_PAYLOAD_DEPTH + 1);
    T::deserialize(&mut decoder).map_err(|e| {
        Error::new(ErrorKind::Serialization, "cannot decode MessagePack value").with_source(e)
    })
}

/// Refuses `value` when it holds a NaN or an infinite number (JSON has neither: serde_json
/// would turn each into `null`, so three different requests would share one key).
///
/// # Errors
/// [`ErrorKind::InvalidInput`] naming the number; [`ErrorKind::Serialization`] when `value`
/// cannot be serialized.
pub fn check_finite<T: Serialize + ?Sized>(value: &T, field: &'static str) -> Result<()> {
    let bytes = rmp_serde::to_vec(value).map_err(|e| {
        Error::new(ErrorKind::Serialization, "cannot serialize the value").with_source(e)
    })?;
    if let Some(number) = scan(&bytes, |n| !n.is_finite())?.flagged {
        return Err(Error::new(ErrorKind::InvalidInput, "not a finite number")
            .with_context("field", field)
            .with_context("value", number)
            .with_context("allowed", "finite numbers (JSON has no NaN or infinity)"));
    }
    Ok(())
}

struct Scanned {
    depth: usize,
    flagged: Option<f64>,
}

fn truncated() -> Error {
    Error::new(ErrorKind::Serialization, "truncated MessagePack value")
}

/// Walks one MessagePack value without recursion: its deepest nesting, and the first float that
/// `flag` picks.
fn scan(bytes: &[u8], flag: impl Fn(f64) -> bool) -> Result<Scanned> {
    let mut scanned = Scanned {
        depth: 0,
        flagged: None,
    };
    // Items still to read in each open container; the root is one item.
    let mut open: Vec<u64> = vec![1];
    let mut at = 0usize;
    let take = |at: &mut usize, n: usize| -> Result<&[u8]> {
        let end = at.checked_add(n).ok_or_else(truncated)?;
        let slice = bytes.get(*at..end).ok_or_else(truncated)?;
        *at = end;
        Ok(slice)
    };
    let length = |at: &mut usize, width: usize| -> Result<u64> {
        Ok(take(at, width)?
            .iter()
            .fold(0u64, |n, &b| (n << 8) | u64::from(b)))
    };
    while let Some(left) = open.last_mut() {
        if *left == 0 {
            open.pop();
            continue;
        }
        *left -= 1;
        let marker = take(&mut at, 1)?[0];
        let (skip, items): (u64, u64) = match marker {
            0x00..=0x7f | 0xc0 | 0xc2 | 0xc3 | 0xe0..=0xff => (0, 0),
            0x80..=0x8f => (0, 2 * u64::from(marker & 0x0f)),
            0x90..=0x9f => (0, u64::from(marker & 0x0f)),
            0xa0..=0xbf => (u64::from(marker & 0x1f), 0),
            0xc4 | 0xd9 => (length(&mut at, 1)?, 0),
            0xc5 | 0xda => (length(&mut at, 2)?, 0),
            0xc6 | 0xdb => (length(&mut at, 4)?, 0),
            0xc7 => (length(&mut at, 1)? + 1, 0),
            0xc8 => (length(&mut at, 2)? + 1, 0),
            0xc9 => (length(&mut at, 4)? + 1, 0),
            0xca => {
                let raw = length(&mut at, 4)?;
                let number = f64::from(f32::from_bits(u32::try_from(raw).unwrap_or(0)));
                if scanned.flagged.is_none() && flag(number) {
                    scanned.flagged = Some(number);
                }
                (0, 0)
            }
            0xcb => {
                let number = f64::from_bits(length(&mut at, 8)?);
                if scanned.flagged.is_none() && flag(number) {
                    scanned.flagged = Some(number);
                }
                (0, 0)
            }
            0xcc | 0xd0 => (1, 0),
            0xcd | 0xd1 => (2, 0),
            0xce | 0xd2 => (4, 0),
            0xcf | 0xd3 => (8, 0),
            0xd4 => (2, 0),
            0xd5 => (3, 0),
            0xd6 => (5, 0),
            0xd7 => (9, 0),
            0xd8 => (17, 0),
            0xdc => (0, length(&mut at, 2)?),
            0xdd => (0, length(&mut at, 4)?),
            0xde => (0, 2 * length(&mut at, 2)?),
            0xdf => (0, 2 * length(&mut at, 4)?),
            0xc1 => {
                return Err(Error::new(
                    ErrorKind::Serialization,
                    "invalid MessagePack marker 0xc1",
                ));
            }
        };
        take(&mut at, usize::try_from(skip).map_err(|_| truncated())?)?;
        if items > 0 {
            open.push(items);
            scanned.depth = scanned.depth.max(open.len() - 1);
            if scanned.depth > MAX_PAYLOAD_DEPTH {
                // Deeper than any reader accepts: no need to walk the rest.
                return Ok(scanned);
            }
        } else if marker & 0xf0 == 0x80 || marker & 0xf0 == 0x90 || matches!(marker, 0xdc..=0xdf) {
            // An empty container still opens a level.
            scanned.depth = scanned.depth.max(open.len());
        }
    }
    Ok(scanned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn nested(depth: usize) -> Value {
        let mut value = json!(1);
        for _ in 0..depth {
            value = Value::Array(vec![value]);
        }
        value
    }

    fn nested_bytes(depth: usize) -> Vec<u8> {
        // Built by hand: serializing a value this deep would itself recurse.
        let mut bytes = vec![0x91; depth];
        bytes.push(0x01);
        bytes
    }

    #[test]
    fn values_up_to_the_cap_round_trip_and_deeper_ones_are_refused() {
        let at_cap = nested(MAX_PAYLOAD_DEPTH);
        let bytes = encode_msgpack(&at_cap).unwrap();
        assert_eq!(decode_msgpack::<Value>(&bytes).unwrap(), at_cap);
        let err = encode_msgpack(&nested(MAX_PAYLOAD_DEPTH + 1)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert_eq!(err.context_value("field"), Some("value"));
        let empty_at_cap = {
            let mut value = json!([]);
            for _ in 1..MAX_PAYLOAD_DEPTH {
                value = Value::Array(vec![value]);
            }
            value
        };
        assert!(encode_msgpack(&empty_at_cap).is_ok());
        assert!(encode_msgpack(&Value::Array(vec![empty_at_cap])).is_err());
    }

    #[test]
    fn stored_bytes_nested_far_past_the_cap_are_an_error_on_a_small_stack() {
        // A thread with a tokio worker's stack: decoding must not recurse 1,000,000 levels.
        std::thread::Builder::new()
            .stack_size(2 * 1024 * 1024)
            .spawn(|| {
                for depth in [MAX_PAYLOAD_DEPTH + 1, 10_000, 1_000_000] {
                    let err = decode_msgpack::<Value>(&nested_bytes(depth)).unwrap_err();
                    assert_eq!(err.kind(), ErrorKind::Serialization, "{depth}");
                }
                assert_eq!(
                    decode_msgpack::<Value>(&nested_bytes(MAX_PAYLOAD_DEPTH)).unwrap(),
                    nested(MAX_PAYLOAD_DEPTH)
                );
            })
            .unwrap()
            .join()
            .unwrap();
    }

    #[test]
    fn non_finite_numbers_are_named() {
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let err = check_finite(
                &json!({"a": [1]}).as_object().map(|_| vec![1.0, bad]),
                "options",
            )
            .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput);
            assert_eq!(err.context_value("field"), Some("options"));
        }
        assert!(check_finite(&(f32::NAN, 1), "x").is_err());
        assert!(check_finite(&json!({"t": 0.5, "n": null, "s": "NaN"}), "x").is_ok());
    }

    #[test]
    fn truncated_and_invalid_bytes_are_errors() {
        for bytes in [
            &[0x92, 0x01][..],
            &[0xc1],
            &[0xdb, 0xff, 0xff, 0xff, 0xff],
            &[0xcb, 0],
        ] {
            assert!(scan(bytes, |_| false).is_err(), "{bytes:?}");
        }
    }
}
