//! Serve-stale refreshes in the background (issue 12, item 5): a model slower than `stale_after`
//! still refreshes the entry, and the next request gets the fresh answer.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aicache::{AIResponseCache, AiCacheConfig, AiRequest, RequestControls, Source, Ttl};
use tokio::sync::oneshot;

use crate::support::{eventually, server, test_config};

fn stale_config() -> AiCacheConfig {
    AiCacheConfig::default()
        .with_serve_stale(Duration::from_secs(60), Some(Duration::from_millis(100)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_model_refreshes_the_entry_in_the_background() {
    let server = server();
    let cache: AIResponseCache<String> =
        aicache::connect_ai_cache(stale_config(), Some(&test_config(&server.url())), None)
            .await
            .unwrap();
    let key = cache
        .key(&AiRequest::new("summarize", "refresh me"))
        .unwrap();
    let short = RequestControls::default().with_ttl(Ttl::from_millis(200).unwrap());
    cache.put(&key, "old".to_string(), &short).await.unwrap();
    // Past its TTL, inside the stale window.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let computations = Arc::new(AtomicU64::new(0));
    let (release_tx, release) = oneshot::channel::<()>();
    let first = cache
        .get_or_compute_owned(&key, &RequestControls::default(), {
            let computations = Arc::clone(&computations);
            move || async move {
                computations.fetch_add(1, Ordering::SeqCst);
                release.await.unwrap();
                Ok::<_, std::io::Error>("new".to_string())
            }
        })
        .await
        .unwrap();
    assert_eq!(first.source, Source::Stale);
    assert_eq!(*first.response.value, "old");
    assert_eq!(cache.stats().refreshes.running, 1, "the model call goes on");
    // A caller during the refresh joins it and is told STALE, without a second model call.
    let second = cache
        .get_or_compute_owned(&key, &RequestControls::default(), || async {
            Ok::<_, std::io::Error>("must not run".to_string())
        })
        .await
        .unwrap();
    assert_eq!(second.source, Source::Stale);
    assert_eq!(*second.response.value, "old");
    release_tx.send(()).unwrap();
    assert!(
        eventually(Duration::from_secs(10), || {
            let cache = cache.clone();
            async move { cache.stats().refreshes.completed == 1 }
        })
        .await
    );
    let third = cache
        .get(&key)
        .await
        .unwrap()
        .expect("the refresh stored its answer");
    assert_eq!(*third.value, "new");
    assert_eq!(computations.load(Ordering::SeqCst), 1);
    let refreshes = cache.stats().refreshes;
    assert_eq!((refreshes.started, refreshes.running), (1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_cancels_a_refresh_that_does_not_finish() {
    let server = server();
    let cache: AIResponseCache<String> =
        aicache::connect_ai_cache(stale_config(), Some(&test_config(&server.url())), None)
            .await
            .unwrap();
    let key = cache.key(&AiRequest::new("qa", "never answered")).unwrap();
    let short = RequestControls::default().with_ttl(Ttl::from_millis(200).unwrap());
    cache.put(&key, "old".to_string(), &short).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let served = cache
        .get_or_compute_owned(&key, &RequestControls::default(), || async {
            std::future::pending::<()>().await;
            Ok::<_, std::io::Error>("never".to_string())
        })
        .await
        .unwrap();
    assert_eq!(served.source, Source::Stale);
    assert_eq!(cache.stats().refreshes.running, 1);
    cache.shutdown(Duration::from_millis(100)).await;
    let refreshes = cache.stats().refreshes;
    assert_eq!(
        (refreshes.abandoned, refreshes.running),
        (1, 0),
        "{refreshes:?}"
    );
}
