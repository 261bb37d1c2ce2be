//! The `sip-proxy` service: a thin driver between [`relay::sip::proxy::Proxy`] and a host's
//! sockets — one UDP socket and a TCP listener on the service port; TCP byte streams are
//! framed by [`relay::sip::StreamFramer`] (CRLF keepalive pings answered with a pong).
//!
//! Connections: the core names the connection a message goes on (the one a request came
//! on, the one a UA registered over) or only an address, where an open connection to it
//! is reused or a new one opened (RFC 3261 §18.1.1). A peer's FIN, a reset or a framing
//! error ends a connection and the core hears of it (`Input::Closed`).
//!
//! Transport errors (RFC 3261 §18.4) go back to the core as `Input::TransportError`, one
//! per message, never re-sent by the driver: a connection attempt that fails (refused,
//! reset, an error from `connect` itself, or not established within [`CONNECT_TIMEOUT`]),
//! a connection that ends or fails a write while messages wait for it (each message not
//! wholly handed to the stack), and a message for a connection that ended meanwhile. The
//! close is reported first. Bytes the stack took and then lost to a reset are not known
//! to be lost (as with any socket); Timer B/F covers them. UDP reports nothing: an ICMP
//! port unreachable reaches only a connected UDP socket (`ECONNREFUSED`), and the proxy's
//! one socket is unconnected on both fabrics (the virtual hosts' smoltcp has no such
//! error at all), so a datagram to a dead port waits for Timer B/F.

use crate::agents::net::{Net, TcpPhase};
use crate::run::events::{ServiceLog, service_event};
use crate::scenario::model as m;
use relay::sip::proxy::Transmit;
use relay::sip::proxy::{
    Input, KeepaliveConfig, MediaConfig, MediaPolicy, NatConfig, Proxy, ProxyConfig, ProxyEvent,
};
use relay::sip::{ConnId, Flow, Frame, Limits, PONG, StreamFramer, Transport};
use reports::events::EventKind;
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// How long a connection the proxy opened may stay in its handshake before it counts as
/// failed (Kamailio's `tcp_connect_timeout` default; a kernel gives up on SYNs after about
/// two minutes, the virtual hosts' smoltcp never does). Below Timer B's 32 s, so the caller
/// hears of an unreachable TCP contact before the transaction times out.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Unanswered keepalives after which a NATed binding is removed (the scenario format has
/// no knob for it; nathelper's default is similar).
const KEEPALIVE_MAX_MISSED: u32 = 3;

/// The proxy settings of a `sip-proxy` service on a host whose address is `ip`.
pub fn proxy_config(ip: IpAddr, spec: &m::SipProxy, seed: u64) -> ProxyConfig {
    let addr = SocketAddr::new(ip, spec.port);
    let mut c = ProxyConfig::new(addr);
    c.seed = seed;
    // The relay's address is the runner's to fill in (`media.relay`); without one the
    // proxy never touches SDP.
    c.media = MediaConfig {
        policy: spec.media,
        ice: spec.ice_for(spec.media != MediaPolicy::Never),
        relay: None,
        secret: spec.secret.clone(),
        ice_priority: spec.ice_priority,
        ..MediaConfig::default()
    };
    c.nat = NatConfig {
        tests: spec.nat.test,
        fix_contact: spec.nat.fix_contact,
        keepalive: spec.nat.keepalive.as_ref().map(|k| KeepaliveConfig {
            method: k.method,
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
    /// What waits to be written: the core's transmits (handed back as transport errors if
    /// the connection fails first) and CRLF pongs (`None`).
    out: VecDeque<(Option<Flow>, Vec<u8>)>,
    /// Bytes of the front of `out` already taken by the stack.
    written: usize,
    /// For a connection we opened: when it must be established by.
    connect_by: Option<Instant>,
}

impl<S> Conn<S> {
    fn new(sock: S, id: ConnId, remote: Option<SocketAddr>) -> Conn<S> {
        Conn {
            sock,
            id,
            remote,
            framer: StreamFramer::new(Limits::default()),
            out: VecDeque::new(),
            written: 0,
            connect_by: None,
        }
    }

    /// Write what the stack takes; `Err` when the socket failed.
    fn flush<N: Net<Socket = S>>(&mut self, net: &mut N) -> Result<(), ()>
    where
        S: Copy,
    {
        while let Some((_, bytes)) = self.out.front() {
            let n = net
                .tcp_send(self.sock, &bytes[self.written..])
                .map_err(|_| ())?;
            self.written += n;
            if self.written < bytes.len() {
                return Ok(());
            }
            self.out.pop_front();
            self.written = 0;
        }
        Ok(())
    }
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
    log: ServiceLog,
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
            log: ServiceLog::default(),
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

    /// The proxy's next timer, or a connection attempt's deadline.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.conns
            .iter()
            .filter_map(|c| c.connect_by)
            .chain(self.proxy.poll_timeout())
            .min()
    }

    fn accept(&mut self, net: &mut N) {
        let Some(l) = self.listener else { return };
        match net.tcp_state(l) {
            TcpPhase::Listening => {}
            TcpPhase::Connecting | TcpPhase::Established | TcpPhase::Closing => {
                let id = ConnId(self.next_conn);
                self.next_conn += 1;
                self.conns.push(Conn::new(l, id, None));
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
                    (Ok(Frame::Ping), _) => c.out.push_back((None, PONG.to_vec())),
                    _ => {}
                }
            }
            // A FIN from the peer ends the connection for SIP too (Closing: we never shut
            // down first), as it does for Kamailio's tcp_read on EOF. A connection we opened
            // that is still in its handshake at its deadline has failed.
            let phase = net.tcp_state(c.sock);
            if phase != TcpPhase::Connecting {
                c.connect_by = None;
            }
            if c.framer.is_failed()
                || matches!(phase, TcpPhase::Closed | TcpPhase::Closing)
                || c.connect_by.is_some_and(|t| t <= now)
            {
                closed.push(c.id);
            }
        }
        let mut failed = Vec::new();
        for id in closed {
            self.end_conn(net, now, id, &mut failed);
        }
        if self.proxy.poll_timeout().is_some_and(|t| t <= now) {
            self.proxy.handle_timeout(now);
        }
        // Transmit; what fails goes back to the core, whose answers (a 500 upstream, a
        // response's next destination) are transmitted in turn. Every round the core either
        // gives a failed message up or names a destination that differs from the failed
        // one; the bound only guards against a loop that this reasoning missed (what is
        // left is handed back on the next poll).
        for _ in 0..8 {
            for t in failed.drain(..) {
                self.proxy.handle_input(
                    now,
                    Input::TransportError {
                        flow: t.flow(),
                        bytes: t.data,
                    },
                );
            }
            while let Some(t) = self.proxy.poll_transmit() {
                self.transmit(net, now, t, &mut failed);
            }
            let broken: Vec<ConnId> = self
                .conns
                .iter_mut()
                .filter_map(|c| c.flush(net).is_err().then_some(c.id))
                .collect();
            for id in broken {
                self.end_conn(net, now, id, &mut failed);
            }
            if failed.is_empty() {
                break;
            }
        }
        for t in failed {
            // the loop bound was hit: the core hears of these on the next poll
            self.proxy.handle_input(
                now,
                Input::TransportError {
                    flow: t.flow(),
                    bytes: t.data,
                },
            );
        }
        while let Some(e) = self.proxy.poll_event() {
            self.events += 1;
            if let ProxyEvent::Dropped { reason, from } = &e {
                tracing::debug!(?reason, %from, "sip-proxy dropped a message");
            }
            self.log.push(now, record_of(e));
        }
    }

    /// Hand one transmit to its socket; a TCP message that cannot go is put in `failed`.
    fn transmit(&mut self, net: &mut N, now: Instant, t: Transmit, failed: &mut Vec<Transmit>) {
        match t.transport {
            Transport::Udp => {
                // A full send buffer drops the message, as a congested socket would.
                let _ = net.udp_send(self.udp, t.to, &t.data);
            }
            Transport::Tcp | Transport::Tls => {
                let existing = self.conns.iter_mut().find(|c| match t.conn {
                    Some(id) => c.id == id,
                    None => c.remote == Some(t.to),
                });
                match existing {
                    Some(c) => c.out.push_back((Some(t.flow()), t.data)),
                    // The connection the core chose ended after it chose: a transport
                    // error. A new connection to its peer would be wrong — behind a NAT it
                    // cannot get in, and a public UA's source port is not where it listens;
                    // the core picks the next destination itself.
                    None if t.conn.is_some() => failed.push(t),
                    None => match net.tcp_connect(self.host, 0, t.to) {
                        Ok((sock, _)) => {
                            let id = ConnId(self.next_conn);
                            self.next_conn += 1;
                            let mut c = Conn::new(sock, id, Some(t.to));
                            c.connect_by = Some(now + CONNECT_TIMEOUT);
                            c.out.push_back((Some(t.flow()), t.data));
                            self.conns.push(c);
                        }
                        // no route, no address to connect from, …
                        Err(_) => failed.push(t),
                    },
                }
            }
        }
    }

    /// Close connection `id`, tell the core, and put the messages it still held in `failed`.
    fn end_conn(&mut self, net: &mut N, now: Instant, id: ConnId, failed: &mut Vec<Transmit>) {
        let Some(i) = self.conns.iter().position(|c| c.id == id) else {
            return;
        };
        let c = self.conns.remove(i);
        net.close(c.sock);
        self.proxy.handle_input(now, Input::Closed(id));
        failed.extend(
            c.out
                .into_iter()
                .filter_map(|(flow, bytes)| flow.map(|flow| Transmit::on(flow, bytes))),
        );
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

crate::agents::net::service_agent!(SipProxyService, "sip-proxy");

fn transport_name(t: Transport) -> &'static str {
    match t {
        Transport::Udp => "udp",
        Transport::Tcp => "tcp",
        Transport::Tls => "tls",
    }
}

/// The cell-log record of a proxy event: messages as [`EventKind::Sip`] (the ladder), the
/// rest as `sip-proxy` service events.
fn record_of(e: ProxyEvent) -> EventKind {
    let sip = |dir: &str, flow: Flow, summary, call_id, cseq| EventKind::Sip {
        dir: dir.to_string(),
        transport: transport_name(flow.transport).to_string(),
        summary,
        call_id,
        cseq,
        local: flow.local.to_string(),
        remote: flow.remote.to_string(),
        peer_host: None,
        via_nats: Vec::new(),
    };
    let svc = |event: &str, detail: &[(&str, String)]| service_event("sip-proxy", event, detail);
    match e {
        ProxyEvent::MessageReceived {
            flow,
            summary,
            call_id,
            cseq,
        } => sip("received", flow, summary, call_id, cseq),
        ProxyEvent::MessageSent {
            flow,
            summary,
            call_id,
            cseq,
        } => sip("sent", flow, summary, call_id, cseq),
        ProxyEvent::Registered {
            aor,
            contact,
            path,
            expires,
            natted,
        } => svc(
            "registered",
            &[
                ("aor", aor),
                ("contact", contact),
                ("path", path.to_string()),
                ("expires", expires.to_string()),
                ("natted", natted.to_string()),
            ],
        ),
        ProxyEvent::RegistrationRemoved {
            aor,
            contact,
            reason,
        } => svc(
            "registration_removed",
            &[
                ("aor", aor),
                ("contact", contact),
                ("reason", format!("{reason:?}")),
            ],
        ),
        ProxyEvent::NatDetected {
            source,
            tests,
            contact_fixed,
        } => svc(
            "nat_detected",
            &[
                ("source", source.to_string()),
                ("tests", format!("{tests:#06b}")),
                ("contact_fixed", contact_fixed.to_string()),
            ],
        ),
        ProxyEvent::KeepaliveSent { aor, flow } => svc(
            "keepalive_sent",
            &[("aor", aor), ("flow", flow.to_string())],
        ),
        ProxyEvent::DialogStarted {
            call_id,
            caller,
            callee,
            ..
        } => svc(
            "dialog_started",
            &[("call_id", call_id), ("caller", caller), ("callee", callee)],
        ),
        ProxyEvent::DialogConfirmed { call_id, .. } => {
            svc("dialog_confirmed", &[("call_id", call_id)])
        }
        ProxyEvent::DialogEnded { call_id, reason } => svc(
            "dialog_ended",
            &[("call_id", call_id), ("reason", format!("{reason:?}"))],
        ),
        ProxyEvent::Dropped { reason, from } => svc(
            "dropped",
            &[
                ("reason", format!("{reason:?}")),
                ("from", from.to_string()),
            ],
        ),
        ProxyEvent::SendFailed {
            flow,
            summary,
            call_id,
            retried,
        } => svc(
            "send_failed",
            &[
                ("flow", flow.to_string()),
                ("summary", summary),
                ("call_id", call_id),
                (
                    "retried",
                    retried.map(|f| f.to_string()).unwrap_or_default(),
                ),
            ],
        ),
        other => svc("other", &[("event", format!("{other:?}"))]),
    }
}
