//! Test support for aicache and for teams that add a backend.
//!
//! - [`RedisServer`] starts a real `redis-server` for a test: on a free 127.0.0.1 port (retrying when
//!   the port was taken meanwhile) or on a unix socket, in its own temporary directory, with no
//!   persistence; it waits for the server to answer and kills it (SIGKILL) when dropped, also when
//!   the test panics. Variants: plain, `requirepass`, and ACL users. A missing `redis-server` is a
//!   loud failure that names the install command, never a skip.
//! - [`conformance`] is the backend contract as executable cases, and [`conformance_suite!`] turns
//!   them into one `#[tokio::test]` per case for a backend of yours.
//! - [`RedisCluster`] starts a real Redis Cluster (3 primaries, 3 replicas, joined with
//!   `redis-cli --cluster create`), ready when every node reports `cluster_state:ok`; one node
//!   can be killed to watch a failover. A missing `redis-cli` is a loud failure too.
//! - [`TcpProxy`] forwards a loopback port to a server and can be cut and healed: a partition
//!   between one cache instance and Redis while others keep it.
//! - [`store_conformance`] is the shared-tier contract ([`FrameStore`](cache_core::FrameStore)) as
//!   executable cases, and [`frame_store_suite!`] turns them into tests for a store of yours.
//!
//! ```no_run
//! use cache_testkit::{RedisServer, ServerConfig};
//!
//! let server = RedisServer::start(ServerConfig::default().with_password("s3cret"));
//! println!("redis at {}", server.url());
//! // The server is killed when `server` goes out of scope.
//! ```

mod certs;
mod cluster;
pub mod conformance;
mod proxy;
mod server;
pub mod store_conformance;

pub use certs::{CertFiles, TestCertificates};
pub use cluster::{CLUSTER_NODE_TIMEOUT, RedisCluster, redis_cli_binary};
pub use proxy::TcpProxy;
pub use server::{
    AclUser, CACHE_ACL_COMMANDS, LaunchError, RedisServer, ServerConfig, ServerTls, Transport,
    free_port, redis_server_binary,
};

/// A memory figure of this process from `/proc/self/status`, in KiB: `"VmRSS"` (resident now) or
/// `"VmHWM"` (the peak), for tests and benches that measure memory in a child process. `None`
/// where the file or the field is missing.
pub fn process_status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// `size` deterministic pseudo-random bytes (xorshift): data that LZ4 cannot shrink, for tests and
/// benches that must move exactly `size` bytes.
pub fn incompressible_bytes(size: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    (0..size)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_be_bytes()[0]
        })
        .collect()
}
