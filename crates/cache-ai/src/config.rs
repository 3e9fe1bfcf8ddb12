//! Settings of [`AIResponseCache`](crate::AIResponseCache).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use cache_core::frame::FrameSettings;
use cache_core::namespace::AI_SEGMENT;
use cache_core::{Namespace, Ttl, ValidationIssue, ValidationResult};
use cache_memory::MemoryCacheConfig;
use cache_security::EncryptionConfig;

use crate::keys::{HashAlgorithm, validate_operation};
use crate::tiers::TierThresholds;

/// The key-format version in the namespace of every v1 key.
pub const KEY_NAMESPACE: &str = "aicache:v1";

pub use cache_core::is_valid_tenant;

/// The longest layout-upgrade window accepted, from now.
pub const MAX_LAYOUT_UPGRADE_WINDOW: Duration = Duration::from_secs(30 * 24 * 3600);

/// The AI layer's version written into every entry's metadata.
pub const AI_VERSION: &str = concat!("aicache-", env!("CARGO_PKG_VERSION"));

/// Settings of an [`AIResponseCache`](crate::AIResponseCache).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct AiCacheConfig {
    /// The TTL of operations without one of their own. Default: 3600 s.
    pub default_ttl: Duration,
    /// The longest an L1 copy lives while a shared tier backs it (other instances' writes and
    /// removals reach this L1 within it). Default: 300 s.
    pub l1_max_ttl: Duration,
    /// How answers are framed in the shared tier: compression, its level and threshold, the size
    /// limit. Default: [`FrameSettings::default`].
    pub frames: FrameSettings,
    /// Encryption at rest of the shared tier's frames (bound to each entry's full key).
    /// Default: none.
    pub encryption: Option<EncryptionConfig>,
    /// The L1 of decoded responses; `None` turns it off (only with Redis). Default: 100 entries.
    pub l1: Option<MemoryCacheConfig>,
    /// The digest of v1 keys. Default: SHA-256.
    pub hash_algorithm: HashAlgorithm,
    /// A tenant: keys live under `aicache:t:{tenant}:v1`. `[A-Za-z0-9_-]{1,64}`. Default: none.
    pub tenant: Option<String>,
    /// The upgrade window of a tenant's entries stored by aicache 0.1 under
    /// `aicache:v1:t:{tenant}` (inside the tenant-less namespace): until this time a miss also
    /// reads the old location (one more GET, counted), and while it is set every removal also
    /// removes the old-layout copy and [`convert_layout`](crate::AIResponseCache::convert_layout)
    /// moves old entries over. Only with a tenant; at most 30 days ahead. Default: none.
    pub layout_upgrade_until: Option<SystemTime>,
    /// Text-size tier thresholds, in characters. Default: 500 / 5,000 / 50,000.
    pub text_size_tiers: TierThresholds,
    /// TTL per operation; others use `default_ttl`. Default: summarize 7200 s, sentiment
    /// 86400 s, key_points 7200 s, questions 3600 s, qa 1800 s.
    pub operation_ttls: BTreeMap<String, Duration>,
    /// Spreads expiries: each TTL is shortened by a random fraction up to this (0.0 ..= 0.5).
    /// Default: 0 (no jitter).
    pub ttl_jitter: f64,
    /// Operations whose answers are stable enough to promote medium texts into L1.
    /// Default: sentiment, summarize, key_points, classify.
    pub stable_operations: Vec<String>,
    /// Hits after which any small or medium text of an operation is promoted. Default: 10.
    pub promotion_hit_threshold: u64,
    /// For [`KeyFormat::Legacy`](crate::KeyFormat::Legacy) keys (the Python original's format):
    /// texts longer than this many characters are hashed. v1 keys always hash. Default: 1000.
    pub text_hash_threshold: usize,
    /// Record key-generation statistics and time reads (one in `latency_sample_every`). Counts
    /// (hits, misses, stores, per operation and per tier) are exact either way. Default: true.
    pub monitoring_enabled: bool,
    /// Time one read in this many (hit and miss counts stay exact): timing every read costs about
    /// 10 % of an L1 hit. Default: 16; 1 times every read.
    pub latency_sample_every: u32,
    /// Serve-stale: how long past its TTL an answer is kept for
    /// [`get_or_compute`](crate::AIResponseCache::get_or_compute) to fall back on when computing a
    /// fresh one fails (or takes longer than `stale_after`). Plain reads past the TTL stay misses.
    /// Redis keeps each entry for TTL + window (memory-only, L1 does). Default: 0 (off).
    pub stale_window: Duration,
    /// With a `stale_window`: a computation still running after this long is abandoned in favour
    /// of a stale answer, when one exists (without one, the computation goes on). `None`: only a
    /// failed computation falls back. Default: `None`.
    pub stale_after: Option<Duration>,
    /// With serve-stale: how many computations that outlived `stale_after` may go on in the
    /// background ([`get_or_compute_owned`](crate::AIResponseCache::get_or_compute_owned)) to
    /// refresh the entry; beyond that they are dropped. 0: none. Default: 16.
    pub background_refreshes: usize,
    /// The longest a background refresh may run. Default: 120 s.
    pub background_refresh_timeout: Duration,
}

/// The seed's per-operation TTLs, in seconds (DESIGN §6).
pub const DEFAULT_OPERATION_TTLS: &[(&str, u64)] = &[
    ("summarize", 7200),
    ("sentiment", 86_400),
    ("key_points", 7200),
    ("questions", 3600),
    ("qa", 1800),
];

impl Default for AiCacheConfig {
    fn default() -> Self {
        let operation_ttls = DEFAULT_OPERATION_TTLS
            .iter()
            .map(|(op, secs)| ((*op).to_string(), Duration::from_secs(*secs)))
            .collect();
        Self {
            default_ttl: Duration::from_secs(3600),
            l1_max_ttl: Duration::from_secs(300),
            frames: FrameSettings::default(),
            encryption: None,
            l1: Some(MemoryCacheConfig::default()),
            hash_algorithm: HashAlgorithm::Sha256,
            tenant: None,
            layout_upgrade_until: None,
            text_size_tiers: TierThresholds::default(),
            operation_ttls,
            ttl_jitter: 0.0,
            stable_operations: ["sentiment", "summarize", "key_points", "classify"]
                .map(String::from)
                .to_vec(),
            promotion_hit_threshold: 10,
            text_hash_threshold: 1000,
            monitoring_enabled: true,
            latency_sample_every: 16,
            stale_window: Duration::ZERO,
            stale_after: None,
            background_refreshes: 16,
            background_refresh_timeout: Duration::from_secs(120),
        }
    }
}

impl AiCacheConfig {
    /// Sets [`default_ttl`](Self::default_ttl).
    #[must_use]
    pub fn with_default_ttl(mut self, ttl: Duration) -> Self {
        self.default_ttl = ttl;
        self
    }

    /// Sets [`l1_max_ttl`](Self::l1_max_ttl).
    #[must_use]
    pub fn with_l1_max_ttl(mut self, ttl: Duration) -> Self {
        self.l1_max_ttl = ttl;
        self
    }

    /// Sets [`frames`](Self::frames).
    #[must_use]
    pub fn with_frames(mut self, frames: FrameSettings) -> Self {
        self.frames = frames;
        self
    }

    /// Sets [`encryption`](Self::encryption).
    #[must_use]
    pub fn with_encryption(mut self, encryption: Option<EncryptionConfig>) -> Self {
        self.encryption = encryption;
        self
    }

    /// Sets [`l1`](Self::l1).
    #[must_use]
    pub fn with_l1(mut self, l1: Option<MemoryCacheConfig>) -> Self {
        self.l1 = l1;
        self
    }

    /// Sets [`hash_algorithm`](Self::hash_algorithm).
    #[must_use]
    pub fn with_hash_algorithm(mut self, algorithm: HashAlgorithm) -> Self {
        self.hash_algorithm = algorithm;
        self
    }

    /// Sets [`tenant`](Self::tenant).
    #[must_use]
    pub fn with_tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = Some(tenant.into());
        self
    }

    /// Sets [`layout_upgrade_until`](Self::layout_upgrade_until).
    #[must_use]
    pub fn with_layout_upgrade_until(mut self, until: Option<SystemTime>) -> Self {
        self.layout_upgrade_until = until;
        self
    }

    /// Sets [`text_size_tiers`](Self::text_size_tiers).
    #[must_use]
    pub fn with_text_size_tiers(mut self, tiers: TierThresholds) -> Self {
        self.text_size_tiers = tiers;
        self
    }

    /// Sets the TTL of `operation`.
    #[must_use]
    pub fn with_operation_ttl(mut self, operation: impl Into<String>, ttl: Duration) -> Self {
        self.operation_ttls.insert(operation.into(), ttl);
        self
    }

    /// Sets [`latency_sample_every`](Self::latency_sample_every).
    #[must_use]
    pub fn with_latency_sampling(mut self, every: u32) -> Self {
        self.latency_sample_every = every;
        self
    }

    /// Sets [`monitoring_enabled`](Self::monitoring_enabled).
    #[must_use]
    pub fn with_monitoring(mut self, enabled: bool) -> Self {
        self.monitoring_enabled = enabled;
        self
    }

    /// Sets [`ttl_jitter`](Self::ttl_jitter).
    #[must_use]
    pub fn with_ttl_jitter(mut self, jitter: f64) -> Self {
        self.ttl_jitter = jitter;
        self
    }

    /// Turns serve-stale on: answers are kept `window` past their TTL for `get_or_compute` to fall
    /// back on when a computation fails, or runs longer than `after`.
    #[must_use]
    pub fn with_serve_stale(mut self, window: Duration, after: Option<Duration>) -> Self {
        self.stale_window = window;
        self.stale_after = after;
        self
    }

    /// The namespace (Redis key prefix) of this cache's entries: `aicache:v1`, or
    /// `aicache:t:{tenant}:v1` (see [`Namespace`]).
    pub fn namespace(&self) -> String {
        // Unchecked: an invalid tenant name fails validation before any key is built.
        Namespace::layout(self.tenant.as_deref(), AI_SEGMENT)
    }

    /// Where aicache 0.1 kept this tenant's entries (`aicache:v1:t:{tenant}`), while the upgrade
    /// window is configured ([`layout_upgrade_until`](Self::layout_upgrade_until)).
    pub fn pre_isolation_namespace(&self) -> Option<String> {
        self.layout_upgrade_until?;
        let tenant = self.tenant.as_deref()?;
        Namespace::pre_isolation(AI_SEGMENT, tenant)
            .ok()
            .map(|namespace| namespace.as_str().to_owned())
    }

    /// The TTL of `operation` before jitter.
    pub fn ttl_for(&self, operation: &str) -> Duration {
        self.operation_ttls
            .get(operation)
            .copied()
            .unwrap_or(self.default_ttl)
    }

    /// Checks every field. Each layer's rules stay with the layer: the L1's, the frames' and the
    /// encryption's are theirs, merged here.
    pub fn validate(&self) -> ValidationResult {
        let mut r = ValidationResult::new();
        if let Some(l1) = &self.l1 {
            for mut issue in l1.validate().errors {
                issue.field = format!("l1.{}", issue.field);
                r.error(issue);
            }
        }
        r.merge(self.frames.validate());
        if let Some(encryption) = &self.encryption {
            r.merge(encryption.validate());
        }
        for (field, ttl) in [
            ("default_ttl", self.default_ttl),
            ("l1_max_ttl", self.l1_max_ttl),
        ] {
            if Ttl::new(ttl).is_err() {
                r.error(ValidationIssue::new(
                    field,
                    format!("{ttl:?}"),
                    "1 ms ..= 10 years",
                    "set a positive duration",
                ));
            }
        }
        r.merge(self.text_size_tiers.validate());
        if let Some(tenant) = &self.tenant
            && !is_valid_tenant(tenant)
        {
            r.error(ValidationIssue::new(
                "tenant",
                format!("{tenant:?}"),
                "[A-Za-z0-9_-]{1,64}",
                "use letters, digits, '_' or '-' (braces would become a Redis Cluster hash tag, \
                 ':' or '*' could reach another tenant's keys)",
            ));
        }
        if let Some(until) = self.layout_upgrade_until {
            let value = humantime::format_rfc3339_seconds(until).to_string();
            if self.tenant.is_none() {
                r.error(ValidationIssue::new(
                    "layout_upgrade_until",
                    value,
                    "only with a tenant",
                    "tenant-less keys kept their layout: there is nothing to upgrade",
                ));
            } else if until
                .duration_since(SystemTime::now())
                .is_ok_and(|ahead| ahead > MAX_LAYOUT_UPGRADE_WINDOW)
            {
                r.error(ValidationIssue::new(
                    "layout_upgrade_until",
                    value,
                    "at most 30 days from now",
                    "old entries expire with their TTL; convert_layout moves the rest",
                ));
            }
        }
        for (operation, ttl) in &self.operation_ttls {
            if validate_operation(operation).is_err() {
                r.error(ValidationIssue::new(
                    format!("operation_ttls.{operation}"),
                    format!("{operation:?}"),
                    "[a-z0-9_]{1,64}",
                    "name operations in lowercase letters, digits and '_'",
                ));
            }
            if Ttl::new(*ttl).is_err() {
                r.error(ValidationIssue::new(
                    format!("operation_ttls.{operation}"),
                    format!("{ttl:?}"),
                    "1 ms ..= 10 years",
                    "set a positive TTL",
                ));
            } else if *ttl > Duration::from_secs(365 * 24 * 3600) {
                r.warning(ValidationIssue::new(
                    format!("operation_ttls.{operation}"),
                    format!("{ttl:?}"),
                    "<= 1 year recommended",
                    "answers cached for over a year outlive most models",
                ));
            }
        }
        if !(1..=100_000).contains(&self.text_hash_threshold) {
            r.error(ValidationIssue::new(
                "text_hash_threshold",
                self.text_hash_threshold,
                "1..=100000",
                "the original's default is 1000 (its factory used 500)",
            ));
        }
        if self.latency_sample_every == 0 {
            r.error(ValidationIssue::new(
                "latency_sample_every",
                0,
                ">= 1",
                "1 times every read; 16 keeps the overhead small",
            ));
        }
        if self.stale_window > Duration::from_secs(365 * 24 * 3600) {
            r.error(ValidationIssue::new(
                "stale_window",
                format!("{:?}", self.stale_window),
                "0 ..= 1 year",
                "a stale answer is a fallback during an outage of the model: hours, not years",
            ));
        }
        match self.stale_after {
            Some(after) if self.stale_window.is_zero() => r.error(ValidationIssue::new(
                "stale_after",
                format!("{after:?}"),
                "unset unless stale_window > 0",
                "set stale_window too: without it there is no stale answer to serve",
            )),
            Some(after) if after.is_zero() => r.error(ValidationIssue::new(
                "stale_after",
                "0s",
                "> 0",
                "zero would abandon every computation that has a stale answer",
            )),
            _ => {}
        }
        if self.background_refreshes > 10_000 {
            r.error(ValidationIssue::new(
                "background_refreshes",
                self.background_refreshes,
                "0..=10000",
                "each holds a model call in flight: a few dozen at most",
            ));
        }
        if self.background_refresh_timeout.is_zero()
            || self.background_refresh_timeout > Duration::from_secs(3600)
        {
            r.error(ValidationIssue::new(
                "background_refresh_timeout",
                format!("{:?}", self.background_refresh_timeout),
                "1 ms ..= 1 hour",
                "bound a background model call: 120 s is the default",
            ));
        }
        if !(0.0..=0.5).contains(&self.ttl_jitter) {
            r.error(ValidationIssue::new(
                "ttl_jitter",
                self.ttl_jitter,
                "0.0 ..= 0.5",
                "a fraction of the TTL, for example 0.1",
            ));
        }
        r
    }
}
