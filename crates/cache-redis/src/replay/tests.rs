use super::queue::{Pending, Queue};
use cache_core::{CacheKey, KeyPattern};
use std::sync::atomic::Ordering;

fn key(name: &str) -> CacheKey {
    CacheKey::new(name).unwrap()
}

fn set(name: &str, at: u64) -> Pending {
    Pending::Set {
        key: key(name),
        frame: vec![1; 10],
        cached_at_ms: at,
        expires_at_ms: at + 1000,
        queued_at: std::time::Instant::now(),
    }
}

fn delete(name: &str, at: u64) -> Pending {
    Pending::Delete {
        key: key(name),
        at_ms: at,
    }
}

fn invalidate(pattern: &str, at: u64) -> Pending {
    Pending::Invalidate {
        pattern: KeyPattern::new(pattern).unwrap(),
        at_ms: at,
    }
}

fn drain(queue: &Queue) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(taken) = queue.take() {
        out.push(match taken.item().unwrap() {
            Pending::Set {
                key, cached_at_ms, ..
            } => format!("set {key} {cached_at_ms}"),
            Pending::Delete { key, .. } => format!("del {key}"),
            Pending::Invalidate { pattern, .. } => format!("inv {pattern}"),
        });
        taken.done();
    }
    out
}

fn big() -> usize {
    usize::MAX
}

#[test]
fn newer_writes_replace_older_and_deletes_win() {
    let queue = Queue::new(100, big());
    queue.push(set("a", 1));
    queue.push(set("b", 1));
    queue.push(set("a", 2));
    queue.push(delete("b", 3));
    queue.push(set("b", 4));
    queue.push(set("qa:1", 5));
    queue.push(set("sum:1", 5));
    queue.push(invalidate("qa:*", 6));
    assert_eq!(queue.counters.superseded.load(Ordering::Relaxed), 3);
    assert_eq!(
        drain(&queue),
        vec!["set a 2", "del b", "set b 4", "set sum:1 5", "inv qa:*"],
        "the delete of b stays ahead of b's newer write, so an older stored b cannot survive"
    );
}

#[test]
fn a_delete_that_reached_redis_forgets_the_queued_writes_it_covers() {
    let queue = Queue::new(100, big());
    queue.push(set("qa:1", 1));
    queue.push(set("qa:2", 1));
    queue.push(set("sum:1", 1));
    queue.forget(&KeyPattern::new("qa:1").unwrap());
    assert_eq!(queue.depth(), 2);
    queue.forget(&KeyPattern::new("qa:*").unwrap());
    assert_eq!(drain(&queue), vec!["set sum:1 1"]);
    assert_eq!(queue.counters.superseded.load(Ordering::Relaxed), 2);
}

#[test]
fn a_full_queue_drops_writes_never_removals() {
    // Issue 12, item 2: an invalidation issued early in a long outage outlives later writes.
    let queue = Queue::new(3, big());
    queue.push(invalidate("summarize:*", 1));
    for (i, name) in ["a", "b", "c", "d"].into_iter().enumerate() {
        assert!(queue.push(set(name, u64::try_from(i).unwrap() + 2)));
    }
    assert_eq!(queue.counters.dropped.load(Ordering::Relaxed), 2);
    assert_eq!(drain(&queue), vec!["inv summarize:*", "set c 4", "set d 5"]);
    let off = Queue::new(0, big());
    assert!(!off.push(set("a", 1)), "capacity 0 turns replay off");
    assert_eq!(off.depth(), 0);
}

#[test]
fn the_byte_bound_holds_whatever_the_item_count() {
    let queue = Queue::new(1000, 35);
    for name in ["a", "b", "c", "d", "e"] {
        queue.push(set(name, 1));
    }
    // Each write is 1 + 10 bytes: three fit in 35.
    assert_eq!(queue.depth(), 3);
    assert_eq!(queue.counters.dropped.load(Ordering::Relaxed), 2);
}

#[test]
fn removals_that_overflow_become_one_invalidation_of_everything() {
    let queue = Queue::new(2, big());
    queue.push(delete("a", 10));
    queue.push(delete("b", 20));
    queue.push(delete("c", 30));
    assert_eq!(queue.counters.coarsened.load(Ordering::Relaxed), 3);
    let mut taken = Vec::new();
    while let Some(item) = queue.take() {
        taken.push(item.item().cloned().unwrap());
        item.done();
    }
    assert!(
        matches!(taken.as_slice(), [Pending::Invalidate { pattern, at_ms: 30 }] if pattern.as_str() == "*"),
        "{taken:?}"
    );
}

#[test]
fn coarsened_removals_keep_the_key_shape_they_all_had() {
    let queue = Queue::new(2, big());
    queue.push(delete("qa:1", 10));
    queue.push(Pending::Invalidate {
        pattern: KeyPattern::new("summarize:*").unwrap().with_segments(2),
        at_ms: 20,
    });
    queue.push(delete("qa:2", 30));
    let item = queue.take().unwrap();
    let Some(Pending::Invalidate { pattern, .. }) = item.item().cloned() else {
        panic!("one invalidation expected");
    };
    item.done();
    assert_eq!(pattern.segments(), Some(2));
    assert!(pattern.matches("qa:3"));
    assert!(
        !pattern.matches("t:acme:qa:3"),
        "0.1's tenant keys in the namespace are not the AI cache's"
    );
    // Removals of different shapes fall back to every key.
    let queue = Queue::new(1, big());
    queue.push(delete("qa:1", 10));
    queue.push(delete("a:b:c", 20));
    let item = queue.take().unwrap();
    let Some(Pending::Invalidate { pattern, .. }) = item.item().cloned() else {
        panic!("one invalidation expected");
    };
    item.done();
    assert_eq!(pattern.segments(), None);
}

#[test]
fn pending_removals_cover_reads_until_replayed() {
    let queue = Queue::new(100, big());
    assert!(!queue.removal_covers(&key("qa:1")));
    queue.push(delete("k", 1));
    queue.push(invalidate("qa:*", 2));
    queue.push(set("w", 3));
    assert!(queue.removal_covers(&key("k")));
    assert!(queue.removal_covers(&key("qa:7")));
    assert!(!queue.removal_covers(&key("w")), "a write covers nothing");
    assert!(!queue.removal_covers(&key("qa_long:1")));
    // The delete is being replayed: reads still honour it until it is done.
    let taken = queue.take().unwrap();
    assert!(queue.removal_covers(&key("k")));
    taken.done();
    assert!(!queue.removal_covers(&key("k")));
    assert!(queue.removal_covers(&key("qa:7")));
}

#[test]
fn an_item_put_back_after_a_newer_one_was_queued_is_superseded() {
    let queue = Queue::new(100, big());
    queue.push(set("a", 1));
    let taken = queue.take().unwrap();
    queue.push(set("a", 2));
    drop(taken);
    assert_eq!(drain(&queue), vec!["set a 2"]);
    queue.push(delete("b", 1));
    let taken = queue.take().unwrap();
    drop(taken);
    assert_eq!(queue.depth(), 1, "put back at its place");
    assert!(queue.removal_covers(&key("b")));
}

/// A replay target whose `apply` waits at a gate, so a test can hold an item mid-replay.
struct GatedTarget {
    queue: super::ReplayQueue,
    entered: tokio::sync::Notify,
    gate: tokio::sync::Semaphore,
    applied: std::sync::atomic::AtomicU64,
}

impl super::ReplayTarget for GatedTarget {
    fn replay_queue(&self) -> &super::ReplayQueue {
        &self.queue
    }

    fn is_available(&self) -> bool {
        true
    }

    fn poke(self: &std::sync::Arc<Self>) {}

    fn retry_delays(&self) -> (std::time::Duration, std::time::Duration) {
        (
            std::time::Duration::from_millis(1),
            std::time::Duration::from_millis(1),
        )
    }

    async fn apply(self: &std::sync::Arc<Self>, _item: &Pending) -> cache_core::Result<bool> {
        self.entered.notify_one();
        let _permit = self.gate.acquire().await;
        self.applied.fetch_add(1, Ordering::SeqCst);
        Ok(true)
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_flush_waits_for_the_item_another_replay_has_taken() {
    use std::sync::Arc;
    use std::time::Duration;

    let target = Arc::new(GatedTarget {
        queue: super::ReplayQueue::new(16, big(), Arc::new(tokio::sync::Notify::new())),
        entered: tokio::sync::Notify::new(),
        gate: tokio::sync::Semaphore::new(0),
        applied: std::sync::atomic::AtomicU64::new(0),
    });
    assert!(target.queue.push(invalidate("inv:*", 10)));
    // The background replayer's pass takes the only item and waits at the gate with it.
    let replayer = tokio::spawn({
        let target = Arc::clone(&target);
        async move { super::replay_pending(&target).await }
    });
    target.entered.notified().await;
    assert_eq!(
        target.queue.depth(),
        0,
        "taken: out of the queue, not applied"
    );

    let flush = tokio::spawn({
        let target = Arc::clone(&target);
        async move { super::flush(&target, Duration::from_secs(30)).await }
    });
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    assert!(
        !flush.is_finished(),
        "the flush returned with the item in flight"
    );
    assert_eq!(target.applied.load(Ordering::SeqCst), 0);

    target.gate.add_permits(1);
    let report = flush.await.unwrap();
    assert_eq!(
        target.applied.load(Ordering::SeqCst),
        1,
        "applied before the flush returned"
    );
    assert_eq!(report.remaining, 0, "{report:?}");
    assert_eq!(replayer.await.unwrap().unwrap(), 1);
}
