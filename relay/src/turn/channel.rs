//! ChannelData messages (RFC 8656 §12.4): a 4-byte header — channel number (first two
//! bits 01, so 0x4000–0x7FFF on the wire; 0x4000–0x4FFF valid) and length — then the
//! application data. Over UDP the padding to a multiple of 4 may be absent (§12.5), and
//! any bytes after the data are ignored.

/// First valid channel number (RFC 8656 §12).
pub const MIN_CHANNEL: u16 = 0x4000;
/// Last valid channel number (RFC 8656 §12).
pub const MAX_CHANNEL: u16 = 0x4FFF;
/// ChannelData header length.
pub const HEADER_LEN: usize = 4;

/// Whether `n` is a channel number a client may bind (0x4000 through 0x4FFF).
pub fn is_valid_channel(n: u16) -> bool {
    (MIN_CHANNEL..=MAX_CHANNEL).contains(&n)
}

/// Whether a datagram starts like ChannelData (first two bits 01, RFC 7983 / RFC 8656 §12).
pub fn is_channel_data(bytes: &[u8]) -> bool {
    crate::demux::classify(bytes) == crate::demux::MultiplexKind::ChannelData
}

/// Parses ChannelData: the channel number and the data. `None` when shorter than the
/// header or than the length field says (RFC 8656 §12.4).
pub fn parse(bytes: &[u8]) -> Option<(u16, &[u8])> {
    if bytes.len() < HEADER_LEN || !is_channel_data(bytes) {
        return None;
    }
    let channel = u16::from_be_bytes([bytes[0], bytes[1]]);
    let len = usize::from(u16::from_be_bytes([bytes[2], bytes[3]]));
    let data = bytes.get(HEADER_LEN..HEADER_LEN + len)?;
    Some((channel, data))
}

/// Builds ChannelData without padding (allowed over UDP, RFC 8656 §12.5). `None` when the
/// data does not fit the 16-bit length.
pub fn emit(channel: u16, data: &[u8]) -> Option<Vec<u8>> {
    let len = u16::try_from(data.len()).ok()?;
    let mut out = Vec::with_capacity(HEADER_LEN + data.len());
    out.extend_from_slice(&channel.to_be_bytes());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(data);
    Some(out)
}

/// Builds ChannelData for `transport`: unpadded over UDP, padded with zeros to a multiple
/// of 4 over a stream (RFC 8656 §12.5 "MUST be padded" over TCP and TLS).
pub fn emit_for(
    transport: super::allocation::Transport,
    channel: u16,
    data: &[u8],
) -> Option<Vec<u8>> {
    let mut out = emit(channel, data)?;
    if transport.is_reliable() {
        out.resize(out.len().next_multiple_of(4), 0);
    }
    Some(out)
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn framing() {
        let b = emit(0x4001, b"hello").unwrap();
        assert_eq!(b, [0x40, 0x01, 0x00, 0x05, b'h', b'e', b'l', b'l', b'o']);
        assert_eq!(parse(&b), Some((0x4001, &b"hello"[..])));
        // With padding (as over TCP) the padding is ignored.
        let mut padded = b.clone();
        padded.extend_from_slice(&[0, 0, 0]);
        assert_eq!(parse(&padded), Some((0x4001, &b"hello"[..])));
        assert_eq!(parse(&b[..8]), None, "truncated");
        assert_eq!(parse(&[0x40, 0x01, 0x00]), None);
        assert_eq!(
            parse(&[0x00, 0x01, 0x00, 0x00]),
            None,
            "STUN, not ChannelData"
        );
        assert_eq!(parse(&[0x40, 0x00, 0x00, 0x00]), Some((0x4000, &[][..])));
        assert!(is_valid_channel(0x4FFF) && !is_valid_channel(0x5000) && !is_valid_channel(0x3FFF));
        assert!(emit(0x4000, &vec![0; 70_000]).is_none());
        use super::super::allocation::Transport;
        assert_eq!(emit_for(Transport::Udp, 0x4001, b"hello").unwrap(), b);
        assert_eq!(
            emit_for(Transport::Tcp, 0x4001, b"hello").unwrap(),
            padded[..12]
        );
        assert_eq!(emit_for(Transport::Tls, 0x4001, b"abcd").unwrap().len(), 8);
    }
}
