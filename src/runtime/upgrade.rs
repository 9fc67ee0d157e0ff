//! Upgrading to a new binary without closing a listener: the old master starts the new
//! binary as a new master and hands it its listening sockets; the new one starts its manager
//! and workers and says it is ready; only then the old one stops accepting and drains.
//!
//! The protocol, over a `SOCK_SEQPACKET` socketpair whose one end the new master inherits
//! across `exec` (its number is in `RSWOOLE_UPGRADE_FD`):
//! 1. old → new: one message, a JSON [`Hello`] (the listeners' names `listener<i>`, the old
//!    master's pid and build) with every listener's descriptor (SCM_RIGHTS). The new master
//!    matches them to its listeners like systemd's ([`super::inherit`]) instead of binding.
//! 2. new → old: a JSON [`Reply`]: `ready` once its workers serve (every worker slot
//!    idle or busy), or `error` with the reason its start failed (a bad setting, a listener that
//!    does not match, ...). End-of-file without a reply means the new binary exited or crashed
//!    (its exit status is reported); no reply within [`READY_TIMEOUT`] kills it.
//!
//! The new master is a child of the old one (so under systemd it is in the service's
//! cgroup; the old master then announces `MAINPID=<new>`), writes the pid file over the old
//! one's, and serves the control socket in its place. It skips the "pid file names a running
//! master" check: that master is the one it replaces.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::inherit::Inherited;
use crate::base::{Error, Result};
use crate::sys;

/// The variable that tells a new master the number of its upgrade socket.
pub(crate) const ENV_FD: &str = "RSWOOLE_UPGRADE_FD";

/// How long the old master waits for the new one to be ready.
pub(crate) const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The new master's end of the upgrade socket, until it has replied.
static SOCKET: Mutex<Option<OwnedFd>> = Mutex::new(None);
/// The master this one replaces (set in a new master).
static FROM: Mutex<Option<Build>> = Mutex::new(None);
/// The master this one replaces will move its connections here after `Ready`.
static MOVES: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Which binary a master runs: shown by `status` for the master and the one it replaced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Build {
    pub(crate) pid: u32,
    /// The rswoole library's version.
    pub(crate) version: String,
    /// The executable's path at start.
    pub(crate) exe: String,
    /// The executable's size and modification time at start (`<bytes>-<unix secs>`):
    /// two builds of one program differ here.
    pub(crate) build: String,
}

/// What the master started as: its executable and arguments (saved before the process title
/// overwrites `argv`), for the upgrade to run again.
#[derive(Debug, Clone)]
pub(crate) struct Origin {
    pub(crate) exe: PathBuf,
    pub(crate) args: Vec<std::ffi::OsString>,
}

impl Origin {
    pub(crate) fn now() -> Origin {
        Origin {
            exe: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/proc/self/exe")),
            args: std::env::args_os().skip(1).collect(),
        }
    }

    pub(crate) fn build(&self) -> Build {
        let build = std::fs::metadata(&self.exe)
            .map(|m| {
                let t = m
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_secs());
                format!("{}-{t}", m.len())
            })
            .unwrap_or_else(|_| "unknown".into());
        Build {
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").into(),
            exe: self.exe.display().to_string(),
            build,
        }
    }
}

/// The old master's first message.
#[derive(Debug, Serialize, Deserialize)]
struct Hello {
    from: Build,
    /// One name per descriptor passed, in order.
    names: Vec<String>,
    /// After `Ready`, the old master moves its live connections over the socket
    /// ([`super::handover`]): the new one accepts only once they are in.
    #[serde(default)]
    moves: bool,
}

/// The new master's answer.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Reply {
    Ready(Build),
    Error(String),
}

fn proto(reason: impl Into<String>) -> Error {
    Error::InvalidSetting {
        name: "upgrade",
        reason: reason.into(),
    }
}

/// In a master started by an upgrade (`RSWOOLE_UPGRADE_FD` set): receives the old master's
/// listening sockets. `Ok(None)`: not an upgrade. Single-threaded, before anything binds.
pub(crate) fn adopt() -> Result<Option<Vec<Inherited>>> {
    let Some(v) = std::env::var_os(ENV_FD) else {
        return Ok(None);
    };
    std::env::remove_var(ENV_FD);
    let fd: RawFd = v
        .to_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| proto(format!("{ENV_FD}={v:?} is not a descriptor number")))?;
    let sock = sys::adopt_inherited(fd, 1)
        .map_err(|e| proto(format!("{ENV_FD}={fd}: {e}")))?
        .pop()
        .ok_or_else(|| proto("no upgrade socket"))?;
    let mut buf = vec![0u8; 64 * 1024];
    let deadline = Instant::now() + Duration::from_secs(10);
    let (n, fds) = loop {
        match sys::recv_fds(sock.as_raw_fd(), &mut buf) {
            Ok(Some(x)) => break x,
            Ok(None) => return Err(proto("the old master closed the upgrade socket")),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if Instant::now() > deadline {
                    return Err(proto("the old master sent no listeners"));
                }
                let _ = sys::wait_fd(sock.as_raw_fd(), false);
            }
            Err(e) => return Err(proto(format!("receiving the listeners: {e}"))),
        }
    };
    // From here on, failures are reported to the old master over the socket.
    *SOCKET.lock().unwrap_or_else(|e| e.into_inner()) = Some(sock);
    let hello: Hello = serde_json::from_slice(&buf[..n])
        .map_err(|e| proto(format!("malformed message from the old master: {e}")))?;
    if hello.names.len() != fds.len() {
        return Err(proto(format!(
            "{} listener names for {} descriptors",
            hello.names.len(),
            fds.len()
        )));
    }
    tracing::info!(
        from = hello.from.pid,
        listeners = fds.len(),
        "upgrade: took over the listeners of the old master"
    );
    *FROM.lock().unwrap_or_else(|e| e.into_inner()) = Some(hello.from);
    MOVES.store(hello.moves, std::sync::atomic::Ordering::Relaxed);
    fds.into_iter()
        .zip(hello.names)
        .map(|(fd, name)| Inherited::new(fd, Some(name), "upgrade"))
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

/// True in a master started by an upgrade whose old master will move its connections
/// here (its accept loops wait for them).
pub(crate) fn moves_expected() -> bool {
    pending() && MOVES.load(std::sync::atomic::Ordering::Relaxed)
}

/// True in a master started by an upgrade that has not replied yet.
pub(crate) fn pending() -> bool {
    SOCKET.lock().unwrap_or_else(|e| e.into_inner()).is_some()
}

/// The master this one replaced, if it was started by an upgrade.
pub(crate) fn replaced() -> Option<Build> {
    FROM.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

fn reply(r: &Reply) -> Option<OwnedFd> {
    let sock = SOCKET.lock().unwrap_or_else(|e| e.into_inner()).take()?;
    let msg = serde_json::to_vec(r).unwrap_or_default();
    if let Err(e) = sys::send_fds(sock.as_raw_fd(), &msg, &[]) {
        tracing::warn!(error = %e, "upgrade: cannot answer the old master");
        return None;
    }
    Some(sock)
}

/// The new master is serving: tells the old one (which then stops accepting). Returns the
/// upgrade socket when the old master moves its connections over it next.
pub(crate) fn report_ready(me: Build) -> Option<OwnedFd> {
    let moves = MOVES.load(std::sync::atomic::Ordering::Relaxed);
    reply(&Reply::Ready(me)).filter(|_| moves)
}

/// The new master failed to start: tells the old one why.
pub(crate) fn report_failure(e: &Error) {
    let _ = reply(&Reply::Error(e.to_string()));
}

/// Drops this process's copy of the upgrade socket (the manager and workers, after fork), so
/// that the old master sees end-of-file if the new master dies.
pub(crate) fn forget() {
    drop(SOCKET.lock().unwrap_or_else(|e| e.into_inner()).take());
}

/// What a finished upgrade tells the operator.
#[derive(Debug)]
pub(crate) struct Done {
    pub(crate) new: Build,
    /// The upgrade socket, when the connections move over it next.
    pub(crate) sock: Option<OwnedFd>,
}

/// In the old master: starts `exe` (with this master's arguments), hands it `listeners`
/// (descriptor + name) and waits until it is ready or has failed. On failure the new process
/// is gone (killed if it hung) and the error says why. `moves`: this master will move its
/// live connections after `Ready` (Process mode).
pub(crate) async fn run(
    origin: &Origin,
    exe: PathBuf,
    listeners: Vec<(OwnedFd, String)>,
    moves: bool,
) -> std::result::Result<Done, String> {
    let (ours, theirs) =
        sys::seqpacket_pair().map_err(|e| format!("creating the upgrade socket: {e}"))?;
    sys::keep_on_exec(&theirs).map_err(|e| format!("preparing the upgrade socket: {e}"))?;
    let mut child = std::process::Command::new(&exe)
        .args(&origin.args)
        .env(ENV_FD, theirs.as_raw_fd().to_string())
        // systemd's WATCHDOG_PID names this master; the new one pings for itself.
        .env_remove("WATCHDOG_PID")
        .stdin(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
    drop(theirs);
    let pid = child.id();
    tracing::info!(pid, exe = %exe.display(), "upgrade: started the new binary");
    let hello = Hello {
        from: origin.build(),
        names: listeners.iter().map(|(_, n)| n.clone()).collect(),
        moves,
    };
    let fds: Vec<RawFd> = listeners.iter().map(|(f, _)| f.as_raw_fd()).collect();
    let msg = serde_json::to_vec(&hello).map_err(|e| e.to_string())?;
    let sent = sys::send_fds(ours.as_raw_fd(), &msg, &fds);
    drop(listeners);
    let outcome = match (sent, sys::async_fd(ours)) {
        (Ok(()), Ok(ours)) => wait_reply(&ours, &mut child).await.map(|b| (b, ours)),
        (Ok(()), Err(e)) => Err(format!("watching the upgrade socket: {e}")),
        (Err(e), _)
            if matches!(
                e.kind(),
                std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
            ) =>
        {
            Err(String::new())
        }
        (Err(e), _) => Err(format!("handing over the listeners: {e}")),
    };
    match outcome {
        Ok((new, ours)) => Ok(Done {
            new,
            sock: moves.then(|| ours.into_inner()),
        }),
        Err(why) => {
            // Whatever state it is in, it must not stay half-started.
            let _ = child.kill();
            let status = wait_exit(&mut child, Duration::from_secs(5)).await;
            Err(match status {
                Some(st) if why.is_empty() => {
                    format!("the new binary {} exited at start ({st})", exe.display())
                }
                _ if why.is_empty() => {
                    format!("the new binary {} closed the upgrade socket", exe.display())
                }
                _ => why,
            })
        }
    }
}

async fn wait_exit(
    child: &mut std::process::Child,
    limit: Duration,
) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            return Some(st);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits for the new master's [`Reply`]. `Err("")`: end-of-file (it exited).
async fn wait_reply(
    sock: &tokio::io::unix::AsyncFd<OwnedFd>,
    child: &mut std::process::Child,
) -> std::result::Result<Build, String> {
    let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let mut guard = match tokio::time::timeout_at(deadline, sock.readable()).await {
            Ok(Ok(g)) => g,
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => {
                return Err(format!(
                    "the new master (pid {}) was not ready within {READY_TIMEOUT:?}; it was killed",
                    child.id()
                ))
            }
        };
        match guard.try_io(|fd| sys::recv_fds(fd.get_ref().as_raw_fd(), &mut buf)) {
            Ok(Ok(Some((n, _)))) => {
                return match serde_json::from_slice::<Reply>(&buf[..n]) {
                    Ok(Reply::Ready(b)) => Ok(b),
                    Ok(Reply::Error(e)) => Err(format!("the new master failed to start: {e}")),
                    Err(e) => Err(format!("malformed reply from the new master: {e}")),
                };
            }
            // A peer that exits with our message unread makes the kernel report ECONNRESET.
            Ok(Ok(None)) => return Err(String::new()),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return Err(String::new())
            }
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Ok(Err(e)) => return Err(format!("reading the new master's reply: {e}")),
            Err(_) => continue,
        }
    }
}

/// An `upgrade` asked for on the control socket: the binary (`None`: the master's own
/// executable path) and where the JSON answer goes.
#[derive(Debug)]
pub(crate) struct Request {
    pub(crate) exe: Option<PathBuf>,
    pub(crate) reply: tokio::sync::oneshot::Sender<String>,
}
