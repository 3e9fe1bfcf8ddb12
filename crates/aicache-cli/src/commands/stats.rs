//! `aicache stats`: what Redis holds per operation, from a SCAN sample.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use aicache::{FrameStore, KeyPattern, WalkMode};
use serde_json::{Value, json};

use crate::context::Context;
use crate::exit::CliError;
use crate::output::Output;

#[derive(Default)]
struct PerOperation {
    entries: u64,
    bytes: u64,
    ttls: Vec<u64>,
}

pub(crate) async fn run(
    ctx: &Context,
    sample: u64,
    watch: Option<u64>,
) -> Result<Output, CliError> {
    let Some(every) = watch else {
        return once(ctx, sample).await;
    };
    loop {
        let out = once(ctx, sample).await?;
        out.print(ctx.json);
        tokio::time::sleep(Duration::from_secs(every.max(1))).await;
    }
}

async fn once(ctx: &Context, sample: u64) -> Result<Output, CliError> {
    let (store, namespace) = ctx.ai_store().await?;
    let mut per_op: BTreeMap<String, PerOperation> = BTreeMap::new();
    let mut sampled = 0u64;
    let mut complete = false;
    let mut cursor = None;
    let pattern = KeyPattern::all().with_segments(2);
    'walk: loop {
        let page = store.walk(&pattern, cursor, WalkMode::Frames).await?;
        for entry in page.entries {
            if sampled >= sample {
                break 'walk;
            }
            sampled += 1;
            let operation = entry
                .key
                .as_str()
                .split(':')
                .next()
                .unwrap_or("?")
                .to_owned();
            let op = per_op.entry(operation).or_default();
            op.entries += 1;
            op.bytes += entry.frame.map_or(0, |f| f.len() as u64);
            if let Some(ttl) = entry.remaining_ttl {
                op.ttls.push(ttl.as_secs());
            }
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => {
                complete = true;
                break;
            }
        }
    }
    let keys_in_db = store.approximate_len().await?;
    let memory = store.server_memory().await?;
    // A walk that reached the end saw every entry; otherwise the rate is estimated against
    // DBSIZE, which counts every key of the database (other namespaces, tombstones included).
    #[allow(clippy::cast_precision_loss, reason = "a sampling rate")]
    let rate = if complete {
        Some(1.0)
    } else {
        keys_in_db.map(|n| (sampled as f64 / n.max(1) as f64).min(1.0))
    };
    let mut text = if complete {
        format!("namespace {namespace}: all {sampled} entries read (sampling rate 100 %)\n")
    } else {
        format!(
            "namespace {namespace}: {sampled} entries sampled{}\n",
            rate.map_or_else(String::new, |r| format!(
                " of at most {} keys in the database (sampling rate at least {:.1} %)",
                keys_in_db.unwrap_or(0),
                r * 100.0
            ))
        )
    };
    let _ = writeln!(
        text,
        "{:<24} {:>10} {:>12} {:>9} {:>9} {:>9}",
        "operation", "entries", "bytes", "ttl min", "ttl p50", "ttl max"
    );
    let mut ops = serde_json::Map::new();
    for (name, op) in &mut per_op {
        op.ttls.sort_unstable();
        let at = |q: usize| op.ttls.get(q.min(op.ttls.len().saturating_sub(1))).copied();
        let (min, p50, max) = (at(0), at(op.ttls.len() / 2), at(op.ttls.len()));
        let _ = writeln!(
            text,
            "{name:<24} {:>10} {:>12} {:>8}s {:>8}s {:>8}s",
            op.entries,
            op.bytes,
            min.unwrap_or(0),
            p50.unwrap_or(0),
            max.unwrap_or(0)
        );
        ops.insert(
            name.clone(),
            json!({"entries": op.entries, "bytes": op.bytes, "ttl_seconds": {"min": min, "p50": p50, "max": max}}),
        );
    }
    let memory_json = memory.as_ref().map_or(Value::Null, |m| {
        json!({"used_bytes": m.used_bytes, "peak_bytes": m.peak_bytes, "max_bytes": m.max_bytes, "fragmentation_ratio": m.fragmentation_ratio})
    });
    if let Some(m) = &memory {
        let _ = writeln!(
            text,
            "Redis memory: {} used, {} peak, max {} ({}), fragmentation {:.2}",
            m.used_bytes,
            m.peak_bytes,
            m.max_bytes,
            if m.max_bytes == 0 {
                "no limit"
            } else {
                "bytes"
            },
            m.fragmentation_ratio
        );
    }
    // The snapshots instances publish (stats_snapshot_interval), newest counters per instance.
    let snapshots = store.snapshots().await?;
    let mut instances = Vec::new();
    if !snapshots.is_empty() {
        let _ = writeln!(
            text,
            "\ninstances publishing snapshots: {}",
            snapshots.len()
        );
    }
    let now = aicache::unix_millis();
    for (instance, body) in snapshots {
        let Ok(doc) = serde_json::from_slice::<Value>(&body) else {
            continue;
        };
        let age = now.saturating_sub(doc["at_ms"].as_u64().unwrap_or(now)) / 1000;
        let (hits, reads) = doc["operations"].as_object().map_or((0, 0), |ops| {
            ops.values().fold((0, 0), |(h, r), op| {
                let hit = op["l1_hits"].as_u64().unwrap_or(0) + op["l2_hits"].as_u64().unwrap_or(0);
                (h + hit, r + hit + op["misses"].as_u64().unwrap_or(0))
            })
        });
        #[allow(clippy::cast_precision_loss, reason = "a hit rate")]
        let rate = if reads == 0 {
            0.0
        } else {
            hits as f64 / reads as f64
        };
        let _ = writeln!(
            text,
            "  {instance}: {age} s ago, hit rate {:.1} % over {reads} reads, Redis {}, replay queued {}",
            rate * 100.0,
            if doc["redis_available"] == true {
                "available"
            } else {
                "UNAVAILABLE (breaker open)"
            },
            doc["replay"]["queued"]
        );
        instances.push(doc);
    }
    Ok(Output::new(
        text,
        json!({
            "instances": instances,
            "ok": true,
            "namespace": namespace,
            "sampled": sampled,
            "complete": complete,
            "keys_in_database": keys_in_db,
            "sampling_rate": rate,
            "operations": ops,
            "redis_memory": memory_json,
        }),
    ))
}
