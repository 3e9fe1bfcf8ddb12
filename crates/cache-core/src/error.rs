//! The error type shared by every aicache crate.
//!
//! One struct, [`Error`], carries a [`ErrorKind`] that callers match on, a message written for the
//! operator, structured context (`field = value` pairs) and an optional source that keeps the chain of
//! causes. Crate-local errors convert into it, so a service sees one error type whatever layer failed.

use std::borrow::Cow;
use std::fmt;

/// A `Result` whose error defaults to [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong, in a form callers can match on.
///
/// New kinds may be added in minor releases, so matches need a wildcard arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The backend could not be reached or the connection broke.
    Connection,
    /// A network call did not finish within its timeout.
    Timeout,
    /// The server refused the credentials or the user lacks a permission.
    Auth,
    /// The TLS handshake or certificate verification failed.
    Tls,
    /// An argument supplied by the caller is not acceptable (an empty key, a zero TTL, …).
    InvalidInput,
    /// A value could not be encoded or decoded.
    Serialization,
    /// Stored bytes are not a valid value frame (truncated, foreign or tampered with).
    Corrupted,
    /// The configuration is invalid.
    Config,
    /// The backend is known to be unavailable and was not asked.
    Unavailable,
    /// A value is larger than the backend can hold.
    CapacityExceeded,
    /// The backend does not support the operation.
    Unsupported,
    /// The server answered with an error that fits no other kind.
    Backend,
    /// A local file or stream could not be read or written (a backup, a configuration file).
    Io,
}

impl ErrorKind {
    /// A short, stable, lowercase name for logs and metrics labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Connection => "connection",
            Self::Timeout => "timeout",
            Self::Auth => "auth",
            Self::Tls => "tls",
            Self::InvalidInput => "invalid_input",
            Self::Serialization => "serialization",
            Self::Corrupted => "corrupted",
            Self::Config => "config",
            Self::Unavailable => "unavailable",
            Self::CapacityExceeded => "capacity_exceeded",
            Self::Unsupported => "unsupported",
            Self::Backend => "backend",
            Self::Io => "io",
        }
    }

    /// Whether an operation that failed with this kind may succeed if retried later unchanged.
    pub const fn is_transient(self) -> bool {
        matches!(self, Self::Connection | Self::Timeout | Self::Unavailable)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error returned by every fallible aicache operation.
///
/// ```
/// use cache_core::{Error, ErrorKind};
///
/// let err = Error::new(ErrorKind::InvalidInput, "ttl must be positive")
///     .with_context("field", "ttl")
///     .with_context("value", "0");
/// assert_eq!(err.kind(), ErrorKind::InvalidInput);
/// assert_eq!(err.to_string(), "invalid_input: ttl must be positive (field: ttl, value: 0)");
/// ```
pub struct Error {
    kind: ErrorKind,
    message: Cow<'static, str>,
    context: Vec<(&'static str, String)>,
    source: Option<BoxError>,
}

impl Error {
    /// Creates an error of `kind` with a message for the operator.
    pub fn new(kind: ErrorKind, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            kind,
            message: message.into(),
            context: Vec::new(),
            source: None,
        }
    }

    /// Adds a `key: value` pair that is printed after the message.
    #[must_use]
    pub fn with_context(mut self, key: &'static str, value: impl fmt::Display) -> Self {
        self.context.push((key, value.to_string()));
        self
    }

    /// Sets the underlying cause, reachable through [`std::error::Error::source`].
    #[must_use]
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message, without context or source.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The context pairs, in the order they were added.
    pub fn context(&self) -> impl Iterator<Item = (&'static str, &str)> {
        self.context.iter().map(|(k, v)| (*k, v.as_str()))
    }

    /// The value of the first context pair named `key`.
    pub fn context_value(&self, key: &str) -> Option<&str> {
        self.context
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Whether retrying the same operation later may succeed.
    pub fn is_transient(&self) -> bool {
        self.kind.is_transient()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)?;
        if !self.context.is_empty() {
            f.write_str(" (")?;
            for (i, (key, value)) in self.context.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{key}: {value}")?;
            }
            f.write_str(")")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.kind).field("message", &self.message);
        if !self.context.is_empty() {
            d.field("context", &self.context);
        }
        if let Some(source) = &self.source {
            d.field("source", source);
        }
        d.finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn source_chain_is_kept() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let err = Error::new(ErrorKind::Connection, "redis unreachable").with_source(io);
        let source = err.source().map(ToString::to_string);
        assert_eq!(source.as_deref(), Some("refused"));
        assert!(err.is_transient());
    }

    #[test]
    fn display_without_context_has_no_parentheses() {
        let err = Error::new(ErrorKind::Auth, "wrong password");
        assert_eq!(err.to_string(), "auth: wrong password");
        assert!(!err.is_transient());
    }
}
