//! pinhole's packet engine.
//!
//! Everything in this crate is a deterministic, sans-IO state machine: no sockets, no
//! threads, no clock reads. Time comes in as `now: Instant`, randomness from a seeded
//! [`rng::SimRng`]. Drivers (the virtual fabric here, the kernel fabric later) move bytes
//! between the cores.
//!
//! | module | what it is |
//! |---|---|
//! | [`wire`] | [`PacketBuf`] and zero-copy views over IPv4/IPv6 + UDP/TCP/ICMP; in-place rewrite with RFC 1624 incremental checksums |
//! | [`alg`] | the SIP ALG a NAT runs with `sip_alg: rewrite`: Via/Contact/SDP rewriting, media mappings, TCP sequence adjustment |
//! | [`nat`] | the NAT device: every RFC 4787 / RFC 5382 / RFC 5508 behaviour as an independent axis |
//! | [`firewall`] | the stateful firewall: enterprise classes and ordered rules |
//! | [`link`] | per-direction impairments: delay, jitter, loss, duplication, reordering, rate, MTU |
//! | [`topology`] | networks, hosts, NATs, firewalls and links, validated before anything starts |
//! | [`fabric`] | runs a topology: [`fabric::engine`] (the shared packet path), [`fabric::sim`] in one thread under a virtual clock |
//! | [`pcap`] | capture files (raw IP, scenario time) for tshark/Wireshark |
//!
//! # Drive contract
//!
//! After any `handle_*` call, drain every `poll_*` until it returns `None` before waiting
//! for the next input or for `poll_timeout()`. Packet devices (NAT, firewall) answer each
//! packet synchronously with a [`Verdict`]; a dropped packet is a counted [`DropReason`],
//! never an error.
#![deny(missing_docs)]
#![warn(unreachable_pub)]
#![deny(unsafe_code)]

pub mod alg;
pub mod fabric;
pub mod firewall;
pub mod link;
pub mod nat;
pub mod pcap;
pub mod prefix;
pub mod rng;
pub mod topology;
pub mod verdict;
pub mod wire;

pub use nat::{Nat, NatConfig};
pub use prefix::Prefix;
pub use verdict::{Direction, DropReason, Verdict};
pub use wire::PacketBuf;
