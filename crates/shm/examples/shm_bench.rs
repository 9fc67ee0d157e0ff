//! Throughput of `Table` get/get_field/set/incr from 1 and 2 processes,
//! against a `Mutex<HashMap>` in one process, in the same run.
//!
//! ```text
//! cargo run --release -p rswoole-shm --example shm_bench [OPS_PER_RUN]
//! ```
//!
//! Not a test: it prints ops/s (best of three runs) and ratios for
//! BENCHMARKS.md. Each process
//! does OPS_PER_RUN (default 2,000,000) operations on keys picked
//! pseudo-randomly from `SHM_BENCH_KEYS` (default 10,000) existing rows with columns
//! `name str(64), score int, ratio float`.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rswoole_shm::{persistent, Column, Table, Value};

/// Number of rows used, `SHM_BENCH_KEYS` (default 10,000).
fn n_keys() -> usize {
    std::env::var("SHM_BENCH_KEYS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000)
}
const OPS: [&str; 4] = ["get", "get_field", "set", "incr"];

fn keys() -> Vec<String> {
    (0..n_keys()).map(|i| format!("user:{i:08}")).collect()
}

/// xorshift: a cheap, reproducible key order.
struct Rng(u64);

impl Rng {
    fn next(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

fn row(i: usize) -> [(&'static str, Value); 3] {
    [
        ("name", Value::from(format!("player number {i}"))),
        ("score", Value::Int(i as i64)),
        ("ratio", Value::Float(i as f64 / 7.0)),
    ]
}

/// Runs `ops` operations of kind `op` on `t`; returns ops/s.
fn run_table(t: &Table, op: &str, ops: usize, seed: u64) -> f64 {
    let keys = keys();
    let mut rng = Rng(seed);
    let fields = row(1);
    let mut sink = 0i64;
    let start = Instant::now();
    for _ in 0..ops {
        let k = &keys[rng.next(keys.len())];
        match op {
            "get" => sink += t.get(k).unwrap().map_or(0, |r| r.len() as i64),
            "get_field" => {
                sink += t
                    .get_field(k, "score")
                    .unwrap()
                    .and_then(|v| v.as_int())
                    .unwrap_or(0)
            }
            "set" => t.set(k, &fields).unwrap(),
            "incr" => sink += t.incr(k, "score", 1).unwrap(),
            _ => panic!("unknown op {op}"),
        }
    }
    let secs = start.elapsed().as_secs_f64();
    std::hint::black_box(sink);
    ops as f64 / secs
}

type Map = Mutex<HashMap<String, Vec<Value>>>;

fn run_map(m: &Map, op: &str, ops: usize, seed: u64) -> f64 {
    let keys = keys();
    let mut rng = Rng(seed);
    let fields: Vec<Value> = row(1).into_iter().map(|(_, v)| v).collect();
    let mut sink = 0i64;
    let start = Instant::now();
    for _ in 0..ops {
        let k = &keys[rng.next(keys.len())];
        match op {
            // Clone the row out, as Table::get returns an owned snapshot.
            "get" => {
                sink += m
                    .lock()
                    .unwrap()
                    .get(k.as_str())
                    .cloned()
                    .map_or(0, |r| r.len() as i64)
            }
            "get_field" => {
                sink += m
                    .lock()
                    .unwrap()
                    .get(k.as_str())
                    .and_then(|r| r[1].as_int())
                    .unwrap_or(0)
            }
            "set" => {
                if let Some(r) = m.lock().unwrap().get_mut(k.as_str()) {
                    r.clone_from(&fields);
                }
            }
            "incr" => {
                if let Some(r) = m.lock().unwrap().get_mut(k.as_str()) {
                    if let Value::Int(v) = &mut r[1] {
                        *v += 1;
                        sink += *v;
                    }
                }
            }
            _ => panic!("unknown op {op}"),
        }
    }
    let secs = start.elapsed().as_secs_f64();
    std::hint::black_box(sink);
    ops as f64 / secs
}

fn mops(x: f64) -> String {
    format!("{:.2}", x / 1e6)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--worker") {
        // --worker OP NAME OPS SEED
        let t = Table::open(&args[3]).expect("open bench table");
        let ops: usize = args[4].parse().expect("OPS");
        let seed: u64 = args[5].parse().expect("SEED");
        println!("{}", run_table(&t, &args[2], ops, seed));
        return;
    }
    let ops: usize = args
        .get(1)
        .map_or(2_000_000, |s| s.parse().expect("OPS_PER_RUN"));
    let name = format!("bench-{}", std::process::id());
    let _ = persistent::remove(&name);
    let t = Table::builder(n_keys() * 2)
        .column("name", Column::Str(64))
        .column("score", Column::Int)
        .column("ratio", Column::Float)
        .persistent(&name)
        .build()
        .expect("build bench table");
    let map: Arc<Map> = Arc::new(Mutex::new(HashMap::new()));
    for (i, k) in keys().iter().enumerate() {
        let r = row(i);
        t.set(k, &r).unwrap();
        map.lock()
            .unwrap()
            .insert(k.clone(), r.into_iter().map(|(_, v)| v).collect());
    }
    let exe = std::env::current_exe().expect("current_exe");
    println!(
        "rswoole-shm bench: {ops} ops per process per run, {} keys, {} cores, table {} KiB",
        n_keys(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        t.memory_size() / 1024
    );
    println!(
        "{:<10} {:>12} {:>12} {:>8} {:>14} {:>8} {:>14}",
        "op", "map 1 thr", "shm 1 proc", "shm/map", "shm 2 procs", "scale", "map 2 thr"
    );
    println!(
        "{:<10} {:>12} {:>12} {:>8} {:>14} {:>8} {:>14}",
        "", "Mops/s", "Mops/s", "", "Mops/s (sum)", "2p/1p", "Mops/s (sum)"
    );
    for op in OPS {
        let base = best(|| run_map(&map, op, ops, 1));
        let one = best(|| run_table(&t, op, ops, 1));
        let two = best(|| two_procs(&exe, op, &name, ops));
        let threads = best(|| {
            std::thread::scope(|s| {
                let hs: Vec<_> = (0..2)
                    .map(|i| {
                        let map = &map;
                        s.spawn(move || run_map(map, op, ops, i + 2))
                    })
                    .collect();
                hs.into_iter().map(|h| h.join().expect("thread")).sum()
            })
        });
        println!(
            "{:<10} {:>12} {:>12} {:>8.2} {:>14} {:>8.2} {:>14}",
            op,
            mops(base),
            mops(one),
            one / base,
            mops(two),
            two / one,
            mops(threads)
        );
    }
    drop(t);
    let _ = persistent::remove(&name);
}

/// Best of three runs (the machine may be shared; the best run is the one
/// least disturbed).
fn best(mut f: impl FnMut() -> f64) -> f64 {
    (0..3).map(|_| f()).fold(0.0, f64::max)
}

/// Two worker processes on the same persistent table at once; summed ops/s.
fn two_procs(exe: &std::path::Path, op: &str, name: &str, ops: usize) -> f64 {
    let children: Vec<_> = (0..2)
        .map(|i| {
            Command::new(exe)
                .args(["--worker", op, name, &ops.to_string(), &(i + 2).to_string()])
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn worker")
        })
        .collect();
    children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().expect("worker");
            assert!(out.status.success(), "worker failed");
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse::<f64>()
                .expect("ops/s")
        })
        .sum()
}
