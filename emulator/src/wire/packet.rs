//! [`parse`] reads the fields devices need; [`set_src`] / [`set_dst`] rewrite them in place.

use super::checksum;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// IP version of a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IpVersion {
    /// IPv4 (RFC 791).
    V4,
    /// IPv6 (RFC 8200).
    V6,
}

/// Transport protocol, as the devices tell them apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    /// UDP (17).
    Udp,
    /// TCP (6).
    Tcp,
    /// ICMPv4 (1) in IPv4, ICMPv6 (58) in IPv6.
    Icmp,
    /// Anything else, by protocol / next-header number.
    Other(u8),
}

impl Proto {
    /// The IP protocol number for this protocol in the given IP version.
    pub fn number(self, v: IpVersion) -> u8 {
        match (self, v) {
            (Proto::Udp, _) => 17,
            (Proto::Tcp, _) => 6,
            (Proto::Icmp, IpVersion::V4) => 1,
            (Proto::Icmp, IpVersion::V6) => 58,
            (Proto::Other(n), _) => n,
        }
    }
}

/// An address and port. For ICMP queries (echo) the "port" is the ICMP identifier, which
/// NATs translate like a port (RFC 5508 §3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    /// IP address.
    pub addr: IpAddr,
    /// UDP/TCP port or ICMP query identifier.
    pub port: u16,
}

impl Endpoint {
    /// An endpoint from address and port.
    pub fn new(addr: IpAddr, port: u16) -> Self {
        Endpoint { addr, port }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.addr {
            IpAddr::V4(a) => write!(f, "{a}:{}", self.port),
            IpAddr::V6(a) => write!(f, "[{a}]:{}", self.port),
        }
    }
}

/// Fragmentation fields of a fragmented packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Fragment {
    /// Identification (16 bits in IPv4, 32 in IPv6).
    pub id: u32,
    /// Offset of this fragment's data in the original datagram, in bytes.
    pub offset: u16,
    /// More fragments follow.
    pub more: bool,
}

/// ICMP message classes that matter to a NAT (RFC 5508).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IcmpKind {
    /// Echo request (v4 type 8, v6 type 128): a query the NAT maps by identifier.
    EchoRequest,
    /// Echo reply (v4 type 0, v6 type 129).
    EchoReply,
    /// An error message carrying the start of the packet that caused it (v4 types 3, 4, 5,
    /// 11, 12; v6 types 1–4).
    Error {
        /// ICMP type.
        ty: u8,
        /// ICMP code.
        code: u8,
    },
    /// Any other ICMP message.
    Other {
        /// ICMP type.
        ty: u8,
        /// ICMP code.
        code: u8,
    },
}

/// What follows the IP header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L4 {
    /// UDP header.
    Udp {
        /// Source port.
        src_port: u16,
        /// Destination port.
        dst_port: u16,
    },
    /// TCP header.
    Tcp {
        /// Source port.
        src_port: u16,
        /// Destination port.
        dst_port: u16,
        /// Flags byte (FIN 0x01, SYN 0x02, RST 0x04, PSH 0x08, ACK 0x10).
        flags: u8,
        /// Sequence number.
        seq: u32,
        /// Acknowledgement number.
        ack: u32,
    },
    /// ICMP (v4 or v6) message.
    Icmp {
        /// Its class.
        kind: IcmpKind,
        /// Identifier (meaningful for echo request/reply).
        id: u16,
    },
    /// A non-first fragment: no transport header in this packet.
    Fragment,
    /// Another protocol.
    Other,
}

/// TCP flag bits.
pub mod tcp_flags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// PSH.
    pub const PSH: u8 = 0x08;
    /// ACK.
    pub const ACK: u8 = 0x10;
}

/// The fields of one packet that devices look at, read by [`parse`]. Offsets are from the
/// start of the packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacketInfo {
    /// IP version.
    pub version: IpVersion,
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Transport protocol.
    pub proto: Proto,
    /// TTL / hop limit.
    pub ttl: u8,
    /// Offset of the transport header (IPv4 header length; IPv6 fixed + extension headers).
    pub l4_offset: usize,
    /// Length of the IP packet (from its header; bytes after it in the buffer are ignored).
    pub total_len: usize,
    /// Present when the packet is a fragment.
    pub fragment: Option<Fragment>,
    /// The transport header.
    pub l4: L4,
}

impl PacketInfo {
    /// The source address and port (ICMP: identifier), if this packet has a transport header.
    pub fn src_endpoint(&self) -> Option<Endpoint> {
        match self.l4 {
            L4::Udp { src_port, .. } | L4::Tcp { src_port, .. } => {
                Some(Endpoint::new(self.src, src_port))
            }
            L4::Icmp { id, .. } => Some(Endpoint::new(self.src, id)),
            _ => None,
        }
    }

    /// The destination address and port (ICMP: identifier).
    pub fn dst_endpoint(&self) -> Option<Endpoint> {
        match self.l4 {
            L4::Udp { dst_port, .. } | L4::Tcp { dst_port, .. } => {
                Some(Endpoint::new(self.dst, dst_port))
            }
            L4::Icmp { id, .. } => Some(Endpoint::new(self.dst, id)),
            _ => None,
        }
    }

    /// Length of the transport payload after its header (UDP/TCP), if known.
    pub fn payload_offset(&self, buf: &[u8]) -> Option<usize> {
        match self.l4 {
            L4::Udp { .. } => Some(self.l4_offset + 8),
            L4::Tcp { .. } => {
                let off = buf.get(self.l4_offset + 12)? >> 4;
                Some(self.l4_offset + off as usize * 4)
            }
            L4::Icmp { .. } => Some(self.l4_offset + 8),
            _ => None,
        }
    }

    /// Whether this packet is an ICMP error (carries an embedded packet).
    pub fn is_icmp_error(&self) -> bool {
        matches!(
            self.l4,
            L4::Icmp {
                kind: IcmpKind::Error { .. },
                ..
            }
        )
    }
}

/// Why a packet could not be parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// Shorter than its headers say.
    #[error("packet truncated")]
    Truncated,
    /// Not IPv4 or IPv6.
    #[error("unknown IP version {0}")]
    Version(u8),
    /// A header field is impossible (IHL < 5, total length < header, …).
    #[error("malformed header")]
    Malformed,
}

fn v4(b: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(b[0], b[1], b[2], b[3])
}

fn v6(b: &[u8]) -> Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[..16]);
    Ipv6Addr::from(a)
}

fn be16(b: &[u8], at: usize) -> Result<u16, WireError> {
    b.get(at..at + 2)
        .map(|s| u16::from_be_bytes([s[0], s[1]]))
        .ok_or(WireError::Truncated)
}

fn be32(b: &[u8], at: usize) -> Result<u32, WireError> {
    b.get(at..at + 4)
        .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or(WireError::Truncated)
}

/// Read the fields of an IPv4 or IPv6 packet. Checksums are not verified (a NAT passes a
/// bad checksum on, still bad, as real ones do).
///
/// The transport header must be complete unless the packet is a non-first fragment.
pub fn parse(buf: &[u8]) -> Result<PacketInfo, WireError> {
    parse_inner(buf, false)
}

/// Like [`parse`], but for the packet embedded in an ICMP error: it may be cut short, so
/// only the first 8 bytes of the transport header (ports, or ICMP type/code/id) are needed
/// and `total_len` is taken from the header without checking it against `buf`.
pub fn parse_embedded(buf: &[u8]) -> Result<PacketInfo, WireError> {
    parse_inner(buf, true)
}

fn parse_inner(buf: &[u8], embedded: bool) -> Result<PacketInfo, WireError> {
    let first = *buf.first().ok_or(WireError::Truncated)?;
    match first >> 4 {
        4 => {
            if buf.len() < 20 {
                return Err(WireError::Truncated);
            }
            let ihl = (first & 0x0f) as usize * 4;
            if ihl < 20 {
                return Err(WireError::Malformed);
            }
            if buf.len() < ihl {
                return Err(WireError::Truncated);
            }
            let total_len = be16(buf, 2)? as usize;
            if total_len < ihl {
                return Err(WireError::Malformed);
            }
            if !embedded && total_len > buf.len() {
                return Err(WireError::Truncated);
            }
            let frag_field = be16(buf, 6)?;
            let more = frag_field & 0x2000 != 0;
            let offset = (frag_field & 0x1fff) * 8;
            let fragment = (more || offset != 0).then(|| Fragment {
                id: u16::from_be_bytes([buf[4], buf[5]]) as u32,
                offset,
                more,
            });
            let proto_num = buf[9];
            let end = if embedded { buf.len() } else { total_len };
            let l4 = parse_l4(buf, ihl, end, proto_num, IpVersion::V4, fragment, embedded)?;
            Ok(PacketInfo {
                version: IpVersion::V4,
                src: IpAddr::V4(v4(&buf[12..16])),
                dst: IpAddr::V4(v4(&buf[16..20])),
                proto: proto_of(proto_num, IpVersion::V4),
                ttl: buf[8],
                l4_offset: ihl,
                total_len,
                fragment,
                l4,
            })
        }
        6 => {
            if buf.len() < 40 {
                return Err(WireError::Truncated);
            }
            let total_len = 40 + be16(buf, 4)? as usize;
            if !embedded && total_len > buf.len() {
                return Err(WireError::Truncated);
            }
            let end = if embedded { buf.len() } else { total_len };
            // Walk extension headers (RFC 8200 §4) up to the transport header.
            let mut next = buf[6];
            let mut off = 40usize;
            let mut fragment = None;
            for _ in 0..8 {
                match next {
                    0 | 43 | 60 => {
                        let len = (*buf.get(off + 1).ok_or(WireError::Truncated)? as usize + 1) * 8;
                        next = buf[off];
                        off += len;
                    }
                    44 => {
                        let h = buf.get(off..off + 8).ok_or(WireError::Truncated)?;
                        let fo = u16::from_be_bytes([h[2], h[3]]);
                        fragment = Some(Fragment {
                            id: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
                            offset: fo & 0xfff8,
                            more: fo & 1 != 0,
                        });
                        next = h[0];
                        off += 8;
                    }
                    _ => break,
                }
                if off > end {
                    return Err(WireError::Truncated);
                }
            }
            let l4 = parse_l4(buf, off, end, next, IpVersion::V6, fragment, embedded)?;
            Ok(PacketInfo {
                version: IpVersion::V6,
                src: IpAddr::V6(v6(&buf[8..24])),
                dst: IpAddr::V6(v6(&buf[24..40])),
                proto: proto_of(next, IpVersion::V6),
                ttl: buf[7],
                l4_offset: off,
                total_len,
                fragment,
                l4,
            })
        }
        v => Err(WireError::Version(v)),
    }
}

fn proto_of(n: u8, v: IpVersion) -> Proto {
    match (n, v) {
        (17, _) => Proto::Udp,
        (6, _) => Proto::Tcp,
        (1, IpVersion::V4) | (58, IpVersion::V6) => Proto::Icmp,
        (n, _) => Proto::Other(n),
    }
}

fn parse_l4(
    buf: &[u8],
    off: usize,
    end: usize,
    proto: u8,
    v: IpVersion,
    fragment: Option<Fragment>,
    embedded: bool,
) -> Result<L4, WireError> {
    if fragment.is_some_and(|f| f.offset != 0) {
        return Ok(L4::Fragment);
    }
    let need = |n: usize| -> Result<(), WireError> {
        if off + n > end || off + n > buf.len() {
            Err(WireError::Truncated)
        } else {
            Ok(())
        }
    };
    match proto_of(proto, v) {
        Proto::Udp => {
            need(8)?;
            Ok(L4::Udp {
                src_port: be16(buf, off)?,
                dst_port: be16(buf, off + 2)?,
            })
        }
        Proto::Tcp => {
            if embedded {
                need(8)?;
                Ok(L4::Tcp {
                    src_port: be16(buf, off)?,
                    dst_port: be16(buf, off + 2)?,
                    flags: buf.get(off + 13).copied().unwrap_or(0),
                    seq: be32(buf, off + 4)?,
                    ack: be32(buf, off + 8).unwrap_or(0),
                })
            } else {
                need(20)?;
                let data_off = (buf[off + 12] >> 4) as usize * 4;
                if data_off < 20 {
                    return Err(WireError::Malformed);
                }
                need(data_off)?;
                Ok(L4::Tcp {
                    src_port: be16(buf, off)?,
                    dst_port: be16(buf, off + 2)?,
                    flags: buf[off + 13],
                    seq: be32(buf, off + 4)?,
                    ack: be32(buf, off + 8)?,
                })
            }
        }
        Proto::Icmp => {
            need(8)?;
            let (ty, code) = (buf[off], buf[off + 1]);
            let kind = match (v, ty) {
                (IpVersion::V4, 8) | (IpVersion::V6, 128) => IcmpKind::EchoRequest,
                (IpVersion::V4, 0) | (IpVersion::V6, 129) => IcmpKind::EchoReply,
                (IpVersion::V4, 3 | 4 | 5 | 11 | 12) | (IpVersion::V6, 1..=4) => {
                    IcmpKind::Error { ty, code }
                }
                _ => IcmpKind::Other { ty, code },
            };
            Ok(L4::Icmp {
                kind,
                id: be16(buf, off + 4)?,
            })
        }
        Proto::Other(_) => Ok(L4::Other),
    }
}

/// Offset of the transport checksum field, and whether the pseudo-header covers addresses.
fn l4_checksum(info: &PacketInfo) -> Option<(usize, bool)> {
    match info.l4 {
        L4::Udp { .. } => Some((info.l4_offset + 6, true)),
        L4::Tcp { .. } => Some((info.l4_offset + 16, true)),
        L4::Icmp { .. } => Some((info.l4_offset + 2, info.version == IpVersion::V6)),
        _ => None,
    }
}

fn addr_range(info: &PacketInfo, src: bool) -> std::ops::Range<usize> {
    match (info.version, src) {
        (IpVersion::V4, true) => 12..16,
        (IpVersion::V4, false) => 16..20,
        (IpVersion::V6, true) => 8..24,
        (IpVersion::V6, false) => 24..40,
    }
}

/// Rewrite the source address and port (ICMP query: identifier) in place, updating the
/// IPv4 header checksum and the transport checksum incrementally (RFC 1624). A non-first
/// fragment has no transport header: only its address changes. `info` is updated to match.
///
/// The new address must be of the packet's IP version; a mismatched one leaves the packet
/// unchanged and returns `false`.
pub fn set_src(buf: &mut [u8], info: &mut PacketInfo, new: Endpoint) -> bool {
    set_endpoint(buf, info, new, true)
}

/// Rewrite the destination address and port; see [`set_src`].
pub fn set_dst(buf: &mut [u8], info: &mut PacketInfo, new: Endpoint) -> bool {
    set_endpoint(buf, info, new, false)
}

fn set_endpoint(buf: &mut [u8], info: &mut PacketInfo, new: Endpoint, src: bool) -> bool {
    let range = addr_range(info, src);
    let csum = l4_checksum(info);
    // RFC 1624 eqn. 3 with every change summed once: HC' = ~(~HC + Σ(~m + m')).
    let mut l4_diff = 0u32;
    let mut l4_changed = false;
    // Whole-array compares of the right size (no memcmp, no store-forwarding stall).
    let addr_diff = match (&new.addr, info.version) {
        (IpAddr::V4(a), IpVersion::V4) => {
            let o = &buf[range.clone()];
            let old = [o[0], o[1], o[2], o[3]];
            let new = a.octets();
            (old != new).then(|| {
                buf[range].copy_from_slice(&new);
                word_diff(&old, &new)
            })
        }
        (IpAddr::V6(a), IpVersion::V6) => {
            let mut old = [0u8; 16];
            old.copy_from_slice(&buf[range.clone()]);
            let new = a.octets();
            (old != new).then(|| {
                buf[range].copy_from_slice(&new);
                word_diff(&old, &new)
            })
        }
        _ => return false,
    };
    if let Some(d) = addr_diff {
        // The transport checksum covers the pseudo-header addresses (UDP, TCP, ICMPv6).
        if let Some((_, true)) = csum {
            l4_diff += d;
            l4_changed = true;
        }
        if info.version == IpVersion::V4 {
            let c = u16::from_be_bytes([buf[10], buf[11]]);
            buf[10..12].copy_from_slice(&apply_diff(c, d).to_be_bytes());
        }
    }
    // Port / identifier.
    let port_at = match info.l4 {
        L4::Udp { .. } | L4::Tcp { .. } => Some(info.l4_offset + if src { 0 } else { 2 }),
        L4::Icmp { .. } => Some(info.l4_offset + 4),
        _ => None,
    };
    if let Some(p) = port_at {
        let old = u16::from_be_bytes([buf[p], buf[p + 1]]);
        if old != new.port {
            l4_diff += (!old) as u32 + new.port as u32;
            l4_changed |= csum.is_some();
            buf[p..p + 2].copy_from_slice(&new.port.to_be_bytes());
        }
    }
    if l4_changed && let Some((at, _)) = csum {
        patch_checksum_diff(buf, info, at, l4_diff);
    }
    if src {
        info.src = new.addr;
    } else {
        info.dst = new.addr;
    }
    match &mut info.l4 {
        L4::Udp { src_port, dst_port }
        | L4::Tcp {
            src_port, dst_port, ..
        } => {
            if src {
                *src_port = new.port
            } else {
                *dst_port = new.port
            }
        }
        L4::Icmp { id, .. } => *id = new.port,
        _ => {}
    }
    true
}

/// Recompute the whole ICMP (v4) / ICMPv6 checksum of an ICMP packet in place (ICMPv6
/// includes the pseudo-header, RFC 4443 §2.3). Used after rewriting the packet embedded in
/// an ICMP error (RFC 5508 §4.2), which the checksum covers. Returns `false` (and changes
/// nothing) if the packet is not ICMP or is too short.
pub fn update_icmp_checksum(buf: &mut [u8], info: &PacketInfo) -> bool {
    if !matches!(info.l4, L4::Icmp { .. }) || info.fragment.is_some() {
        return false;
    }
    let end = info.total_len.min(buf.len());
    let at = info.l4_offset + 2;
    if at + 2 > end {
        return false;
    }
    buf[at] = 0;
    buf[at + 1] = 0;
    let seg_len = (end - info.l4_offset) as u32;
    let acc = match info.version {
        IpVersion::V4 => checksum::sum(&buf[info.l4_offset..end]),
        IpVersion::V6 => {
            let (s, d) = (&buf[8..24], &buf[24..40]);
            let ph = checksum::pseudo_header_sum(s, d, 58, seg_len) as u64;
            let body = checksum::sum(&buf[info.l4_offset..end]) as u64;
            let mut t = ph + body;
            while t > 0xffff_ffff {
                t = (t & 0xffff_ffff) + (t >> 32);
            }
            t as u32
        }
    };
    let c = checksum::finish(acc);
    buf[at..at + 2].copy_from_slice(&c.to_be_bytes());
    true
}

/// Σ(~m + m') over the 16-bit words of an even-length change (RFC 1624).
#[inline]
fn word_diff(old: &[u8], new: &[u8]) -> u32 {
    old.chunks_exact(2)
        .zip(new.chunks_exact(2))
        .map(|(o, n)| {
            (!u16::from_be_bytes([o[0], o[1]])) as u32 + u16::from_be_bytes([n[0], n[1]]) as u32
        })
        .sum()
}

/// `HC' = ~(~HC + diff)` (RFC 1624 eqn. 3).
#[inline]
fn apply_diff(check: u16, diff: u32) -> u16 {
    !checksum::fold((!check) as u32 + diff)
}

/// Apply a summed change to the transport checksum at `at`, keeping UDP's rules.
fn patch_checksum_diff(buf: &mut [u8], info: &PacketInfo, at: usize, diff: u32) {
    let Some(field) = buf.get(at..at + 2) else {
        return;
    };
    let c = u16::from_be_bytes([field[0], field[1]]);
    let udp = matches!(info.l4, L4::Udp { .. });
    // UDP over IPv4 with checksum 0 carries no checksum (RFC 768): keep it that way.
    if udp && info.version == IpVersion::V4 && c == 0 {
        return;
    }
    let mut n = apply_diff(c, diff);
    if udp && n == 0 {
        n = 0xffff;
    }
    // RFC 1624 eqn. 3 gives 0x0000 where the full computation gives 0xffff (the only value
    // that verifies) when every covered word is zero. Only an ICMPv4 message can be all
    // zeros (the other checksums cover a pseudo-header with a non-zero protocol number).
    if n == 0 && info.version == IpVersion::V4 && matches!(info.l4, L4::Icmp { .. }) {
        let end = info.total_len.min(buf.len());
        let zero = |r: std::ops::Range<usize>| buf.get(r).is_none_or(|b| b.iter().all(|x| *x == 0));
        if zero(info.l4_offset..at) && zero(at + 2..end) {
            n = 0xffff;
        }
    }
    buf[at..at + 2].copy_from_slice(&n.to_be_bytes());
}

/// Decrement TTL / hop limit in place (with the IPv4 header checksum). Returns the new
/// value; 0 means the packet must not be forwarded.
pub fn decrement_ttl(buf: &mut [u8], info: &mut PacketInfo) -> u8 {
    let at = match info.version {
        IpVersion::V4 => 8,
        IpVersion::V6 => 7,
    };
    let old = buf[at];
    let new = old.saturating_sub(1);
    if info.version == IpVersion::V4 {
        let c = u16::from_be_bytes([buf[10], buf[11]]);
        let c = checksum::update(c, &[old, buf[9]], &[new, buf[9]]);
        buf[10..12].copy_from_slice(&c.to_be_bytes());
    }
    buf[at] = new;
    info.ttl = new;
    new
}

/// Verify every checksum a packet carries (IPv4 header; UDP/TCP/ICMP when the transport
/// header and whole payload are present and the packet is not a fragment). For tests and
/// property checks, not for the hot path.
pub fn checksums_valid(buf: &[u8]) -> bool {
    let Ok(info) = parse(buf) else { return false };
    let buf = &buf[..info.total_len];
    if info.version == IpVersion::V4 && checksum::checksum(&buf[..info.l4_offset]) != 0 {
        return false;
    }
    if info.fragment.is_some() {
        return true;
    }
    let seg = &buf[info.l4_offset..];
    let (src, dst): (&[u8], &[u8]) = match info.version {
        IpVersion::V4 => (&buf[12..16], &buf[16..20]),
        IpVersion::V6 => (&buf[8..24], &buf[24..40]),
    };
    let proto = info.proto.number(info.version);
    match info.l4 {
        L4::Udp { .. } => {
            if info.version == IpVersion::V4 && seg[6] == 0 && seg[7] == 0 {
                return true;
            }
            let acc =
                checksum::pseudo_header_sum(src, dst, proto, seg.len() as u32) + checksum::sum(seg);
            checksum::fold(acc) == 0xffff
        }
        L4::Tcp { .. } => {
            let acc =
                checksum::pseudo_header_sum(src, dst, proto, seg.len() as u32) + checksum::sum(seg);
            checksum::fold(acc) == 0xffff
        }
        L4::Icmp { .. } => {
            let acc = if info.version == IpVersion::V6 {
                checksum::pseudo_header_sum(src, dst, proto, seg.len() as u32) + checksum::sum(seg)
            } else {
                checksum::sum(seg)
            };
            checksum::fold(acc) == 0xffff
        }
        _ => true,
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use etherparse::PacketBuilder;

    fn udp4(src: [u8; 4], sp: u16, dst: [u8; 4], dp: u16, payload: &[u8]) -> Vec<u8> {
        let b = PacketBuilder::ipv4(src, dst, 64).udp(sp, dp);
        let mut v = Vec::new();
        b.write(&mut v, payload).unwrap();
        v
    }

    #[test]
    fn parse_udp4_and_rewrite_keeps_checksums_valid() {
        let mut p = udp4([10, 0, 1, 2], 5000, [203, 0, 113, 5], 3478, b"hello");
        assert!(checksums_valid(&p));
        let mut info = parse(&p).unwrap();
        assert_eq!(info.src_endpoint().unwrap().to_string(), "10.0.1.2:5000");
        assert_eq!(info.dst_endpoint().unwrap().to_string(), "203.0.113.5:3478");
        let ext = Endpoint::new("203.0.113.11".parse().unwrap(), 61000);
        assert!(set_src(&mut p, &mut info, ext));
        assert!(checksums_valid(&p));
        assert_eq!(parse(&p).unwrap(), info);
        let back = Endpoint::new("10.0.1.2".parse().unwrap(), 5000);
        set_src(&mut p, &mut info, back);
        assert_eq!(
            p,
            udp4([10, 0, 1, 2], 5000, [203, 0, 113, 5], 3478, b"hello")
        );
    }

    #[test]
    fn tcp6_and_icmp_rewrite() {
        let b = PacketBuilder::ipv6([0xfd; 16], [0x20; 16], 64)
            .tcp(1234, 80, 77, 1000)
            .syn();
        let mut p = Vec::new();
        b.write(&mut p, b"").unwrap();
        let mut info = parse(&p).unwrap();
        assert!(matches!(info.l4, L4::Tcp { flags, .. } if flags & tcp_flags::SYN != 0));
        set_dst(
            &mut p,
            &mut info,
            Endpoint::new("2001:db8::1".parse().unwrap(), 8080),
        );
        assert!(checksums_valid(&p));

        let b = PacketBuilder::ipv4([10, 0, 0, 1], [8, 8, 8, 8], 64).icmpv4_echo_request(42, 1);
        let mut p = Vec::new();
        b.write(&mut p, b"ping").unwrap();
        let mut info = parse(&p).unwrap();
        assert_eq!(
            info.l4,
            L4::Icmp {
                kind: IcmpKind::EchoRequest,
                id: 42
            }
        );
        set_src(
            &mut p,
            &mut info,
            Endpoint::new("192.0.2.1".parse().unwrap(), 7),
        );
        assert!(checksums_valid(&p));
        assert_eq!(parse(&p).unwrap().src_endpoint().unwrap().port, 7);
    }

    #[test]
    fn truncated_and_garbage_are_errors_not_panics() {
        let p = udp4([10, 0, 1, 2], 5000, [203, 0, 113, 5], 3478, b"hello");
        for n in 0..p.len() {
            assert!(parse(&p[..n]).is_err(), "prefix {n}");
        }
        assert_eq!(parse(&[0x55; 40]), Err(WireError::Version(5)));
        assert_eq!(parse(&[0x41; 40]), Err(WireError::Malformed));
    }

    /// Found by the `wire_parse` fuzz target: rewriting the identifier of an ICMPv4 echo
    /// reply to 0 when the rest of the message is zeros gave checksum 0x0000 (RFC 1624
    /// eqn. 3), which does not verify; the right value is 0xffff.
    #[test]
    fn icmp_rewrite_to_an_all_zero_message_keeps_a_valid_checksum() {
        let b = PacketBuilder::ipv4([51, 100, 5, 8], [0, 0, 0, 0], 64).icmpv4_echo_reply(0x3a00, 0);
        let mut p = Vec::new();
        b.write(&mut p, b"").unwrap();
        assert!(checksums_valid(&p));
        let mut info = parse(&p).unwrap();
        assert!(set_src(
            &mut p,
            &mut info,
            Endpoint::new("203.0.0.113".parse().unwrap(), 0)
        ));
        assert_eq!(&p[20..28], &[0, 0, 0xff, 0xff, 0, 0, 0, 0]);
        assert!(checksums_valid(&p));
    }

    #[test]
    fn ttl_decrement_keeps_header_checksum() {
        let mut p = udp4([10, 0, 1, 2], 5000, [203, 0, 113, 5], 3478, b"x");
        let mut info = parse(&p).unwrap();
        assert_eq!(decrement_ttl(&mut p, &mut info), 63);
        assert!(checksums_valid(&p));
    }
}
