//! The `turn` service: a thin driver between [`relay::turn::TurnServer`] and the sockets of
//! a host on any [`Net`] — a UDP socket per listening address, a TCP listener on the same
//! port (RFC 8656 §3.1: TURN over TCP, each connection its own 5-tuple, framed with
//! [`relay::turn::stream::Framer`]), and one UDP socket per relayed transport address,
//! bound when the core opens it (in the service's `relay_ports`). With a TLS port, a TCP
//! listener there carries TURN over TLS (RFC 8656 §3.1; [`crate::agents::tls`], its own listening
//! transport address in the core, so its 5-tuples never meet the plain TCP ones).
//!
//! STUN and TURN may share one port, as coturn does: given an RFC 5780 STUN server
//! configuration whose primary address is the TURN listening address, the service becomes
//! one listener that sends Binding requests (first two bytes `0x0001`, RFC 8489 §5/§6;
//! RFC 3489 requests included) to [`relay::stun::Server`] — with CHANGE-REQUEST,
//! OTHER-ADDRESS and RESPONSE-ORIGIN from its alternate sockets — and everything else
//! (TURN methods, Send indications, ChannelData) to the TURN core. Without one, the TURN
//! core answers Binding itself (plain RFC 8489 Binding).
//!
//! RFC 6062 TCP allocations ([`relay::turn::Command`]): a TCP listening slot per
//! relayed address, outgoing connections from the relayed port (`SO_REUSEADDR`/
//! `SO_REUSEPORT` on the kernel fabric), and a client data connection — a stream
//! connection on the TURN port whose ConnectionBind succeeded — that stops being framed
//! and carries raw bytes. An unbound peer connection is not read (the kernel holds its
//! bytes and closes the TCP window, RFC 6062 §5.2). Backpressure instead of drops: one
//! side of a pair is not read while the other side has [`STREAM_BACKLOG`] bytes queued,
//! so each queue holds at most that plus one read. A FIN is passed on as a FIN once the
//! queue towards that side is empty; a reset or error closes both sides. Connections the
//! core closes linger [`CLOSE_LINGER`] to flush what is queued (then are reset).

use crate::agents::net::{Net, NetError, TcpPhase};
use crate::agents::tls::TlsStream;
use crate::run::events::{ServiceLog, debug_record};
use relay::stun::{Server as StunServer, ServerConfig};
use relay::turn::stream::Framer;
use relay::turn::{
    ConnectionId, FiveTuple, Input, TcpSide, Transport, TurnConfig, TurnServer, TurnStats,
};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod tcp_relay;
use tcp_relay::{Lingering, PeerConn};

/// Most bytes queued towards one TCP client before frames are dropped (whole frames only,
/// counted in [`ServiceStats::stream_backlog_drops`]).
pub const STREAM_BACKLOG: usize = 256 * 1024;

/// Most TCP connections at once; further ones are accepted and closed at once.
pub const MAX_CONNECTIONS: usize = 1024;

/// A stream connection without an allocation this long after it opened is closed (so
/// that idle or non-TURN connections cannot hold [`MAX_CONNECTIONS`] slots for ever).
pub const STREAM_SETUP_TIMEOUT: Duration = Duration::from_secs(30);

/// Waiting TCP slots per listening port ([`Net::tcp_listen`] takes one connection per
/// slot; a connection arriving when every slot is taken is reset). RFC 6062 clients open
/// several data connections at once (coturn's uclient -T two within a millisecond).
pub const LISTEN_SLOTS: usize = 8;

/// Waiting slots per RFC 6062 relayed address.
pub const RELAY_LISTEN_SLOTS: usize = 4;

/// How long RFC 6062 data connections the core closed may still flush their queues
/// before they are reset.
pub const CLOSE_LINGER: Duration = Duration::from_secs(2);

/// How the `turn` service is set up.
#[derive(Clone, Debug)]
pub struct TurnServiceConfig {
    /// The TURN core's configuration (listening addresses, relay address and ports,
    /// realm, users, quota).
    pub turn: TurnConfig,
    /// An RFC 5780 STUN server sharing the TURN port (its `primary` must be one of the
    /// TURN listening addresses).
    pub stun: Option<ServerConfig>,
    /// Also accept TURN over TCP on each listening port.
    pub tcp: bool,
    /// Accept TURN over TLS on this port (of the first listening address), with this
    /// server configuration.
    pub tls: Option<(u16, Arc<rustls::ServerConfig>)>,
}

/// What the driver itself counted (the core counts the rest, [`TurnService::stats`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceStats {
    /// TCP connections accepted.
    pub connections: u64,
    /// Connections closed because their bytes were neither STUN nor ChannelData.
    pub framing_errors: u64,
    /// Frames not queued because the connection's backlog was full.
    pub stream_backlog_drops: u64,
    /// Relayed addresses the core opened that could not be bound.
    pub relay_bind_failures: u64,
    /// Connections refused because [`MAX_CONNECTIONS`] were open.
    pub connections_refused: u64,
    /// TLS connections closed for a failed handshake or a bad record.
    pub tls_errors: u64,
    /// Connections closed for getting no allocation within [`STREAM_SETUP_TIMEOUT`].
    pub setup_timeouts: u64,
    /// RFC 6062 relayed addresses that could not listen, or outgoing connections that
    /// could not be started (the core answered 447 for those).
    pub tcp_relay_socket_failures: u64,
}

struct Conn<S> {
    socket: S,
    local: SocketAddr,
    remote: Option<SocketAddr>,
    framer: Framer,
    out: Vec<u8>,
    tls: Option<TlsStream>,
    /// Until when it may stay without an allocation; `None` once it has one.
    setup_deadline: Option<Instant>,
    /// RFC 6062: a client data connection of this pair (raw bytes, no framing).
    data: Option<ConnectionId>,
    /// RFC 6062: a FIN is to follow the queued bytes / was sent / the remote's was seen.
    shut_pending: bool,
    shut: bool,
    eof_seen: bool,
}

impl<S: Copy> Conn<S> {
    /// The connection's transport in the core's 5-tuples (RFC 8656 §3.1).
    fn transport(&self) -> Transport {
        if self.tls.is_some() {
            Transport::Tls
        } else {
            Transport::Tcp
        }
    }

    /// What arrived on the connection, decrypted when it is TLS (the TLS layer's own
    /// records are queued to send); `None` when TLS failed and the connection must close.
    fn receive<N: Net<Socket = S>>(&mut self, net: &mut N) -> Option<Vec<u8>> {
        let bytes = net.tcp_recv(self.socket);
        let Some(tls) = self.tls.as_mut() else {
            return Some(bytes);
        };
        let plain = tls.receive(&bytes).ok();
        self.out.extend(tls.take_outgoing());
        plain
    }
}

/// A TURN server (with an optional RFC 5780 STUN server on the same port) on a host.
pub struct TurnService<N: Net> {
    host: usize,
    server: TurnServer,
    stun: Option<StunServer>,
    /// UDP sockets by local address: TURN listening addresses and STUN alternates.
    udp: BTreeMap<SocketAddr, N::Socket>,
    relayed: BTreeMap<SocketAddr, N::Socket>,
    /// One waiting TCP slot per listening address (and whether it is the TLS one).
    slots: Vec<(SocketAddr, N::Socket, bool)>,
    tls: Option<Arc<rustls::ServerConfig>>,
    conns: Vec<Conn<N::Socket>>,
    /// RFC 6062: the listening slots of each TCP relayed address.
    tcp_listeners: BTreeMap<SocketAddr, Vec<N::Socket>>,
    peers: BTreeMap<ConnectionId, PeerConn<N::Socket>>,
    lingering: Vec<Lingering<N::Socket>>,
    stats: ServiceStats,
    log: ServiceLog,
}

impl<N: Net> TurnService<N> {
    /// Bind every listening socket on `host` and start serving.
    pub fn start(net: &mut N, host: usize, config: TurnServiceConfig) -> Result<Self, String> {
        let plain = config.turn.listen.clone();
        let mut turn = config.turn.clone();
        let tls_addr = match (&config.tls, plain.first()) {
            (Some((port, _)), Some(first)) => {
                let a = SocketAddr::new(first.ip(), *port);
                if plain.contains(&a) {
                    return Err(format!("the TLS port {port} is also the TURN port"));
                }
                turn.listen.push(a);
                Some(a)
            }
            _ => None,
        };
        let server = TurnServer::new(turn).map_err(|e| e.to_string())?;
        let stun = match &config.stun {
            Some(sc) => {
                if !config.turn.listen.contains(&sc.primary) {
                    return Err(format!(
                        "the STUN server at {} shares no address with the TURN server",
                        sc.primary
                    ));
                }
                Some(StunServer::new(sc.clone()).map_err(|e| e.to_string())?)
            }
            None => None,
        };
        let mut addrs: Vec<SocketAddr> = plain.clone();
        if let Some(sc) = &config.stun {
            addrs.extend(sc.listen_addresses());
        }
        let mut udp = BTreeMap::new();
        for addr in addrs {
            if udp.contains_key(&addr) {
                continue;
            }
            let (s, _) = net
                .udp_bind(host, Some(addr.ip()), addr.port())
                .map_err(|e: NetError| format!("UDP {addr}: {e}"))?;
            udp.insert(addr, s);
        }
        let mut slots = Vec::new();
        if config.tcp {
            for addr in &plain {
                for _ in 0..LISTEN_SLOTS {
                    let s = net
                        .tcp_listen(host, addr.port())
                        .map_err(|e| format!("TCP {addr}: {e}"))?;
                    slots.push((*addr, s, false));
                }
            }
        }
        if let Some(a) = tls_addr {
            for _ in 0..LISTEN_SLOTS {
                let s = net
                    .tcp_listen(host, a.port())
                    .map_err(|e| format!("TLS {a}: {e}"))?;
                slots.push((a, s, true));
            }
        }
        Ok(TurnService {
            host,
            server,
            stun,
            udp,
            relayed: BTreeMap::new(),
            slots,
            tls: config.tls.map(|(_, c)| c),
            conns: Vec::new(),
            tcp_listeners: BTreeMap::new(),
            peers: BTreeMap::new(),
            lingering: Vec::new(),
            stats: ServiceStats::default(),
            log: ServiceLog::default(),
        })
    }

    /// The TURN core's counters.
    pub fn stats(&self) -> &TurnStats {
        self.server.stats()
    }

    /// The driver's own counters.
    pub fn service_stats(&self) -> &ServiceStats {
        &self.stats
    }

    /// The UDP addresses listened on (TURN, and the STUN alternates).
    pub fn udp_addresses(&self) -> Vec<SocketAddr> {
        self.udp.keys().copied().collect()
    }

    /// The core's next timer, or a stream connection's setup deadline.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.conns
            .iter()
            .filter_map(|c| c.setup_deadline)
            .chain(self.lingering.iter().map(|l| l.deadline))
            .chain(self.server.poll_timeout())
            .min()
    }

    /// The RFC 6062 counters of the core.
    pub fn tcp_stats(&self) -> &relay::turn::TcpRelayStats {
        self.server.tcp_stats()
    }

    /// Whether a datagram on `local` belongs to the RFC 5780 STUN server: everything on a
    /// STUN-only socket, and Binding requests on a shared one.
    fn for_stun(&self, local: SocketAddr, data: &[u8]) -> bool {
        self.stun.is_some()
            && (!self.server.config().listen.contains(&local)
                || relay::demux::is_binding_request(data))
    }

    /// Read what arrived, run timers, send what follows.
    pub fn poll(&mut self, net: &mut N) {
        let now = net.now();
        self.server.handle_timeout(now);
        let udp: Vec<(SocketAddr, N::Socket)> = self.udp.iter().map(|(a, s)| (*a, *s)).collect();
        for (local, s) in udp {
            while let Some((from, data)) = net.udp_recv(s) {
                if self.for_stun(local, &data) {
                    if let Some(stun) = self.stun.as_mut() {
                        stun.handle_input(now, local, from, &data);
                    }
                } else {
                    self.server
                        .handle_input(now, Input::udp(local, from, &data));
                }
            }
        }
        let relayed: Vec<(SocketAddr, N::Socket)> =
            self.relayed.iter().map(|(a, s)| (*a, *s)).collect();
        for (local, s) in relayed {
            while let Some((from, data)) = net.udp_recv(s) {
                self.server
                    .handle_input(now, Input::udp(local, from, &data));
            }
        }
        self.accept(net, now);
        self.accept_relayed(net, now);
        self.read_streams(net, now);
        self.read_peers(net, now);
        self.flush(net, now);
    }

    /// Move connected TCP slots to the connection list and open fresh slots (a port whose
    /// fresh slot cannot be opened stops accepting).
    fn accept(&mut self, net: &mut N, now: Instant) {
        let mut i = 0;
        while i < self.slots.len() {
            let (addr, s, is_tls) = self.slots[i];
            if net.tcp_state(s) == TcpPhase::Listening {
                i += 1;
                continue;
            }
            match net.tcp_listen(self.host, addr.port()) {
                Ok(fresh) => {
                    self.slots[i].1 = fresh;
                    i += 1;
                }
                Err(_) => {
                    self.slots.remove(i);
                }
            }
            if self.conns.len() >= MAX_CONNECTIONS {
                self.stats.connections_refused += 1;
                net.close(s);
                continue;
            }
            let tls = match (&self.tls, is_tls) {
                (Some(c), true) => match TlsStream::server(c) {
                    Ok(t) => Some(t),
                    Err(_) => {
                        self.stats.tls_errors += 1;
                        net.close(s);
                        continue;
                    }
                },
                _ => None,
            };
            self.stats.connections += 1;
            self.conns.push(Conn {
                socket: s,
                local: addr,
                remote: None,
                framer: Framer::new(),
                out: Vec::new(),
                tls,
                setup_deadline: Some(now + STREAM_SETUP_TIMEOUT),
                data: None,
                shut_pending: false,
                shut: false,
                eof_seen: false,
            });
        }
    }

    fn read_streams(&mut self, net: &mut N, now: Instant) {
        let mut i = 0;
        while i < self.conns.len() {
            if let Some(id) = self.conns[i].data {
                self.read_data_conn(net, now, i, id);
                i += 1;
                continue;
            }
            let c = &mut self.conns[i];
            let phase = net.tcp_state(c.socket);
            if c.remote.is_none() {
                c.remote = net.tcp_remote(c.socket);
            }
            let mut close = matches!(phase, TcpPhase::Closing | TcpPhase::Closed);
            if let Some(remote) = c.remote {
                let bytes = c.receive(net).unwrap_or_else(|| {
                    self.stats.tls_errors += 1;
                    close = true;
                    Vec::new()
                });
                c.framer.push(&bytes);
                let transport = c.transport();
                loop {
                    match c.framer.next_frame() {
                        None => break,
                        Some(Ok(frame)) => {
                            self.server.handle_input(
                                now,
                                Input::Packet {
                                    transport,
                                    local: c.local,
                                    remote,
                                    data: frame,
                                },
                            );
                            // RFC 6062 §5.4: after a ConnectionBind the rest is raw bytes.
                            if let Some(id) = self.server.tcp_binding(c.local, remote) {
                                c.data = Some(id);
                                c.setup_deadline = None;
                                let rest = c.framer.take_rest();
                                self.server.handle_input(
                                    now,
                                    Input::TcpData {
                                        id,
                                        side: TcpSide::Client,
                                        data: &rest,
                                    },
                                );
                                // Close states are handled by the raw path from now on.
                                close = false;
                                break;
                            }
                        }
                        Some(Err(_)) => {
                            self.stats.framing_errors += 1;
                            close = true;
                            break;
                        }
                    }
                }
            }
            if c.data.is_some() {
                // A client data connection now: no setup deadline.
            } else if let (Some(d), Some(remote)) = (c.setup_deadline, c.remote) {
                let ft = FiveTuple {
                    transport: c.transport(),
                    client: remote,
                    server: c.local,
                };
                if self.server.has_allocation(&ft) {
                    c.setup_deadline = None;
                } else if now >= d {
                    self.stats.setup_timeouts += 1;
                    close = true;
                }
            } else if c.setup_deadline.is_some_and(|d| now >= d) {
                self.stats.setup_timeouts += 1;
                close = true;
            }
            if close {
                let c = self.conns.swap_remove(i);
                if let Some(remote) = c.remote {
                    self.server.handle_input(
                        now,
                        Input::ConnectionClosed {
                            transport: c.transport(),
                            local: c.local,
                            remote,
                        },
                    );
                }
                net.close(c.socket);
            } else {
                i += 1;
            }
        }
    }

    /// Send what the cores queued; bind and close relayed sockets as told.
    fn flush(&mut self, net: &mut N, now: Instant) {
        while let Some(ev) = self.server.poll_event() {
            self.log.push(now, debug_record("turn", &ev));
        }
        if let Some(stun) = self.stun.as_mut() {
            while let Some(t) = stun.poll_transmit() {
                if let Some(&s) = self.udp.get(&t.from) {
                    // A full send buffer drops the answer, as a congested socket would.
                    let _ = net.udp_send(s, t.to, &t.data);
                }
            }
            while let Some(e) = stun.poll_event() {
                self.log.push(now, debug_record("stun", &e));
            }
        }
        // Relayed sockets first (a relayed datagram of this round needs its socket), then
        // the responses (a ConnectionBind response precedes the raw bytes), then the RFC 6062
        // commands, then what those made the core answer.
        let tcp_commands = self.bind_relays_first(net);
        self.queue_transmits(net);
        self.run_commands(net, now, tcp_commands);
        self.queue_transmits(net);
        self.write_streams(net, now);
    }

    /// Send the core's datagrams; queue its stream transmits on their connections.
    fn queue_transmits(&mut self, net: &mut N) {
        while let Some(t) = self.server.poll_transmit() {
            match t.transport {
                Transport::Udp => {
                    let s = self.udp.get(&t.from).or_else(|| self.relayed.get(&t.from));
                    if let Some(&s) = s {
                        let _ = net.udp_send(s, t.to, &t.data);
                    }
                }
                Transport::Tcp | Transport::Tls => {
                    if let Some(c) = self
                        .conns
                        .iter_mut()
                        .find(|c| c.local == t.from && c.remote == Some(t.to))
                    {
                        if c.out.len() + t.data.len() > STREAM_BACKLOG {
                            self.stats.stream_backlog_drops += 1;
                        } else if let Some(tls) = c.tls.as_mut() {
                            tls.send(&t.data);
                            c.out.extend(tls.take_outgoing());
                        } else {
                            c.out.extend_from_slice(&t.data);
                        }
                    }
                }
            }
        }
    }

    /// Write what is queued on stream connections (and FINs after it).
    fn write_streams(&mut self, net: &mut N, now: Instant) {
        for c in &mut self.conns {
            if !c.out.is_empty()
                && let Ok(n) = net.tcp_send(c.socket, &c.out)
            {
                c.out.drain(..n);
            }
            if c.shut_pending && c.out.is_empty() {
                c.shut_pending = false;
                c.shut = true;
                net.tcp_shutdown(c.socket);
            }
        }
        for p in self.peers.values_mut() {
            if !p.out.is_empty()
                && let Ok(n) = net.tcp_send(p.socket, &p.out)
            {
                p.out.drain(..n);
            }
            if p.shut_pending && p.out.is_empty() {
                p.shut_pending = false;
                p.shut = true;
                net.tcp_shutdown(p.socket);
            }
        }
        self.lingering.retain_mut(|l| {
            if !l.out.is_empty()
                && let Ok(n) = net.tcp_send(l.socket, &l.out)
            {
                l.out.drain(..n);
            }
            let done = now >= l.deadline || net.tcp_state(l.socket) == TcpPhase::Closed;
            if done {
                net.close(l.socket);
            } else if l.out.is_empty() {
                // Everything handed to the stack: a FIN, then the stack finishes.
                net.tcp_shutdown(l.socket);
            }
            !done
        });
    }

    /// Close every socket.
    pub fn stop(&mut self, net: &mut N) {
        for (_, s) in std::mem::take(&mut self.udp) {
            net.close(s);
        }
        for (_, s) in std::mem::take(&mut self.relayed) {
            net.close(s);
        }
        for (_, s, _) in self.slots.drain(..) {
            net.close(s);
        }
        for c in self.conns.drain(..) {
            net.close(c.socket);
        }
        for s in std::mem::take(&mut self.tcp_listeners)
            .into_values()
            .flatten()
        {
            net.close(s);
        }
        for (_, p) in std::mem::take(&mut self.peers) {
            net.close(p.socket);
        }
        for l in self.lingering.drain(..) {
            net.close(l.socket);
        }
    }
}

crate::agents::net::service_agent!(TurnService, "turn");
