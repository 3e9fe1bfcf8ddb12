//! Import mode: every entry under the Python prefix converted, page by page, into this cache's
//! namespace, with a report by kind.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cache_core::frame::{Codec, FrameMeta, TextTier, encode_msgpack};
use cache_core::{KeyPattern, RestoreEntry, RestoreRule, Result, WalkMode, unix_millis};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{CacheCompatibilityWrapper, Found, operation_of, tier_of, written_at};
use crate::AI_VERSION;
use crate::keys::RequestKey;
use crate::legacy::{LegacyDecoded, LegacyRefusal};

/// What [`CacheCompatibilityWrapper::import`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImportReport {
    /// Python entries met.
    pub scanned: u64,
    /// Imported.
    pub converted: u64,
    /// Not imported because the cache holds the key already, or remembers its removal.
    pub skipped: u64,
    /// Refused because they are pickle-based (`raw:`, `compressed:`, `pick:`, `zlib:`, or an
    /// envelope of unknown content, which Python would unpickle): never decoded.
    pub refused_pickle: u64,
    /// Refused for another reason, by reason (`encrypted`, `nonstandard_json`, `too_large`, …).
    pub refused: BTreeMap<&'static str, u64>,
    /// Decoded, but not of the answer type's shape, or an empty (`null`) answer.
    pub undecodable: u64,
    /// Gone or expired before they were imported.
    pub expired: u64,
    /// Keys that are not of the Python format (no `op:…|txt:` shape, or an invalid operation).
    pub foreign: u64,
    /// Left for a later run: a removal of this instance was in progress.
    pub deferred: u64,
    /// How long it took.
    pub duration: Duration,
}

impl<T> CacheCompatibilityWrapper<T>
where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    /// Imports every Python entry into this cache's namespace, page by page (memory bounded by
    /// a page; one pipelined write per page), calling `progress` after each page. Python entries
    /// are never modified or deleted; answers already present, or whose removal is on record,
    /// are left as they are, so a rerun imports only what is left.
    ///
    /// # Errors
    /// Store errors (an unavailable store stops the import; what was imported stays).
    pub async fn import(
        &self,
        mut progress: impl FnMut(&ImportReport) + Send,
    ) -> Result<ImportReport> {
        let started = Instant::now();
        let mut report = ImportReport::default();
        let Some(l2) = self.cache.l2() else {
            return Ok(report);
        };
        let pattern = KeyPattern::new("op:*")?;
        let mut cursor = None;
        loop {
            let page = self.legacy.walk(&pattern, cursor, WalkMode::Frames).await?;
            let mut batch = Vec::new();
            let mut guards = Vec::new();
            for entry in &page.entries {
                report.scanned += 1;
                let (Some(stored), Some(left)) = (&entry.frame, entry.remaining_ttl) else {
                    report.expired += 1;
                    continue;
                };
                let Some(operation) = operation_of(entry.key.as_str()) else {
                    report.foreign += 1;
                    continue;
                };
                let decoded = self.decoder.decode(stored);
                let tier = match &decoded {
                    LegacyDecoded::Value(value) => tier_of(value),
                    _ => None,
                };
                let Ok(target) = RequestKey::imported(
                    operation,
                    entry.key.as_str(),
                    tier.unwrap_or(TextTier::Medium),
                ) else {
                    report.foreign += 1;
                    continue;
                };
                let answer = match self.answer_of(decoded) {
                    Found::Answer(answer) => answer,
                    Found::Refused(LegacyRefusal::Pickle | LegacyRefusal::UnknownEnvelope) => {
                        report.refused_pickle += 1;
                        continue;
                    }
                    Found::Refused(reason) => {
                        *report.refused.entry(reason.as_str()).or_default() += 1;
                        continue;
                    }
                    Found::Unconvertible | Found::Empty => {
                        report.undecodable += 1;
                        continue;
                    }
                };
                if self.blocks.covers(target.cache_key()) {
                    report.skipped += 1;
                    continue;
                }
                let Some(moving) = self.cache.inner.flights.begin_move(target.cache_key()) else {
                    report.deferred += 1;
                    continue;
                };
                let left_ms = u64::try_from(left.as_millis()).unwrap_or(u64::MAX);
                let now = unix_millis();
                let meta = FrameMeta::new(written_at(now, left_ms), now.saturating_add(left_ms))
                    .with_operation(target.operation().to_owned())
                    .with_text_tier(target.tier())
                    .with_ai_version(AI_VERSION);
                let payload = bytes::Bytes::from(encode_msgpack(&answer)?);
                let frame = l2
                    .encode_owned(target.cache_key(), &meta, Codec::MessagePack, payload)
                    .await?;
                batch.push(RestoreEntry::new(
                    target.cache_key().clone(),
                    frame,
                    now.saturating_add(left_ms.min(super::MAX_TTL_MS)),
                ));
                guards.push(moving);
            }
            let written = l2
                .store()
                .restore_many(&batch, RestoreRule::IfAbsent)
                .await?;
            drop(guards);
            let converted = written.iter().filter(|w| **w).count() as u64;
            report.converted += converted;
            report.skipped += batch.len() as u64 - converted;
            report.duration = started.elapsed();
            progress(&report);
            match page.next {
                Some(next) => cursor = Some(next),
                None => return Ok(report),
            }
        }
    }
}
