//! Configuration: files, environment, presets and validation, and proof that every setting
//! reaches the cache (a real Redis).

use std::path::PathBuf;

use aicache::{
    AIResponseCacheConfig, AiRequest, CacheInterface, ErrorKind, RequestControls, TextTier,
};
use cache_testkit::{RedisServer, ServerConfig};
use redis::AsyncCommands;
use serde_json::{Value, json};

use crate::support::{raw, server};

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

mod loading;
mod rules;
