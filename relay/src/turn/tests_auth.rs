//! The RFC 8489 §9.2 security features between the server and the client, sans-IO: password
//! algorithms (SHA-256, MD5 fallback), USERHASH, MESSAGE-INTEGRITY-SHA256, the nonce cookie
//! and the bid-down checks of §9.2.4 (server) and §9.2.5 (client).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::attrs::{self, kind, method};
use super::auth::{
    self, PASSWORD_ALGORITHM, PASSWORD_ALGORITHMS, PasswordAlgorithm, SecurityFeatures, USERHASH,
};
use super::*;
use crate::stun::integrity::{check_integrity, check_integrity_sha256};
use crate::stun::{Attribute, Message, RawAttribute};

const REALM: &str = "example.org";
const SHA256_FIRST: [u8; 8] = [0, 2, 0, 0, 0, 1, 0, 0];

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn listen() -> SocketAddr {
    sa("203.0.113.1:3478")
}

fn client_addr() -> SocketAddr {
    sa("198.51.100.7:40000")
}

#[allow(clippy::disallowed_methods)] // tests: any instant will do
fn epoch() -> Instant {
    Instant::now()
}

fn config() -> TurnConfig {
    let mut c = TurnConfig::new(listen(), "203.0.113.2".parse().unwrap(), REALM)
        .user("alice", "secret")
        .user("bob", "hunter2");
    c.relay_ports = (50000, 50099);
    c.seed = 3;
    c
}

fn md5_key() -> [u8; 16] {
    auth::long_term_key("alice", REALM, "secret")
}

fn sha256_key() -> [u8; 32] {
    auth::long_term_key_sha256("alice", REALM, "secret")
}

fn code(m: &Message) -> Option<u16> {
    match m.get(kind::ERROR_CODE) {
        Some(Attribute::ErrorCode(e)) => Some(e.code),
        _ => None,
    }
}

fn has(m: &Message, typ: u16) -> bool {
    m.attributes.iter().any(|a| a.typ() == typ)
}

/// Sends `bytes` from the client address; the one response (bytes and parsed).
fn exchange(s: &mut TurnServer, now: Instant, bytes: &[u8]) -> (Message, Vec<u8>) {
    s.handle_input(now, Input::udp(listen(), client_addr(), bytes));
    let out: Vec<Transmit> = std::iter::from_fn(|| s.poll_transmit()).collect();
    assert_eq!(out.len(), 1, "{out:?}");
    (Message::parse(&out[0].data).unwrap(), out[0].data.clone())
}

fn auth_failures(s: &mut TurnServer) -> Vec<AuthFailure> {
    std::iter::from_fn(|| s.poll_event())
        .filter_map(|e| match e {
            TurnEvent::AuthFailed { reason, .. } => Some(reason),
            _ => None,
        })
        .collect()
}

/// An unauthenticated Allocate: the 401 and its NONCE.
fn challenge(s: &mut TurnServer, now: Instant) -> (Message, Vec<u8>) {
    let req = attrs::request(method::ALLOCATE, [9; 12])
        .with(attrs::requested_transport(attrs::TRANSPORT_UDP))
        .emit();
    let (resp, data) = exchange(s, now, &req);
    assert_eq!(code(&resp), Some(401));
    assert_eq!(check_integrity(&data, &md5_key()), None);
    assert_eq!(check_integrity_sha256(&data, &sha256_key()), None);
    let nonce = attrs::raw_value(&resp, kind::NONCE).unwrap().to_vec();
    (resp, nonce)
}

/// An Allocate with `creds` (identity, REALM, NONCE, algorithm attributes…) then the
/// integrity placeholders, emitted under `key`.
fn allocate_with(creds: Vec<Attribute>, key: &[u8], tid: u8) -> Vec<u8> {
    let mut msg = attrs::request(method::ALLOCATE, [tid; 12])
        .with(attrs::requested_transport(attrs::TRANSPORT_UDP));
    msg.attributes.extend(creds);
    msg.emit_with_integrity(key)
}

fn user() -> Attribute {
    attrs::username("alice")
}

fn hashed_user() -> Attribute {
    attrs::raw(USERHASH, auth::userhash("alice", REALM).to_vec())
}

fn algorithms(v: &[u8]) -> Attribute {
    attrs::raw(PASSWORD_ALGORITHMS, v.to_vec())
}

fn algorithm(a: u16) -> Attribute {
    attrs::raw(PASSWORD_ALGORITHM, [a.to_be_bytes(), [0, 0]].concat())
}

fn mi() -> Attribute {
    attrs::integrity_placeholder()
}

fn mi256(n: usize) -> Attribute {
    attrs::raw(kind::MESSAGE_INTEGRITY_SHA256, vec![0; n])
}

#[test]
fn challenges_carry_the_cookie_and_password_algorithms() {
    let now = epoch();
    let mut s = TurnServer::new(config()).unwrap();
    let (resp, nonce) = challenge(&mut s, now);
    assert!(nonce.starts_with(b"obMatJos2AAAD"), "{nonce:?}");
    assert_eq!(
        SecurityFeatures::from_nonce(&nonce),
        Some(SecurityFeatures {
            password_algorithms: true,
            username_anonymity: true
        })
    );
    assert_eq!(
        attrs::raw_value(&resp, PASSWORD_ALGORITHMS),
        Some(&SHA256_FIRST[..])
    );
    assert_eq!(attrs::raw_value(&resp, kind::REALM), Some(REALM.as_bytes()));

    // RFC 5389 behaviour on request: no algorithms, no anonymity.
    let mut c = config();
    c.password_algorithms.clear();
    c.username_anonymity = false;
    let mut s = TurnServer::new(c).unwrap();
    let (resp, nonce) = challenge(&mut s, now);
    assert!(nonce.starts_with(b"obMatJos2AAAA"));
    assert!(!has(&resp, PASSWORD_ALGORITHMS));

    let mut c = config();
    c.password_algorithms = vec![PasswordAlgorithm::Md5, PasswordAlgorithm::Md5];
    assert_eq!(
        TurnServer::new(c).unwrap_err(),
        TurnConfigError::DuplicatePasswordAlgorithm(PasswordAlgorithm::Md5)
    );
}

#[test]
fn sha256_allocate_with_userhash_and_mi_sha256() {
    let now = epoch();
    let mut s = TurnServer::new(config()).unwrap();
    let (_, nonce) = challenge(&mut s, now);
    let creds = vec![
        hashed_user(),
        attrs::realm(REALM),
        attrs::nonce(&nonce),
        algorithms(&SHA256_FIRST),
        algorithm(2),
        mi256(32),
    ];
    let (resp, data) = exchange(&mut s, now, &allocate_with(creds, &sha256_key(), 1));
    assert_eq!(resp.class, crate::stun::Class::Success, "{resp:?}");
    // §9.2.4: the response carries MESSAGE-INTEGRITY-SHA256 under the SHA-256 key, and
    // no MESSAGE-INTEGRITY.
    assert_eq!(check_integrity_sha256(&data, &sha256_key()), Some(true));
    assert_eq!(check_integrity(&data, &sha256_key()), None);
    let created: Vec<String> = std::iter::from_fn(|| s.poll_event())
        .filter_map(|e| match e {
            TurnEvent::AllocationCreated { user, .. } => Some(user),
            _ => None,
        })
        .collect();
    assert_eq!(created, ["alice"], "the USERHASH named alice");
    // A Refresh with USERNAME and a 16-byte (truncated, §14.6) MESSAGE-INTEGRITY-SHA256.
    let creds = vec![
        user(),
        attrs::realm(REALM),
        attrs::nonce(&nonce),
        algorithms(&SHA256_FIRST),
        algorithm(2),
        mi256(16),
    ];
    let mut msg = attrs::request(method::REFRESH, [2; 12]).with(attrs::lifetime(700));
    msg.attributes.extend(creds);
    let (resp, data) = exchange(&mut s, now, &msg.emit_with_integrity(&sha256_key()));
    assert_eq!(resp.class, crate::stun::Class::Success, "{resp:?}");
    assert_eq!(check_integrity_sha256(&data, &sha256_key()), Some(true));
}

#[test]
fn md5_fallback_for_clients_naming_no_algorithm() {
    let now = epoch();
    let mut s = TurnServer::new(config()).unwrap();
    let (_, nonce) = challenge(&mut s, now);
    // An RFC 5389 client: USERNAME, the nonce as received, MESSAGE-INTEGRITY, MD5 key.
    let creds = vec![user(), attrs::realm(REALM), attrs::nonce(&nonce), mi()];
    let (resp, data) = exchange(&mut s, now, &allocate_with(creds, &md5_key(), 1));
    assert_eq!(resp.class, crate::stun::Class::Success, "{resp:?}");
    assert_eq!(check_integrity(&data, &md5_key()), Some(true));
    assert!(!has(&resp, kind::MESSAGE_INTEGRITY_SHA256));
    // The same client with MESSAGE-INTEGRITY-SHA256 (still the MD5 key) gets it back.
    let mut s = TurnServer::new(config()).unwrap();
    let creds = vec![user(), attrs::realm(REALM), attrs::nonce(&nonce), mi256(32)];
    let (resp, data) = exchange(&mut s, now, &allocate_with(creds, &md5_key(), 1));
    assert_eq!(resp.class, crate::stun::Class::Success, "{resp:?}");
    assert_eq!(check_integrity_sha256(&data, &md5_key()), Some(true));
    assert!(!has(&resp, kind::MESSAGE_INTEGRITY));
    // MD5 negotiated explicitly: MESSAGE-INTEGRITY-SHA256 in the response (§9.2.4), even
    // though the request used MESSAGE-INTEGRITY.
    let mut s = TurnServer::new(config()).unwrap();
    let creds = vec![
        user(),
        attrs::realm(REALM),
        attrs::nonce(&nonce),
        algorithms(&SHA256_FIRST),
        algorithm(1),
        mi(),
    ];
    let (resp, data) = exchange(&mut s, now, &allocate_with(creds, &md5_key(), 1));
    assert_eq!(resp.class, crate::stun::Class::Success, "{resp:?}");
    assert_eq!(check_integrity_sha256(&data, &md5_key()), Some(true));
    assert!(!has(&resp, kind::MESSAGE_INTEGRITY));
}

#[test]
fn both_integrity_attributes() {
    let now = epoch();
    let mut s = TurnServer::new(config()).unwrap();
    let (_, nonce) = challenge(&mut s, now);
    let creds = || {
        vec![
            user(),
            attrs::realm(REALM),
            attrs::nonce(&nonce),
            mi(),
            mi256(32),
        ]
    };
    let (resp, data) = exchange(&mut s, now, &allocate_with(creds(), &md5_key(), 1));
    assert_eq!(resp.class, crate::stun::Class::Success, "{resp:?}");
    // Both back, MESSAGE-INTEGRITY first and covered by MESSAGE-INTEGRITY-SHA256 (§14.6).
    assert_eq!(check_integrity(&data, &md5_key()), Some(true));
    assert_eq!(check_integrity_sha256(&data, &md5_key()), Some(true));
    let mi_at = resp
        .attributes
        .iter()
        .position(|a| a.typ() == kind::MESSAGE_INTEGRITY);
    let sha_at = resp
        .attributes
        .iter()
        .position(|a| a.typ() == kind::MESSAGE_INTEGRITY_SHA256);
    assert!(mi_at < sha_at);
    // MESSAGE-INTEGRITY-SHA256 is the one checked: a broken one fails even with a good
    // MESSAGE-INTEGRITY before it.
    let mut s = TurnServer::new(config()).unwrap();
    let mut bytes = allocate_with(creds(), &md5_key(), 2);
    let n = bytes.len();
    bytes[n - 1] ^= 1; // the last byte of MESSAGE-INTEGRITY-SHA256
    assert_eq!(check_integrity(&bytes, &md5_key()), Some(true));
    let (resp, _) = exchange(&mut s, now, &bytes);
    assert_eq!(code(&resp), Some(401));
    assert_eq!(auth_failures(&mut s), [AuthFailure::BadIntegrity]);
}

#[test]
fn attributes_after_the_integrity_are_ignored() {
    let now = epoch();
    let mut s = TurnServer::new(config()).unwrap();
    let (_, nonce) = challenge(&mut s, now);
    let mut msg = attrs::request(method::ALLOCATE, [1; 12])
        .with(attrs::requested_transport(attrs::TRANSPORT_UDP))
        .with(user())
        .with(attrs::realm(REALM))
        .with(attrs::nonce(&nonce))
        .with(mi());
    // Appended by someone on the path: a LIFETIME and an unknown comprehension-required
    // attribute, neither covered by MESSAGE-INTEGRITY (§14.5).
    msg.attributes.push(attrs::lifetime(3000));
    msg.attributes
        .push(Attribute::Raw(RawAttribute::new(0x7777, vec![1; 4])));
    msg.attributes.push(Attribute::Fingerprint(0));
    let (resp, data) = exchange(&mut s, now, &msg.emit_with_integrity(&md5_key()));
    assert_eq!(resp.class, crate::stun::Class::Success, "{resp:?}");
    assert_eq!(
        attrs::decode_u32(attrs::raw_value(&resp, kind::LIFETIME).unwrap()),
        Some(600),
        "the appended LIFETIME was not used"
    );
    assert!(resp.has_fingerprint(), "FINGERPRINT is still answered");
    assert_eq!(check_integrity(&data, &md5_key()), Some(true));
}

#[test]
fn userhash_lookup() {
    let now = epoch();
    let mut s = TurnServer::new(config()).unwrap();
    let (_, nonce) = challenge(&mut s, now);
    let with = |id: Vec<Attribute>| {
        let mut v = id;
        v.extend([
            attrs::realm(REALM),
            attrs::nonce(&nonce),
            algorithms(&SHA256_FIRST),
            algorithm(2),
            mi256(32),
        ]);
        v
    };
    // bob by USERHASH, bob's key.
    let bob = attrs::raw(USERHASH, auth::userhash("bob", REALM).to_vec());
    let key = auth::long_term_key_sha256("bob", REALM, "hunter2");
    let (resp, _) = exchange(&mut s, now, &allocate_with(with(vec![bob]), &key, 1));
    assert_eq!(resp.class, crate::stun::Class::Success, "{resp:?}");
    // A USERHASH of nobody, of another realm, of a wrong length: 401 UnknownUser.
    for h in [
        auth::userhash("mallory", REALM).to_vec(),
        auth::userhash("alice", "other.org").to_vec(),
        auth::userhash("alice", REALM)[..31].to_vec(),
    ] {
        let mut s = TurnServer::new(config()).unwrap();
        let creds = with(vec![attrs::raw(USERHASH, h)]);
        let (resp, _) = exchange(&mut s, now, &allocate_with(creds, &sha256_key(), 2));
        assert_eq!(code(&resp), Some(401));
        assert!(has(&resp, kind::NONCE) && has(&resp, PASSWORD_ALGORITHMS));
        assert_eq!(auth_failures(&mut s), [AuthFailure::UnknownUser]);
    }
    // USERNAME and USERHASH together: 400, no REALM or NONCE.
    let mut s = TurnServer::new(config()).unwrap();
    let creds = with(vec![user(), hashed_user()]);
    let (resp, _) = exchange(&mut s, now, &allocate_with(creds, &sha256_key(), 3));
    assert_eq!(code(&resp), Some(400));
    assert!(!has(&resp, kind::NONCE) && !has(&resp, kind::REALM));
    assert_eq!(auth_failures(&mut s), [AuthFailure::Incomplete]);
}

#[test]
fn bid_down_attempts_get_400() {
    let now = epoch();
    let mut s = TurnServer::new(config()).unwrap();
    let (_, nonce) = challenge(&mut s, now);
    let cases: Vec<(&str, Vec<Attribute>)> = vec![
        (
            "SHA-256 stripped from the list",
            vec![algorithms(&[0, 1, 0, 0]), algorithm(1)],
        ),
        (
            "list reordered",
            vec![algorithms(&[0, 1, 0, 0, 0, 2, 0, 0]), algorithm(2)],
        ),
        ("PASSWORD-ALGORITHM alone", vec![algorithm(1)]),
        ("PASSWORD-ALGORITHMS alone", vec![algorithms(&SHA256_FIRST)]),
        (
            "an algorithm not offered",
            vec![algorithms(&SHA256_FIRST), algorithm(3)],
        ),
        (
            "an algorithm with parameters",
            vec![
                algorithms(&SHA256_FIRST),
                attrs::raw(PASSWORD_ALGORITHM, vec![0, 2, 0, 4, 1, 2, 3, 4]),
            ],
        ),
        (
            "a malformed PASSWORD-ALGORITHM",
            vec![
                algorithms(&SHA256_FIRST),
                attrs::raw(PASSWORD_ALGORITHM, vec![0, 2]),
            ],
        ),
    ];
    for (what, extra) in cases {
        let mut s = TurnServer::new(config()).unwrap();
        let mut creds = vec![user(), attrs::realm(REALM), attrs::nonce(&nonce)];
        creds.extend(extra);
        creds.push(mi());
        let (resp, data) = exchange(&mut s, now, &allocate_with(creds, &md5_key(), 1));
        assert_eq!(code(&resp), Some(400), "{what}");
        // §9.2.4: a 400 carries neither REALM, NONCE nor integrity.
        assert!(
            !has(&resp, kind::REALM) && !has(&resp, kind::NONCE),
            "{what}"
        );
        assert_eq!(check_integrity(&data, &md5_key()), None, "{what}");
        assert_eq!(
            auth_failures(&mut s),
            [AuthFailure::AlgorithmMismatch],
            "{what}"
        );
        assert!(s.allocations().is_empty());
    }
    // The cookie's feature bits rewritten to announce nothing (so that no check applies):
    // not our nonce any more, 438 with a fresh one.
    let mut s = TurnServer::new(config()).unwrap();
    let mut forged = nonce.clone();
    forged[9..13].copy_from_slice(b"AAAA");
    let creds = vec![user(), attrs::realm(REALM), attrs::nonce(&forged), mi()];
    let (resp, _) = exchange(&mut s, now, &allocate_with(creds, &md5_key(), 1));
    assert_eq!(code(&resp), Some(438));
    // An RFC 5389-style nonce without the cookie is not ours either.
    let creds = vec![
        user(),
        attrs::realm(REALM),
        attrs::nonce(&nonce[13..]),
        mi(),
    ];
    let (resp, _) = exchange(&mut s, now, &allocate_with(creds, &md5_key(), 2));
    assert_eq!(code(&resp), Some(438));
}

fn turn_client(auth: ClientAuth, password: &str) -> TurnClient {
    TurnClient::with_auth(
        ClientConfig {
            server: listen(),
            username: "alice".into(),
            password: password.into(),
            seed: 5,
            transport: Transport::Udp,
        },
        auth,
    )
}

/// Moves datagrams between client and server until both are quiet; `tamper` may rewrite
/// (or drop, returning `None`) each server → client datagram. Returns the client's
/// requests as sent.
fn pump(
    c: &mut TurnClient,
    s: &mut TurnServer,
    now: Instant,
    tamper: &mut dyn FnMut(Vec<u8>) -> Option<Vec<u8>>,
) -> Vec<Message> {
    let mut sent = Vec::new();
    for _ in 0..50 {
        let mut moved = false;
        while let Some(t) = c.poll_transmit() {
            moved = true;
            sent.push(Message::parse(&t.data).unwrap());
            s.handle_input(now, Input::udp(t.to, client_addr(), &t.data));
        }
        while let Some(t) = s.poll_transmit() {
            moved = true;
            if let Some(d) = tamper(t.data) {
                c.handle_input(now, t.from, &d);
            }
        }
        if !moved {
            break;
        }
    }
    sent
}

fn client_events(c: &mut TurnClient) -> Vec<ClientEvent> {
    std::iter::from_fn(|| c.poll_event()).collect()
}

fn no_tamper() -> impl FnMut(Vec<u8>) -> Option<Vec<u8>> {
    Some
}

#[test]
fn turn_client_negotiates_sha256_and_userhash() {
    let now = epoch();
    let mut s = TurnServer::new(config()).unwrap();
    let mut c = turn_client(ClientAuth::default(), "secret");
    c.allocate(now, None, Vec::new());
    let sent = pump(&mut c, &mut s, now, &mut no_tamper());
    assert!(matches!(
        client_events(&mut c)[..],
        [ClientEvent::Allocated { .. }]
    ));
    assert_eq!(c.password_algorithm(), Some(PasswordAlgorithm::Sha256));
    let req = &sent[1];
    assert!(!has(req, kind::USERNAME) && has(req, USERHASH));
    assert_eq!(
        attrs::raw_value(req, PASSWORD_ALGORITHMS),
        Some(&SHA256_FIRST[..])
    );
    assert_eq!(
        attrs::raw_value(req, PASSWORD_ALGORITHM),
        Some(&[0, 2, 0, 0][..])
    );
    assert!(has(req, kind::MESSAGE_INTEGRITY_SHA256) && !has(req, kind::MESSAGE_INTEGRITY));
    // Later requests keep the negotiated credentials.
    c.create_permission(now, vec![sa("192.0.2.50:5000")]);
    let sent = pump(&mut c, &mut s, now, &mut no_tamper());
    assert!(has(&sent[0], USERHASH) && has(&sent[0], kind::MESSAGE_INTEGRITY_SHA256));
    assert!(matches!(
        client_events(&mut c)[..],
        [ClientEvent::PermissionCreated { .. }]
    ));

    // USERHASH off on the client: USERNAME, still SHA-256.
    let mut s = TurnServer::new(config()).unwrap();
    let auth = ClientAuth {
        userhash: false,
        ..ClientAuth::default()
    };
    let mut c = turn_client(auth, "secret");
    c.allocate(now, None, Vec::new());
    let sent = pump(&mut c, &mut s, now, &mut no_tamper());
    assert!(has(&sent[1], kind::USERNAME) && !has(&sent[1], USERHASH));
    assert!(matches!(
        client_events(&mut c)[..],
        [ClientEvent::Allocated { .. }]
    ));
}

#[test]
fn turn_client_md5_paths() {
    let now = epoch();
    // A client that supports MD5 only takes MD5 from the list: PASSWORD-ALGORITHM MD5,
    // MESSAGE-INTEGRITY-SHA256 under the MD5 key.
    let mut s = TurnServer::new(config()).unwrap();
    let auth = ClientAuth {
        algorithms: vec![PasswordAlgorithm::Md5],
        ..ClientAuth::default()
    };
    let mut c = turn_client(auth, "secret");
    c.allocate(now, None, Vec::new());
    let sent = pump(&mut c, &mut s, now, &mut no_tamper());
    assert_eq!(
        attrs::raw_value(&sent[1], PASSWORD_ALGORITHM),
        Some(&[0, 1, 0, 0][..])
    );
    assert_eq!(c.password_algorithm(), Some(PasswordAlgorithm::Md5));
    assert!(matches!(
        client_events(&mut c)[..],
        [ClientEvent::Allocated { .. }]
    ));
    // A server offering nothing (RFC 5389 behaviour): MD5 and MESSAGE-INTEGRITY.
    let mut cfg = config();
    cfg.password_algorithms.clear();
    cfg.username_anonymity = false;
    let mut s = TurnServer::new(cfg).unwrap();
    let mut c = turn_client(ClientAuth::default(), "secret");
    c.allocate(now, None, Vec::new());
    let sent = pump(&mut c, &mut s, now, &mut no_tamper());
    let req = &sent[1];
    assert!(has(req, kind::USERNAME) && has(req, kind::MESSAGE_INTEGRITY));
    assert!(!has(req, PASSWORD_ALGORITHM) && !has(req, kind::MESSAGE_INTEGRITY_SHA256));
    assert_eq!(c.password_algorithm(), Some(PasswordAlgorithm::Md5));
    assert!(matches!(
        client_events(&mut c)[..],
        [ClientEvent::Allocated { .. }]
    ));
    // A server offering MD5 only to a SHA-256-only client: no retry.
    let mut cfg = config();
    cfg.password_algorithms = vec![PasswordAlgorithm::Md5];
    let mut s = TurnServer::new(cfg).unwrap();
    let auth = ClientAuth {
        algorithms: vec![PasswordAlgorithm::Sha256],
        ..ClientAuth::default()
    };
    let mut c = turn_client(auth, "secret");
    c.allocate(now, None, Vec::new());
    let sent = pump(&mut c, &mut s, now, &mut no_tamper());
    assert_eq!(sent.len(), 1);
    assert!(matches!(
        &client_events(&mut c)[..],
        [ClientEvent::Failed { code: 401, .. }]
    ));
}

#[test]
fn turn_client_detects_bid_down_and_unprotected_responses() {
    let now = epoch();
    // PASSWORD-ALGORITHMS stripped from the 401 on the way: the cookie still says the
    // server has them, so the client does not answer (§9.2.5).
    let mut s = TurnServer::new(config()).unwrap();
    let mut c = turn_client(ClientAuth::default(), "secret");
    c.allocate(now, None, Vec::new());
    let mut strip = |d: Vec<u8>| {
        let mut m = Message::parse(&d).unwrap();
        m.attributes.retain(|a| a.typ() != PASSWORD_ALGORITHMS);
        Some(m.emit())
    };
    let sent = pump(&mut c, &mut s, now, &mut strip);
    assert_eq!(sent.len(), 1, "no retry after the stripped challenge");
    match &client_events(&mut c)[..] {
        [
            ClientEvent::Failed {
                code: 401, reason, ..
            },
        ] => assert!(reason.contains("bid-down")),
        other => panic!("{other:?}"),
    }

    // Once SHA-256 is in use, a success response with only a (valid) MESSAGE-INTEGRITY
    // is not accepted: the request stays pending and is retransmitted.
    let mut s = TurnServer::new(config()).unwrap();
    let mut c = turn_client(ClientAuth::default(), "secret");
    c.allocate(now, None, Vec::new());
    let mut downgrade = |d: Vec<u8>| {
        let mut m = Message::parse(&d).unwrap();
        if m.class != crate::stun::Class::Success {
            return Some(d);
        }
        m.attributes
            .retain(|a| a.typ() != kind::MESSAGE_INTEGRITY_SHA256 && a.typ() != kind::FINGERPRINT);
        m.attributes.push(attrs::integrity_placeholder());
        Some(m.emit_with_integrity(&sha256_key()))
    };
    pump(&mut c, &mut s, now, &mut downgrade);
    assert!(client_events(&mut c).is_empty());
    assert!(c.poll_timeout().is_some(), "still waiting");
    // The retransmission gets the server's stored, proper response.
    c.handle_timeout(now + Duration::from_secs(1));
    pump(
        &mut c,
        &mut s,
        now + Duration::from_secs(1),
        &mut no_tamper(),
    );
    assert!(matches!(
        client_events(&mut c)[..],
        [ClientEvent::Allocated { .. }]
    ));
}

#[test]
fn stale_nonce_keeps_the_algorithm_list_and_wrong_password_fails() {
    let now = epoch();
    let mut cfg = config();
    cfg.nonce_lifetime = Duration::from_secs(60);
    let mut s = TurnServer::new(cfg).unwrap();
    s.handle_timeout(now); // the server's epoch
    let mut c = turn_client(ClientAuth::default(), "secret");
    c.allocate(now, None, Vec::new());
    pump(&mut c, &mut s, now, &mut no_tamper());
    assert!(matches!(
        client_events(&mut c)[..],
        [ClientEvent::Allocated { .. }]
    ));
    assert_eq!(auth_failures(&mut s), [AuthFailure::NoCredentials]);
    // Two minutes on the nonce is stale: 438 with REALM, a new NONCE and the same
    // PASSWORD-ALGORITHMS; the client retries with SHA-256 and succeeds.
    let later = now + Duration::from_secs(120);
    c.refresh(later, 600);
    let mut seen = Vec::new();
    let mut record = |d: Vec<u8>| {
        seen.push(Message::parse(&d).unwrap());
        Some(d)
    };
    let sent = pump(&mut c, &mut s, later, &mut record);
    assert_eq!(code(&seen[0]), Some(438));
    assert!(has(&seen[0], kind::REALM) && has(&seen[0], kind::NONCE));
    assert_eq!(
        attrs::raw_value(&seen[0], PASSWORD_ALGORITHMS),
        Some(&SHA256_FIRST[..])
    );
    assert_eq!(auth_failures(&mut s), [AuthFailure::StaleNonce]);
    assert_ne!(
        attrs::raw_value(&sent[0], kind::NONCE),
        attrs::raw_value(&sent[1], kind::NONCE)
    );
    assert_eq!(
        attrs::raw_value(&sent[1], PASSWORD_ALGORITHM),
        Some(&[0, 2, 0, 0][..])
    );
    assert!(matches!(
        client_events(&mut c)[..],
        [ClientEvent::Refreshed { .. }]
    ));

    // The wrong password under SHA-256: 401 BadIntegrity, and the client gives up.
    let mut s = TurnServer::new(config()).unwrap();
    let mut c = turn_client(ClientAuth::default(), "wrong");
    c.allocate(now, None, Vec::new());
    let sent = pump(&mut c, &mut s, now, &mut no_tamper());
    assert_eq!(sent.len(), 2);
    assert_eq!(
        auth_failures(&mut s),
        [AuthFailure::NoCredentials, AuthFailure::BadIntegrity]
    );
    assert!(matches!(
        client_events(&mut c)[..],
        [ClientEvent::Failed { code: 401, .. }]
    ));
    assert!(s.allocations().is_empty());
}
