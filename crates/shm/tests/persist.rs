//! Persistent tables outlive their processes; a changed layout is an error.

use std::time::Duration;

use rswoole_shm::{persistent, Column, Error, Table, Value};

use crate::util::{self, Cleanup};

#[test]
fn persist_survives_exit_and_reattach() {
    let name = util::unique("survive");
    let _cleanup = Cleanup(name.clone());
    util::run(&["create", &name, "32"], Duration::from_secs(30));
    util::run(
        &[
            "set",
            &name,
            "a",
            "11",
            &format!("{:x}", 1.25f64.to_bits()),
            "alpha",
        ],
        Duration::from_secs(30),
    );
    util::run(&["incr", &name, "a", "3"], Duration::from_secs(30));
    // Both writers have exited; the data is still there.
    assert!(persistent::list().unwrap().contains(&name));
    assert!(persistent::path(&name).exists());
    let t = Table::open(&name).unwrap();
    let row = t.get("a").unwrap().unwrap();
    assert_eq!(row.int("score"), Some(14));
    assert_eq!(row.float("ratio"), Some(1.25));
    assert_eq!(row.str("name"), Some("alpha"));
    let info = persistent::info(&name).unwrap();
    assert_eq!((info.count, info.capacity), (1, 32));
    assert_eq!(
        info.columns,
        vec![
            ("name".to_owned(), Column::Str(64)),
            ("score".to_owned(), Column::Int),
            ("ratio".to_owned(), Column::Float),
        ]
    );
    assert_eq!(info.memory_size, t.memory_size());
    // Re-building with the same layout attaches to the same rows.
    let (again, _c) = util::create(&name, 32);
    assert_eq!(again.get_field("a", "score").unwrap(), Some(Value::Int(14)));
    drop((t, again));
    persistent::remove(&name).unwrap();
    assert!(matches!(Table::open(&name), Err(Error::NotFound { .. })));
    assert!(matches!(
        persistent::remove(&name),
        Err(Error::NotFound { .. })
    ));
}

#[test]
fn persist_layout_mismatch_is_an_error() {
    let name = util::unique("layout");
    let (t, _cleanup) = util::create(&name, 16);
    t.set("k", &[("score", 5.into())]).unwrap();
    let other_columns = Table::builder(16)
        .column("name", Column::Str(32))
        .column("score", Column::Int)
        .column("ratio", Column::Float)
        .persistent(&name)
        .build();
    match other_columns {
        Err(Error::LayoutMismatch {
            expected, found, ..
        }) => {
            assert!(expected.contains("str(32)"), "{expected}");
            assert!(found.contains("str(64)"), "{found}");
        }
        other => panic!("expected LayoutMismatch, got {other:?}"),
    }
    let other_rows = Table::builder(17)
        .column("name", Column::Str(64))
        .column("score", Column::Int)
        .column("ratio", Column::Float)
        .persistent(&name)
        .build();
    assert!(
        matches!(other_rows, Err(Error::LayoutMismatch { .. })),
        "{other_rows:?}"
    );
    // The data was not touched.
    assert_eq!(t.get_field("k", "score").unwrap(), Some(Value::Int(5)));
}

#[test]
fn persist_rejects_foreign_and_unfinished_segments() {
    let name = util::unique("foreign");
    let _cleanup = Cleanup(name.clone());
    std::fs::write(persistent::path(&name), vec![0x55u8; 8192]).unwrap();
    assert!(matches!(Table::open(&name), Err(Error::Corrupt { .. })));
    // An empty segment (its creator died before sizing it) cannot be
    // opened, but building reinitialises it.
    std::fs::write(persistent::path(&name), b"").unwrap();
    assert!(matches!(Table::open(&name), Err(Error::Corrupt { .. })));
    let (t, _c) = util::create(&name, 4);
    t.set("k", &[("score", 1.into())]).unwrap();
    assert_eq!(Table::open(&name).unwrap().count(), 1);
    assert!(matches!(
        Table::open("../etc/passwd"),
        Err(Error::InvalidName { .. })
    ));
}
