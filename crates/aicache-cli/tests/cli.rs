//! The `aicache` binary end to end, against real redis-servers started by the test kit.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failure should panic with its error"
)]

use std::path::Path;

use aicache::{AiRequest, RedisCacheConfig, RequestControls};
use cache_testkit::{RedisServer, ServerConfig};
use serde_json::Value;
use support::{aicache, json_of};

mod support;

/// A redis-server holding `n` answers of `operation` written by an AI cache (the default
/// namespace, `aicache:v1`).
async fn with_answers(server: &RedisServer, counts: &[(&str, usize)]) {
    support::answers(
        RedisCacheConfig::default().with_redis_url(server.url()),
        counts,
    )
    .await;
}

fn redis(server: &RedisServer) -> redis::Connection {
    redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap()
}

fn keys(server: &RedisServer, pattern: &str) -> usize {
    let found: Vec<String> = redis::cmd("KEYS")
        .arg(pattern)
        .query(&mut redis(server))
        .unwrap();
    found.len()
}

fn free_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("redis://127.0.0.1:{port}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_stats_answer_in_json() {
    let server = RedisServer::start(ServerConfig::default());
    with_answers(&server, &[("summarize", 4), ("qa", 2)]).await;
    let out = aicache()
        .args(["--redis-url", &server.url(), "--json", "health"])
        .assert()
        .success();
    let doc = json_of(&out.get_output().stdout);
    assert_eq!(doc["redis"], "connected");
    let out = aicache()
        .args(["--redis-url", &server.url(), "--json", "stats"])
        .assert()
        .success();
    let doc = json_of(&out.get_output().stdout);
    assert_eq!(doc["operations"]["summarize"]["entries"], 4);
    assert_eq!(doc["operations"]["qa"]["entries"], 2);
    assert!(doc["sampling_rate"].as_f64().unwrap() > 0.0);
    assert!(
        doc["operations"]["qa"]["ttl_seconds"]["max"]
            .as_u64()
            .unwrap()
            > 0
    );
    let text = aicache()
        .args(["--redis-url", &server.url(), "stats"])
        .assert()
        .success();
    assert!(String::from_utf8_lossy(&text.get_output().stdout).contains("summarize"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_deletes_nothing_and_the_real_run_only_its_operation() {
    let server = RedisServer::start(ServerConfig::default());
    with_answers(&server, &[("summarize", 5), ("qa", 3)]).await;
    let url = server.url();
    let out = aicache()
        .args([
            "--redis-url",
            &url,
            "--json",
            "invalidate",
            "--operation",
            "summarize",
            "--dry-run",
        ])
        .assert()
        .success();
    let doc = json_of(&out.get_output().stdout);
    assert_eq!(
        (doc["matched"].as_u64(), doc["removed"].as_u64()),
        (Some(5), Some(0))
    );
    assert_eq!(
        keys(&server, "aicache:v1:summarize:*"),
        5,
        "the dry run removed nothing"
    );
    let out = aicache()
        .args([
            "--redis-url",
            &url,
            "invalidate",
            "--operation",
            "summarize",
        ])
        .assert()
        .success();
    let text = String::from_utf8_lossy(&out.get_output().stdout).to_string();
    assert!(
        text.contains("removed 5") && text.contains("l1_max_ttl"),
        "{text}"
    );
    assert_eq!(keys(&server, "aicache:v1:qa:*"), 3);
    // --all asks first; without a terminal to ask on it refuses (usage error).
    aicache()
        .args(["--redis-url", &url, "invalidate", "--all"])
        .assert()
        .code(2);
    assert_eq!(keys(&server, "aicache:v1:qa:*"), 3);
    aicache()
        .args(["--redis-url", &url, "invalidate", "--all", "--yes"])
        .assert()
        .success();
    // Removed keys keep a tombstone for the replay horizon; no answer is left.
    let out = aicache()
        .args([
            "--redis-url",
            &url,
            "--json",
            "invalidate",
            "--all",
            "--dry-run",
        ])
        .assert()
        .success();
    assert_eq!(json_of(&out.get_output().stdout)["matched"], 0);
    // Exactly one of the three selectors.
    aicache()
        .args(["--redis-url", &url, "invalidate"])
        .assert()
        .code(2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_redis_is_exit_3_with_nothing_done() {
    let url = free_url();
    for args in [
        vec!["health"],
        vec!["invalidate", "--operation", "summarize"],
        vec!["stats"],
        vec!["backup", "never-written.aicbak"],
        vec!["restore", "never-read.aicbak"],
        vec!["import-legacy"],
        vec!["security", "check"],
    ] {
        let out = aicache()
            .args(["--redis-url", &url, "--json"])
            .args(&args)
            .assert()
            .code(3);
        let doc = json_of(&out.get_output().stdout);
        assert_eq!(doc["exit_code"], 3, "{args:?}");
    }
    assert!(!Path::new("never-written.aicbak").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_exit_4_and_secrets_stay_out_of_the_output() {
    let server = RedisServer::start(ServerConfig::default().with_password("right-password"));
    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, "wrong-password\n").unwrap();
    let right = dir.path().join("right");
    std::fs::write(&right, "right-password\n").unwrap();
    let url = server.url_without_auth();
    let out = aicache()
        .args(["--redis-url", &url, "--password-file"])
        .arg(&wrong)
        .args(["health"])
        .assert()
        .code(4);
    assert!(!String::from_utf8_lossy(&out.get_output().stderr).contains("wrong-password"));
    aicache()
        .args(["--redis-url", &url, "--password-file"])
        .arg(&right)
        .args(["health"])
        .assert()
        .success();
    let out = aicache()
        .args(["--redis-url", &url, "--password-file"])
        .arg(&right)
        .args(["--json", "config", "show"])
        .assert()
        .success();
    let shown = String::from_utf8_lossy(&out.get_output().stdout).to_string();
    assert!(!shown.contains("right-password"), "{shown}");
    assert_eq!(json_of(shown.as_bytes())["config"]["redis_auth"], "***");
}

#[test]
fn an_invalid_config_file_is_exit_2_with_its_findings() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "memory_cache_size = 0\ncompression_level = 42\n").unwrap();
    let out = aicache()
        .arg("--config")
        .arg(&file)
        .args(["--json", "config", "validate"])
        .assert()
        .code(2);
    let doc = json_of(&out.get_output().stdout);
    let errors = doc["details"]["errors"].as_array().unwrap();
    assert!(
        errors.iter().any(|e| e["field"] == "compression_level"),
        "{doc}"
    );
    assert!(
        errors
            .iter()
            .all(|e| e["allowed"].is_string() && e["fix"].is_string())
    );
    aicache()
        .arg("--config")
        .arg(&file)
        .args(["health"])
        .assert()
        .code(2);
    let unparsable = dir.path().join("broken.toml");
    std::fs::write(&unparsable, "this is = = not toml").unwrap();
    aicache()
        .arg("--config")
        .arg(&unparsable)
        .args(["config", "show"])
        .assert()
        .code(2);
    // A good file validates; presets and docs print.
    let good = dir.path().join("good.toml");
    std::fs::write(&good, "extends = \"development\"\n").unwrap();
    aicache()
        .arg("--config")
        .arg(&good)
        .args(["config", "validate"])
        .assert()
        .success();
    let out = aicache()
        .args(["--json", "config", "presets"])
        .assert()
        .success();
    assert!(
        json_of(&out.get_output().stdout)["presets"]
            .as_array()
            .unwrap()
            .len()
            >= 4
    );
    let out = aicache().args(["config", "docs"]).assert().success();
    assert!(String::from_utf8_lossy(&out.get_output().stdout).contains("redis_url"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_restores_into_a_second_server_and_migrate_verifies() {
    let (first, second, third) = (
        RedisServer::start(ServerConfig::default()),
        RedisServer::start(ServerConfig::default()),
        RedisServer::start(ServerConfig::default()),
    );
    with_answers(&first, &[("summarize", 20), ("qa", 10)]).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cache.aicbak");
    let out = aicache()
        .args(["--redis-url", &first.url(), "--json", "backup"])
        .arg(&file)
        .assert()
        .success();
    assert_eq!(json_of(&out.get_output().stdout)["entries"], 30);
    let out = aicache()
        .args(["--redis-url", &second.url(), "--json", "restore"])
        .arg(&file)
        .args(["--policy", "overwrite"])
        .assert()
        .success();
    assert_eq!(json_of(&out.get_output().stdout)["restored"], 30);
    assert_eq!(keys(&second, "aicache:v1:*"), 30);

    let (from, to) = (dir.path().join("from.toml"), dir.path().join("to.toml"));
    std::fs::write(&from, format!("redis_url = \"{}\"\n", first.url())).unwrap();
    std::fs::write(&to, format!("redis_url = \"{}\"\n", third.url())).unwrap();
    let out = aicache()
        .args(["--json", "migrate", "--from-config"])
        .arg(&from)
        .arg("--to-config")
        .arg(&to)
        .arg("--verify")
        .assert()
        .success();
    let doc = json_of(&out.get_output().stdout);
    assert_eq!(doc["migrated"], 30);
    assert_eq!(doc["verify"]["consistent"], true);
    aicache()
        .args(["--redis-url", &second.url(), "restore", "/nonexistent/file"])
        .assert()
        .code(1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_legacy_takes_the_python_entries_over() {
    let server = RedisServer::start(ServerConfig::default());
    let envelope = r#"{"_serialized_data": "rawj:{\"result\":\"A summary.\"}"}"#;
    let reply = server
        .raw_command(&format!(
            "SET 'ai_cache:op:summarize|txt:Some text' '{envelope}' EX 900"
        ))
        .unwrap();
    assert!(reply.contains("OK"), "{reply}");
    server
        .raw_command("SET ai_cache:op:qa|txt:pickled raw:pickle EX 900")
        .unwrap();
    let out = aicache()
        .args(["--redis-url", &server.url(), "--json", "import-legacy"])
        .assert()
        .success();
    let doc = json_of(&out.get_output().stdout);
    assert_eq!(
        (doc["converted"].as_u64(), doc["refused_pickle"].as_u64()),
        (Some(1), Some(1)),
        "{doc}"
    );
    assert_eq!(
        keys(&server, "ai_cache:*"),
        2,
        "the Python entries are left alone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_writes_its_reports_and_security_check_scores() {
    let server = RedisServer::start(ServerConfig::default());
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("bench");
    aicache()
        .env("AICACHE_BENCH_ITERATIONS", "32")
        .env("AICACHE_BENCH_CONCURRENCY", "1,4")
        .args(["--redis-url", &server.url(), "bench", "--out"])
        .arg(&out_dir)
        .assert()
        .success();
    for file in ["bench.json", "bench.md", "bench.svg"] {
        assert!(out_dir.join(file).exists(), "{file}");
    }
    let saved = out_dir.join("bench.json");
    let out = aicache()
        .env("AICACHE_BENCH_ITERATIONS", "32")
        .env("AICACHE_BENCH_CONCURRENCY", "1,4")
        .args(["--redis-url", &server.url(), "--json", "bench", "--out"])
        .arg(dir.path().join("again"))
        .arg("--compare")
        .arg(&saved)
        .assert();
    let code = out.get_output().status.code();
    assert!(matches!(code, Some(0 | 1)), "{code:?}");
    // Two short runs differ a lot: regressions are reported either way (exit 1 when critical).
    let doc = json_of(&out.get_output().stdout);
    assert!(
        doc["regressions"].is_array() || doc["details"]["regressions"].is_array(),
        "{doc}"
    );
    aicache()
        .env("AICACHE_BENCH_ITERATIONS", "many")
        .args(["--redis-url", &server.url(), "bench"])
        .assert()
        .code(2);
    let out = aicache()
        .args(["--redis-url", &server.url(), "--json", "security", "check"])
        .assert()
        .success();
    let doc = json_of(&out.get_output().stdout);
    assert!(
        doc["security"]["score"].as_u64().unwrap() < 100,
        "no TLS, no password: {doc}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_shows_the_snapshots_instances_publish() {
    let server = RedisServer::start(ServerConfig::default());
    let mut config = aicache::AIResponseCacheConfig::default();
    config.redis_url = Some(server.url());
    config.stats_snapshot_interval = 1;
    let cache: aicache::AIResponseCache = config.build_ai_cache().await.unwrap();
    let key = cache
        .key(&AiRequest::new("qa", "What is published?"))
        .unwrap();
    cache
        .put(
            &key,
            serde_json::json!({"answer": "counters"}),
            &RequestControls::default(),
        )
        .await
        .unwrap();
    assert!(cache.get(&key).await.unwrap().is_some());
    // Off by default: nothing else publishes; this instance does once its first interval ends.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let out = aicache()
            .args(["--redis-url", &server.url(), "--json", "stats"])
            .assert()
            .success();
        let doc = json_of(&out.get_output().stdout);
        let instances = doc["instances"].as_array().unwrap();
        // The first snapshot may predate the read: wait for one that counts it.
        let reads = |me: &Value| {
            me["operations"]["qa"]["l1_hits"].as_u64().unwrap_or(0)
                + me["operations"]["qa"]["l2_hits"].as_u64().unwrap_or(0)
        };
        if let Some(me) = instances.first().filter(|me| reads(me) >= 1) {
            assert_eq!(instances.len(), 1);
            assert_eq!(me["namespace"], "aicache:v1");
            assert_eq!(me["redis_available"], true);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no snapshot published"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    drop(cache);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn convert_namespaces_needs_a_tenant_upgrade_window_and_moves_what_is_there() {
    let server = RedisServer::start(ServerConfig::default());
    // Without a tenant and an upgrade window there is nothing to convert from: a usage error.
    let out = aicache()
        .args(["--redis-url", &server.url(), "--json", "convert-namespaces"])
        .assert()
        .code(2);
    let doc = json_of(&out.get_output().stdout);
    assert!(
        doc["error"].as_str().unwrap().contains("old-layout"),
        "{doc}"
    );
    // With them, an empty old location converts nothing, and says so.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tenant.toml");
    let until = std::time::SystemTime::now() + std::time::Duration::from_secs(86_400);
    let until = humantime::format_rfc3339_seconds(until);
    std::fs::write(
        &file,
        format!(
            "redis_url = \"{}\"\ntenant = \"acme\"\nlayout_upgrade_until = \"{until}\"\n",
            server.url()
        ),
    )
    .unwrap();
    let out = aicache()
        .arg("--config")
        .arg(&file)
        .args(["--json", "convert-namespaces"])
        .assert()
        .success();
    let doc = json_of(&out.get_output().stdout);
    assert_eq!(
        (doc["moved"].as_u64(), doc["namespace"].as_str()),
        (Some(0), Some("aicache:t:acme:v1"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_password_where_one_is_required_is_exit_4_and_urls_hold_none() {
    let server = RedisServer::start(ServerConfig::default().with_password("needed"));
    let url = server.url_without_auth();
    let out = aicache()
        .args(["--redis-url", &url, "--json", "health"])
        .assert()
        .code(4);
    assert_eq!(json_of(&out.get_output().stdout)["details"]["kind"], "auth");
    // A password inside --redis-url is refused before anything connects.
    let out = aicache()
        .args([
            "--redis-url",
            "redis://:secret-in-url@127.0.0.1:1",
            "--json",
            "health",
        ])
        .assert()
        .code(2);
    assert!(!String::from_utf8_lossy(&out.get_output().stdout).contains("secret-in-url"));
    // Usage errors are JSON too with --json.
    let out = aicache().args(["--json", "invalidate"]).assert().code(2);
    assert_eq!(json_of(&out.get_output().stdout)["exit_code"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_backup_is_exit_1_naming_its_chunk() {
    let server = RedisServer::start(ServerConfig::default());
    with_answers(&server, &[("summarize", 10)]).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cache.aicbak");
    aicache()
        .args(["--redis-url", &server.url(), "backup"])
        .arg(&file)
        .assert()
        .success();
    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 60;
    bytes[last] ^= 0x55;
    std::fs::write(&file, &bytes).unwrap();
    let other = RedisServer::start(ServerConfig::default());
    let out = aicache()
        .args(["--redis-url", &other.url(), "--json", "restore"])
        .arg(&file)
        .assert()
        .code(1);
    let doc = json_of(&out.get_output().stdout);
    assert_eq!(doc["details"]["kind"], "corrupted", "{doc}");
    assert!(
        doc["details"]["chunk"].is_string() || doc["details"]["in"] == "trailer",
        "{doc}"
    );
}
