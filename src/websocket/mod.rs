//! The WebSocket server: [`WebSocketServer`] (an [`HttpServer`] whose listener also upgrades
//! to WebSocket, RFC 6455 with permessage-deflate, RFC 7692), [`Frame`], and the
//! [`Handle`] methods that talk to WebSocket clients: [`push`](Handle::push),
//! [`broadcast`](Handle::broadcast), [`broadcast_to`](Handle::broadcast_to),
//! [`disconnect`](Handle::disconnect), [`is_established`](Handle::is_established),
//! [`ws_connections`](Handle::ws_connections).
//!
//! The WebSocket protocol runs where the socket lives (the master in
//! [`Mode::Process`](crate::Mode::Process)): the upgrade, unmasking, inflating, UTF-8
//! validation, fragmentation, Ping/Pong, the close handshake, size limits and keepalive pings
//! never reach a worker. Workers get whole messages ([`on_message`](WebSocketServer::on_message))
//! and send by asking the socket owner to encode a frame; a [`broadcast`](Handle::broadcast)
//! is one IPC message, and the master encodes the frame once for every client (clients that
//! negotiated compression get their own compressed frame). So a message reaches every client
//! whichever worker holds it, and a worker that dies does not drop its WebSocket clients:
//! their next messages go to its replacement.
//!
//! ```no_run
//! use rswoole::websocket::WebSocketServer;
//!
//! fn main() -> rswoole::Result<()> {
//!     let mut server = WebSocketServer::bind("0.0.0.0:9502")?;
//!     server.on_open(|_srv, req| async move { println!("open: {}", req.fd) });
//!     server.on_message(|srv, frame| async move {
//!         let msg = format!("from{}:{}\n", frame.fd, String::from_utf8_lossy(&frame.data));
//!         srv.broadcast(msg, rswoole::websocket::OpCode::Text)
//!     });
//!     server.on_close(|_srv, fd| async move { println!("close: {fd}") });
//!     server.start()
//! }
//! ```
//!
//! In [`Mode::Base`](crate::Mode::Base) each worker owns the connections it accepted
//! (`SO_REUSEPORT`), and the same calls still reach every client of the server: a worker
//! encodes and writes to its own connections itself and forwards the rest, without running any
//! callback on the other side:
//!
//! - [`broadcast`](Handle::broadcast): the local fan-out, plus one datagram to each other
//!   worker's mailbox (the worker-to-worker socket of [`Handle::send_message`]); each worker
//!   fans the message out to its own established connections (the frame encoded once, as
//!   here). One worker's broadcasts reach every client in the order they were made.
//! - [`broadcast_to`](Handle::broadcast_to): the listed connections are grouped by the worker
//!   that owns them (known from shared memory): one datagram per worker, with its ids.
//! - [`push`](Handle::push) and [`disconnect`](Handle::disconnect) of another worker's
//!   connection: one datagram to its owner, which writes the frame (or starts the close).
//!   Asynchronous, as in Process mode: `Ok` means forwarded.
//! - [`is_established`](Handle::is_established) and [`ws_connections`](Handle::ws_connections)
//!   read shared memory, so they see every worker's connections.
//!
//! A worker that is restarting has lost its clients anyway (Base mode): what is forwarded to
//! it meanwhile is dropped (logged at debug level), and the local part is not affected.

mod handle;
pub(crate) mod handler;

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use bytes::Bytes;
pub use rswoole_codec::ws::{CloseCode, OpCode};

pub use crate::base::settings::websocket::{
    DEFAULT_CLOSE_TIMEOUT, DEFAULT_MAX_FRAME_SIZE, DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_PONG_TIMEOUT,
};
pub use crate::base::WebSocketSettings;
use crate::base::{CallbackResult, ConnId, Error, Result};
use crate::http::{HttpServer, Request};
use crate::owner::inbound::Protocol;
use crate::runtime::app::BoxFut;
use crate::server::{forward_server_methods, Handle};
use crate::task::forward_task_methods;
use handler::WsHandler;

/// A message from a WebSocket client, as given to `on_message`.
///
/// # Examples
///
/// ```no_run
/// use rswoole::websocket::{Frame, OpCode, WebSocketServer};
///
/// fn main() -> rswoole::Result<()> {
///     let mut server = WebSocketServer::bind("127.0.0.1:9502")?;
///     server.on_message(|srv, frame: Frame| async move {
///         match frame.opcode {
///             OpCode::Text => srv.push(frame.fd, format!("echo: {}", frame.text().unwrap_or("")), OpCode::Text),
///             _ => srv.push(frame.fd, frame.data, OpCode::Binary),
///         }
///     });
///     server.start()
/// }
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Frame {
    /// The connection.
    pub fd: ConnId,
    /// The payload: the whole message (reassembled from its fragments and decompressed),
    /// valid UTF-8 if `opcode` is [`OpCode::Text`].
    pub data: Bytes,
    /// [`OpCode::Text`] or [`OpCode::Binary`]; [`OpCode::Ping`]/[`OpCode::Pong`] with
    /// [`WebSocketSettings::deliver_control_frames`].
    pub opcode: OpCode,
    /// Always `true`: messages are delivered whole.
    pub fin: bool,
}

impl Frame {
    /// The payload as text (a text message is always valid UTF-8).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use rswoole::websocket::WebSocketServer;
    ///
    /// fn main() -> rswoole::Result<()> {
    ///     let mut server = WebSocketServer::bind("127.0.0.1:9502")?;
    ///     server.on_message(|_srv, frame| async move {
    ///         if let Some(text) = frame.text() {
    ///             println!("{} says {text}", frame.fd);
    ///         }
    ///     });
    ///     server.start()
    /// }
    /// ```
    pub fn text(&self) -> Option<&str> {
        std::str::from_utf8(&self.data).ok()
    }
}

/// What `on_handshake` decides about an upgrade request.
///
/// # Examples
///
/// ```no_run
/// use rswoole::websocket::{Handshake, OpCode, WebSocketServer};
///
/// fn main() -> rswoole::Result<()> {
///     let mut server = WebSocketServer::bind("127.0.0.1:9502")?;
///     server.on_handshake(|_srv, req| async move {
///         match req.header("origin") {
///             Some("https://example.com") if req.header("sec-websocket-protocol").is_some() => {
///                 Handshake::AcceptProtocol("chat".into())
///             }
///             Some("https://example.com") => Handshake::Accept,
///             _ => Handshake::Reject(403),
///         }
///     });
///     server.on_message(|srv, frame| async move { srv.push(frame.fd, frame.data, OpCode::Text) });
///     server.start()
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handshake {
    /// Upgrade (permessage-deflate as negotiated by the settings).
    Accept,
    /// Upgrade and answer with this subprotocol (one the client offered in
    /// `Sec-WebSocket-Protocol`).
    AcceptProtocol(String),
    /// Refuse with this HTTP status (e.g. 403) and close.
    Reject(u16),
}

pub(crate) type OpenCb = Rc<dyn Fn(Handle, Request) -> BoxFut>;
/// `on_message` as stored: it makes the application's future in a reused slot
/// (`server::slot::Slots`) and polls it once with the context given; `None` when it finished
/// then, else the rest to await (a message answered at once costs no allocation).
pub(crate) type MessageCb =
    Rc<dyn Fn(Handle, Frame, &mut std::task::Context<'_>) -> Option<BoxFut>>;
pub(crate) type HandshakeCb =
    Rc<dyn Fn(Handle, Request) -> Pin<Box<dyn Future<Output = Handshake>>>>;

/// The WebSocket callbacks of a server.
#[derive(Clone, Default)]
pub(crate) struct WsCallbacks {
    pub(crate) on_open: Option<OpenCb>,
    pub(crate) on_message: Option<MessageCb>,
    pub(crate) on_handshake: Option<HandshakeCb>,
}

/// A WebSocket server: an [`HttpServer`] whose first listener also accepts WebSocket
/// upgrades. Plain HTTP requests on the same port go to
/// [`on_request`](Self::on_request) (404 without one); [`on_close`](Self::on_close) runs once
/// for every connection, WebSocket or not. It has the server methods that apply to it
/// (settings, listeners, worker and task callbacks), and no `Deref`: `on_receive` here would
/// never be called, so it does not compile.
///
/// ```compile_fail
/// let mut server = rswoole::websocket::WebSocketServer::bind("127.0.0.1:9502").unwrap();
/// server.on_receive(|srv, ev| async move { srv.send(ev.fd, ev.data) });
/// ```
///
/// # Examples
///
/// ```no_run
/// use rswoole::websocket::{OpCode, WebSocketServer};
///
/// fn main() -> rswoole::Result<()> {
///     let mut server = WebSocketServer::bind("127.0.0.1:9502")?;
///     server.on_open(|srv, req| async move {
///         let _ = srv.push(req.fd, "welcome", OpCode::Text);
///     });
///     server.on_message(|srv, frame| async move { srv.broadcast(frame.data, frame.opcode) });
///     // Plain HTTP on the same port:
///     server.on_request(|_srv, _req, mut resp| async move { resp.end("use a WebSocket client") });
///     server.start()
/// }
/// ```
pub struct WebSocketServer {
    server: HttpServer,
    cbs: WsCallbacks,
}

impl std::fmt::Debug for WebSocketServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.server.fmt(f)
    }
}

impl WebSocketServer {
    /// A WebSocket (and HTTP) server on `addr`.
    ///
    /// # Errors
    /// [`Error::Address`] if `addr` does not parse or resolve.
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole::websocket::WebSocketServer;
    /// use rswoole::Settings;
    /// let mut server = WebSocketServer::bind("0.0.0.0:9502")?;
    /// server.set(Settings::default().worker_num(2)); // the `Server` methods that apply
    /// assert_eq!(server.settings_mut().worker_num, 2);
    /// # Ok::<(), rswoole::Error>(())
    /// ```
    pub fn bind(addr: &str) -> Result<WebSocketServer> {
        let mut server = HttpServer::bind(addr)?;
        server.server_mut().ports[0].protocol = Protocol::WebSocket;
        Ok(WebSocketServer {
            server,
            cbs: WsCallbacks::default(),
        })
    }

    /// Runs after a client's upgrade was accepted, with the upgrade request (its `fd` is the
    /// connection). Messages from that client wait until it returns.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use rswoole::websocket::{OpCode, WebSocketServer};
    ///
    /// fn main() -> rswoole::Result<()> {
    ///     let mut server = WebSocketServer::bind("127.0.0.1:9502")?;
    ///     server.on_open(|srv, req| async move {
    ///         let room = req.get.get("room").unwrap_or("lobby").to_string();
    ///         srv.push(req.fd, format!("joined {room}"), OpCode::Text)
    ///     });
    ///     server.on_message(|srv, frame| async move { srv.push(frame.fd, frame.data, OpCode::Text) });
    ///     server.start()
    /// }
    /// ```
    pub fn on_open<F, Fut>(&mut self, f: F) -> &mut Self
    where
        F: Fn(Handle, Request) -> Fut + 'static,
        Fut: Future + 'static,
        Fut::Output: CallbackResult,
    {
        self.cbs.on_open = Some(Rc::new(move |h, r| {
            let fut = f(h, r);
            Box::pin(async move { fut.await.report("on_open") })
        }));
        self
    }

    /// Runs for every message from a client, in order per connection. Required.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use rswoole::websocket::WebSocketServer;
    ///
    /// fn main() -> rswoole::Result<()> {
    ///     let mut server = WebSocketServer::bind("127.0.0.1:9502")?;
    ///     server.on_message(|srv, frame| async move {
    ///         srv.push(frame.fd, frame.data, frame.opcode) // echo, text or binary
    ///     });
    ///     server.start()
    /// }
    /// ```
    pub fn on_message<F, Fut>(&mut self, f: F) -> &mut Self
    where
        F: Fn(Handle, Frame) -> Fut + 'static,
        Fut: Future + 'static,
        Fut::Output: CallbackResult,
    {
        let slots = crate::server::slot::Slots::new();
        self.cbs.on_message = Some(Rc::new(move |h, fr, cx| {
            slots.run("on_message", || f(h, fr), cx)
        }));
        self
    }

    /// Decides about each valid upgrade request in a worker (check `Origin`, a token, pick a
    /// subprotocol). Without it the socket owner accepts every valid request itself, which
    /// saves a round trip.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use rswoole::websocket::{Handshake, OpCode, WebSocketServer};
    ///
    /// fn main() -> rswoole::Result<()> {
    ///     let mut server = WebSocketServer::bind("127.0.0.1:9502")?;
    ///     server.on_handshake(|_srv, req| async move {
    ///         if req.get.get("token") == Some("secret") {
    ///             Handshake::Accept
    ///         } else {
    ///             Handshake::Reject(401)
    ///         }
    ///     });
    ///     server.on_message(|srv, frame| async move { srv.push(frame.fd, frame.data, OpCode::Text) });
    ///     server.start()
    /// }
    /// ```
    pub fn on_handshake<F, Fut>(&mut self, f: F) -> &mut Self
    where
        F: Fn(Handle, Request) -> Fut + 'static,
        Fut: Future<Output = Handshake> + 'static,
    {
        self.cbs.on_handshake = Some(Rc::new(move |h, r| Box::pin(f(h, r))));
        self
    }

    /// Serves until shutdown; see [`Server::start`](crate::Server::start).
    ///
    /// # Errors
    /// As [`Server::start`](crate::Server::start); without `on_message`,
    /// [`Error::MissingCallback`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use rswoole::websocket::{OpCode, WebSocketServer};
    ///
    /// fn main() -> rswoole::Result<()> {
    ///     let mut server = WebSocketServer::bind("127.0.0.1:9502")?;
    ///     server.on_message(|srv, frame| async move { srv.push(frame.fd, frame.data, OpCode::Text) });
    ///     // Blocks until shutdown.
    ///     server.start()
    /// }
    /// ```
    pub fn start(self) -> Result<()> {
        let WebSocketServer { mut server, cbs } = self;
        if cbs.on_message.is_none() {
            let addr = server.server_mut().ports[0].addr;
            return Err(Error::MissingCallback {
                callback: "on_message",
                kind: "WebSocket",
                addr,
            });
        }
        server.server_mut().app.ws_handshake = cbs.on_handshake.is_some();
        server.start_with(move |http| Some(Rc::new(WsHandler::new(http, cbs.clone()))))
    }

    /// Handles plain HTTP requests on the WebSocket listener (those that are not upgrades),
    /// e.g. to serve the page that opens the WebSocket (see
    /// [`HttpServer::on_request`](crate::http::HttpServer::on_request)). Without it they are
    /// answered 404.
    pub fn on_request<F, Fut>(&mut self, f: F) -> &mut Self
    where
        F: Fn(Handle, Request, crate::http::Response) -> Fut + 'static,
        Fut: Future + 'static,
        Fut::Output: CallbackResult,
    {
        self.server.on_request(f);
        self
    }

    /// Serves the plain HTTP requests on the WebSocket listener with a tower service (an
    /// axum `Router`), as [`HttpServer::serve`](crate::http::HttpServer::serve) does; the
    /// upgrade requests still go to this server's WebSocket callbacks
    /// ([`on_handshake`](Self::on_handshake), [`on_open`](Self::on_open),
    /// [`on_message`](Self::on_message)), before the service sees them. So the WebSocket
    /// endpoint and the service's routes share the port: the service needs no route for the
    /// upgrade, and reaches the WebSocket clients through the [`Handle`] it finds in each
    /// request's extensions ([`broadcast`](Handle::broadcast), [`push`](Handle::push)).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::convert::Infallible;
    /// use http_body_util::Full;
    /// use rswoole::http::RequestBody;
    /// use rswoole::websocket::{OpCode, WebSocketServer};
    /// use rswoole::Handle;
    ///
    /// fn main() -> rswoole::Result<()> {
    ///     let mut server = WebSocketServer::bind("127.0.0.1:9502")?;
    ///     server.on_message(|srv, frame| async move { srv.broadcast(frame.data, OpCode::Text) });
    ///     server.serve(|_srv| {
    ///         tower::service_fn(|req: http::Request<RequestBody>| async move {
    ///             let srv = req.extensions().get::<Handle>().cloned().expect("the handle");
    ///             let text = format!("{} WebSocket clients\n", srv.ws_connections().len());
    ///             Ok::<_, Infallible>(http::Response::new(Full::new(bytes::Bytes::from(text))))
    ///         })
    ///     });
    ///     server.start()
    /// }
    /// ```
    pub fn serve<F, S, B>(&mut self, factory: F) -> &mut Self
    where
        F: Fn(&Handle) -> S + 'static,
        S: tower_service::Service<
                http::Request<crate::http::RequestBody>,
                Response = http::Response<B>,
            > + 'static,
        S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
        S::Future: 'static,
        B: http_body::Body + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        self.server.serve(factory);
        self
    }

    forward_server_methods!();
    forward_task_methods!();
}
