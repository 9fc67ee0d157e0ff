//! The error types of the HTTP/1 codec: cheap, fieldless and `Copy`.
//!
//! Every variant maps to the HTTP status the server should answer with ([`ParseError::status`])
//! and to a short reason ([`ParseError::reason`]). The `Display` text is the reason; don't
//! match on it, match on the variant.

use std::fmt;

/// Why a request could not be decoded.
///
/// Each variant is a rejection: the server should answer with [`status`](Self::status) (when
/// nothing of a response has been written yet) and then **close the connection**. After an
/// error the byte stream can no longer be framed reliably, so the decoder refuses to go on:
/// every later [`decode`](super::RequestDecoder::decode) returns the same error.
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use rswoole_codec::http1::{ParseError, RequestDecoder};
///
/// let mut dec = RequestDecoder::default();
/// let mut buf = BytesMut::from("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n");
/// let err = dec.decode(&mut buf).unwrap_err();
/// assert_eq!(err, ParseError::InvalidContentLength);
/// assert_eq!(err.status(), 400);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ParseError {
    /// The request line is malformed (bad method token, bad spacing, missing target). 400.
    RequestLine,
    /// The request target is not origin-, absolute-, authority- or asterisk-form, or it
    /// carries userinfo. 400.
    InvalidUri,
    /// The HTTP version is neither `HTTP/1.0` nor `HTTP/1.1`. 505.
    Version,
    /// A header line is malformed: bad name token, whitespace before the colon, a control
    /// character in the value, or a stray CR. 400.
    Header,
    /// A header line starts with whitespace (obsolete line folding, RFC 9112 §5.2). 400.
    ObsFold,
    /// The request line and headers together exceed [`Limits::max_head_bytes`]. 431.
    ///
    /// [`Limits::max_head_bytes`]: super::Limits::max_head_bytes
    HeadTooLarge,
    /// More header lines than [`Limits::max_headers`]. 431.
    ///
    /// [`Limits::max_headers`]: super::Limits::max_headers
    TooManyHeaders,
    /// The request target is longer than [`Limits::max_uri_len`]. 414.
    ///
    /// [`Limits::max_uri_len`]: super::Limits::max_uri_len
    UriTooLong,
    /// The body is longer than [`Limits::max_body`] (`package_max_length`). 413.
    ///
    /// [`Limits::max_body`]: super::Limits::max_body
    BodyTooLarge,
    /// `Transfer-Encoding` is anything but exactly `chunked`. 501.
    UnsupportedTransferEncoding,
    /// `Transfer-Encoding` in an HTTP/1.0 request (RFC 9112 §6.1). 400.
    TransferEncodingInHttp10,
    /// Both `Content-Length` and `Transfer-Encoding` are present (a smuggling shape). 400.
    ContentLengthWithTransferEncoding,
    /// `Content-Length` appears more than once, even with equal values. 400.
    DuplicateContentLength,
    /// `Content-Length` is not a plain run of decimal digits that fits a `u64`
    /// (`+5`, `-1`, `1,2`, empty). 400.
    InvalidContentLength,
    /// `Host` appears more than once (RFC 9112 §3.2). 400.
    DuplicateHost,
    /// An HTTP/1.1 request has no `Host` header (RFC 9112 §3.2: a server MUST answer 400),
    /// whatever the form of its target. HTTP/1.0 requests need none. 400.
    MissingHost,
    /// A chunk size is not hexadecimal. 400.
    InvalidChunkSize,
    /// A chunk size does not fit a `u64`. 400.
    ChunkSizeOverflow,
    /// The chunk framing is broken: a missing CRLF after a chunk size or chunk data, or a bare
    /// LF inside a chunk extension. 400.
    InvalidChunk,
    /// The chunk extensions of one body add up to more than
    /// [`Limits::max_chunk_extensions`]. 400.
    ///
    /// [`Limits::max_chunk_extensions`]: super::Limits::max_chunk_extensions
    ChunkExtensionsTooLarge,
    /// The trailer section is malformed. 400.
    InvalidTrailer,
    /// The trailer section is larger than [`Limits::max_trailer_bytes`] or has more than
    /// [`Limits::max_headers`] fields. 431.
    ///
    /// [`Limits::max_trailer_bytes`]: super::Limits::max_trailer_bytes
    /// [`Limits::max_headers`]: super::Limits::max_headers
    TrailersTooLarge,
}

impl ParseError {
    /// The HTTP status code the server should answer with before closing.
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_codec::http1::ParseError;
    /// assert_eq!(ParseError::UriTooLong.status(), 414);
    /// assert_eq!(ParseError::UnsupportedTransferEncoding.status(), 501);
    /// ```
    pub const fn status(self) -> u16 {
        use ParseError::*;
        match self {
            Version => 505,
            HeadTooLarge | TooManyHeaders | TrailersTooLarge => 431,
            UriTooLong => 414,
            BodyTooLarge => 413,
            UnsupportedTransferEncoding => 501,
            RequestLine
            | InvalidUri
            | Header
            | ObsFold
            | TransferEncodingInHttp10
            | ContentLengthWithTransferEncoding
            | DuplicateContentLength
            | InvalidContentLength
            | DuplicateHost
            | MissingHost
            | InvalidChunkSize
            | ChunkSizeOverflow
            | InvalidChunk
            | ChunkExtensionsTooLarge
            | InvalidTrailer => 400,
        }
    }

    /// A short, human-readable reason, fit for a log line or a plain-text error body.
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_codec::http1::ParseError;
    /// assert_eq!(ParseError::BodyTooLarge.reason(), "request body too large");
    /// assert_eq!(ParseError::BodyTooLarge.to_string(), "request body too large");
    /// ```
    pub const fn reason(self) -> &'static str {
        use ParseError::*;
        match self {
            RequestLine => "malformed request line",
            InvalidUri => "invalid request target",
            Version => "unsupported HTTP version",
            Header => "malformed header line",
            ObsFold => "obsolete line folding in header",
            HeadTooLarge => "request header section too large",
            TooManyHeaders => "too many header fields",
            UriTooLong => "request target too long",
            BodyTooLarge => "request body too large",
            UnsupportedTransferEncoding => "unsupported transfer-encoding",
            TransferEncodingInHttp10 => "transfer-encoding in HTTP/1.0 request",
            ContentLengthWithTransferEncoding => "both content-length and transfer-encoding",
            DuplicateContentLength => "duplicate content-length",
            InvalidContentLength => "invalid content-length",
            DuplicateHost => "duplicate host header",
            MissingHost => "missing host header",
            InvalidChunkSize => "invalid chunk size",
            ChunkSizeOverflow => "chunk size overflow",
            InvalidChunk => "malformed chunk framing",
            ChunkExtensionsTooLarge => "chunk extensions too large",
            InvalidTrailer => "malformed trailer section",
            TrailersTooLarge => "trailer section too large",
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for ParseError {}

/// Why a response head (or a `Set-Cookie` value) could not be encoded.
///
/// These are caller bugs or hostile input reaching the response: a CR or LF in a header is
/// header injection and is refused rather than escaped.
///
/// # Examples
///
/// ```
/// use rswoole_codec::http1::{EncodeError, ResponseHead};
///
/// let mut head = ResponseHead::new(200);
/// let err = head.header("x-user", "a\r\nSet-Cookie: evil=1").unwrap_err();
/// assert_eq!(err, EncodeError::InvalidHeaderValue);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EncodeError {
    /// The status code is outside `100..=999`.
    InvalidStatus,
    /// A header name is empty or not an RFC 9110 token.
    InvalidHeaderName,
    /// A header value (or reason phrase, or date) contains CR, LF or NUL.
    InvalidHeaderValue,
    /// A cookie name is empty or contains one of `=,; \t\r\n\x0b\x0c` (PHP's rule).
    InvalidCookieName,
    /// A raw (not percent-encoded) cookie value contains one of `,; \t\r\n\x0b\x0c`.
    InvalidCookieValue,
    /// A cookie `Path`, `Domain` or `Expires` contains one of `,; \t\r\n\x0b\x0c`.
    InvalidCookieAttribute,
    /// `Partitioned` was set without `Secure` (browsers drop such cookies; PHP refuses them).
    PartitionedWithoutSecure,
}

impl EncodeError {
    /// A short, human-readable reason.
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_codec::http1::EncodeError;
    /// assert_eq!(EncodeError::InvalidHeaderName.reason(), "invalid header name");
    /// ```
    pub const fn reason(self) -> &'static str {
        match self {
            EncodeError::InvalidStatus => "status code out of range",
            EncodeError::InvalidHeaderName => "invalid header name",
            EncodeError::InvalidHeaderValue => "header value contains CR, LF or NUL",
            EncodeError::InvalidCookieName => "invalid cookie name",
            EncodeError::InvalidCookieValue => "invalid raw cookie value",
            EncodeError::InvalidCookieAttribute => "invalid cookie attribute",
            EncodeError::PartitionedWithoutSecure => "partitioned cookie without secure",
        }
    }
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for EncodeError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_small_and_copy() {
        assert_eq!(std::mem::size_of::<ParseError>(), 1);
        assert_eq!(std::mem::size_of::<EncodeError>(), 1);
        let e = ParseError::BodyTooLarge;
        let f = e;
        assert_eq!(e.to_string(), f.reason());
    }
}
