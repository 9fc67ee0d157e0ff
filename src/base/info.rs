//! What callbacks are given and what the server reports: events, connection info, counters.

use std::fmt;
use std::net::SocketAddr;
use std::time::SystemTime;

use bytes::Bytes;

use super::ids::ConnId;
/// Data from a client, as given to `on_receive`.
///
/// # Examples
///
/// ```no_run
/// use rswoole::Server;
///
/// fn main() -> rswoole::Result<()> {
///     let mut server = Server::bind("127.0.0.1:9501")?;
///     server.on_receive(|srv, ev| async move {
///         println!("{} bytes from {} on listener {}", ev.data.len(), ev.fd, ev.listener);
///         srv.send(ev.fd, ev.data) // echo
///     });
///     server.start()
/// }
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ReceiveEvent {
    /// The connection.
    pub fd: ConnId,
    /// The listener it came in on (0 = the bound address, then `add_listener` order).
    pub listener: usize,
    /// The bytes: one read in raw mode, one whole message with framing.
    pub data: Bytes,
}

/// A UDP datagram, as given to `on_packet`.
///
/// # Examples
///
/// ```no_run
/// use rswoole::Server;
///
/// fn main() -> rswoole::Result<()> {
///     let mut server = Server::bind_udp("127.0.0.1:9502")?;
///     server.on_packet(|srv, p| async move {
///         println!("{} bytes from {} on listener {}", p.data.len(), p.addr, p.listener);
///         srv.send_to(p.addr, p.data) // echo the datagram
///     });
///     server.start()
/// }
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Packet {
    /// The datagram.
    pub data: Bytes,
    /// Who sent it (reply with [`Handle::send_to`](crate::Handle::send_to)).
    pub addr: SocketAddr,
    /// The listener it came in on.
    pub listener: usize,
}

/// What a callback may return: `()` or a `Result` whose error is logged.
///
/// # Examples
///
/// ```no_run
/// use rswoole::Server;
///
/// fn main() -> rswoole::Result<()> {
///     let mut server = Server::bind("127.0.0.1:9501")?;
///     // `()`: nothing to report.
///     server.on_connect(|_srv, fd| async move { println!("{fd} connected") });
///     // `Result<(), E: Display>`: an error is logged with the callback's name.
///     server.on_receive(|srv, ev| async move { srv.send(ev.fd, ev.data) });
///     server.start()
/// }
/// ```
pub trait CallbackResult {
    /// Logs the error, if any.
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole::CallbackResult;
    /// ().report("on_connect"); // nothing to log
    /// Err::<(), _>("peer went away").report("on_receive"); // logged as a warning
    /// ```
    fn report(self, callback: &'static str);
}

impl CallbackResult for () {
    fn report(self, _: &'static str) {}
}

impl<E: fmt::Display> CallbackResult for std::result::Result<(), E> {
    fn report(self, callback: &'static str) {
        if let Err(e) = self {
            tracing::warn!(callback, error = %e, "callback returned an error");
        }
    }
}

/// Information given to `on_start` and `on_shutdown` (they run in the master).
///
/// # Examples
///
/// ```no_run
/// use rswoole::Server;
///
/// fn main() -> rswoole::Result<()> {
///     let mut server = Server::bind("127.0.0.1:9501")?;
///     server.on_receive(|srv, ev| async move { srv.send(ev.fd, ev.data) });
///     server.on_start(|info| {
///         println!("master {} manager {} listening on {:?}", info.master_pid, info.manager_pid, info.addrs);
///     });
///     server.start()
/// }
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MasterInfo {
    /// The master's pid.
    pub master_pid: u32,
    /// The manager's pid.
    pub manager_pid: u32,
    /// Every listener's actual address (port 0 resolved).
    pub addrs: Vec<SocketAddr>,
}

/// Server-wide counters.
///
/// # Examples
///
/// ```no_run
/// use rswoole::Server;
///
/// fn main() -> rswoole::Result<()> {
///     let mut server = Server::bind("127.0.0.1:9501")?;
///     server.on_receive(|srv, ev| async move {
///         let s = srv.stats();
///         let line = format!("{} open, {} accepted, per worker {:?}\n", s.connections, s.accepted, s.requests);
///         srv.send(ev.fd, line)
///     });
///     server.start()
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// When the server started.
    pub start_time: SystemTime,
    /// Connections open now.
    pub connections: u64,
    /// Connections accepted since start.
    pub accepted: u64,
    /// Connections closed since start.
    pub closed: u64,
    /// Connections refused because `max_connection` was reached.
    pub refused: u64,
    /// Connections closed because they did not read their output: `buffer_output_size` was
    /// reached (a WebSocket client is told so with a Close frame, 1008).
    pub output_overflows: u64,
    /// Events (receives and packets) handled, per worker.
    pub requests: Vec<u64>,
    /// Restarts, per worker.
    pub restarts: Vec<u64>,
}
/// Everything a callback can learn about a connection.
///
/// # Examples
///
/// ```no_run
/// use rswoole::Server;
///
/// fn main() -> rswoole::Result<()> {
///     let mut server = Server::bind("127.0.0.1:9501")?;
///     server.on_receive(|srv, ev| async move {
///         let Some(info) = srv.connection_info(ev.fd) else { return Ok(()) };
///         let idle = info.last_receive_time.duration_since(info.connect_time).unwrap_or_default();
///         let line = format!("you are {} (listener {}, uid {}), connected {idle:?} before this\n",
///             info.remote_addr, info.listener, info.uid);
///         srv.send(ev.fd, line)
///     });
///     server.start()
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionInfo {
    /// The client's address.
    pub remote_addr: SocketAddr,
    /// The local port the client connected to.
    pub server_port: u16,
    /// Index of the listener (0 = the address given to `bind`, then `add_listener` order).
    pub listener: usize,
    /// The reactor thread (Process mode) or worker (Base mode) holding the socket.
    pub reactor_id: u32,
    /// When the connection was accepted.
    pub connect_time: SystemTime,
    /// When data last arrived from the client (the connect time if none yet).
    pub last_receive_time: SystemTime,
    /// Bytes accepted by `send` but not yet written to the socket.
    pub output_buffered: u64,
    /// The user id given by [`Handle::bind`](crate::Handle::bind), 0 if not bound.
    pub uid: u32,
    /// The connection is TLS (its handshake finished).
    pub tls: bool,
    /// TLS with a client certificate (mTLS): the SHA-256 of the verified certificate, the
    /// peer's identity (compare with `openssl x509 -noout -fingerprint -sha256`).
    pub peer_cert_sha256: Option<[u8; 32]>,
}

/// One member of the cluster, as [`Handle::cluster_nodes`](crate::Handle::cluster_nodes)
/// lists it.
///
/// # Examples
/// ```no_run
/// use rswoole::websocket::{OpCode, WebSocketServer};
///
/// fn main() -> rswoole::Result<()> {
///     let mut server = WebSocketServer::bind("127.0.0.1:9502")?;
///     server.on_message(|srv, frame| async move {
///         if let Ok(nodes) = srv.cluster_nodes().await {
///             let total: u64 = nodes.iter().map(|n| n.connections).sum();
///             let line = format!("{} nodes, {total} connections", nodes.len());
///             let _ = srv.push(frame.fd, line, OpCode::Text);
///         }
///     });
///     server.start()
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClusterNode {
    /// Its [`ClusterSettings::node`](crate::ClusterSettings::node) name.
    pub name: String,
    /// Its open connections at its last heartbeat.
    pub connections: u64,
}
