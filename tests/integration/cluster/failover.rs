//! A primary killed mid-run: no caller sees an error, only its slots degrade (the other primaries
//! keep hitting), writes to its slots are queued, and after its replica's failover its slots
//! serve again, the queued writes included.

use std::time::Duration;

use aicache::{CacheInterface, CacheKey, GenericRedisCache};
use cache_testkit::RedisCluster;

use super::cluster_config;
use crate::support::eventually;

#[tokio::test]
async fn a_dead_primary_degrades_only_its_slots_until_its_replica_takes_over() {
    let mut cluster = RedisCluster::start();
    let config = cluster_config(&cluster, "failover").with_l1(None);
    let prefix = config.key_prefix.clone();
    let cache = GenericRedisCache::connect(config).await.unwrap();
    let keys: Vec<CacheKey> = (0..300)
        .map(|i| CacheKey::new(format!("k{i}")).unwrap())
        .collect();
    for key in &keys {
        cache
            .set(key, key.as_str().as_bytes().to_vec().into(), None)
            .await
            .unwrap();
    }
    let victim = cluster.primary_for(&format!("{prefix}:k0"));
    let on_victim: Vec<bool> = keys
        .iter()
        .map(|k| cluster.primary_for(&format!("{prefix}:{k}")) == victim)
        .collect();
    assert!(
        on_victim.iter().any(|&v| !v),
        "the other primaries hold keys too"
    );
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
    let written_meanwhile = keys
        .iter()
        .zip(&on_victim)
        .find(|(_, dead)| **dead)
        .unwrap()
        .0;
    cache
        .set(
            written_meanwhile,
            b"written during the outage".to_vec().into(),
            None,
        )
        .await
        .expect("a write to a dead primary's slot is queued, not failed");
    let health = cache.health().await;
    assert_eq!(health.nodes.len(), 3, "{health:?}");
    assert!(
        health
            .nodes
            .iter()
            .any(|n| n.address.ends_with(&format!(":{victim}"))
                && !matches!(n.l2, aicache::L2Health::Connected { .. })),
        "the dead primary is reported: {health:?}"
    );

    // The replica takes over; its slots serve again, the queued write included.
    cluster.wait_ready(Duration::from_secs(30)).unwrap();
    let back = eventually(Duration::from_secs(20), || async {
        cache.get(written_meanwhile).await.ok().flatten().as_deref()
            == Some(&b"written during the outage"[..])
    })
    .await;
    assert!(back, "the queued write reached the new primary");
    for (key, &dead) in keys.iter().zip(&on_victim) {
        if dead && key != written_meanwhile {
            let found = cache.get(key).await.unwrap();
            assert_eq!(
                found.as_deref(),
                Some(key.as_str().as_bytes()),
                "{key} serves again"
            );
        }
    }
    assert!(!cluster.primary_ports().contains(&victim));
}
