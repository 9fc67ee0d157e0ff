//! The reference peer for the HTTP/2 benchmark: hyper 1.x serving HTTP/2 with prior knowledge
//! (h2c), answering `Hello World`, on a multi-thread runtime with `threads` workers.
//!
//! `cargo run --release --example peer_hyper_h2_hello -- 127.0.0.1:9700 [threads]`
use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http2;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9700".into());
    let threads: usize = std::env::args()
        .nth(2)
        .and_then(|t| t.parse().ok())
        .unwrap_or(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let l = tokio::net::TcpListener::bind(&addr).await?;
        loop {
            let (s, _) = l.accept().await?;
            let _ = s.set_nodelay(true);
            tokio::spawn(async move {
                let svc = service_fn(|_req: Request<hyper::body::Incoming>| async {
                    let mut r = Response::new(Full::new(Bytes::from_static(b"Hello World")));
                    r.headers_mut()
                        .insert("content-type", "text/plain".parse().expect("valid"));
                    Ok::<_, Infallible>(r)
                });
                let _ = http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    })
}
