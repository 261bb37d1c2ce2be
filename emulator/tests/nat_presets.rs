//! The four classic NAT types through the public API, classified the way an RFC 5780
//! probe would: does the mapping change with the destination, and which sources get in.

use emulator::nat::{Nat, NatConfig, Preset};
use emulator::rng::SimRng;
use emulator::wire::{Endpoint, checksums_valid, parse};
use emulator::{Direction, PacketBuf, Verdict};
use etherparse::PacketBuilder;
use std::net::IpAddr;
use std::time::{Duration, Instant};

fn udp(src: Endpoint, dst: Endpoint) -> PacketBuf {
    let (IpAddr::V4(s), IpAddr::V4(d)) = (src.addr, dst.addr) else {
        panic!("IPv4 only")
    };
    let mut v = Vec::new();
    PacketBuilder::ipv4(s.octets(), d.octets(), 64)
        .udp(src.port, dst.port)
        .write(&mut v, b"BINDING")
        .unwrap();
    PacketBuf::from_slice(&v)
}

fn ep(s: &str) -> Endpoint {
    let (a, p) = s.rsplit_once(':').unwrap();
    Endpoint::new(a.parse().unwrap(), p.parse().unwrap())
}

/// What a prober behind the NAT learns.
#[derive(Debug, PartialEq)]
struct Class {
    same_mapping_other_addr: bool,
    same_mapping_other_port: bool,
    in_from_other_addr: bool,
    in_from_other_port: bool,
}

fn probe(preset: Preset) -> Class {
    #[allow(clippy::disallowed_methods)] // a test is a driver
    let t0 = Instant::now();
    let cfg = NatConfig::preset(preset, vec!["203.0.113.11".parse().unwrap()]);
    let mut nat = Nat::new(cfg, SimRng::new(42)).unwrap();
    let me = ep("10.0.1.2:40000");
    let server = ep("198.51.100.5:3478");
    let alt_port = ep("198.51.100.5:3479");
    let alt_addr = ep("198.51.100.6:3478");
    let send_out = |nat: &mut Nat, dst: Endpoint, at: u64| {
        let mut p = udp(me, dst);
        let v = nat.handle_packet(t0 + Duration::from_millis(at), Direction::Outbound, &mut p);
        assert!(matches!(v, Verdict::Forward));
        assert!(checksums_valid(p.as_slice()));
        parse(p.as_slice()).unwrap().src_endpoint().unwrap()
    };
    let m1 = send_out(&mut nat, server, 0);
    let m2 = send_out(&mut nat, alt_port, 1);
    let m3 = send_out(&mut nat, alt_addr, 2);
    // Fresh NAT for the filtering tests: only `server` was contacted.
    let cfg = NatConfig::preset(preset, vec!["203.0.113.11".parse().unwrap()]);
    let mut nat2 = Nat::new(cfg, SimRng::new(42)).unwrap();
    let m = send_out(&mut nat2, server, 0);
    let mut inbound = |from: Endpoint| {
        let mut p = udp(from, m);
        let v = nat2.handle_packet(t0 + Duration::from_millis(5), Direction::Inbound, &mut p);
        matches!(v, Verdict::Forward) && parse(p.as_slice()).unwrap().dst_endpoint() == Some(me)
    };
    assert!(inbound(server), "the contacted server always gets in");
    Class {
        same_mapping_other_port: m1 == m2,
        same_mapping_other_addr: m1 == m3,
        in_from_other_port: inbound(alt_port),
        in_from_other_addr: inbound(alt_addr),
    }
}

#[test]
fn full_cone() {
    assert_eq!(
        probe(Preset::FullCone),
        Class {
            same_mapping_other_addr: true,
            same_mapping_other_port: true,
            in_from_other_addr: true,
            in_from_other_port: true
        }
    );
}

#[test]
fn restricted() {
    assert_eq!(
        probe(Preset::Restricted),
        Class {
            same_mapping_other_addr: true,
            same_mapping_other_port: true,
            in_from_other_addr: false,
            in_from_other_port: true
        }
    );
}

#[test]
fn port_restricted() {
    assert_eq!(
        probe(Preset::PortRestricted),
        Class {
            same_mapping_other_addr: true,
            same_mapping_other_port: true,
            in_from_other_addr: false,
            in_from_other_port: false
        }
    );
}

#[test]
fn symmetric() {
    assert_eq!(
        probe(Preset::Symmetric),
        Class {
            same_mapping_other_addr: false,
            same_mapping_other_port: false,
            in_from_other_addr: false,
            in_from_other_port: false
        }
    );
}
