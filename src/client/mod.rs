//! Clients for rswoole (and any other) servers, as in Swoole's `Swoole\Client` (seed §6):
//! [`SyncClient`] blocks the calling thread (plain `std::net`), [`Client`] is async (tokio).
//!
//! Both speak TCP or UDP ([`SockType`]), connect with a timeout, `send`, `recv` and `close`,
//! and fail with a typed [`ClientError`]. Over TCP, `recv` returns whole messages cut out with
//! the same [`Framing`] options a server uses ([`ClientConfig::framing`]): with EOF or length
//! framing one `recv` is exactly one message (header and EOF included, as the server's
//! `on_receive` sees it) however the bytes arrived; raw (the default) returns what one read
//! got. [`send_frame`](SyncClient::send_frame) adds the header or EOF for you. Over UDP one
//! `recv` is one datagram.
//!
//! The timeout given to `connect` also bounds each later `send` and `recv` (as in Swoole);
//! change it with `set_timeout`.
//!
//! # Examples
//! Talk to `examples/framed_echo.rs --framing length`:
//! ```no_run
//! use std::time::Duration;
//! use rswoole::client::{ClientConfig, SyncClient};
//! use rswoole::{Framing, LengthSpec, LengthType, SockType};
//!
//! # fn main() -> Result<(), rswoole::client::ClientError> {
//! let config = ClientConfig {
//!     framing: Framing::Length(LengthSpec::new(LengthType::U32Be, 0, 4)),
//!     ..Default::default()
//! };
//! let mut client = SyncClient::connect_with(
//!     SockType::Tcp, "127.0.0.1:9501", Duration::from_secs(1), config)?;
//! client.send_frame(b"hello")?;            // sends \0\0\0\x05hello
//! let reply = client.recv()?;              // one whole message, header included
//! assert_eq!(&reply[4..], b"Server: hello");
//! client.close();
//! # Ok(())
//! # }
//! ```

mod error;
mod framer;
mod sync;
mod tls;
mod tokio_client;

#[cfg(test)]
mod tests;

pub use error::ClientError;
pub use sync::SyncClient;
pub use tls::ClientTls;
pub use tokio_client::Client;

use crate::base::settings::DEFAULT_PACKAGE_MAX_LENGTH;
pub use crate::base::SockType;
use rswoole_codec::stream::Framing;

/// Largest single read (and UDP datagram) a client takes: 64 KiB.
pub const READ_SIZE: usize = 64 * 1024;

/// How a client cuts what it receives into messages.
///
/// # Default
/// [`Framing::Raw`] and [`DEFAULT_PACKAGE_MAX_LENGTH`] (2 MiB).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use rswoole::client::{ClientConfig, ClientError, SyncClient};
/// use rswoole::{Framing, SockType};
///
/// let config = ClientConfig {
///     framing: Framing::Eof { eof: b"\n".to_vec(), split: true },
///     package_max_length: 64 * 1024,
/// };
/// assert_eq!(config.package_max_length, 65_536);
/// // Settings that cannot work are refused before connecting:
/// let bad = ClientConfig { framing: Framing::Eof { eof: Vec::new(), split: true }, ..config };
/// let err = SyncClient::connect_with(SockType::Tcp, "127.0.0.1:9", Duration::from_secs(1), bad);
/// assert!(matches!(err, Err(ClientError::Config(_))));
/// ```
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Same meaning as the server's [`Settings::framing`](crate::Settings::framing). Ignored
    /// for UDP.
    pub framing: Framing,
    /// Longest accepted message; a longer one fails `recv` with
    /// [`ClientError::Frame`] with [`FrameError::TooLong`].
    pub package_max_length: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            framing: Framing::Raw,
            package_max_length: DEFAULT_PACKAGE_MAX_LENGTH,
        }
    }
}

pub use rswoole_codec::stream::{ConfigError, FrameError};
