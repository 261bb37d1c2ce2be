//! Fuzz bodies for `pinhole-relay`: the STUN codec, server and prober; the TURN server. Compiled into the
//! fuzz crate (`fuzz/src/lib.rs`) and into the replay test `relay/tests/fuzz_replay.rs`.

#[path = "input.rs"]
mod input;

use input::Input;
use relay::stun::attr::kind;
use relay::stun::message::fingerprint;
use relay::stun::{
    Attribute, Class, Message, Packet, ProbeEvent, Prober, ProberConfig, Server, ServerConfig,
    SocketId, is_stun,
};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

fn epoch() -> Instant {
    #[allow(clippy::disallowed_methods)] // the fuzz driver's clock origin
    Instant::now()
}

/// `m` with its FINGERPRINT value zeroed.
fn without_fingerprint_value(mut m: Message) -> Message {
    for a in &mut m.attributes {
        if let Attribute::Fingerprint(v) = a {
            *v = 0;
        }
    }
    m
}

/// The STUN codec on arbitrary bytes.
///
/// Invariants: nothing panics (including the getters of a checked [`Packet`]); `is_stun`
/// implies a checked packet that fills the datagram and carries the cookie; for a parsed
/// message `is_stun` is exactly "has the magic cookie"; `emit` gives back the input bytes
/// except for the two things the codec documents it does not keep (padding after decoded
/// attributes, emitted as zeros; a FINGERPRINT value, recomputed), and re-parses to the
/// same message (FINGERPRINT value aside when the bytes changed).
pub fn stun_parse(data: &[u8]) {
    let checked = Packet::new_checked(data);
    if let Ok(p) = &checked {
        let _ = (p.class(), p.method(), p.transaction_id());
        let total = p.as_bytes().len();
        assert_eq!(total, 20 + usize::from(p.length()));
        for a in p.attributes().flatten() {
            let end = a.offset + 4 + a.value.len() + a.padding.len();
            assert!(end <= total, "attribute past the message");
            assert!(a.padding.len() < 4 && (a.value.len() + a.padding.len()) % 4 == 0);
        }
    }
    let stun = is_stun(data);
    if stun {
        let p = checked
            .as_ref()
            .expect("is_stun but the header does not check");
        assert_eq!(p.as_bytes().len(), data.len());
        assert!(!p.transaction_id().is_legacy());
    }
    let Ok(m) = Message::parse(data) else {
        return;
    };
    assert!(checked.is_ok());
    assert_eq!(stun, !m.transaction_id.is_legacy(), "is_stun vs cookie");
    assert_eq!(m.buffer_len(), data.len());
    // The codec is lossless (message.rs docs) except for two things: padding bytes after
    // *decoded* attributes are emitted as zeros, and FINGERPRINT is recomputed (under
    // `cfg(fuzzing)` the parser did not check it). So `emit` must give exactly `data`
    // with those two normalised.
    let raws: Vec<_> = checked
        .as_ref()
        .expect("checked")
        .attributes()
        .collect::<Result<_, _>>()
        .expect("the attributes of a parsed message");
    assert_eq!(raws.len(), m.attributes.len());
    let mut expect = data.to_vec();
    for (raw, attr) in raws.iter().zip(&m.attributes) {
        if !matches!(attr, Attribute::Raw(_)) {
            let at = raw.offset + 4 + raw.value.len();
            expect[at..at + raw.padding.len()].fill(0);
        }
    }
    if let Some(Attribute::Fingerprint(_)) = m.attributes.last() {
        let n = expect.len();
        let fp = fingerprint(&expect[..n - 8]);
        expect[n - 4..].copy_from_slice(&fp.to_be_bytes());
    }
    let out = m.emit();
    assert_eq!(out, expect, "emit is not parse's inverse");
    let again = Message::parse(&out).expect("an emitted message parses");
    if out == data {
        assert_eq!(again, m, "emit -> parse is not the identity");
    } else {
        assert_eq!(
            without_fingerprint_value(again),
            without_fingerprint_value(m),
            "emit -> parse changed more than the FINGERPRINT value"
        );
    }
}

fn server_config(b: u8) -> ServerConfig {
    let v6 = b & 1 != 0;
    let primary: IpAddr = if v6 {
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1))
    } else {
        IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1))
    };
    let alternate: IpAddr = if v6 {
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2))
    } else {
        IpAddr::V4(Ipv4Addr::new(198, 51, 100, 2))
    };
    let mut c = ServerConfig::new(SocketAddr::new(primary, 3478));
    match (b >> 1) % 3 {
        0 => {}
        1 => c.alternate_port = Some(3479),
        _ => c.alternate = Some(alternate),
    }
    if b & 8 != 0 {
        c.software = None;
    }
    c
}

/// The STUN server (first byte low bit clear) or the prober (set) fed datagrams from the
/// input.
///
/// Server invariants: nothing panics; every datagram it sends parses, is a success or error
/// response with the request's transaction id and method, and leaves from one of its
/// listen addresses; counters add up. Prober invariants: nothing panics; everything it
/// sends is a parseable request; it finishes once time runs out.
pub fn stun_server(data: &[u8]) {
    let mut inp = Input::new(data);
    if inp.u8() & 1 == 0 {
        server(&mut inp);
    } else {
        prober(&mut inp);
    }
}

fn server(inp: &mut Input) {
    let config = server_config(inp.u8());
    let listen = config.listen_addresses();
    let mut s = Server::new(config).expect("a valid config");
    let now = epoch();
    let mut datagrams = 0u64;
    for _ in 0..16 {
        if inp.is_empty() {
            break;
        }
        let sel = inp.u8();
        // Mostly a listen address; sometimes one the server does not own.
        let local = if sel < 240 {
            listen[usize::from(sel) % listen.len()]
        } else {
            SocketAddr::new(listen[0].ip(), 9)
        };
        let remote_ip: IpAddr = if inp.bool() {
            IpAddr::V4(Ipv4Addr::from(inp.u32()))
        } else {
            let mut a = [0u8; 16];
            for b in &mut a {
                *b = inp.u8();
            }
            IpAddr::V6(Ipv6Addr::from(a))
        };
        let remote = SocketAddr::new(remote_ip, inp.u16());
        let dgram = inp.bytes(4096);
        let req = Message::parse(dgram).ok();
        s.handle_input(now, local, remote, dgram);
        datagrams += 1;
        while let Some(t) = s.poll_transmit() {
            let req = req
                .as_ref()
                .expect("a response to a datagram that did not parse");
            assert_eq!(req.class, Class::Request, "a response to a non-request");
            assert!(listen.contains(&t.from), "sent from {} (not ours)", t.from);
            let m = Message::parse(&t.data).unwrap_or_else(|e| {
                panic!(
                    "the server sent an unparseable response ({e}): {:02x?}",
                    t.data
                )
            });
            assert!(matches!(m.class, Class::Success | Class::Error));
            assert_eq!(m.transaction_id, req.transaction_id);
            assert_eq!(m.method, req.method);
            if m.class == Class::Error {
                assert!(
                    m.get(kind::ERROR_CODE).is_some(),
                    "error without ERROR-CODE"
                );
            }
        }
        while s.poll_event().is_some() {}
    }
    let st = s.stats();
    assert_eq!(st.requests + st.ignored + st.malformed, datagrams, "{st:?}");
    assert_eq!(st.success_responses + st.error_responses, st.requests);
}

fn prober(inp: &mut Input) {
    let sc = server_config(inp.u8() | 4); // with an alternate address
    let servers = sc.listen_addresses();
    let mut config = ProberConfig::new(sc.primary);
    config.rto = Duration::from_millis(1 + u64::from(inp.u8()) * 10);
    config.max_retransmits = u32::from(inp.u8() % 4);
    config.tests.lifetime = inp
        .bool()
        .then(|| Duration::from_secs(1 + u64::from(inp.u8())));
    config.tests.port_allocation = inp.bool();
    let mut now = epoch();
    let mut p = Prober::new(config, now, u64::from(inp.u16()));
    let samples: Vec<std::net::SocketAddr> = (0..inp.below(16))
        .map(|i| std::net::SocketAddr::from(([10, 0, 0, 2], 40_000 + i as u16)))
        .collect();
    p.set_sample_addresses(&samples);
    let mut outstanding: Vec<[u8; 16]> = Vec::new();
    let drain = |p: &mut Prober, outstanding: &mut Vec<[u8; 16]>| {
        while let Some(t) = p.poll_transmit() {
            let m = Message::parse(&t.data).expect("the prober sends parseable STUN");
            assert_eq!(m.class, Class::Request);
            outstanding.push(*m.transaction_id.as_bytes());
            if outstanding.len() > 8 {
                outstanding.remove(0);
            }
        }
        while let Some(e) = p.poll_event() {
            let _ = matches!(e, ProbeEvent::Done(_));
        }
    };
    drain(&mut p, &mut outstanding);
    for _ in 0..32 {
        if inp.is_empty() {
            break;
        }
        match inp.u8() % 4 {
            0 => {
                if let Some(t) = p.poll_timeout() {
                    now = now.max(t);
                }
                p.handle_timeout(now);
            }
            _ => {
                let socket = match inp.u8() % 3 {
                    0 => SocketId::Primary,
                    1 => SocketId::Secondary,
                    _ => SocketId::Sample(inp.u8() % 16),
                };
                let from = servers[inp.below(servers.len())];
                let mut dgram = inp.bytes(1024).to_vec();
                // Answer an outstanding transaction: copy its id into the datagram.
                if dgram.len() >= 20 && !outstanding.is_empty() {
                    let tid = outstanding[inp.below(outstanding.len())];
                    dgram[4..20].copy_from_slice(&tid);
                }
                p.handle_input(now, socket, from, &dgram);
            }
        }
        drain(&mut p, &mut outstanding);
    }
    // Let time run out: the prober must finish.
    for _ in 0..10_000 {
        let Some(t) = p.poll_timeout() else { break };
        now = now.max(t);
        p.handle_timeout(now);
        drain(&mut p, &mut outstanding);
    }
    assert!(p.is_done(), "the prober did not finish once time ran out");
    let _ = p.report();
}

/// The SIP message layer on arbitrary bytes (`relay::sip`).
///
/// Invariants: nothing panics (parser, typed getters, framer); an accepted datagram
/// serialises to a prefix of its input (after the CRLFs before the start line) and parses
/// back to the same message; pushing a Via and popping it again gives back the same bytes;
/// whatever the stream framer cuts out either parses with stream framing or is rejected
/// with an error, and splitting the input in two chunks gives the same frames.
pub fn sip_parse(data: &[u8]) {
    use relay::sip::{Frame, Framing, Limits, Message, StreamFramer};
    if let Ok(m) = Message::parse(data) {
        let out = m.to_bytes();
        let start = data
            .iter()
            .position(|&c| c != b'\r' && c != b'\n')
            .expect("a parsed message is not all CRLF");
        assert!(
            data[start..].starts_with(&out),
            "serialisation is not the input"
        );
        let again = Message::parse(&out).expect("a serialised message parses");
        assert_eq!(again, m);
        let _ = (
            m.via(),
            m.contacts(),
            m.expires(),
            m.name_addrs("Route"),
            m.summary(),
        );
        let mut edited = m.clone();
        edited.push_front("Via", "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKfuzz;rport");
        let e = Message::parse(&edited.to_bytes()).expect("pushing a Via keeps it valid");
        assert_eq!(e.top_via().expect("top via").branch(), Some("z9hG4bKfuzz"));
        edited.pop_front("Via");
        assert_eq!(edited.to_bytes(), out);
    }
    let limits = Limits {
        max_message: 4096,
        ..Limits::default()
    };
    let frames = |chunks: &[&[u8]]| {
        let mut f = StreamFramer::new(limits);
        let mut out = Vec::new();
        for c in chunks {
            f.push(c);
            while let Some(r) = f.poll() {
                out.push(r);
            }
        }
        out
    };
    let whole = frames(&[data]);
    let mid = data.len() / 2;
    assert_eq!(
        frames(&[&data[..mid], &data[mid..]]),
        whole,
        "chunking changes frames"
    );
    for f in whole.into_iter().flatten() {
        if let Frame::Message(bytes) = f
            && let Ok(m) = Message::parse_with(&bytes, &limits, Framing::Stream)
        {
            assert_eq!(m.to_bytes(), bytes, "a framed message is not byte-exact");
        }
    }
}

#[path = "ng_relay.rs"]
mod ng_relay;

/// The SIP proxy core fed a sequence of messages from four UAs (UDP or TCP, NAT tests,
/// Contact fixing and keepalives on) with time jumps between them; the seed byte also
/// picks whether the proxy has a media relay (an in-memory ng peer over a relay with few
/// ports, so refusals happen), its media and ICE policies, and whether the relay answers
/// at once, at the next step (messages park and queue) or never (offers time out).
///
/// Invariants: nothing panics; everything the proxy sends parses as SIP (with the framing
/// of its transport), except the 400/505 answers that echo a malformed request's fields,
/// and a Content-Length it sends matches the body (SDP rewrites included); after three
/// idle hours every transaction, dialog, binding, pending keepalive and media session is
/// gone, nothing is parked, and the relay holds no port (no leak).
pub fn sip_proxy(data: &[u8]) {
    use relay::sdp::IcePolicy;
    use relay::sip::nat::NatTests;
    use relay::sip::proxy::{
        Input as PInput, KeepaliveConfig, KeepaliveMethod, MediaConfig, MediaPolicy, NatConfig,
        Proxy, ProxyConfig, Transmit,
    };
    use relay::sip::{ConnId, Flow, Framing, Limits, Message, Transport};
    let proxy_addr: SocketAddr = "203.0.113.1:5060".parse().expect("an address");
    let uas: [SocketAddr; 4] = [
        "198.51.100.20:40000".parse().expect("an address"),
        "198.51.100.30:50000".parse().expect("an address"),
        "192.168.1.10:5060".parse().expect("an address"),
        "[2001:db8::7]:5062".parse().expect("an address"),
    ];
    let mut inp = Input::new(data);
    let mut config = ProxyConfig::new(proxy_addr);
    config.domains.push("example.com".into());
    config.nat = NatConfig {
        tests: NatTests(inp.u8() & 15),
        fix_contact: inp.bool(),
        keepalive: inp.bool().then(|| KeepaliveConfig {
            method: if inp.bool() {
                KeepaliveMethod::Options
            } else {
                KeepaliveMethod::Notify
            },
            interval: Duration::from_secs(1 + u64::from(inp.u8() % 60)),
            max_missed: 1 + u32::from(inp.u8() % 4),
        }),
    };
    let seed = inp.u8();
    config.seed = u64::from(seed);
    // The seed byte also picks the media side, so the committed inputs keep their meaning:
    // no controller, or a media policy and ICE policy with a relay of 1–4 port pairs.
    let relay_ng: SocketAddr = "203.0.113.5:2223".parse().expect("an address");
    config.media = MediaConfig {
        policy: match seed % 4 {
            3 => MediaPolicy::Relay,
            2 => MediaPolicy::WhenNatted,
            _ => MediaPolicy::Never,
        },
        ice: [
            IcePolicy::AddRelayCandidate,
            IcePolicy::Strip,
            IcePolicy::Passthrough,
        ][usize::from(seed / 4) % 3],
        relay: (!seed.is_multiple_of(4)).then_some(relay_ng),
        ..MediaConfig::default()
    };
    let pool = std::sync::Arc::new(std::sync::Mutex::new(PortPool::default()));
    // the relay, over ng, answering at once
    let mut relay = ng_relay::NgTestRelay::new(
        PoolRelay {
            pool: pool.clone(),
            capacity: 1 + usize::from(seed >> 2) % 4,
        },
        None,
    );
    let mut p = Proxy::new(config);
    let mut now = epoch();
    // The last message sent, for a driver's transport error report.
    let mut last: Option<Transmit> = None;
    // How the relay answers (the seed's top bits): at once, at the next step (messages
    // of a call queue behind a parked one meanwhile, and time may jump past the reply
    // timeout), or never (every offer times out).
    let relay_mode = seed >> 6;
    let mut held: Vec<Vec<u8>> = Vec::new();
    let mut check =
        |p: &mut Proxy, last: &mut Option<Transmit>, now: std::time::Instant, release: bool| {
            let relay_flow = Flow {
                transport: Transport::Udp,
                local: proxy_addr,
                remote: relay_ng,
                conn: None,
            };
            if release {
                for data in std::mem::take(&mut held) {
                    if let Some(reply) = relay.serve(now, &data) {
                        p.handle_input(
                            now,
                            PInput::Message {
                                flow: relay_flow,
                                bytes: reply,
                            },
                        );
                    }
                }
            }
            while let Some(t) = p.poll_transmit() {
                if t.to == relay_ng {
                    match relay_mode {
                        2 => held.push(t.data),
                        3 => {}
                        _ => {
                            if let Some(reply) = relay.serve(now, &t.data) {
                                p.handle_input(
                                    now,
                                    PInput::Message {
                                        flow: relay_flow,
                                        bytes: reply,
                                    },
                                );
                            }
                        }
                    }
                    continue;
                }
                *last = Some(t.clone());
                let framing = if t.transport == Transport::Udp {
                    Framing::Datagram
                } else {
                    Framing::Stream
                };
                // A 400/505 to a malformed request echoes its (malformed) fields, RFC 3261
                // §8.2.6.2; everything else the proxy sends must parse.
                let answer_to_malformed =
                    t.data.starts_with(b"SIP/2.0 400 ") || t.data.starts_with(b"SIP/2.0 505 ");
                match Message::parse_with(&t.data, &Limits::default(), framing) {
                    Err(e) if !answer_to_malformed => panic!(
                        "the proxy sent something unparseable ({e}): {}",
                        String::from_utf8_lossy(&t.data)
                    ),
                    Ok(m) => {
                        if let Ok(Some(n)) = m.content_length() {
                            assert_eq!(n, m.body().len(), "Content-Length after a rewrite");
                        }
                    }
                    Err(_) => {}
                }
            }
            while p.poll_event().is_some() {}
        };
    for _ in 0..24 {
        if inp.is_empty() {
            break;
        }
        let sel = inp.u8();
        let remote = uas[usize::from(sel) % 4];
        let transport = if sel & 4 != 0 {
            Transport::Tcp
        } else {
            Transport::Udp
        };
        let conn = (transport == Transport::Tcp).then_some(ConnId(u64::from(sel % 4)));
        now += Duration::from_millis(u64::from(inp.u8()) * 250);
        if let Some(t) = p.poll_timeout()
            && t <= now
        {
            p.handle_timeout(now);
            check(&mut p, &mut last, now, true);
        }
        let flow = Flow {
            transport,
            local: proxy_addr,
            remote,
            conn,
        };
        if sel & 0xf0 == 0xf0 {
            match conn {
                Some(c) => p.handle_input(now, PInput::Closed(c)),
                // the last message sent could not be sent (RFC 3261 §18.4)
                None => {
                    if let Some(t) = last.take() {
                        p.handle_input(
                            now,
                            PInput::TransportError {
                                flow: t.flow(),
                                bytes: t.data,
                            },
                        );
                    }
                }
            }
        } else {
            let bytes = inp.bytes(2048).to_vec();
            p.handle_input(now, PInput::Message { flow, bytes });
        }
        check(&mut p, &mut last, now, true);
    }
    // three idle hours: everything winds down
    for _ in 0..100_000 {
        let Some(t) = p.poll_timeout() else { break };
        if t > now + Duration::from_secs(3 * 3600) {
            break;
        }
        now = now.max(t);
        p.handle_timeout(now);
        check(&mut p, &mut last, now, true);
    }
    assert_eq!(p.transaction_count(), (0, 0), "transactions leak");
    assert_eq!(p.dialog_count(), 0, "dialogs leak");
    assert_eq!(p.registrar().binding_count(), 0, "bindings leak");
    assert_eq!(p.media_session_count(), 0, "media sessions leak");
    assert_eq!(p.parked_count(), 0, "parked messages leak");
    let pool = pool.lock().expect("not poisoned");
    assert!(pool.pairs.is_empty(), "relay ports leak: {:?}", pool.pairs);
}

/// Port pairs held by [`PoolRelay`]: (call-id, from-tag, party, stream) → RTP port.
#[derive(Default)]
struct PortPool {
    pairs: std::collections::BTreeMap<(String, String, relay::sdp::Party, usize), u16>,
}

/// An in-memory media relay for the `sip_proxy` target: `capacity` port pairs from
/// 40000, one per (call, party, stream), refused when none is free, freed by
/// `end_session`.
struct PoolRelay {
    pool: std::sync::Arc<std::sync::Mutex<PortPool>>,
    capacity: usize,
}

#[derive(Debug)]
struct NoPorts;
impl std::fmt::Display for NoPorts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("no ports left")
    }
}
impl std::error::Error for NoPorts {}

impl relay::sdp::MediaControl for PoolRelay {
    type Error = NoPorts;
    fn relay_stream(
        &mut self,
        r: &relay::sdp::StreamRequest<'_>,
    ) -> Result<relay::sdp::RelayEndpoint, NoPorts> {
        let mut pool = self.pool.lock().map_err(|_| NoPorts)?;
        let key = (
            r.session.call_id.to_string(),
            r.session.from_tag.to_string(),
            r.party,
            r.index,
        );
        let port = match pool.pairs.get(&key) {
            Some(p) => *p,
            None => {
                let port = (0..self.capacity as u16)
                    .map(|k| 40000 + 2 * k)
                    .find(|p| !pool.pairs.values().any(|u| u == p))
                    .ok_or(NoPorts)?;
                pool.pairs.insert(key, port);
                port
            }
        };
        let ip = match r.rtp.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::new(203, 0, 113, 5)),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 5)),
        };
        let rtcp = if r.rtcp_mux { port } else { port + 1 };
        Ok(relay::sdp::RelayEndpoint {
            rtp: SocketAddr::new(ip, port),
            rtcp: SocketAddr::new(ip, rtcp),
        })
    }

    fn end_session(&mut self, s: relay::sdp::SessionKey<'_>) {
        if let Ok(mut pool) = self.pool.lock() {
            pool.pairs
                .retain(|k, _| !(k.0 == s.call_id && k.1 == s.from_tag));
        }
    }
}

// ===== TURN =====

/// The TURN server driven by an authenticated [`relay::turn::TurnClient`] (so that the
/// fuzzer gets past MESSAGE-INTEGRITY) and by raw input, over UDP and over a stream
/// (framed with [`relay::turn::stream::Framer`]), with peer datagrams, connection closes
/// and time jumps, in an order the input picks.
///
/// Invariants: nothing panics; every transmit leaves from a listening address towards the
/// client, or from a bound relayed address towards a peer the deny list allows; stream
/// transmits are whole 4-byte-aligned frames the framer accepts; a user never holds more
/// allocations than the quota; after every lifetime has passed no allocation, relayed
/// socket or timer is left.
pub fn turn_server(data: &[u8]) {
    use relay::turn::server::tcp_relay::TRANSPORT_TCP;
    use relay::turn::stream::Framer;
    use relay::turn::{
        ClientAuth, ClientConfig, Command, ConnectionId, Input as TurnInput, PasswordAlgorithm,
        TcpSide, Transport, TurnClient, TurnConfig, TurnServer, attrs, channel,
    };
    let mut inp = Input::new(data);
    let listen: SocketAddr = "203.0.113.1:3478".parse().expect("literal");
    let mut config = TurnConfig::new(listen, listen.ip(), "fuzz").user("alice", "secret");
    config.relay_ports = (50000, 50000 + u16::from(inp.u8() % 8));
    config.quota = Some(2);
    config.legacy_channels = inp.bool();
    // The seed's low bits also pick the RFC 8489 security features the server offers
    // (and the password byte below the client's), so older corpus inputs keep their
    // meaning and reach every authentication path.
    let seed = inp.u32();
    config.seed = u64::from(seed);
    config.password_algorithms = match seed % 4 {
        0 => vec![PasswordAlgorithm::Sha256, PasswordAlgorithm::Md5],
        1 => vec![PasswordAlgorithm::Md5],
        2 => vec![PasswordAlgorithm::Md5, PasswordAlgorithm::Sha256],
        _ => Vec::new(),
    };
    config.username_anonymity = seed & 4 == 0;
    let mut s = TurnServer::new(config).expect("a valid config");
    let transport = if inp.bool() {
        Transport::Tcp
    } else {
        Transport::Udp
    };
    let client: SocketAddr = "198.51.100.10:40000".parse().expect("literal");
    // A second connection of the same client, for RFC 6062 ConnectionBind.
    let client2: SocketAddr = "198.51.100.10:40001".parse().expect("literal");
    let peers: [SocketAddr; 3] = [
        "192.0.2.50:5000".parse().expect("literal"),
        "127.0.0.1:5000".parse().expect("literal"),
        "[::ffff:127.0.0.1]:5000".parse().expect("literal"),
    ];
    let pw = inp.u8();
    let auth = ClientAuth {
        algorithms: if pw & 2 == 0 {
            vec![PasswordAlgorithm::Sha256, PasswordAlgorithm::Md5]
        } else {
            vec![PasswordAlgorithm::Md5]
        },
        userhash: pw & 1 == 0,
    };
    let password = if pw < 240 { "secret" } else { "wrong" };
    let mut c = TurnClient::with_auth(
        ClientConfig {
            server: listen,
            username: "alice".into(),
            password: password.into(),
            seed: 1,
            transport,
        },
        auth.clone(),
    );
    let mut c2 = TurnClient::with_auth(
        ClientConfig {
            server: listen,
            username: "alice".into(),
            password: password.into(),
            seed: 2,
            transport,
        },
        auth,
    );
    // RFC 6062 state as a driver would keep it.
    let mut listeners: Vec<SocketAddr> = Vec::new();
    let mut ids: Vec<ConnectionId> = Vec::new();
    let t0 = epoch();
    let mut now = t0;
    let mut to_server = Framer::new();
    let mut to_client = Framer::new();
    let mut bound: Vec<SocketAddr> = Vec::new();
    let check = |t: &relay::turn::Transmit, bound: &[SocketAddr], s: &TurnServer| {
        if t.from == listen {
            assert!(
                t.to == client || t.to == client2,
                "a response to someone else"
            );
            if t.transport.is_reliable() {
                assert_eq!(t.data.len() % 4, 0, "unpadded stream frame {:02x?}", t.data);
                let mut f = Framer::new();
                f.push(&t.data);
                let frame = f.next_frame().expect("a whole frame").expect("in sync");
                assert!(frame.len() <= t.data.len());
            }
        } else {
            assert!(bound.contains(&t.from), "sent from {} (not bound)", t.from);
            assert_eq!(t.transport, Transport::Udp);
            // Denied peers never, except this server's own relayed addresses.
            assert!(
                !s.deny_list().is_denied(t.to.ip()) || s.relayed_sockets().contains(&t.to),
                "relayed to {}",
                t.to
            );
        }
    };
    for _ in 0..64 {
        if inp.is_empty() {
            break;
        }
        match inp.u8() % 15 {
            0 => c.allocate(now, None, Vec::new()),
            1 => {
                let p = peers[inp.below(peers.len())];
                c.create_permission(now, vec![p]);
            }
            2 => {
                let n = inp.u16();
                let p = peers[inp.below(peers.len())];
                c.channel_bind(now, n, p);
            }
            3 => {
                let p = peers[inp.below(peers.len())];
                let d = inp.bytes(64).to_vec();
                c.send_to(p, &d);
            }
            4 => {
                // Raw bytes from the client's address.
                let d = inp.bytes(512);
                match transport {
                    Transport::Udp => s.handle_input(now, TurnInput::udp(listen, client, d)),
                    Transport::Tcp | Transport::Tls => {
                        let mut f = Framer::new();
                        f.push(d);
                        while let Some(Ok(frame)) = f.next_frame() {
                            s.handle_input(
                                now,
                                TurnInput::Packet {
                                    transport,
                                    local: listen,
                                    remote: client,
                                    data: frame,
                                },
                            );
                        }
                    }
                }
            }
            5 => {
                // A peer datagram on a relayed address (or one never bound).
                let local = bound
                    .first()
                    .copied()
                    .unwrap_or(SocketAddr::new(listen.ip(), 50001));
                let p = peers[inp.below(peers.len())];
                let d = inp.bytes(64);
                s.handle_input(now, TurnInput::udp(local, p, d));
            }
            6 => c.refresh(now, u32::from(inp.u16())),
            7 => s.handle_input(
                now,
                TurnInput::ConnectionClosed {
                    transport: Transport::Tcp,
                    local: listen,
                    remote: client,
                },
            ),
            8 => {
                now += Duration::from_secs(u64::from(inp.u16()));
                s.handle_timeout(now);
                c.handle_timeout(now);
                c2.handle_timeout(now);
            }
            // ===== RFC 6062 =====
            10 => c.allocate(now, None, vec![attrs::requested_transport(TRANSPORT_TCP)]),
            11 => {
                let p = match listeners.first() {
                    Some(l) if inp.bool() => *l,
                    _ => peers[inp.below(peers.len())],
                };
                c.connect(now, p);
            }
            12 => {
                // A driver report about a known (or made-up) connection.
                let id = match ids.len() {
                    0 => ConnectionId(inp.u32()),
                    n => ids[inp.below(n)],
                };
                let side = if inp.bool() {
                    TcpSide::Peer
                } else {
                    TcpSide::Client
                };
                match inp.u8() % 5 {
                    0 => s.handle_input(now, TurnInput::TcpConnected { id }),
                    1 => s.handle_input(now, TurnInput::TcpConnectFailed { id }),
                    2 => s.handle_input(
                        now,
                        TurnInput::TcpData {
                            id,
                            side,
                            data: inp.bytes(64),
                        },
                    ),
                    3 => s.handle_input(now, TurnInput::TcpEof { id, side }),
                    _ => s.handle_input(now, TurnInput::TcpClosed { id, side }),
                }
            }
            13 => {
                // A peer connects to a relayed TCP address (or to no listener).
                let at = listeners
                    .first()
                    .copied()
                    .unwrap_or(SocketAddr::new(listen.ip(), 50002));
                let p = peers[inp.below(peers.len())];
                s.handle_input(
                    now,
                    TurnInput::TcpAccepted {
                        relayed: at,
                        peer: p,
                    },
                );
                if let Some(id) = s.tcp_accepted(at, p) {
                    assert!(listeners.contains(&at), "accepted on {at}, not listening");
                    ids.push(id);
                }
            }
            14 => {
                let id = match ids.len() {
                    0 => ConnectionId(inp.u32()),
                    n => ids[inp.below(n)],
                };
                c2.connection_bind(now, id);
            }
            _ => {
                let n = inp.u16();
                let d = inp.bytes(64).to_vec();
                if let Some(cd) = channel::emit_for(transport, n, &d) {
                    match transport {
                        Transport::Udp => s.handle_input(now, TurnInput::udp(listen, client, &cd)),
                        Transport::Tcp | Transport::Tls => s.handle_input(
                            now,
                            TurnInput::Packet {
                                transport,
                                local: listen,
                                remote: client,
                                data: &cd[..cd.len().min(4 + d.len())],
                            },
                        ),
                    }
                }
            }
        }
        // Move what is queued, both ways, a bounded number of rounds.
        for _ in 0..8 {
            let mut moved = false;
            while let Some(t) = c.poll_transmit() {
                moved = true;
                match transport {
                    Transport::Udp => s.handle_input(now, TurnInput::udp(listen, client, &t.data)),
                    Transport::Tcp | Transport::Tls => {
                        to_server.push(&t.data);
                        while let Some(Ok(frame)) = to_server.next_frame() {
                            s.handle_input(
                                now,
                                TurnInput::Packet {
                                    transport,
                                    local: listen,
                                    remote: client,
                                    data: frame,
                                },
                            );
                        }
                    }
                }
            }
            while let Some(cmd) = s.poll_command() {
                match cmd {
                    Command::BindRelay { relayed } => bound.push(relayed),
                    Command::CloseRelay { relayed } => bound.retain(|b| *b != relayed),
                    Command::Listen { relayed } => {
                        assert!(
                            !listeners.contains(&relayed),
                            "listening twice on {relayed}"
                        );
                        assert!(!bound.contains(&relayed), "{relayed} is also a UDP relay");
                        listeners.push(relayed);
                    }
                    Command::Unlisten { relayed } => {
                        assert!(listeners.contains(&relayed), "unlisten {relayed}");
                        listeners.retain(|l| *l != relayed);
                    }
                    Command::Connect { id, from, to } => {
                        assert!(listeners.contains(&from), "connect from {from}");
                        assert!(
                            !s.deny_list().is_denied(to.ip()) || s.tcp_listeners().contains(&to),
                            "connect to {to}"
                        );
                        ids.push(id);
                    }
                    Command::Bind {
                        server,
                        client: who,
                        ..
                    } => {
                        assert_eq!((server, who), (listen, client2), "bound someone else");
                        assert_eq!(transport, Transport::Tcp, "a bind over UDP");
                    }
                    Command::Send { id, .. } | Command::Shutdown { id, .. } => {
                        assert!(ids.contains(&id), "unknown {id:?}");
                    }
                    Command::Close { id } => {
                        assert!(ids.contains(&id), "closing unknown {id:?}");
                        ids.retain(|i| *i != id);
                    }
                }
            }
            while s.poll_event().is_some() {}
            while let Some(t) = s.poll_transmit() {
                moved = true;
                check(&t, &bound, &s);
                if t.to == client2 {
                    c2.handle_input(now, listen, &t.data);
                } else if t.to == client {
                    match transport {
                        Transport::Udp => c.handle_input(now, listen, &t.data),
                        Transport::Tcp | Transport::Tls => {
                            to_client.push(&t.data);
                            while let Some(Ok(frame)) = to_client.next_frame() {
                                c.handle_input(now, listen, frame);
                            }
                        }
                    }
                }
            }
            while let Some(t) = c2.poll_transmit() {
                moved = true;
                match transport {
                    Transport::Udp => s.handle_input(now, TurnInput::udp(listen, client2, &t.data)),
                    Transport::Tcp | Transport::Tls => s.handle_input(
                        now,
                        TurnInput::Packet {
                            transport,
                            local: listen,
                            remote: client2,
                            data: &t.data,
                        },
                    ),
                }
            }
            while c.poll_event().is_some() {}
            while c2.poll_event().is_some() {}
            if !moved {
                break;
            }
        }
        assert!(s.allocations().len() <= 2, "quota exceeded");
        assert_eq!(s.relayed_sockets(), {
            let mut b = bound.clone();
            b.sort();
            b
        });
    }
    // Every lifetime over: nothing may be left.
    s.handle_timeout(now + Duration::from_secs(7200));
    while s.poll_event().is_some() {}
    assert!(
        s.allocations().is_empty(),
        "allocations outlived their lifetime"
    );
    assert!(s.relayed_sockets().is_empty());
    assert!(s.tcp_listeners().is_empty(), "TCP listeners left");
    assert!(s.tcp_connections().is_empty(), "TCP connections left");
    assert_eq!(s.poll_timeout(), None, "timers left");
}

/// `ng_bencode`: rtpengine "ng" control datagrams and bare bencode
/// (`relay::control::bencode`). Whatever parses re-emits to bencode that parses to the same
/// value and is its own canonical form; an ng datagram re-emits to the same cookie and
/// message. Nothing panics.
pub fn ng_bencode(data: &[u8]) {
    use relay::control::bencode::{Value, emit_ng, parse_ng};
    if let Ok(v) = Value::parse(data) {
        let bytes = v.to_bytes();
        let back = Value::parse(&bytes).expect("emitted bencode parses");
        assert_eq!(back, v, "emit → parse changed the value");
        assert_eq!(back.to_bytes(), bytes, "the emitted form is not canonical");
    }
    if let Ok((cookie, msg)) = parse_ng(data) {
        let out = emit_ng(cookie, &msg);
        let (c2, m2) = parse_ng(&out).expect("emitted ng parses");
        assert_eq!((c2, &m2), (cookie, &msg));
    }
}

/// `ng_command`: datagrams read as typed ng commands and replies
/// (`relay::control::ng`), without and with a shared secret. Whatever decodes to a
/// command or a reply re-encodes (signed or not) to a datagram that decodes to the same
/// typed message; a wrong secret never verifies. Nothing panics.
pub fn ng_command(data: &[u8]) {
    use relay::control::ng::{NgMessage, decode, encode_reply, encode_request};
    const SECRET: &[u8] = b"fuzz-secret";
    for secret in [None, Some(SECRET)] {
        let Ok(r) = decode(data, secret) else {
            continue;
        };
        let Ok(message) = r.message else { continue };
        let bytes = match &message {
            NgMessage::Request(c) => encode_request(&r.cookie, c, Some(SECRET)),
            NgMessage::Reply(rep) => encode_reply(&r.cookie, rep, Some(SECRET)),
        };
        let back = decode(&bytes, Some(SECRET)).expect("an emitted datagram parses");
        assert_eq!(back.cookie, r.cookie);
        assert_eq!(
            back.message.as_ref(),
            Ok(&message),
            "emit → decode changed it"
        );
        assert!(
            decode(&bytes, Some(b"another"))
                .expect("parses")
                .message
                .is_err(),
            "a wrong secret verified"
        );
    }
}

/// `rtp_parse`: the RTP header view (`relay::rtp`). Whatever checks reads every field
/// without panicking; its `Repr` re-emits to bytes that parse to the same `Repr`; the RFC
/// 5761 demultiplexer never panics.
pub fn rtp_parse(data: &[u8]) {
    use relay::rtp::{Packet, Repr, is_rtcp};
    let _ = is_rtcp(data);
    if let Ok(p) = Packet::new_checked(data) {
        assert!(p.header_len() + p.padding_len() <= data.len());
        let _ = (p.marker(), p.sequence_number(), p.timestamp(), p.ssrc());
        let _ = p.extension_header();
        let repr = Repr::parse(&p);
        assert_eq!(repr.payload, p.payload());
        let bytes = repr.to_bytes().expect("a parsed header re-emits");
        let again = Packet::new_checked(&bytes[..]).expect("emitted RTP parses");
        assert_eq!(Repr::parse(&again), repr, "emit → parse changed the header");
    }
}

/// `rtcp_parse`: RTCP compound packets (`relay::rtp::rtcp`). A checked compound walks to
/// its end, its report blocks read in place, and what re-emits parses to the same
/// packets. Nothing panics.
pub fn rtcp_parse(data: &[u8]) {
    use relay::rtp::rtcp::Compound;
    if let Ok(c) = Compound::new_checked(data) {
        let total: usize = c.packets().map(|p| p.total_len()).sum();
        assert_eq!(total, data.len(), "the chain does not cover the datagram");
        for b in c.report_blocks() {
            let _ = b.jitter_ms(8000);
        }
        let reprs = c.reprs();
        // A padded body that is not a multiple of 4 bytes is refused by emit: fine.
        if let Ok(bytes) = Compound::emit(&reprs) {
            let again = Compound::new_checked(&bytes).expect("emitted RTCP parses");
            assert_eq!(again.reprs(), reprs, "emit → parse changed the packets");
        }
    }
}

/// `media_relay`: the media relay core (`relay::media`) driven by the input: offers,
/// answers (with or without rtcp-mux and ICE), deletes, datagrams from the two parties
/// and from a stranger to any relay port, time steps. Nothing panics; the stranger is
/// never a destination under strict latching (it sends no STUN: one that knows the ICE
/// password may move a latch by design); and once every call is deleted, every
/// port is free and every bound socket closed.
pub fn media_relay(data: &[u8]) {
    use relay::media::{Command, MediaRelay, RelayConfig, Role, SignalRequest, Verdict};
    use relay::sdp::Sdp;
    use std::collections::BTreeSet;
    let mut input = Input::new(data);
    let mut config = RelayConfig::new(
        vec![
            IpAddr::V4(Ipv4Addr::new(203, 0, 113, 1)),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        ],
        30000..=30015,
    );
    config.seed = u64::from(input.u8());
    let mut relay = MediaRelay::new(config).expect("valid config");
    let mut now = epoch();
    let mut bound = BTreeSet::new();
    let a_src = SocketAddr::from(([198, 51, 100, 10], 50000));
    let b_src = SocketAddr::from(([198, 51, 100, 20], 60000));
    let stranger = SocketAddr::from(([192, 0, 2, 66], 7777));
    let sdp = |ip: &str, mux: bool, ice: bool| {
        let v = if ip.contains(':') { "IP6" } else { "IP4" };
        let mut s = format!(
            "v=0\r\no=- 1 1 IN {v} {ip}\r\ns=-\r\nc=IN {v} {ip}\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 96\r\na=rtpmap:96 opus/48000/2\r\n"
        );
        if mux {
            s.push_str("a=rtcp-mux\r\n");
        }
        if ice {
            s.push_str("a=ice-ufrag:uf\r\na=ice-pwd:pwpwpwpwpwpwpwpwpwpwpwpw\r\n");
        }
        s
    };
    let mut steps = 0;
    while !input.is_empty() && steps < 200 {
        steps += 1;
        let op = input.u8();
        let call = format!("c{}", op >> 5);
        match op % 6 {
            0 | 1 => {
                let flags = input.u8();
                let role = if op % 6 == 1 {
                    Role::Answer
                } else {
                    Role::Offer
                };
                let (tag_from, tag_to) = if flags & 4 == 0 {
                    ("ta", "tb")
                } else {
                    ("tb", "ta")
                };
                let mut req = SignalRequest::new(
                    &call,
                    tag_from,
                    (role == Role::Answer || flags & 8 != 0).then_some(tag_to),
                    role,
                );
                req.received_from = Some(if (role == Role::Offer) == (flags & 4 == 0) {
                    a_src
                } else {
                    b_src
                });
                let ip = if flags & 16 != 0 {
                    "2001:db8::5"
                } else {
                    "10.0.0.2"
                };
                if let Ok(mut s) = Sdp::parse(sdp(ip, flags & 1 != 0, flags & 2 != 0).as_bytes()) {
                    let _ = relay.signal(now, &req, &mut s);
                }
            }
            2 => {
                relay.delete(now, &call, None);
            }
            3 | 4 => {
                let port = 30000 + u16::from(input.u8() % 16);
                let local = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 1)), port);
                let src = match input.u8() % 3 {
                    0 => a_src,
                    1 => b_src,
                    _ => stranger,
                };
                let len = usize::from(input.u8() % 64);
                let bytes = input.bytes(len);
                // A stranger that knows the ICE password is an endpoint (a verified check
                // moves the latch by design): the stranger sends no STUN.
                if src == stranger && bytes.first().is_some_and(|b| *b < 4) {
                    continue;
                }
                if let Verdict::Forward { to, .. } = relay.handle_packet(now, local, src, bytes) {
                    assert_ne!(to, stranger, "media sent to a stranger");
                }
            }
            _ => {
                now += Duration::from_secs(u64::from(input.u8()));
                relay.handle_timeout(now);
            }
        }
        while let Some(c) = relay.poll_command() {
            match c {
                Command::BindPort(a) => assert!(bound.insert(a), "{a} bound twice"),
                Command::ClosePort(a) => assert!(bound.remove(&a), "{a} closed unbound"),
            }
        }
        while relay.poll_event().is_some() {}
        while relay.poll_notice().is_some() {}
    }
    for call in relay.calls() {
        relay.delete(now, &call, None);
    }
    while let Some(c) = relay.poll_command() {
        if let Command::ClosePort(a) = c {
            bound.remove(&a);
        }
    }
    assert!(bound.is_empty(), "sockets left bound: {bound:?}");
    assert_eq!(relay.free_pairs(), relay.total_pairs(), "ports leaked");
}
