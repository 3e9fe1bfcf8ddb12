//! The store's link to Redis: the shared hot-path connection behind a circuit breaker
//! (`breaker.rs`).
//!
//! While Redis is available, calls take a handle of the shared connection (one server's bare
//! `MultiplexedConnection`, or a cluster's `ClusterConnection`): a spare their thread kept
//! (`spares.rs`), else a clone. A connection error, or
//! `failure_threshold` timeouts in a row, open the breaker: from then on calls skip Redis at no
//! network cost, and at most one background probe at a time runs when the backoff delay has
//! passed. A probe builds a **new** connection and checks it (`PING`; a cluster's slots read from
//! a seed), so the connection installed is already connected and a half-open socket of the old
//! one is never reused. A probe that Redis answers with an authentication or permission error
//! puts the link in the refused state: calls then fail with that error instead of quietly
//! missing. Errors from commands sent on an older connection are ignored, so stragglers of the
//! outage cannot take a recovered link down again. In a cluster each primary has a breaker of
//! its own as well (`cluster.rs`), so that a dead primary degrades only its slots.
//!
//! The link, not redis-rs, replaces a dead connection: a bare multiplexed connection never
//! reconnects (redis-rs's `ConnectionManager` would, at the price of an `ArcSwap` load and a
//! shared future per command, about 5 % of an L2 read at 50 tasks). With the breaker enabled its
//! probe does; with the breaker disabled, a connection error starts one background reconnect
//! (at most one per `min_delay`), while calls keep going to the network as a disabled breaker
//! promises.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use cache_core::{BreakerState, Error, ErrorKind, Recorder, Result};
use tokio::sync::Notify;

use crate::breaker::{Breaker, BreakerSettings, LinkState, is_refusal};
use crate::client::{ConnectionFactory, map_redis_error, with_timeout};
use crate::cluster::ClusterFactory;
use crate::hot::HotConnection;
use crate::spares::Spares;

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

    /// The connection to install while Redis is unreachable: a cluster's connects on first use;
    /// one server's is made by the probe that finds it back.
    fn lazy(&self) -> Option<HotConnection> {
        match self {
            Self::Single(_) => None,
            Self::Cluster(factory) => Some(HotConnection::Cluster(factory.pending())),
        }
    }

    /// A connection that is connected: one server answered `PING`, or the cluster's slots were
    /// read from a seed.
    async fn connected(&self, limit: Duration) -> Result<HotConnection> {
        let connection = match self {
            Self::Single(factory) => {
                with_timeout(limit, "connect and PING", async {
                    let mut connection = factory.dedicated().await?;
                    redis::cmd("PING")
                        .query_async::<String>(&mut connection)
                        .await
                        .map_err(|e| map_redis_error(e, "Redis did not accept the connection"))?;
                    Ok(HotConnection::Single(connection))
                })
                .await
            }
            Self::Cluster(factory) => factory.connected(limit).await.map(HotConnection::Cluster),
        };
        connection.map_err(|e| e.with_context("url", self.redacted_url().to_string()))
    }
}

struct Installed {
    /// `None` until a probe finds one server that was unreachable at start.
    connection: Option<HotConnection>,
    generation: u64,
}

pub(crate) struct L2Link {
    factory: HotFactory,
    installed: ArcSwap<Installed>,
    /// Handles of the installed connection that calls gave back, per thread, and its
    /// generation (read without loading `installed`).
    spares: Spares,
    breaker: Breaker,
    probe_timeout: Duration,
    /// Woken when the breaker closes again, so queued writes are replayed.
    recovered: Arc<Notify>,
    /// With the breaker disabled: the background reconnect after a connection error.
    reconnect: Reconnect,
}

/// Single-flight, rate-limited reconnects of a link whose breaker is disabled.
struct Reconnect {
    running: AtomicBool,
    /// When the next reconnect may start, in milliseconds since `epoch`.
    next_ms: AtomicU64,
    min_delay: Duration,
    epoch: Instant,
}

impl Reconnect {
    fn new(min_delay: Duration) -> Self {
        Self {
            running: AtomicBool::new(false),
            next_ms: AtomicU64::new(0),
            min_delay,
            epoch: Instant::now(),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// True when the caller is to run a reconnect now (then [`end`](Self::end) it).
    fn begin(&self) -> bool {
        if self.now_ms() < self.next_ms.load(Ordering::Relaxed) {
            return false;
        }
        !self.running.swap(true, Ordering::AcqRel)
    }

    fn end(&self) {
        let delay = u64::try_from(self.min_delay.as_millis()).unwrap_or(u64::MAX);
        self.next_ms
            .store(self.now_ms().saturating_add(delay), Ordering::Relaxed);
        self.running.store(false, Ordering::Release);
    }
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
            Ok(connection) => (Some(connection), true, None),
            Err(e) if !is_refusal(e.kind()) => (factory.lazy(), false, Some(e)),
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
            spares: Spares::default(),
            probe_timeout: settings.probe_timeout,
            recovered,
            reconnect: Reconnect::new(settings.min_delay),
        }))
    }

    /// Closed, open, or half-open (a probe is running).
    pub(crate) fn breaker_state(&self) -> BreakerState {
        self.breaker.breaker_state()
    }

    /// A handle of the shared connection and its generation when Redis is available (a spare
    /// this thread kept, else a clone); `Ok(None)` when it is unavailable (possibly starting a
    /// probe); the refusal when Redis refuses the cache. Give the handle back when its command
    /// is over ([`give_back`](Self::give_back)).
    pub(crate) fn connection(self: &Arc<Self>) -> Result<Option<(HotConnection, u64)>> {
        if self.breaker.is_available() {
            let generation = self.spares.generation();
            if let Some(spare) = self.spares.take(generation) {
                return Ok(Some((spare, generation)));
            }
            let installed = self.installed.load();
            if let Some(connection) = &installed.connection {
                return Ok(Some((connection.clone(), installed.generation)));
            }
        }
        self.maybe_probe();
        if let Some(refusal) = self.breaker.refusal() {
            return Err(refusal);
        }
        Ok(None)
    }

    /// Keeps `connection`, a handle that [`connection`](Self::connection) gave with
    /// `generation`, for this thread's next call.
    pub(crate) fn give_back(&self, connection: HotConnection, generation: u64) {
        self.spares.give_back(generation, connection);
    }

    /// Records a successful command.
    pub(crate) fn observe_success(&self) {
        self.breaker.observe_success();
    }

    /// Records a failed command sent on the connection of `generation`: errors from an older
    /// connection are stragglers of an outage that is over.
    pub(crate) fn observe_failure(self: &Arc<Self>, error: &Error, generation: u64) {
        if generation != self.installed.load().generation {
            return;
        }
        self.breaker.observe_failure(error);
        // The breaker, when enabled, replaces the connection by probing; a disabled one never
        // opens, so a dead socket is replaced here (a timeout leaves a live socket alone).
        if !self.breaker.is_enabled()
            && matches!(error.kind(), ErrorKind::Connection | ErrorKind::Unavailable)
        {
            self.maybe_reconnect(generation);
        }
    }

    /// Replaces the connection of `generation` in the background, unless a reconnect runs or
    /// ran less than `min_delay` ago.
    fn maybe_reconnect(self: &Arc<Self>, generation: u64) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if !self.reconnect.begin() {
            return;
        }
        let link = Arc::clone(self);
        runtime.spawn(async move {
            match link.replace(generation).await {
                // Writes that failed meanwhile were queued: replay them now, as after an outage.
                Ok(()) => link.recovered.notify_one(),
                Err(e) => tracing::warn!(
                    url = link.factory.redacted_url(),
                    error = %e,
                    "reconnecting to Redis failed; the next connection error retries"
                ),
            }
            link.reconnect.end();
        });
    }

    /// Connects afresh and installs the new connection as the one after `generation` (what a
    /// probe and a reconnect both do).
    async fn replace(&self, generation: u64) -> Result<()> {
        let connection = self.factory.connected(self.probe_timeout).await?;
        self.install(connection, generation);
        Ok(())
    }

    /// Installs `connection` as the one after `generation`, unless another replaced that one
    /// already.
    fn install(&self, connection: HotConnection, generation: u64) {
        let before = self.installed.rcu(|current| {
            if current.generation == generation {
                Arc::new(Installed {
                    connection: Some(connection.clone()),
                    generation: generation + 1,
                })
            } else {
                Arc::clone(current)
            }
        });
        if before.generation == generation {
            // Spares of the replaced connection would keep it open: they go, and one given back
            // later is refused by its older generation.
            self.spares.install(generation + 1);
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
        let generation = self.spares.generation();
        runtime.spawn(async move {
            let outcome = link.replace(generation).await;
            if link.breaker.end_probe(outcome) {
                link.recovered.notify_one();
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::ConnectTimeouts;
    use cache_security::SecurityConfig;
    use cache_testkit::{RedisServer, ServerConfig};

    async fn link(server: &RedisServer) -> Arc<L2Link> {
        let timeouts = ConnectTimeouts::new(Duration::from_secs(2), Duration::from_secs(1));
        let factory =
            ConnectionFactory::new(&server.url(), &SecurityConfig::default(), timeouts).unwrap();
        let settings = BreakerSettings {
            probe_timeout: Duration::from_secs(2),
            min_delay: Duration::from_millis(10),
            max_delay: Duration::from_secs(1),
            failure_threshold: 3,
            enabled: true,
        };
        L2Link::connect(
            HotFactory::Single(Box::new(factory)),
            settings,
            Arc::new(Notify::new()),
            None,
        )
        .await
        .unwrap()
    }

    async fn ping(connection: &mut HotConnection) -> String {
        redis::cmd("PING").query_async(connection).await.unwrap()
    }

    /// Which server connection a handle sends on.
    async fn client_id(connection: &mut HotConnection) -> i64 {
        redis::cmd("CLIENT")
            .arg("ID")
            .query_async(connection)
            .await
            .unwrap()
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_call_takes_the_handle_the_last_call_gave_back() {
        let server = RedisServer::start(ServerConfig::default());
        let link = link(&server).await;
        for _ in 0..100 {
            let (mut connection, generation) = link.connection().unwrap().unwrap();
            assert_eq!(ping(&mut connection).await, "PONG");
            link.give_back(connection, generation);
        }
        // One thread, one call at a time: each call took the spare the last one gave back.
        assert_eq!(link.spares.len(), 1);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_new_connection_drops_the_spares_of_the_old_one() {
        let server = RedisServer::start(ServerConfig::default());
        let link = link(&server).await;
        let (mut old, old_generation) = link.connection().unwrap().unwrap();
        let old_id = client_id(&mut old).await;
        let (late, _) = link.connection().unwrap().unwrap();
        link.give_back(old, old_generation);
        link.replace(old_generation).await.unwrap();
        assert_eq!(
            link.spares.len(),
            0,
            "installing dropped the old connection's spares"
        );
        // A call that was in flight across the replacement gives its handle back late.
        link.give_back(late, old_generation);
        let (mut connection, generation) = link.connection().unwrap().unwrap();
        assert_eq!(
            generation,
            old_generation + 1,
            "the new connection, not the late spare"
        );
        assert_ne!(
            client_id(&mut connection).await,
            old_id,
            "a handle of the new connection"
        );
        assert_eq!(
            link.spares.len(),
            0,
            "the late spare was dropped on the way"
        );
    }
}
