//! A worker process: runs the application's callbacks on a single-threaded tokio runtime.
//!
//! Process mode: events arrive over the worker's pipe from the master; replies go back the same
//! way. Base mode: the worker accepts on its own `SO_REUSEPORT` listeners and owns its
//! connections. Either way the events of one connection run one after another, in order (a
//! queue per connection), while events of different connections run concurrently.
//!
//! - this file: the process's start and stop, and the pipe reader;
//! - [`ctx`]: [`WorkerCtx`] and its transport (what every `Handle` method goes through);
//! - [`dispatcher`]: the per-connection queues that run callbacks;
//! - [`local`]: Base mode's own connections;
//! - [`recycle`]: recycling after `max_request` events.

mod ctx;
mod dispatcher;
mod local;
pub(crate) mod recycle;

use std::cell::{Cell, RefCell};
use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Notify;

use ctx::Backend;
pub(crate) use ctx::WorkerCtx;
use dispatcher::{Dispatcher, WEv};

use super::app::{guarded, App, Ctx};
use super::master::Launch;
use crate::base::{ConnId, Mode};
use crate::ipc::shared;
use crate::ipc::{self, Kind, PipeTx, Reassembler};
use crate::owner::table::ConnTable;

/// Runs worker `id` in this (freshly forked) process, then exits. `pipe`: its end of its pipe
/// to the master (Process mode); `recycle`: the sending end of the manager's recycle channel
/// (see [`recycle`]).
pub(crate) fn run(
    app: &App,
    launch: &Launch,
    id: usize,
    pipe: Option<OwnedFd>,
    recycle: Option<OwnedFd>,
) -> ! {
    let title = format!("rswoole: worker {id}");
    super::run_child(launch, id, &title, main(app, launch, id, pipe, recycle))
}

async fn main(
    app: &App,
    launch: &Launch,
    id: usize,
    pipe: Option<OwnedFd>,
    recycle: Option<OwnedFd>,
) -> i32 {
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
        let m = Arc::new(crate::ipc::mailbox::Outboxes::new(
            launch.shared.header().master_pid.load(Relaxed),
            id,
            settings.worker_num,
        ));
        m.start();
        m
    });
    let holds = Arc::new(super::holds::Holds::default());
    let cluster = match super::cluster::Cluster::start(settings.cluster.as_ref(), id) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "worker {id}: cannot set up the cluster");
            return 1;
        }
    };
    let ctx = Arc::new(WorkerCtx {
        id,
        shared: launch.shared.clone(),
        settings: settings.clone(),
        backend,
        udp,
        tasks: super::task_client::TaskClient::new(
            app,
            &settings,
            id,
            launch.master_pid,
            holds.clone(),
            launch.shared.clone(),
        ),
        timers: super::timers::Timers::with_holds(holds.clone()),
        holds,
        mail: mail.clone(),
        cluster: cluster.clone(),
    });
    let handle: Ctx = ctx;
    if let Some(c) = &cluster {
        c.serve_finish(&handle, app.on_finish.clone());
        if id == 0 {
            c.serve_node(handle.clone());
        }
    }
    super::task_client::start_links(&handle, app);
    let disp = Rc::new(Dispatcher {
        ctx: handle.clone(),
        ports: app.listeners.iter().map(|l| l.callbacks.clone()).collect(),
        queues: RefCell::new(Default::default()),
        streams: RefCell::new(Default::default()),
        streams_done: Notify::new(),
        inflight: Cell::new(0),
        idle: Notify::new(),
        idle_watched: Cell::new(false),
        tx: tx.clone(),
        conns: conns.clone(),
        protocol: app.protocol.as_ref().map(|f| f(&settings)),
        on_pipe_message: app.on_pipe_message.clone(),
    });
    // Tables sized by a burst's peak (the dispatcher's queues, Base mode's connections by
    // id) shrink when mostly empty, on the release check's clock (`owner::trim::shrink_map`).
    {
        let disp = Rc::downgrade(&disp);
        let conns = conns.clone();
        tokio::task::spawn_local(crate::owner::trim::shrink_on_clock(move || {
            disp.upgrade()
                .map(|d| d.shrink() + conns.as_ref().map_or(0, |c| c.shrink()))
        }));
    }
    let writer = tx.clone().map(|tx| {
        tokio::task::spawn_local(async move {
            if let Err(e) = tx.run_writer(false).await {
                tracing::debug!(error = %e, "worker pipe writer ended");
            }
        })
    });
    recycle::init_worker(&settings, recycle);
    // Give memory back after bursts (large messages pass through a worker in Process mode
    // too; in Base mode the accept loop starts the same check).
    crate::owner::trim::start();
    // SIGHUP from the manager: reopen the log file (`crate::daemon`).
    if let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        tokio::task::spawn_local(async move {
            while hup.recv().await.is_some() {
                super::daemon::reopen_log();
            }
        });
    }
    // Base mode: the mailbox is bound before this worker serves (it is reachable as soon as
    // its state says so, and before it accepts a connection).
    let mailbox = match &conns {
        Some(_) => {
            let master = launch.shared.header().master_pid.load(Relaxed);
            match crate::ipc::mailbox::bind(master, id).await {
                Ok(m) => Some(m),
                Err(e) => {
                    tracing::error!(error = %e, "worker {id}: cannot open its mailbox");
                    return 1;
                }
            }
        }
        None => None,
    };
    if let Some(cb) = &app.on_worker_start {
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
    let deadline = match &tx {
        Some(tx) => {
            let tx = tx.clone();
            let d = disp.clone();
            let mut read = std::pin::pin!(read_pipe(&tx, &d));
            tokio::select! {
                _ = &mut read => stop_deadline(&settings),
                _ = sigterm.recv() => {
                    let deadline = stop_deadline(&settings);
                    // The server is stopping: the master sent `Stop` after the last event it
                    // dispatched here, so handle everything before it. (SIGTERM to this
                    // worker alone stops reading now: the master re-delivers what it has not
                    // acknowledged to the replacement.)
                    if launch.shared.stopping() {
                        let _ = tokio::time::timeout_at(deadline, read).await;
                    }
                    deadline
                }
            }
        }
        None => {
            let conns = conns.clone().expect("base mode has a table");
            let mailbox = mailbox.expect("base mode has a mailbox");
            let (d, own, me) = (disp.clone(), conns.clone(), handle.clone());
            tasks.push(tokio::task::spawn_local(async move {
                crate::ipc::mailbox::serve(mailbox, id, |h, payload| match h.kind {
                    // A cluster operation on one of our connections, from worker 0's
                    // subscription (or a worker of this node): applied and answered here.
                    Kind::ClusterOpFwd => {
                        if let Some(c) = me.cluster.clone() {
                            let (ctx, p) = (me.clone(), payload.to_vec());
                            tokio::task::spawn_local(async move {
                                c.serve_remote(&ctx, &p, true).await
                            });
                        }
                    }
                    Kind::PipeMessage => d.submit(WEv {
                        kind: Kind::PipeMessage,
                        fd: ConnId(0),
                        listener: h.listener,
                        payload: Bytes::copy_from_slice(payload),
                        seq: None,
                        stream: 0,
                        head: None,
                    }),
                    // Other workers' WebSocket output for our connections: applied here, in
                    // arrival order, not through the dispatcher (no callback runs).
                    _ => crate::owner::ws::from_peer(&own, h, payload),
                })
                .await
            }));
            for (i, b) in launch.listeners.iter().enumerate() {
                let framing = launch.conn_config(app, i);
                match local::listen(b, i, id, &launch.shared, &settings, &disp, &conns, framing) {
                    Ok(Some(t)) => tasks.push(t),
                    Ok(None) => {}
                    Err(e) => {
                        tracing::error!(addr = %b.addr, error = %e, "worker {id}: cannot listen");
                        return 1;
                    }
                }
            }
            if let Some(hb) = crate::owner::heartbeat::heartbeat(
                &settings,
                launch.shared.clone(),
                conns.clone(),
                |c| &**c,
            ) {
                tasks.push(tokio::task::spawn_local(hb));
            }
            sigterm.recv().await;
            stop_deadline(&settings)
        }
    };
    for t in &tasks {
        t.abort();
    }
    finish_work(&disp, &handle, deadline).await;
    // Nothing may wait for ever: tasks unanswered now get `Timeout` in their on_finish.
    super::task_client::expire(&handle, app, Duration::from_millis(200)).await;
    if let Some(c) = &handle.cluster {
        // The same for cluster tasks (`task_cluster`) whose result has not come back.
        c.expire();
        let grace = tokio::time::Instant::now() + Duration::from_millis(200);
        while !c.settled() {
            tokio::select! {
                _ = c.next_change() => {}
                _ = tokio::time::sleep_until(grace) => break,
            }
        }
    }
    if let Some(cb) = &app.on_worker_stop {
        guarded("on_worker_stop", cb(handle.clone(), id)).await;
    }
    if let Some(c) = &conns {
        // Base mode: HTTP/2 clients get GOAWAY (their open streams are answered by now);
        // replies still queued for this worker's clients go out (bounded).
        for conn in c.all().iter().filter(|c| c.is_h2()) {
            conn.close();
        }
        c.flushed(Duration::from_millis(500)).await;
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

/// When a worker that starts stopping now must be done: `max_wait_time` from now (the
/// manager kills it a little later).
fn stop_deadline(settings: &crate::base::Settings) -> tokio::time::Instant {
    tokio::time::Instant::now() + settings.max_wait_time
}

/// Waits (until `deadline`) for the work a stopping worker still has: callbacks in flight
/// (a half-closed connection waiting for its replies among them), and its tasks' results and
/// their `on_finish` (results reach no other process). While the server stops, a task worker
/// answers the task it runs and reports the others as not run, so this ends well before the
/// deadline unless a task runs longer.
async fn finish_work(disp: &Dispatcher, ctx: &Ctx, deadline: tokio::time::Instant) {
    let client = ctx.tasks.clone();
    let cluster = ctx.cluster.clone();
    disp.idle_watched.set(true);
    loop {
        let mut idle = std::pin::pin!(disp.idle.notified());
        idle.as_mut().enable();
        let mut cluster_changed = std::pin::pin!(async {
            match &cluster {
                Some(c) => c.next_change().await,
                None => std::future::pending().await,
            }
        });
        let settled = client.as_ref().is_none_or(|c| c.settled())
            && cluster.as_ref().is_none_or(|c| c.settled());
        if disp.inflight.get() == 0 && settled {
            return;
        }
        let changed = async {
            match &client {
                Some(c) => c.next_change().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = idle => {}
            _ = changed => {}
            _ = &mut cluster_changed => {}
            _ = tokio::time::sleep_until(deadline) => return,
        }
    }
}

async fn read_pipe(tx: &PipeTx, disp: &Rc<Dispatcher>) {
    let mut rx = ipc::DgramReader::default();
    let mut re = Reassembler::default();
    loop {
        let dgram = match tx.recv_next(&mut rx).await {
            Ok([]) => {
                tracing::info!("master is gone; worker exits");
                return;
            }
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "reading the pipe failed");
                return;
            }
        };
        let mut stop = false;
        for rec in ipc::decode(dgram) {
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
            if h.kind == Kind::HttpRequest && re.whole(&h) {
                // The head is rebuilt from the master's parse index, straight from the
                // datagram: no copy of the whole payload, no second parse. A malformed one
                // goes on as bytes (the handler answers 400).
                if let Some((head, body)) = crate::owner::http::request_from_slice(payload) {
                    disp.submit(WEv {
                        kind: h.kind,
                        fd: ConnId(h.session),
                        listener: h.listener,
                        payload: body,
                        seq: Some(h.seq),
                        stream: h.stream,
                        head: Some(head),
                    });
                    continue;
                }
                tracing::warn!(
                    fd = h.session,
                    bytes = payload.len(),
                    "malformed HttpRequest record from the master; the request is answered 400"
                );
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
                stream: h.stream,
                head: None,
            });
        }
        if stop {
            return;
        }
    }
}
