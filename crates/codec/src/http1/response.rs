//! An I/O-free HTTP/1.1 response decoder: the socket owner reads back the responses its
//! workers wrote for a connection that speaks another protocol (HTTP/2) to the client, and
//! turns each into that protocol's frames.

use bytes::{Buf, Bytes, BytesMut};

use super::body::{BodyDecoder, BodyEvent, Trailers};
use super::error::ParseError;
use super::request::Limits;

/// Most header fields in a response head.
const MAX_RESPONSE_HEADERS: usize = 128;

/// One step of a decoded response.
#[derive(Debug, PartialEq, Eq)]
pub enum ResponseEvent {
    /// The status line and headers (`1xx` interim responses are skipped).
    Head {
        /// The status code.
        status: u16,
        /// Header fields in order, names as written.
        headers: Vec<(Bytes, Bytes)>,
    },
    /// Body bytes.
    Data(Bytes),
    /// The response is complete (with the trailers of a chunked body).
    End(Trailers),
}

/// Decodes the responses written to one connection, one after the other.
///
/// # Examples
///
/// ```
/// use bytes::BytesMut;
/// use rswoole_codec::http1::{ResponseDecoder, ResponseEvent};
/// let mut d = ResponseDecoder::new();
/// let mut b = BytesMut::from(&b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nhi"[..]);
/// assert!(matches!(d.decode(&mut b, false)?, Some(ResponseEvent::Head { status: 200, .. })));
/// assert_eq!(d.decode(&mut b, false)?, Some(ResponseEvent::Data("hi".into())));
/// assert_eq!(d.decode(&mut b, false)?, Some(ResponseEvent::End(vec![])));
/// # Ok::<(), rswoole_codec::http1::ParseError>(())
/// ```
#[derive(Debug, Default)]
pub struct ResponseDecoder {
    body: Option<BodyDecoder>,
}

impl ResponseDecoder {
    /// A decoder waiting for a response head.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the decoder is between responses.
    pub fn is_awaiting_head(&self) -> bool {
        self.body.is_none()
    }

    /// Decodes the next piece. `head_request`: the response answers a `HEAD` request (no
    /// body whatever its headers say). `Ok(None)`: more bytes are needed (nothing consumed
    /// of an incomplete head). A response with neither `content-length` nor chunked framing
    /// has no body here (its writer keeps the connection alive, so it must frame it).
    pub fn decode(
        &mut self,
        src: &mut BytesMut,
        head_request: bool,
    ) -> Result<Option<ResponseEvent>, ParseError> {
        if let Some(body) = &mut self.body {
            let limits = Limits {
                max_body: u64::MAX,
                ..Limits::default()
            };
            return Ok(match body.decode(src, &limits)? {
                None => None,
                Some(BodyEvent::Data(d)) => Some(ResponseEvent::Data(d)),
                Some(BodyEvent::Done(t)) => {
                    self.body = None;
                    Some(ResponseEvent::End(t))
                }
            });
        }
        loop {
            // Uninitialized header slots: zeroing 128 of them cost more than parsing a short
            // head. Where each field lies is noted, then the head is split off once and each
            // field is a slice of it (no copy, no allocation per field).
            let mut hdrs = [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() };
                MAX_RESPONSE_HEADERS];
            let mut r = httparse::Response::new(&mut []);
            let n = match httparse::ParserConfig::default()
                .parse_response_with_uninit_headers(&mut r, src, &mut hdrs)
            {
                Ok(httparse::Status::Complete(n)) => n,
                Ok(httparse::Status::Partial) => return Ok(None),
                Err(httparse::Error::TooManyHeaders) => return Err(ParseError::TooManyHeaders),
                Err(_) => return Err(ParseError::Header),
            };
            let status = r.code.ok_or(ParseError::RequestLine)?;
            if (100..200).contains(&status) {
                src.advance(n);
                continue;
            }
            let base = src.as_ptr() as usize;
            let at = |s: &[u8]| {
                let from = s.as_ptr() as usize - base;
                from..from + s.len()
            };
            let mut chunked = false;
            let mut length = None;
            let mut spans = Vec::with_capacity(r.headers.len());
            for h in r.headers.iter() {
                if h.name.eq_ignore_ascii_case("transfer-encoding") {
                    chunked = h
                        .value
                        .rsplit(|&b| b == b',')
                        .next()
                        .is_some_and(|v| v.trim_ascii().eq_ignore_ascii_case(b"chunked"));
                } else if h.name.eq_ignore_ascii_case("content-length") {
                    let v = std::str::from_utf8(h.value)
                        .ok()
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .ok_or(ParseError::InvalidContentLength)?;
                    length = Some(v);
                }
                spans.push((at(h.name.as_bytes()), at(h.value)));
            }
            let head = src.split_to(n).freeze();
            let headers = spans
                .into_iter()
                .map(|(k, v)| (head.slice(k), head.slice(v)))
                .collect();
            let no_body = head_request || status == 204 || status == 304;
            self.body = Some(if no_body {
                BodyDecoder::length(0)
            } else if chunked {
                BodyDecoder::chunked()
            } else {
                BodyDecoder::length(length.unwrap_or(0))
            });
            return Ok(Some(ResponseEvent::Head { status, headers }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(d: &mut ResponseDecoder, b: &mut BytesMut, head: bool) -> Vec<ResponseEvent> {
        let mut v = Vec::new();
        while let Some(e) = d.decode(b, head).unwrap() {
            v.push(e);
        }
        v
    }

    #[test]
    fn chunked_with_trailers_then_next() {
        let mut d = ResponseDecoder::new();
        let mut b = BytesMut::from(
            &b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nx-t: 1\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"[..],
        );
        let v = all(&mut d, &mut b, false);
        assert!(matches!(v[0], ResponseEvent::Head { status: 200, .. }));
        assert_eq!(v[1], ResponseEvent::Data("abc".into()));
        assert_eq!(v[2], ResponseEvent::End(vec![("x-t".into(), "1".into())]));
        assert!(matches!(v[3], ResponseEvent::Head { status: 204, .. }));
        assert_eq!(v[4], ResponseEvent::End(vec![]));
        assert!(b.is_empty());
    }

    #[test]
    fn head_response_has_no_body_and_partial_waits() {
        let mut d = ResponseDecoder::new();
        let mut b = BytesMut::from(&b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n"[..]);
        assert_eq!(d.decode(&mut b, true).unwrap(), None);
        b.extend_from_slice(b"\r\n");
        let v = all(&mut d, &mut b, true);
        assert_eq!(v.len(), 2);
        assert!(d.is_awaiting_head());
    }

    /// Each field comes back as written (it is a slice of the head), the body follows, and
    /// a head with more fields than the decoder takes is an error, not a truncation.
    #[test]
    fn fields_as_written_and_too_many_is_an_error() {
        let mut d = ResponseDecoder::new();
        let mut b = BytesMut::from(
            &b"HTTP/1.1 404 Not Found\r\nX-A:  1 \r\ncontent-length: 3\r\nSet-Cookie: a=b\r\n\r\nabcHTTP/1.1 200 OK\r\n"[..],
        );
        let Some(ResponseEvent::Head { status, headers }) = d.decode(&mut b, false).unwrap() else {
            panic!("a head")
        };
        assert_eq!(status, 404);
        let want: Vec<(Bytes, Bytes)> = vec![
            ("X-A".into(), "1".into()),
            ("content-length".into(), "3".into()),
            ("Set-Cookie".into(), "a=b".into()),
        ];
        assert_eq!(headers, want);
        assert_eq!(
            d.decode(&mut b, false).unwrap(),
            Some(ResponseEvent::Data("abc".into()))
        );
        assert_eq!(
            d.decode(&mut b, false).unwrap(),
            Some(ResponseEvent::End(vec![]))
        );
        assert_eq!(&b[..], b"HTTP/1.1 200 OK\r\n");
        let mut many = String::from("HTTP/1.1 200 OK\r\n");
        for i in 0..=MAX_RESPONSE_HEADERS {
            many.push_str(&format!("x-{i}: {i}\r\n"));
        }
        many.push_str("\r\n");
        let mut b = BytesMut::from(many.as_bytes());
        assert!(matches!(
            ResponseDecoder::new().decode(&mut b, false),
            Err(ParseError::TooManyHeaders)
        ));
    }

    #[test]
    fn garbage_is_an_error() {
        let mut d = ResponseDecoder::new();
        let mut b = BytesMut::from(&b"NOT HTTP\r\n\r\n"[..]);
        assert!(d.decode(&mut b, false).is_err());
    }
}
