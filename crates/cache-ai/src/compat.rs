//! [`CacheCompatibilityWrapper`]: an [`AIResponseCache`] that takes over the Python service's
//! Redis without a cold cache, never decoding a pickle and never undoing a removal.
//!
//! Answers the Python service stored live under its keys (`ai_cache:op:…|txt:…`, see
//! [`LegacyKeyGenerator`]). The wrapper reads them through a store over the Python prefix and
//! never writes or deletes there. Every answer it takes over is written under the request's v1
//! key through [`restore_many`](cache_core::FrameStore::restore_many) (only where the key holds
//! nothing), so a key whose removal the store remembers (a tombstone, a pattern removal recorded
//! after the Python entry could have been written, a removal queued for replay) is never filled
//! again; removals made through the wrapper are also remembered in this process for 24 hours,
//! the longest Python TTL. Writes are fenced against this instance's removals like a
//! computation in flight.
//!
//! - **Lookup** ([`get`](CacheCompatibilityWrapper::get)): the v1 key; then answers bulk-imported
//!   for the request's Python keys (read from the store without counting as cache reads), moved
//!   to the v1 key on first use; then, in read-through mode, the Python keys themselves (one
//!   `MGET`, counted).
//! - **Import** ([`import`](CacheCompatibilityWrapper::import)): every Python entry, page by
//!   page, under `{operation}:py{digest of the Python key}` (the shape of every v1 key, so every
//!   removal of its operation, pattern or namespace covers it), because the text a v1 key is made
//!   of is not in a Python key.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use cache_core::frame::{Codec, FrameMeta, TextTier, encode_msgpack};
use cache_core::{
    CacheKey, DynFrameStore, Error, ErrorKind, KeyPattern, RestoreEntry, RestoreRule, Result,
    unix_millis,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::cache::AIResponseCache;
use crate::keys::{AiRequest, RequestKey};
use crate::legacy::{
    LegacyDecoded, LegacyDecoder, LegacyKeyGenerator, LegacyRefusal, LegacyVariant, PyValue,
};
use crate::response::CachedResponse;
use crate::{AI_VERSION, RequestControls};

mod blocks;
mod config;
mod import;
mod seed;

use blocks::RemovalBlocks;
pub use config::{CompatibilityConfig, LegacyRequest};
pub use import::ImportReport;

/// The longest TTL the Python service gave an entry (legacy `sentiment`: 24 hours). An imported
/// answer is dated as if written that long before it expires, never later than it was.
const MAX_LEGACY_TTL_MS: u64 = 86_400_000;
/// The longest TTL a cache entry gets (`Ttl::MAX`, in ms).
const MAX_TTL_MS: u64 = 10 * 365 * 24 * 3600 * 1000;

/// What the wrapper did, since it was built.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CompatibilityStats {
    /// v1 misses that looked for an imported or Python answer.
    pub misses_checked: u64,
    /// Reads of bulk-imported answers (one per Python key of a request, on a v1 miss).
    pub imported_reads: u64,
    /// Of those, the ones that found an answer (moved to the v1 key and served).
    pub imported_hits: u64,
    /// Round trips to the Python keys (read-through: one `MGET` per miss).
    pub legacy_reads: u64,
    /// Python keys read.
    pub legacy_keys_read: u64,
    /// Python answers imported by read-through.
    pub read_through_imports: u64,
    /// Answers not taken over because the v1 key holds something, or its removal is on record
    /// (in the store, or made through this wrapper within 24 hours).
    pub blocked: u64,
    /// Python values refused, by reason (`pickle`, `encrypted`, …).
    pub refused: BTreeMap<&'static str, u64>,
    /// Python values that decoded but do not have the answer type's shape.
    pub unconvertible: u64,
    /// Read-throughs that failed (the Python store or the cache's store refused or timed out):
    /// each was a miss.
    pub errors: u64,
}

#[derive(Default)]
struct Counters {
    misses_checked: AtomicU64,
    imported_reads: AtomicU64,
    imported_hits: AtomicU64,
    legacy_reads: AtomicU64,
    legacy_keys_read: AtomicU64,
    read_through_imports: AtomicU64,
    blocked: AtomicU64,
    refused: [AtomicU64; LegacyRefusal::ALL.len()],
    unconvertible: AtomicU64,
    errors: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// An [`AIResponseCache`] that also finds the answers the Python service stored. See the
/// module docs for the lookup order and the rules.
pub struct CacheCompatibilityWrapper<T = serde_json::Value> {
    cache: AIResponseCache<T>,
    legacy: Arc<dyn DynFrameStore>,
    keys: Vec<LegacyKeyGenerator>,
    decoder: LegacyDecoder,
    read_through: bool,
    counters: Counters,
    blocks: RemovalBlocks,
}

impl<T> std::fmt::Debug for CacheCompatibilityWrapper<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheCompatibilityWrapper")
            .field("legacy_namespace", &self.legacy.info().namespace)
            .field("read_through", &self.read_through)
            .finish_non_exhaustive()
    }
}

/// The outcome of reading one Python value.
enum Found<T> {
    Answer(T),
    Refused(LegacyRefusal),
    Unconvertible,
    Empty,
}

/// When an answer that expires in `left_ms` was written at the latest: as if it had been given
/// the longest Python TTL. An entry without expiry (or with a longer TTL than the Python service
/// ever gave) is dated at 0, before any removal.
fn written_at(now: u64, left_ms: u64) -> u64 {
    if left_ms >= MAX_LEGACY_TTL_MS {
        0
    } else {
        now.saturating_sub(MAX_LEGACY_TTL_MS - left_ms)
    }
}

impl<T> CacheCompatibilityWrapper<T>
where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    /// Wraps `cache`, reading the Python service's entries through `legacy` (a store over the
    /// Python prefix, `ai_cache` by default: for Redis, a `RedisStore` with that `key_prefix`).
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when the cache has no shared tier (answers are taken over there),
    /// for an empty variant list, a threshold out of range, or a key that is not a Fernet key.
    pub fn new(
        cache: AIResponseCache<T>,
        legacy: Arc<dyn DynFrameStore>,
        config: &CompatibilityConfig,
    ) -> Result<Self> {
        config.check()?;
        if cache.l2().is_none() {
            return Err(Error::new(
                ErrorKind::Config,
                "the compatibility wrapper takes answers over into the cache's shared tier, and this cache has none",
            )
            .with_context("fix", "build the cache with a store (Redis)"));
        }
        let mut variants: Vec<LegacyVariant> = Vec::new();
        for variant in &config.variants {
            if !variants.contains(variant) {
                variants.push(*variant);
            }
        }
        Ok(Self {
            cache,
            legacy,
            keys: variants
                .into_iter()
                .map(|v| LegacyKeyGenerator::new(config.text_hash_threshold, v))
                .collect(),
            decoder: LegacyDecoder::new(config.fernet_key.as_ref())?,
            read_through: config.read_through,
            counters: Counters::default(),
            blocks: RemovalBlocks::default(),
        })
    }

    /// The wrapped cache.
    pub fn cache(&self) -> &AIResponseCache<T> {
        &self.cache
    }

    /// The request's v1 key.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for an invalid operation or options that are not JSON.
    pub fn key(&self, request: &LegacyRequest<'_>) -> Result<RequestKey> {
        let options = request
            .options_json
            .map(serde_json::from_str::<serde_json::Value>)
            .transpose()
            .map_err(|e| {
                Error::new(ErrorKind::InvalidInput, "options are not JSON")
                    .with_context("field", "options_json")
                    .with_source(e)
            })?;
        let mut ai = AiRequest::new(request.operation, request.text);
        if let Some(options) = &options {
            ai = ai.with_options(options);
        }
        if let Some(question) = request.question {
            ai = ai.with_question(question);
        }
        self.cache.key(&ai)
    }

    /// The request's Python keys, without the prefix (one per variant, duplicates removed).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] naming `options_json` for options that are not JSON.
    pub fn legacy_keys(&self, request: &LegacyRequest<'_>) -> Result<Vec<String>> {
        let options = match request.options_json {
            Some(json) => {
                PyValue::from_json(json).map_err(|e| e.with_context("field", "options_json"))?
            }
            None => PyValue::None,
        };
        let mut out: Vec<String> = Vec::with_capacity(self.keys.len());
        for generator in &self.keys {
            // HEAD raised for some requests (a truthy non-string `options["question"]`): that
            // variant has no key for them.
            let Ok(full) =
                generator.key(request.text, request.operation, &options, request.question)
            else {
                continue;
            };
            let logical = full.strip_prefix("ai_cache:").unwrap_or(&full).to_owned();
            if !out.contains(&logical) {
                out.push(logical);
            }
        }
        Ok(out)
    }

    /// The answer for `request`: the v1 entry, else a bulk-imported Python answer, else (in
    /// read-through mode) the Python entry itself; an answer taken over is written under the v1
    /// key first (never over a removal) and then served from there. A failing Python store is a
    /// miss, counted in [`stats`](Self::stats).
    ///
    /// # Errors
    /// As [`AIResponseCache::get`].
    pub async fn get(&self, request: &LegacyRequest<'_>) -> Result<Option<CachedResponse<T>>> {
        let key = self.key(request)?;
        if let Some(found) = self.cache.get(&key).await? {
            return Ok(Some(found));
        }
        bump(&self.counters.misses_checked);
        let legacy_keys = self.legacy_keys(request)?;
        for legacy_key in &legacy_keys {
            let imported = RequestKey::imported(request.operation, legacy_key, key.tier())?;
            if self.take_over_imported(&key, &imported).await? {
                bump(&self.counters.imported_hits);
                return self.cache.get(&key).await;
            }
        }
        if !self.read_through || legacy_keys.is_empty() {
            return Ok(None);
        }
        match self.read_through(&key, &legacy_keys).await {
            Ok(true) => self.cache.get(&key).await,
            Ok(false) => Ok(None),
            Err(e) => {
                bump(&self.counters.errors);
                tracing::warn!(error = %e, "reading the Python service's entry failed; a miss");
                Ok(None)
            }
        }
    }

    /// Moves a bulk-imported answer to the v1 key (if `imported` holds one); true when the v1 key
    /// now holds it. The imported copy is removed either way, so that an answer a removal refused
    /// cannot come back once the removal's record lapses.
    async fn take_over_imported(&self, key: &RequestKey, imported: &RequestKey) -> Result<bool> {
        let Some(l2) = self.cache.l2() else {
            return Ok(false);
        };
        bump(&self.counters.imported_reads);
        let Some(stored) = l2.store().get(imported.cache_key()).await? else {
            return Ok(false);
        };
        let Ok(frame) = l2.decode_frame(imported.cache_key(), stored.clone()) else {
            return Ok(false);
        };
        let taken =
            if self.blocks.covers(key.cache_key()) || self.blocks.covers(imported.cache_key()) {
                false
            } else {
                let left = frame.meta.remaining_ms(unix_millis());
                let meta = frame.meta.clone();
                self.write_v1(key, meta, frame.payload, left).await? == Some(true)
            };
        if !taken {
            bump(&self.counters.blocked);
        }
        l2.store()
            .delete_if_unchanged(imported.cache_key(), stored)
            .await?;
        Ok(taken)
    }

    /// Reads the Python keys (one `MGET`) and takes the first answer over; true when the v1 key
    /// now holds it.
    async fn read_through(&self, key: &RequestKey, legacy_keys: &[String]) -> Result<bool> {
        let names: Vec<CacheKey> = legacy_keys
            .iter()
            .filter_map(|k| CacheKey::new(k).ok())
            .collect();
        bump(&self.counters.legacy_reads);
        self.counters
            .legacy_keys_read
            .fetch_add(names.len() as u64, Ordering::Relaxed);
        let found = self.legacy.get_many(&names).await?;
        for (name, stored) in names.iter().zip(found) {
            let Some(stored) = stored else { continue };
            let Found::Answer(answer) = self.read_value(&stored) else {
                continue;
            };
            let Some(left) = self.legacy.remaining_ttl(name).await? else {
                continue;
            };
            if self.blocks.covers(key.cache_key()) {
                bump(&self.counters.blocked);
                return Ok(false);
            }
            let left_ms = u64::try_from(left.as_millis()).unwrap_or(u64::MAX);
            let now = unix_millis();
            let meta = FrameMeta::new(written_at(now, left_ms), now.saturating_add(left_ms))
                .with_operation(key.operation().to_owned())
                .with_text_tier(key.tier())
                .with_ai_version(AI_VERSION);
            let payload = bytes::Bytes::from(encode_msgpack(&answer)?);
            let written = self.write_v1(key, meta, payload, left_ms).await? == Some(true);
            bump(if written {
                &self.counters.read_through_imports
            } else {
                &self.counters.blocked
            });
            return Ok(written);
        }
        Ok(false)
    }

    /// Decodes one stored Python value into the answer type, counting refusals.
    fn read_value(&self, stored: &[u8]) -> Found<T> {
        self.answer_of(self.decoder.decode(stored))
    }

    /// The answer a decoded Python value gives, counting refusals.
    fn answer_of(&self, decoded: LegacyDecoded) -> Found<T> {
        let found = match decoded {
            LegacyDecoded::Value(PyValue::None) => Found::Empty,
            LegacyDecoded::Value(value) => match value.to_typed::<T>() {
                Ok(answer) => Found::Answer(answer),
                Err(_) => Found::Unconvertible,
            },
            LegacyDecoded::NonStandard(_) => Found::Refused(LegacyRefusal::NonStandardJson),
            LegacyDecoded::Refused(reason) => Found::Refused(reason),
        };
        match &found {
            Found::Refused(reason) => bump(&self.counters.refused[reason.index()]),
            Found::Unconvertible => bump(&self.counters.unconvertible),
            _ => {}
        }
        found
    }

    /// Writes an encoded answer under `key` for `left_ms`, unless a removal of this instance is
    /// in progress (`None`), the key holds something, or its removal is on record
    /// (`Some(false)`).
    async fn write_v1(
        &self,
        key: &RequestKey,
        meta: FrameMeta,
        payload: bytes::Bytes,
        left_ms: u64,
    ) -> Result<Option<bool>> {
        let Some(l2) = self.cache.l2() else {
            return Ok(Some(false));
        };
        let Some(_moving) = self.cache.inner.flights.begin_move(key.cache_key()) else {
            return Ok(None);
        };
        let expires_at = unix_millis().saturating_add(left_ms.min(MAX_TTL_MS));
        let frame = l2
            .encode_owned(key.cache_key(), &meta, Codec::MessagePack, payload)
            .await?;
        let entry = RestoreEntry::new(key.cache_key().clone(), frame, expires_at);
        let written = l2
            .store()
            .restore_many(&[entry], RestoreRule::IfAbsent)
            .await?;
        Ok(Some(written.first().copied().unwrap_or(false)))
    }

    /// Stores `answer` for `request` under its v1 key.
    ///
    /// # Errors
    /// As [`AIResponseCache::put`].
    pub async fn put(&self, request: &LegacyRequest<'_>, answer: T) -> Result<bool> {
        let key = self.key(request)?;
        self.cache
            .put(&key, answer, &RequestControls::default())
            .await
    }

    /// Removes the answer for `request`: its v1 entry and the answers bulk-imported for its
    /// Python keys (the Python entries themselves are left alone, and are not taken over again:
    /// see the module docs).
    ///
    /// # Errors
    /// As [`AIResponseCache::delete`].
    pub async fn delete(&self, request: &LegacyRequest<'_>) -> Result<bool> {
        let key = self.key(request)?;
        self.blocks.key(key.cache_key());
        let mut removed = self.cache.delete(&key).await?;
        for legacy_key in self.legacy_keys(request)? {
            let imported = RequestKey::imported(request.operation, &legacy_key, key.tier())?;
            self.blocks.key(imported.cache_key());
            removed |= self.cache.delete(&imported).await?;
        }
        Ok(removed)
    }

    /// [`AIResponseCache::invalidate_by_operation`]: bulk-imported answers of the operation go
    /// too, and no Python answer of it is taken over again.
    ///
    /// # Errors
    /// As the cache's.
    pub async fn invalidate_by_operation(&self, operation: &str) -> Result<u64> {
        crate::keys::validate_operation(operation)?;
        self.blocks
            .pattern(KeyPattern::new(format!("{operation}:*"))?.with_segments(2));
        self.cache.invalidate_by_operation(operation).await
    }

    /// [`AIResponseCache::invalidate_pattern`] (a glob over v1 keys, `{operation}:{digest}`: not
    /// the Python service's substring of its keys): bulk-imported answers matching it go too,
    /// and no Python answer it covers is taken over again.
    ///
    /// # Errors
    /// As the cache's.
    pub async fn invalidate_pattern(&self, pattern: &str) -> Result<u64> {
        self.blocks
            .pattern(KeyPattern::new(pattern)?.with_segments(2));
        self.cache.invalidate_pattern(pattern).await
    }

    /// [`AIResponseCache::invalidate_all`], and no Python answer is taken over again.
    ///
    /// # Errors
    /// As the cache's.
    pub async fn invalidate_all(&self) -> Result<u64> {
        self.blocks.pattern(KeyPattern::all().with_segments(2));
        self.cache.invalidate_all().await
    }
}

/// The operation of a Python key (`op:{operation}|txt:…`).
fn operation_of(legacy_key: &str) -> Option<&str> {
    legacy_key
        .strip_prefix("op:")?
        .split_once("|txt:")
        .map(|(op, _)| op)
}

/// A decoded legacy answer's text tier, when its metadata says (the 79e0b9c writer added it).
fn tier_of(value: &PyValue) -> Option<TextTier> {
    let PyValue::Dict(entries) = value else {
        return None;
    };
    entries.iter().find_map(|(k, v)| match (k.as_str(), v) {
        ("text_tier", PyValue::Str(s)) => [
            TextTier::Small,
            TextTier::Medium,
            TextTier::Large,
            TextTier::XLarge,
        ]
        .into_iter()
        .find(|tier| tier.as_str() == s),
        _ => None,
    })
}
