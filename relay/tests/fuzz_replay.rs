//! Replays the committed fuzz corpora (`fuzz/corpus/TARGET/`, `fuzz/regressions/TARGET/`)
//! through the fuzz targets' own bodies (`fuzz/bodies/relay.rs`), as ordinary tests: no
//! nightly, no libFuzzer. See docs/fuzzing.md.

#[path = "../../fuzz/bodies/relay.rs"]
mod bodies;
#[path = "../../fuzz/bodies/replay.rs"]
mod replay;

#[test]
fn stun_parse() {
    replay::replay(env!("CARGO_MANIFEST_DIR"), "stun_parse", bodies::stun_parse);
}

#[test]
fn stun_server() {
    replay::replay(
        env!("CARGO_MANIFEST_DIR"),
        "stun_server",
        bodies::stun_server,
    );
}

#[test]
fn sip_parse() {
    replay::replay(env!("CARGO_MANIFEST_DIR"), "sip_parse", bodies::sip_parse);
}

#[test]
fn sip_proxy() {
    replay::replay(env!("CARGO_MANIFEST_DIR"), "sip_proxy", bodies::sip_proxy);
}

#[test]
fn turn_server() {
    replay::replay(
        env!("CARGO_MANIFEST_DIR"),
        "turn_server",
        bodies::turn_server,
    );
}

#[test]
fn ng_bencode() {
    replay::replay(env!("CARGO_MANIFEST_DIR"), "ng_bencode", bodies::ng_bencode);
}

#[test]
fn ng_command() {
    replay::replay(env!("CARGO_MANIFEST_DIR"), "ng_command", bodies::ng_command);
}

#[test]
fn rtp_parse() {
    replay::replay(env!("CARGO_MANIFEST_DIR"), "rtp_parse", bodies::rtp_parse);
}

#[test]
fn rtcp_parse() {
    replay::replay(env!("CARGO_MANIFEST_DIR"), "rtcp_parse", bodies::rtcp_parse);
}

#[test]
fn media_relay() {
    replay::replay(
        env!("CARGO_MANIFEST_DIR"),
        "media_relay",
        bodies::media_relay,
    );
}
