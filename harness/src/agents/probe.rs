//! The `probe` step on the virtual fabric: a thin driver between [`relay::stun::Prober`]
//! (RFC 5780 §4 behaviour discovery) and two UDP sockets on a virtual host.

use emulator::fabric::sim::{Sim, SimError, SocketId};
use relay::stun::{ProbeEvent, ProbeReport, Prober, ProberConfig, SocketId as ProbeSocket};
use std::net::SocketAddr;
use std::time::Instant;

/// A running probe.
pub struct Probe {
    prober: Prober,
    primary: SocketId,
    secondary: SocketId,
    report: Option<ProbeReport>,
}

impl Probe {
    /// Open the two probe sockets on `host` and start probing.
    pub fn start(
        sim: &mut Sim,
        host: usize,
        config: ProberConfig,
        seed: u64,
    ) -> Result<Self, SimError> {
        let addr = sim.host_addresses(host)[0];
        let (primary, p1) = sim.udp_bind(host, Some(addr), 0)?;
        let (secondary, p2) = sim.udp_bind(host, Some(addr), 0)?;
        let mut prober = Prober::new(config, sim.now(), seed);
        prober.set_local_addresses(SocketAddr::new(addr, p1), SocketAddr::new(addr, p2));
        let mut p = Probe {
            prober,
            primary,
            secondary,
            report: None,
        };
        p.flush(sim);
        Ok(p)
    }

    /// When the prober next needs time.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.report.is_some() {
            None
        } else {
            self.prober.poll_timeout()
        }
    }

    /// The final report, once done.
    pub fn report(&self) -> Option<&ProbeReport> {
        self.report.as_ref()
    }

    /// Whether probing has finished.
    pub fn is_done(&self) -> bool {
        self.report.is_some()
    }

    /// Feed received datagrams and due timers to the prober, send what it asks.
    pub fn poll(&mut self, sim: &mut Sim) {
        if self.report.is_some() {
            return;
        }
        let now = sim.now();
        for (id, s) in [
            (ProbeSocket::Primary, self.primary),
            (ProbeSocket::Secondary, self.secondary),
        ] {
            while let Some((from, _, data)) = sim.udp_recv(s) {
                self.prober.handle_input(now, id, from, &data);
            }
        }
        if self.prober.poll_timeout().is_some_and(|t| t <= now) {
            self.prober.handle_timeout(now);
        }
        self.flush(sim);
        if self.report.is_some() {
            sim.close(self.primary);
            sim.close(self.secondary);
        }
    }

    fn flush(&mut self, sim: &mut Sim) {
        while let Some(t) = self.prober.poll_transmit() {
            let s = match t.socket {
                ProbeSocket::Primary => self.primary,
                ProbeSocket::Secondary => self.secondary,
            };
            let _ = sim.udp_send(s, t.to, None, &t.data);
        }
        while let Some(e) = self.prober.poll_event() {
            if let ProbeEvent::Done(r) = e {
                self.report = Some(r);
            }
        }
    }
}
