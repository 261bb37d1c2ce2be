//! [`PacketBuf`]: one packet in a buffer with room before and after it.

use super::offload::Offload;
use std::fmt;

/// One packet's bytes in a buffer with headroom (for prepending headers) and tailroom (so
/// a rewrite that makes the packet longer — the SIP ALG replacing an address with a longer
/// one — fits without a copy).
#[derive(Clone)]
pub struct PacketBuf {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    offload: Option<Offload>,
}

/// The buffer has no room for the requested length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("packet buffer too small: need {needed} bytes, have {available}")]
pub struct CapacityError {
    /// Bytes needed.
    pub needed: usize,
    /// Bytes available.
    pub available: usize,
}

impl PacketBuf {
    /// Default headroom in bytes: room for an IPv6 header plus tunnel/virtio headers.
    pub const HEADROOM: usize = 64;
    /// Default tailroom in bytes: room for application-layer rewrites that grow a packet.
    pub const TAILROOM: usize = 256;

    /// A copy of `bytes` with the default head- and tailroom.
    pub fn from_slice(bytes: &[u8]) -> Self {
        Self::with_room(bytes, Self::HEADROOM, Self::TAILROOM)
    }

    /// A copy of `bytes` with the given head- and tailroom.
    pub fn with_room(bytes: &[u8], headroom: usize, tailroom: usize) -> Self {
        let mut buf = vec![0u8; headroom + bytes.len() + tailroom];
        buf[headroom..headroom + bytes.len()].copy_from_slice(bytes);
        PacketBuf {
            buf,
            start: headroom,
            end: headroom + bytes.len(),
            offload: None,
        }
    }

    /// A zeroed packet of `len` bytes with the default room around it.
    pub fn zeroed(len: usize) -> Self {
        PacketBuf {
            buf: vec![0u8; Self::HEADROOM + len + Self::TAILROOM],
            start: Self::HEADROOM,
            end: Self::HEADROOM + len,
            offload: None,
        }
    }

    /// An empty packet in a buffer of `capacity` bytes in all, for
    /// [`PacketBuf::fill_space`] (a fabric's reusable receive buffers).
    pub fn with_capacity(capacity: usize) -> Self {
        let start = Self::HEADROOM.min(capacity);
        PacketBuf {
            buf: vec![0u8; capacity],
            start,
            end: start,
            offload: None,
        }
    }

    /// Bytes in the whole buffer (packet, head- and tailroom).
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// Empty the packet (keeping the allocation), leaving [`PacketBuf::HEADROOM`] before it
    /// (less if the buffer is smaller), and return all the space after that for a read to
    /// fill; then [`PacketBuf::set_filled`] says how much it did. The bytes handed out are
    /// stale contents of earlier packets, never uninitialised memory. Clears the offload
    /// state.
    pub fn fill_space(&mut self) -> &mut [u8] {
        self.start = Self::HEADROOM.min(self.buf.len());
        self.end = self.start;
        self.offload = None;
        &mut self.buf[self.start..]
    }

    /// After [`PacketBuf::fill_space`]: the packet is the first `len` bytes written there.
    /// Unlike [`PacketBuf::resize`] the bytes are not zeroed.
    pub fn set_filled(&mut self, len: usize) -> Result<(), CapacityError> {
        let available = self.buf.len() - self.start;
        if len > available {
            return Err(CapacityError {
                needed: len,
                available,
            });
        }
        self.end = self.start + len;
        Ok(())
    }

    /// The checksum/segmentation offload state the packet arrived with (a virtio-net header
    /// from a TUN device), if any. `None` for ordinary packets with complete checksums.
    pub fn offload(&self) -> Option<&Offload> {
        self.offload.as_ref()
    }

    /// Attach (or clear) the offload state; see [`PacketBuf::offload`].
    pub fn set_offload(&mut self, offload: Option<Offload>) {
        self.offload = offload;
    }

    /// The packet's bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// The packet's bytes, mutable.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..self.end]
    }

    /// The packet's length in bytes.
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// Whether the packet has no bytes.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Free bytes before the packet.
    pub fn headroom(&self) -> usize {
        self.start
    }

    /// Free bytes after the packet.
    pub fn tailroom(&self) -> usize {
        self.buf.len() - self.end
    }

    /// Replace the packet with a copy of `bytes`, reusing the allocation when it fits.
    pub fn set_contents(&mut self, bytes: &[u8]) {
        let head = Self::HEADROOM.min(self.buf.len());
        if head + bytes.len() <= self.buf.len() {
            self.start = head;
        } else {
            self.buf
                .resize(Self::HEADROOM + bytes.len() + Self::TAILROOM, 0);
            self.start = Self::HEADROOM;
        }
        self.end = self.start + bytes.len();
        self.buf[self.start..self.end].copy_from_slice(bytes);
        self.offload = None;
    }

    /// Append `bytes` after the packet, into the tailroom. Fails without changing anything
    /// if the tailroom is too small.
    pub fn append(&mut self, bytes: &[u8]) -> Result<(), CapacityError> {
        let available = self.buf.len() - self.end;
        if bytes.len() > available {
            return Err(CapacityError {
                needed: bytes.len(),
                available,
            });
        }
        self.buf[self.end..self.end + bytes.len()].copy_from_slice(bytes);
        self.end += bytes.len();
        Ok(())
    }

    /// Set the packet's length, growing into the tailroom (new bytes are zero) or shrinking.
    pub fn resize(&mut self, len: usize) -> Result<(), CapacityError> {
        let available = self.buf.len() - self.start;
        if len > available {
            return Err(CapacityError {
                needed: len,
                available,
            });
        }
        if len > self.len() {
            self.buf[self.end..self.start + len].fill(0);
        }
        self.end = self.start + len;
        Ok(())
    }

    /// Replace `range` (relative to the packet start) with `with`, shifting the bytes after
    /// it within the buffer. Fails without changing anything if the tailroom is too small.
    pub fn splice(
        &mut self,
        range: std::ops::Range<usize>,
        with: &[u8],
    ) -> Result<(), CapacityError> {
        let len = self.len();
        if range.start > range.end || range.end > len {
            return Err(CapacityError {
                needed: range.end,
                available: len,
            });
        }
        let new_len = len - (range.end - range.start) + with.len();
        let available = self.buf.len() - self.start;
        if new_len > available {
            return Err(CapacityError {
                needed: new_len,
                available,
            });
        }
        let abs_from = self.start + range.end;
        let abs_to = self.start + range.start + with.len();
        self.buf.copy_within(abs_from..self.end, abs_to);
        self.buf[self.start + range.start..abs_to].copy_from_slice(with);
        self.end = self.start + new_len;
        Ok(())
    }

    /// Prepend `n` zeroed bytes taken from the headroom; returns them for writing.
    pub fn push_front(&mut self, n: usize) -> Result<&mut [u8], CapacityError> {
        if n > self.start {
            return Err(CapacityError {
                needed: n,
                available: self.start,
            });
        }
        self.start -= n;
        let s = self.start;
        self.buf[s..s + n].fill(0);
        Ok(&mut self.buf[s..s + n])
    }

    /// Remove `n` bytes from the front (they become headroom).
    pub fn pull_front(&mut self, n: usize) -> Result<(), CapacityError> {
        if n > self.len() {
            return Err(CapacityError {
                needed: n,
                available: self.len(),
            });
        }
        self.start += n;
        Ok(())
    }
}

impl fmt::Debug for PacketBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PacketBuf({} bytes)", self.len())
    }
}

impl PartialEq for PacketBuf {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for PacketBuf {}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn splice_grows_and_shrinks_in_place() {
        let mut p = PacketBuf::with_room(b"hello world", 4, 8);
        p.splice(0..5, b"goodbye").unwrap();
        assert_eq!(p.as_slice(), b"goodbye world");
        p.splice(8..13, b"all").unwrap();
        assert_eq!(p.as_slice(), b"goodbye all");
        assert_eq!(
            p.splice(0..0, b"0123456789").unwrap_err(),
            CapacityError {
                needed: 21,
                available: 19
            }
        );
        assert_eq!(p.as_slice(), b"goodbye all");
    }

    #[test]
    fn headroom_push_pull() {
        let mut p = PacketBuf::with_room(b"xy", 2, 0);
        p.push_front(2).unwrap().copy_from_slice(b"ab");
        assert_eq!(p.as_slice(), b"abxy");
        assert!(p.push_front(1).is_err());
        p.pull_front(3).unwrap();
        assert_eq!(p.as_slice(), b"y");
        p.resize(0).unwrap();
        assert!(p.is_empty());
    }
}
