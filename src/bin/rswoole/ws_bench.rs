//! `rswoole bench ws-echo` and `ws-broadcast`: WebSocket load over tokio TCP, using the
//! codec's client handshake and frames.
//!
//! - ws-echo: each connection sends a text message, waits for its echo, repeats.
//! - ws-broadcast: `--conns` clients connect; `--senders` of them send text messages (at most
//!   `--window` unconfirmed each: a sender's message is confirmed when its own copy comes
//!   back); the server sends every message to every client. Counts deliveries/s (frames
//!   received by all clients).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::{Buf, BytesMut};
use clap::Args;
use rswoole_codec::ws::handshake::{validate_response, write_request};
use rswoole_codec::ws::{generate_key, Connection, DeflateConfig, MessageKind, WsConfig, WsEvent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Options of `rswoole bench ws-broadcast`.
#[derive(Args, Debug, Clone)]
pub(crate) struct Broadcast {
    /// Server address.
    #[arg(long, default_value = "127.0.0.1:9502")]
    addr: SocketAddr,
    /// More server addresses (repeatable; e.g. the other nodes of a cluster): client `i`
    /// connects to the `i % n`-th of `--addr` and these (client 0, a sender, to `--addr`).
    #[arg(long = "also")]
    also: Vec<SocketAddr>,
    /// Connected clients (each receives every message).
    #[arg(long, default_value_t = 1000)]
    conns: usize,
    /// How many of them send.
    #[arg(long, default_value_t = 1)]
    senders: usize,
    /// Messages a sender may have unconfirmed.
    #[arg(long, default_value_t = 8)]
    window: usize,
    /// How long to measure.
    #[arg(long, default_value_t = 5)]
    secs: u64,
    /// Message size in bytes.
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Load-generator threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Warm-up before measuring, in milliseconds.
    #[arg(long, default_value_t = 500)]
    warmup_ms: u64,
    /// Also report the CPU time used meanwhile by the processes of this process group (the
    /// server's), per delivery.
    #[arg(long)]
    server_pgid: Option<i32>,
}

/// CPU time (user + system, in clock ticks) of every process in process group `pgid`.
fn group_ticks(pgid: i32) -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut total = 0;
    for e in dir.flatten() {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // Fields after the parenthesised command: state ppid pgrp ... utime(14) stime(15).
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
            continue;
        };
        let f: Vec<&str> = rest.split(' ').collect();
        if f.len() > 13 && f[2].parse() == Ok(pgid) {
            total += f[11].parse::<u64>().unwrap_or(0) + f[12].parse::<u64>().unwrap_or(0);
        }
    }
    total
}

/// Connects and upgrades; returns the stream, the client codec and bytes read past the 101.
pub(crate) async fn connect(addr: SocketAddr) -> anyhow::Result<(TcpStream, Connection, BytesMut)> {
    let mut s = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connect {addr}"))?;
    s.set_nodelay(true)?;
    let seed = u64::from(std::process::id()) << 32
        ^ (Instant::now().elapsed().as_nanos() as u64)
        ^ (&s as *const _ as u64);
    let mut r = [0u8; 16];
    r[..8].copy_from_slice(&seed.to_le_bytes());
    r[8..].copy_from_slice(&seed.rotate_left(17).to_le_bytes());
    let key = generate_key(r);
    let dc = DeflateConfig {
        enabled: false,
        ..Default::default()
    };
    let mut req = BytesMut::new();
    write_request(&mut req, &addr.to_string(), "/", &key, &[], &dc);
    s.write_all(&req).await?;
    let mut buf = BytesMut::with_capacity(4096);
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if s.read_buf(&mut buf).await? == 0 {
            bail!("server closed during the handshake");
        }
    };
    let head = buf.split_to(end);
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(&str, &[u8])> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim(), v.trim().as_bytes()))
        .collect();
    let acc = validate_response(status, headers, &key, &[], &dc)
        .map_err(|e| anyhow::anyhow!("handshake refused ({e}): {text}"))?;
    let conn = Connection::client(WsConfig::default(), acc.deflate, seed | 1);
    Ok((s, conn, buf))
}

/// One ws-echo connection: round trips until `end`; latencies (µs) after `start`.
pub(crate) async fn echo_conn(
    addr: SocketAddr,
    msg: Vec<u8>,
    start: Instant,
    end: Instant,
) -> anyhow::Result<Vec<u32>> {
    let (mut s, mut conn, mut buf) = connect(addr).await?;
    let mut lats = Vec::new();
    let mut frame = BytesMut::new();
    loop {
        let t0 = Instant::now();
        if t0 >= end {
            break;
        }
        frame.clear();
        conn.encode_message(MessageKind::Text, &msg, &mut frame)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        s.write_all(&frame).await?;
        loop {
            match conn.feed(&mut buf).map_err(|e| anyhow::anyhow!("{e}"))? {
                Some(WsEvent::Message { data, .. }) => {
                    if data[..] != msg[..] {
                        bail!("wrong echo");
                    }
                    break;
                }
                Some(_) => continue,
                None => {
                    if s.read_buf(&mut buf).await? == 0 {
                        bail!("server closed");
                    }
                }
            }
        }
        if t0 >= start {
            lats.push(t0.elapsed().as_micros().min(u32::MAX as u128) as u32);
        }
    }
    Ok(lats)
}

/// Counts the (unmasked, server-sent) frames at the front of `buf` and consumes them.
fn count_frames(buf: &mut BytesMut) -> u64 {
    let mut n = 0;
    loop {
        if buf.len() < 2 {
            return n;
        }
        let len7 = (buf[1] & 0x7f) as usize;
        let (hl, len) = match len7 {
            126 if buf.len() >= 4 => (4, u16::from_be_bytes([buf[2], buf[3]]) as usize),
            127 if buf.len() >= 10 => (
                10,
                u64::from_be_bytes(buf[2..10].try_into().expect("8 bytes")) as usize,
            ),
            126 | 127 => return n,
            l => (2, l),
        };
        if buf.len() < hl + len {
            return n;
        }
        buf.advance(hl + len);
        n += 1;
    }
}

/// `rswoole bench ws-broadcast`.
pub(crate) fn broadcast(b: Broadcast) -> anyhow::Result<()> {
    if b.conns == 0 || b.senders == 0 || b.senders > b.conns || b.window == 0 {
        bail!("need 1 <= --senders <= --conns and --window >= 1");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(b.threads.max(1))
        .enable_all()
        .build()?;
    let deliveries = rt.block_on(async {
        let counted = Arc::new(AtomicU64::new(0));
        let measuring = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        // Connect everyone first (a few at a time).
        let mut conns = Vec::with_capacity(b.conns);
        for chunk in (0..b.conns).collect::<Vec<_>>().chunks(100) {
            let mut hs = Vec::new();
            for &i in chunk {
                let k = i % (1 + b.also.len());
                let addr = if k == 0 { b.addr } else { b.also[k - 1] };
                hs.push(tokio::spawn(connect(addr)));
            }
            for h in hs {
                conns.push(h.await??);
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let msg = vec![b'm'; b.size];
        let mut tasks = Vec::new();
        for (i, (s, conn, buf)) in conns.into_iter().enumerate() {
            let (counted, measuring, stop) = (counted.clone(), measuring.clone(), stop.clone());
            let sender = i < b.senders;
            let (msg, window) = (msg.clone(), b.window);
            tasks.push(tokio::spawn(async move {
                let (mut rd, mut wr) = s.into_split();
                let mut conn = conn;
                let mut buf = buf;
                let outstanding =
                    Arc::new(tokio::sync::Semaphore::new(if sender { window } else { 0 }));
                let o2 = outstanding.clone();
                let stop2 = stop.clone();
                // Receivers keep their write half (dropping it would send FIN, and a WebSocket
                // server rightly closes a client that half-closes).
                let mut keep = None;
                let writer = if !sender {
                    keep = Some(wr);
                    None
                } else {
                    Some(tokio::spawn(async move {
                        let mut frame = BytesMut::new();
                        while !stop2.load(Relaxed) {
                            let Ok(p) = o2.acquire().await else { return };
                            p.forget();
                            frame.clear();
                            if conn
                                .encode_message(MessageKind::Text, &msg, &mut frame)
                                .is_err()
                            {
                                return;
                            }
                            if wr.write_all(&frame).await.is_err() {
                                return;
                            }
                        }
                    }))
                };
                // Senders learn their own messages back among the others: every client gets
                // every message, so for one sender a delivery of "from{me}" confirms one.
                // Simplification: with one sender every frame is its own; with several, each
                // sender counts 1/senders of its frames as confirmations (approximate window).
                let mut credit = 0usize;
                let senders = b.senders;
                loop {
                    if stop.load(Relaxed) {
                        break;
                    }
                    match tokio::time::timeout(Duration::from_millis(100), rd.read_buf(&mut buf))
                        .await
                    {
                        Ok(Ok(0)) | Ok(Err(_)) => break,
                        Ok(Ok(_)) => {}
                        Err(_) => continue,
                    }
                    let n = count_frames(&mut buf);
                    if measuring.load(Relaxed) {
                        counted.fetch_add(n, Relaxed);
                    }
                    if sender {
                        credit += n as usize;
                        let give = credit / senders;
                        credit %= senders;
                        outstanding.add_permits(give);
                    }
                    if buf.capacity() > 1 << 20 && buf.is_empty() {
                        buf = BytesMut::with_capacity(4096);
                    }
                }
                if let Some(w) = writer {
                    w.abort();
                }
                drop(keep);
            }));
        }
        tokio::time::sleep(Duration::from_millis(b.warmup_ms)).await;
        let cpu0 = b.server_pgid.map(group_ticks);
        measuring.store(true, Relaxed);
        let t0 = Instant::now();
        tokio::time::sleep(Duration::from_secs(b.secs)).await;
        measuring.store(false, Relaxed);
        let cpu = cpu0.map(|c0| b.server_pgid.map(group_ticks).unwrap_or(c0) - c0);
        let secs = t0.elapsed().as_secs_f64();
        let n = counted.load(Relaxed);
        stop.store(true, Relaxed);
        for t in tasks {
            let _ = t.await;
        }
        Ok::<_, anyhow::Error>((n, secs, cpu))
    })?;
    let (deliveries, secs, cpu) = (deliveries.0, deliveries.1, deliveries.2);
    let rate = deliveries as f64 / secs;
    println!(
        "ws-broadcast: {} clients, {} sender(s), window {}, {} B: {rate:.0} deliveries/s ({:.0} messages/s)",
        b.conns,
        b.senders,
        b.window,
        b.size,
        rate / b.conns as f64
    );
    // Clock ticks are 1/100 s on Linux.
    let cpu_us = cpu.map(|t| t as f64 * 10_000.0 / deliveries.max(1) as f64);
    if let Some(us) = cpu_us {
        println!("server CPU: {us:.2} us per delivery");
    }
    println!(
        "result kind=ws-broadcast conns={} senders={} size={} rps={rate:.0} server_us_per_delivery={}",
        b.conns,
        b.senders,
        b.size,
        cpu_us.map_or("-".into(), |u| format!("{u:.2}"))
    );
    Ok(())
}

/// Options of `rswoole bench ws-idle`.
#[derive(Args, Debug, Clone)]
pub(crate) struct Idle {
    /// Server address.
    #[arg(long, default_value = "127.0.0.1:9502")]
    addr: SocketAddr,
    /// Connections to open and keep idle.
    #[arg(long, default_value_t = 10_000)]
    conns: usize,
    /// How long to hold them once all are open.
    #[arg(long, default_value_t = 5)]
    hold_secs: u64,
}

/// `rswoole bench ws-idle`: opens `--conns` WebSocket connections, prints
/// `result kind=ws-idle conns=N` once all are upgraded, holds them, then closes them all.
/// Measure the server's memory meanwhile (`scripts/bench_ws.sh`).
pub(crate) fn idle(o: Idle) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut conns = Vec::with_capacity(o.conns);
        let ids: Vec<usize> = (0..o.conns).collect();
        for chunk in ids.chunks(200) {
            let hs: Vec<_> = chunk
                .iter()
                .map(|_| tokio::spawn(connect(o.addr)))
                .collect();
            for h in hs {
                conns.push(h.await??);
            }
        }
        println!("result kind=ws-idle conns={}", conns.len());
        tokio::time::sleep(Duration::from_secs(o.hold_secs)).await;
        drop(conns);
        Ok(())
    })
}
