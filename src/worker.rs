//! A worker process: runs the application's callbacks on a single-threaded tokio runtime.
//!
//! Process mode: events arrive over the worker's pipe from the master; replies go back the same
//! way. Base mode: the worker accepts on its own `SO_REUSEPORT` listener and owns its
//! connections. Either way the events of one connection run one after another, in order (a
//! queue per connection), while events of different connections run concurrently.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::future::poll_fn;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::panic::AssertUnwindSafe;
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Notify;

use crate::conn::{Conn, EventSink, WriteError};
use crate::error::SendError;
use crate::ipc::{self, Header, Kind, PipeTx, Reassembler};
use crate::master::{Bound, Launch};
use crate::reactor::{decode_packet, ConnTable};
use crate::server::{
    send_record, BoxFut, Callbacks, Handle, Packet, ReceiveEvent, Server, SockType,
};
use crate::settings::{Mode, Settings};
use crate::shared::{self, NewConn, Shared};
use crate::{sys, ConnId};

enum Backend {
    Pipe(Arc<PipeTx>),
    Local(Arc<ConnTable>),
}

/// The worker's side of a [`Handle`].
pub(crate) struct WorkerCtx {
    pub(crate) id: usize,
    pub(crate) shared: Shared,
    pub(crate) settings: Arc<Settings>,
    backend: Backend,
    udp: Vec<Option<(SocketAddr, std::net::UdpSocket)>>,
    /// Links to the task workers, and this worker's timers (src/task.rs).
    pub(crate) tasks: crate::task::WorkerTasks,
    /// Base mode: queues of WebSocket output for the other workers' connections
    /// (`crate::mailbox`).
    mail: Option<Arc<crate::mailbox::Outboxes>>,
}

impl WorkerCtx {
    /// The pipe to the master (Process mode).
    pub(crate) fn pipe(&self) -> Option<&Arc<PipeTx>> {
        match &self.backend {
            Backend::Pipe(tx) => Some(tx),
            Backend::Local(_) => None,
        }
    }

    /// This worker's own connections (Base mode).
    pub(crate) fn local_conns(&self) -> Option<&Arc<ConnTable>> {
        match &self.backend {
            Backend::Local(c) => Some(c),
            Backend::Pipe(_) => None,
        }
    }

    /// Base mode: the queues to the other workers' mailboxes.
    pub(crate) fn mail(&self) -> Option<&crate::mailbox::Outboxes> {
        self.mail.as_deref()
    }

    pub(crate) fn send(&self, fd: ConnId, data: Bytes) -> Result<(), SendError> {
        match &self.backend {
            Backend::Pipe(tx) => {
                let Some(slot) = self.shared.live_slot(fd) else {
                    return Err(SendError::Closed(fd, data));
                };
                if slot.out_bytes.load(Relaxed) as usize + data.len()
                    > self.settings.buffer_output_size
                {
                    return Err(SendError::BufferFull(fd, data));
                }
                if send_record(tx, Kind::Send, fd, &data) {
                    Ok(())
                } else {
                    Err(SendError::Closed(fd, data))
                }
            }
            Backend::Local(conns) => match conns.get(fd) {
                Some(c) => match c.write(&data) {
                    Ok(()) => Ok(()),
                    Err(WriteError::Full) => Err(SendError::BufferFull(fd, data)),
                    Err(WriteError::Closed) => Err(SendError::Closed(fd, data)),
                },
                None if self.shared.live_slot(fd).is_some() => Err(SendError::NotLocal(fd, data)),
                None => Err(SendError::Closed(fd, data)),
            },
        }
    }

    /// `Handle::send_message`: Process mode through the master, Base mode straight to the
    /// target's mailbox (`crate::mailbox`).
    pub(crate) fn send_message(&self, to: usize, data: Bytes) -> Result<(), SendError> {
        if to >= self.settings.worker_num {
            return Err(SendError::NoWorker(to, data));
        }
        match &self.backend {
            Backend::Pipe(tx) => {
                let h = Header {
                    kind: Kind::PipeMsg,
                    flags: 0,
                    listener: self.id as u16,
                    session: to as u64,
                    seq: 0,
                };
                if tx.push(h, &data) {
                    Ok(())
                } else {
                    Err(SendError::Closed(ConnId(0), data))
                }
            }
            Backend::Local(_) => {
                let master = self.shared.header().master_pid.load(Relaxed);
                crate::mailbox::send(master, self.id, to, &data).map_err(|e| SendError::Io(e, data))
            }
        }
    }

    pub(crate) fn close(&self, fd: ConnId) -> bool {
        match &self.backend {
            Backend::Pipe(tx) => {
                if self.shared.mark_closing(fd) {
                    send_record(tx, Kind::CloseReq, fd, &[])
                } else {
                    false
                }
            }
            Backend::Local(conns) => match conns.get(fd) {
                Some(c) => {
                    self.shared.mark_closing(fd);
                    c.close()
                }
                None => false,
            },
        }
    }

    pub(crate) fn send_to(
        &self,
        listener: Option<usize>,
        addr: SocketAddr,
        data: Bytes,
    ) -> Result<(), SendError> {
        let sock = match listener {
            Some(i) => self.udp.get(i).and_then(|s| s.as_ref()),
            None => self
                .udp
                .iter()
                .flatten()
                .find(|(a, _)| a.is_ipv4() == addr.is_ipv4()),
        };
        let Some((_, sock)) = sock else {
            return Err(SendError::NoSocket(
                "no UDP listener for that address family",
                data,
            ));
        };
        match sock.send_to(&data, addr) {
            Ok(_) => Ok(()),
            Err(e) => Err(SendError::Io(e, data)),
        }
    }
}

/// One event for the application.
struct WEv {
    kind: Kind,
    fd: ConnId,
    listener: u16,
    payload: Bytes,
    seq: Option<u64>,
    /// Base mode: the request head, already parsed by the connection task.
    head: Option<Box<rswoole_codec::http1::RequestHead>>,
}

struct Dispatcher {
    handle: Handle,
    ports: Vec<Callbacks>,
    queues: RefCell<HashMap<u64, VecDeque<WEv>>>,
    inflight: Cell<usize>,
    idle: Notify,
    tx: Option<Arc<PipeTx>>,
    conns: Option<Arc<ConnTable>>,
    on_pipe_message: Option<crate::server::PipeCb>,
    http: crate::http::worker::WorkerHttp,
    on_request: Option<crate::http::worker::ReqCb>,
    ws: crate::websocket::WsCallbacks,
}

/// Runs a callback's future, turning a panic into a logged, lost event.
pub(crate) async fn guarded(name: &'static str, mut fut: BoxFut) {
    poll_fn(|cx| poll_guarded(name, &mut fut, cx)).await
}

/// Polls a callback's future once; a panic is logged and counts as done.
fn poll_guarded(name: &'static str, fut: &mut BoxFut, cx: &mut std::task::Context<'_>) -> Poll<()> {
    match std::panic::catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
        Ok(p) => p,
        Err(_) => {
            tracing::error!(
                callback = name,
                "callback panicked (location above); the event is lost, the worker goes on"
            );
            Poll::Ready(())
        }
    }
}

impl Dispatcher {
    fn submit(self: &Rc<Self>, ev: WEv) {
        self.inflight.set(self.inflight.get() + 1);
        self.state(true);
        if ev.kind == Kind::Packet {
            let me = self.clone();
            tokio::task::spawn_local(async move {
                me.run_one(ev).await;
            });
            return;
        }
        let fd = ev.fd.0;
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
            q.insert(fd, VecDeque::new());
        }
        let me = self.clone();
        tokio::task::spawn_local(async move {
            me.run_queue(fd, ev).await;
        });
    }

    /// `on_receive` without a task when it can: the callback's future is polled here once
    /// (most callbacks — an echo, a `send` — finish at once); only one that waits gets a task,
    /// which the connection's later events queue behind. Only for `Receive`, whose producers
    /// (the connection task, the pipe reader) hold no lock while they hand events over.
    fn receive_inline(self: &Rc<Self>, ev: WEv) {
        let Some(mut fut) = self.receive_future(&ev) else {
            self.finish_one(&ev);
            return;
        };
        // A waker that does nothing is enough for this first poll: if the future is pending,
        // the task below polls it again at once, and that poll registers the task's waker.
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match poll_guarded("on_receive", &mut fut, &mut cx) {
            Poll::Ready(()) => self.finish_one(&ev),
            Poll::Pending => {
                let fd = ev.fd.0;
                self.queues.borrow_mut().insert(fd, VecDeque::new());
                let me = self.clone();
                tokio::task::spawn_local(async move {
                    poll_fn(|cx| poll_guarded("on_receive", &mut fut, cx)).await;
                    me.finish_one(&ev);
                    if let Some(next) = me.next_queued(fd) {
                        me.run_queue(fd, next).await;
                    }
                });
            }
        }
    }

    /// Runs `ev`, then the events queued behind it for connection `fd`, in order.
    async fn run_queue(self: &Rc<Self>, fd: u64, mut ev: WEv) {
        loop {
            let ws = crate::websocket::is_message_kind(ev.kind);
            self.run_one(ev).await;
            match self.next_queued(fd) {
                Some(e) => ev = e,
                None => {
                    // Base mode: a WebSocket close held back until the messages before it
                    // were handled goes out now.
                    if let Some(c) = self
                        .conns
                        .as_ref()
                        .filter(|_| ws)
                        .and_then(|t| t.get(ConnId(fd)))
                    {
                        crate::websocket::owner::flush_final(&c);
                    }
                    return;
                }
            }
        }
    }

    /// The next event queued for connection `fd`, or `None` after retiring its (empty) queue,
    /// so that its next event runs at once.
    fn next_queued(&self, fd: u64) -> Option<WEv> {
        let mut q = self.queues.borrow_mut();
        let next = q.get_mut(&fd).and_then(|q| q.pop_front());
        if next.is_none() {
            q.remove(&fd);
        }
        next
    }

    fn state(&self, busy: bool) {
        let slot = self.handle.ctx.shared.worker(self.handle.ctx.id);
        slot.state
            .store(if busy { shared::W_BUSY } else { shared::W_IDLE }, Relaxed);
    }

    async fn run_one(&self, mut ev: WEv) {
        let h = self.handle.clone();
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
                if let Some(fut) = self.receive_future(&ev) {
                    guarded("on_receive", fut).await;
                }
            }
            Kind::HttpRequest | Kind::HttpHead | Kind::HttpBody | Kind::HttpEnd => {
                if matches!(ev.kind, Kind::HttpRequest | Kind::HttpEnd) {
                    self.count_request();
                }
                // Boxed, like the WebSocket branch: the task spawned per event stays small
                // (it is moved into its allocation) for the plain TCP events.
                Box::pin(self.http.event(
                    &h,
                    self.on_request.as_ref(),
                    ev.kind,
                    ev.fd,
                    ev.payload.clone(),
                    ev.head.take(),
                ))
                .await;
            }
            Kind::WsOpen
            | Kind::WsText
            | Kind::WsBinary
            | Kind::WsPing
            | Kind::WsPong
            | Kind::WsHandshake => {
                Box::pin(crate::websocket::worker::event(
                    &self.ws,
                    &self.http,
                    &h,
                    ev.kind,
                    ev.fd,
                    ev.payload.clone(),
                ))
                .await;
            }
            Kind::Close => {
                self.http.closed(ev.fd);
                self.handle.ctx.shared.mark_closing(ev.fd);
                if let Some(cb) = &cbs.on_close {
                    guarded("on_close", cb(h, ev.fd)).await;
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

    /// Counts a `Receive` and builds its `on_receive` future (`None` without a callback).
    fn receive_future(&self, ev: &WEv) -> Option<BoxFut> {
        self.count_request();
        let cbs = self
            .ports
            .get(ev.listener as usize)
            .unwrap_or(&self.ports[0]);
        let cb = cbs.on_receive.as_ref()?;
        let e = ReceiveEvent {
            fd: ev.fd,
            listener: ev.listener as usize,
            data: ev.payload.clone(),
        };
        Some(cb(self.handle.clone(), e))
    }

    /// One more request in this worker's `stats()`.
    fn count_request(&self) {
        self.handle
            .ctx
            .shared
            .worker(self.handle.ctx.id)
            .requests
            .fetch_add(1, Relaxed);
    }

    /// What follows every event: the acknowledgement, the busy/idle state.
    fn finish_one(&self, ev: &WEv) {
        if matches!(ev.kind, Kind::Receive | Kind::Packet) {
            crate::upkeep::handled_one(self.handle.ctx.id);
        }
        // Acknowledge: the master forgets the event (and, for Close, finishes the socket).
        if let (Some(tx), Some(seq)) = (&self.tx, ev.seq) {
            tx.push(
                Header {
                    kind: Kind::Ack,
                    flags: 0,
                    listener: 0,
                    session: 0,
                    seq: 0,
                },
                &seq.to_le_bytes(),
            );
        }
        if ev.kind == Kind::Close {
            if let Some(c) = self.conns.as_ref().and_then(|t| t.get(ev.fd)) {
                c.close_done();
            }
        }
        let n = self.inflight.get() - 1;
        self.inflight.set(n);
        if n == 0 {
            self.state(false);
            self.idle.notify_waiters();
        }
    }

    async fn wait_idle(&self, limit: Duration) {
        let _ = tokio::time::timeout(limit, async {
            while self.inflight.get() > 0 {
                self.idle.notified().await;
            }
        })
        .await;
    }
}

/// Feeds a Base-mode worker's own connections into its dispatcher.
struct LocalSink {
    disp: Rc<Dispatcher>,
}

impl EventSink for LocalSink {
    fn http_request(&self, conn: &Arc<Conn>, head: rswoole_codec::http1::RequestHead, body: Bytes) {
        self.disp.submit(WEv {
            kind: Kind::HttpRequest,
            fd: conn.id,
            listener: conn.listener,
            payload: body,
            seq: None,
            head: Some(Box::new(head)),
        });
    }
    fn busy(&self, conn: &Arc<Conn>) -> bool {
        self.disp.queues.borrow().contains_key(&conn.id.0)
    }
    fn connected(&self, conn: &Arc<Conn>) {
        self.disp.submit(WEv {
            kind: Kind::Connect,
            fd: conn.id,
            listener: conn.listener,
            payload: Bytes::new(),
            seq: None,
            head: None,
        });
    }
    fn data(&self, conn: &Arc<Conn>, data: Bytes) {
        self.disp.submit(WEv {
            kind: Kind::Receive,
            fd: conn.id,
            listener: conn.listener,
            payload: data,
            seq: None,
            head: None,
        });
    }
    fn event(&self, conn: &Arc<Conn>, kind: Kind, payload: Bytes) {
        self.disp.submit(WEv {
            kind,
            fd: conn.id,
            listener: conn.listener,
            payload,
            seq: None,
            head: None,
        });
    }
    fn closed(&self, conn: &Arc<Conn>) {
        self.disp.submit(WEv {
            kind: Kind::Close,
            fd: conn.id,
            listener: conn.listener,
            payload: Bytes::new(),
            seq: None,
            head: None,
        });
    }
}

/// Runs worker `id` in this (freshly forked) process, then exits.
pub(crate) fn run(server: &Server, launch: &Launch, id: usize, pipe: Option<OwnedFd>) -> ! {
    sys::reset_signals();
    let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM);
    sys::set_process_title(&format!("rswoole: worker {id}"));
    let slot = launch.shared.worker(id);
    slot.pid.store(std::process::id(), Relaxed);
    slot.started_ms.store(shared::now_ms(), Relaxed);
    slot.state.store(shared::W_STARTING, Relaxed);
    let code = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => {
            let local = tokio::task::LocalSet::new();
            local.block_on(&rt, main(server, launch, id, pipe))
        }
        Err(e) => {
            tracing::error!(error = %e, "worker {id}: cannot build its runtime");
            1
        }
    };
    slot.state.store(shared::W_EXITING, Relaxed);
    std::process::exit(code)
}

async fn main(server: &Server, launch: &Launch, id: usize, pipe: Option<OwnedFd>) -> i32 {
    let settings = launch.settings.clone();
    let udp = launch
        .listeners
        .iter()
        .map(|b| {
            b.udp
                .as_ref()
                .and_then(|u| u.try_clone().ok())
                .map(|u| (b.addr, u))
        })
        .collect();
    let tx = match pipe.map(PipeTx::new).transpose() {
        Ok(t) => t.map(Arc::new),
        Err(e) => {
            tracing::error!(error = %e, "worker {id}: cannot register its pipe");
            return 1;
        }
    };
    let conns = (settings.mode == Mode::Base).then(|| Arc::new(ConnTable::new()));
    let backend = match (&tx, &conns) {
        (Some(tx), _) => Backend::Pipe(tx.clone()),
        (None, Some(c)) => Backend::Local(c.clone()),
        (None, None) => unreachable!("a Process-mode worker always has a pipe"),
    };
    let mail = conns.as_ref().map(|_| {
        let m = Arc::new(crate::mailbox::Outboxes::new(
            launch.shared.header().master_pid.load(Relaxed),
            id,
            settings.worker_num,
        ));
        m.start();
        m
    });
    let ctx = Arc::new(WorkerCtx {
        id,
        shared: launch.shared.clone(),
        settings: settings.clone(),
        backend,
        udp,
        tasks: crate::task::WorkerTasks::new(server, &settings, id, launch.master_pid),
        mail: mail.clone(),
    });
    let handle = Handle { ctx };
    crate::task::start_links(&handle, server);
    let disp = Rc::new(Dispatcher {
        handle: handle.clone(),
        ports: (0..server.ports.len())
            .map(|i| server.port_callbacks(i))
            .collect(),
        queues: RefCell::new(HashMap::new()),
        inflight: Cell::new(0),
        idle: Notify::new(),
        tx: tx.clone(),
        conns: conns.clone(),
        http: crate::http::worker::WorkerHttp::new(settings.clone()),
        on_request: server.on_request.clone(),
        ws: server.ws.clone(),
        on_pipe_message: server.on_pipe_message.clone(),
    });
    let writer = tx.clone().map(|tx| {
        tokio::task::spawn_local(async move {
            if let Err(e) = tx.run_writer().await {
                tracing::debug!(error = %e, "worker pipe writer ended");
            }
        })
    });
    crate::upkeep::init_worker(&settings);
    // SIGHUP from the manager: reopen the log file (`crate::daemon`).
    if let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        tokio::task::spawn_local(async move {
            while hup.recv().await.is_some() {
                crate::daemon::reopen_log();
            }
        });
    }
    if let Some(cb) = &server.on_worker_start {
        guarded("on_worker_start", cb(handle.clone(), id)).await;
    }
    launch
        .shared
        .worker(id)
        .state
        .store(shared::W_IDLE, Relaxed);
    let mut sigterm = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "worker {id}: cannot watch SIGTERM");
            return 1;
        }
    };
    let mut tasks = Vec::new();
    match &tx {
        Some(tx) => {
            let tx = tx.clone();
            let d = disp.clone();
            tokio::select! {
                _ = read_pipe(&tx, &d) => {}
                _ = sigterm.recv() => {}
            }
        }
        None => {
            let conns = conns.clone().expect("base mode has a table");
            let (d, own, master) = (
                disp.clone(),
                conns.clone(),
                launch.shared.header().master_pid.load(Relaxed),
            );
            tasks.push(tokio::task::spawn_local(async move {
                crate::mailbox::serve(master, id, |h, payload| match h.kind {
                    Kind::PipeMessage => d.submit(WEv {
                        kind: Kind::PipeMessage,
                        fd: ConnId(0),
                        listener: h.listener,
                        payload: Bytes::copy_from_slice(payload),
                        seq: None,
                        head: None,
                    }),
                    // Other workers' WebSocket output for our connections: applied here, in
                    // arrival order, not through the dispatcher (no callback runs).
                    _ => crate::websocket::owner::from_peer(&own, h, payload),
                })
                .await
            }));
            for (i, b) in launch.listeners.iter().enumerate() {
                let framing = server.port_framing(i, &settings);
                match base_listener(b, i, id, &launch.shared, &settings, &disp, &conns, framing) {
                    Ok(Some(t)) => tasks.push(t),
                    Ok(None) => {}
                    Err(e) => {
                        tracing::error!(addr = %b.addr, error = %e, "worker {id}: cannot listen");
                        return 1;
                    }
                }
            }
            if let Some(hb) =
                crate::upkeep::heartbeat(&settings, launch.shared.clone(), conns.clone(), |c| &**c)
            {
                tasks.push(tokio::task::spawn_local(hb));
            }
            sigterm.recv().await;
        }
    }
    for t in &tasks {
        t.abort();
    }
    disp.wait_idle(settings.max_wait_time).await;
    // Results of this worker's tasks come back to it only: wait for them (bounded).
    crate::task::wait_pending(&handle, settings.max_wait_time).await;
    if let Some(cb) = &server.on_worker_stop {
        guarded("on_worker_stop", cb(handle.clone(), id)).await;
    }
    if let Some(m) = &mail {
        // WebSocket output for other workers' clients queued until now (bounded).
        m.drain(Duration::from_secs(1)).await;
    }
    if let (Some(tx), Some(w)) = (&tx, writer) {
        tx.close();
        let _ = tokio::time::timeout(Duration::from_secs(2), w).await;
    }
    0
}

async fn read_pipe(tx: &PipeTx, disp: &Rc<Dispatcher>) {
    let mut buf = vec![0u8; ipc::MAX_DGRAM];
    let mut re = Reassembler::default();
    loop {
        let n = match tx.recv(&mut buf).await {
            Ok(0) => {
                tracing::info!("master is gone; worker exits");
                return;
            }
            Ok(n) => n,
            Err(e) => {
                tracing::error!(error = %e, "reading the pipe failed");
                return;
            }
        };
        let mut stop = false;
        for rec in ipc::decode(&buf[..n]) {
            let (h, payload) = match rec {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, "malformed IPC from master");
                    break;
                }
            };
            if h.kind == Kind::Stop {
                stop = true;
                continue;
            }
            let Some(payload) = re.feed(&h, payload) else {
                continue;
            };
            disp.submit(WEv {
                kind: h.kind,
                fd: ConnId(h.session),
                listener: h.listener,
                payload,
                seq: Some(h.seq),
                head: None,
            });
        }
        if stop {
            return;
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn base_listener(
    b: &Bound,
    index: usize,
    id: usize,
    shared: &Shared,
    settings: &Arc<Settings>,
    disp: &Rc<Dispatcher>,
    conns: &Arc<ConnTable>,
    framing: crate::proto::ConnConfig,
) -> std::io::Result<Option<tokio::task::JoinHandle<()>>> {
    match b.kind {
        SockType::Udp => {
            let Some(u) = &b.udp else { return Ok(None) };
            let sock = tokio::net::UdpSocket::from_std(u.try_clone()?)?;
            let disp = disp.clone();
            Ok(Some(tokio::task::spawn_local(async move {
                let mut buf = vec![0u8; 65536];
                loop {
                    match sock.recv_from(&mut buf).await {
                        Ok((n, from)) => {
                            let payload = crate::reactor::encode_packet(from, &buf[..n]);
                            disp.submit(WEv {
                                kind: Kind::Packet,
                                fd: ConnId(0),
                                listener: index as u16,
                                payload,
                                seq: None,
                                head: None,
                            });
                        }
                        Err(e) => tracing::debug!(error = %e, "udp recv"),
                    }
                }
            })))
        }
        SockType::Tcp => {
            let listener = crate::master::reuseport_listener(b.addr)?;
            let listener = tokio::net::TcpListener::from_std(listener)?;
            let sink = Rc::new(LocalSink { disp: disp.clone() });
            let shared = shared.clone();
            let settings = settings.clone();
            let conns = conns.clone();
            let framing = Rc::new(framing);
            let port = b.addr.port();
            Ok(Some(tokio::task::spawn_local(async move {
                let wslot = shared.worker(id);
                let mut refused_log = crate::master::RateLimit::default();
                loop {
                    let (stream, remote) = match listener.accept().await {
                        Ok(x) => x,
                        Err(e) => {
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                    };
                    let info = NewConn {
                        remote,
                        server_port: port,
                        listener: index,
                        reactor: id as u32,
                        worker: id as u32,
                    };
                    let Some(conn) = crate::conn::admit(
                        &shared,
                        &wslot.next_seq,
                        id as u64 + 1,
                        settings.worker_num as u64,
                        &info,
                        stream,
                        &conns,
                        settings.buffer_output_size,
                        &mut refused_log,
                    ) else {
                        continue;
                    };
                    let cid = conn.id;
                    let (sink, conns, shared, framing) =
                        (sink.clone(), conns.clone(), shared.clone(), framing.clone());
                    tokio::task::spawn_local(async move {
                        conn.run(sink, &framing).await;
                        conns.remove(cid);
                        shared.free(cid);
                    });
                }
            })))
        }
    }
}
