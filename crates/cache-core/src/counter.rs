//! Striping: per-thread shares of a value that many threads update on every request, so that
//! threads on different cores share no cache line (one shared atomic costs a cache-line transfer
//! between cores per update). [`Striped`] holds the shares; [`StripedCounter`] is a counter
//! built on it, summed on read.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Stripes per value: more than the cores of the machines this runs on, so threads rarely
/// share one.
const STRIPES: usize = 16;

/// One stripe, alone on its cache line (128 bytes: adjacent-line prefetch pairs lines).
#[repr(align(128))]
#[derive(Default)]
struct Stripe<T>(T);

/// Sixteen shares of a `T`, one per thread (threads are handed stripes round-robin, so past
/// sixteen threads some share one): [`local`](Self::local) is the calling thread's share, and a
/// reader folds [`iter`](Self::iter). A `T` of several atomics that are updated together puts
/// them on one line that only this thread writes.
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
///
/// let shares: cache_core::Striped<[AtomicU64; 2]> = Default::default();
/// shares.local()[0].fetch_add(1, Ordering::Relaxed);
/// std::thread::scope(|s| {
///     s.spawn(|| shares.local()[1].fetch_add(2, Ordering::Relaxed));
/// });
/// let total: u64 = shares.iter().map(|[a, b]| a.load(Ordering::Relaxed) + b.load(Ordering::Relaxed)).sum();
/// assert_eq!(total, 3);
/// ```
#[derive(Default)]
pub struct Striped<T> {
    stripes: [Stripe<T>; STRIPES],
}

impl<T> Striped<T> {
    /// The calling thread's share.
    #[inline]
    pub fn local(&self) -> &T {
        // In bounds: the index is reduced modulo the array's length.
        &self.stripes[stripe() % STRIPES].0
    }

    /// Every share, for a reader to fold.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.stripes.iter().map(|stripe| &stripe.0)
    }
}

impl<T> std::fmt::Debug for Striped<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Striped").finish_non_exhaustive()
    }
}

/// A counter bumped from many threads, each thread on its own stripe; [`get`](Self::get) sums
/// the stripes (exact once the bumps it races with are done).
///
/// ```
/// let counter = cache_core::StripedCounter::default();
/// counter.add(2);
/// std::thread::scope(|s| {
///     s.spawn(|| counter.add(3));
/// });
/// assert_eq!(counter.get(), 5);
/// ```
#[derive(Default)]
pub struct StripedCounter {
    stripes: Striped<AtomicU64>,
}

impl std::fmt::Debug for StripedCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("StripedCounter").field(&self.get()).finish()
    }
}

/// This thread's stripe, handed out round-robin on first use.
#[inline]
fn stripe() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static STRIPE: Cell<Option<usize>> = const { Cell::new(None) };
    }
    #[cold]
    fn assign(stripe: &Cell<Option<usize>>) -> usize {
        let index = NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES;
        stripe.set(Some(index));
        index
    }
    STRIPE.with(|stripe| stripe.get().unwrap_or_else(|| assign(stripe)))
}

impl StripedCounter {
    /// Adds `n`.
    #[inline]
    pub fn add(&self, n: u64) {
        self.stripes.local().fetch_add(n, Ordering::Relaxed);
    }

    /// Adds 1 and returns this thread's stripe's new value: a per-thread sequence (1, 2, 3, …)
    /// for 1-in-N sampling without a shared cache line.
    #[inline]
    pub fn increment(&self) -> u64 {
        self.stripes
            .local()
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_add(1)
    }

    /// This thread's stripe's value (what [`increment`](Self::increment) returned last here),
    /// without bumping it: to predict the next increment.
    #[inline]
    pub fn local_value(&self) -> u64 {
        self.stripes.local().load(Ordering::Relaxed)
    }

    /// Sets every stripe to zero.
    pub fn reset(&self) {
        for cell in self.stripes.iter() {
            cell.store(0, Ordering::Relaxed);
        }
    }

    /// The sum of every stripe.
    pub fn get(&self) -> u64 {
        self.stripes
            .iter()
            .map(|cell| cell.load(Ordering::Relaxed))
            .fold(0, u64::wrapping_add)
    }
}
