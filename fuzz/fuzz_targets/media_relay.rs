#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pinhole_fuzz::relay_bodies::media_relay(data));
