//! The sans-IO TURN server core (RFC 8656 over UDP, long-term credentials per RFC 8489 §9.2
//! with password algorithms, USERHASH and MESSAGE-INTEGRITY-SHA256: [`super::auth`]).
//!
//! Two kinds of local sockets feed [`TurnServer::handle_input`]: the listening transport
//! addresses ([`TurnConfig::listen`]), where clients send STUN/TURN messages and
//! ChannelData, and one relayed UDP socket per allocation ([`TurnServer::relayed_sockets`],
//! opened and closed by [`Command::BindRelay`]/[`Command::CloseRelay`]), where peers
//! send. Every [`Transmit`] names the socket to send from.
//!
//! Clients may also reach a listening address over a stream (TCP or TLS, RFC 8656 §3.1):
//! the driver splits the stream into messages with [`super::stream::Framer`] and feeds
//! each to [`TurnServer::handle_input`] as [`Input::Packet`] with [`Transport::Tcp`] or
//! [`Transport::Tls`];
//! transmits for that 5-tuple carry the same transport and go on the connection
//! (ChannelData padded to a multiple of 4, §12.5). When the connection closes the driver
//! reports [`Input::ConnectionClosed`]: the allocation's 5-tuple is gone, and so is the
//! allocation.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::allocation::{
    Allocation, AllocationInfo, CHANNEL_LIFETIME, Channel, DEFAULT_LIFETIME, FiveTuple,
    MAX_LIFETIME, PERMISSION_LIFETIME, PortPool, RESERVATION_LIFETIME, TimerKey, Timers, Transport,
};
use super::attrs::{self, error, kind, method};
use super::auth::{self, Authenticator, Credentials, RateLimiter};
use super::channel;
pub use super::config::{TurnConfig, TurnConfigError};
use super::deny::DenyList;
pub use super::event::{AuthFailure, TcpCloseReason, TurnEvent, TurnStats};
use crate::stun::{self, Attribute, Class, ErrorCode, Message, Method, ServerConfig};

mod input;
pub mod tcp_relay;

pub use input::{Command, Input};

/// Something to send: on the client-facing side (`from` a listening address, over
/// `transport`; for a stream on the connection `from`–`to`, `conn` is always `None`) or
/// to a peer (`from` a relayed address, always UDP).
pub use crate::io::Transmit;

/// Outcome of a request handler: success attributes, or an error code with reason.
type Outcome = Result<Vec<Attribute>, (u16, &'static str)>;

/// The TURN server core. See the module docs and [`crate::turn`] for the drive contract.
#[derive(Debug)]
pub struct TurnServer {
    config: TurnConfig,
    epoch: Option<Instant>,
    stun: HashMap<SocketAddr, stun::Server>,
    auth: Authenticator,
    limiter: RateLimiter,
    deny: DenyList,
    ports: PortPool,
    allocations: HashMap<FiveTuple, Allocation>,
    by_relayed: HashMap<SocketAddr, FiveTuple>,
    per_user: HashMap<String, u32>,
    reservations: HashMap<[u8; 8], (u16, Instant)>,
    timers: Timers,
    transmits: VecDeque<Transmit>,
    commands: VecDeque<Command>,
    events: VecDeque<TurnEvent>,
    stats: TurnStats,
    /// RFC 6062 TCP allocations and their connections.
    tcp: tcp_relay::TcpRelay,
}

impl TurnServer {
    /// Creates a server; checks the configuration.
    pub fn new(config: TurnConfig) -> Result<Self, TurnConfigError> {
        if config.listen.is_empty() {
            return Err(TurnConfigError::NoListen);
        }
        let (lo, hi) = config.relay_ports;
        if lo == 0 || lo > hi {
            return Err(TurnConfigError::BadPortRange(lo, hi));
        }
        if config.relay_addr.is_unspecified() {
            return Err(TurnConfigError::UnspecifiedRelay(config.relay_addr));
        }
        if config.realm.is_empty() || config.realm.len() > 763 {
            return Err(TurnConfigError::BadRealm);
        }
        for (i, a) in config.password_algorithms.iter().enumerate() {
            if config.password_algorithms[..i].contains(a) {
                return Err(TurnConfigError::DuplicatePasswordAlgorithm(*a));
            }
        }
        for (ip, len) in &config.deny {
            if *len > if ip.is_ipv4() { 32 } else { 128 } {
                return Err(TurnConfigError::BadPrefix(*ip, *len));
            }
        }
        let mut stun = HashMap::new();
        for addr in &config.listen {
            let mut sc = ServerConfig::new(*addr);
            sc.software = config.software.clone();
            let server = stun::Server::new(sc).map_err(|e| TurnConfigError::Stun(*addr, e))?;
            stun.insert(*addr, server);
        }
        let own = std::iter::once(config.relay_addr).chain(config.listen.iter().map(|a| a.ip()));
        let excluded: Vec<u16> = config
            .listen
            .iter()
            .filter(|a| a.ip() == config.relay_addr)
            .map(|a| a.port())
            .collect();
        Ok(TurnServer {
            auth: Authenticator::new(&config),
            limiter: RateLimiter::default(),
            deny: DenyList::new(own, &config.deny),
            ports: PortPool::new(config.relay_ports, config.seed, excluded),
            stun,
            epoch: None,
            allocations: HashMap::new(),
            by_relayed: HashMap::new(),
            per_user: HashMap::new(),
            reservations: HashMap::new(),
            timers: Timers::new(),
            transmits: VecDeque::new(),
            commands: VecDeque::new(),
            events: VecDeque::new(),
            stats: TurnStats::default(),
            tcp: tcp_relay::TcpRelay::new(config.seed),
            config,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &TurnConfig {
        &self.config
    }

    /// The counters.
    pub fn stats(&self) -> &TurnStats {
        &self.stats
    }

    /// The deny list in effect (RFC 8656 §21.1.2).
    pub fn deny_list(&self) -> &DenyList {
        &self.deny
    }

    /// The relayed UDP sockets the driver must have bound, sorted (TCP allocations
    /// listen instead: [`TurnServer::tcp_listeners`]).
    pub fn relayed_sockets(&self) -> Vec<SocketAddr> {
        let mut v: Vec<SocketAddr> = self
            .by_relayed
            .keys()
            .filter(|a| !self.tcp.is_listener(a))
            .copied()
            .collect();
        v.sort();
        v
    }

    /// Whether the 5-tuple has an allocation (a driver closes stream connections that
    /// never get one).
    pub fn has_allocation(&self, five_tuple: &FiveTuple) -> bool {
        self.allocations.contains_key(five_tuple)
    }

    /// Snapshots of every allocation, sorted by 5-tuple.
    pub fn allocations(&self) -> Vec<AllocationInfo> {
        let mut v: Vec<AllocationInfo> =
            self.allocations.iter().map(|(ft, a)| a.info(*ft)).collect();
        v.sort_by_key(|a| a.five_tuple);
        v
    }

    /// The next outgoing datagram.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<TurnEvent> {
        self.events.pop_front()
    }

    /// When [`TurnServer::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let first = self.timers.first().map(|(t, _)| *t);
        first.into_iter().chain(self.tcp.poll_timeout()).min()
    }

    /// Expires allocations, permissions, channels and reservations due at `now`, in
    /// deadline then key order.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.epoch.get_or_insert(now);
        while let Some(&(at, key)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            match key {
                TimerKey::Allocation(ft) => {
                    if let Some(a) = self.allocations.get(&ft) {
                        let relayed = a.relayed;
                        self.remove_allocation(ft);
                        self.stats.allocations_expired += 1;
                        self.events.push_back(TurnEvent::AllocationExpired {
                            client: ft.client,
                            relayed,
                        });
                    }
                }
                TimerKey::Permission(ft, ip) => {
                    if let Some(a) = self.allocations.get_mut(&ft)
                        && a.permissions.remove(&ip).is_some()
                    {
                        self.events.push_back(TurnEvent::PermissionExpired {
                            client: ft.client,
                            peer: ip,
                        });
                    }
                }
                TimerKey::Channel(ft, n) => {
                    if let Some(a) = self.allocations.get_mut(&ft)
                        && let Some(c) = a.channels.remove(&n)
                    {
                        a.by_peer.remove(&c.peer);
                        self.events.push_back(TurnEvent::ChannelExpired {
                            client: ft.client,
                            channel: n,
                            peer: c.peer,
                        });
                    }
                }
                TimerKey::Reservation(token) => {
                    if let Some((port, _)) = self.reservations.remove(&token) {
                        self.ports.release(port);
                    }
                }
            }
        }
        self.tcp_handle_timeout(now);
    }

    /// [`Input::Packet`].
    fn packet(
        &mut self,
        now: Instant,
        transport: Transport,
        local: SocketAddr,
        remote: SocketAddr,
        data: &[u8],
    ) {
        // Expire what is due first, so a late timer never lets stale state relay.
        self.handle_timeout(now);
        if self.config.listen.contains(&local) {
            let ft = FiveTuple {
                transport,
                client: remote,
                server: local,
            };
            if channel::is_channel_data(data) {
                self.handle_channel_data(now, ft, data);
                return;
            }
            let msg = match Message::parse(data) {
                Ok(m) if !m.transaction_id.is_legacy() => m,
                _ => {
                    self.stats.malformed += 1;
                    return;
                }
            };
            match msg.class {
                Class::Request => self.handle_request(now, ft, &msg, data),
                Class::Indication if msg.method == method::SEND => self.handle_send(now, ft, &msg),
                _ => self.stats.ignored += 1,
            }
        } else if let (Transport::Udp, Some(&ft)) = (transport, self.by_relayed.get(&local))
            && !self.tcp.is_listener(&local)
        {
            self.handle_peer_data(now, ft, remote, data);
        } else {
            self.stats.ignored += 1;
        }
    }

    /// [`Input::ConnectionClosed`].
    fn connection_closed(
        &mut self,
        now: Instant,
        transport: Transport,
        local: SocketAddr,
        remote: SocketAddr,
    ) {
        self.handle_timeout(now);
        if !transport.is_reliable() {
            self.stats.ignored += 1;
            return;
        }
        let ft = FiveTuple {
            transport,
            client: remote,
            server: local,
        };
        self.tcp_stream_closed(local, remote);
        if let Some(relayed) = self.allocations.get(&ft).map(|a| a.relayed) {
            self.remove_allocation(ft);
            self.stats.allocations_closed += 1;
            self.events.push_back(TurnEvent::AllocationClosed {
                client: remote,
                relayed,
            });
        }
    }

    /// A transaction id for a Data indication: 64 seeded random bits and a counter.
    fn fresh_tid(&mut self) -> crate::stun::TransactionId {
        let mut id = [0u8; 12];
        id[..8].copy_from_slice(&self.ports.next_u64().to_be_bytes());
        id[8..].copy_from_slice(&(self.stats.to_client_packets as u32).to_be_bytes());
        crate::stun::TransactionId::new(id)
    }

    fn secs(&self, now: Instant) -> u64 {
        self.epoch
            .map_or(0, |e| now.saturating_duration_since(e).as_secs())
    }

    // ===== requests =====

    fn handle_request(&mut self, now: Instant, ft: FiveTuple, req: &Message, data: &[u8]) {
        self.stats.requests += 1;
        if req.method == Method::Binding {
            self.stats.binding_requests += 1;
            if let Some(s) = self.stun.get_mut(&ft.server) {
                s.handle_input(now, ft.server, ft.client, data);
                while let Some(t) = s.poll_transmit() {
                    // On a stream only the connection itself can carry the answer.
                    if ft.transport == Transport::Udp || (t.from, t.to) == (ft.server, ft.client) {
                        self.transmits.push_back(Transmit {
                            transport: ft.transport,
                            from: t.from,
                            to: t.to,
                            conn: None,
                            data: t.data,
                        });
                    }
                }
                while s.poll_event().is_some() {}
            }
            return;
        }
        let Some(creds) = self.authenticate(now, ft, req, data) else {
            return;
        };
        // Attributes after the integrity attribute(s) are not authenticated: ignored
        // (RFC 8489 §14.5, §14.6).
        let trimmed = auth::authenticated_part(req);
        let req = trimmed.as_ref().unwrap_or(req);
        let key = &creds;
        let unknown: Vec<u16> = req
            .attributes
            .iter()
            .map(Attribute::typ)
            .filter(|t| crate::stun::attr::is_comprehension_required(*t) && !is_known(*t))
            .collect();
        let outcome = if !unknown.is_empty() {
            let extra = vec![
                Attribute::ErrorCode(ErrorCode::new(
                    error::UNKNOWN_ATTRIBUTE,
                    "Unknown Attribute",
                )),
                Attribute::UnknownAttributes(unknown),
            ];
            self.error_with(ft, req, Some(key), extra);
            return;
        } else if req.method == method::ALLOCATE {
            self.allocate(now, ft, req, key);
            return;
        } else if req.method == method::REFRESH {
            self.refresh(now, ft, req)
        } else if req.method == method::CREATE_PERMISSION {
            self.create_permission(now, ft, req)
        } else if req.method == method::CHANNEL_BIND {
            self.channel_bind(now, ft, req)
        } else if req.method == tcp_relay::method::CONNECT {
            match self.tcp_connect(now, ft, req, key) {
                Some(outcome) => outcome,
                None => return,
            }
        } else if req.method == tcp_relay::method::CONNECTION_BIND {
            self.tcp_connection_bind(ft, req, &key.user, key);
            return;
        } else {
            Err((error::BAD_REQUEST, "Bad Request"))
        };
        self.respond(ft, req, Some(key), outcome);
    }

    /// RFC 8489 §9.2.4 server checks ([`Authenticator::check`]), then RFC 8656 §4's
    /// same-user rule (441). The credentials when the request is authentic; else the error
    /// response (if any) has been queued.
    fn authenticate(
        &mut self,
        now: Instant,
        ft: FiveTuple,
        req: &Message,
        data: &[u8],
    ) -> Option<Credentials> {
        let creds = match self.auth.check(req, data, self.secs(now)) {
            Ok(c) => c,
            Err(r) => {
                self.auth_failed(now, ft, req, r.user, r.reason, r.code);
                return None;
            }
        };
        if let Some(a) = self.allocations.get(&ft)
            && a.user != creds.user
        {
            self.stats.auth_failures += 1;
            self.events.push_back(TurnEvent::AuthFailed {
                client: ft.client,
                user: Some(creds.user),
                reason: AuthFailure::WrongCredentials,
            });
            self.respond(
                ft,
                req,
                None,
                Err((error::WRONG_CREDENTIALS, "Wrong Credentials")),
            );
            return None;
        }
        Some(creds)
    }

    fn auth_failed(
        &mut self,
        now: Instant,
        ft: FiveTuple,
        req: &Message,
        user: Option<String>,
        reason: AuthFailure,
        code: u16,
    ) {
        self.stats.auth_failures += 1;
        self.events.push_back(TurnEvent::AuthFailed {
            client: ft.client,
            user,
            reason,
        });
        let elapsed = self
            .epoch
            .map_or(Duration::ZERO, |e| now.saturating_duration_since(e));
        if !self.limiter.allow(ft.client.ip(), elapsed) {
            self.stats.rate_limited += 1;
            return;
        }
        let reason_phrase = match code {
            error::UNAUTHENTICATED => "Unauthenticated",
            error::STALE_NONCE => "Stale Nonce",
            _ => "Bad Request",
        };
        let mut extra = vec![Attribute::ErrorCode(ErrorCode::new(code, reason_phrase))];
        if code != error::BAD_REQUEST {
            extra.extend(self.auth.challenge(self.secs(now)));
        }
        self.error_with(ft, req, None, extra);
    }

    /// Queues a success or error response; adds SOFTWARE, the integrity attributes the
    /// credentials call for (MESSAGE-INTEGRITY and/or MESSAGE-INTEGRITY-SHA256 with their
    /// key) and FINGERPRINT (when the request had one). Returns the bytes.
    fn respond(
        &mut self,
        ft: FiveTuple,
        req: &Message,
        key: Option<&Credentials>,
        outcome: Outcome,
    ) -> Vec<u8> {
        match outcome {
            Ok(attributes) => {
                let mut msg = Message::new(Class::Success, req.method, req.transaction_id);
                msg.attributes = attributes;
                self.stats.success_responses += 1;
                self.finish(ft, req, key, msg)
            }
            Err((code, reason)) => self.error_with(
                ft,
                req,
                key,
                vec![Attribute::ErrorCode(ErrorCode::new(code, reason))],
            ),
        }
    }

    fn error_with(
        &mut self,
        ft: FiveTuple,
        req: &Message,
        key: Option<&Credentials>,
        attributes: Vec<Attribute>,
    ) -> Vec<u8> {
        let mut msg = Message::new(Class::Error, req.method, req.transaction_id);
        if let Some(Attribute::ErrorCode(e)) = attributes.first() {
            self.events.push_back(TurnEvent::ErrorResponse {
                client: ft.client,
                method: req.method.to_u16(),
                code: e.code,
            });
        }
        msg.attributes = attributes;
        self.stats.error_responses += 1;
        self.finish(ft, req, key, msg)
    }

    fn finish(
        &mut self,
        ft: FiveTuple,
        req: &Message,
        key: Option<&Credentials>,
        mut msg: Message,
    ) -> Vec<u8> {
        if let Some(s) = &self.config.software {
            msg.attributes.push(Attribute::Software(s.clone()));
        }
        if let Some(c) = key {
            if c.integrity.sha1 {
                msg.attributes.push(attrs::integrity_placeholder());
            }
            if c.integrity.sha256 {
                msg.attributes.push(attrs::integrity_sha256_placeholder());
            }
        }
        if req.has_fingerprint() {
            msg.attributes.push(Attribute::Fingerprint(0));
        }
        let data = match key {
            Some(c) => msg.emit_with_integrity(c.key.as_bytes()),
            None => msg.emit(),
        };
        self.transmits.push_back(Transmit {
            transport: ft.transport,
            from: ft.server,
            to: ft.client,
            conn: None,
            data: data.clone(),
        });
        data
    }

    fn lifetime(requested: Option<u32>) -> Duration {
        match requested {
            None => DEFAULT_LIFETIME,
            Some(s) => Duration::from_secs(u64::from(s)).clamp(DEFAULT_LIFETIME, MAX_LIFETIME),
        }
    }

    /// RFC 8656 §7.2.
    fn allocate(&mut self, now: Instant, ft: FiveTuple, req: &Message, key: &Credentials) {
        let user = key.user.as_str();
        if let Some(a) = self.allocations.get(&ft) {
            if a.allocate_tid == req.transaction_id {
                // A retransmission: the same success response (RFC 8656 §7.2 item 1).
                let data = a.allocate_response.clone();
                self.transmits.push_back(Transmit {
                    transport: ft.transport,
                    from: ft.server,
                    to: ft.client,
                    conn: None,
                    data,
                });
            } else {
                self.respond(
                    ft,
                    req,
                    Some(key),
                    Err((error::ALLOCATION_MISMATCH, "Allocation Mismatch")),
                );
            }
            return;
        }
        match self.allocate_checks(now, ft, req, user) {
            Err(e) => {
                self.respond(ft, req, Some(key), Err(e));
            }
            Ok((relayed, lifetime, token)) => {
                let mut attributes = vec![
                    attrs::xor_address(kind::XOR_RELAYED_ADDRESS, relayed, &req.transaction_id),
                    attrs::lifetime(lifetime.as_secs() as u32),
                ];
                if let Some(t) = token {
                    attributes.push(attrs::raw(kind::RESERVATION_TOKEN, t.to_vec()));
                }
                attributes.push(Attribute::XorMappedAddress(ft.client));
                let data = self.respond(ft, req, Some(key), Ok(attributes));
                let expires = now + lifetime;
                self.allocations.insert(
                    ft,
                    Allocation {
                        user: user.to_owned(),
                        relayed,
                        expires,
                        permissions: HashMap::new(),
                        channels: HashMap::new(),
                        by_peer: HashMap::new(),
                        allocate_tid: req.transaction_id,
                        allocate_response: data,
                    },
                );
                self.by_relayed.insert(relayed, ft);
                *self.per_user.entry(user.to_owned()).or_default() += 1;
                self.timers.insert((expires, TimerKey::Allocation(ft)));
                self.stats.allocations_created += 1;
                let tcp = attrs::raw_value(req, kind::REQUESTED_TRANSPORT)
                    .and_then(attrs::decode_first_byte_of_4)
                    == Some(tcp_relay::TRANSPORT_TCP);
                if tcp {
                    self.tcp_allocated(ft, relayed);
                } else {
                    self.commands.push_back(Command::BindRelay { relayed });
                }
                self.events.push_back(TurnEvent::AllocationCreated {
                    client: ft.client,
                    server: ft.server,
                    relayed,
                    user: user.to_owned(),
                    lifetime,
                });
            }
        }
    }

    /// The checks of RFC 8656 §7.2 items 2–9, then the relayed address and lifetime.
    #[allow(clippy::type_complexity)]
    fn allocate_checks(
        &mut self,
        now: Instant,
        _ft: FiveTuple,
        req: &Message,
        user: &str,
    ) -> Result<(SocketAddr, Duration, Option<[u8; 8]>), (u16, &'static str)> {
        const BAD: (u16, &str) = (error::BAD_REQUEST, "Bad Request");
        let transport = attrs::raw_value(req, kind::REQUESTED_TRANSPORT)
            .and_then(attrs::decode_first_byte_of_4)
            .ok_or(BAD)?;
        if transport == tcp_relay::TRANSPORT_TCP {
            self.tcp_allocate_checks(_ft, req)?;
        } else if transport != attrs::TRANSPORT_UDP {
            return Err((
                error::UNSUPPORTED_TRANSPORT,
                "Unsupported Transport Protocol",
            ));
        }
        let even = match attrs::raw_value(req, kind::EVEN_PORT) {
            None => None,
            Some(v) => Some(attrs::decode_even_port(v).ok_or(BAD)?),
        };
        let token = match attrs::raw_value(req, kind::RESERVATION_TOKEN) {
            None => None,
            Some(v) => Some(<[u8; 8]>::try_from(v).map_err(|_| BAD)?),
        };
        let family = match attrs::raw_value(req, kind::REQUESTED_ADDRESS_FAMILY) {
            None => None,
            Some(v) => Some(attrs::decode_first_byte_of_4(v).ok_or(BAD)?),
        };
        if token.is_some() && (even.is_some() || family.is_some()) {
            return Err(BAD);
        }
        let ours = if self.config.relay_addr.is_ipv4() {
            attrs::FAMILY_IPV4
        } else {
            attrs::FAMILY_IPV6
        };
        // Without REQUESTED-ADDRESS-FAMILY the family is IPv4 (RFC 8656 §7.2 item 6);
        // a reservation token implies the family of the reserved port.
        if token.is_none() && family.unwrap_or(attrs::FAMILY_IPV4) != ours {
            return Err((
                error::ADDRESS_FAMILY_NOT_SUPPORTED,
                "Address Family not Supported",
            ));
        }
        let requested_lifetime = match attrs::raw_value(req, kind::LIFETIME) {
            None => None,
            Some(v) => Some(attrs::decode_u32(v).ok_or(BAD)?),
        };
        if let Some(q) = self.config.quota
            && self.per_user.get(user).copied().unwrap_or(0) >= q
        {
            return Err((error::ALLOCATION_QUOTA_REACHED, "Allocation Quota Reached"));
        }
        let (port, new_token) = if let Some(t) = token {
            let (port, expires) = self
                .reservations
                .remove(&t)
                .ok_or((error::INSUFFICIENT_CAPACITY, "Insufficient Capacity"))?;
            // The reserved port stays marked as used; now it belongs to this allocation.
            self.timers.remove(&(expires, TimerKey::Reservation(t)));
            (port, None)
        } else {
            let reserve = even == Some(true);
            let (port, next) = self
                .ports
                .take(even.is_some(), reserve)
                .ok_or((error::INSUFFICIENT_CAPACITY, "Insufficient Capacity"))?;
            let new_token = next.map(|q| {
                let t = self.ports.next_u64().to_be_bytes();
                let expires = now + RESERVATION_LIFETIME;
                self.reservations.insert(t, (q, expires));
                self.timers.insert((expires, TimerKey::Reservation(t)));
                t
            });
            (port, new_token)
        };
        Ok((
            SocketAddr::new(self.config.relay_addr, port),
            Self::lifetime(requested_lifetime),
            new_token,
        ))
    }

    fn remove_allocation(&mut self, ft: FiveTuple) {
        let Some(a) = self.allocations.remove(&ft) else {
            return;
        };
        self.timers.remove(&(a.expires, TimerKey::Allocation(ft)));
        for (ip, at) in &a.permissions {
            self.timers.remove(&(*at, TimerKey::Permission(ft, *ip)));
        }
        for (n, c) in &a.channels {
            self.timers.remove(&(c.expires, TimerKey::Channel(ft, *n)));
        }
        let tcp = self.tcp_allocation_removed(ft, a.relayed);
        self.by_relayed.remove(&a.relayed);
        self.ports.release(a.relayed.port());
        if let Some(n) = self.per_user.get_mut(&a.user) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_user.remove(&a.user);
            }
        }
        if !tcp {
            self.commands
                .push_back(Command::CloseRelay { relayed: a.relayed });
        }
    }

    /// RFC 8656 §8.
    fn refresh(&mut self, now: Instant, ft: FiveTuple, req: &Message) -> Outcome {
        let requested = match attrs::raw_value(req, kind::LIFETIME) {
            None => None,
            Some(v) => Some(attrs::decode_u32(v).ok_or((error::BAD_REQUEST, "Bad Request"))?),
        };
        let a = self
            .allocations
            .get_mut(&ft)
            .ok_or((error::ALLOCATION_MISMATCH, "Allocation Mismatch"))?;
        let relayed = a.relayed;
        if requested == Some(0) {
            self.remove_allocation(ft);
            self.stats.allocations_deleted += 1;
            self.events.push_back(TurnEvent::AllocationDeleted {
                client: ft.client,
                relayed,
            });
            return Ok(vec![attrs::lifetime(0)]);
        }
        let lifetime = Self::lifetime(requested);
        let old = std::mem::replace(&mut a.expires, now + lifetime);
        self.timers.remove(&(old, TimerKey::Allocation(ft)));
        self.timers
            .insert((now + lifetime, TimerKey::Allocation(ft)));
        self.events.push_back(TurnEvent::AllocationRefreshed {
            client: ft.client,
            relayed,
            lifetime,
        });
        Ok(vec![attrs::lifetime(lifetime.as_secs() as u32)])
    }

    /// Checks a peer named by CreatePermission/ChannelBind: deny list (403), family (443).
    fn check_peer(&mut self, ft: FiveTuple, peer: SocketAddr) -> Result<(), (u16, &'static str)> {
        // The deny list first: a refused peer gets 403 whatever its family.
        if self.peer_refused(peer) {
            self.stats.peer_denied += 1;
            self.events.push_back(TurnEvent::PeerDenied {
                client: ft.client,
                peer,
            });
            return Err((error::FORBIDDEN, "Forbidden"));
        }
        if peer.is_ipv4() != self.config.relay_addr.is_ipv4() {
            return Err((
                error::PEER_ADDRESS_FAMILY_MISMATCH,
                "Peer Address Family Mismatch",
            ));
        }
        Ok(())
    }

    fn install_permission(&mut self, now: Instant, ft: FiveTuple, ip: IpAddr) {
        let Some(a) = self.allocations.get_mut(&ft) else {
            return;
        };
        let expires = now + PERMISSION_LIFETIME;
        match a.permissions.insert(ip, expires) {
            Some(old) => {
                self.timers.remove(&(old, TimerKey::Permission(ft, ip)));
            }
            None => self.events.push_back(TurnEvent::PermissionCreated {
                client: ft.client,
                peer: ip,
            }),
        }
        self.timers.insert((expires, TimerKey::Permission(ft, ip)));
    }

    /// RFC 8656 §10.2.
    fn create_permission(&mut self, now: Instant, ft: FiveTuple, req: &Message) -> Outcome {
        if !self.allocations.contains_key(&ft) {
            return Err((error::ALLOCATION_MISMATCH, "Allocation Mismatch"));
        }
        let peers = attrs::peer_addresses(req).map_err(|()| (error::BAD_REQUEST, "Bad Request"))?;
        if peers.is_empty() {
            return Err((error::BAD_REQUEST, "Bad Request"));
        }
        for p in &peers {
            self.check_peer(ft, *p)?;
        }
        for p in peers {
            self.install_permission(now, ft, p.ip());
        }
        Ok(Vec::new())
    }

    /// RFC 8656 §12.1–12.3.
    fn channel_bind(&mut self, now: Instant, ft: FiveTuple, req: &Message) -> Outcome {
        const BAD: (u16, &str) = (error::BAD_REQUEST, "Bad Request");
        if !self.allocations.contains_key(&ft) {
            return Err((error::ALLOCATION_MISMATCH, "Allocation Mismatch"));
        }
        // A TCP allocation has no channels (RFC 6062 §5.1: data goes on data connections).
        if self.is_tcp_allocation(&ft) {
            return Err(BAD);
        }
        let n = attrs::raw_value(req, kind::CHANNEL_NUMBER)
            .and_then(attrs::decode_channel_number)
            .filter(|n| {
                channel::is_valid_channel(*n)
                    || (self.config.legacy_channels && (0x5000..=0x7FFF).contains(n))
            })
            .ok_or(BAD)?;
        let peers = attrs::peer_addresses(req).map_err(|()| BAD)?;
        let [peer] = peers[..] else {
            return Err(BAD);
        };
        self.check_peer(ft, peer)?;
        let a = self.allocations.get_mut(&ft).ok_or(BAD)?;
        if a.channels.get(&n).is_some_and(|c| c.peer != peer)
            || a.by_peer.get(&peer).is_some_and(|m| *m != n)
        {
            return Err(BAD);
        }
        let expires = now + CHANNEL_LIFETIME;
        match a.channels.insert(n, Channel { peer, expires }) {
            Some(old) => {
                self.timers.remove(&(old.expires, TimerKey::Channel(ft, n)));
            }
            None => {
                a.by_peer.insert(peer, n);
                self.events.push_back(TurnEvent::ChannelBound {
                    client: ft.client,
                    channel: n,
                    peer,
                });
            }
        }
        self.timers.insert((expires, TimerKey::Channel(ft, n)));
        self.install_permission(now, ft, peer.ip());
        Ok(Vec::new())
    }

    // ===== data (RFC 8656 §11, §12.5) =====

    fn relay_to_peer(&mut self, now: Instant, ft: FiveTuple, peer: SocketAddr, payload: &[u8]) {
        let Some(a) = self.allocations.get(&ft) else {
            self.stats.dropped_no_allocation += 1;
            return;
        };
        // Send indications and ChannelData have no meaning on a TCP allocation (RFC 6062).
        if self.tcp.is_listener(&a.relayed) {
            self.stats.ignored += 1;
            return;
        }
        if self.peer_refused(peer) {
            self.stats.peer_denied += 1;
            self.events.push_back(TurnEvent::PeerDenied {
                client: ft.client,
                peer,
            });
            return;
        }
        if !a.has_permission(peer.ip(), now) {
            self.stats.dropped_no_permission += 1;
            return;
        }
        self.stats.to_peer_packets += 1;
        self.stats.to_peer_bytes += payload.len() as u64;
        self.transmits.push_back(Transmit {
            transport: Transport::Udp,
            from: a.relayed,
            to: peer,
            conn: None,
            data: payload.to_vec(),
        });
    }

    /// Send indication (RFC 8656 §11.2).
    fn handle_send(&mut self, now: Instant, ft: FiveTuple, msg: &Message) {
        let peer = attrs::peer_addresses(msg)
            .ok()
            .and_then(|p| p.first().copied());
        let (Some(peer), Some(payload)) = (peer, attrs::raw_value(msg, kind::DATA)) else {
            self.stats.malformed += 1;
            return;
        };
        // Unknown comprehension-required attributes: the indication is discarded
        // (RFC 8489 §6.3.2). DONT-FRAGMENT counts as unknown: this server cannot set
        // DF (RFC 8656 §11.2; its Allocate got 420 for the same reason).
        if msg
            .attributes
            .iter()
            .any(|a| crate::stun::attr::is_comprehension_required(a.typ()) && !is_known(a.typ()))
        {
            self.stats.malformed += 1;
            return;
        }
        self.relay_to_peer(now, ft, peer, payload);
    }

    /// ChannelData from the client (RFC 8656 §12.5).
    fn handle_channel_data(&mut self, now: Instant, ft: FiveTuple, data: &[u8]) {
        let Some((n, payload)) = channel::parse(data) else {
            self.stats.malformed += 1;
            return;
        };
        let Some(a) = self.allocations.get(&ft) else {
            self.stats.dropped_no_allocation += 1;
            return;
        };
        let Some(peer) = a
            .channels
            .get(&n)
            .filter(|c| c.expires > now)
            .map(|c| c.peer)
        else {
            self.stats.dropped_no_channel += 1;
            return;
        };
        self.relay_to_peer(now, ft, peer, payload);
    }

    /// A datagram from a peer on a relayed address (RFC 8656 §11.3, §12.6).
    fn handle_peer_data(&mut self, now: Instant, ft: FiveTuple, peer: SocketAddr, payload: &[u8]) {
        let Some(a) = self.allocations.get(&ft) else {
            self.stats.dropped_no_allocation += 1;
            return;
        };
        if !a.has_permission(peer.ip(), now) {
            self.stats.dropped_no_permission += 1;
            return;
        }
        let channel = a
            .by_peer
            .get(&peer)
            .copied()
            .filter(|n| a.channels.get(n).is_some_and(|c| c.expires > now));
        let data = match channel {
            Some(n) => match channel::emit_for(ft.transport, n, payload) {
                Some(d) => d,
                None => {
                    self.stats.malformed += 1;
                    return;
                }
            },
            None => {
                let tid = self.fresh_tid();
                let msg = Message::new(Class::Indication, method::DATA, tid)
                    .with(attrs::xor_address(kind::XOR_PEER_ADDRESS, peer, &tid))
                    .with(attrs::data(payload));
                if msg.buffer_len() > usize::from(u16::MAX) {
                    self.stats.malformed += 1;
                    return;
                }
                msg.emit()
            }
        };
        self.stats.to_client_packets += 1;
        self.stats.to_client_bytes += payload.len() as u64;
        self.transmits.push_back(Transmit {
            transport: ft.transport,
            from: ft.server,
            to: ft.client,
            conn: None,
            data,
        });
    }
}

/// Comprehension-required attributes this server understands (RFC 8489 §14; USERHASH,
/// PASSWORD-ALGORITHM and MESSAGE-INTEGRITY-SHA256 in [`super::auth`]). DONT-FRAGMENT is absent on purpose: the
/// server cannot set DF, so RFC 8656 §7.2 item 3 has it answered with 420.
fn is_known(typ: u16) -> bool {
    use crate::stun::attr::kind as s;
    matches!(
        typ,
        kind::CHANNEL_NUMBER
            | kind::LIFETIME
            | kind::XOR_PEER_ADDRESS
            | kind::DATA
            | kind::XOR_RELAYED_ADDRESS
            | kind::REQUESTED_ADDRESS_FAMILY
            | kind::EVEN_PORT
            | kind::REQUESTED_TRANSPORT
            | kind::RESERVATION_TOKEN
            | kind::USERNAME
            | kind::REALM
            | kind::NONCE
            | kind::MESSAGE_INTEGRITY
            | kind::MESSAGE_INTEGRITY_SHA256
            | kind::PASSWORD_ALGORITHM
            | tcp_relay::CONNECTION_ID
            | s::USERHASH
            | s::ERROR_CODE
            | s::XOR_MAPPED_ADDRESS
    )
}
