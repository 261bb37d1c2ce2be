//! The one classification of a transport header into a mapping's key, for both directions
//! and for the packets quoted in ICMP errors (RFC 4787 §4.1: UDP and TCP by port;
//! RFC 5508 §3.1: ICMP echo by identifier, its remote "port" being 0).

use super::table::{P_ICMP, P_TCP, P_UDP};
use crate::verdict::Direction;
use crate::wire::{IcmpKind, L4};

/// The transport part of a packet's mapping key, seen from the NAT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Flow {
    /// `P_UDP`, `P_TCP` or `P_ICMP` (the table's protocol slot).
    pub(super) slot: u8,
    /// The port on the NAT's side of the packet: the internal port of an outbound packet,
    /// the external port of an inbound one; an ICMP echo's identifier.
    pub(super) local_port: u16,
    /// The remote's port (ICMP echo: 0).
    pub(super) remote_port: u16,
    /// TCP flags (0 for UDP and ICMP).
    pub(super) flags: u8,
}

/// What a transport header is to the NAT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Class {
    /// UDP, TCP or ICMP echo: translated by a mapping.
    Flow(Flow),
    /// An ICMP error: translated through the packet it quotes (RFC 5508 §4.2).
    IcmpError,
    /// Anything else (other protocols, other ICMP types, non-first fragments).
    Unsupported,
}

/// Classify `l4` of a packet travelling in `dir`: an outbound packet's source is the NAT's
/// side, an inbound packet's destination is. A packet quoted in an ICMP error travelled
/// the other way from the error, so it is classified with the direction it was sent in.
#[inline]
pub(super) fn classify(l4: &L4, dir: Direction) -> Class {
    let (slot, src_port, dst_port, flags) = match *l4 {
        L4::Udp { src_port, dst_port } => (P_UDP, src_port, dst_port, 0),
        L4::Tcp {
            src_port,
            dst_port,
            flags,
            ..
        } => (P_TCP, src_port, dst_port, flags),
        L4::Icmp {
            kind: IcmpKind::EchoRequest | IcmpKind::EchoReply,
            id,
        } => {
            return Class::Flow(Flow {
                slot: P_ICMP,
                local_port: id,
                remote_port: 0,
                flags: 0,
            });
        }
        L4::Icmp {
            kind: IcmpKind::Error { .. },
            ..
        } => return Class::IcmpError,
        _ => return Class::Unsupported,
    };
    let (local_port, remote_port) = match dir {
        Direction::Outbound => (src_port, dst_port),
        Direction::Inbound => (dst_port, src_port),
    };
    Class::Flow(Flow {
        slot,
        local_port,
        remote_port,
        flags,
    })
}
