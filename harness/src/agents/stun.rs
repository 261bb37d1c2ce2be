//! The `stun` service on the virtual fabric: a thin driver between [`relay::stun::Server`]
//! and UDP sockets on a virtual host (one socket per RFC 5780 transport address).

use emulator::fabric::sim::{Sim, SimError, SocketId};
use relay::stun::{Server, ServerConfig};
use std::net::SocketAddr;
use std::time::Instant;

/// A STUN server running on a virtual host.
pub struct StunService {
    server: Server,
    sockets: Vec<(SocketAddr, SocketId)>,
}

impl StunService {
    /// Bind every listen address of `config` on `host` and start serving.
    pub fn start(sim: &mut Sim, host: usize, config: ServerConfig) -> Result<Self, String> {
        let server = Server::new(config.clone()).map_err(|e| e.to_string())?;
        let mut sockets = Vec::new();
        for addr in config.listen_addresses() {
            let (s, _) = sim
                .udp_bind(host, Some(addr.ip()), addr.port())
                .map_err(|e: SimError| e.to_string())?;
            sockets.push((addr, s));
        }
        Ok(StunService { server, sockets })
    }

    /// The server never has timers of its own; it only answers.
    pub fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    /// Answer whatever arrived.
    pub fn poll(&mut self, sim: &mut Sim) {
        let now = sim.now();
        for &(local, s) in &self.sockets {
            while let Some((from, _, data)) = sim.udp_recv(s) {
                self.server.handle_input(now, local, from, &data);
            }
        }
        while let Some(t) = self.server.poll_transmit() {
            if let Some(&(_, s)) = self.sockets.iter().find(|(a, _)| *a == t.from) {
                // A full send buffer drops the answer, as a congested socket would.
                let _ = sim.udp_send(s, t.to, None, &t.data);
            }
        }
        while self.server.poll_event().is_some() {}
    }

    /// Close the sockets.
    pub fn stop(&mut self, sim: &mut Sim) {
        for (_, s) in self.sockets.drain(..) {
            sim.close(s);
        }
    }
}
