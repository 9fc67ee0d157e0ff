//! Error types of the WebSocket codec: cheap, fieldless and `Copy`.
//!
//! [`WsError`] covers everything a peer can get wrong after the handshake; each variant maps
//! to the close code the connection is failed with ([`WsError::close_code`]).
//! [`HandshakeError`] covers the HTTP upgrade; each variant maps to the HTTP status a server
//! answers with ([`HandshakeError::status`]).

use std::fmt;

use super::close::CloseCode;

/// A WebSocket protocol violation (or misuse of a closed connection).
///
/// Fieldless and `Copy`, so rejecting a malformed frame costs nothing. The `Display` text is for
/// humans and is not a stable API; match on the variant or use [`close_code`](Self::close_code).
///
/// # Examples
///
/// ```
/// use rswoole_codec::ws::{CloseCode, WsError};
///
/// assert_eq!(WsError::InvalidUtf8.close_code(), CloseCode::INVALID_PAYLOAD);
/// assert_eq!(WsError::MessageTooLarge.close_code().as_u16(), 1009);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WsError {
    /// An opcode reserved by RFC 6455 (3–7, 0xB–0xF). Close code 1002.
    ReservedOpcode,
    /// RSV1/RSV2/RSV3 set without an extension that defines it, or RSV1 on a control or
    /// continuation frame. Close code 1002.
    ReservedBits,
    /// A client frame without a mask (the server role requires one). Close code 1002.
    UnmaskedFrame,
    /// A server frame with a mask (the client role forbids one). Close code 1002.
    MaskedFrame,
    /// A control frame with a payload longer than 125 bytes. Close code 1002.
    ControlFrameTooLong,
    /// A control frame without the FIN bit. Close code 1002.
    FragmentedControlFrame,
    /// A continuation frame with no fragmented message in progress. Close code 1002.
    UnexpectedContinuation,
    /// A new text or binary frame while a fragmented message is still in progress.
    /// Close code 1002.
    ExpectedContinuation,
    /// A 64-bit payload length with the most significant bit set. Close code 1002.
    InvalidLength,
    /// A Close frame with a 1-byte payload. Close code 1002.
    InvalidClosePayload,
    /// A Close frame with a status code that may not be sent on the wire. Close code 1002.
    InvalidCloseCode,
    /// A text message or close reason that is not valid UTF-8. Close code 1007.
    InvalidUtf8,
    /// A compressed message that does not inflate. Close code 1007.
    InvalidCompressedData,
    /// A frame larger than the configured `max_frame_size`. Close code 1009.
    FrameTooLarge,
    /// A message (after decompression) larger than the configured `max_message_size`.
    /// Close code 1009.
    MessageTooLarge,
    /// The caller tried to send on a connection that has already sent its Close frame.
    /// Not a protocol error: a bug in the caller. [`close_code`](Self::close_code) is 1000.
    Closed,
}

impl WsError {
    /// The close code to fail the connection with (RFC 6455 §7.4.1).
    pub const fn close_code(self) -> CloseCode {
        match self {
            WsError::ReservedOpcode
            | WsError::ReservedBits
            | WsError::UnmaskedFrame
            | WsError::MaskedFrame
            | WsError::ControlFrameTooLong
            | WsError::FragmentedControlFrame
            | WsError::UnexpectedContinuation
            | WsError::ExpectedContinuation
            | WsError::InvalidLength
            | WsError::InvalidClosePayload
            | WsError::InvalidCloseCode => CloseCode::PROTOCOL_ERROR,
            WsError::InvalidUtf8 | WsError::InvalidCompressedData => CloseCode::INVALID_PAYLOAD,
            WsError::FrameTooLarge | WsError::MessageTooLarge => CloseCode::MESSAGE_TOO_BIG,
            WsError::Closed => CloseCode::NORMAL,
        }
    }

    fn description(self) -> &'static str {
        match self {
            WsError::ReservedOpcode => "reserved opcode",
            WsError::ReservedBits => "reserved bits set",
            WsError::UnmaskedFrame => "unmasked client frame",
            WsError::MaskedFrame => "masked server frame",
            WsError::ControlFrameTooLong => "control frame payload over 125 bytes",
            WsError::FragmentedControlFrame => "fragmented control frame",
            WsError::UnexpectedContinuation => "continuation frame without a message in progress",
            WsError::ExpectedContinuation => "new data frame inside a fragmented message",
            WsError::InvalidLength => "invalid 64-bit payload length",
            WsError::InvalidClosePayload => "close frame with a 1-byte payload",
            WsError::InvalidCloseCode => "invalid close code",
            WsError::InvalidUtf8 => "invalid UTF-8 in text payload",
            WsError::InvalidCompressedData => "invalid compressed data",
            WsError::FrameTooLarge => "frame too large",
            WsError::MessageTooLarge => "message too large",
            WsError::Closed => "connection already closed",
        }
    }
}

impl fmt::Display for WsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("websocket: ")?;
        f.write_str(self.description())
    }
}

impl std::error::Error for WsError {}

/// Why an HTTP upgrade request (server side) or response (client side) was rejected.
///
/// Fieldless and `Copy`. On the server, [`status`](Self::status) gives the HTTP status to answer
/// with and [`write_reject`](super::handshake::write_reject) writes that response.
///
/// # Examples
///
/// ```
/// use rswoole_codec::ws::HandshakeError;
///
/// assert_eq!(HandshakeError::UnsupportedVersion.status(), 426);
/// assert_eq!(HandshakeError::InvalidKey.status(), 400);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The request method is not `GET`. Status 400.
    MethodNotGet,
    /// The request is not HTTP/1.1 or later. Status 400.
    HttpVersion,
    /// No `Upgrade: websocket` header. Status 426.
    MissingUpgrade,
    /// No `upgrade` token in the `Connection` header. Status 426.
    MissingConnectionUpgrade,
    /// `Sec-WebSocket-Key` is missing, repeated, or not 16 bytes in base64. Status 400.
    InvalidKey,
    /// `Sec-WebSocket-Version` is missing or not 13. Status 426, with
    /// `Sec-WebSocket-Version: 13`.
    UnsupportedVersion,
    /// Client side: the response status is not 101.
    BadStatus,
    /// Client side: `Sec-WebSocket-Accept` is missing or does not match the key.
    AcceptMismatch,
    /// Client side: the server chose a subprotocol the client did not offer.
    UnexpectedProtocol,
    /// Client side: the server answered with an extension (or extension parameter) the client
    /// did not offer or cannot accept.
    UnexpectedExtension,
}

impl HandshakeError {
    /// The HTTP status a server answers with (400 or 426). Client-side variants give 400.
    pub const fn status(self) -> u16 {
        match self {
            HandshakeError::MissingUpgrade
            | HandshakeError::MissingConnectionUpgrade
            | HandshakeError::UnsupportedVersion => 426,
            _ => 400,
        }
    }

    fn description(self) -> &'static str {
        match self {
            HandshakeError::MethodNotGet => "method is not GET",
            HandshakeError::HttpVersion => "HTTP version below 1.1",
            HandshakeError::MissingUpgrade => "missing `Upgrade: websocket`",
            HandshakeError::MissingConnectionUpgrade => "missing `Connection: upgrade`",
            HandshakeError::InvalidKey => "missing or invalid Sec-WebSocket-Key",
            HandshakeError::UnsupportedVersion => "Sec-WebSocket-Version is not 13",
            HandshakeError::BadStatus => "response status is not 101",
            HandshakeError::AcceptMismatch => "Sec-WebSocket-Accept does not match",
            HandshakeError::UnexpectedProtocol => "server chose a subprotocol not offered",
            HandshakeError::UnexpectedExtension => "server answered with an unexpected extension",
        }
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("websocket handshake: ")?;
        f.write_str(self.description())
    }
}

impl std::error::Error for HandshakeError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ws_errors_are_small() {
        assert_eq!(std::mem::size_of::<WsError>(), 1);
        assert_eq!(std::mem::size_of::<HandshakeError>(), 1);
    }

    #[test]
    fn ws_error_display() {
        assert_eq!(
            WsError::FrameTooLarge.to_string(),
            "websocket: frame too large"
        );
        assert!(HandshakeError::InvalidKey
            .to_string()
            .contains("Sec-WebSocket-Key"));
    }
}
