//! Frames (RFC 6455 §5.2): header parsing, the whole-frame decoder and the frame encoder.
//!
//! - [`FrameHeader::parse`] reads a header from a byte slice and returns `Ok(None)` until the
//!   whole header is there; it rejects reserved opcodes, bad 64-bit lengths and malformed
//!   control frames.
//! - [`FrameDecoder`] cuts complete, unmasked [`Frame`]s out of a `BytesMut`, checking the
//!   masking rule of its [`Role`] and the frame size limit. It does not reassemble messages;
//!   [`Connection`](super::Connection) does.
//! - [`encode_frame`] writes a header and payload straight into a `BytesMut`, masking when
//!   given a key (client frames).

use bytes::{BufMut, Bytes, BytesMut};

use super::error::WsError;
use super::mask::apply_mask;

/// Which end of the connection this codec plays. It decides the masking rule: clients mask
/// every frame they send, servers never do (RFC 6455 §5.1).
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use rswoole_codec::ws::{FrameDecoder, Role, WsError};
///
/// // The same unmasked frame is fine for a client and an error for a server.
/// let unmasked = [0x81, 0x01, b'x'];
/// let mut client = FrameDecoder::new(Role::Client, 1024);
/// assert!(client.decode(&mut BytesMut::from(&unmasked[..]))?.is_some());
/// let mut server = FrameDecoder::new(Role::Server, 1024);
/// assert_eq!(server.decode(&mut BytesMut::from(&unmasked[..])), Err(WsError::UnmaskedFrame));
/// # Ok::<(), WsError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Accepts masked frames only; sends unmasked frames.
    Server,
    /// Accepts unmasked frames only; sends masked frames.
    Client,
}

/// A frame opcode (RFC 6455 §5.2). Reserved opcodes have no variant: parsing them fails with
/// [`WsError::ReservedOpcode`].
///
/// # Examples
///
/// ```
/// use rswoole_codec::ws::OpCode;
/// assert_eq!(OpCode::from_u8(0x9), Some(OpCode::Ping));
/// assert_eq!(OpCode::from_u8(0x3), None); // reserved
/// assert_eq!(OpCode::Close.as_u8(), 0x8);
/// assert!(OpCode::Pong.is_control() && !OpCode::Binary.is_control());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpCode {
    /// 0x0: continues a fragmented message.
    Continuation,
    /// 0x1: first frame of a text message.
    Text,
    /// 0x2: first frame of a binary message.
    Binary,
    /// 0x8: Close control frame.
    Close,
    /// 0x9: Ping control frame.
    Ping,
    /// 0xA: Pong control frame.
    Pong,
}

impl OpCode {
    /// The opcode for a 4-bit value, or `None` for a reserved one.
    pub const fn from_u8(v: u8) -> Option<OpCode> {
        Some(match v {
            0x0 => OpCode::Continuation,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            0xA => OpCode::Pong,
            _ => return None,
        })
    }

    /// The 4-bit wire value.
    pub const fn as_u8(self) -> u8 {
        match self {
            OpCode::Continuation => 0x0,
            OpCode::Text => 0x1,
            OpCode::Binary => 0x2,
            OpCode::Close => 0x8,
            OpCode::Ping => 0x9,
            OpCode::Pong => 0xA,
        }
    }

    /// Close, Ping and Pong.
    pub const fn is_control(self) -> bool {
        matches!(self, OpCode::Close | OpCode::Ping | OpCode::Pong)
    }
}

/// The kind of a data message: what its first frame's opcode was.
///
/// # Examples
///
/// ```
/// use rswoole_codec::ws::{MessageKind, OpCode};
/// assert_eq!(MessageKind::Text.opcode(), OpCode::Text);
/// assert_eq!(MessageKind::Binary.opcode().as_u8(), 0x2);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// A text message: the payload is valid UTF-8.
    Text,
    /// A binary message.
    Binary,
}

impl MessageKind {
    /// The opcode of the message's first frame.
    pub const fn opcode(self) -> OpCode {
        match self {
            MessageKind::Text => OpCode::Text,
            MessageKind::Binary => OpCode::Binary,
        }
    }
}

/// A parsed frame header.
///
/// # Examples
///
/// ```
/// use rswoole_codec::ws::{FrameHeader, OpCode};
///
/// // RFC 6455 §5.7: a single-frame masked text message "Hello".
/// let wire = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
/// let (h, len) = FrameHeader::parse(&wire).unwrap().unwrap();
/// assert_eq!(len, 6);
/// assert!(h.fin);
/// assert_eq!(h.opcode, OpCode::Text);
/// assert_eq!(h.mask, Some([0x37, 0xfa, 0x21, 0x3d]));
/// assert_eq!(h.payload_len, 5);
/// assert!(FrameHeader::parse(&wire[..3]).unwrap().is_none()); // partial
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Last frame of the message.
    pub fin: bool,
    /// RSV1: "compressed" for permessage-deflate.
    pub rsv1: bool,
    /// RSV2: no extension we support defines it.
    pub rsv2: bool,
    /// RSV3: no extension we support defines it.
    pub rsv3: bool,
    /// The frame's opcode.
    pub opcode: OpCode,
    /// The masking key, if the frame is masked.
    pub mask: Option<[u8; 4]>,
    /// Payload length in bytes.
    pub payload_len: u64,
}

impl FrameHeader {
    /// The longest header: 2 bytes, an 8-byte length and a 4-byte mask.
    pub const MAX_LEN: usize = 14;

    /// The header of a whole (`fin`), unmasked, uncompressed frame: what a server sends
    /// before a payload of `payload_len` bytes.
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use rswoole_codec::ws::{FrameHeader, OpCode};
    ///
    /// let mut wire = BytesMut::new();
    /// FrameHeader::whole(OpCode::Binary, 300).encode(&mut wire);
    /// assert_eq!(&wire[..], [0x82, 126, 1, 44]);
    /// ```
    pub const fn whole(opcode: OpCode, payload_len: u64) -> FrameHeader {
        FrameHeader {
            fin: true,
            rsv1: false,
            rsv2: false,
            rsv3: false,
            opcode,
            mask: None,
            payload_len,
        }
    }

    /// Parses a header from the start of `buf`.
    ///
    /// Returns `Ok(None)` if `buf` holds only part of a header, or `Ok(Some((header, len)))`
    /// where `len` is the header's size in bytes. Nothing is consumed: the caller advances.
    ///
    /// # Errors
    ///
    /// [`WsError::ReservedOpcode`], [`WsError::InvalidLength`] (64-bit length with the top bit
    /// set), [`WsError::ControlFrameTooLong`], [`WsError::FragmentedControlFrame`]. Masking and
    /// RSV bits are not checked here: they depend on the role and the extensions.
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_codec::ws::{FrameHeader, OpCode, WsError};
    ///
    /// // An unmasked binary frame with a 16-bit length of 256.
    /// let (h, len) = FrameHeader::parse(&[0x82, 0x7e, 0x01, 0x00])?.unwrap();
    /// assert_eq!((h.opcode, h.payload_len, len), (OpCode::Binary, 256, 4));
    /// // A Ping without FIN is invalid.
    /// assert_eq!(FrameHeader::parse(&[0x09, 0x00]), Err(WsError::FragmentedControlFrame));
    /// # Ok::<(), WsError>(())
    /// ```
    pub fn parse(buf: &[u8]) -> Result<Option<(FrameHeader, usize)>, WsError> {
        let [b0, b1, ..] = *buf else {
            return Ok(None);
        };
        let opcode = OpCode::from_u8(b0 & 0x0f).ok_or(WsError::ReservedOpcode)?;
        let fin = b0 & 0x80 != 0;
        let masked = b1 & 0x80 != 0;
        let len7 = b1 & 0x7f;
        if opcode.is_control() {
            if !fin {
                return Err(WsError::FragmentedControlFrame);
            }
            if len7 > 125 {
                return Err(WsError::ControlFrameTooLong);
            }
        }
        let (payload_len, mut pos) = match len7 {
            126 => {
                let Some(b) = buf.get(2..4) else {
                    return Ok(None);
                };
                (u16::from_be_bytes([b[0], b[1]]) as u64, 4)
            }
            127 => {
                let Some(b) = buf.get(2..10) else {
                    return Ok(None);
                };
                let mut n = [0u8; 8];
                n.copy_from_slice(b);
                let len = u64::from_be_bytes(n);
                if len >> 63 != 0 {
                    return Err(WsError::InvalidLength);
                }
                (len, 10)
            }
            n => (n as u64, 2),
        };
        let mask = if masked {
            let Some(k) = buf.get(pos..pos + 4) else {
                return Ok(None);
            };
            pos += 4;
            Some([k[0], k[1], k[2], k[3]])
        } else {
            None
        };
        Ok(Some((
            FrameHeader {
                fin,
                rsv1: b0 & 0x40 != 0,
                rsv2: b0 & 0x20 != 0,
                rsv3: b0 & 0x10 != 0,
                opcode,
                mask,
                payload_len,
            },
            pos,
        )))
    }

    /// The size of this header on the wire.
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_codec::ws::{FrameHeader, OpCode};
    /// let h = FrameHeader {
    ///     fin: true, rsv1: false, rsv2: false, rsv3: false,
    ///     opcode: OpCode::Binary, mask: Some([1, 2, 3, 4]), payload_len: 1000,
    /// };
    /// assert_eq!(h.encoded_len(), 2 + 2 + 4); // 16-bit length, mask
    /// ```
    pub const fn encoded_len(&self) -> usize {
        let len = match self.payload_len {
            0..=125 => 2,
            126..=0xffff => 4,
            _ => 10,
        };
        if self.mask.is_some() {
            len + 4
        } else {
            len
        }
    }

    /// Appends this header to `dst`, using the shortest length encoding.
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use rswoole_codec::ws::{FrameHeader, OpCode};
    ///
    /// let h = FrameHeader {
    ///     fin: true, rsv1: false, rsv2: false, rsv3: false,
    ///     opcode: OpCode::Text, mask: None, payload_len: 5,
    /// };
    /// let mut dst = BytesMut::new();
    /// h.encode(&mut dst);
    /// assert_eq!(&dst[..], &[0x81, 0x05]);
    /// assert_eq!(FrameHeader::parse(&dst)?, Some((h, 2))); // round trip
    /// # Ok::<(), rswoole_codec::ws::WsError>(())
    /// ```
    pub fn encode(&self, dst: &mut BytesMut) {
        dst.reserve(self.encoded_len());
        let b0 = (self.fin as u8) << 7
            | (self.rsv1 as u8) << 6
            | (self.rsv2 as u8) << 5
            | (self.rsv3 as u8) << 4
            | self.opcode.as_u8();
        let m = if self.mask.is_some() { 0x80 } else { 0 };
        dst.put_u8(b0);
        match self.payload_len {
            n @ 0..=125 => dst.put_u8(m | n as u8),
            n @ 126..=0xffff => {
                dst.put_u8(m | 126);
                dst.put_u16(n as u16);
            }
            n => {
                dst.put_u8(m | 127);
                dst.put_u64(n);
            }
        }
        if let Some(key) = self.mask {
            dst.put_slice(&key);
        }
    }
}

/// Appends one frame (header and payload) to `dst`.
///
/// With `mask: None` (server frames) the payload is copied as is; with `Some(key)` (client
/// frames) it is masked in place in `dst`. `rsv1` marks a compressed message's first frame.
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use rswoole_codec::ws::{encode_frame, OpCode};
///
/// let mut dst = BytesMut::new();
/// encode_frame(&mut dst, true, false, OpCode::Text, b"Hello", None);
/// assert_eq!(&dst[..], &[0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
/// ```
pub fn encode_frame(
    dst: &mut BytesMut,
    fin: bool,
    rsv1: bool,
    opcode: OpCode,
    payload: &[u8],
    mask: Option<[u8; 4]>,
) {
    let header = FrameHeader {
        fin,
        rsv1,
        rsv2: false,
        rsv3: false,
        opcode,
        mask,
        payload_len: payload.len() as u64,
    };
    dst.reserve(header.encoded_len() + payload.len());
    header.encode(dst);
    let start = dst.len();
    dst.extend_from_slice(payload);
    if let Some(key) = mask {
        apply_mask(&mut dst[start..], key);
    }
}

/// A complete frame with its payload unmasked.
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use rswoole_codec::ws::{FrameDecoder, Role};
///
/// let mut dec = FrameDecoder::new(Role::Server, 1024);
/// let mut src = BytesMut::from(&[0x82, 0x82, 0xff, 0xff, 0xff, 0xff, 0xfe, 0xfd][..]);
/// let frame = dec.decode(&mut src)?.unwrap();
/// assert_eq!(&frame.payload[..], &[1, 2]); // unmasked
/// assert_eq!(frame.header.mask, Some([0xff; 4])); // but it was masked on the wire
/// # Ok::<(), rswoole_codec::ws::WsError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The header as received (`mask` still says whether it was masked).
    pub header: FrameHeader,
    /// The unmasked payload.
    pub payload: Bytes,
}

/// Cuts complete frames out of a byte buffer, one at a time.
///
/// Checks everything a single frame can get wrong: reserved opcodes, control frame rules,
/// the masking rule of its role and `max_frame_size`. RSV bits are reported, not checked,
/// and fragments are not reassembled; use [`Connection`](super::Connection) for messages.
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use rswoole_codec::ws::{FrameDecoder, OpCode, Role};
///
/// let mut dec = FrameDecoder::new(Role::Server, 1 << 20);
/// let mut src = BytesMut::from(&[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f][..]);
/// assert!(dec.decode(&mut src).unwrap().is_none()); // not all there yet
/// src.extend_from_slice(&[0x4d, 0x51, 0x58]);
/// let frame = dec.decode(&mut src).unwrap().unwrap();
/// assert_eq!(frame.header.opcode, OpCode::Text);
/// assert_eq!(&frame.payload[..], b"Hello");
/// assert!(src.is_empty());
/// ```
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    role: Role,
    max_frame_size: usize,
}

impl FrameDecoder {
    /// A decoder for `role` that rejects payloads over `max_frame_size` bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use rswoole_codec::ws::{FrameDecoder, Role, WsError};
    ///
    /// let mut dec = FrameDecoder::new(Role::Client, 4);
    /// let mut src = BytesMut::from(&[0x82, 0x05, 1, 2, 3, 4, 5][..]);
    /// assert_eq!(dec.decode(&mut src), Err(WsError::FrameTooLarge));
    /// ```
    pub const fn new(role: Role, max_frame_size: usize) -> Self {
        FrameDecoder {
            role,
            max_frame_size,
        }
    }

    /// Removes the next complete frame from `src`.
    ///
    /// `Ok(None)` means more bytes are needed; `src` is left untouched (some capacity may be
    /// reserved for the rest of the frame).
    ///
    /// # Errors
    ///
    /// Those of [`FrameHeader::parse`], plus [`WsError::UnmaskedFrame`] /
    /// [`WsError::MaskedFrame`] for the wrong masking and [`WsError::FrameTooLarge`].
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use rswoole_codec::ws::{FrameDecoder, OpCode, Role};
    ///
    /// let mut dec = FrameDecoder::new(Role::Client, 1024);
    /// // Two unmasked server frames in one read: a Ping and a text frame.
    /// let mut src = BytesMut::from(&[0x89, 0x00, 0x81, 0x02, b'o', b'k'][..]);
    /// assert_eq!(dec.decode(&mut src)?.unwrap().header.opcode, OpCode::Ping);
    /// assert_eq!(&dec.decode(&mut src)?.unwrap().payload[..], b"ok");
    /// assert!(dec.decode(&mut src)?.is_none());
    /// # Ok::<(), rswoole_codec::ws::WsError>(())
    /// ```
    pub fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, WsError> {
        let Some((header, header_len)) = FrameHeader::parse(src)? else {
            return Ok(None);
        };
        check_mask(self.role, &header)?;
        if header.payload_len > self.max_frame_size as u64 {
            return Err(WsError::FrameTooLarge);
        }
        let total = header_len + header.payload_len as usize;
        if src.len() < total {
            src.reserve(total - src.len());
            return Ok(None);
        }
        let _ = src.split_to(header_len);
        let mut payload = src.split_to(header.payload_len as usize);
        if let Some(key) = header.mask {
            apply_mask(&mut payload, key);
        }
        Ok(Some(Frame {
            header,
            payload: payload.freeze(),
        }))
    }
}

/// The masking rule: servers accept only masked frames, clients only unmasked ones.
pub(crate) fn check_mask(role: Role, header: &FrameHeader) -> Result<(), WsError> {
    match (role, header.mask.is_some()) {
        (Role::Server, false) => Err(WsError::UnmaskedFrame),
        (Role::Client, true) => Err(WsError::MaskedFrame),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// (wire bytes, fin, opcode, masked, payload)
    type Example = (&'static [u8], bool, OpCode, bool, &'static [u8]);

    /// RFC 6455 §5.7 examples.
    const RFC_EXAMPLES: &[Example] = &[
        (
            &[0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f],
            true,
            OpCode::Text,
            false,
            b"Hello",
        ),
        (
            &[
                0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
            ],
            true,
            OpCode::Text,
            true,
            b"Hello",
        ),
        (
            &[0x01, 0x03, 0x48, 0x65, 0x6c],
            false,
            OpCode::Text,
            false,
            b"Hel",
        ),
        (
            &[0x80, 0x02, 0x6c, 0x6f],
            true,
            OpCode::Continuation,
            false,
            b"lo",
        ),
        (
            &[0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f],
            true,
            OpCode::Ping,
            false,
            b"Hello",
        ),
        (
            &[
                0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
            ],
            true,
            OpCode::Pong,
            true,
            b"Hello",
        ),
    ];

    #[test]
    fn ws_frame_rfc_examples_decode() {
        for &(wire, fin, opcode, masked, payload) in RFC_EXAMPLES {
            let role = if masked { Role::Server } else { Role::Client };
            let mut src = BytesMut::from(wire);
            let f = FrameDecoder::new(role, 1 << 20)
                .decode(&mut src)
                .unwrap()
                .unwrap();
            assert_eq!(f.header.fin, fin);
            assert_eq!(f.header.opcode, opcode);
            assert_eq!(&f.payload[..], payload);
            assert!(src.is_empty());
        }
    }

    #[test]
    fn ws_frame_rfc_examples_encode() {
        for &(wire, fin, opcode, masked, payload) in RFC_EXAMPLES {
            let mut dst = BytesMut::new();
            let mask = masked.then_some([0x37, 0xfa, 0x21, 0x3d]);
            encode_frame(&mut dst, fin, false, opcode, payload, mask);
            assert_eq!(&dst[..], wire);
        }
    }

    #[test]
    fn ws_frame_length_encodings() {
        // 256 bytes -> 16-bit length; 65536 bytes -> 64-bit length (RFC §5.7).
        for (len, head) in [
            (256usize, &[0x82u8, 0x7e, 0x01, 0x00][..]),
            (65536, &[0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0][..]),
        ] {
            let payload = vec![7u8; len];
            let mut dst = BytesMut::new();
            encode_frame(&mut dst, true, false, OpCode::Binary, &payload, None);
            assert_eq!(&dst[..head.len()], head);
            let f = FrameDecoder::new(Role::Client, 1 << 20)
                .decode(&mut dst)
                .unwrap()
                .unwrap();
            assert_eq!(f.payload.len(), len);
        }
    }

    #[test]
    fn ws_frame_errors() {
        let cases: &[(&[u8], Role, WsError)] = &[
            (
                &[0x83, 0x80, 0, 0, 0, 0],
                Role::Server,
                WsError::ReservedOpcode,
            ),
            (
                &[0x8b, 0x80, 0, 0, 0, 0],
                Role::Server,
                WsError::ReservedOpcode,
            ),
            (&[0x81, 0x00], Role::Server, WsError::UnmaskedFrame),
            (
                &[0x81, 0x80, 0, 0, 0, 0],
                Role::Client,
                WsError::MaskedFrame,
            ),
            (
                &[0x89, 0xfe, 0, 126],
                Role::Server,
                WsError::ControlFrameTooLong,
            ),
            (
                &[0x09, 0x80, 0, 0, 0, 0],
                Role::Server,
                WsError::FragmentedControlFrame,
            ),
            (
                &[0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0],
                Role::Server,
                WsError::InvalidLength,
            ),
            (
                &[0x82, 0xfe, 0x10, 0x00, 0, 0, 0, 0],
                Role::Server,
                WsError::FrameTooLarge,
            ),
        ];
        for &(wire, role, err) in cases {
            let mut src = BytesMut::from(wire);
            let got = FrameDecoder::new(role, 1024).decode(&mut src);
            assert_eq!(got, Err(err), "{wire:x?}");
        }
    }

    fn wire_frames(frames: &[(bool, u8, Vec<u8>, [u8; 4])]) -> Vec<u8> {
        let mut dst = BytesMut::new();
        for (fin, op, payload, key) in frames {
            let opcode = OpCode::from_u8(*op).unwrap();
            encode_frame(&mut dst, *fin, false, opcode, payload, Some(*key));
        }
        dst.to_vec()
    }

    fn decode_all(chunks: &[&[u8]]) -> Vec<Frame> {
        let mut dec = FrameDecoder::new(Role::Server, 1 << 20);
        let mut src = BytesMut::new();
        let mut out = Vec::new();
        for c in chunks {
            src.extend_from_slice(c);
            while let Some(f) = dec.decode(&mut src).unwrap() {
                out.push(f);
            }
        }
        assert!(src.is_empty());
        out
    }

    proptest! {
        #[test]
        fn ws_frame_split_anywhere(
            frames in proptest::collection::vec(
                (any::<bool>(), prop_oneof![Just(1u8), Just(2u8)],
                 proptest::collection::vec(any::<u8>(), 0..300), any::<[u8; 4]>()), 1..6),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
        ) {
            let wire = wire_frames(&frames);
            let whole = decode_all(&[&wire]);
            let mut points: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
            points.sort_unstable();
            let mut chunks = Vec::new();
            let mut prev = 0;
            for p in points {
                chunks.push(&wire[prev..p]);
                prev = p;
            }
            chunks.push(&wire[prev..]);
            prop_assert_eq!(&decode_all(&chunks), &whole);
            prop_assert_eq!(whole.len(), frames.len());
            for (f, (_, _, payload, _)) in whole.iter().zip(&frames) {
                prop_assert_eq!(&f.payload[..], &payload[..]);
            }
        }
    }
}
