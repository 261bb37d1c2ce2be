//! STUN (RFC 8489 / RFC 5389, classic RFC 3489) and NAT behaviour discovery (RFC 5780).
//!
//! - [`message`]: the lossless codec ([`Packet`] view, [`Message`] repr, [`is_stun`]).
//! - [`integrity`]: MESSAGE-INTEGRITY (HMAC-SHA1) check and emission.
//! - [`attr`]: attributes, including RFC 5780's CHANGE-REQUEST, RESPONSE-ORIGIN,
//!   OTHER-ADDRESS, RESPONSE-PORT, PADDING and RFC 3489's SOURCE-/CHANGED-/RESPONSE-ADDRESS.
//! - [`server`]: [`Server`], a sans-IO RFC 5780 binding server on up to four transport
//!   addresses (A,P) (A,P') (A',P) (A',P').
//! - [`prober`]: [`Prober`], a sans-IO RFC 5780 §4 client that classifies the NAT in front
//!   of it: mapping, filtering, hairpinning and binding lifetime.
//!
//! # Drive contract
//!
//! Both cores own no socket and read no clock. After any `handle_*` call, drain
//! `poll_transmit()` and `poll_event()` until they return `None`, then (prober) sleep until
//! `poll_timeout()` and call `handle_timeout(now)`.
//!
//! ```no_run
//! # use std::time::Instant;
//! # use relay::stun::{Server, ServerConfig};
//! # fn recv(_: &mut [u8]) -> (std::net::SocketAddr, std::net::SocketAddr, usize) { unimplemented!() }
//! # fn send(_: std::net::SocketAddr, _: std::net::SocketAddr, _: &[u8]) {}
//! let config = ServerConfig::new("198.51.100.1:3478".parse().unwrap());
//! let mut server = Server::new(config).expect("valid config");
//! let mut buf = [0u8; 2048];
//! loop {
//!     // receive on any of config.listen_addresses()
//!     let (local, remote, n) = recv(&mut buf);
//!     server.handle_input(Instant::now(), local, remote, &buf[..n]);
//!     while let Some(t) = server.poll_transmit() {
//!         send(t.from, t.to, &t.data); // t.from picks the socket
//!     }
//!     while let Some(_event) = server.poll_event() {}
//! }
//! ```

pub mod attr;
pub mod integrity;
pub mod message;
pub mod prober;
pub mod server;

pub use attr::{Attribute, ChangeRequest, ErrorCode, RawAttribute};
pub use message::{Class, Message, Method, Packet, ParseError, TransactionId, is_stun};
pub use prober::{
    Behavior, PORT_SAMPLES, PortAllocation, ProbeEvent, ProbeReport, ProbeTest, ProbeTransmit,
    Prober, ProberConfig, SEQUENTIAL_MAX_STEP, SocketId, TestResult, Tests,
    classify_port_allocation,
};
pub use server::{ConfigError, Server, ServerConfig, ServerEvent, ServerStats, Transmit};
