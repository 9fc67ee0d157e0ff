//! Body framing: `Content-Length` and `chunked` (with extensions and trailers).
//!
//! [`BodyDecoder`] is driven by [`RequestDecoder`](super::RequestDecoder); it hands out body
//! bytes as they arrive and never buffers a whole body. Chunk framing bytes (sizes, extensions,
//! CRLFs) are consumed as they are read and remembered in the state, so a chunk size split
//! across two reads is resumed, not re-read.
//!
//! Chunk framing is strict: each line ends in CRLF (a bare LF is an error, unlike in the head
//! where `httparse` accepts it), the size is `1*HEXDIG` optionally followed by spaces or tabs,
//! and extensions (`;name=value`) are skipped but counted against
//! [`Limits::max_chunk_extensions`](super::Limits::max_chunk_extensions).

use bytes::{Buf, Bytes, BytesMut};

use super::error::ParseError;
use super::request::Limits;

/// Trailer fields of a chunked body: lower-cased names and raw values, in arrival order.
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use rswoole_codec::http1::{Event, RequestDecoder};
///
/// let mut dec = RequestDecoder::default();
/// let mut buf = BytesMut::from(
///     "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\nX-Sum: 42\r\n\r\n",
/// );
/// let mut trailers = None;
/// while let Some(ev) = dec.decode(&mut buf)? {
///     if let Event::End { trailers: t } = ev {
///         trailers = Some(t);
///     }
/// }
/// let trailers = trailers.unwrap();
/// assert_eq!(trailers.len(), 1);
/// assert_eq!((&trailers[0].0[..], &trailers[0].1[..]), (&b"x-sum"[..], &b"42"[..]));
/// # Ok::<(), rswoole_codec::http1::ParseError>(())
/// ```
pub type Trailers = Vec<(Bytes, Bytes)>;

/// How many trailer fields fit the parse array; more is [`ParseError::TrailersTooLarge`].
const MAX_TRAILER_FIELDS: usize = 32;

/// What one step of body decoding produced.
#[derive(Debug)]
pub(crate) enum BodyEvent {
    /// Some body bytes.
    Data(Bytes),
    /// The body is complete.
    Done(Trailers),
}

/// Decodes one message body.
#[derive(Debug, Clone)]
pub(crate) enum BodyDecoder {
    /// `Content-Length` framing (and "no body", which is length 0).
    Length { remaining: u64 },
    /// `Transfer-Encoding: chunked` framing.
    Chunked(Chunked),
}

/// Where the chunked decoder is in the grammar of RFC 9112 §7.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Reading the hex digits of a chunk size.
    Size,
    /// Spaces or tabs after the size digits.
    SizeLws,
    /// Inside `;ext=val`, skipping up to the CR.
    Extension,
    /// Saw the CR that ends the size line; expecting LF.
    SizeLf,
    /// Reading chunk data; `size` bytes remain.
    Data,
    /// Expecting the CR after chunk data.
    DataCr,
    /// Expecting the LF after chunk data.
    DataLf,
    /// After the last chunk: the trailer section up to its empty line.
    Trailers,
    /// The body is complete.
    Done,
}

/// The chunked decoder's state.
#[derive(Debug, Clone)]
pub(crate) struct Chunked {
    state: ChunkState,
    /// While in `Size`: the value so far; in `Data`: the bytes left in this chunk.
    size: u64,
    /// Hex digits seen in the current size.
    digits: u8,
    /// Body bytes announced so far (sum of chunk sizes).
    total: u64,
    /// Extension bytes seen so far in this body.
    ext_len: usize,
}

impl BodyDecoder {
    /// A decoder for a body of exactly `len` bytes.
    pub(crate) fn length(len: u64) -> Self {
        BodyDecoder::Length { remaining: len }
    }

    /// A decoder for a chunked body.
    pub(crate) fn chunked() -> Self {
        BodyDecoder::Chunked(Chunked {
            state: ChunkState::Size,
            size: 0,
            digits: 0,
            total: 0,
            ext_len: 0,
        })
    }

    /// Decodes the next piece of body. `Ok(None)` means more bytes are needed.
    pub(crate) fn decode(
        &mut self,
        src: &mut BytesMut,
        limits: &Limits,
    ) -> Result<Option<BodyEvent>, ParseError> {
        match self {
            BodyDecoder::Length { remaining } => {
                if *remaining == 0 {
                    return Ok(Some(BodyEvent::Done(Vec::new())));
                }
                if src.is_empty() {
                    return Ok(None);
                }
                let take = usize::try_from(*remaining).map_or(src.len(), |r| r.min(src.len()));
                *remaining -= take as u64;
                Ok(Some(BodyEvent::Data(src.split_to(take).freeze())))
            }
            BodyDecoder::Chunked(c) => c.decode(src, limits),
        }
    }
}

impl Chunked {
    fn decode(
        &mut self,
        src: &mut BytesMut,
        limits: &Limits,
    ) -> Result<Option<BodyEvent>, ParseError> {
        loop {
            if self.state == ChunkState::Trailers {
                return self.trailers(src, limits);
            }
            if self.state == ChunkState::Done {
                return Ok(Some(BodyEvent::Done(Vec::new())));
            }
            if self.state == ChunkState::Data {
                if src.is_empty() {
                    return Ok(None);
                }
                let take = usize::try_from(self.size).map_or(src.len(), |r| r.min(src.len()));
                self.size -= take as u64;
                if self.size == 0 {
                    self.state = ChunkState::DataCr;
                }
                return Ok(Some(BodyEvent::Data(src.split_to(take).freeze())));
            }
            if self.state == ChunkState::Extension {
                let Some(i) = memchr::memchr2(b'\r', b'\n', src) else {
                    self.count_ext(src.len(), limits)?;
                    src.clear();
                    return Ok(None);
                };
                self.count_ext(i, limits)?;
                if src[i] == b'\n' {
                    return Err(ParseError::InvalidChunk);
                }
                src.advance(i + 1);
                self.state = ChunkState::SizeLf;
                continue;
            }
            let Some(&b) = src.first() else {
                return Ok(None);
            };
            src.advance(1);
            self.state = match (self.state, b) {
                (ChunkState::Size, _) if b.is_ascii_hexdigit() => {
                    let d = (b as char).to_digit(16).unwrap_or(0) as u64;
                    self.size = self
                        .size
                        .checked_mul(16)
                        .and_then(|s| s.checked_add(d))
                        .ok_or(ParseError::ChunkSizeOverflow)?;
                    self.digits = self.digits.saturating_add(1);
                    ChunkState::Size
                }
                (ChunkState::Size, b' ' | b'\t') if self.digits > 0 => ChunkState::SizeLws,
                (ChunkState::Size | ChunkState::SizeLws, b';') if self.digits > 0 => {
                    self.count_ext(1, limits)?;
                    ChunkState::Extension
                }
                (ChunkState::Size | ChunkState::SizeLws, b'\r') if self.digits > 0 => {
                    ChunkState::SizeLf
                }
                (ChunkState::SizeLws, b' ' | b'\t') => ChunkState::SizeLws,
                (ChunkState::Size | ChunkState::SizeLws, _) => {
                    return Err(ParseError::InvalidChunkSize)
                }
                (ChunkState::SizeLf, b'\n') => {
                    self.digits = 0;
                    if self.size == 0 {
                        ChunkState::Trailers
                    } else {
                        self.total = self
                            .total
                            .checked_add(self.size)
                            .ok_or(ParseError::BodyTooLarge)?;
                        if self.total > limits.max_body {
                            return Err(ParseError::BodyTooLarge);
                        }
                        ChunkState::Data
                    }
                }
                (ChunkState::DataCr, b'\r') => ChunkState::DataLf,
                (ChunkState::DataLf, b'\n') => {
                    self.size = 0;
                    ChunkState::Size
                }
                _ => return Err(ParseError::InvalidChunk),
            };
        }
    }

    fn count_ext(&mut self, n: usize, limits: &Limits) -> Result<(), ParseError> {
        self.ext_len = self.ext_len.saturating_add(n);
        if self.ext_len > limits.max_chunk_extensions {
            return Err(ParseError::ChunkExtensionsTooLarge);
        }
        Ok(())
    }

    fn trailers(
        &mut self,
        src: &mut BytesMut,
        limits: &Limits,
    ) -> Result<Option<BodyEvent>, ParseError> {
        let mut fields = [httparse::EMPTY_HEADER; MAX_TRAILER_FIELDS];
        // Parse only up to the limit, so the outcome does not depend on how reads split.
        let window = &src[..src.len().min(limits.max_trailer_bytes)];
        let (len, spans) = match httparse::parse_headers(window, &mut fields) {
            Ok(httparse::Status::Complete((len, parsed))) => {
                if parsed.len() > limits.max_headers {
                    return Err(ParseError::TrailersTooLarge);
                }
                let base = window.as_ptr() as usize;
                let spans: Vec<_> = parsed
                    .iter()
                    .map(|h| {
                        let n = h.name.as_ptr() as usize - base;
                        let v = h.value.as_ptr() as usize - base;
                        (n..n + h.name.len(), v..v + h.value.len())
                    })
                    .collect();
                (len, spans)
            }
            Ok(httparse::Status::Partial) => {
                if src.len() > limits.max_trailer_bytes {
                    return Err(ParseError::TrailersTooLarge);
                }
                return Ok(None);
            }
            Err(httparse::Error::TooManyHeaders) => return Err(ParseError::TrailersTooLarge),
            Err(_) => return Err(ParseError::InvalidTrailer),
        };
        for (name, _) in &spans {
            src[name.clone()].make_ascii_lowercase();
        }
        let section = src.split_to(len).freeze();
        self.state = ChunkState::Done;
        let trailers = spans
            .into_iter()
            .map(|(n, v)| (section.slice(n), section.slice(v)))
            .collect();
        Ok(Some(BodyEvent::Done(trailers)))
    }
}
