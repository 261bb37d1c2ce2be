//! TURN relay cost through the sans-IO [`TurnServer`]: one ChannelData message from the
//! client to its peer (parse, channel and permission lookup, the UDP datagram to the
//! peer), and one peer datagram back (permission lookup, ChannelData framing), over UDP
//! and over a stream (padded); plus a Send indication (STUN parse) for comparison.
//! Figures are printed by criterion.

#![allow(clippy::disallowed_methods)] // a benchmark takes one real Instant for `now`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use relay::turn::{
    ClientConfig, ClientEvent, Input, Transport, TurnClient, TurnConfig, TurnServer, channel,
};
use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Instant;

const CLIENT: &str = "198.51.100.10:40000";
const PEER: &str = "192.0.2.50:5000";

/// A server with one allocation from CLIENT over `transport` with channel 0x4000 bound to
/// PEER; returns the server and the relayed address.
fn setup(now: Instant, transport: Transport) -> (TurnServer, SocketAddr, TurnClient) {
    let listen: SocketAddr = "203.0.113.1:3478".parse().unwrap();
    let mut s = TurnServer::new(
        TurnConfig::new(listen, "203.0.113.1".parse().unwrap(), "bench").user("alice", "secret"),
    )
    .unwrap();
    let mut c = TurnClient::new(ClientConfig {
        server: listen,
        username: "alice".into(),
        password: "secret".into(),
        seed: 1,
        transport,
    });
    let client: SocketAddr = CLIENT.parse().unwrap();
    let peer: SocketAddr = PEER.parse().unwrap();
    let pump = |c: &mut TurnClient, s: &mut TurnServer| {
        for _ in 0..10 {
            while let Some(t) = c.poll_transmit() {
                s.handle_input(
                    now,
                    Input::Packet {
                        transport,
                        local: listen,
                        remote: client,
                        data: &t.data,
                    },
                );
            }
            while let Some(t) = s.poll_transmit() {
                c.handle_input(now, t.from, &t.data);
            }
        }
    };
    c.allocate(now, None, vec![]);
    pump(&mut c, &mut s);
    c.channel_bind(now, 0x4000, peer);
    pump(&mut c, &mut s);
    let mut relayed = None;
    while let Some(e) = c.poll_event() {
        if let ClientEvent::Allocated { relayed: r, .. } = e {
            relayed = Some(r);
        }
    }
    assert_eq!(c.channel_of(peer), Some(0x4000), "channel bound");
    (s, relayed.expect("allocated"), c)
}

fn relay(c: &mut Criterion) {
    let now = Instant::now();
    let listen: SocketAddr = "203.0.113.1:3478".parse().unwrap();
    let client: SocketAddr = CLIENT.parse().unwrap();
    let peer: SocketAddr = PEER.parse().unwrap();
    for size in [160usize, 1200] {
        let payload = vec![0xa5u8; size];
        let mut g = c.benchmark_group(format!("turn_relay_{size}B"));
        g.throughput(Throughput::Elements(1));
        for transport in [Transport::Udp, Transport::Tcp] {
            let name = match transport {
                Transport::Udp => "udp",
                Transport::Tcp | Transport::Tls => "stream",
            };
            let (mut s, relayed, mut tc) = setup(now, transport);
            let cd = channel::emit_for(transport, 0x4000, &payload).unwrap();
            // Measure real work only: the datagram reaches the peer, and the answer
            // comes back as ChannelData.
            s.handle_input(
                now,
                Input::Packet {
                    transport,
                    local: listen,
                    remote: client,
                    data: &cd,
                },
            );
            let t = s.poll_transmit().unwrap();
            assert_eq!((t.from, t.to, t.data.len()), (relayed, peer, size));
            s.handle_input(now, Input::udp(relayed, peer, &payload));
            let t = s.poll_transmit().unwrap();
            assert_eq!(
                channel::parse(&t.data).map(|(n, d)| (n, d.len())),
                Some((0x4000, size))
            );
            g.bench_function(format!("channel_data_to_peer_{name}"), |b| {
                b.iter(|| {
                    s.handle_input(
                        now,
                        Input::Packet {
                            transport,
                            local: listen,
                            remote: client,
                            data: black_box(&cd),
                        },
                    );
                    black_box(s.poll_transmit())
                })
            });
            g.bench_function(format!("peer_to_channel_data_{name}"), |b| {
                b.iter(|| {
                    s.handle_input(now, Input::udp(relayed, peer, black_box(&payload)));
                    black_box(s.poll_transmit())
                })
            });
            if transport == Transport::Udp {
                // A Send indication to the same peer (the client sends one when it has no
                // channel; the server takes either).
                let mut other = TurnClient::new(ClientConfig {
                    server: listen,
                    username: "alice".into(),
                    password: "secret".into(),
                    seed: 9,
                    transport,
                });
                other.send_to(peer, &payload);
                let send = other.poll_transmit().unwrap().data;
                s.handle_input(now, Input::udp(listen, client, &send));
                assert!(s.poll_transmit().is_some_and(|t| t.to == peer));
                g.bench_function("send_indication_to_peer_udp", |b| {
                    b.iter(|| {
                        s.handle_input(now, Input::udp(listen, client, black_box(&send)));
                        black_box(s.poll_transmit())
                    })
                });
            }
            drop(tc.poll_transmit());
        }
        g.finish();
    }
}

criterion_group!(benches, relay);
criterion_main!(benches);
