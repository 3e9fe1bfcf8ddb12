//! Cross-crate tests against real `redis-server` processes started by cache-testkit.
//!
//! One binary on purpose: each integration-test binary relinks tokio and redis.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a failure should panic with its error"
)]
#![allow(
    clippy::unused_async,
    reason = "conformance_suite! awaits every setup, async or not"
)]

mod ai;
mod cluster;
mod coherence;
mod config;
mod conformance;
mod faults;
mod fencing;
mod gated;
mod monitoring;
mod moves;
mod namespaces;
mod offload;
mod partition;
mod security;
mod stale;
mod support;

/// What the AI suites (`ai`) run against here: one Redis server each (`cluster::ai_suites` runs
/// them on a cluster).
mod under_test {
    pub(crate) use crate::support::{holds_value, keys_with_values, raw, server, test_config};
    pub(crate) use cache_testkit::RedisServer as Redis;
}
