//! The callback table the runtime runs: defined here, filled by the public API
//! (`crate::server`, `crate::http`, `crate::websocket`, `crate::task`), never the `Server`
//! itself. A callback gets the runtime's own context ([`Ctx`], [`TaskCtx`]); the API wraps it
//! in its `Handle` / `TaskHandle` before calling user code.

use std::future::{poll_fn, Future};
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::Poll;

use bytes::Bytes;
use rswoole_codec::http1::RequestHead;
use rswoole_codec::stream::Framing;

use super::task::Task;
use super::task_worker::TaskWorkerCtx;
use super::worker::WorkerCtx;
use crate::base::{
    ConnId, MasterInfo, Packet, ReceiveEvent, Settings, SockType, TaskId, TaskResult,
};
use crate::ipc::Kind;
use crate::owner::inbound::Protocol;

/// A callback's future.
pub(crate) type BoxFut = Pin<Box<dyn Future<Output = ()>>>;
/// A worker's context, as callbacks get it.
pub(crate) type Ctx = Arc<WorkerCtx>;
/// A task worker's context, as `on_task` gets it.
pub(crate) type TaskCtx = Arc<TaskWorkerCtx>;
/// A worker callback taking one argument.
pub(crate) type Cb<T> = Rc<dyn Fn(Ctx, T) -> BoxFut>;
/// A worker callback polled where its event arrives (`on_receive`): it makes the
/// application's future and polls it once with the caller's context; `None` when it finished
/// then, else the rest to await (the API reuses one heap slot for the futures that finish at
/// once: `server::wrap_polled`).
pub(crate) type PolledCb<T> = Rc<dyn Fn(Ctx, T, &mut std::task::Context<'_>) -> Option<BoxFut>>;
/// `on_pipe_message`: (context, source worker id, message).
pub(crate) type PipeCb = Rc<dyn Fn(Ctx, usize, Bytes) -> BoxFut>;
/// `on_start` / `on_shutdown`, run in the master.
pub(crate) type MasterCb = Rc<dyn Fn(&MasterInfo)>;
/// `on_task`'s future: the encoded result, or why there is none.
pub(crate) type TaskFut = Pin<Box<dyn Future<Output = Result<Bytes, String>>>>;
/// `on_task`.
pub(crate) type TaskCb = Rc<dyn Fn(TaskCtx, Task) -> TaskFut>;
/// `on_finish`.
pub(crate) type FinishCb = Rc<dyn Fn(Ctx, TaskId, TaskResult) -> BoxFut>;

/// The stream callbacks of one listener.
#[derive(Clone, Default)]
pub(crate) struct PortCallbacks {
    pub(crate) on_connect: Option<Cb<ConnId>>,
    pub(crate) on_receive: Option<PolledCb<ReceiveEvent>>,
    pub(crate) on_close: Option<Cb<ConnId>>,
    pub(crate) on_packet: Option<Cb<Packet>>,
}

impl PortCallbacks {
    /// This listener's own callbacks, else the server's defaults `d`.
    pub(crate) fn or(&self, d: &PortCallbacks) -> PortCallbacks {
        PortCallbacks {
            on_connect: self.on_connect.clone().or_else(|| d.on_connect.clone()),
            on_receive: self.on_receive.clone().or_else(|| d.on_receive.clone()),
            on_close: self.on_close.clone().or_else(|| d.on_close.clone()),
            on_packet: self.on_packet.clone().or_else(|| d.on_packet.clone()),
        }
    }
}

/// One listening address: what it speaks and its callbacks.
#[derive(Clone)]
pub(crate) struct Listener {
    pub(crate) addr: SocketAddr,
    pub(crate) sock_type: SockType,
    pub(crate) protocol: Protocol,
    /// Its own stream framing, else the server's.
    pub(crate) framing: Option<Framing>,
    pub(crate) callbacks: PortCallbacks,
    /// TLS on this listener.
    pub(crate) tls: Option<crate::base::settings::tls::TlsSettings>,
}

/// A protocol event for a worker: an HTTP request (part) or a WebSocket event.
#[derive(Debug)]
pub(crate) struct ProtoEvent {
    pub(crate) kind: Kind,
    pub(crate) fd: ConnId,
    /// The HTTP/2 stream (0: none): the answer goes to it.
    pub(crate) stream: u32,
    pub(crate) payload: Bytes,
    /// Base mode: the request head, already parsed by the connection task.
    pub(crate) head: Option<RequestHead>,
}

/// The handler of protocol events in one worker process (the API's HTTP/WebSocket side).
pub(crate) trait ProtocolHandler {
    /// Handles one event; the future ends when the application is done with it.
    fn event(self: Rc<Self>, ctx: Ctx, ev: ProtoEvent) -> BoxFut;
    /// A whole request (`HttpRequest`), handled at once when it can: `None` when it is done,
    /// else what is left of it, to be awaited. By default all of it is left ([`Self::event`]).
    fn request(self: Rc<Self>, ctx: Ctx, ev: ProtoEvent) -> Option<BoxFut> {
        Some(self.event(ctx, ev))
    }
    /// Connection `fd` is closed: forget what is kept for it.
    fn closed(&self, fd: ConnId);
}

/// Builds a worker's [`ProtocolHandler`] once the settings are final.
pub(crate) type ProtocolFactory = Rc<dyn Fn(&Arc<Settings>) -> Rc<dyn ProtocolHandler>>;

/// Everything the runtime runs.
#[derive(Clone, Default)]
pub(crate) struct App {
    pub(crate) listeners: Vec<Listener>,
    pub(crate) on_start: Option<MasterCb>,
    pub(crate) on_shutdown: Option<MasterCb>,
    pub(crate) on_worker_start: Option<Cb<usize>>,
    pub(crate) on_worker_stop: Option<Cb<usize>>,
    pub(crate) on_pipe_message: Option<PipeCb>,
    pub(crate) on_task: Option<TaskCb>,
    pub(crate) on_finish: Option<FinishCb>,
    /// HTTP / WebSocket listeners' worker side.
    pub(crate) protocol: Option<ProtocolFactory>,
    /// WebSocket upgrades wait for `on_handshake`.
    pub(crate) ws_handshake: bool,
    /// Shared tables whose rows in use and capacity the admin listener shows, by name.
    pub(crate) tables: Vec<(String, rswoole_shm::Table)>,
}

/// Runs a callback's future, turning a panic into a logged, lost event.
pub(crate) async fn guarded(name: &'static str, mut fut: BoxFut) {
    poll_fn(|cx| poll_guarded(name, &mut fut, cx)).await
}

/// Polls a callback's future once; a panic is logged and counts as done.
pub(crate) fn poll_guarded(
    name: &'static str,
    fut: &mut BoxFut,
    cx: &mut std::task::Context<'_>,
) -> Poll<()> {
    match std::panic::catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
        Ok(p) => p,
        Err(_) => {
            tracing::error!(
                callback = name,
                "callback panicked (location above); the event is lost, the worker goes on"
            );
            Poll::Ready(())
        }
    }
}

/// Runs a future that returns a value, catching a panic (`None`, logged).
pub(crate) async fn catch_panic<T>(
    name: &'static str,
    mut fut: Pin<Box<dyn Future<Output = T>>>,
) -> Option<T> {
    let r =
        poll_fn(
            |cx| match std::panic::catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
                Ok(Poll::Ready(v)) => Poll::Ready(Some(v)),
                Ok(Poll::Pending) => Poll::Pending,
                Err(_) => Poll::Ready(None),
            },
        )
        .await;
    if r.is_none() {
        tracing::error!(callback = name, "callback panicked (location above)");
    }
    r
}
