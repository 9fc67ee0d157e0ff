//! Idle connections without a task (`park_idle_after`): with `--park-idle-after-ms 0` every
//! connection parks as soon as it is idle, so each message below reaches a parked connection
//! that must be woken up by its socket, and each reply and close goes through a task started
//! again for it. Both modes; the WebSocket case is in `websocket.rs`.

use std::io::{Read, Write};

use crate::util::*;

fn start(example: &str, mode: &str) -> ServerProc {
    let args = [
        "--port",
        "0",
        "--mode",
        mode,
        "--worker-num",
        "1",
        "--park-idle-after-ms",
        "0",
    ];
    ServerProc::start(example, &args, 0)
}

/// TCP echo: many connections, each used again after it parked, then closed by the client
/// (the server sees the FIN of a parked connection: `on_close`, the socket closes).
#[test]
fn idle_parked_tcp_connections_echo_and_close() {
    for mode in ["process", "base"] {
        let srv = start("tcp_echo", mode);
        let mut conns: Vec<_> = (0..50).map(|_| connect(srv.port)).collect();
        for round in 0..3 {
            for (i, c) in conns.iter_mut().enumerate() {
                let msg = format!("{mode} round {round} conn {i}");
                roundtrip(c, msg.as_bytes(), format!("Server: {msg}").as_bytes());
            }
        }
        for c in &mut conns {
            c.shutdown(std::net::Shutdown::Write).unwrap();
            let mut rest = Vec::new();
            c.read_to_end(&mut rest).unwrap();
            assert!(rest.is_empty(), "{mode}: {rest:?}");
        }
        // on_close ran for each (the example prints a line per close).
        srv.wait_stdout("Client: Close.", 50, std::time::Duration::from_secs(10));
    }
}

/// HTTP keep-alive: each request of a connection arrives while it is parked; a request in two
/// pieces (nothing parks while a head is partial) is answered whole.
#[test]
fn idle_parked_http_keepalive_requests() {
    for mode in ["process", "base"] {
        let srv = start("http_hello", mode);
        let mut conns: Vec<_> = (0..20).map(|_| connect(srv.port)).collect();
        for _round in 0..3 {
            for c in conns.iter_mut() {
                c.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
                let r = read_http_response(c);
                assert!(r.starts_with("HTTP/1.1 200"), "{mode}: {r}");
            }
        }
        let c = &mut conns[0];
        c.write_all(b"GET / HTTP/1.1\r\nHo").unwrap();
        c.write_all(b"st: t\r\n\r\n").unwrap();
        let r = read_http_response(c);
        assert!(r.starts_with("HTTP/1.1 200"), "{mode}: {r}");
    }
}

/// Reads one response with a Content-Length body.
fn read_http_response(c: &mut std::net::TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let len = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                assert_eq!(buf.len(), end + 4 + len, "nothing more than one response");
                return String::from_utf8_lossy(&buf).to_string();
            }
        }
        let n = c.read(&mut chunk).expect("read a response");
        assert!(n > 0, "the server closed the connection");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The master's resident shared memory (`RssShmem`, KiB): the connection table's pages it
/// touched, among others.
fn rss_shmem_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("RssShmem:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// After a burst of connections closes, the shared connection table's pages that hold no
/// connection go back to the kernel (Process mode: the master owns the connections and their
/// slots). 2,000 connections touch 156 KiB of slots; once they are closed, the master's
/// resident shared memory comes back to what it was before them (a page or two of slack).
#[test]
fn idle_connection_table_pages_go_back_after_a_burst() {
    let srv = start("tcp_echo", "process");
    let pid = srv.pid();
    let mut c = connect(srv.port);
    roundtrip(&mut c, b"warm", b"Server: warm");
    let before = rss_shmem_kib(pid);
    let mut conns: Vec<_> = (0..2000).map(|_| connect(srv.port)).collect();
    for c in conns.iter_mut().step_by(100) {
        roundtrip(c, b"x", b"Server: x");
    }
    // Every slot was written by the master as it accepted (the last connection echoed).
    roundtrip(conns.last_mut().unwrap(), b"y", b"Server: y");
    let during = rss_shmem_kib(pid);
    assert!(
        during >= before + 120,
        "slots resident: {before} -> {during} KiB"
    );
    drop(conns);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let now = rss_shmem_kib(pid);
        if now <= before + 24 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "shared memory not given back: {before} -> {during} -> {now} KiB"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // The server still serves.
    roundtrip(&mut c, b"after", b"Server: after");
}
