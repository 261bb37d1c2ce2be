//! Fabrics run a [`Topology`](crate::topology::Topology).
//!
//! - [`sim`] (scenario value `virtual`): every host is an in-process smoltcp IP stack and
//!   packets move through the NAT, firewall and link cores in one thread under a virtual
//!   clock. Deterministic for a seed, needs no privileges, runs far faster than real time.
//! - `kernel` (not built yet): hosts as Linux network namespaces behind TUN devices.

pub mod sim;
