//! Cache events for listeners (the seed's callbacks), delivered so that a failing listener cannot
//! break a cache operation.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::Bytes;
use cache_core::{CacheKey, Layer};

/// Something that happened in the cache.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum CacheEvent<'a> {
    /// A read found `key` on `layer`.
    GetSuccess {
        /// The logical key.
        key: &'a CacheKey,
        /// The value read.
        value: &'a Bytes,
        /// The tier that answered.
        layer: Layer,
    },
    /// A read found nothing.
    GetMiss {
        /// The logical key.
        key: &'a CacheKey,
    },
    /// A write was stored (in Redis, or in L1 alone while Redis is unavailable or absent).
    SetSuccess {
        /// The logical key.
        key: &'a CacheKey,
        /// The value written.
        value: &'a Bytes,
    },
    /// A delete removed `key` from at least one tier.
    DeleteSuccess {
        /// The logical key.
        key: &'a CacheKey,
    },
}

/// A listener's failure, logged and counted by the cache.
pub type ListenerError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Receives [`CacheEvent`]s synchronously, in registration order.
///
/// # Contract
/// Called on the data path: be quick and never block. Returning an error or panicking is logged and
/// counted ([`RedisCacheStats::listener_failures`](crate::RedisCacheStats::listener_failures)) and
/// the cache operation carries on.
pub trait CacheEventListener: Send + Sync {
    /// Handles one event.
    ///
    /// # Errors
    /// Any; the cache logs it and continues.
    fn on_event(&self, event: &CacheEvent<'_>) -> Result<(), ListenerError>;
}

impl<F> CacheEventListener for F
where
    F: Fn(&CacheEvent<'_>) -> Result<(), ListenerError> + Send + Sync,
{
    fn on_event(&self, event: &CacheEvent<'_>) -> Result<(), ListenerError> {
        self(event)
    }
}

#[derive(Default)]
pub(crate) struct Listeners {
    listeners: arc_swap::ArcSwap<Vec<Arc<dyn CacheEventListener>>>,
    /// Whether any listener was added (they are never removed): every read checks it, and a
    /// plain load costs less than loading the list.
    any: AtomicBool,
    failures: AtomicU64,
}

impl fmt::Debug for Listeners {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Listeners")
            .field("count", &self.listeners.load().len())
            .field("failures", &self.failures.load(Ordering::Relaxed))
            .finish()
    }
}

impl Listeners {
    pub(crate) fn add(&self, listener: Arc<dyn CacheEventListener>) {
        self.listeners.rcu(|current| {
            let mut next = Vec::clone(current);
            next.push(Arc::clone(&listener));
            next
        });
        self.any.store(true, Ordering::Release);
    }

    pub(crate) fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    pub(crate) fn is_empty(&self) -> bool {
        !self.any.load(Ordering::Acquire)
    }

    pub(crate) fn fire(&self, event: &CacheEvent<'_>) {
        let listeners = self.listeners.load();
        for listener in listeners.iter() {
            let outcome = catch_unwind(AssertUnwindSafe(|| listener.on_event(event)));
            let failure = match outcome {
                Ok(Ok(())) => continue,
                Ok(Err(e)) => e.to_string(),
                Err(_) => "listener panicked".to_string(),
            };
            self.failures.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %failure, "cache event listener failed; the operation continues");
        }
    }
}
