//! Benchmark data: realistic English-like text (compression is measured on words, not random
//! bytes), values of a size, and keys.

/// Words the generated text is made of (common English, so it compresses like prose does).
const WORDS: [&str; 64] = [
    "the",
    "model",
    "answer",
    "cache",
    "request",
    "summary",
    "of",
    "and",
    "a",
    "to",
    "in",
    "is",
    "service",
    "text",
    "that",
    "for",
    "it",
    "with",
    "as",
    "was",
    "on",
    "are",
    "be",
    "this",
    "document",
    "user",
    "question",
    "result",
    "by",
    "from",
    "which",
    "an",
    "or",
    "have",
    "not",
    "data",
    "time",
    "more",
    "these",
    "their",
    "each",
    "about",
    "language",
    "points",
    "key",
    "sentiment",
    "positive",
    "negative",
    "report",
    "customer",
    "product",
    "quality",
    "price",
    "delivery",
    "support",
    "team",
    "quarter",
    "growth",
    "revenue",
    "market",
    "risk",
    "plan",
    "review",
    "value",
];

/// About `chars` characters of sentences drawn deterministically from `seed`.
pub fn realistic_text(chars: usize, seed: u64) -> String {
    let mut state = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut out = String::with_capacity(chars + 16);
    let mut sentence = 0;
    while out.len() < chars {
        let word = WORDS[usize::try_from(next() % 64).unwrap_or(0)];
        if sentence == 0 {
            let mut letters = word.chars();
            if let Some(first) = letters.next() {
                out.extend(first.to_uppercase());
                out.push_str(letters.as_str());
            }
        } else {
            out.push_str(word);
        }
        sentence += 1;
        if sentence > 6 && next() % 5 == 0 {
            out.push_str(". ");
            sentence = 0;
        } else {
            out.push(' ');
        }
    }
    out.truncate(chars);
    out
}

/// A value of exactly `size` bytes of realistic text.
pub(crate) fn value(size: usize, seed: u64) -> Vec<u8> {
    let mut bytes = realistic_text(size, seed).into_bytes();
    bytes.resize(size, b' ');
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_deterministic_sized_and_compressible() {
        let text = realistic_text(5000, 7);
        assert_eq!(text.len(), 5000);
        assert_eq!(text, realistic_text(5000, 7));
        assert_ne!(text, realistic_text(5000, 8));
        let compressed = lz4_size(text.as_bytes());
        assert!(compressed < text.len() * 7 / 10, "{compressed}");
        assert_eq!(value(1024, 1).len(), 1024);
    }

    fn lz4_size(bytes: &[u8]) -> usize {
        let codec = cache_core::frame::FrameCodec::new().with_compression_threshold(16);
        let meta = cache_core::frame::FrameMeta::new(1, 2);
        codec
            .encode("k", &meta, cache_core::frame::Codec::Raw, bytes)
            .map(|f| f.bytes.len())
            .unwrap_or(usize::MAX)
    }
}
