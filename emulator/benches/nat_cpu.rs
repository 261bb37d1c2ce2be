//! Per-packet cost of NAT translation measured in on-CPU time of this thread
//! (`/proc/thread-self/schedstat`), so that other processes competing for the cores do
//! not inflate it, next to wall-clock rates. 1k, 100k and 1M flows, packets in random
//! order, one by one and in batches of 32.
//!
//! `cargo bench -p pinhole-emulator --bench nat_cpu`

use emulator::nat::{Nat, NatConfig, Pooling, Preset};
use emulator::rng::SimRng;
use emulator::wire::parse;
use emulator::{Direction, PacketBuf, Verdict};
use etherparse::PacketBuilder;
use std::hint::black_box;
use std::net::IpAddr;
use std::time::{Duration, Instant};

const LEN: usize = 64;

fn on_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

fn udp(src: [u8; 4], sp: u16, dst: [u8; 4], dp: u16, out: &mut Vec<u8>) {
    PacketBuilder::ipv4(src, dst, 64)
        .udp(sp, dp)
        .write(out, &[0u8; 36])
        .expect("build");
}

fn shuffle_flat(v: &mut [u8], rng: &mut SimRng) {
    let n = v.len() / LEN;
    for i in (1..n).rev() {
        let j = rng.range_inclusive(0, i as u64) as usize;
        if i != j {
            let (a, b) = v.split_at_mut(i * LEN);
            a[j * LEN..(j + 1) * LEN].swap_with_slice(&mut b[..LEN]);
        }
    }
}

struct Case {
    nat: Nat,
    now: Instant,
    out: Vec<u8>,
    inb: Vec<u8>,
}

fn setup(flows: usize, now: Instant) -> Case {
    let pool: Vec<IpAddr> = (0..32)
        .map(|i| IpAddr::from([203, 0, 113, 10 + i]))
        .collect();
    let cfg = NatConfig::preset(Preset::PortRestricted, pool)
        .pooling(Pooling::Paired)
        .max_bindings(2 * flows)
        .timeout_udp(Duration::from_secs(3600));
    let mut nat = Nat::new(cfg, SimRng::new(1)).expect("config");
    let mut out = Vec::with_capacity(flows * LEN);
    let mut inb = Vec::with_capacity(flows * LEN);
    let mut buf = PacketBuf::zeroed(LEN);
    let mut pkt = Vec::with_capacity(LEN);
    for i in 0..flows {
        let h = i / 16;
        let src = [10, (h >> 16) as u8, (h >> 8) as u8, h as u8];
        let dst = [198, 51, (i >> 8) as u8, i as u8];
        let sp = 5000 + (i % 16) as u16;
        pkt.clear();
        udp(src, sp, dst, 3478, &mut pkt);
        buf.set_contents(&pkt);
        let v = nat.handle_packet(now, Direction::Outbound, &mut buf);
        assert!(matches!(v, Verdict::Forward));
        while nat.poll_event().is_some() {}
        let ext = parse(buf.as_slice())
            .expect("parse")
            .src_endpoint()
            .expect("port");
        let IpAddr::V4(ea) = ext.addr else { panic!() };
        out.extend_from_slice(&pkt);
        udp(dst, 3478, ea.octets(), ext.port, &mut inb);
    }
    let mut rng = SimRng::new(2);
    shuffle_flat(&mut out, &mut rng);
    shuffle_flat(&mut inb, &mut rng);
    Case { nat, now, out, inb }
}

fn measure(c: &mut Case, dir: Direction, batch: bool, total: usize) -> (f64, f64) {
    let pkts = match dir {
        Direction::Outbound => &c.out,
        Direction::Inbound => &c.inb,
    };
    let n = pkts.len() / LEN;
    let mut buf = PacketBuf::zeroed(LEN);
    let mut bufs = vec![PacketBuf::zeroed(LEN); 32];
    let mut verdicts = Vec::with_capacity(32);
    let cpu0 = on_cpu_ns();
    #[allow(clippy::disallowed_methods)] // a bench is a driver
    let wall0 = Instant::now();
    let mut at = 0;
    let mut done = 0;
    while done < total {
        if batch {
            for b in bufs.iter_mut() {
                b.set_contents(&pkts[at * LEN..(at + 1) * LEN]);
                at = (at + 1) % n;
            }
            verdicts.clear();
            c.nat.handle_batch(c.now, dir, &mut bufs, &mut verdicts);
            black_box(&verdicts);
            done += 32;
        } else {
            buf.set_contents(&pkts[at * LEN..(at + 1) * LEN]);
            at = (at + 1) % n;
            black_box(c.nat.handle_packet(c.now, dir, &mut buf));
            done += 1;
        }
    }
    let wall = wall0.elapsed().as_nanos() as f64 / done as f64;
    let cpu = (on_cpu_ns() - cpu0) as f64 / done as f64;
    assert_eq!(c.nat.stats().total_dropped(), 0);
    (cpu, wall)
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    #[allow(clippy::disallowed_methods)] // a bench is a driver
    let now = Instant::now();
    println!("nat_cpu: ns/packet (on-CPU | wall), 64-byte UDP/IPv4, random flow order");
    for flows in [1_000usize, 100_000, 1_000_000] {
        let mut c = setup(flows, now);
        for (dir, name) in [
            (Direction::Outbound, "outbound"),
            (Direction::Inbound, "inbound"),
        ] {
            for batch in [false, true] {
                measure(&mut c, dir, batch, 1_000_000); // warm up
                let (cpu, wall) = measure(&mut c, dir, batch, 5_000_000);
                println!(
                    "nat_cpu: {flows:>9} flows {name:<8} {:<8} {cpu:6.1} ns ({:5.2} Mpps) | {wall:6.1} ns ({:5.2} Mpps)",
                    if batch { "batch32" } else { "single" },
                    1e3 / cpu,
                    1e3 / wall,
                );
            }
        }
    }
}
