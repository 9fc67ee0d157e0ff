//! Seed §11: a UDP server on 127.0.0.1:9502 that replies `Server: ` + data to each datagram.
//!
//! ```text
//! cargo run --release --example udp_echo        # then: nc -u 127.0.0.1 9502
//! ```
use rswoole::cli::ExampleArgs;
use rswoole::Server;

fn main() -> rswoole::Result<()> {
    let args = ExampleArgs::parse_or_exit("127.0.0.1", 9502);
    let mut server = Server::bind_udp(&args.addr())?;
    server.set(args.settings());
    server.on_packet(|srv, pkt| async move {
        srv.send_to(pkt.addr, [&b"Server: "[..], &pkt.data[..]].concat())
    });
    server.start()
}
