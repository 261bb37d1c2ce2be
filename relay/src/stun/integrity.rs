//! MESSAGE-INTEGRITY (RFC 8489 §14.5): HMAC-SHA1 over the message up to the attribute,
//! with the header length field counting up to the end of MESSAGE-INTEGRITY.
//!
//! The key is the short-term password itself, or MD5(username ":" realm ":" password)
//! for long-term credentials (RFC 8489 §9.2.2; computing it is up to the caller).
//! SHA-1 is used here only as HMAC-SHA1, which STUN mandates; it is written out so the
//! codec has no extra dependency.

use super::attr::{Attribute, kind};
use super::message::{HEADER_LEN, Message, Packet, fingerprint};

/// Length of the MESSAGE-INTEGRITY value.
pub const INTEGRITY_LEN: usize = 20;

/// Verifies MESSAGE-INTEGRITY of the message in `data` with `key`.
/// `None` when `data` is not a message or has no (20-byte) MESSAGE-INTEGRITY.
pub fn check_integrity(data: &[u8], key: &[u8]) -> Option<bool> {
    let packet = Packet::new_checked(data).ok()?;
    for attr in packet.attributes() {
        let attr = attr.ok()?;
        if attr.typ == kind::MESSAGE_INTEGRITY {
            if attr.value.len() != INTEGRITY_LEN {
                return None;
            }
            let expected = compute(&data[..attr.offset], key);
            // Constant-time comparison.
            let diff = expected
                .iter()
                .zip(attr.value)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b));
            return Some(diff == 0);
        }
    }
    None
}

/// HMAC-SHA1 over `prefix` (header + attributes before MESSAGE-INTEGRITY) with the length
/// field set to cover the MESSAGE-INTEGRITY attribute.
pub fn compute(prefix: &[u8], key: &[u8]) -> [u8; INTEGRITY_LEN] {
    let mut header = [0u8; HEADER_LEN];
    let n = prefix.len().min(HEADER_LEN);
    header[..n].copy_from_slice(&prefix[..n]);
    let len = (prefix.len().saturating_sub(HEADER_LEN) + 4 + INTEGRITY_LEN) as u16;
    header[2..4].copy_from_slice(&len.to_be_bytes());
    hmac_sha1(key, &[&header, prefix.get(HEADER_LEN..).unwrap_or(&[])])
}

impl Message {
    /// Serialises the message, filling in every MESSAGE-INTEGRITY attribute (a
    /// [`Attribute::Raw`] of type 0x0008 with a 20-byte placeholder value) with HMAC-SHA1
    /// under `key`, then FINGERPRINT if it is last.
    pub fn emit_with_integrity(&self, key: &[u8]) -> Vec<u8> {
        let mut out = self.emit();
        let mut offset = HEADER_LEN;
        for attr in &self.attributes {
            if let Attribute::Raw(raw) = attr
                && raw.typ == kind::MESSAGE_INTEGRITY
                && raw.value.len() == INTEGRITY_LEN
            {
                let mac = compute(&out[..offset], key);
                out[offset + 4..offset + 4 + INTEGRITY_LEN].copy_from_slice(&mac);
            }
            offset += attr.wire_len();
        }
        if let Some(Attribute::Fingerprint(_)) = self.attributes.last() {
            let at = out.len() - 4;
            let crc = fingerprint(&out[..at - 4]);
            out[at..].copy_from_slice(&crc.to_be_bytes());
        }
        out
    }
}

pub(crate) fn hmac_sha1(key: &[u8], parts: &[&[u8]]) -> [u8; 20] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..20].copy_from_slice(&Sha1::digest(&[key]));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let ipad: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    let mut inner_parts: Vec<&[u8]> = vec![&ipad];
    inner_parts.extend_from_slice(parts);
    let inner = Sha1::digest(&inner_parts);
    Sha1::digest(&[&opad, &inner])
}

struct Sha1 {
    h: [u32; 5],
    block: [u8; 64],
    fill: usize,
    total: u64,
}

impl Sha1 {
    fn digest(parts: &[&[u8]]) -> [u8; 20] {
        let mut s = Sha1 {
            h: [
                0x6745_2301,
                0xEFCD_AB89,
                0x98BA_DCFE,
                0x1032_5476,
                0xC3D2_E1F0,
            ],
            block: [0; 64],
            fill: 0,
            total: 0,
        };
        for p in parts {
            s.update(p);
        }
        s.finish()
    }

    fn update(&mut self, mut data: &[u8]) {
        self.total += data.len() as u64;
        while !data.is_empty() {
            let n = (64 - self.fill).min(data.len());
            self.block[self.fill..self.fill + n].copy_from_slice(&data[..n]);
            self.fill += n;
            data = &data[n..];
            if self.fill == 64 {
                let block = self.block;
                self.compress(&block);
                self.fill = 0;
            }
        }
    }

    fn finish(mut self) -> [u8; 20] {
        let bits = self.total.wrapping_mul(8);
        self.update(&[0x80]);
        while self.fill != 56 {
            self.update(&[0]);
        }
        self.update(&bits.to_be_bytes());
        let mut out = [0u8; 20];
        for (i, h) in self.h.iter().enumerate() {
            out[4 * i..4 * i + 4].copy_from_slice(&h.to_be_bytes());
        }
        out
    }

    fn compress(&mut self, block: &[u8; 64]) {
        let mut w = [0u32; 80];
        for i in 0..16 {
            w[i] = u32::from_be_bytes([
                block[4 * i],
                block[4 * i + 1],
                block[4 * i + 2],
                block[4 * i + 3],
            ]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = self.h;
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
                20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
                _ => (b ^ c ^ d, 0xCA62_C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        for (h, v) in self.h.iter_mut().zip([a, b, c, d, e]) {
            *h = h.wrapping_add(v);
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let digits: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
        digits
            .chunks(2)
            .map(|c| u8::from_str_radix(std::str::from_utf8(c).unwrap(), 16).unwrap())
            .collect()
    }

    #[test]
    fn sha1_and_hmac_known_answers() {
        assert_eq!(
            Sha1::digest(&[b"abc"]).to_vec(),
            hex("a9993e364706816aba3e25717850c26c9cd0d89d")
        );
        assert_eq!(
            Sha1::digest(&[b""]).to_vec(),
            hex("da39a3ee5e6b4b0d3255bfef95601890afd80709")
        );
        let million = vec![b'a'; 1_000_000];
        assert_eq!(
            Sha1::digest(&[&million]).to_vec(),
            hex("34aa973cd4c4daa4f61eeb2bdbad27316534016f")
        );
        // RFC 2202 test case 2.
        assert_eq!(
            hmac_sha1(b"Jefe", &[b"what do ya want ", b"for nothing?"]).to_vec(),
            hex("effcdf6ae5eb2fa2d27416d5f184df9c259a7c79")
        );
        // RFC 2202 test case 6 (key longer than a block).
        assert_eq!(
            hmac_sha1(
                &[0xaa; 80],
                &[b"Test Using Larger Than Block-Size Key - Hash Key First"]
            )
            .to_vec(),
            hex("aa4ae5e15272d00e95705637ce8a3b55ed402112")
        );
    }

    const PASSWORD: &[u8] = b"VOkJxbRl1RmTxUk/WvJxBt";

    /// RFC 5769 §2.1 (short-term credentials).
    #[test]
    fn rfc5769_request_integrity() {
        let bytes = hex("000100582112a442b7e7a701bc34d686fa87dfae
             802200105354554e207465737420636c69656e74
             002400046e0001ff80290008932ff9b151263b36
             000600096576746a3a683676592020200008001
             49aeaa70cbfd8cb56781ef2b5b2d3f249c1b571a2
             80280004e57a3bcf");
        assert_eq!(check_integrity(&bytes, PASSWORD), Some(true));
        assert_eq!(check_integrity(&bytes, b"wrong"), Some(false));
        let mut msg = Message::parse(&bytes).unwrap();
        // Zero the MAC: emit_with_integrity recomputes it and the fingerprint.
        if let Attribute::Raw(raw) = &mut msg.attributes[4] {
            raw.value = vec![0; 20];
        }
        assert_eq!(msg.emit_with_integrity(PASSWORD), bytes);
    }

    /// RFC 5769 §2.2 and §2.3 responses.
    #[test]
    fn rfc5769_response_integrity() {
        let v4 = hex("0101003c2112a442b7e7a701bc34d686fa87dfae 8022000b7465737420766563746f7220
             002000080001a147e112a643 000800142b91f599fd9e90c38c7489f92af9ba53f06be7d7 80280004c07d4c96");
        let v6 = hex(
            "010100482112a442b7e7a701bc34d686fa87dfae 8022000b7465737420766563746f7220
             002000140002a1470113a9faa5d3f179bc25f4b5bed2b9d9
             00080014a382954e4be67bf11784c97c8292c275bfe3ed41 80280004c8fb0b4c",
        );
        assert_eq!(check_integrity(&v4, PASSWORD), Some(true));
        assert_eq!(check_integrity(&v6, PASSWORD), Some(true));
        let mut tampered = v4.clone();
        tampered[33] ^= 1;
        assert_eq!(check_integrity(&tampered, PASSWORD), Some(false));
        let no_mi = Message::new(
            crate::stun::Class::Request,
            crate::stun::Method::Binding,
            crate::stun::TransactionId::new([1; 12]),
        )
        .emit();
        assert_eq!(check_integrity(&no_mi, PASSWORD), None);
        assert_eq!(check_integrity(b"junk", PASSWORD), None);
    }
}
