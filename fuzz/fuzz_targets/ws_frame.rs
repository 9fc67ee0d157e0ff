//! cargo-fuzz entry point; the target, its input layout and invariants are in
//! `rswoole_fuzz::ws_frame` (src/), where tests/replay.rs also runs it over `corpus/ws_frame/`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| rswoole_fuzz::ws_frame(data));
