//! A worker died: re-deliver what it had not finished to its next incarnation, answer 503
//! for HTTP requests it held, and keep every connection.

use std::collections::HashMap;
use std::sync::atomic::Ordering::*;
use std::sync::Arc;

use super::pipe::Pipe;
use super::{Ev, Reactor};
use crate::base::ConnId;
use crate::ipc::{decode_packet, Kind};
use crate::owner::http::{parse_head, split_request, unavailable_response};

impl Reactor {
    pub(super) fn pipe_died(&self, pipe: &Arc<Pipe>) {
        pipe.accepting.store(false, Release);
        pipe.tx.close();
        {
            let mut cur = self.slots[pipe.slot].current.lock();
            if cur.as_ref().is_some_and(|c| Arc::ptr_eq(c, pipe)) {
                *cur = None;
            }
        }
        let evs = pipe.drain();
        if self.stopping.load(Acquire) {
            return;
        }
        let total = evs.len();
        let mut order: Vec<ConnId> = Vec::new();
        let mut per: HashMap<u64, Vec<Ev>> = HashMap::new();
        let mut packets = Vec::new();
        let mut messages = Vec::new();
        for ev in evs {
            if ev.kind == Kind::PipeMessage {
                messages.push(ev);
            } else if ev.conn.0 == 0 {
                packets.push(ev);
            } else {
                per.entry(ev.conn.0)
                    .or_insert_with(|| {
                        order.push(ev.conn);
                        Vec::new()
                    })
                    .push(ev);
            }
        }
        // Connections with an HTTP request in progress on this worker but nothing unacked
        // (e.g. a streamed upload between two chunks) are affected too.
        for c in self.conns.all() {
            let d = c.state.lock();
            if d.http_pending > 0
                && d.pipe.as_ref().is_some_and(|p| Arc::ptr_eq(p, pipe))
                && !per.contains_key(&c.id.0)
            {
                per.insert(c.id.0, Vec::new());
                order.push(c.id);
            }
        }
        let redeliver = self.settings.redeliver_on_worker_crash;
        let mut resent = 0usize;
        let mut answered = 0usize;
        for id in order {
            let evs = per.remove(&id.0).unwrap_or_default();
            let Some(c) = self.conns.get(id) else {
                continue;
            };
            let mut close = false;
            {
                let mut d = c.state.lock();
                if d.pipe.as_ref().is_some_and(|p| Arc::ptr_eq(p, pipe)) {
                    d.inflight = 0;
                    d.pipe = None;
                }
                // HTTP: never re-run a request on another worker (it may be what killed this
                // one, and it may not be idempotent): answer 503 for each unanswered one.
                if d.http_pending > 0 {
                    let heads: Vec<bool> = evs
                        .iter()
                        .filter(|e| matches!(e.kind, Kind::HttpRequest | Kind::HttpHead))
                        .map(|e| {
                            split_request(&e.payload)
                                .and_then(|(h, _)| parse_head(&h, &Default::default()))
                                .is_some_and(|h| h.keep_alive())
                        })
                        .collect();
                    if d.resp_started {
                        close = true;
                    } else {
                        let n = d.http_pending as usize;
                        // A request whose head was acknowledged earlier has no head here: close after.
                        let known = heads.len();
                        for k in 0..n {
                            let keep = k + known >= n
                                && heads.get(k + known - n).copied().unwrap_or(false);
                            let _ = c.write(&unavailable_response(keep));
                            answered += 1;
                            if !keep {
                                close = true;
                                break;
                            }
                        }
                    }
                    if d.streaming {
                        d.skip_stream = true;
                    }
                    d.http_pending = 0;
                    d.resp_started = false;
                }
                for ev in evs.into_iter().rev() {
                    let http = matches!(
                        ev.kind,
                        Kind::HttpRequest | Kind::HttpHead | Kind::HttpBody | Kind::HttpEnd
                    );
                    let always = matches!(
                        ev.kind,
                        Kind::Connect | Kind::Close | Kind::WsOpen | Kind::WsHandshake
                    );
                    if !http && (redeliver || always) {
                        resent += 1;
                        d.deferred.push_front(ev);
                    }
                }
            }
            if close {
                c.close();
            }
            self.flush_deferred(&c);
        }
        if answered > 0 {
            tracing::warn!(
                worker = pipe.slot,
                pid = pipe.pid,
                requests = answered,
                "worker died with HTTP requests in flight: answered 503"
            );
        }
        if redeliver {
            // Unfinished `send_message`s wait for this slot's next incarnation.
            resent += messages.len();
            for ev in messages {
                self.pipe_message(ev.listener as usize, pipe.slot, ev.payload);
            }
            for ev in packets {
                resent += 1;
                let from = decode_packet(&ev.payload)
                    .map(|(a, _)| a)
                    .unwrap_or(([0, 0, 0, 0], 0).into());
                self.dispatch_packet(ev, &from);
            }
        }
        if total > 0 {
            tracing::warn!(
                worker = pipe.slot,
                pid = pipe.pid,
                unfinished = total,
                redelivered = resent,
                "worker exited with events in flight"
            );
        } else {
            tracing::debug!(worker = pipe.slot, pid = pipe.pid, "worker pipe closed");
        }
    }
}
