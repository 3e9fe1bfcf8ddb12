//! [`Node`]: one primary of the cluster, with its breaker, its hot-path connection and its walk
//! and removal connections.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use cache_core::{Error, ErrorKind, Result};

use redis::aio::ConnectionManager;

use super::Topology;
use crate::breaker::{Breaker, BreakerSettings};
use crate::client::{ConnectionFactory, map_redis_error, with_timeout};
use crate::pattern::WalkPool;

/// One primary: its address, breaker and connections.
pub(crate) struct Node {
    /// `host:port`, as the cluster announces it.
    pub(crate) address: String,
    /// Replicas the cluster lists for its slots: removals wait for one of them (`WAIT 1`).
    pub(crate) replicas: AtomicUsize,
    pub(crate) breaker: Breaker,
    pub(crate) walks: Arc<WalkPool>,
    /// Connections of its own for single-key removals and their `WAIT` (which holds its
    /// connection until a replica answers): a burst of deletes never starves walks, probes or
    /// topology reads.
    pub(crate) removals: WalkPool,
    /// The hot-path connection: single-key commands and batches of this primary's slots are
    /// sent straight here (no hop through redis-rs's cluster task). A probe replaces it, so a
    /// half-open socket from before an outage is never reused.
    direct: ArcSwap<ConnectionManager>,
    factory: ConnectionFactory,
    /// Told when this primary answers `MOVED`: our table is behind the cluster's.
    topology: Weak<Topology>,
}

impl Node {
    pub(super) fn new(
        factory: ConnectionFactory,
        address: String,
        settings: &BreakerSettings,
        topology: &Topology,
    ) -> Result<Self> {
        let connect_timeout = factory.connect_timeout();
        let command_timeout = topology.command_timeout;
        Ok(Self {
            breaker: Breaker::new(
                address.clone(),
                settings,
                topology.recorder.clone(),
                true,
                None,
            ),
            removals: WalkPool::new(factory.clone(), command_timeout, connect_timeout)?,
            walks: Arc::new(WalkPool::new(
                factory.clone(),
                command_timeout,
                connect_timeout,
            )?),
            direct: ArcSwap::from_pointee(factory.manager()?),
            factory,
            address,
            replicas: AtomicUsize::new(0),
            topology: topology.this.clone(),
        })
    }

    /// Whether removals on this primary wait for a replica to hold them.
    pub(crate) fn has_replicas(&self) -> bool {
        self.replicas.load(Ordering::Relaxed) > 0
    }

    /// A handle to the hot-path connection.
    pub(crate) fn connection(&self) -> ConnectionManager {
        ConnectionManager::clone(&self.direct.load())
    }

    /// This primary redirected a command. A `MOVED` means the slot has a new owner: read the
    /// topology again in the background. An `ASK` is a slot still migrating, which the table
    /// cannot show yet.
    pub(crate) fn redirected(&self, asking: bool) {
        if !asking {
            self.relearn();
        }
    }

    /// Reads the topology again in the background (rate-limited by the topology).
    pub(crate) fn relearn(&self) {
        if let Some(topology) = self.topology.upgrade() {
            topology.relearn();
        }
    }

    /// A command on this primary failed: reads the topology again, at most once a second (a
    /// dead or hung primary never answers `MOVED`, and its breaker may be disabled).
    pub(crate) fn relearn_after_error(&self) {
        if let Some(topology) = self.topology.upgrade() {
            topology.relearn_after_error();
        }
    }

    /// A connection to the node a redirect from this primary named.
    ///
    /// # Errors
    /// [`ErrorKind::Unavailable`] once the store is gone; as [`Topology::connection_to`].
    pub(crate) fn connection_to(&self, host: &str, port: u16) -> Result<ConnectionManager> {
        self.topology
            .upgrade()
            .ok_or_else(|| Error::new(ErrorKind::Unavailable, "the cluster store is closed"))?
            .connection_to(host, port)
    }

    /// Builds a new hot-path connection and checks it with `PING` within `limit`; installed
    /// only once it answered.
    pub(super) async fn reconnect(&self, limit: Duration) -> Result<()> {
        let mut fresh = self.factory.manager()?;
        with_timeout(limit, "PING", async {
            redis::cmd("PING")
                .query_async::<String>(&mut fresh)
                .await
                .map_err(|e| map_redis_error(e, "the primary did not answer PING"))
        })
        .await?;
        self.direct.store(Arc::new(fresh));
        Ok(())
    }
}
