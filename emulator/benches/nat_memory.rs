//! Memory per NAT binding at 1M live bindings, measured with a counting global allocator
//! (this bench binary's own; the emulator crate sets none). Prints the figures.
//!
//! `cargo bench -p pinhole-emulator --bench nat_memory`

use emulator::nat::{Nat, NatConfig, Pooling, Preset};
use emulator::rng::SimRng;
use emulator::{Direction, PacketBuf, Verdict};
use etherparse::PacketBuilder;
use std::alloc::{GlobalAlloc, Layout, System};
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn add(n: usize) {
    let now = CURRENT.fetch_add(n, Ordering::Relaxed) + n;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

#[allow(unsafe_code)]
// SAFETY: every method forwards to the system allocator unchanged; only counts bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        add(l.size());
        // SAFETY: same layout contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        add(l.size());
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        CURRENT.fetch_sub(l.size(), Ordering::Relaxed);
        // SAFETY: `p` came from this allocator with layout `l`.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        if new >= l.size() {
            add(new - l.size());
        } else {
            CURRENT.fetch_sub(l.size() - new, Ordering::Relaxed);
        }
        // SAFETY: `p` came from this allocator with layout `l`.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const N: usize = 1_000_000;

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` would pass nothing useful:
    // run only when benchmarking.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let pool: Vec<IpAddr> = (0..32)
        .map(|i| IpAddr::from([203, 0, 113, 10 + i]))
        .collect();
    let cfg = NatConfig::preset(Preset::PortRestricted, pool)
        .pooling(Pooling::Paired)
        .max_bindings(2 * N)
        .timeout_udp(Duration::from_secs(3600));
    let mut nat = Nat::new(cfg, SimRng::new(1)).expect("config");
    // A bench is a driver: it may read the clock.
    #[allow(clippy::disallowed_methods)]
    let now = Instant::now();
    let mut buf = PacketBuf::zeroed(64);
    let mut pkt = Vec::with_capacity(64);
    let before = CURRENT.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let started = now;
    for i in 0..N {
        // 65536 hosts × 16 ports, each to its own remote.
        let h = i / 16;
        pkt.clear();
        PacketBuilder::ipv4(
            [10, (h >> 16) as u8, (h >> 8) as u8, h as u8],
            [198, 51, (i >> 8) as u8, i as u8],
            64,
        )
        .udp(5000 + (i % 16) as u16, 3478)
        .write(&mut pkt, &[0u8; 16])
        .expect("build");
        buf.set_contents(&pkt);
        let v = nat.handle_packet(now, Direction::Outbound, &mut buf);
        assert!(matches!(v, Verdict::Forward), "{v:?} at {i}");
        while nat.poll_event().is_some() {}
    }
    #[allow(clippy::disallowed_methods)]
    let elapsed = started.elapsed();
    let after = CURRENT.load(Ordering::Relaxed);
    let peak = PEAK.load(Ordering::Relaxed);
    assert_eq!(nat.mapping_count(), N);
    let per = (after - before) as f64 / N as f64;
    let peak_per = (peak - before) as f64 / N as f64;
    println!("nat_memory: {N} live bindings");
    println!(
        "nat_memory: {:.1} bytes/binding (live heap {:.1} MiB)",
        per,
        (after - before) as f64 / (1 << 20) as f64
    );
    println!(
        "nat_memory: {:.1} bytes/binding at peak (table growth)",
        peak_per
    );
    println!(
        "nat_memory: created at {:.2} M bindings/s",
        N as f64 / elapsed.as_secs_f64() / 1e6
    );
    assert!(per <= 200.0, "budget: <= 200 bytes per binding");
}
