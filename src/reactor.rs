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

use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::*};
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use parking_lot::Mutex;

use crate::conn::{Conn, EventSink, WriteError};
use crate::ipc::{self, Header, Kind, PipeTx};
use crate::settings::{DispatchMode, Settings};
use crate::shared::Shared;
use crate::ConnId;

/// An event on its way to a worker.
#[derive(Debug, Clone)]
pub(crate) struct Ev {
    pub(crate) conn: ConnId,
    pub(crate) kind: Kind,
    pub(crate) listener: u16,
    pub(crate) payload: Bytes,
}

/// Per-connection dispatch bookkeeping (lives in [`Conn`]).
#[derive(Debug, Default)]
pub(crate) struct DispatchState {
    inflight: u32,
    pipe: Option<Arc<Pipe>>,
    deferred: VecDeque<Ev>,
    waiting: bool,
    /// HTTP requests handed to a worker and not answered yet (their `HttpRequest`/`HttpEnd`
    /// not acknowledged).
    http_pending: u32,
    /// Response bytes went out for the oldest pending request.
    resp_started: bool,
    /// A streamed request body is being dispatched (`HttpHead` sent, `HttpEnd` not yet).
    streaming: bool,
    /// Drop the rest of the streamed request: its worker died and it was answered 503.
    skip_stream: bool,
}

/// One worker incarnation's pipe.
#[derive(Debug)]
pub(crate) struct Pipe {
    pub(crate) slot: usize,
    pub(crate) pid: u32,
    pub(crate) tx: PipeTx,
    accepting: AtomicBool,
    unacked: Mutex<Unacked>,
}

#[derive(Debug, Default)]
struct Unacked {
    base: u64,
    ring: VecDeque<Option<Ev>>,
    live: usize,
    bytes: usize,
}

/// A connection stops being read while its worker has this many bytes of events unfinished
/// (backpressure: a fast client cannot make the master buffer without bound).
pub(crate) const PIPE_BACKLOG_LIMIT: usize = 4 * 1024 * 1024;

impl Pipe {
    fn send(&self, ev: Ev) -> bool {
        let mut u = self.unacked.lock();
        let seq = u.base + u.ring.len() as u64;
        let h = Header {
            kind: ev.kind,
            flags: 0,
            listener: ev.listener,
            session: ev.conn.0,
            seq,
        };
        if !self.tx.push(h, &ev.payload) {
            return false;
        }
        u.bytes += ev.payload.len();
        u.ring.push_back(Some(ev));
        u.live += 1;
        true
    }

    fn take(&self, seq: u64) -> Option<Ev> {
        let mut u = self.unacked.lock();
        let idx = seq.checked_sub(u.base)? as usize;
        let ev = u.ring.get_mut(idx)?.take()?;
        u.live -= 1;
        u.bytes -= ev.payload.len();
        while matches!(u.ring.front(), Some(None)) {
            u.ring.pop_front();
            u.base += 1;
        }
        Some(ev)
    }

    fn drain(&self) -> Vec<Ev> {
        let mut u = self.unacked.lock();
        u.live = 0;
        u.bytes = 0;
        let n = u.ring.len() as u64;
        u.base += n;
        u.ring.drain(..).flatten().collect()
    }

    fn inflight(&self) -> usize {
        self.unacked.lock().live
    }

    fn accepting(&self) -> bool {
        self.accepting.load(Acquire)
    }
}

#[derive(Debug, Default)]
struct Slot {
    current: Mutex<Option<Arc<Pipe>>>,
    waiting: Mutex<Vec<ConnId>>,
    packets: Mutex<Vec<Ev>>,
}

/// Live connections of this process, by id.
#[derive(Debug)]
pub(crate) struct ConnTable {
    shards: Vec<Mutex<HashMap<u64, Arc<Conn>>>>,
    /// Writes the connections' deferred output (broadcasts), see [`crate::conn::Flusher`].
    pub(crate) flusher: Arc<crate::conn::Flusher>,
}

impl ConnTable {
    pub(crate) fn new() -> ConnTable {
        ConnTable {
            shards: (0..32).map(|_| Mutex::new(HashMap::new())).collect(),
            flusher: Arc::default(),
        }
    }
    fn shard(&self, id: ConnId) -> &Mutex<HashMap<u64, Arc<Conn>>> {
        &self.shards[(id.0 % 32) as usize]
    }
    pub(crate) fn get(&self, id: ConnId) -> Option<Arc<Conn>> {
        self.shard(id).lock().get(&id.0).cloned()
    }
    pub(crate) fn insert(&self, c: Arc<Conn>) {
        self.shard(c.id).lock().insert(c.id.0, c);
    }
    pub(crate) fn remove(&self, id: ConnId) {
        self.shard(id).lock().remove(&id.0);
    }
    pub(crate) fn all(&self) -> Vec<Arc<Conn>> {
        self.shards
            .iter()
            .flat_map(|s| s.lock().values().cloned().collect::<Vec<_>>())
            .collect()
    }
}

/// The master's dispatcher.
#[derive(Debug)]
pub(crate) struct Reactor {
    pub(crate) shared: Shared,
    pub(crate) settings: Arc<Settings>,
    slots: Vec<Slot>,
    pub(crate) conns: ConnTable,
    rr: AtomicUsize,
    pub(crate) stopping: AtomicBool,
}

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
        }
    }

    fn choose(&self, conn: &Conn) -> usize {
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

    fn current(&self, slot: usize) -> Option<Arc<Pipe>> {
        self.slots[slot]
            .current
            .lock()
            .clone()
            .filter(|p| p.accepting())
    }

    /// Sends `ev` for `conn` keeping per-connection order; `false` = must wait (deferred).
    fn try_dispatch(&self, conn: &Conn, d: &mut DispatchState, ev: &Ev) -> bool {
        if d.inflight > 0 {
            match &d.pipe {
                Some(p) if p.accepting() => {
                    if p.send(ev.clone()) {
                        d.inflight += 1;
                        return true;
                    }
                    return false;
                }
                _ => return false,
            }
        }
        let slot = self.choose(conn);
        match self.current(slot) {
            Some(p) if p.send(ev.clone()) => {
                d.inflight = 1;
                if let Some(s) = self.shared.any_slot(conn.id) {
                    s.worker.store(slot as u32, Relaxed);
                }
                d.pipe = Some(p);
                true
            }
            _ => {
                if !d.waiting {
                    d.waiting = true;
                    self.slots[slot].waiting.lock().push(conn.id);
                }
                false
            }
        }
    }

    fn dispatch(&self, conn: &Conn, ev: Ev) {
        let mut d = conn.dispatch.lock();
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
        if !d.deferred.is_empty() || !self.try_dispatch(conn, &mut d, &ev) {
            d.deferred.push_back(ev);
        }
    }

    fn flush_deferred(&self, conn: &Conn) {
        let mut d = conn.dispatch.lock();
        d.waiting = false;
        while let Some(ev) = d.deferred.pop_front() {
            if !self.try_dispatch(conn, &mut d, &ev) {
                d.deferred.push_front(ev);
                break;
            }
        }
    }

    fn dispatch_packet(&self, ev: Ev, from: &SocketAddr) {
        let n = self.slots.len();
        let first = match self.settings.dispatch_mode {
            DispatchMode::IpHash | DispatchMode::Fixed | DispatchMode::Uid => hash_ip(from) % n,
            _ => self.rr.fetch_add(1, Relaxed) % n,
        };
        for k in 0..n {
            if let Some(p) = self.current((first + k) % n) {
                if p.send(ev.clone()) {
                    return;
                }
            }
        }
        self.slots[first].packets.lock().push(ev);
    }

    /// A UDP datagram arrived on listener `listener`.
    pub(crate) fn packet(&self, listener: u16, from: SocketAddr, data: &[u8]) {
        let payload = encode_packet(from, data);
        self.dispatch_packet(
            Ev {
                conn: ConnId(0),
                kind: Kind::Packet,
                listener,
                payload,
            },
            &from,
        );
    }

    /// A new worker incarnation's pipe (from the manager).
    pub(crate) fn install(self: &Arc<Self>, slot: usize, pid: u32, pipe: PipeTx) {
        if slot >= self.slots.len() {
            tracing::error!(slot, "manager sent a pipe for an unknown worker slot");
            return;
        }
        let pipe = Arc::new(Pipe {
            slot,
            pid,
            tx: pipe,
            accepting: AtomicBool::new(true),
            unacked: Mutex::new(Unacked::default()),
        });
        let w = pipe.clone();
        tokio::spawn(async move {
            if let Err(e) = w.tx.run_writer().await {
                tracing::debug!(slot = w.slot, pid = w.pid, error = %e, "worker pipe writer ended");
            }
        });
        let r = self.clone();
        let p2 = pipe.clone();
        tokio::spawn(async move { r.read_pipe(p2).await });
        let old = self.slots[slot].current.lock().replace(pipe.clone());
        if let Some(old) = old {
            // Graceful replacement: the old incarnation finishes what it has, then exits.
            old.accepting.store(false, Release);
            let h = Header {
                kind: Kind::Stop,
                flags: 0,
                listener: 0,
                session: 0,
                seq: u64::MAX,
            };
            old.tx.push(h, &[]);
            old.tx.close();
        }
        let waiting = std::mem::take(&mut *self.slots[slot].waiting.lock());
        for id in waiting {
            if let Some(c) = self.conns.get(id) {
                self.flush_deferred(&c);
            }
        }
        let packets = std::mem::take(&mut *self.slots[slot].packets.lock());
        for ev in packets {
            pipe.send(ev);
        }
    }

    /// Routes a `send_message` from worker `from` to worker `to`: to the slot's current pipe,
    /// or queued until its next incarnation installs a pipe.
    pub(crate) fn pipe_message(&self, from: usize, to: usize, data: Bytes) {
        let Some(slot) = self.slots.get(to) else {
            tracing::warn!(from, to, "send_message to an unknown worker id; dropped");
            return;
        };
        let ev = Ev {
            conn: ConnId(0),
            kind: Kind::PipeMessage,
            listener: from as u16,
            payload: data,
        };
        // Hold the queue lock while checking for a pipe, so `install` cannot miss the event.
        let mut queued = slot.packets.lock();
        match self.current(to) {
            Some(p) if p.send(ev.clone()) => {}
            _ => queued.push(ev),
        }
    }

    async fn read_pipe(self: Arc<Self>, pipe: Arc<Pipe>) {
        let mut buf = vec![0u8; ipc::MAX_DGRAM];
        let mut reassembler = ipc::Reassembler::default();
        // Broadcasts of one datagram are written to each client with one syscall.
        let mut bcast = crate::websocket::owner::Batch::default();
        // Acknowledgements are applied after the datagram's other records: a worker answers
        // every event with an Ack, and handling it in place would cut each run of broadcasts
        // into one fan-out per message.
        let mut acks: Vec<u64> = Vec::new();
        loop {
            let n = match pipe.tx.recv(&mut buf).await {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(slot = pipe.slot, error = %e, "reading a worker pipe failed");
                    break;
                }
            };
            for rec in ipc::decode(&buf[..n]) {
                let (h, payload) = match rec {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::error!(slot = pipe.slot, error = %e, "malformed IPC from worker");
                        break;
                    }
                };
                if !matches!(h.kind, Kind::WsBroadcast | Kind::Ack) {
                    bcast.flush(&self);
                }
                match h.kind {
                    Kind::WsBroadcast if h.flags & (ipc::F_FIRST | ipc::F_MORE) == ipc::F_FIRST => {
                        bcast.add(&self, &h, payload);
                    }
                    Kind::Send => {
                        if let Some(c) = self.conns.get(ConnId(h.session)) {
                            {
                                let mut d = c.dispatch.lock();
                                if d.http_pending > 0 {
                                    d.resp_started = true;
                                }
                            }
                            match c.write(payload) {
                                Ok(()) => {}
                                Err(WriteError::Full) => {
                                    tracing::warn!(fd = h.session, bytes = payload.len(), "output buffer full: the client reads too slowly; closing it");
                                    c.close();
                                }
                                Err(WriteError::Closed) => {}
                            }
                        }
                    }
                    Kind::CloseReq => {
                        if let Some(c) = self.conns.get(ConnId(h.session)) {
                            c.close();
                        }
                    }
                    Kind::Ack => acks.extend(
                        payload
                            .chunks_exact(8)
                            .map(|s| u64::from_le_bytes(s.try_into().expect("8 bytes"))),
                    ),
                    Kind::WsPush | Kind::WsBroadcast | Kind::WsDisconnect | Kind::WsAccept => {
                        // Unchunked records (almost all) are used in place.
                        if h.flags & (ipc::F_FIRST | ipc::F_MORE) == ipc::F_FIRST {
                            crate::websocket::owner::from_worker(&self, &h, payload);
                        } else if let Some(whole) = reassembler.feed(&h, payload) {
                            crate::websocket::owner::from_worker(&self, &h, &whole);
                        }
                    }
                    Kind::PipeMsg => {
                        if let Some(data) = reassembler.feed(&h, payload) {
                            self.pipe_message(pipe.slot, h.session as usize, data);
                        }
                    }
                    other => tracing::warn!(?other, "unexpected IPC record from a worker"),
                }
            }
            bcast.flush(&self);
            for seq in acks.drain(..) {
                self.acked(&pipe, seq);
            }
        }
        self.pipe_died(&pipe);
    }

    fn acked(&self, pipe: &Pipe, seq: u64) {
        let Some(ev) = pipe.take(seq) else { return };
        if ev.conn.0 == 0 {
            return;
        }
        let Some(c) = self.conns.get(ev.conn) else {
            return;
        };
        let (flush, idle) = {
            let mut d = c.dispatch.lock();
            d.inflight = d.inflight.saturating_sub(1);
            if matches!(ev.kind, Kind::HttpRequest | Kind::HttpEnd) {
                d.http_pending = d.http_pending.saturating_sub(1);
                d.resp_started = false;
            }
            (
                d.inflight == 0 && !d.deferred.is_empty(),
                d.inflight == 0 && d.deferred.is_empty(),
            )
        };
        if idle && crate::websocket::is_message_kind(ev.kind) {
            // A WebSocket close held back until the replies to earlier messages were sent.
            crate::websocket::owner::flush_final(&c);
        }
        if ev.kind == Kind::Close {
            c.close_done();
        }
        if flush {
            self.flush_deferred(&c);
        }
    }

    fn pipe_died(&self, pipe: &Arc<Pipe>) {
        pipe.accepting.store(false, Release);
        pipe.tx.close();
        {
            let mut cur = self.slots[pipe.slot].current.lock();
            if cur.as_ref().is_some_and(|c| Arc::ptr_eq(c, pipe)) {
                *cur = None;
            }
        }
        let evs = pipe.drain();
        if self.stopping.load(Acquire) {
            return;
        }
        let total = evs.len();
        let mut order: Vec<ConnId> = Vec::new();
        let mut per: HashMap<u64, Vec<Ev>> = HashMap::new();
        let mut packets = Vec::new();
        let mut messages = Vec::new();
        for ev in evs {
            if ev.kind == Kind::PipeMessage {
                messages.push(ev);
            } else if ev.conn.0 == 0 {
                packets.push(ev);
            } else {
                per.entry(ev.conn.0)
                    .or_insert_with(|| {
                        order.push(ev.conn);
                        Vec::new()
                    })
                    .push(ev);
            }
        }
        // Connections with an HTTP request in progress on this worker but nothing unacked
        // (e.g. a streamed upload between two chunks) are affected too.
        for c in self.conns.all() {
            let d = c.dispatch.lock();
            if d.http_pending > 0
                && d.pipe.as_ref().is_some_and(|p| Arc::ptr_eq(p, pipe))
                && !per.contains_key(&c.id.0)
            {
                per.insert(c.id.0, Vec::new());
                order.push(c.id);
            }
        }
        let redeliver = self.settings.redeliver_on_worker_crash;
        let mut resent = 0usize;
        let mut answered = 0usize;
        for id in order {
            let evs = per.remove(&id.0).unwrap_or_default();
            let Some(c) = self.conns.get(id) else {
                continue;
            };
            let mut close = false;
            {
                let mut d = c.dispatch.lock();
                if d.pipe.as_ref().is_some_and(|p| Arc::ptr_eq(p, pipe)) {
                    d.inflight = 0;
                    d.pipe = None;
                }
                // HTTP: never re-run a request on another worker (it may be what killed this
                // one, and it may not be idempotent): answer 503 for each unanswered one.
                if d.http_pending > 0 {
                    let heads: Vec<bool> = evs
                        .iter()
                        .filter(|e| matches!(e.kind, Kind::HttpRequest | Kind::HttpHead))
                        .map(|e| {
                            crate::proto::split_request(&e.payload)
                                .and_then(|(h, _)| {
                                    crate::proto::parse_head(&h, &Default::default())
                                })
                                .is_some_and(|h| h.keep_alive())
                        })
                        .collect();
                    if d.resp_started {
                        close = true;
                    } else {
                        let n = d.http_pending as usize;
                        // A request whose head was acknowledged earlier has no head here: close after.
                        let known = heads.len();
                        for k in 0..n {
                            let keep = k + known >= n
                                && heads.get(k + known - n).copied().unwrap_or(false);
                            let _ = c.write(&crate::proto::unavailable_response(keep));
                            answered += 1;
                            if !keep {
                                close = true;
                                break;
                            }
                        }
                    }
                    if d.streaming {
                        d.skip_stream = true;
                    }
                    d.http_pending = 0;
                    d.resp_started = false;
                }
                for ev in evs.into_iter().rev() {
                    let http = matches!(
                        ev.kind,
                        Kind::HttpRequest | Kind::HttpHead | Kind::HttpBody | Kind::HttpEnd
                    );
                    let always = matches!(
                        ev.kind,
                        Kind::Connect | Kind::Close | Kind::WsOpen | Kind::WsHandshake
                    );
                    if !http && (redeliver || always) {
                        resent += 1;
                        d.deferred.push_front(ev);
                    }
                }
            }
            if close {
                c.close();
            }
            self.flush_deferred(&c);
        }
        if answered > 0 {
            tracing::warn!(
                worker = pipe.slot,
                pid = pipe.pid,
                requests = answered,
                "worker died with HTTP requests in flight: answered 503"
            );
        }
        if redeliver {
            // Unfinished `send_message`s wait for this slot's next incarnation.
            resent += messages.len();
            for ev in messages {
                self.pipe_message(ev.listener as usize, pipe.slot, ev.payload);
            }
            for ev in packets {
                resent += 1;
                let from = decode_packet(&ev.payload)
                    .map(|(a, _)| a)
                    .unwrap_or(([0, 0, 0, 0], 0).into());
                self.dispatch_packet(ev, &from);
            }
        }
        if total > 0 {
            tracing::warn!(
                worker = pipe.slot,
                pid = pipe.pid,
                unfinished = total,
                redelivered = resent,
                "worker exited with events in flight"
            );
        } else {
            tracing::debug!(worker = pipe.slot, pid = pipe.pid, "worker pipe closed");
        }
    }
}

impl EventSink for Reactor {
    fn busy(&self, conn: &Arc<Conn>) -> bool {
        let d = conn.dispatch.lock();
        d.inflight > 0 || !d.deferred.is_empty()
    }
    fn backlogged(&self, conn: &Arc<Conn>) -> bool {
        let d = conn.dispatch.lock();
        d.inflight > 0
            && d.pipe
                .as_ref()
                .is_some_and(|p| p.unacked.lock().bytes > PIPE_BACKLOG_LIMIT)
    }
    fn connected(&self, conn: &Arc<Conn>) {
        self.dispatch(
            conn,
            Ev {
                conn: conn.id,
                kind: Kind::Connect,
                listener: conn.listener,
                payload: Bytes::new(),
            },
        );
    }
    fn data(&self, conn: &Arc<Conn>, data: Bytes) {
        self.dispatch(
            conn,
            Ev {
                conn: conn.id,
                kind: Kind::Receive,
                listener: conn.listener,
                payload: data,
            },
        );
    }
    fn event(&self, conn: &Arc<Conn>, kind: Kind, payload: Bytes) {
        self.dispatch(
            conn,
            Ev {
                conn: conn.id,
                kind,
                listener: conn.listener,
                payload,
            },
        );
    }
    fn closed(&self, conn: &Arc<Conn>) {
        self.dispatch(
            conn,
            Ev {
                conn: conn.id,
                kind: Kind::Close,
                listener: conn.listener,
                payload: Bytes::new(),
            },
        );
    }
}

fn hash_ip(a: &SocketAddr) -> usize {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    a.ip().hash(&mut h);
    h.finish() as usize
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
