//! Redis Cluster: the cluster client built from the seed nodes through the one connection
//! factory, and our view of the topology (which primary serves which slot), with a hot-path
//! connection, a circuit breaker and walk and removal pools per primary ([`Node`]).
//!
//! - Our slot table routes: a single-key command or a batch goes straight to its primary's own
//!   connection ([`Node`]), under our timeout. A `MOVED` or `ASK` from there is followed on the
//!   named node's connection (`hot.rs`; [`Topology::connection_to`]), and a `MOVED` makes us
//!   read the topology again.
//! - A dead primary opens its own breaker: reads of its slots miss and writes are queued, while
//!   the other primaries keep serving. Its probe re-reads the topology, so after a replica's
//!   failover the slots move to the new primary and serve again; a hung old primary, which
//!   never answers `MOVED`, is no longer asked.
//! - `SCAN` is per server: walks and pattern removals visit every primary, each with its own
//!   cursor, on that primary's connections.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use cache_core::{BreakerState, Error, ErrorKind, L2Health, NodeHealth, Recorder, Result};
use redis::aio::ConnectionManager;
use tokio::sync::Notify;

use crate::breaker::{BreakerSettings, lock};
use crate::client::with_timeout;
use crate::pattern::WalkPool;
use nodes::parse_nodes;
use slots::SLOTS;

pub(crate) use factory::ClusterFactory;
pub(crate) use node::Node;
pub(crate) use slots::{slot_of, slot_of_parts};

mod factory;
mod node;
mod nodes;
mod slots;

/// A slot without a primary in our table.
const UNASSIGNED: u16 = u16::MAX;

/// How old the table may be when a walk or a pattern removal starts (they must visit every
/// primary, so they read it again unless it is this fresh).
const WALK_TABLE_AGE: Duration = Duration::from_secs(1);

/// Which primary serves each slot.
struct SlotTable {
    owner: Vec<u16>,
    /// Changes whenever a slot range changes hands: a walk that began on another table
    /// restarts, and a pattern removal walks again.
    fingerprint: u64,
    /// A slot is migrating (`CLUSTER NODES` marks it).
    migrating: bool,
    /// The primaries, ordered by the first slot each serves (stable across a failover: the
    /// replica takes over the same slots).
    nodes: Vec<Arc<Node>>,
}

impl SlotTable {
    fn node_of(&self, slot: u16) -> Option<&Arc<Node>> {
        let owner = *self.owner.get(usize::from(slot))?;
        self.nodes.get(usize::from(owner))
    }
}

/// Our view of the cluster's topology.
pub(crate) struct Topology {
    /// Handed to each [`Node`], which reports redirects.
    this: Weak<Topology>,
    factory: Arc<ClusterFactory>,
    table: ArcSwap<SlotTable>,
    settings: BreakerSettings,
    pub(super) recorder: Option<Arc<dyn Recorder>>,
    pub(super) command_timeout: Duration,
    recovered: Arc<Notify>,
    refreshing: tokio::sync::Mutex<()>,
    refreshed_at: Mutex<Option<Instant>>,
    /// When a background refresh last started.
    last_attempt: Mutex<Option<Instant>>,
    /// Walk steps of primaries no longer in the table.
    retired_steps: AtomicU64,
    /// When a failed command last made the table be read again.
    last_error_relearn: Mutex<Option<Instant>>,
    /// Topology reads so far: each starts from another primary.
    reads: AtomicUsize,
    /// Connections to nodes that redirects name but our table does not list (a node that owns
    /// no slot yet, while a resharding moves slots to it).
    redirect_targets: Mutex<HashMap<String, ConnectionManager>>,
}

/// How often failed commands may make the table be read again: a dead primary with no replica
/// to take over fails every command for as long as it is down.
const ERROR_RELEARN_INTERVAL: Duration = Duration::from_secs(1);

/// Redirect targets kept at once (forgotten all together beyond that).
const MAX_REDIRECT_TARGETS: usize = 16;

/// Whether `interval` has passed since `last`, which then becomes now.
fn due(last: &Mutex<Option<Instant>>, interval: Duration) -> bool {
    let mut last = lock(last);
    if last.is_some_and(|at| at.elapsed() < interval) {
        return false;
    }
    *last = Some(Instant::now());
    true
}

impl Topology {
    /// Reads the topology from a seed; an unreachable cluster starts with an empty table, read
    /// again by the first walk or probe.
    pub(crate) async fn discover(
        factory: Arc<ClusterFactory>,
        settings: BreakerSettings,
        recorder: Option<Arc<dyn Recorder>>,
        recovered: Arc<Notify>,
        command_timeout: Duration,
    ) -> Result<Arc<Self>> {
        let topology = Arc::new_cyclic(|this| Self {
            this: this.clone(),
            factory,
            table: ArcSwap::from_pointee(SlotTable {
                owner: vec![UNASSIGNED; SLOTS],
                fingerprint: 0,
                migrating: false,
                nodes: Vec::new(),
            }),
            last_attempt: Mutex::new(None),
            settings,
            recorder,
            command_timeout,
            recovered,
            refreshing: tokio::sync::Mutex::new(()),
            refreshed_at: Mutex::new(None),
            retired_steps: AtomicU64::new(0),
            last_error_relearn: Mutex::new(None),
            reads: AtomicUsize::new(0),
            redirect_targets: Mutex::new(HashMap::new()),
        });
        match topology.refresh().await {
            Ok(()) => {}
            Err(e) if e.is_transient() => {
                tracing::warn!(error = %e, "no seed node of the cluster answered; reading the topology later");
            }
            Err(e) => return Err(e),
        }
        Ok(topology)
    }

    /// The primary serving `redis_key`'s slot, by our table.
    pub(crate) fn node_for(&self, redis_key: &str) -> Option<Arc<Node>> {
        let table = self.table.load();
        table.node_of(slot_of(redis_key.as_bytes())).cloned()
    }

    /// The primary serving `slot`, by our table.
    pub(crate) fn node_of_slot(&self, slot: u16) -> Option<Arc<Node>> {
        self.table.load().node_of(slot).cloned()
    }

    /// The primaries of the current table.
    pub(crate) fn primaries(&self) -> Vec<Arc<Node>> {
        self.table.load().nodes.clone()
    }

    /// The current table's fingerprint (0 while the topology is unknown) and primaries, from
    /// one table.
    pub(crate) fn snapshot(&self) -> (u64, Vec<Arc<Node>>) {
        let table = self.table.load();
        (table.fingerprint, table.nodes.clone())
    }

    /// Reads the topology now, however fresh the table is (a pattern removal's check after its
    /// walk must see what changed during it).
    pub(crate) async fn refresh_now(&self) -> Result<()> {
        *lock(&self.refreshed_at) = None;
        self.refresh().await
    }

    /// Whether a slot is migrating between primaries (keys move while walks run).
    pub(crate) fn migrating(&self) -> bool {
        self.table.load().migrating
    }

    /// Starts a background refresh when the topology is unknown (no seed answered at start),
    /// so that slots get their primaries without waiting for a walk.
    pub(crate) fn learn_if_unknown(self: &Arc<Self>) {
        if self.table.load().nodes.is_empty() {
            self.relearn();
        }
    }

    /// Starts a background refresh, at most once per `min_delay` (a burst of redirects reads
    /// the topology once).
    pub(crate) fn relearn(self: &Arc<Self>) {
        if !due(&self.last_attempt, self.settings.min_delay) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let topology = Arc::clone(self);
        runtime.spawn(async move {
            if let Err(e) = topology.refresh().await {
                tracing::debug!(error = %e, "the cluster's topology could not be read");
            }
        });
    }

    /// [`relearn`](Self::relearn) after a command failed (a dead or hung primary never answers
    /// `MOVED`): at most once per [`ERROR_RELEARN_INTERVAL`].
    pub(crate) fn relearn_after_error(self: &Arc<Self>) {
        if due(&self.last_error_relearn, ERROR_RELEARN_INTERVAL) {
            self.relearn();
        }
    }

    /// A connection to `host:port`, which a redirect named: the primary's own when our table
    /// lists it, else one kept for redirect targets.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when the address does not make a valid connection.
    pub(crate) fn connection_to(&self, host: &str, port: u16) -> Result<ConnectionManager> {
        let address = format!("{host}:{port}");
        if let Some(node) = self
            .table
            .load()
            .nodes
            .iter()
            .find(|n| n.address == address)
        {
            return Ok(node.connection());
        }
        let mut targets = lock(&self.redirect_targets);
        if let Some(conn) = targets.get(&address) {
            return Ok(conn.clone());
        }
        let seed = self.factory.seeds.first().ok_or_else(|| {
            Error::new(ErrorKind::Config, "a cluster needs at least one seed URL")
        })?;
        let conn = seed.for_address(host, port)?.manager()?;
        if targets.len() >= MAX_REDIRECT_TARGETS {
            targets.clear();
        }
        targets.insert(address, conn.clone());
        Ok(conn)
    }

    /// The primaries, with the table read again unless it is very fresh (walks and pattern
    /// removals must visit every one).
    pub(crate) async fn fresh_primaries(&self) -> Result<Vec<Arc<Node>>> {
        if !self.is_fresh() {
            self.refresh().await?;
        }
        let nodes = self.primaries();
        if nodes.is_empty() {
            return Err(Error::new(
                ErrorKind::Unavailable,
                "the cluster's topology is unknown: no node answered CLUSTER NODES",
            ));
        }
        Ok(nodes)
    }

    /// Whether some primary looks available.
    pub(crate) fn any_available(&self) -> bool {
        self.table
            .load()
            .nodes
            .iter()
            .any(|n| n.breaker.is_available())
    }

    /// Whether every primary looks available.
    pub(crate) fn all_available(&self) -> bool {
        let table = self.table.load();
        !table.nodes.is_empty() && table.nodes.iter().all(|n| n.breaker.is_available())
    }

    /// Walk steps run so far, over every primary this store talked to.
    pub(crate) fn walk_steps(&self) -> u64 {
        self.retired_steps.load(Ordering::Relaxed)
            + self
                .table
                .load()
                .nodes
                .iter()
                .map(|n| n.walks.steps())
                .sum::<u64>()
    }

    /// Reads `CLUSTER NODES` from a known primary (available ones first), else from a seed, and
    /// installs the table. Primaries that stay keep their breaker and connections.
    pub(crate) async fn refresh(&self) -> Result<()> {
        let started = Instant::now();
        let _one_at_a_time = self.refreshing.lock().await;
        // Another caller refreshed while this one waited: its table is new enough.
        if lock(&self.refreshed_at).is_some_and(|at| at >= started) {
            return Ok(());
        }
        // Bounded as a whole: each candidate has its own limits, but a partition must not make
        // a caller wait for every candidate in turn.
        let limit = self.command_timeout.saturating_mul(2) + self.settings.probe_timeout;
        // Boxed: every walk, probe and cluster-wide command nests this future.
        with_timeout(
            limit,
            "read the cluster's topology",
            Box::pin(self.read_topology()),
        )
        .await
    }

    fn is_fresh(&self) -> bool {
        lock(&self.refreshed_at).is_some_and(|at| at.elapsed() < WALK_TABLE_AGE)
    }

    async fn read_topology(&self) -> Result<()> {
        let mut candidates = self.primaries();
        // Each read starts from another primary: many instances reading at once spread over
        // them, and a dead primary (its breaker disabled, so it looks available) is not always
        // asked first.
        if !candidates.is_empty() {
            let turn = self.reads.fetch_add(1, Ordering::Relaxed) % candidates.len();
            candidates.rotate_left(turn);
        }
        candidates.sort_by_key(|n| !n.breaker.is_available());
        let mut last_error = None;
        for node in &candidates {
            match with_timeout(
                self.settings.probe_timeout,
                "CLUSTER NODES",
                self.read_slots(&node.walks),
            )
            .await
            {
                Ok(reply) => return self.install(&reply),
                Err(e) => last_error = Some(e),
            }
        }
        for seed in &self.factory.seeds {
            let pool = WalkPool::new(seed.clone(), self.command_timeout, seed.connect_timeout())?;
            match with_timeout(
                self.settings.probe_timeout,
                "CLUSTER NODES",
                self.read_slots(&pool),
            )
            .await
            {
                Ok(reply) => return self.install(&reply),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error
            .unwrap_or_else(|| Error::new(ErrorKind::Unavailable, "the cluster has no seed node")))
    }

    async fn read_slots(&self, pool: &WalkPool) -> Result<String> {
        let mut conn = Some(pool.get().await?);
        pool.step(&mut conn, "CLUSTER NODES", |mut c| async move {
            redis::cmd("CLUSTER")
                .arg("NODES")
                .query_async::<String>(&mut c)
                .await
        })
        .await
    }

    fn install(&self, reply: &str) -> Result<()> {
        let migrating = reply.contains("->-") || reply.contains("-<-");
        let ranges = parse_nodes(reply).ok_or_else(|| {
            Error::new(ErrorKind::Backend, "unexpected CLUSTER NODES reply")
                .with_context("reply", reply.chars().take(2000).collect::<String>())
        })?;
        let current = self.table.load();
        let mut nodes: Vec<Arc<Node>> = Vec::new();
        let mut owner = vec![UNASSIGNED; SLOTS];
        let mut ordered = ranges;
        ordered.sort_by_key(|r| r.start);
        let mut fingerprint = xxhash_rust::xxh3::Xxh3::new();
        for range in ordered {
            fingerprint.update(&range.start.to_be_bytes());
            fingerprint.update(&range.end.to_be_bytes());
            fingerprint.update(range.host.as_bytes());
            fingerprint.update(&range.port.to_be_bytes());
            let address = format!("{}:{}", range.host, range.port);
            let index = match nodes.iter().position(|n| n.address == address) {
                Some(index) => index,
                None => {
                    let node = match current.nodes.iter().find(|n| n.address == address) {
                        Some(node) => Arc::clone(node),
                        None => Arc::new(self.new_node(&range.host, range.port, address)?),
                    };
                    nodes.push(node);
                    nodes.len() - 1
                }
            };
            if let Some(node) = nodes.get(index) {
                node.replicas.store(range.replicas, Ordering::Relaxed);
            }
            let index = u16::try_from(index).unwrap_or(UNASSIGNED);
            if let Some(slots) = owner.get_mut(range.start..=range.end.min(SLOTS - 1)) {
                slots.fill(index);
            }
        }
        for gone in current
            .nodes
            .iter()
            .filter(|old| !nodes.iter().any(|n| Arc::ptr_eq(n, old)))
        {
            self.retired_steps
                .fetch_add(gone.walks.steps(), Ordering::Relaxed);
            tracing::info!(
                node = gone.address.as_str(),
                "a primary left the cluster's topology"
            );
        }
        let moved = current.nodes.len() != nodes.len()
            || current
                .nodes
                .iter()
                .zip(&nodes)
                .any(|(a, b)| !Arc::ptr_eq(a, b));
        // Never 0, the fingerprint of an unknown topology.
        let fingerprint = fingerprint.digest().max(1);
        self.table.store(Arc::new(SlotTable {
            owner,
            fingerprint,
            migrating,
            nodes,
        }));
        *lock(&self.refreshed_at) = Some(Instant::now());
        if moved {
            // Slots that were down may be served by a new primary: let queued writes go.
            self.recovered.notify_one();
        }
        Ok(())
    }

    fn new_node(&self, host: &str, port: u16, address: String) -> Result<Node> {
        let seed = self.factory.seeds.first().ok_or_else(|| {
            Error::new(ErrorKind::Config, "a cluster needs at least one seed URL")
        })?;
        Node::new(seed.for_address(host, port)?, address, &self.settings, self)
    }

    /// Starts a background probe of `node` when one is due: it reads the topology again (a
    /// failover moves the node's slots to its replica) and connects to the node afresh.
    pub(crate) fn maybe_probe(self: &Arc<Self>, node: &Arc<Node>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if !node.breaker.begin_probe() {
            return;
        }
        let (topology, node) = (Arc::clone(self), Arc::clone(node));
        runtime.spawn(async move {
            if let Err(e) = topology.refresh().await {
                tracing::debug!(error = %e, "the cluster's topology could not be read");
            }
            let outcome = node.reconnect(topology.settings.probe_timeout).await;
            if node.breaker.end_probe(outcome) {
                topology.recovered.notify_one();
            }
        });
    }

    /// Each primary's health: a `PING` on its own connection.
    pub(crate) async fn health(&self) -> Vec<NodeHealth> {
        let nodes = self.primaries();
        let checks = nodes.iter().map(|node| async move {
            let started = Instant::now();
            let l2 = match ping(&node.walks, self.command_timeout).await {
                Ok(()) => L2Health::Connected {
                    latency: started.elapsed(),
                },
                Err(e) => {
                    let state = node.breaker.state();
                    L2Health::Unavailable {
                        since: state.unavailable_for,
                        last_error: Some(e.to_string()),
                        next_probe_in: state.next_probe_in,
                    }
                }
            };
            let breaker = node.breaker.breaker_state();
            NodeHealth::new(node.address.clone(), l2, breaker)
        });
        futures_util::future::join_all(checks).await
    }

    /// Outages and probes summed over the primaries.
    pub(crate) fn outages_and_probes(&self) -> (u64, u64, BreakerState) {
        let table = self.table.load();
        let (mut outages, mut probes) = (0, 0);
        let mut worst = BreakerState::Closed;
        for node in &table.nodes {
            let state = node.breaker.state();
            outages += state.outages;
            probes += state.probes;
            if node.breaker.breaker_state() != BreakerState::Closed {
                worst = node.breaker.breaker_state();
            }
        }
        (outages, probes, worst)
    }
}

async fn ping(pool: &WalkPool, limit: Duration) -> Result<()> {
    with_timeout(limit, "PING", async {
        let mut conn = Some(pool.get().await?);
        pool.step(&mut conn, "PING", |mut c| async move {
            redis::cmd("PING").query_async::<String>(&mut c).await
        })
        .await
        .map(|_| ())
    })
    .await
}
