//! [`SecurityConfig`]: how the cache authenticates to Redis and protects the connection.

use std::fmt;
use std::path::PathBuf;

use cache_core::{ValidationIssue, ValidationResult};

use crate::Secret;

/// TLS settings of the connection to Redis (rustls, with the ring crypto provider).
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsConfig {
    /// PEM file of the CA that signed the server's certificate. `None`: the system's roots.
    pub ca_file: Option<PathBuf>,
    /// PEM file of the client certificate, for mutual TLS (with `client_key_file`).
    pub client_cert_file: Option<PathBuf>,
    /// PEM file of the client certificate's private key.
    pub client_key_file: Option<PathBuf>,
    /// Verify the server's certificate chain and name. On by default; turning it off is explicit,
    /// is a validation warning, is logged as a warning when the cache's connection factory is
    /// built, and fails the production requirements.
    pub verify_certificates: bool,
    /// Refuse TLS 1.2 (rustls speaks 1.2 and 1.3). redis-rs builds its TLS settings from the
    /// process's rustls crypto provider, so this is process-wide: the first TLS connection
    /// installs a TLS 1.3-only ring provider, and a process whose provider already allows TLS 1.2
    /// gets a configuration error instead of a silently weaker connection.
    pub tls13_only: bool,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
            verify_certificates: true,
            tls13_only: false,
        }
    }
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("ca_file", &self.ca_file)
            .field("client_cert_file", &self.client_cert_file)
            .field(
                "client_key_file",
                &self.client_key_file.as_ref().map(|_| "<set>"),
            )
            .field("verify_certificates", &self.verify_certificates)
            .field("tls13_only", &self.tls13_only)
            .finish()
    }
}

impl TlsConfig {
    /// Trusts the CA in `path` (PEM) instead of the system's roots.
    #[must_use]
    pub fn with_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// Presents this client certificate and key (PEM files): mutual TLS.
    #[must_use]
    pub fn with_client_certificate(
        mut self,
        cert: impl Into<PathBuf>,
        key: impl Into<PathBuf>,
    ) -> Self {
        self.client_cert_file = Some(cert.into());
        self.client_key_file = Some(key.into());
        self
    }

    /// Refuses TLS 1.2 (see [`tls13_only`](Self::tls13_only)).
    #[must_use]
    pub fn tls13_only(mut self) -> Self {
        self.tls13_only = true;
        self
    }

    /// Turns certificate verification off. Anyone on the path can then impersonate Redis: only for
    /// a test bench, never in production.
    #[must_use]
    pub fn danger_without_verification(mut self) -> Self {
        self.verify_certificates = false;
        self
    }
}

/// How the cache authenticates to Redis and protects the connection: AUTH password, ACL user,
/// TLS. Settings here win over the user and password of the Redis URL; TLS is on when `tls` is
/// set or the URL's scheme is `rediss://`. Secrets never appear in `Debug`.
///
/// ```
/// use cache_security::{Secret, SecurityConfig, TlsConfig};
///
/// let config = SecurityConfig::default()
///     .with_acl_user("cache", Secret::new("s3cret"))
///     .with_tls(TlsConfig::default().with_ca_file("/nonexistent/ca.pem"));
/// let problems = config.validate();
/// assert_eq!(problems.errors[0].field, "security.tls.ca_file", "the file must exist");
/// assert!(!format!("{config:?}").contains("s3cret"));
/// ```
#[derive(Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct SecurityConfig {
    /// The ACL user (`AUTH username password`); `None` with a password: the default user.
    pub username: Option<String>,
    /// The password (`AUTH`), for the ACL user or the default user.
    pub password: Option<Secret>,
    /// TLS; `None` keeps the URL's choice (`rediss://` means TLS with the system's roots).
    pub tls: Option<TlsConfig>,
}

impl fmt::Debug for SecurityConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecurityConfig")
            .field("username", &self.username)
            .field("password", &self.password)
            .field("tls", &self.tls)
            .finish()
    }
}

impl SecurityConfig {
    /// Authenticates the default user with `password` (`requirepass`).
    #[must_use]
    pub fn with_password(mut self, password: Secret) -> Self {
        self.password = Some(password);
        self
    }

    /// Authenticates as the ACL user `username`.
    #[must_use]
    pub fn with_acl_user(mut self, username: impl Into<String>, password: Secret) -> Self {
        self.username = Some(username.into());
        self.password = Some(password);
        self
    }

    /// Connects with TLS.
    #[must_use]
    pub fn with_tls(mut self, tls: TlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Checks the settings on their own (files exist, pairs are complete); the factory checks them
    /// against the URL.
    pub fn validate(&self) -> ValidationResult {
        let mut r = ValidationResult::new();
        if let Some(user) = &self.username {
            if user.is_empty() || user.chars().any(|c| c.is_whitespace() || c.is_control()) {
                r.error(ValidationIssue::new(
                    "security.username",
                    format!("{user:?}"),
                    "a non-empty ACL user name without spaces",
                    "use the name given in the server's ACL (user <name> on ...)",
                ));
            }
            if self.password.is_none() {
                r.error(ValidationIssue::new(
                    "security.password",
                    "unset",
                    "a password for the ACL user",
                    "set the ACL user's password",
                ));
            }
        }
        if let Some(tls) = &self.tls {
            for (field, path) in [
                ("security.tls.ca_file", &tls.ca_file),
                ("security.tls.client_cert_file", &tls.client_cert_file),
                ("security.tls.client_key_file", &tls.client_key_file),
            ] {
                if let Some(path) = path
                    && !path.is_file()
                {
                    r.error(ValidationIssue::new(
                        field,
                        path.display(),
                        "a readable PEM file",
                        "check the path",
                    ));
                }
            }
            if tls.client_cert_file.is_some() != tls.client_key_file.is_some() {
                r.error(ValidationIssue::new(
                    "security.tls.client_key_file",
                    if tls.client_key_file.is_some() {
                        "set without client_cert_file"
                    } else {
                        "unset while client_cert_file is set"
                    },
                    "both client_cert_file and client_key_file, or neither",
                    "mutual TLS needs the certificate and its key",
                ));
            }
            if !tls.verify_certificates {
                r.warning(ValidationIssue::new(
                    "security.tls.verify_certificates",
                    false,
                    "true",
                    "without verification anyone on the network path can impersonate Redis",
                ));
            }
        }
        r
    }

    /// The fail-secure requirements of a production deployment: a password (AUTH or ACL user,
    /// here or in the URL: `password_in_url`), TLS (here or `rediss://`: `tls_in_url`), and
    /// certificate verification. Each missing one is an error naming the field.
    pub fn production_requirements(
        &self,
        tls_in_url: bool,
        password_in_url: bool,
    ) -> ValidationResult {
        let mut r = ValidationResult::new();
        if self.password.is_none() && !password_in_url {
            r.error(ValidationIssue::new(
                "security.password",
                "unset",
                "a Redis password or ACL user in production",
                "set requirepass or an ACL user on the server and give the cache its password",
            ));
        }
        match &self.tls {
            None if !tls_in_url => r.error(ValidationIssue::new(
                "security.tls",
                "off",
                "TLS in production",
                "use a rediss:// URL or set the TLS settings",
            )),
            Some(tls) if !tls.verify_certificates => r.error(ValidationIssue::new(
                "security.tls.verify_certificates",
                false,
                "true in production",
                "give the cache the CA that signed the server's certificate instead",
            )),
            _ => {}
        }
        r
    }
}
