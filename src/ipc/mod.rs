//! Framed messages between the master and its workers over `SOCK_SEQPACKET` unix sockets.
//!
//! A datagram carries one or more records; a record is a 28-byte header (payload length,
//! kind, flags, listener index, session id, sequence number, HTTP/2 stream id) and its
//! payload. Records are
//! batched: whatever is pushed while the writer task is busy goes out in the next datagram, so
//! under load one `sendmsg` carries many events. A payload larger than [`MAX_CHUNK`] is split
//! into records flagged [`F_MORE`] (all but the last) and [`F_FIRST`] (the first); a receiver
//! that meets a continuation without its first part (its sender died half-way) drops it.
//!
//! Because each worker incarnation gets a fresh socketpair from the manager, a record is never
//! half-read by a dead worker and then read by its replacement: the master knows exactly which
//! events a dead worker had not finished (they were not acknowledged) and re-delivers them.

//!
//! Layer 2: imports only `base` and `sys`. Besides the pipe records, this folder holds the
//! other ways processes talk: [`mailbox`] (worker to worker in Base mode), [`task_link`]
//! (workers to task workers), [`command`] (master and workers to the manager) and [`shared`]
//! (the connection table in shared memory).

pub(crate) mod command;
pub(crate) mod mailbox;
pub(crate) mod metrics;
pub(crate) mod shared;
pub(crate) mod task_link;

use std::collections::VecDeque;
use std::io;
use std::os::fd::OwnedFd;

use std::net::SocketAddr;

use bytes::{BufMut, Bytes, BytesMut};
use parking_lot::Mutex;
use tokio::io::unix::AsyncFd;
use tokio::sync::Notify;

/// Record header size.
pub(crate) const HDR: usize = 28;
/// Largest datagram written.
pub(crate) const MAX_DGRAM: usize = 128 * 1024;
/// Largest payload in one record.
pub(crate) const MAX_CHUNK: usize = MAX_DGRAM - HDR;

/// First record of a payload.
pub(crate) const F_FIRST: u8 = 1;
/// More records of this payload follow.
pub(crate) const F_MORE: u8 = 2;
/// A worker's [`Kind::Send`] that also acknowledges event `seq` (its header's `seq` field):
/// a reply and the `Ack` that follows it in one record ([`PipeTx::ack`]).
pub(crate) const F_ACK: u8 = 4;

/// The payload of a [`Kind::Close`] for a connection the client half-closed (sent FIN):
/// replies still owed to it can be written (`crate::runtime::holds`).
pub(crate) const CLOSE_PEER_FIN: &[u8] = &[1];

/// A [`Kind::Close`] payload: whether the client half-closed the connection.
pub(crate) fn close_payload(half_closed: bool) -> Bytes {
    if half_closed {
        Bytes::from_static(CLOSE_PEER_FIN)
    } else {
        Bytes::new()
    }
}

/// Record kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Kind {
    // master -> worker
    Connect = 1,
    Receive = 2,
    /// The connection is over. Payload: [`CLOSE_PEER_FIN`] when the client half-closed it
    /// (the socket is still writable), else empty.
    Close = 3,
    Packet = 4,
    /// Finish what you have and exit (graceful reload/stop).
    Stop = 5,
    // worker -> master
    Send = 10,
    CloseReq = 11,
    /// Payload: little-endian u64 sequence numbers of finished events.
    Ack = 12,
    /// master -> worker: a whole HTTP request; payload = u32 LE head length, head, body.
    HttpRequest = 20,
    /// master -> worker: the start of a streamed (large-body) request: as `HttpRequest`, with
    /// the first body bytes; `HttpBody` records and one `HttpEnd` follow.
    HttpHead = 21,
    /// master -> worker: more body of the streamed request.
    HttpBody = 22,
    /// master -> worker: end of the streamed request (payload: raw trailer lines).
    HttpEnd = 23,
    /// An HTTP/2 stream's request or response ended before it was complete. master ->
    /// worker: the client reset the stream, or its body grew past `package_max_length`, after
    /// its `HttpHead` was sent (the streamed body fails; no `HttpEnd` follows). worker ->
    /// master: the handler stopped mid-response; the stream is reset.
    HttpAbort = 24,
    /// worker -> master: a part of the response to HTTP/2 stream `stream` (status, header
    /// fields and body as structured data, no HTTP/1.1 encoding); payload: the versioned
    /// format of `crate::owner::h2resp`, at most [`MAX_CHUNK`] bytes (never chunked).
    H2Response = 25,
    /// worker -> master: `send_message`; `session` = target worker id, payload = the message.
    PipeMsg = 40,
    /// master -> worker: a `send_message` from worker `listener`; payload = the message.
    PipeMessage = 41,
    /// master -> worker: a WebSocket upgrade was accepted (payload: the request head);
    /// `on_open` runs. See `crate::websocket`.
    WsOpen = 50,
    /// master -> worker: a whole text message.
    WsText = 51,
    /// master -> worker: a whole binary message.
    WsBinary = 52,
    /// master -> worker: a Ping (only with `deliver_control_frames`).
    WsPing = 53,
    /// master -> worker: a Pong (only with `deliver_control_frames`).
    WsPong = 54,
    /// master -> worker: an upgrade request for `on_handshake` (payload: the request head).
    WsHandshake = 55,
    /// worker -> master: send a message (`listener` = opcode, payload = data).
    WsPush = 56,
    /// worker -> master: one message to many connections (`listener` = opcode; payload =
    /// u32 LE count (u32::MAX = every WebSocket connection), count u64 LE ids, then the data).
    WsBroadcast = 57,
    /// worker -> master: close handshake (payload: u16 LE code, then the UTF-8 reason).
    WsDisconnect = 58,
    /// worker -> master: `on_handshake`'s verdict (payload: 1 + subprotocol to accept, or
    /// 0 + the raw HTTP response that rejects).
    WsAccept = 59,
    // Base mode, worker -> worker mailbox (`crate::mailbox`): WebSocket output for the
    // connections of the receiving worker. `listener` = the sender's worker id (chunks are
    // reassembled per sender and kind); the receiver fans out in its mailbox loop, in arrival
    // order, and never runs `on_pipe_message` for them.
    /// `push` to one of the receiver's connections: `session` = fd, `seq` = opcode, payload =
    /// the data.
    WsPushFwd = 60,
    /// `broadcast`/`broadcast_to` for the receiver's connections: `seq` = opcode, payload as
    /// [`Kind::WsBroadcast`] (u32::MAX = every WebSocket connection of the receiver).
    WsBroadcastFwd = 61,
    /// `disconnect` of one of the receiver's connections: `session` = fd, payload as
    /// [`Kind::WsDisconnect`].
    WsDisconnectFwd = 62,
    /// A cluster connection operation (`cluster_send`/`cluster_push`/`cluster_close` from
    /// any node) on one of the receiver's connections: `session` = fd, payload = the request
    /// record of `runtime::cluster::remote`; the receiver applies it and publishes the answer
    /// to the caller's reply channel itself.
    ClusterOpFwd = 63,
}

impl Kind {
    /// A WebSocket message or control frame from the client (`on_message`).
    pub(crate) fn is_ws_data(self) -> bool {
        matches!(
            self,
            Kind::WsText | Kind::WsBinary | Kind::WsPing | Kind::WsPong
        )
    }

    /// A WebSocket event that carries a message (or the open): its replies must go out before
    /// a Close the peer sent after it.
    pub(crate) fn is_ws_message(self) -> bool {
        matches!(
            self,
            Kind::WsOpen | Kind::WsText | Kind::WsBinary | Kind::WsPing | Kind::WsPong
        )
    }

    fn from_u8(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::Connect,
            2 => Kind::Receive,
            3 => Kind::Close,
            4 => Kind::Packet,
            5 => Kind::Stop,
            10 => Kind::Send,
            11 => Kind::CloseReq,
            12 => Kind::Ack,
            20 => Kind::HttpRequest,
            21 => Kind::HttpHead,
            22 => Kind::HttpBody,
            23 => Kind::HttpEnd,
            24 => Kind::HttpAbort,
            25 => Kind::H2Response,
            40 => Kind::PipeMsg,
            41 => Kind::PipeMessage,
            50 => Kind::WsOpen,
            51 => Kind::WsText,
            52 => Kind::WsBinary,
            53 => Kind::WsPing,
            54 => Kind::WsPong,
            55 => Kind::WsHandshake,
            56 => Kind::WsPush,
            57 => Kind::WsBroadcast,
            58 => Kind::WsDisconnect,
            59 => Kind::WsAccept,
            60 => Kind::WsPushFwd,
            61 => Kind::WsBroadcastFwd,
            62 => Kind::WsDisconnectFwd,
            63 => Kind::ClusterOpFwd,
            _ => return None,
        })
    }
}

/// A decoded record header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) kind: Kind,
    pub(crate) flags: u8,
    pub(crate) listener: u16,
    pub(crate) session: u64,
    pub(crate) seq: u64,
    /// The HTTP/2 stream an HTTP record belongs to (0: none, or HTTP/1.1).
    pub(crate) stream: u32,
}

/// Malformed IPC data: a bug or a dying peer; the pipe is dropped.
#[derive(Debug, thiserror::Error)]
pub(crate) enum IpcError {
    #[error("truncated record in a {0}-byte datagram")]
    Truncated(usize),
    #[error("unknown record kind {0}")]
    Kind(u8),
}

/// Appends one record (split into chunks if large) to `dst`.
pub(crate) fn encode(dst: &mut BytesMut, h: Header, payload: &[u8]) {
    let mut rest = payload;
    let mut first = true;
    loop {
        let n = rest.len().min(MAX_CHUNK);
        let more = rest.len() > n;
        encode_chunk(dst, h, &rest[..n], first, more);
        rest = &rest[n..];
        first = false;
        if !more {
            break;
        }
    }
}

/// Appends one chunk of a record: `first` and `more` set [`F_FIRST`] and [`F_MORE`].
fn encode_chunk(dst: &mut BytesMut, h: Header, chunk: &[u8], first: bool, more: bool) {
    let mut flags = h.flags;
    if first {
        flags |= F_FIRST;
    }
    if more {
        flags |= F_MORE;
    }
    dst.reserve(HDR + chunk.len());
    put_header(dst, h, flags, chunk.len());
    dst.put_slice(chunk);
}

/// Appends a record header announcing `len` payload bytes.
/// Built as one array and appended with one copy: a `put_*` per field costs a capacity check
/// and a length update each, on every record.
fn put_header(dst: &mut BytesMut, h: Header, flags: u8, len: usize) {
    let mut b = [0u8; HDR];
    b[0..4].copy_from_slice(&(len as u32).to_le_bytes());
    b[4] = h.kind as u8;
    b[5] = flags;
    b[6..8].copy_from_slice(&h.listener.to_le_bytes());
    b[8..16].copy_from_slice(&h.session.to_le_bytes());
    b[16..24].copy_from_slice(&h.seq.to_le_bytes());
    b[24..28].copy_from_slice(&h.stream.to_le_bytes());
    dst.extend_from_slice(&b);
}

/// Iterates over the records of one datagram.
pub(crate) fn decode(mut dgram: &[u8]) -> impl Iterator<Item = Result<(Header, &[u8]), IpcError>> {
    let total = dgram.len();
    std::iter::from_fn(move || {
        if dgram.is_empty() {
            return None;
        }
        let Some(&b) = dgram.first_chunk::<HDR>() else {
            dgram = &[];
            return Some(Err(IpcError::Truncated(total)));
        };
        // Fixed offsets in a fixed-size array: no bounds checks, no cursor updates.
        let len = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
        let kind_b = b[4];
        let flags = b[5];
        let listener = u16::from_le_bytes([b[6], b[7]]);
        let session = u64::from_le_bytes([b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]]);
        let seq = u64::from_le_bytes([b[16], b[17], b[18], b[19], b[20], b[21], b[22], b[23]]);
        let stream = u32::from_le_bytes([b[24], b[25], b[26], b[27]]);
        if dgram.len() < HDR + len {
            dgram = &[];
            return Some(Err(IpcError::Truncated(total)));
        }
        let payload = &dgram[HDR..HDR + len];
        dgram = &dgram[HDR + len..];
        match Kind::from_u8(kind_b) {
            Some(kind) => Some(Ok((
                Header {
                    kind,
                    flags,
                    listener,
                    session,
                    seq,
                    stream,
                },
                payload,
            ))),
            None => Some(Err(IpcError::Kind(kind_b))),
        }
    })
}

/// Reassembles chunked payloads for one pipe.
#[derive(Debug, Default)]
pub(crate) struct Reassembler {
    partial: Option<(u64, Kind, BytesMut)>,
}

impl Reassembler {
    /// Whether `h` is a whole (unchunked) record, to be used in place; like
    /// [`feed`](Self::feed), it ends a chunked payload in progress.
    pub(crate) fn whole(&mut self, h: &Header) -> bool {
        let whole = h.flags & (F_FIRST | F_MORE) == F_FIRST;
        if whole {
            self.partial = None;
        }
        whole
    }

    /// Feeds a record; returns the whole payload when complete.
    pub(crate) fn feed(&mut self, h: &Header, payload: &[u8]) -> Option<Bytes> {
        let first = h.flags & F_FIRST != 0;
        let more = h.flags & F_MORE != 0;
        if first && !more {
            self.partial = None;
            return Some(Bytes::copy_from_slice(payload));
        }
        if first {
            let mut b = BytesMut::with_capacity(payload.len() * 2);
            b.extend_from_slice(payload);
            self.partial = Some((h.session, h.kind, b));
            return None;
        }
        match &mut self.partial {
            Some((s, k, b)) if *s == h.session && *k == h.kind => {
                b.extend_from_slice(payload);
                if more {
                    None
                } else {
                    self.partial.take().map(|(_, _, b)| b.freeze())
                }
            }
            // A continuation without its start: its sender died mid-message. Drop it.
            _ => None,
        }
    }
}

/// The sending side of a pipe: records are queued and a writer task sends them in batches.
#[derive(Debug)]
pub(crate) struct PipeTx {
    fd: AsyncFd<OwnedFd>,
    state: Mutex<TxState>,
    notify: Notify,
}

#[derive(Debug, Default)]
struct TxState {
    q: DgramQueue,
    closed: bool,
}

/// Records waiting to be sent, batched into datagrams of at most [`MAX_DGRAM`]; a payload
/// above [`MAX_CHUNK`] goes in chunks, a datagram each. Used by [`PipeTx`] and the Base-mode
/// mailbox outboxes (`crate::mailbox`).
///
/// A large payload given as [`Bytes`] ([`push_bytes`](Self::push_bytes)) is not copied
/// whole into the queue: the queue keeps a reference to it and cuts each chunk's datagram
/// when that datagram is about to be sent, so a 60 MiB WebSocket message on its way to a
/// worker costs one 128 KiB datagram at a time, not a second 60 MiB copy.
#[derive(Debug, Default)]
pub(crate) struct DgramQueue {
    /// Datagrams ready to go (or large records to cut into them), oldest first.
    full: VecDeque<Queued>,
    /// The datagram being filled.
    cur: BytesMut,
    /// A sent datagram's buffer, cleared, to fill next ([`DgramQueue::recycle`]): under load
    /// every datagram would otherwise cost an allocation and the reallocations of its growth.
    spare: Option<BytesMut>,
    /// Where the last record written into `cur` starts, and `cur`'s length after it, when
    /// that record is a whole [`Kind::Send`] ([`DgramQueue::ack`] may amend it).
    last_send: Option<(usize, usize)>,
}

#[derive(Debug)]
enum Queued {
    Dgram(BytesMut),
    /// A large record whose chunks from `off` on are still to be cut.
    Chunks {
        h: Header,
        payload: Bytes,
        off: usize,
    },
}

/// A sent datagram's buffer is kept for the next one up to this capacity (a larger one, from
/// a burst, is freed).
const SPARE_MAX: usize = 64 * 1024;

impl DgramQueue {
    /// Appends a record (chunked if large).
    pub(crate) fn push(&mut self, h: Header, payload: &[u8]) {
        if payload.len() > MAX_CHUNK {
            self.push_bytes(h, Bytes::copy_from_slice(payload));
            return;
        }
        if !self.cur.is_empty() && self.cur.len() + HDR + payload.len() > MAX_DGRAM {
            let full = std::mem::replace(&mut self.cur, self.spare.take().unwrap_or_default());
            self.full.push_back(Queued::Dgram(full));
        }
        let at = self.cur.len();
        encode(&mut self.cur, h, payload);
        self.note_last(h, at);
    }

    /// Remembers the record just written at `at` if it is a reply that [`Self::ack`] may
    /// amend: a `Send` or a `WsPush` (a WebSocket echo), whole (not chunked), not already
    /// acknowledging.
    fn note_last(&mut self, h: Header, at: usize) {
        self.last_send = (matches!(h.kind, Kind::Send | Kind::WsPush) && h.flags == 0)
            .then(|| (at, self.cur.len()));
    }

    /// Acknowledges event `seq` in the last record queued, when it is a whole `Send` or
    /// `WsPush` (the reply to that event, usually): sets [`F_ACK`] and writes `seq` into its header, so the
    /// reply and its acknowledgement are one record. `false`: nothing amended (queue an
    /// `Ack` record). The master applies a datagram's acknowledgements after its other
    /// records either way, so both forms mean the same.
    pub(crate) fn ack(&mut self, seq: u64) -> bool {
        match self.last_send.take() {
            Some((at, end)) if end == self.cur.len() => {
                self.cur[at + 5] |= F_ACK;
                self.cur[at + 16..at + 24].copy_from_slice(&seq.to_le_bytes());
                true
            }
            _ => false,
        }
    }

    /// Appends a record whose payload is already shared: a large one is referenced, not
    /// copied, and cut into chunks as they go out.
    pub(crate) fn push_bytes(&mut self, h: Header, payload: Bytes) {
        if payload.len() <= MAX_CHUNK {
            self.push(h, &payload);
            return;
        }
        if !self.cur.is_empty() {
            let full = std::mem::replace(&mut self.cur, self.spare.take().unwrap_or_default());
            self.full.push_back(Queued::Dgram(full));
        }
        self.last_send = None;
        self.full.push_back(Queued::Chunks { h, payload, off: 0 });
    }

    /// Appends a record whose payload `write` puts in place (`len` bytes: no copy of a
    /// payload made of parts); chunked through a temporary buffer above [`MAX_CHUNK`].
    pub(crate) fn push_with(&mut self, h: Header, len: usize, write: impl FnOnce(&mut BytesMut)) {
        if len > MAX_CHUNK {
            let mut tmp = BytesMut::with_capacity(len);
            write(&mut tmp);
            self.push_bytes(h, tmp.freeze());
            return;
        }
        if !self.cur.is_empty() && self.cur.len() + HDR + len > MAX_DGRAM {
            let full = std::mem::replace(&mut self.cur, self.spare.take().unwrap_or_default());
            self.full.push_back(Queued::Dgram(full));
        }
        self.cur.reserve(HDR + len);
        let at = self.cur.len();
        put_header(&mut self.cur, h, h.flags | F_FIRST, len);
        write(&mut self.cur);
        let written = self.cur.len() - at - HDR;
        debug_assert_eq!(
            written, len,
            "push_with: the payload is not the length announced"
        );
        // The record says what was written, whatever was announced.
        self.cur[at..at + 4].copy_from_slice(&(written as u32).to_le_bytes());
        self.note_last(h, at);
    }

    /// Nothing queued.
    pub(crate) fn is_empty(&self) -> bool {
        self.full.is_empty() && self.cur.is_empty()
    }

    /// The oldest datagram to send, if any.
    pub(crate) fn pop(&mut self) -> Option<BytesMut> {
        match self.full.front_mut() {
            Some(Queued::Chunks { h, payload, off }) => {
                let n = (payload.len() - *off).min(MAX_CHUNK);
                let more = *off + n < payload.len();
                let mut d = BytesMut::with_capacity(HDR + n);
                encode_chunk(&mut d, *h, &payload[*off..*off + n], *off == 0, more);
                *off += n;
                if !more {
                    self.full.pop_front();
                }
                Some(d)
            }
            Some(Queued::Dgram(_)) => match self.full.pop_front() {
                Some(Queued::Dgram(d)) => Some(d),
                _ => None,
            },
            None if !self.cur.is_empty() => Some(std::mem::replace(
                &mut self.cur,
                self.spare.take().unwrap_or_default(),
            )),
            None => None,
        }
    }

    /// Gives back a datagram [`pop`](Self::pop) returned, once sent: its buffer is filled next
    /// (kept only if its capacity is at most [`SPARE_MAX`]).
    pub(crate) fn recycle(&mut self, mut d: BytesMut) {
        if self.spare.is_none() && d.capacity() <= SPARE_MAX {
            d.clear();
            if self.cur.is_empty() && self.cur.capacity() < d.capacity() {
                // Nothing queued yet: fill the recycled buffer at once.
                self.cur = d;
            } else {
                self.spare = Some(d);
            }
        }
    }

    /// Puts back a datagram that could not be sent, to go first.
    fn unshift(&mut self, d: BytesMut) {
        self.full.push_front(Queued::Dgram(d));
    }
}

impl PipeTx {
    /// Wraps a non-blocking seqpacket socket. Must be called inside a tokio runtime.
    ///
    /// The socket is registered for reading only. Registered for writing too, it would wake
    /// its reactor (an `epoll_wait` that finds nothing to do) each time the peer reads one of
    /// our datagrams: the kernel raises a write-space edge then. Datagrams are sent straight
    /// away, and only when the socket is full does the writer wait for room, through a
    /// registration of its own ([`run_writer`](Self::run_writer)).
    pub(crate) fn new(fd: OwnedFd) -> io::Result<PipeTx> {
        Ok(PipeTx {
            fd: crate::sys::async_fd_with(fd, tokio::io::Interest::READABLE)?,
            state: Mutex::new(TxState::default()),
            notify: Notify::new(),
        })
    }

    /// Queues a record; `false` if the pipe is closed.
    pub(crate) fn push(&self, h: Header, payload: &[u8]) -> bool {
        let mut st = self.state.lock();
        if st.closed {
            return false;
        }
        st.q.push(h, payload);
        drop(st);
        self.notify.notify_one();
        true
    }

    /// Like [`push`](Self::push) for a payload already in [`Bytes`]: a large one is sent in
    /// chunks cut from it as they go, without a copy of the whole ([`DgramQueue::push_bytes`]).
    pub(crate) fn push_bytes(&self, h: Header, payload: Bytes) -> bool {
        let mut st = self.state.lock();
        if st.closed {
            return false;
        }
        st.q.push_bytes(h, payload);
        drop(st);
        self.notify.notify_one();
        true
    }

    /// Queues a record whose payload `write` puts in place ([`DgramQueue::push_with`]);
    /// `false` if the pipe is closed.
    pub(crate) fn push_with(
        &self,
        h: Header,
        len: usize,
        write: impl FnOnce(&mut BytesMut),
    ) -> bool {
        let mut st = self.state.lock();
        if st.closed {
            return false;
        }
        st.q.push_with(h, len, write);
        drop(st);
        self.notify.notify_one();
        true
    }

    /// Acknowledges event `seq` to the master: in the reply just queued when there is one
    /// ([`DgramQueue::ack`]), else as an [`Kind::Ack`] record. `false` if the pipe is closed.
    pub(crate) fn ack(&self, seq: u64) -> bool {
        let mut st = self.state.lock();
        if st.closed {
            return false;
        }
        if st.q.ack(seq) {
            // Amended a record still queued: the writer was told when it was pushed.
            return true;
        }
        let h = Header {
            kind: Kind::Ack,
            flags: 0,
            listener: 0,
            session: 0,
            seq: 0,
            stream: 0,
        };
        st.q.push(h, &seq.to_le_bytes());
        drop(st);
        self.notify.notify_one();
        true
    }

    /// Marks the pipe closed: later pushes fail.
    pub(crate) fn close(&self) {
        self.state.lock().closed = true;
        self.notify.notify_one();
    }

    fn next_dgram(&self) -> Option<BytesMut> {
        self.state.lock().q.pop()
    }

    fn unshift(&self, d: BytesMut) {
        self.state.lock().q.unshift(d);
    }

    /// The writer sent `d`: its buffer carries a later datagram.
    fn recycle(&self, d: BytesMut) {
        self.state.lock().q.recycle(d);
    }

    /// The writer loop: runs until the pipe is closed (and drained) or the peer is gone.
    ///
    /// `gather`: yield once before each send so that the other tasks ready now (connections
    /// read in the same reactor turn) queue their records first: one datagram then carries
    /// them all; without it, tokio runs a just-woken task next and each event would cost its
    /// own `sendmsg`. The yield goes behind the tasks queued on this thread
    /// ([`yield_to_queued`]), not past the next poll of the I/O driver. The master's writers gather; a worker's do not: its records are pushed by
    /// the pipe reader while it handles a datagram, all before the writer can run, and a
    /// yield would only cost the worker's single thread one more poll of its I/O driver (an
    /// `epoll_wait`) per datagram.
    pub(crate) async fn run_writer(&self, gather: bool) -> io::Result<()> {
        // The socket registered for write readiness (a duplicate of the pipe's descriptor),
        // only while a datagram waits for room in it: see [`new`](Self::new).
        let mut room: Option<AsyncFd<OwnedFd>> = None;
        loop {
            if gather {
                yield_to_queued().await;
            }
            while let Some(d) = self.next_dgram() {
                loop {
                    let sent = match &room {
                        None => send(self.fd.get_ref(), &d),
                        Some(w) => {
                            let mut guard = match w.writable().await {
                                Ok(g) => g,
                                Err(e) => return Err(self.failed(d, e)),
                            };
                            match guard.try_io(|fd| send(fd.get_ref(), &d)) {
                                Ok(r) => r,
                                Err(_would_block) => continue,
                            }
                        }
                    };
                    match sent {
                        Ok(()) => {
                            self.recycle(d);
                            break;
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock && room.is_none() => {
                            let w = self.fd.get_ref().try_clone().and_then(|fd| {
                                crate::sys::async_fd_with(fd, tokio::io::Interest::WRITABLE)
                            });
                            match w {
                                Ok(w) => room = Some(w),
                                Err(e) => return Err(self.failed(d, e)),
                            }
                        }
                        Err(e) => return Err(self.failed(d, e)),
                    }
                }
            }
            // Drained: no more write readiness (its edges would only wake the reactor).
            room = None;
            {
                // Look without taking: a datagram queued since the loop above (by another
                // reactor thread, just before the pipe was closed) must still go out, not be
                // popped here and dropped.
                let st = self.state.lock();
                if st.closed && st.q.is_empty() {
                    return Ok(());
                }
                if !st.q.is_empty() {
                    continue;
                }
            }
            self.notify.notified().await;
        }
    }

    /// The writer cannot go on: `d` is put back, the pipe closed; the error to return.
    fn failed(&self, d: BytesMut, e: io::Error) -> io::Error {
        self.unshift(d);
        self.state.lock().closed = true;
        e
    }

    /// Receives the next datagram with `rx` (which may hold one read ahead). An empty
    /// datagram at EOF.
    pub(crate) async fn recv_next<'a>(&self, rx: &'a mut DgramReader) -> io::Result<&'a [u8]> {
        rx.next(&self.fd).await
    }
}

/// Lets the tasks already queued on this thread run first: the task wakes itself and returns
/// `Pending` once, which tokio's schedulers treat as a yield (the task goes to the back of the
/// thread's run queue). `tokio::task::yield_now` instead defers the task until the runtime has
/// polled its I/O driver again: with nothing else to run, that is one more `epoll_wait`
/// (timeout 0) per reactor turn, and the task then runs ahead of the tasks that poll woke.
async fn yield_to_queued() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if std::mem::replace(&mut yielded, true) {
            return std::task::Poll::Ready(());
        }
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    })
    .await
}

/// Reads the datagrams of a seqpacket socket two at a time (`recvmmsg`), so that a reader
/// that empties the socket learns it without one more `recv` that fails with `EAGAIN`: when a
/// call brings one datagram where two were asked for, nothing else was queued, and the
/// socket's read readiness is cleared (the next datagram raises a new edge). Two
/// [`MAX_DGRAM`] buffers; a datagram read ahead waits in the second.
#[derive(Debug)]
pub(crate) struct DgramReader {
    a: Vec<u8>,
    b: Vec<u8>,
    /// The length of a datagram read ahead into `b`, not returned yet.
    ahead: Option<usize>,
}

impl Default for DgramReader {
    fn default() -> Self {
        DgramReader {
            a: vec![0; MAX_DGRAM],
            b: vec![0; MAX_DGRAM],
            ahead: None,
        }
    }
}

impl DgramReader {
    /// The next datagram from `fd` (empty at EOF).
    ///
    /// A peer that exits with datagrams of ours unread makes the kernel report `ECONNRESET`
    /// once, *before* the datagrams it sent us: they are still read (then EOF), so that the
    /// last replies of a stopping process are not lost.
    pub(crate) async fn next(&mut self, fd: &AsyncFd<OwnedFd>) -> io::Result<&[u8]> {
        if let Some(n) = self.ahead.take() {
            return Ok(&self.b[..n]);
        }
        let mut reset = false;
        loop {
            let mut guard = fd.readable().await?;
            match crate::sys::recv_two(fd.get_ref(), &mut self.a, &mut self.b) {
                Ok((n, second)) => {
                    match second {
                        // Asked for two, got one: the socket is empty now (or the second
                        // read failed, and the error is reported by the next call: a reset
                        // peer raised an edge of its own when it closed).
                        None => guard.clear_ready(),
                        // A datagram after EOF is never looked at: an empty one is EOF.
                        Some(m) if n > 0 => self.ahead = Some(m),
                        Some(_) => {}
                    }
                    return Ok(&self.a[..n]);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => guard.clear_ready(),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                    if std::mem::replace(&mut reset, true) {
                        return Ok(&[]);
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }
}

fn send(fd: &OwnedFd, d: &[u8]) -> io::Result<()> {
    rustix::net::send(
        fd,
        d,
        rustix::net::SendFlags::NOSIGNAL | rustix::net::SendFlags::DONTWAIT,
    )
    .map(|_| ())
    .map_err(io::Error::from)
}

/// Packet payload: family (4/6), port (LE u16), 16 address bytes, then the datagram.
pub(crate) fn encode_packet(from: SocketAddr, data: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(19 + data.len());
    match from {
        SocketAddr::V4(a) => {
            b.put_u8(4);
            b.put_u16_le(a.port());
            let mut ip = [0u8; 16];
            ip[..4].copy_from_slice(&a.ip().octets());
            b.put_slice(&ip);
        }
        SocketAddr::V6(a) => {
            b.put_u8(6);
            b.put_u16_le(a.port());
            b.put_slice(&a.ip().octets());
        }
    }
    b.put_slice(data);
    b.freeze()
}

/// Inverse of [`encode_packet`].
pub(crate) fn decode_packet(p: &Bytes) -> Option<(SocketAddr, Bytes)> {
    if p.len() < 19 {
        return None;
    }
    let port = u16::from_le_bytes([p[1], p[2]]);
    let addr = match p[0] {
        4 => SocketAddr::from(([p[3], p[4], p[5], p[6]], port)),
        6 => {
            let o: [u8; 16] = p[3..19].try_into().ok()?;
            SocketAddr::from((o, port))
        }
        _ => return None,
    };
    Some((addr, p.slice(19..)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr(kind: Kind, seq: u64) -> Header {
        Header {
            kind,
            flags: 0,
            listener: 3,
            session: 42,
            seq,
            stream: 0,
        }
    }

    /// An acknowledgement rides on the `Send` queued just before it (flag and seq), and on
    /// nothing else: not on another kind, not on a chunked `Send`, not on a `Send` already
    /// carrying one, not across datagrams.
    #[test]
    fn ack_rides_on_the_last_send() {
        let recs = |d: &[u8]| -> Vec<(Kind, u8, u64, Vec<u8>)> {
            decode(d)
                .map(|r| r.expect("a record"))
                .map(|(h, p)| (h.kind, h.flags, h.seq, p.to_vec()))
                .collect()
        };
        let mut q = DgramQueue::default();
        q.push(hdr(Kind::Send, 0), b"reply");
        assert!(q.ack(7));
        assert!(!q.ack(8), "one acknowledgement per record");
        q.push(hdr(Kind::CloseReq, 0), b"");
        assert!(!q.ack(9));
        q.push_with(hdr(Kind::Send, 0), 3, |d| d.extend_from_slice(b"abc"));
        assert!(q.ack(10));
        q.push(hdr(Kind::WsPush, 0), b"echo");
        assert!(
            q.ack(13),
            "a WebSocket echo carries its acknowledgement too"
        );
        q.push(hdr(Kind::WsBroadcast, 0), b"all");
        assert!(!q.ack(14));
        q.push(hdr(Kind::Send, 0), &vec![1u8; MAX_CHUNK + 1]);
        assert!(!q.ack(11), "a chunked Send is not amended");
        let d = q.pop().expect("a datagram");
        assert_eq!(
            recs(&d),
            vec![
                (Kind::Send, F_FIRST | F_ACK, 7, b"reply".to_vec()),
                (Kind::CloseReq, F_FIRST, 0, vec![]),
                (Kind::Send, F_FIRST | F_ACK, 10, b"abc".to_vec()),
                (Kind::WsPush, F_FIRST | F_ACK, 13, b"echo".to_vec()),
                (Kind::WsBroadcast, F_FIRST, 0, b"all".to_vec()),
            ]
        );
        let mut q = DgramQueue::default();
        q.push(hdr(Kind::Send, 0), b"x");
        let _ = q.pop();
        assert!(!q.ack(12), "the Send left in an earlier datagram");
    }

    /// A record written in place is the same bytes as one pushed from a buffer, small or
    /// chunked.
    #[test]
    fn push_with_is_push() {
        for len in [0, 10, 1000, MAX_CHUNK, MAX_CHUNK + 1, 3 * MAX_CHUNK + 5] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let (mut a, mut b) = (DgramQueue::default(), DgramQueue::default());
            a.push(hdr(Kind::Receive, 1), b"before");
            b.push(hdr(Kind::Receive, 1), b"before");
            a.push(hdr(Kind::HttpRequest, 2), &payload);
            b.push_with(hdr(Kind::HttpRequest, 2), len, |d| {
                d.extend_from_slice(&payload)
            });
            loop {
                match (a.pop(), b.pop()) {
                    (None, None) => break,
                    (x, y) => assert_eq!(x, y, "payload of {len} bytes"),
                }
            }
        }
    }

    /// A sent datagram's buffer carries the next one (no allocation per datagram); one
    /// grown past `SPARE_MAX` by a burst is not kept.
    #[test]
    fn sent_datagrams_are_recycled() {
        let mut q = DgramQueue::default();
        q.push(hdr(Kind::Send, 1), &[1; 500]);
        let d = q.pop().expect("a datagram");
        let ptr = d.as_ptr();
        q.recycle(d);
        q.push(hdr(Kind::Send, 2), &[2; 300]);
        let d = q.pop().expect("a datagram");
        assert_eq!(d.as_ptr(), ptr, "the recycled buffer is reused");
        let recs: Vec<_> = decode(&d).collect::<Result<_, _>>().expect("decodes");
        assert_eq!(recs.len(), 1);
        assert_eq!((recs[0].0.seq, recs[0].1), (2, &[2u8; 300][..]));
        q.recycle(d);
        // Filling the spare while the current datagram is being filled: both are used.
        q.push(hdr(Kind::Send, 3), &[3; 10]);
        assert_eq!(q.pop().expect("a datagram").as_ptr(), ptr);
        let mut big = BytesMut::with_capacity(SPARE_MAX + 1);
        big.extend_from_slice(&[0; 8]);
        q.recycle(big);
        assert!(
            q.spare.is_none() && q.cur.capacity() <= SPARE_MAX,
            "a burst's buffer is freed"
        );
    }

    /// A worker that exits with events of ours unread: its last records still reach us,
    /// read two at a time or one.
    #[test]
    fn reader_reads_what_a_reset_peer_sent() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .expect("runtime");
        rt.block_on(async {
            for replies in [1, 2, 3] {
                let (ours, theirs) = crate::sys::seqpacket_pair().expect("pair");
                send(&ours, b"unread event").expect("send");
                for i in 0..replies {
                    send(&theirs, format!("reply {i}").as_bytes()).expect("send");
                }
                drop(theirs);
                let fd = crate::sys::async_fd(ours).expect("register");
                let mut rx = DgramReader::default();
                for i in 0..replies {
                    let d = rx.next(&fd).await.expect("recv");
                    assert_eq!(d, format!("reply {i}").as_bytes());
                }
                assert_eq!(rx.next(&fd).await.expect("eof"), b"");
            }
        });
    }

    /// A reader that emptied the socket (and cleared its readiness on a short `recvmmsg`)
    /// still gets every later datagram, and a pipe's writer waits for room when the socket
    /// is full (its descriptor is registered for reading only) and loses nothing.
    #[test]
    fn pipe_delivers_every_datagram() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let (ours, theirs) = crate::sys::seqpacket_pair().expect("pair");
            let tx = std::sync::Arc::new(PipeTx::new(ours).expect("register"));
            let peer = crate::sys::async_fd(theirs).expect("register");
            let mut rx = DgramReader::default();
            // One datagram at a time: each read empties the socket.
            for i in 0..3u64 {
                send(peer.get_ref(), &i.to_le_bytes()).expect("send");
                let d =
                    tokio::time::timeout(std::time::Duration::from_secs(5), tx.recv_next(&mut rx))
                        .await
                        .expect("not missed")
                        .expect("recv");
                assert_eq!(d, i.to_le_bytes());
            }
            // The writer: far more than the socket holds, read slowly.
            let w = tx.clone();
            let writer = tokio::spawn(async move { w.run_writer(false).await });
            let n = 3000u64;
            for i in 0..n {
                tx.push(hdr(Kind::Send, i), &[7; 1000]);
                if i % 500 == 0 {
                    tokio::task::yield_now().await;
                }
            }
            let mut peer_rx = DgramReader::default();
            let mut seen = 0u64;
            while seen < n {
                let d =
                    tokio::time::timeout(std::time::Duration::from_secs(5), peer_rx.next(&peer))
                        .await
                        .expect("the writer goes on when room comes back")
                        .expect("recv");
                for rec in decode(d) {
                    let (h, p) = rec.expect("a record");
                    assert_eq!((h.seq, p.len()), (seen, 1000));
                    seen += 1;
                }
            }
            tx.close();
            writer
                .await
                .expect("joins")
                .expect("the writer ends cleanly");
        });
    }
}
