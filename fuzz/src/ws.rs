//! The WebSocket target (`ws_frame`).

use crate::Input;
use bytes::BytesMut;
use rswoole_codec::ws::{
    Connection, DeflateParams, FrameDecoder, MessageKind, OpCode, Role, WsConfig, WsError, WsEvent,
};

#[derive(Debug, PartialEq)]
struct Outcome<T> {
    items: Vec<T>,
    error: Option<WsError>,
}

fn feed_in_reads<T>(
    data: &[u8],
    chunks: &[usize],
    mut step: impl FnMut(&mut BytesMut) -> Result<Option<T>, WsError>,
) -> Outcome<T> {
    let mut buf = BytesMut::new();
    let mut items = Vec::new();
    let mut sizes = chunks.iter().copied().cycle();
    let mut rest = data;
    while !rest.is_empty() {
        let n = sizes.next().unwrap_or(rest.len()).clamp(1, rest.len());
        buf.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        loop {
            match step(&mut buf) {
                Ok(Some(item)) => items.push(item),
                Ok(None) => break,
                Err(e) => {
                    return Outcome {
                        items,
                        error: Some(e),
                    }
                }
            }
        }
    }
    Outcome { items, error: None }
}

fn config(flags: u8) -> WsConfig {
    let mut c = WsConfig::default();
    if flags & 8 != 0 {
        c.max_frame_size = 300;
        c.max_message_size = 1000;
    } else {
        c.max_frame_size = 1 << 16;
        c.max_message_size = 1 << 18;
    }
    c.deliver_fragments = flags & 4 != 0;
    c.auto_pong = flags & 16 == 0;
    c.deflate.threshold = 0;
    c
}

fn connection(flags: u8) -> Connection {
    let deflate = (flags & 2 != 0).then(DeflateParams::default);
    if flags & 1 != 0 {
        Connection::client(config(flags), deflate, 1)
    } else {
        Connection::server(config(flags), deflate)
    }
}

/// WebSocket frames and connections (`ws::FrameDecoder`, `ws::Connection`) on arbitrary bytes
/// and arbitrary reads.
///
/// Input layout: flags byte (bit 0: client role; bit 1: permessage-deflate negotiated; bit 2:
/// deliver fragments; bit 3: small limits; bit 4: no auto-pong), chunk sizes (see
/// `Input::chunks`), then the stream.
///
/// Invariants: the same frames/events, error and output whatever the reads; text messages
/// are UTF-8; after an error the connection is closed and its output is well-formed frames
/// ending with a Close carrying the error's code; everything the connection writes decodes
/// with the peer role's decoder.
pub fn ws_frame(data: &[u8]) {
    let mut input = Input::new(data);
    let flags = input.byte();
    let chunks = input.chunks();
    let stream = input.rest();
    let role = if flags & 1 != 0 {
        Role::Client
    } else {
        Role::Server
    };
    let peer = if role == Role::Client {
        Role::Server
    } else {
        Role::Client
    };
    let max = config(flags).max_frame_size;

    // Whole frames.
    let mut dec = FrameDecoder::new(role, max);
    let whole = feed_in_reads(stream, &[], |b| dec.decode(b));
    let mut dec = FrameDecoder::new(role, max);
    let chunked = feed_in_reads(stream, &chunks, |b| dec.decode(b));
    assert_eq!(whole, chunked);
    for f in &whole.items {
        assert!(f.payload.len() <= max);
        assert!(!f.header.opcode.is_control() || (f.header.fin && f.payload.len() <= 125));
    }

    // The connection.
    let mut conn_a = connection(flags);
    let a = feed_in_reads(stream, &[], |b| conn_a.feed(b));
    let mut conn_b = connection(flags);
    let b = feed_in_reads(stream, &chunks, |b| conn_b.feed(b));
    assert_eq!(a, b);
    let (out_a, out_b) = (conn_a.take_output(), conn_b.take_output());
    assert_eq!(out_a, out_b);
    for ev in &a.items {
        match ev {
            WsEvent::Message {
                kind: MessageKind::Text,
                data,
            } => {
                assert!(std::str::from_utf8(data).is_ok())
            }
            WsEvent::Ping(p) | WsEvent::Pong(p) => assert!(p.len() <= 125),
            _ => {}
        }
    }
    // The output is well-formed frames for the peer; after an error, the last is its Close.
    let mut out = out_a;
    let mut peer_dec = FrameDecoder::new(peer, 1 << 20);
    let mut last = None;
    while let Some(f) = peer_dec.decode(&mut out).expect("our output decodes") {
        last = Some(f);
    }
    assert!(out.is_empty());
    if let Some(e) = a.error {
        assert!(conn_a.state().is_closed());
        if let Some(f) = last.filter(|f| f.header.opcode == OpCode::Close) {
            if f.payload.len() == 2 {
                assert_eq!(
                    u16::from_be_bytes([f.payload[0], f.payload[1]]),
                    e.close_code().as_u16()
                );
            }
        }
    }
}
