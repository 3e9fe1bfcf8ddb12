//! Restores: a backup streamed chunk by chunk, each chunk's checksum verified (and the chunk
//! decompressed and parsed, off the runtime) before anything of it is written, so a corrupt or
//! truncated file stops at the chunk it names with nothing of that chunk or later ones applied.

use std::path::Path;
use std::time::Instant;

use cache_core::{DynFrameStore, Error, ErrorKind, Result, unix_millis};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::apply::{Applier, RestorePolicy};
use crate::format::{
    BackupHeader, BackupTrailer, CHUNK_HEAD_LEN, CHUNK_TAG, FORMAT_VERSION, MAGIC,
    MAX_DOCUMENT_LEN, TRAILER_TAG, chunk_head, corrupted, decode_document, open_chunk,
};
use crate::progress::{Phase, Progress, ProgressSink};
use crate::report::RestoreResult;
use crate::{CacheMigrationManager, io_error};

/// The removal horizon a Redis target keeps by default (`replay_horizon`).
const DEFAULT_HORIZON_MS: u64 = 600_000;

/// Reads exactly `buf.len()` bytes; the end of the stream is a truncation at `chunk`.
async fn read_exact<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut [u8],
    chunk: Option<u64>,
    read: &mut u64,
) -> Result<()> {
    match reader.read_exact(buf).await {
        Ok(_) => {
            *read += buf.len() as u64;
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(corrupted(
            "the backup is truncated (it ends before its trailer)",
            chunk,
        )),
        Err(e) => Err(io_error(e, "cannot read the backup")),
    }
}

async fn read_u32<R: AsyncRead + Unpin>(
    reader: &mut R,
    chunk: Option<u64>,
    read: &mut u64,
) -> Result<u32> {
    let mut be = [0u8; 4];
    read_exact(reader, &mut be, chunk, read).await?;
    Ok(u32::from_be_bytes(be))
}

async fn read_u64<R: AsyncRead + Unpin>(
    reader: &mut R,
    chunk: Option<u64>,
    read: &mut u64,
) -> Result<u64> {
    let mut be = [0u8; 8];
    read_exact(reader, &mut be, chunk, read).await?;
    Ok(u64::from_be_bytes(be))
}

/// Reads a length-prefixed document after its `lead` bytes.
async fn read_document<R: AsyncRead + Unpin, T: for<'de> serde::Deserialize<'de>>(
    reader: &mut R,
    lead: &[u8],
    chunk: Option<u64>,
    read: &mut u64,
    what: &'static str,
) -> Result<T> {
    let len = usize::try_from(read_u32(reader, chunk, read).await?).unwrap_or(usize::MAX);
    if len > MAX_DOCUMENT_LEN {
        return Err(
            Error::new(ErrorKind::Corrupted, "backup document too large")
                .with_context("in", what)
                .with_context("size", len),
        );
    }
    let mut json = vec![0u8; len];
    read_exact(reader, &mut json, chunk, read).await?;
    let checksum = read_u64(reader, chunk, read).await?;
    decode_document(lead, &json, checksum, what)
}

/// Reads a chunk's `len` stored bytes, growing the buffer as they arrive (a head that declares
/// more than the file holds costs no more memory than the file).
async fn read_stored<R: AsyncRead + Unpin>(
    reader: &mut R,
    len: usize,
    chunk: Option<u64>,
    read: &mut u64,
) -> Result<Vec<u8>> {
    let mut stored = Vec::with_capacity(len.min(1 << 20));
    let got = reader
        .take(len as u64)
        .read_to_end(&mut stored)
        .await
        .map_err(|e| io_error(e, "cannot read the backup"))?;
    *read += got as u64;
    if got != len {
        return Err(corrupted(
            "the backup is truncated (it ends before its trailer)",
            chunk,
        ));
    }
    Ok(stored)
}

/// Reads and checks a backup's header.
pub(crate) async fn read_header<R: AsyncRead + Unpin>(
    reader: &mut R,
    read: &mut u64,
) -> Result<BackupHeader> {
    let mut lead = [0u8; 7];
    match reader.read_exact(&mut lead).await {
        Ok(_) => *read += lead.len() as u64,
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            return Err(Error::new(
                ErrorKind::Corrupted,
                "not an aicache backup (too short)",
            ));
        }
        Err(e) => return Err(io_error(e, "cannot read the backup")),
    }
    if lead[..6] != MAGIC[..] {
        return Err(Error::new(
            ErrorKind::Corrupted,
            "not an aicache backup (bad magic)",
        ));
    }
    if lead[6] != FORMAT_VERSION {
        return Err(Error::new(
            ErrorKind::Unsupported,
            "a backup format this build cannot read",
        )
        .with_context("version", lead[6])
        .with_context("supported", FORMAT_VERSION));
    }
    let header: BackupHeader = read_document(reader, &lead, None, read, "header").await?;
    if header.format_version != FORMAT_VERSION {
        return Err(Error::new(
            ErrorKind::Corrupted,
            "the header's version differs from the file's",
        )
        .with_context("version", header.format_version));
    }
    Ok(header)
}

impl CacheMigrationManager {
    /// Reads only the header of the backup in `reader`.
    ///
    /// # Errors
    /// [`ErrorKind::Corrupted`] for a file that is not a backup or whose header fails its
    /// checksum; [`ErrorKind::Unsupported`] for another format version.
    pub async fn read_header<R: AsyncRead + Unpin + Send>(
        &self,
        reader: &mut R,
    ) -> Result<BackupHeader> {
        read_header(reader, &mut 0).await
    }

    /// Restores the backup in `reader` into `target` by `policy`.
    ///
    /// Entries go back under their original logical keys with their absolute expiry; entries
    /// already expired are skipped and counted. Into another namespace, encrypted frames are
    /// re-sealed with the manager's cipher, or refused. A removal the target remembers (a
    /// tombstone, a recorded pattern removal made after the entry was written, a removal still
    /// queued for replay) is never undone; a Redis target remembers removals for its
    /// `replay_horizon`, and the result warns when the backup is older than the default one. Cancelling (dropping the future) or killing the process leaves whole entries
    /// written or not; a rerun with the same policy reaches the state an uninterrupted restore
    /// reaches.
    ///
    /// # Errors
    /// [`ErrorKind::Corrupted`] with a `chunk` context for a chunk that fails its checksum or
    /// does not parse, a chunk out of sequence, a file that ends before its trailer, or a
    /// trailer whose totals differ from what was read: nothing of that chunk or later ones is
    /// written. [`ErrorKind::Unsupported`] for an encrypted entry that cannot be re-sealed; the
    /// target's errors as they are.
    pub async fn restore<R: AsyncRead + Unpin + Send>(
        &self,
        reader: &mut R,
        target: &dyn DynFrameStore,
        policy: RestorePolicy,
    ) -> Result<RestoreResult> {
        self.restore_sized(reader, target, policy, None).await
    }

    /// [`restore`](Self::restore) from the file `path` (progress is reported against its size).
    ///
    /// # Errors
    /// As [`restore`](Self::restore); [`ErrorKind::Io`] naming the path when it cannot be opened.
    pub async fn restore_from_path(
        &self,
        path: impl AsRef<Path>,
        target: &dyn DynFrameStore,
        policy: RestorePolicy,
    ) -> Result<RestoreResult> {
        let path = path.as_ref();
        let file = tokio::fs::File::open(path).await.map_err(|e| {
            io_error(e, "cannot open the backup").with_context("path", path.display())
        })?;
        let size = file.metadata().await.ok().map(|m| m.len());
        let mut reader = tokio::io::BufReader::with_capacity(1 << 20, file);
        self.restore_sized(&mut reader, target, policy, size).await
    }

    async fn restore_sized<R: AsyncRead + Unpin + Send>(
        &self,
        reader: &mut R,
        target: &dyn DynFrameStore,
        policy: RestorePolicy,
        size: Option<u64>,
    ) -> Result<RestoreResult> {
        let started = Instant::now();
        let mut read = 0u64;
        let header = read_header(reader, &mut read).await?;
        let applier = Applier::new(
            &header.namespace,
            target,
            policy,
            self.cipher.as_ref(),
            self.batch_size,
        );
        let mut progress = Progress::new(Phase::Restore);
        progress.estimated_bytes = size;
        let mut result = RestoreResult {
            success: false,
            header,
            keys_processed: 0,
            keys_restored: 0,
            keys_skipped: 0,
            keys_expired: 0,
            keys_failed: 0,
            chunks_processed: 0,
            bytes_read: 0,
            keys_resealed: 0,
            restore_time: started.elapsed(),
            warnings: Vec::new(),
        };
        let mut index = 0u64;
        let (mut raw_bytes, mut stored_bytes) = (0u64, 0u64);
        loop {
            let chunk = Some(index);
            let mut tag = [0u8; 1];
            read_exact(reader, &mut tag, chunk, &mut read).await?;
            match tag[0] {
                CHUNK_TAG => {
                    let mut head_bytes = [0u8; CHUNK_HEAD_LEN];
                    head_bytes[0] = CHUNK_TAG;
                    read_exact(reader, &mut head_bytes[1..], chunk, &mut read).await?;
                    let head = chunk_head(&head_bytes, index)?;
                    let stored = read_stored(reader, head.stored_len, chunk, &mut read).await?;
                    raw_bytes += head.raw_len as u64;
                    stored_bytes += (CHUNK_HEAD_LEN + head.stored_len + 8) as u64;
                    let checksum = read_u64(reader, chunk, &mut read).await?;
                    let entries = cache_memory::off_runtime(move || {
                        open_chunk(&head_bytes, head, &stored, checksum)
                    })
                    .await??;
                    result.keys_processed += entries.len() as u64;
                    let applied = applier.apply(entries).await?;
                    result.keys_restored += applied.written;
                    result.keys_skipped += applied.skipped;
                    result.keys_expired += applied.expired;
                    result.keys_failed += applied.failed;
                    result.keys_resealed += applied.resealed;
                    result.chunks_processed += 1;
                    progress.entries = result.keys_processed;
                    progress.bytes = read;
                    ProgressSink::report(self.progress.as_ref(), &progress);
                    index += 1;
                }
                TRAILER_TAG => {
                    let trailer: BackupTrailer =
                        read_document(reader, &tag, chunk, &mut read, "trailer").await?;
                    if trailer.chunks != index
                        || trailer.entries != result.keys_processed
                        || trailer.raw_bytes != raw_bytes
                        || trailer.stored_bytes != stored_bytes
                    {
                        return Err(Error::new(
                            ErrorKind::Corrupted,
                            "the trailer's totals differ from the chunks read",
                        )
                        .with_context("in", "trailer")
                        .with_context("trailer_chunks", trailer.chunks)
                        .with_context("chunks_read", index)
                        .with_context("trailer_entries", trailer.entries)
                        .with_context("entries_read", result.keys_processed));
                    }
                    let mut extra = [0u8; 1];
                    if reader.read(&mut extra).await.unwrap_or(0) > 0 {
                        result
                            .warnings
                            .push("bytes after the trailer were ignored".to_owned());
                    }
                    break;
                }
                other => {
                    return Err(corrupted("neither a chunk nor the trailer", chunk)
                        .with_context("tag", other));
                }
            }
        }
        let age_ms = unix_millis().saturating_sub(result.header.created_at_ms);
        if age_ms > DEFAULT_HORIZON_MS {
            result.warnings.push(format!(
                "the backup is {} s old: removals made since are refused only while the target \
                 remembers them (its replay_horizon, 600 s by default)",
                age_ms / 1000
            ));
        }
        if result.keys_failed > 0 {
            result.warnings.push(format!(
                "{} entries were larger than the target accepts and were not restored",
                result.keys_failed
            ));
        }
        result.success = true;
        result.bytes_read = read;
        result.restore_time = started.elapsed();
        Ok(result)
    }
}
