//! NAT configuration: every RFC 4787 / RFC 5382 / RFC 5508 behaviour as an independent axis,
//! the four classic presets, and validation.

use std::net::IpAddr;
use std::time::Duration;

/// Gives a configuration enum its scenario keywords (SCENARIO-FORMAT.md "NATs"): the
/// enum owns them, so the scenario model uses it directly and `pinhole validate` lists
/// [`VALUES`](MappingBehavior::VALUES) in its errors.
macro_rules! keywords {
    ($name:ident { $($var:ident = $text:literal),+ $(,)? }) => {
        impl $name {
            /// Every value as a scenario writes it.
            pub const VALUES: &'static [&'static str] = &[$($text),+];

            /// The value as a scenario writes it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$var => $text),+
                }
            }

            /// The value for a scenario keyword (exact, lower case).
            pub fn from_keyword(s: &str) -> Option<Self> {
                match s {
                    $($text => Some($name::$var),)+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

/// How the NAT decides whether an outbound packet reuses an existing mapping
/// (RFC 4787 §4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MappingBehavior {
    /// Endpoint-independent mapping (EIM): one mapping per internal endpoint, whatever the
    /// destination (RFC 4787 §4.1, REQ-1).
    EndpointIndependent,
    /// Address-dependent mapping: one mapping per internal endpoint and remote address.
    AddressDependent,
    /// Address-and-port-dependent mapping ("symmetric"): one mapping per internal endpoint
    /// and remote address:port.
    AddressAndPortDependent,
}

/// Which inbound packets the NAT lets through a mapping (RFC 4787 §5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FilteringBehavior {
    /// Endpoint-independent filtering: any remote may send to a live mapping (RFC 4787 §5,
    /// "full cone").
    EndpointIndependent,
    /// Address-dependent filtering: only remote addresses the mapping has sent to.
    AddressDependent,
    /// Address-and-port-dependent filtering: only remote address:port pairs the mapping has
    /// sent to.
    AddressAndPortDependent,
}

/// How a new mapping's external port is chosen (RFC 4787 §4.2.1, REQ-3/4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PortAllocation {
    /// Port preservation: the internal port if it is in range (and of the right parity)
    /// and free on the chosen external address; otherwise the fallback is
    /// [`Sequential`](Self::Sequential): the next free port after the last one allocated
    /// on that address and protocol (O(1) amortised even when many hosts use one port).
    Preserve,
    /// The next free port after the last one allocated on that external address and
    /// protocol, wrapping inside the range.
    Sequential,
    /// A uniformly random port of the range (seeded [`crate::rng::SimRng`]); after 32 busy
    /// draws, the next free port above the last draw.
    Random,
}

/// How external addresses are chosen from a pool of several (RFC 4787 §4.1, REQ-2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Pooling {
    /// Paired: every mapping of one internal IP address uses the same external address
    /// (chosen at random from the pool when the host gets its first mapping, kept while it
    /// has any). RFC 4787 REQ-2 recommends this.
    Paired,
    /// Arbitrary: each mapping takes a random pool address (the next one with free ports if
    /// that one is full).
    Arbitrary,
}

/// Which packets refresh a mapping's timer (RFC 4787 §4.3, REQ-6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Refresh {
    /// Only outbound packets refresh (REQ-6: outbound MUST refresh).
    Outbound,
    /// Inbound packets refresh too (REQ-6: inbound MAY).
    Both,
}

/// What the NAT does with an inbound packet that has no mapping or is filtered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Unsolicited {
    /// Drop silently (RFC 4787 §5 / RFC 5382 REQ-4 allow it).
    Drop,
    /// Answer with ICMP port unreachable (v4 type 3 code 3, v6 type 1 code 4) from the
    /// external address that was addressed.
    Icmp,
    /// Answer TCP segments with a TCP RST (RFC 5382 §4.3 permits it) and UDP datagrams and
    /// ICMP queries with ICMP port unreachable.
    Rst,
}

/// What the NAT does with IP fragments (RFC 4787 §11, REQ-14).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Fragments {
    /// Translate fragments: the first fragment (offset 0) is translated like any packet and
    /// remembered for 15 s (RFC 791's suggested reassembly timer bound); later fragments of
    /// the same datagram get the same address rewrite. Fragments that arrive before their
    /// first fragment are dropped (no reassembly or buffering).
    Translate,
    /// Drop every fragment.
    Drop,
}

keywords!(MappingBehavior {
    EndpointIndependent = "endpoint-independent",
    AddressDependent = "address-dependent",
    AddressAndPortDependent = "address-and-port-dependent",
});
keywords!(FilteringBehavior {
    EndpointIndependent = "endpoint-independent",
    AddressDependent = "address-dependent",
    AddressAndPortDependent = "address-and-port-dependent",
});
keywords!(PortAllocation {
    Preserve = "preserve",
    Sequential = "sequential",
    Random = "random",
});
keywords!(Pooling {
    Paired = "paired",
    Arbitrary = "arbitrary",
});
keywords!(Refresh {
    Outbound = "outbound",
    Both = "both",
});
keywords!(Unsolicited {
    Drop = "drop",
    Icmp = "icmp",
    Rst = "rst",
});
keywords!(Fragments {
    Translate = "translate",
    Drop = "drop",
});

/// The classic NAT types as axis presets (RFC 4787 §4.1, §5 terminology mapping).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Preset {
    /// EIM + EIF, port preservation.
    FullCone,
    /// EIM + address-dependent filtering, port preservation.
    Restricted,
    /// EIM + address-and-port-dependent filtering, port preservation.
    PortRestricted,
    /// APDM + APDF, random ports.
    Symmetric,
}

keywords!(Preset {
    FullCone = "full-cone",
    Restricted = "restricted",
    PortRestricted = "port-restricted",
    Symmetric = "symmetric",
});

/// Idle timeouts per protocol and TCP state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Timeouts {
    /// UDP mapping timeout (RFC 4787 REQ-5: at least 2 minutes; default 2 min).
    pub udp: Duration,
    /// TCP mapping in the established state (RFC 5382 REQ-5: at least 2 h 4 min).
    pub tcp_established: Duration,
    /// TCP mapping in a transitory state: SYN not yet seen both ways, FIN or RST seen
    /// (RFC 5382 REQ-5: at least 4 min).
    pub tcp_transitory: Duration,
    /// ICMP query (echo) mapping (RFC 5508 REQ-1: at least 60 s).
    pub icmp: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            udp: Duration::from_secs(120),
            tcp_established: Duration::from_secs(2 * 3600 + 4 * 60),
            tcp_transitory: Duration::from_secs(240),
            icmp: Duration::from_secs(60),
        }
    }
}

impl Timeouts {
    /// The longest of the four timeouts.
    pub fn max(&self) -> Duration {
        self.udp
            .max(self.tcp_established)
            .max(self.tcp_transitory)
            .max(self.icmp)
    }
}

/// A NAT's configuration. Build it from a [`Preset`] and adjust axes with the setters:
///
/// ```
/// use emulator::nat::{NatConfig, Preset, PortAllocation};
/// let cfg = NatConfig::preset(Preset::PortRestricted, vec!["203.0.113.11".parse().unwrap()])
///     .port_allocation(PortAllocation::Sequential)
///     .hairpinning(true);
/// assert!(cfg.hairpinning);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct NatConfig {
    /// The external address pool (outside addresses), IPv4 and/or IPv6.
    pub external: Vec<IpAddr>,
    /// Mapping behaviour.
    pub mapping: MappingBehavior,
    /// Filtering behaviour.
    pub filtering: FilteringBehavior,
    /// Port allocation.
    pub port_allocation: PortAllocation,
    /// Port parity (RFC 4787 §4.2.2, REQ-4 "port parity"): the external port has the parity
    /// of the internal port.
    pub port_parity: bool,
    /// External port (and ICMP identifier) range, inclusive. Default 1024–65535.
    pub port_range: (u16, u16),
    /// IP address pooling.
    pub pooling: Pooling,
    /// Hairpinning (RFC 4787 §6, REQ-9; RFC 5382 REQ-8).
    pub hairpinning: bool,
    /// Idle timeouts.
    pub timeouts: Timeouts,
    /// Refresh direction.
    pub refresh: Refresh,
    /// The most live mappings the NAT holds; a new one beyond is refused
    /// (`DropReason::BindingLimit`). The table itself holds at most 2^24 - 1.
    pub max_bindings: usize,
    /// What unsolicited inbound packets get.
    pub unsolicited: Unsolicited,
    /// Fragment handling.
    pub fragments: Fragments,
    /// The SIP ALG ([`crate::alg`]); off by default.
    pub sip_alg: SipAlgMode,
}

/// Whether the NAT runs the SIP ALG (`sip_alg:` in SCENARIO-FORMAT.md).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SipAlgMode {
    /// No ALG: SIP passes like any other traffic (the default).
    #[default]
    Off,
    /// Rewrite Via/Contact/SDP addresses like consumer routers ([`crate::alg`]).
    Rewrite,
}

keywords!(SipAlgMode {
    Off = "off",
    Rewrite = "rewrite",
});

impl NatConfig {
    /// The preset's axes (SCENARIO-FORMAT.md table) with the other defaults: no port
    /// parity, ports 1024–65535, paired pooling, no hairpinning, default [`Timeouts`],
    /// outbound refresh, 65536 bindings, unsolicited packets dropped, fragments translated.
    pub fn preset(p: Preset, external: Vec<IpAddr>) -> Self {
        let (mapping, filtering, port_allocation) = match p {
            Preset::FullCone => (
                MappingBehavior::EndpointIndependent,
                FilteringBehavior::EndpointIndependent,
                PortAllocation::Preserve,
            ),
            Preset::Restricted => (
                MappingBehavior::EndpointIndependent,
                FilteringBehavior::AddressDependent,
                PortAllocation::Preserve,
            ),
            Preset::PortRestricted => (
                MappingBehavior::EndpointIndependent,
                FilteringBehavior::AddressAndPortDependent,
                PortAllocation::Preserve,
            ),
            Preset::Symmetric => (
                MappingBehavior::AddressAndPortDependent,
                FilteringBehavior::AddressAndPortDependent,
                PortAllocation::Random,
            ),
        };
        NatConfig {
            external,
            mapping,
            filtering,
            port_allocation,
            port_parity: false,
            port_range: (1024, 65535),
            pooling: Pooling::Paired,
            hairpinning: false,
            timeouts: Timeouts::default(),
            refresh: Refresh::Outbound,
            max_bindings: 65536,
            unsolicited: Unsolicited::Drop,
            fragments: Fragments::Translate,
            sip_alg: SipAlgMode::Off,
        }
    }

    /// The default configuration (port-restricted preset, as SCENARIO-FORMAT.md says).
    pub fn new(external: Vec<IpAddr>) -> Self {
        Self::preset(Preset::PortRestricted, external)
    }

    /// Set the mapping behaviour.
    pub fn mapping(mut self, v: MappingBehavior) -> Self {
        self.mapping = v;
        self
    }

    /// Set the filtering behaviour.
    pub fn filtering(mut self, v: FilteringBehavior) -> Self {
        self.filtering = v;
        self
    }

    /// Set the port allocation.
    pub fn port_allocation(mut self, v: PortAllocation) -> Self {
        self.port_allocation = v;
        self
    }

    /// Set port parity.
    pub fn port_parity(mut self, v: bool) -> Self {
        self.port_parity = v;
        self
    }

    /// Set the external port range (inclusive).
    pub fn port_range(mut self, lo: u16, hi: u16) -> Self {
        self.port_range = (lo, hi);
        self
    }

    /// Set address pooling.
    pub fn pooling(mut self, v: Pooling) -> Self {
        self.pooling = v;
        self
    }

    /// Enable or disable hairpinning.
    pub fn hairpinning(mut self, v: bool) -> Self {
        self.hairpinning = v;
        self
    }

    /// Set all timeouts.
    pub fn timeouts(mut self, v: Timeouts) -> Self {
        self.timeouts = v;
        self
    }

    /// Set the UDP timeout.
    pub fn timeout_udp(mut self, v: std::time::Duration) -> Self {
        self.timeouts.udp = v;
        self
    }

    /// Set the refresh direction.
    pub fn refresh(mut self, v: Refresh) -> Self {
        self.refresh = v;
        self
    }

    /// Set the binding limit.
    pub fn max_bindings(mut self, v: usize) -> Self {
        self.max_bindings = v;
        self
    }

    /// Set what unsolicited inbound packets get.
    pub fn unsolicited(mut self, v: Unsolicited) -> Self {
        self.unsolicited = v;
        self
    }

    /// Set fragment handling.
    pub fn fragments(mut self, v: Fragments) -> Self {
        self.fragments = v;
        self
    }

    /// Turn the SIP ALG on or off.
    pub fn sip_alg(mut self, v: SipAlgMode) -> Self {
        self.sip_alg = v;
        self
    }

    /// Check the configuration; [`super::Nat::new`] calls this.
    pub fn validate(&self) -> Result<(), NatConfigError> {
        validate_pool(&self.external)?;
        let (lo, hi) = self.port_range;
        if lo == 0 || lo > hi {
            return Err(NatConfigError::PortRange { lo, hi });
        }
        let t = &self.timeouts;
        if [t.udp, t.tcp_established, t.tcp_transitory, t.icmp]
            .iter()
            .any(|d| d.is_zero())
        {
            return Err(NatConfigError::ZeroTimeout);
        }
        Ok(())
    }
}

pub(super) fn validate_pool(pool: &[IpAddr]) -> Result<(), NatConfigError> {
    if pool.is_empty() {
        return Err(NatConfigError::EmptyPool);
    }
    if pool.len() > u16::MAX as usize {
        return Err(NatConfigError::PoolTooLarge(pool.len()));
    }
    for (i, a) in pool.iter().enumerate() {
        let bad = match a {
            IpAddr::V4(v) => v.is_unspecified() || v.is_multicast() || v.is_broadcast(),
            IpAddr::V6(v) => v.is_unspecified() || v.is_multicast(),
        };
        if bad {
            return Err(NatConfigError::InvalidAddress(*a));
        }
        if pool[..i].contains(a) {
            return Err(NatConfigError::DuplicateAddress(*a));
        }
    }
    Ok(())
}

/// A NAT configuration that cannot work.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NatConfigError {
    /// The external address pool is empty.
    #[error("the external address pool is empty")]
    EmptyPool,
    /// More than 65535 pool addresses.
    #[error("the external address pool has {0} addresses; at most 65535 are supported")]
    PoolTooLarge(usize),
    /// An address listed twice in the pool.
    #[error("external address {0} is listed twice")]
    DuplicateAddress(IpAddr),
    /// Unspecified, multicast or broadcast pool address.
    #[error("{0} cannot be an external address")]
    InvalidAddress(IpAddr),
    /// Port range with `lo == 0` or `lo > hi`.
    #[error("bad port range {lo}-{hi}")]
    PortRange {
        /// Lower bound.
        lo: u16,
        /// Upper bound.
        hi: u16,
    },
    /// A timeout of zero.
    #[error("timeouts must be longer than zero")]
    ZeroTimeout,
}

#[cfg(test)]
mod test {
    use super::*;

    /// Every keyword parses back to the value that writes it, and nothing else parses:
    /// the scenario format's NAT keywords live here (SCENARIO-FORMAT.md "NATs").
    #[test]
    fn keywords_round_trip() {
        macro_rules! check {
            ($($t:ty),+) => {$(
                for k in <$t>::VALUES {
                    let v = <$t>::from_keyword(k).expect("a listed keyword parses");
                    assert_eq!(v.as_str(), *k);
                    assert_eq!(v.to_string(), *k);
                }
                assert_eq!(<$t>::from_keyword("Endpoint-Independent"), None);
                assert_eq!(<$t>::from_keyword(""), None);
            )+};
        }
        check!(
            MappingBehavior,
            FilteringBehavior,
            PortAllocation,
            Pooling,
            Refresh,
            Unsolicited,
            Fragments,
            SipAlgMode,
            Preset
        );
        assert_eq!(
            MappingBehavior::VALUES,
            FilteringBehavior::VALUES,
            "RFC 4787 names one set of behaviours for both axes"
        );
    }

    fn a(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn presets_match_the_scenario_table() {
        let ext = vec![a("203.0.113.11")];
        let fc = NatConfig::preset(Preset::FullCone, ext.clone());
        assert_eq!(fc.mapping, MappingBehavior::EndpointIndependent);
        assert_eq!(fc.filtering, FilteringBehavior::EndpointIndependent);
        assert_eq!(fc.port_allocation, PortAllocation::Preserve);
        let r = NatConfig::preset(Preset::Restricted, ext.clone());
        assert_eq!(r.filtering, FilteringBehavior::AddressDependent);
        let pr = NatConfig::preset(Preset::PortRestricted, ext.clone());
        assert_eq!(pr.filtering, FilteringBehavior::AddressAndPortDependent);
        assert_eq!(pr, NatConfig::new(ext.clone()));
        let s = NatConfig::preset(Preset::Symmetric, ext);
        assert_eq!(s.mapping, MappingBehavior::AddressAndPortDependent);
        assert_eq!(s.filtering, FilteringBehavior::AddressAndPortDependent);
        assert_eq!(s.port_allocation, PortAllocation::Random);
        // Other defaults.
        assert!(!s.port_parity && !s.hairpinning);
        assert_eq!(s.port_range, (1024, 65535));
        assert_eq!(s.pooling, Pooling::Paired);
        assert_eq!(s.timeouts.udp, Duration::from_secs(120));
        assert_eq!(s.timeouts.tcp_established, Duration::from_secs(7440));
        assert_eq!(s.timeouts.tcp_transitory, Duration::from_secs(240));
        assert_eq!(s.timeouts.icmp, Duration::from_secs(60));
        assert_eq!(s.refresh, Refresh::Outbound);
        assert_eq!(s.max_bindings, 65536);
        assert_eq!(s.unsolicited, Unsolicited::Drop);
        assert_eq!(s.fragments, Fragments::Translate);
    }

    #[test]
    fn validation() {
        assert_eq!(
            NatConfig::new(vec![]).validate(),
            Err(NatConfigError::EmptyPool)
        );
        let ext = vec![a("203.0.113.11")];
        assert_eq!(
            NatConfig::new(ext.clone())
                .port_range(2000, 1000)
                .validate(),
            Err(NatConfigError::PortRange { lo: 2000, hi: 1000 })
        );
        assert!(
            NatConfig::new(ext.clone())
                .port_range(0, 10)
                .validate()
                .is_err()
        );
        assert_eq!(
            NatConfig::new(vec![a("203.0.113.11"), a("203.0.113.11")]).validate(),
            Err(NatConfigError::DuplicateAddress(a("203.0.113.11")))
        );
        assert_eq!(
            NatConfig::new(vec![a("0.0.0.0")]).validate(),
            Err(NatConfigError::InvalidAddress(a("0.0.0.0")))
        );
        assert_eq!(
            NatConfig::new(ext.clone())
                .timeout_udp(Duration::ZERO)
                .validate(),
            Err(NatConfigError::ZeroTimeout)
        );
        assert!(
            NatConfig::new(ext)
                .port_range(5000, 5000)
                .validate()
                .is_ok()
        );
    }
}
