//! The socket owner's side of WebSocket (the master's reactor in Process mode, the worker in
//! Base mode): the upgrade, frame parsing with `rswoole_codec::ws::Connection` (unmasking,
//! inflate, UTF-8 checks, control frames, close handshake), keepalive pings, and encoding what
//! workers push or broadcast.
//!
//! The codec state lives in [`Conn::ws`] (shared by the connection task, which feeds it, and
//! whoever writes: the pipe reader in Process mode; in Base mode the worker's callbacks and
//! its mailbox loop, which applies what other workers forward: [`from_peer`]). Encoding and
//! writing a frame happen under that lock, so compressed frames (whose deflate context
//! carries over) reach the socket in the order they were compressed.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rswoole_codec::http1::RequestHead;
use rswoole_codec::ws::handshake::write_reject;
use rswoole_codec::ws::{
    encode_frame, Accept, CloseCode, Connection, DeflateParams, FrameHeader, MessageKind, OpCode,
    UpgradeRequest, WsConfig, WsEvent,
};

use super::conn::{Conn, FrameBody, WriteError};
use super::inbound::Verdict;
use super::sink::EventSink;
use super::table::ConnTable;
use crate::base::{ConnId, WebSocketSettings};
use crate::ipc::{Header, Kind};

/// What the socket owner needs to know about a WebSocket listener.
#[derive(Debug)]
pub(crate) struct WsConf {
    pub(crate) codec: WsConfig,
    /// `on_handshake` is set: the worker decides.
    pub(crate) handshake: bool,
    pub(crate) ping_interval: Option<Duration>,
    pub(crate) pong_timeout: Duration,
    pub(crate) close_timeout: Duration,
    pub(crate) deliver_control: bool,
}

/// The shared protocol state of one upgraded (or upgrading) connection.
#[derive(Debug)]
pub(crate) struct WsState {
    codec: Connection,
    /// The listener's configuration (to fold this state into its idle form and back).
    conf: Arc<WsConf>,
    /// Messages flow (false while `on_handshake` decides).
    open: bool,
    /// While pending: the answer to write once accepted, and the request head for `on_open`.
    pending: Option<Box<(Accept, Bytes)>>,
    /// We sent Close (`disconnect`) at this time and wait for the peer's.
    closing_since: Option<Instant>,
    /// The codec closed (peer's Close, or a protocol error) while messages were still with a
    /// worker: the Close frame waits here until their replies are written
    /// ([`flush_final`]), so that an echo is not cut off by the close that followed it.
    final_out: Option<BytesMut>,
}

/// A connection's WebSocket state ([`Conn::ws`]): none (not a WebSocket), the whole state
/// (`Live`, boxed), or, for a connection parked between messages, the little it takes to
/// rebuild it (`Idle`, inline: no allocation). An open connection without compression
/// context (no permessage-deflate, or `no_context_takeover` both ways), between messages,
/// with no closing handshake or held-back Close, is all configuration: the codec
/// ([`Connection`]) is rebuilt from the listener's `WsConf` and the negotiated deflate
/// parameters, as a connection moved to a new master is ([`restore`]). Writers to an idle
/// connection (pushes, broadcasts) use a codec built for the write and folded back
/// ([`WsSlot::with`]); the connection's task, once it reads again, keeps it
/// ([`WsSlot::live`]).
#[derive(Debug, Default)]
pub(crate) enum WsSlot {
    /// Not a WebSocket (or a rejected upgrade).
    #[default]
    None,
    Live(Box<WsState>),
    /// Parked between messages ([`park`]).
    Idle {
        conf: Arc<WsConf>,
        deflate: Option<DeflateParams>,
    },
}

impl WsState {
    fn new(conf: &Arc<WsConf>, deflate: Option<DeflateParams>, open: bool) -> WsState {
        WsState {
            codec: Connection::server(conf.codec.clone(), deflate),
            conf: conf.clone(),
            open,
            pending: None,
            closing_since: None,
            final_out: None,
        }
    }

    /// The negotiated deflate parameters if this state is all configuration (see
    /// [`WsSlot`]), so that a codec rebuilt from them continues it; `None` otherwise.
    fn idle_form(&self) -> Option<Option<DeflateParams>> {
        (self.open
            && self.pending.is_none()
            && self.closing_since.is_none()
            && self.final_out.is_none()
            && self.codec.is_between_messages()
            && !self.codec.carries_context())
        .then(|| self.codec.deflate_params())
    }

    /// Open for messages this side sends: open, and the codec too (or the peer's Close is
    /// held back, [`WsState::final_out`]).
    fn writable(&self) -> bool {
        self.open && (self.codec.state().is_open() || self.final_out.is_some())
    }
}

impl WsSlot {
    /// The whole state, rebuilt from the idle form if parked (and kept: the connection's
    /// task reads again).
    fn live(&mut self) -> Option<&mut WsState> {
        if let WsSlot::Idle { conf, deflate } = self {
            *self = WsSlot::Live(Box::new(WsState::new(conf, *deflate, true)));
        }
        match self {
            WsSlot::Live(st) => Some(st),
            _ => None,
        }
    }

    /// Runs `f` on the whole state; on an idle connection, on one rebuilt for `f` and folded
    /// back after it if it is still all configuration (a write to a parked connection leaves
    /// it parked and small). `None`: not a WebSocket.
    fn with<R>(&mut self, f: impl FnOnce(&mut WsState) -> R) -> Option<R> {
        match self {
            WsSlot::None => None,
            WsSlot::Live(st) => Some(f(st)),
            WsSlot::Idle { conf, deflate } => {
                let mut st = WsState::new(conf, *deflate, true);
                let r = f(&mut st);
                if st.idle_form().is_none() {
                    *self = WsSlot::Live(Box::new(st));
                }
                Some(r)
            }
        }
    }

    fn as_ref(&self) -> Option<&WsState> {
        match self {
            WsSlot::Live(st) => Some(st),
            _ => None,
        }
    }

    /// Whether messages flow (an idle connection is open).
    fn is_open(&self) -> bool {
        match self {
            WsSlot::None => false,
            WsSlot::Live(st) => st.open,
            WsSlot::Idle { .. } => true,
        }
    }

    /// `Some(compressed)` if a message can be sent now ([`WsState::writable`]).
    fn writable(&self) -> Option<bool> {
        match self {
            WsSlot::None => None,
            WsSlot::Live(st) => st.writable().then(|| st.codec.is_compressed()),
            WsSlot::Idle { deflate, .. } => Some(deflate.is_some()),
        }
    }

    /// Whether this is the idle form (tests, and the size report).
    #[cfg(test)]
    pub(crate) fn is_idle(&self) -> bool {
        matches!(self, WsSlot::Idle { .. })
    }
}

/// A connection parks ([`Conn`]'s `try_park`): its WebSocket state folds into its idle form
/// if it is all configuration (see [`WsSlot`]); otherwise (compression context, a closing
/// handshake, a Close held back) it stays whole.
pub(crate) fn park<X>(conn: &Conn<X>) {
    conn.ws.lock().park();
}

impl WsSlot {
    /// Folds the whole state into the idle form if it is all configuration.
    fn park(&mut self) {
        let WsSlot::Live(st) = self else { return };
        if let Some(deflate) = st.idle_form() {
            let conf = st.conf.clone();
            *self = WsSlot::Idle { conf, deflate };
        }
    }
}

/// The result of an upgrade request.
pub(crate) enum Upgraded {
    /// 101 sent; frames follow.
    Open(Box<WsIn>),
    /// Waiting for `on_handshake`.
    Pending(Arc<WsConf>),
}

/// The connection task's own WebSocket state (keepalive).
#[derive(Debug)]
pub(crate) struct WsIn {
    conf: Arc<WsConf>,
    last_rx: Instant,
    ping_sent: Option<Instant>,
}

thread_local! {
    static SCRATCH: RefCell<BytesMut> = RefCell::new(BytesMut::with_capacity(4096));
}

/// Validates an upgrade request and answers it (or hands it to `on_handshake`). `None`: it was
/// rejected (the response is written); close the connection.
pub(crate) fn upgrade<S: EventSink + ?Sized>(
    conn: &Arc<Conn<S::State>>,
    sink: &S,
    head: &RequestHead,
    conf: &Arc<WsConf>,
) -> Option<Upgraded> {
    let req = match UpgradeRequest::parse(head.method(), 1, head.headers()) {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(fd = %conn.id, error = %e, "bad WebSocket upgrade request");
            let mut out = BytesMut::new();
            write_reject(&mut out, e);
            let _ = conn.write(&out);
            return None;
        }
    };
    let accept = req.accept(&[], &conf.codec.deflate);
    let mut st = Box::new(WsState::new(conf, accept.deflate, !conf.handshake));
    if conf.handshake {
        st.pending = Some(Box::new((accept, head.as_bytes().clone())));
        *conn.ws.lock() = WsSlot::Live(st);
        sink.event(conn, Kind::WsHandshake, head.as_bytes().clone());
        return Some(Upgraded::Pending(conf.clone()));
    }
    let mut out = BytesMut::new();
    accept.write_response(&mut out);
    // Open before the client can know it: the 101 is written under the WebSocket lock with
    // the state in place, so a broadcast (or a push) made once the client has its answer
    // reaches it, and none is written before the 101.
    conn.shared.mark_websocket(conn.id);
    {
        let mut g = conn.ws.lock();
        *g = WsSlot::Live(st);
        let _ = conn.write(&out);
    }
    sink.event(conn, Kind::WsOpen, head.as_bytes().clone());
    Some(Upgraded::Open(Box::new(WsIn::new(conf.clone()))))
}

/// `on_handshake` accepted (with `protocol`, if not empty): answer 101 and open. Returns the
/// request head for `on_open`, or `None` if there was nothing pending.
pub(crate) fn accept_pending<X>(conn: &Conn<X>, protocol: &str) -> Option<Bytes> {
    let mut g = conn.ws.lock();
    let st = g.live()?;
    let (mut accept, head) = *st.pending.take()?;
    if !protocol.is_empty() {
        accept.protocol = Some(protocol.to_owned());
    }
    let mut out = BytesMut::new();
    accept.write_response(&mut out);
    conn.shared.mark_websocket(conn.id);
    let _ = conn.write(&out);
    st.open = true;
    drop(g);
    conn.wake();
    Some(head)
}

/// `on_handshake` rejected: write `response` and close.
pub(crate) fn reject_pending<X>(conn: &Conn<X>, response: &[u8]) {
    *conn.ws.lock() = WsSlot::None;
    let _ = conn.write(response);
    conn.close();
    conn.wake();
}

/// Whether this WebSocket can move to a new master now ([`super::handover`]): open (no
/// pending `on_handshake`, no closing handshake started either way), between messages (no
/// frame taken in part, no fragmented message being reassembled: the codec's
/// `is_between_messages`; a partial frame still unparsed in the caller's buffer is fine, the
/// new codec parses it), and no compression context to carry (permessage-deflate only with
/// `no_context_takeover` both ways: the LZ77 windows of a context-takeover connection are not
/// serialized, so it drains in the old master). Messages this side sends are always single
/// frames written whole into the output buffer, so the send side is between messages.
pub(crate) fn movable<X>(conn: &Conn<X>) -> super::handover::Movable {
    use super::handover::{Deflate, Movable, Proto};
    let g = conn.ws.lock();
    let st = match &*g {
        WsSlot::None => return Movable::Never,
        WsSlot::Idle { deflate, .. } => {
            return Movable::Now(Proto::Ws {
                deflate: deflate.map(|p| Deflate::from_params(&p)),
            })
        }
        WsSlot::Live(st) => st,
    };
    if !st.open
        || st.pending.is_some()
        || st.closing_since.is_some()
        || st.final_out.is_some()
        || !st.codec.state().is_open()
        || st.codec.carries_context()
    {
        return Movable::Never;
    }
    if !st.codec.is_between_messages() {
        // Inside a message: read on until it is whole (within the quiesce limit).
        return Movable::Later;
    }
    Movable::Now(Proto::Ws {
        deflate: st.codec.deflate_params().map(|p| Deflate::from_params(&p)),
    })
}

/// A WebSocket that moved in from the old master ([`super::handover`]): a fresh codec with the
/// negotiated compression (between messages and without compression context, that is its
/// whole state), open, counted as an established WebSocket in shm. No `on_open`: the
/// connection is not new. Keepalive starts over (the first ping after `ping_interval` of
/// silence from now).
pub(crate) fn restore<X>(
    conn: &Conn<X>,
    conf: &Arc<WsConf>,
    deflate: Option<super::handover::Deflate>,
) {
    let st = WsState::new(conf, deflate.map(|d| d.params()), true);
    *conn.ws.lock() = WsSlot::Live(Box::new(st));
    conn.shared.mark_websocket(conn.id);
}

/// Whether the connection is an open WebSocket (for `resume`).
pub(crate) fn is_open<X>(conn: &Conn<X>) -> bool {
    conn.ws.lock().is_open()
}

impl WsIn {
    pub(crate) fn new(conf: Arc<WsConf>) -> WsIn {
        WsIn {
            conf,
            last_rx: Instant::now(),
            ping_sent: None,
        }
    }

    /// Parses what arrived; dispatches messages; writes pongs and close replies.
    pub(crate) fn feed<S: EventSink + ?Sized>(
        &mut self,
        conn: &Arc<Conn<S::State>>,
        sink: &S,
        inbuf: &mut BytesMut,
    ) -> Verdict {
        if self.conf.ping_interval.is_some() {
            self.last_rx = Instant::now();
            self.ping_sent = None;
        }
        let mut g = conn.ws.lock();
        loop {
            let Some(st) = g.live() else {
                return Verdict::Close;
            };
            let (k, data) = match st.codec.feed(inbuf) {
                Ok(Some(WsEvent::Message { kind, data })) => {
                    count(|m| &m.ws_in, 1);
                    match kind {
                        MessageKind::Text => (Kind::WsText, data),
                        MessageKind::Binary => (Kind::WsBinary, data),
                    }
                }
                Ok(Some(WsEvent::Ping(d))) if self.conf.deliver_control => (Kind::WsPing, d),
                Ok(Some(WsEvent::Pong(d))) if self.conf.deliver_control => (Kind::WsPong, d),
                Ok(Some(_)) => continue,
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(fd = %conn.id, error = %e, code = %e.close_code(), "WebSocket protocol error; closing");
                    break;
                }
            };
            // Handed over without the lock: in Base mode the worker runs `on_message` right
            // here (`Dispatcher::request_inline`), and its `push` takes the lock. What follows
            // in `inbuf` is parsed after it, so a Close after this message is decided (held
            // back or not, below) once the sink knows of the message.
            drop(g);
            sink.event(conn, k, data);
            g = conn.ws.lock();
        }
        let Some(st) = g.live() else {
            return Verdict::Close;
        };
        let closed = st.codec.state().is_closed();
        if closed && st.final_out.is_none() && sink.busy(conn) {
            // Replies to messages already dispatched go out before our Close.
            st.final_out = Some(st.codec.take_output());
            inbuf.clear();
            return Verdict::Ok;
        }
        if st.codec.has_output() {
            let out = st.codec.take_output();
            if write(conn, &out).is_err() {
                return Verdict::Close;
            }
        }
        if closed {
            inbuf.clear();
            if st.final_out.is_some() {
                return Verdict::Ok;
            }
            Verdict::Close
        } else {
            Verdict::Ok
        }
    }

    /// When to ping, to give up on a missing pong, or on a missing Close reply.
    pub(crate) fn deadline<X>(&self, conn: &Conn<X>) -> Option<Instant> {
        let close = conn
            .ws
            .lock()
            .as_ref()
            .and_then(|s| s.closing_since)
            .map(|t| t + self.conf.close_timeout);
        let ka = self.conf.ping_interval.map(|i| match self.ping_sent {
            None => self.last_rx + i,
            Some(t) => t + self.conf.pong_timeout,
        });
        match (close, ka) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// A deadline passed: ping, or say the connection must close.
    pub(crate) fn timed_out<X>(&mut self, conn: &Arc<Conn<X>>) -> bool {
        let now = Instant::now();
        let mut g = conn.ws.lock();
        let Some(st) = g.live() else { return true };
        if st
            .closing_since
            .is_some_and(|t| now >= t + self.conf.close_timeout)
        {
            tracing::debug!(fd = %conn.id, "no Close reply from the WebSocket peer; closing");
            return true;
        }
        if let Some(interval) = self.conf.ping_interval {
            match self.ping_sent {
                None if now >= self.last_rx + interval => {
                    if st.codec.send_ping(b"").is_ok() {
                        let out = st.codec.take_output();
                        if write(conn, &out).is_err() {
                            return true;
                        }
                    }
                    self.ping_sent = Some(now);
                }
                Some(t) if now >= t + self.conf.pong_timeout => {
                    tracing::debug!(fd = %conn.id, "WebSocket peer did not answer a ping; closing");
                    return true;
                }
                _ => {}
            }
        }
        false
    }
}

fn write<X>(conn: &Conn<X>, data: &[u8]) -> Result<(), WriteError> {
    full_closes(conn, data.len(), conn.write(data))
}

/// Queues for the process's flusher, which writes whatever accumulated for the connection in
/// one syscall: under load, broadcasts coalesce as they would in a per-client writer task.
fn write_queued<X: Send + Sync + 'static>(
    conn: &Arc<Conn<X>>,
    data: &[u8],
) -> Result<(), WriteError> {
    full_closes(conn, data.len(), conn.write_deferred(data))
}

fn full_closes<X>(conn: &Conn<X>, len: usize, r: Result<(), WriteError>) -> Result<(), WriteError> {
    match r {
        Err(WriteError::Full) => {
            // Say why, after what is queued: 1008, the client broke the rule "read what you
            // are sent".
            let reason = b"output buffer full: reading too slowly";
            let mut payload = Vec::with_capacity(2 + reason.len());
            payload.extend_from_slice(&CloseCode::POLICY_VIOLATION.as_u16().to_be_bytes());
            payload.extend_from_slice(reason);
            let mut frame = BytesMut::with_capacity(4 + payload.len());
            encode_frame(&mut frame, true, false, OpCode::Close, &payload, None);
            conn.close_overflowed(len, &frame);
            Err(WriteError::Full)
        }
        r => r,
    }
}

/// Sends one message (or a Ping/Pong) to `conn`, encoded (and compressed) here.
pub(crate) fn push<X>(conn: &Conn<X>, opcode: u8, data: &[u8]) -> Result<(), WriteError> {
    push_body(conn, opcode, &mut FrameBody::Borrowed(data))
}

/// Like [`push`], for a message already in [`Bytes`]: a large one that nobody else holds is
/// written without a copy (what the socket does not take at once becomes the connection's
/// output buffer). On an error the message comes back with it.
pub(crate) fn push_bytes<X>(
    conn: &Conn<X>,
    opcode: u8,
    data: Bytes,
) -> Result<(), (WriteError, Bytes)> {
    let mut body = FrameBody::Owned(data);
    push_body(conn, opcode, &mut body).map_err(|e| match body {
        FrameBody::Owned(b) => (e, b),
        FrameBody::Borrowed(b) => (e, Bytes::copy_from_slice(b)),
    })
}

fn push_body<X>(conn: &Conn<X>, opcode: u8, body: &mut FrameBody<'_>) -> Result<(), WriteError> {
    let mut g = conn.ws.lock();
    if !g.is_open() {
        return Err(WriteError::Closed);
    }
    g.with(|st| {
        let r = match OpCode::from_u8(opcode) {
            Some(OpCode::Ping) => st.codec.send_ping(body.as_slice()),
            Some(OpCode::Pong) => st.codec.send_pong(body.as_slice()),
            Some(OpCode::Binary) => {
                return encode_write(conn, st, MessageKind::Binary, body);
            }
            _ => {
                return encode_write(conn, st, MessageKind::Text, body);
            }
        };
        if r.is_err() {
            return Err(WriteError::Closed);
        }
        let out = st.codec.take_output();
        write(conn, &out)
    })
    .unwrap_or(Err(WriteError::Closed))
}

/// The held-back Close (see [`WsState::final_out`]): write it and close, unless `busy()`
/// says events of the connection are still being handled. The caller (the last event it knew
/// of finished) asks with a snapshot taken before this lock; `busy` is asked again under the
/// WebSocket lock, the lock under which [`WsIn::feed`] decided to hold the Close, because a
/// message dispatched after the snapshot, and the Close held for it, must not be cut off:
/// its reply goes first, and its own finish flushes the Close.
pub(crate) fn flush_final<X>(conn: &Conn<X>, busy: impl FnOnce() -> bool) {
    let mut g = conn.ws.lock();
    let WsSlot::Live(st) = &mut *g else {
        return;
    };
    if st.final_out.is_none() || busy() {
        return;
    }
    let Some(out) = st.final_out.take() else {
        return;
    };
    let _ = conn.write(&out);
    drop(g);
    conn.close();
}

/// The application's `on_close` ran ([`Conn::close_done`] is next): every event of the
/// connection has been handled, so a Close still held back ([`WsState::final_out`]) goes out
/// now, after their replies. This is the case of a client that half-closed (FIN) right after
/// the frame that ended the session: its `Close` event, queued behind the messages, is the
/// last to finish, and the socket is still writable until `close_done`.
pub(crate) fn flush_final_at_close<X>(conn: &Conn<X>) {
    let mut g = conn.ws.lock();
    let WsSlot::Live(st) = &mut *g else {
        return;
    };
    if let Some(out) = st.final_out.take() {
        let _ = conn.write(&out);
    }
}

/// Messages from this size on are written as a frame header and the payload as it is
/// ([`Conn::write_frame`]), not copied into a frame first; smaller ones are joined in the
/// thread's scratch buffer (one copy of a few bytes, and one plain `write`).
const WRITE_AS_IS_FROM: usize = 64 * 1024;

fn encode_write<X>(
    conn: &Conn<X>,
    st: &mut WsState,
    kind: MessageKind,
    body: &mut FrameBody<'_>,
) -> Result<(), WriteError> {
    let data = body.as_slice();
    if data.len() < WRITE_AS_IS_FROM {
        return encode_then(st, kind, data, |frame| write(conn, frame));
    }
    let mut head = BytesMut::with_capacity(16);
    let as_is = if st.final_out.is_some() && !st.codec.is_compressed() {
        // The peer's Close arrived after the message this answers: still send it.
        FrameHeader::whole(kind.opcode(), data.len() as u64).encode(&mut head);
        true
    } else {
        st.codec
            .encode_message_head(kind, data, &mut head)
            .map_err(|_| WriteError::Closed)?
    };
    let len = head.len() + data.len();
    let r = if as_is {
        full_closes(conn, len, conn.write_frame(&head, body))
    } else {
        // Compressed: `head` holds the whole (deflated) frame.
        write(conn, &head)
    };
    if r.is_ok() {
        count(|m| &m.ws_out, 1);
    }
    r
}

/// Encodes a message for `st` (compressing if negotiated) and hands the bytes to `out`.
fn encode_then(
    st: &mut WsState,
    kind: MessageKind,
    data: &[u8],
    out: impl FnOnce(&[u8]) -> Result<(), WriteError>,
) -> Result<(), WriteError> {
    SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        s.clear();
        if st.final_out.is_some() && !st.codec.is_compressed() {
            // The peer's Close arrived after the message this answers: still send it.
            encode_frame(&mut s, true, false, kind.opcode(), data, None);
        } else if st.codec.encode_message(kind, data, &mut s).is_err() {
            return Err(WriteError::Closed);
        }
        let r = out(&s);
        if r.is_ok() {
            count(|m| &m.ws_out, 1);
        }
        if s.capacity() > 1 << 20 {
            *s = BytesMut::with_capacity(4096);
        }
        r
    })
}

/// Sends one message to each of `conns` that is an open WebSocket: the frame is encoded once
/// for every connection without permessage-deflate; compressed ones encode their own.
pub(crate) fn broadcast<X: Send + Sync + 'static, I: IntoIterator<Item = Arc<Conn<X>>>>(
    conns: I,
    opcode: u8,
    data: &[u8],
) {
    let kind = match OpCode::from_u8(opcode) {
        Some(OpCode::Binary) => MessageKind::Binary,
        _ => MessageKind::Text,
    };
    let mut frame = BytesMut::with_capacity(data.len() + 10);
    encode_frame(&mut frame, true, false, kind.opcode(), data, None);
    count(|m| &m.ws_broadcasts, 1);
    for c in conns {
        let mut g = c.ws.lock();
        let Some(compressed) = g.writable() else {
            continue;
        };
        if compressed {
            let _ = g.with(|st| encode_then(st, kind, data, |f| write_queued(&c, f)));
        } else if write_queued(&c, &frame).is_ok() {
            count(|m| &m.ws_out, 1);
        }
    }
}

/// Consecutive broadcasts to every connection (from one pipe datagram), written to each
/// client with one syscall: the uncompressed frames are concatenated once; compressed
/// connections encode each message in order.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    frames: BytesMut,
    msgs: Vec<(MessageKind, Bytes)>,
}

impl Batch {
    /// Adds a `WsBroadcast` record (a targeted one flushes the batch and goes alone).
    pub(crate) fn add<X: Send + Sync + 'static>(
        &mut self,
        conns: &ConnTable<X>,
        h: &Header,
        payload: &[u8],
    ) {
        match decode_broadcast(payload) {
            Some((None, data)) => {
                let kind = match OpCode::from_u8(h.listener as u8) {
                    Some(OpCode::Binary) => MessageKind::Binary,
                    _ => MessageKind::Text,
                };
                encode_frame(&mut self.frames, true, false, kind.opcode(), data, None);
                self.msgs.push((kind, Bytes::copy_from_slice(data)));
            }
            Some((Some(_), _)) => {
                self.flush(conns);
                broadcast_payload(conns, h.listener as u8, payload);
            }
            None => {}
        }
    }

    /// Writes what was batched.
    pub(crate) fn flush<X: Send + Sync + 'static>(&mut self, conns: &ConnTable<X>) {
        if self.msgs.is_empty() {
            return;
        }
        count(|m| &m.ws_broadcasts, self.msgs.len() as u64);
        for c in conns.all() {
            let mut g = c.ws.lock();
            let Some(compressed) = g.writable() else {
                continue;
            };
            if compressed {
                g.with(|st| {
                    for (kind, data) in &self.msgs {
                        if encode_then(st, *kind, data, |f| write_queued(&c, f)).is_err() {
                            break;
                        }
                    }
                });
            } else if write_queued(&c, &self.frames).is_ok() {
                count(|m| &m.ws_out, self.msgs.len() as u64);
            }
        }
        self.msgs.clear();
        self.frames.clear();
        if self.frames.capacity() > 256 * 1024 {
            self.frames = BytesMut::new();
        }
    }
}

/// Starts the closing handshake with `code` and `reason`; the TCP connection closes when the
/// peer answers (or after the close timeout). A connection that is not a WebSocket just closes.
pub(crate) fn disconnect<X>(conn: &Conn<X>, code: u16, reason: &str) {
    let mut g = conn.ws.lock();
    match g.live().filter(|s| s.open) {
        Some(st) => {
            let code = CloseCode(code);
            let r = st.codec.close(code, reason).or_else(|e| match e {
                rswoole_codec::ws::WsError::Closed => Err(e),
                _ => st.codec.close(CloseCode::NORMAL, ""),
            });
            if r.is_ok() {
                let out = st.codec.take_output();
                let _ = write(conn, &out);
                st.closing_since = Some(Instant::now());
            }
            drop(g);
            conn.shared.mark_closing(conn.id);
            conn.wake();
        }
        None => {
            drop(g);
            conn.close();
        }
    }
}

/// Decodes a `WsBroadcast` payload: the target ids (`None` = every WebSocket) and the data.
pub(crate) fn decode_broadcast(p: &[u8]) -> Option<(Option<Vec<u64>>, &[u8])> {
    let n = u32::from_le_bytes(p.get(..4)?.try_into().ok()?);
    if n == u32::MAX {
        return Some((None, &p[4..]));
    }
    let end = 4 + n as usize * 8;
    let ids = p
        .get(4..end)?
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect();
    Some((Some(ids), &p[end..]))
}

/// Fans a `WsBroadcast` payload (ids + data) out to the connections of `conns` it names
/// (all of them for `u32::MAX`).
fn broadcast_payload<X: Send + Sync + 'static>(conns: &ConnTable<X>, opcode: u8, payload: &[u8]) {
    let Some((ids, data)) = decode_broadcast(payload) else {
        return;
    };
    match ids {
        None => broadcast(conns.all(), opcode, data),
        Some(ids) => broadcast(
            ids.into_iter().filter_map(|id| conns.get(ConnId(id))),
            opcode,
            data,
        ),
    }
}

/// Decodes a `WsDisconnect` payload and starts the closing handshake of `conn`.
fn disconnect_payload<X>(conn: &Conn<X>, payload: &[u8]) {
    let code = payload
        .get(..2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
        .unwrap_or(1000);
    let reason = std::str::from_utf8(payload.get(2..).unwrap_or(&[])).unwrap_or("");
    disconnect(conn, code, reason);
}

/// Like [`from_worker`], for a record reassembled from chunks (a large one): a `WsPush` is
/// written without another copy of its message ([`push_bytes`]).
pub(crate) fn from_worker_owned<S: EventSink>(
    conns: &ConnTable<S::State>,
    sink: &S,
    h: &Header,
    payload: Bytes,
) {
    if h.kind == Kind::WsPush {
        if let Some(c) = conns.get(ConnId(h.session)) {
            let _ = push_bytes(&c, h.listener as u8, payload);
        }
        return;
    }
    from_worker(conns, sink, h, &payload);
}

/// Handles a WebSocket record from a worker (Process mode).
pub(crate) fn from_worker<S: EventSink>(
    conns: &ConnTable<S::State>,
    sink: &S,
    h: &Header,
    payload: &[u8],
) {
    let conn = || conns.get(ConnId(h.session));
    match h.kind {
        Kind::WsPush => {
            if let Some(c) = conn() {
                let _ = push(&c, h.listener as u8, payload);
            }
        }
        Kind::WsBroadcast => broadcast_payload(conns, h.listener as u8, payload),
        Kind::WsDisconnect => {
            if let Some(c) = conn() {
                disconnect_payload(&c, payload);
            }
        }
        Kind::WsAccept => {
            let Some(c) = conn() else { return };
            match payload.split_first() {
                Some((1, proto)) => {
                    let proto = std::str::from_utf8(proto).unwrap_or("");
                    if let Some(head) = accept_pending(&c, proto) {
                        sink.event(&c, Kind::WsOpen, head);
                    }
                }
                Some((_, resp)) => reject_pending(&c, resp),
                None => reject_pending(&c, &super::http::error_response(403, "Forbidden")),
            }
        }
        _ => {}
    }
}

/// Handles a WebSocket record another worker forwarded to this one's mailbox (Base mode,
/// `crate::mailbox`): output for this worker's own connections `conns`. Runs synchronously
/// in the mailbox loop, so one sender's records apply in the order they were made. A
/// connection that is gone meanwhile is skipped silently, as in Process mode.
pub(crate) fn from_peer<X: Send + Sync + 'static>(
    conns: &ConnTable<X>,
    h: &Header,
    payload: &[u8],
) {
    let conn = || {
        let c = conns.get(ConnId(h.session));
        if c.is_none() {
            // Closed since the sender checked (as any output racing a close).
            tracing::debug!(fd = h.session, from = h.listener, kind = ?h.kind, "output from another worker for a connection that is gone");
        }
        c
    };
    match h.kind {
        Kind::WsPushFwd => {
            if let Some(c) = conn() {
                let _ = push(&c, h.seq as u8, payload);
            }
        }
        Kind::WsBroadcastFwd => broadcast_payload(conns, h.seq as u8, payload),
        Kind::WsDisconnectFwd => {
            if let Some(c) = conn() {
                disconnect_payload(&c, payload);
            }
        }
        _ => {}
    }
}

impl WsConf {
    /// The owner's configuration for a WebSocket listener; `handshake`: `on_handshake` is set.
    pub(crate) fn new(s: &WebSocketSettings, handshake: bool) -> WsConf {
        let deflate = rswoole_codec::ws::DeflateConfig {
            enabled: s.compression,
            threshold: s.compression_threshold,
            level: s.compression_level,
            no_context_takeover: !s.compression_context_takeover,
            peer_no_context_takeover: !s.compression_context_takeover,
            ..Default::default()
        };
        WsConf {
            codec: rswoole_codec::ws::WsConfig {
                max_frame_size: s.max_frame_size,
                max_message_size: s.max_message_size,
                auto_pong: true,
                deliver_fragments: false,
                deflate,
            },
            handshake,
            ping_interval: s.ping_interval,
            pong_timeout: s.pong_timeout,
            close_timeout: s.close_timeout,
            deliver_control: s.deliver_control_frames,
        }
    }
}

/// Adds `n` to one of this thread's WebSocket counters (metrics on).
#[inline]
fn count(f: impl Fn(&crate::ipc::metrics::ProcSlot) -> &std::sync::atomic::AtomicU64, n: u64) {
    if let Some(m) = crate::ipc::metrics::slot() {
        f(m).fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};

    use super::*;
    use rswoole_codec::ws::DeflateConfig;

    /// Says `busy` as told (events of the connection with a worker, or not).
    struct Busy(AtomicBool);
    impl EventSink for Busy {
        type State = ();
        fn connected(&self, _: &Arc<Conn>) {}
        fn data(&self, _: &Arc<Conn>, _: Bytes) {}
        fn stream_event(&self, _: &Arc<Conn>, _: u32, _: Kind, _: Bytes) {}
        fn busy(&self, _: &Arc<Conn>) -> bool {
            self.0.load(SeqCst)
        }
        fn closed(&self, _: &Arc<Conn>) {}
    }

    /// An open WebSocket on a real socket, and the client's end.
    async fn open_ws() -> (Arc<Conn>, std::net::TcpStream, Arc<WsConf>) {
        let (conn, client) = crate::owner::conn::socket_pair().await;
        let conf = Arc::new(WsConf::new(&WebSocketSettings::default(), false));
        *conn.ws.lock() = WsSlot::Live(Box::new(WsState::new(&conf, None, true)));
        (conn, client, conf)
    }

    /// The race behind a flaky `ws_bad_input_close_codes`, step by step: a finished event saw
    /// the connection idle (its snapshot), then a message was dispatched and a protocol error
    /// held the Close for it; the finish's `flush_final` comes only now. It must leave the
    /// Close held (the sink is busy again), so that the message's echo goes first and its own
    /// finish writes the Close.
    #[tokio::test]
    async fn held_close_outlasts_a_stale_idle_finish() {
        let (conn, mut client, conf) = open_ws().await;
        let sink = Busy(AtomicBool::new(true));
        let mut w = WsIn::new(conf);
        // An unmasked frame from the client: protocol error, Close 1002, held (busy).
        let mut inbuf = BytesMut::from(&[0x81u8, 0x02, b'h', b'i'][..]);
        assert!(matches!(w.feed(&conn, &sink, &mut inbuf), Verdict::Ok));
        // The stale finish: the message is still with its worker.
        flush_final(&conn, || sink.busy(&conn));
        // Its echo (a text frame), then its finish.
        push(&conn, OpCode::Text.as_u8(), b"ok").unwrap();
        sink.0.store(false, SeqCst);
        flush_final(&conn, || sink.busy(&conn));
        let mut got = [0u8; 8];
        client.read_exact(&mut got).unwrap();
        assert_eq!(
            got,
            [0x81, 0x02, b'o', b'k', 0x88, 0x02, 0x03, 0xea],
            "the echo, then Close 1002"
        );
    }

    fn conf(deflate: bool, takeover: bool) -> Arc<WsConf> {
        let mut c = WsConf::new(&WebSocketSettings::default(), false);
        c.codec.deflate = DeflateConfig {
            enabled: deflate,
            no_context_takeover: !takeover,
            peer_no_context_takeover: !takeover,
            threshold: 0,
            ..Default::default()
        };
        Arc::new(c)
    }

    fn params(takeover: bool) -> DeflateParams {
        DeflateParams {
            server_no_context_takeover: !takeover,
            client_no_context_takeover: !takeover,
            ..DeflateParams::default()
        }
    }

    /// Encodes `msg` through the slot as a push does; the client's codec reads it back.
    fn send_through(slot: &mut WsSlot, client: &mut Connection, msg: &[u8]) {
        let mut frame = BytesMut::new();
        let r = slot.with(|st| st.codec.encode_message(MessageKind::Text, msg, &mut frame));
        assert!(matches!(r, Some(Ok(()))), "{r:?}");
        assert_eq!(
            client.feed(&mut frame).unwrap(),
            Some(WsEvent::Message {
                kind: MessageKind::Text,
                data: Bytes::copy_from_slice(msg)
            })
        );
    }

    /// A plain connection and one compressed without context takeover fold into the idle
    /// form when parked, stay folded through writes (each compressed message decodes on the
    /// client), and come back whole for the task to read with.
    #[test]
    fn parked_state_folds_and_writes_leave_it_folded() {
        for deflate in [None, Some(params(false))] {
            let conf = conf(deflate.is_some(), false);
            let mut slot = WsSlot::Live(Box::new(WsState::new(&conf, deflate, true)));
            slot.park();
            assert!(slot.is_idle(), "{deflate:?}");
            assert!(slot.is_open());
            assert_eq!(slot.writable(), Some(deflate.is_some()));
            let mut client = Connection::client(conf.codec.clone(), deflate, 7);
            for i in 0..3 {
                send_through(
                    &mut slot,
                    &mut client,
                    format!("message {i} {i} {i}").as_bytes(),
                );
                assert!(slot.is_idle(), "{deflate:?}: still idle after a write");
            }
            // The task reads again: the codec is whole and reads the client's frames.
            client.send_message(MessageKind::Binary, b"up").unwrap();
            let mut wire = client.take_output();
            let st = slot.live().unwrap();
            assert_eq!(
                st.codec.feed(&mut wire).unwrap(),
                Some(WsEvent::Message {
                    kind: MessageKind::Binary,
                    data: Bytes::from_static(b"up")
                })
            );
            assert!(!slot.is_idle());
        }
    }

    /// What must survive stays whole: compression context, a closing handshake started, a
    /// pending `on_handshake`, a message half read.
    #[test]
    fn state_that_must_survive_is_not_folded() {
        let takeover = conf(true, true);
        let mut slot = WsSlot::Live(Box::new(WsState::new(&takeover, Some(params(true)), true)));
        slot.park();
        assert!(!slot.is_idle(), "context takeover");

        let plain = conf(false, false);
        let mut closing = WsState::new(&plain, None, true);
        closing.closing_since = Some(Instant::now());
        let mut slot = WsSlot::Live(Box::new(closing));
        slot.park();
        assert!(!slot.is_idle(), "closing");

        let mut slot = WsSlot::Live(Box::new(WsState::new(&plain, None, false)));
        slot.park();
        assert!(!slot.is_idle(), "not open yet");

        // The first fragment of a message: the codec holds it.
        let mut wire = BytesMut::new();
        encode_frame(
            &mut wire,
            false,
            false,
            OpCode::Text,
            b"half",
            Some([1, 2, 3, 4]),
        );
        let mut st = WsState::new(&plain, None, true);
        assert_eq!(st.codec.feed(&mut wire).unwrap(), None);
        let mut slot = WsSlot::Live(Box::new(st));
        slot.park();
        assert!(!slot.is_idle(), "inside a message");

        // A write to an idle connection that starts a close leaves it whole.
        let mut slot = WsSlot::Idle {
            conf: plain.clone(),
            deflate: None,
        };
        slot.with(|st| st.codec.close(CloseCode::NORMAL, "bye").unwrap());
        assert!(!slot.is_idle());
        assert!(!slot.as_ref().unwrap().codec.state().is_open());
    }
}
