//! Task round-trip benchmark: one worker sends 100-byte tasks to 2 task workers, which send
//! them back. Reports the latency of one `task_wait` at a time (p50/p99) and the throughput
//! with many tasks in flight, then shuts the server down.
//!
//! ```text
//! cargo run --release --example task_bench -- [--tasks 20000] [--inflight 128] [--size 100]
//! ```

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use clap::Parser;
use rswoole::{Server, Settings};

#[derive(Parser, Debug, Clone)]
struct Args {
    /// Round trips measured one at a time (after 2,000 of warm-up).
    #[arg(long, default_value_t = 20_000)]
    tasks: usize,
    /// Tasks in flight in the throughput phase.
    #[arg(long, default_value_t = 128)]
    inflight: usize,
    /// Payload bytes.
    #[arg(long, default_value_t = 100)]
    size: usize,
    #[arg(long, default_value_t = 2)]
    task_worker_num: usize,
    /// TLS on the listener: `--cert FILE --key FILE [--client-ca FILE]`.
    #[command(flatten)]
    tls: rswoole::cli::TlsArgs,
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() -> rswoole::Result<()> {
    let a = Args::parse();
    let mut server = Server::bind("127.0.0.1:0")?;
    server.set(
        Settings::default()
            .tls(a.tls.settings())
            .worker_num(1)
            .task_worker_num(a.task_worker_num),
    );
    server.on_receive(|_srv, _ev| async {});
    server.on_task(|_srv, task| async move { task.raw().to_vec() });
    let args = a.clone();
    server.on_worker_start(move |srv, _id| {
        let a = args.clone();
        async move {
            tokio::task::spawn_local(async move {
                let payload = vec![7u8; a.size];
                let t = Duration::from_secs(10);
                for _ in 0..2000 {
                    let _: Vec<u8> = srv.task_wait(payload.clone(), t).await.expect("task");
                }
                let mut lat = Vec::with_capacity(a.tasks);
                for _ in 0..a.tasks {
                    let t0 = Instant::now();
                    let _: Vec<u8> = srv.task_wait(payload.clone(), t).await.expect("task");
                    lat.push(t0.elapsed());
                }
                lat.sort();
                let total = a.tasks * 5;
                let done = Rc::new(RefCell::new(0usize));
                let t0 = Instant::now();
                let mut loops = Vec::new();
                for _ in 0..a.inflight {
                    let (srv, payload, done) = (srv.clone(), payload.clone(), done.clone());
                    let per = total / a.inflight;
                    loops.push(tokio::task::spawn_local(async move {
                        for _ in 0..per {
                            let _: Vec<u8> =
                                srv.task_wait(payload.clone(), t).await.expect("task");
                            *done.borrow_mut() += 1;
                        }
                    }));
                }
                for l in loops {
                    let _ = l.await;
                }
                let el = t0.elapsed();
                let n = *done.borrow();
                println!(
                    "task round trip ({} B payload, {} task workers): p50 {:.1} µs, p99 {:.1} µs, mean {:.1} µs over {} tasks",
                    a.size,
                    a.task_worker_num,
                    pct(&lat, 0.50).as_secs_f64() * 1e6,
                    pct(&lat, 0.99).as_secs_f64() * 1e6,
                    lat.iter().sum::<Duration>().as_secs_f64() * 1e6 / lat.len() as f64,
                    lat.len()
                );
                println!(
                    "task throughput ({} in flight): {:.0} tasks/s ({n} tasks in {:.2} s)",
                    a.inflight,
                    n as f64 / el.as_secs_f64(),
                    el.as_secs_f64()
                );
                srv.shutdown();
            });
        }
    });
    server.start()
}
