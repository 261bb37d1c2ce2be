//! Packets a device sends back instead of forwarding: ICMP errors (RFC 792, RFC 4443,
//! RFC 1191 "fragmentation needed", RFC 8201 "packet too big") and TCP RST (RFC 9293 §3.10.7.1).
//! Built off the hot path; each returns `None` where the RFCs forbid a reply (no error about
//! an ICMP error, a fragment other than the first, or a multicast/broadcast/unspecified source;
//! no RST in answer to a RST).

use super::packet::{IcmpKind, IpVersion, L4, PacketInfo, parse, tcp_flags};
use super::{PacketBuf, checksum};
use std::net::IpAddr;

/// Which ICMP error to build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IcmpError {
    /// Port unreachable (v4 3/3, v6 1/4): what a host says to a UDP packet on a closed port.
    PortUnreachable,
    /// Host unreachable (v4 3/1, v6 1/3).
    HostUnreachable,
    /// Communication administratively prohibited (v4 3/13, v6 1/1).
    AdminProhibited,
    /// Fragmentation needed and DF set (v4 3/4 with next-hop MTU, RFC 1191) / packet too big
    /// (v6 2/0, RFC 8201).
    TooBig {
        /// The MTU of the next hop.
        mtu: u16,
    },
    /// Time exceeded in transit (v4 11/0, v6 3/0).
    TimeExceeded,
}

fn source_can_get_errors(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => !(a.is_unspecified() || a.is_broadcast() || a.is_multicast()),
        IpAddr::V6(a) => !(a.is_unspecified() || a.is_multicast()),
    }
}

/// Build the ICMP error that `from` sends about `original` back to its source.
/// Returns `None` where no error may be sent (see the module docs) or the address family
/// of `from` does not match.
pub fn icmp_error(original: &[u8], from: IpAddr, kind: IcmpError) -> Option<PacketBuf> {
    let info = parse(original).ok()?;
    if info.is_icmp_error() || info.fragment.is_some_and(|f| f.offset != 0) {
        return None;
    }
    if !source_can_get_errors(info.src) {
        return None;
    }
    if let L4::Icmp {
        kind: IcmpKind::Other { .. },
        ..
    } = info.l4
    {
        // Only queries (echo) get errors among ICMP messages; unknown informational ones don't.
        return None;
    }
    let original = &original[..info.total_len];
    match (info.version, from, info.src) {
        (IpVersion::V4, IpAddr::V4(f), IpAddr::V4(to)) => {
            let (ty, code, rest) = match kind {
                IcmpError::PortUnreachable => (3, 3, 0u32),
                IcmpError::HostUnreachable => (3, 1, 0),
                IcmpError::AdminProhibited => (3, 13, 0),
                IcmpError::TooBig { mtu } => (3, 4, mtu as u32),
                IcmpError::TimeExceeded => (11, 0, 0),
            };
            // RFC 1812 §4.3.2.3: as much of the original as fits in 576 bytes.
            let quote = original.len().min(576 - 28);
            let total = 20 + 8 + quote;
            let mut p = PacketBuf::zeroed(total);
            let b = p.as_mut_slice();
            b[0] = 0x45;
            b[2..4].copy_from_slice(&(total as u16).to_be_bytes());
            b[8] = 64;
            b[9] = 1;
            b[12..16].copy_from_slice(&f.octets());
            b[16..20].copy_from_slice(&to.octets());
            let c = checksum::checksum(&b[..20]);
            b[10..12].copy_from_slice(&c.to_be_bytes());
            b[20] = ty;
            b[21] = code;
            b[24..28].copy_from_slice(&rest.to_be_bytes());
            b[28..].copy_from_slice(&original[..quote]);
            let c = checksum::checksum(&b[20..]);
            b[22..24].copy_from_slice(&c.to_be_bytes());
            Some(p)
        }
        (IpVersion::V6, IpAddr::V6(f), IpAddr::V6(to)) => {
            let (ty, code, rest) = match kind {
                IcmpError::PortUnreachable => (1, 4, 0u32),
                IcmpError::HostUnreachable => (1, 3, 0),
                IcmpError::AdminProhibited => (1, 1, 0),
                IcmpError::TooBig { mtu } => (2, 0, mtu as u32),
                IcmpError::TimeExceeded => (3, 0, 0),
            };
            // RFC 4443 §2.4(c): the whole error must fit in the minimum MTU of 1280.
            let quote = original.len().min(1280 - 48);
            let plen = 8 + quote;
            let mut p = PacketBuf::zeroed(40 + plen);
            let b = p.as_mut_slice();
            b[0] = 0x60;
            b[4..6].copy_from_slice(&(plen as u16).to_be_bytes());
            b[6] = 58;
            b[7] = 64;
            b[8..24].copy_from_slice(&f.octets());
            b[24..40].copy_from_slice(&to.octets());
            b[40] = ty;
            b[41] = code;
            b[44..48].copy_from_slice(&rest.to_be_bytes());
            b[48..].copy_from_slice(&original[..quote]);
            let acc = checksum::pseudo_header_sum(&f.octets(), &to.octets(), 58, plen as u32)
                + checksum::sum(&b[40..]);
            let c = checksum::finish(acc);
            b[42..44].copy_from_slice(&c.to_be_bytes());
            Some(p)
        }
        _ => None,
    }
}

/// Build the RST that answers TCP segment `original` (RFC 9293 §3.10.7.1), sent from the
/// segment's destination. `None` if the segment is not TCP, or is itself a RST.
pub fn tcp_rst(original: &[u8]) -> Option<PacketBuf> {
    let info: PacketInfo = parse(original).ok()?;
    let L4::Tcp {
        src_port,
        dst_port,
        flags,
        seq,
        ack,
    } = info.l4
    else {
        return None;
    };
    if flags & tcp_flags::RST != 0 || !source_can_get_errors(info.src) {
        return None;
    }
    let hdr_len = (original[info.l4_offset + 12] >> 4) as usize * 4;
    let mut seg_len = (info.total_len - info.l4_offset - hdr_len) as u32;
    if flags & tcp_flags::SYN != 0 {
        seg_len += 1;
    }
    if flags & tcp_flags::FIN != 0 {
        seg_len += 1;
    }
    let (rseq, rack, rflags) = if flags & tcp_flags::ACK != 0 {
        (ack, 0, tcp_flags::RST)
    } else {
        (
            0,
            seq.wrapping_add(seg_len),
            tcp_flags::RST | tcp_flags::ACK,
        )
    };
    let mut tcp = [0u8; 20];
    tcp[0..2].copy_from_slice(&dst_port.to_be_bytes());
    tcp[2..4].copy_from_slice(&src_port.to_be_bytes());
    tcp[4..8].copy_from_slice(&rseq.to_be_bytes());
    tcp[8..12].copy_from_slice(&rack.to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = rflags;
    let (l3_len, total) = match info.version {
        IpVersion::V4 => (20, 40),
        IpVersion::V6 => (40, 60),
    };
    let mut p = PacketBuf::zeroed(total);
    let b = p.as_mut_slice();
    match (info.dst, info.src) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            b[0] = 0x45;
            b[2..4].copy_from_slice(&(total as u16).to_be_bytes());
            b[8] = 64;
            b[9] = 6;
            b[12..16].copy_from_slice(&s.octets());
            b[16..20].copy_from_slice(&d.octets());
            let c = checksum::checksum(&b[..20]);
            b[10..12].copy_from_slice(&c.to_be_bytes());
            let acc =
                checksum::pseudo_header_sum(&s.octets(), &d.octets(), 6, 20) + checksum::sum(&tcp);
            tcp[16..18].copy_from_slice(&checksum::finish(acc).to_be_bytes());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            b[0] = 0x60;
            b[4..6].copy_from_slice(&20u16.to_be_bytes());
            b[6] = 6;
            b[7] = 64;
            b[8..24].copy_from_slice(&s.octets());
            b[24..40].copy_from_slice(&d.octets());
            let acc =
                checksum::pseudo_header_sum(&s.octets(), &d.octets(), 6, 20) + checksum::sum(&tcp);
            tcp[16..18].copy_from_slice(&checksum::finish(acc).to_be_bytes());
        }
        _ => return None,
    }
    b[l3_len..].copy_from_slice(&tcp);
    Some(p)
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::wire::checksums_valid;
    use etherparse::PacketBuilder;

    #[test]
    fn port_unreachable_v4_quotes_original() {
        let mut orig = Vec::new();
        PacketBuilder::ipv4([203, 0, 113, 9], [203, 0, 113, 11], 64)
            .udp(3478, 40000)
            .write(&mut orig, b"stun")
            .unwrap();
        let e = icmp_error(
            &orig,
            "203.0.113.11".parse().unwrap(),
            IcmpError::PortUnreachable,
        )
        .unwrap();
        assert!(checksums_valid(e.as_slice()));
        let info = parse(e.as_slice()).unwrap();
        assert_eq!(info.dst.to_string(), "203.0.113.9");
        assert_eq!(
            info.l4,
            L4::Icmp {
                kind: IcmpKind::Error { ty: 3, code: 3 },
                id: 0
            }
        );
        assert_eq!(&e.as_slice()[28..], &orig[..]);
        // No error about an error.
        assert!(
            icmp_error(
                e.as_slice(),
                "203.0.113.9".parse().unwrap(),
                IcmpError::PortUnreachable
            )
            .is_none()
        );
    }

    #[test]
    fn too_big_v6_fits_minimum_mtu() {
        let mut orig = Vec::new();
        PacketBuilder::ipv6([0x20; 16], [0x21; 16], 64)
            .udp(1, 2)
            .write(&mut orig, &[0u8; 1400])
            .unwrap();
        let e = icmp_error(
            &orig,
            "2001:db8::1".parse().unwrap(),
            IcmpError::TooBig { mtu: 1280 },
        )
        .unwrap();
        assert_eq!(e.len(), 1280);
        assert!(checksums_valid(e.as_slice()));
    }

    #[test]
    fn rst_answers_syn_and_ack() {
        let mut syn = Vec::new();
        PacketBuilder::ipv4([198, 51, 100, 7], [203, 0, 113, 11], 64)
            .tcp(5555, 80, 1000, 0)
            .syn()
            .write(&mut syn, b"")
            .unwrap();
        let r = tcp_rst(&syn).unwrap();
        assert!(checksums_valid(r.as_slice()));
        let info = parse(r.as_slice()).unwrap();
        assert_eq!(info.src.to_string(), "203.0.113.11");
        match info.l4 {
            L4::Tcp {
                src_port,
                dst_port,
                flags,
                seq,
                ack,
            } => {
                assert_eq!((src_port, dst_port), (80, 5555));
                assert_eq!(flags, tcp_flags::RST | tcp_flags::ACK);
                assert_eq!((seq, ack), (0, 1001));
            }
            other => panic!("{other:?}"),
        }
        assert!(tcp_rst(r.as_slice()).is_none());
    }
}
