//! Namespaces: the key prefixes that keep caches apart in one Redis, and the layout that makes
//! them disjoint by construction.
//!
//! A namespace is a `:`-separated list of segments. Two namespaces **overlap** when they are equal
//! or one is a prefix of the other at a segment boundary (`app` and `app:x`); a pattern inside
//! one of them (`{namespace}:*`) can then match keys of the other. aicache's own namespaces never
//! overlap, whatever the tenant and operation names:
//!
//! ```text
//! aicache:v1                 AI answers without a tenant (byte-identical to earlier releases)
//! aicache:kv                 the generic cache without a tenant
//! aicache:t:{tenant}:v1      a tenant's AI answers
//! aicache:t:{tenant}:kv      a tenant's generic cache
//! {namespace}~aux:{kind}:…   auxiliary keys of a namespace (tombstones, leases, snapshots)
//! ```
//!
//! Tenant names are `[A-Za-z0-9_-]{1,64}`: no `:`, so a tenant is exactly one segment and `acme`
//! never reaches `acme-eu`. Segments never contain `~`, so no namespace is `{other}~aux` and no
//! data pattern (`{namespace}:…`) can reach an auxiliary key. Releases before 0.2 put tenants
//! inside the tenant-less namespace (`aicache:v1:t:{tenant}`); [`Namespace::pre_isolation`] names
//! that layout for the upgrade path.
//!
//! A generic cache may pick its own prefix; [`Namespace::generic`] refuses one that overlaps
//! aicache's reserved namespaces, and [`Namespace::claim`] refuses, within one process, a generic
//! cache whose namespace overlaps one already in use on the same server, naming both.
//!
//! ```
//! use cache_core::Namespace;
//!
//! let plain = Namespace::ai(None)?;
//! let acme = Namespace::ai(Some("acme"))?;
//! assert_eq!(plain.as_str(), "aicache:v1");
//! assert_eq!(acme.as_str(), "aicache:t:acme:v1");
//! assert!(!plain.overlaps(&acme));
//! assert!(Namespace::new("app")?.overlaps(&Namespace::new("app:x")?));
//! assert!(Namespace::generic("aicache:v1:mine").is_err());
//! # Ok::<(), cache_core::Error>(())
//! ```

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::error::{Error, ErrorKind, Result};

/// The first segment of every namespace aicache chooses.
pub const ROOT_SEGMENT: &str = "aicache";
/// The segment of AI answers (key-format version 1).
pub const AI_SEGMENT: &str = "v1";
/// The segment of the generic cache's entries.
pub const GENERIC_SEGMENT: &str = "kv";
/// The segment after which a tenant's name follows.
pub const TENANT_SEGMENT: &str = "t";
/// What follows a namespace (instead of `:`) in its auxiliary keys.
pub const AUX_MARKER: &str = "~aux";
/// The longest namespace, in bytes.
pub const MAX_NAMESPACE_LEN: usize = 256;
/// The longest tenant name, in bytes.
pub const MAX_TENANT_LEN: usize = 64;

const ALLOWED: &str = "segments of [A-Za-z0-9_./-] joined by ':', 1..=256 bytes";

/// A validated namespace (see the [module](self) documentation for the layout).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Namespace(Arc<str>);

/// Whether `tenant` may name a namespace: `[A-Za-z0-9_-]{1,64}` (braces would become a Redis
/// Cluster hash tag; `:` or `*` could reach another tenant's keys).
pub fn is_valid_tenant(tenant: &str) -> bool {
    !tenant.is_empty()
        && tenant.len() <= MAX_TENANT_LEN
        && tenant
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn check_tenant(tenant: &str) -> Result<()> {
    if is_valid_tenant(tenant) {
        return Ok(());
    }
    Err(Error::new(ErrorKind::Config, "invalid tenant name")
        .with_context("field", "tenant")
        .with_context("value", format!("{tenant:?}"))
        .with_context("allowed", "[A-Za-z0-9_-]{1,64}"))
}

fn segment_ok(segment: &str) -> bool {
    !segment.is_empty()
        && segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'/' | b'-'))
}

impl Namespace {
    /// Validates `prefix` as a namespace: `:`-separated, non-empty segments of
    /// `[A-Za-z0-9_./-]`, at most [`MAX_NAMESPACE_LEN`] bytes. Glob characters, braces (Redis
    /// Cluster hash tags), `~` (reserved for auxiliary keys) and whitespace are refused.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] naming the value and what is allowed.
    pub fn new(prefix: impl AsRef<str>) -> Result<Self> {
        let prefix = prefix.as_ref();
        if prefix.is_empty()
            || prefix.len() > MAX_NAMESPACE_LEN
            || !prefix.split(':').all(segment_ok)
        {
            return Err(Error::new(ErrorKind::Config, "invalid namespace")
                .with_context("field", "key_prefix")
                .with_context("value", format!("{prefix:?}"))
                .with_context("allowed", ALLOWED));
        }
        Ok(Self(Arc::from(prefix)))
    }

    /// The namespace of AI answers: `aicache:v1`, or `aicache:t:{tenant}:v1`.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] for an invalid tenant name.
    pub fn ai(tenant: Option<&str>) -> Result<Self> {
        Self::reserved(tenant, AI_SEGMENT)
    }

    /// The generic cache's default namespace: `aicache:kv`, or `aicache:t:{tenant}:kv`.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] for an invalid tenant name.
    pub fn generic_default(tenant: Option<&str>) -> Result<Self> {
        Self::reserved(tenant, GENERIC_SEGMENT)
    }

    /// Where releases before 0.2 kept a tenant's entries of `role` ([`AI_SEGMENT`] or
    /// [`GENERIC_SEGMENT`]): `aicache:{role}:t:{tenant}`, inside the tenant-less namespace. Only
    /// the upgrade path reads it.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] for an invalid tenant name.
    pub fn pre_isolation(role: &str, tenant: &str) -> Result<Self> {
        check_tenant(tenant)?;
        Self::new(format!("{ROOT_SEGMENT}:{role}:{TENANT_SEGMENT}:{tenant}"))
    }

    fn reserved(tenant: Option<&str>, role: &str) -> Result<Self> {
        if let Some(tenant) = tenant {
            check_tenant(tenant)?;
        }
        Ok(Self(Arc::from(Self::layout(tenant, role))))
    }

    /// The name aicache's layout gives the namespace of `role` ([`AI_SEGMENT`],
    /// [`GENERIC_SEGMENT`]) and `tenant`, without checking the tenant's name: for settings that
    /// report it before they are validated. [`Namespace::ai`] and
    /// [`Namespace::generic_default`] validate.
    pub fn layout(tenant: Option<&str>, role: &str) -> String {
        match tenant {
            None => format!("{ROOT_SEGMENT}:{role}"),
            Some(tenant) => format!("{ROOT_SEGMENT}:{TENANT_SEGMENT}:{tenant}:{role}"),
        }
    }

    /// Validates a generic cache's prefix: a [namespace](Self::new) that does not overlap any
    /// AI namespace (`aicache`, `aicache:v1…`, `aicache:t`, `aicache:t:{tenant}`,
    /// `aicache:t:{tenant}:v1…` are refused; `aicache:kv` and `aicache:t:{tenant}:kv` are the
    /// generic defaults).
    ///
    /// # Errors
    /// [`ErrorKind::Config`] naming the prefix and the AI namespace it overlaps.
    pub fn generic(prefix: impl AsRef<str>) -> Result<Self> {
        let namespace = Self::new(prefix)?;
        let segments: Vec<&str> = namespace.segments().collect();
        let overlapped = match segments.as_slice() {
            [ROOT_SEGMENT] => Some(format!("{ROOT_SEGMENT}:{AI_SEGMENT}")),
            [ROOT_SEGMENT, AI_SEGMENT, ..] => Some(format!("{ROOT_SEGMENT}:{AI_SEGMENT}")),
            [ROOT_SEGMENT, TENANT_SEGMENT] => Some(format!(
                "{ROOT_SEGMENT}:{TENANT_SEGMENT}:{{tenant}}:{AI_SEGMENT}"
            )),
            [ROOT_SEGMENT, TENANT_SEGMENT, tenant]
            | [ROOT_SEGMENT, TENANT_SEGMENT, tenant, AI_SEGMENT, ..] => Some(format!(
                "{ROOT_SEGMENT}:{TENANT_SEGMENT}:{tenant}:{AI_SEGMENT}"
            )),
            _ => None,
        };
        match overlapped {
            None => Ok(namespace),
            Some(ai) => Err(Error::new(
                ErrorKind::Config,
                "the prefix overlaps an AI namespace",
            )
            .with_context("field", "key_prefix")
            .with_context("value", namespace.as_str())
            .with_context("overlaps", ai)
            .with_context(
                "allowed",
                "a prefix that is neither inside nor around an AI namespace, e.g. aicache:kv or myapp",
            )),
        }
    }

    /// The namespace as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Its `:`-separated segments.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split(':')
    }

    /// Whether `self` and `other` are equal or one is a prefix of the other at a segment
    /// boundary, so that a pattern inside one can match keys of the other.
    pub fn overlaps(&self, other: &Self) -> bool {
        let (short, long) = if self.0.len() <= other.0.len() {
            (&*self.0, &*other.0)
        } else {
            (&*other.0, &*self.0)
        };
        long == short || (long.starts_with(short) && long.as_bytes()[short.len()] == b':')
    }

    /// Refuses `other` when it overlaps `self`, naming both (`self_field` and `other_field` say
    /// where each came from).
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when they overlap.
    pub fn check_disjoint(
        &self,
        self_field: &'static str,
        other: &Self,
        other_field: &'static str,
    ) -> Result<()> {
        if !self.overlaps(other) {
            return Ok(());
        }
        Err(Error::new(ErrorKind::Config, "two namespaces overlap")
            .with_context(self_field, self.as_str())
            .with_context(other_field, other.as_str())
            .with_context(
                "allowed",
                "namespaces neither equal nor a prefix of one another at a ':' boundary",
            ))
    }

    /// The full key of `key`: `{namespace}:{key}`.
    pub fn full_key(&self, key: &str) -> String {
        let mut out = String::with_capacity(self.0.len() + 1 + key.len());
        out.push_str(&self.0);
        out.push(':');
        out.push_str(key);
        out
    }

    /// The logical key of `full_key` when it is a data key of this namespace.
    pub fn logical_key<'k>(&self, full_key: &'k str) -> Option<&'k str> {
        full_key.strip_prefix(&*self.0)?.strip_prefix(':')
    }

    /// An auxiliary key of this namespace: `{namespace}~aux:{kind}:{name}`. No data pattern of
    /// any namespace matches it (see the [module](self) documentation).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] when `kind` is not a segment of `[a-z0-9_]`.
    pub fn aux_key(&self, kind: &str, name: &str) -> Result<String> {
        if kind.is_empty()
            || !kind
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(
                Error::new(ErrorKind::InvalidInput, "invalid auxiliary key kind")
                    .with_context("field", "kind")
                    .with_context("value", format!("{kind:?}"))
                    .with_context("allowed", "[a-z0-9_]+"),
            );
        }
        Ok(format!("{}{AUX_MARKER}:{kind}:{name}", self.0))
    }

    /// Claims this namespace on the server `scope` names (a Redis URL, or any identity of the
    /// store) for a generic cache of this process, until the claim is dropped. Caches of one
    /// namespace share it (several handles on one cache); a namespace that is a prefix of
    /// another at a `:` boundary on the same server is refused, naming both, whichever was
    /// claimed first. Namespaces on different servers never conflict. (AI namespaces need no
    /// claim: they are disjoint by construction, and [`Namespace::generic`] keeps generic
    /// prefixes out of them.)
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when a live claim overlaps.
    pub fn claim(&self, scope: &str) -> Result<NamespaceClaim> {
        let mut claims = CLAIMS.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(held) = claims.iter().find(|held| {
            *held.scope == *scope && held.namespace != *self && held.namespace.overlaps(self)
        }) {
            return Err(Error::new(
                ErrorKind::Config,
                "the namespace overlaps one already in use in this process",
            )
            .with_context("namespace", self.as_str())
            .with_context("in_use", held.namespace.as_str())
            .with_context(
                "allowed",
                "namespaces neither equal nor a prefix of one another at a ':' boundary",
            ));
        }
        let id = NEXT_CLAIM.fetch_add(1, Ordering::Relaxed);
        claims.push(Held {
            id,
            scope: Box::from(scope),
            namespace: self.clone(),
        });
        Ok(NamespaceClaim { id })
    }
}

struct Held {
    id: u64,
    scope: Box<str>,
    namespace: Namespace,
}

static CLAIMS: Mutex<Vec<Held>> = Mutex::new(Vec::new());
static NEXT_CLAIM: AtomicU64 = AtomicU64::new(0);

/// A namespace in use by a cache of this process (see [`Namespace::claim`]); dropping it frees
/// the namespace.
#[derive(Debug)]
pub struct NamespaceClaim {
    id: u64,
}

impl Drop for NamespaceClaim {
    fn drop(&mut self) {
        let mut claims = CLAIMS.lock().unwrap_or_else(PoisonError::into_inner);
        claims.retain(|held| held.id != self.id);
    }
}

impl fmt::Debug for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Namespace").field(&self.0).finish()
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Namespace {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests;
