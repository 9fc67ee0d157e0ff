//! WebSocket (RFC 6455) with permessage-deflate (RFC 7692), I/O-free.
//!
//! The layers, bottom up:
//!
//! - [`mask`]: word-at-a-time payload masking.
//! - [`frame`]: [`FrameHeader`] parsing (resumable: `Ok(None)` on a partial header),
//!   [`FrameDecoder`] for whole frames, [`encode_frame`].
//! - [`utf8`]: the incremental [`Utf8Validator`] behind fail-fast text validation.
//! - [`close`]: [`CloseCode`] and Close payload parsing.
//! - [`deflate`]: permessage-deflate negotiation ([`DeflateConfig`], [`DeflateParams`]).
//! - [`handshake`]: the HTTP upgrade for servers ([`UpgradeRequest`], [`Accept`]) and clients
//!   ([`generate_key`], [`handshake::validate_response`]), independent of any HTTP type.
//! - [`conn`]: the [`Connection`] state machine that turns bytes into [`WsEvent`]s, answers
//!   Pings and Closes, and fails the connection with the right close code.
//!
//! Errors are fieldless and `Copy`: [`WsError`] (maps to a close code) and [`HandshakeError`]
//! (maps to an HTTP status).
//!
//! # Examples
//!
//! A server upgrade followed by an echo, with no socket:
//!
//! ```
//! use bytes::BytesMut;
//! use rswoole_codec::ws::{Connection, UpgradeRequest, WsConfig, WsEvent};
//!
//! let headers: [(&str, &[u8]); 4] = [
//!     ("upgrade", b"websocket"),
//!     ("connection", b"Upgrade"),
//!     ("sec-websocket-key", b"dGhlIHNhbXBsZSBub25jZQ=="),
//!     ("sec-websocket-version", b"13"),
//! ];
//! let config = WsConfig::default();
//! let accept = UpgradeRequest::parse("GET", 1, headers)
//!     .unwrap()
//!     .accept(&[], &config.deflate);
//! let mut response = BytesMut::new();
//! accept.write_response(&mut response); // write this to the socket
//!
//! let mut conn = Connection::server(config, accept.deflate);
//! let mut src = BytesMut::from(&[0x82, 0x82, 0, 0, 0, 0, 1, 2][..]); // binary [1, 2]
//! while let Some(event) = conn.feed(&mut src).unwrap() {
//!     if let WsEvent::Message { kind, data } = event {
//!         conn.send_message(kind, &data).unwrap();
//!     }
//! }
//! assert_eq!(&conn.take_output()[..], &[0x82, 0x02, 1, 2]);
//! ```

pub mod close;
pub mod conn;
pub mod deflate;
pub mod error;
pub mod frame;
pub mod handshake;
pub mod mask;
pub mod utf8;

#[cfg(test)]
mod tests;

pub use close::CloseCode;
pub use conn::{ConnState, Connection, WsConfig, WsEvent};
pub use deflate::{DeflateConfig, DeflateParams};
pub use error::{HandshakeError, WsError};
pub use frame::{encode_frame, Frame, FrameDecoder, FrameHeader, MessageKind, OpCode, Role};
pub use handshake::{accept_key, generate_key, Accept, UpgradeRequest};
pub use utf8::Utf8Validator;
