//! The reference peer for `rswoole bench ws-echo`: a minimal tokio-tungstenite echo server
//! (a task per connection, every message sent back with its opcode), as a Rust user would
//! write it.
//!
//! `cargo run --release --example peer_tungstenite_echo -- 127.0.0.1:9601 [threads]`
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

#[path = "common.rs"]
mod common;

fn main() -> std::io::Result<()> {
    let args = common::Args::parse("127.0.0.1:9601");
    common::run(&args, |s| async move {
        let Ok(mut ws) = tokio_tungstenite::accept_async(s).await else {
            return;
        };
        while let Some(Ok(m)) = ws.next().await {
            let data = matches!(m, Message::Text(_) | Message::Binary(_));
            if matches!(m, Message::Close(_)) || (data && ws.send(m).await.is_err()) {
                return;
            }
        }
    })
}
