//! cargo-fuzz entry point; the target, its input layout and invariants are in
//! `rswoole_fuzz::stream_length` (src/), where tests/replay.rs also runs it over `corpus/stream_length/`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| rswoole_fuzz::stream_length(data));
