//! The reference peer for the https benchmark: hyper 1.x behind tokio-rustls (rustls with
//! the same `ring` provider and defaults as rswoole), answering `Hello World` with
//! keep-alive, on a multi-thread runtime with `threads` workers.
//!
//! `cargo run --release --example peer_hyper_tls_hello -- 127.0.0.1:9700 THREADS cert.pem key.pem`
use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

#[allow(deprecated)] // ring's provider, as rswoole uses
fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let addr = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:9700".into());
    let threads: usize = args.get(2).and_then(|t| t.parse().ok()).unwrap_or(1);
    let (cert, key) = (
        args.get(3).cloned().unwrap_or_else(|| "cert.pem".into()),
        args.get(4).cloned().unwrap_or_else(|| "key.pem".into()),
    );
    let chain = CertificateDer::pem_file_iter(&cert)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(std::io::Error::other)?;
    let key = PrivateKeyDer::from_pem_file(&key).map_err(std::io::Error::other)?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(std::io::Error::other)?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .map_err(std::io::Error::other)?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let l = tokio::net::TcpListener::bind(&addr).await?;
        loop {
            let (s, _) = l.accept().await?;
            let _ = s.set_nodelay(true);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(s).await else {
                    return;
                };
                let svc = service_fn(|_req: Request<hyper::body::Incoming>| async {
                    let mut r = Response::new(Full::new(Bytes::from_static(b"Hello World")));
                    r.headers_mut()
                        .insert("content-type", "text/plain".parse().expect("valid"));
                    Ok::<_, Infallible>(r)
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    })
}
