//! The AI layer over the cluster: answers shared between instances through every primary, and
//! an operation's invalidation reaching every primary without leaving its namespace.

use aicache::{AIResponseCache, AiCacheConfig, AiRequest, MemoryCacheConfig, RequestControls};
use cache_testkit::RedisCluster;
use serde_json::{Value, json};

use super::{cluster_config, fresh_prefix};

async fn ai_cache(tenant: &str, l1: bool) -> AIResponseCache<Value> {
    let cluster = RedisCluster::shared();
    let config = AiCacheConfig::default()
        .with_tenant(tenant)
        .with_l1(l1.then(|| MemoryCacheConfig::default().with_max_entries(10_000)));
    aicache::connect_ai_cache(config, Some(&cluster_config(cluster, "ai")), None)
        .await
        .unwrap()
}

/// Keys holding values (not tombstones) under `pattern`, counted on every primary.
async fn held_per_primary(pattern: &str) -> Vec<usize> {
    let cluster = RedisCluster::shared();
    let mut counts = Vec::new();
    for port in cluster.primary_ports() {
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let keys = crate::support::keys_with_values(&mut conn, pattern).await;
        counts.push(keys.len());
    }
    counts
}

fn tenant() -> String {
    fresh_prefix("t").replace('-', "_")
}

#[tokio::test]
async fn answers_are_shared_through_every_primary() {
    let tenant = tenant();
    let writer = ai_cache(&tenant, true).await;
    let reader = ai_cache(&tenant, false).await;
    for i in 0..300 {
        let key = writer
            .key(&AiRequest::new("summarize", &format!("text {i}")))
            .unwrap();
        writer
            .put(&key, json!({ "summary": i }), &RequestControls::default())
            .await
            .unwrap();
    }
    for i in 0..300 {
        let key = reader
            .key(&AiRequest::new("summarize", &format!("text {i}")))
            .unwrap();
        let found = reader.get(&key).await.unwrap().expect("an L2 hit");
        assert_eq!(*found.value, json!({ "summary": i }));
    }
    let spread = held_per_primary(&format!("aicache:t:{tenant}:v1:*")).await;
    assert_eq!(spread.iter().sum::<usize>(), 300, "{spread:?}");
    assert!(
        spread.iter().all(|&n| n > 0),
        "every primary holds some: {spread:?}"
    );
}

#[tokio::test]
async fn invalidate_by_operation_reaches_every_primary_and_stays_in_its_namespace() {
    let (mine, theirs) = (tenant(), tenant());
    let cache = ai_cache(&mine, true).await;
    let other = ai_cache(&theirs, true).await;
    for i in 0..200 {
        for (target, operation) in [(&cache, "summarize"), (&cache, "qa"), (&other, "summarize")] {
            let text = format!("text {i}");
            let request = if operation == "qa" {
                AiRequest::new(operation, &text).with_question("why?")
            } else {
                AiRequest::new(operation, &text)
            };
            let key = target.key(&request).unwrap();
            target
                .put(&key, json!(i), &RequestControls::default())
                .await
                .unwrap();
        }
    }
    assert_eq!(
        cache.invalidate_by_operation("summarize").await.unwrap(),
        200
    );
    let left = held_per_primary(&format!("aicache:t:{mine}:v1:summarize:*")).await;
    assert_eq!(left.iter().sum::<usize>(), 0, "on every primary: {left:?}");
    for i in 0..200 {
        let gone = cache
            .key(&AiRequest::new("summarize", &format!("text {i}")))
            .unwrap();
        assert!(cache.get(&gone).await.unwrap().is_none(), "removed {i}");
    }
    let kept = held_per_primary(&format!("aicache:t:{mine}:v1:*")).await;
    assert_eq!(kept.iter().sum::<usize>(), 200, "qa stays: {kept:?}");
    let elsewhere = held_per_primary(&format!("aicache:t:{theirs}:v1:*")).await;
    assert_eq!(
        elsewhere.iter().sum::<usize>(),
        200,
        "the other tenant stays: {elsewhere:?}"
    );
}

#[tokio::test]
async fn build_ai_cache_takes_the_cluster_from_the_environment() {
    let cluster = RedisCluster::shared();
    let tenant = tenant();
    let vars = [
        (
            "AICACHE_REDIS_CLUSTER_URLS".to_string(),
            cluster.urls().join(", "),
        ),
        ("AICACHE_TENANT".to_string(), tenant.clone()),
    ];
    let config = aicache::AIResponseCacheConfig::load_with_env(None, vars).unwrap();
    assert_eq!(config.redis_cluster_urls, cluster.urls());
    assert!(config.redis_url.is_none());
    let cache: AIResponseCache<Value> = config.build_ai_cache().await.unwrap();
    for i in 0..60 {
        let key = cache
            .key(&AiRequest::new("sentiment", &format!("review {i}")))
            .unwrap();
        cache
            .put(&key, json!(i), &RequestControls::default())
            .await
            .unwrap();
    }
    let spread = held_per_primary(&format!("aicache:t:{tenant}:v1:*")).await;
    assert_eq!(spread.iter().sum::<usize>(), 60, "{spread:?}");

    let mut both = aicache::AIResponseCacheConfig::default();
    both.redis_cluster_urls = cluster.urls();
    both.redis_url = Some("redis://127.0.0.1:1".into());
    let err = both.validate();
    assert!(
        err.errors.iter().any(|e| e.field == "redis_cluster_urls"),
        "{err:?}"
    );
}
