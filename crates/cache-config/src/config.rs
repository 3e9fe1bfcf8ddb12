//! [`AIResponseCacheConfig`]: every setting of an AI response cache, with the seed's defaults.

use std::collections::BTreeMap;
use std::fmt;

use cache_security::{Secret, lenient_string};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// [`lenient_string`] for optional fields: `null` (or `~` in YAML) unsets the field.
fn lenient_opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Option::<figment::value::Value>::deserialize(d)?
        .map(|value| lenient_string(&value).map_err(serde::de::Error::custom))
        .transpose()
}

/// Serializes a Redis URL with its password replaced by `***`.
fn serialize_redacted_url<S: Serializer>(url: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match url {
        Some(url) => s.serialize_some(&cache_redis::redact_url(url)),
        None => s.serialize_none(),
    }
}

/// A list of Redis URLs: a list of strings, or one string of comma-separated URLs (as an
/// environment variable gives it).
fn url_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Urls {
        List(Vec<String>),
        Joined(String),
    }
    Ok(match Option::<Urls>::deserialize(d)? {
        None => Vec::new(),
        Some(Urls::List(urls)) => urls,
        Some(Urls::Joined(joined)) => joined
            .split(',')
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .map(String::from)
            .collect(),
    })
}

/// Serializes Redis URLs with their passwords replaced by `***`.
fn serialize_redacted_urls<S: Serializer>(urls: &[String], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(urls.iter().map(|url| cache_redis::redact_url(url)))
}

/// Character thresholds of the text-size tiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct TextSizeTiers {
    /// Shorter texts are small.
    pub small: usize,
    /// Shorter texts are medium.
    pub medium: usize,
    /// Shorter texts are large; longer ones xlarge.
    pub large: usize,
}

impl Default for TextSizeTiers {
    /// The AI layer's thresholds (`TierThresholds::default`).
    fn default() -> Self {
        let tiers = cache_ai::TierThresholds::default();
        Self {
            small: tiers.small,
            medium: tiers.medium,
            large: tiers.large,
        }
    }
}

/// Every setting of an AI response cache. Durations are in seconds unless the name says `_ms`.
///
/// Build it with [`load`](Self::load) (defaults → preset → file → environment), one of the
/// `from_*` factories, or [`preset`](Self::preset); check it with [`validate`](Self::validate);
/// turn it into a cache with [`build_ai_cache`](Self::build_ai_cache). `docs/configuration.md`
/// lists every field with its default, environment variable and rule.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct AIResponseCacheConfig {
    /// The preset this configuration extends (`development`, `testing`, `production`, `embedded`).
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_opt_string"
    )]
    pub extends: Option<String>,
    /// The Redis URL; unset means memory-only. Serialized with its password redacted.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_opt_string",
        serialize_with = "serialize_redacted_url"
    )]
    pub redis_url: Option<String>,
    /// The seed nodes of a Redis Cluster (any of its nodes; a list, or comma-separated in the
    /// environment): the shared tier is that cluster, and `redis_url` stays unset. Serialized
    /// with passwords redacted.
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "url_list",
        serialize_with = "serialize_redacted_urls"
    )]
    pub redis_cluster_urls: Vec<String>,
    /// The Redis password (AUTH), kept out of every printout.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_auth: Option<Secret>,
    /// Connect with TLS (also implied by a `rediss://` URL).
    pub use_tls: bool,
    /// The ACL user the cache authenticates as (with `redis_auth` as its password).
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_opt_string"
    )]
    pub redis_username: Option<String>,
    /// PEM file of the CA that signed Redis's certificate; unset: the system's roots.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_opt_string"
    )]
    pub tls_ca_file: Option<String>,
    /// PEM file of the client certificate (mutual TLS).
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_opt_string"
    )]
    pub tls_client_cert_file: Option<String>,
    /// PEM file of the client certificate's key (mutual TLS).
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_opt_string"
    )]
    pub tls_client_key_file: Option<String>,
    /// Verify Redis's certificate; turning it off is warned about and refused in production.
    pub tls_verify_certificates: bool,
    /// Refuse TLS 1.2 (process-wide: see `TlsConfig::tls13_only`).
    pub tls13_only: bool,
    /// Start with the production preset even without AUTH, TLS or verification: the missing
    /// protections become warnings, logged when the caches are built.
    pub allow_insecure_production: bool,
    /// Encryption at rest: the key (64 hex digits) new values are encrypted with; unset: off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encryption_key: Option<Secret>,
    /// The id stored with values encrypted by `encryption_key`.
    pub encryption_key_id: u32,
    /// The previous key, still accepted for decryption while its entries live (rotation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encryption_previous_key: Option<Secret>,
    /// The previous key's id.
    pub encryption_previous_key_id: u32,
    /// The AEAD: `chacha20poly1305` (default) or `aes256gcm`.
    #[serde(deserialize_with = "lenient_string")]
    pub encryption_algorithm: String,
    /// A tenant: keys live under `aicache:t:{tenant}:v1` (the generic cache's under
    /// `aicache:t:{tenant}:kv`).
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_opt_string"
    )]
    pub tenant: Option<String>,
    /// With a tenant: until this time (RFC 3339, at most 30 days ahead) a miss also reads the
    /// tenant's entries stored by aicache 0.1 under `aicache:v1:t:{tenant}`; while it is set,
    /// removals remove those too and `convert_layout` moves them.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_opt_string"
    )]
    pub layout_upgrade_until: Option<String>,
    /// The generic cache's namespace; unset means `aicache:kv` (or `aicache:t:{tenant}:kv`).
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_opt_string"
    )]
    pub key_prefix: Option<String>,
    /// TTL of operations without one of their own.
    pub default_ttl: u64,
    /// TTL per operation.
    pub operation_ttls: BTreeMap<String, u64>,
    /// Shortens each TTL by a random fraction up to this, to spread expiries.
    pub ttl_jitter: f64,
    /// Keep an in-process L1 of decoded answers.
    pub enable_l1_cache: bool,
    /// L1 entry cap.
    pub memory_cache_size: usize,
    /// L1 byte budget.
    pub memory_cache_bytes: u64,
    /// The longest an L1 copy lives when Redis is configured.
    pub l1_max_ttl: u64,
    /// Values larger than this many bytes are compressed (when that saves space).
    pub compression_threshold: usize,
    /// The compression algorithm: `lz4` (fast, the default) or `zstd` (smaller).
    #[serde(deserialize_with = "lenient_string")]
    pub compression_algorithm: String,
    /// The zstd level, 1..=22 (unset means 6); must be unset with LZ4.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compression_level: Option<i64>,
    /// Texts longer than this many characters are hashed in the legacy (Python) key format.
    pub text_hash_threshold: usize,
    /// The digest of v1 keys: `sha256` or `blake3`.
    #[serde(deserialize_with = "lenient_string")]
    pub hash_algorithm: String,
    /// Text-size tier thresholds, in characters.
    pub text_size_tiers: TextSizeTiers,
    /// The largest value stored, in bytes.
    pub max_value_size: usize,
    /// The limit on each Redis command, in milliseconds.
    pub command_timeout_ms: u64,
    /// The limit on opening a Redis connection, in milliseconds.
    pub connect_timeout_ms: u64,
    /// The first delay before probing an unavailable Redis again (it doubles), in milliseconds.
    pub reconnect_min_delay_ms: u64,
    /// The longest delay between probes of an unavailable Redis, in milliseconds.
    pub reconnect_max_delay_ms: u64,
    /// Whether the circuit breaker in front of Redis may open (keep it on).
    pub breaker_enabled: bool,
    /// Consecutive Redis command timeouts that open the breaker.
    pub breaker_failure_threshold: u32,
    /// Writes, deletes and invalidations kept for replay while Redis is unavailable (0: off).
    pub replay_queue_capacity: usize,
    /// The most bytes (keys and frames) the replay queue holds.
    pub replay_queue_max_bytes: usize,
    /// Seconds a removal is remembered in Redis (tombstones, removed patterns), and the oldest a
    /// queued write may be when it is replayed.
    pub replay_horizon: u64,
    /// Serve-stale: seconds an answer is kept past its TTL for `get_or_compute` to fall back on
    /// when computing fails (0: off).
    pub stale_window: u64,
    /// With `stale_window`: a computation running longer than this many milliseconds is abandoned
    /// for a stale answer when one exists. Unset: only failures fall back.
    pub stale_after_ms: Option<u64>,
    /// Operations whose medium texts are promoted into L1.
    pub stable_operations: Vec<String>,
    /// Hits after which any small or medium text of an operation is promoted into L1.
    pub promotion_hit_threshold: u64,
    /// Record key-generation statistics and time reads (one in 16);
    /// counts are exact either way.
    pub monitoring_enabled: bool,
    /// Seconds between stats snapshots published to Redis for `aicache stats` (0: off).
    pub stats_snapshot_interval: u64,
}

impl Default for AIResponseCacheConfig {
    /// Each layer's own defaults: the Redis tier's (`RedisCacheConfig::default`), the memory
    /// tier's (`MemoryCacheConfig::default`), the AI layer's (`AiCacheConfig::default`), the
    /// frames' (`FrameSettings::default`) and the TLS settings' (`TlsConfig::default`), so that a
    /// default lives in one place.
    fn default() -> Self {
        let redis = cache_redis::RedisCacheConfig::default();
        let memory = cache_memory::MemoryCacheConfig::default();
        let ai = cache_ai::AiCacheConfig::default();
        let frames = cache_core::frame::FrameSettings::default();
        let tls = cache_security::TlsConfig::default();
        let secs = |d: std::time::Duration| d.as_secs();
        let millis = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let operation_ttls = ai
            .operation_ttls
            .iter()
            .map(|(op, ttl)| (op.clone(), secs(*ttl)))
            .collect();
        Self {
            extends: None,
            redis_url: redis.redis_url.clone(),
            redis_cluster_urls: redis.redis_cluster_urls.clone(),
            redis_auth: None,
            use_tls: false,
            redis_username: None,
            tls_ca_file: None,
            tls_client_cert_file: None,
            tls_client_key_file: None,
            tls_verify_certificates: tls.verify_certificates,
            tls13_only: tls.tls13_only,
            allow_insecure_production: false,
            encryption_key: None,
            encryption_key_id: 1,
            encryption_previous_key: None,
            encryption_previous_key_id: 0,
            encryption_algorithm: "chacha20poly1305".to_string(),
            tenant: ai.tenant.clone(),
            layout_upgrade_until: ai
                .layout_upgrade_until
                .map(|until| humantime::format_rfc3339_seconds(until).to_string()),
            key_prefix: None,
            default_ttl: secs(ai.default_ttl),
            operation_ttls,
            ttl_jitter: ai.ttl_jitter,
            enable_l1_cache: ai.l1.is_some(),
            memory_cache_size: memory.max_entries,
            memory_cache_bytes: memory.max_bytes,
            l1_max_ttl: secs(ai.l1_max_ttl),
            compression_threshold: frames.compression_threshold,
            compression_algorithm: match frames.compression {
                cache_core::frame::Compression::Zstd => "zstd",
                _ => "lz4",
            }
            .to_string(),
            compression_level: frames.compression_level.map(i64::from),
            text_hash_threshold: ai.text_hash_threshold,
            hash_algorithm: ai.hash_algorithm.as_str().to_string(),
            text_size_tiers: TextSizeTiers::default(),
            max_value_size: frames.max_value_size,
            command_timeout_ms: millis(redis.command_timeout),
            connect_timeout_ms: millis(redis.connect_timeout),
            reconnect_min_delay_ms: millis(redis.reconnect_min_delay),
            reconnect_max_delay_ms: millis(redis.reconnect_max_delay),
            breaker_enabled: redis.breaker_enabled,
            breaker_failure_threshold: redis.breaker_failure_threshold,
            replay_queue_capacity: redis.replay_queue_capacity,
            replay_queue_max_bytes: redis.replay_queue_max_bytes,
            replay_horizon: redis.replay_horizon.as_secs(),
            stale_window: secs(ai.stale_window),
            stale_after_ms: ai.stale_after.map(millis),
            stable_operations: ai.stable_operations.clone(),
            promotion_hit_threshold: ai.promotion_hit_threshold,
            monitoring_enabled: ai.monitoring_enabled,
            stats_snapshot_interval: 0,
        }
    }
}

impl fmt::Debug for AIResponseCacheConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AIResponseCacheConfig")
            .field("extends", &self.extends)
            .field(
                "redis_url",
                &self.redis_url.as_deref().map(cache_redis::redact_url),
            )
            .field(
                "redis_cluster_urls",
                &self
                    .redis_cluster_urls
                    .iter()
                    .map(|url| cache_redis::redact_url(url))
                    .collect::<Vec<_>>(),
            )
            .field("redis_auth", &self.redis_auth)
            .field("use_tls", &self.use_tls)
            .field("redis_username", &self.redis_username)
            .field("tls_ca_file", &self.tls_ca_file)
            .field("tls_client_cert_file", &self.tls_client_cert_file)
            .field("tls_client_key_file", &self.tls_client_key_file)
            .field("tls_verify_certificates", &self.tls_verify_certificates)
            .field("tls13_only", &self.tls13_only)
            .field("allow_insecure_production", &self.allow_insecure_production)
            .field("encryption_key", &self.encryption_key)
            .field("encryption_key_id", &self.encryption_key_id)
            .field("encryption_previous_key", &self.encryption_previous_key)
            .field(
                "encryption_previous_key_id",
                &self.encryption_previous_key_id,
            )
            .field("encryption_algorithm", &self.encryption_algorithm)
            .field("tenant", &self.tenant)
            .field("layout_upgrade_until", &self.layout_upgrade_until)
            .field("key_prefix", &self.key_prefix)
            .field("default_ttl", &self.default_ttl)
            .field("operation_ttls", &self.operation_ttls)
            .field("ttl_jitter", &self.ttl_jitter)
            .field("enable_l1_cache", &self.enable_l1_cache)
            .field("memory_cache_size", &self.memory_cache_size)
            .field("memory_cache_bytes", &self.memory_cache_bytes)
            .field("l1_max_ttl", &self.l1_max_ttl)
            .field("compression_threshold", &self.compression_threshold)
            .field("compression_algorithm", &self.compression_algorithm)
            .field("compression_level", &self.compression_level)
            .field("text_hash_threshold", &self.text_hash_threshold)
            .field("hash_algorithm", &self.hash_algorithm)
            .field("text_size_tiers", &self.text_size_tiers)
            .field("max_value_size", &self.max_value_size)
            .field("command_timeout_ms", &self.command_timeout_ms)
            .field("connect_timeout_ms", &self.connect_timeout_ms)
            .field("reconnect_min_delay_ms", &self.reconnect_min_delay_ms)
            .field("reconnect_max_delay_ms", &self.reconnect_max_delay_ms)
            .field("breaker_enabled", &self.breaker_enabled)
            .field("breaker_failure_threshold", &self.breaker_failure_threshold)
            .field("replay_queue_capacity", &self.replay_queue_capacity)
            .field("replay_queue_max_bytes", &self.replay_queue_max_bytes)
            .field("replay_horizon", &self.replay_horizon)
            .field("stale_window", &self.stale_window)
            .field("stale_after_ms", &self.stale_after_ms)
            .field("stable_operations", &self.stable_operations)
            .field("promotion_hit_threshold", &self.promotion_hit_threshold)
            .field("monitoring_enabled", &self.monitoring_enabled)
            .field("stats_snapshot_interval", &self.stats_snapshot_interval)
            .finish()
    }
}

impl fmt::Display for AIResponseCacheConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // TOML; serialization already redacts the password and the URL's password.
        match toml::to_string(self) {
            Ok(text) => f.write_str(&text),
            Err(_) => write!(f, "{self:?}"),
        }
    }
}
