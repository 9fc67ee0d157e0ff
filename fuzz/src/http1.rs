//! The HTTP/1 targets: the request decoder (`http1_request`), the response head encoder
//! (`http1_response_head`), the multipart parser (`http1_multipart`) and the request-object
//! helpers (`http1_urlencoded`, `http1_cookie`, `http1_range`, `http1_header_lists`).

use bytes::{Bytes, BytesMut};
use rswoole_codec::http1::{
    accepts_encoding, accepts_gzip, boundary_from_content_type, if_match, if_none_match,
    parse_cookies, parse_query, parse_range, parse_urlencoded, percent_decode, percent_decode_str,
    BodyKind, BodyLength, EncodeError, Event, Framing, Limits, MultipartError, MultipartEvent,
    MultipartParser, ParseError, RangeOutcome, RequestDecoder, ResponseDecoder, ResponseEvent,
    ResponseHead, SameSite, SetCookie, Version, DEFAULT_MAX_PARTS, DEFAULT_MAX_PART_HEADER_BYTES,
};

use crate::{reference, Input};

/// One request as the decoder gave it: its head (`Debug`), its whole body, its trailers.
type Request = (String, Vec<u8>, Vec<(Vec<u8>, Vec<u8>)>);

/// What one run produced, summarized for comparison.
#[derive(Debug, PartialEq, Eq, Default)]
struct Outcome {
    /// One entry per request.
    requests: Vec<Request>,
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

/// The HTTP/1 request decoder and the multipart parser, fed in arbitrary reads.
///
/// Input layout: flags byte (bit 0: small limits, so every limit is reachable; bit 1: run the
/// body of each request through a `MultipartParser` with boundary `b`), chunk sizes (see
/// `Input::chunks`), then the byte stream of a connection.
///
/// Invariants: the same events and error whatever the reads (split-anywhere equivalence);
/// body chunks are never empty; a `Content-Length` body yields exactly that many bytes; a
/// chunked body never passes `max_body`; after `End` the decoder waits for a head; an error is
/// sticky; the multipart parser gives the same events whatever the reads.
pub fn http1_request(data: &[u8]) {
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
}

/// Tokens the multipart target splices into the body (bytes `0xf0..`), so boundaries, part
/// headers and line ends are frequent even in short inputs; `{b}` is the boundary.
const MULTIPART_TOKENS: &[&str] = &[
    "\r\n--{b}",
    "--{b}",
    "\r\n--{b}--",
    "\r\n",
    "\r\n\r\n",
    "Content-Disposition: form-data; name=\"f\"",
    "Content-Disposition: form-data; name=\"u\"; filename=\"a.txt\"",
    "Content-Disposition: form-data; name=x; filename*=UTF-8''%C3%A9.txt",
    "Content-Type: text/plain",
    " \t",
    "--",
    "\r",
    "-",
    "\"",
    ";",
    "\\",
];

/// The streaming `multipart/form-data` parser alone, on an arbitrary body and boundary,
/// fed in arbitrary reads; and `boundary_from_content_type` on arbitrary bytes.
///
/// Input layout: flags byte (bit 0: small limits, 24 header bytes and 3 parts; bit 1:
/// expand bytes `0xf0..` into the tokens of `MULTIPART_TOKENS`; bits 4-6: boundary length
/// minus 1), the boundary bytes, chunk sizes (see `Input::chunks`), then the body. The body is
/// also handed to `boundary_from_content_type`, after `multipart/form-data; boundary=`
/// when bit 2 is set.
///
/// Invariants: the same events and error whatever the reads; events come in the order
/// `(PartHead PartData* PartEnd)* Done`; data is never empty and a part's data never holds
/// the delimiter `CRLF--boundary`; at most `max_parts` parts; after `Done` nothing more is
/// produced; an error is sticky; `finish` is `Ok` exactly after `Done`. A boundary taken from
/// a content type is 1 to 70 bytes without control characters.
pub fn http1_multipart(data: &[u8]) {
    let mut input = Input::new(data);
    let flags = input.byte();
    let boundary_len = usize::from((flags >> 4) & 7) + 1;
    let mut boundary = input.bytes(boundary_len).to_vec();
    boundary.resize(boundary_len, b'b');
    let chunks = input.chunks();
    let raw = input.rest();

    let ct = if flags & 4 != 0 {
        [&b"multipart/form-data; boundary="[..], raw].concat()
    } else {
        raw.to_vec()
    };
    if let Some(b) = boundary_from_content_type(&ct) {
        assert!((1..=70).contains(&b.len()), "{b:?}");
        assert!(!b.bytes().any(|c| c < 0x20 || c == 0x7f), "{b:?}");
    }

    let body = if flags & 2 != 0 {
        let boundary = String::from_utf8_lossy(&boundary);
        let mut out = Vec::new();
        for &b in raw {
            match MULTIPART_TOKENS.get(usize::from(b.wrapping_sub(0xf0))) {
                Some(t) => out.extend_from_slice(t.replace("{b}", &boundary).as_bytes()),
                None => out.push(b),
            }
        }
        out
    } else {
        raw.to_vec()
    };
    let (max_header_bytes, max_parts) = if flags & 1 != 0 {
        (24, 3)
    } else {
        (DEFAULT_MAX_PART_HEADER_BYTES, DEFAULT_MAX_PARTS)
    };
    let parser = || {
        MultipartParser::new(&boundary)
            .max_header_bytes(max_header_bytes)
            .max_parts(max_parts)
    };
    let mut delim = b"\r\n--".to_vec();
    delim.extend_from_slice(&boundary);

    let whole = multipart_drive(parser(), &body, &[], &delim, max_parts);
    let split = multipart_drive(parser(), &body, &chunks, &delim, max_parts);
    assert_eq!(whole, split);
}

/// Multipart events, consecutive data merged, and how the parse ended.
#[derive(Debug, PartialEq, Eq)]
struct MultipartOutcome {
    events: Vec<MultipartEvent>,
    error: Option<MultipartError>,
    finish: Result<(), MultipartError>,
}

fn multipart_drive(
    mut parser: MultipartParser,
    body: &[u8],
    chunks: &[usize],
    delim: &[u8],
    max_parts: usize,
) -> MultipartOutcome {
    let mut buf = BytesMut::new();
    let mut events: Vec<MultipartEvent> = Vec::new();
    let mut sizes = chunks.iter().copied().cycle();
    let mut rest = body;
    let mut in_part = false;
    let mut done = false;
    let mut parts = 0;
    let mut data_len = 0;
    let mut error = None;
    'feed: while !rest.is_empty() {
        let n = sizes.next().unwrap_or(rest.len()).clamp(1, rest.len());
        buf.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        loop {
            match parser.parse(&mut buf) {
                Ok(Some(ev)) => {
                    assert!(!done, "{ev:?} after Done");
                    match &ev {
                        MultipartEvent::PartHead(_) => {
                            assert!(!in_part, "PartHead inside a part");
                            in_part = true;
                            parts += 1;
                            assert!(parts <= max_parts);
                        }
                        MultipartEvent::PartData(d) => {
                            assert!(in_part, "data outside a part");
                            assert!(!d.is_empty());
                            data_len += d.len();
                        }
                        MultipartEvent::PartEnd => {
                            assert!(in_part, "PartEnd outside a part");
                            in_part = false;
                        }
                        MultipartEvent::Done => {
                            assert!(!in_part, "Done inside a part");
                            done = true;
                            assert!(parser.is_done());
                        }
                    }
                    match (events.last_mut(), ev) {
                        (Some(MultipartEvent::PartData(prev)), MultipartEvent::PartData(d)) => {
                            *prev = [&prev[..], &d[..]].concat().into();
                        }
                        (_, ev) => events.push(ev),
                    }
                    if let Some(MultipartEvent::PartData(d)) = events.last() {
                        assert!(
                            !d.windows(delim.len()).any(|w| w == delim),
                            "part data holds the delimiter"
                        );
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    assert_eq!(parser.parse(&mut buf), Err(e), "the error is sticky");
                    error = Some(e);
                    break 'feed;
                }
            }
        }
    }
    assert!(data_len <= body.len());
    let finish = parser.finish();
    match error {
        Some(e) => assert_eq!(finish, Err(e)),
        None => assert_eq!(finish.is_ok(), done),
    }
    MultipartOutcome {
        events,
        error,
        finish,
    }
}

/// Percent-decoding and urlencoded forms (`percent_decode`, `percent_decode_str`,
/// `parse_urlencoded`, `parse_query`) against the naive models in `reference`.
///
/// Input layout: flags byte (bit 0: map each byte onto `%+=&aF0` and two halves of `é`, so
/// escapes, pairs and UTF-8 are frequent), then the input.
///
/// Invariants: each function equals its model; decoding never grows the input; a decoded
/// form has no more pairs than `&`-separated pieces.
pub fn http1_urlencoded(data: &[u8]) {
    let mut input = Input::new(data);
    let flags = input.byte();
    let mut s = input.rest().to_vec();
    if flags & 1 != 0 {
        const ALPHABET: &[u8] = b"%+=&aF0\xc3\xa9";
        for b in &mut s {
            *b = ALPHABET[usize::from(*b) % ALPHABET.len()];
        }
    }
    let decoded = percent_decode(&s);
    assert_eq!(&decoded[..], &reference::percent_decode(&s, false)[..]);
    assert!(decoded.len() <= s.len());

    let text = String::from_utf8_lossy(&s);
    let expect = reference::percent_decode(text.as_bytes(), false);
    assert_eq!(percent_decode_str(&text), String::from_utf8_lossy(&expect));

    let pairs = parse_urlencoded(&s);
    assert_eq!(pairs, reference::parse_urlencoded(&s));
    assert!(pairs.len() <= s.split(|&b| b == b'&').count());
    assert_eq!(parse_query(&text), parse_urlencoded(text.as_bytes()));
}

/// Bytes PHP forbids in cookie names (and, but for `=`, in raw values and attributes).
const COOKIE_FORBIDDEN: &[u8] = b",; \t\r\n\x0b\x0c";

/// `Cookie` parsing against its model, and `SetCookie` encoding: never a CR or LF in the
/// header, the documented errors exactly, and a round trip through `parse_cookies`.
///
/// Input layout: flags byte (bit 0: raw; bit 1: secure; bit 2: http-only; bit 3: partitioned;
/// bits 4-5: SameSite none/Strict/Lax/None; bit 6: path, domain and expires from the input;
/// bit 7: max-age), name length byte (mod 16) and name bytes, value length byte (mod 64) and
/// value bytes, then (bit 6) three length-prefixed attributes, then a `Cookie` header.
pub fn http1_cookie(data: &[u8]) {
    let mut input = Input::new(data);
    let flags = input.byte();
    let name_len = usize::from(input.byte() % 16);
    let name = String::from_utf8_lossy(input.bytes(name_len)).into_owned();
    let value_len = usize::from(input.byte() % 64);
    let value = input.bytes(value_len).to_vec();
    let attr = |input: &mut Input<'_>| {
        let n = usize::from(input.byte() % 32);
        String::from_utf8_lossy(input.bytes(n)).into_owned()
    };
    let (path, domain, expires) = if flags & 64 != 0 {
        (
            Some(attr(&mut input)),
            Some(attr(&mut input)),
            Some(attr(&mut input)),
        )
    } else {
        (None, None, None)
    };
    let max_age = (flags & 128 != 0).then(|| i64::from(input.u16()) - 1000);
    let header = input.rest();

    let cookies = parse_cookies(header);
    assert_eq!(cookies, reference::parse_cookies(header));
    for (n, _) in &cookies {
        assert!(!n.is_empty() && !n.contains(';'), "{n:?}");
        assert_eq!(reference::trim_ows(n.as_bytes()), n.as_bytes(), "{n:?}");
    }

    let raw = flags & 1 != 0;
    let secure = flags & 2 != 0;
    let partitioned = flags & 8 != 0;
    let mut c = SetCookie::new(&name, &value[..])
        .raw(raw)
        .secure(secure)
        .http_only(flags & 4 != 0)
        .partitioned(partitioned);
    c = match (flags >> 4) & 3 {
        1 => c.same_site(SameSite::Strict),
        2 => c.same_site(SameSite::Lax),
        3 => c.same_site(SameSite::None),
        _ => c,
    };
    if let (Some(p), Some(d), Some(e)) = (&path, &domain, &expires) {
        c = c.path(p).domain(d).expires(e);
    }
    if let Some(m) = max_age {
        c = c.max_age(m);
    }
    let bad = |v: &Option<String>, forbidden: &[u8]| {
        v.as_ref()
            .is_some_and(|v| v.bytes().any(|b| forbidden.contains(&b)))
    };
    let expected = if name.is_empty()
        || name
            .bytes()
            .any(|b| b == b'=' || COOKIE_FORBIDDEN.contains(&b))
    {
        Err(EncodeError::InvalidCookieName)
    } else if raw && value.iter().any(|b| COOKIE_FORBIDDEN.contains(b)) {
        Err(EncodeError::InvalidCookieValue)
    } else if bad(&path, COOKIE_FORBIDDEN)
        || bad(&domain, COOKIE_FORBIDDEN)
        || bad(&expires, b";\r\n\x0b\x0c\0")
    {
        Err(EncodeError::InvalidCookieAttribute)
    } else if partitioned && !secure {
        Err(EncodeError::PartitionedWithoutSecure)
    } else {
        Ok(())
    };
    match c.encode() {
        Ok(v) => {
            assert_eq!(expected, Ok(()), "{v:?}");
            assert!(!v.contains(['\r', '\n']), "header injection: {v:?}");
            if !raw && !value.is_empty() {
                let back = parse_cookies(v.as_bytes());
                let want = (name.clone(), String::from_utf8_lossy(&value).into_owned());
                assert_eq!(back.first(), Some(&want), "{v:?}");
            }
        }
        Err(e) => assert_eq!(expected, Err(e)),
    }
}

/// `parse_range`: on arbitrary headers its verdicts are sound, and on a well-formed
/// `bytes=first-last` it equals the RFC 9110 model in `reference::range`.
///
/// Input layout: flags byte (bit 0: a small total (u16), else a u64; bit 1: build a
/// well-formed range from the next bytes, else take the rest as the header), the total,
/// then either the range's parts (a byte of choices, then up to two u64 positions) or the
/// header.
///
/// Invariants: a satisfiable range is non-empty and inside the representation and names its
/// total; a well-formed range gets exactly the model's answer, with any case of `bytes`,
/// optional whitespace around the range, leading zeros and a trailing empty list element.
pub fn http1_range(data: &[u8]) {
    let mut input = Input::new(data);
    let flags = input.byte();
    let total = if flags & 1 != 0 {
        u64::from(input.u16())
    } else {
        u64::from_le_bytes(std::array::from_fn(|_| input.byte()))
    };
    if flags & 2 != 0 {
        let choice = input.byte();
        let mut pos = |on: bool| {
            on.then(|| {
                let bytes: [u8; 8] = std::array::from_fn(|_| input.byte());
                // Small positions are the interesting ones; a high bit asks for any u64.
                if bytes[7] & 0x80 != 0 {
                    u64::from_le_bytes(bytes)
                } else {
                    u64::from(u16::from_le_bytes([bytes[0], bytes[1]]))
                }
            })
        };
        let first = pos(choice & 1 != 0);
        let last = pos(choice & 2 != 0);
        let zeros = "0".repeat(usize::from((choice >> 2) & 3));
        let ows = [" ", "\t", "", ""][usize::from((choice >> 4) & 3)];
        let unit = if choice & 0x40 != 0 { "BYTES" } else { "bytes" };
        let comma = if choice & 0x80 != 0 { "," } else { "" };
        let num = |p: Option<u64>| p.map_or(String::new(), |p| format!("{zeros}{p}"));
        let header = format!("{unit}={ows}{}-{}{ows}{comma}", num(first), num(last));
        let got = parse_range(header.as_bytes(), total);
        assert_eq!(
            got,
            reference::range(first, last, total),
            "{header:?}/{total}"
        );
        check_range(got, total);
    } else {
        check_range(parse_range(input.rest(), total), total);
    }
}

fn check_range(outcome: RangeOutcome, total: u64) {
    if let RangeOutcome::Satisfiable(r) = outcome {
        assert!(
            r.start <= r.end && r.end < total && r.total == total,
            "{r:?}"
        );
        assert_eq!(r.len(), r.end - r.start + 1);
        assert_eq!(
            r.content_range(),
            format!("bytes {}-{}/{}", r.start, r.end, total)
        );
    }
}

/// `Accept-Encoding` and ETag lists (`accepts_encoding`, `accepts_gzip`, `if_none_match`,
/// `if_match`) on arbitrary headers.
///
/// Input layout: coding length byte (mod 16) and coding bytes, ETag length byte (mod 32)
/// and ETag bytes, then the header.
///
/// Invariants: coding names compare case-insensitively, `x-gzip` is `gzip`; `*` alone
/// matches any ETag; a strong `If-Match` match is also an `If-None-Match` match.
pub fn http1_header_lists(data: &[u8]) {
    let mut input = Input::new(data);
    let coding_len = usize::from(input.byte() % 16);
    let coding = String::from_utf8_lossy(input.bytes(coding_len)).into_owned();
    let etag_len = usize::from(input.byte() % 32);
    let etag = input.bytes(etag_len).to_vec();
    let header = input.rest();

    let accepted = accepts_encoding(header, &coding);
    assert_eq!(
        accepted,
        accepts_encoding(header, &coding.to_ascii_uppercase())
    );
    assert_eq!(accepts_gzip(header), accepts_encoding(header, "gzip"));
    let none_match = if_none_match(header, &etag);
    let matched = if_match(header, &etag);
    if reference::trim_ows(header) == b"*" {
        assert!(none_match && matched);
    }
    if matched {
        assert!(none_match, "If-Match matched but If-None-Match did not");
    }
}

/// The response head encoder: a field is taken exactly when its name is a token and its value
/// holds no CR, LF or NUL (checked against a byte-by-byte model); the head is one status line,
/// the taken fields in order (framing fields dropped), one `Date` line, one empty line and no
/// bare CR or LF; it decodes back (`ResponseDecoder`) to the same status and fields; and a head
/// reused through `clear` (its `Date` line cached) writes the same bytes as a fresh one.
///
/// Input layout: flags byte (bit 0: keep-alive; bit 1: HEAD request; bit 2: HTTP/1.0; bits
/// 3-4: body empty/known/streaming/known 0; bit 5: a date from the input; bit 6: a second
/// date for the reused head), status `u16` (mod 1000), date length byte (mod 40) and bytes,
/// then fields until the input ends: name length byte (mod 24) and bytes, value length byte
/// (mod 48) and bytes.
pub fn http1_response_head(data: &[u8]) {
    let mut input = Input::new(data);
    let flags = input.byte();
    let status = input.u16() % 1000;
    let date_len = usize::from(input.byte() % 40);
    let date = Bytes::copy_from_slice(input.bytes(date_len));
    let mut fields = Vec::new();
    loop {
        let rest = input.rest();
        if rest.is_empty() || fields.len() >= 16 {
            break;
        }
        input = Input::new(rest);
        let n = usize::from(input.byte() % 24);
        let name = String::from_utf8_lossy(input.bytes(n)).into_owned();
        let v = usize::from(input.byte() % 48);
        fields.push((name, input.bytes(v).to_vec()));
    }
    let body = match (flags >> 3) & 3 {
        0 => BodyLength::Empty,
        1 => BodyLength::Known(u64::from(status) * 7919),
        2 => BodyLength::Streaming,
        _ => BodyLength::Known(0),
    };
    let version = if flags & 4 != 0 {
        Version::Http10
    } else {
        Version::Http11
    };
    let tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    let build = |head: &mut ResponseHead, date: &Bytes| -> (Vec<(String, Vec<u8>)>, bool) {
        let mut taken = Vec::new();
        let mut date_ok = false;
        for (name, value) in &fields {
            let name_ok = !name.is_empty() && name.bytes().all(tchar);
            let value_ok = !value.iter().any(|&b| matches!(b, 0 | b'\r' | b'\n'));
            match head.header(name, value) {
                Ok(_) => {
                    assert!(name_ok && value_ok, "{name:?}: {value:?} taken");
                    let framing = name.eq_ignore_ascii_case("content-length")
                        || name.eq_ignore_ascii_case("transfer-encoding");
                    if !framing {
                        taken.push((name.clone(), value.clone()));
                    }
                }
                Err(EncodeError::InvalidHeaderName) => assert!(!name_ok, "{name:?} refused"),
                Err(EncodeError::InvalidHeaderValue) => {
                    assert!(name_ok && !value_ok, "{value:?} refused")
                }
                Err(e) => panic!("{e:?}"),
            }
        }
        if flags & 32 != 0 {
            let ok = !date.iter().any(|&b| matches!(b, 0 | b'\r' | b'\n'));
            assert_eq!(head.date_shared(date.clone()).is_ok(), ok, "{date:?}");
            date_ok = ok;
        }
        head.keep_alive(flags & 1 != 0)
            .head_request(flags & 2 != 0)
            .version(version)
            .body(body);
        (taken, date_ok)
    };

    let mut head = ResponseHead::new(status);
    let (taken, date_ok) = build(&mut head, &date);
    let mut out = BytesMut::new();
    let framing = head.encode(&mut out);
    assert_eq!(framing, head.framing());
    let expect_lines: Vec<u8> = taken
        .iter()
        .flat_map(|(n, v)| [n.as_bytes(), b": ", v, b"\r\n"].concat())
        .collect();
    assert_eq!(head.field_lines(), &expect_lines[..]);
    check_response_head(&out, head.status(), &taken, date_ok.then_some(&date[..]));

    // The same head reused (its `Date` line cached, maybe for another date) writes what a
    // fresh head writes.
    let date2 = if flags & 64 != 0 {
        Bytes::from_static(b"Sun, 06 Nov 1994 08:49:37 GMT")
    } else {
        date.clone()
    };
    head.clear(status);
    build(&mut head, &date2);
    let mut again = BytesMut::new();
    head.encode(&mut again);
    let mut fresh = ResponseHead::new(status);
    build(&mut fresh, &date2);
    let mut expect = BytesMut::new();
    fresh.encode(&mut expect);
    assert_eq!(again, expect);
    if framing == Framing::Chunked {
        assert_eq!(version, Version::Http11);
    }
}

/// `out` is one well-formed response head with `status`, the `fields` in order and, when
/// given, one `Date` line with `date`.
fn check_response_head(out: &[u8], status: u16, fields: &[(String, Vec<u8>)], date: Option<&[u8]>) {
    assert!(
        out.starts_with(format!("HTTP/1.1 {status} ").as_bytes()),
        "{out:?}"
    );
    assert!(out.ends_with(b"\r\n\r\n"), "{out:?}");
    let end = out.windows(4).position(|w| w == b"\r\n\r\n");
    assert_eq!(
        end,
        Some(out.len() - 4),
        "one empty line, at the end: {out:?}"
    );
    for (i, &b) in out.iter().enumerate() {
        match b {
            b'\r' => assert_eq!(out.get(i + 1), Some(&b'\n'), "bare CR in {out:?}"),
            b'\n' => assert_eq!(
                out.get(i.wrapping_sub(1)),
                Some(&b'\r'),
                "bare LF in {out:?}"
            ),
            0 => panic!("NUL in {out:?}"),
            _ => {}
        }
    }
    if let Some(d) = date {
        let user_date = fields.iter().any(|(n, _)| n.eq_ignore_ascii_case("date"));
        let line = [&b"\r\nDate: "[..], d, b"\r\n"].concat();
        let found = out.windows(line.len()).filter(|w| *w == &line[..]).count();
        assert!(user_date || found == 1, "Date line in {out:?}");
    }
    // What a client reads back: the status and the fields, in order (names as written;
    // values without the surrounding whitespace a parser trims, and only those it accepts).
    let mut buf = BytesMut::from(out);
    match ResponseDecoder::new().decode(&mut buf, true) {
        Ok(Some(ResponseEvent::Head { status: s, headers })) => {
            assert_eq!(s, status);
            let got: Vec<&[u8]> = headers.iter().map(|(n, _)| &n[..]).collect();
            let mine: Vec<&[u8]> = fields.iter().map(|(n, _)| n.as_bytes()).collect();
            // The encoder's own fields (Date, framing, Connection) come after the caller's.
            assert!(got.starts_with(&mine), "{got:?} vs {mine:?}");
            for ((_, v), (_, mv)) in headers.iter().zip(fields) {
                assert_eq!(&v[..], reference::trim_ows(mv));
            }
        }
        // A field value the encoder lets through but a parser refuses (other control bytes,
        // DEL): the encoder checks CR, LF and NUL only, by design.
        Err(_) => {}
        // An interim (1xx) head, which the decoder skips while it waits for the final one.
        Ok(None) if (100..200).contains(&status) => {}
        other => panic!("{other:?} for {out:?}"),
    }
}
