//! The store's link to Redis: the shared hot-path connection behind a circuit breaker
//! (`breaker.rs`).
//!
//! While Redis is available, calls clone the shared connection (one server's
//! `ConnectionManager`, or a cluster's `ClusterConnection`). A connection error, or
//! `failure_threshold` timeouts in a row, open the breaker: from then on calls skip Redis at no
//! network cost, and at most one background probe at a time runs when the backoff delay has
//! passed. A probe builds a **new** connection and checks it (`PING`; a cluster's slots read from
//! a seed), so the connection installed is already connected and a half-open socket of the old
//! one is never reused. A probe that Redis answers with an authentication or permission error
//! puts the link in the refused state: calls then fail with that error instead of quietly
//! missing. Errors from commands sent on an older connection are ignored, so stragglers of the
//! outage cannot take a recovered link down again. In a cluster each primary has a breaker of
//! its own as well (`cluster.rs`), so that a dead primary degrades only its slots.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use cache_core::{BreakerState, Error, Recorder, Result};
use tokio::sync::Notify;

use crate::breaker::{Breaker, BreakerSettings, LinkState, is_refusal};
use crate::client::{ConnectionFactory, map_redis_error, with_timeout};
use crate::cluster::ClusterFactory;
use crate::hot::HotConnection;

/// What the link connects to: one server, or a cluster through its seed nodes.
#[derive(Clone)]
pub(crate) enum HotFactory {
    /// One Redis server.
    Single(Box<ConnectionFactory>),
    /// A Redis Cluster.
    Cluster(Arc<ClusterFactory>),
}

impl HotFactory {
    fn redacted_url(&self) -> &str {
        match self {
            Self::Single(factory) => factory.redacted_url(),
            Self::Cluster(factory) => factory.redacted_urls(),
        }
    }

    /// A connection that connects on first use (building it never fails because Redis is down).
    fn lazy(&self) -> Result<HotConnection> {
        match self {
            Self::Single(factory) => factory.manager().map(HotConnection::Single),
            Self::Cluster(factory) => Ok(HotConnection::Cluster(factory.pending())),
        }
    }

    /// A connection that is connected: one server answered `PING`, or the cluster's slots were
    /// read from a seed.
    async fn connected(&self, limit: Duration) -> Result<HotConnection> {
        let connection = match self {
            Self::Single(factory) => {
                let mut manager = factory.manager()?;
                with_timeout(limit, "connect and PING", async {
                    redis::cmd("PING")
                        .query_async::<String>(&mut manager)
                        .await
                        .map_err(|e| map_redis_error(e, "Redis did not accept the connection"))
                })
                .await
                .map(|_| HotConnection::Single(manager))
            }
            Self::Cluster(factory) => factory.connected(limit).await.map(HotConnection::Cluster),
        };
        connection.map_err(|e| e.with_context("url", self.redacted_url().to_string()))
    }
}

struct Installed {
    connection: HotConnection,
    generation: u64,
}

pub(crate) struct L2Link {
    factory: HotFactory,
    installed: ArcSwap<Installed>,
    breaker: Breaker,
    probe_timeout: Duration,
    /// Woken when the breaker closes again, so queued writes are replayed.
    recovered: Arc<Notify>,
}

impl fmt::Debug for L2Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("L2Link")
            .field("url", &self.factory.redacted_url())
            .field("available", &self.breaker.is_available())
            .finish_non_exhaustive()
    }
}

impl L2Link {
    /// Builds the link with a connected connection. Unreachable is fine (the link starts
    /// unavailable); credentials, TLS or configuration errors are returned.
    pub(crate) async fn connect(
        factory: HotFactory,
        settings: BreakerSettings,
        recovered: Arc<Notify>,
        recorder: Option<Arc<dyn Recorder>>,
    ) -> Result<Arc<Self>> {
        let probe = factory.connected(settings.probe_timeout).await;
        let (connection, available, error) = match probe {
            Ok(connection) => (connection, true, None),
            Err(e) if !is_refusal(e.kind()) => (factory.lazy()?, false, Some(e)),
            Err(e) => return Err(e),
        };
        let label = factory.redacted_url().to_string();
        if let Some(e) = &error {
            tracing::warn!(
                url = label.as_str(),
                error = %e,
                "Redis is unreachable at start; serving from L1 and reconnecting in the background"
            );
        }
        Ok(Arc::new(Self {
            breaker: Breaker::new(label, &settings, recorder, available, error.as_ref()),
            factory,
            installed: ArcSwap::from_pointee(Installed {
                connection,
                generation: 0,
            }),
            probe_timeout: settings.probe_timeout,
            recovered,
        }))
    }

    /// Closed, open, or half-open (a probe is running).
    pub(crate) fn breaker_state(&self) -> BreakerState {
        self.breaker.breaker_state()
    }

    /// The shared connection and its generation when Redis is available; `Ok(None)` when it is
    /// unavailable (possibly starting a probe); the refusal when Redis refuses the cache.
    pub(crate) fn connection(self: &Arc<Self>) -> Result<Option<(HotConnection, u64)>> {
        if self.breaker.is_available() {
            let installed = self.installed.load();
            return Ok(Some((installed.connection.clone(), installed.generation)));
        }
        self.maybe_probe();
        if let Some(refusal) = self.breaker.refusal() {
            return Err(refusal);
        }
        Ok(None)
    }

    /// Records a successful command.
    pub(crate) fn observe_success(&self) {
        self.breaker.observe_success();
    }

    /// Records a failed command sent on the connection of `generation`: errors from an older
    /// connection are stragglers of an outage that is over.
    pub(crate) fn observe_failure(&self, error: &Error, generation: u64) {
        if generation == self.installed.load().generation {
            self.breaker.observe_failure(error);
        }
    }

    pub(crate) fn is_available(&self) -> bool {
        self.breaker.is_available()
    }

    pub(crate) fn state(&self) -> LinkState {
        self.breaker.state()
    }

    fn maybe_probe(self: &Arc<Self>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if !self.breaker.begin_probe() {
            return;
        }
        let link = Arc::clone(self);
        runtime.spawn(async move {
            let outcome = match link.factory.connected(link.probe_timeout).await {
                Ok(connection) => {
                    let generation = link.installed.load().generation + 1;
                    link.installed.store(Arc::new(Installed {
                        connection,
                        generation,
                    }));
                    Ok(())
                }
                Err(e) => Err(e),
            };
            if link.breaker.end_probe(outcome) {
                link.recovered.notify_one();
            }
        });
    }
}
