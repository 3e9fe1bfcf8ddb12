//! Removals made through the wrapper, remembered in this process for as long as any Python
//! entry can live (24 hours), so that nothing they removed is imported again from the Python
//! keys even after the store's own removal records (its replay horizon) have lapsed.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use cache_core::{CacheKey, KeyPattern};

/// How long a removal blocks imports: the longest TTL the Python service gave.
pub(super) const BLOCK_FOR: Duration = Duration::from_secs(86_400);
/// Single-key removals remembered at most; past it, a key's whole operation is blocked.
const MAX_KEYS: usize = 100_000;

#[derive(Default)]
pub(super) struct RemovalBlocks {
    inner: Mutex<Blocks>,
}

#[derive(Default)]
struct Blocks {
    patterns: Vec<(KeyPattern, Instant)>,
    keys: HashMap<CacheKey, Instant>,
}

impl RemovalBlocks {
    pub(super) fn pattern(&self, pattern: KeyPattern) {
        let mut blocks = self.lock();
        let until = Instant::now() + BLOCK_FOR;
        blocks
            .patterns
            .retain(|(p, at)| *at > Instant::now() && p != &pattern);
        blocks.patterns.push((pattern, until));
    }

    pub(super) fn key(&self, key: &CacheKey) {
        let mut blocks = self.lock();
        let now = Instant::now();
        if blocks.keys.len() >= MAX_KEYS {
            blocks.keys.retain(|_, at| *at > now);
        }
        if blocks.keys.len() >= MAX_KEYS {
            // Bounded memory: block the key's operation as a whole instead.
            let operation = key.as_str().split(':').next().unwrap_or_default();
            let escaped = cache_core::escape_glob(operation);
            drop(blocks);
            if let Ok(pattern) = KeyPattern::new(format!("{escaped}:*")) {
                self.pattern(pattern.with_segments(2));
            }
            return;
        }
        blocks.keys.insert(key.clone(), now + BLOCK_FOR);
    }

    pub(super) fn covers(&self, key: &CacheKey) -> bool {
        let blocks = self.lock();
        let now = Instant::now();
        blocks.keys.get(key).is_some_and(|at| *at > now)
            || blocks
                .patterns
                .iter()
                .any(|(p, at)| *at > now && p.matches(key.as_str()))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Blocks> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
