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
use crate::base::arena::shared_copy;
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

/// The `HttpRequest`/`HttpHead` payload: u32 LE head length, the raw head, u32 LE index
/// length, the head's parse index ([`http1::RequestHead::write_index`]), the body bytes. The
/// worker rebuilds the head from the index ([`request_from_payload`]) instead of parsing it
/// again.
pub(crate) fn request_payload(head: &http1::RequestHead, body: &[u8]) -> Bytes {
    let mut payload = BytesMut::with_capacity(request_payload_len(head, body));
    write_request_payload(&mut payload, head, body);
    payload.freeze()
}

/// The length of [`request_payload`]`(head, body)`.
pub(crate) fn request_payload_len(head: &http1::RequestHead, body: &[u8]) -> usize {
    8 + head.as_bytes().len() + head.index_len() + body.len()
}

/// Appends [`request_payload`]`(head, body)` to `dst` (straight into a pipe's datagram).
pub(crate) fn write_request_payload(dst: &mut BytesMut, head: &http1::RequestHead, body: &[u8]) {
    let raw = head.as_bytes();
    dst.put_u32_le(raw.len() as u32);
    dst.extend_from_slice(raw);
    dst.put_u32_le(head.index_len() as u32);
    head.write_index(dst);
    dst.extend_from_slice(body);
}

/// The head (sharing `payload`'s buffer) and the body of an `HttpRequest`/`HttpHead`
/// payload ([`request_payload`]); `None` if it is malformed.
pub(crate) fn request_from_payload(payload: &Bytes) -> Option<(http1::RequestHead, Bytes)> {
    let (head, index, body) = split_payload(payload)?;
    let head = http1::RequestHead::from_index(payload.slice_ref(head), index)?;
    Some((head, payload.slice_ref(body)))
}

/// As [`request_from_payload`] for a payload read in place (a record of a pipe datagram):
/// the head and the body are copied out (the body into a buffer of its own, none when it is
/// empty), so that a request kept by the application does not hold the datagram. The head
/// is cut from the thread's arena ([`shared_copy`]): no allocation per request.
pub(crate) fn request_from_slice(payload: &[u8]) -> Option<(http1::RequestHead, Bytes)> {
    let (head, index, body) = split_payload(payload)?;
    let head = http1::RequestHead::from_index(shared_copy(head), index)?;
    let body = if body.is_empty() {
        Bytes::new()
    } else {
        Bytes::copy_from_slice(body)
    };
    Some((head, body))
}

/// The raw head, the index and the body of a [`request_payload`].
fn split_payload(payload: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    let len_at = |at: usize| -> Option<usize> {
        let b = payload.get(at..at.checked_add(4)?)?;
        Some(u32::from_le_bytes(b.try_into().ok()?) as usize)
    };
    let n = len_at(0)?;
    let head_end = 4usize.checked_add(n)?;
    let m = len_at(head_end)?;
    let index_end = (head_end + 4).checked_add(m)?;
    Some((
        payload.get(4..head_end)?,
        payload.get(head_end + 4..index_end)?,
        payload.get(index_end..)?,
    ))
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
                    if matches!(
                        head.body_kind(),
                        http1::BodyKind::None | http1::BodyKind::Length(0)
                    ) {
                        // No body: the request is whole now. Handed on without a `Pending`
                        // (moving a head through it costs `memcpy` calls), and without a
                        // `decode` round for its empty `End`.
                        self.dec.end_if_complete();
                        sink.http_request(conn, head, Bytes::new());
                        continue;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn head(raw: &str) -> http1::RequestHead {
        let mut b = BytesMut::from(raw);
        match RequestDecoder::default().decode(&mut b) {
            Ok(Some(Event::Head(h))) => h,
            _ => panic!("no head in {raw:?}"),
        }
    }

    /// The `HttpRequest` payload carries head, parse index and body; both readers (in place
    /// from a datagram, or from a payload buffer) give back the same request.
    #[test]
    fn request_payload_round_trip() {
        let h = head("POST /p?q=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nX-A: b\r\n\r\n");
        for body in [&b""[..], b"data"] {
            let p = request_payload(&h, body);
            assert_eq!(p.len(), request_payload_len(&h, body));
            for (h2, b2) in [
                request_from_payload(&p).expect("valid"),
                request_from_slice(&p).expect("valid"),
            ] {
                assert_eq!(h2.as_bytes(), h.as_bytes());
                assert_eq!(
                    (h2.method(), h2.path(), h2.query()),
                    ("POST", "/p", Some("q=1"))
                );
                assert_eq!(h2.header("x-a"), Some(&b"b"[..]));
                assert_eq!(h2.content_length(), Some(4));
                assert_eq!(&b2[..], body);
            }
        }
    }

    /// A truncated or inconsistent payload is refused (the handler answers 400), never a
    /// panic.
    #[test]
    fn malformed_request_payload_is_refused() {
        let p = request_payload(&head("GET / HTTP/1.1\r\nHost: h\r\n\r\n"), b"");
        for cut in 0..p.len() {
            let short = p.slice(..cut);
            assert!(request_from_payload(&short).is_none(), "cut at {cut}");
            assert!(request_from_slice(&short).is_none(), "cut at {cut}");
        }
        let mut bad = p.to_vec();
        bad[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(request_from_slice(&bad).is_none());
    }
}
