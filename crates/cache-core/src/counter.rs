//! [`StripedCounter`]: a counter that many threads bump without sharing a cache line, summed on
//! read (for counters on every request, where one shared atomic costs a cache-line transfer
//! between cores per increment).

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Stripes per counter: more than the cores of the machines this runs on, so threads rarely
/// share one.
const STRIPES: usize = 16;

/// One stripe, alone on its cache line (128 bytes: adjacent-line prefetch pairs lines).
#[repr(align(128))]
#[derive(Default)]
struct Stripe(AtomicU64);

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
    stripes: [Stripe; STRIPES],
}

impl std::fmt::Debug for StripedCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("StripedCounter").field(&self.get()).finish()
    }
}

/// This thread's stripe, handed out round-robin on first use.
fn stripe() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static STRIPE: Cell<Option<usize>> = const { Cell::new(None) };
    }
    STRIPE.with(|stripe| match stripe.get() {
        Some(index) => index,
        None => {
            let index = NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES;
            stripe.set(Some(index));
            index
        }
    })
}

impl StripedCounter {
    /// Adds `n`.
    pub fn add(&self, n: u64) {
        if let Some(cell) = self.stripes.get(stripe()) {
            cell.0.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Adds 1 and returns this thread's stripe's new value: a per-thread sequence (1, 2, 3, …)
    /// for 1-in-N sampling without a shared cache line.
    pub fn increment(&self) -> u64 {
        self.stripes.get(stripe()).map_or(0, |cell| {
            cell.0.fetch_add(1, Ordering::Relaxed).wrapping_add(1)
        })
    }

    /// Sets every stripe to zero.
    pub fn reset(&self) {
        for cell in &self.stripes {
            cell.0.store(0, Ordering::Relaxed);
        }
    }

    /// The sum of every stripe.
    pub fn get(&self) -> u64 {
        self.stripes
            .iter()
            .map(|s| s.0.load(Ordering::Relaxed))
            .fold(0, u64::wrapping_add)
    }
}
