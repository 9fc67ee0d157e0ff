//! The worker's side of HTTP: builds the [`Request`] from the events the socket owner sends,
//! runs static files or `on_request`, and makes sure every request gets an answer (500 if the
//! handler forgot `end()`, 504 on `request_timeout`, 400 for a broken multipart body).

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;

use super::access_log::{self, AccessLog};
use super::request::{client_addr, decoded_path, Builder, RequestInfo};
use super::response::{Response, State};
use super::service::BodyFeed;
use crate::base::{ConnId, Settings};
use crate::ipc::Kind;
use crate::owner::h2resp::Part;
use crate::owner::http::{error_response, limits, parse_head, request_from_payload};
use crate::runtime::app::{guarded, BoxFut, Ctx, ProtoEvent, ProtocolHandler};
use crate::runtime::holds;
use crate::server::slot::Slots;
use crate::server::Handle;

/// The request handler as stored: it makes the application's future and polls it once
/// (with `cx`); `None` when it finished then (or there was nothing to run), else the rest to
/// await. It gets the request's parts, not the request: the [`Request`](super::Request)
/// (some 500 bytes) is built where the application's closure takes it, in its argument,
/// instead of being built in [`start`] and moved on from there three times.
pub(crate) type ReqCb = Rc<
    dyn Fn(
        Handle,
        &mut Option<ReqParts<'_>>,
        Response,
        &mut std::task::Context<'_>,
    ) -> Option<BoxFut>,
>;

/// What a request is built from at the request handler's call. The builder stays where it
/// was made (borrowed): every move of it is a copy of the request head.
pub(crate) struct ReqParts<'a> {
    /// Ready (its body complete: [`Builder::ready`]); taken to build the request.
    b: &'a mut Option<Builder>,
    fd: ConnId,
    info: RequestInfo,
    stream: Option<BodyFeed>,
}

/// The request handler `f` as stored ([`ReqCb`]): its futures are made in one reused heap
/// slot ([`Slots`]): most handlers finish on their first poll, so one slot serves them all,
/// with no allocation per request; a handler that waits keeps its slot until it finishes, and
/// the next request gets a new one.
pub(crate) fn req_cb<F, Fut>(f: F) -> ReqCb
where
    F: Fn(Handle, super::Request, Response) -> Fut + 'static,
    Fut: Future + 'static,
    Fut::Output: crate::CallbackResult,
{
    let slots = Slots::new();
    Rc::new(move |h, parts, resp, cx| {
        // The parts are taken inside the slot's maker: the request is built as `f`'s
        // argument, and `f`'s future made into the slot.
        slots.run_made(
            "on_request",
            || {
                let p = parts.take()?;
                let b = p.b.take()?;
                Some(f(h, b.build(p.fd, p.info, p.stream), resp))
            },
            cx,
        )
    })
}

pub(crate) struct WorkerHttp {
    settings: Arc<Settings>,
    /// Requests whose body is still coming, per (connection, HTTP/2 stream or 0).
    partial: RefCell<HashMap<(u64, u32), Partial>>,
    /// Where uploads go (`upload_tmp_dir` or the system's temp dir).
    tmp_dir: std::path::PathBuf,
    /// Keep bodies as sent (no multipart parsing into files) and stream the large ones: the
    /// tower adapter hands the body to the service as it comes.
    raw_bodies: bool,
}

/// A request whose body is still coming (`HttpHead` seen, `HttpEnd` not yet).
enum Partial {
    /// Built whole, then handled at `HttpEnd` (the native API).
    Buffered(Box<Builder>),
    /// Handled since `HttpHead` (the tower adapter), its body fed as it comes; `HttpEnd`
    /// waits for `done`, so that the connection's next request comes after this one.
    Streaming {
        feed: BodyFeed,
        done: tokio::task::JoinHandle<()>,
    },
}

impl WorkerHttp {
    pub(crate) fn new(settings: Arc<Settings>, raw_bodies: bool) -> WorkerHttp {
        // Looked up once: `temp_dir` reads the environment on every call.
        let tmp_dir = settings
            .http
            .upload_tmp_dir
            .clone()
            .unwrap_or_else(std::env::temp_dir);
        WorkerHttp {
            settings,
            partial: RefCell::new(HashMap::new()),
            tmp_dir,
            raw_bodies,
        }
    }

    fn limits(&self) -> rswoole_codec::http1::Limits {
        limits(&self.settings)
    }

    fn builder(
        &self,
        payload: &Bytes,
        pre: Option<rswoole_codec::http1::RequestHead>,
    ) -> Option<Builder> {
        // The head goes straight into the builder (a pair of head and body would be one
        // more move of it).
        let mut rest = None;
        let mut b = match pre {
            Some(h) => Builder::new(h, &self.tmp_dir, self.settings.package_max_length),
            None => {
                let (h, body) = request_from_payload(payload)?;
                rest = Some(body);
                Builder::new(h, &self.tmp_dir, self.settings.package_max_length)
            }
        };
        if self.raw_bodies {
            b.set_raw();
        }
        b.feed(rest.as_ref().unwrap_or(payload)).ok()?;
        Some(b)
    }

    /// Handles one HTTP event for connection `fd` (HTTP/2: of its stream `stream`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn event(
        &self,
        handle: &Handle,
        cb: Option<&ReqCb>,
        kind: Kind,
        fd: ConnId,
        stream: u32,
        payload: Bytes,
        pre: Option<rswoole_codec::http1::RequestHead>,
    ) {
        let key = (fd.0, stream);
        match kind {
            Kind::HttpRequest => match self.builder(&payload, pre) {
                Some(b) => self.run(handle, cb, fd, stream, b).await,
                None => bad_request(handle, fd, stream),
            },
            Kind::HttpHead if self.raw_bodies => self.stream_head(handle, cb, fd, stream, &payload),
            Kind::HttpHead => match self.builder(&payload, None) {
                Some(b) => {
                    self.partial
                        .borrow_mut()
                        .insert(key, Partial::Buffered(Box::new(b)));
                }
                None => bad_request(handle, fd, stream),
            },
            Kind::HttpAbort => {
                if let Some(Partial::Streaming { feed, .. }) =
                    self.partial.borrow_mut().remove(&key)
                {
                    feed.fail("the client reset the stream before the body was complete");
                }
            }
            Kind::HttpBody => {
                let feed = match self.partial.borrow().get(&key) {
                    Some(Partial::Streaming { feed, .. }) => Some(feed.clone()),
                    _ => None,
                };
                if let Some(feed) = feed {
                    // Waits while the service is behind: the backpressure of a streamed body.
                    return feed.send(payload).await;
                }
                let failed = match self.partial.borrow_mut().get_mut(&key) {
                    Some(Partial::Buffered(b)) => b.feed(&payload).err(),
                    Some(Partial::Streaming { .. }) => None,
                    None => None, // its head went to a worker that died: answered with 503 already
                };
                if let Some(e) = failed {
                    tracing::debug!(fd = %fd, error = %e.0, "bad request body");
                    self.partial.borrow_mut().remove(&key);
                    bad_request(handle, fd, stream);
                }
            }
            Kind::HttpEnd => {
                let p = self.partial.borrow_mut().remove(&key);
                match p {
                    Some(Partial::Buffered(b)) => self.run(handle, cb, fd, stream, *b).await,
                    Some(Partial::Streaming { feed, done }) => {
                        feed.end(trailers(&payload));
                        let _ = done.await;
                    }
                    None => {}
                }
            }
            _ => {}
        }
    }

    /// A [`Request`](super::Request) for a bodiless request head (a WebSocket upgrade, as
    /// sent in `WsOpen`/`WsHandshake`).
    pub(crate) fn head_request(
        &self,
        handle: &Handle,
        fd: ConnId,
        head: &Bytes,
    ) -> Option<super::Request> {
        let head = parse_head(head, &self.limits())?;
        let ci = handle.ctx.shared.request_peer(fd)?;
        let b = Builder::new(head, &self.tmp_dir, self.settings.package_max_length);
        let info = RequestInfo {
            remote_addr: client_addr(
                ci.remote_addr,
                b.head(),
                &self.settings.http.trusted_proxies,
            ),
            peer_addr: ci.remote_addr,
            server_port: ci.server_port,
            request_time: SystemTime::now(),
            protocol: "HTTP/1.1",
            tls: ci.tls,
            peer_cert_sha256: ci.peer_cert_sha256,
        };
        b.finish(fd, info, None).ok()
    }

    /// The connection closed: forget a half-received request (a streamed body fails).
    pub(crate) fn closed(&self, fd: ConnId) {
        let mut partial = self.partial.borrow_mut();
        let keys: Vec<(u64, u32)> = partial.keys().filter(|k| k.0 == fd.0).copied().collect();
        for k in keys {
            if let Some(Partial::Streaming { feed, .. }) = partial.remove(&k) {
                feed.fail("the connection closed before the body was complete");
            }
        }
    }

    /// The tower adapter: a request whose body streams is handled from its head on, in a
    /// task of its own (the connection's body events must reach it meanwhile).
    fn stream_head(
        &self,
        handle: &Handle,
        cb: Option<&ReqCb>,
        fd: ConnId,
        stream: u32,
        payload: &Bytes,
    ) {
        let Some((head, body)) = request_from_payload(payload) else {
            return bad_request(handle, fd, stream);
        };
        let mut b = Builder::new(head, &self.tmp_dir, self.settings.package_max_length);
        b.set_raw();
        let feed = BodyFeed::new(self.settings.package_max_length);
        let (settings, handle2, cb) = (self.settings.clone(), handle.clone(), cb.cloned());
        let feed2 = feed.clone();
        let done = tokio::task::spawn_local(holds::in_conn(Some(fd), async move {
            run(
                &settings,
                &handle2,
                cb.as_ref(),
                fd,
                stream,
                b,
                Some(feed2.clone()),
            )
            .await;
            // Answered: the rest of the body, if any, is dropped as it comes.
            feed2.unread();
        }));
        feed.push(body);
        self.partial
            .borrow_mut()
            .insert((fd.0, stream), Partial::Streaming { feed, done });
    }

    async fn run(&self, handle: &Handle, cb: Option<&ReqCb>, fd: ConnId, stream: u32, b: Builder) {
        run(&self.settings, handle, cb, fd, stream, b, None).await
    }

    /// A whole request (`HttpRequest`) answered without a task when it can: the handler's
    /// future is polled once here; only one that waits comes back, to be awaited.
    ///
    /// `ev` by reference: moved, the event (with its request head) would be copied.
    #[inline]
    fn request(&self, handle: Handle, cb: Option<&ReqCb>, ev: &mut ProtoEvent) -> Option<Pending> {
        let (fd, stream) = (ev.fd, ev.stream);
        // The builder stays here; `start` and the handler borrow it.
        let mut b = self.builder(&ev.payload, ev.head.take());
        if b.is_none() {
            bad_request(&handle, fd, stream);
            return None;
        }
        start(&self.settings, &handle, cb, fd, stream, &mut b, None)
    }
}

/// Handles one request: static files, else the request handler, then makes sure it was
/// answered (500, 504). `stream` is the body of a request handled from its head on.
async fn run(
    settings: &Settings,
    handle: &Handle,
    cb: Option<&ReqCb>,
    fd: ConnId,
    h2: u32,
    b: Builder,
    stream: Option<BodyFeed>,
) {
    if let Some(p) = start(settings, handle, cb, fd, h2, &mut Some(b), stream) {
        p.wait(settings, handle).await;
    }
}

/// A request whose handler's future did not finish on its first poll.
struct Pending {
    answer: Answer,
    fut: BoxFut,
    /// `request_timeout`, counted from the handler's start.
    deadline: Option<tokio::time::Instant>,
}

impl Pending {
    async fn wait(self, settings: &Settings, handle: &Handle) {
        let Pending {
            answer,
            fut,
            deadline,
        } = self;
        let fut = guarded("on_request", fut);
        let timed_out = match deadline {
            Some(d) => tokio::time::timeout_at(d, fut).await.is_err(),
            None => {
                fut.await;
                false
            }
        };
        answer.handled(handle, timed_out);
        answer.finish(settings, handle);
    }
}

/// What the end of a request needs: its response, and what metrics and the access log say.
struct Answer {
    resp: Response,
    fd: ConnId,
    h2: u32,
    minor: u8,
    remote: std::net::SocketAddr,
    /// The access log, with what it prints of the request (copied only when there is one:
    /// the request head goes to the handler) and when the request started.
    log: Option<(&'static AccessLog, Seen, std::time::Instant)>,
}

/// The request line and headers an access log entry prints.
struct Seen {
    method: String,
    uri: String,
    referer: Option<String>,
    user_agent: Option<String>,
}

impl Answer {
    /// After `on_request` returned (or ran past `request_timeout`): makes sure the request
    /// was answered.
    fn handled(&self, handle: &Handle, timed_out: bool) {
        let (fd, h2) = (self.fd, self.h2);
        let mut resp = self.resp.clone();
        match (resp.state(), timed_out) {
            (State::Ended, _) => {}
            (State::Fresh, true) => {
                tracing::warn!(fd = %fd, "on_request ran past request_timeout; answering 504");
                let _ = resp
                    .status(504)
                    .map(|_| ())
                    .and_then(|_| resp.end("504 Gateway Timeout: the handler took too long\n"));
            }
            (State::Fresh, false) => {
                tracing::error!(fd = %fd, "on_request returned without end(); answering 500");
                let _ = resp
                    .status(500)
                    .map(|_| ())
                    .and_then(|_| resp.end("500 Internal Server Error\n"));
            }
            (State::Streaming, _) if h2 != 0 => {
                // Part of the body is out: the only honest ending is to reset the stream.
                tracing::error!(fd = %fd, stream = h2, timed_out, "on_request stopped mid-response; resetting its HTTP/2 stream");
                handle.ctx.abort_stream(fd, h2);
            }
            (State::Streaming, _) => {
                // Part of the body is out: the only honest ending is to cut the connection.
                tracing::error!(fd = %fd, timed_out, "on_request stopped mid-response; closing the connection");
                let _ = handle.close(fd);
            }
        }
    }

    /// Metrics and the access log of an answered request.
    fn finish(&self, settings: &Settings, handle: &Handle) {
        let (status, bytes) = self.resp.outcome();
        if self.resp.state() == State::Fresh {
            return; // the connection went away before an answer
        }
        // By reference: the answer is not moved (its access log part makes it large).
        let Answer {
            resp,
            log,
            remote,
            minor,
            ..
        } = self;
        let (remote, minor) = (*remote, *minor);
        if let Some(m) = crate::ipc::metrics::slot() {
            m.http(status, minor);
        }
        if let Some((log, seen, started)) = log {
            let e = access_log::Entry {
                remote,
                method: &seen.method,
                uri: &seen.uri,
                protocol: protocol(minor),
                status,
                bytes,
                referer: seen.referer.as_deref(),
                user_agent: seen.user_agent.as_deref(),
                duration: started.elapsed(),
                worker: handle.worker_id(),
            };
            log.log(access_log::format(
                settings.admin.access_log_format,
                &e,
                SystemTime::now(),
            ));
        }
        resp.recycle();
    }
}

/// Starts answering one request: static files, else the request handler, whose future is
/// polled once here (most finish then: the request is done without a task or a boxed
/// future of ours); one that waits comes back, for [`Pending::wait`] to finish. `None`:
/// answered (or its connection is gone), metrics and access log done.
fn start(
    settings: &Settings,
    handle: &Handle,
    cb: Option<&ReqCb>,
    fd: ConnId,
    h2: u32,
    built: &mut Option<Builder>,
    stream: Option<BodyFeed>,
) -> Option<Pending> {
    let ci = handle.ctx.shared.request_peer(fd)?;
    let b = built.as_mut()?;
    let hs = &settings.http;
    let version = b.head().version();
    let minor = match version {
        _ if h2 != 0 => 2,
        rswoole_codec::http1::Version::Http10 => 0,
        _ => 1,
    };
    let remote = client_addr(ci.remote_addr, b.head(), &hs.trusted_proxies);
    let log = AccessLog::get(settings.admin.access_log.as_ref()).map(|log| {
        let h = b.head();
        let s = |v: Option<&str>| v.map(str::to_string);
        let seen = Seen {
            method: h.method().to_string(),
            uri: h.uri().to_string(),
            referer: s(h.header_str("referer")),
            user_agent: s(h.header_str("user-agent")),
        };
        (log, seen, std::time::Instant::now())
    });
    // One clock read for the request's time and its answer's `Date`.
    let now = SystemTime::now();
    let mut resp = Response::new(handle.clone(), fd, h2, b.head(), hs, now);
    let answer = Answer {
        resp: resp.clone(),
        fd,
        h2,
        minor,
        remote,
        log,
    };
    let info = RequestInfo {
        remote_addr: remote,
        peer_addr: ci.remote_addr,
        server_port: ci.server_port,
        request_time: now,
        protocol: protocol(minor),
        tls: ci.tls,
        peer_cert_sha256: ci.peer_cert_sha256,
    };
    if let Err(e) = b.ready() {
        tracing::debug!(fd = %fd, error = %e.0, "bad request body");
        let _ = resp
            .status(400)
            .and_then(|r| r.header("connection", "close"))
            .map(|_| ())
            .and_then(|_| resp.end("400 Bad Request\n"));
        answer.finish(settings, handle);
        return None;
    }
    if hs.enable_static_handler {
        if let Some(root) = &hs.document_root {
            let h = b.head();
            match super::static_files::try_static(h.method(), &decoded_path(h), &mut resp, root) {
                Ok(true) => {
                    answer.finish(settings, handle);
                    return None;
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(fd = %fd, error = %e, "static file");
                    answer.finish(settings, handle);
                    return None;
                }
            }
        }
    }
    let Some(cb) = cb else {
        let _ = resp
            .status(404)
            .map(|_| ())
            .and_then(|_| resp.end("404 Not Found\n"));
        answer.finish(settings, handle);
        return None;
    };
    let deadline = hs.request_timeout.map(|t| tokio::time::Instant::now() + t);
    // A waker that does nothing is enough for this first poll: a future that is pending is
    // awaited at once (`Pending::wait`), and that poll registers the real waker.
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    // The callback runs (and its future is polled once) with a panic caught, as the runtime
    // does for every callback.
    // Given by reference, taken where the request is built: moved into the closure, they
    // would be copied twice more (into the closure, then into `catch_unwind`'s frame).
    let mut parts = Some(ReqParts {
        b: built,
        fd,
        info,
        stream,
    });
    let made = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        cb(handle.clone(), &mut parts, resp, &mut cx)
    }));
    match made {
        Ok(None) => {
            answer.handled(handle, false);
            answer.finish(settings, handle);
            None
        }
        Ok(Some(fut)) => {
            // It waits: its answer reads the clock when it goes out.
            answer.resp.inner.borrow_mut().now = None;
            Some(Pending {
                answer,
                fut,
                deadline,
            })
        }
        Err(_) => {
            tracing::error!(
                callback = "on_request",
                "callback panicked (location above); the event is lost, the worker goes on"
            );
            answer.handled(handle, false);
            answer.finish(settings, handle);
            None
        }
    }
}

/// The trailers of a streamed body, as `HttpEnd` carries them (`name: value\r\n` lines).
fn trailers(payload: &[u8]) -> Option<http::HeaderMap> {
    let mut t = http::HeaderMap::new();
    for line in payload.split(|&c| c == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&c| c == b':') else {
            continue;
        };
        let (k, v) = (&line[..colon], line[colon + 1..].trim_ascii());
        if let (Ok(k), Ok(v)) = (
            http::HeaderName::from_bytes(k),
            http::HeaderValue::from_bytes(v),
        ) {
            t.append(k, v);
        }
    }
    (!t.is_empty()).then_some(t)
}

/// The access log's protocol name for `minor` (0, 1, or 2 for HTTP/2).
fn protocol(minor: u8) -> &'static str {
    match minor {
        0 => "HTTP/1.0",
        2 => "HTTP/2",
        _ => "HTTP/1.1",
    }
}

/// Answers 400 and closes the connection; on an HTTP/2 stream (`stream` not 0), answers that
/// stream only.
fn bad_request(handle: &Handle, fd: ConnId, stream: u32) {
    if let Some(m) = crate::ipc::metrics::slot() {
        m.http(400, if stream == 0 { 1 } else { 2 });
    }
    if stream != 0 {
        let p = Part::text(400, None, b"");
        let _ = handle
            .ctx
            .send_h2(fd, stream, p.kind, p.end, &p.fields, &p.body);
        return;
    }
    let _ = handle
        .ctx
        .send(fd, error_response(400, "Bad Request").into());
    let _ = handle.close(fd);
}

/// A worker's handler of HTTP events: the runtime's [`ProtocolHandler`] for HTTP listeners.
pub(crate) struct HttpHandler {
    pub(crate) http: WorkerHttp,
    on_request: Option<ReqCb>,
}

impl HttpHandler {
    pub(crate) fn new(
        settings: Arc<Settings>,
        on_request: Option<ReqCb>,
        raw_bodies: bool,
    ) -> HttpHandler {
        HttpHandler {
            http: WorkerHttp::new(settings, raw_bodies),
            on_request,
        }
    }
}

impl ProtocolHandler for HttpHandler {
    fn request(self: Rc<Self>, ctx: Ctx, mut ev: ProtoEvent) -> Option<BoxFut> {
        if ev.kind != Kind::HttpRequest {
            return Some(self.event(ctx, ev));
        }
        let h = Handle::new(ctx);
        let p = self
            .http
            .request(h.clone(), self.on_request.as_ref(), &mut ev)?;
        Some(Box::pin(
            async move { p.wait(&self.http.settings, &h).await },
        ))
    }

    fn event(self: Rc<Self>, ctx: Ctx, ev: ProtoEvent) -> BoxFut {
        Box::pin(async move {
            let h = Handle::new(ctx);
            self.http
                .event(
                    &h,
                    self.on_request.as_ref(),
                    ev.kind,
                    ev.fd,
                    ev.stream,
                    ev.payload,
                    ev.head,
                )
                .await
        })
    }

    fn closed(&self, fd: ConnId) {
        self.http.closed(fd);
    }
}
