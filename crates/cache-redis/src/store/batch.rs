//! A cluster store's batches and server-wide questions: `get_many` / `set_many` grouped by
//! primary (one pipeline per primary, sent to its own connection, all primaries at once), and health,
//! memory and size asked of every primary.
//!
//! A primary whose breaker is open is skipped (its reads miss, its writes are queued), and a
//! reply that is an error (`MOVED` while a slot migrates, `TRYAGAIN`) is retried as a single
//! command, which follows the redirect.

use std::sync::Arc;

use cache_core::{
    BreakerState, CacheKey, HealthReport, L2Health, RedisMemory, Result, StoreWrite, Ttl,
};
use futures_util::future::join_all;
use redis::{Pipeline, Value};

use super::{StoreInner, Target, bump};
use crate::cluster::{Node, Topology};
use redis::aio::ConnectionLike;

/// Indices of `names` grouped by the primary that serves them (`None`: not known yet).
fn by_node(topology: &Topology, names: &[String]) -> Vec<(Option<Arc<Node>>, Vec<usize>)> {
    let mut groups: Vec<(Option<Arc<Node>>, Vec<usize>)> = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let node = topology.node_for(name);
        let same = |other: &Option<Arc<Node>>| match (other, &node) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        };
        match groups.iter_mut().find(|(other, _)| same(other)) {
            Some((_, indices)) => indices.push(i),
            None => groups.push((node, vec![i])),
        }
    }
    groups
}

impl StoreInner {
    /// Sends `pipe` (`count` commands, each on a key `node` serves) to `node` (`None`:
    /// no primary known yet); each reply, or `None` where it is an error to retry singly.
    async fn batch(
        self: &Arc<Self>,
        node: Option<&Arc<Node>>,
        what: &'static str,
        pipe: Pipeline,
        count: usize,
    ) -> Result<Vec<Option<Value>>> {
        let Some(node) = node else {
            return Ok(vec![None; count]);
        };
        let replies = self
            .node_pipeline(Arc::clone(node), what, pipe, count)
            .await?;
        Ok(replies
            .into_iter()
            .map(|reply| match reply {
                Value::ServerError(_) => None,
                reply => Some(reply),
            })
            .collect())
    }

    /// Sends `pipe` (`count` commands, each on a key `node` serves) to `node`.
    async fn node_pipeline(
        self: &Arc<Self>,
        node: Arc<Node>,
        what: &'static str,
        pipe: Pipeline,
        count: usize,
    ) -> Result<Vec<Value>> {
        self.hot_at(Target::Node(node), what, async move |c| {
            c.req_packed_commands(&pipe, 0, count).await
        })
        .await
    }

    /// One routed command for `name`, after its batch could not take it.
    async fn single(self: &Arc<Self>, name: &str, command: redis::Cmd) -> Result<Value> {
        self.hot_at(self.route(name), "single command", async move |c| {
            command.query_async::<Value>(c).await
        })
        .await
    }

    /// The values under `names`, a pipeline of `GET`s per primary; a primary that cannot answer
    /// gives misses.
    ///
    /// # Errors
    /// What is not an outage (a refusal, a bad reply).
    pub(super) async fn get_many_by_node(
        self: &Arc<Self>,
        topology: &Topology,
        names: &[String],
    ) -> Result<Vec<Option<Vec<u8>>>> {
        let groups = by_node(topology, names);
        let reads = groups.iter().map(|(node, indices)| async move {
            let mut pipe = redis::pipe();
            for &i in indices {
                pipe.cmd("GET").arg(&names[i]);
            }
            self.batch(node.as_ref(), "GET (batch)", pipe, indices.len())
                .await
        });
        let mut found = vec![None; names.len()];
        for ((_, indices), replies) in groups.iter().zip(join_all(reads).await) {
            let replies = match replies {
                Ok(replies) => replies,
                Err(e) if e.is_transient() => continue,
                Err(e) => return Err(e),
            };
            for (&i, reply) in indices.iter().zip(replies) {
                let reply = match reply {
                    Some(reply) => reply,
                    None => {
                        let mut get = redis::cmd("GET");
                        get.arg(&names[i]);
                        match self.single(&names[i], get).await {
                            Ok(value) => value,
                            Err(e) if e.is_transient() => continue,
                            Err(e) => return Err(e),
                        }
                    }
                };
                if let Value::BulkString(bytes) = reply {
                    found[i] = Some(bytes);
                }
            }
        }
        Ok(found)
    }

    /// Writes `entries`, a pipeline of `SET PX` per primary; what a primary could not take is
    /// queued for replay.
    ///
    /// # Errors
    /// What is not an outage.
    pub(super) async fn set_many_by_node(
        self: &Arc<Self>,
        topology: &Topology,
        entries: &[(CacheKey, bytes::Bytes)],
        ttl: Ttl,
    ) -> Result<StoreWrite> {
        let names: Vec<String> = entries.iter().map(|(k, _)| self.redis_key(k)).collect();
        let set = |i: usize| {
            let mut cmd = redis::cmd("SET");
            cmd.arg(&names[i])
                .arg(entries[i].1.as_ref())
                .arg("PX")
                .arg(ttl.as_millis());
            cmd
        };
        let groups = by_node(topology, &names);
        let writes = groups.iter().map(|(node, indices)| async move {
            let mut pipe = redis::pipe();
            for &i in indices {
                pipe.add_command(set(i));
            }
            self.batch(node.as_ref(), "SET (batch)", pipe, indices.len())
                .await
        });
        let mut unwritten = Vec::new();
        for ((_, indices), replies) in groups.iter().zip(join_all(writes).await) {
            match replies {
                Ok(replies) => {
                    for (&i, reply) in indices.iter().zip(replies) {
                        if reply.is_none() {
                            match self.single(&names[i], set(i)).await {
                                Ok(_) => {}
                                Err(e) if e.is_transient() => unwritten.push(i),
                                Err(e) => return Err(e),
                            }
                        }
                    }
                }
                Err(e) if e.is_transient() => unwritten.extend_from_slice(indices),
                Err(e) => return Err(e),
            }
        }
        let mut outcome = StoreWrite::Written;
        for i in unwritten {
            let (key, frame) = &entries[i];
            outcome = match (
                self.queue(Self::pending_set(key, frame.clone(), ttl)),
                outcome,
            ) {
                (StoreWrite::Dropped, _) | (_, StoreWrite::Dropped) => StoreWrite::Dropped,
                _ => StoreWrite::Queued,
            };
        }
        Ok(outcome)
    }

    /// The health of every primary; the store is connected while some primary answers.
    pub(super) async fn cluster_health(self: &Arc<Self>, topology: &Topology) -> HealthReport {
        let nodes = topology.health().await;
        let link = self.link.state();
        let connected = nodes
            .iter()
            .filter_map(|n| match n.l2 {
                L2Health::Connected { latency } => Some(latency),
                _ => None,
            })
            .max();
        let l2 = match connected {
            Some(latency) if self.link.is_available() => L2Health::Connected { latency },
            _ => L2Health::Unavailable {
                since: link.unavailable_for,
                last_error: link.last_error.or_else(|| {
                    nodes.iter().find_map(|n| match &n.l2 {
                        L2Health::Unavailable { last_error, .. } => last_error.clone(),
                        _ => None,
                    })
                }),
                next_probe_in: link.next_probe_in,
            },
        };
        let (outages, probes, worst) = topology.outages_and_probes();
        let mut report = HealthReport::new(l2);
        report.breaker = Some(match self.link.breaker_state() {
            BreakerState::Closed => worst,
            open => open,
        });
        report.replay_queue_depth = self.replay.depth();
        report.outages = link.outages + outages;
        report.probes = link.probes + probes;
        report.nodes = nodes;
        report
    }

    /// `INFO memory` of every primary, summed (`None` when one cannot answer).
    pub(super) async fn cluster_memory(
        self: &Arc<Self>,
        topology: &Topology,
    ) -> Result<Option<RedisMemory>> {
        let replies = self
            .each_primary(topology, "INFO memory", || {
                let mut cmd = redis::cmd("INFO");
                cmd.arg("memory");
                cmd
            })
            .await?;
        let mut total: Option<RedisMemory> = None;
        for reply in replies {
            let Some(text) = reply.and_then(|v| text_of(&v)) else {
                return Ok(None);
            };
            let Some(memory) = RedisMemory::parse_info(&text) else {
                return Ok(None);
            };
            total = Some(match total {
                None => memory,
                Some(mut sum) => {
                    sum.used_bytes += memory.used_bytes;
                    sum.peak_bytes += memory.peak_bytes;
                    sum.max_bytes += memory.max_bytes;
                    sum.fragmentation_ratio =
                        sum.fragmentation_ratio.max(memory.fragmentation_ratio);
                    sum
                }
            });
        }
        Ok(total)
    }

    /// `DBSIZE` summed over the primaries (`None` when one cannot answer).
    pub(super) async fn cluster_len(self: &Arc<Self>, topology: &Topology) -> Result<Option<u64>> {
        let replies = self
            .each_primary(topology, "DBSIZE", || redis::cmd("DBSIZE"))
            .await?;
        let mut total = 0u64;
        for reply in replies {
            match reply {
                Some(Value::Int(n)) => total += u64::try_from(n).unwrap_or(0),
                _ => return Ok(None),
            }
        }
        Ok(Some(total))
    }

    /// `command` sent to every primary, each reply or `None` for a primary that is down.
    async fn each_primary(
        self: &Arc<Self>,
        topology: &Topology,
        what: &'static str,
        command: impl Fn() -> redis::Cmd,
    ) -> Result<Vec<Option<Value>>> {
        let nodes = topology.fresh_primaries().await?;
        let asks = nodes.iter().map(|node| {
            let mut pipe = redis::pipe();
            pipe.add_command(command());
            self.node_pipeline(Arc::clone(node), what, pipe, 1)
        });
        let mut out = Vec::with_capacity(nodes.len());
        for reply in join_all(asks).await {
            match reply {
                Ok(mut values) => out.push(values.pop()),
                Err(e) if e.is_transient() => {
                    bump(&self.counters.skipped);
                    out.push(None);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
}

fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        Value::SimpleString(text) => Some(text.clone()),
        _ => None,
    }
}
