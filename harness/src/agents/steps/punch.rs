//! The `punch` step: UDP hole punching (RFC 5128 §3.3) or TCP simultaneous open (RFC 5128
//! §3.4) between two hosts, through a built-in rendezvous, exactly as SCENARIO-FORMAT.md
//! defines it:
//!
//! 1. each peer registers with the rendezvous from its punch socket until the rendezvous
//!    tells it the other's server-reflexive address:port;
//! 2. both send probes there every 100 ms and answer every probe they receive, to its
//!    source, until `timeout`;
//! 3. `connected` = each side received at least one datagram (TCP: data over an established
//!    connection) from the other. No port prediction, no local addresses.
//!
//! The step ends as soon as both sides are connected, or at the timeout.

use crate::agents::net::{Net, NetError, TcpPhase};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How often registrations and probes are (re)sent.
pub const INTERVAL: Duration = Duration::from_millis(100);

/// Transport of a punch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PunchProtocol {
    /// UDP hole punching.
    Udp,
    /// TCP simultaneous open.
    Tcp,
}

impl PunchProtocol {
    /// Every value as a scenario writes it (a punch step's `protocol:`).
    pub const VALUES: &'static [&'static str] = &["udp", "tcp"];

    /// The protocol for a scenario keyword (exact, lower case).
    pub fn from_keyword(s: &str) -> Option<PunchProtocol> {
        match s {
            "udp" => Some(PunchProtocol::Udp),
            "tcp" => Some(PunchProtocol::Tcp),
            _ => None,
        }
    }
}

/// What a punch found out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PunchOutcome {
    /// Both sides received from each other.
    pub connected: bool,
    /// Per peer: the other's address as the rendezvous saw it.
    pub learned: [Option<SocketAddr>; 2],
    /// Per peer: whether it received from the other.
    pub received: [bool; 2],
    /// Time from the step's start until both were connected.
    pub time_to_connect: Option<Duration>,
}

struct Peer<S> {
    host: usize,
    /// UDP: the punch socket. TCP: the registration connection.
    socket: S,
    port: u16,
    peer_addr: Option<SocketAddr>,
    received: bool,
    /// TCP: the connection to the peer.
    direct: Option<S>,
    rx_buf: Vec<u8>,
}

/// A running punch (rendezvous plus both peers).
pub struct Punch<N: Net> {
    proto: PunchProtocol,
    started: Instant,
    deadline: Instant,
    next_tick: Instant,
    rendezvous: Vec<N::Socket>,
    rendezvous_addr: SocketAddr,
    /// Rendezvous side: what it saw of each peer (UDP source, or TCP connection + remote).
    seen: [Option<SocketAddr>; 2],
    seen_conn: [Option<N::Socket>; 2],
    told: [bool; 2],
    peers: [Peer<N::Socket>; 2],
    connected_at: Option<Instant>,
    done: bool,
    seq: u64,
}

fn msg_reg(id: usize) -> Vec<u8> {
    format!("REG {id}\n").into_bytes()
}

impl<N: Net> Punch<N> {
    /// Start a punch between hosts `a` and `b` via the rendezvous on host `r`.
    pub fn start(
        net: &mut N,
        proto: PunchProtocol,
        [a, b]: [usize; 2],
        r: usize,
        timeout: Duration,
    ) -> Result<Punch<N>, NetError> {
        let now = net.now();
        let r_addr = *net.host_addresses(r).first().ok_or(NetError::NoHost(r))?;
        let (rendezvous, r_port) = match proto {
            PunchProtocol::Udp => {
                let (s, p) = net.udp_bind(r, None, 0)?;
                (vec![s], p)
            }
            PunchProtocol::Tcp => {
                // Two listening sockets on one port: each takes one connection (the
                // listen model of `Net`), and two peers register.
                let port = net.ephemeral_port(r, true)?;
                let s1 = net.tcp_listen(r, port)?;
                let s2 = net.tcp_listen(r, port)?;
                (vec![s1, s2], port)
            }
        };
        let rendezvous_addr = SocketAddr::new(r_addr, r_port);
        let mut mk = |host: usize| -> Result<Peer<N::Socket>, NetError> {
            let (socket, port) = match proto {
                PunchProtocol::Udp => net.udp_bind(host, None, 0)?,
                PunchProtocol::Tcp => net.tcp_connect(host, 0, rendezvous_addr)?,
            };
            Ok(Peer {
                host,
                socket,
                port,
                peer_addr: None,
                received: false,
                direct: None,
                rx_buf: Vec::new(),
            })
        };
        let peers = [mk(a)?, mk(b)?];
        Ok(Punch {
            proto,
            started: now,
            deadline: now + timeout,
            next_tick: now,
            rendezvous,
            rendezvous_addr,
            seen: [None, None],
            seen_conn: [None, None],
            told: [false, false],
            peers,
            connected_at: None,
            done: false,
            seq: 0,
        })
    }

    /// When this punch next needs [`Punch::poll`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.done {
            None
        } else {
            Some(self.next_tick.min(self.deadline))
        }
    }

    /// Whether the punch has finished.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The outcome so far.
    pub fn outcome(&self) -> PunchOutcome {
        PunchOutcome {
            connected: self.peers[0].received && self.peers[1].received,
            learned: [self.peers[0].peer_addr, self.peers[1].peer_addr],
            received: [self.peers[0].received, self.peers[1].received],
            time_to_connect: self.connected_at.map(|t| t - self.started),
        }
    }

    /// Handle whatever arrived and whatever is due at `net.now()`.
    pub fn poll(&mut self, net: &mut N) {
        if self.done {
            return;
        }
        let now = net.now();
        match self.proto {
            PunchProtocol::Udp => self.poll_udp(net),
            PunchProtocol::Tcp => self.poll_tcp(net),
        }
        if self.connected_at.is_none() && self.peers[0].received && self.peers[1].received {
            self.connected_at = Some(now);
        }
        let tick = now >= self.next_tick;
        if tick {
            self.next_tick = now + INTERVAL;
            self.seq += 1;
        }
        if self.connected_at.is_some() || now >= self.deadline {
            self.finish(net);
            return;
        }
        if tick {
            match self.proto {
                PunchProtocol::Udp => self.tick_udp(net),
                PunchProtocol::Tcp => self.tick_tcp(net),
            }
        }
    }

    fn finish(&mut self, net: &mut N) {
        self.done = true;
        for s in self.rendezvous.drain(..) {
            net.close(s);
        }
        for c in self.seen_conn.iter_mut().filter_map(Option::take) {
            net.close(c);
        }
        for p in &mut self.peers {
            net.close(p.socket);
            if let Some(d) = p.direct.take() {
                net.close(d);
            }
        }
    }

    fn poll_udp(&mut self, net: &mut N) {
        // Rendezvous: learn sources, answer with the other's address once both are known.
        while let Some((from, data)) = net.udp_recv(self.rendezvous[0]) {
            if let Some(id) = parse_id(&data, "REG ") {
                self.seen[id] = Some(from);
                if let Some(other) = self.seen[1 - id] {
                    let _ = net.udp_send(
                        self.rendezvous[0],
                        from,
                        format!("PEER {other}\n").as_bytes(),
                    );
                }
            }
        }
        for i in 0..2 {
            while let Some((from, data)) = net.udp_recv(self.peers[i].socket) {
                if from == self.rendezvous_addr {
                    if let Some(addr) = parse_peer(&data) {
                        self.peers[i].peer_addr = Some(addr);
                    }
                } else if let Some(id) = parse_id(&data, "PROBE ") {
                    if id == 1 - i {
                        self.peers[i].received = true;
                        let ack = format!("ACK {i}\n");
                        let _ = net.udp_send(self.peers[i].socket, from, ack.as_bytes());
                    }
                } else if parse_id(&data, "ACK ") == Some(1 - i) {
                    self.peers[i].received = true;
                }
            }
        }
    }

    fn tick_udp(&mut self, net: &mut N) {
        for i in 0..2 {
            let p = &self.peers[i];
            match p.peer_addr {
                None => {
                    let _ = net.udp_send(p.socket, self.rendezvous_addr, &msg_reg(i));
                }
                Some(addr) => {
                    let probe = format!("PROBE {i} {}\n", self.seq);
                    let _ = net.udp_send(p.socket, addr, probe.as_bytes());
                }
            }
        }
    }

    fn poll_tcp(&mut self, net: &mut N) {
        // Rendezvous: each listening socket takes one registration connection.
        for k in 0..self.rendezvous.len() {
            let s = self.rendezvous[k];
            if net.tcp_state(s) != TcpPhase::Established {
                continue;
            }
            let data = net.tcp_recv(s);
            if let Some(id) = parse_id(&data, "REG ") {
                self.seen[id] = net.tcp_remote(s);
                self.seen_conn[id] = Some(s);
            }
        }
        for id in 0..2 {
            if !self.told[id]
                && let (Some(conn), Some(other)) = (self.seen_conn[id], self.seen[1 - id])
                && net
                    .tcp_send(conn, format!("PEER {other}\n").as_bytes())
                    .unwrap_or(0)
                    > 0
            {
                self.told[id] = true;
            }
        }
        for i in 0..2 {
            let reg = self.peers[i].socket;
            if self.peers[i].peer_addr.is_none() {
                let data = net.tcp_recv(reg);
                self.peers[i].rx_buf.extend_from_slice(&data);
                if let Some(addr) = parse_peer(&self.peers[i].rx_buf) {
                    self.peers[i].peer_addr = Some(addr);
                    self.peers[i].rx_buf.clear();
                }
            }
            if let Some(d) = self.peers[i].direct
                && net.tcp_state(d) == TcpPhase::Established
            {
                let data = net.tcp_recv(d);
                if parse_id(&data, "PROBE ") == Some(1 - i) {
                    self.peers[i].received = true;
                }
            }
        }
    }

    fn tick_tcp(&mut self, net: &mut N) {
        for i in 0..2 {
            let reg = self.peers[i].socket;
            match self.peers[i].peer_addr {
                None => {
                    if net.tcp_state(reg) == TcpPhase::Established && self.seen_conn[i].is_none() {
                        let _ = net.tcp_send(reg, &msg_reg(i));
                    }
                }
                Some(addr) => {
                    let d = match self.peers[i].direct {
                        Some(d) if net.tcp_state(d) != TcpPhase::Closed => d,
                        other => {
                            // (Re)open the simultaneous-open attempt from the punch port.
                            if let Some(old) = other {
                                net.close(old);
                            }
                            match net.tcp_connect(self.peers[i].host, self.peers[i].port, addr) {
                                Ok((d, _)) => {
                                    self.peers[i].direct = Some(d);
                                    d
                                }
                                Err(_) => continue,
                            }
                        }
                    };
                    if net.tcp_state(d) == TcpPhase::Established {
                        let probe = format!("PROBE {i} {}\n", self.seq);
                        let _ = net.tcp_send(d, probe.as_bytes());
                    }
                }
            }
        }
    }
}

crate::agents::net::agent_by_inherent_methods!(Punch);

fn parse_id(data: &[u8], prefix: &str) -> Option<usize> {
    let s = std::str::from_utf8(data).ok()?;
    let rest = s.strip_prefix(prefix)?;
    match rest.split_whitespace().next()? {
        "0" => Some(0),
        "1" => Some(1),
        _ => None,
    }
}

fn parse_peer(data: &[u8]) -> Option<SocketAddr> {
    let s = std::str::from_utf8(data).ok()?;
    let line = s.lines().find_map(|l| l.strip_prefix("PEER "))?;
    line.trim().parse().ok()
}
