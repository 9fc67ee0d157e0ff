//! One client TCP connection, as held by whoever owns the socket: the master's reactor in
//! Process mode, the worker in Base mode.
//!
//! The connection task reads, hands data to an [`EventSink`], and flushes queued output.
//! Writes from elsewhere ([`Conn::write`]) go straight to the socket when nothing is queued, so
//! an echo costs no task hop. Life cycle, so that `on_close` runs exactly once and half-close
//! is honoured (a reply written after the client's FIN still reaches it):
//!
//! 1. `Open`: reading and writing.
//! 2. The peer sends FIN or an error happens, or the server asks to close (after its queued
//!    output is flushed): the sink gets `closed` once. After a FIN alone
//!    ([`Conn::half_closed`]) the socket stays writable: the sink may keep it open for replies
//!    the application still owes (`runtime::holds`, bounded by `half_close_timeout`).
//! 3. The sink calls [`Conn::close_done`] once the application's `on_close` has run (so every
//!    reply of earlier events has been written); the task flushes what is left, shuts the
//!    socket down and ends.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::task::Poll;

use bytes::{Buf, Bytes, BytesMut};
use parking_lot::Mutex;
use tokio::net::TcpStream;

use super::flusher::Flusher;
use super::handover::{Movable, Moved};
use super::inbound::{ConnConfig, IdleIn, Inbound, Verdict};
use super::sink::EventSink;
use super::ws::WsSlot;
use crate::base::ConnId;
use crate::ipc::shared::Shared;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Open,
    /// The server asked to close: stop reading, flush, then report closed.
    Draining,
    /// `closed` was reported; waiting for `close_done`.
    Closing,
    /// `close_done` came: flush what is left and end.
    Finishing,
    /// Handed over to a new master (upgrade): the task has stopped; writes are refused so
    /// that nothing overtakes the output that moved ([`super::handover`]).
    Moved,
}

#[derive(Debug)]
struct Out {
    buf: BytesMut,
    phase: Phase,
    read_eof: bool,
    io_error: bool,
    /// When the connection started closing with output still queued: a client that does not
    /// read it within [`DRAIN_TIMEOUT`] is cut.
    closing_since: Option<std::time::Instant>,
    /// The connection ended by the client's FIN alone: it is still writable.
    peer_fin: bool,
    /// A TLS connection's rustls state ([`super::tls`]): plaintext goes from `buf` into it
    /// once the handshake is done, and its TLS records to the socket. `None`: plain TCP.
    tls: Option<Box<rustls::ServerConnection>>,
    /// TLS: the handshake is not finished (the sink has not been told of the connection).
    handshaking: bool,
    /// The connection speaks HTTP/2 ([`super::h2`]): the workers' responses wait in `h2q`
    /// for the HTTP/2 driver, which turns them into frames; `buf` is not used.
    h2: bool,
    /// HTTP/2: the workers' responses per stream, waiting for the driver (boxed: only
    /// HTTP/2 connections have one).
    h2q: Option<Box<super::h2::Queued>>,
    /// The connection is parked ([`Conn::run_from`] returned [`Ended::Parked`]): no task; its
    /// decoding state waits here, and this waker revives it.
    parked: Option<Parked>,
    /// A revival was asked (the parked state is not taken back yet): ask no second one.
    unparking: bool,
    /// The waker of the connection's task (or of the HTTP/2 driver it became), registered by
    /// the task before it looks at `Conn::kicked`; [`Conn::kick`] wakes it. `None` while no
    /// task runs (parked, ended).
    task: Option<std::task::Waker>,
}

/// What a parked connection keeps: its decoding state in its idle form. The waker that
/// starts a task for it again (registered for the socket's read readiness, and called by
/// [`Conn::kick`]) is `Conn::park_waker`, made once per connection at its first park.
struct Parked {
    decoder: IdleIn,
}

impl std::fmt::Debug for Parked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parked").finish_non_exhaustive()
    }
}

/// Starts a task again for a parked connection ([`Conn::run_from`] with [`Start::Unparked`]).
/// Called from any thread, possibly from the I/O driver: it must only hand the connection to
/// its runtime (spawn, or queue for a task that spawns), never run it.
pub(crate) type Reviver<X> = Arc<dyn Fn(Arc<Conn<X>>) + Send + Sync>;

/// How a connection task starts ([`Conn::run_from`]).
#[derive(Debug)]
pub(crate) enum Start {
    /// A new connection: the sink hears `connected`.
    Fresh,
    /// Moved in from another master, with its undecoded input.
    Moved(bytes::Bytes),
    /// A parked connection woken up: it takes its decoder back.
    Unparked,
}

/// What woke a connection task's wait ([`Conn::run_from`]).
enum Woke {
    /// `Conn::kick`: output, a close, a move or an accepted upgrade.
    Kicked,
    /// The timer (backlog pause, drain limit, read deadline, idle check).
    Timer,
    /// The socket can be read (or has a FIN or an error) and/or written.
    Io { readable: bool, writable: bool },
    /// The socket's registration failed (the runtime is shutting down).
    Failed,
}

/// Why a connection task ended ([`Conn::run_from`]).
#[derive(Debug)]
pub(crate) enum Ended {
    /// The connection is over (the sink heard `closed`, `close_done` came): remove it.
    Done,
    /// Stopped for a handover: the caller owns what is left of it.
    Moved(Moved),
    /// Idle: it waits without a task, still in its table, until it is revived.
    Parked,
}

/// The waker of a parked connection. It holds the connection weakly: the socket's registration
/// keeps it after the connection is gone, and a strong reference would keep the connection
/// (and so the registration) alive for ever.
struct ParkWaker<X> {
    conn: std::sync::Weak<Conn<X>>,
    revive: Reviver<X>,
}

impl<X: Send + Sync + 'static> std::task::Wake for ParkWaker<X> {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        let Some(conn) = self.conn.upgrade() else {
            return;
        };
        let mut o = conn.out.lock();
        if o.parked.is_none() || o.unparking {
            return;
        }
        o.unparking = true;
        drop(o);
        (self.revive)(conn);
    }
}

impl Out {
    /// Whether something can be written to the socket now.
    fn pending(&self) -> bool {
        if self.h2 {
            return self.tls.as_ref().is_some_and(|t| t.wants_write());
        }
        match &self.tls {
            None => !self.buf.is_empty(),
            Some(t) => t.wants_write() || (!self.buf.is_empty() && !t.is_handshaking()),
        }
    }

    /// Output not yet on the socket (plaintext queued, or TLS records rustls holds).
    fn unsent(&self) -> bool {
        !self.buf.is_empty()
            || self.h2q.as_ref().is_some_and(|q| q.bytes > 0)
            || self.tls.as_ref().is_some_and(|t| t.wants_write())
    }
}

/// The socket as rustls's `Read`/`Write` (non-blocking: `WouldBlock` when not ready).
struct SockIo<'a>(&'a TcpStream);

impl io::Write for SockIo<'_> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.try_write(b)
    }
    fn write_vectored(&mut self, b: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.0.try_write_vectored(b)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Parts of a write to the socket of at most this many bytes together are joined and sent
/// with one `send` rather than a `writev` ([`Conn::write_now`]).
const JOIN_MAX: usize = 512;

thread_local! {
    /// Where [`Conn::write_now`] joins small parts.
    static JOINED: std::cell::RefCell<[u8; JOIN_MAX]> = const { std::cell::RefCell::new([0; JOIN_MAX]) };
}

/// How long a closing connection may take to read what is still queued for it before the
/// socket is shut down anyway (a client that stopped reading must not hold it for ever).
pub(crate) const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A client connection and its output buffer. `X` is what the [`EventSink`] keeps per
/// connection ([`EventSink::State`]).
#[derive(Debug)]
pub(crate) struct Conn<X = ()> {
    pub(crate) id: ConnId,
    pub(crate) listener: u16,
    pub(crate) remote: std::net::SocketAddr,
    stream: TcpStream,
    out: Mutex<Out>,
    /// Set by [`Conn::kick`] (under the `out` lock, then `Out::task` is woken), taken by the
    /// task's wait: why it was woken, without a waiter list to lock on every wake-up.
    kicked: std::sync::atomic::AtomicBool,
    pub(crate) shared: Shared,
    /// The connection's slot in `shared` (`Shared::slot_index`, found once).
    slot: Option<u32>,
    cap: usize,
    /// The sink's own per-connection state (the reactor's dispatch bookkeeping).
    pub(crate) state: X,
    /// The WebSocket protocol state once upgraded (`super::ws`; small and inline while
    /// parked between messages, [`WsSlot`]).
    pub(crate) ws: Mutex<WsSlot>,
    /// Writes queued with [`Conn::write_deferred`] go out through this process's flusher.
    flusher: Arc<Flusher<X>>,
    /// A TLS connection (`Out::tls` is set).
    tls: bool,
    /// An upgrade asked the task to stop at a safe point and hand the connection over.
    moving: std::sync::atomic::AtomicBool,
    /// The waker of this connection while parked ([`ParkWaker`]), made at its first park and
    /// kept: parking again allocates nothing (an allocation made as the task's cell is freed
    /// would split that hole, and the allocator's pages would hold a mix of live and free
    /// chunks it cannot give back).
    park_waker: std::sync::OnceLock<std::task::Waker>,
}

/// Why [`Conn::write`] refused data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriteError {
    Closed,
    Full,
    /// Raw bytes for an HTTP/2 connection: only responses to its streams
    /// ([`Conn::write_h2`]) go to it.
    Http2,
}

impl<X: Default> Conn<X> {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        id: ConnId,
        listener: u16,
        remote: std::net::SocketAddr,
        stream: TcpStream,
        shared: Shared,
        cap: usize,
        flusher: Arc<Flusher<X>>,
        tls: Option<rustls::ServerConnection>,
    ) -> Conn<X> {
        let handshaking = tls.is_some();
        Conn {
            id,
            listener,
            remote,
            stream,
            out: Mutex::new(Out {
                buf: BytesMut::new(),
                phase: Phase::Open,
                read_eof: false,
                io_error: false,
                closing_since: None,
                peer_fin: false,
                tls: tls.map(Box::new),
                handshaking,
                h2: false,
                h2q: None,
                parked: None,
                unparking: false,
                task: None,
            }),
            kicked: std::sync::atomic::AtomicBool::new(false),
            slot: shared.slot_index(id),
            shared,
            cap,
            state: X::default(),
            ws: Mutex::new(WsSlot::None),
            flusher,
            tls: handshaking,
            moving: std::sync::atomic::AtomicBool::new(false),
            park_waker: std::sync::OnceLock::new(),
        }
    }
}

impl<X> Conn<X> {
    /// Writes `data`, or queues what the socket does not take now.
    pub(crate) fn write(&self, data: &[u8]) -> Result<(), WriteError> {
        self.write_parts(&[data])
    }

    /// Writes `parts` one after the other (one `send`: small ones joined first, else one
    /// `writev`), or queues what the socket does not take now; as [`write`](Self::write) does
    /// with their concatenation.
    pub(crate) fn write_parts(&self, parts: &[&[u8]]) -> Result<(), WriteError> {
        let mut out = self.out.lock();
        if out.io_error || matches!(out.phase, Phase::Finishing | Phase::Moved) {
            return Err(WriteError::Closed);
        }
        let total = parts.iter().map(|p| p.len()).sum::<usize>();
        if out.buf.len() + total > self.cap {
            return Err(WriteError::Full);
        }
        if out.h2 {
            return Err(WriteError::Http2);
        }
        if self.tls {
            for p in parts {
                out.buf.extend_from_slice(p);
            }
            self.flush_out(&mut out);
            let (len, failed, left) = (out.buf.len(), out.io_error, out.pending());
            drop(out);
            self.set_out_bytes(len);
            // The task only needs waking for what the socket did not take (or a failure).
            if left || failed {
                self.kick();
            }
            return if failed {
                Err(WriteError::Closed)
            } else {
                Ok(())
            };
        }
        let mut sent = 0;
        if out.buf.is_empty() {
            match self.write_now(parts, total) {
                Ok(n) if n == total => return Ok(()),
                Ok(n) => sent = n,
                Err(_) => return self.write_failed(out),
            }
        }
        out.buf.reserve(total - sent);
        for p in parts {
            let skip = sent.min(p.len());
            sent -= skip;
            out.buf.extend_from_slice(&p[skip..]);
        }
        self.set_out_bytes(out.buf.len());
        drop(out);
        self.kick();
        Ok(())
    }

    /// Writes `parts` (`total` bytes) straight to the socket until all is sent or it would
    /// block: one `send` for one part, or for several that together fit in [`JOIN_MAX`]
    /// (joined in a per-thread buffer first), `writev` for more. Returns the bytes sent.
    fn write_now(&self, parts: &[&[u8]], total: usize) -> io::Result<usize> {
        let mut sent = 0;
        while sent < total {
            let r = match parts {
                [one] => self.stream.try_write(&one[sent..]),
                // Small parts from their start (a prefix and an echo, a short response's head
                // and body, a frame's header and payload): one `send` of their concatenation.
                // The kernel takes one contiguous buffer through `send` for less than a
                // `writev` of two segments costs it (the file layer, the vector's import,
                // a copy per segment): ~15 % of the call in a loopback measurement, far more
                // than the copy of a few hundred bytes.
                // (The thread's buffer, not one on the stack: zeroing that cost more than the
                // copies.)
                _ if sent == 0 && total <= JOIN_MAX => JOINED.with_borrow_mut(|joined| {
                    let mut at = 0;
                    for p in parts {
                        joined[at..at + p.len()].copy_from_slice(p);
                        at += p.len();
                    }
                    self.stream.try_write(&joined[..total])
                }),
                // Two parts from their start (a prefix and the data, a head and a body): the
                // common case, without the general case's eight-slot array and walk.
                [a, b] if sent == 0 => self
                    .stream
                    .try_write_vectored(&[io::IoSlice::new(a), io::IoSlice::new(b)]),
                _ => {
                    // The parts from `sent` on, at most 8 per call.
                    let mut iov = [io::IoSlice::new(&[]); 8];
                    let (mut k, mut skip) = (0, sent);
                    for p in parts {
                        if skip >= p.len() {
                            skip -= p.len();
                            continue;
                        }
                        if k == iov.len() {
                            break;
                        }
                        iov[k] = io::IoSlice::new(&p[skip..]);
                        skip = 0;
                        k += 1;
                    }
                    self.stream.try_write_vectored(&iov[..k])
                }
            };
            match r {
                Ok(n) => {
                    count_out(n);
                    sent += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(sent)
    }

    /// The flusher's part: write what is queued; the connection task takes over when the
    /// socket is full, failed, or the connection is closing.
    pub(crate) fn flush_queued(&self) {
        let done = self.flush();
        let wake = {
            let o = self.out.lock();
            !done || o.io_error || o.phase != Phase::Open
        };
        if wake {
            self.kick();
        }
    }

    fn set_out_bytes(&self, n: usize) {
        if let Some(s) = self.shared.any_slot(self.id) {
            s.out_bytes
                .store(n as u64, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Whether the connection's deferred writes go through `flusher` (so that it belongs to
    /// the table that owns `flusher`).
    pub(crate) fn flushed_by(&self, flusher: &Arc<Flusher<X>>) -> bool {
        Arc::ptr_eq(&self.flusher, flusher)
    }

    /// Wakes the connection task (its protocol state changed elsewhere).
    pub(crate) fn wake(&self) {
        self.kick();
    }

    /// A write to the socket failed: the connection is broken; its task (woken) closes it.
    fn write_failed(&self, mut out: parking_lot::MutexGuard<'_, Out>) -> Result<(), WriteError> {
        out.io_error = true;
        drop(out);
        self.kick();
        Err(WriteError::Closed)
    }

    /// Wakes the connection task, or starts one again if the connection is parked. The
    /// flag is set under the output lock, so that a task about to park sees it
    /// ([`Conn::try_park`]), and before the task's waker (registered under that lock) is read:
    /// a task registers, then looks at the flag ([`Conn::take_kick`]), so a kick is either
    /// seen by that look or wakes the waker it registered. Kicks before the task looks are
    /// one (as a `Notify` permit is).
    fn kick(&self) {
        let o = self.out.lock();
        match (o.parked.is_some(), self.park_waker.get()) {
            // Parked: the waker was made at its first park (`try_park`).
            (true, Some(w)) => {
                drop(o);
                w.wake_by_ref();
            }
            _ => {
                self.kicked
                    .store(true, std::sync::atomic::Ordering::Release);
                if let Some(w) = &o.task {
                    w.wake_by_ref();
                }
            }
        }
    }

    /// The connection task's look at [`Conn::kick`]: registers `cx`'s waker as the task's
    /// (unless `mine`, the task's copy of what it registered last, says it already is: no
    /// lock then), then takes the flag. True: the task was kicked since it last took it.
    fn take_kick(&self, cx: &std::task::Context<'_>, mine: &mut Option<std::task::Waker>) -> bool {
        if !mine.as_ref().is_some_and(|m| m.will_wake(cx.waker())) {
            self.register_task(cx);
            *mine = Some(cx.waker().clone());
        }
        self.take_kicked()
    }

    /// Registers `cx`'s waker as the task's, for [`Conn::kick`] to wake (under the `out`
    /// lock; not cloned when the one registered would wake the same task).
    fn register_task(&self, cx: &std::task::Context<'_>) {
        let mut o = self.out.lock();
        if !o.task.as_ref().is_some_and(|t| t.will_wake(cx.waker())) {
            o.task = Some(cx.waker().clone());
        }
    }

    /// Takes the kick flag (after the task's waker was registered).
    fn take_kicked(&self) -> bool {
        use std::sync::atomic::Ordering::{AcqRel, Acquire};
        // A plain load first: the flag is almost always clear (no locked instruction then).
        self.kicked.load(Acquire) && self.kicked.swap(false, AcqRel)
    }

    /// Forgets the task's waker if it is `w` (its task ended): a connection without a task
    /// holds no reference to a finished one. One registered since (by the task of a revived
    /// connection) stays.
    fn forget_task(&self, w: &std::task::Waker) {
        let mut o = self.out.lock();
        if o.task.as_ref().is_some_and(|t| t.will_wake(w)) {
            o.task = None;
        }
    }

    /// Whether the connection is parked (no task; [`Ended::Parked`]).
    #[cfg(test)]
    pub(crate) fn is_parked(&self) -> bool {
        self.out.lock().parked.is_some()
    }

    /// Asks to close after the queued output is written. Returns false if already closing.
    pub(crate) fn close(&self) -> bool {
        self.close_with(&[])
    }

    /// Like [`close`](Self::close), with a last word: `farewell` (a WebSocket Close frame) is
    /// queued after what is already queued, even past the output limit (it is why the
    /// connection closes). Returns false, queuing nothing, if already closing.
    pub(crate) fn close_with(&self, farewell: &[u8]) -> bool {
        let mut out = self.out.lock();
        if out.phase != Phase::Open {
            return false;
        }
        out.buf.extend_from_slice(farewell);
        out.phase = Phase::Draining;
        out.closing_since = Some(std::time::Instant::now());
        let len = out.buf.len();
        drop(out);
        self.set_out_bytes(len);
        self.kick();
        true
    }

    /// The client reads too slowly for what is queued for it (`buffer_output_size` is
    /// reached): close it after `farewell` (a WebSocket Close frame saying why), and log and
    /// count it once per connection.
    pub(crate) fn close_overflowed(&self, bytes: usize, farewell: &[u8]) {
        if self.close_with(farewell) {
            self.shared.count_overflow();
            tracing::warn!(
                fd = %self.id,
                refused_bytes = bytes,
                limit = self.cap,
                "output buffer full: the client reads too slowly; closing it"
            );
        }
    }

    /// Whether output is queued (not yet taken by the socket) on a connection that can still
    /// write it (HTTP/2: or its driver is still finishing after a close).
    pub(crate) fn has_output(&self) -> bool {
        let o = self.out.lock();
        // An HTTP/2 connection asked to close still owes its GOAWAY and its open streams.
        (o.unsent() || (o.h2 && o.phase == Phase::Draining)) && !o.io_error
    }

    /// Whether the connection ended by the client's FIN alone (no error, no server close), so
    /// that it is still writable until [`Conn::close_done`]: a half-close.
    pub(crate) fn half_closed(&self) -> bool {
        let o = self.out.lock();
        o.peer_fin && !o.io_error
    }

    /// The application's `on_close` has run: finish.
    pub(crate) fn close_done(&self) {
        // A WebSocket Close held back for replies to earlier messages goes after them.
        super::ws::flush_final_at_close(self);
        let mut out = self.out.lock();
        out.phase = Phase::Finishing;
        out.closing_since
            .get_or_insert_with(std::time::Instant::now);
        drop(out);
        self.kick();
    }

    /// Writes queued output; returns true when the queue is empty.
    fn flush(&self) -> bool {
        let mut out = self.out.lock();
        if out.h2 {
            // The HTTP/2 driver writes; wake it.
            return false;
        }
        if self.tls {
            self.flush_out(&mut out);
            let (len, done) = (out.buf.len(), !out.unsent() || out.io_error);
            drop(out);
            self.set_out_bytes(len);
            return done;
        }
        while !out.buf.is_empty() {
            match self.stream.try_write(&out.buf) {
                Ok(n) => {
                    count_out(n);
                    let _ = out.buf.split_to(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    out.io_error = true;
                    out.buf.clear();
                }
            }
        }
        if out.buf.is_empty() && big_allocation(&mut out.buf) {
            out.buf = BytesMut::new();
        }
        let len = out.buf.len();
        drop(out);
        self.set_out_bytes(len);
        len == 0
    }

    /// The connection task, for a fresh connection ([`Start::Fresh`]: the sink hears
    /// `connected`), one that moved in from another master ([`Start::Moved`] with its
    /// undecoded input: no `connected`, the bytes are decoded first), or a parked one woken
    /// up ([`Start::Unparked`]: it takes its decoder back).
    ///
    /// Returns [`Ended::Moved`] when it stopped for a handover ([`Conn::request_move`]): the
    /// connection is then [`Phase::Moved`] and the caller owns what is left of it;
    /// [`Ended::Parked`] when it stopped because the connection is idle
    /// ([`ConnConfig::park_idle_after`]): the connection stays in its table, with no task, until
    /// its socket is readable or something is asked of it, and then `revive` is called with it
    /// (from any thread) to run `run_from(.., Start::Unparked, ..)` again.
    pub(crate) async fn run_from<S: EventSink<State = X>, R: std::ops::Deref<Target = S>>(
        self: Arc<Self>,
        sink: R,
        cfg: &ConnConfig,
        start: Start,
        revive: &Reviver<X>,
    ) -> Ended
    where
        X: Send + Sync + 'static,
    {
        let hs_deadline = {
            let o = self.out.lock();
            o.handshaking.then(|| {
                std::time::Instant::now()
                    + cfg
                        .tls
                        .as_ref()
                        .map_or(std::time::Duration::from_secs(10), |t| t.handshake_timeout)
            })
        };
        let mut decoder = match start {
            Start::Unparked => self.unpark(cfg).unwrap_or_else(|| Inbound::new(cfg)),
            Start::Moved(_) => Inbound::resumed(cfg, &self),
            _ => Inbound::new(cfg),
        };
        let mut inbuf = BytesMut::new();
        match start {
            Start::Fresh if hs_deadline.is_none() => sink.connected(&self),
            Start::Moved(unread) if !unread.is_empty() => {
                if let Verdict::Close = decoder.feed(&self, &*sink, &unread, &mut inbuf) {
                    self.close();
                }
            }
            _ => {}
        }
        // One timer for every reason to wake up without I/O, reset rather than rebuilt, and
        // only when its deadline changes (`armed`: what it is set to; `None` once it fired).
        let timer = tokio::time::sleep_until(tokio::time::Instant::now());
        tokio::pin!(timer);
        let mut armed: Option<std::time::Instant> = None;
        // The waker this task registered for `kick` (`take_kick`): registered again only when
        // the task's waker changes, and forgotten when the task ends, however it ends.
        let mut mine = TaskWaker {
            conn: &self,
            waker: None,
        };
        // A timer polled since it was (re)set or last fired holds this task's waker: it need
        // not be polled again until the task is woken (see the wait below).
        let mut timer_fresh = true;
        // The idle check: armed once (`park_at`), and when it comes, the connection parks if it
        // did nothing since (`active` counts as a turn counter would: any turn not woken by the
        // timer), else it is armed again. A busy connection pays no clock read and no timer
        // reset per turn for it.
        let mut park_at: Option<std::time::Instant> = None;
        let mut active = false;
        // The idle check came with nothing done since it was armed: park at the next look.
        let mut park_due = false;
        loop {
            let (phase, pending, read_eof, io_error, handshaking) = {
                let o = self.out.lock();
                (o.phase, o.pending(), o.read_eof, o.io_error, o.handshaking)
            };
            let pending = pending && !io_error;
            if handshaking && (phase != Phase::Open || read_eof || io_error) {
                // The sink never heard of it: no `closed` either.
                tracing::debug!(fd = %self.id, remote = %self.remote, "TLS connection ended before its handshake finished");
                let _ = socket2::SockRef::from(&self.stream).shutdown(std::net::Shutdown::Both);
                return Ended::Done;
            }
            match phase {
                Phase::Open if read_eof || io_error => {
                    let mut o = self.out.lock();
                    o.phase = Phase::Closing;
                    o.peer_fin = !io_error;
                    drop(o);
                    sink.closed(&self);
                    continue;
                }
                Phase::Draining if !pending => {
                    let _ = self.stream_shutdown();
                    self.out.lock().phase = Phase::Closing;
                    sink.closed(&self);
                    continue;
                }
                Phase::Finishing if !pending => {
                    let _ = self.stream_shutdown();
                    return Ended::Done;
                }
                _ => {}
            }
            let moving = phase == Phase::Open
                && !read_eof
                && !io_error
                && !handshaking
                && self.moving.load(std::sync::atomic::Ordering::Acquire);
            let mut quiescing = false;
            if moving {
                match decoder.movable(&self, &inbuf) {
                    Movable::Now(proto) if !sink.busy(&self) => {
                        let mut o = self.out.lock();
                        if o.phase == Phase::Open && !o.read_eof && !o.io_error {
                            o.phase = Phase::Moved;
                            drop(o);
                            return Ended::Moved(Moved {
                                unread: inbuf.split().freeze(),
                                proto,
                            });
                        }
                    }
                    // Events in flight: wait for them (their replies land here first), reading
                    // nothing more.
                    Movable::Now(_) => quiescing = true,
                    // Mid-request: read on until it is whole.
                    Movable::Later => {}
                    // HTTP/2, pending upgrade, WebSocket with deflate context: it drains here.
                    Movable::Never => self.cancel_move(),
                }
            }
            let mut want_read = phase == Phase::Open && !read_eof && !io_error && !decoder.paused();
            let backlogged = want_read && sink.backlogged(&self);
            if backlogged {
                want_read = false;
            }
            if quiescing {
                want_read = false;
            }
            let deadline = if handshaking {
                hs_deadline
            } else {
                decoder.deadline(&self).filter(|_| want_read)
            };
            let drain_by = if pending && matches!(phase, Phase::Draining | Phase::Finishing) {
                self.out.lock().closing_since.map(|t| t + DRAIN_TIMEOUT)
            } else {
                None
            };
            // Reasons to wake up without I/O: a backlog or a move waiting on the worker (looked
            // at again every 2 ms), the drain limit, the read deadline.
            let backlog_at = (backlogged || quiescing)
                .then(|| std::time::Instant::now() + std::time::Duration::from_millis(2));
            let wake_at = [backlog_at, drain_by, deadline].into_iter().flatten().min();
            // Idle (nothing queued either way, nothing due, nothing partial): after
            // `park_idle_after` of this the task ends and the connection waits without one.
            let parkable = phase == Phase::Open
                && want_read
                && !pending
                && !read_eof
                && !io_error
                && !handshaking
                && !moving
                && wake_at.is_none()
                && inbuf.is_empty()
                && !self.tls
                && decoder.parkable();
            if let (true, Some(after)) = (parkable, cfg.park_idle_after) {
                if after.is_zero() || park_due {
                    // A kick that came meanwhile stays set: the wait below sees it.
                    if self.try_park(&mut decoder, revive) {
                        return Ended::Parked;
                    }
                }
                if park_at.is_none() || park_due {
                    park_at = Some(std::time::Instant::now() + after);
                    active = false;
                }
            }
            park_due = false;
            // While it cannot park (a request in flight, output queued) the idle check waits;
            // when it can again, a check already due finds it active and is armed again.
            let park_at_now = park_at.filter(|_| parkable);
            let wake_at = match (wake_at, park_at_now) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            if let Some(t) = wake_at {
                if armed != Some(t) {
                    timer.as_mut().reset(t.into());
                    armed = Some(t);
                    timer_fresh = true;
                }
            }
            // Wait for a kick, the timer, or the socket (in that order when several are
            // ready). A kick is a flag (`take_kick`: a waker comparison and a load, no waiter
            // list to lock). The timer keeps the waker it was last polled with (this task's),
            // so it is polled only when fresh (reset since) or when it may have fired (it left
            // the timer wheel: `is_elapsed`, one atomic load, where a poll costs a budget check
            // and a waker comparison), on any look, so that a timer that fired on a turn that
            // ended for another reason is not left waiting for a wake-up it already gave.
            // Readiness is polled per direction (`poll_read_ready`: the socket's own waker
            // slot, no waiter list).
            let woke = std::future::poll_fn(|cx| {
                if self.take_kick(cx, &mut mine.waker) {
                    return Poll::Ready(Woke::Kicked);
                }
                if wake_at.is_some() && (timer_fresh || timer.is_elapsed()) {
                    if timer.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Woke::Timer);
                    }
                    timer_fresh = false;
                }
                let mut io = (false, false);
                if want_read {
                    match self.stream.poll_read_ready(cx) {
                        Poll::Ready(Ok(())) => io.0 = true,
                        Poll::Ready(Err(_)) => return Poll::Ready(Woke::Failed),
                        Poll::Pending => {}
                    }
                }
                if pending {
                    match self.stream.poll_write_ready(cx) {
                        Poll::Ready(Ok(())) => io.1 = true,
                        Poll::Ready(Err(_)) => return Poll::Ready(Woke::Failed),
                        Poll::Pending => {}
                    }
                }
                match io {
                    (false, false) => Poll::Pending,
                    (readable, writable) => Poll::Ready(Woke::Io { readable, writable }),
                }
            })
            .await;
            match woke {
                Woke::Kicked => {
                    active = true;
                    if let Verdict::Close = decoder.resume(&self, &*sink, &mut inbuf) {
                        self.close();
                    }
                }
                Woke::Timer => {
                    armed = None;
                    let now = std::time::Instant::now();
                    if park_at_now.is_some_and(|t| now >= t) {
                        if active {
                            // Something happened since it was armed: arm it again from now.
                            park_at = Some(now + cfg.park_idle_after.unwrap_or_default());
                            active = false;
                        } else {
                            park_due = true;
                        }
                    } else if drain_by.is_some_and(|t| now >= t) {
                        tracing::debug!(fd = %self.id, "the client did not read its last output in time; cutting the connection");
                        let mut o = self.out.lock();
                        o.io_error = true;
                        o.buf.clear();
                    } else if deadline.is_some_and(|t| now >= t) {
                        if handshaking {
                            tracing::debug!(fd = %self.id, remote = %self.remote, "TLS handshake timeout; closing");
                            self.out.lock().io_error = true;
                        } else if decoder.timed_out(&self) {
                            self.close();
                        }
                    }
                    // Else the backlog pause is over: look again.
                }
                Woke::Failed => {
                    active = true;
                    self.out.lock().io_error = true;
                }
                Woke::Io { readable, writable } => {
                    active = true;
                    if writable {
                        self.flush();
                    }
                    if !readable {
                        continue;
                    }
                    // No read buffer of its own while idle: a thread's spare one is lent
                    // for the read and taken back if the decoder consumed everything.
                    // (A raw stream reads into a buffer of its own: `read_raw`.)
                    let raw = matches!(decoder, Inbound::Raw);
                    if !raw {
                        borrow_spare(&mut inbuf);
                    }
                    self.read_some(&*sink, &mut decoder, &mut inbuf);
                    if !raw {
                        return_spare(&mut inbuf);
                    }
                    if let Inbound::H2(stream1) = &mut decoder {
                        let conf = cfg.http.as_ref().map(|h| h.h2.clone()).unwrap_or_default();
                        let stream1 = stream1.take();
                        // Boxed: the HTTP/2 driver's state is kilobytes, and every connection's
                        // task would carry room for it inline.
                        Box::pin(super::h2::serve(
                            &self,
                            &*sink,
                            &conf,
                            std::mem::take(&mut inbuf),
                            stream1,
                        ))
                        .await;
                        return Ended::Done;
                    }
                }
            }
        }
    }

    fn read_some<S: EventSink<State = X>>(
        self: &Arc<Self>,
        sink: &S,
        decoder: &mut Inbound,
        inbuf: &mut BytesMut,
    ) {
        thread_local! {
            static SCRATCH: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0u8; 64 * 1024]);
        }
        if self.is_tls() {
            return self.read_some_tls(sink, decoder, inbuf);
        }
        if matches!(decoder, Inbound::Raw) {
            return self.read_raw(sink);
        }
        // A few reads per wake-up at most, so that backpressure and other connections get
        // a look in while a client streams a large body.
        let mut reads = 4;
        // A buffer with room (the lent spare has at least `SPARE_ROOM`) takes the first read
        // itself: no copy out of the scratch buffer. A read that fills it goes on into the
        // scratch buffer (64 KiB at a time).
        let room = inbuf.capacity() - inbuf.len();
        if room >= SPARE_ROOM {
            match self.read_into(room, inbuf) {
                Ok(0) => return,
                Ok(n) => {
                    // The bytes are in `inbuf` already.
                    if let Verdict::Close = decoder.feed(self, sink, &[], inbuf) {
                        self.close();
                        return;
                    }
                    if n < room {
                        return;
                    }
                    reads -= 1;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.read_failed(&e),
            }
        }
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            for _ in 0..reads {
                match self.try_read_short(&mut scratch[..]) {
                    Ok(0) => {
                        self.out.lock().read_eof = true;
                        return;
                    }
                    Ok(n) => {
                        self.note_read(n);
                        if let Verdict::Close = decoder.feed(self, sink, &scratch[..n], inbuf) {
                            self.close();
                            return;
                        }
                        if n < scratch.len() {
                            return;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return self.read_failed(&e),
                }
            }
        })
    }

    /// A raw stream's read: straight into the thread's raw read buffer (`RAW_IN`), each read
    /// handed on as a `Bytes` split off it (no copy, no allocation per read). Reads start
    /// again at the allocation's start once past its first 4 KiB if every `Bytes` split from
    /// it was dropped (`BytesMut::try_reclaim` on a unique buffer); one the application keeps keeps that
    /// buffer (64 KiB) alive, later reads follow it, and the thread takes a new one when it is
    /// nearly full. The buffer is never
    /// more than `RAW_READ` (nothing is appended to it but reads into its room), so it needs
    /// none of the spare buffer's size checks (`borrow_spare`), which cost more than the
    /// read's bookkeeping itself.
    fn read_raw<S: EventSink<State = X>>(self: &Arc<Self>, sink: &S) {
        thread_local! {
            // `None` rather than an empty `BytesMut`: a constant initial value (no lazy
            // initialisation to check on each access), and putting the buffer back drops a
            // `None`, not an empty buffer.
            static RAW_IN: std::cell::Cell<Option<BytesMut>> = const { std::cell::Cell::new(None) };
        }
        // (`with` and the cell's own methods: `LocalKey::set` goes through a lazy-init path.)
        let mut buf = RAW_IN.with(|b| b.take()).unwrap_or_default();
        self.read_raw_into(sink, &mut buf);
        RAW_IN.with(|b| b.set(Some(buf)));
    }

    fn read_raw_into<S: EventSink<State = X>>(self: &Arc<Self>, sink: &S, inbuf: &mut BytesMut) {
        /// The read buffer's size (as the scratch buffer of the other protocols).
        const RAW_READ: usize = 64 * 1024;
        /// Below this much room left, the buffer is reclaimed (or replaced) before a read.
        const RAW_MIN_ROOM: usize = 4 * 1024;
        /// Reads follow each other in the buffer's first this many bytes before it is
        /// reclaimed (so reclaimed once every few dozen small reads, not before each one).
        const RAW_NEAR: usize = 4 * 1024;
        for _ in 0..4 {
            // Reads keep to the buffer's first page when the previous ones were dropped (an
            // echo's were: written out before the next read), so a stream of small reads keeps
            // to the same few cache lines instead of walking 64 KiB of them. `try_reclaim`
            // moves back to the start of a buffer no split of which is alive (an atomic load:
            // no allocation, no copy, since nothing is left in it); one still shared (a read
            // the application or the master's unacknowledged ring holds) is read on after the
            // last read, and replaced once nearly full. It is tried only once the reads have
            // gone past `RAW_NEAR`: a reclaim costs ~50 instructions (`reserve_inner` and a
            // copy of nothing), more than the rest of the read's bookkeeping.
            if inbuf.capacity() + RAW_NEAR < RAW_READ
                && !inbuf.try_reclaim(RAW_READ)
                && inbuf.capacity() < RAW_MIN_ROOM
            {
                inbuf.reserve(RAW_READ);
            }
            let room = inbuf.capacity() - inbuf.len();
            match self.read_into(room, inbuf) {
                Ok(0) => return,
                Ok(n) => {
                    sink.data(self, inbuf.split().freeze());
                    if n < room {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return self.read_failed(&e),
            }
        }
    }

    /// One plain read into `inbuf`'s spare room (at most `room` bytes): `Ok(0)` is the peer's
    /// FIN (noted in `read_eof`), more is counted ([`note_read`](Self::note_read)).
    #[inline(always)]
    fn read_into(&self, room: usize, inbuf: &mut BytesMut) -> io::Result<usize> {
        let n = self.try_read_with(room, |s| crate::sys::recv_spare(s, inbuf))?;
        if n == 0 {
            self.out.lock().read_eof = true;
        } else {
            self.note_read(n);
        }
        Ok(n)
    }

    /// A plain read of `n` bytes: counted in the metrics and the connection's last receive time.
    fn note_read(&self, n: usize) {
        if let Some(m) = crate::ipc::metrics::slot() {
            m.bytes_in
                .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        }
        self.shared.touch_recv_at(self.slot);
    }

    /// A plain read failed: nothing more to read now (`WouldBlock`), or the connection broke.
    fn read_failed(&self, e: &io::Error) {
        if e.kind() != io::ErrorKind::WouldBlock {
            self.out.lock().io_error = true;
        }
    }

    pub(super) fn is_tls(&self) -> bool {
        self.tls
    }

    fn read_some_tls<S: EventSink<State = X>>(
        self: &Arc<Self>,
        sink: &S,
        decoder: &mut Inbound,
        inbuf: &mut BytesMut,
    ) {
        thread_local! {
            static BUFS: std::cell::RefCell<(Vec<u8>, Vec<u8>)> =
                std::cell::RefCell::new((vec![0u8; 64 * 1024], Vec::new()));
        }
        BUFS.with(|b| {
            let (scratch, plain) = &mut *b.borrow_mut();
            for _ in 0..4 {
                plain.clear();
                match self.read_tls(scratch, plain) {
                    Ok((done, n)) => {
                        if done {
                            self.shared.set_tls_peer(self.id, self.peer_fingerprint());
                            sink.connected(self);
                            if self.alpn_h2() {
                                decoder.switch_h2();
                            }
                        }
                        if !plain.is_empty() {
                            if let Verdict::Close = decoder.feed(self, sink, plain, inbuf) {
                                self.close();
                                return;
                            }
                        }
                        if n < scratch.len() || self.out.lock().read_eof {
                            return;
                        }
                    }
                    Err(TlsReadError::Eof) => {
                        self.out.lock().read_eof = true;
                        return;
                    }
                    Err(TlsReadError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => return,
                    Err(TlsReadError::Io(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(TlsReadError::Io(_)) => {
                        self.out.lock().io_error = true;
                        return;
                    }
                    Err(TlsReadError::Tls(reason)) => {
                        tracing::debug!(fd = %self.id, remote = %self.remote, %reason, "TLS error; closing the connection");
                        return;
                    }
                }
            }
        })
    }

    /// TLS: moves queued plaintext into rustls (once the handshake is done) and rustls's
    /// records to the socket, until the socket is full or nothing is left.
    fn flush_out(&self, out: &mut Out) {
        let Out {
            buf,
            tls,
            io_error,
            h2,
            ..
        } = out;
        let Some(tls) = tls.as_mut() else { return };
        while !*io_error {
            if tls.wants_write() {
                match tls.write_tls(&mut SockIo(&self.stream)) {
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        *io_error = true;
                        buf.clear();
                    }
                }
            } else if !*h2 && !buf.is_empty() && !tls.is_handshaking() {
                use std::io::Write;
                match tls.writer().write(buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let _ = buf.split_to(n);
                    }
                }
            } else {
                break;
            }
        }
        if buf.is_empty() && buf.capacity() > 64 * 1024 {
            *buf = BytesMut::new();
        }
    }

    /// TLS: reads what the socket has into rustls, answers the handshake, and returns the
    /// plaintext in `plain`. `Ok(true)`: the handshake just finished. Errors (a bad record, a
    /// refused client certificate, not TLS at all) are the caller's to log; rustls's alert
    /// is sent first.
    fn read_tls(
        &self,
        scratch: &mut [u8],
        plain: &mut Vec<u8>,
    ) -> Result<(bool, usize), TlsReadError> {
        let n = match self.try_read_short(scratch) {
            Ok(0) => return Err(TlsReadError::Eof),
            Ok(n) => n,
            Err(e) => return Err(TlsReadError::Io(e)),
        };
        self.shared.touch_recv(self.id);
        let mut out = self.out.lock();
        let was = out.handshaking;
        let mut data = &scratch[..n];
        let mut closed = false;
        let mut failed = None;
        {
            let tls = out.tls.as_mut().expect("a TLS connection");
            while !data.is_empty() {
                if let Err(e) = tls.read_tls(&mut data) {
                    failed = Some(e.to_string());
                    break;
                }
                match tls.process_new_packets() {
                    Ok(st) => {
                        closed |= st.peer_has_closed();
                    }
                    Err(e) => {
                        failed = Some(e.to_string());
                        break;
                    }
                }
                // Copied once, straight out of rustls' buffer (no zero-filled scratch space).
                // An empty chunk: the peer's close_notify. An error: nothing more for now
                // (WouldBlock), or the peer closed without close_notify.
                let mut r = tls.reader();
                loop {
                    match std::io::BufRead::fill_buf(&mut r) {
                        Ok([]) => {
                            closed = true;
                            break;
                        }
                        Ok(chunk) => {
                            let k = chunk.len();
                            plain.extend_from_slice(chunk);
                            std::io::BufRead::consume(&mut r, k);
                        }
                        Err(_) => break,
                    }
                }
            }
        }
        self.flush_out(&mut out);
        if let Some(reason) = failed {
            out.io_error = true;
            return Err(TlsReadError::Tls(reason));
        }
        let done = was && !out.tls.as_ref().is_some_and(|t| t.is_handshaking());
        if done {
            out.handshaking = false;
        }
        if closed {
            out.read_eof = true;
        }
        Ok((done, n))
    }

    /// TLS: the client and the server agreed on HTTP/2 by ALPN.
    fn alpn_h2(&self) -> bool {
        let out = self.out.lock();
        out.tls
            .as_ref()
            .and_then(|t| t.alpn_protocol())
            .is_some_and(|p| p == b"h2")
    }

    /// TLS: the verified client certificate's SHA-256, if the client presented one.
    fn peer_fingerprint(&self) -> Option<[u8; 32]> {
        let out = self.out.lock();
        let c = out.tls.as_ref()?.peer_certificates()?.first()?;
        Some(super::tls::fingerprint(c))
    }

    /// `try_read` that also forgets the socket's read readiness when the read came back short
    /// (the kernel buffer is drained), as tokio's own `read` does: the next `readable()` then
    /// waits for epoll instead of costing a `recv` that only says `EAGAIN`. Readiness that
    /// arrived after the read is kept (tokio compares the readiness tick).
    fn try_read_short(&self, buf: &mut [u8]) -> io::Result<usize> {
        let cap = buf.len();
        self.try_read_with(cap, |s| {
            rustix::net::recv(s, &mut *buf, rustix::net::RecvFlags::empty())
                .map(|(n, _)| n)
                .map_err(io::Error::from)
        })
    }

    /// [`Self::try_read_short`] with the read itself given: `read` receives at most `cap`
    /// bytes from the socket.
    fn try_read_with(
        &self,
        cap: usize,
        mut read: impl FnMut(&TcpStream) -> io::Result<usize>,
    ) -> io::Result<usize> {
        let mut got = 0;
        let r = self.stream.try_io(tokio::io::Interest::READABLE, || {
            let n = read(&self.stream)?;
            got = n;
            if n > 0 && n < cap {
                // Short read: report "would block" so tokio clears the readiness; the bytes
                // are in `got`.
                return Err(io::ErrorKind::WouldBlock.into());
            }
            Ok(n)
        });
        match r {
            // Bytes were read: the error is the "would block" made above (nothing else can
            // fail after a read), so its kind need not be looked at.
            Err(_) if got > 0 => Ok(got),
            r => r,
        }
    }

    /// Whether the connection speaks HTTP/2 ([`super::h2`]).
    pub(crate) fn is_h2(&self) -> bool {
        self.out.lock().h2
    }

    /// Upgrade: asks the connection task to stop at its next safe point and hand the
    /// connection over ([`Conn::run_from`] returns). False (nothing asked) for what cannot
    /// move: TLS, HTTP/2, a connection that is closing or half-closed.
    pub(crate) fn request_move(&self) -> bool {
        let o = self.out.lock();
        if self.tls || o.h2 || o.phase != Phase::Open || o.read_eof || o.io_error {
            return false;
        }
        drop(o);
        self.moving
            .store(true, std::sync::atomic::Ordering::Release);
        self.kick();
        true
    }

    /// The move was given up (its task could not stop in time, or found it cannot move):
    /// the connection serves on here.
    pub(crate) fn cancel_move(&self) {
        self.moving
            .store(false, std::sync::atomic::Ordering::Release);
    }

    /// Whether a move was asked and not given up.
    pub(crate) fn move_requested(&self) -> bool {
        self.moving.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Takes the output not yet written (a moved connection's, for its snapshot).
    pub(crate) fn take_unsent(&self) -> bytes::Bytes {
        let mut o = self.out.lock();
        let b = o.buf.split().freeze();
        drop(o);
        self.set_out_bytes(0);
        b
    }

    /// Queues output that was already accepted elsewhere (a moved connection's unsent
    /// bytes, or those of a move that failed), even past the output limit.
    pub(crate) fn restore_unsent(&self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let mut o = self.out.lock();
        o.buf.extend_from_slice(data);
        let len = o.buf.len();
        drop(o);
        self.set_out_bytes(len);
        self.kick();
    }

    /// A move failed (the new master is gone): the connection is this process's again; its
    /// task must be started again with the unread bytes ([`Conn::run_from`]).
    pub(crate) fn unmove(&self, unsent: &[u8]) {
        self.cancel_move();
        let mut o = self.out.lock();
        if o.phase == Phase::Moved {
            o.phase = Phase::Open;
        }
        drop(o);
        self.restore_unsent(unsent);
    }

    /// A second descriptor of the socket (to send to a new master).
    pub(crate) fn dup_socket(&self) -> io::Result<std::os::fd::OwnedFd> {
        use std::os::fd::AsFd;
        self.stream.as_fd().try_clone_to_owned()
    }

    /// Resolves when the connection was kicked (output queued, close asked) since this was
    /// last resolved: for the HTTP/2 driver, which runs in the connection's task.
    pub(super) fn kicked(&self) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(move |cx| {
            self.register_task(cx);
            if self.take_kicked() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
    }

    /// HTTP/2 from now on: responses are parts of a stream's answer ([`Conn::write_h2`]),
    /// queued for the driver ([`super::h2`]).
    pub(super) fn enter_h2(&self) {
        self.out.lock().h2 = true;
    }

    /// Writes a part of a worker's response to HTTP/2 stream `stream`: queued for the driver
    /// ([`super::h2`]), which sends it on that stream, whatever the other streams do. An
    /// error gives the part back.
    pub(crate) fn write_h2(
        &self,
        stream: u32,
        part: super::h2resp::Part,
    ) -> Result<(), (WriteError, super::h2resp::Part)> {
        let mut out = self.out.lock();
        if out.io_error || out.phase == Phase::Finishing || !out.h2 {
            return Err((WriteError::Closed, part));
        }
        let q = out.h2q.get_or_insert_with(Default::default);
        if q.bytes + part.len() > self.cap {
            return Err((WriteError::Full, part));
        }
        q.push(stream, part);
        let len = q.bytes;
        drop(out);
        self.set_out_bytes(len);
        self.kick();
        Ok(())
    }

    /// HTTP/2: stream `stream`'s response cannot be completed (its worker died, or its handler
    /// stopped mid-response): the driver resets it.
    pub(crate) fn h2_abort(&self, stream: u32) {
        let mut out = self.out.lock();
        if out.h2 {
            out.h2q
                .get_or_insert_with(Default::default)
                .aborted
                .push(stream);
            drop(out);
            self.kick();
        }
    }

    /// The HTTP/2 driver's part: runs `f` on the queued responses.
    pub(super) fn h2_queued<R>(&self, f: impl FnOnce(&mut super::h2::Queued) -> R) -> R {
        let mut out = self.out.lock();
        let q = out.h2q.get_or_insert_with(Default::default);
        let r = f(q);
        let len = q.bytes;
        drop(out);
        self.set_out_bytes(len);
        r
    }

    /// Whether the server asked to close (stop, reload, `close`, heartbeat), and since when.
    pub(super) fn close_requested(&self) -> Option<std::time::Instant> {
        let o = self.out.lock();
        match o.phase {
            Phase::Open => None,
            _ => Some(o.closing_since.unwrap_or_else(std::time::Instant::now)),
        }
    }

    /// The HTTP/2 connection is over: tell the sink (once), then wait for [`Conn::close_done`] and shut the socket down.
    pub(super) async fn h2_finish<S: EventSink<State = X> + ?Sized>(self: &Arc<Self>, sink: &S) {
        {
            // Not half-closed: nothing written after this reaches the client.
            let mut o = self.out.lock();
            o.io_error = true;
            o.buf.clear();
            o.h2q = None;
            o.peer_fin = false;
            o.phase = Phase::Closing;
        }
        sink.closed(self);
        // `close_done` sets the phase, then kicks: a kick after this look is not lost (the flag
        // stays set until taken).
        while self.out.lock().phase != Phase::Finishing {
            self.kicked().await;
        }
        let _ = socket2::SockRef::from(&self.stream).shutdown(std::net::Shutdown::Both);
    }

    /// Reads for the HTTP/2 driver: plaintext (TLS decrypted) into `buf`; `Ok(0)` is the end.
    pub(super) fn h2_poll_read(
        &self,
        cx: &mut std::task::Context<'_>,
        buf: &mut [u8],
        plain: &mut Vec<u8>,
    ) -> std::task::Poll<io::Result<usize>> {
        loop {
            if !plain.is_empty() {
                let n = plain.len().min(buf.len());
                buf[..n].copy_from_slice(&plain[..n]);
                plain.drain(..n);
                return Poll::Ready(Ok(n));
            }
            if self.tls {
                let mut scratch = [0u8; 16 * 1024];
                match self.read_tls(&mut scratch, plain) {
                    Ok(_) => {
                        if plain.is_empty() && self.out.lock().read_eof {
                            return Poll::Ready(Ok(0));
                        }
                        continue;
                    }
                    Err(TlsReadError::Eof) => return Poll::Ready(Ok(0)),
                    Err(TlsReadError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(TlsReadError::Io(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(TlsReadError::Io(e)) => return Poll::Ready(Err(e)),
                    Err(TlsReadError::Tls(reason)) => {
                        return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, reason)))
                    }
                }
            } else {
                match self.try_read_short(buf) {
                    Ok(n) => {
                        if n > 0 {
                            self.shared.touch_recv(self.id);
                        }
                        return Poll::Ready(Ok(n));
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
            match self.stream.poll_read_ready(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {}
            }
        }
    }

    /// Writes for the HTTP/2 driver (TLS: encrypted first).
    pub(super) fn h2_poll_write(
        &self,
        cx: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        loop {
            if self.tls {
                let mut out = self.out.lock();
                self.flush_out(&mut out);
                if out.io_error {
                    return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
                }
                let tls = out.tls.as_mut().expect("a TLS connection");
                let n = io::Write::write(&mut tls.writer(), data)?;
                if n > 0 {
                    self.flush_out(&mut out);
                    return Poll::Ready(Ok(n));
                }
            } else {
                match self.stream.try_write(data) {
                    Ok(n) => return Poll::Ready(Ok(n)),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
            match self.stream.poll_write_ready(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {}
            }
        }
    }

    /// Flushes for the HTTP/2 driver (TLS records rustls still holds).
    pub(super) fn h2_poll_flush(
        &self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        loop {
            {
                let mut out = self.out.lock();
                self.flush_out(&mut out);
                if out.io_error {
                    return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
                }
                if !out.tls.as_ref().is_some_and(|t| t.wants_write()) {
                    return Poll::Ready(Ok(()));
                }
            }
            match self.stream.poll_write_ready(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {}
            }
        }
    }

    /// Shuts the write side down for the HTTP/2 driver (TLS: after close_notify).
    pub(super) fn h2_shutdown(&self) -> io::Result<()> {
        self.stream_shutdown()
    }

    fn stream_shutdown(&self) -> io::Result<()> {
        {
            let mut out = self.out.lock();
            if !out.io_error {
                if let Some(t) = out.tls.as_mut() {
                    t.send_close_notify();
                    self.flush_out(&mut out);
                }
            }
        }
        socket2::SockRef::from(&self.stream).shutdown(std::net::Shutdown::Write)
    }
}

impl<X: Send + Sync + 'static> Conn<X> {
    /// Parks the idle connection: `decoder`'s idle form waits in the connection (`decoder`
    /// is left `Raw`), a waker that revives it is registered for the socket's read
    /// readiness, and the task may end (`true`). Leaves `decoder` as it is and returns `false`
    /// (the task goes on) when something is already there: bytes to read, a notification,
    /// output or a close asked meanwhile.
    /// A kick given before is seen here and left set (the task's wait takes it).
    fn try_park(self: &Arc<Self>, decoder: &mut Inbound, revive: &Reviver<X>) -> bool {
        use std::task::{Context, Waker};
        if !decoder.parkable() {
            return false;
        }
        let ws = matches!(decoder, Inbound::Ws(_));
        let waker = self.park_waker.get_or_init(|| {
            Waker::from(Arc::new(ParkWaker {
                conn: Arc::downgrade(self),
                revive: revive.clone(),
            }))
        });
        if !matches!(
            self.stream.poll_read_ready(&mut Context::from_waker(waker)),
            Poll::Pending
        ) {
            return false;
        }
        let mut o = self.out.lock();
        // `kick` sets its flag under this lock: a kick given before it is seen here, one given
        // after it finds the connection parked and revives it.
        if self.kicked.load(std::sync::atomic::Ordering::Acquire)
            || o.phase != Phase::Open
            || o.pending()
            || o.read_eof
            || o.io_error
            || self.moving.load(std::sync::atomic::Ordering::Acquire)
        {
            return false;
        }
        let Some(idle) = decoder.park() else {
            return false;
        };
        o.parked = Some(Parked { decoder: idle });
        o.unparking = false;
        // No task from now on: kicks revive the connection (`park_waker`).
        o.task = None;
        drop(o);
        if ws {
            // After the `out` lock (writers take `ws` first, then `out`).
            super::ws::park(self);
        }
        true
    }
}

impl<X> Conn<X> {
    /// A parked connection's task starts again: its decoder (rebuilt from its idle form with
    /// `cfg`, the listener's configuration).
    fn unpark(&self, cfg: &ConnConfig) -> Option<Inbound> {
        let mut o = self.out.lock();
        o.unparking = false;
        let idle = o.parked.take()?.decoder;
        drop(o);
        Some(idle.wake(cfg))
    }
}

/// The waker a connection task registered for [`Conn::kick`] (its copy, [`Conn::take_kick`]),
/// forgotten by the connection when the task ends ([`Conn::run_from`] returns or is dropped).
struct TaskWaker<'a, X> {
    conn: &'a Conn<X>,
    waker: Option<std::task::Waker>,
}

impl<X> Drop for TaskWaker<'_, X> {
    fn drop(&mut self) {
        if let Some(w) = &self.waker {
            self.conn.forget_task(w);
        }
    }
}

/// The payload of a frame for [`Conn::write_frame`]: borrowed (copied if the socket does not
/// take it at once), or owned (then what the socket does not take can become the output
/// buffer itself, without a copy, when nothing else holds it).
pub(crate) enum FrameBody<'a> {
    Borrowed(&'a [u8]),
    Owned(Bytes),
}

impl FrameBody<'_> {
    /// The payload's bytes.
    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            FrameBody::Borrowed(b) => b,
            FrameBody::Owned(b) => b,
        }
    }
}

impl<X> Conn<X> {
    /// Like [`write`](Self::write) for `head` followed by `body` (a WebSocket frame header and
    /// its payload), without joining them first: with nothing queued they go to the socket in
    /// one `writev`; what the socket does not take is queued — an owned `body` held by no one
    /// else becomes the output buffer as it is, anything else is copied into it (reserved once,
    /// at its size). A large message so costs no copy on its way out, or at most one. On an
    /// error `body` is left with the caller.
    pub(crate) fn write_frame(
        &self,
        head: &[u8],
        body: &mut FrameBody<'_>,
    ) -> Result<(), WriteError> {
        let mut out = self.out.lock();
        if out.io_error || matches!(out.phase, Phase::Finishing | Phase::Moved) {
            return Err(WriteError::Closed);
        }
        let total = head.len() + body.as_slice().len();
        if out.buf.len() + total > self.cap {
            return Err(WriteError::Full);
        }
        if out.h2 {
            return Err(WriteError::Http2);
        }
        let (mut head_sent, mut body_sent) = (0, 0);
        if !self.tls && out.buf.is_empty() {
            let n = match self.write_now(&[head, body.as_slice()], total) {
                Ok(n) if n == total => return Ok(()),
                Ok(n) => n,
                Err(_) => return self.write_failed(out),
            };
            head_sent = n.min(head.len());
            body_sent = n - head_sent;
        }
        let adopt = head_sent == head.len() && out.buf.is_empty() && !self.tls;
        match body {
            FrameBody::Owned(b) if adopt => match std::mem::take(b).try_into_mut() {
                Ok(mut m) => {
                    m.advance(body_sent);
                    out.buf = m;
                }
                Err(b) => {
                    out.buf.reserve(b.len() - body_sent);
                    out.buf.extend_from_slice(&b[body_sent..]);
                }
            },
            _ => {
                let b = &body.as_slice()[body_sent..];
                out.buf.reserve(head.len() - head_sent + b.len());
                out.buf.extend_from_slice(&head[head_sent..]);
                out.buf.extend_from_slice(b);
            }
        }
        if self.tls {
            self.flush_out(&mut out);
        }
        let (len, failed) = (out.buf.len(), out.io_error);
        drop(out);
        self.set_out_bytes(len);
        self.kick();
        if failed {
            Err(WriteError::Closed)
        } else {
            Ok(())
        }
    }
}

impl<X: Send + Sync + 'static> Conn<X> {
    /// Queues `data` to be written by the process's [`Flusher`] (no syscall here): what
    /// several callers queue in one scheduler turn goes out in one write (WebSocket
    /// broadcasts).
    pub(crate) fn write_deferred(self: &Arc<Self>, data: &[u8]) -> Result<(), WriteError> {
        let mut out = self.out.lock();
        if out.io_error || matches!(out.phase, Phase::Finishing | Phase::Moved) {
            return Err(WriteError::Closed);
        }
        if out.buf.len() + data.len() > self.cap {
            return Err(WriteError::Full);
        }
        let was_empty = !out.unsent();
        out.buf.extend_from_slice(data);
        self.set_out_bytes(out.buf.len());
        drop(out);
        if was_empty {
            self.flusher.add(self.clone());
        }
        Ok(())
    }
}

/// Why reading a TLS connection stopped.
enum TlsReadError {
    Eof,
    Io(io::Error),
    Tls(String),
}

/// Counts `n` bytes written to a client (metrics on).
#[inline]
fn count_out(n: usize) {
    if let Some(m) = crate::ipc::metrics::slot() {
        m.bytes_out
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
    }
}

thread_local! {
    /// The read buffer lent to connections of this thread while they decode: a connection
    /// holds a buffer of its own only while a message is incomplete.
    /// `None` rather than an empty `BytesMut`: a constant initial value (no lazy
    /// initialisation to check on each access), and taking it out or putting it back drops a
    /// `None`, not an empty buffer.
    static SPARE: std::cell::Cell<Option<BytesMut>> = const { std::cell::Cell::new(None) };
    /// The end address of the allocation `SPARE` was last seen to span whole (reclaimed, and
    /// not big); 0 if none. A spare that still ends there is on that allocation, so needs no
    /// size check while it has room: requests are read one after the other into it, each
    /// head split off, without a reclaim per request.
    static SPARE_END: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// The spare read buffer's allocation is at least this big (once per thread; a request's head
/// is split off it, so reads walk through it and it is reclaimed once every few dozen
/// small requests instead of before each one).
const SPARE_SIZE: usize = 4 * 1024;
/// A spare on a known allocation is lent without a reclaim while it has this much room left.
const SPARE_ROOM: usize = 1024;

/// Where an empty buffer's room ends (the end of its allocation, for the spare read buffer).
fn end_of(b: &BytesMut) -> usize {
    b.as_ptr() as usize + b.capacity()
}

/// Lends the thread's spare buffer to `inbuf` if it has none. A spare with room on the
/// allocation last reclaimed is lent as it is. Otherwise it is first moved back to the start
/// of its allocation if no message split from it is still alive (the reclaim the read's copy
/// into it would otherwise make itself), which also shows the allocation's size: a spare on a
/// big one (a large message was split from it and is gone now) is dropped, not lent, and one
/// smaller than `SPARE_SIZE` grows to it. One still shared is lent with what room it has
/// (the copy takes a new allocation if it is short).
fn borrow_spare(inbuf: &mut BytesMut) {
    if inbuf.capacity() != 0 {
        return;
    }
    let mut b = SPARE.with(|s| s.take()).unwrap_or_default();
    if b.capacity() >= SPARE_ROOM && end_of(&b) == SPARE_END.with(|e| e.get()) {
        *inbuf = b;
        return;
    }
    // Asking for one byte more than the room takes `bytes`' reclaim path (the room alone
    // would satisfy a smaller request).
    let unique = b.try_reclaim(b.capacity() + 1);
    if b.capacity() > BIG_BUFFER {
        b = BytesMut::new();
    }
    let known = if b.capacity() < SPARE_ROOM {
        // Grown in place if it is unique, else a new allocation (the copy would take one).
        b.reserve(SPARE_SIZE);
        true
    } else {
        unique
    };
    SPARE_END.with(|e| e.set(if known { end_of(&b) } else { 0 }));
    *inbuf = b;
}

/// Above this many bytes an empty read or output buffer's allocation is given back instead
/// of kept for the next message.
const BIG_BUFFER: usize = 64 * 1024;

/// Gives an empty `inbuf`'s allocation back to the thread (reused by the next read if no
/// message split from it is still alive), so that an idle connection holds no buffer. A
/// buffer split to its very end (no room left: its last bytes went out as a message) goes
/// back too: the next read reclaims its allocation in place once that message is dropped,
/// instead of allocating a new one (and a new shared header) for every request.
fn return_spare(inbuf: &mut BytesMut) {
    if !inbuf.is_empty() {
        return;
    }
    let mut b = std::mem::take(inbuf);
    if b.capacity() == 0 {
        // Never in place of a spare with room (a buffer that never allocated is one too).
        SPARE.with(|s| {
            let cur = s.take();
            s.set(match cur {
                Some(c) if c.capacity() > 0 => Some(c),
                _ => Some(b),
            });
        });
    } else if end_of(&b) == SPARE_END.with(|e| e.get()) || !big_allocation(&mut b) {
        SPARE.with(|s| s.set(Some(b)));
    }
}

/// Whether an empty buffer sits on an allocation of more than 64 KiB. Its `capacity` alone
/// does not say: a buffer that was written out (or read from) and advanced to its end reports
/// only the room after its end, while it still holds the whole allocation (a large message's
/// 60 MiB would stay resident behind an empty output or read buffer). Reclaiming the room
/// before the start (without allocating) shows it.
fn big_allocation(b: &mut BytesMut) -> bool {
    b.capacity() > BIG_BUFFER || b.try_reclaim(BIG_BUFFER + 1)
}

/// A connection record (id 1, a table of 16 slots, 1 MiB output cap) on a real loopback
/// socket, and the client's end (5 s read timeout): for the owner's unit tests.
#[cfg(test)]
pub(crate) async fn socket_pair() -> (Arc<Conn>, std::net::TcpStream) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
    c.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let (s, remote) = l.accept().await.unwrap();
    let conn = Arc::new(Conn::new(
        ConnId(1),
        0,
        remote,
        s,
        crate::ipc::shared::Shared::new(1, 16).unwrap(),
        1 << 20,
        Arc::new(super::flusher::Flusher::default()),
        None,
    ));
    (conn, c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipc::Kind;
    use std::io::{Read, Write};
    use std::time::Duration;

    /// Echoes what it receives, records the events, and closes as a runtime does.
    #[derive(Default)]
    struct Echo {
        events: parking_lot::Mutex<Vec<String>>,
    }
    impl EventSink for Echo {
        type State = ();
        fn connected(&self, _: &Arc<Conn>) {
            self.events.lock().push("connect".into());
        }
        fn data(&self, conn: &Arc<Conn>, data: bytes::Bytes) {
            self.events
                .lock()
                .push(String::from_utf8_lossy(&data).into_owned());
            let _ = conn.write(&data);
        }
        fn stream_event(&self, _: &Arc<Conn>, _: u32, _: Kind, _: bytes::Bytes) {}
        fn closed(&self, conn: &Arc<Conn>) {
            self.events.lock().push("close".into());
            conn.close_done();
        }
    }

    async fn pair(park: Option<Duration>) -> (Arc<Conn>, std::net::TcpStream, ConnConfig) {
        let (conn, c) = socket_pair().await;
        let mut cfg = ConnConfig::new(
            super::super::inbound::Protocol::Stream,
            None,
            &crate::base::Settings::default(),
            false,
        );
        cfg.park_idle_after = park;
        (conn, c, cfg)
    }

    /// Runs `conn` as a reactor does: a parked connection gets a new task when woken; counts
    /// the tasks and says when the connection is over.
    /// A fresh recording sink, and the task counter and end signal [`spawn`] takes.
    fn echo_sink() -> (
        Arc<Echo>,
        Arc<std::sync::atomic::AtomicUsize>,
        Arc<tokio::sync::Notify>,
    ) {
        (
            Arc::new(Echo::default()),
            Arc::new(std::sync::atomic::AtomicUsize::new(0)),
            Arc::new(tokio::sync::Notify::new()),
        )
    }

    /// [`spawn`] of a new connection ([`Start::Fresh`]).
    fn spawn_fresh(
        conn: &Arc<Conn>,
        sink: &Arc<Echo>,
        cfg: ConnConfig,
        tasks: &Arc<std::sync::atomic::AtomicUsize>,
        done: &Arc<tokio::sync::Notify>,
    ) {
        spawn(
            conn.clone(),
            sink.clone(),
            Arc::new(cfg),
            Start::Fresh,
            tasks.clone(),
            done.clone(),
        );
    }

    fn spawn(
        conn: Arc<Conn>,
        sink: Arc<Echo>,
        cfg: Arc<ConnConfig>,
        start: Start,
        tasks: Arc<std::sync::atomic::AtomicUsize>,
        done: Arc<tokio::sync::Notify>,
    ) {
        tasks.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let rt = tokio::runtime::Handle::current();
        tokio::spawn(async move {
            let revive: Reviver<()> = {
                let (sink, cfg, tasks, done) =
                    (sink.clone(), cfg.clone(), tasks.clone(), done.clone());
                Arc::new(move |c| {
                    let _in = rt.enter();
                    spawn(
                        c,
                        sink.clone(),
                        cfg.clone(),
                        Start::Unparked,
                        tasks.clone(),
                        done.clone(),
                    );
                })
            };
            if let Ended::Done = conn.run_from(sink, &cfg, start, &revive).await {
                done.notify_one();
            }
        });
    }

    async fn until(what: impl Fn() -> bool) {
        tokio::time::timeout(Duration::from_secs(5), async {
            while !what() {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
        .await
        .expect("condition not reached in 5 s");
    }

    fn echo(c: &mut std::net::TcpStream, msg: &[u8]) {
        c.write_all(msg).unwrap();
        let mut got = vec![0u8; msg.len()];
        c.read_exact(&mut got).unwrap();
        assert_eq!(got, msg);
    }

    /// An idle connection parks (its task ends), and reading, a write from elsewhere and a
    /// server close all work on a parked one; nothing keeps it alive once it is over.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn parked_connection_wakes_for_input_output_and_close() {
        let (conn, mut c, cfg) = pair(Some(Duration::ZERO)).await;
        let (sink, tasks, done) = echo_sink();
        spawn_fresh(&conn, &sink, cfg, &tasks, &done);
        until(|| conn.is_parked()).await;
        for (i, msg) in [&b"one"[..], b"two", b"three"].iter().enumerate() {
            let c2 = &mut c;
            tokio::task::block_in_place(|| echo(c2, msg));
            until(|| conn.is_parked()).await;
            // One task to start with, one more for each message.
            assert_eq!(tasks.load(std::sync::atomic::Ordering::SeqCst), i + 2);
        }
        // Output from elsewhere while parked goes out at once.
        conn.write(b"push").unwrap();
        let mut got = [0u8; 4];
        tokio::task::block_in_place(|| c.read_exact(&mut got)).unwrap();
        assert_eq!(&got, b"push");
        // A server close wakes it up: it closes and ends.
        let ended = done.notified();
        assert!(conn.close());
        tokio::time::timeout(Duration::from_secs(5), ended)
            .await
            .expect("the connection ended");
        let mut rest = Vec::new();
        tokio::task::block_in_place(|| c.read_to_end(&mut rest)).unwrap();
        assert!(rest.is_empty());
        assert_eq!(
            *sink.events.lock(),
            ["connect", "one", "two", "three", "close"]
        );
        // No cycle through the socket's registration: the connection is freed.
        let weak = Arc::downgrade(&conn);
        drop(conn);
        until(|| weak.upgrade().is_none()).await;
    }

    /// A parked connection hears the client's FIN; one with `park_idle_after` = `None` never
    /// parks.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn parked_connection_sees_the_peer_close_and_none_never_parks() {
        let (conn, c, cfg) = pair(Some(Duration::ZERO)).await;
        let (sink, tasks, done) = echo_sink();
        let ended = done.clone();
        let ended = ended.notified();
        spawn_fresh(&conn, &sink, cfg, &tasks, &done);
        until(|| conn.is_parked()).await;
        drop(c);
        tokio::time::timeout(Duration::from_secs(5), ended)
            .await
            .expect("the connection ended");
        assert_eq!(*sink.events.lock(), ["connect", "close"]);

        let (conn, mut c, cfg) = pair(None).await;
        spawn_fresh(&conn, &Arc::new(Echo::default()), cfg, &tasks, &done);
        tokio::task::block_in_place(|| echo(&mut c, b"x"));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!conn.is_parked());
    }

    /// The idle check is armed once and looked at when it comes: a connection that keeps
    /// talking for several `park_idle_after` periods never parks (one task throughout), and
    /// parks once it goes quiet.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn busy_connection_does_not_park_until_quiet() {
        let after = Duration::from_millis(400);
        let (conn, mut c, cfg) = pair(Some(after)).await;
        let (sink, tasks, done) = echo_sink();
        spawn_fresh(&conn, &sink, cfg, &tasks, &done);
        // A message every 20 ms for 4 periods: never 400 ms without one.
        let start = std::time::Instant::now();
        while start.elapsed() < after * 4 {
            let c2 = &mut c;
            tokio::task::block_in_place(|| echo(c2, b"ping"));
            assert!(!conn.is_parked(), "parked while busy");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(tasks.load(std::sync::atomic::Ordering::SeqCst), 1);
        // Quiet now: it parks (within two periods), and still echoes after.
        until(|| conn.is_parked()).await;
        tokio::task::block_in_place(|| echo(&mut c, b"again"));
        assert_eq!(tasks.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    /// Records where each read's bytes are (and keeps them if asked), echoing them.
    struct Reads {
        keep: bool,
        seen: parking_lot::Mutex<Vec<(usize, usize)>>,
        kept: parking_lot::Mutex<Vec<bytes::Bytes>>,
    }
    impl EventSink for Reads {
        type State = ();
        fn connected(&self, _: &Arc<Conn>) {}
        fn data(&self, conn: &Arc<Conn>, data: bytes::Bytes) {
            self.seen.lock().push((data.as_ptr() as usize, data.len()));
            let _ = conn.write(&data);
            if self.keep {
                self.kept.lock().push(data);
            }
        }
        fn stream_event(&self, _: &Arc<Conn>, _: u32, _: Kind, _: bytes::Bytes) {}
        fn closed(&self, conn: &Arc<Conn>) {
            conn.close_done();
        }
    }

    /// A raw stream's reads land in the thread's raw read buffer and go on as `Bytes` split
    /// off it (no copy, no allocation per read): reads dropped before the next one (an echo)
    /// keep to the allocation's first page (the same few cache lines), starting again at its
    /// start once past it; reads the application keeps follow each other in one allocation,
    /// stay intact, and their memory is not reused.
    #[tokio::test(flavor = "current_thread")]
    async fn raw_reads_are_split_from_one_lent_buffer() {
        for keep in [false, true] {
            let (conn, c, cfg) = pair(None).await;
            let sink = Arc::new(Reads {
                keep,
                seen: Default::default(),
                kept: Default::default(),
            });
            let revive: Reviver<()> = Arc::new(|_| {});
            let task = tokio::spawn({
                let (conn, sink) = (conn.clone(), sink.clone());
                async move { conn.run_from(sink, &cfg, Start::Fresh, &revive).await }
            });
            // 200 messages of 1,000 bytes, each echoed before the next (one read each):
            // about three 64 KiB buffers' worth.
            let msgs: Vec<Vec<u8>> = (0..200u32)
                .map(|i| (0..1000u32).map(|j| (i * 7 + j) as u8).collect())
                .collect();
            let sent = msgs.clone();
            tokio::task::spawn_blocking(move || {
                let mut c = c;
                for m in &sent {
                    echo(&mut c, m);
                }
            })
            .await
            .expect("client");
            conn.close();
            tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .expect("the connection ended")
                .expect("task");
            let seen = sink.seen.lock().clone();
            assert_eq!(seen.len(), msgs.len(), "one read per message");
            if keep {
                let contiguous = seen
                    .windows(2)
                    .filter(|w| w[1].0 == w[0].0 + w[0].1)
                    .count();
                assert!(
                    contiguous >= 150,
                    "kept reads follow each other in one buffer ({contiguous} of 199)"
                );
                assert!(
                    !seen[1..].iter().any(|r| r.0 == seen[0].0),
                    "a kept read's memory is not reused"
                );
                let kept = sink.kept.lock();
                assert!(
                    kept.iter().map(|b| &b[..]).eq(msgs.iter().map(|m| &m[..])),
                    "kept reads are intact"
                );
            } else {
                // Reads follow each other in the allocation's first 4 KiB (`RAW_NEAR`), then
                // start again at its start: 1,000-byte reads at offsets 0, 1000 .. 5000.
                let start = seen[0].0;
                assert!(
                    seen.iter()
                        .all(|r| r.0 >= start && r.0 + r.1 <= start + 4096 + 1000),
                    "each read lands in the first page of the allocation the dropped reads used"
                );
                let at_start = seen.iter().filter(|r| r.0 == start).count();
                assert!(
                    at_start >= seen.len() / 6,
                    "reads start again at the allocation's start ({at_start} of {})",
                    seen.len()
                );
            }
        }
    }

    /// A waker that counts its wake-ups.
    struct Count(std::sync::atomic::AtomicUsize);
    impl std::task::Wake for Count {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
    fn counting() -> (Arc<Count>, std::task::Waker) {
        let c = Arc::new(Count(std::sync::atomic::AtomicUsize::new(0)));
        (c.clone(), std::task::Waker::from(c))
    }
    fn woken(c: &Count) -> usize {
        c.0.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// A kick wakes the waker registered by the last look, or, given before any look, is
    /// seen by the next one; kicks before a look count as one; a task whose waker changed is
    /// woken through its new one; a task that ended leaves no waker behind.
    #[tokio::test]
    async fn kick_wakes_the_task_or_waits_for_its_next_look() {
        use std::task::Context;
        // Polls a look with waker `w`: `true` when it found a kick.
        fn poll_with<F: Future>(look: std::pin::Pin<&mut F>, w: &std::task::Waker) -> bool {
            look.poll(&mut Context::from_waker(w)).is_ready()
        }
        let (conn, _c) = socket_pair().await;
        let (a, wa) = counting();
        let mut look = std::pin::pin!(conn.kicked());
        assert!(!poll_with(look.as_mut(), &wa));
        conn.kick();
        assert_eq!(woken(&a), 1, "the registered waker is woken");
        assert!(poll_with(look.as_mut(), &wa));
        let mut look = std::pin::pin!(conn.kicked());
        assert!(!poll_with(look.as_mut(), &wa));
        conn.kick();
        conn.kick();
        assert!(poll_with(look.as_mut(), &wa));
        assert!(
            !poll_with(look.as_mut(), &wa),
            "two kicks before a look are one"
        );
        // The task's waker changed: the kick goes to the new one.
        let (b, wb) = counting();
        assert!(!poll_with(look.as_mut(), &wb));
        let before = woken(&a);
        conn.kick();
        assert_eq!((woken(&a), woken(&b)), (before, 1));
        assert!(poll_with(look.as_mut(), &wb));
        // No task: a kick is kept for the next one's first look. (An ended task forgets only
        // its own waker.)
        conn.forget_task(&wa);
        assert!(conn.out.lock().task.is_some());
        conn.forget_task(&wb);
        assert!(conn.out.lock().task.is_none());
        conn.kick();
        assert_eq!(woken(&b), 1);
        let (c, wc) = counting();
        let mut look = std::pin::pin!(conn.kicked());
        assert!(look.as_mut().poll(&mut Context::from_waker(&wc)).is_ready());
        assert_eq!(woken(&c), 0);
    }

    /// Kicks from another thread racing the task's looks are never lost: each one the task
    /// must see (a counter it reads once woken) is seen, thousands of times over.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn kicks_from_another_thread_are_never_lost() {
        use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
        const N: u64 = 20_000;
        let (conn, _c) = socket_pair().await;
        let (said, seen) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let task = {
            let (conn, said, seen) = (conn.clone(), said.clone(), seen.clone());
            tokio::spawn(async move {
                while seen.load(SeqCst) < N {
                    conn.kicked().await;
                    seen.store(said.load(SeqCst), SeqCst);
                }
            })
        };
        let kicker = std::thread::spawn(move || {
            for i in 1..=N {
                said.store(i, SeqCst);
                conn.kick();
                let start = std::time::Instant::now();
                while seen.load(SeqCst) < i {
                    assert!(
                        start.elapsed() < Duration::from_secs(5),
                        "kick {i} was lost: the task never saw it"
                    );
                    std::thread::yield_now();
                }
            }
        });
        tokio::task::spawn_blocking(move || kicker.join())
            .await
            .unwrap()
            .expect("every kick seen");
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the task ended")
            .unwrap();
    }

    /// What an idle connection carries (printed with `--nocapture`).
    #[tokio::test]
    async fn idle_connection_sizes() {
        let (conn, _c, cfg) = pair(None).await;
        let revive: Reviver<()> = Arc::new(|_| {});
        let fut = conn.clone().run_from(
            std::rc::Rc::new(Echo::default()),
            &cfg,
            Start::Fresh,
            &revive,
        );
        eprintln!(
            "Conn<()> {} B, Out {} B, Inbound {} B, IdleIn {} B, HttpIn {} B, WsIn {} B, WsState {} B, WsSlot {} B, Shared {} B, TcpStream {} B, task future {} B",
            std::mem::size_of::<Conn>(),
            std::mem::size_of::<Out>(),
            std::mem::size_of::<Inbound>(),
            std::mem::size_of::<IdleIn>(),
            std::mem::size_of::<super::super::http::HttpIn>(),
            std::mem::size_of::<super::super::ws::WsIn>(),
            std::mem::size_of::<super::super::ws::WsState>(),
            std::mem::size_of::<WsSlot>(),
            std::mem::size_of::<Shared>(),
            std::mem::size_of::<TcpStream>(),
            std::mem::size_of_val(&fut)
        );
        // An HTTP connection's decoder is part of its task's future, freed with it when the
        // connection parks: a box of its own would share its size class with `Arc<Conn>`
        // and leave a hole beside a live record in each allocator page (`Inbound`'s note).
        assert!(
            std::mem::size_of::<Inbound>() >= std::mem::size_of::<super::super::http::HttpIn>(),
            "the HTTP decoder is inline in the connection task, not boxed"
        );
        drop(fut);
    }

    /// The spare read buffer is lent moved back to the start of its allocation once the
    /// message split to its end is gone: the next read's copy fits without a reclaim of its own.
    #[test]
    fn a_lent_spare_has_its_whole_allocation_again() {
        let mut inbuf = BytesMut::new();
        borrow_spare(&mut inbuf);
        let cap = inbuf.capacity();
        assert!(cap >= SPARE_SIZE, "{cap}");
        inbuf.extend_from_slice(&vec![b'a'; cap]);
        let start = inbuf.as_ptr();
        let head = inbuf.split_to(cap);
        assert_eq!(inbuf.capacity(), 0);
        return_spare(&mut inbuf);
        drop(head);
        borrow_spare(&mut inbuf);
        assert_eq!(inbuf.as_ptr(), start);
        assert_eq!(inbuf.capacity(), cap);
        inbuf.extend_from_slice(&[b'b'; 100]);
        assert_eq!(inbuf.as_ptr(), start);
    }

    /// A spare with room on the allocation last reclaimed is lent as it is: reads walk through
    /// it (no reclaim per request) even once the heads split from it are gone.
    #[test]
    fn a_spare_with_room_is_lent_as_it_is() {
        let mut inbuf = BytesMut::new();
        borrow_spare(&mut inbuf);
        inbuf.extend_from_slice(&[b'a'; 100]);
        let start = inbuf.as_ptr();
        drop(inbuf.split_to(100));
        return_spare(&mut inbuf);
        borrow_spare(&mut inbuf);
        assert_eq!(inbuf.as_ptr(), start.wrapping_add(100));
    }

    /// A spare on a big allocation (a large message was split from it and is gone now) is
    /// dropped instead of lent; one still shared with a message is left to it.
    #[test]
    fn a_spare_on_a_big_allocation_is_not_lent() {
        let mut inbuf = BytesMut::new();
        borrow_spare(&mut inbuf);
        inbuf.extend_from_slice(&vec![0u8; BIG_BUFFER + 100]);
        drop(inbuf.split());
        return_spare(&mut inbuf);
        borrow_spare(&mut inbuf);
        assert!(inbuf.capacity() <= BIG_BUFFER, "{}", inbuf.capacity());
        assert!(inbuf.capacity() >= SPARE_SIZE, "{}", inbuf.capacity());
        return_spare(&mut inbuf);

        let mut inbuf = BytesMut::new();
        borrow_spare(&mut inbuf);
        inbuf.extend_from_slice(&vec![0u8; BIG_BUFFER + 100]);
        let msg = inbuf.split();
        return_spare(&mut inbuf);
        borrow_spare(&mut inbuf);
        assert!(inbuf.capacity() <= BIG_BUFFER, "{}", inbuf.capacity());
        assert_ne!(inbuf.as_ptr(), msg.as_ptr().wrapping_add(msg.len()));
    }
}
