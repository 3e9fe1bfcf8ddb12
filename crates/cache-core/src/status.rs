//! How one read was answered, for callers that want to know (`get_with_status`).

use std::time::Duration;

/// Which tier answered a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ReadStatus {
    /// The in-process tier.
    HitL1,
    /// Redis.
    HitL2,
    /// Neither tier held a fresh value.
    Miss,
    /// A value past its soft expiry, served because computing a fresh one failed or took too long
    /// (serve-stale).
    Stale,
}

impl ReadStatus {
    /// `"HIT_L1"`, `"HIT_L2"`, `"MISS"` or `"STALE"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::HitL1 => "HIT_L1",
            Self::HitL2 => "HIT_L2",
            Self::Miss => "MISS",
            Self::Stale => "STALE",
        }
    }
}

/// A read's status with the time it spent in each layer it asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReadReport {
    /// Who answered.
    pub status: ReadStatus,
    /// Time spent asking L1 (`None` without L1).
    pub l1_time: Option<Duration>,
    /// Time spent asking Redis, decoding included (`None` when Redis was not asked: an L1 hit,
    /// no Redis, or the breaker open).
    pub l2_time: Option<Duration>,
}

impl ReadReport {
    /// A report of `status` with no timings yet.
    pub const fn new(status: ReadStatus) -> Self {
        Self {
            status,
            l1_time: None,
            l2_time: None,
        }
    }

    /// The same report with the L1 time.
    #[must_use]
    pub const fn with_l1_time(mut self, time: Duration) -> Self {
        self.l1_time = Some(time);
        self
    }

    /// The same report with the Redis time.
    #[must_use]
    pub const fn with_l2_time(mut self, time: Duration) -> Self {
        self.l2_time = Some(time);
        self
    }

    /// The time spent in all layers.
    pub fn total(&self) -> Duration {
        self.l1_time.unwrap_or_default() + self.l2_time.unwrap_or_default()
    }
}
