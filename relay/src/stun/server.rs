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

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// The local socket to send from: one of [`ServerConfig::listen_addresses`].
    pub from: SocketAddr,
    /// The destination.
    pub to: SocketAddr,
    /// The payload.
    pub data: Vec<u8>,
}

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
                self.transmits.push_back(Transmit {
                    from,
                    to,
                    data: msg.emit(),
                });
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
                self.transmits.push_back(Transmit {
                    from: local,
                    to: remote,
                    data: msg.emit(),
                });
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
                Attribute::Raw(raw) if attr::is_decoded(raw.typ) => {
                    if attr::is_comprehension_required(raw.typ) {
                        return bad("malformed attribute");
                    }
                }
                Attribute::Raw(raw)
                    if attr::is_comprehension_required(raw.typ) && !is_ignored(raw.typ) =>
                {
                    if !unknown.contains(&raw.typ) {
                        unknown.push(raw.typ);
                    }
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
