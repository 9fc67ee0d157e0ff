//! A configurable task-worker server for the integration tests (tests/tasks.rs).
//!
//! Line commands (one per line): `rt` (struct round trip by task_wait), `burst <n> [us]` (n
//! tasks by `task`, each taking `us` µs in the task worker, every result checked in on_finish:
//! delivered once, to this worker; failures counted), `waits <n> [us]` (n concurrent
//! `task_wait`s, each result checked against its task; a full queue is waited out, as in
//! `burst`), `wait <ms> <timeout_ms>`, `slow <ms>` (a task; the reply comes from on_finish), `fill <n> <ms>` (n
//! tasks to task worker 0 until the queue is full), `big <MiB>` (a payload of that size both
//! ways), `timer` (tick/after/clear in the worker), `ttimer` (timers in a task worker), `msg`
//! (task worker → worker send_message).

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

use clap::Parser;
use rswoole::{Bytes, ConnId, Framing, Handle, Server, Settings, TaskError};
use serde::{Deserialize, Serialize};

#[derive(Parser, Debug)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:9501")]
    addr: String,
    #[arg(long, default_value_t = 2)]
    worker_num: usize,
    #[arg(long, default_value_t = 2)]
    task_worker_num: usize,
    #[arg(long, default_value_t = rswoole::DEFAULT_TASK_QUEUE_SIZE)]
    task_queue_size: usize,
    #[arg(long)]
    retry_on_crash: bool,
    /// Write the master's pid here and serve the status socket (`rswoole reload --task`).
    #[arg(long)]
    pid_file: Option<std::path::PathBuf>,
    /// TLS on the listener: `--cert FILE --key FILE [--client-ca FILE]`.
    #[command(flatten)]
    tls: rswoole::cli::TlsArgs,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Point {
    x: i64,
    y: i64,
    name: String,
}

/// Bytes serialized as one byte string (fast with postcard).
#[derive(Debug, PartialEq)]
struct Blob(Vec<u8>);

impl Serialize for Blob {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Blob, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Blob;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Blob, E> {
                Ok(Blob(v.to_vec()))
            }
            fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Blob, E> {
                Ok(Blob(v))
            }
        }
        d.deserialize_byte_buf(V)
    }
}

#[derive(Serialize, Deserialize, Debug)]
enum Job {
    Point(Point),
    Burst {
        burst: u64,
        seq: u64,
        worker: usize,
        pid: u32,
        us: u64,
    },
    Sleep {
        fd: u64,
        ms: u64,
    },
    Big(Blob),
    Timers,
    Msg {
        fd: u64,
    },
}

#[derive(Serialize, Deserialize, Debug)]
enum Reply {
    Point(Point),
    Burst {
        burst: u64,
        seq: u64,
        worker: usize,
        pid: u32,
    },
    Slept {
        fd: u64,
        ms: u64,
    },
    Big {
        sum: u64,
        data: Blob,
    },
    Unit,
}

#[derive(Default)]
struct BurstState {
    fd: u64,
    n: u64,
    seen: HashSet<u64>,
    dup: u64,
    wrong: u64,
    failed: u64,
}

thread_local! {
    static BURSTS: RefCell<HashMap<u64, BurstState>> = RefCell::new(HashMap::new());
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

fn checksum(d: &[u8]) -> u64 {
    d.iter()
        .enumerate()
        .fold(0u64, |a, (i, &b)| a.wrapping_add((i as u64 + 1) * b as u64))
}

async fn run_task(srv: rswoole::TaskHandle, job: Job) -> Reply {
    match job {
        Job::Point(p) => Reply::Point(Point {
            x: p.x * 10,
            y: p.y * 10,
            name: format!("{}!", p.name),
        }),
        Job::Burst {
            burst,
            seq,
            worker,
            pid,
            us,
        } => {
            std::thread::sleep(Duration::from_micros(us));
            Reply::Burst {
                burst,
                seq,
                worker,
                pid,
            }
        }
        Job::Sleep { fd, ms } => {
            println!(
                "task-start pid={} tw={} ms={ms}",
                std::process::id(),
                srv.task_worker_id()
            );
            use std::io::Write;
            let _ = std::io::stdout().flush();
            std::thread::sleep(Duration::from_millis(ms));
            Reply::Slept { fd, ms }
        }
        Job::Big(b) => {
            let sum = checksum(&b.0);
            let mut data = b.0;
            data.reverse();
            Reply::Big {
                sum,
                data: Blob(data),
            }
        }
        Job::Timers => {
            let tick_count = std::rc::Rc::new(std::cell::Cell::new(0u32));
            let c = tick_count.clone();
            srv.tick(Duration::from_millis(10), move |_srv| {
                c.set(c.get() + 1);
                async {}
            });
            srv.after(Duration::from_millis(30), move |_srv| async move {
                println!("tw-after fired ticks>0={}", tick_count.get() > 0);
            });
            let ghost = srv.after(Duration::from_millis(20), |_srv| async {
                println!("tw-ghost fired");
            });
            assert!(srv.clear(ghost).is_ok());
            Reply::Unit
        }
        Job::Msg { fd } => {
            let r = srv.send_message(0, format!("{fd}:hello from task worker"));
            println!("tw-msg sent {:?}", r.is_ok());
            Reply::Unit
        }
    }
}

/// The burst's report once every task of it has ended (answered or failed).
fn burst_line(st: &BurstState, worker: usize) -> Option<(u64, String)> {
    (st.seen.len() as u64 + st.failed == st.n).then(|| {
        let line = format!(
            "burst ok={} dup={} wrong={} failed={} w{worker}",
            st.seen.len(),
            st.dup,
            st.wrong,
            st.failed
        );
        (st.fd, line)
    })
}

fn reply(srv: &Handle, fd: u64, s: String) {
    let _ = srv.send(ConnId(fd), s + "\n");
}

async fn on_line(srv: Handle, fd: ConnId, line: String) {
    let mut it = line.split_whitespace();
    let cmd = it.next().unwrap_or("");
    let nums: Vec<u64> = it.filter_map(|s| s.parse().ok()).collect();
    let arg = |i: usize| nums.get(i).copied().unwrap_or(0);
    let long = Duration::from_secs(60);
    match cmd {
        "rt" => {
            let p = Point {
                x: 1,
                y: -2,
                name: "p".into(),
            };
            let r: Result<Reply, _> = srv.task_wait(Job::Point(p), long).await;
            reply(&srv, fd.0, format!("rt {r:?}"));
        }
        "burst" => {
            let n = arg(0);
            let burst = fd.0;
            BURSTS.with(|b| {
                b.borrow_mut().insert(
                    burst,
                    BurstState {
                        fd: fd.0,
                        n,
                        ..Default::default()
                    },
                )
            });
            let mut full = 0u64;
            for seq in 0..n {
                let mut job = Job::Burst {
                    burst,
                    seq,
                    worker: srv.worker_id(),
                    pid: std::process::id(),
                    us: arg(1),
                };
                loop {
                    match srv.task(job) {
                        Ok(_) => break,
                        Err(TaskError::Full(back)) => {
                            full += 1;
                            job = back;
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        }
                        Err(e) => {
                            reply(&srv, fd.0, format!("burst error {e}"));
                            return;
                        }
                    }
                }
            }
            println!("burst {burst} sent {n} (full {full} times)");
        }
        "waits" => {
            let (n, us) = (arg(0), arg(1));
            let calls: Vec<_> = (0..n)
                .map(|seq| {
                    let srv = srv.clone();
                    tokio::task::spawn_local(async move {
                        let mut job = Job::Burst {
                            burst: 0,
                            seq,
                            worker: srv.worker_id(),
                            pid: std::process::id(),
                            us,
                        };
                        let r: Result<Reply, _> = loop {
                            match srv.task_wait(job, long).await {
                                Err(TaskError::Full(back)) => {
                                    job = back;
                                    tokio::time::sleep(Duration::from_millis(1)).await;
                                }
                                r => break r,
                            }
                        };
                        match r {
                            Ok(Reply::Burst { seq: s, .. }) if s == seq => None,
                            other => Some(format!("{other:?}")),
                        }
                    })
                })
                .collect();
            let (mut ok, mut first_err) = (0, None);
            for c in calls {
                match c.await {
                    Ok(None) => ok += 1,
                    Ok(Some(e)) => {
                        first_err.get_or_insert(e);
                    }
                    Err(e) => {
                        first_err.get_or_insert(format!("{e}"));
                    }
                }
            }
            if let Some(e) = first_err {
                println!("waits error: {e}");
            }
            reply(&srv, fd.0, format!("waits ok={ok} err={}", n - ok));
        }
        "wait" => {
            let job = Job::Sleep {
                fd: fd.0,
                ms: arg(0),
            };
            let r: Result<Reply, _> = srv.task_wait(job, Duration::from_millis(arg(1))).await;
            match r {
                Ok(_) => reply(&srv, fd.0, "wait ok".into()),
                Err(TaskError::Timeout(Job::Sleep { ms, .. })) => {
                    reply(&srv, fd.0, format!("wait timeout payload ms={ms}"))
                }
                Err(e) => reply(&srv, fd.0, format!("wait error {e:?}")),
            }
        }
        "slow" => {
            if let Err(e) = srv.task(Job::Sleep {
                fd: fd.0,
                ms: arg(0),
            }) {
                reply(&srv, fd.0, format!("slow error {e:?}"));
            }
        }
        "fill" => {
            let (n, ms) = (arg(0), arg(1));
            for k in 0..n {
                match srv.task_to(0, Job::Sleep { fd: 0, ms }) {
                    Ok(_) => {}
                    Err(TaskError::Full(Job::Sleep { ms, .. })) => {
                        reply(&srv, fd.0, format!("full at {k} payload ms={ms}"));
                        return;
                    }
                    Err(e) => {
                        reply(&srv, fd.0, format!("fill error {e:?}"));
                        return;
                    }
                }
            }
            reply(&srv, fd.0, "fill nofull".into());
        }
        "big" => {
            let n = arg(0) as usize * 1024 * 1024;
            let data = pattern(n);
            let sum = checksum(&data);
            let r: Result<Reply, _> = srv.task_wait(Job::Big(Blob(data)), long).await;
            match r {
                Ok(Reply::Big { sum: s, data }) => {
                    let mut back = data.0;
                    back.reverse();
                    let same = back.len() == n && checksum(&back) == sum;
                    reply(
                        &srv,
                        fd.0,
                        format!("big len={} sum_ok={} echo_ok={same}", back.len(), s == sum),
                    );
                }
                other => reply(&srv, fd.0, format!("big error {other:?}")),
            }
        }
        "timer" => {
            let ticks = std::rc::Rc::new(std::cell::Cell::new(0u32));
            let fired = std::rc::Rc::new(std::cell::Cell::new(0u32));
            let ghost = std::rc::Rc::new(std::cell::Cell::new(0u32));
            let id = std::rc::Rc::new(std::cell::Cell::new(None));
            let (t, idc) = (ticks.clone(), id.clone());
            let tid = srv.tick(Duration::from_millis(20), move |s| {
                t.set(t.get() + 1);
                if t.get() == 5 {
                    if let Some(i) = idc.get() {
                        let _ = s.clear(i);
                    }
                }
                async {}
            });
            id.set(Some(tid));
            let f = fired.clone();
            srv.after(Duration::from_millis(30), move |_srv| async move {
                f.set(f.get() + 1)
            });
            let g = ghost.clone();
            let gid = srv.after(
                Duration::from_millis(50),
                move |_srv| async move { g.set(1) },
            );
            let cleared = srv.clear(gid).is_ok();
            tokio::time::sleep(Duration::from_millis(400)).await;
            reply(
                &srv,
                fd.0,
                format!(
                    "timer ticks={} after={} cleared={cleared} ghost={} again={}",
                    ticks.get(),
                    fired.get(),
                    ghost.get(),
                    srv.clear(tid).is_ok()
                ),
            );
        }
        "ttimer" => {
            let r: Result<Reply, _> = srv.task_wait(Job::Timers, long).await;
            reply(&srv, fd.0, format!("ttimer {}", r.is_ok()));
        }
        "msg" => {
            let r: Result<Reply, _> = srv.task_wait(Job::Msg { fd: fd.0 }, long).await;
            if r.is_err() {
                reply(&srv, fd.0, format!("msg error {r:?}"));
            }
        }
        "whoami" => reply(&srv, fd.0, format!("w{}", srv.worker_id())),
        _ => reply(&srv, fd.0, format!("unknown {line}")),
    }
}

fn main() -> rswoole::Result<()> {
    let a = Args::parse();
    let mut server = Server::bind(&a.addr)?;
    server.set(
        Settings::default()
            .tls(a.tls.settings())
            .worker_num(a.worker_num)
            .task_worker_num(a.task_worker_num)
            .task_queue_size(a.task_queue_size)
            .task_retry_on_crash(a.retry_on_crash)
            .pid_file(a.pid_file)
            .framing(Framing::Eof {
                eof: b"\n".to_vec(),
                split: true,
            }),
    );
    server.on_task(|srv, task| async move {
        let job: Job = task.data().expect("a Job");
        run_task(srv, job).await
    });
    server.on_finish(|srv, _id, result| async move {
        match result.get::<Reply>() {
            Ok(Reply::Burst {
                burst,
                seq,
                worker,
                pid,
            }) => {
                let done = BURSTS.with(|b| {
                    let mut b = b.borrow_mut();
                    let st = b.get_mut(&burst)?;
                    if worker != srv.worker_id() || pid != std::process::id() {
                        st.wrong += 1;
                    }
                    if !st.seen.insert(seq) {
                        st.dup += 1;
                    }
                    burst_line(st, srv.worker_id())
                });
                if let Some((fd, s)) = done {
                    reply(&srv, fd, s);
                }
            }
            Ok(Reply::Slept { fd, ms }) if fd != 0 => reply(&srv, fd, format!("slow done {ms}")),
            Ok(_) => {}
            Err(e) => match result.payload::<Job>() {
                Ok(Job::Sleep { fd, ms }) if fd != 0 => {
                    reply(&srv, fd, format!("slow error {e:?} ms={ms}"))
                }
                Ok(Job::Burst { burst, .. }) => {
                    println!("burst {burst} task failed: {e:?}");
                    let done = BURSTS.with(|b| {
                        let mut b = b.borrow_mut();
                        let st = b.get_mut(&burst)?;
                        st.failed += 1;
                        burst_line(st, srv.worker_id())
                    });
                    if let Some((fd, s)) = done {
                        reply(&srv, fd, s);
                    }
                }
                _ => {}
            },
        }
    });
    server.on_pipe_message(|srv, from, data: Bytes| async move {
        let s = String::from_utf8_lossy(&data).into_owned();
        if let Some((fd, text)) = s.split_once(':') {
            if let Ok(fd) = fd.parse() {
                reply(&srv, fd, format!("msg from={from} {text}"));
            }
        }
    });
    server.on_receive(|srv, ev| async move {
        let line = String::from_utf8_lossy(&ev.data).trim().to_string();
        on_line(srv, ev.fd, line).await;
    });
    server.start()
}
