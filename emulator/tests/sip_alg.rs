//! The SIP ALG (`sip_alg: rewrite`) on packets: UDP and TCP, payloads that grow and
//! shrink, TCP sequence/acknowledgement adjustment over several segments and a
//! retransmission, checksums, media mappings, counters and events; and a property that a
//! TCP byte stream through the ALG stays consistent.

use emulator::nat::{NatConfig, NatEvent, Preset, SipAlgMode};
use emulator::rng::SimRng;
use emulator::wire::{self, Endpoint, L4, Proto, checksums_valid, tcp_flags};
use emulator::{Direction, Nat, PacketBuf, Verdict};
use etherparse::PacketBuilder;
use proptest::prelude::*;
use std::net::IpAddr;
use std::time::Instant;

const EXT: [u8; 4] = [203, 0, 113, 11];
const SRV: [u8; 4] = [203, 0, 113, 5];

fn now() -> Instant {
    #[allow(clippy::disallowed_methods)] // the tests' clock origin
    Instant::now()
}

fn nat(alg: SipAlgMode, preset: Preset) -> Nat {
    let cfg = NatConfig::preset(preset, vec![IpAddr::from(EXT)]).sip_alg(alg);
    Nat::new(cfg, SimRng::new(7)).unwrap()
}

fn udp(src: [u8; 4], sp: u16, dst: [u8; 4], dp: u16, payload: &[u8]) -> PacketBuf {
    let mut v = Vec::new();
    PacketBuilder::ipv4(src, dst, 64)
        .udp(sp, dp)
        .write(&mut v, payload)
        .unwrap();
    PacketBuf::from_slice(&v)
}

#[allow(clippy::too_many_arguments)] // one TCP segment, every header field the tests set
fn tcp(
    src: [u8; 4],
    sp: u16,
    dst: [u8; 4],
    dp: u16,
    seq: u32,
    ack: Option<u32>,
    flags: u8,
    payload: &[u8],
) -> PacketBuf {
    let mut b = PacketBuilder::ipv4(src, dst, 64).tcp(sp, dp, seq, 65000);
    if let Some(a) = ack {
        b = b.ack(a);
    }
    if flags & tcp_flags::SYN != 0 {
        b = b.syn();
    }
    if flags & tcp_flags::PSH != 0 {
        b = b.psh();
    }
    let mut v = Vec::new();
    b.write(&mut v, payload).unwrap();
    PacketBuf::from_slice(&v)
}

fn payload(p: &PacketBuf) -> String {
    let info = wire::parse(p.as_slice()).unwrap();
    let off = info.payload_offset(p.as_slice()).unwrap();
    String::from_utf8(p.as_slice()[off..info.total_len].to_vec()).unwrap()
}

fn seq_ack(p: &PacketBuf) -> (u32, u32) {
    match wire::parse(p.as_slice()).unwrap().l4 {
        L4::Tcp { seq, ack, .. } => (seq, ack),
        other => panic!("{other:?}"),
    }
}

fn pass(n: &mut Nat, t: Instant, dir: Direction, mut p: PacketBuf) -> PacketBuf {
    let v = n.handle_packet(t, dir, &mut p);
    assert!(matches!(v, Verdict::Forward), "{v:?}");
    assert!(checksums_valid(p.as_slice()), "checksums after the ALG");
    let info = wire::parse(p.as_slice()).unwrap();
    assert_eq!(info.total_len, p.len(), "IP total length");
    p
}

/// The three-way handshake of 10.0.1.2:5060 → the server's 5060 through `n` (initial
/// sequence numbers `cisn` of the phone, `sisn` of the server).
fn handshake(n: &mut Nat, t: Instant, cisn: u32, sisn: u32) {
    let (c, s) = ([10, 0, 1, 2], SRV);
    pass(
        n,
        t,
        Direction::Outbound,
        tcp(c, 5060, s, 5060, cisn, None, tcp_flags::SYN, b""),
    );
    let syn_ack = tcp(
        s,
        5060,
        EXT,
        5060,
        sisn,
        Some(cisn + 1),
        tcp_flags::SYN,
        b"",
    );
    pass(n, t, Direction::Inbound, syn_ack);
    let ack = tcp(c, 5060, s, 5060, cisn + 1, Some(sisn + 1), 0, b"");
    pass(n, t, Direction::Outbound, ack);
}

/// A REGISTER over TCP from 10.0.1.2:5060 that the ALG grows by 8 bytes (two addresses).
fn register(cseq: u32) -> String {
    format!(
        "REGISTER sip:203.0.113.5 SIP/2.0\r\nVia: SIP/2.0/TCP 10.0.1.2:5060;branch=z9hG4bK{cseq}\r\nContact: <sip:alice@10.0.1.2:5060;transport=tcp>\r\nCSeq: {cseq} REGISTER\r\nContent-Length: 0\r\n\r\n"
    )
}

fn invite(private: &str, port: u16, rtp: u16) -> String {
    let sdp = format!(
        "v=0\r\no=alice 2890844526 2890844526 IN IP4 {private}\r\ns=-\r\nc=IN IP4 {private}\r\nt=0 0\r\nm=audio {rtp} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\nm=video 0 RTP/AVP 31\r\n"
    );
    format!(
        "INVITE sip:bob@203.0.113.5 SIP/2.0\r\nVia: SIP/2.0/UDP {private}:{port};branch=z9hG4bK776asdhds;rport\r\nMax-Forwards: 70\r\nTo: <sip:bob@203.0.113.5>\r\nFrom: <sip:alice@203.0.113.5>;tag=1928301774\r\nCall-ID: a84b4c76e66710\r\nCSeq: 314159 INVITE\r\nContact: <sip:alice@{private}:{port}>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
}

fn body_len_matches(msg: &str) {
    let (head, body) = msg.split_once("\r\n\r\n").unwrap();
    let cl: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(cl, body.len(), "Content-Length vs body in\n{msg}");
}

#[test]
fn udp_invite_grows_and_opens_media_mappings() {
    let t = now();
    let mut n = nat(SipAlgMode::Rewrite, Preset::PortRestricted);
    let msg = invite("10.0.1.2", 5060, 49170);
    let out = pass(
        &mut n,
        t,
        Direction::Outbound,
        udp([10, 0, 1, 2], 5060, SRV, 5060, msg.as_bytes()),
    );
    let p = payload(&out);
    assert!(
        p.contains("Via: SIP/2.0/UDP 203.0.113.11:5060;branch"),
        "{p}"
    );
    assert!(p.contains("Contact: <sip:alice@203.0.113.11:5060>"));
    assert!(p.contains("o=alice 2890844526 2890844526 IN IP4 203.0.113.11\r\n"));
    assert!(p.contains("c=IN IP4 203.0.113.11\r\n"));
    assert!(
        p.contains("m=audio 49170 RTP/AVP 0 101\r\n"),
        "preserved port"
    );
    assert!(p.contains("m=video 0 RTP/AVP 31\r\n"));
    assert!(p.len() > msg.len());
    body_len_matches(&p);
    // Media mappings (RTP and RTCP) exist, towards the signalling peer.
    let maps = n.mappings();
    for port in [49170, 49171] {
        assert!(
            maps.iter().any(|m| m.proto == Proto::Udp
                && m.internal == Endpoint::new(IpAddr::from([10, 0, 1, 2]), port)
                && m.remote.addr == IpAddr::from(SRV)),
            "no mapping for {port}: {maps:?}"
        );
    }
    let s = &n.stats().alg;
    assert_eq!(
        (
            s.messages,
            s.packets_rewritten,
            s.media_mappings,
            s.content_length_fixed
        ),
        (1, 1, 2, 1)
    );
    assert_eq!(s.fields, 4);
    let events: Vec<_> = std::iter::from_fn(|| n.poll_event()).collect();
    let alg = events
        .iter()
        .find_map(|e| match e {
            NatEvent::SipAlg(a) => Some(a),
            _ => None,
        })
        .expect("an ALG event");
    assert_eq!(alg.dir, Direction::Outbound);
    assert_eq!(alg.length_delta, (p.len() - msg.len()) as i32);
    assert_eq!(alg.media.len(), 2);
    // Media from the peer now passes the NAT inbound to the phone.
    let rtp = udp(SRV, 5060, EXT, 49170, b"rtp");
    let back = pass(&mut n, t, Direction::Inbound, rtp);
    assert_eq!(
        wire::parse(back.as_slice()).unwrap().dst,
        IpAddr::from([10, 0, 1, 2])
    );
}

#[test]
fn symmetric_nat_gets_a_different_media_port() {
    let t = now();
    let mut n = nat(SipAlgMode::Rewrite, Preset::Symmetric);
    let msg = invite("10.0.1.2", 5060, 4000);
    let out = pass(
        &mut n,
        t,
        Direction::Outbound,
        udp([10, 0, 1, 2], 5060, SRV, 5060, msg.as_bytes()),
    );
    let p = payload(&out);
    let sip_port = wire::parse(out.as_slice())
        .unwrap()
        .src_endpoint()
        .unwrap()
        .port;
    assert!(
        p.contains(&format!("Via: SIP/2.0/UDP 203.0.113.11:{sip_port};branch")),
        "{p}"
    );
    let m = p.lines().find(|l| l.starts_with("m=audio ")).unwrap();
    assert_ne!(
        m, "m=audio 4000 RTP/AVP 0 101",
        "random allocation moves the port"
    );
    body_len_matches(&p);
}

#[test]
fn udp_response_inbound_restores_the_private_via_and_shrinks() {
    let t = now();
    let mut n = nat(SipAlgMode::Rewrite, Preset::PortRestricted);
    let private = "192.168.100.100";
    let msg = invite(private, 5060, 8000);
    let out = pass(
        &mut n,
        t,
        Direction::Outbound,
        udp([192, 168, 100, 100], 5060, SRV, 5060, msg.as_bytes()),
    );
    let p = payload(&out);
    assert!(
        p.len() < msg.len(),
        "203.0.113.11 is shorter than 192.168.100.100"
    );
    body_len_matches(&p);
    let resp = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 203.0.113.11:5060;branch=z9hG4bK776asdhds;rport=5060;received=203.0.113.11\r\nTo: <sip:bob@203.0.113.5>;tag=a6c85cf\r\nFrom: <sip:alice@203.0.113.5>;tag=1928301774\r\nCall-ID: a84b4c76e66710\r\nCSeq: 314159 INVITE\r\nContact: <sip:bob@203.0.113.5>\r\nContent-Length: 0\r\n\r\n";
    let back = pass(
        &mut n,
        t,
        Direction::Inbound,
        udp(SRV, 5060, EXT, 5060, resp.as_bytes()),
    );
    let b = payload(&back);
    assert!(b.contains("Via: SIP/2.0/UDP 192.168.100.100:5060;branch=z9hG4bK776asdhds;rport=5060;received=203.0.113.11\r\n"), "{b}");
    assert!(b.contains("Content-Length: 0\r\n"));
}

#[test]
fn off_and_other_ports_are_untouched() {
    let t = now();
    let msg = invite("10.0.1.2", 5060, 49170);
    let mut off = nat(SipAlgMode::Off, Preset::PortRestricted);
    let out = pass(
        &mut off,
        t,
        Direction::Outbound,
        udp([10, 0, 1, 2], 5060, SRV, 5060, msg.as_bytes()),
    );
    assert_eq!(payload(&out), msg);
    assert_eq!(off.mapping_count(), 1);
    let mut on = nat(SipAlgMode::Rewrite, Preset::PortRestricted);
    let out = pass(
        &mut on,
        t,
        Direction::Outbound,
        udp([10, 0, 1, 2], 5070, SRV, 5070, msg.as_bytes()),
    );
    assert_eq!(payload(&out), msg, "not the SIP port");
    assert_eq!(on.stats().alg.messages, 0);
}

/// A TCP connection from 10.0.1.2:5060 to the server's 5060 (the NAT preserves the
/// port): two messages outbound that grow by 4 bytes each, a retransmission, a response
/// inbound that shrinks by 4 bytes, and pure ACKs both ways.
#[test]
fn tcp_sequence_and_ack_adjustment() {
    let t = now();
    let mut n = nat(SipAlgMode::Rewrite, Preset::PortRestricted);
    let (c, s) = ([10, 0, 1, 2], SRV);
    let (cisn, sisn) = (1000u32, 5000u32);
    let o = |n: &mut Nat, p| pass(n, t, Direction::Outbound, p);
    let i = |n: &mut Nat, p| pass(n, t, Direction::Inbound, p);
    handshake(&mut n, t, cisn, sisn);
    let (m1, m2) = (register(1), register(2));
    let l1 = m1.len() as u32;
    let l2 = m2.len() as u32;
    // Segment 1: seq unchanged, 8 bytes longer (two addresses).
    let s1 = o(
        &mut n,
        tcp(
            c,
            5060,
            s,
            5060,
            cisn + 1,
            Some(sisn + 1),
            tcp_flags::PSH,
            m1.as_bytes(),
        ),
    );
    assert_eq!(seq_ack(&s1), (cisn + 1, sisn + 1));
    let p1 = payload(&s1);
    assert_eq!(p1.len() as u32, l1 + 8);
    assert!(p1.contains("Via: SIP/2.0/TCP 203.0.113.11:5060;") && !p1.contains("10.0.1.2"));
    // Server acks segment 1 in its (rewritten) numbering; the phone sees its own.
    let a1 = i(
        &mut n,
        tcp(
            s,
            5060,
            EXT,
            5060,
            sisn + 1,
            Some(cisn + 1 + l1 + 8),
            0,
            b"",
        ),
    );
    assert_eq!(seq_ack(&a1), (sisn + 1, cisn + 1 + l1));
    // Segment 2 moves by 8 and grows by 8.
    let s2 = o(
        &mut n,
        tcp(
            c,
            5060,
            s,
            5060,
            cisn + 1 + l1,
            Some(sisn + 1),
            tcp_flags::PSH,
            m2.as_bytes(),
        ),
    );
    assert_eq!(seq_ack(&s2), (cisn + 1 + l1 + 8, sisn + 1));
    assert_eq!(payload(&s2).len() as u32, l2 + 8);
    // A retransmission of segment 1 looks exactly like the first transmission.
    let r1 = o(
        &mut n,
        tcp(
            c,
            5060,
            s,
            5060,
            cisn + 1,
            Some(sisn + 1),
            tcp_flags::PSH,
            m1.as_bytes(),
        ),
    );
    assert_eq!(r1.as_slice(), s1.as_slice());
    // Server acks everything: 16 extra bytes.
    let a2 = i(
        &mut n,
        tcp(
            s,
            5060,
            EXT,
            5060,
            sisn + 1,
            Some(cisn + 1 + l1 + l2 + 16),
            0,
            b"",
        ),
    );
    assert_eq!(seq_ack(&a2).1, cisn + 1 + l1 + l2);
    // A response inbound: the public Via goes back to the private one, 4 bytes shorter.
    let resp = "SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP 203.0.113.11:5060;branch=z9hG4bK1;received=203.0.113.11\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n";
    let lr = resp.len() as u32;
    let r = i(
        &mut n,
        tcp(
            s,
            5060,
            EXT,
            5060,
            sisn + 1,
            Some(cisn + 1 + l1 + l2 + 16),
            tcp_flags::PSH,
            resp.as_bytes(),
        ),
    );
    assert_eq!(seq_ack(&r), (sisn + 1, cisn + 1 + l1 + l2));
    let pr = payload(&r);
    assert_eq!(pr.len() as u32, lr - 4);
    assert!(
        pr.contains("Via: SIP/2.0/TCP 10.0.1.2:5060;branch=z9hG4bK1;received=203.0.113.11"),
        "{pr}"
    );
    // The phone acks the response in its numbering (4 fewer bytes); the server sees its own.
    let a3 = o(
        &mut n,
        tcp(
            c,
            5060,
            s,
            5060,
            cisn + 1 + l1 + l2,
            Some(sisn + 1 + lr - 4),
            0,
            b"",
        ),
    );
    assert_eq!(seq_ack(&a3), (cisn + 1 + l1 + l2 + 16, sisn + 1 + lr));
    let st = &n.stats().alg;
    assert_eq!(st.partial, 0);
    assert!(st.tcp_adjusted >= 4, "{st:?}");
    assert_eq!(n.sip_alg().unwrap().adjusted_connections(), 1);
}

/// The SACK blocks (RFC 2018 §3) of a segment's options, as (left, right) edges.
fn sack_blocks(p: &PacketBuf) -> Vec<(u32, u32)> {
    let tcp = etherparse::TcpHeaderSlice::from_slice(&p.as_slice()[20..]).unwrap();
    tcp.options_iterator()
        .filter_map(|o| match o.unwrap() {
            etherparse::TcpOptionElement::SelectiveAcknowledgement(first, rest) => {
                Some(std::iter::once(first).chain(rest.into_iter().flatten()))
            }
            _ => None,
        })
        .flatten()
        .collect()
}

/// SACK (RFC 2018): after the ALG made the phone's first message 8 bytes longer, the
/// server's selective acknowledgement of the second message (in the shifted numbering the
/// server sees) reaches the phone in the phone's own numbering, as Linux's `nf_ct_seqadj`
/// adjusts it; the checksum stays valid (`pass` checks it).
#[test]
fn tcp_sack_blocks_are_adjusted_like_acks() {
    let t = now();
    let mut n = nat(SipAlgMode::Rewrite, Preset::PortRestricted);
    let (c, s) = ([10, 0, 1, 2], SRV);
    let (cisn, sisn) = (7000u32, 9000u32);
    let o = |n: &mut Nat, p| pass(n, t, Direction::Outbound, p);
    let i = |n: &mut Nat, p| pass(n, t, Direction::Inbound, p);
    handshake(&mut n, t, cisn, sisn);
    let (m1, m2) = (register(1), register(2));
    let (l1, l2) = (m1.len() as u32, m2.len() as u32);
    let s1 = o(
        &mut n,
        tcp(
            c,
            5060,
            s,
            5060,
            cisn + 1,
            Some(sisn + 1),
            tcp_flags::PSH,
            m1.as_bytes(),
        ),
    );
    assert_eq!(payload(&s1).len() as u32, l1 + 8);
    let s2 = o(
        &mut n,
        tcp(
            c,
            5060,
            s,
            5060,
            cisn + 1 + l1,
            Some(sisn + 1),
            tcp_flags::PSH,
            m2.as_bytes(),
        ),
    );
    assert_eq!(seq_ack(&s2).0, cisn + 1 + l1 + 8);
    // Segment 1 was lost on the way: the server acks only the handshake and SACKs
    // segment 2, whose bytes it numbers [cisn+1+l1+8, cisn+1+l1+l2+16).
    let (left, right) = (cisn + 1 + l1 + 8, cisn + 1 + l1 + l2 + 16);
    let mut v = Vec::new();
    PacketBuilder::ipv4(s, EXT, 64)
        .tcp(5060, 5060, sisn + 1, 65000)
        .ack(cisn + 1)
        .options(&[etherparse::TcpOptionElement::SelectiveAcknowledgement(
            (left, right),
            [None, None, None],
        )])
        .unwrap()
        .write(&mut v, b"")
        .unwrap();
    let sack = i(&mut n, PacketBuf::from_slice(&v));
    assert_eq!(seq_ack(&sack), (sisn + 1, cisn + 1));
    assert_eq!(
        sack_blocks(&sack),
        vec![(cisn + 1 + l1, cisn + 1 + l1 + l2)],
        "the SACK block in the phone's numbering"
    );
    assert!(n.stats().alg.tcp_adjusted >= 2);
}

#[test]
fn tcp_message_split_across_segments_passes_unchanged() {
    let t = now();
    let mut n = nat(SipAlgMode::Rewrite, Preset::PortRestricted);
    let (c, s) = ([10, 0, 1, 2], SRV);
    pass(
        &mut n,
        t,
        Direction::Outbound,
        tcp(c, 40000, s, 5060, 1, None, tcp_flags::SYN, b""),
    );
    let msg = invite("10.0.1.2", 5060, 4000);
    let half = &msg.as_bytes()[..msg.len() / 2];
    let out = pass(
        &mut n,
        t,
        Direction::Outbound,
        tcp(c, 40000, s, 5060, 2, Some(1), tcp_flags::PSH, half),
    );
    assert_eq!(payload(&out).as_bytes(), half);
    assert_eq!(n.stats().alg.partial, 1);
}

// ===== property: TCP byte streams stay consistent =====

fn message(k: u32, sdp: bool) -> String {
    if sdp {
        invite("10.0.1.2", 5060, 4000 + 2 * k as u16)
    } else {
        format!(
            "OPTIONS sip:203.0.113.5 SIP/2.0\r\nVia: SIP/2.0/TCP 10.0.1.2:5060;branch=z{k}\r\nContact: <sip:a@10.0.1.2>\r\nContent-Length: 0\r\n\r\n"
        )
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The phone sends messages over TCP in segments of whole messages, some sent twice;
    /// the server reassembles by sequence number and acknowledges. The server's stream
    /// has no gap and no conflicting overlap, holds the messages in order with the
    /// private address gone and every Content-Length right; every acknowledgement the
    /// phone sees is in its own numbering (the end of the segment acknowledged).
    #[test]
    fn tcp_stream_stays_consistent(
        plan in prop::collection::vec((1usize..4, prop::bool::ANY, prop::bool::ANY), 1..8),
    ) {
        let t = now();
        let mut n = nat(SipAlgMode::Rewrite, Preset::PortRestricted);
        let (c, s) = ([10, 0, 1, 2], SRV);
        let isn = 77_000u32;
        pass(&mut n, t, Direction::Outbound, tcp(c, 5060, s, 5060, isn, None, tcp_flags::SYN, b""));
        pass(&mut n, t, Direction::Inbound, tcp(s, 5060, EXT, 5060, 9, Some(isn + 1), tcp_flags::SYN, b""));
        let mut seq = isn + 1;
        let mut k = 0u32;
        let mut server: Vec<u8> = Vec::new();
        let server_base = isn + 1;
        let mut expected_messages = 0usize;
        for (count, sdp, resend) in plan {
            let mut seg = String::new();
            for _ in 0..count {
                seg += &message(k, sdp);
                k += 1;
            }
            expected_messages += count;
            let sends = if resend { 2 } else { 1 };
            for _ in 0..sends {
                let out = pass(&mut n, t, Direction::Outbound, tcp(c, 5060, s, 5060, seq, Some(10), tcp_flags::PSH, seg.as_bytes()));
                let (oseq, _) = seq_ack(&out);
                let data = payload(&out).into_bytes();
                let at = oseq.wrapping_sub(server_base) as usize;
                prop_assert!(at <= server.len(), "gap in the server's stream");
                let overlap = (server.len() - at).min(data.len());
                prop_assert_eq!(&server[at..at + overlap], &data[..overlap], "conflicting retransmission");
                server.extend_from_slice(&data[overlap..]);
                let end = server_base.wrapping_add(server.len() as u32);
                let ack = pass(&mut n, t, Direction::Inbound, tcp(s, 5060, EXT, 5060, 10, Some(end), 0, b""));
                prop_assert_eq!(seq_ack(&ack).1, seq.wrapping_add(seg.len() as u32));
            }
            seq = seq.wrapping_add(seg.len() as u32);
        }
        let text = String::from_utf8(server).unwrap();
        prop_assert!(!text.contains("10.0.1.2"));
        // Frame the stream by Content-Length.
        let mut rest = text.as_str();
        let mut seen = 0;
        while !rest.is_empty() {
            let (head, after) = rest.split_once("\r\n\r\n").unwrap();
            let cl: usize = head.lines().find_map(|l| l.strip_prefix("Content-Length: ")).unwrap().parse().unwrap();
            let body = &after[..cl];
            prop_assert!(cl == 0 || body.starts_with("v=0\r\n"));
            prop_assert!(cl == 0 || body.ends_with("m=video 0 RTP/AVP 31\r\n"));
            rest = &after[cl..];
            seen += 1;
        }
        prop_assert_eq!(seen, expected_messages);
    }
}
