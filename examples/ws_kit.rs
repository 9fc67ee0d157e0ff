//! A configurable WebSocket server used by the integration tests (and a tour of the WebSocket
//! API).
//!
//! `on_handshake` (with `--handshake`): refuses path `/reject` with 403, picks subprotocol
//! `chat.v1` when offered. `on_open` sends `welcome {fd} {path}`. Messages: `who` →
//! `established={is_established} count={ws_connections}`; `bye` → `disconnect(fd, 4000,
//! "bye")`; `to:{fd},{fd}:{text}` → `broadcast_to` those; `push:{fd}:{text}` → `push` to that
//! connection, answering `push ok` or `push err {error}`; `kick:{fd}` → `disconnect(fd, 4001,
//! "kicked")`, answering `kick {returned}`; `all:{text}` → `broadcast` to every connection,
//! answering `all ok` or `all err {error}`; `slow:{ms}:{text}` → `text` back after `ms`
//! milliseconds (a handler that waits); `worker` → `worker {worker_id}`; `ping` → the
//! server pings this client (a Pong comes back to `on_message` with `--deliver-control`);
//! anything else is echoed with its opcode. Prints `open {fd} worker {id}`, `close {fd}` and
//! `control {opcode:?}` lines. In Base mode the connection named by `push`/`kick`/`to` may
//! belong to another worker: the request is forwarded to it.
//!
//! With `--start-gate DIR`, worker `i` does not finish `on_worker_start` while the file
//! `DIR/hold-w{i}` exists (tests keep a restarted worker down with it); every worker prints
//! `worker-start {i}` when it finishes `on_worker_start`.
use std::time::Duration;

use clap::Parser;
use rswoole::websocket::{Handshake, OpCode, WebSocketServer, WebSocketSettings};
use rswoole::{ConnId, Mode, Settings};

#[derive(Parser, Debug)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:9503")]
    addr: String,
    #[arg(long, default_value = "process")]
    mode: String,
    #[arg(long, default_value_t = 2)]
    worker_num: usize,
    /// Decide upgrades in `on_handshake`.
    #[arg(long)]
    handshake: bool,
    /// `websocket.ping_interval` in ms (0 = off).
    #[arg(long, default_value_t = 0)]
    ping_ms: u64,
    /// `websocket.pong_timeout` in ms.
    #[arg(long, default_value_t = 10_000)]
    pong_ms: u64,
    /// `websocket.max_message_size`.
    #[arg(long, default_value_t = 64 << 20)]
    max_message_size: usize,
    /// `websocket.deliver_control_frames`.
    #[arg(long)]
    deliver_control: bool,
    /// `websocket.compression`.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    compression: bool,
    /// Worker `i` waits in `on_worker_start` while `DIR/hold-w{i}` exists.
    #[arg(long)]
    start_gate: Option<std::path::PathBuf>,
    /// TLS on the listener: `--cert FILE --key FILE [--client-ca FILE]`.
    #[command(flatten)]
    tls: rswoole::cli::TlsArgs,
}

fn main() -> rswoole::Result<()> {
    let a = Args::parse();
    let mut server = WebSocketServer::bind(&a.addr)?;
    server.set(
        Settings::default()
            .tls(a.tls.settings())
            .worker_num(a.worker_num)
            .mode(if a.mode == "base" {
                Mode::Base
            } else {
                Mode::Process
            })
            .websocket(
                WebSocketSettings::default()
                    .ping_interval((a.ping_ms > 0).then(|| Duration::from_millis(a.ping_ms)))
                    .pong_timeout(Duration::from_millis(a.pong_ms))
                    .max_message_size(a.max_message_size)
                    .deliver_control_frames(a.deliver_control)
                    .compression(a.compression),
            ),
    );
    let gate = a.start_gate.clone();
    server.on_worker_start(move |_srv, id| {
        let hold = gate.as_ref().map(|d| d.join(format!("hold-w{id}")));
        async move {
            while hold.as_ref().is_some_and(|h| h.exists()) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            println!("worker-start {id}");
        }
    });
    if a.handshake {
        server.on_handshake(|_srv, req| async move {
            if req.path == "/reject" {
                return Handshake::Reject(403);
            }
            let offered = req.header.get("sec-websocket-protocol").unwrap_or("");
            if offered.split(',').any(|p| p.trim() == "chat.v1") {
                Handshake::AcceptProtocol("chat.v1".into())
            } else {
                Handshake::Accept
            }
        });
    }
    server.on_open(|srv, req| async move {
        println!("open {} worker {}", req.fd, srv.worker_id());
        srv.push(
            req.fd,
            format!("welcome {} {}", req.fd, req.path),
            OpCode::Text,
        )
    });
    server.on_message(|srv, f| async move {
        let text = f.text().unwrap_or("").to_string();
        match (f.opcode, text.as_str()) {
            (OpCode::Ping | OpCode::Pong, _) => {
                println!("control {:?}", f.opcode);
                Ok(())
            }
            (_, "who") => {
                let msg = format!(
                    "established={} count={}",
                    srv.is_established(f.fd),
                    srv.ws_connections().len()
                );
                srv.push(f.fd, msg, OpCode::Text)
            }
            (_, "bye") => {
                let _ = srv.disconnect(f.fd, 4000, "bye");
                Ok(())
            }
            (_, "ping") => srv.push(f.fd, "p", OpCode::Ping),
            (_, "worker") => srv.push(f.fd, format!("worker {}", srv.worker_id()), OpCode::Text),
            (_, t) if t.starts_with("push:") => {
                let (id, msg) = t[5..].split_once(':').unwrap_or(("", ""));
                let to = ConnId(id.parse().unwrap_or(0));
                let answer = match srv.push(to, msg.to_string(), OpCode::Text) {
                    Ok(()) => "push ok".to_string(),
                    Err(e) => format!("push err {e}"),
                };
                srv.push(f.fd, answer, OpCode::Text)
            }
            (_, t) if t.starts_with("all:") => {
                let answer = match srv.broadcast(t[4..].to_string(), OpCode::Text) {
                    Ok(()) => "all ok".to_string(),
                    Err(e) => format!("all err {e}"),
                };
                srv.push(f.fd, answer, OpCode::Text)
            }
            (_, t) if t.starts_with("slow:") => {
                let (ms, msg) = t[5..].split_once(':').unwrap_or(("0", ""));
                let ms = ms.parse().unwrap_or(0);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                srv.push(f.fd, msg.to_string(), OpCode::Text)
            }
            (_, t) if t.starts_with("kick:") => {
                let to = ConnId(t[5..].parse().unwrap_or(0));
                let done = srv.disconnect(to, 4001, "kicked").is_ok();
                srv.push(f.fd, format!("kick {done}"), OpCode::Text)
            }
            (_, t) if t.starts_with("to:") => {
                let (ids, msg) = t[3..].split_once(':').unwrap_or(("", ""));
                let fds: Vec<ConnId> = ids
                    .split(',')
                    .filter_map(|i| i.parse().ok())
                    .map(ConnId)
                    .collect();
                srv.broadcast_to(&fds, msg.to_string(), OpCode::Text)
            }
            _ => srv.push(f.fd, f.data, f.opcode),
        }
    });
    server.on_close(|_srv, fd| async move {
        println!("close {fd}");
    });
    server.start()
}
