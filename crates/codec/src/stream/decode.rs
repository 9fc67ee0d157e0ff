//! [`Decoder`]: the resumable stream-framing state machine.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use memchr::memmem::Finder;

use super::config::{ConfigError, Framing, LengthSpec, StreamConfig, MAX_EOF_LEN};
use super::error::FrameError;

/// A custom length function (Swoole's `package_length_func`) for [`Framing::LengthFn`].
///
/// It is given every buffered byte, starting at the first byte of the next packet, and says how
/// long that packet is. It is called again on each [`Decoder::decode`] until it returns
/// [`LengthResult::Total`]; after that it is not called again until that packet is complete.
///
/// # Examples
///
/// ```
/// use rswoole_codec::stream::LengthResult;
///
/// /// Packets start with a decimal length and a ':', e.g. `5:hello`.
/// fn netstring_like(buf: &[u8]) -> LengthResult {
///     let Some(colon) = buf.iter().take(8).position(|&b| b == b':') else {
///         return if buf.len() < 8 { LengthResult::NeedMore } else { LengthResult::Invalid };
///     };
///     match std::str::from_utf8(&buf[..colon]).ok().and_then(|s| s.parse::<usize>().ok()) {
///         Some(n) => LengthResult::Total(colon + 1 + n),
///         None => LengthResult::Invalid,
///     }
/// }
/// assert_eq!(netstring_like(b"5:hel"), LengthResult::Total(7));
/// assert_eq!(netstring_like(b"12"), LengthResult::NeedMore);
/// assert_eq!(netstring_like(b"x:"), LengthResult::Invalid);
/// ```
pub type LengthFn = fn(&[u8]) -> LengthResult;

/// What a [`LengthFn`] found at the start of the buffer.
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use rswoole_codec::stream::{Decoder, Framing, LengthResult, StreamConfig};
///
/// // The first byte is the total packet length.
/// fn first_byte(buf: &[u8]) -> LengthResult {
///     match buf.first() {
///         Some(&n) => LengthResult::Total(n.into()),
///         None => LengthResult::NeedMore,
///     }
/// }
/// let mut decoder = Decoder::new(&StreamConfig::new(Framing::LengthFn(first_byte)))?;
/// let mut buf = BytesMut::from(&b"\x03ab\x04c"[..]);
/// assert_eq!(decoder.decode(&mut buf)?.as_deref(), Some(&b"\x03ab"[..]));
/// assert_eq!(decoder.decode(&mut buf)?, None); // second packet incomplete
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LengthResult {
    /// The packet is this many bytes long, header included. 0 is treated as
    /// [`Invalid`](Self::Invalid); more than `package_max_length` is
    /// [`FrameError::TooLong`].
    Total(usize),
    /// Not enough bytes yet to tell the length.
    NeedMore,
    /// The bytes cannot start a packet: [`FrameError::InvalidLength`].
    Invalid,
}

/// Cuts a byte stream into messages according to a [`StreamConfig`]. I/O-free and resumable.
///
/// The caller appends what it reads to one `BytesMut` per connection and calls
/// [`decode`](Self::decode) until it returns `Ok(None)`. Each message is split off the front of
/// the buffer without copying. Create one decoder with [`new`](Self::new) at start-up (that
/// validates the settings) and [`clone`](Clone::clone) it for each connection: a clone is cheap
/// and shares the compiled EOF searcher.
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use rswoole_codec::stream::{Decoder, Framing, StreamConfig};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let config = StreamConfig::new(Framing::Eof { eof: b"\r\n".to_vec(), split: true });
/// let mut decoder = Decoder::new(&config)?;
///
/// // Two messages and a half arrive in one read...
/// let mut buf = BytesMut::from(&b"PING\r\nECHO hi\r\nQU"[..]);
/// assert_eq!(decoder.decode(&mut buf)?.as_deref(), Some(&b"PING\r\n"[..]));
/// assert_eq!(decoder.decode(&mut buf)?.as_deref(), Some(&b"ECHO hi\r\n"[..]));
/// assert_eq!(decoder.decode(&mut buf)?, None); // need more
///
/// // ...and the rest in the next one.
/// buf.extend_from_slice(b"IT\r\n");
/// assert_eq!(decoder.decode(&mut buf)?.as_deref(), Some(&b"QUIT\r\n"[..]));
/// assert!(buf.is_empty());
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Decoder {
    mode: Mode,
    /// `package_max_length`.
    max: usize,
    /// EOF split: no EOF starts before this offset of the buffer (where the next search resumes).
    pub(super) searched: usize,
    /// Length framings: total length of the packet at the front, once its header was read.
    pending: Option<usize>,
}

#[derive(Clone, Debug)]
enum Mode {
    Raw,
    /// `open_eof_split`: search for the first EOF, resuming where the last search stopped.
    EofSplit(Arc<Finder<'static>>),
    /// `open_eof_check` alone: deliver the whole buffer when it ends with the EOF.
    EofTail {
        eof: [u8; MAX_EOF_LEN],
        len: usize,
    },
    Length(LengthSpec),
    LengthFn(LengthFn),
}

impl Decoder {
    /// Validates `config` and builds a decoder for it.
    ///
    /// # Errors
    ///
    /// Whatever [`StreamConfig::validate`] returns.
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_codec::stream::{ConfigError, Decoder, Framing, StreamConfig};
    /// let decoder = Decoder::new(&StreamConfig::new(Framing::Raw))?;
    /// assert_eq!(decoder.pending_len(), None);
    /// let empty_eof = StreamConfig::new(Framing::Eof { eof: Vec::new(), split: true });
    /// assert_eq!(Decoder::new(&empty_eof).unwrap_err(), ConfigError::EmptyEof);
    /// # Ok::<(), ConfigError>(())
    /// ```
    pub fn new(config: &StreamConfig) -> Result<Decoder, ConfigError> {
        config.validate()?;
        let mode = match &config.framing {
            Framing::Raw => Mode::Raw,
            Framing::Eof { eof, split: true } => {
                Mode::EofSplit(Arc::new(Finder::new(eof.as_slice()).into_owned()))
            }
            Framing::Eof { eof, split: false } => {
                let mut buf = [0; MAX_EOF_LEN];
                buf[..eof.len()].copy_from_slice(eof);
                Mode::EofTail {
                    eof: buf,
                    len: eof.len(),
                }
            }
            Framing::Length(spec) => Mode::Length(*spec),
            Framing::LengthFn(f) => Mode::LengthFn(*f),
        };
        Ok(Decoder {
            mode,
            max: config.package_max_length,
            searched: 0,
            pending: None,
        })
    }

    /// Takes the next complete message off the front of `src`.
    ///
    /// Returns `Ok(Some(message))` and removes it from `src`, or `Ok(None)` when more bytes
    /// are needed (then nothing is removed). Call it again after `Ok(Some(_))`: one read may
    /// hold many messages. Between calls, only append to `src` (or call
    /// [`reset`](Self::reset) after changing it otherwise): the decoder remembers how far it
    /// has looked, so it never rescans bytes.
    ///
    /// What a message is depends on the [`Framing`]:
    ///
    /// - `Raw`: everything buffered, if anything.
    /// - `Eof { split: true }`: up to and including the first EOF.
    /// - `Eof { split: false }`: everything buffered, if it ends with the EOF (as Swoole, the
    ///   result depends on where reads happened to end).
    /// - `Length`, `LengthFn`: the packet whose total length the header gives, header
    ///   included.
    ///
    /// # Errors
    ///
    /// - [`FrameError::TooLong`]: the message would exceed `package_max_length` (reported as
    ///   soon as that is known, before its body is buffered).
    /// - [`FrameError::InvalidLength`]: see its doc.
    ///
    /// After an error the stream cannot be resynchronised: close the connection.
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use rswoole_codec::stream::{Decoder, FrameError, Framing, StreamConfig};
    ///
    /// let config = StreamConfig {
    ///     framing: Framing::Eof { eof: b"\n".to_vec(), split: true },
    ///     package_max_length: 8,
    /// };
    /// let mut decoder = Decoder::new(&config)?;
    /// let mut buf = BytesMut::from(&b"ok\nthis line is too long"[..]);
    /// assert_eq!(decoder.decode(&mut buf)?.as_deref(), Some(&b"ok\n"[..]));
    /// assert_eq!(decoder.decode(&mut buf), Err(FrameError::TooLong));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        match &self.mode {
            Mode::Raw => Ok(if src.is_empty() {
                None
            } else {
                Some(src.split().freeze())
            }),
            Mode::EofSplit(finder) => {
                let eof_len = finder.needle().len();
                // A message may not be longer than max, so its EOF must end within max bytes.
                let limit = src.len().min(self.max);
                let start = self.searched.min(limit);
                if let Some(i) = finder.find(&src[start..limit]) {
                    self.searched = 0;
                    return Ok(Some(src.split_to(start + i + eof_len).freeze()));
                }
                if src.len() >= self.max {
                    return Err(FrameError::TooLong);
                }
                // The last eof_len - 1 bytes may be the start of an EOF: look at them again.
                self.searched = limit.saturating_sub(eof_len - 1);
                Ok(None)
            }
            Mode::EofTail { eof, len } => {
                let n = src.len();
                if n <= self.max && src.ends_with(&eof[..*len]) {
                    Ok(Some(src.split().freeze()))
                } else if n >= self.max {
                    Err(FrameError::TooLong)
                } else {
                    Ok(None)
                }
            }
            Mode::Length(spec) => {
                let total = match self.pending {
                    Some(total) => total,
                    None => {
                        let Some(total) = read_total(spec, self.max, src)? else {
                            return Ok(None);
                        };
                        self.pending = Some(total);
                        total
                    }
                };
                Ok(self.take(src, total))
            }
            Mode::LengthFn(f) => {
                let total = match self.pending {
                    Some(total) => total,
                    None => {
                        let total = match f(&src[..]) {
                            LengthResult::Total(0) | LengthResult::Invalid => {
                                return Err(FrameError::InvalidLength)
                            }
                            LengthResult::Total(t) if t > self.max => {
                                return Err(FrameError::TooLong)
                            }
                            LengthResult::Total(t) => t,
                            LengthResult::NeedMore if src.len() >= self.max => {
                                return Err(FrameError::TooLong)
                            }
                            LengthResult::NeedMore => return Ok(None),
                        };
                        self.pending = Some(total);
                        total
                    }
                };
                Ok(self.take(src, total))
            }
        }
    }

    /// Splits off the pending packet of `total` bytes once it is all buffered.
    #[inline]
    fn take(&mut self, src: &mut BytesMut, total: usize) -> Option<Bytes> {
        if src.len() < total {
            return None;
        }
        self.pending = None;
        Some(src.split_to(total).freeze())
    }

    /// Length of the message being assembled, header included, once its header has been read
    /// (length framings only); `None` otherwise.
    ///
    /// A server can use it to reserve the buffer once instead of growing it read by read.
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use rswoole_codec::stream::{Decoder, Framing, LengthSpec, LengthType, StreamConfig};
    ///
    /// let spec = LengthSpec::new(LengthType::U16Be, 0, 2);
    /// let mut decoder = Decoder::new(&StreamConfig::new(Framing::Length(spec)))?;
    /// let mut buf = BytesMut::from(&b"\x00\x0aabc"[..]); // 10-byte body, 3 bytes so far
    /// assert_eq!(decoder.decode(&mut buf)?, None);
    /// assert_eq!(decoder.pending_len(), Some(12));
    /// buf.reserve(12 - buf.len());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pending_len(&self) -> Option<usize> {
        self.pending
    }

    /// `package_max_length` of this decoder.
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_codec::stream::{Decoder, Framing, StreamConfig};
    /// let config = StreamConfig { framing: Framing::Raw, package_max_length: 1024 };
    /// assert_eq!(Decoder::new(&config)?.max_length(), 1024);
    /// # Ok::<(), rswoole_codec::stream::ConfigError>(())
    /// ```
    pub fn max_length(&self) -> usize {
        self.max
    }

    /// Forgets what was learnt about the buffer (how far the EOF search got, the pending
    /// packet length). Call it after removing or changing buffered bytes other than through
    /// [`decode`](Self::decode), e.g. when reusing the decoder for a new connection.
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use rswoole_codec::stream::{Decoder, Framing, LengthSpec, LengthType, StreamConfig};
    ///
    /// let spec = LengthSpec::new(LengthType::U8, 0, 1);
    /// let mut decoder = Decoder::new(&StreamConfig::new(Framing::Length(spec)))?;
    /// let mut buf = BytesMut::from(&b"\x05ab"[..]);
    /// assert_eq!(decoder.decode(&mut buf)?, None);
    /// // The connection is reused for a new peer: drop the stale bytes and forget them.
    /// buf.clear();
    /// decoder.reset();
    /// buf.extend_from_slice(b"\x01z");
    /// assert_eq!(decoder.decode(&mut buf)?.as_deref(), Some(&b"\x01z"[..]));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn reset(&mut self) {
        self.searched = 0;
        self.pending = None;
    }
}

/// Reads the total packet length from the header at the front of `src`: `Ok(None)` if the
/// length field is not all buffered yet.
#[inline]
fn read_total(spec: &LengthSpec, max: usize, src: &[u8]) -> Result<Option<usize>, FrameError> {
    let end = spec.length_end();
    if src.len() < end {
        return Ok(None);
    }
    let value = spec
        .length_type
        .read(&src[spec.length_offset..end])
        .ok_or(FrameError::InvalidLength)?;
    // Swoole: the whole packet is body_offset + value bytes.
    let total = match value.checked_add(spec.body_offset as u64) {
        Some(t) if t <= max as u64 => t as usize,
        _ => return Err(FrameError::TooLong),
    };
    if total < end {
        // Only possible with body_offset == 0: a packet cannot end inside its own length field.
        return Err(FrameError::InvalidLength);
    }
    Ok(Some(total))
}
