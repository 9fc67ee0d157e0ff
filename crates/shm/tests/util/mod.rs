//! Helpers: find and run `shm_stress`, with a timeout on every wait.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rswoole_shm::{Column, Table};

/// Path of the `shm_stress` example next to this test binary.
pub(crate) fn helper() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/integration-<hash> -> target/<profile>/examples/
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test binary lives in target/<profile>/deps");
    let path = profile_dir.join("examples").join("shm_stress");
    assert!(
        path.exists(),
        "{} is missing: run cargo build --examples -p rswoole-shm",
        path.display()
    );
    path
}

/// A table name unique to this test process and call.
pub(crate) fn unique(tag: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "test-{}-{tag}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Removes a persistent table when dropped (also when a test panics).
pub(crate) struct Cleanup(pub(crate) String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = rswoole_shm::persistent::remove(&self.0);
    }
}

/// Creates the helper's standard persistent table in this process.
pub(crate) fn create(name: &str, rows: usize) -> (Table, Cleanup) {
    let t = Table::builder(rows)
        .column("name", Column::Str(64))
        .column("score", Column::Int)
        .column("ratio", Column::Float)
        .persistent(name)
        .build()
        .expect("create persistent table");
    (t, Cleanup(name.to_owned()))
}

/// A running helper; killed (by its PID, through `Child::kill`) on drop.
pub(crate) struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Proc {
    /// Starts `shm_stress args...` with an empty environment.
    pub(crate) fn spawn(args: &[&str]) -> Proc {
        let mut child = Command::new(helper())
            .args(args)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn shm_stress");
        let out = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc { child, lines }
    }

    /// Waits for the next line of output, for at most `timeout`.
    pub(crate) fn line(&self, timeout: Duration) -> String {
        self.lines
            .recv_timeout(timeout)
            .unwrap_or_else(|e| panic!("no output from shm_stress within {timeout:?}: {e}"))
    }

    /// Waits for exit, for at most `timeout`; returns (success, output).
    pub(crate) fn finish(mut self, timeout: Duration) -> (bool, String) {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("shm_stress did not exit within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let mut out = Vec::new();
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            out.push(line);
        }
        (status.success(), out.join("\n"))
    }

    /// Sends SIGKILL to this child (only) and reaps it.
    pub(crate) fn kill(mut self) {
        self.child.kill().expect("kill");
        self.child.wait().expect("wait");
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `shm_stress args...` to completion; panics unless it succeeds.
pub(crate) fn run(args: &[&str], timeout: Duration) -> String {
    let (ok, out) = Proc::spawn(args).finish(timeout);
    assert!(ok, "shm_stress {args:?} failed: {out}");
    out
}
