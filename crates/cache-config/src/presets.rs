//! Presets: named starting points that a configuration `extends`.

use crate::config::AIResponseCacheConfig;

/// A named preset and why it is set the way it is.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Preset {
    /// The name used in `extends`.
    pub name: &'static str,
    /// Why its values are what they are.
    pub reasoning: &'static str,
    apply: fn(&mut AIResponseCacheConfig),
}

impl Preset {
    /// The preset's configuration (the defaults with the preset applied).
    pub fn config(&self) -> AIResponseCacheConfig {
        let mut config = AIResponseCacheConfig::default();
        (self.apply)(&mut config);
        config.extends = Some(self.name.to_string());
        config
    }
}

/// Every preset.
pub const PRESETS: &[Preset] = &[
    Preset {
        name: "development",
        reasoning: "Memory-only (no Redis needed on a laptop), 30-minute TTLs and a 50-entry L1 so \
                    that prompt changes show up quickly and memory stays small; L1 copies live at \
                    most a minute.",
        apply: |c| {
            c.default_ttl = 1800;
            c.memory_cache_size = 50;
            c.l1_max_ttl = 60;
            for ttl in c.operation_ttls.values_mut() {
                *ttl = (*ttl).min(1800);
            }
        },
    },
    Preset {
        name: "testing",
        reasoning: "Memory-only and deterministic: 5-minute TTLs for every operation, no jitter, \
                    a 10-entry L1 so eviction paths run in tests, short timeouts so a missing \
                    server fails fast.",
        apply: |c| {
            c.default_ttl = 300;
            c.memory_cache_size = 10;
            c.l1_max_ttl = 60;
            c.ttl_jitter = 0.0;
            c.command_timeout_ms = 250;
            c.connect_timeout_ms = 500;
            for ttl in c.operation_ttls.values_mut() {
                *ttl = 300;
            }
        },
    },
    Preset {
        name: "production",
        reasoning: "Redis is required (answers are shared by every instance); 2-hour default TTL, \
                    a 200-entry/128 MiB L1 bounded to 5 minutes so other instances' invalidations \
                    are seen quickly, 10 % TTL jitter so entries written together do not expire \
                    together, a 250 ms command timeout so a slow Redis never slows the service \
                    more than that. Fail-secure: validation refuses to start without a Redis \
                    password (AUTH or an ACL user), TLS and certificate verification, unless \
                    allow_insecure_production is set.",
        apply: |c| {
            c.default_ttl = 7200;
            c.memory_cache_size = 200;
            c.memory_cache_bytes = 128 * 1024 * 1024;
            c.l1_max_ttl = 300;
            c.ttl_jitter = 0.1;
            c.command_timeout_ms = 250;
        },
    },
    Preset {
        name: "embedded",
        reasoning: "A single process with no Redis: a large L1 (10,000 entries, 256 MiB) is the \
                    whole cache, with the seed's TTLs.",
        apply: |c| {
            c.redis_url = None;
            c.memory_cache_size = 10_000;
            c.memory_cache_bytes = 256 * 1024 * 1024;
        },
    },
];

/// The preset called `name`.
pub fn preset(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.name == name)
}
