//! The protocol's interleavings, ordered with gates (oneshot channels), never with sleeps.
//!
//! Each test was checked to fail with the check it names removed from `near.rs`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use cache_core::{CacheKey, KeyPattern, Ttl};
use tokio::sync::oneshot;

use super::{Fetched, Fill, Lookup, NearCache};
use crate::MemoryCacheConfig;

/// A shared tier for the tests: a map under a lock.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<HashMap<String, Bytes>>>);

impl Shared {
    fn get(&self, key: &str) -> Option<Bytes> {
        self.0.lock().unwrap().get(key).cloned()
    }
    fn set(&self, key: &str, value: &'static str) {
        self.0
            .lock()
            .unwrap()
            .insert(key.to_string(), Bytes::from(value));
    }
    fn remove(&self, key: &str) -> bool {
        self.0.lock().unwrap().remove(key).is_some()
    }
}

fn near() -> Arc<NearCache<Bytes>> {
    Arc::new(NearCache::new(Some(MemoryCacheConfig::default())).unwrap())
}

fn key(name: &str) -> CacheKey {
    CacheKey::new(name).unwrap()
}

fn ttl() -> Ttl {
    Ttl::from_secs(60).unwrap()
}

/// A read whose shared-tier step read the value, then waits at `gate` before it returns it.
async fn gated_read(
    near: Arc<NearCache<Bytes>>,
    shared: Shared,
    name: &'static str,
    read_done: oneshot::Sender<()>,
    gate: oneshot::Receiver<()>,
) -> Lookup<Bytes, Bytes> {
    near.read(&key(name), async move {
        let value = shared.get(name);
        read_done.send(()).unwrap();
        gate.await.unwrap();
        Ok(value.map(|v| Fetched {
            answer: v.clone(),
            promote: Some((v, ttl())),
        }))
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn a_delete_racing_a_read_never_leaves_the_value_in_l1() {
    // The read's GET reaches the shared tier before the delete's UNLINK, and its promotion lands
    // after the delete's first fence: the second fence must undo it. (Fails without the fence
    // that `remove` runs after its shared-tier step.)
    let (near, shared) = (near(), Shared::default());
    shared.set("k", "old");
    let (delete_started_tx, delete_started) = oneshot::channel::<()>();
    let (unlink_gate_tx, unlink_gate) = oneshot::channel::<()>();
    let deleter = tokio::spawn({
        let (near, shared) = (Arc::clone(&near), shared.clone());
        async move {
            near.remove(&key("k"), async move {
                delete_started_tx.send(()).unwrap();
                unlink_gate.await.unwrap();
                shared.remove("k")
            })
            .await
        }
    });
    delete_started.await.unwrap();
    // The delete has fenced once and waits before its UNLINK; a read starts now.
    let (read_done_tx, read_done) = oneshot::channel();
    let (read_gate_tx, read_gate) = oneshot::channel();
    let reader = tokio::spawn(gated_read(
        Arc::clone(&near),
        shared.clone(),
        "k",
        read_done_tx,
        read_gate,
    ));
    read_done.await.unwrap();
    read_gate_tx.send(()).unwrap();
    let lookup = reader.await.unwrap();
    assert!(
        matches!(lookup, Lookup::L2(_, Fill::Filled)),
        "the read promoted between the fences"
    );
    unlink_gate_tx.send(()).unwrap();
    let (_, removed) = deleter.await.unwrap();
    assert!(removed);
    assert_eq!(near.get("k"), None, "the deleted value came back into L1");
}

#[tokio::test]
async fn a_read_that_began_before_a_removal_does_not_promote() {
    // Fails without the epoch check in `promote`.
    let (near, shared) = (near(), Shared::default());
    shared.set("k", "old");
    let (read_done_tx, read_done) = oneshot::channel();
    let (read_gate_tx, read_gate) = oneshot::channel();
    let reader = tokio::spawn(gated_read(
        Arc::clone(&near),
        shared.clone(),
        "k",
        read_done_tx,
        read_gate,
    ));
    read_done.await.unwrap();
    let (_, removed) = near.remove(&key("k"), async { shared.remove("k") }).await;
    assert!(removed);
    read_gate_tx.send(()).unwrap();
    assert!(matches!(reader.await.unwrap(), Lookup::L2(_, Fill::Raced)));
    assert_eq!(near.get("k"), None);
}

#[tokio::test]
async fn write_many_racing_a_delete_does_not_fill_l1() {
    // write_many's shared-tier step lands, a delete of one of its keys completes, then write_many
    // finishes: L1 must not hold what the shared tier no longer does. (Fails without the epoch
    // check in `finish_write`, the check the old `set_many` lacked.)
    let (near, shared) = (near(), Shared::default());
    let (written_tx, written) = oneshot::channel::<()>();
    let (gate_tx, gate) = oneshot::channel::<()>();
    let keys = vec![key("a"), key("b")];
    let writer = tokio::spawn({
        let (near, shared) = (Arc::clone(&near), shared.clone());
        async move {
            near.write_many(
                &keys,
                async move {
                    shared.set("a", "new-a");
                    shared.set("b", "new-b");
                    written_tx.send(()).unwrap();
                    gate.await.unwrap();
                },
                |(), index| Some((Bytes::from(["new-a", "new-b"][index]), ttl())),
            )
            .await
            .1
        }
    });
    written.await.unwrap();
    let (_, removed) = near.remove(&key("a"), async { shared.remove("a") }).await;
    assert!(removed);
    gate_tx.send(()).unwrap();
    let fills = writer.await.unwrap();
    assert_eq!(fills, vec![Fill::Raced, Fill::Filled]);
    assert_eq!(
        near.get("a"),
        None,
        "L1 holds a value the shared tier deleted"
    );
    assert_eq!(near.get("b").as_deref(), Some(&b"new-b"[..]));
}

#[tokio::test]
async fn a_read_completing_during_an_invalidation_is_undone() {
    // A read begins after the invalidation's first fence, reads the old value before the walk
    // reaches it, and promotes before the invalidation returns: the invalidation's second fence
    // must drop it. (Fails without the `fence_matching` after the walk.)
    let (near, shared) = (near(), Shared::default());
    shared.set("qa:1", "old");
    let (walk_started_tx, walk_started) = oneshot::channel::<()>();
    let (walk_gate_tx, walk_gate) = oneshot::channel::<()>();
    let invalidation = tokio::spawn({
        let (near, shared) = (Arc::clone(&near), shared.clone());
        async move {
            let pattern = KeyPattern::new("qa:*").unwrap();
            near.invalidate(&pattern, async move {
                walk_started_tx.send(()).unwrap();
                walk_gate.await.unwrap();
                shared.remove("qa:1")
            })
            .await
        }
    });
    walk_started.await.unwrap();
    let (read_done_tx, read_done) = oneshot::channel();
    let (read_gate_tx, read_gate) = oneshot::channel();
    let reader = tokio::spawn(gated_read(
        Arc::clone(&near),
        shared.clone(),
        "qa:1",
        read_done_tx,
        read_gate,
    ));
    read_done.await.unwrap();
    read_gate_tx.send(()).unwrap();
    assert!(matches!(reader.await.unwrap(), Lookup::L2(_, Fill::Filled)));
    walk_gate_tx.send(()).unwrap();
    let (l1_removed, walked) = invalidation.await.unwrap();
    assert!(walked);
    assert_eq!(l1_removed, vec![key("qa:1")], "counted once");
    assert_eq!(near.get("qa:1"), None, "the invalidated value stayed in L1");
}

#[tokio::test]
async fn a_write_racing_a_read_leaves_the_new_value() {
    // A read that began after the write's first fence reads the old value and promotes after the
    // write filled L1: it must not overwrite the new value. (Fails without the epoch bump in
    // `finish_write`.)
    let (near, shared) = (near(), Shared::default());
    shared.set("k", "old");
    let (read_done_tx, read_done) = oneshot::channel();
    let (read_gate_tx, read_gate) = oneshot::channel();
    let (write_started_tx, write_started) = oneshot::channel::<()>();
    let (write_gate_tx, write_gate) = oneshot::channel::<()>();
    let writer = tokio::spawn({
        let (near, shared) = (Arc::clone(&near), shared.clone());
        async move {
            near.write(
                &key("k"),
                async move {
                    write_started_tx.send(()).unwrap();
                    write_gate.await.unwrap();
                    shared.set("k", "new");
                },
                |()| Some((Bytes::from_static(b"new"), ttl())),
            )
            .await
            .1
        }
    });
    write_started.await.unwrap();
    let reader = tokio::spawn(gated_read(
        Arc::clone(&near),
        shared.clone(),
        "k",
        read_done_tx,
        read_gate,
    ));
    read_done.await.unwrap();
    write_gate_tx.send(()).unwrap();
    assert_eq!(writer.await.unwrap(), Fill::Filled);
    read_gate_tx.send(()).unwrap();
    assert!(matches!(reader.await.unwrap(), Lookup::L2(_, Fill::Raced)));
    assert_eq!(near.get("k").as_deref(), Some(&b"new"[..]));
}

#[tokio::test]
async fn a_cancelled_removal_still_fences_again() {
    // The removal's future is dropped after its shared-tier step began; a read that promoted in
    // between must still be undone. (Fails without the fence in `FenceOnDrop::drop`.)
    let (near, shared) = (near(), Shared::default());
    shared.set("k", "old");
    let (started_tx, started) = oneshot::channel::<()>();
    let removal = {
        let (near, shared) = (Arc::clone(&near), shared.clone());
        tokio::spawn(async move {
            near.remove(&key("k"), async move {
                shared.remove("k");
                started_tx.send(()).unwrap();
                std::future::pending::<()>().await;
            })
            .await
        })
    };
    started.await.unwrap();
    // The shared tier lost the key, but this read began before and promotes now: emulate a GET
    // that reached the server first by promoting with a ticket taken after the first fence.
    let ticket = near.begin_read("k");
    assert_eq!(
        near.promote(&key("k"), ticket, Bytes::from_static(b"old"), ttl()),
        Fill::Filled
    );
    removal.abort();
    assert!(removal.await.unwrap_err().is_cancelled());
    assert_eq!(near.get("k"), None);
}

#[tokio::test]
async fn without_l1_every_step_only_runs_the_shared_tier() {
    let near: NearCache<Bytes> = NearCache::new(None).unwrap();
    let (value, fill) = near.write(&key("k"), async { 7 }, |_| None).await;
    assert_eq!((value, fill), (7, Fill::Skipped));
    let lookup = near
        .read(&key("k"), async {
            Ok(Some(Fetched {
                answer: 1,
                promote: Some((Bytes::new(), ttl())),
            }))
        })
        .await
        .unwrap();
    assert!(matches!(lookup, Lookup::L2(1, Fill::Skipped)));
}

/// "k0" and another key of its fence shard, found by hashing (the hash's output may change with
/// its version or the platform).
fn same_shard() -> [String; 2] {
    let first = "k0".to_string();
    let partner = (1..)
        .map(|i| format!("k{i}"))
        .find(|k| super::shard_of(k) == super::shard_of(&first))
        .unwrap();
    [first, partner]
}

#[test]
fn keys_share_a_shard_as_the_tests_assume() {
    let [first, partner] = same_shard();
    assert_ne!(first, partner);
    assert_eq!(super::shard_of(&first), super::shard_of(&partner));
}

#[tokio::test]
async fn write_many_of_keys_sharing_a_shard_fills_them_all() {
    // Fails when each key's epoch is taken at its own fence (the batch's later fences move it).
    let near = near();
    let pair = same_shard();
    let keys: Vec<CacheKey> = pair.iter().map(|k| key(k)).collect();
    let (_, fills) = near
        .write_many(&keys, async {}, |(), i| {
            Some((Bytes::from(pair[i].clone()), ttl()))
        })
        .await;
    assert_eq!(fills, vec![Fill::Filled, Fill::Filled]);
    assert_eq!(near.get("k0").as_deref(), Some(&b"k0"[..]));
}

#[tokio::test]
async fn a_read_racing_write_many_of_a_shared_shard_leaves_no_old_value() {
    // A read of k0 begins after the batch's fences, reads the old value and promotes it before
    // the batch's shared-tier step lands; the batch must replace or drop it.
    let (near, shared) = (near(), Shared::default());
    shared.set("k0", "old");
    let (started_tx, started) = oneshot::channel::<()>();
    let (gate_tx, gate) = oneshot::channel::<()>();
    let [_, partner] = same_shard();
    let keys: Vec<CacheKey> = [key("k0"), key(&partner)].into();
    let writer = tokio::spawn({
        let (near, shared) = (Arc::clone(&near), shared.clone());
        async move {
            near.write_many(
                &keys,
                async move {
                    started_tx.send(()).unwrap();
                    gate.await.unwrap();
                    shared.set("k0", "new");
                    shared.set(&partner, "new");
                },
                |(), _| Some((Bytes::from_static(b"new"), ttl())),
            )
            .await
            .1
        }
    });
    started.await.unwrap();
    let ticket = near.begin_read("k0");
    let old = shared.get("k0").unwrap();
    assert_eq!(near.promote(&key("k0"), ticket, old, ttl()), Fill::Filled);
    gate_tx.send(()).unwrap();
    writer.await.unwrap();
    assert_ne!(
        near.get("k0").as_deref(),
        Some(&b"old"[..]),
        "the old value survived the write"
    );
}

#[tokio::test]
async fn a_write_raced_by_a_fence_on_its_shard_keeps_no_copy() {
    // write(k0) fences; a read promotes the old value; a delete of its partner (same shard) fences; the
    // write finishes raced. Its L1 must not keep the old value the read promoted. (Fails when a
    // raced write leaves L1 alone.)
    let (near, shared) = (near(), Shared::default());
    shared.set("k0", "old");
    let (started_tx, started) = oneshot::channel::<()>();
    let (gate_tx, gate) = oneshot::channel::<()>();
    let writer = tokio::spawn({
        let (near, shared) = (Arc::clone(&near), shared.clone());
        async move {
            near.write(
                &key("k0"),
                async move {
                    started_tx.send(()).unwrap();
                    gate.await.unwrap();
                    shared.set("k0", "new");
                },
                |()| Some((Bytes::from_static(b"new"), ttl())),
            )
            .await
            .1
        }
    });
    started.await.unwrap();
    let ticket = near.begin_read("k0");
    let old = shared.get("k0").unwrap();
    assert_eq!(near.promote(&key("k0"), ticket, old, ttl()), Fill::Filled);
    near.remove(&key(&same_shard()[1]), async {}).await;
    gate_tx.send(()).unwrap();
    assert_eq!(writer.await.unwrap(), Fill::Raced);
    assert_eq!(near.get("k0"), None, "L1 kept the value the write replaced");
}

#[tokio::test]
async fn a_memory_only_insert_survives_a_racing_fence() {
    // Without a shared tier the L1 copy is the only one: an insert never loses to a fence of its
    // shard, while a write racing one would keep no copy.
    let near = near();
    near.remove(&key(&same_shard()[1]), async {}).await;
    assert_eq!(
        near.insert(&key("k0"), Bytes::from_static(b"only"), ttl()),
        Fill::Filled
    );
    near.invalidate(&KeyPattern::new("other:*").unwrap(), async {})
        .await;
    assert_eq!(near.get("k0").as_deref(), Some(&b"only"[..]));
}
