//! Typed views of the SDP fields a media relay reads and writes. Each view parses one
//! line's value (the text after `x=` or `a=name:`) and prints back a canonical form; the
//! [`session`](super::session) model keeps the original bytes of lines nobody rewrites.

use std::fmt;
use std::net::IpAddr;

/// The `<addrtype>` of `c=`, `o=` and `a=rtcp` (RFC 8866 §5.7): `IP4`, `IP6`, or any other
/// token, kept as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddrType {
    /// `IP4`.
    Ip4,
    /// `IP6`.
    Ip6,
    /// Another address type (RFC 8866 §8.2.7 registry), kept verbatim.
    Other(String),
}

impl AddrType {
    fn parse(s: &str) -> AddrType {
        match s {
            "IP4" => AddrType::Ip4,
            "IP6" => AddrType::Ip6,
            other => AddrType::Other(other.to_owned()),
        }
    }

    /// The address type of an IP address.
    pub fn of(ip: IpAddr) -> AddrType {
        match ip {
            IpAddr::V4(_) => AddrType::Ip4,
            IpAddr::V6(_) => AddrType::Ip6,
        }
    }
}

impl fmt::Display for AddrType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddrType::Ip4 => f.write_str("IP4"),
            AddrType::Ip6 => f.write_str("IP6"),
            AddrType::Other(s) => f.write_str(s),
        }
    }
}

/// The address part of a `c=` line: an IP literal or a name (RFC 8866 §5.7 allows a
/// fully qualified domain name; a relay cannot use one without resolving it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionAddress {
    /// An IPv4 or IPv6 literal.
    Ip(IpAddr),
    /// Anything else (FQDN, or an address of a non-IP address type), verbatim.
    Name(String),
}

impl fmt::Display for ConnectionAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectionAddress::Ip(ip) => write!(f, "{ip}"),
            ConnectionAddress::Name(n) => f.write_str(n),
        }
    }
}

/// A `c=` line (RFC 8866 §5.7): `c=<nettype> <addrtype> <connection-address>`.
///
/// The multicast forms are tolerated on any address: IPv4 `addr/ttl[/count]` and IPv6
/// `addr[/count]` (§5.7); a rewrite writes a plain unicast address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// `<nettype>`, `IN` for the Internet.
    pub net_type: String,
    /// `<addrtype>`.
    pub addr_type: AddrType,
    /// The address.
    pub address: ConnectionAddress,
    /// The IPv4 multicast TTL, when written.
    pub ttl: Option<u8>,
    /// The number of addresses (multicast hierarchical encoding), when written.
    pub count: Option<u32>,
}

impl Connection {
    /// A unicast `IN` connection for `ip`.
    pub fn unicast(ip: IpAddr) -> Connection {
        Connection {
            net_type: "IN".to_owned(),
            addr_type: AddrType::of(ip),
            address: ConnectionAddress::Ip(ip),
            ttl: None,
            count: None,
        }
    }

    /// Parses the value of a `c=` line (the text after `c=`).
    pub fn parse(value: &str) -> Result<Connection, &'static str> {
        let mut it = value.split(' ');
        let (Some(net), Some(at), Some(addr), None) = (it.next(), it.next(), it.next(), it.next())
        else {
            return Err("expected <nettype> <addrtype> <address> separated by single spaces");
        };
        if net.is_empty() || at.is_empty() || addr.is_empty() {
            return Err("empty field");
        }
        let addr_type = AddrType::parse(at);
        let mut parts = addr.split('/');
        let host = parts.next().unwrap_or_default();
        let first: Option<&str> = parts.next();
        let second: Option<&str> = parts.next();
        if parts.next().is_some() {
            return Err("too many '/' parts");
        }
        let number = |s: &str| -> Result<u32, &'static str> {
            if s.is_empty() || s.len() > 10 || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err("TTL or count is not a number");
            }
            s.parse::<u32>().map_err(|_| "TTL or count out of range")
        };
        let (ttl, count) = match (&addr_type, first, second) {
            (_, None, _) => (None, None),
            (AddrType::Ip6, Some(c), None) => (None, Some(number(c)?)),
            (AddrType::Ip6, Some(_), Some(_)) => return Err("IP6 takes no TTL"),
            (_, Some(t), c) => {
                let ttl = u8::try_from(number(t)?).map_err(|_| "TTL above 255")?;
                (Some(ttl), c.map(number).transpose()?)
            }
        };
        let address = match (&addr_type, host.parse::<IpAddr>()) {
            (AddrType::Ip4, Ok(ip @ IpAddr::V4(_))) | (AddrType::Ip6, Ok(ip @ IpAddr::V6(_))) => {
                ConnectionAddress::Ip(ip)
            }
            (AddrType::Ip4 | AddrType::Ip6, Ok(_)) => {
                return Err("address does not match the address type");
            }
            (_, _) if host.is_empty() => return Err("empty address"),
            (_, _) => ConnectionAddress::Name(host.to_owned()),
        };
        Ok(Connection {
            net_type: net.to_owned(),
            addr_type,
            address,
            ttl,
            count,
        })
    }

    /// The IP address, when it is a literal.
    pub fn ip(&self) -> Option<IpAddr> {
        match self.address {
            ConnectionAddress::Ip(ip) => Some(ip),
            ConnectionAddress::Name(_) => None,
        }
    }

    /// `0.0.0.0` (or `::`): the RFC 2543 way to put a stream on hold, which RFC 3264 §8.4
    /// still asks answerers to understand.
    pub fn is_unspecified(&self) -> bool {
        self.ip().is_some_and(|ip| ip.is_unspecified())
    }
}

impl fmt::Display for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.net_type, self.addr_type, self.address)?;
        if let Some(t) = self.ttl {
            write!(f, "/{t}")?;
        }
        if let Some(c) = self.count {
            write!(f, "/{c}")?;
        }
        Ok(())
    }
}

/// An `m=` line (RFC 8866 §5.14): `m=<media> <port>[/<number of ports>] <proto> <fmt> …`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaLine {
    /// `audio`, `video`, `text`, `application`, `message`, or any other token.
    pub media: String,
    /// The transport port; 0 rejects or disables the stream (RFC 3264 §6, §8.2).
    pub port: u16,
    /// `<number of ports>` when written.
    pub port_count: Option<u32>,
    /// `RTP/AVP`, `RTP/SAVPF`, `UDP/TLS/RTP/SAVPF`, `udp`, `TCP/MRCPv2`, …
    pub proto: String,
    /// The format list (payload types for RTP), possibly empty in rejected streams.
    pub formats: Vec<String>,
}

impl MediaLine {
    /// Parses the value of an `m=` line.
    pub fn parse(value: &str) -> Result<MediaLine, &'static str> {
        let mut it = value.split(' ');
        let media = it.next().unwrap_or_default();
        let port = it.next().ok_or("no port")?;
        let proto = it.next().ok_or("no proto")?;
        if media.is_empty() || proto.is_empty() {
            return Err("empty media or proto");
        }
        let formats: Vec<String> = it.map(str::to_owned).collect();
        if formats.iter().any(String::is_empty) {
            return Err("empty format (double space)");
        }
        let (p, count) = match port.split_once('/') {
            Some((p, c)) => (p, Some(c)),
            None => (port, None),
        };
        let digits =
            |s: &str| !s.is_empty() && s.len() <= 10 && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(p) {
            return Err("port is not a number");
        }
        let port = p.parse::<u16>().map_err(|_| "port above 65535")?;
        let port_count = match count {
            None => None,
            Some(c) if digits(c) => Some(c.parse::<u32>().map_err(|_| "port count too big")?),
            Some(_) => return Err("port count is not a number"),
        };
        Ok(MediaLine {
            media: media.to_owned(),
            port,
            port_count,
            proto: proto.to_owned(),
            formats,
        })
    }

    /// Whether the transport is UDP-based (RTP/AVP, RTP/SAVP(F), UDP/TLS/RTP/SAVPF, udp,
    /// …): anything whose protocol names no TCP. Only these get ICE relay candidates.
    pub fn is_udp(&self) -> bool {
        !self.proto.to_ascii_uppercase().contains("TCP")
    }
}

impl fmt::Display for MediaLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.media, self.port)?;
        if let Some(c) = self.port_count {
            write!(f, "/{c}")?;
        }
        write!(f, " {}", self.proto)?;
        for fmt_ in &self.formats {
            write!(f, " {fmt_}")?;
        }
        Ok(())
    }
}

/// The `a=rtcp` attribute (RFC 3605 §2.1): `a=rtcp:<port> [<nettype> <addrtype>
/// <connection-address>]`, the RTCP port (and address) when it is not RTP port + 1 on the
/// `c=` address — typically what a NAT-aware client learned from STUN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rtcp {
    /// The RTCP port.
    pub port: u16,
    /// The RTCP address, when given.
    pub connection: Option<Connection>,
}

impl Rtcp {
    /// Parses the attribute value (the text after `a=rtcp:`).
    pub fn parse(value: &str) -> Option<Rtcp> {
        let (port, rest) = match value.split_once(' ') {
            Some((p, r)) => (p, Some(r)),
            None => (value, None),
        };
        if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let port = port.parse::<u16>().ok()?;
        let connection = match rest {
            None => None,
            Some(r) => Some(Connection::parse(r).ok()?),
        };
        Some(Rtcp { port, connection })
    }
}

impl fmt::Display for Rtcp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.port)?;
        if let Some(c) = &self.connection {
            write!(f, " {c}")?;
        }
        Ok(())
    }
}

/// The direction attributes (RFC 8866 §6.7; RFC 3264 §5.1, §6.1). Without one, at either
/// level, a stream is `sendrecv`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaDirection {
    /// `a=sendrecv`.
    SendRecv,
    /// `a=sendonly`.
    SendOnly,
    /// `a=recvonly`.
    RecvOnly,
    /// `a=inactive`.
    Inactive,
}

impl MediaDirection {
    /// The direction an attribute name stands for.
    pub fn from_attribute(name: &str) -> Option<MediaDirection> {
        match name {
            "sendrecv" => Some(MediaDirection::SendRecv),
            "sendonly" => Some(MediaDirection::SendOnly),
            "recvonly" => Some(MediaDirection::RecvOnly),
            "inactive" => Some(MediaDirection::Inactive),
            _ => None,
        }
    }

    /// The attribute name.
    pub fn as_str(self) -> &'static str {
        match self {
            MediaDirection::SendRecv => "sendrecv",
            MediaDirection::SendOnly => "sendonly",
            MediaDirection::RecvOnly => "recvonly",
            MediaDirection::Inactive => "inactive",
        }
    }
}

/// How a stream is put on hold (RFC 3264 §8.4; RFC 6337 §5.3 on the variants seen in
/// practice).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HoldKind {
    /// `a=sendonly` (session or media level): the holder may still send, e.g. music on hold.
    SendOnly,
    /// `a=inactive` (session or media level): no media either way.
    Inactive,
    /// The effective `c=` address is `0.0.0.0` (or `::`): the RFC 2543 form.
    UnspecifiedAddress,
}

/// The ICE attributes of RFC 8839 §5 (plus `ice-mismatch`, `ice-lite`, `ice-pacing`), at
/// session or media level. [`IcePolicy::Strip`](super::IcePolicy::Strip) removes exactly
/// these.
pub fn is_ice_attribute(name: &str) -> bool {
    matches!(
        name,
        "candidate"
            | "remote-candidates"
            | "end-of-candidates"
            | "ice-ufrag"
            | "ice-pwd"
            | "ice-options"
            | "ice-lite"
            | "ice-mismatch"
            | "ice-pacing"
    )
}

/// The foundation and component of an `a=candidate` value (RFC 8839 §5.1:
/// `foundation SP component-id SP transport SP priority SP address SP port SP typ …`),
/// the two fields a relay candidate must be chosen against.
pub(crate) fn candidate_foundation_component(value: &str) -> Option<(&str, u16)> {
    let mut it = value.split(' ');
    let foundation = it.next().filter(|f| !f.is_empty())?;
    let component = it.next()?.parse::<u16>().ok()?;
    Some((foundation, component))
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn connection_forms() {
        let c = Connection::parse("IN IP4 192.0.2.1").unwrap();
        assert_eq!(c.ip(), Some("192.0.2.1".parse().unwrap()));
        let m = Connection::parse("IN IP4 233.252.0.1/127/3").unwrap();
        assert_eq!((m.ttl, m.count), (Some(127), Some(3)));
        assert_eq!(m.to_string(), "IN IP4 233.252.0.1/127/3");
        let v6 = Connection::parse("IN IP6 ff00::db8:0:101/3").unwrap();
        assert_eq!((v6.ttl, v6.count), (None, Some(3)));
        assert!(Connection::parse("IN IP6 ff00::1/3/4").is_err());
        assert!(Connection::parse("IN IP4 233.252.0.1/300").is_err());
        assert!(Connection::parse("IN IP4 2001:db8::1").is_err());
        assert!(Connection::parse("IN IP4").is_err());
        let name = Connection::parse("IN IP4 host.example.com").unwrap();
        assert_eq!(name.ip(), None);
        assert!(
            Connection::parse("IN IP4 0.0.0.0")
                .unwrap()
                .is_unspecified()
        );
    }

    #[test]
    fn media_forms() {
        let m = MediaLine::parse("video 49170/2 RTP/AVP 31 32").unwrap();
        assert_eq!((m.port, m.port_count), (49170, Some(2)));
        assert_eq!(m.to_string(), "video 49170/2 RTP/AVP 31 32");
        assert!(MediaLine::parse("audio 65536 RTP/AVP 0").is_err());
        assert!(MediaLine::parse("audio x RTP/AVP 0").is_err());
        assert!(MediaLine::parse("audio 0").is_err());
        let app = MediaLine::parse("application 9 UDP/DTLS/SCTP webrtc-datachannel").unwrap();
        assert!(app.is_udp());
        assert!(
            !MediaLine::parse("application 9 TCP/MRCPv2 1")
                .unwrap()
                .is_udp()
        );
    }

    #[test]
    fn rtcp_forms() {
        assert_eq!(
            Rtcp::parse("53020"),
            Some(Rtcp {
                port: 53020,
                connection: None
            })
        );
        let r = Rtcp::parse("53020 IN IP4 126.16.64.4").unwrap();
        assert_eq!(r.to_string(), "53020 IN IP4 126.16.64.4");
        assert_eq!(Rtcp::parse("x"), None);
        assert_eq!(Rtcp::parse("70000"), None);
        assert_eq!(Rtcp::parse("5 IN IP4"), None);
    }
}
