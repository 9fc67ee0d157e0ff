//! Seed §10: a TCP server on 127.0.0.1:9501. On connect it prints `Client: Connect.`, on
//! receive it replies `Server: ` + data, on close it prints `Client: Close.`.
//!
//! ```text
//! cargo run --release --example tcp_echo        # then: nc 127.0.0.1 9501
//! ```
use rswoole::cli::ExampleArgs;
use rswoole::Server;

fn main() -> rswoole::Result<()> {
    let args = ExampleArgs::parse_or_exit("127.0.0.1", 9501);
    let mut server = Server::bind(&args.addr())?;
    server.set(args.settings());
    server.on_connect(|_srv, _fd| async {
        println!("Client: Connect.");
    });
    server.on_receive(|srv, ev| async move {
        // The prefix and the data go out together (one system call), never joined in a heap buffer.
        srv.send_parts(ev.fd, &[b"Server: ", &ev.data])
    });
    server.on_close(|_srv, _fd| async {
        println!("Client: Close.");
    });
    server.start()
}
