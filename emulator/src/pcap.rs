//! Packet capture files in the classic libpcap format, readable by tshark and Wireshark.
//!
//! Packets are raw IP (link type `LINKTYPE_RAW`, 101: the first nibble tells IPv4 from
//! IPv6), as they cross an attachment between a node and its network. Timestamps are
//! scenario time: t = 0 is 1970-01-01T00:00:00Z, so the same run gives the same file.

use std::io::{self, Write};
use std::time::Duration;

/// `LINKTYPE_RAW`: raw IPv4 or IPv6 packets.
pub const LINKTYPE_RAW: u32 = 101;

/// Longest packet kept whole; longer ones are truncated in the file (their original length
/// is still recorded).
pub const SNAPLEN: u32 = 65535;

/// Writes one capture file.
pub struct PcapWriter<W: Write> {
    out: W,
    packets: u64,
}

impl<W: Write> PcapWriter<W> {
    /// Start a capture file: writes the global header (microsecond timestamps, native
    /// little-endian magic).
    pub fn new(mut out: W) -> io::Result<Self> {
        let mut h = [0u8; 24];
        h[0..4].copy_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        h[4..6].copy_from_slice(&2u16.to_le_bytes());
        h[6..8].copy_from_slice(&4u16.to_le_bytes());
        // thiszone and sigfigs stay 0.
        h[16..20].copy_from_slice(&SNAPLEN.to_le_bytes());
        h[20..24].copy_from_slice(&LINKTYPE_RAW.to_le_bytes());
        out.write_all(&h)?;
        Ok(PcapWriter { out, packets: 0 })
    }

    /// Append one packet seen at scenario time `at`.
    pub fn write_packet(&mut self, at: Duration, packet: &[u8]) -> io::Result<()> {
        let kept = packet.len().min(SNAPLEN as usize);
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&(at.as_secs() as u32).to_le_bytes());
        h[4..8].copy_from_slice(&at.subsec_micros().to_le_bytes());
        h[8..12].copy_from_slice(&(kept as u32).to_le_bytes());
        h[12..16].copy_from_slice(&(packet.len() as u32).to_le_bytes());
        self.out.write_all(&h)?;
        self.out.write_all(&packet[..kept])?;
        self.packets += 1;
        Ok(())
    }

    /// Packets written so far.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// Flush and return the underlying writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn header_and_record_layout() {
        let mut w = PcapWriter::new(Vec::new()).unwrap();
        w.write_packet(Duration::from_micros(1_500_001), &[0x45, 0, 0, 20])
            .unwrap();
        assert_eq!(w.packets(), 1);
        let b = w.finish().unwrap();
        assert_eq!(b.len(), 24 + 16 + 4);
        assert_eq!(&b[0..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
        assert_eq!(u32::from_le_bytes(b[20..24].try_into().unwrap()), 101);
        assert_eq!(u32::from_le_bytes(b[24..28].try_into().unwrap()), 1);
        assert_eq!(u32::from_le_bytes(b[28..32].try_into().unwrap()), 500_001);
        assert_eq!(u32::from_le_bytes(b[32..36].try_into().unwrap()), 4);
        assert_eq!(&b[40..], &[0x45, 0, 0, 20]);
    }
}
