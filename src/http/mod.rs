//! The HTTP server: [`HttpServer`] (a server whose listener speaks HTTP/1.1),
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
//!     server.on_request(|_srv, _req, mut resp| async move {
//!         resp.header("content-type", "text/plain")?;
//!         resp.end("Hello World")
//!     });
//!     server.start()
//! }
//! ```

//!
//! The handler gets the [`Handle`] too, so a request can wait for a task,
//! broadcast, read the stats or set a timer, as any other callback.

mod access_log;
pub(crate) mod handler;
mod request;
mod response;
mod service;
mod static_files;

use std::rc::Rc;

pub use request::{Params, Request, RequestInfo, Text, UploadedFile};
pub use response::{HttpError, Response};
pub use rswoole_codec::http1::{SameSite, SetCookie};
pub use service::{BodyError, RequestBody};

pub use crate::base::settings::http::{DEFAULT_COMPRESSION_MIN_LENGTH, DEFAULT_HEADER_TIMEOUT};
use crate::base::{CallbackResult, Error, Result, SockType};
pub use crate::base::{Http2Settings, HttpSettings};
use crate::owner::inbound::Protocol;
use crate::runtime::app::ProtocolHandler;
use crate::server::{forward_server_methods, Handle, Port, Server};
use crate::task::forward_task_methods;
use handler::{HttpHandler, ReqCb};

/// An HTTP/1.1 server: a server whose first listener speaks HTTP. It has the [`Server`]
/// methods that apply to it (settings, more listeners — TCP, UDP or HTTP —, connect/close,
/// worker and task callbacks), and not the others: raw TCP data goes to a [`Port`] added with
/// [`add_listener`](Self::add_listener).
///
/// # Examples
///
/// ```no_run
/// use rswoole::http::HttpServer;
///
/// fn main() -> rswoole::Result<()> {
///     let mut server = HttpServer::bind("127.0.0.1:9501")?;
///     server.on_request(|_srv, req, mut resp| async move {
///         resp.header("content-type", "text/plain")?;
///         resp.end(format!("Hello {}", req.get.get("name").unwrap_or("World")))
///     });
///     server.start()
/// }
/// ```
///
/// `on_receive` on the HTTP server itself would never be called, so it does not compile:
///
/// ```compile_fail
/// let mut server = rswoole::http::HttpServer::bind("127.0.0.1:9501").unwrap();
/// server.on_receive(|srv, ev| async move { srv.send(ev.fd, ev.data) });
/// ```
pub struct HttpServer {
    server: Server,
    on_request: Option<ReqCb>,
    /// Bodies as sent, not parsed into `post` and `files` (set by [`serve`](Self::serve)).
    raw_bodies: bool,
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
    /// [`Error::Address`] if `addr` does not parse or resolve.
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole::http::HttpServer;
    /// use rswoole::Settings;
    /// let mut server = HttpServer::bind("0.0.0.0:8080")?;
    /// server.set(Settings::default().worker_num(4)); // the `Server` methods that apply
    /// assert_eq!(server.settings_mut().worker_num, 4);
    /// assert!(HttpServer::bind("0.0.0.0").is_err()); // no port
    /// # Ok::<(), rswoole::Error>(())
    /// ```
    pub fn bind(addr: &str) -> Result<HttpServer> {
        let mut server = Server::bind(addr)?;
        server.ports[0].protocol = Protocol::Http;
        Ok(HttpServer {
            server,
            on_request: None,
            raw_bodies: false,
        })
    }

    /// Adds another HTTP listener (its requests go to the same `on_request`).
    ///
    /// # Errors
    /// [`Error::Address`] if `addr` does not parse or resolve.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use rswoole::http::HttpServer;
    ///
    /// fn main() -> rswoole::Result<()> {
    ///     let mut server = HttpServer::bind("127.0.0.1:9501")?;
    ///     server.add_http_listener("[::1]:9501")?; // the same site over IPv6
    ///     server.on_request(|_srv, _req, mut resp| async move { resp.end("hi") });
    ///     server.start()
    /// }
    /// ```
    pub fn add_http_listener(&mut self, addr: &str) -> Result<&mut Self> {
        let p = self.server.add_listener(addr, SockType::Tcp)?;
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
    ///     server.on_request(|_srv, req, mut resp| async move {
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
        F: Fn(Handle, Request, Response) -> Fut + 'static,
        Fut: std::future::Future + 'static,
        Fut::Output: CallbackResult,
    {
        self.on_request = Some(handler::req_cb(f));
        self.raw_bodies = false;
        self
    }

    forward_server_methods!();
    forward_task_methods!();

    /// Serves until shutdown; see [`Server::start`].
    ///
    /// # Errors
    /// As [`Server::start`]; an HTTP listener without `on_request` is
    /// [`Error::MissingCallback`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use rswoole::http::HttpServer;
    ///
    /// fn main() -> rswoole::Result<()> {
    ///     let mut server = HttpServer::bind("127.0.0.1:9501")?;
    ///     server.on_request(|_srv, _req, mut resp| async move { resp.end("ok") });
    ///     // Blocks until shutdown.
    ///     server.start()
    /// }
    /// ```
    pub fn start(self) -> Result<()> {
        self.start_with(|_| None)
    }

    /// Starts with the protocol handler `wrap` makes of the HTTP one (the WebSocket server's),
    /// or the HTTP one itself.
    pub(crate) fn start_with(
        self,
        wrap: impl Fn(Rc<HttpHandler>) -> Option<Rc<dyn ProtocolHandler>> + 'static,
    ) -> Result<()> {
        let HttpServer {
            mut server,
            on_request,
            raw_bodies,
        } = self;
        let has_request = on_request.is_some();
        server.app.protocol = Some(Rc::new(move |settings| {
            let http = Rc::new(HttpHandler::new(
                settings.clone(),
                on_request.clone(),
                raw_bodies,
            ));
            match wrap(http.clone()) {
                Some(p) => p,
                None => http,
            }
        }));
        let check = move |p: &Port| {
            if p.protocol == Protocol::Http && !has_request {
                return Err(Error::MissingCallback {
                    callback: "on_request",
                    kind: "HTTP",
                    addr: p.addr,
                });
            }
            Ok(())
        };
        server.start_with(Some(&check))
    }

    /// The inner server (the WebSocket server marks its listener).
    pub(crate) fn server_mut(&mut self) -> &mut Server {
        &mut self.server
    }
}
