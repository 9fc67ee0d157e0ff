//! Helper process for the rswoole-shm integration tests (and a demo of the
//! fork model). Every subcommand works on a persistent table whose name is
//! given, with the layout `name str(64), score int, ratio float`, except the
//! `fork-*`, `atomic-*` and `lock-*` ones, which fork their own children
//! (this process is single-threaded, so forking is sound).
//!
//! ```text
//! shm_stress create NAME ROWS
//! shm_stress set NAME KEY SCORE RATIO_BITS_HEX STR
//! shm_stress get NAME KEY             prints `score=.. ratio_bits=.. name_hex=..` or `none`
//! shm_stress incr NAME KEY N          N x incr(KEY, score, 1)
//! shm_stress die-mid-write NAME KEY   row lock held, inactive buffer torn, sleeps
//! shm_stress die-mid-rebuild NAME     table lock held, index half rebuilt, sleeps
//! shm_stress hold-update NAME KEY     inside Table::update (row lock held), sleeps
//! shm_stress fork-incr WORKERS N      anonymous table built before fork; prints the total
//! shm_stress atomic-wait              child waits, parent wakes it; prints `woken MS`
//! shm_stress atomic-timeout           child waits 100 ms unwoken; prints `timed-out MS`
//! shm_stress lock-kill                child holds a Lock and is SIGKILLed; parent locks
//! ```
//!
//! Anything that prints `locked` then sleeps is meant to be killed by the
//! test that started it.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use rswoole_shm::{Atomic, Column, Lock, Table, Value};

fn usage() -> ExitCode {
    eprintln!("usage: see the header of examples/shm_stress.rs");
    ExitCode::from(2)
}

/// Forks; runs `child` in the child and exits with its code. Returns the
/// child's pid in the parent.
#[allow(unsafe_code)]
fn fork(child: impl FnOnce() -> i32) -> rustix::process::Pid {
    // SAFETY: this helper process never starts a thread, so the child is a
    // complete copy of a single-threaded process and may do anything.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let code = child();
        std::process::exit(code);
    }
    rustix::process::Pid::from_raw(pid).expect("fork returned a positive pid")
}

/// Waits for `pid`; returns its exit code (or 128 + signal).
fn wait(pid: rustix::process::Pid) -> i32 {
    let (_, status) = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty())
        .expect("waitpid")
        .expect("child status");
    status
        .exit_status()
        .or_else(|| status.terminating_signal().map(|s| 128 + s))
        .unwrap_or(-1)
}

fn open(name: &str) -> Table {
    Table::open(name).unwrap_or_else(|e| panic!("open {name}: {e}"))
}

fn run(args: &[String]) -> Result<ExitCode, rswoole_shm::Error> {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    match a.as_slice() {
        ["create", name, rows] => {
            Table::builder(rows.parse().expect("ROWS"))
                .column("name", Column::Str(64))
                .column("score", Column::Int)
                .column("ratio", Column::Float)
                .persistent(*name)
                .build()?;
            println!("ok");
        }
        ["set", name, key, score, ratio_bits, s] => {
            let ratio = f64::from_bits(u64::from_str_radix(ratio_bits, 16).expect("RATIO hex"));
            open(name).set(
                key,
                &[
                    ("score", Value::Int(score.parse().expect("SCORE"))),
                    ("ratio", Value::Float(ratio)),
                    ("name", Value::from(*s)),
                ],
            )?;
            println!("ok");
        }
        ["get", name, key] => match open(name).get(key)? {
            None => println!("none"),
            Some(row) => {
                let hex: String = row
                    .bytes("name")
                    .unwrap_or_default()
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                println!(
                    "score={} ratio_bits={:016x} name_hex={hex}",
                    row.int("score").unwrap_or_default(),
                    row.float("ratio").unwrap_or_default().to_bits()
                );
            }
        },
        ["incr", name, key, n] => {
            let t = open(name);
            let n: u64 = n.parse().expect("N");
            let mut last = 0;
            for _ in 0..n {
                last = t.incr(key, "score", 1)?;
            }
            println!("last={last}");
        }
        ["die-mid-write", name, key] => {
            open(name).__die_mid_row_write(key, 0xdead_beef_dead_beef)?;
        }
        ["die-mid-rebuild", name] => {
            open(name).__die_mid_rebuild()?;
        }
        ["hold-update", name, key] => {
            open(name).update(key, |row| {
                let _ = row.set("score", -1);
                println!("locked");
                loop {
                    std::thread::sleep(Duration::from_secs(3600));
                }
            })?;
        }
        ["fork-incr", workers, n] => {
            let workers: usize = workers.parse().expect("WORKERS");
            let n: i64 = n.parse().expect("N");
            let t = Table::builder(16).column("hits", Column::Int).build()?;
            let pids: Vec<_> = (0..workers)
                .map(|_| {
                    let t = t.clone();
                    fork(move || {
                        for _ in 0..n {
                            if t.incr("total", "hits", 1).is_err() {
                                return 1;
                            }
                        }
                        0
                    })
                })
                .collect();
            let failed = pids.into_iter().map(wait).filter(|c| *c != 0).count();
            let total = t.get_field("total", "hits")?.and_then(|v| v.as_int());
            println!("total={} failed={failed}", total.unwrap_or(-1));
        }
        ["atomic-wait"] => {
            let a = Atomic::new(0)?;
            let child_a = a.clone();
            let start = Instant::now();
            let pid = fork(move || {
                if child_a.wait(Duration::from_secs(10)) {
                    0
                } else {
                    3
                }
            });
            std::thread::sleep(Duration::from_millis(200));
            // If the child is not asleep yet, the wakeup stays pending (value
            // 1) and its wait consumes it at once.
            a.wakeup(1);
            let code = wait(pid);
            println!("woken={} code={code}", start.elapsed().as_millis());
            return Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)));
        }
        ["atomic-timeout"] => {
            let a = Atomic::new(0)?;
            let child_a = a.clone();
            let start = Instant::now();
            let pid = fork(move || {
                if child_a.wait(Duration::from_millis(100)) {
                    3
                } else {
                    0
                }
            });
            let code = wait(pid);
            println!("timed-out={} code={code}", start.elapsed().as_millis());
            return Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)));
        }
        ["lock-kill"] => {
            let lock = Lock::new()?;
            let held = Atomic::new(0)?;
            let (child_lock, child_held) = (lock.clone(), held.clone());
            let pid = fork(move || {
                let _g = child_lock.lock().expect("child lock");
                child_held.set(1);
                loop {
                    std::thread::sleep(Duration::from_secs(3600));
                }
            });
            let deadline = Instant::now() + Duration::from_secs(10);
            while held.get() != 1 {
                assert!(Instant::now() < deadline, "child never took the lock");
                std::thread::sleep(Duration::from_millis(1));
            }
            assert!(
                lock.try_lock()?.is_none(),
                "lock must be busy while the child holds it"
            );
            rustix::process::kill_process(pid, rustix::process::Signal::KILL).expect("kill child");
            let code = wait(pid);
            let start = Instant::now();
            let guard = lock.lock_timeout(Duration::from_secs(5))?;
            let Some(guard) = guard else {
                println!("deadlocked");
                return Ok(ExitCode::from(1));
            };
            println!(
                "relocked owner_died={} after_ms={} child_code={code}",
                guard.previous_owner_died(),
                start.elapsed().as_millis()
            );
        }
        _ => return Ok(usage()),
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(code) => code,
        Err(e) => {
            println!("error: {e}");
            eprintln!("error: {e:?}");
            ExitCode::from(1)
        }
    }
}
