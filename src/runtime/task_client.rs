//! The worker's side of tasks: sending them to task workers over their links, matching
//! results to callers (`task_wait`) or to `on_finish`, and re-sending or failing what a task
//! worker that died had not answered. Nothing is lost silently: every `task` ends in exactly
//! one `on_finish`, every `task_wait` in exactly one return.
//!
//! When the server stops, a task worker finishes the task it runs, answers it and says
//! `Goodbye`; no successor comes, so its unstarted tasks end here as
//! [`TaskError::NotRun`](crate::TaskError::NotRun), and later tasks for it are refused the
//! same way. The stopping worker waits for all of that ([`settled`]) up to its deadline, then
//! reports what is still unanswered as `Timeout` ([`expire`]).

use std::collections::HashMap;
use std::fmt;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::{oneshot, Notify};

use super::app::{catch_panic, App, Ctx, FinishCb, PipeCb};
use super::holds::{self, Hold, Holds};
use crate::base::task::Outcome;
use crate::base::{Settings, TaskError, TaskId, TaskResult};
use crate::ipc::shared::Shared;
use crate::ipc::task_link::{self, FKind, Frame, Outbox};

/// Most times a task is re-sent after task worker crashes (`task_retry_on_crash`).
const MAX_TRIES: u8 = 3;

enum Waiter {
    Finish,
    Wait(oneshot::Sender<Outcome>),
    /// `task_wait` timed out: the result is dropped, but the task still counts in the queue.
    Abandoned,
}

struct Pending {
    tw: usize,
    /// The link generation the task was written on; `None` while it waits in the outbox.
    sent_gen: Option<u64>,
    tries: u8,
    payload: Bytes,
    waiter: Waiter,
    /// `task` called while a connection's event was handled: `on_finish` answers it, so the
    /// connection is owed that reply until `on_finish` has run.
    hold: Option<Hold>,
    /// When `task()` was called (the task latency metric).
    started: std::time::Instant,
}

#[derive(Default)]
struct ClientState {
    pending: HashMap<u64, Pending>,
    /// Per task worker: this worker's tasks not yet answered.
    counts: Vec<usize>,
    /// Per task worker: stopped for good (the server is stopping).
    gone: Vec<bool>,
}

/// A worker's side of the task workers: one outbox and link per task worker.
pub(crate) struct TaskClient {
    worker_id: usize,
    master_pid: u32,
    settings: Arc<Settings>,
    has_on_finish: bool,
    outboxes: Vec<Arc<Outbox>>,
    state: Mutex<ClientState>,
    next: AtomicU64,
    rr: AtomicUsize,
    holds: Arc<Holds>,
    shared: Shared,
    /// `on_finish` callbacks started and not finished.
    finishing: AtomicUsize,
    /// A task ended or an `on_finish` finished.
    changed: Notify,
}

impl fmt::Debug for TaskClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskClient")
            .field("worker_id", &self.worker_id)
            .finish()
    }
}

/// Why a task was refused before it was sent.
pub(crate) enum SubmitError {
    Full,
    NoSuchWorker,
    TooLarge,
    /// The server is stopping and the task workers have stopped.
    Stopped,
}

impl SubmitError {
    /// The caller's error, with the payload handed back.
    pub(crate) fn with<T>(self, payload: T) -> TaskError<T> {
        match self {
            SubmitError::Full => TaskError::Full(payload),
            SubmitError::TooLarge => TaskError::TooLarge(payload),
            SubmitError::NoSuchWorker => TaskError::Unavailable(payload, "no such task worker"),
            SubmitError::Stopped => TaskError::NotRun(payload),
        }
    }
}

impl TaskClient {
    /// Worker `id`'s client, if the server has task workers.
    pub(crate) fn new(
        app: &App,
        settings: &Arc<Settings>,
        id: usize,
        master_pid: u32,
        holds: Arc<Holds>,
        shared: Shared,
    ) -> Option<Arc<TaskClient>> {
        let m = settings.task_worker_num;
        (m > 0).then(|| {
            Arc::new(TaskClient {
                worker_id: id,
                master_pid,
                settings: settings.clone(),
                has_on_finish: app.on_finish.is_some(),
                outboxes: (0..m).map(|_| Arc::new(Outbox::default())).collect(),
                state: Mutex::new(ClientState {
                    pending: HashMap::new(),
                    counts: vec![0; m],
                    gone: vec![false; m],
                }),
                next: AtomicU64::new(0),
                rr: AtomicUsize::new(id),
                holds,
                shared,
                finishing: AtomicUsize::new(0),
                changed: Notify::new(),
            })
        })
    }

    /// Whether results can be delivered to `on_finish` (`task` needs it).
    pub(crate) fn has_on_finish(&self) -> bool {
        self.has_on_finish
    }

    /// Sends a task whose result goes to `on_finish`.
    pub(crate) fn submit_finish(
        &self,
        target: Option<usize>,
        payload: Bytes,
    ) -> Result<TaskId, SubmitError> {
        self.submit(target, payload, Waiter::Finish)
    }

    /// Sends a task whose result the caller awaits on the returned receiver.
    pub(crate) fn submit_wait(
        &self,
        payload: Bytes,
    ) -> Result<(oneshot::Receiver<Outcome>, TaskId), SubmitError> {
        let (tx, rx) = oneshot::channel();
        self.submit(None, payload, Waiter::Wait(tx))
            .map(|id| (rx, id))
    }

    /// The caller of task `id` stopped waiting (timeout): its result will be dropped.
    pub(crate) fn abandon(&self, id: TaskId) {
        if let Some(p) = self.state.lock().pending.get_mut(&id.0) {
            p.waiter = Waiter::Abandoned;
        }
    }
}

/// Starts the links of this worker to every task worker (on the worker's `LocalSet`).
pub(crate) fn start_links(ctx: &Ctx, app: &App) {
    let Some(client) = ctx.tasks.clone() else {
        return;
    };
    let cbs = Rc::new(LinkCbs {
        on_finish: app.on_finish.clone(),
        on_pipe_message: app.on_pipe_message.clone(),
    });
    for j in 0..client.outboxes.len() {
        let (c, h, cbs) = (client.clone(), ctx.clone(), cbs.clone());
        tokio::task::spawn_local(async move { link_loop(c, j, h, cbs).await });
    }
}

struct LinkCbs {
    on_finish: Option<FinishCb>,
    on_pipe_message: Option<PipeCb>,
}

impl TaskClient {
    fn submit(
        &self,
        target: Option<usize>,
        payload: Bytes,
        waiter: Waiter,
    ) -> Result<TaskId, SubmitError> {
        if payload.len() > self.settings.task_max_payload {
            return Err(SubmitError::TooLarge);
        }
        let m = self.outboxes.len();
        let limit = self.settings.task_queue_size;
        let mut st = self.state.lock();
        let j = match target {
            Some(j) if j >= m => return Err(SubmitError::NoSuchWorker),
            Some(j) if st.gone[j] => return Err(SubmitError::Stopped),
            Some(j) => j,
            None => {
                let start = self.rr.fetch_add(1, Relaxed);
                (0..m)
                    .map(|k| (start + k) % m)
                    .filter(|&j| !st.gone[j])
                    .min_by_key(|&j| st.counts[j])
                    .ok_or(SubmitError::Stopped)?
            }
        };
        if st.counts[j] >= limit {
            return Err(SubmitError::Full);
        }
        let seq = self.next.fetch_add(1, Relaxed) + 1;
        let id = ((self.worker_id as u64) << 48) | (seq & ((1 << 48) - 1));
        st.counts[j] += 1;
        if let Some(m) = crate::ipc::metrics::slot() {
            m.task_queue.fetch_add(1, Relaxed);
        }
        // `task_wait` is awaited inside the event itself, which the connection's close
        // already waits for.
        let hold = match waiter {
            Waiter::Finish => self.holds.take_current(),
            _ => None,
        };
        st.pending.insert(
            id,
            Pending {
                tw: j,
                sent_gen: None,
                tries: 0,
                payload: payload.clone(),
                waiter,
                hold,
                started: std::time::Instant::now(),
            },
        );
        drop(st);
        self.outboxes[j].push(Frame {
            kind: FKind::Task,
            id,
            payload,
        });
        Ok(TaskId(id))
    }

    /// A task ended: forget it and tell whoever waits.
    fn complete(&self, id: u64, outcome: Outcome, handle: &Ctx, cbs: &LinkCbs) {
        let Some(p) = ({
            let mut st = self.state.lock();
            let p = st.pending.remove(&id);
            if let Some(p) = &p {
                st.counts[p.tw] -= 1;
                if let Some(m) = crate::ipc::metrics::slot() {
                    m.task_queue.fetch_sub(1, Relaxed);
                    m.task_latency(p.started.elapsed());
                }
            }
            p
        }) else {
            return;
        };
        self.changed.notify_waiters();
        match p.waiter {
            Waiter::Wait(tx) => {
                let _ = tx.send(outcome);
            }
            Waiter::Abandoned => {}
            Waiter::Finish => {
                let Some(cb) = cbs.on_finish.clone() else {
                    tracing::warn!(task = id, "task result dropped: no on_finish callback");
                    return;
                };
                let r = TaskResult {
                    id: TaskId(id),
                    task_worker: p.tw,
                    payload: p.payload,
                    outcome,
                };
                let (h, hold) = (handle.clone(), p.hold);
                // Runs as part of the origin connection's work (a task it starts is owed to
                // it too); the hold goes once the reply had its chance.
                let conn = hold.as_ref().map(|h| h.fd());
                let client = handle.tasks.clone();
                self.finishing.fetch_add(1, Relaxed);
                tokio::task::spawn_local(holds::in_conn(conn, async move {
                    catch_panic("on_finish", cb(h, TaskId(id), r)).await;
                    drop(hold);
                    if let Some(c) = client {
                        c.finishing.fetch_sub(1, Relaxed);
                        c.changed.notify_waiters();
                    }
                }));
            }
        }
    }

    /// Link `gen` to task worker `j` ended. After a `Goodbye` every unanswered task was never
    /// started: send it again. After a crash, report `WorkerDied` (or retry, if configured).
    /// While the server stops nothing is sent again (no successor comes): returns `true`,
    /// the link is over for good.
    fn link_down(&self, j: usize, gen: u64, goodbye: bool, handle: &Ctx, cbs: &LinkCbs) -> bool {
        if self.shared.stopping() {
            self.stopped(j, gen, goodbye, handle, cbs);
            return true;
        }
        let retry = self.settings.task_retry_on_crash;
        let mut resend = Vec::new();
        let mut dead = Vec::new();
        {
            let mut st = self.state.lock();
            let mut ids: Vec<u64> = st
                .pending
                .iter()
                .filter(|(_, p)| p.tw == j && p.sent_gen == Some(gen))
                .map(|(&id, _)| id)
                .collect();
            ids.sort_unstable();
            for id in ids {
                let p = st.pending.get_mut(&id).expect("listed");
                p.sent_gen = None;
                if goodbye || (retry && p.tries < MAX_TRIES) {
                    if !goodbye {
                        p.tries += 1;
                    }
                    resend.push(Frame {
                        kind: FKind::Task,
                        id,
                        payload: p.payload.clone(),
                    });
                } else {
                    dead.push(id);
                }
            }
        }
        if !resend.is_empty() {
            tracing::info!(
                task_worker = j,
                tasks = resend.len(),
                graceful = goodbye,
                "task worker link ended; sending its unanswered tasks again"
            );
            self.outboxes[j].push_front_all(resend);
        }
        if !dead.is_empty() {
            tracing::warn!(
                task_worker = j,
                tasks = dead.len(),
                "task worker died; reporting WorkerDied for its unanswered tasks"
            );
        }
        for id in dead {
            self.complete(id, Outcome::Died, handle, cbs);
        }
        false
    }

    /// Task worker `j` stopped with the server: each of its unanswered tasks is reported,
    /// `NotRun` (queued here, or unstarted as its `Goodbye` promises) or `WorkerDied` (it
    /// ended without a `Goodbye` after the task was written); later tasks for it are refused.
    fn stopped(&self, j: usize, gen: u64, goodbye: bool, handle: &Ctx, cbs: &LinkCbs) {
        let ends: Vec<(u64, Outcome)> = {
            let mut st = self.state.lock();
            st.gone[j] = true;
            let mut ids: Vec<(u64, bool)> = st
                .pending
                .iter()
                .filter(|(_, p)| p.tw == j)
                .map(|(&id, p)| (id, p.sent_gen == Some(gen)))
                .collect();
            ids.sort_unstable();
            ids.into_iter()
                .map(|(id, sent)| {
                    let died = sent && !goodbye;
                    (id, if died { Outcome::Died } else { Outcome::NotRun })
                })
                .collect()
        };
        self.outboxes[j].discard();
        if !ends.is_empty() {
            tracing::info!(
                task_worker = j,
                tasks = ends.len(),
                graceful = goodbye,
                "server stopping: the task worker stopped; reporting its unstarted tasks as not run"
            );
        }
        for (id, outcome) in ends {
            self.complete(id, outcome, handle, cbs);
        }
    }

    /// Whether nothing is owed any more: no task waits for a result (a `task_wait` that timed
    /// out aside) and no `on_finish` runs.
    pub(crate) fn settled(&self) -> bool {
        self.finishing.load(Relaxed) == 0
            && !self
                .state
                .lock()
                .pending
                .values()
                .any(|p| !matches!(p.waiter, Waiter::Abandoned))
    }

    /// Returns at the next task end or `on_finish` end.
    pub(crate) async fn next_change(&self) {
        self.changed.notified().await
    }

    /// Waits until [`settled`](Self::settled) or `deadline`; `true` if settled.
    pub(crate) async fn wait_settled(&self, deadline: tokio::time::Instant) -> bool {
        loop {
            let mut changed = std::pin::pin!(self.changed.notified());
            changed.as_mut().enable();
            if self.settled() {
                return true;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return self.settled();
            }
        }
    }
}

async fn link_loop(client: Arc<TaskClient>, j: usize, handle: Ctx, cbs: Rc<LinkCbs>) {
    let out = client.outboxes[j].clone();
    let max = client.settings.task_max_payload;
    let mut gen = 0u64;
    let mut backoff = Duration::from_millis(10);
    // Messages from the task worker run one at a time, in order.
    let (msg_tx, mut msg_rx) = tokio::sync::mpsc::unbounded_channel::<Bytes>();
    {
        let (h, cbs) = (handle.clone(), cbs.clone());
        let from = client.settings.worker_num + j;
        tokio::task::spawn_local(async move {
            while let Some(m) = msg_rx.recv().await {
                if let Some(cb) = &cbs.on_pipe_message {
                    catch_panic("on_pipe_message", cb(h.clone(), from, m)).await;
                }
            }
        });
    }
    let mut buf = vec![0u8; task_link::MAX_DGRAM];
    loop {
        gen += 1;
        let fd = match task_link::connect(client.master_pid, j).and_then(crate::sys::async_fd) {
            Ok(fd) => fd,
            Err(e) => {
                tracing::debug!(task_worker = j, error = %e, "cannot reach the task worker yet");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        backoff = Duration::from_millis(10);
        out.push_front_all(vec![Frame {
            kind: FKind::Hello,
            id: client.worker_id as u64,
            payload: Bytes::copy_from_slice(&std::process::id().to_le_bytes()),
        }]);
        let writer = task_link::write_loop(&fd, &out, |f| {
            if f.kind == FKind::Task {
                if let Some(p) = client.state.lock().pending.get_mut(&f.id) {
                    p.sent_gen = Some(gen);
                }
            }
        });
        let goodbye = {
            let reader = async {
                loop {
                    match task_link::recv_frames(&fd, &mut buf, max).await {
                        Ok(Some(frames)) => {
                            for f in frames {
                                match f.kind {
                                    FKind::Result => client.complete(
                                        f.id,
                                        Outcome::Done(f.payload),
                                        &handle,
                                        &cbs,
                                    ),
                                    FKind::Failed => client.complete(
                                        f.id,
                                        Outcome::Failed(String::from_utf8_lossy(&f.payload).into()),
                                        &handle,
                                        &cbs,
                                    ),
                                    FKind::Message => {
                                        let _ = msg_tx.send(f.payload);
                                    }
                                    FKind::Goodbye => return true,
                                    FKind::Hello | FKind::Task => {}
                                }
                            }
                        }
                        Ok(None) => return false,
                        Err(e) => {
                            tracing::warn!(task_worker = j, error = %e, "bad data from a task worker");
                            return false;
                        }
                    }
                }
            };
            tokio::pin!(reader);
            tokio::select! {
                g = &mut reader => g,
                r = writer => {
                    if let Err(e) = r {
                        tracing::debug!(task_worker = j, error = %e, "task link write failed");
                    }
                    // Writing fails mostly because the task worker has exited, and then what
                    // it sent before exiting (its last results, its Goodbye) may still be
                    // unread: read up to EOF, so that a graceful stop is not taken for a
                    // crash (its unanswered tasks then go to the next incarnation, not to
                    // `WorkerDied`). Shutting our side down ends the link at a task worker
                    // that is still alive, so EOF comes either way; the limit covers one that
                    // is stuck in a task.
                    let _ = rustix::net::shutdown(fd.get_ref(), rustix::net::Shutdown::Write);
                    let limit = client.settings.max_wait_time;
                    tokio::time::timeout(limit, reader).await.unwrap_or(false)
                }
            }
        };
        drop(fd);
        if client.link_down(j, gen, goodbye, &handle, &cbs) {
            return;
        }
        if !goodbye {
            // A crashed task worker is being restarted: do not spin on its backlog.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// The stopping worker's deadline passed: every task still unanswered is reported as
/// [`TaskError::Timeout`](crate::TaskError::Timeout) (its `on_finish` runs, given up to
/// `grace`), so that no caller is left without an answer.
pub(crate) async fn expire(ctx: &Ctx, app: &App, grace: Duration) {
    let Some(client) = &ctx.tasks else {
        return;
    };
    // Abandoned `task_wait`s have nobody to tell.
    let ids: Vec<u64> = {
        let st = client.state.lock();
        let mut ids: Vec<u64> = st
            .pending
            .iter()
            .filter(|(_, p)| !matches!(p.waiter, Waiter::Abandoned))
            .map(|(&id, _)| id)
            .collect();
        ids.sort_unstable();
        ids
    };
    if ids.is_empty() {
        return;
    }
    tracing::warn!(
        tasks = ids.len(),
        "worker stopping: tasks still unanswered at max_wait_time; reporting them as timed out"
    );
    let cbs = LinkCbs {
        on_finish: app.on_finish.clone(),
        on_pipe_message: None,
    };
    for id in ids {
        client.complete(id, Outcome::TimedOut, ctx, &cbs);
    }
    client
        .wait_settled(tokio::time::Instant::now() + grace)
        .await;
}
