//! pinhole's servers as sans-IO cores.
//!
//! - [`stun`]: STUN codec, RFC 5780 server and NAT behaviour prober.
#![deny(missing_docs)]
#![warn(unreachable_pub)]

pub mod stun;
