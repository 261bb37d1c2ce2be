//! Fuzz bodies for `pinhole-emulator`: wire parsing and rewriting, the NAT, the firewall
//! and the link. Compiled into the fuzz crate (`fuzz/src/lib.rs`) and into the replay test
//! `emulator/tests/fuzz_replay.rs`, so that `cargo test` checks the committed corpus with
//! exactly the assertions the fuzzer used.

#[path = "input.rs"]
mod input;

use emulator::firewall::{
    Action, Firewall, FirewallClass, FirewallConfig, FirewallTimeouts, Rule, RuleProto,
};
use emulator::link::{Admit, Link, LinkConfig, Loss};
use emulator::nat::{
    FRAGMENT_TIMEOUT, FilteringBehavior, Fragments, MappingBehavior, Nat, NatConfig, Pooling,
    PortAllocation, Refresh, SipAlgMode, Timeouts, Unsolicited,
};
use emulator::rng::SimRng;
use emulator::wire::reply::{self, IcmpError};
use emulator::wire::{self, Endpoint, IpVersion, L4, PacketInfo, checksum};
use emulator::{Direction, DropReason, PacketBuf, Prefix, Verdict};
use input::Input;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

/// Ops per input: keeps one execution fast whatever the input length.
const MAX_OPS: usize = 256;

/// A fixed base instant (the cores never read the clock; this is the driver's epoch).
fn epoch() -> Instant {
    #[allow(clippy::disallowed_methods)] // the fuzz driver's clock origin
    Instant::now()
}

// ===== Packet building =====

/// Transport of a built packet.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// UDP.
    Udp,
    /// TCP with these flags.
    Tcp(u8),
    /// ICMP echo request.
    EchoRequest,
    /// ICMP echo reply.
    EchoReply,
    /// Another protocol (SCTP, 132).
    Other,
}

/// Fragment fields of a built packet: (offset in 8-byte units, more fragments, id).
pub type Frag = Option<(u16, bool, u16)>;

/// Build an IPv4/IPv6 packet with correct checksums. `src` and `dst` must be of one family.
pub fn build(
    src: Endpoint,
    dst: Endpoint,
    kind: Kind,
    frag: Frag,
    df: bool,
    payload: &[u8],
) -> Vec<u8> {
    let v6 = src.addr.is_ipv6();
    let proto = match kind {
        Kind::Udp => 17,
        Kind::Tcp(_) => 6,
        Kind::EchoRequest | Kind::EchoReply if v6 => 58,
        Kind::EchoRequest | Kind::EchoReply => 1,
        Kind::Other => 132,
    };
    let mut l4 = Vec::new();
    let first = frag.is_none_or(|(off, _, _)| off == 0);
    if first {
        match kind {
            Kind::Udp => {
                l4.extend_from_slice(&src.port.to_be_bytes());
                l4.extend_from_slice(&dst.port.to_be_bytes());
                l4.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
                l4.extend_from_slice(&[0, 0]);
            }
            Kind::Tcp(flags) => {
                l4.extend_from_slice(&src.port.to_be_bytes());
                l4.extend_from_slice(&dst.port.to_be_bytes());
                l4.extend_from_slice(&1000u32.to_be_bytes());
                l4.extend_from_slice(&2000u32.to_be_bytes());
                l4.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
            }
            Kind::EchoRequest | Kind::EchoReply => {
                let ty = match (kind, v6) {
                    (Kind::EchoRequest, false) => 8,
                    (Kind::EchoReply, false) => 0,
                    (Kind::EchoRequest, true) => 128,
                    _ => 129,
                };
                l4.extend_from_slice(&[ty, 0, 0, 0]);
                l4.extend_from_slice(&src.port.to_be_bytes());
                l4.extend_from_slice(&[0, 1]);
            }
            Kind::Other => {}
        }
    }
    l4.extend_from_slice(payload);
    let mut p = Vec::with_capacity(48 + l4.len());
    match (src.addr, dst.addr) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let total = (20 + l4.len()) as u16;
            let (off, more, id) = frag.unwrap_or((0, false, 0x1234));
            let ff = (off & 0x1fff) | if more { 0x2000 } else { 0 } | if df { 0x4000 } else { 0 };
            p.extend_from_slice(&[0x45, 0]);
            p.extend_from_slice(&total.to_be_bytes());
            p.extend_from_slice(&id.to_be_bytes());
            p.extend_from_slice(&ff.to_be_bytes());
            p.extend_from_slice(&[64, proto, 0, 0]);
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let ext = if frag.is_some() { 8 } else { 0 };
            p.extend_from_slice(&[0x60, 0, 0, 0]);
            p.extend_from_slice(&((ext + l4.len()) as u16).to_be_bytes());
            p.extend_from_slice(&[if frag.is_some() { 44 } else { proto }, 64]);
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
            if let Some((off, more, id)) = frag {
                let fo = ((off & 0x1fff) << 3) | u16::from(more);
                p.extend_from_slice(&[proto, 0]);
                p.extend_from_slice(&fo.to_be_bytes());
                p.extend_from_slice(&u32::from(id).to_be_bytes());
            }
        }
        _ => panic!("build: mixed address families"),
    }
    p.extend_from_slice(&l4);
    fix_checksums(&mut p);
    p
}

/// Recompute every checksum `checksums_valid` verifies (IPv4 header; UDP/TCP/ICMP of an
/// unfragmented packet). Returns the parse, or `None` if the packet does not parse.
pub fn fix_checksums(buf: &mut [u8]) -> Option<PacketInfo> {
    let info = wire::parse(buf).ok()?;
    let buf = &mut buf[..info.total_len];
    if info.version == IpVersion::V4 {
        buf[10] = 0;
        buf[11] = 0;
        let c = checksum::checksum(&buf[..info.l4_offset]);
        buf[10..12].copy_from_slice(&c.to_be_bytes());
    }
    if info.fragment.is_some() {
        return Some(info);
    }
    let at = match info.l4 {
        L4::Udp { .. } => info.l4_offset + 6,
        L4::Tcp { .. } => info.l4_offset + 16,
        L4::Icmp { .. } => info.l4_offset + 2,
        _ => return Some(info),
    };
    buf[at] = 0;
    buf[at + 1] = 0;
    let (hdr, seg) = buf.split_at(info.l4_offset);
    let (src, dst): (&[u8], &[u8]) = match info.version {
        IpVersion::V4 => (&hdr[12..16], &hdr[16..20]),
        IpVersion::V6 => (&hdr[8..24], &hdr[24..40]),
    };
    let pseudo = !(matches!(info.l4, L4::Icmp { .. }) && info.version == IpVersion::V4);
    let proto = info.proto.number(info.version);
    let mut acc = checksum::sum(seg) as u64;
    if pseudo {
        acc += checksum::pseudo_header_sum(src, dst, proto, seg.len() as u32) as u64;
    }
    while acc > 0xffff_ffff {
        acc = (acc & 0xffff_ffff) + (acc >> 32);
    }
    let mut c = checksum::finish(acc as u32);
    if c == 0 && matches!(info.l4, L4::Udp { .. }) {
        c = 0xffff;
    }
    buf[at..at + 2].copy_from_slice(&c.to_be_bytes());
    Some(info)
}

fn v4(last: u8, net: [u8; 3]) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(net[0], net[1], net[2], last))
}

fn v6(net: u16, last: u16) -> IpAddr {
    IpAddr::V6(Ipv6Addr::new(net, 0xdb8, 0, 0, 0, 0, 0, last))
}

fn icmp_error_kind(b: u8) -> IcmpError {
    match b % 5 {
        0 => IcmpError::PortUnreachable,
        1 => IcmpError::HostUnreachable,
        2 => IcmpError::AdminProhibited,
        3 => IcmpError::TooBig {
            mtu: 576 + u16::from(b),
        },
        _ => IcmpError::TimeExceeded,
    }
}

/// A structured packet between an address of `from` and one of `to` (same family,
/// chosen by the input), with valid checksums.
fn structured(inp: &mut Input, from: &[IpAddr], to: &[IpAddr]) -> Vec<u8> {
    let v6 = inp.bool();
    let pick = |inp: &mut Input, set: &[IpAddr]| {
        let fam: Vec<IpAddr> = set.iter().copied().filter(|a| a.is_ipv6() == v6).collect();
        if fam.is_empty() {
            None
        } else {
            Some(fam[inp.below(fam.len())])
        }
    };
    let (Some(s), Some(d)) = (pick(inp, from), pick(inp, to)) else {
        return Vec::new();
    };
    let src = Endpoint::new(s, port(inp));
    let dst = Endpoint::new(d, port(inp));
    structured_to(inp, src, dst)
}

/// A few ports, so that packets collide on mappings and flows.
fn port(inp: &mut Input) -> u16 {
    match inp.u8() {
        b @ 0..=191 => 5000 + u16::from(b % 8),
        b @ 192..=223 => 443 + u16::from(b % 2) * 2637, // 443 and 3080
        _ => inp.u16(),
    }
}

fn structured_to(inp: &mut Input, src: Endpoint, dst: Endpoint) -> Vec<u8> {
    let kind = match inp.u8() % 8 {
        0..=2 => Kind::Udp,
        3..=5 => Kind::Tcp(inp.u8() & 0x3f),
        6 => {
            if inp.bool() {
                Kind::EchoRequest
            } else {
                Kind::EchoReply
            }
        }
        _ => Kind::Other,
    };
    let f = inp.u8();
    let frag = (f & 0xc0 == 0xc0).then(|| (u16::from(f & 1) * 3, f & 2 != 0, 7));
    let payload = inp.bytes(64);
    build(src, dst, kind, frag, f & 4 != 0, payload)
}

/// (kind, reason, bytes) of a verdict, for comparing two runs.
fn verdict_key(v: &Verdict, pkt: &PacketBuf) -> (u8, Option<DropReason>, Vec<u8>) {
    match v {
        Verdict::Forward => (0, None, pkt.as_slice().to_vec()),
        Verdict::Hairpin => (1, None, pkt.as_slice().to_vec()),
        Verdict::Drop(r) => (2, Some(*r), Vec::new()),
        Verdict::Reply(r, p) => (3, Some(*r), p.as_slice().to_vec()),
    }
}

// ===== wire_parse =====

/// `wire::parse` and friends on arbitrary bytes. Layout: one flags byte, 16 address bytes,
/// 2 port bytes, then the packet.
///
/// Invariants: nothing panics; whatever `parse` accepts `parse_embedded` accepts with the
/// same header fields; a rewrite updates `info` to exactly what re-parsing gives; a packet
/// whose checksums were valid before a rewrite has valid checksums after it; replies
/// built about the packet parse and carry valid checksums.
pub fn wire_parse(data: &[u8]) {
    let mut inp = Input::new(data);
    let flags = inp.u8();
    let mut a = [0u8; 16];
    for b in &mut a {
        *b = inp.u8();
    }
    let port = inp.u16();
    let pkt = inp.rest();

    let parsed = wire::parse(pkt);
    let embedded = wire::parse_embedded(pkt);
    let valid = wire::checksums_valid(pkt);
    assert!(
        !valid || parsed.is_ok(),
        "valid checksums on an unparseable packet"
    );
    for from in [
        IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3])),
        IpAddr::V6(Ipv6Addr::from(a)),
    ] {
        let kind = icmp_error_kind(flags >> 3);
        if let Some(r) = reply::icmp_error(pkt, from, kind) {
            let i = wire::parse(r.as_slice()).expect("an ICMP error we built parses");
            assert!(i.is_icmp_error());
            assert!(wire::checksums_valid(r.as_slice()), "ICMP error checksums");
            // (A long IPv6 extension-header chain may be cut off by the quote limit.)
            if let Ok(inner) = wire::parse_embedded(&r.as_slice()[i.l4_offset + 8..]) {
                assert_eq!(Some(inner.src), parsed.as_ref().ok().map(|p| p.src));
            }
        }
    }
    if let Some(r) = reply::tcp_rst(pkt) {
        let i = wire::parse(r.as_slice()).expect("a RST we built parses");
        assert!(matches!(i.l4, L4::Tcp { flags, .. } if flags & wire::tcp_flags::RST != 0));
        assert!(wire::checksums_valid(r.as_slice()), "RST checksums");
    }
    let Ok(info) = parsed else { return };
    let e = embedded.expect("parse accepts it, so parse_embedded must");
    assert_eq!(
        (e.version, e.src, e.dst, e.proto, e.l4_offset, e.fragment),
        (
            info.version,
            info.src,
            info.dst,
            info.proto,
            info.l4_offset,
            info.fragment
        )
    );
    assert_eq!(e.src_endpoint(), info.src_endpoint());
    assert_eq!(e.dst_endpoint(), info.dst_endpoint());
    assert!(info.total_len <= pkt.len() && info.l4_offset <= info.total_len);

    let mut buf = pkt.to_vec();
    let mut valid = valid;
    if flags & 1 != 0 {
        // Give the rewrite a packet with good checksums to keep good.
        fix_checksums(&mut buf).expect("still parses");
        assert!(wire::checksums_valid(&buf), "fix_checksums disagrees");
        valid = true;
    }
    let mut info = wire::parse(&buf).expect("still parses");
    let addr = match (info.version, flags & 4 != 0) {
        (IpVersion::V4, false) | (IpVersion::V6, true) => {
            IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3]))
        }
        _ => IpAddr::V6(Ipv6Addr::from(a)),
    };
    let new = Endpoint::new(addr, port);
    let before = buf.clone();
    let src = flags & 2 != 0;
    let done = if src {
        wire::set_src(&mut buf, &mut info, new)
    } else {
        wire::set_dst(&mut buf, &mut info, new)
    };
    if flags & 4 != 0 {
        assert!(
            !done,
            "a rewrite to the other address family must be refused"
        );
        assert_eq!(buf, before, "a refused rewrite must not change the packet");
        return;
    }
    assert!(done);
    assert_eq!(
        wire::parse(&buf),
        Ok(info),
        "info after rewrite != re-parse"
    );
    if valid {
        assert!(wire::checksums_valid(&buf), "rewrite broke the checksums");
    }
    if flags & 8 != 0 {
        let ttl = wire::decrement_ttl(&mut buf, &mut info);
        assert_eq!(wire::parse(&buf), Ok(info));
        assert_eq!(info.ttl, ttl);
        if valid {
            assert!(
                wire::checksums_valid(&buf),
                "TTL decrement broke the checksums"
            );
        }
    }
}

// ===== nat_engine =====

fn nat_config(inp: &mut Input) -> NatConfig {
    let mut external = vec![v4(11, [203, 0, 113])];
    let pool = inp.u8();
    if pool & 1 != 0 {
        external.push(v4(12, [203, 0, 113]));
    }
    if pool & 2 != 0 {
        external.push(v6(0x2001, 0x11));
    }
    let secs = |inp: &mut Input| Duration::from_secs(1 + u64::from(inp.u8()));
    let lo = 1024 + u16::from(inp.u8() % 252) * 256;
    let hi = if inp.bool() {
        lo.saturating_add(u16::from(inp.u8() % 16))
    } else {
        65535
    };
    NatConfig::new(external)
        .mapping(
            [
                MappingBehavior::EndpointIndependent,
                MappingBehavior::AddressDependent,
                MappingBehavior::AddressAndPortDependent,
            ][inp.below(3)],
        )
        .filtering(
            [
                FilteringBehavior::EndpointIndependent,
                FilteringBehavior::AddressDependent,
                FilteringBehavior::AddressAndPortDependent,
            ][inp.below(3)],
        )
        .port_allocation(
            [
                PortAllocation::Preserve,
                PortAllocation::Sequential,
                PortAllocation::Random,
            ][inp.below(3)],
        )
        .pooling([Pooling::Paired, Pooling::Arbitrary][inp.below(2)])
        .port_parity(inp.bool())
        .port_range(lo, hi)
        .hairpinning(inp.bool())
        .refresh([Refresh::Outbound, Refresh::Both][inp.below(2)])
        .unsolicited([Unsolicited::Drop, Unsolicited::Icmp, Unsolicited::Rst][inp.below(3)])
        .fragments([Fragments::Translate, Fragments::Drop][inp.below(2)])
        // Bit 2 of the pool byte (unused before) turns the SIP ALG on, so that the
        // committed corpus keeps its meaning.
        .sip_alg(if pool & 4 != 0 {
            SipAlgMode::Rewrite
        } else {
            SipAlgMode::Off
        })
        .max_bindings(1 + inp.below(64))
        .timeouts(Timeouts {
            udp: secs(inp),
            tcp_established: secs(inp),
            tcp_transitory: secs(inp),
            icmp: secs(inp),
        })
}

/// One NAT step's checks: replies are well-formed; translated packets that had valid
/// checksums still have them.
fn check_nat_verdict(v: &Verdict, pkt: &PacketBuf, had_valid_checksums: bool) {
    match v {
        Verdict::Forward | Verdict::Hairpin => {
            if had_valid_checksums {
                assert!(
                    wire::checksums_valid(pkt.as_slice()),
                    "NAT translation broke the checksums: {:02x?}",
                    pkt.as_slice()
                );
            }
        }
        Verdict::Reply(_, r) => {
            assert!(
                wire::parse(r.as_slice()).is_ok(),
                "NAT reply does not parse"
            );
            assert!(wire::checksums_valid(r.as_slice()), "NAT reply checksums");
        }
        Verdict::Drop(_) => {}
    }
}

/// The NAT driven by a program decoded from the input: packets both ways (structured,
/// raw, ICMP errors about translated packets, batches), time steps, timeouts, rebinds
/// and reboots.
///
/// Invariants: nothing panics; `mapping_count() <= max_bindings` after every step;
/// translations keep valid checksums valid; replies parse with valid checksums;
/// `handle_batch` gives exactly what `handle_packet` one by one gives (verdicts, bytes,
/// stats, events, mappings); once time passes every timeout and `handle_timeout` runs,
/// no mapping is left.
pub fn nat_engine(data: &[u8]) {
    let mut inp = Input::new(data);
    let config = nat_config(&mut inp);
    let max = config.max_bindings;
    let longest = config.timeouts.max();
    let seed = u64::from(inp.u16());
    let mut nat = Nat::new(config, SimRng::new(seed)).expect("a valid config");
    let inside = [
        v4(2, [10, 0, 1]),
        v4(3, [10, 0, 1]),
        v6(0xfd00, 2),
        v6(0xfd00, 3),
    ];
    let outside = [
        v4(5, [198, 51, 100]),
        v4(6, [198, 51, 100]),
        v6(0x2001, 0x5),
        v6(0x2001, 0x6),
    ];
    let mut hairpin_targets = outside.to_vec();
    hairpin_targets.extend(nat.config().external.iter().copied());
    let t0 = epoch();
    let mut now = t0;
    let mut forwarded: Vec<Vec<u8>> = Vec::new();
    for _ in 0..MAX_OPS {
        if inp.is_empty() {
            break;
        }
        match inp.u8() % 10 {
            0 => now += Duration::from_millis(u64::from(inp.u16()) * 10),
            1 | 2 => {
                let p = structured(&mut inp, &inside, &hairpin_targets);
                if p.is_empty() {
                    continue;
                }
                let mut pkt = PacketBuf::from_slice(&p);
                let v = nat.handle_packet(now, Direction::Outbound, &mut pkt);
                check_nat_verdict(&v, &pkt, true);
                if matches!(v, Verdict::Forward) {
                    forwarded.push(pkt.as_slice().to_vec());
                    if forwarded.len() > 8 {
                        forwarded.remove(0);
                    }
                }
            }
            3 | 4 => {
                // Inbound to a live mapping (or to a random port of an external address).
                let maps = nat.mappings();
                let p = if !maps.is_empty() && inp.u8() < 200 {
                    let m = &maps[inp.below(maps.len())];
                    let fam: Vec<IpAddr> = outside
                        .iter()
                        .copied()
                        .filter(|a| a.is_ipv6() == m.external.addr.is_ipv6())
                        .collect();
                    let src = if inp.bool() {
                        m.remote
                    } else {
                        Endpoint::new(fam[inp.below(fam.len())], port(&mut inp))
                    };
                    let kind = match m.proto {
                        wire::Proto::Tcp => Kind::Tcp(inp.u8() & 0x3f),
                        wire::Proto::Icmp => Kind::EchoReply,
                        _ => Kind::Udp,
                    };
                    let payload = inp.bytes(32);
                    build(src, m.external, kind, None, false, payload)
                } else {
                    let ext = nat.config().external.clone();
                    structured(&mut inp, &outside, &ext)
                };
                if p.is_empty() {
                    continue;
                }
                let mut pkt = PacketBuf::from_slice(&p);
                let v = nat.handle_packet(now, Direction::Inbound, &mut pkt);
                check_nat_verdict(&v, &pkt, true);
            }
            5 => {
                let dir = if inp.bool() {
                    Direction::Outbound
                } else {
                    Direction::Inbound
                };
                let raw = inp.bytes(256);
                let valid = wire::checksums_valid(raw);
                let mut pkt = PacketBuf::from_slice(raw);
                let v = nat.handle_packet(now, dir, &mut pkt);
                check_nat_verdict(&v, &pkt, valid);
            }
            6 => {
                // An ICMP error about a translated packet, from its destination.
                if forwarded.is_empty() {
                    continue;
                }
                let orig = &forwarded[inp.below(forwarded.len())];
                let Ok(oi) = wire::parse(orig) else { continue };
                let from = if inp.bool() {
                    oi.dst
                } else {
                    outside[inp.below(outside.len())]
                };
                let Some(mut err) = reply::icmp_error(orig, from, icmp_error_kind(inp.u8())) else {
                    continue;
                };
                let valid = wire::checksums_valid(err.as_slice());
                let v = nat.handle_packet(now, Direction::Inbound, &mut err);
                check_nat_verdict(&v, &err, valid);
            }
            7 => {
                // A batch, checked against one-by-one handling on a clone.
                let dir = if inp.bool() {
                    Direction::Outbound
                } else {
                    Direction::Inbound
                };
                let n = 1 + inp.below(40);
                let ext = nat.config().external.clone();
                let mut pkts: Vec<PacketBuf> = (0..n)
                    .map(|_| {
                        let p = match dir {
                            Direction::Outbound => structured(&mut inp, &inside, &hairpin_targets),
                            Direction::Inbound => structured(&mut inp, &outside, &ext),
                        };
                        PacketBuf::from_slice(&p)
                    })
                    .collect();
                let mut single = nat.clone();
                let mut one_by_one = Vec::new();
                for p in &pkts {
                    let mut p = p.clone();
                    let v = single.handle_packet(now, dir, &mut p);
                    one_by_one.push(verdict_key(&v, &p));
                }
                let mut verdicts = Vec::new();
                nat.handle_batch(now, dir, &mut pkts, &mut verdicts);
                assert_eq!(verdicts.len(), n);
                for ((v, p), expect) in verdicts.iter().zip(&pkts).zip(&one_by_one) {
                    check_nat_verdict(v, p, !p.is_empty());
                    assert_eq!(&verdict_key(v, p), expect, "batch != one by one");
                }
                assert_eq!(nat.stats(), single.stats(), "batch stats");
                assert_eq!(nat.mappings(), single.mappings(), "batch mappings");
                let (mut a, mut b) = (Vec::new(), Vec::new());
                while let Some(e) = nat.poll_event() {
                    a.push(e);
                }
                while let Some(e) = single.poll_event() {
                    b.push(e);
                }
                assert_eq!(a, b, "batch events");
            }
            8 => nat.handle_timeout(now),
            _ => match inp.u8() % 8 {
                0 => nat.rebind(now),
                1 => nat.reboot(now),
                _ => {
                    if let Some(t) = nat.poll_timeout() {
                        assert!(t >= t0);
                        now = now.max(t);
                        nat.handle_timeout(now);
                    }
                }
            },
        }
        assert!(
            nat.mapping_count() <= max,
            "{} mappings > max_bindings {max}",
            nat.mapping_count()
        );
        while nat.poll_event().is_some() {}
    }
    now += longest + FRAGMENT_TIMEOUT + Duration::from_secs(1);
    nat.handle_timeout(now);
    assert_eq!(nat.mapping_count(), 0, "mappings left after every timeout");
    assert!(nat.mappings().is_empty());
}

// ===== firewall_engine =====

fn firewall_config(inp: &mut Input) -> FirewallConfig {
    let class = [
        FirewallClass::Open,
        FirewallClass::UdpRepliesOnly,
        FirewallClass::TcpOutboundOnly,
        FirewallClass::HttpsOnly,
        FirewallClass::HttpProxyOnly,
    ][inp.below(5)];
    let mut c = FirewallConfig::new(class);
    for _ in 0..inp.below(4) {
        let action = if inp.bool() {
            Action::Allow
        } else {
            Action::Deny
        };
        let proto = [
            RuleProto::Udp,
            RuleProto::Tcp,
            RuleProto::Icmp,
            RuleProto::Any,
        ][inp.below(4)];
        let dir = if inp.bool() {
            Direction::Outbound
        } else {
            Direction::Inbound
        };
        let mut r = Rule::new(action, proto, dir);
        if inp.bool() {
            let lo = port(inp);
            r = r.ports(lo, lo.saturating_add(u16::from(inp.u8())));
        }
        if inp.bool() {
            let (addr, len) = if inp.bool() {
                (v4(0, [203, 0, 113]), 24 + inp.u8() % 9)
            } else {
                (v6(0x2001, 0), 32 + inp.u8() % 97)
            };
            if let Ok(p) = Prefix::new(addr, len) {
                r = r.to(p);
            }
        }
        c.rules.push(r);
    }
    c.proxies.push(Endpoint::new(v4(8, [203, 0, 113]), 3080));
    let secs = |inp: &mut Input| Duration::from_secs(1 + u64::from(inp.u8()));
    c.timeouts = FirewallTimeouts {
        udp: secs(inp),
        tcp_established: secs(inp),
        tcp_transitory: secs(inp),
        icmp: secs(inp),
    };
    c.max_flows = 1 + inp.below(64);
    c
}

/// The firewall driven like the NAT (packets both ways, ICMP errors about forwarded
/// packets, raw bytes, time, timeouts).
///
/// Invariants: nothing panics; never a hairpin; every packet is counted exactly once in
/// the stats; `flow_count() <= max_flows`; no flow outlives every timeout.
pub fn firewall_engine(data: &[u8]) {
    let mut inp = Input::new(data);
    let config = firewall_config(&mut inp);
    let max = config.max_flows;
    let t = config.timeouts;
    let longest = t
        .udp
        .max(t.tcp_established)
        .max(t.tcp_transitory)
        .max(t.icmp);
    let mut fw = Firewall::new(config);
    let inside = [
        v4(2, [10, 0, 0]),
        v4(3, [10, 0, 0]),
        v6(0xfd00, 2),
        v6(0xfd00, 3),
    ];
    let outside = [
        v4(5, [203, 0, 113]),
        v4(8, [203, 0, 113]),
        v6(0x2001, 5),
        v6(0x2001, 6),
    ];
    let mut now = epoch();
    let mut handled = 0u64;
    let mut forwarded: Vec<(Direction, Vec<u8>)> = Vec::new();
    for _ in 0..MAX_OPS {
        if inp.is_empty() {
            break;
        }
        let (dir, p) = match inp.u8() % 8 {
            0 => {
                now += Duration::from_millis(u64::from(inp.u16()) * 10);
                continue;
            }
            1 => {
                fw.handle_timeout(now);
                continue;
            }
            2 | 3 => (Direction::Outbound, structured(&mut inp, &inside, &outside)),
            4 | 5 => (Direction::Inbound, structured(&mut inp, &outside, &inside)),
            6 => {
                let dir = if inp.bool() {
                    Direction::Outbound
                } else {
                    Direction::Inbound
                };
                (dir, inp.bytes(256).to_vec())
            }
            _ => {
                // A reply to, or an ICMP error about, a forwarded packet.
                if forwarded.is_empty() {
                    continue;
                }
                let (d, orig) = forwarded[inp.below(forwarded.len())].clone();
                let Ok(oi) = wire::parse(&orig) else { continue };
                let p = if inp.bool() {
                    reply::icmp_error(&orig, oi.dst, icmp_error_kind(inp.u8()))
                        .map(|p| p.as_slice().to_vec())
                        .unwrap_or_default()
                } else {
                    match (oi.src_endpoint(), oi.dst_endpoint()) {
                        (Some(s), Some(d)) => structured_to(&mut inp, d, s),
                        _ => Vec::new(),
                    }
                };
                (d.reverse(), p)
            }
        };
        let pkt = PacketBuf::from_slice(&p);
        let v = fw.handle_packet(now, dir, &pkt);
        handled += 1;
        match v {
            Verdict::Forward => {
                forwarded.push((dir, p));
                if forwarded.len() > 8 {
                    forwarded.remove(0);
                }
            }
            Verdict::Hairpin => panic!("a firewall never hairpins"),
            Verdict::Drop(_) | Verdict::Reply(..) => {}
        }
        let s = fw.stats();
        assert_eq!(
            s.forwarded_outbound
                + s.forwarded_inbound
                + s.denied_outbound
                + s.denied_inbound
                + s.dropped(),
            handled,
            "every packet is counted exactly once: {s:?}"
        );
        assert!(fw.flow_count() <= max, "{} flows > {max}", fw.flow_count());
        while fw.poll_event().is_some() {}
    }
    now += longest + emulator::firewall::FRAGMENT_TIMEOUT + Duration::from_secs(1);
    fw.handle_timeout(now);
    assert_eq!(fw.flow_count(), 0, "flows left after every timeout");
}

// ===== link =====

fn prob(inp: &mut Input) -> f64 {
    f64::from(inp.u8()) / 255.0
}

fn link_config(inp: &mut Input) -> LinkConfig {
    let loss = match inp.u8() % 3 {
        0 => Loss::None,
        1 => Loss::Bernoulli(prob(inp)),
        _ => Loss::GilbertElliott {
            p: prob(inp),
            r: prob(inp),
            h: prob(inp),
            k: prob(inp),
        },
    };
    LinkConfig {
        delay: Duration::from_millis(u64::from(inp.u16() % 2000)),
        jitter: Duration::from_millis(u64::from(inp.u16() % 2000)),
        loss,
        duplicate: prob(inp) / 2.0,
        reorder: prob(inp) / 2.0,
        rate: match inp.u8() {
            0..=127 => None,
            128 => Some(0),
            _ => Some(u64::from(inp.u32())),
        },
        queue: inp.below(64),
        mtu: inp.bool().then(|| 40 + inp.u16() % 1500),
    }
}

/// A link with impairments decoded from the input, offered packets (IPv4 with and
/// without DF, IPv6, raw bytes; sizes around the MTU), time steps and config changes.
///
/// Invariants: nothing panics; no delivered packet is larger than the largest MTU
/// configured; `TooBig` hands back the packet it was given; after draining, every packet
/// is accounted for: `delivered + dropped = offered + duplicated + fragments − fragmented`.
pub fn link(data: &[u8]) {
    let mut inp = Input::new(data);
    let mut config = link_config(&mut inp);
    let mut mtu_cap = config.mtu;
    let mut link = Link::new(config.clone(), SimRng::new(u64::from(inp.u16())));
    let mut now = epoch();
    let mut delivered = 0u64;
    let mut drain = |link: &mut Link, now: Instant, mtu_cap: Option<u16>| {
        while let Some(p) = link.poll_transmit(now) {
            delivered += 1;
            if let Some(m) = mtu_cap {
                assert!(p.len() <= m as usize, "{} bytes > MTU {m}", p.len());
            }
        }
    };
    for _ in 0..MAX_OPS {
        if inp.is_empty() {
            break;
        }
        match inp.u8() % 6 {
            0 => {
                now += Duration::from_millis(u64::from(inp.u16()));
                drain(&mut link, now, mtu_cap);
            }
            1 => {
                if let Some(t) = link.poll_timeout() {
                    now = now.max(t);
                }
                drain(&mut link, now, mtu_cap);
            }
            2 => {
                config = link_config(&mut inp);
                mtu_cap = match (mtu_cap, config.mtu) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    _ => None,
                };
                link.set_config(now, config.clone());
            }
            3 => {
                let raw = inp.bytes(3000).to_vec();
                offer(&mut link, now, raw);
            }
            _ => {
                let (s, d) = if inp.bool() {
                    (v6(0xfd00, 2), v6(0x2001, 5))
                } else {
                    (v4(2, [10, 0, 0]), v4(5, [203, 0, 113]))
                };
                let len = usize::from(inp.u16() % 3000);
                let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
                let f = inp.u8();
                let frag = (f & 0xc0 == 0xc0).then(|| (u16::from(f & 3), f & 4 != 0, 9));
                let p = build(
                    Endpoint::new(s, 5000),
                    Endpoint::new(d, 3478),
                    Kind::Udp,
                    frag,
                    f & 8 != 0,
                    &payload,
                );
                offer(&mut link, now, p);
            }
        }
    }
    while let Some(t) = link.poll_timeout() {
        now = now.max(t);
        drain(&mut link, now, mtu_cap);
    }
    assert_eq!(link.in_flight(), 0);
    let s = *link.stats();
    assert_eq!(s.delivered, delivered);
    assert_eq!(
        s.delivered + s.dropped() + s.fragmented,
        s.offered + s.duplicated + s.fragments,
        "link accounting: {s:?}"
    );
}

fn offer(link: &mut Link, now: Instant, p: Vec<u8>) {
    let len = p.len();
    match link.handle_packet(now, PacketBuf::from_slice(&p)) {
        Admit::TooBig { mtu, packet } => {
            assert!(len > mtu as usize);
            assert_eq!(packet.as_slice(), &p[..]);
        }
        Admit::Dropped(r) => assert!(matches!(
            r,
            DropReason::LinkLoss | DropReason::QueueFull | DropReason::Mtu
        )),
        Admit::Queued => {}
    }
}

// ===== sip_alg =====

/// SIP text the `sip_alg` target mixes its bytes into, so that the fuzzer starts from
/// messages the ALG rewrites (addresses of the phone 10.0.1.2:5060 and the NAT
/// 203.0.113.11).
const SIP_TEMPLATES: [&str; 4] = [
    "INVITE sip:bob@203.0.113.5 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.1.2:5060;branch=z9hG4bK1;rport\r\nContact: <sip:alice@10.0.1.2:5060>\r\nm: sip:a@10.0.1.2\r\nContent-Type: application/sdp\r\nContent-Length: ",
    "SIP/2.0 200 OK\r\nv: SIP/2.0/UDP 203.0.113.11:5060;received=203.0.113.11;rport=5060\r\nContact: <sip:bob@203.0.113.11:5060>\r\nl: ",
    "REGISTER sip:203.0.113.5 SIP/2.0\r\nVia: SIP/2.0/TCP 10.0.1.2:5060;branch=z9hG4bK2\r\nContact: <sip:alice@10.0.1.2:5060;transport=tcp>\r\nContent-Length: ",
    "v=0\r\no=- 1 1 IN IP4 10.0.1.2\r\ns=-\r\nc=IN IP4 10.0.1.2\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\nm=video 4002 RTP/AVP 31\r\nc=IN IP4 10.0.1.2/127\r\n",
];

/// The SIP ALG on SIP-shaped UDP and TCP packets both ways through a NAT with
/// `sip_alg: rewrite`, with arbitrary text, segment boundaries and sequence numbers.
///
/// Invariants: nothing panics; every forwarded packet parses, has an IP total length equal
/// to its bytes and valid checksums (the inputs are built with valid ones); the counters
/// add up (`fields >= packets_rewritten`, every opened media port counted once per
/// mapping event); the mapping table stays within `max_bindings`.
pub fn sip_alg(data: &[u8]) {
    let mut inp = Input::new(data);
    let preset = [
        emulator::nat::Preset::FullCone,
        emulator::nat::Preset::Restricted,
        emulator::nat::Preset::PortRestricted,
        emulator::nat::Preset::Symmetric,
    ][inp.below(4)];
    let ext = v4(11, [203, 0, 113]);
    let config = NatConfig::preset(preset, vec![ext])
        .sip_alg(SipAlgMode::Rewrite)
        .max_bindings(1 + inp.below(32));
    let max = config.max_bindings;
    let mut nat = Nat::new(config, SimRng::new(u64::from(inp.u16()))).expect("a valid config");
    let phone = Endpoint::new(v4(2, [10, 0, 1]), if inp.bool() { 5060 } else { 40000 });
    let server = Endpoint::new(v4(5, [203, 0, 113]), 5060);
    let mut public = Endpoint::new(ext, 5060);
    let t0 = epoch();
    let (mut seq_out, mut seq_in) = (inp.u32(), inp.u32());
    for step in 0..32u64 {
        if inp.is_empty() {
            break;
        }
        let outbound = inp.bool();
        let tcp = inp.bool();
        let mut text = Vec::new();
        let template = inp.u8();
        if template & 4 != 0 {
            text.extend_from_slice(SIP_TEMPLATES[usize::from(template & 3)].as_bytes());
        }
        text.extend_from_slice(inp.bytes(1400));
        if template & 8 != 0 {
            text.extend_from_slice(SIP_TEMPLATES[3].as_bytes());
        }
        let (src, dst, dir) = if outbound {
            (phone, server, Direction::Outbound)
        } else {
            (server, public, Direction::Inbound)
        };
        let kind = if tcp {
            Kind::Tcp(inp.u8() | 0x10)
        } else {
            Kind::Udp
        };
        let mut p = build(src, dst, kind, None, false, &text);
        if tcp {
            let (s, a) = if outbound {
                (seq_out, seq_in)
            } else {
                (seq_in, seq_out)
            };
            p[24..28].copy_from_slice(&s.to_be_bytes());
            p[28..32].copy_from_slice(&a.to_be_bytes());
            fix_checksums(&mut p);
            if inp.bool() {
                // Advance (a retransmission otherwise).
                let n = text.len() as u32;
                if outbound {
                    seq_out = seq_out.wrapping_add(n);
                } else {
                    seq_in = seq_in.wrapping_add(n);
                }
            }
        }
        assert!(wire::checksums_valid(&p));
        let mut pkt = PacketBuf::from_slice(&p);
        let v = nat.handle_packet(t0 + Duration::from_millis(step * 10), dir, &mut pkt);
        if matches!(v, Verdict::Forward) {
            let info = wire::parse(pkt.as_slice()).expect("a forwarded packet parses");
            assert_eq!(info.total_len, pkt.len(), "IP total length after the ALG");
            assert!(
                wire::checksums_valid(pkt.as_slice()),
                "the ALG broke a checksum: {:02x?}",
                pkt.as_slice()
            );
            if outbound && let Some(e) = info.src_endpoint() {
                public = e;
            }
        }
        assert!(nat.mapping_count() <= max);
    }
    let s = nat.stats().alg.clone();
    assert!(s.fields >= s.packets_rewritten, "{s:?}");
    let opened: usize = std::iter::from_fn(|| nat.poll_event())
        .map(|e| match e {
            emulator::nat::NatEvent::SipAlg(a) => a.media.len(),
            _ => 0,
        })
        .sum();
    assert_eq!(opened as u64, s.media_mappings, "{s:?}");
}
