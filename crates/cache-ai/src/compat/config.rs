//! The wrapper's settings and its request type.

use cache_core::{Error, ErrorKind, Result};
use cache_security::Secret;

use crate::legacy::LegacyVariant;

/// A request as the Python service saw it: options as JSON text, because the order of nested
/// option members changes its key.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct LegacyRequest<'a> {
    /// The input text.
    pub text: &'a str,
    /// The operation.
    pub operation: &'a str,
    /// The request options as JSON text (`None`: no options).
    pub options_json: Option<&'a str>,
    /// The question.
    pub question: Option<&'a str>,
}

impl<'a> LegacyRequest<'a> {
    /// A request without options or question.
    pub fn new(operation: &'a str, text: &'a str) -> Self {
        Self {
            text,
            operation,
            options_json: None,
            question: None,
        }
    }

    /// Sets the options (JSON text, member order kept).
    #[must_use]
    pub fn with_options_json(mut self, options: &'a str) -> Self {
        self.options_json = Some(options);
        self
    }

    /// Sets the question.
    #[must_use]
    pub fn with_question(mut self, question: &'a str) -> Self {
        self.question = Some(question);
        self
    }
}

/// How [`CacheCompatibilityWrapper`](super::CacheCompatibilityWrapper) finds the Python service's answers.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CompatibilityConfig {
    /// The key variants to look for: HEAD (f5b04c0) folds the question into the options,
    /// 79e0b9c keeps it apart. Both by default.
    pub variants: Vec<LegacyVariant>,
    /// Texts longer than this many code points were hashed in the key: 1000 for the cache's own
    /// default, 500 when the service built it through its `CacheFactory`.
    pub text_hash_threshold: usize,
    /// The Python service's `REDIS_ENCRYPTION_KEY`, when it encrypted (Fernet).
    pub fernet_key: Option<Secret>,
    /// On a miss, read the Python keys themselves and import what they hold (one extra `MGET`
    /// per miss). Off by default: without it, only answers already imported are found.
    pub read_through: bool,
}

impl Default for CompatibilityConfig {
    fn default() -> Self {
        Self {
            variants: vec![LegacyVariant::Head, LegacyVariant::Legacy],
            text_hash_threshold: 1000,
            fernet_key: None,
            read_through: false,
        }
    }
}

impl CompatibilityConfig {
    /// Turns read-through on or off.
    #[must_use]
    pub fn with_read_through(mut self, on: bool) -> Self {
        self.read_through = on;
        self
    }

    /// Looks for these key variants only.
    #[must_use]
    pub fn with_variants(mut self, variants: Vec<LegacyVariant>) -> Self {
        self.variants = variants;
        self
    }

    /// Sets the text-hash threshold the Python keys were built with.
    #[must_use]
    pub fn with_text_hash_threshold(mut self, threshold: usize) -> Self {
        self.text_hash_threshold = threshold;
        self
    }

    /// Decrypts the Python values with this Fernet key.
    #[must_use]
    pub fn with_fernet_key(mut self, key: Secret) -> Self {
        self.fernet_key = Some(key);
        self
    }

    pub(super) fn check(&self) -> Result<()> {
        if self.variants.is_empty() {
            return Err(
                Error::new(ErrorKind::Config, "no legacy key variant to look for")
                    .with_context("field", "variants")
                    .with_context("allowed", "HEAD, 79e0b9c or both"),
            );
        }
        if !(1..=100_000).contains(&self.text_hash_threshold) {
            return Err(
                Error::new(ErrorKind::Config, "text hash threshold out of range")
                    .with_context("field", "text_hash_threshold")
                    .with_context("value", self.text_hash_threshold)
                    .with_context(
                        "allowed",
                        "1..=100000 (the Python service used 1000 or 500)",
                    ),
            );
        }
        Ok(())
    }
}
