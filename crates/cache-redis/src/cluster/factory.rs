//! [`ClusterFactory`]: cluster connections built from the seed nodes through the one
//! connection factory.

use std::time::Duration;

use cache_core::{Error, ErrorKind, Result};
use cache_security::SecurityConfig;
use redis::cluster::{ClusterClient, ClusterClientBuilder, ClusterConfig};
use redis::cluster_async::ClusterConnection;

use crate::client::{ConnectTimeouts, ConnectionFactory, map_redis_error, with_timeout};

/// Builds cluster connections from the seed nodes, with the cache's security settings and
/// timeouts (the same factory as one server's, per seed).
pub(crate) struct ClusterFactory {
    pub(super) seeds: Vec<ConnectionFactory>,
    client: ClusterClient,
    config: ClusterConfig,
    redacted_urls: String,
}

impl ClusterFactory {
    /// A factory for the cluster whose seed nodes are `urls`.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] for no seed, an invalid URL or security setting, or seeds that
    /// disagree on credentials or TLS.
    pub(crate) fn new(
        urls: &[String],
        security: &SecurityConfig,
        timeouts: ConnectTimeouts,
        command_timeout: Duration,
    ) -> Result<Self> {
        let config_error = |message: &'static str, value: String| {
            Error::new(ErrorKind::Config, message)
                .with_context("field", "redis_cluster_urls")
                .with_context("value", value)
        };
        let seeds = urls
            .iter()
            .map(|url| ConnectionFactory::new(url, security, timeouts))
            .collect::<Result<Vec<_>>>()?;
        let redacted_urls = seeds
            .iter()
            .map(ConnectionFactory::redacted_url)
            .collect::<Vec<_>>()
            .join(",");
        let Some(first) = seeds.first() else {
            return Err(config_error(
                "a cluster needs at least one seed URL",
                "[]".into(),
            ));
        };
        // Each node's responses are bounded inside redis-rs too: a hung node must fail redis-rs's
        // own requests (its slot refresh included), or redis-rs would keep routing a failed-over
        // slot to it. Our timeout still bounds every whole call.
        let mut builder = ClusterClientBuilder::new(seeds.iter().map(|s| s.info().clone()))
            .connection_timeout(timeouts.connect)
            .response_timeout(command_timeout)
            .overall_response_timeout(None)
            .retries(2)
            .min_retry_wait(10)
            .max_retry_wait(
                u64::try_from(first.reconnect_max_delay().as_millis()).unwrap_or(u64::MAX),
            );
        if let Some(certificates) = first.certificates() {
            builder = builder.certs(certificates.to_redis());
        }
        let client = builder.build().map_err(|e| {
            config_error("invalid cluster settings", redacted_urls.clone()).with_source(e)
        })?;
        let config = ClusterConfig::new()
            .set_connection_timeout(first.connect_timeout())
            .set_response_timeout(command_timeout);
        Ok(Self {
            seeds,
            client,
            config,
            redacted_urls,
        })
    }

    /// The seeds' URLs, passwords replaced by `***`, comma-separated.
    pub(crate) fn redacted_urls(&self) -> &str {
        &self.redacted_urls
    }

    /// A connection that connects in the background.
    pub(crate) fn pending(&self) -> ClusterConnection {
        self.client
            .get_pending_async_connection_with_config(self.config.clone())
    }

    /// A connection that has read the slots from a seed, within `limit`.
    pub(crate) async fn connected(&self, limit: Duration) -> Result<ClusterConnection> {
        with_timeout(limit, "connect to the cluster", async {
            self.client
                .get_async_connection_with_config(self.config.clone())
                .await
                .map_err(|e| map_redis_error(e, "no seed node of the cluster answered"))
        })
        .await
    }
}
