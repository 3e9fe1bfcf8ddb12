//! The measurement hook that cache-monitoring implements.
//!
//! Data-path crates hold an `Option<Arc<dyn Recorder>>` and call it only when it is set, so a cache
//! without monitoring does not even read the clock for it.

use std::fmt::{self, Debug};
use std::sync::Arc;
use std::time::Duration;

use crate::error::ErrorKind;

/// The tier an operation was served by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Layer {
    /// The in-process memory tier.
    L1,
    /// The shared tier (Redis).
    L2,
}

impl Layer {
    /// `"l1"` or `"l2"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::L1 => "l1",
            Self::L2 => "l2",
        }
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The cache operation being recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CacheOp {
    /// A single-key read.
    Get,
    /// A single-key write.
    Set,
    /// A single-key delete.
    Delete,
    /// An existence check.
    Exists,
    /// A remaining-TTL query.
    RemainingTtl,
    /// A pattern scan.
    Scan,
    /// A delete by pattern (including clear).
    DeletePattern,
    /// A multi-key read.
    GetMany,
    /// A multi-key write.
    SetMany,
}

impl CacheOp {
    /// Every operation, in declaration order (for tables indexed by operation).
    pub const ALL: [Self; 9] = [
        Self::Get,
        Self::Set,
        Self::Delete,
        Self::Exists,
        Self::RemainingTtl,
        Self::Scan,
        Self::DeletePattern,
        Self::GetMany,
        Self::SetMany,
    ];

    /// A stable lowercase name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Get => "get",
            Self::Set => "set",
            Self::Delete => "delete",
            Self::Exists => "exists",
            Self::RemainingTtl => "remaining_ttl",
            Self::Scan => "scan",
            Self::DeletePattern => "delete_pattern",
            Self::GetMany => "get_many",
            Self::SetMany => "set_many",
        }
    }
}

/// How a recorded operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    /// A read that found the key.
    Hit,
    /// A read that did not find the key.
    Miss,
    /// A write or other operation that succeeded.
    Done,
    /// The operation failed.
    Failed(ErrorKind),
}

/// The state of the circuit breaker in front of the shared tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BreakerState {
    /// Calls go to Redis.
    Closed,
    /// Redis failed: calls skip it at no network cost until a probe may run.
    Open,
    /// One probe is rebuilding the connection; calls still skip Redis.
    HalfOpen,
}

impl BreakerState {
    /// `"closed"`, `"open"` or `"half_open"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What answering one request cost the model, as the caller measures it (see the AI cache's usage
/// meter): tokens and money in the caller's currency.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[non_exhaustive]
pub struct Usage {
    /// Tokens (prompt and completion) the model used.
    pub tokens: u64,
    /// What the call cost, in the caller's currency unit (for example US dollars).
    pub cost: f64,
}

impl Usage {
    /// `tokens` tokens that cost `cost`.
    ///
    /// ```
    /// let usage = cache_core::Usage::new(1_200, 0.0036);
    /// assert_eq!(usage.tokens, 1_200);
    /// ```
    pub const fn new(tokens: u64, cost: f64) -> Self {
        Self { tokens, cost }
    }

    /// The cost in millionths of the currency unit, the form counters accumulate it in (atomics
    /// hold integers); negative, NaN or infinite costs count as zero, and it saturates.
    ///
    /// ```
    /// let usage = cache_core::Usage::new(10, 0.0036);
    /// assert_eq!(usage.cost_micros(), 3_600);
    /// assert_eq!(cache_core::Usage::amount_of_micros(3_600), 0.0036);
    /// ```
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "a non-negative, finite amount rounded to millionths; saturates above u64::MAX"
    )]
    pub fn cost_micros(&self) -> u64 {
        if self.cost.is_finite() && self.cost > 0.0 {
            (self.cost * 1_000_000.0).round() as u64
        } else {
            0
        }
    }

    /// An amount accumulated as millionths, in the currency unit.
    #[expect(
        clippy::cast_precision_loss,
        reason = "sums of millionths far below 2^52"
    )]
    pub fn amount_of_micros(micros: u64) -> f64 {
        micros as f64 / 1_000_000.0
    }
}

/// How serious a finding is, from a note to something to fix now: one scale for the monitor's
/// findings and the security manager's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[non_exhaustive]
pub enum Severity {
    /// Worth knowing.
    Info,
    /// Worth tightening.
    Low,
    /// Fix soon.
    Medium,
    /// Fix before production.
    High,
    /// Fix now.
    Critical,
}

/// One request of the AI layer, as a [`Recorder`] sees it: its operation and text tier (never its
/// text), which layer answered and how long the read took.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct RequestEvent<'a> {
    /// The AI operation (`summarize`, `qa`, …), interned by the cache.
    pub operation: &'a Arc<str>,
    /// The text tier: `small`, `medium`, `large` or `xlarge`.
    pub text_tier: &'static str,
    /// [`Outcome::Hit`], [`Outcome::Miss`] or [`Outcome::Failed`].
    pub outcome: Outcome,
    /// The layer that answered a hit; for a miss, the last layer asked.
    pub layer: Layer,
    /// How long the read took.
    pub elapsed: Duration,
    /// For a hit, what the model would have cost to answer it again (when a usage meter is set).
    pub saved: Option<Usage>,
}

impl<'a> RequestEvent<'a> {
    /// A read of `operation` in `text_tier` that ended with `outcome` on `layer` after `elapsed`.
    pub fn new(
        operation: &'a Arc<str>,
        text_tier: &'static str,
        outcome: Outcome,
        layer: Layer,
        elapsed: Duration,
    ) -> Self {
        Self {
            operation,
            text_tier,
            outcome,
            layer,
            elapsed,
            saved: None,
        }
    }

    /// The same event with the usage a hit spared.
    #[must_use]
    pub fn with_saved(mut self, saved: Option<Usage>) -> Self {
        self.saved = saved;
        self
    }
}

/// A reading of both tiers' memory, taken by a cache (see `report_memory` on the caches) and
/// handed to its recorder: monitoring itself performs no I/O.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[non_exhaustive]
pub struct MemoryReading {
    /// Live L1 entries (0 without L1).
    pub l1_entries: u64,
    /// The L1 entry cap (0 without L1).
    pub l1_max_entries: u64,
    /// Bytes held by L1.
    pub l1_bytes: u64,
    /// The L1 byte budget (0 without L1).
    pub l1_max_bytes: u64,
    /// Redis `INFO memory`, when Redis is configured and answered.
    pub redis: Option<RedisMemory>,
}

/// The figures of Redis `INFO memory` that matter to a cache.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[non_exhaustive]
pub struct RedisMemory {
    /// `used_memory`: bytes Redis has allocated.
    pub used_bytes: u64,
    /// `used_memory_peak`.
    pub peak_bytes: u64,
    /// `maxmemory`; 0 means no limit.
    pub max_bytes: u64,
    /// `mem_fragmentation_ratio`.
    pub fragmentation_ratio: f64,
}

impl RedisMemory {
    /// Reads the figures from the text of `INFO memory` (`name:value` lines); `None` when
    /// `used_memory` is missing or not a number.
    ///
    /// ```
    /// let info = "# Memory\r\nused_memory:1048576\r\nused_memory_peak:2097152\r\nmaxmemory:0\r\n";
    /// let memory = cache_core::RedisMemory::parse_info(info).unwrap();
    /// assert_eq!((memory.used_bytes, memory.peak_bytes, memory.max_bytes), (1 << 20, 2 << 20, 0));
    /// ```
    pub fn parse_info(info: &str) -> Option<Self> {
        let field = |name: &str| {
            info.lines().find_map(|line| {
                let (key, value) = line.trim_end().split_once(':')?;
                (key == name).then_some(value)
            })
        };
        let number = |name: &str| field(name).and_then(|v| v.parse::<u64>().ok());
        Some(Self {
            used_bytes: number("used_memory")?,
            peak_bytes: number("used_memory_peak").unwrap_or(0),
            max_bytes: number("maxmemory").unwrap_or(0),
            fragmentation_ratio: field("mem_fragmentation_ratio")
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0),
        })
    }
}

/// Receives measurements from the data path.
///
/// # Contract
/// Every method is called on the hot path: implementations must be quick, must not block and must not
/// panic. They receive no prompt text: keys are digests and patterns are the caller's own.
pub trait Recorder: Send + Sync + Debug {
    /// One operation on one layer took `elapsed`.
    fn record_operation(&self, op: CacheOp, layer: Layer, outcome: Outcome, elapsed: Duration);

    /// A payload of `original_bytes` was stored as `stored_bytes` after `elapsed` of compression.
    fn record_compression(&self, original_bytes: usize, stored_bytes: usize, elapsed: Duration);

    /// An entry on `layer` could not be decoded (the error has `kind`) and was removed.
    fn record_corrupt_entry(&self, layer: Layer, kind: ErrorKind);

    /// A pattern invalidation removed `removed` entries.
    fn record_invalidation(&self, pattern: &str, removed: u64);

    /// One request of the AI layer was read (labelled by AI operation and text tier). The default
    /// ignores it.
    fn record_request(&self, request: &RequestEvent<'_>) {
        let _ = request;
    }

    /// The AI layer computed an answer for `operation` (the model was called) in `elapsed`, which
    /// cost `usage` when a usage meter is set. The default ignores it.
    fn record_compute(&self, operation: &Arc<str>, elapsed: Duration, usage: Option<Usage>) {
        let _ = (operation, elapsed, usage);
    }

    /// A cache took a memory reading. The default ignores it.
    fn record_memory(&self, reading: &MemoryReading) {
        let _ = reading;
    }

    /// The circuit breaker in front of Redis went from `from` to `to`. The default ignores it.
    fn record_breaker(&self, from: BreakerState, to: BreakerState) {
        let _ = (from, to);
    }
}
