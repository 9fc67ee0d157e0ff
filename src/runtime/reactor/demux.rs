//! Records from workers: replies to write, closes, WebSocket output, acknowledgements.

use std::sync::Arc;

use super::pipe::{Done, Pipe};
use super::Reactor;
use crate::base::ConnId;
use crate::ipc::{self, Kind};
use crate::owner::conn::WriteError;
use crate::owner::h2resp;
use crate::owner::sink::EventSink;
use crate::owner::ws;

impl Reactor {
    pub(super) async fn read_pipe(self: Arc<Self>, pipe: Arc<Pipe>) {
        let mut rx = ipc::DgramReader::default();
        let mut reassembler = ipc::Reassembler::default();
        // Broadcasts of one datagram are written to each client with one syscall.
        let mut bcast = ws::Batch::default();
        // Acknowledgements are applied after the datagram's other records: a worker answers
        // every event with an Ack, and handling it in place would cut each run of broadcasts
        // into one fan-out per message.
        let mut acks: Vec<u64> = Vec::new();
        loop {
            let dgram = match pipe.tx.recv_next(&mut rx).await {
                Ok([]) => break,
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(slot = pipe.slot, error = %e, "reading a worker pipe failed");
                    break;
                }
            };
            for rec in ipc::decode(dgram) {
                let (h, payload) = match rec {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::error!(slot = pipe.slot, error = %e, "malformed IPC from worker");
                        break;
                    }
                };
                if !matches!(h.kind, Kind::WsBroadcast | Kind::Ack) {
                    bcast.flush(&self.conns);
                }
                if matches!(h.kind, Kind::Send | Kind::WsPush) && h.flags & ipc::F_ACK != 0 {
                    // A reply (or a WebSocket echo) that also acknowledges its event
                    // (`PipeTx::ack`).
                    acks.push(h.seq);
                }
                match h.kind {
                    Kind::WsBroadcast if h.flags & (ipc::F_FIRST | ipc::F_MORE) == ipc::F_FIRST => {
                        bcast.add(&self.conns, &h, payload);
                    }
                    Kind::H2Response => {
                        if let Some(c) = self.conns.get(ConnId(h.session)) {
                            {
                                let mut d = c.state.lock();
                                if let Some(r) = d.h2.iter_mut().find(|r| r.stream == h.stream) {
                                    r.started = true;
                                }
                            }
                            match h2resp::decode(payload) {
                                Ok(part) => {
                                    if let Err((WriteError::Full, part)) =
                                        c.write_h2(h.stream, part)
                                    {
                                        c.close_overflowed(part.len(), &[]);
                                    }
                                }
                                Err(e) => {
                                    // The two processes disagree on the format: this answer
                                    // cannot be completed, the stream is reset.
                                    tracing::error!(slot = pipe.slot, stream = h.stream, error = %e, "unreadable HTTP/2 response record from a worker");
                                    c.h2_abort(h.stream);
                                }
                            }
                        }
                    }
                    Kind::HttpAbort => {
                        if let Some(c) = self.conns.get(ConnId(h.session)) {
                            c.h2_abort(h.stream);
                        }
                    }
                    Kind::Send => {
                        if let Some(c) = self.conns.get(ConnId(h.session)) {
                            {
                                let mut d = c.state.lock();
                                if d.http_pending > 0 {
                                    d.resp_started = true;
                                }
                            }
                            match c.write(payload) {
                                Ok(()) => {}
                                Err(WriteError::Full) => c.close_overflowed(payload.len(), &[]),
                                Err(_) => {}
                            }
                        }
                    }
                    Kind::CloseReq => {
                        if let Some(c) = self.conns.get(ConnId(h.session)) {
                            c.close();
                        }
                    }
                    Kind::Ack => acks.extend(
                        payload
                            .chunks_exact(8)
                            .map(|s| u64::from_le_bytes(s.try_into().expect("8 bytes"))),
                    ),
                    Kind::WsPush | Kind::WsBroadcast | Kind::WsDisconnect | Kind::WsAccept => {
                        // Unchunked records (almost all) are used in place.
                        if h.flags & (ipc::F_FIRST | ipc::F_MORE) == ipc::F_FIRST {
                            ws::from_worker(&self.conns, &*self, &h, payload);
                        } else if let Some(whole) = reassembler.feed(&h, payload) {
                            ws::from_worker_owned(&self.conns, &*self, &h, whole);
                        }
                    }
                    Kind::PipeMsg => {
                        if let Some(data) = reassembler.feed(&h, payload) {
                            self.pipe_message(pipe.slot, h.session as usize, data);
                        }
                    }
                    other => tracing::warn!(?other, "unexpected IPC record from a worker"),
                }
                if matches!(h.kind, Kind::Send | Kind::WsPush | Kind::H2Response) {
                    // Applied (or dropped with its connection): the room the worker reserved
                    // for it is counted by the output buffer now (`Shared::reserve_out`).
                    self.shared.release_out(ConnId(h.session), payload.len());
                }
            }
            bcast.flush(&self.conns);
            for seq in acks.drain(..) {
                self.acked(&pipe, seq);
            }
        }
        self.pipe_died(&pipe);
    }

    fn acked(&self, pipe: &Arc<Pipe>, seq: u64) {
        let Some(ev) = pipe.take(seq) else { return };
        self.finished(&ev);
        if self.end_probe(pipe, seq) {
            self.probe(pipe.slot);
        }
    }

    /// A worker finished `ev`.
    fn finished(&self, ev: &Done) {
        if ev.conn.0 == 0 {
            return;
        }
        let Some(c) = self.conns.get(ev.conn) else {
            return;
        };
        let (flush, idle) = {
            let mut d = c.state.lock();
            d.inflight = d.inflight.saturating_sub(1);
            if ev.stream != 0 {
                if matches!(ev.kind, Kind::HttpRequest | Kind::HttpEnd | Kind::HttpAbort) {
                    d.h2.retain(|r| r.stream != ev.stream);
                }
            } else if matches!(ev.kind, Kind::HttpRequest | Kind::HttpEnd) {
                d.http_pending = d.http_pending.saturating_sub(1);
                d.resp_started = false;
            }
            let settled = d.inflight == 0 && d.suspects == 0;
            (
                settled && !d.deferred.is_empty(),
                settled && d.deferred.is_empty(),
            )
        };
        if idle && ev.kind.is_ws_message() {
            // A WebSocket close held back until the replies to earlier messages were sent.
            // `idle` is a snapshot: the connection task may have dispatched another message
            // since (and held the Close for it), so `flush_final` asks again under its lock.
            ws::flush_final(&c, || self.busy(&c));
        }
        if ev.kind == Kind::Close {
            c.close_done();
        }
        if flush {
            self.flush_deferred(&c);
        }
    }
}
