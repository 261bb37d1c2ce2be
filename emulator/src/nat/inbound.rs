//! Inbound translation (RFC 4787 §5): find the mapping by external endpoint, apply the
//! filter, rewrite the destination; unsolicited packets are dropped or answered per
//! [`Unsolicited`].

use super::flow::{Class, classify};
use super::fragments::FragEntry;
use super::table::{P_TCP, a16, ip_of, pkey};
use super::{Nat, Refresh, Unsolicited};
use crate::verdict::{Direction, DropReason, Verdict};
use crate::wire::{self, Endpoint, IpVersion, L4, PacketInfo, reply};

impl Nat {
    #[inline]
    pub(super) fn inbound(&mut self, t: u64, buf: &mut [u8], info: Option<PacketInfo>) -> Verdict {
        let Some(mut info) = info else {
            return Verdict::Drop(DropReason::Malformed);
        };
        let Some(ext_idx) = self.pool.index_of(info.dst) else {
            return Verdict::Drop(DropReason::NoMapping);
        };
        if let Some(v) = self.fragment_verdict(t, Direction::Inbound, buf, &mut info) {
            return v;
        }
        let flow = match classify(&info.l4, Direction::Inbound) {
            Class::Flow(flow) => flow,
            Class::IcmpError => return self.icmp_error(t, Direction::Inbound, buf, &mut info),
            Class::Unsupported => return Verdict::Drop(DropReason::UnsupportedProtocol),
        };
        let v6 = info.version == IpVersion::V6;
        let Some(idx) = self.lookup_ext(t, pkey(flow.slot, v6), ext_idx, flow.local_port) else {
            return self.unsolicited(buf, &info, DropReason::NoMapping);
        };
        let rem = a16(info.src);
        if !self
            .table
            .permits(idx, self.config.filtering, &rem, flow.remote_port)
        {
            return self.unsolicited(buf, &info, DropReason::Filtered);
        }
        let b = &self.table.slab[idx as usize];
        let int = Endpoint::new(ip_of(b.int_addr, b.v6()), b.int_port);
        self.touch(
            idx,
            t,
            self.config.refresh == Refresh::Both,
            (flow.slot == P_TCP).then_some((flow.flags, false)),
        );
        let (orig_src, orig_dst) = (info.src, info.dst);
        wire::set_dst(buf, &mut info, int);
        if let Some(f) = info.fragment {
            self.remember_fragment(
                t,
                Direction::Inbound,
                &info,
                f.id,
                orig_src,
                orig_dst,
                FragEntry {
                    new_src: None,
                    new_dst: Some(int.addr),
                    hairpin: false,
                    expires: 0,
                },
            );
        }
        Verdict::Forward
    }

    /// An unsolicited inbound packet: drop, or reply per [`Unsolicited`].
    fn unsolicited(&self, buf: &[u8], info: &PacketInfo, reason: DropReason) -> Verdict {
        let reply = match (self.config.unsolicited, info.l4) {
            (Unsolicited::Drop, _) => None,
            (Unsolicited::Rst, L4::Tcp { .. }) => reply::tcp_rst(buf),
            (Unsolicited::Icmp | Unsolicited::Rst, _) => {
                reply::icmp_error(buf, info.dst, reply::IcmpError::PortUnreachable)
            }
        };
        match reply {
            Some(p) => Verdict::Reply(reason, p),
            None => Verdict::Drop(reason),
        }
    }
}
