//! An online-users counter in a shared-memory `Table` used by every worker (issue: shared
//! memory). Each open connection counts; `online\n` replies `online: N\n` with the
//! server-wide count, whichever worker answers.
//!
//! ```text
//! cargo run --release --example table -- --worker-num 4   # then: nc 127.0.0.1 9501, type `online`
//! ```
use rswoole::cli::ExampleArgs;
use rswoole::{Column, Server, Table};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = ExampleArgs::parse_or_exit("127.0.0.1", 9501);
    // Built before start(): the mapping is inherited by every worker.
    let stats = Table::builder(16).column("n", Column::Int).build()?;
    let mut server = Server::bind(&args.addr())?;
    server.set(args.settings());
    let t = stats.clone();
    server.on_connect(move |_srv, _fd| {
        let t = t.clone();
        async move { t.incr("online", "n", 1).map(|_| ()) }
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
            if ev.data.trim_ascii() == b"online" {
                let n = t
                    .get_field("online", "n")?
                    .and_then(|v| v.as_int())
                    .unwrap_or(0);
                srv.send(ev.fd, format!("online: {n} (worker {})\n", srv.worker_id()))?;
            }
            Ok::<(), Box<dyn std::error::Error>>(())
        }
    });
    server.start()?;
    Ok(())
}
