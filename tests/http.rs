//! The HTTP server through real sockets: request/response features, HTTP/1.1 semantics,
//! limits and malformed requests, static files, worker death and timeouts, other clients.

use std::io::{Read, Write};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::util::*;

const T: Duration = Duration::from_secs(20);

fn kit(extra: &[&str]) -> ServerProc {
    let port = 0;
    let addr = format!("127.0.0.1:{port}");
    let mut args = vec!["--addr", &addr];
    args.extend_from_slice(extra);
    ServerProc::start("http_kit", &args, port)
}

/// examples/http_hello answers Hello World in both modes.
#[test]
fn http_hello_both_modes() {
    for mode in ["process", "base"] {
        let srv = ServerProc::example("http_hello", mode, 2);
        let r = http_get(srv.port, "/anything");
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, "Hello World"),
            "mode {mode}"
        );
        assert!(r.header("date").is_some());
    }
}

/// The request handler gets the worker's `Handle`: it sets a timer (whose callback gets a
/// handle of the same worker), awaits it, and reads the stats, in both modes. Before the
/// handler had no `Handle`, none of this could be written.
#[test]
fn http_handler_gets_the_handle() {
    for mode in ["process", "base"] {
        let srv = kit(&["--mode", mode]);
        let r = http_get(srv.port, "/handle");
        assert_eq!(r.status, 200, "mode {mode}: {}", r.text());
        let text = r.text();
        let field = |k: &str| {
            text.split(' ')
                .find_map(|kv| kv.strip_prefix(k))
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or_else(|| panic!("mode {mode}: no {k} in {text:?}"))
        };
        assert_eq!(field("worker="), field("timer_worker="), "mode {mode}");
        assert!(field("connections=") >= 1, "mode {mode}: {text}");
    }
}

/// Keep-alive and pipelining: responses come back in request order on one connection, even
/// when the first takes longer (in Base mode the first is handled without a task until it
/// waits; the two behind it must queue behind it, not overtake it).
#[test]
fn http_pipelining_in_order() {
    for mode in ["process", "base"] {
        let srv = kit(&["--worker-num", "2", "--mode", mode]);
        let mut s = connect(srv.port);
        s.write_all(b"GET /sleep?ms=150 HTTP/1.1\r\nHost: t\r\n\r\nGET /hello HTTP/1.1\r\nHost: t\r\n\r\nGET /query?a=1&b=x+y HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        let mut buf = Vec::new();
        let a = read_response(&mut s, &mut buf, false).unwrap();
        let b = read_response(&mut s, &mut buf, false).unwrap();
        let c = read_response(&mut s, &mut buf, false).unwrap();
        assert_eq!(a.text(), "slept 150", "mode {mode}");
        assert_eq!(b.text(), "Hello World", "mode {mode}");
        assert_eq!(c.text(), "a=1&b=x y", "mode {mode}");
        // Still open: one more request on the same connection.
        s.write_all(b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        assert_eq!(
            read_response(&mut s, &mut buf, false).unwrap().status,
            200,
            "mode {mode}"
        );
    }
}

/// Each request of a worker thread reuses the last one's buffers (the read buffer, the
/// request head's header index and header list, the response's state and header fields):
/// nothing of one request or response shows in the next. On one keep-alive connection to
/// one worker, in both modes: a response with two cookies and then one with none; a
/// request with many headers and then one with one; a redirect (status and `Location`) and
/// then a plain 200; a handler that waits (its `Date` read when it answers) between them.
#[test]
fn http_reused_buffers_leak_nothing_between_requests() {
    for mode in ["process", "base"] {
        let srv = kit(&["--worker-num", "1", "--mode", mode]);
        let mut s = connect(srv.port);
        let mut buf = Vec::new();
        let mut ask = |raw: &str| {
            s.write_all(raw.as_bytes()).unwrap();
            read_response(&mut s, &mut buf, false).unwrap()
        };
        let r = ask("GET /cookie HTTP/1.1\r\nHost: t\r\nCookie: a=1\r\n\r\n");
        let cookies = r.headers.iter().filter(|(k, _)| k == "set-cookie").count();
        assert_eq!((r.status, cookies), (200, 2), "mode {mode}");
        let r = ask("GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, "Hello World"),
            "mode {mode}"
        );
        assert!(
            r.header("set-cookie").is_none() && r.header("date").is_some(),
            "mode {mode}: {:?}",
            r.headers
        );
        let many: String = (0..20).map(|i| format!("X-H{i}: v{i}\r\n")).collect();
        let r = ask(&format!("GET /headers HTTP/1.1\r\nHost: t\r\n{many}\r\n"));
        assert_eq!(r.text().lines().count(), 21, "mode {mode}: {}", r.text());
        let r = ask("GET /headers HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(r.text(), "host: t", "mode {mode}");
        let r = ask("GET /redirect HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(
            (r.status, r.header("location")),
            (302, Some("/hello")),
            "mode {mode}"
        );
        let r = ask("GET /sleep?ms=20 HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(r.text(), "slept 20", "mode {mode}");
        assert!(
            r.header("location").is_none() && r.header("date").is_some(),
            "mode {mode}"
        );
        let r = ask("GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!((r.status, r.header("location")), (200, None), "mode {mode}");
        assert_eq!(r.header("content-length"), Some("11"), "mode {mode}");
    }
}

/// Request heads that outlive their read (Process mode: kept by the master until the worker
/// acknowledges the request, copied by the worker out of the pipe datagram) are cut from a
/// per-thread arena whose chunks are reused once every head cut from them is gone. Hundreds of
/// pipelined requests with heads of different lengths (many alive at once, several chunks'
/// worth) each get their own headers back, in both modes, on two connections at once.
#[test]
fn http_pipelined_heads_keep_their_own_bytes() {
    for mode in ["process", "base"] {
        let srv = kit(&["--worker-num", "1", "--mode", mode]);
        let mut conns: Vec<_> = (0..2).map(|_| connect(srv.port)).collect();
        let n = 300;
        let head = |c: usize, i: usize| {
            let pad = "p".repeat(i % 97);
            format!("GET /headers HTTP/1.1\r\nHost: t\r\nX-Id: c{c}-{i}-{pad}\r\n\r\n")
        };
        for (c, s) in conns.iter_mut().enumerate() {
            let all: String = (0..n).map(|i| head(c, i)).collect();
            s.write_all(all.as_bytes()).unwrap();
        }
        for (c, s) in conns.iter_mut().enumerate() {
            let mut buf = Vec::new();
            for i in 0..n {
                let r = read_response(s, &mut buf, false).unwrap();
                let want = format!("host: t\nx-id: c{c}-{i}-{}", "p".repeat(i % 97));
                assert_eq!(
                    (r.status, r.text()),
                    (200, want),
                    "mode {mode}, request {i}"
                );
            }
        }
    }
}

/// An idle connection keeps no read buffer of its own: the read buffer is lent per read by
/// the thread and kept only while a request is incomplete. A request that arrives in pieces
/// while other connections of the same thread are served in between (each borrowing and
/// returning that buffer) still arrives whole, with the body intact, in both modes.
#[test]
fn http_partial_request_survives_other_connections() {
    for mode in ["process", "base"] {
        let srv = kit(&["--worker-num", "1", "--mode", mode]);
        let mut slow = connect(srv.port);
        let mut buf = Vec::new();
        slow.write_all(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Le")
            .unwrap();
        let mut others: Vec<_> = (0..3).map(|_| connect(srv.port)).collect();
        for (i, piece) in [&b"ngth: 10\r\n"[..], b"\r\n01234", b"56789"]
            .into_iter()
            .enumerate()
        {
            // Another connection's whole request between the pieces.
            let o = &mut others[i];
            let mut obuf = Vec::new();
            o.write_all(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc")
                .unwrap();
            let r = read_response(o, &mut obuf, false).unwrap();
            assert_eq!(r.text(), "abc", "mode {mode}");
            slow.write_all(piece).unwrap();
        }
        let r = read_response(&mut slow, &mut buf, false).unwrap();
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, "0123456789"),
            "mode {mode}"
        );
        // The connections are still usable afterwards.
        slow.write_all(b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        assert_eq!(
            read_response(&mut slow, &mut buf, false).unwrap().text(),
            "Hello World"
        );
    }
}

/// HTTP/1.0 closes unless keep-alive is asked; `Connection: close` closes; HEAD has no body.
#[test]
fn http_connection_semantics() {
    let srv = kit(&[]);
    let mut s = connect(srv.port);
    s.write_all(b"GET /hello HTTP/1.0\r\n\r\n").unwrap();
    let mut all = String::new();
    s.read_to_string(&mut all).unwrap();
    assert!(
        all.starts_with("HTTP/1.1 200") && all.ends_with("Hello World"),
        "{all}"
    );

    let mut s = connect(srv.port);
    let mut buf = Vec::new();
    for _ in 0..2 {
        s.write_all(b"GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .unwrap();
        let r = read_response(&mut s, &mut buf, false).unwrap();
        assert_eq!(r.text(), "Hello World");
        assert_eq!(r.header("connection"), Some("keep-alive"));
    }

    let mut s = connect(srv.port);
    s.write_all(b"GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut all = String::new();
    s.read_to_string(&mut all).unwrap();
    assert!(
        all.ends_with("Hello World"),
        "closed after the response: {all}"
    );

    let r = http_once(srv.port, b"HEAD /hello HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("11"));
    assert!(r.body.is_empty());
}

/// Chunked request bodies (with trailers), Expect: 100-continue, absolute-form URIs.
#[test]
fn http_bodies_continue_absolute_form() {
    let srv = kit(&[]);
    let r = http_once(srv.port, b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: yes\r\n\r\n").unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "hello world"));

    let mut s = connect(srv.port);
    s.write_all(
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n",
    )
    .unwrap();
    let mut buf = Vec::new();
    let cont = read_response(&mut s, &mut buf, false).unwrap();
    assert_eq!(cont.status, 100, "100 Continue before the body is sent");
    s.write_all(b"ping").unwrap();
    let r = read_response(&mut s, &mut buf, false).unwrap();
    assert_eq!(r.text(), "ping");

    let r = http_once(
        srv.port,
        b"GET http://example.com/query?x=1 HTTP/1.1\r\nHost: example.com\r\n\r\n",
    )
    .unwrap();
    assert_eq!(r.text(), "x=1");
}

/// get, post (urlencoded and multipart), cookies in and out, headers, redirect, streaming.
#[test]
fn http_request_response_objects() {
    let srv = kit(&[]);
    let p = srv.port;
    let form = "a=1&b=hello+world&c=%26";
    let r = http_once(p, format!("POST /form HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}", form.len()).as_bytes()).unwrap();
    assert_eq!(r.text(), "a=1&b=hello world&c=&");

    let body = "--XyZ\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nmy file\r\n--XyZ\r\nContent-Disposition: form-data; name=\"doc\"; filename=\"a.txt\"\r\nContent-Type: text/plain\r\n\r\nhello upload\r\n--XyZ--\r\n";
    let r = http_once(p, format!("POST /upload HTTP/1.1\r\nHost: t\r\nContent-Type: multipart/form-data; boundary=XyZ\r\nContent-Length: {}\r\n\r\n{body}", body.len()).as_bytes()).unwrap();
    assert_eq!(
        r.text(),
        "field title=my file\nfile doc a.txt text/plain 12 exists=true\n"
    );

    let r = http_once(
        p,
        b"GET /cookie HTTP/1.1\r\nHost: t\r\nCookie: a=1; b=two%20words\r\n\r\n",
    )
    .unwrap();
    assert_eq!(r.text(), "a=1&b=two words");
    let cookies: Vec<&str> = r
        .headers
        .iter()
        .filter(|(k, _)| k == "set-cookie")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(cookies.len(), 2, "{cookies:?}");
    assert!(
        cookies[0].starts_with("session=a+b%3Bc")
            && cookies[0].contains("HttpOnly")
            && cookies[0].contains("SameSite=Lax")
            && cookies[0].contains("Max-Age=60"),
        "{}",
        cookies[0]
    );

    let r = http_once(
        p,
        b"GET /headers HTTP/1.1\r\nHost: t\r\nX-Rep: 1\r\nX-Rep: 2\r\n\r\n",
    )
    .unwrap();
    assert!(r.text().contains("x-rep: 1\nx-rep: 2"), "{}", r.text());

    let r = http_get(p, "/redirect");
    assert_eq!((r.status, r.header("location")), (302, Some("/hello")));

    let r = http_get(p, "/stream");
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert_eq!(r.text(), "part0;part1;part2;");
}

/// A handler that returns without end() → 500 and the connection stays sane; a header after
/// end() is an error the handler sees.
#[test]
fn http_handler_mistakes() {
    let srv = kit(&[]);
    let mut s = connect(srv.port);
    let mut buf = Vec::new();
    s.write_all(b"GET /noend HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut s, &mut buf, false).unwrap().status, 500);
    s.write_all(b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert_eq!(
        read_response(&mut s, &mut buf, false).unwrap().text(),
        "Hello World"
    );
    assert!(srv.stderr().contains("without end()"), "{}", srv.stderr());
    s.write_all(b"GET /late-header HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert_eq!(
        read_response(&mut s, &mut buf, false).unwrap().text(),
        "done"
    );
    srv.wait_stdout("late header error: response headers already sent", 1, T);
}

/// Malformed and smuggling-shaped requests get a 4xx/5xx (or a close), never two requests;
/// the server goes on serving.
#[test]
fn http_rejects_bad_requests() {
    let srv = kit(&["--package-max-length", "1000", "--max-uri-length", "1000"]);
    let p = srv.port;
    let long_uri = format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(2000));
    let big_header = format!(
        "GET / HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
        "b".repeat(9000)
    );
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("garbage", b"HELLO\r\n\r\n".to_vec(), 400),
        ("bad version", b"GET / HTTP/9.9\r\nHost: t\r\n\r\n".to_vec(), 505),
        ("CL+TE", b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /hello HTTP/1.1\r\nHost: t\r\n\r\n".to_vec(), 400),
        ("dup CL", b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde".to_vec(), 400),
        ("bad CL", b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: +4\r\n\r\nabcd".to_vec(), 400),
        ("obs-fold", b"GET / HTTP/1.1\r\nHost: t\r\nX-A: 1\r\n folded\r\n\r\n".to_vec(), 400),
        ("TE gzip", b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n".to_vec(), 501),
        ("bad chunk", b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".to_vec(), 400),
        ("URI too long", long_uri.into_bytes(), 414),
        ("header too big", big_header.into_bytes(), 431),
        ("body too big", format!("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n{}", "x".repeat(5000)).into_bytes(), 413),
    ];
    for (name, raw, want) in cases {
        let mut s = connect(p);
        s.write_all(&raw).unwrap();
        let mut buf = Vec::new();
        let r =
            read_response(&mut s, &mut buf, false).unwrap_or_else(|| panic!("{name}: no response"));
        assert_eq!(r.status, want, "{name}: {}", r.text());
        assert_eq!(r.header("connection"), Some("close"), "{name}");
        // Exactly one response, then the connection closes: nothing was smuggled through.
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
        buf.extend(rest);
        assert!(
            buf.is_empty(),
            "{name}: extra bytes after the error: {:?}",
            String::from_utf8_lossy(&buf)
        );
    }
    assert_eq!(http_get(p, "/hello").text(), "Hello World");
}

/// RFC 9112 §3.2: an HTTP/1.1 request without `Host` is answered 400 and the connection
/// closed; HTTP/1.0 without `Host` is still served.
#[test]
fn http_host_required() {
    let srv = kit(&[]);
    // The status line and the rest of what the server sends until it closes (bounded by the
    // read timeout), on a fresh connection.
    let exchange = |raw: &[u8]| {
        let mut s = connect(srv.port);
        s.write_all(raw).unwrap();
        let status = read_line(&mut s);
        let mut rest = Vec::new();
        let closed = s.read_to_end(&mut rest).is_ok();
        (status, String::from_utf8_lossy(&rest).into_owned(), closed)
    };
    for raw in [
        &b"GET /hello HTTP/1.1\r\n\r\n"[..],
        b"GET /hello HTTP/1.1\r\nX-Host: t\r\n\r\n",
        b"GET http://t/hello HTTP/1.1\r\n\r\n",
    ] {
        let name = String::from_utf8_lossy(raw);
        let (status, rest, closed) = exchange(raw);
        assert!(
            status.starts_with("HTTP/1.1 400 "),
            "{name:?}: {status}{rest}"
        );
        assert!(closed, "{name:?}: the connection closes after the 400");
        assert!(
            !rest.contains("HTTP/1.1 "),
            "{name:?}: one response: {rest}"
        );
    }
    let (status, rest, closed) = exchange(b"GET /hello HTTP/1.0\r\n\r\n");
    assert!(
        status.starts_with("HTTP/1.1 200 ") && rest.ends_with("Hello World") && closed,
        "HTTP/1.0 needs no Host: {status}{rest}"
    );
    let (status, _, _) = exchange(b"GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    assert!(status.starts_with("HTTP/1.1 200 "), "{status}");
}

/// A client that sends half a request head and stalls gets 408 and is closed (slowloris).
#[test]
fn http_header_timeout() {
    let srv = kit(&["--header-timeout-ms", "500"]);
    let mut s = connect(srv.port);
    s.write_all(b"GET /hello HTTP/1.1\r\nHost: t\r\n").unwrap();
    let t0 = Instant::now();
    let mut buf = Vec::new();
    let r = read_response(&mut s, &mut buf, false).expect("a 408");
    assert_eq!(r.status, 408);
    // The timing is the behaviour here: the 408 must come from the 500 ms setting, not from
    // the default header timeout (10 s). 5 s is ten times the setting, far enough from 10 s.
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "408 after {:?}: header_timeout_ms=500 was not applied",
        t0.elapsed()
    );
    assert_eq!(http_get(srv.port, "/hello").status, 200);
}

/// A worker that dies with requests in flight: each gets a 503 at once and the connection
/// stays usable; the worker is replaced.
#[test]
fn http_worker_death_gets_503() {
    let srv = kit(&["--worker-num", "1"]);
    let mut s = connect(srv.port);
    let mut buf = Vec::new();
    s.write_all(
        b"GET /crash?ms=100 HTTP/1.1\r\nHost: t\r\n\r\nGET /hello HTTP/1.1\r\nHost: t\r\n\r\n",
    )
    .unwrap();
    // No request timeout is set: without the 503s these reads would wait until `connect`'s
    // read timeout and fail.
    let a = read_response(&mut s, &mut buf, false).unwrap();
    let b = read_response(&mut s, &mut buf, false).unwrap();
    assert_eq!(a.status, 503, "{}", a.text());
    assert_eq!(
        b.status, 503,
        "pipelined request on the dead worker also answered"
    );
    // The same connection goes on with the replacement worker.
    let deadline = Instant::now() + T;
    loop {
        s.write_all(b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        let r = read_response(&mut s, &mut buf, false).expect("connection still open");
        if r.status == 200 {
            assert_eq!(r.text(), "Hello World");
            break;
        }
        assert!(Instant::now() < deadline, "no worker came back");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// request_timeout: a handler past it is cancelled with 504; the worker serves others.
#[test]
fn http_request_timeout_504() {
    let srv = kit(&["--worker-num", "1", "--request-timeout-ms", "300"]);
    let mut s = connect(srv.port);
    let mut buf = Vec::new();
    // The handler would take a minute, longer than `connect`'s read timeout: the 504 can only
    // arrive in time if the handler is cut at request_timeout.
    s.write_all(b"GET /sleep?ms=60000 HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut s, &mut buf, false).unwrap().status, 504);
    assert_eq!(http_get(srv.port, "/hello").text(), "Hello World");
}

/// Static files: MIME types, ETag/Last-Modified/304, Range, no traversal.
#[test]
fn http_static_files() {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("index.html"), "<h1>hi</h1>").unwrap();
    std::fs::write(root.path().join("data.json"), "{\"a\":1}").unwrap();
    std::fs::write(root.path().join("nums.txt"), "0123456789").unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), "secret").unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("secret.txt"),
        root.path().join("link.txt"),
    )
    .unwrap();
    let srv = kit(&["--document-root", root.path().to_str().unwrap()]);
    let p = srv.port;
    let r = http_get(p, "/");
    assert_eq!((r.status, r.text().as_str()), (200, "<h1>hi</h1>"));
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    let r = http_get(p, "/data.json");
    assert_eq!(r.header("content-type"), Some("application/json"));
    let etag = r.header("etag").unwrap().to_string();
    let r = http_once(
        p,
        format!("GET /data.json HTTP/1.1\r\nHost: t\r\nIf-None-Match: {etag}\r\n\r\n").as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 304);
    let lm = http_get(p, "/nums.txt")
        .header("last-modified")
        .unwrap()
        .to_string();
    let r = http_once(
        p,
        format!("GET /nums.txt HTTP/1.1\r\nHost: t\r\nIf-Modified-Since: {lm}\r\n\r\n").as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 304);
    let r = http_once(
        p,
        b"GET /nums.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=2-4\r\n\r\n",
    )
    .unwrap();
    assert_eq!(
        (r.status, r.text().as_str(), r.header("content-range")),
        (206, "234", Some("bytes 2-4/10"))
    );
    let r = http_once(
        p,
        b"GET /nums.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=50-60\r\n\r\n",
    )
    .unwrap();
    assert_eq!(r.status, 416);
    for bad in [
        "/../etc/passwd",
        "/%2e%2e/etc/passwd",
        "/a/..%2f..%2fetc/passwd",
        "/link.txt",
    ] {
        let r = http_get(p, bad);
        assert!(r.status == 403 || r.status == 404, "{bad}: {}", r.status);
        assert!(
            !r.text().contains("secret") && !r.text().contains("root:"),
            "{bad} leaked"
        );
    }
    // Not a file: the handler answers.
    assert_eq!(http_get(p, "/hello").text(), "Hello World");
    // sendfile with Range from a handler.
    let path = root.path().join("nums.txt");
    let r = http_once(
        p,
        format!(
            "GET /file?path={} HTTP/1.1\r\nHost: t\r\nRange: bytes=-3\r\n\r\n",
            path.display()
        )
        .as_bytes(),
    )
    .unwrap();
    assert_eq!((r.status, r.text().as_str()), (206, "789"));
}

/// gzip when the client accepts it (and only then).
#[test]
fn http_gzip() {
    let srv = kit(&[]);
    let r = http_once(
        srv.port,
        b"GET /big?n=20000 HTTP/1.1\r\nHost: t\r\nAccept-Encoding: gzip, br\r\n\r\n",
    )
    .unwrap();
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert!(r.body.len() < 2000, "compressed {}", r.body.len());
    let mut d = flate2::read::GzDecoder::new(&r.body[..]);
    let mut out = String::new();
    d.read_to_string(&mut out).unwrap();
    assert_eq!(out.len(), 20000);
    let r = http_get(srv.port, "/big?n=20000");
    assert_eq!((r.header("content-encoding"), r.body.len()), (None, 20000));
}

/// Uploaded files go to `upload_tmp_dir`, created exclusively with mode 0600 under
/// unpredictable names (not the old `rswoole-upload-<pid>-<n>`), and are removed after the
/// request.
#[test]
fn http_upload_temp_files_private() {
    let dir = tempfile::tempdir().unwrap();
    let srv = kit(&["--upload-tmp-dir", dir.path().to_str().unwrap()]);
    let body = "--XyZ\r\nContent-Disposition: form-data; name=\"a\"; filename=\"a.txt\"\r\nContent-Type: text/plain\r\n\r\nfirst\r\n--XyZ\r\nContent-Disposition: form-data; name=\"b\"; filename=\"b.txt\"\r\nContent-Type: text/plain\r\n\r\nsecond\r\n--XyZ--\r\n";
    let r = http_once(srv.port, format!("POST /upload?detail=1 HTTP/1.1\r\nHost: t\r\nContent-Type: multipart/form-data; boundary=XyZ\r\nContent-Length: {}\r\n\r\n{body}", body.len()).as_bytes()).unwrap();
    let text = r.text();
    assert_eq!(r.status, 200, "{text}");
    let mut names = Vec::new();
    for line in text.lines() {
        let field = |k: &str| {
            line.split(' ')
                .find_map(|w| w.strip_prefix(k))
                .unwrap_or_else(|| panic!("no {k} in {line:?}"))
        };
        let path = std::path::Path::new(field("path="));
        assert_eq!(field("exists="), "true", "{line}");
        assert_eq!(field("mode="), "600", "{line}");
        assert_eq!(path.parent(), Some(dir.path()), "in upload_tmp_dir: {line}");
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let rest = name.strip_prefix("rswoole-upload-").expect("prefix kept");
        let old_pattern = rest.split_once('-').is_some_and(|(pid, n)| {
            [pid, n]
                .iter()
                .all(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        });
        assert!(!old_pattern, "predictable name {name}");
        names.push(name);
    }
    assert_eq!(names.len(), 2, "{text}");
    assert_ne!(names[0], names[1]);
    // Removed with the request.
    let deadline = Instant::now() + T;
    while std::fs::read_dir(dir.path()).unwrap().next().is_some() {
        assert!(
            Instant::now() < deadline,
            "upload temp files left in {dir:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A 50 MiB multipart upload streams to a temp file: neither the master nor the worker
/// holds it in memory.
#[test]
fn http_large_upload_memory_bounded() {
    let srv = kit(&["--worker-num", "1", "--package-max-length", "104857600"]);
    let workers = srv.wait_titles("rswoole: worker", 1, T);
    let before = (vm_hwm_kib(srv.pid()), vm_hwm_kib(workers[0]));
    let size = 50 * 1024 * 1024;
    let head = "--BOUND\r\nContent-Disposition: form-data; name=\"f\"; filename=\"big.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n";
    let tail = "\r\n--BOUND--\r\n";
    let mut s = connect(srv.port);
    write!(s, "POST /upload HTTP/1.1\r\nHost: t\r\nContent-Type: multipart/form-data; boundary=BOUND\r\nContent-Length: {}\r\n\r\n{head}", head.len() + size + tail.len()).unwrap();
    let chunk = vec![b'z'; 1024 * 1024];
    for _ in 0..50 {
        s.write_all(&chunk).unwrap();
    }
    s.write_all(tail.as_bytes()).unwrap();
    let mut buf = Vec::new();
    let r = read_response(&mut s, &mut buf, false).unwrap();
    assert_eq!(
        r.text(),
        format!("file f big.bin application/octet-stream {size} exists=true\n")
    );
    let after = (vm_hwm_kib(srv.pid()), vm_hwm_kib(workers[0]));
    let grew = ((after.0 - before.0) / 1024, (after.1 - before.1) / 1024);
    assert!(
        grew.0 < 24 && grew.1 < 24,
        "peak memory grew by {grew:?} MiB (master, worker) for a 50 MiB upload"
    );
}

/// curl and Python's httpx as independent clients; several protocols on one server.
#[test]
fn http_third_party_clients_and_mixed_listeners() {
    let srv = kit(&["--tcp", "127.0.0.1:0"]);
    let url = format!("http://127.0.0.1:{}", srv.port);
    let out = Command::new("curl")
        .args(["-s", "-d", "x=1&y=2", &format!("{url}/form")])
        .output()
        .expect("curl installed");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "x=1&y=2");
    let out = Command::new("curl")
        .args(["-s", "--compressed", &format!("{url}/big?n=5000")])
        .output()
        .unwrap();
    assert_eq!(out.stdout.len(), 5000);
    let py = format!(
        "import httpx\nwith httpx.Client() as c:\n  for i in range(3):\n    r = c.get('{url}/query', params={{'i': i}})\n    assert r.status_code == 200 and r.text == f'i={{i}}', r.text\n  r = c.post('{url}/upload', files={{'up': ('n.txt', b'abc', 'text/plain')}}, data={{'k': 'v'}})\n  print(r.text, end='')\n"
    );
    match Command::new("python3").args(["-c", &py]).output() {
        Ok(o) if o.status.success() => assert_eq!(
            String::from_utf8_lossy(&o.stdout),
            "field k=v\nfile up n.txt text/plain 3 exists=true\n"
        ),
        Ok(o)
            if String::from_utf8_lossy(&o.stderr).contains("No module named 'httpx'")
                && std::env::var("CI").is_err() =>
        {
            eprintln!("httpx not installed here; .ci/run installs it")
        }
        Ok(o) => panic!(
            "httpx client failed: {}",
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => panic!("python3: {e}"),
    }
    // The second listener's port, as bound.
    let mut c = connect(srv.addrs[1].port());
    roundtrip(&mut c, b"raw", b"tcp:raw");
}

/// X-Forwarded-For is believed only from a trusted proxy.
#[test]
fn http_trusted_proxies() {
    let srv = kit(&["--trusted-proxy", "127.0.0.1"]);
    let r = http_once(
        srv.port,
        b"GET /remote HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 203.0.113.7, 127.0.0.1\r\n\r\n",
    )
    .unwrap();
    assert_eq!(r.text(), "203.0.113.7");
    let srv2 = kit(&[]);
    let r = http_once(
        srv2.port,
        b"GET /remote HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 203.0.113.7\r\n\r\n",
    )
    .unwrap();
    assert_eq!(r.text(), "127.0.0.1");
}

/// `max_request` counts HTTP requests of the native API too (Process mode, one worker,
/// `--max-request 5`): after 20 requests on one keep-alive connection, all answered, the
/// worker has been replaced by a new process. (Before, only raw receives counted, and an
/// HTTP worker was never recycled.)
#[test]
fn http_max_request_recycles_worker() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("hello.pid");
    let srv = ServerProc::start(
        "http_hello",
        &[
            "--port",
            "0",
            "--worker-num",
            "1",
            "--max-request",
            "5",
            "--pid-file",
            pid_file.to_str().unwrap(),
        ],
        0,
    );
    let first = wait_status(&pid_file, "a worker", T, |v| {
        v["workers"][0]["pid"].as_i64().is_some()
    })["workers"][0]["pid"]
        .as_i64()
        .unwrap();
    let mut s = connect(srv.port);
    let mut buf = Vec::new();
    for i in 0..20 {
        s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        let r = read_response(&mut s, &mut buf, false).expect("a response");
        assert_eq!((r.status, r.text().as_str()), (200, "Hello World"), "{i}");
    }
    wait_status(&pid_file, "a new worker", T, |v| {
        v["workers"][0]["pid"].as_i64().is_some_and(|p| p != first)
    });
    assert!(
        srv.stderr().contains("max_request reached"),
        "{}",
        srv.stderr()
    );
}
