//! A [`Response`](super::Response) to an HTTP/2 stream: the same calls, answered as structured
//! parts (status, header field lines, body bytes: [`h2resp`]) instead of HTTP/1.1 bytes, so
//! that neither this worker encodes an HTTP/1.1 head and chunks nor the connection's owner
//! parses them back.

use super::{http_date, with_scratch, HttpError, Inner, State};
use crate::owner::h2resp::{self, PartKind};
use std::time::SystemTime;

use rswoole_codec::http1::decimal;

impl Inner {
    /// `write` on an HTTP/2 stream: the head with the first bytes, then data.
    pub(super) fn h2_write(&mut self, data: &[u8]) -> Result<(), HttpError> {
        let data = if self.is_head { &[][..] } else { data };
        match self.state {
            State::Ended => Err(HttpError::Ended),
            State::Fresh => self.h2_head(None, data, false),
            State::Streaming if data.is_empty() => Ok(()),
            State::Streaming => self.h2_send(PartKind::Data, false, &[], data),
        }
    }

    /// `end` on an HTTP/2 stream: a whole answer (head and body, compressed as for
    /// HTTP/1.1), or the last data.
    pub(super) fn h2_end(&mut self, data: &[u8]) -> Result<(), HttpError> {
        let r = match self.state {
            State::Ended => return Err(HttpError::Ended),
            State::Fresh => {
                let compressed = self.maybe_gzip(data);
                let body: &[u8] = compressed.as_deref().unwrap_or(data);
                self.h2_head(Some(body.len() as u64), body, true)
            }
            State::Streaming => {
                self.state = State::Ended;
                let data = if self.is_head { &[][..] } else { data };
                self.h2_send(PartKind::Data, true, &[], data)
            }
        };
        self.h2_ended();
        r
    }

    /// `end_head` on an HTTP/2 stream: the head of a HEAD answer, with the length the GET
    /// answer would have.
    pub(super) fn h2_end_head(&mut self, len: u64) -> Result<(), HttpError> {
        let r = self.h2_head(Some(len), &[], true);
        self.h2_ended();
        r
    }

    /// `end_raw` on an HTTP/2 stream: a whole answer, not compressed.
    pub(super) fn h2_end_raw(&mut self, body: &[u8]) -> Result<(), HttpError> {
        let r = self.h2_head(Some(body.len() as u64), body, true);
        self.h2_ended();
        r
    }

    /// `end_with_trailers` on an HTTP/2 stream: the trailer section ends it (a HEAD answer
    /// has no body, so no trailers: it just ends).
    pub(super) fn h2_end_with_trailers(
        &mut self,
        fields: &[(&str, &[u8])],
    ) -> Result<(), HttpError> {
        if self.state == State::Fresh {
            self.h2_write(&[])?;
        }
        if self.state == State::Ended {
            return Err(HttpError::Ended);
        }
        self.state = State::Ended;
        let r = if self.is_head || fields.is_empty() {
            self.h2_send(PartKind::Data, true, &[], &[])
        } else {
            with_scratch(|out| {
                for (k, v) in fields {
                    out.extend_from_slice(k.as_bytes());
                    out.extend_from_slice(b": ");
                    out.extend_from_slice(v);
                    out.extend_from_slice(b"\r\n");
                }
                fields_fit(out.len())?;
                self.h2_send(PartKind::Trailers, true, out, &[])
            })
        };
        self.h2_ended();
        r
    }

    /// Sends the head: the status, the application's fields, `date` (unless it set one) and
    /// `content-length` (`len`, when known), with `body`'s bytes; `end`: nothing follows.
    fn h2_head(&mut self, len: Option<u64>, body: &[u8], end: bool) -> Result<(), HttpError> {
        // An upgrade may have started while the request was handled: a connection that did
        // not move to the new master closes after this reply (GOAWAY; its streams finish).
        if self.handle.ctx.shared.draining() {
            self.keep_alive = false;
        }
        if let Some(e) = &self.refused {
            return Err(HttpError::Invalid(e.clone()));
        }
        let status = self.head.status();
        let bodyless = matches!(status, 100..=199 | 204 | 304);
        let body = if self.is_head || bodyless {
            &[][..]
        } else {
            body
        };
        with_scratch(|f| {
            f.extend_from_slice(self.head.field_lines());
            if self.head.field("date").is_none() {
                f.extend_from_slice(b"date: ");
                f.extend_from_slice(&http_date(self.now.unwrap_or_else(SystemTime::now)));
                f.extend_from_slice(b"\r\n");
            }
            if let (Some(n), false) = (len, bodyless) {
                f.extend_from_slice(b"content-length: ");
                f.extend_from_slice(decimal(n, &mut [0; 20]));
                f.extend_from_slice(b"\r\n");
            }
            fields_fit(f.len())?;
            self.state = if end { State::Ended } else { State::Streaming };
            self.h2_send(PartKind::Head(status), end, f, body)
        })
    }

    fn h2_send(
        &mut self,
        kind: PartKind,
        end: bool,
        fields: &[u8],
        body: &[u8],
    ) -> Result<(), HttpError> {
        self.sent += (fields.len() + body.len()) as u64;
        self.handle
            .ctx
            .send_h2(self.fd, self.stream, kind, end, fields, body)
            .map_err(HttpError::from)
    }

    /// After an ending call: once the answer is complete, as for HTTP/1.1, a server that
    /// drains (or an application that asked for `connection: close`) closes the connection,
    /// here gracefully (GOAWAY). An answer refused before it went (a bad header) is not.
    fn h2_ended(&mut self) {
        if self.state == State::Ended && !self.keep_alive {
            let _ = self.handle.close(self.fd);
        }
    }
}

/// A head or trailer section must fit in one part ([`h2resp::MAX_FIELDS`]).
fn fields_fit(len: usize) -> Result<(), HttpError> {
    if len > h2resp::MAX_FIELDS {
        return Err(HttpError::Invalid(format!(
            "{len} bytes of header fields; an HTTP/2 answer takes at most {}",
            h2resp::MAX_FIELDS
        )));
    }
    Ok(())
}
