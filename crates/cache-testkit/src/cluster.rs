//! A real Redis Cluster for tests: primaries and replicas as `redis-server` processes on free
//! loopback ports (each with its bus port, `port + 10000`, free too), joined by `redis-cli
//! --cluster create`, ready when every node reports `cluster_state:ok`, every slot is covered
//! and every replica is in sync; killed when dropped.
//!
//! A shared cluster ([`RedisCluster::shared`]) serves the tests of one binary that only need
//! keys of their own: a watchdog process kills its nodes and removes their directories once the
//! test process is gone (a `static` is never dropped).

use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::server::{AclUser, LaunchError, RedisServer, ServerConfig, ServerTls, free_port};

mod reshard;
mod watchdog;

/// `cluster-node-timeout` of the nodes: a primary is marked failed after this long, and its
/// replica takes over soon after.
pub const CLUSTER_NODE_TIMEOUT: Duration = Duration::from_millis(1000);

const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The `redis-cli` binary used: `$REDIS_CLI_BIN`, else `redis-cli` on the `PATH`.
pub fn redis_cli_binary() -> String {
    std::env::var("REDIS_CLI_BIN").unwrap_or_else(|_| "redis-cli".to_string())
}

/// The test kit's own user on a cluster with access control: it creates and inspects the
/// cluster, and replicas log in to their primaries as it.
const ADMIN_USER: &str = "testkit-admin";
const ADMIN_PASSWORD: &str = "testkit-admin-password";

/// A running Redis Cluster: `primaries` primaries with one replica each.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
    /// Each kills its nodes and removes their directories once this process is gone.
    watchdogs: Vec<Child>,
    /// The only login besides the test kit's own ([`RedisCluster::start_with_user`]).
    user: Option<AclUser>,
    /// Clients, replicas and the cluster bus speak TLS ([`RedisCluster::start_with_tls`]).
    tls: Option<ServerTls>,
}

impl std::fmt::Debug for RedisCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCluster")
            .field("ports", &self.ports())
            .finish_non_exhaustive()
    }
}

/// A port whose bus port (`port + 10000`) is free as well.
fn cluster_port() -> Result<u16, LaunchError> {
    for _ in 0..64 {
        let port = free_port()?;
        let Some(bus) = port.checked_add(10_000) else {
            continue;
        };
        if TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, bus)).is_ok() {
            return Ok(port);
        }
    }
    Err(LaunchError::Failed {
        reason: "no port with a free bus port (port + 10000) found".to_string(),
        log_tail: String::new(),
    })
}

/// How long one `redis-cli` call may take (a paused node never answers).
const CLI_TIMEOUT: Duration = Duration::from_secs(15);

/// Runs `redis-cli` with `args`; its standard output. Killed after [`CLI_TIMEOUT`].
fn run_cli(args: &[&str]) -> Result<String, LaunchError> {
    let binary = redis_cli_binary();
    let mut child = Command::new(&binary)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                LaunchError::Failed {
                    reason: format!(
                        "`{binary}` was not found: a cluster is created with it. Install it with \
                         `apt-get update && apt-get install -y redis-tools` (Debian/Ubuntu, as \
                         root; redis-server's package depends on it), or run `cargo xtask test`; \
                         set REDIS_CLI_BIN to use another binary"
                    ),
                    log_tail: String::new(),
                }
            } else {
                LaunchError::Io(e)
            }
        })?;
    let deadline = Instant::now() + CLI_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(LaunchError::Failed {
                reason: format!(
                    "redis-cli {} did not answer within {CLI_TIMEOUT:?}",
                    args.join(" ")
                ),
                log_tail: String::new(),
            });
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let output = child.wait_with_output()?;
    if !status.success() {
        return Err(LaunchError::Failed {
            reason: format!("redis-cli {} failed", args.join(" ")),
            log_tail: format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// One node's settings; with `user`, logins are that user and the test kit's own; with `tls`,
/// every link is TLS.
fn node_config(
    user: Option<&AclUser>,
    tls: Option<&ServerTls>,
) -> Result<ServerConfig, LaunchError> {
    let mut config = ServerConfig::default()
        .with_port(cluster_port()?)
        .with_config_line("cluster-enabled yes")
        .with_config_line("cluster-config-file nodes.conf")
        .with_config_line(format!(
            "cluster-node-timeout {}",
            CLUSTER_NODE_TIMEOUT.as_millis()
        ))
        // The other primaries keep serving while one's slots have no primary.
        .with_config_line("cluster-require-full-coverage no")
        .with_config_line("cluster-replica-validity-factor 0");
    if let Some(user) = user {
        config = config
            .with_acl_user(AclUser::new(
                ADMIN_USER,
                ADMIN_PASSWORD,
                &["~*", "&*", "+@all"],
            ))
            .with_acl_user(user.clone())
            .with_config_line(format!("masteruser {ADMIN_USER}"))
            .with_config_line(format!("masterauth {ADMIN_PASSWORD}"));
    }
    if let Some(tls) = tls {
        config = config
            .with_tls(tls.clone())
            .with_config_line("tls-cluster yes")
            .with_config_line("tls-replication yes");
    }
    Ok(config)
}

impl RedisCluster {
    /// Starts 3 primaries and 3 replicas, panicking with an actionable message when it cannot.
    ///
    /// # Panics
    /// When `redis-server` or `redis-cli` is missing, or the cluster does not become ready.
    pub fn start() -> Self {
        match Self::try_start(3) {
            Ok(cluster) => cluster,
            Err(e) => panic!("{e}"),
        }
    }

    /// The cluster shared by the tests of this process (started on first use, killed by a
    /// watchdog when the process exits). Tests on it use keys of their own.
    ///
    /// # Panics
    /// As [`start`](Self::start).
    pub fn shared() -> &'static Self {
        static SHARED: OnceLock<RedisCluster> = OnceLock::new();
        SHARED.get_or_init(Self::start)
    }

    /// Starts `primaries` primaries with one replica each.
    ///
    /// # Errors
    /// [`LaunchError`] when a node does not start, `redis-cli` is missing, or the cluster is not
    /// ready within 60 s.
    pub fn try_start(primaries: usize) -> Result<Self, LaunchError> {
        Self::try_start_with(primaries, None, None)
    }

    /// Starts 3 primaries and 3 replicas on which `user` is the only login besides the test
    /// kit's own (the default user is off), as a production cluster with ACLs runs.
    ///
    /// # Panics
    /// As [`start`](Self::start).
    pub fn start_with_user(user: AclUser) -> Self {
        match Self::try_start_with(3, Some(user), None) {
            Ok(cluster) => cluster,
            Err(e) => panic!("{e}"),
        }
    }

    /// Starts 3 primaries and 3 replicas that serve TLS only (`tls`'s files), to clients, to
    /// their replicas and on the cluster bus; [`urls`](Self::urls) are `rediss://`.
    ///
    /// # Panics
    /// As [`start`](Self::start).
    pub fn start_with_tls(tls: ServerTls) -> Self {
        match Self::try_start_with(3, None, Some(tls)) {
            Ok(cluster) => cluster,
            Err(e) => panic!("{e}"),
        }
    }

    fn try_start_with(
        primaries: usize,
        user: Option<AclUser>,
        tls: Option<ServerTls>,
    ) -> Result<Self, LaunchError> {
        let mut nodes = Vec::with_capacity(primaries * 2);
        for _ in 0..primaries * 2 {
            let config = node_config(user.as_ref(), tls.as_ref())?;
            nodes.push(RedisServer::try_start(config)?);
        }
        let mut cluster = Self {
            nodes,
            watchdogs: Vec::new(),
            user,
            tls,
        };
        cluster.watch(0);
        let addresses: Vec<String> = cluster
            .ports()
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        let mut args = vec!["--cluster", "create"];
        args.extend(addresses.iter().map(String::as_str));
        args.extend(["--cluster-replicas", "1", "--cluster-yes"]);
        cluster.cli(&args)?;
        cluster.wait_ready(READY_TIMEOUT)?;
        Ok(cluster)
    }

    /// Starts a process that kills the nodes from index `from` on, and removes their
    /// directories, once this process is gone.
    fn watch(&mut self, from: usize) {
        let nodes = &self.nodes[from..];
        let pids: Vec<u32> = nodes.iter().filter_map(RedisServer::pid).collect();
        let dirs: Vec<&std::path::Path> = nodes.iter().map(RedisServer::dir).collect();
        if let Ok(watchdog) = watchdog::spawn(std::process::id(), &pids, &dirs) {
            self.watchdogs.push(watchdog);
        }
    }

    /// Waits until every running node reports `cluster_state:ok`, every slot has a live
    /// primary, and every replica's link to its primary is up.
    ///
    /// # Errors
    /// [`LaunchError::Failed`] after `limit`, with the last state seen.
    pub fn wait_ready(&self, limit: Duration) -> Result<(), LaunchError> {
        let deadline = Instant::now() + limit;
        loop {
            let state = self.readiness();
            match state {
                Ok(()) => return Ok(()),
                Err(why) if Instant::now() > deadline => {
                    return Err(LaunchError::Failed {
                        reason: format!("the cluster was not ready within {limit:?}"),
                        log_tail: why,
                    });
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    fn readiness(&self) -> Result<(), String> {
        let mut covered = 0;
        for node in self.live_nodes() {
            let port = node.port().to_string();
            let info = self
                .cli(&["-p", &port, "cluster", "info"])
                .map_err(|e| e.to_string())?;
            if !info.contains("cluster_state:ok") {
                return Err(format!("node {port}: {info}"));
            }
            let replication = self
                .cli(&["-p", &port, "info", "replication"])
                .map_err(|e| e.to_string())?;
            if replication.contains("role:slave") && !replication.contains("master_link_status:up")
            {
                return Err(format!("replica {port} not in sync: {replication}"));
            }
            if replication.contains("role:master") {
                covered += self.slots_of(node.port()).len();
            }
        }
        if covered < 16_384 {
            return Err(format!("{covered} of 16384 slots served by live primaries"));
        }
        Ok(())
    }

    fn live_nodes(&self) -> impl Iterator<Item = &RedisServer> {
        self.nodes.iter().filter(|n| n.pid().is_some())
    }

    /// The slots the node on `port` serves as a primary, by its own `CLUSTER NODES`.
    fn slots_of(&self, port: u16) -> Vec<u16> {
        let Ok(text) = self.cli(&["-p", &port.to_string(), "cluster", "nodes"]) else {
            return Vec::new();
        };
        let mut slots = Vec::new();
        for line in text.lines().filter(|l| l.contains("myself")) {
            for range in line.split_whitespace().skip(8) {
                let (start, end) = range.split_once('-').unwrap_or((range, range));
                if let (Ok(start), Ok(end)) = (start.parse::<u16>(), end.parse::<u16>()) {
                    slots.extend(start..=end);
                }
            }
        }
        slots
    }

    /// Every node's port, primaries and replicas.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(RedisServer::port).collect()
    }

    /// Seed URLs for a client: every node's `redis://127.0.0.1:port`.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// Each node's URL, logging in as ACL user `name` with `password`.
    pub fn urls_for_user(&self, name: &str, password: &str) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| n.url_for_user(name, password))
            .collect()
    }

    /// Runs `redis-cli` with `args`, logged in as the test kit's user where nodes require it.
    fn cli(&self, args: &[&str]) -> Result<String, LaunchError> {
        let mut full: Vec<&str> = Vec::new();
        if self.user.is_some() {
            full.extend(["--user", ADMIN_USER, "--pass", ADMIN_PASSWORD]);
            full.push("--no-auth-warning");
        }
        let ca_file = self
            .tls
            .as_ref()
            .map(|tls| tls.ca_file.display().to_string());
        if let Some(ca_file) = &ca_file {
            full.extend(["--tls", "--cacert", ca_file]);
        }
        full.extend_from_slice(args);
        run_cli(&full)
    }

    /// The nodes (to inspect one, or [`RedisServer::pause`] it).
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// The ports of the live primaries.
    pub fn primary_ports(&self) -> Vec<u16> {
        self.live_nodes()
            .filter(|n| {
                self.cli(&["-p", &n.port().to_string(), "info", "replication"])
                    .is_ok_and(|text| text.contains("role:master"))
            })
            .map(RedisServer::port)
            .collect()
    }

    /// The hash slot of `key` (`CLUSTER KEYSLOT`).
    ///
    /// # Panics
    /// When no node answers.
    pub fn slot_of(&self, key: &str) -> u16 {
        let port = self.primary_ports()[0].to_string();
        let reply = self
            .cli(&["-p", &port, "cluster", "keyslot", key])
            .unwrap_or_else(|e| panic!("CLUSTER KEYSLOT failed: {e}"));
        reply
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("CLUSTER KEYSLOT answered {reply:?}"))
    }

    /// The port of the live primary serving `key`.
    ///
    /// # Panics
    /// When no live primary serves its slot.
    pub fn primary_for(&self, key: &str) -> u16 {
        let slot = self.slot_of(key);
        self.primary_ports()
            .into_iter()
            .find(|&port| self.slots_of(port).contains(&slot))
            .unwrap_or_else(|| panic!("no live primary serves slot {slot}"))
    }

    /// The cluster id of the node on `port`.
    ///
    /// # Panics
    /// When the node does not answer.
    pub fn node_id(&self, port: u16) -> String {
        self.cli(&["-p", &port.to_string(), "cluster", "myid"])
            .unwrap_or_else(|e| panic!("CLUSTER MYID failed: {e}"))
            .trim()
            .to_string()
    }

    /// The port of a replica of the primary on `port`.
    ///
    /// # Panics
    /// When the primary has no live replica.
    pub fn replica_of(&self, port: u16) -> u16 {
        let nodes = self
            .cli(&["-p", &port.to_string(), "cluster", "nodes"])
            .unwrap_or_else(|e| panic!("CLUSTER NODES failed: {e}"));
        let id = self.node_id(port);
        nodes
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|f| f.len() > 3 && f[2].contains("slave") && f[3] == id)
            .and_then(|f| f[1].split(['@', ':']).nth(1)?.parse().ok())
            .unwrap_or_else(|| panic!("the primary on {port} has no replica: {nodes}"))
    }

    /// Kills the node on `port` with SIGKILL (its replica takes over after the node timeout).
    ///
    /// # Panics
    /// When no node listens on `port`.
    pub fn kill(&mut self, port: u16) {
        self.node_mut(port).kill();
    }

    /// The node on `port`.
    ///
    /// # Panics
    /// When no node listens on `port`.
    pub fn node_mut(&mut self, port: u16) -> &mut RedisServer {
        self.nodes
            .iter_mut()
            .find(|n| n.port() == port)
            .unwrap_or_else(|| panic!("no cluster node on port {port}"))
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for watchdog in &mut self.watchdogs {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
        for node in &mut self.nodes {
            node.kill();
        }
    }
}
