//! [`TcpProxy`]: a loopback TCP forwarder that a test can cut and heal, so that one cache
//! instance loses Redis (a partition) while another keeps it.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddrV4, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

struct Shared {
    cut: AtomicBool,
    stop: AtomicBool,
    open: Mutex<Vec<TcpStream>>,
}

impl Shared {
    fn close_all(&self) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        for stream in open.drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

/// Forwards `127.0.0.1:{port}` to a target port. [`cut`](Self::cut) closes every forwarded
/// connection and refuses new ones (they are accepted and closed at once, as a reset), until
/// [`heal`](Self::heal). Stopped when dropped.
///
/// ```no_run
/// use cache_testkit::{RedisServer, ServerConfig, TcpProxy};
///
/// let server = RedisServer::start(ServerConfig::default());
/// let proxy = TcpProxy::start(server.port());
/// let cut_off = format!("redis://127.0.0.1:{}", proxy.port());
/// proxy.cut();
/// // ... a cache on `cut_off` sees an outage, one on `server.url()` does not ...
/// proxy.heal();
/// # let _ = cut_off;
/// ```
pub struct TcpProxy {
    port: u16,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for TcpProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpProxy")
            .field("port", &self.port)
            .field("cut", &self.shared.cut.load(Ordering::SeqCst))
            .finish_non_exhaustive()
    }
}

impl TcpProxy {
    /// Starts forwarding a free loopback port to `127.0.0.1:{target_port}`.
    ///
    /// # Panics
    /// When no loopback port can be bound.
    pub fn start(target_port: u16) -> Self {
        let listener = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))
            .unwrap_or_else(|e| panic!("binding the proxy's port failed: {e}"));
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        listener
            .set_nonblocking(true)
            .unwrap_or_else(|e| panic!("the proxy's listener: {e}"));
        let shared = Arc::new(Shared {
            cut: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            open: Mutex::new(Vec::new()),
        });
        let acceptor = std::thread::spawn({
            let shared = Arc::clone(&shared);
            move || accept(&listener, target_port, &shared)
        });
        Self {
            port,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A `redis://` URL through the proxy.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Closes every forwarded connection and refuses new ones.
    pub fn cut(&self) {
        self.shared.cut.store(true, Ordering::SeqCst);
        self.shared.close_all();
    }

    /// Forwards new connections again.
    pub fn heal(&self) {
        self.shared.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.close_all();
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

fn accept(listener: &TcpListener, target_port: u16, shared: &Arc<Shared>) {
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((client, _)) => {
                if shared.cut.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                if let Err(e) = forward(client, target_port, shared) {
                    eprintln!("proxy: forwarding failed: {e}");
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => {
                eprintln!("proxy: accept failed: {e}");
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    }
}

fn forward(client: TcpStream, target_port: u16, shared: &Arc<Shared>) -> io::Result<()> {
    client.set_nonblocking(false)?;
    let upstream = TcpStream::connect(SocketAddrV4::new(Ipv4Addr::LOCALHOST, target_port))?;
    {
        let mut open = shared.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.push(client.try_clone()?);
        open.push(upstream.try_clone()?);
    }
    for (from, to) in [
        (client.try_clone()?, upstream.try_clone()?),
        (upstream, client),
    ] {
        std::thread::spawn(move || pump(from, to));
    }
    Ok(())
}

fn pump(mut from: TcpStream, mut to: TcpStream) {
    let mut buffer = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buffer[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}
