//! Server tests with a small TURN client, in virtual time.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::attrs::{self, kind, method};
use super::*;
use crate::stun::integrity::check_integrity;
use crate::stun::{Attribute, Class, Message, Method};

const REALM: &str = "example.org";

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// Every driver command queued so far.
fn commands(s: &mut TurnServer) -> Vec<Command> {
    std::iter::from_fn(|| s.poll_command()).collect()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The server reads no time; one Instant per test, everything else offsets from it.
#[allow(clippy::disallowed_methods)]
fn epoch() -> Instant {
    Instant::now()
}

fn listen() -> SocketAddr {
    sa("203.0.113.1:3478")
}

fn config() -> TurnConfig {
    let mut c = TurnConfig::new(listen(), ip("203.0.113.2"), REALM)
        .user("alice", "secret")
        .user("bob", "hunter2");
    c.relay_ports = (50000, 50099);
    c.quota = Some(2);
    c.seed = 7;
    c
}

fn server() -> TurnServer {
    TurnServer::new(config()).unwrap()
}

/// A minimal TURN client: builds requests, authenticates (401/438 → retry with the
/// REALM and NONCE received), checks MESSAGE-INTEGRITY on every authenticated response.
struct Client {
    addr: SocketAddr,
    server: SocketAddr,
    user: String,
    pass: String,
    nonce: Option<Vec<u8>>,
    n: u32,
}

impl Client {
    fn new(addr: &str) -> Self {
        Client {
            addr: sa(addr),
            server: listen(),
            user: "alice".into(),
            pass: "secret".into(),
            nonce: None,
            n: 0,
        }
    }

    fn key(&self) -> [u8; 16] {
        long_term_key(&self.user, REALM, &self.pass)
    }

    fn tid(&mut self) -> [u8; 12] {
        self.n += 1;
        let mut t = [0u8; 12];
        t[..2].copy_from_slice(&self.addr.port().to_be_bytes());
        t[8..].copy_from_slice(&self.n.to_be_bytes());
        t
    }

    /// The request bytes, with credentials once a nonce is known.
    fn build(&mut self, m: Method, attributes: Vec<Attribute>) -> Vec<u8> {
        let mut msg = attrs::request(m, self.tid());
        msg.attributes = attributes;
        match &self.nonce {
            Some(nonce) => {
                msg.attributes.push(attrs::username(&self.user));
                msg.attributes.push(attrs::realm(REALM));
                msg.attributes.push(attrs::nonce(nonce));
                msg.attributes.push(attrs::integrity_placeholder());
                msg.emit_with_integrity(&self.key())
            }
            None => msg.emit(),
        }
    }

    fn send(&self, s: &mut TurnServer, now: Instant, bytes: &[u8]) -> Vec<Transmit> {
        s.handle_input(now, Input::udp(self.server, self.addr, bytes));
        std::iter::from_fn(|| s.poll_transmit()).collect()
    }

    /// One request, one response (no retry).
    fn raw_call(&mut self, s: &mut TurnServer, now: Instant, bytes: &[u8]) -> (Message, Vec<u8>) {
        let out = self.send(s, now, bytes);
        assert_eq!(out.len(), 1, "exactly one response: {out:?}");
        let t = &out[0];
        assert_eq!((t.from, t.to), (self.server, self.addr));
        (Message::parse(&t.data).unwrap(), t.data.clone())
    }

    /// A request, retried once after a 401 or 438 carrying a NONCE.
    fn call(
        &mut self,
        s: &mut TurnServer,
        now: Instant,
        m: Method,
        attributes: Vec<Attribute>,
    ) -> Message {
        for _ in 0..2 {
            let bytes = self.build(m, attributes.clone());
            let (resp, data) = self.raw_call(s, now, &bytes);
            let code = code(&resp);
            if matches!(code, Some(401 | 438))
                && let Some(n) = attrs::raw_value(&resp, kind::NONCE)
                && (self.nonce.is_none() || code == Some(438))
            {
                assert_eq!(attrs::raw_value(&resp, kind::REALM), Some(REALM.as_bytes()));
                assert_eq!(
                    check_integrity(&data, &self.key()),
                    None,
                    "no MI on 401/438"
                );
                self.nonce = Some(n.to_vec());
                continue;
            }
            // Every authenticated response carries a MESSAGE-INTEGRITY that verifies.
            assert_eq!(check_integrity(&data, &self.key()), Some(true), "{resp:?}");
            return resp;
        }
        panic!("no answer after retry")
    }

    fn allocate(&mut self, s: &mut TurnServer, now: Instant) -> SocketAddr {
        let mut a = vec![attrs::requested_transport(17)];
        if s.config().relay_addr.is_ipv6() {
            a.push(attrs::requested_address_family(attrs::FAMILY_IPV6));
        }
        let r = self.call(s, now, method::ALLOCATE, a);
        assert_eq!(r.class, Class::Success, "{r:?}");
        relayed(&r)
    }

    fn permit(&mut self, s: &mut TurnServer, now: Instant, peer: SocketAddr) -> Message {
        self.call_with_peer(s, now, method::CREATE_PERMISSION, peer, vec![])
    }

    fn bind(
        &mut self,
        s: &mut TurnServer,
        now: Instant,
        channel: u16,
        peer: SocketAddr,
    ) -> Message {
        self.call_with_peer(
            s,
            now,
            method::CHANNEL_BIND,
            peer,
            vec![attrs::channel_number(channel)],
        )
    }

    /// Like `call`, with an XOR-PEER-ADDRESS encoded under each attempt's transaction id.
    fn call_with_peer(
        &mut self,
        s: &mut TurnServer,
        now: Instant,
        m: Method,
        peer: SocketAddr,
        mut attributes: Vec<Attribute>,
    ) -> Message {
        for _ in 0..2 {
            let next = self.n + 1;
            let mut t = [0u8; 12];
            t[..2].copy_from_slice(&self.addr.port().to_be_bytes());
            t[8..].copy_from_slice(&next.to_be_bytes());
            let tid = crate::stun::TransactionId::new(t);
            attributes.retain(|a| a.typ() != kind::XOR_PEER_ADDRESS);
            attributes.insert(0, attrs::xor_address(kind::XOR_PEER_ADDRESS, peer, &tid));
            let bytes = self.build(m, attributes.clone());
            let (resp, data) = self.raw_call(s, now, &bytes);
            if matches!(code(&resp), Some(401 | 438)) && self.nonce.is_none() {
                self.nonce = attrs::raw_value(&resp, kind::NONCE).map(<[u8]>::to_vec);
                continue;
            }
            assert_eq!(check_integrity(&data, &self.key()), Some(true), "{resp:?}");
            return resp;
        }
        panic!("no answer after retry")
    }
}

fn code(m: &Message) -> Option<u16> {
    match m.get(kind::ERROR_CODE) {
        Some(Attribute::ErrorCode(e)) => Some(e.code),
        _ => None,
    }
}

fn relayed(m: &Message) -> SocketAddr {
    attrs::decode_xor_address(
        attrs::raw_value(m, kind::XOR_RELAYED_ADDRESS).unwrap(),
        &m.transaction_id,
    )
    .unwrap()
}

fn lifetime_of(m: &Message) -> u32 {
    attrs::decode_u32(attrs::raw_value(m, kind::LIFETIME).unwrap()).unwrap()
}

fn events(s: &mut TurnServer) -> Vec<TurnEvent> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

fn transmits(s: &mut TurnServer) -> Vec<Transmit> {
    std::iter::from_fn(|| s.poll_transmit()).collect()
}

/// Runs every timer due up to `until`, in order.
fn advance(s: &mut TurnServer, until: Instant) {
    while let Some(t) = s.poll_timeout().filter(|t| *t <= until) {
        s.handle_timeout(t);
    }
}

const PEER: &str = "192.0.2.50:5000";

#[test]
fn allocate_challenge_then_success() {
    let mut s = server();
    let t0 = epoch();
    let mut c = Client::new("198.51.100.10:40000");
    // First request without credentials: 401 with REALM and NONCE, no MESSAGE-INTEGRITY.
    let bytes = c.build(method::ALLOCATE, vec![attrs::requested_transport(17)]);
    let (r, data) = c.raw_call(&mut s, t0, &bytes);
    assert_eq!((r.class, code(&r)), (Class::Error, Some(401)));
    assert_eq!(attrs::raw_value(&r, kind::REALM), Some(REALM.as_bytes()));
    assert!(attrs::raw_value(&r, kind::NONCE).is_some());
    assert_eq!(check_integrity(&data, &c.key()), None);
    assert!(matches!(
        events(&mut s)[..],
        [
            TurnEvent::AuthFailed {
                reason: AuthFailure::NoCredentials,
                ..
            },
            TurnEvent::ErrorResponse { code: 401, .. }
        ]
    ));
    // With credentials: success.
    c.nonce = attrs::raw_value(&r, kind::NONCE).map(<[u8]>::to_vec);
    let bytes = c.build(method::ALLOCATE, vec![attrs::requested_transport(17)]);
    let (r, data) = c.raw_call(&mut s, t0, &bytes);
    assert_eq!(r.class, Class::Success, "{r:?}");
    assert_eq!(check_integrity(&data, &c.key()), Some(true));
    assert_eq!(
        check_integrity(&data, &long_term_key("alice", REALM, "wrong")),
        Some(false)
    );
    let rel = relayed(&r);
    assert_eq!(rel.ip(), ip("203.0.113.2"));
    assert!((50000..=50099).contains(&rel.port()));
    assert_eq!(lifetime_of(&r), 600);
    assert_eq!(r.mapped_address(), Some(c.addr));
    assert_eq!(
        r.get(crate::stun::attr::kind::SOFTWARE),
        Some(&Attribute::Software("pinhole".into()))
    );
    assert_eq!(s.relayed_sockets(), vec![rel]);
    let ev = events(&mut s);
    assert!(commands(&mut s).contains(&Command::BindRelay { relayed: rel }));
    assert!(ev.contains(&TurnEvent::AllocationCreated {
        client: c.addr,
        server: listen(),
        relayed: rel,
        user: "alice".into(),
        lifetime: Duration::from_secs(600),
    }));
    // A retransmission of the same Allocate gets the same response (RFC 8656 §7.2).
    let (_, again) = c.raw_call(&mut s, t0, &bytes);
    assert_eq!(again, data);
    // A new Allocate on the same 5-tuple: 437.
    let r = c.call(
        &mut s,
        t0,
        method::ALLOCATE,
        vec![attrs::requested_transport(17)],
    );
    assert_eq!(code(&r), Some(437));
    assert_eq!(s.allocations().len(), 1);
    assert_eq!(s.stats().allocations_created, 1);
}

#[test]
fn seeded_port_choice_is_deterministic() {
    let run = || {
        let mut s = server();
        let t0 = epoch();
        Client::new("198.51.100.10:40000").allocate(&mut s, t0)
    };
    assert_eq!(run(), run());
}

#[test]
fn send_and_data_indications() {
    let mut s = server();
    let t0 = epoch();
    let mut c = Client::new("198.51.100.10:40000");
    let rel = c.allocate(&mut s, t0);
    let peer = sa(PEER);
    // Before any permission: both directions dropped.
    let send = |c: &mut Client, to: SocketAddr, payload: &[u8]| {
        let tid = crate::stun::TransactionId::new(c.tid());
        Message::new(Class::Indication, method::SEND, tid)
            .with(attrs::xor_address(kind::XOR_PEER_ADDRESS, to, &tid))
            .with(attrs::data(payload))
            .emit()
    };
    let ind = send(&mut c, peer, b"early");
    assert!(c.send(&mut s, t0, &ind).is_empty());
    s.handle_input(t0, Input::udp(rel, peer, b"early reply"));
    assert!(transmits(&mut s).is_empty());
    assert_eq!(s.stats().dropped_no_permission, 2);

    let r = c.permit(&mut s, t0, peer);
    assert_eq!(r.class, Class::Success, "{r:?}");
    assert!(events(&mut s).contains(&TurnEvent::PermissionCreated {
        client: c.addr,
        peer: peer.ip()
    }));

    // Client → Send indication → relayed socket → peer.
    let ind = send(&mut c, peer, b"hello peer");
    let out = c.send(&mut s, t0, &ind);
    assert_eq!(
        out,
        vec![Transmit {
            transport: Transport::Udp,
            from: rel,
            to: peer,
            conn: None,
            data: b"hello peer".to_vec()
        }]
    );
    // Any port of a permitted IP may send (permissions are per IP, RFC 8656 §9).
    let other_port = sa("192.0.2.50:6000");
    s.handle_input(t0, Input::udp(rel, other_port, b"hello client"));
    let out = transmits(&mut s);
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].from, out[0].to), (listen(), c.addr));
    let d = Message::parse(&out[0].data).unwrap();
    assert_eq!((d.class, d.method), (Class::Indication, method::DATA));
    let from = attrs::decode_xor_address(
        attrs::raw_value(&d, kind::XOR_PEER_ADDRESS).unwrap(),
        &d.transaction_id,
    );
    assert_eq!(from, Some(other_port));
    assert_eq!(attrs::raw_value(&d, kind::DATA), Some(&b"hello client"[..]));
    // Another IP: still dropped.
    s.handle_input(t0, Input::udp(rel, sa("192.0.2.51:5000"), b"x"));
    assert!(transmits(&mut s).is_empty());
    assert_eq!(s.stats().dropped_no_permission, 3);
    assert_eq!(s.stats().to_peer_packets, 1);
    assert_eq!(s.stats().to_client_packets, 1);
    // Send indication from a 5-tuple without allocation: dropped.
    let mut stranger = Client::new("198.51.100.11:40000");
    let ind = send(&mut stranger, peer, b"x");
    assert!(stranger.send(&mut s, t0, &ind).is_empty());
    assert_eq!(s.stats().dropped_no_allocation, 1);
    // With DONT-FRAGMENT (which this server cannot honour) or another unknown
    // comprehension-required attribute, the indication is discarded.
    for extra in [kind::DONT_FRAGMENT, 0x7777] {
        let tid = crate::stun::TransactionId::new(c.tid());
        let ind = Message::new(Class::Indication, method::SEND, tid)
            .with(attrs::xor_address(kind::XOR_PEER_ADDRESS, peer, &tid))
            .with(attrs::data(b"x"))
            .with(attrs::raw(extra, vec![]))
            .emit();
        assert!(c.send(&mut s, t0, &ind).is_empty());
    }
    assert_eq!(s.stats().to_peer_packets, 1);
}

#[test]
fn ipv6_relay_needs_requested_family() {
    let mut cfg = config();
    cfg.relay_addr = ip("2001:db8::2");
    let mut s = TurnServer::new(cfg).unwrap();
    let t0 = epoch();
    let mut c = Client::new("198.51.100.10:40000");
    // No REQUESTED-ADDRESS-FAMILY means IPv4 (RFC 8656 §7.2): 440 on an IPv6-only relay.
    let r = c.call(
        &mut s,
        t0,
        method::ALLOCATE,
        vec![attrs::requested_transport(17)],
    );
    assert_eq!(code(&r), Some(440));
    let rel = c.allocate(&mut s, t0);
    assert_eq!(rel.ip(), ip("2001:db8::2"));
    // An IPv6 peer through the IPv6 relay, with an IPv4 client.
    let peer = sa("[2001:db8:1::5]:5000");
    assert_eq!(c.permit(&mut s, t0, peer).class, Class::Success);
    s.handle_input(t0, Input::udp(rel, peer, b"v6 data"));
    let out = transmits(&mut s);
    assert_eq!(out.len(), 1);
    let d = Message::parse(&out[0].data).unwrap();
    assert_eq!(attrs::raw_value(&d, kind::DATA), Some(&b"v6 data"[..]));
}

#[test]
fn late_timers_never_relay_stale_state() {
    let mut s = server();
    let t0 = epoch();
    let mut c = Client::new("198.51.100.10:40000");
    let rel = c.allocate(&mut s, t0);
    c.permit(&mut s, t0, sa(PEER));
    events(&mut s);
    // The driver never called handle_timeout: input at 700 s still sees the expiry first.
    s.handle_input(
        t0 + Duration::from_secs(700),
        Input::udp(rel, sa(PEER), b"x"),
    );
    assert!(transmits(&mut s).is_empty());
    let ev = events(&mut s);
    assert!(
        ev.contains(&TurnEvent::AllocationExpired {
            client: c.addr,
            relayed: rel
        }),
        "{ev:?}"
    );
    assert!(s.allocations().is_empty());
}

#[test]
fn legacy_channel_numbers_only_when_configured() {
    let t0 = epoch();
    let peer = sa(PEER);
    // RFC 8656 §12.2: 0x5000–0x7FFF get 400.
    let mut s = server();
    let mut c = Client::new("198.51.100.10:40000");
    c.allocate(&mut s, t0);
    assert_eq!(code(&c.bind(&mut s, t0, 0x669c, peer)), Some(400));
    // RFC 5766 §11 allowed them; an older client's channel works with the option.
    let mut cfg = config();
    cfg.legacy_channels = true;
    let mut s = TurnServer::new(cfg).unwrap();
    let mut c = Client::new("198.51.100.10:40000");
    let rel = c.allocate(&mut s, t0);
    assert_eq!(c.bind(&mut s, t0, 0x669c, peer).class, Class::Success);
    assert_eq!(
        code(&c.bind(&mut s, t0, 0x8000, sa("192.0.2.60:5000"))),
        Some(400)
    );
    let out = c.send(&mut s, t0, &channel::emit(0x669c, b"old").unwrap());
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].from, out[0].to), (rel, peer));
    s.handle_input(t0, Input::udp(rel, peer, b"back"));
    let t = s.poll_transmit().unwrap();
    assert_eq!(channel::parse(&t.data), Some((0x669c, &b"back"[..])));
}

#[test]
fn channels_both_ways_and_rebinding_rules() {
    let mut s = server();
    let t0 = epoch();
    let mut c = Client::new("198.51.100.10:40000");
    let rel = c.allocate(&mut s, t0);
    let peer = sa(PEER);
    let r = c.bind(&mut s, t0, 0x4000, peer);
    assert_eq!(r.class, Class::Success, "{r:?}");
    let ev = events(&mut s);
    assert!(ev.contains(&TurnEvent::ChannelBound {
        client: c.addr,
        channel: 0x4000,
        peer
    }));
    assert!(ev.contains(&TurnEvent::PermissionCreated {
        client: c.addr,
        peer: peer.ip()
    }));
    // Client → ChannelData → peer.
    let cd = channel::emit(0x4000, b"via channel").unwrap();
    let out = c.send(&mut s, t0, &cd);
    assert_eq!(
        out,
        vec![Transmit {
            transport: Transport::Udp,
            from: rel,
            to: peer,
            conn: None,
            data: b"via channel".to_vec()
        }]
    );
    // Peer → ChannelData (no padding over UDP) → client.
    s.handle_input(t0, Input::udp(rel, peer, b"back!"));
    let out = transmits(&mut s);
    assert_eq!(
        out,
        vec![Transmit {
            transport: Transport::Udp,
            from: listen(),
            to: c.addr,
            conn: None,
            data: channel::emit(0x4000, b"back!").unwrap()
        }]
    );
    // Padded ChannelData from the client is accepted too.
    let mut padded = channel::emit(0x4000, b"abc").unwrap();
    padded.push(0);
    assert_eq!(c.send(&mut s, t0, &padded)[0].data, b"abc");
    // An unbound channel: dropped.
    assert!(
        c.send(&mut s, t0, &channel::emit(0x4001, b"x").unwrap())
            .is_empty()
    );
    assert_eq!(s.stats().dropped_no_channel, 1);
    // Rebinding rules (RFC 8656 §12.1): 400 for another peer on the number, or another
    // number for the peer, or a number out of range; refreshing the same binding is fine.
    assert_eq!(
        code(&c.bind(&mut s, t0, 0x4000, sa("192.0.2.60:5000"))),
        Some(400)
    );
    assert_eq!(code(&c.bind(&mut s, t0, 0x4001, peer)), Some(400));
    assert_eq!(
        code(&c.bind(&mut s, t0, 0x3FFF, sa("192.0.2.60:5000"))),
        Some(400)
    );
    assert_eq!(
        code(&c.bind(&mut s, t0, 0x5000, sa("192.0.2.60:5000"))),
        Some(400)
    );
    assert_eq!(c.bind(&mut s, t0, 0x4000, peer).class, Class::Success);
    assert_eq!(
        c.bind(&mut s, t0, 0x4FFF, sa("192.0.2.60:5000")).class,
        Class::Success
    );
    assert_eq!(
        s.allocations()[0].channels,
        vec![(0x4000, peer), (0x4FFF, sa("192.0.2.60:5000"))]
    );
    // Channel lifetime 600 s, permission 300 s, refreshed by re-binding.
    advance(&mut s, t0 + Duration::from_secs(299));
    assert_eq!(
        c.bind(&mut s, t0 + Duration::from_secs(299), 0x4000, peer)
            .class,
        Class::Success
    );
    let r = c.call(
        &mut s,
        t0 + Duration::from_secs(299),
        method::REFRESH,
        vec![attrs::lifetime(3600)],
    );
    assert_eq!(lifetime_of(&r), 3600);
    advance(&mut s, t0 + Duration::from_secs(601));
    let ev = events(&mut s);
    assert!(ev.contains(&TurnEvent::ChannelExpired {
        client: c.addr,
        channel: 0x4FFF,
        peer: sa("192.0.2.60:5000")
    }));
    assert!(!ev.iter().any(|e| matches!(
        e,
        TurnEvent::ChannelExpired {
            channel: 0x4000,
            ..
        }
    )));
    advance(&mut s, t0 + Duration::from_secs(900));
    assert!(events(&mut s).contains(&TurnEvent::ChannelExpired {
        client: c.addr,
        channel: 0x4000,
        peer
    }));
    assert!(s.allocations()[0].channels.is_empty());
    assert!(s.allocations()[0].permissions.is_empty());
}

#[test]
fn refresh_lifetimes_and_delete() {
    let mut s = server();
    let t0 = epoch();
    let mut c = Client::new("198.51.100.10:40000");
    let rel = c.allocate(&mut s, t0);
    let r = c.call(&mut s, t0, method::REFRESH, vec![attrs::lifetime(7200)]);
    assert_eq!(lifetime_of(&r), 3600, "capped at the maximum");
    let r = c.call(&mut s, t0, method::REFRESH, vec![attrs::lifetime(10)]);
    assert_eq!(lifetime_of(&r), 600, "raised to the default");
    let r = c.call(&mut s, t0, method::REFRESH, vec![]);
    assert_eq!(lifetime_of(&r), 600);
    events(&mut s);
    let r = c.call(&mut s, t0, method::REFRESH, vec![attrs::lifetime(0)]);
    assert_eq!((r.class, lifetime_of(&r)), (Class::Success, 0));
    let ev = events(&mut s);
    assert!(ev.contains(&TurnEvent::AllocationDeleted {
        client: c.addr,
        relayed: rel
    }));
    assert!(commands(&mut s).contains(&Command::CloseRelay { relayed: rel }));
    assert!(s.relayed_sockets().is_empty());
    assert_eq!(s.poll_timeout(), None, "no timer left behind");
    // Now nothing to refresh: 437; the relayed address no longer relays.
    assert_eq!(
        code(&c.call(&mut s, t0, method::REFRESH, vec![])),
        Some(437)
    );
    s.handle_input(t0, Input::udp(rel, sa(PEER), b"x"));
    assert!(transmits(&mut s).is_empty());
    assert_eq!(s.stats().allocations_deleted, 1);
}

#[test]
fn allocation_and_permission_expiry() {
    let mut s = server();
    let t0 = epoch();
    let mut c = Client::new("198.51.100.10:40000");
    let rel = c.allocate(&mut s, t0);
    let peer = sa(PEER);
    c.permit(&mut s, t0, peer);
    events(&mut s);
    assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(300)));
    advance(&mut s, t0 + Duration::from_secs(299));
    s.handle_input(
        t0 + Duration::from_secs(299),
        Input::udp(rel, peer, b"still ok"),
    );
    assert_eq!(transmits(&mut s).len(), 1);
    advance(&mut s, t0 + Duration::from_secs(300));
    assert_eq!(
        events(&mut s),
        vec![TurnEvent::PermissionExpired {
            client: c.addr,
            peer: peer.ip()
        }]
    );
    s.handle_input(
        t0 + Duration::from_secs(300),
        Input::udp(rel, peer, b"too late"),
    );
    assert!(transmits(&mut s).is_empty());
    assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(600)));
    advance(&mut s, t0 + Duration::from_secs(600));
    assert_eq!(
        events(&mut s),
        vec![TurnEvent::AllocationExpired {
            client: c.addr,
            relayed: rel
        }]
    );
    assert!(commands(&mut s).contains(&Command::CloseRelay { relayed: rel }));
    assert!(s.allocations().is_empty());
    assert!(s.relayed_sockets().is_empty());
    assert_eq!(s.poll_timeout(), None);
    assert_eq!(s.stats().allocations_expired, 1);
    // The port and the quota are free again.
    c.allocate(&mut s, t0 + Duration::from_secs(601));
}

#[test]
fn stale_nonce_gets_438_then_succeeds() {
    let mut cfg = config();
    cfg.nonce_lifetime = Duration::from_secs(60);
    let mut s = TurnServer::new(cfg).unwrap();
    let t0 = epoch();
    let mut c = Client::new("198.51.100.10:40000");
    c.allocate(&mut s, t0);
    let old = c.nonce.clone();
    let later = t0 + Duration::from_secs(61);
    let bytes = c.build(method::REFRESH, vec![]);
    let (r, _) = c.raw_call(&mut s, later, &bytes);
    assert_eq!(code(&r), Some(438));
    let fresh = attrs::raw_value(&r, kind::NONCE).unwrap().to_vec();
    assert_ne!(Some(fresh), old);
    assert!(events(&mut s).iter().any(|e| matches!(
        e,
        TurnEvent::AuthFailed {
            reason: AuthFailure::StaleNonce,
            ..
        }
    )));
    // `call` retries with the new nonce.
    let r = c.call(&mut s, later, method::REFRESH, vec![]);
    assert_eq!(r.class, Class::Success);
    // A forged nonce is treated like a stale one.
    c.nonce = Some(b"0000000000000000ffffffffffffffff".to_vec());
    let bytes = c.build(method::REFRESH, vec![]);
    assert_eq!(code(&c.raw_call(&mut s, later, &bytes).0), Some(438));
}

#[test]
fn wrong_credentials_get_401() {
    let mut s = server();
    let t0 = epoch();
    let mut c = Client::new("198.51.100.10:40000");
    c.allocate(&mut s, t0);
    let nonce = c.nonce.clone();
    events(&mut s);
    let cases: [(&str, &str, AuthFailure); 2] = [
        ("alice", "wrong", AuthFailure::BadIntegrity),
        ("mallory", "secret", AuthFailure::UnknownUser),
    ];
    for (user, pass, reason) in cases {
        let mut m = Client::new("198.51.100.20:40000");
        m.user = user.into();
        m.pass = pass.into();
        m.nonce = nonce.clone();
        let bytes = m.build(method::ALLOCATE, vec![attrs::requested_transport(17)]);
        let (r, data) = m.raw_call(&mut s, t0, &bytes);
        assert_eq!(code(&r), Some(401), "{user}");
        assert!(attrs::raw_value(&r, kind::NONCE).is_some());
        assert_eq!(check_integrity(&data, &m.key()), None);
        assert!(
            events(&mut s)
                .iter()
                .any(|e| matches!(e, TurnEvent::AuthFailed { reason: r, .. } if *r == reason))
        );
    }
    // Integrity over a tampered message fails too.
    let mut bytes = c.build(method::REFRESH, vec![]);
    let n = bytes.len();
    bytes[n - 1] ^= 1; // inside the MAC
    assert_eq!(code(&c.raw_call(&mut s, t0, &bytes).0), Some(401));
    // MESSAGE-INTEGRITY without USERNAME/REALM/NONCE: 400.
    let mut msg = attrs::request(method::REFRESH, [9; 12]);
    msg.attributes.push(attrs::integrity_placeholder());
    let bytes = msg.emit_with_integrity(&c.key());
    assert_eq!(code(&c.raw_call(&mut s, t0, &bytes).0), Some(400));
    // Another user on alice's 5-tuple: 441.
    let mut b = Client::new("198.51.100.10:40000");
    b.user = "bob".into();
    b.pass = "hunter2".into();
    b.nonce = nonce;
    let bytes = b.build(method::REFRESH, vec![]);
    assert_eq!(code(&b.raw_call(&mut s, t0, &bytes).0), Some(441));
    assert_eq!(s.allocations().len(), 1);
}

#[test]
fn quota_486() {
    let mut s = server();
    let t0 = epoch();
    let mut a = Client::new("198.51.100.10:40000");
    let mut b = Client::new("198.51.100.10:40001");
    let mut c = Client::new("198.51.100.10:40002");
    a.allocate(&mut s, t0);
    b.allocate(&mut s, t0);
    let r = c.call(
        &mut s,
        t0,
        method::ALLOCATE,
        vec![attrs::requested_transport(17)],
    );
    assert_eq!(code(&r), Some(486));
    // Another user has their own quota.
    let mut d = Client::new("198.51.100.10:40003");
    d.user = "bob".into();
    d.pass = "hunter2".into();
    d.allocate(&mut s, t0);
    // Deleting one frees a slot.
    a.call(&mut s, t0, method::REFRESH, vec![attrs::lifetime(0)]);
    c.allocate(&mut s, t0);
    assert_eq!(s.allocations().len(), 3);
}

#[test]
fn mismatch_437_and_allocate_errors() {
    let mut s = server();
    let t0 = epoch();
    let mut c = Client::new("198.51.100.10:40000");
    let peer = sa(PEER);
    assert_eq!(code(&c.permit(&mut s, t0, peer)), Some(437));
    assert_eq!(code(&c.bind(&mut s, t0, 0x4000, peer)), Some(437));
    assert_eq!(
        code(&c.call(&mut s, t0, method::REFRESH, vec![])),
        Some(437)
    );
    let alloc = |c: &mut Client, s: &mut TurnServer, extra: Vec<Attribute>| {
        code(&c.call(s, t0, method::ALLOCATE, extra))
    };
    assert_eq!(
        alloc(&mut c, &mut s, vec![]),
        Some(400),
        "no REQUESTED-TRANSPORT"
    );
    assert_eq!(
        alloc(&mut c, &mut s, vec![attrs::requested_transport(6)]),
        Some(400),
        "TCP (RFC 6062) over UDP"
    );
    assert_eq!(
        alloc(
            &mut c,
            &mut s,
            vec![
                attrs::requested_transport(17),
                attrs::requested_address_family(attrs::FAMILY_IPV6)
            ]
        ),
        Some(440)
    );
    assert_eq!(
        alloc(
            &mut c,
            &mut s,
            vec![
                attrs::requested_transport(17),
                attrs::requested_address_family(9)
            ]
        ),
        Some(440)
    );
    let r = c.call(
        &mut s,
        t0,
        method::ALLOCATE,
        vec![
            attrs::requested_transport(17),
            attrs::raw(kind::DONT_FRAGMENT, vec![]),
        ],
    );
    assert_eq!(code(&r), Some(420), "DF cannot be honoured (RFC 8656 §7.2)");
    assert_eq!(
        r.get(crate::stun::attr::kind::UNKNOWN_ATTRIBUTES),
        Some(&Attribute::UnknownAttributes(vec![kind::DONT_FRAGMENT]))
    );
    assert_eq!(
        alloc(
            &mut c,
            &mut s,
            vec![
                attrs::requested_transport(17),
                attrs::even_port(false),
                attrs::raw(kind::RESERVATION_TOKEN, vec![1; 8])
            ]
        ),
        Some(400)
    );
    assert_eq!(
        alloc(
            &mut c,
            &mut s,
            vec![
                attrs::requested_transport(17),
                attrs::raw(kind::RESERVATION_TOKEN, vec![1; 8])
            ]
        ),
        Some(508),
        "unknown token"
    );
    assert_eq!(
        code(&c.call(&mut s, t0, Method::Unknown(0x0FF), vec![])),
        Some(400),
        "unknown method"
    );
    assert!(s.allocations().is_empty());
}

#[test]
fn even_port_and_reservation() {
    let mut s = server();
    let t0 = epoch();
    let mut a = Client::new("198.51.100.10:40000");
    let r = a.call(
        &mut s,
        t0,
        method::ALLOCATE,
        vec![attrs::requested_transport(17), attrs::even_port(true)],
    );
    let port = relayed(&r).port();
    assert_eq!(port % 2, 0);
    let token = attrs::raw_value(&r, kind::RESERVATION_TOKEN)
        .unwrap()
        .to_vec();
    assert_eq!(token.len(), 8);
    let mut b = Client::new("198.51.100.10:40001");
    let r = b.call(
        &mut s,
        t0,
        method::ALLOCATE,
        vec![
            attrs::requested_transport(17),
            attrs::raw(kind::RESERVATION_TOKEN, token.clone()),
        ],
    );
    assert_eq!(relayed(&r).port(), port + 1);
    // Used once only.
    let mut c = Client::new("198.51.100.10:40002");
    c.user = "bob".into();
    c.pass = "hunter2".into();
    let r = c.call(
        &mut s,
        t0,
        method::ALLOCATE,
        vec![
            attrs::requested_transport(17),
            attrs::raw(kind::RESERVATION_TOKEN, token),
        ],
    );
    assert_eq!(code(&r), Some(508));
    // EVEN-PORT without R: even, no token; a reservation not used expires after 30 s.
    let r = c.call(
        &mut s,
        t0,
        method::ALLOCATE,
        vec![attrs::requested_transport(17), attrs::even_port(false)],
    );
    assert_eq!(relayed(&r).port() % 2, 0);
    assert!(attrs::raw_value(&r, kind::RESERVATION_TOKEN).is_none());
}

#[test]
fn reservation_expires() {
    let mut s = server();
    let t0 = epoch();
    let mut a = Client::new("198.51.100.10:40000");
    let r = a.call(
        &mut s,
        t0,
        method::ALLOCATE,
        vec![attrs::requested_transport(17), attrs::even_port(true)],
    );
    let token = attrs::raw_value(&r, kind::RESERVATION_TOKEN)
        .unwrap()
        .to_vec();
    advance(&mut s, t0 + Duration::from_secs(31));
    let mut b = Client::new("198.51.100.10:40001");
    let r = b.call(
        &mut s,
        t0 + Duration::from_secs(31),
        method::ALLOCATE,
        vec![
            attrs::requested_transport(17),
            attrs::raw(kind::RESERVATION_TOKEN, token),
        ],
    );
    assert_eq!(code(&r), Some(508));
}

/// Every refused peer form gets 403 for CreatePermission and ChannelBind, on an IPv4 and
/// an IPv6 relay; the deny check comes before the address-family check.
#[test]
fn denied_peers_get_403() {
    let table = [
        "127.0.0.1:80",
        "127.1.2.3:80",
        "0.0.0.0:80",
        "0.0.0.1:80",
        "[::]:80",
        "[::1]:80",
        "[::ffff:127.0.0.1]:80",
        "[::127.0.0.1]:80",
        "[::ffff:0.0.0.0]:80",
        "[::0.0.0.0]:80",
        // The server's own addresses: listening and relay, in every form.
        // (the relay address is added per configuration below).
        "203.0.113.1:3478",
        "[::ffff:203.0.113.1]:3478",
        "[::203.0.113.1]:1",
        "[2001:db8::1]:3478",
        // Extra configured prefix.
        "10.9.8.7:1",
        "[::ffff:10.9.8.7]:1",
    ];
    let v4 = {
        let mut c = config();
        c.deny = vec![(ip("10.0.0.0"), 8)];
        c
    };
    let v6 = {
        let mut c = config();
        c.listen = vec![listen(), sa("[2001:db8::1]:3478")];
        c.relay_addr = ip("2001:db8::2");
        c.deny = vec![(ip("10.0.0.0"), 8)];
        c
    };
    let mut v4 = v4;
    v4.listen.push(sa("[2001:db8::1]:3478"));
    for cfg in [v4, v6] {
        let mut s = TurnServer::new(cfg.clone()).unwrap();
        let own_relay: &[&str] = if cfg.relay_addr.is_ipv4() {
            &[
                "203.0.113.2:50000",
                "[::ffff:203.0.113.2]:1",
                "[::203.0.113.2]:1",
            ]
        } else {
            &["[2001:db8::2]:9"]
        };
        let table: Vec<&str> = table.iter().chain(own_relay).copied().collect();
        let t0 = epoch();
        let mut c = Client::new("198.51.100.10:40000");
        c.allocate(&mut s, t0);
        events(&mut s);
        for (i, peer) in table.iter().enumerate() {
            let peer = sa(peer);
            assert_eq!(
                code(&c.permit(&mut s, t0, peer)),
                Some(403),
                "{peer} via {}",
                cfg.relay_addr
            );
            assert_eq!(
                code(&c.bind(&mut s, t0, 0x4000 + i as u16, peer)),
                Some(403),
                "{peer}"
            );
            assert!(events(&mut s).contains(&TurnEvent::PeerDenied {
                client: c.addr,
                peer
            }));
        }
        assert!(s.allocations()[0].permissions.is_empty());
        assert_eq!(s.stats().peer_denied, 2 * table.len() as u64);
        // A CreatePermission listing one good and one denied peer installs nothing.
        let tid = crate::stun::TransactionId::new([0xAB; 12]);
        let good = if cfg.relay_addr.is_ipv4() {
            sa(PEER)
        } else {
            sa("[2001:db8:1::5]:5000")
        };
        let mut m = Message::new(Class::Request, method::CREATE_PERMISSION, tid)
            .with(attrs::xor_address(kind::XOR_PEER_ADDRESS, good, &tid))
            .with(attrs::xor_address(
                kind::XOR_PEER_ADDRESS,
                sa("127.0.0.1:1"),
                &tid,
            ))
            .with(attrs::username("alice"))
            .with(attrs::realm(REALM))
            .with(attrs::nonce(c.nonce.as_ref().unwrap()))
            .with(attrs::integrity_placeholder());
        m.attributes.push(Attribute::Fingerprint(0));
        let (r, data) = c.raw_call(&mut s, t0, &m.emit_with_integrity(&c.key()));
        assert_eq!(code(&r), Some(403));
        assert!(r.has_fingerprint(), "FINGERPRINT echoed");
        assert_eq!(check_integrity(&data, &c.key()), Some(true));
        assert!(s.allocations()[0].permissions.is_empty());
        // The good peer alone is fine; a peer of the other family gets 443.
        assert_eq!(c.permit(&mut s, t0, good).class, Class::Success);
        let other = if cfg.relay_addr.is_ipv4() {
            sa("[2001:db8:1::5]:5000")
        } else {
            sa(PEER)
        };
        assert_eq!(code(&c.permit(&mut s, t0, other)), Some(443));
    }
}

#[test]
fn send_to_denied_peer_is_dropped() {
    let mut s = server();
    let t0 = epoch();
    let mut c = Client::new("198.51.100.10:40000");
    c.allocate(&mut s, t0);
    let tid = crate::stun::TransactionId::new([3; 12]);
    let ind = Message::new(Class::Indication, method::SEND, tid)
        .with(attrs::xor_address(
            kind::XOR_PEER_ADDRESS,
            sa("127.0.0.1:22"),
            &tid,
        ))
        .with(attrs::data(b"x"))
        .emit();
    assert!(c.send(&mut s, t0, &ind).is_empty());
    assert_eq!(s.stats().peer_denied, 1);
}

#[test]
fn binding_requests_are_answered() {
    let mut s = server();
    let t0 = epoch();
    let c = Client::new("198.51.100.10:40000");
    let req = Message::new(
        Class::Request,
        Method::Binding,
        crate::stun::TransactionId::new([5; 12]),
    )
    .emit();
    let out = c.send(&mut s, t0, &req);
    assert_eq!(out.len(), 1);
    let r = Message::parse(&out[0].data).unwrap();
    assert_eq!(r.class, Class::Success);
    assert_eq!(r.mapped_address(), Some(c.addr));
    assert_eq!(s.stats().binding_requests, 1);
}

#[test]
fn unauthenticated_responses_are_rate_limited() {
    let mut s = server();
    let t0 = epoch();
    let mut c = Client::new("198.51.100.10:40000");
    let mut answered = 0;
    for _ in 0..25 {
        let b = c.build(method::ALLOCATE, vec![attrs::requested_transport(17)]);
        answered += c.send(&mut s, t0, &b).len();
    }
    assert_eq!(answered, 10);
    assert_eq!(s.stats().rate_limited, 15);
    // Tokens come back with time; other sources are not affected.
    let b = c.build(method::ALLOCATE, vec![attrs::requested_transport(17)]);
    assert_eq!(c.send(&mut s, t0 + Duration::from_secs(1), &b).len(), 1);
    let mut d = Client::new("198.51.100.11:40000");
    let b = d.build(method::ALLOCATE, vec![attrs::requested_transport(17)]);
    assert_eq!(d.send(&mut s, t0, &b).len(), 1);
}

#[test]
fn config_errors() {
    let mut c = config();
    c.listen.clear();
    assert_eq!(TurnServer::new(c).unwrap_err(), TurnConfigError::NoListen);
    let mut c = config();
    c.relay_ports = (10, 9);
    assert!(matches!(
        TurnServer::new(c),
        Err(TurnConfigError::BadPortRange(10, 9))
    ));
    let mut c = config();
    c.relay_addr = ip("0.0.0.0");
    assert!(matches!(
        TurnServer::new(c),
        Err(TurnConfigError::UnspecifiedRelay(_))
    ));
    let mut c = config();
    c.realm.clear();
    assert_eq!(TurnServer::new(c).unwrap_err(), TurnConfigError::BadRealm);
    let mut c = config();
    c.deny.push((ip("10.0.0.0"), 33));
    assert!(matches!(
        TurnServer::new(c),
        Err(TurnConfigError::BadPrefix(..))
    ));
}

#[test]
fn port_range_exhaustion_gives_508() {
    let mut cfg = config();
    cfg.relay_ports = (50000, 50001);
    cfg.quota = None;
    let mut s = TurnServer::new(cfg).unwrap();
    let t0 = epoch();
    for port in 40000..40002 {
        Client::new(&format!("198.51.100.10:{port}")).allocate(&mut s, t0);
    }
    let mut c = Client::new("198.51.100.10:40009");
    assert_eq!(
        code(&c.call(
            &mut s,
            t0,
            method::ALLOCATE,
            vec![attrs::requested_transport(17)]
        )),
        Some(508)
    );
}

mod prop {
    use super::*;
    use proptest::prelude::*;

    fn stunish() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..200),
            // A STUN header with the cookie and a TURN method, then random attributes.
            (0u16..0x1000, proptest::collection::vec(any::<u8>(), 0..120)).prop_map(|(m, body)| {
                let mut body = body;
                body.truncate(body.len() & !3);
                let t =
                    crate::stun::message::message_type(Class::Request, Method::from_u16(m & 0xF));
                let mut v = t.to_be_bytes().to_vec();
                v.extend_from_slice(&(body.len() as u16).to_be_bytes());
                v.extend_from_slice(&0x2112_A442u32.to_be_bytes());
                v.extend_from_slice(&[1; 12]);
                v.extend_from_slice(&body);
                v
            }),
            // ChannelData-looking bytes.
            proptest::collection::vec(any::<u8>(), 0..40).prop_map(|mut v| {
                v.insert(0, 0x40);
                v
            }),
        ]
    }

    proptest! {
        #[test]
        fn never_panics(inputs in proptest::collection::vec((any::<bool>(), stunish()), 1..8)) {
            let mut s = server();
            let t0 = epoch();
            let mut c = Client::new("198.51.100.10:40000");
            let rel = c.allocate(&mut s, t0);
            c.permit(&mut s, t0, sa(PEER));
            c.bind(&mut s, t0, 0x4000, sa(PEER));
            for (i, (on_relay, bytes)) in inputs.iter().enumerate() {
                let now = t0 + Duration::from_secs(i as u64 * 100);
                let (local, remote) = if *on_relay { (rel, sa(PEER)) } else { (listen(), c.addr) };
                s.handle_input(now, Input::udp(local, remote, bytes));
                s.handle_timeout(now);
                while s.poll_transmit().is_some() {}
                while s.poll_event().is_some() {}
            }
        }
    }
}

// ===== the sans-IO TurnClient against the server =====

/// Moves datagrams between a [`TurnClient`] at `caddr` and the server until both are
/// quiet; `lose` drops that many client datagrams first. Returns what reached peers.
fn pump(
    c: &mut TurnClient,
    caddr: SocketAddr,
    s: &mut TurnServer,
    now: Instant,
    lose: &mut u32,
) -> Vec<Transmit> {
    let mut to_peers = Vec::new();
    for _ in 0..100 {
        let mut moved = false;
        while let Some(t) = c.poll_transmit() {
            moved = true;
            if *lose > 0 {
                *lose -= 1;
                continue;
            }
            s.handle_input(now, Input::udp(t.to, caddr, &t.data));
        }
        while let Some(t) = s.poll_transmit() {
            moved = true;
            if t.to == caddr {
                c.handle_input(now, t.from, &t.data);
            } else {
                to_peers.push(t);
            }
        }
        if !moved {
            break;
        }
    }
    to_peers
}

fn client_events(c: &mut TurnClient) -> Vec<ClientEvent> {
    std::iter::from_fn(|| c.poll_event()).collect()
}

fn turn_client(password: &str) -> TurnClient {
    TurnClient::new(ClientConfig {
        server: listen(),
        username: "alice".into(),
        password: password.into(),
        seed: 11,
        transport: Transport::Udp,
    })
}

/// Moves bytes between a stream [`TurnClient`] and the server over one "connection",
/// framing each side with a [`stream::Framer`] and writing in odd-sized pieces.
fn pump_stream(
    c: &mut TurnClient,
    caddr: SocketAddr,
    s: &mut TurnServer,
    now: Instant,
    to_server: &mut stream::Framer,
    to_client: &mut stream::Framer,
) -> Vec<Transmit> {
    let mut to_peers = Vec::new();
    for _ in 0..100 {
        let mut moved = false;
        while let Some(t) = c.poll_transmit() {
            moved = true;
            for piece in t.data.chunks(7) {
                to_server.push(piece);
                while let Some(f) = to_server.next_frame() {
                    let f = f.unwrap().to_vec();
                    s.handle_input(
                        now,
                        Input::Packet {
                            transport: Transport::Tcp,
                            local: t.to,
                            remote: caddr,
                            data: &f,
                        },
                    );
                }
            }
        }
        while let Some(t) = s.poll_transmit() {
            moved = true;
            if t.to == caddr {
                assert_eq!(t.transport, Transport::Tcp);
                assert_eq!(
                    t.data.len() % 4,
                    0,
                    "stream frames are padded: {:?}",
                    t.data
                );
                to_client.push(&t.data);
                while let Some(f) = to_client.next_frame() {
                    let f = f.unwrap().to_vec();
                    c.handle_input(now, t.from, &f);
                }
            } else {
                to_peers.push(t);
            }
        }
        if !moved {
            break;
        }
    }
    to_peers
}

#[test]
fn turn_over_a_stream_relays_and_dies_with_its_connection() {
    let mut s = server();
    let t0 = epoch();
    let caddr = sa("198.51.100.10:40000");
    let peer = sa(PEER);
    let mut c = TurnClient::new(ClientConfig {
        server: listen(),
        username: "alice".into(),
        password: "secret".into(),
        seed: 5,
        transport: Transport::Tcp,
    });
    let (mut up, mut down) = (stream::Framer::new(), stream::Framer::new());
    c.allocate(t0, None, vec![]);
    pump_stream(&mut c, caddr, &mut s, t0, &mut up, &mut down);
    let Some(ClientEvent::Allocated { relayed, .. }) = c.poll_event() else {
        panic!("no allocation")
    };
    assert_eq!(s.allocations()[0].five_tuple.transport, Transport::Tcp);
    // A UDP client with the same address and port is another 5-tuple.
    s.handle_input(
        t0,
        Input::udp(listen(), caddr, &[0x40, 0x00, 0x00, 0x01, 9]),
    );
    assert_eq!(s.stats().dropped_no_allocation, 1);
    c.channel_bind(t0, 0x4001, peer);
    pump_stream(&mut c, caddr, &mut s, t0, &mut up, &mut down);
    assert!(matches!(
        c.poll_event(),
        Some(ClientEvent::ChannelBound { .. })
    ));
    c.send_to(peer, b"odd");
    let out = pump_stream(&mut c, caddr, &mut s, t0, &mut up, &mut down);
    assert_eq!(out.len(), 1);
    assert_eq!(
        (out[0].from, out[0].to, &out[0].data[..]),
        (relayed, peer, &b"odd"[..])
    );
    assert_eq!(out[0].transport, Transport::Udp);
    s.handle_input(t0, Input::udp(relayed, peer, b"hello"));
    pump_stream(&mut c, caddr, &mut s, t0, &mut up, &mut down);
    assert_eq!(
        c.poll_event(),
        Some(ClientEvent::Data {
            peer,
            data: b"hello".to_vec()
        })
    );
    // Requests are not retransmitted on a stream; they time out after Ti.
    c.refresh(t0, 600);
    assert!(c.poll_transmit().is_some());
    c.handle_timeout(t0 + Duration::from_secs(5));
    assert!(c.poll_transmit().is_none());
    c.handle_timeout(t0 + client::STREAM_TIMEOUT);
    assert!(matches!(c.poll_event(), Some(ClientEvent::TimedOut { .. })));
    // Closing the connection deletes the allocation.
    s.handle_input(
        t0,
        Input::ConnectionClosed {
            transport: Transport::Tcp,
            local: listen(),
            remote: caddr,
        },
    );
    assert!(s.allocations().is_empty());
    assert_eq!(s.stats().allocations_closed, 1);
    let ev: Vec<TurnEvent> = std::iter::from_fn(|| s.poll_event()).collect();
    assert!(ev.contains(&TurnEvent::AllocationClosed {
        client: caddr,
        relayed
    }));
    assert!(commands(&mut s).contains(&Command::CloseRelay { relayed }));
}

#[test]
fn turn_client_end_to_end() {
    let mut s = server();
    let t0 = epoch();
    let caddr = sa("198.51.100.10:40000");
    let peer = sa(PEER);
    let mut c = turn_client("secret");
    let mut lose = 0;
    c.allocate(t0, None, vec![]);
    pump(&mut c, caddr, &mut s, t0, &mut lose);
    let ev = client_events(&mut c);
    let [
        ClientEvent::Allocated {
            relayed,
            mapped,
            lifetime,
            reservation_token: None,
        },
    ] = ev[..]
    else {
        panic!("{ev:?}")
    };
    assert_eq!((mapped, lifetime), (Some(caddr), Duration::from_secs(600)));
    assert_eq!(s.relayed_sockets(), vec![relayed]);

    c.create_permission(t0, vec![peer]);
    pump(&mut c, caddr, &mut s, t0, &mut lose);
    assert_eq!(
        client_events(&mut c),
        vec![ClientEvent::PermissionCreated { peers: vec![peer] }]
    );
    // Send indication path.
    c.send_to(peer, b"one");
    let out = pump(&mut c, caddr, &mut s, t0, &mut lose);
    assert_eq!(
        out,
        vec![Transmit {
            transport: Transport::Udp,
            from: relayed,
            to: peer,
            conn: None,
            data: b"one".to_vec()
        }]
    );
    s.handle_input(t0, Input::udp(relayed, peer, b"two"));
    pump(&mut c, caddr, &mut s, t0, &mut lose);
    assert_eq!(
        client_events(&mut c),
        vec![ClientEvent::Data {
            peer,
            data: b"two".to_vec()
        }]
    );
    // Channel path.
    c.channel_bind(t0, 0x4321, peer);
    pump(&mut c, caddr, &mut s, t0, &mut lose);
    assert_eq!(
        client_events(&mut c),
        vec![ClientEvent::ChannelBound {
            channel: 0x4321,
            peer
        }]
    );
    c.send_to(peer, b"three");
    let out = pump(&mut c, caddr, &mut s, t0, &mut lose);
    assert_eq!(
        out,
        vec![Transmit {
            transport: Transport::Udp,
            from: relayed,
            to: peer,
            conn: None,
            data: b"three".to_vec()
        }]
    );
    s.handle_input(t0, Input::udp(relayed, peer, b"four"));
    pump(&mut c, caddr, &mut s, t0, &mut lose);
    assert_eq!(
        client_events(&mut c),
        vec![ClientEvent::Data {
            peer,
            data: b"four".to_vec()
        }]
    );
    // Delete.
    c.refresh(t0, 0);
    pump(&mut c, caddr, &mut s, t0, &mut lose);
    assert_eq!(
        client_events(&mut c),
        vec![ClientEvent::Refreshed {
            lifetime: Duration::ZERO
        }]
    );
    assert_eq!(c.relayed(), None);
    assert!(s.allocations().is_empty());
}

#[test]
fn turn_client_retransmits_and_recovers_from_stale_nonce() {
    let mut cfg = config();
    cfg.nonce_lifetime = Duration::from_secs(60);
    let mut s = TurnServer::new(cfg).unwrap();
    let t0 = epoch();
    let caddr = sa("198.51.100.10:40000");
    let mut c = turn_client("secret");
    // The first two sends are lost: the retransmission at 500 ms then 1.5 s gets through.
    let mut lose = 2;
    c.allocate(t0, Some(1200), vec![]);
    pump(&mut c, caddr, &mut s, t0, &mut lose);
    assert_eq!(c.poll_timeout(), Some(t0 + Duration::from_millis(500)));
    let mut now = t0;
    while c.relayed().is_none() {
        now = c.poll_timeout().expect("still pending");
        c.handle_timeout(now);
        pump(&mut c, caddr, &mut s, now, &mut lose);
    }
    assert_eq!(now, t0 + Duration::from_millis(1500));
    assert!(
        matches!(client_events(&mut c)[..], [ClientEvent::Allocated { lifetime, .. }] if lifetime == Duration::from_secs(1200))
    );
    assert_eq!(c.poll_timeout(), None);
    // Two minutes later the nonce is stale: 438, then the client resends with the new one.
    let later = t0 + Duration::from_secs(120);
    c.refresh(later, 600);
    pump(&mut c, caddr, &mut s, later, &mut lose);
    assert_eq!(
        client_events(&mut c),
        vec![ClientEvent::Refreshed {
            lifetime: Duration::from_secs(600)
        }]
    );
    assert!(events(&mut s).iter().any(|e| matches!(
        e,
        TurnEvent::AuthFailed {
            reason: AuthFailure::StaleNonce,
            ..
        }
    )));
}

#[test]
fn turn_client_wrong_password_fails_and_silence_times_out() {
    let mut s = server();
    let t0 = epoch();
    let caddr = sa("198.51.100.10:40000");
    let mut c = turn_client("wrong");
    let mut lose = 0;
    c.allocate(t0, None, vec![]);
    pump(&mut c, caddr, &mut s, t0, &mut lose);
    assert!(matches!(
        client_events(&mut c)[..],
        [ClientEvent::Failed { code: 401, .. }]
    ));
    // Nobody answers: 7 sends (RFC 8489 §6.2.1), then TimedOut.
    let mut c = turn_client("secret");
    c.allocate(t0, None, vec![]);
    let mut sends = 0;
    while let Some(at) = {
        sends += std::iter::from_fn(|| c.poll_transmit()).count();
        c.poll_timeout()
    } {
        c.handle_timeout(at);
    }
    assert_eq!(sends, 7);
    assert_eq!(
        client_events(&mut c),
        vec![ClientEvent::TimedOut { method: 0x003 }]
    );
}

#[test]
fn turn_client_ignores_responses_failing_integrity() {
    let mut s = server();
    let t0 = epoch();
    let caddr = sa("198.51.100.10:40000");
    let mut c = turn_client("secret");
    c.allocate(t0, None, vec![]);
    // Challenge round trip.
    let req = c.poll_transmit().unwrap();
    s.handle_input(t0, Input::udp(listen(), caddr, &req.data));
    let challenge = s.poll_transmit().unwrap();
    c.handle_input(t0, listen(), &challenge.data);
    let req = c.poll_transmit().unwrap();
    s.handle_input(t0, Input::udp(listen(), caddr, &req.data));
    let ok = s.poll_transmit().unwrap();
    // A tampered copy (one bit of XOR-RELAYED-ADDRESS) is ignored; the real one is taken.
    let mut forged = ok.data.clone();
    forged[20 + 4 + 7] ^= 1;
    c.handle_input(t0, listen(), &forged);
    assert!(client_events(&mut c).is_empty());
    c.handle_input(t0, sa("192.0.2.99:3478"), &ok.data); // not from the server
    assert!(client_events(&mut c).is_empty());
    c.handle_input(t0, listen(), &ok.data);
    assert!(matches!(
        client_events(&mut c)[..],
        [ClientEvent::Allocated { .. }]
    ));
}

proptest::proptest! {
    #[test]
    fn turn_client_never_panics(inputs in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..120), 1..8)) {
        let t0 = epoch();
        let mut c = turn_client("secret");
        c.allocate(t0, None, vec![]);
        c.channel_bind(t0, 0x4000, sa(PEER));
        for bytes in &inputs {
            c.handle_input(t0, listen(), bytes);
        }
        c.handle_timeout(t0 + Duration::from_secs(60));
        while c.poll_transmit().is_some() {}
        while c.poll_event().is_some() {}
    }
}

proptest::proptest! {
    /// Requests that reach the authentication and method code: random USERNAME, REALM,
    /// NONCE (sometimes the server's own), random TURN attributes, a MAC under alice's key.
    #[test]
    fn authenticated_garbage_never_panics(
        m in 0u16..16,
        user in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..12),
        realm_ok in proptest::prelude::any::<bool>(),
        nonce in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40),
        use_real_nonce in proptest::prelude::any::<bool>(),
        extra in proptest::collection::vec((0u16..0x30, proptest::collection::vec(proptest::prelude::any::<u8>(), 0..24)), 0..5),
    ) {
        let mut s = server();
        let t0 = epoch();
        let mut c = Client::new("198.51.100.10:40000");
        c.allocate(&mut s, t0);
        let mut msg = attrs::request(Method::from_u16(m), [4; 12]);
        for (t, v) in extra {
            msg.attributes.push(attrs::raw(t, v));
        }
        let name = if user.is_empty() { b"alice".to_vec() } else { user };
        msg.attributes.push(attrs::raw(kind::USERNAME, name));
        msg.attributes.push(attrs::realm(if realm_ok { REALM } else { "other" }));
        let n = if use_real_nonce { c.nonce.clone().unwrap() } else { nonce };
        msg.attributes.push(attrs::nonce(&n));
        msg.attributes.push(attrs::integrity_placeholder());
        let bytes = msg.emit_with_integrity(&c.key());
        s.handle_input(t0, Input::udp(listen(), c.addr, &bytes));
        while s.poll_transmit().is_some() {}
        while s.poll_event().is_some() {}
    }
}
