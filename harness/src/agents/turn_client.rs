//! A TURN relay check: [`TurnCheck`] drives [`relay::turn::TurnClient`] over UDP or TCP
//! on any [`Net`] — Allocate, then a permission (CreatePermission, or ChannelBind when
//! channels are asked for), then `count` datagrams to a UDP echo peer through the relay,
//! counting the echoes that come back. Over TCP it can go through an HTTP CONNECT proxy
//! (RFC 9110 §9.3.6, Basic credentials) first. [`UdpEcho`] is such a peer. Used by
//! `pinhole turn-client` (real sockets) and by tests on the virtual fabric.

use super::net::{Agent, Net, NetError, TcpPhase};
use super::services::http_proxy::basic_credentials;
use super::tls::{TlsStream, any_server_client};
use relay::turn::stream::Framer;
use relay::turn::{ClientConfig, ClientEvent, Transport, TurnClient};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Gap between two datagrams of a check.
pub const SEND_INTERVAL: Duration = Duration::from_millis(5);

/// The first channel number a check binds (RFC 8656 §12: 0x4000–0x4FFF).
pub const CHANNEL: u16 = 0x4000;

/// What a [`TurnCheck`] does.
#[derive(Clone, Debug)]
pub struct TurnCheckConfig {
    /// The TURN server.
    pub server: SocketAddr,
    /// UDP or TCP to the server.
    pub transport: Transport,
    /// Long-term credentials.
    pub username: String,
    /// Long-term credentials.
    pub password: String,
    /// The echo peer.
    pub peer: SocketAddr,
    /// ChannelBind and ChannelData instead of CreatePermission and Send indications.
    pub channel: bool,
    /// Datagrams to send.
    pub count: u32,
    /// Payload size of each (at least 4: a sequence number leads).
    pub size: usize,
    /// Give up this long after the start.
    pub timeout: Duration,
    /// Seed of the client's transaction ids.
    pub seed: u64,
    /// Reach the server (TCP only) through this HTTP CONNECT proxy.
    pub proxy: Option<ProxyVia>,
    /// TLS on the TCP connection (TURN over TLS, RFC 8656 §3.1); any server certificate
    /// is accepted unless [`TurnCheck::start_with_tls`] gives the roots to trust.
    pub tls: bool,
}

/// An HTTP CONNECT proxy on the way to the TURN server.
#[derive(Clone, Debug)]
pub struct ProxyVia {
    /// The proxy.
    pub address: SocketAddr,
    /// Basic credentials (user, password), if the proxy wants them.
    pub credentials: Option<(String, String)>,
}

/// How a check ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TurnCheckOutcome {
    /// The relayed transport address, if the allocation succeeded.
    pub relayed: Option<SocketAddr>,
    /// The client's address as the server saw it (XOR-MAPPED-ADDRESS).
    pub mapped: Option<SocketAddr>,
    /// Datagrams sent to the peer.
    pub sent: u32,
    /// Distinct echoes received back.
    pub received: u32,
    /// Why it stopped early, if it did.
    pub error: Option<String>,
}

impl TurnCheckOutcome {
    /// Every datagram came back.
    pub fn passed(&self) -> bool {
        self.error.is_none() && self.sent > 0 && self.received == self.sent
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Connecting,
    /// CONNECT sent to the proxy, waiting for its answer.
    Proxy,
    Allocating,
    Permitting,
    Sending,
    Done,
}

/// The check (an [`Agent`]).
pub struct TurnCheck<N: Net> {
    config: TurnCheckConfig,
    client: TurnClient,
    socket: N::Socket,
    framer: Framer,
    out: Vec<u8>,
    proxy_answer: Vec<u8>,
    tls: Option<TlsStream>,
    /// The TLS client configuration; `None`: accept any server certificate.
    tls_config: Option<std::sync::Arc<rustls::ClientConfig>>,
    phase: Phase,
    deadline: Instant,
    next_send: Instant,
    echoed: BTreeSet<u32>,
    outcome: TurnCheckOutcome,
}

impl<N: Net> TurnCheck<N> {
    /// Open the client's socket on `host` and start.
    pub fn start(net: &mut N, host: usize, config: TurnCheckConfig) -> Result<Self, NetError> {
        let now = net.now();
        let (socket, phase) = match config.transport {
            Transport::Udp => (net.udp_bind(host, None, 0)?.0, Phase::Allocating),
            Transport::Tcp | Transport::Tls => {
                let to = config.proxy.as_ref().map_or(config.server, |p| p.address);
                (net.tcp_connect(host, 0, to)?.0, Phase::Connecting)
            }
        };
        let mut client = TurnClient::new(ClientConfig {
            server: config.server,
            username: config.username.clone(),
            password: config.password.clone(),
            seed: config.seed,
            transport: config.transport,
        });
        if phase == Phase::Allocating {
            client.allocate(now, None, Vec::new());
        }
        Ok(TurnCheck {
            deadline: now + config.timeout,
            next_send: now,
            config,
            client,
            socket,
            framer: Framer::new(),
            out: Vec::new(),
            proxy_answer: Vec::new(),
            tls: None,
            tls_config: None,
            phase,
            echoed: BTreeSet::new(),
            outcome: TurnCheckOutcome {
                relayed: None,
                mapped: None,
                sent: 0,
                received: 0,
                error: None,
            },
        })
    }

    /// As [`TurnCheck::start`], with TLS (when [`TurnCheckConfig::tls`]) under `tls`
    /// instead of accepting any certificate, e.g. [`super::tls::client_trusting`] a CA.
    pub fn start_with_tls(
        net: &mut N,
        host: usize,
        config: TurnCheckConfig,
        tls: std::sync::Arc<rustls::ClientConfig>,
    ) -> Result<Self, NetError> {
        let mut c = Self::start(net, host, config)?;
        c.tls_config = Some(tls);
        Ok(c)
    }

    /// The result so far (final once [`Agent::is_done`]).
    pub fn outcome(&self) -> &TurnCheckOutcome {
        &self.outcome
    }

    fn fail(&mut self, why: String) {
        if self.outcome.error.is_none() {
            self.outcome.error = Some(why);
        }
        self.phase = Phase::Done;
    }

    fn receive(&mut self, net: &mut N, now: Instant) {
        match self.config.transport {
            Transport::Udp => {
                while let Some((from, data)) = net.udp_recv(self.socket) {
                    self.client.handle_input(now, from, &data);
                }
            }
            Transport::Tcp | Transport::Tls => {
                let state = net.tcp_state(self.socket);
                let to = self
                    .config
                    .proxy
                    .as_ref()
                    .map_or(self.config.server, |p| p.address);
                if self.phase == Phase::Connecting {
                    match state {
                        TcpPhase::Established => match &self.config.proxy {
                            Some(p) => {
                                let auth =
                                    p.credentials.as_ref().map_or(String::new(), |(u, w)| {
                                        format!(
                                            "Proxy-Authorization: {}\r\n",
                                            basic_credentials(u, w)
                                        )
                                    });
                                let s = self.config.server;
                                self.out.extend_from_slice(
                                    format!("CONNECT {s} HTTP/1.1\r\nHost: {s}\r\n{auth}\r\n")
                                        .as_bytes(),
                                );
                                self.phase = Phase::Proxy;
                            }
                            None => self.start_turn(now),
                        },
                        TcpPhase::Closed | TcpPhase::Closing => {
                            self.fail(format!("TCP connection to {to} failed"))
                        }
                        _ => {}
                    }
                    return;
                }
                let bytes = net.tcp_recv(self.socket);
                if self.phase != Phase::Proxy {
                    self.push_stream(&bytes);
                    if self.phase == Phase::Done {
                        return;
                    }
                }
                if self.phase == Phase::Proxy {
                    self.proxy_answer.extend_from_slice(&bytes);
                    let Some(end) = self.proxy_answer.windows(4).position(|w| w == b"\r\n\r\n")
                    else {
                        if matches!(state, TcpPhase::Closed | TcpPhase::Closing) {
                            self.fail(format!("the proxy {to} closed the connection"));
                        }
                        return;
                    };
                    let head = String::from_utf8_lossy(&self.proxy_answer[..end]).into_owned();
                    let status = head.lines().next().unwrap_or_default().to_string();
                    let ok =
                        status.starts_with("HTTP/1.") && status.split(' ').nth(1) == Some("200");
                    if !ok {
                        self.fail(format!("the proxy {to} answered `{status}`"));
                        return;
                    }
                    // Whatever followed the answer is already the server's.
                    let rest = self.proxy_answer.split_off(end + 4);
                    self.start_turn(now);
                    self.push_stream(&rest);
                    return;
                }
                while let Some(frame) = self.framer.next_frame() {
                    match frame {
                        Ok(f) => self.client.handle_input(now, self.config.server, f),
                        Err(e) => {
                            let why = format!("the server's stream: {e}");
                            self.fail(why);
                            return;
                        }
                    }
                }
                if matches!(state, TcpPhase::Closed | TcpPhase::Closing) {
                    self.fail("the server closed the TCP connection".into());
                }
            }
        }
    }

    /// The stream to the server is up (through the proxy, if any): start TLS if asked,
    /// and the Allocate.
    fn start_turn(&mut self, now: Instant) {
        if self.config.tls {
            let config = match &self.tls_config {
                Some(c) => Ok(std::sync::Arc::clone(c)),
                None => any_server_client(),
            };
            let tls =
                config.and_then(|c| TlsStream::client(&c, &self.config.server.ip().to_string()));
            match tls {
                Ok(mut t) => {
                    self.out.extend(t.take_outgoing());
                    self.tls = Some(t);
                }
                Err(e) => {
                    self.fail(format!("TLS: {e}"));
                    return;
                }
            }
        }
        self.phase = Phase::Allocating;
        self.client.allocate(now, None, Vec::new());
    }

    /// Bytes from the server's stream (TLS records when TLS is on).
    fn push_stream(&mut self, bytes: &[u8]) {
        match self.tls.as_mut() {
            Some(t) => match t.receive(bytes) {
                Ok(plain) => {
                    self.out.extend(t.take_outgoing());
                    self.framer.push(&plain);
                }
                Err(e) => self.fail(format!("TLS with {}: {e}", self.config.server)),
            },
            None => self.framer.push(bytes),
        }
    }

    fn handle_events(&mut self, now: Instant) {
        while let Some(ev) = self.client.poll_event() {
            match ev {
                ClientEvent::Allocated {
                    relayed, mapped, ..
                } => {
                    self.outcome.relayed = Some(relayed);
                    self.outcome.mapped = mapped;
                    self.phase = Phase::Permitting;
                    if self.config.channel {
                        self.client.channel_bind(now, CHANNEL, self.config.peer);
                    } else {
                        self.client.create_permission(now, vec![self.config.peer]);
                    }
                }
                ClientEvent::PermissionCreated { .. } | ClientEvent::ChannelBound { .. }
                    if self.phase == Phase::Permitting =>
                {
                    self.phase = Phase::Sending;
                    self.next_send = now;
                }
                ClientEvent::Data { peer, data } => {
                    if peer == self.config.peer
                        && let Some(seq) = data.get(..4)
                        && data.len() == self.config.size.max(4)
                    {
                        let seq = u32::from_be_bytes([seq[0], seq[1], seq[2], seq[3]]);
                        if seq < self.outcome.sent && self.echoed.insert(seq) {
                            self.outcome.received += 1;
                        }
                    }
                }
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
    }

    fn send_due(&mut self, now: Instant) {
        while self.phase == Phase::Sending
            && self.outcome.sent < self.config.count
            && self.next_send <= now
        {
            let mut payload = vec![0x5a; self.config.size.max(4)];
            payload[..4].copy_from_slice(&self.outcome.sent.to_be_bytes());
            self.client.send_to(self.config.peer, &payload);
            self.outcome.sent += 1;
            self.next_send += SEND_INTERVAL;
        }
    }

    fn transmit(&mut self, net: &mut N) {
        while let Some(t) = self.client.poll_transmit() {
            match self.config.transport {
                Transport::Udp => {
                    let _ = net.udp_send(self.socket, t.to, &t.data);
                }
                Transport::Tcp | Transport::Tls => match self.tls.as_mut() {
                    Some(tls) => {
                        tls.send(&t.data);
                        self.out.extend(tls.take_outgoing());
                    }
                    None => self.out.extend_from_slice(&t.data),
                },
            }
        }
        if !self.out.is_empty()
            && let Ok(n) = net.tcp_send(self.socket, &self.out)
        {
            self.out.drain(..n);
        }
    }
}

impl<N: Net> Agent<N> for TurnCheck<N> {
    fn poll(&mut self, net: &mut N) {
        if self.phase == Phase::Done {
            return;
        }
        self.poll_inner(net);
        if self.phase == Phase::Done {
            net.close(self.socket);
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        TurnCheck::poll_timeout(self)
    }

    fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }
}

impl<N: Net> TurnCheck<N> {
    fn poll_inner(&mut self, net: &mut N) {
        let now = net.now();
        self.receive(net, now);
        if self.phase == Phase::Done {
            return;
        }
        self.client.handle_timeout(now);
        self.handle_events(now);
        self.send_due(now);
        self.transmit(net);
        if self.outcome.sent == self.config.count && self.outcome.received == self.config.count {
            self.phase = Phase::Done;
        } else if now >= self.deadline && self.phase != Phase::Done {
            let why = match self.phase {
                Phase::Connecting => "still connecting (TCP handshake unanswered)",
                Phase::Proxy => "no answer from the proxy",
                Phase::Allocating => "no answer to Allocate",
                Phase::Permitting => "still installing the permission",
                _ => "not every echo came back",
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
        if let Some(c) = self.client.poll_timeout() {
            t = t.min(c);
        }
        if self.phase == Phase::Sending && self.outcome.sent < self.config.count {
            t = t.min(self.next_send);
        }
        Some(t)
    }
}

/// A UDP echo peer: sends every datagram back to its source. Counts what it echoed.
pub struct UdpEcho<N: Net> {
    socket: N::Socket,
    echoed: u64,
}

impl<N: Net> UdpEcho<N> {
    /// Listen on `port` of `host`.
    pub fn start(net: &mut N, host: usize, port: u16) -> Result<Self, NetError> {
        let (socket, _) = net.udp_bind(host, None, port)?;
        Ok(UdpEcho { socket, echoed: 0 })
    }

    /// Datagrams echoed.
    pub fn echoed(&self) -> u64 {
        self.echoed
    }
}

impl<N: Net> Agent<N> for UdpEcho<N> {
    fn poll(&mut self, net: &mut N) {
        while let Some((from, data)) = net.udp_recv(self.socket) {
            if net.udp_send(self.socket, from, &data).is_ok() {
                self.echoed += 1;
            }
        }
    }
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
    fn is_done(&self) -> bool {
        true
    }
}
