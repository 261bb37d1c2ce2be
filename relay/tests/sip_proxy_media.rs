//! The proxy core with a media relay over ng: whole calls between scripted UAs under
//! virtual time, with an in-memory ng peer (`fuzz/bodies/ng_relay.rs`) over a relay that
//! allocates port pairs from a range and records every call — offers and answers
//! rewritten (INVITE/200, offerless INVITE with the offer in the 200 and the answer in the
//! ACK, re-INVITE hold), sessions released on BYE, CANCEL, failure responses and the
//! dialog timeout, relay refusal answered 503, `when-natted`, the ICE policies, multipart
//! bodies, retransmissions that do not allocate twice; and the asynchronous side: parked
//! messages resumed in order, timeouts (503, or forwarded unchanged), `media-ended`
//! ending the dialog with two BYEs, the shared secret.

use relay::Transmit;
use relay::control::ng::{NgCommand, decode, encode_request};
use relay::sdp::{
    HoldKind, IcePolicy, MediaControl, Party, RelayEndpoint, Role, Sdp, SessionKey, SkipReason,
    StreamOutcome, StreamRequest,
};
use relay::sip::nat::NatTests;
use relay::sip::proxy::*;
use relay::sip::{Flow, Message};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod common;
use common::{Driver, PROXY, addr, udp_flow};
#[path = "../../fuzz/bodies/ng_relay.rs"]
mod ng_relay;
use ng_relay::NgTestRelay;

const RELAY_IP: &str = "203.0.113.5";
/// The relay's ng control address.
const RELAY_NG: &str = "203.0.113.5:2223";

/// One `relay_stream` call as the relay saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Asked {
    call_id: String,
    party: Party,
    role: Role,
    index: usize,
    rtp: SocketAddr,
    hold: Option<HoldKind>,
}

#[derive(Debug, Default)]
struct Log {
    asked: Vec<Asked>,
    released: Vec<(String, String, Option<String>)>,
    /// Live allocations: (call-id, from-tag, party, stream) → endpoint.
    pairs: BTreeMap<(String, String, Party, usize), RelayEndpoint>,
}

/// An in-memory relay: port pairs from `first..first + 2 * capacity`, one per (call,
/// party, stream), the same pair again for a repeated request; freed on `end_session`.
struct MemRelay {
    log: Arc<Mutex<Log>>,
    first: u16,
    capacity: usize,
}

#[derive(Debug, thiserror::Error)]
#[error("no ports left")]
struct NoPorts;

impl MediaControl for MemRelay {
    type Error = NoPorts;
    fn relay_stream(&mut self, r: &StreamRequest<'_>) -> Result<RelayEndpoint, NoPorts> {
        let mut log = self.log.lock().unwrap();
        log.asked.push(Asked {
            call_id: r.session.call_id.to_string(),
            party: r.party,
            role: r.role,
            index: r.index,
            rtp: r.rtp,
            hold: r.hold,
        });
        let key = (
            r.session.call_id.to_string(),
            r.session.from_tag.to_string(),
            r.party,
            r.index,
        );
        if let Some(e) = log.pairs.get(&key) {
            return Ok(*e);
        }
        let used: Vec<u16> = log.pairs.values().map(|e| e.rtp.port()).collect();
        let port = (0..self.capacity)
            .map(|k| self.first + 2 * k as u16)
            .find(|p| !used.contains(p))
            .ok_or(NoPorts)?;
        let ip: IpAddr = RELAY_IP.parse().unwrap();
        let e = RelayEndpoint {
            rtp: SocketAddr::new(ip, port),
            rtcp: SocketAddr::new(ip, if r.rtcp_mux { port } else { port + 1 }),
        };
        log.pairs.insert(key, e);
        Ok(e)
    }

    fn end_session(&mut self, s: SessionKey<'_>) {
        let mut log = self.log.lock().unwrap();
        log.released.push((
            s.call_id.to_string(),
            s.from_tag.to_string(),
            s.to_tag.map(str::to_string),
        ));
        log.pairs
            .retain(|k, _| !(k.0 == s.call_id && k.1 == s.from_tag));
    }
}

#[derive(Clone, Copy)]
struct Ua {
    user: &'static str,
    private: &'static str,
    public: &'static str,
    /// Where it receives media (what its SDP says).
    media: &'static str,
}

const ALICE: Ua = Ua {
    user: "alice",
    private: "192.168.1.10:5060",
    public: "198.51.100.20:40000",
    media: "192.168.1.10",
};
const BOB: Ua = Ua {
    user: "bob",
    private: "10.0.0.20:5062",
    public: "198.51.100.30:50000",
    media: "10.0.0.20",
};
/// A UA on a public address: no NAT test hits on it.
const CAROL: Ua = Ua {
    user: "carol",
    private: "198.51.100.40:5060",
    public: "198.51.100.40:5060",
    media: "198.51.100.40",
};
const DAVE: Ua = Ua {
    user: "dave",
    private: "198.51.100.50:5060",
    public: "198.51.100.50:5060",
    media: "198.51.100.50",
};

impl Ua {
    fn flow(&self) -> Flow {
        udp_flow(self.public)
    }
}

/// How the ng peer behaves.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Peer {
    /// Answers every request at once.
    Answer,
    /// Keeps requests until `release_held` (a slow relay).
    Hold,
    /// Answers nothing (a dead relay).
    Silent,
}

/// The proxy under test ([`Driver`]), its ng peer, and what the relay saw.
struct Net {
    d: Driver,
    log: Arc<Mutex<Log>>,
    relay: NgTestRelay<MemRelay>,
    peer: Peer,
    /// ng datagrams the proxy sent that the peer has not answered (Hold, Silent).
    held: Vec<Transmit>,
    /// Every ng datagram the proxy sent.
    ng_sent: Vec<Transmit>,
}

impl std::ops::Deref for Net {
    type Target = Driver;
    fn deref(&self) -> &Driver {
        &self.d
    }
}

impl std::ops::DerefMut for Net {
    fn deref_mut(&mut self) -> &mut Driver {
        &mut self.d
    }
}

fn media_config(policy: MediaPolicy, ice: IcePolicy, secret: Option<&str>) -> MediaConfig {
    MediaConfig {
        policy,
        ice,
        relay: Some(addr(RELAY_NG)),
        secret: secret.map(str::to_string),
        ..MediaConfig::default()
    }
}

impl Net {
    fn new(policy: MediaPolicy, ice: IcePolicy, capacity: usize) -> Net {
        Net::with(media_config(policy, ice, None), None, capacity)
    }

    /// A proxy with `media`, its peer with `relay_secret`.
    fn with(media: MediaConfig, relay_secret: Option<&str>, capacity: usize) -> Net {
        let mut c = ProxyConfig::new(addr(PROXY));
        c.domains.push("example.com".into());
        c.nat = NatConfig {
            tests: NatTests::ALL,
            fix_contact: true,
            keepalive: None,
        };
        c.media = media;
        c.dialog_timeout = Duration::from_secs(600);
        let log = Arc::new(Mutex::new(Log::default()));
        let mem = MemRelay {
            log: log.clone(),
            first: 40000,
            capacity,
        };
        Net {
            d: Driver::new(Proxy::new(c)),
            log,
            relay: NgTestRelay::new(mem, relay_secret.map(str::as_bytes)),
            peer: Peer::Answer,
            held: Vec::new(),
            ng_sent: Vec::new(),
        }
    }

    /// Hand the proxy's ng datagrams to the peer and its replies back, until quiet.
    fn pump(&mut self) {
        loop {
            let (ng, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.d.out)
                .into_iter()
                .partition(|t| t.to == addr(RELAY_NG));
            self.d.out = rest;
            if ng.is_empty() {
                return;
            }
            for t in ng {
                assert_eq!(t.from, addr(PROXY), "ng goes from the SIP UDP socket");
                self.ng_sent.push(t.clone());
                match self.peer {
                    Peer::Answer => self.answer(&t),
                    Peer::Hold | Peer::Silent => self.held.push(t),
                }
            }
        }
    }

    fn answer(&mut self, t: &Transmit) {
        let now = self.d.now;
        if let Some(reply) = self.relay.serve(now, &t.data) {
            self.d.input_on(udp_flow(RELAY_NG), reply);
        }
    }

    /// Answer what the peer held (in order), and whatever that brings.
    fn release_held(&mut self) {
        for t in std::mem::take(&mut self.held) {
            self.answer(&t);
        }
        self.pump();
    }

    /// The ng commands the proxy sent (first copies: retransmissions repeat a cookie).
    fn ng_commands(&self) -> Vec<NgCommand> {
        let mut seen = Vec::new();
        let mut out = Vec::new();
        for t in &self.ng_sent {
            let r = decode(&t.data, None).unwrap();
            if seen.contains(&r.cookie) {
                continue;
            }
            seen.push(r.cookie);
            if let Ok(relay::control::ng::NgMessage::Request(c)) = r.message {
                out.push(c);
            }
        }
        out
    }

    fn advance(&mut self, d: Duration) {
        self.d.advance(d);
        self.pump();
    }

    fn relay() -> Net {
        Net::new(MediaPolicy::Relay, IcePolicy::Passthrough, 16)
    }

    fn asked(&self) -> Vec<Asked> {
        self.log.lock().unwrap().asked.clone()
    }

    fn released(&self) -> Vec<String> {
        let log = self.log.lock().unwrap();
        log.released.iter().map(|r| r.0.clone()).collect()
    }

    fn live_pairs(&self) -> usize {
        self.log.lock().unwrap().pairs.len()
    }

    /// Send `head` (LF line ends, no Content-Length) with `body` from `ua`.
    fn send(&mut self, ua: Ua, head: &str, body: &str) {
        let body = body.replace('\n', "\r\n");
        let mut text = head.trim_end().replace('\n', "\r\n");
        text.push_str(&format!("\r\nContent-Length: {}\r\n\r\n{body}", body.len()));
        self.input(ua, text.into_bytes());
    }

    fn input(&mut self, ua: Ua, bytes: Vec<u8>) {
        self.input_on(ua.flow(), bytes);
        self.pump();
    }

    /// The messages sent to `ua`, each checked: Content-Length matches the body.
    fn to(&mut self, ua: Ua) -> Vec<Message> {
        self.take_to(addr(ua.public))
    }

    /// The one non-100 message sent to `ua`.
    fn one_to(&mut self, ua: Ua) -> Message {
        let mut v: Vec<Message> = self
            .to(ua)
            .into_iter()
            .filter(|m| m.status() != Some(100))
            .collect();
        assert_eq!(
            v.len(),
            1,
            "{:?}",
            v.iter().map(Message::summary).collect::<Vec<_>>()
        );
        v.remove(0)
    }

    fn register(&mut self, ua: Ua) {
        self.send(
            ua,
            &format!(
                "REGISTER sip:example.com SIP/2.0
Via: SIP/2.0/UDP {p};branch=z9hG4bKreg{u};rport
Max-Forwards: 70
From: <sip:{u}@example.com>;tag=r{u}
To: <sip:{u}@example.com>
Call-ID: reg-{u}
CSeq: 1 REGISTER
Contact: <sip:{u}@{p}>
Expires: 3600",
                p = ua.private,
                u = ua.user,
            ),
            "",
        );
        assert_eq!(self.to(ua)[0].status(), Some(200));
    }

    fn media_events(&self) -> Vec<&ProxyEvent> {
        self.events
            .iter()
            .filter(|e| {
                matches!(
                    e,
                    ProxyEvent::MediaRewritten { .. }
                        | ProxyEvent::MediaFailed { .. }
                        | ProxyEvent::MediaReleased { .. }
                )
            })
            .collect()
    }
}

fn sdp(ua: Ua, port: u16, extra: &str) -> String {
    format!(
        "v=0
o={u} 1 1 IN IP4 {ip}
s=-
c=IN IP4 {ip}
t=0 0
m=audio {port} RTP/AVP 0
{extra}",
        u = ua.user,
        ip = ua.media,
    )
}

fn invite_head(from: Ua, to: Ua, call: &str, branch: &str, ct: &str) -> String {
    format!(
        "INVITE sip:{t}@example.com SIP/2.0
Via: SIP/2.0/UDP {p};branch={branch};rport
Max-Forwards: 70
From: <sip:{u}@example.com>;tag=f{call}
To: <sip:{t}@example.com>
Call-ID: {call}
CSeq: 1 INVITE
Contact: <sip:{u}@{p}>
Content-Type: {ct}",
        p = from.private,
        u = from.user,
        t = to.user,
    )
}

/// The head of the response `code` to `req` (Via, From, To with tag, Call-ID, CSeq,
/// Contact of `ua`), as a UA writes it.
fn response_head(req: &Message, code: u16, reason: &str, ua: Ua, with_sdp: bool) -> String {
    let r = Message::response_to(req, code, reason, Some("totag"));
    let mut head = String::new();
    let text = String::from_utf8(r.to_bytes()).unwrap();
    for l in text.split("\r\n") {
        if l.is_empty() || l.starts_with("Content-Length") {
            continue;
        }
        head.push_str(l);
        head.push('\n');
    }
    head.push_str(&format!("Contact: <sip:{}@{}>\n", ua.user, ua.private));
    if with_sdp {
        head.push_str("Content-Type: application/sdp\n");
    }
    head
}

/// An in-dialog request from `from` to `to` within call `call` (tags f{call} / totag),
/// to `to`'s registered contact through the proxy's Record-Route.
fn in_dialog(method: &str, from: Ua, to: Ua, call: &str, seq: u32, branch: &str) -> String {
    let caller = from.user == "alice";
    let (ft, tt) = if caller {
        (format!("f{call}"), "totag".to_string())
    } else {
        ("totag".to_string(), format!("f{call}"))
    };
    let cseq_method = method;
    format!(
        "{method} sip:{tu}@{tp} SIP/2.0
Via: SIP/2.0/UDP {p};branch={branch};rport
Route: <sip:203.0.113.1;lr>
Max-Forwards: 70
From: <sip:{u}@example.com>;tag={ft}
To: <sip:peer@example.com>;tag={tt}
Call-ID: {call}
CSeq: {seq} {cseq_method}
Contact: <sip:{u}@{p}>",
        p = from.private,
        u = from.user,
        tu = to.user,
        tp = to.private,
    )
}

/// `c=` address and `m=` port of stream 0.
fn endpoint(m: &Message) -> SocketAddr {
    let s = Sdp::parse(m.body()).expect("an SDP body");
    let ip = s.effective_connection(0).unwrap().ip().unwrap();
    SocketAddr::new(ip, s.media()[0].media_line().port)
}

/// Registers alice and bob, alice calls bob with an offer, bob answers 200 with SDP,
/// alice ACKs. Returns the INVITE bob got and the 200 alice got.
fn establish(n: &mut Net, call: &str) -> (Message, Message) {
    n.register(ALICE);
    n.register(BOB);
    n.send(
        ALICE,
        &invite_head(
            ALICE,
            BOB,
            call,
            &format!("z9hG4bK{call}"),
            "application/sdp",
        ),
        &sdp(ALICE, 4000, "a=sendrecv\n"),
    );
    let inv = n.one_to(BOB);
    n.send(
        BOB,
        &response_head(&inv, 200, "OK", BOB, true),
        &sdp(BOB, 5004, ""),
    );
    let ok = n.one_to(ALICE);
    n.send(
        ALICE,
        &in_dialog("ACK", ALICE, BOB, call, 1, &format!("z9hG4bKack{call}")),
        "",
    );
    n.one_to(BOB);
    (inv, ok)
}

#[test]
fn call_offer_and_answer_go_through_the_relay_and_bye_releases() {
    let mut n = Net::relay();
    let (inv, ok) = establish(&mut n, "m1");
    // the offer bob got points at the relay: caller side of stream 0
    assert_eq!(endpoint(&inv), addr("203.0.113.5:40000"));
    assert_eq!(inv.get("Content-Type"), Some("application/sdp"));
    assert!(String::from_utf8_lossy(inv.body()).contains("o=alice 1 1 IN IP4 192.168.1.10"));
    // the answer alice got points at the relay: callee side
    assert_eq!(endpoint(&ok), addr("203.0.113.5:40002"));
    assert_eq!(
        n.asked(),
        [
            Asked {
                call_id: "m1".into(),
                party: Party::Caller,
                role: Role::Offer,
                index: 0,
                rtp: addr("192.168.1.10:4000"),
                hold: None,
            },
            Asked {
                call_id: "m1".into(),
                party: Party::Callee,
                role: Role::Answer,
                index: 0,
                rtp: addr("10.0.0.20:5004"),
                hold: None,
            },
        ]
    );
    assert!(n.events.iter().any(|e| matches!(
        e,
        ProxyEvent::MediaRewritten {
            party: Party::Callee,
            role: Role::Answer,
            status: Some(200),
            repeated: false,
            ..
        }
    )));
    assert_eq!(n.live_pairs(), 2);
    assert_eq!(n.proxy.media_session_count(), 1);

    // BYE from bob: the session is released once, after DialogEnded
    n.send(
        BOB,
        &in_dialog("BYE", BOB, ALICE, "m1", 1, "z9hG4bKbye"),
        "",
    );
    n.one_to(ALICE);
    assert_eq!(n.released(), ["m1"]);
    let log = n.log.lock().unwrap().released.clone();
    assert_eq!(log[0], ("m1".into(), "fm1".into(), Some("totag".into())));
    let ended = n
        .events
        .iter()
        .position(|e| matches!(e, ProxyEvent::DialogEnded { .. }));
    let released = n
        .events
        .iter()
        .position(|e| matches!(e, ProxyEvent::MediaReleased { .. }));
    assert!(ended.unwrap() < released.unwrap());
    assert_eq!(n.live_pairs(), 0);
    assert_eq!(n.proxy.media_session_count(), 0);
}

#[test]
fn retransmissions_do_not_allocate_twice() {
    let mut n = Net::relay();
    n.register(ALICE);
    n.register(BOB);
    let head = invite_head(ALICE, BOB, "rt", "z9hG4bKrt", "application/sdp");
    let body = sdp(ALICE, 4000, "");
    n.send(ALICE, &head, &body);
    let inv = n.one_to(BOB);
    // the INVITE again: absorbed by the server transaction (100 resent), relay not asked
    n.send(ALICE, &head, &body);
    assert_eq!(n.to(BOB).len(), 0);
    assert_eq!(n.asked().len(), 1);
    // 183 with the answer, then the 200 repeating it, then the 200 again (UAS timer G)
    let body_b = sdp(BOB, 5004, "");
    n.send(
        BOB,
        &response_head(&inv, 183, "Session Progress", BOB, true),
        &body_b,
    );
    let p183 = n.one_to(ALICE);
    n.send(BOB, &response_head(&inv, 200, "OK", BOB, true), &body_b);
    let ok1 = n.one_to(ALICE);
    n.send(BOB, &response_head(&inv, 200, "OK", BOB, true), &body_b);
    let ok2 = n.one_to(ALICE);
    assert_eq!(endpoint(&p183), addr("203.0.113.5:40002"));
    assert_eq!(
        ok1.body(),
        ok2.body(),
        "the stateless 2xx is rewritten the same"
    );
    assert_eq!(endpoint(&ok2), addr("203.0.113.5:40002"));
    // 183 and first 200 asked (different statuses), the retransmitted 200 not
    assert_eq!(n.asked().len(), 3);
    assert!(n.events.iter().any(|e| matches!(
        e,
        ProxyEvent::MediaRewritten {
            status: Some(200),
            repeated: true,
            ..
        }
    )));
    assert_eq!(n.live_pairs(), 2, "one pair per party");
}

#[test]
fn reinvite_hold_forms() {
    let mut n = Net::relay();
    establish(&mut n, "h1");
    let before = n.asked().len();
    // music on hold: sendonly is relayed and reported held
    for (seq, extra, c_zero) in [
        (2, "a=sendonly\n", false),
        (3, "a=inactive\n", false),
        (4, "a=sendrecv\n", true),
    ] {
        let mut body = sdp(ALICE, 4000, extra);
        if c_zero {
            body = body.replace("c=IN IP4 192.168.1.10", "c=IN IP4 0.0.0.0");
        }
        let mut head = in_dialog("INVITE", ALICE, BOB, "h1", seq, &format!("z9hG4bKre{seq}"));
        head.push_str("\nContent-Type: application/sdp");
        n.send(ALICE, &head, &body);
        let re = n.one_to(BOB);
        let s = Sdp::parse(re.body()).unwrap();
        let report = n
            .events
            .iter()
            .rev()
            .find_map(|e| match e {
                ProxyEvent::MediaRewritten {
                    report,
                    role: Role::Offer,
                    ..
                } => Some(report.clone()),
                _ => None,
            })
            .unwrap();
        assert_eq!(report.held(), [0]);
        match seq {
            2 => {
                assert_eq!(
                    endpoint(&re),
                    addr("203.0.113.5:40000"),
                    "same pair as before"
                );
                assert_eq!(s.hold(0), Some(HoldKind::SendOnly));
                assert!(matches!(
                    report.streams[0],
                    StreamOutcome::Relayed {
                        hold: Some(HoldKind::SendOnly),
                        ..
                    }
                ));
            }
            3 => {
                // nothing to relay: the stream is left as the endpoint wrote it
                assert_eq!(endpoint(&re), addr("192.168.1.10:4000"));
                assert!(matches!(
                    report.streams[0],
                    StreamOutcome::Skipped {
                        reason: SkipReason::Held(HoldKind::Inactive),
                        ..
                    }
                ));
            }
            _ => {
                assert_eq!(endpoint(&re), addr("0.0.0.0:4000"));
                assert!(matches!(
                    report.streams[0],
                    StreamOutcome::Skipped {
                        reason: SkipReason::Held(HoldKind::UnspecifiedAddress),
                        ..
                    }
                ));
            }
        }
        n.send(
            BOB,
            &response_head(&re, 200, "OK", BOB, true),
            &sdp(BOB, 5004, "a=recvonly\n"),
        );
        assert_eq!(endpoint(&n.one_to(ALICE)), addr("203.0.113.5:40002"));
    }
    let asked = n.asked();
    let offers: Vec<_> = asked[before..]
        .iter()
        .filter(|a| a.role == Role::Offer)
        .collect();
    assert_eq!(
        offers.len(),
        1,
        "only the sendonly offer carries media to relay"
    );
    assert_eq!(offers[0].hold, Some(HoldKind::SendOnly));
    assert_eq!(n.live_pairs(), 2);
}

#[test]
fn offerless_invite_offer_in_200_answer_in_ack() {
    let mut n = Net::relay();
    n.register(ALICE);
    n.register(BOB);
    n.send(
        ALICE,
        &invite_head(ALICE, BOB, "ol", "z9hG4bKol", "application/sdp"),
        "",
    );
    let inv = n.one_to(BOB);
    assert!(inv.body().is_empty());
    assert!(n.asked().is_empty());
    n.send(
        BOB,
        &response_head(&inv, 200, "OK", BOB, true),
        &sdp(BOB, 5004, ""),
    );
    let ok = n.one_to(ALICE);
    assert_eq!(endpoint(&ok), addr("203.0.113.5:40000"));
    let mut ack = in_dialog("ACK", ALICE, BOB, "ol", 1, "z9hG4bKolack");
    ack.push_str("\nContent-Type: application/sdp");
    n.send(ALICE, &ack, &sdp(ALICE, 4000, ""));
    let ack_out = n.one_to(BOB);
    assert_eq!(endpoint(&ack_out), addr("203.0.113.5:40002"));
    let roles: Vec<_> = n.asked().iter().map(|a| (a.party, a.role)).collect();
    assert_eq!(
        roles,
        [(Party::Callee, Role::Offer), (Party::Caller, Role::Answer)]
    );
    // the 200 and the ACK again (alice's ACK answers each 2xx retransmission)
    n.send(
        BOB,
        &response_head(&inv, 200, "OK", BOB, true),
        &sdp(BOB, 5004, ""),
    );
    assert_eq!(n.one_to(ALICE).body(), ok.body());
    n.send(ALICE, &ack, &sdp(ALICE, 4000, ""));
    assert_eq!(n.one_to(BOB).body(), ack_out.body());
    assert_eq!(n.asked().len(), 2, "retransmissions reuse the rewrite");
}

#[test]
fn cancel_and_failure_release_the_session() {
    let mut n = Net::relay();
    n.register(ALICE);
    n.register(BOB);
    // CANCEL: bob answers 487, the session goes
    let head = invite_head(ALICE, BOB, "cx", "z9hG4bKcx", "application/sdp");
    n.send(ALICE, &head, &sdp(ALICE, 4000, ""));
    let inv = n.one_to(BOB);
    n.send(BOB, &response_head(&inv, 180, "Ringing", BOB, false), "");
    n.one_to(ALICE);
    let cancel = head
        .replace("INVITE sip:bob", "CANCEL sip:bob")
        .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL")
        .replace("\nContent-Type: application/sdp", "");
    n.send(ALICE, &cancel, "");
    let c = n.one_to(BOB);
    assert_eq!(c.method().unwrap().as_str(), "CANCEL");
    n.send(BOB, &response_head(&c, 200, "OK", BOB, false), "");
    n.send(
        BOB,
        &response_head(&inv, 487, "Request Terminated", BOB, false),
        "",
    );
    let acks = n.to(BOB);
    assert_eq!(
        acks[0].method().unwrap().as_str(),
        "ACK",
        "the 487 is ACKed hop by hop"
    );
    assert_eq!(n.released(), ["cx"]);
    assert_eq!(n.live_pairs(), 0);

    // 486 Busy Here
    n.send(
        ALICE,
        &invite_head(ALICE, BOB, "busy", "z9hG4bKbusy", "application/sdp"),
        &sdp(ALICE, 4000, ""),
    );
    let inv = n.one_to(BOB);
    assert_eq!(n.live_pairs(), 1);
    n.send(BOB, &response_head(&inv, 486, "Busy Here", BOB, false), "");
    assert_eq!(n.released(), ["cx", "busy"]);
    assert_eq!(n.live_pairs(), 0);
    assert_eq!(n.proxy.media_session_count(), 0);
}

#[test]
fn dialog_timeout_releases_the_session() {
    let mut n = Net::relay();
    establish(&mut n, "to");
    n.advance(Duration::from_secs(599));
    assert!(n.released().is_empty());
    n.advance(Duration::from_secs(2));
    assert!(n.events.iter().any(|e| matches!(
        e,
        ProxyEvent::DialogEnded {
            reason: DialogEndReason::Timeout,
            ..
        }
    )));
    assert_eq!(n.released(), ["to"]);
    assert_eq!(n.proxy.media_session_count(), 0);
}

#[test]
fn relay_refusal_answers_503_and_forwards_nothing() {
    // room for one stream: a two-stream offer is refused at the second
    let mut n = Net::new(MediaPolicy::Relay, IcePolicy::Passthrough, 1);
    n.register(ALICE);
    n.register(BOB);
    let two = sdp(ALICE, 4000, "m=video 4002 RTP/AVP 96\n");
    n.send(
        ALICE,
        &invite_head(ALICE, BOB, "full", "z9hG4bKfull", "application/sdp"),
        &two,
    );
    assert!(n.to(BOB).is_empty(), "nothing forwarded");
    let r = n.one_to(ALICE);
    assert_eq!(r.status(), Some(503));
    assert!(n.events.iter().any(|e| matches!(
        e,
        ProxyEvent::MediaFailed { status: Some(503), party: Party::Caller, why, .. } if why.contains("no ports left")
    )));
    assert_eq!(
        n.released(),
        ["full"],
        "the stream allocated before the refusal is freed"
    );
    assert_eq!(n.live_pairs(), 0);
    assert_eq!(n.proxy.dialog_count(), 0);
    assert_eq!(n.proxy.media_session_count(), 0);
    // the caller ACKs the 503 hop by hop; nothing else happens
    let ack = invite_head(ALICE, BOB, "full", "z9hG4bKfull", "application/sdp")
        .replace("INVITE sip:bob", "ACK sip:bob")
        .replace("CSeq: 1 INVITE", "CSeq: 1 ACK")
        .replace(
            "To: <sip:bob@example.com>",
            &format!("To: {}", r.get("To").unwrap()),
        );
    n.send(ALICE, &ack, "");
    assert!(n.to(BOB).is_empty());

    // an SDP the parser refuses: 488
    n.send(
        ALICE,
        &invite_head(ALICE, BOB, "bad", "z9hG4bKbad", "application/sdp"),
        "not sdp\n",
    );
    assert!(n.to(BOB).is_empty());
    assert_eq!(n.one_to(ALICE).status(), Some(488));
}

#[test]
fn when_natted_relays_only_calls_with_a_natted_party() {
    let mut n = Net::new(MediaPolicy::WhenNatted, IcePolicy::Passthrough, 16);
    n.register(CAROL);
    n.register(DAVE);
    n.register(ALICE);
    // public to public: SDP untouched, relay never asked
    let body = sdp(CAROL, 4000, "");
    n.send(
        CAROL,
        &invite_head(CAROL, DAVE, "pub", "z9hG4bKpub", "application/sdp"),
        &body,
    );
    let inv = n.one_to(DAVE);
    assert_eq!(inv.body(), body.replace('\n', "\r\n").as_bytes());
    n.send(
        DAVE,
        &response_head(&inv, 200, "OK", DAVE, true),
        &sdp(DAVE, 5000, ""),
    );
    assert_eq!(endpoint(&n.one_to(CAROL)), addr("198.51.100.50:5000"));
    assert!(n.asked().is_empty());
    // public caller to a NATed callee (its binding is NATed): relayed
    n.send(
        CAROL,
        &invite_head(CAROL, ALICE, "tonat", "z9hG4bKtonat", "application/sdp"),
        &body,
    );
    assert_eq!(endpoint(&n.one_to(ALICE)), addr("203.0.113.5:40000"));
    // NATed caller to a public callee: relayed
    n.send(
        ALICE,
        &invite_head(ALICE, DAVE, "fromnat", "z9hG4bKfromnat", "application/sdp"),
        &sdp(ALICE, 4000, ""),
    );
    let inv = n.one_to(DAVE);
    assert_eq!(endpoint(&inv), addr("203.0.113.5:40002"));
    n.send(
        DAVE,
        &response_head(&inv, 200, "OK", DAVE, true),
        &sdp(DAVE, 5000, ""),
    );
    assert_eq!(endpoint(&n.one_to(ALICE)), addr("203.0.113.5:40004"));
    assert_eq!(n.asked().len(), 3);
}

#[test]
fn never_leaves_sdp_alone() {
    let mut n = Net::new(MediaPolicy::Never, IcePolicy::Strip, 16);
    let (inv, ok) = establish(&mut n, "nv");
    assert_eq!(endpoint(&inv), addr("192.168.1.10:4000"));
    assert_eq!(endpoint(&ok), addr("10.0.0.20:5004"));
    assert!(n.asked().is_empty());
    assert!(n.media_events().is_empty());
    assert_eq!(n.proxy.media_session_count(), 0);
}

const ICE: &str = "a=ice-ufrag:F7gI
a=ice-pwd:x9cml/YzichV2+XlhiMu8g
a=candidate:1 1 UDP 2130706431 192.168.1.10 4000 typ host
a=candidate:1 2 UDP 2130706430 192.168.1.10 4001 typ host
";

#[test]
fn ice_policies() {
    for ice in [
        IcePolicy::AddRelayCandidate,
        IcePolicy::Strip,
        IcePolicy::Passthrough,
    ] {
        let mut n = Net::new(MediaPolicy::Relay, ice, 16);
        n.register(ALICE);
        n.register(BOB);
        n.send(
            ALICE,
            &invite_head(ALICE, BOB, "ice", "z9hG4bKice", "application/sdp"),
            &sdp(ALICE, 4000, ICE),
        );
        let inv = n.one_to(BOB);
        let text = String::from_utf8(inv.body().to_vec()).unwrap();
        assert_eq!(endpoint(&inv), addr("203.0.113.5:40000"), "{ice:?}");
        match ice {
            IcePolicy::AddRelayCandidate => {
                assert!(
                    text.contains(
                        " 1 UDP 16777215 203.0.113.5 40000 typ relay raddr 192.168.1.10 rport 4000"
                    ),
                    "{text}"
                );
                assert!(
                    text.contains(
                        " 2 UDP 16777214 203.0.113.5 40001 typ relay raddr 192.168.1.10 rport 4001"
                    ),
                    "{text}"
                );
                assert!(text.contains("typ host"));
            }
            IcePolicy::Strip => {
                assert!(
                    !text.contains("a=candidate") && !text.contains("a=ice-"),
                    "{text}"
                );
            }
            IcePolicy::Passthrough => {
                assert!(text.contains("a=candidate:1 1 UDP 2130706431 192.168.1.10 4000 typ host"));
                assert!(!text.contains("typ relay"));
            }
        }
    }
}

#[test]
fn multipart_body_only_the_sdp_part_changes() {
    let mut n = Net::relay();
    n.register(ALICE);
    n.register(BOB);
    let sdp_part = sdp(ALICE, 4000, "");
    let body = format!(
        "--xyz\nContent-Type: application/isup;version=itu-t92+\n\nISUP 192.168.1.10\n--xyz\nContent-Type: application/sdp\n\n{sdp_part}\n--xyz--\n"
    );
    n.send(
        ALICE,
        &invite_head(
            ALICE,
            BOB,
            "mp",
            "z9hG4bKmp",
            "multipart/mixed;boundary=xyz",
        ),
        &body,
    );
    let inv = n.one_to(BOB);
    let text = String::from_utf8(inv.body().to_vec()).unwrap();
    let expected = body
        .replace('\n', "\r\n")
        .replace("c=IN IP4 192.168.1.10", "c=IN IP4 203.0.113.5")
        .replace("m=audio 4000", "m=audio 40000");
    assert_eq!(text, expected);
    assert!(text.contains("ISUP 192.168.1.10"), "other parts untouched");
    // a body in a type the proxy does not read passes unchanged
    let mut n = Net::relay();
    n.register(ALICE);
    n.register(BOB);
    n.send(
        ALICE,
        &invite_head(ALICE, BOB, "tx", "z9hG4bKtx", "text/plain"),
        &sdp_part,
    );
    assert_eq!(
        n.one_to(BOB).body(),
        sdp_part.replace('\n', "\r\n").as_bytes()
    );
    assert!(n.asked().is_empty());
}

#[test]
fn offer_in_reliable_183_answer_in_prack_then_update() {
    let mut n = Net::relay();
    n.register(ALICE);
    n.register(BOB);
    n.send(
        ALICE,
        &invite_head(ALICE, BOB, "pr", "z9hG4bKpr", "application/sdp"),
        "",
    );
    let inv = n.one_to(BOB);
    // a reliable 183 (RFC 3262) with the offer
    let mut head = response_head(&inv, 183, "Session Progress", BOB, true);
    head.push_str("Require: 100rel\nRSeq: 1\n");
    n.send(BOB, &head, &sdp(BOB, 5004, ""));
    assert_eq!(endpoint(&n.one_to(ALICE)), addr("203.0.113.5:40000"));
    // the PRACK answers it
    let mut prack = in_dialog("PRACK", ALICE, BOB, "pr", 2, "z9hG4bKprack");
    prack.push_str("\nRAck: 1 1 INVITE\nContent-Type: application/sdp");
    n.send(ALICE, &prack, &sdp(ALICE, 4000, ""));
    let prack_out = n.one_to(BOB);
    assert_eq!(endpoint(&prack_out), addr("203.0.113.5:40002"));
    n.send(BOB, &response_head(&prack_out, 200, "OK", BOB, false), "");
    assert_eq!(n.one_to(ALICE).status(), Some(200));
    // an UPDATE from the callee (RFC 3311) with a new offer, answered in its 200
    let mut update = in_dialog("UPDATE", BOB, ALICE, "pr", 3, "z9hG4bKupd");
    update.push_str("\nContent-Type: application/sdp");
    n.send(BOB, &update, &sdp(BOB, 6000, ""));
    let upd = n.one_to(ALICE);
    assert_eq!(
        endpoint(&upd),
        addr("203.0.113.5:40000"),
        "the callee's pair again"
    );
    n.send(
        ALICE,
        &response_head(&upd, 200, "OK", ALICE, true),
        &sdp(ALICE, 4000, ""),
    );
    assert_eq!(endpoint(&n.one_to(BOB)), addr("203.0.113.5:40002"));
    let seen: Vec<_> = n.asked().iter().map(|a| (a.party, a.role, a.rtp)).collect();
    assert_eq!(
        seen,
        [
            (Party::Callee, Role::Offer, addr("10.0.0.20:5004")),
            (Party::Caller, Role::Answer, addr("192.168.1.10:4000")),
            (Party::Callee, Role::Offer, addr("10.0.0.20:6000")),
            (Party::Caller, Role::Answer, addr("192.168.1.10:4000")),
        ]
    );
}

#[test]
fn a_proxy_without_a_relay_never_touches_sdp() {
    let mut c = ProxyConfig::new(addr(PROXY));
    c.domains.push("example.com".into());
    c.nat.tests = NatTests::ALL;
    c.media = MediaConfig {
        policy: MediaPolicy::Relay,
        ice: IcePolicy::Strip,
        relay: None,
        ..MediaConfig::default()
    };
    let mut n = Net::relay();
    n.proxy = Proxy::new(c);
    let (inv, ok) = establish(&mut n, "plain");
    assert_eq!(endpoint(&inv), addr("192.168.1.10:4000"));
    assert_eq!(endpoint(&ok), addr("10.0.0.20:5004"));
    assert!(n.media_events().is_empty());
}

// ===== asynchronous control =====

/// The ng offer or answer of `c`, if it is one.
fn offer_answer(c: &NgCommand) -> Option<(&'static str, &relay::control::ng::OfferAnswer)> {
    match c {
        NgCommand::Offer(o) => Some(("offer", o)),
        NgCommand::Answer(a) => Some(("answer", a)),
        _ => None,
    }
}

#[test]
fn a_parked_invite_resumes_when_the_relay_answers() {
    let mut n = Net::relay();
    n.register(ALICE);
    n.register(BOB);
    n.peer = Peer::Hold;
    n.send(
        ALICE,
        &invite_head(ALICE, BOB, "pk", "z9hG4bKpk", "application/sdp"),
        &sdp(ALICE, 4000, ""),
    );
    // 100 Trying at once, nothing to bob while the relay thinks
    assert_eq!(n.to(ALICE)[0].status(), Some(100));
    assert!(n.to(BOB).is_empty());
    assert_eq!(n.proxy.parked_count(), 1);
    assert_eq!(
        n.proxy.dialog_count(),
        0,
        "the dialog starts when it is forwarded"
    );
    // what the relay was told: rtpengine's keys and pinhole's source port, user agent
    let cmds = n.ng_commands();
    let (kind, o) = offer_answer(&cmds[0]).unwrap();
    assert_eq!(kind, "offer");
    assert_eq!((o.call_id.as_str(), o.from_tag.as_str()), ("pk", "fpk"));
    assert_eq!(o.to_tag, None);
    assert_eq!(o.received_from, Some(addr(ALICE.public).ip()));
    assert_eq!(o.received_from_port, Some(addr(ALICE.public).port()));
    assert_eq!(o.ice, None, "passthrough sends no ICE key");
    assert!(o.sdp.starts_with(b"v=0\r\no=alice"));
    // the INVITE is retransmitted meanwhile: absorbed, 100 again
    n.send(
        ALICE,
        &invite_head(ALICE, BOB, "pk", "z9hG4bKpk", "application/sdp"),
        &sdp(ALICE, 4000, ""),
    );
    assert!(n.to(BOB).is_empty());
    n.release_held();
    let inv = n.one_to(BOB);
    assert_eq!(endpoint(&inv), addr("203.0.113.5:40000"));
    assert!(
        inv.get("Record-Route").is_some(),
        "forwarded as before parking"
    );
    assert_eq!(n.proxy.parked_count(), 0);
    assert_eq!(n.proxy.dialog_count(), 1);
    // the answer, with the tags the rtpengine way: from-tag the offerer's
    n.peer = Peer::Answer;
    n.send(
        BOB,
        &response_head(&inv, 200, "OK", BOB, true),
        &sdp(BOB, 5004, ""),
    );
    assert_eq!(endpoint(&n.one_to(ALICE)), addr("203.0.113.5:40002"));
    let cmds = n.ng_commands();
    let (kind, a) = offer_answer(&cmds[1]).unwrap();
    assert_eq!(kind, "answer");
    assert_eq!(a.from_tag, "fpk");
    assert_eq!(a.to_tag.as_deref(), Some("totag"));
    assert_eq!(a.received_from, Some(addr(BOB.public).ip()));
}

#[test]
fn messages_of_a_call_keep_their_order_behind_a_parked_one() {
    let mut n = Net::relay();
    n.register(ALICE);
    n.register(BOB);
    n.send(
        ALICE,
        &invite_head(ALICE, BOB, "ord", "z9hG4bKord", "application/sdp"),
        &sdp(ALICE, 4000, ""),
    );
    let inv = n.one_to(BOB);
    n.to(ALICE); // the 100 Trying
    n.peer = Peer::Hold;
    // 183 with the answer (parked), then 180 without SDP and the 200 with the same answer
    let body_b = sdp(BOB, 5004, "");
    n.send(
        BOB,
        &response_head(&inv, 183, "Session Progress", BOB, true),
        &body_b,
    );
    n.send(BOB, &response_head(&inv, 180, "Ringing", BOB, false), "");
    n.send(BOB, &response_head(&inv, 200, "OK", BOB, true), &body_b);
    assert!(n.to(ALICE).is_empty(), "nothing overtakes the parked 183");
    assert_eq!(n.proxy.parked_count(), 3);
    assert_eq!(n.held.len(), 1, "one question at a time per call");
    // the 183's answer comes: 183 and 180 go; the 200 (another status) asks in turn
    n.release_held();
    let got: Vec<u16> = n.to(ALICE).iter().filter_map(Message::status).collect();
    assert_eq!(got, [183, 180]);
    assert_eq!(n.proxy.parked_count(), 1);
    n.release_held();
    let ok = n.one_to(ALICE);
    assert_eq!(ok.status(), Some(200));
    assert_eq!(endpoint(&ok), addr("203.0.113.5:40002"));
    assert_eq!(n.proxy.parked_count(), 0);
    assert_eq!(n.proxy.dialog_count(), 1);
}

#[test]
fn no_reply_to_an_offer_answers_503_and_deletes() {
    let mut n = Net::relay();
    n.register(ALICE);
    n.register(BOB);
    n.peer = Peer::Silent;
    n.send(
        ALICE,
        &invite_head(ALICE, BOB, "dead", "z9hG4bKdead", "application/sdp"),
        &sdp(ALICE, 4000, ""),
    );
    n.to(ALICE);
    n.advance(Duration::from_millis(1999));
    assert!(n.to(ALICE).is_empty());
    // retransmitted at 500 ms and 1.5 s, with the same cookie
    assert_eq!(n.held.len(), 3);
    assert!(n.held.iter().all(|t| t.data == n.held[0].data));
    n.advance(Duration::from_millis(1));
    let r = n.one_to(ALICE);
    assert_eq!(r.status(), Some(503));
    assert!(n.to(BOB).is_empty(), "nothing forwarded");
    assert!(n.events.iter().any(|e| matches!(
        e,
        ProxyEvent::MediaFailed { status: Some(503), party: Party::Caller, why, .. } if why.contains("no reply")
    )));
    // the relay may have created the session: it is deleted
    let cmds = n.ng_commands();
    assert!(matches!(cmds.last(), Some(NgCommand::Delete(d)) if d.call_id == "dead"));
    assert_eq!(n.proxy.media_session_count(), 0);
    assert_eq!(n.proxy.dialog_count(), 0);
    assert_eq!(n.proxy.parked_count(), 0);
}

#[test]
fn no_reply_to_an_answer_forwards_it_unchanged() {
    let mut n = Net::relay();
    n.register(ALICE);
    n.register(BOB);
    n.send(
        ALICE,
        &invite_head(ALICE, BOB, "ans", "z9hG4bKans", "application/sdp"),
        &sdp(ALICE, 4000, ""),
    );
    let inv = n.one_to(BOB);
    n.to(ALICE); // the 100 Trying
    n.peer = Peer::Silent;
    n.send(
        BOB,
        &response_head(&inv, 200, "OK", BOB, true),
        &sdp(BOB, 5004, ""),
    );
    assert!(n.to(ALICE).is_empty());
    n.advance(Duration::from_secs(2));
    let ok = n.one_to(ALICE);
    assert_eq!(ok.status(), Some(200));
    assert_eq!(endpoint(&ok), addr("10.0.0.20:5004"), "as bob wrote it");
    assert!(n.events.iter().any(|e| matches!(
        e,
        ProxyEvent::MediaFailed {
            status: None,
            party: Party::Callee,
            ..
        }
    )));
    assert_eq!(n.proxy.dialog_count(), 1, "the call goes on");
}

#[test]
fn media_ended_ends_the_dialog_with_two_byes() {
    let mut n = Net::relay();
    establish(&mut n, "me");
    // bob sent a request in the dialog before: the BYE to alice goes above its CSeq
    n.send(
        BOB,
        &in_dialog("INFO", BOB, ALICE, "me", 7, "z9hG4bKinfo"),
        "",
    );
    let info = n.one_to(ALICE);
    n.send(ALICE, &response_head(&info, 200, "OK", ALICE, false), "");
    n.one_to(BOB);
    let before = n.ng_commands().len();
    let notice = encode_request(
        b"relay_1",
        &NgCommand::MediaEnded {
            call_id: "me".into(),
            from_tag: "fme".into(),
            reason: "idle-timeout".into(),
        },
        None,
    );
    n.d.input_on(udp_flow(RELAY_NG), notice.clone());
    // the relay gets ok
    let (to_relay, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut n.d.out)
        .into_iter()
        .partition(|t| t.to == addr(RELAY_NG));
    n.d.out = rest;
    let reply = decode(&to_relay[0].data, None).unwrap();
    assert_eq!(reply.cookie, b"relay_1");
    assert_eq!(
        reply.message,
        Ok(relay::control::ng::NgMessage::Reply(
            relay::control::ng::NgReply::ok()
        ))
    );
    let bye_bob = n.one_to(BOB);
    let bye_alice = n.one_to(ALICE);
    for (bye, ua, from_tag, to_tag, seq) in [
        (&bye_bob, BOB, "fme", "totag", 2),
        (&bye_alice, ALICE, "totag", "fme", 8),
    ] {
        assert_eq!(bye.method().unwrap().as_str(), "BYE");
        assert_eq!(
            bye.request_uri().unwrap().to_string(),
            format!("sip:{}@{}", ua.user, ua.private),
            "the UA's own Contact"
        );
        assert_eq!(bye.call_id().unwrap(), "me");
        assert_eq!(bye.from().unwrap().tag(), Some(from_tag));
        assert_eq!(bye.to().unwrap().tag(), Some(to_tag));
        assert_eq!(bye.cseq().unwrap().seq, seq);
        assert_eq!(bye.cseq().unwrap().method, "BYE");
        assert!(bye.get("Route").is_none(), "no proxy but us on the path");
    }
    assert!(n.events.iter().any(|e| matches!(
        e,
        ProxyEvent::DialogEnded { reason: DialogEndReason::MediaEnded { reason }, .. } if reason == "idle-timeout"
    )));
    assert_eq!(n.proxy.dialog_count(), 0);
    assert_eq!(n.proxy.media_session_count(), 0);
    assert_eq!(
        n.ng_commands().len(),
        before,
        "no delete: the relay ended it"
    );
    // the 200s are absorbed
    n.send(BOB, &response_head(&bye_bob, 200, "OK", BOB, false), "");
    n.send(
        ALICE,
        &response_head(&bye_alice, 200, "OK", ALICE, false),
        "",
    );
    assert!(n.to(ALICE).is_empty() && n.to(BOB).is_empty());
    // the relay repeats its notice: ok again, nothing else
    n.d.input_on(udp_flow(RELAY_NG), notice);
    assert_eq!(n.d.out.len(), 1);
    assert_eq!(n.d.out[0].to, addr(RELAY_NG));
    n.advance(Duration::from_secs(40));
    assert_eq!(n.proxy.transaction_count(), (0, 0));
}

#[test]
fn a_shared_secret_signs_both_ways() {
    let media = media_config(MediaPolicy::Relay, IcePolicy::Strip, Some("k3y"));
    let mut n = Net::with(media, Some("k3y"), 16);
    let (inv, ok) = establish(&mut n, "sec");
    assert_eq!(endpoint(&inv), addr("203.0.113.5:40000"));
    assert_eq!(endpoint(&ok), addr("203.0.113.5:40002"));
    for t in &n.ng_sent {
        let r = decode(&t.data, Some(b"k3y")).unwrap();
        assert!(r.message.is_ok(), "signed with the secret");
    }
    let cmds = n.ng_commands();
    assert!(
        matches!(offer_answer(&cmds[0]), Some((_, o)) if o.ice == Some(relay::control::ng::Ice::Remove))
    );
}

#[test]
fn a_wrong_secret_answers_503() {
    let media = media_config(MediaPolicy::Relay, IcePolicy::Passthrough, Some("mine"));
    let mut n = Net::with(media, Some("theirs"), 16);
    n.register(ALICE);
    n.register(BOB);
    n.send(
        ALICE,
        &invite_head(ALICE, BOB, "ws", "z9hG4bKws", "application/sdp"),
        &sdp(ALICE, 4000, ""),
    );
    // the relay refuses (authentication failed) in a reply the proxy cannot verify
    assert!(n.to(BOB).is_empty());
    n.advance(Duration::from_secs(2));
    assert_eq!(n.one_to(ALICE).status(), Some(503));
    assert!(n.to(BOB).is_empty());
    assert!(
        n.log.lock().unwrap().asked.is_empty(),
        "the relay did nothing"
    );
}

#[test]
fn a_cancel_for_a_parked_invite() {
    let mut n = Net::relay();
    n.register(ALICE);
    n.register(BOB);
    n.peer = Peer::Hold;
    let head = invite_head(ALICE, BOB, "cp", "z9hG4bKcp", "application/sdp");
    n.send(ALICE, &head, &sdp(ALICE, 4000, ""));
    n.to(ALICE);
    let cancel = head
        .replace("INVITE sip:bob", "CANCEL sip:bob")
        .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL")
        .replace("\nContent-Type: application/sdp", "");
    n.send(ALICE, &cancel, "");
    let got: Vec<u16> = n.to(ALICE).iter().filter_map(Message::status).collect();
    assert_eq!(got, [200, 487]);
    assert_eq!(n.proxy.parked_count(), 0);
    // the late reply changes nothing; the session is deleted
    n.release_held();
    assert!(n.to(BOB).is_empty());
    assert!(matches!(n.ng_commands().last(), Some(NgCommand::Delete(_))));
    assert_eq!(n.proxy.media_session_count(), 0);
}

#[test]
fn media_ended_bye_follows_the_route_set_to_a_proxy_beyond_us() {
    let mut n = Net::relay();
    n.register(ALICE);
    n.register(BOB);
    n.send(
        ALICE,
        &invite_head(ALICE, BOB, "rs", "z9hG4bKrs", "application/sdp"),
        &sdp(ALICE, 4000, ""),
    );
    let inv = n.one_to(BOB);
    // a proxy between us and bob record-routed too (it sits before us in the list)
    let mut head = response_head(&inv, 200, "OK", BOB, true);
    head.push_str("Record-Route: <sip:198.51.100.99;lr>, <sip:203.0.113.1;lr>\n");
    n.send(BOB, &head, &sdp(BOB, 5004, ""));
    n.one_to(ALICE);
    let notice = encode_request(
        b"relay_9",
        &NgCommand::MediaEnded {
            call_id: "rs".into(),
            from_tag: "frs".into(),
            reason: "idle-timeout".into(),
        },
        None,
    );
    n.d.input_on(udp_flow(RELAY_NG), notice);
    let via_proxy = n.take_to(addr("198.51.100.99:5060"));
    assert_eq!(via_proxy.len(), 1);
    let bye = &via_proxy[0];
    assert_eq!(bye.method().unwrap().as_str(), "BYE");
    assert_eq!(bye.get("Route"), Some("<sip:198.51.100.99;lr>"));
    assert_eq!(
        bye.request_uri().unwrap().to_string(),
        format!("sip:bob@{}", BOB.private)
    );
    let to_alice = n.one_to(ALICE);
    assert!(to_alice.get("Route").is_none());
}
