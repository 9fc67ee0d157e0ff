//! A task as a task worker runs it: its payload and the one reply it can send.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::base::{TaskError, TaskId};
use crate::ipc::task_link::{FKind, Frame, Outbox};

/// A task, as given to [`on_task`](crate::Server::on_task) in a task worker.
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use rswoole::{Server, Settings, Task};
///
/// fn main() -> rswoole::Result<()> {
///     let mut server = Server::bind("127.0.0.1:9501")?;
///     server.set(Settings::default().task_worker_num(1));
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
    ///     server.set(Settings::default().task_worker_num(1));
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
    ///     server.set(Settings::default().task_worker_num(1));
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

impl Task {
    /// A task `id` from worker `src_worker`, replying through `out` (results above `max`
    /// bytes are refused).
    pub(crate) fn new(
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
}
