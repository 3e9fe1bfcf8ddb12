//! A primary killed mid-run: no read or write fails, only its slots degrade (the other primaries
//! keep hitting), writes and deletes to its slots are queued, and after its replica's failover
//! its slots serve again, the queued writes included. A removal made before the primary died
//! stays removed for every instance, because a removal returns only once a replica holds it.

use std::sync::Arc;
use std::time::Duration;

use aicache::{
    Bytes, CacheInterface, CacheKey, FrameStore, GenericRedisCache, RedisCacheConfig, RedisStore,
};
use cache_testkit::RedisCluster;

use super::cluster_config;
use crate::support::eventually;

fn waits_for(cluster: &RedisCluster, limit: Duration) {
    // The background probes and the replayer run on the other worker meanwhile.
    tokio::task::block_in_place(|| cluster.wait_ready(limit)).unwrap();
}

/// Writes each key's own name as its value.
async fn write_own_names(cache: &GenericRedisCache, keys: &[CacheKey]) {
    for key in keys {
        cache
            .set(key, key.as_str().as_bytes().to_vec().into(), None)
            .await
            .unwrap();
    }
}

/// Another instance: a store of the same namespace, with no L1 and no queue of its own.
async fn other_instance(config: &RedisCacheConfig) -> RedisStore {
    RedisStore::connect(&config.clone().with_l1(None), None)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_primary_degrades_only_its_slots_until_its_replica_takes_over() {
    let mut cluster = RedisCluster::start();
    let config = cluster_config(&cluster, "failover").with_l1(None);
    let prefix = config.key_prefix.clone();
    let cache = GenericRedisCache::connect(config.clone()).await.unwrap();
    let keys: Vec<CacheKey> = (0..300)
        .map(|i| CacheKey::new(format!("k{i}")).unwrap())
        .collect();
    write_own_names(&cache, &keys).await;
    let victim = cluster.primary_for(&format!("{prefix}:k20"));
    let on_victim: Vec<bool> = keys
        .iter()
        .map(|k| cluster.primary_for(&format!("{prefix}:{k}")) == victim)
        .collect();
    // The victim's keys outside the first 20 (which `set_many` rewrites during the outage).
    let victims: Vec<&CacheKey> = keys
        .iter()
        .zip(&on_victim)
        .skip(20)
        .filter(|(_, dead)| **dead)
        .map(|(k, _)| k)
        .collect();
    assert!(
        victims.len() >= 4 && victims.len() < keys.len(),
        "{}",
        victims.len()
    );
    // Removed just before the primary dies: its replica holds the tombstone already.
    let removed_before = victims[1];
    assert!(cache.delete(removed_before).await.unwrap());
    cluster.kill(victim);

    // During the outage: no errors, the other primaries' keys hit, the victim's miss.
    for (key, &dead) in keys.iter().zip(&on_victim) {
        let found = cache
            .get(key)
            .await
            .expect("no caller error during the outage");
        if !dead {
            assert!(found.is_some(), "{key} lives on a healthy primary");
        }
    }
    let many = cache
        .get_many(&keys)
        .await
        .expect("get_many during the outage");
    for ((key, dead), found) in keys.iter().zip(&on_victim).zip(&many) {
        if !dead {
            assert!(found.is_some(), "{key} lives on a healthy primary");
        }
    }
    let written_meanwhile = victims[0];
    cache
        .set(
            written_meanwhile,
            b"written during the outage".to_vec().into(),
            None,
        )
        .await
        .expect("a write to a dead primary's slot is queued, not failed");
    let batch: Vec<(CacheKey, Bytes)> = keys[..20]
        .iter()
        .map(|k| (k.clone(), Bytes::from_static(b"batch")))
        .collect();
    cache
        .set_many(&batch, None)
        .await
        .expect("set_many during the outage");
    let removed_meanwhile = victims[2];
    cache
        .delete(removed_meanwhile)
        .await
        .expect("a delete to a dead primary's slot is queued, not failed");
    assert!(cache.get(removed_meanwhile).await.unwrap().is_none());
    let health = cache.health().await;
    assert!(health.replay_queue_depth >= 2, "{health:?}");
    assert!(
        health
            .nodes
            .iter()
            .any(|n| n.address.ends_with(&format!(":{victim}"))
                && !matches!(n.l2, aicache::L2Health::Connected { .. })),
        "the dead primary is reported: {health:?}"
    );

    // The replica takes over; its slots serve again, the queued writes and deletes included.
    waits_for(&cluster, Duration::from_secs(30));
    let drained = eventually(Duration::from_secs(20), || async {
        cache.health().await.replay_queue_depth == 0
    })
    .await;
    assert!(drained, "the queue drained into the new primary");
    assert_eq!(
        cache.get(written_meanwhile).await.unwrap().as_deref(),
        Some(&b"written during the outage"[..])
    );
    let other = other_instance(&config).await;
    for gone in [removed_before, removed_meanwhile] {
        assert!(
            cache.get(gone).await.unwrap().is_none(),
            "{gone} stays removed"
        );
        assert!(
            other.get(gone).await.unwrap().is_none(),
            "{gone} stays removed for another instance"
        );
    }
    for key in &victims[3..] {
        let found = cache.get(key).await.unwrap();
        assert_eq!(
            found.as_deref(),
            Some(key.as_str().as_bytes()),
            "{key} serves again"
        );
    }
    for key in &keys[..20] {
        let found = cache.get(key).await.unwrap();
        assert_eq!(
            found.as_deref(),
            Some(&b"batch"[..]),
            "{key}: the batch landed"
        );
    }
    assert!(!cluster.primary_ports().contains(&victim));
}

/// A removal is done only once a replica holds it: with the replica frozen, the delete waits
/// `command_timeout`, is not reported done, and is queued (reads of the key miss meanwhile).
/// Its replays wait for a replica as well, until the cluster flags the frozen one as failed (then
/// there is nothing to fail over to, and the replay lands on the primary alone).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removal_no_replica_acknowledged_is_queued_until_one_does() {
    let mut cluster = RedisCluster::start();
    let config = cluster_config(&cluster, "wait").with_l1(None);
    let prefix = config.key_prefix.clone();
    let store = Arc::new(other_instance(&config).await);
    let key = CacheKey::new("answer").unwrap();
    let codec = aicache::frame::FrameCodec::new();
    let meta =
        aicache::frame::FrameMeta::new(aicache::unix_millis(), aicache::unix_millis() + 60_000);
    let frame = Bytes::from(
        codec
            .encode(
                &format!("{prefix}:answer"),
                &meta,
                aicache::frame::Codec::Raw,
                b"42",
            )
            .unwrap()
            .bytes,
    );
    store
        .set(&key, frame, aicache::Ttl::from_secs(60).unwrap())
        .await
        .unwrap();
    let primary = cluster.primary_for(&format!("{prefix}:answer"));
    let replica = cluster.replica_of(primary);
    cluster.node_mut(replica).pause();
    let removed = store.delete(&key).await.unwrap();
    assert!(!removed, "not reported done without a replica");
    let stats = store.stats();
    assert_eq!(stats.replay_queued, 1, "queued for replay: {stats:?}");
    assert!(
        store.get(&key).await.unwrap().is_none(),
        "a queued removal hides the key"
    );
    cluster.node_mut(replica).resume();
    let drained = eventually(Duration::from_secs(20), || async {
        store.health().await.replay_queue_depth == 0
    })
    .await;
    assert!(drained);
    let other = other_instance(&config).await;
    assert!(other.get(&key).await.unwrap().is_none());
}

/// A primary that hangs (SIGSTOP: its sockets stay open, it answers nothing) degrades only its
/// own slots too: once its breaker opens, the other primaries' keys keep hitting within the
/// command timeout, and after its replica takes over, its slots serve again while it still hangs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_primary_degrades_only_its_slots() {
    let mut cluster = RedisCluster::start();
    let config = cluster_config(&cluster, "hung")
        .with_l1(None)
        .with_command_timeout(Duration::from_millis(300));
    let prefix = config.key_prefix.clone();
    let cache = GenericRedisCache::connect(config).await.unwrap();
    let keys: Vec<CacheKey> = (0..100)
        .map(|i| CacheKey::new(format!("h{i}")).unwrap())
        .collect();
    write_own_names(&cache, &keys).await;
    let hung = cluster.primary_for(&format!("{prefix}:h0"));
    let on_hung: Vec<bool> = keys
        .iter()
        .map(|k| cluster.primary_for(&format!("{prefix}:{k}")) == hung)
        .collect();
    cluster.node_mut(hung).pause();
    // The first reads of the hung primary's keys time out and open its breaker (its replica
    // may take over a moment later: then its keys hit again, which is fine too).
    for (key, _) in keys.iter().zip(&on_hung).filter(|(_, h)| **h).take(3) {
        assert!(cache.get(key).await.expect("no caller error").is_none());
    }
    let started = std::time::Instant::now();
    for (key, &h) in keys.iter().zip(&on_hung) {
        let found = cache.get(key).await.expect("no caller error");
        if !h {
            assert!(found.is_some(), "{key} lives on a healthy primary");
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "no read waited for the hung primary: {:?}",
        started.elapsed()
    );
    // Still hung: its replica takes over, and its slots serve again from there (redis-rs's own
    // requests to the hung node time out too, so it learns the new primary as we do).
    let back = eventually(Duration::from_secs(30), || async {
        let mut all = true;
        for (key, _) in keys.iter().zip(&on_hung).filter(|(_, h)| **h) {
            all &= cache.get(key).await.ok().flatten().is_some();
        }
        all
    })
    .await;
    assert!(
        back,
        "the hung primary's slots serve again after the failover"
    );
    cluster.node_mut(hung).resume();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_is_followed_with_the_breaker_disabled() {
    // No breaker means no probe: the failed commands themselves must make the store read the
    // topology again, or the dead primary's slots would never serve again.
    let mut cluster = RedisCluster::start();
    let config = cluster_config(&cluster, "nobreaker")
        .with_l1(None)
        .with_breaker(false, 3);
    let prefix = config.key_prefix.clone();
    let cache = GenericRedisCache::connect(config).await.unwrap();
    let key = CacheKey::new("on-the-victim").unwrap();
    let victim = cluster.primary_for(&format!("{prefix}:{key}"));
    cluster.kill(victim);
    assert_eq!(cache.get(&key).await.unwrap(), None, "a miss, not an error");
    waits_for(&cluster, Duration::from_secs(30));
    let serves = eventually(Duration::from_secs(20), || async {
        cache.set(&key, "again".into(), None).await.unwrap();
        cache.get(&key).await.unwrap().is_some()
    })
    .await;
    assert!(serves, "the promoted replica's slots never served again");
}
