//! The reference peer for the HTTP/2 benchmark: hyper 1.x serving HTTP/2 with prior knowledge
//! (h2c), answering `Hello World`, on a multi-thread runtime with `threads` workers.
//!
//! `cargo run --release --example peer_hyper_h2_hello -- 127.0.0.1:9700 [threads]`
use hyper::server::conn::http2;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};

#[path = "common.rs"]
mod common;

fn main() -> std::io::Result<()> {
    let args = common::Args::parse("127.0.0.1:9700");
    common::run(&args, |s| async move {
        let _ = http2::Builder::new(TokioExecutor::new())
            .serve_connection(TokioIo::new(s), service_fn(common::hello))
            .await;
    })
}
