//! Layer 4, the process runtime: the master and its reactor threads, the manager, workers,
//! task workers, timers and dead-worker recovery. It runs an [`app::App`] (a callback table
//! defined here and filled by the public API) and never sees `Server`. Imports: `base`,
//! `sys`, `ipc`, `owner`.
//!
//! - [`master`]: start-up checks, binding, the fork of the manager, the master's loop.
//! - [`reactor`]: Process mode's dispatch of events to workers and recovery when one dies.
//! - [`manager`]: forks, restarts and reloads workers and task workers.
//! - [`worker`]: a worker process: its dispatcher, its transport (the one way every `Handle`
//!   method reaches a connection), Base mode's own connections.
//! - [`task_worker`], [`task`], [`task_client`]: task workers, the tasks they run, and the
//!   worker's side that sends tasks and gets results.
//! - [`timers`]: `tick` / `after` on a process's event loop.
//! - [`holds`]: replies the application still owes a connection (kept writable after the
//!   client's FIN until they are sent).
//! - [`daemon`]: daemon mode, the pid file, the log file, the status socket.

pub(crate) mod app;
pub(crate) mod daemon;
pub(crate) mod holds;
pub(crate) mod manager;
pub(crate) mod master;
pub(crate) mod reactor;
pub(crate) mod task;
pub(crate) mod task_client;
pub(crate) mod task_worker;
pub(crate) mod timers;
pub(crate) mod worker;

pub(crate) use master::start;
