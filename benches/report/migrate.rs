//! The migration rows of the ratio report, each against a raw redis-rs loop moving the same
//! entries in the same run:
//! - `backup_100k_1k`: `CacheMigrationManager::backup` of 100,000 entries of 1 KB into memory vs
//!   `SCAN` pages + pipelined `GET` + `PTTL` into memory.
//! - `restore_100k_1k`: `restore` of that backup (policy `overwrite`) into an empty database vs
//!   pipelined `SET PX` of the same entries into an empty database.
//! - `restore_100k_1k_over_existing`: the same over a database that holds every entry already
//!   (each key then goes through the tombstone-checking script).
//! - `backup_1g_peak_rss_mib`: the peak RSS of a child process backing up 1 GB of entries, against
//!   the 64 MiB budget (lower is better).

use std::time::{Duration, Instant};

use aicache::frame::{Codec, FrameCodec, FrameMeta};
use aicache::migrate::{CacheMigrationManager, RestorePolicy};
use aicache::{KeyPattern, RedisCacheConfig, RedisStore, unix_millis};
use cache_testkit::{RedisServer, ServerConfig};

use super::{Plan, Row};

const NAMESPACE: &str = "mig";

async fn connect(server: &RedisServer) -> RedisStore {
    let config = RedisCacheConfig::default()
        .with_redis_url(server.url())
        .with_key_prefix(NAMESPACE)
        .with_command_timeout(Duration::from_secs(10));
    RedisStore::connect(&config, None).await.unwrap()
}

/// Writes `count` frames of 1 KB incompressible payload under `mig:`.
async fn fill(server: &RedisServer, count: usize) {
    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let codec = FrameCodec::new();
    let payload = cache_testkit::incompressible_bytes(1000);
    let now = unix_millis();
    let meta = FrameMeta::new(now, now + 3_600_000);
    for start in (0..count).step_by(1000) {
        let mut pipe = redis::pipe();
        for i in start..(start + 1000).min(count) {
            let key = format!("{NAMESPACE}:e:{i:08}");
            let mut body = payload.clone();
            body[..8].copy_from_slice(&(i as u64).to_be_bytes());
            let frame = codec.encode(&key, &meta, Codec::Raw, &body).unwrap().bytes;
            pipe.cmd("SET")
                .arg(key)
                .arg(frame)
                .arg("PX")
                .arg(3_600_000)
                .ignore();
        }
        let () = pipe.query_async(&mut conn).await.unwrap();
    }
}

type RawEntry = (String, Vec<u8>, i64);

/// The raw backup: SCAN pages, each followed by one pipeline of GET + PTTL per key.
async fn raw_backup(conn: &mut redis::aio::MultiplexedConnection) -> Vec<RawEntry> {
    let mut out = Vec::new();
    let mut cursor = 0u64;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{NAMESPACE}:*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await
            .unwrap();
        let mut pipe = redis::pipe();
        for key in &keys {
            pipe.cmd("GET").arg(key).cmd("PTTL").arg(key);
        }
        let replies: Vec<(Vec<u8>, i64)> = pipe.query_async(conn).await.unwrap();
        out.extend(keys.into_iter().zip(replies).map(|(k, (v, t))| (k, v, t)));
        if next == 0 {
            return out;
        }
        cursor = next;
    }
}

/// The raw restore: pipelined `SET PX` in batches of 1,000.
async fn raw_restore(conn: &mut redis::aio::MultiplexedConnection, entries: &[RawEntry]) {
    for batch in entries.chunks(1000) {
        let mut pipe = redis::pipe();
        for (key, value, ttl) in batch {
            pipe.cmd("SET")
                .arg(key)
                .arg(value)
                .arg("PX")
                .arg(*ttl)
                .ignore();
        }
        let () = pipe.query_async(conn).await.unwrap();
    }
}

async fn flush(conn: &mut redis::aio::MultiplexedConnection) {
    let () = redis::cmd("FLUSHDB").query_async(conn).await.unwrap();
}

fn rate(entries: u64, started: Instant) -> f64 {
    entries as f64 / started.elapsed().as_secs_f64()
}

/// `backup_100k_1k` and `restore_100k_1k`, interleaved round by round.
pub(crate) async fn rows(plan: &Plan) -> Vec<Row> {
    let server = RedisServer::start(ServerConfig::default());
    fill(&server, 100_000).await;
    let store = connect(&server).await;
    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let manager = CacheMigrationManager::new();
    let mut backup = Row::new("backup_100k_1k", "ops/s");
    let mut restore = Row::new("restore_100k_1k", "ops/s");
    let mut over = Row::new("restore_100k_1k_over_existing", "ops/s");
    for _ in 0..plan.rounds {
        let started = Instant::now();
        let mut file = Vec::new();
        let done = manager
            .backup(&store, &KeyPattern::all(), &mut file)
            .await
            .unwrap();
        backup.contender.push(rate(done.keys_backed_up, started));
        let started = Instant::now();
        let raw = raw_backup(&mut conn).await;
        backup.baseline.push(rate(raw.len() as u64, started));

        let started = Instant::now();
        let done = manager
            .restore(&mut file.as_slice(), &store, RestorePolicy::Overwrite)
            .await
            .unwrap();
        assert_eq!(done.keys_restored, 100_000);
        over.contender.push(rate(done.keys_restored, started));
        let started = Instant::now();
        raw_restore(&mut conn, &raw).await;
        over.baseline.push(rate(raw.len() as u64, started));

        flush(&mut conn).await;
        let started = Instant::now();
        let done = manager
            .restore(&mut file.as_slice(), &store, RestorePolicy::Overwrite)
            .await
            .unwrap();
        assert_eq!(done.keys_restored, 100_000);
        restore.contender.push(rate(done.keys_restored, started));
        flush(&mut conn).await;
        let started = Instant::now();
        raw_restore(&mut conn, &raw).await;
        restore.baseline.push(rate(raw.len() as u64, started));
    }
    vec![backup, restore, over]
}

/// The child's half of `backup_1g_peak_rss_mib`: backs up `url`'s entries into a sink and
/// prints its peak RSS.
pub(crate) fn rss_child(url: &str) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let config = RedisCacheConfig::default()
            .with_redis_url(url)
            .with_key_prefix(NAMESPACE)
            .with_command_timeout(Duration::from_secs(10));
        let store = RedisStore::connect(&config, None).await.unwrap();
        let done = CacheMigrationManager::new()
            .backup(&store, &KeyPattern::all(), &mut tokio::io::sink())
            .await
            .unwrap();
        assert!(
            done.total_size_bytes > 1 << 30,
            "{} bytes",
            done.total_size_bytes
        );
    });
    let peak = cache_testkit::process_status_kib("VmHWM").unwrap();
    println!("peak_rss_kib {peak}");
}

/// `backup_1g_peak_rss_mib`: one child process per round.
pub(crate) fn rss_row(rounds: usize) -> Row {
    let server = RedisServer::start(ServerConfig::default());
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(fill(&server, 1_060_000));
    let mut row = Row::new("backup_1g_peak_rss_mib", "MiB");
    for _ in 0..rounds {
        let url = server.url();
        row.contender.push(super::memory::child_mib(
            &["--backup-rss-child", &url],
            "peak_rss_kib",
        ));
        row.baseline.push(64.0);
    }
    row
}
