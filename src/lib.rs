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

mod conn;
mod daemon;
mod error;
mod ipc;
mod mailbox;
mod manager;
mod master;
mod proto;
mod reactor;
mod server;
mod settings;
mod shared;
#[allow(unsafe_code)]
mod sys;
mod task;
mod task_link;
mod task_worker;
mod upkeep;
mod worker;

pub mod cli;
pub mod client;
pub mod control;
pub mod http;
pub mod websocket;

pub use bytes::Bytes;

/// Shared memory reachable from every process of a server: [`Table`], [`Atomic`], [`Lock`]
/// (the `rswoole-shm` crate). Create them
/// before [`Server::start`] so that every worker inherits them.
pub mod shm {
    pub use rswoole_shm::*;
}
pub use error::{Error, Result, SendError};
pub use rswoole_codec::stream::{Framing, LengthSpec, LengthType};
pub use rswoole_shm::{Atomic, AtomicLong, Column, Lock, Row, Table, Value};
pub use server::{
    CallbackResult, ConnId, Handle, MasterInfo, Packet, Port, ReceiveEvent, Server, SockType, Stats,
};
pub use settings::{
    DispatchMode, Mode, Settings, DEFAULT_BUFFER_OUTPUT_SIZE, DEFAULT_HEARTBEAT_CHECK_INTERVAL,
    DEFAULT_MAX_CONNECTION_CAP, DEFAULT_MAX_REQUEST, DEFAULT_MAX_WAIT_TIME,
    DEFAULT_PACKAGE_MAX_LENGTH,
};
pub use settings::{DEFAULT_TASK_MAX_PAYLOAD, DEFAULT_TASK_QUEUE_SIZE};
pub use shared::ConnectionInfo;
pub use task::{Task, TaskError, TaskHandle, TaskId, TaskResult, TimerId};
