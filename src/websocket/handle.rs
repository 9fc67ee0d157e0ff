//! The [`Handle`] methods that talk to WebSocket clients. Each goes through the worker's one
//! transport (`WorkerCtx`), whichever mode the server runs in.

use bytes::Bytes;

use super::OpCode;
use crate::base::{ClusterConnId, ClusterError, ConnError, ConnId, SendError};
use crate::server::Handle;

impl Handle {
    /// Sends one WebSocket message to `fd`: [`OpCode::Text`] (`data` must be UTF-8),
    /// [`OpCode::Binary`], or a [`OpCode::Ping`]/[`OpCode::Pong`] (at most 125 bytes). The
    /// socket owner encodes the frame (compressed if negotiated). Returns at once.
    ///
    /// `Ok` means the message was accepted for a connection that was open when `push` was
    /// called, and will be written to it unless the connection ends first (then it is lost
    /// with the connection, like any output still queued for a client that disconnects):
    ///
    /// - [`Mode::Process`](crate::Mode::Process): handed to the master, which owns the socket.
    /// - [`Mode::Base`](crate::Mode::Base), one of this worker's connections: written (or kept
    ///   in its output buffer).
    /// - Base mode, another worker's connection: queued for that worker (one datagram to its
    ///   mailbox), after checking in shared memory that the connection is open and that the
    ///   worker incarnation that accepted it is still serving. A Base-mode worker's
    ///   connections die with it, so a connection whose worker died or is being replaced is
    ///   [`SendError::Closed`], never `Ok`. If the owner dies after the check, before it read
    ///   the message, the message is lost with its clients, and this worker logs a warning
    ///   naming that worker and the connections.
    ///
    /// Pushes from one worker to one connection arrive in order.
    ///
    /// # Errors
    /// [`SendError::Closed`] if `fd` is not an established WebSocket connection (checked in
    /// shared memory, whichever worker owns it), or in Base mode if its worker died or is
    /// being replaced; [`SendError::BufferFull`] if its output buffer is full (Base mode:
    /// also if the owning worker has not read what was forwarded to it for a long while);
    /// [`SendError::ShuttingDown`] if this worker is stopping.
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
        self.ctx.ws_push(fd, data.into(), opcode.as_u8())
    }

    /// This node's name in the cluster ([`Settings::cluster`](crate::Settings::cluster));
    /// `None` without a cluster.
    ///
    /// # Examples
    /// ```no_run
    /// use rswoole::websocket::{OpCode, WebSocketServer};
    ///
    /// fn main() -> rswoole::Result<()> {
    ///     let mut server = WebSocketServer::bind("127.0.0.1:9502")?;
    ///     server.on_message(|srv, frame| async move {
    ///         let me = srv.cluster_node().unwrap_or("alone").to_string();
    ///         srv.push(frame.fd, me, OpCode::Text)
    ///     });
    ///     server.start()
    /// }
    /// ```
    pub fn cluster_node(&self) -> Option<&str> {
        self.ctx.cluster.as_ref().map(|c| c.node())
    }

    /// Records in the cluster's directory (Redis) that connection `fd` of this node belongs to
    /// user `uid`, for [`push_to_user`](Handle::push_to_user) from any node. A user may have
    /// several connections on several nodes. The entries of a node that dies stop counting as
    /// soon as its heartbeat key expires (and are removed by the next `push_to_user`).
    ///
    /// # Errors
    /// [`ClusterError::NotConfigured`] without a cluster; [`ClusterError::Unavailable`] if
    /// Redis cannot be reached (nothing was recorded).
    ///
    /// # Examples
    /// ```no_run
    /// use rswoole::websocket::{OpCode, WebSocketServer};
    ///
    /// fn main() -> rswoole::Result<()> {
    ///     let mut server = WebSocketServer::bind("127.0.0.1:9502")?;
    ///     server.on_message(|srv, frame| async move {
    ///         let uid = frame.text().unwrap_or("").to_string();
    ///         if let Err(e) = srv.cluster_bind(frame.fd, &uid).await {
    ///             let _ = srv.push(frame.fd, format!("error: {e}"), OpCode::Text);
    ///         }
    ///     });
    ///     server.start()
    /// }
    /// ```
    pub async fn cluster_bind(&self, fd: ConnId, uid: &str) -> Result<(), ClusterError> {
        match &self.ctx.cluster {
            Some(c) => c.bind(fd, uid, true).await,
            None => Err(ClusterError::NotConfigured),
        }
    }

    /// Removes what [`cluster_bind`](Handle::cluster_bind) recorded (e.g. in `on_close`).
    ///
    /// # Errors
    /// As [`cluster_bind`](Handle::cluster_bind).
    ///
    /// # Examples
    /// ```no_run
    /// use rswoole::websocket::WebSocketServer;
    ///
    /// fn main() -> rswoole::Result<()> {
    ///     let mut server = WebSocketServer::bind("127.0.0.1:9502")?;
    ///     server.on_close(|srv, fd| async move {
    ///         let _ = srv.cluster_unbind(fd, "alice").await;
    ///     });
    ///     server.start()
    /// }
    /// ```
    pub async fn cluster_unbind(&self, fd: ConnId, uid: &str) -> Result<(), ClusterError> {
        match &self.ctx.cluster {
            Some(c) => c.bind(fd, uid, false).await,
            None => Err(ClusterError::NotConfigured),
        }
    }

    /// Sends a WebSocket message to every connection bound to `uid`
    /// ([`cluster_bind`](Handle::cluster_bind)) on any live node: this node's directly, other
    /// nodes' through their Redis channel, applied there by their worker 0. Returns how many
    /// connections it was handed to (0 if the user has none). Entries of dead nodes and of
    /// this node's closed connections are dropped from the directory.
    ///
    /// # Errors
    /// [`ClusterError::NotConfigured`] without a cluster; [`ClusterError::Unavailable`] if
    /// Redis cannot be reached (the message may have reached some of the connections).
    ///
    /// # Examples
    /// ```no_run
    /// use rswoole::websocket::{OpCode, WebSocketServer};
    ///
    /// fn main() -> rswoole::Result<()> {
    ///     let mut server = WebSocketServer::bind("127.0.0.1:9502")?;
    ///     server.on_message(|srv, frame| async move {
    ///         let n = srv.push_to_user("alice", frame.data, OpCode::Text).await.unwrap_or(0);
    ///         srv.push(frame.fd, format!("reached {n}"), OpCode::Text)
    ///     });
    ///     server.start()
    /// }
    /// ```
    pub async fn push_to_user(
        &self,
        uid: &str,
        data: impl Into<Bytes>,
        opcode: OpCode,
    ) -> Result<usize, ClusterError> {
        match &self.ctx.cluster {
            Some(c) => {
                c.push_to_user(&self.ctx, uid, data.into(), opcode.as_u8())
                    .await
            }
            None => Err(ClusterError::NotConfigured),
        }
    }

    /// As [`push`](Handle::push) to connection `fd` of node `node` (any node of the cluster,
    /// this one included): a cluster-wide connection id is the pair (node name, `ConnId`).
    ///
    /// # Errors
    /// [`ClusterError::NotConfigured`] without a cluster; [`ClusterError::Unavailable`] if
    /// Redis cannot be reached; [`ClusterError::NoNode`] if no live node of that name took it
    /// (for this node: the connection is not open).
    ///
    /// # Examples
    /// ```no_run
    /// use rswoole::websocket::{OpCode, WebSocketServer};
    /// use rswoole::ConnId;
    ///
    /// fn main() -> rswoole::Result<()> {
    ///     let mut server = WebSocketServer::bind("127.0.0.1:9502")?;
    ///     server.on_message(|srv, frame| async move {
    ///         let _ = srv.push_to_node("n2", ConnId(1), frame.data, OpCode::Text).await;
    ///     });
    ///     server.start()
    /// }
    /// ```
    pub async fn push_to_node(
        &self,
        node: &str,
        fd: ConnId,
        data: impl Into<Bytes>,
        opcode: OpCode,
    ) -> Result<(), ClusterError> {
        let Some(c) = &self.ctx.cluster else {
            return Err(ClusterError::NotConfigured);
        };
        if c.push_to(&self.ctx, node, fd, data.into(), opcode.as_u8())
            .await?
        {
            Ok(())
        } else {
            Err(ClusterError::NoNode(node.to_string()))
        }
    }

    /// As [`push`](Handle::push) to connection `id` of any node of the cluster, with the
    /// owning node's answer: `Ok` means that node's worker 0 queued it for the connection
    /// (in both modes).
    ///
    /// # Errors
    /// [`ClusterError::NotConfigured`]; [`ClusterError::NoNode`] (no live node of that
    /// name); [`ClusterError::Refused`] (the owner's [`SendError`], e.g. closed);
    /// [`ClusterError::Timeout`] (no answer in 2 s); [`ClusterError::Unavailable`] (Redis).
    ///
    /// # Examples
    /// ```no_run
    /// use rswoole::websocket::{OpCode, WebSocketServer};
    /// use rswoole::ClusterConnId;
    ///
    /// fn main() -> rswoole::Result<()> {
    ///     let mut server = WebSocketServer::bind("127.0.0.1:9502")?;
    ///     server.on_message(|srv, frame| async move {
    ///         let to: ClusterConnId = "n2/7".parse().map_err(|e| format!("{e}"))?;
    ///         srv.cluster_push(&to, frame.data, OpCode::Text).await.map_err(|e| e.to_string())
    ///     });
    ///     server.start()
    /// }
    /// ```
    pub async fn cluster_push(
        &self,
        id: &ClusterConnId,
        data: impl Into<Bytes>,
        opcode: OpCode,
    ) -> Result<(), ClusterError> {
        match &self.ctx.cluster {
            Some(c) => c
                .remote(
                    &self.ctx,
                    id,
                    crate::runtime::cluster::Op::Push,
                    opcode.as_u8(),
                    data.into(),
                )
                .await
                .map(drop),
            None => Err(ClusterError::NotConfigured),
        }
    }

    /// Sends one WebSocket message to each of `ids`, connections of any nodes of the cluster
    /// (the cluster's `broadcast_to`): this node's directly, each other node's through its
    /// Redis channel (one `PUBLISH` per connection, no answer). Returns how many were handed
    /// on: ids of dead nodes, and of this node's closed connections, do not count.
    ///
    /// # Errors
    /// [`ClusterError::NotConfigured`]; [`ClusterError::Unavailable`] if Redis cannot be
    /// reached (some may have been sent).
    ///
    /// # Examples
    /// ```no_run
    /// use rswoole::websocket::{OpCode, WebSocketServer};
    /// use rswoole::{ClusterConnId, ConnId};
    ///
    /// fn main() -> rswoole::Result<()> {
    ///     let mut server = WebSocketServer::bind("127.0.0.1:9502")?;
    ///     server.on_message(|srv, frame| async move {
    ///         let team = [ClusterConnId::new("n1", ConnId(3)), ClusterConnId::new("n2", ConnId(9))];
    ///         let n = srv.cluster_broadcast_to(&team, frame.data, OpCode::Text).await.unwrap_or(0);
    ///         srv.push(frame.fd, format!("reached {n}"), OpCode::Text)
    ///     });
    ///     server.start()
    /// }
    /// ```
    pub async fn cluster_broadcast_to(
        &self,
        ids: &[ClusterConnId],
        data: impl Into<Bytes>,
        opcode: OpCode,
    ) -> Result<usize, ClusterError> {
        let Some(c) = &self.ctx.cluster else {
            return Err(ClusterError::NotConfigured);
        };
        let data = data.into();
        let mut n = 0;
        for id in ids {
            if c.push_to(&self.ctx, &id.node, id.fd, data.clone(), opcode.as_u8())
                .await?
            {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Connection `fd` of this node joins room `room` of the cluster (socket.io's `join`,
    /// Workerman's `joinGroup`); it leaves every room when it closes.
    ///
    /// # Errors
    /// [`ClusterError::NotConfigured`] without a cluster; [`ClusterError::Unavailable`] if
    /// Redis cannot be reached.
    ///
    /// # Examples
    /// ```no_run
    /// use rswoole::websocket::{OpCode, WebSocketServer};
    ///
    /// fn main() -> rswoole::Result<()> {
    ///     let mut server = WebSocketServer::bind("127.0.0.1:9502")?;
    ///     server.on_message(|srv, frame| async move {
    ///         srv.join_room(frame.fd, "lobby").await.map_err(|e| e.to_string())?;
    ///         let n = srv.broadcast_to_room("lobby", frame.data, OpCode::Text).await.unwrap_or(0);
    ///         srv.push(frame.fd, format!("{n} in the lobby"), OpCode::Text).map_err(|e| e.to_string())
    ///     });
    ///     server.start()
    /// }
    /// ```
    pub async fn join_room(&self, fd: ConnId, room: &str) -> Result<(), ClusterError> {
        match &self.ctx.cluster {
            Some(c) => c.join_room(fd, room, true).await,
            None => Err(ClusterError::NotConfigured),
        }
    }

    /// Connection `fd` of this node leaves room `room`.
    ///
    /// # Errors
    /// As [`join_room`](Handle::join_room).
    ///
    /// # Examples
    /// ```no_run
    /// # let mut server = rswoole::websocket::WebSocketServer::bind("127.0.0.1:9502").unwrap();
    /// server.on_message(|srv, frame| async move {
    ///     let _ = srv.leave_room(frame.fd, "lobby").await;
    /// });
    /// # server.start().unwrap();
    /// ```
    pub async fn leave_room(&self, fd: ConnId, room: &str) -> Result<(), ClusterError> {
        match &self.ctx.cluster {
            Some(c) => c.join_room(fd, room, false).await,
            None => Err(ClusterError::NotConfigured),
        }
    }

    /// Sends one WebSocket message to every member of room `room`, on every live node;
    /// returns how many members it was handed to. Members of dead nodes are dropped from the
    /// room on the way.
    ///
    /// # Errors
    /// As [`join_room`](Handle::join_room) (the message may have reached some members).
    ///
    /// # Examples
    /// ```no_run
    /// # let mut server = rswoole::websocket::WebSocketServer::bind("127.0.0.1:9502").unwrap();
    /// use rswoole::websocket::OpCode;
    /// server.on_message(|srv, frame| async move {
    ///     let _ = srv.broadcast_to_room("lobby", frame.data, OpCode::Text).await;
    /// });
    /// # server.start().unwrap();
    /// ```
    pub async fn broadcast_to_room(
        &self,
        room: &str,
        data: impl Into<Bytes>,
        opcode: OpCode,
    ) -> Result<usize, ClusterError> {
        match &self.ctx.cluster {
            Some(c) => {
                c.broadcast_to_room(&self.ctx, room, data.into(), opcode.as_u8())
                    .await
            }
            None => Err(ClusterError::NotConfigured),
        }
    }

    /// Sends one message to every established WebSocket connection of the server (including
    /// the sender's), with one IPC message: the master encodes the frame once and writes it
    /// to each client. A client whose output buffer is full is closed. The broadcasts of one
    /// worker reach each client in the order they were made.
    ///
    /// `Ok` means, in [`Mode::Process`](crate::Mode::Process): handed to the master, which
    /// writes it to every established connection. In [`Mode::Base`](crate::Mode::Base): this
    /// worker wrote it to its own connections and queued one datagram for each other worker,
    /// every one of which was serving when `broadcast` was called (checked in shared memory);
    /// each writes the message to its own connections (no callback runs there). If one of
    /// them dies before it read the datagram, its clients (which die with it) miss the
    /// message, and this worker logs a warning naming that worker.
    ///
    /// With [`Settings::cluster`](crate::Settings::cluster): the message goes to the clients
    /// of every node, this one's included, once each and in this worker's order: `Ok` means it
    /// was queued for this worker's one connection to Redis, which publishes it to the
    /// cluster's channel; each node's worker 0 fans it out to its node's clients as above.
    ///
    /// # Errors
    /// [`SendError::ShuttingDown`] if this worker is stopping;
    /// [`SendError::WorkersUnreachable`] in Base mode, naming the workers that were not given
    /// the message: those that were down (dead, or their replacement not done with
    /// `on_worker_start` yet — they have no clients then) and those whose queue here is full
    /// (they do not read). Every other worker's clients, and this worker's, got it.
    /// In a cluster: [`SendError::Cluster`] if this worker's connection to Redis is down
    /// (nothing was sent) or too many messages wait for it.
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
    /// one datagram per worker, carrying its connections' ids and the data once. Connections
    /// whose worker died or is being replaced are skipped, as closed ones are (they closed,
    /// or are closing, with it).
    ///
    /// # Errors
    /// As [`broadcast`](Handle::broadcast); `WorkersUnreachable` names only owners of
    /// connections in `fds` whose queue here is full.
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
        if let (None, Some(c)) = (fds, &self.ctx.cluster) {
            // Every node's clients, through Redis (this node's too).
            return c.broadcast(data, opcode.as_u8());
        }
        self.ctx.ws_broadcast(fds, data, opcode.as_u8())
    }

    /// Closes WebSocket connection `fd` with a Close frame (`code`, e.g. 1000, and a reason of
    /// at most 123 bytes); the TCP connection closes when the client answers (or after
    /// [`WebSocketSettings::close_timeout`](crate::WebSocketSettings::close_timeout)); `on_close` follows. A connection that is not a
    /// WebSocket just closes.
    ///
    /// `Ok` means the closing handshake was started (this worker's connection in Base mode),
    /// or handed to the master (Process mode), or, in Base mode, queued for the worker that
    /// owns the connection, which was serving when `disconnect` was called (checked in shared
    /// memory; if it dies before reading the request, the connection closes with it).
    ///
    /// # Errors
    /// [`ConnError::NotOpen`] if `fd` is not open — in Base mode also if its worker died or is
    /// being replaced (its connections close with it); [`ConnError::Unreachable`] in Base mode
    /// if the owning worker's queue here is full (it does not read);
    /// [`ConnError::ShuttingDown`] if this worker stops.
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
    ///             let _ = srv.disconnect(frame.fd, 1000, "see you");
    ///         }
    ///     });
    ///     server.start()
    /// }
    /// ```
    pub fn disconnect(&self, fd: ConnId, code: u16, reason: &str) -> Result<(), ConnError> {
        self.ctx.ws_disconnect(fd, code, reason)
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
