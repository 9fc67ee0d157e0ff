//! [`FrameError`]: malformed or oversized input, or a message that cannot be encoded.

use std::fmt;

/// Why a message could not be decoded or encoded.
///
/// Fieldless and `Copy`, so rejecting a bad packet costs nothing. After a decode error the
/// stream is out of sync: close the connection. The `Display` text is for people and may
/// change.
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use rswoole_codec::stream::{encode_eof, Decoder, FrameError, Framing, LengthSpec, LengthType, StreamConfig};
///
/// // Decoding: a length field that promises more than package_max_length.
/// let spec = LengthSpec::new(LengthType::U32Be, 0, 4);
/// let config = StreamConfig { framing: Framing::Length(spec), package_max_length: 100 };
/// let mut decoder = Decoder::new(&config)?;
/// let mut buf = BytesMut::from(&b"\x00\x00\x10\x00"[..]);
/// assert_eq!(decoder.decode(&mut buf), Err(FrameError::TooLong));
///
/// // Encoding: a body holding the EOF would be split by the peer.
/// let mut out = BytesMut::new();
/// assert_eq!(encode_eof(b"\r\n", b"a\r\nb", &mut out), Err(FrameError::EofInBody));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FrameError {
    /// The message is longer than `package_max_length`: its declared length is, or no EOF was
    /// found within that many bytes.
    TooLong,
    /// The length field is negative, or gives a packet shorter than the length field itself
    /// (including 0), or the custom length function said the data is invalid.
    InvalidLength,
    /// Encoding only: the packet length does not fit in the length field's type.
    LengthOverflow,
    /// Encoding only: the body contains the EOF marker, so the peer would split it.
    EofInBody,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FrameError::TooLong => "message longer than package_max_length",
            FrameError::InvalidLength => "invalid packet length",
            FrameError::LengthOverflow => "packet length does not fit in the length field",
            FrameError::EofInBody => "message body contains the EOF marker",
        })
    }
}

impl std::error::Error for FrameError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_frame_error_is_small() {
        assert_eq!(std::mem::size_of::<FrameError>(), 1);
        assert_eq!(std::mem::size_of::<Result<(), FrameError>>(), 1);
        for e in [
            FrameError::TooLong,
            FrameError::InvalidLength,
            FrameError::LengthOverflow,
            FrameError::EofInBody,
        ] {
            assert!(!e.to_string().is_empty());
        }
    }
}
