//! Replays the committed `sdp_parse` fuzz corpus (`fuzz/corpus/sdp_parse/`,
//! `fuzz/regressions/sdp_parse/`) through the target's own body (`fuzz/bodies/sdp.rs`), as
//! an ordinary test. See docs/fuzzing.md.

#[path = "../../fuzz/bodies/sdp.rs"]
mod bodies;
#[path = "../../fuzz/bodies/replay.rs"]
mod replay;

#[test]
fn sdp_parse() {
    replay::replay(env!("CARGO_MANIFEST_DIR"), "sdp_parse", bodies::sdp_parse);
}
