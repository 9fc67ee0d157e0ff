//! Large WebSocket messages through real sockets (issue 20, "memory goes back after a burst"):
//! a 40 MiB text message in one frame and a 24 MiB binary message in six fragments (a Ping
//! between two of them) echo intact through `ws_echo`, in Process mode (the message crosses
//! the master's pipe to a worker and back, in chunks) and in Base mode. Memory is measured in
//! BENCHMARKS.md ("Memory after bursts"), not asserted here.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::BytesMut;
use rswoole_codec::ws::handshake::{validate_response, write_request};
use rswoole_codec::ws::{
    generate_key, CloseCode, Connection, DeflateConfig, MessageKind, OpCode, WsConfig, WsEvent,
};

use crate::util::*;

const T: Duration = Duration::from_secs(60);

/// A blocking WebSocket client on the codec, taking messages of up to 64 MiB in one frame.
struct BigWs {
    s: TcpStream,
    conn: Connection,
    buf: BytesMut,
}

impl BigWs {
    fn connect(port: u16) -> BigWs {
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(T)).unwrap();
        s.set_write_timeout(Some(T)).unwrap();
        let dc = DeflateConfig::default();
        let key = generate_key([7; 16]);
        let mut req = BytesMut::new();
        write_request(&mut req, "127.0.0.1", "/", &key, &[], &dc);
        s.write_all(&req).unwrap();
        let mut buf = BytesMut::new();
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            let n = s.read(&mut chunk).expect("handshake answer");
            assert!(n > 0, "server closed during the handshake");
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = buf.split_to(end);
        let text = std::str::from_utf8(&head).unwrap().to_string();
        let (status, headers) = status_and_headers(&text);
        let acc = validate_response(status, headers, &key, &[], &dc)
            .unwrap_or_else(|e| panic!("handshake failed ({e}): {text}"));
        let cfg = WsConfig {
            max_frame_size: 64 << 20,
            max_message_size: 64 << 20,
            ..WsConfig::default()
        };
        BigWs {
            s,
            conn: Connection::client(cfg, acc.deflate, 0x9e37_79b9_7f4a_7c15),
            buf,
        }
    }

    fn flush(&mut self) {
        let out = self.conn.take_output();
        self.s.write_all(&out).expect("write to the server");
    }

    /// One frame of a message: `opcode` (Text/Binary first, Continuation after), `fin`.
    fn frame(&mut self, opcode: OpCode, fin: bool, payload: &[u8]) {
        let mut out = BytesMut::new();
        // Client frames are masked; an all-zero key leaves the payload as it is.
        rswoole_codec::ws::encode_frame(&mut out, fin, false, opcode, payload, Some([0; 4]));
        self.s.write_all(&out).expect("write to the server");
    }

    /// The next event (panics on EOF or after the read timeout).
    fn recv(&mut self) -> WsEvent {
        let mut chunk = vec![0u8; 1 << 20];
        loop {
            match self.conn.feed(&mut self.buf) {
                Ok(Some(ev)) => {
                    if self.conn.has_output() {
                        self.flush();
                    }
                    return ev;
                }
                Ok(None) => {}
                Err(e) => panic!("client-side protocol error: {e}"),
            }
            let n = self.s.read(&mut chunk).expect("read from the server");
            assert!(n > 0, "the server closed the connection");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// Text of `n` bytes, valid UTF-8 with 1-, 2-, 3- and 4-byte characters.
fn big_text(n: usize) -> Vec<u8> {
    let unit = "héllo wörld ✓ 🦀 ".as_bytes();
    let mut v = Vec::with_capacity(n);
    while v.len() + unit.len() <= n {
        v.extend_from_slice(unit);
    }
    v.resize(n, b'.');
    v
}

#[test]
fn ws_large_messages_echo_intact_both_modes() {
    for mode in ["process", "base"] {
        let srv = ServerProc::start(
            "ws_echo",
            &[
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--mode",
                mode,
                "--worker-num",
                "2",
            ],
            0,
        );
        let mut ws = BigWs::connect(srv.port);

        // 40 MiB of text in one frame.
        let text = big_text(40 << 20);
        ws.frame(OpCode::Text, true, &text);
        match ws.recv() {
            WsEvent::Message { kind, data } => {
                assert_eq!(kind, MessageKind::Text, "{mode}");
                assert_eq!(data.len(), text.len(), "{mode}: text length");
                assert!(data[..] == text[..], "{mode}: 40 MiB text echoed intact");
            }
            other => panic!("{mode}: {other:?}"),
        }
        drop(text);

        // 24 MiB of binary in six 4 MiB fragments, a Ping after the second.
        let bin: Vec<u8> = (0..24u32 << 20)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for (i, part) in bin.chunks(4 << 20).enumerate() {
            let op = if i == 0 {
                OpCode::Binary
            } else {
                OpCode::Continuation
            };
            ws.frame(op, i == 5, part);
            if i == 1 {
                ws.frame(OpCode::Ping, true, b"mid");
            }
        }
        let mut pong = false;
        loop {
            match ws.recv() {
                WsEvent::Pong(p) => {
                    assert_eq!(&p[..], b"mid", "{mode}");
                    pong = true;
                }
                WsEvent::Message { kind, data } => {
                    assert_eq!(kind, MessageKind::Binary, "{mode}");
                    assert_eq!(data.len(), bin.len(), "{mode}: binary length");
                    assert!(
                        data[..] == bin[..],
                        "{mode}: fragmented 24 MiB binary echoed intact"
                    );
                    break;
                }
                other => panic!("{mode}: {other:?}"),
            }
        }
        assert!(pong, "{mode}: the Ping between fragments was answered");

        // The connection still works for small messages, and closes cleanly.
        ws.conn.send_message(MessageKind::Text, b"after").unwrap();
        ws.flush();
        match ws.recv() {
            WsEvent::Message { data, .. } => assert_eq!(&data[..], b"after", "{mode}"),
            other => panic!("{mode}: {other:?}"),
        }
        ws.conn.close(CloseCode::NORMAL, "").unwrap();
        ws.flush();
        match ws.recv() {
            WsEvent::Close { code, .. } => assert_eq!(code, CloseCode::NORMAL, "{mode}"),
            other => panic!("{mode}: {other:?}"),
        }
    }
}
