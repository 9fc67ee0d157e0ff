//! Upgrading to a new binary with no connection lost, and running under systemd (socket
//! activation, `Type=notify`). The server is `examples/upgrade_kit`, whose replies name the
//! executable that answered: the tests copy it to `app-v1` and `app-v2` and upgrade from one
//! to the other.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rswoole_codec::ws::{CloseCode, DeflateConfig, MessageKind, WsEvent};

use crate::util::{self, free_port, ServerProc};
use crate::websocket::Ws;

/// Copies the example to `dir/name` (a "build" of its own) and returns the path.
fn copy_kit(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::copy(util::example("upgrade_kit"), &p).expect("copy upgrade_kit");
    p
}

/// The scaffolding of an upgrade test: two builds of the kit (`app-v1`, `app-v2`) in a
/// temporary directory, a pid file and a port.
struct Kit {
    dir: tempfile::TempDir,
    v1: PathBuf,
    v2: PathBuf,
    pid_file: PathBuf,
    port: u16,
}

impl Kit {
    fn new() -> Kit {
        let dir = tempfile::tempdir().unwrap();
        let v1 = copy_kit(dir.path(), "app-v1");
        let v2 = copy_kit(dir.path(), "app-v2");
        let pid_file = dir.path().join("app.pid");
        Kit {
            dir,
            v1,
            v2,
            pid_file,
            port: free_port(),
        }
    }

    /// `--port P --pid-file F` and `extra`.
    fn args(&self, extra: &[&str]) -> Vec<String> {
        let mut a = vec![
            "--port".to_string(),
            self.port.to_string(),
            "--pid-file".into(),
            self.pid_file.display().to_string(),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    }

    /// Starts `app-v1` with [`Kit::args`] and waits until it serves.
    fn start(&self, extra: &[&str]) -> ServerProc {
        let args = self.args(extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut p = ServerProc::spawn_path(&self.v1, &args, self.port);
        p.wait_ready(Duration::from_secs(30));
        p
    }

    /// `rswoole upgrade` to `binary`, which must succeed: its standard output.
    fn upgrade_ok(&self, binary: &Path) -> String {
        let out = upgrade_cli(&self.pid_file, binary);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "upgrade failed: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    /// `rswoole upgrade` to `binary`, which must fail: its standard error.
    fn upgrade_err(&self, binary: &Path) -> String {
        let out = upgrade_cli(&self.pid_file, binary);
        assert!(
            !out.status.success(),
            "the upgrade to {} succeeded",
            binary.display()
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// The pid in the pid file.
    fn pid(&self) -> i32 {
        std::fs::read_to_string(&self.pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    /// `rswoole stop`, which must succeed, then waits for the master named in the pid file to
    /// be gone.
    fn stop(&self) {
        let pid = self.pid();
        let out = util::cli(&["stop", "--pid-file", self.pid_file.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        wait_gone(pid, Duration::from_secs(10));
    }
}

/// One `GET path` on a keep-alive connection: the body and whether the server said it closes
/// the connection after it. An error names what failed.
fn get(s: &mut TcpStream, path: &str) -> Result<(String, bool), String> {
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    read_reply(s)
}

/// Reads one HTTP response: its body and whether it says `Connection: close`.
fn read_reply(s: &mut TcpStream) -> Result<(String, bool), String> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        match s.read(&mut tmp) {
            Ok(0) => return Err(format!("EOF before a response (got {} bytes)", buf.len())),
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
            Err(e) => return Err(format!("read: {e}")),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
    if !head.starts_with("http/1.1 200") {
        return Err(format!("not a 200: {head}"));
    }
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or("no content-length")?;
    let close = head.lines().any(|l| l == "connection: close");
    while buf.len() < head_end + 4 + len {
        match s.read(&mut tmp) {
            Ok(0) => return Err("EOF in the body".into()),
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
            Err(e) => return Err(format!("read body: {e}")),
        }
    }
    Ok((
        String::from_utf8_lossy(&buf[head_end + 4..head_end + 4 + len]).into_owned(),
        close,
    ))
}

fn conn(port: u16) -> Result<TcpStream, String> {
    let s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    s.set_nodelay(true).ok();
    Ok(s)
}

/// GET / on a new connection (the server may not be up yet: retried until `limit`).
fn get_once(port: u16, limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    loop {
        match conn(port).and_then(|mut s| get(&mut s, "/")) {
            Ok((body, _)) => return body,
            Err(e) => assert!(Instant::now() < deadline, "no reply on {port}: {e}"),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_gone(pid: i32, limit: Duration) {
    let deadline = Instant::now() + limit;
    while util::alive(pid) {
        assert!(Instant::now() < deadline, "process {pid} is still alive");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn upgrade_cli(pid_file: &Path, binary: &Path) -> std::process::Output {
    util::cli(&[
        "upgrade",
        "--pid-file",
        pid_file.to_str().unwrap(),
        "--binary",
        binary.to_str().unwrap(),
        "--timeout",
        "30",
    ])
}

/// `systemd-socket-activate` passes the listening socket: the server serves on it (it could
/// not bind the port itself: the socket is already bound, without SO_REUSEPORT) in both modes.
fn socket_activation(mode: &str) {
    let port = free_port();
    let kit = util::example("upgrade_kit");
    let listen = format!("127.0.0.1:{port}");
    let port_s = port.to_string();
    let args = [
        "-l",
        &listen,
        "-E",
        "RSWOOLE_LOG=info",
        kit.to_str().unwrap(),
        "--port",
        &port_s,
        "--mode",
        mode,
        "--worker-num",
        "2",
    ];
    let p = ServerProc::spawn_path(Path::new("systemd-socket-activate"), &args, port);
    // systemd-socket-activate runs the server when the first connection arrives.
    for _ in 0..20 {
        let body = get_once(port, Duration::from_secs(20));
        assert!(body.starts_with("upgrade_kit "), "{body}");
    }
    let err = p.wait_stderr("adopting an inherited socket", 1, Duration::from_secs(10));
    assert!(err.contains("from=\"systemd\""), "{err}");
}

#[test]
fn upgrade_socket_activation_process_mode() {
    socket_activation("process");
}

#[test]
fn upgrade_socket_activation_base_mode() {
    socket_activation("base");
}

/// Reads datagrams from `sock` until one contains `what`; returns it.
fn wait_notify(sock: &UnixDatagram, what: &str, limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "no {what:?} on NOTIFY_SOCKET; got {seen:?}"
        );
        sock.set_read_timeout(Some(left)).unwrap();
        if let Ok(n) = sock.recv(&mut buf) {
            let m = String::from_utf8_lossy(&buf[..n]).into_owned();
            if m.contains(what) {
                return m;
            }
            seen.push(m);
        }
    }
}

/// `Type=notify`: READY=1 once the workers serve, RELOADING=1 … READY=1 around a reload,
/// WATCHDOG=1, STOPPING=1.
#[test]
fn upgrade_sd_notify_ready_reload_watchdog_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify");
    let sock = UnixDatagram::bind(&path).unwrap();
    let port = free_port();
    let kit = util::example("upgrade_kit");
    let env_notify = format!("NOTIFY_SOCKET={}", path.display());
    let port_s = port.to_string();
    let args = [
        env_notify.as_str(),
        "WATCHDOG_USEC=400000",
        "RSWOOLE_LOG=info",
        kit.to_str().unwrap(),
        "--port",
        &port_s,
        "--worker-num",
        "2",
    ];
    // `env` execs the server: the pid is the master's.
    let mut p = ServerProc::spawn_path(Path::new("/usr/bin/env"), &args, port);
    p.wait_ready(Duration::from_secs(30));
    let ready = wait_notify(&sock, "READY=1", Duration::from_secs(20));
    assert!(ready.contains(&format!("MAINPID={}", p.pid())), "{ready}");
    // READY=1 comes once every worker serves: both have a pid and answer.
    let st = p.with_title("rswoole: worker");
    assert_eq!(st.len(), 2, "{st:?}");
    wait_notify(&sock, "WATCHDOG=1", Duration::from_secs(5));
    p.signal(libc::SIGUSR1);
    wait_notify(&sock, "RELOADING=1", Duration::from_secs(10));
    wait_notify(&sock, "READY=1", Duration::from_secs(30));
    p.signal(libc::SIGTERM);
    wait_notify(&sock, "STOPPING=1", Duration::from_secs(10));
    p.wait_exit(Duration::from_secs(30)).expect("stopped");
}

/// Upgrade under HTTP keep-alive load: 0 failed requests; the clients' next replies come from
/// the new binary; the pid file and the status name the new master and the one it replaced.
#[test]
fn upgrade_under_keepalive_load_loses_nothing() {
    let kit = Kit::new();
    let port = kit.port;
    let mut p = kit.start(&["--worker-num", "2", "--max-wait-time-ms", "5000"]);
    let old_pid = p.pid();

    let load = Load::new(8);
    let threads = load.run(move |i, load| {
        let mut s: Option<TcpStream> = None;
        let mut n = 0u64;
        while load.running() {
            let mut stream = match s.take() {
                Some(x) => x,
                None => match conn(port) {
                    Ok(x) => x,
                    Err(e) => {
                        load.fail(e);
                        continue;
                    }
                },
            };
            n += 1;
            // Every 5th request takes a while: in flight when the handover starts.
            let path = if n % 5 == 0 { "/slow?ms=50" } else { "/" };
            match get(&mut stream, path) {
                Ok((body, close)) => {
                    load.reply(i, &body);
                    if !close {
                        s = Some(stream);
                    }
                }
                Err(e) => load.fail(e),
            }
        }
    });
    // Load is running on app-v1.
    load.wait_replies(200, "no load");
    let stdout = kit.upgrade_ok(&kit.v2);
    assert!(stdout.contains("app-v2"), "{stdout}");
    // Every client reaches the new binary (its connection moved between two requests, or was
    // closed after a reply that said so).
    load.wait_all_on_v2();
    // The old master drains and exits while the load goes on.
    p.wait_exit(Duration::from_secs(30))
        .expect("the old master exits");
    load.wait_replies(load.replies() + 200, "no load after the old master left");
    load.finish(threads, &p);
    // The pid file and the status name the new master, and the one it replaced.
    let new_pid = kit.pid();
    assert_ne!(new_pid, old_pid);
    let st = util::wait_status(
        &kit.pid_file,
        "the new master",
        Duration::from_secs(10),
        |v| v["master_pid"] == new_pid,
    );
    assert!(
        st["build"]["exe"].as_str().unwrap().ends_with("app-v2"),
        "{st}"
    );
    assert!(
        st["replaced"]["exe"].as_str().unwrap().ends_with("app-v1"),
        "{st}"
    );
    assert_eq!(st["replaced"]["pid"], old_pid);
    kit.stop();
}

/// Client threads under continuous traffic: replies counted, which clients have had a reply
/// from `app-v2`, and every failure (a failed request, a disconnect, an odd reply).
#[derive(Clone)]
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    failures: Arc<Mutex<Vec<String>>>,
    on_v2: Arc<Vec<AtomicBool>>,
}

impl Load {
    fn new(clients: usize) -> Load {
        Load {
            stop: Arc::new(AtomicBool::new(false)),
            ok: Arc::new(AtomicUsize::new(0)),
            failures: Arc::new(Mutex::new(Vec::new())),
            on_v2: Arc::new((0..clients).map(|_| AtomicBool::new(false)).collect()),
        }
    }

    /// Runs `client(i, load)` in one thread per client.
    fn run(
        &self,
        client: impl Fn(usize, &Load) + Send + Sync + 'static,
    ) -> Vec<std::thread::JoinHandle<()>> {
        let client = Arc::new(client);
        (0..self.on_v2.len())
            .map(|i| {
                let (load, client) = (self.clone(), client.clone());
                std::thread::spawn(move || client(i, &load))
            })
            .collect()
    }

    fn running(&self) -> bool {
        !self.stop.load(Ordering::Relaxed)
    }

    fn fail(&self, why: String) {
        self.failures.lock().unwrap().push(why);
    }

    /// Counts a reply of client `i` and notes which binary sent it.
    fn reply(&self, i: usize, body: &str) {
        self.ok.fetch_add(1, Ordering::Relaxed);
        if body.starts_with("app-v2 ") {
            self.on_v2[i].store(true, Ordering::Relaxed);
        } else if !body.starts_with("app-v1 ") {
            self.fail(format!("odd reply {body:?}"));
        }
    }

    fn replies(&self) -> usize {
        self.ok.load(Ordering::Relaxed)
    }

    /// Waits (≤ 20 s) until there were `at_least` replies.
    fn wait_replies(&self, at_least: usize, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.replies() < at_least {
            assert!(Instant::now() < deadline, "{what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits (≤ 30 s) until every client has had a reply from app-v2.
    fn wait_all_on_v2(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.on_v2.iter().all(|b| b.load(Ordering::Relaxed)) {
            let failures = self.failures.lock().unwrap().clone();
            assert!(
                Instant::now() < deadline,
                "some clients never got a reply from app-v2: {failures:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops the clients and checks that nothing failed.
    fn finish(self, threads: Vec<std::thread::JoinHandle<()>>, server: &ServerProc) {
        self.stop.store(true, Ordering::Relaxed);
        for t in threads {
            t.join().unwrap();
        }
        let failures = self.failures.lock().unwrap();
        assert!(
            failures.is_empty(),
            "{} failures in {} replies: {:?}\n{}",
            failures.len(),
            self.replies(),
            &failures[..failures.len().min(10)],
            server.stderr()
        );
    }
}

/// A length-framed message (4-byte big-endian length, then the body): the kit's stream port.
fn frame(body: &[u8]) -> Vec<u8> {
    let mut v = (body.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(body);
    v
}

/// Reads one length-framed reply.
fn read_frame(s: &mut TcpStream) -> Result<String, String> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len)
        .map_err(|e| format!("read length: {e}"))?;
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut body)
        .map_err(|e| format!("read body: {e}"))?;
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// Sends `body` framed and returns the reply (`<binary> <pid> fd=<id> <body>`), checking the
/// echo.
fn ask(s: &mut TcpStream, body: &str) -> Result<String, String> {
    s.write_all(&frame(body.as_bytes()))
        .map_err(|e| format!("write: {e}"))?;
    let r = read_frame(s)?;
    if !r.ends_with(&format!(" {body}")) {
        return Err(format!("reply {r:?} to {body:?}"));
    }
    Ok(r)
}

/// Process mode: TCP clients (length framing) under continuous traffic stay connected across
/// the upgrade and their next replies come from the new binary, on the same connection with
/// the same connection id (`ConnId`, as the application sees it); a
/// client that had sent half a frame before the upgrade completes it after and is answered by
/// the new binary with the whole message; the old master exits at once, not after
/// `max_wait_time`.
#[test]
fn upgrade_moves_live_tcp_connections() {
    let kit = Kit::new();
    let sport = free_port();
    let sport_s = sport.to_string();
    let mut p = kit.start(&[
        "--worker-num",
        "2",
        "--stream-port",
        &sport_s,
        "--max-wait-time-ms",
        "30000",
    ]);
    // Half a frame: a 10-byte body announced, 5 bytes sent.
    let mut half = conn(sport).unwrap();
    assert!(ask(&mut half, "hello").unwrap().starts_with("app-v1 "));
    half.write_all(&10u32.to_be_bytes()).unwrap();
    half.write_all(b"01234").unwrap();

    let load = Load::new(20);
    let threads = load.run(move |i, load| {
        // One connection for the whole test: any error is a disconnect.
        let mut s = match conn(sport) {
            Ok(s) => s,
            Err(e) => return load.fail(e),
        };
        let mut n = 0u64;
        // The connection's id, as the server names it: the same before and after the move.
        let mut id: Option<String> = None;
        while load.running() {
            n += 1;
            match ask(&mut s, &format!("c{i}-m{n}")) {
                Ok(r) => {
                    if r.starts_with("app-v1 ") && load.on_v2[i].load(Ordering::Relaxed) {
                        return load.fail(format!("client {i}: app-v1 after app-v2"));
                    }
                    let fd = r.split(' ').nth(2).unwrap_or_default().to_string();
                    if id.get_or_insert_with(|| fd.clone()) != &fd || !fd.starts_with("fd=") {
                        return load.fail(format!("client {i}: {fd} in {r:?}, was {id:?}"));
                    }
                    load.reply(i, &r);
                }
                Err(e) => return load.fail(format!("client {i}, message {n}: {e}")),
            }
        }
    });
    load.wait_replies(500, "no traffic");
    kit.upgrade_ok(&kit.v2);
    load.wait_all_on_v2();
    // Nothing left to drain: the old master leaves long before max_wait_time (30 s).
    let gone = p.wait_exit(Duration::from_secs(10));
    assert!(
        gone.is_some(),
        "the old master is still there: {}",
        p.stderr()
    );
    load.wait_replies(load.replies() + 500, "no traffic after the old master left");
    // The half frame's other half: the whole message reaches app-v2.
    half.write_all(b"56789").unwrap();
    let r = read_frame(&mut half).unwrap();
    assert!(
        r.starts_with("app-v2 ") && r.ends_with(" 0123456789"),
        "{r:?}"
    );
    load.finish(threads, &p);
    let err = p.stderr();
    assert!(err.contains("handover: connections moved"), "{err}");
    assert!(err.contains("moved=21"), "{err}");
    assert!(
        err.contains("took in the old master's connections"),
        "{err}"
    );
    kit.stop();
}

/// An upgrade to a binary that exits at start, or to one that refuses its settings, or to a
/// path that does not exist, fails with the reason and leaves the old server serving — and
/// its live connections, HTTP keep-alive and TCP with a half-sent frame, on the old master.
#[test]
fn upgrade_to_a_failing_binary_keeps_the_old_one() {
    let kit = Kit::new();
    let broken = kit.dir.path().join("broken");
    std::fs::write(&broken, "#!/bin/sh\necho broken build >&2\nexit 3\n").unwrap();
    std::fs::set_permissions(&broken, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let sport = free_port();
    let sport_s = sport.to_string();
    let mut p = kit.start(&["--worker-num", "1", "--stream-port", &sport_s]);
    // A keep-alive connection open across the failed upgrades.
    let mut s = conn(kit.port).unwrap();
    assert!(get(&mut s, "/").unwrap().0.starts_with("app-v1 "));
    // A TCP connection with half a frame sent.
    let mut t = conn(sport).unwrap();
    assert!(ask(&mut t, "x").unwrap().starts_with("app-v1 "));
    t.write_all(&4u32.to_be_bytes()).unwrap();
    t.write_all(b"ab").unwrap();

    let err = kit.upgrade_err(&broken);
    assert!(err.contains("exited at start (exit status: 3)"), "{err}");
    assert!(err.contains(&format!("pid {}", p.pid())), "{err}");

    let err = kit.upgrade_err(&kit.dir.path().join("missing"));
    assert!(
        err.contains("cannot start") && err.contains("missing"),
        "{err}"
    );

    // The same program with a listener the old master does not have: it refuses the
    // handed-over socket; its own start-up error is the reason.
    let other_kit = copy_kit(kit.dir.path(), "app-other");
    let wrapper = kit.dir.path().join("bad-config");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec {} --port {} --pid-file {}\n",
            other_kit.display(),
            free_port(),
            kit.pid_file.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let err = kit.upgrade_err(&wrapper);
    assert!(err.contains("match no listener"), "{err}");

    // Still the old master, still serving, on the old connections and on new ones.
    assert!(get(&mut s, "/").unwrap().0.starts_with("app-v1 "));
    t.write_all(b"cd").unwrap();
    let r = read_frame(&mut t).unwrap();
    assert!(r.starts_with("app-v1 ") && r.ends_with(" abcd"), "{r:?}");
    assert!(ask(&mut t, "y").unwrap().starts_with("app-v1 "));
    assert!(get_once(kit.port, Duration::from_secs(5)).starts_with("app-v1 "));
    assert_eq!(kit.pid(), p.pid());
    p.stop(Duration::from_secs(30));
}

/// Base mode: the listeners pass, the old workers drain, the new binary serves.
#[test]
fn upgrade_base_mode() {
    let kit = Kit::new();
    let mut p = kit.start(&["--mode", "base", "--worker-num", "2"]);
    assert!(get_once(kit.port, Duration::from_secs(5)).starts_with("app-v1 "));
    kit.upgrade_ok(&kit.v2);
    p.wait_exit(Duration::from_secs(30))
        .expect("the old master exits");
    for _ in 0..20 {
        assert!(get_once(kit.port, Duration::from_secs(5)).starts_with("app-v2 "));
    }
    kit.stop();
}

/// Under a service manager, the old master hands the service to the new one: `MAINPID=<new>`
/// and `READY=1` once the new master serves.
#[test]
fn upgrade_announces_the_new_main_pid() {
    let kit = Kit::new();
    let path = kit.dir.path().join("notify");
    let sock = UnixDatagram::bind(&path).unwrap();
    let env_notify = format!("NOTIFY_SOCKET={}", path.display());
    let mut args = vec![
        env_notify,
        "RSWOOLE_LOG=info".into(),
        kit.v1.display().to_string(),
    ];
    args.extend(kit.args(&["--worker-num", "1"]));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut p = ServerProc::spawn_path(Path::new("/usr/bin/env"), &args, kit.port);
    p.wait_ready(Duration::from_secs(30));
    let ready = wait_notify(&sock, "READY=1", Duration::from_secs(20));
    assert!(ready.contains(&format!("MAINPID={}", p.pid())), "{ready}");
    kit.upgrade_ok(&kit.v2);
    let new_pid = kit.pid();
    // The new master's own READY=1 and the old master's hand-over both name the new pid.
    let handover = wait_notify(
        &sock,
        &format!("MAINPID={new_pid}\nREADY=1"),
        Duration::from_secs(20),
    );
    assert!(handover.starts_with("MAINPID="), "{handover}");
    p.wait_exit(Duration::from_secs(30))
        .expect("the old master exits");
    assert!(get_once(kit.port, Duration::from_secs(5)).starts_with("app-v2 "));
    kit.stop();
}

/// Process mode: a keep-alive connection idle across the upgrade moves to the new master:
/// its next request, on the same connection, is answered by the new binary (no
/// `Connection: close`). A request still being handled when the handover runs (longer than
/// its quiesce limit) keeps its connection on the old master: answered there with
/// `Connection: close`, then closed; the old master exits once it is done.
#[test]
fn upgrade_moves_idle_keepalive_and_drains_a_request_in_flight() {
    let kit = Kit::new();
    let mut p = kit.start(&["--worker-num", "2", "--max-wait-time-ms", "20000"]);
    let mut idle = conn(kit.port).unwrap();
    let (body, close) = get(&mut idle, "/").unwrap();
    assert!(body.starts_with("app-v1 ") && !close, "{body}");
    // A request that outlasts the handover's wait for it (1 s), sent before the upgrade.
    let mut slow = conn(kit.port).unwrap();
    slow.write_all(b"GET /slow?ms=3000 HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let busy = std::thread::spawn(move || {
        let r = read_reply(&mut slow);
        let mut rest = Vec::new();
        let eof = slow.read_to_end(&mut rest).map(|n| n == 0);
        (r, eof)
    });
    kit.upgrade_ok(&kit.v2);
    p.wait_stderr("handover: connections moved", 1, Duration::from_secs(10));
    // The idle connection moved: same socket, the new binary answers, keep-alive.
    for _ in 0..3 {
        let (body, close) = get(&mut idle, "/").unwrap();
        assert!(body.starts_with("app-v2 ") && !close, "{body}");
    }
    let (r, eof) = busy.join().unwrap();
    let (body, close) = r.unwrap();
    assert!(body.starts_with("app-v1 "), "{body}");
    assert!(close, "the old master's reply must say Connection: close");
    assert!(eof.unwrap(), "closed after it");
    // Its last connection gone, the old master stops well before max_wait_time.
    p.wait_exit(Duration::from_secs(10))
        .expect("the old master exits once drained");
    let err = p.stderr();
    assert!(err.contains("moved=1 "), "{err}");
    let (body, _) = get(&mut idle, "/").unwrap();
    assert!(body.starts_with("app-v2 "), "{body}");
    kit.stop();
}

fn ws_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Sends `body` on a WebSocket and waits (≤ 20 s) for the kit's reply to it
/// (`<binary> <pid> fd=<id> <body>`); the other messages that arrive first (broadcasts,
/// `<binary> all <text>`) are pushed to `seen`. An error names what failed (a close, the end
/// of the connection, no reply in time).
async fn ws_ask(ws: &mut Ws, body: &str, seen: &mut Vec<String>) -> Result<String, String> {
    ws.send(MessageKind::Text, body.as_bytes()).await;
    ws_reply(ws, body, seen).await
}

async fn ws_reply(ws: &mut Ws, body: &str, seen: &mut Vec<String>) -> Result<String, String> {
    let until = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let ev = tokio::time::timeout_at(until, ws.recv())
            .await
            .map_err(|_| format!("no reply to {body:?} in time (seen {seen:?})"))?;
        match ev {
            Some(WsEvent::Message { data, .. }) => {
                let t = String::from_utf8_lossy(&data).into_owned();
                if t.split(' ').nth(1) != Some("all") && t.ends_with(&format!(" {body}")) {
                    return Ok(t);
                }
                seen.push(t);
            }
            Some(WsEvent::Close { code, reason }) => {
                return Err(format!("closed by the server: {code} {reason}"))
            }
            Some(_) => {}
            None => return Err("connection ended".into()),
        }
    }
}

/// Process mode: WebSocket clients under continuous traffic (plain, and with
/// permessage-deflate negotiated without context takeover) stay connected across the upgrade,
/// and their next replies come from the new binary, on the same connection with the same
/// connection id (no new `on_open`); a client that had sent part of a binary frame before the
/// upgrade completes it after and is answered by the new binary; a broadcast after the
/// upgrade reaches every client exactly once; the old master exits at once.
#[test]
fn upgrade_moves_live_websocket_connections() {
    const N: usize = 16;
    let kit = Kit::new();
    let port = kit.port;
    let mut p = kit.start(&["--worker-num", "2", "--max-wait-time-ms", "30000"]);
    let rt = ws_rt();
    let no_ctx = DeflateConfig {
        enabled: true,
        no_context_takeover: true,
        peer_no_context_takeover: true,
        ..DeflateConfig::default()
    };
    let (clients, mut half) = rt.block_on(async {
        let mut v = Vec::new();
        for i in 0..N {
            let ws = if i % 4 == 3 {
                Ws::connect_deflate(port, no_ctx.clone()).await
            } else {
                Ws::connect(port, false).await
            };
            assert_eq!(ws.deflate(), (i % 4 == 3).then_some(false), "client {i}");
            v.push(ws);
        }
        let mut half = Ws::connect(port, false).await;
        let r = ws_ask(&mut half, "hello", &mut Vec::new()).await.unwrap();
        assert!(r.starts_with("app-v1 "), "{r}");
        (v, half)
    });
    // Part of a binary frame (its 6-byte header and 3 of its 10 bytes) before the upgrade.
    let wire = half.encode(MessageKind::Binary, b"0123456789");
    rt.block_on(half.send_raw(&wire[..9]));

    let load = Load::new(N);
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, mut ws)| {
            let load = load.clone();
            rt.spawn(async move {
                // Long enough to be compressed (threshold 64) both ways.
                let pad = "x".repeat(80);
                let mut n = 0u64;
                let mut id: Option<String> = None;
                while load.running() {
                    n += 1;
                    let body = format!("c{i}-m{n}-{pad}");
                    match ws_ask(&mut ws, &body, &mut Vec::new()).await {
                        Ok(r) => {
                            if r.starts_with("app-v1 ") && load.on_v2[i].load(Ordering::Relaxed) {
                                load.fail(format!("client {i}: app-v1 after app-v2"));
                                break;
                            }
                            let fd = r.split(' ').nth(2).unwrap_or_default().to_string();
                            if id.get_or_insert_with(|| fd.clone()) != &fd || !fd.starts_with("fd=")
                            {
                                load.fail(format!("client {i}: {fd} in {r:?}, was {id:?}"));
                                break;
                            }
                            load.reply(i, &r);
                        }
                        Err(e) => {
                            load.fail(format!("client {i}, message {n}: {e}"));
                            break;
                        }
                    }
                }
                ws
            })
        })
        .collect();
    load.wait_replies(300, "no WebSocket traffic");
    kit.upgrade_ok(&kit.v2);
    load.wait_all_on_v2();
    // Nothing left to drain: the old master leaves long before max_wait_time (30 s).
    let gone = p.wait_exit(Duration::from_secs(10));
    assert!(
        gone.is_some(),
        "the old master is still there: {}",
        p.stderr()
    );
    load.wait_replies(
        load.replies() + 300,
        "no WebSocket traffic after the old master left",
    );
    load.stop.store(true, Ordering::Relaxed);
    let mut clients: Vec<Ws> = rt.block_on(async {
        let mut v = Vec::new();
        for t in tasks {
            v.push(t.await.expect("client task"));
        }
        v
    });
    {
        let failures = load.failures.lock().unwrap();
        assert!(
            failures.is_empty(),
            "{} failures in {} replies: {:?}\n{}",
            failures.len(),
            load.replies(),
            &failures[..failures.len().min(10)],
            p.stderr()
        );
    }
    rt.block_on(async {
        // The rest of the binary frame: the whole message reaches app-v2.
        half.send_raw(&wire[9..]).await;
        let r = ws_reply(&mut half, "0123456789", &mut Vec::new())
            .await
            .unwrap();
        assert!(r.starts_with("app-v2 "), "{r}");
        clients.push(half);
        // A broadcast from one client reaches every client, once.
        clients[0]
            .send(MessageKind::Text, b"/all after the upgrade")
            .await;
        let all = "app-v2 all after the upgrade".to_string();
        for round in 0..2 {
            for (i, ws) in clients.iter_mut().enumerate() {
                let mut seen = Vec::new();
                let r = ws_ask(ws, &format!("marker-{round}-{i}"), &mut seen)
                    .await
                    .unwrap_or_else(|e| panic!("client {i}: {e}"));
                assert!(r.starts_with("app-v2 "), "{r}");
                let want = if round == 0 {
                    vec![all.clone()]
                } else {
                    vec![]
                };
                assert_eq!(seen, want, "client {i}, round {round}");
            }
        }
    });
    let err = p.stderr();
    assert!(err.contains("moved=17 "), "{err}");
    assert!(
        err.contains("took in the old master's connections"),
        "{err}"
    );
    kit.stop();
}

/// By default (`compression_context_takeover(false)`) the server answers a browser-like offer
/// (context takeover, no parameters) with `server_no_context_takeover;
/// client_no_context_takeover`, so that compressed connection moves on upgrade instead of
/// draining.
#[test]
fn upgrade_moves_a_deflate_websocket_by_default() {
    let kit = Kit::new();
    let port = kit.port;
    let mut p = kit.start(&["--worker-num", "2", "--max-wait-time-ms", "3000"]);
    let rt = ws_rt();
    let long = "y".repeat(200);
    let mut z = rt.block_on(async {
        let offer = DeflateConfig {
            enabled: true,
            ..DeflateConfig::default()
        };
        let mut z = Ws::connect_deflate(port, offer).await;
        assert_eq!(
            z.deflate(),
            Some(false),
            "deflate negotiated, without context takeover"
        );
        let r = ws_ask(&mut z, &format!("before-{long}"), &mut Vec::new())
            .await
            .unwrap();
        assert!(r.starts_with("app-v1 "), "{r}");
        z
    });
    kit.upgrade_ok(&kit.v2);
    p.wait_stderr("handover: connections moved", 1, Duration::from_secs(10));
    rt.block_on(async {
        for k in 0..3 {
            let r = ws_ask(&mut z, &format!("after-{k}-{long}"), &mut Vec::new())
                .await
                .unwrap();
            assert!(r.starts_with("app-v2 "), "moved to the new binary: {r}");
            assert!(
                r.ends_with(&long),
                "the compressed message arrived whole: {r}"
            );
        }
    });
    p.wait_exit(Duration::from_secs(10))
        .expect("the old master exits at once: nothing left to drain");
    let err = p.stderr();
    assert!(err.contains("moved=1 "), "{err}");
    kit.stop();
}

/// Process mode: a WebSocket with permessage-deflate and context takeover (the server set to
/// `--ws-context-takeover`; the compression
/// windows are not moved) stays on the old master after the upgrade and keeps working there,
/// compressed, while a plain one beside it moves; at `max_wait_time` the old master sends it
/// a Close 1001 (going away) and closes it, then exits.
#[test]
fn upgrade_drains_a_websocket_with_deflate_context_and_closes_it_1001() {
    let kit = Kit::new();
    let port = kit.port;
    let mut p = kit.start(&[
        "--worker-num",
        "2",
        "--max-wait-time-ms",
        "3000",
        "--ws-context-takeover",
    ]);
    let rt = ws_rt();
    let long = "y".repeat(200);
    let (mut z, mut plain) = rt.block_on(async {
        let ctx = DeflateConfig {
            enabled: true,
            ..DeflateConfig::default()
        };
        let mut z = Ws::connect_deflate(port, ctx).await;
        assert_eq!(z.deflate(), Some(true), "context takeover negotiated");
        let mut plain = Ws::connect(port, false).await;
        for ws in [&mut z, &mut plain] {
            let r = ws_ask(ws, &format!("before-{long}"), &mut Vec::new())
                .await
                .unwrap();
            assert!(r.starts_with("app-v1 "), "{r}");
        }
        (z, plain)
    });
    kit.upgrade_ok(&kit.v2);
    p.wait_stderr("handover: connections moved", 1, Duration::from_secs(10));
    let started = Instant::now();
    rt.block_on(async {
        let r = ws_ask(&mut plain, "moved?", &mut Vec::new()).await.unwrap();
        assert!(r.starts_with("app-v2 "), "{r}");
        for k in 0..3 {
            let r = ws_ask(&mut z, &format!("stayed-{k}-{long}"), &mut Vec::new())
                .await
                .unwrap();
            assert!(r.starts_with("app-v1 "), "{r}");
        }
        assert_eq!(z.close_code().await, Some(CloseCode::GOING_AWAY));
        assert!(z.recv().await.is_none(), "closed after the Close frame");
    });
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    p.wait_exit(Duration::from_secs(10))
        .expect("the old master exits after max_wait_time");
    let err = p.stderr();
    assert!(err.contains("moved=1 "), "{err}");
    let r = rt.block_on(ws_ask(&mut plain, "still here", &mut Vec::new()));
    assert!(r.unwrap().starts_with("app-v2 "));
    kit.stop();
}
