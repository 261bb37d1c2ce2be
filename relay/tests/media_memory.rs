//! The relay core's heap for 100,000 idle calls, counted by a global allocator that
//! tracks live bytes. Prints the figure; asserts only a generous sanity bound (the goal,
//! < 200 MB for 100k sessions, is reported, not asserted). Run with `--nocapture` to see
//! it. The same counter shows that the fast path allocates nothing: one test function,
//! so that no other test thread allocates meanwhile.

#![allow(clippy::disallowed_methods)] // one real Instant as the virtual clock's origin

#[path = "media/counting.rs"]
mod counting;
#[path = "media/idle.rs"]
mod idle;

use counting::{ALLOCS, LIVE};

use std::sync::atomic::Ordering;
use std::time::Instant;

#[test]
fn heap_of_100k_idle_sessions() {
    const N: u32 = 100_000;
    let before = LIVE.load(Ordering::Relaxed);
    let mut relay = idle::big_relay();
    let tables = LIVE.load(Ordering::Relaxed) - before;
    let now = Instant::now();
    for i in 0..N {
        idle::add_call(&mut relay, now, i);
    }
    assert_eq!(relay.session_count(), N as usize);
    fast_path_allocates_nothing(&mut relay, now);
    let total = LIVE.load(Ordering::Relaxed) - before;
    let per_session = (total - tables) as f64 / f64::from(N);
    println!(
        "media relay core, {N} idle sessions (1 audio stream, 2 legs each): {:.1} MB total \
         ({:.1} MB port tables for 8 addresses), {per_session:.0} bytes per session",
        total as f64 / 1e6,
        tables as f64 / 1e6,
    );
    // A sanity bound ten times the goal's budget per session, not the goal itself.
    assert!(per_session < 20_000.0, "{per_session} bytes per session");
    // And everything goes back when the sessions end.
    for call in relay.calls() {
        relay.delete(now, &call, None);
    }
    while relay.poll_command().is_some() {}
    while relay.poll_event().is_some() {}
    assert_eq!(relay.free_pairs(), relay.total_pairs());
}

/// Media on thousands of the idle calls' ports (latching, forwarding, RTCP, strangers
/// rejected): not one allocation, as long as events are drained.
fn fast_path_allocates_nothing(relay: &mut relay::media::MediaRelay, now: Instant) {
    use relay::media::Verdict;
    use std::net::SocketAddr;
    let mut rtp = [0u8; 172];
    rtp[0] = 0x80;
    let rr = [0x80u8, 201, 0, 1, 0, 0, 0, 1];
    let mut targets = Vec::new();
    // The first 500 RTP ports of each address: most are in use (100k calls hold 200k of
    // the 258k pairs), by side A or side B.
    for i in 1..=8u8 {
        for port in (1024..=65535u16).step_by(2) {
            let local = SocketAddr::from(([203, 0, 113, i], port));
            if port < 1024 + 1000 {
                targets.push(local);
            }
        }
    }
    let a: SocketAddr = "198.51.100.10:40000".parse().unwrap();
    let stranger: SocketAddr = "192.0.2.66:7777".parse().unwrap();
    let before = ALLOCS.load(Ordering::Relaxed);
    let mut forwarded = 0;
    for local in &targets {
        for data in [&rtp[..], &rr[..]] {
            for src in [a, stranger] {
                if let Verdict::Forward { .. } = relay.handle_packet(now, *local, src, data) {
                    forwarded += 1;
                }
                while relay.poll_event().is_some() {}
            }
        }
    }
    let allocations = ALLOCS.load(Ordering::Relaxed) - before;
    println!(
        "fast path: {} packets, {forwarded} forwarded, {allocations} allocations",
        targets.len() * 4
    );
    assert!(
        forwarded > 0,
        "nothing was forwarded: the probe missed the calls"
    );
    assert_eq!(allocations, 0);
}
