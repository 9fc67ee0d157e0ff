//! What the socket owner does with incoming bytes, per listener protocol: raw reads, Swoole
//! stream framing, or HTTP/1.1 requests (parsed where the socket lives, so that the master
//! knows request boundaries: it answers `100 Continue`, rejects malformed requests with the
//! right status, and can answer 503 for requests a dead worker left unanswered).
//!
//! HTTP requests go to workers as one `HttpRequest` event (head + body) when the body is at most
//! [`STREAM_THRESHOLD`] bytes; larger bodies stream as `HttpHead`, `HttpBody`…, `HttpEnd`, so
//! neither process ever buffers a 50 MiB upload whole.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use rswoole_codec::http1::{self, Event, Limits, RequestDecoder};
use rswoole_codec::stream::{Decoder, Framing, StreamConfig};

use crate::conn::{Conn, EventSink};
use crate::ipc::Kind;

/// Bodies up to this size travel with their head in one event.
pub(crate) const STREAM_THRESHOLD: usize = 64 * 1024;

/// HTTP settings the socket owner needs.
#[derive(Debug, Clone)]
pub(crate) struct HttpConf {
    pub(crate) limits: Limits,
    pub(crate) header_timeout: Duration,
    /// The listener upgrades to WebSocket (`crate::websocket`).
    pub(crate) ws: Option<Arc<crate::websocket::owner::WsConf>>,
}

/// Per-listener protocol configuration for connection tasks.
#[derive(Debug, Clone)]
pub(crate) struct ConnConfig {
    pub(crate) stream: StreamConfig,
    pub(crate) http: Option<Arc<HttpConf>>,
}

struct Pending {
    /// Until streaming starts: the parsed head (handed over as is in Base mode).
    head: Option<http1::RequestHead>,
    /// Body so far (before streaming), or nothing once streaming.
    body: BytesMut,
    streaming: bool,
}

/// The `HttpRequest`/`HttpHead` payload: u32 LE head length, head, body bytes.
pub(crate) fn request_payload(head: &http1::RequestHead, body: &[u8]) -> Bytes {
    let raw = head.as_bytes();
    let mut payload = BytesMut::with_capacity(4 + raw.len() + body.len());
    payload.put_u32_le(raw.len() as u32);
    payload.extend_from_slice(raw);
    payload.extend_from_slice(body);
    payload.freeze()
}

pub(crate) struct HttpIn {
    conf: Arc<HttpConf>,
    dec: RequestDecoder,
    cur: Option<Pending>,
    head_started: Option<Instant>,
    /// A WebSocket upgrade happened: switch to it after this feed.
    upgraded: Option<crate::websocket::owner::Upgraded>,
}

/// The decoding state of one connection.
pub(crate) enum Inbound {
    Raw,
    Stream(Decoder),
    Http(Box<HttpIn>),
    /// Upgraded to WebSocket (`crate::websocket::owner`).
    Ws(Box<crate::websocket::owner::WsIn>),
    /// An upgrade request waits for `on_handshake`'s verdict; not reading meanwhile.
    WsPending(Arc<crate::websocket::owner::WsConf>),
}

/// What the connection must do after a feed.
pub(crate) enum Verdict {
    Ok,
    /// Stop reading and close once the output is flushed (an error response may be queued).
    Close,
}

impl Inbound {
    pub(crate) fn new(cfg: &ConnConfig) -> Inbound {
        if let Some(h) = &cfg.http {
            return Inbound::Http(Box::new(HttpIn {
                conf: h.clone(),
                dec: RequestDecoder::new(h.limits.clone()),
                cur: None,
                head_started: None,
                upgraded: None,
            }));
        }
        match cfg.stream.framing {
            Framing::Raw => Inbound::Raw,
            // Validated at start, so `new` cannot fail here.
            _ => Decoder::new(&cfg.stream)
                .map(Inbound::Stream)
                .unwrap_or(Inbound::Raw),
        }
    }

    /// When an incomplete request head times out (slowloris), if one is pending; for
    /// WebSocket, when to ping or to give up on a silent peer.
    pub(crate) fn deadline(&self, conn: &Conn) -> Option<Instant> {
        match self {
            Inbound::Http(h) => h.head_started.map(|t| t + h.conf.header_timeout),
            Inbound::Ws(w) => w.deadline(conn),
            _ => None,
        }
    }

    /// The deadline passed: the header timeout answers 408; returns whether to close.
    pub(crate) fn timed_out(&mut self, conn: &Arc<Conn>) -> bool {
        if let Inbound::Ws(w) = self {
            return w.timed_out(conn);
        }
        tracing::debug!(fd = %conn.id, "request header timeout; answering 408");
        let _ = conn.write(&error_response(408, "Request Timeout"));
        true
    }

    /// Reading is paused (a WebSocket upgrade waits for `on_handshake`).
    pub(crate) fn paused(&self) -> bool {
        matches!(self, Inbound::WsPending(_))
    }

    /// The connection task was woken: a pending upgrade may have been accepted.
    pub(crate) fn resume<S: EventSink + ?Sized>(
        &mut self,
        conn: &Arc<Conn>,
        sink: &S,
        inbuf: &mut BytesMut,
    ) -> Verdict {
        let Inbound::WsPending(conf) = self else {
            return Verdict::Ok;
        };
        if !crate::websocket::owner::is_open(conn) {
            return Verdict::Ok;
        }
        *self = Inbound::Ws(Box::new(crate::websocket::owner::WsIn::new(conf.clone())));
        self.feed(conn, sink, &[], inbuf)
    }

    /// Feeds bytes just read (`data`); `inbuf` keeps what is not consumed yet.
    pub(crate) fn feed<S: EventSink + ?Sized>(
        &mut self,
        conn: &Arc<Conn>,
        sink: &S,
        data: &[u8],
        inbuf: &mut BytesMut,
    ) -> Verdict {
        match self {
            Inbound::Raw => {
                sink.data(conn, Bytes::copy_from_slice(data));
                Verdict::Ok
            }
            Inbound::Stream(d) => {
                inbuf.extend_from_slice(data);
                loop {
                    match d.decode(inbuf) {
                        Ok(Some(msg)) => sink.data(conn, msg),
                        Ok(None) => break,
                        Err(e) => {
                            tracing::warn!(fd = %conn.id, error = %e, "bad frame from client; closing the connection");
                            inbuf.clear();
                            return Verdict::Close;
                        }
                    }
                }
                shrink(inbuf);
                Verdict::Ok
            }
            Inbound::Http(h) => {
                inbuf.extend_from_slice(data);
                let v = h.feed(conn, sink, inbuf);
                if let Some(up) = h.upgraded.take() {
                    *self = match up {
                        crate::websocket::owner::Upgraded::Open(w) => Inbound::Ws(w),
                        crate::websocket::owner::Upgraded::Pending(c) => Inbound::WsPending(c),
                    };
                    if let Inbound::Ws(w) = self {
                        if !inbuf.is_empty() {
                            return w.feed(conn, sink, inbuf);
                        }
                    }
                    return v;
                }
                shrink(inbuf);
                v
            }
            Inbound::Ws(w) => {
                inbuf.extend_from_slice(data);
                let v = w.feed(conn, sink, inbuf);
                shrink(inbuf);
                v
            }
            Inbound::WsPending(_) => {
                inbuf.extend_from_slice(data);
                Verdict::Ok
            }
        }
    }
}

fn shrink(inbuf: &mut BytesMut) {
    if inbuf.is_empty() && inbuf.capacity() > 64 * 1024 {
        *inbuf = BytesMut::new();
    }
}

impl HttpIn {
    fn feed<S: EventSink + ?Sized>(
        &mut self,
        conn: &Arc<Conn>,
        sink: &S,
        inbuf: &mut BytesMut,
    ) -> Verdict {
        loop {
            let ev = match self.dec.decode(inbuf) {
                Ok(Some(ev)) => ev,
                Ok(None) => {
                    if self.dec.is_awaiting_head() && !inbuf.is_empty() {
                        self.head_started.get_or_insert_with(Instant::now);
                    } else if self.dec.is_awaiting_head() {
                        self.head_started = None;
                    }
                    return Verdict::Ok;
                }
                Err(e) => {
                    tracing::debug!(fd = %conn.id, status = e.status(), error = %e, "bad request; answering and closing");
                    let _ = conn.write(&error_response(e.status(), e.reason()));
                    inbuf.clear();
                    return Verdict::Close;
                }
            };
            match ev {
                Event::Head(head) => {
                    self.head_started = None;
                    if let (Some(ws), true) = (&self.conf.ws, head.is_upgrade_websocket()) {
                        // Stop decoding HTTP: the rest of `inbuf` is WebSocket frames.
                        return match crate::websocket::owner::upgrade(conn, sink, &head, ws) {
                            Some(up) => {
                                self.upgraded = Some(up);
                                Verdict::Ok
                            }
                            None => {
                                inbuf.clear();
                                Verdict::Close
                            }
                        };
                    }
                    if head.expect_continue() && head.version() == http1::Version::Http11 {
                        let _ = conn.write(b"HTTP/1.1 100 Continue\r\n\r\n");
                    }
                    self.cur = Some(Pending {
                        head: Some(head),
                        body: BytesMut::new(),
                        streaming: false,
                    });
                }
                Event::Body(chunk) => {
                    let Some(p) = self.cur.as_mut() else { continue };
                    if p.streaming {
                        sink.event(conn, Kind::HttpBody, chunk);
                    } else {
                        p.body.extend_from_slice(&chunk);
                        if p.body.len() > STREAM_THRESHOLD {
                            p.streaming = true;
                            let head = p.head.take().expect("head before body");
                            let first = request_payload(&head, &std::mem::take(&mut p.body));
                            sink.event(conn, Kind::HttpHead, first);
                        }
                    }
                }
                Event::End { trailers } => {
                    let Some(p) = self.cur.take() else { continue };
                    if p.streaming {
                        let mut t = BytesMut::new();
                        for (k, v) in trailers {
                            t.extend_from_slice(&k);
                            t.extend_from_slice(b": ");
                            t.extend_from_slice(&v);
                            t.extend_from_slice(b"\r\n");
                        }
                        sink.event(conn, Kind::HttpEnd, t.freeze());
                    } else if let Some(head) = p.head {
                        sink.http_request(conn, head, p.body.freeze());
                    }
                }
            }
        }
    }
}

/// A complete error response that closes the connection.
pub(crate) fn error_response(status: u16, reason: &str) -> Vec<u8> {
    let body = format!("{status} {reason}\n");
    format!(
        "HTTP/1.1 {status} {}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        http1::reason(status),
        body.len()
    )
    .into_bytes()
}

/// A 503 for a request whose worker died; `keep_alive` keeps the connection usable.
pub(crate) fn unavailable_response(keep_alive: bool) -> Vec<u8> {
    let body = "503 Service Unavailable: the worker handling this request died\n";
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: {}\r\nretry-after: 1\r\n\r\n{body}",
        body.len(),
        if keep_alive { "keep-alive" } else { "close" }
    )
    .into_bytes()
}

/// Splits an `HttpRequest`/`HttpHead` payload into head bytes and body bytes.
pub(crate) fn split_request(payload: &Bytes) -> Option<(Bytes, Bytes)> {
    if payload.len() < 4 {
        return None;
    }
    let n = u32::from_le_bytes(payload[..4].try_into().ok()?) as usize;
    if payload.len() < 4 + n {
        return None;
    }
    Some((payload.slice(4..4 + n), payload.slice(4 + n..)))
}

/// Parses a head (as sent in an `HttpRequest` payload) back into a [`http1::RequestHead`].
pub(crate) fn parse_head(head: &Bytes, limits: &Limits) -> Option<http1::RequestHead> {
    let mut dec = RequestDecoder::new(Limits {
        max_body: u64::MAX,
        ..limits.clone()
    });
    let mut b = BytesMut::from(&head[..]);
    match dec.decode(&mut b) {
        Ok(Some(Event::Head(h))) => Some(h),
        _ => None,
    }
}
