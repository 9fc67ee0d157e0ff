//! HTTP/1.x as I/O-free codecs: bytes in, events out.
//!
//! The server reads from a socket into a `BytesMut` and hands it to a per-connection
//! [`RequestDecoder`], which yields one [`Event`] at a time: [`Event::Head`] with a
//! [`RequestHead`], then the body as [`Event::Body`] chunks as they arrive (never buffered
//! whole), then [`Event::End`] (with trailers for chunked bodies). Pipelined requests follow
//! on the same buffer. Anything malformed or over a [`Limits`] value is a [`ParseError`]
//! whose [`status`](ParseError::status) is the answer to send before closing the connection.
//!
//! Responses are written with [`ResponseHead`], which picks the framing
//! (`Content-Length`, chunked, or close-delimited for HTTP/1.0), and [`encode_chunk`] /
//! [`encode_last_chunk`] for chunked bodies. No clock is read: the caller passes the `Date`.
//!
//! The rest are pure helpers for a request object: [`parse_query`] / [`parse_urlencoded`],
//! [`parse_cookies`] and [`SetCookie`], [`parse_range`], [`accepts_gzip`],
//! [`if_none_match`], and the streaming [`MultipartParser`].
//!
//! Layout, after hyper's `proto/h1`: `request` (head and decoder), `body` (length and
//! chunked framing), `encode` (responses), `multipart`, `util`, `error`.
//!
//! # Examples
//!
//! ```
//! use bytes::BytesMut;
//! use rswoole_codec::http1::{BodyLength, Event, RequestDecoder, ResponseHead};
//!
//! let mut dec = RequestDecoder::default();
//! let mut input = BytesMut::from("GET /hi HTTP/1.1\r\nHost: x\r\n\r\n");
//! let Some(Event::Head(req)) = dec.decode(&mut input)? else { unreachable!() };
//! assert!(matches!(dec.decode(&mut input)?, Some(Event::End { .. })));
//!
//! let mut out = BytesMut::new();
//! let mut head = ResponseHead::new(200);
//! head.keep_alive(req.keep_alive())
//!     .head_request(req.is_head())
//!     .body(BodyLength::Known(2));
//! head.encode(&mut out);
//! out.extend_from_slice(b"hi");
//! assert!(out.starts_with(b"HTTP/1.1 200 OK\r\n"));
//! # Ok::<(), rswoole_codec::http1::ParseError>(())
//! ```

mod body;
mod encode;
mod error;
mod multipart;
mod request;
mod response;
mod util;

#[cfg(test)]
mod tests;

pub use body::Trailers;
pub use encode::{
    decimal, encode_chunk, encode_last_chunk, reason, BodyLength, Framing, ResponseHead,
};
pub use error::{EncodeError, ParseError};
pub use multipart::{
    boundary_from_content_type, MultipartError, MultipartEvent, MultipartParser, PartHead,
    DEFAULT_MAX_PARTS, DEFAULT_MAX_PART_HEADER_BYTES,
};
pub use request::{
    BodyKind, Event, Limits, RequestDecoder, RequestHead, Version, DEFAULT_MAX_BODY,
    DEFAULT_MAX_CHUNK_EXTENSIONS, DEFAULT_MAX_HEADERS, DEFAULT_MAX_HEAD_BYTES,
    DEFAULT_MAX_TRAILER_BYTES, DEFAULT_MAX_URI_LEN,
};
pub use response::{ResponseDecoder, ResponseEvent};
pub use util::{
    accepts_encoding, accepts_gzip, if_match, if_none_match, parse_cookies, parse_query,
    parse_range, parse_urlencoded, percent_decode, percent_decode_str, unsatisfied_range,
    ByteRange, RangeOutcome, SameSite, SetCookie,
};
