//! HTTP/2 where the socket lives, by prior knowledge (h2c: the client's first bytes are the
//! preface) or by ALPN `h2` on a TLS listener.
//!
//! The `h2` crate does the framing, HPACK, flow control and the protocol's defences (rapid
//! reset, CONTINUATION floods, header list limits, SETTINGS/PING floods); it reads and
//! writes the connection's own transport (plain or TLS) through [`H2Io`]. Each stream's
//! request becomes an HTTP/1.1 request into the [`EventSink`] tagged with its stream id
//! ([`EventSink::stream_event`]): whole (`HttpRequest`) up to
//! [`STREAM_THRESHOLD`](super::http::STREAM_THRESHOLD) bytes of body, else streamed
//! (`HttpHead`, `HttpBody`…, `HttpEnd`) with the stream's flow-control window given back
//! only as fast as the worker consumes it. The workers, the native `on_request` API, the
//! tower adapter, `request_timeout`, the 503 for a dead worker all stay as they are. A
//! worker answers a stream in structured parts ([`h2resp`]: status, header fields, body
//! bytes; no HTTP/1.1 encoding) tagged with the stream ([`Conn::write_h2`]), and runs the
//! streams of one connection concurrently; the driver sends each stream's parts on it as
//! they come, so a slow handler on one stream delays no other. It takes from the output
//! buffer only what a stream's flow-control window lets it send, so a slow reader holds at
//! most its window plus `buffer_output_size`.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use h2::server::SendResponse;
use h2::SendStream;
use rswoole_codec::http1::{decimal, RequestHead};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::conn::{Conn, DRAIN_TIMEOUT};
use super::h2resp::{self, Part, PartKind};
use super::sink::EventSink;
use crate::base::Settings;
use crate::ipc::Kind;

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
    /// Where the socket is read into: zeroed once, on the first read. The `h2` crate hands
    /// `poll_read` an uninitialized buffer each call (its read buffer's spare capacity, about
    /// 8 KiB), which safe code must zero before reading into: that was 16 % of a Base-mode
    /// worker's instructions under h2load (11,000 per request). Reading here and copying
    /// what came (a few hundred bytes per read) costs far less.
    scratch: Vec<u8>,
}

/// The size of [`H2Io::scratch`] (a whole frame of the default size and its header).
const READ_SCRATCH: usize = 16 * 1024 + 9;

impl<X> AsyncRead for H2Io<X> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let me = self.get_mut();
        if me.scratch.is_empty() {
            me.scratch = vec![0; READ_SCRATCH];
        }
        let want = buf.remaining().min(me.scratch.len());
        match me
            .conn
            .h2_poll_read(cx, &mut me.scratch[..want], &mut me.plain)
        {
            Poll::Ready(Ok(n)) => {
                buf.put_slice(&me.scratch[..n]);
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

/// The workers' responses per stream, as written ([`Conn::write_h2`]) and not yet taken by
/// the driver. Lives in the connection's output state; its bytes count against
/// `buffer_output_size`.
#[derive(Debug, Default)]
pub(crate) struct Queued {
    /// The parts of each stream, in the order written: a few entries (at most the streams in
    /// flight, a part each most of the time), so a scan beats a map of queues.
    parts: Vec<(u32, Part)>,
    /// Bytes in `parts`.
    pub(super) bytes: usize,
    /// Streams to reset (their response cannot be completed).
    pub(super) aborted: Vec<u32>,
}

impl Queued {
    pub(super) fn push(&mut self, stream: u32, part: Part) {
        self.bytes += part.len();
        self.parts.push((stream, part));
    }

    /// The next part queued for `stream`, its body cut to `max` bytes (the rest stays
    /// queued): the driver holds no more than that of a stream outside the output buffer.
    fn take(&mut self, stream: u32, max: usize) -> Option<Part> {
        let i = self.parts.iter().position(|(id, _)| *id == stream)?;
        let out = match self.parts[i].1.split_body(max) {
            Some(first) => first,
            None => self.parts.remove(i).1,
        };
        self.bytes -= out.len();
        Some(out)
    }

    /// Drops what is queued for streams `keep` says are no longer answered here.
    fn forget_unless(&mut self, keep: impl Fn(u32) -> bool) {
        let Queued { parts, bytes, .. } = self;
        parts.retain(|(id, p)| {
            let k = keep(*id);
            if !k {
                tracing::debug!(
                    stream = id,
                    bytes = p.len(),
                    "HTTP/2: response for a stream no longer open; dropped"
                );
                *bytes -= p.len();
            }
            k
        });
    }
}

/// Where a stream's response stands.
enum Out {
    /// Its head has not come yet.
    Idle,
    /// Streaming the body.
    Sending(SendStream<Bytes>),
    /// The stream is gone (reset by the client): the rest of the response is dropped.
    Discarding,
}

/// The response side of one stream: its worker's parts sent on it.
struct StreamResp {
    /// Until the response head goes out.
    respond: Option<SendResponse<Bytes>>,
    out: Out,
    /// Body bytes waiting for flow-control capacity.
    held: Option<Bytes>,
    /// `held` is the end of the body: its last DATA frame ends the stream (no empty DATA frame
    /// with END_STREAM after it).
    held_end: bool,
}

/// The response parts do not make sense (a bug, not the client's fault): end the connection.
#[derive(Debug, thiserror::Error)]
#[error("HTTP/2: {0}")]
struct Broken(&'static str);

impl StreamResp {
    fn new(respond: SendResponse<Bytes>) -> StreamResp {
        StreamResp {
            respond: Some(respond),
            out: Out::Idle,
            held: None,
            held_end: false,
        }
    }

    /// Moves what the worker wrote for stream `id` onto it, as far as flow control allows;
    /// `Ok(true)`: the response is complete.
    fn pump<X>(&mut self, id: u32, conn: &Conn<X>) -> Result<bool, Broken> {
        loop {
            if let Some(mut data) = self.held.take() {
                if let Out::Sending(s) = &mut self.out {
                    let cap = s.capacity();
                    if cap == 0 && !data.is_empty() {
                        s.reserve_capacity(data.len());
                        self.held = Some(data);
                        return Ok(false);
                    }
                    let now = data.split_to(cap.min(data.len()));
                    let end = self.held_end && data.is_empty();
                    if s.send_data(now, end).is_err() {
                        self.out = Out::Discarding;
                    } else if !data.is_empty() {
                        s.reserve_capacity(data.len());
                        self.held = Some(data);
                        return Ok(false);
                    } else if end {
                        self.out = Out::Idle;
                        return Ok(true);
                    }
                }
                if self.held_end {
                    // The stream went away with the body's end in hand: the response is over.
                    return Ok(true);
                }
            }
            let Some(part) = conn.h2_queued(|q| q.take(id, CHUNK)) else {
                return Ok(false);
            };
            match part.kind {
                PartKind::Head(status) => {
                    let Some(mut respond) = self.respond.take() else {
                        return Err(Broken("two response heads for one stream"));
                    };
                    // A body-less response ends with its HEADERS frame.
                    let ends = part.end && part.body.is_empty();
                    let resp = response(status, &part.fields);
                    self.out = match respond.send_response(resp, ends) {
                        Ok(_) if ends => return Ok(true),
                        Ok(s) => Out::Sending(s),
                        Err(_) => Out::Discarding,
                    };
                    if !self.hold(part.body, part.end) && part.end {
                        return Ok(true);
                    }
                }
                PartKind::Data if self.respond.is_some() => {
                    return Err(Broken("response body before its head"));
                }
                PartKind::Data => {
                    if !self.hold(part.body, part.end) && part.end {
                        self.out = Out::Idle;
                        return Ok(true);
                    }
                }
                PartKind::Trailers => {
                    if self.respond.is_some() {
                        return Err(Broken("response trailers before its head"));
                    }
                    if let Out::Sending(mut s) = std::mem::replace(&mut self.out, Out::Idle) {
                        let _ = s.send_trailers(header_map(&part.fields));
                    }
                    return Ok(true);
                }
            }
        }
    }

    /// Holds body bytes (or, with `end`, the end) to send as capacity allows; `false`: nothing
    /// to send (no body and not the end, or the stream is gone).
    fn hold(&mut self, body: Bytes, end: bool) -> bool {
        if matches!(self.out, Out::Sending(_)) && (!body.is_empty() || end) {
            self.held = Some(body);
            self.held_end = end;
            true
        } else {
            false
        }
    }

    /// Resets the stream (its response cannot be completed).
    fn reset(mut self) {
        let reason = h2::Reason::INTERNAL_ERROR;
        if let Some(mut r) = self.respond.take() {
            r.send_reset(reason);
        } else if let Out::Sending(s) = &mut self.out {
            s.send_reset(reason);
        }
    }

    /// Answers from here (`status`) if the worker's answer has not started, else resets; the
    /// worker's answer, if any comes, is dropped.
    fn refuse(mut self, status: u16) {
        match self.respond.take() {
            Some(r) => refuse(r, status),
            None => self.reset(),
        }
    }
}

/// The response side of a connection: each stream's response decoded onto its stream, as it
/// comes, whatever the other streams do.
#[derive(Default)]
struct Responses {
    streams: HashMap<u32, StreamResp>,
    /// Streams with bytes queued (scratch of [`Responses::pump`]).
    ready: Vec<u32>,
}

impl Responses {
    /// Moves what the workers wrote onto the streams, as far as flow control allows.
    fn pump<X>(&mut self, conn: &Conn<X>) -> Result<(), Broken> {
        let Responses { streams, ready } = self;
        ready.clear();
        let aborted = conn.h2_queued(|q| {
            if !q.parts.is_empty() {
                q.forget_unless(|id| streams.contains_key(&id));
                ready.extend(q.parts.iter().map(|(id, _)| *id));
            }
            std::mem::take(&mut q.aborted)
        });
        for id in aborted {
            if let Some(s) = streams.remove(&id) {
                s.reset();
            }
        }
        let mut broken = None;
        streams.retain(|&id, s| {
            // Only a stream with something to move: new bytes, or bytes held for capacity.
            if s.held.is_none() && !ready.contains(&id) {
                return true;
            }
            match s.pump(id, conn) {
                Ok(done) => !done,
                Err(e) => {
                    broken = Some(e);
                    true
                }
            }
        });
        broken.map_or(Ok(()), Err)
    }

    /// Waits for flow-control capacity on a stream whose body bytes are held.
    fn poll_capacity(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let mut ready = false;
        for s in self.streams.values_mut() {
            if s.held.is_none() {
                continue;
            }
            if let Out::Sending(st) = &mut s.out {
                match st.poll_capacity(cx) {
                    Poll::Ready(Some(Ok(_))) => ready = true,
                    Poll::Ready(_) => {
                        // The stream is gone: the next pump drops what is held (and ends the
                        // response if that was its end).
                        s.out = Out::Discarding;
                        ready = true;
                    }
                    Poll::Pending => {}
                }
            }
        }
        if ready {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// Headers that do not exist in HTTP/2 (RFC 9113 §8.2.2) or are recomputed.
/// Whether a request field of an HTTP/2 stream goes into the head the worker gets (not
/// `content-length`, which the body's framing gives, nor `te`, `expect` or hop-by-hop ones).
fn forwarded(k: &http::HeaderName) -> bool {
    !(k == http::header::CONTENT_LENGTH
        || k == http::header::TE
        || k == http::header::EXPECT
        || hop_by_hop(k.as_ref()))
}

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

/// Field lines (`name: value\r\n`, [`h2resp::fields`]) as an `http::HeaderMap`, without the
/// fields HTTP/2 has no place for; a field `http` refuses (a control byte in its value) is
/// left out and logged.
fn header_map(lines: &Bytes) -> http::HeaderMap {
    let mut m = http::HeaderMap::new();
    for (k, v) in h2resp::fields(lines) {
        if hop_by_hop(k) {
            continue;
        }
        match (
            http::HeaderName::from_bytes(k),
            http::HeaderValue::from_maybe_shared(v),
        ) {
            (Ok(k), Ok(v)) => {
                m.append(k, v);
            }
            _ => tracing::debug!(
                name = %String::from_utf8_lossy(k),
                "HTTP/2: a response field not valid in HTTP/2; left out"
            ),
        }
    }
    m
}

fn response(status: u16, fields: &Bytes) -> http::Response<()> {
    let mut r = http::Response::new(());
    *r.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
    *r.headers_mut() = header_map(fields);
    r
}

/// The body length a request head announces to the worker.
#[derive(Debug, Clone, Copy)]
enum BodyLen {
    /// The whole body is there: `content-length`.
    Known(usize),
    /// It streams: the client's `content-length` if it sent one, else chunked.
    Streaming(Option<u64>),
}

/// A request of one stream, as the HTTP/1.1 head the rest of the server reads (and a
/// Process-mode master sends on with its parse index): written as HTTP/1.1 text, its spans
/// noted as it is written, and built from them ([`RequestHead::from_index`]), without parsing
/// the text back. The `h2` crate has validated the method, the path and every field; what
/// the HTTP/1.1 parser would still refuse is refused here too: a target over `max_uri_len`,
/// a head over `max_head_bytes`, more than `max_headers` fields, two `host` fields. `None`:
/// refused (431).
fn request_head(
    parts: &http::request::Parts,
    body: BodyLen,
    limits: &rswoole_codec::http1::Limits,
) -> Option<RequestHead> {
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let target = if parts.method == http::Method::OPTIONS && target.is_empty() {
        "*"
    } else {
        target
    };
    if target.len() > limits.max_uri_len {
        return None;
    }
    let mut h = BytesMut::with_capacity(256);
    // Appends `b`, returns its span.
    let put = |h: &mut BytesMut, b: &[u8]| -> (u32, u32) {
        let at = h.len() as u32;
        h.extend_from_slice(b);
        (at, h.len() as u32)
    };
    let method = put(&mut h, parts.method.as_str().as_bytes());
    h.extend_from_slice(b" ");
    let uri = put(&mut h, target.as_bytes());
    let (path, query) = match target.find('?') {
        Some(q) => (
            (uri.0, uri.0 + q as u32),
            Some((uri.0 + q as u32 + 1, uri.1)),
        ),
        None => (uri, None),
    };
    h.extend_from_slice(b" HTTP/1.1\r\n");
    // The parse index (`RequestHead::write_index`'s layout): its fixed part is filled in at
    // the end; each field's spans are appended as the field is written.
    let mut ix = Vec::with_capacity(RequestHead::INDEX_FIXED + 16 * (parts.headers.len() + 2));
    ix.resize(RequestHead::INDEX_FIXED, 0);
    let mut count = 0u32;
    let mut host = None;
    let mut field = |h: &mut BytesMut, name: &[u8], value: &[u8]| {
        let n = put(h, name);
        h.extend_from_slice(b": ");
        let v = put(h, value);
        h.extend_from_slice(b"\r\n");
        for x in [n.0, n.1, v.0, v.1] {
            ix.extend_from_slice(&x.to_le_bytes());
        }
        count += 1;
        v
    };
    if !parts.headers.contains_key(http::header::HOST) {
        let authority = parts.uri.authority().map_or("", |a| a.as_str());
        host = Some(field(&mut h, b"host", authority.as_bytes()));
    }
    let mut cookies: Vec<&[u8]> = Vec::new();
    for (k, v) in &parts.headers {
        if k == http::header::COOKIE {
            cookies.push(v.as_bytes());
            continue;
        }
        if !forwarded(k) {
            continue;
        }
        let v = field(&mut h, k.as_str().as_bytes(), v.as_bytes());
        if k == http::header::HOST && host.replace(v).is_some() {
            return None;
        }
    }
    if !cookies.is_empty() {
        // RFC 9113 §8.2.3: split cookie fields are joined with "; ".
        field(&mut h, b"cookie", &cookies.join(&b"; "[..]));
    }
    let mut digits = [0u8; 20];
    let (tag, len) = match body {
        BodyLen::Known(n)
            if n > 0 || !matches!(parts.method, http::Method::GET | http::Method::HEAD) =>
        {
            field(&mut h, b"content-length", decimal(n as u64, &mut digits));
            (1u8, n as u64)
        }
        BodyLen::Known(_) => (0, 0),
        BodyLen::Streaming(Some(n)) => {
            field(&mut h, b"content-length", decimal(n, &mut digits));
            (1, n)
        }
        BodyLen::Streaming(None) => {
            field(&mut h, b"transfer-encoding", b"chunked");
            (2, 0)
        }
    };
    h.extend_from_slice(b"\r\n");
    if h.len() > limits.max_head_bytes || count as usize > limits.max_headers {
        return None;
    }
    let mut fixed = &mut ix[..RequestHead::INDEX_FIXED];
    use bytes::BufMut;
    fixed.put_slice(&[1, keep_alive_flags(), tag]);
    fixed.put_u8(u8::from(query.is_some()) | (u8::from(host.is_some()) << 1));
    fixed.put_u64_le(len);
    for (a, b) in [
        method,
        uri,
        path,
        query.unwrap_or((0, 0)),
        host.unwrap_or((0, 0)),
    ] {
        fixed.put_u32_le(a);
        fixed.put_u32_le(b);
    }
    fixed.put_u32_le(count);
    RequestHead::from_index(h.freeze(), &ix)
}

/// The flags byte of a parse index for an HTTP/1.1 request that keeps the connection (and
/// asks no upgrade or `100-continue`), as the parser writes it: learned once from a parse,
/// so that it follows the codec's encoding of its flags.
fn keep_alive_flags() -> u8 {
    static FLAGS: std::sync::OnceLock<u8> = std::sync::OnceLock::new();
    *FLAGS.get_or_init(|| {
        let mut b = BytesMut::from(&b"GET / HTTP/1.1\r\nhost: x\r\n\r\n"[..]);
        match rswoole_codec::http1::RequestDecoder::default().decode(&mut b) {
            Ok(Some(rswoole_codec::http1::Event::Head(head))) => {
                let mut ix = Vec::new();
                head.write_index(&mut ix);
                ix[1]
            }
            // Not reached (a constant request that parses; the unit tests check the
            // result against the parser's): the codec's keep-alive bit.
            _ => 1,
        }
    })
}

/// [`request_head`] the slow way (the HTTP/1.1 text parsed back): what the direct build
/// must equal.
#[cfg(test)]
fn request_head_parsed(
    parts: &http::request::Parts,
    body: BodyLen,
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
        if !forwarded(k) {
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
    match body {
        BodyLen::Known(n)
            if n > 0 || !matches!(parts.method, http::Method::GET | http::Method::HEAD) =>
        {
            h.extend_from_slice(format!("content-length: {n}\r\n").as_bytes());
        }
        BodyLen::Known(_) => {}
        BodyLen::Streaming(Some(n)) => {
            h.extend_from_slice(format!("content-length: {n}\r\n").as_bytes());
        }
        BodyLen::Streaming(None) => h.extend_from_slice(b"transfer-encoding: chunked\r\n"),
    }
    h.extend_from_slice(b"\r\n");
    // Decoded in place (`parse_head` would copy it once more).
    let mut dec = rswoole_codec::http1::RequestDecoder::new(rswoole_codec::http1::Limits {
        max_body: u64::MAX,
        ..limits.clone()
    });
    match dec.decode(&mut h) {
        Ok(Some(rswoole_codec::http1::Event::Head(head))) => Some(head),
        _ => None,
    }
}

/// The `content-length` a request announces.
fn content_length(parts: &http::request::Parts) -> Option<u64> {
    parts
        .headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// A stream whose request body is coming. Up to [`STREAM_THRESHOLD`] bytes it is gathered
/// here and the request goes whole (`HttpRequest`); past that, the head goes (`HttpHead`)
/// and the body follows as it comes (`HttpBody`…, `HttpEnd`), each chunk's flow-control
/// window given back only while the stream's events are consumed downstream: a slow handler
/// slows its client down, and no process holds the body whole.
struct BodyIn {
    id: u32,
    recv: h2::RecvStream,
    /// Until the head goes: the request and where its answer goes.
    pending: Option<(http::request::Parts, SendResponse<Bytes>)>,
    buf: BytesMut,
    /// Body bytes so far.
    len: usize,
    /// Flow-control capacity of bytes handed on but not given back yet (downstream is behind).
    unreleased: usize,
    /// The data is over: the trailers come next.
    data_done: bool,
}

/// What a request body did.
enum BodyStep {
    Data(Bytes),
    /// The end, with the trailer fields.
    End(Option<http::HeaderMap>),
    /// The client reset the stream, or the connection failed.
    Failed,
}

/// Polls every body for its next step, starting at `from` (fairness); the index of the body.
fn poll_bodies(
    bodies: &mut [BodyIn],
    from: usize,
    cx: &mut Context<'_>,
) -> Poll<(usize, BodyStep)> {
    let n = bodies.len();
    for k in 0..n {
        let i = (from + k) % n;
        let b = &mut bodies[i];
        if !b.data_done {
            match b.recv.poll_data(cx) {
                Poll::Ready(Some(Ok(d))) => return Poll::Ready((i, BodyStep::Data(d))),
                Poll::Ready(Some(Err(_))) => return Poll::Ready((i, BodyStep::Failed)),
                Poll::Ready(None) => b.data_done = true,
                Poll::Pending => continue,
            }
        }
        match b.recv.poll_trailers(cx) {
            Poll::Ready(Ok(t)) => return Poll::Ready((i, BodyStep::End(t))),
            Poll::Ready(Err(_)) => return Poll::Ready((i, BodyStep::Failed)),
            Poll::Pending => {}
        }
    }
    Poll::Pending
}

/// Trailer fields as `HttpEnd` carries them (`name: value\r\n` lines).
fn trailer_lines(t: Option<http::HeaderMap>) -> Bytes {
    let mut out = BytesMut::new();
    for (k, v) in t.iter().flatten() {
        out.extend_from_slice(k.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.freeze()
}

/// Answers a stream from here (the request could not be handed on).
fn refuse(mut respond: SendResponse<Bytes>, status: u16) {
    super::http::count_http(status, 2);
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

/// A connection's HTTP/2 state besides the `h2` crate's: the streams' responses and the
/// request bodies coming.
struct Driver<'a, S: EventSink + ?Sized> {
    conn: &'a Arc<Conn<S::State>>,
    sink: &'a S,
    conf: &'a H2Conf,
    resp: Responses,
    bodies: Vec<BodyIn>,
    /// Where [`poll_bodies`] starts next.
    turn: usize,
}

impl<S: EventSink + ?Sized> Driver<'_, S> {
    /// A stream's request arrived (its headers).
    fn request(&mut self, req: http::Request<h2::RecvStream>, mut respond: SendResponse<Bytes>) {
        let (parts, recv) = req.into_parts();
        let id = u32::from(respond.stream_id());
        let announced = content_length(&parts);
        if announced.is_some_and(|n| n > self.conf.max_body as u64) {
            return refuse(respond, 413);
        }
        if recv.is_end_stream() {
            return self.whole(id, parts, Bytes::new(), respond);
        }
        if parts
            .headers
            .get(http::header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
        {
            let mut r = http::Response::new(());
            *r.status_mut() = http::StatusCode::CONTINUE;
            let _ = respond.send_informational(r);
        }
        self.bodies.push(BodyIn {
            id,
            recv,
            pending: Some((parts, respond)),
            buf: BytesMut::new(),
            len: 0,
            unreleased: 0,
            data_done: false,
        });
    }

    /// A whole request goes to the worker.
    fn whole(
        &mut self,
        id: u32,
        parts: http::request::Parts,
        body: Bytes,
        respond: SendResponse<Bytes>,
    ) {
        let Some(head) = request_head(&parts, BodyLen::Known(body.len()), &self.conf.limits) else {
            return refuse(respond, 431);
        };
        self.resp.streams.insert(id, StreamResp::new(respond));
        self.sink.stream_request(self.conn, id, head, body);
    }

    /// Body `i` made a step.
    fn body_step(&mut self, i: usize, step: BodyStep) {
        match step {
            BodyStep::Data(d) => {
                let n = d.len();
                let b = &mut self.bodies[i];
                b.len += n;
                if b.len > self.conf.max_body {
                    let b = self.bodies.swap_remove(i);
                    return self.too_large(b);
                }
                if b.pending.is_some() {
                    b.buf.extend_from_slice(&d);
                    let _ = b.recv.flow_control().release_capacity(n);
                    if b.buf.len() <= super::http::STREAM_THRESHOLD {
                        return;
                    }
                    // Too large to go whole: the head and what came go now, the rest streams.
                    let (parts, respond) = b.pending.take().expect("pending");
                    let len = BodyLen::Streaming(content_length(&parts));
                    let Some(head) = request_head(&parts, len, &self.conf.limits) else {
                        self.bodies.swap_remove(i);
                        return refuse(respond, 431);
                    };
                    let first = super::http::request_payload(&head, &std::mem::take(&mut b.buf));
                    let id = b.id;
                    self.resp.streams.insert(id, StreamResp::new(respond));
                    self.sink.stream_event(self.conn, id, Kind::HttpHead, first);
                    return;
                }
                let id = b.id;
                self.sink.stream_event(self.conn, id, Kind::HttpBody, d);
                let b = &mut self.bodies[i];
                if self.sink.stream_backlogged(self.conn, id) {
                    b.unreleased += n;
                } else {
                    let _ = b.recv.flow_control().release_capacity(n);
                }
            }
            BodyStep::End(trailers) => {
                let b = self.bodies.swap_remove(i);
                match b.pending {
                    Some((parts, respond)) => self.whole(b.id, parts, b.buf.freeze(), respond),
                    None => self.sink.stream_event(
                        self.conn,
                        b.id,
                        Kind::HttpEnd,
                        trailer_lines(trailers),
                    ),
                }
            }
            BodyStep::Failed => {
                let b = self.bodies.swap_remove(i);
                if b.pending.is_none() {
                    // The worker has its head: its body fails there.
                    self.sink
                        .stream_event(self.conn, b.id, Kind::HttpAbort, Bytes::new());
                }
            }
        }
    }

    /// A body grew past `package_max_length`: 413 (or a reset, if the answer started), and
    /// the worker's streamed body fails.
    fn too_large(&mut self, b: BodyIn) {
        tracing::debug!(fd = %self.conn.id, stream = b.id, limit = self.conf.max_body, "HTTP/2 request body too large");
        match b.pending {
            Some((_, respond)) => refuse(respond, 413),
            None => {
                if let Some(s) = self.resp.streams.remove(&b.id) {
                    s.refuse(413);
                }
                self.sink
                    .stream_event(self.conn, b.id, Kind::HttpAbort, Bytes::new());
            }
        }
        // Dropping the body's RecvStream tells the client to stop sending (RST_STREAM).
    }

    /// Gives back the windows of bodies whose events downstream has caught up with.
    fn release_caught_up(&mut self) {
        for b in &mut self.bodies {
            if b.unreleased > 0 && !self.sink.stream_backlogged(self.conn, b.id) {
                let _ = b.recv.flow_control().release_capacity(b.unreleased);
                b.unreleased = 0;
            }
        }
    }

    fn held_back(&self) -> bool {
        self.bodies.iter().any(|b| b.unreleased > 0)
    }

    /// Streams handed to a worker (or about to be) whose response is not complete, the ones
    /// the client reset included: their work goes on until the worker answers.
    fn in_flight(&self) -> usize {
        self.resp.streams.len() + self.bodies.iter().filter(|b| b.pending.is_some()).count()
    }
}

/// Serves the connection as HTTP/2 until it ends; `pre`: bytes already read (the preface);
/// `stream1`: an `Upgrade: h2c` request's HEADERS frame ([`h2c_upgrade`]), answered 101 here.
pub(crate) async fn serve<S: EventSink + ?Sized>(
    conn: &Arc<Conn<S::State>>,
    sink: &S,
    conf: &H2Conf,
    pre: BytesMut,
    stream1: Option<Bytes>,
) {
    conn.enter_h2();
    let mut plain = pre.to_vec();
    if let Some(s1) = stream1 {
        if !switch(&**conn, &mut plain, &s1, conf.handshake_timeout).await {
            tracing::debug!(fd = %conn.id, "h2c upgrade: no HTTP/2 preface followed the 101");
            return conn.h2_finish(sink).await;
        }
    }
    let io = H2Io {
        conn: conn.clone(),
        plain,
        scratch: Vec::new(),
    };
    let mut b = h2::server::Builder::new();
    b.max_concurrent_streams(conf.max_concurrent_streams)
        .initial_window_size(conf.initial_window_size)
        .initial_connection_window_size(conf.initial_connection_window_size)
        .max_frame_size(conf.max_frame_size)
        .max_header_list_size(conf.max_header_list_size)
        .max_send_buffer_size(CHUNK)
        // Named here, not left to the crate's defaults (the same values): rapid reset
        // (CVE-2023-44487) — streams the client resets before they are taken — and MadeYouReset
        // (CVE-2025-8671) — streams the server resets for the client's errors — each end the
        // connection with GOAWAY ENHANCE_YOUR_CALM past these counts.
        .max_pending_accept_reset_streams(20)
        .max_local_error_reset_streams(Some(1024));
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
    let mut d = Driver {
        conn,
        sink,
        conf,
        resp: Responses::default(),
        bodies: Vec::new(),
        turn: 0,
    };
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
        if let Err(e) = d.resp.pump(&**conn) {
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
        let held_back = d.held_back();
        let from = d.turn;
        let full = d.in_flight() >= conf.max_concurrent_streams as usize;
        tokio::select! {
            biased;
            _ = conn.kicked() => {}
            _ = std::future::poll_fn(|cx| d.resp.poll_capacity(cx)) => {}
            // At the stream limit (counting streams the client reset while their work goes
            // on), new streams wait in the h2 crate instead of reaching the workers: a client
            // that resets what it opens (rapid reset, paced so that each stream is taken before
            // its reset comes) then trips the crate's `max_pending_accept_reset_streams` and
            // gets GOAWAY, and one connection never has more than the limit at the workers.
            r = std::future::poll_fn(|cx| if full {
                h2c.poll_closed(cx).map(|r| r.err().map(Err))
            } else {
                h2c.poll_accept(cx)
            }) => match r {
                Some(Ok((req, respond))) => {
                    d.request(req, respond);
                    // Every stream already received is taken before any answer is sent:
                    // their answers then leave together, one write for the turn instead of
                    // one per stream (the crate flushes what is queued on each poll).
                    let mut over = false;
                    while d.in_flight() < conf.max_concurrent_streams as usize {
                        match std::future::poll_fn(|cx| Poll::Ready(h2c.poll_accept(cx))).await {
                            Poll::Ready(Some(Ok((req, respond)))) => d.request(req, respond),
                            Poll::Ready(Some(Err(e))) => {
                                tracing::debug!(fd = %conn.id, error = %e, "HTTP/2 connection error");
                                over = true;
                                break;
                            }
                            Poll::Ready(None) => {
                                over = true;
                                break;
                            }
                            Poll::Pending => break,
                        }
                    }
                    if over {
                        break;
                    }
                }
                Some(Err(e)) => {
                    tracing::debug!(fd = %conn.id, error = %e, "HTTP/2 connection error");
                    break;
                }
                None => break,
            },
            (i, step) = std::future::poll_fn(|cx| poll_bodies(&mut d.bodies, from, cx)), if !d.bodies.is_empty() => {
                d.turn = i + 1;
                d.body_step(i, step);
            }
            _ = tokio::time::sleep(Duration::from_millis(2)), if held_back => d.release_caught_up(),
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
            _ = tokio::time::sleep_until(drain_by.unwrap_or_else(std::time::Instant::now).into()), if drain_by.is_some() => {
                tracing::debug!(fd = %conn.id, "HTTP/2 streams did not finish in time; cutting the connection");
                break;
            }
        }
    }
    drop(d);
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

/// The answer that switches an HTTP/1.1 connection to h2c (RFC 7540 §3.2).
const SWITCHING: &[u8] =
    b"HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: h2c\r\n\r\n";

/// Whether a comma-separated header value lists `token` (case-insensitively).
fn lists(v: Option<&[u8]>, token: &[u8]) -> bool {
    v.is_some_and(|v| {
        v.split(|&c| c == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
    })
}

/// `Upgrade: h2c` (RFC 7540 §3.2) on a cleartext HTTP/1.1 request: the request as the HTTP/2
/// HEADERS frame of stream 1 the client would have sent, to be handed to the `h2` crate as
/// if it came after the client's preface (its header block uses literals only, so the
/// client's HPACK state is untouched). `None`: not an h2c upgrade, or one this server
/// declines (a request with a body, or a header block over one frame); it is then served
/// as HTTP/1.1, which the RFC allows.
pub(crate) fn h2c_upgrade(head: &rswoole_codec::http1::RequestHead) -> Option<Bytes> {
    use rswoole_codec::http1::{BodyKind, Version};
    if head.version() != Version::Http11
        || !lists(head.header("upgrade"), b"h2c")
        || head.header("http2-settings").is_none()
        || !lists(head.header("connection"), b"upgrade")
        || !lists(head.header("connection"), b"http2-settings")
        || !matches!(head.body_kind(), BodyKind::None | BodyKind::Length(0))
    {
        return None;
    }
    let mut block = Vec::with_capacity(256);
    let mut field = |name: &[u8], value: &[u8]| {
        // Literal header field without indexing, new name (RFC 7541 §6.2.2).
        block.push(0);
        hpack_int(&mut block, 7, name.len());
        block.extend_from_slice(name);
        hpack_int(&mut block, 7, value.len());
        block.extend_from_slice(value);
    };
    field(b":method", head.method().as_bytes());
    field(b":scheme", b"http");
    field(b":path", head.uri().as_bytes());
    if let Some(host) = head.header("host") {
        field(b":authority", host);
    }
    for (k, v) in head.headers() {
        if hop_by_hop(k.as_bytes())
            || ["host", "http2-settings", "te", "content-length"].contains(&k)
        {
            continue;
        }
        field(k.as_bytes(), v);
    }
    if block.len() > 16_384 {
        return None;
    }
    let mut frame = BytesMut::with_capacity(9 + block.len());
    frame.extend_from_slice(&(block.len() as u32).to_be_bytes()[1..]);
    // HEADERS, END_STREAM | END_HEADERS, stream 1.
    frame.extend_from_slice(&[0x1, 0x1 | 0x4, 0, 0, 0, 1]);
    frame.extend_from_slice(&block);
    Some(frame.freeze())
}

/// An HPACK integer with an `n`-bit prefix (RFC 7541 §5.1), the prefix's other bits 0.
fn hpack_int(out: &mut Vec<u8>, n: u8, mut v: usize) {
    let max = (1usize << n) - 1;
    if v < max {
        out.push(v as u8);
        return;
    }
    out.push(max as u8);
    v -= max;
    while v >= 128 {
        out.push((v % 128 + 128) as u8);
        v /= 128;
    }
    out.push(v as u8);
}

/// h2c by upgrade: answers 101, then reads the client's preface and first frame (its
/// SETTINGS) into `pre` and puts the upgrade request's HEADERS frame (`stream1`) after them.
/// `false`: the client went away, sent no preface, or took longer than `limit`.
async fn switch<X>(conn: &Conn<X>, pre: &mut Vec<u8>, stream1: &[u8], limit: Duration) -> bool {
    let work = async {
        let mut rest = SWITCHING;
        while !rest.is_empty() {
            match std::future::poll_fn(|cx| conn.h2_poll_write(cx, rest)).await {
                Ok(n) => rest = &rest[n..],
                Err(_) => return false,
            }
        }
        let mut scratch = vec![0u8; 16 * 1024];
        let mut none = Vec::new();
        loop {
            if pre.len() >= PREFACE.len() {
                if pre[..PREFACE.len()] != *PREFACE {
                    return false;
                }
                let f = &pre[PREFACE.len()..];
                if f.len() >= 9 {
                    let len = u32::from_be_bytes([0, f[0], f[1], f[2]]) as usize;
                    if f.len() >= 9 + len {
                        let at = PREFACE.len() + 9 + len;
                        pre.splice(at..at, stream1.iter().copied());
                        return true;
                    }
                }
            }
            match std::future::poll_fn(|cx| conn.h2_poll_read(cx, &mut scratch, &mut none)).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => pre.extend_from_slice(&scratch[..n]),
            }
        }
    };
    tokio::time::timeout(limit, work).await.unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(raw: &str) -> rswoole_codec::http1::RequestHead {
        super::super::http::parse_head(&Bytes::from(raw.to_string()), &Default::default())
            .expect("head")
    }

    /// The upgrade request becomes a HEADERS frame on stream 1 that an HPACK decoder reads
    /// back (pseudo-headers first, connection fields dropped); other requests do not upgrade.
    #[test]
    fn h2c_upgrade_frames_the_request() {
        let h = head("GET /a?b=1 HTTP/1.1\r\nHost: x:1\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\nAccept: */*\r\n\r\n");
        let f = h2c_upgrade(&h).expect("an upgrade");
        assert_eq!(&f[3..9], &[1, 5, 0, 0, 0, 1]);
        assert_eq!(
            u32::from_be_bytes([0, f[0], f[1], f[2]]) as usize,
            f.len() - 9
        );
        let text = String::from_utf8_lossy(&f[9..]);
        for want in [
            ":method",
            "GET",
            ":path",
            "/a?b=1",
            ":authority",
            "x:1",
            "accept",
            "*/*",
        ] {
            assert!(text.contains(want), "{want} in {text:?}");
        }
        for gone in ["upgrade", "http2-settings", "connection"] {
            assert!(!text.contains(gone), "{gone} in {text:?}");
        }
        let plain = head("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(h2c_upgrade(&plain).is_none());
        let body = head("POST / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\nContent-Length: 3\r\n\r\n");
        assert!(h2c_upgrade(&body).is_none());
    }

    fn parts(method: &str, uri: &str, headers: &[(&str, &str)]) -> http::request::Parts {
        let mut b = http::Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).expect("request").into_parts().0
    }

    fn index(h: &RequestHead) -> Vec<u8> {
        let mut ix = Vec::new();
        h.write_index(&mut ix);
        ix
    }

    /// The head built from its spans is the head the parser makes of the same text: same
    /// bytes, same parse index (method, target, path, query, host, every field, framing,
    /// flags); what the parser refuses is refused.
    #[test]
    fn request_head_built_directly_equals_the_parsed_one() {
        let limits = rswoole_codec::http1::Limits::default();
        let cases = [
            (
                parts("GET", "http://x:1/a?b=1&c", &[("accept", "*/*")]),
                BodyLen::Known(0),
            ),
            (
                parts(
                    "GET",
                    "https://h/",
                    &[("cookie", "a=1"), ("x-y", "z"), ("cookie", "b=2")],
                ),
                BodyLen::Known(0),
            ),
            (parts("OPTIONS", "*", &[]), BodyLen::Known(0)),
            (
                parts(
                    "HEAD",
                    "/p",
                    &[
                        ("host", "given"),
                        ("connection", "close"),
                        ("te", "trailers"),
                    ],
                ),
                BodyLen::Known(0),
            ),
            (
                parts(
                    "POST",
                    "http://x/up",
                    &[("content-length", "3"), ("expect", "100-continue")],
                ),
                BodyLen::Known(3),
            ),
            (parts("DELETE", "http://x/d?", &[]), BodyLen::Known(0)),
            (
                parts("PUT", "http://x/big", &[("content-length", "99999")]),
                BodyLen::Streaming(Some(99999)),
            ),
            (
                parts("POST", "http://x/chunks", &[]),
                BodyLen::Streaming(None),
            ),
        ];
        for (p, body) in cases {
            let direct = request_head(&p, body, &limits).expect("built");
            let parsed = request_head_parsed(&p, body, &limits).expect("parsed");
            assert_eq!(direct.as_bytes(), parsed.as_bytes(), "{p:?}");
            assert_eq!(index(&direct), index(&parsed), "{p:?}");
            assert!(direct.keep_alive(), "{p:?}");
        }
        let two_hosts = parts("GET", "/", &[("host", "a"), ("host", "b")]);
        assert!(request_head(&two_hosts, BodyLen::Known(0), &limits).is_none());
        assert!(request_head_parsed(&two_hosts, BodyLen::Known(0), &limits).is_none());
        let small = rswoole_codec::http1::Limits {
            max_uri_len: 8,
            max_head_bytes: 64,
            max_headers: 2,
            ..Default::default()
        };
        for p in [
            parts("GET", "http://x/a-long-path", &[]),
            parts("GET", "http://x/", &[("x-a", &"v".repeat(64))]),
            parts("GET", "http://x/", &[("x-a", "1"), ("x-b", "2")]),
        ] {
            assert!(
                request_head(&p, BodyLen::Known(0), &small).is_none(),
                "{p:?}"
            );
            assert!(
                request_head_parsed(&p, BodyLen::Known(0), &small).is_none(),
                "{p:?}"
            );
        }
    }

    #[test]
    fn hpack_int_prefix_and_continuation() {
        let mut v = Vec::new();
        hpack_int(&mut v, 5, 10);
        hpack_int(&mut v, 5, 1337);
        assert_eq!(v, [10, 31, 154, 10]);
    }
}
