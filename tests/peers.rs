//! The io_uring trial's peers (issue 20, `benches/peers/uring_loop.rs` and `epoll_loop.rs`):
//! `scripts/bench_uring.sh` compares their CPU per request, so they must answer correctly —
//! every byte echoed in order (also when a send is short and a read spans many provided
//! buffers), every pipelined HTTP request answered even when its head arrives in pieces, and
//! a client vanishing mid-stream leaves the loop serving the others. Each loop: io_uring
//! with multishot recv, with single-shot recv, and plain epoll.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::util::{free_port, ServerProc};

const LIMIT: Duration = Duration::from_secs(20);

fn loops() -> Vec<&'static str> {
    let disabled =
        std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled").unwrap_or_default();
    if matches!(disabled.trim(), "" | "0") {
        vec!["uring", "uring-1shot", "epoll"]
    } else {
        // a kernel with io_uring turned off: the io_uring loops would refuse to start
        eprintln!(
            "io_uring disabled here ({}): testing the epoll loop only",
            disabled.trim()
        );
        vec!["epoll"]
    }
}

fn start(example: &str, mode: &str) -> (ServerProc, TcpStream) {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let s = ServerProc::spawn(example, &[&addr, mode], port);
    s.wait_listening(1, LIMIT);
    let c = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    c.set_read_timeout(Some(LIMIT)).unwrap();
    (s, c)
}

#[test]
fn raw_loop_peers_echo_every_byte_in_order() {
    for mode in loops() {
        let (s, mut c) = start("peer_uring_echo", mode);
        // a client that sends and vanishes without reading must not stop the loop
        let mut gone = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
        gone.write_all(&[7u8; 100_000]).unwrap();
        drop(gone);
        // 2 MiB written while reading: many provided buffers per direction, short sends
        let data: Vec<u8> = (0..2 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
        let mut w = c.try_clone().unwrap();
        let sent = data.clone();
        let writer = std::thread::spawn(move || {
            for chunk in sent.chunks(7_000) {
                w.write_all(chunk).unwrap();
            }
        });
        let mut got = vec![0u8; data.len()];
        c.read_exact(&mut got)
            .unwrap_or_else(|e| panic!("{mode}: {e}; stderr:\n{}", s.stderr()));
        writer.join().unwrap();
        assert!(got == data, "{mode}: the echo differs from what was sent");
        // end of stream: the server closes its side too
        c.shutdown(std::net::Shutdown::Write).unwrap();
        let mut rest = Vec::new();
        c.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty(), "{mode}: bytes after the echo");
    }
}

#[test]
fn raw_loop_peers_answer_every_pipelined_request() {
    for mode in loops() {
        let (s, mut c) = start("peer_uring_hello", mode);
        // three requests; the second's head ends in the next write, mid-terminator, and that
        // write goes only once the first answer is back (so the server has read the first)
        c.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r")
            .unwrap();
        let mut got = Vec::new();
        read_answers(&mut c, &mut got, 1, mode, &s);
        c.write_all(b"\nGET /3 HTTP/1.1\r\nHost: a\r\n\r\n")
            .unwrap();
        read_answers(&mut c, &mut got, 3, mode, &s);
        let text = String::from_utf8(got).unwrap();
        assert_eq!(
            text.matches("HTTP/1.1 200 OK\r\n").count(),
            3,
            "{mode}: {text}"
        );
        assert!(
            text.contains("content-length: 11\r\n") && text.contains("\r\ndate: "),
            "{mode}: {text}"
        );
        assert!(text.ends_with("\r\n\r\nHello World"), "{mode}: {text}");
    }
}

/// Reads until `got` holds `n` answers.
fn read_answers(c: &mut TcpStream, got: &mut Vec<u8>, n: usize, mode: &str, s: &ServerProc) {
    let mut buf = [0u8; 4096];
    while got.windows(11).filter(|w| w == b"Hello World").count() < n {
        let r = c.read(&mut buf).unwrap_or_else(|e| {
            panic!(
                "{mode}: {e}; got {:?}; stderr:\n{}",
                String::from_utf8_lossy(got),
                s.stderr()
            )
        });
        assert!(
            r > 0,
            "{mode}: closed after {:?}",
            String::from_utf8_lossy(got)
        );
        got.extend_from_slice(&buf[..r]);
    }
}

#[test]
fn raw_loop_peers_refuse_an_unknown_loop() {
    let port = free_port();
    let mut s = ServerProc::spawn(
        "peer_uring_echo",
        &[&format!("127.0.0.1:{port}"), "kqueue"],
        port,
    );
    let st = s.wait_exit(LIMIT).expect("exits");
    assert!(!st.success());
    assert!(
        // `main`'s error is printed with Debug: the quotes come escaped
        s.stderr().contains("unknown loop") && s.stderr().contains("kqueue"),
        "{}",
        s.stderr()
    );
}
