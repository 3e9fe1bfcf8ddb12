//! Writing entries into a target store: what a restore and a migration share. Entries already
//! expired are skipped, encrypted frames moving to another namespace are re-sealed for it, frames
//! the target cannot hold are counted as failed, and the rest go through
//! [`DynFrameStore::restore_many`] by the policy's rule, which never lands over a removal the
//! target remembers.

use std::sync::Arc;

use cache_core::frame::FrameCodec;
use cache_core::{
    Cipher, DynFrameStore, Error, ErrorKind, RestoreEntry, RestoreRule, Result, unix_millis,
};
use cache_memory::off_runtime;
use serde::{Deserialize, Serialize};

/// What a restore or migration does with a key the target already holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RestorePolicy {
    /// Keep the target's value.
    #[default]
    SkipExisting,
    /// Replace it.
    Overwrite,
    /// Replace it only with a frame written later (by the frames' `cached_at`).
    OverwriteIfNewer,
}

impl RestorePolicy {
    pub(crate) fn rule(self) -> RestoreRule {
        match self {
            Self::SkipExisting => RestoreRule::IfAbsent,
            Self::Overwrite => RestoreRule::Replace,
            Self::OverwriteIfNewer => RestoreRule::UnlessNewer,
        }
    }
}

/// What applying some entries did.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Applied {
    pub(crate) written: u64,
    pub(crate) skipped: u64,
    pub(crate) expired: u64,
    pub(crate) failed: u64,
    pub(crate) resealed: u64,
}

impl Applied {
    fn add(&mut self, other: Self) {
        self.written += other.written;
        self.skipped += other.skipped;
        self.expired += other.expired;
        self.failed += other.failed;
        self.resealed += other.resealed;
    }
}

/// Re-binding frames from one namespace to another.
#[derive(Clone)]
struct Reseal {
    from: Arc<str>,
    to: Arc<str>,
    codec: FrameCodec,
}

impl Reseal {
    /// Re-seals what is encrypted; an entry that cannot be is an error for the whole batch
    /// (checked before anything of it is written).
    fn run(&self, entries: &mut [RestoreEntry]) -> Result<u64> {
        let mut resealed = 0;
        for entry in entries {
            let from = format!("{}:{}", self.from, entry.key);
            let to = format!("{}:{}", self.to, entry.key);
            match self.codec.reseal(&from, &to, &entry.frame) {
                Ok(Some(frame)) => {
                    entry.frame = frame;
                    resealed += 1;
                }
                Ok(None) => {}
                Err(e) => {
                    return Err(Error::new(
                        ErrorKind::Unsupported,
                        "an encrypted entry cannot move to another namespace without its \
                         encryption key (the AEAD binds the full key)",
                    )
                    .with_context("key", &entry.key)
                    .with_context("from", &self.from)
                    .with_context("to", &self.to)
                    .with_context(
                        "fix",
                        "configure the cipher (the same encryption key) on the migration manager",
                    )
                    .with_source(e));
                }
            }
        }
        Ok(resealed)
    }
}

/// The most frame bytes one write batch carries (a batch of large frames is cut short).
const BATCH_BYTES: usize = 8 * 1024 * 1024;

/// `entries` cut into batches of at most `count` entries and about [`BATCH_BYTES`] (a single
/// larger frame goes alone).
fn batches(entries: &[RestoreEntry], count: usize) -> Vec<&[RestoreEntry]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, entry) in entries.iter().enumerate() {
        if i > start && (i - start >= count || bytes + entry.frame.len() > BATCH_BYTES) {
            out.push(&entries[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += entry.frame.len();
    }
    if start < entries.len() {
        out.push(&entries[start..]);
    }
    out
}

/// Writes entries into one target.
pub(crate) struct Applier<'a> {
    target: &'a dyn DynFrameStore,
    rule: RestoreRule,
    reseal: Option<Reseal>,
    max_frame_size: usize,
    batch: usize,
}

impl<'a> Applier<'a> {
    /// An applier of entries taken from `source_namespace` into `target`.
    pub(crate) fn new(
        source_namespace: &str,
        target: &'a dyn DynFrameStore,
        policy: RestorePolicy,
        cipher: Option<&Arc<dyn Cipher>>,
        batch: usize,
    ) -> Self {
        let info = target.info();
        let reseal = (info.namespace != source_namespace).then(|| Reseal {
            from: Arc::from(source_namespace),
            to: Arc::from(info.namespace.as_str()),
            codec: match cipher {
                Some(cipher) => FrameCodec::new().with_cipher(Arc::clone(cipher)),
                None => FrameCodec::new(),
            },
        });
        Self {
            target,
            rule: policy.rule(),
            reseal,
            max_frame_size: info.max_frame_size,
            batch: batch.max(1),
        }
    }

    /// Applies `entries`; the first error stops it (what was written before stays written: a
    /// rerun reaches the same state).
    pub(crate) async fn apply(&self, entries: Vec<RestoreEntry>) -> Result<Applied> {
        let mut applied = Applied::default();
        let now = unix_millis();
        let mut due = Vec::with_capacity(entries.len());
        for entry in entries {
            if entry.expires_at_ms <= now {
                applied.expired += 1;
            } else if entry.frame.len() > self.max_frame_size {
                applied.failed += 1;
                tracing::warn!(
                    key = entry.key.as_str(),
                    size = entry.frame.len(),
                    allowed = self.max_frame_size,
                    "entry larger than the target accepts: not restored"
                );
            } else {
                due.push(entry);
            }
        }
        if let Some(reseal) = &self.reseal {
            let reseal = reseal.clone();
            let (entries, resealed) = off_runtime(move || {
                let mut due = due;
                reseal.run(&mut due).map(|n| (due, n))
            })
            .await??;
            due = entries;
            applied.resealed = resealed;
        }
        for batch in batches(&due, self.batch) {
            let written = self.target.restore_many(batch, self.rule).await?;
            let count = written.iter().filter(|w| **w).count() as u64;
            applied.add(Applied {
                written: count,
                skipped: batch.len() as u64 - count,
                ..Applied::default()
            });
        }
        Ok(applied)
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use cache_core::CacheKey;

    use super::*;

    #[test]
    fn batches_are_bounded_by_count_and_bytes() {
        let entry = |size: usize| {
            RestoreEntry::new(
                CacheKey::new("k").unwrap_or_else(|e| panic!("{e}")),
                Bytes::from(vec![0; size]),
                1,
            )
        };
        let small: Vec<RestoreEntry> = (0..25).map(|_| entry(10)).collect();
        let sizes: Vec<usize> = batches(&small, 10).iter().map(|b| b.len()).collect();
        assert_eq!(sizes, [10, 10, 5]);
        let large: Vec<RestoreEntry> = (0..5).map(|_| entry(3 * 1024 * 1024)).collect();
        let sizes: Vec<usize> = batches(&large, 1000).iter().map(|b| b.len()).collect();
        assert_eq!(sizes, [2, 2, 1]);
        let huge = [entry(20 * 1024 * 1024), entry(1)];
        let sizes: Vec<usize> = batches(&huge, 1000).iter().map(|b| b.len()).collect();
        assert_eq!(sizes, [1, 1]);
        assert!(batches(&[], 10).is_empty());
    }
}
