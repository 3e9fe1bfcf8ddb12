//! `CacheParameterMapper`: the seed's keyword parameters, split into generic (Redis tier) and AI
//! parameters, validated, and applied to an [`AiCacheConfig`].

use std::time::Duration;

use cache_core::{Error, ErrorKind, Result, ValidationIssue, ValidationResult};
use cache_memory::MemoryCacheConfig;
use serde_json::{Map, Value};

use crate::config::AiCacheConfig;
use crate::keys::{HashAlgorithm, validate_operation};
use crate::tiers::TierThresholds;

/// Parameters of the Redis tier.
pub const GENERIC_PARAMETERS: &[&str] = &[
    "redis_url",
    "default_ttl",
    "enable_l1_cache",
    "l1_cache_size",
    "compression_threshold",
    "compression_algorithm",
    "compression_level",
];

/// Parameters of the AI layer. `memory_cache_size` is the seed's old name of `l1_cache_size`.
pub const AI_PARAMETERS: &[&str] = &[
    "text_hash_threshold",
    "hash_algorithm",
    "text_size_tiers",
    "operation_ttls",
    "memory_cache_size",
];

const KNOWN_OPERATIONS: &[&str] = &["summarize", "sentiment", "key_points", "questions", "qa"];

/// The outcome of [`CacheParameterMapper::map`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct MappedParameters {
    /// Parameters of the Redis tier (`memory_cache_size` arrives here as `l1_cache_size`).
    pub generic: Map<String, Value>,
    /// Parameters of the AI layer.
    pub ai: Map<String, Value>,
    /// Every finding: unknown parameters, wrong types, values out of range, conflicts.
    pub validation: ValidationResult,
}

/// Splits and validates the seed's parameters.
///
/// ```
/// use cache_ai::CacheParameterMapper;
/// use serde_json::json;
///
/// let params = json!({"redis_url": "redis://localhost:6379", "memory_cache_size": 500,
///                     "operation_ttls": {"summarize": 7200}});
/// let mapped = CacheParameterMapper::map(params.as_object().unwrap());
/// assert!(mapped.validation.is_valid());
/// assert_eq!(mapped.generic["l1_cache_size"], 500);
/// assert_eq!(mapped.generic["redis_url"], "redis://localhost:6379");
/// // The AI layer's settings hold no store: a redis_url is refused, never silently dropped.
/// assert!(CacheParameterMapper::apply(params.as_object().unwrap(), Default::default()).is_err());
/// let ai_only = json!({"memory_cache_size": 500, "operation_ttls": {"summarize": 7200}});
/// let config = CacheParameterMapper::apply(ai_only.as_object().unwrap(), Default::default())?;
/// assert_eq!(config.l1.unwrap().max_entries, 500);
/// # Ok::<(), cache_core::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct CacheParameterMapper;

fn int_in(
    r: &mut ValidationResult,
    name: &str,
    value: &Value,
    range: std::ops::RangeInclusive<u64>,
) -> Option<u64> {
    let Some(n) = value.as_u64() else {
        r.error(ValidationIssue::new(
            name,
            value,
            format!("an integer in {}..={}", range.start(), range.end()),
            "give a whole number",
        ));
        return None;
    };
    if !range.contains(&n) {
        r.error(ValidationIssue::new(
            name,
            n,
            format!("{}..={}", range.start(), range.end()),
            "bring the value into range",
        ));
        return None;
    }
    Some(n)
}

impl CacheParameterMapper {
    /// Classifies and validates `params`.
    pub fn map(params: &Map<String, Value>) -> MappedParameters {
        let mut r = ValidationResult::new();
        let (mut generic, mut ai) = (Map::new(), Map::new());
        for (name, value) in params {
            match name.as_str() {
                "memory_cache_size" => {
                    generic.insert("l1_cache_size".into(), value.clone());
                    ai.insert(name.clone(), value.clone());
                }
                n if GENERIC_PARAMETERS.contains(&n) => {
                    generic.insert(name.clone(), value.clone());
                }
                n if AI_PARAMETERS.contains(&n) => {
                    ai.insert(name.clone(), value.clone());
                }
                // An unknown name may be a secret (redis_password, …): never print its value.
                _ => r.error(ValidationIssue::new(
                    name.clone(),
                    "(value hidden)",
                    format!(
                        "one of {}",
                        [GENERIC_PARAMETERS, AI_PARAMETERS].concat().join(", ")
                    ),
                    "remove the parameter or fix its name",
                )),
            }
            Self::check(&mut r, name, value);
        }
        if let (Some(a), Some(b)) = (params.get("memory_cache_size"), params.get("l1_cache_size"))
            && a != b
        {
            r.error(ValidationIssue::new(
                "memory_cache_size",
                format!("{a} (l1_cache_size is {b})"),
                "equal to l1_cache_size, or only one of them",
                "memory_cache_size is the old name of l1_cache_size: give one",
            ));
        }
        if params.contains_key("compression_level")
            && params.get("compression_algorithm").and_then(Value::as_str) != Some("zstd")
        {
            r.error(ValidationIssue::new(
                "compression_level",
                &params["compression_level"],
                "only with compression_algorithm = \"zstd\"",
                "LZ4 has no levels (the seed's 1..9 came from zlib): remove it, or choose zstd",
            ));
        }
        if params.get("enable_l1_cache") == Some(&Value::Bool(false))
            && (params.contains_key("l1_cache_size") || params.contains_key("memory_cache_size"))
        {
            r.warning(ValidationIssue::new(
                "l1_cache_size",
                "set while enable_l1_cache is false",
                "no size when L1 is off",
                "the size has no effect; remove it or enable L1",
            ));
        }
        MappedParameters {
            generic,
            ai,
            validation: r,
        }
    }

    fn check(r: &mut ValidationResult, name: &str, value: &Value) {
        match name {
            "redis_url" => {
                let ok = value.as_str().is_some_and(|url| {
                    [
                        "redis://",
                        "rediss://",
                        "valkey://",
                        "valkeys://",
                        "unix://",
                        "redis+unix://",
                    ]
                    .iter()
                    .any(|scheme| url.starts_with(scheme))
                });
                if !ok {
                    let shown = value
                        .as_str()
                        .map_or_else(|| "(not a string)".to_string(), cache_security::redact_url);
                    r.error(ValidationIssue::new(
                        name,
                        shown,
                        "a redis://, rediss:// (TLS), valkey://, valkeys:// or redis+unix:// URL",
                        "write it as redis://[user:password@]host:port[/db]",
                    ));
                }
            }
            // The same limits as cache-config's AIResponseCacheConfig::validate.
            "default_ttl" => {
                int_in(r, name, value, 1..=315_360_000);
            }
            "l1_cache_size" | "memory_cache_size" => {
                int_in(r, name, value, 1..=100_000_000);
            }
            "compression_threshold" => {
                int_in(r, name, value, 0..=16_777_216);
            }
            "text_hash_threshold" => {
                int_in(r, name, value, 1..=100_000);
            }
            "enable_l1_cache" if !value.is_boolean() => {
                r.error(ValidationIssue::new(
                    name,
                    value,
                    "true or false",
                    "give a boolean",
                ));
            }
            "compression_algorithm" if !matches!(value.as_str(), Some("lz4" | "zstd")) => {
                r.error(ValidationIssue::new(
                    name,
                    value,
                    "\"lz4\" or \"zstd\"",
                    "lz4 is the fast default; zstd compresses smaller",
                ));
            }
            "compression_level" => {
                int_in(r, name, value, 1..=22);
            }
            "hash_algorithm"
                if value
                    .as_str()
                    .and_then(|s| HashAlgorithm::parse(s).ok())
                    .is_none() =>
            {
                r.error(ValidationIssue::new(
                    name,
                    value,
                    "\"sha256\" or \"blake3\"",
                    "pick one",
                ));
            }
            "text_size_tiers" => Self::check_tiers(r, value),
            "operation_ttls" => Self::check_ttls(r, value),
            _ => {}
        }
    }

    fn check_tiers(r: &mut ValidationResult, value: &Value) {
        let Some(tiers) = value.as_object() else {
            r.error(ValidationIssue::new(
                "text_size_tiers",
                value,
                "an object with small, medium and large",
                "give the three thresholds in characters",
            ));
            return;
        };
        let mut get = |tier: &str| match tiers.get(tier) {
            Some(v) => int_in(r, &format!("text_size_tiers.{tier}"), v, 1..=100_000_000),
            None => {
                r.error(ValidationIssue::new(
                    format!("text_size_tiers.{tier}"),
                    "missing",
                    "a positive integer",
                    "give all of small, medium and large",
                ));
                None
            }
        };
        if let (Some(s), Some(m), Some(l)) = (get("small"), get("medium"), get("large")) {
            let as_usize = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
            r.merge(TierThresholds::new(as_usize(s), as_usize(m), as_usize(l)).validate());
        }
    }

    fn check_ttls(r: &mut ValidationResult, value: &Value) {
        let Some(ttls) = value.as_object() else {
            r.error(ValidationIssue::new(
                "operation_ttls",
                value,
                "an object of operation → seconds",
                "for example {\"summarize\": 7200}",
            ));
            return;
        };
        for (operation, ttl) in ttls {
            let field = format!("operation_ttls.{operation}");
            if validate_operation(operation).is_err() {
                r.error(ValidationIssue::new(
                    &field,
                    operation,
                    "[a-z0-9_]{1,64}",
                    "fix the operation name",
                ));
            } else if !KNOWN_OPERATIONS.contains(&operation.as_str()) {
                r.warning(ValidationIssue::new(
                    &field,
                    operation,
                    KNOWN_OPERATIONS.join(", "),
                    "an operation the original service never used; check the spelling",
                ));
            }
            if let Some(secs) = int_in(r, &field, ttl, 1..=u64::from(u32::MAX))
                && secs > 31_536_000
            {
                r.warning(ValidationIssue::new(
                    &field,
                    secs,
                    "<= 31536000 (1 year)",
                    "answers older than a year outlive most models",
                ));
            }
        }
    }

    /// Validates `params` and applies them to `config`.
    ///
    /// # Errors
    /// [`cache_core::ErrorKind::Config`] listing every error of [`map`](Self::map).
    pub fn apply(params: &Map<String, Value>, mut config: AiCacheConfig) -> Result<AiCacheConfig> {
        let mapped = Self::map(params);
        mapped.validation.into_result()?;
        if let Some(url) = mapped.generic.get("redis_url").and_then(Value::as_str) {
            // The AI layer's settings cannot hold a store: dropping the URL would silently run
            // memory-only.
            return Err(Error::new(
                ErrorKind::Config,
                "redis_url cannot be applied to the AI layer's settings",
            )
            .with_context("field", "redis_url")
            .with_context("value", cache_security::redact_url(url))
            .with_context(
                "fix",
                "build the store from MappedParameters::generic (cache-config's connect_ai_cache or AIResponseCacheConfig), or leave redis_url out",
            ));
        }
        let secs = |v: &Value| Duration::from_secs(v.as_u64().unwrap_or_default());
        let size =
            |v: &Value| usize::try_from(v.as_u64().unwrap_or_default()).unwrap_or(usize::MAX);
        for (name, value) in &mapped.generic {
            match name.as_str() {
                "default_ttl" => config.default_ttl = secs(value),
                "compression_threshold" => config.frames.compression_threshold = size(value),
                "compression_algorithm" if value.as_str() == Some("zstd") => {
                    config.frames.compression = cache_core::frame::Compression::Zstd;
                }
                "compression_level" => {
                    config.frames.compression_level =
                        value.as_i64().and_then(|level| i32::try_from(level).ok());
                }
                "l1_cache_size" => {
                    let l1 = config.l1.take().unwrap_or_default();
                    config.l1 = Some(l1.with_max_entries(size(value)));
                }
                _ => {}
            }
        }
        if mapped.generic.get("enable_l1_cache") == Some(&Value::Bool(false)) {
            config.l1 = None;
        } else if mapped.generic.get("enable_l1_cache") == Some(&Value::Bool(true))
            && config.l1.is_none()
        {
            config.l1 = Some(MemoryCacheConfig::default());
        }
        for (name, value) in &mapped.ai {
            match name.as_str() {
                "hash_algorithm" => {
                    config.hash_algorithm =
                        HashAlgorithm::parse(value.as_str().unwrap_or_default())?;
                }
                "text_size_tiers" => {
                    let tier = |t: &str| size(&value[t]);
                    config.text_size_tiers =
                        TierThresholds::new(tier("small"), tier("medium"), tier("large"));
                }
                "text_hash_threshold" => config.text_hash_threshold = size(value),
                "operation_ttls" => {
                    for (operation, ttl) in value.as_object().into_iter().flatten() {
                        config.operation_ttls.insert(operation.clone(), secs(ttl));
                    }
                }
                _ => {}
            }
        }
        config.validate().into_result()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn map(value: Value) -> MappedParameters {
        CacheParameterMapper::map(value.as_object().unwrap())
    }

    #[test]
    fn splits_generic_and_ai_parameters() {
        let mapped = map(json!({
            "redis_url": "redis://h:6379", "default_ttl": 600, "hash_algorithm": "blake3",
            "text_size_tiers": {"small": 100, "medium": 1000, "large": 10000},
        }));
        assert!(mapped.validation.is_valid(), "{:?}", mapped.validation);
        assert_eq!(mapped.generic.len(), 2);
        assert_eq!(mapped.ai.len(), 2);
    }

    #[test]
    fn unknown_wrong_type_and_out_of_range_name_field_value_and_range() {
        let mapped = map(json!({
            "redis_ur": "x", "default_ttl": "600", "l1_cache_size": 0, "compression_level": 6,
            "redis_url": "http://:pw@h", "text_size_tiers": {"small": 500, "medium": 100, "large": 1000},
        }));
        let text = mapped.validation.into_result().unwrap_err().to_string();
        for needle in [
            "redis_ur: got (value hidden)",
            "default_ttl: got \"600\", allowed an integer in 1..=315360000",
            "l1_cache_size: got 0, allowed 1..=100000000",
            "compression_level",
            "text_size_tiers: got small=500, medium=100",
            "redis_url: got http://:***@h",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in {text}");
        }
        assert!(!text.contains("pw@"), "{text}");
    }

    #[test]
    fn tls_and_valkey_urls_are_accepted() {
        // Issue 14, item 4: rediss:// was refused.
        for url in ["rediss://h:6380", "valkey://h:6379", "valkeys://h:6380"] {
            let mapped = map(json!({ "redis_url": url }));
            assert!(
                mapped.validation.is_valid(),
                "{url}: {:?}",
                mapped.validation
            );
        }
    }

    #[test]
    fn conflicts_and_warnings() {
        let mapped = map(json!({"memory_cache_size": 10, "l1_cache_size": 20}));
        assert!(!mapped.validation.is_valid());
        let mapped = map(
            json!({"enable_l1_cache": false, "l1_cache_size": 20, "operation_ttls": {"translate": 60}}),
        );
        assert!(mapped.validation.is_valid());
        assert_eq!(mapped.validation.warnings.len(), 2);
    }

    #[test]
    fn apply_reaches_the_config() {
        let params = json!({
            "default_ttl": 900, "enable_l1_cache": false, "hash_algorithm": "blake3",
            "text_hash_threshold": 500,
            "operation_ttls": {"qa": 60}, "text_size_tiers": {"small": 10, "medium": 20, "large": 30},
        });
        let config =
            CacheParameterMapper::apply(params.as_object().unwrap(), AiCacheConfig::default())
                .unwrap();
        assert_eq!(config.default_ttl, Duration::from_secs(900));
        assert!(config.l1.is_none());
        assert_eq!(config.hash_algorithm, HashAlgorithm::Blake3);
        assert_eq!(config.ttl_for("qa"), Duration::from_secs(60));
        assert_eq!(config.text_size_tiers, TierThresholds::new(10, 20, 30));
        assert_eq!(config.text_hash_threshold, 500);
        let zstd = json!({"compression_algorithm": "zstd", "compression_level": 19});
        let config =
            CacheParameterMapper::apply(zstd.as_object().unwrap(), AiCacheConfig::default())
                .unwrap();
        assert_eq!(
            config.frames.compression,
            cache_core::frame::Compression::Zstd
        );
        assert_eq!(config.frames.compression_level, Some(19));
        let with_url = json!({"redis_url": "redis://:pw@127.0.0.1:6379"});
        let err =
            CacheParameterMapper::apply(with_url.as_object().unwrap(), AiCacheConfig::default())
                .unwrap_err();
        assert_eq!(err.kind(), cache_core::ErrorKind::Config);
        assert!(
            err.to_string().contains("redis_url") && !err.to_string().contains("pw"),
            "{err}"
        );
        let bad = json!({"default_ttl": 0});
        assert!(
            CacheParameterMapper::apply(bad.as_object().unwrap(), AiCacheConfig::default())
                .is_err()
        );
    }
}
