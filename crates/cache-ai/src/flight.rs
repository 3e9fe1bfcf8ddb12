//! Single-flight: at most one computation per key in this process.
//!
//! The first caller to miss becomes the leader and computes; later callers for the same key wait on
//! a `watch` channel. The leader stores the answer (L2, L1) *before* it publishes and leaves, so a
//! caller arriving afterwards finds it in the cache. Errors are shared as `Arc` and never cached.
//! If the leader is cancelled, its guard removes the flight and closes the channel: waiters wake,
//! and one of them leads a new attempt; nobody hangs.

use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use cache_core::CacheKey;
use tokio::sync::watch;

/// What a finished flight publishes: the answer, or the compute error (type-erased, since each
/// call site has its own error type).
pub(crate) type Landing<V> = Result<V, Arc<dyn Any + Send + Sync>>;

/// What a follower waits on: the leader's channel, and the count of callers waiting on it.
pub(crate) struct Slot<V> {
    receiver: watch::Receiver<Option<Landing<V>>>,
    waiting: Arc<AtomicUsize>,
}

impl<V> Clone for Slot<V> {
    fn clone(&self) -> Self {
        Self {
            receiver: self.receiver.clone(),
            waiting: Arc::clone(&self.waiting),
        }
    }
}

struct Flight<V> {
    id: u64,
    slot: Slot<V>,
    /// True while the leader stores its answer; a removal that covers the flight waits for it.
    storing: watch::Sender<bool>,
}

/// A removal's wait for the stores of the flights it fenced (see [`Flights::fence`]).
pub(crate) struct StoreWait(watch::Receiver<bool>);

impl StoreWait {
    /// Returns once the store has finished (or its leader is gone).
    pub(crate) async fn finished(mut self) {
        let _ = self.0.wait_for(|storing| !storing).await;
    }
}

/// Marks a leader's store in progress; dropping it (the store finished or was cancelled) lets the
/// removals waiting on it go on.
pub(crate) struct Storing(watch::Sender<bool>);

impl Drop for Storing {
    fn drop(&mut self) {
        self.0.send_replace(false);
    }
}

/// The flights in progress, by key.
pub(crate) struct Flights<V> {
    in_progress: Mutex<HashMap<CacheKey, Flight<V>>>,
    /// Stores of replaced flights and entry moves still running (locked after `in_progress`,
    /// never before).
    orphans: Mutex<Vec<(CacheKey, watch::Receiver<bool>)>>,
    /// Removals between their fence and their end (changed under the `in_progress` lock).
    removing: AtomicUsize,
    next_id: AtomicU64,
}

/// A removal in progress (see [`Flights::fence`]); dropping it ends it.
pub(crate) struct Removing<V>(Arc<Flights<V>>);

impl<V> Drop for Removing<V> {
    fn drop(&mut self) {
        self.0.removing.fetch_sub(1, Ordering::AcqRel);
    }
}

impl<V> Default for Flights<V> {
    fn default() -> Self {
        Self {
            in_progress: Mutex::new(HashMap::new()),
            orphans: Mutex::new(Vec::new()),
            removing: AtomicUsize::new(0),
            next_id: AtomicU64::new(0),
        }
    }
}

/// The role a caller gets for a key.
pub(crate) enum Role<V> {
    /// Compute, then [`Leader::land`].
    Leader(Leader<V>),
    /// Wait for the leader with [`wait`].
    Follower(Slot<V>),
}

/// The caller that computes. Dropping it without landing (cancellation) releases the followers.
pub(crate) struct Leader<V> {
    flights: Arc<Flights<V>>,
    key: CacheKey,
    id: u64,
    sender: watch::Sender<Option<Landing<V>>>,
}

impl<V: Clone> Flights<V> {
    /// Joins the flight for `key`, or starts one. `exclusive` always starts a new flight (a forced
    /// refresh must not reuse an answer computed before it was asked for).
    pub(crate) fn join(self: &Arc<Self>, key: &CacheKey, exclusive: bool) -> Role<V> {
        let mut map = self
            .in_progress
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if !exclusive && let Some(flight) = map.get(key) {
            return Role::Follower(flight.slot.clone());
        }
        Role::Leader(self.start(&mut map, key))
    }

    /// Starts a new flight for `key` (replacing any in the map; the old leader still lands for its
    /// own followers).
    pub(crate) fn lead(self: &Arc<Self>, key: &CacheKey) -> Leader<V> {
        let mut map = self
            .in_progress
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.start(&mut map, key)
    }

    fn start(
        self: &Arc<Self>,
        map: &mut HashMap<CacheKey, Flight<V>>,
        key: &CacheKey,
    ) -> Leader<V> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (sender, receiver) = watch::channel(None);
        let slot = Slot {
            receiver,
            waiting: Arc::new(AtomicUsize::new(0)),
        };
        let (storing, _) = watch::channel(false);
        if let Some(old) = map.insert(key.clone(), Flight { id, slot, storing })
            && *old.storing.borrow()
        {
            // A forced refresh replaced a flight whose leader is storing: removals must still
            // wait for that store, after this flight has ended too.
            let mut orphans = self.orphans();
            orphans.retain(|(_, store)| *store.borrow());
            orphans.push((key.clone(), old.storing.subscribe()));
        }
        Leader {
            flights: Arc::clone(self),
            key: key.clone(),
            id,
            sender,
        }
    }

    /// Fences the flights whose keys `covers` picks (a removal of them began): they leave the map,
    /// so their leaders store nothing and later callers start flights of their own; their
    /// waiting callers still get their answers. Returns a wait for each fenced leader that is
    /// storing right now: the removal must let that store finish before it removes the key.
    /// Until the returned [`Removing`] is dropped, no entry move starts ([`Self::begin_move`]).
    pub(crate) fn fence(
        self: &Arc<Self>,
        covers: impl Fn(&CacheKey) -> bool,
    ) -> (Vec<StoreWait>, Removing<V>) {
        let mut map = self
            .in_progress
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.removing.fetch_add(1, Ordering::AcqRel);
        let removing = Removing(Arc::clone(self));
        let mut waits = Vec::new();
        map.retain(|key, flight| {
            if !covers(key) {
                return true;
            }
            if *flight.storing.borrow() {
                waits.push(StoreWait(flight.storing.subscribe()));
            }
            false
        });
        let mut orphans = self.orphans();
        orphans.retain(|(_, store)| *store.borrow());
        waits.extend(
            orphans
                .iter()
                .filter(|(key, _)| covers(key))
                .map(|(_, store)| StoreWait(store.clone())),
        );
        (waits, removing)
    }

    /// Starts moving an entry of `key` from one location to another (the layout upgrade), unless
    /// a removal is in progress: a removal fenced before the move cannot see it, so the move
    /// waits for a quiet moment instead; a removal fenced later waits for the move to finish
    /// (as for a leader's store). The move must run while the guard lives.
    pub(crate) fn begin_move(&self, key: &CacheKey) -> Option<Storing> {
        let _map = self
            .in_progress
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if self.removing.load(Ordering::Acquire) > 0 {
            return None;
        }
        let (storing, receiver) = watch::channel(true);
        let mut orphans = self.orphans();
        orphans.retain(|(_, store)| *store.borrow());
        orphans.push((key.clone(), receiver));
        Some(Storing(storing))
    }

    fn orphans(&self) -> std::sync::MutexGuard<'_, Vec<(CacheKey, watch::Receiver<bool>)>> {
        self.orphans.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many flights are in progress, and how many callers wait on them.
    pub(crate) fn load(&self) -> (usize, usize) {
        let map = self
            .in_progress
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Each flight's map entry holds one receiver; every other one is a waiting caller.
        let waiting = map
            .values()
            .map(|flight| flight.slot.waiting.load(Ordering::Relaxed))
            .sum();
        (map.len(), waiting)
    }
}

impl<V> Leader<V> {
    /// Starts storing the answer, if this is still the newest flight for its key and no removal
    /// fenced it: a forced refresh starts a newer flight (an older leader must not store over
    /// the refreshed answer), and a removal that began after the computation did fences it (the
    /// answer may be what was removed). The store must run while the guard lives.
    pub(crate) fn begin_store(&self) -> Option<Storing> {
        let map = self
            .flights
            .in_progress
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let flight = map.get(&self.key).filter(|flight| flight.id == self.id)?;
        flight.storing.send_replace(true);
        Some(Storing(flight.storing.clone()))
    }

    /// Publishes an answer to the followers without ending the flight: callers joining later get
    /// it at once (serve-stale while a refresh runs in the background).
    pub(crate) fn publish(&self, landing: Landing<V>) {
        self.sender.send_replace(Some(landing));
    }

    /// Publishes the outcome to every follower and ends the flight.
    pub(crate) fn land(self, landing: Landing<V>) {
        // Followers may all have gone; nobody to tell is fine.
        let _ = self.sender.send(Some(landing));
    }
}

impl<V> Drop for Leader<V> {
    fn drop(&mut self) {
        let mut map = self
            .flights
            .in_progress
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if map
            .get(&self.key)
            .is_some_and(|flight| flight.id == self.id)
        {
            map.remove(&self.key);
        }
    }
}

/// Counts a caller as waiting for as long as it lives (also when its future is dropped).
struct Waiting(Arc<AtomicUsize>);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Waits for the leader. `None` when the leader went away without an answer (cancelled).
pub(crate) async fn wait<V: Clone>(slot: Slot<V>) -> Option<Landing<V>> {
    let Slot {
        mut receiver,
        waiting,
    } = slot;
    waiting.fetch_add(1, Ordering::Relaxed);
    let _waiting = Waiting(waiting);
    match receiver.wait_for(Option::is_some).await {
        Ok(landing) => landing.clone(),
        Err(_) => None,
    }
}
