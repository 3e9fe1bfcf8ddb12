//! Removals that outlast a partition: a removed key keeps a tombstone (`cache_core::frame::
//! tombstone`) for the replay horizon, and a pattern removal is recorded in the namespace's
//! auxiliary key `{namespace}~aux:removals:patterns` for as long. A write replayed by an instance
//! that was cut off never lands over either: its script refuses a tombstone, and the replayer
//! drops a write that a recorded pattern covers. Writes queued longer than the horizon are
//! dropped (their tombstones may be gone). No rule compares two instances' clocks, and every
//! script touches one key.

use std::time::Duration;

use cache_core::{CacheKey, KeyPattern, Namespace, Result, unix_millis};

use crate::pattern::{WalkConnection, WalkPool};

/// Replaces `KEYS[1]` with the tombstone `ARGV[1]` for `ARGV[2]` ms; 1 when it held a value (not
/// a tombstone), else 0.
pub(crate) const REMOVE: &str = r"
local cur = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if cur and not (string.len(cur) >= 4 and string.sub(cur, 1, 3) == 'AIC' and string.byte(cur, 4) == 254) then
  return 1
end
return 0
";

/// A replayed removal issued at `ARGV[1]`: like [`REMOVE`] (tombstone `ARGV[2]` for `ARGV[3]`
/// ms) unless the key holds a frame written after it, or a frame of an unknown version: then -1.
pub(crate) const REMOVE_IF_NOT_NEWER: &str = r"
local cur = redis.call('GET', KEYS[1])
if cur and string.len(cur) >= 4 and string.sub(cur, 1, 3) == 'AIC' then
  local version = string.byte(cur, 4)
  if version == 254 then
    redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
    return 0
  end
  if version ~= 1 and version ~= 2 then return -1 end
  if string.len(cur) >= 13 then
    local written = 0
    for i = 6, 13 do written = written * 256 + string.byte(cur, i) end
    if written > tonumber(ARGV[1]) then return -1 end
  end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
if cur then return 1 end
return 0
";

/// The time `KEYS[1]` has left in ms, as `PTTL` answers, but -2 (absent) for a tombstone.
pub(crate) const REMAINING_TTL: &str = r"
local cur = redis.call('GET', KEYS[1])
if not cur then return -2 end
if string.len(cur) >= 4 and string.sub(cur, 1, 3) == 'AIC' and string.byte(cur, 4) == 254 then
  return -2
end
return redis.call('PTTL', KEYS[1])
";

/// The auxiliary key holding a namespace's recent pattern removals.
pub(crate) fn patterns_key(namespace: &str) -> Option<String> {
    Namespace::new(namespace)
        .ok()?
        .aux_key("removals", "patterns")
        .ok()
}

/// A recorded pattern: its segment count (0: any) and its glob.
fn member(pattern: &KeyPattern) -> String {
    format!("{}|{}", pattern.segments().unwrap_or(0), pattern.as_str())
}

fn parse(member: &str) -> Option<KeyPattern> {
    let (segments, glob) = member.split_once('|')?;
    let pattern = KeyPattern::new(glob).ok()?;
    Some(match segments.parse::<usize>().ok()? {
        0 => pattern,
        n => pattern.with_segments(n),
    })
}

/// Records `pattern` as removed for `horizon` (and forgets records older than that).
pub(crate) async fn record_pattern(
    pool: &WalkPool,
    conn: &mut Option<WalkConnection>,
    key: &str,
    pattern: &KeyPattern,
    horizon: Duration,
) -> Result<()> {
    let now = unix_millis();
    let horizon_ms = u64::try_from(horizon.as_millis()).unwrap_or(u64::MAX);
    let mut pipe = redis::pipe();
    pipe.cmd("ZADD")
        .arg(key)
        .arg(now.saturating_add(horizon_ms))
        .arg(member(pattern))
        .ignore()
        .cmd("ZREMRANGEBYSCORE")
        .arg(key)
        .arg("-inf")
        .arg(now)
        .ignore()
        .cmd("PEXPIRE")
        .arg(key)
        .arg(horizon_ms)
        .ignore();
    pool.step(conn, "record removal", |mut c| async move {
        pipe.query_async::<()>(&mut c).await
    })
    .await
}

/// The patterns of recorded members (`ZRANGEBYSCORE {key} {now} +inf`).
pub(crate) fn parse_all(members: &[String]) -> Vec<KeyPattern> {
    members.iter().filter_map(|m| parse(m)).collect()
}

/// Whether a recorded removal covers `key`.
pub(crate) fn covered(patterns: &[KeyPattern], key: &CacheKey) -> bool {
    patterns.iter().any(|p| p.matches(key.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_patterns_keep_their_shape() {
        let shaped = KeyPattern::new("qa:*").unwrap().with_segments(2);
        let back = parse(&member(&shaped)).unwrap();
        assert_eq!(back.segments(), Some(2));
        assert!(back.matches("qa:1") && !back.matches("qa:x:1"));
        let any = parse(&member(&KeyPattern::new("a|b*").unwrap())).unwrap();
        assert_eq!((any.segments(), any.as_str()), (None, "a|b*"));
        assert!(parse("junk").is_none());
        assert_eq!(
            patterns_key("aicache:v1").as_deref(),
            Some("aicache:v1~aux:removals:patterns")
        );
    }
}
