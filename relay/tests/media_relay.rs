//! The media relay core in memory: forwarding through symmetric NATs, strict latching
//! against a sprayer (and first-packet latching falling for it), re-offers, ICE relatch,
//! rtcp-mux, IPv6, limits, timeouts, accounting, draining, and no port leaks.

mod media;

use media::*;
use proptest::prelude::*;
use relay::media::{
    Command, DropReason, EndReason, Input, LatchVia, Latching, MediaError, MediaEvent, MediaRelay,
    PortAllocation, Role, SignalRequest, Verdict,
};
use relay::sdp::Sdp;
use std::net::SocketAddr;
use std::time::Duration;

fn fwd(v: Verdict) -> (SocketAddr, SocketAddr) {
    match v {
        Verdict::Forward { from, to } => (from, to),
        Verdict::Drop(r) => panic!("dropped: {r:?}"),
    }
}

#[test]
fn forwards_both_ways_through_symmetric_nats() {
    let mut w = World::new(config());
    w.call(false);
    let to_a = w.to_relay_from_a.unwrap();
    let to_b = w.to_relay_from_b.unwrap();
    assert_eq!(to_a.rtp.ip(), ip(RELAY));
    assert_eq!(to_a.rtcp.port(), to_a.rtp.port() + 1);
    assert_ne!(to_a.rtp, to_b.rtp);
    // A's first packet: latches A's leg, goes to B's SDP address (B not latched yet).
    let (from, to) = fwd(w.send_a(A_MEDIA, &rtp(0, 1)));
    assert_eq!((from, to), (to_b.rtp, addr(B_SDP)));
    // B's first packet latches B's leg and goes to A's latched (NAT) address.
    let (from, to) = fwd(w.send_b(B_MEDIA, &rtp(0, 1)));
    assert_eq!((from, to), (to_a.rtp, addr(A_MEDIA)));
    // Now A's media goes to B's latched address, not its SDP address.
    assert_eq!(fwd(w.send_a(A_MEDIA, &rtp(0, 2))).1, addr(B_MEDIA));
    // RTCP port to RTCP port.
    let (from, to) = fwd(w.packet(to_a.rtcp, "198.51.100.10:50002", &rr(0, 0, 0)));
    assert_eq!(from, to_b.rtcp);
    assert_eq!(to, SocketAddr::new(addr(B_SDP).ip(), 6001));
    let latched: Vec<_> = w
        .events
        .iter()
        .filter_map(|e| match e {
            MediaEvent::Latched {
                side, addr, via, ..
            } => Some((*side, *addr, *via)),
            _ => None,
        })
        .collect();
    assert_eq!(latched.len(), 3);
    assert!(latched.iter().all(|l| l.2 == LatchVia::Window));
    // The driver was asked to bind the four ports of each leg pair.
    assert_eq!(w.bound.len(), 4);
}

/// A third host sprays every port of the range before the offer, between offer and
/// answer, during the call and after the window: under strict latching nothing it sends
/// is relayed and nothing is sent to it.
#[test]
fn strict_latching_never_latches_a_sprayer() {
    let mut w = World::new(config());
    let ports = 30000..=30099u16;
    let spray = |w: &mut World| {
        for p in ports.clone() {
            for data in [rtp(0, 9), rr(0, 0, 0)] {
                let v = w.packet(SocketAddr::new(ip(RELAY), p), SPRAYER, &data);
                assert!(
                    matches!(v, Verdict::Drop(_)),
                    "sprayer packet relayed: {v:?}"
                );
            }
        }
    };
    spray(&mut w);
    assert!(w.relay.unknown_port_drops() >= 200);
    let ra = w.req("call-1", "ta", None, A_SIG);
    w.offer(&ra, &sdp_text(addr(A_SDP), false, None, ""))
        .unwrap();
    spray(&mut w);
    let rb = w.req("call-1", "ta", Some("tb"), B_SIG);
    w.answer(&rb, &sdp_text(addr(B_SDP), false, None, ""))
        .unwrap();
    spray(&mut w);
    for seq in 0..50 {
        let (_, to) = fwd(w.send_a(A_MEDIA, &rtp(0, seq)));
        assert_ne!(to, addr(SPRAYER));
        let (_, to) = fwd(w.send_b(B_MEDIA, &rtp(8, seq)));
        assert_eq!(to, addr(A_MEDIA));
        if seq % 10 == 0 {
            spray(&mut w);
        }
    }
    w.advance(Duration::from_secs(30));
    spray(&mut w);
    assert_eq!(fwd(w.send_a(A_MEDIA, &rtp(0, 99))).1, addr(B_MEDIA));
    // No latch ever named the sprayer; its rejections were reported, coalesced.
    for e in &w.events {
        if let MediaEvent::Latched { addr: a, .. } = e {
            assert_ne!(*a, addr(SPRAYER));
        }
    }
    let rejected: Vec<_> = w
        .events
        .iter()
        .filter_map(|e| match e {
            MediaEvent::SourceRejected {
                source,
                reason,
                counted,
                coalesced,
                ..
            } => Some((*source, *reason, *counted, *coalesced)),
            _ => None,
        })
        .collect();
    assert!(!rejected.is_empty());
    assert!(rejected.iter().all(|r| r.0 == addr(SPRAYER)));
    assert!(
        rejected.iter().any(|r| r.3 > 0),
        "rejections were not coalesced"
    );
    assert!(rejected.iter().any(|r| r.1 == DropReason::WrongAddress));
    assert!(rejected.iter().any(|r| r.1 == DropReason::WrongSource));
    // A packet of the right source IP that is not RTP of the call is implausible.
    let mut w2 = World::new(config());
    let ra = w2.req("c", "ta", None, A_SIG);
    w2.offer(&ra, &sdp_text(addr(A_SDP), false, None, ""))
        .unwrap();
    let rb = w2.req("c", "ta", Some("tb"), B_SIG);
    w2.answer(&rb, &sdp_text(addr(B_SDP), false, None, ""))
        .unwrap();
    assert_eq!(
        w2.send_a(A_MEDIA, &rtp(96, 1)),
        Verdict::Drop(DropReason::Implausible)
    );
    assert_eq!(
        w2.send_a(A_MEDIA, b"hello"),
        Verdict::Drop(DropReason::Implausible)
    );
    // After the window, an unlatched leg takes nothing.
    w2.advance(Duration::from_secs(21));
    assert_eq!(
        w2.send_a(A_MEDIA, &rtp(0, 1)),
        Verdict::Drop(DropReason::WindowClosed)
    );
}

/// MediaProxy's first-packet latching: a sprayer that is first captures the leg, and the
/// callee's media goes to it. The same run under strict latching sends it nothing.
#[test]
fn first_packet_latching_falls_for_a_sprayer_strict_does_not() {
    for mode in [Latching::FirstPacket, Latching::Strict] {
        let mut c = config();
        c.latching = mode;
        let mut w = World::new(c);
        w.call(false);
        let to_a = w.to_relay_from_a.unwrap();
        let sprayed = w.packet(to_a.rtp, SPRAYER, &rtp(0, 1));
        let _ = w.send_a(A_MEDIA, &rtp(0, 1));
        let (_, to) = fwd(w.send_b(B_MEDIA, &rtp(0, 1)));
        match mode {
            Latching::FirstPacket => {
                assert!(matches!(sprayed, Verdict::Forward { .. }));
                assert_eq!(
                    to,
                    addr(SPRAYER),
                    "first-packet: B's media goes to the sprayer"
                );
            }
            _ => {
                assert_eq!(sprayed, Verdict::Drop(DropReason::WrongAddress));
                assert_eq!(to, addr(A_MEDIA));
            }
        }
    }
}

#[test]
fn a_re_offer_reopens_the_window() {
    let mut w = World::new(config());
    w.call(false);
    fwd(w.send_a(A_MEDIA, &rtp(0, 1)));
    fwd(w.send_b(B_MEDIA, &rtp(0, 1)));
    w.advance(Duration::from_secs(25));
    // A's NAT rebinds to a new port: refused while the window is closed.
    let moved = "198.51.100.10:50777";
    assert_eq!(
        w.send_a(moved, &rtp(0, 2)),
        Verdict::Drop(DropReason::WrongSource)
    );
    assert_eq!(fwd(w.send_b(B_MEDIA, &rtp(0, 2))).1, addr(A_MEDIA));
    // A re-INVITE (offer by A) reopens A's window; the new source latches.
    let ra = w.req("call-1", "ta", Some("tb"), A_SIG);
    w.offer(&ra, &sdp_text(addr(A_SDP), false, None, ""))
        .unwrap();
    fwd(w.send_a(moved, &rtp(0, 3)));
    assert_eq!(fwd(w.send_b(B_MEDIA, &rtp(0, 3))).1, addr(moved));
    // Once the window closed again, the old source is the stranger.
    w.advance(Duration::from_secs(21));
    fwd(w.send_a(moved, &rtp(0, 4)));
    assert_eq!(
        w.send_a(A_MEDIA, &rtp(0, 5)),
        Verdict::Drop(DropReason::WrongSource)
    );
    // A re-offer from another IP than A signalled from does not let that IP in.
    let mut w2 = World::new(config());
    w2.call(false);
    assert_eq!(
        w2.send_a("198.51.100.11:50001", &rtp(0, 1)),
        Verdict::Drop(DropReason::WrongAddress)
    );
}

/// A re-offer from the callee (Kamailio swaps the tags: from-tag = callee's) keeps the
/// sides apart.
#[test]
fn a_re_offer_from_the_callee_is_side_b() {
    let mut w = World::new(config());
    w.call(false);
    let before_a = w.to_relay_from_a.unwrap();
    let rb = w.req("call-1", "tb", Some("ta"), B_SIG);
    let mut s = Sdp::parse(sdp_text(addr(B_SDP), false, None, "").as_bytes()).unwrap();
    let r = w.relay.offer(w.now, &rb, &mut s).unwrap();
    // B's description points A at A's leg, the same as B's answer did.
    assert_eq!(relay_of(&r), before_a);
    assert_eq!(w.relay.session_count(), 1);
}

#[test]
fn a_verified_ice_check_moves_the_latch() {
    let mut w = World::new(config());
    let ra = w.req("call-1", "ta", None, A_SIG);
    w.offer(
        &ra,
        &sdp_text(
            addr(A_SDP),
            false,
            Some(("ufA", "pwdA-0123456789abcdefgh")),
            "",
        ),
    )
    .unwrap();
    let rb = w.req("call-1", "ta", Some("tb"), B_SIG);
    w.answer(
        &rb,
        &sdp_text(
            addr(B_SDP),
            false,
            Some(("ufB", "pwdB-0123456789abcdefgh")),
            "",
        ),
    )
    .unwrap();
    fwd(w.send_a(A_MEDIA, &rtp(0, 1)));
    fwd(w.send_b(B_MEDIA, &rtp(0, 1)));
    w.advance(Duration::from_secs(300 / 10));
    let rebound = "198.51.100.99:1234";
    // A wrong password or username: dropped.
    assert!(matches!(
        w.send_a(rebound, &ice_check("ufB:ufA", "wrong")),
        Verdict::Drop(_)
    ));
    assert!(matches!(
        w.send_a(rebound, &ice_check("ufX:ufA", "pwdB-0123456789abcdefgh")),
        Verdict::Drop(_)
    ));
    // The real check (USERNAME B:A, key B's password) moves A's latch, and is relayed.
    let (_, to) = fwd(w.send_a(rebound, &ice_check("ufB:ufA", "pwdB-0123456789abcdefgh")));
    assert_eq!(to, addr(B_MEDIA));
    assert!(w.events.iter().any(|e| matches!(
        e,
        MediaEvent::Latched { via: LatchVia::IceCheck, addr: a, .. } if *a == addr(rebound)
    )));
    assert_eq!(fwd(w.send_b(B_MEDIA, &rtp(0, 2))).1, addr(rebound));
    // The old address is refused now.
    assert_eq!(
        w.send_a(A_MEDIA, &rtp(0, 3)),
        Verdict::Drop(DropReason::WrongSource)
    );
    // The rewrite added the relay candidate to A's offer.
    let mut s =
        Sdp::parse(sdp_text(addr(A_SDP), false, Some(("ufA", "p")), "").as_bytes()).unwrap();
    let mut req = w.req("call-1", "ta", Some("tb"), A_SIG);
    req.ice_priority = relay::sdp::IcePriority::Highest;
    w.relay.offer(w.now, &req, &mut s).unwrap();
    let text = String::from_utf8(s.to_bytes()).unwrap();
    let prio = relay::sdp::relay_candidate_priority_with(relay::sdp::IcePriority::Highest, 1);
    assert!(text.contains(&format!("{prio} 203.0.113.1")), "{text}");
    assert_eq!(prio >> 24, 126);
}

#[test]
fn rtcp_mux_uses_one_port_and_reports_loss_and_jitter() {
    let mut w = World::new(config());
    w.call(true);
    let to_a = w.to_relay_from_a.unwrap();
    let to_b = w.to_relay_from_b.unwrap();
    assert_eq!(to_a.rtp, to_a.rtcp);
    assert_eq!(w.bound.len(), 2, "only RTP ports bound under rtcp-mux");
    fwd(w.send_a(A_MEDIA, &rtp(0, 1)));
    fwd(w.send_b(B_MEDIA, &rtp(0, 1)));
    // B's RR on the RTP port goes to A's latched address from B's... A's leg.
    let (from, to) = fwd(w.send_b(B_MEDIA, &rr(64, 3, 160)));
    assert_eq!((from, to), (to_a.rtp, addr(A_MEDIA)));
    assert_eq!(w.relay.delete(w.now, "call-1", None), 1);
    w.drain();
    assert!(w.bound.is_empty());
    let record = w
        .events
        .iter()
        .find_map(|e| match e {
            MediaEvent::SessionEnded {
                record,
                reason: EndReason::Deleted,
                ..
            } => Some(record.clone()),
            _ => None,
        })
        .unwrap();
    let a_to_b = &record.streams[0].directions[0];
    assert_eq!(a_to_b.rtcp_fraction_lost, Some(0.25));
    assert_eq!(a_to_b.rtcp_cumulative_lost, Some(3));
    assert_eq!(a_to_b.rtcp_jitter_ms, Some(20.0));
    assert_eq!(a_to_b.codec.as_deref(), Some("PCMU/8000"));
    let _ = to_b;
}

#[test]
fn rtcp_mux_refused_by_the_answer_keeps_rtcp_ports() {
    let mut w = World::new(config());
    let ra = w.req("call-1", "ta", None, A_SIG);
    w.offer(&ra, &sdp_text(addr(A_SDP), true, None, ""))
        .unwrap();
    assert_eq!(w.bound.len(), 4, "RTCP ports ready until the answer");
    let rb = w.req("call-1", "ta", Some("tb"), B_SIG);
    w.answer(&rb, &sdp_text(addr(B_SDP), false, None, ""))
        .unwrap();
    assert_eq!(w.bound.len(), 4);
    let to_a = w.to_relay_from_a.unwrap();
    let to_b = w.to_relay_from_b.unwrap();
    assert_eq!(to_a.rtcp.port(), to_a.rtp.port() + 1);
    // A falls back to RTCP on its own port; B's RTCP goes to A's RTP port + 1.
    let (from, to) = fwd(w.packet(to_b.rtcp, "198.51.100.20:60002", &rr(0, 0, 0)));
    assert_eq!((from, to), (to_a.rtcp, addr("10.0.0.2:4001")));
    // A re-offer with mux accepted by both closes them.
    let ra = w.req("call-1", "ta", Some("tb"), A_SIG);
    w.offer(&ra, &sdp_text(addr(A_SDP), true, None, ""))
        .unwrap();
    let rb = w.req("call-1", "ta", Some("tb"), B_SIG);
    w.answer(&rb, &sdp_text(addr(B_SDP), true, None, ""))
        .unwrap();
    assert_eq!(w.bound.len(), 2);
}

#[test]
fn ipv6_calls() {
    let mut w = World::new(config());
    let a6 = "[2001:db8:a::2]:4000";
    let b6 = "[2001:db8:b::3]:6000";
    let mut ra = SignalRequest::new("v6", "ta", None, Role::Offer);
    ra.received_from = Some(addr("[2001:db8:a::2]:5060"));
    let text = w.offer(&ra, &sdp_text(addr(a6), false, None, "")).unwrap();
    assert!(text.contains("c=IN IP6 2001:db8::1"), "{text}");
    let mut rb = SignalRequest::new("v6", "ta", Some("tb"), Role::Answer);
    rb.received_from = Some(addr("[2001:db8:b::3]:5060"));
    w.answer(&rb, &sdp_text(addr(b6), false, None, "")).unwrap();
    let (from, to) = fwd(w.send_a(a6, &rtp(0, 1)));
    assert_eq!(from, w.to_relay_from_b.unwrap().rtp);
    assert_eq!(to, addr(b6));
    assert!(from.is_ipv6());
}

#[test]
fn advertised_address_is_written_for_a_relay_behind_nat() {
    let mut c = config();
    c.advertised = Some(ip("198.51.100.200"));
    let mut w = World::new(c);
    let ra = w.req("c", "ta", None, A_SIG);
    let text = w
        .offer(&ra, &sdp_text(addr(A_SDP), false, None, ""))
        .unwrap();
    assert!(text.contains("c=IN IP4 198.51.100.200"), "{text}");
    // Packets still arrive on the local address.
    assert!(w.bound.iter().all(|a| a.ip() == ip(RELAY)));
}

#[test]
fn streams_max_refuses_and_leaves_nothing_behind() {
    let mut c = config();
    c.streams_max = 2;
    let mut w = World::new(c);
    let extra = "m=video 4002 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\nm=image 4004 udptl t38\r\n";
    let ra = w.req("c", "ta", None, A_SIG);
    let body = sdp_text(addr(A_SDP), false, None, extra);
    let mut s = Sdp::parse(body.as_bytes()).unwrap();
    let err = w.relay.offer(w.now, &ra, &mut s).unwrap_err();
    w.drain();
    assert_eq!(err, MediaError::StreamsMax { limit: 2 });
    assert_eq!(s.to_bytes(), body.as_bytes(), "the SDP changed");
    assert_eq!(w.relay.session_count(), 0);
    assert_eq!(w.relay.free_pairs(), w.relay.total_pairs());
    assert!(w.bound.is_empty());
    // Three streams with the default limit: audio, video and T.38 relayed.
    let mut w = World::new(config());
    let text = w.offer(&ra, &body).unwrap();
    assert_eq!(text.matches("m=").count(), 3);
    assert_eq!(w.relay.free_pairs(), w.relay.total_pairs() - 6);
}

#[test]
fn udptl_streams_latch_on_any_datagram() {
    let mut w = World::new(config());
    let body = "v=0\r\no=- 1 1 IN IP4 10.0.0.2\r\ns=-\r\nc=IN IP4 10.0.0.2\r\nt=0 0\r\nm=image 4004 udptl t38\r\n";
    let ra = w.req("fax", "ta", None, A_SIG);
    w.offer(&ra, body).unwrap();
    let rb = w.req("fax", "ta", Some("tb"), B_SIG);
    w.answer(&rb, &body.replace("10.0.0.2", "10.1.0.3"))
        .unwrap();
    // UDPTL starts with a sequence number: first byte 0 looks like STUN to RFC 7983.
    let (_, to) = fwd(w.send_a(A_MEDIA, &[0, 1, 2, 3, 4]));
    assert_eq!(to, addr("10.1.0.3:4004"));
}

#[test]
fn idle_timeouts_end_sessions_with_a_notice() {
    // Before media.
    let mut w = World::new(config());
    w.call(false);
    assert_eq!(
        w.relay.poll_timeout(),
        Some(w.now + Duration::from_secs(15)),
        "before media the relay looks every idle_timeout / 4"
    );
    w.advance(Duration::from_secs(179));
    assert_eq!(w.relay.session_count(), 1);
    w.advance(Duration::from_secs(1));
    assert_eq!(w.relay.session_count(), 0);
    let n = w.relay.poll_notice().unwrap();
    assert_eq!(
        (n.call_id.as_str(), n.from_tag.as_str(), n.reason),
        ("call-1", "ta", EndReason::IdleBeforeMedia)
    );
    assert!(w.bound.is_empty());
    // After media: packets keep it alive, silence ends it.
    let mut w = World::new(config());
    w.call(false);
    fwd(w.send_a(A_MEDIA, &rtp(0, 0)));
    for _ in 0..10 {
        w.advance(Duration::from_secs(50));
        fwd(w.send_a(A_MEDIA, &rtp(0, 1)));
    }
    w.advance(Duration::from_secs(59));
    assert_eq!(w.relay.session_count(), 1);
    w.advance(Duration::from_secs(2));
    assert_eq!(w.relay.session_count(), 0);
    assert_eq!(w.relay.poll_notice().unwrap().reason, EndReason::Idle);
    // A sprayer does not keep a session alive.
    let mut w = World::new(config());
    w.call(false);
    fwd(w.send_a(A_MEDIA, &rtp(0, 1)));
    for _ in 0..7 {
        w.advance(Duration::from_secs(10));
        let _ = w.send_a(SPRAYER, &rtp(0, 1));
    }
    assert_eq!(w.relay.session_count(), 0);
}

#[test]
fn held_streams_are_not_timed_out() {
    let mut w = World::new(config());
    w.call(false);
    fwd(w.send_a(A_MEDIA, &rtp(0, 1)));
    let ra = w.req("call-1", "ta", Some("tb"), A_SIG);
    w.offer(&ra, &sdp_text(addr(A_SDP), false, None, "a=sendonly\r\n"))
        .unwrap();
    assert!(
        w.events
            .iter()
            .any(|e| matches!(e, MediaEvent::StreamHeld { held: true, .. }))
    );
    assert_eq!(w.relay.poll_timeout(), None);
    w.advance(Duration::from_secs(3600));
    assert_eq!(w.relay.session_count(), 1);
    // Off hold: the idle timeout applies again.
    w.offer(&ra, &sdp_text(addr(A_SDP), false, None, ""))
        .unwrap();
    assert!(
        w.events
            .iter()
            .any(|e| matches!(e, MediaEvent::StreamHeld { held: false, .. }))
    );
    w.advance(Duration::from_secs(61));
    assert_eq!(w.relay.session_count(), 0);
}

#[test]
fn asymmetric_clients_are_not_latched() {
    let mut c = config();
    c.asymmetric_clients = vec!["*ATA 18*".into()];
    let mut w = World::new(c);
    let mut ra = w.req("call-1", "ta", None, A_SIG);
    ra.user_agent = Some("Cisco ATA 186 v3");
    w.offer(&ra, &sdp_text(addr(A_SDP), false, None, ""))
        .unwrap();
    let rb = w.req("call-1", "ta", Some("tb"), B_SIG);
    w.answer(&rb, &sdp_text(addr(B_SDP), false, None, ""))
        .unwrap();
    // A sends from anywhere; media to A goes to its SDP address.
    fwd(w.send_a("192.0.2.200:1", &rtp(0, 1)));
    fwd(w.send_a(A_MEDIA, &rtp(0, 1)));
    assert_eq!(fwd(w.send_b(B_MEDIA, &rtp(0, 1))).1, addr(A_SDP));
}

#[test]
fn accounting_record() {
    let mut w = World::new(config());
    let mut ra = w.req("call-\"1\"", "ta", None, A_SIG);
    ra.user_agent = Some("baresip");
    w.offer(&ra, &sdp_text(addr(A_SDP), false, None, ""))
        .unwrap();
    w.advance(Duration::from_millis(1500));
    let rb = w.req("call-\"1\"", "ta", Some("tb"), B_SIG);
    w.answer(&rb, &sdp_text(addr(B_SDP), false, None, ""))
        .unwrap();
    w.advance(Duration::from_millis(500));
    for s in 0..10 {
        fwd(w.send_a(A_MEDIA, &rtp(8, s)));
    }
    let _ = w.send_a(SPRAYER, &rtp(8, 1));
    let q = w.relay.query(w.now, "call-\"1\"");
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].reason, None);
    w.advance(Duration::from_secs(1));
    w.relay.delete(w.now, "call-\"1\"", Some("tb"));
    w.drain();
    let record = w
        .events
        .iter()
        .find_map(|e| match e {
            MediaEvent::SessionEnded { record, .. } => Some(record.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(record.reason, Some(EndReason::Deleted));
    assert_eq!(record.to_tag.as_deref(), Some("tb"));
    assert_eq!(record.duration, Duration::from_secs(3));
    let d = &record.streams[0].directions[0];
    assert_eq!((d.packets, d.bytes), (10, 1720));
    assert_eq!(d.codec.as_deref(), Some("PCMA/8000"));
    assert_eq!(d.setup_delay, Some(Duration::from_secs(2)));
    assert_eq!(d.drops.wrong_address, 1);
    assert_eq!(d.source, Some(addr(A_MEDIA)));
    let back = &record.streams[0].directions[1];
    assert_eq!((back.packets, back.codec.as_ref()), (0, None));
    let json = record.to_json_line();
    assert!(!json.contains('\n'));
    for needle in [
        "\"call_id\":\"call-\\\"1\\\"\"",
        "\"user_agents\":[\"baresip\",null]",
        "\"reason\":\"deleted\"",
        "\"packets\":10,\"bytes\":1720",
        "\"wrong_address\":1",
        "\"codec\":\"PCMA/8000\"",
        "\"setup_delay_ms\":2000",
        "\"duration_ms\":3000",
    ] {
        assert!(json.contains(needle), "{needle} not in {json}");
    }
}

#[test]
fn draining_refuses_new_sessions_only() {
    let mut w = World::new(config());
    w.call(false);
    w.relay.set_draining(true);
    let r2 = w.req("call-2", "tx", None, A_SIG);
    assert_eq!(
        w.offer(&r2, &sdp_text(addr(A_SDP), false, None, ""))
            .unwrap_err(),
        MediaError::Draining
    );
    let ra = w.req("call-1", "ta", Some("tb"), A_SIG);
    w.offer(&ra, &sdp_text(addr(A_SDP), false, None, ""))
        .unwrap();
    assert!(!w.relay.is_drained());
    w.relay.delete(w.now, "call-1", None);
    assert!(w.relay.is_drained());
    // An answer for an unknown call.
    let rb = w.req("nope", "x", Some("y"), B_SIG);
    assert_eq!(
        w.answer(&rb, &sdp_text(addr(B_SDP), false, None, ""))
            .unwrap_err(),
        MediaError::UnknownSession
    );
}

#[test]
fn bind_failure_quarantines_the_pair_and_ends_the_session() {
    let mut w = World::new(config());
    w.call(false);
    let port = *w.bound.iter().next().unwrap();
    w.relay.handle_input(w.now, Input::BindFailed(port));
    w.bound.remove(&port); // never bound
    w.drain();
    assert_eq!(w.relay.session_count(), 0);
    assert_eq!(w.relay.ports_quarantined(), 1);
    assert_eq!(w.relay.free_pairs(), w.relay.total_pairs() - 1);
    assert_eq!(w.relay.poll_notice().unwrap().reason, EndReason::BindFailed);
    assert!(w.bound.is_empty());
}

#[test]
fn handle_input_wraps_the_fast_path() {
    let mut w = World::new(config());
    w.call(false);
    let to_a = w.to_relay_from_a.unwrap();
    let data = rtp(0, 1);
    w.relay.handle_input(
        w.now,
        Input::Packet {
            local: to_a.rtp,
            remote: addr(A_MEDIA),
            data: &data,
        },
    );
    let t = w.relay.poll_transmit().unwrap();
    assert_eq!(
        (t.from, t.to, &t.data),
        (w.to_relay_from_b.unwrap().rtp, addr(B_SDP), &data)
    );
    assert!(w.relay.poll_transmit().is_none());
}

#[test]
fn sequential_allocation_is_deterministic() {
    let mut c = config();
    c.port_allocation = PortAllocation::Sequential;
    let mut w = World::new(c);
    w.call(false);
    assert_eq!(w.to_relay_from_b.unwrap().rtp.port(), 30002);
    assert_eq!(w.to_relay_from_a.unwrap().rtp.port(), 30000);
}

#[derive(Debug, Clone)]
enum Op {
    Offer(u8),
    Answer(u8),
    Delete(u8),
    Media(u8, bool),
    Spray(u16),
    Wait(u16),
    BindFail(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..6).prop_map(Op::Offer),
        (0u8..6).prop_map(Op::Answer),
        (0u8..6).prop_map(Op::Delete),
        ((0u8..6), any::<bool>()).prop_map(|(c, a)| Op::Media(c, a)),
        (30000u16..30020).prop_map(Op::Spray),
        (1u16..200).prop_map(Op::Wait),
        (0u8..40).prop_map(Op::BindFail),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Whatever happens, once every session has ended all ports are free (or quarantined
    /// after a failed bind) and every bound socket was closed.
    #[test]
    fn no_port_leaks(ops in proptest::collection::vec(op(), 1..60)) {
        let mut c = config();
        c.addresses.truncate(1);
        c.ports = 30000..=30019; // 10 pairs: exhaustion happens
        let mut w = World::new(c);
        for o in ops {
            match o {
                Op::Offer(n) => {
                    let call = format!("c{n}");
                    let r = w.req(&call, "ta", None, A_SIG);
                    let _ = w.offer(&r, &sdp_text(addr(A_SDP), n % 2 == 0, None, ""));
                }
                Op::Answer(n) => {
                    let call = format!("c{n}");
                    let r = w.req(&call, "ta", Some("tb"), B_SIG);
                    let _ = w.answer(&r, &sdp_text(addr(B_SDP), n % 3 == 0, None, ""));
                }
                Op::Delete(n) => {
                    w.relay.delete(w.now, &format!("c{n}"), None);
                    w.drain();
                }
                Op::Media(n, from_a) => {
                    let q = w.relay.query(w.now, &format!("c{n}"));
                    if q.is_empty() { continue; }
                    for p in 30000..30020u16 {
                        let src = if from_a { A_MEDIA } else { B_MEDIA };
                        let _ = w.packet(SocketAddr::new(ip(RELAY), p), src, &rtp(0, p));
                    }
                }
                Op::Spray(p) => {
                    let _ = w.packet(SocketAddr::new(ip(RELAY), p), SPRAYER, &rtp(0, 1));
                }
                Op::Wait(s) => w.advance(Duration::from_secs(u64::from(s))),
                Op::BindFail(k) => {
                    if let Some(a) = w.bound.iter().nth(usize::from(k)).copied() {
                        w.relay.handle_input(w.now, Input::BindFailed(a));
                        w.bound.remove(&a);
                        w.drain();
                    }
                }
            }
            prop_assert_eq!(
                w.relay.free_pairs() + w.relay.ports_quarantined() + 2 * count_streams(&w),
                w.relay.total_pairs()
            );
        }
        for call in w.relay.calls() {
            w.relay.delete(w.now, &call, None);
        }
        w.drain();
        prop_assert_eq!(w.relay.session_count(), 0);
        prop_assert_eq!(w.relay.free_pairs() + w.relay.ports_quarantined(), w.relay.total_pairs());
        prop_assert!(w.bound.is_empty(), "sockets left bound: {:?}", w.bound);
        prop_assert_eq!(w.relay.poll_timeout(), None);
    }
}

fn count_streams(w: &World) -> usize {
    w.relay
        .calls()
        .iter()
        .flat_map(|c| w.relay.query(w.now, c))
        .map(|r| r.streams.len())
        .sum()
}

#[test]
fn config_is_checked() {
    let mut c = config();
    c.addresses.clear();
    assert!(MediaRelay::new(c).is_err());
    let mut c = config();
    c.ports = 30001..=30001;
    assert!(MediaRelay::new(c).is_err());
    let mut c = config();
    c.addresses.push(ip("0.0.0.0"));
    assert!(MediaRelay::new(c).is_err());
    let mut c = config();
    c.streams_max = 0;
    assert!(MediaRelay::new(c).is_err());
    let mut c = config();
    c.asymmetric_clients = vec![" ".into()];
    assert!(MediaRelay::new(c).is_err());
    let _ = Command::BindPort(addr(A_SIG));
}
