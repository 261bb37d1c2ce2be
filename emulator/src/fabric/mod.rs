//! Fabrics run a [`Topology`](crate::topology::Topology).
//!
//! - [`sim`] (scenario value `virtual`): every host is an in-process smoltcp IP stack and
//!   packets move through the NAT, firewall and link cores in one thread under a virtual
//!   clock. Deterministic for a seed, needs no privileges, runs far faster than real time.
//! - [`kernel`] (scenario value `kernel`): hosts as Linux network namespaces behind TUN
//!   devices, inside a sandbox of user + PID + mount + network namespaces.
//!
//! Both share [`engine::Engine`], the sans-IO packet path through networks, NATs,
//! firewalls and links; a fabric only moves packets between it and its hosts.

pub mod engine;
pub mod kernel;
pub mod sim;
