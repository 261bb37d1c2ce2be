//! NAT packet rates: translation on existing bindings (outbound and inbound, 100k flows,
//! packets in random order), creation of new bindings, and filtered (denied) inbound.
//!
//! `cargo bench -p pinhole-emulator --bench nat`

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use emulator::nat::{Nat, NatConfig, Pooling, Preset};
use emulator::rng::SimRng;
use emulator::wire::parse;
use emulator::{Direction, PacketBuf, Verdict};
use etherparse::PacketBuilder;
use std::hint::black_box;
use std::net::IpAddr;
use std::time::{Duration, Instant};

const FLOWS: usize = 100_000;
const BATCH: usize = 1024;

fn udp(src: [u8; 4], sp: u16, dst: [u8; 4], dp: u16) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv4(src, dst, 64)
        .udp(sp, dp)
        .write(&mut v, &[0u8; 36]) // 64-byte IPv4 packets
        .expect("build");
    v
}

fn pool() -> Vec<IpAddr> {
    (0..4)
        .map(|i| IpAddr::from([203, 0, 113, 11 + i]))
        .collect()
}

fn host(i: usize) -> ([u8; 4], u16) {
    // 1000 hosts with 100 flows each.
    let h = i / 100;
    ([10, 0, (h >> 8) as u8, h as u8], 10_000 + (i % 100) as u16)
}

fn remote(i: usize) -> [u8; 4] {
    [198, 51, 100, (i % 200) as u8 + 1]
}

fn shuffle<T>(v: &mut [T], rng: &mut SimRng) {
    for i in (1..v.len()).rev() {
        let j = rng.range_inclusive(0, i as u64) as usize;
        v.swap(i, j);
    }
}

/// Packets of `LEN` bytes stored back to back (as they would sit in a receive ring), in
/// shuffled flow order.
struct Flat(Vec<u8>);

const LEN: usize = 64;

impl Flat {
    fn new(pkts: &[Vec<u8>]) -> Self {
        Flat(
            pkts.iter()
                .flat_map(|p| {
                    assert_eq!(p.len(), LEN);
                    p.iter().copied()
                })
                .collect(),
        )
    }

    fn len(&self) -> usize {
        self.0.len() / LEN
    }

    fn get(&self, i: usize) -> &[u8] {
        &self.0[i * LEN..(i + 1) * LEN]
    }
}

/// A NAT holding `FLOWS` mappings, with shuffled outbound, inbound and denied-inbound
/// packets on them.
struct Setup {
    nat: Nat,
    now: Instant,
    outbound: Flat,
    inbound: Flat,
    denied: Flat,
}

fn setup(flows: usize) -> Setup {
    let cfg = NatConfig::preset(Preset::PortRestricted, pool())
        .max_bindings(4 * flows)
        .timeout_udp(Duration::from_secs(3600));
    let mut nat = Nat::new(cfg, SimRng::new(1)).expect("config");
    #[allow(clippy::disallowed_methods)]
    let now = Instant::now();
    let mut outbound = Vec::with_capacity(flows);
    let mut inbound = Vec::with_capacity(flows);
    let mut denied = Vec::with_capacity(flows);
    for i in 0..flows {
        let (h, p) = host(i);
        let pkt = udp(h, p, remote(i), 3478);
        let mut b = PacketBuf::from_slice(&pkt);
        let v = nat.handle_packet(now, Direction::Outbound, &mut b);
        assert!(matches!(v, Verdict::Forward), "{v:?}");
        let ext = parse(b.as_slice())
            .expect("parse")
            .src_endpoint()
            .expect("ports");
        let IpAddr::V4(ea) = ext.addr else { panic!() };
        inbound.push(udp(remote(i), 3478, ea.octets(), ext.port));
        denied.push(udp(remote(i), 9999, ea.octets(), ext.port));
        outbound.push(pkt);
    }
    while nat.poll_event().is_some() {}
    let mut rng = SimRng::new(2);
    shuffle(&mut outbound, &mut rng);
    shuffle(&mut inbound, &mut rng);
    shuffle(&mut denied, &mut rng);
    Setup {
        nat,
        now,
        outbound: Flat::new(&outbound),
        inbound: Flat::new(&inbound),
        denied: Flat::new(&denied),
    }
}

fn run(
    nat: &mut Nat,
    now: Instant,
    pkts: &Flat,
    at: &mut usize,
    dir: Direction,
    buf: &mut PacketBuf,
) {
    for _ in 0..BATCH {
        let p = pkts.get(*at);
        *at += 1;
        if *at == pkts.len() {
            *at = 0;
        }
        buf.set_contents(p);
        black_box(nat.handle_packet(now, dir, buf));
        while nat.poll_event().is_some() {}
    }
}

fn run_batched(
    nat: &mut Nat,
    now: Instant,
    pkts: &Flat,
    at: &mut usize,
    dir: Direction,
    bufs: &mut [PacketBuf],
    verdicts: &mut Vec<Verdict>,
) {
    for _ in 0..BATCH / bufs.len() {
        for b in bufs.iter_mut() {
            b.set_contents(pkts.get(*at));
            *at += 1;
            if *at == pkts.len() {
                *at = 0;
            }
        }
        verdicts.clear();
        nat.handle_batch(now, dir, bufs, verdicts);
        black_box(&verdicts);
        while nat.poll_event().is_some() {}
    }
}

fn bench(c: &mut Criterion) {
    // Small table (fits in cache): the compute cost per packet.
    {
        let mut s = setup(1000);
        let mut buf = PacketBuf::zeroed(64);
        let mut g = c.benchmark_group("nat");
        g.throughput(Throughput::Elements(BATCH as u64));
        let mut at = 0;
        g.bench_function("translate_outbound_1k_flows", |b| {
            b.iter(|| {
                run(
                    &mut s.nat,
                    s.now,
                    &s.outbound,
                    &mut at,
                    Direction::Outbound,
                    &mut buf,
                )
            })
        });
        g.finish();
    }
    let mut s = setup(FLOWS);
    let mut buf = PacketBuf::zeroed(64);
    let mut g = c.benchmark_group("nat");
    g.throughput(Throughput::Elements(BATCH as u64));

    let mut at = 0;
    g.bench_function("translate_outbound_100k_flows", |b| {
        b.iter(|| {
            run(
                &mut s.nat,
                s.now,
                &s.outbound,
                &mut at,
                Direction::Outbound,
                &mut buf,
            )
        })
    });
    let mut at = 0;
    g.bench_function("translate_inbound_100k_flows", |b| {
        b.iter(|| {
            run(
                &mut s.nat,
                s.now,
                &s.inbound,
                &mut at,
                Direction::Inbound,
                &mut buf,
            )
        })
    });
    let mut at = 0;
    g.bench_function("filter_denied_inbound_100k_flows", |b| {
        b.iter(|| {
            run(
                &mut s.nat,
                s.now,
                &s.denied,
                &mut at,
                Direction::Inbound,
                &mut buf,
            )
        })
    });
    let mut bufs = vec![PacketBuf::zeroed(64); 32];
    let mut verdicts = Vec::with_capacity(32);
    for (name, pkts, dir) in [
        (
            "batch32_translate_outbound_100k_flows",
            &s.outbound,
            Direction::Outbound,
        ),
        (
            "batch32_translate_inbound_100k_flows",
            &s.inbound,
            Direction::Inbound,
        ),
        (
            "batch32_filter_denied_inbound_100k_flows",
            &s.denied,
            Direction::Inbound,
        ),
    ] {
        let mut at = 0;
        g.bench_function(name, |b| {
            b.iter(|| {
                run_batched(
                    &mut s.nat,
                    s.now,
                    pkts,
                    &mut at,
                    dir,
                    &mut bufs,
                    &mut verdicts,
                )
            })
        });
    }
    assert_eq!(s.nat.mapping_count(), FLOWS);

    g.finish();

    // New bindings: 100k new flows into a fresh NAT (setup not timed), including the
    // table's growth and the MappingCreated events being drained.
    let mut g = c.benchmark_group("nat");
    g.throughput(Throughput::Elements(FLOWS as u64));
    let fresh: Vec<Vec<u8>> = (0..FLOWS)
        .map(|i| {
            let (h, p) = host(i);
            udp(h, p, remote(i), 3478)
        })
        .collect();
    let now = s.now;
    g.sample_size(10);
    g.bench_function("create_bindings_100k", |b| {
        b.iter_batched_ref(
            || {
                let cfg = NatConfig::preset(Preset::PortRestricted, pool())
                    .pooling(Pooling::Paired)
                    .max_bindings(4 * FLOWS);
                Nat::new(cfg, SimRng::new(3)).expect("config")
            },
            |nat| {
                for p in &fresh {
                    buf.set_contents(p);
                    black_box(nat.handle_packet(now, Direction::Outbound, &mut buf));
                    while nat.poll_event().is_some() {}
                }
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = bench
}
criterion_main!(benches);
