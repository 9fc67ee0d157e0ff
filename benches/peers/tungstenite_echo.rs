//! The reference peer for `rswoole bench ws-echo`: a minimal tokio-tungstenite echo server
//! (a task per connection, every message sent back with its opcode), as a Rust user would
//! write it.
//!
//! `cargo run --release --example peer_tungstenite_echo -- 127.0.0.1:9601 [threads]`
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9601".into());
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
                let Ok(mut ws) = tokio_tungstenite::accept_async(s).await else {
                    return;
                };
                while let Some(Ok(m)) = ws.next().await {
                    let data = matches!(m, Message::Text(_) | Message::Binary(_));
                    if matches!(m, Message::Close(_)) || (data && ws.send(m).await.is_err()) {
                        return;
                    }
                }
            });
        }
    })
}
