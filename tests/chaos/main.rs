//! Outages under load, against a real `redis-server`: killed (and restarted on the same port) or
//! frozen with SIGSTOP (and resumed), while 50 tasks run a mixed get / put / get_or_compute load.
//!
//! The phases of the issue (30 s: outage at 10 s, back at 20 s) are scaled down to 3 s each so that
//! `cargo xtask test` stays quick; their order and what is asserted are kept.
#![allow(clippy::unwrap_used, reason = "tests fail loudly")]
#![allow(clippy::expect_used, reason = "tests fail loudly")]
#![allow(missing_docs, reason = "test binary")]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aicache::{
    AIResponseCache, AiCacheConfig, AiRequest, BreakerState, CacheOp, ErrorKind, Layer,
    MemoryCacheConfig, Outcome, Recorder, RedisCacheConfig, RequestControls,
};
use cache_testkit::{RedisServer, ServerConfig};
use tokio::time::Instant;

const TASKS: usize = 50;
const PHASE: Duration = Duration::from_secs(3);
const COMMAND_TIMEOUT: Duration = Duration::from_millis(200);
/// A read during the outage must end within the command timeout; this bound leaves room for a
/// loaded 2-core machine (it is a correctness bound on our timeouts, not a speed figure).
const READ_BOUND: Duration = Duration::from_millis(1500);

/// Records the breaker's transitions (the same events a metrics recorder exports).
#[derive(Debug, Default)]
struct Transitions(Mutex<Vec<(BreakerState, BreakerState)>>);

impl Recorder for Transitions {
    fn record_operation(&self, _: CacheOp, _: Layer, _: Outcome, _: Duration) {}
    fn record_compression(&self, _: usize, _: usize, _: Duration) {}
    fn record_corrupt_entry(&self, _: Layer, _: ErrorKind) {}
    fn record_invalidation(&self, _: &str, _: u64) {}
    fn record_breaker(&self, from: BreakerState, to: BreakerState) {
        self.0.lock().unwrap().push((from, to));
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Fault {
    Kill,
    Stall,
}

fn config() -> AiCacheConfig {
    AiCacheConfig::default().with_l1(Some(MemoryCacheConfig::default().with_max_entries(100_000)))
}

fn redis_config(url: &str) -> RedisCacheConfig {
    RedisCacheConfig::default()
        .with_redis_url(url)
        .with_command_timeout(COMMAND_TIMEOUT)
        .with_connect_timeout(Duration::from_millis(500))
        .with_reconnect_delays(Duration::from_millis(20), Duration::from_millis(200))
        .with_replay_queue_capacity(1_000_000)
}

async fn connect(
    url: &str,
    config: AiCacheConfig,
    recorder: Option<Arc<dyn Recorder>>,
) -> AIResponseCache<String> {
    aicache::connect_ai_cache(config, Some(&redis_config(url)), recorder)
        .await
        .unwrap()
}

/// What the load saw.
#[derive(Default)]
struct Observed {
    errors: AtomicU64,
    wrong_values: AtomicU64,
    reads: AtomicU64,
    outage_reads: AtomicU64,
    slowest_outage_read_us: AtomicU64,
    /// Key text → value, for every put made while Redis was down.
    written_during_outage: Mutex<HashMap<String, String>>,
}

fn value_for(text: &str) -> String {
    format!("answer to {text}")
}

async fn load(
    task: usize,
    cache: AIResponseCache<String>,
    observed: Arc<Observed>,
    started: Instant,
    deadline: Instant,
) {
    let mut written: Vec<String> = Vec::new();
    let mut n = 0usize;
    while Instant::now() < deadline {
        n += 1;
        let since = started.elapsed();
        let in_outage = since > PHASE + Duration::from_millis(100) && since < 2 * PHASE;
        match n % 3 {
            0 => {
                let text = format!("task {task} item {n}");
                let key = cache.key(&AiRequest::new("summarize", &text)).unwrap();
                match cache
                    .put(&key, value_for(&text), &RequestControls::default())
                    .await
                {
                    Ok(_) => {
                        // A put made in the outage window is queued; its replay is checked later.
                        if in_outage {
                            observed
                                .written_during_outage
                                .lock()
                                .unwrap()
                                .insert(text.clone(), value_for(&text));
                        }
                        written.push(text);
                    }
                    Err(e) => {
                        eprintln!("put failed: {e}");
                        observed.errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            1 => {
                let Some(text) = written.get(n % written.len().max(1)).cloned() else {
                    continue;
                };
                let key = cache.key(&AiRequest::new("summarize", &text)).unwrap();
                let asked = Instant::now();
                let read = cache.get(&key).await;
                let took = asked.elapsed();
                observed.reads.fetch_add(1, Ordering::Relaxed);
                if in_outage {
                    observed.outage_reads.fetch_add(1, Ordering::Relaxed);
                    observed.slowest_outage_read_us.fetch_max(
                        u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
                        Ordering::Relaxed,
                    );
                }
                match read {
                    Ok(Some(hit)) if *hit.value != value_for(&text) => {
                        observed.wrong_values.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        eprintln!("get failed: {e}");
                        observed.errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            _ => {
                // A few shared questions, so tasks meet on the same keys (single-flight).
                let text = format!("shared question {}", n % 20);
                let key = cache.key(&AiRequest::new("qa", &text)).unwrap();
                let expected = value_for(&text);
                let answer = cache
                    .get_or_compute(&key, &RequestControls::default(), || async {
                        Ok::<_, std::io::Error>(value_for(&text))
                    })
                    .await;
                match answer {
                    Ok(answer) if *answer.response.value != expected => {
                        observed.wrong_values.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        eprintln!("get_or_compute failed: {e}");
                        observed.errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The two tests share 2 cores: one at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn outage_under_load(fault: Fault) {
    let _serial = ONE_AT_A_TIME.lock().await;
    let mut server = RedisServer::start(ServerConfig::default());
    let transitions = Arc::new(Transitions::default());
    let cache = connect(&server.url(), config(), Some(transitions.clone())).await;
    let observed = Arc::new(Observed::default());
    let started = Instant::now();
    let deadline = started + 3 * PHASE;
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            tokio::spawn(load(
                task,
                cache.clone(),
                Arc::clone(&observed),
                started,
                deadline,
            ))
        })
        .collect();

    // Answers that will be removed during the outage: some deleted one by one, the rest by
    // invalidating their operation (neither operation is used by the load).
    let doomed: Vec<_> = (0..40)
        .map(|i| {
            let operation = if i % 2 == 0 {
                "questions"
            } else {
                "key_points"
            };
            cache
                .key(&AiRequest::new(operation, &format!("removed {i}")))
                .unwrap()
        })
        .collect();
    for key in &doomed {
        cache
            .put(key, "removed".into(), &RequestControls::default())
            .await
            .unwrap();
    }

    tokio::time::sleep_until(started + PHASE).await;
    match fault {
        Fault::Kill => server.kill(),
        Fault::Stall => server.pause(),
    }
    // Half-way through the outage the breaker is open (or probing) and writes are queued.
    tokio::time::sleep_until(started + PHASE + PHASE / 2).await;
    let during = cache.health().await.expect("Redis is configured");
    assert_ne!(during.breaker, Some(BreakerState::Closed), "{during:?}");
    assert!(during.replay_queue_depth > 0, "{during:?}");
    // Removals during the outage: they return (the invalidation says it could only reach L1),
    // and from then on the issuing instance never serves what they removed, through the recovery
    // and the replay.
    for key in doomed.iter().filter(|k| k.operation() == "questions") {
        cache.delete(key).await.unwrap();
    }
    let invalidation = cache.invalidate_by_operation("key_points").await;
    assert!(
        matches!(&invalidation, Err(e) if e.kind() == ErrorKind::Unavailable),
        "{invalidation:?}"
    );
    let served_removed = Arc::new(AtomicU64::new(0));
    let removed_reader = tokio::spawn({
        let (cache, doomed, served) = (cache.clone(), doomed.clone(), Arc::clone(&served_removed));
        async move {
            while Instant::now() < deadline + PHASE / 2 {
                for key in &doomed {
                    if let Ok(Some(_)) = cache.get(key).await {
                        served.fetch_add(1, Ordering::Relaxed);
                    }
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    });

    tokio::time::sleep_until(started + 2 * PHASE).await;
    let back_at = Instant::now();
    match fault {
        Fault::Kill => server.restart(),
        Fault::Stall => server.resume(),
    }
    // L2 answers again: a value written now is read back from Redis itself.
    let probe = cache
        .key(&AiRequest::new("qa", "written after the outage"))
        .unwrap();
    let l2 = cache.l2().expect("Redis is configured").clone();
    let mut l2_hit_after = None;
    while back_at.elapsed() < Duration::from_secs(5) {
        cache
            .put(&probe, "fresh".into(), &RequestControls::default())
            .await
            .unwrap();
        if matches!(l2.read(probe.cache_key(), 0).await, Ok(Some(_))) {
            l2_hit_after = Some(back_at.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let l2_hit_after = l2_hit_after.expect("Redis never answered after the outage");
    assert!(
        l2_hit_after <= Duration::from_secs(2),
        "L2 hits came back {l2_hit_after:?} after the restart"
    );

    for task in tasks {
        task.await.expect("a load task panicked");
    }
    // The outage queued thousands of writes; replayed one at a time (three round trips each, in
    // a debug build on 2 cores shared with the load), they take up to about 15 s.
    let report = cache.shutdown(Duration::from_secs(40)).await;
    assert_eq!(report.remaining, 0, "{report:?}");

    assert_eq!(
        observed.errors.load(Ordering::Relaxed),
        0,
        "callers saw errors"
    );
    assert_eq!(observed.wrong_values.load(Ordering::Relaxed), 0);
    assert!(observed.reads.load(Ordering::Relaxed) > 1000);
    assert!(observed.outage_reads.load(Ordering::Relaxed) > 100);
    let slowest = Duration::from_micros(observed.slowest_outage_read_us.load(Ordering::Relaxed));
    assert!(
        slowest <= READ_BOUND,
        "a read during the outage took {slowest:?} (timeout {COMMAND_TIMEOUT:?})"
    );
    let seen = transitions.0.lock().unwrap().clone();
    assert!(
        seen.contains(&(BreakerState::Closed, BreakerState::Open))
            && seen.last() == Some(&(BreakerState::HalfOpen, BreakerState::Closed)),
        "{seen:?}"
    );

    // Every value written during the outage reached Redis through the replay (their TTLs are
    // hours, so none expired). A second instance without L1 reads Redis alone.
    let reader = connect(&server.url(), config().with_l1(None), None).await;
    let written = observed.written_during_outage.lock().unwrap().clone();
    assert!(
        written.len() > 100,
        "only {} writes in the outage",
        written.len()
    );
    let mut missing = Vec::new();
    for (text, value) in &written {
        let key = reader.key(&AiRequest::new("summarize", text)).unwrap();
        match reader.get(&key).await.unwrap() {
            Some(hit) if *hit.value == *value => {}
            other => missing.push((text.clone(), other.map(|h| (*h.value).clone()))),
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {} outage writes not in Redis, e.g. {:?}",
        missing.len(),
        written.len(),
        &missing[..missing.len().min(3)]
    );
    removed_reader
        .await
        .expect("the reader of removed answers panicked");
    assert_eq!(
        served_removed.load(Ordering::Relaxed),
        0,
        "the issuing instance served an answer removed during the outage"
    );
    for key in &doomed {
        assert!(
            reader.get(key).await.unwrap().is_none(),
            "another instance read a removed answer from Redis after the replay"
        );
    }
    let stats = l2.stats().store;
    // A write that timed out against a frozen server may still be applied when it resumes: its
    // replay then finds the same value and is skipped.
    assert!(
        stats.replayed + stats.replay_skipped >= u64::try_from(written.len()).unwrap(),
        "{stats:?}"
    );
    assert_eq!(stats.replay_dropped, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_and_restarted_redis_under_load() {
    outage_under_load(Fault::Kill).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_and_resumed_redis_under_load() {
    outage_under_load(Fault::Stall).await;
}
