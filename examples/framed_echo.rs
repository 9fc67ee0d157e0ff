//! A framed echo server on 127.0.0.1:9501: `on_receive` gets whole messages, however TCP
//! delivered them, and each is answered in the same framing with `Server: ` before its body.
//!
//! - `--framing eof` (the default): messages end with `\r\n` (`open_eof_split`);
//!   `hello\r\n` → `Server: hello\r\n`.
//! - `--framing length`: a 4-byte big-endian body length, then the body (`package_length_type`
//!   `N`, `package_body_offset` 4); `\0\0\0\x05hello` → `\0\0\0\x0dServer: hello`.
//! - Any other `--framing` value of [`rswoole::cli::parse_framing`] works too, e.g.
//!   `length:n:0:2` or `eof:\n`. With `--package-max-length`, a longer message closes its
//!   connection (logged).
//!
//! ```text
//! cargo run --release --example framed_echo -- --framing length
//! ```
use bytes::BytesMut;
use rswoole::cli::ExampleArgs;
use rswoole::{Framing, Server};
use rswoole_codec::stream::{encode_eof, encode_length};

/// The reply to one decoded message (header / EOF included, as `on_receive` gets it).
fn reply(framing: &Framing, msg: &[u8]) -> Result<BytesMut, rswoole_codec::stream::FrameError> {
    let mut out = BytesMut::with_capacity(msg.len() + 16);
    match framing {
        Framing::Eof { eof, .. } => {
            let body = msg.strip_suffix(eof.as_slice()).unwrap_or(msg);
            encode_eof(eof, &[b"Server: ", body].concat(), &mut out)?;
        }
        Framing::Length(spec) => {
            let body = msg.get(spec.header_len()..).unwrap_or_default();
            let mut reply_body = Vec::with_capacity(8 + body.len());
            reply_body.extend_from_slice(b"Server: ");
            reply_body.extend_from_slice(body);
            encode_length(spec, &reply_body, &mut out)?;
        }
        Framing::Raw | Framing::LengthFn(_) => {
            out.extend_from_slice(b"Server: ");
            out.extend_from_slice(msg);
        }
    }
    Ok(out)
}

fn main() -> rswoole::Result<()> {
    let mut args = ExampleArgs::parse_or_exit("127.0.0.1", 9501);
    if args.framing.is_none() {
        args.framing = Some("eof".into());
    }
    let settings = args.settings();
    let framing = settings.framing.clone();
    let mut server = Server::bind(&args.addr())?;
    server.set(settings);
    server.on_connect(|_srv, _fd| async { println!("Client: Connect.") });
    server.on_receive(move |srv, ev| {
        let out = reply(&framing, &ev.data);
        async move {
            match out {
                Ok(out) => srv.send(ev.fd, out.freeze()).map_err(|e| e.to_string()),
                Err(e) => Err(format!("cannot frame the reply: {e}")),
            }
        }
    });
    server.on_close(|_srv, _fd| async { println!("Client: Close.") });
    server.start()
}
