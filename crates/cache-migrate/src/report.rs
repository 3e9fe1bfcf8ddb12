//! What each job did: the result types, with the fields the Python tool reported.

use std::path::PathBuf;
use std::time::Duration;

use crate::format::BackupHeader;

#[allow(
    clippy::cast_precision_loss,
    reason = "ratios and percentages for reports"
)]
fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// What [`backup`](crate::CacheMigrationManager::backup) did.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct BackupResult {
    /// Whether the backup is complete (its trailer written).
    pub success: bool,
    /// The file written, for [`backup_to_path`](crate::CacheMigrationManager::backup_to_path).
    pub backup_file: Option<PathBuf>,
    /// The header written.
    pub header: BackupHeader,
    /// Entries written (a key that `SCAN` returned twice is written twice; a restore writes it
    /// once).
    pub keys_backed_up: u64,
    /// Chunks written.
    pub chunks: u64,
    /// The entries' bytes (keys, expiries and frames) before compression.
    pub total_size_bytes: u64,
    /// The bytes written to the file (the chunks as stored, header and trailer included).
    pub compressed_size_bytes: u64,
    /// How long it took.
    pub backup_time: Duration,
    /// Problems that did not stop the backup.
    pub errors: Vec<String>,
}

impl BackupResult {
    /// `1 - compressed / total`: the share compression saved.
    pub fn compression_ratio(&self) -> f64 {
        1.0 - ratio(self.compressed_size_bytes, self.total_size_bytes)
    }
}

/// What [`restore`](crate::CacheMigrationManager::restore) did.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RestoreResult {
    /// Whether every chunk was read and the trailer matched.
    pub success: bool,
    /// The backup's header.
    pub header: BackupHeader,
    /// Entries read from the file.
    pub keys_processed: u64,
    /// Entries written into the target.
    pub keys_restored: u64,
    /// Entries the target kept its own value for: the policy said so (an existing or newer
    /// value), or a removal is on record for the key (a removal made after the backup).
    pub keys_skipped: u64,
    /// Entries whose TTL had passed: not written.
    pub keys_expired: u64,
    /// Entries larger than the target accepts: not written.
    pub keys_failed: u64,
    /// Chunks read and applied.
    pub chunks_processed: u64,
    /// File bytes read.
    pub bytes_read: u64,
    /// Encrypted frames re-sealed for the target's namespace.
    pub keys_resealed: u64,
    /// How long it took.
    pub restore_time: Duration,
    /// Problems that did not stop the restore.
    pub warnings: Vec<String>,
}

impl RestoreResult {
    /// Entries written, as a percentage of those still live.
    pub fn success_rate(&self) -> f64 {
        100.0
            * ratio(
                self.keys_restored,
                self.keys_processed.saturating_sub(self.keys_expired),
            )
    }
}

/// What [`migrate`](crate::CacheMigrationManager::migrate) did.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct MigrationResult {
    /// Whether the whole source was walked and every page applied.
    pub success: bool,
    /// Entries read from the source.
    pub keys_processed: u64,
    /// Entries written into the target.
    pub keys_migrated: u64,
    /// Entries the target kept its own value for (policy or a removal on record).
    pub keys_skipped: u64,
    /// Entries whose TTL passed before they were written.
    pub keys_expired: u64,
    /// Entries that could not be written (their frame refused by the target).
    pub keys_failed: u64,
    /// Source pages processed.
    pub chunks_processed: u64,
    /// Frame bytes copied.
    pub bytes: u64,
    /// Encrypted frames re-sealed for the target's namespace.
    pub keys_resealed: u64,
    /// How long it took.
    pub migration_time: Duration,
    /// Problems that stopped or limited the migration.
    pub errors: Vec<String>,
    /// Problems that did not.
    pub warnings: Vec<String>,
}

impl MigrationResult {
    /// Entries written, as a percentage of those still live.
    pub fn success_rate(&self) -> f64 {
        100.0
            * ratio(
                self.keys_migrated,
                self.keys_processed.saturating_sub(self.keys_expired),
            )
    }
}

/// A TTL that differs between the two stores by more than the tolerance.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TtlDelta {
    /// The logical key.
    pub key: String,
    /// The source's remaining TTL minus the target's, in ms.
    pub delta_ms: i64,
}

/// What [`verify`](crate::CacheMigrationManager::verify) found.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct VerifyResult {
    /// Source entries compared.
    pub keys_checked: u64,
    /// Entries whose frames are byte-identical on both sides.
    pub keys_matched: u64,
    /// Entries present on both sides with different frames.
    pub keys_mismatched: u64,
    /// Source entries the target lacks.
    pub missing_target: u64,
    /// Target entries the source lacks (from a walk of the target, up to the same sample).
    pub missing_source: u64,
    /// Matched entries whose TTLs differ by more than the tolerance.
    pub ttl_mismatched: u64,
    /// The first TTL differences found (at most 100).
    pub ttl_deltas: Vec<TtlDelta>,
    /// The first keys that mismatched or were missing (at most 100).
    pub examples: Vec<String>,
    /// How long it took.
    pub verify_time: Duration,
}

impl VerifyResult {
    /// Matched entries as a percentage of those checked.
    pub fn match_percentage(&self) -> f64 {
        100.0 * ratio(self.keys_matched, self.keys_checked)
    }

    /// Whether both sides hold the same entries with the same frames (TTLs within tolerance).
    pub fn is_consistent(&self) -> bool {
        self.keys_mismatched == 0
            && self.missing_target == 0
            && self.missing_source == 0
            && self.ttl_mismatched == 0
    }
}
