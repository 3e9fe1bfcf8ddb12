//! `stampede_1000`: 1,000 callers of `get_or_compute` on one missing key of an AI cache over
//! Redis (L1 on, no cross-instance features). The value is the Redis commands the stampede cost,
//! counted by the server (`INFO commandstats`), against the target of 3 (lower is better); a
//! round with more than one computation fails the run.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aicache::{AIResponseCache, AiCacheConfig, AiRequest, RequestControls};
use cache_testkit::{RedisServer, ServerConfig};

use super::Row;
use super::speed::{config, raw};

const CALLERS: usize = 1000;

/// Calls counted by the server since the last `CONFIG RESETSTAT`, less the counting's own.
async fn commands_since_reset(conn: &mut redis::aio::MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .unwrap();
    info.lines()
        .filter(|line| !line.starts_with("cmdstat_info:") && !line.starts_with("cmdstat_config"))
        .filter_map(|line| {
            line.split_once("calls=")?
                .1
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

pub(crate) async fn row(rounds: usize) -> Row {
    let server = RedisServer::start(ServerConfig::default());
    let cache: Arc<AIResponseCache<String>> = Arc::new(
        aicache::connect_ai_cache(
            AiCacheConfig::default(),
            Some(&config(&server, false)),
            None,
        )
        .await
        .unwrap(),
    );
    let mut counter = raw(&server).await;
    let mut row = Row::new("stampede_1000", "commands");
    for round in 0..rounds {
        let key = cache
            .key(&AiRequest::new(
                "summarize",
                &format!("one prompt, round {round}"),
            ))
            .unwrap();
        let () = redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query_async(&mut counter)
            .await
            .unwrap();
        let (computed, release) = (
            Arc::new(AtomicU64::new(0)),
            Arc::new(tokio::sync::Notify::new()),
        );
        let callers: Vec<_> = (0..CALLERS)
            .map(|_| {
                let (cache, key) = (Arc::clone(&cache), key.clone());
                let (computed, release) = (Arc::clone(&computed), Arc::clone(&release));
                tokio::spawn(async move {
                    cache
                        .get_or_compute(&key, &RequestControls::default(), || async move {
                            computed.fetch_add(1, Ordering::SeqCst);
                            release.notified().await;
                            Ok::<_, std::io::Error>("the answer".to_string())
                        })
                        .await
                        .unwrap();
                })
            })
            .collect();
        // The model answers once every other caller waits on it.
        while cache.stats().callers_waiting < CALLERS - 1 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        release.notify_one();
        for caller in callers {
            caller.await.unwrap();
        }
        assert_eq!(
            computed.load(Ordering::SeqCst),
            1,
            "one computation per stampede"
        );
        #[allow(clippy::cast_precision_loss, reason = "a small count")]
        row.contender
            .push(commands_since_reset(&mut counter).await as f64);
        row.baseline.push(3.0);
    }
    row
}
