//! Replays the committed fuzz corpora (`fuzz/corpus/TARGET/`, `fuzz/regressions/TARGET/`)
//! through the fuzz targets' own bodies (`fuzz/bodies/harness.rs`), as ordinary tests: no
//! nightly, no libFuzzer. See docs/fuzzing.md.

#[path = "../../fuzz/bodies/harness.rs"]
mod bodies;
#[path = "../../fuzz/bodies/replay.rs"]
mod replay;

#[test]
fn scenario_yaml() {
    replay::replay(
        env!("CARGO_MANIFEST_DIR"),
        "scenario_yaml",
        bodies::scenario_yaml,
    );
}
