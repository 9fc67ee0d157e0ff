//! Structured responses of HTTP/2 streams: what a worker hands the HTTP/2 driver
//! ([`super::h2`]) for a stream instead of HTTP/1.1 bytes — the status, the header field list
//! and the body as [`Bytes`] — so that the worker encodes no HTTP/1.1 head and chunks and the
//! driver parses none back.
//!
//! A response is a sequence of [`Part`]s: one [`PartKind::Head`] (status, fields, the first
//! body bytes), any number of [`PartKind::Data`], optionally one [`PartKind::Trailers`]; the
//! part with `end` set is the last. In Base mode the worker hands the parts to the connection
//! itself ([`Conn::write_h2`](super::conn::Conn::write_h2)); in Process mode each part is the
//! payload of one [`Kind::H2Response`](crate::ipc::Kind::H2Response) record, at most
//! [`MAX_CHUNK`](crate::ipc::MAX_CHUNK) bytes (a larger body goes in several `Data` parts, so
//! the master never reassembles a body), written by [`encode`] and read by [`decode`]
//! (I/O-free).
//!
//! Record payload, version [`VERSION`] (little-endian):
//!
//! | bytes | field |
//! |---|---|
//! | 1 | version ([`VERSION`]) |
//! | 1 | kind: 1 head, 2 data, 3 trailers |
//! | 1 | flags: 1 = end of the response |
//! | 2 | status (head; 0 otherwise) |
//! | 4 | length F of the field lines |
//! | F | field lines, `name: value\r\n` each (names are tokens; values hold no CR, LF, NUL) |
//! | rest | body bytes |

use bytes::{BufMut, Bytes, BytesMut};

/// The record payload's format version.
pub(crate) const VERSION: u8 = 1;

/// Bytes of a record payload before its field lines.
pub(crate) const PREFIX: usize = 9;

/// The most field-line bytes one part carries (a head or trailer section must fit in one
/// record, with room left for some body).
pub(crate) const MAX_FIELDS: usize = 64 * 1024;

const KIND_HEAD: u8 = 1;
const KIND_DATA: u8 = 2;
const KIND_TRAILERS: u8 = 3;
const FLAG_END: u8 = 1;

/// What a [`Part`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PartKind {
    /// The response head, with this status.
    Head(u16),
    /// More body.
    Data,
    /// The trailer section (ends the response).
    Trailers,
}

/// One piece of a stream's response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Part {
    pub(crate) kind: PartKind,
    /// The last part of the response.
    pub(crate) end: bool,
    /// Head or trailer fields: `name: value\r\n` lines (empty for data).
    pub(crate) fields: Bytes,
    pub(crate) body: Bytes,
}

impl Part {
    /// The bytes it holds (what counts against `buffer_output_size`).
    pub(crate) fn len(&self) -> usize {
        self.fields.len() + self.body.len()
    }

    /// A whole plain-text answer from the server itself (`<status> <reason>\n`, or `body`
    /// when given), with `extra` field lines: a request the worker could not read, a stream
    /// whose worker died.
    pub(crate) fn text(status: u16, body: Option<&'static str>, extra: &'static [u8]) -> Part {
        let body = match body {
            Some(b) => Bytes::from_static(b.as_bytes()),
            None => Bytes::from(format!(
                "{status} {}\n",
                rswoole_codec::http1::reason(status)
            )),
        };
        let mut fields = BytesMut::with_capacity(64 + extra.len());
        fields.extend_from_slice(b"content-type: text/plain\r\ncontent-length: ");
        fields.extend_from_slice(body.len().to_string().as_bytes());
        fields.extend_from_slice(b"\r\n");
        fields.extend_from_slice(extra);
        Part {
            kind: PartKind::Head(status),
            end: true,
            fields: fields.freeze(),
            body,
        }
    }

    /// The 503 of a stream whose worker died before it answered (as
    /// [`unavailable_response`](super::http::unavailable_response) for HTTP/1.1).
    pub(crate) fn unavailable() -> Part {
        Part::text(
            503,
            Some("503 Service Unavailable: the worker handling this request died\n"),
            b"retry-after: 1\r\n",
        )
    }

    /// The first `max` body bytes as a part of their own (the head, if this is one, goes with
    /// them); what is left stays here as data. `None`: the body is no longer than `max`.
    pub(crate) fn split_body(&mut self, max: usize) -> Option<Part> {
        if self.body.len() <= max {
            return None;
        }
        let first = Part {
            kind: self.kind,
            end: false,
            fields: std::mem::take(&mut self.fields),
            body: self.body.split_to(max),
        };
        self.kind = PartKind::Data;
        Some(first)
    }
}

/// The length of a record payload holding `fields` and `body` bytes.
pub(crate) fn encoded_len(fields: usize, body: usize) -> usize {
    PREFIX + fields + body
}

/// Writes the record payload of a part ([`encoded_len`] bytes); `fields` are the field lines
/// (in pieces, as they are at hand).
pub(crate) fn encode(dst: &mut BytesMut, kind: PartKind, end: bool, fields: &[u8], body: &[u8]) {
    let (k, status) = match kind {
        PartKind::Head(s) => (KIND_HEAD, s),
        PartKind::Data => (KIND_DATA, 0),
        PartKind::Trailers => (KIND_TRAILERS, 0),
    };
    dst.reserve(encoded_len(fields.len(), body.len()));
    dst.put_u8(VERSION);
    dst.put_u8(k);
    dst.put_u8(if end { FLAG_END } else { 0 });
    dst.put_u16_le(status);
    dst.put_u32_le(fields.len() as u32);
    dst.put_slice(fields);
    dst.put_slice(body);
}

/// A record payload that is not a part this binary reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PartError {
    /// Written by a binary with another format (the two processes disagree).
    #[error("HTTP/2 response record version {0}, this binary reads version {VERSION}")]
    Version(u8),
    /// Shorter than its prefix says.
    #[error("truncated HTTP/2 response record ({0} bytes)")]
    Truncated(usize),
    /// An unknown part kind.
    #[error("unknown HTTP/2 response part kind {0}")]
    Kind(u8),
}

/// Reads a record payload ([`encode`]); the part's fields and body are copied out of it.
pub(crate) fn decode(p: &[u8]) -> Result<Part, PartError> {
    if p.len() < PREFIX {
        return Err(PartError::Truncated(p.len()));
    }
    if p[0] != VERSION {
        return Err(PartError::Version(p[0]));
    }
    let status = u16::from_le_bytes([p[3], p[4]]);
    let kind = match p[1] {
        KIND_HEAD => PartKind::Head(status),
        KIND_DATA => PartKind::Data,
        KIND_TRAILERS => PartKind::Trailers,
        k => return Err(PartError::Kind(k)),
    };
    let f = u32::from_le_bytes([p[5], p[6], p[7], p[8]]) as usize;
    let Some(fields) = p.get(PREFIX..PREFIX.saturating_add(f)) else {
        return Err(PartError::Truncated(p.len()));
    };
    let body = &p[PREFIX + f..];
    let copy = |b: &[u8]| {
        if b.is_empty() {
            Bytes::new()
        } else {
            Bytes::copy_from_slice(b)
        }
    };
    Ok(Part {
        kind,
        end: p[2] & FLAG_END != 0,
        fields: copy(fields),
        body: copy(body),
    })
}

/// The fields of field lines (`name: value\r\n`), each value sharing `lines`' buffer; a line
/// without a colon is skipped.
pub(crate) fn fields(lines: &Bytes) -> impl Iterator<Item = (&[u8], Bytes)> + '_ {
    let mut rest: &[u8] = lines;
    std::iter::from_fn(move || loop {
        if rest.is_empty() {
            return None;
        }
        let (line, next) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        rest = next;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let value = line[colon + 1..].trim_ascii();
        return Some((&line[..colon], lines.slice_ref(value)));
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(kind: PartKind, end: bool, fields: &[u8], body: &[u8]) -> Part {
        let mut b = BytesMut::new();
        encode(&mut b, kind, end, fields, body);
        assert_eq!(b.len(), encoded_len(fields.len(), body.len()));
        decode(&b).expect("decodes")
    }

    #[test]
    fn parts_round_trip() {
        let p = round_trip(
            PartKind::Head(404),
            true,
            b"content-type: text/plain\r\n",
            b"gone",
        );
        assert_eq!(p.kind, PartKind::Head(404));
        assert!(p.end);
        assert_eq!(&p.fields[..], b"content-type: text/plain\r\n");
        assert_eq!(&p.body[..], b"gone");
        let p = round_trip(PartKind::Data, false, b"", b"more");
        assert_eq!(
            (p.kind, p.end, &p.body[..]),
            (PartKind::Data, false, &b"more"[..])
        );
        let p = round_trip(PartKind::Trailers, true, b"grpc-status: 0\r\n", b"");
        assert_eq!(p.kind, PartKind::Trailers);
        assert!(p.body.is_empty());
    }

    /// Every malformed payload is an error, none a panic: truncated anywhere, another
    /// version, an unknown kind, a field length past the end.
    #[test]
    fn malformed_records_are_errors() {
        let mut b = BytesMut::new();
        encode(&mut b, PartKind::Head(200), true, b"a: 1\r\n", b"xyz");
        for n in 0..PREFIX {
            assert_eq!(decode(&b[..n]), Err(PartError::Truncated(n)));
        }
        for n in PREFIX..PREFIX + 6 {
            assert_eq!(decode(&b[..n]), Err(PartError::Truncated(n)));
        }
        let mut v = b.to_vec();
        v[0] = 9;
        assert_eq!(decode(&v), Err(PartError::Version(9)));
        let mut v = b.to_vec();
        v[1] = 7;
        assert_eq!(decode(&v), Err(PartError::Kind(7)));
        let mut v = b.to_vec();
        v[5..9].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode(&v), Err(PartError::Truncated(v.len())));
    }

    #[test]
    fn field_lines_split_into_names_and_shared_values() {
        let lines =
            Bytes::from_static(b"Content-Type: text/plain\r\nx-a:  1 \r\nbroken\r\nx-b: \r\n");
        let got: Vec<(Vec<u8>, Bytes)> = fields(&lines).map(|(k, v)| (k.to_vec(), v)).collect();
        assert_eq!(
            got,
            vec![
                (b"Content-Type".to_vec(), Bytes::from_static(b"text/plain")),
                (b"x-a".to_vec(), Bytes::from_static(b"1")),
                (b"x-b".to_vec(), Bytes::new()),
            ]
        );
    }

    #[test]
    fn a_large_body_splits_off_its_first_bytes_with_the_head() {
        let mut p = Part {
            kind: PartKind::Head(200),
            end: true,
            fields: Bytes::from_static(b"a: 1\r\n"),
            body: Bytes::from(vec![7u8; 10]),
        };
        let first = p.split_body(4).expect("split");
        assert_eq!(
            (first.kind, first.end, first.body.len()),
            (PartKind::Head(200), false, 4)
        );
        assert_eq!(&first.fields[..], b"a: 1\r\n");
        assert_eq!((p.kind, p.end, p.body.len()), (PartKind::Data, true, 6));
        assert!(p.fields.is_empty());
        assert!(p.split_body(6).is_none());
    }

    #[test]
    fn text_answers_carry_their_length() {
        let p = Part::text(503, None, b"retry-after: 1\r\n");
        assert_eq!(&p.body[..], b"503 Service Unavailable\n");
        let f: Vec<_> = fields(&p.fields).map(|(k, v)| (k.to_vec(), v)).collect();
        assert!(f.contains(&(b"content-length".to_vec(), Bytes::from_static(b"24"))));
        assert!(f.contains(&(b"retry-after".to_vec(), Bytes::from_static(b"1"))));
    }
}
