//! What the socket owner does with incoming bytes, per listener protocol: raw reads, Swoole
//! stream framing, HTTP/1.1 requests ([`super::http`]) or WebSocket frames ([`super::ws`]).
//! [`ConnConfig`] (one per listener, built at start) says which; [`Inbound`] is one
//! connection's decoding state, and an HTTP connection that upgrades switches to WebSocket.

use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use rswoole_codec::http1::RequestDecoder;
use rswoole_codec::stream::{Decoder, Framing, StreamConfig};

use super::conn::Conn;
use super::http::{error_response, HttpConf, HttpIn};
use super::sink::EventSink;
use super::ws::{self, WsConf};
use crate::base::Settings;

/// Per-listener protocol configuration for connection tasks.
#[derive(Debug, Clone)]
pub(crate) struct ConnConfig {
    pub(crate) stream: StreamConfig,
    pub(crate) http: Option<Arc<HttpConf>>,
    /// TLS on this listener ([`super::tls`]).
    pub(crate) tls: Option<Arc<super::tls::TlsListener>>,
    /// How long a connection stays idle before its task ends and it waits without one
    /// ([`Conn::run_from`]); `None`: never (`Settings::park_idle_after`).
    pub(crate) park_idle_after: Option<std::time::Duration>,
}

/// What a TCP listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Protocol {
    /// Raw or framed byte stream: `on_connect`/`on_receive`/`on_close`.
    #[default]
    Stream,
    /// HTTP/1.1: `on_request`.
    Http,
    /// HTTP/1.1 that also upgrades to WebSocket: `on_open`/`on_message`.
    WebSocket,
}

impl ConnConfig {
    /// The configuration of a listener speaking `protocol`, with its own `framing` (else the
    /// server's); `handshake`: WebSocket upgrades wait for `on_handshake`.
    pub(crate) fn new(
        protocol: Protocol,
        framing: Option<&Framing>,
        s: &Settings,
        handshake: bool,
    ) -> ConnConfig {
        let stream = StreamConfig {
            framing: framing.cloned().unwrap_or_else(|| s.framing.clone()),
            package_max_length: s.package_max_length,
        };
        let http = matches!(protocol, Protocol::Http | Protocol::WebSocket).then(|| {
            Arc::new(HttpConf {
                limits: super::http::limits(s),
                header_timeout: s.http.header_timeout,
                h2: super::h2::H2Conf::from_settings(s),
                ws: (protocol == Protocol::WebSocket)
                    .then(|| Arc::new(WsConf::new(&s.websocket, handshake))),
            })
        });
        ConnConfig {
            stream,
            http,
            tls: None,
            park_idle_after: s.park_idle_after,
        }
    }
}

/// The decoding state of one connection. It lives in the connection task's future (and, in
/// its idle form [`IdleIn`], in the connection while parked).
// `Http` is inline, not boxed, though it is the large variant: the task's future is freed
// as one allocation when the connection parks, while a box of its own would be freed apart
// and leave a hole in the allocator page it shared with long-lived per-connection records
// (`Arc<Conn>`, 336 B, and `HttpIn`, 328 B, are both in mimalloc's 384 B class): 10,000
// parked keep-alive connections kept ~3.9 MB of such half-empty pages (BENCHMARKS.md, "Idle
// HTTP keep-alive in Base mode (issue 20), session 8").
#[allow(clippy::large_enum_variant)]
pub(crate) enum Inbound {
    Raw,
    Stream(Decoder),
    Http(HttpIn),
    /// Upgraded to WebSocket ([`super::ws`]).
    Ws(Box<ws::WsIn>),
    /// An upgrade request waits for `on_handshake`'s verdict; not reading meanwhile.
    WsPending(Arc<ws::WsConf>),
    /// HTTP/2 (the client's preface, or ALPN `h2`): the connection task hands the
    /// connection to [`super::h2`]; bytes read meanwhile stay in `inbuf`. With an
    /// `Upgrade: h2c` request: its HEADERS frame for stream 1 ([`super::h2::h2c_upgrade`]).
    H2(Option<Bytes>),
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
            return Inbound::Http(http_in(h, true, false));
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
    #[inline]
    pub(crate) fn deadline<X>(&self, conn: &Conn<X>) -> Option<Instant> {
        match self {
            Inbound::Http(h) => h.head_started.map(|t| t + h.conf.header_timeout),
            Inbound::Ws(w) => w.deadline(conn),
            _ => None,
        }
    }

    /// The deadline passed: the header timeout answers 408; returns whether to close.
    pub(crate) fn timed_out<X>(&mut self, conn: &Arc<Conn<X>>) -> bool {
        if let Inbound::Ws(w) = self {
            return w.timed_out(conn);
        }
        tracing::debug!(fd = %conn.id, "request header timeout; answering 408");
        super::http::count_http(408, 1);
        let _ = conn.write(&error_response(408, "Request Timeout"));
        true
    }

    /// ALPN chose HTTP/2 (on an HTTP listener).
    pub(crate) fn switch_h2(&mut self) {
        if let Inbound::Http(_) = self {
            *self = Inbound::H2(None);
        }
    }

    /// The decoding state of a connection that moved in from another master
    /// ([`super::handover`]): a WebSocket (its `Conn::ws` restored, [`ws::restore`]) reads
    /// frames; the rest start as a fresh connection of the listener.
    pub(crate) fn resumed<X>(cfg: &ConnConfig, conn: &Conn<X>) -> Inbound {
        match cfg.http.as_ref().and_then(|h| h.ws.as_ref()) {
            Some(conf) if ws::is_open(conn) => Inbound::Ws(Box::new(ws::WsIn::new(conf.clone()))),
            _ => Inbound::new(cfg),
        }
    }

    /// What a connection in this state moves to a new master as, if it can move now
    /// ([`super::handover`]; `inbuf`: the bytes read and not decoded): raw and framed
    /// streams always (a partial frame is just bytes), HTTP/1.1 between requests (nothing of
    /// the next one read yet), an open WebSocket between messages without compression
    /// context ([`ws::movable`]). HTTP/2, a pending upgrade and a WebSocket with
    /// permessage-deflate context takeover do not move: they drain in the old master.
    pub(crate) fn movable<X>(&self, conn: &Conn<X>, inbuf: &BytesMut) -> super::handover::Movable {
        use super::handover::{Movable, Proto};
        match self {
            Inbound::Ws(_) => ws::movable(conn),
            Inbound::Raw => Movable::Now(Proto::Raw),
            Inbound::Stream(_) => Movable::Now(Proto::Stream),
            Inbound::Http(h)
                if h.dec.is_awaiting_head()
                    && h.cur.is_none()
                    && h.upgraded.is_none()
                    && inbuf.is_empty() =>
            {
                Movable::Now(Proto::HttpIdle)
            }
            // In the middle of a request: once it is read and answered.
            Inbound::Http(h) if h.upgraded.is_none() => Movable::Later,
            _ => Movable::Never,
        }
    }

    /// Whether the connection may wait without a task in this state ([`Conn::run_from`]
    /// parks it): between messages, with nothing of the protocol in flight in the decoder.
    #[inline]
    pub(crate) fn parkable(&self) -> bool {
        match self {
            Inbound::Raw | Inbound::Stream(_) | Inbound::Ws(_) => true,
            Inbound::Http(h) => {
                h.cur.is_none()
                    && h.upgraded.is_none()
                    && h.h2c.is_none()
                    && h.head_started.is_none()
                    && h.dec.is_awaiting_head()
            }
            Inbound::WsPending(_) | Inbound::H2(_) => false,
        }
    }

    /// Takes this state's idle form ([`IdleIn`]), leaving `Raw` in its place, if it can park
    /// ([`parkable`](Self::parkable)); else leaves it as it is and returns `None`.
    pub(crate) fn park(&mut self) -> Option<IdleIn> {
        if !self.parkable() {
            return None;
        }
        Some(match std::mem::replace(self, Inbound::Raw) {
            Inbound::Raw => IdleIn::Raw,
            Inbound::Stream(d) => IdleIn::Stream(d),
            Inbound::Ws(w) => IdleIn::Ws(w),
            // Between requests the decoder holds nothing: only these two bits decide how the
            // next bytes are read; the decoder is rebuilt from the listener's configuration.
            Inbound::Http(h) => IdleIn::Http {
                first: h.first,
                served: h.served,
            },
            other => {
                *self = other;
                return None;
            }
        })
    }
}

/// What a parked connection keeps of its decoding state ([`Inbound::park`]): the smallest
/// form from which [`IdleIn::wake`] rebuilds it. An HTTP/1.1 connection between requests
/// keeps two flags (2 bytes inline) instead of its decoder (`HttpIn`, 328 bytes with a
/// copy of the listener's limits).
pub(crate) enum IdleIn {
    Raw,
    Stream(Decoder),
    /// HTTP/1.1 between requests, nothing of the next one read.
    Http {
        /// Nothing decided yet: the first bytes may be the HTTP/2 preface.
        first: bool,
        /// A request was handed on (an `Upgrade: h2c` is honoured only on the first).
        served: bool,
    },
    Ws(Box<ws::WsIn>),
}

impl IdleIn {
    /// The decoding state again, on wake (`cfg`: the connection's listener's).
    pub(crate) fn wake(self, cfg: &ConnConfig) -> Inbound {
        match self {
            IdleIn::Raw => Inbound::Raw,
            IdleIn::Stream(d) => Inbound::Stream(d),
            IdleIn::Ws(w) => Inbound::Ws(w),
            IdleIn::Http { first, served } => match &cfg.http {
                Some(h) => Inbound::Http(http_in(h, first, served)),
                // Not an HTTP listener (cannot happen: the state came from one).
                None => Inbound::new(cfg),
            },
        }
    }
}

/// A fresh HTTP/1.1 decoding state for a connection of the listener configured by `conf`.
fn http_in(conf: &Arc<HttpConf>, first: bool, served: bool) -> HttpIn {
    HttpIn {
        conf: conf.clone(),
        dec: RequestDecoder::new(conf.limits.clone()),
        cur: None,
        head_started: None,
        upgraded: None,
        first,
        served,
        h2c: None,
    }
}

impl Inbound {
    /// Reading is paused (a WebSocket upgrade waits for `on_handshake`).
    pub(crate) fn paused(&self) -> bool {
        matches!(self, Inbound::WsPending(_))
    }

    /// The connection task was woken: a pending upgrade may have been accepted.
    pub(crate) fn resume<S: EventSink + ?Sized>(
        &mut self,
        conn: &Arc<Conn<S::State>>,
        sink: &S,
        inbuf: &mut BytesMut,
    ) -> Verdict {
        let Inbound::WsPending(conf) = self else {
            return Verdict::Ok;
        };
        if !ws::is_open(conn) {
            return Verdict::Ok;
        }
        *self = Inbound::Ws(Box::new(ws::WsIn::new(conf.clone())));
        self.feed(conn, sink, &[], inbuf)
    }

    /// Feeds bytes just read (`data`, or none when the read went straight into `inbuf`);
    /// `inbuf` keeps what is not consumed yet.
    pub(crate) fn feed<S: EventSink + ?Sized>(
        &mut self,
        conn: &Arc<Conn<S::State>>,
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
                if h.first && h.conf.h2.enabled {
                    // The HTTP/2 client preface, before any HTTP/1.1 request (prior knowledge).
                    let n = inbuf.len().min(super::h2::PREFACE.len());
                    if inbuf[..n] == super::h2::PREFACE[..n] {
                        if n < super::h2::PREFACE.len() {
                            return Verdict::Ok;
                        }
                        *self = Inbound::H2(None);
                        return Verdict::Ok;
                    }
                    h.first = false;
                }
                let v = h.feed(conn, sink, inbuf);
                if let Some(stream1) = h.h2c.take() {
                    *self = Inbound::H2(Some(stream1));
                    return v;
                }
                if let Some(up) = h.upgraded.take() {
                    *self = match up {
                        ws::Upgraded::Open(w) => Inbound::Ws(w),
                        ws::Upgraded::Pending(c) => Inbound::WsPending(c),
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
            Inbound::WsPending(_) | Inbound::H2(_) => {
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
