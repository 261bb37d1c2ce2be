//! From the scenario model to the emulator's configuration types.

use crate::scenario::model::{self as m, Spec};
use emulator::firewall::{FirewallConfig, Rule};
use emulator::link::{LinkConfig, Loss};
use emulator::nat::{NatConfig, Timeouts};
use emulator::topology::{self as t, Attachment, LinkSpec, Topology};
use emulator::wire::Endpoint;
use std::time::Duration;

/// The default rate-limiter queue, in packets (SCENARIO-FORMAT.md "Links").
pub const DEFAULT_QUEUE: usize = 50;

/// The emulator's NAT configuration for a scenario NAT.
pub fn nat_config(n: &m::Nat) -> NatConfig {
    let c = &n.config;
    NatConfig {
        external: n.addresses.clone(),
        mapping: c.mapping,
        filtering: c.filtering,
        port_allocation: c.port_allocation,
        port_parity: c.port_parity,
        port_range: (c.port_range.first, c.port_range.last),
        pooling: c.pooling,
        hairpinning: c.hairpinning,
        timeouts: Timeouts {
            udp: c.timeouts.udp,
            tcp_established: c.timeouts.tcp_established,
            tcp_transitory: c.timeouts.tcp_transitory,
            icmp: c.timeouts.icmp,
        },
        refresh: c.refresh,
        max_bindings: c.max_bindings as usize,
        unsolicited: c.unsolicited,
        fragments: c.fragments,
        sip_alg: c.sip_alg,
    }
}

/// The emulator's link configuration for a scenario impairment (missing keys: no effect).
pub fn link_config(i: &m::Impairment) -> LinkConfig {
    LinkConfig {
        delay: i.delay.unwrap_or(Duration::ZERO),
        jitter: i.jitter.unwrap_or(Duration::ZERO),
        loss: match i.loss {
            None => Loss::None,
            Some(m::Loss::Random(p)) => Loss::Bernoulli(p),
            Some(m::Loss::Gilbert(g)) => Loss::GilbertElliott {
                p: g.p,
                r: g.r,
                h: g.h,
                k: g.k,
            },
        },
        duplicate: i.duplicate.unwrap_or(0.0),
        reorder: i.reorder.unwrap_or(0.0),
        rate: i.rate.map(|r| r.bits_per_sec),
        queue: i.queue.map(|q| q as usize).unwrap_or(DEFAULT_QUEUE),
        mtu: i.mtu.map(|m| m.min(u16::MAX as u32) as u16),
    }
}

/// The attachment a link target names.
pub fn attachment(topo: &Topology, target: &m::LinkTarget) -> Option<Attachment> {
    match target {
        m::LinkTarget::Host(h) => topo.host_id(h).map(Attachment::Host),
        m::LinkTarget::Inside(d) => topo
            .nat_id(d)
            .map(Attachment::NatInside)
            .or_else(|| topo.firewall_id(d).map(Attachment::FirewallInside)),
        m::LinkTarget::Outside(d) => topo
            .nat_id(d)
            .map(Attachment::NatOutside)
            .or_else(|| topo.firewall_id(d).map(Attachment::FirewallOutside)),
    }
}

/// Build the emulator topology of a scenario cell. The model is already validated, so a
/// failure here is a bug; it is reported as a message rather than a panic.
pub fn topology(spec: &Spec) -> Result<Topology, String> {
    let st = &spec.topology;
    let mut topo = Topology::default();
    for n in &st.networks {
        topo.networks.push(t::Network {
            name: n.name.clone(),
            prefix: n.prefix,
        });
    }
    let net = |name: &str, topo: &Topology| {
        topo.network_id(name)
            .ok_or_else(|| format!("unknown network `{name}`"))
    };
    for h in &st.hosts {
        let network = net(&h.network, &topo)?;
        topo.hosts.push(t::Host {
            name: h.name.clone(),
            network,
            addresses: h.addresses.clone(),
        });
    }
    for n in &st.nats {
        let (inside, outside) = (net(&n.inside, &topo)?, net(&n.outside, &topo)?);
        topo.nats.push(t::NatNode {
            name: n.name.clone(),
            inside,
            outside,
            inside_address: n.inside_address,
            config: nat_config(n),
        });
    }
    // HTTP proxies a `http-proxy-only` firewall lets through: every http-proxy service.
    let proxies: Vec<Endpoint> = spec
        .services
        .iter()
        .filter_map(|s| {
            let p = s.http_proxy.as_ref()?;
            let h = st.host(&s.host)?;
            Some(Endpoint::new(*h.addresses.first()?, p.port))
        })
        .collect();
    for f in &st.firewalls {
        let (inside, outside) = (net(&f.inside, &topo)?, net(&f.outside, &topo)?);
        let rules = f
            .rules
            .iter()
            .map(|r| Rule {
                action: r.action,
                proto: r.proto,
                direction: r.direction,
                ports: r.ports.map(|p| (p.first, p.last)),
                to: r.to,
            })
            .collect();
        topo.firewalls.push(t::FirewallNode {
            name: f.name.clone(),
            inside,
            outside,
            inside_address: f.inside_address,
            config: FirewallConfig {
                rules,
                proxies: proxies.clone(),
                ..FirewallConfig::new(f.class)
            },
        });
    }
    for l in &spec.links {
        let at = attachment(&topo, &l.target)
            .ok_or_else(|| format!("link target `{}` names nothing", l.target))?;
        topo.links.push(LinkSpec {
            at,
            up: link_config(&l.up),
            down: link_config(&l.down),
        });
    }
    topo.validate().map_err(|e| e.to_string())?;
    Ok(topo)
}
