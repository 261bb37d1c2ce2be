//! Fuzz body for `relay::sdp`: the SDP parser, serialiser and media-relay rewrite.
//! Compiled into the fuzz crate (`fuzz/src/lib.rs`) and into the replay test
//! `relay/tests/fuzz_replay_sdp.rs`.

use relay::sdp::{
    IcePolicy, MediaControl, Party, RelayEndpoint, Sdp, SessionKey, StreamOutcome, StreamRequest,
    rewrite_answer, rewrite_offer,
};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// A relay that hands out port pairs on an address family matching the stream's, and
/// refuses nothing.
struct Pairs(u16);

#[derive(Debug)]
struct Never;
impl std::fmt::Display for Never {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("never")
    }
}
impl std::error::Error for Never {}

impl MediaControl for Pairs {
    type Error = Never;
    fn relay_stream(&mut self, r: &StreamRequest<'_>) -> Result<RelayEndpoint, Never> {
        let ip = match r.rtp.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::new(203, 0, 113, 5)),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 5)),
        };
        let port = self.0;
        self.0 = self.0.wrapping_add(2).max(1024);
        let rtcp = if r.rtcp_mux {
            port
        } else {
            port.wrapping_add(1)
        };
        Ok(RelayEndpoint {
            rtp: SocketAddr::new(ip, port),
            rtcp: SocketAddr::new(ip, rtcp),
        })
    }

    fn end_session(&mut self, _: SessionKey<'_>) {} // keeps no per-session state
}

/// The SDP codec and rewrite on arbitrary bytes.
///
/// Invariants: nothing panics; a parsed body serialises back to exactly the input
/// (lossless); under every ICE policy, as offer and as answer, the rewritten description
/// parses again with as many streams, relayed streams read back as the relay's
/// address:port, skipped streams keep their `m=` line, effective `c=` and hold state, and
/// every stream keeps its direction.
pub fn sdp_parse(data: &[u8]) {
    let Ok(sdp) = Sdp::parse(data) else {
        return;
    };
    assert_eq!(sdp.to_bytes(), data, "parse/serialise is not lossless");
    let key = SessionKey {
        call_id: "fuzz",
        from_tag: "a",
        to_tag: Some("b"),
    };
    for (k, policy) in [
        IcePolicy::AddRelayCandidate,
        IcePolicy::Strip,
        IcePolicy::Passthrough,
    ]
    .into_iter()
    .enumerate()
    {
        let mut out = sdp.clone();
        let mut relay = Pairs(40000);
        let report = if k % 2 == 0 {
            rewrite_offer(&mut out, key, Party::Caller, policy, &mut relay)
        } else {
            rewrite_answer(&mut out, key, Party::Callee, policy, &mut relay)
        };
        let Ok(report) = report else {
            unreachable!("Pairs never refuses")
        };
        let bytes = out.to_bytes();
        let again = Sdp::parse(&bytes).unwrap_or_else(|e| {
            panic!(
                "rewrite under {policy:?} does not parse ({e}):\n{}",
                String::from_utf8_lossy(&bytes)
            )
        });
        assert_eq!(again.media().len(), sdp.media().len());
        assert_eq!(report.streams.len(), sdp.media().len());
        for (i, s) in report.streams.iter().enumerate() {
            match s {
                StreamOutcome::Relayed { relay, .. } => {
                    assert_eq!(again.media()[i].media_line().port, relay.rtp.port());
                    assert_eq!(
                        again.effective_connection(i).and_then(|c| c.ip()),
                        Some(relay.rtp.ip())
                    );
                }
                StreamOutcome::Skipped { .. } => {
                    assert_eq!(again.media()[i].media_line(), sdp.media()[i].media_line());
                    assert_eq!(again.effective_connection(i), sdp.effective_connection(i));
                    assert_eq!(again.hold(i), sdp.hold(i));
                }
            }
            assert_eq!(again.effective_direction(i), sdp.effective_direction(i));
        }
    }
}
