//! Where a SIP message came from and goes to: transport, local and remote addresses, and
//! for connection-oriented transports the driver's connection id (RFC 3261 §18).

use std::fmt;
use std::net::SocketAddr;

/// A SIP transport (RFC 3261 §18; the Via transport token).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    /// UDP: unreliable, retransmission timers run (RFC 3261 §17.1.1.2).
    Udp,
    /// TCP: reliable, one stream per connection (framed by [`crate::sip::StreamFramer`]).
    Tcp,
    /// TLS over TCP.
    Tls,
}

impl Transport {
    /// Whether retransmissions are the transport's job (RFC 3261 §17: timers A, E, G only
    /// on unreliable transports; D, I, J, K zero on reliable ones).
    pub fn is_reliable(self) -> bool {
        !matches!(self, Transport::Udp)
    }

    /// The Via token.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
        }
    }

    /// From a Via token or `transport=` URI parameter (case-insensitive).
    pub fn from_token(s: &str) -> Option<Transport> {
        match s.to_ascii_uppercase().as_str() {
            "UDP" => Some(Transport::Udp),
            "TCP" => Some(Transport::Tcp),
            "TLS" => Some(Transport::Tls),
            _ => None,
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A connection of a connection-oriented transport, named by the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// One side-pair of a message: the proxy's `local` socket, the peer's `remote` address,
/// and for TCP/TLS the connection (so that replies and requests to a NATed UA reuse the
/// connection it opened, RFC 5626 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Flow {
    /// The transport.
    pub transport: Transport,
    /// The proxy's address the message arrived on / leaves from.
    pub local: SocketAddr,
    /// The peer's address (the source of a received message: the NAT's public side).
    pub remote: SocketAddr,
    /// The connection, for connection-oriented transports.
    pub conn: Option<ConnId>,
}

impl fmt::Display for Flow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} <-> {}", self.transport, self.local, self.remote)?;
        if let Some(c) = self.conn {
            write!(f, " (conn {})", c.0)?;
        }
        Ok(())
    }
}
