//! The reference peer for the https benchmark: hyper 1.x behind tokio-rustls (rustls with
//! the same `ring` provider and defaults as rswoole), answering `Hello World` with
//! keep-alive, on a multi-thread runtime with `threads` workers.
//!
//! `cargo run --release --example peer_hyper_tls_hello -- 127.0.0.1:9700 THREADS cert.pem key.pem`
use std::sync::Arc;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

#[path = "common.rs"]
mod common;

#[allow(deprecated)] // ring's provider, as rswoole uses
fn main() -> std::io::Result<()> {
    let args = common::Args::parse("127.0.0.1:9700");
    let (cert, key) = (args.more(0, "cert.pem"), args.more(1, "key.pem"));
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
    common::run(&args, move |s| {
        let acceptor = acceptor.clone();
        async move {
            let Ok(tls) = acceptor.accept(s).await else {
                return;
            };
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service_fn(common::hello))
                .await;
        }
    })
}
