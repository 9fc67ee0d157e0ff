//! Error types. Each says what went wrong and, where it can, what to do about it.

use std::io;
use std::net::SocketAddr;

use bytes::Bytes;

use crate::ConnId;

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
///     server.set(Settings { worker_num: 2, ..Default::default() });
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
            | SendError::NoWorker(_, d) => d,
        }
    }
}
