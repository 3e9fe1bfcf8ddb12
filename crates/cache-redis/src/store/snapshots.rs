//! Stats snapshots: each instance may publish a small JSON document of its counters under the
//! namespace's auxiliary key `{namespace}~aux:stats:{instance}`, with a short TTL, so that an
//! operator's tool sees the fleet. Opt-in (`stats_snapshot_interval`); never read by the caches.

use bytes::Bytes;

use super::*;

/// The largest snapshot published.
pub const MAX_SNAPSHOT_BYTES: usize = 64 * 1024;

fn valid_instance(instance: &str) -> bool {
    (1..=128).contains(&instance.len())
        && instance
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

impl RedisStore {
    /// Publishes `snapshot` as `instance`'s, for `ttl`.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for an instance name outside `[A-Za-z0-9._-]{1,128}` or a
    /// snapshot over [`MAX_SNAPSHOT_BYTES`]; Redis errors (unavailable included: a snapshot is
    /// never queued).
    pub async fn publish_snapshot(&self, instance: &str, snapshot: &[u8], ttl: Ttl) -> Result<()> {
        if !valid_instance(instance) {
            return Err(Error::new(ErrorKind::InvalidInput, "invalid instance name")
                .with_context("field", "instance")
                .with_context("value", instance)
                .with_context("allowed", "[A-Za-z0-9._-], 1..=128 bytes"));
        }
        if snapshot.len() > MAX_SNAPSHOT_BYTES {
            return Err(Error::new(ErrorKind::InvalidInput, "snapshot too large")
                .with_context("size", snapshot.len())
                .with_context("allowed", format!("0..={MAX_SNAPSHOT_BYTES} bytes")));
        }
        let key = Namespace::new(&self.inner.namespace)?.aux_key("stats", instance)?;
        let body = snapshot.to_vec();
        self.inner
            .hot_at(self.inner.route(&key), "SET snapshot", async move |c| {
                redis::cmd("SET")
                    .arg(&key)
                    .arg(body)
                    .arg("PX")
                    .arg(ttl.as_millis())
                    .query_async::<()>(c)
                    .await
            })
            .await
    }

    /// Every instance's latest snapshot, by instance name (a SCAN of the auxiliary keys on a
    /// walk connection of each server, then one pipeline of `GET`s per page).
    ///
    /// # Errors
    /// Redis errors (unavailable included).
    pub async fn snapshots(&self) -> Result<Vec<(String, Bytes)>> {
        let inner = &self.inner;
        if inner.link.connection()?.is_none() {
            return Err(unavailable());
        }
        let prefix = Namespace::new(&inner.namespace)?.aux_key("stats", "")?;
        let pattern = format!("{}*", escape_glob(&prefix));
        let mut out = Vec::new();
        for shard in inner.shards(true).await?.1 {
            shard.check()?;
            let pool = &shard.pool;
            let mut conn = Some(pool.get().await?);
            let mut cursor = 0u64;
            loop {
                let (next, names) = pool
                    .step(&mut conn, "SCAN snapshots", |mut c| {
                        let pattern = pattern.clone();
                        async move {
                            redis::cmd("SCAN")
                                .arg(cursor)
                                .arg("MATCH")
                                .arg(pattern)
                                .arg("COUNT")
                                .arg(1000)
                                .query_async::<(u64, Vec<String>)>(&mut c)
                                .await
                        }
                    })
                    .await?;
                if !names.is_empty() {
                    let mut pipe = redis::pipe();
                    for name in &names {
                        pipe.cmd("GET").arg(name);
                    }
                    let values = pool
                        .step(&mut conn, "GET snapshots", |mut c| async move {
                            pipe.query_async::<Vec<Option<Vec<u8>>>>(&mut c).await
                        })
                        .await?;
                    for (name, value) in names.into_iter().zip(values) {
                        if let (Some(instance), Some(value)) = (name.strip_prefix(&prefix), value) {
                            out.push((instance.to_owned(), Bytes::from(value)));
                        }
                    }
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }
}
