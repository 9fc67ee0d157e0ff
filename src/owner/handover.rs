//! Moving live connections to a new master during an upgrade: a connection's state as a
//! [`ConnSnapshot`], and the messages that carry snapshots over the upgrade socket.
//!
//! This module is I/O-free: [`encode_batch`], [`encode_end`] and [`decode`] turn snapshots into
//! bytes and back; the descriptors travel beside the bytes (SCM_RIGHTS, `sys::send_fds`), one
//! per snapshot and in the same order. The runtime (`runtime::handover`) quiesces the
//! connections, sends and receives.
//!
//! A snapshot is what the new master needs to continue a connection as if nothing happened:
//! the same [`ConnId`] (the application's stored ids stay valid), the listener, the fields of
//! `connection_info` (remote address, server port, reactor, connect and last-receive times,
//! bound uid), the bytes read but not yet decoded (a partial frame: the stream decoder's whole
//! state, since it re-parses its buffer), the bytes queued but not yet written, and the
//! protocol state ([`Proto`]). A WebSocket moves between messages and only without
//! compression context (its codec's state is then its negotiated parameters, in the record;
//! see `super::ws::movable`): the new master builds a fresh codec, and the workers see the same
//! `ConnId` with no new `on_open`.
//!
//! Wire format (little-endian), version [`VERSION`]:
//! - a message starts with `RSHO`, the version byte and a kind byte (1 = batch, 2 = end);
//! - a batch: `u16` count, then each record as `u32` length + record;
//! - a record: id `u64`, listener `u16`, server port `u16`, reactor `u32`, uid `u32`, connect
//!   and last-receive times (ms since the epoch) `u64` each, the remote address (family `u8`
//!   4/6, address, port `u16`), the protocol (tag `u8` + its fields), unread and unsent bytes
//!   (`u32` length + bytes each);
//! - the end: the old master's next id counter `u64` (the new master allocates above it).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::Bytes;
use rswoole_codec::ws::DeflateParams;

use super::conn::Conn;
use crate::base::ConnId;
use crate::ipc::shared::Shared;

/// The first bytes of every handover message (JSON messages of the upgrade start with `{`).
pub(crate) const MAGIC: &[u8; 4] = b"RSHO";
/// The wire format's version.
pub(crate) const VERSION: u8 = 1;
/// Descriptors per batch (the kernel accepts up to 253 per SCM_RIGHTS message).
pub(crate) const BATCH_FDS: usize = 200;
/// Bytes per batch message: well under a unix socket's default send buffer (208 KiB), so one
/// `sendmsg` of a `SOCK_SEQPACKET` message never fails for its size.
pub(crate) const BATCH_BYTES: usize = 96 * 1024;
/// A connection with more buffered state than this (unread + unsent) is not moved: it
/// drains in the old master (a batch must fit in [`BATCH_BYTES`]).
pub(crate) const MAX_CONN_BYTES: usize = 64 * 1024;

const KIND_BATCH: u8 = 1;
const KIND_END: u8 = 2;

/// Why handover bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SnapshotError {
    /// The message ends before a field that should be there.
    #[error("handover message truncated at byte {at}: {need} more bytes needed for {what}")]
    Truncated {
        at: usize,
        need: usize,
        what: &'static str,
    },
    /// The message does not start with [`MAGIC`].
    #[error("not a handover message (no RSHO magic)")]
    Magic,
    /// Another version of the format (the two binaries disagree).
    #[error("handover format version {0}, this binary reads version {VERSION}")]
    Version(u8),
    /// An unknown tag.
    #[error("unknown {what} tag {tag} in a handover message")]
    Tag { what: &'static str, tag: u8 },
    /// Bytes left after the last record.
    #[error("{0} unexpected bytes after a handover message")]
    Trailing(usize),
    /// A record's declared length disagrees with its contents.
    #[error("handover record {index} declares {declared} bytes but holds {used}")]
    RecordLength {
        index: usize,
        declared: usize,
        used: usize,
    },
}

/// WebSocket permessage-deflate parameters agreed at the handshake (RFC 7692). Window bits
/// are 8–15, or 0 where the parameter was absent (15 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Deflate {
    pub(crate) server_max_window_bits: u8,
    pub(crate) client_max_window_bits: u8,
    pub(crate) server_no_context_takeover: bool,
    pub(crate) client_no_context_takeover: bool,
}

impl Deflate {
    /// The record of the codec's negotiated parameters.
    pub(crate) fn from_params(p: &DeflateParams) -> Deflate {
        Deflate {
            server_max_window_bits: p.server_max_window_bits.unwrap_or(0),
            client_max_window_bits: p.client_max_window_bits.unwrap_or(0),
            server_no_context_takeover: p.server_no_context_takeover,
            client_no_context_takeover: p.client_no_context_takeover,
        }
    }

    /// The codec's parameters again.
    pub(crate) fn params(&self) -> DeflateParams {
        let bits = |b: u8| (b != 0).then_some(b);
        DeflateParams {
            server_no_context_takeover: self.server_no_context_takeover,
            client_no_context_takeover: self.client_no_context_takeover,
            server_max_window_bits: bits(self.server_max_window_bits),
            client_max_window_bits: bits(self.client_max_window_bits),
        }
    }
}

/// What a moved connection speaks, and the protocol state the new master restores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Proto {
    /// Raw reads (no framing): unread bytes are always empty.
    Raw,
    /// Swoole stream framing (length or EOF): `unread` is the partial frame.
    Stream,
    /// HTTP/1.1 keep-alive, between requests: `unread` is the start of the next request.
    HttpIdle,
    /// An established WebSocket between messages: `unread` is a partial frame (unparsed: the
    /// codec keeps nothing of a frame it has not begun), `unsent` whole frames; `deflate` the
    /// negotiated compression, which carries no context (a connection with context takeover
    /// does not move). The new master builds a fresh codec from these.
    Ws { deflate: Option<Deflate> },
}

/// One connection's state, as moved from the old master to the new one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConnSnapshot {
    pub(crate) id: ConnId,
    pub(crate) listener: u16,
    pub(crate) remote: SocketAddr,
    pub(crate) server_port: u16,
    pub(crate) reactor: u32,
    /// `Handle::bind` uid (0 = not bound).
    pub(crate) uid: u32,
    pub(crate) connect_ms: u64,
    pub(crate) last_recv_ms: u64,
    pub(crate) proto: Proto,
    /// Read from the socket, not yet decoded into an event.
    pub(crate) unread: Bytes,
    /// Written by the application, not yet taken by the socket.
    pub(crate) unsent: Bytes,
}

impl ConnSnapshot {
    /// The connection's buffered bytes (what decides whether it may move).
    pub(crate) fn buffered(&self) -> usize {
        self.unread.len() + self.unsent.len()
    }

    /// The encoded size of this record (without its length prefix).
    pub(crate) fn encoded_len(&self) -> usize {
        let addr = if self.remote.is_ipv4() { 4 } else { 16 };
        let proto = match self.proto {
            Proto::Ws { deflate: Some(_) } => 2 + 4,
            Proto::Ws { deflate: None } => 2,
            _ => 1,
        };
        8 + 2
            + 2
            + 4
            + 4
            + 8
            + 8
            + 1
            + addr
            + 2
            + proto
            + 4
            + self.unread.len()
            + 4
            + self.unsent.len()
    }

    fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.id.0.to_le_bytes());
        out.extend_from_slice(&self.listener.to_le_bytes());
        out.extend_from_slice(&self.server_port.to_le_bytes());
        out.extend_from_slice(&self.reactor.to_le_bytes());
        out.extend_from_slice(&self.uid.to_le_bytes());
        out.extend_from_slice(&self.connect_ms.to_le_bytes());
        out.extend_from_slice(&self.last_recv_ms.to_le_bytes());
        match self.remote.ip() {
            IpAddr::V4(a) => {
                out.push(4);
                out.extend_from_slice(&a.octets());
            }
            IpAddr::V6(a) => {
                out.push(6);
                out.extend_from_slice(&a.octets());
            }
        }
        out.extend_from_slice(&self.remote.port().to_le_bytes());
        match self.proto {
            Proto::Raw => out.push(0),
            Proto::Stream => out.push(1),
            Proto::HttpIdle => out.push(2),
            Proto::Ws { deflate } => {
                out.push(3);
                match deflate {
                    None => out.push(0),
                    Some(d) => {
                        out.push(1);
                        out.push(d.server_max_window_bits);
                        out.push(d.client_max_window_bits);
                        out.push(d.server_no_context_takeover as u8);
                        out.push(d.client_no_context_takeover as u8);
                    }
                }
            }
        }
        for b in [&self.unread, &self.unsent] {
            out.extend_from_slice(&(b.len() as u32).to_le_bytes());
            out.extend_from_slice(b);
        }
    }

    fn decode_from(r: &mut Reader<'_>) -> Result<ConnSnapshot, SnapshotError> {
        let id = ConnId(r.u64("id")?);
        let listener = r.u16("listener")?;
        let server_port = r.u16("server port")?;
        let reactor = r.u32("reactor")?;
        let uid = r.u32("uid")?;
        let connect_ms = r.u64("connect time")?;
        let last_recv_ms = r.u64("last receive time")?;
        let ip = match r.u8("address family")? {
            4 => {
                let b: [u8; 4] = r.take(4, "IPv4 address")?.try_into().expect("4 bytes");
                IpAddr::V4(Ipv4Addr::from(b))
            }
            6 => {
                let b: [u8; 16] = r.take(16, "IPv6 address")?.try_into().expect("16 bytes");
                IpAddr::V6(Ipv6Addr::from(b))
            }
            tag => {
                return Err(SnapshotError::Tag {
                    what: "address family",
                    tag,
                })
            }
        };
        let remote = SocketAddr::new(ip, r.u16("remote port")?);
        let proto = match r.u8("protocol")? {
            0 => Proto::Raw,
            1 => Proto::Stream,
            2 => Proto::HttpIdle,
            3 => Proto::Ws {
                deflate: match r.u8("deflate")? {
                    0 => None,
                    1 => Some(Deflate {
                        server_max_window_bits: r.window_bits()?,
                        client_max_window_bits: r.window_bits()?,
                        server_no_context_takeover: r.u8("deflate")? != 0,
                        client_no_context_takeover: r.u8("deflate")? != 0,
                    }),
                    tag => {
                        return Err(SnapshotError::Tag {
                            what: "deflate",
                            tag,
                        })
                    }
                },
            },
            tag => {
                return Err(SnapshotError::Tag {
                    what: "protocol",
                    tag,
                })
            }
        };
        let n = r.u32("unread length")? as usize;
        let unread = Bytes::copy_from_slice(r.take(n, "unread bytes")?);
        let n = r.u32("unsent length")? as usize;
        let unsent = Bytes::copy_from_slice(r.take(n, "unsent bytes")?);
        Ok(ConnSnapshot {
            id,
            listener,
            remote,
            server_port,
            reactor,
            uid,
            connect_ms,
            last_recv_ms,
            proto,
            unread,
            unsent,
        })
    }
}

/// Whether a connection can move now ([`Inbound::movable`](super::inbound::Inbound::movable)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Movable {
    /// At a safe point of its protocol, as this.
    Now(Proto),
    /// Not yet (an HTTP request being read, a WebSocket message being reassembled): keep
    /// serving it until it is.
    Later,
    /// Not at all (HTTP/2, a pending upgrade, a closing WebSocket or one with compression
    /// context): it drains in the old master.
    Never,
}

/// What a connection task hands back when it stopped for a handover
/// ([`Conn::run_from`](super::conn::Conn::run_from)).
#[derive(Debug)]
pub(crate) struct Moved {
    /// Read, not decoded (a partial frame).
    pub(crate) unread: Bytes,
    pub(crate) proto: Proto,
}

/// A decoded handover message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Message {
    /// Connections; the message carried one descriptor per snapshot, in order.
    Batch(Vec<ConnSnapshot>),
    /// Every movable connection was sent; `next_id` is the old master's id counter.
    End { next_id: u64 },
}

/// Encodes a batch of snapshots (the caller keeps it within [`BATCH_FDS`] and [`BATCH_BYTES`]
/// with [`Batcher`]).
pub(crate) fn encode_batch(snaps: &[ConnSnapshot]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + snaps.iter().map(|s| 4 + s.encoded_len()).sum::<usize>());
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.push(KIND_BATCH);
    out.extend_from_slice(&(snaps.len() as u16).to_le_bytes());
    for s in snaps {
        out.extend_from_slice(&(s.encoded_len() as u32).to_le_bytes());
        s.encode_into(&mut out);
    }
    out
}

/// Encodes the end of the handover.
pub(crate) fn encode_end(next_id: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(14);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.push(KIND_END);
    out.extend_from_slice(&next_id.to_le_bytes());
    out
}

/// Decodes one handover message.
pub(crate) fn decode(msg: &[u8]) -> Result<Message, SnapshotError> {
    let mut r = Reader { buf: msg, at: 0 };
    if r.take(4, "magic").map_err(|_| SnapshotError::Magic)? != MAGIC {
        return Err(SnapshotError::Magic);
    }
    let v = r.u8("version")?;
    if v != VERSION {
        return Err(SnapshotError::Version(v));
    }
    let m = match r.u8("kind")? {
        KIND_BATCH => {
            let n = r.u16("count")? as usize;
            let mut v = Vec::with_capacity(n);
            for index in 0..n {
                let declared = r.u32("record length")? as usize;
                let start = r.at;
                v.push(ConnSnapshot::decode_from(&mut r)?);
                let used = r.at - start;
                if used != declared {
                    return Err(SnapshotError::RecordLength {
                        index,
                        declared,
                        used,
                    });
                }
            }
            Message::Batch(v)
        }
        KIND_END => Message::End {
            next_id: r.u64("next id")?,
        },
        tag => {
            return Err(SnapshotError::Tag {
                what: "message",
                tag,
            })
        }
    };
    match msg.len() - r.at {
        0 => Ok(m),
        n => Err(SnapshotError::Trailing(n)),
    }
}

/// Groups snapshots into messages of at most [`BATCH_FDS`] connections and [`BATCH_BYTES`].
#[derive(Debug, Default)]
pub(crate) struct Batcher {
    cur: Vec<ConnSnapshot>,
    bytes: usize,
}

impl Batcher {
    /// Adds `s`; returns the batch that is full without it, to be sent first.
    pub(crate) fn push(&mut self, s: ConnSnapshot) -> Option<Vec<ConnSnapshot>> {
        let len = 4 + s.encoded_len();
        let full = !self.cur.is_empty()
            && (self.cur.len() >= BATCH_FDS || 8 + self.bytes + len > BATCH_BYTES);
        let out = full.then(|| {
            self.bytes = 0;
            std::mem::take(&mut self.cur)
        });
        self.bytes += len;
        self.cur.push(s);
        out
    }

    /// What is left.
    pub(crate) fn finish(&mut self) -> Option<Vec<ConnSnapshot>> {
        self.bytes = 0;
        (!self.cur.is_empty()).then(|| std::mem::take(&mut self.cur))
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], SnapshotError> {
        let left = self.buf.len() - self.at;
        if n > left {
            return Err(SnapshotError::Truncated {
                at: self.at,
                need: n - left,
                what,
            });
        }
        let s = &self.buf[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }
    fn u8(&mut self, what: &'static str) -> Result<u8, SnapshotError> {
        Ok(self.take(1, what)?[0])
    }
    /// A deflate window size: 0 (absent) or 8–15.
    fn window_bits(&mut self) -> Result<u8, SnapshotError> {
        match self.u8("deflate window bits")? {
            b @ (0 | 8..=15) => Ok(b),
            tag => Err(SnapshotError::Tag {
                what: "deflate window bits",
                tag,
            }),
        }
    }
    fn u16(&mut self, what: &'static str) -> Result<u16, SnapshotError> {
        Ok(u16::from_le_bytes(
            self.take(2, what)?.try_into().expect("2"),
        ))
    }
    fn u32(&mut self, what: &'static str) -> Result<u32, SnapshotError> {
        Ok(u32::from_le_bytes(
            self.take(4, what)?.try_into().expect("4"),
        ))
    }
    fn u64(&mut self, what: &'static str) -> Result<u64, SnapshotError> {
        Ok(u64::from_le_bytes(
            self.take(8, what)?.try_into().expect("8"),
        ))
    }
}

// The connection's fields are read through these few functions only, so a change of `Conn`'s
// layout (issue 20) touches them and nothing else here.
fn conn_id<X>(c: &Conn<X>) -> ConnId {
    c.id
}
fn conn_listener<X>(c: &Conn<X>) -> u16 {
    c.listener
}
fn conn_remote<X>(c: &Conn<X>) -> SocketAddr {
    c.remote
}
fn conn_take_unsent<X>(c: &Conn<X>) -> Bytes {
    c.take_unsent()
}

/// The snapshot of a quiesced connection (its task has stopped at a safe point and handed
/// back `unread`): takes its unsent output out of it. `None` if its shared-memory slot is
/// gone (it is closing).
pub(crate) fn capture<X>(
    conn: &Conn<X>,
    shared: &Shared,
    proto: Proto,
    unread: Bytes,
) -> Option<ConnSnapshot> {
    let id = conn_id(conn);
    let info = shared.info(id)?;
    let ms = |t: std::time::SystemTime| {
        t.duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    };
    Some(ConnSnapshot {
        id,
        listener: conn_listener(conn),
        remote: conn_remote(conn),
        server_port: info.server_port,
        reactor: info.reactor_id,
        uid: info.uid,
        connect_ms: ms(info.connect_time),
        last_recv_ms: ms(info.last_receive_time),
        proto,
        unread,
        unsent: conn_take_unsent(conn),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(id: u64, remote: &str, proto: Proto, unread: &[u8], unsent: &[u8]) -> ConnSnapshot {
        ConnSnapshot {
            id: ConnId(id),
            listener: 1,
            remote: remote.parse().unwrap(),
            server_port: 9501,
            reactor: 3,
            uid: 77,
            connect_ms: 1_700_000_000_123,
            last_recv_ms: 1_700_000_000_456,
            proto,
            unread: Bytes::copy_from_slice(unread),
            unsent: Bytes::copy_from_slice(unsent),
        }
    }

    fn all_kinds() -> Vec<ConnSnapshot> {
        vec![
            snap(1, "127.0.0.1:4000", Proto::Raw, b"", b""),
            snap(
                2,
                "10.1.2.3:65535",
                Proto::Stream,
                b"\x00\x00\x00\x09hal",
                b"reply",
            ),
            snap(3, "[::1]:80", Proto::HttpIdle, b"GET / HT", b""),
            snap(
                u64::MAX - 1,
                "[2001:db8::7]:1234",
                Proto::Ws {
                    deflate: Some(Deflate {
                        server_max_window_bits: 15,
                        client_max_window_bits: 12,
                        server_no_context_takeover: true,
                        client_no_context_takeover: false,
                    }),
                },
                &[0x81, 0x85],
                &[0x81, 0x02, b'h', b'i'],
            ),
            snap(5, "1.1.1.1:1", Proto::Ws { deflate: None }, b"", b""),
        ]
    }

    #[test]
    fn handover_batch_round_trips_every_kind() {
        let v = all_kinds();
        let bytes = encode_batch(&v);
        assert!(bytes.starts_with(MAGIC));
        assert_eq!(decode(&bytes), Ok(Message::Batch(v.clone())));
        let expected: usize = 8 + v.iter().map(|s| 4 + s.encoded_len()).sum::<usize>();
        assert_eq!(bytes.len(), expected);
    }

    #[test]
    fn handover_end_and_empty_batch_round_trip() {
        assert_eq!(
            decode(&encode_end(123_456)),
            Ok(Message::End { next_id: 123_456 })
        );
        assert_eq!(decode(&encode_batch(&[])), Ok(Message::Batch(vec![])));
    }

    #[test]
    fn handover_every_truncation_is_an_error_not_a_panic() {
        let bytes = encode_batch(&all_kinds());
        for n in 0..bytes.len() {
            let e = decode(&bytes[..n]).unwrap_err();
            assert!(
                matches!(e, SnapshotError::Truncated { .. } | SnapshotError::Magic),
                "{n}: {e:?}"
            );
        }
    }

    #[test]
    fn handover_rejects_bad_magic_version_tags_and_trailing_bytes() {
        assert_eq!(decode(b"{\"ready\":{}}"), Err(SnapshotError::Magic));
        let mut b = encode_end(1);
        b[4] = 9;
        assert_eq!(decode(&b), Err(SnapshotError::Version(9)));
        let mut b = encode_end(1);
        b[5] = 7;
        assert_eq!(
            decode(&b),
            Err(SnapshotError::Tag {
                what: "message",
                tag: 7
            })
        );
        let mut b = encode_end(1);
        b.push(0);
        assert_eq!(decode(&b), Err(SnapshotError::Trailing(1)));
        // An unknown protocol tag: the byte after the port of the first (IPv4) record.
        let mut b = encode_batch(&[snap(1, "127.0.0.1:1", Proto::Raw, b"", b"")]);
        let at = 8 + 4 + 8 + 2 + 2 + 4 + 4 + 8 + 8 + 1 + 4 + 2;
        assert_eq!(b[at], 0);
        b[at] = 42;
        assert_eq!(
            decode(&b),
            Err(SnapshotError::Tag {
                what: "protocol",
                tag: 42
            })
        );
    }

    #[test]
    fn handover_record_length_mismatch_is_detected() {
        let mut b = encode_batch(&[snap(1, "127.0.0.1:1", Proto::Stream, b"ab", b"")]);
        // The record's length prefix, right after the 8-byte header.
        let len = u32::from_le_bytes(b[8..12].try_into().unwrap());
        b[8..12].copy_from_slice(&(len + 1).to_le_bytes());
        b.push(0);
        assert!(matches!(
            decode(&b),
            Err(SnapshotError::RecordLength { index: 0, .. })
        ));
    }

    #[test]
    fn handover_batcher_respects_descriptor_and_byte_limits() {
        let mut b = Batcher::default();
        let mut batches = Vec::new();
        for i in 0..450 {
            if let Some(x) = b.push(snap(i + 1, "127.0.0.1:1", Proto::Stream, b"", b"")) {
                batches.push(x);
            }
        }
        batches.extend(b.finish());
        assert_eq!(
            batches.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![200, 200, 50]
        );
        let big = vec![7u8; 40 * 1024];
        let mut b = Batcher::default();
        let mut batches = Vec::new();
        for i in 0..5 {
            if let Some(x) = b.push(snap(i + 1, "127.0.0.1:1", Proto::Stream, &big, b"")) {
                batches.push(x);
            }
        }
        batches.extend(b.finish());
        for x in &batches {
            assert!(encode_batch(x).len() <= BATCH_BYTES, "{}", x.len());
        }
        assert_eq!(batches.iter().map(Vec::len).sum::<usize>(), 5);
        let ids: Vec<u64> = batches.iter().flatten().map(|s| s.id.0).collect();
        assert_eq!(ids, vec![1, 2, 3, 4, 5], "order kept");
    }

    #[test]
    fn handover_ws_deflate_parameters_round_trip_through_the_record() {
        let cases = [
            DeflateParams::default(),
            DeflateParams {
                server_no_context_takeover: true,
                client_no_context_takeover: true,
                server_max_window_bits: Some(9),
                client_max_window_bits: None,
            },
            DeflateParams {
                server_no_context_takeover: true,
                client_no_context_takeover: true,
                server_max_window_bits: None,
                client_max_window_bits: Some(15),
            },
        ];
        for p in cases {
            let d = Deflate::from_params(&p);
            assert_eq!(d.params(), p);
            // A WebSocket with a partial frame unread and two whole frames unsent.
            let s = snap(
                9,
                "127.0.0.1:9",
                Proto::Ws { deflate: Some(d) },
                &[0xc1, 0x8a, 1, 2],
                b"\x81\x01a\x81\x01b",
            );
            let back = decode(&encode_batch(std::slice::from_ref(&s))).unwrap();
            assert_eq!(back, Message::Batch(vec![s]));
            let Message::Batch(v) = back else {
                unreachable!()
            };
            let Proto::Ws { deflate: Some(d2) } = v[0].proto else {
                panic!("{:?}", v[0].proto)
            };
            assert_eq!(d2.params(), p);
        }
    }

    #[test]
    fn handover_rejects_impossible_deflate_window_bits() {
        let d = Deflate::from_params(&DeflateParams {
            server_max_window_bits: Some(10),
            ..DeflateParams::default()
        });
        let s = snap(1, "127.0.0.1:1", Proto::Ws { deflate: Some(d) }, b"", b"");
        let mut b = encode_batch(&[s]);
        // The server window byte: after the header, the record length, the fixed fields, the
        // IPv4 address and port, the protocol tag and the deflate tag.
        let at = 8 + 4 + 8 + 2 + 2 + 4 + 4 + 8 + 8 + 1 + 4 + 2 + 1 + 1;
        assert_eq!(b[at], 10);
        for bad in [1u8, 7, 16, 255] {
            b[at] = bad;
            assert_eq!(
                decode(&b),
                Err(SnapshotError::Tag {
                    what: "deflate window bits",
                    tag: bad
                })
            );
        }
    }
}
