//! [`CacheCompatibilityWrapper`]: an [`AIResponseCache`] that takes over the Python service's
//! Redis without a cold cache, never decoding a pickle and never undoing a removal.
//!
//! Answers the Python service stored live under its keys (`ai_cache:op:…|txt:…`, see
//! [`LegacyKeyGenerator`]). The wrapper reads them through a store over the Python prefix, and
//! never writes or deletes there. A decoded answer is imported into this cache's namespace under
//! `{operation}:py{digest of the Python key}` (the shape of every v1 key, so every v1 removal of
//! its operation, pattern or namespace covers it), with the Python entry's remaining TTL, through
//! [`restore_many`](cache_core::FrameStore::restore_many): a key whose removal the store
//! remembers (a tombstone, or a pattern removal recorded after the Python entry could have been
//! written) is never imported again. Imports are fenced against this instance's removals like a
//! computation in flight.
//!
//! - **Lookup** ([`get`](CacheCompatibilityWrapper::get)): the v1 key, then the imported keys of
//!   the request's Python keys (one per configured variant), then, in read-through mode, the
//!   Python keys themselves (one `MGET`, counted), imported on the way.
//! - **Import** ([`import`](CacheCompatibilityWrapper::import)): every Python entry, page by page.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cache_core::frame::{Codec, FrameMeta, TextTier, encode_msgpack};
use cache_core::{
    CacheKey, DynFrameStore, Error, ErrorKind, RestoreEntry, RestoreRule, Result, unix_millis,
};
use cache_security::Secret;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::cache::AIResponseCache;
use crate::keys::{AiRequest, RequestKey};
use crate::legacy::{
    LegacyDecoded, LegacyDecoder, LegacyKeyGenerator, LegacyRefusal, LegacyVariant, PyValue,
};
use crate::response::CachedResponse;
use crate::{AI_VERSION, RequestControls};

mod import;

pub use import::ImportReport;

/// The longest TTL the Python service gave an entry (legacy `sentiment`: 24 hours). An imported
/// answer is dated as if written that long before it expires, never later than it was.
const MAX_LEGACY_TTL_MS: u64 = 86_400_000;

/// A request as the Python service saw it: options as JSON text, because the order of nested
/// option members changes its key.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct LegacyRequest<'a> {
    /// The input text.
    pub text: &'a str,
    /// The operation.
    pub operation: &'a str,
    /// The request options as JSON text (`None`: no options).
    pub options_json: Option<&'a str>,
    /// The question.
    pub question: Option<&'a str>,
}

impl<'a> LegacyRequest<'a> {
    /// A request without options or question.
    pub fn new(operation: &'a str, text: &'a str) -> Self {
        Self {
            text,
            operation,
            options_json: None,
            question: None,
        }
    }

    /// Sets the options (JSON text, member order kept).
    #[must_use]
    pub fn with_options_json(mut self, options: &'a str) -> Self {
        self.options_json = Some(options);
        self
    }

    /// Sets the question.
    #[must_use]
    pub fn with_question(mut self, question: &'a str) -> Self {
        self.question = Some(question);
        self
    }
}

/// How [`CacheCompatibilityWrapper`] finds the Python service's answers.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CompatibilityConfig {
    /// The key variants to look for: HEAD (f5b04c0) folds the question into the options,
    /// 79e0b9c keeps it apart. Both by default.
    pub variants: Vec<LegacyVariant>,
    /// Texts longer than this many code points were hashed in the key: 1000 for the cache's own
    /// default, 500 when the service built it through its `CacheFactory`.
    pub text_hash_threshold: usize,
    /// The Python service's `REDIS_ENCRYPTION_KEY`, when it encrypted (Fernet).
    pub fernet_key: Option<Secret>,
    /// On a miss, read the Python keys themselves and import what they hold (one extra `MGET`
    /// per miss). Off by default: without it, only answers already imported are found.
    pub read_through: bool,
}

impl Default for CompatibilityConfig {
    fn default() -> Self {
        Self {
            variants: vec![LegacyVariant::Head, LegacyVariant::Legacy],
            text_hash_threshold: 1000,
            fernet_key: None,
            read_through: false,
        }
    }
}

impl CompatibilityConfig {
    /// Turns read-through on or off.
    #[must_use]
    pub fn with_read_through(mut self, on: bool) -> Self {
        self.read_through = on;
        self
    }

    /// Looks for these key variants only.
    #[must_use]
    pub fn with_variants(mut self, variants: Vec<LegacyVariant>) -> Self {
        self.variants = variants;
        self
    }

    /// Sets the text-hash threshold the Python keys were built with.
    #[must_use]
    pub fn with_text_hash_threshold(mut self, threshold: usize) -> Self {
        self.text_hash_threshold = threshold;
        self
    }

    /// Decrypts the Python values with this Fernet key.
    #[must_use]
    pub fn with_fernet_key(mut self, key: Secret) -> Self {
        self.fernet_key = Some(key);
        self
    }

    fn check(&self) -> Result<()> {
        if self.variants.is_empty() {
            return Err(
                Error::new(ErrorKind::Config, "no legacy key variant to look for")
                    .with_context("field", "variants")
                    .with_context("allowed", "HEAD, 79e0b9c or both"),
            );
        }
        if !(1..=100_000).contains(&self.text_hash_threshold) {
            return Err(
                Error::new(ErrorKind::Config, "text hash threshold out of range")
                    .with_context("field", "text_hash_threshold")
                    .with_context("value", self.text_hash_threshold)
                    .with_context(
                        "allowed",
                        "1..=100000 (the Python service used 1000 or 500)",
                    ),
            );
        }
        Ok(())
    }
}

/// What the wrapper did, since it was built.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CompatibilityStats {
    /// v1 misses that looked for an imported or Python answer.
    pub misses_checked: u64,
    /// Of those, the ones an imported answer served.
    pub imported_hits: u64,
    /// Round trips to the Python keys (read-through: one `MGET` per miss).
    pub legacy_reads: u64,
    /// Python keys read.
    pub legacy_keys_read: u64,
    /// Python answers imported by read-through.
    pub read_through_imports: u64,
    /// Python answers not imported because the key holds something or was removed.
    pub blocked: u64,
    /// Python values refused, by reason (`pickle`, `encrypted`, …).
    pub refused: BTreeMap<&'static str, u64>,
    /// Python values that decoded but do not have the answer type's shape.
    pub unconvertible: u64,
}

#[derive(Default)]
struct Counters {
    misses_checked: AtomicU64,
    imported_hits: AtomicU64,
    legacy_reads: AtomicU64,
    legacy_keys_read: AtomicU64,
    read_through_imports: AtomicU64,
    blocked: AtomicU64,
    refused: [AtomicU64; LegacyRefusal::ALL.len()],
    unconvertible: AtomicU64,
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

impl<T> CacheCompatibilityWrapper<T>
where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    /// Wraps `cache`, reading the Python service's entries through `legacy` (a store over the
    /// Python prefix, `ai_cache` by default: for Redis, a `RedisStore` with that `key_prefix`).
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when the cache has no shared tier (imports go there), for an empty
    /// variant list, a threshold out of range, or a key that is not a Fernet key.
    pub fn new(
        cache: AIResponseCache<T>,
        legacy: Arc<dyn DynFrameStore>,
        config: &CompatibilityConfig,
    ) -> Result<Self> {
        config.check()?;
        if cache.l2().is_none() {
            return Err(Error::new(
                ErrorKind::Config,
                "the compatibility wrapper imports answers into the cache's shared tier, and this cache has none",
            )
            .with_context("fix", "build the cache with a store (Redis)"));
        }
        let mut variants = config.variants.clone();
        variants.dedup();
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
    /// [`ErrorKind::InvalidInput`] for options that are not JSON.
    pub fn legacy_keys(&self, request: &LegacyRequest<'_>) -> Result<Vec<String>> {
        let options = match request.options_json {
            Some(json) => PyValue::from_json(json)?,
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

    /// The answer for `request`: the v1 entry, else an imported Python answer, else (in
    /// read-through mode) the Python entry itself, imported on the way.
    ///
    /// # Errors
    /// As [`AIResponseCache::get`]; the Python store's errors other than unavailability.
    pub async fn get(&self, request: &LegacyRequest<'_>) -> Result<Option<CachedResponse<T>>> {
        let key = self.key(request)?;
        if let Some(found) = self.cache.get(&key).await? {
            return Ok(Some(found));
        }
        bump(&self.counters.misses_checked);
        let legacy_keys = self.legacy_keys(request)?;
        let mut imported = Vec::with_capacity(legacy_keys.len());
        for legacy_key in &legacy_keys {
            let target = RequestKey::imported(request.operation, legacy_key, key.tier())?;
            if let Some(found) = self.cache.get(&target).await? {
                bump(&self.counters.imported_hits);
                return Ok(Some(found));
            }
            imported.push(target);
        }
        if !self.read_through || legacy_keys.is_empty() {
            return Ok(None);
        }
        self.read_through(&legacy_keys, &imported).await
    }

    async fn read_through(
        &self,
        legacy_keys: &[String],
        imported: &[RequestKey],
    ) -> Result<Option<CachedResponse<T>>> {
        let names: Vec<CacheKey> = legacy_keys
            .iter()
            .filter_map(|k| CacheKey::new(k).ok())
            .collect();
        bump(&self.counters.legacy_reads);
        self.counters
            .legacy_keys_read
            .fetch_add(names.len() as u64, Ordering::Relaxed);
        let found = match self.legacy.get_many(&names).await {
            Ok(found) => found,
            Err(e) if e.is_transient() => return Ok(None),
            Err(e) => return Err(e),
        };
        for ((name, stored), target) in names.iter().zip(found).zip(imported) {
            let Some(stored) = stored else { continue };
            let answer = match self.read_value(&stored) {
                Found::Answer(answer) => answer,
                _ => continue,
            };
            let Some(left) = self.legacy.remaining_ttl(name).await? else {
                continue;
            };
            if self.import_one(target, &answer, left).await? == Some(true) {
                bump(&self.counters.read_through_imports);
            } else {
                bump(&self.counters.blocked);
            }
            // Whatever the import did, the cache decides: a removal on record leaves a miss.
            return self.cache.get(target).await;
        }
        Ok(None)
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

    /// Writes `answer` under `target` for `left`, unless a removal of this instance is in
    /// progress (`None`), the key holds something, or its removal is on record (`Some(false)`).
    async fn import_one(
        &self,
        target: &RequestKey,
        answer: &T,
        left: Duration,
    ) -> Result<Option<bool>> {
        let Some(l2) = self.cache.l2() else {
            return Ok(Some(false));
        };
        let Some(_moving) = self.cache.inner.flights.begin_move(target.cache_key()) else {
            return Ok(None);
        };
        let now = unix_millis();
        let left_ms = u64::try_from(left.as_millis())
            .unwrap_or(u64::MAX)
            .min(MAX_LEGACY_TTL_MS);
        let expires_at = now.saturating_add(left_ms);
        let written_at = now.saturating_sub(MAX_LEGACY_TTL_MS - left_ms);
        let meta = FrameMeta::new(written_at, expires_at)
            .with_operation(target.operation().to_owned())
            .with_text_tier(target.tier())
            .with_ai_version(AI_VERSION);
        let payload = bytes::Bytes::from(encode_msgpack(answer)?);
        let frame = l2
            .encode_owned(target.cache_key(), &meta, Codec::MessagePack, payload)
            .await?;
        let entry = RestoreEntry::new(target.cache_key().clone(), frame, expires_at);
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

    /// Removes the answer for `request`: its v1 entry and the answers imported for its Python
    /// keys (the Python entries themselves are left alone, and are never imported again while
    /// the removal is on record).
    ///
    /// # Errors
    /// As [`AIResponseCache::delete`].
    pub async fn delete(&self, request: &LegacyRequest<'_>) -> Result<bool> {
        let key = self.key(request)?;
        let mut removed = self.cache.delete(&key).await?;
        for legacy_key in self.legacy_keys(request)? {
            let target = RequestKey::imported(request.operation, &legacy_key, key.tier())?;
            removed |= self.cache.delete(&target).await?;
        }
        Ok(removed)
    }

    /// [`AIResponseCache::invalidate_by_operation`]: imported answers of the operation go too.
    ///
    /// # Errors
    /// As the cache's.
    pub async fn invalidate_by_operation(&self, operation: &str) -> Result<u64> {
        self.cache.invalidate_by_operation(operation).await
    }

    /// [`AIResponseCache::invalidate_pattern`]: imported answers matching it go too.
    ///
    /// # Errors
    /// As the cache's.
    pub async fn invalidate_pattern(&self, pattern: &str) -> Result<u64> {
        self.cache.invalidate_pattern(pattern).await
    }

    /// The wrapper's counters.
    pub fn stats(&self) -> CompatibilityStats {
        let c = &self.counters;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        CompatibilityStats {
            misses_checked: load(&c.misses_checked),
            imported_hits: load(&c.imported_hits),
            legacy_reads: load(&c.legacy_reads),
            legacy_keys_read: load(&c.legacy_keys_read),
            read_through_imports: load(&c.read_through_imports),
            blocked: load(&c.blocked),
            refused: LegacyRefusal::ALL
                .iter()
                .map(|r| (r.as_str(), load(&c.refused[r.index()])))
                .filter(|(_, n)| *n > 0)
                .collect(),
            unconvertible: load(&c.unconvertible),
        }
    }

    /// The Python name of [`get`](Self::get).
    ///
    /// # Errors
    /// As [`get`](Self::get).
    #[deprecated(note = "use `get` with a `LegacyRequest`")]
    pub async fn get_cached_response(
        &self,
        text: &str,
        operation: &str,
        options_json: Option<&str>,
        question: Option<&str>,
    ) -> Result<Option<CachedResponse<T>>> {
        self.get(&legacy_request(text, operation, options_json, question))
            .await
    }

    /// The Python name of [`put`](Self::put).
    ///
    /// # Errors
    /// As [`put`](Self::put).
    #[deprecated(note = "use `put` with a `LegacyRequest`")]
    pub async fn cache_response(
        &self,
        text: &str,
        operation: &str,
        options_json: Option<&str>,
        response: T,
        question: Option<&str>,
    ) -> Result<bool> {
        self.put(
            &legacy_request(text, operation, options_json, question),
            response,
        )
        .await
    }

    /// The Python name of the cache's statistics.
    #[deprecated(note = "use `cache().stats()` and `stats()`")]
    pub fn get_cache_stats(&self) -> crate::AiCacheStats {
        self.cache.stats()
    }

    /// The Python name of the overall hit ratio: hits / reads over every operation, 0 without
    /// reads.
    #[deprecated(note = "use `cache().stats()`")]
    pub fn get_cache_hit_ratio(&self) -> f64 {
        let stats = self.cache.stats();
        let (hits, reads) = stats
            .by_operation
            .values()
            .fold((0u64, 0u64), |(h, r), op| {
                (h + op.hits(), r + op.hits() + op.misses)
            });
        #[allow(clippy::cast_precision_loss, reason = "a ratio of counters")]
        let ratio = if reads == 0 {
            0.0
        } else {
            hits as f64 / reads as f64
        };
        ratio
    }
}

fn legacy_request<'a>(
    text: &'a str,
    operation: &'a str,
    options_json: Option<&'a str>,
    question: Option<&'a str>,
) -> LegacyRequest<'a> {
    LegacyRequest {
        text,
        operation,
        options_json,
        question,
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
