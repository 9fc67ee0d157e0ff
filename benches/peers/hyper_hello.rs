//! The reference peer for the HTTP benchmark: a minimal hyper 1.x server answering
//! `Hello World` (keep-alive, one current-thread runtime per `threads`... here a multi-thread
//! runtime with `threads` workers).
//!
//! `cargo run --release --example peer_hyper_hello -- 127.0.0.1:9700 [threads]`
use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

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
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    })
}
