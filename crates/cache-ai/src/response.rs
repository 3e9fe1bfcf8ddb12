//! What the AI cache answers: an answer with its metadata, and where it came from.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use cache_core::{Layer, ReadStatus, TextTier};

/// What a hit (or a fresh answer) carries besides the value.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResponseMetadata {
    /// When the answer was stored.
    pub cached_at: SystemTime,
    /// True when the answer came from the cache.
    pub cache_hit: bool,
    /// The input text's tier.
    pub text_tier: Option<TextTier>,
    /// The operation.
    pub operation: Arc<str>,
    /// The AI layer version that stored the answer.
    pub ai_version: Arc<str>,
    /// The full Redis key (`aicache:v1:{operation}:{digest}`).
    pub key: Arc<str>,
    /// The tier that answered a hit.
    pub layer: Option<Layer>,
    /// True when the answer is past its TTL, served by `get_or_compute` because computing a
    /// fresh one failed or took too long (serve-stale).
    pub stale: bool,
}

/// A cached (or freshly computed) answer.
#[derive(Debug)]
#[non_exhaustive]
pub struct CachedResponse<T> {
    /// The answer, shared: an L1 hit costs no deserialization and no copy.
    pub value: Arc<T>,
    /// Its metadata.
    pub metadata: Arc<ResponseMetadata>,
    /// The seed's JSON form (answer merged with metadata), rendered once per L1 entry.
    pub(crate) rendered: Rendered,
}

/// A lazily rendered JSON form, shared by every hit on the same L1 entry.
pub(crate) type Rendered = Arc<OnceLock<Arc<serde_json::Value>>>;

impl<T> CachedResponse<T> {
    pub(crate) fn new(value: Arc<T>, metadata: Arc<ResponseMetadata>) -> Self {
        Self {
            value,
            metadata,
            rendered: Rendered::default(),
        }
    }
}

impl<T> Clone for CachedResponse<T> {
    fn clone(&self) -> Self {
        Self {
            value: Arc::clone(&self.value),
            metadata: Arc::clone(&self.metadata),
            rendered: Arc::clone(&self.rendered),
        }
    }
}

/// Where a [`get_or_compute`](crate::AIResponseCache::get_or_compute) answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Source {
    /// The in-process tier.
    L1,
    /// Redis.
    L2,
    /// This call computed it.
    Computed,
    /// Another caller computing the same key shared its answer.
    Joined,
    /// Computing failed or took too long, and an answer past its TTL (within the stale window)
    /// was served instead (its metadata says `stale`).
    Stale,
}

/// The answer of [`get_or_compute`](crate::AIResponseCache::get_or_compute).
#[derive(Debug)]
#[non_exhaustive]
pub struct Computed<T> {
    /// The answer and its metadata.
    pub response: CachedResponse<T>,
    /// Where it came from.
    pub source: Source,
    /// How long `compute` took, when this call ran it.
    pub compute_time: Option<Duration>,
    /// Whether the answer was stored (false for hits, refusals and `no_store`).
    pub stored: bool,
}

impl<T> Computed<T> {
    /// The read status this answer stands for: HIT_L1, HIT_L2, STALE, or MISS (computed here or
    /// by another caller).
    pub fn status(&self) -> ReadStatus {
        match self.source {
            Source::L1 => ReadStatus::HitL1,
            Source::L2 => ReadStatus::HitL2,
            Source::Stale => ReadStatus::Stale,
            _ => ReadStatus::Miss,
        }
    }
}
