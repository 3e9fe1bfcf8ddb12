//! [`GenericRedisCache`] as a [`CacheInterface`] backend.

use std::collections::HashSet;
use std::time::Duration;

use bytes::Bytes;
use cache_core::frame::Codec;
use cache_core::{
    CacheInterface, CacheKey, CacheOp, Capabilities, KeyPattern, Outcome, Result, Ttl, WalkMode,
    unix_millis,
};
use cache_memory::Fill;

use crate::cache::{GenericRedisCache, fresh_meta};
use crate::events::CacheEvent;
use crate::stats::bump;

#[deny(clippy::missing_trait_methods)]
impl CacheInterface for GenericRedisCache {
    fn capabilities(&self) -> Capabilities {
        let config = &self.inner.config;
        match (&self.inner.l2, self.inner.near.l1()) {
            (Some(_), _) => Capabilities::new(config.max_value_size)
                .shared(true)
                .survives_restart(true),
            (None, Some(l1)) => Capabilities::new(l1.max_value_size().min(config.max_value_size)),
            (None, None) => Capabilities::new(0),
        }
    }

    async fn get(&self, key: &CacheKey) -> Result<Option<Bytes>> {
        let started = self.clock();
        // The L1 hit inline: no nested future on the hot path.
        if let Some(value) = self.l1_hit(key, started) {
            return Ok(Some(value));
        }
        Ok(self.read_after_l1_miss(key, started).await?.0)
    }

    async fn set(&self, key: &CacheKey, value: Bytes, ttl: Option<Ttl>) -> Result<()> {
        self.write(key, value, ttl).await
    }

    async fn delete(&self, key: &CacheKey) -> Result<bool> {
        let started = self.clock();
        let (in_l1, in_l2) = self
            .inner
            .near
            .remove(key, async {
                match &self.inner.l2 {
                    Some(l2) => l2.store().delete(key).await,
                    None => Ok(false),
                }
            })
            .await;
        let existed = in_l2? || in_l1;
        self.record(CacheOp::Delete, self.l2_layer(), Outcome::Done, started);
        if existed {
            self.fire(CacheEvent::DeleteSuccess { key });
        }
        Ok(existed)
    }

    async fn exists(&self, key: &CacheKey) -> Result<bool> {
        if self
            .inner
            .near
            .l1()
            .is_some_and(|l1| l1.contains(key.as_str()))
        {
            return Ok(true);
        }
        let Some(l2) = &self.inner.l2 else {
            return Ok(false);
        };
        match l2.store().remaining_ttl(key).await {
            Ok(ttl) => Ok(ttl.is_some()),
            Err(e) if e.is_transient() => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn remaining_ttl(&self, key: &CacheKey) -> Result<Option<Duration>> {
        let from_l1 = || {
            self.inner
                .near
                .l1()
                .and_then(|l1| l1.ttl_remaining(key.as_str()))
        };
        let Some(l2) = &self.inner.l2 else {
            return Ok(from_l1());
        };
        match l2.store().remaining_ttl(key).await {
            Ok(ttl) => Ok(ttl),
            Err(e) if e.is_transient() => Ok(from_l1()),
            Err(e) => Err(e),
        }
    }

    async fn clear(&self) -> Result<u64> {
        self.delete_matching(&KeyPattern::all()).await
    }

    async fn scan(&self, pattern: &KeyPattern) -> Result<Vec<CacheKey>> {
        let started = self.clock();
        let mut keys = self
            .inner
            .near
            .l1()
            .map(|l1| l1.keys_matching(pattern))
            .unwrap_or_default();
        if let Some(l2) = &self.inner.l2 {
            let mut known: HashSet<CacheKey> = keys.iter().cloned().collect();
            let mut cursor = None;
            loop {
                match l2.store().walk(pattern, cursor, WalkMode::Keys).await {
                    Ok(page) => {
                        for entry in page.entries {
                            if known.insert(entry.key.clone()) {
                                keys.push(entry.key);
                            }
                        }
                        match page.next {
                            Some(next) => cursor = Some(next),
                            None => break,
                        }
                    }
                    Err(e) if e.is_transient() => break,
                    Err(e) => return Err(e),
                }
            }
        }
        self.record(CacheOp::Scan, self.l2_layer(), Outcome::Done, started);
        Ok(keys)
    }

    async fn delete_pattern(&self, pattern: &KeyPattern) -> Result<u64> {
        self.delete_matching(pattern).await
    }

    async fn get_many(&self, keys: &[CacheKey]) -> Result<Vec<Option<Bytes>>> {
        let near = &self.inner.near;
        let mut values: Vec<Option<Bytes>> =
            keys.iter().map(|key| near.get(key.as_str())).collect();
        let Some(l2) = &self.inner.l2 else {
            return Ok(values);
        };
        let missing: Vec<usize> = (0..keys.len()).filter(|i| values[*i].is_none()).collect();
        if missing.is_empty() {
            return Ok(values);
        }
        let wanted: Vec<CacheKey> = missing.iter().map(|i| keys[*i].clone()).collect();
        let tickets: Vec<_> = wanted.iter().map(|k| near.begin_read(k.as_str())).collect();
        let frames = l2.read_many(&wanted).await?;
        let now = unix_millis();
        for ((index, frame), ticket) in missing.into_iter().zip(frames).zip(tickets) {
            let Some(frame) = frame else {
                continue;
            };
            // Without L1 nothing is promoted: no second handle of the payload.
            if near.l1().is_some()
                && let Ok(ttl) = Ttl::from_millis(frame.meta.remaining_ms(now))
            {
                let ttl = ttl.min(self.inner.l1_max_ttl);
                if near.promote(&keys[index], ticket, frame.payload.clone(), ttl) == Fill::TooLarge
                {
                    bump(&self.inner.counters.l1_skipped_too_large);
                }
            }
            values[index] = Some(frame.payload);
        }
        Ok(values)
    }

    async fn set_many(&self, entries: &[(CacheKey, Bytes)], ttl: Option<Ttl>) -> Result<()> {
        let started = self.clock();
        for (_, value) in entries {
            self.check_value_size(value.len())?;
            if let (None, Some(l1)) = (&self.inner.l2, self.inner.near.l1()) {
                l1.check_size(value.len())?;
            }
        }
        let ttl = ttl.unwrap_or(self.inner.default_ttl);
        let l1_ttl = match &self.inner.l2 {
            Some(_) => ttl.min(self.inner.l1_max_ttl),
            None => ttl,
        };
        if self.inner.l2.is_none() {
            // Memory-only: each L1 copy is the only one, inserted under its shard's lock.
            for (key, value) in entries {
                self.inner.near.insert(key, value.clone(), l1_ttl);
            }
            self.record(CacheOp::SetMany, self.l2_layer(), Outcome::Done, started);
            return Ok(());
        }
        let keys: Vec<CacheKey> = entries.iter().map(|(k, _)| k.clone()).collect();
        let meta = fresh_meta(ttl);
        let (written, fills) = self
            .inner
            .near
            .write_many(
                &keys,
                async {
                    match &self.inner.l2 {
                        Some(l2) => l2
                            .write_many(entries, &meta, Codec::Raw, ttl)
                            .await
                            .map(Some),
                        None => Ok(None),
                    }
                },
                |written, index| written.is_ok().then(|| (entries[index].1.clone(), l1_ttl)),
            )
            .await;
        match written {
            Ok(Some(cache_core::StoreWrite::Written) | None) => {}
            Ok(Some(_)) => bump(&self.inner.counters.writes_l1_only),
            Err(e) => {
                self.record(
                    CacheOp::SetMany,
                    self.l2_layer(),
                    Outcome::Failed(e.kind()),
                    started,
                );
                return Err(e);
            }
        }
        for fill in fills {
            if fill == Fill::TooLarge {
                bump(&self.inner.counters.l1_skipped_too_large);
            }
        }
        self.record(CacheOp::SetMany, self.l2_layer(), Outcome::Done, started);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RedisCacheConfig;
    use cache_core::Layer;

    #[tokio::test]
    async fn memory_only_refuses_what_l1_cannot_hold() {
        let cache = GenericRedisCache::connect(RedisCacheConfig::default())
            .await
            .unwrap();
        let too_big = Bytes::from(vec![0u8; 62 << 20]);
        let err = cache
            .set(&CacheKey::new("k").unwrap(), too_big, None)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), cache_core::ErrorKind::CapacityExceeded);
        assert_eq!(Layer::L1, cache.l2_layer());
    }
}
