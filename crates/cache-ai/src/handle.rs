//! [`WeakAIResponseCache`]: a handle that does not keep the cache alive, for background tasks
//! that should end with it (stats publication, for example).

use std::fmt;
use std::sync::Weak;

use crate::cache::{AIResponseCache, Inner};

/// A handle on an [`AIResponseCache`] that does not keep it alive.
pub struct WeakAIResponseCache<T> {
    inner: Weak<Inner<T>>,
}

impl<T> Clone for WeakAIResponseCache<T> {
    fn clone(&self) -> Self {
        Self {
            inner: Weak::clone(&self.inner),
        }
    }
}

impl<T> fmt::Debug for WeakAIResponseCache<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WeakAIResponseCache")
            .field("alive", &(self.inner.strong_count() > 0))
            .finish()
    }
}

impl<T> WeakAIResponseCache<T> {
    /// The cache, while some handle on it is alive.
    pub fn upgrade(&self) -> Option<AIResponseCache<T>> {
        self.inner.upgrade().map(|inner| AIResponseCache { inner })
    }
}

impl<T> AIResponseCache<T> {
    /// A handle that does not keep the cache alive.
    pub fn downgrade(&self) -> WeakAIResponseCache<T> {
        WeakAIResponseCache {
            inner: std::sync::Arc::downgrade(&self.inner),
        }
    }
}
