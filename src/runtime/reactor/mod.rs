//! The master's side of Process mode: accepting, reading, dispatching events to workers over
//! their pipes, writing what workers send, and re-delivering what a dead worker left unfinished.
//!
//! Each worker *incarnation* gets a fresh pipe from the manager (passed over the control socket
//! with SCM_RIGHTS). Every event sent on a pipe is kept (a cheap `Bytes` clone) until the
//! worker acknowledges it; when a pipe hits EOF (the worker died), the unacknowledged events are
//! re-dispatched, in order, to the slot's next incarnation. When a new incarnation replaces a
//! live one (reload, max_request), the old pipe gets a `Stop` record and finishes what it has;
//! a connection with events still in flight on the old pipe waits (its new events are deferred)
//! so that the events of one connection always reach the application in order.

//!
//! - this file: the [`Reactor`], its dispatch policy (`dispatch_mode`) and the handler slot of
//!   the socket owner ([`EventSink`]) that every connection task feeds;
//! - [`pipe`]: a worker incarnation's pipe and its unacknowledged events;
//! - [`demux`]: records coming back from workers;
//! - [`recovery`]: what happens when a worker dies (re-delivery, one event at a time, at most
//!   `max_redeliveries` times per event).

mod demux;
mod lazy;
mod pipe;
mod recovery;

use std::collections::VecDeque;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::*};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use rswoole_codec::http1::RequestHead;

use lazy::{LazyDeque, LazyVec};
pub(crate) use pipe::{Pipe, PIPE_BACKLOG_LIMIT};

use crate::base::{ConnId, DispatchMode, Settings};
use crate::ipc::shared::Shared;
use crate::ipc::{close_payload, encode_packet, Kind};
use crate::owner::conn::Conn;
use crate::owner::sink::EventSink;
use crate::owner::table::ConnTable;

/// A connection as the reactor holds it: with its dispatch bookkeeping.
pub(crate) type RConn = Conn<Mutex<DispatchState>>;

/// An event on its way to a worker.
#[derive(Debug, Clone)]
pub(crate) struct Ev {
    pub(crate) conn: ConnId,
    pub(crate) kind: Kind,
    pub(crate) listener: u16,
    pub(crate) payload: Bytes,
    /// The HTTP/2 stream of an HTTP event (0: none).
    pub(crate) stream: u32,
    /// Worker deaths this event was unfinished at (it may be what killed them). Kept across
    /// re-dispatch; past `Settings::max_redeliveries` the event is dropped (`recovery`).
    pub(crate) tries: u32,
    /// A whole HTTP request (`HttpRequest`): its parsed head; `payload` is then the body. The
    /// pipe writes head, index and body straight into its datagram
    /// ([`crate::owner::http::write_request_payload`]): no payload buffer per request.
    pub(crate) head: Option<RequestHead>,
    /// An `HttpRequest` whose head is gone (sent, and kept by its pipe until acknowledged):
    /// whether its connection stays open after the response.
    pub(crate) keep_alive: Option<bool>,
}

impl Ev {
    /// A new event (never delivered yet).
    pub(crate) fn new(conn: ConnId, kind: Kind, listener: u16, payload: Bytes) -> Ev {
        Ev {
            conn,
            kind,
            listener,
            payload,
            stream: 0,
            tries: 0,
            head: None,
            keep_alive: None,
        }
    }

    /// The bytes of its payload on the pipe.
    pub(crate) fn wire_len(&self) -> usize {
        match &self.head {
            Some(h) => crate::owner::http::request_payload_len(h, &self.payload),
            None => self.payload.len(),
        }
    }

    /// Whether it is an HTTP/1.1 request whose connection stays open after its response
    /// (`None`: not a request head).
    pub(crate) fn keep_alive(&self) -> Option<bool> {
        if !matches!(self.kind, Kind::HttpRequest | Kind::HttpHead) {
            return None;
        }
        Some(match (&self.head, self.keep_alive) {
            (Some(h), _) => h.keep_alive(),
            (None, Some(k)) => k,
            (None, None) => crate::owner::http::request_from_payload(&self.payload)
                .is_some_and(|(h, _)| h.keep_alive()),
        })
    }

    /// What [`keep_alive`](Self::keep_alive) needs once the parsed head is gone: `Some` for
    /// an event carrying its head.
    pub(super) fn keep_alive_hint(&self) -> Option<bool> {
        match &self.head {
            Some(h) => Some(h.keep_alive()),
            None => self.keep_alive,
        }
    }
}

/// Whether an event of `kind` a dead worker left unfinished is re-delivered to the next
/// incarnation (`redeliver`: `Settings::redeliver_on_worker_crash`): never an HTTP request
/// (`recovery` answers 503 instead: it may be what killed the worker, and it may not be
/// idempotent); connects, closes and WebSocket opens always; the rest when `redeliver`.
pub(super) fn may_redeliver(kind: Kind, redeliver: bool) -> bool {
    let http = matches!(
        kind,
        Kind::HttpRequest | Kind::HttpHead | Kind::HttpBody | Kind::HttpEnd | Kind::HttpAbort
    );
    let always = matches!(
        kind,
        Kind::Connect | Kind::Close | Kind::WsOpen | Kind::WsHandshake
    );
    !http && (redeliver || always)
}

/// An HTTP/2 stream's request handed to a worker and not answered yet.
#[derive(Debug, Clone, Copy)]
pub(crate) struct H2Req {
    pub(crate) stream: u32,
    /// Response bytes went out for it.
    pub(crate) started: bool,
    /// Its body is streaming (`HttpHead` sent, `HttpEnd` not yet).
    pub(crate) streaming: bool,
}

/// Per-connection dispatch bookkeeping (the [`EventSink::State`] of the reactor).
#[derive(Debug, Default)]
pub(crate) struct DispatchState {
    pub(super) inflight: u32,
    pub(super) pipe: Option<Arc<Pipe>>,
    /// Events waiting behind in-flight ones (boxed at the first: most connections never defer).
    pub(super) deferred: LazyDeque<Ev>,
    pub(super) waiting: bool,
    /// HTTP requests handed to a worker and not answered yet (their `HttpRequest`/`HttpEnd`
    /// not acknowledged).
    pub(super) http_pending: u32,
    /// Response bytes went out for the oldest pending request.
    pub(super) resp_started: bool,
    /// A streamed request body is being dispatched (`HttpHead` sent, `HttpEnd` not yet).
    pub(super) streaming: bool,
    /// Drop the rest of the streamed request: its worker died and it was answered 503.
    pub(super) skip_stream: bool,
    /// HTTP/2: the streams whose requests are in a worker, unanswered (their
    /// `HttpRequest`/`HttpEnd`/`HttpAbort` not acknowledged).
    pub(super) h2: LazyVec<H2Req>,
    /// HTTP/2: streams whose request body is dropped as it comes (their worker died and
    /// they were answered 503).
    pub(super) h2_skip: LazyVec<u32>,
    /// Events of this connection that a dead worker left unfinished, waiting in their slot's
    /// `suspects` queue to be re-delivered: the connection's other events wait behind them.
    pub(super) suspects: u32,
}

#[derive(Debug, Default)]
pub(super) struct Slot {
    pub(super) current: Mutex<Option<Arc<Pipe>>>,
    pub(super) waiting: Mutex<Vec<ConnId>>,
    pub(super) packets: Mutex<Vec<Ev>>,
    /// Events a dead incarnation of this slot left unfinished, in order: re-delivered to the
    /// current pipe one at a time (`Reactor::probe`).
    pub(super) suspects: Mutex<VecDeque<Ev>>,
    /// The re-delivered event in flight: its pipe and sequence number.
    pub(super) probing: Mutex<Option<(Arc<Pipe>, u64)>>,
}

/// The master's dispatcher.
#[derive(Debug)]
pub(crate) struct Reactor {
    pub(crate) shared: Shared,
    pub(crate) settings: Arc<Settings>,
    pub(super) slots: Vec<Slot>,
    pub(crate) conns: ConnTable<Mutex<DispatchState>>,
    rr: AtomicUsize,
    pub(crate) stopping: AtomicBool,
    /// Pipe readers running (one per worker incarnation whose pipe has not hit EOF).
    readers: AtomicUsize,
    readers_done: tokio::sync::Notify,
    /// During an upgrade's handover: where connection tasks that stopped for the move hand
    /// their connection (`runtime::handover`).
    pub(crate) movers: Mutex<Option<Movers>>,
}

/// The channel of connections stopped for a handover.
pub(crate) type Movers =
    tokio::sync::mpsc::UnboundedSender<(Arc<RConn>, crate::owner::handover::Moved)>;

impl Reactor {
    pub(crate) fn new(shared: Shared, settings: Arc<Settings>) -> Reactor {
        let slots = (0..settings.worker_num).map(|_| Slot::default()).collect();
        Reactor {
            shared,
            settings,
            slots,
            conns: ConnTable::new(),
            rr: AtomicUsize::new(0),
            stopping: AtomicBool::new(false),
            readers: AtomicUsize::new(0),
            readers_done: tokio::sync::Notify::new(),
            movers: Mutex::new(None),
        }
    }

    pub(super) fn choose(&self, conn: &RConn) -> usize {
        let n = self.slots.len();
        match self.settings.dispatch_mode {
            DispatchMode::RoundRobin => self.rr.fetch_add(1, Relaxed) % n,
            DispatchMode::Fixed => ((conn.id.0 - 1) % n as u64) as usize,
            DispatchMode::IpHash => hash_ip(&conn.remote) % n,
            DispatchMode::Preemptive => self.least_busy(),
            DispatchMode::Uid => match self.shared.any_slot(conn.id).map(|s| s.uid.load(Relaxed)) {
                Some(uid) if uid != 0 => uid as usize % n,
                _ => ((conn.id.0 - 1) % n as u64) as usize,
            },
        }
    }

    fn least_busy(&self) -> usize {
        let start = self.rr.fetch_add(1, Relaxed);
        let n = self.slots.len();
        let mut best = (usize::MAX, start % n);
        for k in 0..n {
            let i = (start + k) % n;
            if let Some(p) = self.slots[i].current.lock().as_ref() {
                let load = p.inflight();
                if load < best.0 {
                    best = (load, i);
                }
                if load == 0 {
                    break;
                }
            }
        }
        best.1
    }

    pub(super) fn current(&self, slot: usize) -> Option<Arc<Pipe>> {
        self.slots[slot]
            .current
            .lock()
            .clone()
            .filter(|p| p.accepting())
    }

    /// Sends `ev` for `conn` keeping per-connection order; `false`: it must wait (deferred),
    /// and `ev` is left as it was. Takes the event by reference ([`Pipe::send`] empties it
    /// when it goes): no clone of its payload (a clone would turn the request's buffer into a
    /// shared one: an allocation per event), and no move of the ~200-byte `Ev` per call.
    pub(super) fn try_dispatch(&self, conn: &RConn, d: &mut DispatchState, ev: &mut Ev) -> bool {
        if d.suspects > 0 {
            // Re-delivered events of this connection go first (`probe` sends them).
            return false;
        }
        if d.inflight > 0 {
            return match &d.pipe {
                Some(p) if p.accepting() && p.send(ev).is_some() => {
                    d.inflight += 1;
                    true
                }
                _ => false,
            };
        }
        let slot = self.choose(conn);
        if let Some(p) = self.current(slot) {
            if p.send(ev).is_some() {
                d.inflight = 1;
                if let Some(s) = self.shared.any_slot(conn.id) {
                    s.worker.store(slot as u32, Relaxed);
                }
                d.pipe = Some(p);
                return true;
            }
        }
        if !d.waiting {
            d.waiting = true;
            self.slots[slot].waiting.lock().push(conn.id);
        }
        false
    }

    pub(super) fn dispatch(&self, conn: &RConn, mut ev: Ev) {
        let mut d = conn.state.lock();
        if ev.stream != 0 {
            let s = ev.stream;
            match ev.kind {
                Kind::HttpRequest | Kind::HttpHead => d.h2.push(H2Req {
                    stream: s,
                    started: false,
                    streaming: ev.kind == Kind::HttpHead,
                }),
                Kind::HttpBody | Kind::HttpEnd | Kind::HttpAbort if d.h2_skip.contains(&s) => {
                    if ev.kind != Kind::HttpBody {
                        d.h2_skip.retain(|&x| x != s);
                    }
                    return;
                }
                Kind::HttpEnd | Kind::HttpAbort => {
                    if let Some(r) = d.h2.iter_mut().find(|r| r.stream == s) {
                        r.streaming = false;
                    }
                }
                _ => {}
            }
        } else {
            match ev.kind {
                Kind::HttpRequest => d.http_pending += 1,
                Kind::HttpHead => {
                    d.http_pending += 1;
                    d.streaming = true;
                }
                Kind::HttpBody | Kind::HttpEnd if d.skip_stream => {
                    if ev.kind == Kind::HttpEnd {
                        d.skip_stream = false;
                        d.streaming = false;
                    }
                    return;
                }
                Kind::HttpEnd => d.streaming = false,
                _ => {}
            }
        }
        if !d.deferred.is_empty() || !self.try_dispatch(conn, &mut d, &mut ev) {
            d.deferred.push_back(rehomed(ev));
        }
    }

    pub(super) fn flush_deferred(&self, conn: &RConn) {
        let mut d = conn.state.lock();
        d.waiting = false;
        while let Some(mut ev) = d.deferred.pop_front() {
            if !self.try_dispatch(conn, &mut d, &mut ev) {
                d.deferred.push_front(ev);
                break;
            }
        }
    }

    pub(super) fn dispatch_packet(&self, ev: Ev, from: &SocketAddr) {
        let n = self.slots.len();
        let first = match self.settings.dispatch_mode {
            DispatchMode::IpHash | DispatchMode::Fixed | DispatchMode::Uid => hash_ip(from) % n,
            _ => self.rr.fetch_add(1, Relaxed) % n,
        };
        let mut ev = ev;
        for k in 0..n {
            if let Some(p) = self.current((first + k) % n) {
                if p.send(&mut ev).is_some() {
                    return;
                }
            }
        }
        self.slots[first].packets.lock().push(ev);
    }

    /// A UDP datagram arrived on listener `listener`.
    pub(crate) fn packet(&self, listener: u16, from: SocketAddr, data: &[u8]) {
        let payload = encode_packet(from, data);
        self.dispatch_packet(Ev::new(ConnId(0), Kind::Packet, listener, payload), &from);
    }
}

impl EventSink for Reactor {
    type State = Mutex<DispatchState>;

    fn busy(&self, conn: &Arc<RConn>) -> bool {
        let d = conn.state.lock();
        d.inflight > 0 || !d.deferred.is_empty() || d.suspects > 0
    }
    fn backlogged(&self, conn: &Arc<RConn>) -> bool {
        let d = conn.state.lock();
        d.inflight > 0
            && d.pipe
                .as_ref()
                .is_some_and(|p| p.unacked.lock().bytes > PIPE_BACKLOG_LIMIT)
    }
    fn connected(&self, conn: &Arc<RConn>) {
        self.dispatch(
            conn,
            Ev::new(conn.id, Kind::Connect, conn.listener, Bytes::new()),
        );
    }
    fn data(&self, conn: &Arc<RConn>, data: Bytes) {
        self.dispatch(conn, Ev::new(conn.id, Kind::Receive, conn.listener, data));
    }
    fn stream_request(&self, conn: &Arc<RConn>, stream: u32, head: RequestHead, body: Bytes) {
        // Sent at once, the head is written into the datagram and dropped (`Pipe::send`):
        // the connection's read buffer is unique again at the next read, which reuses it in
        // place. An event that has to wait moves its head onto a copy first (`rehomed`).
        let mut ev = Ev::new(conn.id, Kind::HttpRequest, conn.listener, body);
        ev.stream = stream;
        ev.head = Some(head);
        self.dispatch(conn, ev);
    }
    fn stream_event(&self, conn: &Arc<RConn>, stream: u32, kind: Kind, payload: Bytes) {
        let mut ev = Ev::new(conn.id, kind, conn.listener, payload);
        ev.stream = stream;
        self.dispatch(conn, ev);
    }
    fn closed(&self, conn: &Arc<RConn>) {
        self.dispatch(
            conn,
            Ev::new(
                conn.id,
                Kind::Close,
                conn.listener,
                close_payload(conn.half_closed()),
            ),
        );
    }
}

/// `ev`, about to wait in a queue, with its parsed head (if any) moved onto a copy cut from
/// the thread's arena: a waiting head must not hold the connection's read buffer, which the
/// next read would then find shared and replace with a new allocation.
fn rehomed(mut ev: Ev) -> Ev {
    if let Some(h) = ev.head.as_mut() {
        h.rehome(crate::base::arena::shared_copy);
    }
    ev
}

fn hash_ip(a: &SocketAddr) -> usize {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    a.ip().hash(&mut h);
    h.finish() as usize
}
