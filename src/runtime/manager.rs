//! The manager: a single-threaded process that forks workers, restarts the ones that die
//! (with backoff when they die at start), and replaces them one at a time on reload.
//!
//! It never starts a thread, so forking from it is sound. Its loop polls three descriptors and
//! never blocks on any of them:
//! - a signalfd (the signals are blocked, so none runs a handler): SIGCHLD (reap), SIGTERM and
//!   SIGINT (stop: the master's at shutdown, or PDEATHSIG when it dies). SIGUSR1, SIGUSR2 and
//!   SIGHUP sent to the manager itself still reload, reload the task workers and reopen the
//!   logs;
//! - the control socket: the master's commands ([`Command::Reload`],
//!   [`Command::ReloadTasks`], [`Command::ReopenLogs`]; it turns the operator's signals into
//!   them), one message each;
//! - the recycle channel: [`Command::Recycle`] from a worker that reached `max_request`, one
//!   message per request, with the worker's slot and pid (a request of an incarnation that was
//!   already replaced is ignored).
//!
//! Commands are messages, not signals, because pending standard signals merge: two workers
//! asking at once would be one SIGUSR1 (see [`crate::ipc::command`]). The signals left inside
//! the server (SIGTERM to stop a process, SIGHUP to reopen logs) ask for the same thing every
//! time, so one delivery for several sends loses nothing.
//!
//! Reload (`reload_queue`): one slot at a time, the new incarnation is forked first, then the
//! old one retires (Process-mode workers get `Stop` from the master when the new pipe is
//! installed; Base-mode workers and task workers get SIGTERM); the next slot follows when the
//! retired process has exited. A task worker that retires finishes its running task and sends
//! `Goodbye`, so the workers send its unanswered tasks to the next incarnation
//! (`task_worker.rs`, `task_client.rs`): nothing is lost or run twice.

use std::collections::{HashSet, VecDeque};
use std::ops::Range;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::app::App;
use super::master::Launch;
use super::{daemon, task_worker, worker};
use crate::base::{Mode, SockType};
use crate::ipc::command::{self, Command, Received};
use crate::ipc::shared;
use crate::sys;

/// A worker that dies within this long after starting counts as a failed start.
const FAILED_START_WINDOW: Duration = Duration::from_secs(1);
/// Most time between restarts of a worker that keeps failing at start.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

#[derive(Debug, Default)]
struct Slot {
    pid: Option<i32>,
    started: Option<Instant>,
    fails: u32,
    restart_at: Option<Instant>,
}

struct Manager<'a> {
    app: &'a App,
    launch: &'a Launch,
    /// The manager's end of the control socket: worker pipes go to the master, commands come
    /// from it.
    control: OwnedFd,
    /// False once the master's end is closed (it is then no longer polled).
    control_open: bool,
    /// The recycle channel: the manager reads `recycle_rx`; every worker inherits a copy of
    /// `recycle_tx`.
    recycle_rx: OwnedFd,
    recycle_tx: OwnedFd,
    slots: Vec<Slot>,
    retired: HashSet<i32>,
    stopping: Option<Instant>,
    reload_queue: VecDeque<usize>,
    reloading: Option<i32>,
    /// When each retired (replaced) worker is SIGKILLed if it has not exited.
    retire_deadlines: Vec<(i32, Instant)>,
}

pub(crate) fn run(app: &App, mut launch: Launch, control: OwnedFd) -> ! {
    sys::set_process_title("rswoole: manager");
    daemon::forget_notifier();
    // Neither the manager nor the workers may hold the master's TCP listeners: the port must be
    // free as soon as the master exits. (Base-mode workers bind their own, or accept on an
    // inherited listening socket: `shared_accept`.)
    for b in &mut launch.listeners {
        if b.kind == SockType::Tcp && !b.shared_accept {
            b.tcp = None;
        }
    }
    let launch = &launch;
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGTERM);
    let mut mask = SigSet::empty();
    for s in [
        Signal::SIGCHLD,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGHUP,
    ] {
        mask.add(s);
    }
    if mask.thread_block().is_err() {
        std::process::exit(1);
    }
    // The master may have died between fork and prctl.
    if nix::unistd::getppid().as_raw() as u32 != launch.master_pid {
        std::process::exit(1);
    }
    let sfd = match SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "manager: signalfd failed");
            std::process::exit(1);
        }
    };
    let (recycle_rx, recycle_tx) = match sys::seqpacket_pair() {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, "manager: cannot create the recycle channel");
            std::process::exit(1);
        }
    };
    let n = launch.settings.worker_num;
    let mut m = Manager {
        app,
        launch,
        control,
        control_open: true,
        recycle_rx,
        recycle_tx,
        // Slots 0..n are workers, n..n+task_worker_num task workers (src/task_worker.rs).
        slots: (0..n + launch.settings.task_worker_num)
            .map(|_| Slot::default())
            .collect(),
        retired: HashSet::new(),
        stopping: None,
        reload_queue: VecDeque::new(),
        reloading: None,
        retire_deadlines: Vec::new(),
    };
    for i in 0..m.slots.len() {
        m.spawn(i);
    }
    loop {
        let timeout = m.next_timeout();
        let t = match timeout {
            Some(d) => {
                PollTimeout::try_from(d.as_millis().min(60_000) as i32).unwrap_or(PollTimeout::MAX)
            }
            None => PollTimeout::NONE,
        };
        {
            let mut fds = vec![
                PollFd::new(sfd.as_fd(), PollFlags::POLLIN),
                PollFd::new(m.recycle_rx.as_fd(), PollFlags::POLLIN),
            ];
            if m.control_open {
                fds.push(PollFd::new(m.control.as_fd(), PollFlags::POLLIN));
            }
            let _ = poll(&mut fds, t);
        }
        while let Ok(Some(info)) = sfd.read_signal() {
            match Signal::try_from(info.ssi_signo as i32) {
                Ok(Signal::SIGCHLD) => m.reap(),
                Ok(Signal::SIGTERM) | Ok(Signal::SIGINT) => m.stop(),
                Ok(Signal::SIGUSR1) => m.command(Command::Reload),
                Ok(Signal::SIGUSR2) => m.command(Command::ReloadTasks),
                Ok(Signal::SIGHUP) => m.command(Command::ReopenLogs),
                _ => {}
            }
        }
        m.reap();
        m.read_commands();
        m.tick();
        if m.stopping.is_some() && m.slots.iter().all(|s| s.pid.is_none()) && m.retired.is_empty() {
            std::process::exit(0);
        }
    }
}

impl Manager<'_> {
    fn spawn(&mut self, i: usize) {
        let task_worker = i >= self.launch.settings.worker_num;
        let process = self.launch.settings.mode == Mode::Process && !task_worker;
        let pair = if process {
            match sys::seqpacket_pair() {
                Ok(p) => Some(p),
                Err(e) => {
                    tracing::error!(error = %e, "manager: cannot create a worker pipe; retrying");
                    self.slots[i].restart_at = Some(Instant::now() + Duration::from_millis(500));
                    return;
                }
            }
        } else {
            None
        };
        match sys::fork() {
            Ok(sys::Forked::Child) => {
                let pipe = pair.map(|(master_end, worker_end)| {
                    drop(master_end);
                    worker_end
                });
                // A worker keeps only its own copy of the recycle channel's sending end; close
                // the manager's descriptors (this process never returns to the manager's code,
                // so their OwnedFds are never dropped again).
                let recycle = (!task_worker)
                    .then(|| self.recycle_tx.try_clone())
                    .transpose()
                    .unwrap_or_else(|e| {
                        tracing::error!(error = %e, "worker {i}: no recycle channel; max_request cannot recycle it");
                        None
                    });
                for fd in [&self.control, &self.recycle_rx, &self.recycle_tx] {
                    let _ = nix::unistd::close(fd.as_raw_fd());
                }
                if task_worker {
                    let index = i - self.launch.settings.worker_num;
                    task_worker::run(self.app, self.launch, index)
                }
                worker::run(self.app, self.launch, i, pipe, recycle)
            }
            Ok(sys::Forked::Parent(pid)) => {
                let slot = &mut self.slots[i];
                if slot.pid.is_some() || slot.started.is_some() {
                    self.launch.shared.worker(i).restarts.fetch_add(1, Relaxed);
                }
                slot.pid = Some(pid);
                slot.started = Some(Instant::now());
                slot.restart_at = None;
                self.launch.shared.worker(i).pid.store(pid as u32, Relaxed);
                if let Some((master_end, worker_end)) = pair {
                    drop(worker_end);
                    let mut msg = [0u8; 8];
                    msg[..4].copy_from_slice(&(i as u32).to_le_bytes());
                    msg[4..].copy_from_slice(&(pid as u32).to_le_bytes());
                    if let Err(e) =
                        sys::send_with_fd(self.control.as_raw_fd(), &msg, master_end.as_raw_fd())
                    {
                        tracing::error!(error = %e, "manager: cannot hand a worker pipe to the master");
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, worker = i, "manager: fork failed; retrying");
                self.slots[i].restart_at = Some(Instant::now() + Duration::from_millis(500));
            }
        }
    }

    fn reap(&mut self) {
        loop {
            let st = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(st) => st,
            };
            let (pid, how) = match st {
                WaitStatus::Exited(p, code) => (p.as_raw(), format!("exit code {code}")),
                WaitStatus::Signaled(p, sig, _) => (p.as_raw(), format!("signal {sig}")),
                _ => continue,
            };
            // A current incarnation: nothing reaches it until its replacement starts (Base
            // mode's push and broadcast check this), then its connections go.
            if let Some(i) = self.slots.iter().position(|s| s.pid == Some(pid)) {
                let ws = self.launch.shared.worker(i);
                if ws.pid.load(Relaxed) == pid as u32 {
                    ws.state.store(shared::W_DOWN, Relaxed);
                }
            }
            self.connections_gone(pid);
            if self.retired.remove(&pid) {
                if let Some(m) = crate::ipc::metrics::get() {
                    m.header().reloads.fetch_add(1, Relaxed);
                }
                tracing::debug!(pid, how, "retired worker exited");
                if self.reloading == Some(pid) {
                    self.reloading = None;
                    self.next_reload();
                }
                continue;
            }
            let Some(i) = self.slots.iter().position(|s| s.pid == Some(pid)) else {
                continue;
            };
            let slot = &mut self.slots[i];
            slot.pid = None;
            // The master marks the server stopping before it tells workers to stop (`Stop`
            // on their pipes), which may reach one before our SIGTERM: never restart then.
            if self.stopping.is_some() || self.launch.shared.stopping() {
                continue;
            }
            if let Some(m) = crate::ipc::metrics::get() {
                m.header().crashes.fetch_add(1, Relaxed);
            }
            let lived = slot.started.map(|t| t.elapsed()).unwrap_or_default();
            if lived < FAILED_START_WINDOW {
                slot.fails += 1;
            } else {
                slot.fails = 0;
            }
            if slot.fails > 1 {
                let delay = (Duration::from_millis(100)
                    * 2u32.saturating_pow(slot.fails.min(10) - 1))
                .min(MAX_BACKOFF);
                tracing::error!(
                    worker = i,
                    pid,
                    how,
                    failures = slot.fails,
                    delay_ms = delay.as_millis() as u64,
                    "worker keeps dying at start; restarting after a backoff"
                );
                slot.restart_at = Some(Instant::now() + delay);
            } else {
                tracing::warn!(worker = i, pid, how, "worker died; restarting it");
                self.spawn(i);
            }
        }
    }

    /// Base mode: the connections of worker process `pid`, which exited, died with it: free
    /// their shared-memory slots, so that no other worker sees them as open (`exists`,
    /// `ws_connections`, a `push` to one of them is `Closed`).
    fn connections_gone(&self, pid: i32) {
        if self.launch.settings.mode != Mode::Base {
            return;
        }
        let n = self.launch.shared.free_owned_by(pid as u32);
        if n > 0 {
            tracing::info!(
                pid,
                connections = n,
                "the exited worker's connections closed with it"
            );
        }
    }

    fn next_timeout(&self) -> Option<Duration> {
        let now = Instant::now();
        let mut t: Option<Instant> = self.stopping;
        for s in &self.slots {
            if let Some(r) = s.restart_at {
                t = Some(t.map_or(r, |x| x.min(r)));
            }
        }
        for &(_, r) in &self.retire_deadlines {
            t = Some(t.map_or(r, |x| x.min(r)));
        }
        t.map(|x| x.saturating_duration_since(now))
    }

    fn tick(&mut self) {
        let now = Instant::now();
        if let Some(deadline) = self.stopping {
            if now >= deadline {
                for s in &self.slots {
                    if let Some(pid) = s.pid {
                        tracing::warn!(pid, "worker did not stop within max_wait_time; killing it");
                        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                    }
                }
                for &pid in &self.retired {
                    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                }
                self.stopping = Some(now + Duration::from_secs(3600));
            }
            return;
        }
        let retired = &self.retired;
        self.retire_deadlines.retain(|&(pid, at)| {
            if !retired.contains(&pid) {
                return false;
            }
            if at <= now {
                tracing::warn!(
                    pid,
                    "replaced worker did not finish within max_wait_time; killing it"
                );
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                return false;
            }
            true
        });
        for i in 0..self.slots.len() {
            if self.slots[i].restart_at.is_some_and(|r| r <= now) && self.slots[i].pid.is_none() {
                self.spawn(i);
            }
        }
    }

    fn stop(&mut self) {
        if self.stopping.is_some() {
            return;
        }
        self.stopping =
            Some(Instant::now() + self.launch.settings.max_wait_time + Duration::from_millis(500));
        for s in &mut self.slots {
            s.restart_at = None;
            if let Some(pid) = s.pid {
                let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            }
        }
        for &pid in &self.retired {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
    }

    /// Reads every command waiting on the control socket and the recycle channel.
    fn read_commands(&mut self) {
        while self.control_open {
            match command::recv(self.control.as_fd()) {
                Ok(Received::Message(Ok(c))) => self.command(c),
                Ok(Received::Message(Err(e))) => {
                    tracing::warn!(error = %e, "manager: malformed command from the master")
                }
                Ok(Received::Empty) => break,
                Ok(Received::Closed) => {
                    tracing::debug!("manager: the master closed the control socket");
                    self.control_open = false;
                }
                Err(e) => {
                    tracing::error!(error = %e, "manager: reading the control socket failed");
                    self.control_open = false;
                }
            }
        }
        loop {
            match command::recv(self.recycle_rx.as_fd()) {
                Ok(Received::Message(Ok(c))) => self.command(c),
                Ok(Received::Message(Err(e))) => {
                    tracing::warn!(error = %e, "manager: malformed recycle request")
                }
                // We hold a sending end ourselves: the channel never closes.
                Ok(Received::Empty) | Ok(Received::Closed) => break,
                Err(e) => {
                    tracing::error!(error = %e, "manager: reading the recycle channel failed");
                    break;
                }
            }
        }
    }

    fn command(&mut self, c: Command) {
        let n = self.launch.settings.worker_num;
        match c {
            Command::Reload => {
                tracing::info!("reloading workers one at a time");
                self.reload(0..self.slots.len());
            }
            Command::ReloadTasks if self.slots.len() == n => {
                tracing::info!("reload of the task workers asked, but the server has none");
            }
            Command::ReloadTasks => {
                tracing::info!("reloading task workers one at a time");
                self.reload(n..self.slots.len());
            }
            Command::ReopenLogs => self.reopen_logs(),
            Command::Recycle { slot, pid } => {
                let i = slot as usize;
                if i < n && self.slots[i].pid == Some(pid as i32) {
                    self.recycle(i);
                } else {
                    tracing::debug!(slot, pid, "recycle request of a replaced worker; ignored");
                }
            }
        }
    }

    /// Queues `slots` (those not queued yet) for replacement, one at a time.
    fn reload(&mut self, slots: Range<usize>) {
        if self.stopping.is_some() {
            return;
        }
        for i in slots {
            if !self.reload_queue.contains(&i) {
                self.reload_queue.push_back(i);
            }
        }
        if self.reloading.is_none() {
            self.next_reload();
        }
    }

    /// Replaces worker `i` through the reload path (new incarnation first, then `Stop`).
    fn recycle(&mut self, i: usize) {
        if self.stopping.is_some() {
            return;
        }
        tracing::info!(worker = i, "recycling worker (max_request)");
        self.reload(i..i + 1);
    }

    /// `rswoole reopen-logs` (the master's SIGRTMIN): reopen the log file here and in every
    /// worker.
    fn reopen_logs(&mut self) {
        daemon::reopen_log();
        let pids = self.slots.iter().filter_map(|s| s.pid);
        for pid in pids.chain(self.retired.iter().copied()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGHUP);
        }
    }

    fn next_reload(&mut self) {
        while let Some(i) = self.reload_queue.pop_front() {
            let Some(old) = self.slots[i].pid else {
                continue;
            };
            self.retired.insert(old);
            self.retire_deadlines.push((
                old,
                Instant::now() + self.launch.settings.max_wait_time + Duration::from_secs(2),
            ));
            self.reloading = Some(old);
            self.slots[i].pid = None;
            self.slots[i].fails = 0;
            // Process mode: the master sends the old worker `Stop` when the new pipe arrives.
            // Base mode: the old worker must stop accepting; SIGTERM does that.
            self.spawn(i);
            // Task workers (slots from worker_num on) have no master pipe either.
            if self.launch.settings.mode == Mode::Base || i >= self.launch.settings.worker_num {
                let _ = kill(Pid::from_raw(old), Signal::SIGTERM);
            }
            return;
        }
        tracing::info!("reload finished");
    }
}
