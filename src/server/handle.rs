//! [`Handle`]: what every callback gets, the way to act on the server from a worker.

use std::fmt;
use std::net::SocketAddr;

use bytes::Bytes;

use crate::base::{
    ClusterConnId, ClusterError, ClusterNode, ConnError, ConnId, ConnectionInfo, SendError, Stats,
};
use crate::runtime::app::Ctx;

/// What every callback gets: the way to act on the server from a worker. Cheap to clone.
///
/// A handle belongs to one worker process. What a callback captures (a counter, a map of
/// clients) is that worker's own copy: `start()` forks, so each worker has its own, as with
/// Swoole's globals. State that every worker must see goes in shared memory
/// ([`Table`](crate::Table), [`Atomic`](crate::Atomic), made before `start()`), and clients
/// of other workers are reached with [`broadcast`](Handle::broadcast),
/// [`push`](Handle::push) or [`send_message`](Handle::send_message).
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
///         let keep = srv.clone(); // cheap: keep one for later (a task, a channel...)
///         drop(keep);
///         // Timer callbacks get a handle of their own.
///         srv.after(Duration::from_secs(1), move |srv| async move {
///             srv.send(ev.fd, "a second later\n")
///         });
///         srv.send(ev.fd, format!("worker {} got it\n", srv.worker_id()))
///     });
///     server.start()
/// }
/// ```
#[derive(Clone)]
pub struct Handle {
    pub(crate) ctx: Ctx,
}

impl Handle {
    pub(crate) fn new(ctx: Ctx) -> Handle {
        Handle { ctx }
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("worker_id", &self.ctx.id)
            .finish()
    }
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
    ///                 let _ = srv.close(fd); // a client that does not read
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

    /// Sends `parts` to connection `fd`, one after the other, as [`send`](Self::send) sends
    /// their concatenation, without joining them in a buffer of their own: the socket owner
    /// writes them with one system call (Base mode: one `send`, small parts joined on the
    /// stack, or one `writev` past 512 bytes) or the worker copies them straight into its pipe
    /// datagram (Process mode). A prefix and a payload (`[b"Server: ", &ev.data]`) cost no
    /// allocation.
    ///
    /// # Errors
    /// As [`send`](Self::send); the error carries the parts joined (the only copy made then).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use rswoole::Server;
    ///
    /// fn main() -> rswoole::Result<()> {
    ///     let mut server = Server::bind("127.0.0.1:9501")?;
    ///     server.on_receive(|srv, ev| async move { srv.send_parts(ev.fd, &[b"Server: ", &ev.data]) });
    ///     server.start()
    /// }
    /// ```
    pub fn send_parts(&self, fd: ConnId, parts: &[&[u8]]) -> Result<(), SendError> {
        self.ctx.send_parts(fd, parts)
    }

    /// Closes connection `fd` after its queued output is written; `on_close` follows.
    ///
    /// # Errors
    /// [`ConnError::NotOpen`] if it is already closed or closing (or never existed);
    /// [`ConnError::Unreachable`] in Base mode for another worker's connection;
    /// [`ConnError::ShuttingDown`] if this worker is stopping.
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
    ///             let _ = srv.close(ev.fd);
    ///         }
    ///     });
    ///     server.start()
    /// }
    /// ```
    pub fn close(&self, fd: ConnId) -> Result<(), ConnError> {
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
    /// Events already in flight when it is called still finish on their worker.
    /// In [`Mode::Base`](crate::Mode::Base) a connection stays with the worker that accepted
    /// it; the uid is recorded only.
    ///
    /// # Errors
    /// [`ConnError::NotOpen`] if `fd` is not open; [`ConnError::AlreadyBound`] if it is bound
    /// already (a connection binds once); [`ConnError::InvalidUid`] for uid 0.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use rswoole::{DispatchMode, Server, Settings};
    ///
    /// fn main() -> rswoole::Result<()> {
    ///     let mut server = Server::bind("127.0.0.1:9501")?;
    ///     server.set(Settings::default().dispatch_mode(DispatchMode::Uid));
    ///     server.on_receive(|srv, ev| async move {
    ///         // "login <uid>": from now on this user's events go to worker uid % worker_num.
    ///         let text = String::from_utf8_lossy(&ev.data).into_owned();
    ///         if let Some(uid) = text.trim().strip_prefix("login ").and_then(|u| u.parse().ok()) {
    ///             let reply = match srv.bind(ev.fd, uid) {
    ///                 Ok(()) => "bound\n".to_string(),
    ///                 Err(e) => format!("not bound: {e}\n"),
    ///             };
    ///             let _ = srv.send(ev.fd, reply);
    ///         }
    ///     });
    ///     server.start()
    /// }
    /// ```
    pub fn bind(&self, fd: ConnId, uid: u32) -> Result<(), ConnError> {
        self.ctx.shared.bind(fd, uid)
    }

    /// Sends `data` to worker `worker_id` (`0..worker_num`), whose
    /// [`on_pipe_message`](crate::Server::on_pipe_message) gets it with this worker's id. Returns
    /// at once.
    ///
    /// What `Ok` means: in [`Mode::Process`](crate::Mode::Process), handed to the master,
    /// which passes it to the target's current incarnation — or keeps it for the next one if
    /// the target is restarting, and re-delivers it if the target dies before finishing it
    /// (at most [`max_redeliveries`](crate::Settings::max_redeliveries) times; then it is
    /// dropped with an error log). In [`Mode::Base`](crate::Mode::Base), written straight to
    /// the target's mailbox (a local datagram socket, bound by each incarnation before it
    /// serves); the target reads it after its `on_worker_start`. It is lost only if that
    /// incarnation exits before reading it (it died, or was being replaced).
    ///
    /// # Errors
    /// [`SendError::NoWorker`] if `worker_id` is out of range; [`SendError::ShuttingDown`] if
    /// this worker is shutting down; [`SendError::Io`] in Base mode if the OS refuses, e.g.
    /// `ConnectionRefused` while the target is down (dead and not yet restarted) or its
    /// mailbox stays full for a second.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use rswoole::{Server, Settings};
    ///
    /// fn main() -> rswoole::Result<()> {
    ///     let mut server = Server::bind("127.0.0.1:9501")?;
    ///     server.set(Settings::default().worker_num(4));
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
        self.ctx.shared.stats(self.ctx.settings.worker_num)
    }

    /// The live nodes of the cluster ([`Settings::cluster`](crate::Settings::cluster)),
    /// sorted by name, each with its open connections at its last heartbeat: a node is listed
    /// while its heartbeat key in Redis has not expired (a node killed disappears within
    /// [`ClusterSettings::node_ttl`](crate::ClusterSettings::node_ttl)).
    ///
    /// # Errors
    /// [`ClusterError::NotConfigured`] without a cluster; [`ClusterError::Unavailable`] if
    /// Redis cannot be reached.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use rswoole::Server;
    ///
    /// fn main() -> rswoole::Result<()> {
    ///     let mut server = Server::bind("127.0.0.1:9501")?;
    ///     server.on_receive(|srv, ev| async move {
    ///         let line = match srv.cluster_nodes().await {
    ///             Ok(nodes) => format!("{} nodes\n", nodes.len()),
    ///             Err(e) => format!("error: {e}\n"),
    ///         };
    ///         let _ = srv.send(ev.fd, line);
    ///     });
    ///     server.start()
    /// }
    /// ```
    pub async fn cluster_nodes(&self) -> Result<Vec<ClusterNode>, ClusterError> {
        match &self.ctx.cluster {
            Some(c) => c.nodes().await,
            None => Err(ClusterError::NotConfigured),
        }
    }

    /// The node and id of connection `fd` of this node, usable on every node of the cluster
    /// ([`cluster_send`](Handle::cluster_send) and the others); `None` without a cluster.
    ///
    /// # Examples
    /// ```no_run
    /// # let mut server = rswoole::Server::bind("127.0.0.1:9501").unwrap();
    /// server.on_connect(|srv, fd| async move {
    ///     if let Some(id) = srv.cluster_id(fd) {
    ///         println!("{id} connected"); // e.g. "n1/7"
    ///     }
    /// });
    /// # server.start().unwrap();
    /// ```
    pub fn cluster_id(&self, fd: ConnId) -> Option<ClusterConnId> {
        self.ctx
            .cluster
            .as_ref()
            .map(|c| ClusterConnId::new(c.node(), fd))
    }

    async fn remote(
        &self,
        id: &ClusterConnId,
        op: crate::runtime::cluster::Op,
        data: Bytes,
    ) -> Result<crate::runtime::cluster::Answer, ClusterError> {
        match &self.ctx.cluster {
            Some(c) => c.remote(&self.ctx, id, op, 0, data).await,
            None => Err(ClusterError::NotConfigured),
        }
    }

    /// As [`send`](Handle::send) to connection `id` of any node of the cluster: routed to
    /// the owning node through Redis, which sends it and answers. In
    /// [`Mode::Base`](crate::Mode::Base) the worker that accepted the connection applies it
    /// (the request is handed to it on its node, also when this worker is on that node), so
    /// every connection of every worker is reached.
    ///
    /// # Errors
    /// [`ClusterError::NotConfigured`]; [`ClusterError::NoNode`] (no live node of that
    /// name); [`ClusterError::Refused`] (the owner's [`SendError`], e.g. closed);
    /// [`ClusterError::Timeout`] (no answer in 2 s); [`ClusterError::Unavailable`] (Redis).
    ///
    /// # Examples
    /// ```no_run
    /// # let mut server = rswoole::Server::bind("127.0.0.1:9501").unwrap();
    /// use rswoole::ClusterConnId;
    /// server.on_receive(|srv, ev| async move {
    ///     // "NODE/FD text": relay to a client of any node.
    ///     let line = String::from_utf8_lossy(&ev.data).into_owned();
    ///     if let Some((to, text)) = line.split_once(' ') {
    ///         if let Ok(id) = to.parse::<ClusterConnId>() {
    ///             let _ = srv.cluster_send(&id, text.to_owned()).await;
    ///         }
    ///     }
    /// });
    /// # server.start().unwrap();
    /// ```
    pub async fn cluster_send(
        &self,
        id: &ClusterConnId,
        data: impl Into<Bytes>,
    ) -> Result<(), ClusterError> {
        self.remote(id, crate::runtime::cluster::Op::Send, data.into())
            .await
            .map(drop)
    }

    /// As [`close`](Handle::close) for connection `id` of any node of the cluster.
    ///
    /// # Errors
    /// As [`cluster_send`](Handle::cluster_send) ([`ClusterError::Refused`] with the owner's
    /// [`ConnError`], e.g. not open).
    ///
    /// # Examples
    /// ```no_run
    /// # let mut server = rswoole::Server::bind("127.0.0.1:9501").unwrap();
    /// use rswoole::ClusterConnId;
    /// server.on_receive(|srv, _ev| async move {
    ///     let id: ClusterConnId = "n2/7".parse().map_err(|e| format!("{e}"))?;
    ///     srv.cluster_close(&id).await.map_err(|e| e.to_string())
    /// });
    /// # server.start().unwrap();
    /// ```
    pub async fn cluster_close(&self, id: &ClusterConnId) -> Result<(), ClusterError> {
        self.remote(id, crate::runtime::cluster::Op::Close, Bytes::new())
            .await
            .map(drop)
    }

    /// As [`exists`](Handle::exists) for connection `id` of any node of the cluster.
    ///
    /// # Errors
    /// As [`cluster_send`](Handle::cluster_send): a dead node is
    /// [`ClusterError::NoNode`], not `Ok(false)`.
    ///
    /// # Examples
    /// ```no_run
    /// # let mut server = rswoole::Server::bind("127.0.0.1:9501").unwrap();
    /// use rswoole::{ClusterConnId, ConnId};
    /// server.on_receive(|srv, ev| async move {
    ///     let there = srv.cluster_exists(&ClusterConnId::new("n2", ConnId(7))).await;
    ///     srv.send(ev.fd, format!("{there:?}\n"))
    /// });
    /// # server.start().unwrap();
    /// ```
    pub async fn cluster_exists(&self, id: &ClusterConnId) -> Result<bool, ClusterError> {
        match self
            .remote(id, crate::runtime::cluster::Op::Exists, Bytes::new())
            .await?
        {
            crate::runtime::cluster::Answer::Exists(b) => Ok(b),
            _ => Err(ClusterError::Refused("unexpected answer".into())),
        }
    }

    /// As [`connection_info`](Handle::connection_info) for connection `id` of any node of
    /// the cluster (`Ok(None)`: the node lives, the connection is not open there).
    ///
    /// # Errors
    /// As [`cluster_exists`](Handle::cluster_exists).
    ///
    /// # Examples
    /// ```no_run
    /// # let mut server = rswoole::Server::bind("127.0.0.1:9501").unwrap();
    /// use rswoole::{ClusterConnId, ConnId};
    /// server.on_receive(|srv, ev| async move {
    ///     if let Ok(Some(info)) = srv.cluster_connection_info(&ClusterConnId::new("n2", ConnId(7))).await {
    ///         let _ = srv.send(ev.fd, format!("from {}\n", info.remote_addr));
    ///     }
    /// });
    /// # server.start().unwrap();
    /// ```
    pub async fn cluster_connection_info(
        &self,
        id: &ClusterConnId,
    ) -> Result<Option<ConnectionInfo>, ClusterError> {
        match self
            .remote(id, crate::runtime::cluster::Op::Info, Bytes::new())
            .await?
        {
            crate::runtime::cluster::Answer::Info(i) => Ok(i),
            _ => Err(ClusterError::Refused("unexpected answer".into())),
        }
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
