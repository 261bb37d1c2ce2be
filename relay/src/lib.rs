//! pinhole's servers as sans-IO cores.
//!
//! - [`sdp`]: SDP (RFC 8866) parse/serialise, hold detection, the media-relay rewrite.
//! - [`media`]: the media relay (MediaProxy-style, rtpengine-controllable): per-call port
//!   pairs, strict latching against RTP Bleed, ICE-aware forwarding, idle timeouts,
//!   accounting records, a zero-copy fast path.
//! - [`rtp`]: RTP and RTCP (RFC 3550) as zero-copy views: the fixed header, compound
//!   RTCP with sender/receiver report blocks, RFC 5761 RTP/RTCP demultiplexing.
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
//! - [`control`]: how a proxy drives a media relay: rtpengine's "ng" control protocol
//!   (bencode codec, typed commands and replies with pinhole's extensions, shared-secret
//!   auth, reply cache), the sans-IO [`control::NgClient`] the proxy uses, the
//!   [`control::NgServer`] that serves a relay over ng, and the [`control::Dispatcher`]
//!   in front of several relays.
//!
//! Shared pieces: [`io`] (the vocabulary below), [`demux`] (RFC 7983 first-byte
//! demultiplexing of one port), [`rng`] (the cores' one seeded generator).
//!
//! # One vocabulary, one drive contract
//!
//! Every core (STUN server and prober, TURN server and client, SIP proxy, HTTP CONNECT
//! tunnel, media relay, and the UA to come) is a sans-IO state machine spoken to in
//! the same words, as quinn-proto and str0m are:
//!
//! - **Input**: `handle_input(now, …)` — `now` first, always. A core with one kind of
//!   input takes it as arguments (a STUN datagram); a core with many takes an `Input`
//!   enum ([`turn::Input`], [`sip::proxy::Input`], [`http_proxy::Input`]).
//!   `handle_timeout(now)` is the other way in.
//! - **Transmit**: `poll_transmit() -> Option<`[`Transmit`]`>` — bytes to send, on UDP or
//!   a stream, from a local address to a remote one, on a named connection or not.
//! - **Command**: `poll_command()` — what the driver must do with its sockets (bind a
//!   relayed UDP socket, listen, connect, shut down, close): [`turn::Command`]. Commands
//!   are never events.
//! - **Event**: `poll_event()` — what happened, typed, for reports; a driver may ignore
//!   every event and still run the core correctly.
//! - **Timeout**: `poll_timeout() -> Option<Instant>` — when to call `handle_timeout`.
//!
//! The single-mutation rule: after any `handle_*` call, drain every `poll_*` until `None`
//! before waiting; then wait for the next input or for `poll_timeout()`, whichever comes
//! first. Cores read no clock, own no socket, and draw randomness only from their seed.
//!
//! ```no_run
//! # use std::time::Instant;
//! use relay::turn::{Command, Input, TurnConfig, TurnServer};
//! # fn wait(_: Option<Instant>) -> Option<(std::net::SocketAddr, std::net::SocketAddr, Vec<u8>)> { None }
//! # fn send(_: &relay::Transmit) {}
//! # fn bind(_: std::net::SocketAddr) {}
//! # fn close(_: std::net::SocketAddr) {}
//! let config = TurnConfig::new(
//!     "198.51.100.1:3478".parse().unwrap(),
//!     "198.51.100.1".parse().unwrap(),
//!     "example.org",
//! );
//! let mut core = TurnServer::new(config).expect("valid config");
//! loop {
//!     // Wait for a datagram or the core's deadline (the driver's clock, not the core's).
//!     match wait(core.poll_timeout()) {
//!         Some((local, remote, data)) => {
//!             core.handle_input(Instant::now(), Input::udp(local, remote, &data))
//!         }
//!         None => core.handle_timeout(Instant::now()),
//!     }
//!     // Mutate once, then drain everything.
//!     while let Some(t) = core.poll_transmit() {
//!         send(&t);
//!     }
//!     while let Some(c) = core.poll_command() {
//!         match c {
//!             Command::BindRelay { relayed } => bind(relayed),
//!             Command::CloseRelay { relayed } => close(relayed),
//!             _ => { /* RFC 6062: see relay::turn::server::tcp_relay */ }
//!         }
//!     }
//!     while let Some(_event) = core.poll_event() {}
//! }
//! ```
#![deny(missing_docs)]
#![warn(unreachable_pub)]

pub mod control;
pub mod demux;
pub mod http_proxy;
pub mod io;
pub mod media;
pub mod rng;
pub mod rtp;
pub mod sdp;
pub mod sip;
pub mod stun;
pub mod turn;

pub use io::{ConnId, Flow, Transmit, Transport};
