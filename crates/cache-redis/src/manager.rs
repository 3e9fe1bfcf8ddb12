//! [`RedisCacheSecurityManager`]: probes a live connection to Redis (TLS, the user, what it may
//! run) and scores it with cache-security's rules.

use std::fmt;
use std::time::Duration;

use cache_core::{Result, ValidationResult};
use cache_security::{ProbeReport, SecurityConfig, SecurityValidationResult, assess};
use redis::aio::MultiplexedConnection;

use crate::client::{ConnectTimeouts, ConnectionFactory, map_redis_error, with_timeout};
use crate::pattern::WalkPool;

/// Inspects the live connection to Redis that the cache's settings produce, and checks the
/// fail-secure requirements of an environment.
///
/// Unlike the original (whose `connect()` bypassed its security manager), the manager uses the
/// very connection factory the cache uses, so what it reports is what the cache gets.
pub struct RedisCacheSecurityManager {
    factory: ConnectionFactory,
    /// Probe connections, kept between checks (a check does not pay TCP + TLS + AUTH anew).
    probes: WalkPool,
    security: SecurityConfig,
    command_timeout: Duration,
}

impl fmt::Debug for RedisCacheSecurityManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisCacheSecurityManager")
            .field("url", &self.factory.redacted_url())
            .field("security", &self.security)
            .finish_non_exhaustive()
    }
}

/// The commands whose permission is checked, each with harmless arguments (it is queued inside
/// `MULTI` and discarded, never run).
const DANGEROUS: &[(&str, &[&str])] = &[
    ("FLUSHALL", &["FLUSHALL"]),
    ("FLUSHDB", &["FLUSHDB"]),
    ("KEYS", &["KEYS", "aicache-permission-probe"]),
    ("CONFIG GET", &["CONFIG", "GET", "aicache-permission-probe"]),
    (
        "CONFIG SET",
        &["CONFIG", "SET", "aicache-permission-probe", "x"],
    ),
];

/// What the answer to a command queued inside `MULTI` says about the user's permission.
fn permission(reply: &redis::RedisResult<redis::Value>) -> Option<bool> {
    match reply {
        // QUEUED: the ACL let it through; DISCARD drops it unrun.
        Ok(_) => Some(true),
        Err(e) if e.code() == Some("NOPERM") => Some(false),
        // Renamed away or disabled by the operator (or a managed service): not available.
        Err(e) if e.to_string().contains("unknown command") => Some(false),
        Err(_) => None,
    }
}

impl RedisCacheSecurityManager {
    /// A manager for the server at `url` with `security` (as the cache would connect).
    ///
    /// # Errors
    /// [`cache_core::ErrorKind::Config`] for an invalid URL or security setting.
    pub fn new(
        url: &str,
        security: SecurityConfig,
        timeouts: ConnectTimeouts,
        command_timeout: Duration,
    ) -> Result<Self> {
        let factory = ConnectionFactory::new(url, &security, timeouts)?;
        Ok(Self {
            probes: WalkPool::new(factory.clone(), command_timeout, timeouts.connect)?,
            factory,
            security,
            command_timeout,
        })
    }

    /// The fail-secure requirements of `environment`: `production` requires a password, TLS and
    /// certificate verification (each missing one an error naming its field); other
    /// environments require nothing. Callers refuse to start on errors unless the operator
    /// overrides explicitly.
    pub fn check_requirements(&self, environment: &str) -> ValidationResult {
        if environment.eq_ignore_ascii_case("production") {
            self.security
                .production_requirements(self.factory.uses_tls(), self.factory.has_password())
        } else {
            ValidationResult::new()
        }
    }

    async fn ask(
        &self,
        conn: &mut MultiplexedConnection,
        what: &'static str,
        args: &[&str],
    ) -> Result<redis::RedisResult<redis::Value>> {
        let mut cmd = redis::cmd(args[0]);
        for arg in &args[1..] {
            cmd.arg(*arg);
        }
        with_timeout(self.command_timeout, what, async {
            Ok(cmd.query_async::<redis::Value>(conn).await)
        })
        .await
    }

    /// Connects as the cache would and inspects the connection: TLS, the authenticated user
    /// (`ACL WHOAMI`), and whether that user may run FLUSHALL, FLUSHDB, KEYS, CONFIG GET or
    /// CONFIG SET.
    ///
    /// No dangerous or admin command is ever run. Each is sent inside a transaction that is then
    /// discarded (`MULTI`, the command, `DISCARD`): Redis checks the ACL when it queues a
    /// command, so the answer is `QUEUED` (allowed) or `NOPERM` (denied), and `DISCARD` drops
    /// the queue unrun. A user that may not use `MULTI` gets "not verified" answers (`None`).
    /// Denied checks leave entries in the server's `ACL LOG`, as any denied command does.
    ///
    /// # Errors
    /// Connecting fails: [`cache_core::ErrorKind::Auth`], [`cache_core::ErrorKind::Tls`],
    /// [`cache_core::ErrorKind::Connection`] or a timeout.
    pub async fn validate_connection_security(&self) -> Result<SecurityValidationResult> {
        let mut conn = self.probes.get().await?;
        let report = self.probe(&mut conn).await;
        if report.is_err() {
            // A probe that failed part-way may have left the connection inside MULTI.
            drop(deadpool::managed::Object::take(conn));
        }
        report
    }

    async fn probe(&self, conn: &mut MultiplexedConnection) -> Result<SecurityValidationResult> {
        let user = match self.ask(conn, "ACL WHOAMI", &["ACL", "WHOAMI"]).await? {
            Ok(redis::Value::BulkString(name)) => String::from_utf8_lossy(&name).into_owned(),
            Ok(redis::Value::SimpleString(name)) => name,
            Ok(_) => "unknown".to_string(),
            Err(e) if e.code() == Some("NOPERM") => {
                self.factory.username().unwrap_or("default").to_string()
            }
            Err(e) => return Err(map_redis_error(e, "ACL WHOAMI failed")),
        };
        let mut dangerous_commands = std::collections::BTreeMap::new();
        for (name, args) in DANGEROUS {
            let opened = self.ask(conn, "MULTI", &["MULTI"]).await?;
            let verdict = if opened.is_ok() {
                let queued = self.ask(conn, name, args).await;
                // Always leave the transaction, whatever the queued command answered.
                self.ask(conn, "DISCARD", &["DISCARD"])
                    .await?
                    .map_err(|e| map_redis_error(e, "DISCARD failed"))?;
                permission(&queued?)
            } else {
                None
            };
            dangerous_commands.insert((*name).to_string(), verdict);
        }
        let mut probe =
            ProbeReport::new(self.factory.uses_tls(), user, self.factory.has_password());
        probe.dangerous_commands = dangerous_commands;
        Ok(assess(probe, &self.security))
    }
}
