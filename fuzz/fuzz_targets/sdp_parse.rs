#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pinhole_fuzz::sdp_bodies::sdp_parse(data));
