//! The backend contract: [`CacheInterface`], its dyn-compatible twin [`DynCache`], and
//! [`SharedCache`], a cloneable type-erased handle.
//!
//! Backends move bytes. Typed (serde) access, key derivation and compression policy live above this
//! trait. Every in-repo backend passes the conformance suite in `cache-testkit`, and so must a new one.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::capability::Capabilities;
use crate::error::Result;
use crate::key::{CacheKey, KeyPattern};
use crate::ttl::Ttl;

/// A boxed, `Send` future, as returned by [`DynCache`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A cache backend.
///
/// # Behavior
/// - A miss is `Ok(None)`; an empty value is a hit (`Ok(Some(b""))`), never a miss.
/// - `set` with `ttl: None` uses the backend's default TTL; every entry expires.
/// - Deleting a missing key succeeds and returns `false`.
/// - Patterns are [`KeyPattern`] globs over logical keys (without any namespace the backend adds)
///   and select the same keys in every backend.
/// - A value larger than [`Capabilities::max_value_size`] is refused with
///   [`ErrorKind::CapacityExceeded`](crate::ErrorKind::CapacityExceeded), never silently dropped.
/// - Methods are cancellation-safe: dropping a future leaves the cache consistent (a write either
///   happened or did not).
///
/// # Implementing
/// The methods return `impl Future + Send` so that static calls need no allocation; the blanket
/// [`DynCache`] impl gives every backend a dyn-compatible form for free. Wrappers must forward every
/// method.
pub trait CacheInterface: Send + Sync {
    /// What this backend can hold and who sees it.
    fn capabilities(&self) -> Capabilities;

    /// Reads `key`.
    fn get(&self, key: &CacheKey) -> impl Future<Output = Result<Option<Bytes>>> + Send;

    /// Writes `value` under `key` for `ttl` (the backend default when `None`), replacing any value.
    fn set(
        &self,
        key: &CacheKey,
        value: Bytes,
        ttl: Option<Ttl>,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Removes `key`; true when it existed.
    fn delete(&self, key: &CacheKey) -> impl Future<Output = Result<bool>> + Send;

    /// Whether `key` holds a live value.
    fn exists(&self, key: &CacheKey) -> impl Future<Output = Result<bool>> + Send;

    /// The time `key` has left, or `None` when it does not exist.
    fn remaining_ttl(
        &self,
        key: &CacheKey,
    ) -> impl Future<Output = Result<Option<Duration>>> + Send;

    /// Removes every entry of this cache's namespace; returns how many were removed.
    fn clear(&self) -> impl Future<Output = Result<u64>> + Send;

    /// The live keys that match `pattern`, each once, in no particular order.
    fn scan(&self, pattern: &KeyPattern) -> impl Future<Output = Result<Vec<CacheKey>>> + Send;

    /// Removes the keys that match `pattern`; returns how many were removed.
    fn delete_pattern(&self, pattern: &KeyPattern) -> impl Future<Output = Result<u64>> + Send;

    /// Reads several keys; the result has one slot per key, in order.
    fn get_many(
        &self,
        keys: &[CacheKey],
    ) -> impl Future<Output = Result<Vec<Option<Bytes>>>> + Send;

    /// Writes several entries with one TTL.
    fn set_many(
        &self,
        entries: &[(CacheKey, Bytes)],
        ttl: Option<Ttl>,
    ) -> impl Future<Output = Result<()>> + Send;
}

/// The dyn-compatible form of [`CacheInterface`], implemented for every backend.
///
/// Use it through [`SharedCache`], which implements [`CacheInterface`] again.
#[allow(
    missing_docs,
    reason = "each method mirrors the CacheInterface method of the same name"
)]
pub trait DynCache: Send + Sync {
    fn capabilities_dyn(&self) -> Capabilities;
    fn get_dyn<'a>(&'a self, key: &'a CacheKey) -> BoxFuture<'a, Result<Option<Bytes>>>;
    fn set_dyn<'a>(
        &'a self,
        key: &'a CacheKey,
        value: Bytes,
        ttl: Option<Ttl>,
    ) -> BoxFuture<'a, Result<()>>;
    fn delete_dyn<'a>(&'a self, key: &'a CacheKey) -> BoxFuture<'a, Result<bool>>;
    fn exists_dyn<'a>(&'a self, key: &'a CacheKey) -> BoxFuture<'a, Result<bool>>;
    fn remaining_ttl_dyn<'a>(
        &'a self,
        key: &'a CacheKey,
    ) -> BoxFuture<'a, Result<Option<Duration>>>;
    fn clear_dyn(&self) -> BoxFuture<'_, Result<u64>>;
    fn scan_dyn<'a>(&'a self, pattern: &'a KeyPattern) -> BoxFuture<'a, Result<Vec<CacheKey>>>;
    fn delete_pattern_dyn<'a>(&'a self, pattern: &'a KeyPattern) -> BoxFuture<'a, Result<u64>>;
    fn get_many_dyn<'a>(
        &'a self,
        keys: &'a [CacheKey],
    ) -> BoxFuture<'a, Result<Vec<Option<Bytes>>>>;
    fn set_many_dyn<'a>(
        &'a self,
        entries: &'a [(CacheKey, Bytes)],
        ttl: Option<Ttl>,
    ) -> BoxFuture<'a, Result<()>>;
}

impl<T: CacheInterface + ?Sized> DynCache for T {
    fn capabilities_dyn(&self) -> Capabilities {
        self.capabilities()
    }
    fn get_dyn<'a>(&'a self, key: &'a CacheKey) -> BoxFuture<'a, Result<Option<Bytes>>> {
        Box::pin(self.get(key))
    }
    fn set_dyn<'a>(
        &'a self,
        key: &'a CacheKey,
        value: Bytes,
        ttl: Option<Ttl>,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.set(key, value, ttl))
    }
    fn delete_dyn<'a>(&'a self, key: &'a CacheKey) -> BoxFuture<'a, Result<bool>> {
        Box::pin(self.delete(key))
    }
    fn exists_dyn<'a>(&'a self, key: &'a CacheKey) -> BoxFuture<'a, Result<bool>> {
        Box::pin(self.exists(key))
    }
    fn remaining_ttl_dyn<'a>(
        &'a self,
        key: &'a CacheKey,
    ) -> BoxFuture<'a, Result<Option<Duration>>> {
        Box::pin(self.remaining_ttl(key))
    }
    fn clear_dyn(&self) -> BoxFuture<'_, Result<u64>> {
        Box::pin(self.clear())
    }
    fn scan_dyn<'a>(&'a self, pattern: &'a KeyPattern) -> BoxFuture<'a, Result<Vec<CacheKey>>> {
        Box::pin(self.scan(pattern))
    }
    fn delete_pattern_dyn<'a>(&'a self, pattern: &'a KeyPattern) -> BoxFuture<'a, Result<u64>> {
        Box::pin(self.delete_pattern(pattern))
    }
    fn get_many_dyn<'a>(
        &'a self,
        keys: &'a [CacheKey],
    ) -> BoxFuture<'a, Result<Vec<Option<Bytes>>>> {
        Box::pin(self.get_many(keys))
    }
    fn set_many_dyn<'a>(
        &'a self,
        entries: &'a [(CacheKey, Bytes)],
        ttl: Option<Ttl>,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.set_many(entries, ttl))
    }
}

/// A cloneable, type-erased cache: `Arc<dyn DynCache>` that implements [`CacheInterface`].
///
/// ```
/// # async fn demo(backend: impl cache_core::CacheInterface + 'static) -> cache_core::Result<()> {
/// use cache_core::{CacheInterface, CacheKey, SharedCache};
///
/// let shared = SharedCache::new(backend);
/// let key = CacheKey::new("greeting")?;
/// shared.set(&key, "hello".into(), None).await?;
/// assert_eq!(shared.get(&key).await?.as_deref(), Some(&b"hello"[..]));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SharedCache(Arc<dyn DynCache>);

impl SharedCache {
    /// Erases the type of `backend`.
    pub fn new(backend: impl CacheInterface + 'static) -> Self {
        Self(Arc::new(backend))
    }

    /// Wraps an existing shared backend.
    pub fn from_arc(backend: Arc<dyn DynCache>) -> Self {
        Self(backend)
    }
}

impl fmt::Debug for SharedCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedCache")
            .field("capabilities", &self.0.capabilities_dyn())
            .finish_non_exhaustive()
    }
}

#[deny(clippy::missing_trait_methods)]
impl CacheInterface for SharedCache {
    fn capabilities(&self) -> Capabilities {
        self.0.capabilities_dyn()
    }
    async fn get(&self, key: &CacheKey) -> Result<Option<Bytes>> {
        self.0.get_dyn(key).await
    }
    async fn set(&self, key: &CacheKey, value: Bytes, ttl: Option<Ttl>) -> Result<()> {
        self.0.set_dyn(key, value, ttl).await
    }
    async fn delete(&self, key: &CacheKey) -> Result<bool> {
        self.0.delete_dyn(key).await
    }
    async fn exists(&self, key: &CacheKey) -> Result<bool> {
        self.0.exists_dyn(key).await
    }
    async fn remaining_ttl(&self, key: &CacheKey) -> Result<Option<Duration>> {
        self.0.remaining_ttl_dyn(key).await
    }
    async fn clear(&self) -> Result<u64> {
        self.0.clear_dyn().await
    }
    async fn scan(&self, pattern: &KeyPattern) -> Result<Vec<CacheKey>> {
        self.0.scan_dyn(pattern).await
    }
    async fn delete_pattern(&self, pattern: &KeyPattern) -> Result<u64> {
        self.0.delete_pattern_dyn(pattern).await
    }
    async fn get_many(&self, keys: &[CacheKey]) -> Result<Vec<Option<Bytes>>> {
        self.0.get_many_dyn(keys).await
    }
    async fn set_many(&self, entries: &[(CacheKey, Bytes)], ttl: Option<Ttl>) -> Result<()> {
        self.0.set_many_dyn(entries, ttl).await
    }
}
