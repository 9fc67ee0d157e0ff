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
//!   `WsDisconnectFwd`, see `crate::websocket`), queued in the sender's [`Outboxes`]: one
//!   queue and one writer task per target worker, records batched into datagrams of at most
//!   [`ipc::MAX_DGRAM`], written in order over a datagram socket connected to the target's
//!   mailbox. The caller never blocks; a target whose receive queue is full is waited for
//!   without holding up the sender's event loop. The receiver applies these records in its
//!   mailbox loop, in arrival order (no task per record), so one sender's broadcasts reach
//!   the receiver's clients in the order they were made.
//!
//! A target that is not there (restarting: its socket is gone, `ECONNREFUSED`/`ENOENT`) loses
//! what was sent to it, logged at debug level: in Base mode a worker's clients die with it.

use std::collections::HashMap;
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::ipc::{self, Header, Kind, Reassembler, F_FIRST, F_MORE};

/// How long a send may block when the target's queue is full.
const SEND_TIMEOUT: Duration = Duration::from_secs(1);

/// How long an outbox writer waits for a live target to take a datagram before it gives up on
/// the connection (reconnects and tries once more).
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

/// Binds worker `id`'s mailbox (retrying while a previous incarnation still holds the name)
/// and calls `deliver(header, payload)` for every whole record of a known kind (`PipeMessage`
/// and the `Ws*Fwd` kinds), in arrival order, until the task is aborted. `header.listener` is
/// the sender's worker id.
pub(crate) async fn serve(master_pid: u32, id: usize, deliver: impl Fn(&Header, &[u8])) {
    let sock = loop {
        match addr(master_pid, id)
            .and_then(|a| UnixDatagram::bind_addr(&a))
            .and_then(|s| {
                s.set_nonblocking(true)?;
                tokio::net::UnixDatagram::from_std(s)
            }) {
            Ok(s) => break s,
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => {
                tracing::error!(worker = id, error = %e, "cannot open the send_message mailbox");
                return;
            }
        }
    };
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

    fn done(&self, d: &[u8]) {
        let mut st = self.state.lock();
        st.queued = st.queued.saturating_sub(d.len());
    }

    async fn run(&self, master_pid: u32, from: usize, to: usize) {
        let mut sock: Option<tokio::net::UnixDatagram> = None;
        loop {
            // Let the tasks that are ready now queue their records too: one datagram then
            // carries them all.
            tokio::task::yield_now().await;
            while let Some(d) = self.next_dgram() {
                send_dgram(&mut sock, master_pid, from, to, &d).await;
                self.done(&d);
            }
            self.notify.notified().await;
        }
    }
}

/// Writes one datagram to worker `to`'s mailbox over `sock` (connecting it first if needed);
/// on failure reconnects and tries once more, then drops it (debug log).
async fn send_dgram(
    sock: &mut Option<tokio::net::UnixDatagram>,
    master_pid: u32,
    from: usize,
    to: usize,
    d: &[u8],
) {
    for attempt in 0..2 {
        let s = match sock {
            Some(s) => s,
            None => match connect(master_pid, to) {
                Ok(s) => sock.insert(s),
                Err(e) => {
                    tracing::debug!(worker = from, to, error = %e, "mailbox of worker {to} unreachable (restarting?); records dropped");
                    return;
                }
            },
        };
        match tokio::time::timeout(STALL_TIMEOUT, s.send(d)).await {
            Ok(Ok(_)) => return,
            Ok(Err(e)) => {
                tracing::debug!(worker = from, to, attempt, error = %e, "mailbox send failed");
            }
            Err(_) => {
                tracing::debug!(worker = from, to, attempt, "mailbox send stalled");
            }
        }
        *sock = None;
    }
    tracing::debug!(
        worker = from,
        to,
        bytes = d.len(),
        "mailbox records dropped"
    );
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
    /// with the sender's id in `listener`; a target that is not there costs nothing.
    #[test]
    fn outbox_records_arrive_in_order_and_whole() {
        let master = fake_master(1);
        run_local(async move {
            let got: Got = Rc::default();
            let g = got.clone();
            let server = tokio::task::spawn_local(async move {
                serve(master, 1, move |h, p| g.borrow_mut().push((*h, p.to_vec()))).await
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
                // Worker 2 has no mailbox: dropped, never blocks.
                out.push(2, rec(Kind::WsBroadcastFwd, 0, i), &payload)
                    .unwrap();
            }
            out.drain(Duration::from_secs(10)).await;
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
    /// it is back: the writer reconnects.
    #[test]
    fn outbox_reconnects_to_a_restarted_target() {
        let master = fake_master(2);
        run_local(async move {
            let got: Rc<RefCell<Vec<u64>>> = Rc::default();
            let start = |got: Rc<RefCell<Vec<u64>>>| {
                tokio::task::spawn_local(async move {
                    serve(master, 1, move |h, _| got.borrow_mut().push(h.seq)).await
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
            // Gone: dropped.
            out.push(1, rec(Kind::WsPushFwd, 7, 2), b"b").unwrap();
            out.drain(Duration::from_secs(10)).await;
            let second = start(got.clone());
            tokio::task::yield_now().await;
            out.push(1, rec(Kind::WsPushFwd, 7, 3), b"c").unwrap();
            wait(got.clone(), 2).await;
            assert_eq!(*got.borrow(), vec![1, 3]);
            second.abort();
        });
    }
}
