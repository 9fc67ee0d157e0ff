//! Moving live connections to the new master during an upgrade (Process mode): the old
//! master quiesces its connections and sends them ([`send_all`]); the new master takes them
//! in ([`receive`]). The state record and its bytes are [`crate::owner::handover`]'s; this
//! module does the I/O. See docs/ARCHITECTURE.md, "Moving live connections".

use std::collections::HashSet;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::reactor::{RConn, Reactor};
use crate::base::ConnId;
use crate::ipc::shared::NewConn;
use crate::owner::conn::{Conn, Ended, Reviver, Start};
use crate::owner::handover::{self as snap, Batcher, ConnSnapshot, Message, Moved, Proto};
use crate::owner::inbound::ConnConfig;
use crate::owner::ws;
use crate::sys;

/// How long the old master waits for a connection with events in flight to reach a safe
/// point before it gives up moving it (it then drains here, as a connection that cannot
/// move). New clients wait in the listen queue for the handover to end, so this is kept
/// short.
pub(crate) const QUIESCE_LIMIT: Duration = Duration::from_secs(1);

/// How long the new master waits for the old one's next handover message before it gives
/// up and accepts (the old master hung).
pub(crate) const RECEIVE_LIMIT: Duration = Duration::from_secs(30);

/// Starts a connection's task on the reactor. `start`: [`Start::Moved`] with the undecoded
/// input of a connection that moved in (no `on_connect`), [`Start::Unparked`] for a parked one
/// woken up. A task that stops for a handover hands its connection to the reactor's movers,
/// or, if the handover is over, starts again here; one that parks is started again here when
/// it is woken up.
pub(crate) fn spawn_conn(r: Arc<Reactor>, conn: Arc<RConn>, cfg: Arc<ConnConfig>, start: Start) {
    tokio::spawn(async move {
        let id = conn.id;
        let rt = tokio::runtime::Handle::current();
        let revive: Reviver<_> = {
            let (r, cfg) = (r.clone(), cfg.clone());
            // Called from any thread (the I/O driver's, a writer's): spawn on the reactor.
            Arc::new(move |c| {
                let _in = rt.enter();
                spawn_conn(r.clone(), c, cfg.clone(), Start::Unparked);
            })
        };
        match conn.clone().run_from(r.clone(), &cfg, start, &revive).await {
            Ended::Done => {
                r.conns.remove(id);
                r.shared.free(id);
            }
            Ended::Parked => {}
            Ended::Moved(m) => {
                let back = {
                    let movers = r.movers.lock();
                    match movers.as_ref() {
                        Some(tx) => tx.send((conn, m)).err().map(|e| e.0),
                        None => Some((conn, m)),
                    }
                };
                if let Some((conn, m)) = back {
                    conn.unmove(&[]);
                    spawn_conn(r, conn, cfg, Start::Moved(m.unread));
                }
            }
        }
    });
}

/// What a handover did (logged by both masters; the benchmark reads the old one's line).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Report {
    /// Connections moved.
    pub(crate) moved: usize,
    /// Connections asked to move that stayed (busy past [`QUIESCE_LIMIT`], too much buffered,
    /// closed meanwhile, or the new master failed).
    pub(crate) stayed: usize,
    /// Bytes of state sent (the handover messages, without the descriptors).
    pub(crate) bytes: usize,
    /// Messages sent.
    pub(crate) batches: usize,
}

/// A connection taken out of its task, waiting in the current batch.
struct Held {
    conn: Arc<RConn>,
    fd: OwnedFd,
    unread: Bytes,
    unsent: Bytes,
}

struct Sender<'a> {
    reactor: &'a Arc<Reactor>,
    cfgs: &'a [Arc<ConnConfig>],
    sock: RawFd,
    batcher: Batcher,
    held: Vec<Held>,
    report: Report,
    /// A send failed: the new master is gone; what comes now stays here.
    failed: bool,
}

impl Sender<'_> {
    /// Gives a connection back to this master's reactor (the move did not happen).
    fn keep(&mut self, conn: Arc<RConn>, unread: Bytes, unsent: &[u8]) {
        self.report.stayed += 1;
        conn.unmove(unsent);
        // Only connections of listeners in `cfgs` were asked to move.
        if let Some(cfg) = self.cfgs.get(conn.listener as usize) {
            spawn_conn(
                self.reactor.clone(),
                conn,
                cfg.clone(),
                Start::Moved(unread),
            );
        }
    }

    fn take(&mut self, conn: Arc<RConn>, m: Moved) {
        if self.failed {
            return self.keep(conn, m.unread, &[]);
        }
        let Some(s) = snap::capture(&*conn, &self.reactor.shared, m.proto, m.unread.clone()) else {
            return self.keep(conn, m.unread, &[]);
        };
        if s.buffered() > snap::MAX_CONN_BYTES {
            tracing::debug!(fd = %conn.id, bytes = s.buffered(), "handover: too much buffered to move; it drains here");
            return self.keep(conn, m.unread, &s.unsent);
        }
        let fd = match conn.dup_socket() {
            Ok(fd) => fd,
            Err(e) => {
                tracing::warn!(fd = %conn.id, error = %e, "handover: cannot duplicate the socket; it drains here");
                return self.keep(conn, m.unread, &s.unsent);
            }
        };
        let (unread, unsent) = (s.unread.clone(), s.unsent.clone());
        if let Some(full) = self.batcher.push(s) {
            let rest = self.held.split_off(full.len());
            let batch = std::mem::replace(&mut self.held, rest);
            self.send(full, batch);
        }
        self.held.push(Held {
            conn,
            fd,
            unread,
            unsent,
        });
    }

    fn send(&mut self, snaps: Vec<ConnSnapshot>, held: Vec<Held>) {
        debug_assert_eq!(snaps.len(), held.len());
        if self.failed {
            for h in held {
                self.keep(h.conn, h.unread, &h.unsent);
            }
            return;
        }
        let msg = snap::encode_batch(&snaps);
        let fds: Vec<RawFd> = held.iter().map(|h| h.fd.as_raw_fd()).collect();
        let sock = self.sock;
        match tokio::task::block_in_place(|| sys::send_fds(sock, &msg, &fds)) {
            Ok(()) => {
                self.report.moved += held.len();
                self.report.bytes += msg.len();
                self.report.batches += 1;
                for h in held {
                    // Ours to forget: the new master has its own descriptor. Dropping the
                    // `Conn` closes ours without a shutdown, so the client sees nothing.
                    self.reactor.conns.remove(h.conn.id);
                    self.reactor.shared.free(h.conn.id);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, connections = held.len(), "handover: the new master does not take connections; they stay here");
                self.failed = true;
                for h in held {
                    self.keep(h.conn, h.unread, &h.unsent);
                }
            }
        }
    }
}

/// In the old master, once the new one is ready (and this one stopped accepting): moves
/// every connection that can move over `sock` (the upgrade socket), then sends the end with
/// this master's id counter. What cannot move keeps being served here (and drains).
pub(crate) async fn send_all(
    reactor: &Arc<Reactor>,
    sock: OwnedFd,
    cfgs: &[Arc<ConnConfig>],
) -> Report {
    let started = Instant::now();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    *reactor.movers.lock() = Some(tx);
    let mut pending: HashSet<u64> = HashSet::new();
    for c in reactor.conns.all() {
        let movable_listener = cfgs
            .get(c.listener as usize)
            .is_some_and(|cfg| cfg.tls.is_none());
        if movable_listener && c.request_move() {
            pending.insert(c.id.0);
        }
    }
    let asked = pending.len();
    let mut s = Sender {
        reactor,
        cfgs,
        sock: sock.as_raw_fd(),
        batcher: Batcher::default(),
        held: Vec::new(),
        report: Report::default(),
        failed: false,
    };
    let deadline = tokio::time::Instant::now() + QUIESCE_LIMIT;
    while !pending.is_empty() {
        tokio::select! {
            got = rx.recv() => {
                let Some((conn, m)) = got else { break };
                pending.remove(&conn.id.0);
                s.take(conn, m);
            }
            _ = tokio::time::sleep(Duration::from_millis(5)) => {
                // Closed meanwhile, or found it cannot move (mid-request): not coming.
                pending.retain(|id| {
                    reactor
                        .conns
                        .get(ConnId(*id))
                        .is_some_and(|c| c.move_requested())
                });
                if tokio::time::Instant::now() >= deadline {
                    // Those already stopped and queued here are not busy: take them first.
                    while let Ok((conn, m)) = rx.try_recv() {
                        pending.remove(&conn.id.0);
                        s.take(conn, m);
                    }
                    if pending.is_empty() {
                        break;
                    }
                    tracing::warn!(left = pending.len(), "handover: connections still busy after {QUIESCE_LIMIT:?}; they drain here");
                    for id in pending.drain() {
                        if let Some(c) = reactor.conns.get(ConnId(id)) {
                            c.cancel_move();
                        }
                    }
                }
            }
        }
    }
    // Tasks that stop from now on serve on here; take those already stopped.
    drop(reactor.movers.lock().take());
    while let Some((conn, m)) = rx.recv().await {
        s.take(conn, m);
    }
    if let Some(last) = s.batcher.finish() {
        let held = std::mem::take(&mut s.held);
        s.send(last, held);
    }
    if !s.failed {
        let end = snap::encode_end(reactor.shared.header().next_id.load(Relaxed));
        let fd = s.sock;
        match tokio::task::block_in_place(|| sys::send_fds(fd, &end, &[])) {
            Ok(()) => {
                s.report.bytes += end.len();
                s.report.batches += 1;
            }
            Err(e) => tracing::warn!(error = %e, "handover: cannot send the end"),
        }
    }
    drop(sock);
    let r = s.report;
    tracing::info!(
        asked,
        moved = r.moved,
        stayed = r.stayed,
        bytes = r.bytes,
        messages = r.batches,
        elapsed_us = started.elapsed().as_micros() as u64,
        "handover: connections moved to the new master"
    );
    r
}

/// In the new master, once it reported ready: takes in the connections the old master sends
/// over `sock`, then opens `gate` (the accept loops wait for it) with the id counter above
/// every moved id.
pub(crate) async fn receive(
    sock: OwnedFd,
    reactor: Arc<Reactor>,
    cfgs: Vec<Arc<ConnConfig>>,
    gate: tokio::sync::watch::Sender<bool>,
) {
    let started = Instant::now();
    let (mut moved, mut refused, mut bytes, mut max_id) = (0usize, 0usize, 0usize, 0u64);
    let end = match sys::async_fd(sock) {
        Err(e) => {
            tracing::error!(error = %e, "handover: cannot watch the upgrade socket");
            None
        }
        Ok(sock) => {
            let mut buf = vec![0u8; 2 * snap::BATCH_BYTES];
            loop {
                let mut guard = match tokio::time::timeout(RECEIVE_LIMIT, sock.readable()).await {
                    Ok(Ok(g)) => g,
                    Ok(Err(e)) => {
                        tracing::error!(error = %e, "handover: the upgrade socket failed");
                        break None;
                    }
                    Err(_) => {
                        tracing::error!("handover: the old master sent nothing for {RECEIVE_LIMIT:?}; accepting without it");
                        break None;
                    }
                };
                let (n, fds) =
                    match guard.try_io(|fd| sys::recv_fds(fd.get_ref().as_raw_fd(), &mut buf)) {
                        Ok(Ok(Some(x))) => x,
                        Ok(Ok(None)) => break None,
                        Ok(Err(e)) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                        Ok(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        Ok(Err(e)) => {
                            tracing::error!(error = %e, "handover: reading the upgrade socket");
                            break None;
                        }
                        Err(_) => continue,
                    };
                bytes += n;
                match snap::decode(&buf[..n]) {
                    Ok(Message::End { next_id }) => break Some(next_id),
                    Ok(Message::Batch(snaps)) if snaps.len() == fds.len() => {
                        for (s, fd) in snaps.into_iter().zip(fds) {
                            max_id = max_id.max(s.id.0);
                            if adopt(&reactor, &cfgs, s, fd) {
                                moved += 1;
                            } else {
                                refused += 1;
                            }
                        }
                    }
                    Ok(Message::Batch(snaps)) => {
                        tracing::error!(
                            records = snaps.len(),
                            descriptors = fds.len(),
                            "handover: a batch whose records and descriptors disagree; its connections are closed"
                        );
                        refused += snaps.len().max(fds.len());
                    }
                    Err(e) => {
                        tracing::error!(error = %e, descriptors = fds.len(), "handover: a malformed message; its connections are closed");
                        refused += fds.len();
                    }
                }
            }
        }
    };
    // Ids above every moved one (and, if the old master vanished mid-way, well above
    // whatever it had given out: its ids must not come back).
    let floor = match end {
        Some(next) => next.max(max_id),
        None => max_id + (1 << 32),
    };
    reactor.shared.header().next_id.fetch_max(floor, Relaxed);
    let _ = gate.send(true);
    tracing::info!(
        moved,
        refused,
        bytes,
        complete = end.is_some(),
        elapsed_us = started.elapsed().as_micros() as u64,
        "handover: took in the old master's connections; accepting"
    );
}

/// Registers one moved connection: its exact shm slot, its `Conn` with the unsent output
/// queued, its task fed the unread input. False (the connection is closed, logged) when it
/// cannot be taken in.
fn adopt(reactor: &Arc<Reactor>, cfgs: &[Arc<ConnConfig>], s: ConnSnapshot, fd: OwnedFd) -> bool {
    let Some(cfg) = cfgs.get(s.listener as usize) else {
        tracing::error!(fd = %s.id, listener = s.listener, "handover: the new binary has no such listener; closing the connection");
        return false;
    };
    let http = matches!(s.proto, Proto::HttpIdle | Proto::Ws { .. });
    let ws_conf = cfg.http.as_ref().and_then(|h| h.ws.clone());
    let ws_ok = !matches!(s.proto, Proto::Ws { .. }) || ws_conf.is_some();
    if cfg.tls.is_some() || cfg.http.is_some() != http || !ws_ok {
        tracing::error!(fd = %s.id, listener = s.listener, proto = ?s.proto, "handover: the listener speaks another protocol in the new binary; closing the connection");
        return false;
    }
    let sock = std::net::TcpStream::from(fd);
    let stream = match sock
        .set_nonblocking(true)
        .and_then(|()| tokio::net::TcpStream::from_std(sock))
    {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(fd = %s.id, error = %e, "handover: cannot register a moved socket; closing it");
            return false;
        }
    };
    let info = NewConn {
        remote: s.remote,
        server_port: s.server_port,
        listener: s.listener as usize,
        reactor: s.reactor,
        worker: 0,
        owner_pid: std::process::id(),
    };
    if !reactor
        .shared
        .adopt(s.id, &info, s.connect_ms, s.last_recv_ms, s.uid)
    {
        tracing::error!(fd = %s.id, max_connection = reactor.shared.conn_cap(), "handover: the connection's slot is taken (max_connection lower in the new binary?); closing it");
        return false;
    }
    let conn = Arc::new(Conn::new(
        s.id,
        s.listener,
        s.remote,
        stream,
        reactor.shared.clone(),
        reactor.settings.buffer_output_size,
        reactor.conns.flusher.clone(),
        None,
    ));
    conn.restore_unsent(&s.unsent);
    if let (Proto::Ws { deflate }, Some(conf)) = (s.proto, &ws_conf) {
        // Before the table has it: a broadcast must find it a WebSocket.
        ws::restore(&*conn, conf, deflate);
    }
    reactor.conns.insert(conn.clone());
    spawn_conn(reactor.clone(), conn, cfg.clone(), Start::Moved(s.unread));
    true
}
