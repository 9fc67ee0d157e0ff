//! What every reference peer shares (included by `#[path]`): the arguments
//! `ADDR [THREADS] [MORE...]`, a multi-thread tokio runtime with THREADS workers (1 by
//! default, the benchmarks pin the server to one core), and an accept loop that sets
//! TCP_NODELAY and spawns one task per connection, as a Rust user would write it.
#![allow(dead_code)] // each peer uses a part

use std::future::Future;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response};
use tokio::net::TcpStream;

/// A peer's command line: `ADDR [THREADS] [MORE...]`.
pub(crate) struct Args {
    pub(crate) addr: String,
    pub(crate) threads: usize,
    /// What follows THREADS (certificate paths for the TLS peer).
    pub(crate) more: Vec<String>,
}

impl Args {
    pub(crate) fn parse(default_addr: &str) -> Args {
        let mut it = std::env::args().skip(1);
        let addr = it.next().unwrap_or_else(|| default_addr.into());
        let threads = it.next().and_then(|t| t.parse().ok()).unwrap_or(1);
        Args {
            addr,
            threads,
            more: it.collect(),
        }
    }

    /// The `i`-th argument after THREADS, or `default`.
    pub(crate) fn more(&self, i: usize, default: &str) -> String {
        self.more.get(i).cloned().unwrap_or_else(|| default.into())
    }
}

/// Serves `args.addr` on `args.threads` runtime threads: `serve(stream)` is spawned for every
/// accepted connection. Returns only on an accept error.
pub(crate) fn run<F, Fut>(args: &Args, serve: F) -> std::io::Result<()>
where
    F: Fn(TcpStream) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let l = tokio::net::TcpListener::bind(&args.addr).await?;
        loop {
            let (s, _) = l.accept().await?;
            let _ = s.set_nodelay(true);
            tokio::spawn(serve(s));
        }
    })
}

/// The hello handler of the HTTP peers: `Hello World`, `content-type: text/plain`.
pub(crate) async fn hello<B>(
    _req: Request<B>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let mut r = Response::new(Full::new(Bytes::from_static(b"Hello World")));
    r.headers_mut()
        .insert("content-type", "text/plain".parse().expect("valid"));
    Ok(r)
}
