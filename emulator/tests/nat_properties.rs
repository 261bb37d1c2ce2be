//! Property tests of `emulator::nat` against an independent model of RFC 4787 mapping,
//! filtering, refresh and expiry rules, with arbitrary configurations and traffic.

use emulator::nat::{
    FilteringBehavior, MappingBehavior, Nat, NatConfig, NatEvent, Pooling, PortAllocation, Preset,
    Refresh, Timeouts, Unsolicited,
};
use emulator::rng::SimRng;
use emulator::wire::{Endpoint, IpVersion, L4, Proto, checksums_valid, parse, reply};
use emulator::{Direction, DropReason, PacketBuf, Verdict};
use etherparse::PacketBuilder;
use proptest::prelude::*;
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

const HOST_PORTS: [u16; 4] = [1000, 1001, 2000, 2001];
const REMOTE_PORTS: [u16; 3] = [3478, 3479, 5060];

fn host(i: u8, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1 + (i % 3) as u16))
    } else {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1 + i % 3))
    }
}

fn remote(i: u8, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::new(
            0x2001,
            0xdb8,
            1,
            0,
            0,
            0,
            0,
            1 + (i % 3) as u16,
        ))
    } else {
        IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1 + i % 3))
    }
}

fn pool_addr(i: usize, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x11 + i as u16))
    } else {
        IpAddr::V4(Ipv4Addr::new(203, 0, 113, 11 + i as u8))
    }
}

/// proto: 0 UDP, 1 TCP (ACK only, so it stays transitory), 2 ICMP echo.
fn packet(proto: u8, src: Endpoint, dst: Endpoint, inbound: bool) -> PacketBuf {
    let b = match (src.addr, dst.addr) {
        (IpAddr::V4(s), IpAddr::V4(d)) => PacketBuilder::ipv4(s.octets(), d.octets(), 64),
        (IpAddr::V6(s), IpAddr::V6(d)) => PacketBuilder::ipv6(s.octets(), d.octets(), 64),
        _ => unreachable!("one family per run"),
    };
    let v6 = src.addr.is_ipv6();
    let mut v = Vec::new();
    match proto {
        0 => b.udp(src.port, dst.port).write(&mut v, b"data").unwrap(),
        1 => b
            .tcp(src.port, dst.port, 1, 1000)
            .ack(5)
            .write(&mut v, b"data")
            .unwrap(),
        _ => {
            // ICMP: the identifier is the internal "port" (outbound) / external id (inbound).
            let id = if inbound { dst.port } else { src.port };
            match (v6, inbound) {
                (false, true) => b.icmpv4_echo_reply(id, 1).write(&mut v, b"data").unwrap(),
                (false, false) => b.icmpv4_echo_request(id, 1).write(&mut v, b"data").unwrap(),
                (true, true) => b.icmpv6_echo_reply(id, 1).write(&mut v, b"data").unwrap(),
                (true, false) => b.icmpv6_echo_request(id, 1).write(&mut v, b"data").unwrap(),
            }
        }
    }
    PacketBuf::from_slice(&v)
}

fn proto_of(p: u8) -> Proto {
    match p {
        0 => Proto::Udp,
        1 => Proto::Tcp,
        _ => Proto::Icmp,
    }
}

#[derive(Clone, Debug)]
enum Op {
    Out {
        proto: u8,
        host: u8,
        port: u8,
        remote: u8,
        rport: u8,
    },
    In {
        proto: u8,
        remote: u8,
        rport: u8,
        target: u8,
        raw_port: u16,
    },
    Hairpin {
        proto: u8,
        host: u8,
        port: u8,
        target: u8,
    },
    Advance {
        ms: u16,
    },
    ToExpiry {
        pick: u8,
        before: bool,
    },
    Timeout,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..3u8, 0..3u8, 0..4u8, 0..3u8, 0..3u8).prop_map(|(proto, host, port, remote, rport)| Op::Out { proto, host, port, remote, rport }),
        4 => (0..3u8, 0..3u8, 0..3u8, any::<u8>(), 1024..65535u16).prop_map(|(proto, remote, rport, target, raw_port)| Op::In { proto, remote, rport, target, raw_port }),
        1 => (0..2u8, 0..3u8, 0..4u8, any::<u8>()).prop_map(|(proto, host, port, target)| Op::Hairpin { proto, host, port, target }),
        2 => (0..3000u16).prop_map(|ms| Op::Advance { ms }),
        1 => (any::<u8>(), any::<bool>()).prop_map(|(pick, before)| Op::ToExpiry { pick, before }),
        1 => Just(Op::Timeout),
    ]
}

fn config() -> impl Strategy<Value = NatConfig> {
    (
        (
            0..3usize,
            0..3usize,
            0..3usize,
            any::<bool>(),
            any::<bool>(),
        ),
        (
            1..=3usize,
            any::<bool>(),
            any::<bool>(),
            0..3usize,
            any::<bool>(),
        ),
        (1..=5u64, 1..=5u64, 1..=5u64, 0..3u8),
    )
        .prop_map(
            |(
                (m, f, a, parity, paired),
                (pool, both, hairpin, unsol, small_range),
                (tu, tt, ti, fam),
            )| {
                let v6 = fam == 0;
                let mapping = [
                    MappingBehavior::EndpointIndependent,
                    MappingBehavior::AddressDependent,
                    MappingBehavior::AddressAndPortDependent,
                ][m];
                let filtering = [
                    FilteringBehavior::EndpointIndependent,
                    FilteringBehavior::AddressDependent,
                    FilteringBehavior::AddressAndPortDependent,
                ][f];
                let alloc = [
                    PortAllocation::Preserve,
                    PortAllocation::Sequential,
                    PortAllocation::Random,
                ][a];
                let (lo, hi) = if small_range {
                    (20000, 20999)
                } else {
                    (1024, 65535)
                };
                NatConfig::preset(
                    Preset::FullCone,
                    (0..pool).map(|i| pool_addr(i, v6)).collect(),
                )
                .mapping(mapping)
                .filtering(filtering)
                .port_allocation(alloc)
                .port_parity(parity)
                .port_range(lo, hi)
                .pooling(if paired {
                    Pooling::Paired
                } else {
                    Pooling::Arbitrary
                })
                .refresh(if both {
                    Refresh::Both
                } else {
                    Refresh::Outbound
                })
                .hairpinning(hairpin)
                .unsolicited([Unsolicited::Drop, Unsolicited::Icmp, Unsolicited::Rst][unsol])
                .timeouts(Timeouts {
                    udp: Duration::from_secs(tu),
                    tcp_established: Duration::from_secs(7440),
                    tcp_transitory: Duration::from_secs(tt),
                    icmp: Duration::from_secs(ti),
                })
            },
        )
}

/// The model's idea of one mapping.
#[derive(Clone, Debug)]
struct Mm {
    proto: u8,
    int: Endpoint,
    /// The remote that created it (the key's remote part under ADM/APDM).
    first_remote: Endpoint,
    ext: Endpoint,
    /// Alive while now < expires (ns since start).
    expires: u64,
    perms: BTreeSet<(IpAddr, u16)>,
}

struct Model {
    cfg: NatConfig,
    live: Vec<Mm>,
    /// Every external endpoint ever handed out (targets for inbound traffic, so that
    /// packets also hit mappings that have just expired).
    history: Vec<(u8, Endpoint)>,
}

impl Model {
    fn timeout(&self, proto: u8) -> u64 {
        let t = &self.cfg.timeouts;
        match proto {
            0 => t.udp,
            1 => t.tcp_transitory,
            _ => t.icmp,
        }
        .as_nanos() as u64
    }

    fn expire(&mut self, now: u64) {
        self.live.retain(|m| now < m.expires);
    }

    /// RFC 4787 §4.1: does an outbound packet to `rem` reuse `m`?
    fn same_mapping(&self, m: &Mm, proto: u8, int: Endpoint, rem: Endpoint) -> bool {
        m.proto == proto
            && m.int == int
            && match self.cfg.mapping {
                MappingBehavior::EndpointIndependent => true,
                MappingBehavior::AddressDependent => m.first_remote.addr == rem.addr,
                _ => m.first_remote == rem,
            }
    }

    /// RFC 4787 §5: may `from` send to `m`?
    fn permits(&self, m: &Mm, from: Endpoint) -> bool {
        match self.cfg.filtering {
            FilteringBehavior::EndpointIndependent => true,
            FilteringBehavior::AddressDependent => m.perms.iter().any(|(a, _)| *a == from.addr),
            _ => m.perms.contains(&(from.addr, from.port)),
        }
    }

    /// An outbound packet at `now`, as translated by the NAT to source `got`; checks
    /// reuse, no overloading, range, parity and pairing. Returns the mapping's index.
    fn outbound(
        &mut self,
        now: u64,
        proto: u8,
        int: Endpoint,
        rem: Endpoint,
        got: Endpoint,
    ) -> usize {
        self.expire(now);
        let rem_key = if proto == 2 {
            Endpoint::new(rem.addr, 0)
        } else {
            rem
        };
        let i = match self
            .live
            .iter()
            .position(|m| self.same_mapping(m, proto, int, rem_key))
        {
            Some(i) => {
                assert_eq!(got, self.live[i].ext, "mapping must be reused");
                i
            }
            None => {
                assert!(
                    !self.live.iter().any(|m| m.proto == proto && m.ext == got),
                    "new mapping took a live external endpoint {got}"
                );
                let (lo, hi) = self.cfg.port_range;
                assert!(self.cfg.external.contains(&got.addr));
                assert!(
                    (lo..=hi).contains(&got.port),
                    "port {} out of range",
                    got.port
                );
                if self.cfg.port_parity {
                    assert_eq!(got.port % 2, int.port % 2, "port parity");
                }
                if self.cfg.pooling == Pooling::Paired
                    && let Some(o) = self.live.iter().find(|m| m.int.addr == int.addr)
                {
                    assert_eq!(o.ext.addr, got.addr, "paired pooling");
                }
                self.live.push(Mm {
                    proto,
                    int,
                    first_remote: rem_key,
                    ext: got,
                    expires: 0,
                    perms: BTreeSet::new(),
                });
                self.history.push((proto, got));
                self.live.len() - 1
            }
        };
        let t = self.timeout(proto);
        let m = &mut self.live[i];
        m.perms.insert((rem_key.addr, rem_key.port));
        m.expires = now + t;
        i
    }
}

struct Run {
    v6: bool,
    nat: Nat,
    model: Model,
    t0: Instant,
    now: u64,
}

impl Run {
    fn at(&self) -> Instant {
        self.t0 + Duration::from_nanos(self.now)
    }

    fn handle(&mut self, dir: Direction, p: &mut PacketBuf) -> Verdict {
        let v = self.nat.handle_packet(self.at(), dir, p);
        match &v {
            Verdict::Forward | Verdict::Hairpin => {
                assert!(checksums_valid(p.as_slice()), "emitted packet checksums")
            }
            Verdict::Reply(_, r) => assert!(checksums_valid(r.as_slice()), "reply checksums"),
            Verdict::Drop(_) => {}
        }
        v
    }

    fn check_no_overloading(&self) {
        let maps = self.nat.mappings();
        let set: BTreeSet<(Proto, Endpoint)> = maps.iter().map(|m| (m.proto, m.external)).collect();
        assert_eq!(
            set.len(),
            maps.len(),
            "two mappings share an external endpoint"
        );
    }

    fn step(&mut self, op: &Op) {
        match *op {
            Op::Out {
                proto,
                host: h,
                port,
                remote: r,
                rport,
            } => {
                let int = Endpoint::new(host(h, self.v6), HOST_PORTS[port as usize]);
                let rem = Endpoint::new(remote(r, self.v6), REMOTE_PORTS[rport as usize]);
                let mut p = packet(proto, int, rem, false);
                let v = self.handle(Direction::Outbound, &mut p);
                assert!(matches!(v, Verdict::Forward), "outbound {v:?}");
                let info = parse(p.as_slice()).unwrap();
                let got = info.src_endpoint().unwrap();
                assert_eq!(info.dst, rem.addr);
                if proto != 2 {
                    assert_eq!(info.dst_endpoint().unwrap().port, rem.port);
                }
                self.model.outbound(self.now, proto, int, rem, got);
            }
            Op::In {
                proto,
                remote: r,
                rport,
                target,
                raw_port,
            } => {
                self.model.expire(self.now);
                let from = Endpoint::new(
                    remote(r, self.v6),
                    if proto == 2 {
                        0
                    } else {
                        REMOTE_PORTS[rport as usize]
                    },
                );
                let known: Vec<Endpoint> = self
                    .model
                    .history
                    .iter()
                    .filter(|(p, _)| *p == proto)
                    .map(|(_, e)| *e)
                    .collect();
                let ext = if target < 200 && !known.is_empty() {
                    known[known.len() - 1 - target as usize % known.len().min(8)]
                } else {
                    Endpoint::new(pool_addr(0, self.v6), raw_port)
                };
                let mut p = packet(proto, from, ext, true);
                let v = self.handle(Direction::Inbound, &mut p);
                let idx = self
                    .model
                    .live
                    .iter()
                    .position(|m| m.proto == proto && m.ext == ext);
                let expect = match idx {
                    None => Err(DropReason::NoMapping),
                    Some(i) if !self.model.permits(&self.model.live[i], from) => {
                        Err(DropReason::Filtered)
                    }
                    Some(i) => Ok(i),
                };
                match (expect, v) {
                    (Ok(i), Verdict::Forward) => {
                        let info = parse(p.as_slice()).unwrap();
                        let m = &self.model.live[i];
                        assert_eq!(info.dst_endpoint().unwrap(), m.int, "delivered to the host");
                        assert_eq!(info.src, from.addr);
                        if self.model.cfg.refresh == Refresh::Both {
                            let t = self.model.timeout(proto);
                            self.model.live[i].expires = self.now + t;
                        }
                    }
                    (Err(r), Verdict::Drop(got)) | (Err(r), Verdict::Reply(got, _)) => {
                        assert_eq!(r, got)
                    }
                    (e, v) => panic!("inbound: model says {e:?}, NAT says {v:?}"),
                }
            }
            Op::Hairpin {
                proto,
                host: h,
                port,
                target,
            } => {
                self.model.expire(self.now);
                let int = Endpoint::new(host(h, self.v6), HOST_PORTS[port as usize]);
                let known: Vec<Endpoint> = self
                    .model
                    .history
                    .iter()
                    .filter(|(p, _)| *p == proto)
                    .map(|(_, e)| *e)
                    .collect();
                let ext = if !known.is_empty() {
                    known[known.len() - 1 - target as usize % known.len().min(8)]
                } else {
                    Endpoint::new(pool_addr(0, self.v6), 4242)
                };
                let mut p = packet(proto, int, ext, false);
                let v = self.handle(Direction::Outbound, &mut p);
                if !self.model.cfg.hairpinning {
                    assert!(
                        matches!(v, Verdict::Drop(DropReason::HairpinDisabled)),
                        "{v:?}"
                    );
                    return;
                }
                // The sender's side is ordinary outbound activity towards `ext`; learn its
                // external endpoint from the NAT's mapping list.
                let sender_ext = self
                    .nat
                    .mappings()
                    .into_iter()
                    .filter(|m| m.proto == proto_of(proto) && m.internal == int)
                    .find(|m| {
                        let fake = Mm {
                            proto,
                            int,
                            first_remote: m.remote,
                            ext: m.external,
                            expires: 0,
                            perms: BTreeSet::new(),
                        };
                        self.model.same_mapping(&fake, proto, int, ext)
                    })
                    .map(|m| m.external)
                    .expect("the sender has a mapping");
                self.model.outbound(self.now, proto, int, ext, sender_ext);
                let idx = self
                    .model
                    .live
                    .iter()
                    .position(|m| m.proto == proto && m.ext == ext);
                let expect = match idx {
                    None => Err(DropReason::NoMapping),
                    Some(i) if !self.model.permits(&self.model.live[i], sender_ext) => {
                        Err(DropReason::Filtered)
                    }
                    Some(i) => Ok(i),
                };
                match (expect, v) {
                    (Ok(i), Verdict::Hairpin) => {
                        let info = parse(p.as_slice()).unwrap();
                        assert_eq!(info.src_endpoint().unwrap(), sender_ext, "external source");
                        assert_eq!(info.dst_endpoint().unwrap(), self.model.live[i].int);
                        if self.model.cfg.refresh == Refresh::Both {
                            let t = self.model.timeout(proto);
                            self.model.live[i].expires = self.now + t;
                        }
                    }
                    (Err(r), Verdict::Drop(got)) => assert_eq!(r, got),
                    (e, v) => panic!("hairpin: model says {e:?}, NAT says {v:?}"),
                }
            }
            Op::Advance { ms } => self.now += ms as u64 * 1_000_000,
            Op::ToExpiry { pick, before } => {
                if self.model.live.is_empty() {
                    return;
                }
                let e = self.model.live[pick as usize % self.model.live.len()].expires;
                let to = if before { e.saturating_sub(1) } else { e };
                self.now = self.now.max(to);
            }
            Op::Timeout => {
                self.nat.handle_timeout(self.at());
                self.model.expire(self.now);
                assert_eq!(
                    self.nat.mapping_count(),
                    self.model.live.len(),
                    "live mappings"
                );
                let nat_ext: BTreeSet<(Proto, Endpoint)> = self
                    .nat
                    .mappings()
                    .iter()
                    .map(|m| (m.proto, m.external))
                    .collect();
                let model_ext: BTreeSet<(Proto, Endpoint)> = self
                    .model
                    .live
                    .iter()
                    .map(|m| (proto_of(m.proto), m.ext))
                    .collect();
                assert_eq!(nat_ext, model_ext);
                // poll_timeout is never later than the earliest expiry.
                if let Some(first) = self.model.live.iter().map(|m| m.expires).min() {
                    let pt = self.nat.poll_timeout().expect("a timer is armed");
                    assert!(pt <= self.t0 + Duration::from_nanos(first));
                }
            }
        }
        self.check_no_overloading();
    }
}

proptest! {
    // 256 cases by default; PROPTEST_CASES=… runs more.

    /// Inbound reaches a host iff the filtering rule allows it; mappings are reused iff the
    /// mapping rule says so; expiry is exact and follows the refresh rule; every emitted
    /// packet has valid checksums; hairpinned packets carry the external source; parity
    /// and no-overloading hold; nothing outlives its timeout.
    #[test]
    fn nat_matches_the_model(cfg in config(), ops in prop::collection::vec(op(), 1..80), seed in any::<u64>()) {
        #[allow(clippy::disallowed_methods)]
        let t0 = Instant::now();
        let nat = Nat::new(cfg.clone(), SimRng::new(seed)).unwrap();
        let mut run = Run { v6: cfg.external[0].is_ipv6(), nat, model: Model { cfg: cfg.clone(), live: Vec::new(), history: Vec::new() }, t0, now: 0 };
        for op in &ops {
            run.step(op);
        }
        // No binding outlives its timeout.
        run.now += cfg.timeouts.max().as_nanos() as u64;
        run.nat.handle_timeout(run.at());
        prop_assert_eq!(run.nat.mapping_count(), 0);
        prop_assert_eq!(run.nat.poll_timeout(), None);
        // Created = expired (+ none removed otherwise), and events tell the same story.
        let s = run.nat.stats().clone();
        prop_assert_eq!(s.created, s.expired);
        let mut created = 0;
        let mut expired = 0;
        while let Some(e) = run.nat.poll_event() {
            match e {
                NatEvent::MappingCreated { .. } => created += 1,
                NatEvent::MappingExpired { .. } => expired += 1,
                _ => {}
            }
        }
        prop_assert_eq!(created, s.created);
        prop_assert_eq!(expired, s.expired);
    }
}

/// Valid packets of many kinds, to mutate.
fn seeds() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut w = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut v = Vec::new();
        f(&mut v);
        out.push(v);
    };
    w(&|v| {
        PacketBuilder::ipv4([10, 0, 0, 1], [198, 51, 100, 1], 64)
            .udp(1000, 3478)
            .write(v, b"x")
            .unwrap()
    });
    w(&|v| {
        PacketBuilder::ipv4([198, 51, 100, 1], [203, 0, 113, 11], 64)
            .udp(3478, 1000)
            .write(v, b"x")
            .unwrap()
    });
    w(&|v| {
        PacketBuilder::ipv4([10, 0, 0, 1], [198, 51, 100, 1], 64)
            .tcp(1000, 80, 1, 100)
            .syn()
            .write(v, b"")
            .unwrap()
    });
    w(&|v| {
        PacketBuilder::ipv4([198, 51, 100, 1], [203, 0, 113, 11], 64)
            .tcp(80, 1000, 1, 100)
            .syn()
            .ack(2)
            .write(v, b"")
            .unwrap()
    });
    w(&|v| {
        PacketBuilder::ipv4([10, 0, 0, 1], [198, 51, 100, 1], 64)
            .icmpv4_echo_request(1000, 1)
            .write(v, b"p")
            .unwrap()
    });
    w(&|v| {
        PacketBuilder::ipv4([198, 51, 100, 1], [203, 0, 113, 11], 64)
            .icmpv4_echo_reply(1000, 1)
            .write(v, b"p")
            .unwrap()
    });
    w(&|v| {
        PacketBuilder::ipv6([0xfd; 16], [0x20; 16], 64)
            .udp(1000, 3478)
            .write(v, b"x")
            .unwrap()
    });
    let mut s = seeds_icmp_errors();
    out.append(&mut s);
    out
}

fn seeds_icmp_errors() -> Vec<Vec<u8>> {
    let mut o = Vec::new();
    PacketBuilder::ipv4([203, 0, 113, 11], [198, 51, 100, 1], 64)
        .udp(1000, 3478)
        .write(&mut o, b"x")
        .unwrap();
    let e = reply::icmp_error(
        &o,
        "198.51.100.1".parse().unwrap(),
        reply::IcmpError::PortUnreachable,
    )
    .unwrap();
    let mut i = Vec::new();
    PacketBuilder::ipv4([198, 51, 100, 1], [10, 0, 0, 1], 64)
        .udp(3478, 1000)
        .write(&mut i, b"x")
        .unwrap();
    let e2 = reply::icmp_error(
        &i,
        "10.0.0.1".parse().unwrap(),
        reply::IcmpError::PortUnreachable,
    )
    .unwrap();
    vec![e.as_slice().to_vec(), e2.as_slice().to_vec()]
}

fn fuzz_nat(seed: u64) -> Nat {
    let cfg = NatConfig::preset(
        Preset::FullCone,
        vec![pool_addr(0, false), pool_addr(0, true)],
    )
    .hairpinning(true)
    .unsolicited(Unsolicited::Rst);
    Nat::new(cfg, SimRng::new(seed)).unwrap()
}

proptest! {
    // 256 cases by default; PROPTEST_CASES=… runs more.

    /// Arbitrary bytes never panic the NAT.
    #[test]
    fn random_bytes_do_not_panic(bytes in prop::collection::vec(any::<u8>(), 0..200), inbound in any::<bool>()) {
        #[allow(clippy::disallowed_methods)]
        let now = Instant::now();
        let mut nat = fuzz_nat(1);
        for s in seeds() {
            nat.handle_packet(now, Direction::Outbound, &mut PacketBuf::from_slice(&s));
        }
        let dir = if inbound { Direction::Inbound } else { Direction::Outbound };
        let mut p = PacketBuf::from_slice(&bytes);
        let _ = nat.handle_packet(now, dir, &mut p);
        // Version nibble forced to 4/6 reaches deeper.
        let mut b = bytes.clone();
        if let Some(f) = b.first_mut() {
            *f = (*f & 0x0f) | if inbound { 0x40 } else { 0x60 };
        }
        let _ = nat.handle_packet(now, dir, &mut PacketBuf::from_slice(&b));
    }

    /// Mutated and truncated valid packets never panic the NAT, and whatever it emits for
    /// a packet that had valid checksums still parses.
    #[test]
    fn mutated_packets_do_not_panic(
        which in any::<prop::sample::Index>(),
        muts in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
        inbound in any::<bool>(),
    ) {
        #[allow(clippy::disallowed_methods)]
        let now = Instant::now();
        let mut nat = fuzz_nat(2);
        let seeds = seeds();
        for s in &seeds {
            nat.handle_packet(now, Direction::Outbound, &mut PacketBuf::from_slice(s));
        }
        let mut b = seeds[which.index(seeds.len())].clone();
        for (at, val) in &muts {
            let i = at.index(b.len());
            b[i] = *val;
        }
        if truncate {
            b.truncate(cut.index(b.len() + 1));
        }
        let valid = checksums_valid(&b);
        let dir = if inbound { Direction::Inbound } else { Direction::Outbound };
        let mut p = PacketBuf::from_slice(&b);
        let v = nat.handle_packet(now, dir, &mut p);
        if valid && matches!(v, Verdict::Forward | Verdict::Hairpin) {
            let info = parse(p.as_slice());
            prop_assert!(info.is_ok());
            if let Ok(info) = info
                && info.version == IpVersion::V4
                && !matches!(info.l4, L4::Other)
            {
                prop_assert!(checksums_valid(p.as_slice()));
            }
        }
        nat.handle_timeout(now + Duration::from_secs(10_000));
        prop_assert_eq!(nat.mapping_count(), 0);
    }
}
