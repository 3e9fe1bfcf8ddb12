//! A slot moved to another primary while the store runs, as a resharding does. Commands that our
//! table still sends to the old owner are redirected (`ASK` while the slot moves, `MOVED` once
//! it has moved) and none fails; the store then reads the topology again and sends the slot's
//! keys to its new owner.

use std::time::Duration;

use aicache::{CacheInterface, CacheKey, GenericRedisCache};
use cache_testkit::RedisCluster;

use super::cluster_config;
use crate::support::eventually;

/// `GET`s the node on `port` has seen: answered, and refused with a redirect.
async fn gets_seen(cluster: &RedisCluster, port: u16) -> u64 {
    let node = cluster.nodes().iter().find(|n| n.port() == port).unwrap();
    let mut conn = crate::support::raw(node).await;
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut conn)
        .await
        .unwrap();
    let Some(line) = info.lines().find_map(|l| l.strip_prefix("cmdstat_get:")) else {
        return 0;
    };
    line.split(',')
        .filter_map(|field| field.split_once('='))
        .filter(|(name, _)| *name == "calls" || *name == "rejected_calls")
        .map(|(_, count)| count.parse::<u64>().unwrap())
        .sum()
}

async fn value_of(cache: &GenericRedisCache, key: &CacheKey) -> Option<String> {
    let value = cache.get(key).await.unwrap()?;
    Some(String::from_utf8(value.to_vec()).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_slot_keeps_serving_and_the_store_follows_it() {
    let cluster = RedisCluster::start();
    let config = cluster_config(&cluster, "reshard").with_l1(None);
    let prefix = config.key_prefix.clone();
    let cache = GenericRedisCache::connect(config).await.unwrap();
    let keys: Vec<CacheKey> = (0..40)
        .map(|i| CacheKey::new(format!("k{i}")).unwrap())
        .collect();
    for key in &keys {
        cache
            .set(key, key.as_str().as_bytes().to_vec().into(), None)
            .await
            .unwrap();
    }
    let moving = &keys[7];
    let name = format!("{prefix}:{moving}");
    let (slot, from) = (cluster.slot_of(&name), cluster.primary_for(&name));
    let to = cluster
        .primary_ports()
        .into_iter()
        .find(|&p| p != from)
        .unwrap();

    // While the slot moves: first still held by the old owner, then answered with `ASK`.
    tokio::task::block_in_place(|| cluster.begin_slot_move(slot, from, to));
    assert_eq!(value_of(&cache, moving).await.as_deref(), Some("k7"));
    tokio::task::block_in_place(|| cluster.migrate_slot_keys(slot, from, to));
    assert_eq!(value_of(&cache, moving).await.as_deref(), Some("k7"));
    cache.set(moving, "during".into(), None).await.unwrap();
    assert_eq!(value_of(&cache, moving).await.as_deref(), Some("during"));

    // Moved: the old owner answers `MOVED`.
    tokio::task::block_in_place(|| cluster.finish_slot_move(slot, from, to));
    assert_eq!(value_of(&cache, moving).await.as_deref(), Some("during"));
    cache.set(moving, "after".into(), None).await.unwrap();
    let both = cache
        .get_many(&[moving.clone(), keys[0].clone()])
        .await
        .unwrap();
    assert_eq!(both[0].as_deref(), Some(&b"after"[..]));
    assert_eq!(both[1].as_deref(), Some(&b"k0"[..]));

    // The store learned the new owner: the old one sees no more reads of the slot.
    let followed = eventually(Duration::from_secs(10), || async {
        let before = gets_seen(&cluster, from).await;
        for _ in 0..5 {
            assert_eq!(value_of(&cache, moving).await.as_deref(), Some("after"));
        }
        gets_seen(&cluster, from).await == before
    })
    .await;
    assert!(
        followed,
        "reads of the moved slot still go to its old owner"
    );

    // A removal reaches the new owner, and every other key still hits.
    cache.delete(moving).await.unwrap();
    assert_eq!(value_of(&cache, moving).await, None);
    for key in keys.iter().filter(|k| *k != moving) {
        assert_eq!(value_of(&cache, key).await.as_deref(), Some(key.as_str()));
    }
}
