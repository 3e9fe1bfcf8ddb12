//! The one place that opens connections to Redis, and the one place that maps redis-rs errors.
//!
//! It applies cache-security's settings (AUTH, ACL user, TLS) to every connection; nothing of
//! redis-rs leaves this crate.
//!
//! Every connection aicache opens comes from [`ConnectionFactory`]: the shared multiplexed
//! connection of the hot path, the dedicated connections of pattern walks and tools, and the
//! connections that probe a server. It applies the [`SecurityConfig`] (AUTH, ACL user, TLS with
//! rustls and the ring provider) to all of them.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use cache_core::{Error, ErrorKind, Result};
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::{
    AsyncConnectionConfig, Client, ClientTlsConfig, ConnectionAddr, ConnectionInfo,
    IntoConnectionInfo, RedisError, ServerErrorKind, TlsCertificates,
};

use cache_security::{SecurityConfig, redact_url};

/// The timeouts a factory gives its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectTimeouts {
    /// The limit on opening a connection (TLS handshake and AUTH included).
    pub connect: Duration,
    /// The longest delay of redis-rs's own reconnection (the cache's breaker owns recovery).
    pub reconnect_max_delay: Duration,
}

impl ConnectTimeouts {
    /// `connect` to open a connection; `reconnect_max_delay` between redis-rs's retries.
    pub const fn new(connect: Duration, reconnect_max_delay: Duration) -> Self {
        Self {
            connect,
            reconnect_max_delay,
        }
    }
}

/// Opens connections to one Redis server with the cache's security settings and timeouts.
///
/// This is the only place in aicache that opens Redis connections.
#[derive(Clone)]
pub(crate) struct ConnectionFactory {
    client: Client,
    /// The server's address and settings, credentials and TLS mode applied.
    info: ConnectionInfo,
    /// The CA and client certificate of TLS connections (PEM).
    certificates: Option<Certificates>,
    redacted_url: String,
    connect_timeout: Duration,
    reconnect_max_delay: Duration,
    tls: bool,
    username: Option<String>,
    password_set: bool,
}

/// The PEM files a TLS connection presents and trusts, read once.
#[derive(Clone)]
pub(crate) struct Certificates {
    root_cert: Option<Vec<u8>>,
    client: Option<(Vec<u8>, Vec<u8>)>,
}

impl Certificates {
    /// As redis-rs takes them.
    pub(crate) fn to_redis(&self) -> TlsCertificates {
        TlsCertificates {
            client_tls: self.client.as_ref().map(|(cert, key)| ClientTlsConfig {
                client_cert: cert.clone(),
                client_key: key.clone(),
            }),
            root_cert: self.root_cert.clone(),
        }
    }
}

impl fmt::Debug for ConnectionFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionFactory")
            .field("url", &self.redacted_url)
            .finish_non_exhaustive()
    }
}

impl ConnectionFactory {
    /// A factory for the server at `url` with `security` applied: its user and password win over
    /// the URL's, and its TLS settings (CA, client certificate, verification) apply to a
    /// `rediss://` URL or turn a `redis://` one into TLS.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] for an invalid URL or security setting, or an unreadable PEM file
    /// (never printing a password).
    pub(crate) fn new(
        url: &str,
        security: &SecurityConfig,
        timeouts: ConnectTimeouts,
    ) -> Result<Self> {
        let redacted_url = redact_url(url);
        let config_error = |message: &'static str, field: &'static str, value: String| {
            Error::new(ErrorKind::Config, message)
                .with_context("field", field)
                .with_context("value", value)
        };
        security.validate().into_result()?;
        let info = url.into_connection_info().map_err(|e| {
            config_error("invalid Redis URL", "redis_url", redacted_url.clone()).with_source(e)
        })?;
        let mut redis_settings = info.redis_settings().clone();
        if let Some(user) = &security.username {
            redis_settings = redis_settings.set_username(user);
        }
        if let Some(password) = &security.password {
            redis_settings = redis_settings.set_password(password.expose());
        }
        let username = redis_settings.username().map(str::to_string);
        let password_set = redis_settings.password().is_some();
        let info = info.set_redis_settings(redis_settings);
        let (host, port, url_tls) = match info.addr() {
            ConnectionAddr::Tcp(host, port) => (host.clone(), *port, false),
            ConnectionAddr::TcpTls { host, port, .. } => (host.clone(), *port, true),
            _ => (String::new(), 0, false),
        };
        let tls = security.tls.is_some() || url_tls;
        let (info, certificates) = if tls {
            if host.is_empty() {
                return Err(config_error(
                    "TLS needs a TCP address (host:port), not a unix socket",
                    "redis_url",
                    redacted_url,
                ));
            }
            let settings = security.tls.clone().unwrap_or_default();
            install_crypto_provider(settings.tls13_only).map_err(|e| {
                e.with_context("field", "security.tls.tls13_only")
                    .with_context("value", true)
            })?;
            if !settings.verify_certificates {
                tracing::warn!(
                    url = redacted_url,
                    "TLS certificate verification is OFF: anyone on the path can impersonate Redis"
                );
            }
            let info = info.set_addr(ConnectionAddr::TcpTls {
                host,
                port,
                insecure: !settings.verify_certificates,
                tls_params: None,
            });
            let read = |field: &'static str, path: &std::path::Path| {
                std::fs::read(path).map_err(|e| {
                    config_error("cannot read a TLS file", field, path.display().to_string())
                        .with_source(e)
                })
            };
            let root_cert = match &settings.ca_file {
                Some(path) => Some(read("security.tls.ca_file", path)?),
                None => None,
            };
            let client = match (&settings.client_cert_file, &settings.client_key_file) {
                (Some(cert), Some(key)) => Some((
                    read("security.tls.client_cert_file", cert)?,
                    read("security.tls.client_key_file", key)?,
                )),
                _ => None,
            };
            (info, Some(Certificates { root_cert, client }))
        } else {
            (info, None)
        };
        let client = open_client(&info, certificates.as_ref(), &redacted_url)?;
        Ok(Self {
            client,
            info,
            certificates,
            redacted_url,
            connect_timeout: timeouts.connect,
            reconnect_max_delay: timeouts.reconnect_max_delay,
            tls,
            username,
            password_set,
        })
    }

    /// A factory for another server of the same deployment (a cluster node that a seed
    /// announced): the same credentials, TLS settings and timeouts, at `host:port`.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when redis-rs refuses the settings.
    pub(crate) fn for_address(&self, host: &str, port: u16) -> Result<Self> {
        let addr = match self.info.addr() {
            ConnectionAddr::TcpTls { insecure, .. } => ConnectionAddr::TcpTls {
                host: host.to_string(),
                port,
                insecure: *insecure,
                tls_params: None,
            },
            _ => ConnectionAddr::Tcp(host.to_string(), port),
        };
        let info = self.info.clone().set_addr(addr);
        let scheme = if self.tls { "rediss" } else { "redis" };
        let redacted_url = format!("{scheme}://{host}:{port}");
        Ok(Self {
            client: open_client(&info, self.certificates.as_ref(), &redacted_url)?,
            info,
            redacted_url,
            ..self.clone()
        })
    }

    /// The server's connection settings (credentials and TLS mode applied).
    pub(crate) fn info(&self) -> &ConnectionInfo {
        &self.info
    }

    /// The TLS certificates, when connections use TLS with files.
    pub(crate) fn certificates(&self) -> Option<&Certificates> {
        self.certificates.as_ref()
    }

    /// The limit on opening a connection.
    pub(crate) fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// The longest delay of redis-rs's own reconnection.
    pub(crate) fn reconnect_max_delay(&self) -> Duration {
        self.reconnect_max_delay
    }

    /// The URL with its password replaced by `***`.
    pub(crate) fn redacted_url(&self) -> &str {
        &self.redacted_url
    }

    /// Whether connections use TLS.
    pub(crate) fn uses_tls(&self) -> bool {
        self.tls
    }

    /// Whether connections send a password (from the URL or the security settings).
    pub(crate) fn has_password(&self) -> bool {
        self.password_set
    }

    /// The ACL user connections authenticate as (`None`: the default user).
    pub(crate) fn username(&self) -> Option<&str> {
        self.username.as_deref()
    }

    /// The shared hot-path connection. It connects on first use, so building it never fails
    /// because Redis is down; redis-rs's own reconnect is kept short because the cache's link
    /// state machine owns recovery. Every command already runs under the cache's own timeout, so
    /// redis-rs's response timeout is off: one timer per command, not two.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when redis-rs refuses the settings.
    pub(crate) fn manager(&self) -> Result<ConnectionManager> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(None)
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(10))
            .set_max_delay(self.reconnect_max_delay);
        ConnectionManager::new_lazy_with_config(self.client.clone(), config)
            .map_err(|e| map_redis_error(e, "cannot create the Redis connection manager"))
    }

    /// Opens a connection: the shared hot-path one (the link probes and installs it), or one of
    /// its own for long pattern walks that must not queue behind or in front of hot-path
    /// commands. redis-rs's response timeout is off: every command runs under the cache's own.
    ///
    /// # Errors
    /// As [`map_redis_error`] maps a failure to connect (TLS and credential errors included), or
    /// [`ErrorKind::Timeout`].
    pub(crate) async fn dedicated(&self) -> Result<MultiplexedConnection> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(None);
        with_timeout(self.connect_timeout, "connect", async {
            self.client
                .get_multiplexed_async_connection_with_config(&config)
                .await
                .map_err(|e| map_redis_error(e, "cannot connect to Redis"))
        })
        .await
    }
}

/// A redis-rs client for `info`, with `certificates` for TLS.
fn open_client(
    info: &ConnectionInfo,
    certificates: Option<&Certificates>,
    redacted_url: &str,
) -> Result<Client> {
    let config_error = |message: &'static str, field: &'static str, e: RedisError| {
        Error::new(ErrorKind::Config, message)
            .with_context("field", field)
            .with_context("value", redacted_url.to_string())
            .with_source(e)
    };
    match certificates {
        Some(certificates) => Client::build_with_tls(info.clone(), certificates.to_redis())
            .map_err(|e| {
                config_error(
                    "invalid TLS settings (certificate or key not PEM?)",
                    "security.tls",
                    e,
                )
            }),
        None => Client::open(info.clone())
            .map_err(|e| config_error("invalid Redis URL", "redis_url", e)),
    }
}

/// Installs ring as the process's rustls crypto provider unless one is installed already (with
/// only TLS 1.3 cipher suites when `tls13_only`).
///
/// # Errors
/// [`ErrorKind::Config`] when `tls13_only` is asked for but the installed provider allows TLS 1.2.
fn install_crypto_provider(tls13_only: bool) -> Result<()> {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let mut provider = rustls::crypto::ring::default_provider();
        if tls13_only {
            provider
                .cipher_suites
                .retain(|suite| suite.version() == &rustls::version::TLS13);
        }
        // Losing a race with another installer is fine: a provider is installed either way, and
        // is checked below.
        let _ = provider.install_default();
    }
    let allows_tls12 = rustls::crypto::CryptoProvider::get_default().is_some_and(|provider| {
        provider
            .cipher_suites
            .iter()
            .any(|suite| suite.version() == &rustls::version::TLS12)
    });
    if tls13_only && allows_tls12 {
        return Err(Error::new(
            ErrorKind::Config,
            "TLS 1.3-only was asked for, but this process's rustls provider already allows TLS 1.2",
        )
        .with_context(
            "fix",
            "create the TLS 1.3-only cache before any other TLS connection in the process, or drop tls13_only",
        ));
    }
    Ok(())
}

/// Runs `future` with a deadline of ours; a late answer is an [`ErrorKind::Timeout`].
///
/// # Errors
/// The future's error, or [`ErrorKind::Timeout`].
pub(crate) async fn with_timeout<T>(
    limit: Duration,
    what: &'static str,
    future: impl Future<Output = Result<T>>,
) -> Result<T> {
    match tokio::time::timeout(limit, future).await {
        Ok(result) => result,
        Err(_) => Err(Error::new(ErrorKind::Timeout, "Redis call timed out")
            .with_context("operation", what)
            .with_context("timeout", format!("{limit:?}"))),
    }
}

/// The TLS failure inside a redis-rs error, if that is what it is (rustls reports through the
/// I/O error it returns).
fn tls_failure(e: &RedisError) -> Option<String> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(current) = source {
        if let Some(tls) = current.downcast_ref::<rustls::Error>() {
            return Some(tls.to_string());
        }
        // redis-rs keeps I/O errors behind an `Arc<dyn Error + Send + Sync>`.
        let io = current.downcast_ref::<std::io::Error>().or_else(|| {
            current
                .downcast_ref::<std::sync::Arc<dyn std::error::Error + Send + Sync>>()
                .and_then(|inner| inner.downcast_ref::<std::io::Error>())
        });
        if let Some(inner) = io.and_then(std::io::Error::get_ref)
            && let Some(tls) = inner.downcast_ref::<rustls::Error>()
        {
            return Some(tls.to_string());
        }
        source = current.source();
    }
    None
}

/// Whether `e` is a cluster's `MOVED` or `ASK` (the command reached a node that does not serve
/// its slot), alone or as the first failure of a pipeline.
pub(crate) fn is_redirect(e: &Error) -> bool {
    std::error::Error::source(e)
        .and_then(|source| source.downcast_ref::<RedisError>())
        .is_some_and(|redis| {
            matches!(
                redis.kind(),
                redis::ErrorKind::Server(ServerErrorKind::Moved | ServerErrorKind::Ask)
            )
        })
}

/// Maps a redis-rs error to the core error, keeping it as the source: a refused password or
/// permission is [`ErrorKind::Auth`], a failed TLS handshake or certificate check
/// [`ErrorKind::Tls`] (neither is transient: fix the configuration), a refused or broken
/// connection [`ErrorKind::Connection`].
pub(crate) fn map_redis_error(e: RedisError, message: &'static str) -> Error {
    let code = e.code().unwrap_or_default();
    if let Some(tls) = tls_failure(&e) {
        return Error::new(ErrorKind::Tls, message)
            .with_context("tls", tls)
            .with_context(
                "fix",
                "check that security.tls.ca_file signed the server's certificate, that the \
                 certificate is valid now and names the host in redis_url, and the client \
                 certificate the server requires",
            )
            .with_source(e);
    }
    let kind = if e.is_timeout() {
        ErrorKind::Timeout
    } else if matches!(e.kind(), redis::ErrorKind::AuthenticationFailed)
        || matches!(e.kind(), redis::ErrorKind::Server(ServerErrorKind::NoPerm))
        || matches!(code, "NOAUTH" | "WRONGPASS" | "NOPERM")
    {
        ErrorKind::Auth
    } else if e.is_connection_refusal() || e.is_io_error() || e.is_connection_dropped() {
        ErrorKind::Connection
    } else if matches!(e.kind(), redis::ErrorKind::InvalidClientConfig) {
        ErrorKind::Config
    } else if matches!(
        e.kind(),
        redis::ErrorKind::Server(
            ServerErrorKind::BusyLoading
                | ServerErrorKind::MasterDown
                // A cluster in motion: a node down or not connected yet, slots without a
                // primary, a slot migrating. Outages of part of the cluster, not refusals.
                // (READONLY stays an error: one server that became a replica refuses writes
                // for good, and degrading would hide it.)
                | ServerErrorKind::ClusterDown
                | ServerErrorKind::TryAgain
                | ServerErrorKind::Moved
                | ServerErrorKind::Ask
        ) | redis::ErrorKind::ClusterConnectionNotFound
    ) {
        ErrorKind::Unavailable
    } else {
        ErrorKind::Backend
    };
    let hint = match kind {
        ErrorKind::Auth => {
            "check the password or ACL user in redis_url, and the user's permissions"
        }
        ErrorKind::Connection => "check that Redis is running and reachable at redis_url",
        _ => "see the source error",
    };
    Error::new(kind, message)
        .with_context("fix", hint)
        .with_source(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cache_security::TlsConfig;
    use cache_testkit::{RedisServer, ServerConfig, TestCertificates};

    // The provider choice is process-wide: this is the only test of this binary that opens TLS
    // connections, so it sees a process whose first TLS connection asks for TLS 1.3 only.
    #[tokio::test]
    async fn tls13_only_refuses_a_server_that_speaks_only_tls12() {
        let certs = TestCertificates::generate();
        let tls = |extra: Option<&str>| {
            let mut config =
                ServerConfig::default().with_tls(certs.server_tls(&certs.server, false));
            if let Some(line) = extra {
                config = config.with_config_line(line);
            }
            RedisServer::start(config)
        };
        let modern = tls(None);
        let legacy = tls(Some("tls-protocols \"TLSv1.2\""));
        let security = SecurityConfig::default().with_tls(
            TlsConfig::default()
                .with_ca_file(&certs.ca_file)
                .tls13_only(),
        );
        let timeouts = ConnectTimeouts::new(Duration::from_secs(2), Duration::from_secs(1));
        let factory = ConnectionFactory::new(&modern.url(), &security, timeouts).unwrap();
        let mut conn = factory.dedicated().await.unwrap();
        let pong: String = redis::cmd("PING").query_async(&mut conn).await.unwrap();
        assert_eq!(pong, "PONG");
        let factory = ConnectionFactory::new(&legacy.url(), &security, timeouts).unwrap();
        let err = factory.dedicated().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Tls, "{err}");
        assert!(
            rustls::crypto::CryptoProvider::get_default().is_some_and(|p| p
                .cipher_suites
                .iter()
                .all(|s| s.version() == &rustls::version::TLS13)),
            "the process's provider is TLS 1.3-only"
        );
    }
}
