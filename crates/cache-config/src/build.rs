//! Turning a configuration into caches (the seed's `to_ai_cache_kwargs` and
//! `to_generic_cache_kwargs`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cache_ai::{AIResponseCache, AiCacheConfig, HashAlgorithm, TierThresholds};
use cache_core::frame::Compression;
use cache_core::{Recorder, Result};
use cache_memory::MemoryCacheConfig;
use cache_redis::{GenericRedisCache, RedisCacheConfig, RedisStore};
use cache_security::{AeadAlgorithm, EncryptionConfig, SecurityConfig, TlsConfig};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::config::AIResponseCacheConfig;

/// Builds an AI cache over the Redis of `redis` (its URL, security, timeouts, breaker and replay
/// settings; the key prefix becomes the AI cache's namespace), memory-only without it, reporting
/// to `recorder`.
///
/// # Errors
/// As [`AIResponseCacheBuilder::build`](cache_ai::AIResponseCacheBuilder::build) and
/// [`RedisStore::connect`].
pub async fn connect_ai_cache<T>(
    ai: AiCacheConfig,
    redis: Option<&RedisCacheConfig>,
    recorder: Option<Arc<dyn Recorder>>,
) -> Result<AIResponseCache<T>>
where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    cache_memory::calibrate_clock().await;
    let mut builder = AIResponseCache::builder(ai.clone());
    if let Some(recorder) = &recorder {
        builder = builder.recorder(Arc::clone(recorder));
    }
    if let Some(redis) = redis.filter(|r| r.uses_redis()) {
        let mut store_config = redis.clone().with_l1(None);
        store_config.key_prefix = ai.namespace();
        let store = RedisStore::connect(&store_config, recorder.clone()).await?;
        builder = builder.store(Arc::new(store));
        // During the layout upgrade window, a second store over 0.1's tenant location.
        if let Some(old) = ai.pre_isolation_namespace() {
            store_config.key_prefix = old;
            let old_store = RedisStore::connect(&store_config, recorder).await?;
            builder = builder.pre_isolation_store(Arc::new(old_store));
        }
    }
    builder.build()
}

impl AIResponseCacheConfig {
    /// Whether a shared tier is configured: `redis_url` or `redis_cluster_urls`.
    pub fn uses_redis(&self) -> bool {
        self.redis_url.is_some() || !self.redis_cluster_urls.is_empty()
    }

    /// The URL that decides TLS and the production checks: `redis_url`, else the first
    /// cluster seed.
    pub fn server_url(&self) -> Option<&str> {
        self.redis_url
            .as_deref()
            .or_else(|| self.redis_cluster_urls.first().map(String::as_str))
    }

    /// The memory tier's settings, when L1 is enabled.
    pub fn to_memory_cache_config(&self) -> Option<MemoryCacheConfig> {
        self.enable_l1_cache.then(|| {
            MemoryCacheConfig::default()
                .with_max_entries(self.memory_cache_size)
                .with_max_bytes(self.memory_cache_bytes)
                .with_default_ttl(Duration::from_secs(self.default_ttl))
        })
    }

    /// The generic cache's namespace: `key_prefix`, else `aicache:kv` (with a tenant:
    /// `aicache:t:{tenant}:kv`).
    pub fn generic_key_prefix(&self) -> String {
        if let Some(prefix) = &self.key_prefix {
            return prefix.clone();
        }
        // Unchecked: an invalid tenant fails validation before any cache is built.
        cache_core::Namespace::layout(
            self.tenant.as_deref(),
            cache_core::namespace::GENERIC_SEGMENT,
        )
    }

    /// The generic (Redis tier) settings.
    ///
    /// # Errors
    /// [`cache_core::ErrorKind::Config`] listing every validation error.
    pub fn to_redis_cache_config(&self) -> Result<RedisCacheConfig> {
        let checked = self.validate();
        // Warnings do not stop the build, but an operator must see them (an insecure production
        // override, TLS verification off, …). Secret values are already `***` in them.
        for warning in &checked.warnings {
            tracing::warn!(
                field = %warning.field,
                value = %warning.value,
                allowed = %warning.allowed,
                hint = %warning.hint,
                "configuration warning"
            );
        }
        checked.into_result()?;
        let mut redis = RedisCacheConfig::default()
            .with_key_prefix(self.generic_key_prefix())
            .with_reconnect_delays(
                Duration::from_millis(self.reconnect_min_delay_ms),
                Duration::from_millis(self.reconnect_max_delay_ms),
            )
            .with_default_ttl(Duration::from_secs(self.default_ttl))
            .with_l1(self.to_memory_cache_config())
            .with_l1_max_ttl(Duration::from_secs(self.l1_max_ttl))
            .with_compression_threshold(self.compression_threshold)
            .with_compression(match self.compression_algorithm.as_str() {
                "zstd" => Compression::Zstd,
                _ => Compression::Lz4,
            })
            .with_compression_level(
                self.compression_level
                    .and_then(|level| i32::try_from(level).ok()),
            )
            .with_max_value_size(self.max_value_size)
            .with_command_timeout(Duration::from_millis(self.command_timeout_ms))
            .with_connect_timeout(Duration::from_millis(self.connect_timeout_ms))
            .with_breaker(self.breaker_enabled, self.breaker_failure_threshold)
            .with_replay_queue_capacity(self.replay_queue_capacity)
            .with_replay_queue_max_bytes(self.replay_queue_max_bytes)
            .with_replay_horizon(Duration::from_secs(self.replay_horizon));
        if self.uses_redis() {
            if let Some(url) = &self.redis_url {
                redis = redis.with_redis_url(url.clone());
            }
            redis = redis
                .with_redis_cluster_urls(self.redis_cluster_urls.iter().cloned())
                .with_security(self.security_config())
                .with_encryption(self.encryption_config());
        }
        Ok(redis)
    }

    /// The security settings: AUTH password or ACL user, and TLS when `use_tls` is set or the
    /// URL is `rediss://`.
    pub fn security_config(&self) -> SecurityConfig {
        let mut security = SecurityConfig::default();
        security.username.clone_from(&self.redis_username);
        security.password.clone_from(&self.redis_auth);
        let tls_in_url = self.server_url().is_some_and(cache_redis::url_uses_tls);
        if self.use_tls || tls_in_url {
            let mut tls = TlsConfig::default();
            tls.ca_file = self.tls_ca_file.as_ref().map(PathBuf::from);
            tls.client_cert_file = self.tls_client_cert_file.as_ref().map(PathBuf::from);
            tls.client_key_file = self.tls_client_key_file.as_ref().map(PathBuf::from);
            tls.verify_certificates = self.tls_verify_certificates;
            tls.tls13_only = self.tls13_only;
            security = security.with_tls(tls);
        }
        security
    }

    /// Encryption at rest, when `encryption_key` is set.
    pub fn encryption_config(&self) -> Option<EncryptionConfig> {
        let key = self.encryption_key.clone()?;
        let algorithm = match self.encryption_algorithm.as_str() {
            "aes256gcm" => AeadAlgorithm::Aes256Gcm,
            _ => AeadAlgorithm::ChaCha20Poly1305,
        };
        let config = match &self.encryption_previous_key {
            Some(previous) => {
                EncryptionConfig::new(algorithm, self.encryption_previous_key_id, previous.clone())
                    .rotate_to(self.encryption_key_id, key)
            }
            None => EncryptionConfig::new(algorithm, self.encryption_key_id, key),
        };
        Some(config)
    }

    /// The AI cache's settings.
    ///
    /// # Errors
    /// [`cache_core::ErrorKind::Config`] listing every validation error.
    pub fn to_ai_cache_config(&self) -> Result<AiCacheConfig> {
        let tiers = self.text_size_tiers;
        let redis = self.to_redis_cache_config()?;
        let mut config = AiCacheConfig::default()
            .with_default_ttl(redis.default_ttl)
            .with_l1_max_ttl(redis.l1_max_ttl)
            .with_frames(redis.frame_settings())
            .with_encryption(redis.encryption)
            .with_l1(self.to_memory_cache_config())
            .with_hash_algorithm(HashAlgorithm::parse(&self.hash_algorithm)?)
            .with_text_size_tiers(TierThresholds::new(tiers.small, tiers.medium, tiers.large))
            .with_ttl_jitter(self.ttl_jitter)
            .with_monitoring(self.monitoring_enabled);
        config.operation_ttls = self
            .operation_ttls
            .iter()
            .map(|(op, secs)| (op.clone(), Duration::from_secs(*secs)))
            .collect();
        config.text_hash_threshold = self.text_hash_threshold;
        config.stable_operations.clone_from(&self.stable_operations);
        config.promotion_hit_threshold = self.promotion_hit_threshold;
        config = config.with_serve_stale(
            Duration::from_secs(self.stale_window),
            self.stale_after_ms.map(Duration::from_millis),
        );
        if let Some(tenant) = &self.tenant {
            config = config.with_tenant(tenant.clone());
        }
        if let Some(until) = &self.layout_upgrade_until {
            let parsed = humantime::parse_rfc3339_weak(until).map_err(|e| {
                cache_core::Error::new(cache_core::ErrorKind::Config, "not an RFC 3339 time")
                    .with_context("field", "layout_upgrade_until")
                    .with_context("value", until)
                    .with_source(e)
            })?;
            config = config.with_layout_upgrade_until(Some(parsed));
        }
        Ok(config)
    }

    /// Validates and builds the AI cache, over Redis when `redis_url` is set.
    ///
    /// # Errors
    /// [`cache_core::ErrorKind::Config`] for an invalid configuration; Redis refusing the
    /// connection ([`cache_core::ErrorKind::Auth`], [`cache_core::ErrorKind::Tls`]).
    pub async fn build_ai_cache<T>(&self) -> Result<AIResponseCache<T>>
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        self.build_ai_cache_with(None).await
    }

    /// [`build_ai_cache`](Self::build_ai_cache), reporting to `recorder` (the cache and its Redis
    /// store's breaker).
    ///
    /// # Errors
    /// As [`build_ai_cache`](Self::build_ai_cache).
    pub async fn build_ai_cache_with<T>(
        &self,
        recorder: Option<Arc<dyn Recorder>>,
    ) -> Result<AIResponseCache<T>>
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        let ai = self.to_ai_cache_config()?;
        let redis = self
            .uses_redis()
            .then(|| self.to_redis_cache_config())
            .transpose()?;
        let cache = connect_ai_cache(ai.clone(), redis.as_ref(), recorder).await?;
        if let (Some(redis), true) = (redis, self.stats_snapshot_interval > 0) {
            let mut store_config = redis.with_l1(None);
            store_config.key_prefix = ai.namespace();
            let store = RedisStore::connect(&store_config, None).await?;
            crate::snapshot::publish_every(
                &cache,
                store,
                Duration::from_secs(self.stats_snapshot_interval),
            );
        }
        Ok(cache)
    }

    /// Validates and builds the generic two-tier cache.
    ///
    /// # Errors
    /// As [`build_ai_cache`](Self::build_ai_cache).
    pub async fn build_generic_cache(&self) -> Result<GenericRedisCache> {
        GenericRedisCache::connect(self.to_redis_cache_config()?).await
    }
}
