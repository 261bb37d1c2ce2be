//! Hairpinning (RFC 4787 §6, REQ-9; RFC 5382 REQ-8): an inside host reaching another
//! through its external endpoint. The target mapping's filter is applied with the
//! sender's external endpoint as remote, as if the packet had come from outside.

use super::flow::Flow;
use super::fragments::FragEntry;
use super::table::{P_TCP, a16, ip_of, pkey};
use super::{Nat, Refresh};
use crate::verdict::{Direction, DropReason, Verdict};
use crate::wire::{self, Endpoint, IpVersion, PacketInfo};

impl Nat {
    /// RFC 4787 §6: an outbound packet to one of our external endpoints (pool address
    /// `target_ext`, port `flow.remote_port`), already counted as outbound activity on the
    /// sender's mapping (`sender_ext`).
    pub(super) fn hairpin(
        &mut self,
        t: u64,
        buf: &mut [u8],
        info: &mut PacketInfo,
        sender_ext: Endpoint,
        target_ext: u16,
        flow: Flow,
    ) -> Verdict {
        let v6 = info.version == IpVersion::V6;
        let Some(tidx) = self.lookup_ext(t, pkey(flow.slot, v6), target_ext, flow.remote_port)
        else {
            return Verdict::Drop(DropReason::NoMapping);
        };
        let f = self.config.filtering;
        if !self
            .table
            .permits(tidx, f, &a16(sender_ext.addr), sender_ext.port)
        {
            return Verdict::Drop(DropReason::Filtered);
        }
        let tb = &self.table.slab[tidx as usize];
        let target_int = Endpoint::new(ip_of(tb.int_addr, tb.v6()), tb.int_port);
        self.touch(
            tidx,
            t,
            self.config.refresh == Refresh::Both,
            (flow.slot == P_TCP).then_some((flow.flags, false)),
        );
        let (orig_src, orig_dst) = (info.src, info.dst);
        wire::set_src(buf, info, sender_ext);
        wire::set_dst(buf, info, target_int);
        if let Some(f) = info.fragment {
            self.remember_fragment(
                t,
                Direction::Outbound,
                info,
                f.id,
                orig_src,
                orig_dst,
                FragEntry {
                    new_src: Some(sender_ext.addr),
                    new_dst: Some(target_int.addr),
                    hairpin: true,
                    expires: 0,
                },
            );
        }
        Verdict::Hairpin
    }
}
