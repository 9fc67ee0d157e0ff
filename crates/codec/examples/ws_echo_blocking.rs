//! A blocking, thread-per-connection WebSocket echo server on the `ws` codec alone.
//!
//! It exists to run the Autobahn testsuite against the codec before any server integrates
//! it: `cargo run --release -p rswoole-codec --example ws_echo_blocking -- 19001`, then
//! `/work/shared/conformance/autobahn.sh ws://127.0.0.1:19001 /tmp/ab-ws`.
//!
//! The upgrade request is parsed with `httparse`; permessage-deflate is offered to clients
//! that ask for it (pass `--no-deflate` to turn it off). Every message is echoed with its
//! opcode.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::thread;

use bytes::BytesMut;
use rswoole_codec::ws::handshake::write_reject;
use rswoole_codec::ws::{Connection, DeflateConfig, UpgradeRequest, WsConfig, WsEvent};

/// The largest upgrade request accepted.
const MAX_REQUEST: usize = 16 * 1024;

fn main() -> io::Result<()> {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().and_then(|p| p.parse().ok()).unwrap_or(19001);
    let deflate = !args.any(|a| a == "--no-deflate");
    let listener = TcpListener::bind(("127.0.0.1", port))?;
    eprintln!("ws_echo_blocking: listening on ws://127.0.0.1:{port} (deflate: {deflate})");
    for stream in listener.incoming() {
        let stream = stream?;
        thread::spawn(move || {
            if let Err(e) = serve(stream, deflate) {
                eprintln!("ws_echo_blocking: connection ended: {e}");
            }
        });
    }
    Ok(())
}

fn serve(mut stream: TcpStream, deflate: bool) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let config = WsConfig {
        deflate: DeflateConfig {
            enabled: deflate,
            ..DeflateConfig::default()
        },
        ..WsConfig::default()
    };

    // 1. The HTTP upgrade.
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    let (accept, consumed) = loop {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => {
                let parsed = UpgradeRequest::parse(
                    req.method.unwrap_or(""),
                    req.version.unwrap_or(0),
                    req.headers.iter().map(|h| (h.name, h.value)),
                );
                match parsed {
                    Ok(up) => break (up.accept(&[], &config.deflate), len),
                    Err(e) => {
                        let mut out = BytesMut::new();
                        write_reject(&mut out, e);
                        stream.write_all(&out)?;
                        return Ok(());
                    }
                }
            }
            Ok(httparse::Status::Partial) if buf.len() < MAX_REQUEST => continue,
            _ => {
                stream.write_all(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")?;
                return Ok(());
            }
        }
    };
    let _ = buf.split_to(consumed);
    let mut out = BytesMut::new();
    accept.write_response(&mut out);
    stream.write_all(&out)?;

    // 2. Frames.
    let mut conn = Connection::server(config, accept.deflate);
    loop {
        loop {
            match conn.feed(&mut buf) {
                Ok(Some(WsEvent::Message { kind, data })) => {
                    // Fails only once we sent Close; then there is nothing to echo.
                    let _ = conn.send_message(kind, &data);
                }
                Ok(Some(_)) => {} // pings are answered by the codec, closes too
                Ok(None) => break,
                Err(_) => break, // the codec queued the Close frame; flushed below
            }
        }
        if conn.has_output() {
            stream.write_all(&conn.take_output())?;
        }
        if conn.state().is_closed() {
            // The server closes the TCP connection first (RFC 6455 §7.1.1).
            let _ = stream.shutdown(Shutdown::Write);
            // Drain until the peer closes, so our Close frame is not lost to an RST.
            stream.set_read_timeout(Some(std::time::Duration::from_secs(2)))?;
            while matches!(stream.read(&mut chunk), Ok(n) if n > 0) {}
            return Ok(());
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}
