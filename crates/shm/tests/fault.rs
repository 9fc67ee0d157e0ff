//! `kill -9` while holding a lock: no deadlock, no torn row.

use std::time::{Duration, Instant};

use rswoole_shm::Value;

use crate::util::{self, Proc};

const LOCKED: Duration = Duration::from_secs(30);

#[test]
fn fault_kill_mid_row_write_keeps_old_value_and_frees_row() {
    let name = util::unique("midwrite");
    let (t, _cleanup) = util::create(&name, 16);
    t.set("row", &[("score", 1.into()), ("name", "before".into())])
        .unwrap();
    let p = Proc::spawn(&["die-mid-write", &name, "row"]);
    assert_eq!(p.line(LOCKED), "locked");
    // While the writer sits on a torn inactive buffer, readers (no lock)
    // see the old row, intact.
    let row = t.get("row").unwrap().unwrap();
    assert_eq!(row.int("score"), Some(1));
    assert_eq!(row.str("name"), Some("before"));
    p.kill();
    // Another process writes the same row within a bounded time.
    let start = Instant::now();
    util::run(
        &[
            "set",
            &name,
            "row",
            "2",
            &format!("{:x}", 0.5f64.to_bits()),
            "after",
        ],
        Duration::from_secs(30),
    );
    assert!(start.elapsed() < Duration::from_secs(10));
    let row = t.get("row").unwrap().unwrap();
    assert_eq!(row.int("score"), Some(2));
    assert_eq!(row.float("ratio"), Some(0.5));
    assert_eq!(row.str("name"), Some("after"));
    // And this process too, through incr.
    assert_eq!(t.incr("row", "score", 1).unwrap(), 3);
}

#[test]
fn fault_kill_inside_update_frees_row_lock() {
    let name = util::unique("update");
    let (t, _cleanup) = util::create(&name, 16);
    t.set("row", &[("score", 10.into())]).unwrap();
    let p = Proc::spawn(&["hold-update", &name, "row"]);
    assert_eq!(p.line(LOCKED), "locked");
    p.kill();
    // The update never completed, so its change (-1) is not visible.
    assert_eq!(t.get_field("row", "score").unwrap(), Some(Value::Int(10)));
    let out = util::run(&["incr", &name, "row", "5"], Duration::from_secs(30));
    assert_eq!(out, "last=15");
}

#[test]
fn fault_kill_mid_rebuild_is_repaired_by_next_process() {
    let name = util::unique("rebuild");
    let (t, _cleanup) = util::create(&name, 100);
    for i in 0..60 {
        t.set(format!("k{i}"), &[("score", i.into())]).unwrap();
    }
    let p = Proc::spawn(&["die-mid-rebuild", &name]);
    assert_eq!(p.line(LOCKED), "locked");
    p.kill();
    // A reader in another process repairs the index and sees every row.
    let out = util::run(&["get", &name, "k59"], Duration::from_secs(30));
    assert!(out.starts_with("score=59 "), "{out}");
    for i in 0..60 {
        assert_eq!(
            t.get_field(format!("k{i}"), "score").unwrap(),
            Some(Value::Int(i)),
            "k{i}"
        );
    }
    assert_eq!(t.count(), 60);
    // The free list was rebuilt too: exactly 40 more rows fit.
    for i in 60..100 {
        t.set(format!("k{i}"), &[("score", i.into())]).unwrap();
    }
    assert!(t.set("k100", &[("score", 0.into())]).is_err());
    assert_eq!(t.iter().count(), 100);
}
