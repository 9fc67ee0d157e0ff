//! Task results and errors: what a worker gets back from a task worker.

use std::fmt;

use bytes::Bytes;
use serde::de::DeserializeOwned;

use super::error::ClusterError;
use super::ids::TaskId;
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
    /// answered; the task may have run partly. With [`Settings::task_retry_on_crash`](crate::Settings::task_retry_on_crash) it is
    /// sent again instead (up to 3 times) and this comes only after the last try.
    WorkerDied(T),
    /// `task_wait`: no result within the timeout; or the server stopped and the task, still
    /// running, did not answer within `max_wait_time`. The task may still run (or have run
    /// partly); its result is dropped.
    Timeout(T),
    /// The server is stopping and the task was not run: it was still queued when its task
    /// worker stopped (it finishes only the task it is running), or `task` was called after
    /// the task workers had stopped. Nothing of it ran.
    NotRun(T),
    /// The encoded payload is above [`Settings::task_max_payload`](crate::Settings::task_max_payload). Nothing was sent.
    TooLarge(T),
    /// Tasks cannot be sent from here: no task workers (`task_worker_num` is 0), a target
    /// task worker out of range, or `task` without an [`on_finish`](crate::Server::on_finish)
    /// callback (use `task_wait`, or register one). The reason says which.
    Unavailable(T, &'static str),
    /// The payload could not be encoded, or the result could not be decoded as the type asked
    /// for (a mismatch between `on_task`'s return type and the caller's).
    Codec(T, String),
    /// The task ran and failed: `on_task` panicked, or its result could not be encoded or was
    /// above `task_max_payload`.
    Failed(T, String),
    /// [`Handle::task_wait_cluster`](crate::Handle::task_wait_cluster): the task could not be
    /// handed to the cluster, or its result could not come back (Redis is down or
    /// restarting, or this server has no cluster). If the task was queued already it may
    /// still run on some node; its result is dropped.
    Cluster(T, ClusterError),
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
            | TaskError::NotRun(t)
            | TaskError::TooLarge(t)
            | TaskError::Unavailable(t, _)
            | TaskError::Codec(t, _)
            | TaskError::Failed(t, _)
            | TaskError::Cluster(t, _) => t,
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
            TaskError::NotRun(t) => TaskError::NotRun(f(t)),
            TaskError::TooLarge(t) => TaskError::TooLarge(f(t)),
            TaskError::Unavailable(t, r) => TaskError::Unavailable(f(t), r),
            TaskError::Codec(t, r) => TaskError::Codec(f(t), r),
            TaskError::Failed(t, r) => TaskError::Failed(f(t), r),
            TaskError::Cluster(t, e) => TaskError::Cluster(f(t), e),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            TaskError::Full(_) => "Full",
            TaskError::WorkerDied(_) => "WorkerDied",
            TaskError::Timeout(_) => "Timeout",
            TaskError::NotRun(_) => "NotRun",
            TaskError::TooLarge(_) => "TooLarge",
            TaskError::Unavailable(..) => "Unavailable",
            TaskError::Codec(..) => "Codec",
            TaskError::Failed(..) => "Failed",
            TaskError::Cluster(..) => "Cluster",
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
            TaskError::Cluster(_, e) => write!(f, "Cluster(.., {e:?})"),
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
            TaskError::NotRun(_) => f.write_str("not run: the server is stopping"),
            TaskError::TooLarge(_) => f.write_str("task payload above task_max_payload"),
            TaskError::Unavailable(_, r) => write!(f, "cannot send a task: {r}"),
            TaskError::Codec(_, r) => write!(f, "task encoding: {r}"),
            TaskError::Failed(_, r) => write!(f, "task failed: {r}"),
            TaskError::Cluster(_, e) => write!(f, "cluster task: {e}"),
        }
    }
}

impl<T> std::error::Error for TaskError<T> {}

/// What [`on_finish`](crate::Server::on_finish) gets: a task's result, or why there is none.
///
/// # Examples
///
/// ```no_run
/// use rswoole::{Server, Settings, TaskResult};
///
/// fn main() -> rswoole::Result<()> {
///     let mut server = Server::bind("127.0.0.1:9501")?;
///     server.set(Settings::default().task_worker_num(2));
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
    pub(crate) id: TaskId,
    pub(crate) task_worker: usize,
    pub(crate) payload: Bytes,
    pub(crate) outcome: Outcome,
}

#[derive(Debug, Clone)]
pub(crate) enum Outcome {
    Done(Bytes),
    Failed(String),
    Died,
    /// Never started: the server is stopping.
    NotRun,
    /// No result before the stopping worker's deadline (`max_wait_time`).
    TimedOut,
    /// A cluster task whose result cannot come back (Redis lost).
    Cluster(String),
}

impl Outcome {
    /// The result bytes, or the error for `payload`.
    pub(crate) fn into_result<T>(self, payload: T) -> Result<Bytes, TaskError<T>> {
        match self {
            Outcome::Done(b) => Ok(b),
            Outcome::Failed(r) => Err(TaskError::Failed(payload, r)),
            Outcome::Died => Err(TaskError::WorkerDied(payload)),
            Outcome::NotRun => Err(TaskError::NotRun(payload)),
            Outcome::TimedOut => Err(TaskError::Timeout(payload)),
            Outcome::Cluster(why) => {
                Err(TaskError::Cluster(payload, ClusterError::Unavailable(why)))
            }
        }
    }
}

impl TaskResult {
    /// The task's id (as returned by [`Handle::task`](crate::Handle::task)).
    pub fn id(&self) -> TaskId {
        self.id
    }

    /// The task worker (`0..task_worker_num`) that ran it, or was to run it (0 for a cluster
    /// task, [`TaskId::is_cluster`]: that worker is on whichever node ran it).
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
    /// [`TaskError::WorkerDied`], [`TaskError::Failed`], [`TaskError::NotRun`] or
    /// [`TaskError::Timeout`] (the last two while the server stops) if there is no result;
    /// [`TaskError::Codec`] if it is not an `R`. The error holds the task's encoded payload.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use rswoole::{Server, Settings};
    ///
    /// fn main() -> rswoole::Result<()> {
    ///     let mut server = Server::bind("127.0.0.1:9501")?;
    ///     server.set(Settings::default().task_worker_num(1));
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
        let b = self.outcome.clone().into_result(self.payload.clone())?;
        postcard::from_bytes(&b).map_err(|e| TaskError::Codec(self.payload.clone(), e.to_string()))
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
    ///     server.set(Settings::default().task_worker_num(1));
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
        self.outcome.into_result(self.payload)
    }
}
