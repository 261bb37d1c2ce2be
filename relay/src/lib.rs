//! pinhole's servers as sans-IO cores.
//!
//! - [`sdp`]: SDP (RFC 8866) parse/serialise, hold detection, the media-relay rewrite.
//! - [`stun`]: STUN codec, RFC 5780 server and NAT behaviour prober.
//! - [`turn`]: RFC 8656 TURN server core (UDP, long-term credentials, deny list).
//! - [`http_proxy`]: an authenticating HTTP CONNECT proxy (RFC 9110 §9.3.6), the way out
//!   of an `http-proxy-only` firewall.
//! - [`sip`]: SIP (RFC 3261): the lossless message layer (parser, serialiser, typed
//!   Via/From/To/Contact/CSeq/Route views, SIP URIs, TCP framing with RFC 5626 CRLF
//!   keepalives), a registrar that stores the NAT path of each binding, NAT detection and
//!   Contact fixing (the OpenSIPS nat_traversal/nathelper behaviours), and a
//!   transaction-stateful proxy (RFC 3261 §16/§17 timers A–K, RFC 3581 rport) that reports
//!   registrations, dialogs and the SIP ladder as typed events.
//!
//! Every core follows one drive contract: after any `handle_*` call, drain `poll_transmit()`
//! and `poll_event()` until `None`, then sleep until `poll_timeout()` and call
//! `handle_timeout(now)`. Cores read no clock and own no socket.
#![deny(missing_docs)]
#![warn(unreachable_pub)]

pub mod demux;
pub mod http_proxy;
pub mod io;
pub mod rng;
pub mod sdp;
pub mod sip;
pub mod stun;
pub mod turn;

pub use io::{ConnId, Flow, Transmit, Transport};
