//! The `http-proxy` service: a thin driver between [`relay::http_proxy::Tunnel`] cores and
//! TCP sockets on a host of any [`Net`]: one listening slot kept open on the proxy port,
//! one tunnel per accepted client, one upstream connection per tunnel.
//!
//! Bounded: at most [`MAX_TUNNELS`] tunnels at once (further clients wait in the listen
//! backlog), at most [`MAX_BUFFERED`] bytes queued per direction (reading pauses until the
//! other side drains), upstream connections that do not complete within
//! [`CONNECT_TIMEOUT`] fail with 502.

use crate::agents::net::{Net, NetError, TcpPhase};
use crate::run::events::{ServiceLog, debug_record};
pub use relay::http_proxy::basic_credentials;
use relay::http_proxy::{Input, ProxyConfig, Tunnel, TunnelEvent, TunnelOutput};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// Tunnels open at once.
pub const MAX_TUNNELS: usize = 64;
/// Bytes queued per direction of a tunnel before reading from the sender pauses.
pub const MAX_BUFFERED: usize = 256 * 1024;
/// Time an upstream TCP connection has to be established.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Time a refused or finished tunnel waits for the client to close before it is aborted
/// (Net's close is an abort; this lets the refusal reach the client first).
const CLOSE_LINGER: Duration = Duration::from_secs(2);

struct Conn<N: Net> {
    tunnel: Tunnel,
    client: N::Socket,
    upstream: Option<N::Socket>,
    connect_deadline: Option<Instant>,
    to_client: Vec<u8>,
    to_upstream: Vec<u8>,
    closing_since: Option<Instant>,
    shut: bool,
}

/// An HTTP CONNECT proxy running on a host.
pub struct HttpProxyService<N: Net> {
    host: usize,
    port: u16,
    config: ProxyConfig,
    names: Vec<(String, IpAddr)>,
    listening: Option<N::Socket>,
    conns: Vec<Conn<N>>,
    events: Vec<TunnelEvent>,
    log: ServiceLog,
}

impl<N: Net> HttpProxyService<N> {
    /// Listen on `port` of `host`. `names` resolves CONNECT targets given by host name
    /// (the topology's names, as the hosts' `/etc/hosts` has them).
    pub fn start(
        net: &mut N,
        host: usize,
        port: u16,
        config: ProxyConfig,
        names: Vec<(String, IpAddr)>,
    ) -> Result<Self, String> {
        let listening = net
            .tcp_listen(host, port)
            .map_err(|e: NetError| format!("http-proxy on port {port}: {e}"))?;
        Ok(HttpProxyService {
            host,
            port,
            config,
            names,
            listening: Some(listening),
            conns: Vec::new(),
            events: Vec::new(),
            log: ServiceLog::default(),
        })
    }

    /// What the tunnels reported (refusals, opened tunnels), oldest first.
    pub fn events(&self) -> &[TunnelEvent] {
        &self.events
    }

    /// The earliest head, connect or linger deadline.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.conns
            .iter()
            .flat_map(|c| {
                [
                    c.tunnel.poll_timeout(),
                    c.connect_deadline,
                    c.closing_since.map(|t| t + CLOSE_LINGER),
                ]
            })
            .flatten()
            .min()
    }

    /// Accept, read, relay, write, and retire finished tunnels.
    pub fn poll(&mut self, net: &mut N) {
        let now = net.now();
        self.accept(net, now);
        for i in 0..self.conns.len() {
            self.pump(net, now, i);
        }
        let mut i = 0;
        while i < self.conns.len() {
            let c = &self.conns[i];
            let done = c.closing_since.is_some_and(|since| {
                c.to_client.is_empty()
                    && (now >= since + CLOSE_LINGER || net.tcp_state(c.client) == TcpPhase::Closed)
            });
            if done {
                let c = self.conns.swap_remove(i);
                net.close(c.client);
                if let Some(u) = c.upstream {
                    net.close(u);
                }
            } else {
                i += 1;
            }
        }
    }

    /// Close every socket.
    pub fn stop(&mut self, net: &mut N) {
        if let Some(l) = self.listening.take() {
            net.close(l);
        }
        for c in self.conns.drain(..) {
            net.close(c.client);
            if let Some(u) = c.upstream {
                net.close(u);
            }
        }
    }

    fn accept(&mut self, net: &mut N, now: Instant) {
        let Some(l) = self.listening else {
            if self.conns.len() < MAX_TUNNELS {
                self.listening = net.tcp_listen(self.host, self.port).ok();
            }
            return;
        };
        match net.tcp_state(l) {
            TcpPhase::Listening => {}
            TcpPhase::Closed => {
                // A connection that came and went before we looked: listen again.
                net.close(l);
                self.listening = net.tcp_listen(self.host, self.port).ok();
            }
            _ => {
                self.conns.push(Conn {
                    tunnel: Tunnel::new(&self.config, now),
                    client: l,
                    upstream: None,
                    connect_deadline: None,
                    to_client: Vec::new(),
                    to_upstream: Vec::new(),
                    closing_since: None,
                    shut: false,
                });
                self.listening = if self.conns.len() < MAX_TUNNELS {
                    net.tcp_listen(self.host, self.port).ok()
                } else {
                    None
                };
            }
        }
    }

    fn resolve(&self, host: &str, port: u16) -> Option<SocketAddr> {
        let ip = host.parse::<IpAddr>().ok().or_else(|| {
            self.names
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(host))
                .map(|(_, a)| *a)
        })?;
        Some(SocketAddr::new(ip, port))
    }

    fn pump(&mut self, net: &mut N, now: Instant, i: usize) {
        let config = self.config.clone();
        // Client → tunnel.
        {
            let c = &mut self.conns[i];
            if c.closing_since.is_none() && c.to_upstream.len() < MAX_BUFFERED {
                let data = net.tcp_recv(c.client);
                if !data.is_empty() {
                    c.tunnel
                        .handle_input(now, &config, Input::ClientData(&data));
                } else if matches!(
                    net.tcp_state(c.client),
                    TcpPhase::Closing | TcpPhase::Closed
                ) {
                    c.tunnel.handle_input(now, &config, Input::ClientClosed);
                }
            }
            if c.tunnel.poll_timeout().is_some_and(|t| t <= now) {
                c.tunnel.handle_timeout(now);
            }
            // Upstream progress.
            if let Some(u) = c.upstream {
                match (c.connect_deadline, net.tcp_state(u)) {
                    (Some(_), TcpPhase::Established) => {
                        c.connect_deadline = None;
                        c.tunnel
                            .handle_input(now, &config, Input::UpstreamConnected);
                    }
                    (Some(_), TcpPhase::Closed) => {
                        c.connect_deadline = None;
                        c.tunnel.handle_input(
                            now,
                            &config,
                            Input::UpstreamFailed("connection refused or unreachable"),
                        );
                    }
                    (Some(d), _) if now >= d => {
                        c.connect_deadline = None;
                        c.tunnel.handle_input(
                            now,
                            &config,
                            Input::UpstreamFailed("connection timed out"),
                        );
                    }
                    (None, phase) if c.tunnel.is_open() && c.to_client.len() < MAX_BUFFERED => {
                        let data = net.tcp_recv(u);
                        if !data.is_empty() {
                            c.tunnel
                                .handle_input(now, &config, Input::UpstreamData(&data));
                        } else if matches!(phase, TcpPhase::Closing | TcpPhase::Closed) {
                            c.tunnel.handle_input(now, &config, Input::UpstreamClosed);
                        }
                    }
                    _ => {}
                }
            }
        }
        // Tunnel → sockets.
        while let Some(o) = self.conns[i].tunnel.poll_output() {
            match o {
                TunnelOutput::ToClient(b) => self.conns[i].to_client.extend_from_slice(&b),
                TunnelOutput::ToUpstream(b) => self.conns[i].to_upstream.extend_from_slice(&b),
                TunnelOutput::Connect { host, port } => {
                    let target = self.resolve(&host, port);
                    let from = self.host;
                    let c = &mut self.conns[i];
                    match target.map(|t| net.tcp_connect(from, 0, t)) {
                        Some(Ok((s, _))) => {
                            c.upstream = Some(s);
                            c.connect_deadline = Some(now + CONNECT_TIMEOUT);
                        }
                        Some(Err(e)) => c.tunnel.handle_input(
                            now,
                            &config,
                            Input::UpstreamFailed(&e.to_string()),
                        ),
                        None => c.tunnel.handle_input(
                            now,
                            &config,
                            Input::UpstreamFailed(&format!("unknown host `{host}`")),
                        ),
                    }
                }
                TunnelOutput::Close => {
                    let c = &mut self.conns[i];
                    c.closing_since.get_or_insert(now);
                    c.to_upstream.clear();
                }
            }
        }
        while let Some(e) = self.conns[i].tunnel.poll_event() {
            self.log.push(now, debug_record("http-proxy", &e));
            self.events.push(e);
        }
        let c = &mut self.conns[i];
        if !c.to_client.is_empty()
            && let Ok(n) = net.tcp_send(c.client, &c.to_client)
        {
            c.to_client.drain(..n);
        }
        if let Some(u) = c.upstream
            && !c.to_upstream.is_empty()
            && c.tunnel.is_open()
            && let Ok(n) = net.tcp_send(u, &c.to_upstream)
        {
            c.to_upstream.drain(..n);
        }
        // Finished and flushed: FIN to both sides, then linger for the client to close.
        if c.closing_since.is_some() && c.to_client.is_empty() && !c.shut {
            c.shut = true;
            net.tcp_shutdown(c.client);
            if let Some(u) = c.upstream {
                net.tcp_shutdown(u);
            }
        }
    }
}

crate::agents::net::service_agent!(HttpProxyService, "http-proxy");
