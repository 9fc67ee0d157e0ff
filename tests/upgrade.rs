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

use crate::util::{self, free_port, ServerProc};

/// Copies the example to `dir/name` (a "build" of its own) and returns the path.
fn copy_kit(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::copy(util::example("upgrade_kit"), &p).expect("copy upgrade_kit");
    p
}

/// One `GET path` on a keep-alive connection: the body and whether the server said it closes
/// the connection after it. An error names what failed.
fn get(s: &mut TcpStream, path: &str) -> Result<(String, bool), String> {
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
        .map_err(|e| format!("write: {e}"))?;
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
    let dir = tempfile::tempdir().unwrap();
    let v1 = copy_kit(dir.path(), "app-v1");
    let v2 = copy_kit(dir.path(), "app-v2");
    let pid_file = dir.path().join("app.pid");
    let port = free_port();
    let port_s = port.to_string();
    let args = [
        "--port",
        &port_s,
        "--worker-num",
        "2",
        "--pid-file",
        pid_file.to_str().unwrap(),
        "--max-wait-time-ms",
        "5000",
    ];
    let mut p = ServerProc::spawn_path(&v1, &args, port);
    p.wait_ready(Duration::from_secs(30));
    let old_pid = p.pid();

    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let clients = 8;
    // Per client: has it had a reply from app-v2 yet?
    let on_v2: Arc<Vec<AtomicBool>> =
        Arc::new((0..clients).map(|_| AtomicBool::new(false)).collect());
    let threads: Vec<_> = (0..clients)
        .map(|i| {
            let (stop, ok, failures, on_v2) =
                (stop.clone(), ok.clone(), failures.clone(), on_v2.clone());
            std::thread::spawn(move || {
                let mut s: Option<TcpStream> = None;
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let stream = match s.take() {
                        Some(x) => x,
                        None => match conn(port) {
                            Ok(x) => x,
                            Err(e) => {
                                failures.lock().unwrap().push(e);
                                continue;
                            }
                        },
                    };
                    let mut stream = stream;
                    n += 1;
                    // Every 5th request takes a while: in flight when the drain starts.
                    let path = if n % 5 == 0 { "/slow?ms=50" } else { "/" };
                    match get(&mut stream, path) {
                        Ok((body, close)) => {
                            ok.fetch_add(1, Ordering::Relaxed);
                            if body.starts_with("app-v2 ") {
                                on_v2[i].store(true, Ordering::Relaxed);
                            } else if !body.starts_with("app-v1 ") {
                                failures.lock().unwrap().push(format!("odd body {body:?}"));
                            }
                            if !close {
                                s = Some(stream);
                            }
                        }
                        Err(e) => failures.lock().unwrap().push(e),
                    }
                }
            })
        })
        .collect();
    // Load is running on app-v1.
    let deadline = Instant::now() + Duration::from_secs(20);
    while ok.load(Ordering::Relaxed) < 200 {
        assert!(Instant::now() < deadline, "no load");
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = upgrade_cli(&pid_file, &v2);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "upgrade failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("app-v2"), "{stdout}");
    // Every client moves to the new binary (its connection was closed after a reply).
    let deadline = Instant::now() + Duration::from_secs(30);
    while !on_v2.iter().all(|b| b.load(Ordering::Relaxed)) {
        assert!(
            Instant::now() < deadline,
            "some clients never reached app-v2"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // The old master drains and exits while the load goes on.
    p.wait_exit(Duration::from_secs(30))
        .expect("the old master exits");
    let before = ok.load(Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(20);
    while ok.load(Ordering::Relaxed) < before + 200 {
        assert!(
            Instant::now() < deadline,
            "no load after the old master left"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let failures = failures.lock().unwrap();
    assert!(
        failures.is_empty(),
        "{} failed requests of {}: {:?}",
        failures.len(),
        ok.load(Ordering::Relaxed),
        &failures[..failures.len().min(10)]
    );
    // The pid file and the status name the new master, and the one it replaced.
    let new_pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_ne!(new_pid, old_pid);
    let st = util::wait_status(&pid_file, "the new master", Duration::from_secs(10), |v| {
        v["master_pid"] == new_pid
    });
    assert!(
        st["build"]["exe"].as_str().unwrap().ends_with("app-v2"),
        "{st}"
    );
    assert!(
        st["replaced"]["exe"].as_str().unwrap().ends_with("app-v1"),
        "{st}"
    );
    assert_eq!(st["replaced"]["pid"], old_pid);
    let out = util::cli(&["stop", "--pid-file", pid_file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_gone(new_pid, Duration::from_secs(10));
}

/// An upgrade to a binary that exits at start, or to one that refuses its settings, or to a
/// path that does not exist, fails with the reason and leaves the old server serving.
#[test]
fn upgrade_to_a_failing_binary_keeps_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let v1 = copy_kit(dir.path(), "app-v1");
    let broken = dir.path().join("broken");
    std::fs::write(&broken, "#!/bin/sh\necho broken build >&2\nexit 3\n").unwrap();
    std::fs::set_permissions(&broken, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let pid_file = dir.path().join("app.pid");
    let port = free_port();
    let port_s = port.to_string();
    let args = [
        "--port",
        &port_s,
        "--worker-num",
        "1",
        "--pid-file",
        pid_file.to_str().unwrap(),
    ];
    let mut p = ServerProc::spawn_path(&v1, &args, port);
    p.wait_ready(Duration::from_secs(30));
    // A keep-alive connection open across the failed upgrades.
    let mut s = conn(port).unwrap();
    assert!(get(&mut s, "/").unwrap().0.starts_with("app-v1 "));

    let out = upgrade_cli(&pid_file, &broken);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success());
    assert!(err.contains("exited at start (exit status: 3)"), "{err}");
    assert!(err.contains(&format!("pid {}", p.pid())), "{err}");

    let out = upgrade_cli(&pid_file, &dir.path().join("missing"));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success());
    assert!(
        err.contains("cannot start") && err.contains("missing"),
        "{err}"
    );

    // The same program with a listener the old master does not have: it refuses the
    // handed-over socket; its own start-up error is the reason.
    let other_kit = copy_kit(dir.path(), "app-other");
    let wrapper = dir.path().join("bad-config");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec {} --port {} --pid-file {}\n",
            other_kit.display(),
            free_port(),
            pid_file.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let out = upgrade_cli(&pid_file, &wrapper);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success());
    assert!(err.contains("match no listener"), "{err}");

    // Still the old master, still serving, on the old connection and on new ones.
    assert!(get(&mut s, "/").unwrap().0.starts_with("app-v1 "));
    assert!(get_once(port, Duration::from_secs(5)).starts_with("app-v1 "));
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(pid, p.pid());
    p.stop(Duration::from_secs(30));
}

/// Base mode: the listeners pass, the old workers drain, the new binary serves.
#[test]
fn upgrade_base_mode() {
    let dir = tempfile::tempdir().unwrap();
    let v1 = copy_kit(dir.path(), "app-v1");
    let v2 = copy_kit(dir.path(), "app-v2");
    let pid_file = dir.path().join("app.pid");
    let port = free_port();
    let port_s = port.to_string();
    let args = [
        "--port",
        &port_s,
        "--mode",
        "base",
        "--worker-num",
        "2",
        "--pid-file",
        pid_file.to_str().unwrap(),
    ];
    let mut p = ServerProc::spawn_path(&v1, &args, port);
    p.wait_ready(Duration::from_secs(30));
    assert!(get_once(port, Duration::from_secs(5)).starts_with("app-v1 "));
    let out = upgrade_cli(&pid_file, &v2);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    p.wait_exit(Duration::from_secs(30))
        .expect("the old master exits");
    for _ in 0..20 {
        assert!(get_once(port, Duration::from_secs(5)).starts_with("app-v2 "));
    }
    let out = util::cli(&["stop", "--pid-file", pid_file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Under a service manager, the old master hands the service to the new one: `MAINPID=<new>`
/// and `READY=1` once the new master serves.
#[test]
fn upgrade_announces_the_new_main_pid() {
    let dir = tempfile::tempdir().unwrap();
    let v1 = copy_kit(dir.path(), "app-v1");
    let v2 = copy_kit(dir.path(), "app-v2");
    let path = dir.path().join("notify");
    let sock = UnixDatagram::bind(&path).unwrap();
    let pid_file = dir.path().join("app.pid");
    let port = free_port();
    let env_notify = format!("NOTIFY_SOCKET={}", path.display());
    let port_s = port.to_string();
    let args = [
        env_notify.as_str(),
        "RSWOOLE_LOG=info",
        v1.to_str().unwrap(),
        "--port",
        &port_s,
        "--worker-num",
        "1",
        "--pid-file",
        pid_file.to_str().unwrap(),
    ];
    let mut p = ServerProc::spawn_path(Path::new("/usr/bin/env"), &args, port);
    p.wait_ready(Duration::from_secs(30));
    let ready = wait_notify(&sock, "READY=1", Duration::from_secs(20));
    assert!(ready.contains(&format!("MAINPID={}", p.pid())), "{ready}");
    let out = upgrade_cli(&pid_file, &v2);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let new_pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // The new master's own READY=1 and the old master's hand-over both name the new pid.
    let handover = wait_notify(
        &sock,
        &format!("MAINPID={new_pid}\nREADY=1"),
        Duration::from_secs(20),
    );
    assert!(handover.starts_with("MAINPID="), "{handover}");
    p.wait_exit(Duration::from_secs(30))
        .expect("the old master exits");
    assert!(get_once(port, Duration::from_secs(5)).starts_with("app-v2 "));
    let out = util::cli(&["stop", "--pid-file", pid_file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_gone(new_pid, Duration::from_secs(10));
}

/// A keep-alive connection idle across the upgrade stays with the old master: its next request
/// is answered there, with `Connection: close`; the client's new connection reaches the new
/// binary.
#[test]
fn upgrade_idle_keepalive_connection_gets_a_clean_close() {
    let dir = tempfile::tempdir().unwrap();
    let v1 = copy_kit(dir.path(), "app-v1");
    let v2 = copy_kit(dir.path(), "app-v2");
    let pid_file = dir.path().join("app.pid");
    let port = free_port();
    let port_s = port.to_string();
    let args = [
        "--port",
        &port_s,
        "--worker-num",
        "1",
        "--pid-file",
        pid_file.to_str().unwrap(),
        "--max-wait-time-ms",
        "20000",
    ];
    let mut p = ServerProc::spawn_path(&v1, &args, port);
    p.wait_ready(Duration::from_secs(30));
    let mut idle = conn(port).unwrap();
    let (body, close) = get(&mut idle, "/").unwrap();
    assert!(body.starts_with("app-v1 ") && !close, "{body}");
    let out = upgrade_cli(&pid_file, &v2);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The old master is draining, not gone: it waits for this connection.
    p.wait_stderr("stops accepting and drains", 1, Duration::from_secs(10));
    assert!(
        p.child.try_wait().unwrap().is_none(),
        "the old master left early"
    );
    assert!(get_once(port, Duration::from_secs(5)).starts_with("app-v2 "));
    let (body, close) = get(&mut idle, "/").unwrap();
    assert!(body.starts_with("app-v1 "), "{body}");
    assert!(close, "the old master's reply must say Connection: close");
    let mut rest = Vec::new();
    assert_eq!(idle.read_to_end(&mut rest).unwrap(), 0, "closed after it");
    // Its last connection gone, the old master stops well before max_wait_time.
    p.wait_exit(Duration::from_secs(10))
        .expect("the old master exits once drained");
    let out = util::cli(&["stop", "--pid-file", pid_file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
