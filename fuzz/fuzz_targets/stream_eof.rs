//! EOF framing (`open_eof_check`, with and without `open_eof_split`) with an arbitrary EOF,
//! max length and reads.
//!
//! Input layout: flags byte (bits 0-2: EOF length - 1; bit 3: split; bit 4: rewrite the
//! payload over the EOF's bytes and 'x', so EOFs and partial EOFs are frequent), the EOF
//! bytes, max length (u16 LE), chunk sizes (see `Input::chunks`), then the stream.
//!
//! Invariants, split: the same messages and error whatever the reads, equal to a naive
//! reference; each message is consecutive input bytes, at most `package_max_length`, ends with
//! its first EOF, and `encode_eof` rebuilds it from its body. Without split: each message ends
//! with the EOF and is at most `package_max_length`; fed in one read, the stream is one
//! message exactly when it ends with the EOF.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use rswoole_codec::stream::{encode_eof, Decoder, FrameError, Framing, StreamConfig};
use rswoole_fuzz::stream::{assert_prefix, drive};
use rswoole_fuzz::Input;

fuzz_target!(|data: &[u8]| {
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
});

/// Naive split-EOF model: `windows()` search from each message start.
fn reference_split(eof: &[u8], max: usize, data: &[u8]) -> (Vec<bytes::Bytes>, Option<FrameError>) {
    let mut messages = Vec::new();
    let mut rest = data;
    loop {
        match rest.windows(eof.len()).position(|w| w == eof) {
            Some(i) if i + eof.len() <= max => {
                messages.push(bytes::Bytes::copy_from_slice(&rest[..i + eof.len()]));
                rest = &rest[i + eof.len()..];
            }
            Some(_) => return (messages, Some(FrameError::TooLong)),
            None if rest.len() >= max => return (messages, Some(FrameError::TooLong)),
            None => return (messages, None),
        }
    }
}
