//! Removals made after a backup stay removed.

use cache_core::{CacheKey, FrameStore, KeyPattern};
use cache_migrate::RestorePolicy;
use cache_testkit::{RedisServer, ServerConfig};

use super::{fill, key, manager, store};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_never_brings_back_what_was_removed_after_the_backup() {
    let server = RedisServer::start(ServerConfig::default());
    let target = store(&server, "app").await;
    fill(&target, "qa", 50, 600).await;
    fill(&target, "sum", 50, 600).await;
    let mut file = Vec::new();
    manager()
        .backup(&target, &KeyPattern::all(), &mut file)
        .await
        .unwrap();

    // After the backup: one key deleted, one operation invalidated, and one removed key's
    // tombstone lost (as eviction would lose it): the pattern record still covers it.
    assert!(target.delete(&key("qa:000007")).await.unwrap());
    let mut ignore = |_: &CacheKey| {};
    let sums = KeyPattern::new("sum:*").unwrap().with_segments(2);
    assert_eq!(
        target.remove_matching(&sums, &mut ignore).await.unwrap(),
        50
    );
    let mut conn = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = redis::cmd("UNLINK")
        .arg("app:sum:000003")
        .query_async(&mut conn)
        .await
        .unwrap();

    for policy in [
        RestorePolicy::SkipExisting,
        RestorePolicy::OverwriteIfNewer,
        RestorePolicy::Overwrite,
    ] {
        let restored = manager()
            .restore(&mut file.as_slice(), &target, policy)
            .await
            .unwrap();
        assert_eq!(restored.keys_processed, 100, "{policy:?}");
        assert_eq!(
            target.get(&key("qa:000007")).await.unwrap(),
            None,
            "{policy:?}"
        );
        for i in 0..50 {
            let k = key(&format!("sum:{i:06}"));
            assert_eq!(target.get(&k).await.unwrap(), None, "{policy:?} {k}");
        }
        assert!(target.get(&key("qa:000008")).await.unwrap().is_some());
        let expected_writes = if policy == RestorePolicy::Overwrite {
            49
        } else {
            0
        };
        assert_eq!(restored.keys_restored, expected_writes, "{policy:?}");
    }
}
