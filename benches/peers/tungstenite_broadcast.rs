//! The reference peer for `rswoole bench ws-broadcast`: a minimal tokio-tungstenite chat
//! server. Every message goes to every client (sender included): the usual tokio design, a
//! shared list of per-client channels, one writer task per client, the text encoded by each
//! client's sink.
//!
//! `cargo run --release --example peer_tungstenite_broadcast -- 127.0.0.1:9602 [threads]`
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

type Peers = Arc<Mutex<HashMap<u64, mpsc::UnboundedSender<Message>>>>;

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9602".into());
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
        let peers: Peers = Arc::default();
        let mut next_id = 0u64;
        loop {
            let (s, _) = l.accept().await?;
            let _ = s.set_nodelay(true);
            next_id += 1;
            let id = next_id;
            let peers = peers.clone();
            tokio::spawn(async move {
                let Ok(ws) = tokio_tungstenite::accept_async(s).await else {
                    return;
                };
                let (mut sink, mut stream) = ws.split();
                let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
                peers.lock().unwrap().insert(id, tx);
                let writer = tokio::spawn(async move {
                    // Queue what is waiting, then flush once (fewer syscalls under load).
                    while let Some(m) = rx.recv().await {
                        if sink.feed(m).await.is_err() {
                            return;
                        }
                        while let Ok(m) = rx.try_recv() {
                            if sink.feed(m).await.is_err() {
                                return;
                            }
                        }
                        if sink.flush().await.is_err() {
                            return;
                        }
                    }
                });
                while let Some(Ok(m)) = stream.next().await {
                    match m {
                        Message::Text(t) => {
                            let out = Message::text(format!("from{id}:{}\n", t.as_str()));
                            for p in peers.lock().unwrap().values() {
                                let _ = p.send(out.clone());
                            }
                        }
                        Message::Close(_) => break,
                        _ => {}
                    }
                }
                peers.lock().unwrap().remove(&id);
                writer.abort();
            });
        }
    })
}
