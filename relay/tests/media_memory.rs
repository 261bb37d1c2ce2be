//! The relay core's heap for 100,000 idle calls, counted by a global allocator that
//! tracks live bytes. Prints the figure; asserts only a generous sanity bound (the goal,
//! < 200 MB for 100k sessions, is reported, not asserted). Run with `--nocapture` to see
//! it.

#![allow(clippy::disallowed_methods)] // one real Instant as the virtual clock's origin

#[path = "media/idle.rs"]
mod idle;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

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
