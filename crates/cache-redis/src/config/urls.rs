//! The rules of Redis URLs: one server's (`redis_url`) and a cluster's seeds
//! (`redis_cluster_urls`). The one place these rules live; messages never contain a password.

use cache_core::{ValidationIssue, ValidationResult};
use cache_security::redact_url;

/// Whether redis-rs can use `url` (it is parsed, not connected to). The problem, on failure, never
/// contains the password.
///
/// # Errors
/// A description of what does not parse.
pub fn check_redis_url(url: &str) -> std::result::Result<(), String> {
    match redis::Client::open(url) {
        Ok(_) => Ok(()),
        Err(e) => Err(format!("does not parse ({})", e.category())),
    }
}

const KNOWN_SCHEMES: &[&str] = &["redis", "rediss", "redis+unix", "unix", "valkey", "valkeys"];

/// Whether `url` asks for TLS by its scheme (`rediss://` or `valkeys://`): the one place this
/// rule lives.
///
/// ```
/// assert!(cache_redis::url_uses_tls("valkeys://h:6379"));
/// assert!(!cache_redis::url_uses_tls("valkey://h:6379"));
/// ```
pub fn url_uses_tls(url: &str) -> bool {
    matches!(url.split("://").next(), Some("rediss" | "valkeys")) && url.contains("://")
}

/// Checks a Redis URL: a scheme redis-rs speaks (`redis`, `rediss`, `redis+unix`, `unix`,
/// `valkey`, `valkeys`) and a URL it parses. The one place these rules live; the messages never
/// contain the password.
pub fn validate_redis_url(url: &str) -> ValidationResult {
    let mut r = ValidationResult::new();
    let scheme = url.split("://").next().unwrap_or_default();
    if !url.contains("://") || !KNOWN_SCHEMES.contains(&scheme) {
        r.error(ValidationIssue::new(
            "redis_url",
            redact_url(url),
            "redis://, rediss:// (TLS), valkey://, valkeys:// (TLS) or redis+unix:// URL",
            "write the URL as redis[s]://[user:password@]host:port[/db]",
        ));
    } else if let Err(problem) = check_redis_url(url) {
        r.error(ValidationIssue::new(
            "redis_url",
            format!("{} {problem}", redact_url(url)),
            "a URL redis-rs parses: redis://[user:password@]host:port[/db]",
            "check the host, the port and the database number",
        ));
    }
    r
}

/// Checks a cluster's seed URLs (`redis_cluster_urls`): each a URL [`validate_redis_url`]
/// accepts, none a unix socket or a database other than 0, all with the same scheme, and not
/// together with `redis_url` (`redis_url_set`). The one place these rules live.
///
/// ```
/// let seeds = |urls: &[&str]| urls.iter().map(|u| u.to_string()).collect::<Vec<_>>();
/// assert!(cache_redis::validate_cluster_urls(false, &seeds(&["redis://a:7000"])).is_valid());
/// let fields = |r: cache_core::ValidationResult| {
///     r.errors.into_iter().map(|e| e.field).collect::<Vec<_>>()
/// };
/// assert_eq!(
///     fields(cache_redis::validate_cluster_urls(false, &seeds(&["redis://a:7000", "redis://b:7000/2"]))),
///     ["redis_cluster_urls[1]"]
/// );
/// assert_eq!(
///     fields(cache_redis::validate_cluster_urls(false, &seeds(&["redis://a:7000", "rediss://b:7000"]))),
///     ["redis_cluster_urls"]
/// );
/// assert_eq!(
///     fields(cache_redis::validate_cluster_urls(true, &seeds(&["redis://a:7000"]))),
///     ["redis_cluster_urls"]
/// );
/// ```
pub fn validate_cluster_urls(redis_url_set: bool, urls: &[String]) -> ValidationResult {
    let mut r = ValidationResult::new();
    if redis_url_set && !urls.is_empty() {
        r.error(ValidationIssue::new(
            "redis_cluster_urls",
            format!("{} seed URLs with redis_url set", urls.len()),
            "either redis_url (one server) or redis_cluster_urls (a cluster)",
            "unset redis_url to use the cluster, or empty redis_cluster_urls",
        ));
    }
    for (i, url) in urls.iter().enumerate() {
        let field = format!("redis_cluster_urls[{i}]");
        for mut issue in validate_redis_url(url).errors {
            issue.field.clone_from(&field);
            r.error(issue);
        }
        let database = url
            .split_once("://")
            .and_then(|(_, rest)| rest.split_once('/'))
            .map(|(_, path)| path.split(['?', '#']).next().unwrap_or_default())
            .filter(|db| !db.is_empty() && *db != "0");
        if let Some(db) = database {
            r.error(ValidationIssue::new(
                field.clone(),
                format!("{} (database {db})", redact_url(url)),
                "database 0 (a cluster has no other)",
                "drop the /N from the seed URL",
            ));
        }
        if url.starts_with("redis+unix:") || url.starts_with("unix:") {
            r.error(ValidationIssue::new(
                field,
                redact_url(url),
                "a redis:// or rediss:// URL (host:port)",
                "cluster nodes announce TCP addresses: give a seed's host and port",
            ));
        }
    }
    if let Some(first) = urls.first() {
        let tls = url_uses_tls(first);
        if urls.iter().any(|u| url_uses_tls(u) != tls) {
            r.error(ValidationIssue::new(
                "redis_cluster_urls",
                "a mix of redis:// and rediss://",
                "every seed with the same scheme",
                "use rediss:// for every seed of a TLS cluster",
            ));
        }
    }
    r
}
