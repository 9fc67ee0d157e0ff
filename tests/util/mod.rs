//! Helpers: find example binaries, pick free ports, run a server as a child process group.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Path of a built example binary.
pub fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/integration-xxxx -> target/<profile>/examples/<name>
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let p = dir.join("examples").join(name);
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --examples` first",
        p.display()
    );
    p
}

/// Path of the `rswoole` binary.
pub fn rswoole_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rswoole"))
}

/// Runs `rswoole ARGS` (with a timeout) and returns its output.
pub fn cli(args: &[&str]) -> std::process::Output {
    let mut child = Command::new(rswoole_bin())
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn rswoole");
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return child.wait_with_output().expect("output");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("rswoole {args:?} did not finish in time");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A TCP port that was free a moment ago (the OS picks it).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 0");
    let port = l.local_addr().unwrap().port();
    // Also make sure UDP is free on it.
    drop(l);
    port
}

/// A server child process (and its process group).
pub struct ServerProc {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub port: u16,
}

impl ServerProc {
    /// Starts `example` with `args`; waits until `port` accepts TCP connections.
    pub fn start(example_name: &str, args: &[&str], port: u16) -> ServerProc {
        let p = ServerProc::spawn(example_name, args, port);
        p.wait_tcp(Duration::from_secs(20));
        p
    }

    /// Starts it without waiting.
    pub fn spawn(example_name: &str, args: &[&str], port: u16) -> ServerProc {
        ServerProc::spawn_path(&example(example_name), args, port)
    }

    pub fn spawn_path(path: &Path, args: &[&str], port: u16) -> ServerProc {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = std::fs::File::create(dir.path().join("stdout")).unwrap();
        let err = std::fs::File::create(dir.path().join("stderr")).unwrap();
        let child = Command::new(path)
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RSWOOLE_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .expect("spawn server");
        ServerProc { child, dir, port }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn wait_tcp(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "server did not listen on {} in {limit:?}; stderr:\n{}",
                    self.port,
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stdout")).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default()
    }

    /// Waits until stdout contains `needle` `count` times.
    pub fn wait_stdout(&self, needle: &str, count: usize, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let s = self.stdout();
            if s.matches(needle).count() >= count {
                return s;
            }
            if Instant::now() > deadline {
                panic!(
                    "stdout never had {count}x {needle:?}; stdout:\n{s}\nstderr:\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends a signal to the master.
    pub fn signal(&self, sig: i32) {
        let sig = nix::sys::signal::Signal::try_from(sig).expect("signal number");
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), sig);
    }

    /// SIGTERM and wait for the master to exit; returns its exit status.
    pub fn stop(&mut self, limit: Duration) -> std::process::ExitStatus {
        self.signal(15);
        self.wait_exit(limit)
            .expect("server did not exit after SIGTERM")
    }

    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Pids of the master's descendants (manager, workers), from /proc.
    pub fn descendants(&self) -> Vec<i32> {
        descendants(self.pid())
    }

    /// Waits until `n` descendants have a title starting with `title`; returns their pids.
    pub fn wait_titles(&self, title: &str, n: usize, limit: Duration) -> Vec<i32> {
        let deadline = Instant::now() + limit;
        loop {
            let v = self.with_title(title);
            if v.len() == n {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "expected {n} processes titled {title:?}, have {v:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Pids whose process title starts with `title` among the descendants.
    pub fn with_title(&self, title: &str) -> Vec<i32> {
        self.descendants()
            .into_iter()
            .filter(|p| cmdline(*p).starts_with(title))
            .collect()
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        // Kill our process group (master, manager, workers all share it).
        let pgid = nix::unistd::Pid::from_raw(self.pid());
        let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

pub fn cmdline(pid: i32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            String::from_utf8_lossy(&b)
                .replace('\0', " ")
                .trim()
                .to_string()
        })
        .unwrap_or_default()
}

fn ppid(pid: i32) -> Option<i32> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    rest.split(' ').nth(1)?.parse().ok()
}

pub fn descendants(root: i32) -> Vec<i32> {
    let mut all: Vec<(i32, i32)> = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() {
            if let Some(pp) = ppid(pid) {
                all.push((pid, pp));
            }
        }
    }
    let mut out = vec![];
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for &(c, pp) in &all {
            if pp == p {
                out.push(c);
                frontier.push(c);
            }
        }
    }
    out
}

pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s.contains(") Z "),
        Err(_) => false,
    }
}

/// A blocking client with timeouts.
pub fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// Sends `msg` and reads exactly `expect.len()` bytes, asserting they are `expect`.
pub fn roundtrip(s: &mut TcpStream, msg: &[u8], expect: &[u8]) {
    s.write_all(msg).unwrap();
    let got = read_n(s, expect.len());
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(expect)
    );
}

pub fn read_n(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    s.read_exact(&mut buf).expect("read reply");
    buf
}

/// Reads a line (up to '\n').
pub fn read_line(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut b = [0u8; 1];
    loop {
        match s.read(&mut b) {
            Ok(0) => break,
            Ok(_) => {
                out.push(b[0]);
                if b[0] == b'\n' {
                    break;
                }
            }
            Err(e) => panic!(
                "read_line: {e} (got so far {:?})",
                String::from_utf8_lossy(&out)
            ),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn udp_roundtrip(port: u16, msg: &[u8]) -> Vec<u8> {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let target: SocketAddr = ([127, 0, 0, 1], port).into();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 65536];
    loop {
        s.send_to(msg, target).unwrap();
        if let Ok((n, _)) = s.recv_from(&mut buf) {
            return buf[..n].to_vec();
        }
        assert!(Instant::now() < deadline, "no UDP reply from {port}");
    }
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct HttpResp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn read_until(s: &mut TcpStream, buf: &mut Vec<u8>, pat: &[u8]) -> Option<usize> {
    loop {
        if let Some(i) = buf.windows(pat.len()).position(|w| w == pat) {
            return Some(i);
        }
        let mut tmp = [0u8; 8192];
        match s.read(&mut tmp) {
            Ok(0) => return None,
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
            Err(e) => panic!(
                "reading a response: {e}; got {:?}",
                String::from_utf8_lossy(buf)
            ),
        }
    }
}

fn fill(s: &mut TcpStream, buf: &mut Vec<u8>, n: usize) {
    while buf.len() < n {
        let mut tmp = [0u8; 65536];
        match s.read(&mut tmp) {
            Ok(0) => panic!("EOF in a response body"),
            Ok(k) => buf.extend_from_slice(&tmp[..k]),
            Err(e) => panic!("reading a response body: {e}"),
        }
    }
}

/// Reads one response (Content-Length, chunked, or until EOF); `buf` keeps extra bytes.
/// `None` if the connection closed before a response started. HEAD: pass `head = true`.
pub fn read_response(s: &mut TcpStream, buf: &mut Vec<u8>, head: bool) -> Option<HttpResp> {
    let end = read_until(s, buf, b"\r\n\r\n")?;
    let head_text = String::from_utf8_lossy(&buf[..end]).into_owned();
    buf.drain(..end + 4);
    let mut lines = head_text.split("\r\n");
    let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_string()))
        })
        .collect();
    let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let mut body = Vec::new();
    if head || status == 204 || status == 304 || (100..200).contains(&status) {
    } else if let Some(cl) = get("content-length") {
        let n: usize = cl.parse().unwrap();
        fill(s, buf, n);
        body = buf.drain(..n).collect();
    } else if get("transfer-encoding").is_some_and(|t| t.contains("chunked")) {
        loop {
            let e = read_until(s, buf, b"\r\n").expect("chunk size");
            let size = usize::from_str_radix(
                String::from_utf8_lossy(&buf[..e])
                    .split(';')
                    .next()
                    .unwrap()
                    .trim(),
                16,
            )
            .unwrap();
            buf.drain(..e + 2);
            if size == 0 {
                read_until(s, buf, b"\r\n");
                buf.drain(..2);
                break;
            }
            fill(s, buf, size + 2);
            body.extend(buf.drain(..size));
            buf.drain(..2);
        }
    } else {
        let _ = s.read_to_end(buf);
        body = std::mem::take(buf);
    }
    Some(HttpResp {
        status,
        headers,
        body,
    })
}

/// Sends raw bytes on a new connection and reads one response.
pub fn http_once(port: u16, raw: &[u8]) -> Option<HttpResp> {
    let mut s = connect(port);
    s.write_all(raw).unwrap();
    let mut buf = Vec::new();
    read_response(&mut s, &mut buf, raw.starts_with(b"HEAD"))
}

/// `GET path` with keep-alive on a new connection.
pub fn http_get(port: u16, path: &str) -> HttpResp {
    http_once(
        port,
        format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes(),
    )
    .expect("a response")
}

/// Waits until the server answers HTTP.
pub fn wait_http(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            s.set_read_timeout(Some(Duration::from_secs(2))).ok();
            if s.write_all(b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
                .is_ok()
            {
                let mut b = [0u8; 16];
                if matches!(s.read(&mut b), Ok(n) if n > 0) {
                    return;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(30));
    }
    panic!("no HTTP answer on {port}");
}

/// Peak resident memory (VmHWM) of a process, in KiB.
pub fn vm_hwm_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}
