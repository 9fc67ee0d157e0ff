//! Close codes and Close frame payloads (RFC 6455 §5.5.1, §7.4).

use std::fmt;

use super::error::WsError;

/// A WebSocket close status code.
///
/// A newtype over `u16` rather than an enum, because applications may send any code in
/// 3000–4999. [`is_sendable`](Self::is_sendable) says whether a code may appear in a Close
/// frame on the wire.
///
/// # Examples
///
/// ```
/// use rswoole_codec::ws::CloseCode;
///
/// assert!(CloseCode::NORMAL.is_sendable());
/// assert!(CloseCode(4000).is_sendable());
/// assert!(!CloseCode::NO_STATUS.is_sendable()); // 1005 is only for reporting
/// assert!(!CloseCode(2000).is_sendable());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: normal closure.
    pub const NORMAL: CloseCode = CloseCode(1000);
    /// 1001: the endpoint is going away (server shutdown, page navigation).
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    /// 1002: protocol error.
    pub const PROTOCOL_ERROR: CloseCode = CloseCode(1002);
    /// 1003: the endpoint cannot accept this type of data (e.g. binary on a text-only app).
    pub const UNSUPPORTED_DATA: CloseCode = CloseCode(1003);
    /// 1005: no status code was present. Reported locally, never sent.
    pub const NO_STATUS: CloseCode = CloseCode(1005);
    /// 1006: the connection dropped without a Close frame. Reported locally, never sent.
    pub const ABNORMAL: CloseCode = CloseCode(1006);
    /// 1007: a message's data was inconsistent with its type (e.g. invalid UTF-8 in text).
    pub const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
    /// 1008: a policy was violated.
    pub const POLICY_VIOLATION: CloseCode = CloseCode(1008);
    /// 1009: a message was too big to process.
    pub const MESSAGE_TOO_BIG: CloseCode = CloseCode(1009);
    /// 1010: (client) the server did not negotiate a required extension.
    pub const MANDATORY_EXTENSION: CloseCode = CloseCode(1010);
    /// 1011: the server hit an unexpected condition.
    pub const INTERNAL_ERROR: CloseCode = CloseCode(1011);
    /// 1012: the service is restarting (IANA registry).
    pub const SERVICE_RESTART: CloseCode = CloseCode(1012);
    /// 1013: try again later (IANA registry).
    pub const TRY_AGAIN_LATER: CloseCode = CloseCode(1013);
    /// 1014: bad gateway (IANA registry).
    pub const BAD_GATEWAY: CloseCode = CloseCode(1014);
    /// 1015: TLS handshake failure. Reported locally, never sent.
    pub const TLS_HANDSHAKE: CloseCode = CloseCode(1015);

    /// The numeric code.
    pub const fn as_u16(self) -> u16 {
        self.0
    }

    /// Whether the code may be sent in (and accepted from) a Close frame: 1000–1003,
    /// 1007–1014 and 3000–4999. 1004–1006, 1015, codes below 1000, 1016–2999 and 5000 and up
    /// are not.
    pub const fn is_sendable(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

impl From<u16> for CloseCode {
    fn from(code: u16) -> Self {
        CloseCode(code)
    }
}

impl From<CloseCode> for u16 {
    fn from(code: CloseCode) -> Self {
        code.0
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// Parses the payload of a received Close frame into its code and reason.
///
/// An empty payload gives [`CloseCode::NO_STATUS`] and an empty reason.
///
/// # Errors
///
/// - [`WsError::InvalidClosePayload`] for a 1-byte payload,
/// - [`WsError::InvalidCloseCode`] for a code that may not be sent,
/// - [`WsError::InvalidUtf8`] if the reason is not UTF-8.
///
/// # Examples
///
/// ```
/// use rswoole_codec::ws::{close::parse_close_payload, CloseCode};
///
/// assert_eq!(parse_close_payload(b"\x03\xe8bye").unwrap(), (CloseCode::NORMAL, "bye"));
/// assert!(parse_close_payload(b"\x03").is_err());
/// ```
pub fn parse_close_payload(payload: &[u8]) -> Result<(CloseCode, &str), WsError> {
    match payload {
        [] => Ok((CloseCode::NO_STATUS, "")),
        [_] => Err(WsError::InvalidClosePayload),
        [hi, lo, reason @ ..] => {
            let code = CloseCode(u16::from_be_bytes([*hi, *lo]));
            if !code.is_sendable() {
                return Err(WsError::InvalidCloseCode);
            }
            let reason = std::str::from_utf8(reason).map_err(|_| WsError::InvalidUtf8)?;
            Ok((code, reason))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ws_close_code_validity() {
        let valid = [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999,
        ];
        let invalid = [
            0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
        ];
        for c in valid {
            assert!(CloseCode(c).is_sendable(), "{c}");
        }
        for c in invalid {
            assert!(!CloseCode(c).is_sendable(), "{c}");
        }
    }

    #[test]
    fn ws_close_payload_parse() {
        assert_eq!(parse_close_payload(b""), Ok((CloseCode::NO_STATUS, "")));
        assert_eq!(
            parse_close_payload(b"\x03"),
            Err(WsError::InvalidClosePayload)
        );
        assert_eq!(
            parse_close_payload(b"\x03\xe8"),
            Ok((CloseCode::NORMAL, ""))
        );
        assert_eq!(
            parse_close_payload(b"\x03\xed"),
            Err(WsError::InvalidCloseCode)
        );
        assert_eq!(
            parse_close_payload(b"\x0f\xa0ok"),
            Ok((CloseCode(4000), "ok"))
        );
        assert_eq!(
            parse_close_payload(b"\x03\xe8\xff"),
            Err(WsError::InvalidUtf8)
        );
    }
}
