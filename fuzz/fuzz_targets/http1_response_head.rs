//! cargo-fuzz entry point; the target, its input layout and invariants are in
//! `rswoole_fuzz::http1_response_head` (src/), where tests/replay.rs also runs it over `corpus/http1_response_head/`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| rswoole_fuzz::http1_response_head(data));
