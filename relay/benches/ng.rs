//! ng control cost: decoding an offer as Kamailio's rtpengine module sends it, encoding the
//! proxy's offer, with and without the HMAC-SHA256 `auth`, and one request → reply through
//! the sans-IO client. Figures are printed by criterion.

#![allow(clippy::disallowed_methods)] // a benchmark takes one real Instant for `now`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use relay::control::ng::{
    Ice, NgCommand, NgMessage, NgReply, OfferAnswer, decode, encode_reply, encode_request,
};
use relay::control::{ClientConfig, ClientOutcome, NgClient};
use std::hint::black_box;
use std::time::Instant;

const SDP: &str = "v=0\r\no=- 1 1 IN IP4 10.0.1.10\r\ns=-\r\nc=IN IP4 10.0.1.10\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n";

fn offer() -> NgCommand {
    NgCommand::Offer(OfferAnswer {
        call_id: "a84b4c76e66710@pc33".into(),
        from_tag: "1928301774".into(),
        sdp: SDP.as_bytes().to_vec(),
        received_from: Some("203.0.113.11".parse().unwrap()),
        received_from_port: Some(40000),
        user_agent: Some("Linphone/5.2".into()),
        ice: Some(Ice::Remove),
        replace: vec!["origin".into(), "session-connection".into()],
        ..OfferAnswer::default()
    })
}

fn codec(c: &mut Criterion) {
    let cmd = offer();
    let plain = encode_request(b"4242_17", &cmd, None);
    let signed = encode_request(b"4242_17", &cmd, Some(b"shared secret"));
    // measure real work: both decode to the command, the signed one only with its secret
    assert_eq!(
        decode(&signed, Some(b"shared secret")).unwrap().message,
        Ok(NgMessage::Request(cmd.clone()))
    );
    assert!(decode(&signed, Some(b"wrong")).unwrap().message.is_err());
    let mut g = c.benchmark_group("ng");
    g.throughput(Throughput::Elements(1));
    g.bench_function("decode offer", |b| {
        b.iter(|| decode(black_box(&plain), None).unwrap())
    });
    g.bench_function("decode and verify signed offer", |b| {
        b.iter(|| decode(black_box(&signed), Some(b"shared secret")).unwrap())
    });
    g.bench_function("encode offer", |b| {
        b.iter(|| encode_request(b"4242_17", black_box(&cmd), None))
    });
    g.bench_function("encode signed offer", |b| {
        b.iter(|| encode_request(b"4242_17", black_box(&cmd), Some(b"shared secret")))
    });
    let relay = "203.0.113.5:2223".parse().unwrap();
    let mut client = NgClient::new(ClientConfig::new("203.0.113.1:5060".parse().unwrap()));
    let now = Instant::now();
    let reply = NgReply::Ok {
        sdp: Some(SDP.as_bytes().to_vec()),
        extra: Default::default(),
    };
    g.bench_function("client offer then reply", |b| {
        b.iter(|| {
            client.send(now, relay, black_box(&cmd));
            let t = client.poll_transmit().unwrap();
            let cookie = decode(&t.data, None).unwrap().cookie;
            let r = encode_reply(&cookie, &reply, None);
            let out = client.handle_datagram(now, relay, &r);
            assert!(matches!(out, Some(ClientOutcome::Reply { .. })));
        })
    });
    g.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
