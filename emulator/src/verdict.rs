//! What a packet device decides about one packet.

use crate::wire::PacketBuf;

/// Which way a packet crosses a device with an inside and an outside (NAT, firewall).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    /// From the inside (private) network towards the outside.
    Outbound,
    /// From the outside towards the inside.
    Inbound,
}

impl Direction {
    /// The other direction.
    pub fn reverse(self) -> Self {
        match self {
            Direction::Outbound => Direction::Inbound,
            Direction::Inbound => Direction::Outbound,
        }
    }
}

/// A packet device's decision about one packet, which it may have rewritten in place.
#[derive(Debug)]
pub enum Verdict {
    /// Pass the (possibly rewritten) packet on in the direction it was travelling.
    Forward,
    /// The packet was rewritten and turns around: deliver it back to the side it came from
    /// (NAT hairpinning, RFC 4787 §6).
    Hairpin,
    /// Drop the packet; the reason is counted.
    Drop(DropReason),
    /// Drop the packet and send this one back towards its sender instead (an ICMP error
    /// or a TCP RST). The reason says why the original was refused.
    Reply(DropReason, PacketBuf),
}

/// Why a packet was dropped. Drops are counted per reason and reported; they are not errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum DropReason {
    /// Not a well-formed IPv4/IPv6 packet (bad length, header, or checksum where checked).
    Malformed,
    /// A protocol the device does not translate (e.g. SCTP through a NAT).
    UnsupportedProtocol,
    /// Inbound packet with no mapping for its destination.
    NoMapping,
    /// Inbound packet refused by the NAT's filtering behaviour (RFC 4787 §5).
    Filtered,
    /// The NAT's binding table is full (`max_bindings`).
    BindingLimit,
    /// No external port was free for a new mapping.
    PortsExhausted,
    /// Hairpinned packet while hairpinning is disabled.
    HairpinDisabled,
    /// A non-first IPv4 fragment whose first fragment was never seen, or fragments are set to drop.
    Fragment,
    /// ICMP error whose embedded packet matches no mapping.
    IcmpNoMapping,
    /// Refused by a firewall rule or class.
    Firewall,
    /// Lost on a link (random loss model).
    LinkLoss,
    /// A link's rate-limiter queue was full.
    QueueFull,
    /// Larger than a link's MTU.
    Mtu,
    /// TTL / hop limit reached zero.
    TtlExpired,
    /// No route to the destination in the topology.
    NoRoute,
    /// Link-scope traffic (multicast, broadcast or link-local destination, e.g. IPv6
    /// router solicitations, MLD, IGMP), which a router never forwards (RFC 4291 §2.5.6,
    /// RFC 1812 §5.3.7): the emulated segments have no neighbour on-link to answer it.
    LinkScope,
    /// The NAT has no external address of the packet's IP family (e.g. IPv6 through an
    /// IPv4-only pool).
    AddressFamily,
}

impl DropReason {
    /// A stable snake_case name for reports.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::UnsupportedProtocol => "unsupported_protocol",
            DropReason::NoMapping => "no_mapping",
            DropReason::Filtered => "filtered",
            DropReason::BindingLimit => "binding_limit",
            DropReason::PortsExhausted => "ports_exhausted",
            DropReason::HairpinDisabled => "hairpin_disabled",
            DropReason::Fragment => "fragment",
            DropReason::IcmpNoMapping => "icmp_no_mapping",
            DropReason::Firewall => "firewall",
            DropReason::LinkLoss => "link_loss",
            DropReason::QueueFull => "queue_full",
            DropReason::Mtu => "mtu",
            DropReason::TtlExpired => "ttl_expired",
            DropReason::NoRoute => "no_route",
            DropReason::LinkScope => "link_scope",
            DropReason::AddressFamily => "address_family",
        }
    }
}
