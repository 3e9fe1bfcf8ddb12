//! [`OperationTable`]: per-operation state keyed by names that come from requests, bounded
//! whatever callers send.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;

/// How many operations an [`OperationTable`] keeps under their own name; further ones share
/// [`OTHER_OPERATIONS`] (their counts stay exact, memory stays bounded).
pub const MAX_TRACKED_OPERATIONS: usize = 64;

/// The name of the entry that stands for operations beyond [`MAX_TRACKED_OPERATIONS`] (not a
/// valid operation name, so it never meets one).
pub const OTHER_OPERATIONS: &str = "(other)";

/// State per operation name (`V`), at most [`MAX_TRACKED_OPERATIONS`] names plus
/// [`OTHER_OPERATIONS`]. Lookups of known names are lock-free reads; a new name copies the map
/// once.
///
/// ```
/// use cache_monitoring::{MAX_TRACKED_OPERATIONS, OTHER_OPERATIONS, OperationTable};
///
/// let table: OperationTable<String> = OperationTable::default();
/// for i in 0..MAX_TRACKED_OPERATIONS + 10 {
///     table.get_or_insert(&format!("op{i}"), |name| name.to_string());
/// }
/// assert_eq!(table.entries().len(), MAX_TRACKED_OPERATIONS + 1);
/// assert_eq!(*table.get_or_insert("one more", |n| n.to_string()), OTHER_OPERATIONS);
/// ```
pub struct OperationTable<V> {
    map: ArcSwap<Map<V>>,
}

/// Looked up on every request: foldhash, not SipHash (the names are few and bounded, so
/// flooding resistance buys nothing here).
type Map<V> = HashMap<Arc<str>, Arc<V>, foldhash::fast::RandomState>;

impl<V> Default for OperationTable<V> {
    fn default() -> Self {
        Self {
            map: ArcSwap::from_pointee(Map::default()),
        }
    }
}

impl<V> std::fmt::Debug for OperationTable<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperationTable")
            .field("operations", &self.map.load().len())
            .finish()
    }
}

impl<V> OperationTable<V> {
    /// Runs `f` on the entry [`get_or_insert`](Self::get_or_insert) would return, without
    /// cloning its `Arc`: for a caller that needs the entry only for the call (two atomic
    /// read-modify-writes fewer per event).
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// let table = cache_monitoring::OperationTable::<AtomicU64>::default();
    /// for _ in 0..3 {
    ///     table.with("summarize", |_| AtomicU64::new(0), |n| n.fetch_add(1, Ordering::Relaxed));
    /// }
    /// let entry = table.get_or_insert("summarize", |_| AtomicU64::new(0));
    /// assert_eq!(entry.load(Ordering::Relaxed), 3);
    /// ```
    pub fn with<R>(
        &self,
        operation: &str,
        make: impl Fn(&Arc<str>) -> V,
        f: impl FnOnce(&V) -> R,
    ) -> R {
        let map = self.map.load();
        if let Some(found) = map.get(operation) {
            return f(found);
        }
        f(&self.insert_slow(map, operation, &make))
    }

    /// The entry of `operation`, made by `make` (given the name it is kept under) when the
    /// table has none yet; past the cap, the shared [`OTHER_OPERATIONS`] entry.
    pub fn get_or_insert(&self, operation: &str, make: impl Fn(&Arc<str>) -> V) -> Arc<V> {
        // The hot path (a known name) stays small: the insertion, which builds a `V` on the
        // stack, lives in its own function.
        let map = self.map.load();
        if let Some(found) = map.get(operation) {
            return Arc::clone(found);
        }
        self.insert_slow(map, operation, &make)
    }

    /// `map` is the snapshot the lookup missed in: deciding the cap on a later one could send an
    /// operation that another thread just inserted as the last tracked name to the shared entry.
    #[cold]
    #[inline(never)]
    fn insert_slow(
        &self,
        map: arc_swap::Guard<Arc<Map<V>>>,
        operation: &str,
        make: &dyn Fn(&Arc<str>) -> V,
    ) -> Arc<V> {
        let name = if map.len() >= MAX_TRACKED_OPERATIONS {
            OTHER_OPERATIONS
        } else {
            operation
        };
        if let Some(found) = map.get(name) {
            return Arc::clone(found);
        }
        drop(map);
        let (fresh_name, other_name): (Arc<str>, Arc<str>) =
            (Arc::from(name), Arc::from(OTHER_OPERATIONS));
        let (fresh, other) = (
            Arc::new(make(&fresh_name)),
            std::sync::OnceLock::<Arc<V>>::new(),
        );
        // Two first requests of one operation may race: the map keeps whichever landed first;
        // the cap is checked again on the map being replaced, so racing new names cannot pass it.
        self.map.rcu(|current| {
            let mut next = Map::clone(current);
            if next.len() < MAX_TRACKED_OPERATIONS || name == OTHER_OPERATIONS {
                next.entry(Arc::clone(&fresh_name))
                    .or_insert_with(|| Arc::clone(&fresh));
            } else if !next.contains_key(name) {
                next.entry(Arc::clone(&other_name)).or_insert_with(|| {
                    Arc::clone(other.get_or_init(|| Arc::new(make(&other_name))))
                });
            }
            next
        });
        let map = self.map.load();
        map.get(name)
            .or_else(|| map.get(OTHER_OPERATIONS))
            .map_or(fresh, Arc::clone)
    }

    /// Every name and its entry.
    pub fn entries(&self) -> Vec<(Arc<str>, Arc<V>)> {
        self.map
            .load()
            .iter()
            .map(|(name, entry)| (Arc::clone(name), Arc::clone(entry)))
            .collect()
    }

    /// Forgets every entry.
    pub fn clear(&self) {
        self.map.store(Arc::new(Map::default()));
    }
}
