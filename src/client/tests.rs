//! Both clients against small in-process servers (std threads and tokio tasks; no fork).

use std::io::{Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::thread;
use std::time::Duration;

use rswoole_codec::stream::{FrameError, Framing, LengthSpec, LengthType};

use super::*;

const T: Duration = Duration::from_secs(5);

fn length_config() -> ClientConfig {
    ClientConfig {
        framing: Framing::Length(LengthSpec::new(LengthType::U32Be, 0, 4)),
        ..Default::default()
    }
}

fn eof_config() -> ClientConfig {
    ClientConfig {
        framing: Framing::Eof {
            eof: b"\r\n".to_vec(),
            split: true,
        },
        ..Default::default()
    }
}

/// A one-connection std server running `f` on the accepted stream.
fn serve_once(f: impl FnOnce(std::net::TcpStream) + Send + 'static) -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        s.set_nodelay(true).unwrap();
        f(s)
    });
    addr
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut v = (body.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(body);
    v
}

#[test]
fn client_sync_raw_echo() {
    let addr = serve_once(|mut s| {
        let mut buf = [0u8; 100];
        let n = s.read(&mut buf).unwrap();
        s.write_all(&[b"Server: ", &buf[..n]].concat()).unwrap();
    });
    let mut c = SyncClient::connect(addr, T).unwrap();
    c.send(b"hello").unwrap();
    assert_eq!(&c.recv().unwrap()[..], b"Server: hello");
    // The server is gone now.
    assert!(matches!(c.recv(), Err(ClientError::Closed)));
    assert!(c.is_closed());
    assert!(matches!(c.send(b"x"), Err(ClientError::Closed)));
}

#[test]
fn client_sync_length_fragmented_and_coalesced() {
    let addr = serve_once(|mut s| {
        // One frame a byte at a time, then three in one write.
        for b in frame(b"slow") {
            s.write_all(&[b]).unwrap();
            s.flush().unwrap();
            thread::sleep(Duration::from_millis(2));
        }
        let mut all = frame(b"a");
        all.extend(frame(b""));
        all.extend(frame(b"ccc"));
        s.write_all(&all).unwrap();
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).unwrap();
        s.write_all(&buf[..n]).unwrap();
    });
    let mut c = SyncClient::connect_with(SockType::Tcp, addr, T, length_config()).unwrap();
    assert_eq!(&c.recv().unwrap()[..], b"\0\0\0\x04slow");
    assert_eq!(&c.recv().unwrap()[..], b"\0\0\0\x01a");
    assert_eq!(&c.recv().unwrap()[..], b"\0\0\0\0");
    assert_eq!(&c.recv().unwrap()[..], b"\0\0\0\x03ccc");
    c.send_frame(b"back").unwrap();
    assert_eq!(&c.recv().unwrap()[..], b"\0\0\0\x04back");
}

#[test]
fn client_sync_eof_lines() {
    let addr = serve_once(|mut s| {
        s.write_all(b"one\r\ntwo\r\nthr").unwrap();
        thread::sleep(Duration::from_millis(20));
        s.write_all(b"ee\r\n").unwrap();
        thread::sleep(Duration::from_millis(200));
    });
    let mut c = SyncClient::connect_with(SockType::Tcp, addr, T, eof_config()).unwrap();
    for want in ["one\r\n", "two\r\n", "three\r\n"] {
        assert_eq!(&c.recv().unwrap()[..], want.as_bytes());
    }
}

#[test]
fn client_sync_timeout_keeps_partial_frame() {
    let addr = serve_once(|mut s| {
        s.write_all(b"\0\0\0\x05he").unwrap();
        thread::sleep(Duration::from_millis(400));
        s.write_all(b"llo").unwrap();
        thread::sleep(Duration::from_millis(200));
    });
    let mut c = SyncClient::connect_with(SockType::Tcp, addr, T, length_config()).unwrap();
    c.set_timeout(Duration::from_millis(100));
    assert!(matches!(c.recv(), Err(ClientError::Timeout)));
    c.set_timeout(T);
    assert_eq!(&c.recv().unwrap()[..], b"\0\0\0\x05hello");
}

#[test]
fn client_sync_oversize_frame_is_an_error() {
    let addr = serve_once(|mut s| {
        s.write_all(&u32::MAX.to_be_bytes()).unwrap();
        thread::sleep(Duration::from_millis(200));
    });
    let mut c = SyncClient::connect_with(SockType::Tcp, addr, T, length_config()).unwrap();
    assert!(matches!(
        c.recv(),
        Err(ClientError::Frame(FrameError::TooLong))
    ));
    assert!(c.is_closed());
}

#[test]
fn client_errors_are_typed() {
    // Nobody listens on a port we just released.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    assert!(matches!(
        SyncClient::connect(("127.0.0.1", port), T),
        Err(ClientError::Io(_))
    ));
    let bad = ClientConfig {
        framing: Framing::Eof {
            eof: Vec::new(),
            split: true,
        },
        ..Default::default()
    };
    assert!(matches!(
        SyncClient::connect_with(SockType::Tcp, ("127.0.0.1", port), T, bad),
        Err(ClientError::Config(_))
    ));
    // Display texts exist.
    assert_eq!(ClientError::Timeout.to_string(), "timed out");
    let mut c = SyncClient::connect_with(
        SockType::Tcp,
        serve_once(|_| thread::sleep(Duration::from_millis(300))),
        T,
        eof_config(),
    )
    .unwrap();
    assert!(matches!(
        c.send_frame(b"has\r\ninside"),
        Err(ClientError::Frame(FrameError::EofInBody))
    ));
}

#[test]
fn client_sync_udp() {
    let server = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = server.local_addr().unwrap();
    thread::spawn(move || {
        let mut buf = [0u8; 100];
        for _ in 0..2 {
            let (n, from) = server.recv_from(&mut buf).unwrap();
            server
                .send_to(&[b"Server: ", &buf[..n]].concat(), from)
                .unwrap();
        }
    });
    let mut c = SyncClient::connect_udp(addr, T).unwrap();
    for msg in [&b"ping"[..], b"pong"] {
        c.send(msg).unwrap();
        assert_eq!(&c.recv().unwrap()[..], [b"Server: ", msg].concat());
    }
    c.set_timeout(Duration::from_millis(50));
    assert!(matches!(c.recv(), Err(ClientError::Timeout)));
    c.close();
    assert!(matches!(c.send(b"x"), Err(ClientError::Closed)));
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A tokio length-framed echo server (`Server: ` + body), one task per connection.
async fn tokio_length_echo() -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            tokio::spawn(async move {
                loop {
                    let mut h = [0u8; 4];
                    if s.read_exact(&mut h).await.is_err() {
                        return;
                    }
                    let mut body = vec![0u8; u32::from_be_bytes(h) as usize];
                    s.read_exact(&mut body).await.unwrap();
                    let reply = [b"Server: ".as_slice(), &body].concat();
                    let mut out = (reply.len() as u32).to_be_bytes().to_vec();
                    out.extend_from_slice(&reply);
                    // Fragment the reply: header and body separately.
                    s.write_all(&out[..2]).await.unwrap();
                    tokio::task::yield_now().await;
                    s.write_all(&out[2..]).await.unwrap();
                }
            });
        }
    });
    addr
}

#[test]
fn client_async_length_echo() {
    rt().block_on(async {
        let addr = tokio_length_echo().await;
        let mut c = Client::connect_with(SockType::Tcp, addr, T, length_config())
            .await
            .unwrap();
        for i in 0..50 {
            let body = format!("msg {i}");
            c.send_frame(body.as_bytes()).await.unwrap();
            let got = c.recv().await.unwrap();
            assert_eq!(&got[4..], format!("Server: {body}").as_bytes());
        }
        // Pipelined: 20 frames in one write, 20 whole replies.
        let mut all = Vec::new();
        for i in 0..20 {
            all.extend(frame(format!("p{i}").as_bytes()));
        }
        c.send(&all).await.unwrap();
        for i in 0..20 {
            assert_eq!(
                &c.recv().await.unwrap()[4..],
                format!("Server: p{i}").as_bytes()
            );
        }
        c.set_timeout(Duration::from_millis(50));
        assert!(matches!(c.recv().await, Err(ClientError::Timeout)));
        c.close().await;
        assert!(c.is_closed());
        assert!(matches!(c.recv().await, Err(ClientError::Closed)));
    });
}

#[test]
fn client_async_raw_udp_and_errors() {
    rt().block_on(async {
        let u = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let uaddr = u.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 100];
            loop {
                let (n, from) = u.recv_from(&mut buf).await.unwrap();
                u.send_to(&buf[..n], from).await.unwrap();
            }
        });
        let mut c = Client::connect_udp(uaddr, T).await.unwrap();
        c.send(b"dgram").await.unwrap();
        assert_eq!(&c.recv().await.unwrap()[..], b"dgram");

        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            drop(s); // close at once
        });
        let mut c = Client::connect(addr, T).await.unwrap();
        assert!(matches!(c.recv().await, Err(ClientError::Closed)));
        assert!(matches!(c.send(b"x").await, Err(ClientError::Closed)));
    });
}

#[test]
fn client_sync_against_tokio_server() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let addr = rt.block_on(tokio_length_echo());
    // The blocking client runs on this thread; the tokio server on the runtime's thread.
    let mut c = SyncClient::connect_with(SockType::Tcp, addr, T, length_config()).unwrap();
    for i in 0..20 {
        let body = format!("sync {i}");
        c.send_frame(body.as_bytes()).unwrap();
        assert_eq!(
            &c.recv().unwrap()[4..],
            format!("Server: {body}").as_bytes()
        );
    }
    c.close();
    assert!(matches!(c.recv(), Err(ClientError::Closed)));
}
