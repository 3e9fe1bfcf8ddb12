//! The shared hot-path connection: one server's `ConnectionManager`, a cluster's
//! `ClusterConnection` (which routes each single-key command to its slot's primary and follows
//! `MOVED`/`ASK`), or one primary's own connection with that cluster connection behind it for
//! redirects. All multiplex concurrent tasks on their sockets and are cloned per call, so the
//! store's commands are written once for every kind.

use std::sync::Arc;

use futures_util::FutureExt;
use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{Cmd, ErrorKind, Pipeline, RedisFuture, RedisResult, ServerErrorKind, Value};

use crate::cluster::Node;

/// Redirects one command may follow (a `MOVED` to a node that answers `ASK`, and one more).
const MAX_REDIRECTS: usize = 3;

/// A cheap handle to the shared connection.
#[derive(Clone)]
pub(crate) enum HotConnection {
    /// One Redis server.
    Single(ConnectionManager),
    /// A Redis Cluster, routed by redis-rs's slot map (while our table knows no primary).
    Cluster(ClusterConnection),
    /// The primary our table names for the command's keys, on its own connection: no hop
    /// through redis-rs's cluster task, and a failover is followed as soon as our table learns
    /// it (a hung old primary never answers `MOVED`, so redis-rs's map alone would keep sending
    /// its slots there).
    Direct {
        node: Arc<Node>,
        /// Carries redirected commands to the address the redirect names.
        cluster: ClusterConnection,
        /// Where the last redirect sent this handle's commands: the rest of the call goes there
        /// too, so a script's `SCRIPT LOAD` after `NOSCRIPT` reaches the node that lacked it.
        redirect: Option<Redirect>,
    },
}

impl HotConnection {
    /// A handle for `node`'s slots, over `cluster` (anything else is returned unchanged).
    pub(crate) fn direct(self, node: &Arc<Node>) -> Self {
        match self {
            Self::Cluster(cluster) => Self::Direct {
                node: Arc::clone(node),
                cluster,
                redirect: None,
            },
            other => other,
        }
    }
}

/// Where a `MOVED` or `ASK` sends a command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Redirect {
    host: String,
    port: u16,
    /// `ASK`: the command must follow `ASKING` on the same connection.
    asking: bool,
}

impl Redirect {
    /// The redirect a reply is, if it is one: `MOVED <slot> <host>:<port>` or `ASK …`, as an
    /// error reply (redis-rs returns those as values) or as an error.
    fn of(reply: &RedisResult<Value>) -> Option<Self> {
        let (kind, detail) = match reply {
            Ok(Value::ServerError(e)) => (e.kind()?, e.details()?),
            Err(e) => match e.kind() {
                ErrorKind::Server(kind) => (kind, e.detail()?),
                _ => return None,
            },
            Ok(_) => return None,
        };
        let asking = match kind {
            ServerErrorKind::Moved => false,
            ServerErrorKind::Ask => true,
            _ => return None,
        };
        let (host, port) = detail.split_ascii_whitespace().nth(1)?.rsplit_once(':')?;
        Some(Self {
            host: host.to_owned(),
            port: port.parse().ok()?,
            asking,
        })
    }

    async fn send(&self, cluster: &mut ClusterConnection, cmd: &Cmd) -> RedisResult<Value> {
        let route = SingleNodeRoutingInfo::ByAddress {
            host: self.host.clone(),
            port: self.port,
        };
        if !self.asking {
            return cluster
                .route_command(cmd.clone(), RoutingInfo::SingleNode(route))
                .await;
        }
        // One pipeline, so that nothing else on the multiplexed connection comes between.
        let mut pipe = redis::pipe();
        pipe.cmd("ASKING").add_command(cmd.clone());
        let mut replies = cluster.route_pipeline(pipe, 1, 1, route).await?;
        Ok(replies.pop().unwrap_or(Value::Nil))
    }
}

fn is_redirect_reply(value: &Value) -> bool {
    matches!(value, Value::ServerError(e)
        if matches!(e.kind(), Some(ServerErrorKind::Moved | ServerErrorKind::Ask)))
}

impl ConnectionLike for HotConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(conn) => conn.req_packed_command(cmd),
            Self::Cluster(conn) => conn.req_packed_command(cmd),
            Self::Direct {
                node,
                cluster,
                redirect,
            } => async move {
                let mut reply = match redirect.as_ref() {
                    None => node.connection().req_packed_command(cmd).await,
                    Some(to) => to.send(cluster, cmd).await,
                };
                for _ in 0..MAX_REDIRECTS {
                    let Some(to) = Redirect::of(&reply) else {
                        break;
                    };
                    node.redirected(to.asking);
                    reply = to.send(cluster, cmd).await;
                    *redirect = Some(to);
                }
                reply
            }
            .boxed(),
        }
    }

    /// A batch for one primary; replies that are redirects stay in place (the caller retries
    /// them one by one, which follows them).
    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            Self::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
            Self::Direct { node, .. } => async move {
                let replies = node
                    .connection()
                    .req_packed_commands(pipeline, offset, count)
                    .await;
                if replies
                    .as_ref()
                    .is_ok_and(|values| values.iter().any(is_redirect_reply))
                {
                    // The singles follow them; our table is behind either way.
                    node.redirected(false);
                }
                replies
            }
            .boxed(),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Cluster(conn) | Self::Direct { cluster: conn, .. } => conn.get_db(),
            Self::Single(conn) => conn.get_db(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_error(text: &str) -> RedisResult<Value> {
        let parsed = redis::parse_redis_value(format!("-{text}\r\n").as_bytes()).unwrap();
        Ok(parsed)
    }

    #[test]
    fn moved_and_ask_replies_name_their_node() {
        assert_eq!(
            Redirect::of(&server_error("MOVED 3999 127.0.0.1:6381")),
            Some(Redirect {
                host: "127.0.0.1".into(),
                port: 6381,
                asking: false
            })
        );
        assert_eq!(
            Redirect::of(&server_error("ASK 3999 cache-2.internal:7000")),
            Some(Redirect {
                host: "cache-2.internal".into(),
                port: 7000,
                asking: true
            })
        );
        for other in [
            "ERR unknown",
            "TRYAGAIN later",
            "MOVED 3999",
            "MOVED x host:notaport",
        ] {
            assert_eq!(Redirect::of(&server_error(other)), None, "{other}");
        }
        assert_eq!(Redirect::of(&Ok(Value::Nil)), None);
    }
}
