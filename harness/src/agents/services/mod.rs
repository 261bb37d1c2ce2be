//! The scenario's services as thin drivers over the relay's sans-IO cores, on any
//! [`Net`](crate::agents::net::Net) (started by [`crate::run::services`]).
//!
//! | module | what it is |
//! |---|---|
//! | [`sip_proxy`] | the `sip-proxy` service: `relay::sip::proxy::Proxy` on a host's UDP and TCP sockets |
//! | [`stun`] | the `stun` service: `relay::stun::Server` on a host's sockets |
//! | [`turn`] | the `turn` service: `relay::turn::TurnServer` over UDP, TCP and TLS, sharing its port with an RFC 5780 `stun` service |
//! | [`http_proxy`] | the `http-proxy` service: an authenticating HTTP CONNECT proxy |
//! | [`media_relay`] | the `media-relay` service: `relay::control::NgServer` (the media relay behind its ng port) on a host's sockets |
//! | [`dispatcher`] | the `dispatcher` service: `relay::control::Dispatcher` over several relays |
//!
//! Each gathers its core's events for the cell's log (`Agent::drain_events`).

pub mod dispatcher;
pub mod http_proxy;
pub mod media_relay;
pub mod sip_proxy;
pub mod stun;
pub mod turn;
