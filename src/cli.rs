//! The flags every example takes, through one small helper, so users and tests vary settings
//! without editing code.
//!
//! ```no_run
//! use rswoole::cli::ExampleArgs;
//! let args = ExampleArgs::parse_or_exit("127.0.0.1", 9501);
//! let settings = args.settings();
//! # let _ = (args.addr(), settings);
//! ```

use std::path::PathBuf;

use clap::Parser;

use crate::settings::{DispatchMode, Mode, Settings};

/// Flags shared by the examples: `--host`, `--port`, `--mode base|process`, `--worker-num`,
/// `--task-worker-num`, `--reactor-num`, `--dispatch-mode`, `--daemonize`, `--pid-file`,
/// `--log-file`.
#[derive(Debug, Clone, Parser)]
#[command(about = None, long_about = None)]
pub struct ExampleArgs {
    /// Address to listen on.
    #[arg(long)]
    pub host: Option<String>,
    /// Port to listen on.
    #[arg(long)]
    pub port: Option<u16>,
    /// `process` (the master owns connections) or `base` (each worker accepts).
    #[arg(long, default_value = "process")]
    pub mode: String,
    /// Worker processes (0 = one per CPU).
    #[arg(long, default_value_t = 0)]
    pub worker_num: usize,
    /// Task worker processes.
    #[arg(long, default_value_t = 0)]
    pub task_worker_num: usize,
    /// Reactor threads in the master (0 = one per CPU).
    #[arg(long, default_value_t = 0)]
    pub reactor_num: usize,
    /// Swoole's dispatch_mode: 1 round robin, 2 fixed (default), 3 preemptive, 4 by IP.
    #[arg(long, default_value_t = 2)]
    pub dispatch_mode: u8,
    /// Detach and run in the background.
    #[arg(long)]
    pub daemonize: bool,
    /// Where to write the master's pid.
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Where to write logs.
    #[arg(long)]
    pub log_file: Option<PathBuf>,
    #[arg(skip)]
    default_host: String,
    #[arg(skip)]
    default_port: u16,
}

impl ExampleArgs {
    /// Parses the process's arguments with these defaults; prints usage and exits on a bad flag.
    pub fn parse_or_exit(default_host: &str, default_port: u16) -> ExampleArgs {
        let mut a = ExampleArgs::parse();
        a.default_host = default_host.to_string();
        a.default_port = default_port;
        a
    }

    /// `host:port` to bind (IPv6 hosts are bracketed).
    pub fn addr(&self) -> String {
        let host = self
            .host
            .clone()
            .unwrap_or_else(|| self.default_host.clone());
        let port = self.port.unwrap_or(self.default_port);
        if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        }
    }

    /// The settings these flags describe (other fields at their defaults).
    pub fn settings(&self) -> Settings {
        let mode = match self.mode.as_str() {
            "base" | "BASE" => Mode::Base,
            "process" | "PROCESS" => Mode::Process,
            other => {
                eprintln!("error: --mode must be `base` or `process`, not `{other}`");
                std::process::exit(2);
            }
        };
        let dispatch_mode = match DispatchMode::from_swoole(self.dispatch_mode) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("error: {e}");
                std::process::exit(2);
            }
        };
        Settings {
            worker_num: self.worker_num,
            task_worker_num: self.task_worker_num,
            reactor_num: self.reactor_num,
            mode,
            dispatch_mode,
            daemonize: self.daemonize,
            pid_file: self.pid_file.clone(),
            log_file: self.log_file.clone(),
            ..Settings::default()
        }
    }
}
