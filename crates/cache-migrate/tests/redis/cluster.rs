//! Backup, restore and verify with a Redis Cluster on either side: the walk visits every
//! primary, the restore groups its batches by primary (and its script by slot).

use std::time::Duration;

use cache_core::{CacheKey, FrameStore, KeyPattern};
use cache_migrate::{RestorePolicy, VerifyOptions};
use cache_redis::{RedisCacheConfig, RedisStore};
use cache_testkit::{RedisCluster, RedisServer, ServerConfig};

use crate::{db_size, fill, key, store};

async fn cluster_store(cluster: &RedisCluster, namespace: &str) -> RedisStore {
    let config = RedisCacheConfig::default()
        .with_redis_cluster_urls(cluster.urls())
        .with_key_prefix(namespace)
        .with_command_timeout(Duration::from_secs(5))
        .with_connect_timeout(Duration::from_secs(2));
    RedisStore::connect(&config, None).await.unwrap()
}

#[tokio::test]
async fn a_cluster_is_backed_up_restored_and_verified() {
    let cluster = RedisCluster::start();
    let source = cluster_store(&cluster, "app").await;
    fill(&source, "qa", 20_000, 3600).await;
    assert_eq!(source.approximate_len().await.unwrap(), Some(20_000));
    assert!(source.delete(&key("qa:000000")).await.unwrap());
    let mut ignore = |_: &CacheKey| {};
    let removed = KeyPattern::new("qa:00000[12]").unwrap();
    assert_eq!(
        source.remove_matching(&removed, &mut ignore).await.unwrap(),
        2
    );

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cluster.aicbak");
    let backup = crate::manager()
        .backup_to_path(&source, &KeyPattern::all(), &path)
        .await
        .unwrap();
    assert_eq!(backup.keys_backed_up, 19_997, "every primary walked");

    // Into one server, then back into the cluster over what is there.
    let server = RedisServer::start(ServerConfig::default());
    let single = store(&server, "app").await;
    let restored = crate::manager()
        .restore_from_path(&path, &single, RestorePolicy::SkipExisting)
        .await
        .unwrap();
    assert_eq!(restored.keys_restored, 19_997);
    assert_eq!(db_size(&server).await, 19_997);
    let strict = VerifyOptions::default().with_ttl_tolerance(Duration::from_secs(1));
    let check = crate::manager()
        .verify(&source, &single, &strict)
        .await
        .unwrap();
    assert!(check.is_consistent(), "{check:?}");
    assert_eq!(check.keys_matched, 19_997);

    let again = crate::manager()
        .restore_from_path(&path, &source, RestorePolicy::Overwrite)
        .await
        .unwrap();
    assert_eq!(
        again.keys_restored, 19_997,
        "the held keys went through the script, per slot"
    );
    assert!(
        source.get(&key("qa:000000")).await.unwrap().is_none(),
        "a removal stays removed"
    );
    let check = crate::manager()
        .verify(&single, &source, &strict)
        .await
        .unwrap();
    assert!(check.is_consistent(), "{check:?}");
}
