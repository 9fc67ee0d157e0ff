//! Names that the server and the tools that drive it from outside agree on: the master's
//! process title and the control socket beside the pid file.

use std::path::{Path, PathBuf};

use super::error::ControlError;

/// The master's process title (`ps`, `/proc/PID/cmdline`).
pub(crate) const MASTER_TITLE: &str = "rswoole: master";

/// The control socket of the server whose pid file is `pid_file`: `<pid_file>.sock` (one
/// request line, one JSON answer; see `control::request`).
pub(crate) fn control_socket(pid_file: &Path) -> PathBuf {
    let mut s = pid_file.as_os_str().to_owned();
    s.push(".sock");
    PathBuf::from(s)
}

/// The pid of the live rswoole master that the pid file `path` names.
///
/// # Errors
/// [`ControlError::Missing`], [`ControlError::Malformed`], [`ControlError::Stale`],
/// [`ControlError::NotRswoole`], or [`ControlError::Io`] if it cannot be read.
pub(crate) fn find_master(path: &Path) -> Result<i32, ControlError> {
    let path = path.to_path_buf();
    let content = match std::fs::read_to_string(&path) {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ControlError::Missing(path))
        }
        Err(source) => {
            return Err(ControlError::Io {
                context: format!("reading {}", path.display()),
                source,
            })
        }
    };
    let pid = match content.trim().parse::<i32>() {
        Ok(p) if p > 0 => p,
        _ => {
            return Err(ControlError::Malformed {
                path,
                content: content.trim().to_string(),
            })
        }
    };
    if !proc_alive(pid) {
        return Err(ControlError::Stale { path, pid });
    }
    let cmdline = cmdline(pid);
    if !cmdline.starts_with(MASTER_TITLE) {
        return Err(ControlError::NotRswoole { path, pid, cmdline });
    }
    Ok(pid)
}

pub(crate) fn proc_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .rfind(')')
            .is_some_and(|i| s[i..].starts_with(") Z") || s[i..].starts_with(") X")),
        Err(_) => false,
    }
}

pub(crate) fn cmdline(pid: i32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            String::from_utf8_lossy(&b)
                .replace('\0', " ")
                .trim()
                .to_string()
        })
        .unwrap_or_default()
}

/// One thing an operator can ask of a running server.
///
/// # Examples
///
/// ```
/// use rswoole::control::VERBS;
/// let reload = VERBS.iter().find(|v| v.name == "reload").unwrap();
/// assert_eq!(reload.signal, Some("SIGUSR1")); // same as `kill -USR1 $(cat F)`
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Verb {
    /// The CLI verb (`rswoole <name> --pid-file F`).
    pub name: &'static str,
    /// The signal sent to the master, by name (`None`: no signal, e.g. `status`).
    pub signal: Option<&'static str>,
    /// What it does.
    pub about: &'static str,
}

/// Every verb, with the signal it sends to the master. Sending the signal by hand (`kill -USR1
/// $(cat F)`) does the same.
///
/// # Examples
///
/// ```
/// let names: Vec<&str> = rswoole::control::VERBS.iter().map(|v| v.name).collect();
/// assert_eq!(
///     names,
///     ["status", "reload", "reload-task", "stop", "reopen-logs", "upgrade", "reload-certs"]
/// );
/// ```
pub const VERBS: &[Verb] = &[
    Verb {
        name: "status",
        signal: None,
        about: "Print pids, uptime, mode, workers, connections and listeners",
    },
    Verb {
        name: "reload",
        signal: Some("SIGUSR1"),
        about: "Replace the workers one at a time, losing no connection",
    },
    Verb {
        name: "reload-task",
        signal: Some("SIGUSR2"),
        about: "Replace the task workers one at a time (reload --task)",
    },
    Verb {
        name: "stop",
        signal: Some("SIGTERM"),
        about: "Graceful shutdown; waits until the master is gone and its ports are free",
    },
    Verb {
        name: "reopen-logs",
        signal: Some("SIGRTMIN"),
        about: "Reopen log_file in every process (logrotate postrotate)",
    },
    Verb {
        name: "upgrade",
        signal: Some("SIGWINCH"),
        about: "Start the binary now at the master's path as a new master with the same listeners; the old one drains",
    },
    Verb {
        name: "reload-certs",
        signal: Some("SIGRTMIN+1"),
        about: "Re-read and check the TLS certificates; new handshakes use them, open connections keep theirs",
    },
];
