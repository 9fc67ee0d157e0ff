//! A worker died: re-deliver what it had not finished to its next incarnation, answer 503
//! for HTTP requests it held, and keep every connection.
//!
//! An unfinished event may be what killed the worker (a callback that aborts, overflows its
//! stack, or is SIGKILLed by a watchdog), so re-delivery is bounded: each event counts the
//! deaths it was unfinished at ([`Ev::tries`]), and one past `Settings::max_redeliveries` is
//! dropped (error log naming its connection and kind) and its connection closed — or, for a
//! datagram or a `send_message`, just dropped. For the count to point at the culprit, the
//! events a death left unfinished (the slot's `suspects`) go to the replacement **one at a
//! time** ([`Reactor::probe`]): the next is sent when the previous is acknowledged, while new
//! events keep flowing as usual. So after the first death, an event is unfinished at a death
//! only while it is the one re-delivered event in flight: innocent events that were merely
//! in flight beside a killer are counted once, and the killer once per death it causes.

use std::collections::HashMap;
use std::sync::atomic::Ordering::*;
use std::sync::Arc;

use super::pipe::Pipe;
use super::{Ev, Reactor};
use crate::base::ConnId;
use crate::ipc::Kind;
use crate::owner::h2resp::Part;
use crate::owner::http::unavailable_response;

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
        // What the dead worker had queued for connections and not written never arrives to
        // give back the room it reserved (`Shared::reserve_out`).
        self.shared
            .forget_in_flight(self.conns.all().iter().map(|c| c.id));
        let evs = pipe.drain();
        {
            let mut probing = self.slots[pipe.slot].probing.lock();
            if probing.as_ref().is_some_and(|(p, _)| Arc::ptr_eq(p, pipe)) {
                *probing = None;
            }
        }
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
            if (d.http_pending > 0 || !d.h2.is_empty())
                && d.pipe.as_ref().is_some_and(|p| Arc::ptr_eq(p, pipe))
                && !per.contains_key(&c.id.0)
            {
                per.insert(c.id.0, Vec::new());
                order.push(c.id);
            }
        }
        let redeliver = self.settings.redeliver_on_worker_crash;
        // Re-delivered after this death, in order (through the slot's `suspects` queue).
        let mut again: Vec<Ev> = Vec::new();
        let mut answered = 0usize;
        let mut dropped = 0usize;
        for id in order {
            let evs = per.remove(&id.0).unwrap_or_default();
            let Some(c) = self.conns.get(id) else {
                continue;
            };
            let mut close = false;
            let mut given_up = Vec::new();
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
                        .filter(|e| e.stream == 0)
                        .filter_map(Ev::keep_alive)
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
                            crate::owner::http::count_http(503, 1);
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
                // HTTP/2: per stream. One not answered yet gets its 503, one whose answer
                // started is reset; the connection and its other streams go on.
                for r in std::mem::take(&mut d.h2) {
                    if r.started {
                        c.h2_abort(r.stream);
                    } else {
                        crate::owner::http::count_http(503, 2);
                        let _ = c.write_h2(r.stream, Part::unavailable());
                        answered += 1;
                    }
                    if r.streaming {
                        d.h2_skip.push(r.stream);
                    }
                }
                for mut ev in evs {
                    if !super::may_redeliver(ev.kind, redeliver) {
                        continue;
                    }
                    ev.tries += 1;
                    if ev.tries > self.settings.max_redeliveries {
                        given_up.push(ev);
                    } else {
                        d.suspects += 1;
                        again.push(ev);
                    }
                }
            }
            for ev in given_up {
                dropped += 1;
                self.give_up(pipe, &ev);
                if ev.kind == Kind::Close {
                    // Its on_close cannot run; finish the socket without it.
                    c.close_done();
                } else {
                    close = true;
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
            // Datagrams, and `send_message`s (which wait for this slot's next incarnation).
            for mut ev in packets.into_iter().chain(messages) {
                ev.tries += 1;
                if ev.tries > self.settings.max_redeliveries {
                    dropped += 1;
                    self.give_up(pipe, &ev);
                } else {
                    again.push(ev);
                }
            }
        }
        let resent = again.len();
        {
            let mut q = self.slots[pipe.slot].suspects.lock();
            for ev in again.into_iter().rev() {
                q.push_front(ev);
            }
        }
        self.probe(pipe.slot);
        if total > 0 {
            tracing::warn!(
                worker = pipe.slot,
                pid = pipe.pid,
                unfinished = total,
                redelivered = resent,
                dropped,
                "worker exited with events in flight"
            );
        } else {
            tracing::debug!(worker = pipe.slot, pid = pipe.pid, "worker pipe closed");
        }
    }

    /// Logs an event dropped after `max_redeliveries`.
    fn give_up(&self, pipe: &Pipe, ev: &Ev) {
        let cap = self.settings.max_redeliveries;
        if ev.conn.0 == 0 {
            tracing::error!(
                kind = ?ev.kind,
                worker = pipe.slot,
                deaths = ev.tries,
                "an event killed its worker {} times (max_redeliveries = {cap}): dropped",
                ev.tries
            );
        } else {
            tracing::error!(
                fd = ev.conn.0,
                kind = ?ev.kind,
                worker = pipe.slot,
                deaths = ev.tries,
                "an event killed its worker {} times (max_redeliveries = {cap}): dropped; closing its connection",
                ev.tries
            );
        }
    }

    /// Ends the re-delivery in flight on `slot` if it is `seq` on `pipe`; `true` if it was.
    pub(super) fn end_probe(&self, pipe: &Arc<Pipe>, seq: u64) -> bool {
        let mut probing = self.slots[pipe.slot].probing.lock();
        if probing
            .as_ref()
            .is_some_and(|(p, s)| *s == seq && Arc::ptr_eq(p, pipe))
        {
            *probing = None;
            true
        } else {
            false
        }
    }

    /// Sends the next event a dead incarnation of `slot` left unfinished to the slot's current
    /// pipe, unless another one is in flight there (or there is no pipe: `install` calls this
    /// again).
    pub(super) fn probe(&self, slot: usize) {
        let s = &self.slots[slot];
        let mut probing = s.probing.lock();
        if probing.is_some() {
            return;
        }
        let Some(p) = self.current(slot) else { return };
        loop {
            let Some(mut ev) = s.suspects.lock().pop_front() else {
                return;
            };
            if ev.conn.0 == 0 {
                match p.send(&mut ev) {
                    Some(seq) => *probing = Some((p, seq)),
                    None => s.suspects.lock().push_front(ev),
                }
                return;
            }
            // A connection that is gone has nothing left to deliver to.
            let Some(c) = self.conns.get(ev.conn) else {
                continue;
            };
            let mut d = c.state.lock();
            let conn = ev.conn;
            match p.send(&mut ev) {
                Some(seq) => {
                    d.suspects = d.suspects.saturating_sub(1);
                    d.inflight += 1;
                    d.pipe = Some(p.clone());
                    if let Some(sl) = self.shared.any_slot(conn) {
                        sl.worker.store(slot as u32, Relaxed);
                    }
                    *probing = Some((p, seq));
                }
                None => s.suspects.lock().push_front(ev),
            }
            return;
        }
    }
}
