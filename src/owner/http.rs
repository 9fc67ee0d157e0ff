//! HTTP/1.1 where the socket lives: requests are parsed here (so the owner knows request
//! boundaries: it answers `100 Continue`, rejects malformed requests with the right status,
//! and can answer 503 for requests a dead worker left unanswered), then handed to the sink.
//!
//! Requests go to workers as one `HttpRequest` event (head + body) when the body is at most
//! [`STREAM_THRESHOLD`] bytes; larger bodies stream as `HttpHead`, `HttpBody`…, `HttpEnd`, so
//! neither process ever buffers a 50 MiB upload whole.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use rswoole_codec::http1::{self, Event, Limits, RequestDecoder};

use super::conn::Conn;
use super::inbound::Verdict;
use super::sink::EventSink;
use super::ws::{self, Upgraded, WsConf};
use crate::base::Settings;
use crate::ipc::Kind;

/// Bodies up to this size travel with their head in one event.
pub(crate) const STREAM_THRESHOLD: usize = 64 * 1024;

/// HTTP settings the socket owner needs.
#[derive(Debug, Clone)]
pub(crate) struct HttpConf {
    pub(crate) limits: Limits,
    pub(crate) header_timeout: Duration,
    /// The listener upgrades to WebSocket (`crate::websocket`).
    pub(crate) ws: Option<Arc<WsConf>>,
    /// HTTP/2 on this listener ([`super::h2`]).
    pub(crate) h2: super::h2::H2Conf,
}

pub(super) struct Pending {
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
    pub(super) conf: Arc<HttpConf>,
    pub(super) dec: RequestDecoder,
    pub(super) cur: Option<Pending>,
    pub(super) head_started: Option<Instant>,
    /// A WebSocket upgrade happened: switch to it after this feed.
    pub(super) upgraded: Option<Upgraded>,
    /// Nothing decided yet: the first bytes may be the HTTP/2 preface.
    pub(super) first: bool,
    /// A request was handed on (an `Upgrade: h2c` is honoured only on the first).
    pub(super) served: bool,
    /// An `Upgrade: h2c` was accepted: switch to HTTP/2 after this feed, with the request
    /// as stream 1 ([`super::h2::h2c_upgrade`]).
    pub(super) h2c: Option<Bytes>,
}

impl HttpIn {
    pub(super) fn feed<S: EventSink + ?Sized>(
        &mut self,
        conn: &Arc<Conn<S::State>>,
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
                    count_http(e.status(), 1);
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
                        return match ws::upgrade(conn, sink, &head, ws) {
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
                    if self.conf.h2.enabled && !self.served && !conn.is_tls() && inbuf.is_empty() {
                        if let Some(stream1) = super::h2::h2c_upgrade(&head) {
                            self.h2c = Some(stream1);
                            return Verdict::Ok;
                        }
                    }
                    self.served = true;
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

/// Counts a response the socket owner answers itself (metrics on) to a request of
/// HTTP/1.`minor` (2: an HTTP/2 stream).
pub(crate) fn count_http(status: u16, minor: u8) {
    if let Some(m) = crate::ipc::metrics::slot() {
        m.http(status, minor);
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

/// The request limits of `s` (head size, URI length, body size).
pub(crate) fn limits(s: &Settings) -> Limits {
    Limits {
        max_head_bytes: s.http.max_header_size,
        max_uri_len: s.http.max_uri_length,
        max_body: s.package_max_length as u64,
        ..Default::default()
    }
}
