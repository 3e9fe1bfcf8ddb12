//! Settings of [`GenericRedisCache`](crate::GenericRedisCache).

use std::fmt;
use std::time::Duration;

use cache_core::frame::{Compression, DEFAULT_MAX_PAYLOAD, FrameSettings};
use cache_core::{Ttl, ValidationIssue, ValidationResult};
use cache_memory::MemoryCacheConfig;
pub use cache_security::redact_url;
pub use urls::{check_redis_url, url_uses_tls, validate_cluster_urls, validate_redis_url};

mod urls;
use cache_security::{EncryptionConfig, SecurityConfig};

/// Settings of a [`GenericRedisCache`](crate::GenericRedisCache).
///
/// `Debug` never prints the password of `redis_url`.
///
/// ```
/// use cache_redis::RedisCacheConfig;
///
/// let config = RedisCacheConfig::default().with_redis_url("redis://:hunter2@127.0.0.1:6379");
/// assert!(config.validate().is_valid());
/// assert!(!format!("{config:?}").contains("hunter2"));
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisCacheConfig {
    /// The Redis URL (`redis://`, `rediss://` for TLS, or `redis+unix://`). `None`:
    /// memory-only. Default: `None`.
    pub redis_url: Option<String>,
    /// The seed nodes of a Redis Cluster (`redis://` or `rediss://` URLs of any of its nodes,
    /// all with the same credentials and TLS mode): when set, the shared tier is the cluster and
    /// `redis_url` must be unset. Empty: no cluster. Default: empty.
    pub redis_cluster_urls: Vec<String>,
    /// The namespace of every Redis key: keys are stored as `{key_prefix}:{key}`, and `clear()`
    /// removes `{key_prefix}:*`. See [`cache_core::Namespace`] for the rules: a generic cache
    /// whose prefix overlaps an AI namespace (`aicache`, `aicache:v1…`, `aicache:t:{tenant}`…)
    /// or another cache's in this process is refused. Default: `aicache:kv`.
    pub key_prefix: String,
    /// The TTL of entries written without one. Default: 3600 s.
    pub default_ttl: Duration,
    /// The in-process tier; `None` turns it off (only allowed with Redis). Default: on, 100 entries.
    /// Its `default_ttl` is not used here: an L1 copy takes its entry's TTL, bounded by
    /// `l1_max_ttl` when Redis is configured.
    pub l1: Option<MemoryCacheConfig>,
    /// The longest an L1 copy lives when Redis is configured, so another instance's writes and
    /// deletes become visible within it. Default: 300 s.
    pub l1_max_ttl: Duration,
    /// Values larger than this many bytes are compressed when that saves space. Default: 1000.
    pub compression_threshold: usize,
    /// The compression algorithm above the threshold. Default: LZ4.
    pub compression: Compression,
    /// The zstd level (1..=22); only with [`Compression::Zstd`], where unset means 6. Setting it
    /// with LZ4 is a validation error (LZ4 has no levels). Default: unset.
    pub compression_level: Option<i32>,
    /// The largest value accepted, in bytes. Default: 64 MiB.
    pub max_value_size: usize,
    /// The limit on every Redis command, ours (not only redis-rs's). Default: 500 ms.
    pub command_timeout: Duration,
    /// The limit on opening a connection. Default: 2 s.
    pub connect_timeout: Duration,
    /// The first delay before probing an unavailable Redis again; it doubles per failure. Default: 100 ms.
    pub reconnect_min_delay: Duration,
    /// The longest delay between probes of an unavailable Redis. Default: 1 s.
    pub reconnect_max_delay: Duration,
    /// The `COUNT` hint of each `SCAN` step, and the `UNLINK` batch size. Default: 1000.
    pub scan_count: usize,
    /// Whether the circuit breaker may open. Off, every call goes to Redis and waits for its
    /// timeout during an outage (only for comparison; keep it on). Default: on.
    pub breaker_enabled: bool,
    /// Consecutive command timeouts that open the breaker (a connection error opens it at once).
    /// Default: 3.
    pub breaker_failure_threshold: u32,
    /// How many writes, deletes and invalidations that Redis could not take are kept for replay
    /// when it returns; when full, the oldest *write* is dropped and counted (removals are kept;
    /// removals alone over the bound become one invalidation of the namespace). 0 turns replay
    /// off. Default: 10 000.
    pub replay_queue_capacity: usize,
    /// The most bytes (keys and frames) the replay queue holds, under the same rule. Default:
    /// 64 MiB.
    pub replay_queue_max_bytes: usize,
    /// How long a removal is remembered in Redis (a tombstone under each removed key, the pattern
    /// of a pattern removal), and the oldest a queued write may be when it is replayed: a write
    /// an instance queued while cut off never lands over a removal another instance made
    /// meanwhile, and one older than this is dropped and counted (`replay_expired`). 1 s ..= 24 h.
    /// Default: 10 minutes.
    pub replay_horizon: Duration,
    /// AUTH password, ACL user and TLS, applied to every connection (they win over the URL's user
    /// and password). Default: none beyond the URL.
    pub security: SecurityConfig,
    /// Encryption at rest of stored values (AEAD; key ids for rotation). Default: off.
    pub encryption: Option<EncryptionConfig>,
}

impl Default for RedisCacheConfig {
    fn default() -> Self {
        Self {
            redis_url: None,
            redis_cluster_urls: Vec::new(),
            key_prefix: "aicache:kv".to_string(),
            default_ttl: Duration::from_secs(3600),
            l1: Some(MemoryCacheConfig::default()),
            l1_max_ttl: Duration::from_secs(300),
            compression_threshold: 1000,
            compression: Compression::Lz4,
            compression_level: None,
            max_value_size: DEFAULT_MAX_PAYLOAD,
            command_timeout: Duration::from_millis(500),
            connect_timeout: Duration::from_secs(2),
            reconnect_min_delay: Duration::from_millis(100),
            reconnect_max_delay: Duration::from_secs(1),
            scan_count: 1000,
            breaker_enabled: true,
            breaker_failure_threshold: 3,
            replay_queue_capacity: 10_000,
            replay_queue_max_bytes: DEFAULT_REPLAY_QUEUE_MAX_BYTES,
            replay_horizon: DEFAULT_REPLAY_HORIZON,
            security: SecurityConfig::default(),
            encryption: None,
        }
    }
}

impl fmt::Debug for RedisCacheConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisCacheConfig")
            .field("redis_url", &self.redis_url.as_deref().map(redact_url))
            .field(
                "redis_cluster_urls",
                &self
                    .redis_cluster_urls
                    .iter()
                    .map(|url| redact_url(url))
                    .collect::<Vec<_>>(),
            )
            .field("key_prefix", &self.key_prefix)
            .field("default_ttl", &self.default_ttl)
            .field("l1", &self.l1)
            .field("l1_max_ttl", &self.l1_max_ttl)
            .field("compression_threshold", &self.compression_threshold)
            .field("compression", &self.compression)
            .field("compression_level", &self.compression_level)
            .field("max_value_size", &self.max_value_size)
            .field("command_timeout", &self.command_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("reconnect_min_delay", &self.reconnect_min_delay)
            .field("reconnect_max_delay", &self.reconnect_max_delay)
            .field("scan_count", &self.scan_count)
            .field("breaker_enabled", &self.breaker_enabled)
            .field("breaker_failure_threshold", &self.breaker_failure_threshold)
            .field("replay_queue_capacity", &self.replay_queue_capacity)
            .field("replay_queue_max_bytes", &self.replay_queue_max_bytes)
            .field("replay_horizon", &self.replay_horizon)
            .field("security", &self.security)
            .field("encryption", &self.encryption)
            .finish()
    }
}

/// The longest a single Redis call may be allowed to take (`command_timeout`, `connect_timeout`).
const MAX_CALL_TIMEOUT: Duration = Duration::from_secs(600);
/// The longest wait between reconnection probes.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(3600);

/// The default bound on the replay queue's bytes: 64 MiB.
pub const DEFAULT_REPLAY_QUEUE_MAX_BYTES: usize = 64 * 1024 * 1024;

/// The default [`RedisCacheConfig::replay_horizon`]: 10 minutes.
pub const DEFAULT_REPLAY_HORIZON: Duration = Duration::from_secs(600);
const MIN_REPLAY_QUEUE_BYTES: usize = 1024;
const MAX_REPLAY_QUEUE_BYTES: usize = 16 * 1024 * 1024 * 1024;

impl RedisCacheConfig {
    /// Sets [`breaker_enabled`](Self::breaker_enabled) and
    /// [`breaker_failure_threshold`](Self::breaker_failure_threshold).
    #[must_use]
    pub fn with_breaker(mut self, enabled: bool, failure_threshold: u32) -> Self {
        self.breaker_enabled = enabled;
        self.breaker_failure_threshold = failure_threshold;
        self
    }

    /// Sets [`security`](Self::security).
    #[must_use]
    pub fn with_security(mut self, security: SecurityConfig) -> Self {
        self.security = security;
        self
    }

    /// Sets [`encryption`](Self::encryption).
    #[must_use]
    pub fn with_encryption(mut self, encryption: Option<EncryptionConfig>) -> Self {
        self.encryption = encryption;
        self
    }

    /// Sets [`replay_horizon`](Self::replay_horizon).
    #[must_use]
    pub fn with_replay_horizon(mut self, horizon: Duration) -> Self {
        self.replay_horizon = horizon;
        self
    }

    /// Sets [`replay_queue_max_bytes`](Self::replay_queue_max_bytes).
    #[must_use]
    pub fn with_replay_queue_max_bytes(mut self, max_bytes: usize) -> Self {
        self.replay_queue_max_bytes = max_bytes;
        self
    }

    /// Sets [`replay_queue_capacity`](Self::replay_queue_capacity).
    #[must_use]
    pub fn with_replay_queue_capacity(mut self, capacity: usize) -> Self {
        self.replay_queue_capacity = capacity;
        self
    }

    /// Sets [`redis_url`](Self::redis_url).
    #[must_use]
    pub fn with_redis_url(mut self, url: impl Into<String>) -> Self {
        self.redis_url = Some(url.into());
        self
    }

    /// Sets [`redis_cluster_urls`](Self::redis_cluster_urls): the shared tier is that Redis
    /// Cluster.
    ///
    /// ```
    /// use cache_redis::RedisCacheConfig;
    ///
    /// let config = RedisCacheConfig::default()
    ///     .with_redis_cluster_urls(["redis://10.0.0.1:7000", "redis://10.0.0.2:7000"]);
    /// assert!(config.uses_redis() && config.validate().is_valid());
    /// let both = config.with_redis_url("redis://10.0.0.9:6379");
    /// assert!(!both.validate().is_valid());
    /// ```
    #[must_use]
    pub fn with_redis_cluster_urls<I, S>(mut self, urls: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.redis_cluster_urls = urls.into_iter().map(Into::into).collect();
        self
    }

    /// Whether a shared tier is configured: one Redis (`redis_url`) or a cluster
    /// (`redis_cluster_urls`).
    pub fn uses_redis(&self) -> bool {
        self.redis_url.is_some() || !self.redis_cluster_urls.is_empty()
    }

    /// Where the shared tier lives, passwords redacted: the URL, or the cluster's seeds
    /// (comma-separated); `None` when memory-only.
    pub fn server_scope(&self) -> Option<String> {
        match &self.redis_url {
            Some(url) => Some(redact_url(url)),
            None if !self.redis_cluster_urls.is_empty() => Some(
                self.redis_cluster_urls
                    .iter()
                    .map(|url| redact_url(url))
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            None => None,
        }
    }

    /// Sets [`key_prefix`](Self::key_prefix).
    #[must_use]
    pub fn with_key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// Sets [`default_ttl`](Self::default_ttl).
    #[must_use]
    pub fn with_default_ttl(mut self, ttl: Duration) -> Self {
        self.default_ttl = ttl;
        self
    }

    /// Sets [`l1`](Self::l1).
    #[must_use]
    pub fn with_l1(mut self, l1: Option<MemoryCacheConfig>) -> Self {
        self.l1 = l1;
        self
    }

    /// Sets [`l1_max_ttl`](Self::l1_max_ttl).
    #[must_use]
    pub fn with_l1_max_ttl(mut self, ttl: Duration) -> Self {
        self.l1_max_ttl = ttl;
        self
    }

    /// Sets [`compression_threshold`](Self::compression_threshold).
    #[must_use]
    pub fn with_compression_threshold(mut self, threshold: usize) -> Self {
        self.compression_threshold = threshold;
        self
    }

    /// Sets [`compression`](Self::compression).
    #[must_use]
    pub fn with_compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// Sets [`compression_level`](Self::compression_level).
    #[must_use]
    pub fn with_compression_level(mut self, level: Option<i32>) -> Self {
        self.compression_level = level;
        self
    }

    /// Sets [`max_value_size`](Self::max_value_size).
    #[must_use]
    pub fn with_max_value_size(mut self, size: usize) -> Self {
        self.max_value_size = size;
        self
    }

    /// Sets [`command_timeout`](Self::command_timeout).
    #[must_use]
    pub fn with_command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// Sets [`connect_timeout`](Self::connect_timeout).
    #[must_use]
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets the reconnection backoff bounds.
    #[must_use]
    pub fn with_reconnect_delays(mut self, min: Duration, max: Duration) -> Self {
        self.reconnect_min_delay = min;
        self.reconnect_max_delay = max;
        self
    }

    /// Sets [`scan_count`](Self::scan_count).
    #[must_use]
    pub fn with_scan_count(mut self, count: usize) -> Self {
        self.scan_count = count;
        self
    }

    /// The frame codec settings (compression, level, threshold, size limit) of this
    /// configuration.
    pub fn frame_settings(&self) -> FrameSettings {
        FrameSettings::default()
            .with_compression(self.compression, self.compression_level)
            .with_compression_threshold(self.compression_threshold)
            .with_max_value_size(self.max_value_size)
    }

    /// Checks every field; see [`ValidationResult`].
    pub fn validate(&self) -> ValidationResult {
        let mut r = ValidationResult::new();
        if let Some(url) = &self.redis_url {
            r.merge(validate_redis_url(url));
        }
        r.merge(validate_cluster_urls(
            self.redis_url.is_some(),
            &self.redis_cluster_urls,
        ));
        r.merge(self.security.validate());
        if let Some(encryption) = &self.encryption {
            r.merge(encryption.validate());
        }
        if cache_core::Namespace::new(&self.key_prefix).is_err() {
            r.error(ValidationIssue::new(
                "key_prefix",
                format!("{:?}", self.key_prefix),
                "segments of [A-Za-z0-9_./-] joined by ':', 1..=256 bytes",
                "an empty prefix would let clear() remove every key of the database; '~' is \
                 reserved for auxiliary keys, glob characters and braces for Redis",
            ));
        }
        if Ttl::new(self.default_ttl).is_err() {
            r.error(ValidationIssue::new(
                "default_ttl",
                format!("{:?}", self.default_ttl),
                "1 ms ..= 10 years",
                "set a positive default TTL",
            ));
        }
        if Ttl::new(self.l1_max_ttl).is_err() {
            r.error(ValidationIssue::new(
                "l1_max_ttl",
                format!("{:?}", self.l1_max_ttl),
                "1 ms ..= 10 years",
                "set a positive bound on how long an L1 copy lives",
            ));
        }
        match &self.l1 {
            Some(l1) => {
                for mut issue in l1.validate().errors {
                    issue.field = format!("l1.{}", issue.field);
                    r.error(issue);
                }
            }
            None if !self.uses_redis() => r.error(ValidationIssue::new(
                "l1",
                "off",
                "on when neither redis_url nor redis_cluster_urls is set",
                "without Redis and without L1 nothing would be cached: set redis_url or enable l1",
            )),
            None => {}
        }
        r.merge(self.frame_settings().validate());
        for (field, value, max) in [
            ("command_timeout", self.command_timeout, MAX_CALL_TIMEOUT),
            ("connect_timeout", self.connect_timeout, MAX_CALL_TIMEOUT),
            (
                "reconnect_min_delay",
                self.reconnect_min_delay,
                MAX_RECONNECT_DELAY,
            ),
            (
                "reconnect_max_delay",
                self.reconnect_max_delay,
                MAX_RECONNECT_DELAY,
            ),
        ] {
            if value.is_zero() || value > max {
                r.error(ValidationIssue::new(
                    field,
                    format!("{value:?}"),
                    format!("> 0 and <= {max:?}"),
                    "zero would fail or spin on every call; longer than the bound would stall callers or never reconnect",
                ));
            }
        }
        if self.reconnect_max_delay < self.reconnect_min_delay {
            r.error(ValidationIssue::new(
                "reconnect_max_delay",
                format!("{:?}", self.reconnect_max_delay),
                format!(">= reconnect_min_delay ({:?})", self.reconnect_min_delay),
                "raise reconnect_max_delay or lower reconnect_min_delay",
            ));
        }
        if self.breaker_failure_threshold == 0 || self.breaker_failure_threshold > 1000 {
            r.error(ValidationIssue::new(
                "breaker_failure_threshold",
                self.breaker_failure_threshold,
                "1..=1000",
                "use the default, 3: a few timeouts in a row mean Redis is not answering",
            ));
        }
        if self.replay_queue_capacity > 10_000_000 {
            r.error(ValidationIssue::new(
                "replay_queue_capacity",
                self.replay_queue_capacity,
                "0..=10000000 (0 turns replay off)",
                "each queued write holds its value in memory: keep the queue to what an outage produces",
            ));
        }
        if !(MIN_REPLAY_QUEUE_BYTES..=MAX_REPLAY_QUEUE_BYTES).contains(&self.replay_queue_max_bytes)
        {
            r.error(ValidationIssue::new(
                "replay_queue_max_bytes",
                self.replay_queue_max_bytes,
                format!("{MIN_REPLAY_QUEUE_BYTES}..={MAX_REPLAY_QUEUE_BYTES} bytes"),
                "the queue holds the frames Redis could not take: bound it to what an outage may cost in memory",
            ));
        }
        if !(Duration::from_secs(1)..=Duration::from_secs(86_400)).contains(&self.replay_horizon) {
            r.error(ValidationIssue::new(
                "replay_horizon",
                format!("{:?}", self.replay_horizon),
                "1 s ..= 24 h",
                "removals are remembered (and queued writes kept) this long: minutes, as long as an outage lasts",
            ));
        }
        if self.scan_count == 0 {
            r.error(ValidationIssue::new(
                "scan_count",
                0,
                ">= 1",
                "use the default, 1000",
            ));
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_hides_passwords() {
        assert_eq!(
            redact_url("redis://user:pw@host:6379/0"),
            "redis://user:***@host:6379/0"
        );
        assert_eq!(redact_url("rediss://:p%40ss@host"), "rediss://:***@host");
        assert_eq!(
            redact_url("redis+unix:///tmp/r.sock?pass=x&db=1"),
            "redis+unix:///tmp/r.sock?pass=***&db=1"
        );
        assert_eq!(redact_url("redis://host"), "redis://host");
        assert_eq!(redact_url("redis://:ab/cd?e@h:1/0"), "redis://:***@h:1/0");
    }

    #[test]
    fn validation_names_field_value_and_allowed() {
        let config = RedisCacheConfig::default()
            .with_redis_url("http://:secret@h")
            .with_key_prefix("")
            .with_command_timeout(Duration::ZERO);
        let result = config.validate();
        let fields: Vec<&str> = result.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, vec!["redis_url", "key_prefix", "command_timeout"]);
        let text = result.into_result().unwrap_err().to_string();
        assert!(!text.contains("secret"), "{text}");
    }

    #[test]
    fn memory_only_needs_l1() {
        let result = RedisCacheConfig::default().with_l1(None).validate();
        assert_eq!(result.errors[0].field, "l1");
        assert!(
            RedisCacheConfig::default()
                .with_l1(None)
                .with_redis_url("redis://h")
                .validate()
                .is_valid()
        );
    }
}
