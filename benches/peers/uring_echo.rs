//! The io_uring peer of the TCP echo benchmark (issue 20, "io_uring trial"): the one-thread
//! io_uring loop of `uring_loop.rs` (multishot accept and recv, a provided-buffer ring,
//! batched submissions) echoing what it receives. Measured against `peer_tokio_echo` by
//! `scripts/bench_uring.sh`.
//!
//! `cargo run --release --example peer_uring_echo -- 127.0.0.1:9600 [uring]`
//! `[uring|uring-1shot|epoll]` after the address: single-shot recv, or the same handler on the
//! plain epoll loop (the control).

#[path = "epoll_loop.rs"]
mod epoll_loop;
#[path = "uring_loop.rs"]
mod uring_loop;

struct Echo;

impl uring_loop::Handler for Echo {
    type State = ();
    fn on_data(&mut self, _: &mut (), data: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(data);
    }
}

fn main() -> std::io::Result<()> {
    uring_loop::run("127.0.0.1:9600", Echo)
}
