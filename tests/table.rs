//! The shared-memory Table used by a running server (examples/table.rs): every worker sees
//! the same online count. (The Table itself is tested in crates/shm/tests.)

use std::io::Write;
use std::time::{Duration, Instant};

use crate::util::*;

fn online(c: &mut std::net::TcpStream) -> (u64, String) {
    c.write_all(b"online\n").unwrap();
    let line = read_line(c);
    let n = line
        .strip_prefix("online: ")
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("bad reply {line:?}"));
    (n, line)
}

/// Connections counted by whichever worker holds them; the count is server-wide.
#[test]
fn table_online_counter_across_workers() {
    for mode in ["process", "base"] {
        let port = 0;
        let srv = ServerProc::start(
            "table",
            &[
                "--port",
                &port.to_string(),
                "--worker-num",
                "4",
                "--mode",
                mode,
            ],
            port,
        );
        let mut conns: Vec<_> = (0..8).map(|_| connect(srv.port)).collect();
        // Wait until ours are all counted (each is counted by the worker that takes it).
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut workers = std::collections::HashSet::new();
        loop {
            let (n, _) = online(&mut conns[0]);
            if n == 8 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "online never reached 8 (mode {mode}), last {n}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        for c in conns.iter_mut() {
            let (n, line) = online(c);
            assert_eq!(n, 8, "{line}");
            workers.insert(line.split("worker ").nth(1).unwrap().to_string());
        }
        assert!(
            workers.len() >= 2,
            "answers came from several workers: {workers:?}"
        );
        conns.truncate(3);
        loop {
            let (n, _) = online(&mut conns[0]);
            if n == 3 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "online never went down to 3 (mode {mode}), last {n}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
