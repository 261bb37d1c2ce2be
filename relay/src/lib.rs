//! pinhole's servers as sans-IO cores.
//!
//! - [`stun`]: STUN codec, RFC 5780 server and NAT behaviour prober.
//! - [`turn`]: RFC 8656 TURN server core (UDP, long-term credentials, deny list).
#![deny(missing_docs)]
#![warn(unreachable_pub)]

pub mod sip;
pub mod stun;
pub mod turn;
