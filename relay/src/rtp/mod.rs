//! RTP and RTCP on the wire (RFC 3550), as zero-copy views with owned `Repr`s in the
//! smoltcp style: [`Packet`] wraps any `AsRef<[u8]>` buffer, [`Packet::new_checked`]
//! bounds-checks it once, the getters then read fields in place, and [`Repr::parse`] /
//! [`Repr::emit`] convert to and from a plain struct.
//!
//! What the media relay ([`crate::media`]) needs from them, and no more:
//!
//! - the RTP fixed header (RFC 3550 §5.1): version, padding, extension, CSRC count,
//!   marker, payload type, sequence number, timestamp, SSRC, then the CSRC list and the
//!   header extension (§5.3.1), so that [`Packet::header_len`] says where the payload
//!   starts; a plausibility check for latching reads the version and payload type only;
//! - RTCP compound packets (RFC 3550 §6.1, §6.4) in [`rtcp`]: sender and receiver
//!   reports with their report blocks (fraction lost, 24-bit signed cumulative loss,
//!   extended highest sequence number, interarrival jitter, LSR, DLSR); every other packet
//!   type (SDES, BYE, APP, feedback, XR) is passed over by its length;
//! - [`is_rtcp`]: RFC 5761 §4 demultiplexing of RTP and RTCP on one port (rtcp-mux) by the
//!   second byte: 192–223 is RTCP (RTP payload types 64–95 with the marker bit would
//!   collide, which is why RFC 5761 §4 forbids them for RTP on a muxed port).
//!
//! Nothing here panics on input: a view is only built through `new_checked`, and every
//! failure is an [`Error`]. SRTP (RFC 3711) keeps the RTP header in the clear, so the
//! views read SRTP/SRTCP headers as well; the encrypted payloads are never looked at.

pub mod rtcp;

pub use rtcp::{
    Compound, Packet as RtcpPacket, ReceiverReport, ReportBlock, Repr as RtcpRepr, SenderInfo,
    SenderReport,
};

/// The RTP version this module reads and writes (RFC 3550 §5.1: `V=2`).
pub const VERSION: u8 = 2;

/// Length of the RTP fixed header, before CSRCs and extension (RFC 3550 §5.1).
pub const HEADER_LEN: usize = 12;

/// Most CSRC identifiers a header can carry (the CC field is four bits, RFC 3550 §5.1).
pub const MAX_CSRC: usize = 15;

/// Why bytes are not an RTP or RTCP packet this module accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Shorter than the header (fixed part, CSRCs, extension) says.
    #[error("packet truncated: {have} bytes, need {need}")]
    Truncated {
        /// Bytes present.
        have: usize,
        /// Bytes the header announces.
        need: usize,
    },
    /// The version field is not 2 (RFC 3550 §5.1).
    #[error("RTP/RTCP version {0}, expected 2")]
    BadVersion(u8),
    /// The padding bit is set but the count in the last octet is zero or longer than the
    /// payload (RFC 3550 §5.1: the count includes itself).
    #[error("bad padding")]
    BadPadding,
    /// An RTCP length field or report count does not fit the packet (RFC 3550 §6.4).
    #[error("bad RTCP length")]
    BadLength,
    /// An RTCP compound packet holds no packet, or an emitted field is out of range.
    #[error("malformed packet")]
    Malformed,
}

/// RFC 5761 §4: on a port shared by RTP and RTCP, a packet whose second byte is 192–223
/// is RTCP (packet types SR 200, RR 201, SDES 202, BYE 203, APP 204, RTPFB 205, PSFB 206,
/// XR 207 fall in it), anything else is RTP. Only the two first bits (version 2) and the
/// second byte are read; an empty or one-byte packet is not RTCP.
pub fn is_rtcp(data: &[u8]) -> bool {
    matches!(data, [b0, b1, ..] if b0 >> 6 == VERSION && (192..=223).contains(b1))
}

/// A zero-copy view of an RTP packet (RFC 3550 §5.1).
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// |V=2|P|X|  CC   |M|     PT      |       sequence number         |
/// |                           timestamp                           |
/// |           synchronization source (SSRC) identifier            |
/// |            contributing source (CSRC) identifiers             |  CC × 4 bytes
/// |  defined by profile (§5.3.1)  |            length             |  if X
/// |                     header extension                          |  length × 4 bytes
/// ```
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

mod field {
    pub(super) const VPXCC: usize = 0;
    pub(super) const MPT: usize = 1;
    pub(super) const SEQ: core::ops::Range<usize> = 2..4;
    pub(super) const TIMESTAMP: core::ops::Range<usize> = 4..8;
    pub(super) const SSRC: core::ops::Range<usize> = 8..12;
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checks: the getters may panic on a short buffer. Use
    /// [`Packet::new_checked`] for anything from the network.
    pub fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a buffer after [`Packet::check_len`].
    pub fn new_checked(buffer: T) -> Result<Packet<T>, Error> {
        let p = Packet { buffer };
        p.check_len()?;
        Ok(p)
    }

    /// Checks that the buffer holds the whole header (fixed part, CSRCs, extension), that
    /// the version is 2 and that padding, when announced, fits the payload. After this,
    /// no getter panics.
    pub fn check_len(&self) -> Result<(), Error> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated {
                have: b.len(),
                need: HEADER_LEN,
            });
        }
        let version = b[field::VPXCC] >> 6;
        if version != VERSION {
            return Err(Error::BadVersion(version));
        }
        let mut need = HEADER_LEN + 4 * usize::from(b[field::VPXCC] & 0x0f);
        if b[field::VPXCC] & 0x10 != 0 {
            if b.len() < need + 4 {
                return Err(Error::Truncated {
                    have: b.len(),
                    need: need + 4,
                });
            }
            need += 4 + 4 * usize::from(be16(b, need + 2));
        }
        if b.len() < need {
            return Err(Error::Truncated {
                have: b.len(),
                need,
            });
        }
        if b[field::VPXCC] & 0x20 != 0 {
            let pad = usize::from(b[b.len() - 1]);
            if pad == 0 || pad > b.len() - need {
                return Err(Error::BadPadding);
            }
        }
        Ok(())
    }

    /// The version field (2 for every checked packet).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VPXCC] >> 6
    }

    /// The padding bit (P).
    pub fn padding(&self) -> bool {
        self.buffer.as_ref()[field::VPXCC] & 0x20 != 0
    }

    /// The extension bit (X): a header extension follows the CSRCs (RFC 3550 §5.3.1).
    pub fn extension(&self) -> bool {
        self.buffer.as_ref()[field::VPXCC] & 0x10 != 0
    }

    /// The CSRC count (CC).
    pub fn csrc_count(&self) -> u8 {
        self.buffer.as_ref()[field::VPXCC] & 0x0f
    }

    /// The marker bit (M).
    pub fn marker(&self) -> bool {
        self.buffer.as_ref()[field::MPT] & 0x80 != 0
    }

    /// The payload type (PT, 7 bits; RFC 3551 §6 for the static ones).
    pub fn payload_type(&self) -> u8 {
        self.buffer.as_ref()[field::MPT] & 0x7f
    }

    /// The sequence number.
    pub fn sequence_number(&self) -> u16 {
        be16(self.buffer.as_ref(), field::SEQ.start)
    }

    /// The RTP timestamp.
    pub fn timestamp(&self) -> u32 {
        be32(self.buffer.as_ref(), field::TIMESTAMP.start)
    }

    /// The synchronisation source.
    pub fn ssrc(&self) -> u32 {
        be32(self.buffer.as_ref(), field::SSRC.start)
    }

    /// The `i`th CSRC, if `i` < [`Packet::csrc_count`].
    pub fn csrc(&self, i: usize) -> Option<u32> {
        (i < usize::from(self.csrc_count())).then(|| be32(self.buffer.as_ref(), HEADER_LEN + 4 * i))
    }

    /// The header extension: the profile-defined 16 bits and the extension data (without
    /// its 4-byte header), when X is set.
    pub fn extension_header(&self) -> Option<(u16, &[u8])> {
        if !self.extension() {
            return None;
        }
        let b = self.buffer.as_ref();
        let at = HEADER_LEN + 4 * usize::from(self.csrc_count());
        let len = 4 * usize::from(be16(b, at + 2));
        Some((be16(b, at), &b[at + 4..at + 4 + len]))
    }

    /// Length of the whole header: fixed part, CSRCs and extension (where the payload
    /// starts).
    pub fn header_len(&self) -> usize {
        let mut n = HEADER_LEN + 4 * usize::from(self.csrc_count());
        if self.extension() {
            n += 4 + 4 * usize::from(be16(self.buffer.as_ref(), n + 2));
        }
        n
    }

    /// Number of padding bytes at the end (the count octet included), 0 without P.
    pub fn padding_len(&self) -> usize {
        let b = self.buffer.as_ref();
        if self.padding() {
            usize::from(b[b.len() - 1])
        } else {
            0
        }
    }

    /// The payload: after the header, before the padding.
    pub fn payload(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        &b[self.header_len()..b.len() - self.padding_len()]
    }

    /// The whole buffer.
    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// Consumes the view, returning the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the marker bit.
    pub fn set_marker(&mut self, marker: bool) {
        let b = &mut self.buffer.as_mut()[field::MPT];
        *b = (*b & 0x7f) | if marker { 0x80 } else { 0 };
    }

    /// Sets the payload type (the top bit of `pt` is ignored).
    pub fn set_payload_type(&mut self, pt: u8) {
        let b = &mut self.buffer.as_mut()[field::MPT];
        *b = (*b & 0x80) | (pt & 0x7f);
    }

    /// Sets the sequence number.
    pub fn set_sequence_number(&mut self, seq: u16) {
        self.buffer.as_mut()[field::SEQ].copy_from_slice(&seq.to_be_bytes());
    }

    /// Sets the timestamp.
    pub fn set_timestamp(&mut self, ts: u32) {
        self.buffer.as_mut()[field::TIMESTAMP].copy_from_slice(&ts.to_be_bytes());
    }

    /// Sets the SSRC.
    pub fn set_ssrc(&mut self, ssrc: u32) {
        self.buffer.as_mut()[field::SSRC].copy_from_slice(&ssrc.to_be_bytes());
    }
}

/// A header extension (RFC 3550 §5.3.1): 16 profile-defined bits and data whose length
/// is a multiple of four bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Extension<'a> {
    /// The profile-defined field (0xBEDE for RFC 8285 one-byte headers).
    pub profile: u16,
    /// The extension data, a multiple of 4 bytes long.
    pub data: &'a [u8],
}

/// An RTP packet as a plain struct (RFC 3550 §5.1), borrowing extension and payload.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Repr<'a> {
    /// The marker bit.
    pub marker: bool,
    /// The payload type (0–127).
    pub payload_type: u8,
    /// The sequence number.
    pub sequence_number: u16,
    /// The timestamp.
    pub timestamp: u32,
    /// The SSRC.
    pub ssrc: u32,
    /// The CSRC list (at most [`MAX_CSRC`]).
    pub csrcs: Vec<u32>,
    /// The header extension, if any.
    pub extension: Option<Extension<'a>>,
    /// The payload.
    pub payload: &'a [u8],
    /// Padding bytes at the end, the count octet included (0: no padding, P clear).
    pub padding: u8,
}

impl<'a> Repr<'a> {
    /// Reads a checked packet.
    pub fn parse(packet: &Packet<&'a [u8]>) -> Repr<'a> {
        let b: &'a [u8] = packet.buffer;
        let view = Packet::new_unchecked(b);
        Repr {
            marker: view.marker(),
            payload_type: view.payload_type(),
            sequence_number: view.sequence_number(),
            timestamp: view.timestamp(),
            ssrc: view.ssrc(),
            csrcs: (0..usize::from(view.csrc_count()))
                .filter_map(|i| view.csrc(i))
                .collect(),
            extension: view.extension().then(|| {
                let at = HEADER_LEN + 4 * usize::from(view.csrc_count());
                let len = 4 * usize::from(be16(b, at + 2));
                Extension {
                    profile: be16(b, at),
                    data: &b[at + 4..at + 4 + len],
                }
            }),
            payload: {
                let start = view.header_len();
                &b[start..b.len() - view.padding_len()]
            },
            padding: u8::try_from(view.padding_len()).unwrap_or(0),
        }
    }

    /// Bytes [`Repr::emit`] writes.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN
            + 4 * self.csrcs.len()
            + self.extension.map_or(0, |e| 4 + e.data.len())
            + self.payload.len()
            + usize::from(self.padding)
    }

    /// Writes the packet into the first [`Repr::buffer_len`] bytes of `buf` and returns
    /// that length. Refuses (with [`Error::Malformed`]) more than 15 CSRCs, a payload
    /// type above 127, extension data that is not a multiple of 4 bytes or longer than
    /// the 16-bit length field allows, and a buffer too short.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, Error> {
        let len = self.buffer_len();
        let ext_words = match self.extension {
            Some(e) if e.data.len() % 4 != 0 => return Err(Error::Malformed),
            Some(e) => Some(u16::try_from(e.data.len() / 4).map_err(|_| Error::Malformed)?),
            None => None,
        };
        if self.csrcs.len() > MAX_CSRC || self.payload_type > 127 {
            return Err(Error::Malformed);
        }
        if buf.len() < len {
            return Err(Error::Truncated {
                have: buf.len(),
                need: len,
            });
        }
        let buf = &mut buf[..len];
        // Checked above: csrcs.len() <= 15.
        let cc = self.csrcs.len() as u8;
        buf[0] = (VERSION << 6)
            | if self.padding > 0 { 0x20 } else { 0 }
            | if ext_words.is_some() { 0x10 } else { 0 }
            | cc;
        buf[1] = (if self.marker { 0x80 } else { 0 }) | self.payload_type;
        buf[2..4].copy_from_slice(&self.sequence_number.to_be_bytes());
        buf[4..8].copy_from_slice(&self.timestamp.to_be_bytes());
        buf[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
        let mut at = HEADER_LEN;
        for c in &self.csrcs {
            buf[at..at + 4].copy_from_slice(&c.to_be_bytes());
            at += 4;
        }
        if let (Some(e), Some(words)) = (self.extension, ext_words) {
            buf[at..at + 2].copy_from_slice(&e.profile.to_be_bytes());
            buf[at + 2..at + 4].copy_from_slice(&words.to_be_bytes());
            buf[at + 4..at + 4 + e.data.len()].copy_from_slice(e.data);
            at += 4 + e.data.len();
        }
        buf[at..at + self.payload.len()].copy_from_slice(self.payload);
        at += self.payload.len();
        if self.padding > 0 {
            buf[at..len - 1].fill(0);
            buf[len - 1] = self.padding;
        }
        Ok(len)
    }

    /// [`Repr::emit`] into a new vector.
    pub fn to_bytes(&self) -> Result<Vec<u8>, Error> {
        let mut v = vec![0; self.buffer_len()];
        self.emit(&mut v)?;
        Ok(v)
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use proptest::prelude::*;

    /// PCMU, seq 0x1234, ts 0xdeadbeef, SSRC 0x01020304, one CSRC, a one-word RFC 8285
    /// extension, 4 payload bytes, 4 bytes of padding.
    static PACKET_BYTES: [u8; 36] = [
        0xb1, 0x80, 0x12, 0x34, 0xde, 0xad, 0xbe, 0xef, 0x01, 0x02, 0x03, 0x04, // fixed
        0x0a, 0x0b, 0x0c, 0x0d, // CSRC
        0xbe, 0xde, 0x00, 0x01, 0x10, 0xff, 0x00, 0x00, // extension
        0xaa, 0xbb, 0xcc, 0xdd, // payload
        0x00, 0x00, 0x00, 0x04, // padding
        0x99, 0x99, 0x99, 0x99, // (trailing, cut below)
    ];

    #[test]
    fn golden_bytes() {
        let bytes = &PACKET_BYTES[..32];
        let p = Packet::new_checked(bytes).unwrap();
        assert_eq!(p.version(), 2);
        assert!(p.padding() && p.extension() && p.marker());
        assert_eq!(p.csrc_count(), 1);
        assert_eq!(p.payload_type(), 0);
        assert_eq!(p.sequence_number(), 0x1234);
        assert_eq!(p.timestamp(), 0xdead_beef);
        assert_eq!(p.ssrc(), 0x0102_0304);
        assert_eq!(p.csrc(0), Some(0x0a0b_0c0d));
        assert_eq!(p.csrc(1), None);
        assert_eq!(
            p.extension_header(),
            Some((0xbede, &[0x10, 0xff, 0, 0][..]))
        );
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.payload(), &[0xaa, 0xbb, 0xcc, 0xdd]);
        let r = Repr::parse(&p);
        let mut out = [0xa5u8; 40];
        assert_eq!(r.emit(&mut out), Ok(32));
        assert_eq!(&out[..32], bytes);
        assert_eq!(out[32], 0xa5, "emit wrote past its length");
    }

    #[test]
    fn refuses_what_does_not_fit() {
        assert!(matches!(
            Packet::new_checked(&PACKET_BYTES[..11]),
            Err(Error::Truncated { .. })
        ));
        // Extension announced, header cut inside it.
        assert!(matches!(
            Packet::new_checked(&PACKET_BYTES[..22]),
            Err(Error::Truncated { .. })
        ));
        let mut v1 = PACKET_BYTES;
        v1[0] = 0x40 | (v1[0] & 0x3f);
        assert_eq!(
            Packet::new_checked(&v1[..32]).unwrap_err(),
            Error::BadVersion(1)
        );
        let mut pad = PACKET_BYTES;
        pad[31] = 9; // more padding than payload
        assert_eq!(
            Packet::new_checked(&pad[..32]).unwrap_err(),
            Error::BadPadding
        );
        pad[31] = 0;
        assert_eq!(
            Packet::new_checked(&pad[..32]).unwrap_err(),
            Error::BadPadding
        );
    }

    #[test]
    fn setters() {
        let mut b = PACKET_BYTES;
        let mut p = Packet::new_unchecked(&mut b[..32]);
        p.set_marker(false);
        p.set_payload_type(8);
        p.set_sequence_number(7);
        p.set_timestamp(8);
        p.set_ssrc(9);
        assert!(!p.marker());
        assert_eq!(
            (
                p.payload_type(),
                p.sequence_number(),
                p.timestamp(),
                p.ssrc()
            ),
            (8, 7, 8, 9)
        );
    }

    #[test]
    fn rfc5761_demux() {
        assert!(is_rtcp(&[0x80, 200]));
        assert!(is_rtcp(&[0x81, 223]));
        assert!(!is_rtcp(&[0x80, 0]));
        assert!(!is_rtcp(&[0x80, 0x80 | 96])); // PT 96 with marker = 224
        assert!(!is_rtcp(&[0x80, 191])); // PT 63 with marker
        assert!(!is_rtcp(&[0x00, 200])); // version 0: STUN range
        assert!(!is_rtcp(&[0x80]));
    }

    #[allow(clippy::type_complexity)] // a proptest tuple, named once here
    fn arb_repr() -> impl Strategy<
        Value = (
            bool,
            u8,
            u16,
            u32,
            u32,
            Vec<u32>,
            Option<(u16, Vec<u8>)>,
            Vec<u8>,
            u8,
        ),
    > {
        (
            any::<bool>(),
            0u8..128,
            any::<u16>(),
            any::<u32>(),
            any::<u32>(),
            proptest::collection::vec(any::<u32>(), 0..=15),
            proptest::option::of((
                any::<u16>(),
                proptest::collection::vec(any::<u8>(), 0..4).prop_map(|w| {
                    let mut v = Vec::new();
                    for x in w {
                        v.extend_from_slice(&[x, 1, 2, 3]);
                    }
                    v
                }),
            )),
            proptest::collection::vec(any::<u8>(), 0..64),
            0u8..8,
        )
    }

    proptest! {
        #[test]
        fn emit_parse_round_trip((marker, pt, seq, ts, ssrc, csrcs, ext, payload, padding) in arb_repr()) {
            let repr = Repr {
                marker,
                payload_type: pt,
                sequence_number: seq,
                timestamp: ts,
                ssrc,
                csrcs,
                extension: ext.as_ref().map(|(profile, data)| Extension { profile: *profile, data }),
                payload: &payload,
                padding,
            };
            let bytes = repr.to_bytes().unwrap();
            let packet = Packet::new_checked(&bytes[..]).unwrap();
            prop_assert_eq!(Repr::parse(&packet), repr);
        }

        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(p) = Packet::new_checked(&data[..]) {
                let r = Repr::parse(&p);
                let again = r.to_bytes().unwrap();
                let p2 = Packet::new_checked(&again[..]).unwrap();
                prop_assert_eq!(Repr::parse(&p2), r);
            }
            let _ = is_rtcp(&data);
        }
    }
}
