//! ICMP error translation (RFC 5508 §4.2): an error is matched by the packet it quotes
//! (classified like any packet, in the direction that packet travelled); the outer address
//! and the quoted one are rewritten together, the quoted IP header checksum and, when
//! quoted, the transport checksum incrementally, the outer ICMP checksum in full.

use super::Nat;
use super::flow::{Class, classify};
use super::table::{a16, ip_of, pkey};
use crate::verdict::{Direction, DropReason, Verdict};
use crate::wire::{self, Endpoint, IpVersion, L4, PacketInfo};

impl Nat {
    /// Translate an ICMP error travelling in `dir` through the mapping of the packet it
    /// quotes. That packet travelled the other way: an inbound error quotes a packet we
    /// sent (its source is our external endpoint), an outbound one a packet we delivered
    /// (its destination is the internal endpoint).
    pub(super) fn icmp_error(
        &mut self,
        t: u64,
        dir: Direction,
        buf: &mut [u8],
        info: &mut PacketInfo,
    ) -> Verdict {
        let Some((off, end, mut inner)) = quoted(buf, info) else {
            return Verdict::Drop(DropReason::Malformed);
        };
        let quoted_dir = match dir {
            Direction::Inbound => Direction::Outbound,
            Direction::Outbound => Direction::Inbound,
        };
        let Class::Flow(flow) = classify(&inner.l4, quoted_dir) else {
            return Verdict::Drop(DropReason::IcmpNoMapping);
        };
        let pk = pkey(flow.slot, info.version == IpVersion::V6);
        let (local, remote) = (flow.local_port, flow.remote_port);
        match dir {
            Direction::Inbound => {
                let Some(ext_idx) = self.pool.index_of(inner.src) else {
                    return Verdict::Drop(DropReason::IcmpNoMapping);
                };
                let Some(idx) = self.lookup_ext(t, pk, ext_idx, local) else {
                    return Verdict::Drop(DropReason::IcmpNoMapping);
                };
                let filtering = self.config.filtering;
                if !self.table.permits(idx, filtering, &a16(inner.dst), remote) {
                    return Verdict::Drop(DropReason::Filtered);
                }
                let b = &self.table.slab[idx as usize];
                let int = Endpoint::new(ip_of(b.int_addr, b.v6()), b.int_port);
                wire::set_src(&mut buf[off..end], &mut inner, int);
                wire::set_dst(buf, info, Endpoint::new(int.addr, outer_id(info)));
            }
            Direction::Outbound => {
                let (int, rem) = (a16(inner.dst), a16(inner.src));
                let Some(idx) = self.lookup_out(t, pk, &int, local, &rem, remote) else {
                    return Verdict::Drop(DropReason::IcmpNoMapping);
                };
                let ext = self.ext_endpoint(&self.table.slab[idx as usize]);
                wire::set_dst(&mut buf[off..end], &mut inner, ext);
                wire::set_src(buf, info, Endpoint::new(ext.addr, outer_id(info)));
            }
        }
        wire::update_icmp_checksum(buf, info);
        Verdict::Forward
    }
}

/// The packet an ICMP error quotes: its range in `buf` and its fields; `None` when it does
/// not parse, is of another IP version, or a checksum fails ([`icmp_error_checksums_ok`]).
fn quoted(buf: &[u8], info: &PacketInfo) -> Option<(usize, usize, PacketInfo)> {
    let off = info.l4_offset + 8;
    let end = info.total_len.min(buf.len());
    let inner = wire::parse_embedded(buf.get(off..end)?).ok()?;
    (inner.version == info.version && icmp_error_checksums_ok(buf, info, &inner))
        .then_some((off, end, inner))
}

/// The outer ICMP header's identifier field (kept as it is when the address is rewritten).
fn outer_id(info: &PacketInfo) -> u16 {
    match info.l4 {
        L4::Icmp { id, .. } => id,
        _ => 0,
    }
}

/// RFC 5508 §4.2 (REQ-3): an ICMP error whose ICMP checksum, or whose embedded IPv4
/// header checksum, does not verify is dropped (the NAT would otherwise "fix" it when it
/// recomputes the checksum). The embedded transport checksum is not checked (REQ-3 c).
fn icmp_error_checksums_ok(buf: &[u8], info: &PacketInfo, inner: &PacketInfo) -> bool {
    // Under the fuzzer checksums are not verified, so that random inputs reach the
    // translation code (STYLE.md §10); the rest of the check still runs.
    if cfg!(fuzzing) {
        return true;
    }
    let end = info.total_len.min(buf.len());
    if !wire::checksums_valid(&buf[..end]) {
        return false;
    }
    let off = info.l4_offset + 8;
    match inner.version {
        IpVersion::V4 => buf
            .get(off..off + inner.l4_offset)
            .is_some_and(|h| wire::checksum::checksum(h) == 0),
        IpVersion::V6 => true,
    }
}
