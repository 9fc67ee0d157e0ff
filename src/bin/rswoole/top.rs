//! `rswoole top --pid-file F`: a one-screen view of a running server, refreshed like `top`,
//! fed by its status socket (`F.sock`): workers (state, events/s, CPU, memory), connections,
//! requests/s by status class and task queues (the last two with the admin listener on).

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use rswoole::control::Master;
use serde_json::Value;

#[derive(Args, Debug)]
pub(crate) struct TopCmd {
    /// The server's pid_file.
    #[arg(long)]
    pid_file: PathBuf,
    /// Seconds between refreshes.
    #[arg(long, default_value_t = 1.0)]
    interval: f64,
    /// Stop after this many screens (0 = until interrupted).
    #[arg(long, default_value_t = 0)]
    iterations: u64,
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

fn per_s(now: u64, before: Option<u64>, dt: f64) -> f64 {
    before.map_or(0.0, |b| now.saturating_sub(b) as f64 / dt)
}

/// One screen from status `s`, with `prev` (and `dt` seconds since) for the rates.
fn render(s: &Value, prev: Option<&Value>, dt: f64) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "rswoole top — master {} manager {} — {} mode, {} — up {}s",
        s["master_pid"],
        s["manager_pid"],
        s["mode"].as_str().unwrap_or("?"),
        s["phase"].as_str().unwrap_or("?"),
        u(&s["uptime_ms"]) / 1000
    );
    let _ = writeln!(
        o,
        "connections {:<8} accepted {:<10} closed {:<10} refused {}",
        u(&s["connections"]),
        u(&s["accepted"]),
        u(&s["closed"]),
        u(&s["refused"])
    );
    let events = |v: &Value| -> u64 {
        v["workers"]
            .as_array()
            .map_or(0, |a| a.iter().map(|w| u(&w["requests"])).sum())
    };
    let mut line = format!("events/s {:<10.1}", per_s(events(s), prev.map(events), dt));
    let m = &s["metrics"];
    if m.is_object() {
        let class = |v: &Value, k: &str| u(&v["metrics"]["http_by_class"][k]);
        let total = |v: &Value| {
            ["1xx", "2xx", "3xx", "4xx", "5xx"]
                .iter()
                .map(|k| class(v, k))
                .sum::<u64>()
        };
        let _ = write!(
            line,
            " http req/s {:<9.1} (2xx {:.1}  4xx {:.1}  5xx {:.1})",
            per_s(total(s), prev.map(total), dt),
            per_s(class(s, "2xx"), prev.map(|p| class(p, "2xx")), dt),
            per_s(class(s, "4xx"), prev.map(|p| class(p, "4xx")), dt),
            per_s(class(s, "5xx"), prev.map(|p| class(p, "5xx")), dt),
        );
    } else {
        line.push_str(" (start the server with an admin listener for HTTP and task numbers)");
    }
    let _ = writeln!(o, "{line}\n");
    let _ = writeln!(
        o,
        "{:>4} {:<12} {:>8} {:<9} {:>10} {:>10} {:>8} {:>6} {:>8} {:>6}",
        "ID", "KIND", "PID", "STATE", "EVENTS/S", "EVENTS", "RESTARTS", "CPU%", "RSS MiB", "TASKQ"
    );
    let cpu = |v: &Value| v["usage"]["cpu"].as_f64();
    let rss = |v: &Value| v["usage"]["rss"].as_u64();
    let row =
        |o: &mut String, id: &str, kind: &str, w: &Value, pw: Option<&Value>, taskq: String| {
            let c = match (cpu(w), pw.and_then(cpu)) {
                (Some(a), Some(b)) => format!("{:.1}", 100.0 * (a - b).max(0.0) / dt),
                _ => "-".into(),
            };
            let r = rss(w).map_or("-".into(), |r| format!("{:.1}", r as f64 / 1048576.0));
            let ev = w.get("requests").map(u);
            let _ = writeln!(
                o,
                "{id:>4} {kind:<12} {:>8} {:<9} {:>10} {:>10} {:>8} {c:>6} {r:>8} {taskq:>6}",
                u(&w["pid"]),
                w["state"].as_str().unwrap_or(""),
                ev.map_or(String::new(), |e| format!(
                    "{:.1}",
                    per_s(e, pw.map(|p| u(&p["requests"])), dt)
                )),
                ev.map_or(String::new(), |e| e.to_string()),
                w.get("restarts")
                    .map_or(String::new(), |r| u(r).to_string()),
            );
        };
    let master = serde_json::json!({"pid": s["master_pid"], "usage": s["master_usage"]});
    let pmaster =
        prev.map(|p| serde_json::json!({"pid": p["master_pid"], "usage": p["master_usage"]}));
    row(
        &mut o,
        "-",
        "master",
        &master,
        pmaster.as_ref(),
        String::new(),
    );
    let manager = serde_json::json!({"pid": s["manager_pid"], "usage": s["manager_usage"]});
    let pmanager =
        prev.map(|p| serde_json::json!({"pid": p["manager_pid"], "usage": p["manager_usage"]}));
    row(
        &mut o,
        "-",
        "manager",
        &manager,
        pmanager.as_ref(),
        String::new(),
    );
    for (key, kind) in [("workers", "worker"), ("task_workers", "task_worker")] {
        for (i, w) in s[key].as_array().into_iter().flatten().enumerate() {
            let pw = prev.and_then(|p| p[key].get(i));
            let id = u(&w["id"]);
            let taskq = m["workers"]
                .as_array()
                .and_then(|a| a.iter().find(|x| u(&x["id"]) == id))
                .map_or(String::new(), |x| u(&x["task_queue"]).to_string());
            row(&mut o, &id.to_string(), kind, w, pw, taskq);
        }
    }
    o
}

pub(crate) fn top(c: TopCmd) -> anyhow::Result<()> {
    let m = Master::open(&c.pid_file)?;
    let interval = Duration::from_secs_f64(c.interval.max(0.1));
    let mut prev: Option<(Instant, Value)> = None;
    let mut n = 0u64;
    let tty = std::io::IsTerminal::is_terminal(&std::io::stdout());
    loop {
        let raw = m
            .status_json(Duration::from_secs(2))
            .context("reading the server's status (is it still running?)")?;
        let now = Instant::now();
        let s: Value = serde_json::from_str(&raw).context("the status socket sent bad JSON")?;
        let dt = prev.as_ref().map_or(1.0, |(t, _)| {
            now.duration_since(*t).as_secs_f64().max(0.001)
        });
        let screen = render(&s, prev.as_ref().map(|(_, v)| v), dt);
        let mut out = std::io::stdout().lock();
        if tty {
            // Home, clear: one screen, redrawn in place.
            write!(out, "\x1b[H\x1b[2J")?;
        }
        write!(out, "{screen}")?;
        if !tty {
            writeln!(out, "--")?;
        }
        out.flush()?;
        drop(out);
        prev = Some((now, s));
        n += 1;
        if c.iterations != 0 && n >= c.iterations {
            return Ok(());
        }
        std::thread::sleep(interval);
    }
}
