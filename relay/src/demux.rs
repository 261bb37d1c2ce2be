//! One port, several protocols: the RFC 7983 §7 first-byte demultiplexer (str0m's
//! `io::DatagramRecv` does the same), used wherever STUN, TURN ChannelData, DTLS and
//! RTP/RTCP may arrive on the same socket or stream — the TURN stream framer, a TURN port
//! shared with an RFC 5780 STUN server, the media relay to come.
//!
//! ```text
//!                  +----------------+
//!                  |        [0..3] -+--> STUN (RFC 8489 §6: first two bits 00)
//!                  |      [16..19] -+--> ZRTP
//!  packet -->      |      [20..63] -+--> DTLS
//!                  |     [64..127] -+--> TURN ChannelData (RFC 8656 §12; see below)
//!                  |    [128..191] -+--> RTP/RTCP
//!                  +----------------+
//! ```
//!
//! RFC 7983 §7 assigns only 64–79 to ChannelData (channel numbers 0x4000–0x4FFF). The
//! bytes 80–127 are the RFC 5766 channel numbers 0x5000–0x7FFF that RFC 8656 §12 reserves
//! and that pinhole's legacy-channel option accepts; nothing else is assigned there, so
//! [`classify`] calls them ChannelData and the TURN core decides whether the number is
//! valid.

/// What the first byte of a packet says it is (RFC 7983 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MultiplexKind {
    /// 0–3: a STUN message (first two bits 00, RFC 8489 §6).
    Stun,
    /// 16–19: ZRTP (RFC 6189).
    Zrtp,
    /// 20–63: a DTLS record (RFC 9147).
    Dtls,
    /// 64–127: TURN ChannelData (RFC 8656 §12.4: first two bits 01).
    ChannelData,
    /// 128–191: RTP or RTCP (RFC 3550; RFC 5761 tells them apart by payload type).
    Rtp,
    /// Anything else (including an empty packet): drop it.
    Unknown,
}

/// The kind of `packet` by its first byte (RFC 7983 §7).
pub fn classify(packet: &[u8]) -> MultiplexKind {
    match packet.first() {
        Some(0..=3) => MultiplexKind::Stun,
        Some(16..=19) => MultiplexKind::Zrtp,
        Some(20..=63) => MultiplexKind::Dtls,
        Some(64..=127) => MultiplexKind::ChannelData,
        Some(128..=191) => MultiplexKind::Rtp,
        _ => MultiplexKind::Unknown,
    }
}

/// Whether `packet` is a STUN Binding request (message type 0x0001, RFC 8489 §5/§6; RFC
/// 3489 requests, without the magic cookie, included): what a TURN port shared with an
/// RFC 5780 STUN server hands to the STUN server, everything else going to TURN.
pub fn is_binding_request(packet: &[u8]) -> bool {
    packet.get(..2) == Some(&[0, 1])
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn first_byte_ranges() {
        let kind = |b: u8| classify(&[b, 0, 0, 0]);
        for (range, want) in [
            (0..=3, MultiplexKind::Stun),
            (4..=15, MultiplexKind::Unknown),
            (16..=19, MultiplexKind::Zrtp),
            (20..=63, MultiplexKind::Dtls),
            (64..=127, MultiplexKind::ChannelData),
            (128..=191, MultiplexKind::Rtp),
            (192..=255, MultiplexKind::Unknown),
        ] {
            for b in range {
                assert_eq!(kind(b), want, "first byte {b}");
            }
        }
        assert_eq!(classify(&[]), MultiplexKind::Unknown);
    }

    #[test]
    fn binding_requests() {
        assert!(is_binding_request(&[0x00, 0x01, 0x00, 0x00]));
        assert!(!is_binding_request(&[0x00, 0x03, 0x00, 0x00])); // Allocate
        assert!(!is_binding_request(&[0x01, 0x01])); // Binding success response
        assert!(!is_binding_request(&[0x00]));
    }
}
