//! aicache's security layer.
//!
//! - [`SecurityConfig`]: AUTH password, ACL user, TLS (CA, client certificate, verification),
//!   with fail-secure [production requirements](SecurityConfig::production_requirements).
//! - The security manager's rules: [`assess`] scores what a probe of a live connection saw
//!   ([`ProbeReport`]: TLS, the authenticated user, which dangerous commands it may run) into a
//!   [`SecurityValidationResult`] with vulnerabilities and fixes. The probing itself, like every
//!   Redis connection, belongs to cache-redis (`RedisCacheSecurityManager`, the connection
//!   factory): this crate does no I/O and does not depend on redis-rs.
//! - [`AeadCipher`]: encryption at rest (ChaCha20-Poly1305 or AES-256-GCM through ring) behind
//!   core's `Cipher`, with key ids for rotation.
//! - [`Secret`]: passwords and keys that never appear in `Debug`, `Display` or serialized output.

mod assess;
mod cipher;
mod config;
mod secret;

pub use assess::{ProbeReport, SecurityFinding, SecurityValidationResult, Severity, assess};
pub use cipher::{AeadAlgorithm, AeadCipher, EncryptionConfig};
pub use config::{SecurityConfig, TlsConfig};
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
