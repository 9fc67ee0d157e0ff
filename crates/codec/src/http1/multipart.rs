//! A streaming `multipart/form-data` parser (RFC 7578 over RFC 2046 §5.1).
//!
//! [`MultipartParser`] follows the codec shape of the request decoder: the caller appends
//! each request body chunk ([`Event::Body`](super::Event::Body)) to a `BytesMut` and calls
//! [`MultipartParser::parse`] until it returns `Ok(None)`. Part data comes out as it
//! arrives; the parser holds back at most the few bytes that could start the next boundary,
//! so a 50 MiB file is never buffered whole. Part headers are bounded.

use std::fmt;

use bytes::{Buf, Bytes, BytesMut};

use super::util::percent_decode;

/// Default for [`MultipartParser::max_header_bytes`]: 8 KiB of headers per part.
pub const DEFAULT_MAX_PART_HEADER_BYTES: usize = 8 * 1024;
/// Default for [`MultipartParser::max_parts`]: 1000 parts (PHP's `max_input_vars`).
pub const DEFAULT_MAX_PARTS: usize = 1000;

/// Header fields per part that fit the parse array.
const MAX_PART_HEADERS: usize = 16;
/// Longest run of transport padding (spaces, tabs) allowed after a boundary.
const MAX_PADDING: usize = 256;

/// Why a multipart body could not be parsed. Answer 400 (see [`status`](Self::status)).
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use rswoole_codec::http1::{MultipartError, MultipartParser};
///
/// let mut parser = MultipartParser::new("XyZ");
/// let mut buf = BytesMut::from("--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nhalf a va");
/// while parser.parse(&mut buf)?.is_some() {}
/// // The request body ended here:
/// let err = parser.finish().unwrap_err();
/// assert_eq!(err, MultipartError::Truncated);
/// assert_eq!((err.status(), err.reason()), (400, "multipart body truncated"));
/// # Ok::<(), MultipartError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MultipartError {
    /// A boundary line is not followed by CRLF or `--`, or a part header is malformed.
    Malformed,
    /// A part's headers exceed [`MultipartParser::max_header_bytes`] or 16 fields.
    HeaderTooLarge,
    /// More parts than [`MultipartParser::max_parts`].
    TooManyParts,
    /// The body ended before the closing boundary ([`MultipartParser::finish`]).
    Truncated,
}

impl MultipartError {
    /// The HTTP status to answer with: 413 for too many parts, else 400.
    pub const fn status(self) -> u16 {
        match self {
            MultipartError::TooManyParts => 413,
            _ => 400,
        }
    }

    /// A short, human-readable reason.
    pub const fn reason(self) -> &'static str {
        match self {
            MultipartError::Malformed => "malformed multipart body",
            MultipartError::HeaderTooLarge => "multipart part header too large",
            MultipartError::TooManyParts => "too many multipart parts",
            MultipartError::Truncated => "multipart body truncated",
        }
    }
}

impl fmt::Display for MultipartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for MultipartError {}

/// The headers of one part that a form handler needs.
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use rswoole_codec::http1::{MultipartEvent, MultipartParser, PartHead};
///
/// let mut parser = MultipartParser::new("b");
/// let mut buf = BytesMut::from("--b\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nHi\r\n--b--");
/// let head = parser.parse(&mut buf)?;
/// let expected = PartHead { name: "title".into(), filename: None, content_type: None };
/// assert_eq!(head, Some(MultipartEvent::PartHead(expected)));
/// # Ok::<(), rswoole_codec::http1::MultipartError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PartHead {
    /// The `name` parameter of `Content-Disposition` (empty if absent).
    pub name: String,
    /// The `filename` (or RFC 5987 `filename*`) parameter, as sent: a file upload. Strip
    /// directory parts before using it as a path.
    pub filename: Option<String>,
    /// The part's `Content-Type`, if any.
    pub content_type: Option<String>,
}

/// One step of a multipart body.
///
/// # Examples
///
/// Collect the text fields of a form, skipping file data:
///
/// ```
/// use bytes::BytesMut;
/// use rswoole_codec::http1::{MultipartEvent, MultipartParser};
///
/// let mut parser = MultipartParser::new("b");
/// let mut buf = BytesMut::from(
///     "--b\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n1\r\n\
///      --b\r\nContent-Disposition: form-data; name=\"y\"\r\n\r\n2\r\n--b--\r\n",
/// );
/// let mut fields = Vec::new();
/// let mut current = None;
/// while let Some(ev) = parser.parse(&mut buf)? {
///     match ev {
///         MultipartEvent::PartHead(h) => current = Some((h.name, Vec::new())),
///         MultipartEvent::PartData(d) => current.as_mut().unwrap().1.extend_from_slice(&d),
///         MultipartEvent::PartEnd => fields.push(current.take().unwrap()),
///         MultipartEvent::Done => break,
///     }
/// }
/// assert_eq!(fields, [("x".to_string(), b"1".to_vec()), ("y".to_string(), b"2".to_vec())]);
/// # Ok::<(), rswoole_codec::http1::MultipartError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MultipartEvent {
    /// A part starts.
    PartHead(PartHead),
    /// Some bytes of the current part (never empty).
    PartData(Bytes),
    /// The current part is complete.
    PartEnd,
    /// The closing boundary was seen; the rest (the epilogue) is ignored.
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the first boundary; `at_start` while nothing has been skipped.
    Preamble { at_start: bool },
    /// Right after a boundary: `--` (close) or padding + CRLF.
    AfterBoundary,
    /// Skipping transport padding, then CRLF.
    BoundaryLine { padding: usize },
    /// Reading a part's header section.
    Headers,
    /// Reading a part's data.
    Data,
    /// The closing boundary was seen.
    Done,
    /// An error was returned.
    Failed(MultipartError),
}

/// A resumable `multipart/form-data` parser.
///
/// # Errors
///
/// [`parse`](Self::parse) returns a [`MultipartError`] for a malformed body; it is final.
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use rswoole_codec::http1::{boundary_from_content_type, MultipartEvent, MultipartParser};
///
/// let boundary = boundary_from_content_type(b"multipart/form-data; boundary=XyZ").unwrap();
/// let mut parser = MultipartParser::new(&boundary);
/// let mut buf = BytesMut::from(
///     "--XyZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.txt\"\r\n\
///      Content-Type: text/plain\r\n\r\nhello\r\n--XyZ--\r\n",
/// );
/// let mut events = Vec::new();
/// while let Some(ev) = parser.parse(&mut buf).unwrap() {
///     events.push(ev);
/// }
/// let MultipartEvent::PartHead(head) = &events[0] else { unreachable!() };
/// assert_eq!((head.name.as_str(), head.filename.as_deref()), ("f", Some("a.txt")));
/// assert_eq!(head.content_type.as_deref(), Some("text/plain"));
/// assert_eq!(events[1], MultipartEvent::PartData("hello".into()));
/// assert_eq!(events[2..], [MultipartEvent::PartEnd, MultipartEvent::Done]);
/// assert!(parser.finish().is_ok());
/// ```
#[derive(Debug, Clone)]
pub struct MultipartParser {
    /// `\r\n--boundary`.
    delim: Box<[u8]>,
    finder: memchr::memmem::Finder<'static>,
    state: State,
    max_header_bytes: usize,
    max_parts: usize,
    parts: usize,
}

impl MultipartParser {
    /// A parser for parts separated by `boundary` (without the leading `--`).
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_codec::http1::{boundary_from_content_type, MultipartParser};
    /// let boundary = boundary_from_content_type(b"multipart/form-data; boundary=----abc").unwrap();
    /// let parser = MultipartParser::new(&boundary);
    /// assert!(!parser.is_done());
    /// ```
    pub fn new(boundary: impl AsRef<[u8]>) -> Self {
        let mut delim = b"\r\n--".to_vec();
        delim.extend_from_slice(boundary.as_ref());
        let finder = memchr::memmem::Finder::new(&delim).into_owned();
        MultipartParser {
            delim: delim.into_boxed_slice(),
            finder,
            state: State::Preamble { at_start: true },
            max_header_bytes: DEFAULT_MAX_PART_HEADER_BYTES,
            max_parts: DEFAULT_MAX_PARTS,
            parts: 0,
        }
    }

    /// Sets the largest header section of one part. Over it:
    /// [`MultipartError::HeaderTooLarge`]. Default is [`DEFAULT_MAX_PART_HEADER_BYTES`].
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use rswoole_codec::http1::{MultipartError, MultipartParser};
    ///
    /// let mut parser = MultipartParser::new("b").max_header_bytes(16);
    /// let mut buf = BytesMut::from("--b\r\nContent-Disposition: form-data; name=\"long\"\r\n\r\n");
    /// assert_eq!(parser.parse(&mut buf), Err(MultipartError::HeaderTooLarge));
    /// ```
    pub fn max_header_bytes(mut self, n: usize) -> Self {
        self.max_header_bytes = n;
        self
    }

    /// Sets the most parts. Over it: [`MultipartError::TooManyParts`]. Default is
    /// [`DEFAULT_MAX_PARTS`].
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use rswoole_codec::http1::{MultipartError, MultipartParser};
    ///
    /// let mut parser = MultipartParser::new("b").max_parts(1);
    /// let mut buf = BytesMut::from("--b\r\n\r\none\r\n--b\r\n\r\ntwo\r\n--b--");
    /// let err = loop {
    ///     match parser.parse(&mut buf) {
    ///         Ok(Some(_)) => continue,
    ///         Ok(None) => unreachable!("the whole body is there"),
    ///         Err(e) => break e,
    ///     }
    /// };
    /// assert_eq!((err, err.status()), (MultipartError::TooManyParts, 413));
    /// ```
    pub fn max_parts(mut self, n: usize) -> Self {
        self.max_parts = n;
        self
    }

    /// Whether the closing boundary has been seen.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Call when the request body has ended.
    ///
    /// # Errors
    ///
    /// [`MultipartError::Truncated`] if the closing boundary was never seen, or the error
    /// already returned by [`parse`](Self::parse).
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use rswoole_codec::http1::MultipartParser;
    ///
    /// let mut parser = MultipartParser::new("b");
    /// let mut buf = BytesMut::from("--b\r\n\r\nx\r\n--b--\r\n");
    /// while parser.parse(&mut buf)?.is_some() {}
    /// assert!(parser.is_done());
    /// assert_eq!(parser.finish(), Ok(()));
    /// # Ok::<(), rswoole_codec::http1::MultipartError>(())
    /// ```
    pub fn finish(&self) -> Result<(), MultipartError> {
        match self.state {
            State::Done => Ok(()),
            State::Failed(e) => Err(e),
            _ => Err(MultipartError::Truncated),
        }
    }

    /// Parses the next event from `src`; `Ok(None)` means more body bytes are needed.
    /// Preamble, padding and epilogue bytes are consumed and dropped.
    ///
    /// # Errors
    ///
    /// A [`MultipartError`] for a malformed body; the parser then stays failed.
    ///
    /// # Examples
    ///
    /// Data is handed out as it arrives, split across reads:
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use rswoole_codec::http1::{MultipartEvent, MultipartParser};
    ///
    /// let mut parser = MultipartParser::new("b");
    /// let mut buf = BytesMut::from("--b\r\n\r\nhello ");
    /// assert!(matches!(parser.parse(&mut buf)?, Some(MultipartEvent::PartHead(_))));
    /// assert_eq!(parser.parse(&mut buf)?, Some(MultipartEvent::PartData("hello ".into())));
    /// assert_eq!(parser.parse(&mut buf)?, None); // need more body bytes
    /// buf.extend_from_slice(b"world\r\n--b--");
    /// assert_eq!(parser.parse(&mut buf)?, Some(MultipartEvent::PartData("world".into())));
    /// assert_eq!(parser.parse(&mut buf)?, Some(MultipartEvent::PartEnd));
    /// assert_eq!(parser.parse(&mut buf)?, Some(MultipartEvent::Done));
    /// # Ok::<(), rswoole_codec::http1::MultipartError>(())
    /// ```
    pub fn parse(&mut self, src: &mut BytesMut) -> Result<Option<MultipartEvent>, MultipartError> {
        let result = self.step(src);
        if let Err(e) = result {
            self.state = State::Failed(e);
        }
        result
    }

    fn step(&mut self, src: &mut BytesMut) -> Result<Option<MultipartEvent>, MultipartError> {
        loop {
            match self.state {
                State::Failed(e) => return Err(e),
                State::Done => {
                    src.clear();
                    return Ok(None);
                }
                State::Preamble { at_start } => {
                    let dash_boundary = &self.delim[2..];
                    if at_start {
                        if src.len() < dash_boundary.len() && dash_boundary.starts_with(src) {
                            return Ok(None);
                        }
                        if src.starts_with(dash_boundary) {
                            src.advance(dash_boundary.len());
                            self.state = State::AfterBoundary;
                            continue;
                        }
                    }
                    if let Some(i) = self.finder.find(src) {
                        src.advance(i + self.delim.len());
                        self.state = State::AfterBoundary;
                        continue;
                    }
                    let cut = self.safe_prefix(src);
                    src.advance(cut);
                    if cut > 0 {
                        self.state = State::Preamble { at_start: false };
                    }
                    return Ok(None);
                }
                State::AfterBoundary => {
                    if src.len() < 2 {
                        return Ok(None);
                    }
                    if src.starts_with(b"--") {
                        src.clear();
                        self.state = State::Done;
                        return Ok(Some(MultipartEvent::Done));
                    }
                    self.state = State::BoundaryLine { padding: 0 };
                }
                State::BoundaryLine { padding } => {
                    let ws = src
                        .iter()
                        .position(|&b| b != b' ' && b != b'\t')
                        .unwrap_or(src.len());
                    let padding = padding + ws;
                    if padding > MAX_PADDING {
                        return Err(MultipartError::Malformed);
                    }
                    src.advance(ws);
                    self.state = State::BoundaryLine { padding };
                    match src.get(..2) {
                        Some(b"\r\n") => {
                            src.advance(2);
                            self.state = State::Headers;
                        }
                        None if src.first().is_none_or(|&b| b == b'\r') => return Ok(None),
                        _ => return Err(MultipartError::Malformed),
                    }
                }
                State::Headers => return self.headers(src),
                State::Data => {
                    if let Some(i) = self.finder.find(src) {
                        if i > 0 {
                            return Ok(Some(MultipartEvent::PartData(src.split_to(i).freeze())));
                        }
                        src.advance(self.delim.len());
                        self.state = State::AfterBoundary;
                        return Ok(Some(MultipartEvent::PartEnd));
                    }
                    let cut = self.safe_prefix(src);
                    if cut == 0 {
                        return Ok(None);
                    }
                    return Ok(Some(MultipartEvent::PartData(src.split_to(cut).freeze())));
                }
            }
        }
    }

    /// How many leading bytes of `src` cannot be part of a delimiter (which was not found
    /// whole): all but a tail that is a proper prefix of the delimiter.
    fn safe_prefix(&self, src: &[u8]) -> usize {
        let from = src.len().saturating_sub(self.delim.len() - 1);
        memchr::memchr_iter(b'\r', &src[from..])
            .map(|i| from + i)
            .find(|&p| self.delim.starts_with(&src[p..]))
            .unwrap_or(src.len())
    }

    fn headers(&mut self, src: &mut BytesMut) -> Result<Option<MultipartEvent>, MultipartError> {
        let mut fields = [httparse::EMPTY_HEADER; MAX_PART_HEADERS];
        // Parse only up to the limit, so the outcome does not depend on how reads split.
        let window = &src[..src.len().min(self.max_header_bytes)];
        let (len, head) = match httparse::parse_headers(window, &mut fields) {
            Ok(httparse::Status::Complete((len, parsed))) => {
                let mut head = PartHead::default();
                for h in parsed {
                    if h.name.eq_ignore_ascii_case("content-disposition") {
                        parse_disposition(h.value, &mut head);
                    } else if h.name.eq_ignore_ascii_case("content-type") {
                        head.content_type = Some(String::from_utf8_lossy(h.value).into_owned());
                    }
                }
                (len, head)
            }
            Ok(httparse::Status::Partial) => {
                if src.len() > self.max_header_bytes {
                    return Err(MultipartError::HeaderTooLarge);
                }
                return Ok(None);
            }
            Err(httparse::Error::TooManyHeaders) => return Err(MultipartError::HeaderTooLarge),
            Err(_) => return Err(MultipartError::Malformed),
        };
        self.parts += 1;
        if self.parts > self.max_parts {
            return Err(MultipartError::TooManyParts);
        }
        src.advance(len);
        self.state = State::Data;
        Ok(Some(MultipartEvent::PartHead(head)))
    }
}

/// Fills `name` and `filename` from a `Content-Disposition` value.
fn parse_disposition(value: &[u8], head: &mut PartHead) {
    let mut filename_star = None;
    for (key, val) in params(value) {
        if key.eq_ignore_ascii_case(b"name") {
            head.name = String::from_utf8_lossy(&val).into_owned();
        } else if key.eq_ignore_ascii_case(b"filename") {
            head.filename = Some(String::from_utf8_lossy(&val).into_owned());
        } else if key.eq_ignore_ascii_case(b"filename*") {
            // RFC 5987: charset'lang'percent-encoded
            let mut it = val.splitn(3, |&b| b == b'\'');
            if let (Some(_charset), Some(_lang), Some(enc)) = (it.next(), it.next(), it.next()) {
                filename_star = Some(String::from_utf8_lossy(&percent_decode(enc)).into_owned());
            }
        }
    }
    if filename_star.is_some() {
        head.filename = filename_star;
    }
}

/// The `key=value` parameters after the first `;` of a header value; quoted values are
/// unquoted (`\"` and `\\` unescaped).
fn params(value: &[u8]) -> Vec<(&[u8], Vec<u8>)> {
    let mut out = Vec::new();
    let Some(first) = memchr::memchr(b';', value) else {
        return out;
    };
    let mut rest = &value[first + 1..];
    loop {
        rest = trim_start_ws(rest);
        if rest.is_empty() {
            return out;
        }
        let key_end = rest
            .iter()
            .position(|&b| b == b'=' || b == b';')
            .unwrap_or(rest.len());
        let key = super::request::trim_ows(&rest[..key_end]);
        if rest.get(key_end) != Some(&b'=') {
            rest = rest.get(key_end + 1..).unwrap_or_default();
            continue;
        }
        rest = trim_start_ws(&rest[key_end + 1..]);
        let mut val = Vec::new();
        if rest.first() == Some(&b'"') {
            let mut i = 1;
            while i < rest.len() && rest[i] != b'"' {
                if rest[i] == b'\\' && matches!(rest.get(i + 1), Some(b'"' | b'\\')) {
                    i += 1;
                }
                val.push(rest[i]);
                i += 1;
            }
            rest = &rest[(i + 1).min(rest.len())..];
            let next = memchr::memchr(b';', rest).map_or(rest.len(), |i| i + 1);
            rest = &rest[next..];
        } else {
            let end = memchr::memchr(b';', rest).unwrap_or(rest.len());
            val.extend_from_slice(super::request::trim_ows(&rest[..end]));
            rest = rest.get(end + 1..).unwrap_or_default();
        }
        out.push((key, val));
    }
}

fn trim_start_ws(s: &[u8]) -> &[u8] {
    let i = s
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(s.len());
    &s[i..]
}

/// The `boundary` parameter of a `multipart/*` `Content-Type`, unquoted.
///
/// `None` if the type is not `multipart/*`, or the boundary is missing, empty, longer than
/// 70 bytes (RFC 2046) or holds control characters.
///
/// # Examples
///
/// ```
/// use rswoole_codec::http1::boundary_from_content_type;
/// assert_eq!(
///     boundary_from_content_type(b"multipart/form-data; charset=utf-8; boundary=\"a b\"").as_deref(),
///     Some("a b")
/// );
/// assert_eq!(boundary_from_content_type(b"text/plain; boundary=x"), None);
/// ```
pub fn boundary_from_content_type(content_type: &[u8]) -> Option<String> {
    let ct = super::request::trim_ows(content_type);
    if ct.len() < 10 || !ct[..10].eq_ignore_ascii_case(b"multipart/") {
        return None;
    }
    let (_, b) = params(ct)
        .into_iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(b"boundary"))?;
    if b.is_empty() || b.len() > 70 || b.iter().any(|&c| c < 0x20 || c == 0x7f) {
        return None;
    }
    String::from_utf8(b).ok()
}
