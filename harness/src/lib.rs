//! pinhole's scenario model, runner and built-in agents.
//!
//! | module | what it is |
//! |---|---|
//! | [`scenario`] | the YAML model of SCENARIO-FORMAT.md: parsing with exact positions, validation, matrix cells |
//! | [`convert`] | scenario model → emulator configuration |
//! | [`agents`] | built-in agents and services (punch rendezvous and peers, STUN service, RFC 5780 probe) over the socket API [`agents::net::Net`], on the virtual fabric or real sockets |
//! | `timeline` (crate-private) | the step timeline of a cell, one for both fabrics, behind a `StepHost` trait each fabric implements |
//! | `judge` (crate-private) | expectations judged against step results; step results as report data |
//! | [`runner`] | runs one cell on the virtual fabric (its `StepHost`); starts the services of both fabrics |
//! | [`kernel_runner`] | runs one cell on the kernel fabric (network namespaces, real programs; its `StepHost`) |
//! | [`events`] | the per-cell timed event log (engine, NATs, firewalls, services) and its coalescing |
//! | [`capture`] | `--pcap DIR`: a capture file per interface and cell |
//! | [`interactive`] | `pinhole up` / `exec` / `down`: a topology kept up for commands from other shells |
//! | [`probe_cmd`] | `pinhole probe`: classify a real NAT and write a replayable profile |
//! | [`bench`](mod@bench) | `pinhole bench nat`: pinhole's kernel fabric against Linux's nftables NAT, side by side |
//! | [`bench_proxy`] | `pinhole bench proxy`: SIPp call load through Kamailio (stock configuration) and pinhole's proxy |
//! | [`cli`] | `pinhole run` / `pinhole validate` as library functions |
#![deny(missing_docs)]

pub mod agents;
pub mod bench;
pub mod bench_latency;
pub mod bench_proxy;
pub mod capture;
pub mod cli;
pub mod convert;
pub mod events;
pub mod interactive;
mod judge;
pub mod kernel_runner;
pub mod probe_cmd;
pub mod runner;
pub mod scenario;
pub mod serve_cmd;
mod timeline;
