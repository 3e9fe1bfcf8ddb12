//! [`AIResponseCacheConfig::validate`]: every check of the seed, and the inconsistencies between
//! settings, each naming the field, the value, what is allowed and how to fix it.

use cache_ai::{HashAlgorithm, validate_operation};
use cache_core::frame::{Compression, FrameSettings};
use cache_core::{ValidationIssue, ValidationResult};

use crate::config::AIResponseCacheConfig;
use crate::presets::PRESETS;

/// Decodes `%XX` escapes (a URL's password is percent-encoded).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(high), Some(low)) => {
                out.push(u8::try_from(high * 16 + low).unwrap_or(b'?'));
                i += 3;
            }
            (byte, _, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The password a Redis URL carries (in its user information, or as `?pass=` for a unix socket),
/// decoded.
pub(crate) fn url_password(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    if let Some(at) = rest.rfind('@')
        && let Some((_, password)) = rest[..at].split_once(':')
    {
        return Some(percent_decode(password));
    }
    let query = rest.split_once('?')?.1;
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("pass="))
        .map(percent_decode)
}

/// The configuration field behind a `SecurityConfig` field name.
fn config_field(security_field: &str) -> &str {
    match security_field {
        "security.username" => "redis_username",
        "security.password" => "redis_auth",
        "security.tls" => "use_tls",
        "security.tls.ca_file" => "tls_ca_file",
        "security.tls.client_cert_file" => "tls_client_cert_file",
        "security.tls.client_key_file" => "tls_client_key_file",
        "security.tls.verify_certificates" => "tls_verify_certificates",
        other => other,
    }
}

fn err(
    r: &mut ValidationResult,
    field: &str,
    value: impl std::fmt::Display,
    allowed: &str,
    hint: &str,
) {
    r.error(ValidationIssue::new(field, value, allowed, hint));
}

impl AIResponseCacheConfig {
    /// Checks every field and the consistency between fields.
    ///
    /// ```
    /// use cache_config::AIResponseCacheConfig;
    ///
    /// let mut config = AIResponseCacheConfig::default();
    /// config.default_ttl = 0;
    /// let result = config.validate();
    /// assert!(!result.is_valid());
    /// assert_eq!(result.errors[0].field, "default_ttl");
    /// ```
    pub fn validate(&self) -> ValidationResult {
        let mut r = ValidationResult::new();
        if let Some(preset) = &self.extends
            && !PRESETS.iter().any(|p| p.name == preset)
        {
            let names: Vec<&str> = PRESETS.iter().map(|p| p.name).collect();
            err(
                &mut r,
                "extends",
                format!("{preset:?}"),
                &names.join(", "),
                "name one of the presets",
            );
        }
        if !(1..=100_000).contains(&self.text_hash_threshold) {
            err(
                &mut r,
                "text_hash_threshold",
                self.text_hash_threshold.to_string(),
                "1..=100000",
                "the original's default is 1000",
            );
        }
        let tiers = self.text_size_tiers;
        if tiers.small == 0 || tiers.small >= tiers.medium || tiers.medium >= tiers.large {
            err(
                &mut r,
                "text_size_tiers",
                format!(
                    "small={}, medium={}, large={}",
                    tiers.small, tiers.medium, tiers.large
                ),
                "0 < small < medium < large",
                "order the thresholds, for example 500 / 5000 / 50000",
            );
        }
        for (operation, ttl) in &self.operation_ttls {
            let field = format!("operation_ttls.{operation}");
            if validate_operation(operation).is_err() {
                err(
                    &mut r,
                    &field,
                    format!("{operation:?}"),
                    "[a-z0-9_]{1,64}",
                    "name operations in lowercase letters, digits and '_'",
                );
            }
            if *ttl == 0 || *ttl > 315_360_000 {
                err(
                    &mut r,
                    &field,
                    ttl.to_string(),
                    "1..=315360000 seconds",
                    "set a positive TTL",
                );
            }
        }
        if self.default_ttl == 0 || self.default_ttl > 315_360_000 {
            err(
                &mut r,
                "default_ttl",
                self.default_ttl.to_string(),
                "1..=315360000 seconds",
                "set a positive TTL, for example 3600",
            );
        }
        if self.l1_max_ttl == 0 {
            err(
                &mut r,
                "l1_max_ttl",
                "0",
                ">= 1 second",
                "bound how long an L1 copy lives, for example 300",
            );
        }
        if !(0.0..=0.5).contains(&self.ttl_jitter) {
            err(
                &mut r,
                "ttl_jitter",
                self.ttl_jitter.to_string(),
                "0.0..=0.5",
                "a fraction of the TTL, for example 0.1",
            );
        }
        if HashAlgorithm::parse(&self.hash_algorithm).is_err() {
            err(
                &mut r,
                "hash_algorithm",
                format!("{:?}", self.hash_algorithm),
                "sha256, blake3",
                "pick one of them",
            );
        }
        let compression = match self.compression_algorithm.as_str() {
            "lz4" => Some(Compression::Lz4),
            "zstd" => Some(Compression::Zstd),
            other => {
                err(
                    &mut r,
                    "compression_algorithm",
                    format!("{other:?}"),
                    "lz4, zstd",
                    "lz4 is the fast default; zstd compresses smaller",
                );
                None
            }
        };
        // The frames' own rules (level per algorithm, size limit), stated once in cache-core.
        let level = self
            .compression_level
            .map(|level| i32::try_from(level).unwrap_or(i32::MAX));
        let frames = FrameSettings::default()
            .with_compression(compression.unwrap_or(Compression::Lz4), level)
            .with_compression_threshold(self.compression_threshold)
            .with_max_value_size(self.max_value_size);
        if compression.is_some() || level.is_none() {
            r.merge(frames.validate());
        }
        if self.compression_threshold > 16 * 1024 * 1024 {
            err(
                &mut r,
                "compression_threshold",
                self.compression_threshold.to_string(),
                "0..=16777216 bytes",
                "use 1000 unless measurements say otherwise",
            );
        }
        if self.enable_l1_cache
            && let Some(memory) = self.to_memory_cache_config()
        {
            // The memory tier's own rules, under this configuration's names.
            // (Its default_ttl is this configuration's, checked above under that name.)
            for mut issue in memory.validate().errors {
                if issue.field == "default_ttl" {
                    continue;
                }
                issue.field = match issue.field.as_str() {
                    "max_entries" => "memory_cache_size".to_string(),
                    "max_bytes" => "memory_cache_bytes".to_string(),
                    other => other.to_string(),
                };
                r.error(issue);
            }
        }
        if !(1..=600_000).contains(&self.command_timeout_ms) {
            err(
                &mut r,
                "command_timeout_ms",
                self.command_timeout_ms,
                "1..=600000",
                "every Redis call needs a timeout, for example 500",
            );
        }
        if !(1..=600_000).contains(&self.connect_timeout_ms) {
            err(
                &mut r,
                "connect_timeout_ms",
                self.connect_timeout_ms,
                "1..=600000",
                "for example 2000",
            );
        }
        if let Some(tenant) = &self.tenant
            && !cache_ai::is_valid_tenant(tenant)
        {
            err(
                &mut r,
                "tenant",
                format!("{tenant:?}"),
                "[A-Za-z0-9_-]{1,64}",
                "braces, ':' or '*' could reach another tenant's keys",
            );
        }
        r.merge(cache_redis::validate_cluster_urls(
            self.redis_url.is_some(),
            &self.redis_cluster_urls,
        ));
        match self.server_url() {
            Some(url) => {
                if self.redis_url.is_some() {
                    r.merge(cache_redis::validate_redis_url(url));
                }
                let security = self.security_config();
                for mut issue in security.validate().errors {
                    issue.field = config_field(&issue.field).to_string();
                    r.error(issue);
                }
                if self.extends.as_deref() == Some("production") {
                    let tls_in_url = cache_redis::url_uses_tls(url);
                    let password_in_url = url_password(url).is_some();
                    for mut issue in security
                        .production_requirements(tls_in_url, password_in_url)
                        .errors
                    {
                        issue.field = config_field(&issue.field).to_string();
                        if self.allow_insecure_production {
                            r.warning(issue);
                        } else {
                            issue.hint.push_str(
                                " (or set allow_insecure_production = true to start anyway)",
                            );
                            r.error(issue);
                        }
                    }
                }
                if let (Some(in_url), Some(auth)) = (url_password(url), &self.redis_auth)
                    && in_url != auth.expose()
                {
                    err(
                        &mut r,
                        "redis_auth",
                        "*** (differs from the password in redis_url)",
                        "the same password, or only one of them",
                        "remove the password from redis_url or from redis_auth",
                    );
                }
            }
            None => {
                if !self.enable_l1_cache {
                    err(
                        &mut r,
                        "enable_l1_cache",
                        "false",
                        "true when redis_url is unset",
                        "without Redis and without L1 nothing would be cached",
                    );
                }
                if self.use_tls {
                    r.warning(ValidationIssue::new(
                        "use_tls",
                        "true",
                        "only with redis_url",
                        "TLS has no effect without a Redis URL",
                    ));
                }
                if self.redis_auth.is_some() {
                    r.warning(ValidationIssue::new(
                        "redis_auth",
                        "***",
                        "only with redis_url",
                        "the password is unused without a Redis URL",
                    ));
                }
                if self.extends.as_deref() == Some("production") {
                    r.error(ValidationIssue::new(
                        "redis_url",
                        "unset",
                        "a Redis URL (production shares answers across instances)",
                        "set AICACHE_REDIS_URL, or extend another preset",
                    ));
                }
            }
        }
        if let Some(prefix) = &self.key_prefix
            && let Err(e) = cache_core::Namespace::generic(prefix)
        {
            // Both directions: a prefix around an AI namespace (`aicache`) and one inside it
            // (`aicache:v1:x`) are refused alike.
            err(
                &mut r,
                "key_prefix",
                format!("{prefix:?}"),
                "segments of [A-Za-z0-9_./-] joined by ':', 1..=256 bytes, neither inside nor around an AI namespace (aicache, aicache:v1…, aicache:t:{tenant}…)",
                &match e.context_value("overlaps") {
                    Some(ai) => format!(
                        "it overlaps {ai}: clear() would reach AI answers, or AI invalidations generic entries"
                    ),
                    None => "for example myapp or aicache:kv".to_string(),
                },
            );
        }
        if let Some(until) = &self.layout_upgrade_until {
            let ahead = humantime::parse_rfc3339_weak(until).map(|at| {
                at.duration_since(std::time::SystemTime::now())
                    .unwrap_or_default()
            });
            let problem = match ahead {
                Err(_) => Some((
                    "an RFC 3339 time, for example 2026-12-31T00:00:00Z",
                    "the end of the upgrade window",
                )),
                Ok(_) if self.tenant.is_none() => Some((
                    "only with a tenant",
                    "tenant-less keys kept their layout: there is nothing to upgrade",
                )),
                Ok(ahead) if ahead > cache_ai::MAX_LAYOUT_UPGRADE_WINDOW => Some((
                    "at most 30 days from now",
                    "old entries expire with their TTL; convert_layout moves the rest",
                )),
                Ok(_) => None,
            };
            if let Some((allowed, hint)) = problem {
                err(
                    &mut r,
                    "layout_upgrade_until",
                    format!("{until:?}"),
                    allowed,
                    hint,
                );
            }
        }
        if self.reconnect_min_delay_ms == 0
            || self.reconnect_max_delay_ms < self.reconnect_min_delay_ms
            || self.reconnect_max_delay_ms > 3_600_000
        {
            err(
                &mut r,
                "reconnect_max_delay_ms",
                format!(
                    "min {} ms, max {} ms",
                    self.reconnect_min_delay_ms, self.reconnect_max_delay_ms
                ),
                "0 < reconnect_min_delay_ms <= reconnect_max_delay_ms <= 3600000",
                "for example 100 and 1000",
            );
        }
        if self.breaker_failure_threshold == 0 || self.breaker_failure_threshold > 1000 {
            err(
                &mut r,
                "breaker_failure_threshold",
                self.breaker_failure_threshold,
                "1..=1000",
                "use the default, 3",
            );
        }
        if self.replay_queue_capacity > 10_000_000 {
            err(
                &mut r,
                "replay_queue_capacity",
                self.replay_queue_capacity,
                "0..=10000000 (0 turns replay off)",
                "each queued write holds its value in memory: size the queue for one outage",
            );
        }
        if !(1024..=16 * 1024 * 1024 * 1024).contains(&self.replay_queue_max_bytes) {
            err(
                &mut r,
                "replay_queue_max_bytes",
                self.replay_queue_max_bytes,
                "1024..=17179869184 bytes",
                "bound the queue to what an outage may cost in memory; 64 MiB is the default",
            );
        }
        if self.stats_snapshot_interval > 3600 {
            err(
                &mut r,
                "stats_snapshot_interval",
                self.stats_snapshot_interval,
                "0..=3600 seconds (0: off)",
                "a snapshot every 10 to 60 seconds shows the fleet in `aicache stats`",
            );
        }
        if !(1..=86_400).contains(&self.replay_horizon) {
            err(
                &mut r,
                "replay_horizon",
                self.replay_horizon,
                "1..=86400 seconds",
                "removals are remembered, and queued writes kept, this long: 600 is the default",
            );
        }
        if self.stale_window > 365 * 24 * 3600 {
            err(
                &mut r,
                "stale_window",
                self.stale_window,
                "0..=31536000 seconds (0: off)",
                "a stale answer is a fallback while the model is failing: hours, not years",
            );
        }
        match self.stale_after_ms {
            Some(after) if self.stale_window == 0 => err(
                &mut r,
                "stale_after_ms",
                after,
                "unset unless stale_window > 0",
                "set stale_window too: without it there is no stale answer to serve",
            ),
            Some(0) => err(
                &mut r,
                "stale_after_ms",
                0,
                ">= 1",
                "zero would abandon every computation that has a stale answer",
            ),
            _ => {}
        }
        self.validate_encryption(&mut r);
        let tls = self.use_tls || self.server_url().is_some_and(cache_redis::url_uses_tls);
        if !tls {
            for (field, set) in [
                ("tls_ca_file", self.tls_ca_file.is_some()),
                ("tls_client_cert_file", self.tls_client_cert_file.is_some()),
                ("tls_client_key_file", self.tls_client_key_file.is_some()),
            ] {
                if set {
                    r.warning(ValidationIssue::new(
                        field,
                        "set",
                        "only with use_tls or a rediss:// URL",
                        "the file has no effect without TLS",
                    ));
                }
            }
        }
        for operation in &self.stable_operations {
            if validate_operation(operation).is_err() {
                err(
                    &mut r,
                    "stable_operations",
                    format!("{operation:?}"),
                    "[a-z0-9_]{1,64}",
                    "list operation names",
                );
            }
        }
        if self.uses_redis() && self.l1_max_ttl > self.default_ttl {
            r.warning(ValidationIssue::new(
                "l1_max_ttl",
                self.l1_max_ttl,
                format!("<= default_ttl ({})", self.default_ttl),
                "an L1 copy never outlives its Redis entry anyway; lower l1_max_ttl",
            ));
        }
        if !self.enable_l1_cache && self.memory_cache_size != Self::default().memory_cache_size {
            r.warning(ValidationIssue::new(
                "memory_cache_size",
                self.memory_cache_size,
                "unset when enable_l1_cache = false",
                "the size has no effect with L1 off",
            ));
        }
        r
    }

    fn validate_encryption(&self, r: &mut ValidationResult) {
        if !matches!(
            self.encryption_algorithm.as_str(),
            "chacha20poly1305" | "aes256gcm"
        ) {
            err(
                r,
                "encryption_algorithm",
                format!("{:?}", self.encryption_algorithm),
                "chacha20poly1305 or aes256gcm",
                "chacha20poly1305 is the default",
            );
        }
        if self.encryption_key.is_none() {
            if self.encryption_previous_key.is_some() {
                err(
                    r,
                    "encryption_previous_key",
                    "***",
                    "only with encryption_key",
                    "rotation keeps the previous key next to a current one",
                );
            }
            return;
        }
        if self.encryption_previous_key.is_some()
            && self.encryption_previous_key_id == self.encryption_key_id
        {
            err(
                r,
                "encryption_previous_key_id",
                self.encryption_previous_key_id,
                format!(
                    "an id other than encryption_key_id ({})",
                    self.encryption_key_id
                )
                .as_str(),
                "give each key its own id",
            );
        }
        if let Some(config) = self.encryption_config()
            && config.build().is_err()
        {
            for (field, key) in [
                ("encryption_key", &self.encryption_key),
                ("encryption_previous_key", &self.encryption_previous_key),
            ] {
                let valid = key.as_ref().is_none_or(|k| {
                    let hex = k.expose().trim();
                    hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())
                });
                if !valid {
                    err(
                        r,
                        field,
                        "***",
                        "64 hex digits (32 bytes)",
                        "generate one with `openssl rand -hex 32`",
                    );
                }
            }
        }
        if !self.uses_redis() {
            r.warning(ValidationIssue::new(
                "encryption_key",
                "***",
                "only with redis_url",
                "encryption at rest protects what Redis stores; memory-only there is nothing stored",
            ));
        }
    }
}
