//! Helpers: find example binaries, pick free ports, run a server as a child process group.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `python3` from the test venv (`.ci/run` makes it) when there is one.
pub fn python() -> Command {
    let mut c = Command::new("python3");
    let path = std::env::var("PATH").unwrap_or_default();
    c.env("PATH", format!("/tmp/rswoole-ci-venv/bin:{path}"));
    c
}

/// Runs a Python script (`python3 -c`) from the test venv; its stdout. Panics with its
/// output if it fails.
pub fn run_py(script: &str) -> String {
    let o = python().args(["-c", script]).output().expect("python3");
    assert!(
        o.status.success(),
        "python failed: {}\n{}",
        String::from_utf8_lossy(&o.stderr),
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

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

/// Ports handed out by [`free_port`] in this test binary: never handed out twice, so two
/// tests running in parallel threads cannot be given the same port.
static HANDED_OUT: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());

/// The kernel's ephemeral port range (`connect()` and `bind(0)` pick from it).
fn ephemeral_range() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(|t| t.parse::<u16>().ok());
            Some((it.next()??, it.next()??))
        })
        .unwrap_or((32768, 60999))
}

/// A pseudo-random number (no `rand` dependency): std's per-process random hasher keys,
/// the pid, the time and a counter.
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    static N: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(N.fetch_add(1, Relaxed));
    h.write_u32(std::process::id());
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

/// True if nothing holds `port` on 127.0.0.1, for TCP and for UDP.
fn port_is_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok() && UdpSocket::bind(("127.0.0.1", port)).is_ok()
}

/// A port that was free (TCP and UDP on 127.0.0.1) a moment ago and that no other test of
/// this binary was given.
///
/// The port is picked at random *outside* the kernel's ephemeral range: the tests' own
/// clients (up to a thousand connections at once) get their local ports from that range, so
/// a port picked inside it could be taken by a client socket between this call and the
/// server's bind. Outside the range, only another program binding that very port can take
/// it; [`ServerProc::start`] then starts the server again on another port.
pub fn free_port() -> u16 {
    let (lo, hi) = ephemeral_range();
    // Below the range if there is room there, above it otherwise.
    let (from, to) = if lo >= 12_000 {
        (10_000u32, lo as u32 - 1)
    } else {
        (hi as u32 + 1, 65_535)
    };
    let mut handed = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let tries = if from <= to { 2000 } else { 0 };
    for _ in 0..tries {
        let port = (from + (random_u64() % (to - from + 1) as u64) as u32) as u16;
        if !handed.contains(&port) && port_is_free(port) {
            handed.push(port);
            return port;
        }
    }
    // Fall back on the kernel's choice.
    loop {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind 0");
        let port = l.local_addr().unwrap().port();
        drop(l);
        if !handed.contains(&port) && port_is_free(port) {
            handed.push(port);
            return port;
        }
    }
}

/// A server child process (and its process group).
pub struct ServerProc {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub port: u16,
    /// Ports of `args` that were taken by someone else and replaced (`(asked, used)`).
    pub moved: Vec<(u16, u16)>,
    /// The listeners' bound addresses, in the server's listener order, as its `phase=Running`
    /// log line reports them (filled in by `start`/`wait_ready`).
    pub addrs: Vec<SocketAddr>,
    /// The arguments it was started with.
    args: Vec<String>,
}

/// Sockets of a server's processes on one port (see [`ServerProc::sockets_on`]).
#[derive(Debug, Clone, Copy)]
pub struct PortSockets {
    pub tcp_listening: usize,
    pub udp_bound: usize,
}

/// Ports named in command-line arguments: `--port N` values and `…:N` address suffixes.
fn ports_in_args(args: &[String]) -> Vec<u16> {
    let mut out = Vec::new();
    for (i, a) in args.iter().enumerate() {
        let p = if i > 0 && args[i - 1] == "--port" {
            a.parse().ok()
        } else {
            a.rsplit_once(':').and_then(|(_, p)| p.parse().ok())
        };
        if let Some(p) = p {
            if p != 0 && !out.contains(&p) {
                out.push(p);
            }
        }
    }
    out
}

/// True if `text` names an address with port `port` (`…:port` not followed by a digit).
fn mentions_port(text: &str, port: u16) -> bool {
    let needle = format!(":{port}");
    text.match_indices(&needle).any(|(i, _)| {
        !text[i + needle.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit())
    })
}

/// `arg` with port `from` replaced by `to` (a bare port or an address ending in `:from`).
fn replace_port(arg: &str, from: u16, to: u16) -> String {
    if arg == from.to_string() {
        return to.to_string();
    }
    match arg.rsplit_once(':') {
        Some((head, p)) if p == from.to_string() => format!("{head}:{to}"),
        _ => arg.to_string(),
    }
}

/// The addresses in a `phase=Running` log line: `… addrs=[127.0.0.1:4000, [::1]:4001]`
/// (the last field); empty if there are none.
pub fn running_addrs(line: &str) -> Vec<SocketAddr> {
    let Some(rest) = line.split("addrs=").nth(1) else {
        return Vec::new();
    };
    let rest = rest.trim();
    let inner = rest
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(rest);
    inner
        .split(", ")
        .filter_map(|a| a.trim().parse().ok())
        .collect()
}

/// How long `start` waits for a server to be ready.
const START_LIMIT: Duration = Duration::from_secs(30);

/// What `ServerProc::readiness` saw.
enum Readiness {
    /// Not yet.
    Waiting(String),
    Ready,
    /// Exited before it was ready; the port it could not bind if that was the reason.
    Exited(std::process::ExitStatus, Option<u16>),
}

impl ServerProc {
    /// Starts `example` in `mode` (`"process"` or `"base"`) with `workers` workers on a port
    /// the kernel picks (`self.port`), and waits until it is ready.
    pub fn example(example: &str, mode: &str, workers: u32) -> ServerProc {
        let workers = workers.to_string();
        let args = ["--port", "0", "--mode", mode, "--worker-num", &workers];
        ServerProc::start(example, &args, 0)
    }

    /// Starts `example` with `args` and waits until it is ready (see [`ServerProc::wait_ready`]),
    /// without connecting to it.
    ///
    /// `port` 0 (with port 0 in `args`): the server binds a port the kernel picks, and
    /// `self.port` is set to the one bound by its first listener, read from its Running log
    /// line (`self.addrs` has them all). Nothing can take such a port first.
    ///
    /// A port given in `args` may have been taken by someone else since [`free_port`]: if the
    /// server fails with "in use" naming it, it starts again with that port replaced by a
    /// fresh one; `self.port` is then the new port and `self.moved` records the change.
    pub fn start(example_name: &str, args: &[&str], port: u16) -> ServerProc {
        let mut args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let mut port = port;
        let mut moved = Vec::new();
        for attempt in 1.. {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            let mut p = ServerProc::spawn(example_name, &refs, port);
            match p.wait_ready_or_exit(START_LIMIT) {
                Readiness::Ready => {
                    p.moved = moved;
                    return p;
                }
                Readiness::Exited(_, Some(taken)) if attempt < 5 => {
                    let fresh = free_port();
                    eprintln!("{example_name}: port {taken} is in use; starting on {fresh}");
                    for a in &mut args {
                        *a = replace_port(a, taken, fresh);
                    }
                    if port == taken {
                        port = fresh;
                    }
                    moved.push((taken, fresh));
                }
                Readiness::Exited(st, _) => panic!(
                    "{example_name} exited ({st}) before it was ready; stderr:\n{}",
                    p.stderr()
                ),
                Readiness::Waiting(why) => panic!(
                    "{example_name} was not ready in {START_LIMIT:?}: {why}; stderr:\n{}",
                    p.stderr()
                ),
            }
        }
        unreachable!()
    }

    /// The port used for `asked` (a port in the `args` given to `start`).
    pub fn port_for(&self, asked: u16) -> u16 {
        self.moved
            .iter()
            .rev()
            .find(|(a, _)| *a == asked)
            .map_or(asked, |(_, used)| *used)
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
        ServerProc {
            child,
            dir,
            port,
            moved: Vec::new(),
            addrs: Vec::new(),
            args: args.iter().map(|a| a.to_string()).collect(),
        }
    }

    /// Waits until the server is ready, without connecting to it (a probe connection would
    /// be a connection the server counts and reports). Ready means:
    /// - the master logged `phase=Running` (to stderr, or to the `--log-file` in its args):
    ///   its listeners are bound (at the addresses it lists, which fill `self.addrs`, and
    ///   `self.port` if it was 0) and, in Process mode, accepting;
    /// - `self.port` is served: in Process mode, a TCP socket of the server's processes is in
    ///   LISTEN state on it; in Base mode (the master only reserves the port; each worker
    ///   listens with SO_REUSEPORT) one per worker (`workers=` in the Running line); for a
    ///   UDP-only port, a UDP socket of the server's processes is bound to it.
    pub fn wait_ready(&mut self, limit: Duration) {
        match self.wait_ready_or_exit(limit) {
            Readiness::Ready => {}
            Readiness::Exited(st, _) => {
                panic!(
                    "server exited ({st}) before it was ready; stderr:\n{}",
                    self.stderr()
                )
            }
            Readiness::Waiting(why) => panic!(
                "server not ready in {limit:?}: {why}; stderr:\n{}",
                self.stderr()
            ),
        }
    }

    fn wait_ready_or_exit(&mut self, limit: Duration) -> Readiness {
        let deadline = Instant::now() + limit;
        loop {
            let r = self.readiness();
            if !matches!(r, Readiness::Waiting(_)) || Instant::now() > deadline {
                return r;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn readiness(&mut self) -> Readiness {
        if let Ok(Some(st)) = self.child.try_wait() {
            let err = self.stderr();
            let taken = if err.to_lowercase().contains("in use") {
                ports_in_args(&self.args)
                    .into_iter()
                    .find(|p| mentions_port(&err, *p))
            } else {
                None
            };
            return Readiness::Exited(st, taken);
        }
        let log = match self.log_file() {
            Some(f) => std::fs::read_to_string(f).unwrap_or_default(),
            None => self.stderr(),
        };
        let Some(line) = log.lines().find(|l| l.contains("phase=Running")) else {
            return Readiness::Waiting("no `phase=Running` log line".into());
        };
        self.addrs = running_addrs(line);
        if self.port == 0 {
            match self.addrs.first() {
                Some(a) => self.port = a.port(),
                None => {
                    return Readiness::Waiting(format!(
                        "no `addrs=[…]` in the Running line: {line}"
                    ))
                }
            }
        }
        let base = line.to_lowercase().contains("mode=base");
        let workers: usize = line
            .split("workers=")
            .nth(1)
            .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(1);
        let s = self.sockets_on(self.port);
        let need = if base { workers.max(1) } else { 1 };
        if s.tcp_listening >= need || (s.tcp_listening == 0 && s.udp_bound > 0) {
            Readiness::Ready
        } else {
            Readiness::Waiting(format!(
                "{} of {need} TCP listeners on port {} (udp: {})",
                s.tcp_listening, self.port, s.udp_bound
            ))
        }
    }

    /// The `--log-file` in the arguments: the master logs there instead of stderr.
    fn log_file(&self) -> Option<PathBuf> {
        let i = self.args.iter().position(|a| a == "--log-file")?;
        self.args.get(i + 1).map(PathBuf::from)
    }

    /// Sockets of the server's processes (master and descendants) on `port`: TCP ones in
    /// LISTEN state and bound UDP ones (distinct sockets, by inode).
    pub fn sockets_on(&self, port: u16) -> PortSockets {
        let mut pids = vec![self.pid()];
        pids.extend(self.descendants());
        let mut ours = std::collections::HashSet::new();
        for pid in pids {
            let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
                continue;
            };
            for fd in fds.flatten() {
                if let Ok(l) = std::fs::read_link(fd.path()) {
                    let l = l.to_string_lossy();
                    if let Some(ino) = l.strip_prefix("socket:[").and_then(|r| r.strip_suffix(']'))
                    {
                        if let Ok(ino) = ino.parse::<u64>() {
                            ours.insert(ino);
                        }
                    }
                }
            }
        }
        let count = |files: &[&str], listen_only: bool| -> usize {
            let mut seen = std::collections::HashSet::new();
            for f in files {
                let Ok(text) = std::fs::read_to_string(f) else {
                    continue;
                };
                for l in text.lines().skip(1) {
                    let cols: Vec<&str> = l.split_whitespace().collect();
                    if cols.len() < 10 {
                        continue;
                    }
                    let local_port = cols[1]
                        .rsplit(':')
                        .next()
                        .and_then(|h| u16::from_str_radix(h, 16).ok());
                    let ino: u64 = cols[9].parse().unwrap_or(0);
                    if local_port == Some(port)
                        && (!listen_only || cols[3] == "0A")
                        && ours.contains(&ino)
                    {
                        seen.insert(ino);
                    }
                }
            }
            seen.len()
        };
        PortSockets {
            tcp_listening: count(&["/proc/net/tcp", "/proc/net/tcp6"], true),
            udp_bound: count(&["/proc/net/udp", "/proc/net/udp6"], false),
        }
    }

    /// Waits until `n` TCP sockets of the server's processes listen on `self.port` (Base
    /// mode: one per worker once every worker reached its accept loop).
    pub fn wait_listening(&self, n: usize, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let s = self.sockets_on(self.port);
            if s.tcp_listening >= n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} listeners on port {}; stderr:\n{}",
                s.tcp_listening,
                self.port,
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Waits until `port` accepts a TCP connection. The probe is a connection the server
    /// sees (accepts, counts, reports to on_connect/on_close): `start` does not use it.
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

    /// Waits until stderr (the server's log) contains `needle` `count` times.
    pub fn wait_stderr(&self, needle: &str, count: usize, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let s = self.stderr();
            if s.matches(needle).count() >= count {
                return s;
            }
            if Instant::now() > deadline {
                panic!("stderr never had {count}x {needle:?}; stderr:\n{s}");
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

/// The status and the header fields (`name`, trimmed value) of a response head given as text
/// (a WebSocket handshake answer, say), in the order sent.
pub fn status_and_headers(text: &str) -> (u16, Vec<(&str, &[u8])>) {
    let mut lines = text.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim(), v.trim().as_bytes()))
        .collect();
    (status, headers)
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

/// Waits until the server answers HTTP (with a real `GET /hello`; `start` is enough to know
/// that a server is ready).
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

/// `rswoole status --json --pid-file F`, parsed; `None` while it fails (not up yet, gone).
pub fn status(pid_file: &Path) -> Option<serde_json::Value> {
    let out = Command::new(rswoole_bin())
        .args(["status", "--json", "--pid-file"])
        .arg(pid_file)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdin(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

/// Polls the status socket of the server with `pid_file` until `pred` holds; returns that
/// status. Panics after `limit` with the last status and `what`.
pub fn wait_status(
    pid_file: &Path,
    what: &str,
    limit: Duration,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + limit;
    loop {
        let st = status(pid_file);
        if let Some(v) = &st {
            if pred(v) {
                return v.clone();
            }
        }
        assert!(
            Instant::now() < deadline,
            "status never showed {what}; last: {st:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `start` with port 0: the port the server bound, read back.
#[test]
fn util_start_reads_back_port_0() {
    let srv = ServerProc::start("tcp_echo", &["--port", "0", "--worker-num", "1"], 0);
    assert_ne!(srv.port, 0);
    assert_eq!(srv.addrs, [SocketAddr::from(([127, 0, 0, 1], srv.port))]);
    let mut c = connect(srv.port);
    roundtrip(&mut c, b"zero", b"Server: zero");
}

/// `start` on a port someone else holds: it starts again on a fresh port and says so.
#[test]
fn util_start_moves_off_a_taken_port() {
    let taken = free_port();
    let _holder = TcpListener::bind(("127.0.0.1", taken)).expect("hold the port");
    let port_arg = taken.to_string();
    let srv = ServerProc::start(
        "tcp_echo",
        &["--port", &port_arg, "--worker-num", "1"],
        taken,
    );
    assert_ne!(srv.port, taken);
    assert_eq!(srv.port_for(taken), srv.port);
    let mut c = connect(srv.port);
    roundtrip(&mut c, b"moved", b"Server: moved");
}
