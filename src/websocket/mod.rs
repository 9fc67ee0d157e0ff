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

pub(crate) mod owner;
pub(crate) mod worker;

use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
pub use rswoole_codec::ws::{CloseCode, OpCode};

use crate::error::{Result, SendError};
use crate::http::{HttpServer, Request};
use crate::ipc::{Header, Kind};
use crate::server::{CallbackResult, Handle, Protocol, Server};
use crate::ConnId;

/// Default for [`WebSocketSettings::max_frame_size`]: 16 MiB.
pub const DEFAULT_MAX_FRAME_SIZE: usize = rswoole_codec::ws::conn::DEFAULT_MAX_FRAME_SIZE;
/// Default for [`WebSocketSettings::max_message_size`]: 64 MiB.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = rswoole_codec::ws::conn::DEFAULT_MAX_MESSAGE_SIZE;
/// Default for [`WebSocketSettings::pong_timeout`].
pub const DEFAULT_PONG_TIMEOUT: Duration = Duration::from_secs(10);
/// Default for [`WebSocketSettings::close_timeout`].
pub const DEFAULT_CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// WebSocket settings (`Settings::websocket`).
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use rswoole::{websocket::WebSocketSettings, Settings};
/// let s = Settings {
///     websocket: WebSocketSettings {
///         ping_interval: Some(Duration::from_secs(30)),
///         ..Default::default()
///     },
///     ..Default::default()
/// };
/// assert!(s.websocket.compression);
/// ```
#[derive(Debug, Clone)]
pub struct WebSocketSettings {
    /// Negotiate permessage-deflate with clients that offer it. Default `true`.
    pub compression: bool,
    /// Messages shorter than this are sent uncompressed. Default 64.
    pub compression_threshold: usize,
    /// zlib level for compressed messages (0–9). Default 1.
    pub compression_level: u32,
    /// Largest frame payload accepted; larger ones close the connection with 1009.
    /// Default [`DEFAULT_MAX_FRAME_SIZE`].
    pub max_frame_size: usize,
    /// Largest message (after decompression); larger ones close with 1009.
    /// Default [`DEFAULT_MAX_MESSAGE_SIZE`].
    pub max_message_size: usize,
    /// Ping a connection that was silent this long; `None` (default) never pings.
    pub ping_interval: Option<Duration>,
    /// A pinged connection that sends nothing for this long is closed (`on_close` runs).
    /// Default [`DEFAULT_PONG_TIMEOUT`].
    pub pong_timeout: Duration,
    /// After [`Handle::disconnect`], how long to wait for the client's Close before cutting
    /// the connection. Default [`DEFAULT_CLOSE_TIMEOUT`].
    pub close_timeout: Duration,
    /// Give Ping and Pong frames to `on_message` too (they are answered automatically
    /// either way). Default `false`.
    pub deliver_control_frames: bool,
}

impl Default for WebSocketSettings {
    fn default() -> Self {
        WebSocketSettings {
            compression: true,
            compression_threshold: rswoole_codec::ws::deflate::DEFAULT_DEFLATE_THRESHOLD,
            compression_level: rswoole_codec::ws::deflate::DEFAULT_DEFLATE_LEVEL,
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            ping_interval: None,
            pong_timeout: DEFAULT_PONG_TIMEOUT,
            close_timeout: DEFAULT_CLOSE_TIMEOUT,
            deliver_control_frames: false,
        }
    }
}

impl WebSocketSettings {
    pub(crate) fn owner_conf(&self, handshake: bool) -> owner::WsConf {
        let deflate = rswoole_codec::ws::DeflateConfig {
            enabled: self.compression,
            threshold: self.compression_threshold,
            level: self.compression_level.min(9),
            ..Default::default()
        };
        owner::WsConf {
            codec: rswoole_codec::ws::WsConfig {
                max_frame_size: self.max_frame_size,
                max_message_size: self.max_message_size,
                auto_pong: true,
                deliver_fragments: false,
                deflate,
            },
            handshake,
            ping_interval: self.ping_interval.filter(|d| !d.is_zero()),
            pong_timeout: self.pong_timeout,
            close_timeout: self.close_timeout,
            deliver_control: self.deliver_control_frames,
        }
    }
}

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

/// Whether replies to an event of this kind may be followed by a held-back close.
pub(crate) fn is_message_kind(k: Kind) -> bool {
    matches!(
        k,
        Kind::WsOpen | Kind::WsText | Kind::WsBinary | Kind::WsPing | Kind::WsPong
    )
}

pub(crate) type OpenCb = Rc<dyn Fn(Handle, Request) -> crate::server::BoxFut>;
pub(crate) type MessageCb = Rc<dyn Fn(Handle, Frame) -> crate::server::BoxFut>;
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
/// [`on_request`](HttpServer::on_request) (404 without one); `on_close` (of [`Server`])
/// runs once for every connection, WebSocket or not. Everything of [`HttpServer`] and
/// [`Server`] is available through `Deref`.
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
///     server.on_request(|_req, mut resp| async move { resp.end("use a WebSocket client") });
///     server.start()
/// }
/// ```
pub struct WebSocketServer {
    http: HttpServer,
}

impl std::fmt::Debug for WebSocketServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.http.fmt(f)
    }
}

impl WebSocketServer {
    /// A WebSocket (and HTTP) server on `addr`.
    ///
    /// # Errors
    /// [`Error::Address`](crate::Error::Address) if `addr` does not parse or resolve.
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole::websocket::WebSocketServer;
    /// use rswoole::Settings;
    /// let mut server = WebSocketServer::bind("0.0.0.0:9502")?;
    /// server.set(Settings { worker_num: 2, ..Default::default() }); // `Server` methods via Deref
    /// assert_eq!(server.settings_mut().worker_num, 2);
    /// # Ok::<(), rswoole::Error>(())
    /// ```
    pub fn bind(addr: &str) -> Result<WebSocketServer> {
        let mut http = HttpServer::bind(addr)?;
        let server: &mut Server = &mut http;
        server.ports[0].protocol = Protocol::WebSocket;
        Ok(WebSocketServer { http })
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
        self.server_mut().ws.on_open = Some(Rc::new(move |h, r| {
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
        self.server_mut().ws.on_message = Some(Rc::new(move |h, fr| {
            let fut = f(h, fr);
            Box::pin(async move { fut.await.report("on_message") })
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
        self.server_mut().ws.on_handshake = Some(Rc::new(move |h, r| Box::pin(f(h, r))));
        self
    }

    fn server_mut(&mut self) -> &mut Server {
        &mut self.http
    }

    /// Serves until shutdown; see [`Server::start`].
    ///
    /// # Errors
    /// As [`Server::start`]; without `on_message`,
    /// [`Error::MissingCallback`](crate::Error::MissingCallback).
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
        self.http.start()
    }
}

impl Deref for WebSocketServer {
    type Target = HttpServer;
    fn deref(&self) -> &HttpServer {
        &self.http
    }
}

impl DerefMut for WebSocketServer {
    fn deref_mut(&mut self) -> &mut HttpServer {
        &mut self.http
    }
}

impl Handle {
    /// Sends one WebSocket message to `fd`: [`OpCode::Text`] (`data` must be UTF-8),
    /// [`OpCode::Binary`], or a [`OpCode::Ping`]/[`OpCode::Pong`] (at most 125 bytes). The
    /// socket owner encodes the frame (compressed if negotiated). Returns at once.
    ///
    /// In Base mode, a connection of another worker is reached through that worker (one
    /// datagram to its mailbox); `Ok` then means "forwarded", as `Ok` means "handed to the
    /// master" in Process mode. Pushes from one worker to one connection arrive in order.
    ///
    /// # Errors
    /// [`SendError::Closed`] if `fd` is not an established WebSocket connection (checked in
    /// shared memory, whichever worker owns it); [`SendError::BufferFull`] if its output
    /// buffer is full (Base mode: also if the owning worker has not read what was forwarded
    /// to it for a long while).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use rswoole::websocket::{OpCode, WebSocketServer};
    ///
    /// fn main() -> rswoole::Result<()> {
    ///     let mut server = WebSocketServer::bind("127.0.0.1:9502")?;
    ///     server.on_message(|srv, frame| async move {
    ///         srv.push(frame.fd, "got it", OpCode::Text)?;
    ///         srv.push(frame.fd, vec![1u8, 2, 3], OpCode::Binary)
    ///     });
    ///     server.start()
    /// }
    /// ```
    pub fn push(
        &self,
        fd: ConnId,
        data: impl Into<Bytes>,
        opcode: OpCode,
    ) -> Result<(), SendError> {
        let data = data.into();
        let ctx = &self.ctx;
        if let Some(tx) = ctx.pipe() {
            let Some(slot) = ctx.shared.live_slot(fd) else {
                return Err(SendError::Closed(fd, data));
            };
            if !ctx.shared.is_websocket(fd) {
                return Err(SendError::Closed(fd, data));
            }
            if slot.out_bytes.load(Relaxed) as usize + data.len() > ctx.settings.buffer_output_size
            {
                return Err(SendError::BufferFull(fd, data));
            }
            let h = Header {
                kind: Kind::WsPush,
                flags: 0,
                listener: opcode.as_u8() as u16,
                session: fd.0,
                seq: 0,
            };
            return if tx.push(h, &data) {
                Ok(())
            } else {
                Err(SendError::Closed(fd, data))
            };
        }
        let conns = ctx
            .local_conns()
            .expect("a worker has a pipe or its own connections");
        if let Some(c) = conns.get(fd) {
            return match owner::push(&c, opcode.as_u8(), &data) {
                Ok(()) => Ok(()),
                Err(crate::conn::WriteError::Full) => Err(SendError::BufferFull(fd, data)),
                Err(crate::conn::WriteError::Closed) => Err(SendError::Closed(fd, data)),
            };
        }
        // Base mode, another worker's connection: forward to its owner.
        let Some(slot) = ctx.shared.live_slot(fd) else {
            return Err(SendError::Closed(fd, data));
        };
        let owner_id = slot.worker.load(Relaxed) as usize;
        if owner_id == ctx.id || !ctx.shared.is_websocket(fd) {
            return Err(SendError::Closed(fd, data));
        }
        if slot.out_bytes.load(Relaxed) as usize + data.len() > ctx.settings.buffer_output_size {
            return Err(SendError::BufferFull(fd, data));
        }
        let h = Header {
            kind: Kind::WsPushFwd,
            flags: 0,
            listener: 0,
            session: fd.0,
            seq: opcode.as_u8() as u64,
        };
        match forward(self, owner_id, h, &data) {
            Ok(()) => Ok(()),
            Err(crate::mailbox::Refused::Backlog) => Err(SendError::BufferFull(fd, data)),
            Err(crate::mailbox::Refused::NoWorker) => Err(SendError::Closed(fd, data)),
        }
    }

    /// Sends one message to every established WebSocket connection of the server (including
    /// the sender's), with one IPC message: the master encodes the frame once and writes it
    /// to each client. A client whose output buffer is full is closed. The broadcasts of one
    /// worker reach each client in the order they were made.
    ///
    /// Base mode: this worker writes to its own connections, and sends one datagram to each
    /// other worker, which writes the message to its own connections (no callback runs
    /// there). A worker that is restarting is skipped (its clients are gone with it).
    ///
    /// # Errors
    /// [`SendError::Closed`] (with fd 0) if this worker is shutting down (Process mode).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use rswoole::websocket::{OpCode, WebSocketServer};
    ///
    /// fn main() -> rswoole::Result<()> {
    ///     let mut server = WebSocketServer::bind("127.0.0.1:9502")?;
    ///     server.on_message(|srv, frame| async move {
    ///         let line = format!("{}: {}", frame.fd, frame.text().unwrap_or(""));
    ///         srv.broadcast(line, OpCode::Text) // encoded once, written to every client
    ///     });
    ///     server.start()
    /// }
    /// ```
    pub fn broadcast(&self, data: impl Into<Bytes>, opcode: OpCode) -> Result<(), SendError> {
        self.broadcast_inner(None, data.into(), opcode)
    }

    /// As [`broadcast`](Handle::broadcast), to the connections in `fds` that are established
    /// WebSocket connections (others are skipped).
    ///
    /// Base mode: the connections of other workers are grouped by owner (from shared memory):
    /// one datagram per worker, carrying its connections' ids and the data once.
    ///
    /// # Errors
    /// As [`broadcast`](Handle::broadcast).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use rswoole::websocket::{OpCode, WebSocketServer};
    /// use rswoole::ConnId;
    ///
    /// fn main() -> rswoole::Result<()> {
    ///     let mut server = WebSocketServer::bind("127.0.0.1:9502")?;
    ///     server.on_message(|srv, frame| async move {
    ///         // Everyone but the sender.
    ///         let others: Vec<ConnId> = srv.ws_connections().into_iter().filter(|&fd| fd != frame.fd).collect();
    ///         srv.broadcast_to(&others, frame.data, OpCode::Text)
    ///     });
    ///     server.start()
    /// }
    /// ```
    pub fn broadcast_to(
        &self,
        fds: &[ConnId],
        data: impl Into<Bytes>,
        opcode: OpCode,
    ) -> Result<(), SendError> {
        self.broadcast_inner(Some(fds), data.into(), opcode)
    }

    fn broadcast_inner(
        &self,
        fds: Option<&[ConnId]>,
        data: Bytes,
        opcode: OpCode,
    ) -> Result<(), SendError> {
        let ctx = &self.ctx;
        if let Some(tx) = ctx.pipe() {
            let n = fds.map_or(0, |f| f.len());
            let mut p = BytesMut::with_capacity(4 + n * 8 + data.len());
            match fds {
                None => p.put_u32_le(u32::MAX),
                Some(f) => {
                    p.put_u32_le(f.len() as u32);
                    for fd in f {
                        p.put_u64_le(fd.0);
                    }
                }
            }
            p.put_slice(&data);
            let h = Header {
                kind: Kind::WsBroadcast,
                flags: 0,
                listener: opcode.as_u8() as u16,
                session: 0,
                seq: 0,
            };
            return if tx.push(h, &p) {
                Ok(())
            } else {
                Err(SendError::Closed(ConnId(0), data))
            };
        }
        let conns = ctx
            .local_conns()
            .expect("a worker has a pipe or its own connections");
        let op = opcode.as_u8();
        let h = Header {
            kind: Kind::WsBroadcastFwd,
            flags: 0,
            listener: 0,
            session: 0,
            seq: op as u64,
        };
        match fds {
            None => {
                owner::broadcast(conns.all(), op, &data);
                // One record per other worker; each fans out to its own connections.
                if let Some(mail) = ctx.mail() {
                    let mut p = BytesMut::with_capacity(4 + data.len());
                    p.put_u32_le(u32::MAX);
                    p.put_slice(&data);
                    for to in mail.targets() {
                        let _ = forward(self, to, h, &p);
                    }
                }
            }
            Some(f) => {
                let mut local = Vec::new();
                let mut remote: std::collections::BTreeMap<usize, Vec<u64>> = Default::default();
                for &fd in f {
                    if let Some(c) = conns.get(fd) {
                        local.push(c);
                    } else if let Some(slot) = ctx.shared.live_slot(fd) {
                        let w = slot.worker.load(Relaxed) as usize;
                        if w != ctx.id {
                            remote.entry(w).or_default().push(fd.0);
                        }
                    }
                }
                owner::broadcast(local, op, &data);
                for (to, ids) in remote {
                    let mut p = BytesMut::with_capacity(4 + ids.len() * 8 + data.len());
                    p.put_u32_le(ids.len() as u32);
                    for id in ids {
                        p.put_u64_le(id);
                    }
                    p.put_slice(&data);
                    let _ = forward(self, to, h, &p);
                }
            }
        }
        Ok(())
    }

    /// Closes WebSocket connection `fd` with a Close frame (`code`, e.g. 1000, and a reason of
    /// at most 123 bytes); the TCP connection closes when the client answers (or after
    /// [`WebSocketSettings::close_timeout`]); `on_close` follows. A connection that is not a
    /// WebSocket just closes. Returns `false` if `fd` is not open.
    ///
    /// Base mode: another worker's connection is closed by that worker (one datagram to it);
    /// `true` then means the request was forwarded.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use rswoole::websocket::WebSocketServer;
    ///
    /// fn main() -> rswoole::Result<()> {
    ///     let mut server = WebSocketServer::bind("127.0.0.1:9502")?;
    ///     server.on_message(|srv, frame| async move {
    ///         if frame.text() == Some("bye") {
    ///             srv.disconnect(frame.fd, 1000, "see you");
    ///         }
    ///     });
    ///     server.start()
    /// }
    /// ```
    pub fn disconnect(&self, fd: ConnId, code: u16, reason: &str) -> bool {
        let ctx = &self.ctx;
        if ctx.shared.live_slot(fd).is_none() {
            return false;
        }
        if let Some(tx) = ctx.pipe() {
            let mut p = Vec::with_capacity(2 + reason.len());
            p.extend_from_slice(&code.to_le_bytes());
            p.extend_from_slice(reason.as_bytes());
            let h = Header {
                kind: Kind::WsDisconnect,
                flags: 0,
                listener: 0,
                session: fd.0,
                seq: 0,
            };
            return tx.push(h, &p);
        }
        if let Some(c) = ctx.local_conns().and_then(|c| c.get(fd)) {
            owner::disconnect(&c, code, reason);
            return true;
        }
        // Base mode, another worker's connection: forward to its owner.
        let Some(owner_id) = ctx
            .shared
            .live_slot(fd)
            .map(|s| s.worker.load(Relaxed) as usize)
            .filter(|&w| w != ctx.id)
        else {
            return false;
        };
        let mut p = Vec::with_capacity(2 + reason.len());
        p.extend_from_slice(&code.to_le_bytes());
        p.extend_from_slice(reason.as_bytes());
        let h = Header {
            kind: Kind::WsDisconnectFwd,
            flags: 0,
            listener: 0,
            session: fd.0,
            seq: 0,
        };
        forward(self, owner_id, h, &p).is_ok()
    }

    /// Whether `fd` is an open WebSocket connection whose handshake is complete (of any
    /// worker; read from shared memory).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use rswoole::websocket::{OpCode, WebSocketServer};
    /// use rswoole::ConnId;
    ///
    /// fn main() -> rswoole::Result<()> {
    ///     let mut server = WebSocketServer::bind("127.0.0.1:9502")?;
    ///     server.on_message(|srv, frame| async move {
    ///         // "to:<fd> <text>": a private message.
    ///         let text = frame.text().unwrap_or("").to_owned();
    ///         if let Some((to, msg)) = text.strip_prefix("to:").and_then(|r| r.split_once(' ')) {
    ///             let to = ConnId(to.parse().unwrap_or(0));
    ///             if srv.is_established(to) {
    ///                 let _ = srv.push(to, msg.to_owned(), OpCode::Text);
    ///             }
    ///         }
    ///     });
    ///     server.start()
    /// }
    /// ```
    pub fn is_established(&self, fd: ConnId) -> bool {
        self.ctx.shared.is_websocket(fd)
    }

    /// Every established WebSocket connection of the server (a snapshot from shared memory,
    /// every worker's in Base mode too).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use rswoole::websocket::{OpCode, WebSocketServer};
    ///
    /// fn main() -> rswoole::Result<()> {
    ///     let mut server = WebSocketServer::bind("127.0.0.1:9502")?;
    ///     server.on_message(|srv, frame| async move {
    ///         let online = srv.ws_connections().len();
    ///         srv.push(frame.fd, format!("{online} online"), OpCode::Text)
    ///     });
    ///     server.start()
    /// }
    /// ```
    pub fn ws_connections(&self) -> Vec<ConnId> {
        self.ctx.shared.websockets()
    }
}

/// Base mode: queues a record for worker `to`'s mailbox (see `crate::mailbox`). A refusal is
/// logged at debug level; the caller decides whether it matters.
fn forward(
    h: &Handle,
    to: usize,
    rec: Header,
    payload: &[u8],
) -> std::result::Result<(), crate::mailbox::Refused> {
    let Some(mail) = h.ctx.mail() else {
        return Err(crate::mailbox::Refused::NoWorker);
    };
    mail.push(to, rec, payload).inspect_err(|e| {
        tracing::debug!(worker = h.ctx.id, to, reason = ?e, kind = ?rec.kind, "WebSocket output for another worker not queued");
    })
}
