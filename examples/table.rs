//! An online-users counter in a shared-memory `Table` used by every worker (issue: shared
//! memory). Each open connection counts; `online\n` replies `online: N\n` with the
//! server-wide count, whichever worker answers (the worker is logged at info level). `total\n`
//! replies `total: N\n`, the connections accepted since the table was created.
//!
//! With `--persistent NAME` the table is the persistent shared-memory table
//! `/dev/shm/rswoole.NAME`: it outlives the server and a restart reattaches it, so `total`
//! goes on counting (`online` starts again from 0: no connection outlives the server).
//! `rswoole table list`, `rswoole table dump NAME` and `rswoole table rm NAME` show and remove
//! it.
//!
//! ```text
//! cargo run --release --example table -- --worker-num 4   # then: nc 127.0.0.1 9501, type `online`
//! cargo run --release --example table -- --persistent visits   # then: rswoole table dump visits
//! ```
use clap::Parser;
use rswoole::cli::ExampleArgs;
use rswoole::{Column, Server, Table};

#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    common: ExampleArgs,
    /// Keep the counts in the persistent table /dev/shm/rswoole.NAME, which a restart finds
    /// again (remove it with `rswoole table rm NAME`).
    #[arg(long, value_name = "NAME")]
    persistent: Option<String>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = Args::parse();
    args.common.host.get_or_insert_with(|| "127.0.0.1".into());
    args.common.port.get_or_insert(9501);
    // Built before start(): the mapping is inherited by every worker.
    let mut builder = Table::builder(16).column("n", Column::Int);
    if let Some(name) = &args.persistent {
        builder = builder.persistent(name);
    }
    let stats = builder.build()?;
    // Connections counted by a previous run are gone with it.
    stats.set("online", &[("n", 0.into())])?;
    let mut server = Server::bind(&args.common.addr())?;
    server.set(args.common.settings());
    // Its rows in use and capacity on /metrics (with `--admin ADDR`).
    server.watch_table("counts", &stats);
    let t = stats.clone();
    server.on_connect(move |_srv, _fd| {
        let t = t.clone();
        async move {
            t.incr("total", "n", 1)?;
            t.incr("online", "n", 1).map(|_| ())
        }
    });
    let t = stats.clone();
    server.on_close(move |_srv, _fd| {
        let t = t.clone();
        async move { t.decr("online", "n", 1).map(|_| ()) }
    });
    let t = stats.clone();
    server.on_receive(move |srv, ev| {
        let t = t.clone();
        async move {
            let row = match ev.data.trim_ascii() {
                b"online" => "online",
                b"total" => "total",
                _ => return Ok(()),
            };
            let n = t.get_field(row, "n")?.and_then(|v| v.as_int()).unwrap_or(0);
            tracing::info!(worker = srv.worker_id(), n, "answered {row}");
            srv.send(ev.fd, format!("{row}: {n}\n"))?;
            Ok::<(), Box<dyn std::error::Error>>(())
        }
    });
    server.start()?;
    Ok(())
}
