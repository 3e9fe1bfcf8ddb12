//! Per-request controls.

use cache_core::Ttl;

/// How one request uses the cache. The default reads, computes on a miss and stores.
///
/// ```
/// use cache_ai::RequestControls;
///
/// let controls = RequestControls::default().no_store();
/// assert!(controls.reads() && !controls.stores());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct RequestControls {
    /// Skip the read, still store the computed answer (may join a computation already running).
    pub no_cache: bool,
    /// Read, but never store.
    pub no_store: bool,
    /// Recompute now and replace the entry: no read, no joining of a running computation.
    pub force_refresh: bool,
    /// Read only: no store and no promotion into L1 (a read-only replica, a dry run).
    pub read_only: bool,
    /// Store with this TTL instead of the operation's.
    pub ttl: Option<Ttl>,
}

impl RequestControls {
    /// Sets [`no_cache`](Self::no_cache).
    #[must_use]
    pub fn no_cache(mut self) -> Self {
        self.no_cache = true;
        self
    }

    /// Sets [`no_store`](Self::no_store).
    #[must_use]
    pub fn no_store(mut self) -> Self {
        self.no_store = true;
        self
    }

    /// Sets [`force_refresh`](Self::force_refresh).
    #[must_use]
    pub fn force_refresh(mut self) -> Self {
        self.force_refresh = true;
        self
    }

    /// Sets [`read_only`](Self::read_only).
    #[must_use]
    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }

    /// Sets [`ttl`](Self::ttl).
    #[must_use]
    pub fn with_ttl(mut self, ttl: Ttl) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Whether the request reads the cache.
    pub fn reads(&self) -> bool {
        !self.no_cache && !self.force_refresh
    }

    /// Whether the request may store.
    pub fn stores(&self) -> bool {
        !self.no_store && !self.read_only
    }
}
