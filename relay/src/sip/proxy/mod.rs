//! A sans-IO, transaction-stateful SIP proxy and registrar (RFC 3261 §16, §17, §10) with
//! NAT handling (RFC 3581 rport/received, Contact fixing, keepalives), dialog tracking,
//! and SDP rewriting through a media relay ([`media`], with [`Proxy::with_media`]).
//!
//! # Drive contract
//!
//! After any `handle_*` call drain [`Proxy::poll_transmit`] and [`Proxy::poll_event`] until
//! `None`, then sleep until [`Proxy::poll_timeout`] and call [`Proxy::handle_timeout`].
//! The proxy reads no clock and owns no socket; a TCP connection is a [`ConnId`](crate::sip::ConnId) the driver
//! names (frame the byte stream with [`crate::sip::StreamFramer`] first).
//!
//! ```no_run
//! # use relay::sip::proxy::{Input, Proxy, ProxyConfig};
//! # use relay::sip::{Flow, Transport};
//! # use std::time::Instant;
//! # fn recv() -> (Flow, Vec<u8>) { unimplemented!() }
//! # fn send(_: &Flow, _: &[u8]) {}
//! let mut proxy = Proxy::new(ProxyConfig::new("203.0.113.1:5060".parse().unwrap()));
//! loop {
//!     let (flow, bytes) = recv();
//!     proxy.handle_input(Instant::now(), Input::Message { flow, bytes });
//!     while let Some(t) = proxy.poll_transmit() {
//!         send(&t.flow(), &t.data);
//!     }
//!     while let Some(_event) = proxy.poll_event() {}
//!     // ... and on proxy.poll_timeout(): proxy.handle_timeout(Instant::now())
//! }
//! ```
//!
//! # Scope
//!
//! No forking (the most recent binding of an AOR is the target), no DNS (targets are IP
//! addresses or registered contacts), no authentication, no
//! RFC 6026 Accepted state (2xx retransmissions are forwarded statelessly instead).

pub mod config;
mod core;
pub mod media;
mod transaction;

pub use config::{
    DialogEndReason, DropReason, Input, KeepaliveConfig, KeepaliveMethod, MediaConfig, MediaPolicy,
    NatConfig, ProxyConfig, ProxyEvent, Timer, Timers, Transmit,
};
pub use core::{Proxy, ProxyStats};
pub use media::{DynMediaControl, RelayRefused};
