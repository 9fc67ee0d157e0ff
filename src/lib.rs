//! # rswoole
//!
//! The Swoole server model in Rust: one long-lived server that owns its sockets and runs your
//! callbacks in persistent worker processes.
//!
//! ```text
//! master ─── reactor threads (accept, read, frame, write; own every client socket)
//!   │          │  unix-socket pipe per worker incarnation
//!   └─ manager (single-threaded: forks and restarts workers, reload)
//!        └─ worker 0..N-1  (a tokio runtime each; runs on_connect/on_receive/on_close/on_packet)
//! ```
//!
//! - [`Server`]: listeners (TCP/UDP, IPv4/IPv6), [`Settings`], callbacks, [`Server::start`].
//! - [`Handle`]: what callbacks get — `send`, `close`, `exists`, `connection_info`, `send_to`,
//!   `stats`.
//! - [`Mode::Process`] (default): the master holds every connection; a worker that dies is
//!   replaced and no connection drops; what it had not finished is re-delivered.
//!   [`Mode::Base`]: each worker accepts on its own `SO_REUSEPORT` listener (fastest).
//!
//! # Examples
//! The seed's TCP server (`examples/tcp_echo.rs`):
//! ```no_run
//! use rswoole::Server;
//!
//! fn main() -> rswoole::Result<()> {
//!     let mut server = Server::bind("127.0.0.1:9501")?;
//!     server.on_connect(|_srv, _fd| async { println!("Client: Connect.") });
//!     server.on_receive(|srv, ev| async move {
//!         srv.send(ev.fd, [&b"Server: "[..], &ev.data[..]].concat())
//!     });
//!     server.on_close(|_srv, _fd| async { println!("Client: Close.") });
//!     server.start()
//! }
//! ```
#![warn(missing_docs)]
#![doc(test(attr(deny(warnings))))]

// Layers, bottom to top; each imports only the ones above it in this list
// (`../shared/tools/layers.py src` checks it). See docs/ARCHITECTURE.md.
/// mimalloc as the global allocator (the `mimalloc` feature; see `Cargo.toml`).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod base; // 1. plain types: ids, errors, settings, events, counters
mod ipc; // 2. records between processes, mailboxes, task links, the shared connection table
mod owner; // 3. the socket owner: connections and the protocol state machines
mod runtime;
#[allow(unsafe_code)]
mod sys; // 2. the only unsafe code: fork, socketpair, signals, shared memory // 4. master, reactor, manager, workers, task workers, timers

// 5. the public API.
#[cfg(feature = "cli")]
pub mod cli;
pub mod client;
pub mod control;
pub mod http;
mod server;
mod task;
pub mod websocket;

pub use bytes::Bytes;
/// The `metrics` crate facade: with the admin listener on (`Settings::admin`), its
/// `counter!`, `gauge!` and `histogram!` from any worker show up, summed, on `/metrics`.
pub use metrics;

/// TLS settings of a listener: [`Settings::tls`] (the first listener) and
/// [`Port::set_tls`] (the others). rustls with the `ring` provider terminates TLS where the
/// socket lives (the master in Process mode, each worker in Base mode);
/// `rswoole reload-certs` swaps certificates live.
pub mod tls {
    pub use crate::base::settings::tls::{
        ClientAuth, TlsSettings, TlsVersion, DEFAULT_HANDSHAKE_TIMEOUT,
    };
}
/// Shared memory reachable from every process of a server: [`Table`], [`Atomic`], [`Lock`]
/// (the `rswoole-shm` crate). Create them
/// before [`Server::start`] so that every worker inherits them.
pub mod shm {
    pub use rswoole_shm::*;
}
pub use base::settings::cluster::{
    DEFAULT_CLUSTER_HEARTBEAT, DEFAULT_CLUSTER_NODE_TTL, DEFAULT_CLUSTER_PREFIX,
    DEFAULT_CLUSTER_TASK_CLAIM_TIMEOUT,
};
pub use base::settings::{
    DEFAULT_BUFFER_OUTPUT_SIZE, DEFAULT_HALF_CLOSE_TIMEOUT, DEFAULT_HEARTBEAT_CHECK_INTERVAL,
    DEFAULT_MAX_CONNECTION_CAP, DEFAULT_MAX_REDELIVERIES, DEFAULT_MAX_REQUEST,
    DEFAULT_MAX_WAIT_TIME, DEFAULT_PACKAGE_MAX_LENGTH, DEFAULT_PARK_IDLE_AFTER,
    DEFAULT_TASK_MAX_PAYLOAD, DEFAULT_TASK_QUEUE_SIZE, MAX_HALF_CLOSE_TIMEOUT,
};
pub use base::{
    AccessLogFormat, AdminSettings, CallbackResult, ClusterConnId, ClusterError, ClusterNode,
    ClusterSettings, ConnError, ConnId, ConnectionInfo, DispatchMode, Error, HttpSettings,
    MasterInfo, Mode, Packet, ReceiveEvent, Result, SendError, Settings, SockType, Stats,
    TaskError, TaskId, TaskResult, TimerError, TimerId, WebSocketSettings,
};
pub use rswoole_codec::stream::{Framing, LengthSpec, LengthType};
pub use rswoole_shm::{Atomic, AtomicLong, Column, Lock, Row, Table, Value};
pub use server::{Handle, Port, Server};
pub use task::{Task, TaskHandle};
