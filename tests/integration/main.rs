//! Cross-crate tests against real `redis-server` processes started by cache-testkit.
//!
//! One binary on purpose: each integration-test binary relinks tokio and redis.

mod conformance;
mod faults;
mod support;
