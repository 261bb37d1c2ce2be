//! A builder for topologies by name (turmoil's `Builder`), for tests and benchmarks: no
//! index bookkeeping, addresses and prefixes as text, every reference and invariant
//! checked by [`Builder::build`].

use super::{
    Attachment, FirewallNode, Host, LinkSpec, NatNode, Network, NetworkId, Topology, TopologyError,
};
use crate::firewall::FirewallConfig;
use crate::link::LinkConfig;
use crate::nat::NatConfig;
use crate::prefix::Prefix;
use std::net::IpAddr;

/// Collects networks, hosts, NATs, firewalls and links by name; [`build`](Self::build)
/// resolves the names, so the order of the calls does not matter. Each kind of element
/// gets its ids in the order it was added (the first host is host 0, …), as in
/// [`Topology`]'s vectors.
///
/// ```
/// use emulator::nat::{NatConfig, Preset};
/// use emulator::topology::Topology;
///
/// let topo = Topology::builder()
///     .network("internet", "203.0.113.0/24")
///     .network("home", "10.0.1.0/24")
///     .nat(
///         "nat",
///         "home",
///         "internet",
///         NatConfig::preset(Preset::PortRestricted, vec!["203.0.113.11".parse()?]),
///     )
///     .host("alice", "home", "10.0.1.2")
///     .host("server", "internet", "203.0.113.5")
///     .build()?;
/// assert_eq!(topo.nats[0].inside_address.to_string(), "10.0.1.1");
/// assert_eq!(topo.host_id("server"), Some(1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Default)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct Builder {
    networks: Vec<(String, String)>,
    hosts: Vec<(String, String, String)>,
    nats: Vec<Device<NatConfig>>,
    firewalls: Vec<Device<FirewallConfig>>,
    links: Vec<(String, LinkConfig, LinkConfig)>,
}

#[derive(Clone, Debug)]
struct Device<C> {
    name: String,
    inside: String,
    outside: String,
    config: C,
}

impl Builder {
    /// A network segment `name` with prefix `prefix` (`"203.0.113.0/24"`).
    pub fn network(mut self, name: &str, prefix: &str) -> Self {
        self.networks.push((name.into(), prefix.into()));
        self
    }

    /// A host `name` with one interface on `network`, at `address`.
    pub fn host(mut self, name: &str, network: &str, address: &str) -> Self {
        self.hosts
            .push((name.into(), network.into(), address.into()));
        self
    }

    /// A NAT `name` between `inside` and `outside`; `config.external` is its pool on the
    /// outside network. Its own inside address (the hosts' gateway) is the inside
    /// network's first address (`.1`), the convention of the module docs.
    pub fn nat(mut self, name: &str, inside: &str, outside: &str, config: NatConfig) -> Self {
        self.nats.push(Device {
            name: name.into(),
            inside: inside.into(),
            outside: outside.into(),
            config,
        });
        self
    }

    /// A firewall `name` between `inside` and `outside`, at the inside network's first
    /// address.
    pub fn firewall(
        mut self,
        name: &str,
        inside: &str,
        outside: &str,
        config: FirewallConfig,
    ) -> Self {
        self.firewalls.push(Device {
            name: name.into(),
            inside: inside.into(),
            outside: outside.into(),
            config,
        });
        self
    }

    /// Impairments on one attachment, named as reports name it: a host (`"alice"`) or one
    /// side of a NAT or firewall (`"nat.inside"`, `"corp.outside"`). `up` is away from
    /// the attachment, `down` towards it (SCENARIO-FORMAT.md "Links").
    pub fn link(mut self, attachment: &str, up: LinkConfig, down: LinkConfig) -> Self {
        self.links.push((attachment.into(), up, down));
        self
    }

    /// Resolve every name, parse every address and prefix, and
    /// [`validate`](Topology::validate) the result.
    pub fn build(self) -> Result<Topology, TopologyError> {
        let mut topo = Topology::default();
        for (name, prefix) in &self.networks {
            let prefix: Prefix = prefix
                .parse()
                .map_err(|_| TopologyError::BadAddress(name.clone(), prefix.clone()))?;
            topo.networks.push(Network {
                name: name.clone(),
                prefix,
            });
        }
        for (name, network, address) in &self.hosts {
            topo.hosts.push(Host {
                name: name.clone(),
                network: network_id(&topo, network)?,
                addresses: vec![
                    address
                        .parse()
                        .map_err(|_| TopologyError::BadAddress(name.clone(), address.clone()))?,
                ],
            });
        }
        for d in self.nats {
            let (inside, outside, inside_address) = sides(&topo, &d)?;
            topo.nats.push(NatNode {
                name: d.name,
                inside,
                outside,
                inside_address,
                config: d.config,
            });
        }
        for d in self.firewalls {
            let (inside, outside, inside_address) = sides(&topo, &d)?;
            topo.firewalls.push(FirewallNode {
                name: d.name,
                inside,
                outside,
                inside_address,
                config: d.config,
            });
        }
        for (name, up, down) in self.links {
            let at = attachment(&topo, &name)?;
            topo.links.push(LinkSpec { at, up, down });
        }
        topo.validate()?;
        Ok(topo)
    }
}

fn network_id(topo: &Topology, name: &str) -> Result<NetworkId, TopologyError> {
    topo.network_id(name)
        .ok_or_else(|| TopologyError::UnknownNetwork(name.into()))
}

/// A device's inside and outside networks and its address on the inside (`.1`).
fn sides<C>(
    topo: &Topology,
    d: &Device<C>,
) -> Result<(NetworkId, NetworkId, IpAddr), TopologyError> {
    let inside = network_id(topo, &d.inside)?;
    let outside = network_id(topo, &d.outside)?;
    let address = topo.networks[inside]
        .prefix
        .nth(1)
        .ok_or_else(|| TopologyError::NoAddress(d.name.clone()))?;
    Ok((inside, outside, address))
}

/// The attachment a link name means: a host, or `DEVICE.inside` / `DEVICE.outside`.
fn attachment(topo: &Topology, name: &str) -> Result<Attachment, TopologyError> {
    if let Some(h) = topo.host_id(name) {
        return Ok(Attachment::Host(h));
    }
    let unknown = || TopologyError::UnknownAttachment(name.into());
    let (device, side) = name.rsplit_once('.').ok_or_else(unknown)?;
    let inside = match side {
        "inside" => true,
        "outside" => false,
        _ => return Err(unknown()),
    };
    if let Some(n) = topo.nat_id(device) {
        return Ok(if inside {
            Attachment::NatInside(n)
        } else {
            Attachment::NatOutside(n)
        });
    }
    match topo.firewall_id(device) {
        Some(f) if inside => Ok(Attachment::FirewallInside(f)),
        Some(f) => Ok(Attachment::FirewallOutside(f)),
        None => Err(unknown()),
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::firewall::FirewallClass;
    use crate::nat::Preset;
    use std::time::Duration;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn nat(pool: &str) -> NatConfig {
        NatConfig::preset(Preset::PortRestricted, vec![ip(pool)])
    }

    #[test]
    fn names_become_ids_in_declaration_order() {
        let delayed = LinkConfig {
            delay: Duration::from_millis(30),
            ..LinkConfig::default()
        };
        // Devices and hosts before the networks they sit on: order does not matter.
        let t = Topology::builder()
            .nat("cgn", "carrier", "internet", nat("203.0.113.20"))
            .nat("router", "home", "carrier", nat("100.64.0.10"))
            .firewall(
                "corp",
                "office",
                "internet",
                FirewallConfig::new(FirewallClass::UdpRepliesOnly),
            )
            .host("alice", "home", "10.0.1.2")
            .host("server", "internet", "203.0.113.5")
            .link("router.outside", LinkConfig::default(), delayed.clone())
            .link("server", delayed.clone(), LinkConfig::default())
            .link("corp.inside", LinkConfig::default(), delayed.clone())
            .network("internet", "203.0.113.0/24")
            .network("carrier", "100.64.0.0/24")
            .network("home", "10.0.1.0/24")
            .network("office", "198.51.100.0/24")
            .build()
            .unwrap();
        assert_eq!(t.network_id("home"), Some(2));
        assert_eq!((t.nats[0].inside, t.nats[0].outside), (1, 0));
        assert_eq!((t.nats[1].inside, t.nats[1].outside), (2, 1));
        assert_eq!(t.nats[1].inside_address, ip("10.0.1.1"));
        assert_eq!(t.firewalls[0].inside_address, ip("198.51.100.1"));
        assert_eq!(t.hosts[1].network, 0);
        assert_eq!(t.hosts[0].addresses, vec![ip("10.0.1.2")]);
        let ats: Vec<Attachment> = t.links.iter().map(|l| l.at).collect();
        assert_eq!(
            ats,
            vec![
                Attachment::NatOutside(1),
                Attachment::Host(1),
                Attachment::FirewallInside(0)
            ]
        );
        assert_eq!(t.links[0].down, delayed);
    }

    #[test]
    fn unknown_names_and_bad_text_are_errors() {
        let base = || {
            Topology::builder()
                .network("lan", "10.0.0.0/24")
                .host("a", "lan", "10.0.0.2")
        };
        assert_eq!(
            base().host("b", "wan", "10.0.0.3").build(),
            Err(TopologyError::UnknownNetwork("wan".into()))
        );
        assert_eq!(
            base().host("b", "lan", "10.0.0.300").build(),
            Err(TopologyError::BadAddress("b".into(), "10.0.0.300".into()))
        );
        assert_eq!(
            base().network("wan", "10.1.0.0/33").build(),
            Err(TopologyError::BadAddress(
                "wan".into(),
                "10.1.0.0/33".into()
            ))
        );
        for name in ["b", "a.inside", "nat.sideways"] {
            assert_eq!(
                base()
                    .link(name, LinkConfig::default(), LinkConfig::default())
                    .build(),
                Err(TopologyError::UnknownAttachment(name.into()))
            );
        }
        // The built topology is validated.
        assert_eq!(
            base().host("b", "lan", "10.0.0.2").build(),
            Err(TopologyError::DuplicateAddress(ip("10.0.0.2")))
        );
    }
}
