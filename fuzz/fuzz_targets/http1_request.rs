//! The HTTP/1 request decoder and the multipart parser, fed in arbitrary reads.
//!
//! Input layout: flags byte (bit 0: small limits, so every limit is reachable; bit 1: run the
//! body of each request through a `MultipartParser` with boundary `b`), chunk sizes (see
//! `Input::chunks`), then the byte stream of a connection.
//!
//! Invariants: the same events and error whatever the reads (split-anywhere equivalence);
//! body chunks are never empty; a `Content-Length` body yields exactly that many bytes; a
//! chunked body never passes `max_body`; after `End` the decoder waits for a head; an error is
//! sticky; the multipart parser gives the same events whatever the reads.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use rswoole_codec::http1::{
    BodyKind, Event, Limits, MultipartEvent, MultipartParser, ParseError, RequestDecoder,
};
use rswoole_fuzz::Input;

/// What one run produced, summarized for comparison.
#[derive(Debug, PartialEq, Eq, Default)]
struct Outcome {
    /// One line per request: its head, its whole body, its trailers.
    requests: Vec<(String, Vec<u8>, Vec<(Vec<u8>, Vec<u8>)>)>,
    /// Multipart events per request: (event, data), consecutive data merged.
    parts: Vec<Vec<(String, Vec<u8>)>>,
    error: Option<ParseError>,
}

fn drive(data: &[u8], chunks: &[usize], limits: &Limits, multipart: bool) -> Outcome {
    let mut dec = RequestDecoder::new(limits.clone());
    let mut buf = BytesMut::new();
    let mut out = Outcome::default();
    let mut sizes = chunks.iter().copied().cycle();
    let mut rest = data;
    let mut kind = BodyKind::None;
    let mut mp = MultipartParser::new("b");
    let mut mbuf = BytesMut::new();
    while !rest.is_empty() {
        let n = sizes.next().unwrap_or(rest.len()).clamp(1, rest.len());
        buf.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        loop {
            match dec.decode(&mut buf) {
                Ok(Some(Event::Head(h))) => {
                    assert!(!dec.is_awaiting_head());
                    kind = h.body_kind();
                    out.requests
                        .push((format!("{h:?}"), Vec::new(), Vec::new()));
                    out.parts.push(Vec::new());
                    mp = MultipartParser::new("b");
                    mbuf.clear();
                }
                Ok(Some(Event::Body(b))) => {
                    assert!(!b.is_empty());
                    let body = &mut out.requests.last_mut().expect("body after head").1;
                    body.extend_from_slice(&b);
                    assert!(body.len() as u64 <= limits.max_body);
                    if multipart {
                        mbuf.extend_from_slice(&b);
                        let log = out.parts.last_mut().expect("parts after head");
                        while let Ok(Some(ev)) = mp.parse(&mut mbuf) {
                            match ev {
                                MultipartEvent::PartData(d) => {
                                    assert!(!d.is_empty());
                                    match log.last_mut() {
                                        Some((kind, data)) if kind == "data" => {
                                            data.extend_from_slice(&d)
                                        }
                                        _ => log.push(("data".into(), d.to_vec())),
                                    }
                                }
                                other => log.push((format!("{other:?}"), Vec::new())),
                            }
                        }
                    }
                }
                Ok(Some(Event::End { trailers })) => {
                    assert!(dec.is_awaiting_head());
                    let req = out.requests.last_mut().expect("end after head");
                    if let BodyKind::Length(n) = kind {
                        assert_eq!(req.1.len() as u64, n);
                    }
                    if kind != BodyKind::Chunked {
                        assert!(trailers.is_empty());
                    }
                    req.2 = trailers
                        .iter()
                        .map(|(n, v)| (n.to_vec(), v.to_vec()))
                        .collect();
                    if multipart {
                        let log = out.parts.last_mut().expect("parts after head");
                        log.push((format!("finish {:?}", mp.finish()), Vec::new()));
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    assert!(dec.is_failed());
                    assert_eq!(dec.decode(&mut buf).err(), Some(e));
                    out.error = Some(e);
                    return out;
                }
            }
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let flags = input.byte();
    let chunks = input.chunks();
    let stream = input.rest();
    let limits = if flags & 1 != 0 {
        Limits {
            max_head_bytes: 256,
            max_uri_len: 64,
            max_headers: 8,
            max_body: 512,
            max_chunk_extensions: 32,
            max_trailer_bytes: 64,
        }
    } else {
        Limits::default()
    };
    let multipart = flags & 2 != 0;
    let whole = drive(stream, &[], &limits, multipart);
    let split = drive(stream, &chunks, &limits, multipart);
    assert_eq!(whole, split);
    if let Some(e) = whole.error {
        assert!(matches!(e.status(), 400 | 413 | 414 | 431 | 501 | 505));
    }
});
