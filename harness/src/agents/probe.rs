//! The `probe` step: a thin driver between [`relay::stun::Prober`] (RFC 5780 §4 behaviour
//! discovery) and two UDP sockets on a host of any [`Net`].

use super::net::{Agent, Net, NetError};
use relay::stun::{ProbeEvent, ProbeReport, Prober, ProberConfig, SocketId as ProbeSocket};
use std::net::SocketAddr;
use std::time::Instant;

/// A running probe.
pub struct Probe<N: Net> {
    prober: Prober,
    primary: N::Socket,
    secondary: N::Socket,
    report: Option<ProbeReport>,
}

impl<N: Net> Probe<N> {
    /// Open the two probe sockets on `host` and start probing.
    pub fn start(
        net: &mut N,
        host: usize,
        config: ProberConfig,
        seed: u64,
    ) -> Result<Self, NetError> {
        let addr = *net
            .host_addresses(host)
            .first()
            .ok_or(NetError::NoHost(host))?;
        let (primary, p1) = net.udp_bind(host, Some(addr), 0)?;
        let (secondary, p2) = net.udp_bind(host, Some(addr), 0)?;
        let mut prober = Prober::new(config, net.now(), seed);
        prober.set_local_addresses(SocketAddr::new(addr, p1), SocketAddr::new(addr, p2));
        let mut p = Probe {
            prober,
            primary,
            secondary,
            report: None,
        };
        p.flush(net);
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
    pub fn poll(&mut self, net: &mut N) {
        if self.report.is_some() {
            return;
        }
        let now = net.now();
        for (id, s) in [
            (ProbeSocket::Primary, self.primary),
            (ProbeSocket::Secondary, self.secondary),
        ] {
            while let Some((from, data)) = net.udp_recv(s) {
                self.prober.handle_input(now, id, from, &data);
            }
        }
        if self.prober.poll_timeout().is_some_and(|t| t <= now) {
            self.prober.handle_timeout(now);
        }
        self.flush(net);
        if self.report.is_some() {
            net.close(self.primary);
            net.close(self.secondary);
        }
    }

    fn flush(&mut self, net: &mut N) {
        while let Some(t) = self.prober.poll_transmit() {
            let s = match t.socket {
                ProbeSocket::Primary => self.primary,
                ProbeSocket::Secondary => self.secondary,
            };
            let _ = net.udp_send(s, t.to, &t.data);
        }
        while let Some(e) = self.prober.poll_event() {
            if let ProbeEvent::Done(r) = e {
                self.report = Some(r);
            }
        }
    }
}

impl<N: Net> Agent<N> for Probe<N> {
    fn poll(&mut self, net: &mut N) {
        Probe::poll(self, net)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        Probe::poll_timeout(self)
    }
    fn is_done(&self) -> bool {
        Probe::is_done(self)
    }
}
