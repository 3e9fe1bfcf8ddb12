//! The `redis-server` launcher.

use std::fmt;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where the launched server listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Transport {
    /// TCP on 127.0.0.1, on a free port.
    #[default]
    Tcp,
    /// A unix socket in the server's temporary directory.
    Unix,
}

/// An ACL user to create on the launched server.
#[derive(Clone)]
#[non_exhaustive]
pub struct AclUser {
    /// The user name.
    pub name: String,
    /// The user's password.
    pub password: String,
    /// ACL rules after `on >password`, for example `["~aicache:*", "+@read", "+@write"]`.
    pub rules: Vec<String>,
}

/// The commands of the minimal cache user documented in `docs/security.md` (its key patterns are
/// added by [`AclUser::cache`]).
pub const CACHE_ACL_COMMANDS: &[&str] = &[
    "resetchannels",
    "-@all",
    "+get",
    "+set",
    "+unlink",
    "+exists",
    "+pttl",
    "+mget",
    "+scan",
    "+ping",
    "+info",
    "+eval",
    "+evalsha",
    "+script|load",
    "+acl|whoami",
    "+hello",
    "+multi",
    "+discard",
    "+getrange",
    "+pexpire",
    "+time",
    "+type",
    "+zadd",
    "+zrangebyscore",
    "+zremrangebyscore",
    "+dbsize",
    "+cluster|slots",
    "+cluster|nodes",
    "+wait",
    "+asking",
];

impl AclUser {
    /// The documented minimal cache user for the namespace `prefix`: its keys and auxiliary keys
    /// (`~{prefix}:*`, `~{prefix}~aux:*`) and [`CACHE_ACL_COMMANDS`].
    pub fn cache(name: impl Into<String>, password: impl Into<String>, prefix: &str) -> Self {
        let keys = [format!("~{prefix}:*"), format!("~{prefix}~aux:*")];
        let rules: Vec<&str> = keys
            .iter()
            .map(String::as_str)
            .chain(CACHE_ACL_COMMANDS.iter().copied())
            .collect();
        Self::new(name, password, &rules)
    }

    /// A user with `rules` (Redis ACL syntax).
    pub fn new(name: impl Into<String>, password: impl Into<String>, rules: &[&str]) -> Self {
        Self {
            name: name.into(),
            password: password.into(),
            rules: rules.iter().map(ToString::to_string).collect(),
        }
    }
}

impl fmt::Debug for AclUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AclUser")
            .field("name", &self.name)
            .field("rules", &self.rules)
            .finish_non_exhaustive()
    }
}

/// How to launch a server.
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct ServerConfig {
    /// TCP or unix socket.
    pub transport: Transport,
    /// `requirepass` for the default user.
    pub password: Option<String>,
    /// ACL users; when any is given the default user is disabled.
    pub acl_users: Vec<AclUser>,
    /// Extra `redis.conf` lines.
    pub extra_config: Vec<String>,
    /// The binary to run; default [`redis_server_binary`].
    pub binary: Option<String>,
    /// Serve TLS only (`port 0`, `tls-port`), with these files.
    pub tls: Option<ServerTls>,
    /// The TCP port; `None`: a free one.
    pub port: Option<u16>,
}

/// The TLS files of a server (see [`crate::TestCertificates`]).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerTls {
    /// The server certificate (PEM).
    pub cert_file: PathBuf,
    /// Its key (PEM).
    pub key_file: PathBuf,
    /// The CA that client certificates must chain to (PEM).
    pub ca_file: PathBuf,
    /// Require a client certificate (mutual TLS).
    pub require_client_certificate: bool,
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConfig")
            .field("transport", &self.transport)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("acl_users", &self.acl_users)
            .field("extra_config", &self.extra_config)
            .field("binary", &self.binary)
            .field("tls", &self.tls)
            .finish()
    }
}

impl ServerConfig {
    /// Listens on a unix socket instead of TCP.
    #[must_use]
    pub fn unix(mut self) -> Self {
        self.transport = Transport::Unix;
        self
    }

    /// Requires `password` from the default user (`requirepass`).
    #[must_use]
    pub fn with_password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// Adds an ACL user and disables the default user.
    #[must_use]
    pub fn with_acl_user(mut self, user: AclUser) -> Self {
        self.acl_users.push(user);
        self
    }

    /// Runs `binary` instead of [`redis_server_binary`].
    #[must_use]
    pub fn with_binary(mut self, binary: impl Into<String>) -> Self {
        self.binary = Some(binary.into());
        self
    }

    /// Serves TLS only, with `tls`'s files.
    #[must_use]
    pub fn with_tls(mut self, tls: ServerTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Listens on `port` instead of a free one (a cluster node needs `port + 10000` free too).
    #[must_use]
    pub fn with_port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Appends a raw `redis.conf` line.
    #[must_use]
    pub fn with_config_line(mut self, line: impl Into<String>) -> Self {
        self.extra_config.push(line.into());
        self
    }
}

/// The `redis-server` binary used: `$REDIS_SERVER_BIN`, else `redis-server` on the `PATH`.
pub fn redis_server_binary() -> String {
    std::env::var("REDIS_SERVER_BIN").unwrap_or_else(|_| "redis-server".to_string())
}

const READY_TIMEOUT: Duration = Duration::from_secs(15);
const RAW_TIMEOUT: Duration = Duration::from_secs(5);
const PORT_ATTEMPTS: usize = 8;

/// A running `redis-server`, killed when dropped.
pub struct RedisServer {
    config: ServerConfig,
    dir: tempfile::TempDir,
    child: Option<Child>,
    port: u16,
}

impl fmt::Debug for RedisServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisServer")
            .field("endpoint", &self.url_without_auth())
            .field("pid", &self.pid())
            .field("config", &self.config)
            .finish()
    }
}

impl RedisServer {
    /// Starts a server, panicking with an actionable message when it cannot.
    ///
    /// # Panics
    /// When `redis-server` is missing or does not start; the message says how to fix it.
    pub fn start(config: ServerConfig) -> Self {
        match Self::try_start(config) {
            Ok(server) => server,
            Err(e) => panic!("{e}"),
        }
    }

    /// Starts a server.
    ///
    /// # Errors
    /// [`LaunchError::BinaryMissing`] without a `redis-server`; [`LaunchError::Failed`] when it
    /// exits or does not answer within 15 s.
    pub fn try_start(config: ServerConfig) -> Result<Self, LaunchError> {
        let dir = tempfile::Builder::new()
            .prefix("aicache-redis-")
            .tempdir()?;
        let mut server = Self {
            config,
            dir,
            child: None,
            port: 0,
        };
        server.launch(None)?;
        Ok(server)
    }

    /// A `redis://` (or `redis+unix://`) URL with the default user's password, if any.
    pub fn url(&self) -> String {
        let auth = self
            .config
            .password
            .as_ref()
            .map(|p| format!(":{p}@"))
            .unwrap_or_default();
        let scheme = if self.config.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        match self.config.transport {
            Transport::Tcp => format!("{scheme}://{auth}127.0.0.1:{}", self.port),
            Transport::Unix => {
                let pass = self
                    .config
                    .password
                    .as_ref()
                    .map(|p| format!("?pass={p}"))
                    .unwrap_or_default();
                format!("redis+unix://{}{pass}", self.socket_path().display())
            }
        }
    }

    /// A URL with no credentials.
    pub fn url_without_auth(&self) -> String {
        let scheme = if self.config.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        match self.config.transport {
            Transport::Tcp => format!("{scheme}://127.0.0.1:{}", self.port),
            Transport::Unix => format!("redis+unix://{}", self.socket_path().display()),
        }
    }

    /// A URL that logs in as ACL user `name` with `password`.
    pub fn url_for_user(&self, name: &str, password: &str) -> String {
        let scheme = if self.config.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://{name}:{password}@127.0.0.1:{}", self.port)
    }

    /// The TCP port (0 for a unix socket server).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The launch settings, to change before a [`restart`](Self::restart) (for example a new
    /// password).
    pub fn config_mut(&mut self) -> &mut ServerConfig {
        &mut self.config
    }

    /// The server's working directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Whether the process is running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// Kills the server with SIGKILL and reaps it. The port stays reserved for [`restart`](Self::restart).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Already exited is fine: kill reports it and wait reaps it.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes the server with SIGSTOP: its sockets stay open but it answers nothing (a stalled
    /// Redis, as a half-open connection looks to a client). [`resume`](Self::resume) undoes it.
    ///
    /// # Panics
    /// When the server is not running or the signal cannot be sent.
    pub fn pause(&mut self) {
        self.signal(nix::sys::signal::Signal::SIGSTOP);
    }

    /// Lets a [`pause`](Self::pause)d server run again (SIGCONT).
    ///
    /// # Panics
    /// When the server is not running or the signal cannot be sent.
    pub fn resume(&mut self) {
        self.signal(nix::sys::signal::Signal::SIGCONT);
    }

    fn signal(&mut self, signal: nix::sys::signal::Signal) {
        let pid = self
            .pid()
            .and_then(|pid| i32::try_from(pid).ok())
            .unwrap_or_else(|| panic!("redis-server is not running; cannot send {signal}"));
        if let Err(e) = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal) {
            panic!("sending {signal} to redis-server (pid {pid}) failed: {e}");
        }
    }

    /// Starts the server again on the same port (after [`kill`](Self::kill)), empty.
    ///
    /// # Panics
    /// When the server cannot be started again; the message includes its log.
    pub fn restart(&mut self) {
        self.kill();
        let port = self.port;
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            match self.launch(Some(port)) {
                Ok(()) => return,
                // The old socket may linger for a moment after SIGKILL.
                Err(LaunchError::Failed { ref log_tail, .. })
                    if log_tail.contains("Address already in use") && Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("restart on port {port} failed: {e}"),
            }
        }
    }

    /// Sends a raw command line (inline protocol) and returns the first reply line. For test setup.
    ///
    /// # Errors
    /// On I/O failure, or when the server does not answer within 5 s.
    pub fn raw_command(&self, line: &str) -> std::io::Result<String> {
        let mut reply = String::new();
        match self.config.transport {
            Transport::Tcp => {
                let address = SocketAddrV4::new(Ipv4Addr::LOCALHOST, self.port).into();
                let stream = TcpStream::connect_timeout(&address, RAW_TIMEOUT)?;
                stream.set_read_timeout(Some(RAW_TIMEOUT))?;
                stream.set_write_timeout(Some(RAW_TIMEOUT))?;
                exchange(stream, line, &mut reply)?;
            }
            Transport::Unix => {
                let stream = UnixStream::connect(self.socket_path())?;
                stream.set_read_timeout(Some(RAW_TIMEOUT))?;
                stream.set_write_timeout(Some(RAW_TIMEOUT))?;
                exchange(stream, line, &mut reply)?;
            }
        }
        Ok(reply)
    }

    fn socket_path(&self) -> PathBuf {
        self.dir.path().join("redis.sock")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    fn log_tail(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = std::fs::File::open(self.log_path()) {
            let _ = file.read_to_string(&mut text);
        }
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    fn write_config(&self, port: u16) -> Result<PathBuf, LaunchError> {
        let dir = self.dir.path();
        let mut conf = vec![
            "bind 127.0.0.1".to_string(),
            match &self.config.tls {
                Some(_) => format!("port 0\ntls-port {port}"),
                None => format!("port {port}"),
            },
            "save \"\"".to_string(),
            "appendonly no".to_string(),
            "daemonize no".to_string(),
            format!("dir {}", dir.display()),
            format!("logfile {}", self.log_path().display()),
        ];
        if self.config.transport == Transport::Unix {
            conf.push(format!("unixsocket {}", self.socket_path().display()));
            conf.push("unixsocketperm 700".to_string());
        }
        if let Some(password) = &self.config.password {
            conf.push(format!("requirepass {password}"));
        }
        if let Some(tls) = &self.config.tls {
            conf.push(format!("tls-cert-file {}", tls.cert_file.display()));
            conf.push(format!("tls-key-file {}", tls.key_file.display()));
            conf.push(format!("tls-ca-cert-file {}", tls.ca_file.display()));
            conf.push(format!(
                "tls-auth-clients {}",
                if tls.require_client_certificate {
                    "yes"
                } else {
                    "no"
                }
            ));
        }
        if !self.config.acl_users.is_empty() {
            conf.push("user default off".to_string());
            for user in &self.config.acl_users {
                conf.push(format!(
                    "user {} on >{} {}",
                    user.name,
                    user.password,
                    user.rules.join(" ")
                ));
            }
        }
        conf.extend(self.config.extra_config.iter().cloned());
        let path = dir.join("redis.conf");
        std::fs::write(&path, conf.join("\n") + "\n")?;
        Ok(path)
    }

    fn launch(&mut self, fixed_port: Option<u16>) -> Result<(), LaunchError> {
        let fixed_port = fixed_port.or(self.config.port);
        let attempts = if fixed_port.is_some() {
            1
        } else {
            PORT_ATTEMPTS
        };
        let mut last_error = None;
        for _ in 0..attempts {
            let port = match (self.config.transport, fixed_port) {
                (Transport::Unix, _) => 0,
                (Transport::Tcp, Some(port)) => port,
                (Transport::Tcp, None) => free_port()?,
            };
            match self.spawn_and_wait(port) {
                Ok(()) => return Ok(()),
                Err(LaunchError::Failed { reason, log_tail })
                    if log_tail.contains("Address already in use") =>
                {
                    // Another process took the port between our probe and the server's bind.
                    last_error = Some(LaunchError::Failed { reason, log_tail });
                }
                Err(e) => return Err(e),
            }
        }
        Err(last_error.unwrap_or_else(|| LaunchError::Failed {
            reason: "no free port found".to_string(),
            log_tail: String::new(),
        }))
    }

    fn spawn_and_wait(&mut self, port: u16) -> Result<(), LaunchError> {
        let conf = self.write_config(port)?;
        let _ = std::fs::remove_file(self.log_path());
        let binary = self
            .config
            .binary
            .clone()
            .unwrap_or_else(redis_server_binary);
        let child = Command::new(&binary)
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    LaunchError::BinaryMissing {
                        binary: binary.clone(),
                    }
                } else {
                    LaunchError::Io(e)
                }
            })?;
        self.child = Some(child);
        self.port = port;
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if !self.is_running() {
                self.kill();
                return Err(LaunchError::Failed {
                    reason: format!("the process exited during startup (port {port})"),
                    log_tail: self.log_tail(),
                });
            }
            // Our own server's log, not a PING: after a port race another test's server could
            // answer on the port while ours dies with EADDRINUSE.
            if self
                .log_tail()
                .to_ascii_lowercase()
                .contains("ready to accept connections")
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.kill();
                return Err(LaunchError::Failed {
                    reason: format!("not ready to accept connections within {READY_TIMEOUT:?}"),
                    log_tail: self.log_tail(),
                });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn exchange<S: Read + Write>(mut stream: S, line: &str, reply: &mut String) -> std::io::Result<()> {
    stream.write_all(line.as_bytes())?;
    stream.write_all(b"\r\n")?;
    BufReader::new(stream).read_line(reply)?;
    Ok(())
}

/// A free loopback port, as the OS gives one.
///
/// # Errors
/// When no socket can be bound.
pub fn free_port() -> std::io::Result<u16> {
    let listener = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

mod launch_error;
#[cfg(test)]
mod tests;

pub use launch_error::LaunchError;
