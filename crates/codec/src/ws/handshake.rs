//! The HTTP/1.1 upgrade handshake (RFC 6455 §4), independent of any HTTP type.
//!
//! Headers are passed as `(name, value)` pairs; names are compared case-insensitively, so
//! `httparse::Header`s map straight in (`(h.name, h.value)`).
//!
//! Server side:
//! 1. [`UpgradeRequest::parse`] validates the request and keeps the key, the offered
//!    subprotocols and the extension offers.
//! 2. [`UpgradeRequest::accept`] picks a subprotocol and negotiates permessage-deflate,
//!    giving an [`Accept`] whose [`write_response`](Accept::write_response) writes the `101`.
//! 3. On error, [`write_reject`] writes the `400`/`426`.
//!
//! Client side: [`generate_key`], [`write_request`], [`validate_response`].

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::{BufMut, BytesMut};
use sha1::{Digest, Sha1};

use super::deflate::{negotiate, split_unquoted, DeflateConfig, DeflateParams};
use super::error::HandshakeError;

/// The GUID appended to the key before hashing (RFC 6455 §1.3).
pub const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The only protocol version this codec speaks.
pub const VERSION: &str = "13";

/// Computes `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`:
/// base64(SHA-1(key ++ [`GUID`])).
///
/// # Examples
///
/// ```
/// use rswoole_codec::ws::accept_key;
///
/// // RFC 6455 §1.3
/// assert_eq!(accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
/// ```
pub fn accept_key(key: &[u8]) -> String {
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(GUID.as_bytes());
    STANDARD.encode(sha.finalize())
}

/// Client side: the `Sec-WebSocket-Key` for 16 random bytes the caller supplies (from a
/// CSPRNG or the OS; this crate has no randomness source).
///
/// # Examples
///
/// ```
/// use rswoole_codec::ws::generate_key;
/// assert_eq!(generate_key([7; 16]), "BwcHBwcHBwcHBwcHBwcHBw==");
/// ```
pub fn generate_key(random: [u8; 16]) -> String {
    STANDARD.encode(random)
}

/// Whether a comma-separated header value contains `token` (case-insensitive).
fn has_token(value: &[u8], token: &str) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// A validated WebSocket upgrade request, borrowing from the request's headers.
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use rswoole_codec::ws::{DeflateConfig, UpgradeRequest};
///
/// let headers: &[(&str, &[u8])] = &[
///     ("host", b"example.com"),
///     ("upgrade", b"websocket"),
///     ("connection", b"keep-alive, Upgrade"),
///     ("sec-websocket-key", b"dGhlIHNhbXBsZSBub25jZQ=="),
///     ("sec-websocket-version", b"13"),
///     ("sec-websocket-protocol", b"chat, superchat"),
/// ];
/// let req = UpgradeRequest::parse("GET", 1, headers.iter().copied()).unwrap();
/// let accept = req.accept(&["superchat"], &DeflateConfig::default());
/// assert_eq!(accept.protocol.as_deref(), Some("superchat"));
///
/// let mut out = BytesMut::new();
/// accept.write_response(&mut out);
/// assert!(out.starts_with(b"HTTP/1.1 101 Switching Protocols\r\n"));
/// assert!(std::str::from_utf8(&out).unwrap()
///     .contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
/// ```
#[derive(Debug, Clone)]
pub struct UpgradeRequest<'a> {
    key: &'a [u8],
    protocols: Vec<&'a str>,
    extensions: Vec<&'a str>,
}

impl<'a> UpgradeRequest<'a> {
    /// Validates an upgrade request from its method, HTTP/1.x minor version (`1` for
    /// HTTP/1.1, as `httparse` reports it) and headers.
    ///
    /// # Errors
    ///
    /// The first problem found, in the order: method, version, `Upgrade`, `Connection`,
    /// `Sec-WebSocket-Version`, `Sec-WebSocket-Key` (see [`HandshakeError`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_codec::ws::{HandshakeError, UpgradeRequest};
    ///
    /// let headers: [(&str, &[u8]); 4] = [
    ///     ("upgrade", b"websocket"),
    ///     ("connection", b"Upgrade"),
    ///     ("sec-websocket-key", b"dGhlIHNhbXBsZSBub25jZQ=="),
    ///     ("sec-websocket-version", b"13"),
    /// ];
    /// let req = UpgradeRequest::parse("GET", 1, headers)?;
    /// assert_eq!(req.key(), b"dGhlIHNhbXBsZSBub25jZQ==");
    /// assert_eq!(UpgradeRequest::parse("POST", 1, headers).unwrap_err(), HandshakeError::MethodNotGet);
    /// assert_eq!(UpgradeRequest::parse("GET", 1, headers[..3].iter().copied()).unwrap_err().status(), 426);
    /// # Ok::<(), HandshakeError>(())
    /// ```
    pub fn parse<I>(method: &str, version: u8, headers: I) -> Result<Self, HandshakeError>
    where
        I: IntoIterator<Item = (&'a str, &'a [u8])>,
    {
        if method != "GET" {
            return Err(HandshakeError::MethodNotGet);
        }
        if version < 1 {
            return Err(HandshakeError::HttpVersion);
        }
        let (mut upgrade, mut connection, mut ws_version) = (false, false, None);
        let mut key: Option<&[u8]> = None;
        let mut key_count = 0;
        let mut protocols = Vec::new();
        let mut extensions = Vec::new();
        for (name, value) in headers {
            let is = |n: &str| name.eq_ignore_ascii_case(n);
            if is("upgrade") {
                upgrade |= has_token(value, "websocket");
            } else if is("connection") {
                connection |= has_token(value, "upgrade");
            } else if is("sec-websocket-version") {
                ws_version = Some(value.trim_ascii());
            } else if is("sec-websocket-key") {
                key = Some(value.trim_ascii());
                key_count += 1;
            } else if is("sec-websocket-protocol") {
                if let Ok(v) = std::str::from_utf8(value) {
                    protocols.extend(v.split(',').map(str::trim).filter(|p| !p.is_empty()));
                }
            } else if is("sec-websocket-extensions") {
                if let Ok(v) = std::str::from_utf8(value) {
                    extensions.push(v);
                }
            }
        }
        if !upgrade {
            return Err(HandshakeError::MissingUpgrade);
        }
        if !connection {
            return Err(HandshakeError::MissingConnectionUpgrade);
        }
        if ws_version != Some(VERSION.as_bytes()) {
            return Err(HandshakeError::UnsupportedVersion);
        }
        let key = match key {
            Some(k) if key_count == 1 && k.len() == 24 => k,
            _ => return Err(HandshakeError::InvalidKey),
        };
        match STANDARD.decode(key) {
            Ok(raw) if raw.len() == 16 => {}
            _ => return Err(HandshakeError::InvalidKey),
        }
        Ok(UpgradeRequest {
            key,
            protocols,
            extensions,
        })
    }

    /// The `Sec-WebSocket-Key`, trimmed.
    pub fn key(&self) -> &'a [u8] {
        self.key
    }

    /// The `Sec-WebSocket-Accept` for this request's key.
    pub fn accept_key(&self) -> String {
        accept_key(self.key)
    }

    /// The subprotocols the client offered, in its order.
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_codec::ws::UpgradeRequest;
    ///
    /// let headers: [(&str, &[u8]); 6] = [
    ///     ("upgrade", b"websocket"),
    ///     ("connection", b"Upgrade"),
    ///     ("sec-websocket-key", b"dGhlIHNhbXBsZSBub25jZQ=="),
    ///     ("sec-websocket-version", b"13"),
    ///     ("sec-websocket-protocol", b"v2.chat, v1.chat"),
    ///     ("sec-websocket-extensions", b"permessage-deflate"),
    /// ];
    /// let req = UpgradeRequest::parse("GET", 1, headers)?;
    /// assert_eq!(req.protocols(), ["v2.chat", "v1.chat"]);
    /// assert_eq!(req.extensions(), ["permessage-deflate"]);
    /// assert_eq!(req.accept_key(), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    /// # Ok::<(), rswoole_codec::ws::HandshakeError>(())
    /// ```
    pub fn protocols(&self) -> &[&'a str] {
        &self.protocols
    }

    /// The raw `Sec-WebSocket-Extensions` header values, in order.
    pub fn extensions(&self) -> &[&'a str] {
        &self.extensions
    }

    /// Picks the first of the server's `supported` subprotocols (server preference order)
    /// that the client offered. Comparison is exact, as RFC 6455 §4.1 requires.
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_codec::ws::UpgradeRequest;
    ///
    /// let headers: [(&str, &[u8]); 5] = [
    ///     ("upgrade", b"websocket"),
    ///     ("connection", b"Upgrade"),
    ///     ("sec-websocket-key", b"dGhlIHNhbXBsZSBub25jZQ=="),
    ///     ("sec-websocket-version", b"13"),
    ///     ("sec-websocket-protocol", b"v1.chat, v2.chat"),
    /// ];
    /// let req = UpgradeRequest::parse("GET", 1, headers)?;
    /// assert_eq!(req.select_protocol(&["v2.chat", "v1.chat"]), Some("v2.chat")); // server's order
    /// assert_eq!(req.select_protocol(&["mqtt"]), None);
    /// # Ok::<(), rswoole_codec::ws::HandshakeError>(())
    /// ```
    pub fn select_protocol<'s>(&self, supported: &[&'s str]) -> Option<&'s str> {
        supported
            .iter()
            .copied()
            .find(|s| self.protocols.iter().any(|p| p == s))
    }

    /// Negotiates permessage-deflate against the client's offers (see
    /// [`deflate::negotiate`](super::deflate::negotiate)).
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_codec::ws::{DeflateConfig, UpgradeRequest};
    ///
    /// let headers: [(&str, &[u8]); 5] = [
    ///     ("upgrade", b"websocket"),
    ///     ("connection", b"Upgrade"),
    ///     ("sec-websocket-key", b"dGhlIHNhbXBsZSBub25jZQ=="),
    ///     ("sec-websocket-version", b"13"),
    ///     ("sec-websocket-extensions", b"permessage-deflate; client_max_window_bits"),
    /// ];
    /// let req = UpgradeRequest::parse("GET", 1, headers)?;
    /// let config = DeflateConfig { enabled: true, ..DeflateConfig::default() };
    /// assert!(req.negotiate_deflate(&config).is_some());
    /// assert!(req.negotiate_deflate(&DeflateConfig::default()).is_none());
    /// # Ok::<(), rswoole_codec::ws::HandshakeError>(())
    /// ```
    pub fn negotiate_deflate(&self, config: &DeflateConfig) -> Option<DeflateParams> {
        negotiate(config, self.extensions.iter().copied())
    }

    /// Accepts the request: the accept key, a subprotocol from `protocols` and deflate
    /// parameters if negotiated.
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_codec::ws::{Accept, DeflateConfig, UpgradeRequest};
    ///
    /// let headers: [(&str, &[u8]); 4] = [
    ///     ("upgrade", b"websocket"),
    ///     ("connection", b"Upgrade"),
    ///     ("sec-websocket-key", b"dGhlIHNhbXBsZSBub25jZQ=="),
    ///     ("sec-websocket-version", b"13"),
    /// ];
    /// let accept = UpgradeRequest::parse("GET", 1, headers)?.accept(&["chat"], &DeflateConfig::default());
    /// assert_eq!(
    ///     accept,
    ///     Accept { accept_key: "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".into(), protocol: None, deflate: None }
    /// );
    /// # Ok::<(), rswoole_codec::ws::HandshakeError>(())
    /// ```
    pub fn accept(&self, protocols: &[&str], deflate: &DeflateConfig) -> Accept {
        Accept {
            accept_key: self.accept_key(),
            protocol: self.select_protocol(protocols).map(str::to_owned),
            deflate: self.negotiate_deflate(deflate),
        }
    }
}

/// The server's answer to an accepted upgrade request.
///
/// # Examples
///
/// ```
/// use rswoole_codec::ws::{Connection, UpgradeRequest, WsConfig};
///
/// let headers: [(&str, &[u8]); 4] = [
///     ("upgrade", b"websocket"),
///     ("connection", b"Upgrade"),
///     ("sec-websocket-key", b"dGhlIHNhbXBsZSBub25jZQ=="),
///     ("sec-websocket-version", b"13"),
/// ];
/// let config = WsConfig::default();
/// let accept = UpgradeRequest::parse("GET", 1, headers)?.accept(&[], &config.deflate);
/// let conn = Connection::server(config, accept.deflate);
/// assert!(!conn.is_compressed());
/// # Ok::<(), rswoole_codec::ws::HandshakeError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accept {
    /// The `Sec-WebSocket-Accept` value.
    pub accept_key: String,
    /// The chosen subprotocol, if any.
    pub protocol: Option<String>,
    /// The negotiated permessage-deflate parameters, if any. Pass them to
    /// [`Connection::server`](super::Connection::server).
    pub deflate: Option<DeflateParams>,
}

impl Accept {
    /// Writes the `101 Switching Protocols` response.
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use rswoole_codec::ws::Accept;
    ///
    /// let accept = Accept { accept_key: "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".into(), protocol: None, deflate: None };
    /// let mut out = BytesMut::new();
    /// accept.write_response(&mut out);
    /// assert_eq!(
    ///     &out[..],
    ///     &b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
    ///        Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"[..]
    /// );
    /// ```
    pub fn write_response(&self, dst: &mut BytesMut) {
        self.write_response_with(dst, &[]);
    }

    /// Writes the `101` response with extra headers (for example `Server` or cookies).
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::BytesMut;
    /// use rswoole_codec::ws::Accept;
    ///
    /// let accept = Accept { accept_key: "k".into(), protocol: Some("chat".into()), deflate: None };
    /// let mut out = BytesMut::new();
    /// accept.write_response_with(&mut out, &[("Server", "rswoole")]);
    /// assert!(out.ends_with(b"Sec-WebSocket-Protocol: chat\r\nServer: rswoole\r\n\r\n"));
    /// ```
    pub fn write_response_with(&self, dst: &mut BytesMut, extra: &[(&str, &str)]) {
        dst.reserve(160);
        dst.put_slice(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n",
        );
        put_header(dst, "Sec-WebSocket-Accept", &self.accept_key);
        if let Some(p) = &self.protocol {
            put_header(dst, "Sec-WebSocket-Protocol", p);
        }
        if let Some(d) = &self.deflate {
            put_header(dst, "Sec-WebSocket-Extensions", &d.to_header_value());
        }
        for (n, v) in extra {
            put_header(dst, n, v);
        }
        dst.put_slice(b"\r\n");
    }
}

fn put_header(dst: &mut BytesMut, name: &str, value: &str) {
    dst.put_slice(name.as_bytes());
    dst.put_slice(b": ");
    dst.put_slice(value.as_bytes());
    dst.put_slice(b"\r\n");
}

/// Writes the response rejecting a bad upgrade request: `426 Upgrade Required` (with
/// `Sec-WebSocket-Version: 13` or `Upgrade: websocket`) or `400 Bad Request`, empty body,
/// `Connection: close`.
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use rswoole_codec::ws::{handshake::write_reject, HandshakeError};
///
/// let mut out = BytesMut::new();
/// write_reject(&mut out, HandshakeError::UnsupportedVersion);
/// assert!(out.starts_with(b"HTTP/1.1 426 Upgrade Required\r\n"));
/// ```
pub fn write_reject(dst: &mut BytesMut, err: HandshakeError) {
    match err {
        HandshakeError::UnsupportedVersion => {
            dst.put_slice(b"HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\n")
        }
        e if e.status() == 426 => dst.put_slice(
            b"HTTP/1.1 426 Upgrade Required\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n",
        ),
        _ => dst.put_slice(b"HTTP/1.1 400 Bad Request\r\n"),
    }
    dst.put_slice(b"Connection: close\r\nContent-Length: 0\r\n\r\n");
}

/// Client side: writes the upgrade request for `path` on `host` with the key from
/// [`generate_key`], offering `protocols` (if any) and permessage-deflate if `deflate` is
/// enabled.
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use rswoole_codec::ws::{generate_key, handshake::write_request, DeflateConfig};
///
/// let key = generate_key([7; 16]);
/// let mut out = BytesMut::new();
/// write_request(&mut out, "example.com", "/chat", &key, &[], &DeflateConfig::default());
/// assert!(out.starts_with(b"GET /chat HTTP/1.1\r\nHost: example.com\r\n"));
/// ```
pub fn write_request(
    dst: &mut BytesMut,
    host: &str,
    path: &str,
    key: &str,
    protocols: &[&str],
    deflate: &DeflateConfig,
) {
    dst.reserve(200);
    dst.put_slice(b"GET ");
    dst.put_slice(path.as_bytes());
    dst.put_slice(b" HTTP/1.1\r\n");
    put_header(dst, "Host", host);
    dst.put_slice(b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n");
    put_header(dst, "Sec-WebSocket-Key", key);
    if !protocols.is_empty() {
        put_header(dst, "Sec-WebSocket-Protocol", &protocols.join(", "));
    }
    if let Some(offer) = deflate.offer() {
        put_header(dst, "Sec-WebSocket-Extensions", &offer);
    }
    dst.put_slice(b"\r\n");
}

/// What the server agreed to, from the client's point of view.
///
/// # Examples
///
/// ```
/// use rswoole_codec::ws::{accept_key, handshake::validate_response, DeflateConfig};
///
/// let key = "dGhlIHNhbXBsZSBub25jZQ==";
/// let accept = accept_key(key.as_bytes());
/// let headers: [(&str, &[u8]); 4] = [
///     ("Upgrade", b"websocket"),
///     ("Connection", b"Upgrade"),
///     ("Sec-WebSocket-Accept", accept.as_bytes()),
///     ("Sec-WebSocket-Protocol", b"chat"),
/// ];
/// let ok = validate_response(101, headers, key, &["chat"], &DeflateConfig::default())?;
/// assert_eq!((ok.protocol.as_deref(), ok.deflate), (Some("chat"), None));
/// # Ok::<(), rswoole_codec::ws::HandshakeError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAccepted {
    /// The subprotocol the server chose, if any.
    pub protocol: Option<String>,
    /// The negotiated permessage-deflate parameters, if any.
    pub deflate: Option<DeflateParams>,
}

/// Client side: validates the server's response to a request made with [`write_request`].
///
/// # Errors
///
/// [`HandshakeError::BadStatus`], [`HandshakeError::MissingUpgrade`],
/// [`HandshakeError::MissingConnectionUpgrade`], [`HandshakeError::AcceptMismatch`],
/// [`HandshakeError::UnexpectedProtocol`], [`HandshakeError::UnexpectedExtension`].
///
/// # Examples
///
/// ```
/// use rswoole_codec::ws::{accept_key, handshake::validate_response, DeflateConfig};
///
/// let key = "dGhlIHNhbXBsZSBub25jZQ==";
/// let accept = accept_key(key.as_bytes());
/// let headers: [(&str, &[u8]); 3] = [
///     ("Upgrade", b"websocket"),
///     ("Connection", b"Upgrade"),
///     ("Sec-WebSocket-Accept", accept.as_bytes()),
/// ];
/// let ok = validate_response(101, headers, key, &[], &DeflateConfig::default()).unwrap();
/// assert_eq!(ok.protocol, None);
/// ```
pub fn validate_response<'a, I>(
    status: u16,
    headers: I,
    key: &str,
    protocols: &[&str],
    deflate: &DeflateConfig,
) -> Result<ClientAccepted, HandshakeError>
where
    I: IntoIterator<Item = (&'a str, &'a [u8])>,
{
    if status != 101 {
        return Err(HandshakeError::BadStatus);
    }
    let (mut upgrade, mut connection, mut accept_ok) = (false, false, false);
    let mut protocol = None;
    let mut extensions = Vec::new();
    let expected = accept_key(key.as_bytes());
    for (name, value) in headers {
        let is = |n: &str| name.eq_ignore_ascii_case(n);
        if is("upgrade") {
            upgrade |= has_token(value, "websocket");
        } else if is("connection") {
            connection |= has_token(value, "upgrade");
        } else if is("sec-websocket-accept") {
            accept_ok = value.trim_ascii() == expected.as_bytes();
        } else if is("sec-websocket-protocol") {
            let p = std::str::from_utf8(value)
                .map(str::trim)
                .map_err(|_| HandshakeError::UnexpectedProtocol)?;
            if protocol.is_some() || !protocols.contains(&p) {
                return Err(HandshakeError::UnexpectedProtocol);
            }
            protocol = Some(p.to_owned());
        } else if is("sec-websocket-extensions") {
            let v = std::str::from_utf8(value).map_err(|_| HandshakeError::UnexpectedExtension)?;
            if split_unquoted(v, b',').any(|e| !e.trim().is_empty()) {
                extensions.push(v);
            }
        }
    }
    if !upgrade {
        return Err(HandshakeError::MissingUpgrade);
    }
    if !connection {
        return Err(HandshakeError::MissingConnectionUpgrade);
    }
    if !accept_ok {
        return Err(HandshakeError::AcceptMismatch);
    }
    let deflate = DeflateParams::from_response(deflate, extensions)?;
    Ok(ClientAccepted { protocol, deflate })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"dGhlIHNhbXBsZSBub25jZQ==";

    fn base() -> Vec<(&'static str, &'static [u8])> {
        vec![
            ("Host", b"server.example.com"),
            ("Upgrade", b"websocket"),
            ("Connection", b"Upgrade"),
            ("Sec-WebSocket-Key", KEY),
            ("Sec-WebSocket-Version", b"13"),
        ]
    }

    fn with(
        mut h: Vec<(&'static str, &'static [u8])>,
        name: &'static str,
        value: Option<&'static [u8]>,
    ) -> Vec<(&'static str, &'static [u8])> {
        h.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        if let Some(v) = value {
            h.push((name, v));
        }
        h
    }

    #[test]
    fn ws_handshake_request_errors() {
        type Case = (
            &'static str,
            u8,
            Vec<(&'static str, &'static [u8])>,
            HandshakeError,
        );
        let cases: Vec<Case> = vec![
            ("POST", 1, base(), HandshakeError::MethodNotGet),
            ("GET", 0, base(), HandshakeError::HttpVersion),
            (
                "GET",
                1,
                with(base(), "Upgrade", None),
                HandshakeError::MissingUpgrade,
            ),
            (
                "GET",
                1,
                with(base(), "Upgrade", Some(b"h2c")),
                HandshakeError::MissingUpgrade,
            ),
            (
                "GET",
                1,
                with(base(), "Connection", Some(b"keep-alive")),
                HandshakeError::MissingConnectionUpgrade,
            ),
            (
                "GET",
                1,
                with(base(), "Sec-WebSocket-Version", Some(b"8")),
                HandshakeError::UnsupportedVersion,
            ),
            (
                "GET",
                1,
                with(base(), "Sec-WebSocket-Version", None),
                HandshakeError::UnsupportedVersion,
            ),
            (
                "GET",
                1,
                with(base(), "Sec-WebSocket-Key", None),
                HandshakeError::InvalidKey,
            ),
            (
                "GET",
                1,
                with(base(), "Sec-WebSocket-Key", Some(b"short")),
                HandshakeError::InvalidKey,
            ),
            (
                "GET",
                1,
                with(
                    base(),
                    "Sec-WebSocket-Key",
                    Some(b"!!!!!!!!!!!!!!!!!!!!!!=="),
                ),
                HandshakeError::InvalidKey,
            ),
        ];
        for (method, version, headers, err) in cases {
            let got = UpgradeRequest::parse(method, version, headers.iter().copied());
            assert_eq!(got.unwrap_err(), err, "{method} {headers:?}");
        }
        let mut dup = base();
        dup.push(("sec-websocket-key", KEY));
        assert_eq!(
            UpgradeRequest::parse("GET", 1, dup.iter().copied()).unwrap_err(),
            HandshakeError::InvalidKey
        );
    }

    #[test]
    fn ws_handshake_accepts_case_and_lists() {
        let h: Vec<(&str, &[u8])> = vec![
            ("upgrade", b"WebSocket"),
            ("connection", b"keep-alive, upgrade"),
            ("sec-websocket-key", b" dGhlIHNhbXBsZSBub25jZQ== "),
            ("sec-websocket-version", b"13"),
            ("sec-websocket-protocol", b"a, b"),
            ("sec-websocket-protocol", b"c"),
            (
                "sec-websocket-extensions",
                b"permessage-deflate; client_max_window_bits",
            ),
        ];
        let req = UpgradeRequest::parse("GET", 1, h.iter().copied()).unwrap();
        assert_eq!(req.key(), KEY);
        assert_eq!(req.protocols(), &["a", "b", "c"]);
        assert_eq!(req.select_protocol(&["x", "c", "a"]), Some("c"));
        assert_eq!(req.select_protocol(&["x"]), None);
        let cfg = DeflateConfig {
            enabled: true,
            ..DeflateConfig::default()
        };
        let acc = req.accept(&["b"], &cfg);
        let mut out = BytesMut::new();
        acc.write_response(&mut out);
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: b\r\n\
             Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n"
        );
    }

    #[test]
    fn ws_handshake_reject_responses() {
        for (err, head) in [
            (HandshakeError::InvalidKey, "HTTP/1.1 400 Bad Request\r\n"),
            (
                HandshakeError::MissingUpgrade,
                "HTTP/1.1 426 Upgrade Required\r\nUpgrade: websocket\r\n",
            ),
            (
                HandshakeError::UnsupportedVersion,
                "HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\n",
            ),
        ] {
            let mut out = BytesMut::new();
            write_reject(&mut out, err);
            let s = std::str::from_utf8(&out).unwrap();
            assert!(s.starts_with(head), "{s}");
            assert!(s.ends_with("Connection: close\r\nContent-Length: 0\r\n\r\n"));
        }
    }

    #[test]
    fn ws_handshake_client_round_trip() {
        let key = generate_key([1; 16]);
        let cfg = DeflateConfig {
            enabled: true,
            ..DeflateConfig::default()
        };
        let mut req = BytesMut::new();
        write_request(&mut req, "h", "/", &key, &["chat"], &cfg);
        // Parse it back with httparse, answer it as a server, validate the answer.
        let mut hs = [httparse::EMPTY_HEADER; 16];
        let mut r = httparse::Request::new(&mut hs);
        assert!(r.parse(&req).unwrap().is_complete());
        let up = UpgradeRequest::parse(
            r.method.unwrap(),
            r.version.unwrap(),
            r.headers.iter().map(|h| (h.name, h.value)),
        )
        .unwrap();
        let acc = up.accept(&["chat"], &cfg);
        let mut resp = BytesMut::new();
        acc.write_response(&mut resp);
        let mut hs = [httparse::EMPTY_HEADER; 16];
        let mut r = httparse::Response::new(&mut hs);
        assert!(r.parse(&resp).unwrap().is_complete());
        let ok = validate_response(
            r.code.unwrap(),
            r.headers.iter().map(|h| (h.name, h.value)),
            &key,
            &["chat"],
            &cfg,
        )
        .unwrap();
        assert_eq!(ok.protocol.as_deref(), Some("chat"));
        assert_eq!(ok.deflate, acc.deflate);
        // A wrong key, or a protocol not offered, is refused.
        let wrong = validate_response(
            101,
            r.headers.iter().map(|h| (h.name, h.value)),
            &generate_key([2; 16]),
            &["chat"],
            &cfg,
        );
        assert_eq!(wrong, Err(HandshakeError::AcceptMismatch));
        let wrong = validate_response(
            101,
            r.headers.iter().map(|h| (h.name, h.value)),
            &key,
            &["other"],
            &cfg,
        );
        assert_eq!(wrong, Err(HandshakeError::UnexpectedProtocol));
    }
}
