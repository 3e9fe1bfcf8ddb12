//! The Python tool's method names (`migration.py`), on the same jobs.

use std::path::Path;

use cache_core::{DynFrameStore, KeyPattern, Result};

use crate::{
    BackupResult, CacheMigrationManager, MigrationResult, RestorePolicy, RestoreResult,
    VerifyOptions, VerifyResult,
};

impl CacheMigrationManager {
    /// `create_backup(source, file, pattern)`: [`backup_to_path`](Self::backup_to_path).
    ///
    /// # Errors
    /// As [`backup_to_path`](Self::backup_to_path).
    pub async fn create_backup(
        &self,
        source: &dyn DynFrameStore,
        file: impl AsRef<Path>,
        pattern: &KeyPattern,
    ) -> Result<BackupResult> {
        self.backup_to_path(source, pattern, file).await
    }

    /// `restore_backup(file, target, overwrite)`: [`restore_from_path`](Self::restore_from_path)
    /// with [`RestorePolicy::Overwrite`] or [`RestorePolicy::SkipExisting`].
    ///
    /// # Errors
    /// As [`restore_from_path`](Self::restore_from_path).
    pub async fn restore_backup(
        &self,
        file: impl AsRef<Path>,
        target: &dyn DynFrameStore,
        overwrite: bool,
    ) -> Result<RestoreResult> {
        let policy = if overwrite {
            RestorePolicy::Overwrite
        } else {
            RestorePolicy::SkipExisting
        };
        self.restore_from_path(file, target, policy).await
    }

    /// `migrate_ai_cache_data(source, target)`: [`migrate`](Self::migrate) of every entry,
    /// keeping what the target holds.
    ///
    /// # Errors
    /// As [`migrate`](Self::migrate).
    pub async fn migrate_ai_cache_data(
        &self,
        source: &dyn DynFrameStore,
        target: &dyn DynFrameStore,
    ) -> Result<MigrationResult> {
        self.migrate(
            source,
            target,
            &KeyPattern::all(),
            RestorePolicy::SkipExisting,
        )
        .await
    }

    /// `validate_data_consistency(source, target, sample_size)`: [`verify`](Self::verify).
    ///
    /// # Errors
    /// As [`verify`](Self::verify).
    pub async fn validate_data_consistency(
        &self,
        source: &dyn DynFrameStore,
        target: &dyn DynFrameStore,
        sample_size: Option<u64>,
    ) -> Result<VerifyResult> {
        let options = VerifyOptions {
            sample: sample_size,
            ..VerifyOptions::default()
        };
        self.verify(source, target, &options).await
    }
}
