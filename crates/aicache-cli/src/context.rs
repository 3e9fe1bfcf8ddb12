//! The configuration a command runs with, and the connections it opens from it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use aicache::ai::AIResponseCache;
use aicache::{AIResponseCacheConfig, FrameStore, L2Health, RedisCacheConfig, RedisStore, Secret};
use serde_json::{Value, json};

use crate::exit::{CliError, UNREACHABLE};

/// A loaded configuration and the output mode.
#[derive(Debug)]
pub(crate) struct Context {
    pub(crate) config: AIResponseCacheConfig,
    pub(crate) json: bool,
    pub(crate) file: Option<PathBuf>,
}

impl Context {
    /// Defaults, the file, `AICACHE_*`, then the command line's URL and password file.
    pub(crate) fn load(
        file: Option<&Path>,
        (redis_url, cluster_urls): (Option<&str>, &[String]),
        password_file: Option<&Path>,
        json: bool,
    ) -> Result<Self, CliError> {
        let mut config = AIResponseCacheConfig::load(file)?;
        let given = redis_url
            .into_iter()
            .chain(cluster_urls.iter().map(String::as_str));
        if given.into_iter().any(|url| aicache::redact_url(url) != url) {
            return Err(CliError::usage(
                "--redis-url and --redis-cluster-urls must not hold a password (it would sit in \
                 the shell history and the process list): use --password-file, AICACHE_REDIS_AUTH \
                 or the config file",
            ));
        }
        if let Some(url) = redis_url {
            config.redis_url = Some(url.to_owned());
            config.redis_cluster_urls.clear();
        }
        if !cluster_urls.is_empty() {
            config.redis_cluster_urls = cluster_urls.to_vec();
            if redis_url.is_none() {
                config.redis_url = None;
            }
        }
        if let Some(path) = password_file {
            let password = std::fs::read_to_string(path).map_err(|e| {
                CliError::usage(format!(
                    "cannot read the password file {}: {e}",
                    path.display()
                ))
            })?;
            config.redis_auth = Some(Secret::new(password.trim_end_matches(['\r', '\n'])));
        }
        Ok(Self {
            config,
            json,
            file: file.map(Path::to_path_buf),
        })
    }

    /// One side of a migration: that file alone, without the environment (which would make both
    /// sides the same server).
    pub(crate) fn load_file_only(file: &Path, json: bool) -> Result<Self, CliError> {
        Ok(Self {
            config: AIResponseCacheConfig::load_with_env(Some(file), std::iter::empty())?,
            json,
            file: Some(file.to_path_buf()),
        })
    }

    /// Fails with every finding when the configuration is invalid (exit 2).
    pub(crate) fn validated(&self) -> Result<(), CliError> {
        let result = self.config.validate();
        if result.is_valid() {
            return Ok(());
        }
        let findings: Vec<Value> = result
            .errors
            .iter()
            .map(|i| json!({"field": i.field, "value": i.value, "allowed": i.allowed, "fix": i.hint}))
            .collect();
        let text: Vec<String> = result
            .errors
            .iter()
            .map(|i| {
                format!(
                    "{} = {:?}: allowed {}; {}",
                    i.field, i.value, i.allowed, i.hint
                )
            })
            .collect();
        Err(
            CliError::usage(format!("invalid configuration: {}", text.join("; ")))
                .with_details(json!({"errors": findings})),
        )
    }

    /// The Redis settings; a configuration without Redis is a usage error.
    pub(crate) fn redis(&self) -> Result<RedisCacheConfig, CliError> {
        self.validated()?;
        if !self.config.uses_redis() {
            return Err(CliError::usage(
                "no Redis configured (memory-only): set --redis-url, AICACHE_REDIS_URL or redis_url \
                 (a cluster: AICACHE_REDIS_CLUSTER_URLS or redis_cluster_urls)",
            ));
        }
        Ok(self.config.to_redis_cache_config()?)
    }

    /// The AI layer's settings.
    pub(crate) fn ai_config(&self) -> Result<aicache::AiCacheConfig, CliError> {
        Ok(self.config.to_ai_cache_config()?)
    }

    /// A store over `namespace`, refusing to go on when Redis does not answer (exit 3): the CLI
    /// never queues work for later.
    pub(crate) async fn store(&self, namespace: &str) -> Result<Arc<RedisStore>, CliError> {
        // No replay queue: what Redis cannot take now fails, it is never kept for a later that
        // this process will not see.
        let config = self
            .redis()?
            .with_key_prefix(namespace)
            .with_replay_queue_capacity(0);
        let store = RedisStore::connect(&config, None).await?;
        reachable(&store).await?;
        Ok(Arc::new(store))
    }

    /// A store over the AI namespace, and the namespace.
    pub(crate) async fn ai_store(&self) -> Result<(Arc<RedisStore>, String), CliError> {
        let namespace = self.ai_config()?.namespace();
        Ok((self.store(&namespace).await?, namespace))
    }

    /// An AI cache over `store` (no L1: the CLI is not a cache of its own), with a store over
    /// aicache 0.1's tenant location during the layout upgrade window, so that removals and
    /// conversions reach it too.
    pub(crate) async fn ai_cache(
        &self,
        store: Arc<RedisStore>,
    ) -> Result<AIResponseCache, CliError> {
        let config = self.ai_config()?;
        let old = config.pre_isolation_namespace();
        let mut builder = AIResponseCache::builder(config.with_l1(None)).store(store);
        if let Some(old) = old {
            builder = builder.pre_isolation_store(self.store(&old).await?);
        }
        Ok(builder.build()?)
    }
}

/// Exit 3 unless the store's server answers now.
pub(crate) async fn reachable(store: &RedisStore) -> Result<(), CliError> {
    match store.health().await.l2 {
        L2Health::Connected { .. } => Ok(()),
        L2Health::Unavailable { last_error, .. } => Err(CliError::new(
            UNREACHABLE,
            format!(
                "Redis is unreachable ({}); nothing was done",
                last_error.unwrap_or_else(|| "no answer".to_owned())
            ),
        )),
        _ => Err(CliError::new(UNREACHABLE, "no Redis to reach")),
    }
}
