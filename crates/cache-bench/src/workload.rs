//! The workloads, and how each runs against a byte cache, the AI cache and the frame codec, with
//! its raw baseline on the same keys and bytes.

use std::sync::Arc;

use bytes::Bytes;
use cache_ai::{AIResponseCache, AiRequest, RequestControls};
use cache_core::{BoxFuture, CacheKey, DynCache, DynFrameStore, Ttl};
use cache_redis::{GenericRedisCache, RawBaseline};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::data::{realistic_text, value};
use crate::measure::{Measured, pair, rss_bytes};
use crate::result::{Baseline, BenchmarkResult, Grade};

/// What a benchmark does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Workload {
    /// Writes (`set`, `put`).
    Write,
    /// Reads of entries in Redis but not in this L1 (each read promotes).
    ReadThrough,
    /// Reads answered by the L1.
    L1Hit,
    /// Reads answered by Redis, with the L1 off.
    L2Hit,
    /// Reads of absent keys.
    Miss,
    /// Batch reads of 16 keys.
    GetMany,
    /// Removals of single keys.
    Invalidate,
    /// Frame encoding of realistic text (LZ4 and zstd).
    Compression,
}

impl Workload {
    /// The workload's name in result names (`l2_hit`, …).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Write => "write",
            Self::ReadThrough => "read_through",
            Self::L1Hit => "l1_hit",
            Self::L2Hit => "l2_hit",
            Self::Miss => "miss",
            Self::GetMany => "get_many",
            Self::Invalidate => "invalidate",
            Self::Compression => "compression",
        }
    }
}

/// Entries written by the suites expire on their own.
pub(crate) fn bench_ttl() -> Option<Ttl> {
    Ttl::from_secs(300).ok()
}

pub(crate) fn size_label(bytes: usize) -> String {
    if bytes >= 1024 && bytes.is_multiple_of(1024) {
        format!("{}k", bytes / 1024)
    } else {
        format!("{bytes}b")
    }
}

/// Builds a result from a contender run, its baseline and the side figures.
pub(crate) struct Recorded {
    pub(crate) workload: Workload,
    pub(crate) target: &'static str,
    pub(crate) concurrency: usize,
    pub(crate) size: usize,
    pub(crate) measured: Measured,
    pub(crate) baseline: Option<(&'static str, Measured)>,
    pub(crate) rss_before: Option<u64>,
    pub(crate) l1_bytes: Option<u64>,
    pub(crate) requests: Option<u64>,
    pub(crate) compression_ratio: Option<f64>,
}

impl Recorded {
    pub(crate) fn finish(self) -> BenchmarkResult {
        let ratio = self
            .baseline
            .as_ref()
            .map(|(_, b)| self.measured.ops_per_sec / b.ops_per_sec.max(1e-9));
        let rss_delta = match (self.rss_before, rss_bytes()) {
            (Some(before), Some(after)) => {
                Some(i64::try_from(after).unwrap_or(i64::MAX) - i64::try_from(before).unwrap_or(0))
            }
            _ => None,
        };
        #[allow(clippy::cast_precision_loss, reason = "a per-operation figure")]
        let per_op = |n: u64| n as f64 / self.measured.operations.max(1) as f64;
        BenchmarkResult {
            name: format!(
                "{}_{}_{}_c{}",
                self.workload.as_str(),
                self.target,
                size_label(self.size),
                self.concurrency
            ),
            workload: self.workload,
            target: self.target.to_owned(),
            concurrency: self.concurrency,
            value_size: self.size,
            bytes_moved: self.measured.succeeded * self.size as u64,
            measured: self.measured,
            baseline: self.baseline.map(|(name, measured)| Baseline {
                name: name.to_owned(),
                measured,
            }),
            ratio,
            compression_ratio: self.compression_ratio,
            rss_delta_bytes: rss_delta,
            l1_bytes: self.l1_bytes,
            commands_per_op: self.requests.map(per_op),
            grade: Grade::Good,
            memory_grade: Grade::Good,
        }
    }
}

/// The byte caches of a suite: an L1-on writer, an L1-off one, and a way to make fresh L1-on
/// readers, all over one store.
pub(crate) struct ByteCaches {
    pub(crate) with_l1: Arc<GenericRedisCache>,
    pub(crate) without_l1: Arc<GenericRedisCache>,
    pub(crate) store: Arc<dyn DynFrameStore>,
    pub(crate) raw: RawBaseline,
}

fn key_set(prefix: &str, n: usize) -> Arc<Vec<CacheKey>> {
    Arc::new(
        (0..n)
            .filter_map(|i| CacheKey::new(format!("{prefix}:{i}")).ok())
            .collect(),
    )
}

/// One pass of every byte-cache workload at `tasks` tasks; `reader` is a fresh L1-on cache.
pub(crate) async fn byte_workloads(
    caches: &ByteCaches,
    reader: Arc<GenericRedisCache>,
    iterations: usize,
    tasks: usize,
    size: usize,
) -> Vec<Recorded> {
    let value = Bytes::from(value(size, 42));
    let keys = key_set(&format!("w{tasks}"), iterations);
    let names: Arc<Vec<String>> =
        Arc::new(keys.iter().map(|k| caches.with_l1.redis_key(k)).collect());
    let absent = key_set(&format!("absent{tasks}"), iterations);
    let absent_names: Arc<Vec<String>> =
        Arc::new(absent.iter().map(|k| caches.with_l1.redis_key(k)).collect());
    let mut out = Vec::new();
    let record = |workload, measured, baseline, rss_before, l1_bytes, requests| Recorded {
        workload,
        target: "generic",
        concurrency: tasks,
        size,
        measured,
        baseline,
        rss_before,
        l1_bytes,
        requests,
        compression_ratio: None,
    };
    let requests = || caches.store.stats().requests;

    let (rss, sent) = (rss_bytes(), requests());
    let cache = Arc::clone(&caches.with_l1);
    let (k, v) = (Arc::clone(&keys), value.clone());
    let (measured, raw_set) = pair(
        iterations,
        tasks,
        move |i| {
            let (cache, key, v) = (Arc::clone(&cache), k[i].clone(), v.clone());
            async move { cache.set_dyn(&key, v, bench_ttl()).await.is_ok() }
        },
        raw_op(&caches.raw, &names, RawOp::Set(value.clone())),
    )
    .await;
    let sent = requests() - sent;

    out.push(record(
        Workload::Write,
        measured,
        Some(("raw SET PX", raw_set)),
        rss,
        None,
        Some(sent),
    ));
    // The raw writes replaced the frames with bare bytes: write the entries again, untimed.
    let entries: Vec<(CacheKey, Bytes)> = keys.iter().map(|k| (k.clone(), value.clone())).collect();
    for batch in entries.chunks(256) {
        let _ = caches.without_l1.set_many_dyn(batch, bench_ttl()).await;
    }

    for (workload, cache, names_read) in [
        (Workload::ReadThrough, Arc::clone(&reader), &names),
        (Workload::L1Hit, Arc::clone(&reader), &names),
        (Workload::L2Hit, Arc::clone(&caches.without_l1), &names),
        (
            Workload::Miss,
            Arc::clone(&caches.without_l1),
            &absent_names,
        ),
    ] {
        let read_keys = if workload == Workload::Miss {
            Arc::clone(&absent)
        } else {
            Arc::clone(&keys)
        };
        let (rss, sent) = (rss_bytes(), requests());
        let hit = workload != Workload::Miss;
        let reading = Arc::clone(&cache);
        let (measured, raw_get) =
            pair(
                iterations,
                tasks,
                move |i| {
                    let (cache, key) = (Arc::clone(&reading), read_keys[i].clone());
                    async move {
                        matches!(cache.get_dyn(&key).await, Ok(found) if found.is_some() == hit)
                    }
                },
                raw_op(&caches.raw, names_read, RawOp::Get),
            )
            .await;
        let sent = requests() - sent;
        let l1 = cache.stats().l1.map(|s| s.bytes);

        out.push(record(
            workload,
            measured,
            Some(("raw GET", raw_get)),
            rss,
            l1,
            Some(sent),
        ));
    }

    let batches = (iterations / 16).max(1);
    let (rss, sent) = (rss_bytes(), requests());
    let (cache, k) = (Arc::clone(&caches.without_l1), Arc::clone(&keys));
    let (measured, raw_mget) = pair(
        batches,
        tasks,
        move |b| {
            let cache = Arc::clone(&cache);
            let batch: Vec<CacheKey> = (0..16).map(|j| k[(b * 16 + j) % k.len()].clone()).collect();
            async move {
                cache
                    .get_many_dyn(&batch)
                    .await
                    .is_ok_and(|f| f.iter().all(Option::is_some))
            }
        },
        raw_op(&caches.raw, &names, RawOp::Mget),
    )
    .await;
    let sent = requests() - sent;

    out.push(record(
        Workload::GetMany,
        measured,
        Some(("raw MGET of 16", raw_mget)),
        rss,
        None,
        Some(sent),
    ));

    let (rss, sent) = (rss_bytes(), requests());
    let (cache, k) = (Arc::clone(&caches.without_l1), Arc::clone(&keys));
    let (measured, raw_unlink) = pair(
        iterations,
        tasks,
        move |i| {
            let (cache, key) = (Arc::clone(&cache), k[i].clone());
            async move { cache.delete_dyn(&key).await.is_ok() }
        },
        raw_op(&caches.raw, &names, RawOp::Unlink),
    )
    .await;
    let sent = requests() - sent;

    out.push(record(
        Workload::Invalidate,
        measured,
        Some(("raw UNLINK", raw_unlink)),
        rss,
        None,
        Some(sent),
    ));
    out
}

#[derive(Clone)]
enum RawOp {
    Get,
    Set(Bytes),
    Mget,
    Unlink,
}

/// The raw baseline of a workload: the same operation on the same Redis keys.
fn raw_op(
    raw: &RawBaseline,
    names: &Arc<Vec<String>>,
    op: RawOp,
) -> impl Fn(usize) -> BoxFuture<'static, bool> + Send + Sync + 'static {
    let (raw, names) = (raw.clone(), Arc::clone(names));
    move |i| {
        let (raw, names, op) = (raw.clone(), Arc::clone(&names), op.clone());
        Box::pin(async move {
            let name = &names[i % names.len()];
            match op {
                RawOp::Get => raw.get(name).await.is_ok(),
                RawOp::Set(value) => raw.set(name, &value, 300_000).await.is_ok(),
                RawOp::Unlink => raw.unlink(name).await.is_ok(),
                RawOp::Mget => {
                    let batch: Vec<String> = (0..16)
                        .map(|j| names[(i * 16 + j) % names.len()].clone())
                        .collect();
                    raw.mget(&batch).await.is_ok()
                }
            }
        })
    }
}

/// The AI caches of a suite: an L1-off writer and fresh L1-on readers over one store.
pub(crate) struct AiCaches {
    pub(crate) without_l1: Arc<AIResponseCache<Value>>,
    pub(crate) store: Arc<dyn DynFrameStore>,
    pub(crate) raw: RawBaseline,
}

/// One pass of the AI workloads with texts of `text_chars` characters at `tasks` tasks.
pub(crate) async fn ai_workloads(
    caches: &AiCaches,
    reader: Arc<AIResponseCache<Value>>,
    iterations: usize,
    tasks: usize,
    text_chars: usize,
    answer_size: usize,
) -> Vec<Recorded> {
    let texts: Arc<Vec<String>> = Arc::new(
        (0..iterations)
            .map(|i| realistic_text(text_chars, (tasks * 1_000_000 + i) as u64))
            .collect(),
    );
    let absent: Arc<Vec<String>> = Arc::new(
        (0..iterations)
            .map(|i| realistic_text(text_chars, (tasks * 1_000_000 + i) as u64 + 500_000_000))
            .collect(),
    );
    let answer = serde_json::json!({"summary": realistic_text(answer_size, 9)});
    let answer_bytes = Bytes::from(serde_json::to_vec(&answer).unwrap_or_default());
    let full = |cache: &AIResponseCache<Value>, texts: &[String]| -> Arc<Vec<String>> {
        Arc::new(
            texts
                .iter()
                .filter_map(|t| cache.key(&AiRequest::new("summarize", t)).ok())
                .map(|k| cache.full_key(&k))
                .collect(),
        )
    };
    let names = full(&caches.without_l1, &texts);
    let absent_names = full(&caches.without_l1, &absent);
    let requests = || caches.store.stats().requests;
    let record = |workload, measured, baseline, rss_before, l1_bytes, requests| Recorded {
        workload,
        target: "ai",
        concurrency: tasks,
        size: text_chars,
        measured,
        baseline,
        rss_before,
        l1_bytes,
        requests,
        compression_ratio: None,
    };
    let mut out = Vec::new();

    let (rss, sent) = (rss_bytes(), requests());
    let (cache, t, a) = (
        Arc::clone(&caches.without_l1),
        Arc::clone(&texts),
        answer.clone(),
    );
    let (measured, raw_set) = pair(
        iterations,
        tasks,
        move |i| {
            let (cache, t, a) = (Arc::clone(&cache), Arc::clone(&t), a.clone());
            async move {
                let Ok(key) = cache.key(&AiRequest::new("summarize", &t[i])) else {
                    return false;
                };
                cache
                    .put(&key, a, &RequestControls::default())
                    .await
                    .unwrap_or(false)
            }
        },
        raw_op(&caches.raw, &names, RawOp::Set(answer_bytes)),
    )
    .await;
    let sent = requests() - sent;

    out.push(record(
        Workload::Write,
        measured,
        Some(("raw SET PX", raw_set)),
        rss,
        None,
        Some(sent),
    ));
    // The raw writes replaced the frames with bare bytes: write the answers again, untimed.
    for text in texts.iter() {
        if let Ok(key) = caches.without_l1.key(&AiRequest::new("summarize", text)) {
            let _ = caches
                .without_l1
                .put(&key, answer.clone(), &RequestControls::default())
                .await;
        }
    }

    for (workload, cache, read_texts, read_names) in [
        (Workload::ReadThrough, Arc::clone(&reader), &texts, &names),
        (Workload::L1Hit, Arc::clone(&reader), &texts, &names),
        (
            Workload::L2Hit,
            Arc::clone(&caches.without_l1),
            &texts,
            &names,
        ),
        (
            Workload::Miss,
            Arc::clone(&caches.without_l1),
            &absent,
            &absent_names,
        ),
    ] {
        let (rss, sent) = (rss_bytes(), requests());
        let hit = workload != Workload::Miss;
        let (reading, t) = (Arc::clone(&cache), Arc::clone(read_texts));
        let (measured, raw_get) = pair(
            iterations,
            tasks,
            move |i| {
                let (cache, t) = (Arc::clone(&reading), Arc::clone(&t));
                async move {
                    let Ok(key) = cache.key(&AiRequest::new("summarize", &t[i])) else {
                        return false;
                    };
                    matches!(cache.get(&key).await, Ok(found) if found.is_some() == hit)
                }
            },
            raw_op(&caches.raw, read_names, RawOp::Get),
        )
        .await;
        let sent = requests() - sent;
        let l1 = cache.stats().l1.map(|s| s.bytes);

        out.push(record(
            workload,
            measured,
            Some(("raw GET", raw_get)),
            rss,
            l1,
            Some(sent),
        ));
    }

    let (rss, sent) = (rss_bytes(), requests());
    let (cache, t) = (Arc::clone(&caches.without_l1), Arc::clone(&texts));
    let (measured, raw_unlink) = pair(
        iterations,
        tasks,
        move |i| {
            let (cache, t) = (Arc::clone(&cache), Arc::clone(&t));
            async move {
                let Ok(key) = cache.key(&AiRequest::new("summarize", &t[i])) else {
                    return false;
                };
                cache.delete(&key).await.is_ok()
            }
        },
        raw_op(&caches.raw, &names, RawOp::Unlink),
    )
    .await;
    let sent = requests() - sent;

    out.push(record(
        Workload::Invalidate,
        measured,
        Some(("raw UNLINK", raw_unlink)),
        rss,
        None,
        Some(sent),
    ));
    out
}

mod other;

pub(crate) use other::{any_cache_workloads, compression_workloads};
