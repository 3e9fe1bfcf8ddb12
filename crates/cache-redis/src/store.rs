//! [`RedisStore`]: one Redis server, or a Redis Cluster, as a [`FrameStore`].
//!
//! Hot-path commands share multiplexed connections (one server's, or each cluster primary's)
//! behind circuit breakers (`link.rs`, `breaker.rs`), each under our timeout; walks run on pooled connections of their own (`pattern.rs`); what Redis
//! cannot take while it is unavailable waits in the replay queue (`replay.rs`).

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use std::time::{Duration, Instant};

use bytes::Bytes;
use cache_core::frame::{Stamp, stamp};
use cache_core::{
    CacheKey, Error, ErrorKind, FrameStore, HealthReport, KeyPattern, L2Health, Namespace,
    Recorder, RedisMemory, RemovedSink, Result, ShutdownReport, StoreInfo, StoreStats, StoreWrite,
    Ttl, WalkCursor, WalkMode, WalkPage, escape_glob, unix_millis,
};
use tokio::sync::Notify;

use crate::breaker::BreakerSettings;
use crate::client::{ConnectTimeouts, ConnectionFactory, map_redis_error, with_timeout};
use crate::cluster::{ClusterFactory, Node, Topology, slot_of, slot_of_parts};
use crate::config::RedisCacheConfig;
use crate::hot::{Direct, HotConnection};

use crate::link::{HotFactory, L2Link};
use crate::pattern::{WalkPool, read_frames, scan_page, without_tombstones};
use crate::removal::{
    RECORD_PATTERN, RECORDED_PATTERNS, is_removed_script, patterns_key, remaining_ttl_script,
    remove_script, remove_unless_newer_script,
};
use crate::replay::{Pending, ReplayQueue, SET_IF_NEWER, flush, queue_item};

/// Deletes a key only if it still holds the bytes that were read, so deleting an undecodable value
/// never removes a valid one written meanwhile by another instance.
const DELETE_IF_UNCHANGED: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('UNLINK', KEYS[1])
end
return 0
";

#[derive(Default)]
struct Counters {
    errors: AtomicU64,
    skipped: AtomicU64,
    /// Requests sent: a command, a script call, a pipeline or a walk step each count one
    /// (bumped by every command: striped, no cache line shared between cores).
    requests: cache_core::StripedCounter,
}

pub(crate) struct StoreInner {
    namespace: String,
    prefix: String,
    scan_prefix: String,
    link: Arc<L2Link>,
    servers: Servers,
    command_timeout: Duration,
    reconnect_delays: (Duration, Duration),
    scan_count: usize,
    max_frame_size: usize,
    replay: ReplayQueue,
    counters: Counters,
    set_if_newer: redis::Script,
    remove: redis::Script,
    remove_if_not_newer: redis::Script,
    remaining_ttl: redis::Script,
    record_pattern: redis::Script,
    recorded_patterns: redis::Script,
    is_removed: redis::Script,
    delete_if_unchanged: redis::Script,
    restore_batch: redis::Script,
    /// How long a removal is remembered (tombstones, recorded patterns), and the oldest a queued
    /// write may be when it is replayed.
    horizon: Duration,
    /// The auxiliary key of the namespace's recent pattern removals.
    patterns_key: Option<String>,
}

impl Drop for StoreInner {
    fn drop(&mut self) {
        // Lets the replayer task see that the store is gone and end.
        self.replay.wake.notify_one();
    }
}

/// One Redis server, or a Redis Cluster, as the shared tier: the [`FrameStore`] behind [`GenericRedisCache`] and the AI
/// cache. Cloning is cheap and shares the connection, breaker and replay queue.
///
/// - Every command runs under `command_timeout`; connection errors, or `breaker_failure_threshold`
///   timeouts in a row, open the circuit breaker, and while it is open calls skip Redis at no
///   network cost (reads miss, writes and removals are queued for replay).
/// - Replay never overwrites a newer value written meanwhile by another instance, and a replayed
///   removal never removes a value written after it was issued.
/// - Wrong credentials, a denied permission or a TLS failure are errors, never degraded mode.
///
/// [`GenericRedisCache`]: crate::GenericRedisCache
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<StoreInner>,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("namespace", &self.inner.namespace)
            .field("link", &self.inner.link)
            .finish_non_exhaustive()
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

fn unavailable() -> Error {
    Error::new(ErrorKind::Unavailable, "Redis is unavailable")
}

impl RedisStore {
    /// Connects to the Redis of `config.redis_url`, or to the Redis Cluster of
    /// `config.redis_cluster_urls`, under the namespace `config.key_prefix`, reporting breaker
    /// transitions to `recorder`.
    ///
    /// Redis being unreachable is not an error: the store starts with its breaker open and
    /// reconnects in the background.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] without a URL or with an invalid one; [`ErrorKind::Auth`] or
    /// [`ErrorKind::Tls`] when Redis refuses the connection.
    pub async fn connect(
        config: &RedisCacheConfig,
        recorder: Option<Arc<dyn Recorder>>,
    ) -> Result<Self> {
        config.validate().into_result()?;
        let timeouts = ConnectTimeouts::new(config.connect_timeout, config.reconnect_max_delay);
        let wake = Arc::new(Notify::new());
        let settings = BreakerSettings {
            probe_timeout: config.connect_timeout + config.command_timeout,
            min_delay: config.reconnect_min_delay,
            max_delay: config.reconnect_max_delay,
            failure_threshold: config.breaker_failure_threshold,
            enabled: config.breaker_enabled,
        };
        let (factory, servers) = if config.redis_cluster_urls.is_empty() {
            let url = config.redis_url.as_deref().ok_or_else(|| {
                Error::new(ErrorKind::Config, "a Redis store needs a URL")
                    .with_context("field", "redis_url")
                    .with_context("value", "unset")
            })?;
            let factory = ConnectionFactory::new(url, &config.security, timeouts)?;
            let walks = WalkPool::new(
                factory.clone(),
                config.command_timeout,
                config.connect_timeout,
            )?;
            (
                HotFactory::Single(Box::new(factory)),
                Servers::Single {
                    walks: Arc::new(walks),
                },
            )
        } else {
            let factory = Arc::new(ClusterFactory::new(
                &config.redis_cluster_urls,
                &config.security,
                timeouts,
                config.command_timeout,
            )?);
            // Boxed: the cluster's start-up future is large, and callers nest this one deeply.
            let topology = Box::pin(Topology::discover(
                Arc::clone(&factory),
                settings,
                recorder.clone(),
                Arc::clone(&wake),
                config.command_timeout,
            ))
            .await?;
            (HotFactory::Cluster(factory), Servers::Cluster(topology))
        };
        let link = L2Link::connect(factory, settings, Arc::clone(&wake), recorder).await?;
        let prefix = format!("{}:", config.key_prefix);
        Ok(Self {
            inner: Arc::new(StoreInner {
                namespace: config.key_prefix.clone(),
                scan_prefix: escape_glob(&prefix),
                prefix,
                link,
                servers,
                command_timeout: config.command_timeout,
                reconnect_delays: (config.reconnect_min_delay, config.reconnect_max_delay),
                scan_count: config.scan_count.max(1),
                max_frame_size: config.max_value_size.saturating_add(1024),
                replay: ReplayQueue::new(
                    config.replay_queue_capacity,
                    config.replay_queue_max_bytes,
                    wake,
                ),
                counters: Counters::default(),
                set_if_newer: redis::Script::new(SET_IF_NEWER),
                remove: redis::Script::new(&remove_script()),
                remove_if_not_newer: redis::Script::new(&remove_unless_newer_script()),
                remaining_ttl: redis::Script::new(&remaining_ttl_script()),
                record_pattern: redis::Script::new(RECORD_PATTERN),
                is_removed: redis::Script::new(&is_removed_script()),
                recorded_patterns: redis::Script::new(RECORDED_PATTERNS),
                horizon: config.replay_horizon,
                patterns_key: patterns_key(&config.key_prefix),
                delete_if_unchanged: redis::Script::new(DELETE_IF_UNCHANGED),
                restore_batch: redis::Script::new(restore::RESTORE_BATCH),
            }),
        })
    }

    /// The Redis key of `key`: `{namespace}:{key}`.
    pub fn redis_key(&self, key: &CacheKey) -> String {
        self.inner.redis_key(key)
    }
}

impl StoreInner {
    fn redis_key(&self, key: &CacheKey) -> String {
        let mut out = String::with_capacity(self.prefix.len() + key.len());
        out.push_str(&self.prefix);
        out.push_str(key.as_str());
        out
    }

    /// The shared connection; `Ok(None)` (counted) when Redis is unavailable; the refusal when
    /// Redis refuses the cache.
    fn connection(self: &Arc<Self>) -> Result<Option<(HotConnection, u64)>> {
        let found = self.link.connection()?;
        if found.is_none() {
            bump(&self.counters.skipped);
        }
        Ok(found)
    }

    /// Whose breaker a command on the Redis key `name` consults: the link's on one server, its
    /// slot's primary's in a cluster.
    fn route(&self, name: &str) -> Target {
        match &self.servers {
            Servers::Single { .. } => Target::Link,
            Servers::Cluster(_) => Target::Slot(slot_of(name.as_bytes())),
        }
    }

    /// [`route`](Self::route) for a key given as prefix and key.
    fn route_prefixed(&self, name: &PrefixedKey<'_>) -> Target {
        match &self.servers {
            Servers::Single { .. } => Target::Link,
            Servers::Cluster(_) => {
                Target::Slot(slot_of_parts(name.0.as_bytes(), name.1.as_bytes()))
            }
        }
    }

    /// The primary serving the Redis key `name` in a cluster (`None` for one server, or while
    /// the topology is unknown: then a background refresh learns it).
    fn primary_of(&self, name: &str) -> Option<Arc<Node>> {
        match &self.servers {
            Servers::Single { .. } => None,
            Servers::Cluster(topology) => {
                let node = topology.node_for(name);
                if node.is_none() {
                    topology.learn_if_unknown();
                }
                node
            }
        }
    }

    /// Runs `command` on the shared connection; `Err(Unavailable)` when the breaker is open.
    async fn hot<T>(
        self: &Arc<Self>,
        what: &'static str,
        command: impl AsyncFnOnce(&mut HotConnection) -> redis::RedisResult<T>,
    ) -> Result<T> {
        self.hot_at(Target::Link, what, command).await
    }

    /// Runs `command` on the shared connection under our timeout; `target` names the breaker
    /// that decides whether to try and learns the outcome (a cluster key's primary, not the
    /// link). `Err(Unavailable)` when that breaker is open. In a cluster, `MOVED` and `ASK` are
    /// followed.
    async fn hot_at<T>(
        self: &Arc<Self>,
        target: Target,
        what: &'static str,
        command: impl AsyncFnOnce(&mut HotConnection) -> redis::RedisResult<T>,
    ) -> Result<T> {
        self.hot_call(target, what, true, command).await
    }

    /// [`hot_at`](Self::hot_at), or, with `follow` false, for a command that must run on the
    /// primary our table names: a redirect fails the call (`Unavailable`) and re-reads the
    /// topology.
    async fn hot_call<T>(
        self: &Arc<Self>,
        target: Target,
        what: &'static str,
        follow: bool,
        command: impl AsyncFnOnce(&mut HotConnection) -> redis::RedisResult<T>,
    ) -> Result<T> {
        let Some((shared, generation)) = self.connection()? else {
            return Err(unavailable());
        };
        // In a cluster, the primary our table names for the command: its breaker decides and
        // learns, and the command goes straight to its connection.
        let primary = match (target, &self.servers) {
            (Target::Slot(slot), Servers::Cluster(topology)) => {
                let node = topology.node_of_slot(slot);
                if node.is_none() {
                    topology.learn_if_unknown();
                }
                node.map(|node| (topology, node))
            }
            (Target::Node(node), Servers::Cluster(topology)) => Some((topology, node)),
            _ => None,
        };
        if let Some((topology, node)) = primary {
            // This call goes to the primary's own connection: the next call takes the shared one.
            self.link.give_back(shared, generation);
            if !node.breaker.is_available() {
                topology.maybe_probe(&node);
                bump(&self.counters.skipped);
                return Err(unavailable());
            }
            let redirected = Arc::new(AtomicBool::new(false));
            let mut direct = HotConnection::Direct(Direct::new(
                Arc::clone(&node),
                follow,
                Arc::clone(&redirected),
            ));
            let result = self.timed(what, command(&mut direct)).await;
            let redirected = redirected.load(Ordering::Relaxed);
            return self.observe(result, Some(&node), redirected, generation);
        }
        let mut conn = shared;
        let result = self.timed(what, command(&mut conn)).await;
        // Given back even after an error: a handle of a dead connection is refused by its
        // generation once the link has replaced it.
        self.link.give_back(conn, generation);
        self.observe(result, None, false, generation)
    }

    /// One command under our timeout, counted.
    async fn timed<T>(
        &self,
        what: &'static str,
        command: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T> {
        self.counters.requests.add(1);
        let result = with_timeout(self.command_timeout, what, async {
            command
                .await
                .map_err(|e| map_redis_error(e, "Redis command failed"))
        })
        .await;
        if let Err(e) = &result {
            bump(&self.counters.errors);
            tracing::debug!(operation = what, error = %e, "Redis command failed");
        }
        result
    }

    /// Tells the breaker that decided the call (the primary's in a cluster, else the link's)
    /// how it went: a redirected call says nothing about its primary.
    fn observe<T>(
        &self,
        result: Result<T>,
        primary: Option<&Arc<Node>>,
        redirected: bool,
        generation: u64,
    ) -> Result<T> {
        match (primary, &result) {
            (Some(_), _) if redirected => {}
            (Some(node), Ok(_)) => node.breaker.observe_success(),
            (Some(node), Err(e)) => {
                // A dead or hung primary never answers `MOVED`: the table learns its failover
                // from a fresh read, whether or not the breaker opens (it may be disabled).
                if e.is_transient() {
                    node.relearn_after_error();
                }
                node.breaker.observe_failure(e);
            }
            (None, Ok(_)) => self.link.observe_success(),
            (None, Err(e)) => self.link.observe_failure(e, generation),
        }
        result
    }

    /// The servers a walk visits, in order, with the fingerprint of the topology they come from:
    /// the one server (fingerprint 0), or every primary (the topology read again when `fresh`).
    async fn shards(&self, fresh: bool) -> Result<(u64, Vec<Shard>)> {
        match &self.servers {
            Servers::Single { walks } => Ok((
                0,
                vec![Shard {
                    label: String::new(),
                    pool: Arc::clone(walks),
                    node: None,
                }],
            )),
            Servers::Cluster(topology) => {
                if fresh {
                    topology.fresh_primaries().await?;
                }
                let (fingerprint, nodes) = topology.snapshot();
                let shards = nodes
                    .into_iter()
                    .map(|node| Shard {
                        label: node.address.clone(),
                        pool: Arc::clone(&node.walks),
                        node: Some(node),
                    })
                    .collect();
                Ok((fingerprint, shards))
            }
        }
    }

    /// The walk connections of the server holding the Redis key `name`.
    fn pool_for(&self, name: &str) -> Result<Arc<WalkPool>> {
        match &self.servers {
            Servers::Single { walks } => Ok(Arc::clone(walks)),
            Servers::Cluster(topology) => topology
                .node_for(name)
                .map(|node| Arc::clone(&node.walks))
                .ok_or_else(|| {
                    Error::new(
                        ErrorKind::Unavailable,
                        "no primary of the cluster is known to serve this key",
                    )
                    .with_context("key", name.to_string())
                }),
        }
    }

    /// Walk steps run so far.
    fn walk_steps(&self) -> u64 {
        match &self.servers {
            Servers::Single { walks } => walks.steps(),
            Servers::Cluster(topology) => topology.walk_steps(),
        }
    }

    /// Whether every server looks available (the replayer waits for that).
    fn all_available(&self) -> bool {
        self.link.is_available()
            && match &self.servers {
                Servers::Single { .. } => true,
                Servers::Cluster(topology) => topology.all_available(),
            }
    }

    fn queue(self: &Arc<Self>, item: Pending) -> StoreWrite {
        if queue_item(self, item) {
            StoreWrite::Queued
        } else {
            StoreWrite::Dropped
        }
    }

    fn pending_set(key: &CacheKey, frame: Bytes, ttl: Ttl) -> Pending {
        let cached_at_ms = match stamp(&frame) {
            Stamp::WrittenAt(at) => at,
            _ => unix_millis(),
        };
        Pending::Set {
            key: key.clone(),
            frame: frame.to_vec(),
            cached_at_ms,
            expires_at_ms: unix_millis().saturating_add(ttl.as_millis()),
            queued_at: Instant::now(),
        }
    }

    /// After a delete or invalidation reached Redis: queued writes of the keys it covers must not
    /// bring them back. A write replayed since `mark` (taken before the removal's Redis step) is
    /// not in the queue and may have landed after it, so the removal is queued too (replayed
    /// after it) in that case.
    fn after_removal(
        self: &Arc<Self>,
        pattern: &KeyPattern,
        mark: u64,
        pending: impl FnOnce() -> Pending,
    ) {
        if !self.replay.is_enabled() {
            return;
        }
        if self.replay.depth() > 0 {
            self.replay.forget(pattern);
        }
        if self.replay.replayed_since(mark) {
            self.queue(pending());
        }
    }

    fn check_size(&self, frame: &Bytes) -> Result<()> {
        cache_core::check_frame_size(frame.len(), self.max_frame_size)
    }

    fn full_pattern(&self, pattern: &KeyPattern) -> String {
        format!("{}{}", self.scan_prefix, pattern.as_str())
    }
}

fn invalidation_incomplete(pattern: &KeyPattern, cause: Option<Error>, queued: bool) -> Error {
    let error = Error::new(
        ErrorKind::Unavailable,
        "invalidation reached L1 only: Redis could not be walked, and may still hold matching keys",
    )
    .with_context("pattern", pattern.as_str())
    .with_context("queued_for_replay", queued)
    .with_context(
        "fix",
        if queued {
            "nothing to do: it is replayed when Redis returns (retry to make sure sooner)"
        } else {
            "retry when Redis is available"
        },
    );
    match cause {
        Some(cause) => error.with_source(cause),
        None => error,
    }
}

/// A Redis key as its namespace prefix and logical key, written into a command's buffer as one
/// argument without building a `String`.
#[derive(Clone, Copy)]
pub(crate) struct PrefixedKey<'a>(pub(crate) &'a str, pub(crate) &'a str);

impl redis::ToRedisArgs for PrefixedKey<'_> {
    fn write_redis_args<W: ?Sized + redis::RedisWrite>(&self, out: &mut W) {
        use std::io::Write;
        let mut arg = out.writer_for_next_arg();
        // Writing into the command's own buffer cannot fail.
        let _ = arg.write_all(self.0.as_bytes());
        let _ = arg.write_all(self.1.as_bytes());
    }
}

/// Whose breaker a hot command consults and feeds.
#[derive(Clone)]
pub(crate) enum Target {
    /// The link's: one server, or a cluster command that no slot decides.
    Link,
    /// A cluster slot's primary, as our table names it when the command starts.
    Slot(u16),
    /// A cluster primary named directly (a batch for its keys).
    Node(Arc<Node>),
}

/// Where the store's keys live.
enum Servers {
    /// One Redis server, with its walk connections.
    Single { walks: Arc<WalkPool> },
    /// A Redis Cluster's primaries.
    Cluster(Arc<Topology>),
}

/// One server a walk visits.
pub(crate) struct Shard {
    /// Its address in a cluster (empty for one server): a walk cursor names it, so that a cursor
    /// taken before a failover restarts that server's scan instead of skipping keys.
    pub(crate) label: String,
    pub(crate) pool: Arc<WalkPool>,
    /// A cluster's primary, whose breaker says whether it is worth trying.
    pub(crate) node: Option<Arc<Node>>,
}

impl Shard {
    /// `Err(Unavailable)` when this server's breaker is open (the caller queues its work).
    fn check(&self) -> Result<()> {
        match &self.node {
            Some(node) if !node.breaker.is_available() => Err(Error::new(
                ErrorKind::Unavailable,
                "a primary of the cluster is unavailable",
            )
            .with_context("node", node.address.clone())),
            _ => Ok(()),
        }
    }
}

mod batch;
mod frame_store;
mod removals;
mod restore;
mod snapshots;

pub use snapshots::MAX_SNAPSHOT_BYTES;
