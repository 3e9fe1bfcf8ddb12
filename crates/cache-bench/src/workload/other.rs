//! The workloads without a Redis baseline of their own: compression (against encoding without
//! it) and any cache (no raw loop exists for an arbitrary cache).

use std::sync::Arc;

use bytes::Bytes;
use cache_core::DynCache;
use cache_core::frame::{Codec, Compression, FrameCodec, FrameMeta};

use super::{Recorded, Workload, bench_ttl, key_set};
use crate::data::{realistic_text, value};
use crate::measure::{pair, rss_bytes, run};

/// Frame encoding of realistic text of `chars` characters, LZ4 and zstd, against encoding
/// without compression; the ratio is the stored size over the original size.
pub(crate) async fn compression_workloads(iterations: usize, chars: usize) -> Vec<Recorded> {
    let text = Arc::new(realistic_text(chars, 3).into_bytes());
    let meta = FrameMeta::new(1_700_000_000_000, 1_700_003_600_000);
    let mut out = Vec::new();
    let plain = FrameCodec::new().with_compression(Compression::None);
    for (target, compression) in [
        ("codec_lz4", Compression::Lz4),
        ("codec_zstd", Compression::Zstd),
    ] {
        let codec = FrameCodec::new()
            .with_compression_threshold(0)
            .with_compression(compression);
        let stored = codec
            .encode("k", &meta, Codec::Raw, &text)
            .map(|f| f.bytes.len())
            .unwrap_or(text.len());
        #[allow(clippy::cast_precision_loss, reason = "a size ratio")]
        let ratio = stored as f64 / text.len().max(1) as f64;
        let rss = rss_bytes();
        let (c, t, m) = (codec.clone(), Arc::clone(&text), meta.clone());
        let (p, pt, pm) = (plain.clone(), Arc::clone(&text), meta.clone());
        let (measured, baseline) = pair(
            iterations,
            1,
            move |_| {
                let ok = c.encode("k", &m, Codec::Raw, &t).is_ok();
                async move { ok }
            },
            move |_| {
                let ok = p.encode("k", &pm, Codec::Raw, &pt).is_ok();
                async move { ok }
            },
        )
        .await;
        out.push(Recorded {
            workload: Workload::Compression,
            target,
            concurrency: 1,
            size: chars,
            measured,
            baseline: Some(("encode without compression", baseline)),
            rss_before: rss,
            l1_bytes: None,
            requests: None,
            compression_ratio: Some(ratio),
        });
    }
    out
}

/// The byte-cache workloads against any cache, without a baseline.
pub(crate) async fn any_cache_workloads(
    cache: Arc<dyn DynCache>,
    iterations: usize,
    tasks: usize,
    size: usize,
) -> Vec<Recorded> {
    let value = Bytes::from(value(size, 42));
    let keys = key_set(&format!("any{tasks}"), iterations);
    let absent = key_set(&format!("anyabsent{tasks}"), iterations);
    let mut out = Vec::new();
    let record = |workload, measured, rss_before| Recorded {
        workload,
        target: "cache",
        concurrency: tasks,
        size,
        measured,
        baseline: None,
        rss_before,
        l1_bytes: None,
        requests: None,
        compression_ratio: None,
    };
    let rss = rss_bytes();
    let (c, k, v) = (Arc::clone(&cache), Arc::clone(&keys), value.clone());
    let measured = run(iterations, tasks, move |i| {
        let (c, key, v) = (Arc::clone(&c), k[i].clone(), v.clone());
        async move { c.set_dyn(&key, v, bench_ttl()).await.is_ok() }
    })
    .await;
    out.push(record(Workload::Write, measured, rss));
    for (workload, read) in [
        (Workload::L1Hit, Arc::clone(&keys)),
        (Workload::Miss, Arc::clone(&absent)),
    ] {
        let rss = rss_bytes();
        let hit = workload != Workload::Miss;
        let c = Arc::clone(&cache);
        let measured = run(iterations, tasks, move |i| {
            let (c, key) = (Arc::clone(&c), read[i].clone());
            async move { matches!(c.get_dyn(&key).await, Ok(found) if found.is_some() == hit) }
        })
        .await;
        out.push(record(workload, measured, rss));
    }
    let rss = rss_bytes();
    let (c, k) = (Arc::clone(&cache), Arc::clone(&keys));
    let measured = run(iterations, tasks, move |i| {
        let (c, key) = (Arc::clone(&c), k[i].clone());
        async move { c.delete_dyn(&key).await.is_ok() }
    })
    .await;
    out.push(record(Workload::Invalidate, measured, rss));
    out
}
