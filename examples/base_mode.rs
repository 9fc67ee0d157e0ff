//! Seed §16: `Mode::Base`; each message gets `Swoole: ` + data and then the connection is
//! closed. The line before `start()` is printed once; the line after it only at shutdown,
//! because `start()` runs the event loop until the server stops.
//!
//! ```text
//! cargo run --release --example base_mode       # then: nc 127.0.0.1 9501
//! ```
use rswoole::cli::ExampleArgs;
use rswoole::{Mode, Server};

fn main() -> rswoole::Result<()> {
    let args = ExampleArgs::parse_or_exit("127.0.0.1", 9501);
    let mut server = Server::bind(&args.addr())?;
    let mut settings = args.settings();
    if args.mode == "process" && !std::env::args().any(|a| a == "--mode") {
        settings.mode = Mode::Base;
    }
    server.set(settings);
    server.on_receive(|srv, ev| async move {
        srv.send(ev.fd, [&b"Swoole: "[..], &ev.data[..]].concat())?;
        let _ = srv.close(ev.fd);
        Ok::<(), rswoole::SendError>(())
    });
    println!("before start()");
    let result = server.start();
    println!("after start(): the server has stopped");
    result
}
