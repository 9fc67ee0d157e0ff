//! Taking accepted connections in: the id, the `max_connection` limit, the listener socket
//! options and the accept loop (shared by the master in Process mode and each worker in Base
//! mode).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpStream;

use super::conn::Conn;
use super::table::ConnTable;
use super::tls::TlsListener;
use crate::ipc::shared::{NewConn, Shared};

/// Takes an accepted stream in: allocates its session id from `counter` (`first`, then every
/// `stride`), or refuses it — closed at once, counted, logged at most once a second — when
/// `max_connection` is reached; then builds its [`Conn`] with `nodelay` set and puts it in
/// `conns`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn admit<X: Default>(
    shared: &Shared,
    counter: &std::sync::atomic::AtomicU64,
    first: u64,
    stride: u64,
    info: &NewConn,
    stream: TcpStream,
    conns: &ConnTable<X>,
    cap: usize,
    refused_log: &mut RateLimit,
    tls: Option<&TlsListener>,
) -> Option<Arc<Conn<X>>> {
    let session = match tls {
        None => None,
        Some(t) => {
            t.refresh(
                shared
                    .header()
                    .certs_gen
                    .load(std::sync::atomic::Ordering::Relaxed),
            );
            match t.session() {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::error!(error = %e, "cannot start a TLS session; closing the connection");
                    return None;
                }
            }
        }
    };
    let Some(id) = shared.alloc(counter, first, stride, info) else {
        shared
            .header()
            .refused
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if refused_log.ready() {
            tracing::warn!(
                max_connection = shared.conn_cap(),
                "connection refused: max_connection reached"
            );
        }
        drop(stream);
        return None;
    };
    let _ = stream.set_nodelay(true);
    let conn = Arc::new(Conn::new(
        id,
        info.listener as u16,
        info.remote,
        stream,
        shared.clone(),
        cap,
        conns.flusher.clone(),
        session,
    ));
    conns.insert(conn.clone());
    Some(conn)
}

/// At most one log line per second for a repeated condition.
#[derive(Debug, Default)]
pub(crate) struct RateLimit(Option<Instant>);

impl RateLimit {
    pub(crate) fn ready(&mut self) -> bool {
        let now = Instant::now();
        match self.0 {
            Some(t) if now.duration_since(t) < Duration::from_secs(1) => false,
            _ => {
                self.0 = Some(now);
                true
            }
        }
    }
}

/// A TCP listener with SO_REUSEPORT on `addr` (Base-mode workers each make their own).
pub(crate) fn reuseport_listener(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_nonblocking(true)?;
    s.set_cloexec(true)?;
    s.bind(&addr.into())?;
    s.listen(4096)?;
    Ok(s.into())
}

/// Where a listener's connection ids come from: `first`, then every `stride`, from `counter`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ids<'a> {
    pub(crate) counter: &'a std::sync::atomic::AtomicU64,
    pub(crate) first: u64,
    pub(crate) stride: u64,
}

/// The one accept loop: takes every connection of `listener` (listener number `index`) in
/// with [`admit`] and hands it to `start`, which spawns its task. `reactor_id` says which
/// reactor thread (Process mode) or worker (Base mode) holds the n-th connection, and
/// `worker` the worker it is first given to.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn accept_loop<X: Default>(
    listener: tokio::net::TcpListener,
    index: usize,
    shared: &Shared,
    ids: Ids<'_>,
    reactor_id: impl Fn(u64) -> u32,
    worker: u32,
    conns: &ConnTable<X>,
    cap: usize,
    tls: Option<Arc<TlsListener>>,
    mut start: impl FnMut(Arc<Conn<X>>),
) {
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    let mut refused_log = RateLimit::default();
    let mut n: u64 = 0;
    let owner_pid = std::process::id();
    // This process owns client sockets: give memory back after bursts.
    super::trim::start();
    super::trim::start_table(shared.clone());
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and the like: back off a little instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        n += 1;
        let info = NewConn {
            remote,
            server_port: port,
            listener: index,
            reactor: reactor_id(n),
            worker,
            owner_pid,
        };
        let Some(conn) = admit(
            shared,
            ids.counter,
            ids.first,
            ids.stride,
            &info,
            stream,
            conns,
            cap,
            &mut refused_log,
            tls.as_deref(),
        ) else {
            continue;
        };
        start(conn);
    }
}
