//! The reference peer for `rswoole bench tcp-echo`: a minimal tokio echo server (a task per
//! connection, read then write back), as a Rust user would write it.
//!
//! `cargo run --release --example peer_tokio_echo -- 127.0.0.1:9600 [threads]`
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[path = "common.rs"]
mod common;

fn main() -> std::io::Result<()> {
    let args = common::Args::parse("127.0.0.1:9600");
    common::run(&args, |mut s| async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if s.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            }
        }
    })
}
