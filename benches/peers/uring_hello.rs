//! The io_uring peer of the HTTP hello benchmark (issue 20, "io_uring trial"): the
//! one-thread io_uring loop of `uring_loop.rs` answering every request (a head ending in an
//! empty line; requests without a body, as wrk sends them, pipelined or not) with the same
//! keep-alive `Hello World` response as `peer_hyper_hello` (status line, content-type,
//! content-length, a date refreshed once a second). Not an HTTP parser: the upper bound of
//! the I/O part, measured against hyper by `scripts/bench_uring.sh`.
//!
//! `cargo run --release --example peer_uring_hello -- 127.0.0.1:9700 [uring]`
//! `[uring|uring-1shot|epoll]` after the address: single-shot recv, or the same handler on the
//! plain epoll loop (the control).

use std::time::{Duration, Instant, SystemTime};

#[path = "epoll_loop.rs"]
mod epoll_loop;
#[path = "uring_loop.rs"]
mod uring_loop;

struct Hello {
    response: Vec<u8>,
    at: Instant,
}

impl Hello {
    fn new() -> Hello {
        let mut h = Hello {
            response: Vec::new(),
            at: Instant::now(),
        };
        h.refresh();
        h
    }

    fn refresh(&mut self) {
        self.at = Instant::now();
        self.response.clear();
        self.response.extend_from_slice(
            format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 11\r\ndate: {}\r\n\r\nHello World",
                httpdate::fmt_http_date(SystemTime::now())
            )
            .as_bytes(),
        );
    }
}

impl uring_loop::Handler for Hello {
    /// How much of the `\r\n\r\n` ending a request head has been seen (0..=3).
    type State = u8;

    fn on_data(&mut self, seen: &mut u8, data: &[u8], out: &mut Vec<u8>) {
        for &b in data {
            *seen = match (*seen, b) {
                (0 | 2, b'\r') => *seen + 1,
                (1, b'\n') => 2,
                (3, b'\n') => {
                    out.extend_from_slice(&self.response);
                    0
                }
                (_, b'\r') => 1,
                _ => 0,
            };
        }
    }

    fn tick(&mut self) {
        if self.at.elapsed() >= Duration::from_secs(1) {
            self.refresh();
        }
    }
}

fn main() -> std::io::Result<()> {
    uring_loop::run("127.0.0.1:9700", Hello::new())
}
