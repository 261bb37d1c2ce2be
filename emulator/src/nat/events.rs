//! What the NAT reports: typed events (RFC 4787 §4.3 refreshes, mapping lifetimes, drops)
//! for the binding timeline, counters, and the `netstat`-like mapping snapshot.

use super::table::{Binding, ip_of};
use super::{Nat, proto_of_slot};
use crate::alg::{AlgAction, AlgStats};
use crate::verdict::{Direction, DropReason};
use crate::wire::{Endpoint, PacketInfo, Proto};
use std::collections::BTreeMap;
use std::time::Instant;

/// At most this many undrained events are queued; further ones are counted in
/// [`NatStats::events_dropped`] and discarded (bounded memory when nobody drains).
pub const MAX_EVENTS: usize = 65536;

// ===== NAT events =====

/// Why a mapping went away.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ExpiryCause {
    /// Its idle timeout passed.
    Timeout,
    /// [`Nat::reboot`].
    Reboot,
    /// [`Nat::rebind`] found no free external port for it.
    Rebind,
    /// [`Nat::renumber`].
    Renumber,
}

/// Something the NAT did, for reports (binding timeline, drop counts).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NatEvent {
    /// A new mapping (RFC 4787 §4.1).
    MappingCreated {
        /// UDP, TCP or ICMP (echo identifier mapping).
        proto: Proto,
        /// Internal endpoint.
        internal: Endpoint,
        /// External endpoint it was given.
        external: Endpoint,
        /// The remote endpoint the creating packet was sent to (ICMP: port 0).
        remote: Endpoint,
    },
    /// A mapping went away.
    MappingExpired {
        /// Protocol.
        proto: Proto,
        /// Internal endpoint.
        internal: Endpoint,
        /// External endpoint it had.
        external: Endpoint,
        /// Why.
        cause: ExpiryCause,
        /// Packets that refreshed it, the creating one included (RFC 4787 §4.3).
        refreshes: u32,
        /// When it was last refreshed (or created): its expiry minus the timeout of its
        /// state then. Packets are summarised here, never reported one by one.
        last_refresh: Option<Instant>,
    },
    /// [`Nat::rebind`] moved a live mapping to a new external endpoint.
    MappingRebound {
        /// Protocol.
        proto: Proto,
        /// Internal endpoint.
        internal: Endpoint,
        /// The old external endpoint.
        old_external: Endpoint,
        /// The new external endpoint.
        new_external: Endpoint,
    },
    /// The SIP ALG rewrote a packet ([`crate::alg`]).
    SipAlg(AlgAction),
    /// A packet was dropped (possibly with a reply sent).
    PacketDropped {
        /// The direction it travelled.
        dir: Direction,
        /// Why.
        reason: DropReason,
        /// Its protocol, if it parsed.
        proto: Option<Proto>,
        /// Its source (ICMP: identifier as port), if it parsed.
        src: Option<Endpoint>,
        /// Its destination, if it parsed.
        dst: Option<Endpoint>,
    },
}

/// Counters for reports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NatStats {
    /// Outbound packets translated and forwarded.
    pub translated_out: u64,
    /// Inbound packets translated and forwarded.
    pub translated_in: u64,
    /// Packets hairpinned.
    pub hairpinned: u64,
    /// Mappings created.
    pub created: u64,
    /// Mappings that timed out.
    pub expired: u64,
    /// Mappings removed by reboot, renumber or a failed rebind.
    pub removed: u64,
    /// Mappings moved by rebind.
    pub rebound: u64,
    /// Replies (ICMP errors, RSTs) sent for refused packets.
    pub replies: u64,
    /// Events discarded because the queue held [`MAX_EVENTS`].
    pub events_dropped: u64,
    /// Dropped packets per reason (a `Reply` counts as a drop too).
    pub drops: BTreeMap<DropReason, u64>,
    /// What the SIP ALG did (all zero when it is off).
    pub alg: AlgStats,
}

impl NatStats {
    /// Drops for one reason.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.drops.get(&reason).copied().unwrap_or(0)
    }

    /// All drops.
    pub fn total_dropped(&self) -> u64 {
        self.drops.values().sum()
    }
}

/// One live mapping, for debugging (`netstat`-like snapshot).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MappingInfo {
    /// Protocol.
    pub proto: Proto,
    /// Internal endpoint.
    pub internal: Endpoint,
    /// External endpoint.
    pub external: Endpoint,
    /// The remote the mapping was created towards.
    pub remote: Endpoint,
    /// When it expires unless refreshed.
    pub expires: Instant,
    /// Packets that refreshed it, the creating one included.
    pub refreshes: u32,
    /// When it was last refreshed (or created): its expiry minus its state's timeout.
    pub last_refresh: Instant,
    /// TCP only: whether the connection is established (RFC 5382 §5).
    pub tcp_established: bool,
}

impl Nat {
    /// Queue an event, or count it as lost when [`MAX_EVENTS`] are waiting.
    pub(super) fn push_event(&mut self, e: NatEvent) {
        if self.events.len() >= MAX_EVENTS {
            self.stats.events_dropped += 1;
        } else {
            self.events.push_back(e);
        }
    }

    /// Count a dropped packet and report it.
    pub(super) fn note_drop(
        &mut self,
        dir: Direction,
        reason: DropReason,
        info: Option<&PacketInfo>,
    ) {
        *self.stats.drops.entry(reason).or_insert(0) += 1;
        let (proto, src, dst) = match info {
            Some(i) => (Some(i.proto), i.src_endpoint(), i.dst_endpoint()),
            None => (None, None, None),
        };
        self.push_event(NatEvent::PacketDropped {
            dir,
            reason,
            proto,
            src,
            dst,
        });
    }

    /// A binding's external endpoint.
    #[inline]
    pub(super) fn ext_endpoint(&self, b: &Binding) -> Endpoint {
        Endpoint::new(self.pool.addrs[b.ext_idx as usize], b.ext_port)
    }

    /// Count and report a mapping that went away.
    pub(super) fn removed_event(&mut self, b: &Binding, cause: ExpiryCause) {
        if cause == ExpiryCause::Timeout {
            self.stats.expired += 1;
        } else {
            self.stats.removed += 1;
        }
        let ev = NatEvent::MappingExpired {
            proto: proto_of_slot(b.slot()),
            internal: Endpoint::new(ip_of(b.int_addr, b.v6()), b.int_port),
            external: self.ext_endpoint(b),
            cause,
            refreshes: b.refreshes,
            last_refresh: self.instant(b.expires.saturating_sub(self.timeout_of(b))),
        };
        self.push_event(ev);
    }
}
