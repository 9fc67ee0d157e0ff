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

/// SIGTERM while 20 clients each wait for a 1 s job (2 task workers: two run, the others
/// wait in their queues): every client gets its job's reply or an explicit error for a job
/// that was not run, never a bare EOF, and the server exits within max_wait_time + margin.
#[test]
fn lifecycle_stop_delivers_task_replies() {
    for mode in ["process", "base"] {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let max_wait = Duration::from_secs(5);
        let mut srv = tasks(mode, &pid_file, &["--max-wait-time-ms", "5000"]);
        let mut clients: Vec<_> = (0..20)
            .map(|_| {
                let mut c = connect(srv.port);
                c.write_all(b"job 1000\n").unwrap();
                c
            })
            .collect();
        // Every job was handed to a task worker (20 receives handled) and both task workers
        // are running one.
        wait_status(&pid_file, "20 jobs in flight", T, |v| {
            let handled: u64 = v["workers"]
                .as_array()
                .map(|w| w.iter().filter_map(|w| w["requests"].as_u64()).sum())
                .unwrap_or(0);
            handled >= 20
                && v["task_workers"]
                    .as_array()
                    .is_some_and(|t| t.iter().all(|w| w["state"] == "busy"))
        });
        let t0 = Instant::now();
        srv.signal(15);
        let mut done = 0;
        for (i, c) in clients.iter_mut().enumerate() {
            let got = read_all(c, T).unwrap_or_else(|e| panic!("{mode} client {i}: {e}"));
            match got.as_str() {
                "done 1000\n" => done += 1,
                s if s.starts_with("error ") && s.ends_with('\n') => {}
                other => panic!(
                    "mode {mode} client {i}: {other:?} (a bare EOF is a lost reply); stderr:\n{}",
                    srv.stderr()
                ),
            }
        }
        // The two jobs running at SIGTERM finish well inside max_wait_time.
        assert!(
            done >= 2,
            "mode {mode}: {done} replies; stdout:\n{}",
            srv.stdout()
        );
        let st = srv.wait_exit(max_wait + Duration::from_secs(5));
        assert!(
            st.is_some_and(|s| s.success()),
            "mode {mode}: exit {st:?} after {:?}; stderr:\n{}",
            t0.elapsed(),
            srv.stderr()
        );
    }
}

/// A task that outlasts max_wait_time does not leave its client without an answer: at the
/// deadline the stopping worker reports every task still unanswered (running, or queued
/// behind it) to on_finish as timed out, and the reply goes out before the server exits.
#[test]
fn lifecycle_stop_reports_tasks_past_max_wait_time() {
    for mode in ["process", "base"] {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let mut srv = tasks(mode, &pid_file, &["--max-wait-time-ms", "1000"]);
        let mut clients: Vec<_> = (0..4)
            .map(|_| {
                let mut c = connect(srv.port);
                c.write_all(b"job 20000\n").unwrap();
                c
            })
            .collect();
        wait_status(&pid_file, "4 jobs in flight", T, |v| {
            let handled: u64 = v["workers"]
                .as_array()
                .map(|w| w.iter().filter_map(|w| w["requests"].as_u64()).sum())
                .unwrap_or(0);
            handled >= 4
                && v["task_workers"]
                    .as_array()
                    .is_some_and(|t| t.iter().all(|w| w["state"] == "busy"))
        });
        srv.signal(15);
        for (i, c) in clients.iter_mut().enumerate() {
            let got = read_all(c, T).unwrap_or_else(|e| panic!("{mode} client {i}: {e}"));
            assert_eq!(
                got,
                "error timed out waiting for the task's result\n",
                "mode {mode} client {i}; stderr:\n{}",
                srv.stderr()
            );
        }
        // The jobs would take 20 s: the stop is bounded by max_wait_time, not by them.
        let st = srv.wait_exit(Duration::from_secs(10));
        assert!(st.is_some_and(|s| s.success()), "mode {mode}: {st:?}");
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
