//! One listening address and its callbacks: [`Port`].

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;

use rswoole_codec::stream::Framing;

use super::{wrap, wrap_polled, Handle};
use crate::base::{CallbackResult, ConnId, Packet, ReceiveEvent, SockType};
use crate::owner::inbound::Protocol;
use crate::runtime::app::PortCallbacks;

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
    pub(crate) callbacks: PortCallbacks,
    pub(crate) framing: Option<Framing>,
    pub(crate) protocol: Protocol,
    pub(crate) tls: Option<crate::base::settings::tls::TlsSettings>,
}

impl Port {
    pub(crate) fn new(addr: SocketAddr, sock_type: SockType) -> Port {
        Port {
            addr,
            sock_type,
            callbacks: PortCallbacks::default(),
            framing: None,
            protocol: Protocol::Stream,
            tls: None,
        }
    }
}

impl fmt::Debug for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Port")
            .field("addr", &self.addr)
            .field("sock_type", &self.sock_type)
            .finish()
    }
}

/// The stream callback setters shared by [`Port`] and [`Server`](super::Server).
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
            self.$target.on_receive = Some(wrap_polled("on_receive", f));
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
        ///
        /// After the client's FIN (a half-close: it sends no more but may still read), the
        /// connection stays writable while the application owes it replies: tasks started with
        /// `task` and `after` timers set while handling its events. `on_close` then runs once
        /// those replies went out, the application called `close`, or
        /// [`Settings::half_close_timeout`](crate::Settings::half_close_timeout) passed
        /// (unlike Swoole, whose onClose fires at the FIN); with nothing owed, at once.
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
    /// [`Framing`]). Default: the server's [`Settings::framing`](crate::Settings::framing).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use rswoole::{Framing, LengthSpec, LengthType, Server, Settings, SockType};
    ///
    /// fn main() -> rswoole::Result<()> {
    ///     let mut server = Server::bind("127.0.0.1:9501")?;
    ///     server.set(Settings::default().framing(Framing::Raw));
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

    /// Serves TLS on this listener (TCP only; for the server's first listener,
    /// [`Settings::tls`](crate::Settings::tls) does the same). The files are checked at start.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use rswoole::{tls::TlsSettings, Server, SockType};
    ///
    /// fn main() -> rswoole::Result<()> {
    ///     let mut server = Server::bind("127.0.0.1:9501")?; // plain
    ///     server.on_receive(|srv, ev| async move { srv.send(ev.fd, ev.data) });
    ///     server
    ///         .add_listener("127.0.0.1:9443", SockType::Tcp)?
    ///         .set_tls(TlsSettings::new("cert.pem", "key.pem"));
    ///     server.start()
    /// }
    /// ```
    pub fn set_tls(&mut self, tls: crate::base::settings::tls::TlsSettings) -> &mut Self {
        self.tls = Some(tls);
        self
    }
}

pub(super) use callback_setters;
