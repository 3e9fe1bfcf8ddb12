//! [`OperationTable`]: per-operation state keyed by names that come from requests, bounded
//! whatever callers send.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

/// How many operations an [`OperationTable`] keeps under their own name; further ones share
/// [`OTHER_OPERATIONS`] (their counts stay exact, memory stays bounded).
pub const MAX_TRACKED_OPERATIONS: usize = 64;

/// The name of the entry that stands for operations beyond [`MAX_TRACKED_OPERATIONS`] (not a
/// valid operation name, so it never meets one).
pub const OTHER_OPERATIONS: &str = "(other)";

/// Open addressing over twice the cap: at most half the slots are ever filled, so a probe
/// meets an empty slot (the end of its chain) within a few steps.
const SLOTS: usize = (MAX_TRACKED_OPERATIONS * 2).next_power_of_two();

/// State per operation name (`V`), at most [`MAX_TRACKED_OPERATIONS`] names plus
/// [`OTHER_OPERATIONS`].
///
/// A name, once tracked, keeps its entry for the table's life ([`reset`](Self::reset) zeroes
/// entries, it does not forget names). That is what makes a lookup of a known name a few plain
/// loads: no lock, no reference count, no read-modify-write of memory other cores touch (every
/// request looks its operation up in several tables). A new name takes a lock once.
///
/// ```
/// use cache_monitoring::{MAX_TRACKED_OPERATIONS, OTHER_OPERATIONS, OperationTable};
///
/// let table: OperationTable<String> = OperationTable::default();
/// for i in 0..MAX_TRACKED_OPERATIONS + 10 {
///     table.get(&format!("op{i}"), |name| name.to_string());
/// }
/// assert_eq!(table.entries().len(), MAX_TRACKED_OPERATIONS + 1);
/// assert_eq!(table.get("one more", |n| n.to_string()), OTHER_OPERATIONS);
/// ```
pub struct OperationTable<V> {
    /// Filled only under `inserting`, never emptied: a probe that meets an empty slot knows the
    /// name is not in the table.
    slots: Box<[OnceLock<Entry<V>>]>,
    other: OnceLock<Entry<V>>,
    /// Names with a slot of their own.
    tracked: AtomicUsize,
    hasher: foldhash::fast::RandomState,
    inserting: Mutex<()>,
}

struct Entry<V> {
    name: Arc<str>,
    value: Arc<V>,
}

impl<V> Default for OperationTable<V> {
    fn default() -> Self {
        Self {
            slots: (0..SLOTS).map(|_| OnceLock::new()).collect(),
            other: OnceLock::new(),
            tracked: AtomicUsize::new(0),
            hasher: foldhash::fast::RandomState::default(),
            inserting: Mutex::new(()),
        }
    }
}

impl<V> std::fmt::Debug for OperationTable<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperationTable")
            .field("operations", &self.tracked.load(Ordering::Relaxed))
            .finish()
    }
}

impl<V> OperationTable<V> {
    /// The entry of `operation`, made by `make` (given the name it is kept under) when the
    /// table has none yet; past the cap, the shared [`OTHER_OPERATIONS`] entry.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// let table = cache_monitoring::OperationTable::<AtomicU64>::default();
    /// for _ in 0..3 {
    ///     table.get("summarize", |_| AtomicU64::new(0)).fetch_add(1, Ordering::Relaxed);
    /// }
    /// assert_eq!(table.get("summarize", |_| AtomicU64::new(0)).load(Ordering::Relaxed), 3);
    /// ```
    pub fn get(&self, operation: &str, make: impl Fn(&Arc<str>) -> V) -> &V {
        match self.find(operation) {
            Ok(entry) => &entry.value,
            // The insertion, which builds a `V` on the stack, stays out of the hot path.
            Err(_) => &self.insert_slow(operation, &make).value,
        }
    }

    /// [`get`](Self::get) as a shared handle, for a caller that keeps the entry beyond a borrow
    /// of the table.
    pub fn get_or_insert(&self, operation: &str, make: impl Fn(&Arc<str>) -> V) -> Arc<V> {
        match self.find(operation) {
            Ok(entry) => Arc::clone(&entry.value),
            Err(_) => Arc::clone(&self.insert_slow(operation, &make).value),
        }
    }

    /// The entry of `operation`, or the empty slot that ends its probe chain.
    fn find(&self, operation: &str) -> Result<&Entry<V>, usize> {
        // Truncation is the point: the low bits pick the home slot.
        #[expect(clippy::cast_possible_truncation, reason = "masked to a slot index")]
        let mut index = self.hasher.hash_one(operation) as usize & (SLOTS - 1);
        for _ in 0..SLOTS {
            match self.slots.get(index).and_then(OnceLock::get) {
                None => return Err(index),
                Some(entry) if *entry.name == *operation => return Ok(entry),
                Some(_) => index = (index + 1) & (SLOTS - 1),
            }
        }
        Err(SLOTS)
    }

    /// `make` runs under the insertion lock: it must not use this table.
    #[cold]
    #[inline(never)]
    fn insert_slow(&self, operation: &str, make: &dyn Fn(&Arc<str>) -> V) -> &Entry<V> {
        // The shared entry's own name (which callers pass on when they report an operation
        // counted under it) is that entry, never a slot: two entries of one name would hide
        // one another in reports.
        if operation == OTHER_OPERATIONS {
            return self.other(make);
        }
        if self.tracked.load(Ordering::Acquire) >= MAX_TRACKED_OPERATIONS {
            // The cap may have been reached by this very name since the probe above missed:
            // the slot is set before `tracked` counts it, so this probe sees it.
            return match self.find(operation) {
                Ok(entry) => entry,
                Err(_) => self.other(make),
            };
        }
        let _one_inserter = self
            .inserting
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Another thread may have inserted it (or filled the cap) since the lock-free probe.
        let index = match self.find(operation) {
            Ok(entry) => return entry,
            Err(index) => index,
        };
        match self.slots.get(index) {
            Some(slot) if self.tracked.load(Ordering::Relaxed) < MAX_TRACKED_OPERATIONS => {
                let name: Arc<str> = Arc::from(operation);
                let value = Arc::new(make(&name));
                // Slots are set only under the lock, so the one found empty is still empty.
                let entry = slot.get_or_init(|| Entry { name, value });
                self.tracked.fetch_add(1, Ordering::Release);
                entry
            }
            _ => self.other(make),
        }
    }

    fn other(&self, make: &dyn Fn(&Arc<str>) -> V) -> &Entry<V> {
        self.other.get_or_init(|| {
            let name: Arc<str> = Arc::from(OTHER_OPERATIONS);
            Entry {
                value: Arc::new(make(&name)),
                name,
            }
        })
    }

    fn each(&self) -> impl Iterator<Item = &Entry<V>> {
        self.slots
            .iter()
            .chain(std::iter::once(&self.other))
            .filter_map(OnceLock::get)
    }

    /// Every name and its entry.
    pub fn entries(&self) -> Vec<(Arc<str>, Arc<V>)> {
        self.each()
            .map(|entry| (Arc::clone(&entry.name), Arc::clone(&entry.value)))
            .collect()
    }

    /// Runs `zero` on every entry (names stay tracked: callers report an entry that was not
    /// used since as absent).
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// let table = cache_monitoring::OperationTable::<AtomicU64>::default();
    /// table.get("qa", |_| AtomicU64::new(0)).fetch_add(2, Ordering::Relaxed);
    /// table.reset(|n| n.store(0, Ordering::Relaxed));
    /// assert_eq!(table.get("qa", |_| AtomicU64::new(0)).load(Ordering::Relaxed), 0);
    /// ```
    pub fn reset(&self, zero: impl Fn(&V)) {
        self.each().for_each(|entry| zero(&entry.value));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;

    use super::*;

    fn counter(_: &Arc<str>) -> AtomicU64 {
        AtomicU64::new(0)
    }

    #[test]
    fn names_racing_to_be_tracked_never_pass_the_cap_and_every_count_lands() {
        let table = OperationTable::<AtomicU64>::default();
        std::thread::scope(|scope| {
            for thread in 0..4 {
                let table = &table;
                scope.spawn(move || {
                    for i in 0..3 * MAX_TRACKED_OPERATIONS {
                        let name = format!("op{}", (i + thread * 7) % (2 * MAX_TRACKED_OPERATIONS));
                        table.get(&name, counter).fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
        });
        let entries = table.entries();
        assert_eq!(entries.len(), MAX_TRACKED_OPERATIONS + 1);
        let total: u64 = entries.iter().map(|(_, n)| n.load(Ordering::Relaxed)).sum();
        assert_eq!(total, 4 * 3 * MAX_TRACKED_OPERATIONS as u64);
        let names: std::collections::HashSet<_> = entries.iter().map(|(n, _)| n.clone()).collect();
        assert_eq!(names.len(), entries.len(), "a name is tracked once");
    }

    #[test]
    fn the_shared_entrys_name_is_that_entry_before_and_after_the_cap() {
        let table = OperationTable::<AtomicU64>::default();
        table
            .get(OTHER_OPERATIONS, counter)
            .fetch_add(1, Ordering::Relaxed);
        for i in 0..MAX_TRACKED_OPERATIONS + 1 {
            table.get(&format!("op{i}"), counter);
        }
        table
            .get(OTHER_OPERATIONS, counter)
            .fetch_add(1, Ordering::Relaxed);
        let others: Vec<u64> = table
            .entries()
            .iter()
            .filter(|(name, _)| **name == *OTHER_OPERATIONS)
            .map(|(_, n)| n.load(Ordering::Relaxed))
            .collect();
        assert_eq!(others, [2]);
        assert_eq!(table.entries().len(), MAX_TRACKED_OPERATIONS + 1);
    }

    #[test]
    fn a_name_tracked_while_the_cap_fills_counts_under_its_own_name_on_every_thread() {
        for _ in 0..50 {
            let table = OperationTable::<AtomicU64>::default();
            for i in 0..MAX_TRACKED_OPERATIONS - 1 {
                table.get(&format!("op{i}"), counter);
            }
            // Every thread races to be the one that tracks `last`, the name that fills the cap.
            std::thread::scope(|scope| {
                for _ in 0..4 {
                    scope.spawn(|| table.get("last", counter).fetch_add(1, Ordering::Relaxed));
                }
            });
            let counts: std::collections::HashMap<_, _> = table
                .entries()
                .into_iter()
                .map(|(name, n)| (name.to_string(), n.load(Ordering::Relaxed)))
                .collect();
            assert_eq!(counts.get("last"), Some(&4), "{counts:?}");
            assert_eq!(counts.get(OTHER_OPERATIONS), None);
        }
    }

    #[test]
    fn a_tracked_name_keeps_its_entry_after_a_reset_and_others_still_share_one() {
        let table = OperationTable::<AtomicU64>::default();
        for i in 0..MAX_TRACKED_OPERATIONS {
            table.get(&format!("op{i}"), counter);
        }
        table.get("late", counter).fetch_add(5, Ordering::Relaxed);
        table.reset(|n| n.store(0, Ordering::Relaxed));
        assert_eq!(table.get("late", counter).load(Ordering::Relaxed), 0);
        table.get("op3", counter).fetch_add(1, Ordering::Relaxed);
        table.get("later", counter).fetch_add(1, Ordering::Relaxed);
        assert_eq!(table.get("op3", counter).load(Ordering::Relaxed), 1);
        assert_eq!(table.get("late", counter).load(Ordering::Relaxed), 1);
    }
}
