//! The request object a handler gets.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::SystemTime;

use bytes::{Bytes, BytesMut};
use rswoole_codec::http1::{self, MultipartEvent, MultipartParser, RequestHead};

use crate::base::ConnId;

/// Name/value pairs in arrival order (query, form fields, cookies, headers). Names may repeat.
///
/// # Examples
///
/// ```no_run
/// use rswoole::http::HttpServer;
///
/// fn main() -> rswoole::Result<()> {
///     let mut server = HttpServer::bind("127.0.0.1:9501")?;
///     server.on_request(|_srv, req, mut resp| async move {
///         // GET /search?q=rust&tag=a&tag=b
///         let q = req.get.get("q").unwrap_or("");
///         let tags: Vec<&str> = req.get.get_all("tag").collect();
///         let cookies = req.cookie.len();
///         resp.end(format!("q={q} tags={tags:?} cookies={cookies}"))
///     });
///     server.start()
/// }
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Params(pub(crate) Vec<(PStr, PStr)>);

thread_local! {
    /// The vectors of dropped [`Params`], reused by the next requests of this thread (the
    /// request's headers, at least, need one per request).
    static PARAMS: std::cell::RefCell<Vec<Vec<(PStr, PStr)>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// [`Params`] vectors kept per thread for reuse (at most), and the largest kept.
const PARAMS_KEPT: usize = 8;
const PARAMS_MAX_CAP: usize = 64;

impl Params {
    /// Empty, with room for `n` pairs: a reused vector when this thread has one.
    pub(crate) fn with_capacity(n: usize) -> Params {
        let spare = PARAMS
            .try_with(|p| p.try_borrow_mut().ok().and_then(|mut p| p.pop()))
            .ok()
            .flatten();
        Params(match spare {
            Some(mut v) => {
                v.reserve(n);
                v
            }
            None => Vec::with_capacity(n),
        })
    }
}

impl Drop for Params {
    // Inlined, out of line only for a vector to keep: a request's empty `get`, `post` and
    // `cookie` cost a compare each, not a call.
    #[inline]
    fn drop(&mut self) {
        let cap = self.0.capacity();
        if cap == 0 || cap > PARAMS_MAX_CAP {
            return;
        }
        self.keep();
    }
}

impl Params {
    /// Gives this vector (emptied) to the thread's spares.
    #[inline(never)]
    fn keep(&mut self) {
        let mut v = std::mem::take(&mut self.0);
        v.clear();
        let _ = PARAMS.try_with(|p| {
            if let Ok(mut p) = p.try_borrow_mut() {
                if p.len() < PARAMS_KEPT {
                    p.push(v);
                }
            }
        });
    }
}

/// A name or value of [`Params`]: decoded (owned), or a slice of the request head as sent
/// (headers: valid UTF-8, shared with the head, no copy).
#[derive(Clone)]
pub(crate) enum PStr {
    Owned(String),
    Shared(Bytes),
    /// A common method or the root path: no UTF-8 check, no reference count.
    Static(&'static str),
}

impl PStr {
    fn as_bytes(&self) -> &[u8] {
        match self {
            PStr::Owned(s) => s.as_bytes(),
            PStr::Shared(b) => b,
            PStr::Static(s) => s.as_bytes(),
        }
    }
    fn as_str(&self) -> &str {
        match self {
            PStr::Owned(s) => s,
            // Only UTF-8 is stored shared (checked when the request was built).
            PStr::Shared(b) => std::str::from_utf8(b).unwrap_or(""),
            PStr::Static(s) => s,
        }
    }
    /// `b` as is when it is UTF-8, else with the bad sequences replaced (as
    /// `String::from_utf8_lossy` does).
    fn shared(b: Bytes) -> PStr {
        // ASCII first: most values are, and the check is a few word compares where
        // `from_utf8` costs a hundred instructions even for a short value.
        if b.is_ascii() || std::str::from_utf8(&b).is_ok() {
            PStr::Shared(b)
        } else {
            PStr::Owned(String::from_utf8_lossy(&b).into_owned())
        }
    }
}

/// Text of a request (its method, target and path): a `str` that shares the request's
/// buffer when it can (no copy), else owns its bytes (a percent-decoded path).
///
/// It derefs to `str` and compares with `&str` and `String`; [`as_str`](Self::as_str) and
/// `to_string()` (or `String::from`) give the usual forms.
///
/// # Examples
///
/// ```no_run
/// use rswoole::http::HttpServer;
///
/// fn main() -> rswoole::Result<()> {
///     let mut server = HttpServer::bind("127.0.0.1:9501")?;
///     server.on_request(|_srv, req, mut resp| async move {
///         if req.method == "POST" && req.path.starts_with("/api/") {
///             return resp.end(format!("posted to {}", req.path));
///         }
///         match (req.method.as_str(), req.path.as_str()) {
///             ("GET", "/") => resp.end("home"),
///             _ => resp.status(404)?.end("not found"),
///         }
///     });
///     server.start()
/// }
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Text(PStr);

impl Text {
    /// Shares `b`, UTF-8 (checked by the parser; anything else is replaced as
    /// `String::from_utf8_lossy` does).
    pub(crate) fn shared(b: Bytes) -> Text {
        Text(PStr::shared(b))
    }
    /// As [`shared`](Self::shared), for a request line's method or target: the common
    /// methods and `/` are static strings (no check, no reference count).
    pub(crate) fn line(b: Bytes) -> Text {
        const COMMON: [&str; 8] = [
            "GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH", "/",
        ];
        match COMMON.iter().find(|c| c.as_bytes() == &b[..]) {
            Some(c) => Text(PStr::Static(c)),
            None => Text::shared(b),
        }
    }
    /// The text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl std::ops::Deref for Text {
    type Target = str;
    fn deref(&self) -> &str {
        self.0.as_str()
    }
}
impl AsRef<str> for Text {
    fn as_ref(&self) -> &str {
        self.0.as_str()
    }
}
impl std::borrow::Borrow<str> for Text {
    fn borrow(&self) -> &str {
        self.0.as_str()
    }
}
impl std::fmt::Display for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.as_str())
    }
}
impl std::fmt::Debug for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.0.as_str(), f)
    }
}
impl PartialEq<str> for Text {
    fn eq(&self, other: &str) -> bool {
        self.0.as_bytes() == other.as_bytes()
    }
}
impl PartialEq<&str> for Text {
    fn eq(&self, other: &&str) -> bool {
        self.0.as_bytes() == other.as_bytes()
    }
}
impl PartialEq<String> for Text {
    fn eq(&self, other: &String) -> bool {
        self.0.as_bytes() == other.as_bytes()
    }
}
impl PartialEq<Text> for str {
    fn eq(&self, other: &Text) -> bool {
        self.as_bytes() == other.0.as_bytes()
    }
}
impl PartialEq<Text> for &str {
    fn eq(&self, other: &Text) -> bool {
        self.as_bytes() == other.0.as_bytes()
    }
}
impl From<String> for Text {
    fn from(s: String) -> Text {
        Text(PStr::Owned(s))
    }
}
impl From<&str> for Text {
    fn from(s: &str) -> Text {
        Text(PStr::Owned(s.to_owned()))
    }
}
impl From<Text> for String {
    fn from(t: Text) -> String {
        match t.0 {
            PStr::Owned(s) => s,
            PStr::Shared(_) | PStr::Static(_) => t.as_str().to_owned(),
        }
    }
}

impl PartialEq for PStr {
    fn eq(&self, other: &PStr) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}
impl Eq for PStr {}

impl std::fmt::Debug for PStr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl std::fmt::Debug for Params {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Params").field(&self.0).finish()
    }
}

impl Params {
    /// Decoded pairs (query, form fields, cookies).
    pub(crate) fn owned(pairs: Vec<(String, String)>) -> Params {
        Params(
            pairs
                .into_iter()
                .map(|(k, v)| (PStr::Owned(k), PStr::Owned(v)))
                .collect(),
        )
    }
    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.as_bytes() == name.as_bytes())
            .map(|(_, v)| v.as_str())
    }
    /// Every value of `name`.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k.as_bytes() == name.as_bytes())
            .map(|(_, v)| v.as_str())
    }
    /// All pairs.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// No pairs.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// An uploaded file (multipart/form-data), streamed to a temporary file while the request
/// arrived. The file is removed when the [`Request`] is dropped unless [`persist`](Self::persist)
/// moved it.
///
/// # Examples
///
/// ```no_run
/// use rswoole::http::HttpServer;
///
/// fn main() -> rswoole::Result<()> {
///     let mut server = HttpServer::bind("127.0.0.1:9501")?;
///     server.on_request(|_srv, mut req, mut resp| async move {
///         for file in &mut req.files {
///             println!("{} ({} bytes, {}) in field {}", file.name, file.size, file.content_type, file.field);
///             let name = std::path::Path::new(&file.name).file_name().unwrap_or_default().to_owned();
///             file.persist(&std::path::Path::new("/srv/uploads").join(name))
///                 .map_err(|e| e.to_string())?;
///         }
///         resp.end("stored").map_err(|e| e.to_string())
///     });
///     server.start()
/// }
/// ```
#[derive(Debug)]
pub struct UploadedFile {
    /// The form field name.
    pub field: String,
    /// The client's file name.
    pub name: String,
    /// The part's Content-Type.
    pub content_type: String,
    /// Size in bytes.
    pub size: u64,
    /// Where the bytes are now: a file in `upload_tmp_dir` (or the system temp dir) named
    /// `rswoole-upload-` and random characters, created exclusively (`O_EXCL`, so never over
    /// an existing file or through a symlink) with mode 0600.
    pub tmp_path: PathBuf,
    kept: bool,
}

impl UploadedFile {
    /// Moves the file to `to` (so it is not removed with the request).
    ///
    /// # Errors
    /// The rename's I/O error.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use rswoole::http::HttpServer;
    ///
    /// fn main() -> rswoole::Result<()> {
    ///     let mut server = HttpServer::bind("127.0.0.1:9501")?;
    ///     server.on_request(|_srv, mut req, mut resp| async move {
    ///         if let Some(file) = req.files.first_mut() {
    ///             file.persist(std::path::Path::new("/srv/uploads/latest")).map_err(|e| e.to_string())?;
    ///         }
    ///         resp.end("ok").map_err(|e| e.to_string())
    ///     });
    ///     server.start()
    /// }
    /// ```
    pub fn persist(&mut self, to: &std::path::Path) -> std::io::Result<()> {
        std::fs::rename(&self.tmp_path, to)
            .or_else(|_| std::fs::copy(&self.tmp_path, to).map(|_| ()))?;
        self.kept = true;
        Ok(())
    }
}

impl Drop for UploadedFile {
    fn drop(&mut self) {
        if !self.kept {
            let _ = std::fs::remove_file(&self.tmp_path);
        }
    }
}

/// Where a request came from (Swoole's `$request->server`).
///
/// # Examples
///
/// ```no_run
/// use rswoole::http::HttpServer;
///
/// fn main() -> rswoole::Result<()> {
///     let mut server = HttpServer::bind("127.0.0.1:9501")?;
///     server.on_request(|_srv, req, mut resp| async move {
///         let s = &req.server;
///         resp.end(format!("{} via {} on port {} ({})", s.remote_addr, s.peer_addr, s.server_port, s.protocol))
///     });
///     server.start()
/// }
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RequestInfo {
    /// The client: the peer, or the address named by `X-Forwarded-For` when the peer is a
    /// trusted proxy.
    pub remote_addr: SocketAddr,
    /// The TCP peer (the proxy, behind one).
    pub peer_addr: SocketAddr,
    /// The local port.
    pub server_port: u16,
    /// When the request was handed to the worker.
    pub request_time: SystemTime,
    /// `HTTP/1.0` or `HTTP/1.1`.
    pub protocol: &'static str,
    /// The request came over TLS (https, wss).
    pub tls: bool,
    /// mTLS: the SHA-256 of the client's verified certificate (see
    /// [`ConnectionInfo::peer_cert_sha256`](crate::ConnectionInfo::peer_cert_sha256)).
    pub peer_cert_sha256: Option<[u8; 32]>,
}

/// An HTTP request: method, URI, query (`get`), form (`post`), cookies, uploaded files,
/// headers (lower-cased names, repeats kept), connection info (`server`) and the raw body.
///
/// # Examples
///
/// ```no_run
/// use rswoole::http::{HttpServer, Request};
///
/// fn main() -> rswoole::Result<()> {
///     let mut server = HttpServer::bind("127.0.0.1:9501")?;
///     server.on_request(|_srv, req: Request, mut resp| async move {
///         println!("{} {} from {}", req.method, req.uri, req.server.remote_addr);
///         let agent = req.header("user-agent").unwrap_or("?");
///         let name = req.post.get("name").or(req.get.get("name")).unwrap_or("stranger");
///         resp.end(format!("hello {name} ({agent}), keep-alive: {}", req.keep_alive()))
///     });
///     server.start()
/// }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub struct Request {
    /// The connection.
    pub fd: ConnId,
    /// `GET`, `POST`, … (shares the request's buffer; compare with `req.method == "GET"`).
    pub method: Text,
    /// The request target as sent (origin form, or absolute form; shares the request's buffer).
    pub uri: Text,
    /// The path, percent-decoded (shares the request's buffer when there was nothing to decode).
    pub path: Text,
    /// The raw query string (without `?`).
    pub query_string: String,
    /// Query parameters.
    pub get: Params,
    /// Form fields (`application/x-www-form-urlencoded` or `multipart/form-data`).
    pub post: Params,
    /// Cookies.
    pub cookie: Params,
    /// Headers, names lower-cased.
    pub header: Params,
    /// Uploaded files.
    pub files: Vec<UploadedFile>,
    /// Connection details.
    pub server: RequestInfo,
    /// The raw body (empty for multipart bodies, which are parsed into `post` and `files`).
    pub body: Bytes,
    pub(crate) head: RequestHead,
    /// The tower adapter: the body streams (it is larger than one event), `body` is empty.
    pub(crate) stream: Option<super::service::BodyFeed>,
}

impl Request {
    /// A header's first value (`name` lower-case).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use rswoole::http::HttpServer;
    ///
    /// fn main() -> rswoole::Result<()> {
    ///     let mut server = HttpServer::bind("127.0.0.1:9501")?;
    ///     server.on_request(|_srv, req, mut resp| async move {
    ///         let lang = req.header("accept-language").unwrap_or("en");
    ///         resp.end(format!("lang: {lang}"))
    ///     });
    ///     server.start()
    /// }
    /// ```
    pub fn header(&self, name: &str) -> Option<&str> {
        self.header.get(name)
    }
    /// Whether the client wants the connection kept open.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use rswoole::http::HttpServer;
    ///
    /// fn main() -> rswoole::Result<()> {
    ///     let mut server = HttpServer::bind("127.0.0.1:9501")?;
    ///     server.on_request(|_srv, req, mut resp| async move {
    ///         if !req.keep_alive() {
    ///             println!("{} closes after this response", req.fd);
    ///         }
    ///         resp.end("ok")
    ///     });
    ///     server.start()
    /// }
    /// ```
    pub fn keep_alive(&self) -> bool {
        self.head.keep_alive()
    }
}

/// Builds requests, streaming multipart file parts to disk.
pub(crate) struct Builder {
    head: RequestHead,
    body: BytesMut,
    /// Boxed: the parser is large, and the builder moves a few times per request.
    multipart: Option<Box<Multipart>>,
    limit: usize,
    /// An `application/x-www-form-urlencoded` body (parsed into `post`).
    form: bool,
}

struct Multipart {
    parser: MultipartParser,
    buf: BytesMut,
    cur: Option<Part>,
    fields: Vec<(String, String)>,
    files: Vec<UploadedFile>,
    tmp_dir: PathBuf,
}

struct Part {
    name: String,
    file: Option<(std::fs::File, UploadedFile)>,
    value: Vec<u8>,
}

/// A request that cannot be built (bad multipart body, temp file error).
#[derive(Debug)]
pub(crate) struct BuildError(pub(crate) String);

impl Builder {
    pub(crate) fn new(head: RequestHead, tmp_dir: &std::path::Path, limit: usize) -> Builder {
        // One look-up of the content type for both questions (multipart? a form?).
        let content_type = head.header("content-type");
        let form =
            content_type.is_some_and(|c| c.starts_with(b"application/x-www-form-urlencoded"));
        let multipart = content_type
            .and_then(http1::boundary_from_content_type)
            .map(|b| {
                Box::new(Multipart {
                    parser: MultipartParser::new(&b),
                    buf: BytesMut::new(),
                    cur: None,
                    fields: Vec::new(),
                    files: Vec::new(),
                    tmp_dir: tmp_dir.to_path_buf(),
                })
            });
        Builder {
            head,
            body: BytesMut::new(),
            multipart,
            limit,
            form,
        }
    }

    /// Keeps the body as sent: no multipart parsing (and so no upload files).
    pub(crate) fn set_raw(&mut self) {
        self.multipart = None;
    }

    pub(crate) fn feed(&mut self, chunk: &[u8]) -> Result<(), BuildError> {
        match &mut self.multipart {
            None => {
                if self.body.len() + chunk.len() > self.limit {
                    return Err(BuildError("body too large".into()));
                }
                self.body.extend_from_slice(chunk);
                Ok(())
            }
            Some(m) => m.feed(chunk),
        }
    }

    /// Builds the request (its multipart body, if any, must be complete: see
    /// [`ready`](Self::ready)).
    pub(crate) fn finish(
        mut self,
        fd: ConnId,
        server: RequestInfo,
        stream: Option<super::service::BodyFeed>,
    ) -> Result<Request, BuildError> {
        self.ready()?;
        Ok(self.build(fd, server, stream))
    }

    /// Checks that the body is complete: a multipart body's last parts are parsed (the only
    /// step of building a request that can fail), so that [`build`](Self::build) cannot.
    pub(crate) fn ready(&mut self) -> Result<(), BuildError> {
        match &mut self.multipart {
            Some(m) => m.drain(),
            None => Ok(()),
        }
    }

    /// The request, after [`ready`](Self::ready): built where it is wanted (the request
    /// handler's argument), not moved there.
    pub(crate) fn build(
        mut self,
        fd: ConnId,
        server: RequestInfo,
        stream: Option<super::service::BodyFeed>,
    ) -> Request {
        let (post, files, body) = match self.multipart.take() {
            Some(m) => {
                let Multipart { fields, files, .. } = *m;
                (Params::owned(fields), files, Bytes::new())
            }
            None => {
                let body = self.body.freeze();
                let post = if self.form {
                    Params::owned(http1::parse_urlencoded(&body))
                } else {
                    Params::default()
                };
                (post, Vec::new(), body)
            }
        };
        let h = &self.head;
        let query = h.query().unwrap_or("").to_string();
        let get = if query.is_empty() {
            Params::default()
        } else {
            Params::owned(http1::parse_query(&query))
        };
        let mut cookie = Params::default();
        let mut header = Params::with_capacity(h.header_count());
        // Names (lower-cased tokens) and values share the head's buffer.
        for (k, v) in h.shared_headers() {
            if &k[..] == b"cookie" {
                cookie.0.extend(
                    http1::parse_cookies(&v)
                        .into_iter()
                        .map(|(k, v)| (PStr::Owned(k), PStr::Owned(v))),
                );
            }
            header.0.push((PStr::Shared(k), PStr::shared(v)));
        }
        // Method, target and path share the head's buffer too (the path when it has nothing
        // to percent-decode).
        let (method, uri, raw_path) = h.shared_line();
        let path = if raw_path.contains(&b'%') {
            Text::from(http1::percent_decode_str(h.path()).into_owned())
        } else {
            Text::line(raw_path)
        };
        Request {
            fd,
            method: Text::line(method),
            uri: Text::line(uri),
            path,
            get,
            query_string: query,
            post,
            cookie,
            header,
            files,
            server,
            body,
            head: self.head,
            stream,
        }
    }

    pub(crate) fn head(&self) -> &RequestHead {
        &self.head
    }
}

impl Multipart {
    fn feed(&mut self, chunk: &[u8]) -> Result<(), BuildError> {
        self.buf.extend_from_slice(chunk);
        self.drain_events()
    }

    fn drain_events(&mut self) -> Result<(), BuildError> {
        loop {
            let ev = self
                .parser
                .parse(&mut self.buf)
                .map_err(|e| BuildError(format!("multipart: {e}")))?;
            let Some(ev) = ev else { return Ok(()) };
            match ev {
                MultipartEvent::PartHead(p) => {
                    let file = match &p.filename {
                        Some(fname) => {
                            // O_CREAT|O_EXCL (never an existing file or a symlink), mode
                            // 0600, a random name; the UploadedFile removes it on drop.
                            let (f, path) = tempfile::Builder::new()
                                .prefix("rswoole-upload-")
                                .tempfile_in(&self.tmp_dir)
                                .and_then(|t| t.keep().map_err(|e| e.error))
                                .map_err(|e| {
                                    BuildError(format!(
                                        "upload temp file in {}: {e}",
                                        self.tmp_dir.display()
                                    ))
                                })?;
                            Some((
                                f,
                                UploadedFile {
                                    field: p.name.clone(),
                                    name: fname.clone(),
                                    content_type: p
                                        .content_type
                                        .clone()
                                        .unwrap_or_else(|| "application/octet-stream".into()),
                                    size: 0,
                                    tmp_path: path,
                                    kept: false,
                                },
                            ))
                        }
                        None => None,
                    };
                    self.cur = Some(Part {
                        name: p.name.clone(),
                        file,
                        value: Vec::new(),
                    });
                }
                MultipartEvent::PartData(d) => {
                    if let Some(part) = &mut self.cur {
                        match &mut part.file {
                            Some((f, u)) => {
                                f.write_all(&d)
                                    .map_err(|e| BuildError(format!("writing an upload: {e}")))?;
                                u.size += d.len() as u64;
                            }
                            None => part.value.extend_from_slice(&d),
                        }
                    }
                }
                MultipartEvent::PartEnd => {
                    if let Some(part) = self.cur.take() {
                        match part.file {
                            Some((_f, u)) => self.files.push(u),
                            None => self.fields.push((
                                part.name,
                                String::from_utf8_lossy(&part.value).into_owned(),
                            )),
                        }
                    }
                }
                MultipartEvent::Done => return Ok(()),
            }
        }
    }

    fn drain(&mut self) -> Result<(), BuildError> {
        self.drain_events()?;
        self.parser
            .finish()
            .map_err(|e| BuildError(format!("multipart: {e}")))
    }
}

/// The request's path as [`Request::path`] has it: percent-decoded.
pub(crate) fn decoded_path(head: &RequestHead) -> std::borrow::Cow<'_, str> {
    let path = head.path();
    if path.contains('%') {
        http1::percent_decode_str(path)
    } else {
        std::borrow::Cow::Borrowed(path)
    }
}

/// The client address, believing `X-Forwarded-For` only from trusted proxies.
pub(crate) fn client_addr(peer: SocketAddr, head: &RequestHead, trusted: &[IpAddr]) -> SocketAddr {
    if !trusted.contains(&peer.ip()) {
        return peer;
    }
    let Some(xff) = head.header_str("x-forwarded-for") else {
        return peer;
    };
    // Walk from the right: the last address not itself a trusted proxy is the client.
    for part in xff.rsplit(',') {
        let part = part.trim();
        let ip: Option<IpAddr> = part
            .parse()
            .ok()
            .or_else(|| part.parse::<SocketAddr>().ok().map(|a| a.ip()));
        match ip {
            Some(ip) if trusted.contains(&ip) => continue,
            Some(ip) => return SocketAddr::new(ip, 0),
            None => return peer,
        }
    }
    peer
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(raw: &str) -> Request {
        let mut buf = BytesMut::from(raw);
        let Ok(Some(http1::Event::Head(head))) = http1::RequestDecoder::default().decode(&mut buf)
        else {
            panic!("not a head: {raw:?}");
        };
        let info = RequestInfo {
            remote_addr: "127.0.0.1:1".parse().unwrap(),
            peer_addr: "127.0.0.1:1".parse().unwrap(),
            server_port: 80,
            request_time: SystemTime::now(),
            protocol: "HTTP/1.1",
            tls: false,
            peer_cert_sha256: None,
        };
        Builder::new(head, std::path::Path::new("/tmp"), 1 << 20)
            .finish(ConnId(1), info, None)
            .unwrap()
    }

    #[test]
    fn line_shares_or_decodes() {
        let r = request("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        assert!(r.method == "GET" && r.uri == "/" && r.path == "/");
        assert!(matches!(r.method.0, PStr::Static("GET")));
        assert!(r.get.is_empty() && r.post.is_empty() && r.cookie.is_empty());
        assert_eq!(r.header("host"), Some("a"));

        let r = request("PURGE /a%20b/c?x=1&y=%41 HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(r.method.as_str(), "PURGE");
        assert!(matches!(r.method.0, PStr::Shared(_)));
        assert_eq!(r.uri, "/a%20b/c?x=1&y=%41");
        assert_eq!(r.path, "/a b/c");
        assert!(matches!(r.path.0, PStr::Owned(_)));
        assert_eq!(r.query_string, "x=1&y=%41");
        assert_eq!((r.get.get("x"), r.get.get("y")), (Some("1"), Some("A")));
        assert_eq!(String::from(r.path.clone()), "/a b/c");
        assert_eq!(format!("{} {:?}", r.method, r.path), "PURGE \"/a b/c\"");

        let r = request("GET /plain/p HTTP/1.1\r\nHost: a\r\n\r\n");
        assert!(matches!(r.path.0, PStr::Shared(_)));
        assert!(r.path.starts_with("/plain/") && "/plain/p" == r.path);
    }

    #[test]
    fn static_files_see_the_path_the_request_has() {
        // The static handler looks at the head before the request is built: the same path.
        for raw in [
            "GET /a%20b/c%2Fd?x=%41 HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET /plain/p?q HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET http://a HTTP/1.1\r\nHost: a\r\n\r\n",
        ] {
            let r = request(raw);
            assert_eq!(decoded_path(&r.head), r.path.as_str(), "{raw:?}");
        }
        assert_eq!(
            request("GET /a%20b HTTP/1.1\r\nHost: a\r\n\r\n").path,
            "/a b"
        );
    }

    #[test]
    fn cookies_from_every_cookie_header_in_order() {
        let r = request(
            "GET / HTTP/1.1\r\nCookie: a=1; b=2\r\nHost: h\r\nCOOKIE: a=3\r\nX-Bin: café\r\n\r\n",
        );
        let all: Vec<_> = r.cookie.iter().collect();
        assert_eq!(all, [("a", "1"), ("b", "2"), ("a", "3")]);
        assert_eq!(r.header.get_all("cookie").count(), 2);
        assert_eq!(r.header("x-bin"), Some("café"));
    }
}
