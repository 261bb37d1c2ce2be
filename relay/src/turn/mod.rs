//! TURN (RFC 8656): a sans-IO relay server core, UDP transport, long-term credentials
//! (RFC 8489 §9.2).
//!
//! - [`attrs`]: TURN methods, attributes and error codes (RFC 8656 §18, §19) over the
//!   lossless STUN codec ([`crate::stun::Message`], [`crate::stun::Attribute::Raw`]).
//! - [`auth`]: long-term keys (MD5, SHA-256), password algorithms, USERHASH, the nonce
//!   cookie and its security features (RFC 8489 §9.2), deterministic nonces, 401 rate
//!   limiting.
//! - [`channel`]: ChannelData framing (RFC 8656 §12.4).
//! - [`deny`]: the peer-address deny list (RFC 8656 §21.1.2), on by default.
//! - [`allocation`]: allocations, permissions, channels, lifetimes (RFC 8656 §2.2, §9, §12).
//! - [`config`]: [`TurnConfig`]; [`event`]: [`TurnEvent`], [`TurnStats`].
//! - [`server`]: [`TurnServer`], the core; [`server::tcp_relay`]: RFC 6062 TCP
//!   allocations (Connect, ConnectionBind, ConnectionAttempt, raw data connections).
//! - [`client`]: [`TurnClient`], a sans-IO client (allocate, permissions, channels, data).
//! - [`stream`]: [`stream::Framer`], STUN and ChannelData framing on TCP/TLS streams.
//!
//! # Scope
//!
//! Client–server transport is UDP or a stream (TCP; TLS when the driver terminates it,
//! RFC 8656 §3.1); the relayed transport is UDP, or TCP per RFC 6062 over a stream control
//! connection ([`server::tcp_relay`]; other REQUESTED-TRANSPORT values get 442). Not
//! implemented: DTLS, dual-stack
//! allocations (ADDITIONAL-ADDRESS-FAMILY, RFC 8656 §7.2, is ignored), DONT-FRAGMENT (the
//! core cannot set DF: 420 on Allocate, Send indications carrying it are discarded),
//! ICMP attribute relaying (RFC 8656 §11.5), SASLprep/OpaqueString normalisation of
//! credentials (they are used as given), RFC 3489 (cookie-less) messages.
//!
//! # Drive contract
//!
//! The core owns no socket and reads no clock (the crate's vocabulary: [`crate::io`]).
//! Everything the driver sees is an [`Input`] for `handle_input(now, input)`. After any
//! `handle_*` call, drain `poll_transmit()`, `poll_command()` and `poll_event()` until
//! `None`: send every [`Transmit`], carry out every [`Command`] (bind and close relayed
//! UDP sockets; RFC 6062 listeners, connections to peers, raw data connections — report
//! back with the `Tcp*` inputs), record the events; then sleep until `poll_timeout()` and
//! call `handle_timeout(now)`.
//!
//! ```no_run
//! # use std::time::Instant;
//! # use relay::turn::{Command, Input, TurnConfig, TurnServer};
//! # fn recv(_: &mut [u8]) -> (std::net::SocketAddr, std::net::SocketAddr, usize) { unimplemented!() }
//! # fn send(_: std::net::SocketAddr, _: std::net::SocketAddr, _: &[u8]) {}
//! let config = TurnConfig::new(
//!     "198.51.100.1:3478".parse().unwrap(),
//!     "198.51.100.1".parse().unwrap(),
//!     "example.org",
//! )
//! .user("alice", "secret");
//! let mut server = TurnServer::new(config).expect("valid config");
//! let mut buf = [0u8; 65536];
//! loop {
//!     // receive on a listening socket or a relayed one
//!     let (local, remote, n) = recv(&mut buf);
//!     server.handle_input(Instant::now(), Input::udp(local, remote, &buf[..n]));
//!     while let Some(t) = server.poll_transmit() {
//!         send(t.from, t.to, &t.data); // t.from picks the socket
//!     }
//!     while let Some(command) = server.poll_command() {
//!         if let Command::BindRelay { relayed } = command { /* bind `relayed` */ }
//!     }
//!     while let Some(_event) = server.poll_event() {}
//! }
//! ```

pub mod allocation;
pub mod attrs;
pub mod auth;
pub mod channel;
pub mod client;
pub mod config;
pub mod deny;
pub mod event;
pub mod server;
pub mod stream;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_auth;

pub use allocation::{AllocationInfo, FiveTuple, Transport};
pub use auth::{LongTermKey, PasswordAlgorithm, SecurityFeatures, long_term_key, userhash};
pub use client::{ClientAuth, ClientConfig, ClientEvent, ClientTransmit, TurnClient};
pub use deny::DenyList;
pub use server::tcp_relay::{ConnectionId, TcpConnectionInfo, TcpRelayStats, TcpSide};
pub use server::{
    AuthFailure, Command, Input, TcpCloseReason, Transmit, TurnConfig, TurnConfigError, TurnEvent,
    TurnServer, TurnStats,
};
