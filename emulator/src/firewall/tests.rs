use super::*;
use crate::wire::reply::{IcmpError, icmp_error};
use crate::wire::{checksum, tcp_flags as F};
use etherparse::PacketBuilder;
use proptest::prelude::*;
use std::net::Ipv4Addr;

#[allow(clippy::disallowed_methods)] // tests need one arbitrary epoch; the firewall never reads the clock
fn t0() -> Instant {
    Instant::now()
}

const IN: &str = "10.0.0.2";
const OUT: &str = "203.0.113.5";
const PROXY_PORT: u16 = 3128;

fn a(s: &str) -> [u8; 4] {
    s.parse::<Ipv4Addr>().expect("test address").octets()
}

fn udp(src: &str, sp: u16, dst: &str, dp: u16) -> PacketBuf {
    let mut v = Vec::new();
    PacketBuilder::ipv4(a(src), a(dst), 64)
        .udp(sp, dp)
        .write(&mut v, b"payload")
        .expect("build");
    PacketBuf::from_slice(&v)
}

fn tcp(src: &str, sp: u16, dst: &str, dp: u16, flags: u8) -> PacketBuf {
    let mut b = PacketBuilder::ipv4(a(src), a(dst), 64).tcp(sp, dp, 1000, 64000);
    if flags & F::SYN != 0 {
        b = b.syn();
    }
    if flags & F::ACK != 0 {
        b = b.ack(1);
    }
    if flags & F::FIN != 0 {
        b = b.fin();
    }
    if flags & F::RST != 0 {
        b = b.rst();
    }
    let mut v = Vec::new();
    b.write(&mut v, b"").expect("build");
    PacketBuf::from_slice(&v)
}

fn echo(src: &str, dst: &str, id: u16, request: bool) -> PacketBuf {
    let b = PacketBuilder::ipv4(a(src), a(dst), 64);
    let b = if request {
        b.icmpv4_echo_request(id, 1)
    } else {
        b.icmpv4_echo_reply(id, 1)
    };
    let mut v = Vec::new();
    b.write(&mut v, b"ping").expect("build");
    PacketBuf::from_slice(&v)
}

fn fw(class: FirewallClass) -> Firewall {
    let mut c = FirewallConfig::new(class);
    c.proxies = vec![Endpoint::new(OUT.parse().expect("addr"), PROXY_PORT)];
    Firewall::new(c)
}

fn fwd(v: &Verdict) -> bool {
    matches!(v, Verdict::Forward)
}

use Direction::{Inbound as I, Outbound as O};

/// One table case: a sequence of packets; it "passes" when every packet is forwarded and
/// "fails" when the last one is dropped with `DropReason::Firewall`.
struct Case {
    name: &'static str,
    packets: Vec<(Direction, PacketBuf)>,
    /// Expected for Open, UdpRepliesOnly, TcpOutboundOnly, HttpsOnly, HttpProxyOnly.
    expect: [bool; 5],
}

fn cases() -> Vec<Case> {
    let syn = F::SYN;
    let synack = F::SYN | F::ACK;
    vec![
        Case {
            name: "udp out",
            packets: vec![(O, udp(IN, 5000, OUT, 3478))],
            expect: [true, true, false, false, false],
        },
        Case {
            name: "udp out + reply in",
            packets: vec![(O, udp(IN, 5000, OUT, 3478)), (I, udp(OUT, 3478, IN, 5000))],
            expect: [true, true, false, false, false],
        },
        Case {
            name: "udp out + in from another port",
            packets: vec![(O, udp(IN, 5000, OUT, 3478)), (I, udp(OUT, 3479, IN, 5000))],
            expect: [true, false, false, false, false],
        },
        Case {
            name: "udp out + in from another address",
            packets: vec![
                (O, udp(IN, 5000, OUT, 3478)),
                (I, udp("203.0.113.6", 3478, IN, 5000)),
            ],
            expect: [true, false, false, false, false],
        },
        Case {
            name: "udp unsolicited in",
            packets: vec![(I, udp(OUT, 3478, IN, 5000))],
            expect: [true, false, false, false, false],
        },
        Case {
            name: "tcp 80 out + reply",
            packets: vec![
                (O, tcp(IN, 40000, OUT, 80, syn)),
                (I, tcp(OUT, 80, IN, 40000, synack)),
                (O, tcp(IN, 40000, OUT, 80, F::ACK)),
            ],
            expect: [true, true, true, false, false],
        },
        Case {
            name: "tcp unsolicited in",
            packets: vec![(I, tcp(OUT, 40000, IN, 80, syn))],
            expect: [true, false, false, false, false],
        },
        Case {
            name: "tcp mid-stream out without flow",
            packets: vec![(O, tcp(IN, 40000, OUT, 80, F::ACK))],
            expect: [true, false, false, false, false],
        },
        Case {
            name: "icmp echo out + reply",
            packets: vec![(O, echo(IN, OUT, 7, true)), (I, echo(OUT, IN, 7, false))],
            expect: [true, true, true, false, false],
        },
        Case {
            name: "icmp echo unsolicited in",
            packets: vec![(I, echo(OUT, IN, 7, true))],
            expect: [true, false, false, false, false],
        },
        Case {
            name: "udp 443 out (QUIC)",
            packets: vec![(O, udp(IN, 5000, OUT, 443))],
            expect: [true, true, false, false, false],
        },
        Case {
            name: "tcp 443 out + reply",
            packets: vec![
                (O, tcp(IN, 40000, OUT, 443, syn)),
                (I, tcp(OUT, 443, IN, 40000, synack)),
                (O, tcp(IN, 40000, OUT, 443, F::ACK)),
                (I, tcp(OUT, 443, IN, 40000, F::ACK)),
            ],
            expect: [true, true, true, true, false],
        },
        Case {
            name: "tcp to proxy + reply",
            packets: vec![
                (O, tcp(IN, 40000, OUT, PROXY_PORT, syn)),
                (I, tcp(OUT, PROXY_PORT, IN, 40000, synack)),
            ],
            expect: [true, true, true, false, true],
        },
        Case {
            name: "tcp to proxy address, other port",
            packets: vec![(O, tcp(IN, 40000, OUT, 8080, syn))],
            expect: [true, true, true, false, false],
        },
        Case {
            name: "udp to proxy endpoint",
            packets: vec![(O, udp(IN, 5000, OUT, PROXY_PORT))],
            expect: [true, true, false, false, false],
        },
    ]
}

const CLASSES: [FirewallClass; 5] = [
    FirewallClass::Open,
    FirewallClass::UdpRepliesOnly,
    FirewallClass::TcpOutboundOnly,
    FirewallClass::HttpsOnly,
    FirewallClass::HttpProxyOnly,
];

#[test]
fn class_table() {
    let now = t0();
    let mut failures = Vec::new();
    for case in cases() {
        for (ci, class) in CLASSES.iter().enumerate() {
            let mut f = fw(*class);
            let verdicts: Vec<Verdict> = case
                .packets
                .iter()
                .map(|(d, p)| f.handle_packet(now, *d, p))
                .collect();
            let all = verdicts.iter().all(fwd);
            let last_denied = matches!(verdicts.last(), Some(Verdict::Drop(DropReason::Firewall)));
            let ok = if case.expect[ci] { all } else { last_denied };
            if !ok {
                failures.push(format!("{} / {}: {verdicts:?}", case.name, class.as_str()));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn rules_come_first_and_first_match_wins() {
    let now = t0();
    // https-only, plus UDP 3478 (STUN) to the server network allowed outbound.
    let mut c = FirewallConfig::new(FirewallClass::HttpsOnly);
    c.rules = vec![
        Rule::new(Action::Deny, RuleProto::Udp, O).ports(3479, 3479),
        Rule::new(Action::Allow, RuleProto::Udp, O)
            .ports(3478, 3479)
            .to("203.0.113.0/24".parse().expect("prefix")),
    ];
    let mut f = Firewall::new(c);
    assert!(fwd(&f.handle_packet(now, O, &udp(IN, 5000, OUT, 3478))));
    // The allow rule tracked the flow: its reply passes although the class refuses UDP.
    assert!(fwd(&f.handle_packet(now, I, &udp(OUT, 3478, IN, 5000))));
    // The earlier deny rule wins over the later allow.
    assert!(matches!(
        f.handle_packet(now, O, &udp(IN, 5000, OUT, 3479)),
        Verdict::Drop(DropReason::Firewall)
    ));
    // Outside the rule's network: the class refuses.
    assert!(!fwd(&f.handle_packet(
        now,
        O,
        &udp(IN, 5000, "198.51.100.1", 3478)
    )));
    let events: Vec<_> = std::iter::from_fn(|| f.poll_event()).collect();
    assert!(matches!(
        events[0],
        FirewallEvent::FlowCreated {
            by: Cause::Rule(1),
            initiator: O,
            ..
        }
    ));
    assert!(matches!(
        events[1],
        FirewallEvent::Denied {
            by: Cause::Rule(0),
            ..
        }
    ));
    assert!(matches!(
        events[2],
        FirewallEvent::Denied {
            by: Cause::Class,
            ..
        }
    ));
    assert_eq!(events.len(), 3);

    // A deny rule applies to replies too, even on an open firewall.
    let mut c = FirewallConfig::new(FirewallClass::Open);
    c.rules = vec![Rule::new(Action::Deny, RuleProto::Tcp, I).ports(22, 22)];
    let mut f = Firewall::new(c);
    assert!(!fwd(&f.handle_packet(now, I, &tcp(OUT, 9, IN, 22, F::SYN))));
    assert!(fwd(&f.handle_packet(now, I, &tcp(OUT, 9, IN, 80, F::SYN))));
    // An inbound allow rule opens a port; the inside's answers ride on that flow.
    let mut c = FirewallConfig::new(FirewallClass::TcpOutboundOnly);
    c.rules = vec![Rule::new(Action::Allow, RuleProto::Udp, I).ports(5060, 5060)];
    let mut f = Firewall::new(c);
    assert!(fwd(&f.handle_packet(now, I, &udp(OUT, 5060, IN, 5060))));
    assert!(fwd(&f.handle_packet(now, O, &udp(IN, 5060, OUT, 5060))));
    assert!(!fwd(&f.handle_packet(now, O, &udp(IN, 5060, OUT, 5061))));
}

#[test]
fn udp_flow_expires_exactly_at_timeout() {
    let now = t0();
    let mut f = fw(FirewallClass::UdpRepliesOnly);
    let t = f.config().timeouts.udp;
    let nano = Duration::from_nanos(1);
    assert!(fwd(&f.handle_packet(now, O, &udp(IN, 5000, OUT, 3478))));
    assert_eq!(f.poll_timeout(), Some(now + t));
    // Inbound packets do not refresh (RFC 4787 REQ-6).
    assert!(fwd(&f.handle_packet(
        now + t - nano,
        I,
        &udp(OUT, 3478, IN, 5000)
    )));
    assert_eq!(f.poll_timeout(), Some(now + t));
    assert!(!fwd(&f.handle_packet(
        now + t,
        I,
        &udp(OUT, 3478, IN, 5000)
    )));
    assert_eq!(f.flow_count(), 0);

    // Outbound packets refresh; handle_timeout expires exactly at the deadline.
    let mut f = fw(FirewallClass::UdpRepliesOnly);
    f.handle_packet(now, O, &udp(IN, 5000, OUT, 3478));
    f.handle_packet(now + t / 2, O, &udp(IN, 5000, OUT, 3478));
    let deadline = now + t / 2 + t;
    assert_eq!(f.poll_timeout(), Some(deadline));
    f.handle_timeout(deadline - nano);
    assert_eq!(f.flow_count(), 1);
    f.handle_timeout(deadline);
    assert_eq!(f.flow_count(), 0);
    assert_eq!(f.poll_timeout(), None);
    let events: Vec<_> = std::iter::from_fn(|| f.poll_event()).collect();
    assert!(matches!(
        events.last(),
        Some(FirewallEvent::FlowExpired { .. })
    ));
    assert_eq!(f.stats().flows_expired, 1);
}

#[test]
fn tcp_state_picks_the_timeout() {
    let now = t0();
    let mut f = fw(FirewallClass::UdpRepliesOnly);
    let tt = f.config().timeouts;
    let state = |f: &Firewall| match f.flows().first().map(|e| e.state) {
        Some(FlowState::Tcp(s)) => Some(s),
        _ => None,
    };
    f.handle_packet(now, O, &tcp(IN, 4, OUT, 80, F::SYN));
    assert_eq!(state(&f), Some(TcpState::Opening));
    assert_eq!(f.poll_timeout(), Some(now + tt.tcp_transitory));
    f.handle_packet(now, I, &tcp(OUT, 80, IN, 4, F::SYN | F::ACK));
    assert_eq!(state(&f), Some(TcpState::Established));
    assert_eq!(f.poll_timeout(), Some(now + tt.tcp_established));
    f.handle_packet(now, I, &tcp(OUT, 80, IN, 4, F::FIN | F::ACK));
    assert_eq!(state(&f), Some(TcpState::HalfClosed));
    assert_eq!(f.poll_timeout(), Some(now + tt.tcp_established));
    f.handle_packet(now, O, &tcp(IN, 4, OUT, 80, F::FIN | F::ACK));
    assert_eq!(state(&f), Some(TcpState::Closed));
    assert_eq!(f.poll_timeout(), Some(now + tt.tcp_transitory));
    // The 5-tuple is reused by a new connection.
    f.handle_packet(now, O, &tcp(IN, 4, OUT, 80, F::SYN));
    assert_eq!(state(&f), Some(TcpState::Opening));
    f.handle_packet(now, I, &tcp(OUT, 80, IN, 4, F::SYN | F::ACK));
    // RST: kept for the transitory timeout, revived by later traffic (RFC 7857 §2.2).
    f.handle_packet(now, I, &tcp(OUT, 80, IN, 4, F::RST));
    assert_eq!(state(&f), Some(TcpState::Reset));
    assert_eq!(f.poll_timeout(), Some(now + tt.tcp_transitory));
    assert!(fwd(&f.handle_packet(now, O, &tcp(IN, 4, OUT, 80, F::ACK))));
    assert_eq!(state(&f), Some(TcpState::Established));
    f.handle_packet(now, I, &tcp(OUT, 80, IN, 4, F::RST));
    let end = now + tt.tcp_transitory;
    assert!(!fwd(&f.handle_packet(end, I, &tcp(OUT, 80, IN, 4, F::ACK))));
}

#[test]
fn tcp_simultaneous_open_passes() {
    // RFC 5382 REQ-2: both sides send SYN (TCP hole punching).
    let now = t0();
    let mut f = fw(FirewallClass::UdpRepliesOnly);
    assert!(fwd(&f.handle_packet(
        now,
        O,
        &tcp(IN, 5000, OUT, 6000, F::SYN)
    )));
    assert!(fwd(&f.handle_packet(
        now,
        I,
        &tcp(OUT, 6000, IN, 5000, F::SYN)
    )));
    assert_eq!(f.flows()[0].state, FlowState::Tcp(TcpState::Established));
}

#[test]
fn echo_flow_admits_only_replies_from_the_responder() {
    let now = t0();
    let mut f = fw(FirewallClass::UdpRepliesOnly);
    f.handle_packet(now, O, &echo(IN, OUT, 9, true));
    assert!(!fwd(&f.handle_packet(now, I, &echo(OUT, IN, 9, true))));
    assert!(fwd(&f.handle_packet(now, I, &echo(OUT, IN, 9, false))));
    assert!(!fwd(&f.handle_packet(now, I, &echo(OUT, IN, 10, false))));
    assert_eq!(f.poll_timeout(), Some(now + f.config().timeouts.icmp));
}

#[test]
fn icmp_errors_about_tracked_flows_pass() {
    let now = t0();
    for class in [FirewallClass::UdpRepliesOnly, FirewallClass::HttpsOnly] {
        let mut f = fw(class);
        let (out, err_from) = if class == FirewallClass::HttpsOnly {
            (tcp(IN, 40000, OUT, 443, F::SYN), "198.51.100.1")
        } else {
            (udp(IN, 5000, OUT, 3478), OUT)
        };
        assert!(fwd(&f.handle_packet(now, O, &out)));
        // From a router on the path (too big) or from the server (port unreachable).
        let kind = if class == FirewallClass::HttpsOnly {
            IcmpError::TooBig { mtu: 1280 }
        } else {
            IcmpError::PortUnreachable
        };
        let err =
            icmp_error(out.as_slice(), err_from.parse().expect("addr"), kind).expect("icmp error");
        assert!(fwd(&f.handle_packet(now, I, &err)), "{}", class.as_str());
        assert_eq!(f.stats().icmp_errors_related, 1);
        // An error about a packet that belongs to no flow is refused.
        let other = udp(IN, 5001, OUT, 3478);
        let err = icmp_error(other.as_slice(), OUT.parse().expect("addr"), kind).expect("err");
        assert!(!fwd(&f.handle_packet(now, I, &err)));
    }
    // An error whose quoted packet names another inside host is refused.
    let mut f = fw(FirewallClass::UdpRepliesOnly);
    let out = udp(IN, 5000, OUT, 3478);
    f.handle_packet(now, O, &out);
    let mut err = icmp_error(
        out.as_slice(),
        OUT.parse().expect("addr"),
        IcmpError::PortUnreachable,
    )
    .expect("err");
    let b = err.as_mut_slice();
    b[16..20].copy_from_slice(&[10, 0, 0, 99]);
    b[10..12].fill(0);
    let c = checksum::checksum(&b[..20]);
    b[10..12].copy_from_slice(&c.to_be_bytes());
    assert!(!fwd(&f.handle_packet(now, I, &err)));
    // The inside may answer an inbound reply with an error (outbound, related).
    let mut f = fw(FirewallClass::TcpOutboundOnly);
    f.handle_packet(now, O, &echo(IN, OUT, 3, true));
    let reply = echo(OUT, IN, 3, false);
    f.handle_packet(now, I, &reply);
    let err = icmp_error(
        reply.as_slice(),
        IN.parse().expect("addr"),
        IcmpError::HostUnreachable,
    )
    .expect("err");
    assert!(fwd(&f.handle_packet(now, O, &err)));
}

/// Split an IPv4 packet in two fragments at `at` payload bytes (a multiple of 8).
fn split(p: &PacketBuf, at: usize) -> (PacketBuf, PacketBuf) {
    let b = p.as_slice();
    let ihl = ((b[0] & 0x0f) as usize) * 4;
    let payload = &b[ihl..];
    let mk = |data: &[u8], off: usize, more: bool| {
        let mut v = b[..ihl].to_vec();
        v.extend_from_slice(data);
        let total = v.len() as u16;
        v[2..4].copy_from_slice(&total.to_be_bytes());
        let ff = ((off / 8) as u16) | if more { 0x2000 } else { 0 };
        v[6..8].copy_from_slice(&ff.to_be_bytes());
        v[10..12].fill(0);
        let c = checksum::checksum(&v[..ihl]);
        v[10..12].copy_from_slice(&c.to_be_bytes());
        PacketBuf::from_slice(&v)
    };
    (mk(&payload[..at], 0, true), mk(&payload[at..], at, false))
}

fn big_udp(src: &str, sp: u16, dst: &str, dp: u16) -> PacketBuf {
    let mut v = Vec::new();
    PacketBuilder::ipv4(a(src), a(dst), 64)
        .udp(sp, dp)
        .write(&mut v, &[7u8; 100])
        .expect("build");
    PacketBuf::from_slice(&v)
}

#[test]
fn fragments_follow_the_first() {
    let now = t0();
    let mut f = fw(FirewallClass::UdpRepliesOnly);
    let (first, rest) = split(&big_udp(IN, 5000, OUT, 3478), 48);
    assert!(fwd(&f.handle_packet(now, O, &first)));
    assert!(fwd(&f.handle_packet(now, O, &rest)));
    assert_eq!(f.stats().fragments_followed, 1);
    // The inbound reply, fragmented, too.
    let (first, rest) = split(&big_udp(OUT, 3478, IN, 5000), 16);
    assert!(fwd(&f.handle_packet(now, I, &first)));
    assert!(fwd(&f.handle_packet(now, I, &rest)));
    // After the fragment timeout the verdict is forgotten.
    assert!(matches!(
        f.handle_packet(now + FRAGMENT_TIMEOUT, I, &rest),
        Verdict::Drop(DropReason::Fragment)
    ));
    // Unsolicited: the first is refused, its follower too.
    let (first, rest) = split(&big_udp(OUT, 1, IN, 2), 8);
    assert!(matches!(
        f.handle_packet(now, I, &first),
        Verdict::Drop(DropReason::Firewall)
    ));
    assert!(matches!(
        f.handle_packet(now, I, &rest),
        Verdict::Drop(DropReason::Firewall)
    ));
    // A follower whose first fragment never came.
    let (_, rest) = split(&big_udp(IN, 9, OUT, 9), 8);
    assert!(matches!(
        f.handle_packet(now, O, &rest),
        Verdict::Drop(DropReason::Fragment)
    ));
    assert_eq!(f.stats().fragments_unmatched, 2);
}

#[test]
fn malformed_and_flow_limit() {
    let now = t0();
    let mut f = fw(FirewallClass::Open);
    assert!(matches!(
        f.handle_packet(now, O, &PacketBuf::from_slice(&[0x45, 0, 0])),
        Verdict::Drop(DropReason::Malformed)
    ));
    let mut c = FirewallConfig::new(FirewallClass::UdpRepliesOnly);
    c.max_flows = 2;
    let mut f = Firewall::new(c);
    assert!(fwd(&f.handle_packet(now, O, &udp(IN, 1, OUT, 1))));
    assert!(fwd(&f.handle_packet(now, O, &udp(IN, 2, OUT, 1))));
    assert!(matches!(
        f.handle_packet(now, O, &udp(IN, 3, OUT, 1)),
        Verdict::Drop(DropReason::BindingLimit)
    ));
    // Existing flows still work.
    assert!(fwd(&f.handle_packet(now, I, &udp(OUT, 1, IN, 2))));
    let s = f.stats();
    assert_eq!(
        (
            s.forwarded_outbound,
            s.forwarded_inbound,
            s.flow_limit,
            s.dropped()
        ),
        (2, 1, 1, 1)
    );
}

#[test]
fn ipv6_works_like_ipv4() {
    let now = t0();
    let inside: [u8; 16] = "fd00::2".parse::<std::net::Ipv6Addr>().expect("a").octets();
    let outside: [u8; 16] = "2001:db8::5"
        .parse::<std::net::Ipv6Addr>()
        .expect("a")
        .octets();
    let pkt = |s: [u8; 16], sp, d: [u8; 16], dp| {
        let mut v = Vec::new();
        PacketBuilder::ipv6(s, d, 64)
            .udp(sp, dp)
            .write(&mut v, b"x")
            .expect("build");
        PacketBuf::from_slice(&v)
    };
    let mut f = fw(FirewallClass::UdpRepliesOnly);
    assert!(!fwd(&f.handle_packet(now, I, &pkt(outside, 1, inside, 2))));
    assert!(fwd(&f.handle_packet(now, O, &pkt(inside, 2, outside, 1))));
    assert!(fwd(&f.handle_packet(now, I, &pkt(outside, 1, inside, 2))));
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200), inbound in any::<bool>(), ci in 0usize..5) {
        let now = t0();
        let mut f = fw(CLASSES[ci]);
        let dir = if inbound { I } else { O };
        let _ = f.handle_packet(now, dir, &PacketBuf::from_slice(&bytes));
        let _ = f.handle_packet(now, dir.reverse(), &PacketBuf::from_slice(&bytes));
        f.handle_timeout(now + Duration::from_secs(10_000));
        prop_assert_eq!(f.flow_count(), 0);
    }

    #[test]
    fn mutated_packets_never_panic(at in 0usize..60, val in any::<u8>(), ci in 0usize..5, which in 0usize..4) {
        let now = t0();
        let mut f = fw(CLASSES[ci]);
        let base = match which {
            0 => udp(IN, 5000, OUT, 3478),
            1 => tcp(IN, 5000, OUT, 443, F::SYN),
            2 => echo(IN, OUT, 1, true),
            _ => icmp_error(udp(OUT, 1, IN, 2).as_slice(), IN.parse().expect("a"), IcmpError::PortUnreachable).expect("err"),
        };
        let mut p = base.clone();
        if let Some(b) = p.as_mut_slice().get_mut(at) { *b = val; }
        f.handle_packet(now, O, &base);
        f.handle_packet(now, I, &p);
        f.handle_packet(now, O, &p);
        let s = *f.stats();
        prop_assert_eq!(s.forwarded_inbound + s.forwarded_outbound + s.denied_inbound + s.denied_outbound + s.dropped(), 3);
    }
}

/// The scenario format's firewall keywords live with the enums (SCENARIO-FORMAT.md
/// "Firewalls"): each listed keyword parses, and to the value that writes it.
#[test]
fn keywords_parse() {
    for k in FirewallClass::VALUES {
        let c = FirewallClass::from_keyword(k).expect("a listed class parses");
        assert_eq!(c.as_str(), *k);
    }
    assert_eq!(FirewallClass::VALUES.len(), 5);
    assert_eq!(Action::from_keyword("allow"), Some(Action::Allow));
    assert_eq!(Action::from_keyword("deny"), Some(Action::Deny));
    assert_eq!(Action::VALUES, ["allow", "deny"]);
    assert_eq!(RuleProto::VALUES, ["udp", "tcp", "icmp", "any"]);
    assert_eq!(RuleProto::from_keyword("icmp"), Some(RuleProto::Icmp));
    assert_eq!(Direction::VALUES, ["outbound", "inbound"]);
    assert_eq!(Direction::from_keyword("inbound"), Some(Direction::Inbound));
    for bad in ["", "Allow", "UDP", "both"] {
        assert_eq!(Action::from_keyword(bad), None);
        assert_eq!(RuleProto::from_keyword(bad), None);
        assert_eq!(Direction::from_keyword(bad), None);
        assert_eq!(FirewallClass::from_keyword(bad), None);
    }
}
