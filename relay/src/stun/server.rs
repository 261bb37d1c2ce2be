//! A sans-IO STUN binding server with RFC 5780 NAT behaviour discovery support.
//!
//! The server answers on up to four transport addresses: (A,P) (A,P') (A',P) (A',P'),
//! where A is the primary IP, A' the optional alternate IP and P' the alternate port
//! (default P+1). [`ServerConfig::listen_addresses`] lists the sockets the driver binds;
//! every [`Transmit`] names the socket to send from.
//!
//! Per request (RFC 8489 §6.3, RFC 5780 §6.1):
//! - modern requests (with the magic cookie) get XOR-MAPPED-ADDRESS, RESPONSE-ORIGIN,
//!   OTHER-ADDRESS (only with an alternate IP, RFC 5780 §7.4), SOFTWARE, PADDING (if the
//!   request had one, of the same length) and FINGERPRINT (if the request had one);
//! - RFC 3489 requests (no cookie) get MAPPED-ADDRESS, SOURCE-ADDRESS, CHANGED-ADDRESS
//!   (with an alternate IP) and SOFTWARE, and keep their 128-bit transaction id;
//! - CHANGE-REQUEST picks the sending socket relative to the one that received the
//!   request; a change the server cannot make (no alternate IP / port) gets
//!   420 (Unknown Attribute) listing CHANGE-REQUEST (RFC 5780 §6.1);
//! - RESPONSE-PORT sends the response to the request's source IP at that port
//!   (RFC 5780 §7.5); RESPONSE-PORT together with PADDING gets 400 (RFC 5780 §6.1);
//! - unknown comprehension-required attributes get 420 with UNKNOWN-ATTRIBUTES; the
//!   RFC 8489 authentication attributes (USERNAME, MESSAGE-INTEGRITY, …) are ignored
//!   since this server does not authenticate; a malformed known attribute gets 400;
//! - RFC 3489 RESPONSE-ADDRESS is parsed but not honoured (it makes the server a
//!   reflector; RFC 5780 removed it): the response goes to the source;
//! - indications and responses are ignored; garbage gets no reply. Both are counted.
//!
//! Error responses are always sent from the receiving socket to the request's source.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use thiserror::Error;

use super::attr::{self, Attribute, ChangeRequest, ErrorCode, kind};
use super::message::{Class, HEADER_LEN, Message, Method};

/// Largest PADDING the server echoes: keeps the response under 64 KiB.
const MAX_PADDING: usize = 65_000;

/// Server configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Primary transport address A:P.
    pub primary: SocketAddr,
    /// Alternate IP A' (same family as A). Enables CHANGE-REQUEST "change IP" and OTHER-ADDRESS.
    pub alternate: Option<IpAddr>,
    /// Alternate port P'. Defaults to P+1 (P−1 when P = 65535) when `alternate` is set.
    /// Setting it without `alternate` gives a two-socket server that can change port only.
    pub alternate_port: Option<u16>,
    /// SOFTWARE attribute value for responses.
    pub software: Option<String>,
}

impl ServerConfig {
    /// A single-socket server at `primary`, with SOFTWARE "pinhole".
    pub fn new(primary: SocketAddr) -> Self {
        ServerConfig {
            primary,
            alternate: None,
            alternate_port: None,
            software: Some("pinhole".into()),
        }
    }

    /// The alternate port in effect, if any.
    pub fn effective_alternate_port(&self) -> Option<u16> {
        match (self.alternate, self.alternate_port) {
            (_, Some(p)) => Some(p),
            (Some(_), None) => {
                let p = self.primary.port();
                Some(p.checked_add(1).unwrap_or(p - 1))
            }
            (None, None) => None,
        }
    }

    /// The sockets to bind: (A,P) alone; (A,P) (A,P') with an alternate port only; or
    /// (A,P) (A,P') (A',P) (A',P') with an alternate IP. Always in this order.
    pub fn listen_addresses(&self) -> Vec<SocketAddr> {
        let ips: Vec<IpAddr> = std::iter::once(self.primary.ip())
            .chain(self.alternate)
            .collect();
        let ports: Vec<u16> = std::iter::once(self.primary.port())
            .chain(self.effective_alternate_port())
            .collect();
        ips.iter()
            .flat_map(|ip| ports.iter().map(move |p| SocketAddr::new(*ip, *p)))
            .collect()
    }

    /// Checks the configuration.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(alt) = self.alternate {
            if alt.is_ipv4() != self.primary.is_ipv4() {
                return Err(ConfigError::FamilyMismatch {
                    primary: self.primary.ip(),
                    alternate: alt,
                });
            }
            if alt == self.primary.ip() {
                return Err(ConfigError::SameAddress(alt));
            }
        }
        if self.effective_alternate_port() == Some(self.primary.port()) {
            return Err(ConfigError::SamePort(self.primary.port()));
        }
        if let Some(s) = &self.software
            && s.chars().count() > 127
        {
            return Err(ConfigError::SoftwareTooLong(s.chars().count()));
        }
        Ok(())
    }
}

/// A configuration the server refuses.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A and A' are of different families.
    #[error(
        "alternate address {alternate} is not of the same family as primary {primary}: use an address of the same IP version"
    )]
    FamilyMismatch {
        /// The primary IP.
        primary: IpAddr,
        /// The alternate IP.
        alternate: IpAddr,
    },
    /// A' = A.
    #[error("alternate address {0} equals the primary address: give the server a second IP")]
    SameAddress(IpAddr),
    /// P' = P.
    #[error("alternate port {0} equals the primary port: choose another alternate_port")]
    SamePort(u16),
    /// SOFTWARE longer than 127 characters (RFC 8489 §14.14).
    #[error("software name has {0} characters; STUN allows at most 127")]
    SoftwareTooLong(usize),
}

/// A datagram to send: always [`crate::Transport::Udp`], `from` one of
/// [`ServerConfig::listen_addresses`].
pub use crate::io::Transmit;

/// What the server did, for reports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerEvent {
    // ===== answered =====
    /// A Binding request was answered with a success response.
    BindingRequest {
        /// The request's source.
        remote: SocketAddr,
        /// The socket that received it.
        local: SocketAddr,
        /// The socket the response was sent from.
        responded_from: SocketAddr,
        /// Where the response was sent (differs from `remote` with RESPONSE-PORT).
        responded_to: SocketAddr,
        /// CHANGE-REQUEST "change IP".
        change_ip: bool,
        /// CHANGE-REQUEST "change port".
        change_port: bool,
        /// An RFC 3489 request (no magic cookie).
        legacy: bool,
    },
    /// A request was answered with an error response.
    ErrorResponse {
        /// The request's source.
        remote: SocketAddr,
        /// The socket that received it.
        local: SocketAddr,
        /// The error code sent.
        code: u16,
        /// Why.
        reason: String,
    },
    // ===== not answered =====
    /// Bytes that are not a STUN message, or arrived on a socket that is not ours.
    Invalid {
        /// The source.
        remote: SocketAddr,
        /// The socket that received them.
        local: SocketAddr,
        /// Why they were dropped.
        reason: String,
    },
}

/// Counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Requests received (any method).
    pub requests: u64,
    /// Of which RFC 3489 (no cookie).
    pub legacy_requests: u64,
    /// Success responses sent.
    pub success_responses: u64,
    /// Error responses sent.
    pub error_responses: u64,
    /// Indications and responses received and ignored.
    pub ignored: u64,
    /// Datagrams that did not parse, or arrived on an unknown local address.
    pub malformed: u64,
}

/// The sans-IO STUN server. See the module docs.
#[derive(Debug)]
pub struct Server {
    config: ServerConfig,
    alternate_port: Option<u16>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<ServerEvent>,
    stats: ServerStats,
}

/// The outcome of processing one request.
enum Reply {
    Success {
        from: SocketAddr,
        to: SocketAddr,
        msg: Message,
        change: ChangeRequest,
    },
    Error {
        code: u16,
        reason: String,
        unknown: Vec<u16>,
    },
}

impl Server {
    /// A server for a validated configuration.
    pub fn new(config: ServerConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let alternate_port = config.effective_alternate_port();
        Ok(Server {
            config,
            alternate_port,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: ServerStats::default(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Counters.
    pub fn stats(&self) -> &ServerStats {
        &self.stats
    }

    /// A datagram `data` from `remote` arrived on our socket `local`.
    pub fn handle_input(
        &mut self,
        _now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        data: &[u8],
    ) {
        if !self.is_local(local) {
            self.invalid(
                local,
                remote,
                format!("{local} is not one of the server's listen addresses"),
            );
            return;
        }
        let req = match Message::parse(data) {
            Ok(m) => m,
            Err(e) => {
                self.invalid(local, remote, e.to_string());
                return;
            }
        };
        if req.class != Class::Request {
            self.stats.ignored += 1;
            tracing::trace!(%remote, class = ?req.class, "ignoring non-request");
            return;
        }
        self.stats.requests += 1;
        let legacy = req.transaction_id.is_legacy();
        if legacy {
            self.stats.legacy_requests += 1;
        }
        match self.process(local, remote, &req) {
            Reply::Success {
                from,
                to,
                msg,
                change,
            } => {
                self.stats.success_responses += 1;
                self.transmits
                    .push_back(Transmit::udp(from, to, msg.emit()));
                self.events.push_back(ServerEvent::BindingRequest {
                    remote,
                    local,
                    responded_from: from,
                    responded_to: to,
                    change_ip: change.change_ip,
                    change_port: change.change_port,
                    legacy,
                });
            }
            Reply::Error {
                code,
                reason,
                unknown,
            } => {
                self.stats.error_responses += 1;
                let mut msg = Message::new(Class::Error, req.method, req.transaction_id)
                    .with(Attribute::ErrorCode(ErrorCode::new(code, reason.clone())));
                if !unknown.is_empty() {
                    msg.attributes.push(Attribute::UnknownAttributes(unknown));
                }
                self.finish(&req, &mut msg);
                self.transmits
                    .push_back(Transmit::udp(local, remote, msg.emit()));
                self.events.push_back(ServerEvent::ErrorResponse {
                    remote,
                    local,
                    code,
                    reason,
                });
            }
        }
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }

    fn is_local(&self, local: SocketAddr) -> bool {
        (local.ip() == self.config.primary.ip() || Some(local.ip()) == self.config.alternate)
            && (local.port() == self.config.primary.port()
                || Some(local.port()) == self.alternate_port)
    }

    fn invalid(&mut self, local: SocketAddr, remote: SocketAddr, reason: String) {
        self.stats.malformed += 1;
        tracing::debug!(%remote, %local, %reason, "dropping invalid datagram");
        self.events.push_back(ServerEvent::Invalid {
            remote,
            local,
            reason,
        });
    }

    /// The other IP of a listen address's IP (A ↔ A').
    fn other_ip(&self, ip: IpAddr) -> Option<IpAddr> {
        let alt = self.config.alternate?;
        Some(if ip == alt {
            self.config.primary.ip()
        } else {
            alt
        })
    }

    /// The other port (P ↔ P').
    fn other_port(&self, port: u16) -> Option<u16> {
        let alt = self.alternate_port?;
        Some(if port == alt {
            self.config.primary.port()
        } else {
            alt
        })
    }

    fn process(&self, local: SocketAddr, remote: SocketAddr, req: &Message) -> Reply {
        let bad = |reason: &str| Reply::Error {
            code: attr::error::BAD_REQUEST,
            reason: reason.into(),
            unknown: vec![],
        };
        if req.method != Method::Binding {
            return bad("unsupported method");
        }
        let mut unknown: Vec<u16> = Vec::new();
        let mut change = ChangeRequest::default();
        let mut response_port = None;
        let mut padding_len = None;
        for a in &req.attributes {
            match a {
                Attribute::ChangeRequest(c) => change = *c,
                Attribute::ResponsePort(p) => response_port = Some(*p),
                Attribute::Padding(p) => padding_len = Some(p.len()),
                Attribute::Raw(raw)
                    if attr::is_decoded(raw.typ) && attr::is_comprehension_required(raw.typ) =>
                {
                    return bad("malformed attribute");
                }
                Attribute::Raw(raw)
                    if attr::is_comprehension_required(raw.typ)
                        && !attr::is_decoded(raw.typ)
                        && !is_ignored(raw.typ)
                        && !unknown.contains(&raw.typ) =>
                {
                    unknown.push(raw.typ);
                }
                _ => {}
            }
        }
        if !unknown.is_empty() {
            return Reply::Error {
                code: attr::error::UNKNOWN_ATTRIBUTE,
                reason: "Unknown Attribute".into(),
                unknown,
            };
        }
        if response_port.is_some() && padding_len.is_some() {
            return bad("PADDING with RESPONSE-PORT");
        }
        if response_port == Some(0) {
            return bad("RESPONSE-PORT 0");
        }
        let from_ip = if change.change_ip {
            self.other_ip(local.ip())
        } else {
            Some(local.ip())
        };
        let from_port = if change.change_port {
            self.other_port(local.port())
        } else {
            Some(local.port())
        };
        let (Some(from_ip), Some(from_port)) = (from_ip, from_port) else {
            return Reply::Error {
                code: attr::error::UNKNOWN_ATTRIBUTE,
                reason: "Unknown Attribute: server cannot honour CHANGE-REQUEST".into(),
                unknown: vec![kind::CHANGE_REQUEST],
            };
        };
        let from = SocketAddr::new(from_ip, from_port);
        let to = SocketAddr::new(remote.ip(), response_port.unwrap_or(remote.port()));
        let other = match (self.other_ip(local.ip()), self.other_port(local.port())) {
            (Some(ip), Some(port)) => Some(SocketAddr::new(ip, port)),
            _ => None,
        };
        let mut msg = Message::new(Class::Success, Method::Binding, req.transaction_id);
        if req.transaction_id.is_legacy() {
            msg.attributes.push(Attribute::MappedAddress(remote));
            msg.attributes.push(Attribute::SourceAddress(from));
            if let Some(o) = other {
                msg.attributes.push(Attribute::ChangedAddress(o));
            }
        } else {
            msg.attributes.push(Attribute::XorMappedAddress(remote));
            msg.attributes.push(Attribute::ResponseOrigin(from));
            if let Some(o) = other {
                msg.attributes.push(Attribute::OtherAddress(o));
            }
        }
        if let Some(len) = padding_len {
            // Echo the request's size choice (the core does not know the outgoing MTU);
            // padded to a multiple of 4 and capped to fit a datagram.
            let room = MAX_PADDING.saturating_sub(msg.buffer_len() + HEADER_LEN + 64);
            let len = attr::padded(len).min(room) & !3;
            msg.attributes.push(Attribute::Padding(vec![0; len]));
        }
        self.finish(req, &mut msg);
        Reply::Success {
            from,
            to,
            msg,
            change,
        }
    }

    /// Adds SOFTWARE and, when the request had one, FINGERPRINT (modern requests only).
    fn finish(&self, req: &Message, msg: &mut Message) {
        if let Some(s) = &self.config.software {
            msg.attributes.push(Attribute::Software(s.clone()));
        }
        if req.has_fingerprint() && !req.transaction_id.is_legacy() {
            msg.attributes.push(Attribute::Fingerprint(0));
        }
    }
}

/// Comprehension-required attributes a non-authenticating server may ignore
/// (RFC 8489 §9: authentication is a server's choice), plus RFC 3489 RESPONSE-ADDRESS,
/// which is decoded but deliberately not honoured.
fn is_ignored(typ: u16) -> bool {
    matches!(
        typ,
        kind::USERNAME
            | kind::MESSAGE_INTEGRITY
            | kind::MESSAGE_INTEGRITY_SHA256
            | kind::REALM
            | kind::NONCE
            | kind::PASSWORD_ALGORITHM
            | kind::USERHASH
    )
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::stun::attr::RawAttribute;
    use crate::stun::message::TransactionId;

    const A: &str = "198.51.100.1";
    const A2: &str = "198.51.100.2";

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// The server reads no time; any instant will do.
    #[allow(clippy::disallowed_methods)]
    fn epoch() -> Instant {
        Instant::now()
    }

    fn full() -> Server {
        let mut c = ServerConfig::new(sa("198.51.100.1:3478"));
        c.alternate = Some(A2.parse().unwrap());
        Server::new(c).unwrap()
    }

    fn client() -> SocketAddr {
        sa("203.0.113.9:40000")
    }

    fn request(attrs: Vec<Attribute>) -> Message {
        let mut m = Message::new(Class::Request, Method::Binding, TransactionId::new([3; 12]));
        m.attributes = attrs;
        m
    }

    /// Sends `req` to `local`, returns the single transmit and its parsed message.
    fn exchange(server: &mut Server, local: SocketAddr, req: &Message) -> (Transmit, Message) {
        server.handle_input(epoch(), local, client(), &req.emit());
        let t = server.poll_transmit().expect("a response");
        assert!(server.poll_transmit().is_none());
        let m = Message::parse(&t.data).unwrap();
        assert_eq!(m.transaction_id, req.transaction_id);
        (t, m)
    }

    fn change(change_ip: bool, change_port: bool) -> Attribute {
        Attribute::ChangeRequest(ChangeRequest {
            change_ip,
            change_port,
        })
    }

    #[test]
    fn listen_addresses() {
        let mut c = ServerConfig::new(sa("198.51.100.1:3478"));
        assert_eq!(c.listen_addresses(), vec![sa("198.51.100.1:3478")]);
        c.alternate_port = Some(4000);
        assert_eq!(
            c.listen_addresses(),
            vec![sa("198.51.100.1:3478"), sa("198.51.100.1:4000")]
        );
        c.alternate_port = None;
        c.alternate = Some(A2.parse().unwrap());
        assert_eq!(
            c.listen_addresses(),
            vec![
                sa("198.51.100.1:3478"),
                sa("198.51.100.1:3479"),
                sa("198.51.100.2:3478"),
                sa("198.51.100.2:3479")
            ]
        );
        c.primary = sa("198.51.100.1:65535");
        assert_eq!(c.effective_alternate_port(), Some(65534));
        c.alternate = Some("2001:db8::1".parse().unwrap());
        assert!(matches!(
            Server::new(c.clone()),
            Err(ConfigError::FamilyMismatch { .. })
        ));
        c.alternate = Some(A.parse().unwrap());
        assert_eq!(
            Server::new(c.clone()).unwrap_err(),
            ConfigError::SameAddress(A.parse().unwrap())
        );
        c.alternate = None;
        c.alternate_port = Some(65535);
        assert_eq!(Server::new(c).unwrap_err(), ConfigError::SamePort(65535));
    }

    #[test]
    fn every_change_request_combination_from_every_socket() {
        let mut s = full();
        let addrs = s.config().listen_addresses();
        for local in &addrs {
            for (ci, cp) in [(false, false), (false, true), (true, false), (true, true)] {
                let (t, m) = exchange(&mut s, *local, &request(vec![change(ci, cp)]));
                let ip = if ci {
                    if local.ip().to_string() == A { A2 } else { A }
                } else {
                    &local.ip().to_string()
                };
                let port = if cp {
                    if local.port() == 3478 { 3479 } else { 3478 }
                } else {
                    local.port()
                };
                let expect_from = SocketAddr::new(ip.parse().unwrap(), port);
                assert_eq!(
                    t.from, expect_from,
                    "local {local} change ip {ci} port {cp}"
                );
                assert!(addrs.contains(&t.from));
                assert_eq!(t.to, client());
                assert_eq!(m.class, Class::Success);
                assert_eq!(
                    m.get(kind::XOR_MAPPED_ADDRESS),
                    Some(&Attribute::XorMappedAddress(client()))
                );
                assert_eq!(
                    m.get(kind::RESPONSE_ORIGIN),
                    Some(&Attribute::ResponseOrigin(expect_from))
                );
                // OTHER-ADDRESS: where change IP + port would answer from, relative to `local`.
                let other_ip = if local.ip().to_string() == A { A2 } else { A };
                let other_port = if local.port() == 3478 { 3479 } else { 3478 };
                let other = SocketAddr::new(other_ip.parse().unwrap(), other_port);
                assert_eq!(
                    m.get(kind::OTHER_ADDRESS),
                    Some(&Attribute::OtherAddress(other))
                );
                assert_eq!(
                    m.get(kind::SOFTWARE),
                    Some(&Attribute::Software("pinhole".into()))
                );
                assert!(m.get(kind::MAPPED_ADDRESS).is_none());
                assert!(!m.has_fingerprint());
                match s.poll_event() {
                    Some(ServerEvent::BindingRequest {
                        responded_from,
                        change_ip,
                        change_port,
                        legacy,
                        ..
                    }) => {
                        assert_eq!(
                            (responded_from, change_ip, change_port, legacy),
                            (expect_from, ci, cp, false)
                        );
                    }
                    other => panic!("{other:?}"),
                }
            }
        }
        assert_eq!(s.stats().success_responses, 16);
    }

    #[test]
    fn change_without_alternate_gets_420() {
        let mut s = Server::new(ServerConfig::new(sa("198.51.100.1:3478"))).unwrap();
        let (t, m) = exchange(
            &mut s,
            sa("198.51.100.1:3478"),
            &request(vec![change(false, true)]),
        );
        assert_eq!(t.from, sa("198.51.100.1:3478"));
        assert_eq!(m.class, Class::Error);
        assert!(matches!(m.get(kind::ERROR_CODE), Some(Attribute::ErrorCode(e)) if e.code == 420));
        assert_eq!(
            m.get(kind::UNKNOWN_ATTRIBUTES),
            Some(&Attribute::UnknownAttributes(vec![kind::CHANGE_REQUEST]))
        );
        // No alternate: no OTHER-ADDRESS on success either.
        let (_, m) = exchange(
            &mut s,
            sa("198.51.100.1:3478"),
            &request(vec![change(false, false)]),
        );
        assert!(m.get(kind::OTHER_ADDRESS).is_none());

        // Two-socket server: change port works, change IP does not.
        let mut c = ServerConfig::new(sa("198.51.100.1:3478"));
        c.alternate_port = Some(3479);
        let mut s = Server::new(c).unwrap();
        let (t, m) = exchange(
            &mut s,
            sa("198.51.100.1:3478"),
            &request(vec![change(false, true)]),
        );
        assert_eq!((t.from, m.class), (sa("198.51.100.1:3479"), Class::Success));
        assert!(
            m.get(kind::OTHER_ADDRESS).is_none(),
            "OTHER-ADDRESS needs a second IP (RFC 5780 §7.4)"
        );
        let (_, m) = exchange(
            &mut s,
            sa("198.51.100.1:3478"),
            &request(vec![change(true, false)]),
        );
        assert_eq!(m.class, Class::Error);
        assert_eq!(s.stats().error_responses, 1);
    }

    #[test]
    fn rfc3489_request_gets_classic_attributes() {
        let mut s = full();
        let tid = TransactionId::from_bytes([0x42; 16]);
        let mut req = Message::new(Class::Request, Method::Binding, tid);
        req.attributes.push(change(true, false));
        req.attributes
            .push(Attribute::ResponseAddress(sa("192.0.2.99:9")));
        let (t, m) = exchange(&mut s, sa("198.51.100.1:3478"), &req);
        assert_eq!(m.transaction_id, tid, "128-bit id echoed");
        assert_eq!(t.from, sa("198.51.100.2:3478"));
        assert_eq!(t.to, client(), "RESPONSE-ADDRESS is not honoured");
        assert_eq!(
            m.get(kind::MAPPED_ADDRESS),
            Some(&Attribute::MappedAddress(client()))
        );
        assert_eq!(
            m.get(kind::SOURCE_ADDRESS),
            Some(&Attribute::SourceAddress(sa("198.51.100.2:3478")))
        );
        assert_eq!(
            m.get(kind::CHANGED_ADDRESS),
            Some(&Attribute::ChangedAddress(sa("198.51.100.2:3479")))
        );
        assert!(m.get(kind::XOR_MAPPED_ADDRESS).is_none());
        assert!(m.get(kind::OTHER_ADDRESS).is_none());
        assert_eq!(s.stats().legacy_requests, 1);
    }

    #[test]
    fn response_port_and_padding() {
        let mut s = full();
        let (t, m) = exchange(
            &mut s,
            sa("198.51.100.1:3478"),
            &request(vec![Attribute::ResponsePort(5555)]),
        );
        assert_eq!(t.to, sa("203.0.113.9:5555"));
        assert_eq!(t.from, sa("198.51.100.1:3478"));
        assert_eq!(
            m.get(kind::XOR_MAPPED_ADDRESS),
            Some(&Attribute::XorMappedAddress(client()))
        );

        let (_, m) = exchange(
            &mut s,
            sa("198.51.100.1:3478"),
            &request(vec![Attribute::Padding(vec![0xaa; 1401])]),
        );
        assert_eq!(
            m.get(kind::PADDING),
            Some(&Attribute::Padding(vec![0; 1404]))
        );

        let (t, m) = exchange(
            &mut s,
            sa("198.51.100.1:3478"),
            &request(vec![
                Attribute::ResponsePort(5555),
                Attribute::Padding(vec![0; 8]),
            ]),
        );
        assert_eq!(t.to, client());
        assert!(matches!(m.get(kind::ERROR_CODE), Some(Attribute::ErrorCode(e)) if e.code == 400));
    }

    #[test]
    fn unknown_attributes_and_fingerprint() {
        let mut s = full();
        let req = request(vec![
            Attribute::Raw(RawAttribute::new(0x0024, vec![0; 4])), // PRIORITY (ICE): unknown here
            Attribute::Raw(RawAttribute::new(kind::USERNAME, b"a:b".to_vec())), // ignored: no auth
            Attribute::Raw(RawAttribute::new(0x8029, vec![0; 8])), // optional: ignored
            Attribute::Raw(RawAttribute::new(0x0025, vec![])),
            Attribute::Raw(RawAttribute::new(0x0024, vec![0; 4])),
            Attribute::Fingerprint(0),
        ]);
        let (_, m) = exchange(&mut s, sa("198.51.100.1:3478"), &req);
        assert_eq!(m.class, Class::Error);
        assert_eq!(
            m.get(kind::UNKNOWN_ATTRIBUTES),
            Some(&Attribute::UnknownAttributes(vec![0x0024, 0x0025]))
        );
        assert!(m.has_fingerprint(), "FINGERPRINT echoed on errors too");

        let (_, m) = exchange(
            &mut s,
            sa("198.51.100.1:3478"),
            &request(vec![Attribute::Fingerprint(0)]),
        );
        assert_eq!(m.class, Class::Success);
        assert!(matches!(
            m.attributes.last(),
            Some(Attribute::Fingerprint(_))
        ));

        // A known comprehension-required attribute with a malformed value: 400.
        let bad = request(vec![Attribute::Raw(RawAttribute::new(
            kind::CHANGE_REQUEST,
            vec![0; 2],
        ))]);
        let (_, m) = exchange(&mut s, sa("198.51.100.1:3478"), &bad);
        assert!(matches!(m.get(kind::ERROR_CODE), Some(Attribute::ErrorCode(e)) if e.code == 400));
        // Unknown method: 400.
        let mut other = request(vec![]);
        other.method = Method::Unknown(0x003);
        let (_, m) = exchange(&mut s, sa("198.51.100.1:3478"), &other);
        assert!(matches!(m.get(kind::ERROR_CODE), Some(Attribute::ErrorCode(e)) if e.code == 400));
        assert_eq!(m.method, Method::Unknown(0x003));
    }

    #[test]
    fn garbage_indications_and_responses_get_silence() {
        let mut s = full();
        let now = epoch();
        let local = sa("198.51.100.1:3478");
        s.handle_input(now, local, client(), b"\x80\x00garbage garbage garbage");
        s.handle_input(now, local, client(), &[]);
        let mut ind = request(vec![]);
        ind.class = Class::Indication;
        s.handle_input(now, local, client(), &ind.emit());
        ind.class = Class::Success;
        s.handle_input(now, local, client(), &ind.emit());
        s.handle_input(now, sa("198.51.100.1:9"), client(), &request(vec![]).emit());
        assert!(s.poll_transmit().is_none());
        assert_eq!(s.stats().malformed, 3);
        assert_eq!(s.stats().ignored, 2);
        assert_eq!(s.stats().requests, 0);
        let mut invalid = 0;
        while let Some(e) = s.poll_event() {
            assert!(matches!(e, ServerEvent::Invalid { .. }));
            invalid += 1;
        }
        assert_eq!(invalid, 3);
    }

    #[test]
    fn ipv6_server() {
        let mut c = ServerConfig::new(sa("[2001:db8::1]:3478"));
        c.alternate = Some("2001:db8::2".parse().unwrap());
        let mut s = Server::new(c).unwrap();
        let remote = sa("[2001:db8:ffff::9]:1234");
        let req = request(vec![change(true, true)]);
        s.handle_input(epoch(), sa("[2001:db8::1]:3478"), remote, &req.emit());
        let t = s.poll_transmit().unwrap();
        assert_eq!(t.from, sa("[2001:db8::2]:3479"));
        let m = Message::parse(&t.data).unwrap();
        assert_eq!(m.mapped_address(), Some(remote));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..120)) {
            let mut s = full();
            s.handle_input(epoch(), sa("198.51.100.1:3478"), client(), &bytes);
            while s.poll_transmit().is_some() {}
        }
    }
}
