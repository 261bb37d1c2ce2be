//! Cross-checks `relay::stun` against an independent implementation (stun-rs):
//! each side decodes what the other encodes, including RFC 5780 attributes,
//! FINGERPRINT and MESSAGE-INTEGRITY.
#![allow(clippy::disallowed_methods)] // tests: any instant will do

use std::net::SocketAddr;
use std::time::Instant;

use relay::stun::integrity::{check_integrity, check_integrity_sha256};
use relay::stun::{
    Attribute, ChangeRequest, Class, Message, Method, Server, ServerConfig, TransactionId,
};
use stun_rs::attributes::discovery::{
    ChangeRequest as TheirChangeRequest, ChangeRequestFlags, OtherAddress, Padding, ResponseOrigin,
    ResponsePort,
};
use stun_rs::attributes::stun::{
    Fingerprint, MessageIntegrity, MessageIntegritySha256, Software, UserName, XorMappedAddress,
};
use stun_rs::methods::BINDING;
use stun_rs::{
    DecoderContextBuilder, HMACKey, MessageClass, MessageDecoderBuilder, MessageEncoderBuilder,
    StunMessageBuilder,
};

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn encode(msg: &stun_rs::StunMessage) -> Vec<u8> {
    let mut buf = vec![0u8; 2048];
    let n = MessageEncoderBuilder::default()
        .build()
        .encode(&mut buf, msg)
        .unwrap();
    buf.truncate(n);
    buf
}

#[test]
fn their_request_our_parser_and_server() {
    let flags = ChangeRequestFlags::ChangeIp | ChangeRequestFlags::ChangePort;
    let theirs = StunMessageBuilder::new(BINDING, MessageClass::Request)
        .with_attribute(TheirChangeRequest::new(Some(flags)))
        .with_attribute(Software::new("interop client").unwrap())
        .with_attribute(Fingerprint::default())
        .build();
    let bytes = encode(&theirs);
    let ours = Message::parse(&bytes).unwrap();
    assert_eq!(ours.class, Class::Request);
    assert_eq!(ours.method, Method::Binding);
    assert_eq!(
        ours.transaction_id.id()[..],
        theirs.transaction_id().as_ref()[..]
    );
    assert_eq!(
        ours.attributes[..2],
        [
            Attribute::ChangeRequest(ChangeRequest {
                change_ip: true,
                change_port: true
            }),
            Attribute::Software("interop client".into())
        ]
    );
    assert!(ours.has_fingerprint());
    assert_eq!(
        ours.emit(),
        bytes,
        "byte-exact re-emission of a foreign message"
    );

    // Our server answers; stun-rs decodes and validates the FINGERPRINT.
    let mut config = ServerConfig::new(sa("198.51.100.1:3478"));
    config.alternate = Some("198.51.100.2".parse().unwrap());
    let mut server = Server::new(config).unwrap();
    let client = sa("203.0.113.7:40000");
    server.handle_input(Instant::now(), sa("198.51.100.1:3478"), client, &bytes);
    let t = server.poll_transmit().unwrap();
    assert_eq!(t.from, sa("198.51.100.2:3479"));
    let ctx = DecoderContextBuilder::default().with_validation().build();
    let (resp, _) = MessageDecoderBuilder::default()
        .with_context(ctx)
        .build()
        .decode(&t.data)
        .unwrap();
    assert_eq!(resp.class(), MessageClass::SuccessResponse);
    assert_eq!(resp.transaction_id(), theirs.transaction_id());
    let xma = resp
        .get::<XorMappedAddress>()
        .unwrap()
        .as_xor_mapped_address()
        .unwrap();
    assert_eq!(*xma.socket_address(), client);
    let origin = resp
        .get::<ResponseOrigin>()
        .unwrap()
        .as_response_origin()
        .unwrap();
    assert_eq!(*origin.socket_address(), sa("198.51.100.2:3479"));
    let other = resp
        .get::<OtherAddress>()
        .unwrap()
        .as_other_address()
        .unwrap();
    assert_eq!(*other.socket_address(), sa("198.51.100.2:3479"));
    assert!(resp.get::<Fingerprint>().is_some());
}

#[test]
fn our_messages_their_decoder() {
    for mapped in [
        sa("192.0.2.1:32853"),
        sa("[2001:db8:1234:5678:11:2233:4455:6677]:32853"),
    ] {
        let ours = Message::new(Class::Request, Method::Binding, TransactionId::new([9; 12]))
            .with(Attribute::XorMappedAddress(mapped))
            .with(Attribute::ResponseOrigin(mapped))
            .with(Attribute::OtherAddress(mapped))
            .with(Attribute::ChangeRequest(ChangeRequest {
                change_ip: false,
                change_port: true,
            }))
            .with(Attribute::ResponsePort(4321))
            .with(Attribute::Padding(b"0123456".to_vec()))
            .with(Attribute::Software("pinhole".into()))
            .with(Attribute::Fingerprint(0));
        let bytes = ours.emit();
        let ctx = DecoderContextBuilder::default().with_validation().build();
        let (theirs, n) = MessageDecoderBuilder::default()
            .with_context(ctx)
            .build()
            .decode(&bytes)
            .unwrap();
        assert_eq!(n, bytes.len());
        let x = theirs
            .get::<XorMappedAddress>()
            .unwrap()
            .as_xor_mapped_address()
            .unwrap();
        assert_eq!(*x.socket_address(), mapped);
        let o = theirs
            .get::<OtherAddress>()
            .unwrap()
            .as_other_address()
            .unwrap();
        assert_eq!(*o.socket_address(), mapped);
        let c = theirs
            .get::<TheirChangeRequest>()
            .unwrap()
            .as_change_request()
            .unwrap();
        assert_eq!(c.flags(), ChangeRequestFlags::ChangePort);
        let p = theirs
            .get::<ResponsePort>()
            .unwrap()
            .as_response_port()
            .unwrap();
        assert_eq!(p.as_u16(), 4321);
        let pad = theirs.get::<Padding>().unwrap().as_padding().unwrap();
        assert_eq!(AsRef::<str>::as_ref(pad), "0123456");
    }
}

#[test]
fn their_message_integrity_our_check() {
    let password = "VOkJxbRl1RmTxUk/WvJxBt";
    let key = HMACKey::new_short_term(password).unwrap();
    let theirs = StunMessageBuilder::new(BINDING, MessageClass::Request)
        .with_attribute(UserName::new("evtj:h6vY").unwrap())
        .with_attribute(MessageIntegrity::new(key))
        .with_attribute(Fingerprint::default())
        .build();
    let bytes = encode(&theirs);
    assert_eq!(check_integrity(&bytes, password.as_bytes()), Some(true));
    assert_eq!(check_integrity(&bytes, b"not the password"), Some(false));
    // And ours verifies under theirs.
    let ours = Message::parse(&bytes).unwrap();
    let mut zeroed = ours.clone();
    for a in &mut zeroed.attributes {
        if let Attribute::Raw(raw) = a
            && raw.typ == 0x0008
        {
            raw.value = vec![0; 20];
        }
    }
    assert_eq!(zeroed.emit_with_integrity(password.as_bytes()), bytes);
}

/// MESSAGE-INTEGRITY-SHA256 (RFC 8489 §14.6) both ways: theirs verifies under ours, and
/// ours (same bytes re-emitted) decodes under theirs with validation on and a key.
#[test]
fn their_message_integrity_sha256_our_check_and_back() {
    let password = "VOkJxbRl1RmTxUk/WvJxBt";
    let key = HMACKey::new_short_term(password).unwrap();
    let theirs = StunMessageBuilder::new(BINDING, MessageClass::Request)
        .with_attribute(UserName::new("evtj:h6vY").unwrap())
        .with_attribute(MessageIntegrity::new(key.clone()))
        .with_attribute(MessageIntegritySha256::new(key.clone()))
        .with_attribute(Fingerprint::default())
        .build();
    let bytes = encode(&theirs);
    assert_eq!(check_integrity(&bytes, password.as_bytes()), Some(true));
    assert_eq!(
        check_integrity_sha256(&bytes, password.as_bytes()),
        Some(true)
    );
    assert_eq!(check_integrity_sha256(&bytes, b"nope"), Some(false));
    let mut zeroed = Message::parse(&bytes).unwrap();
    for a in &mut zeroed.attributes {
        if let Attribute::Raw(raw) = a
            && (raw.typ == 0x0008 || raw.typ == 0x001C)
        {
            raw.value.iter_mut().for_each(|b| *b = 0);
        }
    }
    let ours = zeroed.emit_with_integrity(password.as_bytes());
    assert_eq!(ours, bytes);
    let ctx = DecoderContextBuilder::default()
        .with_key(key)
        .with_validation()
        .build();
    let (decoded, n) = MessageDecoderBuilder::default()
        .with_context(ctx)
        .build()
        .decode(&ours)
        .unwrap();
    assert_eq!(n, ours.len());
    assert!(decoded.get::<MessageIntegritySha256>().is_some());
}
