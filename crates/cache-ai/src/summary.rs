//! The seed's performance reports: `get_ai_performance_summary`, `get_operation_performance`,
//! `get_text_tier_statistics`, and the optimisation recommendations.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::config::AiCacheConfig;
use crate::stats::AiSnapshot;

const TIER_NAMES: [&str; 4] = cache_core::TextTier::NAMES;
/// Operations with fewer reads are left out of the recommendations (the seed's rule).
const MIN_REQUESTS: u64 = 10;

/// How urgent a recommendation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[non_exhaustive]
pub enum Priority {
    /// Act now.
    High,
    /// Worth doing.
    Medium,
    /// Nice to have.
    Low,
}

/// What a recommendation is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub enum RecommendationKind {
    /// An operation's hit rate is under 30 %.
    LowHitRate,
    /// An operation's hit rate is over 90 %.
    ExcellentHitRate,
    /// Most reads are of small texts: a larger L1 pays.
    LargerL1,
    /// Few reads are of small texts: compression pays.
    Compression,
    /// L1 is more than 90 % full.
    L1Full,
    /// L1 is less than 30 % full.
    L1Oversized,
}

/// One typed recommendation, with the numbers behind it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Recommendation {
    /// What it is about.
    pub kind: RecommendationKind,
    /// How urgent.
    pub priority: Priority,
    /// The operation it concerns, if any.
    pub operation: Option<String>,
    /// What was seen.
    pub message: String,
    /// What to do.
    pub action: String,
    /// The figures that triggered it.
    pub metrics: BTreeMap<String, f64>,
}

/// Reads and read latency of one operation, in milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct OperationPerformance {
    /// Reads (exact: L1 hits, L2 hits and misses).
    pub count: u64,
    /// Reads timed within the latency window (1 in `latency_sample_every`, the last hour): the
    /// latency figures below come from these, and are 0 while none was timed.
    pub timed: u64,
    /// Mean.
    pub avg_ms: f64,
    /// Fastest.
    pub min_ms: f64,
    /// Slowest.
    pub max_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// The operation's TTL, in seconds.
    pub configured_ttl_secs: u64,
}

/// One text tier's reads.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct TierPerformance {
    /// Reads of this tier.
    pub requests: u64,
    /// Hit rate, 0..=1.
    pub hit_rate: f64,
    /// Mean read time in milliseconds.
    pub avg_ms: f64,
    /// Observations (`Low hit rate`, `Fast`, …).
    pub notes: Vec<String>,
}

/// `get_text_tier_statistics`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct TextTierStatistics {
    /// The thresholds in force (characters).
    pub thresholds: BTreeMap<String, usize>,
    /// Reads per tier.
    pub distribution: BTreeMap<String, u64>,
    /// Per-tier performance (tiers without reads are left out).
    pub performance: BTreeMap<String, TierPerformance>,
}

/// `get_ai_performance_summary`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct AiPerformanceSummary {
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// Reads (hits and misses) over all operations.
    pub total_ai_operations: u64,
    /// hits / reads over all operations, 0..=1.
    pub overall_hit_rate: f64,
    /// Per operation that was read, 0..=1 (an operation only written has no entry).
    pub hit_rate_by_operation: BTreeMap<String, f64>,
    /// Reads per text tier.
    pub text_tier_distribution: BTreeMap<String, u64>,
    /// Keys generated and the mean time per key, in nanoseconds.
    pub key_generation: BTreeMap<String, u64>,
    /// What to change.
    pub optimization_recommendations: Vec<Recommendation>,
    /// L1 entries and cap, when L1 is on.
    pub l1_entries: Option<(u64, u64)>,
    /// Model time the hits spared, in milliseconds: hits × the mean compute time observed by
    /// `get_or_compute`, per operation.
    pub time_saved_ms: u64,
    /// Tokens the hits spared (with a usage meter; see `set_usage_meter`).
    pub tokens_saved: u64,
    /// What the hits spared, in the caller's currency (with a usage meter).
    pub cost_saved: f64,
    /// Tokens the computations used (with a usage meter).
    pub tokens_used: u64,
    /// What the computations cost, in the caller's currency (with a usage meter).
    pub cost_used: f64,
    /// The tiers' own counters (the original's `inherited_stats`): L1's when it is on, Redis's
    /// (hits, misses, corrupt and unreadable frames, errors, requests, the replay queue) when
    /// there is one.
    pub inherited_stats: InheritedStats,
}

/// The counters of the tiers under the AI layer, in [`AiPerformanceSummary`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct InheritedStats {
    /// The L1 of decoded responses, when on.
    pub l1: Option<cache_memory::MemoryCacheStats>,
    /// The shared tier, when there is one.
    pub l2: Option<cache_memory::L2Stats>,
}

fn ms(us: u64) -> f64 {
    #[expect(
        clippy::cast_precision_loss,
        reason = "microsecond figures are far below 2^52"
    )]
    let value = us as f64 / 1000.0;
    value
}

fn rate(hits: u64, reads: u64) -> f64 {
    if reads == 0 {
        return 0.0;
    }
    #[expect(clippy::cast_precision_loss, reason = "counters are far below 2^52")]
    let value = hits as f64 / reads as f64;
    value
}

fn recommendation(
    kind: RecommendationKind,
    priority: Priority,
    operation: Option<&str>,
    message: String,
    action: &str,
    metrics: &[(&str, f64)],
) -> Recommendation {
    Recommendation {
        kind,
        priority,
        operation: operation.map(String::from),
        message,
        action: action.to_string(),
        metrics: metrics
            .iter()
            .map(|(k, v)| ((*k).to_string(), *v))
            .collect(),
    }
}

/// The seed's rules, made typed.
pub(crate) fn recommendations(inputs: &AiSnapshot) -> Vec<Recommendation> {
    let mut out = Vec::new();
    for (operation, stats, _) in &inputs.operations {
        let reads = stats.hits() + stats.misses;
        let Some(hit_rate) = stats.hit_rate().filter(|_| reads >= MIN_REQUESTS) else {
            continue;
        };
        #[expect(clippy::cast_precision_loss, reason = "counters are far below 2^52")]
        let figures = [("hit_rate", hit_rate), ("requests", reads as f64)];
        if hit_rate < 0.3 {
            out.push(recommendation(
                RecommendationKind::LowHitRate,
                Priority::High,
                Some(operation),
                format!(
                    "{operation}: hit rate {:.0} % over {reads} reads",
                    hit_rate * 100.0
                ),
                "increase the operation's TTL, or check that requests are keyed consistently",
                &figures,
            ));
        } else if hit_rate > 0.9 {
            out.push(recommendation(
                RecommendationKind::ExcellentHitRate,
                Priority::Low,
                Some(operation),
                format!(
                    "{operation}: hit rate {:.0} % over {reads} reads",
                    hit_rate * 100.0
                ),
                "consider increasing the TTL further to save more model calls",
                &figures,
            ));
        }
    }
    let reads: u64 = inputs.tiers.iter().map(|(h, m, _)| h + m).sum();
    if reads >= MIN_REQUESTS {
        let small = rate(inputs.tiers[0].0 + inputs.tiers[0].1, reads);
        if small > 0.7 {
            out.push(recommendation(
                RecommendationKind::LargerL1,
                Priority::Medium,
                None,
                format!("{:.0} % of reads are of small texts", small * 100.0),
                "increase memory_cache_size: small answers are cheap to keep in L1",
                &[("small_share", small)],
            ));
        } else if small < 0.2 {
            out.push(recommendation(
                RecommendationKind::Compression,
                Priority::Low,
                None,
                format!("only {:.0} % of reads are of small texts", small * 100.0),
                "lower compression_threshold or choose zstd: long answers dominate Redis memory",
                &[("small_share", small)],
            ));
        }
    }
    if let Some(l1) = &inputs.stats.l1
        && l1.max_entries > 0
    {
        let fill = rate(l1.entries, l1.max_entries);
        if fill > 0.9 {
            out.push(recommendation(
                RecommendationKind::L1Full,
                Priority::High,
                None,
                format!("L1 is {:.0} % full", fill * 100.0),
                "double memory_cache_size",
                &[("l1_fill", fill)],
            ));
        } else if fill < 0.3 && reads >= MIN_REQUESTS {
            out.push(recommendation(
                RecommendationKind::L1Oversized,
                Priority::Low,
                None,
                format!("L1 is only {:.0} % full", fill * 100.0),
                "memory_cache_size can shrink to about 0.7x (at least 50)",
                &[("l1_fill", fill)],
            ));
        }
    }
    out.sort_by_key(|r| r.priority);
    out
}

/// Per operation: exact read count, read latency (avg/min/max/p50/p95/p99 in ms, from a histogram
/// of the timed reads) and the configured TTL. Every operation that was read is listed, timed or
/// not.
pub(crate) fn operation_performance(
    inputs: &AiSnapshot,
    config: &AiCacheConfig,
) -> BTreeMap<String, OperationPerformance> {
    inputs
        .operations
        .iter()
        .map(|(operation, stats, l)| (operation, stats.l1_hits + stats.l2_hits + stats.misses, l))
        .filter(|(_, reads, _)| *reads > 0)
        .map(|(operation, reads, l)| {
            let ttl = config.ttl_for(operation).as_secs();
            let performance = OperationPerformance {
                count: reads,
                timed: l.count,
                avg_ms: l.mean_us / 1000.0,
                min_ms: ms(l.min_us),
                max_ms: ms(l.max_us),
                p50_ms: ms(l.p50_us),
                p95_ms: ms(l.p95_us),
                p99_ms: ms(l.p99_us),
                configured_ttl_secs: ttl,
            };
            (operation.clone(), performance)
        })
        .collect()
}

/// Tier thresholds, read distribution and per-tier performance with observations.
pub(crate) fn text_tier_statistics(
    inputs: &AiSnapshot,
    config: &AiCacheConfig,
) -> TextTierStatistics {
    let t = config.text_size_tiers;
    let thresholds = [("small", t.small), ("medium", t.medium), ("large", t.large)]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    let mut distribution = BTreeMap::new();
    let mut performance = BTreeMap::new();
    for (i, (hits, misses, latency)) in inputs.tiers.iter().enumerate() {
        let name = TIER_NAMES[i];
        let requests = hits + misses;
        distribution.insert(name.to_string(), requests);
        if requests == 0 {
            continue;
        }
        let hit_rate = rate(*hits, requests);
        let avg_ms = latency.mean_us / 1000.0;
        let mut notes = Vec::new();
        if hit_rate < 0.3 {
            notes.push("Low hit rate".to_string());
        } else if hit_rate > 0.9 {
            notes.push("Excellent hit rate".to_string());
        }
        if avg_ms > 100.0 {
            notes.push("Slow".to_string());
        } else if avg_ms < 10.0 {
            notes.push("Fast".to_string());
        }
        if name == "small" && hit_rate < 0.8 {
            notes.push("check memory cache promotion".to_string());
        }
        if name == "xlarge" && hit_rate > 0.6 {
            notes.push("verify thresholds".to_string());
        }
        performance.insert(
            name.to_string(),
            TierPerformance {
                requests,
                hit_rate,
                avg_ms,
                notes,
            },
        );
    }
    TextTierStatistics {
        thresholds,
        distribution,
        performance,
    }
}

/// Reads, hit rates by operation, tier distribution, key generation and recommendations; a
/// well-formed answer with zeros before any read.
pub(crate) fn ai_performance_summary(inputs: &AiSnapshot) -> AiPerformanceSummary {
    let (mut hits, mut reads) = (0, 0);
    let mut hit_rate_by_operation = BTreeMap::new();
    for (operation, stats, _) in &inputs.operations {
        hits += stats.hits();
        reads += stats.hits() + stats.misses;
        // An operation never read has no hit rate (0 % would read as "always misses").
        if let Some(rate) = stats.hit_rate() {
            hit_rate_by_operation.insert(operation.clone(), rate);
        }
    }
    let keys = inputs.stats.key_generation;
    let key_generation = [
        ("keys_generated", keys.keys_generated),
        ("average_nanos", keys.average_nanos()),
        ("max_text_bytes", keys.max_text_bytes),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let text_tier_distribution = TIER_NAMES
        .iter()
        .zip(&inputs.tiers)
        .map(|(name, (h, m, _))| ((*name).to_string(), h + m))
        .collect();
    AiPerformanceSummary {
        timestamp_ms: cache_core::unix_millis(),
        total_ai_operations: reads,
        overall_hit_rate: rate(hits, reads),
        hit_rate_by_operation,
        text_tier_distribution,
        key_generation,
        optimization_recommendations: recommendations(inputs),
        l1_entries: inputs.stats.l1.map(|l1| (l1.entries, l1.max_entries)),
        time_saved_ms: inputs
            .operations
            .iter()
            .map(|(_, stats, _)| u64::try_from(stats.time_saved().as_millis()).unwrap_or(u64::MAX))
            .sum(),
        tokens_saved: inputs
            .operations
            .iter()
            .map(|(_, s, _)| s.tokens_saved)
            .sum(),
        cost_saved: inputs
            .operations
            .iter()
            .map(|(_, s, _)| s.cost_saved())
            .sum(),
        tokens_used: inputs
            .operations
            .iter()
            .map(|(_, s, _)| s.tokens_used)
            .sum(),
        cost_used: inputs
            .operations
            .iter()
            .map(|(_, s, _)| s.cost_used())
            .sum(),
        inherited_stats: InheritedStats {
            l1: inputs.stats.l1,
            l2: inputs.stats.l2,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use crate::stats::OperationStats;
    use cache_monitoring::LatencySummary;

    fn latency(count: u64) -> LatencySummary {
        let window = cache_monitoring::LatencyWindow::new(Duration::from_secs(60));
        for _ in 0..count {
            window.record(Duration::from_micros(100));
        }
        window.summary()
    }

    fn op(hits: u64, misses: u64) -> OperationStats {
        OperationStats {
            l1_hits: hits,
            misses,
            ..OperationStats::default()
        }
    }

    fn inputs(operations: Vec<(&str, OperationStats)>, tiers: [(u64, u64); 4]) -> AiSnapshot {
        let cache: crate::AIResponseCache<String> =
            crate::AIResponseCache::new(crate::AiCacheConfig::default()).unwrap();
        AiSnapshot {
            operations: operations
                .into_iter()
                .map(|(name, stats)| (name.to_string(), stats, latency(1)))
                .collect(),
            tiers: tiers.map(|(h, m)| (h, m, latency(1))),
            stats: cache.stats(),
        }
    }

    fn kinds(recommendations: &[Recommendation]) -> Vec<RecommendationKind> {
        recommendations.iter().map(|r| r.kind).collect()
    }

    #[test]
    fn no_data_means_no_recommendations() {
        let empty = inputs(vec![], [(0, 0); 4]);
        assert!(recommendations(&empty).is_empty());
    }

    #[test]
    fn operations_under_ten_reads_are_skipped() {
        let partial = inputs(vec![("qa", op(0, 9))], [(0, 9), (0, 0), (0, 0), (0, 0)]);
        assert!(recommendations(&partial).is_empty());
    }

    #[test]
    fn hit_rate_and_tier_rules() {
        let full = inputs(
            vec![
                ("qa", op(2, 18)),
                ("sentiment", op(19, 1)),
                ("summarize", op(10, 10)),
            ],
            [(40, 10), (5, 5), (0, 0), (0, 0)],
        );
        let found = recommendations(&full);
        assert_eq!(
            kinds(&found),
            vec![
                RecommendationKind::LowHitRate,
                RecommendationKind::LargerL1,
                RecommendationKind::ExcellentHitRate,
                RecommendationKind::L1Oversized,
            ],
            "sorted high, medium, low; summarize (50 %) has nothing to report; this L1 is empty"
        );
        assert_eq!(found[0].operation.as_deref(), Some("qa"));
        assert!((found[0].metrics["hit_rate"] - 0.1).abs() < 1e-9);
        let long_texts = inputs(vec![], [(1, 1), (20, 20), (10, 0), (0, 0)]);
        assert_eq!(
            kinds(&recommendations(&long_texts)),
            vec![
                RecommendationKind::Compression,
                RecommendationKind::L1Oversized
            ]
        );
    }
}
