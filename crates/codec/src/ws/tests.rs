//! Connection-level tests: whole byte streams in, events and close frames out.

use bytes::BytesMut;
use proptest::prelude::*;

use super::*;

const KEY: [u8; 4] = [0x11, 0x22, 0x33, 0x44];

/// A masked client frame.
fn cf(fin: bool, op: u8, payload: &[u8]) -> Vec<u8> {
    cf_rsv(fin, false, op, payload)
}

fn cf_rsv(fin: bool, rsv1: bool, op: u8, payload: &[u8]) -> Vec<u8> {
    let mut dst = BytesMut::new();
    let h = FrameHeader {
        fin,
        rsv1,
        rsv2: false,
        rsv3: false,
        opcode: OpCode::from_u8(op).unwrap(),
        mask: Some(KEY),
        payload_len: payload.len() as u64,
    };
    h.encode(&mut dst);
    let start = dst.len();
    dst.extend_from_slice(payload);
    mask::apply_mask(&mut dst[start..], KEY);
    dst.to_vec()
}

/// Feeds `wire` in one go; returns the events and the first error.
fn run(conn: &mut Connection, wire: &[u8]) -> (Vec<WsEvent>, Option<WsError>) {
    let mut src = BytesMut::from(wire);
    let mut events = Vec::new();
    loop {
        match conn.feed(&mut src) {
            Ok(Some(ev)) => events.push(ev),
            Ok(None) => return (events, None),
            Err(e) => return (events, Some(e)),
        }
    }
}

/// Feeds `wire` in the given chunks.
fn run_chunks(conn: &mut Connection, chunks: &[&[u8]]) -> (Vec<WsEvent>, Option<WsError>) {
    let mut src = BytesMut::new();
    let mut events = Vec::new();
    for c in chunks {
        src.extend_from_slice(c);
        loop {
            match conn.feed(&mut src) {
                Ok(Some(ev)) => events.push(ev),
                Ok(None) => break,
                Err(e) => return (events, Some(e)),
            }
        }
    }
    (events, None)
}

fn server() -> Connection {
    Connection::server(WsConfig::default(), None)
}

fn text(s: &str) -> WsEvent {
    WsEvent::Message {
        kind: MessageKind::Text,
        data: bytes::Bytes::copy_from_slice(s.as_bytes()),
    }
}

/// The close frame (unmasked, server) carrying `code`.
fn close_frame(code: u16) -> Vec<u8> {
    let mut v = vec![0x88, 0x02];
    v.extend_from_slice(&code.to_be_bytes());
    v
}

#[test]
fn ws_conn_fragmentation_with_interleaved_ping() {
    let mut wire = cf(false, 1, b"Hel");
    wire.extend(cf(true, 9, b"ping!"));
    wire.extend(cf(false, 0, b"lo, "));
    wire.extend(cf(true, 10, b""));
    wire.extend(cf(true, 0, b"world"));
    let mut conn = server();
    let (events, err) = run(&mut conn, &wire);
    assert_eq!(err, None);
    assert_eq!(
        events,
        vec![
            WsEvent::Ping(bytes::Bytes::from_static(b"ping!")),
            WsEvent::Pong(bytes::Bytes::new()),
            text("Hello, world"),
        ]
    );
    assert_eq!(&conn.take_output()[..], b"\x8a\x05ping!");
}

#[test]
fn ws_conn_auto_pong_off() {
    let mut conn = Connection::server(
        WsConfig {
            auto_pong: false,
            ..WsConfig::default()
        },
        None,
    );
    let (events, _) = run(&mut conn, &cf(true, 9, b"x"));
    assert_eq!(events.len(), 1);
    assert!(!conn.has_output());
}

#[test]
fn ws_conn_every_error_to_close_code() {
    let small = WsConfig {
        max_frame_size: 100,
        max_message_size: 150,
        ..WsConfig::default()
    };
    let cat = |parts: &[Vec<u8>]| parts.concat();
    let cases: Vec<(&str, Vec<u8>, WsError, u16)> = vec![
        (
            "reserved opcode 3",
            vec![0x83, 0x80, 0, 0, 0, 0],
            WsError::ReservedOpcode,
            1002,
        ),
        (
            "reserved opcode 0xB",
            vec![0x8b, 0x80, 0, 0, 0, 0],
            WsError::ReservedOpcode,
            1002,
        ),
        (
            "rsv2",
            vec![0xa1, 0x80, 0, 0, 0, 0],
            WsError::ReservedBits,
            1002,
        ),
        (
            "rsv3",
            vec![0x91, 0x80, 0, 0, 0, 0],
            WsError::ReservedBits,
            1002,
        ),
        (
            "rsv1 without deflate",
            cf_rsv(true, true, 1, b"x"),
            WsError::ReservedBits,
            1002,
        ),
        ("unmasked", vec![0x81, 0x00], WsError::UnmaskedFrame, 1002),
        (
            "long ping",
            cf(true, 9, &[0; 126]),
            WsError::ControlFrameTooLong,
            1002,
        ),
        (
            "fragmented ping",
            cf(false, 9, b""),
            WsError::FragmentedControlFrame,
            1002,
        ),
        (
            "lone continuation",
            cf(true, 0, b"x"),
            WsError::UnexpectedContinuation,
            1002,
        ),
        (
            "text inside text",
            cat(&[cf(false, 1, b"a"), cf(true, 1, b"b")]),
            WsError::ExpectedContinuation,
            1002,
        ),
        (
            "bad 64-bit length",
            vec![0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            WsError::InvalidLength,
            1002,
        ),
        (
            "1-byte close",
            cf(true, 8, b"\x03"),
            WsError::InvalidClosePayload,
            1002,
        ),
        (
            "close code 1005",
            cf(true, 8, b"\x03\xed"),
            WsError::InvalidCloseCode,
            1002,
        ),
        (
            "close code 999",
            cf(true, 8, b"\x03\xe7"),
            WsError::InvalidCloseCode,
            1002,
        ),
        (
            "close code 2999",
            cf(true, 8, b"\x0b\xb7"),
            WsError::InvalidCloseCode,
            1002,
        ),
        (
            "close reason not utf-8",
            cf(true, 8, b"\x03\xe8\xce\xba\xff"),
            WsError::InvalidUtf8,
            1007,
        ),
        (
            "text not utf-8",
            cf(true, 1, b"\xff"),
            WsError::InvalidUtf8,
            1007,
        ),
        (
            "text ends mid code point",
            cat(&[cf(false, 1, b"\xe2\x82"), cf(true, 0, b"")]),
            WsError::InvalidUtf8,
            1007,
        ),
        (
            "frame too large",
            cf(true, 2, &[0; 101]),
            WsError::FrameTooLarge,
            1009,
        ),
        (
            "message too large",
            cat(&[cf(false, 2, &[0; 100]), cf(true, 0, &[0; 51])]),
            WsError::MessageTooLarge,
            1009,
        ),
    ];
    for (name, wire, err, code) in cases {
        let mut conn = Connection::server(small.clone(), None);
        let (_, got) = run(&mut conn, &wire);
        assert_eq!(got, Some(err), "{name}");
        assert_eq!(err.close_code().as_u16(), code, "{name}");
        assert_eq!(&conn.take_output()[..], &close_frame(code)[..], "{name}");
        assert!(conn.state().is_closed(), "{name}");
        // Closed: later input is ignored, no second close frame.
        assert_eq!(
            conn.feed(&mut BytesMut::from(&cf(true, 1, b"x")[..])),
            Ok(None)
        );
        assert!(!conn.has_output());
    }
}

#[test]
fn ws_conn_client_role() {
    let mut conn = Connection::client(WsConfig::default(), None, 42);
    // Servers send unmasked frames; a masked one is an error.
    let (events, err) = run(&mut conn, b"\x81\x02hi\x89\x00");
    assert_eq!(err, None);
    assert_eq!(events[0], text("hi"));
    let (_, err) = run(&mut conn, &cf(true, 1, b"x"));
    assert_eq!(err, Some(WsError::MaskedFrame));
    // Everything the client sent (the pong, the close) is masked and decodes as a server would.
    let mut out = conn.take_output();
    let mut dec = FrameDecoder::new(Role::Server, 1024);
    let pong = dec.decode(&mut out).unwrap().unwrap();
    assert_eq!(pong.header.opcode, OpCode::Pong);
    let close = dec.decode(&mut out).unwrap().unwrap();
    assert_eq!(&close.payload[..], &1002u16.to_be_bytes());
    // Masking keys differ between frames.
    let mut c = Connection::client(WsConfig::default(), None, 7);
    c.send_message(MessageKind::Binary, b"a").unwrap();
    c.send_message(MessageKind::Binary, b"a").unwrap();
    let out = c.take_output();
    assert_ne!(out[2..6], out[9..13]);
}

#[test]
fn ws_conn_close_handshake_peer_first() {
    let mut conn = server();
    let (events, err) = run(&mut conn, &cf(true, 8, b"\x03\xe8bye"));
    assert_eq!(err, None);
    assert_eq!(
        events,
        vec![WsEvent::Close {
            code: CloseCode::NORMAL,
            reason: "bye".into()
        }]
    );
    assert_eq!(&conn.take_output()[..], &close_frame(1000)[..]);
    assert!(conn.state().is_closed());
    assert_eq!(
        conn.send_message(MessageKind::Text, b"late"),
        Err(WsError::Closed)
    );

    // Empty close is answered with an empty close.
    let mut conn = server();
    let (events, _) = run(&mut conn, &cf(true, 8, b""));
    assert_eq!(
        events,
        vec![WsEvent::Close {
            code: CloseCode::NO_STATUS,
            reason: String::new()
        }]
    );
    assert_eq!(&conn.take_output()[..], b"\x88\x00");
}

#[test]
fn ws_conn_close_handshake_we_first() {
    let mut conn = server();
    conn.close(CloseCode::GOING_AWAY, "restart").unwrap();
    assert!(conn.state().is_closing());
    assert_eq!(&conn.take_output()[..], b"\x88\x09\x03\xe9restart");
    assert_eq!(conn.close(CloseCode::NORMAL, ""), Err(WsError::Closed));
    assert_eq!(conn.send_ping(b""), Err(WsError::Closed));
    // Messages still arrive while closing; pings are not answered any more.
    let mut wire = cf(true, 1, b"still here");
    wire.extend(cf(true, 9, b""));
    wire.extend(cf(true, 8, b"\x03\xe9"));
    let (events, err) = run(&mut conn, &wire);
    assert_eq!(err, None);
    assert_eq!(events.len(), 3);
    assert!(conn.state().is_closed());
    assert!(!conn.has_output());
    assert_eq!(
        conn.close(CloseCode(2000), ""),
        Err(WsError::Closed),
        "closed conns refuse before validating"
    );
    let mut c = server();
    assert_eq!(
        c.close(CloseCode(1005 + 1), ""),
        Err(WsError::InvalidCloseCode)
    );
    assert_eq!(
        c.close(CloseCode::NORMAL, &"x".repeat(124)),
        Err(WsError::ControlFrameTooLong)
    );
}

/// A text message split into frames at every pair of points; valid ones are delivered whole,
/// invalid ones fail with 1007, and never later than the frame holding the bad byte.
#[test]
fn ws_conn_utf8_across_fragments_every_split() {
    let samples: &[&[u8]] = &[
        "κόσμε €𐍈".as_bytes(),
        b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80\x65\x64",
        b"ab\xed\xa0\x80cd",
        b"\xc0\xaf",
    ];
    for s in samples {
        let valid = std::str::from_utf8(s).is_ok();
        for i in 0..=s.len() {
            for j in i..=s.len() {
                let parts = [&s[..i], &s[i..j], &s[j..]];
                let frames = [
                    cf(false, 1, parts[0]),
                    cf(false, 0, parts[1]),
                    cf(true, 0, parts[2]),
                ];
                let mut conn = server();
                let mut fed = 0;
                let mut result = None;
                for (k, f) in frames.iter().enumerate() {
                    let (events, err) = run(&mut conn, f);
                    if let Some(e) = err {
                        result = Some(Err(e));
                        fed = k;
                        break;
                    }
                    if let Some(ev) = events.into_iter().next() {
                        result = Some(Ok(ev));
                    }
                }
                if valid {
                    let want = WsEvent::Message {
                        kind: MessageKind::Text,
                        data: bytes::Bytes::copy_from_slice(s),
                    };
                    assert_eq!(result, Some(Ok(want)), "{s:x?} {i} {j}");
                } else {
                    assert_eq!(result, Some(Err(WsError::InvalidUtf8)), "{s:x?} {i} {j}");
                    // Fail fast: no later than the frame that makes the prefix invalid.
                    let bad = (0..=s.len())
                        .find(|&n| Utf8Validator::new().feed(&s[..n]).is_err())
                        .unwrap_or(s.len());
                    let bad_frame = if bad <= i {
                        0
                    } else if bad <= j {
                        1
                    } else {
                        2
                    };
                    assert!(
                        fed <= bad_frame,
                        "{s:x?} {i} {j}: failed at {fed}, bad in {bad_frame}"
                    );
                }
            }
        }
    }
}

/// Autobahn 6.4.3: invalid bytes in the middle of a single frame fail before the frame ends.
#[test]
fn ws_conn_utf8_fails_fast_inside_a_frame() {
    let payload =
        b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80\x65\x64\x69\x74\x65\x64";
    let wire = cf(true, 1, payload);
    let mut conn = server();
    let cut = 6 + 13; // header + up to and including 0xf4 0x90
    let (_, err) = run_chunks(&mut conn, &[&wire[..cut]]);
    assert_eq!(err, Some(WsError::InvalidUtf8));
}

fn deflate_pair(params: DeflateParams) -> (Connection, Connection) {
    let config = WsConfig {
        deflate: DeflateConfig {
            enabled: true,
            threshold: 0,
            ..DeflateConfig::default()
        },
        ..WsConfig::default()
    };
    (
        Connection::server(config.clone(), Some(params)),
        Connection::client(config, Some(params), 99),
    )
}

#[test]
fn ws_conn_deflate_round_trip() {
    let with_ctx = DeflateParams::default();
    let without_ctx = DeflateParams {
        server_no_context_takeover: true,
        client_no_context_takeover: true,
        server_max_window_bits: Some(10),
        client_max_window_bits: Some(9),
    };
    let big: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let msgs: Vec<(MessageKind, &[u8])> = vec![
        (MessageKind::Text, "Hello Hello Hello Hello".as_bytes()),
        (MessageKind::Text, "Hello Hello Hello Hello".as_bytes()),
        (MessageKind::Binary, b""),
        (MessageKind::Binary, &big),
        (MessageKind::Text, "κόσμε κόσμε κόσμε".as_bytes()),
    ];
    for params in [with_ctx, without_ctx] {
        let (mut server, mut client) = deflate_pair(params);
        for (kind, data) in &msgs {
            // client -> server
            client.send_message(*kind, data).unwrap();
            let wire = client.take_output();
            assert_eq!(wire[0] & 0x40, 0x40, "RSV1 set");
            let (events, err) = run(&mut server, &wire);
            assert_eq!(err, None);
            assert_eq!(
                events,
                vec![WsEvent::Message {
                    kind: *kind,
                    data: bytes::Bytes::copy_from_slice(data)
                }]
            );
            // server -> client, fed byte by byte
            server.send_message(*kind, data).unwrap();
            let wire = server.take_output();
            let chunks: Vec<&[u8]> = wire.chunks(1 + wire.len() / 7).collect();
            let (events, err) = run_chunks(&mut client, &chunks);
            assert_eq!(err, None);
            assert_eq!(
                events,
                vec![WsEvent::Message {
                    kind: *kind,
                    data: bytes::Bytes::copy_from_slice(data)
                }]
            );
        }
    }
}

#[test]
fn ws_conn_deflate_fragmented_and_bounded() {
    // A compressed message sent as three frames (RSV1 only on the first).
    let (mut server, mut client) = deflate_pair(DeflateParams::default());
    let data = "fragmented compressed text ".repeat(50);
    client
        .send_message(MessageKind::Text, data.as_bytes())
        .unwrap();
    let mut wire = client.take_output();
    let frame = FrameDecoder::new(Role::Server, 1 << 20)
        .decode(&mut wire)
        .unwrap()
        .unwrap();
    let p = &frame.payload;
    let (a, b) = (p.len() / 3, 2 * p.len() / 3);
    let mut frames = cf_rsv(false, true, 1, &p[..a]);
    frames.extend(cf(false, 0, &p[a..b]));
    frames.extend(cf(true, 0, &p[b..]));
    let (events, err) = run(&mut server, &frames);
    assert_eq!(err, None);
    assert_eq!(events, vec![text(&data)]);
    // RSV1 on a continuation frame is an error.
    let mut bad = cf_rsv(false, true, 1, &p[..a]);
    bad.extend(cf_rsv(true, true, 0, &p[a..]));
    let (mut server, _) = deflate_pair(DeflateParams::default());
    assert_eq!(run(&mut server, &bad).1, Some(WsError::ReservedBits));

    // A small compressed message that inflates past max_message_size fails with 1009.
    let config = WsConfig {
        max_message_size: 1000,
        ..WsConfig::default()
    };
    let mut server = Connection::server(config, Some(DeflateParams::default()));
    let (_, mut client) = deflate_pair(DeflateParams::default());
    client
        .send_message(MessageKind::Binary, &[0u8; 100_000])
        .unwrap();
    let wire = client.take_output();
    assert!(wire.len() < 1000);
    assert_eq!(run(&mut server, &wire).1, Some(WsError::MessageTooLarge));
    assert_eq!(&server.take_output()[..], &close_frame(1009)[..]);
}

#[test]
fn ws_conn_deliver_fragments() {
    let config = WsConfig {
        deliver_fragments: true,
        ..WsConfig::default()
    };
    let mut conn = Connection::server(config, None);
    let mut wire = cf(false, 2, b"ab");
    wire.extend(cf(true, 0, b"cd"));
    wire.extend(cf(true, 1, b"whole"));
    let (events, err) = run(&mut conn, &wire);
    assert_eq!(err, None);
    let frag = |kind, d: &'static [u8], fin| WsEvent::Fragment {
        kind,
        data: bytes::Bytes::from_static(d),
        fin,
    };
    assert_eq!(
        events,
        vec![
            frag(MessageKind::Binary, b"ab", false),
            frag(MessageKind::Binary, b"cd", true),
            frag(MessageKind::Text, b"whole", true),
        ]
    );
}

/// A stream of frames exercising every path: fragmented, whole, control, empty.
fn sample_stream() -> Vec<u8> {
    [
        cf(true, 1, "héllo".as_bytes()),
        cf(false, 2, &[1; 300]),
        cf(true, 9, b"p"),
        cf(false, 0, b""),
        cf(true, 0, &[2; 70_000]),
        cf(false, 1, b"\xe2\x82"),
        cf(true, 0, b"\xac!"),
        cf(true, 2, b""),
        cf(true, 2, &[3; 1000]),
        cf(true, 8, b"\x03\xe8done"),
    ]
    .concat()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn ws_conn_split_anywhere(cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12)) {
        let wire = sample_stream();
        let mut whole_conn = server();
        let (whole, err) = run(&mut whole_conn, &wire);
        prop_assert_eq!(err, None);
        prop_assert_eq!(whole.len(), 7);
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
        points.sort_unstable();
        let mut chunks = Vec::new();
        let mut prev = 0;
        for p in points {
            chunks.push(&wire[prev..p]);
            prev = p;
        }
        chunks.push(&wire[prev..]);
        let mut conn = server();
        let (split, err) = run_chunks(&mut conn, &chunks);
        prop_assert_eq!(err, None);
        prop_assert_eq!(split, whole);
        prop_assert_eq!(conn.take_output(), whole_conn.take_output());
        prop_assert!(conn.state().is_closed());
    }
}

#[test]
fn ws_conn_binary_waits_without_copy_or_big_reserve() {
    let payload = vec![5u8; 3 << 20];
    let wire = cf(true, 2, &payload);
    let mut conn = server();
    let mut src = BytesMut::from(&wire[..14]);
    assert_eq!(conn.feed(&mut src), Ok(None));
    assert_eq!(src.len(), 14, "header left in place");
    assert!(src.capacity() <= (1 << 20) + 64, "{}", src.capacity());
    src.extend_from_slice(&wire[14..]);
    let ptr = src[14..].as_ptr();
    let Ok(Some(WsEvent::Message { kind, data })) = conn.feed(&mut src) else {
        panic!("message expected")
    };
    assert_eq!(kind, MessageKind::Binary);
    assert_eq!(data.as_ptr(), ptr, "unmasked in place, not copied");
    assert!(data.iter().all(|&b| b == 5));
}

/// The size limits are exact and mean the same with or without compression: a frame whose
/// payload (inflated, if compressed) is `max_frame_size` bytes passes, one byte more fails
/// with 1009, whatever the compressed size on the wire.
#[test]
fn ws_conn_limits_are_exact_with_and_without_compression() {
    const MAX: usize = 64 * 1024;
    let config = |deflate: bool| WsConfig {
        max_frame_size: MAX,
        max_message_size: 4 * MAX,
        deflate: DeflateConfig {
            enabled: deflate,
            threshold: 0,
            ..DeflateConfig::default()
        },
        ..WsConfig::default()
    };
    // Incompressible bytes: deflate makes them slightly longer than they are.
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let noise: Vec<u8> = (0..=MAX)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    for deflate in [false, true] {
        let params = deflate.then(DeflateParams::default);
        for (len, ok) in [(MAX, true), (MAX + 1, false)] {
            let mut client = Connection::client(config(deflate), params, 5);
            client
                .send_message(MessageKind::Binary, &noise[..len])
                .unwrap();
            let wire = client.take_output();
            if deflate && ok {
                // On the wire the frame is above max_frame_size, and still accepted.
                assert!(
                    wire.len() > MAX + 14,
                    "compressed frame of {} bytes",
                    wire.len()
                );
            }
            let mut server = Connection::server(config(deflate), params);
            let (events, err) = run(&mut server, &wire);
            if ok {
                assert_eq!(err, None, "deflate {deflate}, {len} bytes");
                assert_eq!(events.len(), 1);
            } else {
                assert_eq!(
                    err,
                    Some(WsError::FrameTooLarge),
                    "deflate {deflate}, {len} bytes"
                );
                assert_eq!(&server.take_output()[..], &close_frame(1009)[..]);
            }
        }
    }
    // A message of several frames: each frame within the limit, the whole message within
    // max_message_size, accepted; one byte past max_message_size, refused.
    for (total, ok) in [(4 * MAX, true), (4 * MAX + 1, false)] {
        let data: Vec<u8> = noise.iter().cycle().take(total).copied().collect();
        let mut wire = Vec::new();
        let parts: Vec<&[u8]> = data.chunks(MAX).collect();
        for (i, part) in parts.iter().enumerate() {
            let op = if i == 0 { 2 } else { 0 };
            wire.extend(cf(i + 1 == parts.len(), op, part));
        }
        let mut server = Connection::server(config(false), None);
        let (_, err) = run(&mut server, &wire);
        assert_eq!(
            err.is_none(),
            ok,
            "{total} bytes in frames of {MAX}: {err:?}"
        );
    }
}

/// A connection rebuilt from its configuration and negotiated parameters continues the
/// stream, at every point where it says it is between messages and carries no context (what
/// a server moving a live connection to another process relies on), with the caller's
/// unparsed bytes (a partial frame) carried over. With context takeover it says it cannot.
#[test]
fn ws_conn_rebuilt_between_messages_continues_the_stream() {
    let fresh = DeflateParams {
        server_no_context_takeover: true,
        client_no_context_takeover: true,
        server_max_window_bits: Some(12),
        client_max_window_bits: None,
    };
    let (mut old, mut client) = deflate_pair(fresh);
    let config = WsConfig {
        deflate: DeflateConfig {
            enabled: true,
            threshold: 0,
            ..DeflateConfig::default()
        },
        ..WsConfig::default()
    };
    let body = "moved moved moved moved moved ".repeat(20);
    // A compressed message, then a second one of which only part has arrived.
    let mut wire = BytesMut::new();
    for _ in 0..2 {
        client
            .send_message(MessageKind::Text, body.as_bytes())
            .unwrap();
        wire.extend_from_slice(&client.take_output());
    }
    let second_len = wire.len() / 2;
    let mut src = wire.split_to(wire.len() - second_len + 1);
    assert_eq!(
        old.feed(&mut src).unwrap(),
        Some(text(&body)),
        "first message"
    );
    // The rest of `src` is one byte of the second frame (its header not even whole): still
    // between messages, and those bytes stay with the caller.
    assert_eq!(old.feed(&mut src).unwrap(), None);
    assert_eq!(src.len(), 1);
    assert!(old.is_between_messages() && !old.carries_context());
    old.send_message(MessageKind::Text, b"before").unwrap();
    let before = old.take_output();
    // Rebuild it as another process would, from the parameters and the unparsed bytes.
    let mut moved = Connection::server(config, old.deflate_params());
    src.extend_from_slice(&wire);
    assert_eq!(moved.feed(&mut src).unwrap(), Some(text(&body)));
    assert!(src.is_empty());
    moved
        .send_message(MessageKind::Text, body.as_bytes())
        .unwrap();
    let mut out = before;
    out.extend_from_slice(&moved.take_output());
    let (events, err) = run(&mut client, &out);
    assert_eq!(err, None);
    assert_eq!(events, vec![text("before"), text(&body)]);

    // A text frame's payload partly read is inside a message; so is a fragmented message.
    let mut s = server();
    let f = cf(true, 1, b"hello world");
    let (ev, _) = run(&mut s, &f[..8]);
    assert!(ev.is_empty() && !s.is_between_messages());
    let mut s = server();
    let (ev, _) = run(&mut s, &cf(false, 1, b"hel"));
    assert!(ev.is_empty() && !s.is_between_messages());
    // A binary frame waits whole in the caller's buffer: between messages.
    let mut s = server();
    let f = cf(true, 2, &[7; 100]);
    let mut src = BytesMut::from(&f[..50]);
    assert_eq!(s.feed(&mut src).unwrap(), None);
    assert!(s.is_between_messages() && src.len() == 50);
    // A Ping's auto-Pong not yet taken out: not between messages until it is.
    let mut s = server();
    let _ = run(&mut s, &cf(true, 9, b"p"));
    assert!(!s.is_between_messages());
    let _ = s.take_output();
    assert!(s.is_between_messages());
    // Closing: never.
    s.close(CloseCode::NORMAL, "").unwrap();
    let _ = s.take_output();
    assert!(!s.is_between_messages());

    // Context takeover either way keeps a window: it cannot be rebuilt from the parameters.
    for p in [
        DeflateParams::default(),
        DeflateParams {
            server_no_context_takeover: true,
            ..DeflateParams::default()
        },
        DeflateParams {
            client_no_context_takeover: true,
            ..DeflateParams::default()
        },
    ] {
        assert!(deflate_pair(p).0.carries_context(), "{p:?}");
    }
}
