//! The WebSocket server through real sockets: echo (text, binary, compressed, large), HTTP on
//! the same port, the chat's broadcast to 500 clients over 4 workers (exactly once, in order),
//! the same in Base mode (200 clients spread over 4 workers that each own theirs), push,
//! broadcast_to and disconnect across Base-mode workers, bad input (close codes), a client
//! that never reads, and workers killed under live clients.
//! The Autobahn testsuite and the browser test run from `.ci/run`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rswoole_codec::ws::handshake::{validate_response, write_request};
use rswoole_codec::ws::{
    generate_key, CloseCode, Connection, DeflateConfig, MessageKind, WsConfig, WsEvent,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::util::*;

const T: Duration = Duration::from_secs(30);

/// A minimal WebSocket client on the codec.
pub struct Ws {
    s: TcpStream,
    conn: Connection,
    buf: BytesMut,
}

impl Ws {
    pub async fn connect(port: u16, deflate: bool) -> Ws {
        let s = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        s.set_nodelay(true).unwrap();
        Ws::handshake(s, "/", &[], deflate).await.expect("upgrade")
    }

    /// Upgrades on `path` offering `protocols`; `Err(status)` if refused.
    pub async fn connect_with(
        port: u16,
        path: &str,
        protocols: &[&str],
    ) -> Result<(Ws, Option<String>), u16> {
        let s = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        Ws::handshake_proto(s, path, protocols, false).await
    }

    async fn handshake(
        s: TcpStream,
        path: &str,
        protocols: &[&str],
        deflate: bool,
    ) -> Result<Ws, u16> {
        Ws::handshake_proto(s, path, protocols, deflate)
            .await
            .map(|(w, _)| w)
    }

    /// Connects offering permessage-deflate as `dc` says (e.g. without context takeover).
    pub async fn connect_deflate(port: u16, dc: DeflateConfig) -> Ws {
        let s = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        s.set_nodelay(true).unwrap();
        Ws::handshake_dc(s, "/", &[], dc)
            .await
            .map(|(w, _)| w)
            .expect("upgrade")
    }

    async fn handshake_proto(
        s: TcpStream,
        path: &str,
        protocols: &[&str],
        deflate: bool,
    ) -> Result<(Ws, Option<String>), u16> {
        let dc = DeflateConfig {
            enabled: deflate,
            ..Default::default()
        };
        Ws::handshake_dc(s, path, protocols, dc).await
    }

    async fn handshake_dc(
        mut s: TcpStream,
        path: &str,
        protocols: &[&str],
        dc: DeflateConfig,
    ) -> Result<(Ws, Option<String>), u16> {
        let seed = rand_seed();
        let key = generate_key(seed.to_le_bytes().repeat(2).try_into().unwrap());
        let mut req = BytesMut::new();
        write_request(&mut req, "127.0.0.1", path, &key, protocols, &dc);
        s.write_all(&req).await.unwrap();
        let mut buf = BytesMut::new();
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let n = s.read_buf(&mut buf).await.unwrap();
            assert!(n > 0, "server closed during the handshake");
        };
        let head = buf.split_to(end);
        let text = std::str::from_utf8(&head).unwrap().to_string();
        let (status, headers) = status_and_headers(&text);
        if status != 101 {
            return Err(status);
        }
        let acc = validate_response(status, headers, &key, protocols, &dc).unwrap_or_else(|e| {
            panic!("handshake failed ({e}): {text}");
        });
        let cfg = WsConfig {
            deflate: dc,
            ..Default::default()
        };
        let ws = Ws {
            s,
            conn: Connection::client(cfg, acc.deflate, seed),
            buf,
        };
        Ok((ws, acc.protocol))
    }

    pub async fn send(&mut self, kind: MessageKind, data: &[u8]) {
        self.conn.send_message(kind, data).unwrap();
        let out = self.conn.take_output();
        self.s.write_all(&out).await.unwrap();
    }

    /// The wire bytes of one message (to send in parts with [`Ws::send_raw`]).
    pub fn encode(&mut self, kind: MessageKind, data: &[u8]) -> BytesMut {
        self.conn.send_message(kind, data).unwrap();
        self.conn.take_output()
    }

    /// Whether permessage-deflate was negotiated, and with context takeover either way.
    pub fn deflate(&self) -> Option<bool> {
        self.conn
            .deflate_params()
            .map(|_| self.conn.carries_context())
    }

    pub async fn send_raw(&mut self, data: &[u8]) {
        self.s.write_all(data).await.unwrap();
    }

    /// Sends FIN (shuts the write side down); the client can still read.
    pub async fn shutdown_write(&mut self) {
        self.s.shutdown().await.unwrap();
    }

    /// The next event (`None` on EOF).
    pub async fn recv(&mut self) -> Option<WsEvent> {
        loop {
            match self.conn.feed(&mut self.buf) {
                Ok(Some(ev)) => {
                    if self.conn.has_output() {
                        let out = self.conn.take_output();
                        let _ = self.s.write_all(&out).await;
                    }
                    return Some(ev);
                }
                Ok(None) => {}
                Err(e) => panic!("client-side protocol error: {e}"),
            }
            match self.s.read_buf(&mut self.buf).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// The next message (skipping control frames); panics on close or after `T`.
    pub async fn message(&mut self) -> (MessageKind, bytes::Bytes) {
        tokio::time::timeout(T, async {
            loop {
                match self.recv().await {
                    Some(WsEvent::Message { kind, data }) => return (kind, data),
                    Some(WsEvent::Close { code, reason }) => panic!("closed: {code} {reason}"),
                    Some(_) => {}
                    None => panic!("connection ended"),
                }
            }
        })
        .await
        .expect("no message in time")
    }

    /// Waits for the server's Close; returns its code.
    pub async fn close_code(&mut self) -> Option<CloseCode> {
        tokio::time::timeout(T, async {
            loop {
                match self.recv().await {
                    Some(WsEvent::Close { code, .. }) => return Some(code),
                    Some(_) => {}
                    None => return None,
                }
            }
        })
        .await
        .expect("no close in time")
    }
}

fn rand_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(Instant::now().elapsed().as_nanos() as u64);
    h.finish() | 1
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn start(example: &str, extra: &[&str]) -> ServerProc {
    let port = 0;
    let p = port.to_string();
    let mut args = vec!["--host", "127.0.0.1", "--port", &p];
    args.extend_from_slice(extra);
    ServerProc::start(example, &args, port)
}

/// ws_echo: text, binary, compressed, large and fragmented messages come back with their
/// opcode; plain HTTP on the same port goes to on_request; both modes.
#[test]
fn ws_echo_roundtrips_both_modes() {
    for mode in ["process", "base"] {
        let srv = start("ws_echo", &["--mode", mode, "--worker-num", "2"]);
        let resp = http_get(srv.port, "/");
        assert_eq!(resp.status, 200, "{mode}");
        assert!(resp.text().contains("ws_echo"));
        rt().block_on(async {
            for deflate in [false, true] {
                let mut ws = Ws::connect(srv.port, deflate).await;
                assert_eq!(ws.conn.is_compressed(), deflate);
                ws.send(MessageKind::Text, "héllo".as_bytes()).await;
                assert_eq!(ws.message().await, (MessageKind::Text, "héllo".into()));
                ws.send(MessageKind::Binary, &[0, 1, 2, 255]).await;
                assert_eq!(
                    ws.message().await,
                    (MessageKind::Binary, vec![0u8, 1, 2, 255].into())
                );
                let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
                ws.send(MessageKind::Binary, &big).await;
                let (_, got) = ws.message().await;
                assert!(got[..] == big[..], "{mode}: 3 MB echo");
                // A fragmented text message with a Ping in the middle.
                ws.send_raw(&masked(0x01, b"frag")).await;
                ws.send_raw(&masked(0x89, b"p")).await;
                ws.send_raw(&masked(0x80, b"mented")).await;
                loop {
                    match ws.recv().await {
                        Some(WsEvent::Pong(p)) => assert_eq!(&p[..], b"p"),
                        Some(WsEvent::Message { kind, data }) => {
                            assert_eq!((kind, &data[..]), (MessageKind::Text, &b"fragmented"[..]));
                            break;
                        }
                        other => panic!("{other:?}"),
                    }
                }
                // Normal close: the server answers with 1000.
                ws.conn.close(CloseCode::NORMAL, "bye").unwrap();
                let out = ws.conn.take_output();
                ws.send_raw(&out).await;
                assert_eq!(ws.close_code().await, Some(CloseCode::NORMAL));
                assert!(
                    ws.recv().await.is_none(),
                    "TCP closed after the close handshake"
                );
            }
        });
    }
}

/// With `--park-idle-after-ms 0` each WebSocket connection parks between messages: every
/// message (plain and compressed) reaches a parked connection, and the close handshake
/// works on one; both modes.
#[test]
fn ws_echo_parked_connections() {
    for mode in ["process", "base"] {
        let srv = start(
            "ws_echo",
            &[
                "--mode",
                mode,
                "--worker-num",
                "1",
                "--park-idle-after-ms",
                "0",
            ],
        );
        rt().block_on(async {
            let mut all = Vec::new();
            for i in 0..10 {
                all.push(Ws::connect(srv.port, i % 2 == 1).await);
            }
            for round in 0..3 {
                for (i, ws) in all.iter_mut().enumerate() {
                    let msg = format!("{mode} {round} {i}");
                    ws.send(MessageKind::Text, msg.as_bytes()).await;
                    assert_eq!(ws.message().await, (MessageKind::Text, msg.into()));
                }
            }
            for mut ws in all {
                ws.conn.close(CloseCode::NORMAL, "bye").unwrap();
                let out = ws.conn.take_output();
                ws.send_raw(&out).await;
                assert_eq!(ws.close_code().await, Some(CloseCode::NORMAL), "{mode}");
                assert!(ws.recv().await.is_none(), "{mode}: TCP closed");
            }
        });
    }
}

/// Broadcasts reach parked connections: with `--park-idle-after-ms 0` the chat's members wait
/// between messages without a task and in their idle WebSocket form (no codec), so each
/// broadcast is written through that form (compressed ones, without context takeover, with a
/// codec built for the write); every member gets every message once, in order, decodable,
/// and still talks after. Both modes.
#[test]
fn ws_broadcast_to_parked_connections() {
    for mode in ["process", "base"] {
        let srv = start(
            "chat",
            &[
                "--mode",
                mode,
                "--worker-num",
                "1",
                "--park-idle-after-ms",
                "0",
            ],
        );
        const CLIENTS: usize = 12;
        rt().block_on(async {
            let mut all = Vec::new();
            for i in 0..CLIENTS {
                all.push(Ws::connect(srv.port, i % 3 == 0).await);
            }
            srv.wait_stdout(" joined ", CLIENTS, T);
            for round in 0..3 {
                for s in 0..3 {
                    let msg = format!("{mode}-{round}-{s}");
                    all[s].send(MessageKind::Text, msg.as_bytes()).await;
                    for (i, ws) in all.iter_mut().enumerate() {
                        let (kind, data) = ws.message().await;
                        assert_eq!(kind, MessageKind::Text, "{mode} client {i}");
                        let text = String::from_utf8(data.to_vec()).unwrap();
                        assert!(
                            text.ends_with(&format!(":{msg}\n")),
                            "{mode} client {i}: {text:?}"
                        );
                    }
                }
            }
            // A parked member (never sent anything) still talks, and is heard by all.
            let last = CLIENTS - 1;
            all[last].send(MessageKind::Text, b"late").await;
            for ws in all.iter_mut() {
                assert!(ws.message().await.1.ends_with(b":late\n"), "{mode}");
            }
        });
    }
}

/// A client frame (FIN/RSV/opcode byte as given) with a zero mask key.
fn masked(b0: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let mut v = vec![b0, 0x80 | payload.len() as u8, 0, 0, 0, 0];
    v.extend_from_slice(payload);
    v
}

/// Protocol errors close with the right code; the server stays up.
#[test]
fn ws_bad_input_close_codes() {
    let srv = start("ws_echo", &["--worker-num", "1"]);
    rt().block_on(async {
        let cases: Vec<(&str, Vec<u8>, u16)> = vec![
            ("unmasked frame", vec![0x81, 0x02, b'h', b'i'], 1002),
            ("reserved bits", masked(0x81 | 0x20, b"hi"), 1002),
            ("reserved opcode", masked(0x83, b"hi"), 1002),
            // A header claiming 128 MiB (over ws_echo's max_frame_size, 64 MiB): rejected
            // before any payload.
            (
                "oversized frame",
                [&[0x82u8, 0xFF][..], &(128u64 << 20).to_be_bytes(), &[0, 0, 0, 0]].concat(),
                1009,
            ),
            ("invalid UTF-8", masked(0x81, &[0xce, 0xba, 0xff, 0xfe]), 1007),
            ("fragmented ping", masked(0x09, b"x"), 1002),
        ];
        for (what, bytes, code) in cases {
            let mut ws = Ws::connect(srv.port, false).await;
            // A valid message first: its echo must arrive before the Close.
            ws.send(MessageKind::Text, b"ok").await;
            ws.send_raw(&bytes).await;
            assert_eq!(ws.message().await.1, &b"ok"[..], "{what}");
            assert_eq!(ws.close_code().await, Some(CloseCode(code)), "{what}");
        }
        // A bad upgrade request is refused with 400/426, not upgraded.
        let resp = http_once(
            srv.port,
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        )
        .expect("an answer");
        assert_eq!(resp.status, 426);
        let mut ws = Ws::connect(srv.port, false).await;
        ws.send(MessageKind::Text, b"still up").await;
        assert_eq!(ws.message().await.1, &b"still up"[..]);
    });
}

/// The bad frames of [`ws_bad_input_close_codes`] after which a frame can still be written
/// (the oversized header leaves nothing to read on): each with its close code.
fn bad_frames() -> Vec<(&'static str, Vec<u8>, u16)> {
    vec![
        ("unmasked frame", vec![0x81, 0x02, b'h', b'i'], 1002),
        ("reserved opcode", masked(0x83, b"hi"), 1002),
        (
            "invalid UTF-8",
            masked(0x81, &[0xce, 0xba, 0xff, 0xfe]),
            1007,
        ),
        ("fragmented ping", masked(0x09, b"x"), 1002),
    ]
}

/// A reply the application produces is delivered before the Close that a later protocol
/// error causes, however long the handler takes: ws_kit's `slow:300:ok` answers after 300 ms,
/// the bad frame arrives meanwhile, and the Close waits (`WsState::final_out`) in both modes.
#[test]
fn ws_slow_echo_arrives_before_protocol_error_close_both_modes() {
    for mode in ["process", "base"] {
        let srv = kit(&["--mode", mode, "--worker-num", "1"]);
        rt().block_on(async {
            for (what, bytes, code) in bad_frames() {
                let mut ws = Ws::connect(srv.port, false).await;
                assert!(text(&mut ws).await.starts_with("welcome "), "{mode} {what}");
                ws.send(MessageKind::Text, b"slow:300:ok").await;
                ws.send_raw(&bytes).await;
                assert_eq!(text(&mut ws).await, "ok", "{mode} {what}");
                assert_eq!(
                    ws.close_code().await,
                    Some(CloseCode(code)),
                    "{mode} {what}"
                );
            }
        });
    }
}

/// A client that half-closes right after a message and the frame that ends the session (a
/// bad frame, or its own Close) still gets, in order, the echo the slow handler owes it, the
/// server's Close with the right code, and then EOF: the Close held back for the echo
/// (`WsState::final_out`) is written to the half-closed socket before it closes, both modes.
#[test]
fn ws_half_closed_client_gets_echo_then_held_close_both_modes() {
    let mut cases = bad_frames();
    cases.push((
        "client Close 1000",
        masked(0x88, &1000u16.to_be_bytes()),
        1000,
    ));
    cases.push((
        "client Close 4001",
        masked(0x88, &4001u16.to_be_bytes()),
        4001,
    ));
    for mode in ["process", "base"] {
        let srv = kit(&["--mode", mode, "--worker-num", "1"]);
        rt().block_on(async {
            for (what, bytes, code) in &cases {
                let mut ws = Ws::connect(srv.port, false).await;
                assert!(text(&mut ws).await.starts_with("welcome "), "{mode} {what}");
                ws.send(MessageKind::Text, b"slow:300:ok").await;
                ws.send_raw(bytes).await;
                ws.shutdown_write().await;
                assert_eq!(text(&mut ws).await, "ok", "{mode} {what}");
                assert_eq!(
                    ws.close_code().await,
                    Some(CloseCode(*code)),
                    "{mode} {what}: the held Close after the echo"
                );
                let end = tokio::time::timeout(T, ws.recv()).await;
                assert!(
                    matches!(end, Ok(None)),
                    "{mode} {what}: EOF after the Close, got {end:?}"
                );
            }
        });
    }
}

/// Many clients at once, each sending a message and then a bad frame as soon as it is
/// upgraded: every echo comes before its Close, in both modes. The messages reach the
/// workers while the `WsOpen` events of the same connections are being acknowledged: a
/// finished event's "the connection is idle" was a snapshot, and a Close held back for a
/// message dispatched after it used to be written at once, before that message's echo (about
/// one connection in 200 under load).
#[test]
fn ws_echo_before_close_under_concurrency_both_modes() {
    const CLIENTS: usize = 64;
    const ROUNDS: usize = 4;
    for mode in ["process", "base"] {
        let srv = start("ws_echo", &["--mode", mode, "--worker-num", "2"]);
        rt().block_on(async {
            for round in 0..ROUNDS {
                let tasks: Vec<_> = (0..CLIENTS)
                    .map(|i| {
                        let port = srv.port;
                        let (what, bytes, code) = bad_frames().swap_remove(i % 4);
                        tokio::spawn(async move {
                            let mut ws = Ws::connect(port, false).await;
                            let msg = format!("ok {i}");
                            ws.send(MessageKind::Text, msg.as_bytes()).await;
                            ws.send_raw(&bytes).await;
                            assert_eq!(ws.message().await.1, msg.as_bytes(), "{mode} {what}");
                            assert_eq!(
                                ws.close_code().await,
                                Some(CloseCode(code)),
                                "{mode} {what}"
                            );
                        })
                    })
                    .collect();
                for t in tasks {
                    if let Err(e) = t.await {
                        panic!("{mode} round {round}: {e}");
                    }
                }
            }
        });
    }
}

/// The chat (4 workers): 500 clients; 3 of them send 20 messages each; every client gets all
/// 60 broadcasts exactly once, each sender's in the order sent. The page is served at `/`.
#[test]
fn chat_broadcast_500_clients_4_workers() {
    let srv = start("chat", &["--worker-num", "4"]);
    let page = http_get(srv.port, "/");
    assert_eq!(page.status, 200);
    let html = page.text();
    for needle in ["id=\"msg\"", "id=\"text\"", "location.host", "<button"] {
        assert!(html.contains(needle), "page lacks {needle}");
    }
    const CLIENTS: usize = 500;
    const SENDERS: usize = 3;
    const PER: usize = 20;
    rt().block_on(async {
        let mut clients = Vec::new();
        for i in 0..CLIENTS {
            clients.push(Ws::connect(srv.port, i % 5 == 0).await);
        }
        // Every client is established (its on_open ran) before anyone sends.
        srv.wait_stdout(" joined ", CLIENTS, T);
        let mut senders: Vec<Ws> = clients.drain(..SENDERS).collect();
        let readers: Vec<_> = clients
            .into_iter()
            .map(|mut ws| {
                tokio::spawn(async move {
                    let mut got: Vec<String> = Vec::new();
                    while got.len() < SENDERS * PER {
                        let (kind, data) = ws.message().await;
                        assert_eq!(kind, MessageKind::Text);
                        got.push(String::from_utf8(data.to_vec()).unwrap());
                    }
                    (ws, got)
                })
            })
            .collect();
        for k in 0..PER {
            for (s, ws) in senders.iter_mut().enumerate() {
                ws.send(MessageKind::Text, format!("s{s}-{k}").as_bytes())
                    .await;
            }
        }
        let mut sender_got = Vec::new();
        for ws in senders.iter_mut() {
            let mut got = Vec::new();
            while got.len() < SENDERS * PER {
                got.push(String::from_utf8(ws.message().await.1.to_vec()).unwrap());
            }
            sender_got.push(got);
        }
        let mut all = sender_got;
        for r in readers {
            let (_ws, got) = r.await.expect("reader");
            all.push(got);
        }
        for got in &all {
            // from{fd}:s{sender}-{k}\n — per sender, k = 0..PER in order, once each.
            let mut next: HashMap<String, usize> = HashMap::new();
            for m in got {
                assert!(m.starts_with("from") && m.ends_with('\n'), "{m:?}");
                let body = m.trim_end().split_once(':').unwrap().1;
                let (s, k) = body.split_once('-').unwrap();
                let k: usize = k.parse().unwrap();
                let n = next.entry(s.to_string()).or_default();
                assert_eq!(*n, k, "sender {s}: out of order or duplicate");
                *n += 1;
            }
            assert_eq!(next.len(), SENDERS);
            assert!(next.values().all(|&n| n == PER));
        }
        assert_eq!(all.len(), CLIENTS);
    });
}

/// A broadcast made as soon as a client has its 101 reaches that client: the server opens the
/// connection for broadcasts before the client can know it is open. Client A stays; 150 times
/// a client B connects (every other one with permessage-deflate) and, the moment its handshake
/// is answered, A sends `n{i}`: B must get A's broadcast `from{A}:n{i}\n` (in Base mode after,
/// possibly, earlier broadcasts of A still on their way to B's worker), and A gets it too. Both modes, 2 workers. (It failed about once in 75 rounds in Process mode
/// under load when the 101 went out before the connection's WebSocket state was in place.)
#[test]
fn ws_broadcast_reaches_a_client_the_moment_it_is_open_both_modes() {
    for mode in ["process", "base"] {
        let srv = start("chat", &["--mode", mode, "--worker-num", "2"]);
        rt().block_on(async {
            let mut a = Ws::connect(srv.port, false).await;
            srv.wait_stdout(" joined ", 1, T);
            // A's fd, from a first broadcast that only A hears.
            a.send(MessageKind::Text, b"hello").await;
            let first = String::from_utf8(a.message().await.1.to_vec()).unwrap();
            let from = first
                .strip_suffix(":hello\n")
                .expect("from{fd}:hello")
                .to_string();
            for i in 0..150 {
                let mut b = Ws::connect(srv.port, i % 2 == 0).await;
                let text = format!("n{i}");
                a.send(MessageKind::Text, text.as_bytes()).await;
                let want = format!("{from}:{text}\n");
                // Base mode: a broadcast A made earlier reaches B's worker through its
                // mailbox and may arrive after B opened there; it comes before `want`.
                loop {
                    let got_b = String::from_utf8(b.message().await.1.to_vec()).unwrap();
                    if got_b == want {
                        break;
                    }
                    let earlier = got_b
                        .strip_prefix(&format!("{from}:"))
                        .is_some_and(|t| t == "hello\n" || t.starts_with('n'));
                    assert!(
                        mode == "base" && earlier,
                        "mode {mode}, round {i}: the new client got {got_b:?}, want {want:?}"
                    );
                }
                let got_a = String::from_utf8(a.message().await.1.to_vec()).unwrap();
                assert_eq!(got_a, want, "mode {mode}, round {i}: the sender");
            }
        });
    }
}

/// A client that never reads is dropped once its output exceeds buffer_output_size, while the
/// master's memory stays bounded and the others keep chatting. It is told why: after what
/// was queued for it comes a Close frame with 1008; the server logs it once (not once per
/// broadcast that no longer fits).
#[test]
fn ws_client_that_never_reads_is_dropped() {
    let srv = start("chat", &["--worker-num", "2"]);
    rt().block_on(async {
        let mut sleeper = Ws::connect(srv.port, false).await;
        let mut talker = Ws::connect(srv.port, false).await;
        // Both are chat members (on_open ran) before the broadcasts start.
        srv.wait_stdout(" joined ", 2, T);
        let chunk = "x".repeat(60_000);
        // Broadcast until the sleeper's 2 MiB output buffer (+ kernel buffers) overflows,
        // then 100 more: the overflow is logged once.
        let overflowed = |srv: &ServerProc| srv.stderr().matches("output buffer full").count();
        let mut sent = 0;
        let mut after = 0;
        while after < 100 {
            talker.send(MessageKind::Text, chunk.as_bytes()).await;
            let (_, m) = talker.message().await;
            assert!(m.len() > chunk.len(), "{sent}");
            sent += 1;
            assert!(sent < 5_000, "the sleeper was never dropped");
            if overflowed(&srv) > 0 {
                after += 1;
            }
        }
        assert_eq!(overflowed(&srv), 1, "stderr:\n{}", srv.stderr());
        let hwm = vm_hwm_kib(srv.pid());
        assert!(hwm < 200 * 1024, "master peak RSS {hwm} KiB");
        // The sleeper reads now: what was queued, then Close 1008, then EOF.
        let code = sleeper.close_code().await;
        assert_eq!(code, Some(CloseCode::POLICY_VIOLATION));
        talker.send(MessageKind::Text, b"still here").await;
        let (_, m) = talker.message().await;
        assert!(m.ends_with(b":still here\n"));
    });
}

/// Process mode: SIGKILL every worker while WebSocket clients are connected: the clients stay
/// connected and keep getting echoes from the replacements.
#[test]
fn ws_clients_survive_worker_sigkill() {
    let srv = start("ws_echo", &["--worker-num", "2"]);
    rt().block_on(async {
        let mut clients = Vec::new();
        for _ in 0..8 {
            clients.push(Ws::connect(srv.port, false).await);
        }
        for ws in clients.iter_mut() {
            ws.send(MessageKind::Text, b"before").await;
            assert_eq!(ws.message().await.1, &b"before"[..]);
        }
        for round in 0..2 {
            let workers = srv.wait_titles("rswoole: worker", 2, T);
            for w in &workers {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(*w),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            for (i, ws) in clients.iter_mut().enumerate() {
                let msg = format!("after kill {round} #{i}");
                ws.send(MessageKind::Text, msg.as_bytes()).await;
                assert_eq!(ws.message().await.1, msg.as_bytes(), "round {round}");
            }
        }
    });
}

fn kit(extra: &[&str]) -> ServerProc {
    let port = 0;
    let addr = format!("127.0.0.1:{port}");
    let mut args = vec!["--addr", &addr];
    args.extend_from_slice(extra);
    ServerProc::start("ws_kit", &args, port)
}

async fn text(ws: &mut Ws) -> String {
    String::from_utf8(ws.message().await.1.to_vec()).unwrap()
}

/// on_handshake rejects and picks a subprotocol; on_open gets the request; is_established,
/// ws_connections, broadcast_to and disconnect (close code and reason, then on_close); both
/// modes.
#[test]
fn ws_handshake_open_and_handle_methods() {
    for mode in ["process", "base"] {
        let srv = kit(&["--handshake", "--mode", mode, "--worker-num", "1"]);
        rt().block_on(async {
            assert_eq!(
                Ws::connect_with(srv.port, "/reject", &[]).await.err(),
                Some(403),
                "{mode}"
            );
            let (mut a, proto) = Ws::connect_with(srv.port, "/room?x=1", &["other", "chat.v1"])
                .await
                .unwrap();
            assert_eq!(proto.as_deref(), Some("chat.v1"));
            let welcome = text(&mut a).await;
            assert!(
                welcome.starts_with("welcome ") && welcome.ends_with(" /room"),
                "{welcome}"
            );
            let fd_a: u64 = welcome.split(' ').nth(1).unwrap().parse().unwrap();
            let (mut b, proto) = Ws::connect_with(srv.port, "/", &[]).await.unwrap();
            assert_eq!(proto, None);
            let fd_b: u64 = text(&mut b)
                .await
                .split(' ')
                .nth(1)
                .unwrap()
                .parse()
                .unwrap();
            a.send(MessageKind::Text, b"who").await;
            assert_eq!(text(&mut a).await, "established=true count=2");
            // broadcast_to: only the listed connections (and not a bogus id).
            a.send(
                MessageKind::Text,
                format!("to:{fd_b},999999:hi b").as_bytes(),
            )
            .await;
            assert_eq!(text(&mut b).await, "hi b");
            a.send(
                MessageKind::Text,
                format!("to:{fd_a},{fd_b}:hi all").as_bytes(),
            )
            .await;
            assert_eq!(text(&mut a).await, "hi all");
            assert_eq!(text(&mut b).await, "hi all");
            // disconnect: Close 4000 "bye"; our reply ends the TCP connection; on_close runs.
            b.send(MessageKind::Text, b"bye").await;
            let code = tokio::time::timeout(T, async {
                loop {
                    match b.recv().await {
                        Some(WsEvent::Close { code, reason }) => return (code, reason),
                        Some(_) => {}
                        None => panic!("no Close"),
                    }
                }
            })
            .await
            .unwrap();
            assert_eq!(code, (CloseCode(4000), "bye".to_string()));
            assert!(b.recv().await.is_none());
            srv.wait_stdout(&format!("close {fd_b}"), 1, T);
            a.send(MessageKind::Text, b"who").await;
            assert_eq!(text(&mut a).await, "established=true count=1");
        });
    }
}

/// Keepalive: with ping_interval, a client that answers pings stays; one that never reads
/// (so never answers) is closed after the pong timeout and on_close runs. With
/// deliver_control_frames, the Pong reaches on_message.
#[test]
fn ws_keepalive_pings_and_drops_silent_clients() {
    let srv = kit(&["--ping-ms", "300", "--pong-ms", "1000", "--deliver-control"]);
    rt().block_on(async {
        let mut live = Ws::connect(srv.port, false).await;
        let fd_live: u64 = text(&mut live)
            .await
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let mut silent = Ws::connect(srv.port, false).await;
        let fd_silent: u64 = text(&mut silent)
            .await
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        // `live` keeps reading (its codec answers pings); `silent` does not read at all.
        // `live` reads until `silent` was dropped and then two more pings came: it outlived
        // the pong timeout that ended `silent`, and is still being pinged after it.
        let silent_gone = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let gone = silent_gone.clone();
        let reader = tokio::spawn(async move {
            let (mut pings, mut pings_after) = (0, 0);
            let deadline = Instant::now() + T;
            while pings_after < 2 {
                assert!(
                    Instant::now() < deadline,
                    "{pings} pings, {pings_after} after"
                );
                match tokio::time::timeout(Duration::from_millis(100), live.recv()).await {
                    Ok(Some(WsEvent::Ping(_))) => {
                        pings += 1;
                        if gone.load(std::sync::atomic::Ordering::Acquire) {
                            pings_after += 1;
                        }
                    }
                    Ok(None) => panic!("live client was closed"),
                    _ => {}
                }
            }
            (live, pings)
        });
        srv.wait_stdout(&format!("close {fd_silent}\n"), 1, T);
        silent_gone.store(true, std::sync::atomic::Ordering::Release);
        let (mut live, pings) = reader.await.unwrap();
        assert!(pings >= 2, "pings seen: {pings}");
        assert!(!srv.stdout().contains(&format!("close {fd_live}\n")));
        assert!(srv.stdout().contains("control Pong"), "{}", srv.stdout());
        live.send(MessageKind::Text, b"still").await;
        assert_eq!(text(&mut live).await, "still");
        // The silent client: what the kernel held, then the end.
        let ended = tokio::time::timeout(T, async { while silent.recv().await.is_some() {} }).await;
        assert!(ended.is_ok());
    });
}

/// Connects `n` clients one at a time to a server that prints one line per `on_open` (chat:
/// `client {fd} joined (worker {w})`, ws_kit: `open {fd} worker {w}`) and returns each
/// client with its fd and the worker that owns it (the n-th line is the n-th client's: the
/// next client connects only after it appeared).
async fn connect_mapped(srv: &ServerProc, n: usize, deflate_every: usize) -> Vec<(Ws, u64, u64)> {
    let parse = |line: &str| -> Option<(u64, u64)> {
        let nums: Vec<u64> = line
            .split(|c: char| !c.is_ascii_digit())
            .filter(|t| !t.is_empty())
            .filter_map(|t| t.parse().ok())
            .collect();
        match nums[..] {
            [fd, w] => Some((fd, w)),
            _ => None,
        }
    };
    let opened = |s: &str| -> Vec<(u64, u64)> {
        s.lines()
            .filter(|l| l.starts_with("open ") || l.contains(" joined "))
            .filter_map(parse)
            .collect()
    };
    let mut out = Vec::new();
    for i in 0..n {
        let ws = Ws::connect(srv.port, deflate_every > 0 && i % deflate_every == 0).await;
        let deadline = Instant::now() + T;
        let (fd, w) = loop {
            let lines = opened(&srv.stdout());
            if lines.len() > i {
                assert_eq!(lines.len(), i + 1, "one on_open per client");
                break lines[i];
            }
            assert!(Instant::now() < deadline, "no on_open line for client {i}");
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        out.push((ws, fd, w));
    }
    out
}

/// Base mode chat (4 workers, SO_REUSEPORT): 200 clients spread over the workers; one sender
/// per worker that has clients sends 20 messages; every client gets every broadcast exactly
/// once, each sender's in the order sent — whichever worker accepted the sender and the
/// reader (one mailbox datagram per other worker, fanned out there).
#[test]
fn chat_broadcast_base_mode_200_clients_4_workers() {
    let srv = start("chat", &["--mode", "base", "--worker-num", "4"]);
    srv.wait_titles("rswoole: worker", 4, T);
    // Every worker listens (SO_REUSEPORT spreads the clients over the listening ones).
    srv.wait_listening(4, T);
    const CLIENTS: usize = 200;
    const PER: usize = 20;
    rt().block_on(async {
        let clients = connect_mapped(&srv, CLIENTS, 5).await;
        let mut per_worker: HashMap<u64, usize> = HashMap::new();
        for (_, _, w) in &clients {
            *per_worker.entry(*w).or_default() += 1;
        }
        eprintln!("clients per worker: {per_worker:?}");
        assert!(
            per_worker.len() >= 2,
            "clients all landed on one worker: {per_worker:?}"
        );
        // One sender per worker (its first client); everyone else only reads.
        let mut sender_idx: HashMap<u64, usize> = HashMap::new();
        for (i, (_, _, w)) in clients.iter().enumerate() {
            sender_idx.entry(*w).or_insert(i);
        }
        let mut senders = Vec::new();
        let mut readers = Vec::new();
        for (i, c) in clients.into_iter().enumerate() {
            if sender_idx.values().any(|&s| s == i) {
                senders.push(c);
            } else {
                readers.push(c);
            }
        }
        let n_senders = senders.len();
        let total = n_senders * PER;
        let readers: Vec<_> = readers
            .into_iter()
            .map(|(mut ws, fd, w)| {
                tokio::spawn(async move {
                    let mut got: Vec<String> = Vec::new();
                    while got.len() < total {
                        let (kind, data) = ws.message().await;
                        assert_eq!(kind, MessageKind::Text);
                        got.push(String::from_utf8(data.to_vec()).unwrap());
                    }
                    // Nothing more (no duplicates) shortly after.
                    let extra = tokio::time::timeout(Duration::from_millis(200), ws.recv()).await;
                    assert!(
                        !matches!(extra, Ok(Some(WsEvent::Message { .. }))),
                        "client {fd} (worker {w}) got an extra message: {extra:?}"
                    );
                    (fd, w, got)
                })
            })
            .collect();
        for k in 0..PER {
            for (s, (ws, _, _)) in senders.iter_mut().enumerate() {
                ws.send(MessageKind::Text, format!("s{s}-{k}").as_bytes())
                    .await;
            }
        }
        let mut all = Vec::new();
        for (ws, fd, w) in senders.iter_mut() {
            let mut got = Vec::new();
            while got.len() < total {
                got.push(String::from_utf8(ws.message().await.1.to_vec()).unwrap());
            }
            all.push((*fd, *w, got));
        }
        for r in readers {
            all.push(r.await.expect("reader"));
        }
        assert_eq!(all.len(), CLIENTS);
        let sender_fds: Vec<u64> = senders.iter().map(|(_, fd, _)| *fd).collect();
        for (fd, w, got) in &all {
            // from{fd}:s{sender}-{k}\n — per sender, k = 0..PER in order, once each.
            let mut next: HashMap<String, usize> = HashMap::new();
            for m in got {
                assert!(m.starts_with("from") && m.ends_with('\n'), "{m:?}");
                let (from, body) = m.trim_end().split_once(':').unwrap();
                let (s, k) = body.split_once('-').unwrap();
                let s_idx: usize = s[1..].parse().unwrap();
                assert_eq!(from, format!("from{}", sender_fds[s_idx]));
                let k: usize = k.parse().unwrap();
                let n = next.entry(s.to_string()).or_default();
                assert_eq!(
                    *n, k,
                    "client {fd} (worker {w}), sender {s}: out of order or duplicate"
                );
                *n += 1;
            }
            assert_eq!(next.len(), n_senders, "client {fd} (worker {w})");
            assert!(next.values().all(|&n| n == PER), "client {fd} (worker {w})");
        }
    });
}

/// Base mode (4 workers): push, broadcast_to and disconnect reach a connection owned by
/// another worker (forwarded to its owner); ws_connections/is_established see every worker's
/// connections; a push to a connection that is gone is `Closed`.
#[test]
fn ws_base_mode_push_and_disconnect_across_workers() {
    let srv = kit(&["--mode", "base", "--worker-num", "4"]);
    srv.wait_titles("rswoole: worker", 4, T);
    // Every worker listens (SO_REUSEPORT spreads the clients over the listening ones).
    srv.wait_listening(4, T);
    rt().block_on(async {
        // Connect until two clients are on different workers.
        let mut clients: Vec<(Ws, u64, u64)> = Vec::new();
        let mut pair = None;
        for i in 0..40 {
            let mut c = connect_mapped_one(&srv, clients.len()).await;
            let welcome = text(&mut c.0).await;
            assert!(
                welcome.starts_with(&format!("welcome {} ", c.1)),
                "{welcome}"
            );
            c.0.send(MessageKind::Text, b"worker").await;
            assert_eq!(text(&mut c.0).await, format!("worker {}", c.2));
            clients.push(c);
            if let Some(j) = clients[..i].iter().position(|o| o.2 != clients[i].2) {
                pair = Some((j, i));
                break;
            }
        }
        let (ia, ib) = pair.expect("40 clients all on one worker");
        let n = clients.len();
        let (fd_a, fd_b) = (clients[ia].1, clients[ib].1);
        let (wa, wb) = (clients[ia].2, clients[ib].2);
        assert_ne!(wa, wb);
        let mut b = clients.remove(ib);
        let mut a = clients.remove(ia);

        // Every worker's connections are visible from any worker.
        a.0.send(MessageKind::Text, b"who").await;
        assert_eq!(text(&mut a.0).await, format!("established=true count={n}"));

        // push to B (worker wb) from A's worker wa.
        a.0.send(MessageKind::Text, format!("push:{fd_b}:hello b").as_bytes())
            .await;
        assert_eq!(text(&mut a.0).await, "push ok");
        assert_eq!(text(&mut b.0).await, "hello b");
        // Several pushes keep their order.
        for k in 0..10 {
            a.0.send(MessageKind::Text, format!("push:{fd_b}:n{k}").as_bytes())
                .await;
        }
        for k in 0..10 {
            assert_eq!(text(&mut a.0).await, "push ok");
            assert_eq!(text(&mut b.0).await, format!("n{k}"));
        }
        // broadcast_to: one local and one remote connection (and a bogus id).
        a.0.send(
            MessageKind::Text,
            format!("to:{fd_a},{fd_b},999999:both").as_bytes(),
        )
        .await;
        assert_eq!(text(&mut a.0).await, "both");
        assert_eq!(text(&mut b.0).await, "both");
        // A 300 KB push and broadcast_to: chunked over the mailbox, reassembled by the owner.
        let big: String = (0..300_000u32)
            .map(|i| (b'a' + (i % 26) as u8) as char)
            .collect();
        a.0.send(MessageKind::Text, format!("push:{fd_b}:{big}").as_bytes())
            .await;
        assert_eq!(text(&mut a.0).await, "push ok");
        assert!(text(&mut b.0).await == big, "300 KB push");
        a.0.send(
            MessageKind::Text,
            format!("to:{fd_b},{fd_a}:{big}").as_bytes(),
        )
        .await;
        assert!(text(&mut a.0).await == big, "300 KB broadcast_to, local");
        assert!(text(&mut b.0).await == big, "300 KB broadcast_to, remote");
        // A push to a connection that does not exist.
        a.0.send(MessageKind::Text, b"push:999999:x").await;
        let r = text(&mut a.0).await;
        assert!(r.starts_with("push err "), "{r}");

        // disconnect B from A's worker: B gets Close 4001 "kicked"; on_close runs.
        a.0.send(MessageKind::Text, format!("kick:{fd_b}").as_bytes())
            .await;
        assert_eq!(text(&mut a.0).await, "kick true");
        let close = tokio::time::timeout(T, async {
            loop {
                match b.0.recv().await {
                    Some(WsEvent::Close { code, reason }) => return (code, reason),
                    Some(_) => {}
                    None => panic!("no Close"),
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(close, (CloseCode(4001), "kicked".to_string()));
        assert!(
            tokio::time::timeout(T, b.0.recv()).await.unwrap().is_none(),
            "TCP closed after the close handshake"
        );
        srv.wait_stdout(&format!("close {fd_b}\n"), 1, T);
        // Gone now: push is Closed, disconnect false, the count dropped.
        a.0.send(MessageKind::Text, format!("push:{fd_b}:late").as_bytes())
            .await;
        let r = text(&mut a.0).await;
        assert!(r.starts_with("push err "), "{r}");
        a.0.send(MessageKind::Text, format!("kick:{fd_b}").as_bytes())
            .await;
        assert_eq!(text(&mut a.0).await, "kick false");
        a.0.send(MessageKind::Text, b"who").await;
        assert_eq!(
            text(&mut a.0).await,
            format!("established=true count={}", n - 1)
        );
    });
}

/// Base mode (2 workers): worker B is killed with kill -9 and its replacement is held in
/// `on_worker_start`. B's clients died with it, so from a client of worker A a push to one of
/// them is an error (never a silent `Ok`), a kick is refused, and `ws_connections` no longer
/// counts them; a broadcast while B is down reports B as unreachable. Once the replacement
/// serves, broadcast is `Ok` again and its new clients get pushes.
#[test]
fn ws_base_mode_push_to_a_dead_workers_client_is_an_error() {
    let gate = tempfile::tempdir().unwrap();
    let srv = kit(&[
        "--mode",
        "base",
        "--worker-num",
        "2",
        "--start-gate",
        gate.path().to_str().unwrap(),
    ]);
    srv.wait_titles("rswoole: worker", 2, T);
    srv.wait_listening(2, T);
    rt().block_on(async {
        // Connect until two clients are on different workers.
        let mut clients: Vec<(Ws, u64, u64)> = Vec::new();
        let mut pair = None;
        for i in 0..40 {
            let mut c = connect_mapped_one(&srv, clients.len()).await;
            let welcome = text(&mut c.0).await;
            assert!(
                welcome.starts_with(&format!("welcome {} ", c.1)),
                "{welcome}"
            );
            clients.push(c);
            if let Some(j) = clients[..i].iter().position(|o| o.2 != clients[i].2) {
                pair = Some((j, i));
                break;
            }
        }
        let (ia, ib) = pair.expect("40 clients all on one worker");
        let mut opened = clients.len();
        let (wa, wb) = (clients[ia].2, clients[ib].2);
        let on_a = clients.iter().filter(|c| c.2 == wa).count();
        let mut b = clients.remove(ib);
        let mut a = clients.remove(ia);
        let fd_b = b.1;
        a.0.send(MessageKind::Text, format!("push:{fd_b}:hello b").as_bytes())
            .await;
        assert_eq!(text(&mut a.0).await, "push ok");
        assert_eq!(text(&mut b.0).await, "hello b");

        // kill -9 worker B; its replacement stays in on_worker_start.
        std::fs::write(gate.path().join(format!("hold-w{wb}")), b"").unwrap();
        let title = format!("rswoole: worker {wb}");
        let old = srv.with_title(&title);
        assert_eq!(old.len(), 1, "{old:?}");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(old[0]),
            nix::sys::signal::Signal::SIGKILL,
        )
        .expect("kill -9 worker B");
        // B's connection died with its worker.
        tokio::time::timeout(T, async { while b.0.recv().await.is_some() {} })
            .await
            .expect("B's connection did not end");
        // The replacement exists: the manager reaped the old incarnation.
        let deadline = Instant::now() + T;
        loop {
            let now = srv.with_title(&title);
            if now.len() == 1 && now[0] != old[0] {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "worker {wb} not restarted: {now:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        // A push to B's (dead) client: an error, not `Ok`.
        a.0.send(MessageKind::Text, format!("push:{fd_b}:lost?").as_bytes())
            .await;
        let r = text(&mut a.0).await;
        assert!(
            r.starts_with("push err "),
            "push to a dead worker's client: {r}"
        );
        a.0.send(MessageKind::Text, format!("kick:{fd_b}").as_bytes())
            .await;
        assert_eq!(text(&mut a.0).await, "kick false");
        a.0.send(MessageKind::Text, b"who").await;
        assert_eq!(
            text(&mut a.0).await,
            format!("established=true count={on_a}"),
            "the dead worker's clients are gone from ws_connections"
        );
        // A broadcast while B is down: A's clients get it, B is reported unreachable.
        a.0.send(MessageKind::Text, b"all:while down").await;
        assert_eq!(text(&mut a.0).await, "while down");
        let r = text(&mut a.0).await;
        assert!(
            r.starts_with("all err ") && r.ends_with(&format!("workers [{wb}]")),
            "broadcast while worker {wb} is down: {r}"
        );

        // Let the replacement finish starting: broadcast is Ok once it serves.
        std::fs::remove_file(gate.path().join(format!("hold-w{wb}"))).unwrap();
        let deadline = Instant::now() + T;
        for k in 0.. {
            let msg = format!("up{k}");
            a.0.send(MessageKind::Text, format!("all:{msg}").as_bytes())
                .await;
            assert_eq!(text(&mut a.0).await, msg);
            let r = text(&mut a.0).await;
            if r == "all ok" {
                break;
            }
            assert!(r.starts_with("all err "), "{r}");
            assert!(Instant::now() < deadline, "worker {wb} never served again");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // A new client of the replacement gets pushes from A.
        let mut c = loop {
            let mut c = connect_mapped_one(&srv, opened).await;
            opened += 1;
            let welcome = text(&mut c.0).await;
            assert!(
                welcome.starts_with(&format!("welcome {} ", c.1)),
                "{welcome}"
            );
            if c.2 == wb {
                break c;
            }
            assert!(opened < 80, "no client landed on the new worker {wb}");
        };
        a.0.send(MessageKind::Text, format!("push:{}:hi c", c.1).as_bytes())
            .await;
        assert_eq!(text(&mut a.0).await, "push ok");
        let mut m = text(&mut c.0).await;
        if m.starts_with("up") {
            // The last broadcast may reach the new worker after this client joined it (as a
            // broadcast reaches whoever is connected when the socket owner applies it).
            m = text(&mut c.0).await;
        }
        assert_eq!(m, "hi c");
    });
}

/// One more client for `connect_mapped`'s bookkeeping: the `index`-th on_open line.
async fn connect_mapped_one(srv: &ServerProc, index: usize) -> (Ws, u64, u64) {
    let ws = Ws::connect(srv.port, false).await;
    let deadline = Instant::now() + T;
    loop {
        let lines: Vec<String> = srv
            .stdout()
            .lines()
            .filter(|l| l.starts_with("open "))
            .map(str::to_owned)
            .collect();
        if lines.len() > index {
            // "open {fd} worker {w}"
            let f: Vec<&str> = lines[index].split(' ').collect();
            return (ws, f[1].parse().unwrap(), f[3].parse().unwrap());
        }
        assert!(
            Instant::now() < deadline,
            "no on_open line for client {index}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// scripts/autobahn.sh without the suite beside the checkout (`../shared`) and no
/// `AUTOBAHN_SH` fails at once, naming what is missing and where it looked, instead of
/// falling back to one machine's absolute path.
#[test]
fn ws_autobahn_script_needs_the_suite() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    // A checkout with nothing beside it: tmp/repo/scripts/autobahn.sh, no tmp/shared.
    let tmp = tempfile::tempdir().unwrap();
    let scripts = tmp.path().join("repo/scripts");
    std::fs::create_dir_all(&scripts).unwrap();
    std::fs::copy(
        root.join("scripts/autobahn.sh"),
        scripts.join("autobahn.sh"),
    )
    .unwrap();
    let out = std::process::Command::new("timeout")
        .args(["20", "bash"])
        .arg(scripts.join("autobahn.sh"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .expect("bash and timeout");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert_ne!(out.status.code(), Some(124), "timed out: {stderr}");
    assert!(
        stderr.contains("../shared/conformance/autobahn.sh") && stderr.contains("AUTOBAHN_SH"),
        "the message names the suite, where it looked and how to point at it: {stderr}"
    );
    assert!(
        stderr.contains(&tmp.path().join("shared").display().to_string()),
        "the message names the absolute place it looked: {stderr}"
    );
}
