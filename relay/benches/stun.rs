//! STUN codec and server cost: decode, encode, MESSAGE-INTEGRITY, and a whole Binding
//! request → response through the sans-IO server. Figures are printed by criterion.

#![allow(clippy::disallowed_methods)] // a benchmark takes one real Instant for `now`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use relay::stun::{
    Attribute, Class, Message, Method, RawAttribute, Server, ServerConfig, TransactionId,
};
use std::hint::black_box;
use std::time::Instant;

fn binding_response() -> Message {
    Message::new(Class::Success, Method::Binding, TransactionId::new([7; 12]))
        .with(Attribute::XorMappedAddress(
            "203.0.113.11:40000".parse().unwrap(),
        ))
        .with(Attribute::ResponseOrigin(
            "203.0.113.5:3478".parse().unwrap(),
        ))
        .with(Attribute::OtherAddress("203.0.113.6:3479".parse().unwrap()))
        .with(Attribute::Software("pinhole bench".into()))
}

fn codec(c: &mut Criterion) {
    let msg = binding_response();
    let bytes = msg.emit();
    let key = b"a long-term credential key";
    // MESSAGE-INTEGRITY is filled into its placeholder attribute, then FINGERPRINT.
    let signed_msg = binding_response()
        .with(Attribute::Raw(RawAttribute::new(
            relay::stun::attr::kind::MESSAGE_INTEGRITY,
            vec![0; 20],
        )))
        .with(Attribute::Fingerprint(0));
    let signed = signed_msg.emit_with_integrity(key);
    // Measure real work only: the signature must verify, and fail with another key.
    assert_eq!(
        relay::stun::integrity::check_integrity(&signed, key),
        Some(true)
    );
    assert_eq!(
        relay::stun::integrity::check_integrity(&signed, b"wrong"),
        Some(false)
    );
    let mut g = c.benchmark_group("stun");
    g.throughput(Throughput::Elements(1));
    g.bench_function("decode binding response", |b| {
        b.iter(|| Message::parse(black_box(&bytes)).unwrap())
    });
    g.bench_function("encode binding response", |b| {
        b.iter(|| black_box(&msg).emit())
    });
    g.bench_function("encode with MESSAGE-INTEGRITY and FINGERPRINT", |b| {
        b.iter(|| black_box(&signed_msg).emit_with_integrity(key))
    });
    g.bench_function("verify MESSAGE-INTEGRITY", |b| {
        b.iter(|| relay::stun::integrity::check_integrity(black_box(&signed), key))
    });
    let mut server = Server::new(ServerConfig {
        primary: "203.0.113.5:3478".parse().unwrap(),
        alternate: Some("203.0.113.6".parse().unwrap()),
        alternate_port: None,
        software: None,
    })
    .unwrap();
    let request = Message::new(Class::Request, Method::Binding, TransactionId::new([9; 12])).emit();
    let now = Instant::now();
    let local = "203.0.113.5:3478".parse().unwrap();
    let remote = "198.51.100.7:50000".parse().unwrap();
    g.bench_function("server: binding request to response", |b| {
        b.iter(|| {
            server.handle_input(now, local, remote, black_box(&request));
            let t = server.poll_transmit().unwrap();
            while server.poll_event().is_some() {}
            t
        })
    });
    g.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
