//! A sans-IO TURN client (RFC 8656 §7–§12 client side, over UDP or a stream), for tests,
//! the harness and `pinhole turn-client`.
//!
//! It authenticates with long-term credentials (RFC 8489 §9.2: the first request goes
//! without, a 401 or 438 carrying REALM and NONCE is answered by resending with them).
//! With an RFC 8489 server (a NONCE starting with the nonce cookie, §9.2.1) it follows the
//! security features ([`ClientAuth`]): it echoes PASSWORD-ALGORITHMS, names the first
//! algorithm it supports in PASSWORD-ALGORITHM and protects requests with
//! MESSAGE-INTEGRITY-SHA256 under that key (§9.2.5); a 401 whose cookie announces password
//! algorithms but that carries no PASSWORD-ALGORITHMS is a bid-down attempt and is not
//! answered ([`ClientEvent::Failed`]); with "Username anonymity" it sends USERHASH instead
//! of USERNAME. With an RFC 5389 server: MD5 key and MESSAGE-INTEGRITY. It
//! retransmits requests over UDP (RFC 8489 §6.2.1: RTO 500 ms doubling, 7 sends, then
//! [`ClientEvent::TimedOut`]; over a stream it sends once and gives up after
//! [`STREAM_TIMEOUT`], §6.2.2), verifies MESSAGE-INTEGRITY(-SHA256) on every authenticated
//! response (responses that fail, or that lack MESSAGE-INTEGRITY-SHA256 once SHA-256 is
//! negotiated, are ignored), and sends application data to a peer as ChannelData
//! once a channel to it is bound (padded to 4 bytes on a stream, RFC 8656 §12.5), as a
//! Send indication otherwise. On a stream the driver frames what it reads with
//! [`super::stream::Framer`] and passes each frame to [`TurnClient::handle_input`]. It does not refresh
//! allocations, permissions or channels by itself: call [`TurnClient::refresh`],
//! [`TurnClient::create_permission`] or [`TurnClient::channel_bind`] again.
//!
//! RFC 6062 (TCP allocations): allocate with REQUESTED-TRANSPORT TCP in the extra
//! attributes, [`TurnClient::connect`] a peer ([`ClientEvent::Connected`]) or wait for
//! [`ClientEvent::ConnectionAttempt`], then [`TurnClient::connection_bind`] from a second
//! client on a new connection; after [`ClientEvent::ConnectionBound`] that connection is
//! raw bytes.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::allocation::Transport;
use super::attrs::{self, kind, method};
use super::auth::{
    self, LongTermKey, PASSWORD_ALGORITHM, PASSWORD_ALGORITHMS, PasswordAlgorithm,
    SecurityFeatures, USERHASH,
};
use super::channel;
use super::server::tcp_relay::{self, ConnectionId};
use crate::rng::SplitMix64;
use crate::stun::integrity::{check_integrity, check_integrity_sha256};
use crate::stun::{Attribute, Class, Message, Method, TransactionId};

/// Initial retransmission timeout (RFC 8489 §6.2.1).
pub const RTO: Duration = Duration::from_millis(500);
/// Requests sent before giving up (Rc, RFC 8489 §6.2.1).
pub const MAX_SENDS: u32 = 7;
/// Transaction timeout over a reliable transport (Ti, RFC 8489 §6.2.2).
pub const STREAM_TIMEOUT: Duration = Duration::from_millis(39_500);

/// Client configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// The TURN server's transport address.
    pub server: SocketAddr,
    /// Long-term credential username (RFC 8489 §9.2).
    pub username: String,
    /// Long-term credential password.
    pub password: String,
    /// Seed for transaction ids.
    pub seed: u64,
    /// UDP, or a stream (TCP/TLS) to the server.
    pub transport: Transport,
}

/// How the client uses the RFC 8489 security features (§9.2.5) when a server offers them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAuth {
    /// The password algorithms the client supports; it takes the first entry of the
    /// server's PASSWORD-ALGORITHMS that is here, and does not retry if none is.
    pub algorithms: Vec<PasswordAlgorithm>,
    /// Send USERHASH instead of USERNAME when the nonce cookie sets "Username anonymity"
    /// (which RFC 8489 §9.2.5 makes a MUST; off only to test servers with USERNAME).
    pub userhash: bool,
}

impl Default for ClientAuth {
    /// SHA-256 and MD5, USERHASH when asked for.
    fn default() -> Self {
        ClientAuth {
            algorithms: vec![PasswordAlgorithm::Sha256, PasswordAlgorithm::Md5],
            userhash: true,
        }
    }
}

/// What a challenge (401/438) settled: the credentials of the following requests.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Session {
    realm: String,
    nonce: Vec<u8>,
    key: LongTermKey,
    /// PASSWORD-ALGORITHMS to echo and the PASSWORD-ALGORITHM chosen, when negotiated:
    /// requests then carry MESSAGE-INTEGRITY-SHA256 (else MESSAGE-INTEGRITY).
    negotiated: Option<(Vec<u8>, PasswordAlgorithm)>,
    userhash: bool,
}

/// A datagram for the client's socket to send to the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientTransmit {
    /// Destination: always the server.
    pub to: SocketAddr,
    /// The payload.
    pub data: Vec<u8>,
}

/// What happened, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// Allocate succeeded (RFC 8656 §7.3).
    Allocated {
        /// XOR-RELAYED-ADDRESS.
        relayed: SocketAddr,
        /// XOR-MAPPED-ADDRESS, if present.
        mapped: Option<SocketAddr>,
        /// LIFETIME granted.
        lifetime: Duration,
        /// RESERVATION-TOKEN, if the server reserved the next port.
        reservation_token: Option<[u8; 8]>,
    },
    /// Refresh succeeded (RFC 8656 §8); a zero lifetime means the allocation is deleted.
    Refreshed {
        /// LIFETIME granted.
        lifetime: Duration,
    },
    /// CreatePermission succeeded (RFC 8656 §10.3).
    PermissionCreated {
        /// The peers of the request.
        peers: Vec<SocketAddr>,
    },
    /// ChannelBind succeeded (RFC 8656 §12.3).
    ChannelBound {
        /// The channel number.
        channel: u16,
        /// The peer.
        peer: SocketAddr,
    },
    /// Application data from a peer (Data indication or ChannelData, RFC 8656 §11.4, §12.6).
    Data {
        /// The peer.
        peer: SocketAddr,
        /// The payload.
        data: Vec<u8>,
    },
    /// A request got an error response the client does not recover from.
    Failed {
        /// The method number.
        method: u16,
        /// The error code.
        code: u16,
        /// The reason phrase.
        reason: String,
    },
    /// A request got no response after [`MAX_SENDS`] sends.
    TimedOut {
        /// The method number.
        method: u16,
    },
    // ===== RFC 6062 =====
    /// Connect succeeded: open a data connection and send ConnectionBind with this id
    /// on it (RFC 6062 §4.3).
    Connected {
        /// The peer of the request.
        peer: SocketAddr,
        /// CONNECTION-ID.
        id: ConnectionId,
    },
    /// A peer connected to the relayed address (ConnectionAttempt, RFC 6062 §4.4).
    ConnectionAttempt {
        /// XOR-PEER-ADDRESS.
        peer: SocketAddr,
        /// CONNECTION-ID.
        id: ConnectionId,
    },
    /// ConnectionBind succeeded: from now on this connection carries raw bytes.
    ConnectionBound {
        /// CONNECTION-ID.
        id: ConnectionId,
    },
}

/// A request in its transaction-independent form, rebuilt for each attempt (the XOR
/// attributes depend on the transaction id).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Request {
    Allocate {
        lifetime: Option<u32>,
        extra: Vec<Attribute>,
    },
    Refresh(u32),
    CreatePermission(Vec<SocketAddr>),
    ChannelBind(u16, SocketAddr),
    Connect(SocketAddr),
    ConnectionBind(ConnectionId),
}

impl Request {
    fn method(&self) -> Method {
        match self {
            Request::Allocate { .. } => method::ALLOCATE,
            Request::Refresh(_) => method::REFRESH,
            Request::CreatePermission(_) => method::CREATE_PERMISSION,
            Request::ChannelBind(..) => method::CHANNEL_BIND,
            Request::Connect(_) => tcp_relay::method::CONNECT,
            Request::ConnectionBind(_) => tcp_relay::method::CONNECTION_BIND,
        }
    }

    fn attributes(&self, tid: &TransactionId) -> Vec<Attribute> {
        match self {
            Request::Allocate { lifetime, extra } => {
                // UDP unless the extra attributes name a transport (TCP, RFC 6062).
                let mut v = Vec::new();
                if !extra.iter().any(|a| a.typ() == kind::REQUESTED_TRANSPORT) {
                    v.push(attrs::requested_transport(attrs::TRANSPORT_UDP));
                }
                v.extend(lifetime.map(attrs::lifetime));
                v.extend(extra.iter().cloned());
                v
            }
            Request::Refresh(l) => vec![attrs::lifetime(*l)],
            Request::CreatePermission(peers) => peers
                .iter()
                .map(|p| attrs::xor_address(kind::XOR_PEER_ADDRESS, *p, tid))
                .collect(),
            Request::ChannelBind(n, p) => vec![
                attrs::channel_number(*n),
                attrs::xor_address(kind::XOR_PEER_ADDRESS, *p, tid),
            ],
            Request::Connect(p) => vec![attrs::xor_address(kind::XOR_PEER_ADDRESS, *p, tid)],
            Request::ConnectionBind(id) => vec![attrs::raw(
                tcp_relay::CONNECTION_ID,
                id.0.to_be_bytes().to_vec(),
            )],
        }
    }
}

#[derive(Debug, Clone)]
struct Pending {
    request: Request,
    data: Vec<u8>,
    sends: u32,
    rto: Duration,
    deadline: Instant,
    /// Whether this attempt already answers a challenge (a second 401 is final).
    authenticated: bool,
}

/// The TURN client core.
#[derive(Debug)]
pub struct TurnClient {
    config: ClientConfig,
    auth: ClientAuth,
    session: Option<Session>,
    rng: SplitMix64,
    pending: BTreeMap<TransactionId, Pending>,
    channels: HashMap<SocketAddr, u16>,
    by_channel: HashMap<u16, SocketAddr>,
    relayed: Option<SocketAddr>,
    transmits: VecDeque<ClientTransmit>,
    events: VecDeque<ClientEvent>,
}

impl TurnClient {
    /// A client with no allocation yet, [`ClientAuth::default`].
    pub fn new(config: ClientConfig) -> Self {
        Self::with_auth(config, ClientAuth::default())
    }

    /// A client with no allocation yet that uses the security features as `auth` says.
    pub fn with_auth(config: ClientConfig, auth: ClientAuth) -> Self {
        TurnClient {
            rng: SplitMix64::new(config.seed),
            config,
            auth,
            session: None,
            pending: BTreeMap::new(),
            channels: HashMap::new(),
            by_channel: HashMap::new(),
            relayed: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// The relayed transport address, once allocated (cleared by a Refresh to 0).
    pub fn relayed(&self) -> Option<SocketAddr> {
        self.relayed
    }

    /// The password algorithm in use once a challenge was answered: `None` before, MD5
    /// for an RFC 5389 server, else the one negotiated (RFC 8489 §9.2.5).
    pub fn password_algorithm(&self) -> Option<PasswordAlgorithm> {
        self.session.as_ref().map(|s| match s.key {
            LongTermKey::Md5(_) => PasswordAlgorithm::Md5,
            LongTermKey::Sha256(_) => PasswordAlgorithm::Sha256,
        })
    }

    /// The channel bound to `peer`, if the server confirmed one.
    pub fn channel_of(&self, peer: SocketAddr) -> Option<u16> {
        self.channels.get(&peer).copied()
    }

    /// Sends an Allocate request (RFC 8656 §7.1) for UDP, with an optional LIFETIME and
    /// extra attributes (EVEN-PORT, REQUESTED-ADDRESS-FAMILY, RESERVATION-TOKEN…).
    pub fn allocate(&mut self, now: Instant, lifetime: Option<u32>, extra: Vec<Attribute>) {
        self.start(now, Request::Allocate { lifetime, extra });
    }

    /// Sends a Refresh request (RFC 8656 §8.1); 0 deletes the allocation.
    pub fn refresh(&mut self, now: Instant, lifetime: u32) {
        self.start(now, Request::Refresh(lifetime));
    }

    /// Sends a CreatePermission request for these peers (RFC 8656 §10.1).
    pub fn create_permission(&mut self, now: Instant, peers: Vec<SocketAddr>) {
        self.start(now, Request::CreatePermission(peers));
    }

    /// Sends a ChannelBind request (RFC 8656 §12.1).
    pub fn channel_bind(&mut self, now: Instant, channel: u16, peer: SocketAddr) {
        self.start(now, Request::ChannelBind(channel, peer));
    }

    /// Sends a Connect request for `peer` (RFC 6062 §4.3; a TCP allocation, over a
    /// stream): [`ClientEvent::Connected`] names the connection to bind.
    pub fn connect(&mut self, now: Instant, peer: SocketAddr) {
        self.start(now, Request::Connect(peer));
    }

    /// Sends a ConnectionBind request (RFC 6062 §4.4). Use a client of its own on the new
    /// data connection (same credentials); after [`ClientEvent::ConnectionBound`] that
    /// connection carries raw bytes and this client is done with it.
    pub fn connection_bind(&mut self, now: Instant, id: ConnectionId) {
        self.start(now, Request::ConnectionBind(id));
    }

    /// Takes the session `other` learned (realm, nonce, key, and the RFC 8489 §9.2
    /// algorithm and USERHASH choices), so that this client's first request is already
    /// authenticated: an RFC 6062 data connection gets one request, and coturn closes it
    /// after a 401 (RFC 6062 §4.4 has the client reuse its credentials).
    pub fn adopt_credentials(&mut self, other: &TurnClient) {
        self.session.clone_from(&other.session);
    }

    /// Sends application data to `peer` through the relay: ChannelData when a channel is
    /// bound to it (RFC 8656 §12.5, no padding over UDP), else a Send indication (§11.1).
    pub fn send_to(&mut self, peer: SocketAddr, data: &[u8]) {
        let bytes = match self
            .channels
            .get(&peer)
            .and_then(|n| channel::emit(*n, data))
        {
            Some(mut b) => {
                if self.config.transport.is_reliable() {
                    b.resize(b.len().next_multiple_of(4), 0);
                }
                b
            }
            None => {
                let tid = self.tid();
                Message::new(Class::Indication, method::SEND, tid)
                    .with(attrs::xor_address(kind::XOR_PEER_ADDRESS, peer, &tid))
                    .with(attrs::data(data))
                    .emit()
            }
        };
        self.transmits.push_back(ClientTransmit {
            to: self.config.server,
            data: bytes,
        });
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<ClientTransmit> {
        self.transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// The next retransmission deadline.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.pending.values().map(|p| p.deadline).min()
    }

    /// Retransmits, or gives up on, requests whose deadline is due (RFC 8489 §6.2.1).
    pub fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<TransactionId> = self
            .pending
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(t, _)| *t)
            .collect();
        for tid in due {
            let Some(p) = self.pending.get_mut(&tid) else {
                continue;
            };
            if p.sends >= MAX_SENDS || self.config.transport.is_reliable() {
                let m = p.request.method().to_u16();
                self.pending.remove(&tid);
                self.events.push_back(ClientEvent::TimedOut { method: m });
                continue;
            }
            p.sends += 1;
            p.rto *= 2;
            p.deadline = now + p.rto;
            self.transmits.push_back(ClientTransmit {
                to: self.config.server,
                data: p.data.clone(),
            });
        }
    }

    /// A datagram from the server. Anything else than a response to a pending request,
    /// a Data indication or ChannelData is ignored; never panics.
    pub fn handle_input(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        if from != self.config.server {
            return;
        }
        if channel::is_channel_data(data) {
            if let Some((n, payload)) = channel::parse(data)
                && let Some(peer) = self.by_channel.get(&n)
            {
                self.events.push_back(ClientEvent::Data {
                    peer: *peer,
                    data: payload.to_vec(),
                });
            }
            return;
        }
        let Ok(msg) = Message::parse(data) else {
            return;
        };
        match msg.class {
            Class::Indication if msg.method == method::DATA => {
                let peer = attrs::peer_addresses(&msg)
                    .ok()
                    .and_then(|p| p.first().copied());
                if let (Some(peer), Some(payload)) = (peer, attrs::raw_value(&msg, kind::DATA)) {
                    self.events.push_back(ClientEvent::Data {
                        peer,
                        data: payload.to_vec(),
                    });
                }
            }
            Class::Indication if msg.method == tcp_relay::method::CONNECTION_ATTEMPT => {
                let peer = attrs::peer_addresses(&msg)
                    .ok()
                    .and_then(|p| p.first().copied());
                if let (Some(peer), Some(id)) = (peer, tcp_relay::connection_id(&msg)) {
                    self.events
                        .push_back(ClientEvent::ConnectionAttempt { peer, id });
                }
            }
            Class::Success | Class::Error => self.handle_response(now, &msg, data),
            _ => {}
        }
    }

    /// The credentials a 401/438 with `realm` and `nonce` asks for (RFC 8489 §9.2.5), or
    /// why the client does not answer it.
    fn session_from(
        &self,
        realm: &[u8],
        nonce: &[u8],
        msg: &Message,
    ) -> Result<Session, &'static str> {
        let realm = String::from_utf8_lossy(realm).into_owned();
        let features = SecurityFeatures::from_nonce(nonce).unwrap_or_default();
        let offered = attrs::raw_value(msg, PASSWORD_ALGORITHMS);
        if features.password_algorithms && offered.is_none() {
            return Err(
                "bid-down: the nonce cookie announces password algorithms but PASSWORD-ALGORITHMS is missing",
            );
        }
        let negotiated = match offered {
            None => None,
            Some(list) => {
                let chosen = auth::decode_password_algorithms(list)
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|(_, params)| params.is_empty())
                    .filter_map(|(n, _)| PasswordAlgorithm::from_number(n))
                    .find(|a| self.auth.algorithms.contains(a))
                    .ok_or("no supported algorithm in PASSWORD-ALGORITHMS")?;
                Some((list.to_vec(), chosen))
            }
        };
        let algorithm = negotiated
            .as_ref()
            .map_or(PasswordAlgorithm::Md5, |(_, a)| *a);
        Ok(Session {
            key: algorithm.key(&self.config.username, &realm, &self.config.password),
            realm,
            nonce: nonce.to_vec(),
            negotiated,
            userhash: features.username_anonymity && self.auth.userhash,
        })
    }

    fn tid(&mut self) -> TransactionId {
        let z = self.rng.next_u64();
        let mut id = [0u8; 12];
        id[..8].copy_from_slice(&z.to_be_bytes());
        id[8..].copy_from_slice(&(self.rng.state() as u32).to_be_bytes());
        TransactionId::new(id)
    }

    fn start(&mut self, now: Instant, request: Request) {
        self.send_request(now, request, false);
    }

    fn send_request(&mut self, now: Instant, request: Request, authenticated: bool) {
        let tid = self.tid();
        let mut msg = Message::new(Class::Request, request.method(), tid);
        msg.attributes = request.attributes(&tid);
        let data = match &self.session {
            Some(s) => {
                msg.attributes.push(if s.userhash {
                    attrs::raw(
                        USERHASH,
                        auth::userhash(&self.config.username, &s.realm).to_vec(),
                    )
                } else {
                    attrs::username(&self.config.username)
                });
                msg.attributes.push(attrs::realm(&s.realm));
                msg.attributes.push(attrs::nonce(&s.nonce));
                match &s.negotiated {
                    Some((list, a)) => {
                        msg.attributes
                            .push(attrs::raw(PASSWORD_ALGORITHMS, list.clone()));
                        msg.attributes.push(attrs::raw(
                            PASSWORD_ALGORITHM,
                            auth::encode_password_algorithm(*a),
                        ));
                        msg.attributes.push(attrs::integrity_sha256_placeholder());
                    }
                    None => msg.attributes.push(attrs::integrity_placeholder()),
                }
                msg.emit_with_integrity(s.key.as_bytes())
            }
            None => msg.emit(),
        };
        self.transmits.push_back(ClientTransmit {
            to: self.config.server,
            data: data.clone(),
        });
        self.pending.insert(
            tid,
            Pending {
                request,
                data,
                sends: 1,
                rto: RTO,
                deadline: now
                    + match self.config.transport {
                        Transport::Udp => RTO,
                        Transport::Tcp | Transport::Tls => STREAM_TIMEOUT,
                    },
                authenticated,
            },
        );
    }

    fn handle_response(&mut self, now: Instant, msg: &Message, data: &[u8]) {
        let Some(p) = self.pending.get(&msg.transaction_id) else {
            return;
        };
        let code = match msg.get(kind::ERROR_CODE) {
            Some(Attribute::ErrorCode(e)) => Some((e.code, e.reason.clone())),
            _ => None,
        };
        // A challenge: take REALM and NONCE, resend once with credentials (RFC 8489 §9.2.5).
        if let Some((401 | 438, _)) = code
            && let (Some(realm), Some(nonce)) = (
                attrs::raw_value(msg, kind::REALM),
                attrs::raw_value(msg, kind::NONCE),
            )
            && !p.authenticated
        {
            let method = msg.method.to_u16();
            let Some(p) = self.pending.remove(&msg.transaction_id) else {
                return;
            };
            match self.session_from(realm, nonce, msg) {
                Ok(session) => {
                    self.session = Some(session);
                    self.send_request(now, p.request, true);
                }
                Err(reason) => self.events.push_back(ClientEvent::Failed {
                    method,
                    code: code.map_or(401, |(c, _)| c),
                    reason: reason.into(),
                }),
            }
            return;
        }
        // Once credentials are in use, responses must carry a MESSAGE-INTEGRITY(-SHA256)
        // that verifies — MESSAGE-INTEGRITY-SHA256 once SHA-256 integrity is in use; only
        // 400, 401 and 438 may come without (RFC 8489 §9.2.5).
        if let Some(s) = &self.session {
            let key = s.key.as_bytes();
            let checked = match check_integrity_sha256(data, key) {
                Some(valid) => Some(valid),
                None if s.negotiated.is_some() => None,
                None => check_integrity(data, key),
            };
            let ok = match checked {
                Some(valid) => valid,
                None => matches!(code, Some((400 | 401 | 438, _))),
            };
            if !ok {
                return;
            }
        }
        let Some(p) = self.pending.remove(&msg.transaction_id) else {
            return;
        };
        if let Some((code, reason)) = code {
            self.events.push_back(ClientEvent::Failed {
                method: msg.method.to_u16(),
                code,
                reason,
            });
            return;
        }
        let lifetime = attrs::raw_value(msg, kind::LIFETIME)
            .and_then(attrs::decode_u32)
            .map(|s| Duration::from_secs(u64::from(s)));
        match p.request {
            Request::Allocate { .. } => {
                let relayed = attrs::raw_value(msg, kind::XOR_RELAYED_ADDRESS)
                    .and_then(|v| attrs::decode_xor_address(v, &msg.transaction_id));
                if let (Some(relayed), Some(lifetime)) = (relayed, lifetime) {
                    self.relayed = Some(relayed);
                    self.events.push_back(ClientEvent::Allocated {
                        relayed,
                        mapped: msg.mapped_address(),
                        lifetime,
                        reservation_token: attrs::raw_value(msg, kind::RESERVATION_TOKEN)
                            .and_then(|t| t.try_into().ok()),
                    });
                }
            }
            Request::Refresh(_) => {
                let lifetime = lifetime.unwrap_or_default();
                if lifetime.is_zero() {
                    self.relayed = None;
                    self.channels.clear();
                    self.by_channel.clear();
                }
                self.events.push_back(ClientEvent::Refreshed { lifetime });
            }
            Request::CreatePermission(peers) => {
                self.events
                    .push_back(ClientEvent::PermissionCreated { peers });
            }
            Request::ChannelBind(n, peer) => {
                self.channels.insert(peer, n);
                self.by_channel.insert(n, peer);
                self.events
                    .push_back(ClientEvent::ChannelBound { channel: n, peer });
            }
            Request::Connect(peer) => {
                if let Some(id) = tcp_relay::connection_id(msg) {
                    self.events.push_back(ClientEvent::Connected { peer, id });
                }
            }
            Request::ConnectionBind(id) => {
                self.events.push_back(ClientEvent::ConnectionBound { id });
            }
        }
    }
}
