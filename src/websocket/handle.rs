//! The [`Handle`] methods that talk to WebSocket clients. Each goes through the worker's one
//! transport (`WorkerCtx`), whichever mode the server runs in.

use bytes::Bytes;

use super::OpCode;
use crate::base::{ConnError, ConnId, SendError};
use crate::server::Handle;

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
    /// to it for a long while); [`SendError::Unreachable`] in Base mode if the owning worker
    /// cannot be reached (restarting); [`SendError::ShuttingDown`] if this worker is stopping.
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
    /// [`SendError::ShuttingDown`] if this worker is stopping;
    /// [`SendError::WorkersUnreachable`] in Base mode if some workers could not be reached (a
    /// full queue, or restarting): their clients did not get the message, the others did.
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
        self.ctx.ws_broadcast(fds, data, opcode.as_u8())
    }

    /// Closes WebSocket connection `fd` with a Close frame (`code`, e.g. 1000, and a reason of
    /// at most 123 bytes); the TCP connection closes when the client answers (or after
    /// [`WebSocketSettings::close_timeout`](crate::WebSocketSettings::close_timeout)); `on_close` follows. A connection that is not a
    /// WebSocket just closes.
    ///
    /// Base mode: another worker's connection is closed by that worker (one datagram to it);
    /// `Ok` then means the request was forwarded.
    ///
    /// # Errors
    /// [`ConnError::NotOpen`] if `fd` is not open; [`ConnError::Unreachable`] in Base mode if
    /// the owning worker cannot be reached; [`ConnError::ShuttingDown`] if this worker stops.
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
