//! [`RedisCacheSecurityManager`]: what a live connection to Redis really looks like, scored.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::time::Duration;

use cache_core::{Result, ValidationResult};
use redis::aio::MultiplexedConnection;
use serde::Serialize;

use crate::config::SecurityConfig;
use crate::factory::{ConnectTimeouts, ConnectionFactory, map_redis_error, with_timeout};

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[non_exhaustive]
pub enum Severity {
    /// Worth tightening.
    Low,
    /// Fix soon.
    Medium,
    /// Fix before production.
    High,
    /// Anyone who reaches Redis owns the cache.
    Critical,
}

impl Severity {
    fn penalty(self) -> u8 {
        match self {
            Self::Low => 5,
            Self::Medium => 10,
            Self::High => 20,
            Self::Critical => 40,
        }
    }
}

/// One weakness of the live connection, with its fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct SecurityFinding {
    /// How serious.
    pub severity: Severity,
    /// A stable name, for example `no_tls`.
    pub issue: &'static str,
    /// What was seen.
    pub message: String,
    /// What to do.
    pub fix: String,
}

/// What [`RedisCacheSecurityManager::validate_connection_security`] found on the live connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct SecurityValidationResult {
    /// 0..=100: 100 minus the findings' penalties (critical 40, high 20, medium 10, low 5).
    pub score: u8,
    /// The connection negotiated TLS (it was opened through rustls and the handshake passed).
    pub tls: bool,
    /// Certificates were verified.
    pub certificates_verified: bool,
    /// `ACL WHOAMI`: the user the connection is authenticated as.
    pub user: String,
    /// For FLUSHALL, FLUSHDB, KEYS, CONFIG GET and CONFIG SET: whether this user may run it
    /// (`None`: could not tell). Checked without running any of them.
    pub dangerous_commands: BTreeMap<String, Option<bool>>,
    /// What is wrong, most serious first.
    pub vulnerabilities: Vec<SecurityFinding>,
    /// The fixes, in the same order.
    pub recommendations: Vec<String>,
}

impl SecurityValidationResult {
    /// Whether nothing high or critical was found.
    pub fn is_secure(&self) -> bool {
        self.vulnerabilities
            .iter()
            .all(|f| f.severity < Severity::High)
    }

    /// A readable report for an operator.
    pub fn report(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "Redis connection security: score {}/100", self.score);
        let _ = writeln!(
            out,
            "  TLS: {}{}",
            if self.tls { "yes" } else { "no" },
            if self.tls && !self.certificates_verified {
                " (certificates NOT verified)"
            } else {
                ""
            }
        );
        let _ = writeln!(out, "  user: {}", self.user);
        for (command, allowed) in &self.dangerous_commands {
            let verdict = match allowed {
                Some(true) => "allowed",
                Some(false) => "denied",
                None => "unknown",
            };
            let _ = writeln!(out, "  {command}: {verdict}");
        }
        if self.vulnerabilities.is_empty() {
            let _ = writeln!(out, "No vulnerabilities found.");
        }
        for finding in &self.vulnerabilities {
            let _ = writeln!(
                out,
                "- [{:?}] {}: {}\n  fix: {}",
                finding.severity, finding.issue, finding.message, finding.fix
            );
        }
        out
    }
}

/// Inspects the live connection to Redis that the cache's settings produce, and checks the
/// fail-secure requirements of an environment.
///
/// Unlike the original (whose `connect()` bypassed its security manager), the manager uses the
/// very [`ConnectionFactory`] the cache uses, so what it reports is what the cache gets.
pub struct RedisCacheSecurityManager {
    factory: ConnectionFactory,
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
    /// As [`ConnectionFactory::new`].
    pub fn new(
        url: &str,
        security: SecurityConfig,
        timeouts: ConnectTimeouts,
        command_timeout: Duration,
    ) -> Result<Self> {
        Ok(Self {
            factory: ConnectionFactory::new(url, &security, timeouts)?,
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
        let mut conn = self.factory.dedicated().await?;
        let user = match self
            .ask(&mut conn, "ACL WHOAMI", &["ACL", "WHOAMI"])
            .await?
        {
            Ok(redis::Value::BulkString(name)) => String::from_utf8_lossy(&name).into_owned(),
            Ok(redis::Value::SimpleString(name)) => name,
            Ok(_) => "unknown".to_string(),
            Err(e) if e.code() == Some("NOPERM") => {
                self.factory.username().unwrap_or("default").to_string()
            }
            Err(e) => return Err(map_redis_error(e, "ACL WHOAMI failed")),
        };
        let mut dangerous_commands = BTreeMap::new();
        for (name, args) in DANGEROUS {
            let opened = self.ask(&mut conn, "MULTI", &["MULTI"]).await?;
            let verdict = if opened.is_ok() {
                let queued = self.ask(&mut conn, name, args).await;
                // Always leave the transaction, whatever the queued command answered.
                self.ask(&mut conn, "DISCARD", &["DISCARD"])
                    .await?
                    .map_err(|e| map_redis_error(e, "DISCARD failed"))?;
                permission(&queued?)
            } else {
                None
            };
            dangerous_commands.insert((*name).to_string(), verdict);
        }
        let tls = self.factory.uses_tls();
        let verified = tls
            && self
                .security
                .tls
                .as_ref()
                .is_none_or(|t| t.verify_certificates);
        let mut findings = Vec::new();
        let mut find = |severity, issue, message: &str, fix: &str| {
            findings.push(SecurityFinding {
                severity,
                issue,
                message: message.to_string(),
                fix: fix.to_string(),
            });
        };
        if !tls {
            find(
                Severity::High,
                "no_tls",
                "the connection is not encrypted: passwords and cached answers cross the network in clear text",
                "enable TLS on Redis and use a rediss:// URL (or security.tls)",
            );
        } else if !verified {
            find(
                Severity::High,
                "tls_unverified",
                "TLS without certificate verification: anyone on the path can impersonate Redis",
                "set security.tls.ca_file to the CA that signed the server's certificate",
            );
        }
        let has_password = self.security.password.is_some() || self.factory.has_password();
        if user == "default" && !has_password {
            find(
                Severity::Critical,
                "no_authentication",
                "connected as the default user without a password: anyone who reaches Redis can read and poison the cache",
                "set requirepass or an ACL user, and give the cache its password",
            );
        } else if user == "default" {
            find(
                Severity::Medium,
                "default_user",
                "authenticated as the default user, which usually may run every command",
                "create an ACL user limited to the cache's key prefix and commands (see docs/security.md)",
            );
        }
        for (command, severity) in [
            ("FLUSHALL", Severity::High),
            ("CONFIG SET", Severity::High),
            ("CONFIG GET", Severity::High),
            ("FLUSHDB", Severity::Medium),
            ("KEYS", Severity::Medium),
        ] {
            match dangerous_commands.get(command) {
                Some(Some(true)) => find(
                    severity,
                    "dangerous_command",
                    &format!(
                        "the cache's user may run {command} (CONFIG GET reveals passwords; KEYS blocks Redis)"
                    ),
                    &format!(
                        "remove it from the user's ACL (-{} or -@dangerous)",
                        command.to_lowercase().replace(' ', "|")
                    ),
                ),
                Some(None) => find(
                    Severity::Low,
                    "permission_not_verified",
                    &format!("could not tell whether the cache's user may run {command}"),
                    "allow the cache's user +multi +discard so the check can run, or review its ACL by hand",
                ),
                _ => {}
            }
        }
        findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
        let penalty: u32 = findings
            .iter()
            .map(|f| u32::from(f.severity.penalty()))
            .sum();
        let score = u8::try_from(100u32.saturating_sub(penalty)).unwrap_or(0);
        let recommendations = findings.iter().map(|f| f.fix.clone()).collect();
        Ok(SecurityValidationResult {
            score,
            tls,
            certificates_verified: verified,
            user,
            dangerous_commands,
            vulnerabilities: findings,
            recommendations,
        })
    }
}
