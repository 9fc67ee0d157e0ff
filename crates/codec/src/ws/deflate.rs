//! permessage-deflate (RFC 7692): negotiation, and the compressor/decompressor pair a
//! [`Connection`](super::Connection) uses once it was negotiated.
//!
//! - [`DeflateConfig`]: what this endpoint is willing to do (disabled by default).
//! - [`negotiate`]: server side; picks the first acceptable offer from the client's
//!   `Sec-WebSocket-Extensions` headers and returns the [`DeflateParams`] to answer with.
//!   An offer with an unknown, repeated or out-of-range parameter is declined (skipped), as
//!   RFC 7692 §5 asks.
//! - [`DeflateConfig::offer`] / [`DeflateParams::from_response`]: client side.

use std::fmt::Write as _;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::error::{HandshakeError, WsError};
use super::frame::Role;

/// The extension token.
pub const EXTENSION_NAME: &str = "permessage-deflate";

/// Default for [`DeflateConfig::level`]: 1, the fastest level (as nginx's `gzip_comp_level`).
pub const DEFAULT_DEFLATE_LEVEL: u32 = 1;

/// Default for [`DeflateConfig::threshold`]: messages shorter than 64 bytes are sent
/// uncompressed, since deflate rarely shrinks them.
pub const DEFAULT_DEFLATE_THRESHOLD: usize = 64;

/// What this endpoint accepts and asks for in permessage-deflate negotiation.
///
/// Window sizes are given in bits (the LZ77 window is `1 << bits` bytes). zlib cannot
/// compress with an 8-bit window, so if the peer limits ours to 8 bits the connection is
/// still negotiated but this endpoint sends its messages uncompressed (which RFC 7692 allows).
///
/// # Default
///
/// Disabled; when enabled: 15-bit windows both ways, context takeover both ways, level
/// [`DEFAULT_DEFLATE_LEVEL`], threshold [`DEFAULT_DEFLATE_THRESHOLD`].
///
/// # Examples
///
/// ```
/// use rswoole_codec::ws::{deflate::negotiate, DeflateConfig};
///
/// let config = DeflateConfig { enabled: true, ..DeflateConfig::default() };
/// let offers = ["permessage-deflate; client_max_window_bits"];
/// let params = negotiate(&config, offers).unwrap();
/// assert_eq!(params.to_header_value(), "permessage-deflate");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeflateConfig {
    /// Negotiate permessage-deflate at all. Default `false`.
    pub enabled: bool,
    /// The largest LZ77 window this endpoint compresses with, 9–15. Default 15.
    pub max_window_bits: u8,
    /// The largest window the peer may compress with (limits our inflate memory), 8–15.
    /// A server can impose it only if the client offered `client_max_window_bits`.
    /// Default 15.
    pub peer_max_window_bits: u8,
    /// Reset our compressor after each message (less memory, worse ratio). Default `false`.
    pub no_context_takeover: bool,
    /// Ask the peer to reset its compressor after each message. Default `false`.
    pub peer_no_context_takeover: bool,
    /// Messages shorter than this many bytes are sent uncompressed.
    /// Default [`DEFAULT_DEFLATE_THRESHOLD`].
    pub threshold: usize,
    /// zlib compression level, 0–9. Default [`DEFAULT_DEFLATE_LEVEL`].
    pub level: u32,
}

impl Default for DeflateConfig {
    fn default() -> Self {
        DeflateConfig {
            enabled: false,
            max_window_bits: 15,
            peer_max_window_bits: 15,
            no_context_takeover: false,
            peer_no_context_takeover: false,
            threshold: DEFAULT_DEFLATE_THRESHOLD,
            level: DEFAULT_DEFLATE_LEVEL,
        }
    }
}

/// The negotiated permessage-deflate parameters, as they appear in the server's response.
///
/// `None` window bits mean the parameter is absent (15 bits).
///
/// # Examples
///
/// ```
/// use rswoole_codec::ws::{deflate::negotiate, DeflateConfig, DeflateParams};
///
/// let config = DeflateConfig { enabled: true, ..DeflateConfig::default() };
/// let params = negotiate(&config, ["permessage-deflate; server_no_context_takeover"]).unwrap();
/// assert_eq!(params, DeflateParams { server_no_context_takeover: true, ..DeflateParams::default() });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeflateParams {
    /// The server resets its compressor after each message.
    pub server_no_context_takeover: bool,
    /// The client resets its compressor after each message.
    pub client_no_context_takeover: bool,
    /// The server's compression window, in bits.
    pub server_max_window_bits: Option<u8>,
    /// The client's compression window, in bits.
    pub client_max_window_bits: Option<u8>,
}

impl DeflateParams {
    /// The `Sec-WebSocket-Extensions` value for these parameters.
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_codec::ws::DeflateParams;
    /// let params = DeflateParams { client_max_window_bits: Some(10), ..DeflateParams::default() };
    /// assert_eq!(params.to_header_value(), "permessage-deflate; client_max_window_bits=10");
    /// ```
    pub fn to_header_value(&self) -> String {
        let mut s = String::from(EXTENSION_NAME);
        if self.server_no_context_takeover {
            s.push_str("; server_no_context_takeover");
        }
        if self.client_no_context_takeover {
            s.push_str("; client_no_context_takeover");
        }
        if let Some(b) = self.server_max_window_bits {
            let _ = write!(s, "; server_max_window_bits={b}");
        }
        if let Some(b) = self.client_max_window_bits {
            let _ = write!(s, "; client_max_window_bits={b}");
        }
        s
    }

    /// Client side: checks the server's `Sec-WebSocket-Extensions` response values against
    /// the offer [`DeflateConfig::offer`] made from `config`.
    ///
    /// Returns `Ok(None)` if the server did not accept the extension.
    ///
    /// # Errors
    ///
    /// [`HandshakeError::UnexpectedExtension`] if the server answered with another extension,
    /// with permessage-deflate twice, with invalid parameters, or with window sizes larger than
    /// the client asked for.
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_codec::ws::{DeflateConfig, DeflateParams, HandshakeError};
    ///
    /// let config = DeflateConfig { enabled: true, ..DeflateConfig::default() };
    /// let params = DeflateParams::from_response(&config, ["permessage-deflate"])?;
    /// assert_eq!(params, Some(DeflateParams::default()));
    /// assert_eq!(DeflateParams::from_response(&config, [])?, None); // declined by the server
    /// assert_eq!(
    ///     DeflateParams::from_response(&config, ["x-webkit-deflate-frame"]),
    ///     Err(HandshakeError::UnexpectedExtension)
    /// );
    /// # Ok::<(), HandshakeError>(())
    /// ```
    pub fn from_response<'a, I>(
        config: &DeflateConfig,
        values: I,
    ) -> Result<Option<DeflateParams>, HandshakeError>
    where
        I: IntoIterator<Item = &'a str>,
    {
        let mut found = None;
        for value in values {
            for ext in split_unquoted(value, b',') {
                let mut parts = split_unquoted(ext, b';');
                let name = parts.next().unwrap_or("").trim();
                if name.is_empty() {
                    continue;
                }
                if !config.enabled || !name.eq_ignore_ascii_case(EXTENSION_NAME) || found.is_some()
                {
                    return Err(HandshakeError::UnexpectedExtension);
                }
                let o = Offer::parse(parts).ok_or(HandshakeError::UnexpectedExtension)?;
                let client_bits = match o.client_max_window_bits {
                    Some(Some(b)) if b <= config.max_window_bits => Some(b),
                    Some(_) => return Err(HandshakeError::UnexpectedExtension),
                    None => None,
                };
                if config.peer_max_window_bits < 15
                    && o.server_max_window_bits.unwrap_or(15) > config.peer_max_window_bits
                {
                    return Err(HandshakeError::UnexpectedExtension);
                }
                found = Some(DeflateParams {
                    server_no_context_takeover: o.server_no_context_takeover,
                    client_no_context_takeover: o.client_no_context_takeover,
                    server_max_window_bits: o.server_max_window_bits,
                    client_max_window_bits: client_bits,
                });
            }
        }
        Ok(found)
    }
}

impl DeflateConfig {
    /// Client side: the `Sec-WebSocket-Extensions` offer for this configuration, or `None`
    /// if disabled.
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_codec::ws::DeflateConfig;
    /// assert_eq!(DeflateConfig::default().offer(), None); // disabled
    /// let config = DeflateConfig { enabled: true, no_context_takeover: true, ..DeflateConfig::default() };
    /// assert_eq!(
    ///     config.offer().as_deref(),
    ///     Some("permessage-deflate; client_max_window_bits; client_no_context_takeover")
    /// );
    /// ```
    pub fn offer(&self) -> Option<String> {
        if !self.enabled {
            return None;
        }
        let mut s = String::from(EXTENSION_NAME);
        if self.max_window_bits < 15 {
            let _ = write!(
                s,
                "; client_max_window_bits={}",
                self.max_window_bits.max(9)
            );
        } else {
            s.push_str("; client_max_window_bits");
        }
        if self.peer_max_window_bits < 15 {
            let _ = write!(
                s,
                "; server_max_window_bits={}",
                self.peer_max_window_bits.max(8)
            );
        }
        if self.no_context_takeover {
            s.push_str("; client_no_context_takeover");
        }
        if self.peer_no_context_takeover {
            s.push_str("; server_no_context_takeover");
        }
        Some(s)
    }
}

/// Server side: picks the first acceptable permessage-deflate offer in `values` (the
/// `Sec-WebSocket-Extensions` header values, in order) and returns the parameters to answer
/// with, or `None` if deflate is disabled or no offer is acceptable.
///
/// # Examples
///
/// ```
/// use rswoole_codec::ws::{deflate::negotiate, DeflateConfig};
///
/// let config = DeflateConfig { enabled: true, ..DeflateConfig::default() };
/// // The first offer has an unknown parameter and is declined; the second is taken.
/// let offers = ["permessage-deflate; foo=1, permessage-deflate"];
/// assert!(negotiate(&config, offers).is_some());
/// assert!(negotiate(&DeflateConfig::default(), offers).is_none()); // disabled here
/// ```
pub fn negotiate<'a, I>(config: &DeflateConfig, values: I) -> Option<DeflateParams>
where
    I: IntoIterator<Item = &'a str>,
{
    if !config.enabled {
        return None;
    }
    let own_bits = config.max_window_bits.clamp(9, 15);
    let peer_bits = config.peer_max_window_bits.clamp(8, 15);
    for value in values {
        for ext in split_unquoted(value, b',') {
            let mut parts = split_unquoted(ext, b';');
            if !parts
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case(EXTENSION_NAME)
            {
                continue;
            }
            let Some(o) = Offer::parse(parts) else {
                continue; // invalid offer: decline it, try the next one
            };
            let server_max_window_bits = match o.server_max_window_bits {
                Some(b) => Some(b.min(own_bits)),
                None if own_bits < 15 => Some(own_bits),
                None => None,
            };
            let client_max_window_bits = match o.client_max_window_bits {
                Some(Some(b)) => Some(b.min(peer_bits)),
                Some(None) if peer_bits < 15 => Some(peer_bits),
                _ => None,
            };
            return Some(DeflateParams {
                server_no_context_takeover: o.server_no_context_takeover
                    || config.no_context_takeover,
                client_no_context_takeover: o.client_no_context_takeover
                    || config.peer_no_context_takeover,
                server_max_window_bits,
                client_max_window_bits,
            });
        }
    }
    None
}

/// One parsed offer (or response): `client_max_window_bits` may come with or without a value.
#[derive(Debug, Default, PartialEq, Eq)]
struct Offer {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    client_max_window_bits: Option<Option<u8>>,
}

impl Offer {
    /// Parses the parameters after the extension name; `None` if any is unknown, repeated,
    /// has a value it must not have, or lacks one it needs.
    fn parse<'a>(params: impl Iterator<Item = &'a str>) -> Option<Offer> {
        let mut o = Offer::default();
        for p in params {
            let (name, value) = match p.split_once('=') {
                Some((n, v)) => (n.trim(), Some(unquote(v.trim())?)),
                None => (p.trim(), None),
            };
            match name.to_ascii_lowercase().as_str() {
                "server_no_context_takeover"
                    if value.is_none() && !o.server_no_context_takeover =>
                {
                    o.server_no_context_takeover = true
                }
                "client_no_context_takeover"
                    if value.is_none() && !o.client_no_context_takeover =>
                {
                    o.client_no_context_takeover = true
                }
                "server_max_window_bits" if o.server_max_window_bits.is_none() => {
                    o.server_max_window_bits = Some(window_bits(value?)?)
                }
                "client_max_window_bits" if o.client_max_window_bits.is_none() => {
                    o.client_max_window_bits = Some(match value {
                        Some(v) => Some(window_bits(v)?),
                        None => None,
                    })
                }
                _ => return None,
            }
        }
        Some(o)
    }
}

/// 8–15 as a decimal integer without leading zeros (RFC 7692 §7.1.2).
fn window_bits(v: &str) -> Option<u8> {
    match v {
        "8" => Some(8),
        "9" => Some(9),
        "10" => Some(10),
        "11" => Some(11),
        "12" => Some(12),
        "13" => Some(13),
        "14" => Some(14),
        "15" => Some(15),
        _ => None,
    }
}

/// Strips a quoted-string's quotes; `None` if it contains escapes or is unbalanced (no valid
/// parameter value needs them).
fn unquote(v: &str) -> Option<&str> {
    match v.strip_prefix('"') {
        Some(inner) => {
            let inner = inner.strip_suffix('"')?;
            (!inner.contains(['"', '\\'])).then_some(inner)
        }
        None => Some(v),
    }
}

/// Splits `s` on `sep`, ignoring separators inside quoted strings.
pub(crate) fn split_unquoted(s: &str, sep: u8) -> impl Iterator<Item = &str> {
    let mut rest = Some(s);
    std::iter::from_fn(move || {
        let s = rest?;
        let bytes = s.as_bytes();
        let (mut quoted, mut escaped) = (false, false);
        for (i, &b) in bytes.iter().enumerate() {
            if escaped {
                escaped = false;
            } else if quoted && b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                quoted = !quoted;
            } else if b == sep && !quoted {
                rest = Some(&s[i + 1..]);
                return Some(&s[..i]);
            }
        }
        rest = None;
        Some(s)
    })
}

/// The compressor and decompressor of one connection.
pub(crate) struct DeflateStream {
    /// `None` if the peer limited our window to 8 bits, which zlib cannot produce.
    compress: Option<Compress>,
    compress_reset: bool,
    threshold: usize,
    decompress: Decompress,
    decompress_reset: bool,
    /// The peer ended a deflate stream (BFINAL) inside the current message.
    stream_ended: bool,
    scratch: Vec<u8>,
}

impl std::fmt::Debug for DeflateStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeflateStream")
            .field("compress", &self.compress.is_some())
            .field("compress_reset", &self.compress_reset)
            .field("threshold", &self.threshold)
            .field("decompress_reset", &self.decompress_reset)
            .finish_non_exhaustive()
    }
}

const TRAILER: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

impl DeflateStream {
    pub(crate) fn new(role: Role, params: &DeflateParams, config: &DeflateConfig) -> Self {
        let (own_bits, own_reset, peer_bits, peer_reset) = match role {
            Role::Server => (
                params.server_max_window_bits.unwrap_or(15),
                params.server_no_context_takeover,
                params.client_max_window_bits.unwrap_or(15),
                params.client_no_context_takeover,
            ),
            Role::Client => (
                params.client_max_window_bits.unwrap_or(15),
                params.client_no_context_takeover,
                params.server_max_window_bits.unwrap_or(15),
                params.server_no_context_takeover,
            ),
        };
        let own_bits = own_bits.min(config.max_window_bits.clamp(9, 15));
        let compress = (own_bits >= 9).then(|| {
            Compress::new_with_window_bits(Compression::new(config.level.min(9)), false, own_bits)
        });
        DeflateStream {
            compress,
            compress_reset: own_reset || config.no_context_takeover,
            threshold: config.threshold,
            // A larger window than the peer's always inflates its stream; zlib has no 8.
            decompress: Decompress::new_with_window_bits(false, peer_bits.clamp(9, 15)),
            decompress_reset: peer_reset,
            stream_ended: false,
            scratch: Vec::new(),
        }
    }

    /// Whether either direction keeps its LZ77 window from one message to the next.
    pub(crate) fn carries_context(&self) -> bool {
        (self.compress.is_some() && !self.compress_reset) || !self.decompress_reset
    }

    /// Whether a message of `len` bytes should be sent compressed.
    pub(crate) fn should_compress(&self, len: usize) -> bool {
        self.compress.is_some() && len >= self.threshold
    }

    /// Compresses one whole message; returns the payload (sync-flushed, trailer stripped),
    /// borrowed from an internal buffer.
    pub(crate) fn compress(&mut self, input: &[u8]) -> &[u8] {
        let c = self.compress.as_mut().expect("should_compress checked");
        let out = &mut self.scratch;
        out.clear();
        out.reserve(input.len() / 2 + 64);
        let start = c.total_in();
        loop {
            let consumed = (c.total_in() - start) as usize;
            if out.capacity() - out.len() < 64 {
                out.reserve(out.capacity().max(256));
            }
            c.compress_vec(&input[consumed..], out, FlushCompress::Sync)
                .expect("deflate on valid state cannot fail");
            let consumed = (c.total_in() - start) as usize;
            if consumed == input.len() && out.len() < out.capacity() {
                break;
            }
        }
        if out.ends_with(&TRAILER) {
            out.truncate(out.len() - 4);
        }
        if out.is_empty() {
            // zlib emits nothing for an empty input after a flush; RFC 7692 §7.2.3.6 wants
            // an empty stored block's header, so the receiver's appended trailer parses.
            out.push(0x00);
        }
        if self.compress_reset {
            c.reset();
        }
        &self.scratch
    }

    /// Inflates the next piece of a compressed message, appending to `out`, which may not
    /// grow past `limit` bytes.
    pub(crate) fn decompress(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        limit: usize,
    ) -> Result<(), WsError> {
        let mut input = input;
        while !input.is_empty() || out.len() == out.capacity() {
            if self.stream_ended {
                // Data after a final block: nothing can follow it in this message.
                return if input.is_empty() {
                    Ok(())
                } else {
                    Err(WsError::InvalidCompressedData)
                };
            }
            if out.len() > limit {
                return Err(WsError::MessageTooLarge);
            }
            let room = out.capacity() - out.len();
            if room < 1024 {
                let want = (input.len() * 4).clamp(16 * 1024, 1 << 20);
                out.reserve_exact(want.min(limit + 1 - out.len()).max(1));
            }
            let (before_in, before_out) = (self.decompress.total_in(), out.len());
            let status = self
                .decompress
                .decompress_vec(input, out, FlushDecompress::None)
                .map_err(|_| WsError::InvalidCompressedData)?;
            let consumed = (self.decompress.total_in() - before_in) as usize;
            input = &input[consumed..];
            if out.len() > limit {
                return Err(WsError::MessageTooLarge);
            }
            match status {
                Status::StreamEnd => self.stream_ended = true,
                Status::Ok | Status::BufError => {
                    if consumed == 0 && out.len() == before_out {
                        if input.is_empty() {
                            break;
                        }
                        if out.len() < out.capacity() {
                            return Err(WsError::InvalidCompressedData);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Ends a compressed message: feeds the stripped `00 00 ff ff` back and resets the
    /// decompressor if the peer does not take over context.
    pub(crate) fn finish_message(
        &mut self,
        out: &mut Vec<u8>,
        limit: usize,
    ) -> Result<(), WsError> {
        if !self.stream_ended {
            self.decompress(&TRAILER, out, limit)?;
        }
        if self.decompress_reset || self.stream_ended {
            self.decompress.reset(false);
            self.stream_ended = false;
        }
        Ok(())
    }

    /// Forgets a partly inflated message (the connection is failing).
    pub(crate) fn abort_message(&mut self) {
        self.decompress.reset(false);
        self.stream_ended = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on() -> DeflateConfig {
        DeflateConfig {
            enabled: true,
            ..DeflateConfig::default()
        }
    }

    #[test]
    fn ws_deflate_negotiate_table() {
        let cases: &[(&[&str], Option<&str>)] = &[
            (&["permessage-deflate"], Some("permessage-deflate")),
            (&["x-webkit-deflate-frame"], None),
            (
                &["permessage-deflate; client_max_window_bits"],
                Some("permessage-deflate"),
            ),
            (
                &["permessage-deflate; client_max_window_bits=10"],
                Some("permessage-deflate; client_max_window_bits=10"),
            ),
            (
                &["permessage-deflate; server_max_window_bits=9"],
                Some("permessage-deflate; server_max_window_bits=9"),
            ),
            (
                &["permessage-deflate; server_no_context_takeover; client_no_context_takeover"],
                Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
            ),
            (
                &["permessage-deflate; server_max_window_bits=\"12\""],
                Some("permessage-deflate; server_max_window_bits=12"),
            ),
            // invalid offers are declined; the next acceptable one wins
            (&["permessage-deflate; server_max_window_bits"], None),
            (&["permessage-deflate; server_max_window_bits=7"], None),
            (&["permessage-deflate; server_max_window_bits=16"], None),
            (&["permessage-deflate; server_max_window_bits=010"], None),
            (&["permessage-deflate; client_max_window_bits=0x0f"], None),
            (&["permessage-deflate; server_no_context_takeover=1"], None),
            (
                &["permessage-deflate; client_no_context_takeover; client_no_context_takeover"],
                None,
            ),
            (&["permessage-deflate; foo"], None),
            (
                &["permessage-deflate; foo, permessage-deflate; server_no_context_takeover"],
                Some("permessage-deflate; server_no_context_takeover"),
            ),
            (
                &[
                    "foo; a=\"x,y\"",
                    "permessage-deflate;server_max_window_bits=10,permessage-deflate",
                ],
                Some("permessage-deflate; server_max_window_bits=10"),
            ),
        ];
        for &(offers, want) in cases {
            let got = negotiate(&on(), offers.iter().copied()).map(|p| p.to_header_value());
            assert_eq!(got.as_deref(), want, "{offers:?}");
        }
        assert_eq!(
            negotiate(&DeflateConfig::default(), ["permessage-deflate"]),
            None
        );
    }

    #[test]
    fn ws_deflate_negotiate_with_config() {
        let cfg = DeflateConfig {
            max_window_bits: 10,
            peer_max_window_bits: 11,
            no_context_takeover: true,
            peer_no_context_takeover: true,
            ..on()
        };
        let p = negotiate(&cfg, ["permessage-deflate; client_max_window_bits"]).unwrap();
        assert_eq!(
            p.to_header_value(),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=10; client_max_window_bits=11"
        );
        // Without client_max_window_bits in the offer, the server may not send it.
        let p = negotiate(&cfg, ["permessage-deflate"]).unwrap();
        assert_eq!(p.client_max_window_bits, None);
    }

    #[test]
    fn ws_deflate_client_offer_and_response() {
        let cfg = DeflateConfig {
            peer_max_window_bits: 10,
            ..on()
        };
        let offer = cfg.offer().unwrap();
        assert_eq!(
            offer,
            "permessage-deflate; client_max_window_bits; server_max_window_bits=10"
        );
        // The server's own negotiate() answer is accepted by the client.
        let answer = negotiate(&on(), [offer.as_str()])
            .unwrap()
            .to_header_value();
        let p = DeflateParams::from_response(&cfg, [answer.as_str()])
            .unwrap()
            .unwrap();
        assert_eq!(p.server_max_window_bits, Some(10));
        assert_eq!(
            DeflateParams::from_response(&cfg, ["permessage-deflate"]),
            Err(HandshakeError::UnexpectedExtension)
        );
        assert_eq!(
            DeflateParams::from_response(&cfg, ["x-foo"]),
            Err(HandshakeError::UnexpectedExtension)
        );
        assert_eq!(
            DeflateParams::from_response(&cfg, Vec::<&str>::new()),
            Ok(None)
        );
    }

    fn round_trip(params: DeflateParams, msgs: &[&[u8]]) {
        let cfg = DeflateConfig {
            threshold: 0,
            ..on()
        };
        let mut server = DeflateStream::new(Role::Server, &params, &cfg);
        let mut client = DeflateStream::new(Role::Client, &params, &cfg);
        for m in msgs {
            let wire = server.compress(m).to_vec();
            let mut out = Vec::new();
            // feed in two pieces, as frames would arrive
            let half = wire.len() / 2;
            client.decompress(&wire[..half], &mut out, 1 << 20).unwrap();
            client.decompress(&wire[half..], &mut out, 1 << 20).unwrap();
            client.finish_message(&mut out, 1 << 20).unwrap();
            assert_eq!(&out[..], *m);
        }
    }

    #[test]
    fn ws_deflate_round_trip_context_takeover() {
        let msgs: &[&[u8]] = &[
            b"Hello, hello, hello!",
            b"",
            b"Hello, hello, hello!",
            &[0u8; 70000],
        ];
        round_trip(DeflateParams::default(), msgs);
        round_trip(
            DeflateParams {
                server_no_context_takeover: true,
                client_no_context_takeover: true,
                server_max_window_bits: Some(9),
                client_max_window_bits: Some(9),
            },
            msgs,
        );
    }

    #[test]
    fn ws_deflate_context_takeover_shrinks_repeats() {
        let params = DeflateParams::default();
        let cfg = on();
        let mut s = DeflateStream::new(Role::Server, &params, &cfg);
        let msg = b"The quick brown fox jumps over the lazy dog, again and again.";
        let first = s.compress(msg).len();
        let second = s.compress(msg).len();
        assert!(second < first, "{second} < {first}");
        let params = DeflateParams {
            server_no_context_takeover: true,
            ..params
        };
        let mut s = DeflateStream::new(Role::Server, &params, &cfg);
        let first = s.compress(msg).to_vec();
        assert_eq!(s.compress(msg), &first[..]);
    }

    #[test]
    fn ws_deflate_bomb_is_bounded() {
        let mut s = DeflateStream::new(Role::Server, &DeflateParams::default(), &on());
        let wire = s.compress(&[b'a'; 1 << 20]).to_vec();
        let mut c = DeflateStream::new(Role::Client, &DeflateParams::default(), &on());
        let mut out = Vec::new();
        let r = c
            .decompress(&wire, &mut out, 1000)
            .and_then(|_| c.finish_message(&mut out, 1000));
        assert_eq!(r, Err(WsError::MessageTooLarge));
        assert!(out.capacity() <= 1001 + 16 * 1024, "{}", out.capacity());
    }

    #[test]
    fn ws_deflate_garbage_is_rejected() {
        let mut c = DeflateStream::new(Role::Client, &DeflateParams::default(), &on());
        let mut out = Vec::new();
        let r = c
            .decompress(&[0xff; 16], &mut out, 1 << 20)
            .and_then(|_| c.finish_message(&mut out, 1 << 20));
        assert_eq!(r, Err(WsError::InvalidCompressedData));
    }

    #[test]
    fn ws_deflate_window_8_means_uncompressed() {
        let params = DeflateParams {
            server_max_window_bits: Some(8),
            ..DeflateParams::default()
        };
        let s = DeflateStream::new(Role::Server, &params, &on());
        assert!(!s.should_compress(1000));
    }
}
