//! The `aicache` binary against a real Redis Cluster (3 primaries, 3 replicas): health per
//! primary, stats over every primary, and an operation's invalidation reaching every primary.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failure should panic with its error"
)]

use aicache::RedisCacheConfig;
use cache_testkit::RedisCluster;
use support::{aicache, json_of};

mod support;

fn held(cluster: &RedisCluster, pattern: &str) -> usize {
    cluster
        .primary_ports()
        .into_iter()
        .map(|port| {
            let mut conn = redis::Client::open(format!("redis://127.0.0.1:{port}"))
                .unwrap()
                .get_connection()
                .unwrap();
            let found: Vec<String> = redis::cmd("KEYS").arg(pattern).query(&mut conn).unwrap();
            found.len()
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_stats_and_invalidate_cover_every_primary() {
    let cluster = RedisCluster::start();
    let seeds = cluster.urls().join(",");
    support::answers(
        RedisCacheConfig::default().with_redis_cluster_urls(cluster.urls()),
        &[("summarize", 60), ("qa", 30)],
    )
    .await;
    let out = aicache()
        .args(["--redis-cluster-urls", &seeds, "--json", "health"])
        .assert()
        .success();
    let doc = json_of(&out.get_output().stdout);
    assert_eq!(doc["redis"], "connected", "{doc}");
    let nodes = doc["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3, "one entry per primary: {doc}");
    assert!(nodes.iter().all(|n| n["redis"] == "connected"), "{doc}");
    let out = aicache()
        .args(["--redis-cluster-urls", &seeds, "--json", "stats"])
        .assert()
        .success();
    let doc = json_of(&out.get_output().stdout);
    assert_eq!(doc["operations"]["summarize"]["entries"], 60, "{doc}");
    assert_eq!(doc["operations"]["qa"]["entries"], 30, "{doc}");
    let out = aicache()
        .args([
            "--redis-cluster-urls",
            &seeds,
            "--json",
            "invalidate",
            "--operation",
            "summarize",
        ])
        .assert()
        .success();
    let doc = json_of(&out.get_output().stdout);
    assert_eq!(doc["removed"], 60, "{doc}");
    assert_eq!(
        held(&cluster, "aicache:v1:summarize:*"),
        60,
        "tombstones stay"
    );
    let out = aicache()
        .args(["--redis-cluster-urls", &seeds, "--json", "stats"])
        .assert()
        .success();
    let doc = json_of(&out.get_output().stdout);
    assert_eq!(doc["operations"]["qa"]["entries"], 30, "{doc}");
    assert!(
        doc["operations"]["summarize"]["entries"]
            .as_u64()
            .unwrap_or(0)
            == 0,
        "{doc}"
    );
    // Both a server and a cluster is a usage error naming the fields.
    aicache()
        .args([
            "--redis-cluster-urls",
            &seeds,
            "--redis-url",
            "redis://127.0.0.1:1",
            "health",
        ])
        .assert()
        .code(2);
}
