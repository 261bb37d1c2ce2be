//! A network of hosts, NATs, firewalls and impaired links, validated before anything runs.
//!
//! Networks are flat segments identified by a prefix. Every NAT and firewall joins two of
//! them: its *inside* network, where it is the default gateway (and holds the inside
//! address, conventionally `.1`), and its *outside* network. A NAT owns the addresses of
//! its external pool on the outside network; a firewall routes without translation, so the
//! outside network reaches the firewall's inside prefix (and everything behind it) through
//! it. NATs nest: a home router whose outside network is a carrier network behind a CGN.
//!
//! Routing on a segment, for a packet to address `D`:
//! 1. an attachment that owns `D` on this segment (a host address, a NAT pool address, a
//!    device's inside address) gets it;
//! 2. else a firewall whose outside is this segment and behind which `D` lies gets it;
//! 3. else the segment's default gateway (the device whose inside it is) gets it, unless
//!    the packet came from that gateway;
//! 4. else the packet is dropped with [`DropReason::NoRoute`](crate::DropReason::NoRoute).

use crate::firewall::FirewallConfig;
use crate::link::LinkConfig;
use crate::nat::NatConfig;
use crate::prefix::Prefix;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

mod builder;

pub use builder::Builder;

/// Index of a network in [`Topology::networks`].
pub type NetworkId = usize;

/// A flat network segment.
#[derive(Clone, Debug, PartialEq)]
pub struct Network {
    /// Name (unique across the topology).
    pub name: String,
    /// Its prefix.
    pub prefix: Prefix,
}

/// A host: an IP stack with one interface on one network.
#[derive(Clone, Debug, PartialEq)]
pub struct Host {
    /// Name.
    pub name: String,
    /// The network it is attached to.
    pub network: NetworkId,
    /// Its addresses on that network (at least one).
    pub addresses: Vec<IpAddr>,
}

/// A NAT between an inside and an outside network.
#[derive(Clone, Debug, PartialEq)]
pub struct NatNode {
    /// Name.
    pub name: String,
    /// The private side, where the NAT is the default gateway.
    pub inside: NetworkId,
    /// The public side, where the external pool lives.
    pub outside: NetworkId,
    /// The NAT's own address on the inside network (the hosts' gateway).
    pub inside_address: IpAddr,
    /// Its behaviour; `config.external` is the pool on the outside network.
    pub config: NatConfig,
}

/// A firewall (a router that filters, without translation).
#[derive(Clone, Debug, PartialEq)]
pub struct FirewallNode {
    /// Name.
    pub name: String,
    /// The protected side, where the firewall is the default gateway.
    pub inside: NetworkId,
    /// The other side.
    pub outside: NetworkId,
    /// The firewall's own address on the inside network.
    pub inside_address: IpAddr,
    /// Its rules.
    pub config: FirewallConfig,
}

/// Where a link's impairments sit: between one attachment and its network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Attachment {
    /// A host's interface.
    Host(usize),
    /// A NAT's inside interface (`NAT.inside`).
    NatInside(usize),
    /// A NAT's outside interface (`NAT.outside`).
    NatOutside(usize),
    /// A firewall's inside interface.
    FirewallInside(usize),
    /// A firewall's outside interface.
    FirewallOutside(usize),
}

/// A place in the topology where something happens (a drop, a NAT or firewall event), by
/// index. Engines and drivers carry places as ids so that nothing is allocated per packet;
/// [`Topology::place_name`] gives the name a report shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Place {
    /// A host.
    Host(usize),
    /// A NAT device.
    Nat(usize),
    /// A firewall device.
    Firewall(usize),
    /// One direction of an attachment's link (`true`: up, away from the attachment).
    Link(Attachment, bool),
    /// A network segment (routing decisions: no route, link scope).
    Network(usize),
}

/// The impairments of one attachment. `up` is away from the attachment into the network,
/// `down` from the network to the attachment (SCENARIO-FORMAT.md "Links").
#[derive(Clone, Debug, PartialEq)]
pub struct LinkSpec {
    /// Which attachment.
    pub at: Attachment,
    /// Away from the attachment.
    pub up: LinkConfig,
    /// Towards the attachment.
    pub down: LinkConfig,
}

/// A validated topology.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Topology {
    /// Networks.
    pub networks: Vec<Network>,
    /// Hosts.
    pub hosts: Vec<Host>,
    /// NATs.
    pub nats: Vec<NatNode>,
    /// Firewalls.
    pub firewalls: Vec<FirewallNode>,
    /// Impaired links (attachments without one forward instantly and losslessly).
    pub links: Vec<LinkSpec>,
}

/// A topology that cannot work.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TopologyError {
    /// Two elements share a name.
    #[error("the name `{0}` is used twice")]
    DuplicateName(String),
    /// A name refers to nothing.
    #[error("`{0}` names no network")]
    UnknownNetwork(String),
    /// Two networks overlap.
    #[error("networks `{0}` and `{1}` overlap")]
    Overlap(String, String),
    /// An address outside the network it is placed in.
    #[error("address {addr} of `{owner}` is not inside network `{network}`")]
    AddressOutside {
        /// Who has the address.
        owner: String,
        /// The address.
        addr: IpAddr,
        /// The network it should be in.
        network: String,
    },
    /// The same address twice on one network.
    #[error("address {0} is used twice")]
    DuplicateAddress(IpAddr),
    /// A network is the inside of two devices.
    #[error("network `{0}` is the inside of two NATs/firewalls")]
    TwoGateways(String),
    /// A device whose inside and outside are the same, or a cycle of devices.
    #[error("NATs/firewalls form a loop through network `{0}`")]
    Loop(String),
    /// A host without addresses, or a NAT with an empty pool.
    #[error("`{0}` has no address")]
    NoAddress(String),
    /// [`Builder`]: an address or prefix that does not parse (owner, text).
    #[error("`{1}` of `{0}` is not an IP address or prefix")]
    BadAddress(String, String),
    /// [`Builder`]: a link on an attachment that does not exist (a host name, or
    /// `DEVICE.inside` / `DEVICE.outside`).
    #[error("`{0}` names no host and no side of a NAT or firewall")]
    UnknownAttachment(String),
}

impl Topology {
    /// A [`Builder`]: networks, hosts, devices and links by name, validated when built.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// Check the invariants the fabrics rely on (the scenario parser reports the same
    /// problems with file positions; this is the last line of defence).
    pub fn validate(&self) -> Result<(), TopologyError> {
        let mut names = std::collections::HashSet::new();
        let all_names = self
            .networks
            .iter()
            .map(|n| &n.name)
            .chain(self.hosts.iter().map(|h| &h.name))
            .chain(self.nats.iter().map(|n| &n.name))
            .chain(self.firewalls.iter().map(|f| &f.name));
        for n in all_names {
            if !names.insert(n.as_str()) {
                return Err(TopologyError::DuplicateName(n.clone()));
            }
        }
        for (i, a) in self.networks.iter().enumerate() {
            for b in &self.networks[i + 1..] {
                if a.prefix.overlaps(&b.prefix) {
                    return Err(TopologyError::Overlap(a.name.clone(), b.name.clone()));
                }
            }
        }
        let net = |id: NetworkId| &self.networks[id];
        let mut seen: HashMap<IpAddr, ()> = HashMap::new();
        let mut place = |owner: &str, addr: IpAddr, id: NetworkId| {
            let n = net(id);
            if !n.prefix.contains(addr) {
                return Err(TopologyError::AddressOutside {
                    owner: owner.to_string(),
                    addr,
                    network: n.name.clone(),
                });
            }
            if seen.insert(addr, ()).is_some() {
                return Err(TopologyError::DuplicateAddress(addr));
            }
            Ok(())
        };
        for h in &self.hosts {
            if h.addresses.is_empty() {
                return Err(TopologyError::NoAddress(h.name.clone()));
            }
            for a in &h.addresses {
                place(&h.name, *a, h.network)?;
            }
        }
        let mut gateway_of: BTreeMap<NetworkId, usize> = BTreeMap::new();
        // Device graph: inside network -> outside network.
        let mut up: BTreeMap<NetworkId, NetworkId> = BTreeMap::new();
        for n in &self.nats {
            if n.config.external.is_empty() {
                return Err(TopologyError::NoAddress(n.name.clone()));
            }
            place(&n.name, n.inside_address, n.inside)?;
            for a in &n.config.external {
                place(&n.name, *a, n.outside)?;
            }
            if gateway_of.insert(n.inside, 0).is_some() {
                return Err(TopologyError::TwoGateways(net(n.inside).name.clone()));
            }
            up.insert(n.inside, n.outside);
        }
        for f in &self.firewalls {
            place(&f.name, f.inside_address, f.inside)?;
            if gateway_of.insert(f.inside, 0).is_some() {
                return Err(TopologyError::TwoGateways(net(f.inside).name.clone()));
            }
            up.insert(f.inside, f.outside);
        }
        for &start in up.keys() {
            let mut cur = start;
            for _ in 0..=self.networks.len() {
                match up.get(&cur) {
                    Some(&next) => {
                        if next == start {
                            return Err(TopologyError::Loop(net(start).name.clone()));
                        }
                        cur = next;
                    }
                    None => break,
                }
            }
        }
        Ok(())
    }

    /// The host with this name.
    pub fn host_id(&self, name: &str) -> Option<usize> {
        self.hosts.iter().position(|h| h.name == name)
    }

    /// The NAT with this name.
    pub fn nat_id(&self, name: &str) -> Option<usize> {
        self.nats.iter().position(|n| n.name == name)
    }

    /// The firewall with this name.
    pub fn firewall_id(&self, name: &str) -> Option<usize> {
        self.firewalls.iter().position(|f| f.name == name)
    }

    /// The network with this name.
    pub fn network_id(&self, name: &str) -> Option<NetworkId> {
        self.networks.iter().position(|n| n.name == name)
    }

    /// The network an attachment sits on.
    pub fn network_of(&self, at: Attachment) -> NetworkId {
        match at {
            Attachment::Host(h) => self.hosts[h].network,
            Attachment::NatInside(n) => self.nats[n].inside,
            Attachment::NatOutside(n) => self.nats[n].outside,
            Attachment::FirewallInside(f) => self.firewalls[f].inside,
            Attachment::FirewallOutside(f) => self.firewalls[f].outside,
        }
    }

    /// A readable name for an attachment (`alice`, `nat-a.inside`).
    pub fn attachment_name(&self, at: Attachment) -> String {
        match at {
            Attachment::Host(h) => self.hosts[h].name.clone(),
            Attachment::NatInside(n) => format!("{}.inside", self.nats[n].name),
            Attachment::NatOutside(n) => format!("{}.outside", self.nats[n].name),
            Attachment::FirewallInside(f) => format!("{}.inside", self.firewalls[f].name),
            Attachment::FirewallOutside(f) => format!("{}.outside", self.firewalls[f].name),
        }
    }

    /// The name of a place as reports show it: the host, NAT, firewall or network name, or
    /// `ATTACHMENT.up` / `ATTACHMENT.down` for a link (`alice.up`, `nat-a.outside.down`).
    pub fn place_name(&self, place: Place) -> String {
        match place {
            Place::Host(h) => self.hosts[h].name.clone(),
            Place::Nat(n) => self.nats[n].name.clone(),
            Place::Firewall(f) => self.firewalls[f].name.clone(),
            Place::Network(n) => self.networks[n].name.clone(),
            Place::Link(at, up) => {
                format!(
                    "{}.{}",
                    self.attachment_name(at),
                    if up { "up" } else { "down" }
                )
            }
        }
    }

    /// The routing table of every network (see the module docs).
    pub fn routes(&self) -> Vec<SegmentRoutes> {
        let mut segs: Vec<SegmentRoutes> = self
            .networks
            .iter()
            .map(|_| SegmentRoutes::default())
            .collect();
        for (i, h) in self.hosts.iter().enumerate() {
            for a in &h.addresses {
                segs[h.network].owners.insert(*a, Attachment::Host(i));
            }
        }
        for (i, n) in self.nats.iter().enumerate() {
            segs[n.inside]
                .owners
                .insert(n.inside_address, Attachment::NatInside(i));
            segs[n.inside].gateway = Some(Attachment::NatInside(i));
            for a in &n.config.external {
                segs[n.outside].owners.insert(*a, Attachment::NatOutside(i));
            }
        }
        for (i, f) in self.firewalls.iter().enumerate() {
            segs[f.inside]
                .owners
                .insert(f.inside_address, Attachment::FirewallInside(i));
            segs[f.inside].gateway = Some(Attachment::FirewallInside(i));
            // Everything behind the firewall: its inside network and, recursively, the
            // networks behind firewalls on that network.
            let mut behind = vec![f.inside];
            let mut k = 0;
            while k < behind.len() {
                let cur = behind[k];
                for g in &self.firewalls {
                    if g.outside == cur && !behind.contains(&g.inside) {
                        behind.push(g.inside);
                    }
                }
                k += 1;
            }
            for b in behind {
                segs[f.outside]
                    .downstream
                    .push((self.networks[b].prefix, Attachment::FirewallOutside(i)));
            }
        }
        segs
    }
}

/// How one network segment forwards packets.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SegmentRoutes {
    /// Addresses owned by an attachment on this segment.
    pub owners: HashMap<IpAddr, Attachment>,
    /// Prefixes behind firewalls whose outside is this segment.
    pub downstream: Vec<(Prefix, Attachment)>,
    /// The device whose inside this segment is.
    pub gateway: Option<Attachment>,
}

impl SegmentRoutes {
    /// Where a packet to `dst` that arrived from `from` goes next (module docs, rules 1–4).
    pub fn route(&self, dst: IpAddr, from: Attachment) -> Option<Attachment> {
        if let Some(a) = self.owners.get(&dst) {
            return Some(*a);
        }
        if let Some((_, a)) = self
            .downstream
            .iter()
            .filter(|(p, a)| p.contains(dst) && *a != from)
            .max_by_key(|(p, _)| p.len())
        {
            return Some(*a);
        }
        self.gateway.filter(|g| *g != from)
    }
}
