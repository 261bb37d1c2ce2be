//! The SIP ALG (`sip_alg: rewrite`): an opt-in rewriter a [`Nat`](crate::nat::Nat) runs
//! on the SIP packets it translates, the way consumer routers (and Linux's
//! `nf_conntrack_sip`/`nf_nat_sip`) do — so that scenarios can show an ALG that helps a
//! NAT-unaware phone and one that breaks a NAT-aware setup (double rewriting with a
//! proxy that already fixes Contact/Via, or media ports advertised that a symmetric NAT
//! then does not use).
//!
//! # What it does
//!
//! It looks at IPv4 UDP and TCP packets the NAT forwards (not hairpinned ones) whose
//! inside or outside port is 5060, after the NAT translated them:
//!
//! - **Outbound** (inside → outside): in the Request-URI, the top `Via`, every `Contact`,
//!   and (with an SDP body) `o=`, `c=` and `m=` (see `alg::sip`, private, for the exact rules) the
//!   packet's private source address (and its port where it matches) becomes the
//!   public mapping the NAT just used. For each `m=` port on the private address it opens
//!   a UDP mapping (RTP, and port + 1 for RTCP) towards the signalling peer, as if the
//!   phone had sent from it, and writes the external port into `m=`.
//! - **Inbound** (outside → inside): in the Request-URI, the top `Via` and `Contact`, the
//!   public address:port the packet was sent to becomes the private one (so the phone
//!   recognises its own Via in responses and requests for its public Contact reach it).
//!   SDP is not touched inbound.
//! - `Content-Length` follows the body; IP total length, UDP length and the UDP/TCP
//!   checksum are recomputed.
//! - **TCP**: a segment is rewritten only if it holds whole SIP messages (each framed by
//!   its `Content-Length`); one cut across segments passes unchanged
//!   ([`AlgStats::partial`]). When a rewrite changes a segment's length, the connection
//!   gets a sequence adjustment per direction (like `nf_ct_seqadj`: correction positions
//!   with the offsets after them), applied to the sequence numbers of later segments in
//!   that direction and to the acknowledgement numbers and SACK blocks of the other
//!   direction.
//! - Every action is counted in [`AlgStats`] (in [`NatStats::alg`](crate::nat::NatStats))
//!   and reported as [`NatEvent::SipAlg`](crate::nat::NatEvent::SipAlg).
//!
//! # Where it follows Linux and where it differs
//!
//! Follows `nf_nat_sip`: Request-URI, top Via, Contact rewritten by address:port match
//! against the connection (`map_addr`); SDP `o=`/`c=`/`m=`; Content-Length fixed; TCP
//! sequence adjustment by correction position (`nf_ct_seqadj_set`: a retransmission of a
//! rewritten segment is rewritten the same way and does not move the offsets again; SACK
//! blocks adjusted too); SIP over TCP only when messages are whole in a segment.
//!
//! Differs: up to [`MAX_CORRECTIONS`] correction positions per direction where Linux
//! keeps one (so a retransmission of an older rewritten segment is still shifted right);
//! outbound, a private address whose port does not match is still rewritten
//! (address only) — the habit of consumer routers, which Linux does not have; `From`,
//! `To`, `maddr=`/`received=` parameters and `a=rtcp` are not touched; media ports get
//! ordinary NAT mappings towards the signalling peer's address:port (so they follow the
//! NAT's mapping and filtering behaviour: under address-and-port-dependent filtering,
//! media from elsewhere is let in only after the phone sends) where Linux creates
//! conntrack expectations that admit the signalling peer's address on any port
//! (`sip_direct_media=1`); IPv6 packets are not rewritten; the ALG never drops a packet
//! (Linux drops one it failed to mangle).
//!
//! # Packets that grow
//!
//! The rewritten packet is forwarded whole, however long it became: the ALG neither
//! fragments nor truncates. The next link's `mtu:` then applies as to any packet (an IPv4
//! packet without DF is fragmented, others are dropped as `Mtu`), which is also what Linux
//! does after `nf_nat_mangle_udp_packet` enlarged the skb.

pub(crate) mod sip;

use crate::wire::{self, IpVersion, L4, PacketBuf, PacketInfo, checksum};
use crate::{Direction, wire::Endpoint};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// The SIP port the ALG watches (RFC 3261 §19.1.2).
pub const SIP_PORT: u16 = 5060;

/// Most TCP connections with a sequence adjustment at once; beyond it the least recently
/// used one is forgotten (and counted in [`AlgStats::seqadj_evicted`]).
pub const MAX_SEQADJ: usize = 4096;

/// Counters of what the ALG did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AlgStats {
    /// SIP messages looked at.
    pub messages: u64,
    /// Packets whose payload was rewritten.
    pub packets_rewritten: u64,
    /// Header and SDP fields rewritten.
    pub fields: u64,
    /// `Content-Length` values fixed.
    pub content_length_fixed: u64,
    /// Media mappings opened (RTP and RTCP ports).
    pub media_mappings: u64,
    /// Media ports for which no mapping could be opened (left as they were).
    pub media_failed: u64,
    /// TCP segments whose sequence or acknowledgement number was adjusted.
    pub tcp_adjusted: u64,
    /// TCP segments on the SIP port left alone because a message was cut across segments.
    pub partial: u64,
    /// Sequence adjustments forgotten because [`MAX_SEQADJ`] connections had one.
    pub seqadj_evicted: u64,
}

/// Most correction points kept per direction; older ones fold into the base offset.
pub const MAX_CORRECTIONS: usize = 32;

/// One direction's sequence adjustment: the points (original sequence numbers of the
/// rewritten segments) after which the byte stream is shifted, each with the total shift
/// after it. Linux's `nf_ct_seqadj` keeps only the last point (offset before and after
/// it); keeping several makes a retransmission of an older rewritten segment come out
/// exactly as its first transmission.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Way {
    /// Shift before the first kept point.
    base: i32,
    /// (original sequence number of a rewritten segment, shift of the bytes after it).
    points: Vec<(u32, i32)>,
}

/// `a` is after `b` in sequence space (RFC 793 §3.3 modular comparison).
fn after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

impl Way {
    /// The shift of a segment starting at original sequence number `seq`.
    fn offset_for(&self, seq: u32) -> i32 {
        let mut off = self.base;
        for &(pos, o) in &self.points {
            if after(seq, pos) {
                off = o;
            } else {
                break;
            }
        }
        off
    }

    /// A segment starting at (original) `seq` changed length by `delta`. A segment at a
    /// known point (a retransmission) or before the last point changes nothing.
    fn set(&mut self, seq: u32, delta: i32) {
        if delta == 0 {
            return;
        }
        let last = self.points.last().map_or(self.base, |p| p.1);
        if self.points.last().is_some_and(|p| !after(seq, p.0)) {
            return;
        }
        if self.points.len() == MAX_CORRECTIONS {
            self.base = self.points.remove(0).1;
        }
        self.points.push((seq, last.wrapping_add(delta)));
    }

    /// An acknowledgement (or SACK edge) for bytes of this way, in the shifted numbering,
    /// mapped back to the sender's original numbering.
    fn unadjust(&self, ack: u32) -> u32 {
        let mut off = self.base;
        for &(pos, o) in &self.points {
            if after(ack.wrapping_sub(off as u32), pos) {
                off = o;
            } else {
                break;
            }
        }
        ack.wrapping_sub(off as u32)
    }
}

#[derive(Clone, Debug, Default)]
struct SeqAdj {
    /// [outbound, inbound].
    ways: [Way; 2],
    last_used: u64,
}

/// Connection key: (internal endpoint, remote endpoint).
type ConnKey = (Endpoint, Endpoint);

/// What the ALG did to one packet (for [`NatEvent::SipAlg`](crate::nat::NatEvent::SipAlg)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlgAction {
    /// Direction of the packet.
    pub dir: Direction,
    /// Fields rewritten.
    pub fields: u32,
    /// Change of the payload length in bytes.
    pub length_delta: i32,
    /// Media ports opened: (internal endpoint, external endpoint).
    pub media: Vec<(Endpoint, Endpoint)>,
}

/// The ALG state of one NAT: sequence adjustments of TCP connections and counters.
#[derive(Clone, Debug, Default)]
pub struct SipAlg {
    seqadj: BTreeMap<ConnKey, SeqAdj>,
    uses: u64,
    stats: AlgStats,
}

/// Opens a media mapping: (internal endpoint, remote) → external endpoint.
pub(crate) type OpenMedia<'a> = dyn FnMut(Endpoint, Endpoint) -> Option<Endpoint> + 'a;

impl SipAlg {
    /// Counters.
    pub fn stats(&self) -> &AlgStats {
        &self.stats
    }

    /// TCP connections with a live sequence adjustment.
    pub fn adjusted_connections(&self) -> usize {
        self.seqadj.len()
    }

    /// Forget every sequence adjustment (NAT reboot: the connections are gone).
    pub(crate) fn clear(&mut self) {
        self.seqadj.clear();
    }

    /// Process a packet the NAT has just translated and will forward. `before` is the
    /// packet as it arrived, `pkt` holds it translated.
    pub(crate) fn handle(
        &mut self,
        dir: Direction,
        before: &PacketInfo,
        pkt: &mut PacketBuf,
        open_media: &mut OpenMedia<'_>,
    ) -> Option<AlgAction> {
        if before.version != IpVersion::V4 || before.fragment.is_some() {
            return None;
        }
        let Ok(info) = wire::parse(pkt.as_slice()) else {
            return None;
        };
        let (internal, remote, public) = match dir {
            Direction::Outbound => (
                before.src_endpoint()?,
                info.dst_endpoint()?,
                info.src_endpoint()?,
            ),
            Direction::Inbound => (
                info.dst_endpoint()?,
                info.src_endpoint()?,
                before.dst_endpoint()?,
            ),
        };
        let tcp = matches!(info.l4, L4::Tcp { .. });
        if !tcp && !matches!(info.l4, L4::Udp { .. }) {
            return None;
        }
        let is_sip = internal.port == SIP_PORT || remote.port == SIP_PORT;
        let key = (internal, remote);
        let mut action = None;
        let mut delta = 0i32;
        if is_sip {
            let (from, to, mode, sdp) = match dir {
                Direction::Outbound => (internal, public, sip::Match::Address, true),
                Direction::Inbound => (public, internal, sip::Match::Endpoint, false),
            };
            if let (IpAddr::V4(f), IpAddr::V4(t)) = (from.addr, to.addr) {
                let job = sip::Rewrite {
                    from: (f, from.port),
                    to: (t, to.port),
                    mode,
                    sdp,
                };
                let (a, d) = self.rewrite(dir, &info, pkt, &job, tcp, internal, remote, open_media);
                action = a;
                delta = d;
            }
        }
        if tcp {
            self.adjust_tcp(dir, key, pkt, delta);
        }
        action
    }

    #[allow(clippy::too_many_arguments)]
    fn rewrite(
        &mut self,
        dir: Direction,
        info: &PacketInfo,
        pkt: &mut PacketBuf,
        job: &sip::Rewrite,
        tcp: bool,
        internal: Endpoint,
        remote: Endpoint,
        open_media: &mut OpenMedia<'_>,
    ) -> (Option<AlgAction>, i32) {
        let Some(off) = info.payload_offset(pkt.as_slice()) else {
            return (None, 0);
        };
        let end = info.total_len.min(pkt.len());
        if off >= end {
            return (None, 0);
        }
        let mut media = Vec::new();
        let mut failed = 0u64;
        let outcome = {
            let payload = &pkt.as_slice()[off..end];
            let mut open = |port: u16| -> Option<u16> {
                let int = Endpoint::new(internal.addr, port);
                let ext = open_media(int, remote);
                match ext {
                    Some(e) => {
                        media.push((int, e));
                        // RTCP on port + 1 (RFC 3550 §11), best effort.
                        if let Some(rtcp) = port.checked_add(1) {
                            let int2 = Endpoint::new(internal.addr, rtcp);
                            match open_media(int2, remote) {
                                Some(e2) => media.push((int2, e2)),
                                None => failed += 1,
                            }
                        }
                        Some(e.port)
                    }
                    None => {
                        failed += 1;
                        None
                    }
                }
            };
            sip::rewrite_payload(payload, job, tcp, &mut open)
        };
        self.stats.media_mappings += media.len() as u64;
        self.stats.media_failed += failed;
        let out = match outcome {
            Ok(o) => o,
            Err(sip::Skip::Partial) => {
                self.stats.partial += 1;
                return (None, 0);
            }
            Err(sip::Skip::NotSip) => return (None, 0),
        };
        self.stats.messages += u64::from(out.messages);
        let old_len = end - off;
        let delta = out.text.len() as i32 - old_len as i32;
        if out.fields == 0 && out.text.len() == old_len {
            // Nothing to write (e.g. media ports kept their numbers); still report the
            // mappings it opened.
            let action = (!media.is_empty()).then_some(AlgAction {
                dir,
                fields: 0,
                length_delta: 0,
                media,
            });
            return (action, 0);
        }
        self.stats.packets_rewritten += 1;
        self.stats.fields += u64::from(out.fields);
        self.stats.content_length_fixed += u64::from(out.content_length_fixed);
        let mut bytes = Vec::with_capacity(off + out.text.len());
        bytes.extend_from_slice(&pkt.as_slice()[..off]);
        bytes.extend_from_slice(&out.text);
        fix_lengths_and_checksums(&mut bytes, info);
        pkt.set_contents(&bytes);
        let action = AlgAction {
            dir,
            fields: out.fields,
            length_delta: delta,
            media,
        };
        if tcp && delta != 0 {
            let seq = match info.l4 {
                L4::Tcp { seq, .. } => seq,
                _ => 0,
            };
            // The offset applies after this segment; record it before adjusting (the
            // segment itself moves by the offset that held before it).
            self.uses += 1;
            let uses = self.uses;
            if !self.seqadj.contains_key(&(internal, remote))
                && self.seqadj.len() >= MAX_SEQADJ
                && let Some(oldest) = self
                    .seqadj
                    .iter()
                    .min_by_key(|(_, v)| v.last_used)
                    .map(|(k, _)| *k)
            {
                self.seqadj.remove(&oldest);
                self.stats.seqadj_evicted += 1;
            }
            let e = self.seqadj.entry((internal, remote)).or_default();
            e.last_used = uses;
            // The new shift applies to the bytes after this segment; the segment itself
            // moves by the shift before it (adjust_tcp, next).
            e.ways[way(dir)].set(seq, delta);
        }
        (Some(action), delta)
    }

    /// Apply sequence/ack adjustments to a translated TCP segment.
    fn adjust_tcp(&mut self, dir: Direction, key: ConnKey, pkt: &mut PacketBuf, _delta: i32) {
        let Some(e) = self.seqadj.get_mut(&key) else {
            return;
        };
        self.uses += 1;
        e.last_used = self.uses;
        let adj = e.clone();
        let Ok(info) = wire::parse(pkt.as_slice()) else {
            return;
        };
        let L4::Tcp {
            seq, ack, flags, ..
        } = info.l4
        else {
            return;
        };
        let this = &adj.ways[way(dir)];
        let other = &adj.ways[1 - way(dir)];
        let new_seq = seq.wrapping_add(this.offset_for(seq) as u32);
        let has_ack = flags & wire::tcp_flags::ACK != 0;
        let new_ack = if has_ack { other.unadjust(ack) } else { ack };
        let l4 = info.l4_offset;
        let buf = pkt.as_mut_slice();
        let mut changed = new_seq != seq || new_ack != ack;
        buf[l4 + 4..l4 + 8].copy_from_slice(&new_seq.to_be_bytes());
        buf[l4 + 8..l4 + 12].copy_from_slice(&new_ack.to_be_bytes());
        if has_ack {
            changed |= adjust_sack(buf, l4, other);
        }
        if changed {
            self.stats.tcp_adjusted += 1;
            let end = info.total_len.min(buf.len());
            tcp_checksum(&mut buf[..end], &info);
        }
        if flags & wire::tcp_flags::RST != 0 {
            self.seqadj.remove(&key);
        }
    }
}

fn way(dir: Direction) -> usize {
    match dir {
        Direction::Outbound => 0,
        Direction::Inbound => 1,
    }
}

/// Adjust the SACK blocks (RFC 2018) of a segment; returns whether any changed.
fn adjust_sack(buf: &mut [u8], l4: usize, other: &Way) -> bool {
    let data_off = usize::from(buf.get(l4 + 12).copied().unwrap_or(0) >> 4) * 4;
    let end = (l4 + data_off).min(buf.len());
    let mut i = l4 + 20;
    let mut changed = false;
    while i < end {
        match buf[i] {
            0 => break,
            1 => i += 1,
            kind => {
                let Some(&len) = buf.get(i + 1) else { break };
                let len = usize::from(len);
                if len < 2 || i + len > end {
                    break;
                }
                if kind == 5 {
                    let mut j = i + 2;
                    while j + 8 <= i + len {
                        for k in [j, j + 4] {
                            let v =
                                u32::from_be_bytes([buf[k], buf[k + 1], buf[k + 2], buf[k + 3]]);
                            let n = other.unadjust(v);
                            if n != v {
                                changed = true;
                                buf[k..k + 4].copy_from_slice(&n.to_be_bytes());
                            }
                        }
                        j += 8;
                    }
                }
                i += len;
            }
        }
    }
    changed
}

/// After the payload changed: IPv4 total length and header checksum, UDP length, and the
/// transport checksum, recomputed in full.
fn fix_lengths_and_checksums(bytes: &mut [u8], info: &PacketInfo) {
    let total = bytes.len();
    let tl = u16::try_from(total).unwrap_or(u16::MAX);
    bytes[2..4].copy_from_slice(&tl.to_be_bytes());
    bytes[10] = 0;
    bytes[11] = 0;
    let ihl = info.l4_offset;
    let c = checksum::checksum(&bytes[..ihl]);
    bytes[10..12].copy_from_slice(&c.to_be_bytes());
    match info.l4 {
        L4::Udp { .. } => {
            let l4 = info.l4_offset;
            let ulen = u16::try_from(total - l4).unwrap_or(u16::MAX);
            bytes[l4 + 4..l4 + 6].copy_from_slice(&ulen.to_be_bytes());
            let had_checksum = bytes[l4 + 6] != 0 || bytes[l4 + 7] != 0;
            bytes[l4 + 6] = 0;
            bytes[l4 + 7] = 0;
            if had_checksum {
                let ph = checksum::pseudo_header_sum(
                    &bytes[12..16],
                    &bytes[16..20],
                    17,
                    (total - l4) as u32,
                );
                let mut c = finish2(ph, checksum::sum(&bytes[l4..]));
                if c == 0 {
                    c = 0xffff;
                }
                bytes[l4 + 6..l4 + 8].copy_from_slice(&c.to_be_bytes());
            }
        }
        L4::Tcp { .. } => tcp_checksum(bytes, info),
        _ => {}
    }
}

fn tcp_checksum(bytes: &mut [u8], info: &PacketInfo) {
    let l4 = info.l4_offset;
    let total = bytes.len();
    bytes[l4 + 16] = 0;
    bytes[l4 + 17] = 0;
    let ph = checksum::pseudo_header_sum(&bytes[12..16], &bytes[16..20], 6, (total - l4) as u32);
    let c = finish2(ph, checksum::sum(&bytes[l4..]));
    bytes[l4 + 16..l4 + 18].copy_from_slice(&c.to_be_bytes());
}

/// The checksum of two partial sums (folded first, so that the addition cannot overflow).
fn finish2(a: u32, b: u32) -> u16 {
    checksum::finish(u32::from(checksum::fold(a)) + u32::from(checksum::fold(b)))
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn correction_points() {
        let mut w = Way::default();
        w.set(100, 8);
        assert_eq!((w.offset_for(100), w.offset_for(150)), (0, 8));
        w.set(100, 8); // a retransmission moves nothing
        w.set(200, -4);
        assert_eq!((w.offset_for(200), w.offset_for(201)), (8, 4));
        assert_eq!(w.offset_for(100), 0, "an older segment keeps its own shift");
        assert_eq!(w.unadjust(100), 100);
        assert_eq!(w.unadjust(158), 150);
        assert_eq!(w.unadjust(254), 250);
        let mut wrap = Way::default();
        wrap.set(u32::MAX - 10, 5);
        assert_eq!(wrap.offset_for(3), 5);
        assert_eq!(wrap.unadjust(8), 3);
        let mut many = Way::default();
        for k in 0..(MAX_CORRECTIONS as u32 + 5) {
            many.set(1000 * (k + 1), 1);
        }
        assert_eq!(many.points.len(), MAX_CORRECTIONS);
        assert_eq!(many.base, 5);
        assert_eq!(many.offset_for(1_000_000), MAX_CORRECTIONS as i32 + 5);
    }
}
