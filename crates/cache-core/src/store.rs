//! The shared-tier contract: [`FrameStore`], its dyn-compatible twin [`DynFrameStore`], and the
//! store-agnostic reports (health, shutdown, statistics) every store returns.
//!
//! A `FrameStore` holds encoded [frames](crate::frame) under the logical keys of one namespace. It
//! never decodes them: codecs, compression and encryption live above it, so a backup copies frames
//! byte for byte and an encrypted frame stays encrypted. Redis, Redis Cluster and a team's own store
//! implement it; the conformance suite in `cache-testkit` is the executable form of this page.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;

use crate::backend::BoxFuture;
use crate::error::Result;
use crate::key::{CacheKey, KeyPattern};
use crate::recorder::{BreakerState, RedisMemory};
use crate::ttl::Ttl;

/// Where a write went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreWrite {
    /// The store took it.
    Written,
    /// The store is unavailable; the write waits in its replay queue.
    Queued,
    /// Nowhere: the store is unavailable and keeps no replay queue (or the queue refused it).
    Dropped,
}

impl StoreWrite {
    /// Whether the write reached the store or will when it returns.
    pub const fn is_kept(self) -> bool {
        matches!(self, Self::Written | Self::Queued)
    }
}

/// What a store is, for reports and tools.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreInfo {
    /// A short name of the implementation: `"redis"`, `"memory"`, …
    pub kind: &'static str,
    /// The namespace every key lives under (the Redis key is `{namespace}:{key}`).
    pub namespace: String,
    /// Whether other processes see the same entries.
    pub shared: bool,
    /// The largest frame the store accepts, in bytes.
    pub max_frame_size: usize,
}

impl StoreInfo {
    /// Describes a store of `kind` over `namespace`.
    pub fn new(kind: &'static str, namespace: impl Into<String>, max_frame_size: usize) -> Self {
        Self {
            kind,
            namespace: namespace.into(),
            shared: false,
            max_frame_size,
        }
    }

    /// Marks the store as shared between processes.
    #[must_use]
    pub fn shared(mut self, shared: bool) -> Self {
        self.shared = shared;
        self
    }

    /// The full key of `key` in this namespace: `{namespace}:{key}` (what encryption binds to).
    pub fn full_key(&self, key: &CacheKey) -> String {
        let mut out = String::with_capacity(self.namespace.len() + 1 + key.len());
        out.push_str(&self.namespace);
        out.push(':');
        out.push_str(key.as_str());
        out
    }
}

/// Refuses a frame of `size` bytes above a store's `max` with
/// [`ErrorKind::CapacityExceeded`](crate::ErrorKind::CapacityExceeded), the same way in every
/// store.
///
/// # Errors
/// As said.
pub fn check_frame_size(size: usize, max: usize) -> Result<()> {
    if size > max {
        return Err(crate::Error::new(
            crate::ErrorKind::CapacityExceeded,
            "frame too large for the store",
        )
        .with_context("size", size)
        .with_context("allowed", format!("0..={max} bytes")));
    }
    Ok(())
}

/// Where a walk resumes. Opaque: only the store that returned it can read it.
#[derive(Clone, PartialEq, Eq)]
pub struct WalkCursor(Vec<u8>);

impl WalkCursor {
    /// A cursor holding `state` (for store implementations).
    pub fn from_state(state: Vec<u8>) -> Self {
        Self(state)
    }

    /// The state a store put in (for store implementations).
    pub fn state(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for WalkCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WalkCursor({} bytes)", self.0.len())
    }
}

/// What a walk reads of each entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WalkMode {
    /// Keys only.
    Keys,
    /// Keys, frames as stored, and remaining TTLs.
    Frames,
}

/// One entry met by a walk.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WalkEntry {
    /// The logical key.
    pub key: CacheKey,
    /// The frame as stored (with [`WalkMode::Frames`]; `None` with [`WalkMode::Keys`]).
    pub frame: Option<Bytes>,
    /// The time the entry has left (with [`WalkMode::Frames`]).
    pub remaining_ttl: Option<Duration>,
}

impl WalkEntry {
    /// An entry of `key` with what a walk read of it.
    pub fn new(key: CacheKey, frame: Option<Bytes>, remaining_ttl: Option<Duration>) -> Self {
        Self {
            key,
            frame,
            remaining_ttl,
        }
    }
}

/// One page of a walk: at most about `page_size` entries, and where to go on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct WalkPage {
    /// The entries of this page. A key may appear again in a later page (Redis `SCAN` may return
    /// a key twice): consumers count from effects, not from pages.
    pub entries: Vec<WalkEntry>,
    /// Where the next page starts; `None` when the walk is complete.
    pub next: Option<WalkCursor>,
}

impl WalkPage {
    /// A page of `entries` that continues at `next`.
    pub fn new(entries: Vec<WalkEntry>, next: Option<WalkCursor>) -> Self {
        Self { entries, next }
    }
}

/// The state of the shared tier, as `health()` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum L2Health {
    /// No shared tier is configured: memory-only.
    Disabled,
    /// The store answered.
    Connected {
        /// The round trip of the health check.
        latency: Duration,
    },
    /// The store is unavailable (or refuses the cache); the cache serves from L1.
    Unavailable {
        /// How long it has been unavailable, when known.
        since: Option<Duration>,
        /// The last error seen.
        last_error: Option<String>,
        /// When the next background probe may run.
        next_probe_in: Option<Duration>,
    },
}

/// What `health()` reports, for a store and for the caches over it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HealthReport {
    /// The shared tier.
    pub l2: L2Health,
    /// The circuit breaker in front of it (`None` when it has none).
    pub breaker: Option<BreakerState>,
    /// Writes, deletes and invalidations waiting for the store.
    pub replay_queue_depth: usize,
    /// Live L1 entries, when the cache has an L1.
    pub l1_entries: Option<u64>,
    /// How many times the store went from available to unavailable.
    pub outages: u64,
    /// How many background reconnection probes ran.
    pub probes: u64,
    /// Each server of a store made of several (a Redis Cluster's primaries); empty otherwise.
    pub nodes: Vec<NodeHealth>,
}

/// One server of a store made of several, as `health()` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodeHealth {
    /// Its address (`host:port`).
    pub address: String,
    /// Whether it answered.
    pub l2: L2Health,
    /// Its own circuit breaker: while open, only the keys it serves skip the store.
    pub breaker: BreakerState,
}

impl NodeHealth {
    /// The health of the server at `address`.
    pub fn new(address: impl Into<String>, l2: L2Health, breaker: BreakerState) -> Self {
        Self {
            address: address.into(),
            l2,
            breaker,
        }
    }
}

impl HealthReport {
    /// A report of a healthy tier (`l2`), without breaker, queue or L1.
    pub fn new(l2: L2Health) -> Self {
        Self {
            l2,
            breaker: None,
            replay_queue_depth: 0,
            l1_entries: None,
            outages: 0,
            probes: 0,
            nodes: Vec::new(),
        }
    }

    /// The report of a cache without a shared tier.
    pub fn disabled() -> Self {
        Self::new(L2Health::Disabled)
    }

    /// The same report with the L1's live entries.
    #[must_use]
    pub fn with_l1_entries(mut self, entries: Option<u64>) -> Self {
        self.l1_entries = entries;
        self
    }
}

/// What `shutdown()` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Queued items that left the queue by replay during the shutdown: applied, skipped (expired,
    /// or a newer value in the store) or refused by Redis. Items superseded within the queue are
    /// not counted.
    pub flushed: u64,
    /// Items still queued when the time ran out (the store never came back); they are lost.
    pub remaining: usize,
}

impl ShutdownReport {
    /// A report of `flushed` items, `remaining` left.
    pub const fn new(flushed: u64, remaining: usize) -> Self {
        Self { flushed, remaining }
    }
}

/// A store's own counters (how the cache above used it is counted by the cache).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[non_exhaustive]
pub struct StoreStats {
    /// Calls that failed (including timeouts).
    pub errors: u64,
    /// Calls that skipped the store because it was unavailable.
    pub skipped: u64,
    /// Requests sent to the server (a command, a script call or a pipeline each count one; 0
    /// for a store without a server), for commands-per-operation figures.
    pub requests: u64,
    /// Writes, deletes and invalidations queued for replay.
    pub replay_queued: u64,
    /// Queued items dropped because the queue was full.
    pub replay_dropped: u64,
    /// Queued items replaced by a newer write, delete or invalidation of the same key.
    pub replay_superseded: u64,
    /// Queued items applied.
    pub replayed: u64,
    /// Queued items not applied: their TTL had passed, or the store held a newer value.
    pub replay_skipped: u64,
    /// Queued items the store refused (for example a permission error); they are not retried.
    pub replay_failed: u64,
    /// Queued writes older than the replay horizon when their turn came: dropped (a removal made
    /// meanwhile may no longer be on record). Also counted in `replay_skipped`.
    pub replay_expired: u64,
}

/// Receives the keys a pattern removal removed, page by page (each key once per removal that
/// took it: a key `SCAN` returned twice is removed, and reported, once).
pub type RemovedSink<'a> = &'a mut (dyn FnMut(&CacheKey) + Send);

/// A shared tier of encoded frames under one namespace.
///
/// # Behavior
/// - Keys are logical [`CacheKey`]s; the store adds its namespace. Patterns are [`KeyPattern`]s
///   over logical keys and never reach outside the namespace.
/// - Frames are opaque bytes to the store, except that conditional writes read the `cached_at`
///   field of a stored [frame](crate::frame) (bytes 5..13, big-endian milliseconds).
/// - Every entry has a TTL; a miss is `Ok(None)`.
/// - **Removals are remembered** for the store's horizon ([`frame::tombstone`](crate::frame::tombstone)
///   under each removed key): the key reads as absent (`get`, `remaining_ttl`, walks), and no
///   conditional write (`set_if_absent`, `set_unless_newer`: replay, restore, moves) lands over
///   the record; a plain `set` replaces it. `delete_if_unchanged` leaves no record (it cleans up
///   bytes, it does not remove an answer).
/// - While the store is unavailable, `get` answers `Ok(None)`, `set` queues (when the store keeps
///   a replay queue) and says so with [`StoreWrite::Queued`]; removals that cannot run are queued
///   too and reported as errors of kind [`Unavailable`](crate::ErrorKind::Unavailable) where the
///   caller must know (pattern removal). Configuration and authentication errors are returned.
/// - Methods are cancellation-safe: a dropped future leaves each key either written or not.
///
/// # Implementing
/// Methods return `impl Future + Send`; the blanket [`DynFrameStore`] impl gives every store a
/// dyn-compatible form, which the caches hold as `Arc<dyn DynFrameStore>`.
pub trait FrameStore: Send + Sync {
    /// What this store is.
    fn info(&self) -> StoreInfo;

    /// Whether the store looks available now (no network call): a closed breaker.
    fn is_available(&self) -> bool;

    /// Reads the frame of `key`.
    fn get(&self, key: &CacheKey) -> impl Future<Output = Result<Option<Bytes>>> + Send;

    /// Reads several frames; one slot per key, in order.
    fn get_many(
        &self,
        keys: &[CacheKey],
    ) -> impl Future<Output = Result<Vec<Option<Bytes>>>> + Send;

    /// Writes `frame` under `key` for `ttl`, replacing any frame.
    fn set(
        &self,
        key: &CacheKey,
        frame: Bytes,
        ttl: Ttl,
    ) -> impl Future<Output = Result<StoreWrite>> + Send;

    /// Writes several frames with one TTL.
    fn set_many(
        &self,
        entries: &[(CacheKey, Bytes)],
        ttl: Ttl,
    ) -> impl Future<Output = Result<StoreWrite>> + Send;

    /// Writes `frame` only if `key` holds nothing; true when written.
    fn set_if_absent(
        &self,
        key: &CacheKey,
        frame: Bytes,
        ttl: Ttl,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// Writes `frame` until `expires_at_ms` (ms since the Unix epoch) unless `key` holds a frame
    /// written at or after `frame`'s own `cached_at`; true when written. A stored value that is
    /// not a frame is overwritten; a frame of another version is left alone.
    fn set_unless_newer(
        &self,
        key: &CacheKey,
        frame: Bytes,
        expires_at_ms: u64,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// Writes each entry by `rule` until its own expiry (pipelined: a few round trips per
    /// batch where the store can); one flag per entry, in order: true when written.
    ///
    /// Never brings back a removal the store remembers: a key holding a removal record (a
    /// tombstone) is left alone under every rule, and so is a key that a pattern removal
    /// recorded after the entry's `cached_at` covers (stores that record pattern removals, such as
    /// Redis). Entries already expired are not written. This is what backups restore and
    /// migrations copy through.
    fn restore_many(
        &self,
        entries: &[RestoreEntry],
        rule: RestoreRule,
    ) -> impl Future<Output = Result<Vec<bool>>> + Send;

    /// Removes `key`; true when it existed.
    fn delete(&self, key: &CacheKey) -> impl Future<Output = Result<bool>> + Send;

    /// Removes `key` only if it still holds exactly `expected`; true when removed.
    fn delete_if_unchanged(
        &self,
        key: &CacheKey,
        expected: Bytes,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// Removes `key` unless it holds a frame written after `issued_at_ms` (or a frame of another
    /// version); true when removed.
    fn delete_unless_newer(
        &self,
        key: &CacheKey,
        issued_at_ms: u64,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// The time `key` has left, or `None` when it does not exist.
    fn remaining_ttl(
        &self,
        key: &CacheKey,
    ) -> impl Future<Output = Result<Option<Duration>>> + Send;

    /// One page of the entries whose keys match `pattern`, starting at `cursor` (`None`: the
    /// beginning). Memory stays bounded by the page, whatever the namespace holds.
    fn walk(
        &self,
        pattern: &KeyPattern,
        cursor: Option<WalkCursor>,
        mode: WalkMode,
    ) -> impl Future<Output = Result<WalkPage>> + Send;

    /// Removes every key matching `pattern`, page by page, telling `removed` each key it removed;
    /// returns how many it removed. When the store cannot finish (unavailable, or failing
    /// part-way) the removal is queued for replay where the store keeps a queue, and the error
    /// says [`Unavailable`](crate::ErrorKind::Unavailable).
    fn remove_matching<'a>(
        &'a self,
        pattern: &'a KeyPattern,
        removed: RemovedSink<'a>,
    ) -> impl Future<Output = Result<u64>> + Send + 'a;

    /// Checks the store (one round trip when it is available).
    fn health(&self) -> impl Future<Output = HealthReport> + Send;

    /// The server's memory figures (`INFO memory` for Redis); `Ok(None)` when it has none or is
    /// unavailable.
    fn server_memory(&self) -> impl Future<Output = Result<Option<RedisMemory>>> + Send;

    /// About how many keys the store holds, for progress estimates; `Ok(None)` when it cannot
    /// tell (or is unavailable). Redis answers `DBSIZE`: every key of its database, other
    /// namespaces' included.
    fn approximate_len(&self) -> impl Future<Output = Result<Option<u64>>> + Send;

    /// The store's counters.
    fn stats(&self) -> StoreStats;

    /// Flushes what waits for the store, waiting up to `limit` for it to come back.
    fn shutdown(&self, limit: Duration) -> impl Future<Output = ShutdownReport> + Send;
}

mod dyn_store;
mod restore;

pub use dyn_store::DynFrameStore;
pub use restore::{REMOVAL_CLOCK_MARGIN_MS, RestoreEntry, RestoreRule, removal_blocks};
