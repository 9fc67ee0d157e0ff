//! Controlling a running server from outside: what `rswoole status|reload|stop|reopen-logs`
//! use.
//!
//! A server started with a `pid_file` `F` writes its master's pid to `F` and serves the
//! *control socket* `F.sock` (a unix socket): one request line per connection, one JSON
//! object back ([`request`]). The requests are the verbs of [`VERBS`] (`status`,
//! `upgrade [PATH]`, `reload-certs`, `reload`, ...). [`VERBS`] is the one table of verbs and
//! signals: the CLI's help, its signal numbers and the README's table all come from it.
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

pub use crate::base::names::{Verb, VERBS};

/// Sends one request line (`command`, e.g. `status`, `upgrade /usr/bin/app`, `reload-certs`)
/// on the control socket of the server whose pid file is `pid_file` (`<pid_file>.sock`) and
/// returns its answer: one JSON object. Commands that act answer `{"ok": true, "message":
/// ...}` or `{"ok": false, "error": ...}`; `status` answers the status object.
///
/// # Errors
/// [`ControlError::Io`] if the socket cannot be reached or no complete answer comes within
/// `timeout`; [`ControlError::Refused`] if `command` holds a line break.
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// let pid_file = std::path::Path::new("/run/app.pid");
/// let status = rswoole::control::request(pid_file, "status", Duration::from_secs(2))?;
/// let v: serde_json::Value = serde_json::from_str(&status).expect("JSON");
/// println!("{} connections", v["connections"]);
/// # Ok::<(), rswoole::control::ControlError>(())
/// ```
pub fn request(pid_file: &Path, command: &str, timeout: Duration) -> Result<String, ControlError> {
    if command.contains(['\n', '\r']) {
        return Err(ControlError::Refused {
            command: command.to_string(),
            reason: "a request is one line".into(),
        });
    }
    let sock = crate::base::names::control_socket(pid_file);
    let io = |context: String| move |source| ControlError::Io { context, source };
    let mut s = std::os::unix::net::UnixStream::connect(&sock).map_err(io(format!(
        "connecting to the control socket {}",
        sock.display()
    )))?;
    s.set_read_timeout(Some(timeout))
        .map_err(io("setting a timeout".into()))?;
    s.write_all(format!("{command}\n").as_bytes())
        .and_then(|_| s.shutdown(std::net::Shutdown::Write))
        .map_err(io(format!("sending {command:?}")))?;
    let mut out = String::new();
    s.read_to_string(&mut out)
        .map_err(io(format!("waiting for the answer to {command:?}")))?;
    let out = out.trim_end().to_string();
    if out.is_empty() {
        return Err(ControlError::Io {
            context: format!("the master closed the control socket without answering {command:?}"),
            source: std::io::ErrorKind::UnexpectedEof.into(),
        });
    }
    Ok(out)
}

/// An answer of [`request`] with `"ok": true`, or the master's reason.
fn answer(out: &str) -> Result<serde_json::Value, String> {
    let v: serde_json::Value =
        serde_json::from_str(out).map_err(|e| format!("unreadable answer {out:?}: {e}"))?;
    if v["ok"].as_bool() == Some(true) {
        Ok(v)
    } else {
        Err(v["error"]
            .as_str()
            .or(v["message"].as_str())
            .unwrap_or("no reason given")
            .to_string())
    }
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
    /// The control socket (`<pid_file>.sock`) cannot be reached or does not answer in time.
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
        request(&self.pid_file, "status", timeout)
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
    /// [`ControlError::Io`] if the control socket cannot be reached or no answer comes within
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
        let io = |context: String| move |source| ControlError::Io { context, source };
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
        let out = request(&self.pid_file, &req, timeout)?;
        match answer(&out) {
            Ok(_) => Ok(out),
            Err(reason) => Err(ControlError::UpgradeFailed {
                pid: self.pid,
                reason,
            }),
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
            .and_then(crate::sys::signal_by_name)
            .ok_or_else(|| ControlError::UnknownVerb(verb.to_string()))?;
        crate::sys::kill_raw(self.pid, sig).map_err(|source| ControlError::Io {
            context: format!("signalling process {}", self.pid),
            source,
        })
    }

    /// Sends `command` (`reload-certs`, or any verb of [`VERBS`]) on the control socket and
    /// returns the master's message once it has done it.
    ///
    /// # Errors
    /// [`ControlError::Refused`] with the master's reason (a bad certificate: the old one
    /// stays; an unknown command); [`ControlError::Io`] if the socket cannot be reached or no
    /// answer comes within `timeout`.
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
        let out = request(&self.pid_file, command, timeout)?;
        match answer(&out) {
            Ok(v) => Ok(v["message"].as_str().unwrap_or("").to_string()),
            Err(reason) => Err(ControlError::Refused {
                command: command.to_string(),
                reason,
            }),
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
