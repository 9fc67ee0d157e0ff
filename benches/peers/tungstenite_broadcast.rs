//! The reference peer for `rswoole bench ws-broadcast`: a minimal tokio-tungstenite chat
//! server. Every message goes to every client (sender included): the usual tokio design, a
//! shared list of per-client channels, one writer task per client, the text encoded by each
//! client's sink.
//!
//! `cargo run --release --example peer_tungstenite_broadcast -- 127.0.0.1:9602 [threads]`
use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

#[path = "common.rs"]
mod common;

type Peers = Arc<Mutex<HashMap<u64, mpsc::UnboundedSender<Message>>>>;

fn main() -> std::io::Result<()> {
    let args = common::Args::parse("127.0.0.1:9602");
    let peers: Peers = Arc::default();
    let next_id = AtomicU64::new(0);
    common::run(&args, move |s| {
        let id = next_id.fetch_add(1, Relaxed) + 1;
        let peers = peers.clone();
        async move {
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
        }
    })
}
