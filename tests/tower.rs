//! A tower service (an axum `Router`) on rswoole: examples/axum_app through real sockets in
//! both modes: every route with its exact JSON, HEAD, a route that waits for a task worker,
//! the shared-memory WebSocket count, the chat on the same port, a panicking handler (500,
//! the connection goes on) and pipelining order.

use std::io::Write;
use std::time::{Duration, Instant};

use rswoole_codec::ws::MessageKind;

use crate::util::*;
use crate::websocket::Ws;

const T: Duration = Duration::from_secs(20);

fn start(mode: &str) -> ServerProc {
    ServerProc::start(
        "axum_app",
        &["--port", "0", "--mode", mode, "--worker-num", "2"],
        0,
    )
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// `GET path` on a connection that stays open.
fn get(s: &mut std::net::TcpStream, buf: &mut Vec<u8>, path: &str) -> HttpResp {
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
        .unwrap();
    read_response(s, buf, false).expect("a response")
}

/// Every route answers its exact JSON, through the tower-http layer, in both modes; HEAD
/// keeps the length without the body; `/task/{ms}` answers after the task worker slept.
#[test]
fn axum_routes_both_modes() {
    for mode in ["process", "base"] {
        let srv = start(mode);
        let r = http_get(srv.port, "/hello/world");
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, r#"{"hello":"world"}"#),
            "{mode}"
        );
        assert_eq!(r.header("content-type"), Some("application/json"), "{mode}");
        assert_eq!(r.header("x-served-by"), Some("rswoole"), "{mode}");
        assert!(r.header("date").is_some(), "{mode}");
        let r = http_get(srv.port, "/hello/bob?upper=true");
        assert_eq!(
            r.text(),
            r#"{"hello":"BOB"}"#,
            "{mode}: the query extractor"
        );
        let r = http_get(srv.port, "/hello/a%20b");
        assert_eq!(
            r.text(),
            r#"{"hello":"a b"}"#,
            "{mode}: percent-decoded path"
        );

        let r = http_once(srv.port, b"HEAD /hello/world HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        assert_eq!(r.status, 200, "{mode}");
        assert_eq!(
            r.header("content-length"),
            Some("17"),
            "{mode}: HEAD keeps the length"
        );
        assert!(r.body.is_empty(), "{mode}");

        let t0 = Instant::now();
        let r = http_get(srv.port, "/task/300");
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, r#"{"done":300}"#),
            "{mode}"
        );
        assert!(
            t0.elapsed() >= Duration::from_millis(300),
            "{mode}: the task slept"
        );

        let r = http_get(srv.port, "/online");
        assert_eq!(r.text(), r#"{"online":0}"#, "{mode}");
        let r = http_get(srv.port, "/worker");
        let w: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON");
        assert!(
            w["served"].as_u64() >= Some(1) && w["pid"].is_u64(),
            "{mode}: {w}"
        );
        assert_eq!(http_get(srv.port, "/no/such/route").status, 404, "{mode}");

        // A POST body reaches the service (405 here: the route is GET only).
        let r = http_once(
            srv.port,
            b"POST /hello/x HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc",
        )
        .unwrap();
        assert_eq!(r.status, 405, "{mode}");
    }
}

/// `/online` counts the open WebSocket connections (a shared Table, whichever worker holds
/// them); `/ws` is the chat on the same port as the routes.
#[test]
fn axum_online_and_chat() {
    for mode in ["process", "base"] {
        let srv = start(mode);
        let port = srv.port;
        rt().block_on(async {
            let (mut a, _) = Ws::connect_with(port, "/ws", &[]).await.expect("upgrade a");
            let (mut b, _) = Ws::connect_with(port, "/ws", &[]).await.expect("upgrade b");
            // A client's messages are handled after its on_open: its own echo proves that
            // on_open ran (and counted it).
            a.send(MessageKind::Text, b"hi from a").await;
            for c in [&mut a, &mut b] {
                let (_, m) = c.message().await;
                let m = String::from_utf8_lossy(&m).into_owned();
                assert!(
                    m.starts_with("from") && m.ends_with(":hi from a\n"),
                    "{mode}: {m:?}"
                );
            }
            b.send(MessageKind::Text, b"hi from b").await;
            for c in [&mut a, &mut b] {
                let (_, m) = c.message().await;
                let m = String::from_utf8_lossy(&m).into_owned();
                assert!(m.ends_with(":hi from b\n"), "{mode}: {m:?}");
            }
            let r = tokio::task::spawn_blocking(move || http_get(port, "/online"))
                .await
                .unwrap();
            assert_eq!(r.text(), r#"{"online":2}"#, "{mode}");
            drop(b);
            // on_close runs once the server saw b go: wait for the count to follow.
            let deadline = Instant::now() + T;
            loop {
                let r = tokio::task::spawn_blocking(move || http_get(port, "/online"))
                    .await
                    .unwrap();
                if r.text() == r#"{"online":1}"# {
                    break;
                }
                assert!(Instant::now() < deadline, "{mode}: still {}", r.text());
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            drop(a);
        });
    }
}

/// A body that waits between frames is streamed chunked, frame by frame, with its trailers;
/// to an HTTP/1.0 client it is close-delimited, without them.
#[test]
fn axum_streamed_response_with_trailers() {
    use std::io::Read;
    let srv = start("process");
    let mut s = connect(srv.port);
    s.write_all(b"GET /stream/3 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut all = String::new();
    s.read_to_string(&mut all).unwrap();
    let lower = all.to_lowercase();
    assert!(lower.contains("transfer-encoding: chunked\r\n"), "{all}");
    assert!(!lower.contains("content-length"), "{all}");
    let body = &all[all.find("\r\n\r\n").unwrap() + 4..];
    assert!(body.contains("chunk 1\n"), "{all}");
    assert!(body.contains("chunk 3\n"), "{all}");
    assert!(
        body.ends_with("\r\n0\r\nx-chunks: 3\r\n\r\n"),
        "the trailer after the last chunk: {all:?}"
    );

    let mut s = connect(srv.port);
    s.write_all(b"GET /stream/2 HTTP/1.0\r\n\r\n").unwrap();
    let mut all = String::new();
    s.read_to_string(&mut all).unwrap();
    assert!(all.ends_with("\r\n\r\nchunk 1\nchunk 2\n"), "{all:?}");
}

/// A handler that panics answers 500, and the same connection serves the next request.
#[test]
fn axum_panic_answers_500() {
    for mode in ["process", "base"] {
        let srv = start(mode);
        let mut s = connect(srv.port);
        let mut buf = Vec::new();
        for _ in 0..2 {
            let r = get(&mut s, &mut buf, "/panic");
            assert_eq!(r.status, 500, "{mode}");
            let r = get(&mut s, &mut buf, "/hello/after");
            assert_eq!(
                (r.status, r.text().as_str()),
                (200, r#"{"hello":"after"}"#),
                "{mode}"
            );
        }
    }
}

/// Pipelined requests on one keep-alive connection are answered in order, the slow one
/// (a task) first.
#[test]
fn axum_pipelining_in_order() {
    let srv = start("process");
    let mut s = connect(srv.port);
    s.write_all(
        b"GET /task/200 HTTP/1.1\r\nHost: t\r\n\r\nGET /hello/one HTTP/1.1\r\nHost: t\r\n\r\nGET /panic HTTP/1.1\r\nHost: t\r\n\r\nGET /hello/two HTTP/1.1\r\nHost: t\r\n\r\n",
    )
    .unwrap();
    let mut buf = Vec::new();
    let got: Vec<(u16, String)> = (0..4)
        .map(|_| {
            let r = read_response(&mut s, &mut buf, false).expect("a response");
            (r.status, r.text())
        })
        .collect();
    assert_eq!(got[0], (200, r#"{"done":200}"#.to_string()));
    assert_eq!(got[1], (200, r#"{"hello":"one"}"#.to_string()));
    assert_eq!(got[2].0, 500);
    assert_eq!(got[3], (200, r#"{"hello":"two"}"#.to_string()));
    let r = get(&mut s, &mut buf, "/hello/three");
    assert_eq!(r.text(), r#"{"hello":"three"}"#);
}

/// FNV-1a 64, as `/upload` computes it.
fn fnv1a(h: u64, data: &[u8]) -> u64 {
    data.iter()
        .fold(h, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// A 20 MiB upload streams through the service (the route reads it frame by frame): the
/// worker's peak memory grows by far less than the body, in both modes. A route that does
/// not read its 20 MiB body answers at once, the rest of the body is dropped as it comes,
/// and the connection serves its next request.
#[test]
fn axum_streamed_upload_memory_bounded() {
    for mode in ["process", "base"] {
        let srv = ServerProc::start(
            "axum_app",
            &[
                "--port",
                "0",
                "--mode",
                mode,
                "--worker-num",
                "1",
                "--package-max-length",
                "67108864",
            ],
            0,
        );
        let workers = srv.wait_titles("rswoole: worker", 1, T);
        // The worker has served a request (its router is built) before the baseline.
        assert_eq!(http_get(srv.port, "/hello/x").status, 200, "{mode}");
        let before = vm_hwm_kib(workers[0]);
        let size = 20 * 1024 * 1024;
        let mut s = connect(srv.port);
        write!(
            s,
            "POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: {size}\r\n\r\n"
        )
        .unwrap();
        let mut h = 0xcbf2_9ce4_8422_2325_u64;
        let mut chunk = vec![0u8; 1024 * 1024];
        for i in 0..20u32 {
            for (j, b) in chunk.iter_mut().enumerate() {
                *b = (j as u32).wrapping_mul(31).wrapping_add(i * 7) as u8;
            }
            h = fnv1a(h, &chunk);
            s.write_all(&chunk).unwrap();
        }
        let mut buf = Vec::new();
        let r = read_response(&mut s, &mut buf, false).expect("a response");
        assert_eq!(
            (r.status, r.text()),
            (200, format!(r#"{{"bytes":{size},"fnv1a":"{h:016x}"}}"#)),
            "{mode}"
        );
        let grew = vm_hwm_kib(workers[0]).saturating_sub(before) / 1024;
        assert!(
            grew < 8,
            "{mode}: the worker's peak memory grew by {grew} MiB for a 20 MiB upload"
        );

        // Not read: a GET-only route answers 405 before the body is in.
        write!(
            s,
            "POST /hello/x HTTP/1.1\r\nHost: t\r\nContent-Length: {size}\r\n\r\n"
        )
        .unwrap();
        for _ in 0..20 {
            s.write_all(&chunk).unwrap();
        }
        let r = read_response(&mut s, &mut buf, false).expect("a response");
        assert_eq!(r.status, 405, "{mode}");
        let r = get(&mut s, &mut buf, "/hello/after");
        assert_eq!(r.text(), r#"{"hello":"after"}"#, "{mode}");
        let grew = vm_hwm_kib(workers[0]).saturating_sub(before) / 1024;
        assert!(grew < 8, "{mode}: grew by {grew} MiB with an unread body");
    }
}

/// `request_timeout` through the adapter: a route past it is cut with 504, in both modes,
/// and the worker serves the next request on the same connection.
#[test]
fn axum_request_timeout_504() {
    for mode in ["process", "base"] {
        let srv = ServerProc::start(
            "axum_app",
            &[
                "--port",
                "0",
                "--mode",
                mode,
                "--worker-num",
                "1",
                "--request-timeout-ms",
                "300",
            ],
            0,
        );
        let mut s = connect(srv.port);
        let mut buf = Vec::new();
        // A minute, longer than `connect`'s read timeout: the 504 can only arrive in time if
        // the service is cut at request_timeout.
        let t0 = Instant::now();
        let r = get(&mut s, &mut buf, "/sleep/60000");
        assert_eq!(r.status, 504, "{mode}: {}", r.text());
        assert!(t0.elapsed() >= Duration::from_millis(300), "{mode}");
        let r = get(&mut s, &mut buf, "/sleep/10");
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, r#"{"slept":10}"#),
            "{mode}"
        );
    }
}

/// Process mode: kill -9 of the worker handling a request in flight answers it 503; a new
/// connection is served (by the replacement worker).
#[test]
fn axum_worker_killed_503() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("axum.pid");
    let srv = ServerProc::start(
        "axum_app",
        &[
            "--port",
            "0",
            "--worker-num",
            "1",
            "--pid-file",
            pid_file.to_str().unwrap(),
        ],
        0,
    );
    let mut s = connect(srv.port);
    let mut buf = Vec::new();
    assert_eq!(get(&mut s, &mut buf, "/hello/x").status, 200);
    s.write_all(b"GET /sleep/60000 HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    // The worker has the request once it counted it (its second) and is busy with it.
    let st = wait_status(&pid_file, "the worker busy with the request", T, |v| {
        let w = &v["workers"][0];
        w["requests"].as_u64() >= Some(2) && w["state"] == "busy"
    });
    let pid = st["workers"][0]["pid"].as_i64().unwrap() as i32;
    assert!(srv.descendants().contains(&pid), "{pid} is this server's");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    // Without the 503 this read would wait until `connect`'s read timeout and fail.
    let r = read_response(&mut s, &mut buf, false).expect("a response");
    assert_eq!(r.status, 503, "{}", r.text());
    let deadline = Instant::now() + T;
    loop {
        let r = http_get(srv.port, "/hello/again");
        if r.status == 200 {
            assert_eq!(r.text(), r#"{"hello":"again"}"#);
            break;
        }
        assert!(Instant::now() < deadline, "no worker served: {}", r.status);
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `Expect: 100-continue`: the interim `100 Continue`, then the body is sent and answered,
/// in both modes (a streamed body too).
#[test]
fn axum_expect_100_continue() {
    for mode in ["process", "base"] {
        let srv = start(mode);
        for size in [5usize, 200 * 1024] {
            let mut s = connect(srv.port);
            write!(
                s,
                "POST /upload HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: {size}\r\n\r\n"
            )
            .unwrap();
            let mut interim = vec![0u8; 25];
            std::io::Read::read_exact(&mut s, &mut interim).unwrap();
            assert_eq!(&interim[..], b"HTTP/1.1 100 Continue\r\n\r\n", "{mode}");
            let body = vec![b'x'; size];
            s.write_all(&body).unwrap();
            let mut buf = Vec::new();
            let r = read_response(&mut s, &mut buf, false).expect("a response");
            let h = fnv1a(0xcbf2_9ce4_8422_2325, &body);
            assert_eq!(
                (r.status, r.text()),
                (200, format!(r#"{{"bytes":{size},"fnv1a":"{h:016x}"}}"#)),
                "{mode}"
            );
        }
    }
}

/// tower-http's gzip layer: a client that accepts gzip gets the JSON gzipped (and it
/// decompresses to the JSON), one that does not gets it plain; in both modes.
#[test]
fn axum_gzip_layer() {
    use std::io::Read;
    for mode in ["process", "base"] {
        let srv = start(mode);
        let name = "z".repeat(200);
        let want = format!(r#"{{"hello":"{name}"}}"#);
        let r = http_once(
            srv.port,
            format!("GET /hello/{name} HTTP/1.1\r\nHost: t\r\nAccept-Encoding: gzip\r\n\r\n")
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(r.status, 200, "{mode}");
        assert_eq!(r.header("content-encoding"), Some("gzip"), "{mode}");
        assert!(r.body.len() < want.len(), "{mode}: {} bytes", r.body.len());
        let mut plain = String::new();
        flate2::read::GzDecoder::new(&r.body[..])
            .read_to_string(&mut plain)
            .unwrap();
        assert_eq!(plain, want, "{mode}");
        assert_eq!(r.header("x-served-by"), Some("rswoole"), "{mode}");

        let r = http_get(srv.port, &format!("/hello/{name}"));
        assert_eq!(r.header("content-encoding"), None, "{mode}");
        assert_eq!(r.text(), want, "{mode}");
    }
}

/// tower-http's CORS layer: a preflight is answered with the CORS headers (the route is
/// not run), and a cross-origin GET carries `access-control-allow-origin`; in both modes.
#[test]
fn axum_cors_layer() {
    for mode in ["process", "base"] {
        let srv = start(mode);
        let r = http_once(
            srv.port,
            b"OPTIONS /upload HTTP/1.1\r\nHost: t\r\nOrigin: https://app.example\r\nAccess-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: content-type\r\n\r\n",
        )
        .unwrap();
        assert_eq!(r.status, 200, "{mode}: {}", r.text());
        assert_eq!(r.header("access-control-allow-origin"), Some("*"), "{mode}");
        let methods = r.header("access-control-allow-methods").unwrap_or("");
        assert!(
            methods.contains("POST") && methods.contains("GET"),
            "{mode}: {methods}"
        );
        assert_eq!(
            r.header("access-control-allow-headers"),
            Some("*"),
            "{mode}"
        );
        assert!(r.body.is_empty(), "{mode}");

        let r = http_once(
            srv.port,
            b"GET /hello/cors HTTP/1.1\r\nHost: t\r\nOrigin: https://app.example\r\n\r\n",
        )
        .unwrap();
        assert_eq!(r.text(), r#"{"hello":"cors"}"#, "{mode}");
        assert_eq!(r.header("access-control-allow-origin"), Some("*"), "{mode}");
    }
}

/// A chunked upload (with a trailer) over 64 KiB streams to the service too: its size and
/// hash come back, and the connection serves its next request; in both modes.
#[test]
fn axum_chunked_upload_streams() {
    for mode in ["process", "base"] {
        let srv = start(mode);
        let mut s = connect(srv.port);
        s.write_all(b"POST /upload HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
            .unwrap();
        let mut h = 0xcbf2_9ce4_8422_2325_u64;
        let mut total = 0;
        for i in 0..40u8 {
            let chunk = vec![b'a' + i % 26; 10_000];
            h = fnv1a(h, &chunk);
            total += chunk.len();
            write!(s, "{:x}\r\n", chunk.len()).unwrap();
            s.write_all(&chunk).unwrap();
            s.write_all(b"\r\n").unwrap();
        }
        s.write_all(b"0\r\nx-check: done\r\n\r\n").unwrap();
        let mut buf = Vec::new();
        let r = read_response(&mut s, &mut buf, false).expect("a response");
        assert_eq!(
            (r.status, r.text()),
            (200, format!(r#"{{"bytes":{total},"fnv1a":"{h:016x}"}}"#)),
            "{mode}"
        );
        let r = get(&mut s, &mut buf, "/hello/next");
        assert_eq!(r.text(), r#"{"hello":"next"}"#, "{mode}");
    }
}
