//! Replies the application still owes a connection: after the client's FIN (half-close) and
//! during a graceful stop, with the tasks example (`job <ms>` answers from `on_finish`).

use std::io::{Read, Write};
use std::net::Shutdown;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::util::*;

const T: Duration = Duration::from_secs(30);

/// The tasks example (2 task workers) in `mode`, with a pid file for the status socket.
fn tasks(mode: &str, pid_file: &Path, extra: &[&str]) -> ServerProc {
    let mut args = vec![
        "--port",
        "0",
        "--mode",
        mode,
        "--worker-num",
        "2",
        "--pid-file",
        pid_file.to_str().expect("utf-8 path"),
    ];
    args.extend_from_slice(extra);
    let srv = ServerProc::start("tasks", &args, 0);
    srv.wait_titles("rswoole: task worker", 2, T);
    srv
}

/// Everything the server sends until it closes (EOF), with the read bounded by `limit`.
fn read_all(c: &mut std::net::TcpStream, limit: Duration) -> Result<String, String> {
    c.set_read_timeout(Some(limit)).unwrap();
    let mut got = Vec::new();
    match c.read_to_end(&mut got) {
        Ok(_) => Ok(String::from_utf8_lossy(&got).into_owned()),
        Err(e) => Err(format!(
            "{e} after {:?}",
            String::from_utf8_lossy(&got).into_owned()
        )),
    }
}

/// The client sends `job 200` and its FIN at once (`printf 'job 200\n' | nc -q0`): the reply
/// comes from `on_finish` after the FIN and must still reach it, then EOF.
#[test]
fn lifecycle_half_close_task_reply_arrives() {
    for mode in ["process", "base"] {
        let dir = tempfile::tempdir().unwrap();
        let srv = tasks(mode, &dir.path().join("pid"), &[]);
        for _ in 0..3 {
            let mut c = connect(srv.port);
            c.write_all(b"job 200\n").unwrap();
            c.shutdown(Shutdown::Write).unwrap();
            let got = read_all(&mut c, T);
            assert_eq!(
                got.as_deref(),
                Ok("done 200\n"),
                "mode {mode}; stderr:\n{}",
                srv.stderr()
            );
        }
    }
}

/// A half-closed connection that is owed nothing is closed at once: after a reply from
/// `on_receive`, and after a task whose reply already went out. The server keeps none of
/// them (the status socket counts no connection).
#[test]
fn lifecycle_half_close_idle_closed_promptly() {
    for mode in ["process", "base"] {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let srv = tasks(mode, &pid_file, &[]);
        // Well below the default half_close_timeout (30 s): a connection held for nothing
        // fails here.
        let prompt = Duration::from_secs(10);
        let mut c = connect(srv.port);
        c.write_all(b"ping\n").unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        assert_eq!(read_all(&mut c, prompt).as_deref(), Ok("pong\n"), "{mode}");
        let mut c = connect(srv.port);
        c.write_all(b"job 10\n").unwrap();
        assert_eq!(read_line(&mut c), "done 10\n");
        c.shutdown(Shutdown::Write).unwrap();
        assert_eq!(read_all(&mut c, prompt).as_deref(), Ok(""), "{mode}");
        let mut c = connect(srv.port);
        c.shutdown(Shutdown::Write).unwrap();
        assert_eq!(read_all(&mut c, prompt).as_deref(), Ok(""), "{mode}");
        wait_status(&pid_file, "no connection left", prompt, |v| {
            v["connections"] == 0 && v["accepted"] == 3
        });
    }
}

/// `half_close_timeout` bounds the wait: a reply that does not come in time (a 20 s job,
/// a 500 ms bound) does not keep the half-closed connection; it is closed after the bound.
#[test]
fn lifecycle_half_close_timeout_closes() {
    for mode in ["process", "base"] {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let srv = tasks(mode, &pid_file, &["--half-close-timeout-ms", "500"]);
        let mut c = connect(srv.port);
        c.write_all(b"job 20000\n").unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        let t0 = Instant::now();
        // The wait is the behaviour under test: not before the bound, long before the job.
        assert_eq!(read_all(&mut c, T).as_deref(), Ok(""), "{mode}");
        let waited = t0.elapsed();
        assert!(
            waited >= Duration::from_millis(400) && waited < Duration::from_secs(15),
            "mode {mode}: closed after {waited:?}"
        );
        wait_status(&pid_file, "the connection closed", T, |v| {
            v["connections"] == 0
        });
    }
}

/// The testkit server in `mode` with `\n`-framed commands.
fn testkit(mode: &str) -> ServerProc {
    ServerProc::start(
        "testkit",
        &[
            "--addr",
            "127.0.0.1:0",
            "--mode",
            mode,
            "--worker-num",
            "1",
            "--framing",
            "eof:\\n",
        ],
        0,
    )
}

/// A reply from a one-shot timer set while handling the connection's last message reaches
/// the client after its FIN.
#[test]
fn lifecycle_half_close_timer_reply_arrives() {
    for mode in ["process", "base"] {
        let srv = testkit(mode);
        let mut c = connect(srv.port);
        c.write_all(b"later 300 tick\n").unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        assert_eq!(read_all(&mut c, T).as_deref(), Ok("tick\n"), "mode {mode}");
    }
}

/// The application's `close` ends the wait at once, though a 60 s timer is still owed to
/// the connection (and half_close_timeout is the default 30 s).
#[test]
fn lifecycle_half_close_app_close_ends_wait() {
    for mode in ["process", "base"] {
        let srv = testkit(mode);
        let mut c = connect(srv.port);
        c.write_all(b"later 60000 never\nlaterclose 200\n").unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        // Well below both the timer and half_close_timeout.
        let got = read_all(&mut c, Duration::from_secs(10));
        assert_eq!(got.as_deref(), Ok("bye\n"), "mode {mode}");
        srv.wait_stdout("close ", 1, T);
    }
}
