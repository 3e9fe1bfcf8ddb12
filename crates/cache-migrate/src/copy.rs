//! Migrations: one store copied into another page by page, without a file in between, through
//! the same rules as a restore.

use std::time::Instant;

use cache_core::{
    DynFrameStore, KeyPattern, RestoreEntry, Result, WalkCursor, WalkMode, unix_millis,
};

use crate::CacheMigrationManager;
use crate::apply::{Applier, RestorePolicy};
use crate::progress::{Phase, Progress, ProgressSink};
use crate::report::MigrationResult;

impl CacheMigrationManager {
    /// Copies the entries of `source` whose keys match `filter` into `target` by `policy`: the
    /// frames as stored, with their remaining TTLs, re-sealed when the namespaces differ and the
    /// frames are encrypted. It never undoes a removal the target remembers. Cancellation-safe:
    /// a rerun reaches the same state.
    ///
    /// # Errors
    /// Either store's errors; [`ErrorKind::Unsupported`](cache_core::ErrorKind::Unsupported) for
    /// an encrypted entry that cannot be re-sealed for the target's namespace.
    pub async fn migrate(
        &self,
        source: &dyn DynFrameStore,
        target: &dyn DynFrameStore,
        filter: &KeyPattern,
        policy: RestorePolicy,
    ) -> Result<MigrationResult> {
        let started = Instant::now();
        let applier = Applier::new(
            &source.info().namespace,
            target,
            policy,
            self.cipher.as_ref(),
            self.batch_size,
        );
        let mut result = MigrationResult {
            success: false,
            keys_processed: 0,
            keys_migrated: 0,
            keys_skipped: 0,
            keys_expired: 0,
            keys_failed: 0,
            chunks_processed: 0,
            bytes: 0,
            keys_resealed: 0,
            migration_time: started.elapsed(),
            errors: Vec::new(),
            warnings: Vec::new(),
        };
        let mut progress = Progress::new(Phase::Migrate);
        progress.estimated_entries = source.approximate_len().await.ok().flatten();
        let mut cursor: Option<WalkCursor> = None;
        loop {
            let page = source.walk(filter, cursor.take(), WalkMode::Frames).await?;
            let now = unix_millis();
            let entries: Vec<RestoreEntry> = page
                .entries
                .into_iter()
                .filter_map(|entry| {
                    let ttl = entry.remaining_ttl?;
                    let left = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
                    Some(RestoreEntry::new(
                        entry.key,
                        entry.frame?,
                        now.saturating_add(left),
                    ))
                })
                .collect();
            result.keys_processed += entries.len() as u64;
            result.bytes += entries.iter().map(|e| e.frame.len() as u64).sum::<u64>();
            let applied = applier.apply(entries).await?;
            result.keys_migrated += applied.written;
            result.keys_skipped += applied.skipped;
            result.keys_expired += applied.expired;
            result.keys_failed += applied.failed;
            result.keys_resealed += applied.resealed;
            result.chunks_processed += 1;
            progress.entries = result.keys_processed;
            progress.bytes = result.bytes;
            ProgressSink::report(self.progress.as_ref(), &progress);
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        if result.keys_failed > 0 {
            result.warnings.push(format!(
                "{} entries were larger than the target accepts and were not copied",
                result.keys_failed
            ));
        }
        result.success = true;
        result.migration_time = started.elapsed();
        Ok(result)
    }
}
