//! The core server: the seed's examples, both modes, dispatch, close, errors, crash recovery.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::util::*;

const T: Duration = Duration::from_secs(20);

/// Seed §10: the exact echo and the printed lines.
#[test]
fn core_tcp_echo_seed() {
    let port = 0;
    let mut srv = ServerProc::start(
        "tcp_echo",
        &["--port", &port.to_string(), "--worker-num", "2"],
        port,
    );
    let port = srv.port;
    let mut c = connect(port);
    srv.wait_stdout("Client: Connect.", 1, T);
    roundtrip(&mut c, b"hello", b"Server: hello");
    roundtrip(&mut c, b"world\n", b"Server: world\n");
    drop(c);
    srv.wait_stdout("Client: Close.", 1, T);
    // Process titles show the roles.
    assert!(
        cmdline(srv.pid()).starts_with("rswoole: master"),
        "{}",
        cmdline(srv.pid())
    );
    srv.wait_titles("rswoole: manager", 1, T);
    srv.wait_titles("rswoole: worker", 2, T);
    let st = srv.stop(T);
    assert!(st.success(), "exit status {st:?}");
}

/// Half-close: a reply to data sent just before the client's FIN still reaches the client.
#[test]
fn core_half_close_reply_arrives() {
    for mode in ["process", "base"] {
        let srv = ServerProc::example("tcp_echo", mode, 1);
        let mut c = connect(srv.port);
        c.write_all(b"last words").unwrap();
        c.shutdown(std::net::Shutdown::Write).unwrap();
        let mut got = Vec::new();
        c.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"Server: last words", "mode {mode}");
    }
}

async fn echo_client(
    port: u16,
    id: usize,
    msgs: usize,
    replies: Arc<AtomicU64>,
) -> Result<(), String> {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("{id}: connect {e}"))?;
    s.set_nodelay(true).ok();
    let mut buf = vec![0u8; 256];
    for k in 0..msgs {
        let msg = format!("c{id}m{k};");
        s.write_all(msg.as_bytes())
            .await
            .map_err(|e| format!("{id}: write {e}"))?;
        let want = format!("Server: {msg}");
        let mut got = 0;
        while got < want.len() {
            let n = tokio::time::timeout(Duration::from_secs(20), s.read(&mut buf[got..]))
                .await
                .map_err(|_| format!("{id}: timeout waiting for reply {k}"))?
                .map_err(|e| format!("{id}: read {e}"))?;
            if n == 0 {
                return Err(format!("{id}: server closed the connection at message {k}"));
            }
            got += n;
        }
        if &buf[..got] != want.as_bytes() {
            return Err(format!(
                "{id}: got {:?}, want {want:?}",
                String::from_utf8_lossy(&buf[..got])
            ));
        }
        replies.fetch_add(1, Relaxed);
    }
    Ok(())
}

/// Runs `n` concurrent echo clients of `msgs` messages each; `during` runs while they do,
/// given the count of correct replies so far. Returns the clients' errors.
fn echo_clients(port: u16, n: usize, msgs: usize, during: impl FnOnce(&AtomicU64)) -> Vec<String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let replies = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..n)
        .map(|i| rt.spawn(echo_client(port, i, msgs, replies.clone())))
        .collect();
    during(&replies);
    rt.block_on(async {
        let mut errs = vec![];
        for t in tasks {
            if let Err(e) = t.await.unwrap() {
                errs.push(e);
            }
        }
        errs
    })
}

fn many_clients(mode: &str) {
    let srv = ServerProc::example("tcp_echo", mode, 2);
    let errors = echo_clients(srv.port, 1000, 100, |_| {});
    assert!(
        errors.is_empty(),
        "{} clients failed, first: {:?}",
        errors.len(),
        &errors[..errors.len().min(5)]
    );
}

/// 1,000 concurrent connections, 100 messages each, every reply correct (Process mode).
#[test]
fn core_thousand_clients_process() {
    many_clients("process");
}

/// The same in Base mode.
#[test]
fn core_thousand_clients_base() {
    many_clients("base");
}

/// Seed §11: UDP echo, in both modes.
#[test]
fn core_udp_echo() {
    for mode in ["process", "base"] {
        let srv = ServerProc::example("udp_echo", mode, 2);
        for i in 0..20 {
            let msg = format!("ping {i}");
            let got = udp_roundtrip(srv.port, msg.as_bytes());
            assert_eq!(
                String::from_utf8_lossy(&got),
                format!("Server: {msg}"),
                "mode {mode}"
            );
        }
    }
}

/// Seed §16: Base mode replies `Swoole: ` + data then closes; the line before start() is
/// printed once, the line after only at shutdown.
#[test]
fn core_base_mode_seed() {
    let port = 0;
    let mut srv = ServerProc::start(
        "base_mode",
        &["--port", &port.to_string(), "--worker-num", "2"],
        port,
    );
    for _ in 0..3 {
        let mut c = connect(srv.port);
        c.write_all(b"hi").unwrap();
        let mut got = Vec::new();
        c.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"Swoole: hi");
    }
    let out = srv.stdout();
    assert_eq!(out.matches("before start()").count(), 1, "{out}");
    assert!(!out.contains("after start()"), "{out}");
    assert!(srv.stop(T).success());
    let out = srv.stdout();
    assert_eq!(out.matches("before start()").count(), 1, "{out}");
    assert_eq!(out.matches("after start()").count(), 1, "{out}");
}

/// `close(fd)` from the server: the client sees the last reply then EOF; on_close fires once.
#[test]
fn core_server_close_and_on_close_once() {
    for mode in ["process", "base"] {
        let port = 0;
        let mut srv = ServerProc::start(
            "testkit",
            &["--addr", &format!("127.0.0.1:{port}"), "--mode", mode],
            port,
        );
        let mut c = connect(srv.port);
        c.write_all(b"close").unwrap();
        let mut got = String::new();
        c.read_to_string(&mut got).unwrap();
        let fd = got
            .strip_prefix("bye ")
            .expect("bye <fd>")
            .trim()
            .to_string();
        let needle = format!("close {fd} ");
        srv.wait_stdout(&needle, 1, T);
        // A second on_close would come from events already under way: after a graceful stop
        // every callback has run and printed, so the counts below are final.
        assert!(srv.stop(T).success());
        let out = srv.stdout();
        assert_eq!(
            out.matches(&needle).count(),
            1,
            "on_close must fire once: {out}"
        );
        assert_eq!(
            out.matches("close ").count(),
            out.matches("connect ").count(),
            "{out}"
        );
    }
}

/// A TCP server without on_receive fails at start, naming the callback; a taken port fails
/// naming the address.
#[test]
fn core_startup_errors() {
    let port = free_port();
    let mut srv = ServerProc::spawn(
        "testkit",
        &["--addr", &format!("127.0.0.1:{port}"), "--no-receive"],
        port,
    );
    let st = srv.wait_exit(T).expect("exits");
    assert!(!st.success());
    assert!(
        srv.stderr().contains("on_receive"),
        "stderr: {}",
        srv.stderr()
    );

    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let mut srv = ServerProc::spawn("tcp_echo", &["--port", &port.to_string()], port);
    let st = srv.wait_exit(T).expect("exits");
    assert!(!st.success());
    let err = srv.stderr();
    assert!(
        err.contains(&format!("127.0.0.1:{port}")) && err.to_lowercase().contains("in use"),
        "stderr: {err}"
    );
}

/// connection_info, stats, connections() and the worker that answers.
#[test]
fn core_connection_info_and_stats() {
    let port = 0;
    let srv = ServerProc::start(
        "testkit",
        &["--addr", &format!("127.0.0.1:{port}"), "--worker-num", "2"],
        port,
    );
    let port = srv.port;
    let mut a = connect(port);
    let mut b = connect(port);
    a.write_all(b"info").unwrap();
    let line = read_line(&mut a);
    let local = a.local_addr().unwrap();
    assert!(line.contains(&format!("remote={local}")), "{line}");
    assert!(
        line.contains(&format!("server_port={port}"))
            && line.contains("listener=0")
            && line.contains("connected=true"),
        "{line}"
    );
    // `start` does not connect: these two are the only connections the server ever had.
    b.write_all(b"conns").unwrap();
    assert_eq!(read_line(&mut b), "conns=2\n");
    b.write_all(b"stats").unwrap();
    let s = read_line(&mut b);
    assert!(s.starts_with("connections=2 accepted=2 closed=0"), "{s}");
}

/// dispatch_mode 2 keeps a connection on one worker; 1 spreads events; on_connect/on_close
/// are delivered in every mode and a connection's events stay in order.
#[test]
fn core_dispatch_modes() {
    for dm in ["1", "2", "3", "4"] {
        let port = 0;
        let srv = ServerProc::start(
            "testkit",
            &[
                "--addr",
                &format!("127.0.0.1:{port}"),
                "--worker-num",
                "2",
                "--dispatch-mode",
                dm,
            ],
            port,
        );
        let mut workers = std::collections::HashSet::new();
        for _ in 0..4 {
            let mut c = connect(srv.port);
            for k in 0..20 {
                let msg = format!("m{k}\n");
                c.write_all(msg.as_bytes()).unwrap();
                let line = read_line(&mut c);
                let (w, rest) = line.split_once(':').expect("w:reply");
                assert_eq!(rest, msg, "in-order replies, dispatch_mode {dm}");
                workers.insert(w.to_string());
            }
        }
        srv.wait_stdout("connect ", 4, T);
        srv.wait_stdout("close ", 4, T);
        if dm == "1" {
            assert_eq!(workers.len(), 2, "round robin uses both workers");
        }
    }
}

/// Several listeners: TCP and UDP, IPv4 and IPv6, on one server.
#[test]
fn core_multiple_listeners() {
    let v6 = std::net::TcpListener::bind("[::1]:0").is_ok();
    let mut args = vec!["--addr", "127.0.0.1:0", "--listen", "udp:127.0.0.1:0"];
    if v6 {
        args.extend(["--listen", "tcp:[::1]:0"]);
    }
    let srv = ServerProc::start("testkit", &args, 0);
    // Each listener bound its own port; the Running line lists them in listener order.
    assert_eq!(srv.addrs.len(), if v6 { 3 } else { 2 }, "{:?}", srv.addrs);
    assert_eq!(udp_roundtrip(srv.addrs[1].port(), b"x"), b"udp1:x");
    if v6 {
        assert!(srv.addrs[2].is_ipv6(), "{:?}", srv.addrs);
        let mut c = std::net::TcpStream::connect(("::1", srv.addrs[2].port())).unwrap();
        c.set_read_timeout(Some(T)).unwrap();
        c.write_all(b"info").unwrap();
        let line = read_line(&mut c);
        assert!(
            line.contains("listener=2") && line.contains("remote=[::1]"),
            "{line}"
        );
    }
}

/// A callback that panics costs that event, not the worker or the connection.
#[test]
fn core_callback_panic_is_contained() {
    let port = 0;
    let srv = ServerProc::start(
        "testkit",
        &["--addr", &format!("127.0.0.1:{port}"), "--worker-num", "1"],
        port,
    );
    let mut c = connect(srv.port);
    c.write_all(b"panic").unwrap();
    // The next bytes must be a message of their own (raw framing): send them once the
    // panic was caught, i.e. once the first message was read and its callback ran.
    srv.wait_stderr("testkit: asked to panic", 1, T);
    srv.wait_stderr("callback panicked", 1, T);
    c.write_all(b"after\n").unwrap();
    assert_eq!(read_line(&mut c), "w0:after\n");
    srv.wait_titles("rswoole: worker", 1, T);
}

/// `Handle::send_parts`: the parts arrive whole and in order in both modes, also when the
/// socket takes them only in part (the rest is queued), and parts past `buffer_output_size`
/// are refused with their concatenation handed back.
#[test]
fn core_send_parts() {
    for mode in ["process", "base"] {
        let srv = ServerProc::start(
            "testkit",
            &["--addr", "127.0.0.1:0", "--mode", mode, "--worker-num", "1"],
            0,
        );
        let mut c = connect(srv.port);
        c.set_read_timeout(Some(T)).unwrap();
        // 1.8 MB in three parts: usually more than the socket takes in one `writev`.
        let n = 900_000;
        c.write_all(format!("parts {n}\n").as_bytes()).unwrap();
        let mut got = vec![0u8; 2 * n + 4];
        c.read_exact(&mut got).unwrap();
        assert!(
            got[..n].iter().all(|&b| b == b'a'),
            "mode {mode}: first part"
        );
        assert!(
            got[n..2 * n].iter().all(|&b| b == b'b'),
            "mode {mode}: second part"
        );
        assert_eq!(&got[2 * n..], b"end\n", "mode {mode}: last part");
        // More than buffer_output_size (2 MiB): refused, the joined parts come back.
        c.write_all(b"parts 2000000\n").unwrap();
        assert_eq!(read_line(&mut c), "refused 4000004\n", "mode {mode}");
    }
}

/// A client that never reads: the server's buffer for it stops at buffer_output_size and
/// `send` reports BufferFull instead of growing memory. `flood` yields between its 64 KiB
/// blocks; `flood burst` does not, so in Process mode every block is still in the worker's
/// pipe queue when the next is sent: the limit must count bytes on their way to the master,
/// not only the master's buffer (else the worker is told Ok for megabytes the master then
/// finds over the limit, and closes the connection). Then the client reads: it must get every
/// byte that `send` accepted, and the connection must still answer.
#[test]
fn core_slow_reader_is_bounded() {
    for mode in ["process", "base"] {
        let port = 0;
        let srv = ServerProc::start(
            "testkit",
            &[
                "--addr",
                &format!("127.0.0.1:{port}"),
                "--mode",
                mode,
                "--buffer-output-size",
                "1048576",
            ],
            port,
        );
        for (i, cmd) in ["flood", "flood burst"].into_iter().enumerate() {
            let mut c = connect(srv.port);
            c.write_all(cmd.as_bytes()).unwrap();
            let out = srv.wait_stdout("flood stopped after", i + 1, T);
            let sent: usize = out
                .split("flood stopped after ")
                .nth(i + 1)
                .unwrap()
                .split(' ')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            // Socket buffers take some; the rest is bounded by the 1 MiB output buffer.
            assert!(
                sent < 16 * 1024 * 1024,
                "mode {mode}, {cmd}: {sent} bytes accepted for a client that never reads"
            );
            // Everything accepted arrives, and the connection still serves.
            c.set_read_timeout(Some(T)).unwrap();
            let mut got = vec![0u8; sent];
            c.read_exact(&mut got)
                .unwrap_or_else(|e| panic!("mode {mode}, {cmd}: reading the {sent} bytes: {e}"));
            assert!(got.iter().all(|&b| b == b'x'), "mode {mode}, {cmd}");
            c.write_all(b"after").unwrap();
            let mut echo = [0u8; 8];
            c.read_exact(&mut echo).unwrap();
            assert!(
                echo[0] == b'w' && &echo[2..] == b":after",
                "mode {mode}, {cmd}: {:?}",
                String::from_utf8_lossy(&echo)
            );
        }
    }
}

/// kill -9 of a worker under load (Process mode): no connection drops, no message is lost.
#[test]
fn core_worker_kill9_under_load() {
    let port = 0;
    let srv = ServerProc::start(
        "tcp_echo",
        &["--port", &port.to_string(), "--worker-num", "2"],
        port,
    );
    let workers = srv.wait_titles("rswoole: worker", 2, T);
    const CLIENTS: u64 = 50;
    const MSGS: u64 = 400;
    let mut at_kill = 0;
    let errors = echo_clients(srv.port, CLIENTS as usize, MSGS as usize, |replies| {
        // Kill once every client is under way (some replies each, on average).
        let deadline = Instant::now() + T;
        while replies.load(Relaxed) < CLIENTS * 10 {
            assert!(Instant::now() < deadline, "the load never got going");
            std::thread::sleep(Duration::from_millis(5));
        }
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(workers[0]),
            nix::sys::signal::Signal::SIGKILL,
        )
        .expect("kill -9 the worker");
        at_kill = replies.load(Relaxed);
    });
    assert!(
        errors.is_empty(),
        "{} clients failed: {:?}",
        errors.len(),
        &errors[..errors.len().min(5)]
    );
    // The kill happened with messages still to come.
    assert!(
        at_kill < CLIENTS * MSGS,
        "the load was over before the kill"
    );
    // The manager replaced the dead worker.
    let deadline = Instant::now() + T;
    loop {
        let now = srv.with_title("rswoole: worker");
        if now.len() == 2 && !now.contains(&workers[0]) {
            break;
        }
        assert!(Instant::now() < deadline, "worker not restarted: {now:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The fd in a testkit `connect {fd} w{worker}` line, the `nth` one.
fn connect_fd(out: &str, nth: usize) -> u64 {
    out.lines()
        .filter_map(|l| l.strip_prefix("connect "))
        .nth(nth)
        .and_then(|l| l.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no connect line #{nth} in:\n{out}"))
}

/// Process mode: an event that kills every worker it reaches (`abort`) is re-delivered at
/// most `max_redeliveries` (default 3) times: after at most 4 deaths of its worker it is
/// dropped with an error log naming the connection, the server closes that connection
/// (`on_close` once), the worker is not killed again, and the other clients — on both
/// workers — keep their connections and their replies all along.
#[test]
fn core_event_that_kills_its_worker_is_dropped_after_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("srv.pid");
    let srv = ServerProc::start(
        "testkit",
        &[
            "--addr",
            "127.0.0.1:0",
            "--worker-num",
            "2",
            "--pid-file",
            pid_file.to_str().unwrap(),
        ],
        0,
    );
    srv.wait_stdout("worker-start", 2, T);
    // dispatch_mode 2: worker (fd - 1) % 2. The aborting client is the first connection.
    let mut bad = connect(srv.port);
    let bad_fd = connect_fd(&srv.wait_stdout("connect ", 1, T), 0);
    let bad_worker = (bad_fd - 1) % 2;
    // Four others: two on each worker.
    let mut good = Vec::new();
    for i in 0..4 {
        let mut c = connect(srv.port);
        roundtrip(&mut c, format!("hello{i}\n").as_bytes(), b"w");
        assert!(read_line(&mut c).ends_with(&format!(":hello{i}\n")));
        good.push(c);
    }
    let out = srv.stdout();
    let good_workers: Vec<u64> = (1..5).map(|n| (connect_fd(&out, n) - 1) % 2).collect();
    assert!(
        good_workers.contains(&bad_worker) && good_workers.iter().any(|w| *w != bad_worker),
        "the other clients are on both workers: {good_workers:?}"
    );
    // They keep echoing while the aborting event goes round.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let replies = Arc::new(AtomicU64::new(0));
    let echoers: Vec<_> = good
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            let (stop, replies) = (stop.clone(), replies.clone());
            std::thread::spawn(move || -> Result<u64, String> {
                c.set_read_timeout(Some(T)).unwrap();
                let mut k = 0u64;
                while !stop.load(Relaxed) {
                    let msg = format!("g{i}-{k}\n");
                    c.write_all(msg.as_bytes())
                        .map_err(|e| format!("client {i}: write {k}: {e}"))?;
                    let mut line = Vec::new();
                    let mut b = [0u8; 1];
                    while !line.ends_with(b"\n") {
                        match c.read(&mut b) {
                            Ok(0) => return Err(format!("client {i}: closed at {k}")),
                            Ok(_) => line.push(b[0]),
                            Err(e) => return Err(format!("client {i}: read {k}: {e}")),
                        }
                    }
                    let line = String::from_utf8_lossy(&line).into_owned();
                    if !line.ends_with(&format!(":{msg}")) {
                        return Err(format!("client {i}: got {line:?} for {msg:?}"));
                    }
                    k += 1;
                    replies.fetch_add(1, Relaxed);
                }
                Ok(k)
            })
        })
        .collect();
    bad.write_all(b"abort").unwrap();
    // The server closes the aborting connection without a reply.
    bad.set_read_timeout(Some(T)).unwrap();
    let mut buf = [0u8; 256];
    match bad.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!("reply to abort: {:?}", String::from_utf8_lossy(&buf[..n])),
        Err(e) => panic!(
            "the aborting connection was not closed ({e}); stdout:\n{}\nstderr:\n{}",
            srv.stdout(),
            srv.stderr()
        ),
    }
    let err = srv.stderr();
    let line = err
        .lines()
        .find(|l| l.contains("ERROR") && l.contains("killed its worker"))
        .unwrap_or_else(|| panic!("no error log for the dropped event:\n{err}"));
    assert!(
        line.contains(&format!("fd={bad_fd} ")) && line.contains("kind=Receive"),
        "{line}"
    );
    srv.wait_stdout(&format!("close {bad_fd} w"), 1, T);
    // The worker comes back and stays: the others (on it too) get replies after the close.
    let after = replies.load(Relaxed);
    let deadline = Instant::now() + T;
    while replies.load(Relaxed) < after + 40 {
        assert!(Instant::now() < deadline, "no replies after the close");
        std::thread::sleep(Duration::from_millis(10));
    }
    let st = wait_status(&pid_file, "both workers up", T, |v| {
        (0..2).all(|w| v["workers"][w]["state"] == "idle" || v["workers"][w]["state"] == "busy")
    });
    stop.store(true, Relaxed);
    for (i, e) in echoers.into_iter().enumerate() {
        let n = e
            .join()
            .expect("echo thread")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(n > 0, "client {i} got no reply");
    }
    let restarts = st["workers"][bad_worker as usize]["restarts"]
        .as_u64()
        .unwrap();
    assert!(
        (1..=4).contains(&restarts),
        "worker {bad_worker} restarted {restarts} times (at most 1 + 3 re-deliveries)"
    );
    assert_eq!(st["workers"][1 - bad_worker as usize]["restarts"], 0);
    let out = srv.stdout();
    assert_eq!(
        out.matches(&format!("close {bad_fd} w")).count(),
        1,
        "{out}"
    );
    assert_eq!(
        out.matches("abort ").count() as u64,
        restarts,
        "one abort per death:\n{out}"
    );
    // No more deaths once the event was dropped.
    roundtrip(&mut connect(srv.port), b"last\n", b"w");
    let again = status(&pid_file).expect("status");
    assert_eq!(
        again["workers"][bad_worker as usize]["restarts"].as_u64(),
        Some(restarts)
    );
}

/// SIGTERM: graceful stop, every child exits, the port is free at once.
#[test]
fn core_sigterm_frees_port_and_children() {
    for mode in ["process", "base"] {
        let port = 0;
        let mut srv = ServerProc::start(
            "testkit",
            &["--addr", &format!("127.0.0.1:{port}"), "--mode", mode],
            port,
        );
        let port = srv.port;
        let mut c = connect(port);
        roundtrip(&mut c, b"x\n", b"w");
        srv.wait_titles("rswoole: worker", 2, T);
        let kids = srv.descendants();
        assert!(kids.len() >= 3, "manager + 2 workers: {kids:?}");
        assert!(srv.stop(T).success());
        for k in kids {
            assert!(!alive(k), "child {k} outlived the master");
        }
        let out = srv.stdout();
        assert_eq!(out.matches("worker-stop").count(), 2, "{out}");
        assert!(out.contains("shutdown"), "{out}");
        TcpListener::bind(("127.0.0.1", port)).expect("port free right after stop");
    }
}

/// If the master is SIGKILLed, the manager and workers notice and exit (no orphans).
#[test]
fn core_master_kill9_leaves_no_orphans() {
    let port = 0;
    let mut srv = ServerProc::start(
        "tcp_echo",
        &["--port", &port.to_string(), "--worker-num", "2"],
        port,
    );
    srv.wait_titles("rswoole: worker", 2, T);
    let kids = srv.descendants();
    assert_eq!(kids.len(), 3);
    srv.signal(9);
    srv.wait_exit(T).unwrap();
    let deadline = Instant::now() + T;
    while kids.iter().any(|k| alive(*k)) {
        assert!(Instant::now() < deadline, "orphans left: {kids:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
