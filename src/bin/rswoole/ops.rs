//! `rswoole status|reload|stop|reopen-logs|upgrade --pid-file F`: control a running server.
//!
//! The verbs and their signals come from `rswoole::control::VERBS` (one table for the help,
//! the signals and the docs).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use rswoole::control::{Master, VERBS};

/// `about` of a verb, from the table.
pub(crate) fn about(verb: &str) -> String {
    let v = VERBS
        .iter()
        .find(|v| v.name == verb)
        .expect("verb in VERBS");
    match v.signal {
        Some(sig) => format!("{} (sends {sig} to the master)", v.about),
        None => v.about.to_string(),
    }
}

/// The signals table printed after `rswoole --help`.
pub(crate) fn signals_help() -> String {
    let mut s = String::from("Signals (to the master; the control verbs send them for you):\n");
    for v in VERBS {
        if let Some(sig) = v.signal {
            s.push_str(&format!("  {sig:<11} {:<12} {}\n", v.name, v.about));
        }
    }
    s
}

#[derive(Args, Debug)]
pub(crate) struct StatusCmd {
    /// The server's pid_file.
    #[arg(long)]
    pid_file: PathBuf,
    /// Print the raw JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
pub(crate) struct ReloadCmd {
    /// The server's pid_file.
    #[arg(long)]
    pid_file: PathBuf,
    /// Reload the task workers instead (SIGUSR2).
    #[arg(long)]
    task: bool,
}

#[derive(Args, Debug)]
pub(crate) struct StopCmd {
    /// The server's pid_file.
    #[arg(long)]
    pid_file: PathBuf,
    /// Seconds to wait for the process to exit and its ports to be free.
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
}

#[derive(Args, Debug)]
pub(crate) struct UpgradeCmd {
    /// The server's pid_file.
    #[arg(long)]
    pid_file: PathBuf,
    /// The new binary (default: the executable at the master's own path, as it is now).
    #[arg(long)]
    binary: Option<PathBuf>,
    /// Seconds to wait for the new master to be ready.
    #[arg(long, default_value_t = 90.0)]
    timeout: f64,
}

#[derive(Args, Debug)]
pub(crate) struct PidFileCmd {
    /// The server's pid_file.
    #[arg(long)]
    pid_file: PathBuf,
}

fn human(ms: u64) -> String {
    let s = ms / 1000;
    let (d, h, m, s) = (s / 86400, s / 3600 % 24, s / 60 % 60, s % 60);
    if d > 0 {
        format!("{d}d {h}h {m:02}m {s:02}s")
    } else if h > 0 {
        format!("{h}h {m:02}m {s:02}s")
    } else {
        format!("{m}m {s:02}s")
    }
}

pub(crate) fn status(c: StatusCmd) -> anyhow::Result<()> {
    let m = Master::open(&c.pid_file)?;
    let raw = m.status_json(Duration::from_secs(5))?;
    if c.json {
        println!("{raw}");
        return Ok(());
    }
    let v: serde_json::Value = serde_json::from_str(&raw).context("parsing the status")?;
    println!(
        "master pid {} (manager {}), up {}, mode {}, {}",
        v["master_pid"],
        v["manager_pid"],
        human(v["uptime_ms"].as_u64().unwrap_or(0)),
        v["mode"].as_str().unwrap_or("?"),
        v["phase"].as_str().unwrap_or("?"),
    );
    println!(
        "build: rswoole {} {} ({})",
        v["build"]["version"].as_str().unwrap_or("?"),
        v["build"]["exe"].as_str().unwrap_or("?"),
        v["build"]["build"].as_str().unwrap_or("?"),
    );
    if v["replaced"].is_object() {
        println!(
            "upgraded from: master {} rswoole {} {} ({})",
            v["replaced"]["pid"],
            v["replaced"]["version"].as_str().unwrap_or("?"),
            v["replaced"]["exe"].as_str().unwrap_or("?"),
            v["replaced"]["build"].as_str().unwrap_or("?"),
        );
    }
    let addrs: Vec<&str> = v["listeners"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x.as_str()).collect())
        .unwrap_or_default();
    println!("listening: {}", addrs.join(", "));
    println!(
        "connections: {} (accepted {}, closed {}, refused {})",
        v["connections"], v["accepted"], v["closed"], v["refused"]
    );
    for (title, key) in [("workers", "workers"), ("task workers", "task_workers")] {
        let Some(ws) = v[key].as_array().filter(|a| !a.is_empty()) else {
            continue;
        };
        println!("{title}:");
        println!(
            "  {:>4} {:>8} {:<9} {:>10} {:>8}",
            "id", "pid", "state", "requests", "restarts"
        );
        for w in ws {
            println!(
                "  {:>4} {:>8} {:<9} {:>10} {:>8}",
                w["id"].to_string(),
                w["pid"].to_string(),
                w["state"].as_str().unwrap_or("?"),
                w["requests"].to_string(),
                w["restarts"].to_string()
            );
        }
    }
    Ok(())
}

pub(crate) fn reload(c: ReloadCmd) -> anyhow::Result<()> {
    let m = Master::open(&c.pid_file)?;
    let verb = if c.task { "reload-task" } else { "reload" };
    m.send(verb)?;
    println!("{verb}: signalled master {}", m.pid());
    Ok(())
}

pub(crate) fn stop(c: StopCmd) -> anyhow::Result<()> {
    let m = Master::open(&c.pid_file)?;
    let timeout = Duration::from_secs_f64(c.timeout.max(0.0));
    m.stop(timeout)?;
    println!("stopped: master {} is gone and its ports are free", m.pid());
    Ok(())
}

pub(crate) fn reopen_logs(c: PidFileCmd) -> anyhow::Result<()> {
    let m = Master::open(&c.pid_file)?;
    m.send("reopen-logs")?;
    println!("reopen-logs: signalled master {}", m.pid());
    Ok(())
}

/// `reload-certs`: exits 0 once the master serves the new certificates; non-zero with the
/// reason when it refused them (the old ones stay).
pub(crate) fn reload_certs(c: PidFileCmd) -> anyhow::Result<()> {
    let m = Master::open(&c.pid_file)?;
    let msg = m.command("reload-certs", Duration::from_secs(30))?;
    println!("reload-certs: {msg}");
    Ok(())
}

pub(crate) fn upgrade(c: UpgradeCmd) -> anyhow::Result<()> {
    let m = Master::open(&c.pid_file)?;
    let timeout = Duration::from_secs_f64(c.timeout.max(0.0));
    let raw = m.upgrade(c.binary.as_deref(), timeout)?;
    let v: serde_json::Value = serde_json::from_str(&raw).context("parsing the answer")?;
    for (who, b) in [("old", &v["old"]), ("new", &v["new"])] {
        println!(
            "{who}: pid {} rswoole {} {} (build {})",
            b["pid"],
            b["version"].as_str().unwrap_or("?"),
            b["exe"].as_str().unwrap_or("?"),
            b["build"].as_str().unwrap_or("?"),
        );
    }
    println!(
        "upgrade: master {} serves; master {} drains and exits",
        v["new"]["pid"], v["old"]["pid"]
    );
    Ok(())
}
