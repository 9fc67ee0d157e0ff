//! Atomic and Lock across processes; tables inherited through fork.

use std::time::Duration;

use crate::util;

#[test]
fn sync_atomic_wait_is_woken_by_another_process() {
    let out = util::run(&["atomic-wait"], Duration::from_secs(30));
    assert!(out.contains("code=0"), "{out}");
}

#[test]
fn sync_atomic_wait_times_out() {
    let out = util::run(&["atomic-timeout"], Duration::from_secs(30));
    assert!(out.contains("code=0"), "{out}");
    let ms: u64 = out
        .split_once("timed-out=")
        .and_then(|(_, r)| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!((100..5000).contains(&ms), "{out}");
}

#[test]
fn sync_lock_is_released_when_holder_is_killed() {
    let out = util::run(&["lock-kill"], Duration::from_secs(30));
    assert!(out.contains("relocked owner_died=true"), "{out}");
}

#[test]
fn sync_table_is_shared_by_forked_children() {
    let out = util::run(&["fork-incr", "4", "20000"], Duration::from_secs(120));
    assert_eq!(out, "total=80000 failed=0");
}
