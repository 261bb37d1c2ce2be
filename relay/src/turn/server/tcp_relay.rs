//! RFC 6062 TCP allocations, server side: the relayed transport address is a TCP
//! listening socket, and each peer connection is relayed as raw bytes on a client data
//! connection of its own.
//!
//! - Allocate with REQUESTED-TRANSPORT = TCP (6) is accepted only over a stream control
//!   connection (TCP or TLS; over UDP 400, RFC 6062 §5.1), and without EVEN-PORT or
//!   RESERVATION-TOKEN (400; DONT-FRAGMENT gets 420 before, as for UDP: this server
//!   cannot set DF). The driver opens a listener ([`Command::Listen`]).
//! - Connect (§5.2) names a peer (XOR-PEER-ADDRESS). The peer passes the deny list (403),
//!   the family check (443) and, unlike RFC 6062 which is silent on it, must have a
//!   permission (403): a TCP allocation talks to the peers it permitted (RFC 8656 §9),
//!   in both directions. A second Connect to the same peer while the first connection is
//!   pending or active gets 446; a Connect to the allocation's own relayed address 400. The driver opens the connection from the relayed
//!   address ([`Command::Connect`]) and reports the outcome
//!   ([`Input::TcpConnected`] → success with CONNECTION-ID,
//!   [`Input::TcpConnectFailed`] or [`CONNECT_TIMEOUT`] → 447).
//! - A peer connecting to the relayed address (§5.3) is accepted only with a permission
//!   for its IP and while the allocation has fewer than [`MAX_PENDING`] unbound
//!   connections ([`Input::TcpAccepted`]); the client gets a
//!   ConnectionAttempt indication with CONNECTION-ID and XOR-PEER-ADDRESS.
//! - ConnectionBind (§5.4) arrives on a new stream connection from the client, with the
//!   allocation's credentials (another user: 441; unknown, bound or still-connecting
//!   CONNECTION-ID: 400; over UDP or on a control connection: 400). After its success
//!   response the connection carries raw bytes both ways ([`Command::Bind`]).
//!   A peer data connection not bound within [`BIND_TIMEOUT`] is closed (§5.2, §5.3).
//! - Closing (§5.5): a reset or error on either side closes both
//!   ([`Command::Close`]). A FIN is relayed as a FIN: the other side is shut down for
//!   writing after what was queued ([`Command::Shutdown`]) and data keeps flowing the
//!   other way (TCP half-close); once both sides have sent their FIN the pair is closed.
//!   The allocation's end (expiry, Refresh 0, its control connection closing) closes all
//!   of its data connections and its listener.
//!
//! Buffers: the core holds no stream data except what a peer sent before its
//! ConnectionBind, at most [`PRE_BIND_BUFFER`] bytes (more closes the connection,
//! counted). Drivers should not read unbound peer connections at all: the kernel's
//! receive buffer and TCP window then hold the data (RFC 6062 §5.2 "adjusts its
//! advertised TCP receive window"). Everything else is passed through at once as
//! [`Command::Send`]; backpressure is the driver's: it stops reading one side while
//! the other side's queue is full.
//!
//! A peer that is one of this server's own relayed transport addresses (two clients of
//! the same server relaying to each other, as ICE relay–relay pairs and coturn's
//! `turnutils_uclient -y`/`-T` do) passes the deny list although the server's own IP is
//! on it: a relayed address is a relay, not a service of the host.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::input::Command;
#[cfg(doc)]
use super::input::Input;
use super::{FiveTuple, Outcome, TurnServer};
use crate::stun::{Attribute, Class, Message};
use crate::turn::attrs::{self, error, kind};
use crate::turn::auth::Credentials;
use crate::turn::event::{TcpCloseReason, TurnEvent};

/// RFC 6062 methods (§6.1).
pub mod method {
    use crate::stun::Method;
    /// Connect (0x000A): request/response.
    pub const CONNECT: Method = Method::Unknown(0x00A);
    /// ConnectionBind (0x000B): request/response, on a client data connection.
    pub const CONNECTION_BIND: Method = Method::Unknown(0x00B);
    /// ConnectionAttempt (0x000C): indication, server to client.
    pub const CONNECTION_ATTEMPT: Method = Method::Unknown(0x00C);
}

/// CONNECTION-ID (0x002A, RFC 6062 §6.2.1): a 32-bit connection identifier.
pub const CONNECTION_ID: u16 = 0x002A;
/// REQUESTED-TRANSPORT value for TCP (RFC 6062 §5.1).
pub const TRANSPORT_TCP: u8 = 6;
/// 446 Connection Already Exists (RFC 6062 §6.3).
pub const CONNECTION_ALREADY_EXISTS: u16 = 446;
/// 447 Connection Timeout or Failure (RFC 6062 §6.3).
pub const CONNECTION_TIMEOUT_OR_FAILURE: u16 = 447;

/// How long an outgoing Connect may take before 447 (RFC 6062 §5.2: at least 30 s).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a peer data connection waits for its ConnectionBind (RFC 6062 §5.2, §5.3).
pub const BIND_TIMEOUT: Duration = Duration::from_secs(30);
/// Most connections of one allocation that are connecting or not yet bound; further
/// Connect requests get 508 and further incoming connections are refused.
pub const MAX_PENDING: usize = 16;
/// Most data connections (pending and bound) of one allocation.
pub const MAX_CONNECTIONS: usize = 64;
/// Most bytes of a peer held before its ConnectionBind; beyond, the connection closes.
pub const PRE_BIND_BUFFER: usize = 64 * 1024;

/// Identifies a peer data connection and, once bound, its client data connection
/// (the CONNECTION-ID of RFC 6062 §6.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(pub u32);

/// One side of a relayed TCP connection pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TcpSide {
    /// The peer data connection (between the relayed address and the peer).
    Peer,
    /// The client data connection (between the client and a listening address).
    Client,
}

impl TcpSide {
    /// The other side.
    pub fn other(self) -> TcpSide {
        match self {
            TcpSide::Peer => TcpSide::Client,
            TcpSide::Client => TcpSide::Peer,
        }
    }
}

/// RFC 6062 counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TcpRelayStats {
    /// TCP allocations created.
    pub allocations: u64,
    /// Connect requests that started a connection.
    pub connects: u64,
    /// Outgoing connections that failed or timed out (447).
    pub connect_failures: u64,
    /// Incoming peer connections accepted (ConnectionAttempt sent).
    pub accepted: u64,
    /// Incoming peer connections refused: no TCP allocation there, no permission, denied
    /// peer, or too many pending connections.
    pub refused: u64,
    /// Successful ConnectionBinds.
    pub bound: u64,
    /// Peer data connections closed for want of a ConnectionBind within [`BIND_TIMEOUT`].
    pub bind_timeouts: u64,
    /// Connections closed because a peer sent more than [`PRE_BIND_BUFFER`] before bind.
    pub pre_bind_overflows: u64,
    /// Bytes relayed client → peer.
    pub to_peer_bytes: u64,
    /// Bytes relayed peer → client.
    pub to_client_bytes: u64,
    /// Connection pairs closed.
    pub closed: u64,
    /// Resets or failures reported by the driver, on peer and on client connections.
    pub peer_resets: u64,
    /// See [`TcpRelayStats::peer_resets`].
    pub client_resets: u64,
}

/// A snapshot of one connection pair, for debugging and leak checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpConnectionInfo {
    /// Its id.
    pub id: ConnectionId,
    /// The control connection of its allocation.
    pub allocation: FiveTuple,
    /// The peer.
    pub peer: SocketAddr,
    /// Opened by a Connect request (else the peer connected).
    pub outgoing: bool,
    /// The client data connection (server, client), once bound.
    pub bound: Option<(SocketAddr, SocketAddr)>,
}

#[derive(Debug, Clone)]
enum State {
    /// A Connect request waits for the outcome; its response is sent then.
    Connecting {
        req: Box<Message>,
        key: Box<Credentials>,
    },
    /// Connected, waiting for ConnectionBind; peer bytes held meanwhile.
    Pending { held: Vec<u8> },
    /// Relaying between the peer and this client data connection.
    Bound {
        server: SocketAddr,
        client: SocketAddr,
    },
}

#[derive(Debug, Clone)]
struct Conn {
    allocation: FiveTuple,
    peer: SocketAddr,
    outgoing: bool,
    state: State,
    deadline: Option<Instant>,
    /// A FIN arrived from the peer / from the client.
    peer_eof: bool,
    client_eof: bool,
}

/// The RFC 6062 state of a [`TurnServer`].
#[derive(Debug, Clone, Default)]
pub(crate) struct TcpRelay {
    /// TCP allocations: relayed address → control 5-tuple.
    listeners: HashMap<SocketAddr, FiveTuple>,
    conns: BTreeMap<ConnectionId, Conn>,
    by_client: HashMap<(SocketAddr, SocketAddr), ConnectionId>,
    timers: BTreeSet<(Instant, ConnectionId)>,
    /// The outcome of the latest `Input::TcpAccepted`: (relayed, peer) and the pair made
    /// of it, if kept ([`TurnServer::tcp_accepted`]).
    last_accepted: Option<(SocketAddr, SocketAddr, Option<ConnectionId>)>,
    next_id: u32,
    stats: TcpRelayStats,
}

impl TcpRelay {
    pub(crate) fn new(seed: u64) -> Self {
        TcpRelay {
            next_id: (seed ^ (seed >> 32)) as u32 | 1,
            ..Default::default()
        }
    }

    pub(crate) fn is_listener(&self, relayed: &SocketAddr) -> bool {
        self.listeners.contains_key(relayed)
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|(t, _)| *t)
    }

    fn fresh_id(&mut self) -> ConnectionId {
        loop {
            let id = ConnectionId(self.next_id);
            self.next_id = self.next_id.wrapping_add(0x9E37_79B9) | 1;
            if !self.conns.contains_key(&id) {
                return id;
            }
        }
    }

    /// Whether the allocation of `ft` is at one of its connection limits (pending, or all).
    fn full(&self, ft: FiveTuple) -> bool {
        self.count(ft, true) >= MAX_PENDING || self.count(ft, false) >= MAX_CONNECTIONS
    }

    /// A new pair of the allocation `ft` with `peer`, closed at `deadline` unless its state
    /// moves on first (connected, bound).
    fn open(
        &mut self,
        ft: FiveTuple,
        peer: SocketAddr,
        outgoing: bool,
        state: State,
        deadline: Instant,
    ) -> ConnectionId {
        let id = self.fresh_id();
        self.conns.insert(
            id,
            Conn {
                allocation: ft,
                peer,
                outgoing,
                state,
                deadline: None,
                peer_eof: false,
                client_eof: false,
            },
        );
        self.set_deadline(id, Some(deadline));
        id
    }

    fn count(&self, ft: FiveTuple, pending_only: bool) -> usize {
        self.conns
            .values()
            .filter(|c| c.allocation == ft)
            .filter(|c| !pending_only || !matches!(c.state, State::Bound { .. }))
            .count()
    }

    fn set_deadline(&mut self, id: ConnectionId, at: Option<Instant>) {
        if let Some(c) = self.conns.get_mut(&id) {
            if let Some(old) = std::mem::replace(&mut c.deadline, at) {
                self.timers.remove(&(old, id));
            }
            if let Some(at) = at {
                self.timers.insert((at, id));
            }
        }
    }

    /// Forgets a pair and tells the driver to close it.
    fn close(&mut self, id: ConnectionId, commands: &mut VecDeque<Command>) -> Option<Conn> {
        let c = self.conns.remove(&id)?;
        if let Some(d) = c.deadline {
            self.timers.remove(&(d, id));
        }
        if let State::Bound { server, client } = c.state {
            self.by_client.remove(&(server, client));
        }
        self.stats.closed += 1;
        commands.push_back(Command::Close { id });
        Some(c)
    }
}

const BAD: (u16, &str) = (error::BAD_REQUEST, "Bad Request");

fn connection_id_attr(id: ConnectionId) -> Attribute {
    attrs::raw(CONNECTION_ID, id.0.to_be_bytes().to_vec())
}

/// The CONNECTION-ID of a message, if present and well formed.
pub fn connection_id(msg: &Message) -> Option<ConnectionId> {
    let v = attrs::raw_value(msg, CONNECTION_ID)?;
    Some(ConnectionId(u32::from_be_bytes(v.try_into().ok()?)))
}

impl TurnServer {
    // ===== driver API =====

    /// RFC 6062 counters.
    pub fn tcp_stats(&self) -> &TcpRelayStats {
        &self.tcp.stats
    }

    /// Every TCP connection pair, sorted by id.
    pub fn tcp_connections(&self) -> Vec<TcpConnectionInfo> {
        self.tcp
            .conns
            .iter()
            .map(|(id, c)| TcpConnectionInfo {
                id: *id,
                allocation: c.allocation,
                peer: c.peer,
                outgoing: c.outgoing,
                bound: match c.state {
                    State::Bound { server, client } => Some((server, client)),
                    _ => None,
                },
            })
            .collect()
    }

    /// The relayed addresses of TCP allocations (listening sockets), sorted.
    pub fn tcp_listeners(&self) -> Vec<SocketAddr> {
        let mut v: Vec<SocketAddr> = self.tcp.listeners.keys().copied().collect();
        v.sort();
        v
    }

    /// Whether the stream connection `client`–`server` became a client data connection
    /// (after a successful ConnectionBind): the driver stops framing it and passes its
    /// bytes, including any already read past the ConnectionBind, as
    /// [`Input::TcpData`].
    pub fn tcp_binding(&self, server: SocketAddr, client: SocketAddr) -> Option<ConnectionId> {
        self.tcp.by_client.get(&(server, client)).copied()
    }

    /// [`Input::TcpConnected`].
    pub(super) fn tcp_connected(&mut self, now: Instant, id: ConnectionId) {
        self.handle_timeout(now);
        let Some(c) = self.tcp.conns.get_mut(&id) else {
            return;
        };
        let State::Connecting { req, key } =
            std::mem::replace(&mut c.state, State::Pending { held: Vec::new() })
        else {
            return;
        };
        let (ft, peer) = (c.allocation, c.peer);
        self.tcp.set_deadline(id, Some(now + BIND_TIMEOUT));
        self.events.push_back(TurnEvent::TcpPeerConnected {
            client: ft.client,
            peer,
            id,
        });
        self.respond(ft, &req, Some(&*key), Ok(vec![connection_id_attr(id)]));
    }

    /// [`Input::TcpConnectFailed`].
    pub(super) fn tcp_connect_failed(&mut self, now: Instant, id: ConnectionId) {
        self.handle_timeout(now);
        if matches!(
            self.tcp.conns.get(&id).map(|c| &c.state),
            Some(State::Connecting { .. })
        ) {
            self.connect_failed(id);
        }
    }

    /// Closes the pair `id` and says why ([`TurnEvent::TcpConnectionClosed`]).
    fn tcp_close(&mut self, id: ConnectionId, reason: TcpCloseReason) {
        if let Some(c) = self.tcp.close(id, &mut self.commands) {
            self.events.push_back(TurnEvent::TcpConnectionClosed {
                id,
                peer: c.peer,
                reason,
            });
        }
    }

    fn connect_failed(&mut self, id: ConnectionId) {
        if let Some(Conn {
            allocation,
            peer,
            state: State::Connecting { req, key },
            ..
        }) = self.tcp.close(id, &mut self.commands)
        {
            self.tcp.stats.connect_failures += 1;
            self.events.push_back(TurnEvent::TcpConnectFailed {
                client: allocation.client,
                peer,
            });
            self.respond(
                allocation,
                &req,
                Some(&*key),
                Err((
                    CONNECTION_TIMEOUT_OR_FAILURE,
                    "Connection Timeout or Failure",
                )),
            );
        }
    }

    /// [`Input::TcpAccepted`].
    pub(super) fn tcp_accept(&mut self, now: Instant, relayed: SocketAddr, peer: SocketAddr) {
        self.handle_timeout(now);
        self.tcp.last_accepted = Some((relayed, peer, None));
        let refused = |s: &mut TurnServer| {
            s.tcp.stats.refused += 1;
            s.events
                .push_back(TurnEvent::TcpPeerRefused { relayed, peer });
        };
        let Some(&ft) = self.tcp.listeners.get(&relayed) else {
            return refused(self);
        };
        let permitted = self
            .allocations
            .get(&ft)
            .is_some_and(|a| a.has_permission(peer.ip(), now));
        if !permitted || self.peer_refused(peer) || self.tcp.full(ft) {
            return refused(self);
        }
        let pending = State::Pending { held: Vec::new() };
        let id = self.tcp.open(ft, peer, false, pending, now + BIND_TIMEOUT);
        self.tcp.last_accepted = Some((relayed, peer, Some(id)));
        self.tcp.stats.accepted += 1;
        self.events.push_back(TurnEvent::TcpConnectionAttempt {
            client: ft.client,
            peer,
            id,
        });
        let tid = self.fresh_tid();
        let msg = Message::new(Class::Indication, method::CONNECTION_ATTEMPT, tid)
            .with(attrs::xor_address(kind::XOR_PEER_ADDRESS, peer, &tid))
            .with(connection_id_attr(id));
        self.send_to_client(ft, msg.emit());
    }

    /// Right after [`Input::TcpAccepted`] for `relayed` and
    /// `peer`: the pair the core made of the connection (keep it, do not read it until
    /// [`Command::Bind`]), or `None` when the core refused it (close it). `None` too for
    /// any other (relayed, peer) than the latest accepted one's.
    pub fn tcp_accepted(&self, relayed: SocketAddr, peer: SocketAddr) -> Option<ConnectionId> {
        match self.tcp.last_accepted {
            Some((r, p, Some(id)))
                if (r, p) == (relayed, peer) && self.tcp.conns.contains_key(&id) =>
            {
                Some(id)
            }
            _ => None,
        }
    }

    /// [`Input::TcpData`].
    pub(super) fn tcp_data(&mut self, now: Instant, id: ConnectionId, side: TcpSide, data: &[u8]) {
        self.handle_timeout(now);
        if data.is_empty() {
            return;
        }
        let Some(c) = self.tcp.conns.get_mut(&id) else {
            return;
        };
        match (&mut c.state, side) {
            (State::Bound { .. }, _) => {
                match side {
                    TcpSide::Peer => self.tcp.stats.to_client_bytes += data.len() as u64,
                    TcpSide::Client => self.tcp.stats.to_peer_bytes += data.len() as u64,
                }
                self.commands.push_back(Command::Send {
                    id,
                    side: side.other(),
                    data: data.to_vec(),
                });
            }
            (State::Pending { held }, TcpSide::Peer)
                if held.len() + data.len() <= PRE_BIND_BUFFER =>
            {
                held.extend_from_slice(data);
            }
            (State::Pending { .. }, TcpSide::Peer) => {
                self.tcp.stats.pre_bind_overflows += 1;
                self.tcp_close(id, TcpCloseReason::PreBindOverflow);
            }
            // No client data connection yet, or the peer before it connected: a driver bug.
            _ => {}
        }
    }

    /// [`Input::TcpEof`].
    pub(super) fn tcp_eof(&mut self, now: Instant, id: ConnectionId, side: TcpSide) {
        self.handle_timeout(now);
        let Some(c) = self.tcp.conns.get_mut(&id) else {
            return;
        };
        let bound = matches!(c.state, State::Bound { .. });
        let first = match side {
            TcpSide::Peer => !std::mem::replace(&mut c.peer_eof, true),
            TcpSide::Client => !std::mem::replace(&mut c.client_eof, true),
        };
        if matches!(c.state, State::Connecting { .. }) {
            self.connect_failed(id);
        } else if c.peer_eof && c.client_eof {
            self.tcp_close(id, TcpCloseReason::Finished);
        } else if bound && first {
            self.commands.push_back(Command::Shutdown {
                id,
                side: side.other(),
            });
        }
    }

    /// [`Input::TcpClosed`].
    pub(super) fn tcp_reset(&mut self, now: Instant, id: ConnectionId, side: TcpSide) {
        self.handle_timeout(now);
        match self.tcp.conns.get(&id).map(|c| &c.state) {
            Some(State::Connecting { .. }) => self.connect_failed(id),
            Some(_) => {
                let reason = match side {
                    TcpSide::Peer => {
                        self.tcp.stats.peer_resets += 1;
                        TcpCloseReason::PeerReset
                    }
                    TcpSide::Client => {
                        self.tcp.stats.client_resets += 1;
                        TcpCloseReason::ClientReset
                    }
                };
                self.tcp_close(id, reason);
            }
            None => {}
        }
    }

    // ===== hooks for the rest of the server =====

    /// Whether `peer` is refused by the deny list: not when it is one of this server's
    /// own relayed transport addresses (see the module docs).
    pub(super) fn peer_refused(&self, peer: SocketAddr) -> bool {
        self.deny.is_denied(peer.ip()) && !self.by_relayed.contains_key(&peer)
    }

    /// Whether the allocation of `ft` relays TCP.
    pub(super) fn is_tcp_allocation(&self, ft: &FiveTuple) -> bool {
        self.allocations
            .get(ft)
            .is_some_and(|a| self.tcp.listeners.contains_key(&a.relayed))
    }

    /// RFC 6062 §5.1 checks of an Allocate asking for TCP.
    pub(super) fn tcp_allocate_checks(
        &self,
        ft: FiveTuple,
        req: &Message,
    ) -> Result<(), (u16, &'static str)> {
        let tcp_only = [kind::EVEN_PORT, kind::RESERVATION_TOKEN];
        if !ft.transport.is_reliable()
            || tcp_only.iter().any(|k| attrs::raw_value(req, *k).is_some())
        {
            return Err(BAD);
        }
        Ok(())
    }

    /// A TCP allocation was created: listen on its relayed address.
    pub(super) fn tcp_allocated(&mut self, ft: FiveTuple, relayed: SocketAddr) {
        self.tcp.listeners.insert(relayed, ft);
        self.tcp.stats.allocations += 1;
        self.commands.push_back(Command::Listen { relayed });
    }

    /// The allocation of `ft` (relayed at `relayed`) is gone: close its connections and
    /// its listener (RFC 6062 §5.5). Returns whether it was a TCP allocation.
    pub(super) fn tcp_allocation_removed(&mut self, ft: FiveTuple, relayed: SocketAddr) -> bool {
        if self.tcp.listeners.remove(&relayed).is_none() {
            return false;
        }
        let ids: Vec<ConnectionId> = self
            .tcp
            .conns
            .iter()
            .filter(|(_, c)| c.allocation == ft)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.tcp_close(id, TcpCloseReason::AllocationEnded);
        }
        self.commands.push_back(Command::Unlisten { relayed });
        true
    }

    /// A stream connection closed: if it was a client data connection, its pair goes too.
    pub(super) fn tcp_stream_closed(&mut self, server: SocketAddr, client: SocketAddr) {
        if let Some(id) = self.tcp.by_client.get(&(server, client)).copied() {
            self.tcp_close(id, TcpCloseReason::ClientReset);
        }
    }

    /// Expires connects (447) and unbound connections, in deadline then id order.
    pub(super) fn tcp_handle_timeout(&mut self, now: Instant) {
        while let Some(&(at, id)) = self.tcp.timers.first() {
            if at > now {
                break;
            }
            self.tcp.timers.remove(&(at, id));
            if let Some(c) = self.tcp.conns.get_mut(&id) {
                c.deadline = None;
                match c.state {
                    State::Connecting { .. } => self.connect_failed(id),
                    State::Pending { .. } => {
                        self.tcp.stats.bind_timeouts += 1;
                        self.tcp_close(id, TcpCloseReason::BindTimeout);
                    }
                    State::Bound { .. } => {}
                }
            }
        }
    }

    // ===== requests (after authentication) =====

    /// Connect (RFC 6062 §5.2). `None` when the response is deferred to the outcome.
    pub(super) fn tcp_connect(
        &mut self,
        now: Instant,
        ft: FiveTuple,
        req: &Message,
        key: &Credentials,
    ) -> Option<Outcome> {
        let Some(a) = self.allocations.get(&ft) else {
            return Some(Err((error::ALLOCATION_MISMATCH, "Allocation Mismatch")));
        };
        let relayed = a.relayed;
        if !self.tcp.listeners.contains_key(&relayed) {
            return Some(Err(BAD));
        }
        let peers = match attrs::peer_addresses(req) {
            Ok(p) => p,
            Err(()) => return Some(Err(BAD)),
        };
        let [peer] = peers[..] else {
            return Some(Err(BAD));
        };
        if peer == relayed {
            return Some(Err(BAD));
        }
        if let Err(e) = self.check_peer(ft, peer) {
            return Some(Err(e));
        }
        if !self
            .allocations
            .get(&ft)
            .is_some_and(|a| a.has_permission(peer.ip(), now))
        {
            self.stats.dropped_no_permission += 1;
            return Some(Err((error::FORBIDDEN, "Forbidden")));
        }
        if self
            .tcp
            .conns
            .values()
            .any(|c| c.allocation == ft && c.outgoing && c.peer == peer)
        {
            return Some(Err((
                CONNECTION_ALREADY_EXISTS,
                "Connection Already Exists",
            )));
        }
        if self.tcp.full(ft) {
            return Some(Err((error::INSUFFICIENT_CAPACITY, "Insufficient Capacity")));
        }
        let connecting = State::Connecting {
            req: Box::new(req.clone()),
            key: Box::new(key.clone()),
        };
        let id = self
            .tcp
            .open(ft, peer, true, connecting, now + CONNECT_TIMEOUT);
        self.tcp.stats.connects += 1;
        self.commands.push_back(Command::Connect {
            id,
            from: relayed,
            to: peer,
        });
        None
    }

    /// ConnectionBind (RFC 6062 §5.4) on the stream connection of `ft`, by `user`.
    /// Responds itself (the response must precede the raw bytes).
    pub(super) fn tcp_connection_bind(
        &mut self,
        ft: FiveTuple,
        req: &Message,
        user: &str,
        key: &Credentials,
    ) {
        let outcome = self.tcp_bind_checks(ft, req, user);
        let ok = outcome.is_ok();
        self.respond(ft, req, Some(key), outcome.map(|_| Vec::new()));
        if !ok {
            return;
        }
        let Some(id) = connection_id(req) else {
            return;
        };
        let Some(c) = self.tcp.conns.get_mut(&id) else {
            return;
        };
        let State::Pending { held } = std::mem::replace(
            &mut c.state,
            State::Bound {
                server: ft.server,
                client: ft.client,
            },
        ) else {
            return;
        };
        let peer_eof = c.peer_eof;
        self.tcp.by_client.insert((ft.server, ft.client), id);
        self.tcp.set_deadline(id, None);
        self.tcp.stats.bound += 1;
        self.events.push_back(TurnEvent::TcpConnectionBound {
            client: ft.client,
            id,
        });
        self.commands.push_back(Command::Bind {
            id,
            server: ft.server,
            client: ft.client,
        });
        if !held.is_empty() {
            self.tcp.stats.to_client_bytes += held.len() as u64;
            self.commands.push_back(Command::Send {
                id,
                side: TcpSide::Client,
                data: held,
            });
        }
        if peer_eof {
            self.commands.push_back(Command::Shutdown {
                id,
                side: TcpSide::Client,
            });
        }
    }

    fn tcp_bind_checks(
        &self,
        ft: FiveTuple,
        req: &Message,
        user: &str,
    ) -> Result<ConnectionId, (u16, &'static str)> {
        if !ft.transport.is_reliable()
            || self.allocations.contains_key(&ft)
            || self.tcp.by_client.contains_key(&(ft.server, ft.client))
        {
            return Err(BAD);
        }
        let id = connection_id(req).ok_or(BAD)?;
        let c = self.tcp.conns.get(&id).ok_or(BAD)?;
        if !matches!(c.state, State::Pending { .. }) {
            return Err(BAD);
        }
        match self.allocations.get(&c.allocation) {
            Some(a) if a.user == user => Ok(id),
            Some(_) => Err((error::WRONG_CREDENTIALS, "Wrong Credentials")),
            None => Err(BAD),
        }
    }
}

#[cfg(test)]
mod test;
