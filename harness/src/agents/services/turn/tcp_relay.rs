//! RFC 6062 in the `turn` service: the driver side of [`relay::turn::Command`] — TCP
//! listening slots per relayed address, outgoing connections from the relayed port, raw
//! client data connections, backpressure, FINs and closes (see the parent module docs).

use super::{CLOSE_LINGER, RELAY_LISTEN_SLOTS, STREAM_BACKLOG, TurnService};
use crate::agents::net::{Net, TcpPhase};
use relay::turn::{Command, ConnectionId, Input, TcpSide};
use std::net::SocketAddr;
use std::time::Instant;

/// An RFC 6062 peer data connection.
pub(super) struct PeerConn<S> {
    pub(super) socket: S,
    /// Still connecting (an outgoing Connect).
    pub(super) connecting: bool,
    /// Its client data connection exists: read it.
    pub(super) bound: bool,
    pub(super) out: Vec<u8>,
    pub(super) shut_pending: bool,
    pub(super) shut: bool,
    pub(super) eof_seen: bool,
}

/// A closed data connection flushing its queue until its deadline.
pub(super) struct Lingering<S> {
    pub(super) socket: S,
    pub(super) out: Vec<u8>,
    pub(super) deadline: Instant,
}

impl<N: Net> TurnService<N> {
    /// Hand peer connections on relayed TCP addresses to the core (refused ones are
    /// closed at once) and open fresh listening slots.
    pub(super) fn accept_relayed(&mut self, net: &mut N, now: Instant) {
        let slots: Vec<(SocketAddr, N::Socket)> = self
            .tcp_listeners
            .iter()
            .flat_map(|(a, v)| v.iter().map(|s| (*a, *s)))
            .collect();
        for (relayed, s) in slots {
            if net.tcp_state(s) == TcpPhase::Listening {
                continue;
            }
            let fresh = net.tcp_listen(self.host, relayed.port());
            if fresh.is_err() {
                self.stats.tcp_relay_socket_failures += 1;
            }
            if let Some(v) = self.tcp_listeners.get_mut(&relayed) {
                v.retain(|x| *x != s);
                v.extend(fresh.ok());
            }
            let accepted = net.tcp_remote(s).and_then(|peer| {
                self.server
                    .handle_input(now, Input::TcpAccepted { relayed, peer });
                self.server.tcp_accepted(relayed, peer)
            });
            match accepted {
                Some(id) => {
                    self.peers.insert(
                        id,
                        PeerConn {
                            socket: s,
                            connecting: false,
                            bound: false,
                            out: Vec::new(),
                            shut_pending: false,
                            shut: false,
                            eof_seen: false,
                        },
                    );
                }
                None => net.close(s),
            }
        }
    }

    /// How many bytes are queued towards `side` of pair `id`.
    fn queued(&self, id: ConnectionId, side: TcpSide) -> usize {
        match side {
            TcpSide::Peer => self.peers.get(&id).map_or(0, |p| p.out.len()),
            TcpSide::Client => self
                .conns
                .iter()
                .find(|c| c.data == Some(id))
                .map_or(0, |c| c.out.len()),
        }
    }

    /// Read a client data connection (unless the peer's queue is full), pass on its FIN
    /// or its failure.
    pub(super) fn read_data_conn(&mut self, net: &mut N, now: Instant, i: usize, id: ConnectionId) {
        if self.queued(id, TcpSide::Peer) >= STREAM_BACKLOG {
            return;
        }
        let c = &mut self.conns[i];
        let mut failed = false;
        let bytes = c.receive(net).unwrap_or_else(|| {
            self.stats.tls_errors += 1;
            failed = true;
            Vec::new()
        });
        self.server.handle_input(
            now,
            Input::TcpData {
                id,
                side: TcpSide::Client,
                data: &bytes,
            },
        );
        let c = &mut self.conns[i];
        let closed = failed || net.tcp_state(c.socket) == TcpPhase::Closed && !c.shut;
        let (socket, eof_seen) = (c.socket, &mut c.eof_seen);
        report_end(
            &mut self.server,
            net,
            now,
            (id, TcpSide::Client),
            socket,
            closed,
            eof_seen,
        );
    }

    /// Follow outgoing connects; read bound peer connections (unless the client's queue
    /// is full); pass on FINs and failures.
    pub(super) fn read_peers(&mut self, net: &mut N, now: Instant) {
        let ids: Vec<ConnectionId> = self.peers.keys().copied().collect();
        for id in ids {
            let full = self.queued(id, TcpSide::Client) >= STREAM_BACKLOG;
            let Some(p) = self.peers.get_mut(&id) else {
                continue;
            };
            let phase = net.tcp_state(p.socket);
            if p.connecting {
                match phase {
                    TcpPhase::Connecting => {}
                    TcpPhase::Established | TcpPhase::Closing => {
                        p.connecting = false;
                        self.server.handle_input(now, Input::TcpConnected { id });
                    }
                    _ => self
                        .server
                        .handle_input(now, Input::TcpConnectFailed { id }),
                }
                continue;
            }
            if !p.bound {
                // Not read before the bind; only a reset ends it early.
                if phase == TcpPhase::Closed {
                    self.server.handle_input(
                        now,
                        Input::TcpClosed {
                            id,
                            side: TcpSide::Peer,
                        },
                    );
                }
                continue;
            }
            if full {
                continue;
            }
            let bytes = net.tcp_recv(p.socket);
            self.server.handle_input(
                now,
                Input::TcpData {
                    id,
                    side: TcpSide::Peer,
                    data: &bytes,
                },
            );
            let Some(p) = self.peers.get_mut(&id) else {
                continue;
            };
            let closed = net.tcp_state(p.socket) == TcpPhase::Closed && !p.shut;
            let (socket, eof_seen) = (p.socket, &mut p.eof_seen);
            report_end(
                &mut self.server,
                net,
                now,
                (id, TcpSide::Peer),
                socket,
                closed,
                eof_seen,
            );
        }
    }

    /// Take the core's commands and carry out at once those for relayed UDP sockets (in
    /// their order), so that a relayed datagram queued in the same round as its
    /// allocation (a client that pipelines Allocate, CreatePermission and Send) finds its
    /// socket; the RFC 6062 commands are returned, in their order, for
    /// [`TurnService::run_commands`] after the responses went out (a ConnectionBind
    /// response precedes the raw bytes).
    pub(super) fn bind_relays_first(&mut self, net: &mut N) -> Vec<Command> {
        let mut rest = Vec::new();
        while let Some(cmd) = self.server.poll_command() {
            if let Some(other) = self.relay_socket_command(net, cmd) {
                rest.push(other);
            }
        }
        rest
    }

    /// Carry out `cmd` if it binds or closes a relayed UDP socket; any other command is
    /// handed back.
    fn relay_socket_command(&mut self, net: &mut N, cmd: Command) -> Option<Command> {
        match cmd {
            Command::BindRelay { relayed } => {
                match net.udp_bind(self.host, Some(relayed.ip()), relayed.port()) {
                    Ok((s, _)) => {
                        self.relayed.insert(relayed, s);
                    }
                    Err(_) => self.stats.relay_bind_failures += 1,
                }
                None
            }
            Command::CloseRelay { relayed } => {
                if let Some(s) = self.relayed.remove(&relayed) {
                    net.close(s);
                }
                None
            }
            other => Some(other),
        }
    }

    /// Carry out the core's commands (`first`, then whatever the core queues meanwhile):
    /// relayed UDP sockets, and RFC 6062 (some report back, which may queue more).
    pub(super) fn run_commands(&mut self, net: &mut N, now: Instant, first: Vec<Command>) {
        let mut first = first.into_iter();
        while let Some(cmd) = first.next().or_else(|| self.server.poll_command()) {
            let Some(cmd) = self.relay_socket_command(net, cmd) else {
                continue;
            };
            match cmd {
                Command::Listen { relayed } => {
                    let mut v = Vec::new();
                    for _ in 0..RELAY_LISTEN_SLOTS {
                        match net.tcp_listen(self.host, relayed.port()) {
                            Ok(s) => v.push(s),
                            Err(_) => self.stats.tcp_relay_socket_failures += 1,
                        }
                    }
                    self.tcp_listeners.insert(relayed, v);
                }
                Command::Unlisten { relayed } => {
                    for s in self.tcp_listeners.remove(&relayed).into_iter().flatten() {
                        net.close(s);
                    }
                }
                Command::Connect { id, from, to } => {
                    match net.tcp_connect(self.host, from.port(), to) {
                        Ok((s, _)) => {
                            self.peers.insert(
                                id,
                                PeerConn {
                                    socket: s,
                                    connecting: true,
                                    bound: false,
                                    out: Vec::new(),
                                    shut_pending: false,
                                    shut: false,
                                    eof_seen: false,
                                },
                            );
                        }
                        Err(_) => {
                            self.stats.tcp_relay_socket_failures += 1;
                            self.server
                                .handle_input(now, Input::TcpConnectFailed { id });
                        }
                    }
                }
                Command::Bind { id, server, client } => {
                    if let Some(p) = self.peers.get_mut(&id) {
                        p.bound = true;
                    }
                    if let Some(c) = self
                        .conns
                        .iter_mut()
                        .find(|c| c.local == server && c.remote == Some(client))
                    {
                        c.data = Some(id);
                        c.setup_deadline = None;
                    }
                }
                Command::Send { id, side, data } => match side {
                    TcpSide::Peer => {
                        if let Some(p) = self.peers.get_mut(&id) {
                            p.out.extend_from_slice(&data);
                        }
                    }
                    TcpSide::Client => {
                        if let Some(c) = self.conns.iter_mut().find(|c| c.data == Some(id)) {
                            match c.tls.as_mut() {
                                Some(tls) => {
                                    tls.send(&data);
                                    c.out.extend(tls.take_outgoing());
                                }
                                None => c.out.extend_from_slice(&data),
                            }
                        }
                    }
                },
                Command::Shutdown { id, side } => match side {
                    TcpSide::Peer => {
                        if let Some(p) = self.peers.get_mut(&id) {
                            p.shut_pending = true;
                        }
                    }
                    TcpSide::Client => {
                        if let Some(c) = self.conns.iter_mut().find(|c| c.data == Some(id)) {
                            c.shut_pending = true;
                        }
                    }
                },
                Command::Close { id } => {
                    let deadline = now + CLOSE_LINGER;
                    if let Some(p) = self.peers.remove(&id) {
                        self.lingering.push(Lingering {
                            socket: p.socket,
                            out: p.out,
                            deadline,
                        });
                    }
                    if let Some(i) = self.conns.iter().position(|c| c.data == Some(id)) {
                        let c = self.conns.swap_remove(i);
                        self.lingering.push(Lingering {
                            socket: c.socket,
                            out: c.out,
                            deadline,
                        });
                    }
                }
                // Carried out by `relay_socket_command` above.
                Command::BindRelay { .. } | Command::CloseRelay { .. } => {}
            }
        }
    }
}

/// Tell the core how one side of an RFC 6062 connection ended, if it did: `closed` (reset,
/// failed, or gone without our shutdown) as `TcpClosed`; otherwise the side's FIN as
/// `TcpEof`, once (`eof_seen`).
fn report_end<N: Net>(
    server: &mut relay::turn::TurnServer,
    net: &mut N,
    now: Instant,
    (id, side): (ConnectionId, TcpSide),
    socket: N::Socket,
    closed: bool,
    eof_seen: &mut bool,
) {
    if closed {
        server.handle_input(now, Input::TcpClosed { id, side });
    } else if !*eof_seen && net.tcp_recv_closed(socket) {
        *eof_seen = true;
        server.handle_input(now, Input::TcpEof { id, side });
    }
}
