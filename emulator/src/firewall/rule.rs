//! The policy: ordered [`Rule`]s (a chain of `Rule -> Action`, first match wins, like
//! turmoil's rule chain) in front of one [`FirewallClass`].

use crate::prefix::Prefix;
use crate::verdict::Direction;
use crate::wire::{Endpoint, IcmpKind, L4, PacketInfo, Proto, tcp_flags};

/// The classic enterprise firewall classes (scenario key `class:`). Each says which packets
/// may *start* a flow; packets of an existing flow (and ICMP errors about one) pass in both
/// directions whatever the class (see [`Firewall`](super::Firewall)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum FirewallClass {
    /// `open`: every packet passes both ways; flows are still tracked (for events and
    /// counts). TCP flows may be picked up mid-stream.
    #[default]
    Open,
    /// `udp-replies-only`: anything may go out; inbound only on a flow the inside started
    /// (UDP: exact 5-tuple, i.e. address- and port-dependent filtering as in RFC 4787 §5;
    /// TCP: a flow whose first segment was an outbound SYN). Nothing unsolicited comes in.
    UdpRepliesOnly,
    /// `tcp-outbound-only`: outbound TCP connections (starting with a SYN) and their
    /// replies; outbound ICMP echo requests and their replies (so `ping` works, as in most
    /// enterprise networks that block UDP); UDP is blocked both ways; nothing unsolicited
    /// comes in.
    TcpOutboundOnly,
    /// `https-only`: only outbound TCP connections to port 443 and their replies. Everything
    /// else is blocked, including UDP 443 (QUIC, RFC 9000) and ICMP echo; ICMP errors about
    /// an allowed connection still pass (path MTU discovery, RFC 1191 / RFC 8201, needs them).
    HttpsOnly,
    /// `http-proxy-only`: only outbound TCP connections to one of the configured proxy
    /// endpoints (address and port, e.g. an HTTP CONNECT proxy, RFC 9110 §9.3.6) and their
    /// replies. Everything else is blocked, as [`HttpsOnly`](Self::HttpsOnly).
    HttpProxyOnly,
}

impl FirewallClass {
    /// The scenario-format name (`udp-replies-only`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            FirewallClass::Open => "open",
            FirewallClass::UdpRepliesOnly => "udp-replies-only",
            FirewallClass::TcpOutboundOnly => "tcp-outbound-only",
            FirewallClass::HttpsOnly => "https-only",
            FirewallClass::HttpProxyOnly => "http-proxy-only",
        }
    }

    /// Every class as a scenario writes it (`class:`).
    pub const VALUES: &'static [&'static str] = &[
        "open",
        "udp-replies-only",
        "tcp-outbound-only",
        "https-only",
        "http-proxy-only",
    ];

    /// The class for a scenario keyword (exact, lower case).
    pub fn from_keyword(s: &str) -> Option<Self> {
        [
            FirewallClass::Open,
            FirewallClass::UdpRepliesOnly,
            FirewallClass::TcpOutboundOnly,
            FirewallClass::HttpsOnly,
            FirewallClass::HttpProxyOnly,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }

    /// Whether this class lets `info`, which belongs to no existing flow, through in
    /// direction `dir` (and so start a flow). `proxies` are the HTTP proxy endpoints.
    pub(crate) fn admits_new(
        self,
        dir: Direction,
        info: &PacketInfo,
        proxies: &[Endpoint],
    ) -> bool {
        let outbound = dir == Direction::Outbound;
        match self {
            FirewallClass::Open => true,
            FirewallClass::UdpRepliesOnly => outbound && (!is_tcp(info) || is_initial_syn(info)),
            FirewallClass::TcpOutboundOnly => {
                outbound
                    && (is_initial_syn(info)
                        || matches!(
                            info.l4,
                            L4::Icmp {
                                kind: IcmpKind::EchoRequest,
                                ..
                            }
                        ))
            }
            FirewallClass::HttpsOnly => {
                outbound && is_initial_syn(info) && matches!(info.l4, L4::Tcp { dst_port: 443, .. })
            }
            FirewallClass::HttpProxyOnly => {
                outbound
                    && is_initial_syn(info)
                    && info
                        .dst_endpoint()
                        .is_some_and(|dst| proxies.contains(&dst))
            }
        }
    }

    /// Whether this class lets an ICMP error that relates to no flow through.
    pub(crate) fn admits_unrelated_icmp_error(self, dir: Direction) -> bool {
        match self {
            FirewallClass::Open => true,
            FirewallClass::UdpRepliesOnly => dir == Direction::Outbound,
            _ => false,
        }
    }
}

fn is_tcp(info: &PacketInfo) -> bool {
    matches!(info.l4, L4::Tcp { .. })
}

/// A segment that may open a TCP connection: SYN without ACK or RST (RFC 9293 §3.5).
pub(crate) fn is_initial_syn(info: &PacketInfo) -> bool {
    matches!(info.l4, L4::Tcp { flags, .. }
        if flags & (tcp_flags::SYN | tcp_flags::ACK | tcp_flags::RST) == tcp_flags::SYN)
}

/// What a matching [`Rule`] does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Forward the packet and track its flow, so that its replies pass too.
    Allow,
    /// Drop the packet ([`DropReason::Firewall`](crate::DropReason::Firewall)).
    Deny,
}

/// The protocol a [`Rule`] matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RuleProto {
    /// UDP (RFC 768).
    Udp,
    /// TCP (RFC 9293).
    Tcp,
    /// ICMP (RFC 792) or ICMPv6 (RFC 4443), queries and errors.
    Icmp,
    /// Any protocol, including ones pinhole does not parse further.
    Any,
}

/// Gives a rule field's enum its scenario keywords (`action:`, `proto:`, `direction:`),
/// so the scenario model uses the enum itself and `pinhole validate` lists `VALUES`.
macro_rules! keywords {
    ($name:ident { $($var:ident = $text:literal),+ $(,)? }) => {
        impl $name {
            /// Every value as a scenario writes it.
            pub const VALUES: &'static [&'static str] = &[$($text),+];

            /// The value for a scenario keyword (exact, lower case).
            pub fn from_keyword(s: &str) -> Option<Self> {
                match s {
                    $($text => Some($name::$var),)+
                    _ => None,
                }
            }
        }
    };
}

keywords!(Action {
    Allow = "allow",
    Deny = "deny",
});
keywords!(RuleProto {
    Udp = "udp",
    Tcp = "tcp",
    Icmp = "icmp",
    Any = "any",
});
keywords!(Direction {
    Outbound = "outbound",
    Inbound = "inbound",
});

/// One extra rule, checked before the class (scenario: `{ action, proto, direction, ports,
/// to }`). All given conditions must hold for the rule to match.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Rule {
    /// What happens to a matching packet.
    pub action: Action,
    /// Protocol to match.
    pub proto: RuleProto,
    /// Direction to match.
    pub direction: Direction,
    /// Destination port range, inclusive. A rule with ports only matches UDP and TCP
    /// packets that carry a transport header (not ICMP, not non-first fragments).
    pub ports: Option<(u16, u16)>,
    /// Destination network.
    pub to: Option<Prefix>,
}

impl Rule {
    /// A rule matching every packet of `proto` in `direction`.
    pub fn new(action: Action, proto: RuleProto, direction: Direction) -> Self {
        Rule {
            action,
            proto,
            direction,
            ports: None,
            to: None,
        }
    }

    /// Restrict the rule to destination ports `lo..=hi`.
    pub fn ports(mut self, lo: u16, hi: u16) -> Self {
        self.ports = Some((lo, hi));
        self
    }

    /// Restrict the rule to destinations inside `to`.
    pub fn to(mut self, to: Prefix) -> Self {
        self.to = Some(to);
        self
    }

    /// Whether the rule matches `info` travelling in `dir`.
    pub fn matches(&self, dir: Direction, info: &PacketInfo) -> bool {
        if dir != self.direction {
            return false;
        }
        let proto_ok = match self.proto {
            RuleProto::Udp => info.proto == Proto::Udp,
            RuleProto::Tcp => info.proto == Proto::Tcp,
            RuleProto::Icmp => info.proto == Proto::Icmp,
            RuleProto::Any => true,
        };
        if !proto_ok {
            return false;
        }
        if let Some((lo, hi)) = self.ports {
            let port = match info.l4 {
                L4::Udp { dst_port, .. } | L4::Tcp { dst_port, .. } => dst_port,
                _ => return false,
            };
            if port < lo || port > hi {
                return false;
            }
        }
        self.to.is_none_or(|p| p.contains(info.dst))
    }
}
