//! `rswoole bench ws-latency` and `ws-push-rtt`: delivery latency through the chat example
//! (`examples/chat.rs`), one node or a cluster of nodes.
//!
//! - ws-latency: `--conns` clients spread over `--addr` and `--also` (client `i` on the
//!   `i % n`-th); client 0 sends `--rate` messages a second, each carrying its send time
//!   (`t<µs since the epoch>`); every client that receives a message (the chat sends it to
//!   all) records now − send time. Open loop: the rate does not follow the deliveries, so the
//!   latency is not hidden by back-pressure. Reports p50/p99/max per server address and
//!   overall, and how many deliveries were missing.
//! - ws-push-rtt: `--pairs` clients A on `--addr` and as many C on `--peer` (plus `--idle`
//!   clients spread over all the addresses); each A asks its node to push to its C
//!   (`/push C_ID p<seq> A_ID`: routed to C's node through Redis, answered `sent`), and C
//!   answers the same way (`/push A_ID r<seq>`). A measures the time from its request to C's
//!   answer (two cross-node pushes) and to its own `sent` (one request/answer through the
//!   owning node). Closed loop per pair.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use bytes::BytesMut;
use clap::Args;
use rswoole_codec::ws::{Connection, MessageKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use super::ws_bench::connect;

/// Options of `rswoole bench ws-latency`.
#[derive(Args, Debug, Clone)]
pub(crate) struct Latency {
    /// Server address (client 0, the sender, connects here).
    #[arg(long, default_value = "127.0.0.1:9502")]
    addr: SocketAddr,
    /// More server addresses (repeatable: the other nodes of a cluster).
    #[arg(long = "also")]
    also: Vec<SocketAddr>,
    /// Connected clients (each receives every message).
    #[arg(long, default_value_t = 900)]
    conns: usize,
    /// Messages per second from the sender.
    #[arg(long, default_value_t = 100)]
    rate: u64,
    /// How long to measure.
    #[arg(long, default_value_t = 5)]
    secs: u64,
    /// Warm-up before measuring, in milliseconds.
    #[arg(long, default_value_t = 500)]
    warmup_ms: u64,
    /// Load-generator threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

/// Options of `rswoole bench ws-push-rtt`.
#[derive(Args, Debug, Clone)]
pub(crate) struct PushRtt {
    /// Node A: the askers connect here.
    #[arg(long, default_value = "127.0.0.1:9502")]
    addr: SocketAddr,
    /// Node C: the answerers connect here.
    #[arg(long)]
    peer: SocketAddr,
    /// More nodes the idle clients spread over (repeatable).
    #[arg(long = "also")]
    also: Vec<SocketAddr>,
    /// Asker/answerer pairs, each one round trip at a time.
    #[arg(long, default_value_t = 20)]
    pairs: usize,
    /// Idle clients spread over `--addr`, `--peer` and `--also`.
    #[arg(long, default_value_t = 0)]
    idle: usize,
    /// How long to measure.
    #[arg(long, default_value_t = 5)]
    secs: u64,
    /// Warm-up before measuring, in milliseconds.
    #[arg(long, default_value_t = 500)]
    warmup_ms: u64,
    /// Load-generator threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// p50, p99 and max of `v` (sorted here), in µs.
fn pct(v: &mut [u32]) -> (u32, u32, u32) {
    if v.is_empty() {
        return (0, 0, 0);
    }
    v.sort_unstable();
    let at = |q: f64| v[((v.len() as f64 * q) as usize).min(v.len() - 1)];
    (at(0.50), at(0.99), v[v.len() - 1])
}

/// The payloads of the whole (unmasked, server-sent, unfragmented) frames at the front of
/// `buf`, consumed.
fn frames(buf: &mut BytesMut) -> Vec<BytesMut> {
    let mut out = Vec::new();
    loop {
        if buf.len() < 2 {
            return out;
        }
        let len7 = (buf[1] & 0x7f) as usize;
        let (hl, len) = match len7 {
            126 if buf.len() >= 4 => (4, u16::from_be_bytes([buf[2], buf[3]]) as usize),
            127 if buf.len() >= 10 => (
                10,
                u64::from_be_bytes(buf[2..10].try_into().expect("8 bytes")) as usize,
            ),
            126 | 127 => return out,
            l => (2, l),
        };
        if buf.len() < hl + len {
            return out;
        }
        let _ = buf.split_to(hl);
        out.push(buf.split_to(len));
    }
}

/// A client's receiving side: text messages, in order.
struct Rx {
    rd: OwnedReadHalf,
    buf: BytesMut,
    ready: std::collections::VecDeque<String>,
}

impl Rx {
    /// The next text message, or `None` once `stop` is set (checked every 100 ms).
    async fn next(&mut self, stop: &AtomicBool) -> anyhow::Result<Option<String>> {
        loop {
            if let Some(m) = self.ready.pop_front() {
                return Ok(Some(m));
            }
            if stop.load(Relaxed) {
                return Ok(None);
            }
            match tokio::time::timeout(Duration::from_millis(100), self.rd.read_buf(&mut self.buf))
                .await
            {
                Ok(Ok(0)) => bail!("server closed"),
                Ok(Ok(_)) => {
                    for f in frames(&mut self.buf) {
                        self.ready
                            .push_back(String::from_utf8_lossy(&f).into_owned());
                    }
                }
                Ok(Err(e)) => return Err(e.into()),
                Err(_) => {}
            }
        }
    }
}

/// A client's sending side.
struct Tx {
    wr: OwnedWriteHalf,
    conn: Connection,
    frame: BytesMut,
}

impl Tx {
    async fn send(&mut self, text: &str) -> anyhow::Result<()> {
        self.frame.clear();
        self.conn
            .encode_message(MessageKind::Text, text.as_bytes(), &mut self.frame)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        self.wr.write_all(&self.frame).await?;
        Ok(())
    }
}

async fn open(addr: SocketAddr) -> anyhow::Result<(Rx, Tx)> {
    let (s, conn, buf) = connect(addr).await?;
    let (rd, wr) = s.into_split();
    let mut rx = Rx {
        rd,
        buf,
        ready: Default::default(),
    };
    for f in frames(&mut rx.buf) {
        rx.ready.push_back(String::from_utf8_lossy(&f).into_owned());
    }
    Ok((
        rx,
        Tx {
            wr,
            conn,
            frame: BytesMut::new(),
        },
    ))
}

/// Sends `/whoami`; the cluster id it answers.
async fn whoami(rx: &mut Rx, tx: &mut Tx, stop: &AtomicBool) -> anyhow::Result<String> {
    tx.send("/whoami").await?;
    while let Some(m) = rx.next(stop).await? {
        if let Some(id) = m.trim_end().strip_prefix("you are ") {
            return Ok(id.to_string());
        }
    }
    bail!("no answer to /whoami")
}

/// Opens `n` clients, client `i` on `addrs[i % addrs.len()]`, 100 at a time: (address index,
/// client).
async fn open_all(addrs: &[SocketAddr], n: usize) -> anyhow::Result<Vec<(usize, Rx, Tx)>> {
    let mut out = Vec::with_capacity(n);
    let ids: Vec<usize> = (0..n).collect();
    for chunk in ids.chunks(100) {
        let hs: Vec<_> = chunk
            .iter()
            .map(|&i| {
                let k = i % addrs.len();
                let a = addrs[k];
                tokio::spawn(async move { open(a).await.map(|(r, t)| (k, r, t)) })
            })
            .collect();
        for h in hs {
            out.push(h.await?.context("connect")?);
        }
    }
    Ok(out)
}

fn runtime(threads: usize) -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()?)
}

/// `rswoole bench ws-latency`.
pub(crate) fn latency(o: Latency) -> anyhow::Result<()> {
    if o.conns == 0 || o.rate == 0 {
        bail!("need --conns >= 1 and --rate >= 1");
    }
    let addrs: Vec<SocketAddr> = std::iter::once(o.addr).chain(o.also.clone()).collect();
    let rt = runtime(o.threads)?;
    let (by_addr, sent) = rt.block_on(async {
        let clients = open_all(&addrs, o.conns).await?;
        // Let every client's on_open run before the first measured message.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let stop = Arc::new(AtomicBool::new(false));
        let start = now_us() + o.warmup_ms * 1000;
        let end = start + o.secs * 1_000_000;
        let mut tasks = Vec::new();
        let mut sender = None;
        for (k, mut rx, tx) in clients {
            if sender.is_none() {
                sender = Some(tx);
            } else {
                // Receivers keep their write half (a FIN would make the server close them).
                tasks.push(tokio::spawn({
                    let stop = stop.clone();
                    async move {
                        let mut lats = Vec::new();
                        while let Some(m) = rx.next(&stop).await? {
                            let t = m
                                .trim_end()
                                .rsplit_once(":t")
                                .and_then(|(_, t)| t.parse::<u64>().ok());
                            if let Some(t) = t.filter(|t| (start..end).contains(t)) {
                                lats.push(now_us().saturating_sub(t).min(u32::MAX as u64) as u32);
                            }
                        }
                        drop(tx);
                        Ok::<_, anyhow::Error>((k, lats))
                    }
                }));
                continue;
            }
            // The sender receives too (its own messages come back like everyone's).
            tasks.push(tokio::spawn({
                let stop = stop.clone();
                async move {
                    let mut lats = Vec::new();
                    while let Some(m) = rx.next(&stop).await? {
                        let t = m
                            .trim_end()
                            .rsplit_once(":t")
                            .and_then(|(_, t)| t.parse::<u64>().ok());
                        if let Some(t) = t.filter(|t| (start..end).contains(t)) {
                            lats.push(now_us().saturating_sub(t).min(u32::MAX as u64) as u32);
                        }
                    }
                    Ok::<_, anyhow::Error>((k, lats))
                }
            }));
        }
        let mut tx = sender.context("no sender")?;
        let gap = Duration::from_micros(1_000_000 / o.rate);
        let mut tick = tokio::time::interval(gap);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut sent = 0u64;
        loop {
            tick.tick().await;
            let t = now_us();
            if t >= end {
                break;
            }
            tx.send(&format!("t{t}")).await?;
            if t >= start {
                sent += 1;
            }
        }
        // Late deliveries still count (up to 2 s).
        tokio::time::sleep(Duration::from_secs(2)).await;
        stop.store(true, Relaxed);
        let mut by_addr: HashMap<usize, Vec<u32>> = HashMap::new();
        for t in tasks {
            let (k, lats) = t.await??;
            by_addr.entry(k).or_default().extend(lats);
        }
        drop(tx);
        Ok::<_, anyhow::Error>((by_addr, sent))
    })?;
    let mut all = Vec::new();
    let mut keys: Vec<usize> = by_addr.keys().copied().collect();
    keys.sort_unstable();
    for k in keys {
        let mut v = by_addr[&k].clone();
        let (p50, p99, max) = pct(&mut v);
        println!(
            "ws-latency: clients of {}: {} deliveries, p50 {p50} us, p99 {p99} us, max {max} us",
            addrs[k],
            v.len()
        );
        all.extend(v);
    }
    let expected = sent * o.conns as u64;
    let missing = expected.saturating_sub(all.len() as u64);
    let (p50, p99, max) = pct(&mut all);
    println!(
        "ws-latency: {} clients on {} server(s), {} msg/s, {sent} messages: {} deliveries ({missing} missing), p50 {p50} us, p99 {p99} us, max {max} us",
        o.conns,
        addrs.len(),
        o.rate,
        all.len()
    );
    println!(
        "result kind=ws-latency conns={} servers={} rate={} deliveries={} missing={missing} p50_us={p50} p99_us={p99} max_us={max}",
        o.conns,
        addrs.len(),
        o.rate,
        all.len()
    );
    Ok(())
}

/// `rswoole bench ws-push-rtt`.
pub(crate) fn push_rtt(o: PushRtt) -> anyhow::Result<()> {
    if o.pairs == 0 {
        bail!("need --pairs >= 1");
    }
    let rt = runtime(o.threads)?;
    let (mut rtt, mut ack, rounds) = rt.block_on(async {
        let stop = Arc::new(AtomicBool::new(false));
        let askers = open_all(&[o.addr], o.pairs).await?;
        let answerers = open_all(&[o.peer], o.pairs).await?;
        let idle_addrs: Vec<SocketAddr> =
            [o.addr, o.peer].into_iter().chain(o.also.clone()).collect();
        let idle = if o.idle > 0 {
            open_all(&idle_addrs, o.idle).await?
        } else {
            Vec::new()
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        let start = Instant::now() + Duration::from_millis(o.warmup_ms);
        let end = start + Duration::from_secs(o.secs);
        let mut tasks = Vec::new();
        for ((_, mut arx, mut atx), (_, mut crx, mut ctx)) in askers.into_iter().zip(answerers) {
            let a_id = whoami(&mut arx, &mut atx, &stop).await?;
            let c_id = whoami(&mut crx, &mut ctx, &stop).await?;
            // C: answers every `p<seq> A_ID` with `/push A_ID r<seq>`.
            let stop_c = stop.clone();
            let answerer = tokio::spawn(async move {
                while let Some(m) = crx.next(&stop_c).await? {
                    if let Some((seq, to)) = m
                        .trim_end()
                        .strip_prefix('p')
                        .and_then(|r| r.split_once(' '))
                    {
                        ctx.send(&format!("/push {to} r{seq}")).await?;
                    }
                }
                Ok::<_, anyhow::Error>(())
            });
            let stop_a = stop.clone();
            tasks.push(tokio::spawn(async move {
                let (mut rtt, mut ack) = (Vec::new(), Vec::new());
                let mut seq = 0u64;
                while Instant::now() < end {
                    seq += 1;
                    let t0 = Instant::now();
                    atx.send(&format!("/push {c_id} p{seq} {a_id}")).await?;
                    let (mut got_ack, mut got_r) = (false, false);
                    while !(got_ack && got_r) {
                        let Some(m) = arx.next(&stop_a).await? else {
                            break;
                        };
                        let m = m.trim_end();
                        let us = t0.elapsed().as_micros().min(u32::MAX as u128) as u32;
                        if m == "sent" && !got_ack {
                            got_ack = true;
                            if t0 >= start {
                                ack.push(us);
                            }
                        } else if m == format!("r{seq}") {
                            got_r = true;
                            if t0 >= start {
                                rtt.push(us);
                            }
                        } else if m.starts_with("error") {
                            bail!("push refused: {m}");
                        }
                    }
                    if !(got_ack && got_r) {
                        bail!("round {seq} unanswered");
                    }
                }
                drop(atx);
                Ok::<_, anyhow::Error>((rtt, ack))
            }));
            tasks_keep(answerer);
        }
        let mut rtt = Vec::new();
        let mut ack = Vec::new();
        for t in tasks {
            let (r, a) = t.await??;
            rtt.extend(r);
            ack.extend(a);
        }
        stop.store(true, Relaxed);
        drop(idle);
        let rounds = rtt.len();
        Ok::<_, anyhow::Error>((rtt, ack, rounds))
    })?;
    let (r50, r99, rmax) = pct(&mut rtt);
    let (a50, a99, amax) = pct(&mut ack);
    let rate = rounds as f64 / o.secs as f64;
    println!(
        "ws-push-rtt: {} pairs ({} -> {}), {} idle: {rounds} round trips ({rate:.0}/s); A->C->A p50 {r50} us, p99 {r99} us, max {rmax} us; A's answer (sent) p50 {a50} us, p99 {a99} us, max {amax} us",
        o.pairs, o.addr, o.peer, o.idle
    );
    println!(
        "result kind=ws-push-rtt pairs={} rps={rate:.0} p50_us={r50} p99_us={r99} max_us={rmax} ack_p50_us={a50} ack_p99_us={a99}",
        o.pairs
    );
    Ok(())
}

/// Lets an answerer run on (it ends with the runtime, at the end of the run).
fn tasks_keep(h: tokio::task::JoinHandle<anyhow::Result<()>>) {
    drop(h);
}
