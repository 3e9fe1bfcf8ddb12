//! The shared hot-path connection: one server's `ConnectionManager`, a cluster's
//! `ClusterConnection` (which routes each single-key command to its slot's primary and follows
//! `MOVED`/`ASK`), or one primary's own connection with that cluster connection behind it for
//! redirects. All multiplex concurrent tasks on their sockets and are cloned per call, so the
//! store's commands are written once for every kind.

use std::sync::Arc;

use futures_util::FutureExt;
use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, ServerErrorKind, Value};

use crate::cluster::Node;

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
    /// its slots there). A `MOVED` or `ASK` is sent again through `cluster`, which follows it,
    /// and the node reads the topology again.
    Direct {
        node: Arc<Node>,
        cluster: ClusterConnection,
    },
}

fn is_redirect(e: &RedisError) -> bool {
    matches!(
        e.kind(),
        ErrorKind::Server(ServerErrorKind::Moved | ServerErrorKind::Ask)
    )
}

/// Redis's answer is a redirect: an error reply (redis-rs returns it as a value) or, from a
/// connection that converted it, an error.
fn is_redirected(reply: &redis::RedisResult<Value>) -> bool {
    match reply {
        Ok(value) => is_redirect_reply(value),
        Err(e) => is_redirect(e),
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
            Self::Direct { node, cluster } => async move {
                let reply = node.connection().req_packed_command(cmd).await;
                if !is_redirected(&reply) {
                    return reply;
                }
                node.redirected();
                cluster.req_packed_command(cmd).await
            }
            .boxed(),
        }
    }

    /// A batch for one primary; replies that are redirects stay in place (the caller retries
    /// them one by one) and make the node read the topology again.
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
                let redirected = match &replies {
                    Ok(values) => values.iter().any(is_redirect_reply),
                    Err(e) => is_redirect(e),
                };
                if redirected {
                    node.redirected();
                }
                replies
            }
            .boxed(),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(conn) => conn.get_db(),
            Self::Cluster(conn) | Self::Direct { cluster: conn, .. } => conn.get_db(),
        }
    }
}
