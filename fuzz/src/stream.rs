//! The stream-framing targets (`stream_eof`, `stream_length`) and the helpers that drive a
//! `rswoole_codec::stream::Decoder` the way a server does.

use bytes::{Bytes, BytesMut};
use rswoole_codec::stream::{
    encode_eof, encode_length_header, Decoder, FrameError, Framing, LengthSpec, LengthType,
    StreamConfig,
};

use crate::Input;

/// What feeding a whole stream to a decoder produced.
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The decoded messages, in order.
    pub messages: Vec<Bytes>,
    /// The first error, after which decoding stopped.
    pub error: Option<FrameError>,
    /// Bytes fed to the decoder and not returned in a message.
    pub left: usize,
}

impl Outcome {
    /// Total length of the messages.
    pub fn consumed(&self) -> usize {
        self.messages.iter().map(|m| m.len()).sum()
    }
}

/// Feeds `data` in reads whose sizes cycle through `chunks` (empty: one read), draining
/// the decoder after each read as a server does, and stops at the first error.
pub fn drive(decoder: &mut Decoder, data: &[u8], chunks: &[usize]) -> Outcome {
    let mut buf = BytesMut::new();
    let mut messages = Vec::new();
    let mut sizes = chunks.iter().copied().cycle();
    let mut rest = data;
    while !rest.is_empty() {
        let n = sizes.next().unwrap_or(rest.len()).clamp(1, rest.len());
        buf.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        loop {
            match decoder.decode(&mut buf) {
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

/// Asserts that the messages, concatenated, are a prefix of `data`.
pub fn assert_prefix(outcome: &Outcome, data: &[u8]) {
    let mut at = 0;
    for m in &outcome.messages {
        assert_eq!(
            &m[..],
            &data[at..at + m.len()],
            "message is not the next input bytes"
        );
        at += m.len();
    }
}

/// EOF framing (`open_eof_check`, with and without `open_eof_split`) with an arbitrary EOF,
/// max length and reads.
///
/// Input layout: flags byte (bits 0-2: EOF length - 1; bit 3: split; bit 4: rewrite the
/// payload over the EOF's bytes and 'x', so EOFs and partial EOFs are frequent), the EOF
/// bytes, max length (u16 LE), chunk sizes (see `Input::chunks`), then the stream.
///
/// Invariants, split: the same messages and error whatever the reads, equal to a naive
/// reference; each message is consecutive input bytes, at most `package_max_length`, ends with
/// its first EOF, and `encode_eof` rebuilds it from its body. Without split: each message ends
/// with the EOF and is at most `package_max_length`; fed in one read, the stream is one
/// message exactly when it ends with the EOF.
pub fn stream_eof(data: &[u8]) {
    let mut input = Input::new(data);
    let flags = input.byte();
    let eof_len = usize::from(flags & 7) + 1;
    let split = flags & 8 != 0;
    let mut eof = input.bytes(eof_len).to_vec();
    eof.resize(eof_len, b'\n');
    let max = usize::from(input.u16()) + 1;
    let chunks = input.chunks();
    let mut stream = input.rest().to_vec();
    if flags & 16 != 0 {
        for b in &mut stream {
            *b = eof
                .get(usize::from(*b) % (eof_len + 1))
                .copied()
                .unwrap_or(b'x');
        }
    }

    let config = StreamConfig {
        framing: Framing::Eof {
            eof: eof.clone(),
            split,
        },
        package_max_length: max,
    };
    let Ok(decoder) = Decoder::new(&config) else {
        assert!(eof_len > max);
        return;
    };

    let chunked = drive(&mut decoder.clone(), &stream, &chunks);
    assert_prefix(&chunked, &stream);
    for m in &chunked.messages {
        assert!(m.len() <= max);
        assert!(m.ends_with(&eof));
    }

    if split {
        let whole = drive(&mut decoder.clone(), &stream, &[]);
        assert_eq!(whole.messages, chunked.messages);
        assert_eq!(whole.error, chunked.error);
        let (messages, error) = reference_split(&eof, max, &stream);
        assert_eq!(whole.messages, messages);
        assert_eq!(whole.error, error);
        for m in &whole.messages {
            let body = &m[..m.len() - eof_len];
            let mut again = BytesMut::new();
            encode_eof(&eof, body, &mut again).expect("a decoded body holds no EOF");
            assert_eq!(&again[..], &m[..]);
        }
    } else {
        let whole = drive(&mut decoder.clone(), &stream, &[]);
        let expect_one = !stream.is_empty() && stream.len() <= max && stream.ends_with(&eof);
        assert_eq!(whole.messages.len(), usize::from(expect_one));
        assert_eq!(
            whole.error.is_some(),
            !expect_one && stream.len() >= max,
            "{whole:?}"
        );
    }
}

/// Naive split-EOF model: `windows()` search from each message start.
fn reference_split(eof: &[u8], max: usize, data: &[u8]) -> (Vec<Bytes>, Option<FrameError>) {
    let mut messages = Vec::new();
    let mut rest = data;
    loop {
        match rest.windows(eof.len()).position(|w| w == eof) {
            Some(i) if i + eof.len() <= max => {
                messages.push(Bytes::copy_from_slice(&rest[..i + eof.len()]));
                rest = &rest[i + eof.len()..];
            }
            Some(_) => return (messages, Some(FrameError::TooLong)),
            None if rest.len() >= max => return (messages, Some(FrameError::TooLong)),
            None => return (messages, None),
        }
    }
}

/// Length-prefix framing (`open_length_check`) with arbitrary settings and arbitrary reads.
///
/// Input layout: type byte, length-offset byte, body-offset byte, max length (u16 LE), chunk
/// sizes (see `Input::chunks`), then the stream.
///
/// Invariants: the same messages and error whatever the reads; messages are consecutive input
/// bytes; each is at most `package_max_length`, holds its whole length field, and has the
/// length field `encode_length_header` would write for it; without an error, what is left is
/// not a complete packet.
pub fn stream_length(data: &[u8]) {
    let mut input = Input::new(data);
    let length_type = LengthType::ALL[usize::from(input.byte()) % LengthType::ALL.len()];
    let length_offset = usize::from(input.byte() % 8);
    let body = input.byte();
    // High bit clear: body offset 0 (the value counts the whole packet); else past the field.
    let body_offset = if body & 0x80 == 0 {
        0
    } else {
        length_offset + length_type.size() + usize::from(body & 7)
    };
    let max = usize::from(input.u16()) + 1;
    let chunks = input.chunks();
    let stream = input.rest();

    let spec = LengthSpec::new(length_type, length_offset, body_offset);
    let config = StreamConfig {
        framing: Framing::Length(spec),
        package_max_length: max,
    };
    let Ok(decoder) = Decoder::new(&config) else {
        // Only a header that doesn't fit in max is refused.
        assert!(spec.length_end() > max || body_offset > max);
        return;
    };

    let whole = drive(&mut decoder.clone(), stream, &[]);
    let chunked = drive(&mut decoder.clone(), stream, &chunks);
    assert_eq!(whole.messages, chunked.messages);
    assert_eq!(whole.error, chunked.error);
    assert_prefix(&whole, stream);

    let field = length_offset..spec.length_end();
    for m in &whole.messages {
        assert!(m.len() <= max);
        assert!(m.len() >= spec.length_end() && m.len() >= spec.header_len());
        // Re-encoding the message's length gives its length field back.
        let mut header = BytesMut::new();
        encode_length_header(&spec, m.len() - spec.header_len(), &mut header)
            .expect("a decoded length fits its own field");
        assert_eq!(&header[field.clone()], &m[field.clone()]);
    }
    if whole.error.is_none() {
        assert_eq!(whole.consumed() + whole.left, stream.len());
        // What is left is an incomplete packet: a fresh decoder wants more.
        let mut left = BytesMut::from(&stream[whole.consumed()..]);
        assert_eq!(decoder.clone().decode(&mut left), Ok(None));
    }
}
