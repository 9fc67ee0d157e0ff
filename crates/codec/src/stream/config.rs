//! Framing settings: what Swoole calls `open_eof_check`, `open_eof_split`, `open_length_check`,
//! `package_length_type`, `package_length_offset`, `package_body_offset`,
//! `package_length_func` and `package_max_length`.

use std::fmt;

use super::decode::LengthFn;

/// Default for [`StreamConfig::package_max_length`]: 2 MiB, as in Swoole.
///
/// A message longer than this (by its declared length, or an EOF-framed message whose EOF is
/// not within this many bytes) is rejected with [`FrameError::TooLong`], so a peer can never
/// make the server buffer without bound.
///
/// # Default
///
/// Default is `2 * 1024 * 1024` bytes.
///
/// [`FrameError::TooLong`]: super::FrameError::TooLong
pub const DEFAULT_PACKAGE_MAX_LENGTH: usize = 2 * 1024 * 1024;

/// Longest accepted EOF marker (`package_eof`), in bytes: 8, as in Swoole.
pub const MAX_EOF_LEN: usize = 8;

/// How a byte stream is cut into messages.
///
/// Build one, put it in a [`StreamConfig`], check it with [`StreamConfig::validate`] and make a
/// [`Decoder`](super::Decoder) from it.
///
/// # Examples
///
/// ```
/// use rswoole_codec::stream::{Framing, LengthSpec, LengthType};
///
/// // open_eof_check + open_eof_split, package_eof = "\r\n"
/// let lines = Framing::Eof { eof: b"\r\n".to_vec(), split: true };
/// // open_length_check, package_length_type = 'N', offset 0, body offset 4
/// let length = Framing::Length(LengthSpec::new(LengthType::U32Be, 0, 4));
/// assert!(matches!(length, Framing::Length(spec) if spec.header_len() == 4));
/// # let _ = lines;
/// ```
///
/// Not `PartialEq`: [`LengthFn`](Framing::LengthFn) holds a function pointer, and those do not
/// compare reliably.
#[derive(Clone, Debug, Default)]
pub enum Framing {
    /// No framing: whatever was read is one message (Swoole's default with no `open_*_check`).
    #[default]
    Raw,
    /// EOF framing (`open_eof_check`): messages end with `eof`, which is delivered as part of
    /// the message, as in Swoole.
    Eof {
        /// The end-of-message marker (`package_eof`): 1 to [`MAX_EOF_LEN`] bytes.
        eof: Vec<u8>,
        /// `open_eof_split`. When `true`, each decoded message is exactly one message, however
        /// the bytes arrived. When `false` (Swoole's plain `open_eof_check`), a message is
        /// delivered only when the *whole buffer* ends with `eof`, and may hold several
        /// messages; an EOF in the middle of the buffer is not looked for.
        split: bool,
    },
    /// Length-prefix framing (`open_length_check`) with a length field described by the spec.
    Length(LengthSpec),
    /// Length-prefix framing with a user function (`package_length_func`) that reads the
    /// buffered bytes and returns the total packet length.
    LengthFn(LengthFn),
}

/// The type of a length field: Swoole's `package_length_type`, a PHP `pack()` code.
///
/// The `…Ne` types are read in host (native) byte order, as Swoole does for the `s`, `S`, `l`,
/// `L`, `q` and `Q` codes: that is little-endian on x86-64 and AArch64, but both ends must run
/// on hosts of the same byte order. Prefer an explicit `…Be`/`…Le` type for new protocols.
///
/// A negative value in a signed field is malformed input ([`FrameError::InvalidLength`]).
///
/// [`FrameError::InvalidLength`]: super::FrameError::InvalidLength
///
/// # Examples
///
/// ```
/// use rswoole_codec::stream::LengthType;
/// let t = LengthType::from_pack_code('n').unwrap(); // package_length_type => 'n'
/// assert_eq!(t, LengthType::U16Be);
/// assert_eq!((t.size(), t.max_value()), (2, 65_535));
/// assert_eq!(t.pack_code(), 'n');
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LengthType {
    /// `c`: signed 8-bit.
    I8,
    /// `C`: unsigned 8-bit.
    U8,
    /// `s`: signed 16-bit, host byte order.
    I16Ne,
    /// `S`: unsigned 16-bit, host byte order.
    U16Ne,
    /// `n`: unsigned 16-bit, big-endian (network order).
    U16Be,
    /// `v`: unsigned 16-bit, little-endian.
    U16Le,
    /// `l`: signed 32-bit, host byte order.
    I32Ne,
    /// `L`: unsigned 32-bit, host byte order.
    U32Ne,
    /// `N`: unsigned 32-bit, big-endian (network order).
    U32Be,
    /// `V`: unsigned 32-bit, little-endian.
    U32Le,
    /// `q`: signed 64-bit, host byte order.
    I64Ne,
    /// `Q`: unsigned 64-bit, host byte order.
    U64Ne,
    /// `J`: unsigned 64-bit, big-endian (network order).
    U64Be,
    /// `P`: unsigned 64-bit, little-endian.
    U64Le,
}

impl LengthType {
    /// Every length type, in `pack()`-code order `c C s S n v l L N V q Q J P`.
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_codec::stream::LengthType;
    /// let codes: String = LengthType::ALL.iter().map(|t| t.pack_code()).collect();
    /// assert_eq!(codes, "cCsSnvlLNVqQJP");
    /// ```
    pub const ALL: [LengthType; 14] = [
        LengthType::I8,
        LengthType::U8,
        LengthType::I16Ne,
        LengthType::U16Ne,
        LengthType::U16Be,
        LengthType::U16Le,
        LengthType::I32Ne,
        LengthType::U32Ne,
        LengthType::U32Be,
        LengthType::U32Le,
        LengthType::I64Ne,
        LengthType::U64Ne,
        LengthType::U64Be,
        LengthType::U64Le,
    ];

    /// The type for a PHP `pack()` code as Swoole's `package_length_type` accepts it, or `None`
    /// for an unknown code.
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_codec::stream::LengthType;
    ///
    /// assert_eq!(LengthType::from_pack_code('N'), Some(LengthType::U32Be));
    /// assert_eq!(LengthType::from_pack_code('x'), None);
    /// ```
    pub fn from_pack_code(code: char) -> Option<LengthType> {
        Self::ALL.into_iter().find(|t| t.pack_code() == code)
    }

    /// The PHP `pack()` code of this type.
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_codec::stream::LengthType;
    /// assert_eq!(LengthType::U32Le.pack_code(), 'V');
    /// ```
    pub fn pack_code(self) -> char {
        match self {
            LengthType::I8 => 'c',
            LengthType::U8 => 'C',
            LengthType::I16Ne => 's',
            LengthType::U16Ne => 'S',
            LengthType::U16Be => 'n',
            LengthType::U16Le => 'v',
            LengthType::I32Ne => 'l',
            LengthType::U32Ne => 'L',
            LengthType::U32Be => 'N',
            LengthType::U32Le => 'V',
            LengthType::I64Ne => 'q',
            LengthType::U64Ne => 'Q',
            LengthType::U64Be => 'J',
            LengthType::U64Le => 'P',
        }
    }

    /// Size of the field in bytes: 1, 2, 4 or 8.
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_codec::stream::LengthType;
    /// assert_eq!(LengthType::I8.size(), 1);
    /// assert_eq!(LengthType::U64Be.size(), 8);
    /// ```
    pub fn size(self) -> usize {
        match self {
            LengthType::I8 | LengthType::U8 => 1,
            LengthType::I16Ne | LengthType::U16Ne | LengthType::U16Be | LengthType::U16Le => 2,
            LengthType::I32Ne | LengthType::U32Ne | LengthType::U32Be | LengthType::U32Le => 4,
            LengthType::I64Ne | LengthType::U64Ne | LengthType::U64Be | LengthType::U64Le => 8,
        }
    }

    /// Largest value the field can hold (for signed types, the largest positive value).
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_codec::stream::LengthType;
    /// assert_eq!(LengthType::I16Ne.max_value(), 32_767);
    /// assert_eq!(LengthType::U8.max_value(), 255);
    /// ```
    pub fn max_value(self) -> u64 {
        match self {
            LengthType::I8 => i8::MAX as u64,
            LengthType::U8 => u8::MAX.into(),
            LengthType::I16Ne => i16::MAX as u64,
            LengthType::U16Ne | LengthType::U16Be | LengthType::U16Le => u16::MAX.into(),
            LengthType::I32Ne => i32::MAX as u64,
            LengthType::U32Ne | LengthType::U32Be | LengthType::U32Le => u32::MAX.into(),
            LengthType::I64Ne => i64::MAX as u64,
            LengthType::U64Ne | LengthType::U64Be | LengthType::U64Le => u64::MAX,
        }
    }

    /// Reads the field from the start of `field` (which must hold at least
    /// [`size`](Self::size) bytes). Returns `None` for a negative value.
    #[inline]
    pub(crate) fn read(self, field: &[u8]) -> Option<u64> {
        let v = match self {
            LengthType::I8 => i64::from(field[0] as i8),
            LengthType::U8 => i64::from(field[0]),
            LengthType::I16Ne => i16::from_ne_bytes(arr(field)).into(),
            LengthType::U16Ne => u16::from_ne_bytes(arr(field)).into(),
            LengthType::U16Be => u16::from_be_bytes(arr(field)).into(),
            LengthType::U16Le => u16::from_le_bytes(arr(field)).into(),
            LengthType::I32Ne => i32::from_ne_bytes(arr(field)).into(),
            LengthType::U32Ne => u32::from_ne_bytes(arr(field)).into(),
            LengthType::U32Be => u32::from_be_bytes(arr(field)).into(),
            LengthType::U32Le => u32::from_le_bytes(arr(field)).into(),
            LengthType::I64Ne => i64::from_ne_bytes(arr(field)),
            LengthType::U64Ne => return Some(u64::from_ne_bytes(arr(field))),
            LengthType::U64Be => return Some(u64::from_be_bytes(arr(field))),
            LengthType::U64Le => return Some(u64::from_le_bytes(arr(field))),
        };
        u64::try_from(v).ok()
    }

    /// Writes `value` (at most [`max_value`](Self::max_value)) into the first
    /// [`size`](Self::size) bytes of `field`.
    #[inline]
    pub(crate) fn write(self, value: u64, field: &mut [u8]) {
        debug_assert!(value <= self.max_value());
        let n = self.size();
        let out = &mut field[..n];
        match self {
            LengthType::I8 | LengthType::U8 => out[0] = value as u8,
            LengthType::I16Ne | LengthType::U16Ne => {
                out.copy_from_slice(&(value as u16).to_ne_bytes())
            }
            LengthType::U16Be => out.copy_from_slice(&(value as u16).to_be_bytes()),
            LengthType::U16Le => out.copy_from_slice(&(value as u16).to_le_bytes()),
            LengthType::I32Ne | LengthType::U32Ne => {
                out.copy_from_slice(&(value as u32).to_ne_bytes())
            }
            LengthType::U32Be => out.copy_from_slice(&(value as u32).to_be_bytes()),
            LengthType::U32Le => out.copy_from_slice(&(value as u32).to_le_bytes()),
            LengthType::I64Ne | LengthType::U64Ne => out.copy_from_slice(&value.to_ne_bytes()),
            LengthType::U64Be => out.copy_from_slice(&value.to_be_bytes()),
            LengthType::U64Le => out.copy_from_slice(&value.to_le_bytes()),
        }
    }
}

/// The first `N` bytes of `b` as an array; the caller has checked `b.len() >= N`.
#[inline(always)]
fn arr<const N: usize>(b: &[u8]) -> [u8; N] {
    let mut a = [0; N];
    a.copy_from_slice(&b[..N]);
    a
}

/// Where the length field sits and what it counts (Swoole's `package_length_type`,
/// `package_length_offset` and `package_body_offset`).
///
/// The whole packet is `body_offset + value` bytes long, where `value` is the number read from
/// the field, exactly as in Swoole. So with `body_offset > 0` the value counts the body only;
/// with `body_offset == 0` it counts the whole packet, header included.
///
/// # Examples
///
/// ```
/// use rswoole_codec::stream::{LengthSpec, LengthType};
///
/// // A 2-byte type, then a big-endian u32 body length, then the body.
/// let spec = LengthSpec::new(LengthType::U32Be, 2, 6);
/// assert_eq!(spec.header_len(), 6);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LengthSpec {
    /// `package_length_type`: type and byte order of the length field.
    pub length_type: LengthType,
    /// `package_length_offset`: where the length field starts, from the packet start.
    pub length_offset: usize,
    /// `package_body_offset`: where the body starts, from the packet start; `0` means the
    /// value counts the whole packet. Otherwise it must be at least
    /// `length_offset + length_type.size()`.
    pub body_offset: usize,
}

impl LengthSpec {
    /// A spec with the given type, length offset and body offset.
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_codec::stream::{LengthSpec, LengthType};
    /// // Swoole: package_length_type => 'N', package_length_offset => 0, package_body_offset => 4
    /// let spec = LengthSpec::new(LengthType::U32Be, 0, 4);
    /// assert_eq!(spec.length_offset, 0);
    /// assert!(spec.validate().is_ok());
    /// ```
    pub const fn new(length_type: LengthType, length_offset: usize, body_offset: usize) -> Self {
        LengthSpec {
            length_type,
            length_offset,
            body_offset,
        }
    }

    /// The byte just past the length field: how many bytes must be buffered before the length
    /// can be read.
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_codec::stream::{LengthSpec, LengthType};
    /// assert_eq!(LengthSpec::new(LengthType::U16Be, 2, 0).length_end(), 4);
    /// ```
    pub fn length_end(&self) -> usize {
        self.length_offset.saturating_add(self.length_type.size())
    }

    /// Length of the header that [`encode_length`](super::encode_length) writes: `body_offset`,
    /// or the end of the length field when `body_offset` is 0.
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_codec::stream::{LengthSpec, LengthType};
    /// assert_eq!(LengthSpec::new(LengthType::U16Be, 2, 8).header_len(), 8);
    /// assert_eq!(LengthSpec::new(LengthType::U16Be, 2, 0).header_len(), 4); // value counts all
    /// ```
    pub fn header_len(&self) -> usize {
        if self.body_offset == 0 {
            self.length_end()
        } else {
            self.body_offset
        }
    }

    /// Checks the spec on its own (see [`StreamConfig::validate`]).
    ///
    /// # Errors
    ///
    /// [`ConfigError::BodyOffsetInsideLength`] if `body_offset` is neither 0 nor past the
    /// length field.
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_codec::stream::{ConfigError, LengthSpec, LengthType};
    /// // The body would start inside the 4-byte length field.
    /// let spec = LengthSpec::new(LengthType::U32Be, 0, 2);
    /// assert_eq!(spec.validate(), Err(ConfigError::BodyOffsetInsideLength));
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.body_offset != 0 && self.body_offset < self.length_end() {
            return Err(ConfigError::BodyOffsetInsideLength);
        }
        Ok(())
    }
}

/// Stream framing settings: a [`Framing`] and its size limit.
///
/// Plain data with public fields; call [`validate`](Self::validate) (or let
/// [`Decoder::new`](super::Decoder::new) call it) before use.
///
/// # Examples
///
/// ```
/// use rswoole_codec::stream::{Framing, StreamConfig};
///
/// let config = StreamConfig {
///     framing: Framing::Eof { eof: b"\r\n".to_vec(), split: true },
///     package_max_length: 64 * 1024,
/// };
/// assert!(config.validate().is_ok());
///
/// let bad = StreamConfig {
///     framing: Framing::Eof { eof: Vec::new(), split: true },
///     ..StreamConfig::default()
/// };
/// assert!(bad.validate().is_err());
/// ```
///
/// # Default
///
/// [`Framing::Raw`] with [`DEFAULT_PACKAGE_MAX_LENGTH`].
#[derive(Clone, Debug)]
pub struct StreamConfig {
    /// How the stream is cut into messages.
    pub framing: Framing,
    /// `package_max_length`: the longest accepted message, in bytes, header and EOF included.
    /// Not used by [`Framing::Raw`], where the read size bounds each message.
    ///
    /// Default is [`DEFAULT_PACKAGE_MAX_LENGTH`].
    pub package_max_length: usize,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            framing: Framing::Raw,
            package_max_length: DEFAULT_PACKAGE_MAX_LENGTH,
        }
    }
}

impl StreamConfig {
    /// A config with the given framing and the default [`DEFAULT_PACKAGE_MAX_LENGTH`].
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_codec::stream::{Framing, StreamConfig, DEFAULT_PACKAGE_MAX_LENGTH};
    /// let config = StreamConfig::new(Framing::Eof { eof: b"\n".to_vec(), split: true });
    /// assert_eq!(config.package_max_length, DEFAULT_PACKAGE_MAX_LENGTH);
    /// ```
    pub fn new(framing: Framing) -> Self {
        StreamConfig {
            framing,
            package_max_length: DEFAULT_PACKAGE_MAX_LENGTH,
        }
    }

    /// Rejects settings that cannot work. Call it at start-up, before anything forks.
    ///
    /// # Errors
    ///
    /// - [`ConfigError::ZeroMaxLength`]: `package_max_length` is 0 with a non-raw framing.
    /// - [`ConfigError::EmptyEof`] / [`ConfigError::EofTooLong`]: the EOF is not 1 to
    ///   [`MAX_EOF_LEN`] bytes.
    /// - [`ConfigError::EofLongerThanMax`]: the EOF alone exceeds `package_max_length`.
    /// - [`ConfigError::BodyOffsetInsideLength`]: see [`LengthSpec::body_offset`].
    /// - [`ConfigError::HeaderLongerThanMax`]: the length field ends past
    ///   `package_max_length`, or the body offset is past it, so no packet could be accepted.
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_codec::stream::{ConfigError, Framing, LengthSpec, LengthType, StreamConfig};
    /// let config = StreamConfig {
    ///     framing: Framing::Length(LengthSpec::new(LengthType::U32Be, 0, 4)),
    ///     package_max_length: 2, // smaller than the 4-byte header
    /// };
    /// assert_eq!(config.validate(), Err(ConfigError::HeaderLongerThanMax));
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        let max = self.package_max_length;
        if max == 0 && !matches!(self.framing, Framing::Raw) {
            return Err(ConfigError::ZeroMaxLength);
        }
        match &self.framing {
            Framing::Raw | Framing::LengthFn(_) => Ok(()),
            Framing::Eof { eof, .. } => {
                if eof.is_empty() {
                    Err(ConfigError::EmptyEof)
                } else if eof.len() > MAX_EOF_LEN {
                    Err(ConfigError::EofTooLong)
                } else if eof.len() > max {
                    Err(ConfigError::EofLongerThanMax)
                } else {
                    Ok(())
                }
            }
            Framing::Length(spec) => {
                spec.validate()?;
                if spec.length_end() > max || spec.body_offset > max {
                    Err(ConfigError::HeaderLongerThanMax)
                } else {
                    Ok(())
                }
            }
        }
    }
}

/// A [`StreamConfig`] that cannot work, found by [`StreamConfig::validate`].
///
/// Fieldless and `Copy`. The `Display` text is for people and may change.
///
/// # Examples
///
/// ```
/// use rswoole_codec::stream::{ConfigError, Decoder, Framing, StreamConfig};
/// let config = StreamConfig::new(Framing::Eof { eof: b"0123456789".to_vec(), split: true });
/// let err = Decoder::new(&config).unwrap_err();
/// assert_eq!(err, ConfigError::EofTooLong);
/// assert_eq!(err.to_string(), "package_eof is longer than 8 bytes");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConfigError {
    /// `package_eof` is empty: set at least one byte, e.g. `"\r\n"`.
    EmptyEof,
    /// `package_eof` is longer than [`MAX_EOF_LEN`] (8) bytes.
    EofTooLong,
    /// `package_eof` is longer than `package_max_length`.
    EofLongerThanMax,
    /// `package_max_length` is 0: no message could ever be accepted.
    ZeroMaxLength,
    /// `package_body_offset` is neither 0 nor at or past the end of the length field
    /// (`package_length_offset` + size of `package_length_type`).
    BodyOffsetInsideLength,
    /// The length field or the body offset lies past `package_max_length`.
    HeaderLongerThanMax,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConfigError::EmptyEof => "package_eof is empty",
            ConfigError::EofTooLong => "package_eof is longer than 8 bytes",
            ConfigError::EofLongerThanMax => "package_eof is longer than package_max_length",
            ConfigError::ZeroMaxLength => "package_max_length is 0",
            ConfigError::BodyOffsetInsideLength => {
                "package_body_offset is neither 0 nor past the end of the length field"
            }
            ConfigError::HeaderLongerThanMax => {
                "the length field or package_body_offset lies past package_max_length"
            }
        })
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_pack_codes_round_trip() {
        let codes = "cCsSnvlLNVqQJP";
        for (t, c) in LengthType::ALL.into_iter().zip(codes.chars()) {
            assert_eq!(t.pack_code(), c);
            assert_eq!(LengthType::from_pack_code(c), Some(t));
        }
        for c in ['x', 'i', 'I', 'a', ' '] {
            assert_eq!(LengthType::from_pack_code(c), None);
        }
    }

    #[test]
    fn stream_length_type_read_write() {
        for t in LengthType::ALL {
            for v in [0, 1, 127, t.max_value() / 3, t.max_value()] {
                let mut buf = [0xAAu8; 9];
                t.write(v, &mut buf);
                assert_eq!(buf[t.size()], 0xAA, "{t:?} wrote past its size");
                assert_eq!(t.read(&buf), Some(v), "{t:?} {v}");
            }
        }
        // Byte orders, checked against literal bytes.
        assert_eq!(LengthType::U16Be.read(&[1, 2]), Some(0x0102));
        assert_eq!(LengthType::U16Le.read(&[1, 2]), Some(0x0201));
        assert_eq!(LengthType::U32Be.read(&[1, 2, 3, 4]), Some(0x0102_0304));
        assert_eq!(LengthType::U32Le.read(&[1, 2, 3, 4]), Some(0x0403_0201));
        assert_eq!(
            LengthType::U64Be.read(&[1, 2, 3, 4, 5, 6, 7, 8]),
            Some(0x0102_0304_0506_0708)
        );
        assert_eq!(
            LengthType::U64Le.read(&[1, 2, 3, 4, 5, 6, 7, 8]),
            Some(0x0807_0605_0403_0201)
        );
        assert_eq!(
            LengthType::U32Ne.read(&0x0102_0304u32.to_ne_bytes()),
            Some(0x0102_0304)
        );
        // Negative signed values are rejected; the same bits unsigned are not.
        assert_eq!(LengthType::I8.read(&[0xFF]), None);
        assert_eq!(LengthType::U8.read(&[0xFF]), Some(255));
        assert_eq!(LengthType::I16Ne.read(&(-1i16).to_ne_bytes()), None);
        assert_eq!(LengthType::I32Ne.read(&i32::MIN.to_ne_bytes()), None);
        assert_eq!(LengthType::I64Ne.read(&(-5i64).to_ne_bytes()), None);
        assert_eq!(LengthType::U64Ne.read(&[0xFF; 8]), Some(u64::MAX));
    }

    #[test]
    fn stream_validate_table() {
        use ConfigError::*;
        let eof = |e: &[u8]| Framing::Eof {
            eof: e.to_vec(),
            split: true,
        };
        let len = |t, o, b| Framing::Length(LengthSpec::new(t, o, b));
        let cases: Vec<(Framing, usize, Result<(), ConfigError>)> = vec![
            (Framing::Raw, 0, Ok(())),
            (eof(b"\r\n"), 1024, Ok(())),
            (eof(b"12345678"), 8, Ok(())),
            (eof(b""), 1024, Err(EmptyEof)),
            (eof(b"123456789"), 1024, Err(EofTooLong)),
            (eof(b"\r\n"), 1, Err(EofLongerThanMax)),
            (eof(b"\r\n"), 0, Err(ZeroMaxLength)),
            (len(LengthType::U32Be, 0, 4), 1024, Ok(())),
            (len(LengthType::U32Be, 0, 0), 1024, Ok(())),
            (len(LengthType::U32Be, 2, 0), 1024, Ok(())),
            (len(LengthType::U32Be, 2, 6), 1024, Ok(())),
            (len(LengthType::U32Be, 2, 100), 1024, Ok(())),
            (
                len(LengthType::U32Be, 0, 3),
                1024,
                Err(BodyOffsetInsideLength),
            ),
            (
                len(LengthType::U32Be, 2, 5),
                1024,
                Err(BodyOffsetInsideLength),
            ),
            (
                len(LengthType::U64Le, 0, 4),
                1024,
                Err(BodyOffsetInsideLength),
            ),
            (len(LengthType::U32Be, 0, 4), 3, Err(HeaderLongerThanMax)),
            (len(LengthType::U32Be, 0, 4), 4, Ok(())),
            (len(LengthType::U8, 0, 10), 9, Err(HeaderLongerThanMax)),
            (len(LengthType::U8, 0, 0), 0, Err(ZeroMaxLength)),
            (
                len(LengthType::U8, usize::MAX, 0),
                1024,
                Err(HeaderLongerThanMax),
            ),
        ];
        for (framing, max, want) in cases {
            let config = StreamConfig {
                framing: framing.clone(),
                package_max_length: max,
            };
            assert_eq!(config.validate(), want, "{framing:?} max={max}");
        }
        for e in [EmptyEof, EofTooLong, EofLongerThanMax, ZeroMaxLength] {
            assert!(!e.to_string().is_empty());
        }
    }
}
