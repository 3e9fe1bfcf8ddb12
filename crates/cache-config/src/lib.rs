//! aicache's layered configuration.
//!
//! This crate will hold `AIResponseCacheConfig`: defaults, presets (`development`, `testing`,
//! `production`), TOML/YAML/JSON files, `AICACHE_*` environment variables merged with figment,
//! validation into `cache_core::ValidationResult`, and the builders that turn a configuration into
//! a running cache. See the configuration issue and `ARCHITECTURE.md`.
