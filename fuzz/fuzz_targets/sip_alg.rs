#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pinhole_fuzz::emulator_bodies::sip_alg(data));
