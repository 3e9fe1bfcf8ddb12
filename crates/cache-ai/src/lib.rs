//! aicache's AI response layer.
//!
//! This crate will hold `AIResponseCache`, built by composition on `cache_redis::GenericRedisCache`:
//! `CacheKeyGenerator` (key format v1: a SHA-256 or BLAKE3 digest over a length-prefixed canonical
//! encoding of operation, text, options, question, model and prompt version; and the Python
//! original's legacy format byte for byte), text-size tiers, per-operation TTLs, the L2→L1 promotion
//! rules, invalidation by operation or pattern, `get_or_compute` with single-flight per key, per-request
//! controls, and `CacheParameterMapper`. See the AI cache issue and `ARCHITECTURE.md`.
