//! The state of the connection to Redis: available, or unavailable with a backoff-driven probe.
//!
//! While Redis is available, calls clone the shared `ConnectionManager`. A connection-class failure
//! (refused, dropped, timed out) marks the link unavailable: from then on calls skip Redis at no
//! network cost, and at most one background probe at a time (a fresh connection and `PING`) runs
//! when the backoff delay has passed. A successful probe installs a new manager, so a half-open
//! socket of the old one is never reused. The delay doubles per failed probe, up to a cap.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use cache_core::{Error, Result};
use redis::aio::ConnectionManager;

use crate::connection::ConnectionFactory;

pub(crate) struct L2Link {
    factory: ConnectionFactory,
    manager: ArcSwap<ConnectionManager>,
    available: AtomicBool,
    probing: AtomicBool,
    epoch: Instant,
    next_probe_ms: AtomicU64,
    backoff_ms: AtomicU64,
    min_delay_ms: u64,
    max_delay_ms: u64,
    unavailable_since: Mutex<Option<Instant>>,
    last_error: Mutex<Option<String>>,
    outages: AtomicU64,
}

impl fmt::Debug for L2Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("L2Link")
            .field("url", &self.factory.redacted_url())
            .field("available", &self.available.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// A snapshot of the link for health reports.
pub(crate) struct LinkState {
    pub(crate) unavailable_for: Option<Duration>,
    pub(crate) last_error: Option<String>,
    pub(crate) next_probe_in: Option<Duration>,
    pub(crate) outages: u64,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl L2Link {
    /// Builds the link and probes Redis once. Unreachable is fine (the link starts unavailable);
    /// credentials, TLS or configuration errors are returned.
    pub(crate) async fn connect(
        factory: ConnectionFactory,
        min_delay: Duration,
        max_delay: Duration,
    ) -> Result<Arc<Self>> {
        let manager = factory.manager()?;
        let probe = factory.probe().await;
        let link = Arc::new(Self {
            factory,
            manager: ArcSwap::from_pointee(manager),
            available: AtomicBool::new(true),
            probing: AtomicBool::new(false),
            epoch: Instant::now(),
            next_probe_ms: AtomicU64::new(0),
            backoff_ms: AtomicU64::new(millis(min_delay).max(1)),
            min_delay_ms: millis(min_delay).max(1),
            max_delay_ms: millis(max_delay).max(1),
            unavailable_since: Mutex::new(None),
            last_error: Mutex::new(None),
            outages: AtomicU64::new(0),
        });
        match probe {
            Ok(()) => Ok(link),
            Err(e) if e.is_transient() => {
                tracing::warn!(
                    url = link.factory.redacted_url(),
                    error = %e,
                    "Redis is unreachable at start; serving from L1 and reconnecting in the background"
                );
                link.mark_unavailable(&e);
                Ok(link)
            }
            Err(e) => Err(e),
        }
    }

    /// The shared connection when Redis is available; otherwise `None`, possibly starting a probe.
    pub(crate) fn connection(self: &Arc<Self>) -> Option<ConnectionManager> {
        if self.available.load(Ordering::Acquire) {
            return Some(ConnectionManager::clone(&self.manager.load()));
        }
        self.maybe_probe();
        None
    }

    /// Records the outcome of a call: connection-class failures make the link unavailable.
    pub(crate) fn observe(self: &Arc<Self>, error: &Error) {
        if error.is_transient() {
            self.mark_unavailable(error);
        }
    }

    pub(crate) fn is_available(&self) -> bool {
        self.available.load(Ordering::Acquire)
    }

    pub(crate) fn state(&self) -> LinkState {
        let available = self.is_available();
        let now_ms = self.now_ms();
        let next = self.next_probe_ms.load(Ordering::Relaxed);
        LinkState {
            unavailable_for: lock(&self.unavailable_since).map(|since| since.elapsed()),
            last_error: lock(&self.last_error).clone(),
            next_probe_in: (!available).then(|| Duration::from_millis(next.saturating_sub(now_ms))),
            outages: self.outages.load(Ordering::Relaxed),
        }
    }

    fn now_ms(&self) -> u64 {
        millis(self.epoch.elapsed())
    }

    fn mark_unavailable(&self, error: &Error) {
        *lock(&self.last_error) = Some(error.to_string());
        if self.available.swap(false, Ordering::AcqRel) {
            self.outages.fetch_add(1, Ordering::Relaxed);
            *lock(&self.unavailable_since) = Some(Instant::now());
            self.backoff_ms.store(self.min_delay_ms, Ordering::Relaxed);
            self.next_probe_ms
                .store(self.now_ms() + self.min_delay_ms, Ordering::Relaxed);
            tracing::warn!(
                url = self.factory.redacted_url(),
                error = %error,
                "Redis became unavailable; serving from L1 until a probe succeeds"
            );
        }
    }

    fn maybe_probe(self: &Arc<Self>) {
        if self.now_ms() < self.next_probe_ms.load(Ordering::Relaxed) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.probing.swap(true, Ordering::AcqRel) {
            return;
        }
        let link = Arc::clone(self);
        runtime.spawn(async move {
            link.probe_once().await;
            link.probing.store(false, Ordering::Release);
        });
    }

    async fn probe_once(&self) {
        let outcome = match self.factory.probe().await {
            Ok(()) => self.factory.manager(),
            Err(e) => Err(e),
        };
        match outcome {
            Ok(manager) => {
                self.manager.store(Arc::new(manager));
                *lock(&self.unavailable_since) = None;
                *lock(&self.last_error) = None;
                self.available.store(true, Ordering::Release);
                tracing::info!(
                    url = self.factory.redacted_url(),
                    "Redis is available again"
                );
            }
            Err(e) => {
                if !e.is_transient() {
                    tracing::error!(
                        url = self.factory.redacted_url(),
                        error = %e,
                        "Redis refuses the cache (credentials, permissions or TLS); fix the configuration"
                    );
                }
                *lock(&self.last_error) = Some(e.to_string());
                let backoff = self.backoff_ms.load(Ordering::Relaxed);
                self.next_probe_ms
                    .store(self.now_ms() + backoff, Ordering::Relaxed);
                self.backoff_ms
                    .store((backoff * 2).min(self.max_delay_ms), Ordering::Relaxed);
            }
        }
    }
}

/// Locks a mutex, recovering the data if a holder panicked (the data is plain state).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
