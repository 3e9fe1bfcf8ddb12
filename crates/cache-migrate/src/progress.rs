//! Progress reports: a callback the manager calls after every page or chunk.

use std::fmt;
use std::sync::Arc;

/// Which job a [`Progress`] report is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Phase {
    /// Reading a store into a backup.
    Backup,
    /// Writing a backup into a store.
    Restore,
    /// Copying one store into another.
    Migrate,
    /// Comparing two stores.
    Verify,
}

/// How far a job has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Progress {
    /// The job.
    pub phase: Phase,
    /// Entries done so far.
    pub entries: u64,
    /// Bytes done so far (frames for a backup, migration or verification; file bytes for a
    /// restore).
    pub bytes: u64,
    /// The expected total of `entries` (a backup: the source's estimate, such as Redis'
    /// `DBSIZE`, which counts every key of the database), when known.
    pub estimated_entries: Option<u64>,
    /// The expected total of `bytes` (a restore from a file: its size), when known.
    pub estimated_bytes: Option<u64>,
}

impl Progress {
    pub(crate) fn new(phase: Phase) -> Self {
        Self {
            phase,
            entries: 0,
            bytes: 0,
            estimated_entries: None,
            estimated_bytes: None,
        }
    }

    /// The fraction done, from 0 to 1, when a total is known.
    pub fn fraction(&self) -> Option<f64> {
        #[allow(clippy::cast_precision_loss, reason = "a progress ratio")]
        let ratio = |done: u64, total: u64| (done as f64 / total.max(1) as f64).min(1.0);
        match (self.estimated_bytes, self.estimated_entries) {
            (Some(total), _) => Some(ratio(self.bytes, total)),
            (None, Some(total)) => Some(ratio(self.entries, total)),
            (None, None) => None,
        }
    }
}

/// Receives [`Progress`] reports. Called on the task running the job: keep it quick.
#[derive(Clone)]
pub struct ProgressSink(Arc<dyn Fn(&Progress) + Send + Sync>);

impl ProgressSink {
    /// A sink calling `report`.
    pub fn new(report: impl Fn(&Progress) + Send + Sync + 'static) -> Self {
        Self(Arc::new(report))
    }

    pub(crate) fn report(sink: Option<&Self>, progress: &Progress) {
        if let Some(sink) = sink {
            (sink.0)(progress);
        }
    }
}

impl fmt::Debug for ProgressSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ProgressSink")
    }
}
