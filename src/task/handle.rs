//! [`TaskHandle`]: what `on_task` gets in a task worker.

use std::fmt;
use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;

use super::timer_methods;
use crate::base::{CallbackResult, SendError, Stats, TimerError, TimerId};
use crate::ipc::task_link::{FKind, Frame};
use crate::runtime::app::TaskCtx;

/// What [`on_task`](crate::Server::on_task) gets: the way to act from a task worker. Cheap to clone.
///
/// # Examples
///
/// ```no_run
/// use rswoole::{Server, Settings, TaskHandle};
///
/// fn main() -> rswoole::Result<()> {
///     let mut server = Server::bind("127.0.0.1:9501")?;
///     server.set(Settings::default().task_worker_num(2));
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
    pub(crate) ctx: TaskCtx,
}

impl TaskHandle {
    pub(crate) fn new(ctx: TaskCtx) -> TaskHandle {
        TaskHandle { ctx }
    }
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

    /// Sends `data` to worker `worker` (`0..worker_num`): its
    /// [`on_pipe_message`](crate::Server::on_pipe_message) runs with `from` = [`worker_id`](Self::worker_id).
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
    ///     server.set(Settings::default().worker_num(2).task_worker_num(1));
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
    ///     server.set(Settings::default().task_worker_num(1));
    ///     server.on_task(|srv, _task| async move { srv.stats().connections });
    ///     server.on_receive(|srv, ev| async move {
    ///         let open: u64 = srv.task_wait((), Duration::from_secs(1)).await.map_err(|e| e.to_string())?;
    ///         srv.send(ev.fd, format!("{open} open\n")).map_err(|e| e.to_string())
    ///     });
    ///     server.start()
    /// }
    /// ```
    pub fn stats(&self) -> Stats {
        self.ctx.shared.stats(self.ctx.settings.worker_num)
    }

    timer_methods!(TaskHandle);

    fn timers(&self) -> &crate::runtime::timers::Timers {
        &self.ctx.timers
    }
}
