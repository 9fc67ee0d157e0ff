//! Task workers (seed §2–§4): slow synchronous jobs run off the event loop.
//!
//! Line protocol on 127.0.0.1:9501: `job <ms>\n` hands a job that sleeps `<ms>` milliseconds to
//! a task worker and replies `done <ms>\n` when `on_finish` fires; `ping\n` replies `pong\n` at
//! once, however many jobs are running. Flags: see `rswoole::cli::ExampleArgs`
//! (`--task-worker-num` defaults to 2 here).
//!
//! ```text
//! cargo run --example tasks -- --worker-num 2
//! printf 'job 500\nping\n' | nc 127.0.0.1 9501     # pong at once, done 500 after ~0.5 s
//! ```

use std::time::Duration;

use rswoole::cli::ExampleArgs;
use rswoole::{ConnId, Framing, Server};
use serde::{Deserialize, Serialize};

/// What a worker hands to a task worker.
#[derive(Serialize, Deserialize, Debug)]
struct Job {
    /// The connection to answer.
    fd: u64,
    /// How long the job takes.
    ms: u64,
}

fn main() -> rswoole::Result<()> {
    let args = ExampleArgs::parse_or_exit("127.0.0.1", 9501);
    let mut settings = args.settings();
    if settings.task_worker_num == 0 {
        settings.task_worker_num = 2;
    }
    settings.framing = Framing::Eof {
        eof: b"\n".to_vec(),
        split: true,
    };
    let mut server = Server::bind(&args.addr())?;
    server.set(settings);
    server.on_task(|srv, task| async move {
        let job: Job = task.data().map_err(|e| e.to_string())?;
        // Synchronous work is fine in a task worker: it holds only this process.
        std::thread::sleep(Duration::from_millis(job.ms));
        println!("task worker {} did job {:?}", srv.task_worker_id(), job);
        Ok::<Job, String>(job)
    });
    server.on_finish(|srv, _id, result| async move {
        match result.get::<Result<Job, String>>() {
            Ok(Ok(job)) => srv
                .send(ConnId(job.fd), format!("done {}\n", job.ms))
                .map_err(|e| e.to_string()),
            Ok(Err(e)) => Err(format!("job failed: {e}")),
            Err(e) => {
                // The task worker died, or the job failed: tell the client, nothing is lost.
                let job: Option<Job> = result.payload().ok();
                if let Some(job) = job {
                    let _ = srv.send(ConnId(job.fd), format!("error {e}\n"));
                }
                Err(e.to_string())
            }
        }
    });
    server.on_receive(|srv, ev| async move {
        let line = String::from_utf8_lossy(&ev.data);
        let line = line.trim();
        if line == "ping" {
            return srv.send(ev.fd, "pong\n").map_err(|e| e.to_string());
        }
        match line.strip_prefix("job ").map(|ms| ms.trim().parse::<u64>()) {
            Some(Ok(ms)) => match srv.task(Job { fd: ev.fd.0, ms }) {
                Ok(_) => Ok(()),
                Err(e) => srv
                    .send(ev.fd, format!("error {e}\n"))
                    .map_err(|e| e.to_string()),
            },
            _ => srv
                .send(ev.fd, "error: say `job <ms>` or `ping`\n")
                .map_err(|e| e.to_string()),
        }
    });
    server.start()
}
