//! The HTTP server: [`HttpServer`] (a [`Server`] whose listener speaks HTTP/1.1),
//! [`Request`] and [`Response`].
//!
//! Requests are parsed where the socket lives (the master in Process mode), so malformed or
//! oversized requests are answered (400, 413, 414, 431, 501, 408) without bothering a worker,
//! `Expect: 100-continue` is answered at once, and a worker that dies with requests in flight
//! gets each of them a 503 while the connection stays usable. The handler runs in a worker:
//!
//! ```no_run
//! use rswoole::http::HttpServer;
//!
//! fn main() -> rswoole::Result<()> {
//!     let mut server = HttpServer::bind("127.0.0.1:9501")?;
//!     server.on_request(|_req, mut resp| async move {
//!         resp.header("content-type", "text/plain")?;
//!         resp.end("Hello World")
//!     });
//!     server.start()
//! }
//! ```

mod request;
mod response;
mod static_files;
pub(crate) mod worker;

use std::net::IpAddr;
use std::ops::{Deref, DerefMut};
use std::path::PathBuf;
use std::time::Duration;

pub use request::{Params, Request, RequestInfo, UploadedFile};
pub use response::{HttpError, Response};
pub use rswoole_codec::http1::{SameSite, SetCookie};

use crate::error::Result;
use crate::server::{Protocol, Server};

/// Default for [`HttpSettings::header_timeout`]: a client must send a whole request head
/// within this long once it started one (slowloris defence).
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Default for [`HttpSettings::compression_min_length`].
pub const DEFAULT_COMPRESSION_MIN_LENGTH: usize = 1024;

/// HTTP settings (`Settings::http`).
///
/// # Examples
/// ```
/// use rswoole::{http::HttpSettings, Settings};
/// let s = Settings {
///     http: HttpSettings { enable_static_handler: true, document_root: Some("public".into()), ..Default::default() },
///     ..Default::default()
/// };
/// assert!(s.http.enable_static_handler);
/// ```
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Serve files under this directory (with `enable_static_handler`). Default none.
    pub document_root: Option<PathBuf>,
    /// Answer requests for existing files under `document_root` without calling the handler.
    /// Default `false`.
    pub enable_static_handler: bool,
    /// gzip responses when the client accepts it and the body is at least
    /// `compression_min_length` bytes. Default `true`.
    pub http_compression: bool,
    /// Smallest body worth compressing. Default [`DEFAULT_COMPRESSION_MIN_LENGTH`].
    pub compression_min_length: usize,
    /// A handler still running after this long is cancelled and the client gets 504. Default
    /// none.
    pub request_timeout: Option<Duration>,
    /// See [`DEFAULT_HEADER_TIMEOUT`].
    pub header_timeout: Duration,
    /// Largest request head (431 beyond). Default 8 KiB.
    pub max_header_size: usize,
    /// Longest request URI (414 beyond). Default 8 KiB.
    pub max_uri_length: usize,
    /// Where uploaded files are written while a request is handled (removed afterwards).
    /// Default: the system temp dir.
    pub upload_tmp_dir: Option<PathBuf>,
    /// Proxies whose `X-Forwarded-For` is believed: for a request from one of them,
    /// [`RequestInfo::remote_addr`] is the client it names. Default none.
    pub trusted_proxies: Vec<IpAddr>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            document_root: None,
            enable_static_handler: false,
            http_compression: true,
            compression_min_length: DEFAULT_COMPRESSION_MIN_LENGTH,
            request_timeout: None,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            max_header_size: rswoole_codec::http1::DEFAULT_MAX_HEAD_BYTES,
            max_uri_length: rswoole_codec::http1::DEFAULT_MAX_URI_LEN,
            upload_tmp_dir: None,
            trusted_proxies: Vec::new(),
        }
    }
}

/// An HTTP/1.1 server: a [`Server`] whose first listener speaks HTTP. Everything of
/// [`Server`] is available through `Deref` (settings, more listeners — TCP, UDP or HTTP —,
/// worker callbacks).
///
/// # Examples
///
/// ```no_run
/// use rswoole::http::HttpServer;
///
/// fn main() -> rswoole::Result<()> {
///     let mut server = HttpServer::bind("127.0.0.1:9501")?;
///     server.on_request(|req, mut resp| async move {
///         resp.header("content-type", "text/plain")?;
///         resp.end(format!("Hello {}", req.get.get("name").unwrap_or("World")))
///     });
///     server.start()
/// }
/// ```
pub struct HttpServer {
    server: Server,
}

impl std::fmt::Debug for HttpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.server.fmt(f)
    }
}

impl HttpServer {
    /// An HTTP server on `addr`.
    ///
    /// # Errors
    /// [`Error::Address`](crate::Error::Address) if `addr` does not parse or resolve.
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole::http::HttpServer;
    /// use rswoole::Settings;
    /// let mut server = HttpServer::bind("0.0.0.0:8080")?;
    /// server.set(Settings { worker_num: 4, ..Default::default() }); // `Server` methods via Deref
    /// assert_eq!(server.settings_mut().worker_num, 4);
    /// assert!(HttpServer::bind("0.0.0.0").is_err()); // no port
    /// # Ok::<(), rswoole::Error>(())
    /// ```
    pub fn bind(addr: &str) -> Result<HttpServer> {
        let mut server = Server::bind(addr)?;
        server.ports[0].protocol = Protocol::Http;
        Ok(HttpServer { server })
    }

    /// Adds another HTTP listener (its requests go to the same `on_request`).
    ///
    /// # Errors
    /// [`Error::Address`](crate::Error::Address) if `addr` does not parse or resolve.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use rswoole::http::HttpServer;
    ///
    /// fn main() -> rswoole::Result<()> {
    ///     let mut server = HttpServer::bind("127.0.0.1:9501")?;
    ///     server.add_http_listener("[::1]:9501")?; // the same site over IPv6
    ///     server.on_request(|_req, mut resp| async move { resp.end("hi") });
    ///     server.start()
    /// }
    /// ```
    pub fn add_http_listener(&mut self, addr: &str) -> Result<&mut Self> {
        let p = self.server.add_listener(addr, crate::SockType::Tcp)?;
        p.protocol = Protocol::Http;
        Ok(self)
    }

    /// The request handler; it must call [`Response::end`] (or `sendfile`/`redirect`).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use rswoole::http::HttpServer;
    ///
    /// fn main() -> rswoole::Result<()> {
    ///     let mut server = HttpServer::bind("127.0.0.1:9501")?;
    ///     server.on_request(|req, mut resp| async move {
    ///         match (req.method.as_str(), req.path.as_str()) {
    ///             ("GET", "/") => resp.end("home"),
    ///             ("POST", "/echo") => resp.end(req.body),
    ///             _ => {
    ///                 resp.status(404)?;
    ///                 resp.end("not found")
    ///             }
    ///         }
    ///     });
    ///     server.start()
    /// }
    /// ```
    pub fn on_request<F, Fut>(&mut self, f: F) -> &mut Self
    where
        F: Fn(Request, Response) -> Fut + 'static,
        Fut: std::future::Future + 'static,
        Fut::Output: crate::CallbackResult,
    {
        self.server.on_request = Some(std::rc::Rc::new(move |req, resp| {
            let fut = f(req, resp);
            Box::pin(async move { crate::CallbackResult::report(fut.await, "on_request") })
        }));
        self
    }

    /// Serves until shutdown; see [`Server::start`].
    ///
    /// # Errors
    /// As [`Server::start`]; an HTTP listener without `on_request` is
    /// [`Error::MissingCallback`](crate::Error::MissingCallback).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use rswoole::http::HttpServer;
    ///
    /// fn main() -> rswoole::Result<()> {
    ///     let mut server = HttpServer::bind("127.0.0.1:9501")?;
    ///     server.on_request(|_req, mut resp| async move { resp.end("ok") });
    ///     // Blocks until shutdown.
    ///     server.start()
    /// }
    /// ```
    pub fn start(self) -> Result<()> {
        self.server.start()
    }
}

impl Deref for HttpServer {
    type Target = Server;
    fn deref(&self) -> &Server {
        &self.server
    }
}

impl DerefMut for HttpServer {
    fn deref_mut(&mut self) -> &mut Server {
        &mut self.server
    }
}
