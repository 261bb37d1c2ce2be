//! Cross-checks `relay::turn` against an independent implementation (stun-rs, `turn`
//! feature): a stun-rs client authenticates with long-term credentials (its own MD5 key,
//! and RFC 8489's SHA-256 key with USERHASH, PASSWORD-ALGORITHMS/PASSWORD-ALGORITHM and
//! MESSAGE-INTEGRITY-SHA256) and allocates on our server; stun-rs decodes our responses
//! and validates their MESSAGE-INTEGRITY(-SHA256); our codec decodes stun-rs's TURN
//! attributes.
#![allow(clippy::disallowed_methods)] // tests: any instant will do

use std::net::SocketAddr;
use std::time::Instant;

use relay::turn::attrs::{self, kind};
use relay::turn::auth::long_term_key_sha256;
use relay::turn::{Input, TurnConfig, TurnServer, long_term_key, userhash};
use stun_rs::attributes::stun::{
    ErrorCode as TheirErrorCode, MessageIntegrity, MessageIntegritySha256, Nonce,
    PasswordAlgorithm, PasswordAlgorithms, Realm, UserHash, UserName,
};
use stun_rs::attributes::turn::{
    ChannelNumber, Data, LifeTime, RequestedTrasport, XorPeerAddress, XorRelayedAddress,
};
use stun_rs::methods::{ALLOCATE, CHANNEL_BIND, SEND};
use stun_rs::{
    Algorithm, AlgorithmId, DecoderContextBuilder, HMACKey, MessageClass, MessageDecoderBuilder,
    MessageEncoderBuilder, StunMessage, StunMessageBuilder, protocols,
};

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn encode(msg: &StunMessage) -> Vec<u8> {
    let mut buf = vec![0u8; 2048];
    let n = MessageEncoderBuilder::default()
        .build()
        .encode(&mut buf, msg)
        .unwrap();
    buf.truncate(n);
    buf
}

fn decode(bytes: &[u8], key: Option<HMACKey>) -> StunMessage {
    let mut ctx = DecoderContextBuilder::default().with_validation();
    if let Some(k) = key {
        ctx = ctx.with_key(k);
    }
    let (msg, n) = MessageDecoderBuilder::default()
        .with_context(ctx.build())
        .build()
        .decode(bytes)
        .unwrap();
    assert_eq!(n, bytes.len());
    msg
}

#[test]
fn stun_rs_client_allocates_and_binds_on_our_server() {
    let listen = sa("203.0.113.1:3478");
    let client = sa("198.51.100.10:40000");
    let mut config = TurnConfig::new(listen, "203.0.113.2".parse().unwrap(), "example.org")
        .user("alice", "secret");
    config.relay_ports = (50000, 50099);
    let mut server = TurnServer::new(config).unwrap();
    let now = Instant::now();
    let exchange = |server: &mut TurnServer, bytes: &[u8]| {
        server.handle_input(now, Input::udp(listen, client, bytes));
        let t = server.poll_transmit().expect("a response");
        assert!(server.poll_transmit().is_none());
        t.data
    };

    // 1. Unauthenticated Allocate: their decoder reads our 401, REALM and NONCE.
    let req = StunMessageBuilder::new(ALLOCATE, MessageClass::Request)
        .with_attribute(RequestedTrasport::new(protocols::UDP))
        .build();
    let resp = decode(&exchange(&mut server, &encode(&req)), None);
    assert_eq!(resp.class(), MessageClass::ErrorResponse);
    let err = resp
        .get::<TheirErrorCode>()
        .unwrap()
        .as_error_code()
        .unwrap();
    assert_eq!(err.error_code().error_code(), 401);
    let realm = resp
        .get::<Realm>()
        .unwrap()
        .as_realm()
        .unwrap()
        .as_str()
        .to_owned();
    let nonce = resp
        .get::<Nonce>()
        .unwrap()
        .as_nonce()
        .unwrap()
        .as_str()
        .to_owned();
    assert_eq!(realm, "example.org");

    // 2. Their long-term key equals ours: MD5("alice:example.org:secret").
    let key = HMACKey::new_long_term(
        "alice",
        &realm,
        "secret",
        Algorithm::new(AlgorithmId::MD5, None),
    )
    .unwrap();
    assert_eq!(key.as_bytes(), long_term_key("alice", &realm, "secret"));

    // 3. Authenticated Allocate, their MESSAGE-INTEGRITY: our server accepts it, and their
    //    decoder validates the MESSAGE-INTEGRITY of our success response.
    let credentials = |b: StunMessageBuilder| {
        b.with_attribute(UserName::new("alice").unwrap())
            .with_attribute(Realm::new(&realm).unwrap())
            .with_attribute(Nonce::new(&nonce).unwrap())
            .with_attribute(MessageIntegrity::new(key.clone()))
            .build()
    };
    let req = credentials(
        StunMessageBuilder::new(ALLOCATE, MessageClass::Request)
            .with_attribute(RequestedTrasport::new(protocols::UDP)),
    );
    let resp = decode(&exchange(&mut server, &encode(&req)), Some(key.clone()));
    assert_eq!(resp.class(), MessageClass::SuccessResponse, "{resp:?}");
    let relayed = *resp
        .get::<XorRelayedAddress>()
        .unwrap()
        .as_xor_relayed_address()
        .unwrap()
        .socket_address();
    assert_eq!(relayed.ip(), sa("203.0.113.2:1").ip());
    assert!((50000..=50099).contains(&relayed.port()));
    let lifetime = resp.get::<LifeTime>().unwrap().as_life_time().unwrap();
    assert_eq!(*lifetime, 600);
    assert_eq!(server.relayed_sockets(), vec![relayed]);

    // 4. Their ChannelBind (CHANNEL-NUMBER, XOR-PEER-ADDRESS) is understood.
    let peer = sa("192.0.2.50:5000");
    let req = credentials(
        StunMessageBuilder::new(CHANNEL_BIND, MessageClass::Request)
            .with_attribute(ChannelNumber::new(0x4001))
            .with_attribute(XorPeerAddress::from(peer)),
    );
    let resp = decode(&exchange(&mut server, &encode(&req)), Some(key.clone()));
    assert_eq!(resp.class(), MessageClass::SuccessResponse, "{resp:?}");
    assert_eq!(server.allocations()[0].channels, vec![(0x4001, peer)]);

    // 5. Their Send indication (XOR-PEER-ADDRESS, DATA) is relayed.
    let ind = StunMessageBuilder::new(SEND, MessageClass::Indication)
        .with_attribute(XorPeerAddress::from(peer))
        .with_attribute(Data::new(b"from stun-rs"))
        .build();
    server.handle_input(now, Input::udp(listen, client, &encode(&ind)));
    let t = server.poll_transmit().unwrap();
    assert_eq!(
        (t.from, t.to, &t.data[..]),
        (relayed, peer, &b"from stun-rs"[..])
    );
}

#[test]
fn stun_rs_client_with_sha256_userhash_allocates_on_our_server() {
    let listen = sa("203.0.113.1:3478");
    let client = sa("198.51.100.10:40000");
    let mut config = TurnConfig::new(listen, "203.0.113.2".parse().unwrap(), "example.org")
        .user("alice", "secret");
    config.relay_ports = (50000, 50099);
    let mut server = TurnServer::new(config).unwrap();
    let now = Instant::now();
    let exchange = |server: &mut TurnServer, bytes: &[u8]| {
        server.handle_input(now, Input::udp(listen, client, bytes));
        let t = server.poll_transmit().expect("a response");
        assert!(server.poll_transmit().is_none());
        t.data
    };

    // 1. The 401: their decoder reads our nonce cookie and PASSWORD-ALGORITHMS.
    let req = StunMessageBuilder::new(ALLOCATE, MessageClass::Request)
        .with_attribute(RequestedTrasport::new(protocols::UDP))
        .build();
    let resp = decode(&exchange(&mut server, &encode(&req)), None);
    let nonce = resp.get::<Nonce>().unwrap().as_nonce().unwrap().clone();
    assert!(nonce.is_nonce_cookie(), "{nonce:?}");
    // Our feature bits are "AAAD" (both features, bits numbered from the right as
    // verified erratum 6290 has it); stun-rs 0.1.11 numbers them from the left, so its
    // security_features() cannot be compared — the raw characters are.
    assert_eq!(&nonce.as_str()[9..13], "AAAD");
    let offered: Vec<AlgorithmId> = resp
        .get::<PasswordAlgorithms>()
        .unwrap()
        .as_password_algorithms()
        .unwrap()
        .iter()
        .map(|a| a.algorithm())
        .collect();
    assert_eq!(offered, [AlgorithmId::SHA256, AlgorithmId::MD5]);

    // 2. Their SHA-256 key and USERHASH equal ours.
    let sha256 = Algorithm::new(AlgorithmId::SHA256, None);
    let key = HMACKey::new_long_term("alice", "example.org", "secret", &sha256).unwrap();
    assert_eq!(
        key.as_bytes(),
        long_term_key_sha256("alice", "example.org", "secret")
    );
    let hash = UserHash::new("alice", "example.org").unwrap();
    assert_eq!(hash.hash(), userhash("alice", "example.org"));

    // 3. Their authenticated Allocate — USERHASH, the echoed PASSWORD-ALGORITHMS (their
    //    encoding), PASSWORD-ALGORITHM SHA-256, MESSAGE-INTEGRITY-SHA256: our server
    //    accepts it, and their decoder validates our MESSAGE-INTEGRITY-SHA256.
    let mut algorithms = PasswordAlgorithms::default();
    algorithms.add(PasswordAlgorithm::new(sha256.clone()));
    algorithms.add(PasswordAlgorithm::new(Algorithm::new(
        AlgorithmId::MD5,
        None,
    )));
    let req = StunMessageBuilder::new(ALLOCATE, MessageClass::Request)
        .with_attribute(RequestedTrasport::new(protocols::UDP))
        .with_attribute(hash)
        .with_attribute(Realm::new("example.org").unwrap())
        .with_attribute(nonce)
        .with_attribute(algorithms)
        .with_attribute(PasswordAlgorithm::new(sha256))
        .with_attribute(MessageIntegritySha256::new(key.clone()))
        .build();
    let bytes = exchange(&mut server, &encode(&req));
    let resp = decode(&bytes, Some(key));
    assert_eq!(resp.class(), MessageClass::SuccessResponse, "{resp:?}");
    assert!(resp.get::<MessageIntegritySha256>().is_some());
    assert!(resp.get::<MessageIntegrity>().is_none());
    let relayed = *resp
        .get::<XorRelayedAddress>()
        .unwrap()
        .as_xor_relayed_address()
        .unwrap()
        .socket_address();
    assert_eq!(server.relayed_sockets(), vec![relayed]);
    assert_eq!(server.allocations()[0].user, "alice");
    // A changed byte in our response fails their validation.
    let mut tampered = bytes.clone();
    tampered[bytes.len() - 1] ^= 1;
    let key = HMACKey::new_long_term(
        "alice",
        "example.org",
        "secret",
        Algorithm::new(AlgorithmId::SHA256, None),
    )
    .unwrap();
    let ctx = DecoderContextBuilder::default()
        .with_validation()
        .with_key(key)
        .build();
    assert!(
        MessageDecoderBuilder::default()
            .with_context(ctx)
            .build()
            .decode(&tampered)
            .is_err()
    );
}

#[test]
fn our_turn_attributes_their_decoder() {
    let tid = relay::stun::TransactionId::new([3; 12]);
    let peer = sa("[2001:db8::5]:7000");
    let bytes = relay::stun::Message::new(
        relay::stun::Class::Indication,
        relay::turn::attrs::method::DATA,
        tid,
    )
    .with(attrs::xor_address(kind::XOR_PEER_ADDRESS, peer, &tid))
    .with(attrs::data(b"xyz"))
    .with(attrs::channel_number(0x4FFF))
    .with(attrs::lifetime(1234))
    .emit();
    let theirs = decode(&bytes, None);
    assert_eq!(
        *theirs
            .get::<XorPeerAddress>()
            .unwrap()
            .as_xor_peer_address()
            .unwrap()
            .socket_address(),
        peer
    );
    assert_eq!(
        theirs.get::<Data>().unwrap().as_data().unwrap().as_bytes(),
        b"xyz"
    );
    assert_eq!(
        theirs
            .get::<ChannelNumber>()
            .unwrap()
            .as_channel_number()
            .unwrap()
            .number(),
        0x4FFF
    );
    assert_eq!(
        *theirs.get::<LifeTime>().unwrap().as_life_time().unwrap(),
        1234
    );
}
