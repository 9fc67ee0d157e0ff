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
//! - [`cluster`]: several nodes sharing broadcasts and membership through Redis.
//! - [`holds`]: replies the application still owes a connection (kept writable after the
//!   client's FIN until they are sent).
//! - [`daemon`]: daemon mode, the pid file, the log file, the control socket.
//! - [`certs`]: reloading the TLS certificates on `SIGRTMIN+1` and when their files change.

pub(crate) mod admin;
pub(crate) mod app;
pub(crate) mod certs;
pub(crate) mod cluster;
pub(crate) mod daemon;
pub(crate) mod handover;
pub(crate) mod holds;
pub(crate) mod inherit;
pub(crate) mod manager;
pub(crate) mod master;
pub(crate) mod reactor;
pub(crate) mod systemd;
pub(crate) mod task;
pub(crate) mod task_client;
pub(crate) mod task_worker;
pub(crate) mod timers;
pub(crate) mod upgrade;
pub(crate) mod worker;

pub(crate) use master::start;

/// Runs a freshly forked worker or task worker: resets signals, dies with its parent, takes
/// `title`, publishes its pid and state in shared-memory slot `slot`, runs `main` on a
/// single-threaded runtime, and exits with its code. A replaced (reloaded) process exits after
/// its successor took the slot: it leaves the slot's state alone then.
pub(crate) fn run_child(
    launch: &master::Launch,
    slot: usize,
    title: &str,
    main: impl std::future::Future<Output = i32>,
) -> ! {
    use std::sync::atomic::Ordering::Relaxed;

    use crate::ipc::shared;
    crate::sys::reset_signals();
    let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM);
    crate::sys::set_process_title(title);
    crate::ipc::metrics::enter(slot, 1);
    let s = launch.shared.worker(slot);
    s.pid.store(std::process::id(), Relaxed);
    s.started_ms.store(shared::now_ms(), Relaxed);
    s.state.store(shared::W_STARTING, Relaxed);
    let code = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => tokio::task::LocalSet::new().block_on(&rt, main),
        Err(e) => {
            tracing::error!(error = %e, "{title}: cannot build its runtime");
            1
        }
    };
    if s.pid.load(Relaxed) == std::process::id() {
        s.state.store(shared::W_EXITING, Relaxed);
    }
    std::process::exit(code)
}
