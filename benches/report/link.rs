//! Rows about the link to Redis:
//! - `l2_hit_1k_c50_tls_vs_plain`: the price of TLS.
//! - `l2_outage_read_p99_us_breaker_vs_none`: read latency while Redis is frozen, with the
//!   circuit breaker against without it.

use std::time::{Duration, Instant};

use aicache::{
    Bytes, CacheInterface, CacheKey, GenericRedisCache, LatencyWindow, RedisCacheConfig,
    SecurityConfig, TlsConfig, Ttl,
};
use cache_testkit::{RedisServer, ServerConfig};

use super::{Plan, Row, throughput};

/// The price of TLS: a 1 KB L2 hit at 50 tasks through `GenericRedisCache` (L1 off) over TLS
/// (rustls, ring; certificates made for the run) against the same over plain TCP, each against a
/// server of its own.
pub(crate) async fn tls_row(plan: &Plan) -> Row {
    let certs = cache_testkit::TestCertificates::generate();
    let tls_server = RedisServer::start(
        ServerConfig::default().with_tls(certs.server_tls(&certs.server, false)),
    );
    let plain_server = RedisServer::start(ServerConfig::default());
    let connect = |url: String, security: SecurityConfig| async move {
        let config = RedisCacheConfig::default()
            .with_redis_url(url)
            .with_key_prefix("bench")
            .with_l1(None)
            .with_command_timeout(Duration::from_secs(5))
            .with_security(security);
        GenericRedisCache::connect(config).await.unwrap()
    };
    let tls = connect(
        tls_server.url(),
        SecurityConfig::default().with_tls(TlsConfig::default().with_ca_file(&certs.ca_file)),
    )
    .await;
    let plain = connect(plain_server.url(), SecurityConfig::default()).await;
    let key = CacheKey::new("row").unwrap();
    let value = Bytes::from(cache_testkit::incompressible_bytes(1024));
    for cache in [&tls, &plain] {
        cache
            .set(&key, value.clone(), Some(Ttl::from_secs(3600).unwrap()))
            .await
            .unwrap();
    }
    let mut row = Row {
        name: "l2_hit_1k_c50_tls_vs_plain".into(),
        unit: "ops/s",
        contender: Vec::new(),
        baseline: Vec::new(),
    };
    for _ in 0..plan.rounds {
        for (cache, into) in [(&tls, &mut row.contender), (&plain, &mut row.baseline)] {
            into.push(
                throughput(50, plan.round_time, |deadline| {
                    let cache = cache.clone();
                    let k = key.clone();
                    async move { until!(deadline, assert!(cache.get(&k).await.unwrap().is_some())) }
                })
                .await,
            );
        }
    }
    row
}

/// The configured command timeout of the outage row.
const OUTAGE_TIMEOUT: Duration = Duration::from_millis(50);

/// Read latency while Redis is frozen (SIGSTOP): p99 with the circuit breaker (it opens after 3
/// timeouts, then reads skip Redis) against p99 with no breaker (every read waits for the
/// timeout), in interleaved rounds, in microseconds; the timeout is printed beside it.
pub(crate) async fn outage_row(plan: &Plan) -> Row {
    let mut server = RedisServer::start(ServerConfig::default());
    let config = |breaker: bool| {
        RedisCacheConfig::default()
            .with_redis_url(server.url())
            .with_l1(None)
            .with_command_timeout(OUTAGE_TIMEOUT)
            .with_reconnect_delays(Duration::from_secs(1), Duration::from_secs(1))
            .with_breaker(breaker, 3)
    };
    let with_breaker = GenericRedisCache::connect(config(true)).await.unwrap();
    let without = GenericRedisCache::connect(config(false)).await.unwrap();
    let key = CacheKey::new("outage").unwrap();
    server.pause();
    // The row compares reads with the breaker open: let it see its 3 timeouts first.
    while with_breaker.is_l2_available() {
        assert!(with_breaker.get(&key).await.unwrap().is_none());
    }
    // Reads per round: enough for a p99 while a breakerless round stays near a second.
    let reads = (plan.round_time.as_millis() / OUTAGE_TIMEOUT.as_millis()).max(20);
    let mut row = Row {
        name: "l2_outage_read_p99_us_breaker_vs_none".into(),
        unit: "us",
        contender: Vec::new(),
        baseline: Vec::new(),
    };
    for _ in 0..plan.rounds {
        for (cache, into) in [
            (&with_breaker, &mut row.contender),
            (&without, &mut row.baseline),
        ] {
            let window = LatencyWindow::new(Duration::from_secs(3600));
            for _ in 0..reads {
                let started = Instant::now();
                assert!(cache.get(&key).await.unwrap().is_none());
                window.record(started.elapsed());
            }
            #[allow(clippy::cast_precision_loss, reason = "microseconds")]
            into.push(window.summary().p99_us as f64);
        }
    }
    println!(
        "outage row: command timeout {OUTAGE_TIMEOUT:?}, {reads} reads per round against a frozen redis-server"
    );
    server.resume();
    row
}
