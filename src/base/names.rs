//! Names that the server and the tools that drive it from outside agree on: the master's
//! process title and the status socket beside the pid file.

use std::path::{Path, PathBuf};

use super::error::ControlError;

/// The master's process title (`ps`, `/proc/PID/cmdline`).
pub(crate) const MASTER_TITLE: &str = "rswoole: master";

/// The status socket of the server whose pid file is `pid_file`: `<pid_file>.sock`.
pub(crate) fn status_socket(pid_file: &Path) -> PathBuf {
    let mut s = pid_file.as_os_str().to_owned();
    s.push(".sock");
    PathBuf::from(s)
}

/// The pid of the live rswoole master that the pid file `path` names.
///
/// # Errors
/// [`ControlError::Missing`], [`ControlError::Malformed`], [`ControlError::Stale`],
/// [`ControlError::NotRswoole`], or [`ControlError::Io`] if it cannot be read.
/// The master's command socket beside the pid file (`F.ctl`): one request line
/// (`reload-certs`), one JSON answer `{"ok": bool, "message": "..."}`.
pub(crate) fn command_socket(pid_file: &Path) -> PathBuf {
    let mut s = pid_file.as_os_str().to_owned();
    s.push(".ctl");
    PathBuf::from(s)
}

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
