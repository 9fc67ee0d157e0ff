//! The shared-memory Table used by a running server (examples/table.rs): every worker sees
//! the same online count, and a persistent table outlives the server. (The Table itself is
//! tested in crates/shm/tests.)

use std::collections::HashSet;
use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::util::*;

const T: Duration = Duration::from_secs(20);

/// Sends `online\n` or `total\n`; the reply must be exactly `online: N\n` / `total: N\n`.
fn ask(c: &mut TcpStream, row: &str) -> u64 {
    c.write_all(format!("{row}\n").as_bytes()).unwrap();
    let line = read_line(c);
    line.strip_prefix(&format!("{row}: "))
        .and_then(|r| r.strip_suffix('\n'))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("bad reply to {row:?}: {line:?}"))
}

/// Asks until the answer is `want` (the server counts connections as it sees them).
fn wait_for(c: &mut TcpStream, row: &str, want: u64, what: &str) {
    let deadline = Instant::now() + T;
    loop {
        let n = ask(c, row);
        if n == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{row} never reached {want} ({what}), last {n}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The workers that logged an answer (`worker=K` on the `answered online` lines).
fn answering_workers(srv: &ServerProc) -> HashSet<String> {
    srv.stderr()
        .lines()
        .filter(|l| l.contains("answered online"))
        .filter_map(|l| l.split(' ').find_map(|w| w.strip_prefix("worker=")))
        .map(str::to_string)
        .collect()
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
        wait_for(&mut conns[0], "online", 8, mode);
        for c in conns.iter_mut() {
            assert_eq!(ask(c, "online"), 8, "mode {mode}");
        }
        // The reply no longer names the worker; the log does.
        let deadline = Instant::now() + T;
        while answering_workers(&srv).len() < 2 {
            assert!(
                Instant::now() < deadline,
                "answers came from several workers (mode {mode}): {:?}\n{}",
                answering_workers(&srv),
                srv.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        conns.truncate(3);
        wait_for(&mut conns[0], "online", 3, mode);
    }
}

/// Removes the persistent table when the test ends, whatever happened.
struct RemoveTable(String);

impl Drop for RemoveTable {
    fn drop(&mut self) {
        if rswoole_shm::persistent::path(&self.0).exists() {
            let _ = cli(&["table", "rm", &self.0]);
        }
    }
}

/// `--persistent NAME`: the counts live in /dev/shm/rswoole.NAME, which `rswoole table list`
/// and `dump` show after the server stopped, a restart reattaches (the total goes on), and
/// `rswoole table rm` removes.
#[test]
fn table_persistent_outlives_the_server() {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let name = format!("itest-table-{}-{nanos}", std::process::id());
    // Declared first, dropped last: after the servers are gone.
    let _cleanup = RemoveTable(name.clone());
    let start = || {
        let args = ["--port", "0", "--worker-num", "2", "--persistent", &name].map(String::from);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ServerProc::start("table", &args, 0)
    };

    let mut srv = start();
    let mut conns: Vec<_> = (0..6).map(|_| connect(srv.port)).collect();
    wait_for(&mut conns[0], "online", 6, "first run");
    let total = ask(&mut conns[0], "total");
    assert!(total >= 6, "total {total}");
    drop(conns);
    assert!(srv.stop(T).success(), "{}", srv.stderr());

    let out = cli(&["table", "list"]);
    let list = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{list}");
    let row = list
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name.as_str()))
        .unwrap_or_else(|| panic!("{name} not listed after the server stopped:\n{list}"));
    assert!(row.contains(" 2/16 ") && row.ends_with("n int"), "{row}");

    let out = cli(&["table", "dump", &name]);
    assert!(out.status.success(), "{out:?}");
    let rows: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let dumped = |key: &str| {
        rows.iter()
            .find(|r| r["key"] == key)
            .and_then(|r| r["n"].as_u64())
            .unwrap_or_else(|| panic!("no {key} row in {rows:?}"))
    };
    assert_eq!(dumped("total"), total, "{rows:?}");

    // A restart reattaches: the total goes on from where it was; online starts again.
    let srv = start();
    let mut c = connect(srv.port);
    wait_for(&mut c, "online", 1, "after the restart");
    let again = ask(&mut c, "total");
    assert!(
        again > total,
        "total {again} after the restart, {total} before"
    );
    drop(srv);

    let out = cli(&["table", "rm", &name]);
    assert!(out.status.success(), "{out:?}");
    assert!(!rswoole_shm::persistent::path(&name).exists());
    let out = cli(&["table", "list"]);
    let list = String::from_utf8_lossy(&out.stdout);
    assert!(
        !list
            .lines()
            .any(|l| l.split_whitespace().next() == Some(name.as_str())),
        "{list}"
    );
}
