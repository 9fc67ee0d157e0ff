//! A task worker process: accepts links from the workers on its socket (see
//! [`task_link`](crate::task_link)) and runs their tasks in `on_task`, one at a time, in
//! arrival order.
//!
//! Stopping (SIGTERM: shutdown or reload): it stops reading, finishes the task it is running,
//! answers it, then sends `Goodbye` on every link and exits. `Goodbye` promises the workers that
//! every task this incarnation has not answered was never started, so they send those again to
//! the next incarnation: a reload loses and repeats nothing. When the whole server stops there
//! is no next incarnation: the workers report those tasks as
//! [`TaskError::NotRun`](crate::TaskError::NotRun). A crash sends no `Goodbye`; the
//! workers then report [`TaskError::WorkerDied`](crate::TaskError::WorkerDied) (or retry, with
//! `task_retry_on_crash`).

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::io::unix::AsyncFd;
use tokio::sync::Notify;

use super::app::{catch_panic, App, TaskCb, TaskCtx};
use super::master::Launch;
use super::task::Task;
use super::timers::Timers;
use crate::base::Settings;
use crate::ipc::shared::{self, Shared};
use crate::ipc::task_link::{self, FKind, Frame, Outbox};
use crate::sys;

/// A task read from a link, waiting to run.
struct Job {
    out: Arc<Outbox>,
    id: u64,
    src_worker: usize,
    payload: Bytes,
}

#[derive(Default)]
struct Queue {
    jobs: RefCell<VecDeque<Job>>,
    notify: Notify,
    stopping: Cell<bool>,
}

/// Runs task worker `index` in this (freshly forked) process, then exits.
pub(crate) fn run(app: &App, launch: &Launch, index: usize) -> ! {
    let title = format!("rswoole: task worker {index}");
    let slot = launch.settings.worker_num + index;
    super::run_child(launch, slot, &title, main(app, launch, index))
}

async fn main(app: &App, launch: &Launch, index: usize) -> i32 {
    let Some(on_task) = app.on_task.clone() else {
        tracing::error!("task worker {index}: no on_task callback");
        return 1;
    };
    let listener = match launch
        .task_listeners
        .get(index)
        .ok_or_else(|| std::io::Error::other("no listening socket"))
        .and_then(|l| l.try_clone())
        .and_then(sys::async_fd)
    {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "task worker {index}: cannot use its socket");
            return 1;
        }
    };
    let settings = launch.settings.clone();
    let handle: TaskCtx = Arc::new(TaskWorkerCtx {
        index,
        settings: settings.clone(),
        shared: launch.shared.clone(),
        workers: Default::default(),
        timers: Default::default(),
    });
    let mut sigterm = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "task worker {index}: cannot watch SIGTERM");
            return 1;
        }
    };
    let queue = Rc::new(Queue::default());
    let links: Rc<RefCell<Vec<Link>>> = Rc::default();
    let acceptor = {
        let (queue, links, handle) = (queue.clone(), links.clone(), handle.clone());
        tokio::task::spawn_local(async move { accept_loop(listener, queue, links, handle).await })
    };
    let slot_id = settings.worker_num + index;
    let executor = {
        let (queue, handle, shared) = (queue.clone(), handle.clone(), launch.shared.clone());
        tokio::task::spawn_local(async move {
            execute(queue, on_task, handle, shared, slot_id).await;
        })
    };
    launch
        .shared
        .worker(slot_id)
        .state
        .store(shared::W_IDLE, Relaxed);
    sigterm.recv().await;
    // Stop reading: unread tasks stay unread, and Goodbye tells their senders so.
    acceptor.abort();
    for l in links.borrow().iter() {
        l.reader.abort();
    }
    queue.stopping.set(true);
    queue.notify.notify_one();
    let _ = executor.await;
    let left = queue.jobs.borrow().len();
    if left > 0 {
        tracing::info!(
            task_worker = index,
            tasks = left,
            "stopping: unstarted tasks handed back to their workers (re-sent on a reload, not run on a shutdown)"
        );
    }
    let writers: Vec<_> = links
        .borrow_mut()
        .drain(..)
        .map(|l| {
            l.out.push(Frame {
                kind: FKind::Goodbye,
                id: 0,
                payload: Bytes::new(),
            });
            l.out.close();
            l.writer
        })
        .collect();
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        for w in writers {
            let _ = w.await;
        }
    })
    .await;
    0
}

struct Link {
    out: Arc<Outbox>,
    reader: tokio::task::JoinHandle<()>,
    writer: tokio::task::JoinHandle<()>,
}

async fn accept_loop(
    listener: AsyncFd<OwnedFd>,
    queue: Rc<Queue>,
    links: Rc<RefCell<Vec<Link>>>,
    handle: TaskCtx,
) {
    loop {
        let fd = match task_link::accept(&listener).await {
            Ok(fd) => fd,
            Err(e) => {
                tracing::warn!(error = %e, "task worker: accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let fd = match sys::async_fd(fd) {
            Ok(fd) => Rc::new(fd),
            Err(e) => {
                tracing::warn!(error = %e, "task worker: cannot register a link");
                continue;
            }
        };
        let out = Arc::new(Outbox::default());
        let writer = {
            let (fd, out) = (fd.clone(), out.clone());
            tokio::task::spawn_local(async move {
                if let Err(e) = task_link::write_loop(&fd, &out, |_| {}).await {
                    tracing::debug!(error = %e, "task link write failed (worker gone)");
                }
                out.close();
            })
        };
        let reader = {
            let (out, queue, handle) = (out.clone(), queue.clone(), handle.clone());
            tokio::task::spawn_local(async move { read_link(fd, out, queue, handle).await })
        };
        let mut ls = links.borrow_mut();
        ls.retain(|l| !l.writer.is_finished());
        ls.push(Link {
            out,
            reader,
            writer,
        });
    }
}

async fn read_link(fd: Rc<AsyncFd<OwnedFd>>, out: Arc<Outbox>, queue: Rc<Queue>, handle: TaskCtx) {
    let max = handle.settings.task_max_payload;
    let mut buf = vec![0u8; task_link::MAX_DGRAM];
    let mut worker = usize::MAX;
    loop {
        match task_link::recv_frames(&fd, &mut buf, max).await {
            Ok(Some(frames)) => {
                let mut n = 0;
                for f in frames {
                    match f.kind {
                        FKind::Hello => {
                            worker = f.id as usize;
                            handle.workers.lock().insert(worker, out.clone());
                        }
                        FKind::Task => {
                            queue.jobs.borrow_mut().push_back(Job {
                                out: out.clone(),
                                id: f.id,
                                src_worker: worker,
                                payload: f.payload,
                            });
                            n += 1;
                        }
                        _ => {}
                    }
                }
                if n > 0 {
                    queue.notify.notify_one();
                }
            }
            Ok(None) => break,
            Err(e) => {
                tracing::warn!(error = %e, "task worker: bad data from a worker; dropping the link");
                break;
            }
        }
    }
    // The worker is gone: its queued tasks still run (their results go nowhere).
    out.close();
    let mut w = handle.workers.lock();
    if w.get(&worker).is_some_and(|o| Arc::ptr_eq(o, &out)) {
        w.remove(&worker);
    }
}

async fn execute(
    queue: Rc<Queue>,
    on_task: TaskCb,
    handle: TaskCtx,
    shared: shared::Shared,
    slot_id: usize,
) {
    let slot = shared.worker(slot_id);
    let max = handle.settings.task_max_payload;
    loop {
        if queue.stopping.get() {
            return;
        }
        let job = queue.jobs.borrow_mut().pop_front();
        let Some(job) = job else {
            slot.state.store(shared::W_IDLE, Relaxed);
            queue.notify.notified().await;
            continue;
        };
        slot.state.store(shared::W_BUSY, Relaxed);
        slot.requests.fetch_add(1, Relaxed);
        let task = Task::new(job.out, job.id, job.src_worker, job.payload, max);
        let reply = task.reply_handle();
        let res = catch_panic("on_task", on_task(handle.clone(), task)).await;
        match res {
            Some(Ok(bytes)) => reply.result(bytes),
            Some(Err(reason)) => reply.failed(reason),
            None => reply.failed("on_task panicked".into()),
        }
        // A synchronous on_task never yields: without this, a SIGTERM would be seen only once
        // the whole queue had run (and the manager kills at max_wait_time). Yielding lets the
        // runtime poll its drivers, so the stop is noticed after the task that runs.
        tokio::task::yield_now().await;
    }
}

/// A task worker process's context (what `TaskHandle` wraps).
pub(crate) struct TaskWorkerCtx {
    pub(crate) index: usize,
    pub(crate) settings: Arc<Settings>,
    pub(crate) shared: Shared,
    /// The latest link of each worker, for `send_message`.
    pub(crate) workers: Mutex<HashMap<usize, Arc<Outbox>>>,
    pub(crate) timers: Timers,
}
