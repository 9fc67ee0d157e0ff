//! The public server API: [`Server`] (listeners, settings, callbacks), [`Port`] (one
//! listener) and [`Handle`], what every callback gets.
//!
//! Layer 5: the API builds the runtime's callback table ([`crate::runtime::app::App`]) and
//! starts the runtime; it never reaches into a connection or an IPC record itself.
//!
//! State that a callback captures is per process: `start()` forks the workers, and each gets
//! its own copy of everything the closures hold (a counter, a `HashMap`, a `Vec` of clients),
//! as with Swoole's globals. What every worker must see goes in shared memory:
//! [`Table`](crate::Table), [`Atomic`](crate::Atomic), created before `start()`.

mod handle;
mod port;
pub(crate) mod slot;

use port::callback_setters;

use std::fmt;
use std::future::Future;
use std::net::{SocketAddr, ToSocketAddrs};
use std::rc::Rc;

use bytes::Bytes;

pub use handle::Handle;
pub use port::Port;

use crate::base::{
    CallbackResult, ConnId, Error, MasterInfo, Packet, ReceiveEvent, Result, Settings, SockType,
};
use crate::owner::inbound::Protocol;
use crate::runtime::app::{App, Cb, Listener, PolledCb, PortCallbacks};

/// The HTTP/WebSocket servers' own check of a listener that speaks their protocol.
pub(crate) type PortCheck = dyn Fn(&Port) -> Result<()>;

/// Wraps a user callback for the runtime: the worker's context becomes a [`Handle`], and an
/// error the callback returns is logged under `name`.
pub(crate) fn wrap<T: 'static, F, Fut>(name: &'static str, f: F) -> Cb<T>
where
    F: Fn(Handle, T) -> Fut + 'static,
    Fut: Future + 'static,
    Fut::Output: CallbackResult,
{
    Rc::new(move |ctx, t| {
        let fut = f(Handle::new(ctx), t);
        Box::pin(async move { fut.await.report(name) })
    })
}

/// Wraps a user callback that is polled where its event arrives ([`PolledCb`]): its futures
/// are made in one reused heap slot ([`slot::Slots`]), so a callback that finishes on its first
/// poll costs no allocation per event.
pub(crate) fn wrap_polled<T: 'static, F, Fut>(name: &'static str, f: F) -> PolledCb<T>
where
    F: Fn(Handle, T) -> Fut + 'static,
    Fut: Future + 'static,
    Fut::Output: CallbackResult,
{
    let slots = slot::Slots::new();
    Rc::new(move |ctx, t, cx| slots.run(name, || f(Handle::new(ctx), t), cx))
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
///     server.set(Settings::default().worker_num(2));
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
    /// The default stream callbacks of every listener.
    pub(crate) callbacks: PortCallbacks,
    /// The rest of the callback table (master, worker, task and protocol callbacks).
    pub(crate) app: App,
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
            ports: vec![Port::new(addr, sock_type)],
            callbacks: PortCallbacks::default(),
            app: App::default(),
        })
    }

    /// Replaces the settings.
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole::{Mode, Server, Settings};
    /// let mut server = Server::bind("127.0.0.1:9501")?;
    /// server.set(Settings::default().worker_num(4).mode(Mode::Base));
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
        self.ports.push(Port::new(addr, sock_type));
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
        self.app.on_start = Some(Rc::new(f));
        self
    }

    /// Shows `table`'s rows in use and capacity on the admin listener's `/metrics`
    /// (`rswoole_table_rows{table="name"}`, `rswoole_table_capacity_rows`), with
    /// `Settings::admin.addr` on.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use rswoole::{Column, Server, Table};
    ///
    /// fn main() -> rswoole::Result<()> {
    ///     let sessions = Table::builder(1024).column("hits", Column::Int).build().expect("table");
    ///     let mut server = Server::bind("127.0.0.1:9501")?;
    ///     server.watch_table("sessions", &sessions);
    ///     server.on_receive(|srv, ev| async move { srv.send(ev.fd, ev.data) });
    ///     server.start()
    /// }
    /// ```
    pub fn watch_table(&mut self, name: &str, table: &rswoole_shm::Table) -> &mut Self {
        self.app.tables.push((name.to_string(), table.clone()));
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
        self.app.on_shutdown = Some(Rc::new(f));
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
        self.app.on_worker_start = Some(wrap("on_worker_start", f));
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
        self.app.on_worker_stop = Some(wrap("on_worker_stop", f));
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
        self.app.on_pipe_message = Some(Rc::new(move |ctx, from, data| {
            let fut = f(Handle::new(ctx), from, data);
            Box::pin(async move { fut.await.report("on_pipe_message") })
        }));
        self
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
        self.start_with(None)
    }

    /// Checks the callbacks every listener needs, builds the runtime's callback table and
    /// starts it. `protocol_check` is the HTTP/WebSocket servers' own check.
    pub(crate) fn start_with(mut self, protocol_check: Option<&PortCheck>) -> Result<()> {
        let has_task = self.app.on_task.is_some();
        let tw = self.settings.task_worker_num;
        if tw > 0 && !has_task {
            return Err(Error::InvalidSetting {
                name: "task_worker_num",
                reason: format!(
                    "task_worker_num is {tw} but the callback `on_task` is missing: register server.on_task(...)"
                ),
            });
        }
        if tw == 0 && has_task {
            return Err(Error::InvalidSetting {
                name: "task_worker_num",
                reason: "the callback `on_task` is registered but task_worker_num is 0: set task_worker_num".into(),
            });
        }
        let mut listeners = Vec::with_capacity(self.ports.len());
        for (i, p) in self.ports.iter().enumerate() {
            let tls = p
                .tls
                .clone()
                .or_else(|| (i == 0).then(|| self.settings.tls.clone()).flatten());
            if tls.is_some() && p.sock_type == SockType::Udp {
                return Err(Error::InvalidSetting {
                    name: "tls",
                    reason: format!("listener {} is UDP: TLS is for TCP listeners", p.addr),
                });
            }
            let callbacks = p.callbacks.or(&self.callbacks);
            let missing = |callback, kind| Error::MissingCallback {
                callback,
                kind,
                addr: p.addr,
            };
            match (p.sock_type, p.protocol) {
                (SockType::Udp, _) if callbacks.on_packet.is_none() => {
                    return Err(missing("on_packet", "UDP"))
                }
                (SockType::Tcp, Protocol::Stream) if callbacks.on_receive.is_none() => {
                    return Err(missing("on_receive", "TCP"))
                }
                (SockType::Tcp, Protocol::Http | Protocol::WebSocket) => match protocol_check {
                    Some(check) => check(p)?,
                    None => return Err(missing("on_request", "HTTP")),
                },
                _ => {}
            }
            listeners.push(Listener {
                addr: p.addr,
                sock_type: p.sock_type,
                protocol: p.protocol,
                framing: p.framing.clone(),
                callbacks,
                tls,
            });
        }
        self.app.listeners = listeners;
        crate::runtime::start(self.app, self.settings)
    }
}

/// The [`Server`] methods that also apply to the HTTP and WebSocket servers, forwarded to
/// their inner `server` field: settings, extra listeners, and the callbacks that are not
/// about raw TCP data (`on_receive` / `on_packet` belong to [`Port`]s of their own).
macro_rules! forward_server_methods {
    () => {
        /// Replaces the settings (see [`Server::set`](crate::Server::set)).
        pub fn set(&mut self, settings: $crate::Settings) -> &mut Self {
            self.server.set(settings);
            self
        }

        /// The settings, to change in place (see
        /// [`Server::settings_mut`](crate::Server::settings_mut)).
        pub fn settings_mut(&mut self) -> &mut $crate::Settings {
            self.server.settings_mut()
        }

        /// Adds a plain TCP or UDP listener with callbacks of its own, next to the HTTP one
        /// (see [`Server::add_listener`](crate::Server::add_listener)).
        ///
        /// # Errors
        /// [`Error::Address`](crate::Error::Address) if `addr` does not parse.
        pub fn add_listener(
            &mut self,
            addr: &str,
            sock_type: $crate::SockType,
        ) -> $crate::Result<&mut $crate::Port> {
            self.server.add_listener(addr, sock_type)
        }

        /// Runs when a client connects (see [`Server::on_connect`](crate::Server::on_connect)).
        pub fn on_connect<F, Fut>(&mut self, f: F) -> &mut Self
        where
            F: Fn($crate::Handle, $crate::ConnId) -> Fut + 'static,
            Fut: std::future::Future + 'static,
            Fut::Output: $crate::CallbackResult,
        {
            self.server.on_connect(f);
            self
        }

        /// Runs exactly once when a connection ends (see
        /// [`Server::on_close`](crate::Server::on_close)).
        pub fn on_close<F, Fut>(&mut self, f: F) -> &mut Self
        where
            F: Fn($crate::Handle, $crate::ConnId) -> Fut + 'static,
            Fut: std::future::Future + 'static,
            Fut::Output: $crate::CallbackResult,
        {
            self.server.on_close(f);
            self
        }

        /// Runs in the master once the server serves (see
        /// [`Server::on_start`](crate::Server::on_start)).
        pub fn on_start(&mut self, f: impl Fn(&$crate::MasterInfo) + 'static) -> &mut Self {
            self.server.on_start(f);
            self
        }

        /// Shows a table's rows on `/metrics` (see
        /// [`Server::watch_table`](crate::Server::watch_table)).
        pub fn watch_table(&mut self, name: &str, table: &$crate::Table) -> &mut Self {
            self.server.watch_table(name, table);
            self
        }

        /// Runs in the master after the server stopped (see
        /// [`Server::on_shutdown`](crate::Server::on_shutdown)).
        pub fn on_shutdown(&mut self, f: impl Fn(&$crate::MasterInfo) + 'static) -> &mut Self {
            self.server.on_shutdown(f);
            self
        }

        /// Runs in each worker as it starts (see
        /// [`Server::on_worker_start`](crate::Server::on_worker_start)).
        pub fn on_worker_start<F, Fut>(&mut self, f: F) -> &mut Self
        where
            F: Fn($crate::Handle, usize) -> Fut + 'static,
            Fut: std::future::Future + 'static,
            Fut::Output: $crate::CallbackResult,
        {
            self.server.on_worker_start(f);
            self
        }

        /// Runs in each worker as it stops (see
        /// [`Server::on_worker_stop`](crate::Server::on_worker_stop)).
        pub fn on_worker_stop<F, Fut>(&mut self, f: F) -> &mut Self
        where
            F: Fn($crate::Handle, usize) -> Fut + 'static,
            Fut: std::future::Future + 'static,
            Fut::Output: $crate::CallbackResult,
        {
            self.server.on_worker_stop(f);
            self
        }

        /// Runs for `send_message` from another worker (see
        /// [`Server::on_pipe_message`](crate::Server::on_pipe_message)).
        pub fn on_pipe_message<F, Fut>(&mut self, f: F) -> &mut Self
        where
            F: Fn($crate::Handle, usize, bytes::Bytes) -> Fut + 'static,
            Fut: std::future::Future + 'static,
            Fut::Output: $crate::CallbackResult,
        {
            self.server.on_pipe_message(f);
            self
        }
    };
}
pub(crate) use forward_server_methods;
