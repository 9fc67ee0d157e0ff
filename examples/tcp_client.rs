//! Seed §6: a blocking client for `examples/tcp_echo.rs`. Connects to 127.0.0.1:9501 (or
//! `--addr`), sends a line, prints the reply.
//!
//! ```text
//! cargo run --example tcp_echo &
//! cargo run --example tcp_client -- --message "hello world"   # Server: hello world
//! ```
use std::time::Duration;

use clap::Parser;
use rswoole::client::SyncClient;

#[derive(Parser, Debug)]
struct Args {
    /// Server address.
    #[arg(long, default_value = "127.0.0.1:9501")]
    addr: String,
    /// The line to send (a newline is added).
    #[arg(long, default_value = "hello world")]
    message: String,
    /// Connect / receive timeout in milliseconds.
    #[arg(long, default_value_t = 2000)]
    timeout_ms: u64,
}

fn main() -> Result<(), rswoole::client::ClientError> {
    let a = Args::parse();
    let mut client = SyncClient::connect(a.addr.as_str(), Duration::from_millis(a.timeout_ms))?;
    let line = format!("{}\n", a.message);
    client.send(line.as_bytes())?;
    // tcp_echo replies "Server: " + the line; collect until the newline arrives.
    let mut reply = Vec::new();
    while !reply.ends_with(b"\n") {
        reply.extend_from_slice(&client.recv()?);
    }
    print!("{}", String::from_utf8_lossy(&reply));
    client.close();
    Ok(())
}
