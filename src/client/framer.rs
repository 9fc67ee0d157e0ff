//! The receive side shared by both clients: a buffer and the codec's [`Decoder`].

use bytes::{Bytes, BytesMut};
use rswoole_codec::stream::{
    encode_eof, encode_length, Decoder, FrameError, Framing, StreamConfig,
};

use super::error::ClientResult;
use super::ClientConfig;

#[derive(Debug)]
pub(crate) struct Framer {
    /// `None` for raw: each read is a message.
    decoder: Option<Decoder>,
    framing: Framing,
    pub(crate) buf: BytesMut,
}

impl Framer {
    pub(crate) fn new(config: &ClientConfig) -> ClientResult<Framer> {
        let sc = StreamConfig {
            framing: config.framing.clone(),
            package_max_length: config.package_max_length,
        };
        let decoder = match config.framing {
            Framing::Raw => None,
            _ => Some(Decoder::new(&sc)?),
        };
        Ok(Framer {
            decoder,
            framing: config.framing.clone(),
            buf: BytesMut::new(),
        })
    }

    pub(crate) fn is_raw(&self) -> bool {
        self.decoder.is_none()
    }

    /// A whole message from what is buffered, if there is one.
    pub(crate) fn next(&mut self) -> Result<Option<Bytes>, FrameError> {
        match &mut self.decoder {
            None if self.buf.is_empty() => Ok(None),
            None => Ok(Some(self.buf.split().freeze())),
            Some(d) => d.decode(&mut self.buf),
        }
    }

    /// `body` framed for the peer: with the length header or the EOF added; as is for raw and
    /// a custom length function.
    pub(crate) fn encode(&self, body: &[u8]) -> Result<Bytes, FrameError> {
        let mut out = BytesMut::new();
        match &self.framing {
            Framing::Eof { eof, .. } => encode_eof(eof, body, &mut out)?,
            Framing::Length(spec) => encode_length(spec, body, &mut out)?,
            Framing::Raw | Framing::LengthFn(_) => out.extend_from_slice(body),
        }
        Ok(out.freeze())
    }
}
