//! What a decoded answer occupies in memory, for the byte budgets that hold decoded answers: the
//! AI layer's L1 entries and its decoded memo.
//!
//! Those budgets bound the process's memory, not only the encoded bytes. A MessagePack payload
//! dense in small numbers or short keys decodes into a `serde_json::Value` many times its size
//! (every element is at least a 32-byte `Value`, every object member a B-tree slot and a key
//! allocation), and a JSON hit renders a second copy merged with its metadata. So a JSON answer
//! is charged by a walk of its decoded form, twice, plus its rendered metadata fields. A typed
//! answer, whose layout the cache cannot see, is charged its encoded size.

use std::any::Any;
use std::mem::size_of;

use serde_json::Value;

/// Charged per heap allocation beyond its bytes: the allocator's header and rounding.
const ALLOCATION: usize = 16;

/// A JSON object is a `BTreeMap<String, Value>` (serde_json without `preserve_order`, as this
/// workspace builds it): members live in nodes of eleven key and value slots plus a header,
/// allocated whole, so even a one-member object holds a full node.
const NODE: usize = 11 * (size_of::<String>() + size_of::<Value>()) + 16;

/// Members per node as maps fill in practice: a full node splits in two halves of about six.
const MEMBERS_PER_NODE: usize = 6;

/// What a rendered JSON hit holds beyond its answer: up to two more nodes (a non-object answer is
/// wrapped under `response`) and the six metadata fields' names and values (`json_bytes`
/// measures about 1,700 bytes for a wrapped answer).
const RENDERED_FIELDS: usize = 2048;

/// The bytes an answer decoded from `encoded_len` bytes occupies once decoded, its rendered JSON
/// form included.
pub(crate) fn decoded_bytes<T: Any>(value: &T, encoded_len: usize) -> usize {
    match (value as &dyn Any).downcast_ref::<Value>() {
        Some(json) => json_bytes(json)
            .saturating_mul(2)
            .saturating_add(RENDERED_FIELDS),
        None => encoded_len,
    }
}

/// The bytes a JSON value occupies: its own slot and everything it owns. Iterative, so a deeply
/// nested value cannot exhaust the stack.
pub(crate) fn json_bytes(value: &Value) -> usize {
    let mut total = size_of::<Value>().saturating_add(owned(value));
    let mut pending = vec![value];
    while let Some(container) = pending.pop() {
        let children: &mut dyn Iterator<Item = &Value> = match container {
            Value::Array(items) => &mut items.iter(),
            Value::Object(members) => &mut members.values(),
            _ => continue,
        };
        for child in children {
            total = total.saturating_add(owned(child));
            if matches!(child, Value::Array(_) | Value::Object(_)) {
                pending.push(child);
            }
        }
    }
    total
}

/// The heap a JSON value owns directly: a string's bytes, an array's slots, an object's nodes and
/// member names (not what its children own in turn).
fn owned(value: &Value) -> usize {
    match value {
        Value::Null | Value::Bool(_) | Value::Number(_) => 0,
        Value::String(text) => heap(text.capacity()),
        Value::Array(items) => heap(items.capacity().saturating_mul(size_of::<Value>())),
        Value::Object(members) if members.is_empty() => 0,
        Value::Object(members) => {
            let nodes = members.len().div_ceil(MEMBERS_PER_NODE);
            let names = members.keys().fold(0, |sum: usize, name| {
                sum.saturating_add(heap(name.capacity()))
            });
            nodes.saturating_mul(heap(NODE)).saturating_add(names)
        }
    }
}

/// An allocation of `bytes` (none for zero).
fn heap(bytes: usize) -> usize {
    if bytes == 0 {
        0
    } else {
        bytes.saturating_add(ALLOCATION)
    }
}

#[cfg(test)]
mod tests {
    use std::mem::size_of;

    use serde_json::{Value, json};

    use super::{RENDERED_FIELDS, decoded_bytes, json_bytes};

    #[test]
    fn number_dense_answers_are_charged_far_more_than_their_encoding() {
        let answer = json!(vec![0; 10_000]);
        let encoded = cache_core::frame::encode_msgpack(&answer).unwrap();
        assert!(encoded.len() < 10_010, "one byte per small number");
        let charged = decoded_bytes(&answer, encoded.len());
        assert!(
            charged >= 2 * 10_000 * size_of::<Value>(),
            "the value and its rendered copy: {charged}"
        );
    }

    #[test]
    fn a_text_answer_is_charged_about_twice_its_text() {
        let answer = json!({"summary": "x".repeat(1000)});
        let charged = decoded_bytes(&answer, 1010);
        assert!(
            (2000..4000 + RENDERED_FIELDS).contains(&charged),
            "{charged}"
        );
    }

    #[test]
    fn the_rendered_fields_are_covered() {
        let fields = |mut rendered: serde_json::Map<String, Value>| {
            for (name, value) in [
                ("cached_at", json!("2026-12-03T12:00:00.000Z")),
                ("cache_hit", json!(true)),
                ("text_tier", json!("small")),
                ("operation", json!("summarize")),
                ("ai_version", json!("1.0")),
                (
                    "cache_key",
                    json!(format!("aicache:v1:summarize:{}", "0".repeat(64))),
                ),
            ] {
                rendered.insert(name.to_string(), value);
            }
            Value::Object(rendered)
        };
        let object = json!({"summary": "s", "score": 0.5});
        let Value::Object(members) = object.clone() else {
            unreachable!("an object")
        };
        let text = json!("s");
        let wrapped = serde_json::Map::from_iter([("response".to_string(), text.clone())]);
        for (answer, rendered) in [(object, fields(members)), (text, fields(wrapped))] {
            let extra = json_bytes(&rendered) - json_bytes(&answer);
            assert!(extra <= RENDERED_FIELDS, "{extra} bytes for {rendered}");
        }
    }

    #[test]
    fn every_object_holds_a_whole_node() {
        let answer = json!(vec![json!({"label": "x", "score": 0.5}); 1000]);
        let node = 11 * (size_of::<String>() + size_of::<Value>());
        assert!(
            json_bytes(&answer) >= 1000 * node,
            "{}",
            json_bytes(&answer)
        );
        let many: serde_json::Map<String, Value> =
            (0..600).map(|i| (format!("k{i:03}"), json!(i))).collect();
        let nodes = json_bytes(&Value::Object(many)) / node;
        // About 100 nodes of six members, plus the members' names.
        assert!(
            (100..=150).contains(&nodes),
            "{nodes} nodes' worth for 600 members"
        );
    }

    #[tokio::test]
    async fn the_l1_budget_counts_decoded_answers() {
        use std::sync::Arc;

        use cache_memory::{MemoryCacheConfig, MemoryFrameStore};

        use crate::{AIResponseCache, AiCacheConfig, AiRequest, RequestControls};

        let budget = 4 << 20;
        let l1 = MemoryCacheConfig::default()
            .with_max_entries(1000)
            .with_max_bytes(budget);
        let config = AiCacheConfig::default().with_l1(Some(l1));
        let store = MemoryFrameStore::new(config.namespace());
        let cache: AIResponseCache<Value> = AIResponseCache::builder(config)
            .store(Arc::new(store))
            .build()
            .unwrap();
        let answer = json!(vec![0; 10_000]);
        for i in 0..50 {
            let key = cache
                .key(&AiRequest::new("key_points", &format!("text {i}")))
                .unwrap();
            let controls = RequestControls::default();
            cache.put(&key, answer.clone(), &controls).await.unwrap();
        }
        let l1 = cache.inner.near.l1().unwrap().stats();
        let decoded = 2 * 10_000 * size_of::<Value>() as u64;
        assert!(l1.entries >= 1, "L1 keeps some");
        assert!(l1.entries <= budget / decoded, "{} entries", l1.entries);
        assert!(l1.bytes >= l1.entries * decoded, "{} bytes", l1.bytes);
    }

    #[test]
    fn typed_answers_are_charged_their_encoding_and_deep_values_do_not_overflow_the_stack() {
        assert_eq!(decoded_bytes(&"typed".to_string(), 6), 6);
        let mut deep = json!(null);
        for _ in 0..100_000 {
            deep = Value::Array(vec![deep]);
        }
        // A small stack: a recursive walk of 100,000 levels would overflow it.
        let walked = std::thread::Builder::new()
            .stack_size(64 << 10)
            .spawn(move || {
                let bytes = json_bytes(&deep);
                // serde_json drops nested arrays recursively: unwind them one level at a time.
                while let Value::Array(mut items) = deep {
                    deep = items.pop().unwrap_or(Value::Null);
                }
                bytes
            })
            .unwrap()
            .join()
            .unwrap();
        assert!(walked > 100_000 * size_of::<Value>());
    }
}
