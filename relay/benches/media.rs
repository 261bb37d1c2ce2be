//! The media relay core's fast path and memory:
//!
//! - `media/forward`: one RTP packet (172 bytes, G.711) through
//!   [`MediaRelay::handle_packet`] on a latched call — port lookup, latch check,
//!   counters, the verdict (the driver sends the same bytes);
//! - `media/forward_10k_sessions`: the same among 10,000 calls (the lookup is a `Vec`
//!   index, so it should not change);
//! - `media/reject_sprayer`: a packet from a stranger to a latched port (counted, event
//!   coalesced);
//! - before criterion runs, the heap of 100,000 idle sessions, counted by this binary's
//!   global allocator, printed as bytes per session.
//!
//! `cargo bench -p pinhole-relay --bench media`.

#![allow(clippy::disallowed_methods)] // a benchmark takes one real Instant for `now`

#[path = "../tests/media/counting.rs"]
mod counting;
#[path = "../tests/media/idle.rs"]
mod idle;

use counting::LIVE;

use criterion::{Criterion, Throughput, criterion_group};
use relay::media::{MediaRelay, RelayConfig, Role, SignalRequest, Verdict};
use relay::sdp::{Sdp, StreamOutcome};
use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Instant;

fn rtp(seq: u16) -> Vec<u8> {
    let mut v = vec![0u8; 172];
    v[0] = 0x80;
    v[2..4].copy_from_slice(&seq.to_be_bytes());
    v
}

fn relay_port(r: &relay::sdp::RewriteReport) -> SocketAddr {
    match &r.streams[0] {
        StreamOutcome::Relayed { relay, .. } => relay.rtp,
        other => panic!("not relayed: {other:?}"),
    }
}

/// A latched call; returns (port A sends to, A's source, port B sends to, B's source).
fn latched_call(
    relay: &mut MediaRelay,
    now: Instant,
    call: &str,
) -> (SocketAddr, SocketAddr, SocketAddr, SocketAddr) {
    let body = |ip: &str| {
        format!(
            "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
        )
    };
    let a_src: SocketAddr = "198.51.100.10:50000".parse().unwrap();
    let b_src: SocketAddr = "198.51.100.20:60000".parse().unwrap();
    let mut ra = SignalRequest::new(call, "ta", None, Role::Offer);
    ra.received_from = Some(a_src);
    let mut o = Sdp::parse(body("10.0.0.2").as_bytes()).unwrap();
    let b_port = relay_port(&relay.offer(now, &ra, &mut o).unwrap());
    let mut rb = SignalRequest::new(call, "ta", Some("tb"), Role::Answer);
    rb.received_from = Some(b_src);
    let mut a = Sdp::parse(body("10.1.0.3").as_bytes()).unwrap();
    let a_port = relay_port(&relay.answer(now, &rb, &mut a).unwrap());
    assert!(matches!(
        relay.handle_packet(now, a_port, a_src, &rtp(0)),
        Verdict::Forward { .. }
    ));
    assert!(matches!(
        relay.handle_packet(now, b_port, b_src, &rtp(0)),
        Verdict::Forward { .. }
    ));
    while relay.poll_command().is_some() {}
    while relay.poll_event().is_some() {}
    (a_port, a_src, b_port, b_src)
}

fn forward(c: &mut Criterion) {
    let now = Instant::now();
    let mut g = c.benchmark_group("media");
    g.throughput(Throughput::Elements(1));
    let packet = rtp(1);

    let mut relay = MediaRelay::new(RelayConfig::new(
        vec!["203.0.113.1".parse().unwrap()],
        30000..=39999,
    ))
    .unwrap();
    let (a_port, a_src, _, _) = latched_call(&mut relay, now, "bench");
    g.bench_function("forward", |b| {
        b.iter(|| black_box(relay.handle_packet(now, a_port, a_src, black_box(&packet))))
    });
    let stranger: SocketAddr = "192.0.2.66:7777".parse().unwrap();
    g.bench_function("reject_sprayer", |b| {
        b.iter(|| {
            let v = relay.handle_packet(now, a_port, stranger, black_box(&packet));
            while relay.poll_event().is_some() {}
            black_box(v)
        })
    });

    let mut relay = idle::big_relay();
    let calls: Vec<_> = (0..10_000)
        .map(|i| latched_call(&mut relay, now, &format!("call-{i}")))
        .collect();
    let mut i = 0usize;
    g.bench_function("forward_10k_sessions", |b| {
        b.iter(|| {
            // A different call each time, a stride that defeats the cache's luck.
            i = (i + 7919) % calls.len();
            let (port, src, _, _) = calls[i];
            black_box(relay.handle_packet(now, port, src, black_box(&packet)))
        })
    });
    g.finish();
}

fn memory_report() {
    const N: u32 = 100_000;
    let now = Instant::now();
    let before = LIVE.load(Ordering::Relaxed);
    let mut relay = idle::big_relay();
    let tables = LIVE.load(Ordering::Relaxed) - before;
    for i in 0..N {
        idle::add_call(&mut relay, now, i);
    }
    let total = LIVE.load(Ordering::Relaxed) - before;
    println!(
        "media relay core: {N} idle sessions = {:.1} MB heap ({:.1} MB of it port tables for 8 addresses × 64,512 ports), {:.0} bytes per session",
        total as f64 / 1e6,
        tables as f64 / 1e6,
        (total - tables) as f64 / f64::from(N)
    );
}

criterion_group!(benches, forward);

fn main() {
    memory_report();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
