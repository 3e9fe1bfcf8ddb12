//! Import mode: every entry under the Python prefix converted, page by page, into this cache's
//! namespace, with a report by kind.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cache_core::frame::TextTier;
use cache_core::{KeyPattern, Result, WalkMode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{CacheCompatibilityWrapper, Found, operation_of, tier_of};
use crate::keys::RequestKey;
use crate::legacy::LegacyDecoded;

/// What [`CacheCompatibilityWrapper::import`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImportReport {
    /// Python entries met.
    pub scanned: u64,
    /// Imported.
    pub converted: u64,
    /// Not imported because the cache holds the key already or remembers its removal.
    pub skipped: u64,
    /// Refused because they are pickle-based (never decoded).
    pub refused_pickle: u64,
    /// Refused for another reason, by reason (`encrypted`, `nonstandard_json`, …).
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
    /// a page), calling `progress` after each page. Python entries are never modified or
    /// deleted; answers already present, or whose removal is on record, are left as they are,
    /// so a rerun imports only what is left.
    ///
    /// # Errors
    /// Store errors (an unavailable store stops the import; what was imported stays).
    pub async fn import(
        &self,
        mut progress: impl FnMut(&ImportReport) + Send,
    ) -> Result<ImportReport> {
        let started = Instant::now();
        let mut report = ImportReport::default();
        let pattern = KeyPattern::new("op:*")?;
        let mut cursor = None;
        loop {
            let page = self.legacy.walk(&pattern, cursor, WalkMode::Frames).await?;
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
                    tier.unwrap_or(TextTier::Small),
                ) else {
                    report.foreign += 1;
                    continue;
                };
                let answer = match self.answer_of(decoded) {
                    Found::Answer(answer) => answer,
                    Found::Refused(crate::legacy::LegacyRefusal::Pickle) => {
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
                match self.import_one(&target, &answer, left).await? {
                    Some(true) => report.converted += 1,
                    Some(false) => report.skipped += 1,
                    None => report.deferred += 1,
                }
            }
            report.duration = started.elapsed();
            progress(&report);
            match page.next {
                Some(next) => cursor = Some(next),
                None => return Ok(report),
            }
        }
    }
}
