//! Task workers: typed tasks from workers to task worker processes, results back, timers.
//!
//! - A worker hands a task (any [`Serialize`] value, encoded with postcard) to a task worker
//!   with [`Handle::task`] (the result comes to [`Server::on_finish`]) or
//!   [`Handle::task_wait`] (the result is awaited, without blocking the worker's event loop).
//! - The task runs in [`Server::on_task`], one at a time per task worker process; what it
//!   returns (any `Serialize`) is the result, unless it called [`Task::finish`] first.
//! - Nothing is lost silently: every `task` ends in exactly one `on_finish` (a result or a
//!   [`TaskError`]), every `task_wait` in exactly one return, and every refusal hands the
//!   payload back ([`TaskError::into_inner`]).
//! - [`Handle::tick`] / [`Handle::after`] / [`Handle::clear`] (and the same on [`TaskHandle`])
//!   are timers on the process's event loop; they end with the process.
//!
//! # Examples
//! ```no_run
//! use std::time::Duration;
//! use rswoole::{Server, Settings};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Resize { width: u32, height: u32 }
//!
//! fn main() -> rswoole::Result<()> {
//!     let mut server = Server::bind("127.0.0.1:9501")?;
//!     server.set(Settings { worker_num: 2, task_worker_num: 2, ..Default::default() });
//!     server.on_task(|_srv, task| async move {
//!         let job: Resize = task.data().expect("a Resize");
//!         std::thread::sleep(Duration::from_millis(10)); // synchronous work is fine here
//!         job.width * job.height
//!     });
//!     server.on_finish(|_srv, id, result| async move {
//!         println!("task {id}: {:?}", result.get::<u32>());
//!     });
//!     server.on_receive(|srv, ev| async move {
//!         let area: u32 = srv
//!             .task_wait(Resize { width: 3, height: 4 }, Duration::from_secs(1))
//!             .await
//!             .map_err(|e| e.to_string())?;
//!         srv.send(ev.fd, format!("{area}\n")).map_err(|e| e.to_string())
//!     });
//!     server.start()
//! }
//! ```

use std::collections::HashMap;
use std::fmt;
use std::future::{poll_fn, Future};
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::oneshot;

use crate::error::SendError;
use crate::server::{BoxFut, CallbackResult, Handle, PipeCb, Server};
use crate::settings::Settings;
use crate::shared::Shared;
use crate::task_link::{self, FKind, Frame, Outbox};

/// A task's id: unique among the tasks of one worker process (the worker id is in the top
/// 16 bits, a counter below).
///
/// # Examples
///
/// ```no_run
/// use rswoole::{Server, Settings, TaskId};
///
/// fn main() -> rswoole::Result<()> {
///     let mut server = Server::bind("127.0.0.1:9501")?;
///     server.set(Settings { task_worker_num: 1, ..Default::default() });
///     server.on_task(|_srv, task| async move { task.data::<u64>().unwrap_or(0) * 2 });
///     server.on_finish(|_srv, id: TaskId, result| async move {
///         println!("task {id} -> {:?}", result.get::<u64>());
///     });
///     server.on_receive(|srv, ev| async move {
///         let id: TaskId = srv.task(ev.data.len() as u64).map_err(|e| e.to_string())?;
///         srv.send(ev.fd, format!("queued as task {id}\n")).map_err(|e| e.to_string())
///     });
///     server.start()
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId(pub u64);

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A timer's id, from [`Handle::tick`] / [`Handle::after`]; give it to [`Handle::clear`].
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use rswoole::{Server, TimerId};
///
/// fn main() -> rswoole::Result<()> {
///     let mut server = Server::bind("127.0.0.1:9501")?;
///     server.on_connect(|srv, fd| async move {
///         // Close connections that say nothing within 10 s.
///         let s = srv.clone();
///         let timer: TimerId = srv.after(Duration::from_secs(10), move || async move { s.close(fd); });
///         println!("{fd}: idle timer {timer:?}");
///     });
///     server.on_receive(|srv, ev| async move { srv.send(ev.fd, ev.data) });
///     server.start()
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TimerId(pub u64);

/// Why a task did not produce a result. Every variant hands the payload back
/// ([`into_inner`](TaskError::into_inner)): the value given to `task`/`task_wait`, or, in
/// [`TaskResult`], its encoded bytes.
///
/// # Examples
///
/// ```
/// use rswoole::TaskError;
/// let err: TaskError<Vec<u8>> = TaskError::Full(b"job".to_vec());
/// assert!(matches!(err, TaskError::Full(_)));
/// assert_eq!(err.into_inner(), b"job"); // the payload comes back
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub enum TaskError<T> {
    /// This worker already has `task_queue_size` tasks waiting for the task worker(s) it may
    /// use. Nothing was sent: retry later (e.g. after some `on_finish`), or shed load.
    Full(T),
    /// The task worker died (crash, SIGKILL) after the task was handed to it and before it
    /// answered; the task may have run partly. With [`Settings::task_retry_on_crash`] it is
    /// sent again instead (up to 3 times) and this comes only after the last try.
    WorkerDied(T),
    /// `task_wait`: no result within the timeout. The task may still run; its result is
    /// dropped.
    Timeout(T),
    /// The encoded payload is above [`Settings::task_max_payload`]. Nothing was sent.
    TooLarge(T),
    /// Tasks cannot be sent from here: no task workers (`task_worker_num` is 0), a target
    /// task worker out of range, or `task` without an [`on_finish`](Server::on_finish)
    /// callback (use `task_wait`, or register one). The reason says which.
    Unavailable(T, &'static str),
    /// The payload could not be encoded, or the result could not be decoded as the type asked
    /// for (a mismatch between `on_task`'s return type and the caller's).
    Codec(T, String),
    /// The task ran and failed: `on_task` panicked, or its result could not be encoded or was
    /// above `task_max_payload`.
    Failed(T, String),
}

impl<T> TaskError<T> {
    /// The payload that did not complete, so nothing is lost silently.
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole::TaskError;
    /// let err = TaskError::Unavailable(42u64, "no task workers");
    /// assert_eq!(err.into_inner(), 42);
    /// ```
    pub fn into_inner(self) -> T {
        match self {
            TaskError::Full(t)
            | TaskError::WorkerDied(t)
            | TaskError::Timeout(t)
            | TaskError::TooLarge(t)
            | TaskError::Unavailable(t, _)
            | TaskError::Codec(t, _)
            | TaskError::Failed(t, _) => t,
        }
    }

    /// The same error with another payload.
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole::TaskError;
    /// let err = TaskError::Timeout("resize 3x4".to_string());
    /// let err: TaskError<usize> = err.map(|payload| payload.len());
    /// assert!(matches!(err, TaskError::Timeout(10)));
    /// ```
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> TaskError<U> {
        match self {
            TaskError::Full(t) => TaskError::Full(f(t)),
            TaskError::WorkerDied(t) => TaskError::WorkerDied(f(t)),
            TaskError::Timeout(t) => TaskError::Timeout(f(t)),
            TaskError::TooLarge(t) => TaskError::TooLarge(f(t)),
            TaskError::Unavailable(t, r) => TaskError::Unavailable(f(t), r),
            TaskError::Codec(t, r) => TaskError::Codec(f(t), r),
            TaskError::Failed(t, r) => TaskError::Failed(f(t), r),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            TaskError::Full(_) => "Full",
            TaskError::WorkerDied(_) => "WorkerDied",
            TaskError::Timeout(_) => "Timeout",
            TaskError::TooLarge(_) => "TooLarge",
            TaskError::Unavailable(..) => "Unavailable",
            TaskError::Codec(..) => "Codec",
            TaskError::Failed(..) => "Failed",
        }
    }
}

impl<T> fmt::Debug for TaskError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskError::Unavailable(_, r) => write!(f, "Unavailable(.., {r:?})"),
            TaskError::Codec(_, r) | TaskError::Failed(_, r) => {
                write!(f, "{}(.., {r:?})", self.name())
            }
            _ => write!(f, "{}(..)", self.name()),
        }
    }
}

impl<T> fmt::Display for TaskError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskError::Full(_) => f.write_str("task queue full"),
            TaskError::WorkerDied(_) => f.write_str("the task worker died before answering"),
            TaskError::Timeout(_) => f.write_str("timed out waiting for the task's result"),
            TaskError::TooLarge(_) => f.write_str("task payload above task_max_payload"),
            TaskError::Unavailable(_, r) => write!(f, "cannot send a task: {r}"),
            TaskError::Codec(_, r) => write!(f, "task encoding: {r}"),
            TaskError::Failed(_, r) => write!(f, "task failed: {r}"),
        }
    }
}

impl<T> std::error::Error for TaskError<T> {}

/// What [`on_finish`](Server::on_finish) gets: a task's result, or why there is none.
///
/// # Examples
///
/// ```no_run
/// use rswoole::{Server, Settings, TaskResult};
///
/// fn main() -> rswoole::Result<()> {
///     let mut server = Server::bind("127.0.0.1:9501")?;
///     server.set(Settings { task_worker_num: 2, ..Default::default() });
///     server.on_task(|_srv, task| async move { task.data::<String>().map(|s| s.len()).unwrap_or(0) });
///     server.on_finish(|_srv, id, result: TaskResult| async move {
///         if result.is_ok() {
///             println!("task {id} on task worker {}: {:?}", result.task_worker(), result.get::<usize>());
///         } else {
///             // Failed or its task worker died: retry with the original payload.
///             let payload: Result<String, _> = result.payload();
///             eprintln!("task {} failed, payload {payload:?}", result.id());
///         }
///     });
///     server.on_receive(|srv, ev| async move {
///         srv.task(String::from_utf8_lossy(&ev.data).into_owned()).map(drop).map_err(|e| e.to_string())
///     });
///     server.start()
/// }
/// ```
#[derive(Debug, Clone)]
pub struct TaskResult {
    id: TaskId,
    task_worker: usize,
    payload: Bytes,
    outcome: Outcome,
}

#[derive(Debug, Clone)]
enum Outcome {
    Done(Bytes),
    Failed(String),
    Died,
}

impl TaskResult {
    /// The task's id (as returned by [`Handle::task`]).
    pub fn id(&self) -> TaskId {
        self.id
    }

    /// The task worker (`0..task_worker_num`) that ran it, or was to run it.
    pub fn task_worker(&self) -> usize {
        self.task_worker
    }

    /// Whether the task produced a result.
    pub fn is_ok(&self) -> bool {
        matches!(self.outcome, Outcome::Done(_))
    }

    /// Decodes the result as `R` (the type `on_task` returned).
    ///
    /// # Errors
    /// [`TaskError::WorkerDied`] or [`TaskError::Failed`] if there is no result;
    /// [`TaskError::Codec`] if it is not an `R`. The error holds the task's encoded payload.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use rswoole::{Server, Settings};
    ///
    /// fn main() -> rswoole::Result<()> {
    ///     let mut server = Server::bind("127.0.0.1:9501")?;
    ///     server.set(Settings { task_worker_num: 1, ..Default::default() });
    ///     server.on_task(|_srv, _task| async move { vec![1u32, 2, 3] });
    ///     server.on_finish(|_srv, id, result| async move {
    ///         let numbers: Vec<u32> = result.get().map_err(|e| format!("task {id}: {e}"))?;
    ///         println!("sum {}", numbers.iter().sum::<u32>());
    ///         Ok::<(), String>(())
    ///     });
    ///     server.on_receive(|srv, _ev| async move { srv.task(()).map(drop).map_err(|e| e.to_string()) });
    ///     server.start()
    /// }
    /// ```
    pub fn get<R: DeserializeOwned>(&self) -> Result<R, TaskError<Bytes>> {
        match &self.outcome {
            Outcome::Done(b) => postcard::from_bytes(b)
                .map_err(|e| TaskError::Codec(self.payload.clone(), e.to_string())),
            Outcome::Failed(r) => Err(TaskError::Failed(self.payload.clone(), r.clone())),
            Outcome::Died => Err(TaskError::WorkerDied(self.payload.clone())),
        }
    }

    /// The task's payload as sent, decoded as `T` (e.g. to retry it after an error).
    ///
    /// # Errors
    /// [`TaskError::Codec`] if it is not a `T`.
    pub fn payload<T: DeserializeOwned>(&self) -> Result<T, TaskError<Bytes>> {
        postcard::from_bytes(&self.payload)
            .map_err(|e| TaskError::Codec(self.payload.clone(), e.to_string()))
    }

    /// The encoded result bytes (postcard), or the error.
    ///
    /// # Errors
    /// As [`get`](TaskResult::get), without decoding.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use rswoole::{Server, Settings};
    ///
    /// fn main() -> rswoole::Result<()> {
    ///     let mut server = Server::bind("127.0.0.1:9501")?;
    ///     server.set(Settings { task_worker_num: 1, ..Default::default() });
    ///     server.on_task(|_srv, task| async move { task.raw().len() });
    ///     server.on_finish(|_srv, _id, result| async move {
    ///         if let Ok(raw) = result.into_bytes() {
    ///             println!("{} bytes of postcard", raw.len()); // decode it yourself, or forward it
    ///         }
    ///     });
    ///     server.on_receive(|srv, ev| async move { srv.task(ev.data.to_vec()).map(drop).map_err(|e| e.to_string()) });
    ///     server.start()
    /// }
    /// ```
    pub fn into_bytes(self) -> Result<Bytes, TaskError<Bytes>> {
        match self.outcome {
            Outcome::Done(b) => Ok(b),
            Outcome::Failed(r) => Err(TaskError::Failed(self.payload, r)),
            Outcome::Died => Err(TaskError::WorkerDied(self.payload)),
        }
    }
}

/// A task, as given to [`on_task`](Server::on_task) in a task worker.
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use rswoole::{Server, Settings, Task};
///
/// fn main() -> rswoole::Result<()> {
///     let mut server = Server::bind("127.0.0.1:9501")?;
///     server.set(Settings { task_worker_num: 1, ..Default::default() });
///     server.on_task(|_srv, task: Task| async move {
///         println!("task {} from worker {}, {} bytes", task.id(), task.src_worker(), task.raw().len());
///         task.data::<String>().map(|s| s.to_uppercase()).unwrap_or_default()
///     });
///     server.on_receive(|srv, ev| async move {
///         let up: String = srv
///             .task_wait(String::from_utf8_lossy(&ev.data).into_owned(), Duration::from_secs(1))
///             .await
///             .map_err(|e| e.to_string())?;
///         srv.send(ev.fd, up).map_err(|e| e.to_string())
///     });
///     server.start()
/// }
/// ```
#[derive(Debug)]
pub struct Task {
    id: TaskId,
    src_worker: usize,
    data: Bytes,
    reply: Arc<Reply>,
}

#[derive(Debug)]
struct Reply {
    out: Arc<Outbox>,
    id: u64,
    done: AtomicBool,
    max: usize,
}

impl Reply {
    fn send(&self, kind: FKind, payload: Bytes) -> bool {
        if self.done.swap(true, Relaxed) {
            return false;
        }
        let (kind, payload) = if kind == FKind::Result && payload.len() > self.max {
            (
                FKind::Failed,
                Bytes::from(format!(
                    "result of {} bytes is above task_max_payload",
                    payload.len()
                )),
            )
        } else {
            (kind, payload)
        };
        // A closed outbox means the worker that asked is gone: nobody to tell.
        self.out.push(Frame {
            kind,
            id: self.id,
            payload,
        });
        true
    }
}

/// The task worker's hold on a task's reply, kept while `on_task` runs.
pub(crate) struct ReplyHandle(Arc<Reply>);

impl ReplyHandle {
    /// Sends the result, unless `finish` already answered.
    pub(crate) fn result(&self, b: Bytes) {
        self.0.send(FKind::Result, b);
    }

    /// Reports the failure, unless `finish` already answered.
    pub(crate) fn failed(&self, reason: String) {
        self.0.send(FKind::Failed, Bytes::from(reason));
    }
}

impl Task {
    pub(crate) fn reply_handle(&self) -> ReplyHandle {
        ReplyHandle(self.reply.clone())
    }

    /// The task's id, as the worker that sent it knows it.
    pub fn id(&self) -> TaskId {
        self.id
    }

    /// The worker (`0..worker_num`) that sent it.
    pub fn src_worker(&self) -> usize {
        self.src_worker
    }

    /// Decodes the payload as `T` (the type given to `task`).
    ///
    /// # Errors
    /// [`TaskError::Codec`] (with the raw bytes) if it is not a `T`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use rswoole::{Server, Settings};
    ///
    /// fn main() -> rswoole::Result<()> {
    ///     let mut server = Server::bind("127.0.0.1:9501")?;
    ///     server.set(Settings { task_worker_num: 1, ..Default::default() });
    ///     server.on_task(|_srv, task| async move {
    ///         match task.data::<(String, u32)>() {
    ///             Ok((name, n)) => format!("{name} x{n}"),
    ///             Err(e) => format!("not a (String, u32): {e}"),
    ///         }
    ///     });
    ///     server.on_receive(|srv, ev| async move {
    ///         srv.task_wait::<_, String>(("job".to_string(), 3u32), Duration::from_secs(1))
    ///             .await
    ///             .map_err(|e| e.to_string())
    ///             .and_then(|reply| srv.send(ev.fd, reply).map_err(|e| e.to_string()))
    ///     });
    ///     server.start()
    /// }
    /// ```
    pub fn data<T: DeserializeOwned>(&self) -> Result<T, TaskError<Bytes>> {
        postcard::from_bytes(&self.data)
            .map_err(|e| TaskError::Codec(self.data.clone(), e.to_string()))
    }

    /// The encoded payload (postcard).
    pub fn raw(&self) -> &Bytes {
        &self.data
    }

    /// Sends the result now (Swoole's `finish`), before `on_task` returns; what `on_task` then
    /// returns is ignored. Returns `false` (and sends nothing) if a result was already sent.
    ///
    /// # Errors
    /// A result that cannot be encoded is reported to the origin as [`TaskError::Failed`];
    /// this returns `true` then (the task is answered).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use rswoole::{Server, Settings};
    ///
    /// fn main() -> rswoole::Result<()> {
    ///     let mut server = Server::bind("127.0.0.1:9501")?;
    ///     server.set(Settings { task_worker_num: 1, ..Default::default() });
    ///     server.on_task(|_srv, task| async move {
    ///         task.finish(&"accepted"); // the worker gets its answer now...
    ///         std::thread::sleep(std::time::Duration::from_secs(5)); // ...while this runs on
    ///         assert!(!task.finish(&"again")); // answered once only
    ///         "ignored"
    ///     });
    ///     server.on_finish(|_srv, id, r| async move { println!("{id}: {:?}", r.get::<String>()) });
    ///     server.on_receive(|srv, _ev| async move { srv.task(()).map(drop).map_err(|e| e.to_string()) });
    ///     server.start()
    /// }
    /// ```
    pub fn finish<R: Serialize>(&self, result: &R) -> bool {
        match postcard::to_allocvec(result) {
            Ok(v) => self.reply.send(FKind::Result, Bytes::from(v)),
            Err(e) => self.reply.send(
                FKind::Failed,
                Bytes::from(format!("cannot encode the result: {e}")),
            ),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Callbacks

pub(crate) type TaskFut = Pin<Box<dyn Future<Output = Result<Bytes, String>>>>;
pub(crate) type TaskCb = Rc<dyn Fn(TaskHandle, Task) -> TaskFut>;
pub(crate) type FinishCb = Rc<dyn Fn(Handle, TaskId, TaskResult) -> BoxFut>;

/// The task callbacks of a [`Server`].
#[derive(Clone, Default)]
pub(crate) struct TaskCallbacks {
    pub(crate) on_task: Option<TaskCb>,
    pub(crate) on_finish: Option<FinishCb>,
}

impl Server {
    /// Runs in a task worker for every task, one at a time per task worker process (blocking
    /// synchronous work is fine here: it holds only this task worker). What it returns (any
    /// [`Serialize`]) is the result, sent back to the worker that asked, unless the task called
    /// [`Task::finish`] first. Required when `task_worker_num > 0`.
    ///
    /// A panic is caught: the origin gets [`TaskError::Failed`].
    ///
    /// # Examples
    /// ```no_run
    /// # let mut server = rswoole::Server::bind("127.0.0.1:9501").unwrap();
    /// server.on_task(|srv, task| async move {
    ///     let n: u64 = task.data().unwrap_or(0);
    ///     println!("task worker {} squares {n}", srv.task_worker_id());
    ///     n * n
    /// });
    /// # server.start().unwrap();
    /// ```
    pub fn on_task<F, Fut>(&mut self, f: F) -> &mut Self
    where
        F: Fn(TaskHandle, Task) -> Fut + 'static,
        Fut: Future + 'static,
        Fut::Output: Serialize,
    {
        self.tasks.on_task = Some(Rc::new(move |h, t| {
            let fut = f(h, t);
            Box::pin(async move {
                let out = fut.await;
                postcard::to_allocvec(&out)
                    .map(Bytes::from)
                    .map_err(|e| format!("cannot encode the result: {e}"))
            })
        }));
        self
    }

    /// Runs in the worker that called [`Handle::task`], once per task: with its result, or
    /// with the error that ended it ([`TaskError::WorkerDied`], [`TaskError::Failed`]).
    /// Required to call `task` (not `task_wait`).
    ///
    /// # Examples
    /// ```no_run
    /// # let mut server = rswoole::Server::bind("127.0.0.1:9501").unwrap();
    /// server.on_finish(|_srv, id, result| async move {
    ///     match result.get::<u64>() {
    ///         Ok(n) => println!("task {id} returned {n}"),
    ///         Err(e) => eprintln!("task {id}: {e}"),
    ///     }
    /// });
    /// # server.start().unwrap();
    /// ```
    pub fn on_finish<F, Fut>(&mut self, f: F) -> &mut Self
    where
        F: Fn(Handle, TaskId, TaskResult) -> Fut + 'static,
        Fut: Future + 'static,
        Fut::Output: CallbackResult,
    {
        self.tasks.on_finish = Some(Rc::new(move |h, id, r| {
            let fut = f(h, id, r);
            Box::pin(async move { fut.await.report("on_finish") })
        }));
        self
    }
}

/// Runs a future, catching a panic (logged, `None`).
pub(crate) async fn catch_panic<T>(
    name: &'static str,
    mut fut: Pin<Box<dyn Future<Output = T>>>,
) -> Option<T> {
    let r =
        poll_fn(
            |cx| match std::panic::catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
                Ok(Poll::Ready(v)) => Poll::Ready(Some(v)),
                Ok(Poll::Pending) => Poll::Pending,
                Err(_) => Poll::Ready(None),
            },
        )
        .await;
    if r.is_none() {
        tracing::error!(callback = name, "callback panicked (location above)");
    }
    r
}

// ---------------------------------------------------------------------------------------------
// Timers

/// Timers of one process (a worker or a task worker): tokio tasks on its `LocalSet`, so they
/// die with the process and never outlive a reload.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    next: AtomicU64,
    live: Arc<Mutex<HashMap<u64, tokio::task::AbortHandle>>>,
}

impl Timers {
    fn tick<F, Fut>(&self, every: Duration, f: F) -> TimerId
    where
        F: Fn() -> Fut + 'static,
        Fut: Future + 'static,
        Fut::Output: CallbackResult,
    {
        let id = self.next.fetch_add(1, Relaxed) + 1;
        let every = every.max(Duration::from_millis(1));
        let h = tokio::task::spawn_local(async move {
            let mut iv = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                iv.tick().await;
                let fut = f();
                tokio::task::spawn_local(catch_panic(
                    "tick",
                    Box::pin(async move { fut.await.report("tick") }),
                ));
            }
        });
        self.live.lock().insert(id, h.abort_handle());
        TimerId(id)
    }

    fn after<F, Fut>(&self, delay: Duration, f: F) -> TimerId
    where
        F: FnOnce() -> Fut + 'static,
        Fut: Future + 'static,
        Fut::Output: CallbackResult,
    {
        let id = self.next.fetch_add(1, Relaxed) + 1;
        let live = self.live.clone();
        let h = tokio::task::spawn_local(async move {
            tokio::time::sleep(delay).await;
            // Once fired it can no longer be cleared.
            live.lock().remove(&id);
            let fut = f();
            catch_panic("after", Box::pin(async move { fut.await.report("after") })).await;
        });
        self.live.lock().insert(id, h.abort_handle());
        TimerId(id)
    }

    fn clear(&self, id: TimerId) -> bool {
        match self.live.lock().remove(&id.0) {
            Some(h) => {
                h.abort();
                true
            }
            None => false,
        }
    }
}

macro_rules! timer_methods {
    () => {
        /// Calls `f` every `interval` (at least 1 ms) on this process's event loop, until
        /// [`clear`](Self::clear)ed or the process ends (timers never survive a reload). Each
        /// call runs as its own task, so a slow one does not delay the next.
        ///
        /// # Panics
        /// Outside this process's event loop (e.g. from a thread of your own).
        ///
        /// # Examples
        /// ```no_run
        /// # let mut server = rswoole::Server::bind("127.0.0.1:9501").unwrap();
        /// server.on_worker_start(|srv, id| async move {
        ///     srv.tick(std::time::Duration::from_secs(1), move || async move {
        ///         println!("worker {id} is alive");
        ///     });
        /// });
        /// ```
        pub fn tick<F, Fut>(&self, interval: Duration, f: F) -> TimerId
        where
            F: Fn() -> Fut + 'static,
            Fut: Future + 'static,
            Fut::Output: CallbackResult,
        {
            self.timers().tick(interval, f)
        }

        /// Calls `f` once after `delay`, unless [`clear`](Self::clear)ed first.
        ///
        /// # Panics
        /// Outside this process's event loop.
        ///
        /// # Examples
        /// ```no_run
        /// # let mut server = rswoole::Server::bind("127.0.0.1:9501").unwrap();
        /// server.on_connect(|srv, fd| async move {
        ///     let s = srv.clone();
        ///     srv.after(std::time::Duration::from_secs(30), move || async move {
        ///         s.close(fd);
        ///     });
        /// });
        /// # server.start().unwrap();
        /// ```
        pub fn after<F, Fut>(&self, delay: Duration, f: F) -> TimerId
        where
            F: FnOnce() -> Fut + 'static,
            Fut: Future + 'static,
            Fut::Output: CallbackResult,
        {
            self.timers().after(delay, f)
        }

        /// Stops a timer of this process. Returns `false` if it is unknown, already cleared,
        /// or a fired [`after`](Self::after).
        ///
        /// # Examples
        ///
        /// ```no_run
        /// use std::time::Duration;
        /// use rswoole::Server;
        ///
        /// fn main() -> rswoole::Result<()> {
        ///     let mut server = Server::bind("127.0.0.1:9501")?;
        ///     server.on_worker_start(|srv, _id| async move {
        ///         let timer = srv.tick(Duration::from_secs(1), || async { println!("tick") });
        ///         let s = srv.clone();
        ///         srv.after(Duration::from_secs(5), move || async move {
        ///             assert!(s.clear(timer)); // stop ticking after 5 s
        ///             assert!(!s.clear(timer)); // already cleared
        ///         });
        ///     });
        ///     server.on_receive(|srv, ev| async move { srv.send(ev.fd, ev.data) });
        ///     server.start()
        /// }
        /// ```
        pub fn clear(&self, id: TimerId) -> bool {
            self.timers().clear(id)
        }
    };
}

// ---------------------------------------------------------------------------------------------
// Worker side

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
}

#[derive(Default)]
struct ClientState {
    pending: HashMap<u64, Pending>,
    /// Per task worker: this worker's tasks not yet answered.
    counts: Vec<usize>,
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
}

impl fmt::Debug for TaskClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskClient")
            .field("worker_id", &self.worker_id)
            .finish()
    }
}

/// What a worker's [`WorkerCtx`](crate::worker::WorkerCtx) holds for tasks and timers.
#[derive(Debug, Default)]
pub(crate) struct WorkerTasks {
    client: Option<Arc<TaskClient>>,
    timers: Timers,
}

enum SubmitError {
    Full,
    NoSuchWorker,
    TooLarge,
}

impl WorkerTasks {
    pub(crate) fn new(
        server: &Server,
        settings: &Arc<Settings>,
        id: usize,
        master_pid: u32,
    ) -> Self {
        let m = settings.task_worker_num;
        let client = (m > 0).then(|| {
            Arc::new(TaskClient {
                worker_id: id,
                master_pid,
                settings: settings.clone(),
                has_on_finish: server.tasks.on_finish.is_some(),
                outboxes: (0..m).map(|_| Arc::new(Outbox::default())).collect(),
                state: Mutex::new(ClientState {
                    pending: HashMap::new(),
                    counts: vec![0; m],
                }),
                next: AtomicU64::new(0),
                rr: AtomicUsize::new(id),
            })
        });
        WorkerTasks {
            client,
            timers: Timers::default(),
        }
    }
}

/// Starts the links of this worker to every task worker (on the worker's `LocalSet`).
pub(crate) fn start_links(handle: &Handle, server: &Server) {
    let Some(client) = handle.ctx.tasks.client.clone() else {
        return;
    };
    let cbs = Rc::new(LinkCbs {
        on_finish: server.tasks.on_finish.clone(),
        on_pipe_message: server.on_pipe_message.clone(),
    });
    for j in 0..client.outboxes.len() {
        let (c, h, cbs) = (client.clone(), handle.clone(), cbs.clone());
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
            Some(j) => j,
            None => {
                let start = self.rr.fetch_add(1, Relaxed);
                (0..m)
                    .map(|k| (start + k) % m)
                    .min_by_key(|&j| st.counts[j])
                    .expect("m > 0")
            }
        };
        if st.counts[j] >= limit {
            return Err(SubmitError::Full);
        }
        let seq = self.next.fetch_add(1, Relaxed) + 1;
        let id = ((self.worker_id as u64) << 48) | (seq & ((1 << 48) - 1));
        st.counts[j] += 1;
        st.pending.insert(
            id,
            Pending {
                tw: j,
                sent_gen: None,
                tries: 0,
                payload: payload.clone(),
                waiter,
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
    fn complete(&self, id: u64, outcome: Outcome, handle: &Handle, cbs: &LinkCbs) {
        let Some(p) = ({
            let mut st = self.state.lock();
            let p = st.pending.remove(&id);
            if let Some(p) = &p {
                st.counts[p.tw] -= 1;
            }
            p
        }) else {
            return;
        };
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
                let fut = cb(handle.clone(), TaskId(id), r);
                tokio::task::spawn_local(catch_panic("on_finish", fut));
            }
        }
    }

    /// Link `gen` to task worker `j` ended. After a `Goodbye` every unanswered task was never
    /// started: send it again. After a crash, report `WorkerDied` (or retry, if configured).
    fn link_down(&self, j: usize, gen: u64, goodbye: bool, handle: &Handle, cbs: &LinkCbs) {
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
    }
}

async fn link_loop(client: Arc<TaskClient>, j: usize, handle: Handle, cbs: Rc<LinkCbs>) {
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
        let reader = async {
            loop {
                match task_link::recv_frames(&fd, &mut buf, max).await {
                    Ok(Some(frames)) => {
                        for f in frames {
                            match f.kind {
                                FKind::Result => {
                                    client.complete(f.id, Outcome::Done(f.payload), &handle, &cbs)
                                }
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
        let goodbye = tokio::select! {
            g = reader => g,
            r = writer => {
                if let Err(e) = r {
                    tracing::debug!(task_worker = j, error = %e, "task link write failed");
                }
                false
            }
        };
        drop(fd);
        client.link_down(j, gen, goodbye, &handle, &cbs);
        if !goodbye {
            // A crashed task worker is being restarted: do not spin on its backlog.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// A stopping worker waits (at most `limit`) for the results of its unanswered tasks, which
/// can reach no other process; `on_finish` callbacks still run.
pub(crate) async fn wait_pending(handle: &Handle, limit: Duration) {
    let Some(client) = &handle.ctx.tasks.client else {
        return;
    };
    let waiting = || {
        client
            .state
            .lock()
            .pending
            .values()
            .filter(|p| !matches!(p.waiter, Waiter::Abandoned))
            .count()
    };
    let deadline = tokio::time::Instant::now() + limit;
    let n = waiting();
    if n > 0 {
        tracing::info!(tasks = n, "worker stopping: waiting for its tasks' results");
    }
    while waiting() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Let the last on_finish callbacks run.
    tokio::task::yield_now().await;
}

fn submit_error<T>(e: SubmitError, payload: T) -> TaskError<T> {
    match e {
        SubmitError::Full => TaskError::Full(payload),
        SubmitError::TooLarge => TaskError::TooLarge(payload),
        SubmitError::NoSuchWorker => TaskError::Unavailable(payload, "no such task worker"),
    }
}

impl Handle {
    fn task_client<T>(&self, payload: T) -> Result<(&Arc<TaskClient>, T), TaskError<T>> {
        match &self.ctx.tasks.client {
            Some(c) => Ok((c, payload)),
            None => Err(TaskError::Unavailable(
                payload,
                "the server has no task workers (task_worker_num is 0)",
            )),
        }
    }

    fn send_task<T: Serialize>(
        &self,
        target: Option<usize>,
        payload: T,
    ) -> Result<TaskId, TaskError<T>> {
        let (client, payload) = self.task_client(payload)?;
        if !client.has_on_finish {
            return Err(TaskError::Unavailable(
                payload,
                "task() needs an on_finish callback to deliver the result (or use task_wait)",
            ));
        }
        let bytes = match postcard::to_allocvec(&payload) {
            Ok(v) => Bytes::from(v),
            Err(e) => return Err(TaskError::Codec(payload, e.to_string())),
        };
        client
            .submit(target, bytes, Waiter::Finish)
            .map_err(|e| submit_error(e, payload))
    }

    /// Hands `payload` to a task worker (the one with the fewest of this worker's tasks) and
    /// returns at once; [`on_finish`](Server::on_finish) runs in this worker with the result,
    /// or with the error that ended the task. Never blocks, never drops the task silently.
    ///
    /// # Errors
    /// [`TaskError::Full`] (this worker has `task_queue_size` tasks waiting for every task
    /// worker), [`TaskError::TooLarge`], [`TaskError::Codec`], [`TaskError::Unavailable`] (no
    /// task workers, or no `on_finish`). Each hands `payload` back.
    ///
    /// # Examples
    /// ```no_run
    /// # let mut server = rswoole::Server::bind("127.0.0.1:9501").unwrap();
    /// server.on_receive(|srv, ev| async move {
    ///     if let Err(e) = srv.task(ev.data.to_vec()) {
    ///         let _ = srv.send(ev.fd, format!("busy: {e}\n"));
    ///         let _payload: Vec<u8> = e.into_inner(); // nothing lost
    ///     }
    /// });
    /// # server.start().unwrap();
    /// ```
    pub fn task<T: Serialize>(&self, payload: T) -> Result<TaskId, TaskError<T>> {
        self.send_task(None, payload)
    }

    /// As [`task`](Handle::task), to task worker `task_worker` (`0..task_worker_num`).
    ///
    /// # Errors
    /// As `task`; [`TaskError::Unavailable`] if `task_worker` is out of range.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use rswoole::{Server, Settings};
    ///
    /// fn main() -> rswoole::Result<()> {
    ///     let mut server = Server::bind("127.0.0.1:9501")?;
    ///     server.set(Settings { task_worker_num: 4, ..Default::default() });
    ///     server.on_task(|srv, _task| async move { srv.task_worker_id() });
    ///     server.on_finish(|_srv, _id, r| async move { println!("ran on {:?}", r.get::<usize>()) });
    ///     server.on_receive(|srv, ev| async move {
    ///         // Keep every task of one connection on the same task worker.
    ///         let target = (ev.fd.0 % 4) as usize;
    ///         srv.task_to(target, ev.data.to_vec()).map(drop).map_err(|e| e.to_string())
    ///     });
    ///     server.start()
    /// }
    /// ```
    pub fn task_to<T: Serialize>(
        &self,
        task_worker: usize,
        payload: T,
    ) -> Result<TaskId, TaskError<T>> {
        self.send_task(Some(task_worker), payload)
    }

    fn send_wait<T: Serialize>(
        &self,
        payload: T,
    ) -> Result<(oneshot::Receiver<Outcome>, u64, T), TaskError<T>> {
        let (client, payload) = self.task_client(payload)?;
        let bytes = match postcard::to_allocvec(&payload) {
            Ok(v) => Bytes::from(v),
            Err(e) => return Err(TaskError::Codec(payload, e.to_string())),
        };
        let (tx, rx) = oneshot::channel();
        match client.submit(None, bytes, Waiter::Wait(tx)) {
            Ok(id) => Ok((rx, id.0, payload)),
            Err(e) => Err(submit_error(e, payload)),
        }
    }

    async fn recv_wait<T, R: DeserializeOwned>(
        &self,
        rx: oneshot::Receiver<Outcome>,
        id: u64,
        payload: T,
        deadline: tokio::time::Instant,
    ) -> Result<R, TaskError<T>> {
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(Outcome::Done(b))) => {
                postcard::from_bytes(&b).map_err(|e| TaskError::Codec(payload, e.to_string()))
            }
            Ok(Ok(Outcome::Failed(r))) => Err(TaskError::Failed(payload, r)),
            Ok(Ok(Outcome::Died)) | Ok(Err(_)) => Err(TaskError::WorkerDied(payload)),
            Err(_) => {
                if let Some(c) = &self.ctx.tasks.client {
                    if let Some(p) = c.state.lock().pending.get_mut(&id) {
                        p.waiter = Waiter::Abandoned;
                    }
                }
                Err(TaskError::Timeout(payload))
            }
        }
    }

    /// Runs `payload` on a task worker and waits (asynchronously: the worker goes on serving
    /// other events) up to `timeout` for its result, decoded as `R`. Needs no `on_finish`.
    ///
    /// # Errors
    /// [`TaskError::Timeout`] (the task may still run; its result is dropped),
    /// [`TaskError::WorkerDied`], [`TaskError::Failed`], [`TaskError::Codec`] (the result is
    /// not an `R`), and the refusals of [`task`](Handle::task). Each hands `payload` back.
    ///
    /// # Examples
    /// ```no_run
    /// # let mut server = rswoole::Server::bind("127.0.0.1:9501").unwrap();
    /// use std::time::Duration;
    /// server.on_receive(|srv, ev| async move {
    ///     let words: usize = srv
    ///         .task_wait(String::from_utf8_lossy(&ev.data).into_owned(), Duration::from_secs(2))
    ///         .await
    ///         .map_err(|e| e.to_string())?;
    ///     srv.send(ev.fd, format!("{words}\n")).map_err(|e| e.to_string())
    /// });
    /// # server.start().unwrap();
    /// ```
    pub async fn task_wait<T: Serialize, R: DeserializeOwned>(
        &self,
        payload: T,
        timeout: Duration,
    ) -> Result<R, TaskError<T>> {
        let deadline = tokio::time::Instant::now() + timeout;
        let (rx, id, payload) = self.send_wait(payload)?;
        self.recv_wait(rx, id, payload, deadline).await
    }

    /// Runs every payload as a task (spread over the task workers) and waits for all of them,
    /// at most `timeout` in total (Swoole's `taskWaitMulti`). The results are in the order of
    /// `payloads`; each is what [`task_wait`](Handle::task_wait) would return.
    ///
    /// # Examples
    /// ```no_run
    /// # let mut server = rswoole::Server::bind("127.0.0.1:9501").unwrap();
    /// use std::time::Duration;
    /// server.on_receive(|srv, ev| async move {
    ///     let results = srv.task_wait_all::<u64, u64>(vec![1, 2, 3], Duration::from_secs(1)).await;
    ///     let sum: u64 = results.into_iter().filter_map(Result::ok).sum();
    ///     srv.send(ev.fd, format!("{sum}\n")).map_err(|e| e.to_string())
    /// });
    /// # server.start().unwrap();
    /// ```
    pub async fn task_wait_all<T: Serialize, R: DeserializeOwned>(
        &self,
        payloads: Vec<T>,
        timeout: Duration,
    ) -> Vec<Result<R, TaskError<T>>> {
        let deadline = tokio::time::Instant::now() + timeout;
        let sent: Vec<_> = payloads.into_iter().map(|p| self.send_wait(p)).collect();
        let mut out = Vec::with_capacity(sent.len());
        for s in sent {
            out.push(match s {
                Ok((rx, id, payload)) => self.recv_wait(rx, id, payload, deadline).await,
                Err(e) => Err(e),
            });
        }
        out
    }

    timer_methods!();

    fn timers(&self) -> &Timers {
        &self.ctx.tasks.timers
    }
}

// ---------------------------------------------------------------------------------------------
// Task worker side

/// What [`on_task`](Server::on_task) gets: the way to act from a task worker. Cheap to clone.
///
/// # Examples
///
/// ```no_run
/// use rswoole::{Server, Settings, TaskHandle};
///
/// fn main() -> rswoole::Result<()> {
///     let mut server = Server::bind("127.0.0.1:9501")?;
///     server.set(Settings { task_worker_num: 2, ..Default::default() });
///     server.on_task(|srv: TaskHandle, task| async move {
///         println!("task worker {} (worker id {})", srv.task_worker_id(), srv.worker_id());
///         let _ = srv.send_message(task.src_worker(), "progress: started");
///         task.raw().len()
///     });
///     server.on_pipe_message(|_srv, from, msg| async move { println!("{from}: {msg:?}") });
///     server.on_receive(|srv, ev| async move { srv.task(ev.data.to_vec()).map(drop).map_err(|e| e.to_string()) });
///     server.on_finish(|_srv, _id, _r| async {});
///     server.start()
/// }
/// ```
#[derive(Clone)]
pub struct TaskHandle {
    pub(crate) ctx: Arc<TaskWorkerCtx>,
}

pub(crate) struct TaskWorkerCtx {
    pub(crate) index: usize,
    pub(crate) settings: Arc<Settings>,
    pub(crate) shared: Shared,
    /// The latest link of each worker, for `send_message`.
    pub(crate) workers: Mutex<HashMap<usize, Arc<Outbox>>>,
    pub(crate) timers: Timers,
}

impl fmt::Debug for TaskHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskHandle")
            .field("task_worker_id", &self.ctx.index)
            .finish()
    }
}

impl TaskHandle {
    /// This task worker's index, `0..task_worker_num`.
    pub fn task_worker_id(&self) -> usize {
        self.ctx.index
    }

    /// This task worker's Swoole worker id, `worker_num + task_worker_id()` (what workers see
    /// as the sender in `on_pipe_message`).
    pub fn worker_id(&self) -> usize {
        self.ctx.settings.worker_num + self.ctx.index
    }

    pub(crate) fn reply(
        out: Arc<Outbox>,
        id: u64,
        src_worker: usize,
        data: Bytes,
        max: usize,
    ) -> Task {
        Task {
            id: TaskId(id),
            src_worker,
            data,
            reply: Arc::new(Reply {
                out,
                id,
                done: AtomicBool::new(false),
                max,
            }),
        }
    }

    /// Sends `data` to worker `worker` (`0..worker_num`): its
    /// [`on_pipe_message`](Server::on_pipe_message) runs with `from` = [`worker_id`](Self::worker_id).
    /// Goes straight over the worker's link to this task worker (not through the master);
    /// messages to one worker arrive in order.
    ///
    /// # Errors
    /// [`SendError::NoWorker`] if `worker` is out of range or not connected to this task
    /// worker (it is starting, or gone); the data comes back in the error.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use rswoole::{Server, Settings};
    ///
    /// fn main() -> rswoole::Result<()> {
    ///     let mut server = Server::bind("127.0.0.1:9501")?;
    ///     server.set(Settings { worker_num: 2, task_worker_num: 1, ..Default::default() });
    ///     server.on_task(|srv, task| async move {
    ///         for step in 1..=3 {
    ///             srv.send_message(task.src_worker(), format!("step {step}/3")).map_err(|e| e.to_string())?;
    ///         }
    ///         Ok::<(), String>(())
    ///     });
    ///     server.on_pipe_message(|_srv, from, msg| async move { println!("from {from}: {msg:?}") });
    ///     server.on_receive(|srv, _ev| async move { srv.task(()).map(drop).map_err(|e| e.to_string()) });
    ///     server.on_finish(|_srv, _id, _r| async {});
    ///     server.start()
    /// }
    /// ```
    pub fn send_message(&self, worker: usize, data: impl Into<Bytes>) -> Result<(), SendError> {
        let data = data.into();
        let out = self.ctx.workers.lock().get(&worker).cloned();
        match out {
            Some(o)
                if o.push(Frame {
                    kind: FKind::Message,
                    id: 0,
                    payload: data.clone(),
                }) =>
            {
                Ok(())
            }
            _ => Err(SendError::NoWorker(worker, data)),
        }
    }

    /// Server-wide counters.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use rswoole::{Server, Settings};
    ///
    /// fn main() -> rswoole::Result<()> {
    ///     let mut server = Server::bind("127.0.0.1:9501")?;
    ///     server.set(Settings { task_worker_num: 1, ..Default::default() });
    ///     server.on_task(|srv, _task| async move { srv.stats().connections });
    ///     server.on_receive(|srv, ev| async move {
    ///         let open: u64 = srv.task_wait((), Duration::from_secs(1)).await.map_err(|e| e.to_string())?;
    ///         srv.send(ev.fd, format!("{open} open\n")).map_err(|e| e.to_string())
    ///     });
    ///     server.start()
    /// }
    /// ```
    pub fn stats(&self) -> crate::Stats {
        crate::server::stats(&self.ctx.shared, self.ctx.settings.worker_num)
    }

    timer_methods!();

    fn timers(&self) -> &Timers {
        &self.ctx.timers
    }
}

/// Start-up check (before anything forks): task workers need `on_task`, and `on_task` needs
/// task workers.
pub(crate) fn check_callbacks(server: &Server, settings: &Settings) -> crate::Result<()> {
    let has_task = server.tasks.on_task.is_some();
    if settings.task_worker_num > 0 && !has_task {
        return Err(crate::Error::InvalidSetting {
            name: "task_worker_num",
            reason: format!(
                "task_worker_num is {} but the callback `on_task` is missing: register server.on_task(...)",
                settings.task_worker_num
            ),
        });
    }
    if settings.task_worker_num == 0 && has_task {
        return Err(crate::Error::InvalidSetting {
            name: "task_worker_num",
            reason:
                "the callback `on_task` is registered but task_worker_num is 0: set task_worker_num"
                    .into(),
        });
    }
    Ok(())
}
