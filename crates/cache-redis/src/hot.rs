//! The shared hot-path connection: one server's bare `MultiplexedConnection` (the link replaces
//! it when it dies), a cluster's `ClusterConnection` (which routes each single-key command to its
//! slot's primary and follows `MOVED`/`ASK`, while our table is empty), or one primary's own
//! connection, following redirects on connections of our own. All multiplex concurrent tasks on
//! their sockets, and each call gets a handle of its own (of the shared connection: a spare its
//! thread kept, `spares.rs`, else a clone; of a primary's: built for the call), so the store's
//! commands are written once for every kind.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::FutureExt;
use redis::aio::{ConnectionLike, ConnectionManager, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, ErrorKind, Pipeline, RedisFuture, RedisResult, ServerErrorKind, Value};

use crate::cluster::Node;

/// Redirects one command may follow (a `MOVED` to a node that answers `ASK`, and one more).
const MAX_REDIRECTS: usize = 3;

/// A cheap handle to the shared connection.
#[derive(Clone)]
pub(crate) enum HotConnection {
    /// One Redis server.
    Single(MultiplexedConnection),
    /// A Redis Cluster, routed by redis-rs's slot map (while our table knows no primary).
    Cluster(ClusterConnection),
    /// The primary our table names for the command's keys, on its own connection: no hop
    /// through redis-rs's cluster task, and a failover is followed as soon as our table learns
    /// it (a hung old primary never answers `MOVED`, so redis-rs's map alone would keep sending
    /// its slots there).
    Direct(Direct),
}

/// One call's handle to a primary: where its commands go, and what happened to them.
#[derive(Clone)]
pub(crate) struct Direct {
    node: Arc<Node>,
    /// Follow `MOVED` and `ASK` (a removal that must know where it landed does not).
    follow: bool,
    /// Where the last redirect sent this call's commands: the rest of the call goes there too,
    /// so a script's `SCRIPT LOAD` after `NOSCRIPT` reaches the node that lacked it.
    redirect: Option<(Redirect, ConnectionManager)>,
    /// Set once a command of this call was redirected: another node answered it.
    redirected: Arc<AtomicBool>,
}

impl Direct {
    /// A call's handle to `node`; `redirected` learns whether a command of it was redirected.
    pub(crate) fn new(node: Arc<Node>, follow: bool, redirected: Arc<AtomicBool>) -> Self {
        Self {
            node,
            follow,
            redirect: None,
            redirected,
        }
    }

    async fn command(&mut self, cmd: &Cmd) -> RedisResult<Value> {
        let mut reply = match &mut self.redirect {
            None => self.node.connection().req_packed_command(cmd).await,
            Some((to, conn)) => to.send(conn, cmd).await,
        };
        for _ in 0..MAX_REDIRECTS {
            let Some(to) = Redirect::of(&reply) else {
                break;
            };
            self.redirected.store(true, Ordering::Relaxed);
            self.node.redirected(to.asking);
            if !self.follow {
                break;
            }
            let mut conn = match self.node.connection_to(&to.host, to.port) {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::debug!(error = %e, "no connection to the node a redirect names");
                    break;
                }
            };
            reply = to.send(&mut conn, cmd).await;
            self.redirect = Some((to, conn));
        }
        reply
    }

    /// A batch for the primary; replies that are redirects stay in place (the caller retries
    /// them one by one, which follows them).
    async fn batch(
        &mut self,
        pipeline: &Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisResult<Vec<Value>> {
        let replies = self
            .node
            .connection()
            .req_packed_commands(pipeline, offset, count)
            .await;
        if let Ok(values) = &replies {
            let redirects: Vec<Redirect> = values.iter().filter_map(Redirect::of_value).collect();
            if !redirects.is_empty() {
                self.redirected.store(true, Ordering::Relaxed);
                self.node.redirected(redirects.iter().all(|r| r.asking));
            }
        }
        replies
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
        match reply {
            Ok(value) => Self::of_value(value),
            Err(e) => match e.kind() {
                ErrorKind::Server(kind) => Self::parse(kind, e.detail()?),
                _ => None,
            },
        }
    }

    fn of_value(value: &Value) -> Option<Self> {
        match value {
            Value::ServerError(e) => Self::parse(e.kind()?, e.details()?),
            _ => None,
        }
    }

    fn parse(kind: ServerErrorKind, detail: &str) -> Option<Self> {
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

    async fn send(&self, conn: &mut ConnectionManager, cmd: &Cmd) -> RedisResult<Value> {
        if !self.asking {
            return conn.req_packed_command(cmd).await;
        }
        // One pipeline, so that nothing else on the multiplexed connection comes between; a
        // refused `ASKING` (an ACL without `+asking`) is the answer, not lost.
        let mut pipe = redis::pipe();
        pipe.cmd("ASKING").add_command(cmd.clone());
        let mut replies = conn.req_packed_commands(&pipe, 0, 2).await?.into_iter();
        match (replies.next(), replies.next()) {
            (Some(refused @ Value::ServerError(_)), _) => Ok(refused),
            (_, Some(reply)) => Ok(reply),
            _ => Ok(Value::Nil),
        }
    }
}

impl ConnectionLike for HotConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(conn) => conn.req_packed_command(cmd),
            Self::Cluster(conn) => conn.req_packed_command(cmd),
            Self::Direct(direct) => direct.command(cmd).boxed(),
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
            Self::Direct(direct) => direct.batch(pipeline, offset, count).boxed(),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(conn) => conn.get_db(),
            Self::Cluster(conn) => conn.get_db(),
            Self::Direct(direct) => direct.node.connection().get_db(),
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
