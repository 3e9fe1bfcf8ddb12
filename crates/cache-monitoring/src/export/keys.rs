//! The `metrics` keys of [`MetricsRecorder`](super::MetricsRecorder), built once per label set:
//! recording an event costs no allocation, and each event still goes to the recorder in scope
//! (global or local), so a recorder installed later is seen.

use std::sync::{Arc, LazyLock};

use cache_core::{CacheOp, Layer, Outcome};
use metrics::{Counter, Histogram, Key, Label, Level, Metadata, SharedString};

use crate::OperationTable;

/// The target the `metrics` macros gave these events when they built keys per call.
static METADATA: Metadata<'static> = Metadata::new(
    "cache_monitoring::export",
    Level::INFO,
    Some("cache_monitoring::export"),
);

const LAYERS: [Layer; 2] = [Layer::L1, Layer::L2];
const OUTCOMES: [&str; 4] = ["hit", "miss", "failed", "done"];
/// The text tiers the AI layer reports (another name is labelled by the macros, per event).
const TIERS: [&str; 4] = cache_core::TextTier::NAMES;
const USAGE_KINDS: [&str; 2] = ["used", "saved"];

/// The `outcome` label of `outcome`.
pub(super) fn outcome_label(outcome: Outcome) -> &'static str {
    OUTCOMES[outcome_index(outcome)]
}

fn outcome_index(outcome: Outcome) -> usize {
    match outcome {
        Outcome::Hit => 0,
        Outcome::Miss => 1,
        Outcome::Failed(_) => 2,
        _ => 3,
    }
}

fn layer_index(layer: Layer) -> usize {
    usize::from(layer != Layer::L1)
}

fn key(name: &'static str, labels: &[(&'static str, SharedString)]) -> Key {
    Key::from_parts(
        name,
        labels
            .iter()
            .map(|(k, v)| Label::new(*k, v.clone()))
            .collect::<Vec<_>>(),
    )
}

pub(super) fn counter(key: &Key) -> Counter {
    metrics::with_recorder(|recorder| recorder.register_counter(key, &METADATA))
}

pub(super) fn histogram(key: &Key) -> Histogram {
    metrics::with_recorder(|recorder| recorder.register_histogram(key, &METADATA))
}

/// `aicache_operations_total` and `aicache_operation_seconds` for every cache operation, layer
/// and outcome.
pub(super) struct OperationKeys {
    totals: Vec<Key>,
    seconds: Vec<Key>,
}

pub(super) static OPERATION_KEYS: LazyLock<OperationKeys> = LazyLock::new(|| {
    let (mut totals, mut seconds) = (Vec::new(), Vec::new());
    for op in CacheOp::ALL {
        for layer in LAYERS {
            let labels = [
                ("operation", SharedString::const_str(op.as_str())),
                ("layer", SharedString::const_str(layer.as_str())),
            ];
            seconds.push(key("aicache_operation_seconds", &labels));
            for outcome in OUTCOMES {
                let [operation, layer] = labels.clone();
                totals.push(key(
                    "aicache_operations_total",
                    &[
                        operation,
                        layer,
                        ("outcome", SharedString::const_str(outcome)),
                    ],
                ));
            }
        }
    }
    OperationKeys { totals, seconds }
});

impl OperationKeys {
    fn index(op: CacheOp, layer: Layer) -> Option<usize> {
        let op = CacheOp::ALL.iter().position(|o| *o == op)?;
        Some(op * LAYERS.len() + layer_index(layer))
    }

    pub(super) fn total(&self, op: CacheOp, layer: Layer, outcome: Outcome) -> Option<&Key> {
        let index = Self::index(op, layer)? * OUTCOMES.len() + outcome_index(outcome);
        self.totals.get(index)
    }

    pub(super) fn seconds(&self, op: CacheOp, layer: Layer) -> Option<&Key> {
        self.seconds.get(Self::index(op, layer)?)
    }
}

/// The keys of one AI operation: requests per tier, layer and outcome, their time per tier,
/// computations, and usage.
pub(super) struct RequestKeys {
    totals: Vec<Key>,
    seconds: Vec<Key>,
    pub(super) computations: Key,
    pub(super) compute_seconds: Key,
    tokens: [Key; 2],
    cost: [Key; 2],
}

/// Keyed by the cache's interned operation names, bounded like every table of names from
/// requests.
static REQUEST_KEYS: LazyLock<OperationTable<RequestKeys>> = LazyLock::new(OperationTable::default);

impl RequestKeys {
    fn new(operation: &Arc<str>) -> Self {
        let op = || ("operation", SharedString::from(Arc::clone(operation)));
        let (mut totals, mut seconds) = (Vec::new(), Vec::new());
        for tier in TIERS {
            let tier = || ("tier", SharedString::const_str(tier));
            seconds.push(key("aicache_request_seconds", &[op(), tier()]));
            for layer in LAYERS {
                for outcome in OUTCOMES {
                    totals.push(key(
                        "aicache_requests_total",
                        &[
                            op(),
                            tier(),
                            ("layer", SharedString::const_str(layer.as_str())),
                            ("outcome", SharedString::const_str(outcome)),
                        ],
                    ));
                }
            }
        }
        let usage = |name| {
            USAGE_KINDS.map(|kind| key(name, &[op(), ("kind", SharedString::const_str(kind))]))
        };
        Self {
            totals,
            seconds,
            computations: key("aicache_computations_total", &[op()]),
            compute_seconds: key("aicache_compute_seconds", &[op()]),
            tokens: usage("aicache_tokens_total"),
            cost: usage("aicache_cost_micros_total"),
        }
    }

    /// The keys of `operation`.
    pub(super) fn of(operation: &str) -> &'static Self {
        REQUEST_KEYS.get(operation, Self::new)
    }

    fn tier_index(tier: &str) -> Option<usize> {
        TIERS.iter().position(|t| *t == tier)
    }

    pub(super) fn total(&self, tier: &str, layer: Layer, outcome: Outcome) -> Option<&Key> {
        let index = (Self::tier_index(tier)? * LAYERS.len() + layer_index(layer)) * OUTCOMES.len()
            + outcome_index(outcome);
        self.totals.get(index)
    }

    pub(super) fn seconds(&self, tier: &str) -> Option<&Key> {
        self.seconds.get(Self::tier_index(tier)?)
    }

    /// Tokens and cost keys for `used` or `saved`.
    pub(super) fn usage(&self, saved: bool) -> (&Key, &Key) {
        let index = usize::from(saved);
        (&self.tokens[index], &self.cost[index])
    }
}
