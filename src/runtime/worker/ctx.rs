//! What a worker process is to its callbacks: [`WorkerCtx`], and its transport, the one way
//! every `Handle` method reaches a connection: through the master's pipe in Process mode, or
//! straight to the worker's own connections (and other workers' mailboxes) in Base mode. The
//! public API calls these methods and never builds an IPC record itself.

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};

use super::recycle;
use crate::base::{ConnError, ConnId, SendError, Settings};
use crate::ipc;
use crate::ipc::mailbox::{Outboxes, Refused};
use crate::ipc::shared::{OutRefused, Shared};
use crate::ipc::{Header, Kind, PipeTx};
use crate::owner::conn::WriteError;
use crate::owner::h2resp::{self, Part, PartKind};
use crate::owner::table::ConnTable;
use crate::owner::ws;
use crate::runtime::holds::Holds;
use crate::runtime::task_client::TaskClient;
use crate::runtime::timers::Timers;

/// Where a worker's output goes.
pub(super) enum Backend {
    /// Process mode: the pipe to the master, which owns every connection.
    Pipe(Arc<PipeTx>),
    /// Base mode: this worker's own connections.
    Local(Arc<ConnTable>),
}

/// A worker process's context: what a `Handle` wraps.
pub(crate) struct WorkerCtx {
    pub(crate) id: usize,
    pub(crate) shared: Shared,
    pub(crate) settings: Arc<Settings>,
    pub(super) backend: Backend,
    pub(super) udp: Vec<Option<(SocketAddr, std::net::UdpSocket)>>,
    /// Links to the task workers (none without task workers).
    pub(crate) tasks: Option<Arc<TaskClient>>,
    /// This worker's timers.
    pub(crate) timers: Timers,
    /// What the application still owes each connection (tasks, timers): a half-closed
    /// connection stays open for it.
    pub(crate) holds: Arc<Holds>,
    /// Base mode: queues of output for the other workers' connections.
    pub(super) mail: Option<Arc<Outboxes>>,
    /// The cluster (`Settings::cluster`; none for a single node).
    pub(crate) cluster: Option<Arc<crate::runtime::cluster::Cluster>>,
}

/// A record with only a kind, a session and a `listener`/`seq` field set.
fn header(kind: Kind, session: u64, listener: u16, seq: u64) -> Header {
    Header {
        kind,
        flags: 0,
        listener,
        session,
        seq,
        stream: 0,
    }
}

/// The `WsBroadcast` payload: target count (`u32::MAX` for every WebSocket), ids, data.
fn broadcast_payload<I>(fds: Option<I>, data: &[u8]) -> BytesMut
where
    I: ExactSizeIterator<Item = u64>,
{
    let n = fds.as_ref().map_or(0, |f| f.len());
    let mut p = BytesMut::with_capacity(4 + n * 8 + data.len());
    match fds {
        None => p.put_u32_le(u32::MAX),
        Some(f) => {
            p.put_u32_le(n as u32);
            for fd in f {
                p.put_u64_le(fd);
            }
        }
    }
    p.put_slice(data);
    p
}

/// The `WsDisconnect` payload: code (LE u16), reason.
fn disconnect_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut p = Vec::with_capacity(2 + reason.len());
    p.extend_from_slice(&code.to_le_bytes());
    p.extend_from_slice(reason.as_bytes());
    p
}

fn write_error(fd: ConnId, data: Bytes, e: WriteError) -> SendError {
    match e {
        WriteError::Full => SendError::BufferFull(fd, data),
        WriteError::Closed => SendError::Closed(fd, data),
        WriteError::Http2 => SendError::NoSocket(
            "an HTTP/2 connection takes only the responses to its streams",
            data,
        ),
    }
}

impl WorkerCtx {
    /// Process mode: reserves room for `len` bytes for `fd` in its output buffer
    /// (`buffer_output_size`, counting what is already on its way to the master) before a
    /// record of that many payload bytes is queued; the master releases it as it applies the
    /// record (`Shared::release_out`). The error makes the `SendError` for the caller's data.
    fn reserve_out(&self, fd: ConnId, len: usize) -> Result<(), fn(ConnId, Bytes) -> SendError> {
        self.shared
            .reserve_out(fd, len, self.settings.buffer_output_size)
            .map_err(|e| match e {
                OutRefused::Closed => SendError::Closed as fn(ConnId, Bytes) -> SendError,
                OutRefused::Full => SendError::BufferFull,
            })
    }

    /// Base mode: the other worker that owns open connection `fd`. `None` if `fd` is closed,
    /// or this worker's, or if the incarnation of its worker that accepted it died or is being
    /// replaced (checked in shared memory): a Base-mode worker's connections die with it, so
    /// nothing sent for them could be delivered.
    fn other_owner(&self, fd: ConnId) -> Option<usize> {
        self.shared
            .live_slot(fd)
            .and_then(|s| self.shared.live_owner(s))
            .filter(|&w| w != self.id)
    }

    /// Base mode: queues `payload` for worker `to`'s mailbox.
    fn forward(&self, to: usize, rec: Header, payload: &[u8]) -> Result<(), Refused> {
        let Some(mail) = &self.mail else {
            return Err(Refused::NoWorker);
        };
        mail.push(to, rec, payload).inspect_err(|e| {
            tracing::debug!(worker = self.id, to, reason = ?e, kind = ?rec.kind, "output for another worker not queued");
        })
    }

    /// Base mode: the other worker of this node that owns open connection `fd` (`None` in
    /// Process mode, where the master owns every connection, and for this worker's own or a
    /// closed connection).
    pub(crate) fn owning_worker(&self, fd: ConnId) -> Option<usize> {
        match self.backend {
            Backend::Pipe(_) => None,
            Backend::Local(_) => self.other_owner(fd),
        }
    }

    /// Base mode: hands cluster request `record` on connection `fd` to worker `to`, which
    /// owns it ([`Kind::ClusterOpFwd`]).
    pub(crate) fn forward_cluster_op(
        &self,
        to: usize,
        fd: ConnId,
        record: &[u8],
    ) -> Result<(), Refused> {
        self.forward(to, header(Kind::ClusterOpFwd, fd.0, 0, 0), record)
    }

    /// `Handle::send`.
    pub(crate) fn send(&self, fd: ConnId, data: Bytes) -> Result<(), SendError> {
        self.send_stream(fd, 0, data)
    }

    /// `Handle::send_parts`: the concatenation of `parts` for `fd`, never joined in a buffer
    /// of its own (Process mode: copied into the pipe's datagram; Base mode: one `writev`).
    pub(crate) fn send_parts(&self, fd: ConnId, parts: &[&[u8]]) -> Result<(), SendError> {
        let owned = || Bytes::from(parts.concat());
        match &self.backend {
            Backend::Pipe(tx) => {
                let len = parts.iter().map(|p| p.len()).sum::<usize>();
                self.reserve_out(fd, len).map_err(|e| e(fd, owned()))?;
                let h = header(Kind::Send, fd.0, 0, 0);
                let pushed = tx.push_with(h, len, |dst| {
                    for p in parts {
                        dst.extend_from_slice(p);
                    }
                });
                if pushed {
                    Ok(())
                } else {
                    self.shared.release_out(fd, len);
                    Err(SendError::ShuttingDown(owned()))
                }
            }
            Backend::Local(conns) => conns.with(fd, |c| match c {
                Some(c) => c
                    .write_parts(parts)
                    .map_err(|e| write_error(fd, owned(), e)),
                None if self.shared.live_slot(fd).is_some() => {
                    Err(SendError::NotLocal(fd, owned()))
                }
                None => Err(SendError::Closed(fd, owned())),
            }),
        }
    }

    /// Bytes for `fd`. `stream` must be 0 (the connection itself, as [`send`](Self::send)):
    /// an answer to an HTTP/2 stream goes as parts ([`send_h2`](Self::send_h2)), and bytes
    /// for an HTTP/2 connection are refused.
    pub(crate) fn send_stream(
        &self,
        fd: ConnId,
        stream: u32,
        data: Bytes,
    ) -> Result<(), SendError> {
        self.send_stream_with(fd, stream, &data, || data.clone())
    }

    /// As [`send_stream`](Self::send_stream) for bytes the caller keeps (a reused encoding
    /// buffer): both backends copy them anyway; only an error takes a copy of its own.
    pub(crate) fn send_stream_slice(
        &self,
        fd: ConnId,
        stream: u32,
        data: &[u8],
    ) -> Result<(), SendError> {
        self.send_stream_with(fd, stream, data, || Bytes::copy_from_slice(data))
    }

    fn send_stream_with(
        &self,
        fd: ConnId,
        stream: u32,
        data: &[u8],
        owned: impl FnOnce() -> Bytes,
    ) -> Result<(), SendError> {
        debug_assert_eq!(stream, 0, "HTTP/2 streams are answered with send_h2");
        match &self.backend {
            Backend::Pipe(tx) => {
                if let Err(e) = self.reserve_out(fd, data.len()) {
                    return Err(e(fd, owned()));
                }
                if tx.push(header(Kind::Send, fd.0, 0, 0), data) {
                    Ok(())
                } else {
                    self.shared.release_out(fd, data.len());
                    Err(SendError::ShuttingDown(owned()))
                }
            }
            Backend::Local(conns) => conns.with(fd, |c| match c {
                Some(c) => c.write(data).map_err(|e| write_error(fd, owned(), e)),
                None if self.shared.live_slot(fd).is_some() => {
                    Err(SendError::NotLocal(fd, owned()))
                }
                None => Err(SendError::Closed(fd, owned())),
            }),
        }
    }

    /// A part of the answer to HTTP/2 stream `stream` of `fd` ([`h2resp`]): `fields` are
    /// `name: value\r\n` lines (at most [`h2resp::MAX_FIELDS`] bytes), `end` ends the
    /// response. Base mode: queued on the connection as it is; Process mode: written into
    /// the pipe as [`Kind::H2Response`] records of at most [`ipc::MAX_CHUNK`] bytes (a larger
    /// body goes in several). On an error the body comes back in it.
    pub(crate) fn send_h2(
        &self,
        fd: ConnId,
        stream: u32,
        kind: PartKind,
        end: bool,
        fields: &[u8],
        body: &[u8],
    ) -> Result<(), SendError> {
        let owned = || Bytes::copy_from_slice(body);
        match &self.backend {
            Backend::Pipe(tx) => {
                let mut h = header(Kind::H2Response, fd.0, 0, 0);
                h.stream = stream;
                // The first record takes the fields and what body fits; the rest of the
                // body follows as data, each record whole (the master never reassembles).
                debug_assert!(fields.len() <= h2resp::MAX_FIELDS, "checked by the caller");
                let room = ipc::MAX_CHUNK
                    .saturating_sub(h2resp::encoded_len(fields.len(), 0))
                    .max(1);
                // The records' bytes, reserved at once: the whole part goes or none of it.
                let first = body.len().min(room);
                let total = h2resp::encoded_len(fields.len(), first)
                    + (body.len() - first)
                    + (body.len() - first).div_ceil(room) * h2resp::encoded_len(0, 0);
                self.reserve_out(fd, total).map_err(|e| e(fd, owned()))?;
                let (mut kind, mut fields, mut rest) = (kind, fields, body);
                let mut left = total;
                loop {
                    let n = rest.len().min(room);
                    let last = n == rest.len();
                    let piece = &rest[..n];
                    let len = h2resp::encoded_len(fields.len(), n);
                    let pushed = tx.push_with(h, len, |b| {
                        h2resp::encode(b, kind, end && last, fields, piece)
                    });
                    if !pushed {
                        self.shared.release_out(fd, left);
                        return Err(SendError::ShuttingDown(owned()));
                    }
                    left -= len;
                    if last {
                        debug_assert_eq!(left, 0, "send_h2: reserved what was queued");
                        return Ok(());
                    }
                    rest = &rest[n..];
                    (kind, fields) = (PartKind::Data, &[]);
                }
            }
            Backend::Local(conns) => {
                let part = Part {
                    kind,
                    end,
                    fields: Bytes::copy_from_slice(fields),
                    body: owned(),
                };
                match conns.get(fd) {
                    Some(c) => c
                        .write_h2(stream, part)
                        .map_err(|(e, part)| write_error(fd, part.body, e)),
                    None if self.shared.live_slot(fd).is_some() => {
                        Err(SendError::NotLocal(fd, part.body))
                    }
                    None => Err(SendError::Closed(fd, part.body)),
                }
            }
        }
    }

    /// HTTP/2: resets stream `stream` of `fd` (its handler stopped mid-response); the
    /// connection and its other streams go on.
    pub(crate) fn abort_stream(&self, fd: ConnId, stream: u32) {
        match &self.backend {
            Backend::Pipe(tx) => {
                let mut h = header(Kind::HttpAbort, fd.0, 0, 0);
                h.stream = stream;
                tx.push(h, &[]);
            }
            Backend::Local(conns) => {
                if let Some(c) = conns.get(fd) {
                    c.h2_abort(stream);
                }
            }
        }
    }

    /// `Handle::send_message`: Process mode through the master, Base mode straight to the
    /// target's mailbox.
    pub(crate) fn send_message(&self, to: usize, data: Bytes) -> Result<(), SendError> {
        if to >= self.settings.worker_num {
            return Err(SendError::NoWorker(to, data));
        }
        match &self.backend {
            Backend::Pipe(tx) => {
                if tx.push(header(Kind::PipeMsg, to as u64, self.id as u16, 0), &data) {
                    Ok(())
                } else {
                    Err(SendError::ShuttingDown(data))
                }
            }
            Backend::Local(_) => {
                let master = self.shared.header().master_pid.load(Relaxed);
                crate::ipc::mailbox::send(master, self.id, to, &data)
                    .map_err(|e| SendError::Io(e, data))
            }
        }
    }

    /// `Handle::close`: after the queued output is written.
    pub(crate) fn close(&self, fd: ConnId) -> Result<(), ConnError> {
        match &self.backend {
            Backend::Pipe(tx) => {
                if !self.shared.mark_closing(fd) {
                    return Err(ConnError::NotOpen(fd));
                }
                // A half-closed connection waiting for owed replies closes now.
                self.holds.poke();
                if tx.push(header(Kind::CloseReq, fd.0, 0, 0), &[]) {
                    Ok(())
                } else {
                    Err(ConnError::ShuttingDown)
                }
            }
            Backend::Local(conns) => match conns.get(fd) {
                Some(c) => {
                    // First close asked (a half-closed connection is no longer `Open` but
                    // may still be closed by the application), or the connection was open.
                    let first = self.shared.mark_closing(fd);
                    let open = c.close();
                    self.holds.poke();
                    if first || open {
                        Ok(())
                    } else {
                        Err(ConnError::NotOpen(fd))
                    }
                }
                None => match self.other_owner(fd) {
                    Some(_) => Err(ConnError::Unreachable(fd)),
                    None => Err(ConnError::NotOpen(fd)),
                },
            },
        }
    }

    /// `Handle::send_to` / `send_to_via`.
    pub(crate) fn send_to(
        &self,
        listener: Option<usize>,
        addr: SocketAddr,
        data: Bytes,
    ) -> Result<(), SendError> {
        let sock = match listener {
            Some(i) => self.udp.get(i).and_then(|s| s.as_ref()),
            None => self
                .udp
                .iter()
                .flatten()
                .find(|(a, _)| a.is_ipv4() == addr.is_ipv4()),
        };
        let Some((_, sock)) = sock else {
            return Err(SendError::NoSocket(
                "no UDP listener for that address family",
                data,
            ));
        };
        match sock.send_to(&data, addr) {
            Ok(_) => Ok(()),
            Err(e) => Err(SendError::Io(e, data)),
        }
    }

    /// `Handle::push`: one WebSocket message (or Ping/Pong) to `fd`.
    pub(crate) fn ws_push(&self, fd: ConnId, data: Bytes, opcode: u8) -> Result<(), SendError> {
        let data =
            match &self.backend {
                // `Ok`: pushed (or refused) here; `Err`: not this worker's, the data comes back.
                Backend::Local(conns) => match conns.with(fd, |c| match c {
                    Some(c) => Ok(ws::push_bytes(c, opcode, data)
                        .map_err(|(e, data)| write_error(fd, data, e))),
                    None => Err(data),
                }) {
                    Ok(r) => return r,
                    Err(data) => data,
                },
                Backend::Pipe(_) => data,
            };
        if self.shared.live_slot(fd).is_none() || !self.shared.is_websocket(fd) {
            return Err(SendError::Closed(fd, data));
        }
        match &self.backend {
            Backend::Pipe(tx) => {
                if let Err(e) = self.reserve_out(fd, data.len()) {
                    return Err(e(fd, data));
                }
                if tx.push_bytes(header(Kind::WsPush, fd.0, opcode as u16, 0), data.clone()) {
                    Ok(())
                } else {
                    self.shared.release_out(fd, data.len());
                    Err(SendError::ShuttingDown(data))
                }
            }
            Backend::Local(_) => {
                let Some(owner) = self.other_owner(fd) else {
                    return Err(SendError::Closed(fd, data));
                };
                if self.shared.live_slot(fd).is_some_and(|s| {
                    s.out_bytes.load(Relaxed) as usize + data.len()
                        > self.settings.buffer_output_size
                }) {
                    return Err(SendError::BufferFull(fd, data));
                }
                match self.forward(
                    owner,
                    header(Kind::WsPushFwd, fd.0, 0, opcode as u64),
                    &data,
                ) {
                    Ok(()) => Ok(()),
                    Err(Refused::Backlog) => Err(SendError::BufferFull(fd, data)),
                    Err(Refused::NoWorker) => Err(SendError::Unreachable(fd, data)),
                }
            }
        }
    }

    /// `Handle::broadcast` (`fds` = `None`) and `broadcast_to`.
    pub(crate) fn ws_broadcast(
        &self,
        fds: Option<&[ConnId]>,
        data: Bytes,
        opcode: u8,
    ) -> Result<(), SendError> {
        let conns = match &self.backend {
            Backend::Pipe(tx) => {
                let p = broadcast_payload(fds.map(|f| f.iter().map(|fd| fd.0)), &data);
                return if tx.push(header(Kind::WsBroadcast, 0, opcode as u16, 0), &p) {
                    Ok(())
                } else {
                    Err(SendError::ShuttingDown(data))
                };
            }
            Backend::Local(conns) => conns,
        };
        let rec = header(Kind::WsBroadcastFwd, 0, 0, opcode as u64);
        let mut unreachable = Vec::new();
        match fds {
            None => {
                ws::broadcast(conns.all(), opcode, &data);
                // One record per other worker; each fans out to its own connections.
                if let Some(mail) = &self.mail {
                    let p = broadcast_payload(None::<std::iter::Empty<u64>>, &data);
                    for to in mail.targets() {
                        // A worker that is down (dead, or not started yet) has no clients
                        // to give it to: reported, not queued for nobody.
                        if !self.shared.worker_serving(to) || self.forward(to, rec, &p).is_err() {
                            unreachable.push(to);
                        }
                    }
                }
            }
            Some(f) => {
                let mut local = Vec::new();
                let mut remote: std::collections::BTreeMap<usize, Vec<u64>> = Default::default();
                for &fd in f {
                    if let Some(c) = conns.get(fd) {
                        local.push(c);
                    } else if let Some(w) = self.other_owner(fd) {
                        remote.entry(w).or_default().push(fd.0);
                    }
                }
                ws::broadcast(local, opcode, &data);
                for (to, ids) in remote {
                    if self
                        .forward(
                            to,
                            rec,
                            &broadcast_payload(Some(ids.iter().copied()), &data),
                        )
                        .is_err()
                    {
                        unreachable.push(to);
                    }
                }
            }
        }
        if unreachable.is_empty() {
            Ok(())
        } else {
            tracing::warn!(workers = ?unreachable, "broadcast: some workers could not be reached; their clients miss this message");
            Err(SendError::WorkersUnreachable(unreachable, data))
        }
    }

    /// `Handle::disconnect`: starts the closing handshake with `code` and `reason`.
    pub(crate) fn ws_disconnect(
        &self,
        fd: ConnId,
        code: u16,
        reason: &str,
    ) -> Result<(), ConnError> {
        if self.shared.live_slot(fd).is_none() {
            return Err(ConnError::NotOpen(fd));
        }
        let p = disconnect_payload(code, reason);
        match &self.backend {
            Backend::Pipe(tx) => {
                if tx.push(header(Kind::WsDisconnect, fd.0, 0, 0), &p) {
                    Ok(())
                } else {
                    Err(ConnError::ShuttingDown)
                }
            }
            Backend::Local(conns) => {
                if let Some(c) = conns.get(fd) {
                    ws::disconnect(&c, code, reason);
                    return Ok(());
                }
                let Some(owner) = self.other_owner(fd) else {
                    return Err(ConnError::NotOpen(fd));
                };
                self.forward(owner, header(Kind::WsDisconnectFwd, fd.0, 0, 0), &p)
                    .map_err(|_| ConnError::Unreachable(fd))
            }
        }
    }

    /// `on_handshake`'s verdict on `fd`'s upgrade: accept (with `protocol`, if not empty) or
    /// answer `reject` and close. Base mode: returns the request head when the connection is
    /// now open here, so that `on_open` runs (Process mode: the master sends a `WsOpen`).
    pub(crate) fn ws_verdict(
        &self,
        fd: ConnId,
        accept: bool,
        protocol: &str,
        reject: &[u8],
    ) -> Option<Bytes> {
        match &self.backend {
            Backend::Pipe(tx) => {
                let mut p = Vec::with_capacity(1 + protocol.len() + reject.len());
                p.push(accept as u8);
                p.extend_from_slice(if accept { protocol.as_bytes() } else { reject });
                if !tx.push(header(Kind::WsAccept, fd.0, 0, 0), &p) {
                    tracing::debug!(fd = %fd, "worker stopping: handshake verdict not sent");
                }
                None
            }
            Backend::Local(conns) => {
                let c = conns.get(fd)?;
                if accept {
                    ws::accept_pending(&c, protocol)
                } else {
                    ws::reject_pending(&c, reject);
                    None
                }
            }
        }
    }

    /// One more request in this worker's `stats()`.
    pub(crate) fn count_request(&self) {
        self.shared.worker(self.id).requests.fetch_add(1, Relaxed);
    }

    /// One more event finished (`max_request`).
    pub(crate) fn handled_one(&self) {
        recycle::handled_one(self.id);
    }
}
