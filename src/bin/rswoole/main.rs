//! The `rswoole` command line: benchmarks and shared-table inspection.
//!
//! Exit codes: 0 success, 1 failure (the error is printed), 2 bad usage.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;
mod table;

#[derive(Parser, Debug)]
#[command(
    name = "rswoole",
    version,
    about = "rswoole: the Swoole server model in Rust"
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
}

fn main() -> ExitCode {
    let opt = Opt::parse();
    let res = match opt.cmd {
        Command::Bench(cmd) => bench::run(cmd),
        Command::Table(cmd) => table::run(cmd),
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
