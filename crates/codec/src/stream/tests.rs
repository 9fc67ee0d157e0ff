//! Decoder tests: table-driven coalesced/fragmented cases for every framing, the error cases,
//! a differential test against a naive reference model, and split-anywhere properties.
#![allow(clippy::type_complexity, reason = "table rows are tuples")]

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use super::*;

/// What feeding a whole stream to a decoder produced.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    messages: Vec<Bytes>,
    error: Option<FrameError>,
    /// Bytes left in the buffer at the end (after the error, if any).
    left: usize,
}

fn decoder(framing: Framing, max: usize) -> Decoder {
    Decoder::new(&StreamConfig {
        framing,
        package_max_length: max,
    })
    .expect("valid config")
}

/// Feeds `data` in chunks whose sizes cycle through `chunks` (`&[]` = all at once), draining
/// the decoder after each chunk, and stops at the first error.
fn run(dec: &mut Decoder, data: &[u8], chunks: &[usize]) -> Outcome {
    let mut buf = BytesMut::new();
    let mut messages = Vec::new();
    let mut rest = data;
    let mut sizes = chunks.iter().copied().filter(|&n| n > 0).cycle();
    while !rest.is_empty() {
        let n = sizes.next().unwrap_or(rest.len()).min(rest.len());
        buf.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        loop {
            match dec.decode(&mut buf) {
                Ok(Some(m)) => messages.push(m),
                Ok(None) => break,
                Err(e) => {
                    return Outcome {
                        messages,
                        error: Some(e),
                        left: buf.len(),
                    }
                }
            }
        }
    }
    Outcome {
        messages,
        error: None,
        left: buf.len(),
    }
}

fn ok(messages: Vec<Bytes>) -> Outcome {
    Outcome {
        messages,
        error: None,
        left: 0,
    }
}

/// Custom length function: the first byte is the whole packet length.
fn first_byte_len(buf: &[u8]) -> LengthResult {
    match buf.first() {
        None => LengthResult::NeedMore,
        Some(0) => LengthResult::Invalid,
        Some(&n) => LengthResult::Total(n.into()),
    }
}

/// Custom length function: an LEB128 body length of at most 3 bytes, then the body.
fn varint_len(buf: &[u8]) -> LengthResult {
    let mut value = 0usize;
    for (i, &b) in buf.iter().enumerate().take(3) {
        value |= usize::from(b & 0x7F) << (7 * i);
        if b & 0x80 == 0 {
            return LengthResult::Total(i + 1 + value);
        }
    }
    if buf.len() >= 3 {
        LengthResult::Invalid
    } else {
        LengthResult::NeedMore
    }
}

fn encode_varint(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut n = body.len();
    loop {
        let b = (n & 0x7F) as u8;
        n >>= 7;
        if n == 0 {
            out.push(b);
            break;
        }
        out.push(b | 0x80);
    }
    out.extend_from_slice(body);
    out
}

/// Deterministic test bodies: lengths 0..=max_len, bytes from `alphabet`.
fn bodies(count: usize, max_len: usize, alphabet: &[u8]) -> Vec<Vec<u8>> {
    let mut seed = 0x9E37_79B9u32;
    (0..count)
        .map(|i| {
            let len = (i * 7 + 3) % (max_len + 1);
            (0..len)
                .map(|_| {
                    seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    alphabet[(seed >> 16) as usize % alphabet.len()]
                })
                .collect()
        })
        .collect()
}

/// Encodes bodies as packets for `framing`; the stream is their concatenation.
fn packets(framing: &Framing, bodies: &[Vec<u8>]) -> Vec<Bytes> {
    bodies
        .iter()
        .map(|body| {
            let mut dst = BytesMut::new();
            match framing {
                Framing::Raw => dst.extend_from_slice(body),
                Framing::Eof { eof, .. } => {
                    encode_eof(eof, body, &mut dst).expect("no EOF in body")
                }
                Framing::Length(spec) => encode_length(spec, body, &mut dst).expect("fits"),
                // Function pointers can't be compared reliably: LengthFn streams here are
                // always varint-framed; other custom framings build their own packets.
                Framing::LengthFn(_) => dst.extend_from_slice(&encode_varint(body)),
            }
            dst.freeze()
        })
        .collect()
}

const CHUNKINGS: &[&[usize]] = &[
    &[],
    &[1],
    &[2],
    &[3, 1, 4, 1, 5, 9, 2, 6],
    &[7],
    &[64],
    &[1000],
];

/// 100 messages, coalesced into one buffer and fragmented every way in `CHUNKINGS`, come out
/// as the same 100 messages.
fn check_round_trip(framing: Framing, bodies: &[Vec<u8>]) {
    let packets = packets(&framing, bodies);
    check_packets(framing, packets);
}

/// As [`check_round_trip`], with packets built by the caller.
fn check_packets(framing: Framing, packets: Vec<Bytes>) {
    let stream: Vec<u8> = packets.concat();
    for chunks in CHUNKINGS {
        let mut dec = decoder(framing.clone(), 1 << 16);
        assert_eq!(
            run(&mut dec, &stream, chunks),
            ok(packets.clone()),
            "{framing:?} chunks {chunks:?}"
        );
        assert_eq!(dec.pending_len(), None);
    }
}

#[test]
fn stream_eof_split_coalesced_and_fragmented() {
    let eofs: &[&[u8]] = &[
        b"\n",
        b"\r\n",
        b"\r\n\r\n",
        b"\0",
        b"ab",
        b"aab",
        b"12345678",
    ];
    for eof in eofs {
        let framing = Framing::Eof {
            eof: eof.to_vec(),
            split: true,
        };
        // Bodies use the EOF's bytes, so partial EOFs are everywhere.
        let mut alphabet = eof.to_vec();
        alphabet.extend_from_slice(b"xyzxyzxyzxyz");
        let bodies: Vec<Vec<u8>> = bodies(2000, 40, &alphabet)
            .into_iter()
            .filter(|b| encode_eof(eof, b, &mut BytesMut::new()).is_ok())
            .take(100)
            .collect();
        assert_eq!(bodies.len(), 100, "{eof:?}");
        check_round_trip(framing, &bodies);
    }
}

#[test]
fn stream_eof_check_without_split() {
    let framing = Framing::Eof {
        eof: b"\r\n".to_vec(),
        split: false,
    };
    let bodies = bodies(100, 30, b"abc \r");
    let packets = packets(&framing, &bodies);
    let stream: Vec<u8> = packets.concat();

    // Coalesced: one event with all 100 messages, as Swoole's open_eof_check does.
    let mut dec = decoder(framing.clone(), 1 << 16);
    let whole = run(&mut dec, &stream, &[]);
    assert_eq!(whole, ok(vec![Bytes::from(stream.clone())]));

    // Fragmented by single bytes: the buffer ends with the EOF right after each message.
    let mut dec = decoder(framing.clone(), 1 << 16);
    assert_eq!(run(&mut dec, &stream, &[1]), ok(packets.clone()));

    // An EOF in the middle of the buffer is not looked for.
    let mut dec = decoder(framing.clone(), 1 << 16);
    assert_eq!(
        run(&mut dec, b"one\r\ntwo", &[]),
        Outcome {
            messages: vec![],
            error: None,
            left: 8
        }
    );
    let mut buf = BytesMut::from(&b"one\r\ntwo"[..]);
    assert_eq!(dec.decode(&mut buf), Ok(None));
    buf.extend_from_slice(b"\r\n");
    assert_eq!(
        dec.decode(&mut buf).unwrap().as_deref(),
        Some(&b"one\r\ntwo\r\n"[..])
    );
}

#[test]
fn stream_raw_delivers_each_read() {
    let mut dec = decoder(Framing::Raw, 4);
    let mut buf = BytesMut::new();
    assert_eq!(dec.decode(&mut buf), Ok(None));
    // Raw ignores package_max_length: the read size bounds a message.
    buf.extend_from_slice(b"hello world");
    assert_eq!(
        dec.decode(&mut buf).unwrap().as_deref(),
        Some(&b"hello world"[..])
    );
    assert_eq!(dec.decode(&mut buf), Ok(None));
    let mut dec = decoder(Framing::Raw, 4);
    let out = run(&mut dec, b"abcdefg", &[3]);
    assert_eq!(out, ok(vec!["abc".into(), "def".into(), "g".into()]));
}

/// Length specs worth testing for a type: body offset right after the field, 0 (the value
/// counts the whole packet), and a field at an offset with padding before the body.
fn specs_for(t: LengthType) -> Vec<LengthSpec> {
    let n = t.size();
    vec![
        LengthSpec::new(t, 0, n),
        LengthSpec::new(t, 0, 0),
        LengthSpec::new(t, 3, 3 + n + 2),
        LengthSpec::new(t, 2, 0),
    ]
}

#[test]
fn stream_length_every_type_coalesced_and_fragmented() {
    for t in LengthType::ALL {
        for spec in specs_for(t) {
            // I8 holds at most 127, header included when body_offset is 0.
            let max_body = (t.max_value() as usize).min(300) - spec.header_len();
            let bodies = bodies(100, max_body, b"\0\x01\xFFabc");
            check_round_trip(Framing::Length(spec), &bodies);
        }
    }
}

#[test]
fn stream_length_literal_packets() {
    // Hand-written packets, independent of encode_length.
    // (spec, stream, expected messages)
    let n = |off, body| LengthSpec::new(LengthType::U32Be, off, body);
    let cases: Vec<(LengthSpec, &[u8], Vec<&[u8]>)> = vec![
        (
            n(0, 4),
            b"\0\0\0\x02hi\0\0\0\0",
            vec![b"\0\0\0\x02hi", b"\0\0\0\0"],
        ),
        (
            n(0, 0),
            b"\0\0\0\x06hi\0\0\0\x04",
            vec![b"\0\0\0\x06hi", b"\0\0\0\x04"],
        ),
        (
            n(1, 7),
            b"T\0\0\0\x01..ZY\0\0\0\0..",
            vec![b"T\0\0\0\x01..Z", b"Y\0\0\0\0.."],
        ),
        (
            LengthSpec::new(LengthType::U16Le, 0, 2),
            b"\x03\0abc\x01\0d",
            vec![b"\x03\0abc", b"\x01\0d"],
        ),
        (
            LengthSpec::new(LengthType::U8, 1, 0),
            b"x\x03yz\x02",
            vec![b"x\x03y", b"z\x02"],
        ),
    ];
    for (spec, stream, want) in cases {
        let want: Vec<Bytes> = want.into_iter().map(Bytes::copy_from_slice).collect();
        for chunks in CHUNKINGS {
            let mut dec = decoder(Framing::Length(spec), 1024);
            assert_eq!(run(&mut dec, stream, chunks), ok(want.clone()), "{spec:?}");
        }
    }
}

#[test]
fn stream_length_errors_table() {
    use FrameError::*;
    use LengthType::*;
    // (type, length_offset, body_offset, max, stream, messages before the error, error)
    let cases: Vec<(
        LengthType,
        usize,
        usize,
        usize,
        Vec<u8>,
        usize,
        Option<FrameError>,
    )> = vec![
        // Negative lengths in every signed type.
        (I8, 0, 1, 100, vec![0xFF], 0, Some(InvalidLength)),
        (I8, 0, 1, 100, vec![0x80], 0, Some(InvalidLength)),
        (
            I16Ne,
            0,
            2,
            100,
            (-1i16).to_ne_bytes().to_vec(),
            0,
            Some(InvalidLength),
        ),
        (
            I32Ne,
            0,
            4,
            100,
            i32::MIN.to_ne_bytes().to_vec(),
            0,
            Some(InvalidLength),
        ),
        (
            I64Ne,
            0,
            8,
            100,
            (-7i64).to_ne_bytes().to_vec(),
            0,
            Some(InvalidLength),
        ),
        // The same bits in an unsigned type are a (too) large length.
        (U8, 0, 1, 100, vec![0xFF], 0, Some(TooLong)),
        (U64Ne, 0, 8, 100, vec![0xFF; 8], 0, Some(TooLong)),
        // u64 values that overflow body_offset + value.
        (U64Be, 0, 8, usize::MAX, vec![0xFF; 8], 0, Some(TooLong)),
        // Max length: the whole packet, header included, may be exactly max.
        (U32Be, 0, 4, 100, vec![0, 0, 0, 96], 0, None), // waits for the body
        (U32Be, 0, 4, 100, vec![0, 0, 0, 97], 0, Some(TooLong)), // rejected before the body
        (U32Be, 0, 0, 100, vec![0, 0, 0, 100], 0, None),
        (U32Be, 0, 0, 100, vec![0, 0, 0, 101], 0, Some(TooLong)),
        (U32Be, 2, 6, 100, vec![9, 9, 0, 0, 0, 95], 0, Some(TooLong)),
        // body_offset 0: the value must cover at least the length field.
        (U32Be, 0, 0, 100, vec![0, 0, 0, 0], 0, Some(InvalidLength)),
        (U32Be, 0, 0, 100, vec![0, 0, 0, 3], 0, Some(InvalidLength)),
        (
            U32Be,
            2,
            0,
            100,
            vec![0, 0, 0, 0, 0, 5],
            0,
            Some(InvalidLength),
        ),
        (U32Be, 2, 0, 100, vec![0, 0, 0, 0, 0, 6], 1, None),
        (U32Be, 0, 0, 100, vec![0, 0, 0, 4], 1, None),
        // body_offset > 0: a zero length is an empty body.
        (U32Be, 0, 4, 100, vec![0, 0, 0, 0, 0, 0, 0, 0], 2, None),
        // A good packet, then a bad one.
        (
            U16Be,
            0,
            2,
            100,
            vec![0, 1, b'x', 0xFF, 0xFF],
            1,
            Some(TooLong),
        ),
        (I8, 0, 0, 100, vec![2, b'x', 0x81], 1, Some(InvalidLength)),
    ];
    for (t, off, body, max, stream, count, error) in cases {
        let spec = LengthSpec::new(t, off, body);
        for chunks in CHUNKINGS {
            let mut dec = decoder(Framing::Length(spec), max);
            let out = run(&mut dec, &stream, chunks);
            assert_eq!(out.messages.len(), count, "{spec:?} {stream:?} {chunks:?}");
            assert_eq!(out.error, error, "{spec:?} {stream:?} {chunks:?}");
        }
    }
}

#[test]
fn stream_length_is_read_once_per_packet() {
    let spec = LengthSpec::new(LengthType::U16Be, 0, 2);
    let mut dec = decoder(Framing::Length(spec), 1024);
    let mut buf = BytesMut::from(&b"\x00"[..]);
    assert_eq!(dec.decode(&mut buf), Ok(None));
    assert_eq!(dec.pending_len(), None);
    buf.extend_from_slice(b"\x03a");
    assert_eq!(dec.decode(&mut buf), Ok(None));
    assert_eq!(dec.pending_len(), Some(5));
    // The header is not re-read: corrupting it now changes nothing (the caller must not do
    // this; it shows the state is kept).
    buf[1] = 0xFF;
    buf.extend_from_slice(b"bc");
    assert_eq!(
        dec.decode(&mut buf).unwrap().as_deref(),
        Some(&b"\x00\xFFabc"[..])
    );
    assert_eq!(dec.pending_len(), None);

    // reset forgets the pending length.
    let mut buf = BytesMut::from(&b"\x00\x09"[..]);
    assert_eq!(dec.decode(&mut buf), Ok(None));
    assert_eq!(dec.pending_len(), Some(11));
    dec.reset();
    assert_eq!(dec.pending_len(), None);
    let mut buf = BytesMut::from(&b"\x00\x00"[..]);
    assert_eq!(
        dec.decode(&mut buf).unwrap().as_deref(),
        Some(&b"\x00\x00"[..])
    );
}

#[test]
fn stream_length_fn_coalesced_and_fragmented() {
    let bodies_small = bodies(100, 60, b"ab\x80\xFF");
    let first_byte_packets = bodies_small
        .iter()
        .map(|b| {
            let mut p = vec![b.len() as u8 + 1];
            p.extend_from_slice(b);
            Bytes::from(p)
        })
        .collect();
    check_packets(Framing::LengthFn(first_byte_len), first_byte_packets);
    // Varint lengths up to 3 bytes, so NeedMore happens mid-header when fragmented.
    let mut bodies_big = bodies(100, 40, b"xy");
    bodies_big[10] = vec![b'z'; 200];
    bodies_big[50] = vec![b'z'; 20_000];
    check_round_trip(Framing::LengthFn(varint_len), &bodies_big);
}

#[test]
fn stream_length_fn_errors() {
    use FrameError::*;
    fn zero(_: &[u8]) -> LengthResult {
        LengthResult::Total(0)
    }
    fn always_more(_: &[u8]) -> LengthResult {
        LengthResult::NeedMore
    }
    // (fn, max, stream, messages, error)
    let cases: Vec<(LengthFn, usize, &[u8], usize, Option<FrameError>)> = vec![
        (first_byte_len, 10, b"\x02a\x00", 1, Some(InvalidLength)),
        (first_byte_len, 10, b"\x0Aabcdefghi", 1, None),
        (first_byte_len, 10, b"\x0B", 0, Some(TooLong)),
        (zero, 10, b"x", 0, Some(InvalidLength)),
        (always_more, 10, b"123456789", 0, None),
        (always_more, 10, b"1234567890", 0, Some(TooLong)),
        (varint_len, 1000, b"\x80\x80\x80", 0, Some(InvalidLength)),
        (varint_len, 1000, b"\x80\x80", 0, None),
        (varint_len, 1000, b"\xE7\x07", 0, Some(TooLong)), // 2 + 999 > 1000
        (varint_len, 1000, b"\xE6\x07", 0, None),          // 2 + 998 = 1000 is fine
    ];
    for (f, max, stream, count, error) in cases {
        for chunks in CHUNKINGS {
            let mut dec = decoder(Framing::LengthFn(f), max);
            let out = run(&mut dec, stream, chunks);
            assert_eq!(out.messages.len(), count, "{stream:?} {chunks:?}");
            assert_eq!(out.error, error, "{stream:?} {chunks:?}");
        }
    }
}

#[test]
fn stream_eof_max_length_table() {
    use FrameError::TooLong;
    // (split, max, stream, messages, error)
    let cases: Vec<(bool, usize, &[u8], usize, Option<FrameError>)> = vec![
        (true, 10, b"12345678\r\n", 1, None), // exactly max, EOF included
        (true, 10, b"123456789\r\n", 0, Some(TooLong)),
        (true, 10, b"123456789", 0, None), // 9 bytes: could still end at 10
        (true, 10, b"123456789\r", 0, Some(TooLong)), // EOF would end at 11
        (true, 10, b"1234567890", 0, Some(TooLong)),
        (
            true,
            10,
            b"a\r\n12345678\r\n123456789\r\n",
            2,
            Some(TooLong),
        ),
        (true, 2, b"\r\n\r\n\r\n", 3, None),
        (false, 10, b"12345678\r\n", 1, None),
        (false, 10, b"1234567890", 0, Some(TooLong)),
        (false, 10, b"123456789", 0, None),
    ];
    for (split, max, stream, count, error) in cases {
        for chunks in CHUNKINGS {
            let framing = Framing::Eof {
                eof: b"\r\n".to_vec(),
                split,
            };
            let mut dec = decoder(framing, max);
            let out = run(&mut dec, stream, chunks);
            assert_eq!(out.messages.len(), count, "{split} {stream:?} {chunks:?}");
            assert_eq!(out.error, error, "{split} {stream:?} {chunks:?}");
            for m in &out.messages {
                assert!(m.len() <= max && m.ends_with(b"\r\n"));
            }
        }
    }
    // Non-split, all at once: more than max bytes is too long even if it ends with the EOF.
    let framing = Framing::Eof {
        eof: b"\r\n".to_vec(),
        split: false,
    };
    let mut dec = decoder(framing, 10);
    assert_eq!(run(&mut dec, b"123456789\r\n", &[]).error, Some(TooLong));
}

#[test]
fn stream_eof_search_resumes() {
    let framing = Framing::Eof {
        eof: b"\r\n\r\n".to_vec(),
        split: true,
    };
    let mut dec = decoder(framing, 1 << 20);
    let mut buf = BytesMut::from(&vec![b'x'; 1000][..]);
    assert_eq!(dec.decode(&mut buf), Ok(None));
    // Only the last 3 bytes (a possible partial EOF) will be looked at again.
    assert_eq!(dec.searched, 997);
    buf.extend_from_slice(b"\r\n\r");
    assert_eq!(dec.decode(&mut buf), Ok(None));
    assert_eq!(dec.searched, 1000);
    buf.extend_from_slice(b"\nnext");
    let m = dec.decode(&mut buf).unwrap().unwrap();
    assert_eq!(m.len(), 1004);
    assert_eq!(dec.searched, 0);
    assert_eq!(&buf[..], b"next");
    // reset after the caller edits the buffer.
    assert_eq!(dec.decode(&mut buf), Ok(None));
    assert_eq!(dec.searched, 1);
    dec.reset();
    assert_eq!(dec.searched, 0);
}

/// Naive reference model for split EOF framing: windows() search from each message start.
fn reference_eof_split(eof: &[u8], max: usize, data: &[u8]) -> Outcome {
    let mut messages = Vec::new();
    let mut pos = 0;
    loop {
        let rest = &data[pos..];
        match rest.windows(eof.len()).position(|w| w == eof) {
            Some(i) if i + eof.len() <= max => {
                messages.push(Bytes::copy_from_slice(&rest[..i + eof.len()]));
                pos += i + eof.len();
            }
            Some(_) => {
                return Outcome {
                    messages,
                    error: Some(FrameError::TooLong),
                    left: rest.len(),
                }
            }
            None if rest.len() >= max => {
                return Outcome {
                    messages,
                    error: Some(FrameError::TooLong),
                    left: rest.len(),
                }
            }
            None => {
                return Outcome {
                    messages,
                    error: None,
                    left: rest.len(),
                }
            }
        }
    }
}

fn arb_length_spec() -> impl Strategy<Value = LengthSpec> {
    (
        0..LengthType::ALL.len(),
        0usize..4,
        prop::bool::ANY,
        0usize..3,
    )
        .prop_map(|(t, off, whole, pad)| {
            let t = LengthType::ALL[t];
            let body = if whole { 0 } else { off + t.size() + pad };
            LengthSpec::new(t, off, body)
        })
}

fn arb_eof() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(b"ab\r\n".to_vec()), 1..=MAX_EOF_LEN)
}

/// Chunk sizes, including long runs of 1-byte reads.
fn arb_chunks() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..40, 0..20)
}

proptest! {
    /// Any chunking of a stream of valid packets gives back exactly those packets.
    #[test]
    fn stream_split_anywhere_length(
        spec in arb_length_spec(),
        bodies in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..100), 0..30),
        chunks in arb_chunks(),
    ) {
        let framing = Framing::Length(spec);
        let max_body = (spec.length_type.max_value() as usize).saturating_sub(spec.header_len());
        let bodies: Vec<Vec<u8>> = bodies.into_iter().filter(|b| b.len() <= max_body).collect();
        let packets = packets(&framing, &bodies);
        let stream = packets.concat();
        let mut dec = decoder(framing, 1 << 16);
        prop_assert_eq!(run(&mut dec, &stream, &chunks), ok(packets));
    }

    #[test]
    fn stream_split_anywhere_eof(
        eof in arb_eof(),
        bodies in prop::collection::vec(
            prop::collection::vec(prop::sample::select(b"ab\r\nx".to_vec()), 0..50), 0..30),
        chunks in arb_chunks(),
    ) {
        let framing = Framing::Eof { eof: eof.clone(), split: true };
        let bodies: Vec<Vec<u8>> = bodies
            .into_iter()
            .filter(|b| encode_eof(&eof, b, &mut BytesMut::new()).is_ok())
            .collect();
        let packets = packets(&framing, &bodies);
        let stream = packets.concat();
        let mut dec = decoder(framing, 1 << 16);
        prop_assert_eq!(run(&mut dec, &stream, &chunks), ok(packets));
    }

    #[test]
    fn stream_split_anywhere_length_fn(
        bodies in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..20),
        chunks in arb_chunks(),
    ) {
        let framing = Framing::LengthFn(varint_len);
        let packets = packets(&framing, &bodies);
        let stream = packets.concat();
        let mut dec = decoder(framing, 1 << 16);
        prop_assert_eq!(run(&mut dec, &stream, &chunks), ok(packets));
    }

    /// Arbitrary bytes (not only valid packets): the chunked decoder agrees with the naive
    /// reference model, errors included.
    #[test]
    fn stream_eof_split_matches_reference(
        eof in arb_eof(),
        max in 1usize..64,
        data in prop::collection::vec(prop::sample::select(b"ab\r\n".to_vec()), 0..300),
        chunks in arb_chunks(),
    ) {
        prop_assume!(eof.len() <= max);
        let mut dec = decoder(Framing::Eof { eof: eof.clone(), split: true }, max);
        let got = run(&mut dec, &data, &chunks);
        let want = reference_eof_split(&eof, max, &data);
        prop_assert_eq!(&got.messages, &want.messages);
        prop_assert_eq!(got.error, want.error);
        if got.error.is_none() {
            prop_assert_eq!(got.left, want.left);
        }
    }

    /// Arbitrary bytes with arbitrary length specs: chunking never changes the messages or
    /// the error.
    #[test]
    fn stream_length_arbitrary_bytes_chunking_invariant(
        spec in arb_length_spec(),
        max in 16usize..300,
        data in prop::collection::vec(prop::sample::select(vec![0u8, 1, 2, 7, 0x40, 0x80, 0xFF]), 0..400),
        chunks in arb_chunks(),
    ) {
        let framing = Framing::Length(spec);
        let whole = run(&mut decoder(framing.clone(), max), &data, &[]);
        let chunked = run(&mut decoder(framing, max), &data, &chunks);
        prop_assert_eq!(&chunked.messages, &whole.messages);
        prop_assert_eq!(chunked.error, whole.error);
        let mut consumed = 0;
        for m in &whole.messages {
            prop_assert!(m.len() <= max && m.len() >= spec.length_end());
            prop_assert_eq!(&m[..], &data[consumed..consumed + m.len()]);
            consumed += m.len();
        }
    }
}
