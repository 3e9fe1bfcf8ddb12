//! Backups: a walk of the source, page by page, into chunks sealed off the runtime (the next page
//! is read while the last chunk is compressed), written to any `AsyncWrite`, or to a file that
//! only appears, complete and fsynced, when the backup succeeded.

use std::path::{Path, PathBuf};
use std::time::Instant;

use cache_core::frame::MAX_TIMESTAMP_MS;
use cache_core::{
    DynFrameStore, Error, ErrorKind, KeyPattern, Result, WalkCursor, WalkMode, unix_millis,
};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::format::{
    BackupHeader, BackupTrailer, ChunkBuilder, FORMAT_VERSION, SealedChunk, encode_header,
    encode_trailer, seal_chunk,
};
use crate::progress::{Phase, Progress, ProgressSink};
use crate::report::BackupResult;
use crate::{CacheMigrationManager, io_error};

/// A chunk being sealed on the blocking pool (or sealed inline without a runtime).
enum Sealing {
    Spawned(tokio::task::JoinHandle<Result<SealedChunk>>),
    Done(Result<SealedChunk>),
}

impl Sealing {
    fn start(work: impl FnOnce() -> Result<SealedChunk> + Send + 'static) -> Self {
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => Self::Spawned(runtime.spawn_blocking(work)),
            Err(_) => Self::Done(work()),
        }
    }

    async fn finish(self) -> Result<SealedChunk> {
        match self {
            Self::Spawned(handle) => handle.await.map_err(|e| {
                Error::new(ErrorKind::Backend, "a backup compression task failed").with_source(e)
            })?,
            Self::Done(sealed) => sealed,
        }
    }
}

/// The totals of a backup being written.
struct Written {
    trailer: BackupTrailer,
    file_bytes: u64,
}

impl Written {
    async fn chunk<W: AsyncWrite + Unpin>(
        &mut self,
        writer: &mut W,
        sealing: Sealing,
    ) -> Result<()> {
        let sealed = sealing.finish().await?;
        writer
            .write_all(&sealed.bytes)
            .await
            .map_err(|e| io_error(e, "cannot write the backup"))?;
        self.trailer.chunks += 1;
        self.trailer.entries += u64::from(sealed.entries);
        self.trailer.raw_bytes += sealed.raw_len as u64;
        self.trailer.stored_bytes += sealed.bytes.len() as u64;
        self.file_bytes += sealed.bytes.len() as u64;
        Ok(())
    }
}

impl CacheMigrationManager {
    /// Backs up the entries of `source` whose keys match `filter` into `writer`: frames byte for
    /// byte as stored (encrypted frames stay encrypted), each with its absolute expiry. Memory
    /// stays bounded by a walk page and two chunks, whatever the source holds. Only a complete
    /// backup ends with a trailer; a restore refuses a stream without one.
    ///
    /// # Errors
    /// Whatever the source's walk returns (unavailable, denied), and [`ErrorKind::Io`] when the
    /// writer fails.
    pub async fn backup<W: AsyncWrite + Unpin + Send>(
        &self,
        source: &dyn DynFrameStore,
        filter: &KeyPattern,
        writer: &mut W,
    ) -> Result<BackupResult> {
        let started = Instant::now();
        let info = source.info();
        let header = BackupHeader {
            format_version: FORMAT_VERSION,
            created_at_ms: unix_millis(),
            source_kind: info.kind.to_owned(),
            namespace: info.namespace.clone(),
            filter: filter.as_str().to_owned(),
            filter_segments: filter.segments(),
            compression: self.compression,
            estimated_entries: source.approximate_len().await.ok().flatten(),
            writer: concat!("aicache ", env!("CARGO_PKG_VERSION")).to_owned(),
        };
        let head = encode_header(&header)?;
        writer
            .write_all(&head)
            .await
            .map_err(|e| io_error(e, "cannot write the backup"))?;
        let mut written = Written {
            trailer: BackupTrailer::default(),
            file_bytes: head.len() as u64,
        };
        let mut progress = Progress::new(Phase::Backup);
        progress.estimated_entries = header.estimated_entries;

        let mut builder = ChunkBuilder::default();
        let mut sealing: Option<Sealing> = None;
        let mut index = 0u32;
        let mut cursor: Option<WalkCursor> = None;
        loop {
            let page = source.walk(filter, cursor.take(), WalkMode::Frames).await?;
            let now = unix_millis();
            for entry in &page.entries {
                let (Some(frame), Some(ttl)) = (&entry.frame, entry.remaining_ttl) else {
                    continue;
                };
                let left = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
                // Sealed before an entry would overflow it: a large frame gets a chunk of its own.
                if builder.is_full_for(&entry.key, frame, self.chunk_bytes) {
                    let next = self.seal(&mut builder, &mut index);
                    if let Some(previous) = sealing.replace(next) {
                        written.chunk(writer, previous).await?;
                    }
                }
                let expires_at = now.saturating_add(left).min(MAX_TIMESTAMP_MS);
                builder.push(&entry.key, expires_at, frame)?;
                progress.entries += 1;
                progress.bytes += frame.len() as u64;
            }
            ProgressSink::report(self.progress.as_ref(), &progress);
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        if !builder.is_empty() {
            let next = self.seal(&mut builder, &mut index);
            if let Some(previous) = sealing.replace(next) {
                written.chunk(writer, previous).await?;
            }
        }
        if let Some(last) = sealing.take() {
            written.chunk(writer, last).await?;
        }
        written.trailer.completed_at_ms = unix_millis();
        let tail = encode_trailer(&written.trailer)?;
        writer
            .write_all(&tail)
            .await
            .map_err(|e| io_error(e, "cannot write the backup"))?;
        writer
            .flush()
            .await
            .map_err(|e| io_error(e, "cannot write the backup"))?;
        written.file_bytes += tail.len() as u64;
        Ok(BackupResult {
            success: true,
            backup_file: None,
            header,
            keys_backed_up: written.trailer.entries,
            chunks: written.trailer.chunks,
            total_size_bytes: written.trailer.raw_bytes,
            compressed_size_bytes: written.file_bytes,
            backup_time: started.elapsed(),
            errors: Vec::new(),
        })
    }

    fn seal(&self, builder: &mut ChunkBuilder, index: &mut u32) -> Sealing {
        let (raw, entries) = builder.take();
        let (chunk, compression) = (*index, self.compression);
        *index += 1;
        Sealing::start(move || seal_chunk(chunk, &raw, entries, compression))
    }

    /// [`backup`](Self::backup) into the file `path`: written to a temporary file next to it
    /// (mode 0600), fsynced, then renamed over `path`, so `path` holds either its old content or
    /// a complete backup, never a partial one (a failed or cancelled backup leaves no file).
    ///
    /// # Errors
    /// As [`backup`](Self::backup); [`ErrorKind::Io`] naming the path when the file cannot be
    /// created, synced or renamed.
    pub async fn backup_to_path(
        &self,
        source: &dyn DynFrameStore,
        filter: &KeyPattern,
        path: impl AsRef<Path>,
    ) -> Result<BackupResult> {
        let path = path.as_ref().to_path_buf();
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let (temp, file) = blocking(&path, {
            let dir = dir.clone();
            move || {
                let mut builder = tempfile::Builder::new();
                builder.prefix(".aicache-backup-").suffix(".partial");
                #[cfg(unix)]
                builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600));
                let temp = builder.tempfile_in(&dir)?;
                let file = temp.reopen()?;
                Ok((temp, file))
            }
        })
        .await?;
        let file = tokio::fs::File::from_std(file);
        let mut writer = tokio::io::BufWriter::with_capacity(1 << 20, file);
        let mut result = self.backup(source, filter, &mut writer).await?;
        let file = writer.into_inner();
        file.sync_all().await.map_err(|e| {
            io_error(e, "cannot sync the backup").with_context("path", path.display())
        })?;
        drop(file);
        blocking(&path, {
            let path = path.clone();
            move || {
                temp.persist(&path).map_err(|e| e.error)?;
                // The rename itself is durable once the directory is.
                std::fs::File::open(&dir)?.sync_all()
            }
        })
        .await?;
        result.backup_file = Some(path);
        Ok(result)
    }
}

/// Runs file-system work on the blocking pool, naming `path` in its error.
async fn blocking<T: Send + 'static>(
    path: &Path,
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T> {
    cache_memory::off_runtime(work).await?.map_err(|e| {
        io_error(e, "cannot write the backup file").with_context("path", path.display())
    })
}
