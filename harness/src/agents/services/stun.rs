//! The `stun` service: a thin driver between [`relay::stun::Server`] and UDP sockets on a
//! host of any [`Net`] (one socket per RFC 5780 transport address).

use crate::agents::net::{Net, NetError};
use crate::run::events::{ServiceLog, debug_record};
use relay::stun::{Server, ServerConfig};
use std::net::SocketAddr;
use std::time::Instant;

/// A STUN server running on a virtual host.
pub struct StunService<N: Net> {
    server: Server,
    host: usize,
    sockets: Vec<(SocketAddr, N::Socket)>,
    log: ServiceLog,
}

impl<N: Net> StunService<N> {
    /// Bind every listen address of `config` on `host` and start serving.
    pub fn start(net: &mut N, host: usize, config: ServerConfig) -> Result<Self, String> {
        let server = Server::new(config.clone()).map_err(|e| e.to_string())?;
        let mut sockets = Vec::new();
        for addr in config.listen_addresses() {
            let (s, _) = net
                .udp_bind(host, Some(addr.ip()), addr.port())
                .map_err(|e: NetError| e.to_string())?;
            sockets.push((addr, s));
        }
        Ok(StunService {
            server,
            host,
            sockets,
            log: ServiceLog::default(),
        })
    }

    /// The server never has timers of its own; it only answers.
    pub fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    /// Answer whatever arrived.
    pub fn poll(&mut self, net: &mut N) {
        let now = net.now();
        for &(local, s) in &self.sockets {
            while let Some((from, data)) = net.udp_recv(s) {
                self.server.handle_input(now, local, from, &data);
            }
        }
        while let Some(t) = self.server.poll_transmit() {
            if let Some(&(_, s)) = self.sockets.iter().find(|(a, _)| *a == t.from) {
                // A full send buffer drops the answer, as a congested socket would.
                let _ = net.udp_send(s, t.to, &t.data);
            }
        }
        while let Some(e) = self.server.poll_event() {
            self.log.push(now, debug_record("stun", &e));
        }
    }

    /// Close the sockets.
    pub fn stop(&mut self, net: &mut N) {
        for (_, s) in self.sockets.drain(..) {
            net.close(s);
        }
    }
}

crate::agents::net::service_agent!(StunService, "stun");
