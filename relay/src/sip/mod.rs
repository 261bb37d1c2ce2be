//! SIP (RFC 3261): the message layer, and (growing) registrar and proxy cores.
//!
//! - [`message`]: [`Message`] parse/serialise (RFC 3261 §7, §25), lossless for what is not
//!   edited; [`Limits`]; [`Framing`].
//! - [`headers`]: typed views — [`Via`], [`NameAddr`], [`CSeq`], [`Contacts`], compact names.
//! - [`uri`]: [`Uri`], [`SipUri`] (RFC 3261 §19.1, IPv6 references per RFC 5118).
//! - [`text`]: tokens, quoted strings, comma lists, [`Params`].
//! - [`framer`]: [`StreamFramer`], Content-Length framing and CRLF keepalives on TCP
//!   (RFC 3261 §18.3, RFC 5626 §4.4.1).
//! - [`error`]: the [`ParseError`] enum.
//! - [`transport`]: [`Transport`], [`Flow`], [`ConnId`] (where a message came from / goes).
//! - [`registrar`]: [`registrar::Registrar`] (RFC 3261 §10.3) storing each binding's path.
//! - [`nat`]: NAT detection tests and Contact fixing (`sip-proxy.nat`).
//! - [`proxy`]: [`proxy::Proxy`], the transaction-stateful proxy (RFC 3261 §16, §17).
//!
//! Nothing here panics on any input: `Message::parse` is fuzzed (`fuzz/`, target
//! `sip_parse`) and tested against the RFC 4475 torture messages
//! (`relay/tests/sip_torture.rs`).

pub mod error;
pub mod framer;
pub mod headers;
pub mod message;
pub mod nat;
pub mod proxy;
pub mod registrar;
pub mod text;
pub mod transport;
pub mod uri;

pub use error::ParseError;
pub use framer::{Frame, PONG, StreamFramer};
pub use headers::{CSeq, Contacts, NameAddr, Via};
pub use message::{Framing, Header, Limits, Message, Method, StartLine};
pub use text::Params;
pub use transport::{ConnId, Flow, Transport};
pub use uri::{SipUri, Uri};
