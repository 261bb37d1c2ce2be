//! The I/O vocabulary every relay core speaks (quinn-proto's `Transmit`, str0m's
//! `net::Transmit`): the [`Transport`] a packet or stream uses, the driver's [`ConnId`]
//! for a connection, the [`Flow`] a received message came on, and the one [`Transmit`]
//! that every core hands its driver. See the crate docs for the drive contract.

use std::fmt;
use std::net::SocketAddr;

/// The transport under a core's messages: the RFC 3261 §18 / RFC 8656 §3.1 choice of UDP,
/// TCP or TLS over TCP (the driver terminates TLS; the core only needs to know that the
/// bytes are a stream, and SIP needs the Via token).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Transport {
    /// UDP: one message per datagram; retransmission is the core's job (RFC 3261
    /// §17.1.1.2, RFC 8489 §6.2.1).
    #[default]
    Udp,
    /// TCP: a reliable byte stream, messages framed back to back.
    Tcp,
    /// TLS over TCP: as [`Transport::Tcp`]; the driver does the TLS.
    Tls,
}

impl Transport {
    /// Whether retransmissions are the transport's job (RFC 3261 §17: timers A, E, G only
    /// on unreliable transports; D, I, J, K zero on reliable ones). Also: whether the
    /// bytes are a stream that needs framing (RFC 8656 §12.5).
    pub fn is_reliable(self) -> bool {
        !matches!(self, Transport::Udp)
    }

    /// The Via token (RFC 3261 §18; also RFC 8656's names for the client transports).
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

/// One side-pair of a message: the core's `local` socket, the peer's `remote` address,
/// and for TCP/TLS the connection (so that replies and requests to a NATed peer reuse the
/// connection it opened, RFC 5626 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Flow {
    /// The transport.
    pub transport: Transport,
    /// The core's address the message arrived on / leaves from.
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

/// Bytes a core wants sent: the one output type of STUN, TURN and SIP (and of the media
/// relay and UA to come).
///
/// - [`Transport::Udp`]: one datagram `data` from the local socket `from` to `to`.
/// - [`Transport::Tcp`]/[`Transport::Tls`] with `conn == Some(c)`: the bytes go on
///   connection `c` only, never elsewhere. If it has closed meanwhile, the driver hands
///   the transmit back to the core as a transport error (SIP: `Input::TransportError`)
///   and the core picks the next target (RFC 3261 §18.4).
/// - A stream with `conn == None`: the bytes go on the open connection between `from` and
///   `to` (TURN, RFC 8656 §3.1: the 5-tuple names the connection), or, when none is open
///   and the core allows it (SIP, RFC 3261 §18.1.1), on a new connection from `from` to
///   `to`; a failed attempt is reported the same way as a closed connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// UDP, or the stream transport.
    pub transport: Transport,
    /// The local address to send from: picks the socket or connection.
    pub from: SocketAddr,
    /// The destination.
    pub to: SocketAddr,
    /// The driver's connection for stream transports, when the core names one.
    pub conn: Option<ConnId>,
    /// The datagram, or the bytes to write on the stream.
    pub data: Vec<u8>,
}

impl Transmit {
    /// A UDP datagram `data` from the local socket `from` to `to`.
    pub fn udp(from: SocketAddr, to: SocketAddr, data: Vec<u8>) -> Transmit {
        Transmit {
            transport: Transport::Udp,
            from,
            to,
            conn: None,
            data,
        }
    }

    /// `data` on `flow`: from its local address to its remote one, on its connection.
    pub fn on(flow: Flow, data: Vec<u8>) -> Transmit {
        Transmit {
            transport: flow.transport,
            from: flow.local,
            to: flow.remote,
            conn: flow.conn,
            data,
        }
    }

    /// The flow the transmit names (what a core gets back with a transport error).
    pub fn flow(&self) -> Flow {
        Flow {
            transport: self.transport,
            local: self.from,
            remote: self.to,
            conn: self.conn,
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn flow_round_trips_through_a_transmit() {
        let flow = Flow {
            transport: Transport::Tls,
            local: "192.0.2.1:5061".parse().unwrap(),
            remote: "203.0.113.7:40000".parse().unwrap(),
            conn: Some(ConnId(9)),
        };
        let t = Transmit::on(flow, b"x".to_vec());
        assert_eq!((t.from, t.to, t.conn), (flow.local, flow.remote, flow.conn));
        assert_eq!(t.flow(), flow);
        let u = Transmit::udp(flow.local, flow.remote, vec![]);
        assert_eq!(u.flow().transport, Transport::Udp);
        assert_eq!(u.flow().conn, None);
    }

    #[test]
    fn via_tokens() {
        for t in [Transport::Udp, Transport::Tcp, Transport::Tls] {
            assert_eq!(Transport::from_token(&t.as_str().to_lowercase()), Some(t));
        }
        assert_eq!(Transport::from_token("SCTP"), None);
        assert!(!Transport::Udp.is_reliable());
        assert!(Transport::Tcp.is_reliable() && Transport::Tls.is_reliable());
    }
}
