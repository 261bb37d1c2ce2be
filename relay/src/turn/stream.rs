//! Framing of STUN messages and ChannelData on a byte stream (TCP or TLS, RFC 8656 §3.1,
//! §12.5): messages follow each other with no delimiter, each found by its own length —
//! a STUN message is its 20-byte header plus the header's length field (RFC 8489 §6),
//! ChannelData is its 4-byte header plus its length, padded to a multiple of 4 bytes.
//!
//! The first two bits of each frame tell the two apart (RFC 7983): `00` STUN, `01`
//! ChannelData. Anything else means the stream is not TURN (or lost sync), and the
//! connection should be closed: there is no way to find the next frame.

use thiserror::Error;

/// Largest frame: a STUN header plus the largest 16-bit body.
pub const MAX_FRAME: usize = 20 + u16::MAX as usize;

/// The stream cannot be framed any more; close the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("byte 0x{0:02x} starts neither a STUN message nor ChannelData (RFC 7983)")]
pub struct FrameError(pub u8);

/// Splits a byte stream into frames. Feed what arrives with [`Framer::push`], then take
/// frames with [`Framer::next_frame`] until `None`. Holds at most one partial frame
/// (≤ [`MAX_FRAME`] bytes) beyond what was pushed and not yet taken.
#[derive(Debug, Default, Clone)]
pub struct Framer {
    buf: Vec<u8>,
    start: usize,
    failed: Option<FrameError>,
}

impl Framer {
    /// An empty framer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes read from the stream.
    pub fn push(&mut self, data: &[u8]) {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// Bytes held that are not part of a returned frame.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Takes every byte held that is not part of a returned frame: for a stream that
    /// stops being framed (an RFC 6062 client data connection after its ConnectionBind).
    pub fn take_rest(&mut self) -> Vec<u8> {
        let rest = self.buf.split_off(self.start);
        self.buf.clear();
        self.start = 0;
        rest
    }

    /// The next complete frame: a whole STUN message, or ChannelData without its padding.
    /// `Some(Err)` once the stream is out of sync (and from then on).
    pub fn next_frame(&mut self) -> Option<Result<&[u8], FrameError>> {
        if let Some(e) = self.failed {
            return Some(Err(e));
        }
        let rest = &self.buf[self.start..];
        let first = *rest.first()?;
        let (len, consumed) = match first >> 6 {
            0b00 => {
                let n = 20 + usize::from(u16::from_be_bytes([*rest.get(2)?, *rest.get(3)?]));
                (n, n)
            }
            0b01 => {
                let n = 4 + usize::from(u16::from_be_bytes([*rest.get(2)?, *rest.get(3)?]));
                (n, n.next_multiple_of(4))
            }
            _ => {
                self.failed = Some(FrameError(first));
                return Some(Err(FrameError(first)));
            }
        };
        if rest.len() < consumed {
            // Compact so that the buffer never holds more than one partial frame.
            if self.start > 0 {
                self.buf.drain(..self.start);
                self.start = 0;
            }
            return None;
        }
        let from = self.start;
        self.start += consumed;
        Some(Ok(&self.buf[from..from + len]))
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::stun::{Class, Message, Method, TransactionId};
    use crate::turn::channel;

    #[test]
    fn frames_stun_and_padded_channel_data_split_anywhere() {
        let stun =
            Message::new(Class::Request, Method::Binding, TransactionId::new([7; 12])).emit();
        let mut cd = channel::emit(0x4001, b"hello").unwrap();
        cd.resize(12, 0);
        let cd4 = channel::emit(0x4002, b"abcd").unwrap();
        let stream: Vec<u8> = [&stun[..], &cd, &cd4, &stun].concat();
        for chunk in 1..stream.len() {
            let mut f = Framer::new();
            let mut got: Vec<Vec<u8>> = Vec::new();
            for piece in stream.chunks(chunk) {
                f.push(piece);
                while let Some(frame) = f.next_frame() {
                    got.push(frame.unwrap().to_vec());
                }
            }
            assert_eq!(
                got,
                vec![stun.clone(), cd[..9].to_vec(), cd4.clone(), stun.clone()],
                "chunk {chunk}"
            );
            assert_eq!(f.buffered(), 0);
        }
    }

    #[test]
    fn garbage_is_an_error_that_sticks() {
        let mut f = Framer::new();
        f.push(&[0x80, 0, 0, 0]);
        assert_eq!(f.next_frame(), Some(Err(FrameError(0x80))));
        f.push(&[0, 1, 0, 0]);
        assert_eq!(f.next_frame(), Some(Err(FrameError(0x80))));
    }

    #[test]
    fn a_partial_frame_waits() {
        let mut f = Framer::new();
        f.push(&[0x40, 0x01, 0x00]);
        assert!(f.next_frame().is_none());
        f.push(&[0x02, b'h']);
        assert!(f.next_frame().is_none());
        f.push(&[b'i', 0, 0]);
        assert_eq!(
            f.next_frame(),
            Some(Ok(&[0x40, 0x01, 0x00, 0x02, b'h', b'i'][..]))
        );
        assert!(f.next_frame().is_none());
    }
}
