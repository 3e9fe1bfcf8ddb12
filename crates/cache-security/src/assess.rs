//! The security manager's rules: a probe of a live connection in, a scored report out.
//!
//! Probing (connecting, `ACL WHOAMI`, the permission checks) is I/O and lives with the Redis
//! transport in cache-redis; what the answers mean lives here, as pure functions.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::config::SecurityConfig;

pub use cache_core::Severity;

/// What a finding costs the score.
fn penalty(severity: Severity) -> u8 {
    match severity {
        Severity::Low => 5,
        Severity::Medium => 10,
        Severity::High => 20,
        Severity::Critical => 40,
        _ => 0,
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

/// What the security manager (cache-redis's `RedisCacheSecurityManager`) found on the live
/// connection, scored by [`assess`].
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

/// What a probe of a live connection saw, as the security manager reports it to the rules.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ProbeReport {
    /// The connection negotiated TLS.
    pub tls: bool,
    /// `ACL WHOAMI`: the user the connection is authenticated as.
    pub user: String,
    /// For each dangerous command: whether the user may run it (`None`: could not tell).
    pub dangerous_commands: BTreeMap<String, Option<bool>>,
    /// Whether the connection sent a password (from the URL or the settings).
    pub password_sent: bool,
}

impl ProbeReport {
    /// A probe of a connection (`tls`) authenticated as `user`.
    pub fn new(tls: bool, user: impl Into<String>, password_sent: bool) -> Self {
        Self {
            tls,
            user: user.into(),
            dangerous_commands: BTreeMap::new(),
            password_sent,
        }
    }

    /// Records whether the user may run `command`.
    #[must_use]
    pub fn with_permission(mut self, command: impl Into<String>, allowed: Option<bool>) -> Self {
        self.dangerous_commands.insert(command.into(), allowed);
        self
    }
}

/// Scores what a probe saw against `security` (the settings the connection was opened with).
///
/// ```
/// use cache_security::{ProbeReport, SecurityConfig, assess};
///
/// let report = assess(ProbeReport::new(false, "default", false), &SecurityConfig::default());
/// assert!(!report.is_secure());
/// assert_eq!(report.vulnerabilities[0].issue, "no_authentication");
/// ```
pub fn assess(probe: ProbeReport, security: &SecurityConfig) -> SecurityValidationResult {
    let ProbeReport {
        tls,
        user,
        dangerous_commands,
        password_sent,
    } = probe;
    let verified = tls && security.tls.as_ref().is_none_or(|t| t.verify_certificates);
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
    let has_password = security.password.is_some() || password_sent;
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
        .map(|f| u32::from(penalty(f.severity)))
        .sum();
    let score = u8::try_from(100u32.saturating_sub(penalty)).unwrap_or(0);
    let recommendations = findings.iter().map(|f| f.fix.clone()).collect();
    SecurityValidationResult {
        score,
        tls,
        certificates_verified: verified,
        user,
        dangerous_commands,
        vulnerabilities: findings,
        recommendations,
    }
}
