//! The worker's dispatcher: runs the application's callbacks for each event, one after
//! another per connection (a queue per connection), concurrently across connections. An
//! HTTP/2 connection has a queue per stream besides: its streams run concurrently, and its
//! `Close` waits for them.
//! Protocol events (HTTP, WebSocket) go to the [`ProtocolHandler`] the API put in the
//! callback table.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::task::Poll;

use bytes::Bytes;
use tokio::sync::Notify;

use crate::base::{ConnId, Packet, ReceiveEvent};
use crate::ipc::shared;
use crate::ipc::{decode_packet, Kind, PipeTx, CLOSE_PEER_FIN};
use crate::owner::table::ConnTable;
use crate::runtime::app::{
    guarded, poll_guarded, BoxFut, Ctx, PipeCb, PortCallbacks, ProtoEvent, ProtocolHandler,
};
use crate::runtime::holds::{self, WaitEnd};

/// One event for the application.
pub(super) struct WEv {
    pub(super) kind: Kind,
    pub(super) fd: ConnId,
    pub(super) listener: u16,
    pub(super) payload: Bytes,
    pub(super) seq: Option<u64>,
    /// The HTTP/2 stream of an HTTP event (0: none): its own queue.
    pub(super) stream: u32,
    /// Base mode: the request head, already parsed by the connection task.
    pub(super) head: Option<rswoole_codec::http1::RequestHead>,
}

/// Events waiting behind a running one, keyed by (connection, HTTP/2 stream or 0).
pub(super) type Queues = std::collections::HashMap<
    (u64, u32),
    VecDeque<WEv>,
    std::hash::BuildHasherDefault<crate::base::ids::IdHasher>,
>;

pub(super) struct Dispatcher {
    pub(super) ctx: Ctx,
    pub(super) ports: Vec<PortCallbacks>,
    /// Events waiting behind a running one, per (connection, HTTP/2 stream or 0).
    pub(super) queues: RefCell<Queues>,
    /// HTTP/2: how many stream queues each connection has (its `Close` waits for none).
    pub(super) streams: RefCell<crate::base::ids::IdMap<u32>>,
    /// A stream queue ended.
    pub(super) streams_done: Notify,
    pub(super) inflight: Cell<usize>,
    /// Notified when `inflight` comes down to 0, once someone waits for that
    /// (`idle_watched`: a stopping worker's `finish_work`); before, the count reaching 0
    /// after every event costs no notification (a lock of the waiter list).
    pub(super) idle: Notify,
    pub(super) idle_watched: Cell<bool>,
    pub(super) tx: Option<Arc<PipeTx>>,
    pub(super) conns: Option<Arc<ConnTable>>,
    pub(super) on_pipe_message: Option<PipeCb>,
    /// HTTP and WebSocket events (the API's side of them).
    pub(super) protocol: Option<Rc<dyn ProtocolHandler>>,
}

impl Dispatcher {
    /// Gives back the slots a burst left in the event queues' tables
    /// ([`crate::owner::trim::shrink_map`]): every connection that opened got a queue for its
    /// `Connect` event, so the map's capacity follows the burst's peak. On the release
    /// check's clock (the worker's shrink task), not on the hot path. Returns the slots given
    /// back.
    pub(super) fn shrink(&self) -> usize {
        let mut freed = 0;
        // Never held across an await; `try_` so that a borrow elsewhere only skips a check.
        if let Ok(mut q) = self.queues.try_borrow_mut() {
            freed += crate::owner::trim::shrink_map(&mut q);
        }
        if let Ok(mut s) = self.streams.try_borrow_mut() {
            freed += crate::owner::trim::shrink_map(&mut s);
        }
        freed
    }

    pub(super) fn submit(self: &Rc<Self>, ev: WEv) {
        self.inflight.set(self.inflight.get() + 1);
        self.state(true);
        if ev.kind == Kind::Packet {
            let me = self.clone();
            tokio::task::spawn_local(async move {
                me.run_one(ev).await;
            });
            return;
        }
        let fd = (ev.fd.0, ev.stream);
        {
            let mut q = self.queues.borrow_mut();
            if let Some(queue) = q.get_mut(&fd) {
                queue.push_back(ev);
                return;
            }
            if ev.kind == Kind::Receive {
                drop(q);
                self.receive_inline(ev);
                return;
            }
            if (ev.kind == Kind::HttpRequest || ev.kind.is_ws_data()) && self.protocol.is_some() {
                drop(q);
                self.request_inline(ev);
                return;
            }
            q.insert(fd, VecDeque::new());
        }
        if fd.1 != 0 {
            *self.streams.borrow_mut().entry(fd.0).or_insert(0) += 1;
        }
        let me = self.clone();
        tokio::task::spawn_local(async move {
            me.run_queue(fd, ev).await;
        });
    }

    /// Base mode: a `Receive` of this worker's own connection `fd` (no acknowledgement),
    /// from its connection task. As [`submit`](Self::submit), with no event built when the
    /// callback finishes at once (the common case: an echo): the payload goes straight to it,
    /// and an event is made only to queue it or to wait for the callback.
    pub(super) fn submit_receive(self: &Rc<Self>, fd: ConnId, listener: u16, payload: Bytes) {
        let queued = {
            let q = self.queues.borrow();
            !q.is_empty() && q.contains_key(&(fd.0, 0))
        };
        let ev = |payload| WEv {
            kind: Kind::Receive,
            fd,
            listener,
            payload,
            seq: None,
            stream: 0,
            head: None,
        };
        if queued {
            return self.submit(ev(payload));
        }
        self.inflight.set(self.inflight.get() + 1);
        self.state(true);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        let conn = Some(fd);
        match holds::enter(conn, || self.receive_with(fd, listener, payload, &mut cx)) {
            None => {
                self.ctx.handled_one();
                self.finished();
            }
            Some(fut) => self.receive_waits(ev(Bytes::new()), fut),
        }
    }

    /// `on_receive` without a task when it can: the callback's future is polled here once
    /// (most callbacks — an echo, a `send` — finish at once, in the callback's reused slot:
    /// no allocation); only one that waits gets a task, which the connection's later events
    /// queue behind. Only for `Receive`, whose producers (the connection task, the pipe
    /// reader) hold no lock while they hand events over. Inlined into `submit`: a call would
    /// copy the event (a few hundred bytes: it has room for an HTTP request head) once more
    /// per `Receive`.
    #[inline(always)]
    fn receive_inline(self: &Rc<Self>, mut ev: WEv) {
        // A waker that does nothing is enough for this first poll: if the future is pending,
        // the task below polls it again at once, and that poll registers the task's waker.
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        let conn = Some(ev.fd);
        match holds::enter(conn, || self.receive_now(&mut ev, &mut cx)) {
            None => self.finish_one(&ev),
            Some(fut) => self.receive_waits(ev, fut),
        }
    }

    /// `on_receive` of `ev` did not finish on its first poll: a task waits for the rest, and
    /// the connection's later events queue behind it.
    fn receive_waits(self: &Rc<Self>, ev: WEv, mut fut: BoxFut) {
        let conn = Some(ev.fd);
        let fd = (ev.fd.0, 0);
        self.queues.borrow_mut().insert(fd, VecDeque::new());
        let me = self.clone();
        tokio::task::spawn_local(async move {
            poll_fn(|cx| holds::enter(conn, || poll_guarded("on_receive", &mut fut, cx))).await;
            me.finish_one(&ev);
            if let Some(next) = me.next_queued(fd) {
                me.run_queue(fd, next).await;
            }
        });
    }

    /// A whole HTTP request without a task when it can, as [`Self::receive_inline`] does for
    /// `on_receive`: a handler that answers at once (most do) costs no task spawn, no queue
    /// and no wake-up. Its producers (the connection task in Base mode, HTTP/2's driver, the
    /// pipe reader) hold no lock while they hand it over. WebSocket messages too (the
    /// connection task hands them over with the WebSocket lock released, `owner::ws`).
    fn request_inline(self: &Rc<Self>, mut ev: WEv) {
        let Some(p) = self.protocol.clone() else {
            self.finish_one(&ev);
            return;
        };
        let ws = ev.kind.is_ws_data();
        if !ws {
            // WebSocket messages count in their handler.
            self.count_request();
        }
        let pe = ProtoEvent {
            kind: ev.kind,
            fd: ev.fd,
            stream: ev.stream,
            payload: std::mem::take(&mut ev.payload),
            head: ev.head.take(),
        };
        let conn = Some(ev.fd).filter(|fd| fd.0 != 0);
        // The handler polls the application's future once itself; what waits comes back.
        match holds::enter(conn, || p.request(self.ctx.clone(), pe)) {
            None => {
                self.finish_one(&ev);
                if ws {
                    self.flush_ws_final(ev.fd.0);
                }
            }
            Some(mut fut) => {
                let fd = (ev.fd.0, ev.stream);
                self.queues.borrow_mut().insert(fd, VecDeque::new());
                if fd.1 != 0 {
                    *self.streams.borrow_mut().entry(fd.0).or_insert(0) += 1;
                }
                let me = self.clone();
                tokio::task::spawn_local(async move {
                    poll_fn(|cx| holds::enter(conn, || poll_guarded("on_request", &mut fut, cx)))
                        .await;
                    me.finish_one(&ev);
                    match me.next_queued(fd) {
                        Some(next) => me.run_queue(fd, next).await,
                        None if ws => me.flush_ws_final(fd.0),
                        None => {}
                    }
                });
            }
        }
    }

    /// Base mode: a WebSocket Close held back until the messages before it were handled
    /// (`owner::ws::flush_final`) goes out now, unless events of the connection are queued.
    fn flush_ws_final(&self, fd: u64) {
        if let Some(c) = self.conns.as_ref().and_then(|t| t.get(ConnId(fd))) {
            crate::owner::ws::flush_final(&c, || self.queues.borrow().contains_key(&(fd, 0)));
        }
    }

    /// Runs `ev`, then the events queued behind it for connection `fd`, in order.
    async fn run_queue(self: &Rc<Self>, fd: (u64, u32), mut ev: WEv) {
        loop {
            let ws = ev.kind.is_ws_message();
            // Tasks and timers started by the callbacks count as owed to this connection.
            holds::in_conn(Some(ev.fd).filter(|fd| fd.0 != 0), self.run_one(ev)).await;
            match self.next_queued(fd) {
                Some(e) => ev = e,
                None => {
                    if ws {
                        self.flush_ws_final(fd.0);
                    }
                    return;
                }
            }
        }
    }

    /// The next event queued for connection `fd`, or `None` after retiring its (empty) queue,
    /// so that its next event runs at once.
    fn next_queued(&self, fd: (u64, u32)) -> Option<WEv> {
        let mut q = self.queues.borrow_mut();
        let next = q.get_mut(&fd).and_then(|q| q.pop_front());
        if next.is_none() {
            q.remove(&fd);
            if fd.1 != 0 {
                let mut s = self.streams.borrow_mut();
                if let Some(n) = s.get_mut(&fd.0) {
                    *n -= 1;
                    if *n == 0 {
                        s.remove(&fd.0);
                    }
                }
                self.streams_done.notify_waiters();
            }
        }
        next
    }

    /// Waits until connection `fd` has no HTTP/2 stream queue left.
    async fn streams_idle(&self, fd: ConnId) {
        loop {
            let done = self.streams_done.notified();
            if !self.streams.borrow().contains_key(&fd.0) {
                return;
            }
            done.await;
        }
    }

    fn state(&self, busy: bool) {
        let slot = self.ctx.shared.worker(self.ctx.id);
        slot.state
            .store(if busy { shared::W_BUSY } else { shared::W_IDLE }, Relaxed);
    }

    async fn run_one(&self, mut ev: WEv) {
        let h = self.ctx.clone();
        let cbs = self
            .ports
            .get(ev.listener as usize)
            .unwrap_or(&self.ports[0]);
        match ev.kind {
            Kind::Connect => {
                if let Some(cb) = &cbs.on_connect {
                    guarded("on_connect", cb(h, ev.fd)).await;
                }
            }
            Kind::Receive => {
                let rest = poll_fn(|cx| Poll::Ready(self.receive_now(&mut ev, cx))).await;
                if let Some(fut) = rest {
                    guarded("on_receive", fut).await;
                }
            }
            Kind::HttpRequest
            | Kind::HttpHead
            | Kind::HttpBody
            | Kind::HttpEnd
            | Kind::HttpAbort
            | Kind::WsOpen
            | Kind::WsText
            | Kind::WsBinary
            | Kind::WsPing
            | Kind::WsPong
            | Kind::WsHandshake => {
                if matches!(ev.kind, Kind::HttpRequest | Kind::HttpEnd) {
                    self.count_request();
                }
                if let Some(p) = &self.protocol {
                    let pe = ProtoEvent {
                        kind: ev.kind,
                        fd: ev.fd,
                        stream: ev.stream,
                        payload: std::mem::take(&mut ev.payload),
                        head: ev.head.take(),
                    };
                    p.clone().event(h, pe).await;
                }
            }
            Kind::Close => {
                // An HTTP/2 connection's streams still running finish first.
                self.streams_idle(ev.fd).await;
                if ev.payload.as_ref() == CLOSE_PEER_FIN {
                    self.half_closed(ev.fd).await;
                }
                if let Some(p) = &self.protocol {
                    p.closed(ev.fd);
                }
                self.ctx.shared.mark_closing(ev.fd);
                if let Some(cb) = &cbs.on_close {
                    guarded("on_close", cb(h, ev.fd)).await;
                }
                if let Some(c) = &self.ctx.cluster {
                    c.closed(ev.fd); // it leaves its cluster rooms
                }
            }
            Kind::Packet => {
                self.count_request();
                if let (Some(cb), Some((addr, data))) = (&cbs.on_packet, decode_packet(&ev.payload))
                {
                    let p = Packet {
                        data,
                        addr,
                        listener: ev.listener as usize,
                    };
                    guarded("on_packet", cb(h, p)).await;
                }
            }
            Kind::PipeMessage => {
                if let Some(cb) = &self.on_pipe_message {
                    guarded(
                        "on_pipe_message",
                        cb(h, ev.listener as usize, ev.payload.clone()),
                    )
                    .await;
                }
            }
            _ => {}
        }
        self.finish_one(&ev);
    }

    /// The client half-closed `fd`: keep it open (writable) while the application still owes
    /// it replies, until it closes it, or for `half_close_timeout` at most.
    async fn half_closed(&self, fd: ConnId) {
        let limit = self.ctx.settings.half_close_timeout;
        if limit.is_zero() || !self.ctx.holds.held(fd) {
            return;
        }
        let shared = &self.ctx.shared;
        let end = self
            .ctx
            .holds
            .wait(fd, limit, || shared.live_slot(fd).is_none())
            .await;
        if end == WaitEnd::TimedOut {
            tracing::info!(
                fd = fd.0,
                timeout_ms = limit.as_millis() as u64,
                "half-closed connection: replies still owed after half_close_timeout; closing it"
            );
        }
    }

    /// Counts a `Receive` and runs its `on_receive` callback: its future is made and polled
    /// once with `cx` ([`PolledCb`](crate::runtime::app::PolledCb)); `None` when it is done (or there is no callback, or it
    /// panicked: logged, the event is lost), else the rest to await.
    /// The callback gets the payload itself, not a clone: cloning a `Bytes` made from a `Vec`
    /// allocates its shared header, and nothing reads the payload after the callback.
    fn receive_now(&self, ev: &mut WEv, cx: &mut std::task::Context<'_>) -> Option<BoxFut> {
        let data = std::mem::take(&mut ev.payload);
        self.receive_with(ev.fd, ev.listener, data, cx)
    }

    /// [`receive_now`](Self::receive_now) of a `Receive` of `data` on connection `fd`.
    #[inline(always)]
    fn receive_with(
        &self,
        fd: ConnId,
        listener: u16,
        data: Bytes,
        cx: &mut std::task::Context<'_>,
    ) -> Option<BoxFut> {
        self.count_request();
        let cbs = self.ports.get(listener as usize).unwrap_or(&self.ports[0]);
        let cb = cbs.on_receive.as_ref()?;
        let e = ReceiveEvent {
            fd,
            listener: listener as usize,
            data,
        };
        let ctx = self.ctx.clone();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cb(ctx, e, cx))) {
            Ok(rest) => rest,
            Err(_) => {
                tracing::error!(
                    callback = "on_receive",
                    "callback panicked (location above); the event is lost, the worker goes on"
                );
                None
            }
        }
    }

    /// One more request in this worker's `stats()`.
    fn count_request(&self) {
        self.ctx.count_request();
    }

    /// What follows every event: the acknowledgement, the busy/idle state.
    fn finish_one(&self, ev: &WEv) {
        // One per request, as `count_request` counts them (an HTTP request is its
        // `HttpRequest`, or the `HttpEnd` of a streamed one; WebSocket messages count in
        // their handler).
        if matches!(
            ev.kind,
            Kind::Receive | Kind::Packet | Kind::HttpRequest | Kind::HttpEnd
        ) {
            self.ctx.handled_one();
        }
        // Acknowledge: the master forgets the event (and, for Close, finishes the socket).
        // The reply just queued carries it when there is one (one record, not two).
        if let (Some(tx), Some(seq)) = (&self.tx, ev.seq) {
            tx.ack(seq);
        }
        if ev.kind == Kind::Close {
            if let Some(c) = self.conns.as_ref().and_then(|t| t.get(ev.fd)) {
                c.close_done();
            }
        }
        self.finished();
    }

    /// One event fewer in flight: the busy/idle state.
    fn finished(&self) {
        let n = self.inflight.get() - 1;
        self.inflight.set(n);
        if n == 0 {
            self.state(false);
            if self.idle_watched.get() {
                self.idle.notify_waiters();
            }
        }
    }
}
