//! Loading: defaults → preset (`extends`) → file → environment, layered with figment.

use std::path::{Path, PathBuf};

use cache_core::{Error, ErrorKind, Result};
use figment::providers::Serialized;
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider, Source};

use crate::config::AIResponseCacheConfig;
use crate::presets::preset;

/// The prefix of every environment variable: `AICACHE_REDIS_URL`, `AICACHE_DEFAULT_TTL`, and
/// `AICACHE_OPERATION_TTLS__QA` for nested keys.
pub const ENV_PREFIX: &str = "AICACHE_";

/// Fields whose values never appear in an error message.
const SECRET_FIELDS: &[&str] = &[
    "redis_auth",
    "redis_url",
    "redis_cluster_urls",
    "encryption_key",
    "encryption_previous_key",
];

/// Fields read from the environment as raw strings (so `007` stays `007`).
const STRING_FIELDS: &[&str] = &[
    "extends",
    "redis_url",
    "redis_cluster_urls",
    "tenant",
    "layout_upgrade_until",
    "key_prefix",
    "hash_algorithm",
    "compression_algorithm",
    "redis_username",
    "tls_ca_file",
    "tls_client_cert_file",
    "tls_client_key_file",
    "encryption_key",
    "encryption_previous_key",
    "encryption_algorithm",
];

/// The formats a configuration file can be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileFormat {
    /// `.toml`
    Toml,
    /// `.yaml` / `.yml`
    Yaml,
    /// `.json`
    Json,
}

impl FileFormat {
    /// The format a file's extension names.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] for another extension.
    pub fn of(path: &Path) -> Result<Self> {
        match path.extension().and_then(|e| e.to_str()) {
            Some("toml") => Ok(Self::Toml),
            Some("yaml" | "yml") => Ok(Self::Yaml),
            Some("json") => Ok(Self::Json),
            _ => Err(
                Error::new(ErrorKind::Config, "unknown configuration file format")
                    .with_context("file", path.display())
                    .with_context("allowed", ".toml, .yaml, .yml, .json"),
            ),
        }
    }

    fn parse(self, text: &str) -> std::result::Result<Dict, String> {
        match self {
            // toml's own message quotes the offending line, which may hold a password: keep only
            // the position and the short reason.
            Self::Toml => toml::from_str(text).map_err(|e| {
                let line = e.span().map_or(0, |span| {
                    text[..span.start.min(text.len())].lines().count().max(1)
                });
                format!("{} at line {line}", e.message())
            }),
            Self::Yaml => serde_norway::from_str(text).map_err(|e| e.to_string()),
            Self::Json => serde_json::from_str(text).map_err(|e| e.to_string()),
        }
    }
}

/// One layer of configuration with a name for error messages.
struct Layer {
    dict: Dict,
    metadata: Metadata,
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        self.metadata.clone()
    }

    fn data(&self) -> std::result::Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.dict.clone()))
    }
}

/// A boxed provider, merged like any other (figment needs a sized provider).
struct Boxed(Box<dyn Provider>);

impl Provider for Boxed {
    fn metadata(&self) -> Metadata {
        self.0.metadata()
    }

    fn data(&self) -> std::result::Result<Map<Profile, Dict>, figment::Error> {
        self.0.data()
    }
}

fn parse_text(format: FileFormat, text: &str, origin: &str) -> Result<Dict> {
    format.parse(text).map_err(|problem| {
        Error::new(ErrorKind::Config, "configuration does not parse")
            .with_context("source", origin)
            .with_context("problem", problem)
    })
}

fn string_layer(format: FileFormat, text: &str) -> Result<Layer> {
    let name = format!("{format:?} text");
    Ok(Layer {
        dict: parse_text(format, text, &name)?,
        metadata: Metadata::named(name),
    })
}

fn file_layer(path: &Path) -> Result<Layer> {
    let format = FileFormat::of(path)?;
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::new(ErrorKind::Config, "cannot read the configuration file")
            .with_context("file", path.display())
            .with_source(e)
    })?;
    Ok(Layer {
        dict: parse_text(format, &text, &path.display().to_string())?,
        metadata: Metadata::from(
            format!("{format:?} file"),
            Source::File(PathBuf::from(path)),
        ),
    })
}

fn dict_layer(name: &str, dict: Dict) -> Layer {
    Layer {
        dict,
        metadata: Metadata::named(name.to_string()),
    }
}

/// Sets `value` at the nested `path` of `dict`, creating the maps on the way.
fn insert_nested(dict: &mut Dict, path: &[&str], value: Value) {
    match path {
        [] => {}
        [last] => {
            dict.insert((*last).to_string(), value);
        }
        [first, rest @ ..] => {
            let entry = dict
                .entry((*first).to_string())
                .or_insert_with(|| Value::from(Dict::new()));
            if entry.as_dict().is_none() {
                *entry = Value::from(Dict::new());
            }
            if let Value::Dict(_, inner) = entry {
                insert_nested(inner, rest, value);
            }
        }
    }
}

/// The environment layers from `vars`: `AICACHE_*` (lowercased, nested keys with `__`, values
/// typed as figment types them), `REDIS_URL` when `AICACHE_REDIS_URL` is absent, and the password
/// as a raw string (so `0123` stays `0123`).
fn env_layers(vars: impl IntoIterator<Item = (String, String)>) -> Vec<Box<dyn Provider>> {
    let mut dict = Dict::new();
    let (mut redis_url, mut fallback_url, mut password) = (false, None, None);
    for (name, value) in vars {
        if name == "REDIS_URL" {
            fallback_url = Some(value);
            continue;
        }
        // `AICACHE_BENCH_*` belongs to the benchmark library's settings, not to the cache's.
        let Some(key) = name
            .strip_prefix(ENV_PREFIX)
            .filter(|_| !name.starts_with("AICACHE_BENCH_"))
        else {
            continue;
        };
        let key = key.to_ascii_lowercase();
        match key.as_str() {
            "redis_auth" => password = Some(value),
            name if STRING_FIELDS.contains(&name) => {
                redis_url |= name == "redis_url";
                dict.insert(key, Value::from(value));
            }
            _ => {
                let path: Vec<&str> = key.split("__").filter(|p| !p.is_empty()).collect();
                let parsed = value.parse().unwrap_or_else(|_| Value::from(value));
                insert_nested(&mut dict, &path, parsed);
            }
        }
    }
    let mut layers: Vec<Box<dyn Provider>> = vec![Box::new(dict_layer(
        "environment variables AICACHE_*",
        dict,
    ))];
    if let Some(url) = fallback_url.filter(|_| !redis_url) {
        let dict = Dict::from([("redis_url".to_string(), Value::from(url))]);
        layers.push(Box::new(dict_layer("environment variable REDIS_URL", dict)));
    }
    if let Some(password) = password {
        let dict = Dict::from([("redis_auth".to_string(), Value::from(password))]);
        layers.push(Box::new(dict_layer(
            "environment variable AICACHE_REDIS_AUTH",
            dict,
        )));
    }
    layers
}

fn map_figment_error(error: figment::Error) -> Error {
    let problems: Vec<String> = error
        .into_iter()
        .map(|e| {
            let field = e.path.join(".");
            let origin = e.metadata.as_ref().map_or_else(
                || "configuration".to_string(),
                |m| match &m.source {
                    Some(Source::File(path)) => format!("{} {}", m.name, path.display()),
                    _ => m.name.to_string(),
                },
            );
            let problem = if SECRET_FIELDS.contains(&field.as_str()) {
                "invalid value (hidden)".to_string()
            } else {
                e.kind.to_string()
            };
            if field.is_empty() {
                format!("{origin}: {problem}")
            } else {
                format!("{origin}: key `{field}`: {problem}")
            }
        })
        .collect();
    Error::new(
        ErrorKind::Config,
        format!("invalid configuration: {}", problems.join("; ")),
    )
}

/// Resolves layers in order (later wins, field by field, nested maps merged), starting from the
/// defaults and the preset the last layer naming one `extends`.
fn resolve(layers: Vec<Box<dyn Provider>>) -> Result<AIResponseCacheConfig> {
    let mut extends: Option<(String, String)> = None;
    for layer in &layers {
        if let Ok(data) = layer.data()
            && let Some(name) = data
                .get(&Profile::Default)
                .and_then(|dict| dict.get("extends"))
                .and_then(Value::as_str)
        {
            let metadata = layer.metadata();
            let origin = match &metadata.source {
                Some(Source::File(path)) => format!("{} {}", metadata.name, path.display()),
                _ => metadata.name.to_string(),
            };
            extends = Some((name.to_string(), origin));
        }
    }
    let mut figment = Figment::from(Serialized::defaults(AIResponseCacheConfig::default()));
    if let Some((name, origin)) = &extends {
        let preset = preset(name).ok_or_else(|| {
            let names: Vec<&str> = crate::presets::PRESETS.iter().map(|p| p.name).collect();
            Error::new(ErrorKind::Config, "unknown preset")
                .with_context("source", origin)
                .with_context("field", "extends")
                .with_context("value", name)
                .with_context("allowed", names.join(", "))
        })?;
        figment = figment.merge(Serialized::defaults(preset.config()));
    }
    for layer in layers {
        figment = figment.merge(Boxed(layer));
    }
    figment.extract().map_err(map_figment_error)
}

impl AIResponseCacheConfig {
    /// The configuration a service uses: defaults, then the preset the file `extends`, then the
    /// file (when given), then the environment (`AICACHE_*`, `REDIS_URL`).
    ///
    /// # Errors
    /// [`ErrorKind::Config`] naming the file and the key of any bad value. The result is not yet
    /// validated: call [`validate`](Self::validate), or let the `build_*` methods do it.
    pub fn load(file: Option<&Path>) -> Result<Self> {
        // Variables that are not UTF-8 cannot be ours; skip them rather than panic.
        let vars = std::env::vars_os().filter_map(|(name, value)| {
            Some((name.into_string().ok()?, value.into_string().ok()?))
        });
        Self::load_with_env(file, vars)
    }

    /// [`load`](Self::load) with the environment given as name/value pairs (for tests, or for a
    /// process that keeps its settings elsewhere).
    ///
    /// # Errors
    /// As [`load`](Self::load).
    pub fn load_with_env(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self> {
        let mut layers: Vec<Box<dyn Provider>> = Vec::new();
        if let Some(path) = file {
            layers.push(Box::new(file_layer(path)?));
        }
        layers.extend(env_layers(env));
        resolve(layers)
    }

    /// A preset's configuration.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] for an unknown name.
    pub fn preset(name: &str) -> Result<Self> {
        let dict = Dict::from([("extends".to_string(), Value::from(name.to_string()))]);
        resolve(vec![Box::new(dict_layer("preset", dict))])
    }

    /// Defaults overridden by the environment (`AICACHE_*`, `REDIS_URL`).
    ///
    /// # Errors
    /// As [`load`](Self::load).
    pub fn from_env() -> Result<Self> {
        Self::load(None)
    }

    /// Defaults overridden by a JSON map (the seed's `from_dict`).
    ///
    /// # Errors
    /// [`ErrorKind::Config`] naming the key of any bad value.
    pub fn from_dict(map: &serde_json::Map<String, serde_json::Value>) -> Result<Self> {
        let dict: Dict =
            serde_json::from_value(serde_json::Value::Object(map.clone())).map_err(|e| {
                Error::new(ErrorKind::Config, "invalid configuration map").with_source(e)
            })?;
        resolve(vec![Box::new(dict_layer("map", dict))])
    }

    /// Defaults overridden by TOML text.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] for text that does not parse or a bad value.
    pub fn from_toml(text: &str) -> Result<Self> {
        resolve(vec![Box::new(string_layer(FileFormat::Toml, text)?)])
    }

    /// Defaults overridden by YAML text.
    ///
    /// # Errors
    /// As [`from_toml`](Self::from_toml).
    pub fn from_yaml(text: &str) -> Result<Self> {
        resolve(vec![Box::new(string_layer(FileFormat::Yaml, text)?)])
    }

    /// Defaults overridden by JSON text.
    ///
    /// # Errors
    /// As [`from_toml`](Self::from_toml).
    pub fn from_json(text: &str) -> Result<Self> {
        resolve(vec![Box::new(string_layer(FileFormat::Json, text)?)])
    }

    /// Defaults overridden by a file, its format chosen by extension (no environment).
    ///
    /// # Errors
    /// [`ErrorKind::Config`] naming the file (and the key) when it cannot be read or parsed.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        resolve(vec![Box::new(file_layer(path.as_ref())?)])
    }

    /// This configuration with `overrides` applied: later wins, field by field; nested maps
    /// (`operation_ttls`, `text_size_tiers`) are merged key by key.
    ///
    /// ```
    /// use cache_config::AIResponseCacheConfig;
    /// use serde_json::json;
    ///
    /// let base = AIResponseCacheConfig::default();
    /// let merged = base.merge(&json!({"operation_ttls": {"qa": 60}, "default_ttl": 900}))?;
    /// assert_eq!(merged.operation_ttls["qa"], 60);
    /// assert_eq!(merged.operation_ttls["summarize"], 7200, "other operations keep theirs");
    /// assert_eq!(merged.default_ttl, 900);
    /// # Ok::<(), cache_core::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when `overrides` is not a map, holds a bad value, or names a preset
    /// (`extends` is resolved when loading: merge onto [`preset`](Self::preset) instead).
    pub fn merge(&self, overrides: &serde_json::Value) -> Result<Self> {
        if overrides.get("extends").is_some() {
            return Err(
                Error::new(ErrorKind::Config, "merge does not apply presets")
                    .with_context("field", "extends")
                    .with_context(
                        "fix",
                        "start from AIResponseCacheConfig::preset(name) and merge onto it",
                    ),
            );
        }
        let dict: Dict = serde_json::from_value(overrides.clone())
            .map_err(|e| Error::new(ErrorKind::Config, "overrides must be a map").with_source(e))?;
        // The password serializes as "***": restore it afterwards unless the overrides set one.
        let mut figment = Figment::from(Serialized::defaults(self));
        figment = figment.merge(dict_layer("overrides", dict));
        let mut merged: Self = figment.extract().map_err(map_figment_error)?;
        if merged
            .redis_auth
            .as_ref()
            .is_some_and(|s| s.expose() == "***")
        {
            merged.redis_auth.clone_from(&self.redis_auth);
        }
        // Encryption keys serialize as "***" too: restore them unless the overrides set new ones
        // (a merged configuration with encryption must still validate and decrypt).
        let redacted = |secret: &Option<cache_security::Secret>| {
            secret.as_ref().is_some_and(|s| s.expose() == "***")
        };
        if redacted(&merged.encryption_key) {
            merged.encryption_key.clone_from(&self.encryption_key);
        }
        if redacted(&merged.encryption_previous_key) {
            merged
                .encryption_previous_key
                .clone_from(&self.encryption_previous_key);
        }
        // The URL serializes with its password redacted; an unchanged URL takes the real one back.
        if merged.redis_url.is_some()
            && merged.redis_url == self.redis_url.as_deref().map(cache_redis::redact_url)
        {
            merged.redis_url.clone_from(&self.redis_url);
        }
        Ok(merged)
    }
}
