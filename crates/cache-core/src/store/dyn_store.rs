//! [`DynFrameStore`]: the dyn-compatible twin of [`FrameStore`], implemented for every store.

use std::time::Duration;

use bytes::Bytes;

use super::*;

/// The dyn-compatible form of [`FrameStore`], implemented for every store.
#[allow(
    missing_docs,
    reason = "each method mirrors the FrameStore method of the same name"
)]
pub trait DynFrameStore: Send + Sync {
    fn info(&self) -> StoreInfo;
    fn is_available(&self) -> bool;
    fn get<'a>(&'a self, key: &'a CacheKey) -> BoxFuture<'a, Result<Option<Bytes>>>;
    fn get_many<'a>(&'a self, keys: &'a [CacheKey]) -> BoxFuture<'a, Result<Vec<Option<Bytes>>>>;
    fn set<'a>(
        &'a self,
        key: &'a CacheKey,
        frame: Bytes,
        ttl: Ttl,
    ) -> BoxFuture<'a, Result<StoreWrite>>;
    fn set_many<'a>(
        &'a self,
        entries: &'a [(CacheKey, Bytes)],
        ttl: Ttl,
    ) -> BoxFuture<'a, Result<StoreWrite>>;
    fn set_if_absent<'a>(
        &'a self,
        key: &'a CacheKey,
        frame: Bytes,
        ttl: Ttl,
    ) -> BoxFuture<'a, Result<bool>>;
    fn set_unless_newer<'a>(
        &'a self,
        key: &'a CacheKey,
        frame: Bytes,
        expires_at_ms: u64,
    ) -> BoxFuture<'a, Result<bool>>;
    fn restore_many<'a>(
        &'a self,
        entries: &'a [RestoreEntry],
        rule: RestoreRule,
    ) -> BoxFuture<'a, Result<Vec<bool>>>;
    fn delete<'a>(&'a self, key: &'a CacheKey) -> BoxFuture<'a, Result<bool>>;
    fn delete_if_unchanged<'a>(
        &'a self,
        key: &'a CacheKey,
        expected: Bytes,
    ) -> BoxFuture<'a, Result<bool>>;
    fn delete_unless_newer<'a>(
        &'a self,
        key: &'a CacheKey,
        issued_at_ms: u64,
    ) -> BoxFuture<'a, Result<bool>>;
    fn remaining_ttl<'a>(&'a self, key: &'a CacheKey) -> BoxFuture<'a, Result<Option<Duration>>>;
    fn walk<'a>(
        &'a self,
        pattern: &'a KeyPattern,
        cursor: Option<WalkCursor>,
        mode: WalkMode,
    ) -> BoxFuture<'a, Result<WalkPage>>;
    fn remove_matching<'a>(
        &'a self,
        pattern: &'a KeyPattern,
        removed: RemovedSink<'a>,
    ) -> BoxFuture<'a, Result<u64>>;
    fn health(&self) -> BoxFuture<'_, HealthReport>;
    fn server_memory(&self) -> BoxFuture<'_, Result<Option<RedisMemory>>>;
    fn approximate_len(&self) -> BoxFuture<'_, Result<Option<u64>>>;
    fn stats(&self) -> StoreStats;
    fn shutdown(&self, limit: Duration) -> BoxFuture<'_, ShutdownReport>;
}

impl<S: FrameStore + ?Sized> DynFrameStore for S {
    fn info(&self) -> StoreInfo {
        FrameStore::info(self)
    }
    fn is_available(&self) -> bool {
        FrameStore::is_available(self)
    }
    fn get<'a>(&'a self, key: &'a CacheKey) -> BoxFuture<'a, Result<Option<Bytes>>> {
        Box::pin(FrameStore::get(self, key))
    }
    fn get_many<'a>(&'a self, keys: &'a [CacheKey]) -> BoxFuture<'a, Result<Vec<Option<Bytes>>>> {
        Box::pin(FrameStore::get_many(self, keys))
    }
    fn set<'a>(
        &'a self,
        key: &'a CacheKey,
        frame: Bytes,
        ttl: Ttl,
    ) -> BoxFuture<'a, Result<StoreWrite>> {
        Box::pin(FrameStore::set(self, key, frame, ttl))
    }
    fn set_many<'a>(
        &'a self,
        entries: &'a [(CacheKey, Bytes)],
        ttl: Ttl,
    ) -> BoxFuture<'a, Result<StoreWrite>> {
        Box::pin(FrameStore::set_many(self, entries, ttl))
    }
    fn set_if_absent<'a>(
        &'a self,
        key: &'a CacheKey,
        frame: Bytes,
        ttl: Ttl,
    ) -> BoxFuture<'a, Result<bool>> {
        Box::pin(FrameStore::set_if_absent(self, key, frame, ttl))
    }
    fn set_unless_newer<'a>(
        &'a self,
        key: &'a CacheKey,
        frame: Bytes,
        expires_at_ms: u64,
    ) -> BoxFuture<'a, Result<bool>> {
        Box::pin(FrameStore::set_unless_newer(
            self,
            key,
            frame,
            expires_at_ms,
        ))
    }
    fn restore_many<'a>(
        &'a self,
        entries: &'a [RestoreEntry],
        rule: RestoreRule,
    ) -> BoxFuture<'a, Result<Vec<bool>>> {
        Box::pin(FrameStore::restore_many(self, entries, rule))
    }
    fn delete<'a>(&'a self, key: &'a CacheKey) -> BoxFuture<'a, Result<bool>> {
        Box::pin(FrameStore::delete(self, key))
    }
    fn delete_if_unchanged<'a>(
        &'a self,
        key: &'a CacheKey,
        expected: Bytes,
    ) -> BoxFuture<'a, Result<bool>> {
        Box::pin(FrameStore::delete_if_unchanged(self, key, expected))
    }
    fn delete_unless_newer<'a>(
        &'a self,
        key: &'a CacheKey,
        issued_at_ms: u64,
    ) -> BoxFuture<'a, Result<bool>> {
        Box::pin(FrameStore::delete_unless_newer(self, key, issued_at_ms))
    }
    fn remaining_ttl<'a>(&'a self, key: &'a CacheKey) -> BoxFuture<'a, Result<Option<Duration>>> {
        Box::pin(FrameStore::remaining_ttl(self, key))
    }
    fn walk<'a>(
        &'a self,
        pattern: &'a KeyPattern,
        cursor: Option<WalkCursor>,
        mode: WalkMode,
    ) -> BoxFuture<'a, Result<WalkPage>> {
        Box::pin(FrameStore::walk(self, pattern, cursor, mode))
    }
    fn remove_matching<'a>(
        &'a self,
        pattern: &'a KeyPattern,
        removed: RemovedSink<'a>,
    ) -> BoxFuture<'a, Result<u64>> {
        Box::pin(FrameStore::remove_matching(self, pattern, removed))
    }
    fn health(&self) -> BoxFuture<'_, HealthReport> {
        Box::pin(FrameStore::health(self))
    }
    fn server_memory(&self) -> BoxFuture<'_, Result<Option<RedisMemory>>> {
        Box::pin(FrameStore::server_memory(self))
    }
    fn approximate_len(&self) -> BoxFuture<'_, Result<Option<u64>>> {
        Box::pin(FrameStore::approximate_len(self))
    }
    fn stats(&self) -> StoreStats {
        FrameStore::stats(self)
    }
    fn shutdown(&self, limit: Duration) -> BoxFuture<'_, ShutdownReport> {
        Box::pin(FrameStore::shutdown(self, limit))
    }
}
