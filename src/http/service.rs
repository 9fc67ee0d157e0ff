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
use std::future::poll_fn;
use std::pin::{pin, Pin};
use std::rc::Rc;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
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
/// [`http_body::Body`] of [`Bytes`] frames. Today it holds the body as received (bodies
/// are limited by `package_max_length`); a multipart body is passed on as sent, not parsed.
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
}

impl From<Bytes> for RequestBody {
    fn from(data: Bytes) -> RequestBody {
        RequestBody {
            data: (!data.is_empty()).then_some(data),
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        Poll::Ready(self.data.take().map(|d| Ok(Frame::data(d))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.data.as_ref().map_or(0, |d| d.len() as u64))
    }
}

/// Why a [`RequestBody`] could not be read to its end (reserved for streamed bodies: a
/// buffered body never fails).
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
    /// (client address). Bodies are passed on as sent (no form or multipart parsing).
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
fn to_http(req: Request, h: &Handle) -> Result<http::Request<RequestBody>, http::Error> {
    let mut b = http::Request::builder()
        .method(http::Method::from_bytes(req.method.as_bytes())?)
        .uri(req.uri.as_str())
        .version(match req.server.protocol {
            "HTTP/1.0" => http::Version::HTTP_10,
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
    b.extension(h.clone())
        .extension(fd)
        .extension(info)
        .body(RequestBody::from(req.body))
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
