//! The `dispatcher` service: a thin driver between [`relay::control::Dispatcher`] and one
//! UDP socket (the ng port proxies send to and relays are driven from).

use crate::agents::net::{Net, NetError};
use crate::run::events::{ServiceLog, debug_record};
use crate::scenario::model as m;
use relay::control::{Dispatcher, DispatcherConfig};
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

/// The dispatcher settings of a `dispatcher` service on a host whose first address is `ip`,
/// over relays reached at `relays` (each relay host's first address and ng port).
pub fn dispatcher_config(
    ip: IpAddr,
    spec: &m::Dispatcher,
    relays: Vec<SocketAddr>,
    seed: u64,
) -> DispatcherConfig {
    let mut c = DispatcherConfig::new(SocketAddr::new(ip, spec.port), relays);
    c.secret = spec.secret.as_ref().map(|s| s.as_bytes().to_vec());
    c.health_interval = spec.health_interval;
    c.seed = seed;
    c
}

/// A dispatcher running on a host.
pub struct DispatcherService<N: Net> {
    core: Dispatcher,
    host: usize,
    socket: N::Socket,
    log: ServiceLog,
}

impl<N: Net> DispatcherService<N> {
    /// Bind the ng port and start health-checking the relays.
    pub fn start(net: &mut N, host: usize, config: DispatcherConfig) -> Result<Self, String> {
        let (socket, _) = net
            .udp_bind(host, Some(config.listen.ip()), config.listen.port())
            .map_err(|e: NetError| e.to_string())?;
        let now = net.now();
        Ok(DispatcherService {
            core: Dispatcher::new(config, now),
            host,
            socket,
            log: ServiceLog::default(),
        })
    }

    /// When the core wants its timeout.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.core.poll_timeout()
    }

    /// Take what arrived, run due timers, send what the core wants sent.
    pub fn poll(&mut self, net: &mut N) {
        let now = net.now();
        while let Some((from, data)) = net.udp_recv(self.socket) {
            self.core.handle_datagram(now, from, &data);
        }
        if self.core.poll_timeout().is_some_and(|t| t <= now) {
            self.core.handle_timeout(now);
        }
        while let Some(t) = self.core.poll_transmit() {
            // A full send buffer drops the datagram; ng retransmits.
            let _ = net.udp_send(self.socket, t.to, &t.data);
        }
        while let Some(e) = self.core.poll_event() {
            self.log.push(now, debug_record("dispatcher", &e));
        }
    }

    /// Close the socket.
    pub fn stop(&mut self, net: &mut N) {
        net.close(self.socket);
    }
}

crate::agents::net::service_agent!(DispatcherService, "dispatcher");
