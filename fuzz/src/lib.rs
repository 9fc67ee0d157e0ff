//! Helpers shared by the fuzz targets in `fuzz_targets/`.
//!
//! - [`Input`] turns the fuzzer's bytes into parameters (framing settings, chunk sizes) and a
//!   payload, so one input drives both the configuration and the data.
//! - [`stream`] drives a `rswoole_codec::stream::Decoder` the way a server does.
//!
//! Add a module here for helpers another codec's targets share.

/// Reads fuzz parameters off the front of the input; past the end it yields zeros, so every
/// input, even an empty one, is valid.
#[derive(Debug)]
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    /// Wraps the fuzzer's input.
    pub fn new(data: &'a [u8]) -> Self {
        Input { data }
    }

    /// The next byte, or 0.
    pub fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    /// The next two bytes as a little-endian `u16`.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }

    /// Up to `n` next bytes.
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        head
    }

    /// Read sizes: a count byte (0 to 15 sizes; 0 means "everything in one read"), then one
    /// byte per size, each read being 1 to 256 bytes. The sizes are used in a cycle.
    pub fn chunks(&mut self) -> Vec<usize> {
        let count = usize::from(self.byte() % 16);
        (0..count).map(|_| usize::from(self.byte()) + 1).collect()
    }

    /// Everything not read yet: the payload.
    pub fn rest(self) -> &'a [u8] {
        self.data
    }
}

/// Driving the stream-framing decoder.
pub mod stream {
    use bytes::{Bytes, BytesMut};
    use rswoole_codec::stream::{Decoder, FrameError};

    /// What feeding a whole stream to a decoder produced.
    #[derive(Debug, PartialEq, Eq)]
    pub struct Outcome {
        /// The decoded messages, in order.
        pub messages: Vec<Bytes>,
        /// The first error, after which decoding stopped.
        pub error: Option<FrameError>,
        /// Bytes fed to the decoder and not returned in a message.
        pub left: usize,
    }

    impl Outcome {
        /// Total length of the messages.
        pub fn consumed(&self) -> usize {
            self.messages.iter().map(|m| m.len()).sum()
        }
    }

    /// Feeds `data` in reads whose sizes cycle through `chunks` (empty: one read), draining
    /// the decoder after each read as a server does, and stops at the first error.
    pub fn drive(decoder: &mut Decoder, data: &[u8], chunks: &[usize]) -> Outcome {
        let mut buf = BytesMut::new();
        let mut messages = Vec::new();
        let mut sizes = chunks.iter().copied().cycle();
        let mut rest = data;
        while !rest.is_empty() {
            let n = sizes.next().unwrap_or(rest.len()).clamp(1, rest.len());
            buf.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            loop {
                match decoder.decode(&mut buf) {
                    Ok(Some(m)) => messages.push(m),
                    Ok(None) => break,
                    Err(e) => {
                        return Outcome {
                            messages,
                            error: Some(e),
                            left: buf.len(),
                        }
                    }
                }
            }
        }
        Outcome {
            messages,
            error: None,
            left: buf.len(),
        }
    }

    /// Asserts that the messages, concatenated, are a prefix of `data`.
    pub fn assert_prefix(outcome: &Outcome, data: &[u8]) {
        let mut at = 0;
        for m in &outcome.messages {
            assert_eq!(
                &m[..],
                &data[at..at + m.len()],
                "message is not the next input bytes"
            );
            at += m.len();
        }
    }
}
