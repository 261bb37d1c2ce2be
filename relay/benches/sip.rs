//! SIP message layer and proxy cost: parse and serialise a typical INVITE (with SDP),
//! the typed views a proxy reads, and one INVITE through the sans-IO proxy (100 Trying +
//! forward with Via/Record-Route/Max-Forwards edits). Figures are printed by criterion.

#![allow(clippy::disallowed_methods)] // a benchmark takes one real Instant for `now`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use relay::sip::proxy::{Input, Proxy, ProxyConfig};
use relay::sip::{Flow, Message, Transport};
use std::hint::black_box;
use std::time::Instant;

const INVITE: &[u8] = b"INVITE sip:bob@example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.168.1.10:5060;branch=z9hG4bK776asdhds;rport\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@example.com>\r\n\
From: Alice <sip:alice@example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@192.168.1.10:5060>\r\n\
Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, UPDATE\r\n\
Supported: replaces, timer\r\n\
User-Agent: pinhole-bench\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 144\r\n\
\r\n\
v=0\r\n\
o=alice 2890844526 2890844526 IN IP4 192.168.1.10\r\n\
s=-\r\n\
c=IN IP4 192.168.1.10\r\n\
t=0 0\r\n\
m=audio 49170 RTP/AVP 0 8 101\r\n\
a=rtpmap:0 PCMU/8000\r\n";

fn codec(c: &mut Criterion) {
    assert_eq!(
        INVITE.len() - INVITE.windows(4).position(|w| w == b"\r\n\r\n").unwrap() - 4,
        144
    );
    let msg = Message::parse(INVITE).expect("the bench INVITE parses");
    let mut g = c.benchmark_group("sip");
    g.throughput(Throughput::Bytes(INVITE.len() as u64));
    g.bench_function("parse INVITE", |b| {
        b.iter(|| Message::parse(black_box(INVITE)).unwrap())
    });
    g.bench_function("serialise INVITE", |b| {
        b.iter(|| black_box(&msg).to_bytes())
    });
    g.bench_function("parse + typed views + edit + serialise", |b| {
        b.iter(|| {
            let mut m = Message::parse(black_box(INVITE)).unwrap();
            let via = m.top_via().unwrap();
            let _ = (
                m.from().unwrap(),
                m.to().unwrap(),
                m.cseq().unwrap(),
                m.contacts(),
            );
            m.push_front("Via", "SIP/2.0/UDP 203.0.113.1:5060;branch=z9hG4bKbench");
            m.set("Max-Forwards", "69");
            black_box(via);
            m.to_bytes()
        })
    });
    g.finish();
}

fn proxy(c: &mut Criterion) {
    let now = Instant::now();
    let proxy_addr = "203.0.113.1:5060".parse().unwrap();
    let mut cfg = ProxyConfig::new(proxy_addr);
    cfg.domains.push("example.com".into());
    cfg.registrar.default_expires = 1_000_000_000;
    cfg.registrar.max_expires = 1_000_000_000;
    let mut p = Proxy::new(cfg);
    let flow = |remote: &str| Flow {
        transport: Transport::Udp,
        local: proxy_addr,
        remote: remote.parse().unwrap(),
        conn: None,
    };
    let register = b"REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bKr;rport\r\nFrom: <sip:bob@example.com>;tag=r\r\nTo: <sip:bob@example.com>\r\nCall-ID: r\r\nCSeq: 1 REGISTER\r\nContact: <sip:bob@10.0.0.2:5060>\r\nContent-Length: 0\r\n\r\n";
    p.handle_input(
        now,
        Input::Message {
            flow: flow("198.51.100.2:5060"),
            bytes: register.to_vec(),
        },
    );
    while p.poll_transmit().is_some() {}
    while p.poll_event().is_some() {}
    let mut n = 0u64;
    c.bench_function("proxy: INVITE in -> 100 Trying + forward", |b| {
        b.iter(|| {
            n += 1;
            // a new transaction each time (fresh branch)
            let text =
                String::from_utf8_lossy(INVITE).replace("z9hG4bK776asdhds", &format!("z9hG4bK{n}"));
            p.handle_input(
                now,
                Input::Message {
                    flow: flow("198.51.100.20:40000"),
                    bytes: text.into_bytes(),
                },
            );
            let mut sent = 0;
            while p.poll_transmit().is_some() {
                sent += 1;
            }
            while p.poll_event().is_some() {}
            assert_eq!(sent, 2);
            // end the transactions so the tables stay small
            p.handle_timeout(now + std::time::Duration::from_secs(100));
            while p.poll_transmit().is_some() {}
            while p.poll_event().is_some() {}
        })
    });
}

criterion_group!(benches, codec, proxy);
criterion_main!(benches);
