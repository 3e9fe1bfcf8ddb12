//! Writes, deletes and invalidations that Redis could not take, kept in a bounded queue and
//! replayed when it returns.
//!
//! Rules (DESIGN §5, §8; the queue's own in `replay/queue.rs`):
//! - a newer queued write of a key replaces an older one; a queued delete removes the older
//!   queued writes of its key, and an invalidation those of the keys it matches;
//! - removals outrank writes: a full queue drops its oldest write, never a removal;
//! - reads of keys a pending removal covers are misses until it is replayed;
//! - replay never overwrites a newer value written meanwhile by another instance: a write is
//!   applied by a script only if the stored frame's `cached_at` is older, and a delete or an
//!   invalidation removes a stored frame only if it was written before the delete was issued;
//! - an entry whose Redis TTL passed while it waited is not replayed.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use cache_core::{CacheKey, ErrorKind, KeyPattern, Result, ShutdownReport};
use tokio::sync::Notify;

/// Writes `ARGV[1]` under `KEYS[1]` until `ARGV[3]` (ms since the epoch) unless the key holds a
/// frame written at or after `ARGV[2]` (its `cached_at`, bytes 6..13, big-endian), a tombstone
/// (version 254: removed within the replay horizon), or a frame of a version other than 1 and 2
/// (a newer instance wrote it). A value that is not a frame is overwritten.
pub(crate) const SET_IF_NEWER: &str = r"
local cur = redis.call('GET', KEYS[1])
if cur and string.len(cur) >= 4 and string.sub(cur, 1, 3) == 'AIC' then
  local version = string.byte(cur, 4)
  if version ~= 1 and version ~= 2 then return 0 end
  if string.len(cur) >= 13 then
    local written = 0
    for i = 6, 13 do written = written * 256 + string.byte(cur, i) end
    if written >= tonumber(ARGV[2]) then return 0 end
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[3])
return 1
";

/// The queue with the signal that wakes its replayer.
pub(crate) struct ReplayQueue {
    queue: Queue,
    /// Woken when Redis returns (by the link) and when an item is queued while Redis looks
    /// available (a lone timeout), so the replayer runs.
    pub(crate) wake: Arc<Notify>,
    replayer_started: AtomicBool,
    replaying: tokio::sync::Mutex<()>,
}

impl ReplayQueue {
    pub(crate) fn new(capacity: usize, max_bytes: usize, wake: Arc<Notify>) -> Self {
        Self {
            queue: Queue::new(capacity, max_bytes),
            wake,
            replayer_started: AtomicBool::new(false),
            replaying: tokio::sync::Mutex::new(()),
        }
    }

    /// Counts a queued write dropped for being older than the replay horizon.
    pub(crate) fn count_expired(&self) {
        self.counters().expired.fetch_add(1, Ordering::Relaxed);
    }

    /// The queue's counters.
    pub(crate) fn counters(&self) -> &ReplayCounters {
        &self.queue.counters
    }

    /// Whether a replay is running right now.
    pub(crate) fn is_replaying(&self) -> bool {
        self.replaying.try_lock().is_err()
    }

    /// Whether replay is on (capacity above 0).
    pub(crate) fn is_enabled(&self) -> bool {
        self.queue.is_enabled()
    }

    /// Queues `item`; false when replay is off.
    pub(crate) fn push(&self, item: Pending) -> bool {
        self.queue.push(item)
    }

    /// Drops the queued writes and deletes of the keys `pattern` matches.
    pub(crate) fn forget(&self, pattern: &KeyPattern) {
        self.queue.forget(pattern);
    }

    /// Whether a removal still waiting for Redis covers `key`.
    pub(crate) fn removal_covers(&self, key: &CacheKey) -> bool {
        self.queue.removal_covers(key)
    }

    /// A mark of the replay's progress: a removal takes it before its Redis step and asks
    /// [`replayed_since`](Self::replayed_since) after it.
    pub(crate) fn mark(&self) -> u64 {
        self.queue.taken()
    }

    /// Whether a replay ran (or is running) since `mark`: a replayed write may then have landed
    /// after the removal's Redis step.
    pub(crate) fn replayed_since(&self, mark: u64) -> bool {
        self.is_replaying() || self.queue.taken() != mark
    }

    /// Items waiting.
    pub(crate) fn depth(&self) -> usize {
        self.queue.depth()
    }

    fn take(&self) -> Option<Taken<'_>> {
        self.queue.take()
    }
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
    // Always wake the replayer: with the breaker closed (a lone failure) it replays soon; with
    // it open it asks for the link on its own backoff, so the queue drains without traffic.
    queue.wake.notify_one();
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
    let counters = queue.counters();
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
    // Counted from the queue's counters, not from what each call returns: a call the deadline
    // cuts has made progress too, and so has the background replayer meanwhile.
    let processed = || {
        let counters = queue.counters();
        [&counters.replayed, &counters.skipped, &counters.failed]
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum::<u64>()
    };
    let before = processed();
    // An item the background replayer has taken is out of the queue but not applied yet:
    // `replay_pending` waits for the replay lock, so the flush is done only when a pass of its
    // own found the queue empty and no other pass has started since.
    let mut settled = false;
    loop {
        match tokio::time::timeout_at(deadline, replay_pending(target)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::error!(error = %e, "Redis refuses the cache; the replay queue is not flushed");
                break;
            }
            Err(_) => break,
        }
        settled = queue.depth() == 0 && !queue.is_replaying();
        if settled || tokio::time::Instant::now() >= deadline {
            break;
        }
        // The store is unavailable: asking for the connection lets a probe run; wait for it.
        target.poke();
        tokio::time::sleep_until(
            deadline.min(tokio::time::Instant::now() + Duration::from_millis(20)),
        )
        .await;
    }
    let flushed = processed().saturating_sub(before);
    // An item still being replayed when the flush gave up is not flushed either.
    let remaining = if settled {
        0
    } else {
        queue.depth() + usize::from(queue.is_replaying())
    };
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
    // None: nothing waits (sleep until woken); Some: items wait, retry after this long.
    let mut backoff: Option<Duration> = None;
    loop {
        match backoff {
            None => wake.notified().await,
            // Woken early when Redis returns; otherwise the replayer asks for the link itself,
            // so that a probe runs even when no request reaches Redis (a cache serving only L1
            // hits) and the queued removals do not wait for traffic.
            Some(delay) => {
                let _ = tokio::time::timeout(delay, wake.notified()).await;
            }
        }
        let Some(target) = target.upgrade() else {
            return;
        };
        if target.is_available() {
            match replay_pending(&target).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(replayed = n, "replayed queued writes to Redis"),
                Err(e) => tracing::warn!(error = %e, "replay stopped: Redis refuses the cache"),
            }
        } else {
            target.poke();
        }
        backoff = if target.replay_queue().depth() == 0 {
            None
        } else {
            let (min, max) = target.retry_delays();
            Some(backoff.map_or(min, |d| (d * 2).min(max)))
        };
    }
}

mod queue;

pub(crate) use queue::{Pending, ReplayCounters};
use queue::{Queue, Taken};

#[cfg(test)]
mod tests;
