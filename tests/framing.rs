//! Stream framing (EOF and length prefix), package_max_length, uid dispatch, connections()
//! with several workers, send_message between workers, and the clients against real servers.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rswoole::client::{Client, ClientConfig, ClientError, SyncClient};
use rswoole::{Framing, LengthSpec, LengthType, SockType};
use rswoole_codec::stream::encode_length;

use crate::util::*;

const T: Duration = Duration::from_secs(20);
const MODES: [&str; 2] = ["process", "base"];

fn len_frame(spec: &LengthSpec, body: &[u8]) -> Vec<u8> {
    let mut b = BytesMut::new();
    encode_length(spec, body, &mut b).unwrap();
    b.to_vec()
}

/// Writes `data` one byte at a time (flush + a short sleep each, so they arrive apart).
fn write_bytewise(s: &mut TcpStream, data: &[u8]) {
    for b in data {
        s.write_all(std::slice::from_ref(b)).unwrap();
        s.flush().unwrap();
        std::thread::sleep(Duration::from_micros(300));
    }
}

/// Starts `framed_echo` (flag `--port`) or `testkit` (flag `--addr`) on port 0 (`srv.port`
/// is the one it bound).
fn start(example: &str, args: &[&str]) -> ServerProc {
    let port = 0;
    let flag = if example == "testkit" {
        vec!["--addr".to_string(), format!("127.0.0.1:{port}")]
    } else {
        vec!["--port".to_string(), port.to_string()]
    };
    let mut all: Vec<&str> = flag.iter().map(String::as_str).collect();
    all.extend_from_slice(args);
    ServerProc::start(example, &all, port)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// framed_echo, EOF framing: a message a byte at a time, 100 in one write, a message split
/// across writes, both modes.
#[test]
fn framing_eof_fragmented_and_coalesced() {
    for mode in MODES {
        let srv = start(
            "framed_echo",
            &["--mode", mode, "--worker-num", "2", "--framing", "eof"],
        );
        let mut c = connect(srv.port);
        write_bytewise(&mut c, b"hello there\r\n");
        assert_eq!(
            text(&read_n(&mut c, 21)),
            "Server: hello there\r\n",
            "{mode}"
        );
        let mut all = Vec::new();
        let mut want = String::new();
        for i in 0..100 {
            all.extend_from_slice(format!("m{i}\r\n").as_bytes());
            want.push_str(&format!("Server: m{i}\r\n"));
        }
        c.write_all(&all).unwrap();
        assert_eq!(text(&read_n(&mut c, want.len())), want, "{mode}");
        c.write_all(b"spl").unwrap();
        std::thread::sleep(Duration::from_millis(20));
        c.write_all(b"it\r\nnext\r\n").unwrap();
        let want = "Server: split\r\nServer: next\r\n";
        assert_eq!(text(&read_n(&mut c, want.len())), want, "{mode}");
    }
}

/// framed_echo, length framing (`N`, body at 4): the same deliveries, both modes.
#[test]
fn framing_length_fragmented_and_coalesced() {
    let spec = LengthSpec::new(LengthType::U32Be, 0, 4);
    for mode in MODES {
        let srv = start(
            "framed_echo",
            &["--mode", mode, "--worker-num", "2", "--framing", "length"],
        );
        let mut c = connect(srv.port);
        write_bytewise(&mut c, &len_frame(&spec, b"hello"));
        let want = len_frame(&spec, b"Server: hello");
        assert_eq!(read_n(&mut c, want.len()), want, "{mode}");
        let (mut all, mut want) = (Vec::new(), Vec::new());
        for i in 0..100 {
            // Some bodies hold bytes that would confuse a line protocol.
            let body = format!("m{i}\r\n\0{}", "x".repeat(i));
            all.extend(len_frame(&spec, body.as_bytes()));
            want.extend(len_frame(&spec, format!("Server: {body}").as_bytes()));
        }
        c.write_all(&all).unwrap();
        assert_eq!(read_n(&mut c, want.len()), want, "{mode}");
        // An empty body, and a 1 MiB one.
        let big = vec![b'z'; 1 << 20];
        let mut msg = len_frame(&spec, b"");
        msg.extend(len_frame(&spec, &big));
        c.write_all(&msg).unwrap();
        let mut want = len_frame(&spec, b"Server: ");
        want.extend(len_frame(&spec, &[b"Server: ".as_slice(), &big].concat()));
        assert_eq!(read_n(&mut c, want.len()), want, "{mode}");
    }
}

/// Every length type (`pack()` code), with different offsets, through testkit: a fragmented
/// and a coalesced delivery each; replies framed the same way.
#[test]
fn framing_each_length_type() {
    let cases: &[(&str, &[&str])] = &[
        (
            "process",
            &[
                "C:0:1", "n:2:4", "N:0:0", "V:1:6", "J:0:8", "l:0:4", "Q:0:8",
            ],
        ),
        (
            "base",
            &[
                "c:0:1", "S:0:2", "v:0:0", "s:1:3", "L:0:4", "q:0:8", "P:2:12",
            ],
        ),
    ];
    for (mode, specs) in cases {
        for s in *specs {
            let arg = format!("length:{s}");
            let framing = rswoole::cli::parse_framing(&arg).unwrap();
            let Framing::Length(spec) = framing else {
                unreachable!()
            };
            let srv = start(
                "testkit",
                &["--mode", mode, "--worker-num", "1", "--framing", &arg],
            );
            let mut c = connect(srv.port);
            write_bytewise(&mut c, &len_frame(&spec, b"hi"));
            let want = len_frame(&spec, b"w0:hi");
            assert_eq!(read_n(&mut c, want.len()), want, "{mode} {arg}");
            let (mut all, mut want) = (Vec::new(), Vec::new());
            for i in 0..30 {
                all.extend(len_frame(&spec, format!("m{i}").as_bytes()));
                want.extend(len_frame(&spec, format!("w0:m{i}").as_bytes()));
            }
            c.write_all(&all).unwrap();
            assert_eq!(read_n(&mut c, want.len()), want, "{mode} {arg}");
        }
    }
}

/// A message over package_max_length closes that connection (logged); the server keeps
/// serving the others. Length and EOF framing, both modes.
#[test]
fn framing_oversize_message_closes_only_that_connection() {
    let spec = LengthSpec::new(LengthType::U32Be, 0, 4);
    for mode in MODES {
        for framing in ["length", "eof"] {
            let srv = start(
                "testkit",
                &[
                    "--mode",
                    mode,
                    "--worker-num",
                    "2",
                    "--framing",
                    framing,
                    "--package-max-length",
                    "1024",
                ],
            );
            let frame = |body: &[u8]| -> Vec<u8> {
                if framing == "length" {
                    len_frame(&spec, body)
                } else {
                    [body, b"\r\n"].concat()
                }
            };
            let mut good = connect(srv.port);
            let mut bad = connect(srv.port);
            good.write_all(&frame(b"before")).unwrap();
            let want = frame(b"w0:before");
            let got = read_n(&mut good, want.len());
            assert!(
                text(&got).contains("before"),
                "{mode} {framing}: {}",
                text(&got)
            );
            // The oversize message: a declared length beyond the limit, or 2 KiB without EOF.
            let oversize = if framing == "length" {
                5000u32.to_be_bytes().to_vec()
            } else {
                vec![b'a'; 2048]
            };
            bad.write_all(&oversize).unwrap();
            let mut rest = Vec::new();
            let r = bad.read_to_end(&mut rest);
            assert!(
                r.is_ok() && rest.is_empty(),
                "{mode} {framing}: {r:?} {rest:?}"
            );
            let deadline = Instant::now() + T;
            while !srv.stderr().contains("package_max_length") {
                assert!(
                    Instant::now() < deadline,
                    "no log line; stderr:\n{}",
                    srv.stderr()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            // The others are served, old and new.
            good.write_all(&frame(b"after")).unwrap();
            let got = read_n(&mut good, want.len() - 1);
            assert!(
                text(&got).contains("after"),
                "{mode} {framing}: {}",
                text(&got)
            );
            let mut fresh = connect(srv.port);
            fresh.write_all(&frame(b"fresh")).unwrap();
            let got = read_n(&mut fresh, want.len() - 1);
            assert!(text(&got).contains("fresh"), "{mode} {framing}");
        }
    }
}

/// Reads one `\r\n`-terminated line.
fn read_crlf(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut b = [0u8; 1];
    while !out.ends_with(b"\r\n") {
        match s.read(&mut b) {
            Ok(0) => panic!("closed after {:?}", text(&out)),
            Ok(_) => out.push(b[0]),
            Err(e) => panic!("read: {e} after {:?}", text(&out)),
        }
    }
    out.truncate(out.len() - 2);
    text(&out)
}

fn line_cmd(s: &mut TcpStream, cmd: &str) -> String {
    s.write_all(format!("{cmd}\r\n").as_bytes()).unwrap();
    read_crlf(s)
}

/// dispatch_mode 5: after `bind(fd, uid)` every event of the connection goes to worker
/// `uid % worker_num`; a second bind fails; unbound connections stay fixed by fd.
#[test]
fn framing_uid_dispatch_routes_to_one_worker() {
    let srv = start(
        "testkit",
        &[
            "--worker-num",
            "3",
            "--dispatch-mode",
            "5",
            "--framing",
            "eof",
        ],
    );
    let mut clients: Vec<(TcpStream, u32)> = Vec::new();
    for uid in [7u32, 8, 9, 10, 11, 3001] {
        let mut c = connect(srv.port);
        let first = line_cmd(&mut c, "whoami");
        assert!(first.starts_with('w'), "{first}");
        assert_eq!(
            line_cmd(&mut c, &format!("bind {uid}")),
            format!("bound {uid} true")
        );
        assert_eq!(line_cmd(&mut c, "bind 99"), "bound 99 false");
        clients.push((c, uid));
    }
    for round in 0..10 {
        for (c, uid) in &mut clients {
            assert_eq!(
                line_cmd(c, "whoami"),
                format!("w{}", *uid % 3),
                "uid {uid}, round {round}"
            );
        }
    }
    // Pipelined events after the bind all land on the uid's worker, in order.
    let (c, uid) = &mut clients[0];
    c.write_all(b"a\r\nb\r\nc\r\n").unwrap();
    for x in ["a", "b", "c"] {
        assert_eq!(read_crlf(c), format!("w{}:{x}", *uid % 3));
    }
    // An unbound connection keeps one worker (fixed by fd).
    let mut u = connect(srv.port);
    let w = line_cmd(&mut u, "whoami");
    for _ in 0..5 {
        assert_eq!(line_cmd(&mut u, "whoami"), w);
    }
    // `bind 0` is refused.
    assert_eq!(line_cmd(&mut u, "bind 0"), "bound 0 false");
}

/// connections() lists every connection whichever worker holds it, and a broadcast loop over
/// it reaches every client, with 2 workers, in both modes (Base: other workers' connections
/// through send_message).
#[test]
fn framing_connections_and_broadcast_two_workers() {
    for mode in MODES {
        let srv = start(
            "testkit",
            &["--mode", mode, "--worker-num", "2", "--framing", "eof"],
        );
        // Connect until both workers hold clients (at least 8 connections). Base mode: the
        // kernel spreads SO_REUSEPORT connections by a hash, so 8 may all land on one worker
        // (1 time in 128); more connections make that vanishingly rare.
        let mut cs: Vec<TcpStream> = Vec::new();
        let mut workers = std::collections::BTreeSet::new();
        while cs.len() < 8 || (workers.len() < 2 && cs.len() < 64) {
            let mut c = connect(srv.port);
            workers.insert(line_cmd(&mut c, "whoami"));
            cs.push(c);
        }
        assert_eq!(workers.len(), 2, "{mode}: {workers:?}");
        let n = cs.len();
        // Every connection is known, to every client, whichever worker holds it.
        for (k, c) in cs.iter_mut().enumerate() {
            assert_eq!(
                line_cmd(c, "conns"),
                format!("conns={n}"),
                "{mode} client {k}"
            );
        }
        cs[3].write_all(b"broadcast hello all\r\n").unwrap();
        for (k, c) in cs.iter_mut().enumerate() {
            let mut lines = vec![read_crlf(c)];
            if k == 3 {
                lines.push(read_crlf(c));
                lines.sort();
                assert_eq!(lines[0], "hello all", "{mode}");
                assert!(lines[1].starts_with("sent "), "{mode}: {lines:?}");
            } else {
                assert_eq!(lines, ["hello all"], "{mode} client {k}");
            }
        }
        // After some close, the list shrinks.
        cs.truncate(5);
        let deadline = Instant::now() + T;
        loop {
            let got = line_cmd(&mut cs[0], "conns");
            if got == "conns=5" {
                break;
            }
            assert!(Instant::now() < deadline, "{mode}: {got}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// send_message: worker → (master →) worker, on_pipe_message gets the sender id; a message
/// larger than one IPC record arrives whole.
#[test]
fn framing_send_message_between_workers() {
    for mode in MODES {
        let srv = start(
            "testkit",
            &["--mode", mode, "--worker-num", "2", "--framing", "eof"],
        );
        let mut c = connect(srv.port);
        let me = line_cmd(&mut c, "whoami");
        let other = if me == "w0" { 1 } else { 0 };
        let me_id = &me[1..];
        for (k, target) in [other, 0, 1].into_iter().enumerate() {
            let msg = format!("hello {k}");
            c.write_all(format!("sendmsg {target} {msg}\r\n").as_bytes())
                .unwrap();
            let line = format!("pipe-message w{target} from w{me_id}: {msg}");
            srv.wait_stdout(&line, 1, T);
            // Base mode: only the owner of the connection can reply to it.
            if mode == "process" || me == format!("w{target}") {
                assert_eq!(
                    read_crlf(&mut c),
                    format!("pipe w{target} from w{me_id}: {msg}")
                );
            }
        }
        // 300 KB: chunked over the pipe (Process) or the mailbox (Base).
        let big = "y".repeat(300_000);
        c.write_all(format!("sendmsg {other} {big}\r\n").as_bytes())
            .unwrap();
        srv.wait_stdout(&format!("from w{me_id}: {big}"), 1, T);
        if mode == "process" {
            assert_eq!(
                read_crlf(&mut c),
                format!("pipe w{other} from w{me_id}: {big}")
            );
        }
        // A bad worker id fails the callback (logged), the server goes on.
        c.write_all(b"sendmsg 9 nobody\r\n").unwrap();
        assert_eq!(line_cmd(&mut c, "whoami"), me);
        let deadline = Instant::now() + T;
        while !srv.stderr().contains("no worker 9") {
            assert!(Instant::now() < deadline, "stderr:\n{}", srv.stderr());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn length_config() -> ClientConfig {
    ClientConfig {
        framing: Framing::Length(LengthSpec::new(LengthType::U32Be, 0, 4)),
        ..Default::default()
    }
}

/// SyncClient against framed_echo (length), both modes; and raw against tcp_echo.
#[test]
fn framing_sync_client_against_server() {
    for mode in MODES {
        let srv = start(
            "framed_echo",
            &["--mode", mode, "--worker-num", "2", "--framing", "length"],
        );
        let addr = format!("127.0.0.1:{}", srv.port);
        let mut c =
            SyncClient::connect_with(SockType::Tcp, addr.as_str(), T, length_config()).unwrap();
        for i in 0..20 {
            let body = format!("msg {i}");
            c.send_frame(body.as_bytes()).unwrap();
            let got = c.recv().unwrap();
            assert_eq!(text(&got[4..]), format!("Server: {body}"), "{mode}");
        }
        // Pipelined: 50 frames in one send, 50 whole replies.
        let mut all = Vec::new();
        let spec = LengthSpec::new(LengthType::U32Be, 0, 4);
        for i in 0..50 {
            all.extend(len_frame(&spec, format!("p{i}").as_bytes()));
        }
        c.send(&all).unwrap();
        for i in 0..50 {
            assert_eq!(text(&c.recv().unwrap()[4..]), format!("Server: p{i}"));
        }
        c.set_timeout(Duration::from_millis(100));
        assert!(matches!(c.recv(), Err(ClientError::Timeout)));
        c.close();
        assert!(matches!(c.send(b"x"), Err(ClientError::Closed)));
    }
    let srv = start("tcp_echo", &["--worker-num", "1"]);
    let mut c = SyncClient::connect(("127.0.0.1", srv.port), T).unwrap();
    c.send(b"raw").unwrap();
    assert_eq!(text(&c.recv().unwrap()), "Server: raw");
}

/// The async Client against framed_echo (EOF) and udp_echo, both modes.
#[test]
fn framing_async_client_against_server() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for mode in MODES {
        let srv = start(
            "framed_echo",
            &["--mode", mode, "--worker-num", "2", "--framing", "eof"],
        );
        let port = srv.port;
        rt.block_on(async move {
            let config = ClientConfig {
                framing: Framing::Eof {
                    eof: b"\r\n".to_vec(),
                    split: true,
                },
                ..Default::default()
            };
            let mut cs = Vec::new();
            for _ in 0..10 {
                cs.push(
                    Client::connect_with(SockType::Tcp, ("127.0.0.1", port), T, config.clone())
                        .await
                        .unwrap(),
                );
            }
            for round in 0..5 {
                for (k, c) in cs.iter_mut().enumerate() {
                    c.send_frame(format!("c{k} r{round}").as_bytes())
                        .await
                        .unwrap();
                }
                for (k, c) in cs.iter_mut().enumerate() {
                    let got = c.recv().await.unwrap();
                    assert_eq!(text(&got), format!("Server: c{k} r{round}\r\n"), "{mode}");
                }
            }
            for c in &mut cs {
                c.close().await;
            }
        });
        let port = 0;
        let u = ServerProc::start(
            "udp_echo",
            &[
                "--port",
                &port.to_string(),
                "--mode",
                mode,
                "--worker-num",
                "2",
            ],
            port,
        );
        let port = u.port;
        rt.block_on(async move {
            let mut c = Client::connect_udp(("127.0.0.1", port), Duration::from_millis(300))
                .await
                .unwrap();
            // The server is ready (its socket is bound), but a datagram or its answer may be
            // lost, or slow on a loaded machine: resend on a timeout, within a deadline.
            let deadline = Instant::now() + T;
            loop {
                c.send(b"ping").await.unwrap();
                match c.recv().await {
                    Ok(got) => {
                        assert_eq!(text(&got), "Server: ping", "{mode}");
                        break;
                    }
                    Err(ClientError::Timeout) if Instant::now() < deadline => {}
                    Err(e) => panic!("{mode}: {e}"),
                }
            }
        });
    }
}

/// examples/tcp_client talks to examples/tcp_echo.
#[test]
fn framing_tcp_client_example() {
    let srv = start("tcp_echo", &["--worker-num", "1"]);
    let out = std::process::Command::new(example("tcp_client"))
        .args([
            "--addr",
            &format!("127.0.0.1:{}", srv.port),
            "--message",
            "hi there",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "Server: hi there\n");
}

/// A callback that waits (`sleep 150`) holds back the connection's next messages: they were
/// sent right behind it, and their replies come after its reply, in order. (Callbacks that
/// finish at once run without a task of their own; one that waits becomes a task and the
/// connection's later events queue behind it.) Both modes.
#[test]
fn framing_waiting_callback_keeps_connection_order() {
    for mode in MODES {
        let srv = start(
            "testkit",
            &["--mode", mode, "--worker-num", "1", "--framing", "eof"],
        );
        let mut c = connect(srv.port);
        c.set_read_timeout(Some(T)).unwrap();
        let mut burst = b"sleep 150\r\n".to_vec();
        for i in 0..20 {
            burst.extend_from_slice(format!("m{i}\r\n").as_bytes());
        }
        c.write_all(&burst).unwrap();
        assert_eq!(read_crlf(&mut c), "slept 150 w0\n", "{mode}");
        for i in 0..20 {
            assert_eq!(read_crlf(&mut c), format!("w0:m{i}"), "{mode}");
        }
        // And again with the messages in separate writes, behind a shorter wait.
        c.write_all(b"sleep 50\r\n").unwrap();
        for i in 0..5 {
            std::thread::sleep(Duration::from_millis(5));
            c.write_all(format!("n{i}\r\n").as_bytes()).unwrap();
        }
        assert_eq!(read_crlf(&mut c), "slept 50 w0\n", "{mode}");
        for i in 0..5 {
            assert_eq!(read_crlf(&mut c), format!("w0:n{i}"), "{mode}");
        }
    }
}
