//! Pattern work on a connection of its own: `SCAN MATCH … COUNT` pages, pipelined `UNLINK`s
//! counted from their replies, and frame reads for walks. Never `KEYS`.
//!
//! Walks take their connection from a small pool built on the one connection factory, so a long
//! walk never queues in front of hot-path commands, its slowness never trips the breaker, and a
//! walk does not pay TCP + TLS + AUTH anew. A connection that failed a step is discarded instead of
//! going back to the pool.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use cache_core::{CacheKey, Error, ErrorKind, KeyPattern, Result, WalkCursor, WalkEntry};
use deadpool::managed::{self, Metrics, Object, Pool, RecycleResult};
use redis::aio::MultiplexedConnection;

use crate::client::{ConnectionFactory, map_redis_error, with_timeout};

/// The least time one step of a walk (a `SCAN` page, an `UNLINK` batch) may take.
pub(crate) const WALK_STEP_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections a store keeps for walks.
const WALK_POOL_SIZE: usize = 4;

/// Opens walk connections through the factory.
pub(crate) struct WalkConnections {
    factory: ConnectionFactory,
}

impl managed::Manager for WalkConnections {
    type Type = MultiplexedConnection;
    type Error = Error;

    async fn create(&self) -> Result<MultiplexedConnection> {
        self.factory.dedicated().await
    }

    async fn recycle(
        &self,
        _conn: &mut MultiplexedConnection,
        _: &Metrics,
    ) -> RecycleResult<Error> {
        // No PING per checkout (a round trip each): a connection that fails a step is discarded
        // by `WalkConnection::discard` instead.
        Ok(())
    }
}

/// A pooled walk connection.
pub(crate) type WalkConnection = Object<WalkConnections>;

/// The pool of walk connections.
pub(crate) struct WalkPool {
    pool: Pool<WalkConnections>,
    steps: std::sync::atomic::AtomicU64,
    step_timeout: Duration,
    connect_timeout: Duration,
}

impl WalkPool {
    pub(crate) fn new(
        factory: ConnectionFactory,
        command_timeout: Duration,
        connect_timeout: Duration,
    ) -> Result<Self> {
        let pool = Pool::builder(WalkConnections { factory })
            .max_size(WALK_POOL_SIZE)
            .build()
            .map_err(|e| {
                Error::new(ErrorKind::Config, "cannot build the walk connection pool")
                    .with_source(e)
            })?;
        Ok(Self {
            pool,
            steps: std::sync::atomic::AtomicU64::new(0),
            step_timeout: command_timeout.max(WALK_STEP_TIMEOUT),
            connect_timeout,
        })
    }

    /// Steps run so far (each one request to the server).
    pub(crate) fn steps(&self) -> u64 {
        self.steps.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A connection for one walk step, under the connect timeout (waiting for a free one
    /// included).
    pub(crate) async fn get(&self) -> Result<WalkConnection> {
        with_timeout(self.connect_timeout, "walk connection", async {
            self.pool.get().await.map_err(|e| match e {
                managed::PoolError::Backend(e) => e,
                other => Error::new(ErrorKind::Connection, "no walk connection").with_source(other),
            })
        })
        .await
    }

    /// Runs one step on `conn`; a failed step discards the connection.
    pub(crate) async fn step<T, F>(
        &self,
        conn: &mut Option<WalkConnection>,
        what: &'static str,
        command: impl FnOnce(MultiplexedConnection) -> F,
    ) -> Result<T>
    where
        F: Future<Output = redis::RedisResult<T>>,
    {
        let Some(object) = conn.as_ref() else {
            return Err(Error::new(ErrorKind::Connection, "walk connection lost"));
        };
        self.steps
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // A multiplexed connection is a cheap handle: the step owns a clone of it.
        let handle = MultiplexedConnection::clone(object);
        let result = with_timeout(self.step_timeout, what, async {
            command(handle)
                .await
                .map_err(|e| map_redis_error(e, "Redis walk step failed"))
        })
        .await;
        if result.is_err()
            && let Some(object) = conn.take()
        {
            drop(Object::take(object));
        }
        result
    }
}

/// Where a walk stands: the server it is on (its index among the walk's servers and its
/// label) and that server's `SCAN` cursor.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct WalkPosition {
    pub(crate) shard: usize,
    /// The fingerprint of the topology the walk started on (0: one server).
    pub(crate) topology: u64,
    pub(crate) label: String,
    pub(crate) scan: u64,
}

impl WalkPosition {
    /// The walk cursor of this position: the 8 bytes of the `SCAN` cursor (big-endian) on one
    /// server; in a cluster the server's index (4 bytes), the `SCAN` cursor, the topology's
    /// fingerprint (8 bytes each) and the server's label.
    pub(crate) fn cursor(&self) -> WalkCursor {
        let scan = self.scan.to_be_bytes();
        if self.shard == 0 && self.topology == 0 && self.label.is_empty() {
            return WalkCursor::from_state(scan.to_vec());
        }
        let index = u32::try_from(self.shard).unwrap_or(u32::MAX).to_be_bytes();
        let mut state = Vec::with_capacity(20 + self.label.len());
        state.extend_from_slice(&index);
        state.extend_from_slice(&scan);
        state.extend_from_slice(&self.topology.to_be_bytes());
        state.extend_from_slice(self.label.as_bytes());
        WalkCursor::from_state(state)
    }

    /// The position a walk cursor holds (the start without one).
    pub(crate) fn of(cursor: Option<&WalkCursor>) -> Result<Self> {
        let Some(cursor) = cursor else {
            return Ok(Self::default());
        };
        let state = cursor.state();
        let invalid = || {
            Error::new(ErrorKind::InvalidInput, "not a cursor of a Redis store")
                .with_context("cursor_len", state.len())
        };
        let word = |bytes: &[u8]| -> Result<u64> {
            let bytes: [u8; 8] = bytes.try_into().map_err(|_| invalid())?;
            Ok(u64::from_be_bytes(bytes))
        };
        if state.len() == 8 {
            return Ok(Self {
                scan: word(state)?,
                ..Self::default()
            });
        }
        if state.len() < 20 {
            return Err(invalid());
        }
        let index: [u8; 4] = state[..4].try_into().map_err(|_| invalid())?;
        let label = std::str::from_utf8(&state[20..]).map_err(|_| invalid())?;
        Ok(Self {
            shard: usize::try_from(u32::from_be_bytes(index)).map_err(|_| invalid())?,
            topology: word(&state[12..20])?,
            label: label.to_string(),
            scan: word(&state[4..12])?,
        })
    }
}

/// One `SCAN` page: the next cursor and the logical keys found under `prefix` that `pattern`
/// matches (`full_pattern` is its `SCAN MATCH` form; the check again here covers what a glob
/// cannot say, such as a number of segments).
pub(crate) async fn scan_page(
    pool: &WalkPool,
    conn: &mut Option<WalkConnection>,
    cursor: u64,
    (pattern, full_pattern): (&KeyPattern, &str),
    prefix: &str,
    count: usize,
) -> Result<(u64, Vec<CacheKey>)> {
    let (next, batch) = pool
        .step(conn, "SCAN", |mut c| async move {
            redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(full_pattern)
                .arg("COUNT")
                .arg(count)
                .query_async::<(u64, Vec<Vec<u8>>)>(&mut c)
                .await
        })
        .await?;
    let keys = batch
        .into_iter()
        .filter_map(|raw| String::from_utf8(raw).ok())
        .filter_map(|name| {
            name.strip_prefix(prefix)
                .filter(|logical| pattern.matches(logical))
                .and_then(|logical| CacheKey::new(logical).ok())
        })
        .collect();
    Ok((next, keys))
}

/// `keys` without the tombstoned ones (removed within the replay horizon) and those gone since
/// the SCAN: one pipelined single-key script per key (`removal.rs`), which reads only a value's
/// head and copes with keys of other types.
pub(crate) async fn without_tombstones(
    pool: &WalkPool,
    conn: &mut Option<WalkConnection>,
    (prefix, is_removed): (&str, &redis::Script),
    keys: Vec<CacheKey>,
) -> Result<Vec<CacheKey>> {
    if keys.is_empty() {
        return Ok(keys);
    }
    let mut pipe = redis::pipe();
    pipe.load_script(is_removed).ignore();
    for key in &keys {
        pipe.invoke_script(&is_removed.key(format!("{prefix}{key}")));
    }
    let removed = pool
        .step(conn, "tombstone check", |mut c| async move {
            pipe.query_async::<Vec<i64>>(&mut c).await
        })
        .await?;
    Ok(keys
        .into_iter()
        .zip(removed)
        .filter(|(_, removed)| *removed == 0)
        .map(|(key, _)| key)
        .collect())
}

/// The frames as stored under `keys`, with their remaining TTLs: one pipeline of `GET` + `PTTL`
/// per key (native commands: a walk moves data at the speed of a raw loop), with errors as
/// values, so that keys gone since the SCAN, tombstones and keys of other types are left out
/// instead of failing the page; any other error reply (a redirect) fails the page. The two reads of a key are adjacent in the pipeline but not
/// atomic: a key rewritten between them pairs the old bytes with the new TTL.
pub(crate) async fn read_frames(
    pool: &WalkPool,
    conn: &mut Option<WalkConnection>,
    prefix: &str,
    keys: Vec<CacheKey>,
) -> Result<Vec<WalkEntry>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    for key in &keys {
        let name = format!("{prefix}{key}");
        pipe.cmd("GET").arg(&name).cmd("PTTL").arg(name);
    }
    let replies = pool
        .step(conn, "read entries", |mut c| async move {
            pipe.query_async::<Vec<redis::Value>>(&mut c).await
        })
        .await?;
    let mut entries = Vec::with_capacity(keys.len());
    let mut replies = replies.into_iter();
    for key in keys {
        let (Some(value), Some(ttl)) = (replies.next(), replies.next()) else {
            break;
        };
        let frame = match value {
            redis::Value::BulkString(bytes) if !cache_core::frame::is_tombstone(&bytes) => bytes,
            // A key of another type.
            redis::Value::ServerError(e) if e.code() == "WRONGTYPE" => continue,
            // MOVED, ASK, TRYAGAIN, LOADING: the server does not serve the key now (a slot
            // migrating, a primary turned replica). Skipping it would silently lose an entry.
            redis::Value::ServerError(e) => {
                return Err(Error::new(
                    ErrorKind::Unavailable,
                    "the server did not serve a key of its own walk",
                )
                .with_context("key", key.as_str())
                .with_context("reply", e.to_string()));
            }
            // Gone since the SCAN, or a tombstone.
            _ => continue,
        };
        let ttl = match ttl {
            redis::Value::Int(ms) if ms >= 0 => {
                Some(Duration::from_millis(u64::try_from(ms).unwrap_or(0)))
            }
            // A key without expiry (never written by a cache), as `remaining_ttl` reports it.
            redis::Value::Int(-1) => Some(cache_core::Ttl::MAX),
            _ => continue,
        };
        entries.push(WalkEntry::new(key, Some(Bytes::from(frame)), ttl));
    }
    Ok(entries)
}
