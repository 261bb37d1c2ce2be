//! The kernel fabric: every emulated host is a Linux network namespace whose only
//! interface is a TUN device; pinhole's userspace engine moves the packets between TUNs.
//!
//! Only the OS layer exists so far: [`sys`] (namespaces, TUN devices, rtnetlink, process
//! spawning). It is the one place in this crate with `unsafe` code (STYLE.md §6).
//!
//! # Ordering in `main()`
//!
//! ```no_run
//! use emulator::fabric::kernel::sys;
//!
//! fn main() {
//!     // 1. First thing, before tokio, tracing's background writers, rayon or any other
//!     //    thread. The original process stays outside, waits, forwards SIGINT/SIGTERM and
//!     //    exits with the sandbox's status; only the sandboxed copy returns here.
//!     let _sandbox = match sys::enter_sandbox() {
//!         Ok(sandbox) => sandbox,
//!         Err(e) => {
//!             eprintln!("error: {e}");
//!             std::process::exit(if e.is_unsupported() { 3 } else { 1 });
//!         }
//!     };
//!     // 2. Now threads and runtimes may start. Hosts are created from any thread.
//!     let host = sys::HostNs::create("alice", "10.0.0.2 alice\n").unwrap();
//!     let _tun = host
//!         .add_tun("eth0", 1500, &[("10.0.0.2".parse().unwrap(), 24)], &[])
//!         .unwrap();
//! }
//! ```
//!
//! # `pinhole exec HOST -- CMD` from another process (design, not built)
//!
//! `pinhole up` keeps its sandbox running. Host namespaces live only as long as some
//! process or fd of the sandbox holds them, and nothing outside may hold them (that is
//! what makes SIGKILL teardown complete), so a second pinhole process cannot `setns` into
//! them itself. Instead the sandboxed `pinhole up` process listens on a unix stream socket
//! `$XDG_RUNTIME_DIR/pinhole/<id>.sock` (root: `/run/pinhole/<id>.sock`, mode 0600, created
//! *before* entering the sandbox and passed in as an inherited fd, because the sandbox's
//! own mount namespace is private). `pinhole exec` connects and sends the host name,
//! argv, env and its stdin/stdout/stderr fds (`SCM_RIGHTS`); `up` checks the peer's
//! credentials (`SO_PEERCRED`, same uid as the creator), runs [`sys::HostNs::spawn`]
//! with those fds and writes the exit status back when the child ends. `exec` forwards
//! SIGINT/SIGTERM as a one-byte message on the socket and exits with the status. `pinhole
//! down` sends a shutdown message; a stale socket (connect refused) is removed by the next
//! `up`.

#[allow(unsafe_code)]
pub mod sys;
