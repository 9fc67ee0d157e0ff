//! `rswoole bench`: a load generator for echo servers (TCP, length-framed TCP, UDP).
//!
//! Each connection sends a message, waits for the whole reply, and repeats, for `--secs`
//! seconds. Prints round trips/s and latency percentiles, and one machine-readable line
//! `result kind=... rps=... p50_us=... p99_us=...`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[path = "ws_bench.rs"]
mod ws_bench;
#[path = "ws_latency.rs"]
mod ws_latency;

#[derive(Subcommand, Debug)]
pub(crate) enum BenchCmd {
    /// TCP echo: the reply is `--prefix` + the message.
    TcpEcho(Common),
    /// UDP echo: one datagram per request, `--prefix` + the message back.
    UdpEcho(Common),
    /// WebSocket echo: a text message per round trip, echoed (`examples/ws_echo.rs`).
    WsEcho(Common),
    /// WebSocket broadcast: N clients, every message to all (`examples/chat.rs`).
    WsBroadcast(ws_bench::Broadcast),
    /// Opens N idle WebSocket connections and holds them (memory per connection).
    WsIdle(ws_bench::Idle),
    /// WebSocket broadcast delivery latency (`examples/chat.rs`, one node or a cluster).
    WsLatency(ws_latency::Latency),
    /// Cross-node push round trip through a cluster of `examples/chat.rs` nodes.
    WsPushRtt(ws_latency::PushRtt),
}

#[derive(Args, Debug, Clone)]
pub(crate) struct Common {
    /// Server address.
    #[arg(long, default_value = "127.0.0.1:9501")]
    addr: SocketAddr,
    /// Concurrent connections (or UDP sockets).
    #[arg(long, default_value_t = 64)]
    conns: usize,
    /// How long to measure.
    #[arg(long, default_value_t = 5)]
    secs: u64,
    /// Message size in bytes.
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// What the server puts before the echoed message (`Server: ` for the seed's tcp_echo).
    #[arg(long, default_value = "")]
    prefix: String,
    /// Load-generator threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Warm-up before measuring, in milliseconds.
    #[arg(long, default_value_t = 500)]
    warmup_ms: u64,
    /// TCP framing of requests and replies: `raw` (as is), `length` (4-byte big-endian body
    /// length, then the body; the prefix goes inside the reply's body, as
    /// `examples/framed_echo.rs --framing length` answers), `eof` (`\r\n` after each).
    #[arg(long, default_value = "raw", value_parser = ["raw", "length", "eof"])]
    framing: String,
}

/// The request bytes and the expected reply for `msg` under `framing`.
fn framed(framing: &str, prefix: &[u8], msg: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let reply_body = [prefix, msg].concat();
    match framing {
        "length" => {
            let wrap = |b: &[u8]| [&(b.len() as u32).to_be_bytes()[..], b].concat();
            (wrap(msg), wrap(&reply_body))
        }
        "eof" => ([msg, b"\r\n"].concat(), [&reply_body[..], b"\r\n"].concat()),
        _ => (msg.to_vec(), reply_body),
    }
}

pub(crate) fn run(cmd: BenchCmd) -> anyhow::Result<()> {
    let (kind, c) = match &cmd {
        BenchCmd::TcpEcho(c) => ("tcp-echo", c.clone()),
        BenchCmd::UdpEcho(c) => ("udp-echo", c.clone()),
        BenchCmd::WsEcho(c) => ("ws-echo", c.clone()),
        BenchCmd::WsBroadcast(b) => return ws_bench::broadcast(b.clone()),
        BenchCmd::WsIdle(o) => return ws_bench::idle(o.clone()),
        BenchCmd::WsLatency(o) => return ws_latency::latency(o.clone()),
        BenchCmd::WsPushRtt(o) => return ws_latency::push_rtt(o.clone()),
    };
    if c.conns == 0 || c.size == 0 {
        bail!("--conns and --size must be at least 1");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(c.threads.max(1))
        .enable_all()
        .build()?;
    let mut lats: Vec<u32> = rt.block_on(async {
        let start = Instant::now() + Duration::from_millis(c.warmup_ms);
        let end = start + Duration::from_secs(c.secs);
        let mut tasks = Vec::new();
        for i in 0..c.conns {
            let c = c.clone();
            let kind = kind.to_string();
            tasks.push(tokio::spawn(async move {
                if kind == "udp-echo" {
                    udp_conn(i, &c, start, end).await
                } else if kind == "ws-echo" {
                    ws_bench::echo_conn(c.addr, message(i, c.size), start, end).await
                } else {
                    tcp_conn(i, &c, start, end).await
                }
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.context("bench task")??);
        }
        Ok::<_, anyhow::Error>(all)
    })?;
    if lats.is_empty() {
        bail!("no round trip completed");
    }
    lats.sort_unstable();
    let n = lats.len();
    let pct = |p: f64| lats[((n as f64 * p) as usize).min(n - 1)];
    let rps = n as f64 / c.secs as f64;
    println!("{kind}: {} conns, {} B messages, {} s: {rps:.0} round trips/s, p50 {} us, p99 {} us, max {} us", c.conns, c.size, c.secs, pct(0.5), pct(0.99), lats[n - 1]);
    println!(
        "result kind={kind} framing={} conns={} size={} rps={rps:.0} p50_us={} p99_us={}",
        c.framing,
        c.conns,
        c.size,
        pct(0.5),
        pct(0.99)
    );
    Ok(())
}

fn message(i: usize, size: usize) -> Vec<u8> {
    (0..size).map(|k| b'a' + ((i + k) % 26) as u8).collect()
}

async fn tcp_conn(i: usize, c: &Common, start: Instant, end: Instant) -> anyhow::Result<Vec<u32>> {
    let mut s = tokio::net::TcpStream::connect(c.addr)
        .await
        .with_context(|| format!("connect {}", c.addr))?;
    s.set_nodelay(true)?;
    let (msg, want) = framed(&c.framing, c.prefix.as_bytes(), &message(i, c.size));
    let mut buf = vec![0u8; want.len()];
    let mut lats = Vec::new();
    loop {
        let t0 = Instant::now();
        if t0 >= end {
            break;
        }
        s.write_all(&msg).await?;
        s.read_exact(&mut buf).await.context("reading the reply")?;
        if buf != want {
            bail!("wrong reply: {:?}", String::from_utf8_lossy(&buf));
        }
        if t0 >= start {
            lats.push(t0.elapsed().as_micros().min(u32::MAX as u128) as u32);
        }
    }
    Ok(lats)
}

async fn udp_conn(i: usize, c: &Common, start: Instant, end: Instant) -> anyhow::Result<Vec<u32>> {
    let bind: SocketAddr = if c.addr.is_ipv4() {
        "0.0.0.0:0".parse()?
    } else {
        "[::]:0".parse()?
    };
    let s = tokio::net::UdpSocket::bind(bind).await?;
    s.connect(c.addr).await?;
    let msg = message(i, c.size);
    let mut buf = vec![0u8; 65536];
    let mut lats = Vec::new();
    let mut lost = 0u64;
    loop {
        let t0 = Instant::now();
        if t0 >= end {
            break;
        }
        s.send(&msg).await?;
        match tokio::time::timeout(Duration::from_millis(200), s.recv(&mut buf)).await {
            Ok(r) => {
                r?;
                if t0 >= start {
                    lats.push(t0.elapsed().as_micros().min(u32::MAX as u128) as u32);
                }
            }
            Err(_) => lost += 1,
        }
    }
    if lost > 0 {
        eprintln!("udp socket {i}: {lost} datagrams lost (timed out)");
    }
    Ok(lats)
}
