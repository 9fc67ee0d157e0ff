//! Encoders: turn a body into a packet the peer's [`Decoder`](super::Decoder) will cut out
//! again, for clients and for servers that reply in the same framing.

use bytes::{BufMut, BytesMut};
use memchr::memmem;

use super::config::{LengthSpec, MAX_EOF_LEN};
use super::error::FrameError;

/// Appends a length-prefixed packet to `dst`: a header of [`LengthSpec::header_len`] bytes,
/// zero except for the length field, then `body`.
///
/// The length field holds `body.len()`, or the whole packet length when `body_offset` is 0,
/// so that the packet decodes back to exactly these bytes. To fill other header bytes (a
/// type, a sequence number), overwrite them in `dst` afterwards; to avoid copying a large
/// body, use [`encode_length_header`] and write the body separately.
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use rswoole_codec::stream::{encode_length, LengthSpec, LengthType};
///
/// # fn main() -> Result<(), rswoole_codec::stream::FrameError> {
/// let spec = LengthSpec::new(LengthType::U32Be, 0, 4); // Swoole: 'N', 0, 4
/// let mut dst = BytesMut::new();
/// encode_length(&spec, b"hello", &mut dst)?;
/// assert_eq!(&dst[..], b"\x00\x00\x00\x05hello");
/// # Ok(())
/// # }
/// ```
///
/// # Errors
///
/// [`FrameError::LengthOverflow`] if the length does not fit the field's type; `dst` is then
/// unchanged.
pub fn encode_length(spec: &LengthSpec, body: &[u8], dst: &mut BytesMut) -> Result<(), FrameError> {
    let value = length_value(spec, body.len())?;
    dst.reserve(spec.header_len() + body.len());
    put_header(spec, value, dst);
    dst.extend_from_slice(body);
    Ok(())
}

/// Appends only the header of a length-prefixed packet whose body is `body_len` bytes long.
///
/// The same as [`encode_length`] without the body, which the caller then sends itself (for
/// instance with a vectored write, to avoid copying it).
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use rswoole_codec::stream::{encode_length_header, LengthSpec, LengthType};
///
/// # fn main() -> Result<(), rswoole_codec::stream::FrameError> {
/// // Swoole: 'n', offset 0, body offset 0: the length counts the whole packet.
/// let spec = LengthSpec::new(LengthType::U16Be, 0, 0);
/// let mut dst = BytesMut::new();
/// encode_length_header(&spec, 3, &mut dst)?;
/// assert_eq!(&dst[..], b"\x00\x05");
/// # Ok(())
/// # }
/// ```
///
/// # Errors
///
/// [`FrameError::LengthOverflow`] if the length does not fit the field's type; `dst` is then
/// unchanged.
pub fn encode_length_header(
    spec: &LengthSpec,
    body_len: usize,
    dst: &mut BytesMut,
) -> Result<(), FrameError> {
    let value = length_value(spec, body_len)?;
    put_header(spec, value, dst);
    Ok(())
}

/// The value of the length field for a body of `body_len` bytes.
fn length_value(spec: &LengthSpec, body_len: usize) -> Result<u64, FrameError> {
    let value = if spec.body_offset == 0 {
        spec.header_len().checked_add(body_len)
    } else {
        Some(body_len)
    };
    match value {
        Some(v) if (v as u64) <= spec.length_type.max_value() => Ok(v as u64),
        _ => Err(FrameError::LengthOverflow),
    }
}

fn put_header(spec: &LengthSpec, value: u64, dst: &mut BytesMut) {
    let start = dst.len();
    dst.put_bytes(0, spec.header_len());
    spec.length_type
        .write(value, &mut dst[start + spec.length_offset..]);
}

/// Appends `body` followed by `eof` to `dst`: a message for [`Framing::Eof`].
///
/// The body is checked not to contain the EOF, also across its end (with EOF `"aa"`, the body
/// `"xa"` would be cut as `"xaa"`), since the peer would cut the message there. The check is
/// one SIMD `memmem` pass over the body.
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use rswoole_codec::stream::{encode_eof, FrameError};
///
/// let mut dst = BytesMut::new();
/// encode_eof(b"\r\n", b"PING", &mut dst).unwrap();
/// assert_eq!(&dst[..], b"PING\r\n");
/// assert_eq!(encode_eof(b"\r\n", b"two\r\nlines", &mut dst), Err(FrameError::EofInBody));
/// ```
///
/// # Errors
///
/// [`FrameError::EofInBody`] if the peer would not cut the message right after `body`; `dst`
/// is then unchanged.
///
/// # Panics
///
/// If `eof` is empty or longer than [`MAX_EOF_LEN`], which [`StreamConfig::validate`]
/// rejects.
///
/// [`Framing::Eof`]: super::Framing::Eof
/// [`StreamConfig::validate`]: super::StreamConfig::validate
pub fn encode_eof(eof: &[u8], body: &[u8], dst: &mut BytesMut) -> Result<(), FrameError> {
    assert!(
        (1..=MAX_EOF_LEN).contains(&eof.len()),
        "package_eof must be 1 to {MAX_EOF_LEN} bytes"
    );
    if eof_in_body(eof, body) {
        return Err(FrameError::EofInBody);
    }
    dst.reserve(body.len() + eof.len());
    dst.extend_from_slice(body);
    dst.extend_from_slice(eof);
    Ok(())
}

/// Whether `body + eof` holds an EOF before its end.
fn eof_in_body(eof: &[u8], body: &[u8]) -> bool {
    if memmem::find(body, eof).is_some() {
        return true;
    }
    // An EOF that starts in the last j bytes of the body and ends inside the appended EOF.
    (1..eof.len()).any(|j| body.ends_with(&eof[..j]) && eof[..eof.len() - j] == eof[j..])
}

#[cfg(test)]
#[allow(clippy::type_complexity, reason = "table rows are tuples")]
mod tests {
    use super::*;
    use crate::stream::LengthType;

    #[test]
    fn stream_encode_length_table() {
        use LengthType::*;
        // (type, length_offset, body_offset, body, expected bytes)
        let cases: &[(LengthType, usize, usize, &[u8], &[u8])] = &[
            (U32Be, 0, 4, b"hello", b"\x00\x00\x00\x05hello"),
            (U32Be, 0, 0, b"hello", b"\x00\x00\x00\x09hello"),
            (U32Le, 0, 4, b"ab", b"\x02\x00\x00\x00ab"),
            (U16Be, 2, 6, b"x", b"\x00\x00\x00\x01\x00\x00x"),
            (U16Le, 1, 0, b"xy", b"\x00\x05\x00xy"),
            (U8, 0, 1, b"", b"\x00"),
            (I8, 0, 0, b"", b"\x01"),
            (U64Be, 0, 8, b"z", b"\x00\x00\x00\x00\x00\x00\x00\x01z"),
            (U64Le, 0, 8, b"z", b"\x01\x00\x00\x00\x00\x00\x00\x00z"),
        ];
        for &(t, off, body_off, body, want) in cases {
            let spec = LengthSpec::new(t, off, body_off);
            let mut dst = BytesMut::from(&b"prev"[..]);
            encode_length(&spec, body, &mut dst).unwrap();
            assert_eq!(&dst[4..], want, "{spec:?}");
            assert_eq!(&dst[..4], b"prev");

            let mut header = BytesMut::new();
            encode_length_header(&spec, body.len(), &mut header).unwrap();
            assert_eq!(&header[..], &want[..want.len() - body.len()], "{spec:?}");
        }
        // Host order: whatever to_ne_bytes gives.
        let mut dst = BytesMut::new();
        encode_length(&LengthSpec::new(U32Ne, 0, 4), b"abc", &mut dst).unwrap();
        assert_eq!(&dst[..4], &3u32.to_ne_bytes());
    }

    #[test]
    fn stream_encode_length_overflow() {
        let body = vec![0u8; 300];
        for (t, off, body_off, len, ok) in [
            (LengthType::U8, 0, 1, 255, true),
            (LengthType::U8, 0, 1, 256, false),
            (LengthType::U8, 0, 0, 254, true),
            (LengthType::U8, 0, 0, 255, false),
            (LengthType::I8, 0, 1, 127, true),
            (LengthType::I8, 0, 1, 128, false),
            (LengthType::I8, 3, 0, 123, true),
            (LengthType::I8, 3, 0, 124, false),
        ] {
            let spec = LengthSpec::new(t, off, body_off);
            let mut dst = BytesMut::new();
            let got = encode_length(&spec, &body[..len], &mut dst);
            if ok {
                assert_eq!(got, Ok(()), "{spec:?} {len}");
            } else {
                assert_eq!(got, Err(FrameError::LengthOverflow), "{spec:?} {len}");
                assert!(dst.is_empty());
            }
        }
        let big = LengthSpec::new(LengthType::U16Be, 0, 2);
        let mut dst = BytesMut::new();
        assert_eq!(
            encode_length_header(&big, 65_536, &mut dst),
            Err(FrameError::LengthOverflow)
        );
        assert_eq!(
            encode_length_header(
                &LengthSpec::new(LengthType::U64Be, 0, 0),
                usize::MAX,
                &mut dst
            ),
            Err(FrameError::LengthOverflow)
        );
        assert!(dst.is_empty());
    }

    #[test]
    fn stream_encode_eof_table() {
        // (eof, body, ok)
        let cases: &[(&[u8], &[u8], bool)] = &[
            (b"\r\n", b"hello", true),
            (b"\r\n", b"", true),
            (b"\r\n", b"a\rb", true),
            (b"\r\n", b"a\r", true), // "a\r\r\n": first EOF is the appended one
            (b"\r\n", b"a\r\nb", false),
            (b"\r\n", b"\r\n", false),
            (b"aa", b"xa", false), // "xaa" + "a"
            (b"aa", b"xb", true),
            (b"abab", b"xab", false), // "xab" + "abab" has "abab" at 1
            (b"abab", b"xaba", true), // "xabaabab": first at 4
            (b"\r\n\r\n", b"head\r\n", false), // "head\r\n\r\n\r\n"
            (b"\r\n\r\n", b"head\r", true),
            (b"\0", b"x\0", false),
            (b"12345678", b"1234567", true),
        ];
        for &(eof, body, ok) in cases {
            let mut dst = BytesMut::new();
            let got = encode_eof(eof, body, &mut dst);
            if ok {
                assert_eq!(got, Ok(()), "{eof:?} {body:?}");
                assert_eq!(&dst[..body.len()], body);
                assert_eq!(&dst[body.len()..], eof);
                // The first EOF is the appended one.
                assert_eq!(
                    memmem::find(&dst, eof),
                    Some(body.len()),
                    "{eof:?} {body:?}"
                );
            } else {
                assert_eq!(got, Err(FrameError::EofInBody), "{eof:?} {body:?}");
                assert!(dst.is_empty());
            }
        }
    }

    #[test]
    #[should_panic(expected = "package_eof")]
    fn stream_encode_eof_empty_panics() {
        let _ = encode_eof(b"", b"x", &mut BytesMut::new());
    }
}
