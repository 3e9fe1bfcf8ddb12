//! Shared fixtures.

use std::time::Duration;

use aicache::{GenericRedisCache, MemoryCacheConfig, RedisCacheConfig};
use cache_testkit::{RedisServer, ServerConfig};

/// Settings for tests: short timeouts and fast reconnection so outages resolve quickly.
pub(crate) fn test_config(url: &str) -> RedisCacheConfig {
    RedisCacheConfig::default()
        .with_redis_url(url)
        .with_key_prefix("test")
        .with_command_timeout(Duration::from_secs(2))
        .with_connect_timeout(Duration::from_secs(2))
        .with_reconnect_delays(Duration::from_millis(20), Duration::from_millis(200))
        .with_l1(Some(MemoryCacheConfig::default().with_max_entries(10_000)))
}

pub(crate) async fn redis_cache(config: RedisCacheConfig) -> GenericRedisCache {
    GenericRedisCache::connect(config).await.unwrap()
}

pub(crate) fn server() -> RedisServer {
    RedisServer::start(ServerConfig::default())
}

/// A raw redis-rs connection to inspect or tamper with what the cache stored.
pub(crate) async fn raw(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Polls `check` until it holds or `limit` passes.
pub(crate) async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// Whether Redis holds a value under `key` (a tombstone, which a removal leaves for the replay
/// horizon, is no value).
pub(crate) async fn holds_value(
    conn: &mut (impl redis::aio::ConnectionLike + Send),
    key: impl AsRef<str>,
) -> bool {
    let stored: Option<Vec<u8>> = redis::cmd("GET")
        .arg(key.as_ref())
        .query_async(conn)
        .await
        .unwrap();
    stored.is_some_and(|bytes| !aicache::frame::is_tombstone(&bytes))
}

/// The keys matching `pattern` (a `KEYS` glob) that hold values, not tombstones.
pub(crate) async fn keys_with_values(
    conn: &mut (impl redis::aio::ConnectionLike + Send),
    pattern: &str,
) -> Vec<String> {
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(pattern)
        .query_async(conn)
        .await
        .unwrap();
    let mut held = Vec::new();
    for key in keys {
        if holds_value(conn, &key).await {
            held.push(key);
        }
    }
    held
}

/// Set in a child's environment by [`run_alone`].
const ALONE: &str = "AICACHE_TEST_ALONE";

/// Whether this process is a child [`run_alone`] started (a test that needs its process to
/// itself returns at once otherwise).
pub(crate) fn running_alone() -> bool {
    std::env::var_os(ALONE).is_some()
}

/// Runs the ignored test `test` of the module `module` (the caller's `module_path!()`) alone in
/// a child process of this test binary, for what a process-wide state decides (RSS, tracing's
/// global subscriber); panics with its output unless it passed, and returns its stdout.
pub(crate) fn run_alone(module: &str, test: &str) -> String {
    // Test names leave out the crate's name.
    let module = module.split_once("::").map_or("", |(_, path)| path);
    let name = format!("{module}::{test}");
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            &name,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ALONE, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("1 passed"),
        "the child ran {name}: {stdout}"
    );
    stdout
}
