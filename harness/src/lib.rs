//! pinhole's scenario model, runner and built-in agents.
//!
//! | module | what it is |
//! |---|---|
//! | [`scenario`] | the YAML model of SCENARIO-FORMAT.md: parsing with exact positions, validation, matrix cells |
//! | [`convert`] | scenario model → emulator configuration |
//! | [`agents`] | built-in agents and services (punch rendezvous and peers, STUN service, RFC 5780 probe) over the socket API [`agents::net::Net`], on the virtual fabric or real sockets |
//! | [`runner`] | runs one cell on the virtual fabric and judges its expectations |
//! | [`cli`] | `pinhole run` / `pinhole validate` as library functions |
#![deny(missing_docs)]

pub mod agents;
pub mod cli;
pub mod convert;
pub mod runner;
pub mod scenario;
