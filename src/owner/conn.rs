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

use std::io;
use std::sync::Arc;

use bytes::BytesMut;
use parking_lot::Mutex;
use tokio::net::TcpStream;
use tokio::sync::Notify;

use super::flusher::Flusher;
use super::inbound::{ConnConfig, Inbound, Verdict};
use super::sink::EventSink;
use super::ws::WsState;
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
    notify: Notify,
    pub(crate) shared: Shared,
    cap: usize,
    /// The sink's own per-connection state (the reactor's dispatch bookkeeping).
    pub(crate) state: X,
    /// The WebSocket protocol state once upgraded (`super::ws`).
    pub(crate) ws: Mutex<Option<Box<WsState>>>,
    /// Writes queued with [`Conn::write_deferred`] go out through this process's flusher.
    flusher: Arc<Flusher<X>>,
}

/// Why [`Conn::write`] refused data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriteError {
    Closed,
    Full,
}

impl<X: Default> Conn<X> {
    pub(crate) fn new(
        id: ConnId,
        listener: u16,
        remote: std::net::SocketAddr,
        stream: TcpStream,
        shared: Shared,
        cap: usize,
        flusher: Arc<Flusher<X>>,
    ) -> Conn<X> {
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
            }),
            notify: Notify::new(),
            shared,
            cap,
            state: X::default(),
            ws: Mutex::new(None),
            flusher,
        }
    }
}

impl<X> Conn<X> {
    /// Writes `data`, or queues what the socket does not take now.
    pub(crate) fn write(&self, data: &[u8]) -> Result<(), WriteError> {
        let mut out = self.out.lock();
        if out.io_error || out.phase == Phase::Finishing {
            return Err(WriteError::Closed);
        }
        if out.buf.len() + data.len() > self.cap {
            return Err(WriteError::Full);
        }
        let mut rest = data;
        if out.buf.is_empty() {
            loop {
                match self.stream.try_write(rest) {
                    Ok(n) => {
                        count_out(n);
                        rest = &rest[n..];
                        if rest.is_empty() {
                            return Ok(());
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => {
                        out.io_error = true;
                        drop(out);
                        self.notify.notify_one();
                        return Err(WriteError::Closed);
                    }
                }
            }
        }
        out.buf.extend_from_slice(rest);
        self.set_out_bytes(out.buf.len());
        drop(out);
        self.notify.notify_one();
        Ok(())
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
            self.notify.notify_one();
        }
    }

    fn set_out_bytes(&self, n: usize) {
        if let Some(s) = self.shared.any_slot(self.id) {
            s.out_bytes
                .store(n as u64, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Wakes the connection task (its protocol state changed elsewhere).
    pub(crate) fn wake(&self) {
        self.notify.notify_one();
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
        self.notify.notify_one();
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
    /// write it.
    pub(crate) fn has_output(&self) -> bool {
        let o = self.out.lock();
        !o.buf.is_empty() && !o.io_error
    }

    /// Whether the connection ended by the client's FIN alone (no error, no server close), so
    /// that it is still writable until [`Conn::close_done`]: a half-close.
    pub(crate) fn half_closed(&self) -> bool {
        let o = self.out.lock();
        o.peer_fin && !o.io_error
    }

    /// The application's `on_close` has run: finish.
    pub(crate) fn close_done(&self) {
        let mut out = self.out.lock();
        out.phase = Phase::Finishing;
        out.closing_since
            .get_or_insert_with(std::time::Instant::now);
        drop(out);
        self.notify.notify_one();
    }

    /// Writes queued output; returns true when the queue is empty.
    fn flush(&self) -> bool {
        let mut out = self.out.lock();
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
        if out.buf.is_empty() && out.buf.capacity() > 64 * 1024 {
            out.buf = BytesMut::new();
        }
        let len = out.buf.len();
        drop(out);
        self.set_out_bytes(len);
        len == 0
    }

    /// The connection task. `cfg` says how bytes become events (raw reads, framed messages,
    /// HTTP requests).
    pub(crate) async fn run<S: EventSink<State = X>, R: std::ops::Deref<Target = S>>(
        self: Arc<Self>,
        sink: R,
        cfg: &ConnConfig,
    ) {
        sink.connected(&self);
        let mut decoder = Inbound::new(cfg);
        let mut inbuf = BytesMut::new();
        loop {
            let (phase, pending, read_eof, io_error) = {
                let o = self.out.lock();
                (o.phase, !o.buf.is_empty(), o.read_eof, o.io_error)
            };
            let pending = pending && !io_error;
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
                    return;
                }
                _ => {}
            }
            let mut want_read = phase == Phase::Open && !read_eof && !io_error && !decoder.paused();
            let backlogged = want_read && sink.backlogged(&self);
            if backlogged {
                want_read = false;
            }
            let deadline = decoder.deadline(&self).filter(|_| want_read);
            let drain_by = if pending && matches!(phase, Phase::Draining | Phase::Finishing) {
                self.out.lock().closing_since.map(|t| t + DRAIN_TIMEOUT)
            } else {
                None
            };
            tokio::select! {
                biased;
                _ = self.notify.notified() => {
                    if let Verdict::Close = decoder.resume(&self, &*sink, &mut inbuf) {
                        self.close();
                    }
                }
                _ = tokio::time::sleep(std::time::Duration::from_millis(2)), if backlogged => {}
                _ = sleep_until_opt(drain_by), if drain_by.is_some() => {
                    tracing::debug!(fd = %self.id, "the client did not read its last output in time; cutting the connection");
                    let mut o = self.out.lock();
                    o.io_error = true;
                    o.buf.clear();
                }
                _ = sleep_until_opt(deadline), if deadline.is_some() => {
                    if decoder.timed_out(&self) {
                        self.close();
                    }
                }
                r = self.stream.writable(), if pending => {
                    if r.is_err() { self.out.lock().io_error = true; } else { self.flush(); }
                }
                r = self.stream.readable(), if want_read => {
                    if r.is_err() { self.out.lock().io_error = true; continue; }
                    self.read_some(&*sink, &mut decoder, &mut inbuf);
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
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            // A few reads per wake-up at most, so that backpressure and other connections get
            // a look in while a client streams a large body.
            for _ in 0..4 {
                match self.try_read_short(&mut scratch[..]) {
                    Ok(0) => {
                        self.out.lock().read_eof = true;
                        return;
                    }
                    Ok(n) => {
                        if let Some(m) = crate::ipc::metrics::slot() {
                            m.bytes_in
                                .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
                        }
                        self.shared.touch_recv(self.id);
                        if let Verdict::Close = decoder.feed(self, sink, &scratch[..n], inbuf) {
                            self.close();
                            return;
                        }
                        if n < scratch.len() {
                            return;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => {
                        self.out.lock().io_error = true;
                        return;
                    }
                }
            }
        })
    }

    /// `try_read` that also forgets the socket's read readiness when the read came back short
    /// (the kernel buffer is drained), as tokio's own `read` does: the next `readable()` then
    /// waits for epoll instead of costing a `recv` that only says `EAGAIN`. Readiness that
    /// arrived after the read is kept (tokio compares the readiness tick).
    fn try_read_short(&self, buf: &mut [u8]) -> io::Result<usize> {
        let mut got = 0;
        let cap = buf.len();
        let r = self.stream.try_io(tokio::io::Interest::READABLE, || {
            let n = rustix::net::recv(&self.stream, &mut *buf, rustix::net::RecvFlags::empty())
                .map(|(n, _)| n)
                .map_err(io::Error::from)?;
            got = n;
            if n > 0 && n < cap {
                // Short read: report "would block" so tokio clears the readiness; the bytes
                // are in `got`.
                return Err(io::ErrorKind::WouldBlock.into());
            }
            Ok(n)
        });
        match r {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && got > 0 => Ok(got),
            r => r,
        }
    }

    fn stream_shutdown(&self) -> io::Result<()> {
        socket2::SockRef::from(&self.stream).shutdown(std::net::Shutdown::Write)
    }
}

impl<X: Send + Sync + 'static> Conn<X> {
    /// Queues `data` to be written by the process's [`Flusher`] (no syscall here): what
    /// several callers queue in one scheduler turn goes out in one write (WebSocket
    /// broadcasts).
    pub(crate) fn write_deferred(self: &Arc<Self>, data: &[u8]) -> Result<(), WriteError> {
        let mut out = self.out.lock();
        if out.io_error || out.phase == Phase::Finishing {
            return Err(WriteError::Closed);
        }
        if out.buf.len() + data.len() > self.cap {
            return Err(WriteError::Full);
        }
        let was_empty = out.buf.is_empty();
        out.buf.extend_from_slice(data);
        self.set_out_bytes(out.buf.len());
        drop(out);
        if was_empty {
            self.flusher.add(self.clone());
        }
        Ok(())
    }
}

/// Counts `n` bytes written to a client (metrics on).
#[inline]
fn count_out(n: usize) {
    if let Some(m) = crate::ipc::metrics::slot() {
        m.bytes_out
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
    }
}

async fn sleep_until_opt(t: Option<std::time::Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}
