//! Redis Cluster: the cluster client built from the seed nodes through the one connection
//! factory, and our view of the topology (which primary serves which slot), with a circuit
//! breaker and a walk pool per primary.
//!
//! - Single-key commands go through redis-rs's `ClusterConnection`, which routes them to their
//!   slot's primary and follows `MOVED` / `ASK`; our timeout still bounds every call.
//! - Our slot table only decides whose breaker a command feeds and which primary a batch, a walk
//!   or a pattern removal talks to. A dead primary opens its own breaker: reads of its slots
//!   miss and writes are queued, while the other primaries keep serving. Its probe re-reads the
//!   topology, so after a replica's failover the slots move to the new primary and serve again.
//! - `SCAN` is per server: walks and pattern removals visit every primary, each with its own
//!   cursor, on that primary's connections.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use cache_core::{BreakerState, Error, ErrorKind, L2Health, NodeHealth, Recorder, Result};
use cache_security::SecurityConfig;
use redis::cluster::{ClusterClient, ClusterClientBuilder, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use tokio::sync::Notify;

use crate::breaker::{Breaker, BreakerSettings};
use crate::client::{ConnectTimeouts, ConnectionFactory, map_redis_error, with_timeout};
use crate::pattern::WalkPool;
use nodes::parse_nodes;

mod nodes;

/// Hash slots of a Redis Cluster.
const SLOTS: usize = 16_384;

/// A slot without a primary in our table.
const UNASSIGNED: u16 = u16::MAX;

/// How old the table may be when a walk or a pattern removal starts (they must visit every
/// primary, so they read it again unless it is this fresh).
const WALK_TABLE_AGE: Duration = Duration::from_secs(1);

/// The hash slot of `key`, as Redis computes it: CRC16 (XMODEM) of the key, or of its hash tag
/// (the bytes between the first `{` and the next `}`, when not empty), modulo 16,384.
pub(crate) fn slot_of(key: &[u8]) -> u16 {
    let tagged = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            rest.iter()
                .position(|&b| b == b'}')
                .map(|close| &rest[..close])
        })
        .filter(|tag| !tag.is_empty());
    let hashed = tagged.unwrap_or(key);
    #[allow(
        clippy::cast_possible_truncation,
        reason = "SLOTS is 16,384: the remainder fits in u16"
    )]
    let slot = (crc16::State::<crc16::XMODEM>::calculate(hashed) as usize % SLOTS) as u16;
    slot
}

/// [`slot_of`] the key `{prefix}{key}` without joining them: `prefix` (a namespace) holds no
/// braces, so a hash tag can only be in `key`.
pub(crate) fn slot_of_parts(prefix: &[u8], key: &[u8]) -> u16 {
    if key.contains(&b'{') {
        return slot_of(&[prefix, key].concat());
    }
    let mut crc = crc16::State::<crc16::XMODEM>::new();
    crc.update(prefix);
    crc.update(key);
    #[allow(
        clippy::cast_possible_truncation,
        reason = "SLOTS is 16,384: the remainder fits in u16"
    )]
    let slot = (crc.get() as usize % SLOTS) as u16;
    slot
}

/// Builds cluster connections from the seed nodes, with the cache's security settings and
/// timeouts (the same factory as one server's, per seed).
pub(crate) struct ClusterFactory {
    seeds: Vec<ConnectionFactory>,
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

/// One primary: its address, breaker and walk connections.
pub(crate) struct Node {
    /// `host:port`, as the cluster announces it.
    pub(crate) address: String,
    pub(crate) host: String,
    pub(crate) port: u16,
    /// Replicas the cluster lists for its slots: removals wait for one of them (`WAIT 1`).
    pub(crate) replicas: AtomicUsize,
    pub(crate) breaker: Breaker,
    pub(crate) walks: Arc<WalkPool>,
    /// Connections of its own for single-key removals and their `WAIT` (which holds its
    /// connection until a replica answers): a burst of deletes never starves walks, probes or
    /// topology reads.
    pub(crate) removals: WalkPool,
}

/// What [`Topology::slot_state`] finds.
pub(crate) enum SlotState {
    /// No primary known for the slot yet.
    Unknown,
    /// Its primary looks available; `at` is its address once commands must be sent there by our
    /// table rather than redis-rs's map.
    Up { at: Option<(String, u16)> },
    /// Its primary's breaker is open.
    Down(Arc<Node>),
}

/// Which primary serves each slot.
struct SlotTable {
    owner: Vec<u16>,
    /// Changes whenever a slot range changes hands: a walk that began on another table
    /// restarts, and a pattern removal walks again.
    fingerprint: u64,
    /// A slot is migrating (`CLUSTER NODES` marks it).
    migrating: bool,
    /// Slots changed owners since the store started: redis-rs's map may still send them to a
    /// primary that hangs (a hung node never answers `MOVED`), so commands go to the address
    /// our table names. Until then, redis-rs routes (no address to copy per command).
    reroute: bool,
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
    factory: Arc<ClusterFactory>,
    table: ArcSwap<SlotTable>,
    settings: BreakerSettings,
    recorder: Option<Arc<dyn Recorder>>,
    command_timeout: Duration,
    recovered: Arc<Notify>,
    refreshing: tokio::sync::Mutex<()>,
    refreshed_at: Mutex<Option<Instant>>,
    /// When a background refresh of an unknown topology last started.
    last_attempt: Mutex<Option<Instant>>,
    /// Walk steps of primaries no longer in the table.
    retired_steps: AtomicU64,
}

impl Node {
    /// Whether removals on this primary wait for a replica to hold them.
    pub(crate) fn has_replicas(&self) -> bool {
        self.replicas.load(Ordering::Relaxed) > 0
    }
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
        let topology = Arc::new(Self {
            factory,
            table: ArcSwap::from_pointee(SlotTable {
                owner: vec![UNASSIGNED; SLOTS],
                fingerprint: 0,
                migrating: false,
                reroute: false,
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

    /// Whether `slot`'s primary looks available, without taking a reference to it (the hot
    /// path: no reference count shared between cores is touched).
    pub(crate) fn slot_state(&self, slot: u16) -> SlotState {
        let table = self.table.load();
        match table.node_of(slot) {
            None => SlotState::Unknown,
            Some(node) if node.breaker.is_available() => SlotState::Up {
                at: table.reroute.then(|| (node.host.clone(), node.port)),
            },
            Some(node) => SlotState::Down(Arc::clone(node)),
        }
    }

    /// Feeds the outcome of a command on `slot` to its primary's breaker (as our table has it
    /// now); false when no primary is known for it.
    pub(crate) fn observe_slot(&self, slot: u16, outcome: Result<(), &Error>) -> bool {
        let table = self.table.load();
        let Some(node) = table.node_of(slot) else {
            return false;
        };
        match outcome {
            Ok(()) => node.breaker.observe_success(),
            Err(e) => node.breaker.observe_failure(e),
        }
        true
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
    /// at most once per `min_delay`, so that slots get their primaries without waiting for a walk.
    pub(crate) fn learn_if_unknown(self: &Arc<Self>) {
        if !self.table.load().nodes.is_empty() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        {
            let mut last = lock(&self.last_attempt);
            if last.is_some_and(|at| at.elapsed() < self.settings.min_delay) {
                return;
            }
            *last = Some(Instant::now());
        }
        let topology = Arc::clone(self);
        runtime.spawn(async move {
            if let Err(e) = topology.refresh().await {
                tracing::debug!(error = %e, "the cluster's topology is still unknown");
            }
        });
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
        // Ownership changed once the table was known: from then on, our table routes.
        let reroute =
            current.reroute || (current.fingerprint != 0 && current.fingerprint != fingerprint);
        self.table.store(Arc::new(SlotTable {
            owner,
            fingerprint,
            migrating,
            reroute,
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
        let factory = seed.for_address(host, port)?;
        let connect_timeout = factory.connect_timeout();
        Ok(Node {
            breaker: Breaker::new(
                address.clone(),
                &self.settings,
                self.recorder.clone(),
                true,
                None,
            ),
            removals: WalkPool::new(factory.clone(), self.command_timeout, connect_timeout)?,
            walks: Arc::new(WalkPool::new(
                factory,
                self.command_timeout,
                connect_timeout,
            )?),
            address,
            host: host.to_string(),
            port,
            replicas: AtomicUsize::new(0),
        })
    }

    /// Starts a background probe of `node` when one is due: it reads the topology again (a
    /// failover moves the node's slots to its replica) and pings the node.
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
            let outcome = ping(&node.walks, topology.settings.probe_timeout).await;
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

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_follow_redis() {
        // Values from `CLUSTER KEYSLOT`.
        assert_eq!(slot_of(b"foo"), 12_182);
        assert_eq!(slot_of(b"bar"), 5_061);
        assert_eq!(slot_of(b"{user1000}.following"), slot_of(b"user1000"));
        assert_eq!(slot_of(b"foo{}{bar}"), slot_of(b"foo{}{bar}"));
        assert_ne!(
            slot_of(b"foo{}{bar}"),
            slot_of(b"bar"),
            "an empty tag is no tag"
        );
        assert_eq!(slot_of(b"foo{{bar}}zap"), slot_of(b"{bar"));
        assert_eq!(slot_of(b""), 0);
        for (prefix, key) in [("ns:", "k1"), ("aicache:v1:", "qa:{x}y"), ("p:", "")] {
            let joined = format!("{prefix}{key}");
            assert_eq!(
                slot_of_parts(prefix.as_bytes(), key.as_bytes()),
                slot_of(joined.as_bytes()),
                "{joined}"
            );
        }
    }
}
