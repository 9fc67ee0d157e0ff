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
//!     server.set(Settings::default().worker_num(2).task_worker_num(2));
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

mod handle;

use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::oneshot;

pub use handle::TaskHandle;

use crate::base::task::Outcome;
use crate::base::{
    CallbackResult, ClusterError, TaskError, TaskId, TaskResult, TimerError, TimerId,
};
pub use crate::runtime::task::Task;
use crate::runtime::task_client::TaskClient;
use crate::server::{Handle, Server};

// ---------------------------------------------------------------------------------------------
// Callbacks

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
        self.app.on_task = Some(Rc::new(move |ctx, t| {
            let fut = f(TaskHandle::new(ctx), t);
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
        self.app.on_finish = Some(Rc::new(move |ctx, id, r| {
            let fut = f(Handle::new(ctx), id, r);
            Box::pin(async move { fut.await.report("on_finish") })
        }));
        self
    }
}

// ---------------------------------------------------------------------------------------------
// Timers

macro_rules! timer_methods {
    ($h:ty) => {
        /// Runs `f` every `interval` on this process's event loop, each run with a handle;
        /// returns the timer's id for [`clear`](Self::clear). The timer ends with the process.
        ///
        /// # Examples
        ///
        /// ```no_run
        /// use std::time::Duration;
        /// use rswoole::Server;
        ///
        /// fn main() -> rswoole::Result<()> {
        ///     let mut server = Server::bind("127.0.0.1:9501")?;
        ///     server.on_receive(|srv, ev| async move { srv.send(ev.fd, ev.data) });
        ///     server.on_worker_start(|srv, _id| async move {
        ///         srv.tick(Duration::from_secs(10), |srv| async move {
        ///             println!("{} connections", srv.stats().connections);
        ///         });
        ///     });
        ///     server.start()
        /// }
        /// ```
        pub fn tick<F, Fut>(&self, interval: Duration, f: F) -> TimerId
        where
            F: Fn($h) -> Fut + 'static,
            Fut: Future + 'static,
            Fut::Output: CallbackResult,
        {
            let h = self.clone();
            self.timers().tick(
                interval,
                Rc::new(move || {
                    let fut = f(h.clone());
                    Box::pin(async move { fut.await.report("tick") })
                }),
            )
        }

        /// Runs `f` once after `delay`, with a handle; returns the timer's id for
        /// [`clear`](Self::clear).
        ///
        /// # Examples
        ///
        /// ```no_run
        /// use std::time::Duration;
        /// use rswoole::Server;
        ///
        /// fn main() -> rswoole::Result<()> {
        ///     let mut server = Server::bind("127.0.0.1:9501")?;
        ///     server.on_receive(|srv, ev| async move {
        ///         srv.after(Duration::from_secs(1), move |srv| async move {
        ///             srv.send(ev.fd, "a second later\n")
        ///         });
        ///     });
        ///     server.start()
        /// }
        /// ```
        pub fn after<F, Fut>(&self, delay: Duration, f: F) -> TimerId
        where
            F: FnOnce($h) -> Fut + 'static,
            Fut: Future + 'static,
            Fut::Output: CallbackResult,
        {
            let h = self.clone();
            self.timers().after(
                delay,
                Box::new(move || {
                    let fut = f(h);
                    Box::pin(async move { fut.await.report("after") })
                }),
            )
        }

        /// Stops timer `id`.
        ///
        /// # Errors
        /// [`TimerError::NotActive`] if it already fired (`after`), was cleared, or belongs to
        /// another process.
        ///
        /// # Examples
        ///
        /// ```no_run
        /// use std::time::Duration;
        /// use rswoole::Server;
        ///
        /// fn main() -> rswoole::Result<()> {
        ///     let mut server = Server::bind("127.0.0.1:9501")?;
        ///     server.on_receive(|srv, ev| async move {
        ///         let t = srv.after(Duration::from_secs(5), |_srv| async {});
        ///         assert!(srv.clear(t).is_ok()); // cancelled before it fired
        ///         assert!(srv.clear(t).is_err()); // not active any more
        ///         srv.send(ev.fd, ev.data)
        ///     });
        ///     server.start()
        /// }
        /// ```
        pub fn clear(&self, id: TimerId) -> Result<(), TimerError> {
            if self.timers().clear(id) {
                Ok(())
            } else {
                Err(TimerError::NotActive(id))
            }
        }
    };
}
pub(crate) use timer_methods;

// ---------------------------------------------------------------------------------------------
// Worker side

impl Handle {
    fn task_client<T>(&self, payload: T) -> Result<(&Arc<TaskClient>, T), TaskError<T>> {
        match &self.ctx.tasks {
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
        if !client.has_on_finish() {
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
            .submit_finish(target, bytes)
            .map_err(|e| e.with(payload))
    }

    /// Hands `payload` to a task worker (the one with the fewest of this worker's tasks) and
    /// returns at once; [`on_finish`](Server::on_finish) runs in this worker with the result,
    /// or with the error that ended the task. Never blocks, never drops the task silently.
    ///
    /// # Errors
    /// [`TaskError::Full`] (this worker has `task_queue_size` tasks waiting for every task
    /// worker), [`TaskError::TooLarge`], [`TaskError::Codec`], [`TaskError::Unavailable`] (no
    /// task workers, or no `on_finish`), [`TaskError::NotRun`] (the server is stopping and
    /// the task workers have stopped). Each hands `payload` back.
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
    ///     server.set(Settings::default().task_worker_num(4));
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
    ) -> Result<(oneshot::Receiver<Outcome>, TaskId, T), TaskError<T>> {
        let (client, payload) = self.task_client(payload)?;
        let bytes = match postcard::to_allocvec(&payload) {
            Ok(v) => Bytes::from(v),
            Err(e) => return Err(TaskError::Codec(payload, e.to_string())),
        };
        match client.submit_wait(bytes) {
            Ok((rx, id)) => Ok((rx, id, payload)),
            Err(e) => Err(e.with(payload)),
        }
    }

    async fn recv_wait<T, R: DeserializeOwned>(
        &self,
        rx: oneshot::Receiver<Outcome>,
        id: TaskId,
        payload: T,
        deadline: tokio::time::Instant,
    ) -> Result<R, TaskError<T>> {
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(outcome)) => match outcome.into_result(()) {
                Ok(b) => {
                    postcard::from_bytes(&b).map_err(|e| TaskError::Codec(payload, e.to_string()))
                }
                Err(e) => Err(e.map(|()| payload)),
            },
            Ok(Err(_)) => Err(TaskError::WorkerDied(payload)),
            Err(_) => {
                if let Some(c) = &self.ctx.tasks {
                    c.abandon(id);
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
    /// [`TaskError::WorkerDied`], [`TaskError::Failed`], [`TaskError::NotRun`] (the server is
    /// stopping), [`TaskError::Codec`] (the result is not an `R`), and the refusals of
    /// [`task`](Handle::task). Each hands `payload` back.
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

    /// Runs `payload` on a task worker of any node of the cluster
    /// ([`Settings::cluster`](crate::Settings::cluster)) — this one included, if it has task
    /// workers — and waits (asynchronously) up to `timeout` for its result, decoded as `R`.
    /// The node that runs it calls its own [`on_task`](Server::on_task) (every node must
    /// register one that understands `T`). Needs no task workers on this node.
    ///
    /// The task goes through a Redis stream: it runs at least once. If the node that took it
    /// dies (or loses Redis) before answering, another node takes it over after
    /// [`ClusterSettings::task_claim_timeout`](crate::ClusterSettings::task_claim_timeout)
    /// and runs it again; this call returns the first result that comes back, once.
    ///
    /// # Errors
    /// [`TaskError::Cluster`] with [`ClusterError::NotConfigured`](crate::ClusterError::NotConfigured)
    /// without a cluster, or [`ClusterError::Unavailable`](crate::ClusterError::Unavailable)
    /// when Redis cannot take the task or the result cannot come back (the task may still
    /// run); [`TaskError::Timeout`] (no node answered in time); [`TaskError::Failed`],
    /// [`TaskError::WorkerDied`] (as for [`task_wait`](Handle::task_wait), on the node that
    /// ran it); [`TaskError::TooLarge`] (above this node's `task_max_payload`);
    /// [`TaskError::Codec`]. Each hands `payload` back.
    ///
    /// # Examples
    /// ```no_run
    /// use std::time::Duration;
    /// use rswoole::{ClusterSettings, Server, Settings};
    ///
    /// fn main() -> rswoole::Result<()> {
    ///     let mut server = Server::bind("127.0.0.1:9501")?;
    ///     server.set(Settings::default().task_worker_num(2).cluster(Some(
    ///         ClusterSettings::new("redis://127.0.0.1:6379/", "node-a"),
    ///     )));
    ///     server.on_task(|_srv, task| async move { task.data::<u64>().unwrap_or(0) * 2 });
    ///     server.on_receive(|srv, ev| async move {
    ///         // Runs on whichever node of the cluster has a free task worker.
    ///         let doubled: u64 = srv
    ///             .task_wait_cluster(21u64, Duration::from_secs(5))
    ///             .await
    ///             .map_err(|e| e.to_string())?;
    ///         srv.send(ev.fd, format!("{doubled}\n")).map_err(|e| e.to_string())
    ///     });
    ///     server.start()
    /// }
    /// ```
    pub async fn task_wait_cluster<T: Serialize, R: DeserializeOwned>(
        &self,
        payload: T,
        timeout: Duration,
    ) -> Result<R, TaskError<T>> {
        use crate::runtime::cluster::{Reply, WaitError};
        let deadline = tokio::time::Instant::now() + timeout;
        let Some(cluster) = &self.ctx.cluster else {
            return Err(TaskError::Cluster(payload, ClusterError::NotConfigured));
        };
        let bytes = match postcard::to_allocvec(&payload) {
            Ok(v) => Bytes::from(v),
            Err(e) => return Err(TaskError::Codec(payload, e.to_string())),
        };
        if bytes.len() > self.ctx.settings.task_max_payload {
            return Err(TaskError::TooLarge(payload));
        }
        match cluster.task_wait(bytes, deadline).await {
            Ok(Reply::Done(b)) => {
                postcard::from_bytes(&b).map_err(|e| TaskError::Codec(payload, e.to_string()))
            }
            Ok(Reply::Failed(why)) => Err(TaskError::Failed(payload, why)),
            Ok(Reply::Died) => Err(TaskError::WorkerDied(payload)),
            Err(WaitError::Cluster(e)) => Err(TaskError::Cluster(payload, e)),
            Err(WaitError::Timeout) => Err(TaskError::Timeout(payload)),
        }
    }

    /// Queues `payload` to the cluster ([`Settings::cluster`](crate::Settings::cluster)) and
    /// returns its id as soon as Redis has it (Swoole's `task()`, for every node): a task
    /// worker of any node runs it — this one included, if it has task workers — and the
    /// result comes back to [`on_finish`](Server::on_finish) **of this worker**, once.
    ///
    /// The task goes through a Redis stream and runs at least once: if the node that took
    /// it dies (or loses Redis) before answering, another node takes it over after
    /// [`ClusterSettings::task_claim_timeout`](crate::ClusterSettings::task_claim_timeout)
    /// and runs it again; `on_finish` gets the first result, later ones are dropped. The id
    /// is unique among this worker's tasks, local ones included ([`TaskId::is_cluster`]);
    /// [`TaskResult::task_worker`] is 0 for a cluster task (the worker is on another node).
    ///
    /// `on_finish` also runs, once, when there can be no result: with
    /// [`TaskError::Cluster`] (the reply subscription was lost with Redis; the task may still
    /// run), [`TaskError::Failed`] / [`TaskError::WorkerDied`] from the node that ran it, or
    /// [`TaskError::Timeout`] if this worker stops first (after waiting up to
    /// `max_wait_time` for it).
    ///
    /// # Errors
    /// Nothing was queued and `on_finish` will not run: [`TaskError::Cluster`] with
    /// [`ClusterError::NotConfigured`](crate::ClusterError::NotConfigured) or
    /// [`ClusterError::Unavailable`](crate::ClusterError::Unavailable) (Redis did not take
    /// it); [`TaskError::Unavailable`] without an `on_finish`; [`TaskError::TooLarge`]
    /// (above this node's `task_max_payload`); [`TaskError::Codec`]. Each hands `payload`
    /// back.
    ///
    /// # Examples
    /// ```no_run
    /// use rswoole::{ClusterSettings, Server, Settings};
    ///
    /// fn main() -> rswoole::Result<()> {
    ///     let mut server = Server::bind("127.0.0.1:9501")?;
    ///     server.set(Settings::default().task_worker_num(2).cluster(Some(
    ///         ClusterSettings::new("redis://127.0.0.1:6379/", "node-a"),
    ///     )));
    ///     server.on_task(|_srv, task| async move { task.data::<u64>().unwrap_or(0) * 2 });
    ///     server.on_finish(|_srv, id, result| async move {
    ///         println!("cluster task {id} ({}): {:?}", id.is_cluster(), result.get::<u64>());
    ///     });
    ///     server.on_receive(|srv, ev| async move {
    ///         let id = srv.task_cluster(21u64).await.map_err(|e| e.to_string())?;
    ///         srv.send(ev.fd, format!("queued {id}\n")).map_err(|e| e.to_string())
    ///     });
    ///     server.start()
    /// }
    /// ```
    pub async fn task_cluster<T: Serialize>(&self, payload: T) -> Result<TaskId, TaskError<T>> {
        // Taken now, while the event that queues it is current: its connection is owed
        // the on_finish.
        let hold = self.ctx.holds.take_current();
        let Some(cluster) = &self.ctx.cluster else {
            return Err(TaskError::Cluster(payload, ClusterError::NotConfigured));
        };
        if !cluster.has_on_finish() {
            return Err(TaskError::Unavailable(
                payload,
                "task_cluster() needs an on_finish callback to deliver the result (or use task_wait_cluster)",
            ));
        }
        let bytes = match postcard::to_allocvec(&payload) {
            Ok(v) => Bytes::from(v),
            Err(e) => return Err(TaskError::Codec(payload, e.to_string())),
        };
        if bytes.len() > self.ctx.settings.task_max_payload {
            return Err(TaskError::TooLarge(payload));
        }
        cluster
            .task_finish(self.ctx.id, bytes, hold)
            .await
            .map_err(|e| TaskError::Cluster(payload, e))
    }

    timer_methods!(Handle);

    fn timers(&self) -> &crate::runtime::timers::Timers {
        &self.ctx.timers
    }
}

/// The task callback setters of [`Server`], forwarded by the HTTP and WebSocket servers to
/// their inner `server` field.
macro_rules! forward_task_methods {
    () => {
        /// Runs a task in a task worker (see [`Server::on_task`](crate::Server::on_task)).
        pub fn on_task<F, Fut>(&mut self, f: F) -> &mut Self
        where
            F: Fn($crate::TaskHandle, $crate::Task) -> Fut + 'static,
            Fut: std::future::Future + 'static,
            Fut::Output: serde::Serialize,
        {
            self.server.on_task(f);
            self
        }

        /// Gets a task's result in the worker that sent it (see
        /// [`Server::on_finish`](crate::Server::on_finish)).
        pub fn on_finish<F, Fut>(&mut self, f: F) -> &mut Self
        where
            F: Fn($crate::Handle, $crate::TaskId, $crate::TaskResult) -> Fut + 'static,
            Fut: std::future::Future + 'static,
            Fut::Output: $crate::CallbackResult,
        {
            self.server.on_finish(f);
            self
        }
    };
}
pub(crate) use forward_task_methods;
