//! The shared hot-path connection: one server's `ConnectionManager`, or a cluster's
//! `ClusterConnection` (which routes each single-key command to its slot's primary and follows
//! `MOVED`/`ASK`). Both multiplex concurrent tasks on their sockets and are cloned per call, so
//! the store's commands are written once for both.

use futures_util::FutureExt;
use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{Cmd, Pipeline, RedisFuture, Value};

/// A cheap handle to the shared connection.
#[derive(Clone)]
pub(crate) enum HotConnection {
    /// One Redis server.
    Single(ConnectionManager),
    /// A Redis Cluster, routed by redis-rs's slot map.
    Cluster(ClusterConnection),
    /// A Redis Cluster, sent to the primary our table names for the command's slot. redis-rs
    /// follows a `MOVED` from there (and rebuilds its map); our table is what learns a failover
    /// when the old primary hangs instead of refusing, which redis-rs's map never would.
    Routed {
        conn: ClusterConnection,
        host: String,
        port: u16,
    },
}

impl HotConnection {
    fn route(host: &str, port: u16) -> SingleNodeRoutingInfo {
        SingleNodeRoutingInfo::ByAddress {
            host: host.to_owned(),
            port,
        }
    }
}

impl ConnectionLike for HotConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(conn) => conn.req_packed_command(cmd),
            Self::Cluster(conn) => conn.req_packed_command(cmd),
            Self::Routed { conn, host, port } => {
                let route = RoutingInfo::SingleNode(Self::route(host, *port));
                conn.route_command(cmd.clone(), route).boxed()
            }
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            Self::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
            Self::Routed { conn, host, port } => {
                let route = Self::route(host, *port);
                conn.route_pipeline(pipeline.clone(), offset, count, route)
                    .boxed()
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(conn) => conn.get_db(),
            Self::Cluster(conn) | Self::Routed { conn, .. } => conn.get_db(),
        }
    }
}
