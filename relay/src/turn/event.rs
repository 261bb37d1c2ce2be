//! What the TURN server reports: typed events and counters (for reports, not logs).

use super::server::tcp_relay::ConnectionId;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Why a request failed authentication (RFC 8489 §9.2.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthFailure {
    /// No MESSAGE-INTEGRITY nor MESSAGE-INTEGRITY-SHA256: the first request of a client (answered with a 401 challenge).
    NoCredentials,
    /// USERNAME (or USERHASH; not both), REALM or NONCE missing next to
    /// MESSAGE-INTEGRITY(-SHA256) (400).
    Incomplete,
    /// The nonce cookie announced password algorithms, and the request's
    /// PASSWORD-ALGORITHMS is not the one the server sent, or PASSWORD-ALGORITHM is missing
    /// or not among them: a bid-down attempt (400, RFC 8489 §9.2.4).
    AlgorithmMismatch,
    /// Another realm than ours (401).
    WrongRealm,
    /// The NONCE is stale or not ours (438).
    StaleNonce,
    /// Unknown username, or a USERHASH of no user (401).
    UnknownUser,
    /// MESSAGE-INTEGRITY(-SHA256) does not verify: wrong password (401).
    BadIntegrity,
    /// Credentials differ from those that created the allocation (441).
    WrongCredentials,
}

/// Why an RFC 6062 connection pair was closed ([`TurnEvent::TcpConnectionClosed`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TcpCloseReason {
    /// Both sides finished (a FIN each way, RFC 6062 §5.5).
    Finished,
    /// The peer side was reset or failed.
    PeerReset,
    /// The client data connection was reset or failed, or closed before a bind.
    ClientReset,
    /// No ConnectionBind within 30 s (RFC 6062 §5.3).
    BindTimeout,
    /// The peer sent more before the bind than the server holds.
    PreBindOverflow,
    /// The allocation ended (expired, deleted, or its control connection closed).
    AllocationEnded,
}

/// What the server did, for reports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TurnEvent {
    // ===== allocations (RFC 8656 §7, §8) =====
    /// An allocation was created.
    AllocationCreated {
        /// The client's transport address.
        client: SocketAddr,
        /// The server address it talks to.
        server: SocketAddr,
        /// The relayed transport address.
        relayed: SocketAddr,
        /// The authenticated username.
        user: String,
        /// The granted lifetime.
        lifetime: Duration,
    },
    /// A Refresh extended an allocation.
    AllocationRefreshed {
        /// The client's transport address.
        client: SocketAddr,
        /// The relayed transport address.
        relayed: SocketAddr,
        /// The granted lifetime.
        lifetime: Duration,
    },
    /// A Refresh with LIFETIME 0 deleted an allocation (RFC 8656 §8).
    AllocationDeleted {
        /// The client's transport address.
        client: SocketAddr,
        /// The relayed transport address.
        relayed: SocketAddr,
    },
    /// An allocation reached its lifetime (RFC 8656 §7.2).
    AllocationExpired {
        /// The client's transport address.
        client: SocketAddr,
        /// The relayed transport address.
        relayed: SocketAddr,
    },
    /// The stream connection of an allocation closed, and the allocation with it
    /// (RFC 8656 §3.1: over TCP the 5-tuple is the connection).
    AllocationClosed {
        /// The client's transport address.
        client: SocketAddr,
        /// The relayed transport address.
        relayed: SocketAddr,
    },
    // ===== permissions and channels (RFC 8656 §9, §12) =====
    /// A permission was installed (not emitted on refresh).
    PermissionCreated {
        /// The client's transport address.
        client: SocketAddr,
        /// The peer IP.
        peer: IpAddr,
    },
    /// A permission reached its 300 s lifetime.
    PermissionExpired {
        /// The client's transport address.
        client: SocketAddr,
        /// The peer IP.
        peer: IpAddr,
    },
    /// A channel was bound (not emitted on refresh).
    ChannelBound {
        /// The client's transport address.
        client: SocketAddr,
        /// The channel number.
        channel: u16,
        /// The peer.
        peer: SocketAddr,
    },
    /// A channel binding reached its 600 s lifetime.
    ChannelExpired {
        /// The client's transport address.
        client: SocketAddr,
        /// The channel number.
        channel: u16,
        /// The peer.
        peer: SocketAddr,
    },
    // ===== RFC 6062 TCP connections =====
    /// A Connect's outgoing connection to `peer` is up (RFC 6062 §5.2); the client was
    /// answered with the CONNECTION-ID.
    TcpPeerConnected {
        /// The allocation's client (control connection).
        client: SocketAddr,
        /// The peer.
        peer: SocketAddr,
        /// The CONNECTION-ID.
        id: ConnectionId,
    },
    /// A Connect failed or timed out (447, RFC 6062 §5.2).
    TcpConnectFailed {
        /// The allocation's client.
        client: SocketAddr,
        /// The peer.
        peer: SocketAddr,
    },
    /// A peer connected to a relayed address and the client was sent a
    /// ConnectionAttempt (RFC 6062 §5.3).
    TcpConnectionAttempt {
        /// The allocation's client.
        client: SocketAddr,
        /// The peer.
        peer: SocketAddr,
        /// The CONNECTION-ID.
        id: ConnectionId,
    },
    /// A peer's connection to a relayed address was refused: no such TCP allocation, no
    /// permission, a denied address, or the allocation's connection limits (§5.3).
    TcpPeerRefused {
        /// The relayed address it connected to.
        relayed: SocketAddr,
        /// The peer.
        peer: SocketAddr,
    },
    /// A ConnectionBind joined a client data connection to the peer connection `id`
    /// (RFC 6062 §5.4): from now on raw bytes both ways.
    TcpConnectionBound {
        /// The data connection's client transport address.
        client: SocketAddr,
        /// The CONNECTION-ID.
        id: ConnectionId,
    },
    /// A peer connection (and its data connection, if bound) was closed.
    TcpConnectionClosed {
        /// The CONNECTION-ID.
        id: ConnectionId,
        /// The peer.
        peer: SocketAddr,
        /// Why.
        reason: TcpCloseReason,
    },
    // ===== refusals =====
    /// A CreatePermission/ChannelBind named a refused peer (403), or a Send indication
    /// did (dropped).
    PeerDenied {
        /// The client's transport address.
        client: SocketAddr,
        /// The refused peer.
        peer: SocketAddr,
    },
    /// A request failed authentication.
    AuthFailed {
        /// The request's source.
        client: SocketAddr,
        /// The USERNAME, if any.
        user: Option<String>,
        /// Why.
        reason: AuthFailure,
    },
    /// A request got an error response (after authentication, or 400 before it).
    ErrorResponse {
        /// The request's source.
        client: SocketAddr,
        /// The method number.
        method: u16,
        /// The error code.
        code: u16,
    },
}

/// Counters (drops are counted, not errors).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TurnStats {
    /// STUN requests received on a listening address.
    pub requests: u64,
    /// STUN Binding requests answered.
    pub binding_requests: u64,
    /// Success responses sent (Binding excluded).
    pub success_responses: u64,
    /// Error responses sent (Binding excluded), 401 challenges included.
    pub error_responses: u64,
    /// Requests that failed authentication (every [`TurnEvent::AuthFailed`]).
    pub auth_failures: u64,
    /// Unauthenticated responses not sent because the source's token bucket was empty.
    pub rate_limited: u64,
    /// Allocations created.
    pub allocations_created: u64,
    /// Allocations expired.
    pub allocations_expired: u64,
    /// Allocations deleted by Refresh LIFETIME 0.
    pub allocations_deleted: u64,
    /// Allocations deleted because their stream connection closed.
    pub allocations_closed: u64,
    /// Peers refused by the deny list (403s and dropped Send indications).
    pub peer_denied: u64,
    /// Datagrams relayed from clients to peers, and their payload bytes.
    pub to_peer_packets: u64,
    /// Payload bytes relayed to peers.
    pub to_peer_bytes: u64,
    /// Datagrams relayed from peers to clients (Data indications and ChannelData).
    pub to_client_packets: u64,
    /// Payload bytes relayed to clients.
    pub to_client_bytes: u64,
    /// Peer datagrams or Send/ChannelData dropped for lack of a permission (RFC 8656 §9).
    pub dropped_no_permission: u64,
    /// Send indications or ChannelData from a 5-tuple without allocation, or datagrams
    /// on a relayed address that is no longer allocated.
    pub dropped_no_allocation: u64,
    /// ChannelData on an unbound channel.
    pub dropped_no_channel: u64,
    /// Input that is neither STUN nor ChannelData, or a malformed indication.
    pub malformed: u64,
    /// Well-formed input the server does not act on (responses, unknown indications,
    /// datagrams on unknown local sockets).
    pub ignored: u64,
}
