//! Checksum and segmentation offload as TUN devices exchange it: the virtio-net header
//! (`struct virtio_net_hdr`, virtio spec v1.2 §5.1.6) that precedes every packet on a TUN
//! device opened with `IFF_VNET_HDR`.
//!
//! With offloads on, the kernel hands over packets whose transport checksum is not yet
//! computed (`VIRTIO_NET_HDR_F_NEEDS_CSUM`: the checksum field holds the folded, *not*
//! complemented, pseudo-header sum, and the sum over `csum_start..` still has to be
//! stored at `csum_start + csum_offset`) and TCP/UDP super-segments of up to 64 KiB
//! (`gso_type`, cut into `gso_size`-byte payloads by whoever sends them on).
//!
//! [`Offload`] keeps that state with a packet while the engine forwards it. A NAT rewrite
//! patches the checksum field as if it held a complete checksum (RFC 1624), which is wrong
//! for a partial sum; so [`Offload`] remembers the partial sum and the addresses it
//! covered at arrival, and [`Offload::to_header`] recomputes the field from them for the
//! addresses the packet has when it leaves: the pseudo-header covers the addresses (and
//! length and protocol, which a NAT does not change), not the ports, which the receiver
//! sums with the rest of the segment.
//!
//! Where a packet needs per-packet semantics (link impairments, a firewall, captures),
//! [`complete_checksum`] does what the NIC would do and [`segment`] what GSO would do
//! (RFC 9293 §3.1 header fields; Linux `tcp_gso_segment`/`__udp_gso_segment` behaviour:
//! IPv4 identification incremented per segment, sequence numbers advanced by the payload,
//! FIN and PSH on the last segment only, CWR on the first only).

use super::checksum;

/// Length of the virtio-net header (`struct virtio_net_hdr`) pinhole asks TUN devices for.
pub const VNET_HDR_LEN: usize = 10;

/// The header of a packet with no offload state (complete checksums, no segmentation).
pub const PLAIN_HEADER: [u8; VNET_HDR_LEN] = [0; VNET_HDR_LEN];

/// `VIRTIO_NET_HDR_F_NEEDS_CSUM`: the transport checksum is a partial pseudo-header sum.
pub const F_NEEDS_CSUM: u8 = 1;
/// `VIRTIO_NET_HDR_GSO_NONE`.
pub const GSO_NONE: u8 = 0;
/// `VIRTIO_NET_HDR_GSO_TCPV4`: a TCP/IPv4 super-segment.
pub const GSO_TCPV4: u8 = 1;
/// `VIRTIO_NET_HDR_GSO_UDP`: UDP fragmentation offload (UFO), which pinhole never enables.
pub const GSO_UDP: u8 = 3;
/// `VIRTIO_NET_HDR_GSO_TCPV6`: a TCP/IPv6 super-segment.
pub const GSO_TCPV6: u8 = 4;
/// `VIRTIO_NET_HDR_GSO_UDP_L4`: a UDP super-datagram cut into datagrams (USO).
pub const GSO_UDP_L4: u8 = 5;
/// `VIRTIO_NET_HDR_GSO_ECN`: flag bit of `gso_type` (the first segment carries CWR).
pub const GSO_ECN: u8 = 0x80;

/// Which transport a super-segment is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GsoKind {
    /// Not a super-segment.
    None,
    /// TCP (IPv4 or IPv6).
    Tcp,
    /// UDP datagrams (USO).
    Udp,
}

/// Why a packet's offload state cannot be honoured; the packet is dropped and counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OffloadError {
    /// The checksum position lies outside the packet.
    #[error("checksum offload position outside the packet")]
    BadChecksumPosition,
    /// A `gso_type` pinhole did not enable.
    #[error("unsupported GSO type {0:#04x}")]
    UnsupportedGso(u8),
    /// Headers that do not match the offload state (wrong protocol, short headers).
    #[error("malformed offloaded packet")]
    Malformed,
}

/// The offload state of one packet: the parsed virtio-net header plus what
/// [`Offload::to_header`] needs to keep the partial checksum right across NAT rewrites.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Offload {
    /// `flags` ([`F_NEEDS_CSUM`]).
    pub flags: u8,
    /// `gso_type` ([`GSO_TCPV4`], [`GSO_TCPV6`], [`GSO_UDP_L4`], possibly with [`GSO_ECN`]).
    pub gso_type: u8,
    /// `hdr_len`: length of the headers (a hint).
    pub hdr_len: u16,
    /// `gso_size`: payload bytes per segment.
    pub gso_size: u16,
    /// `csum_start`: where the checksummed bytes start (the transport header).
    pub csum_start: u16,
    /// `csum_offset`: the checksum field's offset from `csum_start`.
    pub csum_offset: u16,
    /// The checksum field at arrival (partial pseudo-header sum).
    partial: u16,
    /// Folded sum of the source and destination addresses at arrival.
    addr_sum: u16,
}

/// The byte range of the source and destination addresses, by IP version.
fn addr_range(packet: &[u8]) -> Option<std::ops::Range<usize>> {
    match packet.first()? >> 4 {
        4 if packet.len() >= 20 => Some(12..20),
        6 if packet.len() >= 40 => Some(8..40),
        _ => None,
    }
}

/// End of the IP datagram (total length), bounded by the buffer.
fn ip_end(packet: &[u8]) -> Option<usize> {
    let len = match packet.first()? >> 4 {
        4 if packet.len() >= 20 => u16::from_be_bytes([packet[2], packet[3]]) as usize,
        6 if packet.len() >= 40 => 40 + u16::from_be_bytes([packet[4], packet[5]]) as usize,
        _ => return None,
    };
    Some(len.min(packet.len()))
}

impl Offload {
    /// Read a virtio-net header (native byte order, as legacy TUN devices use) for
    /// `packet`, checking it against the packet. `Ok(None)` when the header asks for
    /// nothing (complete checksum, no segmentation).
    pub fn from_header(
        hdr: &[u8; VNET_HDR_LEN],
        packet: &[u8],
    ) -> Result<Option<Offload>, OffloadError> {
        let word = |i: usize| u16::from_ne_bytes([hdr[i], hdr[i + 1]]);
        let flags = hdr[0];
        let gso_type = hdr[1];
        let needs_csum = flags & F_NEEDS_CSUM != 0;
        let kind = kind_of(gso_type)?;
        if !needs_csum && kind == GsoKind::None {
            return Ok(None);
        }
        let (csum_start, csum_offset) = (word(6), word(8));
        let at = csum_start as usize + csum_offset as usize;
        if !needs_csum || csum_start < 20 || at + 2 > packet.len() {
            return Err(OffloadError::BadChecksumPosition);
        }
        let Some(addrs) = addr_range(packet) else {
            return Err(OffloadError::Malformed);
        };
        let v4 = addrs.start == 12;
        match (kind, gso_type & !GSO_ECN) {
            (GsoKind::None, _) => {}
            (GsoKind::Tcp, t) if (t == GSO_TCPV4) == v4 && csum_offset == 16 => {}
            (GsoKind::Udp, _) if csum_offset == 6 => {}
            _ => return Err(OffloadError::Malformed),
        }
        if kind != GsoKind::None && word(4) == 0 {
            return Err(OffloadError::Malformed);
        }
        Ok(Some(Offload {
            flags,
            gso_type,
            hdr_len: word(2),
            gso_size: word(4),
            csum_start,
            csum_offset,
            partial: u16::from_be_bytes([packet[at], packet[at + 1]]),
            addr_sum: checksum::fold(checksum::sum(&packet[addrs])),
        }))
    }

    /// Whether this is a super-segment.
    pub fn is_gso(&self) -> bool {
        self.kind() != GsoKind::None
    }

    /// The transport of a super-segment.
    pub fn kind(&self) -> GsoKind {
        kind_of(self.gso_type).unwrap_or(GsoKind::None)
    }

    /// The partial checksum for the addresses `packet` has now: the arrival value minus
    /// the old addresses plus the new ones (one's-complement arithmetic, RFC 1071 §2).
    fn partial_now(&self, packet: &[u8]) -> u16 {
        let now =
            addr_range(packet).map_or(self.addr_sum, |r| checksum::fold(checksum::sum(&packet[r])));
        checksum::fold(self.partial as u32 + (!self.addr_sum) as u32 + now as u32)
    }

    /// Restore the partial checksum in `packet` for its current addresses and return the
    /// virtio-net header to write in front of it, so that the receiving kernel completes
    /// the checksum or segments the packet itself.
    pub fn to_header(&self, packet: &mut [u8]) -> [u8; VNET_HDR_LEN] {
        let at = self.csum_start as usize + self.csum_offset as usize;
        if at + 2 <= packet.len() {
            let p = self.partial_now(packet);
            packet[at..at + 2].copy_from_slice(&p.to_be_bytes());
        }
        let mut h = [0u8; VNET_HDR_LEN];
        h[0] = self.flags;
        h[1] = self.gso_type;
        h[2..4].copy_from_slice(&self.hdr_len.to_ne_bytes());
        h[4..6].copy_from_slice(&self.gso_size.to_ne_bytes());
        h[6..8].copy_from_slice(&self.csum_start.to_ne_bytes());
        h[8..10].copy_from_slice(&self.csum_offset.to_ne_bytes());
        h
    }
}

fn kind_of(gso_type: u8) -> Result<GsoKind, OffloadError> {
    match gso_type & !GSO_ECN {
        GSO_NONE => Ok(GsoKind::None),
        GSO_TCPV4 | GSO_TCPV6 => Ok(GsoKind::Tcp),
        GSO_UDP_L4 => Ok(GsoKind::Udp),
        other => Err(OffloadError::UnsupportedGso(other)),
    }
}

/// Compute the transport checksum of a packet that arrived with [`F_NEEDS_CSUM`] and no
/// segmentation, in place, as the NIC would: the one's-complement sum from `csum_start`
/// to the end of the datagram, including the partial pseudo-header sum in the field.
pub fn complete_checksum(packet: &mut [u8], off: &Offload) -> Result<(), OffloadError> {
    let end = ip_end(packet).ok_or(OffloadError::Malformed)?;
    let start = off.csum_start as usize;
    let at = start + off.csum_offset as usize;
    if at + 2 > end {
        return Err(OffloadError::BadChecksumPosition);
    }
    let p = off.partial_now(packet);
    packet[at..at + 2].copy_from_slice(&p.to_be_bytes());
    let mut c = checksum::checksum(&packet[start..end]);
    // UDP sends an all-zero result as all ones (RFC 768; RFC 8200 §8.1).
    if c == 0 && off.csum_offset == 6 {
        c = 0xffff;
    }
    packet[at..at + 2].copy_from_slice(&c.to_be_bytes());
    Ok(())
}

/// Cut a super-segment into packets of at most `gso_size` payload bytes with complete
/// checksums, handing each to `out` (built in `scratch`, reused). A packet with
/// [`F_NEEDS_CSUM`] but no segmentation comes out as one packet with its checksum
/// completed. Returns how many packets were produced.
pub fn segment(
    packet: &[u8],
    off: &Offload,
    scratch: &mut Vec<u8>,
    mut out: impl FnMut(&[u8]),
) -> Result<usize, OffloadError> {
    if !off.is_gso() {
        scratch.clear();
        scratch.extend_from_slice(packet);
        complete_checksum(scratch, off)?;
        out(scratch);
        return Ok(1);
    }
    let end = ip_end(packet).ok_or(OffloadError::Malformed)?;
    let pkt = &packet[..end];
    let v4 = pkt[0] >> 4 == 4;
    let l4 = off.csum_start as usize;
    let ihl = (pkt[0] & 0x0f) as usize * 4;
    if (v4 && (l4 != ihl || pkt[9] != proto_of(off))) || (!v4 && l4 < 40) {
        return Err(OffloadError::Malformed);
    }
    let l4_hdr = match off.kind() {
        GsoKind::Tcp => {
            let hl = pkt.get(l4 + 12).map_or(0, |b| (b >> 4) as usize * 4);
            if hl < 20 {
                return Err(OffloadError::Malformed);
            }
            hl
        }
        _ => 8,
    };
    let hdrs = l4 + l4_hdr;
    if hdrs > end {
        return Err(OffloadError::Malformed);
    }
    let mss = off.gso_size as usize;
    let payload = &pkt[hdrs..];
    let count = payload.len().div_ceil(mss).max(1);
    let (addrs, proto) = (
        addr_range(pkt).ok_or(OffloadError::Malformed)?,
        proto_of(off),
    );
    let id0 = u16::from_be_bytes([pkt[4], pkt[5]]);
    let seq0 = u32::from_be_bytes([pkt[l4 + 4], pkt[l4 + 5], pkt[l4 + 6], pkt[l4 + 7]]);
    let mut chunks = payload.chunks(mss);
    for i in 0..count {
        let chunk = chunks.next().unwrap_or(&[]);
        scratch.clear();
        scratch.extend_from_slice(&pkt[..hdrs]);
        scratch.extend_from_slice(chunk);
        let len = scratch.len();
        let l4_len = len - l4;
        if v4 {
            scratch[2..4].copy_from_slice(&(len as u16).to_be_bytes());
            scratch[4..6].copy_from_slice(&id0.wrapping_add(i as u16).to_be_bytes());
            scratch[10..12].fill(0);
            let c = checksum::checksum(&scratch[..ihl]);
            scratch[10..12].copy_from_slice(&c.to_be_bytes());
        } else {
            scratch[4..6].copy_from_slice(&((len - 40) as u16).to_be_bytes());
        }
        match off.kind() {
            GsoKind::Tcp => {
                let seq = seq0.wrapping_add((i * mss) as u32);
                scratch[l4 + 4..l4 + 8].copy_from_slice(&seq.to_be_bytes());
                let flags = &mut scratch[l4 + 13];
                if i + 1 < count {
                    *flags &= !(super::tcp_flags::FIN | super::tcp_flags::PSH);
                }
                if i > 0 {
                    *flags &= !0x80; // CWR
                }
            }
            _ => scratch[l4 + 4..l4 + 6].copy_from_slice(&(l4_len as u16).to_be_bytes()),
        }
        let at = l4 + off.csum_offset as usize;
        scratch[at..at + 2].fill(0);
        let acc = checksum::pseudo_header_sum(
            &scratch[addrs.start..addrs.start + addrs.len() / 2],
            &scratch[addrs.start + addrs.len() / 2..addrs.end],
            proto,
            l4_len as u32,
        ) as u64
            + checksum::sum(&scratch[l4..]) as u64;
        let mut c = checksum::finish(((acc & 0xffff_ffff) + (acc >> 32)) as u32);
        if c == 0 && proto == 17 {
            c = 0xffff;
        }
        scratch[at..at + 2].copy_from_slice(&c.to_be_bytes());
        out(scratch);
    }
    Ok(count)
}

/// Where a plain UDP datagram's UDP header starts and how long its payload is, if it can
/// be coalesced with others into a USO super-datagram: IPv4 without options and not a
/// fragment, or IPv6 with UDP as the first next header; lengths consistent; non-empty.
pub fn udp_coalescable(packet: &[u8]) -> Option<(usize, usize)> {
    let (l4, ip_len) = match packet.first()? >> 4 {
        4 if packet.len() >= 28 => {
            let frag = u16::from_be_bytes([packet[6], packet[7]]) & 0x3fff;
            if packet[0] != 0x45 || packet[9] != 17 || frag != 0 {
                return None;
            }
            (20, u16::from_be_bytes([packet[2], packet[3]]) as usize)
        }
        6 if packet.len() >= 48 => {
            if packet[6] != 17 {
                return None;
            }
            (40, 40 + u16::from_be_bytes([packet[4], packet[5]]) as usize)
        }
        _ => return None,
    };
    let udp_len = u16::from_be_bytes([packet[l4 + 4], packet[l4 + 5]]) as usize;
    (ip_len == packet.len() && udp_len == ip_len - l4 && udp_len > 8).then_some((l4, udp_len - 8))
}

/// Whether `next` (already [`udp_coalescable`]) belongs to the same flow as `first` with
/// identical headers apart from the IPv4 identification, lengths and checksums, so that
/// segmenting the coalesced datagram gives back what was coalesced.
pub fn udp_same_flow(first: &[u8], next: &[u8], l4: usize) -> bool {
    if first.len() < l4 + 8 || next.len() < l4 + 8 || first[0] != next[0] {
        return false;
    }
    let ports = first[l4..l4 + 4] == next[l4..l4 + 4];
    match l4 {
        20 => {
            ports
                && first[1] == next[1]
                && first[6..10] == next[6..10]
                && first[12..20] == next[12..20]
        }
        40 => ports && first[..4] == next[..4] && first[6..40] == next[6..40],
        _ => false,
    }
}

/// Turn `packet`, the first datagram of a run of [`udp_same_flow`] datagrams with their
/// payloads appended (each `gso_size` bytes but the last, which may be shorter), into one
/// UDP super-datagram for a TUN device with USO: IP and UDP lengths of the whole, the
/// partial pseudo-header checksum, and the matching offload state.
pub fn finish_udp_coalesced(packet: &mut [u8], l4: usize, gso_size: u16) -> Option<Offload> {
    let len = packet.len();
    let udp_len = u16::try_from(len - l4).ok()?;
    if l4 == 20 {
        packet[2..4].copy_from_slice(&u16::try_from(len).ok()?.to_be_bytes());
        packet[10..12].fill(0);
        let c = checksum::checksum(&packet[..20]);
        packet[10..12].copy_from_slice(&c.to_be_bytes());
    } else {
        packet[4..6].copy_from_slice(&udp_len.to_be_bytes());
    }
    packet[l4 + 4..l4 + 6].copy_from_slice(&udp_len.to_be_bytes());
    let addrs = addr_range(packet)?;
    let half = addrs.len() / 2;
    let partial = checksum::fold(checksum::pseudo_header_sum(
        &packet[addrs.start..addrs.start + half],
        &packet[addrs.start + half..addrs.end],
        17,
        udp_len as u32,
    ));
    packet[l4 + 6..l4 + 8].copy_from_slice(&partial.to_be_bytes());
    Some(Offload {
        flags: F_NEEDS_CSUM,
        gso_type: GSO_UDP_L4,
        hdr_len: l4 as u16 + 8,
        gso_size,
        csum_start: l4 as u16,
        csum_offset: 6,
        partial,
        addr_sum: checksum::fold(checksum::sum(&packet[addrs])),
    })
}

fn proto_of(off: &Offload) -> u8 {
    match off.kind() {
        GsoKind::Udp => 17,
        _ => 6,
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::wire::{self, Endpoint, checksums_valid, tcp_flags};

    /// The partial sum Linux leaves in the field for CHECKSUM_PARTIAL:
    /// `~tcp_v4_check(len, saddr, daddr, 0)`, the folded pseudo-header sum.
    fn linux_partial(pkt: &[u8], l4: usize, proto: u8) -> u16 {
        let r = addr_range(pkt).unwrap();
        let half = r.len() / 2;
        let len = (ip_end(pkt).unwrap() - l4) as u32;
        checksum::fold(checksum::pseudo_header_sum(
            &pkt[r.start..r.start + half],
            &pkt[r.start + half..r.end],
            proto,
            len,
        ))
    }

    fn header(flags: u8, gso_type: u8, gso_size: u16, start: u16, offset: u16) -> [u8; 10] {
        let mut h = [0u8; 10];
        h[0] = flags;
        h[1] = gso_type;
        h[4..6].copy_from_slice(&gso_size.to_ne_bytes());
        h[6..8].copy_from_slice(&start.to_ne_bytes());
        h[8..10].copy_from_slice(&offset.to_ne_bytes());
        h
    }

    /// A TCP super-segment as the kernel hands it over with TSO: full-length IP header,
    /// partial checksum.
    fn tcp_super(v6: bool, payload: &[u8], flags: u8) -> (Vec<u8>, Offload) {
        let b = if v6 {
            etherparse::PacketBuilder::ipv6(
                [0xfd, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
                [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5],
                64,
            )
        } else {
            etherparse::PacketBuilder::ipv4([10, 0, 1, 2], [203, 0, 113, 5], 64)
        };
        let mut b = b.tcp(40000, 5201, 0xfffff000, 512).ack(77);
        if flags & tcp_flags::PSH != 0 {
            b = b.psh();
        }
        if flags & tcp_flags::FIN != 0 {
            b = b.fin();
        }
        if flags & 0x80 != 0 {
            b = b.cwr();
        }
        let mut v = Vec::new();
        b.write(&mut v, payload).unwrap();
        if !v6 {
            v[4..6].copy_from_slice(&0xfffeu16.to_be_bytes()); // id wraps while segmenting
            v[10..12].fill(0);
            let c = checksum::checksum(&v[..20]);
            v[10..12].copy_from_slice(&c.to_be_bytes());
        }
        let l4 = if v6 { 40 } else { 20 };
        let p = linux_partial(&v, l4, 6);
        v[l4 + 16..l4 + 18].copy_from_slice(&p.to_be_bytes());
        let t = if v6 { GSO_TCPV6 } else { GSO_TCPV4 };
        let h = header(F_NEEDS_CSUM, t, 1000, l4 as u16, 16);
        let off = Offload::from_header(&h, &v).unwrap().unwrap();
        (v, off)
    }

    fn payload(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    /// Independent check of every checksum with etherparse's own computation.
    fn etherparse_checksums_ok(seg: &[u8]) -> bool {
        let s = etherparse::SlicedPacket::from_ip(seg).unwrap();
        let pl = match &s.transport {
            Some(etherparse::TransportSlice::Tcp(t)) => t.payload(),
            Some(etherparse::TransportSlice::Udp(u)) => u.payload(),
            _ => panic!("no transport"),
        };
        match (&s.net, &s.transport) {
            (Some(etherparse::NetSlice::Ipv4(ip)), Some(etherparse::TransportSlice::Tcp(t))) => {
                let h = ip.header().to_header();
                h.header_checksum == h.calc_header_checksum()
                    && t.to_header().calc_checksum_ipv4(&h, pl).unwrap() == t.checksum()
            }
            (Some(etherparse::NetSlice::Ipv6(ip)), Some(etherparse::TransportSlice::Tcp(t))) => {
                let h = ip.header().to_header();
                t.to_header().calc_checksum_ipv6(&h, pl).unwrap() == t.checksum()
            }
            (Some(etherparse::NetSlice::Ipv4(ip)), Some(etherparse::TransportSlice::Udp(u))) => {
                let h = ip.header().to_header();
                h.header_checksum == h.calc_header_checksum()
                    && u.to_header().calc_checksum_ipv4(&h, pl).unwrap() == u.checksum()
            }
            (Some(etherparse::NetSlice::Ipv6(ip)), Some(etherparse::TransportSlice::Udp(u))) => {
                let h = ip.header().to_header();
                u.to_header().calc_checksum_ipv6(&h, pl).unwrap() == u.checksum()
            }
            _ => panic!("unexpected packet"),
        }
    }

    #[test]
    fn tcp_segments_have_exact_headers_and_checksums() {
        for v6 in [false, true] {
            let data = payload(3 * 1000 + 321);
            let flags = tcp_flags::PSH | tcp_flags::FIN | 0x80;
            let (pkt, off) = tcp_super(v6, &data, flags);
            let mut segs: Vec<Vec<u8>> = Vec::new();
            let n = segment(&pkt, &off, &mut Vec::new(), |s| segs.push(s.to_vec())).unwrap();
            assert_eq!(n, 4);
            let mut joined = Vec::new();
            for (i, s) in segs.iter().enumerate() {
                assert!(checksums_valid(s), "v6={v6} segment {i}");
                assert!(etherparse_checksums_ok(s), "v6={v6} segment {i}");
                let p = etherparse::SlicedPacket::from_ip(s).unwrap();
                let Some(etherparse::TransportSlice::Tcp(t)) = p.transport else {
                    panic!()
                };
                assert_eq!(
                    t.sequence_number(),
                    0xfffff000u32.wrapping_add(i as u32 * 1000)
                );
                assert_eq!(t.acknowledgment_number(), 77);
                assert_eq!(t.fin(), i == 3, "FIN on the last only");
                assert_eq!(t.psh(), i == 3, "PSH on the last only");
                assert_eq!(t.cwr(), i == 0, "CWR on the first only");
                assert!(t.ack());
                assert_eq!(t.payload().len(), if i == 3 { 321 } else { 1000 });
                joined.extend_from_slice(t.payload());
                if let Some(etherparse::NetSlice::Ipv4(ip)) = &p.net {
                    assert_eq!(
                        ip.header().identification(),
                        0xfffeu16.wrapping_add(i as u16)
                    );
                    assert_eq!(ip.header().total_len() as usize, s.len());
                }
            }
            assert_eq!(joined, data);
        }
    }

    #[test]
    fn udp_uso_segments_are_datagrams() {
        for v6 in [false, true] {
            let data = payload(2 * 1200 + 5);
            let b = if v6 {
                etherparse::PacketBuilder::ipv6([0xfd; 16], [0x20; 16], 64)
            } else {
                etherparse::PacketBuilder::ipv4([10, 0, 1, 2], [203, 0, 113, 5], 64)
            };
            let mut v = Vec::new();
            b.udp(5000, 3478).write(&mut v, &data).unwrap();
            let l4 = if v6 { 40 } else { 20 };
            let p = linux_partial(&v, l4, 17);
            v[l4 + 6..l4 + 8].copy_from_slice(&p.to_be_bytes());
            let h = header(F_NEEDS_CSUM, GSO_UDP_L4, 1200, l4 as u16, 6);
            let off = Offload::from_header(&h, &v).unwrap().unwrap();
            let mut segs: Vec<Vec<u8>> = Vec::new();
            segment(&v, &off, &mut Vec::new(), |s| segs.push(s.to_vec())).unwrap();
            assert_eq!(segs.len(), 3);
            let mut joined = Vec::new();
            for s in &segs {
                assert!(checksums_valid(s) && etherparse_checksums_ok(s));
                let info = wire::parse(s).unwrap();
                joined.extend_from_slice(&s[info.payload_offset(s).unwrap()..]);
            }
            assert_eq!(joined, data);
        }
    }

    /// A NAT rewrites address and port with RFC 1624 arithmetic as if the field held a
    /// complete checksum; `to_header` must still leave the partial sum the receiver needs.
    #[test]
    fn nat_rewrite_keeps_partial_checksum_right() {
        for v6 in [false, true] {
            let (mut pkt, off) = tcp_super(v6, &payload(2500), tcp_flags::PSH);
            let mut info = wire::parse(&pkt).unwrap();
            let new_src = if v6 {
                Endpoint::new("2001:db8::11".parse().unwrap(), 61000)
            } else {
                Endpoint::new("203.0.113.11".parse().unwrap(), 61000)
            };
            assert!(wire::set_src(&mut pkt, &mut info, new_src));
            wire::decrement_ttl(&mut pkt, &mut info);
            let _hdr = off.to_header(&mut pkt);
            let l4 = off.csum_start as usize;
            // Exactly what the sending kernel would have put there for the new addresses.
            let at = l4 + 16;
            assert_eq!(
                u16::from_be_bytes([pkt[at], pkt[at + 1]]),
                linux_partial(&pkt, l4, 6),
                "v6={v6}"
            );
            // Completing it (the receiving side's job) gives a valid packet, and so does
            // segmenting it.
            let mut whole = pkt.clone();
            let mut plain = off;
            plain.gso_type = GSO_NONE;
            complete_checksum(&mut whole, &plain).unwrap();
            assert!(checksums_valid(&whole), "v6={v6}");
            let mut ok = 0;
            segment(&pkt, &off, &mut Vec::new(), |s| {
                ok += usize::from(checksums_valid(s) && etherparse_checksums_ok(s))
            })
            .unwrap();
            assert_eq!(ok, 3);
        }
    }

    #[test]
    fn partial_udp_checksum_is_completed() {
        let mut v = Vec::new();
        etherparse::PacketBuilder::ipv4([10, 0, 1, 2], [203, 0, 113, 5], 64)
            .udp(5000, 3478)
            .write(&mut v, b"hello, partial checksum")
            .unwrap();
        let p = linux_partial(&v, 20, 17);
        v[26..28].copy_from_slice(&p.to_be_bytes());
        assert!(!checksums_valid(&v));
        let h = header(F_NEEDS_CSUM, GSO_NONE, 0, 20, 6);
        let off = Offload::from_header(&h, &v).unwrap().unwrap();
        assert!(!off.is_gso());
        complete_checksum(&mut v, &off).unwrap();
        assert!(checksums_valid(&v) && etherparse_checksums_ok(&v));
    }

    /// Coalescing a run of datagrams and cutting the result again (what the receiving
    /// kernel does with a USO packet) gives back the same datagrams.
    #[test]
    fn coalesced_udp_segments_back_into_the_originals() {
        for v6 in [false, true] {
            let sizes = [100usize, 100, 100, 40];
            let mut dgrams = Vec::new();
            for (i, n) in sizes.iter().enumerate() {
                let b = if v6 {
                    etherparse::PacketBuilder::ipv6([0xfd; 16], [0x20; 16], 63)
                } else {
                    etherparse::PacketBuilder::ipv4([203, 0, 113, 11], [203, 0, 113, 5], 63)
                };
                let mut v = Vec::new();
                b.udp(61000, 3478)
                    .write(&mut v, &payload(*n + i)[i..])
                    .unwrap();
                dgrams.push(v);
            }
            let (l4, seg) = udp_coalescable(&dgrams[0]).unwrap();
            let mut merged = dgrams[0].clone();
            for d in &dgrams[1..] {
                let (l, _) = udp_coalescable(d).unwrap();
                assert_eq!(l, l4);
                assert!(udp_same_flow(&dgrams[0], d, l4));
                merged.extend_from_slice(&d[l4 + 8..]);
            }
            let off = finish_udp_coalesced(&mut merged, l4, seg as u16).unwrap();
            let again = Offload::from_header(&off.to_header(&mut merged), &merged)
                .unwrap()
                .unwrap();
            assert_eq!(again, off);
            let mut out: Vec<Vec<u8>> = Vec::new();
            segment(&merged, &off, &mut Vec::new(), |s| out.push(s.to_vec())).unwrap();
            assert_eq!(out.len(), dgrams.len());
            for (a, b) in out.iter().zip(&dgrams) {
                assert!(checksums_valid(a) && etherparse_checksums_ok(a));
                assert_eq!(a[l4..], b[l4..], "v6={v6}: UDP header and payload");
            }
        }
        // Other flows, fragments and options do not join.
        let mut a = Vec::new();
        etherparse::PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(1, 2)
            .write(&mut a, b"abc")
            .unwrap();
        let mut b = a.clone();
        b[21] = 9; // another source port
        assert!(!udp_same_flow(&a, &b, 20));
        let mut f = a.clone();
        f[6] = 0x20; // more fragments
        assert_eq!(udp_coalescable(&f), None);
        assert_eq!(udp_coalescable(&a), Some((20, 3)));
    }

    /// An independent decoder: tshark, with checksum verification on, reads a pcap of
    /// segments cut from TCP and UDP super-segments (IPv4 and IPv6, one NAT-rewritten) and
    /// finds every IPv4, TCP and UDP checksum good.
    #[test]
    fn tshark_verifies_every_segment_checksum() {
        let have = std::process::Command::new("tshark").arg("-v").output();
        assert!(
            have.is_ok_and(|o| o.status.success()),
            "tshark is needed by this test: run `cargo xtask test` as root, or apt-get install tshark"
        );
        let mut segs: Vec<Vec<u8>> = Vec::new();
        for v6 in [false, true] {
            let (mut pkt, off) = tcp_super(v6, &payload(4000), tcp_flags::PSH | tcp_flags::FIN);
            segment(&pkt, &off, &mut Vec::new(), |s| segs.push(s.to_vec())).unwrap();
            let mut info = wire::parse(&pkt).unwrap();
            let to = if v6 { "2001:db8::99" } else { "198.51.100.9" };
            wire::set_dst(&mut pkt, &mut info, Endpoint::new(to.parse().unwrap(), 443));
            let _ = off.to_header(&mut pkt);
            segment(&pkt, &off, &mut Vec::new(), |s| segs.push(s.to_vec())).unwrap();
        }
        let mut dgrams = Vec::new();
        etherparse::PacketBuilder::ipv4([10, 0, 1, 2], [203, 0, 113, 5], 64)
            .udp(5000, 3478)
            .write(&mut dgrams, &payload(2500))
            .unwrap();
        let p = linux_partial(&dgrams, 20, 17);
        dgrams[26..28].copy_from_slice(&p.to_be_bytes());
        let h = header(F_NEEDS_CSUM, GSO_UDP_L4, 1000, 20, 6);
        let off = Offload::from_header(&h, &dgrams).unwrap().unwrap();
        segment(&dgrams, &off, &mut Vec::new(), |s| segs.push(s.to_vec())).unwrap();
        let expected = segs.len();
        assert_eq!(
            expected,
            2 * 2 * 4 + 3,
            "4 TCP segments per super-segment, 3 UDP"
        );

        let path =
            std::env::temp_dir().join(format!("pinhole-offload-{}.pcap", std::process::id()));
        let file = std::fs::File::create(&path).unwrap();
        let mut w = crate::pcap::PcapWriter::new(std::io::BufWriter::new(file)).unwrap();
        for (i, s) in segs.iter().enumerate() {
            w.write_packet(std::time::Duration::from_millis(i as u64), s)
                .unwrap();
        }
        w.finish().unwrap();
        let out = std::process::Command::new("tshark")
            .args(["-r"])
            .arg(&path)
            .args([
                "-o",
                "ip.check_checksum:TRUE",
                "-o",
                "tcp.check_checksum:TRUE",
                "-o",
                "udp.check_checksum:TRUE",
                "-T",
                "fields",
                "-E",
                "separator=,",
                "-e",
                "ip.checksum.status",
                "-e",
                "tcp.checksum.status",
                "-e",
                "udp.checksum.status",
            ])
            .output()
            .unwrap();
        let _ = std::fs::remove_file(&path);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), expected, "{text}");
        for (i, l) in lines.iter().enumerate() {
            let f: Vec<&str> = l.split(',').collect();
            let v4 = !(8..16).contains(&i);
            // 1 = good (0 bad, 2 unverified).
            assert_eq!(f[0], if v4 { "1" } else { "" }, "frame {}: {l}", i + 1);
            assert!(f[1] == "1" || f[2] == "1", "frame {}: {l}", i + 1);
        }
    }

    #[test]
    fn bad_headers_are_refused() {
        let (pkt, _) = tcp_super(false, &payload(100), 0);
        assert_eq!(Offload::from_header(&PLAIN_HEADER, &pkt), Ok(None));
        let h = header(F_NEEDS_CSUM, GSO_UDP, 1000, 20, 16);
        assert_eq!(
            Offload::from_header(&h, &pkt),
            Err(OffloadError::UnsupportedGso(GSO_UDP))
        );
        let h = header(F_NEEDS_CSUM, GSO_TCPV6, 1000, 20, 16);
        assert_eq!(Offload::from_header(&h, &pkt), Err(OffloadError::Malformed));
        let h = header(F_NEEDS_CSUM, GSO_NONE, 0, 200, 16);
        assert_eq!(
            Offload::from_header(&h, &pkt),
            Err(OffloadError::BadChecksumPosition)
        );
        let h = header(0, GSO_TCPV4, 1000, 20, 16);
        assert_eq!(
            Offload::from_header(&h, &pkt),
            Err(OffloadError::BadChecksumPosition)
        );
    }
}
