//! Seed §12–13: an HTTP server in a few lines, answering `Hello World` to every request on
//! 127.0.0.1:9501 (the port the seed's nginx config proxies to).
//!
//! ```text
//! cargo run --release --example http_hello      # then: curl http://127.0.0.1:9501/
//! ```
use rswoole::cli::ExampleArgs;
use rswoole::http::HttpServer;

fn main() -> rswoole::Result<()> {
    let args = ExampleArgs::parse_or_exit("127.0.0.1", 9501);
    let mut server = HttpServer::bind(&args.addr())?;
    server.set(args.settings());
    server.on_request(|_srv, _req, mut resp| async move {
        resp.header("content-type", "text/plain")?;
        resp.end("Hello World")
    });
    server.start()
}
