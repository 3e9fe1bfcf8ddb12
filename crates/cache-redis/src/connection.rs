//! The one place that opens connections to Redis, and the one place that maps redis-rs errors.
//!
//! Every connection the cache uses comes from [`ConnectionFactory`]: the shared multiplexed
//! connection of the hot path and the plain connections that probe a server. (The factory moves to
//! cache-security when AUTH/ACL/TLS settings arrive; nothing else needs to change.)

use std::fmt;
use std::future::Future;
use std::time::Duration;

use cache_core::{Error, ErrorKind, Result};
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Client, RedisError, ServerErrorKind};

use crate::config::{RedisCacheConfig, redact_url};

/// Opens connections to one Redis server with the cache's timeouts.
#[derive(Clone)]
pub(crate) struct ConnectionFactory {
    client: Client,
    redacted_url: String,
    connect_timeout: Duration,
    reconnect_max_delay: Duration,
}

impl fmt::Debug for ConnectionFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionFactory")
            .field("url", &self.redacted_url)
            .finish_non_exhaustive()
    }
}

impl ConnectionFactory {
    pub(crate) fn new(url: &str, config: &RedisCacheConfig) -> Result<Self> {
        let redacted_url = redact_url(url);
        let client = Client::open(url).map_err(|e| {
            Error::new(ErrorKind::Config, "invalid Redis URL")
                .with_context("field", "redis_url")
                .with_context("value", &redacted_url)
                .with_source(e)
        })?;
        Ok(Self {
            client,
            redacted_url,
            connect_timeout: config.connect_timeout,
            reconnect_max_delay: config.reconnect_max_delay,
        })
    }

    pub(crate) fn redacted_url(&self) -> &str {
        &self.redacted_url
    }

    /// The shared hot-path connection. It connects on first use, so building it never fails
    /// because Redis is down; redis-rs's own reconnect is kept short because the cache's link
    /// state machine owns recovery. Every command already runs under the cache's own timeout, so
    /// redis-rs's response timeout is off: one timer per command, not two.
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

    /// Opens a connection of its own (not the shared one), for long pattern walks that must not
    /// queue behind or in front of hot-path commands.
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

/// Runs `future` with a deadline of ours; a late answer is an [`ErrorKind::Timeout`].
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

/// Maps a redis-rs error to the core error, keeping it as the source.
pub(crate) fn map_redis_error(e: RedisError, message: &'static str) -> Error {
    let code = e.code().unwrap_or_default();
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
        redis::ErrorKind::Server(ServerErrorKind::BusyLoading | ServerErrorKind::MasterDown)
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
