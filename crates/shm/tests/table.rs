//! Values, limits and capacity; concurrent incr from 4 processes.

use std::time::Duration;

use rswoole_shm::{Column, Error, Table, Value, MAX_KEY_LEN};

use crate::util::{self, Proc};

fn table(rows: usize) -> Table {
    Table::builder(rows)
        .column("name", Column::Str(64))
        .column("score", Column::Int)
        .column("ratio", Column::Float)
        .build()
        .unwrap()
}

#[test]
fn table_boundary_values_roundtrip() {
    let t = table(16);
    let max_str = "x".repeat(64);
    let key63 = "k".repeat(MAX_KEY_LEN);
    for (key, score, ratio, name) in [
        ("min", i64::MIN, f64::NEG_INFINITY, ""),
        ("max", i64::MAX, f64::INFINITY, max_str.as_str()),
        ("nan", -1, f64::NAN, "\u{1F600} utf-8"),
        ("zero", 0, -0.0, "a"),
        ("tiny", 1, f64::MIN_POSITIVE, "a\0b"),
        (key63.as_str(), 42, f64::MAX, "long key"),
        ("", 7, 1.5, "empty key"),
    ] {
        t.set(
            key,
            &[
                ("score", score.into()),
                ("ratio", ratio.into()),
                ("name", name.into()),
            ],
        )
        .unwrap();
        let row = t.get(key).unwrap().unwrap();
        assert_eq!(row.int("score"), Some(score), "{key}");
        assert_eq!(
            row.float("ratio").unwrap().to_bits(),
            ratio.to_bits(),
            "{key}"
        );
        assert_eq!(row.bytes("name"), Some(name.as_bytes()), "{key}");
    }
    // Binary strings are kept as bytes.
    t.set("bin", &[("name", Value::Str(vec![0xff, 0, 0xfe]))])
        .unwrap();
    assert_eq!(
        t.get_field("bin", "name").unwrap(),
        Some(Value::Str(vec![0xff, 0, 0xfe]))
    );
    assert_eq!(t.count(), 8);
    assert_eq!(t.iter().count(), 8);
}

#[test]
fn table_errors_are_typed_and_change_nothing() {
    let t = table(4);
    t.set("k", &[("score", 1.into()), ("name", "ok".into())])
        .unwrap();
    let key64 = "k".repeat(MAX_KEY_LEN + 1);
    assert!(matches!(
        t.set(&key64, &[("score", 1.into())]),
        Err(Error::KeyTooLong { len: 64 })
    ));
    assert!(matches!(t.get(&key64), Err(Error::KeyTooLong { .. })));
    // A bad field anywhere in the list rejects the whole set.
    let too_long = "y".repeat(65);
    assert!(matches!(
        t.set(
            "k",
            &[("score", 2.into()), ("name", too_long.as_str().into())]
        ),
        Err(Error::StrTooLong {
            len: 65,
            max: 64,
            ..
        })
    ));
    assert!(matches!(
        t.set("k", &[("score", 3.into()), ("nope", 1.into())]),
        Err(Error::UnknownColumn { .. })
    ));
    assert!(matches!(
        t.set("k", &[("score", 1.5.into())]),
        Err(Error::TypeMismatch {
            expected: Column::Int,
            ..
        })
    ));
    assert!(matches!(
        t.incr("k", "name", 1),
        Err(Error::TypeMismatch { .. })
    ));
    assert!(matches!(
        t.incr_float("k", "score", 1.0),
        Err(Error::TypeMismatch { .. })
    ));
    assert!(matches!(
        t.get_field("k", "nope"),
        Err(Error::UnknownColumn { .. })
    ));
    let row = t.get("k").unwrap().unwrap();
    assert_eq!(row.int("score"), Some(1));
    assert_eq!(row.str("name"), Some("ok"));
    // Int into a Float column is accepted.
    t.set("k", &[("ratio", 2.into())]).unwrap();
    assert_eq!(t.get("k").unwrap().unwrap().float("ratio"), Some(2.0));
    assert!(Table::builder(0).column("a", Column::Int).build().is_err());
    assert!(Table::builder(1).build().is_err());
}

#[test]
fn table_holds_exactly_capacity_rows() {
    for n in [1, 2, 7, 64, 1000] {
        let t = table(n);
        for i in 0..n {
            t.set(format!("key-{i}"), &[("score", (i as i64).into())])
                .unwrap();
        }
        assert_eq!(t.count(), n);
        assert!(matches!(
            t.set("one-more", &[("score", 0.into())]),
            Err(Error::Full { capacity }) if capacity == n
        ));
        assert!(matches!(
            t.incr("one-more", "score", 1),
            Err(Error::Full { .. })
        ));
        // Updating existing rows still works when full.
        assert_eq!(t.incr("key-0", "score", 5).unwrap(), 5);
        for i in 0..n {
            let want = if i == 0 { 5 } else { i as i64 };
            assert_eq!(
                t.get_field(format!("key-{i}"), "score").unwrap(),
                Some(Value::Int(want))
            );
        }
        assert!(t.del("key-0").unwrap());
        assert!(!t.del("key-0").unwrap());
        t.set("one-more", &[("score", 9.into())]).unwrap();
        assert_eq!(t.count(), n);
        assert_eq!(t.iter().count(), n);
    }
}

#[test]
fn table_churn_keeps_capacity_and_contents() {
    // Many insert/delete rounds leave tombstones behind and force index
    // rebuilds; every live key must stay reachable.
    let n = 50;
    let t = table(n);
    for round in 0..200 {
        for i in 0..n {
            t.set(format!("r{round}-{i}"), &[("score", (i as i64).into())])
                .unwrap();
        }
        assert_eq!(t.count(), n);
        for i in 0..n {
            assert_eq!(
                t.get_field(format!("r{round}-{i}"), "score").unwrap(),
                Some(Value::Int(i as i64))
            );
            assert!(t.del(format!("r{round}-{i}")).unwrap());
        }
        assert_eq!(t.count(), 0);
    }
}

#[test]
fn table_concurrent_incr_from_four_processes() {
    let name = util::unique("incr");
    let (t, _cleanup) = util::create(&name, 64);
    let procs: Vec<Proc> = (0..4)
        .map(|_| Proc::spawn(&["incr", &name, "counter", "100000"]))
        .collect();
    // Read concurrently from this process while they run: the value never
    // goes backwards.
    let mut last = 0;
    for _ in 0..1000 {
        if let Some(v) = t.get_field("counter", "score").unwrap() {
            let v = v.as_int().unwrap();
            assert!(v >= last, "{v} < {last}");
            last = v;
        }
    }
    for p in procs {
        let (ok, out) = p.finish(Duration::from_secs(120));
        assert!(ok, "{out}");
    }
    assert_eq!(
        t.get_field("counter", "score").unwrap(),
        Some(Value::Int(400_000))
    );
    assert_eq!(t.count(), 1);
}

#[test]
fn table_values_cross_processes_bit_exact() {
    let name = util::unique("xproc");
    let (t, _cleanup) = util::create(&name, 8);
    let nan_bits = 0x7ff8_0000_0000_1234_u64;
    let long = "z".repeat(64);
    util::run(
        &[
            "set",
            &name,
            "key",
            &i64::MIN.to_string(),
            &format!("{nan_bits:x}"),
            &long,
        ],
        Duration::from_secs(30),
    );
    let row = t.get("key").unwrap().unwrap();
    assert_eq!(row.int("score"), Some(i64::MIN));
    assert_eq!(row.float("ratio").unwrap().to_bits(), nan_bits);
    assert_eq!(row.str("name"), Some(long.as_str()));
    t.set(
        "key2",
        &[("score", i64::MAX.into()), ("ratio", f64::INFINITY.into())],
    )
    .unwrap();
    let out = util::run(&["get", &name, "key2"], Duration::from_secs(30));
    assert_eq!(
        out,
        format!(
            "score={} ratio_bits={:016x} name_hex=",
            i64::MAX,
            f64::INFINITY.to_bits()
        )
    );
}
