//! A server for the upgrade and systemd tests (`tests/upgrade.rs`): every HTTP reply names
//! the binary that answered (its executable's file name) and the worker's pid, so a test that
//! runs two copies of this program (`app-v1`, `app-v2`) sees which one serves. `/slow?ms=N`
//! answers after N ms (a request in flight during an upgrade). With `--stream-port P` it also
//! serves length-framed TCP on P (4-byte big-endian length + body): each message is answered
//! with `<binary> <pid> fd=<connection id> <body>`, in the same framing (connections that move to the new binary
//! on upgrade, with no disconnect). The HTTP port also upgrades to WebSocket: a text message
//! `TEXT` is answered to its sender with `<binary> <pid> fd=<connection id> TEXT`, and
//! `/all TEXT` is broadcast to every WebSocket client as `<binary> all TEXT`.
//!
//! ```text
//! cargo build --example upgrade_kit
//! cp target/debug/examples/upgrade_kit /tmp/app-v1 && cp target/debug/examples/upgrade_kit /tmp/app-v2
//! /tmp/app-v1 --port 9501 --pid-file /tmp/app.pid &
//! curl http://127.0.0.1:9501/                       # app-v1 <pid>
//! rswoole upgrade --pid-file /tmp/app.pid --binary /tmp/app-v2
//! curl http://127.0.0.1:9501/                       # app-v2 <pid>
//! ```
use std::time::Duration;

use rswoole::cli::ExampleArgs;
use rswoole::websocket::{OpCode, WebSocketServer};
use rswoole::{Framing, LengthSpec, LengthType, SockType};

fn main() -> rswoole::Result<()> {
    let args = ExampleArgs::parse_or_exit("127.0.0.1", 9501);
    let tag: String = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "unknown".into());
    let mut server = WebSocketServer::bind(&args.addr())?;
    server.set(args.settings());
    if let Some(p) = args.stream_port {
        let host = args.addr();
        let host = host.rsplit_once(':').map_or("127.0.0.1", |(h, _)| h);
        let tag = tag.clone();
        server
            .add_listener(&format!("{host}:{p}"), SockType::Tcp)?
            .set_framing(Framing::Length(LengthSpec::new(LengthType::U32Be, 0, 4)))
            .on_receive(move |srv, ev| {
                let body = ev.data.get(4..).unwrap_or_default();
                let mut reply = format!("{tag} {} fd={} ", std::process::id(), ev.fd).into_bytes();
                reply.extend_from_slice(body);
                let mut out = (reply.len() as u32).to_be_bytes().to_vec();
                out.extend_from_slice(&reply);
                async move { srv.send(ev.fd, out).map_err(|e| e.to_string()) }
            });
    }
    let ws_tag = tag.clone();
    server.on_message(move |srv, frame| {
        let text = String::from_utf8_lossy(&frame.data).into_owned();
        let reply = match text.strip_prefix("/all ") {
            Some(rest) => Err(format!("{ws_tag} all {rest}")),
            None => Ok(format!(
                "{ws_tag} {} fd={} {text}",
                std::process::id(),
                frame.fd
            )),
        };
        async move {
            match reply {
                Ok(r) => srv
                    .push(frame.fd, r, OpCode::Text)
                    .map_err(|e| e.to_string()),
                Err(all) => srv.broadcast(all, OpCode::Text).map_err(|e| e.to_string()),
            }
        }
    });
    server.on_request(move |_srv, req, mut resp| {
        let tag = tag.clone();
        async move {
            if req.path == "/slow" {
                let ms = req
                    .get
                    .get("ms")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(200u64);
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            resp.header("content-type", "text/plain")?;
            resp.end(format!("{tag} {}", std::process::id()))
        }
    });
    server.start()
}
