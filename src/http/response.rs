//! The response object a handler gets. Status, headers and cookies must come before the body
//! starts; calling them later is an error the handler sees ([`HttpError::HeadersSent`]).

use std::cell::RefCell;
use std::io::Write as _;
use std::rc::Rc;
use std::time::SystemTime;

use bytes::{Bytes, BytesMut};
use rswoole_codec::http1::{self, BodyLength, ResponseHead, SetCookie, Version};

use crate::base::ConnId;
use crate::base::SendError;
use crate::server::Handle;

/// The same calls answered as structured parts on an HTTP/2 stream.
mod h2_stream;

/// What can go wrong while answering.
///
/// # Examples
///
/// ```
/// use rswoole::http::HttpError;
/// assert_eq!(HttpError::Ended.to_string(), "response already ended");
/// assert!(HttpError::HeadersSent.to_string().contains("before write()/end()"));
/// ```
///
/// In a handler, most calls return it, so `?` works:
///
/// ```no_run
/// use rswoole::http::{HttpError, HttpServer};
///
/// fn main() -> rswoole::Result<()> {
///     let mut server = HttpServer::bind("127.0.0.1:9501")?;
///     server.on_request(|_srv, _req, mut resp| async move {
///         resp.write("streamed")?;
///         let late = resp.header("x-late", "1").map(drop);
///         assert!(matches!(late, Err(HttpError::HeadersSent)));
///         resp.end("")
///     });
///     server.start()
/// }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// `status`, `header` or `cookie` after the body started (`write`) or ended (`end`).
    #[error("response headers already sent: set status, headers and cookies before write()/end()")]
    HeadersSent,
    /// `write` or `end` after `end`.
    #[error("response already ended")]
    Ended,
    /// A header name or value with CR/LF or other forbidden bytes, or a bad status.
    #[error("invalid response header: {0}")]
    Invalid(String),
    /// The connection is gone (or its output buffer is full).
    #[error(transparent)]
    Send(#[from] SendError),
    /// A file for `sendfile` could not be read.
    #[error("sendfile {path}: {source}")]
    File {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    Fresh,
    Streaming,
    Ended,
}

#[derive(Debug)]
pub(crate) struct Inner {
    handle: Handle,
    fd: ConnId,
    /// The HTTP/2 stream answered (0: HTTP/1.x).
    stream: u32,
    /// Status, reason and the application's header fields, encoded as they are set.
    head: ResponseHead,
    /// A header the encoder refused (not a token name): reported by `write`/`end`, as
    /// before the head was built as headers came.
    refused: Option<String>,
    pub(crate) state: State,
    keep_alive: bool,
    is_head: bool,
    version: Version,
    gzip_ok: bool,
    compress_min: usize,
    pub(crate) range: Option<Vec<u8>>,
    pub(crate) if_none_match: Option<Vec<u8>>,
    pub(crate) if_modified_since: Option<String>,
    /// Bytes handed to the connection so far (head and body), for the access log.
    sent: u64,
    /// The clock read of the request's start, used for the `Date` header while the handler
    /// answers in its first poll (one clock read per request, not two); `None` after it
    /// waited, when the head reads the clock itself.
    pub(crate) now: Option<SystemTime>,
}

/// The response to one request. Moved into the handler; cheap to clone (the clones share
/// one response).
///
/// # Examples
///
/// ```no_run
/// use rswoole::http::{HttpServer, Response};
///
/// fn main() -> rswoole::Result<()> {
///     let mut server = HttpServer::bind("127.0.0.1:9501")?;
///     server.on_request(|_srv, _req, mut resp: Response| async move {
///         resp.status(201)?.header("content-type", "application/json")?;
///         resp.cookie("seen", "1")?;
///         resp.end(r#"{"ok":true}"#)
///     });
///     server.start()
/// }
/// ```
#[derive(Debug, Clone)]
pub struct Response {
    pub(crate) inner: Rc<RefCell<Inner>>,
}

thread_local! {
    /// The `Date` value of the second `[from, until)`.
    static DATE: RefCell<(SystemTime, SystemTime, Bytes)> =
        const { RefCell::new((SystemTime::UNIX_EPOCH, SystemTime::UNIX_EPOCH, Bytes::new())) };
    /// A finished response's shared state, reused by the next response of this thread (no
    /// allocation for it, nor for its header fields, per request).
    static SPARE: SpareResponse = const { SpareResponse(RefCell::new(None)) };
    /// Where responses are encoded before they go to the connection (which copies them):
    /// one buffer per thread, reused, instead of one allocation per response.
    static SCRATCH: RefCell<BytesMut> = RefCell::new(BytesMut::new());
}

/// The slot of [`SPARE`]. Its response still holds the worker's handle: when the thread's
/// locals are destroyed (at exit, after the runtime is gone), it is let go without running
/// any destructor, so that nothing of the worker is torn down from there.
struct SpareResponse(RefCell<Option<Rc<RefCell<Inner>>>>);

impl Drop for SpareResponse {
    fn drop(&mut self) {
        if let Some(rc) = self.0.get_mut().take() {
            std::mem::forget(rc);
        }
    }
}

/// The scratch buffer kept between responses up to this capacity (a large body's is freed).
const SCRATCH_KEEP: usize = 64 * 1024;

/// Runs `f` with this thread's (empty) encoding buffer.
fn with_scratch<R>(f: impl FnOnce(&mut BytesMut) -> R) -> R {
    // Taken out, not borrowed across `f`: a nested use gets a fresh buffer.
    let mut out = SCRATCH.with(|s| std::mem::take(&mut *s.borrow_mut()));
    let r = f(&mut out);
    if out.capacity() <= SCRATCH_KEEP {
        out.clear();
        SCRATCH.with(|s| *s.borrow_mut() = out);
    }
    r
}

/// The `Date` header value for `now`, formatted once per second and shared (no copy per
/// response).
pub(crate) fn http_date(now: SystemTime) -> Bytes {
    DATE.with(|d| {
        let mut d = d.borrow_mut();
        // Two compares in the same second (a `duration_since` costs some forty instructions).
        if now < d.0 || now >= d.1 {
            let secs = now
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            let from = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs);
            let until = from + std::time::Duration::from_secs(1);
            *d = (from, until, Bytes::from(httpdate::fmt_http_date(now)));
        }
        d.2.clone()
    })
}

fn check_header(name: &str, value: &str) -> Result<(), HttpError> {
    let bad_name = name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic() && b != b':');
    let bad_value = value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0);
    if bad_name || bad_value {
        return Err(HttpError::Invalid(format!("{name:?}: {value:?}")));
    }
    Ok(())
}

impl Response {
    pub(crate) fn new(
        handle: Handle,
        fd: ConnId,
        stream: u32,
        head: &http1::RequestHead,
        settings: &super::HttpSettings,
        now: SystemTime,
    ) -> Response {
        // After an upgrade the old server closes each connection after its reply, so that
        // the client's next request reaches the new one.
        let keep_alive = head.keep_alive() && !handle.ctx.shared.draining();
        // One pass over the request's headers (names are lower-cased), first of each kept.
        let (mut accept_encoding, mut range, mut inm, mut ims) = (None, None, None, None);
        for (name, value) in head.raw_headers() {
            let slot = match name {
                b"accept-encoding" => &mut accept_encoding,
                b"range" => &mut range,
                b"if-none-match" => &mut inm,
                b"if-modified-since" => &mut ims,
                _ => continue,
            };
            slot.get_or_insert(value);
        }
        let gzip_ok = settings.http_compression && accept_encoding.is_some_and(http1::accepts_gzip);
        let range = range.map(<[u8]>::to_vec);
        let if_none_match = inm.map(<[u8]>::to_vec);
        let if_modified_since = ims
            .and_then(|v| std::str::from_utf8(v).ok())
            .map(str::to_string);
        let (is_head, version) = (head.is_head(), head.version());
        let compress_min = settings.compression_min_length;
        let spare = SPARE
            .try_with(|s| s.0.try_borrow_mut().ok().and_then(|mut s| s.take()))
            .ok()
            .flatten();
        match spare {
            Some(rc) => {
                {
                    // Reset in place, field by field (the pattern names every field): a
                    // whole new `Inner` moved in would be built on the stack and copied.
                    let mut i = rc.borrow_mut();
                    let Inner {
                        handle: i_handle,
                        fd: i_fd,
                        stream: i_stream,
                        head: i_head,
                        refused: i_refused,
                        state: i_state,
                        keep_alive: i_keep_alive,
                        is_head: i_is_head,
                        version: i_version,
                        gzip_ok: i_gzip_ok,
                        compress_min: i_compress_min,
                        range: i_range,
                        if_none_match: i_if_none_match,
                        if_modified_since: i_if_modified_since,
                        sent: i_sent,
                        now: i_now,
                    } = &mut *i;
                    *i_handle = handle;
                    *i_fd = fd;
                    *i_stream = stream;
                    i_head.clear(200);
                    *i_refused = None;
                    *i_state = State::Fresh;
                    *i_keep_alive = keep_alive;
                    *i_is_head = is_head;
                    *i_version = version;
                    *i_gzip_ok = gzip_ok;
                    *i_compress_min = compress_min;
                    *i_range = range;
                    *i_if_none_match = if_none_match;
                    *i_if_modified_since = if_modified_since;
                    *i_sent = 0;
                    *i_now = Some(now);
                }
                Response { inner: rc }
            }
            None => Response {
                inner: Rc::new(RefCell::new(Inner {
                    handle,
                    fd,
                    stream,
                    head: ResponseHead::new(200),
                    refused: None,
                    state: State::Fresh,
                    keep_alive,
                    is_head,
                    version,
                    gzip_ok,
                    compress_min,
                    range,
                    if_none_match,
                    if_modified_since,
                    sent: 0,
                    now: Some(now),
                })),
            },
        }
    }

    /// Keeps this response's shared state for the next response of this thread when nothing
    /// else holds it (the handler and its tasks are done with it): this one, the last, is
    /// about to be dropped.
    pub(crate) fn recycle(&self) {
        if Rc::strong_count(&self.inner) == 1 && Rc::weak_count(&self.inner) == 0 {
            let _ = SPARE.try_with(|s| {
                if let Ok(mut s) = s.0.try_borrow_mut() {
                    *s = Some(self.inner.clone());
                }
            });
        }
    }

    fn fresh(&self) -> Result<std::cell::RefMut<'_, Inner>, HttpError> {
        let i = self.inner.borrow_mut();
        match i.state {
            State::Fresh => Ok(i),
            State::Streaming => Err(HttpError::HeadersSent),
            State::Ended => Err(HttpError::HeadersSent),
        }
    }

    /// Sets the status code (reason phrase from the standard list).
    ///
    /// # Errors
    /// [`HttpError::HeadersSent`] after `write`/`end`; [`HttpError::Invalid`] outside 100–999.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use rswoole::http::HttpServer;
    ///
    /// fn main() -> rswoole::Result<()> {
    ///     let mut server = HttpServer::bind("127.0.0.1:9501")?;
    ///     server.on_request(|_srv, _req, mut resp| async move {
    ///         resp.status(404)?;
    ///         resp.end("no such page")
    ///     });
    ///     server.start()
    /// }
    /// ```
    pub fn status(&mut self, code: u16) -> Result<&mut Self, HttpError> {
        if !(100..=999).contains(&code) {
            return Err(HttpError::Invalid(format!("status {code}")));
        }
        let mut i = self.fresh()?;
        i.head
            .set_status(code)
            .map_err(|e| HttpError::Invalid(e.to_string()))?;
        drop(i);
        Ok(self)
    }

    /// Sets the status code with a custom reason phrase.
    ///
    /// # Errors
    /// As [`status`](Self::status); a reason with CR/LF is [`HttpError::Invalid`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use rswoole::http::HttpServer;
    ///
    /// fn main() -> rswoole::Result<()> {
    ///     let mut server = HttpServer::bind("127.0.0.1:9501")?;
    ///     server.on_request(|_srv, _req, mut resp| async move {
    ///         resp.status_reason(599, "Network Connect Timeout")?;
    ///         resp.end("")
    ///     });
    ///     server.start()
    /// }
    /// ```
    pub fn status_reason(&mut self, code: u16, reason: &str) -> Result<&mut Self, HttpError> {
        check_header("x", reason)?;
        self.status(code)?;
        self.inner
            .borrow_mut()
            .head
            .reason_phrase(reason)
            .map_err(|e| HttpError::Invalid(e.to_string()))?;
        Ok(self)
    }

    /// Adds a header (`Content-Length`, `Transfer-Encoding` and `Date` are managed for you).
    ///
    /// # Errors
    /// [`HttpError::HeadersSent`] after `write`/`end`; [`HttpError::Invalid`] for CR/LF.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use rswoole::http::HttpServer;
    ///
    /// fn main() -> rswoole::Result<()> {
    ///     let mut server = HttpServer::bind("127.0.0.1:9501")?;
    ///     server.on_request(|_srv, _req, mut resp| async move {
    ///         resp.header("content-type", "text/html; charset=utf-8")?
    ///             .header("cache-control", "no-store")?;
    ///         resp.end("<h1>hi</h1>")
    ///     });
    ///     server.start()
    /// }
    /// ```
    pub fn header(&mut self, name: &str, value: &str) -> Result<&mut Self, HttpError> {
        let mut i = match self.fresh() {
            Ok(i) => i,
            Err(e) => {
                check_header(name, value)?;
                return Err(e);
            }
        };
        // The encoder checks the field (a token name, no CR/LF/NUL in the value) as it adds
        // it; only a field it refuses is looked at again, to tell an invalid one (an error
        // now) from a name that is merely not a token (reported by `write`/`end`).
        if let Err(e) = i.head.header(name, value) {
            check_header(name, value)?;
            if i.refused.is_none() {
                i.refused = Some(e.to_string());
            }
        }
        if name.eq_ignore_ascii_case("connection") && value.eq_ignore_ascii_case("close") {
            i.keep_alive = false;
        }
        drop(i);
        Ok(self)
    }

    /// Sets a cookie with attributes (value percent-encoded as PHP's `setcookie`).
    ///
    /// # Errors
    /// [`HttpError::HeadersSent`] after `write`/`end`; [`HttpError::Invalid`] for a bad name.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use rswoole::http::{HttpServer, SameSite, SetCookie};
    ///
    /// fn main() -> rswoole::Result<()> {
    ///     let mut server = HttpServer::bind("127.0.0.1:9501")?;
    ///     server.on_request(|_srv, _req, mut resp| async move {
    ///         let sid = SetCookie::new("sid", "abc123")
    ///             .path("/")
    ///             .http_only(true)
    ///             .secure(true)
    ///             .same_site(SameSite::Lax)
    ///             .max_age(3600);
    ///         resp.set_cookie(&sid)?;
    ///         resp.end("logged in")
    ///     });
    ///     server.start()
    /// }
    /// ```
    pub fn set_cookie(&mut self, cookie: &SetCookie<'_>) -> Result<&mut Self, HttpError> {
        let v = cookie
            .encode()
            .map_err(|e| HttpError::Invalid(e.to_string()))?;
        self.fresh()?.add("set-cookie", v.as_bytes());
        Ok(self)
    }

    /// Sets a plain cookie (`name=value; path=/`).
    ///
    /// # Errors
    /// As [`set_cookie`](Self::set_cookie).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use rswoole::http::HttpServer;
    ///
    /// fn main() -> rswoole::Result<()> {
    ///     let mut server = HttpServer::bind("127.0.0.1:9501")?;
    ///     server.on_request(|_srv, _req, mut resp| async move {
    ///         resp.cookie("theme", "dark mode")?; // theme=dark+mode; path=/
    ///         resp.end("saved")
    ///     });
    ///     server.start()
    /// }
    /// ```
    pub fn cookie(&mut self, name: &str, value: &str) -> Result<&mut Self, HttpError> {
        self.set_cookie(&SetCookie::new(name, value).path("/"))
    }

    /// Sends a body chunk now (chunked transfer encoding; headers go first).
    ///
    /// # Errors
    /// [`HttpError::Ended`] after `end`; [`HttpError::Send`] if the client is gone.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use rswoole::http::HttpServer;
    ///
    /// fn main() -> rswoole::Result<()> {
    ///     let mut server = HttpServer::bind("127.0.0.1:9501")?;
    ///     server.on_request(|_srv, _req, mut resp| async move {
    ///         for i in 0..3 {
    ///             resp.write(format!("chunk {i}\n"))?; // sent at once, chunked
    ///             tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    ///         }
    ///         resp.end("done\n")
    ///     });
    ///     server.start()
    /// }
    /// ```
    pub fn write(&mut self, data: impl AsRef<[u8]>) -> Result<(), HttpError> {
        let data = data.as_ref();
        let mut i = self.inner.borrow_mut();
        if i.stream != 0 {
            return i.h2_write(data);
        }
        with_scratch(|out| {
            match i.state {
                State::Ended => return Err(HttpError::Ended),
                State::Fresh => {
                    i.encode_head(out, BodyLength::Streaming)?;
                    i.state = State::Streaming;
                }
                State::Streaming => {}
            }
            if !data.is_empty() && !i.is_head {
                if i.version == Version::Http10 {
                    out.extend_from_slice(data);
                } else {
                    http1::encode_chunk(data, out);
                }
            }
            i.send(out)
        })
    }

    /// Finishes the response with a last piece of body (may be empty).
    ///
    /// # Errors
    /// [`HttpError::Ended`] if already ended; [`HttpError::Send`] if the client is gone.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use rswoole::http::HttpServer;
    ///
    /// fn main() -> rswoole::Result<()> {
    ///     let mut server = HttpServer::bind("127.0.0.1:9501")?;
    ///     server.on_request(|_srv, _req, mut resp| async move {
    ///         resp.end("Hello World")?; // Content-Length: 11
    ///         assert!(resp.end("again").is_err());
    ///         Ok::<(), rswoole::http::HttpError>(())
    ///     });
    ///     server.start()
    /// }
    /// ```
    pub fn end(&mut self, data: impl AsRef<[u8]>) -> Result<(), HttpError> {
        let data = data.as_ref();
        let mut i = self.inner.borrow_mut();
        if i.stream != 0 {
            return i.h2_end(data);
        }
        with_scratch(|out| {
            match i.state {
                State::Ended => return Err(HttpError::Ended),
                State::Fresh => {
                    let compressed = i.maybe_gzip(data);
                    let body: &[u8] = compressed.as_deref().unwrap_or(data);
                    i.encode_head(out, BodyLength::Known(body.len() as u64))?;
                    if !i.is_head {
                        out.extend_from_slice(body);
                    }
                }
                State::Streaming => {
                    if !i.is_head {
                        if i.version == Version::Http10 {
                            out.extend_from_slice(data);
                        } else {
                            if !data.is_empty() {
                                http1::encode_chunk(data, out);
                            }
                            http1::encode_last_chunk(out);
                        }
                    }
                }
            }
            i.state = State::Ended;
            let r = i.send(out);
            if !i.keep_alive {
                let _ = i.handle.close(i.fd);
            }
            r
        })
    }

    /// Redirects with `Location: url` (`code` 301, 302, 303, 307 or 308).
    ///
    /// # Errors
    /// As [`header`](Self::header) and [`end`](Self::end).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use rswoole::http::HttpServer;
    ///
    /// fn main() -> rswoole::Result<()> {
    ///     let mut server = HttpServer::bind("127.0.0.1:9501")?;
    ///     server.on_request(|_srv, req, mut resp| async move {
    ///         if req.path == "/old" {
    ///             return resp.redirect("/new", 301);
    ///         }
    ///         resp.end("new page")
    ///     });
    ///     server.start()
    /// }
    /// ```
    pub fn redirect(&mut self, url: &str, code: u16) -> Result<(), HttpError> {
        self.status(code)?;
        self.header("location", url)?;
        self.end("")
    }

    /// Sends a file, honouring `Range` (206/416), `If-None-Match` / `If-Modified-Since` (304),
    /// with `Content-Type` guessed from the extension unless set.
    ///
    /// # Errors
    /// [`HttpError::File`] if it cannot be read; as [`end`](Self::end).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use rswoole::http::HttpServer;
    ///
    /// fn main() -> rswoole::Result<()> {
    ///     let mut server = HttpServer::bind("127.0.0.1:9501")?;
    ///     server.on_request(|_srv, req, mut resp| async move {
    ///         if req.path == "/report.pdf" {
    ///             return resp.sendfile("/srv/files/report.pdf"); // Range and 304 handled
    ///         }
    ///         resp.status(404)?;
    ///         resp.end("")
    ///     });
    ///     server.start()
    /// }
    /// ```
    pub fn sendfile(&mut self, path: impl AsRef<std::path::Path>) -> Result<(), HttpError> {
        super::static_files::send_file(self, path.as_ref())
    }

    /// Whether `end` (or `sendfile`, `redirect`) has run.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use rswoole::http::HttpServer;
    ///
    /// fn main() -> rswoole::Result<()> {
    ///     let mut server = HttpServer::bind("127.0.0.1:9501")?;
    ///     server.on_request(|_srv, req, mut resp| async move {
    ///         if req.path.starts_with("/old/") {
    ///             resp.redirect("/", 302)?;
    ///         }
    ///         if !resp.is_ended() {
    ///             resp.end("default page")?;
    ///         }
    ///         Ok::<(), rswoole::http::HttpError>(())
    ///     });
    ///     server.start()
    /// }
    /// ```
    pub fn is_ended(&self) -> bool {
        self.inner.borrow().state == State::Ended
    }

    pub(crate) fn has_header(&self, name: &str) -> bool {
        self.inner.borrow().head.field(name).is_some()
    }

    pub(crate) fn state(&self) -> State {
        self.inner.borrow().state
    }

    /// The status code and the bytes sent so far (metrics and the access log).
    pub(crate) fn outcome(&self) -> (u16, u64) {
        let i = self.inner.borrow();
        (i.head.status(), i.sent)
    }

    /// Whether this answers a HEAD request (no body goes out).
    pub(crate) fn is_head(&self) -> bool {
        self.inner.borrow().is_head
    }

    /// Ends a HEAD answer with the `Content-Length` the GET answer would have: `len`.
    pub(crate) fn end_head(&mut self, len: u64) -> Result<(), HttpError> {
        let mut i = self.inner.borrow_mut();
        if i.state != State::Fresh {
            return Err(HttpError::HeadersSent);
        }
        if i.stream != 0 {
            return i.h2_end_head(len);
        }
        with_scratch(|out| {
            i.encode_head(out, BodyLength::Known(len))?;
            i.state = State::Ended;
            let r = i.send(out);
            if !i.keep_alive {
                let _ = i.handle.close(i.fd);
            }
            r
        })
    }

    /// Ends the response with a trailer section (names and values already valid, as
    /// `http::HeaderMap` guarantees): the body goes chunked, starting now if it has not
    /// started. HTTP/1.0 has no trailers and a HEAD answer no body: there they are dropped.
    pub(crate) fn end_with_trailers(&mut self, fields: &[(&str, &[u8])]) -> Result<(), HttpError> {
        if self.inner.borrow().stream != 0 {
            return self.inner.borrow_mut().h2_end_with_trailers(fields);
        }
        if self.state() == State::Fresh {
            self.write([])?;
        }
        let mut i = self.inner.borrow_mut();
        if i.state == State::Ended {
            return Err(HttpError::Ended);
        }
        let mut out = BytesMut::new();
        if !i.is_head && i.version != Version::Http10 {
            out.extend_from_slice(b"0\r\n");
            for (k, v) in fields {
                out.extend_from_slice(k.as_bytes());
                out.extend_from_slice(b": ");
                out.extend_from_slice(v);
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"\r\n");
        }
        i.state = State::Ended;
        let r = i.send(&out);
        if !i.keep_alive {
            let _ = i.handle.close(i.fd);
        }
        r
    }

    /// Ends the response with a raw body without compression (for files).
    pub(crate) fn end_raw(&mut self, body: &[u8]) -> Result<(), HttpError> {
        let mut i = self.inner.borrow_mut();
        if i.state != State::Fresh {
            return Err(HttpError::HeadersSent);
        }
        if i.stream != 0 {
            return i.h2_end_raw(body);
        }
        with_scratch(|out| {
            i.encode_head(out, BodyLength::Known(body.len() as u64))?;
            if !i.is_head {
                out.extend_from_slice(body);
            }
            i.state = State::Ended;
            let r = i.send(out);
            if !i.keep_alive {
                let _ = i.handle.close(i.fd);
            }
            r
        })
    }
}

impl Inner {
    fn encode_head(&mut self, out: &mut BytesMut, body: BodyLength) -> Result<(), HttpError> {
        // An upgrade may have started while the request was handled: a connection that did
        // not move to the new master closes after this reply.
        if self.handle.ctx.shared.draining() {
            self.keep_alive = false;
        }
        if let Some(e) = &self.refused {
            return Err(HttpError::Invalid(e.clone()));
        }
        let (version, keep_alive, is_head) = (self.version, self.keep_alive, self.is_head);
        let h = &mut self.head;
        h.version(version)
            .keep_alive(keep_alive)
            .head_request(is_head)
            .body(body);
        h.date_shared(http_date(self.now.unwrap_or_else(SystemTime::now)))
            .map_err(|e| HttpError::Invalid(e.to_string()))?;
        if h.encode(out).must_close() {
            self.keep_alive = false;
        }
        Ok(())
    }

    /// Adds a header field the caller checked with `check_header`; one the encoder refuses
    /// is reported when the head goes out.
    fn add(&mut self, name: &str, value: &[u8]) {
        if let Err(e) = self.head.header(name, value) {
            if self.refused.is_none() {
                self.refused = Some(e.to_string());
            }
        }
    }

    fn maybe_gzip(&mut self, data: &[u8]) -> Option<Vec<u8>> {
        if !self.gzip_ok
            || data.len() < self.compress_min
            || self.head.field("content-encoding").is_some()
        {
            return None;
        }
        let ct = self
            .head
            .field("content-type")
            .and_then(|v| std::str::from_utf8(v).ok())
            .unwrap_or("text/html");
        let compressible = ct.starts_with("text/")
            || ct.contains("json")
            || ct.contains("javascript")
            || ct.contains("xml")
            || ct.contains("svg");
        if !compressible {
            return None;
        }
        let mut enc = flate2::write::GzEncoder::new(
            Vec::with_capacity(data.len() / 2),
            flate2::Compression::fast(),
        );
        enc.write_all(data).ok()?;
        let out = enc.finish().ok()?;
        self.add("content-encoding", b"gzip");
        self.add("vary", b"Accept-Encoding");
        Some(out)
    }

    fn send(&mut self, out: &[u8]) -> Result<(), HttpError> {
        if out.is_empty() {
            return Ok(());
        }
        self.sent += out.len() as u64;
        self.handle
            .ctx
            .send_stream_slice(self.fd, self.stream, out)
            .map_err(HttpError::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn http_date_is_shared_within_its_second_and_new_after() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let a = http_date(t);
        assert_eq!(&a[..], b"Tue, 14 Nov 2023 22:13:20 GMT");
        let b = http_date(t + Duration::from_millis(999));
        assert_eq!(
            a.as_ptr(),
            b.as_ptr(),
            "same second: the same bytes, shared"
        );
        assert_eq!(
            &http_date(t + Duration::from_secs(1))[..],
            b"Tue, 14 Nov 2023 22:13:21 GMT"
        );
        // An earlier time (a clock stepped back) is formatted anew, not taken from the cache.
        assert_eq!(
            &http_date(t - Duration::from_millis(1))[..],
            b"Tue, 14 Nov 2023 22:13:19 GMT"
        );
    }
}
