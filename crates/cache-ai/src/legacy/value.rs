//! Reading the values the Python service stored (`shared/spec/legacy/README.md`, "Reading: what
//! the Rust side should do"): JSON in its three wrappings (the HEAD envelope, the same envelope
//! Fernet-encrypted, the legacy bare `rawj:`), order-preserving through [`PyValue`]. Anything
//! pickle-based is refused with its reason and never decoded: unpickling runs the writer's code.

use std::fmt;

use cache_core::{Error, ErrorKind, Result};
use cache_security::Secret;

use super::PyValue;

/// Why a stored Python value is not decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LegacyRefusal {
    /// A pickle (`raw:`, `compressed:`, `pick:`, `zlib:`, bare or inside an envelope): decoding
    /// it would run code chosen by whoever wrote it.
    Pickle,
    /// An envelope whose content has no known prefix (Python would have tried `pickle.loads`).
    UnknownEnvelope,
    /// A Fernet token this instance cannot open (no key configured, or another key).
    Encrypted,
    /// JSON with `NaN` or `Infinity` tokens: Python reads them, strict JSON has no such values.
    NonStandardJson,
    /// Larger than [`MAX_LEGACY_VALUE`] (the Python service never stored more than a few KB).
    TooLarge,
    /// Not a format the Python service wrote.
    Undecodable,
}

impl LegacyRefusal {
    /// Every reason, in a fixed order (for per-reason counters).
    pub(crate) const ALL: [Self; 6] = [
        Self::Pickle,
        Self::UnknownEnvelope,
        Self::Encrypted,
        Self::NonStandardJson,
        Self::TooLarge,
        Self::Undecodable,
    ];

    /// A short, stable name for logs and reports.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pickle => "pickle",
            Self::UnknownEnvelope => "unknown_envelope",
            Self::Encrypted => "encrypted",
            Self::NonStandardJson => "nonstandard_json",
            Self::TooLarge => "too_large",
            Self::Undecodable => "undecodable",
        }
    }

    pub(crate) fn index(self) -> usize {
        Self::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }
}

impl fmt::Display for LegacyRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What [`LegacyDecoder::decode`] found.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum LegacyDecoded {
    /// A value.
    Value(PyValue),
    /// A value that needs Python's `NaN`/`Infinity` tokens (see [`LegacyRefusal::NonStandardJson`]).
    NonStandard(PyValue),
    /// Not decoded, for this reason.
    Refused(LegacyRefusal),
}

/// Decodes the Python service's stored values.
///
/// ```
/// use cache_ai::{LegacyDecoded, LegacyDecoder, LegacyRefusal, PyValue};
///
/// let decoder = LegacyDecoder::new(None)?;
/// let stored = br#"{"_serialized_data": "rawj:{\"sentiment\":\"positive\"}"}"#;
/// let expected = PyValue::from_json(r#"{"sentiment": "positive"}"#)?;
/// assert_eq!(decoder.decode(stored), LegacyDecoded::Value(expected));
/// assert_eq!(decoder.decode(b"raw:\x80\x04..."), LegacyDecoded::Refused(LegacyRefusal::Pickle));
/// # Ok::<(), cache_core::Error>(())
/// ```
pub struct LegacyDecoder {
    fernet: Option<fernet::Fernet>,
}

impl fmt::Debug for LegacyDecoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LegacyDecoder")
            .field("fernet", &self.fernet.is_some())
            .finish()
    }
}

const PICKLE_PREFIXES: [&[u8]; 4] = [b"raw:", b"compressed:", b"pick:", b"zlib:"];

/// The largest stored value decoded: the Python service stored at most about 1 KB of JSON (2 KB
/// once encrypted); anything much larger is refused before it is parsed, which bounds memory.
pub const MAX_LEGACY_VALUE: usize = 1024 * 1024;

impl LegacyDecoder {
    /// A decoder; `fernet_key` is the Python service's `REDIS_ENCRYPTION_KEY` (URL-safe base64
    /// of 32 bytes), when it encrypted.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] naming the field (never the key) when the key is not a Fernet key.
    pub fn new(fernet_key: Option<&Secret>) -> Result<Self> {
        let fernet = match fernet_key {
            Some(key) => Some(fernet::Fernet::new(key.expose()).ok_or_else(|| {
                Error::new(ErrorKind::Config, "not a Fernet key")
                    .with_context("field", "fernet_key")
                    .with_context("allowed", "URL-safe base64 of 32 bytes (44 characters)")
            })?),
            None => None,
        };
        Ok(Self { fernet })
    }

    /// Decodes `stored`, the bytes of one Python cache entry.
    pub fn decode(&self, stored: &[u8]) -> LegacyDecoded {
        if stored.len() > MAX_LEGACY_VALUE {
            return LegacyDecoded::Refused(LegacyRefusal::TooLarge);
        }
        // A Fernet token opens to the envelope, without a time check (Python decrypts without a
        // ttl, and a writer's clock ahead of ours must not turn answers into misses); a token
        // that does not open is read as it is, as Python does (an encrypted deployment still
        // reads plain envelopes).
        let opened = self
            .fernet
            .as_ref()
            .filter(|_| stored.starts_with(b"gAAAAA"))
            .and_then(|fernet| {
                let token = std::str::from_utf8(stored).ok()?;
                fernet.decrypt_at_time(token, None, u64::MAX - 60).ok()
            });
        let text = opened.as_deref().unwrap_or(stored);
        if let Some(decoded) = std::str::from_utf8(text)
            .ok()
            .and_then(|t| PyValue::from_python_json(t).ok())
        {
            return match decoded {
                (PyValue::Dict(entries), _) if envelope(&entries).is_some() => {
                    let content = envelope(&entries).unwrap_or_default();
                    match content.strip_prefix("rawj:") {
                        Some(json) => json_value(json),
                        None if content.starts_with("pick:") || content.starts_with("zlib:") => {
                            LegacyDecoded::Refused(LegacyRefusal::Pickle)
                        }
                        None => LegacyDecoded::Refused(LegacyRefusal::UnknownEnvelope),
                    }
                }
                (value, false) => LegacyDecoded::Value(value),
                (value, true) => LegacyDecoded::NonStandard(value),
            };
        }
        if let Some(json) = stored.strip_prefix(b"rawj:") {
            return std::str::from_utf8(json).map_or(
                LegacyDecoded::Refused(LegacyRefusal::Undecodable),
                json_value,
            );
        }
        if PICKLE_PREFIXES.iter().any(|p| stored.starts_with(p)) {
            return LegacyDecoded::Refused(LegacyRefusal::Pickle);
        }
        if stored.starts_with(b"gAAAAA") && opened.is_none() {
            return LegacyDecoded::Refused(LegacyRefusal::Encrypted);
        }
        LegacyDecoded::Refused(LegacyRefusal::Undecodable)
    }
}

/// The `_serialized_data` string of an envelope.
fn envelope(entries: &[(String, PyValue)]) -> Option<&str> {
    entries.iter().find_map(|(k, v)| match (k.as_str(), v) {
        ("_serialized_data", PyValue::Str(s)) => Some(s.as_str()),
        _ => None,
    })
}

fn json_value(json: &str) -> LegacyDecoded {
    match PyValue::from_python_json(json) {
        Ok((value, false)) => LegacyDecoded::Value(value),
        Ok((value, true)) => LegacyDecoded::NonStandard(value),
        Err(_) => LegacyDecoded::Refused(LegacyRefusal::Undecodable),
    }
}
