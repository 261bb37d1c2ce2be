//! The `turn` service on the virtual fabric: a client behind a symmetric NAT relays
//! datagrams to an echo peer through pinhole's TURN server over UDP and TCP, with Send
//! indications and with channels; bad credentials fail with the server's error; a `stun`
//! service on the same port answers RFC 5780 probes from the same listener.

mod common;

use common::World;
use emulator::fabric::sim::Sim;
use harness::agents::net::Agent;
use harness::agents::steps::probe::Probe;
use harness::agents::turn_client::{TurnCheck, TurnCheckConfig, TurnCheckOutcome};
use relay::stun::{Behavior, ProberConfig, Tests};
use relay::turn::Transport;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const SCENARIO: &str = r#"
version: 1
name: turn service
fabric: virtual
networks: { internet: 203.0.113.0/24, home: 10.0.1.0/24 }
nats:
  nat: { inside: home, outside: { network: internet, addresses: [203.0.113.11] }, type: symmetric }
hosts:
  alice: { network: home }
  server: { network: internet, addresses: [203.0.113.5, 203.0.113.6] }
  peer: { network: internet, address: 203.0.113.7 }
services:
  server:
    stun: { port: 3478, alternate: 203.0.113.6 }
    turn: { port: 3478, realm: pinhole, users: { alice: secret }, relay_ports: 50000-50099, quota: 4, tls_port: 5349 }
"#;

fn world() -> World {
    World::new(SCENARIO, 7, 3480)
}

fn drive(w: &mut World, agent: &mut dyn Agent<Sim>) {
    w.drive(agent, Duration::from_secs(40));
}

fn check(w: &mut World, transport: Transport, channel: bool, password: &str) -> TurnCheckOutcome {
    check_on(w, transport, false, channel, password)
}

fn check_on(
    w: &mut World,
    transport: Transport,
    tls: bool,
    channel: bool,
    password: &str,
) -> TurnCheckOutcome {
    let alice = w.sim.topology().host_id("alice").unwrap();
    let config = TurnCheckConfig {
        server: if tls {
            "203.0.113.5:5349"
        } else {
            "203.0.113.5:3478"
        }
        .parse()
        .unwrap(),
        transport,
        username: "alice".into(),
        password: password.into(),
        peer: "203.0.113.7:3480".parse().unwrap(),
        channel,
        count: 20,
        size: 100,
        timeout: Duration::from_secs(10),
        seed: 1,
        proxy: None,
        tls,
    };
    let mut c = TurnCheck::start(&mut w.sim, alice, config).unwrap();
    drive(w, &mut c);
    c.outcome().clone()
}

#[test]
fn relays_over_tls_on_the_tls_port() {
    let mut w = world();
    for channel in [false, true] {
        let o = check_on(&mut w, Transport::Tcp, true, channel, "secret");
        assert!(o.passed(), "channel={channel}: {o:?}");
        assert_eq!(o.mapped.unwrap().ip().to_string(), "203.0.113.11");
    }
    // TLS to the plain TCP port: no TLS answer comes, the check fails.
    let alice = w.sim.topology().host_id("alice").unwrap();
    let config = TurnCheckConfig {
        server: "203.0.113.5:3478".parse().unwrap(),
        transport: Transport::Tcp,
        username: "alice".into(),
        password: "secret".into(),
        peer: "203.0.113.7:3480".parse().unwrap(),
        channel: true,
        count: 2,
        size: 100,
        timeout: Duration::from_secs(3),
        seed: 2,
        proxy: None,
        tls: true,
    };
    let mut c = TurnCheck::start(&mut w.sim, alice, config).unwrap();
    drive(&mut w, &mut c);
    assert!(!c.outcome().passed(), "{:?}", c.outcome());
}

#[test]
fn relays_over_udp_and_tcp_with_and_without_channels() {
    let mut w = world();
    for transport in [Transport::Udp, Transport::Tcp] {
        for channel in [false, true] {
            let o = check(&mut w, transport, channel, "secret");
            assert!(o.passed(), "{transport:?} channel={channel}: {o:?}");
            assert_eq!((o.sent, o.received), (20, 20));
            let relayed = o.relayed.unwrap();
            assert_eq!(relayed.ip().to_string(), "203.0.113.5");
            assert!((50000..50100).contains(&relayed.port()), "{relayed}");
            // The server saw the NAT's address, not alice's.
            assert_eq!(o.mapped.unwrap().ip().to_string(), "203.0.113.11");
        }
    }
    assert_eq!(w.echo.echoed(), 80);
}

#[test]
fn bad_credentials_fail_with_401() {
    let mut w = world();
    let o = check(&mut w, Transport::Udp, true, "wrong");
    assert!(!o.passed());
    assert_eq!(o.relayed, None);
    assert!(o.error.as_deref().unwrap().contains("401"), "{o:?}");
    let o = check(&mut w, Transport::Tcp, false, "wrong");
    assert!(o.error.as_deref().unwrap().contains("401"), "{o:?}");
}

#[test]
fn quota_is_enforced_per_user() {
    let mut w = world();
    let alice = w.sim.topology().host_id("alice").unwrap();
    let mut checks = Vec::new();
    // Five clients at once hold five allocations; the quota is 4.
    for seed in 0..5 {
        let config = TurnCheckConfig {
            server: "203.0.113.5:3478".parse().unwrap(),
            transport: Transport::Udp,
            username: "alice".into(),
            password: "secret".into(),
            peer: "203.0.113.7:3480".parse().unwrap(),
            channel: true,
            count: 1,
            size: 8,
            timeout: Duration::from_secs(5),
            seed,
            proxy: None,
            tls: false,
        };
        checks.push(TurnCheck::start(&mut w.sim, alice, config).unwrap());
    }
    for c in &mut checks {
        drive(&mut w, c);
    }
    let refused: Vec<&TurnCheckOutcome> = checks
        .iter()
        .map(|c| c.outcome())
        .filter(|o| !o.passed())
        .collect();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(refused[0].error.as_deref().unwrap().contains("486"));
}

#[test]
fn a_stun_service_on_the_turn_port_answers_rfc5780_probes() {
    let mut w = world();
    let alice = w.sim.topology().host_id("alice").unwrap();
    let server: SocketAddr = "203.0.113.5:3478".parse().unwrap();
    let mut config = ProberConfig::new(server);
    config.tests = Tests {
        mapping: true,
        filtering: true,
        hairpinning: false,
        lifetime: None,
        port_allocation: false,
    };
    let mut p = Probe::start(&mut w.sim, alice, config, 3).unwrap();
    drive(&mut w, &mut p);
    let r = p.report().expect("probe finished");
    assert_eq!(r.other_address, Some("203.0.113.6:3479".parse().unwrap()));
    assert_eq!(r.mapping, Some(Behavior::AddressAndPortDependent), "{r:?}");
    assert_eq!(
        r.filtering,
        Some(Behavior::AddressAndPortDependent),
        "{r:?}"
    );
    // And the same listener still relays.
    let o = check(&mut w, Transport::Udp, true, "secret");
    assert!(o.passed(), "{o:?}");
}

/// Connects over TCP, writes `bytes` once connected, and is done when the server has
/// closed the connection. Writes one more byte every second after that: the virtual
/// fabric's close removes the socket without sending its RST, so a silent peer learns of
/// the close only from the RST its next segment draws.
struct RawTcp {
    socket: emulator::fabric::sim::SocketId,
    bytes: Vec<u8>,
    sent: bool,
    closed: bool,
    next_probe: Option<Instant>,
}

impl Agent<Sim> for RawTcp {
    fn poll(&mut self, net: &mut Sim) {
        use harness::agents::net::{Net, TcpPhase};
        let phase = Net::tcp_state(net, self.socket);
        let now = Net::now(net);
        if phase == TcpPhase::Established && !self.sent {
            self.sent = Net::tcp_send(net, self.socket, &self.bytes).unwrap() == self.bytes.len();
            self.next_probe = Some(now + Duration::from_secs(1));
        } else if self.sent && self.next_probe.is_some_and(|t| now >= t) {
            let _ = Net::tcp_send(net, self.socket, b"\r");
            self.next_probe = Some(now + Duration::from_secs(1));
        }
        let _ = Net::tcp_recv(net, self.socket);
        self.closed = self.sent && matches!(phase, TcpPhase::Closing | TcpPhase::Closed);
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.next_probe.filter(|_| !self.closed)
    }
    fn is_done(&self) -> bool {
        self.closed
    }
}

#[test]
fn a_stream_that_is_not_turn_is_closed() {
    let mut w = world();
    let alice = w.sim.topology().host_id("alice").unwrap();
    for (port, bytes, at_once) in [
        // Neither STUN nor ChannelData (RFC 7983): closed at once.
        (3478, b"\xffgarbage".to_vec(), true),
        // Not TLS: the handshake fails at once.
        (5349, b"not a TLS ClientHello at all".to_vec(), true),
        // Starts like ChannelData (0x47 = 'G') of 21 kB that never comes: closed after
        // the setup timeout, for want of an allocation.
        (3478, b"GET / HTTP/1.1\r\n\r\n".to_vec(), false),
    ] {
        let start = w.sim.now();
        let server = format!("203.0.113.5:{port}").parse().unwrap();
        let (socket, _) =
            harness::agents::net::Net::tcp_connect(&mut w.sim, alice, 0, server).unwrap();
        let mut raw = RawTcp {
            socket,
            bytes,
            sent: false,
            closed: false,
            next_probe: None,
        };
        drive(&mut w, &mut raw);
        assert!(
            raw.closed,
            "port {port}: the server kept the connection open"
        );
        let took = w.sim.now() - start;
        assert_eq!(
            took < Duration::from_secs(5),
            at_once,
            "port {port}: {took:?}"
        );
    }
    // The listener still serves.
    let o = check(&mut w, Transport::Tcp, true, "secret");
    assert!(o.passed(), "{o:?}");
}
