//! A worker incarnation's pipe as the master sees it: every event sent is kept until the
//! worker acknowledges it, so that a dead worker's unfinished events can be re-delivered.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering::*};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;

use super::{Ev, Reactor};
use crate::base::ConnId;
use crate::ipc::{Header, Kind, PipeTx, MAX_CHUNK};

/// One worker incarnation's pipe.
#[derive(Debug)]
pub(crate) struct Pipe {
    pub(crate) slot: usize,
    pub(crate) pid: u32,
    pub(crate) tx: PipeTx,
    /// `Settings::redeliver_on_worker_crash`: what the ring must keep of a payload.
    pub(super) redeliver: bool,
    pub(super) accepting: AtomicBool,
    pub(super) unacked: Mutex<Unacked>,
}

#[derive(Debug, Default)]
pub(super) struct Unacked {
    base: u64,
    ring: VecDeque<Option<Kept>>,
    live: usize,
    pub(super) bytes: usize,
}

/// An event sent and not acknowledged yet, as the ring keeps it: without an HTTP request's
/// parsed head (dropped once written into the datagram, on the thread that parsed it, so the
/// connection's read buffer is unique again at its next read and the head's header index goes
/// back to that thread's pool). An HTTP request is never re-delivered (`recovery` answers 503),
/// so what it needs of the head, whether the connection stays open, is kept as a flag.
#[derive(Debug)]
struct Kept {
    conn: ConnId,
    payload: Bytes,
    /// Bytes of the event on the pipe ([`Ev::wire_len`] when it was sent).
    wire: usize,
    stream: u32,
    tries: u32,
    listener: u16,
    kind: Kind,
    keep_alive: Option<bool>,
}

impl Kept {
    fn new(ev: &Ev, payload: Bytes, wire: usize, keep_alive: Option<bool>) -> Kept {
        Kept {
            conn: ev.conn,
            payload,
            wire,
            stream: ev.stream,
            tries: ev.tries,
            listener: ev.listener,
            kind: ev.kind,
            keep_alive,
        }
    }

    /// The event back (for `recovery`), without a parsed head.
    fn into_ev(self) -> Ev {
        let mut ev = Ev::new(self.conn, self.kind, self.listener, self.payload);
        ev.stream = self.stream;
        ev.tries = self.tries;
        ev.keep_alive = self.keep_alive;
        ev
    }
}

/// What the reactor needs of an event its worker finished ([`Pipe::take`]).
#[derive(Debug, Clone, Copy)]
pub(super) struct Done {
    pub(super) conn: ConnId,
    pub(super) kind: Kind,
    pub(super) stream: u32,
}

/// A connection stops being read while its worker has this many bytes of events unfinished
/// (backpressure: a fast client cannot make the master buffer without bound).
pub(crate) const PIPE_BACKLOG_LIMIT: usize = 4 * 1024 * 1024;

impl Pipe {
    /// No more events go to this incarnation: it gets `Stop` after the last one sent (it
    /// handles those, then exits) and the pipe is closed for writing.
    pub(super) fn stop(&self) {
        self.accepting.store(false, Release);
        let h = Header {
            kind: Kind::Stop,
            flags: 0,
            listener: 0,
            session: 0,
            seq: u64::MAX,
            stream: 0,
        };
        self.tx.push(h, &[]);
        self.tx.close();
    }

    /// Queues `ev` on the pipe and keeps what re-delivery needs of it until acknowledged; its
    /// sequence number, or `None` if the pipe is closed (`ev` is then left as it was). On
    /// success `ev` is left emptied (its head and payload taken): the event is used in place,
    /// not moved through the call chain (an `Ev` is ~200 bytes, a `memcpy` per move).
    pub(super) fn send(&self, ev: &mut Ev) -> Option<u64> {
        let mut u = self.unacked.lock();
        let seq = u.base + u.ring.len() as u64;
        let h = Header {
            kind: ev.kind,
            flags: 0,
            listener: ev.listener,
            session: ev.conn.0,
            seq,
            stream: ev.stream,
        };
        let pushed = match &ev.head {
            // A small payload is copied into the datagram (no clone: cloning a `Bytes` made
            // from a `Vec` allocates its shared header).
            None if ev.payload.len() <= MAX_CHUNK => self.tx.push(h, &ev.payload),
            // A large payload is referenced and cut into chunks as they go, not copied.
            None => self.tx.push_bytes(h, ev.payload.clone()),
            Some(head) => self.tx.push_with(h, ev.wire_len(), |dst| {
                crate::owner::http::write_request_payload(dst, head, &ev.payload)
            }),
        };
        if !pushed {
            return None;
        }
        let wire = ev.wire_len();
        u.bytes += wire;
        let keep_alive = ev.keep_alive_hint();
        let head = ev.head.take();
        let (kept, sent) = self.kept_payload(ev.kind, std::mem::take(&mut ev.payload));
        u.ring
            .push_back(Some(Kept::new(ev, kept, wire, keep_alive)));
        u.live += 1;
        drop(u);
        // Let go here, on the thread that read them: the connection's read buffer they may
        // share is unique again at its next read, which reuses it in place instead of
        // allocating another (and promoting it to a shared one: a second allocation).
        drop(head);
        drop(sent);
        Some(seq)
    }

    /// What the ring keeps of the payload of an event of `kind` just sent: nothing for one
    /// that is never re-delivered ([`super::may_redeliver`]); a copy cut from the thread's
    /// arena for a small message or read (usually a slice of its connection's read buffer);
    /// the payload itself otherwise (a large one: no copy).
    /// The original comes back too, to be dropped after the ring's lock is released.
    fn kept_payload(&self, kind: Kind, payload: Bytes) -> (Bytes, Bytes) {
        if !super::may_redeliver(kind, self.redeliver) {
            // `HttpHead` is kept: its payload tells whether the connection stays open.
            return if kind == Kind::HttpHead {
                (payload, Bytes::new())
            } else {
                (Bytes::new(), payload)
            };
        }
        let small = !payload.is_empty() && payload.len() <= crate::base::arena::MAX_COPY;
        if small && (kind == Kind::Receive || kind.is_ws_data()) {
            (crate::base::arena::shared_copy(&payload), payload)
        } else {
            (payload, Bytes::new())
        }
    }

    /// Forgets acknowledged event `seq` (dropped in place: an `Ev` is large, and moving it out
    /// costs copies per event); what the reactor needs of it, or `None` if it is not pending.
    pub(super) fn take(&self, seq: u64) -> Option<Done> {
        let mut u = self.unacked.lock();
        let idx = seq.checked_sub(u.base)? as usize;
        let slot = u.ring.get_mut(idx)?;
        let ev = slot.as_ref()?;
        let (done, len) = (
            Done {
                conn: ev.conn,
                kind: ev.kind,
                stream: ev.stream,
            },
            ev.wire,
        );
        *slot = None;
        u.live -= 1;
        u.bytes -= len;
        while matches!(u.ring.front(), Some(None)) {
            u.ring.pop_front();
            u.base += 1;
        }
        Some(done)
    }

    pub(super) fn drain(&self) -> Vec<Ev> {
        let mut u = self.unacked.lock();
        u.live = 0;
        u.bytes = 0;
        let n = u.ring.len() as u64;
        u.base += n;
        u.ring.drain(..).flatten().map(Kept::into_ev).collect()
    }

    pub(super) fn inflight(&self) -> usize {
        self.unacked.lock().live
    }

    pub(super) fn accepting(&self) -> bool {
        self.accepting.load(Acquire)
    }
}

impl Reactor {
    /// A new worker incarnation's pipe (from the manager).
    pub(crate) fn install(self: &Arc<Self>, slot: usize, pid: u32, pipe: PipeTx) {
        if slot >= self.slots.len() {
            tracing::error!(slot, "manager sent a pipe for an unknown worker slot");
            return;
        }
        let pipe = Arc::new(Pipe {
            slot,
            pid,
            tx: pipe,
            redeliver: self.settings.redeliver_on_worker_crash,
            accepting: AtomicBool::new(true),
            unacked: Mutex::new(Unacked::default()),
        });
        let w = pipe.clone();
        tokio::spawn(async move {
            if let Err(e) = w.tx.run_writer(true).await {
                tracing::debug!(slot = w.slot, pid = w.pid, error = %e, "worker pipe writer ended");
            }
        });
        let r = self.clone();
        let p2 = pipe.clone();
        self.readers.fetch_add(1, AcqRel);
        tokio::spawn(async move {
            r.clone().read_pipe(p2).await;
            r.readers.fetch_sub(1, AcqRel);
            r.readers_done.notify_waiters();
        });
        let old = self.slots[slot].current.lock().replace(pipe.clone());
        if let Some(old) = old {
            // Graceful replacement: the old incarnation finishes what it has, then exits.
            old.stop();
        }
        let waiting = std::mem::take(&mut *self.slots[slot].waiting.lock());
        for id in waiting {
            if let Some(c) = self.conns.get(id) {
                self.flush_deferred(&c);
            }
        }
        let packets = std::mem::take(&mut *self.slots[slot].packets.lock());
        for mut ev in packets {
            // A pipe closed already (its worker died at once) loses them, as before.
            let _ = pipe.send(&mut ev);
        }
        // What the previous incarnation left unfinished, one event at a time.
        self.probe(slot);
    }

    /// The server is stopping: every worker gets `Stop` after the last event sent to it (it
    /// handles those, then stops), and no event is sent any more.
    pub(crate) fn stop_workers(&self) {
        for slot in &self.slots {
            if let Some(p) = slot.current.lock().as_ref() {
                p.stop();
            }
        }
    }

    /// Waits (at most `limit`) until every worker pipe hit EOF and what came before it was
    /// handled: the workers have exited and their last replies are written or queued.
    pub(crate) async fn wait_pipes_done(&self, limit: std::time::Duration) {
        let _ = tokio::time::timeout(limit, async {
            loop {
                let mut done = std::pin::pin!(self.readers_done.notified());
                done.as_mut().enable();
                if self.readers.load(Acquire) == 0 {
                    return;
                }
                done.await;
            }
        })
        .await;
    }

    /// Routes a `send_message` from worker `from` to worker `to`: to the slot's current pipe,
    /// or queued until its next incarnation installs a pipe.
    pub(crate) fn pipe_message(&self, from: usize, to: usize, data: Bytes) {
        let Some(slot) = self.slots.get(to) else {
            tracing::warn!(from, to, "send_message to an unknown worker id; dropped");
            return;
        };
        let mut ev = Ev::new(ConnId(0), Kind::PipeMessage, from as u16, data);
        // Hold the queue lock while checking for a pipe, so `install` cannot miss the event.
        let mut queued = slot.packets.lock();
        if let Some(p) = self.current(to) {
            if p.send(&mut ev).is_some() {
                return;
            }
        }
        queued.push(ev);
    }
}

impl Reactor {
    /// Bytes of events sent on worker `slot`'s current pipe and not acknowledged yet (the
    /// IPC queue depth shown by the admin listener); 0 without a pipe.
    pub(crate) fn ipc_queue_bytes(&self, slot: usize) -> u64 {
        self.slots
            .get(slot)
            .and_then(|s| {
                s.current
                    .lock()
                    .as_ref()
                    .map(|p| p.unacked.lock().bytes as u64)
            })
            .unwrap_or(0)
    }
}
