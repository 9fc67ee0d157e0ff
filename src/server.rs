//! The public server API: [`Server`], its callbacks, and the [`Handle`] every callback gets.

use std::fmt;
use std::future::Future;
use std::net::{SocketAddr, ToSocketAddrs};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use rswoole_codec::stream::{Framing, StreamConfig};

use crate::error::{Error, Result, SendError};
use crate::ipc::{Header, Kind};
use crate::settings::Settings;
use crate::shared::{ConnectionInfo, Shared};
use crate::worker::WorkerCtx;

/// A connection's id (Swoole's `$fd`): unique for the server's lifetime, never reused, so a
/// `send` to a closed connection fails instead of reaching another client.
///
/// # Examples
///
/// ```
/// use rswoole::ConnId;
/// let fd = ConnId(42);
/// assert_eq!(fd.to_string(), "42"); // as Swoole prints `$fd`
/// assert!(ConnId(1) < fd);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Socket type of a listener.
///
/// # Examples
///
/// ```
/// use rswoole::{Server, SockType};
/// let mut server = Server::new("127.0.0.1:9501", SockType::Tcp)?;
/// server.add_listener("[::1]:9502", SockType::Udp)?; // UDP over IPv6 on the same server
/// # Ok::<(), rswoole::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SockType {
    /// TCP stream (IPv4 or IPv6, from the address).
    Tcp,
    /// UDP datagrams (IPv4 or IPv6, from the address).
    Udp,
}

/// Data from a client, as given to `on_receive`.
///
/// # Examples
///
/// ```no_run
/// use rswoole::Server;
///
/// fn main() -> rswoole::Result<()> {
///     let mut server = Server::bind("127.0.0.1:9501")?;
///     server.on_receive(|srv, ev| async move {
///         println!("{} bytes from {} on listener {}", ev.data.len(), ev.fd, ev.listener);
///         srv.send(ev.fd, ev.data) // echo
///     });
///     server.start()
/// }
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ReceiveEvent {
    /// The connection.
    pub fd: ConnId,
    /// The listener it came in on (0 = the bound address, then `add_listener` order).
    pub listener: usize,
    /// The bytes: one read in raw mode, one whole message with framing.
    pub data: Bytes,
}

/// A UDP datagram, as given to `on_packet`.
///
/// # Examples
///
/// ```no_run
/// use rswoole::Server;
///
/// fn main() -> rswoole::Result<()> {
///     let mut server = Server::bind_udp("127.0.0.1:9502")?;
///     server.on_packet(|srv, p| async move {
///         println!("{} bytes from {} on listener {}", p.data.len(), p.addr, p.listener);
///         srv.send_to(p.addr, p.data) // echo the datagram
///     });
///     server.start()
/// }
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Packet {
    /// The datagram.
    pub data: Bytes,
    /// Who sent it (reply with [`Handle::send_to`]).
    pub addr: SocketAddr,
    /// The listener it came in on.
    pub listener: usize,
}

/// What a callback may return: `()` or a `Result` whose error is logged.
///
/// # Examples
///
/// ```no_run
/// use rswoole::Server;
///
/// fn main() -> rswoole::Result<()> {
///     let mut server = Server::bind("127.0.0.1:9501")?;
///     // `()`: nothing to report.
///     server.on_connect(|_srv, fd| async move { println!("{fd} connected") });
///     // `Result<(), E: Display>`: an error is logged with the callback's name.
///     server.on_receive(|srv, ev| async move { srv.send(ev.fd, ev.data) });
///     server.start()
/// }
/// ```
pub trait CallbackResult {
    /// Logs the error, if any.
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole::CallbackResult;
    /// ().report("on_connect"); // nothing to log
    /// Err::<(), _>("peer went away").report("on_receive"); // logged as a warning
    /// ```
    fn report(self, callback: &'static str);
}

impl CallbackResult for () {
    fn report(self, _: &'static str) {}
}

impl<E: fmt::Display> CallbackResult for std::result::Result<(), E> {
    fn report(self, callback: &'static str) {
        if let Err(e) = self {
            tracing::warn!(callback, error = %e, "callback returned an error");
        }
    }
}

pub(crate) type BoxFut = Pin<Box<dyn Future<Output = ()>>>;
pub(crate) type Cb<T> = Rc<dyn Fn(Handle, T) -> BoxFut>;
/// `on_pipe_message`: (handle, source worker id, message).
pub(crate) type PipeCb = Rc<dyn Fn(Handle, usize, Bytes) -> BoxFut>;

fn wrap<T: 'static, F, Fut>(name: &'static str, f: F) -> Cb<T>
where
    F: Fn(Handle, T) -> Fut + 'static,
    Fut: Future + 'static,
    Fut::Output: CallbackResult,
{
    Rc::new(move |h, t| {
        let fut = f(h, t);
        Box::pin(async move { fut.await.report(name) })
    })
}

/// Callbacks of one listener (or the server's defaults).
#[derive(Clone, Default)]
pub(crate) struct Callbacks {
    pub(crate) on_connect: Option<Cb<ConnId>>,
    pub(crate) on_receive: Option<Cb<ReceiveEvent>>,
    pub(crate) on_close: Option<Cb<ConnId>>,
    pub(crate) on_packet: Option<Cb<Packet>>,
}

/// Information given to `on_start` and `on_shutdown` (they run in the master).
///
/// # Examples
///
/// ```no_run
/// use rswoole::Server;
///
/// fn main() -> rswoole::Result<()> {
///     let mut server = Server::bind("127.0.0.1:9501")?;
///     server.on_receive(|srv, ev| async move { srv.send(ev.fd, ev.data) });
///     server.on_start(|info| {
///         println!("master {} manager {} listening on {:?}", info.master_pid, info.manager_pid, info.addrs);
///     });
///     server.start()
/// }
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MasterInfo {
    /// The master's pid.
    pub master_pid: u32,
    /// The manager's pid.
    pub manager_pid: u32,
    /// Every listener's actual address (port 0 resolved).
    pub addrs: Vec<SocketAddr>,
}

type MasterCb = Rc<dyn Fn(&MasterInfo)>;

/// What a TCP listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Protocol {
    /// Raw or framed byte stream: `on_connect`/`on_receive`/`on_close`.
    #[default]
    Stream,
    /// HTTP/1.1: `on_request`.
    Http,
    /// HTTP/1.1 that also upgrades to WebSocket: `on_open`/`on_message` (`crate::websocket`).
    WebSocket,
}

/// One listening address and its callbacks.
///
/// # Examples
///
/// ```no_run
/// use rswoole::{Framing, Server, SockType};
///
/// fn main() -> rswoole::Result<()> {
///     let mut server = Server::bind("127.0.0.1:9501")?;
///     server.on_receive(|srv, ev| async move { srv.send(ev.fd, ev.data) });
///     // An admin port with its own callbacks and line framing.
///     server
///         .add_listener("127.0.0.1:9503", SockType::Tcp)?
///         .set_framing(Framing::Eof { eof: b"\n".to_vec(), split: true })
///         .on_receive(|srv, ev| async move { srv.send(ev.fd, format!("admin: {}", ev.data.len())) });
///     server.start()
/// }
/// ```
pub struct Port {
    pub(crate) addr: SocketAddr,
    pub(crate) sock_type: SockType,
    pub(crate) callbacks: Callbacks,
    pub(crate) framing: Option<Framing>,
    pub(crate) protocol: Protocol,
}

impl fmt::Debug for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Port")
            .field("addr", &self.addr)
            .field("sock_type", &self.sock_type)
            .finish()
    }
}

macro_rules! callback_setters {
    ($target:ident) => {
        /// # Examples
        ///
        /// ```no_run
        /// use rswoole::{Server, SockType};
        ///
        /// fn main() -> rswoole::Result<()> {
        ///     let mut server = Server::bind("127.0.0.1:9501")?;
        ///     server.on_connect(|srv, fd| async move { srv.send(fd, "welcome\r\n") });
        ///     server.on_receive(|srv, ev| async move { srv.send(ev.fd, ev.data) });
        ///     // A listener can have its own (here: no greeting on the admin port).
        ///     server.add_listener("127.0.0.1:9503", SockType::Tcp)?.on_connect(|_srv, _fd| async {});
        ///     server.start()
        /// }
        /// ```
        /// Runs when a client connects (TCP).
        pub fn on_connect<F, Fut>(&mut self, f: F) -> &mut Self
        where
            F: Fn(Handle, ConnId) -> Fut + 'static,
            Fut: Future + 'static,
            Fut::Output: CallbackResult,
        {
            self.$target.on_connect = Some(wrap("on_connect", f));
            self
        }

        /// # Examples
        ///
        /// ```no_run
        /// use rswoole::{Server, SockType};
        ///
        /// fn main() -> rswoole::Result<()> {
        ///     let mut server = Server::bind("127.0.0.1:9501")?;
        ///     // The default for every TCP listener...
        ///     server.on_receive(|srv, ev| async move { srv.send(ev.fd, ev.data) });
        ///     // ...and one listener's own.
        ///     server
        ///         .add_listener("127.0.0.1:9503", SockType::Tcp)?
        ///         .on_receive(|srv, ev| async move { srv.send(ev.fd, format!("{} bytes\n", ev.data.len())) });
        ///     server.start()
        /// }
        /// ```
        /// Runs for every message from a client (TCP). Required for a TCP listener.
        pub fn on_receive<F, Fut>(&mut self, f: F) -> &mut Self
        where
            F: Fn(Handle, ReceiveEvent) -> Fut + 'static,
            Fut: Future + 'static,
            Fut::Output: CallbackResult,
        {
            self.$target.on_receive = Some(wrap("on_receive", f));
            self
        }

        /// # Examples
        ///
        /// ```no_run
        /// use rswoole::Server;
        ///
        /// fn main() -> rswoole::Result<()> {
        ///     let mut server = Server::bind("127.0.0.1:9501")?;
        ///     server.on_receive(|srv, ev| async move { srv.send(ev.fd, ev.data) });
        ///     server.on_close(|srv, fd| async move {
        ///         println!("{fd} closed; {} still open", srv.stats().connections);
        ///     });
        ///     server.start()
        /// }
        /// ```
        /// Runs exactly once when a connection ends, whoever closed it (TCP).
        pub fn on_close<F, Fut>(&mut self, f: F) -> &mut Self
        where
            F: Fn(Handle, ConnId) -> Fut + 'static,
            Fut: Future + 'static,
            Fut::Output: CallbackResult,
        {
            self.$target.on_close = Some(wrap("on_close", f));
            self
        }

        /// # Examples
        ///
        /// ```no_run
        /// use rswoole::{Server, SockType};
        ///
        /// fn main() -> rswoole::Result<()> {
        ///     let mut server = Server::bind("127.0.0.1:9501")?;
        ///     server.on_receive(|srv, ev| async move { srv.send(ev.fd, ev.data) });
        ///     // A UDP listener next to the TCP one.
        ///     server
        ///         .add_listener("127.0.0.1:9502", SockType::Udp)?
        ///         .on_packet(|srv, p| async move { srv.send_to(p.addr, p.data) });
        ///     server.start()
        /// }
        /// ```
        /// Runs for every UDP datagram. Required for a UDP listener.
        pub fn on_packet<F, Fut>(&mut self, f: F) -> &mut Self
        where
            F: Fn(Handle, Packet) -> Fut + 'static,
            Fut: Future + 'static,
            Fut::Output: CallbackResult,
        {
            self.$target.on_packet = Some(wrap("on_packet", f));
            self
        }
    };
}

impl Port {
    callback_setters!(callbacks);

    /// Cuts this listener's TCP stream into messages (EOF or length prefix; see
    /// [`Framing`]). Default: the server's [`Settings::framing`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use rswoole::{Framing, LengthSpec, LengthType, Server, Settings, SockType};
    ///
    /// fn main() -> rswoole::Result<()> {
    ///     let mut server = Server::bind("127.0.0.1:9501")?;
    ///     server.set(Settings { framing: Framing::Raw, ..Default::default() });
    ///     server.on_receive(|srv, ev| async move { srv.send(ev.fd, ev.data) });
    ///     // This listener gets whole length-prefixed messages instead.
    ///     let spec = LengthSpec::new(LengthType::U32Be, 0, 4);
    ///     server.add_listener("127.0.0.1:9510", SockType::Tcp)?.set_framing(Framing::Length(spec));
    ///     server.start()
    /// }
    /// ```
    pub fn set_framing(&mut self, framing: Framing) -> &mut Self {
        self.framing = Some(framing);
        self
    }
}

/// A Swoole-style server: listeners, settings and callbacks; [`start`](Server::start) forks the
/// processes and serves until shutdown.
///
/// # Examples
/// ```no_run
/// use rswoole::{Server, Settings};
///
/// fn main() -> rswoole::Result<()> {
///     let mut server = Server::bind("127.0.0.1:9501")?;
///     server.set(Settings { worker_num: 2, ..Default::default() });
///     server.on_connect(|_srv, _fd| async { println!("Client: Connect.") });
///     server.on_receive(|srv, ev| async move {
///         srv.send(ev.fd, [&b"Server: "[..], &ev.data[..]].concat())
///     });
///     server.on_close(|_srv, _fd| async { println!("Client: Close.") });
///     server.start() // blocks until shutdown
/// }
/// ```
pub struct Server {
    pub(crate) settings: Settings,
    pub(crate) ports: Vec<Port>,
    pub(crate) callbacks: Callbacks,
    pub(crate) on_start: Option<MasterCb>,
    pub(crate) on_shutdown: Option<MasterCb>,
    pub(crate) on_worker_start: Option<Cb<usize>>,
    pub(crate) on_worker_stop: Option<Cb<usize>>,
    pub(crate) on_pipe_message: Option<PipeCb>,
    /// `on_task` / `on_finish` (src/task.rs).
    pub(crate) tasks: crate::task::TaskCallbacks,
    pub(crate) on_request: Option<crate::http::worker::ReqCb>,
    /// `on_open` / `on_message` / `on_handshake` (src/websocket).
    pub(crate) ws: crate::websocket::WsCallbacks,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("settings", &self.settings)
            .field("ports", &self.ports)
            .finish()
    }
}

pub(crate) fn parse_addr(addr: &str) -> Result<SocketAddr> {
    addr.to_socket_addrs()
        .map_err(|e| Error::Address {
            addr: addr.to_string(),
            reason: e.to_string(),
        })?
        .next()
        .ok_or_else(|| Error::Address {
            addr: addr.to_string(),
            reason: "resolves to nothing".into(),
        })
}

impl Server {
    /// A TCP server on `addr` (e.g. `"127.0.0.1:9501"`, `"[::1]:9501"`). Nothing is bound until
    /// [`start`](Server::start).
    ///
    /// # Errors
    /// [`Error::Address`] if `addr` does not parse or resolve.
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole::{Error, Server};
    /// let a = Server::bind("127.0.0.1:9501")?;
    /// let b = Server::bind("127.0.0.1:9501")?; // fine: nothing is bound before `start`
    /// assert!(matches!(Server::bind("no port"), Err(Error::Address { .. })));
    /// # drop((a, b));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn bind(addr: &str) -> Result<Server> {
        Server::new(addr, SockType::Tcp)
    }

    /// A UDP server on `addr`.
    ///
    /// # Errors
    /// [`Error::Address`] if `addr` does not parse or resolve.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use rswoole::Server;
    ///
    /// fn main() -> rswoole::Result<()> {
    ///     let mut server = Server::bind_udp("0.0.0.0:9502")?;
    ///     server.on_packet(|srv, p| async move { srv.send_to(p.addr, p.data) });
    ///     server.start()
    /// }
    /// ```
    pub fn bind_udp(addr: &str) -> Result<Server> {
        Server::new(addr, SockType::Udp)
    }

    /// A server whose first listener is `addr` of type `sock_type`.
    ///
    /// # Errors
    /// [`Error::Address`] if `addr` does not parse or resolve.
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole::{Server, SockType};
    /// let server = Server::new("[::1]:9501", SockType::Tcp)?;
    /// assert!(format!("{server:?}").contains("[::1]:9501"));
    /// # Ok::<(), rswoole::Error>(())
    /// ```
    pub fn new(addr: &str, sock_type: SockType) -> Result<Server> {
        let addr = parse_addr(addr)?;
        Ok(Server {
            settings: Settings::default(),
            ports: vec![Port {
                addr,
                sock_type,
                callbacks: Callbacks::default(),
                framing: None,
                protocol: Protocol::Stream,
            }],
            callbacks: Callbacks::default(),
            on_start: None,
            on_shutdown: None,
            on_worker_start: None,
            on_worker_stop: None,
            on_pipe_message: None,
            tasks: Default::default(),
            on_request: None,
            ws: Default::default(),
        })
    }

    /// Replaces the settings.
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole::{Mode, Server, Settings};
    /// let mut server = Server::bind("127.0.0.1:9501")?;
    /// server.set(Settings { worker_num: 4, mode: Mode::Base, ..Default::default() });
    /// assert_eq!(server.settings_mut().worker_num, 4);
    /// # Ok::<(), rswoole::Error>(())
    /// ```
    pub fn set(&mut self, settings: Settings) -> &mut Self {
        self.settings = settings;
        self
    }

    /// The settings, to change one field.
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole::Server;
    /// let mut server = Server::bind("127.0.0.1:9501")?;
    /// server.settings_mut().task_worker_num = 2;
    /// assert_eq!(server.settings_mut().task_worker_num, 2);
    /// assert_eq!(server.settings_mut().worker_num, 0); // the rest keeps its default
    /// # Ok::<(), rswoole::Error>(())
    /// ```
    pub fn settings_mut(&mut self) -> &mut Settings {
        &mut self.settings
    }

    /// Adds a listener (TCP or UDP, IPv4 or IPv6). Its callbacks default to the server's; set
    /// its own on the returned [`Port`].
    ///
    /// # Errors
    /// [`Error::Address`] if `addr` does not parse or resolve.
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole::{Server, SockType};
    /// let mut server = Server::bind("127.0.0.1:9501")?; // listener 0
    /// let port = server.add_listener("127.0.0.1:9502", SockType::Udp)?; // listener 1
    /// assert!(format!("{port:?}").contains("Udp"));
    /// assert!(server.add_listener("localhost:http:x", SockType::Tcp).is_err());
    /// # Ok::<(), rswoole::Error>(())
    /// ```
    pub fn add_listener(&mut self, addr: &str, sock_type: SockType) -> Result<&mut Port> {
        let addr = parse_addr(addr)?;
        self.ports.push(Port {
            addr,
            sock_type,
            callbacks: Callbacks::default(),
            framing: None,
            protocol: Protocol::Stream,
        });
        Ok(self.ports.last_mut().expect("just pushed"))
    }

    callback_setters!(callbacks);

    /// Runs in the master once every process is up and the listeners accept.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use rswoole::Server;
    ///
    /// fn main() -> rswoole::Result<()> {
    ///     let mut server = Server::bind("127.0.0.1:9501")?;
    ///     server.on_receive(|srv, ev| async move { srv.send(ev.fd, ev.data) });
    ///     server.on_start(|info| println!("listening on {:?}", info.addrs));
    ///     server.start()
    /// }
    /// ```
    pub fn on_start(&mut self, f: impl Fn(&MasterInfo) + 'static) -> &mut Self {
        self.on_start = Some(Rc::new(f));
        self
    }

    /// Runs in the master after every worker has stopped, before `start` returns.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use rswoole::Server;
    ///
    /// fn main() -> rswoole::Result<()> {
    ///     let mut server = Server::bind("127.0.0.1:9501")?;
    ///     server.on_receive(|srv, ev| async move { srv.send(ev.fd, ev.data) });
    ///     server.on_shutdown(|info| println!("master {} stopped", info.master_pid));
    ///     server.start()
    /// }
    /// ```
    pub fn on_shutdown(&mut self, f: impl Fn(&MasterInfo) + 'static) -> &mut Self {
        self.on_shutdown = Some(Rc::new(f));
        self
    }

    /// Runs in each worker when it starts (also after a restart), with its worker id.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use rswoole::Server;
    ///
    /// fn main() -> rswoole::Result<()> {
    ///     let mut server = Server::bind("127.0.0.1:9501")?;
    ///     server.on_worker_start(|_srv, id| async move { println!("worker {id} up") });
    ///     server.on_receive(|srv, ev| async move { srv.send(ev.fd, ev.data) });
    ///     server.start()
    /// }
    /// ```
    pub fn on_worker_start<F, Fut>(&mut self, f: F) -> &mut Self
    where
        F: Fn(Handle, usize) -> Fut + 'static,
        Fut: Future + 'static,
        Fut::Output: CallbackResult,
    {
        self.on_worker_start = Some(wrap("on_worker_start", f));
        self
    }

    /// Runs in each worker when it stops gracefully (shutdown, reload), with its worker id.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use rswoole::Server;
    ///
    /// fn main() -> rswoole::Result<()> {
    ///     let mut server = Server::bind("127.0.0.1:9501")?;
    ///     server.on_worker_stop(|_srv, id| async move { println!("worker {id} stopping") });
    ///     server.on_receive(|srv, ev| async move { srv.send(ev.fd, ev.data) });
    ///     server.start()
    /// }
    /// ```
    pub fn on_worker_stop<F, Fut>(&mut self, f: F) -> &mut Self
    where
        F: Fn(Handle, usize) -> Fut + 'static,
        Fut: Future + 'static,
        Fut::Output: CallbackResult,
    {
        self.on_worker_stop = Some(wrap("on_worker_stop", f));
        self
    }

    /// Runs in the target worker for every [`Handle::send_message`] addressed to it, with the
    /// sender's worker id and the message. Messages from one worker to another arrive in the
    /// order they were sent, one callback at a time.
    ///
    /// # Examples
    /// ```no_run
    /// # let mut server = rswoole::Server::bind("127.0.0.1:9501").unwrap();
    /// server.on_pipe_message(|srv, from, data| async move {
    ///     println!("worker {} got {data:?} from worker {from}", srv.worker_id());
    /// });
    /// # server.start().unwrap();
    /// ```
    pub fn on_pipe_message<F, Fut>(&mut self, f: F) -> &mut Self
    where
        F: Fn(Handle, usize, Bytes) -> Fut + 'static,
        Fut: Future + 'static,
        Fut::Output: CallbackResult,
    {
        self.on_pipe_message = Some(Rc::new(move |h, from, data| {
            let fut = f(h, from, data);
            Box::pin(async move { fut.await.report("on_pipe_message") })
        }));
        self
    }

    /// The effective callbacks of listener `i`.
    pub(crate) fn port_callbacks(&self, i: usize) -> Callbacks {
        let own = &self.ports[i].callbacks;
        let d = &self.callbacks;
        Callbacks {
            on_connect: own.on_connect.clone().or_else(|| d.on_connect.clone()),
            on_receive: own.on_receive.clone().or_else(|| d.on_receive.clone()),
            on_close: own.on_close.clone().or_else(|| d.on_close.clone()),
            on_packet: own.on_packet.clone().or_else(|| d.on_packet.clone()),
        }
    }

    /// The framing of listener `i`.
    pub(crate) fn port_framing(&self, i: usize, s: &Settings) -> crate::proto::ConnConfig {
        let stream = StreamConfig {
            framing: self.ports[i]
                .framing
                .clone()
                .unwrap_or_else(|| s.framing.clone()),
            package_max_length: s.package_max_length,
        };
        let proto = self.ports[i].protocol;
        let http = matches!(proto, Protocol::Http | Protocol::WebSocket).then(|| {
            std::sync::Arc::new(crate::proto::HttpConf {
                limits: crate::http::worker::http_limits(s),
                header_timeout: s.http.header_timeout,
                ws: (proto == Protocol::WebSocket).then(|| {
                    std::sync::Arc::new(s.websocket.owner_conf(self.ws.on_handshake.is_some()))
                }),
            })
        });
        crate::proto::ConnConfig { stream, http }
    }

    /// Checks callbacks and settings, binds every listener, forks the manager and the workers,
    /// and serves until SIGTERM/SIGINT (or [`Handle::shutdown`]). Only the master returns.
    ///
    /// # Errors
    /// [`Error::MissingCallback`] (a TCP listener without `on_receive`, a UDP one without
    /// `on_packet`), [`Error::InvalidSetting`], [`Error::Bind`] (address in use…), or
    /// [`Error::Io`] if forking fails.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use rswoole::Server;
    ///
    /// fn main() -> rswoole::Result<()> {
    ///     let mut server = Server::bind("127.0.0.1:9501")?;
    ///     server.on_receive(|srv, ev| async move { srv.send(ev.fd, ev.data) });
    ///     // Blocks until SIGTERM/SIGINT or `Handle::shutdown`; only the master gets here.
    ///     server.start()
    /// }
    /// ```
    pub fn start(self) -> Result<()> {
        crate::master::start(self)
    }
}

/// What every callback gets: the way to act on the server from a worker. Cheap to clone.
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use rswoole::{Handle, Server};
///
/// fn main() -> rswoole::Result<()> {
///     let mut server = Server::bind("127.0.0.1:9501")?;
///     server.on_receive(|srv: Handle, ev| async move {
///         let later = srv.clone(); // cheap: keep one for later
///         srv.after(Duration::from_secs(1), move || async move {
///             let _ = later.send(ev.fd, "a second later\n");
///         });
///         srv.send(ev.fd, format!("worker {} got it\n", srv.worker_id()))
///     });
///     server.start()
/// }
/// ```
#[derive(Clone)]
pub struct Handle {
    pub(crate) ctx: Arc<WorkerCtx>,
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("worker_id", &self.ctx.id)
            .finish()
    }
}

/// Server-wide counters.
///
/// # Examples
///
/// ```no_run
/// use rswoole::Server;
///
/// fn main() -> rswoole::Result<()> {
///     let mut server = Server::bind("127.0.0.1:9501")?;
///     server.on_receive(|srv, ev| async move {
///         let s = srv.stats();
///         let line = format!("{} open, {} accepted, per worker {:?}\n", s.connections, s.accepted, s.requests);
///         srv.send(ev.fd, line)
///     });
///     server.start()
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// When the server started.
    pub start_time: SystemTime,
    /// Connections open now.
    pub connections: u64,
    /// Connections accepted since start.
    pub accepted: u64,
    /// Connections closed since start.
    pub closed: u64,
    /// Connections refused because `max_connection` was reached.
    pub refused: u64,
    /// Events (receives and packets) handled, per worker.
    pub requests: Vec<u64>,
    /// Restarts, per worker.
    pub restarts: Vec<u64>,
}

impl Handle {
    /// This worker's id, `0..worker_num`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use rswoole::Server;
    ///
    /// fn main() -> rswoole::Result<()> {
    ///     let mut server = Server::bind("127.0.0.1:9501")?;
    ///     server.on_worker_start(|srv, id| async move { assert_eq!(srv.worker_id(), id) });
    ///     server.on_receive(|srv, ev| async move { srv.send(ev.fd, format!("worker {}\n", srv.worker_id())) });
    ///     server.start()
    /// }
    /// ```
    pub fn worker_id(&self) -> usize {
        self.ctx.id
    }

    /// Sends `data` to connection `fd`. Returns at once: the data is queued and written by the
    /// process that owns the socket.
    ///
    /// # Errors
    /// [`SendError::Closed`] if `fd` is closed or unknown; [`SendError::BufferFull`] if the
    /// connection already has `buffer_output_size` bytes waiting (a slow reader);
    /// [`SendError::NotLocal`] in Base mode for another worker's connection. The data comes
    /// back in the error.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use rswoole::{SendError, Server};
    ///
    /// fn main() -> rswoole::Result<()> {
    ///     let mut server = Server::bind("127.0.0.1:9501")?;
    ///     server.on_receive(|srv, ev| async move {
    ///         match srv.send(ev.fd, ev.data) {
    ///             Ok(()) => {}
    ///             Err(SendError::BufferFull(fd, _data)) => {
    ///                 srv.close(fd); // a client that does not read
    ///             }
    ///             Err(e) => eprintln!("send: {e}"),
    ///         }
    ///     });
    ///     server.start()
    /// }
    /// ```
    pub fn send(&self, fd: ConnId, data: impl Into<Bytes>) -> Result<(), SendError> {
        self.ctx.send(fd, data.into())
    }

    /// Closes connection `fd` after its queued output is written; `on_close` follows. Returns
    /// `false` if it is already closed or closing.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use rswoole::Server;
    ///
    /// fn main() -> rswoole::Result<()> {
    ///     let mut server = Server::bind("127.0.0.1:9501")?;
    ///     server.on_receive(|srv, ev| async move {
    ///         if &ev.data[..] == b"quit\r\n" {
    ///             let _ = srv.send(ev.fd, "bye\r\n"); // written before the close
    ///             srv.close(ev.fd);
    ///         }
    ///     });
    ///     server.start()
    /// }
    /// ```
    pub fn close(&self, fd: ConnId) -> bool {
        self.ctx.close(fd)
    }

    /// Whether `fd` is an open connection (of any worker).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use rswoole::{ConnId, Server};
    ///
    /// fn main() -> rswoole::Result<()> {
    ///     let mut server = Server::bind("127.0.0.1:9501")?;
    ///     server.on_receive(|srv, ev| async move {
    ///         // "to:<fd> <text>": relay to another client.
    ///         let text = String::from_utf8_lossy(&ev.data).into_owned();
    ///         if let Some((to, msg)) = text.strip_prefix("to:").and_then(|r| r.split_once(' ')) {
    ///             let to = ConnId(to.parse().unwrap_or(0));
    ///             if srv.exists(to) {
    ///                 let _ = srv.send(to, msg.to_owned());
    ///             }
    ///         }
    ///     });
    ///     server.start()
    /// }
    /// ```
    pub fn exists(&self, fd: ConnId) -> bool {
        self.ctx.shared.live_slot(fd).is_some()
    }

    /// Remote address, server port, reactor, connect and last-receive times of `fd`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use rswoole::Server;
    ///
    /// fn main() -> rswoole::Result<()> {
    ///     let mut server = Server::bind("127.0.0.1:9501")?;
    ///     server.on_connect(|srv, fd| async move {
    ///         if let Some(info) = srv.connection_info(fd) {
    ///             println!("{fd} from {} on port {}", info.remote_addr, info.server_port);
    ///         }
    ///     });
    ///     server.on_receive(|srv, ev| async move { srv.send(ev.fd, ev.data) });
    ///     server.start()
    /// }
    /// ```
    pub fn connection_info(&self, fd: ConnId) -> Option<ConnectionInfo> {
        self.ctx.shared.info(fd)
    }

    /// Every open connection of the server, whichever worker (or, in Process mode, reactor)
    /// holds it, read from shared memory: no IPC, safe to call from any worker or task worker.
    ///
    /// The list is a snapshot: a connection may close (or a new one open) right after it was
    /// taken, so a `send` in a broadcast loop may fail with [`SendError::Closed`]; ignore that.
    /// In [`Mode::Base`](crate::Mode::Base) the list still covers every worker's connections,
    /// but only the worker that owns a connection can `send` to it
    /// ([`SendError::NotLocal`]): forward the rest with [`send_message`](Handle::send_message).
    ///
    /// # Examples
    /// ```no_run
    /// # let mut server = rswoole::Server::bind("127.0.0.1:9501").unwrap();
    /// server.on_receive(|srv, ev| async move {
    ///     for fd in srv.connections() {
    ///         let _ = srv.send(fd, ev.data.clone()); // broadcast; closed ones are skipped
    ///     }
    /// });
    /// # server.start().unwrap();
    /// ```
    pub fn connections(&self) -> Vec<ConnId> {
        self.ctx.shared.connections()
    }

    /// Binds connection `fd` to user id `uid` (Swoole's `bind`). With
    /// [`DispatchMode::Uid`](crate::DispatchMode::Uid) (dispatch_mode 5) its later events go to
    /// worker `uid % worker_num`; in other modes it only records the uid (see
    /// [`ConnectionInfo::uid`]).
    ///
    /// Returns `false` if `fd` is not open, is already bound (a connection binds once), or
    /// `uid` is 0. Events already in flight when it is called still finish on their worker.
    /// In [`Mode::Base`](crate::Mode::Base) a connection stays with the worker that accepted
    /// it; the uid is recorded only.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use rswoole::{DispatchMode, Server, Settings};
    ///
    /// fn main() -> rswoole::Result<()> {
    ///     let mut server = Server::bind("127.0.0.1:9501")?;
    ///     server.set(Settings { dispatch_mode: DispatchMode::Uid, ..Default::default() });
    ///     server.on_receive(|srv, ev| async move {
    ///         // "login <uid>": from now on this user's events go to worker uid % worker_num.
    ///         let text = String::from_utf8_lossy(&ev.data).into_owned();
    ///         if let Some(uid) = text.trim().strip_prefix("login ").and_then(|u| u.parse().ok()) {
    ///             let bound = srv.bind(ev.fd, uid);
    ///             let _ = srv.send(ev.fd, format!("bound: {bound}\n"));
    ///         }
    ///     });
    ///     server.start()
    /// }
    /// ```
    pub fn bind(&self, fd: ConnId, uid: u32) -> bool {
        self.ctx.shared.bind(fd, uid)
    }

    /// Sends `data` to worker `worker_id` (`0..worker_num`), whose
    /// [`on_pipe_message`](Server::on_pipe_message) gets it with this worker's id. Returns
    /// at once.
    ///
    /// [`Mode::Process`](crate::Mode::Process): through the master; if the target is
    /// restarting the message waits for its next incarnation. [`Mode::Base`](crate::Mode::Base):
    /// straight to the target over a local datagram socket; it fails if the target is not
    /// running at that moment.
    ///
    /// # Errors
    /// [`SendError::NoWorker`] if `worker_id` is out of range; [`SendError::Closed`] (with fd 0)
    /// if this worker is shutting down; [`SendError::Io`] if the OS refuses (Base mode).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use rswoole::{Server, Settings};
    ///
    /// fn main() -> rswoole::Result<()> {
    ///     let mut server = Server::bind("127.0.0.1:9501")?;
    ///     server.set(Settings { worker_num: 4, ..Default::default() });
    ///     server.on_pipe_message(|_srv, from, data| async move {
    ///         println!("from worker {from}: {}", String::from_utf8_lossy(&data));
    ///     });
    ///     server.on_receive(|srv, ev| async move {
    ///         let next = (srv.worker_id() + 1) % 4;
    ///         srv.send_message(next, ev.data) // the data comes back in the error if it fails
    ///     });
    ///     server.start()
    /// }
    /// ```
    pub fn send_message(&self, worker_id: usize, data: impl Into<Bytes>) -> Result<(), SendError> {
        self.ctx.send_message(worker_id, data.into())
    }

    /// Sends a UDP datagram to `addr` from the first UDP listener of `addr`'s family.
    ///
    /// # Errors
    /// [`SendError::NoSocket`] without a UDP listener; [`SendError::Io`] if the OS refuses.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use rswoole::Server;
    ///
    /// fn main() -> rswoole::Result<()> {
    ///     let mut server = Server::bind_udp("127.0.0.1:9502")?;
    ///     server.on_packet(|srv, p| async move { srv.send_to(p.addr, [&b"echo: "[..], &p.data[..]].concat()) });
    ///     server.start()
    /// }
    /// ```
    pub fn send_to(&self, addr: SocketAddr, data: impl Into<Bytes>) -> Result<(), SendError> {
        self.ctx.send_to(None, addr, data.into())
    }

    /// Sends a UDP datagram from listener `listener`.
    ///
    /// # Errors
    /// As [`send_to`](Handle::send_to).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use rswoole::{Server, SockType};
    ///
    /// fn main() -> rswoole::Result<()> {
    ///     let mut server = Server::bind_udp("0.0.0.0:9502")?;
    ///     server.add_listener("[::]:9503", SockType::Udp)?; // listener 1
    ///     server.on_packet(|srv, p| async move {
    ///         srv.send_to_via(p.listener, p.addr, p.data) // reply from the listener it came in on
    ///     });
    ///     server.start()
    /// }
    /// ```
    pub fn send_to_via(
        &self,
        listener: usize,
        addr: SocketAddr,
        data: impl Into<Bytes>,
    ) -> Result<(), SendError> {
        self.ctx.send_to(Some(listener), addr, data.into())
    }

    /// Server-wide counters.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use rswoole::Server;
    ///
    /// fn main() -> rswoole::Result<()> {
    ///     let mut server = Server::bind("127.0.0.1:9501")?;
    ///     server.on_receive(|srv, ev| async move {
    ///         let s = srv.stats();
    ///         let uptime = s.start_time.elapsed().unwrap_or_default();
    ///         srv.send(ev.fd, format!("up {}s, {} connections\n", uptime.as_secs(), s.connections))
    ///     });
    ///     server.start()
    /// }
    /// ```
    pub fn stats(&self) -> Stats {
        stats(&self.ctx.shared, self.ctx.settings.worker_num)
    }

    /// Asks the whole server to shut down gracefully (as SIGTERM to the master).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use rswoole::Server;
    ///
    /// fn main() -> rswoole::Result<()> {
    ///     let mut server = Server::bind("127.0.0.1:9501")?;
    ///     server.on_receive(|srv, ev| async move {
    ///         if &ev.data[..] == b"SHUTDOWN\r\n" {
    ///             srv.shutdown(); // `start` returns in the master once every worker has stopped
    ///         }
    ///     });
    ///     server.start()
    /// }
    /// ```
    pub fn shutdown(&self) {
        let pid = self
            .ctx
            .shared
            .header()
            .master_pid
            .load(std::sync::atomic::Ordering::Relaxed);
        if pid != 0 {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
    }
}

pub(crate) fn stats(shared: &Shared, workers: usize) -> Stats {
    use std::sync::atomic::Ordering::Relaxed;
    let h = shared.header();
    Stats {
        start_time: SystemTime::UNIX_EPOCH
            + std::time::Duration::from_millis(h.started_ms.load(Relaxed)),
        connections: h.live.load(Relaxed),
        accepted: h.accepted.load(Relaxed),
        closed: h.closed.load(Relaxed),
        refused: h.refused.load(Relaxed),
        requests: (0..workers)
            .map(|i| shared.worker(i).requests.load(Relaxed))
            .collect(),
        restarts: (0..workers)
            .map(|i| shared.worker(i).restarts.load(Relaxed))
            .collect(),
    }
}

pub(crate) fn send_record(tx: &crate::ipc::PipeTx, kind: Kind, fd: ConnId, payload: &[u8]) -> bool {
    tx.push(
        Header {
            kind,
            flags: 0,
            listener: 0,
            session: fd.0,
            seq: 0,
        },
        payload,
    )
}
