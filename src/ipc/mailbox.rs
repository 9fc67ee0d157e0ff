//! Worker-to-worker records in [`Mode::Base`](crate::Mode::Base), where there is no master
//! pipe: each worker binds a unix datagram socket in the abstract namespace, named after the
//! master's pid and the worker id, and the others send straight to it.
//!
//! Datagrams carry IPC records ([`ipc::encode`]); every record's `listener` field is the
//! sender's worker id, and payloads above [`ipc::MAX_CHUNK`] are chunked and reassembled per
//! sender and kind. Two kinds of traffic share a mailbox:
//!
//! - `send_message` ([`send`]): a `PipeMessage` record, written synchronously by the caller
//!   (all chunks before returning, so the chunks of one message never interleave); the
//!   receiver runs `on_pipe_message`.
//! - WebSocket output for the receiver's connections (`WsPushFwd`, `WsBroadcastFwd`,
//!   `WsDisconnectFwd`, see `crate::websocket`) and cluster connection operations on them
//!   (`ClusterOpFwd`, answered by the receiver through Redis), queued in the sender's [`Outboxes`]: one
//!   queue and one writer task per target worker, records batched into datagrams of at most
//!   [`ipc::MAX_DGRAM`], written in order over a datagram socket connected to the target's
//!   mailbox. The caller never blocks; a target whose receive queue is full is waited for
//!   without holding up the sender's event loop. The receiver applies these records in its
//!   mailbox loop, in arrival order (no task per record), so one sender's broadcasts reach
//!   the receiver's clients in the order they were made.
//!
//! What `Ok` from [`Outboxes::push`] means: the record is queued for a target that the
//! caller checked was serving (`WorkerCtx` looks in shared memory whether the target
//! connection is open and owned by its worker's current, serving incarnation, and whether a
//! broadcast's target worker serves). It is lost only if that worker dies (or is replaced)
//! before it reads the record — its socket is then gone (`ECONNREFUSED`/`ENOENT`) — and in
//! Base mode its clients die with it, so no one could have received it. That loss is never
//! silent: the writer logs a warning naming the target worker, how many pushes, broadcasts
//! and disconnects were lost and for which connections, and counts them.

use std::collections::HashMap;
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::ipc::{self, Header, Kind, Reassembler, F_FIRST, F_MORE};

/// How long a send may block when the target's queue is full.
const SEND_TIMEOUT: Duration = Duration::from_secs(1);

/// How long an outbox writer waits for a live target to take a datagram before it logs a
/// warning (it goes on waiting: a target that does not read is refused more at
/// [`MAX_QUEUED`], so callers see it; one that dies makes the send fail).
const STALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Most bytes queued in one outbox; records beyond it are refused ([`Refused::Backlog`]).
const MAX_QUEUED: usize = 64 << 20;

fn addr(master_pid: u32, worker: usize) -> io::Result<SocketAddr> {
    SocketAddr::from_abstract_name(format!("rswoole.{master_pid}.w{worker}").as_bytes())
}

/// Sends `data` from worker `from` to worker `to` of the server whose master is `master_pid`.
pub(crate) fn send(master_pid: u32, from: usize, to: usize, data: &[u8]) -> io::Result<()> {
    let target = addr(master_pid, to)?;
    let sock = UnixDatagram::unbound()?;
    sock.set_write_timeout(Some(SEND_TIMEOUT))?;
    let mut buf = BytesMut::new();
    ipc::encode(
        &mut buf,
        Header {
            kind: Kind::PipeMessage,
            flags: 0,
            listener: from as u16,
            session: 0,
            seq: 0,
            stream: 0,
        },
        data,
    );
    while !buf.is_empty() {
        let len = u32::from_le_bytes(buf[..4].try_into().expect("4 bytes")) as usize;
        let rec = buf.split_to(ipc::HDR + len);
        sock.send_to_addr(&rec, &target)?;
    }
    Ok(())
}

/// Worker `id`'s bound mailbox, see [`bind`] and [`serve`].
#[derive(Debug)]
pub(crate) struct Mailbox(tokio::net::UnixDatagram);

/// Binds worker `id`'s mailbox, waiting while a previous incarnation still holds the name
/// (a replaced worker lets go of it when it gets SIGTERM). Bound before the worker accepts
/// its first connection, so that whatever other workers send for its connections reaches
/// it; what arrives before [`serve`] runs waits in the socket.
pub(crate) async fn bind(master_pid: u32, id: usize) -> io::Result<Mailbox> {
    let started = tokio::time::Instant::now();
    let mut warned = false;
    loop {
        match addr(master_pid, id)
            .and_then(|a| UnixDatagram::bind_addr(&a))
            .and_then(|s| {
                s.set_nonblocking(true)?;
                tokio::net::UnixDatagram::from_std(s)
            }) {
            Ok(s) => return Ok(Mailbox(s)),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                if !warned && started.elapsed() > STALL_TIMEOUT {
                    warned = true;
                    tracing::warn!(worker = id, "the previous incarnation still holds this worker's mailbox; waiting for it to exit");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Calls `deliver(header, payload)` for every whole record of a known kind (`PipeMessage`
/// and the `Ws*Fwd` kinds) that arrives in worker `id`'s mailbox, in arrival order, until the
/// task is aborted (which closes the mailbox). `header.listener` is the sender's worker id.
pub(crate) async fn serve(mailbox: Mailbox, id: usize, deliver: impl Fn(&Header, &[u8])) {
    let sock = mailbox.0;
    let mut buf = vec![0u8; ipc::MAX_DGRAM];
    // Per sender and kind: `send_message` chunks (written by the caller) and outbox chunks
    // (written by a writer task) of one sender may interleave, those of one kind never do.
    let mut partial: HashMap<(u16, u8), Reassembler> = HashMap::new();
    loop {
        let n = match sock.recv(&mut buf).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(worker = id, error = %e, "send_message mailbox read failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        for rec in ipc::decode(&buf[..n]) {
            match rec {
                Ok((h, payload))
                    if matches!(
                        h.kind,
                        Kind::PipeMessage
                            | Kind::WsPushFwd
                            | Kind::WsBroadcastFwd
                            | Kind::WsDisconnectFwd
                            | Kind::ClusterOpFwd
                    ) =>
                {
                    let key = (h.listener, h.kind as u8);
                    if h.flags & (F_FIRST | F_MORE) == F_FIRST {
                        // Whole in one record: no copy.
                        partial.remove(&key);
                        deliver(&h, payload);
                    } else if let Some(msg) = partial.entry(key).or_default().feed(&h, payload) {
                        deliver(&h, &msg);
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(worker = id, error = %e, "malformed mailbox datagram");
                    break;
                }
            }
        }
    }
}

/// Why [`Outboxes::push`] refused a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// No such worker (or the sender itself).
    NoWorker,
    /// The target has [`MAX_QUEUED`] bytes waiting already (it does not read).
    Backlog,
}

/// A worker's queues of records for the other workers' mailboxes (Base mode), see the module
/// docs.
#[derive(Debug)]
pub(crate) struct Outboxes {
    master_pid: u32,
    from: usize,
    /// Indexed by target worker id (the sender's own entry is never used).
    boxes: Vec<Arc<Outbox>>,
}

#[derive(Debug, Default)]
struct Outbox {
    state: Mutex<OutState>,
    notify: Notify,
    /// Records that could not be written (the target was gone), see [`Outbox::lost`].
    lost: AtomicU64,
}

#[derive(Debug, Default)]
struct OutState {
    q: ipc::DgramQueue,
    /// Bytes in `q`.
    queued: usize,
}

impl Outboxes {
    /// Outboxes of worker `from` for the `workers` workers of the server whose master is
    /// `master_pid`. Nothing is sent until [`start`](Outboxes::start).
    pub(crate) fn new(master_pid: u32, from: usize, workers: usize) -> Outboxes {
        Outboxes {
            master_pid,
            from,
            boxes: (0..workers).map(|_| Arc::default()).collect(),
        }
    }

    /// The worker ids records can go to (every worker but this one).
    pub(crate) fn targets(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.boxes.len()).filter(move |&w| w != self.from)
    }

    /// Queues one record for worker `to` (`h.listener` is set to this worker's id). Records
    /// to one target go out in the order they were queued.
    pub(crate) fn push(&self, to: usize, mut h: Header, payload: &[u8]) -> Result<(), Refused> {
        let ob = self
            .boxes
            .get(to)
            .filter(|_| to != self.from)
            .ok_or(Refused::NoWorker)?;
        h.listener = self.from as u16;
        let mut st = ob.state.lock();
        let size = payload.len() + ipc::HDR * payload.len().div_ceil(ipc::MAX_CHUNK).max(1);
        if st.queued + size > MAX_QUEUED {
            drop(st);
            tracing::warn!(
                worker = to,
                bytes = payload.len(),
                "worker {to} does not read its mailbox; WebSocket output for its clients dropped"
            );
            return Err(Refused::Backlog);
        }
        st.q.push(h, payload);
        st.queued += size;
        drop(st);
        ob.notify.notify_one();
        Ok(())
    }

    /// Spawns one writer task per target on the current `LocalSet`; they run until the
    /// process exits.
    pub(crate) fn start(self: &Arc<Self>) {
        for to in self.targets() {
            let ob = self.boxes[to].clone();
            let (master_pid, from) = (self.master_pid, self.from);
            tokio::task::spawn_local(async move { ob.run(master_pid, from, to).await });
        }
    }

    /// Records for worker `to` that were queued but could not be written (it was gone).
    #[cfg(test)]
    pub(crate) fn lost(&self, to: usize) -> u64 {
        self.boxes.get(to).map_or(0, |b| b.lost.load(Relaxed))
    }

    /// Waits (at most `limit`) until everything queued was handed to the kernel.
    pub(crate) async fn drain(&self, limit: Duration) {
        let _ = tokio::time::timeout(limit, async {
            while self.boxes.iter().any(|b| b.state.lock().queued > 0) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
    }
}

impl Outbox {
    fn next_dgram(&self) -> Option<BytesMut> {
        self.state.lock().q.pop()
    }

    /// `d` was written (or lost): its buffer carries a later datagram.
    fn done(&self, d: BytesMut) {
        let mut st = self.state.lock();
        st.queued = st.queued.saturating_sub(d.len());
        st.q.recycle(d);
    }

    async fn run(&self, master_pid: u32, from: usize, to: usize) {
        let mut sock: Option<tokio::net::UnixDatagram> = None;
        loop {
            // Let the tasks that are ready now queue their records too: one datagram then
            // carries them all.
            tokio::task::yield_now().await;
            while let Some(d) = self.next_dgram() {
                if let Err(e) = send_dgram(&mut sock, master_pid, from, to, &d).await {
                    self.lost(from, to, &d, &e);
                }
                self.done(d);
            }
            self.notify.notified().await;
        }
    }

    /// Datagram `d` for worker `to` could not be written: counts and reports what it lost.
    fn lost(&self, from: usize, to: usize, d: &[u8], e: &io::Error) {
        let (mut pushes, mut broadcasts, mut disconnects, mut cluster_ops) =
            (0u64, 0u64, 0u64, 0u64);
        let mut fds = Vec::new();
        // A chunked record counts once, by its first chunk.
        for (h, _) in ipc::decode(d)
            .flatten()
            .filter(|(h, _)| h.flags & F_FIRST != 0)
        {
            match h.kind {
                Kind::WsPushFwd => pushes += 1,
                Kind::WsBroadcastFwd => broadcasts += 1,
                Kind::WsDisconnectFwd => disconnects += 1,
                Kind::ClusterOpFwd => cluster_ops += 1,
                _ => continue,
            }
            if h.kind != Kind::WsBroadcastFwd && fds.len() < 16 {
                fds.push(h.session);
            }
        }
        self.lost
            .fetch_add(pushes + broadcasts + disconnects + cluster_ops, Relaxed);
        tracing::warn!(
            worker = from,
            to,
            pushes,
            broadcasts,
            disconnects,
            cluster_ops,
            fds = ?fds,
            error = %e,
            "worker {to} is gone (it died or is being replaced) with WebSocket output for its clients still queued here: lost (its clients are disconnected with it)"
        );
    }
}

/// Writes one datagram to worker `to`'s mailbox over `sock` (connecting it first if needed),
/// waiting as long as the target is there but does not read; on failure (the target's socket
/// is gone) reconnects and tries once more — a replacement may have bound the name — then
/// gives up with the error.
async fn send_dgram(
    sock: &mut Option<tokio::net::UnixDatagram>,
    master_pid: u32,
    from: usize,
    to: usize,
    d: &[u8],
) -> io::Result<()> {
    let mut last = io::Error::other("not sent");
    for attempt in 0..2 {
        let s = match sock {
            Some(s) => s,
            None => sock.insert(connect(master_pid, to)?),
        };
        let mut warned = false;
        let sent = loop {
            match tokio::time::timeout(STALL_TIMEOUT, s.send(d)).await {
                Ok(r) => break r,
                Err(_) if !warned => {
                    warned = true;
                    tracing::warn!(worker = from, to, "worker {to} has not read its mailbox for {STALL_TIMEOUT:?}; waiting (WebSocket output for its clients queues here)");
                }
                Err(_) => {}
            }
        };
        match sent {
            Ok(_) => return Ok(()),
            Err(e) => {
                tracing::debug!(worker = from, to, attempt, error = %e, "mailbox send failed");
                last = e;
            }
        }
        *sock = None;
    }
    Err(last)
}

fn connect(master_pid: u32, to: usize) -> io::Result<tokio::net::UnixDatagram> {
    let s = UnixDatagram::unbound()?;
    s.connect_addr(&addr(master_pid, to)?)?;
    s.set_nonblocking(true)?;
    tokio::net::UnixDatagram::from_std(s)
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;

    use super::*;

    /// A master pid no real server has (the names are per master pid).
    fn fake_master(tag: u32) -> u32 {
        0x4000_0000 | (std::process::id() << 4) | tag
    }

    type Got = Rc<RefCell<Vec<(Header, Vec<u8>)>>>;

    fn rec(kind: Kind, session: u64, seq: u64) -> Header {
        Header {
            kind,
            flags: 0,
            listener: 0,
            session,
            seq,
            stream: 0,
        }
    }

    fn run_local<F: std::future::Future>(f: F) -> F::Output {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        tokio::task::LocalSet::new().block_on(&rt, f)
    }

    /// Records from one sender arrive in order, batched, big ones chunked and reassembled,
    /// with the sender's id in `listener`; a target that is not there costs nothing, and what
    /// was queued for it is counted lost (and logged), not silently dropped.
    #[test]
    fn outbox_records_arrive_in_order_and_whole() {
        let master = fake_master(1);
        run_local(async move {
            let got: Got = Rc::default();
            let g = got.clone();
            let mailbox = bind(master, 1).await.unwrap();
            let server = tokio::task::spawn_local(async move {
                serve(mailbox, 1, move |h, p| {
                    g.borrow_mut().push((*h, p.to_vec()))
                })
                .await
            });
            tokio::task::yield_now().await;
            let out = Arc::new(Outboxes::new(master, 0, 3));
            out.start();
            assert_eq!(out.targets().collect::<Vec<_>>(), vec![1, 2]);
            assert_eq!(
                out.push(0, rec(Kind::WsPushFwd, 1, 1), b"self"),
                Err(Refused::NoWorker)
            );
            let big: Vec<u8> = (0..300_000u32).map(|i| i as u8).collect();
            for i in 0..500u64 {
                let payload = if i == 250 {
                    big.clone()
                } else {
                    i.to_le_bytes().to_vec()
                };
                out.push(1, rec(Kind::WsBroadcastFwd, 0, i), &payload)
                    .unwrap();
                // Worker 2 has no mailbox: never blocks; lost, and counted as such.
                out.push(2, rec(Kind::WsBroadcastFwd, 0, i), &payload)
                    .unwrap();
            }
            out.drain(Duration::from_secs(10)).await;
            assert_eq!(
                out.lost(2),
                500,
                "every record for the missing worker is lost"
            );
            assert_eq!(out.lost(1), 0);
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            while got.borrow().len() < 500 && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let got = got.borrow();
            assert_eq!(got.len(), 500);
            for (i, (h, p)) in got.iter().enumerate() {
                assert_eq!(
                    (h.kind, h.listener, h.seq),
                    (Kind::WsBroadcastFwd, 0, i as u64)
                );
                if i == 250 {
                    assert!(p[..] == big[..], "300 KB record reassembled");
                } else {
                    assert_eq!(p[..], (i as u64).to_le_bytes());
                }
            }
            server.abort();
        });
    }

    /// A target that restarts (its mailbox closed, then bound again) gets what is sent after
    /// it is back: the writer reconnects. What was sent while it was gone is counted lost.
    #[test]
    fn outbox_reconnects_to_a_restarted_target() {
        let master = fake_master(2);
        run_local(async move {
            let got: Rc<RefCell<Vec<u64>>> = Rc::default();
            let start = |got: Rc<RefCell<Vec<u64>>>| {
                tokio::task::spawn_local(async move {
                    let mailbox = bind(master, 1).await.unwrap();
                    serve(mailbox, 1, move |h, _| got.borrow_mut().push(h.seq)).await
                })
            };
            let wait = |got: Rc<RefCell<Vec<u64>>>, n: usize| async move {
                let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
                while got.borrow().len() < n && tokio::time::Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            };
            let first = start(got.clone());
            tokio::task::yield_now().await;
            let out = Arc::new(Outboxes::new(master, 0, 2));
            out.start();
            out.push(1, rec(Kind::WsPushFwd, 7, 1), b"a").unwrap();
            wait(got.clone(), 1).await;
            first.abort();
            let _ = first.await;
            // Gone: lost, and counted (the caller checks that the target serves first).
            out.push(1, rec(Kind::WsPushFwd, 7, 2), b"b").unwrap();
            out.drain(Duration::from_secs(10)).await;
            assert_eq!(out.lost(1), 1);
            let second = start(got.clone());
            tokio::task::yield_now().await;
            out.push(1, rec(Kind::WsPushFwd, 7, 3), b"c").unwrap();
            wait(got.clone(), 2).await;
            assert_eq!(*got.borrow(), vec![1, 3]);
            second.abort();
        });
    }
}
