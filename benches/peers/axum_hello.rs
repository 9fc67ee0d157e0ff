//! The reference peer for the axum benchmark: the very router of `examples/axum_app.rs`
//! (the same handlers and the same four tower-http layers, compiled from the same file),
//! served by `axum::serve` on a tokio current-thread runtime — axum as it runs without
//! rswoole. Only the routes that need no rswoole server answer as in the example (`/hello`,
//! `/worker`, `/stream`, `/upload`, `/sleep`, `/limited`, `/online`); the benchmark uses
//! `/hello/{name}`.
//!
//! `cargo run --release --example peer_axum_hello -- 127.0.0.1:9700`
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

#[allow(dead_code)]
#[path = "../../examples/axum_app.rs"]
mod app;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9700".into());
    let online = rswoole::Table::builder(16)
        .column("n", rswoole::Column::Int)
        .build()?;
    online.set("online", &[("n", 0.into())])?;
    let router = app::router(app::App {
        worker: 0,
        served: Arc::new(AtomicU64::new(0)),
        online,
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        use axum::serve::ListenerExt;
        // As rswoole and the hyper peer: no Nagle delay on the accepted sockets.
        let l = tokio::net::TcpListener::bind(&addr).await?.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(l, router).await
    })?;
    Ok(())
}
