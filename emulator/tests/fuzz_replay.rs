//! Replays the committed fuzz corpora (`fuzz/corpus/TARGET/`, `fuzz/regressions/TARGET/`)
//! through the fuzz targets' own bodies (`fuzz/bodies/emulator.rs`), as ordinary tests: no
//! nightly, no libFuzzer. See docs/fuzzing.md.

#[path = "../../fuzz/bodies/emulator.rs"]
mod bodies;
#[path = "../../fuzz/bodies/replay.rs"]
mod replay;

#[test]
fn wire_parse() {
    replay::replay(env!("CARGO_MANIFEST_DIR"), "wire_parse", bodies::wire_parse);
}

#[test]
fn nat_engine() {
    replay::replay(env!("CARGO_MANIFEST_DIR"), "nat_engine", bodies::nat_engine);
}

#[test]
fn firewall_engine() {
    replay::replay(
        env!("CARGO_MANIFEST_DIR"),
        "firewall_engine",
        bodies::firewall_engine,
    );
}

#[test]
fn link() {
    replay::replay(env!("CARGO_MANIFEST_DIR"), "link", bodies::link);
}

#[test]
fn sip_alg() {
    replay::replay(env!("CARGO_MANIFEST_DIR"), "sip_alg", bodies::sip_alg);
}
