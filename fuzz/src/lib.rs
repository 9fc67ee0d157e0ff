//! The fuzz targets for rswoole's I/O-free codecs, as plain functions, and the helpers they
//! share.
//!
//! Each target is a `pub fn <name>(data: &[u8])` that panics when an invariant breaks. Two
//! drivers call them:
//!
//! - `fuzz_targets/<name>.rs`, a one-line `libfuzzer_sys::fuzz_target!` for cargo-fuzz
//!   (feature `libfuzzer`, on by default);
//! - `tests/replay.rs`, which runs every target over every file of `corpus/<name>/` on stable
//!   Rust, without libFuzzer or a C++ toolchain (`--no-default-features`), so that a crash
//!   found once stays fixed. [`TARGETS`] is its list.
//!
//! - [`Input`] turns the fuzzer's bytes into parameters (framing settings, chunk sizes) and a
//!   payload, so one input drives both the configuration and the data.
//! - [`stream`] drives a `rswoole_codec::stream::Decoder` the way a server does.
//! - [`reference`] holds naive models the targets compare the codec against.

pub mod http1;
pub mod reference;
pub mod stream;
pub mod ws;

pub use http1::{
    http1_cookie, http1_header_lists, http1_multipart, http1_range, http1_request,
    http1_response_head, http1_urlencoded,
};
pub use stream::{stream_eof, stream_length};
pub use ws::ws_frame;

/// A fuzz target: takes any bytes, panics when an invariant breaks.
pub type Target = fn(&[u8]);

/// Every target by name: the name of its `fuzz_targets/<name>.rs`, of its cargo-fuzz binary
/// and of its `corpus/<name>/` directory.
pub const TARGETS: &[(&str, Target)] = &[
    ("http1_cookie", http1_cookie),
    ("http1_header_lists", http1_header_lists),
    ("http1_multipart", http1_multipart),
    ("http1_range", http1_range),
    ("http1_request", http1_request),
    ("http1_response_head", http1_response_head),
    ("http1_urlencoded", http1_urlencoded),
    ("stream_eof", stream_eof),
    ("stream_length", stream_length),
    ("ws_frame", ws_frame),
];

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
