//! Serving a [`tower_service::Service`] (an axum `Router`, or anything built on tower and the
//! `http` crate's types) from rswoole's workers: [`HttpServer::serve`].
//!
//! Each request is converted into an `http::Request<RequestBody>` (method, target, version,
//! headers as sent, the body, and the [`Handle`], the connection's [`ConnId`] and its
//! [`RequestInfo`] as request extensions), the service runs on the worker's event loop (it
//! need not be `Send`), and its `http::Response` goes back through [`Response`]: status,
//! headers, the body sized when it is ready at once and chunked as it comes otherwise, and
//! its trailers.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::pin::{pin, Pin};
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::{Buf, Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use parking_lot::Mutex;
use tower_service::Service;

use super::request::RequestInfo;
use super::{HttpError, HttpServer, Request, Response};
use crate::base::ConnId;
use crate::server::Handle;

/// An error a boxed service or body may return (as in hyper and tower).
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A body buffered before the response starts goes out with a `Content-Length`; past this
/// size it is streamed (chunked) instead.
const SIZED_MAX: usize = 64 * 1024;

/// The body of a request handed to a tower service by [`HttpServer::serve`]: an
/// [`http_body::Body`] of [`Bytes`] frames, passed on as sent (a multipart body is not
/// parsed).
///
/// A body of up to 64 KiB comes whole with its request. A larger one streams: the service
/// is called as soon as the head is in, and reads the body as the worker receives it (its
/// trailers, if chunked with some, come as the last frame). The worker keeps only what the
/// service has not read yet: past 256 KiB of it, it stops taking the connection's data until
/// the service reads, so the client is slowed to the service's pace (a safety bound fails
/// the body with a [`BodyError`] past `package_max_length` unread). A service that drops the
/// body unread (or answers without reading it) has the rest dropped as it arrives, and the
/// connection goes on: its next request starts after this body. A service that holds the
/// body without reading it holds the connection too, until it ends (or `request_timeout`).
///
/// # Examples
///
/// ```
/// use http_body_util::BodyExt;
/// use rswoole::http::RequestBody;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let body = RequestBody::from(bytes::Bytes::from_static(b"hello"));
/// let bytes = body.collect().await.unwrap().to_bytes();
/// assert_eq!(&bytes[..], b"hello");
/// # });
/// ```
#[derive(Debug, Default)]
pub struct RequestBody {
    data: Option<Bytes>,
    /// A streamed body: what the worker received and the service has not read yet.
    stream: Option<BodyFeed>,
    /// A streamed body's announced length.
    len: Option<u64>,
}

impl From<Bytes> for RequestBody {
    fn from(data: Bytes) -> RequestBody {
        RequestBody {
            data: (!data.is_empty()).then_some(data),
            stream: None,
            len: None,
        }
    }
}

impl Drop for RequestBody {
    fn drop(&mut self) {
        if let Some(feed) = &self.stream {
            feed.unread();
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        if let Some(feed) = &self.stream {
            return feed.poll_frame(cx);
        }
        Poll::Ready(self.data.take().map(|d| Ok(Frame::data(d))))
    }

    fn is_end_stream(&self) -> bool {
        match &self.stream {
            Some(feed) => feed.is_end(),
            None => self.data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match (&self.stream, self.len) {
            (Some(_), Some(n)) => SizeHint::with_exact(n),
            (Some(_), None) => SizeHint::default(),
            (None, _) => SizeHint::with_exact(self.data.as_ref().map_or(0, |d| d.len() as u64)),
        }
    }
}

/// Why a [`RequestBody`] could not be read to its end: the connection closed during the
/// upload, or the service left more than `package_max_length` bytes of it unread.
///
/// # Examples
///
/// ```
/// use rswoole::http::BodyError;
/// fn describe(e: &BodyError) -> String {
///     format!("request body: {e}")
/// }
/// # let _ = describe;
/// ```
#[derive(Debug, thiserror::Error)]
#[error("request body: {0}")]
pub struct BodyError(String);

/// The worker's end of a streamed request body: the request handler pushes the body events
/// in, the service's [`RequestBody`] reads them out. One thread uses it (the worker's); it
/// is an `Arc<Mutex>` only because axum wants a `Send` body.
#[derive(Debug, Clone)]
pub(crate) struct BodyFeed(Arc<Mutex<Feed>>);

#[derive(Debug)]
struct Feed {
    chunks: VecDeque<Bytes>,
    /// Bytes in `chunks`.
    buffered: usize,
    /// The most `buffered` may reach (`package_max_length`).
    limit: usize,
    end: FeedEnd,
    /// The reader, waiting for data.
    waker: Option<Waker>,
    /// The writer, waiting for the reader to take some.
    space: Option<Waker>,
    /// The service still holds the body ([`RequestBody`] not dropped).
    read: bool,
}

/// The writer of a streamed body waits while the service has more than this unread: the
/// connection's next body events wait in turn, and its socket stops being read (Base
/// mode: the worker's own backlog limit; Process mode: the master's per-connection pipe
/// backlog limit), so the client is slowed to the service's pace.
const FEED_HIGH: usize = 256 * 1024;

#[derive(Debug)]
enum FeedEnd {
    Open,
    /// Received whole; the trailers still to hand out, if any.
    Ended(Option<http::HeaderMap>),
    /// Failed: the error still to hand out, then the end.
    Failed(Option<String>),
    Done,
}

impl BodyFeed {
    pub(crate) fn new(limit: usize) -> BodyFeed {
        BodyFeed(Arc::new(Mutex::new(Feed {
            chunks: VecDeque::new(),
            buffered: 0,
            limit,
            end: FeedEnd::Open,
            waker: None,
            space: None,
            read: true,
        })))
    }

    /// The body for the service.
    pub(crate) fn body(&self, len: Option<u64>) -> RequestBody {
        RequestBody {
            data: None,
            stream: Some(self.clone()),
            len,
        }
    }

    /// More of the body. Dropped if the service no longer holds the body, or once the body
    /// failed; fails the body if the service left more than the limit unread.
    pub(crate) fn push(&self, data: Bytes) {
        let mut f = self.0.lock();
        if data.is_empty() || !f.read || !matches!(f.end, FeedEnd::Open) {
            return;
        }
        if f.buffered + data.len() > f.limit {
            let msg = format!(
                "more than package_max_length ({} bytes) of the body received and not read",
                f.limit
            );
            tracing::warn!("streamed request body: {msg}; failing it");
            f.chunks.clear();
            f.buffered = 0;
            f.end = FeedEnd::Failed(Some(msg));
        } else {
            f.buffered += data.len();
            f.chunks.push_back(data);
        }
        if let Some(w) = f.waker.take() {
            w.wake();
        }
    }

    /// [`push`](Self::push), then waits while the service has more than [`FEED_HIGH`] unread
    /// (and still holds the body).
    pub(crate) async fn send(&self, data: Bytes) {
        self.push(data);
        poll_fn(|cx| {
            let mut f = self.0.lock();
            if f.buffered <= FEED_HIGH || !f.read || !matches!(f.end, FeedEnd::Open) {
                return Poll::Ready(());
            }
            f.space = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    /// Nobody will read the body (the service dropped it, or is done with the request): what
    /// comes is dropped, and a writer waiting for room goes on.
    pub(crate) fn unread(&self) {
        let mut f = self.0.lock();
        f.read = false;
        f.chunks.clear();
        f.buffered = 0;
        if let Some(w) = f.space.take() {
            w.wake();
        }
    }

    /// The body is complete; `trailers` came after it.
    pub(crate) fn end(&self, trailers: Option<http::HeaderMap>) {
        self.finish(FeedEnd::Ended(trailers.filter(|t| !t.is_empty())));
    }

    /// The body will not complete (the connection closed).
    pub(crate) fn fail(&self, why: &str) {
        self.finish(FeedEnd::Failed(Some(why.to_string())));
    }

    fn finish(&self, end: FeedEnd) {
        let mut f = self.0.lock();
        if matches!(f.end, FeedEnd::Open) {
            f.end = end;
        }
        if let Some(w) = f.waker.take() {
            w.wake();
        }
    }

    fn poll_frame(&self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let mut f = self.0.lock();
        if let Some(d) = f.chunks.pop_front() {
            f.buffered -= d.len();
            if f.buffered <= FEED_HIGH {
                if let Some(w) = f.space.take() {
                    w.wake();
                }
            }
            return Poll::Ready(Some(Ok(Frame::data(d))));
        }
        match std::mem::replace(&mut f.end, FeedEnd::Done) {
            FeedEnd::Open => {
                f.end = FeedEnd::Open;
                f.waker = Some(cx.waker().clone());
                Poll::Pending
            }
            FeedEnd::Ended(Some(t)) => Poll::Ready(Some(Ok(Frame::trailers(t)))),
            FeedEnd::Failed(Some(e)) => Poll::Ready(Some(Err(BodyError(e)))),
            FeedEnd::Ended(None) | FeedEnd::Failed(None) | FeedEnd::Done => Poll::Ready(None),
        }
    }

    fn is_end(&self) -> bool {
        let f = self.0.lock();
        f.chunks.is_empty() && matches!(f.end, FeedEnd::Ended(None) | FeedEnd::Done)
    }
}

/// A service made per worker by the factory, and the factory.
struct Served<F, S> {
    factory: F,
    service: RefCell<Option<S>>,
}

impl HttpServer {
    /// Serves every request with a [`tower_service::Service`], such as an axum `Router`,
    /// instead of [`on_request`](Self::on_request) (the last of the two called wins).
    ///
    /// `factory` makes the service: once in each worker, at its first request, after the
    /// fork, so per-worker state (a database pool, a cache) is made there. The service runs
    /// on the worker's event loop: neither it nor its futures need be `Send`. A request
    /// reaches it as `http::Request<`[`RequestBody`]`>` with these extensions: the worker's
    /// [`Handle`] (an axum handler takes `Extension<Handle>` to `task_wait`, `broadcast`,
    /// read stats or set timers), the connection's [`ConnId`] and its [`RequestInfo`]
    /// (client address). Bodies are passed on as sent (no form or multipart parsing); one
    /// larger than 64 KiB streams: the service is called once the head is in and reads the
    /// body as it arrives, the client slowed to its pace (see [`RequestBody`]; bodies are
    /// limited by `package_max_length`, and `request_timeout` counts from the head).
    ///
    /// The answer is what the native API gives: `Date`, `Content-Length` or chunked framing,
    /// keep-alive and pipelining order, HEAD without a body, `request_timeout` (504), a
    /// service that fails or panics before its response started answers 500 (and the
    /// connection stays usable); one that fails mid-body has its connection closed. A body
    /// that is ready at once goes out sized (so `http_compression` applies to it), one that
    /// waits is streamed chunked as its frames come, with its trailers.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::convert::Infallible;
    /// use http_body_util::Full;
    /// use rswoole::http::{HttpServer, RequestBody};
    ///
    /// fn main() -> rswoole::Result<()> {
    ///     let mut server = HttpServer::bind("127.0.0.1:9501")?;
    ///     // Any tower service: an axum `Router` works the same (`.serve(|_| router.clone())`).
    ///     server.serve(|srv| {
    ///         let worker = srv.worker_id(); // made in each worker
    ///         tower::service_fn(move |req: http::Request<RequestBody>| async move {
    ///             let text = format!("{} {} from worker {worker}\n", req.method(), req.uri());
    ///             Ok::<_, Infallible>(http::Response::new(Full::new(bytes::Bytes::from(text))))
    ///         })
    ///     });
    ///     server.start()
    /// }
    /// ```
    pub fn serve<F, S, B>(&mut self, factory: F) -> &mut Self
    where
        F: Fn(&Handle) -> S + 'static,
        S: Service<http::Request<RequestBody>, Response = http::Response<B>> + 'static,
        S::Error: Into<BoxError>,
        S::Future: 'static,
        B: Body + 'static,
        B::Error: Into<BoxError>,
    {
        let served = Rc::new(Served {
            factory,
            service: RefCell::new(None),
        });
        self.on_request(move |h, req, resp| serve_one(served.clone(), h, req, resp));
        self.raw_bodies = true;
        self
    }
}

/// Runs one request through the worker's service and writes its response.
async fn serve_one<F, S, B>(st: Rc<Served<F, S>>, h: Handle, req: Request, mut resp: Response)
where
    F: Fn(&Handle) -> S,
    S: Service<http::Request<RequestBody>, Response = http::Response<B>>,
    S::Error: Into<BoxError>,
    B: Body,
    B::Error: Into<BoxError>,
{
    let fd = req.fd;
    let req = match to_http(req, &h) {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(fd = %fd, error = %e, "request not representable as http::Request");
            let _ = answer(&mut resp, 400, "400 Bad Request\n");
            return;
        }
    };
    if st.service.borrow().is_none() {
        let s = (st.factory)(&h);
        *st.service.borrow_mut() = Some(s);
    }
    // The service is borrowed only while it is polled or called, never across an await: no
    // other request can come between its `poll_ready` returning ready and its `call`.
    let ready = poll_fn(|cx| match st.service.borrow_mut().as_mut() {
        Some(s) => s.poll_ready(cx),
        None => Poll::Pending,
    })
    .await;
    if let Err(e) = ready {
        tracing::error!(fd = %fd, error = %e.into(), "the service is not ready; answering 503");
        let _ = answer(&mut resp, 503, "503 Service Unavailable\n");
        return;
    }
    let Some(fut) = st.service.borrow_mut().as_mut().map(|s| s.call(req)) else {
        return;
    };
    match fut.await {
        Ok(r) => {
            if let Err(e) = write_response(r, &mut resp).await {
                tracing::debug!(fd = %fd, error = %e, "writing the service's response");
            }
        }
        Err(e) => {
            tracing::error!(fd = %fd, error = %e.into(), "the service failed; answering 500");
            let _ = answer(&mut resp, 500, "500 Internal Server Error\n");
        }
    }
}

fn answer(resp: &mut Response, status: u16, body: &str) -> Result<(), HttpError> {
    resp.status(status)?;
    resp.end(body)
}

/// rswoole's request as an `http::Request`, with the handle, connection and client info as
/// extensions.
fn to_http(mut req: Request, h: &Handle) -> Result<http::Request<RequestBody>, http::Error> {
    let mut b = http::Request::builder()
        .method(http::Method::from_bytes(req.method.as_bytes())?)
        .uri(req.uri.as_str())
        .version(match req.server.protocol {
            "HTTP/1.0" => http::Version::HTTP_10,
            "HTTP/2" => http::Version::HTTP_2,
            _ => http::Version::HTTP_11,
        });
    if let Some(headers) = b.headers_mut() {
        headers.reserve(req.header.len());
        for (k, v) in req.head.headers() {
            headers.append(
                http::HeaderName::from_bytes(k.as_bytes())?,
                http::HeaderValue::from_bytes(v)?,
            );
        }
    }
    let fd: ConnId = req.fd;
    let info: RequestInfo = req.server.clone();
    let body = match req.stream.take() {
        Some(feed) => feed.body(
            req.head
                .header("content-length")
                .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse().ok()),
        ),
        None => RequestBody::from(req.body),
    };
    b.extension(h.clone())
        .extension(fd)
        .extension(info)
        .body(body)
}

/// Writes the service's response: the head, then the body sized if it is all there at once
/// (up to [`SIZED_MAX`]), else chunked frame by frame; trailers at the end.
async fn write_response<B>(r: http::Response<B>, resp: &mut Response) -> Result<(), HttpError>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    let (parts, body) = r.into_parts();
    resp.status(parts.status.as_u16())?;
    // A HEAD answer keeps the length the service announced (axum and hyper send one).
    let head_len = resp
        .is_head()
        .then(|| parts.headers.get(http::header::CONTENT_LENGTH))
        .flatten()
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    for (k, v) in &parts.headers {
        // The framing is rswoole's (the codec drops these two anyway).
        if k == http::header::CONTENT_LENGTH || k == http::header::TRANSFER_ENCODING {
            continue;
        }
        resp.header(k.as_str(), &String::from_utf8_lossy(v.as_bytes()))?;
    }
    if let Some(len) = head_len {
        return resp.end_head(len);
    }
    let mut body = pin!(body);
    let mut buf = BytesMut::new();
    let mut streaming = false;
    let mut trailers: Option<http::HeaderMap> = None;
    loop {
        if body.is_end_stream() {
            break;
        }
        let frame = if streaming {
            poll_fn(|cx| body.as_mut().poll_frame(cx)).await
        } else {
            // What is ready now is sent sized; once the body would wait (or is large), the
            // head and what came so far go out and the rest follows chunked.
            match poll_fn(|cx| Poll::Ready(body.as_mut().poll_frame(cx))).await {
                Poll::Ready(f) => f,
                Poll::Pending => {
                    resp.write(buf.split().freeze())?;
                    streaming = true;
                    continue;
                }
            }
        };
        match frame {
            None => break,
            Some(Err(e)) => {
                let e: BoxError = e.into();
                if resp.state() == super::response::State::Fresh {
                    tracing::error!(error = %e, "the response body failed; answering 500");
                    return answer(resp, 500, "500 Internal Server Error\n");
                }
                // Part of it is out: the request handler cuts the connection, the only honest
                // ending, when it finds the response unfinished.
                tracing::error!(error = %e, "the response body failed mid-stream");
                return Ok(());
            }
            Some(Ok(f)) => match f.into_data() {
                Ok(mut d) => {
                    let d = d.copy_to_bytes(d.remaining());
                    if streaming {
                        if !d.is_empty() {
                            resp.write(d)?;
                        }
                    } else {
                        buf.extend_from_slice(&d);
                        if buf.len() > SIZED_MAX {
                            resp.write(buf.split().freeze())?;
                            streaming = true;
                        }
                    }
                }
                Err(f) => {
                    if let Ok(t) = f.into_trailers() {
                        trailers.get_or_insert_with(http::HeaderMap::new).extend(t);
                    }
                }
            },
        }
    }
    match trailers {
        Some(t) if !t.is_empty() => {
            if !buf.is_empty() {
                resp.write(buf.freeze())?;
            }
            let fields: Vec<(&str, &[u8])> =
                t.iter().map(|(k, v)| (k.as_str(), v.as_bytes())).collect();
            resp.end_with_trailers(&fields)
        }
        _ => resp.end(buf.freeze()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    }

    #[test]
    fn feed_streams_data_then_trailers() {
        rt().block_on(async {
            let feed = BodyFeed::new(1024);
            let body = feed.body(None);
            feed.push(Bytes::from_static(b"ab"));
            feed.push(Bytes::from_static(b"cd"));
            let mut t = http::HeaderMap::new();
            t.insert("x-check", http::HeaderValue::from_static("done"));
            feed.end(Some(t));
            let all = body.collect().await.unwrap();
            assert_eq!(all.trailers().unwrap()["x-check"], "done");
            assert_eq!(&all.to_bytes()[..], b"abcd");
        });
    }

    #[test]
    fn feed_fails_past_its_limit_and_drops_once_unread() {
        rt().block_on(async {
            let feed = BodyFeed::new(4);
            let mut body = feed.body(Some(10));
            assert_eq!(body.size_hint().exact(), Some(10));
            feed.push(Bytes::from_static(b"abc"));
            feed.push(Bytes::from_static(b"de"));
            let e = body.frame().await.unwrap().unwrap_err();
            assert!(e.to_string().contains("package_max_length"), "{e}");
            assert!(body.frame().await.is_none());

            let feed = BodyFeed::new(1024);
            drop(feed.body(None));
            feed.push(Bytes::from_static(b"gone"));
            assert_eq!(feed.0.lock().buffered, 0);
            // Nobody reads: a writer does not wait.
            feed.send(Bytes::from(vec![0u8; 512 * 1024])).await;
        });
    }

    #[test]
    fn feed_fails_when_the_connection_closes() {
        rt().block_on(async {
            let feed = BodyFeed::new(1024);
            let mut body = feed.body(None);
            feed.push(Bytes::from_static(b"x"));
            feed.fail("closed");
            assert_eq!(
                &body.frame().await.unwrap().unwrap().into_data().unwrap()[..],
                b"x"
            );
            assert!(body.frame().await.unwrap().is_err());
        });
    }
}
