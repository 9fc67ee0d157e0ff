//! Response encoding: the status line and headers ([`ResponseHead`]), chunk framing
//! ([`encode_chunk`], [`encode_last_chunk`]) and reason phrases ([`reason`]).
//!
//! The encoder owns the framing headers: it writes `Content-Length` or
//! `Transfer-Encoding: chunked`, `Connection` and `Date` itself and tells the caller, as a
//! [`Framing`], how the body bytes that follow must be written. It reads no clock: the
//! caller passes the preformatted `Date` value (cache it once per second).

use bytes::{BufMut, Bytes, BytesMut};

use super::error::EncodeError;
use super::request::Version;

/// How the body of a response is to be framed, as asked of [`ResponseHead::body`].
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use rswoole_codec::http1::{BodyLength, Framing, ResponseHead};
///
/// let framing = |body| ResponseHead::new(200).body(body).encode(&mut BytesMut::new());
/// assert_eq!(framing(BodyLength::Empty), Framing::NoBody);
/// assert_eq!(framing(BodyLength::Known(3)), Framing::Length(3));
/// assert_eq!(framing(BodyLength::Streaming), Framing::Chunked);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BodyLength {
    /// No body at all (an empty 200 still gets `Content-Length: 0`).
    Empty,
    /// Exactly this many bytes follow.
    Known(u64),
    /// The length is unknown: chunked for HTTP/1.1, close-delimited for HTTP/1.0.
    Streaming,
}

/// How the caller must write the body after the encoded head, as returned by
/// [`ResponseHead::encode`].
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use rswoole_codec::http1::{encode_chunk, encode_last_chunk, BodyLength, Framing, ResponseHead};
///
/// let mut out = BytesMut::new();
/// let framing = ResponseHead::new(200).body(BodyLength::Streaming).encode(&mut out);
/// match framing {
///     Framing::Chunked => {
///         encode_chunk(b"part", &mut out);
///         encode_last_chunk(&mut out);
///     }
///     Framing::Length(_) | Framing::CloseDelimited => out.extend_from_slice(b"part"),
///     Framing::NoBody => {}
/// }
/// assert!(out.ends_with(b"\r\n\r\n4\r\npart\r\n0\r\n\r\n"));
/// assert!(!framing.must_close());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Framing {
    /// Write no body bytes (a `HEAD` response, 1xx, 204, 304, or an empty body).
    NoBody,
    /// Write exactly this many bytes, raw.
    Length(u64),
    /// Write each piece with [`encode_chunk`] and finish with [`encode_last_chunk`].
    Chunked,
    /// Write the bytes raw, then close the connection (HTTP/1.0 with unknown length).
    CloseDelimited,
}

impl Framing {
    /// Whether the connection must be closed after this response's body, whatever
    /// keep-alive said.
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_codec::http1::Framing;
    /// assert!(Framing::CloseDelimited.must_close());
    /// assert!(!Framing::Length(10).must_close());
    /// ```
    pub fn must_close(self) -> bool {
        self == Framing::CloseDelimited
    }
}

/// A response status line plus headers, built and then encoded into a buffer.
///
/// Headers are validated as they are added (a name must be a token; a value must not hold
/// CR, LF or NUL — header injection is refused, not escaped) and serialized at once into an
/// internal buffer, so building costs one growing allocation, not one per header.
///
/// `Content-Length` and `Transfer-Encoding` added with [`header`](Self::header) are dropped:
/// the framing comes from [`body`](Self::body). A `Connection` or `Date` added by the caller
/// replaces the automatic one.
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use rswoole_codec::http1::{BodyLength, Framing, ResponseHead, Version};
///
/// let mut head = ResponseHead::new(200);
/// head.header("Content-Type", "text/plain").unwrap()
///     .date(b"Sun, 06 Nov 1994 08:49:37 GMT").unwrap()
///     .body(BodyLength::Known(5));
/// let mut out = BytesMut::new();
/// assert_eq!(head.encode(&mut out), Framing::Length(5));
/// assert_eq!(
///     &out[..],
///     b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nContent-Length: 5\r\n\r\n"
/// );
///
/// // HTTP/1.0 client, unknown length: close-delimited.
/// let mut head = ResponseHead::new(200);
/// head.version(Version::Http10).keep_alive(true).body(BodyLength::Streaming);
/// let mut out = BytesMut::new();
/// assert_eq!(head.encode(&mut out), Framing::CloseDelimited);
/// assert_eq!(&out[..], b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
/// ```
#[derive(Debug, Clone)]
pub struct ResponseHead {
    status: u16,
    reason: Option<Box<str>>,
    version: Version,
    keep_alive: bool,
    head_request: bool,
    body: BodyLength,
    /// A `Date` was given: the value is `checked_date`.
    has_date: bool,
    /// The last `Date` value checked, kept by [`clear`](Self::clear): the same shared bytes
    /// again (a cached value, as every response of one second has) are not scanned again.
    checked_date: Option<Bytes>,
    /// `Date: <checked_date>\r\n`, written once per value when it has the IMF-fixdate length
    /// (every response of one second copies this line whole, a fixed-size copy).
    date_line: [u8; DATE_LINE],
    fields: Vec<u8>,
    user_connection: bool,
    user_date: bool,
}

impl ResponseHead {
    /// A response with `status`, for an HTTP/1.1 keep-alive request, with an empty body.
    ///
    /// An out-of-range status (not `100..=999`) is reported by [`try_new`](Self::try_new);
    /// here it is clamped to 500.
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use rswoole_codec::http1::ResponseHead;
    ///
    /// let mut out = BytesMut::new();
    /// ResponseHead::new(404).encode(&mut out);
    /// assert_eq!(&out[..], b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
    /// assert_eq!(ResponseHead::new(42).status(), 500); // clamped
    /// ```
    pub fn new(status: u16) -> Self {
        ResponseHead::try_new(status).unwrap_or_else(|_| {
            ResponseHead::try_new(500).unwrap_or_else(|_| unreachable!("500 is valid"))
        })
    }

    /// A response with `status`.
    ///
    /// # Errors
    ///
    /// [`EncodeError::InvalidStatus`] unless `100 <= status <= 999`.
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_codec::http1::{EncodeError, ResponseHead};
    /// assert_eq!(ResponseHead::try_new(201)?.status(), 201);
    /// assert_eq!(ResponseHead::try_new(1000).unwrap_err(), EncodeError::InvalidStatus);
    /// # Ok::<(), EncodeError>(())
    /// ```
    pub fn try_new(status: u16) -> Result<Self, EncodeError> {
        if !(100..=999).contains(&status) {
            return Err(EncodeError::InvalidStatus);
        }
        Ok(ResponseHead {
            status,
            reason: None,
            version: Version::Http11,
            keep_alive: true,
            head_request: false,
            body: BodyLength::Empty,
            has_date: false,
            checked_date: None,
            date_line: [0; DATE_LINE],
            fields: Vec::new(),
            user_connection: false,
            user_date: false,
        })
    }

    /// Makes this head as [`new`](Self::new)`(status)` made it, keeping the allocation of its
    /// header fields for the next response (a server that answers many requests in a row
    /// reuses one head).
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use rswoole_codec::http1::{BodyLength, ResponseHead};
    ///
    /// let mut head = ResponseHead::new(404);
    /// head.header("X-A", "1")?.keep_alive(false).body(BodyLength::Known(3));
    /// head.clear(200);
    /// let (mut a, mut b) = (BytesMut::new(), BytesMut::new());
    /// head.encode(&mut a);
    /// ResponseHead::new(200).encode(&mut b);
    /// assert_eq!(a, b);
    /// # Ok::<(), rswoole_codec::http1::EncodeError>(())
    /// ```
    pub fn clear(&mut self, status: u16) {
        // Field by field: the fields' allocation and the checked `Date` (with its line) stay.
        self.status = if (100..=999).contains(&status) {
            status
        } else {
            500
        };
        self.reason = None;
        self.version = Version::Http11;
        self.keep_alive = true;
        self.head_request = false;
        self.body = BodyLength::Empty;
        self.has_date = false;
        self.fields.clear();
        self.user_connection = false;
        self.user_date = false;
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// Changes the status code; the reason phrase goes back to the standard one.
    ///
    /// # Errors
    ///
    /// [`EncodeError::InvalidStatus`] unless `100 <= status <= 999` (nothing changes then).
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_codec::http1::{EncodeError, ResponseHead};
    /// let mut head = ResponseHead::new(200);
    /// head.reason_phrase("Fine")?.set_status(404)?;
    /// let mut out = bytes::BytesMut::new();
    /// head.encode(&mut out);
    /// assert!(out.starts_with(b"HTTP/1.1 404 Not Found\r\n"));
    /// assert_eq!(head.set_status(1000).unwrap_err(), EncodeError::InvalidStatus);
    /// # Ok::<(), EncodeError>(())
    /// ```
    pub fn set_status(&mut self, status: u16) -> Result<&mut Self, EncodeError> {
        if !(100..=999).contains(&status) {
            return Err(EncodeError::InvalidStatus);
        }
        self.status = status;
        self.reason = None;
        Ok(self)
    }

    /// The value of the first header field added as `name` (compared case-insensitively).
    /// `Content-Length` and `Transfer-Encoding`, which [`header`](Self::header) drops, are
    /// never found.
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_codec::http1::ResponseHead;
    /// let mut head = ResponseHead::new(200);
    /// head.header("Content-Type", "text/plain")?.header("X-A", "1")?.header("x-a", "2")?;
    /// assert_eq!(head.field("content-type"), Some(&b"text/plain"[..]));
    /// assert_eq!(head.field("X-a"), Some(&b"1"[..]));
    /// assert_eq!(head.field("vary"), None);
    /// # Ok::<(), rswoole_codec::http1::EncodeError>(())
    /// ```
    pub fn field(&self, name: &str) -> Option<&[u8]> {
        // `fields` holds `name: value\r\n` lines whose names are tokens and values hold no
        // CR or LF: the first ": " of a line ends its name.
        self.fields
            .split(|&b| b == b'\n')
            .filter_map(|line| {
                let line = line.strip_suffix(b"\r")?;
                let colon = line.iter().position(|&b| b == b':')?;
                Some((&line[..colon], &line[(colon + 2).min(line.len())..]))
            })
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }

    /// The header fields added so far, as written: `name: value\r\n` lines (the caller's
    /// own, without the `Date`, `Content-Length`, `Transfer-Encoding` and `Connection` fields
    /// that [`encode`](Self::encode) adds). An HTTP/2 answer is built from them.
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_codec::http1::ResponseHead;
    ///
    /// let mut head = ResponseHead::new(200);
    /// head.header("Content-Type", "text/plain")?.header("Content-Length", "9")?;
    /// assert_eq!(head.field_lines(), b"Content-Type: text/plain\r\n");
    /// # Ok::<(), rswoole_codec::http1::EncodeError>(())
    /// ```
    pub fn field_lines(&self) -> &[u8] {
        &self.fields
    }

    /// Replaces the standard reason phrase of [`reason`] with `phrase`.
    ///
    /// # Errors
    ///
    /// [`EncodeError::InvalidHeaderValue`] if `phrase` holds CR, LF or NUL.
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use rswoole_codec::http1::ResponseHead;
    ///
    /// let mut out = BytesMut::new();
    /// ResponseHead::new(200).reason_phrase("Fine")?.encode(&mut out);
    /// assert!(out.starts_with(b"HTTP/1.1 200 Fine\r\n"));
    /// assert!(ResponseHead::new(200).reason_phrase("a\r\nb").is_err());
    /// # Ok::<(), rswoole_codec::http1::EncodeError>(())
    /// ```
    pub fn reason_phrase(&mut self, phrase: &str) -> Result<&mut Self, EncodeError> {
        check_value(phrase.as_bytes())?;
        self.reason = Some(phrase.into());
        Ok(self)
    }

    /// The version of the *request* being answered. The status line always says
    /// `HTTP/1.1`; the version decides the `Connection` header and whether chunked
    /// framing is possible. Default is [`Version::Http11`].
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use rswoole_codec::http1::{BodyLength, ResponseHead, Version};
    ///
    /// let mut out = BytesMut::new();
    /// ResponseHead::new(200)
    ///     .version(Version::Http10)
    ///     .body(BodyLength::Known(2))
    ///     .encode(&mut out);
    /// // An HTTP/1.0 client needs to be told the connection stays open.
    /// assert!(out.ends_with(b"Content-Length: 2\r\nConnection: keep-alive\r\n\r\n"));
    /// ```
    pub fn version(&mut self, version: Version) -> &mut Self {
        self.version = version;
        self
    }

    /// Whether the connection stays open after this response (usually
    /// [`RequestHead::keep_alive`](super::RequestHead::keep_alive) and the server's own
    /// wish). Default is `true`.
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use rswoole_codec::http1::ResponseHead;
    ///
    /// let mut out = BytesMut::new();
    /// ResponseHead::new(200).keep_alive(false).encode(&mut out);
    /// assert!(out.ends_with(b"Connection: close\r\n\r\n"));
    /// ```
    pub fn keep_alive(&mut self, keep_alive: bool) -> &mut Self {
        self.keep_alive = keep_alive;
        self
    }

    /// Marks the response as answering a `HEAD` request: the headers (including
    /// `Content-Length`) are written as for `GET`, but [`encode`](Self::encode) returns
    /// [`Framing::NoBody`].
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use rswoole_codec::http1::{BodyLength, Framing, ResponseHead};
    ///
    /// let mut out = BytesMut::new();
    /// let framing = ResponseHead::new(200)
    ///     .head_request(true)
    ///     .body(BodyLength::Known(1234))
    ///     .encode(&mut out);
    /// assert_eq!(framing, Framing::NoBody); // send no body bytes...
    /// assert!(out.ends_with(b"Content-Length: 1234\r\n\r\n")); // ...but the GET length
    /// ```
    pub fn head_request(&mut self, is_head: bool) -> &mut Self {
        self.head_request = is_head;
        self
    }

    /// How long the body is. Default is [`BodyLength::Empty`].
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_codec::http1::{BodyLength, Framing, ResponseHead};
    /// assert_eq!(ResponseHead::new(200).body(BodyLength::Known(5)).framing(), Framing::Length(5));
    /// assert_eq!(ResponseHead::new(204).body(BodyLength::Known(5)).framing(), Framing::NoBody);
    /// ```
    pub fn body(&mut self, body: BodyLength) -> &mut Self {
        self.body = body;
        self
    }

    /// The preformatted `Date` value (IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`).
    ///
    /// # Errors
    ///
    /// [`EncodeError::InvalidHeaderValue`] if `date` holds CR, LF or NUL.
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use rswoole_codec::http1::ResponseHead;
    ///
    /// let mut out = BytesMut::new();
    /// ResponseHead::new(200).date(b"Sun, 06 Nov 1994 08:49:37 GMT")?.encode(&mut out);
    /// assert!(out.windows(35).any(|w| w == b"Date: Sun, 06 Nov 1994 08:49:37 GMT"));
    /// # Ok::<(), rswoole_codec::http1::EncodeError>(())
    /// ```
    pub fn date(&mut self, date: &[u8]) -> Result<&mut Self, EncodeError> {
        self.date_shared(Bytes::copy_from_slice(date))
    }

    /// As [`date`](Self::date), with a value shared by every response of the same second
    /// (no copy).
    ///
    /// # Errors
    ///
    /// [`EncodeError::InvalidHeaderValue`] if `date` holds CR, LF or NUL.
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::{Bytes, BytesMut};
    /// use rswoole_codec::http1::ResponseHead;
    ///
    /// let date = Bytes::from_static(b"Sun, 06 Nov 1994 08:49:37 GMT");
    /// let mut out = BytesMut::new();
    /// ResponseHead::new(200).date_shared(date.clone())?.encode(&mut out);
    /// assert!(out.windows(35).any(|w| w == b"Date: Sun, 06 Nov 1994 08:49:37 GMT"));
    /// # Ok::<(), rswoole_codec::http1::EncodeError>(())
    /// ```
    pub fn date_shared(&mut self, date: Bytes) -> Result<&mut Self, EncodeError> {
        // `Bytes` never change: the very bytes checked before (same address and length, kept
        // alive by `checked_date`) need no second look, and their line is written already.
        let seen = self
            .checked_date
            .as_ref()
            .is_some_and(|c| c.as_ptr() == date.as_ptr() && c.len() == date.len());
        if !seen {
            check_value(&date)?;
            if date.len() == DATE_LINE - 8 {
                self.date_line[..6].copy_from_slice(b"Date: ");
                self.date_line[6..DATE_LINE - 2].copy_from_slice(&date);
                self.date_line[DATE_LINE - 2..].copy_from_slice(b"\r\n");
            }
            self.checked_date = Some(date);
        }
        self.has_date = true;
        Ok(self)
    }

    /// Appends a header field, written as given (case kept).
    ///
    /// # Errors
    ///
    /// [`EncodeError::InvalidHeaderName`] if `name` is not a token;
    /// [`EncodeError::InvalidHeaderValue`] if `value` holds CR, LF or NUL.
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use rswoole_codec::http1::{EncodeError, ResponseHead};
    ///
    /// let mut head = ResponseHead::new(200);
    /// head.header("Content-Type", "text/html")?
    ///     .header("Content-Length", "99")?; // dropped: the framing comes from `body`
    /// assert_eq!(head.header("bad name", "x").unwrap_err(), EncodeError::InvalidHeaderName);
    /// let mut out = BytesMut::new();
    /// head.encode(&mut out);
    /// assert_eq!(&out[..], b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 0\r\n\r\n");
    /// # Ok::<(), EncodeError>(())
    /// ```
    pub fn header(
        &mut self,
        name: &str,
        value: impl AsRef<[u8]>,
    ) -> Result<&mut Self, EncodeError> {
        let value = value.as_ref();
        let n = name.as_bytes();
        if !is_token(n) {
            return Err(EncodeError::InvalidHeaderName);
        }
        check_value(value)?;
        // Only these four names are looked at; their lengths (4, 10, 14, 17) rule out most
        // names before a byte is compared.
        match n.len() {
            4 => self.user_date |= n.eq_ignore_ascii_case(b"date"),
            10 => self.user_connection |= n.eq_ignore_ascii_case(b"connection"),
            14 if n.eq_ignore_ascii_case(b"content-length") => return Ok(self),
            17 if n.eq_ignore_ascii_case(b"transfer-encoding") => return Ok(self),
            _ => {}
        }
        if self.fields.capacity() == 0 {
            self.fields.reserve(128);
        }
        self.fields.extend_from_slice(n);
        self.fields.extend_from_slice(b": ");
        self.fields.extend_from_slice(value);
        self.fields.extend_from_slice(b"\r\n");
        Ok(self)
    }

    /// The framing [`encode`](Self::encode) will choose.
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_codec::http1::{BodyLength, Framing, ResponseHead, Version};
    /// let mut head = ResponseHead::new(200);
    /// head.body(BodyLength::Streaming);
    /// assert_eq!(head.framing(), Framing::Chunked);
    /// head.version(Version::Http10);
    /// assert_eq!(head.framing(), Framing::CloseDelimited);
    /// ```
    pub fn framing(&self) -> Framing {
        let bodyless = matches!(self.status, 100..=199 | 204 | 304);
        let framing = match self.body {
            _ if bodyless => Framing::NoBody,
            BodyLength::Empty | BodyLength::Known(0) => Framing::NoBody,
            BodyLength::Known(n) => Framing::Length(n),
            BodyLength::Streaming if self.version == Version::Http11 => Framing::Chunked,
            BodyLength::Streaming => Framing::CloseDelimited,
        };
        if self.head_request {
            return Framing::NoBody;
        }
        framing
    }

    /// Writes the status line, headers and the final empty line to `dst` and returns how
    /// the body must be written.
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use rswoole_codec::http1::{BodyLength, Framing, ResponseHead};
    ///
    /// let mut out = BytesMut::new();
    /// let framing = ResponseHead::new(200).body(BodyLength::Known(2)).encode(&mut out);
    /// assert_eq!(framing, Framing::Length(2));
    /// out.extend_from_slice(b"ok");
    /// assert_eq!(&out[..], b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    /// ```
    pub fn encode(&self, dst: &mut BytesMut) -> Framing {
        let framing = self.framing();
        // One reservation for the whole head: the pieces below are then plain copies, the
        // fixed ones (the `Date` line, the framing lines) of a size known at compile time.
        let date = match (&self.checked_date, self.has_date && !self.user_date) {
            (Some(d), true) => Some(d),
            _ => None,
        };
        let reason_len = self.reason.as_ref().map_or(40, |r| r.len());
        dst.reserve(
            80 + self.fields.len() + reason_len + date.map_or(0, |d| d.len().max(DATE_LINE)),
        );
        match (&self.reason, status_line(self.status)) {
            (None, Some(line)) => dst.put_slice(line),
            (phrase, _) => {
                dst.put_slice(b"HTTP/1.1 ");
                put_u64(dst, u64::from(self.status));
                dst.put_u8(b' ');
                let phrase = phrase.as_deref().unwrap_or_else(|| reason(self.status));
                dst.put_slice(phrase.as_bytes());
                dst.put_slice(b"\r\n");
            }
        }
        if !self.fields.is_empty() {
            dst.put_slice(&self.fields);
        }
        match date {
            Some(d) if d.len() == DATE_LINE - 8 => dst.put_slice(&self.date_line),
            Some(d) => {
                dst.put_slice(b"Date: ");
                dst.put_slice(d);
                dst.put_slice(b"\r\n");
            }
            None => {}
        }
        let bodyless_status = matches!(self.status, 100..=199 | 204 | 304);
        if !bodyless_status {
            match self.body {
                BodyLength::Empty => dst.put_slice(b"Content-Length: 0\r\n"),
                BodyLength::Known(n) => {
                    dst.put_slice(b"Content-Length: ");
                    put_u64(dst, n);
                    dst.put_slice(b"\r\n");
                }
                BodyLength::Streaming if self.version == Version::Http11 => {
                    dst.put_slice(b"Transfer-Encoding: chunked\r\n");
                }
                BodyLength::Streaming => {}
            }
        }
        if !self.user_connection && self.status >= 200 {
            let close = !self.keep_alive || framing == Framing::CloseDelimited;
            match (close, self.version) {
                (true, _) => dst.put_slice(b"Connection: close\r\n"),
                (false, Version::Http10) => dst.put_slice(b"Connection: keep-alive\r\n"),
                (false, Version::Http11) => {}
            }
        }
        dst.put_slice(b"\r\n");
        framing
    }
}

/// Bytes of a `Date: <IMF-fixdate>\r\n` line (the date is 29 bytes).
const DATE_LINE: usize = 37;

/// The whole status line of the most common statuses with their standard reason.
fn status_line(status: u16) -> Option<&'static [u8]> {
    Some(match status {
        200 => b"HTTP/1.1 200 OK\r\n",
        204 => b"HTTP/1.1 204 No Content\r\n",
        301 => b"HTTP/1.1 301 Moved Permanently\r\n",
        302 => b"HTTP/1.1 302 Found\r\n",
        304 => b"HTTP/1.1 304 Not Modified\r\n",
        400 => b"HTTP/1.1 400 Bad Request\r\n",
        404 => b"HTTP/1.1 404 Not Found\r\n",
        500 => b"HTTP/1.1 500 Internal Server Error\r\n",
        _ => return None,
    })
}

/// Writes `data` as one chunk (`<hex size>\r\n<data>\r\n`). Empty `data` writes nothing,
/// since an empty chunk would end the body.
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use rswoole_codec::http1::{encode_chunk, encode_last_chunk};
///
/// let mut out = BytesMut::new();
/// encode_chunk(b"hello world, twenty-six b", &mut out);
/// encode_last_chunk(&mut out);
/// assert_eq!(&out[..], b"19\r\nhello world, twenty-six b\r\n0\r\n\r\n");
/// ```
pub fn encode_chunk(data: &[u8], dst: &mut BytesMut) {
    if data.is_empty() {
        return;
    }
    dst.reserve(data.len() + 20);
    let mut hex = [0u8; 16];
    let mut i = hex.len();
    let mut n = data.len();
    loop {
        i -= 1;
        hex[i] = b"0123456789abcdef"[n & 15];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    dst.put_slice(&hex[i..]);
    dst.put_slice(b"\r\n");
    dst.put_slice(data);
    dst.put_slice(b"\r\n");
}

/// Writes the last chunk and an empty trailer section: `0\r\n\r\n`.
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// let mut out = BytesMut::new();
/// rswoole_codec::http1::encode_last_chunk(&mut out);
/// assert_eq!(&out[..], b"0\r\n\r\n");
/// ```
pub fn encode_last_chunk(dst: &mut BytesMut) {
    dst.put_slice(b"0\r\n\r\n");
}

/// The standard reason phrase of a status code (RFC 9110 and the IANA registry), or `""`
/// for an unregistered code (an empty reason phrase is valid).
///
/// # Examples
///
/// ```
/// assert_eq!(rswoole_codec::http1::reason(404), "Not Found");
/// assert_eq!(rswoole_codec::http1::reason(599), "");
/// ```
pub fn reason(code: u16) -> &'static str {
    match code {
        100 => "Continue",
        101 => "Switching Protocols",
        102 => "Processing",
        103 => "Early Hints",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        207 => "Multi-Status",
        208 => "Already Reported",
        226 => "IM Used",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        305 => "Use Proxy",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        418 => "I'm a teapot",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        423 => "Locked",
        424 => "Failed Dependency",
        425 => "Too Early",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        451 => "Unavailable For Legal Reasons",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        506 => "Variant Also Negotiates",
        507 => "Insufficient Storage",
        508 => "Loop Detected",
        510 => "Not Extended",
        511 => "Network Authentication Required",
        _ => "",
    }
}

/// Whether `b` is an RFC 9110 `tchar`.
pub(crate) fn is_tchar(b: u8) -> bool {
    TCHAR[b as usize]
}

/// Which bytes are `tchar`s (RFC 9110 §5.6.2): one load per byte of a header name.
static TCHAR: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        i += 1;
    }
    t
};

/// Whether `s` is a non-empty token (every byte a `tchar`): four table loads per step,
/// and-ed without a branch per byte.
fn is_token(s: &[u8]) -> bool {
    let t = |b: u8| TCHAR[b as usize];
    let mut ok = !s.is_empty();
    let mut quads = s.chunks_exact(4);
    for q in &mut quads {
        ok &= t(q[0]) & t(q[1]) & t(q[2]) & t(q[3]);
    }
    for &b in quads.remainder() {
        ok &= t(b);
    }
    ok
}

fn check_value(v: &[u8]) -> Result<(), EncodeError> {
    // CR (13) is the largest of the three forbidden bytes. Eight bytes at a time: a word with
    // no byte below 14 (`has_less`, exact for "is there one") holds none of them; only a word
    // that has one (a tab, say) is looked at byte by byte.
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGHS: u64 = ONES << 7;
    let has_less = |w: u64| w.wrapping_sub(ONES * 14) & !w & HIGHS != 0;
    let bad = |b: &u8| *b <= b'\r' && matches!(*b, b'\r' | b'\n' | 0);
    let mut words = v.chunks_exact(8);
    for w in &mut words {
        let mut word = [0; 8];
        word.copy_from_slice(w);
        if has_less(u64::from_ne_bytes(word)) && w.iter().any(bad) {
            return Err(EncodeError::InvalidHeaderValue);
        }
    }
    if words.remainder().iter().any(bad) {
        return Err(EncodeError::InvalidHeaderValue);
    }
    Ok(())
}

fn put_u64(dst: &mut BytesMut, n: u64) {
    // Short numbers (small bodies) as fixed-size writes, no digit buffer.
    let d = |x: u64| b'0' + (x % 10) as u8;
    match n {
        0..=9 => dst.put_u8(d(n)),
        10..=99 => dst.put_slice(&[d(n / 10), d(n)]),
        100..=999 => dst.put_slice(&[d(n / 100), d(n / 10), d(n)]),
        1000..=9999 => dst.put_slice(&[d(n / 1000), d(n / 100), d(n / 10), d(n)]),
        _ => put_u64_long(dst, n),
    }
}

fn put_u64_long(dst: &mut BytesMut, n: u64) {
    dst.put_slice(decimal(n, &mut [0; 20]));
}

/// `n` in decimal, written at the end of `buf` (no allocation, no formatter).
///
/// ```
/// assert_eq!(rswoole_codec::http1::decimal(1234, &mut [0; 20]), b"1234");
/// ```
pub fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[at..];
        }
    }
}
