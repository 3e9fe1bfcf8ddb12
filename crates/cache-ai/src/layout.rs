//! The upgrade path of a tenant's entries from aicache 0.1's layout (`aicache:v1:t:{tenant}`,
//! inside the tenant-less namespace) to the disjoint one (`aicache:t:{tenant}:v1`).
//!
//! While [`AiCacheConfig::layout_upgrade_until`](crate::AiCacheConfig::layout_upgrade_until) is
//! set and a store over the old location is attached:
//! - a miss in the new location reads the old one too (one GET, counted), until the deadline;
//!   what it finds is served and may be promoted into L1 through the same fences as any read,
//!   but is not copied, so a removal issued by a not-yet-upgraded instance still reaches it;
//! - every removal removes the old-layout copy as well;
//! - [`AIResponseCache::convert_layout`] moves the old entries over, re-encrypting each under its
//!   new key (the AEAD binds the full Redis key), never overwriting a newer entry, and never
//!   bringing back an entry a removal of this instance removed: a move does not start while a
//!   removal is in progress, and a removal that starts during a move waits for it.

use std::sync::atomic::{AtomicU64, Ordering};

use cache_core::frame::Frame;
use cache_core::{CacheKey, KeyPattern, Result, WalkMode, unix_millis};
use cache_memory::SharedTier;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::cache::AIResponseCache;

/// The old location of this cache's entries, during the upgrade window.
pub(crate) struct OldLayout {
    pub(crate) tier: SharedTier,
    /// Reads of the old location stop at this time (ms since the epoch).
    pub(crate) reads_until_ms: u64,
    reads: AtomicU64,
    hits: AtomicU64,
}

impl OldLayout {
    pub(crate) fn new(tier: SharedTier, reads_until_ms: u64) -> Self {
        Self {
            tier,
            reads_until_ms,
            reads: AtomicU64::new(0),
            hits: AtomicU64::new(0),
        }
    }

    pub(crate) fn stats(&self) -> LayoutUpgradeStats {
        LayoutUpgradeStats {
            namespace: self.tier.info().namespace.clone(),
            reads_until_ms: self.reads_until_ms,
            old_layout_reads: self.reads.load(Ordering::Relaxed),
            old_layout_hits: self.hits.load(Ordering::Relaxed),
        }
    }
}

/// How the layout upgrade went on this instance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LayoutUpgradeStats {
    /// The old location (`aicache:v1:t:{tenant}`).
    pub namespace: String,
    /// Until when misses read the old location (ms since the epoch).
    pub reads_until_ms: u64,
    /// GETs of the old location (one per miss while the window is open).
    pub old_layout_reads: u64,
    /// Of those, the ones that found an answer.
    pub old_layout_hits: u64,
}

/// What [`AIResponseCache::convert_layout`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LayoutConversion {
    /// Entries moved to the new location (and removed from the old one).
    pub moved: u64,
    /// Entries the new location already held: the old copy was removed, the new one kept.
    pub already_moved: u64,
    /// Entries that changed or vanished in the old location while being moved (an old instance
    /// wrote or removed them): left to the old location; a later run moves what remains.
    pub raced: u64,
    /// Entries left in place because a removal was in progress; a later run moves them.
    pub deferred: u64,
    /// Entries that do not decode here (another key, corrupt, expired): left in place.
    pub unreadable: u64,
}

enum MoveOutcome {
    Moved,
    AlreadyMoved,
    Raced,
    Unreadable,
}

impl<T> AIResponseCache<T>
where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    /// Reads `key` from the old location on a miss in the new one, while the window is open.
    /// A failure there (for example an ACL without the old prefix) is a miss, logged: the old
    /// location is a bonus, never a reason to fail a read.
    pub(crate) async fn read_old_layout(&self, key: &CacheKey) -> Option<Frame> {
        let old = self.inner.old_layout.as_ref()?;
        if unix_millis() >= old.reads_until_ms || !old.tier.is_available() {
            return None;
        }
        old.reads.fetch_add(1, Ordering::Relaxed);
        match old.tier.read(key, 0).await {
            Ok(Some(frame)) => {
                old.hits.fetch_add(1, Ordering::Relaxed);
                Some(frame)
            }
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(error = %e, namespace = %old.tier.info().namespace, "the old-layout location cannot be read; treating it as a miss");
                None
            }
        }
    }

    /// The layout upgrade's counters, when an old location is attached.
    pub fn layout_upgrade_stats(&self) -> Option<LayoutUpgradeStats> {
        self.inner.old_layout.as_ref().map(OldLayout::stats)
    }

    /// Moves every entry of the old location (aicache 0.1's tenant layout) to this cache's
    /// namespace, page by page: each is read, decoded (decrypted under its old key), encoded
    /// again under its new key, written only where the new location holds nothing, and removed
    /// from the old location only if it is still what was read. Run it once every instance of
    /// the tenant is upgraded; running it again moves what is left.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](cache_core::ErrorKind::Config) without an old location attached
    /// (see [`AIResponseCacheBuilder::pre_isolation_store`](crate::AIResponseCacheBuilder::pre_isolation_store));
    /// store errors (an unavailable store stops the conversion; what was moved stays moved).
    pub async fn convert_layout(&self) -> Result<LayoutConversion> {
        let (Some(old), Some(new)) = (&self.inner.old_layout, &self.inner.l2) else {
            return Err(cache_core::Error::new(
                cache_core::ErrorKind::Config,
                "no old-layout location to convert from",
            )
            .with_context("field", "layout_upgrade_until")
            .with_context(
                "fix",
                "set a tenant, layout_upgrade_until and a pre-isolation store",
            ));
        };
        let pattern = KeyPattern::all().with_segments(2);
        let mut report = LayoutConversion::default();
        let mut cursor = None;
        loop {
            let page = old
                .tier
                .store()
                .walk(&pattern, cursor, WalkMode::Keys)
                .await?;
            for entry in &page.entries {
                let Some(_moving) = self.inner.flights.begin_move(&entry.key) else {
                    report.deferred += 1;
                    continue;
                };
                match move_entry(&old.tier, new, &entry.key).await? {
                    MoveOutcome::Moved => report.moved += 1,
                    MoveOutcome::AlreadyMoved => report.already_moved += 1,
                    MoveOutcome::Raced => report.raced += 1,
                    MoveOutcome::Unreadable => report.unreadable += 1,
                }
            }
            match page.next {
                Some(next) => cursor = Some(next),
                None => return Ok(report),
            }
        }
    }
}

async fn move_entry(old: &SharedTier, new: &SharedTier, key: &CacheKey) -> Result<MoveOutcome> {
    let Some(stored) = old.store().get(key).await? else {
        return Ok(MoveOutcome::Raced);
    };
    let Ok(frame) = old.decode_frame(key, stored.clone()) else {
        return Ok(MoveOutcome::Unreadable);
    };
    let Ok(ttl) = cache_core::Ttl::from_millis(frame.meta.remaining_ms(unix_millis())) else {
        return Ok(MoveOutcome::Unreadable);
    };
    let encoded = new.encode(key, &frame.meta, frame.codec, &frame.payload)?;
    let written = new.store().set_if_absent(key, encoded.clone(), ttl).await?;
    if old.store().delete_if_unchanged(key, stored).await? {
        return Ok(if written {
            MoveOutcome::Moved
        } else {
            MoveOutcome::AlreadyMoved
        });
    }
    // The old entry changed meanwhile: the copy just written may be older than it, so take it
    // back (only if it is still ours) and let readers of the window find the old one.
    if written {
        new.store().delete_if_unchanged(key, encoded).await?;
    }
    Ok(MoveOutcome::Raced)
}
