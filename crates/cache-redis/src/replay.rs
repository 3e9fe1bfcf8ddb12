//! Writes, deletes and invalidations that Redis could not take, kept in a bounded queue and
//! replayed when it returns.
//!
//! Rules (DESIGN §5):
//! - a newer queued write of a key replaces an older one; a queued delete removes the older
//!   queued writes of its key, and an invalidation those of the keys it matches (a delete always
//!   wins over an older write);
//! - when the queue is full, the oldest item is dropped and counted;
//! - replay never overwrites a newer value written meanwhile by another instance: a write is
//!   applied by a script only if the stored frame's `cached_at` is older, and a delete or an
//!   invalidation removes a stored frame only if it was written before the delete was issued;
//! - an entry whose Redis TTL passed while it waited is not replayed.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use cache_core::{CacheKey, ErrorKind, KeyPattern, Result, ShutdownReport};
use tokio::sync::Notify;

/// Writes `ARGV[1]` under `KEYS[1]` until `ARGV[3]` (ms since the epoch) unless the key holds a
/// frame written at or after `ARGV[2]` (its `cached_at`, bytes 6..13, big-endian), or a frame of
/// another version (a newer instance wrote it). A value that is not a frame is overwritten.
pub(crate) const SET_IF_NEWER: &str = r"
local cur = redis.call('GET', KEYS[1])
if cur and string.len(cur) >= 13 and string.sub(cur, 1, 3) == 'AIC' then
  if string.byte(cur, 4) ~= 1 then return 0 end
  local written = 0
  for i = 6, 13 do written = written * 256 + string.byte(cur, i) end
  if written >= tonumber(ARGV[2]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[3])
return 1
";

/// Removes `KEYS[1]` unless it holds a frame written after `ARGV[1]` (ms since the epoch), or a
/// frame of another version: then it answers -1. Otherwise `UNLINK`'s answer.
pub(crate) const DELETE_IF_NOT_NEWER: &str = r"
local cur = redis.call('GET', KEYS[1])
if not cur then return 0 end
if string.len(cur) >= 13 and string.sub(cur, 1, 3) == 'AIC' then
  if string.byte(cur, 4) ~= 1 then return -1 end
  local written = 0
  for i = 6, 13 do written = written * 256 + string.byte(cur, i) end
  if written > tonumber(ARGV[1]) then return -1 end
end
return redis.call('UNLINK', KEYS[1])
";

/// One operation waiting for Redis.
#[derive(Debug, Clone)]
pub(crate) enum Pending {
    /// A framed value to write.
    Set {
        key: CacheKey,
        frame: Vec<u8>,
        cached_at_ms: u64,
        /// When Redis would have dropped the key (ms since the epoch): the replay's `PXAT`.
        expires_at_ms: u64,
    },
    /// A delete issued at `at_ms`.
    Delete { key: CacheKey, at_ms: u64 },
    /// A pattern invalidation issued at `at_ms`.
    Invalidate { pattern: KeyPattern, at_ms: u64 },
}

/// Counters of the replay queue.
#[derive(Default)]
pub(crate) struct ReplayCounters {
    pub(crate) queued: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) superseded: AtomicU64,
    pub(crate) replayed: AtomicU64,
    pub(crate) skipped: AtomicU64,
    pub(crate) failed: AtomicU64,
}

/// The bounded queue and the signal that wakes its replayer.
pub(crate) struct ReplayQueue {
    items: Mutex<VecDeque<Pending>>,
    capacity: usize,
    pub(crate) counters: ReplayCounters,
    /// Woken when Redis returns (by the link) and when an item is queued while Redis looks
    /// available (a lone timeout), so the replayer runs.
    pub(crate) wake: Arc<Notify>,
    replayer_started: AtomicBool,
    replaying: tokio::sync::Mutex<()>,
}

impl ReplayQueue {
    pub(crate) fn new(capacity: usize, wake: Arc<Notify>) -> Self {
        Self {
            items: Mutex::new(VecDeque::new()),
            capacity,
            counters: ReplayCounters::default(),
            wake,
            replayer_started: AtomicBool::new(false),
            replaying: tokio::sync::Mutex::new(()),
        }
    }

    /// Whether a replay is running right now.
    pub(crate) fn is_replaying(&self) -> bool {
        self.replaying.try_lock().is_err()
    }

    /// Whether replay is on (capacity above 0).
    pub(crate) fn is_enabled(&self) -> bool {
        self.capacity > 0
    }

    /// Queues `item`, applying the rules above; false when replay is off.
    pub(crate) fn push(&self, item: Pending) -> bool {
        if !self.is_enabled() {
            return false;
        }
        let mut items = lock(&self.items);
        match &item {
            Pending::Set { key, .. } => self.drop_superseded(&mut items, |queued| {
                matches!(queued, Pending::Set { key: k, .. } if k == key)
            }),
            Pending::Delete { key, .. } => self.drop_superseded(&mut items, |queued| {
                matches!(queued, Pending::Set { key: k, .. } | Pending::Delete { key: k, .. } if k == key)
            }),
            Pending::Invalidate { pattern, .. } => {
                self.drop_superseded(&mut items, |queued| covered(pattern, queued));
            }
        }
        if items.len() >= self.capacity {
            items.pop_front();
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                capacity = self.capacity,
                "replay queue full: dropped its oldest item"
            );
        }
        items.push_back(item);
        self.counters.queued.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// Drops the queued writes and deletes of the keys `pattern` matches: a delete or an
    /// invalidation that reached Redis makes them stale.
    pub(crate) fn forget(&self, pattern: &KeyPattern) {
        self.drop_superseded(&mut lock(&self.items), |queued| covered(pattern, queued));
    }

    /// Removes the items `stale` picks, counting them as superseded.
    fn drop_superseded(&self, items: &mut VecDeque<Pending>, stale: impl Fn(&Pending) -> bool) {
        let before = items.len();
        items.retain(|queued| !stale(queued));
        let superseded = u64::try_from(before - items.len()).unwrap_or(u64::MAX);
        self.counters
            .superseded
            .fetch_add(superseded, Ordering::Relaxed);
    }

    /// The oldest item.
    pub(crate) fn pop(&self) -> Option<Pending> {
        lock(&self.items).pop_front()
    }

    /// Puts back an item that could not be replayed yet, ahead of the others.
    pub(crate) fn push_front(&self, item: Pending) {
        lock(&self.items).push_front(item);
    }

    /// Items waiting.
    pub(crate) fn depth(&self) -> usize {
        lock(&self.items).len()
    }

    /// Takes the oldest item; unless [`Taken::done`] is called, dropping the guard (a replay
    /// cancelled mid-flight, or one that must wait for Redis) puts it back at the front.
    pub(crate) fn take(&self) -> Option<Taken<'_>> {
        self.pop().map(|item| Taken {
            queue: self,
            item: Some(item),
        })
    }
}

/// An item being replayed (see [`ReplayQueue::take`]).
pub(crate) struct Taken<'a> {
    queue: &'a ReplayQueue,
    item: Option<Pending>,
}

impl Taken<'_> {
    pub(crate) fn item(&self) -> Option<&Pending> {
        self.item.as_ref()
    }

    /// The item was applied, skipped or refused: it leaves the queue for good.
    pub(crate) fn done(mut self) {
        self.item = None;
    }
}

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        if let Some(item) = self.item.take() {
            self.queue.push_front(item);
        }
    }
}

/// Whether a queued write or delete is of a key `pattern` matches.
fn covered(pattern: &KeyPattern, queued: &Pending) -> bool {
    matches!(queued, Pending::Set { key, .. } | Pending::Delete { key, .. } if pattern.matches(key.as_str()))
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What the replayer replays into: the store's side of the protocol.
pub(crate) trait ReplayTarget: Send + Sync + 'static {
    /// The queue.
    fn replay_queue(&self) -> &ReplayQueue;
    /// Whether the store looks available.
    fn is_available(&self) -> bool;
    /// Asks for the connection, so that a probe may run.
    fn poke(self: &Arc<Self>);
    /// The first and the longest wait between retries.
    fn retry_delays(&self) -> (Duration, Duration);
    /// Applies one item: true when applied, false when skipped (expired, or a newer value).
    fn apply(self: &Arc<Self>, item: &Pending) -> impl Future<Output = Result<bool>> + Send;
}

/// Queues `item` for replay, starting the replayer on first use; false when replay is off.
pub(crate) fn queue_item<T: ReplayTarget>(target: &Arc<T>, item: Pending) -> bool {
    let queue = target.replay_queue();
    if !queue.push(item) {
        return false;
    }
    if !queue.replayer_started.swap(true, Ordering::AcqRel) {
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(replayer(Arc::downgrade(target), Arc::clone(&queue.wake)));
            }
            Err(_) => queue.replayer_started.store(false, Ordering::Release),
        }
    }
    // A lone failure leaves the breaker closed: replay soon rather than at the next outage.
    if target.is_available() {
        queue.wake.notify_one();
    }
    true
}

/// Applies queued items while the store takes them; returns how many left the queue. Stops (the
/// item stays queued) when the store is unavailable again.
///
/// # Errors
/// The store refusing the cache ([`ErrorKind::Auth`]); the item stays queued.
pub(crate) async fn replay_pending<T: ReplayTarget>(target: &Arc<T>) -> Result<u64> {
    let queue = target.replay_queue();
    let _only_one = queue.replaying.lock().await;
    let counters = &queue.counters;
    let bump = |c: &AtomicU64| c.fetch_add(1, Ordering::Relaxed);
    let mut done = 0;
    while let Some(taken) = queue.take() {
        let Some(item) = taken.item() else {
            break;
        };
        match target.apply(item).await {
            Ok(true) => bump(&counters.replayed),
            Ok(false) => bump(&counters.skipped),
            Err(e) if e.is_transient() => return Ok(done),
            Err(e) if e.kind() == ErrorKind::Auth => return Err(e),
            Err(e) => {
                bump(&counters.failed);
                tracing::warn!(error = %e, "Redis refused a replayed operation; dropping it");
                0
            }
        };
        taken.done();
        done += 1;
    }
    Ok(done)
}

/// Flushes the queue, waiting up to `limit` for the store to come back.
pub(crate) async fn flush<T: ReplayTarget>(target: &Arc<T>, limit: Duration) -> ShutdownReport {
    let queue = target.replay_queue();
    let deadline = tokio::time::Instant::now()
        .checked_add(limit)
        .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(86_400 * 365));
    let mut flushed = 0;
    while queue.depth() > 0 {
        match tokio::time::timeout_at(deadline, replay_pending(target)).await {
            Ok(Ok(n)) => flushed += n,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "Redis refuses the cache; the replay queue is not flushed");
                break;
            }
            Err(_) => break,
        }
        if queue.depth() == 0 || tokio::time::Instant::now() >= deadline {
            break;
        }
        // The store is unavailable: asking for the connection lets a probe run; wait for it.
        target.poke();
        tokio::time::sleep_until(
            deadline.min(tokio::time::Instant::now() + Duration::from_millis(20)),
        )
        .await;
    }
    let remaining = queue.depth();
    if remaining > 0 {
        tracing::warn!(remaining, "shutdown: queued writes could not reach Redis");
    }
    ShutdownReport::new(flushed, remaining)
}

/// Replays the queue each time it is woken (the store returned, or an item was queued while it
/// looked available). When a replay stops on a passing failure while the store still looks
/// available (a lone timeout, or the breaker turned off), it tries again with a doubling delay.
/// Holds the store only while replaying, and ends when the store is dropped.
async fn replayer<T: ReplayTarget>(target: Weak<T>, wake: Arc<Notify>) {
    loop {
        wake.notified().await;
        let mut delay: Option<Duration> = None;
        loop {
            let Some(target) = target.upgrade() else {
                return;
            };
            match replay_pending(&target).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(replayed = n, "replayed queued writes to Redis"),
                Err(e) => tracing::warn!(error = %e, "replay stopped: Redis refuses the cache"),
            }
            if target.replay_queue().depth() == 0 || !target.is_available() {
                break;
            }
            let (min, max) = target.retry_delays();
            let next = delay.map_or(min, |d| (d * 2).min(max));
            delay = Some(next);
            drop(target);
            tokio::time::sleep(next).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> CacheKey {
        CacheKey::new(name).unwrap()
    }

    fn set(name: &str, at: u64) -> Pending {
        Pending::Set {
            key: key(name),
            frame: vec![1],
            cached_at_ms: at,
            expires_at_ms: at + 1000,
        }
    }

    fn names(queue: &ReplayQueue) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(item) = queue.pop() {
            out.push(match item {
                Pending::Set {
                    key, cached_at_ms, ..
                } => format!("set {key} {cached_at_ms}"),
                Pending::Delete { key, .. } => format!("del {key}"),
                Pending::Invalidate { pattern, .. } => format!("inv {pattern}"),
            });
        }
        out
    }

    #[test]
    fn newer_writes_replace_older_and_deletes_win() {
        let queue = ReplayQueue::new(100, Arc::new(Notify::new()));
        queue.push(set("a", 1));
        queue.push(set("b", 1));
        queue.push(set("a", 2));
        queue.push(Pending::Delete {
            key: key("b"),
            at_ms: 3,
        });
        queue.push(set("b", 4));
        queue.push(set("qa:1", 5));
        queue.push(set("sum:1", 5));
        queue.push(Pending::Invalidate {
            pattern: KeyPattern::new("qa:*").unwrap(),
            at_ms: 6,
        });
        assert_eq!(queue.counters.superseded.load(Ordering::Relaxed), 3);
        assert_eq!(
            names(&queue),
            vec!["set a 2", "del b", "set b 4", "set sum:1 5", "inv qa:*"],
            "the delete of b stays ahead of b's newer write, so an older stored b cannot survive"
        );
    }

    #[test]
    fn a_delete_that_reached_redis_forgets_the_queued_writes_it_covers() {
        let queue = ReplayQueue::new(100, Arc::new(Notify::new()));
        queue.push(set("qa:1", 1));
        queue.push(set("qa:2", 1));
        queue.push(set("sum:1", 1));
        queue.forget(&KeyPattern::new("qa:1").unwrap());
        assert_eq!(queue.depth(), 2);
        queue.forget(&KeyPattern::new("qa:*").unwrap());
        assert_eq!(names(&queue), vec!["set sum:1 1"]);
        assert_eq!(queue.counters.superseded.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_full_queue_drops_its_oldest_and_counts_it() {
        let queue = ReplayQueue::new(2, Arc::new(Notify::new()));
        for (i, name) in ["a", "b", "c"].into_iter().enumerate() {
            assert!(queue.push(set(name, u64::try_from(i).unwrap())));
        }
        assert_eq!(queue.counters.dropped.load(Ordering::Relaxed), 1);
        assert_eq!(names(&queue), vec!["set b 1", "set c 2"]);
        let off = ReplayQueue::new(0, Arc::new(Notify::new()));
        assert!(!off.push(set("a", 1)), "capacity 0 turns replay off");
        assert_eq!(off.depth(), 0);
    }
}
