#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pinhole_fuzz::harness_bodies::scenario_yaml(data));
