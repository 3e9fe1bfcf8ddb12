//! Cache keys and the glob patterns that select them.
//!
//! [`CacheKey`] is a validated, cheaply cloneable key. [`KeyPattern`] is a glob with exactly the
//! semantics of Redis' `SCAN MATCH` (`*`, `?`, `[abc]`, `[^a-z]`, `\` escapes, matched byte by byte),
//! so that a pattern selects the same keys in the memory tier as in Redis.

use std::borrow::Borrow;
use std::fmt;
use std::sync::Arc;

use crate::error::{Error, ErrorKind, Result};

/// The longest key accepted, in bytes.
///
/// Large enough for the legacy key format (which embeds up to 1,000 characters of text), small enough
/// that a key can never be used to smuggle a value into Redis.
pub const MAX_KEY_LEN: usize = 4096;

/// A validated cache key: non-empty UTF-8 of at most [`MAX_KEY_LEN`] bytes.
///
/// Keys are logical: a backend may store them under a namespace prefix of its own.
/// Cloning is a reference-count increment.
///
/// ```
/// use cache_core::CacheKey;
///
/// let key = CacheKey::new("summarize:42")?;
/// assert_eq!(key.as_str(), "summarize:42");
/// assert!(CacheKey::new("").is_err());
/// # Ok::<(), cache_core::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheKey(Arc<str>);

impl CacheKey {
    /// Validates `key` and wraps it.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] when the key is empty or longer than [`MAX_KEY_LEN`] bytes.
    pub fn new(key: impl AsRef<str>) -> Result<Self> {
        let key = key.as_ref();
        if key.is_empty() {
            return Err(
                Error::new(ErrorKind::InvalidInput, "a cache key must not be empty")
                    .with_context("field", "key")
                    .with_context("allowed", format!("1..={MAX_KEY_LEN} bytes")),
            );
        }
        if key.len() > MAX_KEY_LEN {
            return Err(Error::new(ErrorKind::InvalidInput, "cache key is too long")
                .with_context("field", "key")
                .with_context("length", key.len())
                .with_context("allowed", format!("1..={MAX_KEY_LEN} bytes")));
        }
        Ok(Self(Arc::from(key)))
    }

    /// The key as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key's length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false: keys are never empty. Present for API symmetry with `len`.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for CacheKey {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for CacheKey {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl TryFrom<&str> for CacheKey {
    type Error = Error;
    fn try_from(value: &str) -> Result<Self> {
        Self::new(value)
    }
}

impl TryFrom<String> for CacheKey {
    type Error = Error;
    fn try_from(value: String) -> Result<Self> {
        Self::new(value)
    }
}

/// Escapes every glob metacharacter of `literal` so that, used as a pattern, it matches only itself.
///
/// ```
/// use cache_core::{escape_glob, KeyPattern};
///
/// let pattern = KeyPattern::new(format!("{}*", escape_glob("what is [a]*?")))?;
/// assert!(pattern.matches("what is [a]*? and more"));
/// assert!(!pattern.matches("what is a and more"));
/// # Ok::<(), cache_core::Error>(())
/// ```
pub fn escape_glob(literal: &str) -> String {
    let mut out = String::with_capacity(literal.len() + 8);
    for c in literal.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\' | '^' | '-') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[derive(Clone, PartialEq, Eq)]
enum Token {
    Literal(u8),
    AnyByte,
    AnySequence,
    Class {
        negated: bool,
        items: Vec<ClassItem>,
    },
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ClassItem {
    Byte(u8),
    // Redis compares range bounds as C `char`, which is signed on the platforms it runs on.
    Range(i8, i8),
}

impl ClassItem {
    fn matches(self, b: u8) -> bool {
        match self {
            Self::Byte(x) => x == b,
            Self::Range(lo, hi) => {
                let c = i8::from_ne_bytes([b]);
                lo <= c && c <= hi
            }
        }
    }
}

/// A compiled glob pattern with Redis `SCAN MATCH` semantics.
///
/// Matching runs in time proportional to `pattern × key` at worst (no exponential backtracking).
#[derive(Clone, PartialEq, Eq)]
pub struct KeyPattern {
    source: Arc<str>,
    tokens: Arc<[Token]>,
    /// When set, a key must also have exactly this many `:`-separated segments (a glob's `*`
    /// cannot say "no `:`", so stores check this after `SCAN MATCH`).
    segments: Option<usize>,
}

impl KeyPattern {
    /// Compiles `pattern`.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] when the pattern is longer than [`MAX_KEY_LEN`] bytes.
    pub fn new(pattern: impl AsRef<str>) -> Result<Self> {
        let pattern = pattern.as_ref();
        if pattern.len() > MAX_KEY_LEN {
            return Err(
                Error::new(ErrorKind::InvalidInput, "key pattern is too long")
                    .with_context("field", "pattern")
                    .with_context("length", pattern.len())
                    .with_context("allowed", format!("0..={MAX_KEY_LEN} bytes")),
            );
        }
        Ok(Self {
            source: Arc::from(pattern),
            tokens: compile(pattern.as_bytes()).into(),
            segments: None,
        })
    }

    /// A pattern that matches every key.
    pub fn all() -> Self {
        Self {
            source: Arc::from("*"),
            tokens: vec![Token::AnySequence].into(),
            segments: None,
        }
    }

    /// A pattern matching exactly the keys that start with `literal_prefix`.
    pub fn with_prefix(literal_prefix: &str) -> Result<Self> {
        Self::new(format!("{}*", escape_glob(literal_prefix)))
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Also requires a key to have exactly `segments` `:`-separated segments. The AI cache's
    /// keys are `{operation}:{digest}` (two segments), so its patterns never reach a key of
    /// another shape stored under the same prefix (such as an earlier release's tenant keys).
    ///
    /// ```
    /// use cache_core::KeyPattern;
    ///
    /// let pattern = KeyPattern::new("t:*")?.with_segments(2);
    /// assert!(pattern.matches("t:3f5c"));
    /// assert!(!pattern.matches("t:acme:summarize:3f5c"));
    /// # Ok::<(), cache_core::Error>(())
    /// ```
    #[must_use]
    pub fn with_segments(mut self, segments: usize) -> Self {
        self.segments = Some(segments);
        self
    }

    /// The number of segments a key must have, when the pattern requires one.
    pub fn segments(&self) -> Option<usize> {
        self.segments
    }

    /// Whether the pattern matches `key`.
    pub fn matches(&self, key: &str) -> bool {
        self.segments
            .is_none_or(|n| key.bytes().filter(|&b| b == b':').count() + 1 == n)
            && matches_tokens(&self.tokens, key.as_bytes())
    }
}

impl fmt::Debug for KeyPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.segments {
            None => f.debug_tuple("KeyPattern").field(&self.source).finish(),
            Some(n) => f
                .debug_tuple("KeyPattern")
                .field(&self.source)
                .field(&format_args!("{n} segments"))
                .finish(),
        }
    }
}

impl fmt::Display for KeyPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// Mirrors the parsing of Redis' `stringmatchlen` (util.c), including its treatment of an
/// unterminated `[` (the class runs to the end of the pattern) and of a trailing `\` (a literal).
fn compile(p: &[u8]) -> Vec<Token> {
    let mut tokens = Vec::with_capacity(p.len());
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            b'*' => {
                if tokens.last() != Some(&Token::AnySequence) {
                    tokens.push(Token::AnySequence);
                }
                i += 1;
            }
            b'?' => {
                tokens.push(Token::AnyByte);
                i += 1;
            }
            b'[' => {
                i += 1;
                let negated = p.get(i) == Some(&b'^');
                if negated {
                    i += 1;
                }
                let mut items = Vec::new();
                loop {
                    match p.get(i) {
                        None => break,
                        Some(b'\\') if i + 1 < p.len() => {
                            items.push(ClassItem::Byte(p[i + 1]));
                            i += 2;
                        }
                        Some(b']') => {
                            i += 1;
                            break;
                        }
                        Some(&start) if i + 2 < p.len() && p[i + 1] == b'-' => {
                            let a = i8::from_ne_bytes([start]);
                            let b = i8::from_ne_bytes([p[i + 2]]);
                            items.push(ClassItem::Range(a.min(b), a.max(b)));
                            i += 3;
                        }
                        Some(&byte) => {
                            items.push(ClassItem::Byte(byte));
                            i += 1;
                        }
                    }
                }
                tokens.push(Token::Class { negated, items });
            }
            b'\\' if i + 1 < p.len() => {
                tokens.push(Token::Literal(p[i + 1]));
                i += 2;
            }
            byte => {
                tokens.push(Token::Literal(byte));
                i += 1;
            }
        }
    }
    tokens
}

fn token_matches(token: &Token, b: u8) -> bool {
    match token {
        Token::Literal(x) => *x == b,
        Token::AnyByte => true,
        Token::AnySequence => false,
        Token::Class { negated, items } => items.iter().any(|item| item.matches(b)) != *negated,
    }
}

/// Every token but `*` consumes exactly one byte, so the classic single-backtrack-point algorithm
/// is exact and linear in practice.
fn matches_tokens(tokens: &[Token], s: &[u8]) -> bool {
    let (mut t, mut i) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        match tokens.get(t) {
            Some(Token::AnySequence) => {
                star = Some((t, i));
                t += 1;
            }
            Some(token) if token_matches(token, s[i]) => {
                t += 1;
                i += 1;
            }
            _ => match star {
                Some((star_t, star_i)) => {
                    t = star_t + 1;
                    i = star_i + 1;
                    star = Some((star_t, star_i + 1));
                }
                None => return false,
            },
        }
    }
    tokens[t..].iter().all(|token| *token == Token::AnySequence)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, key: &str) -> bool {
        KeyPattern::new(pattern).unwrap().matches(key)
    }

    #[test]
    fn glob_semantics_follow_redis() {
        assert!(m("*", ""));
        assert!(m("*", "anything"));
        assert!(m("a*c", "abbbc"));
        assert!(!m("a*c", "abbbd"));
        assert!(m("h?llo", "hello"));
        assert!(!m("h?llo", "hllo"));
        assert!(m("h[ae]llo", "hallo"));
        assert!(!m("h[ae]llo", "hillo"));
        assert!(m("h[^e]llo", "hallo"));
        assert!(!m("h[^e]llo", "hello"));
        assert!(m("h[a-b]llo", "hbllo"));
        assert!(m("h[b-a]llo", "hallo"), "reversed ranges are swapped");
        assert!(m(r"a\*b", "a*b"));
        assert!(!m(r"a\*b", "axb"));
        assert!(m(r"a\", r"a\"), "a trailing backslash is a literal");
        assert!(m("a[bc", "ab"), "an unterminated class runs to the end");
        assert!(m("op:sum:*", "op:sum:x"));
        assert!(!m("op:sum:*", "op:summarize:x"));
    }

    #[test]
    fn escaped_literal_matches_only_itself() {
        for literal in ["what is [a]*?", r"back\slash", "^-]", "plain"] {
            let p = KeyPattern::new(escape_glob(literal)).unwrap();
            assert!(p.matches(literal), "{literal}");
            assert!(!p.matches(&format!("{literal}x")));
        }
    }

    #[test]
    fn pathological_pattern_is_fast_enough_to_finish() {
        let p = KeyPattern::new("*a*a*a*a*a*a*a*a*a*a*b").unwrap();
        assert!(!p.matches(&"a".repeat(3000)));
    }

    #[test]
    fn key_validation() {
        assert_eq!(
            CacheKey::new("").unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
        assert!(CacheKey::new("x".repeat(MAX_KEY_LEN)).is_ok());
        assert!(CacheKey::new("x".repeat(MAX_KEY_LEN + 1)).is_err());
    }
}
