//! `pinhole bench`: figures printed, never judged.
//!
//! | module | what it is |
//! |---|---|
//! | [`nat`] | `pinhole bench nat`: pinhole's kernel fabric against Linux's nftables NAT, side by side |
//! | [`proxy`] | `pinhole bench proxy`: SIPp call load through Kamailio (stock configuration) and pinhole's proxy |
//! | [`load`] | the hidden load programs `bench nat` runs in its hosts |
//! | [`relay`] | `pinhole bench relay`: G.711 calls through pinhole's relay, rtpengine, coturn and a do-nothing forwarder |
//! | [`latency`] | `pinhole bench latency`: round trips through pinhole's drivers, idle CPU of its services |

pub mod latency;
pub mod load;
pub mod nat;
mod procstat;
pub mod proxy;
pub mod relay;
mod sipp_stats;

use crate::cli::{EXIT_ENVIRONMENT, EXIT_FAIL};
use emulator::fabric::kernel::sys;
use std::net::IpAddr;
use std::time::Instant;

#[allow(clippy::disallowed_methods)] // benchmarks run in real time: drivers
fn now() -> Instant {
    Instant::now()
}

/// A constant address of a benchmark's topology.
fn ip(s: &str) -> IpAddr {
    s.parse().expect("a constant address")
}

/// Start a benchmark's kernel fabric (seed 1, no capture); `Err(exit code)` with the
/// reason printed when it cannot start: 3 where the machine cannot run it, 1 otherwise.
fn start_fabric(
    topo: emulator::topology::Topology,
) -> Result<emulator::fabric::kernel::KernelFabric, u8> {
    emulator::fabric::kernel::KernelFabric::start(topo, 1, false).map_err(|e| {
        eprintln!("pinhole: {e}");
        if e.is_environment() {
            EXIT_ENVIRONMENT
        } else {
            EXIT_FAIL
        }
    })
}

/// Enter pinhole's sandbox (user + PID + mount + network namespaces) before any thread
/// exists; `Err(exit code)` with the reason printed when the machine cannot: 3 where
/// namespaces are not allowed, 1 otherwise.
fn enter_sandbox() -> Result<sys::Sandbox, u8> {
    sys::enter_sandbox().map_err(|e| {
        eprintln!("pinhole: {e}");
        if e.is_unsupported() {
            EXIT_ENVIRONMENT
        } else {
            EXIT_FAIL
        }
    })
}
