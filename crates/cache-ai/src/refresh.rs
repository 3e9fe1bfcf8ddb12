//! Background refreshes for serve-stale: a computation that outlives `stale_after` goes on after
//! the stale answer was served, bounded in number (`background_refreshes`) and in time
//! (`background_refresh_timeout`), counted, and finished or cancelled by `shutdown`.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use crate::stats::RefreshStats;

#[derive(Default)]
struct Counters {
    started: AtomicU64,
    completed: AtomicU64,
    abandoned: AtomicU64,
    refused: AtomicU64,
}

/// The refreshes in progress.
pub(crate) struct Refreshes {
    permits: Arc<Semaphore>,
    limit: usize,
    timeout: Duration,
    tasks: Mutex<JoinSet<()>>,
    counters: Arc<Counters>,
}

impl Refreshes {
    /// At most `limit` refreshes at once, each at most `timeout`.
    pub(crate) fn new((limit, timeout): (usize, Duration)) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(limit)),
            limit,
            timeout,
            tasks: Mutex::new(JoinSet::new()),
            counters: Arc::default(),
        }
    }

    /// Zeroes the counters (refreshes running now end into the new counts).
    pub(crate) fn reset_counts(&self) {
        let c = &self.counters;
        for counter in [&c.started, &c.completed, &c.abandoned, &c.refused] {
            counter.store(0, Ordering::Relaxed);
        }
    }

    fn tasks(&self) -> std::sync::MutexGuard<'_, JoinSet<()>> {
        self.tasks.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A slot for one refresh; `None` (counted) when all are taken or there is no runtime.
    pub(crate) fn reserve(&self) -> Option<OwnedSemaphorePermit> {
        if tokio::runtime::Handle::try_current().is_err() {
            return None;
        }
        let permit = Arc::clone(&self.permits).try_acquire_owned().ok();
        if permit.is_none() {
            self.counters.refused.fetch_add(1, Ordering::Relaxed);
        }
        permit
    }

    /// Runs `refresh` in the background under `permit`, for at most the refresh timeout.
    pub(crate) fn spawn(
        &self,
        permit: OwnedSemaphorePermit,
        refresh: impl Future<Output = ()> + Send + 'static,
    ) {
        let counters = Arc::clone(&self.counters);
        let timeout = self.timeout;
        counters.started.fetch_add(1, Ordering::Relaxed);
        let mut tasks = self.tasks();
        // Finished tasks are reaped here, so the set stays as small as what runs.
        while tasks.try_join_next().is_some() {}
        tasks.spawn(async move {
            let outcome = tokio::time::timeout(timeout, refresh).await;
            // The slot is free before the refresh counts as ended.
            drop(permit);
            let counter = match outcome {
                Ok(()) => &counters.completed,
                Err(_) => {
                    tracing::warn!(?timeout, "background refresh abandoned: it took too long");
                    &counters.abandoned
                }
            };
            counter.fetch_add(1, Ordering::Relaxed);
        });
    }

    /// Waits for the running refreshes until `deadline`, then cancels the rest (counted).
    pub(crate) async fn finish_by(&self, deadline: tokio::time::Instant) {
        let mut tasks = std::mem::take(&mut *self.tasks());
        let waited = tokio::time::timeout_at(deadline, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if waited.is_err() {
            tasks.abort_all();
            // Aborted tasks end at their next poll; reap them so their slots are free on return,
            // and count those the abort really cancelled (some may have just finished).
            let mut cancelled = 0u64;
            while let Some(ended) = tasks.join_next().await {
                if ended.is_err_and(|e| e.is_cancelled()) {
                    cancelled += 1;
                }
            }
            self.counters
                .abandoned
                .fetch_add(cancelled, Ordering::Relaxed);
            tracing::warn!(cancelled, "shutdown cancelled background refreshes");
        }
    }

    pub(crate) fn stats(&self) -> RefreshStats {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        RefreshStats {
            started: load(&self.counters.started),
            completed: load(&self.counters.completed),
            abandoned: load(&self.counters.abandoned),
            refused: load(&self.counters.refused),
            // A refresh holds its slot until its future ends.
            running: self.limit.saturating_sub(self.permits.available_permits()),
        }
    }
}
