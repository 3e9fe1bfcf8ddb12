//! aicache's configuration.
//!
//! [`AIResponseCacheConfig`] holds every setting of an AI response cache with the seed's defaults
//! (and the departures of the design: Redis unset means memory-only; `compression_level` unset).
//! It is layered with [figment]: defaults → the preset a file `extends` → the file (TOML, YAML or
//! JSON) → the environment (`AICACHE_*`, nested keys with `__`; `REDIS_URL` when
//! `AICACHE_REDIS_URL` is unset). [`validate`](AIResponseCacheConfig::validate) names the field,
//! the value, what is allowed and how to fix it; the `build_*` methods turn a valid configuration
//! into a running cache, so configuration always reaches the cache. `docs/configuration.md` is
//! generated from [`reference_markdown`] by `cargo xtask codegen`.
//!
//! ```
//! use cache_config::AIResponseCacheConfig;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> cache_core::Result<()> {
//! let config = AIResponseCacheConfig::from_yaml("extends: development\ndefault_ttl: 600\n")?;
//! assert_eq!(config.memory_cache_size, 50, "from the development preset");
//! assert_eq!(config.default_ttl, 600, "from the file");
//! let cache = config.build_ai_cache::<String>().await?;
//! # let _ = cache;
//! # Ok(()) }
//! ```

mod build;
mod config;
mod load;
mod presets;
mod reference;
mod snapshot;
mod validate;

pub use build::connect_ai_cache;
pub use cache_security::Secret;
pub use config::{AIResponseCacheConfig, TextSizeTiers};
pub use load::{ENV_PREFIX, FileFormat};
pub use presets::{PRESETS, Preset, preset};
pub use reference::reference_markdown;
