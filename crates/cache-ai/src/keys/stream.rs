//! Keys of very long texts without holding an async worker: the text is hashed in slices, with a
//! yield between them, so no poll spends more than about 40 µs hashing (SHA-256 runs at about
//! 1.8 GB/s here: a 40 MB text takes 22 ms, which would stall every task on the worker).

use cache_core::Result;

use super::{
    AiRequest, CacheKeyGenerator, HashSink, RequestKey, Sink, encode_head, encode_tail, put_len,
    validate_operation,
};

/// Texts longer than this are hashed in slices of this size, yielding between them.
pub const HASH_SLICE: usize = 64 * 1024;

impl CacheKeyGenerator {
    /// [`key_for`](Self::key_for) for async callers: the same key, but a text longer than
    /// [`HASH_SLICE`] is hashed slice by slice with a yield between slices, so that hashing a
    /// very long text never stalls the other tasks of the worker.
    ///
    /// # Errors
    /// As [`key_for`](Self::key_for).
    pub async fn key_for_async(&self, request: &AiRequest<'_>) -> Result<RequestKey> {
        if request.text.len() <= HASH_SLICE {
            return self.key_for(request);
        }
        validate_operation(request.operation)?;
        let (tier, started) = self.start_key(request);
        let mut sink = HashSink::new(self.algorithm);
        encode_head(&mut sink, self.algorithm, request);
        sink.put(b"t");
        put_len(&mut sink, request.text.len());
        for slice in request.text.as_bytes().chunks(HASH_SLICE) {
            sink.put(slice);
            tokio::task::yield_now().await;
        }
        encode_tail(&mut sink, request);
        self.finish_key(sink, request.operation, tier, started)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn long_texts_get_the_same_key_slice_by_slice() {
        let keys = CacheKeyGenerator::default();
        let options = json!({"max_length": 50});
        for len in [10, HASH_SLICE, HASH_SLICE + 1, 5 * HASH_SLICE + 17] {
            let text = "é".repeat(len / 2);
            let request = AiRequest::new("summarize", &text)
                .with_options(&options)
                .with_question("why?");
            let sync = keys.key_for(&request).unwrap();
            let sliced = keys.key_for_async(&request).await.unwrap();
            assert_eq!(sync.cache_key(), sliced.cache_key(), "{len}");
            assert_eq!(sync.tier(), sliced.tier());
        }
        assert!(
            keys.key_for_async(&AiRequest::new("Bad Op", &"x".repeat(HASH_SLICE * 2)))
                .await
                .is_err()
        );
    }
}
