//! Length-prefix framing (`open_length_check`) with arbitrary settings and arbitrary reads.
//!
//! Input layout: type byte, length-offset byte, body-offset byte, max length (u16 LE), chunk
//! sizes (see `Input::chunks`), then the stream.
//!
//! Invariants: the same messages and error whatever the reads; messages are consecutive input
//! bytes; each is at most `package_max_length`, holds its whole length field, and has the
//! length field `encode_length_header` would write for it; without an error, what is left is
//! not a complete packet.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use rswoole_codec::stream::{
    encode_length_header, Decoder, Framing, LengthSpec, LengthType, StreamConfig,
};
use rswoole_fuzz::stream::{assert_prefix, drive};
use rswoole_fuzz::Input;

fuzz_target!(|data: &[u8]| {
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
});
