//! The circuit breaker's state machine: closed (available), open (unavailable, with a
//! backoff-driven probe), half-open (one probe running), or refusing the cache (credentials,
//! permissions, TLS).
//!
//! One breaker guards one server: the store's link to a single Redis (`link.rs`), or one primary
//! of a cluster (`cluster.rs`), so that a dead primary degrades only its own slots. The breaker
//! only keeps the state and the schedule; what a probe does belongs to its owner, which calls
//! [`Breaker::begin_probe`] and [`Breaker::end_probe`] around it.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cache_core::{BreakerState, Error, ErrorKind, Recorder};

/// How a breaker behaves (from `RedisCacheConfig`).
#[derive(Clone, Copy)]
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

/// A snapshot of a breaker for health reports.
pub(crate) struct LinkState {
    pub(crate) unavailable_for: Option<Duration>,
    pub(crate) last_error: Option<String>,
    pub(crate) next_probe_in: Option<Duration>,
    pub(crate) outages: u64,
    pub(crate) probes: u64,
}

/// The state of one server's breaker.
pub(crate) struct Breaker {
    /// What logs name: the redacted URL or the node's address.
    label: String,
    available: AtomicBool,
    probing: AtomicBool,
    consecutive_timeouts: AtomicU32,
    epoch: Instant,
    next_probe_ms: AtomicU64,
    backoff_ms: AtomicU64,
    min_delay_ms: u64,
    max_delay_ms: u64,
    failure_threshold: u32,
    enabled: bool,
    recorder: Option<Arc<dyn Recorder>>,
    unavailable_since: Mutex<Option<Instant>>,
    last_error: Mutex<Option<String>>,
    refusal: Mutex<Option<(ErrorKind, String)>>,
    outages: AtomicU64,
    probes: AtomicU64,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Whether a failed probe means Redis refuses this cache (wrong credentials or permissions, a TLS
/// failure, an invalid setting): those are errors. Anything else (`max number of clients
/// reached`, `LOADING`, `BUSY`, a proxy's error) is an outage: the cache degrades to L1 and
/// keeps probing.
pub(crate) fn is_refusal(kind: ErrorKind) -> bool {
    matches!(kind, ErrorKind::Auth | ErrorKind::Tls | ErrorKind::Config)
}

impl Breaker {
    /// A breaker for `label`, closed when `available`, else open since now with `error`.
    pub(crate) fn new(
        label: String,
        settings: &BreakerSettings,
        recorder: Option<Arc<dyn Recorder>>,
        available: bool,
        error: Option<&Error>,
    ) -> Self {
        let min_delay_ms = millis(settings.min_delay).max(1);
        Self {
            label,
            available: AtomicBool::new(available),
            probing: AtomicBool::new(false),
            consecutive_timeouts: AtomicU32::new(0),
            epoch: Instant::now(),
            next_probe_ms: AtomicU64::new(min_delay_ms),
            backoff_ms: AtomicU64::new(min_delay_ms),
            min_delay_ms,
            max_delay_ms: millis(settings.max_delay).max(1),
            failure_threshold: settings.failure_threshold.max(1),
            enabled: settings.enabled,
            recorder,
            unavailable_since: Mutex::new((!available).then(Instant::now)),
            last_error: Mutex::new(error.map(ToString::to_string)),
            refusal: Mutex::new(None),
            outages: AtomicU64::new(u64::from(!available)),
            probes: AtomicU64::new(0),
        }
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

    pub(crate) fn is_available(&self) -> bool {
        self.available.load(Ordering::Acquire)
    }

    /// False when the breaker never opens (`BreakerSettings::enabled`).
    pub(crate) fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// The error Redis refuses the cache with, once a probe saw it.
    pub(crate) fn refusal(&self) -> Option<Error> {
        lock(&self.refusal)
            .as_ref()
            .map(|(kind, message)| Error::new(*kind, message.clone()))
    }

    /// Logs a state change once and reports it to the recorder.
    fn transition(&self, from: BreakerState, to: BreakerState) {
        let label = self.label.as_str();
        match to {
            BreakerState::Closed => {
                tracing::info!(server = label, %from, %to, "circuit breaker closed: Redis is available again");
            }
            BreakerState::Open => {
                tracing::warn!(server = label, %from, %to, "circuit breaker open: serving from L1");
            }
            _ => {
                tracing::debug!(server = label, %from, %to, "circuit breaker half-open: probing Redis");
            }
        }
        if let Some(recorder) = &self.recorder {
            recorder.record_breaker(from, to);
        }
    }

    /// Records a successful command.
    pub(crate) fn observe_success(&self) {
        if self.consecutive_timeouts.load(Ordering::Relaxed) != 0 {
            self.consecutive_timeouts.store(0, Ordering::Relaxed);
        }
    }

    /// Records a failed command: a connection error opens the breaker, and so do
    /// `failure_threshold` timeouts in a row.
    pub(crate) fn observe_failure(&self, error: &Error) {
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

    /// Opens the breaker (once per outage), scheduling the first probe.
    pub(crate) fn mark_unavailable(&self, error: &Error) {
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
                server = self.label.as_str(),
                error = %error,
                "Redis became unavailable; serving from L1 until a probe succeeds"
            );
            self.transition(BreakerState::Closed, BreakerState::Open);
        }
    }

    /// True when a probe is due and no other runs: the caller runs it, then calls
    /// [`end_probe`](Self::end_probe).
    pub(crate) fn begin_probe(&self) -> bool {
        if self.is_available() || self.now_ms() < self.next_probe_ms.load(Ordering::Relaxed) {
            return false;
        }
        if self.probing.swap(true, Ordering::AcqRel) {
            return false;
        }
        self.probes.fetch_add(1, Ordering::Relaxed);
        self.transition(BreakerState::Open, BreakerState::HalfOpen);
        true
    }

    /// Ends a probe: closes the breaker on success (true), else schedules the next probe with a
    /// doubled delay and remembers a refusal.
    pub(crate) fn end_probe(&self, outcome: Result<(), Error>) -> bool {
        let recovered = match outcome {
            Ok(()) => {
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
                        server = self.label.as_str(),
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
        };
        self.probing.store(false, Ordering::Release);
        self.transition(
            BreakerState::HalfOpen,
            if recovered {
                BreakerState::Closed
            } else {
                BreakerState::Open
            },
        );
        recovered
    }
}

/// Locks a mutex, recovering the data if a holder panicked (the data is plain state).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
