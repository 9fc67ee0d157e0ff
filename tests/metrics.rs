//! The admin listener (`--admin`): Prometheus metrics scraped and parsed by Python's
//! `prometheus_client.parser` under load, the token, user metrics summed over workers, the
//! access log, `rswoole top` in tmux.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::util::{free_port, read_response, rswoole_bin, ServerProc};

const TOKEN: &str = "t0ken";

/// The CI venv's python if it is there (it has prometheus_client), else `python3`.
fn python() -> String {
    let venv = "/tmp/rswoole-ci-venv/bin/python3";
    if std::path::Path::new(venv).exists() {
        venv.into()
    } else {
        "python3".into()
    }
}

/// Whether Python's prometheus_client is importable; outside CI a test without it is skipped.
fn have_prometheus_client() -> bool {
    let ok = Command::new(python())
        .args(["-c", "import prometheus_client"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var("CI").is_err(),
            "prometheus_client is missing (.ci/run installs it)"
        );
        eprintln!("prometheus_client not installed here; .ci/run installs it; skipped");
    }
    ok
}

/// `GET path` on the admin port with `auth` as the Authorization header (if any).
fn admin_get(port: u16, path: &str, auth: Option<&str>) -> crate::util::HttpResp {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("admin listener");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let auth = auth.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: a\r\n{auth}\r\n").as_bytes())
        .unwrap();
    let mut buf = Vec::new();
    read_response(&mut s, &mut buf, false).expect("admin response")
}

/// Scrapes `/metrics` and parses it with `prometheus_client.parser`: sample name + labels
/// (JSON, sorted keys) → value.
fn scrape(port: u16) -> HashMap<String, f64> {
    let r = admin_get(port, "/metrics", Some(&format!("Bearer {TOKEN}")));
    assert_eq!(r.status, 200, "{}", r.text());
    let py = "import sys, json\nfrom prometheus_client.parser import text_string_to_metric_families as parse\nout = {}\nfor f in parse(sys.stdin.read()):\n  for s in f.samples:\n    out[s.name + json.dumps(s.labels, sort_keys=True)] = s.value\nprint(json.dumps(out))\n";
    let mut child = Command::new(python())
        .args(["-c", py])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child.stdin.take().unwrap().write_all(&r.body).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "prometheus_client could not parse /metrics: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        r.text()
    );
    serde_json::from_slice(&out.stdout).expect("parser output")
}

/// The sum of the samples named `name` whose labels include `labels`.
fn get(m: &HashMap<String, f64>, name: &str, labels: &[(&str, &str)]) -> f64 {
    m.iter()
        .filter(|(k, _)| {
            k.strip_prefix(name).is_some_and(|rest| {
                let Ok(l) = serde_json::from_str::<HashMap<String, String>>(rest) else {
                    return false;
                };
                labels
                    .iter()
                    .all(|(k, v)| l.get(*k).is_some_and(|x| x == v))
            })
        })
        .map(|(_, v)| *v)
        .sum()
}

/// `n` keep-alive GETs of `path` on one connection; returns how many were answered 200.
fn load(port: u16, path: &str, n: usize) -> usize {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = Vec::new();
    let mut ok = 0;
    for _ in 0..n {
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
            .unwrap();
        let r = read_response(&mut s, &mut buf, false).expect("a response");
        ok += usize::from(r.status == 200);
    }
    ok
}

fn kit(extra: &[&str]) -> (ServerProc, u16) {
    with_admin("http_kit", &["--addr", "127.0.0.1:0"], extra)
}

/// Starts `example` listening as `listen` says with 2 workers and an admin listener (token
/// [`TOKEN`]) on a free port, plus `extra` flags; returns the server and the admin port.
fn with_admin(example: &str, listen: &[&str], extra: &[&str]) -> (ServerProc, u16) {
    let admin = free_port();
    let admin_addr = format!("127.0.0.1:{admin}");
    let mut args = listen.to_vec();
    args.extend_from_slice(&[
        "--worker-num",
        "2",
        "--admin",
        &admin_addr,
        "--admin-token",
        TOKEN,
    ]);
    args.extend_from_slice(extra);
    let srv = ServerProc::start(example, &args, 0);
    (srv, admin)
}

/// Waits (bounded) until `f` holds for a fresh scrape; returns that scrape.
fn wait_scrape(
    port: u16,
    what: &str,
    f: impl Fn(&HashMap<String, f64>) -> bool,
) -> HashMap<String, f64> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let m = scrape(port);
        if f(&m) {
            return m;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// N requests → `rswoole_http_requests_total{status="200"}` grows by exactly N; every
/// counter only grows while scraped under load; a worker's `kill -9` loses no count.
#[test]
fn metrics_http_requests_match_the_load_and_survive_kill9() {
    if !have_prometheus_client() {
        return;
    }
    let (srv, admin) = kit(&[]);
    let base = scrape(admin);
    let ok200 =
        |m: &HashMap<String, f64>| get(m, "rswoole_http_requests_total", &[("status", "200")]);
    let b200 = ok200(&base);
    let done = Arc::new(AtomicBool::new(false));
    let scraper = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut scrapes = vec![scrape(admin)];
            while !done.load(Ordering::Relaxed) {
                scrapes.push(scrape(admin));
            }
            scrapes.push(scrape(admin));
            scrapes
        })
    };
    let port = srv.port;
    let (threads, per) = (4, 250);
    let loaders: Vec<_> = (0..threads)
        .map(|_| std::thread::spawn(move || load(port, "/hello", per)))
        .collect();
    let answered: usize = loaders.into_iter().map(|t| t.join().unwrap()).sum();
    done.store(true, Ordering::Relaxed);
    let scrapes = scraper.join().unwrap();
    assert_eq!(answered, threads * per);
    assert!(scrapes.len() >= 2);
    for w in scrapes.windows(2) {
        for (k, v) in &w[0] {
            if k.contains("_total") && !k.contains("rswoole_process_cpu") {
                let later = w[1].get(k).copied().unwrap_or(0.0);
                assert!(later >= *v, "{k} went down: {v} -> {later}");
            }
        }
    }
    let after = scrapes.last().unwrap();
    assert_eq!(ok200(after) - b200, answered as f64, "200s counted");
    assert_eq!(
        get(
            after,
            "rswoole_http_requests_by_protocol_total",
            &[("protocol", "HTTP/1.1")]
        ) - get(
            &base,
            "rswoole_http_requests_by_protocol_total",
            &[("protocol", "HTTP/1.1")]
        ),
        answered as f64
    );
    assert!(
        get(after, "rswoole_received_bytes_total", &[])
            > get(&base, "rswoole_received_bytes_total", &[])
    );
    assert!(get(after, "rswoole_sent_bytes_total", &[]) > 0.0);
    assert!(
        get(
            after,
            "rswoole_process_resident_memory_bytes",
            &[("process", "worker")]
        ) > 0.0
    );
    let count_before_kill = ok200(after);

    // kill -9 worker 0 (its pid is a label of its memory gauge).
    let pid_of = |m: &HashMap<String, f64>| -> i32 {
        m.keys()
            .filter(|k| k.starts_with("rswoole_process_resident_memory_bytes{"))
            .filter_map(|k| {
                serde_json::from_str::<HashMap<String, String>>(
                    &k["rswoole_process_resident_memory_bytes".len()..],
                )
                .ok()
            })
            .find(|l| {
                l.get("worker").map(String::as_str) == Some("0")
                    && l.get("process").map(String::as_str) == Some("worker")
            })
            .and_then(|l| l["pid"].parse().ok())
            .expect("worker 0's pid")
    };
    let victim = pid_of(after);
    // A worker of the server this test started.
    let _ = Command::new("kill")
        .args(["-9", &victim.to_string()])
        .status();
    let m = wait_scrape(admin, "worker 0 restarted", |m| {
        get(
            m,
            "rswoole_worker_state",
            &[("worker", "0"), ("state", "idle")],
        ) == 1.0
            && get(m, "rswoole_worker_restarts_total", &[("worker", "0")]) >= 1.0
            && pid_of(m) != victim
    });
    assert!(
        ok200(&m) >= count_before_kill,
        "counts survive the worker's kill -9"
    );
    assert!(get(&m, "rswoole_crashes_total", &[]) >= 1.0);
    let answered2: usize = (0..4).map(|_| load(port, "/hello", 25)).sum();
    let m2 = scrape(admin);
    assert_eq!(ok200(&m2) - ok200(&m), answered2 as f64);
    drop(srv);
}

/// With a token, a missing or wrong one is refused (401); the page and its live feed.
#[test]
fn metrics_admin_refuses_a_wrong_token() {
    let (srv, admin) = kit(&[]);
    assert_eq!(admin_get(admin, "/metrics", None).status, 401);
    assert_eq!(
        admin_get(admin, "/metrics", Some("Bearer nope")).status,
        401
    );
    assert_eq!(admin_get(admin, "/", Some("Basic dDp0")).status, 401);
    let ok = admin_get(admin, "/metrics", Some(&format!("Bearer {TOKEN}")));
    assert_eq!(ok.status, 200);
    assert!(ok.text().contains("rswoole_connections_accepted_total"));
    let page = admin_get(admin, &format!("/?token={TOKEN}"), None);
    assert_eq!(page.status, 200);
    assert!(page.text().contains("<canvas"), "the dashboard page");
    assert_eq!(
        admin_get(admin, &format!("/nope?token={TOKEN}"), None).status,
        404
    );
    // The live feed: a WebSocket that sends a JSON snapshot every second.
    let mut s = TcpStream::connect(("127.0.0.1", admin)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(format!("GET /ws?token={TOKEN} HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").as_bytes()).unwrap();
    let mut buf = Vec::new();
    let r = read_response(&mut s, &mut buf, true).expect("101");
    assert_eq!(r.status, 101);
    while buf.len() < 4 {
        let mut t = [0u8; 4096];
        let n = s.read(&mut t).unwrap();
        assert!(n > 0);
        buf.extend_from_slice(&t[..n]);
    }
    assert_eq!(buf[0], 0x81, "a text frame");
    let (len, at) = match buf[1] {
        126 => (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4),
        127 => panic!("huge frame"),
        n => (n as usize, 2),
    };
    while buf.len() < at + len {
        let mut t = [0u8; 4096];
        let n = s.read(&mut t).unwrap();
        assert!(n > 0);
        buf.extend_from_slice(&t[..n]);
    }
    let v: serde_json::Value = serde_json::from_slice(&buf[at..at + len]).unwrap();
    assert_eq!(v["workers"].as_array().map(Vec::len), Some(2));
    drop(srv);
}

/// `metrics::counter!` from two workers (Base mode: each accepts its own connections) shows
/// up once, summed.
#[test]
fn metrics_user_counter_from_two_workers_is_summed() {
    if !have_prometheus_client() {
        return;
    }
    let (srv, admin) = kit(&["--mode", "base"]);
    assert_eq!(get(&scrape(admin), "orders_total", &[]), 0.0);
    let mut seen = std::collections::HashSet::new();
    let mut n = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.len() < 2 || n < 20 {
        assert!(
            Instant::now() < deadline,
            "requests did not reach both workers: {seen:?}"
        );
        let r = crate::util::http_get(srv.port, "/count?shop=a");
        assert_eq!(r.status, 200);
        seen.insert(r.text());
        n += 1;
    }
    // A request is counted when its handler returns, which may be just after the client has
    // its response: wait (bounded) for the last one.
    let m = wait_scrape(admin, "every request counted", |m| {
        get(m, "rswoole_http_requests_total", &[("status", "200")]) >= n as f64
    });
    assert_eq!(get(&m, "orders_total", &[("shop", "a")]), n as f64);
    assert_eq!(
        get(&m, "rswoole_http_requests_total", &[("status", "200")]),
        n as f64,
        "Base-mode workers count their own requests"
    );
    drop(srv);
}

/// HTTP/2 streams are counted as `protocol="HTTP/2"` in both modes (h2c by prior knowledge,
/// `nghttp` with 30 streams on one connection), an HTTP/1.1 request on the same port as
/// `HTTP/1.1`.
#[test]
fn metrics_http2_streams_are_counted_as_http2_both_modes() {
    if !have_prometheus_client() {
        return;
    }
    for mode in ["process", "base"] {
        let (srv, admin) = kit(&["--mode", mode]);
        let proto = |m: &HashMap<String, f64>, p: &str| {
            get(
                m,
                "rswoole_http_requests_by_protocol_total",
                &[("protocol", p)],
            )
        };
        let base = scrape(admin);
        assert_eq!(proto(&base, "HTTP/2"), 0.0, "{mode}: nothing yet");
        let out = Command::new("nghttp")
            .args([
                "-m",
                "30",
                "-t",
                "20",
                &format!("http://127.0.0.1:{}/hello", srv.port),
            ])
            .output()
            .expect("nghttp (apt nghttp2-client)");
        assert!(
            out.status.success(),
            "{mode}: nghttp: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "Hello World".repeat(30)
        );
        let r = crate::util::http_get(srv.port, "/hello");
        assert_eq!(r.status, 200);
        let m = wait_scrape(admin, "every HTTP/2 stream counted", |m| {
            proto(m, "HTTP/2") >= 30.0 && proto(m, "HTTP/1.1") >= proto(&base, "HTTP/1.1") + 1.0
        });
        assert_eq!(proto(&m, "HTTP/2"), 30.0, "{mode}: every stream once");
        assert_eq!(
            proto(&m, "HTTP/1.1") - proto(&base, "HTTP/1.1"),
            1.0,
            "{mode}: the one HTTP/1.1 request"
        );
        drop(srv);
    }
}

/// Every request gets one access log line, written off the request path; `reopen-logs`
/// (SIGRTMIN to the master) moves the writers to a new file after logrotate moved the old.
#[test]
fn metrics_access_log_lines_match_requests() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let p = path.to_str().unwrap();
    let (srv, _admin) = kit(&["--access-log", p]);
    let lines_of = |path: &std::path::Path, n: usize| -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let lines: Vec<String> = text.lines().map(str::to_string).collect();
            if lines.len() >= n {
                return lines;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} lines in {}",
                lines.len(),
                path.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let probes = 0;
    let n = 30;
    for i in 0..n {
        assert_eq!(
            crate::util::http_get(srv.port, &format!("/query?i={i}")).status,
            200
        );
    }
    let lines = lines_of(&path, probes + n);
    assert_eq!(lines.len(), probes + n);
    let mut got: Vec<String> = lines[probes..]
        .iter()
        .map(|l| {
            // 127.0.0.1 - - [07/Dec/2026:01:55:10 +0000] "GET /query?i=3 HTTP/1.1" 200 113 "-" "-" 0.000957
            assert!(l.starts_with("127.0.0.1 - - ["), "{l}");
            let req = l.split('"').nth(1).unwrap();
            let status = l
                .split('"')
                .nth(2)
                .unwrap()
                .split_whitespace()
                .next()
                .unwrap();
            assert_eq!(status, "200", "{l}");
            req.to_string()
        })
        .collect();
    got.sort();
    let mut want: Vec<String> = (0..n)
        .map(|i| format!("GET /query?i={i} HTTP/1.1"))
        .collect();
    want.sort();
    assert_eq!(got, want);
    // logrotate: move the file, then reopen-logs.
    let rotated = dir.path().join("access.log.1");
    std::fs::rename(&path, &rotated).unwrap();
    // `rswoole reopen-logs` sends the master SIGRTMIN (no pid file here: send it directly).
    let st = Command::new("kill")
        .args(["-s", &libc::SIGRTMIN().to_string(), &srv.pid().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    // Each worker reopens on its SIGHUP; wait until requests land in the new file.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut sent = 0;
    loop {
        assert_eq!(
            crate::util::http_get(srv.port, "/query?after=1").status,
            200
        );
        sent += 1;
        let new = std::fs::read_to_string(&path).unwrap_or_default();
        if new.lines().filter(|l| l.contains("after=1")).count() >= 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no line in the reopened access log"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The log is written by a background thread: wait (bounded) for the last lines to land.
    let logged = || {
        let old = std::fs::read_to_string(&rotated).unwrap();
        let new = std::fs::read_to_string(&path).unwrap();
        old.lines()
            .chain(new.lines())
            .filter(|l| l.contains("after=1"))
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut after = logged();
    while after < sent && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        after = logged();
    }
    assert_eq!(
        after, sent,
        "every request logged exactly once across the rotation"
    );
    drop(srv);
    // JSON lines.
    let jpath = dir.path().join("access.json");
    let (srv, _) = kit(&["--access-log", jpath.to_str().unwrap(), "--access-log-json"]);
    assert_eq!(crate::util::http_get(srv.port, "/headers").status, 200);
    let l = lines_of(&jpath, 1);
    let v: serde_json::Value = serde_json::from_str(l.last().unwrap()).unwrap();
    assert_eq!(
        (v["uri"].as_str(), v["status"].as_u64()),
        (Some("/headers"), Some(200))
    );
}

/// `rswoole top --pid-file F` in a tmux pane shows every worker.
#[test]
fn metrics_rswoole_top_in_tmux_shows_the_workers() {
    if Command::new("tmux").arg("-V").output().is_err() {
        assert!(
            std::env::var("CI").is_err(),
            "tmux is missing (.ci/run installs it)"
        );
        eprintln!("tmux not installed here; skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pf = dir.path().join("top.pid");
    let admin = format!("127.0.0.1:{}", free_port());
    let srv = ServerProc::start(
        "http_hello",
        &[
            "--port",
            "0",
            "--worker-num",
            "3",
            "--pid-file",
            pf.to_str().unwrap(),
            "--admin",
            &admin,
        ],
        0,
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while crate::util::status(&pf).is_none() {
        assert!(Instant::now() < deadline, "no status socket");
        std::thread::sleep(Duration::from_millis(50));
    }
    let session = format!("rswoole-top-{}", std::process::id());
    let cmd = format!(
        "{} top --pid-file {}",
        rswoole_bin().display(),
        pf.display()
    );
    let st = Command::new("tmux")
        .args([
            "new-session",
            "-d",
            "-s",
            &session,
            "-x",
            "160",
            "-y",
            "40",
            &cmd,
        ])
        .env_remove("TMUX")
        .status()
        .unwrap();
    assert!(st.success());
    struct Kill(String);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = Command::new("tmux")
                .args(["kill-session", "-t", &self.0])
                .status();
        }
    }
    let _kill = Kill(session.clone());
    let status = crate::util::status(&pf).unwrap();
    let pids: Vec<u64> = status["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["pid"].as_u64().unwrap())
        .collect();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let out = Command::new("tmux")
            .args(["capture-pane", "-p", "-t", &session])
            .output()
            .unwrap();
        let screen = String::from_utf8_lossy(&out.stdout).into_owned();
        let rows = screen.lines().filter(|l| l.contains(" worker ")).count();
        if screen.contains("rswoole top")
            && rows == 3
            && pids.iter().all(|p| screen.contains(&p.to_string()))
            && screen.contains("http req/s")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "rswoole top did not show the workers:\n{screen}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(srv);
}

/// A watched shared table's rows in use and capacity, and the connection and TCP byte
/// counters of a raw TCP server.
#[test]
fn metrics_table_rows_and_tcp_counters() {
    if !have_prometheus_client() {
        return;
    }
    let (srv, admin) = with_admin("table", &["--port", "0"], &[]);
    let mut conns: Vec<TcpStream> = (0..3).map(|_| crate::util::connect(srv.port)).collect();
    for c in &mut conns {
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c.write_all(b"total\n").unwrap();
        let mut b = [0u8; 64];
        assert!(c.read(&mut b).unwrap() > 0);
    }
    let m = wait_scrape(admin, "3 connections", |m| {
        get(m, "rswoole_connections", &[]) == 3.0
    });
    assert_eq!(
        get(&m, "rswoole_table_rows", &[("table", "counts")]),
        2.0,
        "rows online and total"
    );
    assert_eq!(
        get(&m, "rswoole_table_capacity_rows", &[("table", "counts")]),
        16.0
    );
    assert!(get(&m, "rswoole_connections_accepted_total", &[]) >= 3.0);
    assert!(get(&m, "rswoole_received_bytes_total", &[]) >= 18.0);
    assert!(get(&m, "rswoole_sent_bytes_total", &[]) >= 3.0 * "total: 1\n".len() as f64);
    drop(conns);
    wait_scrape(admin, "the closes counted", |m| {
        get(m, "rswoole_connections", &[]) == 0.0
            && get(m, "rswoole_connections_closed_total", &[]) >= 3.0
    });
}

/// WebSocket counters: messages in, one broadcast fanned out to every client.
#[test]
fn metrics_websocket_messages_and_broadcast_fanout() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    if !have_prometheus_client() {
        return;
    }
    let (srv, admin) = with_admin("chat", &["--port", "0"], &[]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    const CLIENTS: usize = 4;
    const SENT: usize = 3;
    rt.block_on(async {
        let url = format!("ws://127.0.0.1:{}/", srv.port);
        let mut clients = Vec::new();
        for _ in 0..CLIENTS {
            let (ws, _) = tokio_tungstenite::connect_async(url.as_str())
                .await
                .expect("ws");
            clients.push(ws);
        }
        srv.wait_stdout(" joined ", CLIENTS, Duration::from_secs(20));
        let before = scrape(admin);
        for i in 0..SENT {
            clients[0]
                .send(Message::text(format!("m{i}")))
                .await
                .unwrap();
        }
        for c in &mut clients {
            let mut got = 0;
            while got < SENT {
                let m = tokio::time::timeout(Duration::from_secs(10), c.next())
                    .await
                    .expect("a broadcast in time")
                    .expect("open")
                    .expect("a message");
                got += usize::from(m.is_text());
            }
        }
        let after = scrape(admin);
        let d = |name: &str| get(&after, name, &[]) - get(&before, name, &[]);
        assert_eq!(d("rswoole_websocket_messages_received_total"), SENT as f64);
        assert_eq!(d("rswoole_websocket_broadcasts_total"), SENT as f64);
        assert_eq!(
            d("rswoole_websocket_messages_sent_total"),
            (SENT * CLIENTS) as f64
        );
        assert_eq!(
            get(&after, "rswoole_websocket_connections", &[]),
            CLIENTS as f64
        );
    });
}
