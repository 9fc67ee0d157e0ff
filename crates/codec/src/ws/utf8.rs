//! Incremental UTF-8 validation for text messages that arrive in pieces.
//!
//! [`Utf8Validator`] accepts a message chunk by chunk and fails as soon as a byte makes the
//! sequence invalid, not at the end of the message (Autobahn cases 6.4.x "fail fast"). A code
//! point split across chunks is carried over (at most three bytes).

use super::error::WsError;

/// A resumable UTF-8 validator.
///
/// # Examples
///
/// ```
/// use rswoole_codec::ws::Utf8Validator;
///
/// let mut v = Utf8Validator::new();
/// let euro = "€".as_bytes(); // e2 82 ac
/// v.feed(&euro[..1]).unwrap();
/// v.feed(&euro[1..]).unwrap();
/// assert!(v.finish().is_ok());
///
/// // 0xF4 0x90 can never start a valid code point: rejected at once.
/// let mut v = Utf8Validator::new();
/// assert!(v.feed(&[0xf4, 0x90]).is_err());
/// ```
#[derive(Debug, Clone, Default)]
pub struct Utf8Validator {
    partial: [u8; 4],
    partial_len: u8,
}

impl Utf8Validator {
    /// A validator at the start of a message.
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_codec::ws::Utf8Validator;
    /// let mut v = Utf8Validator::new();
    /// assert!(v.is_complete());
    /// assert!(v.feed("héllo".as_bytes()).is_ok());
    /// ```
    pub const fn new() -> Self {
        Utf8Validator {
            partial: [0; 4],
            partial_len: 0,
        }
    }

    /// Forgets any carried-over bytes, ready for a new message.
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_codec::ws::Utf8Validator;
    /// let mut v = Utf8Validator::new();
    /// v.feed(&[0xe2, 0x82])?; // half a '€'; the message was then abandoned
    /// v.reset();
    /// assert!(v.is_complete());
    /// # Ok::<(), rswoole_codec::ws::WsError>(())
    /// ```
    pub fn reset(&mut self) {
        self.partial_len = 0;
    }

    /// Whether the bytes fed so far end on a code point boundary.
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_codec::ws::Utf8Validator;
    /// let mut v = Utf8Validator::new();
    /// v.feed(&[0xc3])?; // first byte of 'é'
    /// assert!(!v.is_complete());
    /// v.feed(&[0xa9])?;
    /// assert!(v.is_complete());
    /// # Ok::<(), rswoole_codec::ws::WsError>(())
    /// ```
    pub fn is_complete(&self) -> bool {
        self.partial_len == 0
    }

    /// Validates the next chunk of the message.
    ///
    /// # Errors
    ///
    /// [`WsError::InvalidUtf8`] as soon as the bytes so far cannot be the start of valid UTF-8.
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_codec::ws::{Utf8Validator, WsError};
    /// let mut v = Utf8Validator::new();
    /// assert!(v.feed(b"ok ").is_ok());
    /// assert_eq!(v.feed(&[0xff]), Err(WsError::InvalidUtf8)); // never valid UTF-8
    /// ```
    pub fn feed(&mut self, mut input: &[u8]) -> Result<(), WsError> {
        if self.partial_len > 0 {
            let have = self.partial_len as usize;
            let need = sequence_len(self.partial[0]);
            let take = (need - have).min(input.len());
            self.partial[have..have + take].copy_from_slice(&input[..take]);
            let total = have + take;
            match std::str::from_utf8(&self.partial[..total]) {
                Ok(_) => {
                    self.partial_len = 0;
                    input = &input[take..];
                }
                Err(e) if e.error_len().is_some() => return Err(WsError::InvalidUtf8),
                Err(_) => {
                    // Still a valid prefix and the input is used up.
                    self.partial_len = total as u8;
                    return Ok(());
                }
            }
        }
        match std::str::from_utf8(input) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_some() => Err(WsError::InvalidUtf8),
            Err(e) => {
                let rest = &input[e.valid_up_to()..];
                self.partial[..rest.len()].copy_from_slice(rest);
                self.partial_len = rest.len() as u8;
                Ok(())
            }
        }
    }

    /// Ends the message: it must not stop in the middle of a code point. Resets the validator.
    ///
    /// # Errors
    ///
    /// [`WsError::InvalidUtf8`] if the message ends with an incomplete code point.
    ///
    /// # Examples
    ///
    /// ```
    /// use rswoole_codec::ws::{Utf8Validator, WsError};
    /// let mut v = Utf8Validator::new();
    /// v.feed(&[0xe2, 0x82])?;
    /// assert_eq!(v.finish(), Err(WsError::InvalidUtf8)); // ends mid code point
    /// assert!(v.finish().is_ok()); // reset: ready for the next message
    /// # Ok::<(), WsError>(())
    /// ```
    pub fn finish(&mut self) -> Result<(), WsError> {
        let complete = self.is_complete();
        self.reset();
        if complete {
            Ok(())
        } else {
            Err(WsError::InvalidUtf8)
        }
    }
}

/// Length of the sequence a (valid) lead byte starts. Only called on lead bytes that
/// `from_utf8` accepted as the start of an incomplete sequence (0xC2..=0xF4).
fn sequence_len(lead: u8) -> usize {
    match lead {
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        _ => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid_in_pieces(bytes: &[u8], splits: &[usize]) -> Result<(), WsError> {
        let mut v = Utf8Validator::new();
        let mut start = 0;
        for &s in splits {
            v.feed(&bytes[start..s])?;
            start = s;
        }
        v.feed(&bytes[start..])?;
        v.finish()
    }

    const SAMPLES: &[&[u8]] = &[
        b"",
        b"Hello-\xc2\xb5@\xc3\x9f\xc3\xb6\xc3\xa4\xc3\xbc\xc3\xa0\xc3\xa1-UTF-8!!",
        b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5",
        b"\xf0\x90\x80\x80\xf4\x8f\xbf\xbf",
        b"\xed\x9f\xbf\xee\x80\x80\xef\xbf\xbd",
        // invalid:
        b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited",
        b"\xf4\x90\x80\x80",
        b"\xc0\xaf",
        b"\xe0\x80\xaf",
        b"\xf8\x88\x80\x80\x80",
        b"ab\xe2\x82",
        b"\x80",
        b"\xed\xa0\x80\xed\xb0\x80",
        b"\xef\xbf\xbe",
    ];

    #[test]
    fn ws_utf8_every_split_point() {
        for s in SAMPLES {
            let expect = std::str::from_utf8(s).is_ok();
            assert_eq!(valid_in_pieces(s, &[]).is_ok(), expect, "{s:x?}");
            for i in 0..=s.len() {
                assert_eq!(valid_in_pieces(s, &[i]).is_ok(), expect, "{s:x?} at {i}");
                for j in i..=s.len() {
                    assert_eq!(
                        valid_in_pieces(s, &[i, j]).is_ok(),
                        expect,
                        "{s:x?} {i} {j}"
                    );
                }
            }
        }
    }

    #[test]
    fn ws_utf8_byte_by_byte_fails_fast() {
        // The invalid byte is the 0x90 after 0xf4: it must fail there, not at the end.
        let s = b"\xce\xba\xf4\x90\x80\x80zz";
        let mut v = Utf8Validator::new();
        let mut failed_at = None;
        for (i, b) in s.iter().enumerate() {
            if v.feed(std::slice::from_ref(b)).is_err() {
                failed_at = Some(i);
                break;
            }
        }
        assert_eq!(failed_at, Some(3));
    }

    #[test]
    fn ws_utf8_incomplete_at_end() {
        let mut v = Utf8Validator::new();
        v.feed(b"a\xe2\x82").unwrap();
        assert!(!v.is_complete());
        assert_eq!(v.finish(), Err(WsError::InvalidUtf8));
        assert!(v.is_complete());
    }
}
