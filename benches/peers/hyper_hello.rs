//! The reference peer for the HTTP benchmark: a minimal hyper 1.x server answering
//! `Hello World` with keep-alive, on a multi-thread runtime with `threads` workers.
//!
//! `cargo run --release --example peer_hyper_hello -- 127.0.0.1:9700 [threads]`
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

#[path = "common.rs"]
mod common;

fn main() -> std::io::Result<()> {
    let args = common::Args::parse("127.0.0.1:9700");
    common::run(&args, |s| async move {
        let _ = http1::Builder::new()
            .serve_connection(TokioIo::new(s), service_fn(common::hello))
            .await;
    })
}
