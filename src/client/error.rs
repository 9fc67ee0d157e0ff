//! [`ClientError`].

use std::io;

use rswoole_codec::stream::{ConfigError, FrameError};

/// Why a client call failed.
///
/// After [`Closed`](ClientError::Closed) or [`Frame`](ClientError::Frame) the client is
/// closed: every later call fails with `Closed`. After [`Timeout`](ClientError::Timeout) it
/// stays usable (a message that was half received is kept and completed by the next `recv`).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use rswoole::client::{ClientError, SyncClient};
///
/// // A port nobody listens on: the connection is refused.
/// let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
/// match SyncClient::connect(("127.0.0.1", port), Duration::from_secs(1)) {
///     Err(ClientError::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused),
///     other => panic!("expected a refusal, got {other:?}"),
/// }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The connect, send or receive did not finish within the client's timeout.
    #[error("timed out")]
    Timeout,
    /// The peer closed the connection (or reset it), or the client was closed.
    #[error("connection closed")]
    Closed,
    /// The peer sent data that breaks the framing (too long, bad length): the stream is out of
    /// sync, so the client closed the connection.
    #[error("bad frame from the peer: {0}")]
    Frame(#[from] FrameError),
    /// [`ClientConfig`](super::ClientConfig) cannot work (e.g. an empty EOF).
    #[error("invalid framing settings: {0}")]
    Config(#[from] ConfigError),
    /// TLS: a bad CA or client certificate file, or a failed handshake (the server's
    /// certificate does not verify, the server wants a client certificate...).
    #[error("TLS: {0}")]
    Tls(String),
    /// Any other OS error (connection refused, unreachable, address did not resolve…).
    #[error("{0}")]
    Io(io::Error),
}

impl From<io::Error> for ClientError {
    fn from(e: io::Error) -> Self {
        use io::ErrorKind::*;
        match e.kind() {
            TimedOut | WouldBlock => ClientError::Timeout,
            BrokenPipe | ConnectionReset | ConnectionAborted | UnexpectedEof | NotConnected => {
                ClientError::Closed
            }
            _ => ClientError::Io(e),
        }
    }
}

/// `Result` with [`ClientError`].
pub(crate) type ClientResult<T> = Result<T, ClientError>;
