//! RFC 6062 server tests: every path of the sans-IO TCP relay, in virtual time.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::*;
use crate::stun::integrity::check_integrity;
use crate::stun::{Attribute, Class, Message, Method, TransactionId};
use crate::turn::attrs::{self, kind, method as turn};
use crate::turn::{
    Command, Input, TcpCloseReason, Transmit, Transport, TurnConfig, TurnEvent, TurnServer,
    long_term_key,
};

const REALM: &str = "example.org";
const PEER: &str = "192.0.2.50:5000";

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[allow(clippy::disallowed_methods)]
fn epoch() -> Instant {
    Instant::now()
}

/// [`Input::TcpAccepted`] and its outcome, as a driver sees it.
trait AcceptPeer {
    fn accept_peer(
        &mut self,
        now: Instant,
        relayed: SocketAddr,
        peer: SocketAddr,
    ) -> Option<ConnectionId>;
}

impl AcceptPeer for TurnServer {
    fn accept_peer(
        &mut self,
        now: Instant,
        relayed: SocketAddr,
        peer: SocketAddr,
    ) -> Option<ConnectionId> {
        self.handle_input(now, Input::TcpAccepted { relayed, peer });
        self.tcp_accepted(relayed, peer)
    }
}

fn listen() -> SocketAddr {
    sa("203.0.113.1:3478")
}

fn server() -> TurnServer {
    let mut c = TurnConfig::new(listen(), "203.0.113.2".parse().unwrap(), REALM)
        .user("alice", "secret")
        .user("bob", "hunter2");
    c.relay_ports = (50000, 50099);
    c.seed = 9;
    TurnServer::new(c).unwrap()
}

/// A client speaking on one stream connection (or UDP) from `addr`.
struct Conn {
    addr: SocketAddr,
    transport: Transport,
    user: &'static str,
    pass: &'static str,
    n: u32,
    nonce: Option<Vec<u8>>,
}

impl Conn {
    fn new(addr: &str, user: &'static str, pass: &'static str) -> Conn {
        Conn {
            addr: sa(addr),
            transport: Transport::Tcp,
            user,
            pass,
            n: 0,
            nonce: None,
        }
    }

    /// Another connection of the same client, reusing its nonce (the server's 401s are
    /// rate limited per IP).
    fn data_conn(&self, addr: &str) -> Conn {
        Conn {
            addr: sa(addr),
            nonce: self.nonce.clone(),
            ..Conn::new(addr, self.user, self.pass)
        }
    }

    /// An authenticated request (the server's nonces are stateless: one from a 401 of
    /// any connection works on every connection).
    fn call(
        &mut self,
        s: &mut TurnServer,
        now: Instant,
        m: Method,
        peer: Option<SocketAddr>,
        extra: Vec<Attribute>,
    ) -> Vec<Message> {
        // Get a nonce with an unauthenticated request first.
        if self.nonce.is_none() {
            self.n += 1;
            let tid = TransactionId::new([self.n as u8; 12]);
            let probe = Message::new(Class::Request, m, tid).emit();
            s.handle_input(
                now,
                Input::Packet {
                    transport: self.transport,
                    local: listen(),
                    remote: self.addr,
                    data: &probe,
                },
            );
            let out = drain(s);
            self.nonce = out.iter().find_map(|t| {
                let m = Message::parse(&t.data).ok()?;
                attrs::raw_value(&m, kind::NONCE).map(<[u8]>::to_vec)
            });
        }
        let nonce = self.nonce.clone().expect("a 401 with a nonce");
        self.n += 1;
        let tid = TransactionId::new([self.n as u8; 12]);
        let mut msg = Message::new(Class::Request, m, tid);
        if let Some(p) = peer {
            msg.attributes
                .push(attrs::xor_address(kind::XOR_PEER_ADDRESS, p, &tid));
        }
        msg.attributes.extend(extra);
        msg.attributes.push(attrs::username(self.user));
        msg.attributes.push(attrs::realm(REALM));
        msg.attributes.push(attrs::nonce(&nonce));
        msg.attributes.push(attrs::integrity_placeholder());
        let key = long_term_key(self.user, REALM, self.pass);
        let bytes = msg.emit_with_integrity(&key);
        s.handle_input(
            now,
            Input::Packet {
                transport: self.transport,
                local: listen(),
                remote: self.addr,
                data: &bytes,
            },
        );
        drain(s)
            .into_iter()
            .filter(|t| t.to == self.addr)
            .map(|t| {
                assert_eq!(t.transport, self.transport);
                if let Ok(m) = Message::parse(&t.data)
                    && m.class != Class::Indication
                {
                    assert_eq!(check_integrity(&t.data, &key), Some(true));
                }
                Message::parse(&t.data).unwrap()
            })
            .collect()
    }

    fn allocate(&mut self, s: &mut TurnServer, now: Instant, transport: u8) -> Message {
        let r = self.call(
            s,
            now,
            turn::ALLOCATE,
            None,
            vec![attrs::requested_transport(transport)],
        );
        assert_eq!(r.len(), 1);
        r.into_iter().next().unwrap()
    }

    fn permit(&mut self, s: &mut TurnServer, now: Instant, peer: SocketAddr) {
        let r = self.call(s, now, turn::CREATE_PERMISSION, Some(peer), vec![]);
        assert_eq!(r[0].class, Class::Success, "{r:?}");
    }

    fn connect(&mut self, s: &mut TurnServer, now: Instant, peer: SocketAddr) -> Vec<Message> {
        self.call(s, now, method::CONNECT, Some(peer), vec![])
    }

    fn bind(&mut self, s: &mut TurnServer, now: Instant, id: ConnectionId) -> Message {
        let r = self.call(
            s,
            now,
            method::CONNECTION_BIND,
            None,
            vec![connection_id_attr(id)],
        );
        assert_eq!(r.len(), 1, "{r:?}");
        r.into_iter().next().unwrap()
    }
}

fn drain(s: &mut TurnServer) -> Vec<Transmit> {
    std::iter::from_fn(|| s.poll_transmit()).collect()
}

fn commands(s: &mut TurnServer) -> Vec<Command> {
    std::iter::from_fn(|| s.poll_command()).collect()
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

/// A TCP allocation for alice on a control connection, with a permission for PEER.
fn tcp_allocation(s: &mut TurnServer, now: Instant) -> (Conn, SocketAddr) {
    let mut ctl = Conn::new("198.51.100.10:40000", "alice", "secret");
    let r = ctl.allocate(s, now, TRANSPORT_TCP);
    assert_eq!(r.class, Class::Success, "{r:?}");
    let rel = relayed(&r);
    assert_eq!(commands(s), vec![Command::Listen { relayed: rel }]);
    assert!(
        !s.relayed_sockets().contains(&rel),
        "no UDP socket for a TCP allocation"
    );
    assert_eq!(s.tcp_listeners(), vec![rel]);
    ctl.permit(s, now, sa(PEER));
    (ctl, rel)
}

/// Connect to PEER, connected: the id from the success response.
fn connected(s: &mut TurnServer, now: Instant, ctl: &mut Conn) -> ConnectionId {
    assert!(
        ctl.connect(s, now, sa(PEER)).is_empty(),
        "response deferred"
    );
    let [Command::Connect { id, to, .. }] = commands(s)[..] else {
        panic!("one Connect command")
    };
    assert_eq!(to, sa(PEER));
    s.handle_input(now, Input::TcpConnected { id });
    let out = drain(s);
    assert_eq!(out.len(), 1);
    let m = Message::parse(&out[0].data).unwrap();
    assert_eq!((m.class, m.method), (Class::Success, method::CONNECT));
    assert_eq!(connection_id(&m), Some(id));
    id
}

#[test]
fn allocate_tcp_only_over_a_stream_and_without_udp_only_attributes() {
    let t0 = epoch();
    let mut s = server();
    let mut udp = Conn::new("198.51.100.10:40001", "alice", "secret");
    udp.transport = Transport::Udp;
    assert_eq!(code(&udp.allocate(&mut s, t0, TRANSPORT_TCP)), Some(400));
    let mut c = Conn::new("198.51.100.10:40002", "alice", "secret");
    let r = c.call(
        &mut s,
        t0,
        turn::ALLOCATE,
        None,
        vec![
            attrs::requested_transport(TRANSPORT_TCP),
            attrs::even_port(false),
        ],
    );
    assert_eq!(code(&r[0]), Some(400));
    // Any other protocol is still 442.
    assert_eq!(code(&c.allocate(&mut s, t0, 132)), Some(442));
    assert!(commands(&mut s).is_empty());
    let (_, rel) = tcp_allocation(&mut s, t0);
    assert_eq!(rel.ip(), s.config().relay_addr);
    assert_eq!(s.tcp_stats().allocations, 1);
}

#[test]
fn connect_bind_relay_and_half_close() {
    let t0 = epoch();
    let mut s = server();
    let (mut ctl, rel) = tcp_allocation(&mut s, t0);
    // A Connect command goes from the relayed address.
    assert!(ctl.connect(&mut s, t0, sa(PEER)).is_empty());
    let cmds = commands(&mut s);
    let [Command::Connect { id, from, to }] = cmds[..] else {
        panic!("{cmds:?}")
    };
    assert_eq!((from, to), (rel, sa(PEER)));
    // Peer bytes before the bind are held (a driver that reads eagerly).
    s.handle_input(t0, Input::TcpConnected { id });
    drain(&mut s);
    s.handle_input(
        t0,
        Input::TcpData {
            id,
            side: TcpSide::Peer,
            data: b"early",
        },
    );
    assert!(commands(&mut s).is_empty());
    // ConnectionBind on a new connection: success, then Bind and the held bytes.
    let mut data = ctl.data_conn("198.51.100.10:40010");
    let r = data.bind(&mut s, t0, id);
    assert_eq!(
        (r.class, r.method),
        (Class::Success, method::CONNECTION_BIND)
    );
    let server_side = listen();
    assert_eq!(s.tcp_binding(server_side, data.addr), Some(id));
    assert_eq!(
        commands(&mut s),
        vec![
            Command::Bind {
                id,
                server: server_side,
                client: data.addr
            },
            Command::Send {
                id,
                side: TcpSide::Client,
                data: b"early".to_vec()
            },
        ]
    );
    // Raw bytes both ways, unframed.
    s.handle_input(
        t0,
        Input::TcpData {
            id,
            side: TcpSide::Client,
            data: b"\xffnot stun",
        },
    );
    s.handle_input(
        t0,
        Input::TcpData {
            id,
            side: TcpSide::Peer,
            data: b"pong",
        },
    );
    assert_eq!(
        commands(&mut s),
        vec![
            Command::Send {
                id,
                side: TcpSide::Peer,
                data: b"\xffnot stun".to_vec()
            },
            Command::Send {
                id,
                side: TcpSide::Client,
                data: b"pong".to_vec()
            },
        ]
    );
    assert_eq!(s.tcp_stats().to_peer_bytes, 9);
    assert_eq!(s.tcp_stats().to_client_bytes, 9);
    // The client's FIN shuts the peer side; data still flows peer → client.
    s.handle_input(
        t0,
        Input::TcpEof {
            id,
            side: TcpSide::Client,
        },
    );
    assert_eq!(
        commands(&mut s),
        vec![Command::Shutdown {
            id,
            side: TcpSide::Peer
        }]
    );
    s.handle_input(
        t0,
        Input::TcpData {
            id,
            side: TcpSide::Peer,
            data: b"tail",
        },
    );
    assert_eq!(commands(&mut s).len(), 1);
    // The peer's FIN ends the pair.
    s.handle_input(
        t0,
        Input::TcpEof {
            id,
            side: TcpSide::Peer,
        },
    );
    assert_eq!(commands(&mut s), vec![Command::Close { id }]);
    assert!(s.tcp_connections().is_empty());
    assert_eq!(s.tcp_binding(server_side, data.addr), None);
    // A second Connect to the same peer is fine again once the first is gone.
    assert!(ctl.connect(&mut s, t0, sa(PEER)).is_empty());
}

#[test]
fn connect_errors() {
    let t0 = epoch();
    let mut s = server();
    // No allocation: 437.
    let mut lone = Conn::new("198.51.100.10:40100", "alice", "secret");
    assert_eq!(code(&lone.connect(&mut s, t0, sa(PEER))[0]), Some(437));
    // A UDP allocation: 400.
    let mut u = Conn::new("198.51.100.10:40101", "bob", "hunter2");
    let r = u.allocate(&mut s, t0, 17);
    assert_eq!(r.class, Class::Success);
    let udp_relayed = relayed(&r);
    assert_eq!(
        commands(&mut s),
        vec![Command::BindRelay {
            relayed: udp_relayed
        }],
        "a UDP allocation binds a socket, no listener"
    );
    u.permit(&mut s, t0, sa(PEER));
    assert_eq!(code(&u.connect(&mut s, t0, sa(PEER))[0]), Some(400));
    let (mut ctl, rel) = tcp_allocation(&mut s, t0);
    // Missing peer: 400; denied peer: 403; no permission: 403; other family: 443.
    let r = ctl.call(&mut s, t0, method::CONNECT, None, vec![]);
    assert_eq!(code(&r[0]), Some(400));
    assert_eq!(code(&ctl.connect(&mut s, t0, rel)[0]), Some(400), "itself");
    assert_eq!(
        code(&ctl.connect(&mut s, t0, sa("127.0.0.1:22"))[0]),
        Some(403)
    );
    assert_eq!(
        code(&ctl.connect(&mut s, t0, sa("203.0.113.2:22"))[0]),
        Some(403),
        "the server's own address, not a relayed one"
    );
    assert_eq!(
        code(&ctl.connect(&mut s, t0, sa("192.0.2.99:80"))[0]),
        Some(403)
    );
    assert_eq!(
        code(&ctl.connect(&mut s, t0, sa("[2001:db8::1]:80"))[0]),
        Some(443)
    );
    assert!(commands(&mut s).is_empty());
    // ChannelBind on a TCP allocation: 400.
    let r = ctl.call(
        &mut s,
        t0,
        turn::CHANNEL_BIND,
        Some(sa(PEER)),
        vec![attrs::channel_number(0x4000)],
    );
    assert_eq!(code(&r[0]), Some(400));
    // 446 while connecting, and while pending.
    assert!(ctl.connect(&mut s, t0, sa(PEER)).is_empty());
    assert_eq!(code(&ctl.connect(&mut s, t0, sa(PEER))[0]), Some(446));
    let [Command::Connect { id, .. }] = commands(&mut s)[..] else {
        panic!()
    };
    s.handle_input(t0, Input::TcpConnected { id });
    drain(&mut s);
    assert_eq!(code(&ctl.connect(&mut s, t0, sa(PEER))[0]), Some(446));
    // A failed connect: 447, the id is gone.
    let other = sa("192.0.2.50:6000");
    assert!(ctl.connect(&mut s, t0, other).is_empty());
    let [Command::Connect { id: id2, .. }] = commands(&mut s)[..] else {
        panic!()
    };
    s.handle_input(t0, Input::TcpConnectFailed { id: id2 });
    let out = drain(&mut s);
    let m = Message::parse(&out[0].data).unwrap();
    assert_eq!(code(&m), Some(447));
    assert_eq!(
        check_integrity(&out[0].data, &long_term_key("alice", REALM, "secret")),
        Some(true)
    );
    assert_eq!(commands(&mut s), vec![Command::Close { id: id2 }]);
    // Send indications on a TCP allocation are ignored.
    let _ = rel;
    assert_eq!(s.tcp_stats().connect_failures, 1);
}

#[test]
fn connect_timeout_gives_447_and_unbound_connections_close_after_30_s() {
    let t0 = epoch();
    let mut s = server();
    let (mut ctl, _) = tcp_allocation(&mut s, t0);
    assert!(ctl.connect(&mut s, t0, sa(PEER)).is_empty());
    let [Command::Connect { id, .. }] = commands(&mut s)[..] else {
        panic!()
    };
    assert_eq!(s.poll_timeout(), Some(t0 + CONNECT_TIMEOUT));
    s.handle_timeout(t0 + CONNECT_TIMEOUT - Duration::from_millis(1));
    assert!(drain(&mut s).is_empty());
    s.handle_timeout(t0 + CONNECT_TIMEOUT);
    let out = drain(&mut s);
    assert_eq!(code(&Message::parse(&out[0].data).unwrap()), Some(447));
    assert_eq!(commands(&mut s), vec![Command::Close { id }]);
    // A late success report for the gone id does nothing.
    s.handle_input(t0 + CONNECT_TIMEOUT, Input::TcpConnected { id });
    assert!(drain(&mut s).is_empty());
    // Connected but never bound: closed after BIND_TIMEOUT.
    let t1 = t0 + Duration::from_secs(100);
    let id = connected(&mut s, t1, &mut ctl);
    s.handle_timeout(t1 + BIND_TIMEOUT - Duration::from_millis(1));
    assert!(commands(&mut s).is_empty());
    s.handle_timeout(t1 + BIND_TIMEOUT);
    assert_eq!(commands(&mut s), vec![Command::Close { id }]);
    assert_eq!(s.tcp_stats().bind_timeouts, 1);
    assert!(s.tcp_connections().is_empty());
}

#[test]
fn incoming_peer_connections_need_a_permission() {
    let t0 = epoch();
    let mut s = server();
    let (mut ctl, rel) = tcp_allocation(&mut s, t0);
    // Unpermitted peer, denied peer, unknown listener: refused.
    assert_eq!(s.accept_peer(t0, rel, sa("192.0.2.99:7000")), None);
    assert_eq!(s.accept_peer(t0, rel, sa("127.0.0.1:7000")), None);
    assert_eq!(s.accept_peer(t0, sa("203.0.113.2:1"), sa(PEER)), None);
    assert_eq!(s.tcp_stats().refused, 3);
    assert!(drain(&mut s).is_empty());
    // A permitted peer: ConnectionAttempt with CONNECTION-ID and XOR-PEER-ADDRESS.
    let peer = sa("192.0.2.50:7001");
    let id = s.accept_peer(t0, rel, peer).unwrap();
    let out = drain(&mut s);
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].from, out[0].to), (listen(), ctl.addr));
    let m = Message::parse(&out[0].data).unwrap();
    assert_eq!(
        (m.class, m.method),
        (Class::Indication, method::CONNECTION_ATTEMPT)
    );
    assert_eq!(connection_id(&m), Some(id));
    let p = attrs::peer_addresses(&m).unwrap();
    assert_eq!(p, vec![peer]);
    // Bound from a data connection: relays.
    let mut data = ctl.data_conn("198.51.100.10:40020");
    assert_eq!(data.bind(&mut s, t0, id).class, Class::Success);
    assert!(matches!(commands(&mut s)[..], [Command::Bind { .. }]));
    // The permission expires: new connections are refused, the bound one lives on.
    let later = t0 + Duration::from_secs(301);
    assert_eq!(s.accept_peer(later, rel, sa("192.0.2.50:7002")), None);
    assert_eq!(s.tcp_connections().len(), 1);
    // Too many pending: refused beyond MAX_PENDING.
    ctl.permit(&mut s, later, peer);
    for i in 0..MAX_PENDING {
        let p = SocketAddr::new(peer.ip(), 8000 + i as u16);
        assert!(s.accept_peer(later, rel, p).is_some());
    }
    assert_eq!(s.accept_peer(later, rel, sa("192.0.2.50:9999")), None);
}

#[test]
fn connection_bind_errors() {
    let t0 = epoch();
    let mut s = server();
    let (mut ctl, rel) = tcp_allocation(&mut s, t0);
    let id = s.accept_peer(t0, rel, sa(PEER)).unwrap();
    drain(&mut s);
    let mut d = ctl.data_conn("198.51.100.10:40030");
    // Unknown id, missing id: 400.
    assert_eq!(code(&d.bind(&mut s, t0, ConnectionId(id.0 ^ 1))), Some(400));
    let r = d.call(&mut s, t0, method::CONNECTION_BIND, None, vec![]);
    assert_eq!(code(&r[0]), Some(400));
    // On the control connection: 400. Over UDP: 400.
    assert_eq!(code(&ctl.bind(&mut s, t0, id)), Some(400));
    let mut u = ctl.data_conn("198.51.100.10:40031");
    u.transport = Transport::Udp;
    assert_eq!(code(&u.bind(&mut s, t0, id)), Some(400));
    // Another user: 441.
    let mut bob = Conn::new("198.51.100.10:40032", "bob", "hunter2");
    bob.nonce = ctl.nonce.clone();
    assert_eq!(code(&bob.bind(&mut s, t0, id)), Some(441));
    assert!(commands(&mut s).is_empty());
    // Success once; a second bind of the same id (other connection) is 400, and so is
    // binding an outgoing connection that is still connecting.
    assert_eq!(d.bind(&mut s, t0, id).class, Class::Success);
    let mut d2 = ctl.data_conn("198.51.100.10:40033");
    assert_eq!(code(&d2.bind(&mut s, t0, id)), Some(400));
    assert!(ctl.connect(&mut s, t0, sa("192.0.2.50:6001")).is_empty());
    let cmds = commands(&mut s);
    let Some(Command::Connect { id: connecting, .. }) = cmds.last() else {
        panic!("{cmds:?}")
    };
    assert_eq!(code(&d2.bind(&mut s, t0, *connecting)), Some(400));
    assert_eq!(s.tcp_stats().bound, 1);
}

#[test]
fn closing_either_side_or_the_allocation_closes_everything() {
    let t0 = epoch();
    let mut s = server();
    let (mut ctl, rel) = tcp_allocation(&mut s, t0);
    let a = connected(&mut s, t0, &mut ctl);
    let mut d = ctl.data_conn("198.51.100.10:40040");
    d.bind(&mut s, t0, a);
    commands(&mut s);
    // A reset on the peer side closes the pair.
    s.handle_input(
        t0,
        Input::TcpClosed {
            id: a,
            side: TcpSide::Peer,
        },
    );
    assert_eq!(commands(&mut s), vec![Command::Close { id: a }]);
    assert_eq!(s.tcp_stats().peer_resets, 1);
    // The client data connection closing (as a stream) closes the pair too.
    let b = s.accept_peer(t0, rel, sa("192.0.2.50:7100")).unwrap();
    drain(&mut s);
    let mut d2 = ctl.data_conn("198.51.100.10:40041");
    d2.bind(&mut s, t0, b);
    commands(&mut s);
    s.handle_input(
        t0,
        Input::ConnectionClosed {
            transport: Transport::Tcp,
            local: listen(),
            remote: d2.addr,
        },
    );
    assert_eq!(commands(&mut s), vec![Command::Close { id: b }]);
    // A peer FIN before the bind is relayed after the held bytes.
    let c = s.accept_peer(t0, rel, sa("192.0.2.50:7101")).unwrap();
    drain(&mut s);
    s.handle_input(
        t0,
        Input::TcpData {
            id: c,
            side: TcpSide::Peer,
            data: b"bye",
        },
    );
    s.handle_input(
        t0,
        Input::TcpEof {
            id: c,
            side: TcpSide::Peer,
        },
    );
    let mut d3 = ctl.data_conn("198.51.100.10:40042");
    d3.bind(&mut s, t0, c);
    assert_eq!(
        commands(&mut s)[1..],
        [
            Command::Send {
                id: c,
                side: TcpSide::Client,
                data: b"bye".to_vec()
            },
            Command::Shutdown {
                id: c,
                side: TcpSide::Client
            }
        ]
    );
    // Too much before the bind closes the connection.
    let e = s.accept_peer(t0, rel, sa("192.0.2.50:7102")).unwrap();
    drain(&mut s);
    s.handle_input(
        t0,
        Input::TcpData {
            id: e,
            side: TcpSide::Peer,
            data: &vec![0; PRE_BIND_BUFFER],
        },
    );
    s.handle_input(
        t0,
        Input::TcpData {
            id: e,
            side: TcpSide::Peer,
            data: b"x",
        },
    );
    assert_eq!(commands(&mut s), vec![Command::Close { id: e }]);
    assert_eq!(s.tcp_stats().pre_bind_overflows, 1);
    // The control connection closes: the allocation, its pairs and its listener go.
    let f = s.accept_peer(t0, rel, sa("192.0.2.50:7103")).unwrap();
    drain(&mut s);
    s.handle_input(
        t0,
        Input::ConnectionClosed {
            transport: Transport::Tcp,
            local: listen(),
            remote: ctl.addr,
        },
    );
    let cmds = commands(&mut s);
    assert!(cmds.contains(&Command::Close { id: c }), "{cmds:?}");
    assert!(cmds.contains(&Command::Close { id: f }), "{cmds:?}");
    assert_eq!(cmds.last(), Some(&Command::Unlisten { relayed: rel }));
    assert!(s.tcp_connections().is_empty());
    assert!(s.tcp_listeners().is_empty());
    assert_eq!(s.poll_timeout(), None, "no timer left");
}

#[test]
fn two_allocations_of_one_server_connect_to_each_other() {
    // turnutils_uclient -T: allocation A connects to B's relayed address, which is the
    // server's own IP (on the deny list) but a relayed address, so allowed.
    let t0 = epoch();
    let mut s = server();
    let mut a = Conn::new("198.51.100.10:41000", "alice", "secret");
    let ra = relayed(&a.allocate(&mut s, t0, TRANSPORT_TCP));
    let mut b = Conn::new("198.51.100.10:41001", "alice", "secret");
    let rb = relayed(&b.allocate(&mut s, t0, TRANSPORT_TCP));
    commands(&mut s);
    a.permit(&mut s, t0, rb);
    b.permit(&mut s, t0, ra);
    assert!(a.connect(&mut s, t0, rb).is_empty());
    let [Command::Connect { id, from, to }] = commands(&mut s)[..] else {
        panic!()
    };
    assert_eq!((from, to), (ra, rb));
    // The connection arrives at B's listener from A's relayed address.
    let inbound = s.accept_peer(t0, rb, ra).unwrap();
    let out = drain(&mut s);
    assert_eq!(out[0].to, b.addr, "ConnectionAttempt to B");
    s.handle_input(t0, Input::TcpConnected { id });
    assert_eq!(drain(&mut s)[0].to, a.addr, "Connect success to A");
    assert_ne!(id, inbound);
    // A UDP Send to the server's listening port stays refused.
    let mut u = Conn::new("198.51.100.10:41002", "bob", "hunter2");
    u.allocate(&mut s, t0, 17);
    let r = u.call(&mut s, t0, turn::CREATE_PERMISSION, Some(listen()), vec![]);
    assert_eq!(code(&r[0]), Some(403));
}

/// The sans-IO client against the server, both over streams: Allocate TCP, Connect,
/// ConnectionBind from a second client, ConnectionAttempt.
#[test]
fn turn_client_speaks_rfc_6062() {
    use crate::turn::{ClientConfig, ClientEvent, TurnClient};
    let t0 = epoch();
    let mut s = server();
    let client = |seed| {
        TurnClient::new(ClientConfig {
            server: listen(),
            username: "alice".into(),
            password: "secret".into(),
            seed,
            transport: Transport::Tcp,
        })
    };
    // Every transmit is whole frames here: feed them straight through.
    fn pump(
        s: &mut TurnServer,
        c: &mut TurnClient,
        from: SocketAddr,
        now: Instant,
    ) -> Vec<ClientEvent> {
        for _ in 0..4 {
            while let Some(t) = c.poll_transmit() {
                s.handle_input(
                    now,
                    Input::Packet {
                        transport: Transport::Tcp,
                        local: listen(),
                        remote: from,
                        data: &t.data,
                    },
                );
            }
            for t in drain(s) {
                if t.to == from {
                    c.handle_input(now, listen(), &t.data);
                }
            }
        }
        std::iter::from_fn(|| c.poll_event()).collect()
    }
    let a: SocketAddr = sa("198.51.100.10:42000");
    let mut ctl = client(1);
    ctl.allocate(t0, None, vec![attrs::requested_transport(TRANSPORT_TCP)]);
    let ev = pump(&mut s, &mut ctl, a, t0);
    assert!(matches!(ev[..], [ClientEvent::Allocated { .. }]), "{ev:?}");
    let rel = ctl.relayed().unwrap();
    assert_eq!(s.tcp_listeners(), vec![rel]);
    assert_eq!(commands(&mut s), vec![Command::Listen { relayed: rel }]);
    ctl.create_permission(t0, vec![sa(PEER)]);
    pump(&mut s, &mut ctl, a, t0);
    ctl.connect(t0, sa(PEER));
    pump(&mut s, &mut ctl, a, t0);
    let cmds = commands(&mut s);
    let [Command::Connect { id, .. }] = cmds[..] else {
        panic!("{cmds:?}")
    };
    s.handle_input(t0, Input::TcpConnected { id });
    let ev = pump(&mut s, &mut ctl, a, t0);
    assert_eq!(ev, vec![ClientEvent::Connected { peer: sa(PEER), id }]);
    // The data connection: its own client (401, then the bind).
    let d: SocketAddr = sa("198.51.100.10:42001");
    let mut data = client(2);
    data.connection_bind(t0, id);
    let ev = pump(&mut s, &mut data, d, t0);
    assert_eq!(ev, vec![ClientEvent::ConnectionBound { id }]);
    assert_eq!(s.tcp_binding(listen(), d), Some(id));
    // An incoming peer: ConnectionAttempt at the control client.
    let peer = sa("192.0.2.50:7300");
    let id2 = s.accept_peer(t0, rel, peer).unwrap();
    let ev = pump(&mut s, &mut ctl, a, t0);
    assert_eq!(ev, vec![ClientEvent::ConnectionAttempt { peer, id: id2 }]);
    // A data client with the control client's credentials authenticates at once.
    let d2: SocketAddr = sa("198.51.100.10:42002");
    let mut data2 = client(3);
    data2.adopt_credentials(&ctl);
    data2.connection_bind(t0, id2);
    let first = data2.poll_transmit().unwrap();
    let m = Message::parse(&first.data).unwrap();
    // authenticated at once, with the SHA-256 key the control connection negotiated
    // (RFC 8489 §9.2: the server offers SHA-256 first)
    assert!(attrs::raw_value(&m, kind::MESSAGE_INTEGRITY_SHA256).is_some());
    s.handle_input(
        t0,
        Input::Packet {
            transport: Transport::Tcp,
            local: listen(),
            remote: d2,
            data: &first.data,
        },
    );
    let out = drain(&mut s);
    assert_eq!(out.len(), 1);
    data2.handle_input(t0, listen(), &out[0].data);
    assert_eq!(
        data2.poll_event(),
        Some(ClientEvent::ConnectionBound { id: id2 })
    );
    // A failed Connect reaches the client as 447.
    let other = sa("192.0.2.50:7301");
    ctl.connect(t0, other);
    pump(&mut s, &mut ctl, a, t0);
    let cmds = commands(&mut s);
    let Some(Command::Connect { id: id3, .. }) = cmds.last() else {
        panic!("{cmds:?}")
    };
    s.handle_input(t0, Input::TcpConnectFailed { id: *id3 });
    let ev = pump(&mut s, &mut ctl, a, t0);
    assert!(
        matches!(ev[..], [ClientEvent::Failed { code: 447, .. }]),
        "{ev:?}"
    );
}

/// The typed events of RFC 6062 connections, in order: connected, bound, finished; a
/// refused peer, an attempt that times out unbound, a Connect that fails, and the pairs the
/// end of the allocation takes with it.
#[test]
fn events_tell_each_connections_story() {
    let t0 = epoch();
    let mut s = server();
    let (mut ctl, rel) = tcp_allocation(&mut s, t0);
    let tcp_events = |s: &mut TurnServer| -> Vec<TurnEvent> {
        std::iter::from_fn(|| s.poll_event())
            .filter(|e| {
                matches!(
                    e,
                    TurnEvent::TcpPeerConnected { .. }
                        | TurnEvent::TcpConnectFailed { .. }
                        | TurnEvent::TcpConnectionAttempt { .. }
                        | TurnEvent::TcpPeerRefused { .. }
                        | TurnEvent::TcpConnectionBound { .. }
                        | TurnEvent::TcpConnectionClosed { .. }
                )
            })
            .collect()
    };
    tcp_events(&mut s);
    // Connect, bind, both FINs.
    let id = connected(&mut s, t0, &mut ctl);
    let mut data = ctl.data_conn("198.51.100.10:40030");
    assert_eq!(data.bind(&mut s, t0, id).class, Class::Success);
    s.handle_input(
        t0,
        Input::TcpEof {
            id,
            side: TcpSide::Client,
        },
    );
    s.handle_input(
        t0,
        Input::TcpEof {
            id,
            side: TcpSide::Peer,
        },
    );
    assert_eq!(
        tcp_events(&mut s),
        vec![
            TurnEvent::TcpPeerConnected {
                client: ctl.addr,
                peer: sa(PEER),
                id
            },
            TurnEvent::TcpConnectionBound {
                client: data.addr,
                id
            },
            TurnEvent::TcpConnectionClosed {
                id,
                peer: sa(PEER),
                reason: TcpCloseReason::Finished
            },
        ]
    );
    // An unpermitted peer; a permitted one that never gets bound.
    let stranger = sa("192.0.2.99:7100");
    assert_eq!(s.accept_peer(t0, rel, stranger), None);
    let peer = sa("192.0.2.50:7101");
    let id2 = s.accept_peer(t0, rel, peer).unwrap();
    s.handle_timeout(t0 + BIND_TIMEOUT);
    assert_eq!(
        tcp_events(&mut s),
        vec![
            TurnEvent::TcpPeerRefused {
                relayed: rel,
                peer: stranger
            },
            TurnEvent::TcpConnectionAttempt {
                client: ctl.addr,
                peer,
                id: id2
            },
            TurnEvent::TcpConnectionClosed {
                id: id2,
                peer,
                reason: TcpCloseReason::BindTimeout
            },
        ]
    );
    // A Connect that fails; a pair reset by the peer; one the allocation's end closes.
    let t1 = t0 + BIND_TIMEOUT;
    drain(&mut s); // the ConnectionAttempt indication
    commands(&mut s); // the Binds and Closes above
    assert!(ctl.connect(&mut s, t1, sa(PEER)).is_empty());
    let [Command::Connect { id: failed, .. }] = commands(&mut s)[..] else {
        panic!()
    };
    s.handle_input(t1, Input::TcpConnectFailed { id: failed });
    assert_eq!(
        code(&Message::parse(&drain(&mut s)[0].data).unwrap()),
        Some(447)
    );
    commands(&mut s);
    let reset = connected(&mut s, t1, &mut ctl);
    s.handle_input(
        t1,
        Input::TcpClosed {
            id: reset,
            side: TcpSide::Peer,
        },
    );
    assert_eq!(commands(&mut s), vec![Command::Close { id: reset }]);
    let last = connected(&mut s, t1, &mut ctl);
    // the control connection closes: the allocation and its pairs go
    s.handle_input(
        t1,
        Input::ConnectionClosed {
            transport: Transport::Tcp,
            local: listen(),
            remote: ctl.addr,
        },
    );
    let ev = tcp_events(&mut s);
    assert_eq!(
        ev,
        vec![
            TurnEvent::TcpConnectFailed {
                client: ctl.addr,
                peer: sa(PEER)
            },
            TurnEvent::TcpPeerConnected {
                client: ctl.addr,
                peer: sa(PEER),
                id: reset
            },
            TurnEvent::TcpConnectionClosed {
                id: reset,
                peer: sa(PEER),
                reason: TcpCloseReason::PeerReset
            },
            TurnEvent::TcpPeerConnected {
                client: ctl.addr,
                peer: sa(PEER),
                id: last
            },
            TurnEvent::TcpConnectionClosed {
                id: last,
                peer: sa(PEER),
                reason: TcpCloseReason::AllocationEnded
            },
        ]
    );
}
