//! Running in production, the master's side: daemon mode, the pid file, the log file (and
//! reopening it on `SIGRTMIN`), the control socket and the "listening" report to the starter.
//!
//! Order of events in [`crate::master`]'s `start`:
//! 1. [`prepare`] (single-threaded, before binding): makes the paths absolute, refuses a pid
//!    file that names a running master, opens the log file, detaches when `daemonize` is set
//!    (the starting process waits here for the daemon's report and exits), and points
//!    stderr (and, when daemonized, stdout) at the log file.
//! 2. [`running`] (in the master's runtime, once every listener is served): writes the pid
//!    file, serves the control socket `<pid_file>.sock`, watches `SIGRTMIN`, then tells the
//!    starter "listening" so that it exits 0.
//! 3. [`report_failure`] if anything fails before that: the starter prints the error and exits 1.
//! 4. [`stopped`] at clean shutdown: removes the pid file and the control socket.
//!
//! Reopening the log: the master reopens its own and sends the manager
//! [`Command::ReopenLogs`] on the control socket; the manager reopens its own and sends
//! `SIGHUP` to each worker (inside rswoole, `SIGHUP` means "reopen the log"; workers ignore it
//! until they watch it; several merged into one still reopen it).

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, OnceLock};

use tokio::io::unix::AsyncFd;
use tokio::task::JoinHandle;

use crate::base::names::control_socket;
use crate::base::{Error, MasterInfo, Mode, Result, Settings};
use crate::ipc::command::{self, Command};
use crate::ipc::metrics::expose::{proc_usage, state_name, Snapshot};
use crate::ipc::shared::{self, Shared};
use crate::sys;

use super::upgrade;

/// Write end of the pipe to the starting process (daemon mode, until the report is sent).
static NOTIFY: Mutex<Option<OwnedFd>> = Mutex::new(None);
/// Where logs go, for [`reopen_log`].
static LOG: OnceLock<LogTarget> = OnceLock::new();

#[derive(Debug)]
struct LogTarget {
    path: PathBuf,
    stdout: bool,
}

fn absolute(p: &mut PathBuf) {
    if p.is_relative() {
        if let Ok(cwd) = std::env::current_dir() {
            *p = cwd.join(&*p);
        }
    }
}

fn open_log(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

/// Step 1 (see the module doc). In daemon mode the calling process never returns from here:
/// it waits for the daemon's report and exits 0 (listening) or 1 (the error is printed).
pub(crate) fn prepare(s: &mut Settings) -> Result<()> {
    for p in [&mut s.pid_file, &mut s.log_file].into_iter().flatten() {
        absolute(p);
    }
    if let (Some(pf), false) = (&s.pid_file, upgrade::pending()) {
        if let Ok(pid) = crate::base::names::find_master(pf) {
            return Err(Error::InvalidSetting {
                name: "pid_file",
                reason: format!(
                    "{} names a running rswoole master (pid {pid}); stop it first",
                    pf.display()
                ),
            });
        }
    }
    let log = match &s.log_file {
        Some(p) => Some(open_log(p).map_err(Error::io("opening the log file"))?),
        None => None,
    };
    if s.daemonize {
        match sys::detach().map_err(Error::io("detaching (daemonize)"))? {
            sys::Detached::Starter(r) => starter_wait(r),
            sys::Detached::Daemon(w) => *NOTIFY.lock().unwrap_or_else(|e| e.into_inner()) = Some(w),
        }
    }
    match (&log, s.daemonize) {
        (Some(f), daemon) => {
            sys::redirect_std(f, daemon).map_err(Error::io("redirecting output to the log"))?
        }
        (None, true) => {
            if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
                let _ = sys::redirect_std(&null, true);
            }
        }
        (None, false) => {}
    }
    if let Some(path) = &s.log_file {
        let _ = LOG.set(LogTarget {
            path: path.clone(),
            stdout: s.daemonize,
        });
    }
    Ok(())
}

/// The starting process of daemon mode: waits for "O <pid>" (listening) or "E <error>".
fn starter_wait(r: OwnedFd) -> ! {
    let mut f = std::fs::File::from(r);
    let mut msg = String::new();
    let _ = f.read_to_string(&mut msg);
    if msg.starts_with('O') {
        std::process::exit(0);
    }
    match msg.strip_prefix("E ") {
        Some(e) => eprintln!("rswoole: the server failed to start: {e}"),
        None => {
            eprintln!("rswoole: the server exited while starting (no report); see its log file")
        }
    }
    std::process::exit(1)
}

fn notify(msg: &str) {
    if let Some(fd) = NOTIFY.lock().unwrap_or_else(|e| e.into_inner()).take() {
        let mut f = std::fs::File::from(fd);
        let _ = f.write_all(msg.as_bytes());
    }
}

/// Step 3: tells the starting process (daemon mode) why the server did not start.
pub(crate) fn report_failure(e: &Error) {
    notify(&format!("E {e}"));
}

/// Closes this process's copy of the report pipe (for the manager and workers, right after
/// their fork), so the starter sees end-of-file if the master dies without reporting.
pub(crate) fn forget_notifier() {
    drop(NOTIFY.lock().unwrap_or_else(|e| e.into_inner()).take());
    upgrade::forget();
}

/// Bumped by every [`reopen_log`]: other log writers of the process (the access log's
/// thread) reopen their files when it changes.
static LOG_GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// See [`LOG_GENERATION`].
pub(crate) fn log_generation() -> u64 {
    LOG_GENERATION.load(Relaxed)
}

/// Reopens the log file (after logrotate moved it) and points stderr (and stdout in daemon
/// mode) at the new one; other log files of the process follow ([`log_generation`]).
pub(crate) fn reopen_log() {
    LOG_GENERATION.fetch_add(1, Relaxed);
    let Some(t) = LOG.get() else { return };
    match open_log(&t.path) {
        Ok(f) => {
            if let Err(e) = sys::redirect_std(&f, t.stdout) {
                tracing::error!(error = %e, "cannot redirect output to the reopened log file");
            }
        }
        Err(e) => {
            tracing::error!(path = %t.path.display(), error = %e, "cannot reopen the log file")
        }
    }
}

/// Step 2 (see the module doc). Returns the tasks to abort at shutdown.
/// `control` is the master's end of the manager↔master socketpair (commands to the manager);
/// `upgrades` takes the `upgrade` requests that arrive on the control socket, `cert_reload`
/// does its `reload-certs`.
pub(crate) fn running(
    settings: &Arc<Settings>,
    shared: &Shared,
    info: &MasterInfo,
    control: Arc<AsyncFd<OwnedFd>>,
    cert_reload: super::master::CertReload,
    upgrades: tokio::sync::mpsc::Sender<upgrade::Request>,
    build: &upgrade::Build,
) -> Vec<JoinHandle<()>> {
    let mut tasks = Vec::new();
    let pid = std::process::id();
    if let Some(pf) = &settings.pid_file {
        let tmp = {
            let mut s = pf.as_os_str().to_owned();
            s.push(".tmp");
            PathBuf::from(s)
        };
        let res = std::fs::write(&tmp, format!("{pid}\n")).and_then(|_| std::fs::rename(&tmp, pf));
        if let Err(e) = res {
            tracing::error!(path = %pf.display(), error = %e, "cannot write the pid file");
        }
        let sock = control_socket(pf);
        let _ = std::fs::remove_file(&sock);
        match tokio::net::UnixListener::bind(&sock) {
            Ok(l) => {
                let ctl = Control {
                    settings: settings.clone(),
                    shared: shared.clone(),
                    info: info.clone(),
                    build: build.clone(),
                    upgrades,
                    cert_reload,
                };
                tasks.push(tokio::spawn(serve_control(l, Arc::new(ctl))));
            }
            Err(e) => {
                tracing::error!(path = %sock.display(), error = %e, "cannot serve the control socket")
            }
        }
    }
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::from_raw(sys::sigrtmin())) {
        Ok(mut sig) => tasks.push(tokio::spawn(async move {
            while sig.recv().await.is_some() {
                reopen_log();
                tracing::info!("log file reopened (SIGRTMIN)");
                if let Err(e) = command::send_async(&control, Command::ReopenLogs).await {
                    tracing::error!(error = %e, "cannot ask the manager to reopen the logs");
                }
            }
        })),
        Err(e) => tracing::error!(error = %e, "cannot watch SIGRTMIN (log reopening)"),
    }
    notify(&format!("O {pid}"));
    tasks
}

/// What the control socket's requests reach.
struct Control {
    settings: Arc<Settings>,
    shared: Shared,
    info: MasterInfo,
    build: upgrade::Build,
    upgrades: tokio::sync::mpsc::Sender<upgrade::Request>,
    cert_reload: super::master::CertReload,
}

/// The control socket `<pid_file>.sock`: one request line per connection (`status`,
/// `upgrade [PATH]`, `reload-certs`, or a verb that has a signal: `reload`, `reload-task`,
/// `reopen-logs`, `stop`), one JSON object back. A client that writes nothing (and does not
/// close its side) gets the status after 2 s.
async fn serve_control(l: tokio::net::UnixListener, ctl: Arc<Control>) {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
    loop {
        let Ok((s, _)) = l.accept().await else {
            continue;
        };
        let ctl = ctl.clone();
        tokio::spawn(async move {
            let (r, mut w) = s.into_split();
            let mut line = String::new();
            let mut r = tokio::io::BufReader::new(r.take(4096));
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), r.read_line(&mut line))
                .await;
            let mut body = answer(&ctl, &line).await;
            body.push('\n');
            let _ = tokio::time::timeout(
                std::time::Duration::from_secs(5),
                w.write_all(body.as_bytes()),
            )
            .await;
        });
    }
}

/// The answer to one request line of the control socket.
async fn answer(ctl: &Control, line: &str) -> String {
    let done = |res: std::result::Result<String, String>| match res {
        Ok(m) => serde_json::json!({ "ok": true, "message": m }).to_string(),
        Err(m) => serde_json::json!({ "ok": false, "error": m }).to_string(),
    };
    let mut words = line.split_whitespace();
    match words.next() {
        None | Some("status") => status_json(&ctl.settings, &ctl.shared, &ctl.info, &ctl.build),
        Some("upgrade") => {
            let exe = words.next().map(PathBuf::from);
            let (tx, rx) = tokio::sync::oneshot::channel();
            if ctl
                .upgrades
                .send(upgrade::Request { exe, reply: tx })
                .await
                .is_err()
            {
                done(Err("the master is stopping".into()))
            } else {
                rx.await
                    .unwrap_or_else(|_| done(Err("the master dropped the request".into())))
            }
        }
        Some("reload-certs") => {
            let reload = ctl.cert_reload.clone();
            done(
                tokio::task::spawn_blocking(move || reload())
                    .await
                    .unwrap_or_else(|e| Err(format!("the reload failed: {e}"))),
            )
        }
        Some(verb) => match crate::base::names::VERBS
            .iter()
            .find(|v| v.name == verb)
            .and_then(|v| v.signal)
            .and_then(|name| Some((name, sys::signal_by_name(name)?)))
        {
            Some((name, sig)) => done(
                sys::kill_raw(std::process::id() as i32, sig)
                    .map(|_| format!("{verb}: the master got {name}"))
                    .map_err(|e| format!("cannot raise {name}: {e}")),
            ),
            None => done(Err(format!("unknown request {verb:?}"))),
        },
    }
}

/// Step 4: removes the pid file (if it is still ours) and the control socket.
pub(crate) fn stopped(settings: &Settings) {
    let Some(pf) = &settings.pid_file else { return };
    let ours = std::fs::read_to_string(pf)
        .map(|s| s.trim() == std::process::id().to_string())
        .unwrap_or(false);
    if ours {
        let _ = std::fs::remove_file(pf);
        let _ = std::fs::remove_file(control_socket(pf));
    }
}

/// What `rswoole status` shows, as one JSON object.
pub(crate) fn status_json(
    settings: &Settings,
    shared: &Shared,
    info: &MasterInfo,
    build: &upgrade::Build,
) -> String {
    let h = shared.header();
    let now = shared::now_ms();
    let usage = |pid: u32| match proc_usage(pid) {
        Some(u) => serde_json::json!({"rss": u.rss, "cpu": u.cpu}),
        None => serde_json::Value::Null,
    };
    let worker = |i: usize| {
        let w = shared.worker(i);
        let pid = w.pid.load(Relaxed);
        let state = w.state.load(Relaxed);
        serde_json::json!({
            "id": i,
            "pid": pid,
            "state": state_name(state),
            "requests": w.requests.load(Relaxed),
            "restarts": w.restarts.load(Relaxed),
            "usage": if state == shared::W_DOWN { serde_json::Value::Null } else { usage(pid) },
        })
    };
    let n = settings.worker_num;
    let v = serde_json::json!({
        "master_pid": info.master_pid,
        "manager_pid": info.manager_pid,
        "uptime_ms": now.saturating_sub(h.started_ms.load(Relaxed)),
        "mode": match settings.mode { Mode::Process => "process", Mode::Base => "base" },
        "phase": match h.phase.load(Relaxed) { 0 => "starting", 1 => "running", shared::PHASE_DRAINING => "draining", _ => "shutting_down" },
        "connections": h.live.load(Relaxed),
        "accepted": h.accepted.load(Relaxed),
        "closed": h.closed.load(Relaxed),
        "refused": h.refused.load(Relaxed),
        "output_overflows": h.overflowed.load(Relaxed),
        "listeners": info.addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        "workers": (0..n).map(worker).collect::<Vec<_>>(),
        "task_workers": (n..n + settings.task_worker_num).map(worker).collect::<Vec<_>>(),
        "max_request": settings.max_request,
        "build": build,
        "replaced": upgrade::replaced(),
        "master_usage": usage(info.master_pid),
        "manager_usage": usage(info.manager_pid),
        // With the admin listener on: the same snapshot its dashboard gets.
        "metrics": crate::ipc::metrics::get().map(|m| {
            Snapshot::take(shared, m, n, settings.task_worker_num, &|_| 0).json()
        }),
    });
    v.to_string()
}
