//! `aicache health` and `aicache security check`.

use aicache::{ConnectTimeouts, FrameStore, L2Health, RedisCacheSecurityManager};
use serde_json::json;

use crate::context::Context;
use crate::exit::{CliError, UNREACHABLE};
use crate::output::Output;

pub(crate) async fn health(ctx: &Context) -> Result<Output, CliError> {
    let namespace = ctx.ai_config()?.namespace();
    let config = ctx.redis()?.with_key_prefix(&namespace);
    let store = aicache::RedisStore::connect(&config, None).await?;
    let report = store.health().await;
    // A cluster's primaries, each with its own answer and breaker.
    let nodes: Vec<_> = report
        .nodes
        .iter()
        .map(|node| {
            let (state, latency_ms) = match &node.l2 {
                L2Health::Connected { latency } => {
                    ("connected", Some(latency.as_secs_f64() * 1000.0))
                }
                _ => ("unavailable", None),
            };
            json!({"address": node.address, "redis": state, "latency_ms": latency_ms,
                   "breaker": format!("{:?}", node.breaker)})
        })
        .collect();
    let node_lines: String = report
        .nodes
        .iter()
        .map(|node| {
            format!(
                "  primary {}: {:?}, breaker {:?}\n",
                node.address, node.l2, node.breaker
            )
        })
        .collect();
    match &report.l2 {
        L2Health::Connected { latency } => Ok(Output::new(
            format!(
                "Redis answers in {latency:.1?}; breaker {:?}; replay queue {}; namespace {namespace}\n{node_lines}",
                report.breaker, report.replay_queue_depth
            ),
            json!({"ok": true, "redis": "connected", "latency_ms": latency.as_secs_f64() * 1000.0,
                   "breaker": format!("{:?}", report.breaker), "replay_queue_depth": report.replay_queue_depth,
                   "namespace": namespace, "nodes": nodes}),
        )),
        L2Health::Unavailable { last_error, .. } => Err(CliError::new(
            UNREACHABLE,
            format!(
                "Redis is unreachable: {}",
                last_error.clone().unwrap_or_else(|| "no answer".to_owned())
            ),
        )
        .with_details(json!({"redis": "unavailable", "last_error": last_error}))),
        _ => Err(CliError::new(UNREACHABLE, "no Redis configured")),
    }
}

pub(crate) async fn security(ctx: &Context) -> Result<Output, CliError> {
    let redis = ctx.redis()?;
    // A cluster is inspected through its first seed: every node has the same users and TLS.
    let url = redis
        .redis_url
        .clone()
        .or_else(|| redis.redis_cluster_urls.first().cloned())
        .unwrap_or_default();
    let manager = RedisCacheSecurityManager::new(
        &url,
        redis.security.clone(),
        ConnectTimeouts::new(redis.connect_timeout, redis.reconnect_max_delay),
        redis.command_timeout,
    )?;
    let result = manager.validate_connection_security().await?;
    let mut text = format!(
        "security score {}/100: TLS {}, certificates verified {}, user {}\n",
        result.score, result.tls, result.certificates_verified, result.user
    );
    for finding in &result.vulnerabilities {
        text.push_str(&format!("- {finding:?}\n"));
    }
    for recommendation in &result.recommendations {
        text.push_str(&format!("  recommendation: {recommendation}\n"));
    }
    let doc = serde_json::to_value(&result).unwrap_or_default();
    Ok(Output::new(text, json!({"ok": true, "security": doc})))
}
