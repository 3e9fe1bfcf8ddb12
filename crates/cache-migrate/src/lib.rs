//! aicache's migration tooling: [`CacheMigrationManager`] backs up a store to a file of its own
//! format, restores it, copies one store into another and compares two stores.
//!
//! Everything works on [`FrameStore`](cache_core::FrameStore)s (memory, Redis, a team's own), so
//! frames move byte for byte: encrypted frames stay encrypted, nothing is decoded. Walks go page
//! by page (never `KEYS`, never the whole key set in memory); auxiliary keys (removal records,
//! leases, snapshots) are outside every namespace's walk and are never copied. No path brings
//! back a removal: restores and migrations write through
//! [`restore_many`](cache_core::FrameStore::restore_many), which refuses keys whose removal the
//! target remembers. The file format is documented in `docs/backup-format.md`.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use cache_core::{CacheKey, FrameStore, KeyPattern, Ttl};
//! use cache_memory::MemoryFrameStore;
//! use cache_migrate::{CacheMigrationManager, RestorePolicy};
//!
//! let source = MemoryFrameStore::new("app");
//! source.set(&CacheKey::new("k")?, "frame".into(), Ttl::from_secs(60)?).await?;
//!
//! let manager = CacheMigrationManager::new();
//! let mut file = Vec::new();
//! let backup = manager.backup(&source, &KeyPattern::all(), &mut file).await?;
//! assert_eq!(backup.keys_backed_up, 1);
//!
//! let target = MemoryFrameStore::new("app");
//! let restore = manager
//!     .restore(&mut file.as_slice(), &target, RestorePolicy::SkipExisting)
//!     .await?;
//! assert_eq!(restore.keys_restored, 1);
//! assert!(manager.verify(&source, &target, &Default::default()).await?.is_consistent());
//! # Ok::<(), cache_core::Error>(()) }).unwrap();
//! ```

use std::fmt;
use std::sync::Arc;

use cache_core::{Cipher, Error, ErrorKind, Result};

mod apply;
mod backup;
mod copy;
pub mod format;
mod progress;
mod report;
mod restore;
mod seed;
mod verify;

pub use apply::RestorePolicy;
pub use format::{BackupHeader, BackupTrailer, ChunkCompression};
pub use progress::{Phase, Progress, ProgressSink};
pub use report::{BackupResult, MigrationResult, RestoreResult, TtlDelta, VerifyResult};
pub use verify::VerifyOptions;

/// The smallest and largest chunk a backup gathers before compressing it.
const CHUNK_BYTES: std::ops::RangeInclusive<usize> = 4 * 1024..=64 * 1024 * 1024;
/// The largest write batch.
const BATCH_SIZE: std::ops::RangeInclusive<usize> = 1..=10_000;

pub(crate) fn io_error(error: std::io::Error, message: &'static str) -> Error {
    Error::new(ErrorKind::Io, message).with_source(error)
}

/// Backup, restore, migration and verification between [`FrameStore`](cache_core::FrameStore)s.
///
/// Cheap to clone; its settings apply to every job it runs.
#[derive(Clone)]
pub struct CacheMigrationManager {
    chunk_bytes: usize,
    compression: ChunkCompression,
    batch_size: usize,
    cipher: Option<Arc<dyn Cipher>>,
    progress: Option<ProgressSink>,
}

impl fmt::Debug for CacheMigrationManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheMigrationManager")
            .field("chunk_bytes", &self.chunk_bytes)
            .field("compression", &self.compression)
            .field("batch_size", &self.batch_size)
            .field("cipher", &self.cipher.is_some())
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

impl Default for CacheMigrationManager {
    fn default() -> Self {
        Self::new()
    }
}

impl CacheMigrationManager {
    /// Chunks of 1 MiB compressed with zstd level 3, writes in batches of 1,000, no cipher, no
    /// progress reports.
    pub fn new() -> Self {
        Self {
            chunk_bytes: 1024 * 1024,
            compression: ChunkCompression::default(),
            batch_size: 1000,
            cipher: None,
            progress: None,
        }
    }

    /// Gathers about `bytes` of entries per backup chunk (a chunk always holds whole entries).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] outside 4 KiB..=64 MiB.
    pub fn with_chunk_bytes(mut self, bytes: usize) -> Result<Self> {
        if !CHUNK_BYTES.contains(&bytes) {
            return Err(
                Error::new(ErrorKind::InvalidInput, "chunk size out of range")
                    .with_context("field", "chunk_bytes")
                    .with_context("value", bytes)
                    .with_context("allowed", "4096..=67108864"),
            );
        }
        self.chunk_bytes = bytes;
        Ok(self)
    }

    /// Compresses backup chunks with `compression`.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for a zstd level outside 1..=22.
    pub fn with_compression(mut self, compression: ChunkCompression) -> Result<Self> {
        if let ChunkCompression::Zstd { level } = compression
            && !(1..=22).contains(&level)
        {
            return Err(
                Error::new(ErrorKind::InvalidInput, "zstd level out of range")
                    .with_context("field", "compression")
                    .with_context("value", level)
                    .with_context("allowed", "1..=22"),
            );
        }
        self.compression = compression;
        Ok(self)
    }

    /// Writes restores and migrations in batches of `entries` (one pipelined round trip each).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] outside 1..=10,000.
    pub fn with_batch_size(mut self, entries: usize) -> Result<Self> {
        if !BATCH_SIZE.contains(&entries) {
            return Err(
                Error::new(ErrorKind::InvalidInput, "batch size out of range")
                    .with_context("field", "batch_size")
                    .with_context("value", entries)
                    .with_context("allowed", "1..=10000"),
            );
        }
        self.batch_size = entries;
        Ok(self)
    }

    /// Re-seals encrypted frames with `cipher` when a restore or migration moves them to another
    /// namespace (the AEAD binds the full key). Without it such frames are refused.
    #[must_use]
    pub fn with_cipher(mut self, cipher: Arc<dyn Cipher>) -> Self {
        self.cipher = Some(cipher);
        self
    }

    /// Reports progress to `sink` after every page or chunk.
    #[must_use]
    pub fn with_progress(mut self, sink: ProgressSink) -> Self {
        self.progress = Some(sink);
        self
    }
}
