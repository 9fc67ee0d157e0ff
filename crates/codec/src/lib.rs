//! I/O-free codecs for rswoole: bytes in, frames or events out.
//!
//! Nothing in this crate touches a socket, a file or a clock: every decoder is a resumable
//! state machine that takes a `BytesMut` and returns `Ok(Some(frame))`, `Ok(None)` ("need more
//! bytes", nothing consumed that matters) or an error (the input is malformed). That is what
//! lets the codecs be unit-tested, fuzzed and run under Miri with no I/O.
//!
//! - [`stream`]: the Swoole stream framing options — EOF split and length prefix.
//! - [`http1`]: HTTP/1.1 request parsing (on `httparse`), body decoding and response encoding.
//! - [`ws`]: WebSocket (RFC 6455) frames, handshake, close codes and permessage-deflate.
#![warn(missing_docs)]
#![doc(test(attr(deny(warnings))))]

pub mod http1;
pub mod stream;
pub mod ws;
