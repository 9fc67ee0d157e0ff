//! HTTP/2 where the socket lives, by prior knowledge (h2c: the client's first bytes are the
//! preface) or by ALPN `h2` on a TLS listener.
//!
//! The `h2` crate does the framing, HPACK, flow control and the protocol's defences (rapid
//! reset, CONTINUATION floods, header list limits, SETTINGS/PING floods); it reads and
//! writes the connection's own transport (plain or TLS) through [`H2Io`]. Each stream that
//! completes its request becomes one HTTP/1.1 request into the [`EventSink`], exactly as if
//! it had been pipelined on an HTTP/1.1 connection: the workers, the native `on_request` API,
//! the tower adapter, `request_timeout`, the 503 for a dead worker all stay as they are. The
//! workers' answers come back through the same reply path ([`Conn::write`]) as HTTP/1.1
//! responses, in request order; the driver decodes them ([`ResponseDecoder`]) and sends each
//! on its stream, taking from the output buffer only what the stream's flow-control window
//! lets it send, so a slow reader holds at most its window plus `buffer_output_size`.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use h2::server::SendResponse;
use h2::SendStream;
use rswoole_codec::http1::{ResponseDecoder, ResponseEvent};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::conn::{Conn, DRAIN_TIMEOUT};
use super::sink::EventSink;
use crate::base::Settings;

/// The client connection preface of HTTP/2 (RFC 9113 §3.4).
pub(crate) const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// How much of the workers' response bytes the driver holds outside the output buffer.
const CHUNK: usize = 64 * 1024;

/// HTTP/2 limits of a listener.
#[derive(Debug, Clone)]
pub(crate) struct H2Conf {
    pub(crate) enabled: bool,
    pub(crate) keepalive_interval: Option<Duration>,
    pub(crate) keepalive_timeout: Duration,
    pub(crate) max_concurrent_streams: u32,
    pub(crate) initial_window_size: u32,
    pub(crate) initial_connection_window_size: u32,
    pub(crate) max_frame_size: u32,
    pub(crate) max_header_list_size: u32,
    /// Largest request body (`package_max_length`).
    pub(crate) max_body: usize,
    /// How long the client has to send its preface and SETTINGS.
    pub(crate) handshake_timeout: Duration,
    pub(crate) limits: rswoole_codec::http1::Limits,
}

impl Default for H2Conf {
    fn default() -> Self {
        H2Conf::from_settings(&Settings::default())
    }
}

impl H2Conf {
    pub(crate) fn from_settings(s: &Settings) -> H2Conf {
        let h = &s.http.http2;
        H2Conf {
            enabled: h.enabled,
            keepalive_interval: h.keepalive_interval,
            keepalive_timeout: h.keepalive_timeout,
            max_concurrent_streams: h.max_concurrent_streams,
            initial_window_size: h.initial_window_size,
            initial_connection_window_size: h.initial_connection_window_size,
            max_frame_size: h.max_frame_size,
            max_header_list_size: h
                .max_header_list_size
                .unwrap_or(s.http.max_header_size.min(u32::MAX as usize) as u32),
            max_body: s.package_max_length,
            handshake_timeout: s.http.header_timeout,
            limits: super::http::limits(s),
        }
    }
}

/// The connection's transport as `AsyncRead + AsyncWrite` for the `h2` crate.
struct H2Io<X> {
    conn: Arc<Conn<X>>,
    /// Bytes already read before the switch (the preface), then TLS plaintext not yet taken.
    plain: Vec<u8>,
}

impl<X> AsyncRead for H2Io<X> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let me = self.get_mut();
        let dst = buf.initialize_unfilled();
        match me.conn.h2_poll_read(cx, dst, &mut me.plain) {
            Poll::Ready(Ok(n)) => {
                buf.advance(n);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<X> AsyncWrite for H2Io<X> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.conn.h2_poll_write(cx, data)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.conn.h2_poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.conn.h2_poll_flush(cx) {
            Poll::Ready(Ok(())) => Poll::Ready(self.conn.h2_shutdown()),
            other => other,
        }
    }
}

/// A response owed to a stream, in request order.
struct Owed {
    respond: SendResponse<Bytes>,
    head: bool,
}

/// Where the response being decoded goes.
enum Out {
    /// Between responses.
    Idle,
    /// Streaming the body to this stream.
    Sending(SendStream<Bytes>),
    /// The stream is gone (reset by the client): the rest of the response is dropped.
    Discarding,
}

/// The response side of a connection: decoding the workers' HTTP/1.1 responses onto streams.
struct Responses {
    owed: VecDeque<Owed>,
    dec: ResponseDecoder,
    rbuf: BytesMut,
    out: Out,
    /// Body bytes waiting for flow-control capacity on the current stream.
    held: Option<Bytes>,
    /// An event decoded ahead (to see whether a response has a body).
    next: Option<ResponseEvent>,
}

/// The response bytes do not make sense (a bug, not the client's fault): end the connection.
#[derive(Debug, thiserror::Error)]
#[error("HTTP/2: {0}")]
struct Broken(&'static str);

impl Responses {
    /// Moves what the workers wrote onto the streams, as far as flow control allows.
    fn pump<X>(&mut self, conn: &Conn<X>) -> Result<(), Broken> {
        loop {
            if let Some(mut data) = self.held.take() {
                let Out::Sending(s) = &mut self.out else {
                    continue;
                };
                let cap = s.capacity();
                if cap == 0 {
                    s.reserve_capacity(data.len());
                    self.held = Some(data);
                    return Ok(());
                }
                let now = data.split_to(cap.min(data.len()));
                if s.send_data(now, false).is_err() {
                    self.out = Out::Discarding;
                } else if !data.is_empty() {
                    s.reserve_capacity(data.len());
                    self.held = Some(data);
                    return Ok(());
                }
            }
            let head_req = self.owed.front().is_some_and(|o| o.head);
            let decoded = match self.next.take() {
                Some(ev) => Ok(Some(ev)),
                None => self.dec.decode(&mut self.rbuf, head_req),
            };
            let ev = match decoded {
                Ok(Some(ev)) => ev,
                Ok(None) => {
                    if self.rbuf.len() >= CHUNK && !self.dec.is_awaiting_head() {
                        return Ok(());
                    }
                    match conn.take_output(CHUNK) {
                        Some(b) => {
                            self.rbuf.extend_from_slice(&b);
                            continue;
                        }
                        None => return Ok(()),
                    }
                }
                Err(_) => return Err(Broken("a worker's response does not parse")),
            };
            match ev {
                ResponseEvent::Head { status, headers } => {
                    let Some(owed) = self.owed.pop_front() else {
                        return Err(Broken("a response without a request"));
                    };
                    // A body-less response ends with its HEADERS frame.
                    let ends = match self.dec.decode(&mut self.rbuf, owed.head) {
                        Ok(Some(ResponseEvent::End(t))) if t.is_empty() => true,
                        Ok(ev) => {
                            self.next = ev;
                            false
                        }
                        Err(_) => return Err(Broken("a worker's response does not parse")),
                    };
                    let resp = response(status, &headers);
                    let mut respond = owed.respond;
                    self.out = match respond.send_response(resp, ends) {
                        Ok(_) if ends => Out::Idle,
                        Ok(s) => Out::Sending(s),
                        Err(_) => Out::Discarding,
                    };
                }
                ResponseEvent::Data(d) => {
                    if matches!(self.out, Out::Sending(_)) && !d.is_empty() {
                        self.held = Some(d);
                    }
                }
                ResponseEvent::End(trailers) => {
                    if let Out::Sending(mut s) = std::mem::replace(&mut self.out, Out::Idle) {
                        if trailers.is_empty() {
                            let _ = s.send_data(Bytes::new(), true);
                        } else {
                            let _ = s.send_trailers(header_map(&trailers));
                        }
                    }
                }
            }
        }
    }

    /// Waits for flow-control capacity when body bytes are held.
    fn poll_capacity(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        match (&mut self.out, &self.held) {
            (Out::Sending(s), Some(_)) => match s.poll_capacity(cx) {
                Poll::Ready(Some(Ok(_))) => Poll::Ready(()),
                Poll::Ready(_) => {
                    // The stream is gone.
                    self.held = None;
                    self.out = Out::Discarding;
                    Poll::Ready(())
                }
                Poll::Pending => Poll::Pending,
            },
            _ => Poll::Pending,
        }
    }
}

/// Headers that do not exist in HTTP/2 (RFC 9113 §8.2.2) or are recomputed.
fn hop_by_hop(name: &[u8]) -> bool {
    [
        &b"connection"[..],
        b"keep-alive",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-connection",
    ]
    .iter()
    .any(|h| name.eq_ignore_ascii_case(h))
}

fn header_map(fields: &[(Bytes, Bytes)]) -> http::HeaderMap {
    let mut m = http::HeaderMap::with_capacity(fields.len());
    for (k, v) in fields {
        if hop_by_hop(k) {
            continue;
        }
        if let (Ok(k), Ok(v)) = (
            http::HeaderName::from_bytes(k),
            http::HeaderValue::from_maybe_shared(v.clone()),
        ) {
            m.append(k, v);
        }
    }
    m
}

fn response(status: u16, headers: &[(Bytes, Bytes)]) -> http::Response<()> {
    let mut r = http::Response::new(());
    *r.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
    *r.headers_mut() = header_map(headers);
    r
}

/// A complete request of one stream, as the HTTP/1.1 head the rest of the server reads.
fn request_head(
    parts: &http::request::Parts,
    body_len: usize,
    limits: &rswoole_codec::http1::Limits,
) -> Option<rswoole_codec::http1::RequestHead> {
    let mut h = BytesMut::with_capacity(256);
    h.extend_from_slice(parts.method.as_str().as_bytes());
    h.extend_from_slice(b" ");
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    h.extend_from_slice(
        if parts.method == http::Method::OPTIONS && target.is_empty() {
            b"*"
        } else {
            target.as_bytes()
        },
    );
    h.extend_from_slice(b" HTTP/1.1\r\n");
    if !parts.headers.contains_key(http::header::HOST) {
        h.extend_from_slice(b"host: ");
        h.extend_from_slice(parts.uri.authority().map_or("", |a| a.as_str()).as_bytes());
        h.extend_from_slice(b"\r\n");
    }
    let mut cookies: Vec<&[u8]> = Vec::new();
    for (k, v) in &parts.headers {
        if k == http::header::COOKIE {
            cookies.push(v.as_bytes());
            continue;
        }
        if k == http::header::CONTENT_LENGTH || k == http::header::TE || hop_by_hop(k.as_ref()) {
            continue;
        }
        h.extend_from_slice(k.as_str().as_bytes());
        h.extend_from_slice(b": ");
        h.extend_from_slice(v.as_bytes());
        h.extend_from_slice(b"\r\n");
    }
    if !cookies.is_empty() {
        // RFC 9113 §8.2.3: split cookie fields are joined with "; ".
        h.extend_from_slice(b"cookie: ");
        h.extend_from_slice(&cookies.join(&b"; "[..]));
        h.extend_from_slice(b"\r\n");
    }
    if body_len > 0 || !matches!(parts.method, http::Method::GET | http::Method::HEAD) {
        h.extend_from_slice(format!("content-length: {body_len}\r\n").as_bytes());
    }
    h.extend_from_slice(b"\r\n");
    super::http::parse_head(&h.freeze(), limits)
}

/// A stream whose request body is being read.
type BodyDone = (
    http::request::Parts,
    Result<Bytes, u16>,
    SendResponse<Bytes>,
);

async fn read_body(
    parts: http::request::Parts,
    mut body: h2::RecvStream,
    max: usize,
    respond: SendResponse<Bytes>,
) -> BodyDone {
    let mut buf = BytesMut::new();
    while let Some(chunk) = body.data().await {
        let Ok(chunk) = chunk else {
            return (parts, Err(400), respond);
        };
        let _ = body.flow_control().release_capacity(chunk.len());
        if buf.len() + chunk.len() > max {
            return (parts, Err(413), respond);
        }
        buf.extend_from_slice(&chunk);
    }
    (parts, Ok(buf.freeze()), respond)
}

/// Answers a stream from here (the request could not be handed on).
fn refuse(mut respond: SendResponse<Bytes>, status: u16) {
    let body = Bytes::from(format!(
        "{status} {}\n",
        rswoole_codec::http1::reason(status)
    ));
    let mut r = http::Response::new(());
    *r.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::BAD_REQUEST);
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    if let Ok(mut s) = respond.send_response(r, false) {
        let _ = s.send_data(body, true);
    }
}

/// Serves the connection as HTTP/2 until it ends; `pre`: bytes already read (the preface).
pub(crate) async fn serve<S: EventSink + ?Sized>(
    conn: &Arc<Conn<S::State>>,
    sink: &S,
    conf: &H2Conf,
    pre: BytesMut,
) {
    conn.enter_h2();
    let io = H2Io {
        conn: conn.clone(),
        plain: pre.to_vec(),
    };
    let mut b = h2::server::Builder::new();
    b.max_concurrent_streams(conf.max_concurrent_streams)
        .initial_window_size(conf.initial_window_size)
        .initial_connection_window_size(conf.initial_connection_window_size)
        .max_frame_size(conf.max_frame_size)
        .max_header_list_size(conf.max_header_list_size)
        .max_send_buffer_size(CHUNK);
    let mut h2c =
        match tokio::time::timeout(conf.handshake_timeout, b.handshake::<_, Bytes>(io)).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                tracing::debug!(fd = %conn.id, error = %e, "HTTP/2 handshake failed");
                return conn.h2_finish(sink).await;
            }
            Err(_) => {
                tracing::debug!(fd = %conn.id, "HTTP/2 handshake timeout");
                return conn.h2_finish(sink).await;
            }
        };
    tracing::debug!(fd = %conn.id, "HTTP/2 connection");
    let mut resp = Responses {
        owed: VecDeque::new(),
        dec: ResponseDecoder::new(),
        rbuf: BytesMut::new(),
        out: Out::Idle,
        held: None,
        next: None,
    };
    let mut bodies: tokio::task::JoinSet<BodyDone> = tokio::task::JoinSet::new();
    let mut goaway = false;
    let mut keepalive = conf
        .keepalive_interval
        .and_then(|every| Some((h2c.ping_pong()?, every)));
    // When the next PING goes out, or (one in flight) when its answer is overdue.
    let mut ping_at = conf
        .keepalive_interval
        .map(|d| std::time::Instant::now() + d);
    let mut ping_out = false;
    loop {
        if let Err(e) = resp.pump(&**conn) {
            tracing::warn!(fd = %conn.id, error = %e, "closing the HTTP/2 connection");
            break;
        }
        let closing = conn.close_requested();
        if closing.is_some() && !goaway {
            // Stop, reload, heartbeat or the application closing: GOAWAY, open streams finish.
            goaway = true;
            h2c.graceful_shutdown();
        }
        let drain_by = closing.map(|t| t + DRAIN_TIMEOUT);
        tokio::select! {
            biased;
            _ = conn.notified() => {}
            _ = std::future::poll_fn(|cx| resp.poll_capacity(cx)) => {}
            r = h2c.accept() => match r {
                Some(Ok((req, respond))) => {
                    let (parts, body) = req.into_parts();
                    if body.is_end_stream() {
                        dispatch(conn, sink, conf, &mut resp, parts, Ok(Bytes::new()), respond);
                    } else {
                        bodies.spawn(read_body(parts, body, conf.max_body, respond));
                    }
                }
                Some(Err(e)) => {
                    tracing::debug!(fd = %conn.id, error = %e, "HTTP/2 connection error");
                    break;
                }
                None => break,
            },
            r = pong(&mut keepalive), if ping_out => {
                if r.is_err() {
                    break;
                }
                ping_out = false;
                ping_at = keepalive.as_ref().map(|(_, every)| std::time::Instant::now() + *every);
            }
            _ = tokio::time::sleep_until(ping_at.unwrap_or_else(std::time::Instant::now).into()), if ping_at.is_some() => {
                if ping_out {
                    tracing::debug!(fd = %conn.id, "HTTP/2 keepalive PING unanswered; closing");
                    break;
                }
                if let Some((pp, _)) = keepalive.as_mut() {
                    if pp.send_ping(h2::Ping::opaque()).is_err() {
                        break;
                    }
                    ping_out = true;
                    ping_at = Some(std::time::Instant::now() + conf.keepalive_timeout);
                }
            }
            Some(done) = bodies.join_next(), if !bodies.is_empty() => {
                if let Ok((parts, body, respond)) = done {
                    dispatch(conn, sink, conf, &mut resp, parts, body, respond);
                }
            }
            _ = tokio::time::sleep_until(drain_by.unwrap_or_else(std::time::Instant::now).into()), if drain_by.is_some() => {
                tracing::debug!(fd = %conn.id, "HTTP/2 streams did not finish in time; cutting the connection");
                break;
            }
        }
    }
    bodies.abort_all();
    drop(h2c);
    conn.h2_finish(sink).await;
}

/// Waits for the answer to the PING in flight.
async fn pong(k: &mut Option<(h2::PingPong, Duration)>) -> Result<(), h2::Error> {
    match k {
        Some((pp, _)) => std::future::poll_fn(|cx| pp.poll_pong(cx))
            .await
            .map(|_| ()),
        None => std::future::pending().await,
    }
}

fn dispatch<S: EventSink + ?Sized>(
    conn: &Arc<Conn<S::State>>,
    sink: &S,
    conf: &H2Conf,
    resp: &mut Responses,
    parts: http::request::Parts,
    body: Result<Bytes, u16>,
    respond: SendResponse<Bytes>,
) {
    let body = match body {
        Ok(b) => b,
        Err(status) => return refuse(respond, status),
    };
    let Some(head) = request_head(&parts, body.len(), &conf.limits) else {
        return refuse(respond, 431);
    };
    resp.owed.push_back(Owed {
        respond,
        head: parts.method == http::Method::HEAD,
    });
    sink.http_request(conn, head, body);
}
