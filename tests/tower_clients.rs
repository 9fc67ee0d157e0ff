//! examples/axum_app driven by third-party clients: Python's `httpx` (and `websockets` for the
//! chat) and `curl`. Every route; a 20 MiB streamed upload with the memory of the process
//! owning the connection and of the worker bounded; a streamed response; a panicking handler;
//! 504 from `request_timeout` and from tower-http's `TimeoutLayer`; kill -9 of a busy worker;
//! reload and `max_request` recycling under keep-alive load with no failed request (the
//! router is rebuilt by the factory in each new worker); daemon mode and `rswoole stop`.
//!
//! The Python clients live in the venv `.ci/run` makes (`/tmp/rswoole-ci-venv`, put first on
//! PATH here). Outside CI, a machine without httpx skips the Python parts (and says so); in
//! CI (`CI` set) their absence fails.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::ops::{read_pid, DaemonGuard};
use crate::util::*;

const T: Duration = Duration::from_secs(20);

/// How long one client process may run before the test kills it and fails.
const CLIENT_LIMIT: Duration = Duration::from_secs(120);

/// PATH with the CI venv's bin first (where .ci/run installs httpx and websockets).
fn client_path() -> String {
    let venv = "/tmp/rswoole-ci-venv/bin";
    let path = std::env::var("PATH").unwrap_or_default();
    if Path::new(venv).is_dir() {
        format!("{venv}:{path}")
    } else {
        path
    }
}

/// Whether `python3` has httpx and websockets. Without them: `false` outside CI (the caller
/// skips its Python part), a failure in CI.
fn have_python_clients() -> bool {
    let o = Command::new("python3")
        .args(["-c", "import httpx, websockets"])
        .env("PATH", client_path())
        .output()
        .expect("python3");
    if o.status.success() {
        return true;
    }
    assert!(
        std::env::var("CI").is_err(),
        "httpx/websockets missing in CI: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    eprintln!(
        "httpx or websockets not installed here (.ci/run installs them): Python part skipped"
    );
    false
}

/// Waits for a client process, bounded; kills it (our own child, by its handle) past the limit.
fn finish(mut child: Child, what: &str) -> Output {
    let deadline = Instant::now() + CLIENT_LIMIT;
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return child.wait_with_output().expect("client output");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let o = child.wait_with_output().expect("client output");
            panic!(
                "{what} did not finish in {CLIENT_LIMIT:?}; stdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs a Python client script (`python3 -c SCRIPT ARGS`) to its end; its stdout. Fails with
/// its stderr if it failed.
fn python(script: &str, args: &[&str]) -> String {
    let child = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .env("PATH", client_path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    let o = finish(child, "python client");
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "python client failed; stdout:\n{out}\nstderr:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

/// A curl invocation (`-sS`, bounded by `--max-time`).
fn curl_cmd(args: &[&str]) -> Command {
    let mut c = Command::new("curl");
    c.args(["-sS", "--max-time", "60"])
        .args(args)
        .env("PATH", client_path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// A response as curl printed it with `-i`: status, lower-cased head, body.
#[derive(Debug)]
struct CurlResp {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl CurlResp {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    /// A header's value (the last one of that name).
    fn header(&self, name: &str) -> Option<String> {
        self.head
            .lines()
            .filter_map(|l| l.split_once(':'))
            .filter(|(n, _)| n.trim() == name)
            .map(|(_, v)| v.trim().to_string())
            .next_back()
    }
}

/// Parses curl's `-i` output: interim `100 Continue` heads are skipped.
fn parse_curl(out: &[u8]) -> CurlResp {
    let mut rest = out;
    loop {
        let end = rest
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("no head in {:?}", String::from_utf8_lossy(out)));
        let head = String::from_utf8_lossy(&rest[..end]).to_lowercase();
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status in {head:?}"));
        rest = &rest[end + 4..];
        if status != 100 {
            return CurlResp {
                status,
                head,
                body: rest.to_vec(),
            };
        }
    }
}

/// `curl -i ARGS`, answered (curl must succeed).
fn curl(args: &[&str]) -> CurlResp {
    let child = curl_cmd(&[&["-i"], args].concat())
        .stdin(Stdio::null())
        .spawn()
        .expect("curl installed");
    let o = finish(child, "curl");
    assert!(
        o.status.success(),
        "curl {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    parse_curl(&o.stdout)
}

fn axum_app(mode: &str, extra: &[&str]) -> ServerProc {
    let mut args = vec!["--port", "0", "--mode", mode];
    args.extend_from_slice(extra);
    if !extra.contains(&"--worker-num") {
        args.extend_from_slice(&["--worker-num", "2"]);
    }
    ServerProc::start("axum_app", &args, 0)
}

/// FNV-1a 64, as `/upload` computes it.
fn fnv1a(h: u64, data: &[u8]) -> u64 {
    data.iter()
        .fold(h, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

/// The JSON `/upload` must answer for `blocks` blocks of 1 MiB, block `i` being the bytes
/// `(j + i) % 256` (as the Python clients and the curl file make them).
pub(crate) fn upload_answer(blocks: usize, block: usize) -> String {
    let mut h = FNV_START;
    for i in 0..blocks {
        let b: Vec<u8> = (0..block).map(|j| ((j + i) % 256) as u8).collect();
        h = fnv1a(h, &b);
    }
    format!(r#"{{"bytes":{},"fnv1a":"{h:016x}"}}"#, blocks * block)
}

/// httpx and websockets on every route, in both modes. The client must see: the exact JSON
/// of `/hello` (path, percent-decoding, the `upper` query) with `x-served-by: rswoole`; the
/// gzipped JSON decoded (httpx asks for gzip); `/task/200` after ≥ 200 ms; `/worker` with
/// its three fields; `/stream/5` arriving in several reads spread over ≥ 50 ms (streamed, not
/// buffered) with exactly its five chunks; a chunked streamed upload's size and hash;
/// `/sleep/50`; `/limited/50` answered and `/limited/5000` cut with 504 by the route's
/// TimeoutLayer; `/panic` → 500 and the next request on the same connection (same local
/// port) answered; 404; a CORS preflight; the chat at `/ws` (each message to both clients as
/// `from{fd}:{text}\n`) with `/online` counting 2 and back to 0 after they close.
#[test]
fn tower_httpx_every_route() {
    if !have_python_clients() {
        return;
    }
    const SCRIPT: &str = r#"
import sys, time
import httpx
from websockets.sync.client import connect as ws_connect

url = sys.argv[1]

def check(cond, what):
    if not cond:
        raise SystemExit(f"FAILED: {what}")

def local_port(r):
    return r.extensions["network_stream"].get_extra_info("client_addr")[1]

with httpx.Client(base_url=url, timeout=20) as c:
    r = c.get("/hello/world")
    check(r.status_code == 200 and r.json() == {"hello": "world"}, f"/hello/world: {r.status_code} {r.text}")
    check(r.headers.get("x-served-by") == "rswoole", f"x-served-by: {r.headers}")
    check(r.headers.get("content-type") == "application/json", f"content-type: {r.headers}")
    r = c.get("/hello/bob", params={"upper": "true"})
    check(r.json() == {"hello": "BOB"}, f"upper: {r.text}")
    r = c.get("/hello/a%20b")
    check(r.json() == {"hello": "a b"}, f"percent-decoded: {r.text}")
    name = "z" * 200
    r = c.get(f"/hello/{name}")
    check(r.headers.get("content-encoding") == "gzip" and r.json() == {"hello": name},
          f"gzip: {r.headers} {r.text[:80]}")
    check(int(r.headers["content-length"]) < len(name), f"gzip length: {r.headers}")

    t0 = time.monotonic()
    r = c.get("/task/200")
    check(r.json() == {"done": 200} and time.monotonic() - t0 >= 0.2, f"/task/200: {r.text}")
    w = c.get("/worker").json()
    check(set(w) == {"worker", "pid", "served"} and w["served"] >= 1, f"/worker: {w}")

    # Streamed: five chunks 20 ms apart arrive as they are made (identity: this is about
    # the adapter streaming, not about how the gzip encoder buffers).
    times, body = [], b""
    with c.stream("GET", "/stream/5", headers={"accept-encoding": "identity"}) as r:
        check(r.headers.get("transfer-encoding") == "chunked", f"/stream: {r.headers}")
        for part in r.iter_raw():
            times.append(time.monotonic())
            body += part
    check(body == b"".join(b"chunk %d\n" % i for i in range(1, 6)), f"/stream body: {body!r}")
    check(len(times) >= 3 and times[-1] - times[0] >= 0.05,
          f"not streamed: {len(times)} reads over {times[-1] - times[0]:.3f} s")

    base = bytes(range(256)) * 256
    def blocks():
        for i in range(8):
            yield base[i % 256:] + base[:i % 256]
    r = c.post("/upload", content=blocks())
    check(r.status_code == 200, f"/upload: {r.status_code} {r.text}")
    print("upload", r.text)

    r = c.get("/sleep/50")
    check(r.json() == {"slept": 50}, f"/sleep/50: {r.text}")
    r = c.get("/limited/50")
    check(r.status_code == 200 and r.json() == {"slept": 50}, f"/limited/50: {r.status_code} {r.text}")
    t0 = time.monotonic()
    r = c.get("/limited/5000")
    took = time.monotonic() - t0
    check(r.status_code == 504 and 0.5 <= took < 3, f"/limited/5000: {r.status_code} after {took:.2f} s")

    r = c.get("/panic")
    check(r.status_code == 500, f"/panic: {r.status_code} {r.text}")
    port = local_port(r)
    r = c.get("/hello/after")
    check(r.json() == {"hello": "after"}, f"after the panic: {r.text}")
    check(local_port(r) == port, "the connection did not survive the panic")

    check(c.get("/no/such/route").status_code == 404, "404")
    r = c.options("/upload", headers={"origin": "https://app.example",
                                      "access-control-request-method": "POST"})
    check(r.status_code == 200 and r.headers.get("access-control-allow-origin") == "*",
          f"preflight: {r.status_code} {r.headers}")

    check(c.get("/online").json() == {"online": 0}, "online before")
    ws = url.replace("http://", "ws://") + "/ws"
    with ws_connect(ws) as a, ws_connect(ws) as b:
        for sender, text in ((a, "hi from a"), (b, "hi from b")):
            sender.send(text)
            for peer in (a, b):
                m = peer.recv(timeout=10)
                check(m.startswith("from") and m.endswith(f":{text}\n"), f"chat: {m!r}")
        check(c.get("/online").json() == {"online": 2}, "online with two")
    deadline = time.monotonic() + 10
    while c.get("/online").json() != {"online": 0}:
        check(time.monotonic() < deadline, "/online never went back to 0")
        time.sleep(0.02)
print("every route ok")
"#;
    let upload = format!("upload {}\n", upload_answer(8, 65536));
    for mode in ["process", "base"] {
        let srv = axum_app(mode, &[]);
        let url = format!("http://127.0.0.1:{}", srv.port);
        let out = python(SCRIPT, &[&url]);
        assert!(out.contains(&upload), "{mode}: want {upload:?} in\n{out}");
        assert!(out.ends_with("every route ok\n"), "{mode}: {out}");
    }
}

/// curl on every HTTP route, in both modes. curl must see: `/hello` JSON with
/// `x-served-by`; `--compressed` gets gzip and decodes it; `/task/200`; `/online` 0;
/// `/worker`'s fields; `/stream/3` raw: chunked, three chunks, then the trailer `x-chunks: 3`;
/// a chunked upload from stdin hashed right; `/sleep/20`; `/limited/5000` → 504 in well under
/// 5 s; `/panic` → 500 then `/hello/after` → 200 on the same connection (curl reports no new
/// connect); 404; a CORS preflight.
#[test]
fn tower_curl_every_route() {
    for mode in ["process", "base"] {
        let srv = axum_app(mode, &[]);
        let url = format!("http://127.0.0.1:{}", srv.port);
        let r = curl(&[&format!("{url}/hello/world")]);
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, r#"{"hello":"world"}"#),
            "{mode}"
        );
        assert_eq!(
            r.header("x-served-by").as_deref(),
            Some("rswoole"),
            "{mode}"
        );
        let r = curl(&[&format!("{url}/hello/bob?upper=true")]);
        assert_eq!(r.text(), r#"{"hello":"BOB"}"#, "{mode}");
        let name = "y".repeat(300);
        let r = curl(&["--compressed", &format!("{url}/hello/{name}")]);
        assert_eq!(
            r.header("content-encoding").as_deref(),
            Some("gzip"),
            "{mode}"
        );
        assert_eq!(r.text(), format!(r#"{{"hello":"{name}"}}"#), "{mode}");

        let t0 = Instant::now();
        let r = curl(&[&format!("{url}/task/200")]);
        assert_eq!(r.text(), r#"{"done":200}"#, "{mode}");
        assert!(t0.elapsed() >= Duration::from_millis(200), "{mode}");
        assert_eq!(
            curl(&[&format!("{url}/online")]).text(),
            r#"{"online":0}"#,
            "{mode}"
        );
        let w: serde_json::Value =
            serde_json::from_slice(&curl(&[&format!("{url}/worker")]).body).expect("JSON");
        assert!(
            w["worker"].is_u64() && w["pid"].is_u64() && w["served"].as_u64() >= Some(1),
            "{mode}: {w}"
        );

        // --raw: curl shows the chunked framing and the trailer as they came.
        let r = curl(&["--raw", "-N", &format!("{url}/stream/3")]);
        assert_eq!(
            r.header("transfer-encoding").as_deref(),
            Some("chunked"),
            "{mode}"
        );
        assert_eq!(
            r.text(),
            "8\r\nchunk 1\n\r\n8\r\nchunk 2\n\r\n8\r\nchunk 3\n\r\n0\r\nx-chunks: 3\r\n\r\n",
            "{mode}"
        );

        // A chunked upload read from curl's stdin.
        let mut child = curl_cmd(&[
            "-i",
            "-H",
            "Transfer-Encoding: chunked",
            "--data-binary",
            "@-",
            &format!("{url}/upload"),
        ])
        .stdin(Stdio::piped())
        .spawn()
        .expect("curl");
        let mut data = Vec::new();
        for i in 0..4 {
            data.extend((0..65536).map(|j| ((j + i) % 256) as u8));
        }
        child.stdin.take().unwrap().write_all(&data).unwrap();
        let o = finish(child, "curl upload");
        assert!(o.status.success(), "{mode}");
        let r = parse_curl(&o.stdout);
        assert_eq!(
            (r.status, r.text()),
            (200, upload_answer(4, 65536)),
            "{mode}"
        );

        assert_eq!(
            curl(&[&format!("{url}/sleep/20")]).text(),
            r#"{"slept":20}"#,
            "{mode}"
        );
        let t0 = Instant::now();
        let r = curl(&[&format!("{url}/limited/5000")]);
        assert_eq!(r.status, 504, "{mode}: {}", r.text());
        assert!(t0.elapsed() < Duration::from_secs(3), "{mode}");

        // Two URLs in one curl: the second goes on the same connection (num_connects 0).
        let o = finish(
            curl_cmd(&[
                "-o",
                "/dev/null",
                "-w",
                "%{http_code} %{num_connects}\\n",
                &format!("{url}/panic"),
                "-o",
                "/dev/null",
                &format!("{url}/hello/after"),
            ])
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
            "curl",
        );
        assert_eq!(
            String::from_utf8_lossy(&o.stdout),
            "500 1\n200 0\n",
            "{mode}: /panic then /hello/after on the same connection"
        );

        assert_eq!(curl(&[&format!("{url}/no/such")]).status, 404, "{mode}");
        let r = curl(&[
            "-X",
            "OPTIONS",
            "-H",
            "Origin: https://app.example",
            "-H",
            "Access-Control-Request-Method: POST",
            &format!("{url}/upload"),
        ]);
        assert_eq!(r.status, 200, "{mode}");
        assert_eq!(
            r.header("access-control-allow-origin").as_deref(),
            Some("*"),
            "{mode}"
        );
    }
}

/// Writes `blocks` blocks of 1 MiB (block `i`: the bytes `(j + i) % 256`) to `path`.
fn write_blocks(path: &Path, blocks: usize) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for i in 0..blocks {
        let b: Vec<u8> = (0..1 << 20).map(|j| ((j + i) % 256) as u8).collect();
        f.write_all(&b).unwrap();
    }
    f.flush().unwrap();
}

/// A 20 MiB upload, streamed by httpx (chunked, from a generator) and by curl (`-T` of a
/// file: Content-Length, `Expect: 100-continue`), in both modes with one worker; then a
/// 40 MiB one by curl. The client must see each body's exact size and hash. The peak
/// resident memory (VmHWM, /proc) of the worker must grow by less than 8 MiB; that of the
/// process owning the connection (the master in Process mode, the worker in Base mode) by
/// less than 24 MiB for the 20 MiB bodies (its window: 4 MiB of events unacknowledged by
/// the worker, each also queued once on the pipe, plus allocator slack), and both by less
/// than 8 MiB more for the 40 MiB body (20 MiB more body): memory does not follow the
/// body's size.
#[test]
fn tower_upload_20mib_bounded_memory_httpx_curl() {
    const SCRIPT: &str = r#"
import sys
import httpx
base = bytes(range(256)) * 4096
def blocks():
    for i in range(20):
        yield base[i % 256:] + base[:i % 256]
r = httpx.post(sys.argv[1] + "/upload", content=blocks(), timeout=60)
print(r.status_code, r.text)
"#;
    let want = upload_answer(20, 1 << 20);
    let dir = tempfile::tempdir().unwrap();
    let (f20, f40) = (dir.path().join("20mib.bin"), dir.path().join("40mib.bin"));
    write_blocks(&f20, 20);
    write_blocks(&f40, 40);
    let py = have_python_clients();
    for mode in ["process", "base"] {
        let srv = axum_app(
            mode,
            // One reactor thread: every upload goes through the same thread (and malloc
            // arena) of the master, so that its peaks compare.
            &[
                "--worker-num",
                "1",
                "--reactor-num",
                "1",
                "--package-max-length",
                "67108864",
            ],
        );
        let worker = srv.wait_titles("rswoole: worker", 1, T)[0];
        let owner = if mode == "process" { srv.pid() } else { worker };
        let url = format!("http://127.0.0.1:{}", srv.port);
        // The worker has built its router and served a request before the baseline.
        assert_eq!(curl(&[&format!("{url}/hello/x")]).status, 200);
        let before = (vm_hwm_kib(owner), vm_hwm_kib(worker));
        let grew = |since: (u64, u64)| {
            (
                vm_hwm_kib(owner).saturating_sub(since.0) / 1024,
                vm_hwm_kib(worker).saturating_sub(since.1) / 1024,
            )
        };
        if py {
            let out = python(SCRIPT, &[&url]);
            assert_eq!(out, format!("200 {want}\n"), "{mode}: httpx");
            let g = grew(before);
            assert!(
                g.0 < 24 && g.1 < 8,
                "{mode}: httpx's 20 MiB upload grew the peak memory of (owner, worker) by {g:?} MiB"
            );
        }
        let r = curl(&[
            "-X",
            "POST",
            "-T",
            f20.to_str().unwrap(),
            &format!("{url}/upload"),
        ]);
        assert_eq!((r.status, r.text()), (200, want.clone()), "{mode}: curl");
        let g = grew(before);
        assert!(
            g.0 < 24 && g.1 < 8,
            "{mode}: curl's 20 MiB upload grew the peak memory of (owner, worker) by {g:?} MiB"
        );
        let after20 = (vm_hwm_kib(owner), vm_hwm_kib(worker));
        let r = curl(&[
            "-X",
            "POST",
            "-T",
            f40.to_str().unwrap(),
            &format!("{url}/upload"),
        ]);
        assert_eq!(
            (r.status, r.text()),
            (200, upload_answer(40, 1 << 20)),
            "{mode}: curl, 40 MiB"
        );
        let g = grew(after20);
        assert!(
            g.0 < 8 && g.1 < 8,
            "{mode}: a 40 MiB upload grew the peak memory of (owner, worker) by {g:?} MiB more than the 20 MiB ones"
        );
        eprintln!(
            "{mode}: peak memory growth (owner, worker) after 20 MiB and 40 MiB uploads: {:?} MiB",
            grew(before)
        );
    }
}

/// 504 two ways, seen by curl and httpx, in both modes, with `--request-timeout-ms 1500`:
/// `/sleep/60000` is cut by rswoole's `request_timeout` (504 after ≥ 1.5 s); `/limited/60000`
/// by tower-http's `TimeoutLayer` on its route (504 after ≥ 0.5 s and before the 1.5 s of
/// `request_timeout`). The connection then serves the next request.
#[test]
fn tower_timeouts_504_curl_httpx() {
    const SCRIPT: &str = r#"
import sys, time
import httpx
with httpx.Client(base_url=sys.argv[1], timeout=30) as c:
    for path in ("/sleep/60000", "/limited/60000"):
        t0 = time.monotonic()
        r = c.get(path)
        print(path, r.status_code, round((time.monotonic() - t0) * 1000))
    r = c.get("/sleep/10")
    print("/sleep/10", r.status_code, r.text)
"#;
    let py = have_python_clients();
    for mode in ["process", "base"] {
        let srv = axum_app(mode, &["--worker-num", "1", "--request-timeout-ms", "1500"]);
        let url = format!("http://127.0.0.1:{}", srv.port);
        let t0 = Instant::now();
        let r = curl(&[&format!("{url}/sleep/60000")]);
        let took = t0.elapsed();
        assert_eq!(r.status, 504, "{mode}: request_timeout");
        assert!(took >= Duration::from_millis(1500), "{mode}: {took:?}");
        let t0 = Instant::now();
        let r = curl(&[&format!("{url}/limited/60000")]);
        let took = t0.elapsed();
        assert_eq!(r.status, 504, "{mode}: TimeoutLayer");
        assert!(
            took >= Duration::from_millis(500) && took < Duration::from_millis(1500),
            "{mode}: the route's TimeoutLayer answers at 500 ms, not request_timeout: {took:?}"
        );
        if py {
            let out = python(SCRIPT, &[&url]);
            let lines: Vec<Vec<&str>> = out.lines().map(|l| l.split(' ').collect()).collect();
            assert_eq!(lines.len(), 3, "{mode}: {out}");
            assert_eq!(lines[0][..2], ["/sleep/60000", "504"], "{mode}: {out}");
            let ms: u64 = lines[0][2].parse().unwrap();
            assert!(ms >= 1500, "{mode}: {out}");
            assert_eq!(lines[1][..2], ["/limited/60000", "504"], "{mode}: {out}");
            let ms: u64 = lines[1][2].parse().unwrap();
            assert!((500..1500).contains(&ms), "{mode}: {out}");
            assert_eq!(
                out.lines().nth(2),
                Some(r#"/sleep/10 200 {"slept":10}"#),
                "{mode}"
            );
        }
    }
}

/// Process mode: curl's request in flight on a worker that is killed (-9) gets 503; the next
/// curl request is answered 200 by the replacement worker.
#[test]
fn tower_curl_worker_killed_503() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("axum.pid");
    let srv = axum_app(
        "process",
        &[
            "--worker-num",
            "1",
            "--pid-file",
            pid_file.to_str().unwrap(),
        ],
    );
    let url = format!("http://127.0.0.1:{}", srv.port);
    let child = curl_cmd(&["-i", &format!("{url}/sleep/60000")])
        .stdin(Stdio::null())
        .spawn()
        .expect("curl");
    // The worker has the request once it counted it and is busy with it.
    let st = wait_status(&pid_file, "the worker busy with curl's request", T, |v| {
        let w = &v["workers"][0];
        w["requests"].as_u64() >= Some(1) && w["state"] == "busy"
    });
    let pid = st["workers"][0]["pid"].as_i64().unwrap() as i32;
    assert!(srv.descendants().contains(&pid), "{pid} is this server's");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let t0 = Instant::now();
    let o = finish(child, "curl");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r = parse_curl(&o.stdout);
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(t0.elapsed() < T, "the 503 came at once, not at a timeout");
    let deadline = Instant::now() + T;
    loop {
        let r = curl(&[&format!("{url}/hello/again")]);
        if r.status == 200 {
            assert_eq!(r.text(), r#"{"hello":"again"}"#);
            break;
        }
        assert!(Instant::now() < deadline, "no worker served: {}", r.status);
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The keep-alive load of the reload test: `conns` httpx clients in threads, each on its own
/// connection, GET `/hello/c{t}r{k}` in a loop, each answer checked; prints `ok N` as it goes
/// and a summary with the failures once its stdin closes.
const LOAD: &str = r#"
import sys, threading
import httpx
url, conns = sys.argv[1], int(sys.argv[2])
stop = threading.Event()
lock = threading.Lock()
ok, failed = 0, []
def client(t):
    global ok
    with httpx.Client(base_url=url, timeout=20) as c:
        k = 0
        while not stop.is_set():
            path = f"/hello/c{t}r{k}"
            try:
                r = c.get(path)
                good = r.status_code == 200 and r.json() == {"hello": f"c{t}r{k}"}
                err = None if good else f"{path}: {r.status_code} {r.text!r}"
            except Exception as e:
                err = f"{path}: {type(e).__name__}: {e}"
            with lock:
                if err:
                    failed.append(err)
                else:
                    ok += 1
                    if ok % 50 == 0:
                        print("ok", ok, flush=True)
            k += 1
threads = [threading.Thread(target=client, args=(t,)) for t in range(conns)]
for t in threads:
    t.start()
sys.stdin.read()
stop.set()
for t in threads:
    t.join()
print("done ok", ok, "failed", len(failed), flush=True)
for e in failed[:10]:
    print("error", e, flush=True)
"#;

/// Reload under keep-alive load (Process mode, 2 workers): 8 httpx clients keep requesting
/// through three reloads (SIGUSR1). The clients must see 0 failed requests, answers during
/// every reload and after; a curl request in flight on an old worker when the first reload
/// starts is answered 200 by it; and afterwards `/worker` answers from a new worker process
/// (its router made again by the factory there).
#[test]
fn tower_reload_under_httpx_load() {
    if !have_python_clients() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("axum.pid");
    let srv = axum_app(
        "process",
        &[
            "--worker-num",
            "2",
            "--pid-file",
            pid_file.to_str().unwrap(),
        ],
    );
    let url = format!("http://127.0.0.1:{}", srv.port);
    let old: Vec<i64> = wait_status(&pid_file, "two workers", T, |v| {
        v["workers"].as_array().map(Vec::len) == Some(2)
    })["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["pid"].as_i64().unwrap())
        .collect();
    // In flight on an old worker before the load starts (so "busy" can only be it).
    let slow = curl_cmd(&["-i", &format!("{url}/sleep/1500")])
        .stdin(Stdio::null())
        .spawn()
        .expect("curl");
    wait_status(&pid_file, "a worker busy with the slow request", T, |v| {
        v["workers"]
            .as_array()
            .is_some_and(|ws| ws.iter().any(|w| w["state"] == "busy"))
    });

    let mut load = Command::new("python3")
        .args(["-c", LOAD, &url, "8"])
        .env("PATH", client_path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let reader = {
        let lines = lines.clone();
        let out = load.stdout.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(l);
            }
        })
    };
    let ok = || {
        lines
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find_map(|l| l.strip_prefix("ok ").and_then(|n| n.parse::<u64>().ok()))
            .unwrap_or(0)
    };
    let wait_more = |than: u64, what: &str| {
        let deadline = Instant::now() + T;
        while ok() < than {
            assert!(
                Instant::now() < deadline,
                "{what}: {} answers; load output: {:?}",
                ok(),
                lines.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    wait_more(200, "the load never started");
    for round in 1..=3 {
        let before = ok();
        srv.signal(10); // SIGUSR1: reload
        let deadline = Instant::now() + T;
        while srv.stderr().matches("reload finished").count() < round {
            assert!(
                Instant::now() < deadline,
                "reload {round} did not finish:\n{}",
                srv.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        wait_more(before + 50, "answers during and after the reload");
    }
    drop(load.stdin.take());
    let o = finish(load, "the httpx load");
    reader.join().unwrap();
    let out = lines.lock().unwrap().join("\n");
    assert!(
        o.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let summary = out
        .lines()
        .find(|l| l.starts_with("done "))
        .expect("a summary");
    assert!(summary.ends_with(" failed 0"), "{out}");
    assert!(ok() >= 350, "{out}");

    let o = finish(slow, "curl");
    let r = parse_curl(&o.stdout);
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, r#"{"slept":1500}"#),
        "the request in flight through the reload"
    );
    let w: serde_json::Value =
        serde_json::from_slice(&curl(&[&format!("{url}/worker")]).body).expect("JSON");
    let pid = w["pid"].as_i64().unwrap();
    assert!(!old.contains(&pid), "{w}: still an old worker {old:?}");
    assert!(
        srv.descendants().contains(&(pid as i32)),
        "{w}: a worker of this server"
    );
}

/// `max_request` recycling through the adapter (Process mode, 1 worker, `--max-request 10`):
/// httpx on one keep-alive connection calls `/worker` until three worker processes have
/// answered. Every request must be answered 200, and each worker process's `served` counts
/// 1, 2, 3… from its first answer: the factory built a fresh router state in every new
/// worker.
#[test]
fn tower_max_request_fresh_state_httpx() {
    if !have_python_clients() {
        return;
    }
    const SCRIPT: &str = r#"
import sys, time
import httpx
seen = {}
deadline = time.monotonic() + 30
with httpx.Client(base_url=sys.argv[1], timeout=20) as c:
    n = 0
    while len(seen) < 3:
        if time.monotonic() > deadline:
            raise SystemExit(f"FAILED: only {len(seen)} worker processes in {n} requests: "
                             + ", ".join(f"{p}: {len(v)} answers" for p, v in seen.items()))
        r = c.get("/worker")
        if r.status_code != 200:
            raise SystemExit(f"FAILED: request {n}: {r.status_code} {r.text}")
        w = r.json()
        seen.setdefault(w["pid"], []).append(w["served"])
        n += 1
for pid, served in seen.items():
    print(pid, " ".join(map(str, served)))
"#;
    let srv = axum_app("process", &["--worker-num", "1", "--max-request", "10"]);
    let url = format!("http://127.0.0.1:{}", srv.port);
    let out = python(SCRIPT, &[&url]);
    let workers: Vec<(i32, Vec<u64>)> = out
        .lines()
        .map(|l| {
            let mut it = l.split(' ');
            let pid = it.next().unwrap().parse().unwrap();
            (pid, it.map(|n| n.parse().unwrap()).collect())
        })
        .collect();
    assert!(workers.len() >= 3, "{out}");
    for (pid, served) in &workers {
        let want: Vec<u64> = (1..=served.len() as u64).collect();
        assert_eq!(served, &want, "worker {pid}: a fresh counter from 1\n{out}");
    }
    assert!(
        srv.stderr().contains("max_request reached"),
        "{}",
        srv.stderr()
    );
}

/// Daemon mode: `axum_app --daemonize --pid-file --log-file` returns once the daemon runs;
/// curl gets `/hello` from it; `rswoole stop --pid-file` ends it: the master is gone, the
/// port is free, the pid file removed.
#[test]
fn tower_daemon_curl_and_stop() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("axum.pid");
    let log_file = dir.path().join("axum.log");
    let mut starter = ServerProc::spawn(
        "axum_app",
        &[
            "--port",
            "0",
            "--worker-num",
            "2",
            "--daemonize",
            "--pid-file",
            pid_file.to_str().unwrap(),
            "--log-file",
            log_file.to_str().unwrap(),
        ],
        0,
    );
    let st = starter.wait_exit(T).expect("the starter did not exit");
    assert!(st.success(), "{st:?}: {}", starter.stderr());
    let pid = read_pid(&pid_file);
    assert!(pid > 0, "no pid in the pid file");
    let _guard = DaemonGuard(pid);
    assert!(
        cmdline(pid).starts_with("rswoole: master"),
        "{}",
        cmdline(pid)
    );
    let log = std::fs::read_to_string(&log_file).unwrap_or_default();
    let port = log
        .lines()
        .find(|l| l.contains("phase=Running"))
        .and_then(|l| running_addrs(l).first().map(|a| a.port()))
        .unwrap_or_else(|| panic!("no Running line in the log:\n{log}"));
    let r = curl(&[&format!("http://127.0.0.1:{port}/hello/daemon")]);
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, r#"{"hello":"daemon"}"#)
    );
    let o = cli(&[
        "stop",
        "--timeout",
        "20",
        "--pid-file",
        pid_file.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!alive(pid), "the master is still there");
    assert!(
        std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
        "port {port} still taken"
    );
    assert!(!pid_file.exists(), "pid file left behind");
    let mut log = String::new();
    std::fs::File::open(&log_file)
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(log.contains("phase=Stopped"), "{log}");
}
