//! MESSAGE-INTEGRITY (RFC 8489 §14.5): HMAC-SHA1 over the message up to the attribute,
//! with the header length field counting up to the end of MESSAGE-INTEGRITY; and
//! MESSAGE-INTEGRITY-SHA256 (§14.6): HMAC-SHA256 the same way, up to the end of that
//! attribute, possibly truncated to 16..=32 bytes in steps of 4.
//!
//! The key is the short-term password itself (after OpaqueString, RFC 8265 — the caller's
//! job), or for long-term credentials MD5(username ":" realm ":" password) or, with
//! PASSWORD-ALGORITHM SHA-256, SHA-256 of the same (RFC 8489 §9.2.2; also the caller's).
//! When both attributes are present, MESSAGE-INTEGRITY-SHA256 follows MESSAGE-INTEGRITY
//! and covers it (§14.6).

use super::attr::{Attribute, kind};
use super::message::{HEADER_LEN, Message, Packet, fingerprint};
use hmac::{Hmac, KeyInit, Mac};

/// Length of the MESSAGE-INTEGRITY value.
pub const INTEGRITY_LEN: usize = 20;
/// Full length of the MESSAGE-INTEGRITY-SHA256 value (it may be truncated to 16 bytes).
pub const INTEGRITY_SHA256_LEN: usize = 32;

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
            return Some(constant_time_eq(&expected, attr.value));
        }
    }
    None
}

/// Verifies MESSAGE-INTEGRITY-SHA256 of the message in `data` with `key` (RFC 8489
/// §14.6). `None` when `data` is not a message or has no MESSAGE-INTEGRITY-SHA256 of a
/// valid length (16 to 32 bytes, a multiple of 4).
pub fn check_integrity_sha256(data: &[u8], key: &[u8]) -> Option<bool> {
    let packet = Packet::new_checked(data).ok()?;
    for attr in packet.attributes() {
        let attr = attr.ok()?;
        if attr.typ == kind::MESSAGE_INTEGRITY_SHA256 {
            let n = attr.value.len();
            if !(16..=INTEGRITY_SHA256_LEN).contains(&n) || n % 4 != 0 {
                return None;
            }
            let expected = compute_sha256(&data[..attr.offset], key, n);
            return Some(constant_time_eq(&expected[..n], attr.value));
        }
    }
    None
}

/// Compares without an early exit, so timing does not tell how much of a MAC matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The header of `prefix` with its length field set to cover an attribute of `value_len`
/// bytes appended to `prefix`.
fn adjusted_header(prefix: &[u8], value_len: usize) -> [u8; HEADER_LEN] {
    let mut header = [0u8; HEADER_LEN];
    let n = prefix.len().min(HEADER_LEN);
    header[..n].copy_from_slice(&prefix[..n]);
    let len = (prefix.len().saturating_sub(HEADER_LEN) + 4 + value_len) as u16;
    header[2..4].copy_from_slice(&len.to_be_bytes());
    header
}

/// HMAC-SHA1 over `prefix` (header + attributes before MESSAGE-INTEGRITY) with the length
/// field set to cover the MESSAGE-INTEGRITY attribute.
pub fn compute(prefix: &[u8], key: &[u8]) -> [u8; INTEGRITY_LEN] {
    let header = adjusted_header(prefix, INTEGRITY_LEN);
    hmac_sha1(key, &[&header, prefix.get(HEADER_LEN..).unwrap_or(&[])])
}

/// HMAC-SHA256 over `prefix` (header + attributes before MESSAGE-INTEGRITY-SHA256) with
/// the length field set to cover a MESSAGE-INTEGRITY-SHA256 attribute of `value_len` bytes
/// (the full 32-byte MAC is returned; a truncated attribute carries its first bytes).
pub fn compute_sha256(prefix: &[u8], key: &[u8], value_len: usize) -> [u8; INTEGRITY_SHA256_LEN] {
    let header = adjusted_header(prefix, value_len);
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key)
        .expect("HMAC takes keys of any length"); // invariant of HMAC (RFC 2104 §2)
    mac.update(&header);
    mac.update(prefix.get(HEADER_LEN..).unwrap_or(&[]));
    mac.finalize().into_bytes().into()
}

impl Message {
    /// Serialises the message, filling in every MESSAGE-INTEGRITY attribute (a
    /// [`Attribute::Raw`] of type 0x0008 with a 20-byte placeholder value) with HMAC-SHA1
    /// and every MESSAGE-INTEGRITY-SHA256 placeholder (type 0x001C, 16 to 32 bytes, a
    /// multiple of 4) with HMAC-SHA256 (truncated to the placeholder's length) under `key`,
    /// in order, then FINGERPRINT if it is last.
    pub fn emit_with_integrity(&self, key: &[u8]) -> Vec<u8> {
        let mut out = self.emit();
        let mut offset = HEADER_LEN;
        for attr in &self.attributes {
            if let Attribute::Raw(raw) = attr {
                let n = raw.value.len();
                if raw.typ == kind::MESSAGE_INTEGRITY && n == INTEGRITY_LEN {
                    let mac = compute(&out[..offset], key);
                    out[offset + 4..offset + 4 + n].copy_from_slice(&mac);
                } else if raw.typ == kind::MESSAGE_INTEGRITY_SHA256
                    && (16..=INTEGRITY_SHA256_LEN).contains(&n)
                    && n % 4 == 0
                {
                    let mac = compute_sha256(&out[..offset], key, n);
                    out[offset + 4..offset + 4 + n].copy_from_slice(&mac[..n]);
                }
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

/// HMAC-SHA1 (RFC 2104) of the concatenation of `parts` under `key`.
pub(crate) fn hmac_sha1(key: &[u8], parts: &[&[u8]]) -> [u8; 20] {
    let mut mac =
        <Hmac<sha1::Sha1> as KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length"); // invariant of HMAC (RFC 2104 §2)
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// SHA-256 of the concatenation of `parts` (the long-term key with PASSWORD-ALGORITHM
/// SHA-256, RFC 8489 §9.2.2).
pub fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
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
    fn sha256_and_hmac_known_answers() {
        assert_eq!(
            sha256(&[b"ab", b"c"]).to_vec(),
            hex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
        // RFC 4231 test case 2 (HMAC-SHA256), through the STUN path's primitive.
        let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            mac.finalize().into_bytes().to_vec(),
            hex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
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

    /// RFC 8489 Appendix B.1 with its verified erratum (the printed vector omits the
    /// PASSWORD-ALGORITHM attribute its length and MAC include): long-term key
    /// SHA-256("マトリックス:example.org:TheMatrIX"), MESSAGE-INTEGRITY-SHA256.
    #[test]
    fn rfc8489_b1_message_integrity_sha256() {
        let bytes = hex("000100902112a44278ad3433c6ad72c029da412e
             001e00204a3cf38fef6992bda952c6780417da0f24819415569e60b205c46e41407f1704
             001500296f624d61744a6f733241414143662f2f3439396b39353464364f4c33346f4c394653547679363473410000 00
             0014000b6578616d706c652e6f726700
             001d000400020000
             001c0020b5c7bf005b6c52a21c51c5e892f81924136296cb927c43149309278cc6518e65");
        let key = sha256(&["マトリックス:example.org:TheMatrIX".as_bytes()]);
        assert_eq!(check_integrity_sha256(&bytes, &key), Some(true));
        assert_eq!(check_integrity_sha256(&bytes, b"wrong"), Some(false));
        assert_eq!(check_integrity(&bytes, &key), None, "no SHA-1 attribute");
        // Re-emitting with a zeroed placeholder reproduces the vector.
        let mut msg = Message::parse(&bytes).unwrap();
        if let Some(Attribute::Raw(raw)) = msg.attributes.last_mut() {
            raw.value = vec![0; 32];
        }
        assert_eq!(msg.emit_with_integrity(&key), bytes);
    }

    /// §14.6: a MAC truncated to 16..=32 bytes (multiple of 4) verifies; other lengths
    /// are not a MESSAGE-INTEGRITY-SHA256; both attributes together, SHA-256 covering
    /// SHA-1, each verify; a changed byte anywhere before them fails both.
    #[test]
    fn truncated_and_combined_sha256_integrity() {
        let key = b"short-term password";
        for n in [16, 20, 24, 28, 32] {
            let mut msg = Message::new(
                crate::stun::Class::Request,
                crate::stun::Method::Binding,
                crate::stun::TransactionId::new([7; 12]),
            );
            msg.attributes.push(Attribute::Software("pinhole".into()));
            msg.attributes
                .push(Attribute::Raw(crate::stun::RawAttribute::new(
                    kind::MESSAGE_INTEGRITY,
                    vec![0; 20],
                )));
            msg.attributes
                .push(Attribute::Raw(crate::stun::RawAttribute::new(
                    kind::MESSAGE_INTEGRITY_SHA256,
                    vec![0; n],
                )));
            msg.attributes.push(Attribute::Fingerprint(0));
            let bytes = msg.emit_with_integrity(key);
            assert_eq!(check_integrity(&bytes, key), Some(true), "{n}");
            assert_eq!(check_integrity_sha256(&bytes, key), Some(true), "{n}");
            assert!(Message::parse(&bytes).is_ok());
            let mut bad = bytes.clone();
            bad[HEADER_LEN + 5] ^= 0x20;
            assert_eq!(check_integrity(&bad, key), Some(false));
            assert_eq!(check_integrity_sha256(&bad, key), Some(false));
        }
        for n in [4, 12, 18, 36] {
            let mut msg = Message::new(
                crate::stun::Class::Request,
                crate::stun::Method::Binding,
                crate::stun::TransactionId::new([7; 12]),
            );
            msg.attributes
                .push(Attribute::Raw(crate::stun::RawAttribute::new(
                    kind::MESSAGE_INTEGRITY_SHA256,
                    vec![0; n],
                )));
            assert_eq!(check_integrity_sha256(&msg.emit(), key), None, "{n}");
        }
    }
}
