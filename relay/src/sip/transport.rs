//! Where a SIP message came from and goes to: transport, local and remote addresses, and
//! for connection-oriented transports the driver's connection id (RFC 3261 §18). These
//! are the crate's shared I/O types ([`crate::io`]), named here for SIP code.

pub use crate::io::{ConnId, Flow, Transport};
