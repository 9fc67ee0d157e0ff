//! Controlling a running server from outside: what `rswoole status|reload|stop|reopen-logs`
//! use.
//!
//! A server started with a `pid_file` `F` writes its master's pid to `F` and answers status
//! requests on the unix socket `F.sock` (one JSON object per connection). [`VERBS`] is the one
//! table of verbs and signals: the CLI's help, its signal numbers and the README's table all
//! come from it.
//!
//! ```no_run
//! use rswoole::control::Master;
//! let m = Master::open("/run/app.pid")?;
//! println!("{}", m.status_json(std::time::Duration::from_secs(2))?);
//! m.send("reload")?;
//! # Ok::<(), rswoole::control::ControlError>(())
//! ```

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use crate::base::error::ControlError;

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
        signal: None,
        about: "Re-read and check the TLS certificates; new handshakes use them, open connections keep theirs",
    },
];

/// The signal number for a signal name of [`VERBS`].
fn signal_number(name: &str) -> Option<i32> {
    Some(match name {
        "SIGTERM" => libc::SIGTERM,
        "SIGINT" => libc::SIGINT,
        "SIGUSR1" => libc::SIGUSR1,
        "SIGUSR2" => libc::SIGUSR2,
        "SIGWINCH" => libc::SIGWINCH,
        "SIGRTMIN" => crate::sys::sigrtmin(),
        _ => return None,
    })
}

/// A running master, found through its pid file.
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use rswoole::control::Master;
///
/// // A server started with `Settings::default().pid_file(Some("/run/app.pid".into()))`.
/// let master = Master::open("/run/app.pid")?;
/// println!("master {} alive: {}", master.pid(), master.is_alive());
/// master.send("reload")?;
/// master.stop(Duration::from_secs(10))?;
/// # Ok::<(), rswoole::control::ControlError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Master {
    pid: i32,
    pid_file: PathBuf,
}

impl Master {
    /// Reads the pid file and checks that it names a live rswoole master.
    ///
    /// # Errors
    /// [`ControlError::Missing`], [`ControlError::Malformed`], [`ControlError::Stale`],
    /// [`ControlError::NotRswoole`], or [`ControlError::Io`] if it cannot be read.
    ///
    /// # Examples
    ///
    /// A pid file naming a process that is not an rswoole master is refused, so nothing is
    /// signalled by mistake:
    ///
    /// ```
    /// use rswoole::control::{ControlError, Master};
    /// let dir = tempfile::tempdir().unwrap();
    /// let pid_file = dir.path().join("app.pid");
    /// std::fs::write(&pid_file, std::process::id().to_string()).unwrap(); // this test, not a master
    /// assert!(matches!(Master::open(&pid_file), Err(ControlError::NotRswoole { .. })));
    /// std::fs::write(&pid_file, "garbage").unwrap();
    /// assert!(matches!(Master::open(&pid_file), Err(ControlError::Malformed { .. })));
    /// ```
    pub fn open(pid_file: impl AsRef<Path>) -> Result<Master, ControlError> {
        let path = pid_file.as_ref().to_path_buf();
        let pid = crate::base::names::find_master(&path)?;
        Ok(Master {
            pid,
            pid_file: path,
        })
    }

    /// The master's pid.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use rswoole::control::Master;
    ///
    /// // A server started with `Settings::default().pid_file(Some("/run/app.pid".into()))`.
    /// let master = Master::open("/run/app.pid")?;
    /// println!("kill -USR1 {}", master.pid());
    /// # Ok::<(), rswoole::control::ControlError>(())
    /// ```
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// True while the master process exists.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use rswoole::control::Master;
    ///
    /// // A server started with `Settings::default().pid_file(Some("/run/app.pid".into()))`.
    /// let master = Master::open("/run/app.pid")?;
    /// master.send("stop")?;
    /// while master.is_alive() {
    ///     std::thread::sleep(Duration::from_millis(100));
    /// }
    /// # Ok::<(), rswoole::control::ControlError>(())
    /// ```
    pub fn is_alive(&self) -> bool {
        crate::base::names::proc_alive(self.pid)
    }

    /// The server's status: one JSON object (see `rswoole status --json`).
    ///
    /// # Errors
    /// The status socket (`<pid_file>.sock`) cannot be reached or does not answer in time.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use rswoole::control::Master;
    ///
    /// // A server started with `Settings::default().pid_file(Some("/run/app.pid".into()))`.
    /// let master = Master::open("/run/app.pid")?;
    /// let status: serde_json::Value =
    ///     serde_json::from_str(&master.status_json(Duration::from_secs(2))?).expect("JSON");
    /// println!("{status:#}");
    /// # Ok::<(), rswoole::control::ControlError>(())
    /// ```
    pub fn status_json(&self, timeout: Duration) -> Result<String, ControlError> {
        let sock = crate::base::names::status_socket(&self.pid_file);
        let io = |context: String| move |source| ControlError::Io { context, source };
        let mut s = std::os::unix::net::UnixStream::connect(&sock).map_err(io(format!(
            "connecting to the status socket {}",
            sock.display()
        )))?;
        s.set_read_timeout(Some(timeout))
            .map_err(io("setting a timeout".into()))?;
        s.write_all(b"status\n")
            .and_then(|_| s.shutdown(std::net::Shutdown::Write))
            .map_err(io("asking for the status".into()))?;
        let mut out = String::new();
        s.read_to_string(&mut out)
            .map_err(io("reading the status".into()))?;
        Ok(out)
    }

    /// Upgrades the server to a new binary: the master starts `binary` (`None`: the
    /// executable at the master's own path, e.g. after a deploy replaced it) with its own
    /// arguments and environment, hands it the listening sockets, and once the new master's
    /// workers serve, stops accepting and drains (`max_wait_time`). Returns the JSON answer
    /// (`old` and `new`: pid, version, executable and build of each). The pid file then
    /// names the new master.
    ///
    /// # Errors
    /// [`ControlError::UpgradeFailed`] if the new binary did not take over (it exited, crashed,
    /// refused its settings, or was not ready in time): the old master keeps serving.
    /// [`ControlError::Io`] if the status socket cannot be reached or no answer comes within
    /// `timeout`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use rswoole::control::Master;
    ///
    /// // A server started with `Settings::default().pid_file(Some("/run/app.pid".into()))`.
    /// let master = Master::open("/run/app.pid")?;
    /// let answer = master.upgrade(None, Duration::from_secs(90))?;
    /// println!("{answer}");
    /// # Ok::<(), rswoole::control::ControlError>(())
    /// ```
    pub fn upgrade(
        &self,
        binary: Option<&Path>,
        timeout: Duration,
    ) -> Result<String, ControlError> {
        let sock = crate::base::names::status_socket(&self.pid_file);
        let io = |context: String| move |source| ControlError::Io { context, source };
        let mut s = std::os::unix::net::UnixStream::connect(&sock).map_err(io(format!(
            "connecting to the status socket {}",
            sock.display()
        )))?;
        s.set_read_timeout(Some(timeout))
            .map_err(io("setting a timeout".into()))?;
        let mut req = String::from("upgrade");
        if let Some(b) = binary {
            let b = std::path::absolute(b).map_err(io(format!("resolving {}", b.display())))?;
            let b = b.to_str().ok_or_else(|| ControlError::Io {
                context: format!("the path {} is not UTF-8", b.display()),
                source: std::io::ErrorKind::InvalidInput.into(),
            })?;
            if b.contains(char::is_whitespace) {
                return Err(ControlError::Io {
                    context: format!("the path {b:?} has white space"),
                    source: std::io::ErrorKind::InvalidInput.into(),
                });
            }
            req.push(' ');
            req.push_str(b);
        }
        req.push('\n');
        s.write_all(req.as_bytes())
            .and_then(|_| s.shutdown(std::net::Shutdown::Write))
            .map_err(io("asking for the upgrade".into()))?;
        let mut out = String::new();
        s.read_to_string(&mut out)
            .map_err(io("waiting for the upgrade's answer".into()))?;
        let v: serde_json::Value = serde_json::from_str(&out).map_err(|e| ControlError::Io {
            context: format!("the master's answer {out:?} is not JSON"),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        })?;
        if v["ok"].as_bool() == Some(true) {
            Ok(out)
        } else {
            Err(ControlError::UpgradeFailed {
                pid: self.pid,
                reason: v["error"].as_str().unwrap_or("no reason given").to_string(),
            })
        }
    }

    /// Sends the signal of verb `verb` (a name in [`VERBS`]) to the master.
    ///
    /// # Errors
    /// An unknown verb, or a verb without a signal; the signal cannot be sent.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use rswoole::control::Master;
    ///
    /// // A server started with `Settings::default().pid_file(Some("/run/app.pid".into()))`.
    /// let master = Master::open("/run/app.pid")?;
    /// master.send("reload")?; // replace the workers, dropping no connection
    /// master.send("reopen-logs")?; // after logrotate moved the log file
    /// assert!(master.send("dance").is_err());
    /// # Ok::<(), rswoole::control::ControlError>(())
    /// ```
    pub fn send(&self, verb: &str) -> Result<(), ControlError> {
        let sig = VERBS
            .iter()
            .find(|v| v.name == verb)
            .and_then(|v| v.signal)
            .and_then(signal_number)
            .ok_or_else(|| ControlError::UnknownVerb(verb.to_string()))?;
        crate::sys::kill_raw(self.pid, sig).map_err(|source| ControlError::Io {
            context: format!("signalling process {}", self.pid),
            source,
        })
    }

    /// Sends `command` (`reload-certs`) on the master's command socket (`F.ctl` beside the pid
    /// file) and returns its answer.
    ///
    /// # Errors
    /// [`ControlError::Refused`] with the master's reason (a bad certificate: the old one
    /// stays); [`ControlError::Io`] if the socket cannot be reached.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use rswoole::control::Master;
    /// let m = Master::open("/run/app.pid")?;
    /// println!("{}", m.command("reload-certs", std::time::Duration::from_secs(10))?);
    /// # Ok::<(), rswoole::control::ControlError>(())
    /// ```
    pub fn command(&self, command: &str, timeout: Duration) -> Result<String, ControlError> {
        use std::io::Write;
        let sock = crate::base::names::command_socket(&self.pid_file);
        let io = |context: String| move |source| ControlError::Io { context, source };
        let mut s = std::os::unix::net::UnixStream::connect(&sock).map_err(io(format!(
            "connecting to the command socket {}",
            sock.display()
        )))?;
        s.set_read_timeout(Some(timeout))
            .map_err(io("setting a timeout".into()))?;
        s.write_all(format!("{command}\n").as_bytes())
            .map_err(io("sending the command".into()))?;
        let mut out = String::new();
        s.read_to_string(&mut out)
            .map_err(io("reading the answer".into()))?;
        let v: serde_json::Value =
            serde_json::from_str(out.trim()).map_err(|e| ControlError::Refused {
                command: command.to_string(),
                reason: format!("unreadable answer {out:?}: {e}"),
            })?;
        let message = v["message"].as_str().unwrap_or("").to_string();
        if v["ok"].as_bool() == Some(true) {
            Ok(message)
        } else {
            Err(ControlError::Refused {
                command: command.to_string(),
                reason: message,
            })
        }
    }

    /// Graceful stop: `SIGTERM`, then waits (at most `timeout`) until the master is gone and
    /// every TCP listener's port can be bound again.
    ///
    /// # Errors
    /// [`ControlError::Timeout`] if the master or its ports outlive `timeout`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use rswoole::control::Master;
    ///
    /// // A server started with `Settings::default().pid_file(Some("/run/app.pid".into()))`.
    /// let master = Master::open("/run/app.pid")?;
    /// master.stop(Duration::from_secs(10))?;
    /// // The ports are free again: a new server can bind them now.
    /// # Ok::<(), rswoole::control::ControlError>(())
    /// ```
    pub fn stop(&self, timeout: Duration) -> Result<(), ControlError> {
        let listeners: Vec<SocketAddr> = self
            .status_json(Duration::from_secs(2))
            .ok()
            .and_then(|j| serde_json::from_str::<serde_json::Value>(&j).ok())
            .and_then(|v| {
                v["listeners"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|x| x.as_str()?.parse().ok()).collect())
            })
            .unwrap_or_default();
        let started = Instant::now();
        self.send("stop")?;
        let deadline = started + timeout;
        while self.is_alive() {
            if Instant::now() > deadline {
                return Err(ControlError::Timeout {
                    pid: self.pid,
                    waited: timeout,
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        for a in listeners {
            while std::net::TcpListener::bind(a).is_err() {
                if Instant::now() > deadline {
                    return Err(ControlError::Timeout {
                        pid: self.pid,
                        waited: timeout,
                    });
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(())
    }
}
