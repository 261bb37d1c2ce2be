//! Outbound translation (RFC 4787 §4): find or create the mapping, open the filter towards
//! the remote, rewrite the source; hairpinned packets and ICMP errors go on to their own
//! modules.

use super::Nat;
use super::flow::{Class, classify};
use super::fragments::FragEntry;
use super::table::{P_ICMP, P_TCP, a16, pkey};
use crate::verdict::{Direction, DropReason, Verdict};
use crate::wire::{self, IpVersion, PacketInfo};

impl Nat {
    #[inline]
    pub(super) fn outbound(&mut self, t: u64, buf: &mut [u8], info: Option<PacketInfo>) -> Verdict {
        let Some(mut info) = info else {
            return Verdict::Drop(DropReason::Malformed);
        };
        if let Some(v) = self.fragment_verdict(t, Direction::Outbound, buf, &mut info) {
            return v;
        }
        let flow = match classify(&info.l4, Direction::Outbound) {
            Class::Flow(flow) => flow,
            Class::IcmpError => return self.icmp_error(t, Direction::Outbound, buf, &mut info),
            Class::Unsupported => return Verdict::Drop(DropReason::UnsupportedProtocol),
        };
        let v6 = info.version == IpVersion::V6;
        if self.pool.family(v6).is_empty() {
            return Verdict::Drop(DropReason::AddressFamily);
        }
        let hairpin_to = self.pool.index_of(info.dst);
        if hairpin_to.is_some() {
            if !self.config.hairpinning {
                return Verdict::Drop(DropReason::HairpinDisabled);
            }
            if flow.slot == P_ICMP {
                return Verdict::Drop(DropReason::NoMapping);
            }
        }
        let pk = pkey(flow.slot, v6);
        let int = a16(info.src);
        let rem = a16(info.dst);
        let (sport, dport) = (flow.local_port, flow.remote_port);
        let idx = match self.lookup_out(t, pk, &int, sport, &rem, dport) {
            Some(i) => i,
            None => match self.create(t, pk, int, sport, rem, dport) {
                Ok(i) => i,
                Err(r) => return Verdict::Drop(r),
            },
        };
        let filtering = self.config.filtering;
        self.table.permit(idx, filtering, &rem, dport);
        self.touch(
            idx,
            t,
            true,
            (flow.slot == P_TCP).then_some((flow.flags, true)),
        );
        let ext = self.ext_endpoint(&self.table.slab[idx as usize]);
        let (orig_src, orig_dst) = (info.src, info.dst);
        if let Some(target_ext) = hairpin_to {
            return self.hairpin(t, buf, &mut info, ext, target_ext, flow);
        }
        wire::set_src(buf, &mut info, ext);
        if let Some(f) = info.fragment {
            self.remember_fragment(
                t,
                Direction::Outbound,
                &info,
                f.id,
                orig_src,
                orig_dst,
                FragEntry {
                    new_src: Some(ext.addr),
                    new_dst: None,
                    hairpin: false,
                    expires: 0,
                },
            );
        }
        Verdict::Forward
    }
}
