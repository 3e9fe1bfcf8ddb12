//! Removals that outlast a partition: a removed key keeps a tombstone (`cache_core::frame::
//! tombstone`) for the replay horizon, and a pattern removal is recorded in the namespace's
//! auxiliary key `{namespace}~aux:removals:patterns` for as long. A write replayed by an instance
//! that was cut off never lands over either: its script refuses a tombstone, and the replayer
//! drops a write that a recorded pattern covers (checked before the write and again after it).
//! Writes queued longer than the horizon are dropped (their tombstones may be gone). Records
//! live by the server's clock; no rule compares two instances' clocks (a restore compares a
//! record's time with a frame's `cached_at`, with a margin, `cache_core::REMOVAL_CLOCK_MARGIN_MS`); every script
//! touches one key, but the restore batch (`store/restore.rs`).

use std::time::Duration;

use cache_core::{CacheKey, KeyPattern, Namespace, Result};

use crate::pattern::{WalkConnection, WalkPool};

/// The head of `KEYS[1]` (its first 13 bytes: magic, version, flags, `cached_at`) when it is a
/// string, `''` for a key of another type, `false` when absent; and whether it is a tombstone.
/// Reading only the head keeps a removal of a 64 MiB value from copying it into the script.
const HEAD: &str = r"
local kind = redis.call('TYPE', KEYS[1]).ok
local head = false
if kind == 'string' then head = redis.call('GETRANGE', KEYS[1], 0, 12)
elseif kind ~= 'none' then head = '' end
local function tombstone(h)
  return h and string.len(h) >= 4 and string.sub(h, 1, 3) == 'AIC' and string.byte(h, 4) == 254
end
-- Writes the tombstone; when Redis refuses the write (out of memory under noeviction), the key
-- is still removed, only without its record.
local function bury(mark, ms)
  local written = redis.pcall('SET', KEYS[1], mark, 'PX', ms)
  if type(written) == 'table' and written.err then redis.call('UNLINK', KEYS[1]) end
end
";

/// Replaces `KEYS[1]` with the tombstone `ARGV[1]` for `ARGV[2]` ms; 1 when it held a value (not
/// a tombstone), else 0.
pub(crate) fn remove_script() -> String {
    format!(
        "{HEAD}{}",
        r"
bury(ARGV[1], ARGV[2])
if head and not tombstone(head) then return 1 end
return 0
"
    )
}

/// Like the removal script (tombstone `ARGV[2]` for `ARGV[3]` ms) unless the key holds a frame
/// written after `ARGV[1]` or a frame of an unknown version: then -1 (a tombstone is refreshed,
/// 0).
pub(crate) fn remove_unless_newer_script() -> String {
    format!(
        "{HEAD}{}",
        r"
if head and string.len(head) >= 4 and string.sub(head, 1, 3) == 'AIC' and not tombstone(head) then
  local version = string.byte(head, 4)
  if version ~= 1 and version ~= 2 then return -1 end
  if string.len(head) >= 13 then
    local written = 0
    for i = 6, 13 do written = written * 256 + string.byte(head, i) end
    if written > tonumber(ARGV[1]) then return -1 end
  end
end
bury(ARGV[2], ARGV[3])
if head and not tombstone(head) then return 1 end
return 0
"
    )
}

/// The time `KEYS[1]` has left in ms, as `PTTL` answers, but -2 (absent) for a tombstone.
pub(crate) fn remaining_ttl_script() -> String {
    format!(
        "{HEAD}{}",
        r"
if not head or tombstone(head) then return -2 end
return redis.call('PTTL', KEYS[1])
"
    )
}

/// 1 when `KEYS[1]` is a tombstone or absent, else 0 (a value, or a key of another type).
pub(crate) fn is_removed_script() -> String {
    format!(
        "{HEAD}{}",
        r"
if not head or tombstone(head) then return 1 end
return 0
"
    )
}

/// Records pattern `ARGV[1]` as removed now (scored by the server's clock, so no instance clock
/// decides how long a record lives) in the sorted set `KEYS[1]`, and forgets records older than
/// `ARGV[2]` ms. 0 when Redis refuses the write (out of memory under noeviction): the removal goes
/// on without its record.
pub(crate) const RECORD_PATTERN: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local added = redis.pcall('ZADD', KEYS[1], now, ARGV[1])
if type(added) == 'table' and added.err then return 0 end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
";

/// The patterns recorded in `KEYS[1]` within the last `ARGV[1]` ms by the server's clock, each
/// with the time of its latest removal (members and scores, interleaved).
pub(crate) const RECORDED_PATTERNS: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZRANGEBYSCORE', KEYS[1], now - tonumber(ARGV[1]), '+inf', 'WITHSCORES')
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
    (script, key): (&redis::Script, &str),
    pattern: &KeyPattern,
    horizon: Duration,
) -> Result<()> {
    let horizon_ms = u64::try_from(horizon.as_millis()).unwrap_or(u64::MAX);
    let mut invocation = script.key(key);
    invocation.arg(member(pattern)).arg(horizon_ms);
    let recorded = pool
        .step(conn, "record removal", |mut c| async move {
            invocation.invoke_async::<i64>(&mut c).await
        })
        .await?;
    if recorded == 0 {
        tracing::warn!(
            pattern = pattern.as_str(),
            "Redis refused the record of a pattern removal (out of memory?): the removal goes on, \
             but a write replayed by a cut-off instance could bring one of its keys back"
        );
    }
    Ok(())
}

/// A pattern removal on record: what it removed and when (ms since the epoch, by the server's
/// clock).
#[derive(Debug, Clone)]
pub(crate) struct RecordedRemoval {
    pub(crate) pattern: KeyPattern,
    pub(crate) removed_at_ms: u64,
}

/// The removals of a `RECORDED_PATTERNS` reply (`member, score, member, score, …`).
pub(crate) fn parse_all(reply: &[String]) -> Vec<RecordedRemoval> {
    reply
        .chunks_exact(2)
        .filter_map(|pair| {
            let pattern = parse(&pair[0])?;
            let removed_at_ms = pair[1].parse::<f64>().ok().filter(|t| t.is_finite())?;
            // A score is a whole number of ms far below 2^53: exact in an f64.
            #[allow(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                reason = "checked finite; scores are non-negative whole ms below 2^53"
            )]
            let removed_at_ms = removed_at_ms.max(0.0) as u64;
            Some(RecordedRemoval {
                pattern,
                removed_at_ms,
            })
        })
        .collect()
}

/// Whether a recorded removal covers `key`.
pub(crate) fn covered(removals: &[RecordedRemoval], key: &CacheKey) -> bool {
    removals.iter().any(|r| r.pattern.matches(key.as_str()))
}

/// Whether a removal recorded after `written_at_ms` (an entry's `cached_at`) covers `key`: the
/// entry predates the removal, so bringing it back would undo it (compared with a margin for the
/// two clocks, [`cache_core::removal_blocks`]).
pub(crate) fn covered_since(
    removals: &[RecordedRemoval],
    key: &CacheKey,
    written_at_ms: u64,
) -> bool {
    removals.iter().any(|r| {
        cache_core::removal_blocks(r.removed_at_ms, written_at_ms)
            && r.pattern.matches(key.as_str())
    })
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

    #[test]
    fn recorded_removals_carry_their_time() {
        let reply: Vec<String> = ["2|qa:*", "1700000000000", "junk", "5", "0|x*", "nan"]
            .map(String::from)
            .to_vec();
        let removals = parse_all(&reply);
        assert_eq!(removals.len(), 1);
        assert_eq!(removals[0].removed_at_ms, 1_700_000_000_000);
        let key = CacheKey::new("qa:1").unwrap();
        assert!(covered(&removals, &key));
        assert!(covered_since(&removals, &key, 1_700_000_000_000));
        assert!(covered_since(&removals, &key, 1_600_000_000_000));
        assert!(
            covered_since(&removals, &key, 1_700_000_005_000),
            "within the clock margin"
        );
        assert!(!covered_since(&removals, &key, 1_700_000_005_001));
        assert!(!covered_since(
            &removals,
            &CacheKey::new("qb:1").unwrap(),
            0
        ));
    }
}
