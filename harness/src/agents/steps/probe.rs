//! The `probe` step: a thin driver between [`relay::stun::Prober`] (RFC 5780 §4 behaviour
//! discovery) and two UDP sockets on a host of any [`Net`] (plus, for the port-allocation
//! test, [`PORT_SAMPLES`] sample sockets, half of each local port parity where the host's
//! port allocator allows it).

use crate::agents::net::{Net, NetError};
use relay::stun::{
    PORT_SAMPLES, ProbeEvent, ProbeReport, Prober, ProberConfig, SocketId as ProbeSocket,
};
use std::net::SocketAddr;
use std::time::Instant;

/// A running probe.
pub struct Probe<N: Net> {
    prober: Prober,
    primary: N::Socket,
    secondary: N::Socket,
    samples: Vec<N::Socket>,
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
        let samples = if config.tests.port_allocation {
            bind_samples(net, host, addr)?
        } else {
            Vec::new()
        };
        let mut prober = Prober::new(config, net.now(), seed);
        prober.set_local_addresses(SocketAddr::new(addr, p1), SocketAddr::new(addr, p2));
        let sample_addrs: Vec<SocketAddr> = samples
            .iter()
            .map(|&(_, port)| SocketAddr::new(addr, port))
            .collect();
        prober.set_sample_addresses(&sample_addrs);
        let mut p = Probe {
            prober,
            primary,
            secondary,
            samples: samples.into_iter().map(|(s, _)| s).collect(),
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
        let sockets = [
            (ProbeSocket::Primary, self.primary),
            (ProbeSocket::Secondary, self.secondary),
        ]
        .into_iter()
        .chain(
            self.samples
                .iter()
                .enumerate()
                .map(|(i, &s)| (ProbeSocket::Sample(i as u8), s)),
        );
        for (id, s) in sockets {
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
            for s in self.samples.drain(..) {
                net.close(s);
            }
        }
    }

    fn flush(&mut self, net: &mut N) {
        while let Some(t) = self.prober.poll_transmit() {
            let s = match t.socket {
                ProbeSocket::Primary => self.primary,
                ProbeSocket::Secondary => self.secondary,
                ProbeSocket::Sample(i) => match self.samples.get(i as usize) {
                    Some(&s) => s,
                    None => continue,
                },
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

/// Bind [`PORT_SAMPLES`] ephemeral UDP sockets on `host`, half with even and half with odd
/// local ports when the host's allocator hands out both within a bounded number of tries
/// (the prober needs both parities to judge port parity). Sockets of a parity already
/// complete are closed again.
fn bind_samples<N: Net>(
    net: &mut N,
    host: usize,
    addr: std::net::IpAddr,
) -> Result<Vec<(N::Socket, u16)>, NetError> {
    let half = PORT_SAMPLES / 2;
    let mut kept: Vec<(N::Socket, u16)> = Vec::with_capacity(PORT_SAMPLES);
    let mut spare = Vec::new();
    let mut count = [0usize; 2];
    for _ in 0..PORT_SAMPLES * 4 {
        if kept.len() == PORT_SAMPLES {
            break;
        }
        let (s, port) = net.udp_bind(host, Some(addr), 0)?;
        let parity = usize::from(port % 2 == 1);
        if count[parity] < half {
            count[parity] += 1;
            kept.push((s, port));
        } else {
            spare.push((s, port));
        }
    }
    // A host whose allocator gives one parity only: use what there is (parity is then
    // reported as undetermined).
    while kept.len() < PORT_SAMPLES {
        match spare.pop() {
            Some(s) => kept.push(s),
            None => break,
        }
    }
    for (s, _) in spare {
        net.close(s);
    }
    Ok(kept)
}

crate::agents::net::agent_by_inherent_methods!(Probe);
