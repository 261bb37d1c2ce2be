//! The topology part of the scenario model: networks, NATs, firewalls, hosts and links.

use super::*;

// ===== topology =====

/// A network (an IP segment).
#[derive(Clone, Debug, PartialEq)]
pub struct Network {
    /// Its name.
    pub name: String,
    /// Its prefix.
    pub prefix: Prefix,
    /// The NAT or firewall whose inside it is: the hosts' default gateway. `None` for a
    /// flat routed segment (like `internet`).
    pub gateway: Option<Gateway>,
    /// Where the network is declared.
    pub pos: Pos,
}

/// The device a network's hosts route through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gateway {
    /// The NAT or firewall name.
    pub device: String,
    /// Its address on the network (the first free usable one, normally `.1`).
    pub address: IpAddr,
}

/// A NAT's per-protocol binding timeouts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NatTimeouts {
    /// UDP (default 2m).
    pub udp: Duration,
    /// TCP established (default 2h4m).
    pub tcp_established: Duration,
    /// TCP transitory (default 4m).
    pub tcp_transitory: Duration,
    /// ICMP (default 60s).
    pub icmp: Duration,
}

/// Every behaviour axis of a NAT, resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct NatConfig {
    /// Mapping behaviour.
    pub mapping: MappingBehavior,
    /// Filtering behaviour.
    pub filtering: FilteringBehavior,
    /// Port allocation.
    pub port_allocation: PortAllocation,
    /// Keep port parity.
    pub port_parity: bool,
    /// External port range.
    pub port_range: PortRange,
    /// Address pooling.
    pub pooling: Pooling,
    /// Hairpinning.
    pub hairpinning: bool,
    /// Timeouts.
    pub timeouts: NatTimeouts,
    /// Which direction refreshes bindings.
    pub refresh: Refresh,
    /// Most bindings at once.
    pub max_bindings: u32,
    /// Answer to unsolicited inbound packets.
    pub unsolicited: Unsolicited,
    /// IPv4 fragment handling.
    pub fragments: Fragments,
    /// SIP ALG.
    pub sip_alg: SipAlgMode,
}

impl NatConfig {
    /// The defaults of the format with `preset`'s mapping, filtering and port allocation.
    pub fn preset(preset: Preset) -> Self {
        // The preset's axes are the emulator's (one table, RFC 4787 terms); every other
        // axis takes the format's default below.
        let axes = emulator::nat::NatConfig::preset(preset, Vec::new());
        let (mapping, filtering, port_allocation) =
            (axes.mapping, axes.filtering, axes.port_allocation);
        NatConfig {
            mapping,
            filtering,
            port_allocation,
            port_parity: false,
            port_range: PortRange {
                first: 1024,
                last: 65535,
            },
            pooling: Pooling::Paired,
            hairpinning: false,
            timeouts: NatTimeouts {
                udp: Duration::from_secs(120),
                tcp_established: Duration::from_secs(7440),
                tcp_transitory: Duration::from_secs(240),
                icmp: Duration::from_secs(60),
            },
            refresh: Refresh::Outbound,
            max_bindings: 65536,
            unsolicited: Unsolicited::Drop,
            fragments: Fragments::Translate,
            sip_alg: SipAlgMode::Off,
        }
    }
}

/// The NAT profile a NAT was loaded from.
#[derive(Clone, Debug, PartialEq)]
pub struct ProfileInfo {
    /// The profile file (resolved from the scenario's folder).
    pub path: PathBuf,
    /// Its free `name:`.
    pub name: Option<String>,
    /// Its free `description:`.
    pub description: Option<String>,
    /// Its free `recorded:` note (when and where `pinhole probe` recorded it).
    pub recorded: Option<String>,
}

/// A NAT.
#[derive(Clone, Debug, PartialEq)]
pub struct Nat {
    /// Its name.
    pub name: String,
    /// The inside network.
    pub inside: String,
    /// The outside network.
    pub outside: String,
    /// The external address pool (on the outside network).
    pub addresses: Vec<IpAddr>,
    /// Its address on the inside network (the inside hosts' gateway).
    pub inside_address: IpAddr,
    /// The `type:` preset, if given.
    pub preset: Option<Preset>,
    /// The profile, if given.
    pub profile: Option<ProfileInfo>,
    /// The resolved behaviour.
    pub config: NatConfig,
    /// Where `sip_alg: rewrite` was asked for (scenario or profile), if it was.
    pub sip_alg_pos: Option<Pos>,
    /// Where the NAT is declared.
    pub pos: Pos,
}

/// One ordered firewall rule, checked before the class.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    /// Allow or deny.
    pub action: RuleAction,
    /// Protocol (default any).
    pub proto: RuleProto,
    /// Direction (default outbound).
    pub direction: Direction,
    /// Destination ports (default all).
    pub ports: Option<PortRange>,
    /// Destination prefix (default all).
    pub to: Option<Prefix>,
    /// Where the rule is written.
    pub pos: Pos,
}

/// A firewall (routes, does not translate).
#[derive(Clone, Debug, PartialEq)]
pub struct Firewall {
    /// Its name.
    pub name: String,
    /// The inside network.
    pub inside: String,
    /// The outside network.
    pub outside: String,
    /// The class (default open).
    pub class: FirewallClass,
    /// Extra rules before the class.
    pub rules: Vec<Rule>,
    /// Its address on the inside network (the inside hosts' gateway).
    pub inside_address: IpAddr,
    /// Its address on the outside network: the first free one after the hosts'.
    pub outside_address: IpAddr,
    /// Where the firewall is declared.
    pub pos: Pos,
}

/// A host.
#[derive(Clone, Debug, PartialEq)]
pub struct Host {
    /// Its name.
    pub name: String,
    /// Its network.
    pub network: String,
    /// Its addresses (listed, or one auto-assigned).
    pub addresses: Vec<IpAddr>,
    /// Its default gateway (the network's NAT or firewall), if any.
    pub gateway: Option<IpAddr>,
    /// Where the host is declared.
    pub pos: Pos,
}

/// Networks, NATs, firewalls and hosts, in file order.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Topology {
    /// Networks.
    pub networks: Vec<Network>,
    /// NATs.
    pub nats: Vec<Nat>,
    /// Firewalls.
    pub firewalls: Vec<Firewall>,
    /// Hosts.
    pub hosts: Vec<Host>,
}

impl Topology {
    /// The network named `name`.
    pub fn network(&self, name: &str) -> Option<&Network> {
        self.networks.iter().find(|n| n.name == name)
    }
    /// The NAT named `name`.
    pub fn nat(&self, name: &str) -> Option<&Nat> {
        self.nats.iter().find(|n| n.name == name)
    }
    /// The firewall named `name`.
    pub fn firewall(&self, name: &str) -> Option<&Firewall> {
        self.firewalls.iter().find(|n| n.name == name)
    }
    /// The host named `name`.
    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.iter().find(|n| n.name == name)
    }
    /// The default gateway of network `name` (its NAT or firewall), if it has one.
    pub fn gateway_of(&self, network: &str) -> Option<&Gateway> {
        self.network(network)?.gateway.as_ref()
    }
}

// ===== links =====

/// Gilbert–Elliott loss: `p` = P(good→bad), `r` = P(bad→good), `h`/`k` = P(delivered) in
/// the bad/good state. All fractions.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Gilbert {
    /// P(good → bad).
    pub p: f64,
    /// P(bad → good).
    pub r: f64,
    /// P(delivered) in the bad state (default 0).
    pub h: f64,
    /// P(delivered) in the good state (default 1).
    pub k: f64,
}

/// Packet loss.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Loss {
    /// Independent loss with this probability (a fraction).
    Random(f64),
    /// Bursty loss.
    Gilbert(Gilbert),
}

/// The impairments of one direction; `None` = not set (no impairment, or for a `link`
/// step: keep the current setting). `queue` defaults to 50 packets when `rate` is set.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Impairment {
    /// Fixed delay.
    pub delay: Option<Duration>,
    /// Uniform ±jitter.
    pub jitter: Option<Duration>,
    /// Loss.
    pub loss: Option<Loss>,
    /// Duplication probability.
    pub duplicate: Option<f64>,
    /// Reordering probability.
    pub reorder: Option<f64>,
    /// Rate limit.
    pub rate: Option<Rate>,
    /// Rate limiter queue, packets.
    pub queue: Option<u32>,
    /// MTU.
    pub mtu: Option<u32>,
}

impl Impairment {
    /// `self` with every setting of `other` that is set replacing ours.
    pub fn merged(&self, other: &Impairment) -> Impairment {
        Impairment {
            delay: other.delay.or(self.delay),
            jitter: other.jitter.or(self.jitter),
            loss: other.loss.or(self.loss),
            duplicate: other.duplicate.or(self.duplicate),
            reorder: other.reorder.or(self.reorder),
            rate: other.rate.or(self.rate),
            queue: other.queue.or(self.queue),
            mtu: other.mtu.or(self.mtu),
        }
    }
}

/// Which attachment a link impairs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkTarget {
    /// A host's attachment.
    Host(String),
    /// A NAT's or firewall's inside attachment (`NAT.inside`).
    Inside(String),
    /// A NAT's or firewall's outside attachment (`NAT.outside`).
    Outside(String),
}

impl std::fmt::Display for LinkTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LinkTarget::Host(h) => f.write_str(h),
            LinkTarget::Inside(d) => write!(f, "{d}.inside"),
            LinkTarget::Outside(d) => write!(f, "{d}.outside"),
        }
    }
}

/// An impaired attachment: `up` is away from the host (or from the NAT's side).
#[derive(Clone, Debug, PartialEq)]
pub struct Link {
    /// The attachment.
    pub target: LinkTarget,
    /// Away from the host/device side.
    pub up: Impairment,
    /// Towards it.
    pub down: Impairment,
    /// Where the link is declared.
    pub pos: Pos,
}
