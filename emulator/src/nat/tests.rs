use super::*;
use crate::wire::{checksums_valid, parse, parse_embedded};
use etherparse::PacketBuilder;

const EXT: &str = "203.0.113.11";
const ALICE: &str = "10.0.1.2";
const BOB: &str = "10.0.1.3";
const SRV: &str = "198.51.100.5";
const SRV2: &str = "198.51.100.6";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn ep(s: &str, port: u16) -> Endpoint {
    Endpoint::new(ip(s), port)
}

fn build(
    src: &str,
    dst: &str,
    f: impl FnOnce(etherparse::PacketBuilderStep<etherparse::IpHeaders>) -> Vec<u8>,
) -> PacketBuf {
    let b = match (ip(src), ip(dst)) {
        (IpAddr::V4(s), IpAddr::V4(d)) => PacketBuilder::ipv4(s.octets(), d.octets(), 64),
        (IpAddr::V6(s), IpAddr::V6(d)) => PacketBuilder::ipv6(s.octets(), d.octets(), 64),
        _ => panic!("mixed families"),
    };
    PacketBuf::from_slice(&f(b))
}

fn udp(src: &str, sp: u16, dst: &str, dp: u16) -> PacketBuf {
    build(src, dst, |b| {
        let mut v = Vec::new();
        b.udp(sp, dp).write(&mut v, b"payload").unwrap();
        v
    })
}

fn tcp(src: &str, sp: u16, dst: &str, dp: u16, flags: u8) -> PacketBuf {
    build(src, dst, |b| {
        let mut t = b.tcp(sp, dp, 1000, 65535);
        if flags & tcp_flags::SYN != 0 {
            t = t.syn();
        }
        if flags & tcp_flags::ACK != 0 {
            t = t.ack(1);
        }
        if flags & tcp_flags::FIN != 0 {
            t = t.fin();
        }
        if flags & tcp_flags::RST != 0 {
            t = t.rst();
        }
        let mut v = Vec::new();
        t.write(&mut v, b"").unwrap();
        v
    })
}

fn echo(src: &str, dst: &str, id: u16, request: bool) -> PacketBuf {
    build(src, dst, |b| {
        let mut v = Vec::new();
        match (ip(src), request) {
            (IpAddr::V4(_), true) => b.icmpv4_echo_request(id, 1).write(&mut v, b"ping"),
            (IpAddr::V4(_), false) => b.icmpv4_echo_reply(id, 1).write(&mut v, b"ping"),
            (IpAddr::V6(_), true) => b.icmpv6_echo_request(id, 1).write(&mut v, b"ping"),
            (IpAddr::V6(_), false) => b.icmpv6_echo_reply(id, 1).write(&mut v, b"ping"),
        }
        .unwrap();
        v
    })
}

fn nat(cfg: NatConfig) -> Nat {
    Nat::new(cfg, SimRng::new(7)).unwrap()
}

fn cfg(p: Preset) -> NatConfig {
    NatConfig::preset(p, vec![ip(EXT)])
}

struct Clock(Instant);

impl Clock {
    fn at(&self, secs: f64) -> Instant {
        self.0 + Duration::from_secs_f64(secs)
    }
}

fn clock() -> Clock {
    #[allow(clippy::disallowed_methods)]
    Clock(Instant::now())
}

/// Send outbound; returns the verdict and the rewritten packet's info.
fn send(n: &mut Nat, now: Instant, mut p: PacketBuf, dir: Direction) -> (Verdict, PacketBuf) {
    let v = n.handle_packet(now, dir, &mut p);
    if matches!(v, Verdict::Forward | Verdict::Hairpin) {
        assert!(checksums_valid(p.as_slice()), "bad checksum after {v:?}");
    }
    (v, p)
}

fn src_of(p: &PacketBuf) -> Endpoint {
    parse(p.as_slice()).unwrap().src_endpoint().unwrap()
}

fn dst_of(p: &PacketBuf) -> Endpoint {
    parse(p.as_slice()).unwrap().dst_endpoint().unwrap()
}

/// Outbound UDP from `int:port` to `rem:rport`: the external endpoint it got.
fn out_udp(n: &mut Nat, now: Instant, int: &str, port: u16, rem: &str, rport: u16) -> Endpoint {
    let (v, p) = send(n, now, udp(int, port, rem, rport), Direction::Outbound);
    assert!(matches!(v, Verdict::Forward), "{v:?}");
    assert_eq!(dst_of(&p), ep(rem, rport));
    src_of(&p)
}

/// Inbound UDP from `rem:rport` to `ext`: Some(internal destination) if let in.
fn in_udp(n: &mut Nat, now: Instant, rem: &str, rport: u16, ext: Endpoint) -> Option<Endpoint> {
    let p = udp(rem, rport, &ext.addr.to_string(), ext.port);
    let (v, p) = send(n, now, p, Direction::Inbound);
    match v {
        Verdict::Forward => {
            assert_eq!(src_of(&p), ep(rem, rport));
            Some(dst_of(&p))
        }
        _ => None,
    }
}

#[test]
fn eim_reuses_the_mapping_for_every_destination() {
    let c = clock();
    let mut n = nat(cfg(Preset::FullCone));
    let e1 = out_udp(&mut n, c.at(0.0), ALICE, 5000, SRV, 3478);
    let e2 = out_udp(&mut n, c.at(1.0), ALICE, 5000, SRV2, 3478);
    let e3 = out_udp(&mut n, c.at(1.0), ALICE, 5000, SRV2, 9999);
    assert_eq!(e1, ep(EXT, 5000)); // preserved
    assert_eq!(e1, e2);
    assert_eq!(e2, e3);
    assert_eq!(n.mapping_count(), 1);
    n.table.check_invariants();
}

#[test]
fn adm_and_apdm_take_new_mappings() {
    let c = clock();
    let mut n = nat(cfg(Preset::FullCone).mapping(MappingBehavior::AddressDependent));
    let e1 = out_udp(&mut n, c.at(0.0), ALICE, 5000, SRV, 3478);
    let e2 = out_udp(&mut n, c.at(0.0), ALICE, 5000, SRV, 3479);
    let e3 = out_udp(&mut n, c.at(0.0), ALICE, 5000, SRV2, 3478);
    assert_eq!(e1, e2);
    assert_ne!(e1, e3);
    assert_eq!(n.mapping_count(), 2);

    let mut n = nat(cfg(Preset::Symmetric));
    let e1 = out_udp(&mut n, c.at(0.0), ALICE, 5000, SRV, 3478);
    let e2 = out_udp(&mut n, c.at(0.0), ALICE, 5000, SRV, 3479);
    let e3 = out_udp(&mut n, c.at(0.0), ALICE, 5000, SRV, 3478);
    assert_ne!(e1, e2);
    assert_eq!(e1, e3);
    assert_eq!(n.mapping_count(), 2);
    n.table.check_invariants();
}

#[test]
fn filtering_axes() {
    let c = clock();
    for (f, same_addr_other_port, other_addr) in [
        (FilteringBehavior::EndpointIndependent, true, true),
        (FilteringBehavior::AddressDependent, true, false),
        (FilteringBehavior::AddressAndPortDependent, false, false),
    ] {
        let mut n = nat(cfg(Preset::FullCone).filtering(f));
        let e = out_udp(&mut n, c.at(0.0), ALICE, 5000, SRV, 3478);
        assert_eq!(
            in_udp(&mut n, c.at(1.0), SRV, 3478, e),
            Some(ep(ALICE, 5000))
        );
        assert_eq!(
            in_udp(&mut n, c.at(1.0), SRV, 3479, e).is_some(),
            same_addr_other_port,
            "{f:?}"
        );
        assert_eq!(
            in_udp(&mut n, c.at(1.0), SRV2, 3478, e).is_some(),
            other_addr,
            "{f:?}"
        );
        // After contacting SRV2:3478 it is allowed under every filter.
        out_udp(&mut n, c.at(2.0), ALICE, 5000, SRV2, 3478);
        assert!(in_udp(&mut n, c.at(3.0), SRV2, 3478, e).is_some());
    }
    // No mapping at all.
    let mut n = nat(cfg(Preset::FullCone));
    assert_eq!(in_udp(&mut n, c.at(0.0), SRV, 1, ep(EXT, 4000)), None);
    assert_eq!(n.stats().dropped(DropReason::NoMapping), 1);
}

#[test]
fn presets_behave_as_their_names() {
    let c = clock();
    // restricted: EIM + ADF
    let mut n = nat(cfg(Preset::Restricted));
    let e = out_udp(&mut n, c.at(0.0), ALICE, 5000, SRV, 3478);
    assert!(in_udp(&mut n, c.at(0.0), SRV, 1, e).is_some());
    assert!(in_udp(&mut n, c.at(0.0), SRV2, 1, e).is_none());
    assert_eq!(n.stats().dropped(DropReason::Filtered), 1);
    // port-restricted: EIM + APDF
    let mut n = nat(cfg(Preset::PortRestricted));
    let e = out_udp(&mut n, c.at(0.0), ALICE, 5000, SRV, 3478);
    assert!(in_udp(&mut n, c.at(0.0), SRV, 3478, e).is_some());
    assert!(in_udp(&mut n, c.at(0.0), SRV, 1, e).is_none());
    // symmetric: random port, new mapping per destination
    let mut n = nat(cfg(Preset::Symmetric));
    let e1 = out_udp(&mut n, c.at(0.0), ALICE, 5000, SRV, 3478);
    let e2 = out_udp(&mut n, c.at(0.0), ALICE, 5000, SRV2, 3478);
    assert_ne!(e1.port, e2.port);
    assert!(in_udp(&mut n, c.at(0.0), SRV2, 3478, e1).is_none());
}

#[test]
fn port_preservation_falls_back_to_the_next_free_port() {
    let c = clock();
    let mut n = nat(cfg(Preset::FullCone));
    assert_eq!(
        out_udp(&mut n, c.at(0.0), ALICE, 5000, SRV, 1),
        ep(EXT, 5000)
    );
    assert_eq!(out_udp(&mut n, c.at(0.0), BOB, 5000, SRV, 1), ep(EXT, 5001));
    assert_eq!(out_udp(&mut n, c.at(0.0), BOB, 5001, SRV, 1), ep(EXT, 5002));
    // Below the range: the next port after the last allocated.
    assert_eq!(out_udp(&mut n, c.at(0.0), ALICE, 53, SRV, 1), ep(EXT, 5003));
    // Wraps at the top.
    let e = out_udp(&mut n, c.at(0.0), ALICE, 65535, SRV, 1);
    assert_eq!(e, ep(EXT, 65535));
    assert_eq!(
        out_udp(&mut n, c.at(0.0), BOB, 65535, SRV, 1),
        ep(EXT, 1024)
    );
    assert_eq!(out_udp(&mut n, c.at(0.0), BOB, 5003, SRV, 1), ep(EXT, 1025));
    // TCP has its own port space.
    let (v, p) = send(
        &mut n,
        c.at(0.0),
        tcp(ALICE, 5001, SRV, 80, tcp_flags::SYN),
        Direction::Outbound,
    );
    assert!(matches!(v, Verdict::Forward));
    assert_eq!(src_of(&p), ep(EXT, 5001));
}

#[test]
fn sequential_random_range_and_parity() {
    let c = clock();
    let mut n = nat(cfg(Preset::FullCone)
        .port_allocation(PortAllocation::Sequential)
        .port_range(20000, 20009));
    let ports: Vec<u16> = (0..4)
        .map(|i| out_udp(&mut n, c.at(0.0), ALICE, 6000 + i, SRV, 1).port)
        .collect();
    assert_eq!(ports, vec![20000, 20001, 20002, 20003]);

    let mut n = nat(cfg(Preset::FullCone)
        .port_allocation(PortAllocation::Random)
        .port_range(30000, 30999)
        .port_parity(true));
    let mut seen = std::collections::HashSet::new();
    for i in 0..200u16 {
        let e = out_udp(&mut n, c.at(0.0), ALICE, 7000 + i, SRV, 1);
        assert!((30000..=30999).contains(&e.port));
        assert_eq!(e.port % 2, (7000 + i) % 2, "parity");
        assert!(seen.insert(e.port), "no port overloading");
    }

    // Parity with sequential allocation.
    let mut n = nat(cfg(Preset::FullCone)
        .port_allocation(PortAllocation::Sequential)
        .port_parity(true)
        .port_range(40000, 40003));
    assert_eq!(out_udp(&mut n, c.at(0.0), ALICE, 1001, SRV, 1).port, 40001);
    assert_eq!(out_udp(&mut n, c.at(0.0), ALICE, 1003, SRV, 1).port, 40003);
    assert_eq!(out_udp(&mut n, c.at(0.0), ALICE, 1002, SRV, 1).port, 40000);
    // Odd ports exhausted, even one left.
    let (v, _) = send(
        &mut n,
        c.at(0.0),
        udp(ALICE, 1005, SRV, 1),
        Direction::Outbound,
    );
    assert!(
        matches!(v, Verdict::Drop(DropReason::PortsExhausted)),
        "{v:?}"
    );
    assert_eq!(out_udp(&mut n, c.at(0.0), ALICE, 1004, SRV, 1).port, 40002);
}

#[test]
fn ports_exhausted_and_binding_limit() {
    let c = clock();
    let mut n = nat(cfg(Preset::Symmetric).port_range(5000, 5001));
    out_udp(&mut n, c.at(0.0), ALICE, 1, SRV, 1);
    out_udp(&mut n, c.at(0.0), ALICE, 1, SRV, 2);
    let (v, _) = send(
        &mut n,
        c.at(0.0),
        udp(ALICE, 1, SRV, 3),
        Direction::Outbound,
    );
    assert!(matches!(v, Verdict::Drop(DropReason::PortsExhausted)));
    // The first one expires, then a new one fits.
    n.handle_timeout(c.at(120.0));
    assert_eq!(n.mapping_count(), 0);
    out_udp(&mut n, c.at(121.0), ALICE, 1, SRV, 3);

    let mut n = nat(cfg(Preset::FullCone).max_bindings(2));
    out_udp(&mut n, c.at(0.0), ALICE, 1, SRV, 1);
    out_udp(&mut n, c.at(0.0), ALICE, 2, SRV, 1);
    let (v, _) = send(
        &mut n,
        c.at(0.0),
        udp(ALICE, 3, SRV, 1),
        Direction::Outbound,
    );
    assert!(matches!(v, Verdict::Drop(DropReason::BindingLimit)));
    assert_eq!(n.stats().dropped(DropReason::BindingLimit), 1);
}

#[test]
fn pooling_paired_and_arbitrary() {
    let c = clock();
    let pool: Vec<IpAddr> = (11..15).map(|i| ip(&format!("203.0.113.{i}"))).collect();
    let mut n = nat(NatConfig::preset(Preset::Symmetric, pool.clone()));
    let addrs: std::collections::BTreeSet<IpAddr> = (0..50)
        .map(|i| out_udp(&mut n, c.at(0.0), ALICE, 5000, SRV, i + 1).addr)
        .collect();
    assert_eq!(addrs.len(), 1, "paired: one external address per host");
    let mut n = nat(NatConfig::preset(Preset::Symmetric, pool).pooling(Pooling::Arbitrary));
    let addrs: std::collections::BTreeSet<IpAddr> = (0..50)
        .map(|i| out_udp(&mut n, c.at(0.0), ALICE, 5000, SRV, i + 1).addr)
        .collect();
    assert!(addrs.len() > 1, "arbitrary spreads: {addrs:?}");
}

#[test]
fn expiry_is_exact_and_refresh_follows_the_rule() {
    let c = clock();
    for refresh in [Refresh::Outbound, Refresh::Both] {
        let mut n = nat(cfg(Preset::FullCone)
            .refresh(refresh)
            .timeout_udp(Duration::from_secs(30)));
        let e = out_udp(&mut n, c.at(0.0), ALICE, 5000, SRV, 1);
        assert_eq!(n.poll_timeout(), Some(c.at(30.0)));
        // Inbound at t=20 refreshes only with Refresh::Both.
        assert!(in_udp(&mut n, c.at(20.0), SRV, 1, e).is_some());
        let end = if refresh == Refresh::Both { 50.0 } else { 30.0 };
        let just_before = c.at(end) - Duration::from_nanos(1);
        assert_eq!(n.mappings()[0].expires, c.at(end), "{refresh:?}");
        n.handle_timeout(just_before);
        assert_eq!(n.mapping_count(), 1);
        // At exactly t + T the mapping is gone, even before handle_timeout.
        assert!(
            in_udp(&mut n, c.at(end), SRV, 1, e).is_none(),
            "{refresh:?}"
        );
        assert_eq!(n.mapping_count(), 0);
        let mut expired = 0;
        while let Some(ev) = n.poll_event() {
            if let NatEvent::MappingExpired {
                cause, internal, ..
            } = ev
            {
                assert_eq!(cause, ExpiryCause::Timeout);
                assert_eq!(internal, ep(ALICE, 5000));
                expired += 1;
            }
        }
        assert_eq!(expired, 1);
    }
}

#[test]
fn handle_timeout_expires_in_deadline_order() {
    let c = clock();
    let mut n = nat(cfg(Preset::FullCone).timeout_udp(Duration::from_secs(10)));
    out_udp(&mut n, c.at(0.0), ALICE, 1, SRV, 1);
    out_udp(&mut n, c.at(1.0), ALICE, 2, SRV, 1);
    out_udp(&mut n, c.at(5.0), ALICE, 1, SRV, 1); // refresh #1 to 15
    while n.poll_event().is_some() {}
    // Timer for #1 fires at 10 (stale), gets re-armed at 15.
    assert_eq!(n.poll_timeout(), Some(c.at(10.0)));
    n.handle_timeout(c.at(10.0));
    assert_eq!(n.mapping_count(), 2);
    assert_eq!(n.poll_timeout(), Some(c.at(11.0)));
    n.handle_timeout(c.at(11.0));
    assert_eq!(n.mapping_count(), 1);
    assert_eq!(n.poll_timeout(), Some(c.at(15.0)));
    n.handle_timeout(c.at(100.0));
    assert_eq!(n.mapping_count(), 0);
    assert_eq!(n.poll_timeout(), None);
    assert_eq!(n.stats().expired, 2);
}

#[test]
fn tcp_state_drives_timeouts() {
    let c = clock();
    let t = Timeouts {
        udp: Duration::from_secs(30),
        tcp_established: Duration::from_secs(1000),
        tcp_transitory: Duration::from_secs(100),
        icmp: Duration::from_secs(10),
    };
    let mut n = nat(cfg(Preset::PortRestricted).timeouts(t));
    let exp = |n: &Nat| n.mappings()[0].expires;
    let (v, p) = send(
        &mut n,
        c.at(0.0),
        tcp(ALICE, 4000, SRV, 80, tcp_flags::SYN),
        Direction::Outbound,
    );
    assert!(matches!(v, Verdict::Forward));
    let e = src_of(&p);
    assert_eq!(exp(&n), c.at(100.0), "SYN only: transitory");
    let synack = tcp(SRV, 80, EXT, e.port, tcp_flags::SYN | tcp_flags::ACK);
    let (v, p) = send(&mut n, c.at(1.0), synack, Direction::Inbound);
    assert!(matches!(v, Verdict::Forward));
    assert_eq!(dst_of(&p), ep(ALICE, 4000));
    send(
        &mut n,
        c.at(2.0),
        tcp(ALICE, 4000, SRV, 80, tcp_flags::ACK),
        Direction::Outbound,
    );
    assert!(n.mappings()[0].tcp_established);
    assert_eq!(exp(&n), c.at(1002.0), "established");
    // Inbound FIN: transitory, shortens without refreshing (outbound refresh).
    let fin = tcp(SRV, 80, EXT, e.port, tcp_flags::FIN | tcp_flags::ACK);
    send(&mut n, c.at(10.0), fin, Direction::Inbound);
    assert!(!n.mappings()[0].tcp_established);
    assert_eq!(exp(&n), c.at(110.0));
    send(
        &mut n,
        c.at(20.0),
        tcp(ALICE, 4000, SRV, 80, tcp_flags::FIN | tcp_flags::ACK),
        Direction::Outbound,
    );
    assert_eq!(exp(&n), c.at(120.0));
    n.handle_timeout(c.at(120.0));
    assert_eq!(n.mapping_count(), 0);

    // RST moves an established mapping to transitory.
    let mut n = nat(cfg(Preset::FullCone).timeouts(t));
    let (_, p) = send(
        &mut n,
        c.at(0.0),
        tcp(ALICE, 4000, SRV, 80, tcp_flags::SYN),
        Direction::Outbound,
    );
    let e = src_of(&p);
    send(
        &mut n,
        c.at(0.0),
        tcp(SRV, 80, EXT, e.port, tcp_flags::SYN | tcp_flags::ACK),
        Direction::Inbound,
    );
    send(
        &mut n,
        c.at(0.0),
        tcp(ALICE, 4000, SRV, 80, tcp_flags::ACK),
        Direction::Outbound,
    );
    assert_eq!(exp(&n), c.at(1000.0));
    send(
        &mut n,
        c.at(5.0),
        tcp(SRV, 80, EXT, e.port, tcp_flags::RST),
        Direction::Inbound,
    );
    assert_eq!(exp(&n), c.at(105.0));
}

#[test]
fn icmp_echo_is_mapped_by_identifier() {
    let c = clock();
    let mut n = nat(cfg(Preset::PortRestricted));
    let (v, p) = send(
        &mut n,
        c.at(0.0),
        echo(ALICE, SRV, 77, true),
        Direction::Outbound,
    );
    assert!(matches!(v, Verdict::Forward));
    let e = src_of(&p);
    assert_eq!(e.addr, ip(EXT));
    let (v, p) = send(
        &mut n,
        c.at(1.0),
        echo(SRV, EXT, e.port, false),
        Direction::Inbound,
    );
    assert!(matches!(v, Verdict::Forward), "{v:?}");
    assert_eq!(dst_of(&p), ep(ALICE, 77));
    // A reply from elsewhere is filtered.
    let (v, _) = send(
        &mut n,
        c.at(1.0),
        echo(SRV2, EXT, e.port, false),
        Direction::Inbound,
    );
    assert!(matches!(v, Verdict::Drop(DropReason::Filtered)));
    // ICMP timeout.
    n.handle_timeout(c.at(60.0));
    assert_eq!(n.mapping_count(), 0);
}

/// An ICMP error from `from` about `orig` (as the remote network would send it).
fn icmp_err_about(orig: &PacketBuf, from: &str) -> PacketBuf {
    reply::icmp_error(orig.as_slice(), ip(from), reply::IcmpError::PortUnreachable).unwrap()
}

#[test]
fn inbound_icmp_errors_are_translated_v4_and_v6() {
    let c = clock();
    for (ext, alice, srv) in [
        (EXT, ALICE, SRV),
        ("2001:db8::11", "fd00::2", "2001:db8:1::5"),
    ] {
        let mut n = nat(NatConfig::preset(Preset::PortRestricted, vec![ip(ext)]));
        for (orig, proto) in [
            (udp(alice, 5000, srv, 3478), "udp"),
            (tcp(alice, 5001, srv, 80, tcp_flags::SYN), "tcp"),
            (echo(alice, srv, 9, true), "icmp"),
        ] {
            let orig_bytes = orig.as_slice().to_vec();
            let (v, translated) = send(&mut n, c.at(0.0), orig, Direction::Outbound);
            assert!(matches!(v, Verdict::Forward));
            let err = icmp_err_about(&translated, srv);
            assert!(checksums_valid(err.as_slice()));
            let (v, back) = send(&mut n, c.at(1.0), err, Direction::Inbound);
            assert!(matches!(v, Verdict::Forward), "{proto} {v:?}");
            let info = parse(back.as_slice()).unwrap();
            assert_eq!(info.dst, ip(alice));
            assert_eq!(info.src, ip(srv));
            let inner = &back.as_slice()[info.l4_offset + 8..];
            // The embedded packet is the original again, byte for byte (IP header checksum
            // and transport checksum restored).
            assert_eq!(inner, &orig_bytes[..], "{proto} {ext}");
            let ii = parse_embedded(inner).unwrap();
            assert_eq!(ii.src, ip(alice));
        }
        // A corrupted ICMP checksum is dropped, not repaired (RFC 5508 REQ-3).
        let (_, translated) = send(
            &mut n,
            c.at(0.0),
            udp(alice, 6000, srv, 1),
            Direction::Outbound,
        );
        let mut err = icmp_err_about(&translated, srv);
        let info = parse(err.as_slice()).unwrap();
        err.as_mut_slice()[info.l4_offset + 2] ^= 0x55;
        let (v, _) = send(&mut n, c.at(1.0), err, Direction::Inbound);
        assert!(matches!(v, Verdict::Drop(DropReason::Malformed)), "{v:?}");
        // An error about a packet we never sent.
        let stray = udp(ext, 4444, srv, 1);
        let err = icmp_err_about(&stray, srv);
        let (v, _) = send(&mut n, c.at(1.0), err, Direction::Inbound);
        assert!(matches!(v, Verdict::Drop(DropReason::IcmpNoMapping)));
    }
}

#[test]
fn outbound_icmp_errors_are_translated() {
    let c = clock();
    let mut n = nat(cfg(Preset::FullCone));
    let e = out_udp(&mut n, c.at(0.0), ALICE, 5000, SRV, 3478);
    let inbound = udp(SRV, 3478, EXT, e.port);
    let (v, delivered) = send(&mut n, c.at(1.0), inbound.clone(), Direction::Inbound);
    assert!(matches!(v, Verdict::Forward));
    // Alice's host answers port unreachable.
    let err = icmp_err_about(&delivered, ALICE);
    let (v, out) = send(&mut n, c.at(1.0), err, Direction::Outbound);
    assert!(matches!(v, Verdict::Forward), "{v:?}");
    let info = parse(out.as_slice()).unwrap();
    assert_eq!(info.src, ip(EXT));
    assert_eq!(info.dst, ip(SRV));
    assert_eq!(&out.as_slice()[info.l4_offset + 8..], inbound.as_slice());
    // About a flow with no mapping.
    let err = icmp_err_about(&udp(SRV, 1, ALICE, 1), ALICE);
    let (v, _) = send(&mut n, c.at(1.0), err, Direction::Outbound);
    assert!(matches!(v, Verdict::Drop(DropReason::IcmpNoMapping)));
}

fn fragments_of(src: &str, dst: &str, sp: u16, dp: u16, id: u16) -> (PacketBuf, PacketBuf) {
    // A UDP datagram of 8 + 24 bytes split into 16 + 16 bytes of IP payload.
    let mut whole = Vec::new();
    let (s, d) = match (ip(src), ip(dst)) {
        (IpAddr::V4(s), IpAddr::V4(d)) => (s.octets(), d.octets()),
        _ => panic!(),
    };
    PacketBuilder::ipv4(s, d, 64)
        .udp(sp, dp)
        .write(&mut whole, &[7u8; 24])
        .unwrap();
    let payload = &whole[20..];
    let mk = |off: usize, data: &[u8], more: bool| {
        let mut h =
            etherparse::Ipv4Header::new(data.len() as u16, 64, etherparse::IpNumber::UDP, s, d)
                .unwrap();
        h.identification = id;
        h.more_fragments = more;
        h.fragment_offset = etherparse::IpFragOffset::try_new((off / 8) as u16).unwrap();
        h.header_checksum = h.calc_header_checksum();
        let mut v = Vec::new();
        h.write(&mut v).unwrap();
        v.extend_from_slice(data);
        PacketBuf::from_slice(&v)
    };
    (mk(0, &payload[..16], true), mk(16, &payload[16..], false))
}

#[test]
fn fragments_follow_their_first_fragment() {
    let c = clock();
    let mut n = nat(cfg(Preset::FullCone));
    let (f1, f2) = fragments_of(ALICE, SRV, 5000, 53, 42);
    let (v, p1) = send(&mut n, c.at(0.0), f1, Direction::Outbound);
    assert!(matches!(v, Verdict::Forward));
    let (v, p2) = send(&mut n, c.at(0.1), f2, Direction::Outbound);
    assert!(matches!(v, Verdict::Forward), "{v:?}");
    assert_eq!(parse(p1.as_slice()).unwrap().src, ip(EXT));
    assert_eq!(parse(p2.as_slice()).unwrap().src, ip(EXT));
    // Reassemble and check the UDP checksum of the whole translated datagram.
    let info = parse(p1.as_slice()).unwrap();
    let mut whole = Vec::new();
    PacketBuilder::ipv4([203, 0, 113, 11], [198, 51, 100, 5], 64)
        .udp(5000, 53)
        .write(&mut whole, &[7u8; 24])
        .unwrap();
    assert_eq!(&p1.as_slice()[info.l4_offset..], &whole[20..36]);
    assert_eq!(&p2.as_slice()[20..], &whole[36..]);

    // Inbound fragments.
    let (g1, g2) = fragments_of(SRV, EXT, 53, 5000, 43);
    let (v, q1) = send(&mut n, c.at(1.0), g1, Direction::Inbound);
    assert!(matches!(v, Verdict::Forward));
    let (v, q2) = send(&mut n, c.at(1.0), g2, Direction::Inbound);
    assert!(matches!(v, Verdict::Forward));
    assert_eq!(parse(q1.as_slice()).unwrap().dst, ip(ALICE));
    assert_eq!(parse(q2.as_slice()).unwrap().dst, ip(ALICE));

    // A later fragment before its first: dropped.
    let (_, h2) = fragments_of(ALICE, SRV, 5000, 53, 44);
    let (v, _) = send(&mut n, c.at(2.0), h2, Direction::Outbound);
    assert!(matches!(v, Verdict::Drop(DropReason::Fragment)));
    // The memory of the first fragment lasts FRAGMENT_TIMEOUT.
    let (_, f2) = fragments_of(ALICE, SRV, 5000, 53, 42);
    let (v, _) = send(&mut n, c.at(15.0), f2, Direction::Outbound);
    assert!(matches!(v, Verdict::Drop(DropReason::Fragment)));

    let mut n = nat(cfg(Preset::FullCone).fragments(Fragments::Drop));
    let (f1, _) = fragments_of(ALICE, SRV, 5000, 53, 42);
    let (v, _) = send(&mut n, c.at(0.0), f1, Direction::Outbound);
    assert!(matches!(v, Verdict::Drop(DropReason::Fragment)));
}

#[test]
fn unsolicited_replies() {
    let c = clock();
    let mut n = nat(cfg(Preset::PortRestricted).unsolicited(Unsolicited::Icmp));
    let (v, _) = send(
        &mut n,
        c.at(0.0),
        udp(SRV, 1, EXT, 4000),
        Direction::Inbound,
    );
    let Verdict::Reply(DropReason::NoMapping, r) = v else {
        panic!("{v:?}")
    };
    assert!(checksums_valid(r.as_slice()));
    let info = parse(r.as_slice()).unwrap();
    assert_eq!((info.src, info.dst), (ip(EXT), ip(SRV)));
    assert_eq!(
        info.l4,
        L4::Icmp {
            kind: IcmpKind::Error { ty: 3, code: 3 },
            id: 0
        }
    );

    let mut n = nat(cfg(Preset::PortRestricted).unsolicited(Unsolicited::Rst));
    let e = out_udp(&mut n, c.at(0.0), ALICE, 5000, SRV, 1);
    // Filtered UDP: ICMP port unreachable.
    let (v, _) = send(
        &mut n,
        c.at(0.0),
        udp(SRV2, 1, EXT, e.port),
        Direction::Inbound,
    );
    let Verdict::Reply(DropReason::Filtered, r) = v else {
        panic!("{v:?}")
    };
    assert!(matches!(parse(r.as_slice()).unwrap().l4, L4::Icmp { .. }));
    // Unsolicited TCP: RST from the external address.
    let (v, _) = send(
        &mut n,
        c.at(0.0),
        tcp(SRV, 5555, EXT, 80, tcp_flags::SYN),
        Direction::Inbound,
    );
    let Verdict::Reply(DropReason::NoMapping, r) = v else {
        panic!("{v:?}")
    };
    assert!(checksums_valid(r.as_slice()));
    let info = parse(r.as_slice()).unwrap();
    assert_eq!(info.src, ip(EXT));
    assert!(matches!(info.l4, L4::Tcp { flags, .. } if flags & tcp_flags::RST != 0));
    assert_eq!(n.stats().replies, 2);

    // Drop: no reply.
    let mut n = nat(cfg(Preset::PortRestricted));
    let (v, _) = send(
        &mut n,
        c.at(0.0),
        udp(SRV, 1, EXT, 4000),
        Direction::Inbound,
    );
    assert!(matches!(v, Verdict::Drop(DropReason::NoMapping)));
}

#[test]
fn hairpin_carries_the_external_source() {
    let c = clock();
    let mut n = nat(cfg(Preset::PortRestricted).hairpinning(true));
    // Bob has a mapping (he talked to the server, which told Alice his address).
    let eb = out_udp(&mut n, c.at(0.0), BOB, 6000, SRV, 3478);
    // Alice sends to Bob's external endpoint: filtered (Bob never sent to Alice's mapping).
    let p = udp(ALICE, 5000, EXT, eb.port);
    let (v, _) = send(&mut n, c.at(1.0), p.clone(), Direction::Outbound);
    assert!(matches!(v, Verdict::Drop(DropReason::Filtered)), "{v:?}");
    let ea = n
        .mappings()
        .into_iter()
        .find(|m| m.internal == ep(ALICE, 5000))
        .unwrap()
        .external;
    // Bob sends to Alice's external endpoint: hairpinned, source = Bob's external endpoint.
    let (v, q) = send(
        &mut n,
        c.at(2.0),
        udp(BOB, 6000, EXT, ea.port),
        Direction::Outbound,
    );
    assert!(matches!(v, Verdict::Hairpin), "{v:?}");
    assert_eq!(src_of(&q), eb);
    assert_eq!(dst_of(&q), ep(ALICE, 5000));
    // Now Alice's packets to Bob get through too.
    let (v, q) = send(&mut n, c.at(3.0), p, Direction::Outbound);
    assert!(matches!(v, Verdict::Hairpin), "{v:?}");
    assert_eq!(src_of(&q), ea);
    assert_eq!(dst_of(&q), ep(BOB, 6000));
    assert_eq!(n.stats().hairpinned, 2);

    let mut n = nat(cfg(Preset::FullCone));
    out_udp(&mut n, c.at(0.0), BOB, 6000, SRV, 3478);
    let (v, _) = send(
        &mut n,
        c.at(1.0),
        udp(ALICE, 5000, EXT, 6000),
        Direction::Outbound,
    );
    assert!(matches!(v, Verdict::Drop(DropReason::HairpinDisabled)));
}

#[test]
fn reboot_rebind_renumber() {
    let c = clock();
    let mut n = nat(cfg(Preset::FullCone));
    let e1 = out_udp(&mut n, c.at(0.0), ALICE, 5000, SRV, 1);
    let e2 = out_udp(&mut n, c.at(0.0), BOB, 6000, SRV, 1);
    while n.poll_event().is_some() {}
    n.rebind(c.at(1.0));
    assert_eq!(n.mapping_count(), 2);
    let mut moved = vec![];
    while let Some(ev) = n.poll_event() {
        if let NatEvent::MappingRebound {
            old_external,
            new_external,
            ..
        } = ev
        {
            assert_ne!(old_external, new_external);
            moved.push(old_external);
        }
    }
    assert_eq!(moved, vec![e1, e2]);
    assert!(
        in_udp(&mut n, c.at(2.0), SRV, 1, e1).is_none(),
        "old endpoint gone"
    );
    let ne1 = out_udp(&mut n, c.at(2.0), ALICE, 5000, SRV, 1);
    assert_ne!(ne1, e1);
    assert_eq!(
        in_udp(&mut n, c.at(2.0), SRV, 1, ne1),
        Some(ep(ALICE, 5000))
    );
    n.table.check_invariants();

    n.reboot(c.at(3.0));
    assert_eq!(n.mapping_count(), 0);
    assert!(in_udp(&mut n, c.at(3.0), SRV, 1, ne1).is_none());
    let causes: Vec<_> = std::iter::from_fn(|| n.poll_event())
        .filter_map(|e| match e {
            NatEvent::MappingExpired { cause, .. } => Some(cause),
            _ => None,
        })
        .collect();
    assert_eq!(causes, vec![ExpiryCause::Reboot; 2]);

    out_udp(&mut n, c.at(4.0), ALICE, 5000, SRV, 1);
    assert!(n.renumber(c.at(5.0), vec![]).is_err());
    assert_eq!(n.mapping_count(), 1);
    n.renumber(c.at(5.0), vec![ip("203.0.113.31")]).unwrap();
    assert_eq!(n.mapping_count(), 0);
    assert!(!n.is_external(ip(EXT)));
    assert!(n.is_external(ip("203.0.113.31")));
    assert_eq!(
        out_udp(&mut n, c.at(6.0), ALICE, 5000, SRV, 1),
        ep("203.0.113.31", 5000)
    );
    assert_eq!(n.config().external, vec![ip("203.0.113.31")]);
}

#[test]
fn nat66_and_family_mismatch() {
    let c = clock();
    let mut n = nat(NatConfig::preset(
        Preset::PortRestricted,
        vec![ip("2001:db8::11")],
    ));
    let e = out_udp(&mut n, c.at(0.0), "fd00::2", 5000, "2001:db8:1::5", 3478);
    assert_eq!(e, ep("2001:db8::11", 5000));
    assert_eq!(
        in_udp(&mut n, c.at(0.0), "2001:db8:1::5", 3478, e),
        Some(ep("fd00::2", 5000))
    );
    let (v, _) = send(
        &mut n,
        c.at(0.0),
        udp(ALICE, 1, SRV, 1),
        Direction::Outbound,
    );
    assert!(matches!(v, Verdict::Drop(DropReason::AddressFamily)));
    // Dual-stack pool.
    let mut n = nat(NatConfig::preset(
        Preset::PortRestricted,
        vec![ip(EXT), ip("2001:db8::11")],
    ));
    assert_eq!(out_udp(&mut n, c.at(0.0), ALICE, 1, SRV, 1).addr, ip(EXT));
    assert_eq!(
        out_udp(&mut n, c.at(0.0), "fd00::2", 1, "2001:db8:1::5", 1).addr,
        ip("2001:db8::11")
    );
}

#[test]
fn odd_packets_are_dropped_with_reasons() {
    let c = clock();
    let mut n = nat(cfg(Preset::FullCone));
    let (v, _) = send(
        &mut n,
        c.at(0.0),
        PacketBuf::from_slice(&[0x45, 0, 0]),
        Direction::Outbound,
    );
    assert!(matches!(v, Verdict::Drop(DropReason::Malformed)));
    // SCTP.
    let mut raw = udp(ALICE, 1, SRV, 1).as_slice().to_vec();
    raw[9] = 132;
    raw[10] = 0;
    raw[11] = 0;
    let cs = crate::wire::checksum::checksum(&raw[..20]);
    raw[10..12].copy_from_slice(&cs.to_be_bytes());
    let (v, _) = send(
        &mut n,
        c.at(0.0),
        PacketBuf::from_slice(&raw),
        Direction::Outbound,
    );
    assert!(matches!(v, Verdict::Drop(DropReason::UnsupportedProtocol)));
    // Inbound to an address that is not ours.
    let (v, _) = send(&mut n, c.at(0.0), udp(SRV, 1, ALICE, 1), Direction::Inbound);
    assert!(matches!(v, Verdict::Drop(DropReason::NoMapping)));
    assert_eq!(n.stats().total_dropped(), 3);
    let drops = std::iter::from_fn(|| n.poll_event())
        .filter(|e| matches!(e, NatEvent::PacketDropped { .. }))
        .count();
    assert_eq!(drops, 3);
}

#[test]
fn new_rejects_bad_configs() {
    assert_eq!(
        Nat::new(NatConfig::new(vec![]), SimRng::new(1)).unwrap_err(),
        NatConfigError::EmptyPool
    );
    assert!(Nat::new(cfg(Preset::FullCone).port_range(10, 9), SimRng::new(1)).is_err());
}

#[test]
fn events_report_creation() {
    let c = clock();
    let mut n = nat(cfg(Preset::FullCone));
    out_udp(&mut n, c.at(0.0), ALICE, 5000, SRV, 3478);
    assert_eq!(
        n.poll_event(),
        Some(NatEvent::MappingCreated {
            proto: Proto::Udp,
            internal: ep(ALICE, 5000),
            external: ep(EXT, 5000),
            remote: ep(SRV, 3478),
        })
    );
    assert_eq!(n.poll_event(), None);
    assert_eq!(n.stats().created, 1);
    assert_eq!(n.stats().translated_out, 1);
}

#[test]
fn batches_match_one_by_one() {
    let c = clock();
    let mk = || {
        nat(cfg(Preset::Symmetric)
            .hairpinning(true)
            .unsolicited(Unsolicited::Icmp))
    };
    let (mut a, mut b) = (mk(), mk());
    let mut pkts: Vec<PacketBuf> = (0..70u16)
        .map(|i| match i % 5 {
            0 => udp(ALICE, 1000 + i % 7, SRV, 3478),
            1 => tcp(BOB, 2000 + i % 3, SRV2, 80, tcp_flags::SYN),
            2 => echo(ALICE, SRV, i % 4, true),
            3 => udp(BOB, 2000, EXT, 1000 + i),
            _ => PacketBuf::from_slice(&[0x45, 1, 2]),
        })
        .collect();
    let mut one: Vec<(String, PacketBuf)> = Vec::new();
    for p in pkts.iter() {
        let mut p = p.clone();
        let v = a.handle_packet(c.at(1.0), Direction::Outbound, &mut p);
        one.push((format!("{v:?}"), p));
    }
    let mut verdicts = Vec::new();
    b.handle_batch(c.at(1.0), Direction::Outbound, &mut pkts, &mut verdicts);
    let batch: Vec<(String, PacketBuf)> = verdicts
        .iter()
        .map(|v| format!("{v:?}"))
        .zip(pkts)
        .collect();
    assert_eq!(one, batch);
    let ea: Vec<_> = std::iter::from_fn(|| a.poll_event()).collect();
    let eb: Vec<_> = std::iter::from_fn(|| b.poll_event()).collect();
    assert_eq!(ea, eb);
    assert_eq!(a.stats(), b.stats());
    // Inbound replies to every external endpoint, batched.
    let mut inb: Vec<PacketBuf> = a
        .mappings()
        .iter()
        .map(|m| udp(SRV, 3478, EXT, m.external.port))
        .collect();
    let mut one = Vec::new();
    for p in inb.iter() {
        let mut p = p.clone();
        let v = a.handle_packet(c.at(2.0), Direction::Inbound, &mut p);
        one.push((format!("{v:?}"), p));
    }
    verdicts.clear();
    b.handle_batch(c.at(2.0), Direction::Inbound, &mut inb, &mut verdicts);
    let batch: Vec<(String, PacketBuf)> =
        verdicts.iter().map(|v| format!("{v:?}")).zip(inb).collect();
    assert_eq!(one, batch);
    assert!(one.iter().any(|(v, _)| v == "Forward"));
}
