//! A WebSocket echo server: every message goes back to its sender with its opcode (text or
//! binary). The server the Autobahn testsuite runs against (see `.ci/run`).
//!
//! ```text
//! cargo run --release --example ws_echo      # ws://127.0.0.1:9001
//! ```
use rswoole::cli::ExampleArgs;
use rswoole::websocket::WebSocketServer;

fn main() -> rswoole::Result<()> {
    let args = ExampleArgs::parse_or_exit("127.0.0.1", 9001);
    let mut server = WebSocketServer::bind(&args.addr())?;
    let mut settings = args.settings();
    // Autobahn sends messages of up to 16 MiB and expects them back whole.
    settings.buffer_output_size = 64 * 1024 * 1024;
    settings.package_max_length = 64 * 1024 * 1024;
    // And takes a message of up to 64 MiB in one frame (`scripts/burst_mem.py ws 60`).
    settings.websocket.max_frame_size = 64 * 1024 * 1024;
    server.set(settings);
    server.on_message(|srv, frame| async move { srv.push(frame.fd, frame.data, frame.opcode) });
    server.on_request(|_srv, _req, mut resp| async move {
        resp.header("content-type", "text/plain")?;
        resp.end("ws_echo: connect with a WebSocket client\n")
    });
    server.start()
}
