//! A sans-IO, transaction-stateful SIP proxy and registrar (RFC 3261 §16, §17, §10) with
//! NAT handling (RFC 3581 rport/received, Contact fixing, keepalives), dialog tracking,
//! and SDP rewriting by a media relay driven over rtpengine's ng protocol ([`media`]:
//! [`MediaConfig::relay`] names the relay or dispatcher; messages wait, parked, for its
//! reply; a relay's `media-ended` ends the dialog with a BYE to both sides).
//!
//! # Drive contract
//!
//! After any `handle_*` call drain [`Proxy::poll_transmit`] and [`Proxy::poll_event`] until
//! `None`, then sleep until [`Proxy::poll_timeout`] and call [`Proxy::handle_timeout`].
//! The proxy reads no clock and owns no socket; a TCP connection is a [`ConnId`](crate::sip::ConnId) the driver
//! names (frame the byte stream with [`crate::sip::StreamFramer`] first). With a media
//! relay configured the proxy also sends ng datagrams to [`MediaConfig::relay`] from its
//! UDP address (plain [`Transmit`]s), and the driver hands it every datagram arriving on
//! that socket, the relay's included, as [`Input::Message`]: the proxy tells ng from SIP
//! by the source address. Its deadlines include the ng retransmissions and reply timeout.
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
//! RFC 6026 Accepted state (2xx retransmissions are forwarded statelessly instead). The
//! media relay is reached over UDP only (ng has no other transport here), one address per
//! proxy (a dispatcher spreads calls over several relays).

pub mod config;
mod core;
pub mod media;
mod transaction;

pub use config::{
    DialogEndReason, DropReason, IcePriority, Input, KeepaliveConfig, KeepaliveMethod, MediaConfig,
    MediaPolicy, NatConfig, ProxyConfig, ProxyEvent, Timer, Timers, Transmit,
};
pub use core::{Proxy, ProxyStats};
