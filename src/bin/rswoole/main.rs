//! The `rswoole` command line: benchmarks, shared-table inspection, and control of a running
//! server (`status`, `reload`, `stop`, `reopen-logs`, `upgrade`, `reload-certs`, `top`).
//!
//! Exit codes: 0 success, 1 failure (the error is printed), 2 bad usage.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;
mod ops;
mod table;
mod top;

#[derive(Parser, Debug)]
#[command(
    name = "rswoole",
    version,
    about = "rswoole: the Swoole server model in Rust",
    after_help = ops::signals_help()
)]
struct Opt {
    #[command(subcommand)]
    cmd: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Load generator: round trips/s and latency percentiles against a running server.
    #[command(subcommand)]
    Bench(bench::BenchCmd),
    /// Inspect persistent shared-memory tables.
    #[command(subcommand)]
    Table(table::TableCmd),
    #[command(about = ops::about("status"))]
    Status(ops::StatusCmd),
    #[command(about = ops::about("reload"))]
    Reload(ops::ReloadCmd),
    #[command(about = ops::about("stop"))]
    Stop(ops::StopCmd),
    #[command(about = ops::about("reopen-logs"))]
    ReopenLogs(ops::PidFileCmd),
    #[command(about = ops::about("reload-certs"))]
    ReloadCerts(ops::PidFileCmd),
    #[command(about = ops::about("upgrade"))]
    Upgrade(ops::UpgradeCmd),
    /// A live one-screen view of a running server (workers, connections, requests/s, task
    /// queues), refreshed like `top`.
    Top(top::TopCmd),
}

fn main() -> ExitCode {
    let opt = Opt::parse();
    let res = match opt.cmd {
        Command::Bench(cmd) => bench::run(cmd),
        Command::Table(cmd) => table::run(cmd),
        Command::Status(cmd) => ops::status(cmd),
        Command::Reload(cmd) => ops::reload(cmd),
        Command::Stop(cmd) => ops::stop(cmd),
        Command::ReopenLogs(cmd) => ops::reopen_logs(cmd),
        Command::ReloadCerts(cmd) => ops::reload_certs(cmd),
        Command::Upgrade(cmd) => ops::upgrade(cmd),
        Command::Top(cmd) => top::top(cmd),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                if io.kind() == std::io::ErrorKind::BrokenPipe {
                    return ExitCode::SUCCESS;
                }
            }
            eprintln!("rswoole: {e:#}");
            ExitCode::FAILURE
        }
    }
}
