//! The worker's side of WebSocket: runs `on_handshake`, `on_open` and `on_message` for the
//! events the socket owner sends.

use std::rc::Rc;

use bytes::Bytes;

use super::{Frame, Handshake, OpCode, WsCallbacks};
use crate::base::ConnId;
use crate::http::handler::{HttpHandler, WorkerHttp};
use crate::ipc::Kind;
use crate::owner::http::error_response;
use crate::runtime::app::{guarded, BoxFut, Ctx, ProtoEvent, ProtocolHandler};
use crate::server::Handle;

/// A worker's handler of a WebSocket listener's events: upgrades and messages here, plain
/// HTTP requests to the HTTP handler.
pub(crate) struct WsHandler {
    http: Rc<HttpHandler>,
    cbs: WsCallbacks,
}

impl WsHandler {
    pub(crate) fn new(http: Rc<HttpHandler>, cbs: WsCallbacks) -> WsHandler {
        WsHandler { http, cbs }
    }
}

impl ProtocolHandler for WsHandler {
    fn request(self: Rc<Self>, ctx: Ctx, ev: ProtoEvent) -> Option<BoxFut> {
        match ev.kind {
            Kind::HttpRequest => self.http.clone().request(ctx, ev),
            _ => Some(self.event(ctx, ev)),
        }
    }

    fn event(self: Rc<Self>, ctx: Ctx, ev: ProtoEvent) -> BoxFut {
        match ev.kind {
            Kind::HttpRequest | Kind::HttpHead | Kind::HttpBody | Kind::HttpEnd => {
                self.http.clone().event(ctx, ev)
            }
            _ => Box::pin(async move {
                let h = Handle::new(ctx);
                event(&self.cbs, &self.http.http, &h, ev.kind, ev.fd, ev.payload).await
            }),
        }
    }

    fn closed(&self, fd: ConnId) {
        self.http.closed(fd);
    }
}

/// Handles one WebSocket event for connection `fd`.
async fn event(
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
            h.ctx.count_request();
            if let Some(cb) = &cbs.on_message {
                let frame = Frame {
                    fd,
                    data: payload,
                    opcode,
                    fin: true,
                };
                guarded("on_message", cb(h.clone(), frame)).await;
            }
            h.ctx.handled_one();
        }
        Kind::WsHandshake => {
            let verdict = match (&cbs.on_handshake, http.head_request(h, fd, &payload)) {
                (Some(cb), Some(req)) => {
                    let fut = cb(h.clone(), req);
                    let out = std::rc::Rc::new(std::cell::RefCell::new(None));
                    let o = out.clone();
                    guarded(
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
                Handshake::Reject(s) => error_response(s, rswoole_codec::http1::reason(s)),
                _ => Vec::new(),
            };
            if let Some(head) = h.ctx.ws_verdict(fd, accept, proto, &reject) {
                open(cbs, http, h, fd, &head).await;
            }
        }
        _ => {}
    }
}

async fn open(cbs: &WsCallbacks, http: &WorkerHttp, h: &Handle, fd: ConnId, head: &Bytes) {
    let Some(cb) = &cbs.on_open else { return };
    match http.head_request(h, fd, head) {
        Some(req) => guarded("on_open", cb(h.clone(), req)).await,
        None => tracing::warn!(fd = %fd, "could not rebuild the upgrade request for on_open"),
    }
}
