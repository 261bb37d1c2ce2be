//! SDP parse/serialise and the media-relay rewrite on RFC 4317 examples and realistic
//! SDPs from real clients (baresip, linphone, Chrome), with an in-memory media relay that
//! allocates port pairs the way a MediaProxy-style relay would.

use proptest::prelude::*;
use relay::sdp::{
    HoldKind, IcePolicy, MediaControl, MediaDirection, Party, RelayEndpoint, Role, Sdp, SessionKey,
    SkipReason, StreamOutcome, StreamRequest, relay_candidate_priority, rewrite_answer,
    rewrite_offer,
};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/sdp/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

const KEY: SessionKey<'static> = SessionKey {
    call_id: "a84b4c76e66710@pc33.atlanta.example.com",
    from_tag: "1928301774",
    to_tag: None,
};

/// A request as the relay saw it: party, role, index, media, rtp, rtcp, rtcp-mux, direction.
type Seen = (
    Party,
    Role,
    usize,
    String,
    SocketAddr,
    SocketAddr,
    bool,
    MediaDirection,
);

/// A test relay: one RTP/RTCP pair per (party, stream index), allocated upwards from
/// 40000 on one address; a second request for the same key gets the same pair.
#[derive(Default)]
struct MemRelay {
    ip: Option<IpAddr>,
    /// Per stream index, a different address (to exercise media-level c= insertion).
    per_stream_ip: BTreeMap<usize, IpAddr>,
    next: u16,
    pairs: BTreeMap<(Party, usize), RelayEndpoint>,
    requests: Vec<Seen>,
    refuse: Option<usize>,
}

#[derive(Debug, thiserror::Error)]
#[error("no ports left")]
struct NoPorts;

impl MediaControl for MemRelay {
    type Error = NoPorts;
    fn relay_stream(&mut self, r: &StreamRequest<'_>) -> Result<RelayEndpoint, NoPorts> {
        assert_eq!(r.session.call_id, KEY.call_id);
        self.requests.push((
            r.party,
            r.role,
            r.index,
            r.media.to_owned(),
            r.rtp,
            r.rtcp,
            r.rtcp_mux,
            r.direction,
        ));
        if self.refuse == Some(r.index) {
            return Err(NoPorts);
        }
        let ip = self
            .per_stream_ip
            .get(&r.index)
            .copied()
            .or(self.ip)
            .unwrap_or("203.0.113.5".parse().unwrap());
        if self.next == 0 {
            self.next = 40000;
        }
        let next = &mut self.next;
        let mux = r.rtcp_mux;
        Ok(*self.pairs.entry((r.party, r.index)).or_insert_with(|| {
            let port = *next;
            *next += 2;
            RelayEndpoint {
                rtp: SocketAddr::new(ip, port),
                rtcp: SocketAddr::new(ip, if mux { port } else { port + 1 }),
            }
        }))
    }

    fn end_session(&mut self, session: SessionKey<'_>) {
        assert_eq!(session.call_id, KEY.call_id);
        self.pairs.clear();
    }
}

fn text(s: &Sdp) -> String {
    s.to_string()
}

#[test]
fn every_fixture_round_trips() {
    for name in [
        "rfc4317-2.1-offer.sdp",
        "rfc4317-2.1-answer.sdp",
        "hold-sendonly.sdp",
        "hold-rfc2543.sdp",
        "baresip-offer.sdp",
        "linphone-ice-offer.sdp",
        "chrome-ice-offer.sdp",
        "ipv6-multicast-lf.sdp",
    ] {
        let body = fixture(name);
        let sdp = Sdp::parse(&body).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(sdp.to_bytes(), body, "{name}");
    }
}

#[test]
fn rfc4317_names_are_not_relayed() {
    // RFC 4317 §2.1 uses host names in c=: a relay cannot use them, so nothing changes.
    let body = fixture("rfc4317-2.1-offer.sdp");
    let mut sdp = Sdp::parse(&body).unwrap();
    let mut relay = MemRelay::default();
    let report = rewrite_offer(
        &mut sdp,
        KEY,
        Party::Caller,
        IcePolicy::AddRelayCandidate,
        &mut relay,
    )
    .unwrap();
    assert_eq!(
        report.streams,
        vec![
            StreamOutcome::Skipped {
                index: 0,
                reason: SkipReason::Unresolved
            },
            StreamOutcome::Skipped {
                index: 1,
                reason: SkipReason::Unresolved
            },
        ]
    );
    assert!(relay.requests.is_empty());
    assert_eq!(sdp.to_bytes(), body);
}

#[test]
fn rfc4317_offer_and_answer_with_addresses() {
    let offer = String::from_utf8(fixture("rfc4317-2.1-offer.sdp"))
        .unwrap()
        .replace("c=IN IP4 host.atlanta.example.com", "c=IN IP4 192.0.2.101");
    let answer = String::from_utf8(fixture("rfc4317-2.1-answer.sdp"))
        .unwrap()
        .replace("c=IN IP4 host.biloxi.example.com", "c=IN IP4 192.0.2.201");
    let mut relay = MemRelay::default();
    let mut o = Sdp::parse(offer.as_bytes()).unwrap();
    let r = rewrite_offer(
        &mut o,
        KEY,
        Party::Caller,
        IcePolicy::Passthrough,
        &mut relay,
    )
    .unwrap();
    assert_eq!(r.relayed(), vec![0, 1]);
    // Both streams on one relay address: only the session c= changes, o= does not.
    let expect_offer = offer
        .replace("c=IN IP4 192.0.2.101", "c=IN IP4 203.0.113.5")
        .replace("m=audio 49170 ", "m=audio 40000 ")
        .replace("m=video 51372 ", "m=video 40002 ");
    assert_eq!(text(&o), expect_offer);
    assert!(text(&o).contains("o=alice 2890844526 2890844526 IN IP4 host.atlanta.example.com"));
    let mut a = Sdp::parse(answer.as_bytes()).unwrap();
    let key = SessionKey {
        to_tag: Some("a6c85cf"),
        ..KEY
    };
    let r = rewrite_answer(
        &mut a,
        key,
        Party::Callee,
        IcePolicy::Passthrough,
        &mut relay,
    )
    .unwrap();
    assert_eq!(r.relayed(), vec![0, 1]);
    assert!(text(&a).contains("m=audio 40004 RTP/AVP 0\r\n"));
    assert!(text(&a).contains("m=video 40006 RTP/AVP 32\r\n"));
    // What the relay was told: where each party receives, RTCP at port + 1.
    let seen: Vec<_> = relay
        .requests
        .iter()
        .map(|r| (r.0, r.1, r.2, r.4, r.5))
        .collect();
    let sa = |s: &str| s.parse::<SocketAddr>().unwrap();
    assert_eq!(
        seen,
        vec![
            (
                Party::Caller,
                Role::Offer,
                0,
                sa("192.0.2.101:49170"),
                sa("192.0.2.101:49171")
            ),
            (
                Party::Caller,
                Role::Offer,
                1,
                sa("192.0.2.101:51372"),
                sa("192.0.2.101:51373")
            ),
            (
                Party::Callee,
                Role::Answer,
                0,
                sa("192.0.2.201:49174"),
                sa("192.0.2.201:49175")
            ),
            (
                Party::Callee,
                Role::Answer,
                1,
                sa("192.0.2.201:49170"),
                sa("192.0.2.201:49171")
            ),
        ]
    );
    // Re-parse: still valid SDP.
    Sdp::parse(&o.to_bytes()).unwrap();
    Sdp::parse(&a.to_bytes()).unwrap();
}

#[test]
fn streams_on_different_relay_addresses_get_media_level_c() {
    let offer = String::from_utf8(fixture("rfc4317-2.1-offer.sdp"))
        .unwrap()
        .replace("c=IN IP4 host.atlanta.example.com", "c=IN IP4 192.0.2.101");
    let mut relay = MemRelay::default();
    relay
        .per_stream_ip
        .insert(1, "198.51.100.9".parse().unwrap());
    let mut o = Sdp::parse(offer.as_bytes()).unwrap();
    rewrite_offer(
        &mut o,
        KEY,
        Party::Caller,
        IcePolicy::Passthrough,
        &mut relay,
    )
    .unwrap();
    let t = text(&o);
    assert!(
        t.contains("t=0 0\r\nm=audio 40000 RTP/AVP 0 8 97\r\na=rtpmap:0"),
        "{t}"
    );
    assert!(t.contains("c=IN IP4 203.0.113.5\r\nt=0 0"), "{t}");
    assert!(
        t.contains("m=video 40002 RTP/AVP 31 32\r\nc=IN IP4 198.51.100.9\r\na=rtpmap:31"),
        "{t}"
    );
    let s = Sdp::parse(t.as_bytes()).unwrap();
    assert_eq!(
        s.effective_connection(1).unwrap().to_string(),
        "IN IP4 198.51.100.9"
    );
}

#[test]
fn sendonly_hold_is_relayed_and_reported_disabled_is_not() {
    let mut sdp = Sdp::parse(&fixture("hold-sendonly.sdp")).unwrap();
    assert_eq!(sdp.hold(0), Some(HoldKind::SendOnly));
    assert!(sdp.is_on_hold());
    let mut relay = MemRelay::default();
    let r = rewrite_offer(
        &mut sdp,
        KEY,
        Party::Caller,
        IcePolicy::Passthrough,
        &mut relay,
    )
    .unwrap();
    assert_eq!(r.held(), vec![0]);
    assert!(matches!(
        r.streams[0],
        StreamOutcome::Relayed {
            hold: Some(HoldKind::SendOnly),
            ..
        }
    ));
    assert_eq!(
        r.streams[1],
        StreamOutcome::Skipped {
            index: 1,
            reason: SkipReason::Disabled
        }
    );
    let t = text(&sdp);
    assert!(t.contains("m=audio 40000 RTP/AVP 0 97\r\n"));
    // The disabled stream keeps its (old) address through a media-level c=.
    assert!(
        t.contains("m=video 0 RTP/AVP 31\r\nc=IN IP4 192.0.2.10\r\n"),
        "{t}"
    );
    assert!(t.contains("a=sendonly"));
    assert_eq!(relay.requests[0].7, MediaDirection::SendOnly);
}

#[test]
fn rfc2543_hold_is_left_alone() {
    let body = fixture("hold-rfc2543.sdp");
    let mut sdp = Sdp::parse(&body).unwrap();
    let mut relay = MemRelay::default();
    let r = rewrite_offer(&mut sdp, KEY, Party::Caller, IcePolicy::Strip, &mut relay).unwrap();
    assert_eq!(
        r.streams,
        vec![StreamOutcome::Skipped {
            index: 0,
            reason: SkipReason::Held(HoldKind::UnspecifiedAddress)
        }]
    );
    assert_eq!(r.held(), vec![0]);
    assert_eq!(sdp.to_bytes(), body);
}

#[test]
fn baresip_rtcp_attribute_with_address() {
    let mut sdp = Sdp::parse(&fixture("baresip-offer.sdp")).unwrap();
    let mut relay = MemRelay::default();
    let r = rewrite_offer(
        &mut sdp,
        KEY,
        Party::Caller,
        IcePolicy::AddRelayCandidate,
        &mut relay,
    )
    .unwrap();
    assert_eq!(r.relayed(), vec![0, 1]);
    let t = text(&sdp);
    assert!(t.contains("a=rtcp:40001 IN IP4 203.0.113.5\r\n"), "{t}");
    assert!(t.contains("c=IN IP4 203.0.113.5\r\n"));
    assert!(!t.contains("10.0.1.2\r\nt="), "session c= rewritten");
    assert!(
        t.contains("o=- 1190514561 1776447405 IN IP4 10.0.1.2\r\n"),
        "o= kept"
    );
    // No ICE in the offer: no candidates added.
    assert!(!t.contains("a=candidate"));
    // Video has no a=rtcp and the relay pair is contiguous: none added.
    assert_eq!(t.matches("a=rtcp:").count(), 1);
    assert_eq!(relay.requests[0].5, "10.0.1.2:10063".parse().unwrap());
}

#[test]
fn linphone_ice_add_relay_candidate() {
    let mut sdp = Sdp::parse(&fixture("linphone-ice-offer.sdp")).unwrap();
    let mut relay = MemRelay::default();
    let r = rewrite_offer(
        &mut sdp,
        KEY,
        Party::Callee,
        IcePolicy::AddRelayCandidate,
        &mut relay,
    )
    .unwrap();
    let StreamOutcome::Relayed {
        candidates_added,
        original_rtp,
        original_rtcp,
        ..
    } = &r.streams[0]
    else {
        panic!("{r:?}")
    };
    assert_eq!(*candidates_added, 2);
    assert_eq!(*original_rtp, "100.64.0.10:7078".parse().unwrap());
    assert_eq!(*original_rtcp, "100.64.0.10:7079".parse().unwrap());
    let t = text(&sdp);
    // Media-level c= rewritten, session-level c= kept (nothing relies on it).
    assert!(
        t.contains("m=audio 40000 RTP/AVP 96 97 98 0 8 101\r\nc=IN IP4 203.0.113.5\r\n"),
        "{t}"
    );
    assert!(t.contains("s=Talk\r\nc=IN IP4 10.0.2.20\r\n"));
    let p1 = relay_candidate_priority(1);
    let p2 = relay_candidate_priority(2);
    assert_eq!((p1, p2), (16_777_215, 16_777_214));
    let lines: Vec<&str> = t.split("\r\n").collect();
    let last_srflx = lines
        .iter()
        .position(|l| l.starts_with("a=candidate:2 2 "))
        .unwrap();
    let relay1 = lines[last_srflx + 1];
    let relay2 = lines[last_srflx + 2];
    let foundation = relay1
        .split(' ')
        .next()
        .unwrap()
        .trim_start_matches("a=candidate:");
    assert_eq!(
        relay1,
        format!(
            "a=candidate:{foundation} 1 UDP {p1} 203.0.113.5 40000 typ relay raddr 100.64.0.10 rport 7078"
        )
    );
    assert_eq!(
        relay2,
        format!(
            "a=candidate:{foundation} 2 UDP {p2} 203.0.113.5 40001 typ relay raddr 100.64.0.10 rport 7079"
        )
    );
    assert!(foundation != "1" && foundation != "2" && foundation.len() <= 32);
    // The original candidates and credentials are byte-exact.
    for l in String::from_utf8(fixture("linphone-ice-offer.sdp"))
        .unwrap()
        .split("\r\n")
    {
        if l.starts_with("a=candidate") || l.starts_with("a=ice-") {
            assert!(lines.contains(&l), "{l} lost");
        }
    }
    assert!(t.contains("a=rtcp:40001 IN IP4 203.0.113.5\r\n"));
}

#[test]
fn chrome_bundle_with_ice_policies() {
    let body = fixture("chrome-ice-offer.sdp");
    // passthrough: ICE lines byte-exact and in order.
    let mut sdp = Sdp::parse(&body).unwrap();
    let mut relay = MemRelay::default();
    let r = rewrite_offer(
        &mut sdp,
        KEY,
        Party::Caller,
        IcePolicy::Passthrough,
        &mut relay,
    )
    .unwrap();
    assert_eq!(r.relayed(), vec![0, 1, 2]);
    let ice = |s: &str| -> Vec<String> {
        s.split("\r\n")
            .filter(|l| {
                [
                    "a=candidate",
                    "a=ice-",
                    "a=end-of-candidates",
                    "a=remote-candidates",
                ]
                .iter()
                .any(|p| l.starts_with(p))
            })
            .map(str::to_owned)
            .collect()
    };
    let original = String::from_utf8(body.clone()).unwrap();
    assert_eq!(ice(&text(&sdp)), ice(&original));
    // rtcp-mux: the relay was told, and a=rtcp points at the RTP port of the relay.
    assert!(relay.requests.iter().take(2).all(|r| r.6));
    assert!(text(&sdp).contains("m=audio 40000 UDP/TLS/RTP/SAVPF"));
    assert!(text(&sdp).contains("a=rtcp:40000 IN IP4 203.0.113.5\r\n"));
    assert!(
        text(&sdp).contains(
            "m=application 40004 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 203.0.113.5"
        )
    );

    // add-relay-candidate: one candidate (rtcp-mux), after the last candidate, before
    // end-of-candidates in the video section; not for the TCP candidate's sake.
    let mut sdp = Sdp::parse(&body).unwrap();
    let mut relay = MemRelay::default();
    let r = rewrite_offer(
        &mut sdp,
        KEY,
        Party::Caller,
        IcePolicy::AddRelayCandidate,
        &mut relay,
    )
    .unwrap();
    for s in &r.streams {
        assert!(
            matches!(
                s,
                StreamOutcome::Relayed {
                    candidates_added: 1,
                    ..
                }
            ),
            "{s:?}"
        );
    }
    let t = text(&sdp);
    assert_eq!(t.matches(" typ relay ").count(), 3);
    let video: Vec<&str> = t
        .split("m=video")
        .nth(1)
        .unwrap()
        .split("m=application")
        .next()
        .unwrap()
        .split("\r\n")
        .collect();
    let srflx = video
        .iter()
        .position(|l| l.contains(" typ srflx "))
        .unwrap();
    assert!(video[srflx + 1].contains(" typ relay raddr 192.168.1.33 rport 54609"));
    let relay_at = srflx + 1;
    assert!(
        relay_at
            < video
                .iter()
                .position(|l| *l == "a=end-of-candidates")
                .unwrap()
    );
    assert_eq!(ice(&t).len(), ice(&original).len() + 3);

    // strip: no ICE attribute anywhere, the rest intact.
    let mut sdp = Sdp::parse(&body).unwrap();
    let mut relay = MemRelay::default();
    let r = rewrite_offer(&mut sdp, KEY, Party::Caller, IcePolicy::Strip, &mut relay).unwrap();
    assert_eq!(r.ice_lines_removed, ice(&original).len());
    let t = text(&sdp);
    assert!(ice(&t).is_empty());
    assert!(t.contains("a=fingerprint:sha-256") && t.contains("a=group:BUNDLE 0 1 2"));
    Sdp::parse(t.as_bytes()).unwrap();
}

#[test]
fn ipv6_multicast_and_unknown_lines() {
    let body = fixture("ipv6-multicast-lf.sdp");
    let mut sdp = Sdp::parse(&body).unwrap();
    let mut relay = MemRelay {
        ip: Some("2001:db8:ffff::5".parse().unwrap()),
        ..MemRelay::default()
    };
    let r = rewrite_offer(
        &mut sdp,
        KEY,
        Party::Caller,
        IcePolicy::Passthrough,
        &mut relay,
    )
    .unwrap();
    assert_eq!(r.relayed(), vec![0, 1, 3]);
    assert_eq!(
        r.streams[2],
        StreamOutcome::Skipped {
            index: 2,
            reason: SkipReason::Multicast
        }
    );
    let t = text(&sdp);
    assert!(t.contains("c=IN IP6 2001:db8:ffff::5\nt=0 0\n"), "{t}");
    assert!(t.contains("c=IN IP4 233.252.0.1/127/2\n"));
    // The unknown last line keeps having no line ending; LF is used for new lines.
    assert!(t.ends_with("a=setup:active\nx=unknown-line-type"));
    assert!(!t.contains('\r'));
    // TCP stream: relayed (the relay decides what it can do), no candidates asked for.
    assert!(t.contains("m=application 40004 TCP/BFCP *\n"));
}

#[test]
fn relay_error_leaves_the_description_untouched() {
    let body = fixture("baresip-offer.sdp");
    let mut sdp = Sdp::parse(&body).unwrap();
    let mut relay = MemRelay {
        refuse: Some(1),
        ..MemRelay::default()
    };
    let e = rewrite_offer(&mut sdp, KEY, Party::Caller, IcePolicy::Strip, &mut relay).unwrap_err();
    assert_eq!(e.index, 1);
    assert_eq!(sdp.to_bytes(), body);
}

#[test]
fn relay_rtcp_not_adjacent_adds_attribute() {
    struct Odd;
    impl MediaControl for Odd {
        type Error = NoPorts;
        fn relay_stream(&mut self, r: &StreamRequest<'_>) -> Result<RelayEndpoint, NoPorts> {
            let ip: IpAddr = "203.0.113.7".parse().unwrap();
            Ok(RelayEndpoint {
                rtp: SocketAddr::new(ip, 50000 + r.index as u16 * 10),
                rtcp: SocketAddr::new("203.0.113.8".parse().unwrap(), 50005),
            })
        }
        fn end_session(&mut self, _: SessionKey<'_>) {} // allocates nothing to release
    }
    let mut sdp = Sdp::parse(b"v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0").unwrap();
    rewrite_offer(
        &mut sdp,
        KEY,
        Party::Caller,
        IcePolicy::AddRelayCandidate,
        &mut Odd,
    )
    .unwrap();
    assert_eq!(
        text(&sdp),
        "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 203.0.113.7\r\nt=0 0\r\nm=audio 50000 RTP/AVP 0\r\na=rtcp:50005 IN IP4 203.0.113.8"
    );
}

// ===== properties =====

fn token() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9/+.-]{1,12}"
}

fn media_section() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec!["audio", "video", "application", "text", "image"]),
        0u16..=65535,
        prop::sample::select(vec![
            "RTP/AVP",
            "RTP/SAVPF",
            "UDP/TLS/RTP/SAVPF",
            "udptl",
            "TCP/BFCP",
        ]),
        prop::collection::vec("[0-9]{1,3}", 1..4),
        prop::option::of(prop::sample::select(vec![
            "10.0.1.2",
            "0.0.0.0",
            "2001:db8::1",
            "233.252.0.1/16",
        ])),
        prop::collection::vec(
            prop::sample::select(vec![
                "a=sendonly".to_owned(),
                "a=inactive".to_owned(),
                "a=recvonly".to_owned(),
                "a=rtcp-mux".to_owned(),
                "a=rtcp:5001".to_owned(),
                "a=rtcp:5003 IN IP4 192.0.2.4".to_owned(),
                "a=ice-ufrag:abcd".to_owned(),
                "a=candidate:1 1 UDP 2130706431 10.0.1.2 5000 typ host".to_owned(),
                "a=candidate:1 2 UDP 2130706430 10.0.1.2 5001 typ host".to_owned(),
                "a=end-of-candidates".to_owned(),
                "b=AS:64".to_owned(),
                "i=title".to_owned(),
                "a=x-unknown:1 2 3".to_owned(),
            ]),
            0..6,
        ),
    )
        .prop_map(|(media, port, proto, fmts, conn, attrs)| {
            let mut s = format!("m={media} {port} {proto} {}\r\n", fmts.join(" "));
            if let Some(c) = conn {
                let at = if c.contains(':') { "IP6" } else { "IP4" };
                s += &format!("c=IN {at} {c}\r\n");
            }
            for a in attrs {
                s += &a;
                s += "\r\n";
            }
            s
        })
}

fn sdp_text() -> impl Strategy<Value = String> {
    (
        token(),
        prop::option::of(prop::sample::select(vec![
            "10.0.1.2",
            "0.0.0.0",
            "198.51.100.3",
            "host.example",
        ])),
        prop::option::of(prop::sample::select(vec![
            "a=sendonly",
            "a=inactive",
            "a=ice-pwd:xyz",
            "a=ice-lite",
        ])),
        prop::collection::vec(media_section(), 0..5),
        prop::bool::ANY,
    )
        .prop_map(|(user, conn, attr, media, final_eol)| {
            let mut s = format!("v=0\r\no={user} 1 1 IN IP4 10.0.1.2\r\ns=-\r\n");
            if let Some(c) = conn {
                s += &format!("c=IN IP4 {c}\r\n");
            }
            s += "t=0 0\r\n";
            if let Some(a) = attr {
                s += a;
                s += "\r\n";
            }
            for m in media {
                s += &m;
            }
            if !final_eol {
                s.truncate(s.len() - 2);
            }
            s
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parse_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        if let Ok(s) = Sdp::parse(&bytes) {
            prop_assert_eq!(s.to_bytes(), bytes);
        }
    }

    #[test]
    fn generated_sdp_round_trips_and_rewrites(text in sdp_text(), ice in 0usize..3) {
        let sdp = Sdp::parse(text.as_bytes()).unwrap();
        prop_assert_eq!(sdp.to_string(), text.clone());
        let policy = [IcePolicy::AddRelayCandidate, IcePolicy::Strip, IcePolicy::Passthrough][ice];
        let mut rewritten = sdp.clone();
        let mut relay = MemRelay::default();
        let report = rewrite_offer(&mut rewritten, KEY, Party::Caller, policy, &mut relay).unwrap();
        prop_assert_eq!(report.streams.len(), sdp.media().len());
        let again = Sdp::parse(&rewritten.to_bytes()).unwrap();
        prop_assert_eq!(again.media().len(), sdp.media().len());
        for (i, outcome) in report.streams.iter().enumerate() {
            match outcome {
                StreamOutcome::Relayed { relay: ep, .. } => {
                    // What the peer reads back is the relay's address:port.
                    prop_assert_eq!(again.media()[i].media_line().port, ep.rtp.port());
                    prop_assert_eq!(again.effective_connection(i).unwrap().ip(), Some(ep.rtp.ip()));
                }
                StreamOutcome::Skipped { .. } => {
                    // Left alone: same port, same effective address.
                    prop_assert_eq!(again.media()[i].media_line(), sdp.media()[i].media_line());
                    prop_assert_eq!(again.effective_connection(i), sdp.effective_connection(i));
                    prop_assert_eq!(again.hold(i), sdp.hold(i));
                }
            }
            prop_assert_eq!(again.effective_direction(i), sdp.effective_direction(i));
        }
        if policy == IcePolicy::Strip {
            prop_assert!(!again.to_string().contains("a=candidate") && !again.to_string().contains("a=ice-"));
        }
        if policy == IcePolicy::Passthrough {
            let ice = |s: &Sdp| s.to_string().lines().filter(|l| l.starts_with("a=candidate") || l.starts_with("a=ice")).map(str::to_owned).collect::<Vec<_>>();
            prop_assert_eq!(ice(&again), ice(&sdp));
        }
    }
}
