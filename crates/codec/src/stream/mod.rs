//! Swoole's stream framing for TCP and Unix-stream servers and clients: raw, EOF and length
//! prefix.
//!
//! TCP delivers bytes, not messages: one read may hold many messages, and one message may
//! take many reads. Swoole's `open_eof_check`, `open_eof_split`, `open_length_check` and
//! `package_length_func` settings say where messages end; this module implements them with no
//! I/O, so the server's reactor only appends what it reads to a buffer and asks for messages.
//!
//! - [`StreamConfig`] holds a [`Framing`] ([`Raw`](Framing::Raw), [`Eof`](Framing::Eof),
//!   [`Length`](Framing::Length) with a [`LengthSpec`], or [`LengthFn`](Framing::LengthFn)
//!   with a [`LengthFn`]) and `package_max_length`; [`StreamConfig::validate`] rejects
//!   settings that cannot work ([`ConfigError`]).
//! - [`Decoder`] cuts messages off the front of a `BytesMut` without copying them; it is
//!   resumable and never rescans what it has already looked at.
//! - [`encode_length`], [`encode_length_header`] and [`encode_eof`] build packets the other
//!   side's decoder will cut out again.
//! - [`FrameError`] says why input was rejected: too long, or a bad length.
//!
//! As in Swoole, a decoded message includes its header and its EOF bytes.
//!
//! # Examples
//!
//! A length-prefixed protocol (Swoole: `package_length_type => 'N'`,
//! `package_length_offset => 0`, `package_body_offset => 4`):
//!
//! ```
//! use bytes::BytesMut;
//! use rswoole_codec::stream::{encode_length, Decoder, Framing, LengthSpec, LengthType, StreamConfig};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let spec = LengthSpec::new(LengthType::U32Be, 0, 4);
//! let mut decoder = Decoder::new(&StreamConfig::new(Framing::Length(spec)))?;
//!
//! // A client encodes two packets...
//! let mut wire = BytesMut::new();
//! encode_length(&spec, b"hello", &mut wire)?;
//! encode_length(&spec, b"world", &mut wire)?;
//!
//! // ...and the server receives them in pieces.
//! let mut buf = BytesMut::new();
//! let mut messages = Vec::new();
//! for piece in wire.chunks(3) {
//!     buf.extend_from_slice(piece);
//!     while let Some(message) = decoder.decode(&mut buf)? {
//!         messages.push(message);
//!     }
//! }
//! assert_eq!(messages, [&b"\0\0\0\x05hello"[..], &b"\0\0\0\x05world"[..]]);
//! # Ok(())
//! # }
//! ```

mod config;
mod decode;
mod encode;
mod error;

#[cfg(test)]
mod tests;

pub use config::{
    ConfigError, Framing, LengthSpec, LengthType, StreamConfig, DEFAULT_PACKAGE_MAX_LENGTH,
    MAX_EOF_LEN,
};
pub use decode::{Decoder, LengthFn, LengthResult};
pub use encode::{encode_eof, encode_length, encode_length_header};
pub use error::FrameError;
