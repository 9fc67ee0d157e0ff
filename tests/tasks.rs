//! Task workers: typed round trips, exactly-once delivery, task_wait timeouts, a task worker
//! killed mid-task, full queues, large payloads, timers, send_message, and the tasks example.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use crate::util::*;

const T: Duration = Duration::from_secs(30);

fn kit(args: &[&str]) -> ServerProc {
    let port = 0;
    let addr = format!("127.0.0.1:{port}");
    let mut all = vec!["--addr", addr.as_str()];
    all.extend_from_slice(args);
    let srv = ServerProc::start("task_kit", &all, port);
    srv.wait_titles("rswoole: task worker", task_workers(args), T);
    srv
}

fn task_workers(args: &[&str]) -> usize {
    args.iter()
        .position(|a| *a == "--task-worker-num")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(2)
}

fn ask(port: u16, line: &str) -> String {
    let mut c = connect(port);
    c.set_read_timeout(Some(T)).unwrap();
    c.write_all(format!("{line}\n").as_bytes()).unwrap();
    read_line(&mut c)
}

#[test]
fn tasks_struct_round_trip() {
    let srv = kit(&[]);
    let got = ask(srv.port, "rt");
    assert_eq!(
        got.trim(),
        r#"rt Ok(Point(Point { x: 10, y: -20, name: "p!" }))"#
    );
}

#[test]
fn tasks_ten_thousand_exactly_once_to_the_right_origin() {
    let srv = kit(&["--worker-num", "4", "--task-queue-size", "64"]);
    // Four connections; fixed dispatch spreads them over the workers.
    let mut conns: Vec<_> = (0..4).map(|_| connect(srv.port)).collect();
    let mut workers = std::collections::HashSet::new();
    for c in &mut conns {
        c.write_all(b"whoami\n").unwrap();
        workers.insert(read_line(c).trim().to_string());
    }
    assert!(workers.len() >= 2, "connections on {workers:?}");
    for c in &mut conns {
        c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        c.write_all(b"burst 2500\n").unwrap();
    }
    for c in &mut conns {
        let line = read_line(c);
        assert!(
            line.starts_with("burst ok=2500 dup=0 wrong=0 "),
            "{line:?}\nstderr:\n{}",
            srv.stderr()
        );
    }
}

#[test]
fn tasks_wait_timeout_hands_payload_back() {
    let srv = kit(&[]);
    // The task takes a minute, longer than `ask`'s read timeout (T): the answer can only come
    // in time from task_wait's 100 ms timeout. (That task worker stays busy with it; the next
    // task goes to the other, idle one.)
    assert_eq!(
        ask(srv.port, "wait 60000 100").trim(),
        "wait timeout payload ms=60000"
    );
    assert_eq!(ask(srv.port, "wait 10 5000").trim(), "wait ok");
}

#[test]
fn tasks_killed_task_worker_reports_to_origin() {
    let srv = kit(&["--worker-num", "1"]);
    let mut c = connect(srv.port);
    c.set_read_timeout(Some(T)).unwrap();
    c.write_all(b"slow 20000\n").unwrap();
    let out = srv.wait_stdout("task-start pid=", 1, T);
    let pid: i32 = out
        .split("task-start pid=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .expect("pid");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    // Nothing else would ever answer (the task is gone, `slow` has no timeout): without the
    // report this read fails at its timeout.
    let line = read_line(&mut c);
    assert_eq!(line.trim(), "slow error WorkerDied(..) ms=20000");
    // The task worker is replaced and serves again.
    srv.wait_titles("rswoole: task worker", 2, T);
    c.write_all(b"slow 10\n").unwrap();
    assert_eq!(read_line(&mut c).trim(), "slow done 10");
}

#[test]
fn tasks_killed_task_worker_retry_setting_reruns() {
    let srv = kit(&[
        "--worker-num",
        "1",
        "--task-worker-num",
        "1",
        "--retry-on-crash",
    ]);
    let mut c = connect(srv.port);
    c.set_read_timeout(Some(T)).unwrap();
    c.write_all(b"slow 1500\n").unwrap();
    let out = srv.wait_stdout("task-start pid=", 1, T);
    let pid: i32 = out
        .split("task-start pid=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .expect("pid");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    // Re-run by the replacement, then answered normally.
    assert_eq!(read_line(&mut c).trim(), "slow done 1500");
    assert_eq!(srv.stdout().matches("task-start pid=").count(), 2);
}

#[test]
fn tasks_queue_full_returns_payload() {
    let srv = kit(&["--worker-num", "1", "--task-queue-size", "3"]);
    assert_eq!(
        ask(srv.port, "fill 10 300").trim(),
        "full at 3 payload ms=300"
    );
    // Once the queue drains, tasks are accepted again. It drains when the three 300 ms tasks
    // have finished: wait until the last one started, then ask until it is accepted (each
    // refused attempt queues at most one 1 ms task more).
    srv.wait_stdout("ms=300", 3, T);
    let deadline = Instant::now() + T;
    loop {
        let r = ask(srv.port, "fill 2 1");
        if r.trim() == "fill nofull" {
            break;
        }
        assert!(r.starts_with("full at "), "{r}");
        assert!(Instant::now() < deadline, "the queue never drained: {r}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn tasks_32_mib_payload_both_ways() {
    let srv = kit(&["--worker-num", "1"]);
    let mut big = connect(srv.port);
    big.set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    big.write_all(b"big 32\n").unwrap();
    // Small tasks keep flowing while the big one is in flight.
    for _ in 0..5 {
        assert!(ask(srv.port, "rt").starts_with("rt Ok("));
    }
    assert_eq!(
        read_line(&mut big).trim(),
        "big len=33554432 sum_ok=true echo_ok=true"
    );
}

#[test]
fn tasks_timers_fire_and_clear() {
    let mut srv = kit(&["--worker-num", "1"]);
    assert_eq!(
        ask(srv.port, "timer").trim(),
        "timer ticks=5 after=1 cleared=true ghost=0 again=false"
    );
    assert_eq!(ask(srv.port, "ttimer").trim(), "ttimer true");
    srv.wait_stdout("tw-after fired ticks>0=true", 1, T);
    // The cleared timer was due before that one (20 ms < 30 ms). After a graceful stop every
    // process has exited and flushed its output: if it had fired, its line would be there.
    assert!(srv.stop(T).success());
    assert!(!srv.stdout().contains("tw-ghost fired"), "{}", srv.stdout());
}

#[test]
fn tasks_send_message_from_task_worker() {
    let srv = kit(&["--worker-num", "1"]);
    assert_eq!(
        ask(srv.port, "msg").trim(),
        "msg from=1 hello from task worker"
    );
}

#[test]
fn tasks_missing_on_task_fails_at_start() {
    // tcp_echo registers no on_task: asking it for a task worker must fail before forking.
    let port = free_port();
    let mut p = ServerProc::spawn(
        "tcp_echo",
        &["--port", &port.to_string(), "--task-worker-num", "1"],
        port,
    );
    let st = p.wait_exit(T).expect("exits");
    assert!(!st.success());
    let err = p.stderr();
    assert!(err.contains("on_task"), "{err}");
}

#[test]
fn tasks_example_ping_while_jobs_run() {
    let port = 0;
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("tasks.pid");
    let srv = ServerProc::start(
        "tasks",
        &[
            "--port",
            &port.to_string(),
            "--worker-num",
            "2",
            "--pid-file",
            pid_file.to_str().unwrap(),
        ],
        port,
    );
    srv.wait_titles("rswoole: task worker", 2, T);
    let mut c = connect(srv.port);
    c.set_read_timeout(Some(T)).unwrap();
    c.write_all(b"job 3000\njob 3000\njob 3000\n").unwrap();
    // Both task workers are running a job.
    wait_status(&pid_file, "both task workers busy", T, |v| {
        v["task_workers"]
            .as_array()
            .is_some_and(|t| t.len() == 2 && t.iter().all(|w| w["state"] == "busy"))
    });
    let mut p = connect(srv.port);
    for _ in 0..5 {
        p.write_all(b"ping\n").unwrap();
        assert_eq!(read_line(&mut p), "pong\n");
    }
    // Instead of a wall-clock bound: the pongs came while the jobs still ran (no job has
    // finished yet), so they did not wait for a job. (3 s jobs: a generous margin for five
    // round trips on a loaded machine.)
    assert!(!srv.stdout().contains("did job"), "{}", srv.stdout());
    c.set_nonblocking(true).unwrap();
    let mut b = [0u8; 1];
    assert!(
        matches!(c.read(&mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "a job finished before the pings were answered"
    );
    c.set_nonblocking(false).unwrap();
    let mut done = 0;
    while done < 3 {
        assert_eq!(read_line(&mut c), "done 3000\n");
        done += 1;
    }
}

fn task_start_pid(out: &str) -> i32 {
    out.split("task-start pid=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .expect("pid")
}

/// A task worker stopped gracefully (SIGTERM) finishes its current task, and the tasks it had
/// not started go to its replacement: each runs once, none is reported lost.
#[test]
fn tasks_graceful_task_worker_stop_hands_queue_over() {
    let srv = kit(&["--worker-num", "1", "--task-worker-num", "1"]);
    let mut c = connect(srv.port);
    c.set_read_timeout(Some(T)).unwrap();
    c.write_all(b"slow 400\nslow 401\nslow 402\n").unwrap();
    let pid = task_start_pid(&srv.wait_stdout("task-start pid=", 1, T));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let mut got: Vec<String> = (0..3)
        .map(|_| read_line(&mut c).trim().to_string())
        .collect();
    got.sort();
    assert_eq!(got, ["slow done 400", "slow done 401", "slow done 402"]);
    let out = srv.stdout();
    assert_eq!(out.matches("task-start").count(), 3, "{out}");
}

/// A reload (SIGUSR1) replaces workers and task workers while tasks run: every result still
/// reaches its client.
#[test]
fn tasks_reload_loses_no_task() {
    let srv = kit(&["--worker-num", "1", "--task-worker-num", "1"]);
    let mut c = connect(srv.port);
    c.set_read_timeout(Some(T)).unwrap();
    c.write_all(b"slow 200\nslow 201\nslow 202\n").unwrap();
    srv.wait_stdout("task-start pid=", 1, T);
    srv.signal(10);
    let mut got: Vec<String> = (0..3)
        .map(|_| read_line(&mut c).trim().to_string())
        .collect();
    got.sort();
    assert_eq!(got, ["slow done 200", "slow done 201", "slow done 202"]);
}

/// Pids of the processes titled `title` (`rswoole: worker`, `rswoole: task worker`), sorted.
fn pids(srv: &ServerProc, title: &str, n: usize) -> Vec<i32> {
    let mut v = srv.wait_titles(title, n, T);
    v.sort_unstable();
    v
}

/// `rswoole reload --task` and `kill -USR2 <master>` replace every task worker, one at a time,
/// under a steady load of `task` and `task_wait` calls: every task ends in exactly one answer
/// (no loss, no duplicate, no failure), and the workers are not touched.
#[test]
fn tasks_reload_task_workers_under_load() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
    use std::sync::Arc;

    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("tk.pid");
    let srv = kit(&[
        "--worker-num",
        "2",
        "--task-worker-num",
        "3",
        "--task-queue-size",
        "32",
        "--pid-file",
        pid_file.to_str().unwrap(),
    ]);
    let workers = pids(&srv, "rswoole: worker", 2);
    let mut tasks = pids(&srv, "rswoole: task worker", 3);
    wait_status(&pid_file, "the status socket", T, |v| {
        v["phase"] == "running"
    });

    // The load: each client repeats one command and checks every answer.
    let stop = Arc::new(AtomicBool::new(false));
    let rounds = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = [
        ("burst 100 300", "burst ok=100 dup=0 wrong=0 failed=0 w"),
        ("burst 100 300", "burst ok=100 dup=0 wrong=0 failed=0 w"),
        ("waits 40 300", "waits ok=40 err=0"),
        ("waits 40 300", "waits ok=40 err=0"),
    ]
    .into_iter()
    .map(|(cmd, want)| {
        let (port, stop, rounds) = (srv.port, stop.clone(), rounds.clone());
        std::thread::spawn(move || {
            let mut c = connect(port);
            c.set_read_timeout(Some(T)).unwrap();
            let mut bad = Vec::new();
            let mut n = 0u64;
            while !stop.load(Relaxed) {
                c.write_all(format!("{cmd}\n").as_bytes()).unwrap();
                let line = read_line(&mut c);
                if !line.starts_with(want) {
                    bad.push(line);
                }
                n += 1;
                rounds.fetch_add(1, Relaxed);
            }
            (n, bad)
        })
    })
    .collect();
    let wait_rounds = |at_least: u64, what: &str| {
        let deadline = Instant::now() + T;
        while rounds.load(Relaxed) < at_least {
            assert!(
                Instant::now() < deadline,
                "{what}: only {} rounds\n{}",
                rounds.load(Relaxed),
                srv.stderr()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    wait_rounds(8, "load before the reload");

    let pf = pid_file.to_str().unwrap();
    for (round, how) in [(1, "rswoole reload --task"), (2, "kill -USR2 <master>")] {
        let before = rounds.load(Relaxed);
        if round == 1 {
            let o = crate::util::cli(&["reload", "--task", "--pid-file", pf]);
            assert!(o.status.success(), "{how}: {o:?}");
        } else {
            srv.signal(12); // SIGUSR2
        }
        srv.wait_stderr("reload finished", round, T);
        // Traffic kept flowing through the reload and after it.
        wait_rounds(before + 8, how);
        let now = pids(&srv, "rswoole: task worker", 3);
        for p in &now {
            assert!(
                !tasks.contains(p),
                "{how}: task worker {p} was not replaced"
            );
        }
        tasks = now;
        assert_eq!(
            pids(&srv, "rswoole: worker", 2),
            workers,
            "{how} replaced workers"
        );
    }
    stop.store(true, Relaxed);
    for c in clients {
        let (n, bad) = c.join().expect("client thread");
        assert!(n > 0);
        assert!(
            bad.is_empty(),
            "wrong answers: {bad:?}\nstdout:\n{}\nstderr:\n{}",
            srv.stdout(),
            srv.stderr()
        );
    }
    let st = status(&pid_file).expect("status");
    for w in st["workers"].as_array().unwrap() {
        assert_eq!(w["restarts"], 0, "{st}");
    }
    for w in st["task_workers"].as_array().unwrap() {
        assert_eq!(w["restarts"], 2, "{st}");
    }
    let err = srv.stderr();
    assert!(!err.contains("WorkerDied"), "{err}");
    assert!(!err.contains("died"), "{err}");
}

/// Two task-worker reloads asked at once (one of the master, one of the manager directly)
/// under load: both are carried out (the second replaces the incarnation the first one has
/// just started, or joins it if it is still queued), and no task is lost or answered twice.
#[test]
fn tasks_back_to_back_task_reloads_lose_nothing() {
    use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
    use std::sync::Arc;

    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("bb.pid");
    let srv = kit(&[
        "--worker-num",
        "1",
        "--task-worker-num",
        "1",
        "--pid-file",
        pid_file.to_str().unwrap(),
    ]);
    let st = wait_status(&pid_file, "the status socket", T, |v| {
        v["phase"] == "running"
    });
    let manager = nix::unistd::Pid::from_raw(st["manager_pid"].as_i64().unwrap() as i32);
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = [
        ("burst 50 200", "burst ok=50 dup=0 wrong=0 failed=0 w"),
        ("waits 20 200", "waits ok=20 err=0"),
    ]
    .into_iter()
    .map(|(cmd, want)| {
        let (port, stop) = (srv.port, stop.clone());
        std::thread::spawn(move || {
            let mut c = connect(port);
            c.set_read_timeout(Some(T)).unwrap();
            let mut bad = Vec::new();
            while !stop.load(Relaxed) {
                c.write_all(format!("{cmd}\n").as_bytes()).unwrap();
                let line = read_line(&mut c);
                if !line.starts_with(want) {
                    bad.push(line);
                }
            }
            bad
        })
    })
    .collect();
    // True once the manager logged `reload finished` after the n-th reload it was asked for:
    // every reload asked until then is done (a reload asked while one is under way joins it).
    let done_after = |n: usize| {
        let err = srv.stderr();
        let lines: Vec<&str> = err.lines().collect();
        let asked: Vec<usize> = (0..lines.len())
            .filter(|&i| lines[i].contains("reloading task workers"))
            .collect();
        asked.len() >= n
            && lines[asked[n - 1]..]
                .iter()
                .any(|l| l.contains("reload finished"))
    };
    const PAIRS: usize = 5;
    for k in 1..=PAIRS {
        // Two messages to the manager at (nearly) the same moment: the second one retires the
        // incarnation that the first one has just started.
        srv.signal(12);
        nix::sys::signal::kill(manager, nix::sys::signal::Signal::SIGUSR2).unwrap();
        let deadline = Instant::now() + T;
        while !done_after(2 * k) {
            assert!(
                Instant::now() < deadline,
                "reloads of pair {k} did not finish:\n{}",
                srv.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    stop.store(true, Relaxed);
    for c in clients {
        let bad = c.join().expect("client thread");
        assert!(
            bad.is_empty(),
            "wrong answers: {bad:?}\nstdout:\n{}\nstderr:\n{}",
            srv.stdout(),
            srv.stderr()
        );
    }
    let err = srv.stderr();
    assert!(!err.contains("died"), "{err}");
}
