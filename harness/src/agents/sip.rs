//! The `sip-proxy` service: a thin driver between [`relay::sip::proxy::Proxy`] and a host's
//! sockets — one UDP socket and a TCP listener on the service port; TCP byte streams are
//! framed by [`relay::sip::StreamFramer`] (CRLF keepalive pings answered with a pong).
//!
//! Connections: the core names the connection a message goes on (the one a request came
//! on, the one a UA registered over) or only an address, where an open connection to it
//! is reused or a new one opened (RFC 3261 §18.1.1). A peer's FIN, a reset or a framing
//! error ends a connection and the core hears of it (`Input::Closed`); a message for a
//! connection that ended meanwhile is dropped, never re-sent elsewhere.

use super::net::{Agent, Net, TcpPhase};
use crate::scenario::model as m;
use relay::sip::nat::NatTests;
use relay::sip::proxy::{
    Input, KeepaliveConfig, KeepaliveMethod, NatConfig, Proxy, ProxyConfig, ProxyEvent,
};
use relay::sip::{ConnId, Flow, Frame, Limits, PONG, StreamFramer, Transport};
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

/// Unanswered keepalives after which a NATed binding is removed (the scenario format has
/// no knob for it; nathelper's default is similar).
const KEEPALIVE_MAX_MISSED: u32 = 3;

/// The proxy settings of a `sip-proxy` service on a host whose address is `ip`.
pub fn proxy_config(ip: IpAddr, spec: &m::SipProxy, seed: u64) -> ProxyConfig {
    let addr = SocketAddr::new(ip, spec.port);
    let mut c = ProxyConfig::new(addr);
    c.seed = seed;
    let mut tests = NatTests::default();
    for t in &spec.nat.test {
        let k = match t {
            m::NatTest::PrivateContact => NatTests::PRIVATE_CONTACT,
            m::NatTest::SourceDiffersFromVia => NatTests::SOURCE_DIFFERS_FROM_VIA,
            m::NatTest::PrivateVia => NatTests::PRIVATE_VIA,
            m::NatTest::SourcePortDiffersFromVia => NatTests::SOURCE_PORT_DIFFERS_FROM_VIA,
        };
        tests = tests.union(k);
    }
    c.nat = NatConfig {
        tests,
        fix_contact: spec.nat.fix_contact,
        keepalive: spec.nat.keepalive.as_ref().map(|k| KeepaliveConfig {
            method: match k.method {
                m::KeepaliveMethod::Options => KeepaliveMethod::Options,
                m::KeepaliveMethod::Notify => KeepaliveMethod::Notify,
            },
            interval: k.interval,
            max_missed: KEEPALIVE_MAX_MISSED,
        }),
    };
    c
}

struct Conn<S> {
    sock: S,
    id: ConnId,
    remote: Option<SocketAddr>,
    framer: StreamFramer,
    out: Vec<u8>,
}

/// A SIP proxy/registrar running on a host.
pub struct SipProxyService<N: Net> {
    proxy: Proxy,
    host: usize,
    local: SocketAddr,
    udp: N::Socket,
    listener: Option<N::Socket>,
    conns: Vec<Conn<N::Socket>>,
    next_conn: u64,
    events: u64,
}

impl<N: Net> SipProxyService<N> {
    /// Bind UDP and listen on TCP at the service port of `host`'s first address.
    pub fn start(net: &mut N, host: usize, config: ProxyConfig) -> Result<Self, String> {
        let local = config
            .listen
            .first()
            .map(|(_, a)| *a)
            .ok_or("no listen address")?;
        let (udp, _) = net
            .udp_bind(host, Some(local.ip()), local.port())
            .map_err(|e| e.to_string())?;
        let listener = net
            .tcp_listen(host, local.port())
            .map_err(|e| e.to_string())?;
        Ok(SipProxyService {
            proxy: Proxy::new(config),
            host,
            local,
            udp,
            listener: Some(listener),
            conns: Vec::new(),
            next_conn: 1,
            events: 0,
        })
    }

    /// The core (registrar lookups, counters).
    pub fn proxy(&self) -> &Proxy {
        &self.proxy
    }

    /// Events seen so far.
    pub fn event_count(&self) -> u64 {
        self.events
    }

    /// The proxy's next timer.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.proxy.poll_timeout()
    }

    fn accept(&mut self, net: &mut N) {
        let Some(l) = self.listener else { return };
        match net.tcp_state(l) {
            TcpPhase::Listening => {}
            TcpPhase::Connecting | TcpPhase::Established | TcpPhase::Closing => {
                let id = ConnId(self.next_conn);
                self.next_conn += 1;
                self.conns.push(Conn {
                    sock: l,
                    id,
                    remote: None,
                    framer: StreamFramer::new(Limits::default()),
                    out: Vec::new(),
                });
                self.listener = net.tcp_listen(self.host, self.local.port()).ok();
            }
            _ => self.listener = net.tcp_listen(self.host, self.local.port()).ok(),
        }
    }

    /// Read, handle, answer.
    pub fn poll(&mut self, net: &mut N) {
        let now = net.now();
        while let Some((from, data)) = net.udp_recv(self.udp) {
            let flow = Flow {
                transport: Transport::Udp,
                local: self.local,
                remote: from,
                conn: None,
            };
            self.proxy
                .handle_input(now, Input::Message { flow, bytes: data });
        }
        self.accept(net);
        let mut closed = Vec::new();
        for c in &mut self.conns {
            if c.remote.is_none() {
                c.remote = net.tcp_remote(c.sock);
            }
            let data = net.tcp_recv(c.sock);
            if !data.is_empty() {
                c.framer.push(&data);
            }
            while let Some(f) = c.framer.poll() {
                match (f, c.remote) {
                    (Ok(Frame::Message(bytes)), Some(remote)) => {
                        let flow = Flow {
                            transport: Transport::Tcp,
                            local: self.local,
                            remote,
                            conn: Some(c.id),
                        };
                        self.proxy.handle_input(now, Input::Message { flow, bytes });
                    }
                    (Ok(Frame::Ping), _) => c.out.extend_from_slice(PONG),
                    _ => {}
                }
            }
            // A FIN from the peer ends the connection for SIP too (Closing: we never shut
            // down first), as it does for Kamailio's tcp_read on EOF.
            if c.framer.is_failed()
                || matches!(net.tcp_state(c.sock), TcpPhase::Closed | TcpPhase::Closing)
            {
                closed.push(c.id);
            }
        }
        for id in closed {
            if let Some(i) = self.conns.iter().position(|c| c.id == id) {
                let c = self.conns.remove(i);
                net.close(c.sock);
                self.proxy.handle_input(now, Input::Closed(id));
            }
        }
        if self.proxy.poll_timeout().is_some_and(|t| t <= now) {
            self.proxy.handle_timeout(now);
        }
        while let Some(t) = self.proxy.poll_transmit() {
            match t.flow.transport {
                Transport::Udp => {
                    // A full send buffer drops the message, as a congested socket would.
                    let _ = net.udp_send(self.udp, t.flow.remote, &t.bytes);
                }
                Transport::Tcp | Transport::Tls => {
                    let existing = self.conns.iter_mut().find(|c| match t.flow.conn {
                        Some(id) => c.id == id,
                        None => c.remote == Some(t.flow.remote),
                    });
                    match existing {
                        Some(c) => c.out.extend_from_slice(&t.bytes),
                        // The connection the core chose closed after it chose (within this
                        // poll): the message is lost, as on a reset connection. A new
                        // connection to its peer would be wrong — behind a NAT it cannot
                        // get in, and a public UA's source port is not where it listens;
                        // the core picks those targets itself once it knows of the close.
                        None if t.flow.conn.is_some() => {
                            tracing::debug!(flow = %t.flow, "sip-proxy: connection gone, message dropped");
                        }
                        None => {
                            if let Ok((sock, _)) = net.tcp_connect(self.host, 0, t.flow.remote) {
                                let id = ConnId(self.next_conn);
                                self.next_conn += 1;
                                self.conns.push(Conn {
                                    sock,
                                    id,
                                    remote: Some(t.flow.remote),
                                    framer: StreamFramer::new(Limits::default()),
                                    out: t.bytes,
                                });
                            }
                        }
                    }
                }
            }
        }
        for c in &mut self.conns {
            if !c.out.is_empty()
                && let Ok(n) = net.tcp_send(c.sock, &c.out)
            {
                c.out.drain(..n.min(c.out.len()));
            }
        }
        while let Some(e) = self.proxy.poll_event() {
            self.events += 1;
            if let ProxyEvent::Dropped { reason, from } = e {
                tracing::debug!(?reason, %from, "sip-proxy dropped a message");
            }
        }
    }

    /// Close every socket.
    pub fn stop(&mut self, net: &mut N) {
        net.close(self.udp);
        if let Some(l) = self.listener.take() {
            net.close(l);
        }
        for c in self.conns.drain(..) {
            net.close(c.sock);
        }
    }
}

impl<N: Net> Agent<N> for SipProxyService<N> {
    fn poll(&mut self, net: &mut N) {
        SipProxyService::poll(self, net)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        SipProxyService::poll_timeout(self)
    }
    /// A service is never waited for.
    fn is_done(&self) -> bool {
        true
    }
}
