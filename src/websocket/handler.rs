//! The worker's side of WebSocket: runs `on_handshake`, `on_open` and `on_message` for the
//! events the socket owner sends.

use std::future::poll_fn;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

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
            k if k.is_ws_data() => {
                // A waker that does nothing is enough for this first poll: a future that is
                // pending comes back, and the task that awaits it polls it again at once.
                let mut cx = Context::from_waker(Waker::noop());
                self.message(ctx, ev, &mut cx)
            }
            _ => Some(self.event(ctx, ev)),
        }
    }

    fn event(self: Rc<Self>, ctx: Ctx, ev: ProtoEvent) -> BoxFut {
        match ev.kind {
            Kind::HttpRequest | Kind::HttpHead | Kind::HttpBody | Kind::HttpEnd => {
                self.http.clone().event(ctx, ev)
            }
            k if k.is_ws_data() => Box::pin(async move {
                let mut once = Some((ctx, ev));
                let rest = poll_fn(|cx| {
                    Poll::Ready(once.take().and_then(|(ctx, ev)| self.message(ctx, ev, cx)))
                })
                .await;
                if let Some(rest) = rest {
                    rest.await;
                }
            }),
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

impl WsHandler {
    /// A message (or, with `deliver_control_frames`, a ping or pong): `on_message` is made in
    /// its reused slot and polled once with `cx` (an echo finishes then: no allocation, no
    /// task). `None` when it is done (or there is none, or it panicked: logged, the message is
    /// lost), else the rest to await.
    fn message(&self, ctx: Ctx, ev: ProtoEvent, cx: &mut Context<'_>) -> Option<BoxFut> {
        ctx.count_request();
        let Some(cb) = &self.cbs.on_message else {
            ctx.handled_one();
            return None;
        };
        let opcode = match ev.kind {
            Kind::WsText => OpCode::Text,
            Kind::WsBinary => OpCode::Binary,
            Kind::WsPing => OpCode::Ping,
            _ => OpCode::Pong,
        };
        let frame = Frame {
            fd: ev.fd,
            data: ev.payload,
            opcode,
            fin: true,
        };
        let h = Handle::new(ctx);
        let rest = match catch_unwind(AssertUnwindSafe(|| cb(h.clone(), frame, cx))) {
            Ok(rest) => rest,
            Err(_) => {
                tracing::error!(
                    callback = "on_message",
                    "callback panicked (location above); the message is lost, the worker goes on"
                );
                None
            }
        };
        match rest {
            None => {
                h.ctx.handled_one();
                None
            }
            Some(fut) => Some(Box::pin(async move {
                guarded("on_message", fut).await;
                h.ctx.handled_one();
            })),
        }
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
