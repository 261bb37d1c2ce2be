//! RFC 6062 TCP allocations through the `turn` service on the virtual fabric: a client
//! behind a symmetric NAT allocates a TCP relayed address over a TCP control connection,
//! connects to a peer (Connect), binds a data connection (ConnectionBind) and exchanges
//! raw bytes; a peer connecting to the relayed address is announced (ConnectionAttempt)
//! and relayed the same way; FINs are passed on (half-close); unpermitted peers are
//! refused; an unbound connection is closed after 30 s.

mod common;

use common::World;
use emulator::fabric::sim::{Sim, SocketId};
use harness::agents::net::{Agent, Net, TcpPhase};
use harness::agents::turn_tcp_client::{TcpRelayCheck, TcpRelayCheckConfig};
use relay::stun::{Attribute, Class, Message, Method, TransactionId};
use relay::turn::attrs::{self, kind, method};
use relay::turn::long_term_key;
use relay::turn::server::tcp_relay::{self, ConnectionId};
use relay::turn::stream::Framer;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const SCENARIO: &str = r#"
version: 1
name: turn tcp relay
fabric: virtual
networks: { internet: 203.0.113.0/24, home: 10.0.1.0/24 }
nats:
  nat: { inside: home, outside: { network: internet, addresses: [203.0.113.11] }, type: symmetric }
hosts:
  alice: { network: home }
  server: { network: internet, address: 203.0.113.5 }
  peer: { network: internet, address: 203.0.113.7 }
  stranger: { network: internet, address: 203.0.113.8 }
services:
  server:
    turn: { port: 3478, realm: pinhole, users: { alice: secret }, relay_ports: 50000-50099, tls_port: 5349 }
"#;

/// Serves and nothing else, for a while.
struct Idle;

impl Agent<Sim> for Idle {
    fn poll(&mut self, _: &mut Sim) {}
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
    fn is_done(&self) -> bool {
        false
    }
}

fn settle(w: &mut World, d: Duration) {
    w.drive(&mut Idle, d);
}

fn server() -> SocketAddr {
    "203.0.113.5:3478".parse().unwrap()
}

/// A STUN speaker on one TCP connection, with alice's credentials.
struct Stun {
    socket: SocketId,
    framer: Framer,
    nonce: Vec<u8>,
    n: u8,
}

impl Stun {
    fn open(w: &mut World, host: usize, nonce: Vec<u8>) -> Stun {
        let (socket, _) = w.sim.tcp_connect(host, 0, server()).unwrap();
        settle(w, Duration::from_millis(200));
        assert_eq!(Net::tcp_state(&mut w.sim, socket), TcpPhase::Established);
        Stun {
            socket,
            framer: Framer::new(),
            nonce,
            n: 0,
        }
    }

    fn key() -> [u8; 16] {
        long_term_key("alice", "pinhole", "secret")
    }

    fn tid(&mut self) -> TransactionId {
        self.n += 1;
        TransactionId::new([self.n; 12])
    }

    /// Every whole STUN message that arrived.
    fn recv(&mut self, w: &mut World) -> Vec<Message> {
        let bytes = w.sim.tcp_recv(self.socket);
        self.framer.push(&bytes);
        let mut out = Vec::new();
        while let Some(Ok(f)) = self.framer.next_frame() {
            out.push(Message::parse(f).unwrap());
        }
        out
    }

    /// An authenticated request; its response.
    fn call(&mut self, w: &mut World, m: Method, attributes: Vec<Attribute>) -> Message {
        let tid = self.tid();
        let mut msg = Message::new(Class::Request, m, tid);
        for a in attributes {
            // XOR-PEER-ADDRESS is encoded under this transaction's id by the caller's
            // closure below; everything else as given.
            msg.attributes.push(a);
        }
        msg.attributes.push(attrs::username("alice"));
        msg.attributes.push(attrs::realm("pinhole"));
        msg.attributes.push(attrs::nonce(&self.nonce));
        msg.attributes.push(attrs::integrity_placeholder());
        w.sim
            .tcp_send(self.socket, &msg.emit_with_integrity(&Self::key()))
            .unwrap();
        settle(w, Duration::from_millis(300));
        let got = self.recv(w);
        got.into_iter()
            .find(|r| r.transaction_id == tid)
            .expect("a response")
    }

    fn call_peer(&mut self, w: &mut World, m: Method, peer: SocketAddr) -> Message {
        let tid = TransactionId::new([self.n + 1; 12]);
        let a = attrs::xor_address(kind::XOR_PEER_ADDRESS, peer, &tid);
        self.call(w, m, vec![a])
    }
}

fn code(m: &Message) -> Option<u16> {
    match m.get(kind::ERROR_CODE) {
        Some(Attribute::ErrorCode(e)) => Some(e.code),
        _ => None,
    }
}

/// Reads what arrives on `s` for a while.
fn read_for(w: &mut World, s: SocketId, d: Duration) -> Vec<u8> {
    let mut got = Vec::new();
    let end = w.sim.now() + d;
    while w.sim.now() < end {
        settle(w, Duration::from_millis(50));
        got.extend(w.sim.tcp_recv(s));
    }
    got
}

#[test]
fn tcp_allocation_connect_accept_bind_and_close() {
    let mut w = World::new(SCENARIO, 3, 3480);
    let alice = w.sim.topology().host_id("alice").unwrap();
    let peer = w.sim.topology().host_id("peer").unwrap();
    let stranger = w.sim.topology().host_id("stranger").unwrap();

    // A nonce from a 401 on the control connection.
    let mut ctl = Stun::open(&mut w, alice, Vec::new());
    let probe = Message::new(
        Class::Request,
        method::ALLOCATE,
        TransactionId::new([99; 12]),
    );
    w.sim.tcp_send(ctl.socket, &probe.emit()).unwrap();
    settle(&mut w, Duration::from_millis(300));
    let r = ctl.recv(&mut w);
    ctl.nonce = attrs::raw_value(&r[0], kind::NONCE).unwrap().to_vec();

    // Allocate TCP.
    let r = ctl.call(
        &mut w,
        method::ALLOCATE,
        vec![attrs::requested_transport(tcp_relay::TRANSPORT_TCP)],
    );
    assert_eq!(r.class, Class::Success, "{r:?}");
    let relayed = attrs::decode_xor_address(
        attrs::raw_value(&r, kind::XOR_RELAYED_ADDRESS).unwrap(),
        &r.transaction_id,
    )
    .unwrap();
    assert_eq!(relayed.ip().to_string(), "203.0.113.5");

    // Connect to the peer's TCP port: no permission yet → 403; then it works.
    let echo_at: SocketAddr = "203.0.113.7:7000".parse().unwrap();
    let listening = w.sim.tcp_listen(peer, 7000).unwrap();
    let r = ctl.call_peer(&mut w, tcp_relay::method::CONNECT, echo_at);
    assert_eq!(code(&r), Some(403), "{r:?}");
    let r = ctl.call_peer(&mut w, method::CREATE_PERMISSION, echo_at);
    assert_eq!(r.class, Class::Success);
    let r = ctl.call_peer(&mut w, tcp_relay::method::CONNECT, echo_at);
    assert_eq!(r.class, Class::Success, "{r:?}");
    let id = tcp_relay::connection_id(&r).unwrap();
    // The peer sees a connection from the relayed address.
    assert_eq!(w.sim.tcp_remote(listening), Some(relayed));
    // The peer talks first; the bytes wait for the bind.
    w.sim.tcp_send(listening, b"welcome").unwrap();
    settle(&mut w, Duration::from_millis(200));

    // ConnectionBind on a new connection, then raw bytes both ways.
    let mut data = Stun::open(&mut w, alice, ctl.nonce.clone());
    let r = data.call(
        &mut w,
        tcp_relay::method::CONNECTION_BIND,
        vec![attrs::raw(
            tcp_relay::CONNECTION_ID,
            id.0.to_be_bytes().to_vec(),
        )],
    );
    assert_eq!(r.class, Class::Success, "{r:?}");
    let rest = data.framer.take_rest();
    let mut got = rest;
    got.extend(read_for(&mut w, data.socket, Duration::from_millis(300)));
    assert_eq!(got, b"welcome");
    w.sim
        .tcp_send(data.socket, b"\x80raw bytes, no framing")
        .unwrap();
    assert_eq!(
        read_for(&mut w, listening, Duration::from_millis(300)),
        b"\x80raw bytes, no framing"
    );
    // A second bind of the same id: 400.
    let mut again = Stun::open(&mut w, alice, ctl.nonce.clone());
    let r = again.call(
        &mut w,
        tcp_relay::method::CONNECTION_BIND,
        vec![attrs::raw(
            tcp_relay::CONNECTION_ID,
            id.0.to_be_bytes().to_vec(),
        )],
    );
    assert_eq!(code(&r), Some(400));

    // Half-close: alice's FIN reaches the peer, the peer can still answer.
    w.sim.tcp_shutdown(data.socket);
    settle(&mut w, Duration::from_millis(300));
    assert!(Net::tcp_recv_closed(&mut w.sim, listening), "FIN passed on");
    w.sim.tcp_send(listening, b"last words").unwrap();
    assert_eq!(
        read_for(&mut w, data.socket, Duration::from_millis(300)),
        b"last words"
    );
    w.sim.tcp_shutdown(listening);
    settle(&mut w, Duration::from_secs(3));
    assert!(Net::tcp_recv_closed(&mut w.sim, data.socket));

    // An incoming connection from a permitted peer: ConnectionAttempt, bind, relay.
    let (inbound, _) = w.sim.tcp_connect(peer, 0, relayed).unwrap();
    settle(&mut w, Duration::from_millis(300));
    let ind = ctl.recv(&mut w);
    let attempt = ind
        .iter()
        .find(|m| m.method == tcp_relay::method::CONNECTION_ATTEMPT)
        .expect("a ConnectionAttempt");
    let from = attrs::peer_addresses(attempt).unwrap()[0];
    assert_eq!(from.ip().to_string(), "203.0.113.7");
    let id2: ConnectionId = tcp_relay::connection_id(attempt).unwrap();
    let mut data2 = Stun::open(&mut w, alice, ctl.nonce.clone());
    let r = data2.call(
        &mut w,
        tcp_relay::method::CONNECTION_BIND,
        vec![attrs::raw(
            tcp_relay::CONNECTION_ID,
            id2.0.to_be_bytes().to_vec(),
        )],
    );
    assert_eq!(r.class, Class::Success);
    w.sim.tcp_send(inbound, b"hello from the peer").unwrap();
    let got = read_for(&mut w, data2.socket, Duration::from_millis(300));
    assert_eq!(
        [data2.framer.take_rest(), got].concat(),
        b"hello from the peer"
    );
    // Closing alice's data connection (a reset) closes the peer's.
    w.sim.close(data2.socket);
    settle(&mut w, Duration::from_secs(3));
    assert_eq!(Net::tcp_state(&mut w.sim, inbound), TcpPhase::Closed);

    // A stranger without a permission is refused: no ConnectionAttempt, and the
    // virtual stack (whose close drops the socket silently) resets its next segment.
    let (refused, _) = w.sim.tcp_connect(stranger, 0, relayed).unwrap();
    settle(&mut w, Duration::from_secs(1));
    w.sim.tcp_send(refused, b"anyone there?").unwrap();
    settle(&mut w, Duration::from_secs(1));
    assert_eq!(Net::tcp_state(&mut w.sim, refused), TcpPhase::Closed);
    assert!(ctl.recv(&mut w).is_empty(), "no ConnectionAttempt");
    // A permitted peer that never gets bound is closed after 30 s.
    let (unbound, _) = w.sim.tcp_connect(peer, 0, relayed).unwrap();
    settle(&mut w, Duration::from_secs(5));
    assert_eq!(ctl.recv(&mut w).len(), 1, "a ConnectionAttempt");
    w.sim.tcp_send(unbound, b"waiting").unwrap();
    settle(&mut w, Duration::from_secs(5));
    assert_eq!(Net::tcp_state(&mut w.sim, unbound), TcpPhase::Established);
    settle(&mut w, Duration::from_secs(25));
    w.sim.tcp_send(unbound, b"still waiting").unwrap();
    settle(&mut w, Duration::from_secs(1));
    assert_eq!(Net::tcp_state(&mut w.sim, unbound), TcpPhase::Closed);
}

/// pinhole's own RFC 6062 client (as `pinhole turn-client --tcp-relay` runs it): two TCP
/// allocations behind the NAT, A connects to B's relayed address, both bind, 20 messages
/// echoed by B come back to A intact; over TCP and over TLS.
#[test]
fn pinhole_client_relays_client_to_client_over_tcp_and_tls() {
    let mut w = World::new(SCENARIO, 5, 3480);
    let alice = w.sim.topology().host_id("alice").unwrap();
    for (port, tls) in [(3478, false), (5349, true)] {
        let config = TcpRelayCheckConfig {
            server: SocketAddr::new("203.0.113.5".parse().unwrap(), port),
            username: "alice".into(),
            password: "secret".into(),
            tls,
            count: 20,
            size: 100,
            timeout: Duration::from_secs(10),
            seed: 1,
        };
        let mut c = TcpRelayCheck::start(&mut w.sim, alice, config).unwrap();
        w.drive(&mut c, Duration::from_secs(20));
        let o = c.outcome();
        assert!(o.passed(), "tls={tls}: {o:?}");
        assert_eq!((o.sent, o.received), (20, 20));
        let [Some(ra), Some(rb)] = o.relayed else {
            panic!("{o:?}")
        };
        assert_ne!(ra, rb);
        assert!(o.ids[0].is_some() && o.ids[1].is_some());
    }
}
