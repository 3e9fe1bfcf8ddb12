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
    /// For FLUSHALL, FLUSHDB and CONFIG: whether this user may run it (`None`: could not tell).
    /// KEYS is never probed: it would scan the whole keyspace.
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

/// What a permission probe's answer says.
fn permission(reply: redis::RedisResult<redis::Value>) -> Option<bool> {
    match reply {
        Ok(_) => Some(true),
        Err(e) if e.code() == Some("NOPERM") => Some(false),
        // The command itself refused the probe's argument: the user may run it.
        Err(e) if e.code() == Some("ERR") => Some(true),
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
                .production_requirements(self.factory.uses_tls())
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
    /// (`ACL WHOAMI`), and whether that user may run FLUSHALL, FLUSHDB or CONFIG.
    ///
    /// The permission probes send those commands with an argument they reject (`FLUSHALL
    /// aicache-permission-probe`, `CONFIG SET aicache-permission-probe x`): Redis checks the ACL
    /// first, so a user without the permission gets `NOPERM`, and a user with it gets a syntax
    /// error; nothing is flushed or changed either way. `KEYS` is never sent.
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
        for (name, args) in [
            ("FLUSHALL", &["FLUSHALL", "aicache-permission-probe"][..]),
            ("FLUSHDB", &["FLUSHDB", "aicache-permission-probe"][..]),
            (
                "CONFIG",
                &["CONFIG", "SET", "aicache-permission-probe", "x"][..],
            ),
        ] {
            let reply = self.ask(&mut conn, name, args).await?;
            dangerous_commands.insert(name.to_string(), permission(reply));
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
            ("CONFIG", Severity::High),
            ("FLUSHDB", Severity::Medium),
        ] {
            if dangerous_commands.get(command) == Some(&Some(true)) {
                find(
                    severity,
                    "dangerous_command",
                    &format!("the cache's user may run {command}"),
                    &format!(
                        "remove it from the user's ACL (-{} or -@dangerous)",
                        command.to_lowercase()
                    ),
                );
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
