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
//!
//! This file holds the server's state and drive API (inputs, timers, polls); `requests`
//! checks, authenticates and answers requests, `allocate` handles Allocate and Refresh,
//! `permissions` CreatePermission and ChannelBind, `data` relays data both ways, and
//! `tcp_relay` adds RFC 6062 TCP allocations.

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

mod allocate;
mod data;
mod input;
mod permissions;
mod requests;
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

    /// Queues `data` for the client of `ft`, from the listening address it talks to (on a
    /// stream, the driver sends it on that connection: RFC 8656 §3.1).
    fn send_to_client(&mut self, ft: FiveTuple, data: Vec<u8>) {
        self.transmits.push_back(Transmit {
            transport: ft.transport,
            from: ft.server,
            to: ft.client,
            conn: None,
            data,
        });
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
