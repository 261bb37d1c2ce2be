//! pinhole's servers as sans-IO cores.
//!
//! - [`sdp`]: SDP (RFC 8866) parse/serialise, hold detection, the media-relay rewrite.
//! - [`stun`]: STUN codec, RFC 5780 server and NAT behaviour prober.
//! - [`turn`]: RFC 8656 TURN server core (UDP, long-term credentials, deny list).
//! - [`http_proxy`]: an authenticating HTTP CONNECT proxy (RFC 9110 §9.3.6), the way out
//!   of an `http-proxy-only` firewall.
#![deny(missing_docs)]
#![warn(unreachable_pub)]

pub mod http_proxy;
pub mod sdp;
pub mod stun;
pub mod turn;
