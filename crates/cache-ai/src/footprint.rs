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

/// Charged per object member beyond its key and value slots: B-tree nodes run about two thirds
/// full, so each member carries half a slot of slack.
const MEMBER_SLACK: usize = (size_of::<String>() + size_of::<Value>()) / 2;

/// The six metadata fields a rendered JSON hit adds to its answer (their keys, values and slots;
/// `json_bytes` measures about 900 bytes for a typical hit).
const RENDERED_FIELDS: usize = 1024;

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
    let mut total = size_of::<Value>();
    let mut pending = vec![value];
    while let Some(value) = pending.pop() {
        match value {
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
            Value::String(text) => total = total.saturating_add(heap(text.capacity())),
            Value::Array(items) => {
                let slots = items.capacity().saturating_mul(size_of::<Value>());
                total = total.saturating_add(heap(slots));
                pending.extend(items);
            }
            Value::Object(members) => {
                for (name, item) in members {
                    let member = size_of::<String>() + size_of::<Value>() + MEMBER_SLACK;
                    total = total
                        .saturating_add(member)
                        .saturating_add(heap(name.capacity()));
                    pending.push(item);
                }
            }
        }
    }
    total
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
            (2000..2000 + 600 + RENDERED_FIELDS).contains(&charged),
            "{charged}"
        );
    }

    #[test]
    fn the_rendered_fields_are_covered() {
        let answer = json!({"summary": "s"});
        let rendered = json!({
            "summary": "s",
            "cached_at": "2026-12-03T12:00:00.000Z",
            "cache_hit": true,
            "text_tier": "small",
            "operation": "summarize",
            "ai_version": "1.0",
            "cache_key": format!("aicache:v1:summarize:{}", "0".repeat(64)),
        });
        assert!(json_bytes(&rendered) - json_bytes(&answer) <= RENDERED_FIELDS);
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
