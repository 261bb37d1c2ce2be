//! IPv4 fragmentation at a link whose MTU a packet exceeds (RFC 791 §2.3 and §3.2,
//! "fragmentation procedure"; RFC 815 for why offsets are in 8-byte units).

use crate::wire::{IpVersion, PacketBuf, checksum, parse};

/// What a link does with a packet larger than its MTU.
#[derive(Debug)]
pub(crate) enum Split {
    /// IPv4 without DF: these fragments, in offset order, replace it.
    Fragments(Vec<PacketBuf>),
    /// IPv6 (routers never fragment, RFC 8200 §5) or IPv4 with DF (RFC 1191): refuse and
    /// let the caller send "packet too big" / "fragmentation needed".
    TooBig,
    /// Not a parseable IP packet, or no fragment of at least 8 data bytes fits in the MTU,
    /// or the fragment offset would overflow 13 bits.
    Unfragmentable,
}

const DF: u8 = 0x40;
const MF: u16 = 0x2000;

/// The options of IPv4 header `hdr` whose "copied" flag is set (RFC 791 §3.1: option type
/// bit 0x80), padded with end-of-option-list to a 4-byte boundary; the header for every
/// fragment but the first. Stops at the first malformed option.
fn copied_header(hdr: &[u8]) -> Vec<u8> {
    let mut out = hdr[..20].to_vec();
    let mut i = 20;
    while i < hdr.len() {
        let ty = hdr[i];
        match ty {
            0 => break,
            1 => i += 1,
            _ => {
                let Some(&len) = hdr.get(i + 1) else { break };
                let len = len as usize;
                if len < 2 || i + len > hdr.len() {
                    break;
                }
                if ty & 0x80 != 0 {
                    out.extend_from_slice(&hdr[i..i + len]);
                }
                i += len;
            }
        }
    }
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
    out[0] = 0x40 | (out.len() / 4) as u8;
    out
}

/// Split `bytes` for a link of `mtu` bytes.
pub(crate) fn split(bytes: &[u8], mtu: u16) -> Split {
    let Ok(info) = parse(bytes) else {
        return Split::Unfragmentable;
    };
    if info.version == IpVersion::V6 {
        return Split::TooBig;
    }
    if bytes[6] & DF != 0 {
        return Split::TooBig;
    }
    let mtu = mtu as usize;
    let ihl = info.l4_offset;
    let first_hdr = &bytes[..ihl];
    let data = &bytes[ihl..info.total_len];
    let field = u16::from_be_bytes([bytes[6], bytes[7]]);
    let base_units = (field & 0x1fff) as usize;
    let base_more = field & MF != 0;
    if ihl + data.len() <= mtu {
        // Only trailing bytes beyond the IP total length made it too big: drop them.
        return Split::Fragments(vec![PacketBuf::from_slice(&bytes[..info.total_len])]);
    }
    let other_hdr = copied_header(first_hdr);
    let mut out = Vec::new();
    let mut off = 0usize;
    while off < data.len() {
        let hdr: &[u8] = if off == 0 { first_hdr } else { &other_hdr };
        if mtu < hdr.len() + 8 {
            return Split::Unfragmentable;
        }
        let room = (mtu - hdr.len()) & !7;
        let n = room.min(data.len() - off);
        let last = off + n == data.len();
        let units = base_units + off / 8;
        if units > 0x1fff {
            return Split::Unfragmentable;
        }
        let mut p = PacketBuf::zeroed(hdr.len() + n);
        let b = p.as_mut_slice();
        b[..hdr.len()].copy_from_slice(hdr);
        b[hdr.len()..].copy_from_slice(&data[off..off + n]);
        b[2..4].copy_from_slice(&((hdr.len() + n) as u16).to_be_bytes());
        let more = !last || base_more;
        let f = units as u16 | if more { MF } else { 0 };
        b[6..8].copy_from_slice(&f.to_be_bytes());
        b[10..12].fill(0);
        let c = checksum::checksum(&b[..hdr.len()]);
        b[10..12].copy_from_slice(&c.to_be_bytes());
        out.push(p);
        off += n;
    }
    if out.is_empty() {
        // No data and a header that alone exceeds the MTU.
        return Split::Unfragmentable;
    }
    Split::Fragments(out)
}
