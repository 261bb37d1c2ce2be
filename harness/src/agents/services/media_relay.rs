//! The `media-relay` service: a thin driver between [`relay::control::NgServer`] (the
//! [`relay::media::MediaRelay`] behind its ng control socket) and a host's sockets — the ng
//! port, and one UDP socket per relay port the core asks for
//! ([`relay::media::Command::BindPort`]).
//!
//! Media takes the core's zero-copy path ([`relay::media::MediaRelay::handle_packet`]): the
//! received datagram is sent on as it is, from the socket the verdict names. Accounting
//! records (one per ended session) go into the cell's event log as `session_ended` records
//! with the record as one JSON line.

use crate::agents::net::{Net, NetError};
use crate::run::events::{ServiceLog, debug_record, service_event};
use crate::scenario::model as m;
use relay::control::{NgServer, ServerConfig};
use relay::media::{Command, Input, MediaEvent, MediaRelay, RelayConfig, Verdict};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

/// The relay and control settings of a `media-relay` service on a host with `addresses`.
pub fn media_relay_config(
    addresses: &[IpAddr],
    spec: &m::MediaRelay,
    seed: u64,
) -> (RelayConfig, ServerConfig) {
    let primary = addresses[0];
    // One address per family: the first of each (the relay binds its ports there).
    let mut bind: Vec<IpAddr> = Vec::new();
    for a in addresses {
        if !bind.iter().any(|b| b.is_ipv4() == a.is_ipv4()) {
            bind.push(*a);
        }
    }
    let mut r = RelayConfig::new(bind, spec.ports.first..=spec.ports.last);
    r.advertised = spec.advertised_address;
    r.streams_max = spec.streams_max as usize;
    r.latching = spec.latching;
    r.latching_window = spec.latching_window;
    r.idle_timeout = spec.idle_timeout;
    r.idle_timeout_before_media = spec.idle_timeout_before_media;
    r.asymmetric_clients = spec
        .asymmetric_clients
        .iter()
        .map(|p| p.text.clone())
        .collect();
    r.seed = seed;
    let mut s = ServerConfig::new(SocketAddr::new(primary, spec.ng_port));
    s.secret = spec.secret.as_ref().map(|x| x.as_bytes().to_vec());
    s.seed = seed ^ 0x6e67;
    (r, s)
}

/// What a `service` step did to the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Running,
    /// `drain`: no new session; stops by itself after the last.
    Draining,
    /// Stopped (`stop`, `kill`, or drained): sockets closed, polled no more.
    Stopped,
}

/// A media relay running on a host.
pub struct MediaRelayService<N: Net> {
    server: NgServer,
    host: usize,
    ng: N::Socket,
    ports: BTreeMap<SocketAddr, N::Socket>,
    phase: Phase,
    log: ServiceLog,
}

impl<N: Net> MediaRelayService<N> {
    /// Bind the ng port of `host` and start the relay (media ports are bound as sessions
    /// need them).
    pub fn start(
        net: &mut N,
        host: usize,
        relay: RelayConfig,
        control: ServerConfig,
    ) -> Result<Self, String> {
        let core = MediaRelay::new(relay).map_err(|e| e.to_string())?;
        let (ng, _) = net
            .udp_bind(host, Some(control.listen.ip()), control.listen.port())
            .map_err(|e: NetError| e.to_string())?;
        Ok(MediaRelayService {
            server: NgServer::new(control, core),
            host,
            ng,
            ports: BTreeMap::new(),
            phase: Phase::Running,
            log: ServiceLog::default(),
        })
    }

    /// When the relay's timers (idle timeouts, notices) are due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.phase == Phase::Stopped {
            return None;
        }
        self.server.poll_timeout()
    }

    fn commands(&mut self, net: &mut N, now: Instant) {
        while let Some(c) = self.server.relay_mut().poll_command() {
            match c {
                Command::BindPort(addr) => {
                    match net.udp_bind(self.host, Some(addr.ip()), addr.port()) {
                        Ok((s, _)) => {
                            self.ports.insert(addr, s);
                        }
                        Err(_) => self
                            .server
                            .relay_mut()
                            .handle_input(now, Input::BindFailed(addr)),
                    }
                }
                Command::ClosePort(addr) => {
                    if let Some(s) = self.ports.remove(&addr) {
                        net.close(s);
                    }
                }
            }
        }
    }

    /// Serve control and media, run due timers, send what is due.
    pub fn poll(&mut self, net: &mut N) {
        if self.phase == Phase::Stopped {
            return;
        }
        let now = net.now();
        while let Some((from, data)) = net.udp_recv(self.ng) {
            self.server.handle_control(now, from, &data);
        }
        self.commands(net, now);
        let sockets: Vec<(SocketAddr, N::Socket)> =
            self.ports.iter().map(|(a, s)| (*a, *s)).collect();
        for (local, s) in sockets {
            while let Some((remote, data)) = net.udp_recv(s) {
                let relay = self.server.relay_mut();
                if let Verdict::Forward { from, to } =
                    relay.handle_packet(now, local, remote, &data)
                    && let Some(&out) = self.ports.get(&from)
                {
                    // A full send buffer drops the packet, as a congested socket would.
                    let _ = net.udp_send(out, to, &data);
                }
            }
        }
        if self.server.poll_timeout().is_some_and(|t| t <= now) {
            self.server.handle_timeout(now);
        } else {
            self.server.send_notices(now);
        }
        self.commands(net, now);
        while let Some(t) = self.server.poll_transmit() {
            let _ = net.udp_send(self.ng, t.to, &t.data);
        }
        self.record(now);
        if self.phase == Phase::Draining && self.server.relay().is_drained() {
            self.log.push(
                now,
                service_event("media-relay", "drained", &[("sessions", "0".into())]),
            );
            self.close(net);
        }
    }

    fn record(&mut self, now: Instant) {
        while let Some(e) = self.server.relay_mut().poll_event() {
            let kind = match &e {
                MediaEvent::SessionEnded {
                    session,
                    reason,
                    record,
                } => service_event(
                    "media-relay",
                    "session_ended",
                    &[
                        ("session", session.to_string()),
                        ("reason", reason.as_str().to_string()),
                        ("record", record.to_json_line()),
                    ],
                ),
                other => debug_record("media-relay", other),
            };
            self.log.push(now, kind);
        }
        while let Some(e) = self.server.poll_event() {
            self.log.push(now, debug_record("media-relay", &e));
        }
    }

    fn close(&mut self, net: &mut N) {
        for (_, s) in std::mem::take(&mut self.ports) {
            net.close(s);
        }
        net.close(self.ng);
        self.phase = Phase::Stopped;
    }

    /// A `service` step: `stop` ends every session, telling each call's controller
    /// (`media-ended`, reason `deleted`… sent once) and closes the sockets; `kill` closes
    /// them at once and tells nobody (a crashed relay); `drain` takes no new session and
    /// stops after the last one ends.
    pub fn act(&mut self, net: &mut N, action: m::ServiceAction) -> Result<(), String> {
        if self.phase == Phase::Stopped {
            return Err("the media relay is not running".into());
        }
        let now = net.now();
        match action {
            m::ServiceAction::Kill => self.close(net),
            m::ServiceAction::Stop => {
                let n = self.server.stop_all(now);
                while let Some(t) = self.server.poll_transmit() {
                    let _ = net.udp_send(self.ng, t.to, &t.data);
                }
                self.log.push(
                    now,
                    service_event("media-relay", "stopped", &[("sessions", n.to_string())]),
                );
                self.record(now);
                self.close(net);
            }
            m::ServiceAction::Drain => {
                self.server.relay_mut().set_draining(true);
                self.phase = Phase::Draining;
                self.log.push(
                    now,
                    service_event(
                        "media-relay",
                        "draining",
                        &[("sessions", self.server.relay().session_count().to_string())],
                    ),
                );
            }
        }
        Ok(())
    }
}

crate::agents::net::service_agent!(MediaRelayService, "media-relay", act);
