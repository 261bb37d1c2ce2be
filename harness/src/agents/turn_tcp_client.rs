//! An RFC 6062 relay check: [`TcpRelayCheck`] drives two [`relay::turn::TurnClient`]s with
//! TCP allocations on one server, the way coturn's `turnutils_uclient -T` does — client A
//! connects to B's relayed address (Connect, RFC 6062 §4.3), B is told
//! (ConnectionAttempt, §4.4), each binds a new data connection (ConnectionBind), then A
//! sends `count` messages as raw bytes, B echoes every byte, and A counts the messages
//! that came back intact. Over TCP or TLS, on any [`Net`]. Used by
//! `pinhole turn-client --tcp-relay` and by tests on the virtual fabric.

use super::net::{Agent, Net, NetError, TcpPhase};
use super::tls::{TlsStream, any_server_client};
use super::turn_client::SEND_INTERVAL;
use relay::turn::server::tcp_relay::TRANSPORT_TCP;
use relay::turn::stream::Framer;
use relay::turn::{ClientConfig, ClientEvent, ConnectionId, Transport, TurnClient, attrs};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// What a [`TcpRelayCheck`] does.
#[derive(Clone, Debug)]
pub struct TcpRelayCheckConfig {
    /// The TURN server (its TCP or TLS port).
    pub server: SocketAddr,
    /// Long-term credentials.
    pub username: String,
    /// Long-term credentials.
    pub password: String,
    /// TLS on every connection (control and data); any server certificate is accepted.
    pub tls: bool,
    /// Messages to send.
    pub count: u32,
    /// Bytes of each (at least 4: a sequence number leads).
    pub size: usize,
    /// Give up this long after the start.
    pub timeout: Duration,
    /// Seed of the clients' transaction ids.
    pub seed: u64,
}

/// How a check ended.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TcpRelayOutcome {
    /// The relayed addresses of A and B, once allocated.
    pub relayed: [Option<SocketAddr>; 2],
    /// The CONNECTION-IDs A (Connect) and B (ConnectionAttempt) got.
    pub ids: [Option<ConnectionId>; 2],
    /// Messages sent by A.
    pub sent: u32,
    /// Messages echoed back intact.
    pub received: u32,
    /// Why it stopped early, if it did.
    pub error: Option<String>,
}

impl TcpRelayOutcome {
    /// Every message came back.
    pub fn passed(&self) -> bool {
        self.error.is_none() && self.sent > 0 && self.received == self.sent
    }
}

/// One TCP (or TLS) connection to the server: STUN frames for its client until a
/// ConnectionBind succeeded, raw bytes after.
struct Link<S> {
    socket: S,
    tls: Option<TlsStream>,
    up: bool,
    out: Vec<u8>,
    framer: Framer,
    client: TurnClient,
    raw: bool,
    raw_in: Vec<u8>,
}

impl<S: Copy> Link<S> {
    fn open<N: Net<Socket = S>>(
        net: &mut N,
        host: usize,
        config: &TcpRelayCheckConfig,
        seed: u64,
    ) -> Result<Self, NetError> {
        let (socket, _) = net.tcp_connect(host, 0, config.server)?;
        Ok(Link {
            socket,
            tls: None,
            up: false,
            out: Vec::new(),
            framer: Framer::new(),
            client: TurnClient::new(ClientConfig {
                server: config.server,
                username: config.username.clone(),
                password: config.password.clone(),
                seed,
                transport: Transport::Tcp,
            }),
            raw: false,
            raw_in: Vec::new(),
        })
    }

    /// Read what arrived; the client's events (a ConnectionBound switches to raw bytes,
    /// whatever followed it included). `Err` when the connection failed.
    fn receive<N: Net<Socket = S>>(
        &mut self,
        net: &mut N,
        now: Instant,
        tls: bool,
        server: SocketAddr,
    ) -> Result<Vec<ClientEvent>, String> {
        let state = net.tcp_state(self.socket);
        if !self.up {
            match state {
                TcpPhase::Established => {
                    if tls {
                        let t = any_server_client()
                            .and_then(|c| TlsStream::client(&c, &server.ip().to_string()))
                            .map_err(|e| format!("TLS: {e}"))?;
                        self.tls = Some(t);
                    }
                    self.up = true;
                }
                TcpPhase::Connecting => return Ok(Vec::new()),
                _ => return Err(format!("TCP connection to {server} failed")),
            }
        }
        let mut bytes = net.tcp_recv(self.socket);
        if let Some(t) = self.tls.as_mut() {
            bytes = t
                .receive(&bytes)
                .map_err(|e| format!("TLS with {server}: {e}"))?;
            self.out.extend(t.take_outgoing());
        }
        let mut events = Vec::new();
        if self.raw {
            self.raw_in.extend_from_slice(&bytes);
        } else {
            self.framer.push(&bytes);
            while let Some(frame) = self.framer.next_frame() {
                let f = frame.map_err(|e| format!("the server's stream: {e}"))?;
                self.client.handle_input(now, server, f);
                while let Some(ev) = self.client.poll_event() {
                    if matches!(ev, ClientEvent::ConnectionBound { .. }) {
                        self.raw = true;
                    }
                    events.push(ev);
                }
                if self.raw {
                    self.raw_in.extend(self.framer.take_rest());
                    break;
                }
            }
        }
        self.client.handle_timeout(now);
        events.extend(std::iter::from_fn(|| self.client.poll_event()));
        if matches!(state, TcpPhase::Closing | TcpPhase::Closed) {
            return Err(format!("{server} closed a connection"));
        }
        Ok(events)
    }

    fn send_raw(&mut self, data: &[u8]) {
        match self.tls.as_mut() {
            Some(t) => {
                t.send(data);
                self.out.extend(t.take_outgoing());
            }
            None => self.out.extend_from_slice(data),
        }
    }

    fn flush<N: Net<Socket = S>>(&mut self, net: &mut N) {
        if !self.up {
            return;
        }
        while let Some(t) = self.client.poll_transmit() {
            self.send_raw(&t.data);
        }
        if !self.out.is_empty()
            && let Ok(n) = net.tcp_send(self.socket, &self.out)
        {
            self.out.drain(..n);
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Allocating,
    Permitting,
    Connecting,
    Binding,
    Sending,
    Done,
}

/// The check (an [`Agent`]).
pub struct TcpRelayCheck<N: Net> {
    config: TcpRelayCheckConfig,
    host: usize,
    /// Control connections of A and B, then their data connections.
    ctl: [Link<N::Socket>; 2],
    data: [Option<Link<N::Socket>>; 2],
    allocated: [bool; 2],
    permitted: [bool; 2],
    phase: Phase,
    deadline: Instant,
    next_send: Instant,
    outcome: TcpRelayOutcome,
}

impl<N: Net> TcpRelayCheck<N> {
    /// Open both control connections on `host` and start.
    pub fn start(net: &mut N, host: usize, config: TcpRelayCheckConfig) -> Result<Self, NetError> {
        let now = net.now();
        let a = Link::open(net, host, &config, config.seed)?;
        let b = Link::open(net, host, &config, config.seed ^ 0xB)?;
        let mut ctl = [a, b];
        for c in &mut ctl {
            c.client
                .allocate(now, None, vec![attrs::requested_transport(TRANSPORT_TCP)]);
        }
        Ok(TcpRelayCheck {
            deadline: now + config.timeout,
            next_send: now,
            host,
            ctl,
            data: [None, None],
            allocated: [false; 2],
            permitted: [false; 2],
            phase: Phase::Allocating,
            outcome: TcpRelayOutcome::default(),
            config,
        })
    }

    /// The result so far (final once [`Agent::is_done`]).
    pub fn outcome(&self) -> &TcpRelayOutcome {
        &self.outcome
    }

    fn fail(&mut self, why: String) {
        if self.outcome.error.is_none() {
            self.outcome.error = Some(why);
        }
        self.phase = Phase::Done;
    }

    fn message(&self, seq: u32) -> Vec<u8> {
        let mut m = vec![0xa5; self.config.size.max(4)];
        m[..4].copy_from_slice(&seq.to_be_bytes());
        m
    }

    fn handle(&mut self, net: &mut N, now: Instant, who: usize, ev: ClientEvent) {
        match ev {
            ClientEvent::Allocated { relayed, .. } => {
                self.outcome.relayed[who] = Some(relayed);
                self.allocated[who] = true;
                if self.allocated == [true, true]
                    && let [Some(ra), Some(rb)] = self.outcome.relayed
                {
                    self.phase = Phase::Permitting;
                    self.ctl[0].client.create_permission(now, vec![rb]);
                    self.ctl[1].client.create_permission(now, vec![ra]);
                }
            }
            ClientEvent::PermissionCreated { .. } => {
                self.permitted[who] = true;
                if self.permitted == [true, true]
                    && let Some(rb) = self.outcome.relayed[1]
                {
                    self.phase = Phase::Connecting;
                    self.ctl[0].client.connect(now, rb);
                }
            }
            ClientEvent::Connected { id, .. } if who == 0 => self.bind(net, now, 0, id),
            ClientEvent::ConnectionAttempt { id, .. } if who == 1 => self.bind(net, now, 1, id),
            ClientEvent::Failed {
                method,
                code,
                reason,
            } => self.fail(format!("request 0x{method:03x} failed: {code} {reason}")),
            ClientEvent::TimedOut { method } => {
                self.fail(format!("request 0x{method:03x} got no answer"))
            }
            _ => {}
        }
    }

    /// Open the data connection of A or B and bind it to `id`.
    fn bind(&mut self, net: &mut N, now: Instant, who: usize, id: ConnectionId) {
        self.outcome.ids[who] = Some(id);
        self.phase = Phase::Binding;
        let seed = self.config.seed ^ (0xD0 + who as u64);
        match Link::open(net, self.host, &self.config, seed) {
            Ok(mut l) => {
                l.client.adopt_credentials(&self.ctl[who].client);
                l.client.connection_bind(now, id);
                self.data[who] = Some(l);
            }
            Err(e) => self.fail(format!("data connection: {e}")),
        }
    }

    fn poll_inner(&mut self, net: &mut N) {
        let now = net.now();
        let (tls, server) = (self.config.tls, self.config.server);
        for who in 0..2 {
            let events = match self.ctl[who].receive(net, now, tls, server) {
                Ok(e) => e,
                Err(e) => return self.fail(e),
            };
            for ev in events {
                self.handle(net, now, who, ev);
            }
            let events = match self.data[who].as_mut() {
                Some(d) => match d.receive(net, now, tls, server) {
                    Ok(e) => e,
                    Err(e) => return self.fail(e),
                },
                None => Vec::new(),
            };
            for ev in events {
                self.handle(net, now, who, ev);
            }
        }
        if self.phase == Phase::Done {
            return;
        }
        let bound = |d: &Option<Link<N::Socket>>| d.as_ref().is_some_and(|l| l.raw);
        if self.phase == Phase::Binding && bound(&self.data[0]) && bound(&self.data[1]) {
            self.phase = Phase::Sending;
            self.next_send = now;
        }
        if self.phase == Phase::Sending {
            // B echoes every byte; A sends on schedule and counts intact messages.
            if let Some(b) = self.data[1].as_mut() {
                let echo = std::mem::take(&mut b.raw_in);
                b.send_raw(&echo);
            }
            while self.outcome.sent < self.config.count && self.next_send <= now {
                let m = self.message(self.outcome.sent);
                if let Some(a) = self.data[0].as_mut() {
                    a.send_raw(&m);
                }
                self.outcome.sent += 1;
                self.next_send += SEND_INTERVAL;
            }
            let size = self.config.size.max(4);
            let mut received = 0;
            if let Some(a) = self.data[0].as_ref() {
                for (i, chunk) in a.raw_in.chunks_exact(size).enumerate() {
                    if *chunk == self.message(i as u32)[..] {
                        received += 1;
                    }
                }
            }
            self.outcome.received = received;
        }
        for l in self.ctl.iter_mut().chain(self.data.iter_mut().flatten()) {
            l.flush(net);
        }
        if self.outcome.sent == self.config.count && self.outcome.received == self.config.count {
            self.phase = Phase::Done;
        } else if now >= self.deadline {
            let why = match self.phase {
                Phase::Allocating => "no answer to Allocate",
                Phase::Permitting => "still installing the permissions",
                Phase::Connecting => "no answer to Connect or no ConnectionAttempt",
                Phase::Binding => "still binding the data connections",
                _ => "not every message came back",
            };
            self.fail(format!("timed out after {:?}: {why}", self.config.timeout));
        }
    }

    /// When the check next needs a poll.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.phase == Phase::Done {
            return None;
        }
        let mut t = self.deadline;
        for l in self.ctl.iter().chain(self.data.iter().flatten()) {
            if let Some(c) = l.client.poll_timeout() {
                t = t.min(c);
            }
        }
        if self.phase == Phase::Sending && self.outcome.sent < self.config.count {
            t = t.min(self.next_send);
        }
        Some(t)
    }
}

impl<N: Net> Agent<N> for TcpRelayCheck<N> {
    fn poll(&mut self, net: &mut N) {
        if self.phase == Phase::Done {
            return;
        }
        self.poll_inner(net);
        if self.phase == Phase::Done {
            for l in self.ctl.iter().chain(self.data.iter().flatten()) {
                net.close(l.socket);
            }
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        TcpRelayCheck::poll_timeout(self)
    }

    fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }
}
