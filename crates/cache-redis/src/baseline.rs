//! [`RawBaseline`]: plain redis-rs commands on one multiplexed connection, the yardstick every
//! benchmark row is divided by. It lives here because this crate is the only one that speaks to
//! Redis; it is for measurement, not for caching (no frames, no breaker, no replay).

use std::time::Duration;

use bytes::Bytes;
use cache_core::Result;
use redis::aio::MultiplexedConnection;

use crate::client::{ConnectTimeouts, ConnectionFactory, map_redis_error, with_timeout};
use crate::config::RedisCacheConfig;

/// Raw `GET` / `SET PX` / `MGET` / `UNLINK` on one multiplexed connection, each under the
/// configuration's command timeout, through the same connection factory (AUTH, ACL user, TLS)
/// as the caches.
///
/// ```no_run
/// # async fn demo() -> cache_core::Result<()> {
/// use cache_redis::{RawBaseline, RedisCacheConfig};
///
/// let raw = RawBaseline::connect(&RedisCacheConfig::default().with_redis_url("redis://127.0.0.1:6379")).await?;
/// raw.set("bench:k", b"value", 60_000).await?;
/// assert_eq!(raw.get("bench:k").await?.as_deref(), Some(&b"value"[..]));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RawBaseline {
    conn: MultiplexedConnection,
    timeout: Duration,
}

impl std::fmt::Debug for RawBaseline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawBaseline").finish_non_exhaustive()
    }
}

impl RawBaseline {
    /// Connects to `config.redis_url` with its security settings and timeouts.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](cache_core::ErrorKind::Config) without a URL; connection,
    /// authentication and TLS errors.
    pub async fn connect(config: &RedisCacheConfig) -> Result<Self> {
        let url = config.redis_url.as_deref().ok_or_else(|| {
            cache_core::Error::new(
                cache_core::ErrorKind::Config,
                "a baseline needs a Redis URL",
            )
            .with_context("field", "redis_url")
        })?;
        let timeouts = ConnectTimeouts::new(config.connect_timeout, config.reconnect_max_delay);
        let factory = ConnectionFactory::new(url, &config.security, timeouts)?;
        Ok(Self {
            conn: factory.dedicated().await?,
            timeout: config.command_timeout,
        })
    }

    async fn run<T: redis::FromRedisValue>(
        &self,
        what: &'static str,
        cmd: redis::Cmd,
    ) -> Result<T> {
        let mut conn = self.conn.clone();
        with_timeout(self.timeout, what, async move {
            cmd.query_async::<T>(&mut conn)
                .await
                .map_err(|e| map_redis_error(e, "baseline command failed"))
        })
        .await
    }

    /// `GET key`.
    ///
    /// # Errors
    /// Redis errors and timeouts.
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(key);
        Ok(self
            .run::<Option<Vec<u8>>>("GET", cmd)
            .await?
            .map(Bytes::from))
    }

    /// `SET key value PX ttl_ms`.
    ///
    /// # Errors
    /// Redis errors and timeouts.
    pub async fn set(&self, key: &str, value: &[u8], ttl_ms: u64) -> Result<()> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(key).arg(value).arg("PX").arg(ttl_ms.max(1));
        self.run::<()>("SET", cmd).await
    }

    /// `MGET keys…`.
    ///
    /// # Errors
    /// Redis errors and timeouts.
    pub async fn mget(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>> {
        let mut cmd = redis::cmd("MGET");
        cmd.arg(keys);
        let found = self.run::<Vec<Option<Vec<u8>>>>("MGET", cmd).await?;
        Ok(found.into_iter().map(|v| v.map(Bytes::from)).collect())
    }

    /// `UNLINK key`; true when it existed.
    ///
    /// # Errors
    /// Redis errors and timeouts.
    pub async fn unlink(&self, key: &str) -> Result<bool> {
        let mut cmd = redis::cmd("UNLINK");
        cmd.arg(key);
        Ok(self.run::<i64>("UNLINK", cmd).await? > 0)
    }
}
