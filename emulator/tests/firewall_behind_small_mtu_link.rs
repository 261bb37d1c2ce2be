//! A large UDP datagram (no DF) crosses a small-MTU link, is fragmented there, and the
//! fragments cross a `udp-replies-only` firewall in both directions.

use emulator::firewall::{Firewall, FirewallClass, FirewallConfig};
use emulator::link::{Admit, Link, LinkConfig};
use emulator::rng::SimRng;
use emulator::wire::{checksum, parse};
use emulator::{Direction, DropReason, PacketBuf, Verdict};
use etherparse::PacketBuilder;
use std::time::{Duration, Instant};

#[allow(clippy::disallowed_methods)] // the test's epoch; the cores never read the clock
fn t0() -> Instant {
    Instant::now()
}

fn big_udp(src: [u8; 4], sp: u16, dst: [u8; 4], dp: u16) -> PacketBuf {
    let mut v = Vec::new();
    PacketBuilder::ipv4(src, dst, 64)
        .udp(sp, dp)
        .write(&mut v, &[0x5a; 3000])
        .expect("build");
    v[4..6].copy_from_slice(&sp.to_be_bytes()); // a distinct identification per datagram
    v[6] &= !0x40; // clear DF
    v[10..12].fill(0);
    let c = checksum::checksum(&v[..20]);
    v[10..12].copy_from_slice(&c.to_be_bytes());
    PacketBuf::from_slice(&v)
}

fn through(link: &mut Link, now: Instant, p: PacketBuf) -> Vec<PacketBuf> {
    assert_eq!(link.handle_packet(now, p), Admit::Queued);
    let mut out = Vec::new();
    while let Some(t) = link.poll_timeout() {
        while let Some(p) = link.poll_transmit(t) {
            out.push(p);
        }
    }
    out
}

#[test]
fn fragments_cross_the_firewall_both_ways() {
    let now = t0();
    let cfg = LinkConfig {
        mtu: Some(576),
        delay: Duration::from_millis(5),
        ..LinkConfig::default()
    };
    let mut up = Link::new(cfg.clone(), SimRng::new(1));
    let mut down = Link::new(cfg, SimRng::new(2));
    let mut fw = Firewall::new(FirewallConfig::new(FirewallClass::UdpRepliesOnly));
    let inside = [10, 0, 0, 2];
    let server = [203, 0, 113, 5];

    let out = through(&mut up, now, big_udp(inside, 5000, server, 3478));
    assert!(out.len() >= 6);
    for f in &out {
        assert!(parse(f.as_slice()).expect("parse").fragment.is_some());
        assert!(matches!(
            fw.handle_packet(now, Direction::Outbound, f),
            Verdict::Forward
        ));
    }
    let back = through(&mut down, now, big_udp(server, 3478, inside, 5000));
    for f in &back {
        assert!(matches!(
            fw.handle_packet(now, Direction::Inbound, f),
            Verdict::Forward
        ));
    }
    // An unsolicited fragmented datagram: the first fragment is refused, and so are the rest.
    let stranger = through(&mut down, now, big_udp([203, 0, 113, 9], 1, inside, 5000));
    for f in &stranger {
        assert!(matches!(
            fw.handle_packet(now, Direction::Inbound, f),
            Verdict::Drop(DropReason::Firewall)
        ));
    }
    // Followers that overtake their first fragment are dropped (documented limitation).
    let mut late = through(&mut up, now, big_udp(inside, 5001, server, 3478));
    late.rotate_left(1);
    assert!(matches!(
        fw.handle_packet(now, Direction::Outbound, &late[0]),
        Verdict::Drop(DropReason::Fragment)
    ));
}
