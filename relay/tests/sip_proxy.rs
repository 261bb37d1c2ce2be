//! The proxy core driven by scripted UAs under virtual time: registration behind NATs,
//! calls with Record-Route, re-INVITE, BYE from either side, CANCEL, timeouts and
//! retransmissions, NAT detection and Contact fixing, keepalives removing dead contacts.

use relay::sip::nat::NatTests;
use relay::sip::proxy::*;
use relay::sip::registrar::RemovalReason;
use relay::sip::{Flow, Message, Transport};
use std::time::Duration;

mod common;
use common::{Driver, PROXY, addr, udp_flow};

/// A UA: its private address (what it writes) and the NAT's public mapping (the source).
#[derive(Clone, Copy)]
struct Ua {
    user: &'static str,
    private: &'static str,
    public: &'static str,
}

const ALICE: Ua = Ua {
    user: "alice",
    private: "192.168.1.10:5060",
    public: "198.51.100.20:40000",
};
const BOB: Ua = Ua {
    user: "bob",
    private: "10.0.0.20:5062",
    public: "198.51.100.30:50000",
};

impl Ua {
    fn flow(&self) -> Flow {
        udp_flow(self.public)
    }
}

/// The proxy under test (its clock, sent messages and events: [`Driver`]).
struct Net(Driver);

impl std::ops::Deref for Net {
    type Target = Driver;
    fn deref(&self) -> &Driver {
        &self.0
    }
}

impl std::ops::DerefMut for Net {
    fn deref_mut(&mut self) -> &mut Driver {
        &mut self.0
    }
}

impl Net {
    fn new(nat: NatConfig) -> Net {
        let mut c = ProxyConfig::new(addr(PROXY));
        c.domains.push("example.com".into());
        c.nat = nat;
        c.seed = 7;
        Net(Driver::new(Proxy::new(c)))
    }

    fn nat_all() -> Net {
        Net::new(NatConfig {
            tests: NatTests::ALL,
            fix_contact: true,
            keepalive: None,
        })
    }

    fn input(&mut self, from: Ua, text: &str) {
        let bytes = text.replace('\n', "\r\n").into_bytes();
        self.input_on(from.flow(), bytes);
    }

    /// Take the messages sent to `ua` (by public address).
    fn to(&mut self, ua: Ua) -> Vec<Message> {
        self.take_to(addr(ua.public))
    }

    fn register(&mut self, ua: Ua, expires: u32) -> Message {
        self.input(
            ua,
            &format!(
                "REGISTER sip:example.com SIP/2.0
Via: SIP/2.0/UDP {p};branch=z9hG4bKreg{u}{e};rport
Max-Forwards: 70
From: <sip:{u}@example.com>;tag=r{u}
To: <sip:{u}@example.com>
Call-ID: reg-{u}
CSeq: {e} REGISTER
Contact: <sip:{u}@{p}>
Expires: {e}
Content-Length: 0

",
                p = ua.private,
                u = ua.user,
                e = expires,
            ),
        );
        let mut r = self.to(ua);
        assert_eq!(r.len(), 1);
        r.remove(0)
    }
}

fn invite(from: Ua, to: &str, call: &str, branch: &str) -> String {
    format!(
        "INVITE sip:{to}@example.com SIP/2.0
Via: SIP/2.0/UDP {p};branch={branch};rport
Max-Forwards: 70
From: <sip:{u}@example.com>;tag=f{call}
To: <sip:{to}@example.com>
Call-ID: {call}
CSeq: 1 INVITE
Contact: <sip:{u}@{p}>
Content-Length: 0

",
        p = from.private,
        u = from.user,
    )
}

/// The response `code` to `req` as a UA would send it (Via copied, To tagged).
fn answer(req: &Message, code: u16, reason: &str, contact: Option<Ua>) -> String {
    let mut r = Message::response_to(req, code, reason, Some("totag"));
    if let Some(ua) = contact {
        let n = r.headers().len() - 1;
        r.insert_header(
            n,
            relay::sip::Header::new("Contact", format!("<sip:{}@{}>", ua.user, ua.private)),
        );
    }
    String::from_utf8(r.to_bytes())
        .unwrap()
        .replace("\r\n", "\n")
}

fn has_event(n: &Net, f: impl Fn(&ProxyEvent) -> bool) -> bool {
    n.events.iter().any(f)
}

#[test]
fn register_stores_the_nat_path() {
    let mut n = Net::nat_all();
    let ok = n.register(ALICE, 600);
    assert_eq!(ok.status(), Some(200));
    // the Contact comes back as the UA wrote it, with the granted expiry
    let c = ok.get("Contact").unwrap();
    assert!(
        c.contains("192.168.1.10:5060") && c.contains("expires=600"),
        "{c}"
    );
    // rport/received filled in the Via (RFC 3581)
    let via = ok.top_via().unwrap();
    assert_eq!(via.rport(), Some(Some(40000)));
    assert_eq!(via.received(), Some("198.51.100.20"));
    let b = &n.proxy.registrar().lookup("alice@example.com")[0];
    assert_eq!(b.path.remote, addr(ALICE.public));
    assert!(b.natted);
    assert!(has_event(&n, |e| matches!(
        e,
        ProxyEvent::Registered {
            natted: true,
            expires: 600,
            ..
        }
    )));
    // too brief
    let r = n.register(ALICE, 10);
    assert_eq!(r.status(), Some(423));
    assert_eq!(r.get("Min-Expires"), Some("60"));
    // expiry removes it
    n.advance(Duration::from_secs(601));
    assert!(n.proxy.registrar().lookup("alice@example.com").is_empty());
    assert!(has_event(&n, |e| matches!(
        e,
        ProxyEvent::RegistrationRemoved {
            reason: RemovalReason::Expired,
            ..
        }
    )));
}

#[test]
fn call_through_two_nats_with_record_route() {
    let mut n = Net::nat_all();
    n.register(ALICE, 3600);
    n.register(BOB, 3600);
    n.input(ALICE, &invite(ALICE, "bob", "call1", "z9hG4bKinv1"));
    let trying = n.to(ALICE);
    assert_eq!(trying[0].status(), Some(100));
    let inv = n.to(BOB).remove(0);
    // to Bob's NAT mapping, Request-URI his registered contact
    assert_eq!(
        inv.request_uri().unwrap().to_string(),
        "sip:bob@10.0.0.20:5062"
    );
    assert_eq!(inv.max_forwards().unwrap(), Some(69));
    let vias = inv.via().unwrap();
    assert_eq!(vias.len(), 2);
    assert_eq!(vias[0].host, "203.0.113.1");
    assert_eq!(vias[1].received(), Some("198.51.100.20"));
    let rr = inv.name_addrs("Record-Route").unwrap();
    assert!(rr[0].uri.sip().unwrap().lr());
    // Alice's Contact fixed to her mapping, the original kept
    let contact = inv.get("Contact").unwrap();
    assert!(
        contact.contains("198.51.100.20:40000")
            && contact.contains("pinhole-orig=192.168.1.10~5060"),
        "{contact}"
    );
    assert!(has_event(
        &n,
        |e| matches!(e, ProxyEvent::DialogStarted { call_id, .. } if call_id == "call1")
    ));

    n.input(BOB, &answer(&inv, 180, "Ringing", Some(BOB)));
    n.input(BOB, &answer(&inv, 200, "OK", Some(BOB)));
    let to_alice = n.to(ALICE);
    assert_eq!(
        to_alice
            .iter()
            .map(|m| m.status().unwrap())
            .collect::<Vec<_>>(),
        [180, 200]
    );
    let ok = &to_alice[1];
    assert_eq!(ok.via().unwrap().len(), 1, "our Via popped");
    let bob_contact = ok.contacts().unwrap();
    let relay::sip::Contacts::List(bc) = bob_contact else {
        panic!()
    };
    let bob_target = bc[0].uri.to_string();
    assert!(bob_target.contains("198.51.100.30:50000"), "{bob_target}");
    assert!(has_event(
        &n,
        |e| matches!(e, ProxyEvent::DialogConfirmed { to_tag, .. } if to_tag == "totag")
    ));

    // ACK for the 2xx: end to end, via the Record-Route, R-URI restored for Bob
    n.input(
        ALICE,
        &format!(
            "ACK {bob_target} SIP/2.0
Via: SIP/2.0/UDP 192.168.1.10:5060;branch=z9hG4bKack1;rport
Route: <sip:203.0.113.1;lr>
Max-Forwards: 70
From: <sip:alice@example.com>;tag=fcall1
To: <sip:bob@example.com>;tag=totag
Call-ID: call1
CSeq: 1 ACK
Content-Length: 0

"
        ),
    );
    let ack = n.to(BOB).remove(0);
    assert_eq!(ack.method().unwrap().as_str(), "ACK");
    assert_eq!(
        ack.request_uri().unwrap().to_string(),
        "sip:bob@10.0.0.20:5062"
    );
    assert!(ack.get("Route").is_none());

    // re-INVITE from Alice, answered
    n.input(
        ALICE,
        &format!(
            "INVITE {bob_target} SIP/2.0
Via: SIP/2.0/UDP 192.168.1.10:5060;branch=z9hG4bKreinv;rport
Route: <sip:203.0.113.1;lr>
Max-Forwards: 70
From: <sip:alice@example.com>;tag=fcall1
To: <sip:bob@example.com>;tag=totag
Call-ID: call1
CSeq: 2 INVITE
Contact: <sip:alice@192.168.1.10:5060>
Content-Length: 0

"
        ),
    );
    assert_eq!(n.to(ALICE)[0].status(), Some(100));
    let reinv = n.to(BOB).remove(0);
    assert!(
        reinv.get("Record-Route").is_none(),
        "only initial requests are record-routed"
    );
    n.input(BOB, &answer(&reinv, 200, "OK", Some(BOB)));
    assert_eq!(n.to(ALICE)[0].status(), Some(200));

    // BYE from the callee goes to Alice's mapping with her original Contact as R-URI
    let alice_target = inv.contacts().unwrap();
    let relay::sip::Contacts::List(ac) = alice_target else {
        panic!()
    };
    n.input(
        BOB,
        &format!(
            "BYE {} SIP/2.0
Via: SIP/2.0/UDP 10.0.0.20:5062;branch=z9hG4bKbye1;rport
Route: <sip:203.0.113.1;lr>
Max-Forwards: 70
From: <sip:bob@example.com>;tag=totag
To: <sip:alice@example.com>;tag=fcall1
Call-ID: call1
CSeq: 1 BYE
Content-Length: 0

",
            ac[0].uri
        ),
    );
    let bye = n.to(ALICE).remove(0);
    assert_eq!(
        bye.request_uri().unwrap().to_string(),
        "sip:alice@192.168.1.10:5060"
    );
    assert!(has_event(&n, |e| matches!(
        e,
        ProxyEvent::DialogEnded {
            reason: DialogEndReason::Bye { by_caller: false },
            ..
        }
    )));
    n.input(ALICE, &answer(&bye, 200, "OK", None));
    assert_eq!(n.to(BOB)[0].status(), Some(200));
    // everything winds down
    n.advance(Duration::from_secs(40));
    assert_eq!(n.proxy.transaction_count(), (0, 0));
    assert_eq!(n.proxy.dialog_count(), 0);
}

#[test]
fn bye_from_caller() {
    let mut n = Net::nat_all();
    n.register(ALICE, 3600);
    n.register(BOB, 3600);
    n.input(ALICE, &invite(ALICE, "bob", "c2", "z9hG4bKi2"));
    let inv = n.to(BOB).remove(0);
    n.input(BOB, &answer(&inv, 200, "OK", Some(BOB)));
    n.to(ALICE);
    n.input(
        ALICE,
        "BYE sip:bob@198.51.100.30:50000;pinhole-orig=10.0.0.20~5062 SIP/2.0
Via: SIP/2.0/UDP 192.168.1.10:5060;branch=z9hG4bKb2;rport
Route: <sip:203.0.113.1;lr>
From: <sip:alice@example.com>;tag=fc2
To: <sip:bob@example.com>;tag=totag
Call-ID: c2
CSeq: 2 BYE
Content-Length: 0

",
    );
    let bye = n.to(BOB).remove(0);
    assert_eq!(
        bye.max_forwards().unwrap(),
        Some(70),
        "an absent Max-Forwards is added as 70 (RFC 3261 §16.6 step 3)"
    );
    assert!(has_event(&n, |e| matches!(
        e,
        ProxyEvent::DialogEnded {
            reason: DialogEndReason::Bye { by_caller: true },
            ..
        }
    )));
}

#[test]
fn cancel_before_answer() {
    let mut n = Net::nat_all();
    n.register(ALICE, 3600);
    n.register(BOB, 3600);
    let text = invite(ALICE, "bob", "c3", "z9hG4bKi3");
    n.input(ALICE, &text);
    n.to(ALICE);
    let inv = n.to(BOB).remove(0);
    // CANCEL before any provisional: answered, but held back (RFC 3261 §9.1)
    let cancel = text
        .replace("INVITE sip:bob", "CANCEL sip:bob")
        .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL");
    n.input(ALICE, &cancel);
    assert_eq!(n.to(ALICE)[0].status(), Some(200));
    assert!(n.to(BOB).is_empty());
    n.input(BOB, &answer(&inv, 180, "Ringing", Some(BOB)));
    let c = n.to(BOB).remove(0);
    assert_eq!(c.method().unwrap().as_str(), "CANCEL");
    assert_eq!(
        c.top_via().unwrap().branch(),
        inv.top_via().unwrap().branch()
    );
    n.input(BOB, &answer(&c, 200, "OK", None));
    n.input(BOB, &answer(&inv, 487, "Request Terminated", None));
    let ack = n.to(BOB);
    assert_eq!(
        ack[0].method().unwrap().as_str(),
        "ACK",
        "hop-by-hop ACK of the 487"
    );
    let up = n.to(ALICE);
    assert_eq!(
        up.iter().map(|m| m.status().unwrap()).collect::<Vec<_>>(),
        [180, 487]
    );
    assert!(has_event(&n, |e| matches!(
        e,
        ProxyEvent::DialogEnded {
            reason: DialogEndReason::Cancelled,
            ..
        }
    )));
    // Alice's ACK for the 487 is absorbed by the server transaction
    n.input(
        ALICE,
        &text
            .replace("INVITE sip:bob", "ACK sip:bob")
            .replace("CSeq: 1 INVITE", "CSeq: 1 ACK")
            .replace(
                "<sip:bob@example.com>\n",
                "<sip:bob@example.com>;tag=totag\n",
            ),
    );
    assert!(n.to(BOB).is_empty());
    // a retransmitted 487 gets our ACK again, and is not forwarded
    n.input(BOB, &answer(&inv, 487, "Request Terminated", None));
    assert_eq!(n.to(BOB).len(), 1);
    assert!(n.to(ALICE).is_empty());
    n.advance(Duration::from_secs(40));
    assert_eq!(n.proxy.transaction_count(), (0, 0));
}

#[test]
fn timeouts_and_retransmissions() {
    let mut n = Net::nat_all();
    n.register(ALICE, 3600);
    n.register(BOB, 3600);
    let text = invite(ALICE, "bob", "c4", "z9hG4bKi4");
    n.input(ALICE, &text);
    assert_eq!(n.to(ALICE)[0].status(), Some(100));
    assert_eq!(n.to(BOB).len(), 1);
    // Alice retransmits: absorbed, 100 resent
    n.input(ALICE, &text);
    assert_eq!(n.to(ALICE)[0].status(), Some(100));
    assert!(n.to(BOB).is_empty());
    // Timer A: retransmissions at 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s; Timer B at 32 s
    n.advance(Duration::from_millis(31_900));
    assert_eq!(n.to(BOB).len(), 6);
    n.advance(Duration::from_millis(200));
    let r = n.to(ALICE);
    assert_eq!(r[0].status(), Some(408));
    assert!(has_event(&n, |e| matches!(
        e,
        ProxyEvent::TransactionTimeout {
            timer: Timer::TimerB,
            ..
        }
    )));
    assert!(has_event(&n, |e| matches!(
        e,
        ProxyEvent::DialogEnded {
            reason: DialogEndReason::TransactionTimeout,
            ..
        }
    )));
    // Timer G retransmits the 408 until Timer H (no ACK from Alice)
    n.advance(Duration::from_secs(40));
    assert!(n.to(ALICE).len() >= 5);
    assert!(has_event(&n, |e| matches!(
        e,
        ProxyEvent::TransactionTimeout {
            timer: Timer::TimerH,
            ..
        }
    )));
    assert_eq!(n.proxy.transaction_count(), (0, 0));
}

#[test]
fn non_invite_timer_e_caps_at_t2() {
    let mut n = Net::nat_all();
    n.register(ALICE, 3600);
    n.register(BOB, 3600);
    n.input(
        ALICE,
        "MESSAGE sip:bob@example.com SIP/2.0
Via: SIP/2.0/UDP 192.168.1.10:5060;branch=z9hG4bKm1;rport
Max-Forwards: 70
From: <sip:alice@example.com>;tag=m1
To: <sip:bob@example.com>
Call-ID: m1
CSeq: 1 MESSAGE
Content-Type: text/plain
Content-Length: 2

hi",
    );
    let m = n.to(BOB);
    assert_eq!(m[0].body(), b"hi");
    // E: 0.5, 1.5, 3.5, 7.5, then every 4 s until F at 32 s: 11.5 ... 31.5 → 10 in total
    n.advance(Duration::from_secs(33));
    assert_eq!(n.to(BOB).len(), 10);
    assert_eq!(n.to(ALICE)[0].status(), Some(408));
}

#[test]
fn routing_failures() {
    let mut n = Net::nat_all();
    n.register(ALICE, 3600);
    n.input(ALICE, &invite(ALICE, "nobody", "c5", "z9hG4bKi5"));
    let r = n.to(ALICE);
    assert_eq!(r.last().unwrap().status(), Some(404));
    // Bob registered once, then unregistered with `*`: 480
    n.register(BOB, 3600);
    n.input(
        BOB,
        "REGISTER sip:example.com SIP/2.0
Via: SIP/2.0/UDP 10.0.0.20:5062;branch=z9hG4bKstar;rport
From: <sip:bob@example.com>;tag=s
To: <sip:bob@example.com>
Call-ID: reg-bob
CSeq: 9999 REGISTER
Contact: *
Expires: 0
Content-Length: 0

",
    );
    assert_eq!(n.to(BOB)[0].status(), Some(200));
    n.input(ALICE, &invite(ALICE, "bob", "c6", "z9hG4bKi6"));
    assert_eq!(n.to(ALICE).last().unwrap().status(), Some(480));
    // Max-Forwards 0: 483
    n.input(
        ALICE,
        &invite(ALICE, "bob", "c7", "z9hG4bKi7").replace("Max-Forwards: 70", "Max-Forwards: 0"),
    );
    assert_eq!(n.to(ALICE).last().unwrap().status(), Some(483));
    // malformed (CSeq method mismatch) but answerable: 400
    n.input(
        ALICE,
        &invite(ALICE, "bob", "c8", "z9hG4bKi8").replace("CSeq: 1 INVITE", "CSeq: 1 BYE"),
    );
    assert_eq!(n.to(ALICE).last().unwrap().status(), Some(400));
    // garbage: dropped and counted
    n.input(ALICE, "hello");
    assert_eq!(
        n.proxy.stats().dropped.get(&DropReason::Unparseable),
        Some(&1)
    );
    // OPTIONS to the proxy itself
    n.input(
        ALICE,
        "OPTIONS sip:203.0.113.1 SIP/2.0
Via: SIP/2.0/UDP 192.168.1.10:5060;branch=z9hG4bKo1
From: <sip:alice@example.com>;tag=o
To: <sip:203.0.113.1>
Call-ID: o1
CSeq: 1 OPTIONS
Content-Length: 0

",
    );
    assert_eq!(n.to(ALICE).last().unwrap().status(), Some(200));
}

#[test]
fn nat_detection_is_configurable() {
    // Only the port test: Alice's Via names her private address, port equal to the
    // mapping's? No: 5060 vs 40000 differs, so it hits; a UA whose NAT kept the port is not
    // detected by it.
    let mut n = Net::new(NatConfig {
        tests: NatTests::SOURCE_PORT_DIFFERS_FROM_VIA,
        fix_contact: true,
        keepalive: None,
    });
    let same_port = Ua {
        user: "carol",
        private: "192.168.5.5:40000",
        public: "198.51.100.40:40000",
    };
    n.register(same_port, 3600);
    assert!(!n.proxy.registrar().lookup("carol@example.com")[0].natted);
    n.register(ALICE, 3600);
    assert!(n.proxy.registrar().lookup("alice@example.com")[0].natted);
    // without fix_contact the INVITE keeps Alice's private Contact
    let mut n = Net::new(NatConfig {
        tests: NatTests::ALL,
        fix_contact: false,
        keepalive: None,
    });
    n.register(ALICE, 3600);
    n.register(BOB, 3600);
    n.input(ALICE, &invite(ALICE, "bob", "c9", "z9hG4bKi9"));
    let inv = n.to(BOB).remove(0);
    assert!(inv.get("Contact").unwrap().contains("192.168.1.10:5060"));
    assert!(has_event(&n, |e| matches!(
        e,
        ProxyEvent::NatDetected {
            contact_fixed: false,
            tests: 15,
            ..
        }
    )));
}

#[test]
fn keepalives_remove_dead_contacts() {
    let mut n = Net::new(NatConfig {
        tests: NatTests::ALL,
        fix_contact: true,
        keepalive: Some(KeepaliveConfig {
            method: KeepaliveMethod::Options,
            interval: Duration::from_secs(20),
            max_missed: 2,
        }),
    });
    n.register(ALICE, 3600);
    n.register(BOB, 3600);
    // Alice answers every ping, Bob never does
    for _ in 0..5 {
        n.advance(Duration::from_secs(20));
        for ping in n.to(ALICE) {
            assert_eq!(ping.method().unwrap().as_str(), "OPTIONS");
            n.input(ALICE, &answer(&ping, 200, "OK", None));
        }
        n.to(BOB);
    }
    assert_eq!(n.proxy.registrar().lookup("alice@example.com").len(), 1);
    assert!(n.proxy.registrar().lookup("bob@example.com").is_empty());
    assert!(has_event(&n, |e| matches!(
        e,
        ProxyEvent::RegistrationRemoved { reason: RemovalReason::Unreachable, aor, .. } if aor == "bob@example.com"
    )));
    // Bob's binding is gone: one more round and nothing is pending for him
    n.advance(Duration::from_secs(20));
    for ping in n.to(ALICE) {
        n.input(ALICE, &answer(&ping, 200, "OK", None));
    }
    assert!(n.to(BOB).is_empty(), "no pings to a removed binding");
    assert_eq!(n.proxy.pending_keepalives(), 0);
    let pings = n
        .events
        .iter()
        .filter(|e| matches!(e, ProxyEvent::KeepaliveSent { .. }))
        .count();
    assert!(pings >= 7, "{pings}");
}

#[test]
fn notify_keepalive_and_deterministic_spread() {
    let run = || {
        let mut n = Net::new(NatConfig {
            tests: NatTests::ALL,
            fix_contact: true,
            keepalive: Some(KeepaliveConfig {
                method: KeepaliveMethod::Notify,
                interval: Duration::from_secs(30),
                max_missed: 3,
            }),
        });
        let t0 = n.now;
        n.register(ALICE, 3600);
        n.register(BOB, 3600);
        let mut first = Vec::new();
        for _ in 0..300 {
            n.advance(Duration::from_millis(100));
            for m in n.to(ALICE).into_iter().chain(n.to(BOB)) {
                assert_eq!(m.get("Event"), Some("keep-alive"));
                first.push((n.now - t0).as_millis() / 100);
            }
        }
        first
    };
    let a = run();
    assert_eq!(a.len(), 2);
    assert_eq!(a, run(), "the same seed gives the same spread");
}

#[test]
fn tcp_flows_reuse_the_ua_connection() {
    use relay::sip::ConnId;
    let mut n = Net::nat_all();
    let tcp = |ua: Ua, conn: u64| tcp_flow(ua.public, conn);
    let send = send_on;
    for (ua, conn) in [(ALICE, 1), (BOB, 2)] {
        send(
            &mut n,
            tcp(ua, conn),
            &format!(
                "REGISTER sip:example.com SIP/2.0
Via: SIP/2.0/TCP {p};branch=z9hG4bKt{u}
From: <sip:{u}@example.com>;tag=t{u}
To: <sip:{u}@example.com>
Call-ID: treg-{u}
CSeq: 1 REGISTER
Contact: <sip:{u}@{p};transport=tcp>
Content-Length: 0

",
                p = ua.private,
                u = ua.user
            ),
        );
        let r = n.to(ua);
        assert_eq!(r[0].status(), Some(200));
    }
    send(
        &mut n,
        tcp(ALICE, 1),
        &invite(ALICE, "bob", "t1", "z9hG4bKt1").replace("SIP/2.0/UDP", "SIP/2.0/TCP"),
    );
    let sent: Vec<_> = n.out.drain(..).collect();
    assert_eq!(sent.len(), 2);
    assert_eq!(
        sent[0].flow(),
        tcp(ALICE, 1),
        "100 Trying on Alice's connection"
    );
    assert_eq!(
        sent[1].flow(),
        tcp(BOB, 2),
        "INVITE on the connection Bob registered over"
    );
    let inv = Message::parse(&sent[1].data).unwrap();
    assert_eq!(inv.top_via().unwrap().transport, "TCP");
    assert!(inv.get("Record-Route").unwrap().contains("transport=tcp"));
    // reliable transport: no Timer A retransmissions
    n.advance(Duration::from_secs(10));
    assert!(n.out.is_empty());
    // Bob's connection closes: his binding goes (its path is gone)
    n.handle(Input::Closed(ConnId(2)));
    assert!(n.proxy.registrar().lookup("bob@example.com").is_empty());
    assert!(has_event(&n, |e| matches!(
        e,
        ProxyEvent::RegistrationRemoved {
            reason: RemovalReason::Unreachable,
            ..
        }
    )));
    // Timer B still ends the INVITE: 408 to Alice, once (no Timer G on TCP)
    n.advance(Duration::from_secs(30));
    let r: Vec<_> = n.out.drain(..).collect();
    assert_eq!(r.len(), 1);
    assert_eq!(Message::parse(&r[0].data).unwrap().status(), Some(408));
    n.advance(Duration::from_secs(60));
    assert!(n.out.is_empty());
    assert_eq!(n.proxy.transaction_count(), (0, 0));
}

/// Without NAT handling (no NAT test hits) a UDP binding is reached at its Contact, not at
/// the REGISTER's source: a UA (or a SIPp instance) may register from one port and answer
/// on another (RFC 3261 §16.5: the Contact is the target). `pinhole bench proxy` registers
/// bob from port 5070 for an answering SIPp on 5060, as Kamailio's stock configuration
/// accepts. Found by running that benchmark.
#[test]
fn without_nat_handling_requests_go_to_the_contact() {
    const CAROL: Ua = Ua {
        user: "carol",
        private: "198.51.100.40:5060",
        public: "198.51.100.40:5070",
    };
    const DAVE: Ua = Ua {
        user: "dave",
        private: "198.51.100.41:5060",
        public: "198.51.100.41:5060",
    };
    let mut n = Net::new(NatConfig::default());
    let r = n.register(CAROL, 3600);
    assert_eq!(r.status(), Some(200));
    n.input(DAVE, &invite(DAVE, "carol", "c-contact", "z9hG4bKcc1"));
    let to_contact: Vec<_> = n
        .out
        .iter()
        .filter(|t| t.to == addr(CAROL.private))
        .collect();
    assert_eq!(to_contact.len(), 1, "the INVITE goes to carol's Contact");
    assert!(
        n.out.iter().all(|t| t.to != addr(CAROL.public)),
        "nothing goes to the port carol registered from"
    );
    // With NAT handling the same registration is reached at its source (nathelper's
    // `received`), since a NAT test hits (the source port differs from the Via's).
    let mut n = Net::nat_all();
    n.register(CAROL, 3600);
    n.input(DAVE, &invite(DAVE, "carol", "c-nat", "z9hG4bKcc2"));
    assert!(
        n.out.iter().any(|t| t.to == addr(CAROL.public)
            && Message::parse(&t.data).is_ok_and(|m| m.method().is_some())),
        "with NAT handling the INVITE goes to the registered flow"
    );
}

// ===== TCP connections: reuse, closing, new connections =====

/// A message over TCP connection `conn` from `remote`.
fn tcp_flow(remote: &str, conn: u64) -> Flow {
    Flow {
        transport: Transport::Tcp,
        local: addr(PROXY),
        remote: addr(remote),
        conn: Some(relay::sip::ConnId(conn)),
    }
}

fn send_on(n: &mut Net, flow: Flow, text: &str) {
    n.input_on(flow, text.replace('\n', "\r\n").into_bytes());
}

fn close(n: &mut Net, conn: u64) {
    n.handle(Input::Closed(relay::sip::ConnId(conn)));
}

/// Take everything sent so far, parsed, with its flow.
fn take(n: &mut Net) -> Vec<(Flow, Message)> {
    n.out
        .drain(..)
        .map(|t| (t.flow(), Message::parse(&t.data).expect("valid SIP")))
        .collect()
}

/// The requests (not responses) among `sent`.
fn requests(sent: &[(Flow, Message)]) -> Vec<(Flow, Message)> {
    sent.iter()
        .filter(|(_, m)| m.is_request())
        .cloned()
        .collect()
}

/// A public UA (no NAT) registered over TCP from an ephemeral port: requests for it go over
/// the registration's connection while it is open (connection reuse, RFC 5626 §5.3 without
/// outbound; RFC 5923's idea); once it closes the binding stays (a registration outlives
/// its connection) and requests go to its Contact over a new connection (RFC 3261
/// §18.1.1), which is then reused for the next one.
#[test]
fn tcp_public_binding_reuses_then_reconnects_to_the_contact() {
    const DAVE: Ua = Ua {
        user: "dave",
        private: "198.51.100.41:5060",
        public: "198.51.100.41:5060",
    };
    let mut n = Net::new(NatConfig::default());
    send_on(
        &mut n,
        tcp_flow("198.51.100.40:40001", 5),
        "REGISTER sip:example.com SIP/2.0
Via: SIP/2.0/TCP 198.51.100.40:5060;branch=z9hG4bKcreg
From: <sip:carol@example.com>;tag=rc
To: <sip:carol@example.com>
Call-ID: creg
CSeq: 1 REGISTER
Contact: <sip:carol@198.51.100.40:5060;transport=tcp>
Content-Length: 0

",
    );
    let sent = take(&mut n);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, tcp_flow("198.51.100.40:40001", 5));
    assert_eq!(sent[0].1.status(), Some(200));
    assert_eq!(n.proxy.connection_count(), 1);

    // while the connection is open: the INVITE rides it
    n.input(DAVE, &invite(DAVE, "carol", "c1", "z9hG4bKc1"));
    let reqs = requests(&take(&mut n));
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].0, tcp_flow("198.51.100.40:40001", 5));

    // closed: the binding stays, nothing is reported removed
    close(&mut n, 5);
    assert_eq!(n.proxy.connection_count(), 0);
    assert_eq!(n.proxy.registrar().lookup("carol@example.com").len(), 1);
    assert!(!has_event(&n, |e| matches!(
        e,
        ProxyEvent::RegistrationRemoved { .. }
    )));
    n.input(DAVE, &invite(DAVE, "carol", "c2", "z9hG4bKc2"));
    let reqs = requests(&take(&mut n));
    assert_eq!(reqs.len(), 1);
    let to_contact = Flow {
        transport: Transport::Tcp,
        local: addr(PROXY),
        remote: addr("198.51.100.40:5060"),
        conn: None,
    };
    assert_eq!(reqs[0].0, to_contact, "a new connection to the Contact");

    // the driver opened connection 6 to the Contact; carol answers on it
    let inv = reqs[0].1.clone();
    send_on(
        &mut n,
        tcp_flow("198.51.100.40:5060", 6),
        &answer(&inv, 180, "Ringing", None),
    );
    let sent = take(&mut n);
    assert!(
        sent.iter()
            .any(|(f, m)| f.remote == addr(DAVE.public) && m.status() == Some(180))
    );
    // the next request for carol reuses connection 6
    n.input(DAVE, &invite(DAVE, "carol", "c3", "z9hG4bKc3"));
    let reqs = requests(&take(&mut n));
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].0, tcp_flow("198.51.100.40:5060", 6));
}

/// A NATed UA registered over TCP: once its connection closes nothing can reach it (the
/// NAT lets no new connection in), so the binding goes and a call gets 480 at once rather
/// than a connection attempt that the NAT would swallow.
#[test]
fn tcp_nated_binding_goes_with_its_connection() {
    let mut n = Net::nat_all();
    send_on(
        &mut n,
        tcp_flow(BOB.public, 9),
        "REGISTER sip:example.com SIP/2.0
Via: SIP/2.0/TCP 10.0.0.20:5062;branch=z9hG4bKbreg
From: <sip:bob@example.com>;tag=rb
To: <sip:bob@example.com>
Call-ID: breg
CSeq: 1 REGISTER
Contact: <sip:bob@10.0.0.20:5062;transport=tcp>
Content-Length: 0

",
    );
    assert_eq!(take(&mut n)[0].1.status(), Some(200));
    assert!(n.proxy.registrar().lookup("bob@example.com")[0].natted);
    close(&mut n, 9);
    assert!(n.proxy.registrar().lookup("bob@example.com").is_empty());
    n.register(ALICE, 3600);
    n.input(ALICE, &invite(ALICE, "bob", "b1", "z9hG4bKb1"));
    let sent = take(&mut n);
    assert!(
        sent.iter().all(|(f, _)| f.remote == addr(ALICE.public)),
        "nothing towards bob's old mapping"
    );
    assert!(sent.iter().any(|(_, m)| m.status() == Some(480)));
}

/// Responses to a request that came over TCP (RFC 3261 §18.2.2): on its connection while
/// it is open; once closed, on an open connection to received:rport (the same peer
/// reconnected), else on a new connection to received and the sent-by port — not to the
/// closed connection's source port. A 2xx retransmission forwarded statelessly after the
/// INVITE transaction ended goes back to the caller's connection too, found by its Via.
#[test]
fn tcp_responses_follow_the_connection_then_the_via() {
    let mut n = Net::nat_all();
    n.register(BOB, 3600);
    let inv = invite(ALICE, "bob", "r1", "z9hG4bKr1").replace("SIP/2.0/UDP", "SIP/2.0/TCP");
    send_on(&mut n, tcp_flow(ALICE.public, 3), &inv);
    let sent = take(&mut n);
    let trying = sent.iter().find(|(_, m)| m.status() == Some(100)).unwrap();
    assert_eq!(trying.0, tcp_flow(ALICE.public, 3));
    let to_bob = requests(&sent).remove(0).1;

    // the caller's connection closes; the 180 goes to received and the sent-by port
    close(&mut n, 3);
    n.input(BOB, &answer(&to_bob, 180, "Ringing", Some(BOB)));
    let sent = take(&mut n);
    assert_eq!(sent.len(), 1);
    let want = Flow {
        transport: Transport::Tcp,
        local: addr(PROXY),
        remote: addr("198.51.100.20:5060"),
        conn: None,
    };
    assert_eq!(sent[0].0, want);
    assert_eq!(sent[0].1.status(), Some(180));

    // the caller reconnects from the same mapping (connection 4) and sends something there;
    // the 200 then rides connection 4 (received:rport)
    send_on(
        &mut n,
        tcp_flow(ALICE.public, 4),
        "OPTIONS sip:example.com SIP/2.0
Via: SIP/2.0/TCP 192.168.1.10:5060;branch=z9hG4bKping
From: <sip:alice@example.com>;tag=p
To: <sip:example.com>
Call-ID: ping
CSeq: 1 OPTIONS
Content-Length: 0

",
    );
    assert_eq!(take(&mut n)[0].0, tcp_flow(ALICE.public, 4));
    let ok = answer(&to_bob, 200, "OK", Some(BOB));
    n.input(BOB, &ok);
    let sent = take(&mut n);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, tcp_flow(ALICE.public, 4));
    assert_eq!(sent[0].1.status(), Some(200));
    // the INVITE transaction is over; bob retransmits the 200 (RFC 3261 §13.3.1.4): it is
    // forwarded by its Via to the caller's connection, not back to bob
    n.input(BOB, &ok);
    let sent = take(&mut n);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, tcp_flow(ALICE.public, 4));
}

/// A NATed UA on TCP whose Contact names no transport (RFC 3261 §19.1.2: that means UDP),
/// as many TCP phones write it: the fixed Contact in its 200 gets `transport=tcp`, so the
/// caller's in-dialog BYE to that Contact rides the callee's registration connection (the
/// NAT's mapping exists only for it) instead of going out over UDP to a port nothing listens
/// on — and the callee receives the Request-URI it wrote, without the added parameter.
#[test]
fn tcp_contact_without_transport_is_reached_over_its_connection() {
    let mut n = Net::nat_all();
    send_on(
        &mut n,
        tcp_flow(BOB.public, 9),
        "REGISTER sip:example.com SIP/2.0
Via: SIP/2.0/TCP 10.0.0.20:5062;branch=z9hG4bKbreg
From: <sip:bob@example.com>;tag=rb
To: <sip:bob@example.com>
Call-ID: breg
CSeq: 1 REGISTER
Contact: <sip:bob@10.0.0.20:5062>
Content-Length: 0

",
    );
    assert_eq!(take(&mut n)[0].1.status(), Some(200));
    n.register(ALICE, 3600);
    n.input(ALICE, &invite(ALICE, "bob", "tt1", "z9hG4bKtt1"));
    let inv = requests(&take(&mut n)).remove(0);
    assert_eq!(
        inv.0,
        tcp_flow(BOB.public, 9),
        "the INVITE rides bob's connection"
    );
    send_on(
        &mut n,
        tcp_flow(BOB.public, 9),
        &answer(&inv.1, 200, "OK", Some(BOB)),
    );
    let sent = take(&mut n);
    let ok = &sent
        .iter()
        .find(|(f, m)| f.remote == addr(ALICE.public) && m.status() == Some(200))
        .expect("the 200 reaches alice")
        .1;
    let contact = ok.name_addrs("Contact").unwrap().remove(0).uri;
    assert_eq!(
        contact.to_string(),
        "sip:bob@198.51.100.30:50000;pinhole-orig=10.0.0.20~5062~-;transport=tcp"
    );
    n.input(
        ALICE,
        &format!(
            "BYE {contact} SIP/2.0
Via: SIP/2.0/UDP 192.168.1.10:5060;branch=z9hG4bKtt2;rport
Route: <sip:203.0.113.1;lr>
From: <sip:alice@example.com>;tag=ftt1
To: <sip:bob@example.com>;tag=totag
Call-ID: tt1
CSeq: 2 BYE
Content-Length: 0

"
        ),
    );
    let reqs = requests(&take(&mut n));
    assert_eq!(reqs.len(), 1);
    assert_eq!(
        reqs[0].0,
        tcp_flow(BOB.public, 9),
        "the BYE rides bob's connection"
    );
    assert_eq!(
        reqs[0].1.request_uri().unwrap().to_string(),
        "sip:bob@10.0.0.20:5062",
        "bob gets the Request-URI he wrote"
    );
}

// ===== transport errors (RFC 3261 §18.4, §16.9, §17.1.4, §17.2.4) =====

/// The driver hands a transmit back: it could not be sent.
fn fail(n: &mut Net, t: &Transmit) {
    n.handle(Input::TransportError {
        flow: t.flow(),
        bytes: t.data.clone(),
    });
}

/// Carol, a public UA, registered over TCP connection 5 from an ephemeral port; her Contact
/// listens on 198.51.100.40:5060.
fn register_carol_tcp(n: &mut Net) {
    send_on(
        n,
        tcp_flow("198.51.100.40:40001", 5),
        "REGISTER sip:example.com SIP/2.0
Via: SIP/2.0/TCP 198.51.100.40:5060;branch=z9hG4bKcreg
From: <sip:carol@example.com>;tag=rc
To: <sip:carol@example.com>
Call-ID: creg
CSeq: 1 REGISTER
Contact: <sip:carol@198.51.100.40:5060;transport=tcp>
Content-Length: 0

",
    );
    assert_eq!(take(n)[0].1.status(), Some(200));
    n.advance(Duration::ZERO); // Timer J (zero on TCP) ends the REGISTER transaction
}

const DAVE: Ua = Ua {
    user: "dave",
    private: "198.51.100.41:5060",
    public: "198.51.100.41:5060",
};

/// The one transmit that is a request.
fn the_request(n: &mut Net) -> Transmit {
    let (reqs, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut n.out)
        .into_iter()
        .partition(|t| Message::parse(&t.data).unwrap().is_request());
    n.out = rest;
    assert_eq!(reqs.len(), 1);
    reqs.into_iter().next().unwrap()
}

/// An INVITE for a public TCP binding whose connection has closed goes to the Contact over
/// a new connection; the driver's connection attempt fails (refused, say). The client
/// transaction ends as if a 503 had arrived (§16.9, §17.1.4) and, the only response being a
/// 503, the caller gets a 500 at once (§16.7 step 6) rather than a 408 after Timer B's 32 s;
/// the dialog attempt ends with its own reason. A real 503 from downstream is answered 500
/// upstream the same way.
#[test]
fn tcp_failed_connect_fails_the_invite_at_once() {
    let mut n = Net::new(NatConfig::default());
    register_carol_tcp(&mut n);
    close(&mut n, 5);
    n.input(DAVE, &invite(DAVE, "carol", "f1", "z9hG4bKf1"));
    assert_eq!(n.to(DAVE)[0].status(), Some(100));
    let inv = the_request(&mut n);
    assert_eq!(inv.conn, None, "a new connection to the Contact");
    assert_eq!(inv.to, addr("198.51.100.40:5060"));
    assert_eq!(n.proxy.transaction_count(), (1, 1));
    assert_eq!(n.proxy.dialog_count(), 1);

    fail(&mut n, &inv);
    let r = n.to(DAVE);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].status(), Some(500));
    assert_eq!(
        n.proxy.transaction_count(),
        (1, 0),
        "the client side is over"
    );
    assert_eq!(n.proxy.dialog_count(), 0);
    assert!(has_event(&n, |e| matches!(
        e,
        ProxyEvent::DialogEnded { reason: DialogEndReason::TransportError, call_id } if call_id == "f1"
    )));
    assert!(has_event(&n, |e| matches!(
        e,
        ProxyEvent::SendFailed { retried: None, summary, .. } if summary.starts_with("INVITE")
    )));
    assert_eq!(
        n.proxy.stats().dropped.get(&DropReason::TransportError),
        Some(&1)
    );
    // the caller's ACK ends the server side; no 408 ever follows
    n.input(
        DAVE,
        &format!(
            "ACK sip:carol@example.com SIP/2.0
Via: SIP/2.0/UDP {p};branch=z9hG4bKf1;rport
Max-Forwards: 70
From: <sip:dave@example.com>;tag=ff1
To: {to}
Call-ID: f1
CSeq: 1 ACK
Content-Length: 0

",
            p = DAVE.private,
            to = r[0].get("To").unwrap(),
        ),
    );
    n.advance(Duration::from_secs(40));
    assert!(n.out.is_empty(), "nothing more: {:?}", n.out);
    assert_eq!(n.proxy.transaction_count(), (0, 0));
    assert!(!has_event(&n, |e| matches!(
        e,
        ProxyEvent::TransactionTimeout { .. }
    )));

    // a 503 from downstream: 500 upstream too (§16.7 step 6)
    n.register(BOB, 3600);
    n.register(ALICE, 3600);
    n.input(ALICE, &invite(ALICE, "bob", "f2", "z9hG4bKf2"));
    n.to(ALICE);
    let to_bob = Message::parse(&the_request(&mut n).data).unwrap();
    n.input(BOB, &answer(&to_bob, 503, "Service Unavailable", None));
    let r = n.to(ALICE);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].status(), Some(500));
    assert!(has_event(&n, |e| matches!(
        e,
        ProxyEvent::DialogEnded { reason: DialogEndReason::Failed(503), call_id } if call_id == "f2"
    )));
}

/// An established connection breaks: a request queued on it fails as above (the driver
/// reports the close first); a response on it goes to the next §18.2.2 destination (a new
/// connection to received and the sent-by port); when that fails too the server transaction
/// ends (§17.2.4) and the response is dropped — the client transaction towards the callee is
/// not cancelled (§16.9), and its later responses go nowhere.
#[test]
fn tcp_broken_connection_fails_requests_and_falls_back_for_responses() {
    let mut n = Net::nat_all();
    register_carol_tcp(&mut n);
    n.input(DAVE, &invite(DAVE, "carol", "e1", "z9hG4bKe1"));
    n.to(DAVE);
    let inv = the_request(&mut n);
    assert_eq!(inv.flow(), tcp_flow("198.51.100.40:40001", 5));
    close(&mut n, 5);
    fail(&mut n, &inv);
    assert_eq!(n.to(DAVE)[0].status(), Some(500));
    assert_eq!(n.proxy.transaction_count().1, 0);

    // responses: alice calls bob over TCP connection 3
    n.register(BOB, 3600);
    let req = invite(ALICE, "bob", "e2", "z9hG4bKe2").replace("SIP/2.0/UDP", "SIP/2.0/TCP");
    send_on(&mut n, tcp_flow(ALICE.public, 3), &req);
    let trying = n
        .out
        .iter()
        .find(|t| t.to == addr(ALICE.public))
        .cloned()
        .unwrap();
    let to_bob = n.to(BOB).remove(0);
    n.out.clear();
    let (servers, clients) = n.proxy.transaction_count();
    close(&mut n, 3);
    fail(&mut n, &trying);
    let again = std::mem::take(&mut n.out);
    assert_eq!(again.len(), 1);
    let fallback = Flow {
        transport: Transport::Tcp,
        local: addr(PROXY),
        remote: addr("198.51.100.20:5060"),
        conn: None,
    };
    assert_eq!(again[0].flow(), fallback, "received + sent-by port");
    assert_eq!(again[0].data, trying.data);
    assert!(has_event(&n, |e| matches!(
        e,
        ProxyEvent::SendFailed { retried: Some(f), .. } if *f == fallback
    )));
    assert_eq!(n.proxy.transaction_count(), (servers, clients));
    // the fallback fails too: given up, the server transaction ends
    fail(&mut n, &again[0]);
    assert!(n.out.is_empty(), "no further fallback");
    assert_eq!(
        n.proxy.transaction_count(),
        (servers - 1, clients),
        "the server side ends, the client side goes on"
    );
    assert!(
        !n.events.iter().any(|e| matches!(
            e,
            ProxyEvent::MessageSent { summary, .. } if summary.starts_with("CANCEL")
        )),
        "no CANCEL (§16.9)"
    );
    n.input(BOB, &answer(&to_bob, 180, "Ringing", Some(BOB)));
    assert!(n.out.is_empty(), "nowhere to forward the 180");
}

/// A keepalive ping that fails at the transport layer: the contact is dead at once, without
/// waiting for the missed-ping count.
#[test]
fn keepalive_transport_error_removes_the_contact_at_once() {
    let mut n = Net::new(NatConfig {
        tests: NatTests::ALL,
        fix_contact: true,
        keepalive: Some(KeepaliveConfig {
            method: KeepaliveMethod::Options,
            interval: Duration::from_secs(20),
            max_missed: 3,
        }),
    });
    n.register(BOB, 3600);
    n.advance(Duration::from_secs(20));
    let ping = n.out.pop().expect("a ping to bob");
    assert!(n.out.is_empty());
    assert_eq!(ping.to, addr(BOB.public));
    assert_eq!(n.proxy.pending_keepalives(), 1);
    fail(&mut n, &ping);
    assert!(n.proxy.registrar().lookup("bob@example.com").is_empty());
    assert_eq!(n.proxy.pending_keepalives(), 0);
    assert!(has_event(&n, |e| matches!(
        e,
        ProxyEvent::RegistrationRemoved { reason: RemovalReason::Unreachable, aor, .. } if aor == "bob@example.com"
    )));
    n.advance(Duration::from_secs(60));
    assert!(n.out.is_empty(), "no more pings");
}

/// A call that rings longer than Timer B (64×T1 = 32 s) is not cut off: Timer B bounds the
/// Calling state only (RFC 3261 §17.1.1.2); once a provisional came, the proxy's Timer C
/// (§16.6 step 11, > 3 min, restarted by each provisional but 100) takes over. When Timer C
/// fires the proxy CANCELs the INVITE (§16.8) and forwards the callee's 487; a callee that
/// ignores the CANCEL gets 64×T1 more, then the caller a 408.
#[test]
fn ringing_is_bounded_by_timer_c_not_timer_b() {
    let mut n = Net::nat_all();
    n.register(ALICE, 3600);
    n.register(BOB, 3600);
    n.input(ALICE, &invite(ALICE, "bob", "ring1", "z9hG4bKring1"));
    n.to(ALICE);
    let inv = n.to(BOB).remove(0);
    n.input(BOB, &answer(&inv, 180, "Ringing", Some(BOB)));
    assert_eq!(n.to(ALICE)[0].status(), Some(180));
    // a minute of ringing: no 408, no CANCEL
    n.advance(Duration::from_secs(60));
    assert!(n.to(ALICE).is_empty(), "no timeout while it rings");
    assert!(n.to(BOB).is_empty());
    n.input(BOB, &answer(&inv, 200, "OK", Some(BOB)));
    assert_eq!(n.to(ALICE)[0].status(), Some(200));

    // a second call rings past Timer C: CANCEL, the 487 goes to the caller
    n.input(ALICE, &invite(ALICE, "bob", "ring2", "z9hG4bKring2"));
    n.to(ALICE);
    let inv = n.to(BOB).remove(0);
    n.input(BOB, &answer(&inv, 180, "Ringing", Some(BOB)));
    n.to(ALICE);
    n.advance(Duration::from_secs(120));
    n.input(BOB, &answer(&inv, 180, "Ringing", Some(BOB))); // restarts Timer C
    n.to(ALICE);
    n.advance(Duration::from_secs(180));
    assert!(n.to(BOB).is_empty(), "Timer C restarted by the second 180");
    n.advance(Duration::from_secs(2));
    let cancel = n.to(BOB).remove(0);
    assert_eq!(
        cancel.method().map(|m| m.as_str().to_string()).as_deref(),
        Some("CANCEL")
    );
    assert!(has_event(&n, |e| matches!(
        e,
        ProxyEvent::TransactionTimeout {
            timer: Timer::TimerC,
            ..
        }
    )));
    n.input(BOB, &answer(&cancel, 200, "OK", None));
    n.input(BOB, &answer(&inv, 487, "Request Terminated", None));
    let r = n.to(ALICE);
    assert_eq!(
        r.iter().filter_map(|m| m.status()).collect::<Vec<_>>(),
        [487]
    );

    n.to(BOB); // the hop-by-hop ACK of the 487

    // a third callee ignores the CANCEL: 408 64×T1 after it
    n.input(ALICE, &invite(ALICE, "bob", "ring3", "z9hG4bKring3"));
    n.to(ALICE);
    let inv = n.to(BOB).remove(0);
    assert_eq!(inv.method().unwrap().as_str(), "INVITE");
    n.input(BOB, &answer(&inv, 180, "Ringing", Some(BOB)));
    n.to(ALICE);
    n.advance(Duration::from_secs(182));
    let to_bob = n.to(BOB);
    assert!(
        to_bob
            .iter()
            .any(|m| m.method().is_some_and(|m| m.as_str() == "CANCEL")),
        "CANCEL sent"
    );
    // (alice never ACKed the second call's 487: its retransmissions until Timer H)
    assert!(n.to(ALICE).iter().all(|m| m.status() == Some(487)));
    // Timer C fired at 181 s, the 408 comes 32 s later
    n.advance(Duration::from_secs(30));
    assert!(n.to(ALICE).is_empty());
    n.advance(Duration::from_secs(2));
    assert_eq!(n.to(ALICE)[0].status(), Some(408));
    n.advance(Duration::from_secs(120));
    assert_eq!(n.proxy.transaction_count(), (0, 0));
}

/// A final response to a forwarded INVITE with no Via below the proxy's cannot go anywhere
/// (RFC 3261 §16.7 step 3); it is dropped before it touches the transaction, which the
/// callee's well-formed retransmission then completes (found by the `sip_proxy` fuzz
/// target: the server transaction used to stay forever).
#[test]
fn a_response_without_the_next_via_leaves_the_transaction_alone() {
    let mut n = Net::nat_all();
    n.register(ALICE, 3600);
    n.register(BOB, 3600);
    n.input(ALICE, &invite(ALICE, "bob", "novia", "z9hG4bKnovia"));
    n.to(ALICE);
    let inv = n.to(BOB).remove(0);
    let ok = answer(&inv, 200, "OK", Some(BOB));
    let second_via = ok
        .lines()
        .filter(|l| l.starts_with("Via:"))
        .nth(1)
        .expect("two Vias")
        .to_string();
    n.input(BOB, &ok.replace(&format!("{second_via}\n"), ""));
    assert!(n.to(ALICE).is_empty());
    assert!(has_event(&n, |e| matches!(
        e,
        ProxyEvent::Dropped {
            reason: DropReason::Unanswerable,
            ..
        }
    )));
    n.input(BOB, &ok);
    assert_eq!(n.to(ALICE)[0].status(), Some(200));
    n.advance(Duration::from_secs(60));
    assert_eq!(n.proxy.transaction_count(), (0, 0));
}
