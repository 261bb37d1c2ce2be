//! The virtual fabric end to end: smoltcp hosts, routing through nested NATs and a
//! firewall, link delay in virtual time, TCP through a NAT, determinism.

#![allow(clippy::disallowed_methods)] // a test takes one real Instant as the origin of virtual time
use emulator::fabric::sim::{Sim, TcpState};
use emulator::firewall::{FirewallClass, FirewallConfig};
use emulator::link::LinkConfig;
use emulator::nat::{NatConfig, Preset};
use emulator::topology::{Builder, Topology};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// home (10.0.1.0/24) → router → carrier (100.64.0.0/24) → cgn → internet, plus an office
/// behind a firewall and a server on the internet.
fn builder() -> Builder {
    Topology::builder()
        .network("internet", "203.0.113.0/24")
        .network("carrier", "100.64.0.0/24")
        .network("home", "10.0.1.0/24")
        .network("office", "198.51.100.0/24")
        .host("alice", "home", "10.0.1.2")
        .host("server", "internet", "203.0.113.5")
        .host("carol", "office", "198.51.100.2")
        .nat("router", "home", "carrier", nat("100.64.0.10"))
        .nat("cgn", "carrier", "internet", nat("203.0.113.20"))
        .firewall(
            "corp",
            "office",
            "internet",
            FirewallConfig::new(FirewallClass::UdpRepliesOnly),
        )
}

fn nat(pool: &str) -> NatConfig {
    NatConfig::preset(Preset::PortRestricted, vec![ip(pool)])
}

fn topology() -> Topology {
    builder().build().unwrap()
}

fn settle(sim: &mut Sim, for_: Duration) {
    let end = sim.now() + for_;
    sim.advance(end);
}

#[test]
fn udp_through_nested_nats_shows_the_cgn_address_and_returns() {
    let epoch = Instant::now();
    let mut sim = Sim::new(topology(), 1, epoch).unwrap();
    let (srv, _) = sim.udp_bind(1, None, 3478).unwrap();
    let (cli, cport) = sim.udp_bind(0, None, 5000).unwrap();
    assert_eq!(cport, 5000);
    let server = SocketAddr::new(ip("203.0.113.5"), 3478);
    sim.udp_send(cli, server, None, b"hello").unwrap();
    settle(&mut sim, Duration::from_millis(1));
    let (from, to, data) = sim.udp_recv(srv).expect("server got the datagram");
    assert_eq!(data, b"hello");
    assert_eq!(to, Some(ip("203.0.113.5")));
    // Both NATs preserve the port where free: the CGN's address, port 5000.
    assert_eq!(from, SocketAddr::new(ip("203.0.113.20"), 5000));
    sim.udp_send(srv, from, None, b"back").unwrap();
    settle(&mut sim, Duration::from_millis(1));
    let (from2, _, data) = sim
        .udp_recv(cli)
        .expect("reply came back through both NATs");
    assert_eq!((from2, data.as_slice()), (server, &b"back"[..]));
    assert_eq!(sim.nat(0).mapping_count(), 1);
    assert_eq!(sim.nat(1).mapping_count(), 1);

    // Unsolicited traffic from another port of the server is filtered (port-restricted).
    let (other, _) = sim.udp_bind(1, None, 9999).unwrap();
    sim.udp_send(other, from, None, b"sneaky").unwrap();
    settle(&mut sim, Duration::from_millis(1));
    assert!(sim.udp_recv(cli).is_none());
    assert!(
        sim.stats()
            .drops
            .iter()
            .any(|((at, _), n)| sim.topology().place_name(*at) == "cgn" && *n > 0)
    );
}

#[test]
fn firewall_routes_public_office_and_filters_unsolicited() {
    let mut sim = Sim::new(topology(), 2, Instant::now()).unwrap();
    let (srv, _) = sim.udp_bind(1, None, 7000).unwrap();
    let (carol, _) = sim.udp_bind(2, None, 6000).unwrap();
    let carol_addr = SocketAddr::new(ip("198.51.100.2"), 6000);
    // Unsolicited from the internet: refused by the udp-replies-only firewall.
    sim.udp_send(srv, carol_addr, None, b"hi").unwrap();
    settle(&mut sim, Duration::from_millis(1));
    assert!(sim.udp_recv(carol).is_none());
    // Carol writes first, then the reply to that exact address:port comes in.
    sim.udp_send(
        carol,
        SocketAddr::new(ip("203.0.113.5"), 7000),
        None,
        b"out",
    )
    .unwrap();
    settle(&mut sim, Duration::from_millis(1));
    let (from, _, _) = sim.udp_recv(srv).unwrap();
    assert_eq!(from, carol_addr, "a firewall does not translate");
    sim.udp_send(srv, carol_addr, None, b"reply").unwrap();
    settle(&mut sim, Duration::from_millis(1));
    assert_eq!(sim.udp_recv(carol).unwrap().2, b"reply");
}

#[test]
fn link_delay_is_exact_in_virtual_time() {
    let delay = |ms| LinkConfig {
        delay: Duration::from_millis(ms),
        ..LinkConfig::default()
    };
    let t = builder()
        .link("server", delay(40), delay(25))
        .build()
        .unwrap();
    let epoch = Instant::now();
    let mut sim = Sim::new(t, 3, epoch).unwrap();
    let (srv, _) = sim.udp_bind(1, None, 3478).unwrap();
    let (cli, _) = sim.udp_bind(0, None, 5000).unwrap();
    sim.udp_send(cli, SocketAddr::new(ip("203.0.113.5"), 3478), None, b"x")
        .unwrap();
    sim.advance(epoch + Duration::from_millis(24));
    assert!(
        sim.udp_recv(srv).is_none(),
        "arrived before the 25 ms down delay"
    );
    sim.advance(epoch + Duration::from_millis(25));
    let (from, _, _) = sim.udp_recv(srv).expect("arrives at exactly 25 ms");
    sim.udp_send(srv, from, None, b"y").unwrap();
    sim.advance(epoch + Duration::from_millis(64));
    assert!(sim.udp_recv(cli).is_none());
    sim.advance(epoch + Duration::from_millis(65));
    assert!(sim.udp_recv(cli).is_some(), "answer after 25 + 40 ms");
}

#[test]
fn tcp_connects_through_nested_nats() {
    let mut sim = Sim::new(topology(), 4, Instant::now()).unwrap();
    let listener = sim.tcp_listen(1, 443).unwrap();
    let (conn, _) = sim
        .tcp_connect(0, 0, SocketAddr::new(ip("203.0.113.5"), 443))
        .unwrap();
    settle(&mut sim, Duration::from_millis(10));
    assert_eq!(sim.tcp_state(conn), TcpState::Established);
    assert_eq!(sim.tcp_state(listener), TcpState::Established);
    assert_eq!(sim.tcp_remote(listener).unwrap().ip(), ip("203.0.113.20"));
    let data = vec![7u8; 100_000];
    let mut sent = 0;
    let mut got = Vec::new();
    for _ in 0..1000 {
        if sent < data.len() {
            sent += sim.tcp_send(conn, &data[sent..]).unwrap();
        }
        settle(&mut sim, Duration::from_millis(1));
        got.extend(sim.tcp_recv(listener));
        if got.len() == data.len() {
            break;
        }
    }
    assert_eq!(got, data);
}

#[test]
fn same_seed_same_ports() {
    let run = |seed| {
        let mut sim = Sim::new(topology(), seed, Instant::now()).unwrap();
        let (_, p1) = sim.udp_bind(0, None, 0).unwrap();
        let (_, p2) = sim.udp_bind(0, None, 0).unwrap();
        (p1, p2)
    };
    assert_eq!(run(9), run(9));
    assert_ne!(run(9), run(10));
}
