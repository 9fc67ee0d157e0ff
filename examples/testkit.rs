//! A configurable server used by the integration tests (and handy for trying features).
//!
//! Line commands (each message is one read; send one command per message):
//! `info` → connection_info of this connection; `whoami` → worker id; `close` → server closes
//! the connection; `panic` → the callback panics; `flood` → sends 64 KiB blocks until the
//! output buffer refuses (`flood burst`: without yielding between them), then prints
//! `flood stopped after N bytes`; `stats` → server counters; `conns` → number of live connections;
//! anything else → echoed as `w{worker}:{data}`; `sleep MS` → `slept MS w{worker}` after MS ms;
//! `block MS` → `blocked MS w{worker}`, blocking the worker's thread meanwhile; `abort` →
//! prints `abort {fd} w{worker}` and aborts the worker process (`std::process::abort`, no core
//! dump): an event that kills every worker it reaches; `later MS TEXT` → TEXT from a timer
//! (`after`) MS ms later; `laterclose MS` → `bye` from a timer MS ms later, then the server
//! closes the connection.
//!
//! With `--framing` (see `rswoole::cli::parse_framing`) commands are message bodies and every
//! reply is framed the same way (without the trailing newline). More commands: `bind UID` →
//! `bound UID true|false`; `broadcast TEXT` → TEXT to every connection (Base mode: the other
//! workers' connections through `send_message`), then `sent N`; `sendmsg W TEXT` → worker W's
//! `on_pipe_message` prints `pipe-message wW from wSELF: TEXT` and (Process mode) replies
//! `pipe wW from wSELF: TEXT` to this connection.

use clap::Parser;
use rswoole::{Bytes, DispatchMode, Framing, Handle, Mode, SendError, Server, Settings, SockType};
use rswoole_codec::stream::{encode_eof, encode_length};

/// The body of a message (header / EOF removed).
fn body<'a>(framing: &Framing, msg: &'a [u8]) -> &'a [u8] {
    match framing {
        Framing::Eof { eof, .. } => msg.strip_suffix(eof.as_slice()).unwrap_or(msg),
        Framing::Length(spec) => msg.get(spec.header_len()..).unwrap_or_default(),
        _ => msg,
    }
}

/// `text` framed for the client (raw: as is).
fn frame(framing: &Framing, text: &str) -> Bytes {
    let mut out = bytes::BytesMut::new();
    match framing {
        Framing::Eof { eof, .. } => encode_eof(eof, text.as_bytes(), &mut out).expect("frame"),
        Framing::Length(spec) => encode_length(spec, text.as_bytes(), &mut out).expect("frame"),
        _ => return Bytes::copy_from_slice(text.as_bytes()),
    }
    out.freeze()
}

/// Sends `text` to every local connection; `true` if some were another worker's (Base mode).
fn broadcast_local(srv: &Handle, framing: &Framing, text: &str) -> (usize, bool) {
    let (mut sent, mut remote) = (0, false);
    for fd in srv.connections() {
        match srv.send(fd, frame(framing, text)) {
            Ok(()) => sent += 1,
            Err(SendError::NotLocal(..)) => remote = true,
            Err(_) => {}
        }
    }
    (sent, remote)
}

#[derive(Parser, Debug)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:9501")]
    addr: String,
    #[arg(long, default_value = "process")]
    mode: String,
    #[arg(long, default_value_t = 2)]
    worker_num: usize,
    #[arg(long, default_value_t = 2)]
    dispatch_mode: u8,
    /// Extra listeners: `tcp:ADDR` or `udp:ADDR`.
    #[arg(long)]
    listen: Vec<String>,
    /// Leave out on_receive (to test the start-up error).
    #[arg(long)]
    no_receive: bool,
    #[arg(long, default_value_t = 2 * 1024 * 1024)]
    buffer_output_size: usize,
    #[arg(long, default_value_t = 0)]
    max_connection: usize,
    /// Stream framing: raw, eof[:TEXT], length[:CODE:LENGTH_OFFSET:BODY_OFFSET].
    #[arg(long, default_value = "raw")]
    framing: String,
    #[arg(long, default_value_t = rswoole::DEFAULT_PACKAGE_MAX_LENGTH)]
    package_max_length: usize,
    #[command(flatten)]
    ops: OpsArgs,
    /// TLS on the first listener (`--cert --key [--client-ca]`); `--listen tls:ADDR` adds a
    /// TLS listener with the same files.
    #[command(flatten)]
    tls: rswoole::cli::TlsArgs,
}

/// Production settings (tests/ops.rs).
#[derive(clap::Args, Debug)]
struct OpsArgs {
    #[arg(long)]
    daemonize: bool,
    #[arg(long)]
    pid_file: Option<std::path::PathBuf>,
    #[arg(long)]
    log_file: Option<std::path::PathBuf>,
    #[arg(long, default_value_t = 0)]
    max_request: u64,
    #[arg(long, default_value_t = 0)]
    max_request_grace: u64,
    #[arg(long, default_value_t = 0)]
    heartbeat_check_interval_ms: u64,
    #[arg(long, default_value_t = 0)]
    heartbeat_idle_time_ms: u64,
    #[arg(long, default_value_t = 3000)]
    max_wait_time_ms: u64,
    /// on_worker_start exits the process (restart-storm test).
    #[arg(long)]
    crash_on_start: bool,
}

impl OpsArgs {
    fn settings(&self) -> Settings {
        let ms = std::time::Duration::from_millis;
        Settings::default()
            .daemonize(self.daemonize)
            .pid_file(self.pid_file.clone())
            .log_file(self.log_file.clone())
            .max_request(self.max_request)
            .max_request_grace(self.max_request_grace)
            .heartbeat_check_interval(ms(self.heartbeat_check_interval_ms))
            .heartbeat_idle_time(ms(self.heartbeat_idle_time_ms))
            .max_wait_time(ms(self.max_wait_time_ms))
    }
}

fn main() -> rswoole::Result<()> {
    let a = Args::parse();
    let mut server = Server::bind(&a.addr)?;
    server.set(
        a.ops
            .settings()
            .worker_num(a.worker_num)
            .mode(if a.mode == "base" {
                Mode::Base
            } else {
                Mode::Process
            })
            .dispatch_mode(DispatchMode::from_swoole(a.dispatch_mode)?)
            .buffer_output_size(a.buffer_output_size)
            .max_connection(a.max_connection)
            .framing(rswoole::cli::parse_framing(&a.framing).expect("--framing"))
            .package_max_length(a.package_max_length)
            .tls(a.tls.settings()),
    );
    let framing = server.settings_mut().framing.clone();
    let fr = framing.clone();
    server.on_pipe_message(move |srv, from, data| {
        let fr = fr.clone();
        async move {
            let text = String::from_utf8_lossy(&data).into_owned();
            if let Some(b) = text.strip_prefix("broadcast ") {
                broadcast_local(&srv, &fr, b);
                return Ok(());
            }
            let (fd, text) = text.split_once(' ').unwrap_or(("0", ""));
            println!("pipe-message w{} from w{from}: {text}", srv.worker_id());
            let reply = format!("pipe w{} from w{from}: {text}", srv.worker_id());
            match srv.send(rswoole::ConnId(fd.parse().unwrap_or(0)), frame(&fr, &reply)) {
                Err(SendError::NotLocal(..)) => Ok(()),
                r => r,
            }
        }
    });
    for l in &a.listen {
        let (kind, addr) = l.split_once(':').expect("tcp:ADDR, tls:ADDR or udp:ADDR");
        let port = server.add_listener(
            addr,
            if kind == "udp" {
                SockType::Udp
            } else {
                SockType::Tcp
            },
        )?;
        if kind == "tls" {
            port.set_tls(a.tls.settings().expect("tls:ADDR needs --cert and --key"));
        }
        if kind == "udp" {
            port.on_packet(|srv, p| async move {
                srv.send_to_via(
                    p.listener,
                    p.addr,
                    format!("udp{}:{}", p.listener, String::from_utf8_lossy(&p.data)),
                )
            });
        }
    }
    let crash_on_start = a.ops.crash_on_start;
    server.on_worker_start(move |_srv, id| async move {
        println!("worker-start {id}");
        if crash_on_start {
            std::process::exit(3);
        }
    });
    server.on_worker_stop(|_srv, id| async move { println!("worker-stop {id}") });
    server.on_connect(|srv, fd| async move { println!("connect {fd} w{}", srv.worker_id()) });
    server.on_close(|srv, fd| async move { println!("close {fd} w{}", srv.worker_id()) });
    server.on_start(|info| {
        println!(
            "start master={} manager={}",
            info.master_pid, info.manager_pid
        )
    });
    server.on_shutdown(|_| println!("shutdown"));
    if !a.no_receive {
        server.on_receive(move |srv, ev| {
            let framing = framing.clone();
            async move {
                let raw = matches!(framing, Framing::Raw);
                let data = Bytes::copy_from_slice(body(&framing, &ev.data));
                let text = String::from_utf8_lossy(&data).trim_end().to_string();
                if let Some(uid) = text.strip_prefix("bind ") {
                    let uid: u32 = uid.parse().unwrap_or(0);
                    let r = format!("bound {uid} {}", srv.bind(ev.fd, uid).is_ok());
                    return srv.send(ev.fd, frame(&framing, &r));
                }
                if let Some(b) = text.strip_prefix("broadcast ") {
                    let (sent, remote) = broadcast_local(&srv, &framing, b);
                    if remote {
                        for w in (0..srv.stats().requests.len()).filter(|w| *w != srv.worker_id()) {
                            srv.send_message(w, format!("broadcast {b}"))?;
                        }
                    }
                    return srv.send(ev.fd, frame(&framing, &format!("sent {sent}")));
                }
                if let Some(ms) = text.strip_prefix("block ") {
                    // Blocks the worker's thread: only a SIGKILL ends a stop now.
                    let ms: u64 = ms.parse().unwrap_or(0);
                    std::thread::sleep(std::time::Duration::from_millis(ms));
                    return srv.send(
                        ev.fd,
                        frame(&framing, &format!("blocked {ms} w{}\n", srv.worker_id())),
                    );
                }
                if let Some(ms) = text.strip_prefix("sleep ") {
                    let ms: u64 = ms.parse().unwrap_or(0);
                    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                    return srv.send(
                        ev.fd,
                        frame(&framing, &format!("slept {ms} w{}\n", srv.worker_id())),
                    );
                }
                if let Some(rest) = text
                    .strip_prefix("later ")
                    .or_else(|| text.strip_prefix("laterclose "))
                {
                    let close = text.starts_with("laterclose ");
                    let (ms, t) = rest.split_once(' ').unwrap_or((rest, "bye"));
                    let ms: u64 = ms.parse().unwrap_or(0);
                    let reply = if raw { format!("{t}\n") } else { t.to_string() };
                    let (fd, framing) = (ev.fd, framing.clone());
                    srv.after(
                        std::time::Duration::from_millis(ms),
                        move |srv| async move {
                            srv.send(fd, frame(&framing, &reply))
                                .map_err(|e| e.to_string())?;
                            if close {
                                srv.close(fd).map_err(|e| e.to_string())?;
                            }
                            Ok::<(), String>(())
                        },
                    );
                    return Ok(());
                }
                if let Some(n) = text.strip_prefix("parts ") {
                    // `send_parts`: N bytes of 'a', N of 'b', then "end\n", never joined here.
                    let n: usize = n.parse().unwrap_or(0);
                    let (a, b) = (vec![b'a'; n], vec![b'b'; n]);
                    return match srv.send_parts(ev.fd, &[&a, &b, b"end\n"]) {
                        Err(SendError::BufferFull(fd, data)) => {
                            srv.send(fd, format!("refused {}\n", data.len()))
                        }
                        r => r,
                    };
                }
                if let Some(rest) = text.strip_prefix("sendmsg ") {
                    let (w, t) = rest.split_once(' ').unwrap_or((rest, ""));
                    return srv
                        .send_message(w.parse().unwrap_or(usize::MAX), format!("{} {t}", ev.fd));
                }
                let reply: String = match text.as_str() {
                    "info" => {
                        let i = srv.connection_info(ev.fd).expect("live connection");
                        format!(
                            "remote={} server_port={} listener={} reactor={} connected={} tls={} peer={}\n",
                            i.remote_addr,
                            i.server_port,
                            i.listener,
                            i.reactor_id,
                            i.connect_time
                                .elapsed()
                                .map(|d| d.as_secs() < 60)
                                .unwrap_or(false),
                            i.tls,
                            i.peer_cert_sha256.map_or("none".to_string(), |f| {
                                f.iter().map(|b| format!("{b:02x}")).collect()
                            })
                        )
                    }
                    "whoami" => format!("w{}\n", srv.worker_id()),
                    "close" => {
                        srv.send(ev.fd, format!("bye {}\n", ev.fd))?;
                        let _ = srv.close(ev.fd);
                        return Ok(());
                    }
                    "panic" => panic!("testkit: asked to panic"),
                    "abort" => {
                        println!("abort {} w{}", ev.fd, srv.worker_id());
                        // No core file for a crash asked for.
                        let _ = nix::sys::resource::setrlimit(
                            nix::sys::resource::Resource::RLIMIT_CORE,
                            0,
                            0,
                        );
                        std::process::abort()
                    }
                    "flood" | "flood burst" => {
                        // `flood burst` never yields: in Process mode every block waits in
                        // this worker's pipe queue, none has reached the master yet.
                        let burst = text == "flood burst";
                        let block = Bytes::from(vec![b'x'; 64 * 1024]);
                        let mut sent = 0usize;
                        loop {
                            match srv.send(ev.fd, block.clone()) {
                                Ok(()) => sent += block.len(),
                                Err(SendError::BufferFull(..)) => break,
                                Err(e) => return Err(e),
                            }
                            if sent > 64 * 1024 * 1024 {
                                break;
                            }
                            if !burst {
                                tokio::task::yield_now().await;
                            }
                        }
                        println!("flood stopped after {sent} bytes");
                        return Ok(());
                    }
                    "stats" => {
                        let s = srv.stats();
                        format!(
                            "connections={} accepted={} closed={}\n",
                            s.connections, s.accepted, s.closed
                        )
                    }
                    "conns" => format!("conns={}\n", srv.connections().len()),
                    _ => format!("w{}:{}", srv.worker_id(), String::from_utf8_lossy(&data)),
                };
                if raw {
                    srv.send(ev.fd, reply)
                } else {
                    srv.send(ev.fd, frame(&framing, reply.trim_end_matches('\n')))
                }
            }
        });
    }
    server.start()
}
