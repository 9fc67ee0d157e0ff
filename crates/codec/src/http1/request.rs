//! Request decoding: the head (on `httparse`), the per-connection [`RequestDecoder`] and
//! its [`Limits`].
//!
//! One [`RequestDecoder`] lives for the whole connection. The server appends what it reads to
//! a `BytesMut` and calls [`RequestDecoder::decode`] until it returns `Ok(None)`; each request
//! comes out as one [`Event::Head`], zero or more [`Event::Body`] chunks and one
//! [`Event::End`]. Pipelined requests simply follow: after `End`, the next `Head` is parsed
//! from the bytes that remain.
//!
//! The head is parsed into a stack array of `httparse` headers, the header names are
//! lower-cased in place, and the head bytes are frozen into one [`Bytes`]; a [`RequestHead`]
//! stores only offsets into it, so a small GET costs one `Vec` of offsets and no `String`.

use bytes::{Bytes, BytesMut};

use super::body::{BodyDecoder, BodyEvent, Trailers};
use super::encode::is_tchar;
use super::error::ParseError;

/// Default for [`Limits::max_head_bytes`]: 8 KiB, like nginx's `large_client_header_buffers`.
pub const DEFAULT_MAX_HEAD_BYTES: usize = 8 * 1024;
/// Default for [`Limits::max_uri_len`]: 8 KiB.
pub const DEFAULT_MAX_URI_LEN: usize = 8 * 1024;
/// Default for [`Limits::max_headers`]: 100 header fields (hyper's default).
pub const DEFAULT_MAX_HEADERS: usize = 100;
/// Default for [`Limits::max_body`]: 2 MiB, Swoole's default `package_max_length`.
pub const DEFAULT_MAX_BODY: u64 = 2 * 1024 * 1024;
/// Default for [`Limits::max_chunk_extensions`]: 16 KiB per body (hyper's
/// `CHUNKED_EXTENSIONS_LIMIT`).
pub const DEFAULT_MAX_CHUNK_EXTENSIONS: usize = 16 * 1024;
/// Default for [`Limits::max_trailer_bytes`]: 8 KiB.
pub const DEFAULT_MAX_TRAILER_BYTES: usize = 8 * 1024;

/// Header fields parsed into a stack array before falling back to the heap.
const STACK_HEADERS: usize = 32;

/// The size limits a [`RequestDecoder`] enforces.
///
/// Build it with a struct literal over [`Default`]:
///
/// ```
/// use rswoole_codec::http1::Limits;
/// let limits = Limits { max_body: 50 << 20, ..Limits::default() };
/// assert_eq!(limits.max_head_bytes, 8 * 1024);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest request line plus headers, CRLFs included. Over it:
    /// [`ParseError::HeadTooLarge`] (431). Default is [`DEFAULT_MAX_HEAD_BYTES`].
    /// Values above `u32::MAX` are treated as `u32::MAX`.
    pub max_head_bytes: usize,
    /// Longest request target. Over it: [`ParseError::UriTooLong`] (414), detected even
    /// before the request line is complete. Default is [`DEFAULT_MAX_URI_LEN`].
    pub max_uri_len: usize,
    /// Most header fields in the head (and in the trailers). Over it:
    /// [`ParseError::TooManyHeaders`] (431). Default is [`DEFAULT_MAX_HEADERS`].
    pub max_headers: usize,
    /// Largest body, Swoole's `package_max_length`. A larger `Content-Length` is refused
    /// with the head; a chunked body is refused when a chunk size would cross it. Over it:
    /// [`ParseError::BodyTooLarge`] (413). Default is [`DEFAULT_MAX_BODY`].
    pub max_body: u64,
    /// Total bytes of chunk extensions allowed in one chunked body. Over it:
    /// [`ParseError::ChunkExtensionsTooLarge`] (400). Default is
    /// [`DEFAULT_MAX_CHUNK_EXTENSIONS`].
    pub max_chunk_extensions: usize,
    /// Largest trailer section of a chunked body. Over it: [`ParseError::TrailersTooLarge`]
    /// (431). Default is [`DEFAULT_MAX_TRAILER_BYTES`].
    pub max_trailer_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head_bytes: DEFAULT_MAX_HEAD_BYTES,
            max_uri_len: DEFAULT_MAX_URI_LEN,
            max_headers: DEFAULT_MAX_HEADERS,
            max_body: DEFAULT_MAX_BODY,
            max_chunk_extensions: DEFAULT_MAX_CHUNK_EXTENSIONS,
            max_trailer_bytes: DEFAULT_MAX_TRAILER_BYTES,
        }
    }
}

/// The HTTP version of a request.
///
/// # Examples
///
/// ```
/// use rswoole_codec::http1::Version;
/// assert_eq!(Version::Http10.as_str(), "HTTP/1.0");
/// assert!(Version::Http10 < Version::Http11);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Version {
    /// `HTTP/1.0`.
    Http10,
    /// `HTTP/1.1`.
    Http11,
}

impl Version {
    /// `"HTTP/1.0"` or `"HTTP/1.1"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        }
    }
}

/// How the body of a request is framed.
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use rswoole_codec::http1::{BodyKind, Event, RequestDecoder};
///
/// let kind = |req: &str| {
///     let mut buf = BytesMut::from(req);
///     match RequestDecoder::default().decode(&mut buf) {
///         Ok(Some(Event::Head(h))) => h.body_kind(),
///         other => panic!("{other:?}"),
///     }
/// };
/// assert_eq!(kind("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), BodyKind::None);
/// assert_eq!(kind("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n"), BodyKind::Length(3));
/// assert_eq!(kind("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"), BodyKind::Chunked);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BodyKind {
    /// No `Content-Length` and no `Transfer-Encoding`: the request has no body.
    None,
    /// `Content-Length: N` (N may be 0).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A byte range inside the frozen head buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Span {
    start: u32,
    end: u32,
}

impl Span {
    fn of(base: usize, s: &[u8]) -> Span {
        let start = s.as_ptr() as usize - base;
        Span {
            start: start as u32,
            end: (start + s.len()) as u32,
        }
    }

    fn sub(self, from: usize, to: usize) -> Span {
        Span {
            start: self.start + from as u32,
            end: self.start + to as u32,
        }
    }

    fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }
}

/// The parsed request line and headers of one request.
///
/// All strings borrow from one frozen buffer holding the raw head. Header names are
/// lower-cased; repeated headers are kept, in order.
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use rswoole_codec::http1::{BodyKind, Event, RequestDecoder, Version};
///
/// let mut buf = BytesMut::from(
///     "GET /search?q=rust HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\nAccept: text/html\r\n\r\n",
/// );
/// let Some(Event::Head(head)) = RequestDecoder::default().decode(&mut buf).unwrap() else {
///     unreachable!()
/// };
/// assert_eq!(head.method(), "GET");
/// assert_eq!(head.path(), "/search");
/// assert_eq!(head.query(), Some("q=rust"));
/// assert_eq!(head.version(), Version::Http11);
/// assert_eq!(head.host(), Some("example.com"));
/// assert_eq!(head.header("ACCEPT"), Some(&b"*/*"[..]));
/// assert_eq!(head.get_all("accept").count(), 2);
/// assert_eq!(head.body_kind(), BodyKind::None);
/// assert!(head.keep_alive());
/// ```
#[derive(Clone)]
pub struct RequestHead {
    buf: Bytes,
    method: Span,
    uri: Span,
    /// Empty for an absolute-form target without a path, which means `/`.
    path: Span,
    query: Option<Span>,
    host: Option<Span>,
    version: Version,
    headers: Vec<(Span, Span)>,
    body: BodyKind,
    flags: u8,
}

thread_local! {
    /// Header indexes of dropped heads, reused by the next heads made on this thread: a
    /// server parsing one request after another allocates none per request.
    static SPANS: std::cell::RefCell<Vec<Vec<(Span, Span)>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Heads' header indexes kept per thread for reuse (at most), and the largest kept.
const SPANS_KEPT: usize = 8;
const SPANS_MAX_CAP: usize = 128;

/// An empty header index with room for `n` headers: a reused one when this thread has one.
fn spans_with_capacity(n: usize) -> Vec<(Span, Span)> {
    let spare = SPANS
        .try_with(|p| p.try_borrow_mut().ok().and_then(|mut p| p.pop()))
        .ok()
        .flatten();
    match spare {
        Some(mut v) => {
            v.reserve(n);
            v
        }
        None => Vec::with_capacity(n),
    }
}

impl Drop for RequestHead {
    fn drop(&mut self) {
        let cap = self.headers.capacity();
        if cap == 0 || cap > SPANS_MAX_CAP {
            return;
        }
        let mut v = std::mem::take(&mut self.headers);
        v.clear();
        let _ = SPANS.try_with(|p| {
            if let Ok(mut p) = p.try_borrow_mut() {
                if p.len() < SPANS_KEPT {
                    p.push(v);
                }
            }
        });
    }
}

const KEEP_ALIVE: u8 = 1;
const EXPECT_CONTINUE: u8 = 2;
const UPGRADE_WEBSOCKET: u8 = 4;

impl RequestHead {
    fn str(&self, s: Span) -> &str {
        // httparse validated the method (a token) and the target as UTF-8, and names are
        // tokens; the fallback never fires.
        std::str::from_utf8(&self.buf[s.range()]).unwrap_or("")
    }

    /// The method, as sent (methods are case-sensitive): `"GET"`, `"POST"`, ...
    pub fn method(&self) -> &str {
        self.str(self.method)
    }

    /// Whether the method is `HEAD`, whose response carries headers only.
    pub fn is_head(&self) -> bool {
        &self.buf[self.method.range()] == b"HEAD"
    }

    /// The raw request target, as sent: `/a%20b?x=1`, `http://host/p`, `*` or `host:443`.
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use rswoole_codec::http1::{Event, RequestDecoder};
    ///
    /// let mut buf = BytesMut::from(
    ///     "GET http://example.com/a%20b?x=1 HTTP/1.1\r\nHost: example.com\r\n\r\n",
    /// );
    /// let Some(Event::Head(head)) = RequestDecoder::default().decode(&mut buf)? else { unreachable!() };
    /// assert_eq!(head.uri(), "http://example.com/a%20b?x=1");
    /// assert_eq!((head.path(), head.query()), ("/a%20b", Some("x=1")));
    /// assert_eq!(head.host(), Some("example.com"));
    /// # Ok::<(), rswoole_codec::http1::ParseError>(())
    /// ```
    pub fn uri(&self) -> &str {
        self.str(self.uri)
    }

    /// The path part of the target, not percent-decoded (see
    /// [`percent_decode`](super::percent_decode)).
    ///
    /// For an absolute-form target (`GET http://host/p?q`) this is `/p`, or `/` when the
    /// target has no path; for `OPTIONS *` it is `*`; for `CONNECT host:port` it is the
    /// authority.
    pub fn path(&self) -> &str {
        if self.path.start == self.path.end {
            "/"
        } else {
            self.str(self.path)
        }
    }

    /// The query string after `?` (without the `?` and without any `#fragment`), if the
    /// target has one. Parse it with [`parse_query`](super::parse_query).
    pub fn query(&self) -> Option<&str> {
        self.query.map(|q| self.str(q))
    }

    /// The HTTP version.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The host: the authority of an absolute-form (or CONNECT) target, else the `Host`
    /// header. `None` if neither is there or the header is not UTF-8.
    pub fn host(&self) -> Option<&str> {
        let s = self.host?;
        std::str::from_utf8(&self.buf[s.range()]).ok()
    }

    /// All header fields in order: lower-cased name, raw value (leading and trailing
    /// whitespace removed by the parser).
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use rswoole_codec::http1::{Event, RequestDecoder};
    ///
    /// let mut buf = BytesMut::from(
    ///     "GET / HTTP/1.1\r\nHost: a\r\nX-Id:  7 \r\n\r\n",
    /// );
    /// let Some(Event::Head(head)) = RequestDecoder::default().decode(&mut buf)? else { unreachable!() };
    /// let all: Vec<_> = head.headers().collect();
    /// assert_eq!(all, [("host", &b"a"[..]), ("x-id", &b"7"[..])]);
    /// assert_eq!(head.header_count(), 2);
    /// # Ok::<(), rswoole_codec::http1::ParseError>(())
    /// ```
    pub fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> + '_ {
        self.headers
            .iter()
            .map(|&(n, v)| (self.str(n), &self.buf[v.range()]))
    }

    /// All header fields in order as raw bytes: lower-cased name, value (no UTF-8 check).
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use rswoole_codec::http1::{Event, RequestDecoder};
    ///
    /// let mut buf = BytesMut::from("GET / HTTP/1.1\r\nHost: a\r\nX-Id: 7\r\n\r\n");
    /// let Some(Event::Head(head)) = RequestDecoder::default().decode(&mut buf)? else { unreachable!() };
    /// let all: Vec<_> = head.raw_headers().collect();
    /// assert_eq!(all, [(&b"host"[..], &b"a"[..]), (&b"x-id"[..], &b"7"[..])]);
    /// # Ok::<(), rswoole_codec::http1::ParseError>(())
    /// ```
    pub fn raw_headers(&self) -> impl ExactSizeIterator<Item = (&[u8], &[u8])> + '_ {
        self.headers
            .iter()
            .map(|&(n, v)| (&self.buf[n.range()], &self.buf[v.range()]))
    }

    /// All header fields in order, as [`headers`](Self::headers) gives them, each name and
    /// value a zero-copy [`Bytes`] sharing the head's buffer. Names are lower-cased tokens
    /// (so UTF-8); values are raw.
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use rswoole_codec::http1::{Event, RequestDecoder};
    ///
    /// let mut buf = BytesMut::from("GET / HTTP/1.1\r\nHost: a\r\nX-Id: 7\r\n\r\n");
    /// let Some(Event::Head(head)) = RequestDecoder::default().decode(&mut buf)? else { unreachable!() };
    /// let all: Vec<_> = head.shared_headers().collect();
    /// assert_eq!(all, [("host".into(), "a".into()), ("x-id".into(), "7".into())]);
    /// # Ok::<(), rswoole_codec::http1::ParseError>(())
    /// ```
    pub fn shared_headers(&self) -> impl ExactSizeIterator<Item = (Bytes, Bytes)> + '_ {
        self.headers
            .iter()
            .map(|&(n, v)| (self.buf.slice(n.range()), self.buf.slice(v.range())))
    }

    /// The method, the raw request target and the path (not percent-decoded; `/` for an
    /// absolute-form target without one), each a zero-copy [`Bytes`] sharing the head's
    /// buffer: the same text as [`method`](Self::method), [`uri`](Self::uri) and
    /// [`path`](Self::path) (UTF-8, checked by the parser), without a copy.
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use rswoole_codec::http1::{Event, RequestDecoder};
    ///
    /// let mut buf = BytesMut::from("GET http://a/p%20q?x=1 HTTP/1.1\r\nHost: a\r\n\r\n");
    /// let Some(Event::Head(head)) = RequestDecoder::default().decode(&mut buf)? else { unreachable!() };
    /// let (method, uri, path) = head.shared_line();
    /// assert_eq!((&method[..], &uri[..], &path[..]), (&b"GET"[..], &b"http://a/p%20q?x=1"[..], &b"/p%20q"[..]));
    /// # Ok::<(), rswoole_codec::http1::ParseError>(())
    /// ```
    pub fn shared_line(&self) -> (Bytes, Bytes, Bytes) {
        let path = if self.path.start == self.path.end {
            Bytes::from_static(b"/")
        } else {
            self.buf.slice(self.path.range())
        };
        (
            self.buf.slice(self.method.range()),
            self.buf.slice(self.uri.range()),
            path,
        )
    }

    /// The number of header fields.
    pub fn header_count(&self) -> usize {
        self.headers.len()
    }

    /// The value of the first header called `name` (compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.find(name).map(|v| &self.buf[v.range()])
    }

    fn find(&self, name: &str) -> Option<Span> {
        self.headers
            .iter()
            .find(|(n, _)| self.buf[n.range()].eq_ignore_ascii_case(name.as_bytes()))
            .map(|&(_, v)| v)
    }

    /// The value of the first header called `name`, if it is UTF-8.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        std::str::from_utf8(self.header(name)?).ok()
    }

    /// The value of the first header called `name` as a zero-copy [`Bytes`].
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use rswoole_codec::http1::{Event, RequestDecoder};
    ///
    /// let mut buf = BytesMut::from(
    ///     "GET / HTTP/1.1\r\nHost: a\r\nCookie: a=1\r\n\r\n",
    /// );
    /// let Some(Event::Head(head)) = RequestDecoder::default().decode(&mut buf)? else { unreachable!() };
    /// let cookie = head.header_bytes("cookie").unwrap(); // shares the head's buffer
    /// assert_eq!(cookie, "a=1");
    /// assert_eq!(head.header_str("Cookie"), Some("a=1"));
    /// assert!(head.as_bytes().starts_with(b"GET / HTTP/1.1\r\nhost: a\r\ncookie: a=1"));
    /// # Ok::<(), rswoole_codec::http1::ParseError>(())
    /// ```
    pub fn header_bytes(&self, name: &str) -> Option<Bytes> {
        self.find(name).map(|v| self.buf.slice(v.range()))
    }

    /// The values of every header called `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| self.buf[n.range()].eq_ignore_ascii_case(name.as_bytes()))
            .map(move |&(_, v)| &self.buf[v.range()])
    }

    /// Whether the connection may stay open after this request: HTTP/1.1 unless
    /// `Connection: close`; HTTP/1.0 only with `Connection: keep-alive` (and no `close`).
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use rswoole_codec::http1::{Event, RequestDecoder};
    ///
    /// let mut buf = BytesMut::from(
    ///     "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    /// );
    /// let Some(Event::Head(head)) = RequestDecoder::default().decode(&mut buf)? else { unreachable!() };
    /// assert!(head.keep_alive());
    /// assert!(!head.is_head());
    /// # Ok::<(), rswoole_codec::http1::ParseError>(())
    /// ```
    pub fn keep_alive(&self) -> bool {
        self.flags & KEEP_ALIVE != 0
    }

    /// Whether an HTTP/1.1 client sent `Expect: 100-continue` and waits for
    /// `HTTP/1.1 100 Continue` before sending the body (an HTTP/1.0 client's is ignored,
    /// RFC 9110 §10.1.1).
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use rswoole_codec::http1::{Event, RequestDecoder};
    ///
    /// let mut buf = BytesMut::from(
    ///     "PUT /f HTTP/1.1\r\nHost: a\r\nContent-Length: 9000\r\nExpect: 100-continue\r\n\r\n",
    /// );
    /// let Some(Event::Head(head)) = RequestDecoder::default().decode(&mut buf)? else { unreachable!() };
    /// assert!(head.expect_continue()); // answer "HTTP/1.1 100 Continue\r\n\r\n" first
    /// assert_eq!(head.content_length(), Some(9000));
    /// # Ok::<(), rswoole_codec::http1::ParseError>(())
    /// ```
    pub fn expect_continue(&self) -> bool {
        self.flags & EXPECT_CONTINUE != 0
    }

    /// Whether this is a WebSocket opening handshake: an HTTP/1.1 `GET` with `Upgrade`
    /// containing `websocket` and `Connection` containing `upgrade`. The `Sec-WebSocket-*`
    /// checks belong to the `ws` handshake.
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use rswoole_codec::http1::{Event, RequestDecoder};
    ///
    /// let mut buf = BytesMut::from(
    ///     "GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    /// );
    /// let Some(Event::Head(head)) = RequestDecoder::default().decode(&mut buf)? else { unreachable!() };
    /// assert!(head.is_upgrade_websocket());
    /// # Ok::<(), rswoole_codec::http1::ParseError>(())
    /// ```
    pub fn is_upgrade_websocket(&self) -> bool {
        self.flags & UPGRADE_WEBSOCKET != 0
    }

    /// How the body is framed.
    pub fn body_kind(&self) -> BodyKind {
        self.body
    }

    /// The `Content-Length`, if the body is framed by one.
    pub fn content_length(&self) -> Option<u64> {
        match self.body {
            BodyKind::Length(n) => Some(n),
            _ => None,
        }
    }

    /// The raw head bytes (request line, headers, final empty line), names lower-cased.
    pub fn as_bytes(&self) -> &Bytes {
        &self.buf
    }

    /// Appends what the parse found (spans into [`as_bytes`](Self::as_bytes), version, body
    /// framing, flags) to `dst`, [`INDEX_FIXED`](Self::INDEX_FIXED) + 16 bytes per header:
    /// with the raw head, [`from_index`](Self::from_index) rebuilds this head in another
    /// process without parsing it again.
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use rswoole_codec::http1::{Event, RequestDecoder, RequestHead};
    ///
    /// let mut buf = BytesMut::from("GET /a?b=1 HTTP/1.1\r\nHost: x\r\n\r\n");
    /// let Some(Event::Head(head)) = RequestDecoder::default().decode(&mut buf)? else { unreachable!() };
    /// let mut index = Vec::new();
    /// head.write_index(&mut index);
    /// let copy = RequestHead::from_index(head.as_bytes().clone(), &index).expect("valid index");
    /// assert_eq!((copy.path(), copy.query(), copy.host()), ("/a", Some("b=1"), Some("x")));
    /// # Ok::<(), rswoole_codec::http1::ParseError>(())
    /// ```
    pub fn write_index(&self, dst: &mut impl bytes::BufMut) {
        // Built on the stack and appended in a few slices: a `put_*` per field would check
        // `dst`'s capacity ~30 times for a small request.
        let (body_tag, body_len) = match self.body {
            BodyKind::None => (0, 0),
            BodyKind::Length(n) => (1, n),
            BodyKind::Chunked => (2, 0),
        };
        let present = u8::from(self.query.is_some()) | (u8::from(self.host.is_some()) << 1);
        let mut fixed = [0u8; Self::INDEX_FIXED];
        fixed[0] = match self.version {
            Version::Http10 => 0,
            Version::Http11 => 1,
        };
        fixed[1] = self.flags;
        fixed[2] = body_tag;
        fixed[3] = present;
        fixed[4..12].copy_from_slice(&body_len.to_le_bytes());
        let line = [
            self.method,
            self.uri,
            self.path,
            self.query.unwrap_or_default(),
            self.host.unwrap_or_default(),
        ];
        for (at, s) in fixed[12..52].chunks_exact_mut(8).zip(line) {
            put_span(at, s);
        }
        fixed[52..56].copy_from_slice(&(self.headers.len() as u32).to_le_bytes());
        dst.put_slice(&fixed);
        const PER: usize = 16;
        for part in self.headers.chunks(PER) {
            let mut buf = [0u8; PER * 16];
            for (at, &(n, v)) in buf.chunks_exact_mut(16).zip(part) {
                put_span(&mut at[..8], n);
                put_span(&mut at[8..], v);
            }
            dst.put_slice(&buf[..part.len() * 16]);
        }
    }

    /// Moves the head onto a copy of its bytes that `copy` makes (the spans stay: the copy
    /// must hold the same bytes); the old buffer is let go. A server that keeps heads for a
    /// while uses it so that a head does not pin the larger buffer it was read into. A copy of
    /// another length is refused (the head is left as it was).
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::{Bytes, BytesMut};
    /// use rswoole_codec::http1::{Event, RequestDecoder};
    ///
    /// let mut buf = BytesMut::from("GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
    /// let Some(Event::Head(mut head)) = RequestDecoder::default().decode(&mut buf)? else { unreachable!() };
    /// head.rehome(Bytes::copy_from_slice);
    /// assert_eq!((head.path(), head.host()), ("/a", Some("x")));
    /// # Ok::<(), rswoole_codec::http1::ParseError>(())
    /// ```
    pub fn rehome(&mut self, copy: impl FnOnce(&[u8]) -> Bytes) {
        let new = copy(&self.buf);
        if new.len() == self.buf.len() {
            self.buf = new;
        }
    }

    /// Bytes of a [`write_index`](Self::write_index) output before its headers.
    pub const INDEX_FIXED: usize = 56;

    /// Bytes [`write_index`](Self::write_index) writes for this head.
    pub fn index_len(&self) -> usize {
        Self::INDEX_FIXED + 16 * self.headers.len()
    }

    /// Rebuilds the head that wrote `index` ([`write_index`](Self::write_index)) over its raw
    /// bytes `buf` (what [`as_bytes`](Self::as_bytes) returned). `None` if the index is
    /// malformed or does not fit `buf` (a span out of bounds, an unknown version or body
    /// framing, a header count the index cannot hold, a method or target that is not UTF-8).
    pub fn from_index(buf: Bytes, index: &[u8]) -> Option<RequestHead> {
        let (fixed, rest) = index.split_first_chunk::<{ Self::INDEX_FIXED }>()?;
        let version = match fixed[0] {
            0 => Version::Http10,
            1 => Version::Http11,
            _ => return None,
        };
        let flags = fixed[1];
        let body_tag = fixed[2];
        let present = fixed[3];
        let body_len = u64::from_le_bytes(fixed[4..12].try_into().ok()?);
        let body = match body_tag {
            0 => BodyKind::None,
            1 => BodyKind::Length(body_len),
            2 => BodyKind::Chunked,
            _ => return None,
        };
        let len = buf.len();
        let span = |b: &[u8]| -> Option<Span> {
            let s = get_span(b);
            (s.start <= s.end && s.end as usize <= len).then_some(s)
        };
        let method = span(&fixed[12..20])?;
        let uri = span(&fixed[20..28])?;
        let path = span(&fixed[28..36])?;
        let query = span(&fixed[36..44])?;
        let host = span(&fixed[44..52])?;
        let n = u32::from_le_bytes(fixed[52..56].try_into().ok()?) as usize;
        if rest.len() != n.checked_mul(16)? {
            return None;
        }
        let mut headers = spans_with_capacity(n);
        for h in rest.chunks_exact(16) {
            headers.push((span(&h[..8])?, span(&h[8..])?));
        }
        let utf8 = |s: Span| {
            let b = &buf[s.range()];
            b.is_ascii() || std::str::from_utf8(b).is_ok()
        };
        if !utf8(method) || !utf8(uri) {
            return None;
        }
        Some(RequestHead {
            method,
            uri,
            path,
            query: (present & 1 != 0).then_some(query),
            host: (present & 2 != 0).then_some(host),
            version,
            headers,
            body,
            flags,
            buf,
        })
    }
}

/// Writes `s` into the 8 bytes of `at` (start, end: u32 LE each), as
/// [`RequestHead::write_index`] lays spans out.
fn put_span(at: &mut [u8], s: Span) {
    at[..4].copy_from_slice(&s.start.to_le_bytes());
    at[4..8].copy_from_slice(&s.end.to_le_bytes());
}

/// The span [`put_span`] wrote into the 8 bytes of `b`.
fn get_span(b: &[u8]) -> Span {
    let word = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    Span {
        start: word(0),
        end: word(4),
    }
}

impl std::fmt::Debug for RequestHead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        struct Headers<'a>(&'a RequestHead);
        impl std::fmt::Debug for Headers<'_> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_list()
                    .entries(
                        self.0
                            .headers()
                            .map(|(n, v)| (n, String::from_utf8_lossy(v))),
                    )
                    .finish()
            }
        }
        f.debug_struct("RequestHead")
            .field("method", &self.method())
            .field("uri", &self.uri())
            .field("version", &self.version)
            .field("headers", &Headers(self))
            .field("body", &self.body)
            .field("keep_alive", &self.keep_alive())
            .finish()
    }
}

/// One step of a request, as produced by [`RequestDecoder::decode`].
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use rswoole_codec::http1::{Event, RequestDecoder};
///
/// let mut dec = RequestDecoder::default();
/// let mut buf = BytesMut::from("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhel");
/// assert!(matches!(dec.decode(&mut buf)?, Some(Event::Head(_))));
/// assert!(matches!(dec.decode(&mut buf)?, Some(Event::Body(b)) if b == "hel"));
/// assert!(dec.decode(&mut buf)?.is_none()); // the rest has not arrived
/// buf.extend_from_slice(b"lo");
/// assert!(matches!(dec.decode(&mut buf)?, Some(Event::Body(b)) if b == "lo"));
/// assert!(matches!(dec.decode(&mut buf)?, Some(Event::End { trailers }) if trailers.is_empty()));
/// # Ok::<(), rswoole_codec::http1::ParseError>(())
/// ```
#[derive(Debug, Clone)]
pub enum Event {
    /// The request line and headers. Always first.
    Head(RequestHead),
    /// Some body bytes, as they arrived (never empty). Zero or more of these follow `Head`.
    Body(Bytes),
    /// The request is complete. For a chunked body, `trailers` holds the trailer fields
    /// (lower-cased names); otherwise it is empty and allocates nothing.
    End {
        /// Trailer fields of a chunked body.
        trailers: Trailers,
    },
}

/// Where a [`RequestDecoder`] is in the request cycle.
#[derive(Debug, Clone)]
enum State {
    /// Waiting for (the rest of) a request head.
    Head,
    /// Reading the body of the request whose head was returned.
    Body(BodyDecoder),
    /// A rejection was returned; the connection must be closed.
    Failed(ParseError),
}

/// The per-connection, resumable HTTP/1.x request decoder.
///
/// Feed it the connection's read buffer; it returns one [`Event`] per call:
/// `Ok(Some(event))`, `Ok(None)` when it needs more bytes, or a [`ParseError`].
///
/// - While waiting for a head, `Ok(None)` consumes nothing. The head is re-parsed from its
///   start on each call (as hyper does), bounded by [`Limits::max_head_bytes`].
/// - While in a body, body bytes come out as [`Event::Body`] as soon as they arrive (a
///   50 MiB upload is never buffered whole); chunk framing bytes may be consumed and
///   remembered before `Ok(None)`.
/// - A request without a body still yields `End` (on the next call, with no bytes needed).
///
/// Pass the same buffer on every call, appending to it; don't drop unread bytes. After
/// answering a protocol switch (`101` for a WebSocket upgrade, or a `CONNECT` tunnel), stop
/// calling `decode`: the bytes left in the buffer belong to the new protocol.
///
/// # Errors
///
/// Any [`ParseError`] is final: answer with [`ParseError::status`] if no response has been
/// started, then **close the connection**. The decoder keeps returning the same error.
///
/// An HTTP/1.1 request must carry exactly one `Host` header (RFC 9112 §3.2): none is
/// [`ParseError::MissingHost`], two are [`ParseError::DuplicateHost`], both 400. HTTP/1.0
/// requests may omit it.
///
/// Bare LF line endings in the head are accepted, as `httparse` accepts them; the body's
/// chunk framing requires CRLF. Empty lines before a request line are skipped.
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use rswoole_codec::http1::{Event, RequestDecoder};
///
/// let mut dec = RequestDecoder::default();
/// let mut buf = BytesMut::from(
///     "POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
/// );
/// let mut seen = Vec::new();
/// while let Some(ev) = dec.decode(&mut buf).unwrap() {
///     seen.push(match ev {
///         Event::Head(h) => format!("head {} {}", h.method(), h.path()),
///         Event::Body(b) => format!("body {}", String::from_utf8_lossy(&b)),
///         Event::End { trailers } => format!("end {}", trailers.len()),
///     });
/// }
/// assert_eq!(seen, ["head POST /up", "body abc", "end 0", "head GET /", "end 0"]);
/// assert!(dec.is_awaiting_head() && buf.is_empty());
/// ```
#[derive(Debug, Clone)]
pub struct RequestDecoder {
    limits: Limits,
    state: State,
}

impl Default for RequestDecoder {
    fn default() -> Self {
        RequestDecoder::new(Limits::default())
    }
}

impl RequestDecoder {
    /// A decoder enforcing `limits`.
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use rswoole_codec::http1::{Limits, ParseError, RequestDecoder};
    ///
    /// let mut dec = RequestDecoder::new(Limits { max_body: 10, ..Limits::default() });
    /// assert_eq!(dec.limits().max_body, 10);
    /// let mut buf = BytesMut::from("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n");
    /// let err = dec.decode(&mut buf).unwrap_err();
    /// assert_eq!((err, err.status()), (ParseError::BodyTooLarge, 413));
    /// ```
    pub fn new(limits: Limits) -> Self {
        RequestDecoder {
            limits,
            state: State::Head,
        }
    }

    /// The limits this decoder enforces.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Whether the decoder is between requests (waiting for a head). With an empty buffer
    /// this is the idle state in which a keep-alive connection may be closed gracefully.
    pub fn is_awaiting_head(&self) -> bool {
        matches!(self.state, State::Head)
    }

    /// Whether the decoder is inside a request body (or about to return its `End`).
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use rswoole_codec::http1::RequestDecoder;
    ///
    /// let mut dec = RequestDecoder::default();
    /// let mut buf = BytesMut::from("PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\n");
    /// assert!(dec.is_awaiting_head());
    /// dec.decode(&mut buf)?; // the head
    /// assert!(dec.is_in_body() && !dec.is_awaiting_head());
    /// buf.extend_from_slice(b"data");
    /// dec.decode(&mut buf)?; // the body
    /// dec.decode(&mut buf)?; // the end
    /// assert!(dec.is_awaiting_head());
    /// # Ok::<(), rswoole_codec::http1::ParseError>(())
    /// ```
    pub fn is_in_body(&self) -> bool {
        matches!(self.state, State::Body(_))
    }

    /// Whether an error was returned; the connection must then be closed.
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use rswoole_codec::http1::RequestDecoder;
    ///
    /// let mut dec = RequestDecoder::default();
    /// assert!(dec.decode(&mut BytesMut::from("GET / HTTP/2.0\r\n\r\n")).is_err());
    /// assert!(dec.is_failed());
    /// assert!(dec.decode(&mut BytesMut::from("GET / HTTP/1.1\r\nHost: a\r\n\r\n")).is_err()); // for good
    /// ```
    pub fn is_failed(&self) -> bool {
        matches!(self.state, State::Failed(_))
    }

    /// Moves past the [`Event::End`] of the current request when nothing is left before it:
    /// the request had no body (no framing, or `Content-Length: 0`), or all of its
    /// `Content-Length` body has come out as [`Event::Body`]. Such an `End` reads no bytes and
    /// carries no trailers, so a caller that knows the request is whole can take this call
    /// as its `End` (and skip a `decode` round). Returns whether it did; otherwise (a chunked
    /// body, body bytes still to come, between requests, failed) nothing changes.
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use rswoole_codec::http1::{Event, RequestDecoder};
    ///
    /// let mut dec = RequestDecoder::default();
    /// let mut buf = BytesMut::from("GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n");
    /// assert!(matches!(dec.decode(&mut buf)?, Some(Event::Head(h)) if h.path() == "/a"));
    /// assert!(dec.end_if_complete()); // instead of decoding `End`
    /// assert!(!dec.end_if_complete()); // between requests: nothing to end
    /// assert!(matches!(dec.decode(&mut buf)?, Some(Event::Head(h)) if h.path() == "/b"));
    /// # Ok::<(), rswoole_codec::http1::ParseError>(())
    /// ```
    pub fn end_if_complete(&mut self) -> bool {
        if matches!(
            self.state,
            State::Body(BodyDecoder::Length { remaining: 0 })
        ) {
            self.state = State::Head;
            return true;
        }
        false
    }

    /// Decodes the next event from `src`.
    ///
    /// # Errors
    ///
    /// A [`ParseError`] when the input is malformed or over a [`Limits`] value; the
    /// connection must then be closed.
    ///
    /// # Examples
    ///
    /// A head split across two reads:
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use rswoole_codec::http1::{Event, RequestDecoder};
    ///
    /// let mut dec = RequestDecoder::default();
    /// let mut buf = BytesMut::from("GET /a HTTP/1.1\r\nHo");
    /// assert!(dec.decode(&mut buf)?.is_none());
    /// assert_eq!(buf.len(), 19); // nothing consumed
    /// buf.extend_from_slice(b"st: x\r\n\r\n");
    /// let Some(Event::Head(head)) = dec.decode(&mut buf)? else { unreachable!() };
    /// assert_eq!(head.path(), "/a");
    /// # Ok::<(), rswoole_codec::http1::ParseError>(())
    /// ```
    pub fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Event>, ParseError> {
        let result = match &mut self.state {
            State::Failed(e) => return Err(*e),
            State::Head => match parse_head(src, &self.limits) {
                Ok(Some(head)) => {
                    let body = match head.body {
                        BodyKind::None => BodyDecoder::length(0),
                        BodyKind::Length(n) => BodyDecoder::length(n),
                        BodyKind::Chunked => BodyDecoder::chunked(),
                    };
                    self.state = State::Body(body);
                    Ok(Some(Event::Head(head)))
                }
                other => other.map(|_| None),
            },
            State::Body(body) => match body.decode(src, &self.limits) {
                Ok(Some(BodyEvent::Data(b))) => Ok(Some(Event::Body(b))),
                Ok(Some(BodyEvent::Done(trailers))) => {
                    self.state = State::Head;
                    Ok(Some(Event::End { trailers }))
                }
                Ok(None) => Ok(None),
                Err(e) => Err(e),
            },
        };
        if let Err(e) = result {
            self.state = State::Failed(e);
        }
        result
    }
}

/// Parses a head from the front of `src`, splitting it off on success.
///
/// Every decision is a function of `window`, the first `max_head_bytes` bytes, and of
/// whether more bytes than that are buffered; `httparse` is a left-to-right parser, so its
/// `Err` and `Complete` results on a prefix stay the same on longer input. Together this makes
/// the outcome (including which error) independent of how the bytes were split into reads.
fn parse_head(src: &mut BytesMut, limits: &Limits) -> Result<Option<RequestHead>, ParseError> {
    if src.is_empty() {
        // The common call after a request's `End` on a drained buffer: nothing to parse
        // (what `httparse` would say, without its setup).
        return Ok(None);
    }
    let max_head = limits.max_head_bytes.min(u32::MAX as usize);
    let window = &src[..src.len().min(max_head)];
    // Left uninitialized: httparse writes the slots it fills (initializing 32 empty headers
    // cost ~130 instructions per request).
    let mut stack = [std::mem::MaybeUninit::<httparse::Header>::uninit(); STACK_HEADERS];
    // The head's length comes back apart from the head: a head plus its length would be
    // moved with a `memcpy` call, a head alone is not.
    let mut len = 0;
    let parsed = match parse_with(window, &mut stack, limits, &mut len) {
        Err(ParseError::TooManyHeaders) if limits.max_headers > STACK_HEADERS => {
            // A header line takes at least 3 bytes (`a:\n`): never allocate more slots than
            // the window can fill, whatever `max_headers` says.
            let slots = limits.max_headers.min(window.len() / 3 + 1);
            let mut heap = vec![std::mem::MaybeUninit::<httparse::Header>::uninit(); slots];
            parse_with(window, &mut heap, limits, &mut len)
        }
        other => other,
    };
    let parsed = match parsed {
        Ok(p) => p,
        Err(e) => {
            check_uri(window, limits)?;
            return Err(e);
        }
    };
    let Some(mut head) = parsed else {
        check_uri(window, limits)?;
        if src.len() > max_head {
            return Err(ParseError::HeadTooLarge);
        }
        return Ok(None);
    };
    for &(name, _) in &head.headers {
        src[name.range()].make_ascii_lowercase();
    }
    head.buf = src.split_to(len).freeze();
    Ok(Some(head))
}

/// [`ParseError::UriTooLong`] if the request target seen so far is over the limit, even
/// before the request line is complete.
///
/// It looks only at what `httparse` has accepted (leading empty lines, a method token, one
/// space, then URI bytes), so it gives the same answer whether it runs on a partial head or
/// after `httparse` stopped at an error further on.
fn check_uri(window: &[u8], limits: &Limits) -> Result<(), ParseError> {
    let mut rest = window;
    loop {
        rest = match rest {
            [b'\r', b'\n', more @ ..] | [b'\n', more @ ..] => more,
            _ => break,
        };
    }
    let method = rest
        .iter()
        .position(|&b| !is_tchar(b))
        .unwrap_or(rest.len());
    if method == 0 || rest.get(method) != Some(&b' ') {
        return Ok(());
    }
    let uri = &rest[method + 1..];
    let uri_len = uri
        .iter()
        .position(|&b| !matches!(b, b'!'..=b'~' | 0x80..=0xff))
        .unwrap_or(uri.len());
    if uri_len > limits.max_uri_len {
        return Err(ParseError::UriTooLong);
    }
    Ok(())
}

fn map_error(e: httparse::Error, src: &[u8]) -> ParseError {
    match e {
        httparse::Error::TooManyHeaders => ParseError::TooManyHeaders,
        httparse::Error::Version => {
            // The version is the third element of the request line: `HTTP/2.0` there is a
            // version we don't speak (505), anything else a malformed line (400).
            let start = src
                .iter()
                .position(|&b| b != b'\r' && b != b'\n')
                .unwrap_or(src.len());
            let mut parts = src[start..].splitn(3, |&b| b == b' ');
            match parts.nth(2) {
                Some(v) if v.starts_with(b"HTTP/") => ParseError::Version,
                _ => ParseError::RequestLine,
            }
        }
        httparse::Error::Token => ParseError::RequestLine,
        httparse::Error::HeaderName if starts_obs_fold(src) => ParseError::ObsFold,
        _ => ParseError::Header,
    }
}

/// Whether the first header line that is not `token ":" ...` starts with a space or tab:
/// obsolete line folding rather than a bad name.
fn starts_obs_fold(src: &[u8]) -> bool {
    let start = src
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(src.len());
    let mut lines = src[start..].split(|&b| b == b'\n').skip(1);
    for line in lines.by_ref() {
        match line.first() {
            Some(b' ' | b'\t') => return true,
            None | Some(b'\r') => return false,
            Some(_) => {
                let name_len = line
                    .iter()
                    .position(|&b| !is_tchar(b))
                    .unwrap_or(line.len());
                // This line is the bad one (or, unterminated, not yet judged).
                if name_len == 0 || line.get(name_len) != Some(&b':') {
                    return false;
                }
            }
        }
    }
    false
}

fn parse_with<'b>(
    src: &'b [u8],
    headers: &mut [std::mem::MaybeUninit<httparse::Header<'b>>],
    limits: &Limits,
    head_len: &mut usize,
) -> Result<Option<RequestHead>, ParseError> {
    let mut req = httparse::Request::new(&mut []);
    *head_len = match req.parse_with_uninit_headers(src, headers) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(map_error(e, src)),
    };
    let (Some(method), Some(uri), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(ParseError::RequestLine);
    };
    if uri.len() > limits.max_uri_len {
        return Err(ParseError::UriTooLong);
    }
    if req.headers.len() > limits.max_headers {
        return Err(ParseError::TooManyHeaders);
    }
    let version = if minor == 0 {
        Version::Http10
    } else {
        Version::Http11
    };
    let base = src.as_ptr() as usize;
    let uri_span = Span::of(base, uri.as_bytes());
    let target = analyze_target(method, uri.as_bytes(), uri_span)?;

    let mut content_length: Option<u64> = None;
    let mut te_seen = false;
    let mut te_ok = true;
    let mut te_codings = 0usize;
    let mut conn_close = false;
    let mut conn_keep_alive = false;
    let mut conn_upgrade = false;
    let mut upgrade_ws = false;
    let mut expect = false;
    let mut host_header: Option<Span> = None;
    let mut spans = spans_with_capacity(req.headers.len());
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        let value = h.value;
        spans.push((Span::of(base, name), Span::of(base, value)));
        if name.eq_ignore_ascii_case(b"content-length") {
            if content_length.is_some() {
                return Err(ParseError::DuplicateContentLength);
            }
            content_length = Some(parse_content_length(value)?);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            te_seen = true;
            for coding in list_items(value) {
                te_codings += 1;
                te_ok &= coding.eq_ignore_ascii_case(b"chunked");
            }
        } else if name.eq_ignore_ascii_case(b"connection") {
            for token in list_items(value) {
                conn_close |= token.eq_ignore_ascii_case(b"close");
                conn_keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
                conn_upgrade |= token.eq_ignore_ascii_case(b"upgrade");
            }
        } else if name.eq_ignore_ascii_case(b"host") {
            if host_header.is_some() {
                return Err(ParseError::DuplicateHost);
            }
            host_header = Some(Span::of(base, value));
        } else if name.eq_ignore_ascii_case(b"expect") {
            expect = value.eq_ignore_ascii_case(b"100-continue");
        } else if name.eq_ignore_ascii_case(b"upgrade") {
            upgrade_ws |= list_items(value).any(|t| t.eq_ignore_ascii_case(b"websocket"));
        }
    }

    let body = if te_seen {
        if version == Version::Http10 {
            return Err(ParseError::TransferEncodingInHttp10);
        }
        if content_length.is_some() {
            return Err(ParseError::ContentLengthWithTransferEncoding);
        }
        if !te_ok || te_codings != 1 {
            return Err(ParseError::UnsupportedTransferEncoding);
        }
        BodyKind::Chunked
    } else if let Some(n) = content_length {
        if n > limits.max_body {
            return Err(ParseError::BodyTooLarge);
        }
        BodyKind::Length(n)
    } else {
        BodyKind::None
    };

    // Last, so that a request with a more specific fault reports that one.
    if version == Version::Http11 && host_header.is_none() {
        return Err(ParseError::MissingHost);
    }

    let mut flags = 0;
    let keep_alive = match version {
        Version::Http11 => !conn_close,
        Version::Http10 => conn_keep_alive && !conn_close,
    };
    if keep_alive {
        flags |= KEEP_ALIVE;
    }
    if expect && version == Version::Http11 {
        flags |= EXPECT_CONTINUE;
    }
    if upgrade_ws && conn_upgrade && version == Version::Http11 && method == "GET" {
        flags |= UPGRADE_WEBSOCKET;
    }

    Ok(Some(RequestHead {
        buf: Bytes::new(),
        method: Span::of(base, method.as_bytes()),
        uri: uri_span,
        path: target.path,
        query: target.query,
        host: target.host.or(host_header),
        version,
        headers: spans,
        body,
        flags,
    }))
}

struct Target {
    path: Span,
    query: Option<Span>,
    host: Option<Span>,
}

/// Splits the request target into path, query and (for absolute/authority form) host.
fn analyze_target(method: &str, uri: &[u8], span: Span) -> Result<Target, ParseError> {
    if uri.first() == Some(&b'/') {
        let (path, query) = split_path_query(uri, span, 0);
        return Ok(Target {
            path,
            query,
            host: None,
        });
    }
    if uri == b"*" {
        if method != "OPTIONS" {
            return Err(ParseError::InvalidUri);
        }
        return Ok(Target {
            path: span,
            query: None,
            host: None,
        });
    }
    if method == "CONNECT" {
        if uri.contains(&b'/') || uri.contains(&b'@') {
            return Err(ParseError::InvalidUri);
        }
        return Ok(Target {
            path: span,
            query: None,
            host: Some(span),
        });
    }
    let scheme_len = if starts_with_ignore_case(uri, b"http://") {
        7
    } else if starts_with_ignore_case(uri, b"https://") {
        8
    } else {
        return Err(ParseError::InvalidUri);
    };
    let rest = &uri[scheme_len..];
    let auth_len = rest
        .iter()
        .position(|&b| matches!(b, b'/' | b'?' | b'#'))
        .unwrap_or(rest.len());
    let authority = &rest[..auth_len];
    if authority.is_empty() || authority.contains(&b'@') {
        return Err(ParseError::InvalidUri);
    }
    let host = span.sub(scheme_len, scheme_len + auth_len);
    let (path, query) = split_path_query(uri, span, scheme_len + auth_len);
    Ok(Target {
        path,
        query,
        host: Some(host),
    })
}

/// Path and query of `uri[from..]`; a path that doesn't start with `/` is empty (= `/`).
fn split_path_query(uri: &[u8], span: Span, from: usize) -> (Span, Option<Span>) {
    let rest = &uri[from..];
    // The first `#` ends the target; the first `?` before it starts the query. A short
    // target (most) in one plain pass: two `memchr` calls cost more than they save there.
    let (query, frag) = if rest.len() <= SHORT_TARGET {
        let mut query = None;
        let mut frag = rest.len();
        for (i, &b) in rest.iter().enumerate() {
            if b == b'#' {
                frag = i;
                break;
            }
            if b == b'?' && query.is_none() {
                query = Some(i);
            }
        }
        (query, frag)
    } else {
        let frag = memchr::memchr(b'#', rest).unwrap_or(rest.len());
        (memchr::memchr(b'?', &rest[..frag]), frag)
    };
    let frag = from + frag;
    match query {
        Some(i) => (span.sub(from, from + i), Some(span.sub(from + i + 1, frag))),
        None => (span.sub(from, frag), None),
    }
}

/// Targets up to this long are split by a plain scan rather than `memchr`.
const SHORT_TARGET: usize = 64;

fn starts_with_ignore_case(s: &[u8], prefix: &[u8]) -> bool {
    s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// `Content-Length = 1*DIGIT`, strictly: no sign, no list, no whitespace, fits a `u64`.
fn parse_content_length(v: &[u8]) -> Result<u64, ParseError> {
    if v.is_empty() || v.len() > 20 {
        return Err(ParseError::InvalidContentLength);
    }
    let mut n: u64 = 0;
    for &b in v {
        if !b.is_ascii_digit() {
            return Err(ParseError::InvalidContentLength);
        }
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(b - b'0')))
            .ok_or(ParseError::InvalidContentLength)?;
    }
    Ok(n)
}

/// The non-empty, OWS-trimmed elements of a comma-separated header list.
pub(crate) fn list_items(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    v.split(|&b| b == b',')
        .map(trim_ows)
        .filter(|s| !s.is_empty())
}

/// `s` without leading and trailing spaces and tabs.
pub(crate) fn trim_ows(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| b != b' ' && b != b'\t');
    let Some(start) = start else { return &[] };
    let end = s
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .unwrap_or(start);
    &s[start..=end]
}
