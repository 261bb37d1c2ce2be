//! The bodies of pinhole's fuzz targets. They live in `fuzz/bodies/` as plain functions
//! over `&[u8]` so that the workspace replays the committed corpora with the same checks
//! (`emulator/tests/fuzz_replay.rs`, `relay/tests/fuzz_replay.rs`,
//! `harness/tests/fuzz_replay.rs`) without nightly or libFuzzer.

/// wire_parse, nat_engine, firewall_engine, link, sip_alg.
#[path = "../bodies/emulator.rs"]
pub mod emulator_bodies;

/// stun_parse, stun_server, sip_parse, sip_proxy, turn_server, ng_bencode, ng_command,
/// rtp_parse, rtcp_parse, media_relay.
#[path = "../bodies/relay.rs"]
pub mod relay_bodies;

/// scenario_yaml.
#[path = "../bodies/harness.rs"]
pub mod harness_bodies;

/// sdp_parse.
#[path = "../bodies/sdp.rs"]
pub mod sdp_bodies;
