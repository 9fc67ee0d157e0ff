//! Error types. Each says what went wrong and, where it can, what to do about it.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;

use super::ids::{ConnId, TimerId};

/// Errors of starting and running a server.
///
/// # Examples
///
/// ```
/// use rswoole::{Error, Server};
/// let err = Server::bind("127.0.0.1").unwrap_err(); // no port
/// assert!(matches!(&err, Error::Address { addr, .. } if addr == "127.0.0.1"));
/// assert!(err.to_string().starts_with("bad address \"127.0.0.1\""));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A listener has no callback for its events: register it before `start()`.
    #[error(
        "missing callback `{callback}`: the {kind} listener on {addr} cannot start without it"
    )]
    MissingCallback {
        /// The callback to register, e.g. `on_receive`.
        callback: &'static str,
        /// `TCP` or `UDP`.
        kind: &'static str,
        /// The listener's address.
        addr: SocketAddr,
    },
    /// Binding a listener failed (most often: the address is already in use).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// An address could not be parsed or resolved.
    #[error("bad address {addr:?}: {reason}")]
    Address {
        /// The text given.
        addr: String,
        /// Why it is not usable.
        reason: String,
    },
    /// A setting is out of range.
    #[error("invalid setting `{name}`: {reason}")]
    InvalidSetting {
        /// The field of [`Settings`](crate::Settings).
        name: &'static str,
        /// Why.
        reason: String,
    },
    /// A TLS listener's certificate, key or CA file is unusable.
    #[error("TLS on {addr}: {reason}")]
    Tls {
        /// The listener.
        addr: SocketAddr,
        /// What is wrong with which file.
        reason: String,
    },
    /// An OS call failed.
    #[error("{context}: {source}")]
    Io {
        /// What rswoole was doing.
        context: &'static str,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
}

impl Error {
    pub(crate) fn io(context: &'static str) -> impl FnOnce(io::Error) -> Error {
        move |source| Error::Io { context, source }
    }
}

/// `Result` with [`Error`] as the default error.
///
/// # Examples
///
/// ```
/// use rswoole::{Server, Settings};
/// fn build(addr: &str) -> rswoole::Result<Server> {
///     let mut server = Server::bind(addr)?;
///     server.set(Settings::default().worker_num(2));
///     Ok(server)
/// }
/// assert!(build("127.0.0.1:9501").is_ok());
/// assert!(build("bad").is_err());
/// ```
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a `send` did not happen. The data is handed back ([`SendError::into_data`]), so nothing
/// is lost silently.
///
/// # Examples
///
/// ```
/// use rswoole::{Bytes, ConnId, SendError};
/// let err = SendError::Closed(ConnId(7), Bytes::from("hello"));
/// assert_eq!(err.to_string(), "connection 7 is closed");
/// assert_eq!(err.into_data(), "hello"); // nothing is lost
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The connection is closed (or closing), or the id never existed. Nothing was sent.
    /// [`Mode::Base`](crate::Mode::Base): also a connection whose worker died or is being
    /// replaced (its connections close with it).
    #[error("connection {0} is closed")]
    Closed(ConnId, Bytes),
    /// The connection's output buffer would exceed `buffer_output_size`: the client reads too
    /// slowly. Retry later or close it.
    #[error("output buffer of connection {0} is full")]
    BufferFull(ConnId, Bytes),
    /// [`Mode::Base`](crate::Mode::Base): the connection belongs to another worker.
    #[error("connection {0} belongs to another worker (Base mode)")]
    NotLocal(ConnId, Bytes),
    /// No socket to send with (e.g. `send_to` on a server without a UDP listener).
    #[error("cannot send: {0}")]
    NoSocket(&'static str, Bytes),
    /// The OS refused the datagram.
    #[error("send failed: {0}")]
    Io(#[source] io::Error, Bytes),
    /// `send_message` to a worker id that is not `0..worker_num`.
    #[error("no worker {0}")]
    NoWorker(usize, Bytes),
    /// This worker is shutting down: its way to the rest of the server is closed, so nothing
    /// more can be sent from it.
    #[error("this worker is shutting down")]
    ShuttingDown(Bytes),
    /// [`Mode::Base`](crate::Mode::Base): the worker that owns the connection could not be
    /// handed the data (no way to reach it from here). A worker that died or is being
    /// replaced is not this: its connections are [`SendError::Closed`].
    #[error("the worker that owns connection {0} cannot take it now")]
    Unreachable(ConnId, Bytes),
    /// [`Mode::Base`](crate::Mode::Base) `broadcast`: these workers were not given the
    /// message — they were down (dead, or their replacement still starting: no clients then)
    /// or their queue was full (they do not read); the other workers' clients got it.
    #[error("broadcast did not reach the clients of workers {0:?}")]
    WorkersUnreachable(Vec<usize>, Bytes),
    /// [`Settings::cluster`](crate::Settings::cluster): the message could not be handed to
    /// the cluster (Redis is down or restarting, or this node's queue to it is full). Nothing
    /// was sent to any node; retry later.
    #[error("the cluster cannot take the message: {0}")]
    Cluster(ClusterError, Bytes),
}

/// Why a cluster operation failed ([`Settings::cluster`](crate::Settings::cluster)).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClusterError {
    /// This server has no [`Settings::cluster`](crate::Settings::cluster).
    #[error("this server is not in a cluster")]
    NotConfigured,
    /// Redis cannot be reached now (down, restarting, or refusing); the node reconnects with
    /// backoff. Retry later.
    #[error("redis unavailable: {0}")]
    Unavailable(String),
    /// Too many messages wait for Redis on this node (it is slower than the senders).
    #[error("too many messages wait for redis")]
    Backlog,
    /// No live node of that name took the message (it died, or never was).
    #[error("no live node {0:?} took the message")]
    NoNode(String),
    /// Node {0} did not answer in time (it may be overloaded, or dying).
    #[error("node {0:?} did not answer in time")]
    Timeout(String),
    /// The owning node refused the operation (e.g. the connection is closed there), with its
    /// reason.
    #[error("refused by the owning node: {0}")]
    Refused(String),
    /// Not a cluster connection id (`NODE/FD`).
    #[error("{0:?} is not a cluster connection id (want NODE/FD)")]
    InvalidId(String),
}

impl SendError {
    /// The data that was not sent.
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole::{Bytes, SendError};
    /// let err = SendError::NoWorker(9, Bytes::from_static(b"job"));
    /// assert_eq!(&err.into_data()[..], b"job");
    /// ```
    pub fn into_data(self) -> Bytes {
        match self {
            SendError::Closed(_, d)
            | SendError::BufferFull(_, d)
            | SendError::NotLocal(_, d)
            | SendError::NoSocket(_, d)
            | SendError::Io(_, d)
            | SendError::NoWorker(_, d)
            | SendError::ShuttingDown(d)
            | SendError::Unreachable(_, d)
            | SendError::WorkersUnreachable(_, d)
            | SendError::Cluster(_, d) => d,
        }
    }
}

/// Why a running server could not be reached.
///
/// # Examples
///
/// ```
/// use rswoole::control::{ControlError, Master};
/// let err = Master::open("/nonexistent/app.pid").unwrap_err();
/// assert!(matches!(err, ControlError::Missing(_)));
/// assert!(err.to_string().contains("is the server running"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// The master refused a command (`reload-certs` with a bad certificate: the old one
    /// stays), with its reason.
    #[error("{command} refused: {reason}")]
    Refused {
        /// The command.
        command: String,
        /// The master's reason.
        reason: String,
    },
    /// No pid file: the server is not running, or was started with another `pid_file`.
    #[error("pid file {0} does not exist: is the server running, with this pid_file?")]
    Missing(PathBuf),
    /// The pid file does not hold a pid.
    #[error("pid file {path} does not hold a pid (it has {content:?})")]
    Malformed {
        /// The pid file.
        path: PathBuf,
        /// What it holds.
        content: String,
    },
    /// The pid file is left over from a server that is gone (crashed or killed); delete it.
    #[error("stale pid file {path}: process {pid} is gone (the server crashed or was killed); remove the file")]
    Stale {
        /// The pid file.
        path: PathBuf,
        /// The pid it names.
        pid: i32,
    },
    /// The pid is alive but is not an rswoole master (the pid was reused); nothing is signalled.
    #[error("pid file {path} names process {pid}, which is not an rswoole master (it is {cmdline:?}); refusing to signal it")]
    NotRswoole {
        /// The pid file.
        path: PathBuf,
        /// The pid it names.
        pid: i32,
        /// That process's command line.
        cmdline: String,
    },
    /// No such verb in [`VERBS`](crate::control::VERBS) (or it sends no signal).
    #[error("unknown verb {0:?}")]
    UnknownVerb(String),
    /// The server did not stop in time.
    #[error("process {pid} still runs after {waited:?}")]
    Timeout {
        /// The master's pid.
        pid: i32,
        /// How long we waited.
        waited: Duration,
    },
    /// `rswoole upgrade`: the new binary did not take over; the old master keeps serving.
    #[error("upgrade failed, the running server (pid {pid}) keeps serving: {reason}")]
    UpgradeFailed {
        /// The master that keeps serving.
        pid: i32,
        /// Why the new master did not start (its start-up error, its exit status, a timeout).
        reason: String,
    },
    /// An OS call failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
}

/// Why [`Handle::close`](crate::Handle::close), [`Handle::bind`](crate::Handle::bind) or
/// [`Handle::disconnect`](crate::Handle::disconnect) did nothing.
///
/// # Examples
///
/// ```
/// use rswoole::{ConnError, ConnId};
/// let err = ConnError::NotOpen(ConnId(7));
/// assert_eq!(err.to_string(), "connection 7 is not open (closed, closing or unknown)");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnError {
    /// The connection is closed, already closing, or the id never existed.
    #[error("connection {0} is not open (closed, closing or unknown)")]
    NotOpen(ConnId),
    /// `bind`: the connection is already bound to this uid (a connection binds once).
    #[error("connection {0} is already bound to uid {1}")]
    AlreadyBound(ConnId, u32),
    /// `bind`: uid 0 means "not bound" and cannot be bound to.
    #[error("uid 0 cannot be bound (it means \"not bound\")")]
    InvalidUid,
    /// [`Mode::Base`](crate::Mode::Base): the connection belongs to another worker, which
    /// could not be asked (`close` of another worker's connection; `disconnect` when its
    /// queue is full). A worker that died or is being replaced is not this: its connections
    /// are [`ConnError::NotOpen`].
    #[error("the worker that owns connection {0} cannot be reached")]
    Unreachable(ConnId),
    /// This worker is shutting down: its way to the rest of the server is closed.
    #[error("this worker is shutting down")]
    ShuttingDown,
}

/// Why [`Handle::clear`](crate::Handle::clear) did nothing.
///
/// # Examples
///
/// ```
/// use rswoole::{TimerError, TimerId};
/// let err = TimerError::NotActive(TimerId(3));
/// assert!(err.to_string().contains("timer 3"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TimerError {
    /// The timer already fired (a one-shot `after`), was cleared, or never existed here
    /// (timers belong to the process that made them).
    #[error("timer {0} is not active (it fired, was cleared, or belongs to another process)")]
    NotActive(TimerId),
}
