//! The worker's side of WebSocket: runs `on_handshake`, `on_open` and `on_message` for the
//! events the socket owner sends.

use bytes::Bytes;

use super::{Frame, Handshake, OpCode, WsCallbacks};
use crate::http::worker::WorkerHttp;
use crate::ipc::{Header, Kind};
use crate::server::Handle;
use crate::ConnId;

/// Handles one WebSocket event for connection `fd`.
pub(crate) async fn event(
    cbs: &WsCallbacks,
    http: &WorkerHttp,
    h: &Handle,
    kind: Kind,
    fd: ConnId,
    payload: Bytes,
) {
    match kind {
        Kind::WsOpen => open(cbs, http, h, fd, &payload).await,
        Kind::WsText | Kind::WsBinary | Kind::WsPing | Kind::WsPong => {
            let opcode = match kind {
                Kind::WsText => OpCode::Text,
                Kind::WsBinary => OpCode::Binary,
                Kind::WsPing => OpCode::Ping,
                _ => OpCode::Pong,
            };
            let slot = h.ctx.shared.worker(h.ctx.id);
            slot.requests
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if let Some(cb) = &cbs.on_message {
                let frame = Frame {
                    fd,
                    data: payload,
                    opcode,
                    fin: true,
                };
                crate::worker::guarded("on_message", cb(h.clone(), frame)).await;
            }
            crate::upkeep::handled_one(h.ctx.id);
        }
        Kind::WsHandshake => {
            let verdict = match (&cbs.on_handshake, http.head_request(h, fd, &payload)) {
                (Some(cb), Some(req)) => {
                    let fut = cb(h.clone(), req);
                    let out = std::rc::Rc::new(std::cell::RefCell::new(None));
                    let o = out.clone();
                    crate::worker::guarded(
                        "on_handshake",
                        Box::pin(async move {
                            *o.borrow_mut() = Some(fut.await);
                        }),
                    )
                    .await;
                    let v = out.borrow_mut().take();
                    v.unwrap_or(Handshake::Reject(500))
                }
                (None, Some(_)) => Handshake::Accept,
                (_, None) => Handshake::Reject(400),
            };
            let (accept, proto) = match &verdict {
                Handshake::Accept => (true, ""),
                Handshake::AcceptProtocol(p) => (true, p.as_str()),
                Handshake::Reject(_) => (false, ""),
            };
            let reject = match verdict {
                Handshake::Reject(s) => {
                    crate::proto::error_response(s, rswoole_codec::http1::reason(s))
                }
                _ => Vec::new(),
            };
            if let Some(tx) = h.ctx.pipe() {
                let mut p = Vec::with_capacity(1 + proto.len() + reject.len());
                p.push(accept as u8);
                p.extend_from_slice(if accept { proto.as_bytes() } else { &reject });
                tx.push(
                    Header {
                        kind: Kind::WsAccept,
                        flags: 0,
                        listener: 0,
                        session: fd.0,
                        seq: 0,
                    },
                    &p,
                );
            } else if let Some(c) = h.ctx.local_conns().and_then(|t| t.get(fd)) {
                if accept {
                    if let Some(head) = super::owner::accept_pending(&c, proto) {
                        open(cbs, http, h, fd, &head).await;
                    }
                } else {
                    super::owner::reject_pending(&c, &reject);
                }
            }
        }
        _ => {}
    }
}

async fn open(cbs: &WsCallbacks, http: &WorkerHttp, h: &Handle, fd: ConnId, head: &Bytes) {
    let Some(cb) = &cbs.on_open else { return };
    match http.head_request(h, fd, head) {
        Some(req) => crate::worker::guarded("on_open", cb(h.clone(), req)).await,
        None => tracing::warn!(fd = %fd, "could not rebuild the upgrade request for on_open"),
    }
}
