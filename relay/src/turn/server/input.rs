//! What a driver tells the TURN core ([`Input`], into [`TurnServer::handle_input`]) and
//! what the core tells the driver to do with its sockets ([`Command`], from
//! [`TurnServer::poll_command`]). Commands are never events: events are what happened,
//! for reports; commands are what the driver must do next.

use std::net::SocketAddr;

use super::TurnServer;
use super::tcp_relay::{ConnectionId, TcpSide};
use crate::io::Transport;

/// Something that happened on one of the driver's sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input<'a> {
    /// A datagram (UDP) on a listening or relayed address, or one framed message (STUN or
    /// ChannelData, see [`crate::turn::stream::Framer`]) from the stream connection
    /// `remote`–`local` to a listening address (RFC 8656 §3.1).
    Packet {
        /// UDP, or the stream's transport (TCP or TLS).
        transport: Transport,
        /// Our address it arrived on.
        local: SocketAddr,
        /// Where it came from.
        remote: SocketAddr,
        /// The datagram or framed message.
        data: &'a [u8],
    },
    /// The stream connection `remote`–`local` closed (or was reset): its allocation, if
    /// any, is deleted, since its 5-tuple no longer exists (RFC 8656 §2.2, §3.1). UDP has
    /// no connections: ignored (and counted) for [`Transport::Udp`].
    ConnectionClosed {
        /// TCP or TLS.
        transport: Transport,
        /// The listening address the connection reached.
        local: SocketAddr,
        /// The client's address of that connection.
        remote: SocketAddr,
    },
    // ===== RFC 6062 =====
    /// The outgoing connection of a [`Command::Connect`] is established: the Connect
    /// request gets its success response with CONNECTION-ID (RFC 6062 §5.2).
    TcpConnected {
        /// The pair.
        id: ConnectionId,
    },
    /// The outgoing connection of a [`Command::Connect`] failed: 447 (RFC 6062 §5.2).
    TcpConnectFailed {
        /// The pair.
        id: ConnectionId,
    },
    /// A peer connected to the relayed address `relayed` (RFC 6062 §5.3). Afterwards
    /// [`TurnServer::tcp_accepted`] says whether the core kept it (do not read it until
    /// [`Command::Bind`]) or refused it (close it).
    TcpAccepted {
        /// The TCP allocation's relayed transport address.
        relayed: SocketAddr,
        /// The peer.
        peer: SocketAddr,
    },
    /// Bytes read from one side of a pair. Before the bind only the peer side may send
    /// (held up to [`super::tcp_relay::PRE_BIND_BUFFER`]); afterwards they go to the
    /// other side as-is.
    TcpData {
        /// The pair.
        id: ConnectionId,
        /// The side they were read from.
        side: TcpSide,
        /// The bytes.
        data: &'a [u8],
    },
    /// One side sent its FIN (and everything before it was passed as
    /// [`Input::TcpData`]): the other side is shut down for writing; when both sides have,
    /// the pair is closed (RFC 6062 §5.5, TCP half-close).
    TcpEof {
        /// The pair.
        id: ConnectionId,
        /// The side whose FIN arrived.
        side: TcpSide,
    },
    /// One side was reset or failed: both are closed (RFC 6062 §5.5). For a connection
    /// still connecting this is [`Input::TcpConnectFailed`].
    TcpClosed {
        /// The pair.
        id: ConnectionId,
        /// The side that failed.
        side: TcpSide,
    },
}

impl<'a> Input<'a> {
    /// A UDP datagram `data` from `remote` on our socket `local` (a listening address or
    /// a relayed one).
    pub fn udp(local: SocketAddr, remote: SocketAddr, data: &'a [u8]) -> Input<'a> {
        Input::Packet {
            transport: Transport::Udp,
            local,
            remote,
            data,
        }
    }
}

/// What the driver must do with its sockets: relayed UDP sockets (RFC 8656 §7.2) and the
/// RFC 6062 TCP listeners and connections (report back with the `Tcp*` [`Input`]s).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Bind a UDP socket on the relayed transport address of a new UDP allocation and
    /// feed what it receives to [`TurnServer::handle_input`] with [`Input::udp`].
    BindRelay {
        /// The relayed transport address.
        relayed: SocketAddr,
    },
    /// Close the relayed UDP socket (its allocation is gone).
    CloseRelay {
        /// The relayed transport address.
        relayed: SocketAddr,
    },
    /// Listen for TCP connections on the relayed address of a new TCP allocation and
    /// report each with [`Input::TcpAccepted`].
    Listen {
        /// The relayed transport address.
        relayed: SocketAddr,
    },
    /// Stop listening (the allocation is gone; its connections get [`Command::Close`]).
    Unlisten {
        /// The relayed transport address.
        relayed: SocketAddr,
    },
    /// Open a TCP connection from the relayed address to `peer`; report
    /// [`Input::TcpConnected`] or [`Input::TcpConnectFailed`].
    Connect {
        /// The new connection.
        id: ConnectionId,
        /// The local address (the relayed transport address).
        from: SocketAddr,
        /// The peer.
        to: SocketAddr,
    },
    /// The stream connection `client`–`server` is now the client data connection of
    /// `id`: after the ConnectionBind response already queued on it, it carries raw bytes
    /// (feed them as [`Input::TcpData`] with [`TcpSide::Client`]), and the peer side may
    /// be read now.
    Bind {
        /// The connection pair.
        id: ConnectionId,
        /// The listening address the client data connection reached.
        server: SocketAddr,
        /// The client's address of that connection.
        client: SocketAddr,
    },
    /// Write bytes on one side of a pair.
    Send {
        /// The connection pair.
        id: ConnectionId,
        /// Which connection to write on.
        side: TcpSide,
        /// The bytes.
        data: Vec<u8>,
    },
    /// Send a FIN on one side after what was written (the other side sent its FIN).
    Shutdown {
        /// The connection pair.
        id: ConnectionId,
        /// Which connection to shut down for writing.
        side: TcpSide,
    },
    /// Close both connections of the pair (whichever exist); the id is gone.
    Close {
        /// The connection pair.
        id: ConnectionId,
    },
}

impl TurnServer {
    /// Something happened on a socket (see [`Input`]). Never panics on any input.
    pub fn handle_input(&mut self, now: std::time::Instant, input: Input<'_>) {
        match input {
            Input::Packet {
                transport,
                local,
                remote,
                data,
            } => self.packet(now, transport, local, remote, data),
            Input::ConnectionClosed {
                transport,
                local,
                remote,
            } => self.connection_closed(now, transport, local, remote),
            Input::TcpConnected { id } => self.tcp_connected(now, id),
            Input::TcpConnectFailed { id } => self.tcp_connect_failed(now, id),
            Input::TcpAccepted { relayed, peer } => self.tcp_accept(now, relayed, peer),
            Input::TcpData { id, side, data } => self.tcp_data(now, id, side, data),
            Input::TcpEof { id, side } => self.tcp_eof(now, id, side),
            Input::TcpClosed { id, side } => self.tcp_reset(now, id, side),
        }
    }

    /// The next thing the driver must do with its sockets (see [`Command`]).
    pub fn poll_command(&mut self) -> Option<Command> {
        self.commands.pop_front()
    }
}
