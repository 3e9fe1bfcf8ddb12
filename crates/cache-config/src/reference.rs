//! The configuration reference (`docs/configuration.md`), generated from the code so that it
//! cannot drift: `cargo xtask codegen` writes it, and a test fails when it is stale.

use std::fmt::Write as _;

use crate::config::AIResponseCacheConfig;
use crate::load::ENV_PREFIX;
use crate::presets::PRESETS;

struct Field {
    name: &'static str,
    kind: &'static str,
    rule: &'static str,
    example: &'static str,
}

const FIELDS: &[Field] = &[
    Field {
        name: "extends",
        kind: "string",
        rule: "a preset name (see Presets)",
        example: "\"production\"",
    },
    Field {
        name: "redis_url",
        kind: "string",
        rule: "redis://, rediss:// (TLS) or redis+unix://; unset = memory-only",
        example: "\"redis://cache.internal:6379/0\"",
    },
    Field {
        name: "redis_cluster_urls",
        kind: "list of strings",
        rule: "seed nodes of a Redis Cluster (redis:// or rediss://, same credentials and scheme; comma-separated in the environment); not with redis_url",
        example: "[\"redis://10.0.0.1:7000\", \"redis://10.0.0.2:7000\"]",
    },
    Field {
        name: "redis_auth",
        kind: "secret string",
        rule: "never printed or serialized; must match a password already in redis_url; the ACL user's password with redis_username",
        example: "\"s3cret\"",
    },
    Field {
        name: "use_tls",
        kind: "bool",
        rule: "TLS (rustls, ring) even with a redis:// URL; a rediss:// URL implies it",
        example: "true",
    },
    Field {
        name: "redis_username",
        kind: "string",
        rule: "an ACL user; needs redis_auth",
        example: "\"aicache\"",
    },
    Field {
        name: "tls_ca_file",
        kind: "path",
        rule: "a PEM file; unset = the system's roots; only with TLS",
        example: "\"/etc/redis/ca.pem\"",
    },
    Field {
        name: "tls_client_cert_file",
        kind: "path",
        rule: "a PEM file, with tls_client_key_file (mutual TLS)",
        example: "\"/etc/aicache/client.pem\"",
    },
    Field {
        name: "tls_client_key_file",
        kind: "path",
        rule: "a PEM file, with tls_client_cert_file",
        example: "\"/etc/aicache/client.key\"",
    },
    Field {
        name: "tls_verify_certificates",
        kind: "bool",
        rule: "false is warned about, and refused by the production preset",
        example: "true",
    },
    Field {
        name: "tls13_only",
        kind: "bool",
        rule: "refuses TLS 1.2; process-wide (the first TLS connection installs a TLS 1.3-only rustls provider), so it must come before any other TLS connection",
        example: "false",
    },
    Field {
        name: "allow_insecure_production",
        kind: "bool",
        rule: "true lets the production preset start without AUTH, TLS or verification (the checks become warnings)",
        example: "false",
    },
    Field {
        name: "encryption_key",
        kind: "secret string",
        rule: "64 hex digits (32 bytes; openssl rand -hex 32); unset = no encryption at rest; needs redis_url",
        example: "\"<64 hex digits>\"",
    },
    Field {
        name: "encryption_key_id",
        kind: "integer",
        rule: "the id stored with each encrypted value; differs from encryption_previous_key_id",
        example: "2",
    },
    Field {
        name: "encryption_previous_key",
        kind: "secret string",
        rule: "64 hex digits; still decrypts while its entries live (key rotation); needs encryption_key",
        example: "\"<64 hex digits>\"",
    },
    Field {
        name: "encryption_previous_key_id",
        kind: "integer",
        rule: "the previous key's id",
        example: "1",
    },
    Field {
        name: "encryption_algorithm",
        kind: "string",
        rule: "chacha20poly1305 or aes256gcm",
        example: "\"chacha20poly1305\"",
    },
    Field {
        name: "tenant",
        kind: "string",
        rule: "[A-Za-z0-9_-]{1,64}; keys live under aicache:t:{tenant}:v1 (generic: aicache:t:{tenant}:kv)",
        example: "\"acme\"",
    },
    Field {
        name: "layout_upgrade_until",
        kind: "RFC 3339 time",
        rule: "only with a tenant, at most 30 days ahead; until then misses also read aicache:v1:t:{tenant} (0.1's layout)",
        example: "\"2026-12-31T00:00:00Z\"",
    },
    Field {
        name: "key_prefix",
        kind: "string",
        rule: "segments of [A-Za-z0-9_./-] joined by ':', 1..=256 bytes, neither inside nor around an AI namespace; unset = aicache:kv (with the tenant: aicache:t:{tenant}:kv)",
        example: "\"billing:kv\"",
    },
    Field {
        name: "default_ttl",
        kind: "seconds",
        rule: "1..=315360000",
        example: "3600",
    },
    Field {
        name: "operation_ttls",
        kind: "map operation → seconds",
        rule: "operation [a-z0-9_]{1,64}; 1..=315360000",
        example: "{ summarize = 7200 }",
    },
    Field {
        name: "ttl_jitter",
        kind: "fraction",
        rule: "0.0..=0.5; each TTL is shortened by a random fraction up to this",
        example: "0.1",
    },
    Field {
        name: "enable_l1_cache",
        kind: "bool",
        rule: "must be true without redis_url",
        example: "true",
    },
    Field {
        name: "memory_cache_size",
        kind: "entries",
        rule: "1..=100000000 when L1 is on",
        example: "100",
    },
    Field {
        name: "memory_cache_bytes",
        kind: "bytes",
        rule: ">= 4096 when L1 is on",
        example: "67108864",
    },
    Field {
        name: "l1_max_ttl",
        kind: "seconds",
        rule: ">= 1; warning when above default_ttl with Redis",
        example: "300",
    },
    Field {
        name: "compression_threshold",
        kind: "bytes",
        rule: "0..=16777216; larger values are compressed when that saves space",
        example: "1000",
    },
    Field {
        name: "compression_algorithm",
        kind: "string",
        rule: "lz4 or zstd",
        example: "\"zstd\"",
    },
    Field {
        name: "compression_level",
        kind: "integer",
        rule: "zstd only: 1..=22 (unset means 6); must be unset with lz4",
        example: "3",
    },
    Field {
        name: "text_hash_threshold",
        kind: "characters",
        rule: "1..=100000; used by the legacy (Python) key format only",
        example: "1000",
    },
    Field {
        name: "hash_algorithm",
        kind: "string",
        rule: "sha256 or blake3",
        example: "\"sha256\"",
    },
    Field {
        name: "text_size_tiers",
        kind: "map small/medium/large → characters",
        rule: "0 < small < medium < large",
        example: "{ small = 500, medium = 5000, large = 50000 }",
    },
    Field {
        name: "max_value_size",
        kind: "bytes",
        rule: "1..=536870912",
        example: "67108864",
    },
    Field {
        name: "command_timeout_ms",
        kind: "milliseconds",
        rule: "1..=600000; the limit on every Redis command",
        example: "500",
    },
    Field {
        name: "connect_timeout_ms",
        kind: "milliseconds",
        rule: "1..=600000",
        example: "2000",
    },
    Field {
        name: "reconnect_min_delay_ms",
        kind: "milliseconds",
        rule: "0 < min <= reconnect_max_delay_ms; doubles per failed probe",
        example: "100",
    },
    Field {
        name: "reconnect_max_delay_ms",
        kind: "milliseconds",
        rule: "reconnect_min_delay_ms..=3600000",
        example: "1000",
    },
    Field {
        name: "breaker_enabled",
        kind: "boolean",
        rule: "off only to compare: every call then waits for its timeout during an outage",
        example: "true",
    },
    Field {
        name: "breaker_failure_threshold",
        kind: "count",
        rule: "1..=1000 consecutive command timeouts open the breaker (a connection error opens it at once)",
        example: "3",
    },
    Field {
        name: "replay_queue_capacity",
        kind: "count",
        rule: "0..=10000000; writes, deletes and invalidations kept while Redis is unavailable; when full the oldest write is dropped, never a removal (removals alone over the bound become one invalidation of the namespace); 0 turns replay off",
        example: "10000",
    },
    Field {
        name: "replay_queue_max_bytes",
        kind: "bytes",
        rule: "1024..=17179869184; the replay queue's bound in bytes of keys and frames, under the same rule",
        example: "67108864",
    },
    Field {
        name: "replay_horizon",
        kind: "seconds",
        rule: "1..=86400; how long Redis remembers a removal (a tombstone per key, the pattern of a pattern removal) so that no instance's replay brings it back; queued writes older than this are dropped",
        example: "600",
    },
    Field {
        name: "stale_window",
        kind: "seconds",
        rule: "0..=31536000 (0: off); answers are kept this long past their TTL (Redis TTL = TTL + window) for get_or_compute to serve, marked stale, when computing fails",
        example: "3600",
    },
    Field {
        name: "stale_after_ms",
        kind: "milliseconds, optional",
        rule: ">= 1, only with stale_window > 0; a computation running longer is abandoned for a stale answer when one exists",
        example: "5000",
    },
    Field {
        name: "stable_operations",
        kind: "list of operations",
        rule: "operation names; their medium texts are promoted into L1",
        example: "[\"sentiment\", \"summarize\"]",
    },
    Field {
        name: "promotion_hit_threshold",
        kind: "hits",
        rule: "any small or medium text of an operation with this many hits is promoted into L1",
        example: "10",
    },
    Field {
        name: "monitoring_enabled",
        kind: "bool",
        rule: "when true, records key-generation statistics and times one read in 16 for the latency summaries; hit, miss and store counts are exact either way",
        example: "true",
    },
    Field {
        name: "stats_snapshot_interval",
        kind: "seconds",
        rule: "0..=3600 (0: off); with Redis, the AI cache publishes a small snapshot of its counters (hit rates per operation, L1, Redis reads, breaker, replay queue) every this many seconds to `{namespace}~aux:stats:{instance}` with a TTL of three intervals, for `aicache stats`",
        example: "30",
    },
];

fn env_name(field: &str) -> String {
    format!("{ENV_PREFIX}{}", field.to_ascii_uppercase())
}

fn default_of(defaults: &serde_json::Value, field: &str) -> String {
    match defaults.get(field) {
        None | Some(serde_json::Value::Null) => "(unset)".to_string(),
        Some(value) => match toml::Value::try_from(value) {
            Ok(v) => v.to_string().replace('\n', " "),
            Err(_) => value.to_string(),
        },
    }
}

/// The Markdown of `docs/configuration.md`.
pub fn reference_markdown() -> String {
    let defaults = serde_json::to_value(AIResponseCacheConfig::default()).unwrap_or_default();
    let mut out = String::from(INTRO);
    out.push_str("\n## Fields\n\n| field | type | default | environment variable | rule | example |\n|---|---|---|---|---|---|\n");
    for f in FIELDS {
        let env = match f.name {
            "operation_ttls" => format!("`{}__<OPERATION>`", env_name(f.name)),
            "text_size_tiers" => format!("`{}__SMALL` (…`MEDIUM`, `LARGE`)", env_name(f.name)),
            "redis_url" => format!("`{}` (else `REDIS_URL`)", env_name(f.name)),
            name => format!("`{}`", env_name(name)),
        };
        let _ = writeln!(
            out,
            "| `{}` | {} | `{}` | {} | {} | `{}` |",
            f.name,
            f.kind,
            default_of(&defaults, f.name).replace('|', "\\|"),
            env,
            f.rule.replace('|', "\\|"),
            f.example
        );
    }
    out.push_str("\n## Presets\n\nA file (or `AICACHE_EXTENDS`) names the preset it `extends`; its own values and the environment override the preset's.\n\n");
    for preset in PRESETS {
        let config = serde_json::to_value(preset.config()).unwrap_or_default();
        let mut changed = Vec::new();
        if let (Some(base), Some(this)) = (defaults.as_object(), config.as_object()) {
            for (key, value) in this {
                if key != "extends" && base.get(key) != Some(value) {
                    changed.push(format!("`{key}` = `{}`", default_of(&config, key)));
                }
            }
        }
        let _ = writeln!(
            out,
            "### `{}`\n\n{}\n\nChanges from the defaults: {}.\n",
            preset.name,
            preset.reasoning,
            if changed.is_empty() {
                "none".to_string()
            } else {
                changed.join(", ")
            }
        );
    }
    out.push_str(GUIDES);
    out
}

const INTRO: &str = "# Configuration reference

<!-- Generated by `cargo xtask codegen` from crates/cache-config; do not edit by hand. -->

`AIResponseCacheConfig` (crate `cache-config`) holds every setting of an AI response cache.
`AIResponseCacheConfig::load(Some(path))` layers, later winning field by field (nested maps are
merged key by key):

1. the defaults below;
2. the preset the file `extends`, if any;
3. the file: TOML (`.toml`), YAML (`.yaml`, `.yml`) or JSON (`.json`);
4. the environment: `AICACHE_<FIELD>` (nested keys with `__`, for example
   `AICACHE_OPERATION_TTLS__QA=60`); `REDIS_URL` when `AICACHE_REDIS_URL` is unset;
   `AICACHE_REDIS_AUTH` is read as a raw string, so `0123` stays `0123`.

`validate()` reports every problem with the field, the value, what is allowed and how to fix it;
`build_ai_cache()` validates, then builds the cache, so the configuration always reaches it. A bad
file is an error naming the file and the key; secrets never appear in `Debug`, `Display`, errors or
serialized output.
";

const GUIDES: &str = "## Examples

A service in production, with the password from the environment (`AICACHE_REDIS_AUTH`):

```toml
extends = \"production\"
redis_url = \"redis://cache.internal:6379/0\"
tenant = \"billing\"

[operation_ttls]
summarize = 14400
qa = 900
```

A laptop, no Redis:

```yaml
extends: development
```

A test suite against a throwaway Redis:

```json
{\"extends\": \"testing\", \"redis_url\": \"redis://127.0.0.1:6390\"}
```

## Migrating from the Python configuration

| Python | aicache |
|---|---|
| `CACHE_REDIS_URL` (the only URL the app read) | `AICACHE_REDIS_URL`, or `REDIS_URL` |
| `REDIS_PASSWORD`, `redis_auth` | `AICACHE_REDIS_AUTH` (`redis_auth`) |
| `AI_CACHE_DEFAULT_TTL`, `AI_CACHE_MEMORY_CACHE_SIZE`, `AI_CACHE_TEXT_HASH_THRESHOLD`, `AI_CACHE_COMPRESSION_THRESHOLD`, `AI_CACHE_HASH_ALGORITHM` | `AICACHE_DEFAULT_TTL`, `AICACHE_MEMORY_CACHE_SIZE`, `AICACHE_TEXT_HASH_THRESHOLD`, `AICACHE_COMPRESSION_THRESHOLD`, `AICACHE_HASH_ALGORITHM` |
| `AI_CACHE_TEXT_SIZE_TIERS` / `AI_CACHE_OPERATION_TTLS` (JSON) | `AICACHE_TEXT_SIZE_TIERS__SMALL=…`, `AICACHE_OPERATION_TTLS__SUMMARIZE=…` |
| `AI_CACHE_COMPRESSION_LEVEL` (zlib 1..9) | `AICACHE_COMPRESSION_LEVEL` with `compression_algorithm = \"zstd\"` (1..=22); LZ4 has no levels |
| `AI_CACHE_ENABLE_L1_CACHE` | `AICACHE_ENABLE_L1_CACHE` |
| `l1_cache_size` | `memory_cache_size` |
| presets `development` / `testing` / `production` | `development` / `testing` / `production` (testing is its own preset here, not development) |
| presets `simple`, `ai-development`, `ai-production` | `embedded`, `development`, `production` |
| `CACHE_CUSTOM_CONFIG` (JSON) | a file, or `AIResponseCacheConfig::merge` |

In the original none of this reached the cache (its factory ignored the presets' AI settings and
`REDIS_URL`); here `build_ai_cache()` applies every field, and tests observe the TTLs, compression,
the L1 size, the tier thresholds, the key prefix and the password take effect against a real Redis.

## Performance tuning

- `memory_cache_size` / `memory_cache_bytes`: an L1 hit costs about a microsecond; size L1 for the
  hot set of small and medium answers (promotion rules keep large ones out).
- `l1_max_ttl`: how stale another instance's L1 may be after an invalidation; lower it if
  answers change often.
- `compression_threshold`: LZ4 runs at GB/s; the default 1000 bytes trades little CPU for Redis
  memory and bandwidth on long answers. `compression_algorithm = \"zstd\"` stores long answers
  smaller at some CPU cost; its `compression_level` trades more CPU (19) for smaller still.
- `command_timeout_ms`: the most a slow Redis can add to a request; keep it well under the model's
  latency.
- `hash_algorithm = \"blake3\"`: faster keys for texts over a few kilobytes.
- `ttl_jitter`: spreads the expiry of entries written together, so the model is not hit by a wave
  of misses at once.

## Best practices

- Keep the password out of files: set `AICACHE_REDIS_AUTH` in the environment.
- Give each service a `tenant` when several share one Redis.
- Version the prompt and the model in the request (`AiRequest::with_model`,
  `with_prompt_version`): a change retires old answers at once.
- Run `validate()` at startup (the `build_*` methods do) and refuse to start on errors.
";

#[cfg(test)]
mod tests {
    use super::*;

    /// `cargo xtask codegen` runs this with `UPDATE_CONFIG_DOCS=1` to write the file.
    #[test]
    fn docs_configuration_md_is_up_to_date() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/configuration.md");
        let generated = reference_markdown();
        if std::env::var_os("UPDATE_CONFIG_DOCS").is_some() {
            std::fs::write(path, &generated).unwrap();
            return;
        }
        let current = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            current == generated,
            "docs/configuration.md is stale: run `cargo xtask codegen`"
        );
    }

    #[test]
    fn every_field_is_documented_and_nothing_else() {
        // Optional fields serialize only when set: set them all.
        let config = AIResponseCacheConfig {
            extends: Some("testing".into()),
            redis_url: Some("redis://h".into()),
            redis_cluster_urls: vec!["redis://c:7000".into()],
            redis_auth: Some(crate::Secret::new("x")),
            tenant: Some("t".into()),
            layout_upgrade_until: Some("2026-12-31T00:00:00Z".into()),
            key_prefix: Some("p".into()),
            compression_level: Some(3),
            redis_username: Some("u".into()),
            tls_ca_file: Some("ca.pem".into()),
            tls_client_cert_file: Some("c.pem".into()),
            tls_client_key_file: Some("c.key".into()),
            encryption_key: Some(crate::Secret::new("k")),
            encryption_previous_key: Some(crate::Secret::new("k0")),
            stale_after_ms: Some(1),
            ..AIResponseCacheConfig::default()
        };
        let serialized = serde_json::to_value(&config).unwrap();
        let mut fields: Vec<&str> = serialized
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut documented: Vec<&str> = FIELDS.iter().map(|f| f.name).collect();
        fields.sort_unstable();
        documented.sort_unstable();
        assert_eq!(fields, documented);
    }
}
