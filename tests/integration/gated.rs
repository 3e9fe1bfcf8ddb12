//! A memory store that holds one chosen operation at a gate, so a test can order steps.

use std::sync::Arc;
use std::time::Duration;

use aicache::{
    Bytes, CacheKey, FrameStore, HealthReport, KeyPattern, MemoryFrameStore, RedisMemory,
    RemovedSink, RestoreEntry, RestoreRule, Result, ShutdownReport, StoreInfo, StoreStats,
    StoreWrite, Ttl, WalkCursor, WalkMode, WalkPage,
};
use tokio::sync::{Mutex, Notify, oneshot};

/// The operation that waits at the gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gated {
    Get,
    Set,
    Delete,
}

/// A memory store whose first call of the gated operation waits at a gate.
#[derive(Debug)]
pub(crate) struct GatedStore {
    pub(crate) inner: MemoryFrameStore,
    pub(crate) entered: Notify,
    gate: Mutex<Option<oneshot::Receiver<()>>>,
    on: Gated,
}

impl GatedStore {
    /// A store over `namespace` holding `on` until the returned sender fires (or drops).
    pub(crate) fn new(namespace: &str, on: Gated) -> (Arc<Self>, oneshot::Sender<()>) {
        let (open, gate) = oneshot::channel();
        let store = Arc::new(Self {
            inner: MemoryFrameStore::new(namespace),
            entered: Notify::new(),
            gate: Mutex::new(Some(gate)),
            on,
        });
        (store, open)
    }

    async fn pass(&self, op: Gated) {
        if op != self.on {
            return;
        }
        // Only the first call waits: it takes the gate before it says it entered, so a test
        // woken by `entered` knows which call holds it. The lock is released before waiting.
        let gate = self.gate.lock().await.take();
        self.entered.notify_one();
        if let Some(gate) = gate {
            let _ = gate.await;
        }
    }
}

impl FrameStore for GatedStore {
    fn info(&self) -> StoreInfo {
        self.inner.info()
    }
    fn is_available(&self) -> bool {
        true
    }
    async fn get(&self, key: &CacheKey) -> Result<Option<Bytes>> {
        self.pass(Gated::Get).await;
        self.inner.get(key).await
    }
    async fn get_many(&self, keys: &[CacheKey]) -> Result<Vec<Option<Bytes>>> {
        self.inner.get_many(keys).await
    }
    async fn set(&self, key: &CacheKey, frame: Bytes, ttl: Ttl) -> Result<StoreWrite> {
        self.pass(Gated::Set).await;
        self.inner.set(key, frame, ttl).await
    }
    async fn set_many(&self, entries: &[(CacheKey, Bytes)], ttl: Ttl) -> Result<StoreWrite> {
        self.inner.set_many(entries, ttl).await
    }
    async fn set_if_absent(&self, key: &CacheKey, frame: Bytes, ttl: Ttl) -> Result<bool> {
        self.inner.set_if_absent(key, frame, ttl).await
    }
    async fn set_unless_newer(&self, key: &CacheKey, frame: Bytes, until: u64) -> Result<bool> {
        self.inner.set_unless_newer(key, frame, until).await
    }
    async fn restore_many(&self, entries: &[RestoreEntry], rule: RestoreRule) -> Result<Vec<bool>> {
        self.inner.restore_many(entries, rule).await
    }
    async fn delete(&self, key: &CacheKey) -> Result<bool> {
        self.pass(Gated::Delete).await;
        self.inner.delete(key).await
    }
    async fn delete_if_unchanged(&self, key: &CacheKey, expected: Bytes) -> Result<bool> {
        self.inner.delete_if_unchanged(key, expected).await
    }
    async fn delete_unless_newer(&self, key: &CacheKey, at: u64) -> Result<bool> {
        self.inner.delete_unless_newer(key, at).await
    }
    async fn remaining_ttl(&self, key: &CacheKey) -> Result<Option<Duration>> {
        self.inner.remaining_ttl(key).await
    }
    async fn walk(
        &self,
        pattern: &KeyPattern,
        cursor: Option<WalkCursor>,
        mode: WalkMode,
    ) -> Result<WalkPage> {
        self.inner.walk(pattern, cursor, mode).await
    }
    async fn remove_matching<'a>(
        &'a self,
        pattern: &'a KeyPattern,
        removed: RemovedSink<'a>,
    ) -> Result<u64> {
        self.inner.remove_matching(pattern, removed).await
    }
    async fn health(&self) -> HealthReport {
        self.inner.health().await
    }
    async fn server_memory(&self) -> Result<Option<RedisMemory>> {
        self.inner.server_memory().await
    }
    async fn approximate_len(&self) -> Result<Option<u64>> {
        self.inner.approximate_len().await
    }
    fn stats(&self) -> StoreStats {
        self.inner.stats()
    }
    async fn shutdown(&self, limit: Duration) -> ShutdownReport {
        self.inner.shutdown(limit).await
    }
}
