//! IPv4 fragments (RFC 4787 §11, REQ-14): the first fragment is translated like any packet
//! and its translation is remembered, by (direction, protocol, id, addresses), for the
//! later fragments, which carry no ports. Nothing is reassembled.

use super::table::{A16, a16};
use super::{Fragments, Nat, dur_ns};
use crate::verdict::{Direction, DropReason, Verdict};
use crate::wire::{self, Endpoint, PacketInfo};
use std::net::IpAddr;
use std::time::Duration;

/// How long a first fragment's translation is remembered for its later fragments.
pub const FRAGMENT_TIMEOUT: Duration = Duration::from_secs(15);
/// At most this many fragmented datagrams are remembered at once; beyond it later
/// fragments of new datagrams are dropped.
pub const MAX_FRAGMENT_ENTRIES: usize = 4096;

/// A fragmented datagram as its fragments arrive: direction, protocol, IP id and the
/// addresses before translation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) struct FragKey {
    dir: Direction,
    proto: u8,
    id: u32,
    src: A16,
    dst: A16,
}

/// How the first fragment was translated: what its later fragments get.
#[derive(Clone, Copy, Debug)]
pub(super) struct FragEntry {
    /// The new source address, if it was rewritten.
    pub(super) new_src: Option<IpAddr>,
    /// The new destination address, if it was rewritten.
    pub(super) new_dst: Option<IpAddr>,
    /// Whether it was hairpinned.
    pub(super) hairpin: bool,
    /// Tick at which the memory ends (set by `remember_fragment`).
    pub(super) expires: u64,
}

impl Nat {
    /// The fragment rules both directions apply first (RFC 4787 REQ-14): with
    /// `fragments: drop` every fragment is dropped, and a non-first fragment is translated
    /// as its first fragment was. `None`: not a fragment, or a first fragment, which is
    /// translated like any packet.
    #[inline]
    pub(super) fn fragment_verdict(
        &mut self,
        t: u64,
        dir: Direction,
        buf: &mut [u8],
        info: &mut PacketInfo,
    ) -> Option<Verdict> {
        let f = info.fragment?;
        if self.config.fragments == Fragments::Drop {
            return Some(Verdict::Drop(DropReason::Fragment));
        }
        (f.offset != 0).then(|| self.later_fragment(t, dir, buf, info, f.id))
    }

    /// Remember how a first fragment was translated, for its later fragments.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn remember_fragment(
        &mut self,
        t: u64,
        dir: Direction,
        info: &PacketInfo,
        id: u32,
        orig_src: IpAddr,
        orig_dst: IpAddr,
        mut entry: FragEntry,
    ) {
        if self.frags.len() >= MAX_FRAGMENT_ENTRIES {
            self.frags.retain(|_, e| e.expires > t);
            if self.frags.len() >= MAX_FRAGMENT_ENTRIES {
                return;
            }
        }
        entry.expires = t.saturating_add(dur_ns(FRAGMENT_TIMEOUT));
        let key = FragKey {
            dir,
            proto: info.proto.number(info.version),
            id,
            src: a16(orig_src),
            dst: a16(orig_dst),
        };
        self.frags.insert(key, entry);
    }

    /// A non-first fragment: translated as its first fragment was, or dropped.
    fn later_fragment(
        &mut self,
        t: u64,
        dir: Direction,
        buf: &mut [u8],
        info: &mut PacketInfo,
        id: u32,
    ) -> Verdict {
        let key = FragKey {
            dir,
            proto: info.proto.number(info.version),
            id,
            src: a16(info.src),
            dst: a16(info.dst),
        };
        let Some(e) = self.frags.get(&key).copied().filter(|e| e.expires > t) else {
            return Verdict::Drop(DropReason::Fragment);
        };
        if let Some(a) = e.new_src {
            wire::set_src(buf, info, Endpoint::new(a, 0));
        }
        if let Some(a) = e.new_dst {
            wire::set_dst(buf, info, Endpoint::new(a, 0));
        }
        if e.hairpin {
            Verdict::Hairpin
        } else {
            Verdict::Forward
        }
    }
}
