//! The Python original's key format, byte for byte (`KeyFormat::Legacy`).
//!
//! ```text
//! "ai_cache:" + "|".join(["op:{operation}", "txt:{T}", ("opts:{O}")?, ("q:{Q}")?])
//! ```
//! - `T`: a text of at most `text_hash_threshold` code points, with `|` and `:` replaced by `_`;
//!   a longer one is `hash:` + the first 16 hex digits of SHA-256 over the text's UTF-8, then
//!   `len:{code points}`, then `words:{Python str.split() count}`.
//! - `O` (only for non-empty options): the first 8 hex digits of MD5 over
//!   `"&".join(f"{k}={v}" for k, v in sorted(options.items()))`, values formatted with Python's
//!   `str()` (and `repr()` inside containers), which [`PyValue`] reproduces.
//! - `Q`: the first 8 hex digits of MD5 over the question's UTF-8.
//!
//! [`LegacyVariant::Head`] folds the question into the options (as the service did, so it changes
//! `O` too); [`LegacyVariant::Legacy`] (commit 79e0b9c) keeps it apart. Keys of this format contain
//! up to `text_hash_threshold` characters of raw text: use it only to read a cache the Python
//! service wrote. Printability of nested strings follows Unicode 16 (Python 3.12 uses 15.0), so
//! characters first assigned in Unicode 16 may be escaped differently.

use std::fmt::Write as _;

use cache_core::{Error, ErrorKind, Result};
use md5::Md5;
use sha2::{Digest, Sha256};
use unicode_general_category::{GeneralCategory, get_general_category};

/// A Python value as the original formatted it: JSON, with the integer/float distinction, integers
/// of any size, and dict insertion order kept.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum PyValue {
    /// `None`.
    None,
    /// `True` / `False`.
    Bool(bool),
    /// An integer, as its decimal digits (any size).
    Int(String),
    /// A float.
    Float(f64),
    /// A string.
    Str(String),
    /// A list.
    List(Vec<PyValue>),
    /// A dict, in insertion order.
    Dict(Vec<(String, PyValue)>),
}

/// Which version of the Python service computed the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum LegacyVariant {
    /// HEAD (f5b04c0): the question is folded into the options before hashing.
    #[default]
    Head,
    /// 79e0b9c: the question is a separate argument and only adds `q:`.
    Legacy,
}

/// Computes keys of the Python original's format.
///
/// ```
/// use cache_ai::{LegacyKeyGenerator, LegacyVariant, PyValue};
///
/// let keys = LegacyKeyGenerator::new(1000, LegacyVariant::Head);
/// let options = PyValue::from_json(r#"{"max_length": 100}"#)?;
/// let key = keys.key("Hello world: a|b", "summarize", &options, None)?;
/// assert_eq!(key, "ai_cache:op:summarize|txt:Hello world_ a_b|opts:5104236b");
/// # Ok::<(), cache_core::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LegacyKeyGenerator {
    text_hash_threshold: usize,
    variant: LegacyVariant,
}

impl LegacyKeyGenerator {
    /// A generator hashing texts longer than `text_hash_threshold` code points (the original's
    /// default is 1000; its factory used 500).
    pub const fn new(text_hash_threshold: usize, variant: LegacyVariant) -> Self {
        Self {
            text_hash_threshold,
            variant,
        }
    }

    /// The key of a request. `options` is a dict (or `None`, meaning no options).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] when `options` is not a dict, or (HEAD) when a truthy
    /// `options["question"]` is not a string: the original raised `AttributeError` there.
    pub fn key(
        &self,
        text: &str,
        operation: &str,
        options: &PyValue,
        question: Option<&str>,
    ) -> Result<String> {
        let mut options = match options {
            PyValue::Dict(entries) => entries.clone(),
            PyValue::None => Vec::new(),
            other => {
                return Err(
                    Error::new(ErrorKind::InvalidInput, "options must be a dict")
                        .with_context("field", "options")
                        .with_context("value", other.py_str()),
                );
            }
        };
        let question_part = match self.variant {
            LegacyVariant::Head => {
                if let Some(q) = question.filter(|q| !q.is_empty()) {
                    let value = PyValue::Str(q.to_string());
                    match options.iter_mut().find(|(k, _)| k == "question") {
                        Some(entry) => entry.1 = value,
                        None => options.push(("question".to_string(), value)),
                    }
                }
                match options
                    .iter()
                    .find(|(k, _)| k == "question")
                    .map(|(_, v)| v)
                {
                    Some(PyValue::Str(q)) if !q.is_empty() => Some(md5_prefix(q.as_bytes())),
                    Some(v) if v.truthy() => {
                        return Err(Error::new(
                            ErrorKind::InvalidInput,
                            "options[\"question\"] must be a string",
                        )
                        .with_context("value", v.py_str()));
                    }
                    _ => None,
                }
            }
            LegacyVariant::Legacy => question
                .filter(|q| !q.is_empty())
                .map(|q| md5_prefix(q.as_bytes())),
        };
        let mut key = format!("ai_cache:op:{operation}|txt:");
        self.push_text(&mut key, text);
        if !options.is_empty() {
            options.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            let joined = options
                .iter()
                .map(|(k, v)| format!("{k}={}", v.py_str()))
                .collect::<Vec<_>>()
                .join("&");
            key.push_str("|opts:");
            key.push_str(&md5_prefix(joined.as_bytes()));
        }
        if let Some(q) = question_part {
            key.push_str("|q:");
            key.push_str(&q);
        }
        Ok(key)
    }

    fn push_text(&self, key: &mut String, text: &str) {
        let chars = text.chars().count();
        if chars <= self.text_hash_threshold {
            key.extend(
                text.chars()
                    .map(|c| if c == '|' || c == ':' { '_' } else { c }),
            );
            return;
        }
        let mut hasher = Sha256::new();
        hasher.update(text.as_bytes());
        hasher.update(format!("len:{chars}").as_bytes());
        hasher.update(format!("words:{}", python_word_count(text)).as_bytes());
        key.push_str("hash:");
        key.push_str(&hex::encode(hasher.finalize())[..16]);
    }
}

fn md5_prefix(bytes: &[u8]) -> String {
    hex::encode(Md5::digest(bytes))[..8].to_string()
}

/// Python's `str.isspace()` set, which `str.split()` splits on (Rust's `char::is_whitespace`
/// lacks U+001C–U+001F).
fn is_python_space(c: char) -> bool {
    matches!(c,
        '\u{9}'..='\u{d}' | '\u{1c}'..='\u{20}' | '\u{85}' | '\u{a0}' | '\u{1680}'
        | '\u{2000}'..='\u{200a}' | '\u{2028}' | '\u{2029}' | '\u{202f}' | '\u{205f}' | '\u{3000}')
}

/// `len(text.split())` in Python.
fn python_word_count(text: &str) -> usize {
    text.split(is_python_space)
        .filter(|w| !w.is_empty())
        .count()
}

impl PyValue {
    /// Parses JSON text, keeping object member order, the integer/float distinction and integers
    /// of any size. A repeated member keeps its first position and takes the last value, as in
    /// Python.
    ///
    /// Linear in the input, and nested at most [`MAX_JSON_DEPTH`] levels (deeper input is an
    /// error, never a stack overflow).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] naming the offset for text that is not strict JSON or nests
    /// too deeply.
    pub fn from_json(text: &str) -> Result<Self> {
        parse::parse(text, false).map(|(value, _)| value)
    }

    /// Parses JSON as Python's `json.loads` reads it: strict JSON plus the bare tokens `NaN`,
    /// `Infinity` and `-Infinity`. Returns the value and whether any such token was met (the
    /// value is then not representable in strict JSON).
    ///
    /// # Errors
    /// As [`from_json`](Self::from_json).
    pub fn from_python_json(text: &str) -> Result<(Self, bool)> {
        parse::parse(text, true)
    }

    /// Python truthiness.
    pub fn truthy(&self) -> bool {
        match self {
            Self::None => false,
            Self::Bool(b) => *b,
            Self::Int(digits) => digits.trim_start_matches('-').bytes().any(|b| b != b'0'),
            Self::Float(f) => *f != 0.0,
            Self::Str(s) => !s.is_empty(),
            Self::List(items) => !items.is_empty(),
            Self::Dict(entries) => !entries.is_empty(),
        }
    }

    /// Python's `str(value)`.
    pub fn py_str(&self) -> String {
        match self {
            Self::Str(s) => s.clone(),
            other => {
                let mut out = String::new();
                other.push_repr(&mut out);
                out
            }
        }
    }

    /// Python's `repr(value)`.
    pub fn py_repr(&self) -> String {
        let mut out = String::new();
        self.push_repr(&mut out);
        out
    }

    fn push_repr(&self, out: &mut String) {
        match self {
            Self::None => out.push_str("None"),
            Self::Bool(true) => out.push_str("True"),
            Self::Bool(false) => out.push_str("False"),
            Self::Int(digits) => out.push_str(digits),
            Self::Float(f) => out.push_str(&float_repr(*f)),
            Self::Str(s) => push_str_repr(out, s),
            Self::List(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    item.push_repr(out);
                }
                out.push(']');
            }
            Self::Dict(entries) => {
                out.push('{');
                for (i, (key, value)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    push_str_repr(out, key);
                    out.push_str(": ");
                    value.push_repr(out);
                }
                out.push('}');
            }
        }
    }
}

/// Python's `repr(float)`: the shortest round-trip digits, positional for exponents -4..=15.
fn float_repr(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf" } else { "-inf" }.into();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    let sign = if f < 0.0 { "-" } else { "" };
    let scientific = format!("{:e}", f.abs());
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    if (-4..16).contains(&exponent) {
        let mut out = String::from(sign);
        if exponent >= 0 {
            let int_len = usize::try_from(exponent).unwrap_or(0) + 1;
            if digits.len() <= int_len {
                out.push_str(&digits);
                out.extend(std::iter::repeat_n('0', int_len - digits.len()));
                out.push_str(".0");
            } else {
                out.push_str(&digits[..int_len]);
                out.push('.');
                out.push_str(&digits[int_len..]);
            }
        } else {
            out.push_str("0.");
            out.extend(std::iter::repeat_n(
                '0',
                usize::try_from(-exponent - 1).unwrap_or(0),
            ));
            out.push_str(&digits);
        }
        out
    } else {
        let exp_sign = if exponent < 0 { '-' } else { '+' };
        format!("{sign}{mantissa}e{exp_sign}{:02}", exponent.abs())
    }
}

fn is_printable(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    !matches!(
        get_general_category(c),
        GeneralCategory::Control
            | GeneralCategory::Format
            | GeneralCategory::Surrogate
            | GeneralCategory::PrivateUse
            | GeneralCategory::Unassigned
            | GeneralCategory::LineSeparator
            | GeneralCategory::ParagraphSeparator
            | GeneralCategory::SpaceSeparator
    )
}

/// Python's `repr(str)`.
fn push_str_repr(out: &mut String, s: &str) {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    out.push(quote);
    for c in s.chars() {
        match c {
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if is_printable(c) => out.push(c),
            c if u32::from(c) <= 0xff => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c if u32::from(c) <= 0xffff => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => {
                let _ = write!(out, "\\U{:08x}", u32::from(c));
            }
        }
    }
    out.push(quote);
}

mod de;
mod parse;
mod value;

pub use parse::MAX_JSON_DEPTH;
pub use value::{LegacyDecoded, LegacyDecoder, LegacyRefusal, MAX_LEGACY_VALUE};

#[cfg(test)]
mod tests;
