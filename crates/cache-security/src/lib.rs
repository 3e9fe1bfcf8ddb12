//! aicache's security layer.
//!
//! - [`SecurityConfig`]: AUTH password, ACL user, TLS (CA, client certificate, verification),
//!   with fail-secure [production requirements](SecurityConfig::production_requirements).
//! - [`ConnectionFactory`]: the one place aicache opens Redis connections; it applies the
//!   security settings to every connection (rustls with the ring provider for TLS) and maps
//!   failures to typed errors: a wrong password or a denied permission is `Auth`, an untrusted,
//!   expired or misnamed certificate is `Tls`; neither is ever turned into "memory-only mode".
//! - [`RedisCacheSecurityManager`]: inspects a live connection (TLS, the authenticated user, which
//!   dangerous commands that user may run) and reports a score, vulnerabilities and fixes.
//! - [`AeadCipher`]: encryption at rest (ChaCha20-Poly1305 or AES-256-GCM through ring) behind
//!   core's `Cipher`, with key ids for rotation.
//! - [`Secret`]: passwords and keys that never appear in `Debug`, `Display` or serialized output.

mod cipher;
mod config;
mod factory;
mod manager;
mod secret;

pub use cipher::{AeadAlgorithm, AeadCipher, EncryptionConfig};
pub use config::{SecurityConfig, TlsConfig};
pub use factory::{ConnectTimeouts, ConnectionFactory, map_redis_error, with_timeout};
pub use manager::{RedisCacheSecurityManager, SecurityFinding, SecurityValidationResult, Severity};
pub use secret::{Secret, lenient_string};

/// Replaces the password of a Redis URL with `***`: `redis://user:secret@host` → `redis://user:***@host`.
///
/// ```
/// assert_eq!(cache_security::redact_url("redis://:pw@h:1/0"), "redis://:***@h:1/0");
/// assert_eq!(cache_security::redact_url("redis://h:1"), "redis://h:1");
/// ```
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let rest = &url[scheme_end..];
    let mut out = url.to_string();
    // The last '@' ends the user information, even when a (badly encoded) password holds '/' or '?'.
    if let Some(at) = rest.rfind('@') {
        let userinfo = &rest[..at];
        if let Some(colon) = userinfo.find(':') {
            out.replace_range(scheme_end + colon + 1..scheme_end + at, "***");
        }
    }
    if let Some(q) = out.find("pass=") {
        let end = out[q..].find('&').map_or(out.len(), |e| q + e);
        out.replace_range(q + 5..end, "***");
    }
    out
}
