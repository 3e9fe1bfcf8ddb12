//! A slot moved to another primary while the store runs, as a resharding does. Commands that our
//! table still sends to the old owner are redirected (`ASK` while the slot moves, `MOVED` once
//! it has moved) and none fails, scripts included (the new owner may not have loaded them yet);
//! the store then reads the topology again and sends the slot's keys to its new owner.

use std::time::Duration;

use aicache::{CacheInterface, CacheKey, FrameStore, GenericRedisCache, RedisStore};
use cache_testkit::RedisCluster;

use super::cluster_config;
use crate::support::eventually;

/// Calls of `command` the node on `port` has seen, answered or refused with a redirect
/// (`INFO commandstats`).
async fn calls_seen(cluster: &RedisCluster, port: u16, command: &str) -> (u64, u64) {
    let mut conn = crate::support::raw(node(cluster, port)).await;
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut conn)
        .await
        .unwrap();
    let Some(line) = info
        .lines()
        .find_map(|l| l.strip_prefix(&format!("cmdstat_{command}:")))
    else {
        return (0, 0);
    };
    let field = |wanted: &str| {
        line.split(',')
            .filter_map(|field| field.split_once('='))
            .find(|(name, _)| *name == wanted)
            .map_or(0, |(_, count)| count.parse::<u64>().unwrap())
    };
    (field("calls"), field("rejected_calls"))
}

fn node(cluster: &RedisCluster, port: u16) -> &cache_testkit::RedisServer {
    cluster.nodes().iter().find(|n| n.port() == port).unwrap()
}

/// Makes the node on `port` forget every script, so the next call of one answers `NOSCRIPT`.
async fn flush_scripts(cluster: &RedisCluster, port: u16) {
    let mut conn = crate::support::raw(node(cluster, port)).await;
    redis::cmd("SCRIPT")
        .arg("FLUSH")
        .exec_async(&mut conn)
        .await
        .unwrap();
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
    let cache = GenericRedisCache::connect(config.clone()).await.unwrap();
    // Another instance, idle until it calls a script: its table is stale when it does.
    let idle = RedisStore::connect(&config, None).await.unwrap();
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
    let (slot, from, to) = cluster.slot_move_for(&name);

    // While the slot moves: first still held by the old owner, then answered with `ASK`.
    tokio::task::block_in_place(|| cluster.begin_slot_move(slot, from, to));
    assert_eq!(value_of(&cache, moving).await.as_deref(), Some("k7"));
    tokio::task::block_in_place(|| cluster.migrate_slot_keys(slot, from, to));
    let (_, asked_before) = calls_seen(&cluster, from, "get").await;
    assert_eq!(value_of(&cache, moving).await.as_deref(), Some("k7"));
    let (_, asked) = calls_seen(&cluster, from, "get").await;
    assert_eq!(
        asked,
        asked_before + 1,
        "the read went to the old owner, which answered ASK"
    );
    cache.set(moving, "during".into(), None).await.unwrap();
    assert_eq!(value_of(&cache, moving).await.as_deref(), Some("during"));
    // A script through `ASK`, on a node that must load it first.
    flush_scripts(&cluster, to).await;
    assert!(idle.remaining_ttl(moving).await.unwrap().is_some());

    // Moved: the old owner answers `MOVED`; a script, again on a node without it.
    tokio::task::block_in_place(|| cluster.finish_slot_move(slot, from, to));
    flush_scripts(&cluster, to).await;
    let (_, refused_before) = calls_seen(&cluster, from, "evalsha").await;
    assert!(idle.remaining_ttl(moving).await.unwrap().is_some());
    let (_, refused) = calls_seen(&cluster, from, "evalsha").await;
    assert_eq!(
        refused,
        refused_before + 1,
        "the script went to the old owner first"
    );
    assert_eq!(value_of(&cache, moving).await.as_deref(), Some("during"));
    cache.set(moving, "after".into(), None).await.unwrap();
    let both = cache
        .get_many(&[moving.clone(), keys[0].clone()])
        .await
        .unwrap();
    assert_eq!(both[0].as_deref(), Some(&b"after"[..]));
    assert_eq!(both[1].as_deref(), Some(&b"k0"[..]));

    // The store learned the new owner: reads of the slot go there, and none to the old one.
    let followed = eventually(Duration::from_secs(10), || async {
        let (old_before, new_before) = (
            calls_seen(&cluster, from, "get").await,
            calls_seen(&cluster, to, "get").await,
        );
        for _ in 0..5 {
            assert_eq!(value_of(&cache, moving).await.as_deref(), Some("after"));
        }
        let (old, new) = (
            calls_seen(&cluster, from, "get").await,
            calls_seen(&cluster, to, "get").await,
        );
        old == old_before && new.0 == new_before.0 + 5
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_moved_to_a_new_primary_serves_from_it() {
    // A scale-out: the new primary owns no slot, so neither our table nor redis-rs's map has a
    // connection to it when the first redirect names it.
    let mut cluster = RedisCluster::start();
    let config = cluster_config(&cluster, "scaleout").with_l1(None);
    let prefix = config.key_prefix.clone();
    let cache = GenericRedisCache::connect(config.clone()).await.unwrap();
    let idle = RedisStore::connect(&config, None).await.unwrap();
    let moving = CacheKey::new("moving").unwrap();
    cache.set(&moving, "before".into(), None).await.unwrap();
    let name = format!("{prefix}:{moving}");
    let (slot, from) = (cluster.slot_of(&name), cluster.primary_for(&name));
    let to = tokio::task::block_in_place(|| cluster.add_primary());

    tokio::task::block_in_place(|| {
        cluster.begin_slot_move(slot, from, to);
        cluster.migrate_slot_keys(slot, from, to);
    });
    assert_eq!(value_of(&cache, &moving).await.as_deref(), Some("before"));
    cache.set(&moving, "during".into(), None).await.unwrap();
    assert_eq!(value_of(&cache, &moving).await.as_deref(), Some("during"));
    assert!(idle.remaining_ttl(&moving).await.unwrap().is_some());
    let (answered, _) = calls_seen(&cluster, to, "get").await;
    assert_eq!(answered, 2, "the new primary answered both reads");

    tokio::task::block_in_place(|| cluster.finish_slot_move(slot, from, to));
    assert_eq!(value_of(&cache, &moving).await.as_deref(), Some("during"));
    assert!(cache.delete(&moving).await.unwrap());
    assert_eq!(value_of(&cache, &moving).await, None);
    assert_eq!(
        idle.get(&moving).await.unwrap(),
        None,
        "removed for every instance"
    );
}
