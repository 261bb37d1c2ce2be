//! How a SIP proxy drives a media relay (DESIGN.md `control`): rtpengine's "ng" control
//! protocol, which Kamailio's and OpenSIPS's `rtpengine` modules speak, so that they,
//! pinhole's proxy and `pinhole bench relay` all drive a relay the same way.
//!
//! - [`bencode`]: the wire codec (one bencoded dictionary per UDP datagram behind a
//!   cookie).
//! - [`ng`]: the typed commands (ping, offer, answer, delete, query, list, and pinhole's
//!   media-ended and drain) and replies, the shared-secret `auth`, the reply cache.
//! - [`client`]: [`NgClient`], the sans-IO control client (cookies, retransmission,
//!   timeout) a proxy uses to talk to a relay or a dispatcher.
//!
//! - [`server`]: [`NgServer`], a [`crate::media::MediaRelay`] served over ng.
//! - [`dispatcher`]: [`Dispatcher`], several relays behind one ng address.

pub mod bencode;
pub mod client;
pub mod dispatcher;
pub mod ng;
pub mod server;

pub use client::{ClientConfig, ClientOutcome, NgClient, RequestId};
pub use dispatcher::{DRAINING, Dispatcher, DispatcherConfig, DispatcherEvent, RelayState};
pub use ng::{NgCommand, NgError, NgMessage, NgReply};
pub use server::{NgServer, ServerConfig, ServerEvent};
