//! The kernel fabric: every emulated host is a Linux network namespace whose only
//! interface is a TUN device; pinhole's userspace engine moves the packets between TUNs.
//!
//! [`KernelFabric`] creates the hosts and runs the shared engine between their TUN devices
//! on a thread; [`sys`] is the OS layer (namespaces, TUN devices, rtnetlink, process
//! spawning), the one place in this crate with `unsafe` code (STYLE.md §6).
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
//! # `pinhole exec HOST -- CMD` from another process
//!
//! `pinhole up` keeps its sandbox running. Host namespaces live only as long as some
//! process or fd of the sandbox holds them, and nothing outside may hold them (that is
//! what makes SIGKILL teardown complete), so a second pinhole process cannot `setns` into
//! them itself. Instead the sandboxed `pinhole up` binds a [`sys::ExecServer`] on a unix
//! socket (`$XDG_RUNTIME_DIR/pinhole/<id>.sock`, root: `/run/pinhole/<id>.sock`; path
//! computed before entering the sandbox) and serves each accepted [`sys::ExecRequest`] on
//! a thread with [`sys::ExecRequest::run`]. `pinhole exec` calls [`sys::exec_remote`]
//! with its own stdin/stdout/stderr (passed as `SCM_RIGHTS`) and exits with the returned
//! code; its SIGINT/SIGTERM/SIGHUP/SIGQUIT are forwarded to the program, and if it dies
//! the program gets SIGHUP. Only the sandbox's own user may connect (`SO_PEERCRED`, socket
//! mode 0600). `pinhole down` is the CLI's business (e.g. SIGTERM to the `up` process,
//! whose pid it can keep next to the socket).
//!
//! # What the sandbox does not have
//!
//! The sandboxed program's own network namespace has only `lo`: commands that must reach
//! the real network (`pinhole probe` against a real NAT) must not call
//! [`sys::enter_sandbox`].

mod batch;
mod fabric;
#[allow(unsafe_code)]
pub mod sys;
mod wait;

pub use fabric::{IFNAME, KernelError, KernelFabric, MTU, NatAction, Snapshot, hosts_file};
pub use wait::{TIMER, Waiter, wait_for_exit};
