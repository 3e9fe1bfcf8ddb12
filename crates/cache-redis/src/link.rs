//! The circuit breaker in front of Redis: closed (available), open (unavailable, with a
//! backoff-driven probe), half-open (one probe rebuilding the connection), or refusing the cache
//! (credentials, permissions).
//!
//! While Redis is available, calls clone the shared `ConnectionManager`. A connection error, or
//! `failure_threshold` timeouts in a row, open the breaker: from then on calls
//! skip Redis at no network cost, and at most one background probe at a time runs when the backoff
//! delay has passed. A probe builds a **new** manager and sends `PING` through it, so the manager
//! installed is already connected and a half-open socket of the old one is never reused. The delay
//! doubles per failed probe, up to a cap. A probe that Redis answers with an authentication or
//! permission error puts the link in the refused state: calls then fail with that error instead of
//! quietly missing. Errors from commands sent on an older manager are ignored, so stragglers of the
//! outage cannot take a recovered link down again.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use cache_core::{BreakerState, Error, ErrorKind, Recorder, Result};
use redis::aio::ConnectionManager;
use tokio::sync::Notify;

use crate::client::{ConnectionFactory, map_redis_error, with_timeout};

/// How the breaker behaves (from `RedisCacheConfig`).
pub(crate) struct BreakerSettings {
    /// The limit of one probe (connect + `PING`).
    pub(crate) probe_timeout: Duration,
    /// The first wait before a probe; it doubles per failed probe.
    pub(crate) min_delay: Duration,
    /// The longest wait between probes.
    pub(crate) max_delay: Duration,
    /// Consecutive timeouts that open the breaker (a connection error does at once).
    pub(crate) failure_threshold: u32,
    /// When false, the breaker never opens: every call goes to Redis and waits for its timeout.
    pub(crate) enabled: bool,
}

struct Installed {
    manager: ConnectionManager,
    generation: u64,
}

pub(crate) struct L2Link {
    factory: ConnectionFactory,
    installed: ArcSwap<Installed>,
    available: AtomicBool,
    probing: AtomicBool,
    consecutive_timeouts: AtomicU32,
    epoch: Instant,
    next_probe_ms: AtomicU64,
    backoff_ms: AtomicU64,
    min_delay_ms: u64,
    max_delay_ms: u64,
    probe_timeout: Duration,
    failure_threshold: u32,
    enabled: bool,
    /// Woken when the breaker closes again, so queued writes are replayed.
    recovered: Arc<Notify>,
    recorder: Option<Arc<dyn Recorder>>,
    unavailable_since: Mutex<Option<Instant>>,
    last_error: Mutex<Option<String>>,
    refusal: Mutex<Option<(ErrorKind, String)>>,
    outages: AtomicU64,
    probes: AtomicU64,
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
    pub(crate) probes: u64,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Builds a manager and checks it with `PING`, so what it returns is connected.
async fn connected_manager(
    factory: &ConnectionFactory,
    limit: Duration,
) -> Result<ConnectionManager> {
    let mut manager = factory.manager()?;
    with_timeout(limit, "connect and PING", async {
        redis::cmd("PING")
            .query_async::<String>(&mut manager)
            .await
            .map_err(|e| map_redis_error(e, "Redis did not accept the connection"))
    })
    .await
    .map_err(|e| e.with_context("url", factory.redacted_url()))?;
    Ok(manager)
}

impl L2Link {
    /// Builds the link with a connected manager. Unreachable is fine (the link starts unavailable);
    /// credentials, TLS or configuration errors are returned.
    pub(crate) async fn connect(
        factory: ConnectionFactory,
        settings: BreakerSettings,
        recovered: Arc<Notify>,
        recorder: Option<Arc<dyn Recorder>>,
    ) -> Result<Arc<Self>> {
        let BreakerSettings {
            probe_timeout,
            min_delay,
            max_delay,
            failure_threshold,
            enabled,
        } = settings;
        let probe = connected_manager(&factory, probe_timeout).await;
        let (manager, available, error) = match probe {
            Ok(manager) => (manager, true, None),
            Err(e) if !is_refusal(e.kind()) => (factory.manager()?, false, Some(e)),
            Err(e) => return Err(e),
        };
        let link = Arc::new(Self {
            factory,
            installed: ArcSwap::from_pointee(Installed {
                manager,
                generation: 0,
            }),
            available: AtomicBool::new(available),
            probing: AtomicBool::new(false),
            consecutive_timeouts: AtomicU32::new(0),
            epoch: Instant::now(),
            next_probe_ms: AtomicU64::new(millis(min_delay).max(1)),
            backoff_ms: AtomicU64::new(millis(min_delay).max(1)),
            min_delay_ms: millis(min_delay).max(1),
            max_delay_ms: millis(max_delay).max(1),
            probe_timeout,
            failure_threshold: failure_threshold.max(1),
            enabled,
            recovered,
            recorder,
            unavailable_since: Mutex::new((!available).then(Instant::now)),
            last_error: Mutex::new(None),
            refusal: Mutex::new(None),
            outages: AtomicU64::new(u64::from(!available)),
            probes: AtomicU64::new(0),
        });
        if let Some(e) = error {
            tracing::warn!(
                url = link.factory.redacted_url(),
                error = %e,
                "Redis is unreachable at start; serving from L1 and reconnecting in the background"
            );
            *lock(&link.last_error) = Some(e.to_string());
        }
        Ok(link)
    }

    /// Closed, open, or half-open (a probe is running).
    pub(crate) fn breaker_state(&self) -> BreakerState {
        if self.is_available() {
            BreakerState::Closed
        } else if self.probing.load(Ordering::Acquire) {
            BreakerState::HalfOpen
        } else {
            BreakerState::Open
        }
    }

    /// Logs a state change once and reports it to the recorder.
    fn transition(&self, from: BreakerState, to: BreakerState) {
        match to {
            BreakerState::Closed => {
                tracing::info!(url = self.factory.redacted_url(), %from, %to, "circuit breaker closed: Redis is available again");
            }
            BreakerState::Open => {
                tracing::warn!(url = self.factory.redacted_url(), %from, %to, "circuit breaker open: serving from L1");
            }
            _ => {
                tracing::debug!(url = self.factory.redacted_url(), %from, %to, "circuit breaker half-open: probing Redis");
            }
        }
        if let Some(recorder) = &self.recorder {
            recorder.record_breaker(from, to);
        }
    }

    /// The shared connection and its generation when Redis is available; `Ok(None)` when it is
    /// unavailable (possibly starting a probe); the refusal when Redis refuses the cache.
    pub(crate) fn connection(self: &Arc<Self>) -> Result<Option<(ConnectionManager, u64)>> {
        if self.available.load(Ordering::Acquire) {
            let installed = self.installed.load();
            return Ok(Some((installed.manager.clone(), installed.generation)));
        }
        self.maybe_probe();
        if let Some((kind, message)) = lock(&self.refusal).as_ref() {
            return Err(Error::new(*kind, message.clone()));
        }
        Ok(None)
    }

    /// Records a successful command.
    pub(crate) fn observe_success(&self) {
        if self.consecutive_timeouts.load(Ordering::Relaxed) != 0 {
            self.consecutive_timeouts.store(0, Ordering::Relaxed);
        }
    }

    /// Records a failed command sent on the manager of `generation`.
    pub(crate) fn observe_failure(&self, error: &Error, generation: u64) {
        if generation != self.installed.load().generation {
            return;
        }
        if !self.enabled {
            return;
        }
        match error.kind() {
            ErrorKind::Timeout => {
                let timeouts = self.consecutive_timeouts.fetch_add(1, Ordering::Relaxed) + 1;
                if timeouts >= self.failure_threshold {
                    self.mark_unavailable(error);
                }
            }
            kind if kind.is_transient() => self.mark_unavailable(error),
            _ => {}
        }
    }

    pub(crate) fn is_available(&self) -> bool {
        self.available.load(Ordering::Acquire)
    }

    pub(crate) fn state(&self) -> LinkState {
        let available = self.is_available();
        let next = self.next_probe_ms.load(Ordering::Relaxed);
        LinkState {
            unavailable_for: lock(&self.unavailable_since).map(|since| since.elapsed()),
            last_error: lock(&self.last_error).clone(),
            next_probe_in: (!available)
                .then(|| Duration::from_millis(next.saturating_sub(self.now_ms()))),
            outages: self.outages.load(Ordering::Relaxed),
            probes: self.probes.load(Ordering::Relaxed),
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
            self.next_probe_ms.store(
                self.now_ms().saturating_add(self.min_delay_ms),
                Ordering::Relaxed,
            );
            tracing::warn!(
                url = self.factory.redacted_url(),
                error = %error,
                "Redis became unavailable; serving from L1 until a probe succeeds"
            );
            self.transition(BreakerState::Closed, BreakerState::Open);
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
        self.transition(BreakerState::Open, BreakerState::HalfOpen);
        let link = Arc::clone(self);
        runtime.spawn(async move {
            let recovered = link.probe_once().await;
            link.probing.store(false, Ordering::Release);
            if recovered {
                link.transition(BreakerState::HalfOpen, BreakerState::Closed);
                link.recovered.notify_one();
            } else {
                link.transition(BreakerState::HalfOpen, BreakerState::Open);
            }
        });
    }

    /// One probe; true when it installed a connected manager.
    async fn probe_once(&self) -> bool {
        self.probes.fetch_add(1, Ordering::Relaxed);
        match connected_manager(&self.factory, self.probe_timeout).await {
            Ok(manager) => {
                let generation = self.installed.load().generation + 1;
                self.installed.store(Arc::new(Installed {
                    manager,
                    generation,
                }));
                *lock(&self.unavailable_since) = None;
                *lock(&self.last_error) = None;
                *lock(&self.refusal) = None;
                self.consecutive_timeouts.store(0, Ordering::Relaxed);
                self.available.store(true, Ordering::Release);
                true
            }
            Err(e) => {
                if is_refusal(e.kind()) {
                    tracing::error!(
                        url = self.factory.redacted_url(),
                        error = %e,
                        "Redis refuses the cache (credentials, permissions or TLS); fix the configuration"
                    );
                    *lock(&self.refusal) = Some((e.kind(), e.to_string()));
                }
                *lock(&self.last_error) = Some(e.to_string());
                let backoff = self.backoff_ms.load(Ordering::Relaxed);
                self.next_probe_ms
                    .store(self.now_ms().saturating_add(backoff), Ordering::Relaxed);
                self.backoff_ms.store(
                    backoff.saturating_mul(2).min(self.max_delay_ms),
                    Ordering::Relaxed,
                );
                false
            }
        }
    }
}

/// Whether a failed probe means Redis refuses this cache (wrong credentials or permissions, a TLS
/// failure, an invalid setting): those are errors. Anything else (`max number of clients
/// reached`, `LOADING`, `BUSY`, a proxy's error) is an outage: the cache degrades to L1 and
/// keeps probing.
fn is_refusal(kind: ErrorKind) -> bool {
    matches!(kind, ErrorKind::Auth | ErrorKind::Tls | ErrorKind::Config)
}

/// Locks a mutex, recovering the data if a holder panicked (the data is plain state).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
