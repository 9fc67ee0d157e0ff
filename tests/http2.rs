//! HTTP/2 (issue 16): h2c with prior knowledge and ALPN `h2` over TLS on the same port as
//! HTTP/1.1, in both modes; curl, httpx and the Python `h2` client; many concurrent streams;
//! the tower adapter over h2c; and the known floods, each leaving the server serving others.

use std::process::Command;
use std::time::Duration;

use crate::tls::Pki;
use crate::util::*;

/// `python3` from the test venv (`.ci/run` makes it) when there is one.
fn python() -> Command {
    let mut c = Command::new("python3");
    let path = std::env::var("PATH").unwrap_or_default();
    c.env("PATH", format!("/tmp/rswoole-ci-venv/bin:{path}"));
    c
}

fn run_py(script: &str) -> String {
    let o = python().args(["-c", script]).output().expect("python3");
    assert!(
        o.status.success(),
        "python failed: {}\n{}",
        String::from_utf8_lossy(&o.stderr),
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn start(name: &str, mode: &str, extra: &[String]) -> ServerProc {
    let mut args: Vec<String> = ["--port", "0", "--mode", mode, "--worker-num", "2"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(extra.iter().cloned());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    ServerProc::start(name, &refs, 0)
}

fn curl(args: &[&str]) -> String {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20"])
        .args(args)
        .output()
        .expect("curl");
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// curl with prior knowledge (h2c) in both modes: several requests on one HTTP/2 connection,
/// HEAD, a POST with a body; HTTP/1.1 on the same port is unaffected.
#[test]
fn http2_h2c_curl_both_modes_and_http1_same_port() {
    for mode in ["process", "base"] {
        let srv = start("http_hello", mode, &[]);
        let base = format!("http://127.0.0.1:{}", srv.port);
        // One URL per curl: Debian's curl 7.88.1 fails reusing a prior-knowledge connection
        // (curl/curl#10634); nghttp below sends many streams on one connection.
        for path in ["/a?x=1", "/b"] {
            let out = curl(&[
                "--http2-prior-knowledge",
                "-w",
                " %{http_version} %{response_code}",
                &format!("{base}{path}"),
            ]);
            assert_eq!(out, "Hello World 2 200", "{mode}");
        }
        // nghttp (nghttp2-client): 100 concurrent streams of one connection.
        let out = Command::new("nghttp")
            .args(["-m", "100", "-t", "20", &format!("{base}/many")])
            .output()
            .expect("nghttp (apt nghttp2-client)");
        assert!(
            out.status.success(),
            "{mode}: nghttp: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "Hello World".repeat(100),
            "{mode}"
        );
        let out = curl(&[
            "--http2-prior-knowledge",
            "-d",
            "some body",
            "-w",
            " %{http_version}",
            &format!("{base}/post"),
        ]);
        assert_eq!(out, "Hello World 2", "{mode}");
        let out = curl(&[
            "--http2-prior-knowledge",
            "-I",
            "-w",
            "%{http_version}",
            &format!("{base}/head"),
        ]);
        assert!(
            out.starts_with("HTTP/2 200")
                && out.contains("content-length: 11")
                && out.ends_with("2"),
            "{mode}: {out}"
        );
        let r = http_get(srv.port, "/plain");
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, "Hello World"),
            "{mode}"
        );
        let out = curl(&["--http1.1", "-w", " %{http_version}", &format!("{base}/")]);
        assert_eq!(out, "Hello World 1.1", "{mode}");
    }
}

/// ALPN over TLS: curl `--http2` and httpx (http2=True) get HTTP/2, an HTTP/1.1-only client
/// still gets HTTP/1.1 on the same port, in both modes.
#[test]
fn http2_alpn_tls_curl_and_httpx_both_modes() {
    let pki = Pki::new();
    for mode in ["process", "base"] {
        let srv = start("http_hello", mode, &pki.args());
        let port = srv.port;
        let url = format!("https://localhost:{port}");
        let resolve = format!("localhost:{port}:127.0.0.1");
        let ca = Pki::s(&pki.ca);
        let out = curl(&[
            "--http2",
            "--cacert",
            ca,
            "--resolve",
            &resolve,
            "-w",
            " %{http_version}\n",
            &format!("{url}/a"),
            &format!("{url}/b"),
        ]);
        assert_eq!(out, "Hello World 2\n".repeat(2), "{mode}");
        let out = curl(&[
            "--http1.1",
            "--cacert",
            ca,
            "--resolve",
            &resolve,
            "-w",
            " %{http_version}",
            &format!("{url}/a"),
        ]);
        assert_eq!(out, "Hello World 1.1", "{mode}");
        let py = format!(
            "import httpx\nwith httpx.Client(verify='{ca}', http2=True) as c:\n  for i in range(5):\n    r = c.get('https://localhost:{port}/x')\n    assert r.status_code == 200 and r.text == 'Hello World', r\n  print(r.http_version, 'ok')\n"
        );
        assert_eq!(run_py(&py), "HTTP/2 ok\n", "{mode}");
    }
}

/// Many concurrent streams on one h2c connection (httpx, prior knowledge): 300 requests in
/// flight at once, more than the 128 concurrent streams allowed, all answered, in both modes.
#[test]
fn http2_many_concurrent_streams_both_modes() {
    for mode in ["process", "base"] {
        let srv = start("http_hello", mode, &[]);
        let py = format!(
            r#"
import asyncio, httpx
async def main():
    async with httpx.AsyncClient(http1=False, http2=True, timeout=20) as c:
        rs = await asyncio.gather(*[c.get('http://127.0.0.1:{port}/n/%d' % i) for i in range(300)])
        assert all(r.status_code == 200 and r.text == 'Hello World' and r.http_version == 'HTTP/2' for r in rs)
        print(len(rs))
asyncio.run(main())
"#,
            port = srv.port
        );
        assert_eq!(run_py(&py), "300\n", "{mode}");
    }
}

/// The tower adapter (axum_app) over h2c: JSON routes, a streamed response, an upload whose
/// size and hash the handler computes, in both modes.
#[test]
fn http2_tower_axum_over_h2c() {
    for mode in ["process", "base"] {
        let srv = start("axum_app", mode, &[]);
        let py = format!(
            r#"
import httpx
data = bytes(range(256)) * 800
h = 0xcbf29ce484222325
for b in data:
    h = ((h ^ b) * 0x100000001b3) & 0xffffffffffffffff
with httpx.Client(http1=False, http2=True, timeout=20) as c:
    base = 'http://127.0.0.1:{port}'
    r = c.get(base + '/hello/bob?upper=true')
    assert r.http_version == 'HTTP/2' and r.json() == {{'hello': 'BOB'}}, r.text
    r = c.get(base + '/stream/5')
    assert r.status_code == 200 and len(r.content) > 0, r
    r = c.post(base + '/upload', content=data)
    j = r.json()
    assert j['bytes'] == len(data) and j['fnv1a'] == '%016x' % h, j
    r = c.get(base + '/nowhere')
    assert r.status_code == 404, r
print('ok')
"#,
            port = srv.port
        );
        assert_eq!(run_py(&py), "ok\n", "{mode}");
    }
}

/// The known HTTP/2 floods, crafted with the Python `h2` client (tests/py/h2_flood.py), in
/// both modes: rapid reset (CVE-2023-44487) and a CONTINUATION flood (CVE-2024-27316) get
/// the attacking connection closed; an oversized header list (HPACK bomb shape) is refused;
/// SETTINGS and PING floods do not take the server down; the last possible stream id is
/// served; a client that never opens its window gets headers and no data. After each, a fresh connection is served (the script checks it).
#[test]
fn http2_floods_leave_the_server_serving_both_modes() {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/h2_flood.py");
    let expect: &[(&str, &[&str])] = &[
        ("rapid_reset", &["closed", "goaway"]),
        ("continuation", &["closed", "goaway"]),
        (
            "big_headers",
            &["goaway", "reset", "answered:431", "closed"],
        ),
        ("ping_settings", &["survived", "closed"]),
        ("zero_window", &["answered:200"]),
        ("stream_ids", &["answered:200"]),
    ];
    for mode in ["process", "base"] {
        let srv = start("http_hello", mode, &[]);
        for (attack, allowed) in expect {
            let o = python()
                .arg(&script)
                .arg(srv.port.to_string())
                .arg(attack)
                .output()
                .expect("python3");
            let out = String::from_utf8_lossy(&o.stdout).into_owned();
            assert!(
                o.status.success(),
                "{mode} {attack}: {out}\n{}",
                String::from_utf8_lossy(&o.stderr)
            );
            let mut lines = out.lines();
            let what = lines.next().unwrap_or("");
            assert!(
                allowed.contains(&what),
                "{mode} {attack}: the server did {what:?}"
            );
            assert_eq!(lines.next(), Some("served"), "{mode} {attack}");
        }
        // And the server still answers HTTP/1.1 and h2c.
        assert_eq!(http_get(srv.port, "/").status, 200, "{mode}");
    }
}

/// Settings through the example flags: the announced `SETTINGS_MAX_CONCURRENT_STREAMS`
/// (nghttp), keepalive PINGs (a client that never answers is closed, one that answers stays),
/// and `--no-http2` (HTTP/1.1 only, the preface is refused), in both modes.
#[test]
fn http2_settings_keepalive_and_off_both_modes() {
    for mode in ["process", "base"] {
        let flags: Vec<String> = [
            "--http2-max-streams",
            "7",
            "--http2-keepalive-ms",
            "300",
            "--http2-keepalive-timeout-ms",
            "300",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let srv = start("http_hello", mode, &flags);
        let out = Command::new("nghttp")
            .args(["-v", "-t", "20", &format!("http://127.0.0.1:{}/", srv.port)])
            .output()
            .expect("nghttp");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("SETTINGS_MAX_CONCURRENT_STREAMS(0x03):7]"),
            "{mode}: {text}"
        );
        let py = format!(
            r#"
import socket, time, h2.connection, h2.config, h2.events
def conn():
    s = socket.create_connection(('127.0.0.1', {port}), timeout=10)
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    c.initiate_connection()
    s.sendall(c.data_to_send())
    return s, c
# Silent: never reads, never answers the PING: closed within a few keepalive periods.
s, _ = conn()
t0 = time.time()
s.settimeout(10)
while s.recv(65536):
    pass
silent = time.time() - t0
# Polite: answers every PING for 2 s and is still served.
s, c = conn()
s.settimeout(0.1)
pings = 0
t0 = time.time()
while time.time() - t0 < 2:
    try:
        d = s.recv(65536)
    except socket.timeout:
        continue
    assert d, 'polite client closed'
    pings += sum(isinstance(e, h2.events.PingReceived) for e in c.receive_data(d))
    s.sendall(c.data_to_send())
c.send_headers(1, [(':method', 'GET'), (':path', '/'), (':scheme', 'http'), (':authority', 'x')], end_stream=True)
s.sendall(c.data_to_send())
s.settimeout(10)
got = False
while not got:
    for e in c.receive_data(s.recv(65536)):
        got = got or isinstance(e, h2.events.ResponseReceived)
    s.sendall(c.data_to_send())
print(silent < 5, pings >= 2)
"#,
            port = srv.port
        );
        assert_eq!(run_py(&py), "True True\n", "{mode}");
        drop(srv);
        let off = start("http_hello", mode, &["--no-http2".to_string()]);
        let o = Command::new("curl")
            .args(["-sS", "--max-time", "10", "--http2-prior-knowledge"])
            .arg(format!("http://127.0.0.1:{}/", off.port))
            .output()
            .expect("curl");
        assert!(!o.status.success(), "{mode}: h2c served with --no-http2");
        assert_eq!(http_get(off.port, "/").status, 200, "{mode}");
    }
}

/// A graceful stop (SIGTERM) with a request in flight on an HTTP/2 connection: the stream is
/// answered in full and the client gets GOAWAY, in both modes (axum_app's `/sleep/{ms}`).
#[test]
fn http2_graceful_stop_finishes_streams_and_sends_goaway() {
    for mode in ["process", "base"] {
        let mut srv = start("axum_app", mode, &[]);
        let py = format!(
            r#"
import os, signal, socket, time, h2.connection, h2.config, h2.events, h2.exceptions
s = socket.create_connection(('127.0.0.1', {port}), timeout=10)
c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
c.initiate_connection()
c.send_headers(1, [(':method', 'GET'), (':path', '/sleep/1000'), (':scheme', 'http'), (':authority', 'x')], end_stream=True)
s.sendall(c.data_to_send())
# The request is in a worker once the server acknowledged our SETTINGS and the stream is open.
time.sleep(0.3)
os.kill({pid}, signal.SIGTERM)
seen = []
body = b''
buf = b''
done = False
while not done:
    d = s.recv(65536)
    if not d:
        break
    buf += d
    # One frame at a time, so that the events before a frame the client library refuses
    # (h2's closing PING after GOAWAY) are kept.
    while len(buf) >= 9 and len(buf) >= 9 + int.from_bytes(buf[:3], 'big'):
        n = 9 + int.from_bytes(buf[:3], 'big')
        frame, buf = buf[:n], buf[n:]
        try:
            evs = c.receive_data(frame)
        except h2.exceptions.ProtocolError:
            done = True
            break
        for e in evs:
            if isinstance(e, h2.events.ResponseReceived):
                seen.append('resp:' + dict(e.headers)[b':status'].decode())
            elif isinstance(e, h2.events.DataReceived):
                body += e.data
            elif isinstance(e, h2.events.StreamEnded):
                seen.append('end')
            elif isinstance(e, h2.events.ConnectionTerminated):
                seen.append('goaway')
    try:
        s.sendall(c.data_to_send())
    except OSError:
        break
print(sorted(set(seen)), body.decode())
"#,
            port = srv.port,
            pid = srv.pid()
        );
        let out = run_py(&py);
        assert_eq!(
            out, "['end', 'goaway', 'resp:200'] {\"slept\":1000}\n",
            "{mode}"
        );
        assert!(
            srv.wait_exit(Duration::from_secs(20)).is_some(),
            "{mode}: did not stop"
        );
    }
}
