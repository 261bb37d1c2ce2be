//! [`Net`]: the socket API the built-in agents are written against, so that the same
//! punch, probe and STUN code runs on the virtual fabric ([`Sim`], virtual time, smoltcp
//! hosts) and on real sockets ([`super::os::OsNet`], real time, kernel hosts).
//!
//! The API is deliberately small and poll-based (no callbacks, no blocking): an agent is
//! a state machine whose [`Agent::poll`] reads what arrived, sends what is due and
//! returns; [`Agent::poll_timeout`] says when it next needs a poll regardless of input.
//! A driver (the runner's virtual-time loop, or [`super::os::run_until`]) polls
//! agents after input and at their timeouts.
//!
//! TCP listening follows the smoltcp model: [`Net::tcp_listen`] returns a socket that
//! carries *one* incoming connection; a server that expects `n` connections on a port
//! calls it `n` times with that port (the OS implementation shares one listening socket
//! between them and hands accepted connections to the slots in order).

use emulator::fabric::sim::{Sim, SimError, SocketId, TcpState};
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

/// Errors of socket operations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// An error of the virtual fabric.
    #[error(transparent)]
    Sim(#[from] SimError),
    /// The address is not one of the host's.
    #[error("{0} is not an address of host {1}")]
    NotLocal(IpAddr, usize),
    /// No such host.
    #[error("no host {0}")]
    NoHost(usize),
    /// No such socket, or an operation that does not fit the socket's kind.
    #[error("no such socket")]
    NoSocket,
    /// An operating-system call failed.
    #[error("{op}: {source}")]
    Io {
        /// What was being done (`bind`, `connect`, `setns`, …).
        op: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl NetError {
    /// An OS error during `op`.
    pub fn io(op: &'static str, source: std::io::Error) -> NetError {
        NetError::Io { op, source }
    }
}

/// The state of a TCP socket, coarse enough for every stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TcpPhase {
    /// A listening slot with no connection yet.
    Listening,
    /// Handshake in progress (SYN sent or received).
    Connecting,
    /// Connected: data can flow both ways.
    Established,
    /// Shutting down (a FIN was sent or received), not yet gone.
    Closing,
    /// Gone: closed, reset, refused or timed out (TIME-WAIT counts as gone).
    Closed,
}

/// The sockets an agent may use on the hosts of a fabric.
///
/// Hosts are numbered as in the topology (or as given to [`super::os::OsNet::new`]).
pub trait Net {
    /// A socket handle.
    type Socket: Copy + Eq + std::fmt::Debug;

    /// The current time (virtual on the virtual fabric).
    fn now(&self) -> Instant;
    /// The addresses of `host`, the primary one first (empty for an unknown host).
    fn host_addresses(&self, host: usize) -> Vec<IpAddr>;
    /// A free ephemeral port on `host`.
    fn ephemeral_port(&mut self, host: usize, tcp: bool) -> Result<u16, NetError>;

    /// Open a UDP socket on `host` bound to `addr` (None: the host's addresses) and `port`
    /// (0: ephemeral). Returns the socket and its port.
    fn udp_bind(
        &mut self,
        host: usize,
        addr: Option<IpAddr>,
        port: u16,
    ) -> Result<(Self::Socket, u16), NetError>;
    /// Send a datagram (a full buffer is an error; callers usually ignore it, as a lost
    /// datagram).
    fn udp_send(&mut self, s: Self::Socket, to: SocketAddr, data: &[u8]) -> Result<(), NetError>;
    /// Receive one datagram, if any: `(source, payload)`.
    fn udp_recv(&mut self, s: Self::Socket) -> Option<(SocketAddr, Vec<u8>)>;

    /// A socket that will carry one incoming TCP connection on `port` of `host` (see the
    /// module docs: call it once per expected connection).
    fn tcp_listen(&mut self, host: usize, port: u16) -> Result<Self::Socket, NetError>;
    /// Start a TCP connection from `host`, local port `local_port` (0: ephemeral), to
    /// `remote`, without blocking. Several sockets may share a local port as long as their
    /// remotes differ (simultaneous open from the port of an existing connection).
    /// Returns the socket and its local port.
    fn tcp_connect(
        &mut self,
        host: usize,
        local_port: u16,
        remote: SocketAddr,
    ) -> Result<(Self::Socket, u16), NetError>;
    /// The state of a TCP socket.
    fn tcp_state(&mut self, s: Self::Socket) -> TcpPhase;
    /// The remote endpoint of a TCP socket, once known.
    fn tcp_remote(&mut self, s: Self::Socket) -> Option<SocketAddr>;
    /// Queue bytes on a TCP socket; returns how many were taken (0 when not connected).
    fn tcp_send(&mut self, s: Self::Socket, data: &[u8]) -> Result<usize, NetError>;
    /// Take whatever bytes arrived on a TCP socket.
    fn tcp_recv(&mut self, s: Self::Socket) -> Vec<u8>;
    /// Close the sending side of a TCP socket gracefully (a FIN after what is queued); the
    /// socket stays readable until [`Net::close`].
    fn tcp_shutdown(&mut self, s: Self::Socket);
    /// Whether the remote will send nothing more on a TCP socket (its FIN arrived, or the
    /// connection is gone), whatever this side did: a relay uses it to pass a FIN on.
    /// Call [`Net::tcp_recv`] first (on real sockets that is where the FIN is seen). The
    /// default suits stacks whose [`TcpPhase::Closing`] means "FIN received".
    fn tcp_recv_closed(&mut self, s: Self::Socket) -> bool {
        matches!(self.tcp_state(s), TcpPhase::Closing | TcpPhase::Closed)
    }

    /// Close a socket (TCP: abort).
    fn close(&mut self, s: Self::Socket);
}

/// Something a driver polls: an agent or a service.
pub trait Agent<N: Net> {
    /// Read what arrived, handle what is due at `net.now()`, send what follows.
    fn poll(&mut self, net: &mut N);
    /// When the agent next needs [`Agent::poll`] even without input.
    fn poll_timeout(&self) -> Option<Instant>;
    /// Whether the agent has finished. A service is never waited for: it says `true` and
    /// answers for as long as it is polled.
    fn is_done(&self) -> bool;
    /// Hand the events gathered since the last call to the cell's log (services record
    /// their core's events; agents with nothing to report keep this default).
    fn drain_events(&mut self, _rec: &mut crate::run::events::Recorder) {}
    /// The service this agent is (its host and its scenario keyword, `media-relay`, …),
    /// for `service` steps; `None` for agents that are not services.
    fn service(&self) -> Option<(usize, &'static str)> {
        None
    }
    /// A `service` step's action on this service (SCENARIO-FORMAT.md "Steps").
    fn act(
        &mut self,
        _net: &mut N,
        action: crate::scenario::model::ServiceAction,
    ) -> Result<(), String> {
        Err(format!("`{action}` is not implemented for this service"))
    }
}

/// `impl Agent<N> for $ty<N>` by the type's own (inherent) `poll`, `poll_timeout` and
/// `is_done`: the steps' agents.
macro_rules! agent_by_inherent_methods {
    ($ty:ident) => {
        impl<N: $crate::agents::net::Net> $crate::agents::net::Agent<N> for $ty<N> {
            fn poll(&mut self, net: &mut N) {
                $ty::poll(self, net)
            }
            fn poll_timeout(&self) -> Option<std::time::Instant> {
                $ty::poll_timeout(self)
            }
            fn is_done(&self) -> bool {
                $ty::is_done(self)
            }
        }
    };
}
pub(crate) use agent_by_inherent_methods;

/// `impl Agent<N> for $ty<N>` for a service: its own `poll` and `poll_timeout`, never
/// waited for (`is_done` is always true), and its `log` field handed to the cell's event
/// log as the service `$name` on its `host`; with `$act`, its inherent method of that name
/// serves `service` steps.
macro_rules! service_agent {
    ($ty:ident, $name:literal $(, $act:ident)?) => {
        impl<N: $crate::agents::net::Net> $crate::agents::net::Agent<N> for $ty<N> {
            fn poll(&mut self, net: &mut N) {
                $ty::poll(self, net)
            }
            fn poll_timeout(&self) -> Option<std::time::Instant> {
                $ty::poll_timeout(self)
            }
            fn is_done(&self) -> bool {
                true
            }
            fn drain_events(&mut self, rec: &mut $crate::run::events::Recorder) {
                rec.service(self.host, $name, &mut self.log);
            }
            fn service(&self) -> Option<(usize, &'static str)> {
                Some((self.host, $name))
            }
            $(
                fn act(
                    &mut self,
                    net: &mut N,
                    action: $crate::scenario::model::ServiceAction,
                ) -> Result<(), String> {
                    $ty::$act(self, net, action)
                }
            )?
        }
    };
}
pub(crate) use service_agent;

// ===== the virtual fabric =====

impl Net for Sim {
    type Socket = SocketId;

    fn now(&self) -> Instant {
        Sim::now(self)
    }

    fn host_addresses(&self, host: usize) -> Vec<IpAddr> {
        if host < self.topology().hosts.len() {
            Sim::host_addresses(self, host).to_vec()
        } else {
            Vec::new()
        }
    }

    fn ephemeral_port(&mut self, host: usize, tcp: bool) -> Result<u16, NetError> {
        Ok(Sim::ephemeral_port(self, host, tcp)?)
    }

    fn udp_bind(
        &mut self,
        host: usize,
        addr: Option<IpAddr>,
        port: u16,
    ) -> Result<(SocketId, u16), NetError> {
        Ok(Sim::udp_bind(self, host, addr, port)?)
    }

    fn udp_send(&mut self, s: SocketId, to: SocketAddr, data: &[u8]) -> Result<(), NetError> {
        Ok(Sim::udp_send(self, s, to, None, data)?)
    }

    fn udp_recv(&mut self, s: SocketId) -> Option<(SocketAddr, Vec<u8>)> {
        Sim::udp_recv(self, s).map(|(from, _, data)| (from, data))
    }

    fn tcp_listen(&mut self, host: usize, port: u16) -> Result<SocketId, NetError> {
        Ok(Sim::tcp_listen(self, host, port)?)
    }

    fn tcp_connect(
        &mut self,
        host: usize,
        local_port: u16,
        remote: SocketAddr,
    ) -> Result<(SocketId, u16), NetError> {
        Ok(Sim::tcp_connect(self, host, local_port, remote)?)
    }

    fn tcp_state(&mut self, s: SocketId) -> TcpPhase {
        match Sim::tcp_state(self, s) {
            TcpState::Listen => TcpPhase::Listening,
            TcpState::SynSent | TcpState::SynReceived => TcpPhase::Connecting,
            TcpState::Established => TcpPhase::Established,
            TcpState::Closed | TcpState::TimeWait => TcpPhase::Closed,
            _ => TcpPhase::Closing,
        }
    }

    fn tcp_remote(&mut self, s: SocketId) -> Option<SocketAddr> {
        Sim::tcp_remote(self, s)
    }

    fn tcp_shutdown(&mut self, s: SocketId) {
        Sim::tcp_shutdown(self, s)
    }

    /// smoltcp's states after the remote's FIN (a local FIN alone is FIN-WAIT).
    fn tcp_recv_closed(&mut self, s: SocketId) -> bool {
        matches!(
            Sim::tcp_state(self, s),
            TcpState::CloseWait
                | TcpState::LastAck
                | TcpState::Closing
                | TcpState::TimeWait
                | TcpState::Closed
        )
    }

    fn tcp_send(&mut self, s: SocketId, data: &[u8]) -> Result<usize, NetError> {
        Ok(Sim::tcp_send(self, s, data)?)
    }

    fn tcp_recv(&mut self, s: SocketId) -> Vec<u8> {
        Sim::tcp_recv(self, s)
    }

    fn close(&mut self, s: SocketId) {
        Sim::close(self, s)
    }
}
